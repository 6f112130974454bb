//! Audit throughput, against the disk's limit: one fsync.
//!
//! `cargo bench -p sealops-controller --bench audit` prints, in one run:
//! - the limit: one `fdatasync` of an appended line on this disk;
//! - records journalled durably per second (`Audit::record`, one fsync per group) for groups
//!   of 1, 10, 100 and 1,000 records;
//! - end to end: records per second from `Audit::record` to a confirmed push of the audit
//!   branch to a loopback remote (`file://`), in groups of 100, pushed every 1,000;
//! - a busy day: the cost of the first and the 100th push of a day with 100,000 records.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sealops_controller::audit::Audit;
use sealops_controller::source::Source;
use sealops_core::audit::{Event, Outcome, RecordDraft};
use sealops_core::controller_config::RepositorySource;

fn draft(n: usize) -> RecordDraft {
    let mut draft = RecordDraft::new(Event::OutputWritten, Outcome::Ok);
    draft.commit = Some("6f0892c4d1e5a7b3f9e2d8c6a4b1e3f5d7c9a2b4".to_owned());
    draft.path = Some(format!("apps/bench/secret-{n}"));
    draft.keys = vec!["PASSWORD".to_owned(), "USER".to_owned()];
    draft.target = Some(format!("target-{}", n % 100));
    draft.identity = Some("bench".to_owned());
    draft.fingerprints.insert(
        "PASSWORD".to_owned(),
        format!("hmac-sha256:{}", "ab".repeat(32)),
    );
    draft
}

fn fsync_limit(dir: &Path) -> Duration {
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("fsync-probe"))
        .expect("probe");
    let runs = 200;
    let start = Instant::now();
    for _ in 0..runs {
        file.write_all(b"{\"probe\":true}\n").expect("write");
        file.sync_data().expect("fdatasync");
    }
    start.elapsed() / runs
}

/// A controller's audit trail (`name`, state in `dir/name`) pushing to a new bare repository
/// `dir/name.git` over file://.
fn pushing_to_a_new_remote(dir: &Path, name: &str) -> (Audit, Source) {
    let remote = dir.join(format!("{name}.git"));
    std::fs::create_dir_all(&remote).expect("remote");
    let status = Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .current_dir(&remote)
        .status()
        .expect("git runs");
    assert!(status.success());
    let state = dir.join(name);
    std::fs::create_dir_all(&state).expect("state");
    let source = Source::new(
        &RepositorySource {
            path: None,
            url: Some(format!("file://{}", remote.display())),
            branch: "main".to_owned(),
            token_file: None,
            ssh_key_file: None,
        },
        &state,
    );
    (Audit::open(&state, name, name), source)
}

fn main() {
    let dir =
        tempfile::tempdir_in(std::env::var_os("CARGO_TARGET_TMPDIR").unwrap_or_else(|| ".".into()))
            .expect("tempdir");
    let fsync = fsync_limit(dir.path());
    println!(
        "limit: one fdatasync of an appended line {:.3} ms → at most {:.0} durable appends/s",
        fsync.as_secs_f64() * 1e3,
        1.0 / fsync.as_secs_f64()
    );

    for group in [1usize, 10, 100, 1000] {
        let state = dir.path().join(format!("journal-{group}"));
        std::fs::create_dir_all(&state).expect("state");
        let audit = Audit::open(&state, "bench", "bench");
        let total = (group * 200).clamp(2_000, 100_000);
        let start = Instant::now();
        for base in (0..total).step_by(group) {
            audit
                .record((base..base + group).map(draft).collect())
                .expect("journalled");
        }
        let elapsed = start.elapsed();
        println!(
            "journal: {total} records in groups of {group}: {:.0} records/s durable ({:.3} ms per group, {:.2}× one fdatasync)",
            total as f64 / elapsed.as_secs_f64(),
            elapsed.as_secs_f64() * 1e3 / (total / group) as f64,
            elapsed.as_secs_f64() / (total / group) as f64 / fsync.as_secs_f64()
        );
    }

    let (audit, source) = pushing_to_a_new_remote(dir.path(), "bench");
    let total = 20_000;
    let start = Instant::now();
    let mut pushes = 0;
    for base in (0..total).step_by(100) {
        audit
            .record((base..base + 100).map(draft).collect())
            .expect("journalled");
        if (base + 100) % 1000 == 0 {
            audit.push(&source).expect("pushed");
            pushes += 1;
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(audit.waiting(), 0);
    println!(
        "end to end: {total} records journalled and pushed to a file:// remote in {pushes} pushes: {:.0} records/s ({:.1} ms per push of 1,000)",
        total as f64 / elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / pushes as f64
    );

    // A busy day: 100 pushes of 1,000 records each, all on one day. Each push adds one batch
    // file and rewrites none, so the 100th push should cost what the first did.
    let (audit, source) = pushing_to_a_new_remote(dir.path(), "busy");
    let mut push_times = Vec::with_capacity(100);
    for push in 0..100usize {
        for group in 0..10 {
            let base = push * 1000 + group * 100;
            audit
                .record((base..base + 100).map(draft).collect())
                .expect("journalled");
        }
        let start = Instant::now();
        audit.push(&source).expect("pushed");
        push_times.push(start.elapsed());
    }
    assert_eq!(audit.waiting(), 0);
    let median = |times: &[Duration]| {
        let mut sorted = times.to_vec();
        sorted.sort();
        sorted[sorted.len() / 2]
    };
    // Medians of five pushes at each end, so one slow fsync does not decide the ratio.
    let first = median(&push_times[..5]);
    let last = median(&push_times[95..]);
    println!(
        "busy day: 100,000 records in 100 pushes of 1,000: first pushes {:.1} ms, 96th-100th {:.1} ms (median of 5 each): {:.2}× (bound 1.2×); push 1 {:.1} ms, push 100 {:.1} ms",
        first.as_secs_f64() * 1e3,
        last.as_secs_f64() * 1e3,
        last.as_secs_f64() / first.as_secs_f64(),
        push_times[0].as_secs_f64() * 1e3,
        push_times[99].as_secs_f64() * 1e3,
    );
}
