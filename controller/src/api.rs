//! The local API's commands to the lease task.

use crate::leases::Lease;

/// Which leases a command is about.
#[derive(Debug, Clone)]
pub enum Selector {
    Id(String),
    Prefix(String),
}

/// A command for the lease task, with the channel its answer goes back on.
#[derive(Debug)]
pub enum Command {
    Renew {
        selector: Selector,
        reply: tokio::sync::oneshot::Sender<Result<Vec<Lease>, String>>,
    },
    Revoke {
        selector: Selector,
        reply: tokio::sync::oneshot::Sender<Result<Vec<String>, String>>,
    },
    Rotate {
        path: String,
        reply: tokio::sync::oneshot::Sender<Result<(), String>>,
    },
}
