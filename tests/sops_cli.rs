//! SOPS interop through the real binary: `reveal FILE -o json` on files written by the real
//! sops tool, `import-sops` and `export-sops` round trips. Fixtures are read in place from
//! ../shared/fixtures/sops.

use crate::common::{World, fixtures, private_key_copy};
use predicates::prelude::*;

const FILES: &[(&str, &str)] = &[
    (
        "sops-pr1031/example.yaml",
        "sops-pr1031_example.yaml.plain.json",
    ),
    (
        "sops-pr1031/example.json",
        "sops-pr1031_example.json.plain.json",
    ),
    (
        "sops-pr1031/example.ini",
        "sops-pr1031_example.ini.plain.json",
    ),
    (
        "sops-pr1031/example.txt",
        "sops-pr1031_example.txt.plain.json",
    ),
    (
        "flux/secret-regex.yaml",
        "flux_secret-regex.yaml.plain.json",
    ),
    (
        "flux/secret-global.yaml",
        "flux_secret-global.yaml.plain.json",
    ),
    ("flux/env.env", "flux_env.env.plain.json"),
    ("flux/file.txt", "flux_file.txt.plain.json"),
    ("flux/merge1.yaml", "flux_merge1.yaml.plain.json"),
    ("flux/merge2.yaml", "flux_merge2.yaml.plain.json"),
];

fn all_keys(world: &World, sops: &std::path::Path) -> std::path::PathBuf {
    private_key_copy(
        world,
        &[
            sops.join("sops-pr1031/keys-both.txt"),
            sops.join("flux/keys/age.txt"),
            sops.join("flux/keys/age-global.txt"),
        ],
    )
}

#[test]
fn reveal_opens_every_sops_fixture_as_its_expected_document() {
    let Some(fixtures) = fixtures() else { return };
    let sops = fixtures.join("sops");
    let world = World::new();
    let keys = all_keys(&world, &sops);
    for (file, expected) in FILES {
        let out = world.stdout(
            world
                .sealops()
                .arg("reveal")
                .arg(sops.join(file))
                .args(["-o", "json", "-i"])
                .arg(&keys),
        );
        let got: serde_json::Value =
            serde_json::from_str(&out).unwrap_or_else(|e| panic!("{file}: {e}"));
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(sops.join("expected").join(expected)).expect("expected"),
        )
        .expect("json");
        let expected = match expected.as_array() {
            Some(documents) if documents.len() == 1 => documents[0].clone(),
            _ => expected,
        };
        assert_eq!(got, expected, "{file}");
    }
}

#[test]
fn a_wrong_mac_is_an_error_unless_ignored() {
    let Some(fixtures) = fixtures() else { return };
    let sops = fixtures.join("sops");
    let world = World::new();
    let keys = all_keys(&world, &sops);
    let original = std::fs::read_to_string(sops.join("flux/env.env")).expect("fixture");
    // Change one clear character of the MAC's ciphertext.
    let start = original.find("sops_mac=ENC[AES256_GCM,data:").expect("mac")
        + "sops_mac=ENC[AES256_GCM,data:".len();
    let mut tampered = original.clone().into_bytes();
    tampered[start] = if tampered[start] == b'A' { b'B' } else { b'A' };
    let file = world.dir.path().join("env.env");
    std::fs::write(&file, tampered).expect("write");
    world
        .sealops()
        .arg("reveal")
        .arg(&file)
        .args(["-o", "json", "-i"])
        .arg(&keys)
        .assert()
        .code(2)
        .stderr(predicate::str::contains("env.env").and(predicate::str::contains("MAC")));
    world
        .sealops()
        .arg("reveal")
        .arg(&file)
        .args(["-o", "json", "--ignore-mac", "-i"])
        .arg(&keys)
        .assert()
        .success()
        .stderr(predicate::str::contains("MAC not verified"));
    world
        .sealops()
        .arg("reveal")
        .arg(sops.join("flux/env.env"))
        .arg("-i")
        .arg(&keys)
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "is a SOPS file: reveal it with -o json",
        ));
}

#[test]
fn import_then_reveal_equals_the_sops_plaintext() {
    let Some(fixtures) = fixtures() else { return };
    let sops = fixtures.join("sops");
    let world = World::new();
    let keys = all_keys(&world, &sops);
    // The repository's recipient opens the manifest; the SOPS keys open the source file.
    world
        .sealops()
        .args(["import-sops"])
        .arg(sops.join("sops-pr1031/example.json"))
        .args(["--to", "legacy/person", "-i"])
        .arg(&keys)
        .arg("-i")
        .arg(&world.key)
        .assert()
        .success()
        .stderr(predicate::str::contains("note:").and(predicate::str::contains("age")));
    let manifest = world.manifest("legacy/person");
    assert!(
        !manifest.contains("John") && !manifest.contains("New York"),
        "{manifest}"
    );
    let json =
        world.stdout(
            world
                .sealops_with_key()
                .args(["reveal", "legacy/person", "-o", "json"]),
        );
    let values: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(
        values,
        serde_json::json!({
            "address.city": "New York",
            "address.postalCode": "10021-3100",
            "address.state": "NY",
            "address.streetAddress": "21 2nd Street",
            "age": "25.4",
            "anEmptyValue": "",
            "firstName": "John",
            "lastName": "Smith",
            "phoneNumbers.0.number": "212 555-1234",
            "phoneNumbers.0.type": "home",
            "phoneNumbers.1.number": "646 555-4567",
            "phoneNumbers.1.type": "office"
        })
    );
}

#[test]
fn export_sops_round_trips_through_the_sops_reader_and_age() {
    let world = World::new();
    world
        .sealops()
        .args([
            "seal",
            "apps/db",
            "--from-literal",
            "db.password=s3cret",
            "--from-literal",
            "db.user=app",
            "--plain",
            "region=eu",
        ])
        .assert()
        .success();
    for format in ["yaml", "json", "dotenv"] {
        let out = world.dir.path().join(format!("db.enc.{format}"));
        if format == "dotenv" {
            // dotenv holds flat keys only: a nested manifest is refused with the reason.
            world
                .sealops_with_key()
                .args(["export-sops", "apps/db", "--format", format, "-o"])
                .arg(&out)
                .assert()
                .code(2);
            continue;
        }
        world
            .sealops_with_key()
            .args(["export-sops", "apps/db", "--format", format, "-o"])
            .arg(&out)
            .assert()
            .success();
        let text = std::fs::read_to_string(&out).expect("exported");
        assert!(
            !text.contains("s3cret") && text.contains("ENC[AES256_GCM,data:"),
            "{text}"
        );
        let json = world.stdout(
            world
                .sealops_with_key()
                .arg("reveal")
                .arg(&out)
                .args(["-o", "json"]),
        );
        let values: serde_json::Value = serde_json::from_str(&json).expect("json");
        assert_eq!(
            values,
            serde_json::json!({"db": {"password": "s3cret", "user": "app"}, "region": "eu"}),
            "{format}"
        );
    }
    world
        .sealops()
        .args(["set", "apps/flat", "TOKEN", "t0k"])
        .assert()
        .success();
    let env = world.stdout(world.sealops_with_key().args([
        "export-sops",
        "apps/flat",
        "--format",
        "dotenv",
    ]));
    assert!(
        env.contains("TOKEN=ENC[AES256_GCM,data:") && env.contains("sops_mac="),
        "{env}"
    );
}
