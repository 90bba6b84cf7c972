//! Layered loading: figment merge, deserialisation that collects every
//! problem, then validation.

use std::fmt;
use std::path::PathBuf;

use figment::providers::{Format, Serialized, Toml};
use figment::value::{Dict, Value};
use figment::{Figment, error::Kind};

use super::env::{PrefixedEnv, seed_providers};
use super::provenance::{Defaults, Provenance};
use super::{Config, validate};

/// One thing wrong with the configuration, with the key and where its value
/// came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The dotted key (`consumer.max_poll_records`); empty for problems that
    /// concern a whole source, such as a TOML syntax error.
    pub key: String,
    /// Where the value came from: `path:line`, `environment variable NAME`,
    /// or `built-in default`.
    pub source: String,
    /// What is wrong, and what is expected.
    pub message: String,
}

impl Problem {
    pub(crate) fn new(
        key: impl Into<String>,
        source: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            key: key.into(),
            source: source.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.source, self.message)
        } else {
            write!(f, "{}: {} (from {})", self.key, self.message, self.source)
        }
    }
}

/// The configuration could not be loaded; every problem found is listed.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    /// Every problem, in the order found.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "invalid configuration ({n} problem{}):",
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  - {p}")?;
        }
        Ok(())
    }
}

/// What to load.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// An explicit file (`--config`): it must exist.
    pub config_file: Option<PathBuf>,
    /// Loaded when no explicit file is given and it exists.
    pub default_file: PathBuf,
}

impl Default for LoadOptions {
    fn default() -> Self {
        Self {
            config_file: None,
            default_file: PathBuf::from("config/default.toml"),
        }
    }
}

/// A loaded, validated configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// Where each value came from.
    pub provenance: Provenance,
    /// The TOML file that was read, if any.
    pub file: Option<PathBuf>,
}

/// Loads defaults, the TOML file and the environment, and validates the
/// result. Every problem is reported in one [`ConfigError`].
pub fn load(options: &LoadOptions) -> Result<Loaded, ConfigError> {
    let mut problems = Vec::new();
    let mut figment = Figment::from(Defaults);

    let file = match &options.config_file {
        Some(path) if !path.is_file() => {
            problems.push(Problem::new(
                "",
                path.display().to_string(),
                "configuration file not found (given with --config or KAFKA_ACTORS_CONFIG)",
            ));
            None
        }
        Some(path) => Some(path.clone()),
        None => options
            .default_file
            .is_file()
            .then(|| options.default_file.clone()),
    };
    if let Some(path) = &file {
        figment = figment.merge(Toml::file(path));
    }

    let (seeds, seed_problems) = seed_providers(&|name| std::env::var(name).ok());
    problems.extend(seed_problems);
    for provider in seeds {
        figment = figment.merge(provider);
    }
    figment = figment.merge(PrefixedEnv::new());

    let provenance = Provenance::new(figment.clone());
    let merged: Dict = match figment.extract() {
        Ok(dict) => dict,
        Err(errors) => {
            // A source that cannot be read at all (TOML syntax error).
            for e in errors {
                let source = e
                    .metadata
                    .as_ref()
                    .map(|md| match &md.source {
                        Some(figment::Source::File(p)) => p.display().to_string(),
                        _ => md.name.to_string(),
                    })
                    .unwrap_or_default();
                problems.push(Problem::new(
                    "",
                    source,
                    without_source_lines(&e.kind.to_string()),
                ));
            }
            return Err(ConfigError { problems });
        }
    };

    let config = deserialize_collecting(merged, &provenance, &mut problems).map(|mut config| {
        derive_defaults(&mut config, &provenance);
        config
    });
    if let Some(config) = &config {
        validate::validate(config, &provenance, &mut problems);
    }
    match config {
        Some(config) if problems.is_empty() => Ok(Loaded {
            config,
            provenance,
            file,
        }),
        _ => Err(ConfigError { problems }),
    }
}

/// Deserialises `dict` into a [`Config`]. serde stops at the first error, so
/// each failing key is recorded, removed (its default then applies), and the
/// attempt repeated: the user sees every bad key in one run.
fn deserialize_collecting(
    mut dict: Dict,
    provenance: &Provenance,
    problems: &mut Vec<Problem>,
) -> Option<Config> {
    // Each round removes one key, so this ends; the bound is a backstop.
    for _ in 0..256 {
        // Lossy: `KAFKA_ACTORS_*` values arrive as strings ("500", "true").
        let err = match Figment::from(Serialized::defaults(&dict)).extract_lossy::<Config>() {
            Ok(config) => return Some(config),
            Err(err) => err,
        };
        let mut path = err.path.clone();
        let message = match &err.kind {
            Kind::UnknownField(field, expected) => {
                if path.last() != Some(field) {
                    path.push(field.clone());
                }
                format!("unknown key; expected one of: {}", expected.join(", "))
            }
            kind => kind.to_string(),
        };
        // A failing list element is reported (and removed) as its list.
        let path = list_prefix(&dict, &path);
        let key = path.join(".");
        let message = if is_secret_key(&key) {
            "invalid value (not shown: it is a secret); expected a string".to_owned()
        } else {
            tidy(&message)
        };
        problems.push(Problem::new(&key, provenance.source_of(&key), message));
        if path.is_empty() || !remove(&mut dict, &path) {
            return None;
        }
    }
    None
}

/// Defaults that depend on other keys. `consumer.heartbeat_interval_ms`,
/// when nobody set it, is 3000 ms or a third of the session timeout when
/// that is lower (Kafka's guidance), so every session timeout seed 000
/// allows (1000-300000) works without touching the heartbeat.
fn derive_defaults(config: &mut Config, provenance: &Provenance) {
    let consumer = &mut config.consumer;
    if provenance.is_default("consumer.heartbeat_interval_ms") {
        consumer.heartbeat_interval_ms = consumer
            .heartbeat_interval_ms
            .min(consumer.session_timeout_ms / 3)
            .max(1);
    }
}

/// Keys whose values are secrets: their values never appear in messages.
fn is_secret_key(key: &str) -> bool {
    key.ends_with("password")
}

/// figment quotes names with backticks and serde adds its own; keep one.
fn tidy(message: &str) -> String {
    message.replace("``", "`")
}

/// `path` cut at the first list on the way: serde reports a bad element as
/// `key.N`, and the element cannot be removed on its own.
fn list_prefix(dict: &Dict, path: &[String]) -> Vec<String> {
    let mut current = dict;
    for (i, part) in path.iter().enumerate() {
        match current.get(part) {
            Some(Value::Dict(_, inner)) => current = inner,
            Some(Value::Array(..)) => return path[..=i].to_vec(),
            _ => break,
        }
    }
    path.to_vec()
}

/// The first line of a TOML parse error ("TOML parse error at line 3,
/// column 8") and its message, without the quoted source line, which may
/// hold a secret.
fn without_source_lines(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains('|'))
        .collect::<Vec<_>>()
        .join(": ")
}

fn remove(dict: &mut Dict, path: &[String]) -> bool {
    match path {
        [] => false,
        [last] => dict.remove(last).is_some(),
        [first, rest @ ..] => match dict.get_mut(first) {
            Some(Value::Dict(_, inner)) => remove(inner, rest),
            _ => false,
        },
    }
}
