//! Vault ACL policies with Vault's exact semantics: parse, merge, check, format, and who holds
//! them.
//!
//! Which API to use when:
//! - Parse one policy file with [`Policy::load`] (or [`Policy::parse`] for text); errors name
//!   the file and line in Vault's words.
//! - Build a holder's access-control list from all of its policies with [`Acl::new`], then
//!   [`Acl::check`] a [`Request`] (→ [`Decision`]), or [`Acl::explain`] it for people.
//! - Format a file canonically with [`format_policy`].
//! - Load `identities/*.yaml` with [`Principals::load_dir`] and ask [`Principals::who_can`].
//!
//! The rules themselves are documented in `docs/policy.md`.

mod capability;
mod eval;
mod fmt;
mod identity;
mod parse;
mod source;

pub use capability::{Capabilities, Operation};
pub use eval::{
    Acl, AclError, Candidate, Decision, Denial, Explanation, Lookup, MergedRule, Request,
    RuleSource, globbed_strings_match,
};
pub use fmt::{FormatError, format_policy};
pub use identity::{
    IdentityDoc, IdentityError, IdentityKind, PolicySet, Principals, identity_schema_name,
};
pub use parse::{
    CONTROLLED_CAPABILITY_SUBSET_ERROR, LoadError, ParseError, PathRule, PatternKind, Policy,
    Syntax, default_name, parse_duration_seconds,
};
pub use source::{Problem, SourceAttr};
