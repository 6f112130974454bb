//! JSON Schemas of the file formats, generated from the Rust types.
//!
//! `sealops schema --out schemas/` writes them; a test fails when the committed files differ.

use schemars::{JsonSchema, generate::SchemaSettings};

use crate::config::Config;
use crate::manifest::ManifestDoc;

/// Base of every schema's `$id`.
pub const ID_BASE: &str = "https://sealops.dev/schemas/";

/// `(file name, pretty JSON)` of every schema.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        (
            "sealed-secret.v1.json",
            render::<ManifestDoc>("sealed-secret.v1.json"),
        ),
        ("config.v1.json", render::<Config>("config.v1.json")),
        (
            "identity.v1.json",
            render::<crate::policy::IdentityDoc>("identity.v1.json"),
        ),
        (
            "target.v1.json",
            render::<crate::target::Target>("target.v1.json"),
        ),
        (
            "backend.v1.json",
            render::<crate::backend::Backend>("backend.v1.json"),
        ),
        (
            "controller.v1.json",
            render::<crate::controller_config::ControllerConfig>("controller.v1.json"),
        ),
        (
            "controllers.v1.json",
            render::<crate::audit::registry::ControllersDoc>("controllers.v1.json"),
        ),
        (
            "audit-record.v1.json",
            render::<crate::audit::Record>("audit-record.v1.json"),
        ),
    ]
}

fn render<T: JsonSchema>(file: &str) -> String {
    let generator = SchemaSettings::draft2020_12().into_generator();
    let mut schema = generator.into_root_schema_for::<T>();
    schema.insert("$id".to_owned(), format!("{ID_BASE}{file}").into());
    let mut text = serde_json::to_string_pretty(&schema).expect("a schema serialises");
    text.push('\n');
    text
}
