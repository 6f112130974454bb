//! The controller on a local repository, end to end with the real binaries.

mod common;

use common::controller::{Fleet, PASSWORD};

#[test]
fn a_signed_commit_is_materialised_with_content_and_mode() {
    let fleet = Fleet::new();
    let (code, status, stderr) = fleet.once();
    assert_eq!(code, 0, "{status:#}\n{stderr}");
    let env = fleet.output("payments/db.env").expect("db.env written");
    assert!(env.contains(&format!("DB_PASSWORD='{PASSWORD}'")), "{env}");
    assert_eq!(
        fleet.output("payments/url").expect("url written"),
        format!("postgres://payments:{PASSWORD}@db.internal/payments")
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &str| {
        std::fs::metadata(fleet.out.join(p))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777
    };
    assert_eq!(mode("payments/db.env"), 0o640);
    assert_eq!(mode("payments/url"), 0o600);
    assert_eq!(status["targets"]["payments"]["state"], "in-sync");
    assert!(!stderr.contains(PASSWORD), "the log holds the secret");
    assert!(!status.to_string().contains(PASSWORD));
}
