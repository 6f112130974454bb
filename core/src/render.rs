//! Rendering a secret's values into file content: raw, dotenv, JSON, YAML, template and
//! Kubernetes Secret. Used by `sealops reveal` and by the controller's outputs, so both print a
//! value the same way. Output buffers are zeroed on drop.

use std::collections::BTreeMap;

use base64::Engine;
use zeroize::Zeroizing;

use crate::secret::SecretValue;
use crate::target::{KubernetesMeta, Output, OutputFormat};

/// Why values could not be rendered. Never contains a value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RenderError {
    #[error("no key named {key}")]
    MissingKey { key: String },
    #[error(
        "the value of {key} is binary and cannot be written as {format}; use format raw (or kubernetes-secret)"
    )]
    Binary { key: String, format: &'static str },
    #[error("key {key} is not a valid environment variable name; use json or yaml")]
    NotAnEnvName { key: String },
    #[error("template: {0}")]
    Template(String),
}

fn text<'v>(
    key: &str,
    value: &'v SecretValue,
    format: &'static str,
) -> Result<&'v str, RenderError> {
    value.expose_str().ok_or_else(|| RenderError::Binary {
        key: key.to_owned(),
        format,
    })
}

/// A JSON string literal (also a valid YAML double-quoted scalar) in a zeroed-on-drop buffer.
pub fn json_string(text: &str) -> Zeroizing<String> {
    let mut buffer = Zeroizing::new(Vec::with_capacity(text.len() + 2));
    serde_json::to_writer(&mut *buffer, text).expect("writing a string to memory cannot fail");
    Zeroizing::new(String::from_utf8(std::mem::take(&mut *buffer)).expect("JSON is UTF-8"))
}

/// `KEY='value'` lines (single quotes, `'` escaped as `'\''`): safe for `source` and dotenv readers.
pub fn dotenv(values: &BTreeMap<String, SecretValue>) -> Result<Zeroizing<String>, RenderError> {
    let mut out = Zeroizing::new(String::new());
    for (key, value) in values {
        let is_env_name = key.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_env_name {
            return Err(RenderError::NotAnEnvName { key: key.clone() });
        }
        let value = text(key, value, "dotenv")?;
        out.push_str(key);
        out.push_str("='");
        out.push_str(&value.replace('\'', "'\\''"));
        out.push_str("'\n");
    }
    Ok(out)
}

/// A pretty JSON object, each line after the first indented by `indent`.
pub fn json(
    values: &BTreeMap<String, SecretValue>,
    indent: &str,
) -> Result<Zeroizing<String>, RenderError> {
    let mut out = Zeroizing::new(String::from("{"));
    for (index, (key, value)) in values.iter().enumerate() {
        out.push_str(if index == 0 { "\n" } else { ",\n" });
        out.push_str(indent);
        out.push_str("  ");
        out.push_str(&json_string(key));
        out.push_str(": ");
        out.push_str(&json_string(text(key, value, "json")?));
    }
    if !values.is_empty() {
        out.push('\n');
        out.push_str(indent);
    }
    out.push('}');
    Ok(out)
}

/// `KEY: "value"` lines.
pub fn yaml(values: &BTreeMap<String, SecretValue>) -> Result<Zeroizing<String>, RenderError> {
    let mut out = Zeroizing::new(String::new());
    for (key, value) in values {
        out.push_str(&crate::yaml::scalar(key));
        out.push_str(": ");
        out.push_str(&json_string(text(key, value, "yaml")?));
        out.push('\n');
    }
    Ok(out)
}

/// A minijinja template; a missing key is an error, not an empty string.
pub fn template(
    source: &str,
    values: &BTreeMap<String, SecretValue>,
) -> Result<Zeroizing<String>, RenderError> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    let mut pairs = BTreeMap::new();
    for (key, value) in values {
        // minijinja keeps its own (not zeroed) copies for the length of the render.
        pairs.insert(
            key.clone(),
            minijinja::Value::from(text(key, value, "template")?),
        );
    }
    let context = minijinja::Value::from(pairs);
    let rendered = env
        .render_str(source, context)
        .map_err(|e| RenderError::Template(describe_template_error(&e)))?;
    Ok(Zeroizing::new(rendered))
}

/// minijinja's Display may quote template source; say what and where only.
fn describe_template_error(error: &minijinja::Error) -> String {
    let mut message = match error.kind() {
        minijinja::ErrorKind::UndefinedError => {
            "a key the template uses does not exist in the secret".to_owned()
        }
        kind => kind.to_string(),
    };
    if let Some(detail) = error.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    if let Some(line) = error.line() {
        message.push_str(&format!(" (template line {line})"));
    }
    message
}

