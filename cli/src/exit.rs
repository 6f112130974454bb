//! Exit codes.

use std::process::ExitCode;

/// How a command ended, as the exit code scripts see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything asked for was done and is in order (0).
    Success,
    /// The command ran, and found problems (1): `verify` found a broken manifest, etc.
    Problems,
    /// The command could not do its job (2): bad input, missing key, I/O error.
    Error,
}

impl From<Outcome> for ExitCode {
    fn from(outcome: Outcome) -> Self {
        ExitCode::from(match outcome {
            Outcome::Success => 0,
            Outcome::Problems => 1,
            Outcome::Error => 2,
        })
    }
}
