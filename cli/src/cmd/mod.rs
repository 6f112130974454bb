//! One module per command; each parses nothing itself and calls the library.

pub mod policy;