/// A `v1 Secret` manifest with base64 `data`.
pub fn kubernetes_secret(
    meta: &KubernetesMeta,
    values: &BTreeMap<String, SecretValue>,
) -> Zeroizing<String> {
    let mut out = Zeroizing::new(String::from("apiVersion: v1\nkind: Secret\nmetadata:\n"));
    out.push_str(&format!("  name: {}\n", json_string(&meta.name).as_str()));
    if let Some(namespace) = &meta.namespace {
        out.push_str(&format!(
            "  namespace: {}\n",
            json_string(namespace).as_str()
        ));
    }
    for (section, map) in [("labels", &meta.labels), ("annotations", &meta.annotations)] {
        if !map.is_empty() {
            out.push_str(&format!("  {section}:\n"));
            for (k, v) in map {
                out.push_str(&format!(
                    "    {}: {}\n",
                    json_string(k).as_str(),
                    json_string(v).as_str()
                ));
            }
        }
    }
    out.push_str(&format!(
        "type: {}\n",
        json_string(meta.r#type.as_deref().unwrap_or("Opaque")).as_str()
    ));
    out.push_str(if values.is_empty() {
        "data: {}\n"
    } else {
        "data:\n"
    });
    let engine = base64::engine::general_purpose::STANDARD;
    for (key, value) in values {
        out.push_str("  ");
        out.push_str(&json_string(key));
        out.push_str(": ");
        out.push_str(&Zeroizing::new(engine.encode(value.expose())));
        out.push('\n');
    }
    out
}

/// The content of one output file.
pub fn output(
    output: &Output,
    values: &BTreeMap<String, SecretValue>,
) -> Result<Zeroizing<Vec<u8>>, RenderError> {
    let text = match output.format {
        OutputFormat::Raw => {
            let key = output.key.as_deref().unwrap_or_default();
            let value = values.get(key).ok_or_else(|| RenderError::MissingKey {
                key: key.to_owned(),
            })?;
            return Ok(Zeroizing::new(value.expose().to_vec()));
        }
        OutputFormat::Dotenv => dotenv(values)?,
        OutputFormat::Json => {
            let mut json = json(values, "")?;
            json.push('\n');
            json
        }
        OutputFormat::Yaml => yaml(values)?,
        OutputFormat::Template => template(output.template.as_deref().unwrap_or_default(), values)?,
        OutputFormat::KubernetesSecret => {
            let meta = output
                .kubernetes
                .as_ref()
                .ok_or_else(|| RenderError::Template("kubernetes metadata missing".into()))?;
            kubernetes_secret(meta, values)
        }
    };
    Ok(Zeroizing::new(text.as_bytes().to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> BTreeMap<String, SecretValue> {
        BTreeMap::from([
            ("PASSWORD".to_owned(), SecretValue::from("it's s3cret")),
            ("USER".to_owned(), SecretValue::from("app")),
        ])
    }

    #[test]
    fn formats() {
        assert_eq!(
            dotenv(&values()).expect("renders").as_str(),
            "PASSWORD='it'\\''s s3cret'\nUSER='app'\n"
        );
        assert_eq!(
            yaml(&values()).expect("renders").as_str(),
            "PASSWORD: \"it's s3cret\"\nUSER: \"app\"\n"
        );
        assert_eq!(
            json(&values(), "").expect("renders").as_str(),
            "{\n  \"PASSWORD\": \"it's s3cret\",\n  \"USER\": \"app\"\n}"
        );
        let secret = kubernetes_secret(
            &KubernetesMeta {
                name: "db".into(),
                namespace: Some("payments".into()),
                labels: BTreeMap::from([("app".into(), "payments".into())]),
                annotations: BTreeMap::new(),
                r#type: None,
            },
            &values(),
        );
        assert!(
            secret.contains("kind: Secret\n") && secret.contains("  \"USER\": YXBw\n"),
            "{}",
            secret.as_str()
        );
    }

    #[test]
    fn template_missing_key_is_an_error_without_the_values() {
        let rendered =
            template("postgres://{{ USER }}:{{ PASSWORD }}@db/app", &values()).expect("renders");
        assert_eq!(rendered.as_str(), "postgres://app:it's s3cret@db/app");
        let err = template("{{ USER }} {{ MISSING }}", &values()).unwrap_err();
        let message = err.to_string();
        assert!(message.contains("does not exist"), "{message}");
        assert!(
            !message.contains("s3cret") && !message.contains("app"),
            "{message}"
        );
    }

    #[test]
    fn binary_values_only_in_raw_and_kubernetes() {
        let binary = BTreeMap::from([("K".to_owned(), SecretValue::new(vec![0xff, 0x00]))]);
        assert!(matches!(dotenv(&binary), Err(RenderError::Binary { .. })));
        assert!(
            kubernetes_secret(
                &KubernetesMeta {
                    name: "x".into(),
                    namespace: None,
                    labels: BTreeMap::new(),
                    annotations: BTreeMap::new(),
                    r#type: None
                },
                &binary
            )
            .contains("\"K\": /wA=")
        );
    }
}
