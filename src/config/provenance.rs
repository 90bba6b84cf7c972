//! Where each configuration value came from.

use std::path::Path;

use figment::providers::Serialized;
use figment::value::{Dict, Map};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::Config;

/// Name of the metadata of the built-in defaults layer.
pub(crate) const DEFAULTS_NAME: &str = "built-in default";
/// Name of the metadata of the `KAFKA_ACTORS_*` layer (its interpolater
/// gives the exact variable).
pub(crate) const PREFIXED_ENV_NAME: &str = "environment variable";

/// The built-in defaults as a provider named [`DEFAULTS_NAME`].
pub(crate) struct Defaults;

impl Provider for Defaults {
    fn metadata(&self) -> Metadata {
        Metadata::named(DEFAULTS_NAME)
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::defaults(Config::default()).data()
    }
}

/// Answers "where did the value of this key come from?" for a loaded
/// configuration: `config/app.toml:12`, `environment variable
/// KAFKA_MAX_POLL_RECORDS`, or `built-in default`.
#[derive(Debug, Clone)]
pub struct Provenance {
    figment: Figment,
}

impl Provenance {
    pub(crate) fn new(figment: Figment) -> Self {
        Self { figment }
    }

    /// Where the value at the dotted `key` came from. A key that no layer
    /// sets has its built-in default (serde fills it in), whatever set its
    /// parent table.
    pub fn source_of(&self, key: &str) -> String {
        match self.figment.find_metadata(key) {
            Some(md) if self.figment.find_value(key).is_ok() => describe(md, key),
            _ => DEFAULTS_NAME.to_owned(),
        }
    }

    /// Whether no layer but the built-in defaults sets `key`.
    pub fn is_default(&self, key: &str) -> bool {
        self.source_of(key) == DEFAULTS_NAME
    }
}

fn describe(md: &Metadata, key: &str) -> String {
    if let Some(Source::File(path)) = &md.source {
        return match line_of(path, key) {
            Some(line) => format!("{}:{line}", path.display()),
            None => path.display().to_string(),
        };
    }
    if md.name == PREFIXED_ENV_NAME {
        let keys: Vec<&str> = key.split('.').collect();
        return format!("{} {}", md.name, md.interpolate(&Profile::Default, &keys));
    }
    md.name.to_string()
}

/// The 1-based line of `key` (dotted) in the TOML file at `path`: the
/// deepest part of the key that the file has.
pub(crate) fn line_of(path: &Path, key: &str) -> Option<usize> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc = toml_edit::Document::parse(text.as_str()).ok()?;
    let mut span = None;
    let mut item = doc.as_item();
    for part in key.split('.') {
        match item {
            toml_edit::Item::Table(t) => {
                let (Some(k), Some(next)) = (t.key(part), t.get(part)) else {
                    break;
                };
                span = k.span().or(span);
                item = next;
            }
            // Keys inside an inline table sit on the table's line.
            toml_edit::Item::Value(toml_edit::Value::InlineTable(t)) => {
                if let Some(k) = t.key(part) {
                    span = k.span().or(span);
                }
                break;
            }
            _ => break,
        }
    }
    let start = span?.start;
    Some(text[..start].matches('\n').count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_of_nested_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "# comment\n[kafka]\nclient_id = \"x\"\n\n[consumer]\nmax_poll_records = 5\n",
        )
        .unwrap();
        assert_eq!(line_of(&path, "kafka.client_id"), Some(3));
        assert_eq!(line_of(&path, "consumer.max_poll_records"), Some(6));
        assert_eq!(line_of(&path, "consumer"), Some(5));
        assert_eq!(line_of(&path, "consumer.missing"), Some(5));
    }
}
