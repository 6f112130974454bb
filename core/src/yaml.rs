//! YAML reading with errors that name file, line and column, and never quote the input.
//!
//! serde-saphyr's rendered errors include a snippet of the source; a manifest line may hold a
//! plaintext written by mistake, so errors here carry the location and message only.

use std::fmt;

use serde::de::DeserializeOwned;
use serde_saphyr::{SnippetMode, render_options};

/// Where in a file something is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    pub line: Option<u64>,
    pub column: Option<u64>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        Ok(())
    }
}

/// A YAML file (manifest, target, policy, configuration, …) that cannot be read.
#[derive(Debug, thiserror::Error)]
#[error("{location}: {problem}")]
pub struct FileError {
    pub location: Location,
    pub problem: String,
}

/// Deserialises `text`; errors carry `file:line:column`.
pub fn from_str<T: DeserializeOwned>(text: &str, file: &str) -> Result<T, FileError> {
    serde_saphyr::from_str::<T>(text).map_err(|error| {
        let location = error.location();
        let message = error.render_with_options(render_options! { snippets: SnippetMode::Off });
        // The plain rendering appends " at line L column C"; the location is shown up front.
        let message = match message.rfind(" at line ") {
            Some(index) => message[..index].to_owned(),
            None => message,
        };
        FileError {
            location: Location {
                file: file.to_owned(),
                line: location.map(|l| l.line()).filter(|l| *l > 0),
                column: location.map(|l| l.column()).filter(|c| *c > 0),
            },
            problem: message,
        }
    })
}

/// Deserialises `text` and runs `validate`, whose errors name the top-level section at fault;
/// the error then points at that section's line.
pub fn from_str_validated<T: DeserializeOwned>(
    text: &str,
    file: &str,
    validate: impl FnOnce(&T) -> Result<(), (&'static str, String)>,
) -> Result<T, FileError> {
    validated(from_str(text, file)?, text, file, validate)
}

/// `value` (read from `text`) if `validate` accepts it; its error names the top-level section
/// at fault, and points at that section's line.
pub fn validated<T>(
    value: T,
    text: &str,
    file: &str,
    validate: impl FnOnce(&T) -> Result<(), (&'static str, String)>,
) -> Result<T, FileError> {
    validate(&value).map_err(|(section, problem)| FileError {
        location: Location {
            file: file.to_owned(),
            line: find_line(text, section, None),
            column: None,
        },
        problem,
    })?;
    Ok(value)
}

/// The dotted path of the mapping key on 1-based `line` (`poll.interval`), from the keys of
/// the less indented lines above it; `None` when the line holds no `key:`.
pub fn key_path_at(text: &str, line: u64) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let index = usize::try_from(line).ok()?.checked_sub(1)?;
    let key_of = |line: &str| -> Option<(usize, String)> {
        let entry = line.trim_start();
        let indent = line.len() - entry.len();
        let entry = entry.strip_prefix("- ").unwrap_or(entry);
        let (key, _) = entry.split_once(':')?;
        let key = key.trim().trim_matches('"');
        (!key.is_empty() && !key.starts_with('#')).then(|| (indent, key.to_owned()))
    };
    let (mut indent, key) = key_of(lines.get(index)?)?;
    let mut path = vec![key];
    for above in lines[..index].iter().rev() {
        if indent == 0 {
            break;
        }
        if let Some((their_indent, key)) = key_of(above)
            && their_indent < indent
        {
            path.push(key);
            indent = their_indent;
        }
    }
    path.reverse();
    Some(path.join("."))
}

/// The 1-based line of top-level `section:` or, with `key`, of `key:` inside that section.
///
/// Manifests are written canonically (two-space indent), which is what this looks for; a
/// hand-formatted file may give `None`, and errors then name the file only.
pub fn find_line(text: &str, section: &str, key: Option<&str>) -> Option<u64> {
    let mut in_section = false;
    for (index, line) in text.lines().enumerate() {
        let indented = line.starts_with(' ');
        if !indented {
            in_section = line.split(':').next() == Some(section);
            if in_section && key.is_none() {
                return Some(index as u64 + 1);
            }
            continue;
        }
        if let (true, Some(key)) = (in_section, key) {
            let entry = line.trim_start();
            let name = entry
                .split(':')
                .next()
                .unwrap_or_default()
                .trim_matches('"');
            if name == key && line.len() - entry.len() == 2 {
                return Some(index as u64 + 1);
            }
        }
    }
    None
}

/// A scalar written plain when YAML reads it back as the same string, else JSON-quoted (JSON
/// strings are valid YAML double-quoted scalars).
pub fn scalar(text: &str) -> String {
    const SPECIAL: [&str; 9] = ["y", "yes", "n", "no", "true", "false", "on", "off", "null"];
    let starts_well = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_');
    let plain_safe = text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/') || c == ':');
    let ends_well = !text.ends_with(':');
    if starts_well
        && plain_safe
        && ends_well
        && !SPECIAL.contains(&text.to_ascii_lowercase().as_str())
    {
        text.to_owned()
    } else {
        serde_json::to_string(text).expect("a string serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_paths_follow_indentation() {
        let text = "poll:\n  interval: soon\nhooks:\n  reload:\n    command: [x]\n    timeout: 1q\nname: n\n";
        assert_eq!(key_path_at(text, 2).as_deref(), Some("poll.interval"));
        assert_eq!(
            key_path_at(text, 6).as_deref(),
            Some("hooks.reload.timeout")
        );
        assert_eq!(key_path_at(text, 7).as_deref(), Some("name"));
        assert_eq!(key_path_at(text, 99), None);
    }

    #[test]
    fn finds_sections_and_keys() {
        let text = "sealops: v1\ndata:\n  A: x\n  \"yes\": y\nplain:\n  A: z\n";
        assert_eq!(find_line(text, "data", None), Some(2));
        assert_eq!(find_line(text, "data", Some("yes")), Some(4));
        assert_eq!(find_line(text, "plain", Some("A")), Some(6));
        assert_eq!(find_line(text, "plain", Some("B")), None);
    }
}
