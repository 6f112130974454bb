//! Running a hook from the local allow-list after a target's output changed.
//!
//! No shell: the configured program and arguments run as they are, with stdin closed and their
//! output discarded (a hook's output could echo a secret into the controller's log).

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use git2::Oid;

/// A hook from the local allow-list.
#[derive(Debug, Clone)]
pub struct HookSpec {
    pub command: Vec<String>,
    pub timeout: Duration,
}

/// Runs `spec` for `target`; `Err` says how it failed (exit status, timeout, cannot start).
pub fn run(name: &str, spec: &HookSpec, target: &str, commit: Oid) -> Result<(), String> {
    let (program, args) = spec
        .command
        .split_first()
        .expect("validated: a hook command is not empty");
    let mut child = Command::new(program)
        .args(args)
        .env("SEALOPS_TARGET", target)
        .env("SEALOPS_COMMIT", commit.to_string())
        .env("SEALOPS_HOOK", name)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run {program}: {e}"))?;
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => {
                tracing::info!(hook = name, target_name = target, "hook ran");
                return Ok(());
            }
            Ok(Some(status)) => return Err(format!("exited with {status}")),
            Ok(None) if started.elapsed() >= spec.timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "killed after its timeout of {}",
                    humantime::format_duration(spec.timeout)
                ));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(e.to_string()),
        }
    }
}
