//! One module per command (or family of commands). Each turns validated arguments into calls to
//! `sealops-core` and reports on stderr; data goes to stdout.

pub mod approve;
pub mod audit;
pub mod check;
pub mod edit;
pub mod git;
pub mod init;
pub mod keys;
pub mod lease;
pub mod meta;
pub mod policy;
pub mod recipients;
pub mod reveal;
pub mod rewrap;
pub mod seal;
pub mod sops;
pub mod verify;
