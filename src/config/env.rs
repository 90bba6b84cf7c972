//! Environment variables: the seed documents' names, and `KAFKA_ACTORS_*`.
//!
//! Each seed variable becomes its own figment provider whose metadata names
//! the variable, so an error about its value says which variable to fix.
//! Values are converted here (comma lists, `500ms`, `true`/`1`) so a bad one
//! is reported with the variable's name and the expected form.

use std::collections::BTreeMap;

use figment::providers::{Env, Serialized};
use figment::value::{Dict, Map};
use figment::{Metadata, Profile, Provider};
use serde::Serialize;

use super::de::split_host_list;
use super::load::Problem;

/// Prefix of the generic variables: `KAFKA_ACTORS_CONSUMER__MAX_POLL_RECORDS`
/// sets `consumer.max_poll_records` (`__` separates nesting levels).
pub const ENV_PREFIX: &str = "KAFKA_ACTORS_";

/// `KAFKA_ACTORS_*` names that are not configuration keys (they are read by
/// the CLI) and so are not reported as unknown keys; so are the test
/// harness's `KAFKA_ACTORS_TEST_*`.
const RESERVED: &[&str] = &["CONFIG", "CACHE"];
const RESERVED_PREFIX: &str = "TEST_";

/// The configuration keys that hold secrets. Each can also be read from a
/// file named by a `*_FILE` variable (see [`SEED_VARIABLES`]), and none is
/// shown in an error message.
pub const SECRET_KEYS: &[&str] = &[
    "kafka.security.sasl.password",
    "kafka.security.ssl.key_password",
    "http.admin_token",
];

/// How a seed variable's text becomes a configuration value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Taken as it is.
    Text,
    /// Lower-cased (`EARLIEST` works like `earliest`).
    Lower,
    /// Upper-cased (`sasl_ssl` works like `SASL_SSL`).
    Upper,
    /// A whole number.
    Integer,
    /// `true`/`false`, `1`/`0`, `yes`/`no`.
    Bool,
    /// `host:port` list, comma-separated or a JSON list.
    HostList,
    /// A duration such as `500ms` or `2s` (a bare number is milliseconds),
    /// stored in milliseconds.
    DurationMs,
    /// The name of a file whose content is the value (a secret mounted by
    /// Docker or Kubernetes); one trailing line break is dropped.
    File,
}

/// One environment variable the seed documents define.
#[derive(Debug, Clone, Copy)]
pub struct SeedVariable {
    /// The variable's name.
    pub name: &'static str,
    /// The configuration key it sets.
    pub key: &'static str,
    /// How its value is read.
    pub kind: ValueKind,
}

const fn v(name: &'static str, key: &'static str, kind: ValueKind) -> SeedVariable {
    SeedVariable { name, key, kind }
}

use ValueKind::{Bool, DurationMs, File, HostList, Integer, Lower, Text, Upper};

/// Every seed variable, in precedence order within a key (all of a key's
/// variables must agree when several are set).
#[rustfmt::skip]
pub const SEED_VARIABLES: &[SeedVariable] = &[
    v("KAFKA_BOOTSTRAP_SERVERS", "kafka.bootstrap_servers", HostList),
    v("KAFKA_BROKERS", "kafka.bootstrap_servers", HostList),
    v("KAFKA_CLIENT_ID", "kafka.client_id", Text),
    v("KAFKA_CONSUMER_GROUP", "consumer.group_id", Text),
    v("KAFKA_GROUP_ID", "consumer.group_id", Text),
    v("KAFKA_CONSUMER_GROUP_ID", "consumer.group_id", Text),
    v("KAFKA_AUTO_OFFSET_RESET", "consumer.auto_offset_reset", Lower),
    v("KAFKA_CONSUMER_AUTO_OFFSET_RESET", "consumer.auto_offset_reset", Lower),
    v("KAFKA_ENABLE_AUTO_COMMIT", "consumer.enable_auto_commit", Bool),
    v("KAFKA_CONSUMER_ENABLE_AUTO_COMMIT", "consumer.enable_auto_commit", Bool),
    v("KAFKA_MAX_POLL_RECORDS", "consumer.max_poll_records", Integer),
    v("KAFKA_CONSUMER_MAX_POLL_RECORDS", "consumer.max_poll_records", Integer),
    v("KAFKA_SESSION_TIMEOUT_MS", "consumer.session_timeout_ms", Integer),
    v("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "consumer.session_timeout_ms", Integer),
    v("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "consumer.heartbeat_interval_ms", Integer),
    v("KAFKA_CONSUMER_FETCH_MIN_BYTES", "consumer.fetch_min_bytes", Integer),
    v("KAFKA_MAX_WAIT_TIME", "consumer.fetch_max_wait_ms", DurationMs),
    v("KAFKA_PRODUCER_ACKS", "producer.acks", Lower),
    v("KAFKA_REQUIRED_ACKS", "producer.acks", Lower),
    v("KAFKA_PRODUCER_COMPRESSION_TYPE", "producer.compression_type", Lower),
    v("KAFKA_COMPRESSION", "producer.compression_type", Lower),
    v("KAFKA_PRODUCER_LINGER_MS", "producer.linger_ms", Integer),
    v("KAFKA_PRODUCER_BATCH_SIZE", "producer.batch_size", Integer),
    v("KAFKA_PRODUCER_RETRIES", "producer.retries", Integer),
    v("KAFKA_PRODUCER_RETRY_BACKOFF_MS", "producer.retry_backoff_ms", Integer),
    v("KAFKA_TOPIC_AUTO_CREATE", "topic_manager.auto_create", Bool),
    v("KAFKA_TOPIC_CREATION_TIMEOUT", "topic_manager.creation_timeout_secs", Integer),
    v("KAFKA_TOPIC_CREATION_RETRIES", "topic_manager.creation_retries", Integer),
    v("KAFKA_TOPIC_CREATION_RETRY_DELAY", "topic_manager.creation_retry_delay_secs", Integer),
    v("KAFKA_TOPIC_REQUESTS", "topics.requests.name", Text),
    v("KAFKA_TOPIC_REQUESTS_PARTITIONS", "topics.requests.partitions", Integer),
    v("KAFKA_TOPIC_REQUESTS_REPLICATION", "topics.requests.replication_factor", Integer),
    v("KAFKA_TOPIC_RESPONSES", "topics.responses.name", Text),
    v("KAFKA_TOPIC_RESPONSES_PARTITIONS", "topics.responses.partitions", Integer),
    v("KAFKA_TOPIC_RESPONSES_REPLICATION", "topics.responses.replication_factor", Integer),
    v("KAFKA_TOPIC_DLQ", "topics.dlq.name", Text),
    v("KAFKA_TOPIC_DLQ_PARTITIONS", "topics.dlq.partitions", Integer),
    v("KAFKA_TOPIC_DLQ_REPLICATION", "topics.dlq.replication_factor", Integer),
    v("KAFKA_CODEGEN_VALIDATE_REQUEST", "topics.codegen_validate_request.name", Text),
    v("KAFKA_CODEGEN_ANALYZE_REQUEST", "topics.codegen_analyze_request.name", Text),
    v("KAFKA_CODEGEN_PATTERN_REQUEST", "topics.codegen_pattern_request.name", Text),
    v("KAFKA_CODEGEN_MIXIN_REQUEST", "topics.codegen_mixin_request.name", Text),
    v("KAFKA_CODEGEN_VALIDATE_RESPONSE", "topics.codegen_validate_response.name", Text),
    v("KAFKA_CODEGEN_ANALYZE_RESPONSE", "topics.codegen_analyze_response.name", Text),
    v("KAFKA_CODEGEN_PATTERN_RESPONSE", "topics.codegen_pattern_response.name", Text),
    v("KAFKA_CODEGEN_MIXIN_RESPONSE", "topics.codegen_mixin_response.name", Text),
    v("KAFKA_SECURITY_PROTOCOL", "kafka.security.protocol", Upper),
    v("KAFKA_SASL_MECHANISM", "kafka.security.sasl.mechanism", Upper),
    v("KAFKA_SASL_USERNAME", "kafka.security.sasl.username", Text),
    v("KAFKA_SASL_PASSWORD", "kafka.security.sasl.password", Text),
    v("KAFKA_SSL_CAFILE", "kafka.security.ssl.ca_file", Text),
    v("KAFKA_SSL_CA_LOCATION", "kafka.security.ssl.ca_file", Text),
    v("KAFKA_SSL_CERTFILE", "kafka.security.ssl.cert_file", Text),
    v("KAFKA_SSL_KEYFILE", "kafka.security.ssl.key_file", Text),
    v("KAFKA_SSL_PASSWORD", "kafka.security.ssl.key_password", Text),
    v("KAFKA_SSL_CHECK_HOSTNAME", "kafka.security.ssl.check_hostname", Bool),
    v("KAFKA_SASL_PASSWORD_FILE", "kafka.security.sasl.password", File),
    v("KAFKA_SSL_PASSWORD_FILE", "kafka.security.ssl.key_password", File),
    v("KAFKA_ACTORS_KAFKA__SECURITY__SASL__PASSWORD_FILE", "kafka.security.sasl.password", File),
    v("KAFKA_ACTORS_KAFKA__SECURITY__SSL__KEY_PASSWORD_FILE", "kafka.security.ssl.key_password", File),
    v("KAFKA_ACTORS_HTTP__ADMIN_TOKEN_FILE", "http.admin_token", File),
];

/// Seed 003's switch: `true` means `security.protocol = SSL`.
pub const USE_SSL_VARIABLE: &str = "KAFKA_USE_SSL";

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub(crate) enum Converted {
    Text(String),
    Integer(i64),
    Bool(bool),
    List(Vec<String>),
}

/// One set seed variable, as a figment provider.
pub(crate) struct SeedProvider {
    var: &'static str,
    key: &'static str,
    value: Converted,
}

/// How the metadata of a seed provider is named; [`super::Provenance`]
/// prints it as it is.
pub(crate) fn seed_source_name(var: &str) -> String {
    format!("environment variable {var}")
}

impl Provider for SeedProvider {
    fn metadata(&self) -> Metadata {
        Metadata::named(seed_source_name(self.var))
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Serialized::default(self.key, &self.value).data()
    }
}

fn convert(kind: ValueKind, raw: &str) -> Result<Converted, String> {
    let t = raw.trim();
    match kind {
        Text => Ok(Converted::Text(raw.to_owned())),
        Lower => Ok(Converted::Text(t.to_ascii_lowercase())),
        Upper => Ok(Converted::Text(t.to_ascii_uppercase())),
        Integer => t
            .parse::<i64>()
            .map(Converted::Integer)
            .map_err(|_| format!("expected a whole number, got `{raw}`")),
        Bool => parse_bool(t)
            .map(Converted::Bool)
            .ok_or_else(|| format!("expected true or false, got `{raw}`")),
        HostList => split_host_list(t).map(Converted::List),
        DurationMs => parse_duration_ms(t).map(Converted::Integer),
        File => {
            let text = std::fs::read_to_string(t).map_err(|e| format!("cannot read {t}: {e}"))?;
            let value = text
                .strip_suffix('\n')
                .map(|v| v.strip_suffix('\r').unwrap_or(v))
                .unwrap_or(&text);
            if value.is_empty() {
                return Err(format!("{t} is empty"));
            }
            Ok(Converted::Text(value.to_owned()))
        }
    }
}

fn parse_bool(t: &str) -> Option<bool> {
    match t.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn parse_duration_ms(t: &str) -> Result<i64, String> {
    if let Ok(ms) = t.parse::<i64>() {
        return Ok(ms);
    }
    let d = humantime::parse_duration(t)
        .map_err(|e| format!("expected a duration such as 500ms or 2s, got `{t}` ({e})"))?;
    i64::try_from(d.as_millis()).map_err(|_| format!("duration `{t}` is too long"))
}

/// Reads every seed variable through `lookup` and turns the set ones into
/// providers. Conversion errors and conflicting variables become problems.
pub(crate) fn seed_providers(
    lookup: &dyn Fn(&str) -> Option<String>,
) -> (Vec<SeedProvider>, Vec<Problem>) {
    let mut problems = Vec::new();
    // key -> (variable, value) in table order
    let mut by_key: BTreeMap<&'static str, Vec<(&'static str, Converted)>> = BTreeMap::new();

    for var in SEED_VARIABLES {
        // An empty value (`KAFKA_SSL_CAFILE=` in an .env file) means unset.
        let Some(raw) = lookup(var.name).filter(|v| !v.trim().is_empty()) else {
            continue;
        };
        match convert(var.kind, &raw) {
            Ok(value) => by_key.entry(var.key).or_default().push((var.name, value)),
            Err(message) => {
                problems.push(Problem::new(var.key, seed_source_name(var.name), message))
            }
        }
    }

    use_ssl(lookup, &mut by_key, &mut problems);

    let mut providers = Vec::new();
    for (key, set) in by_key {
        let Some((first_var, first)) = set.first().cloned() else {
            continue;
        };
        if set.iter().any(|(_, v)| *v != first) {
            let sources = set
                .iter()
                .map(|(n, _)| seed_source_name(n))
                .collect::<Vec<_>>()
                .join(" and ");
            let secret = SECRET_KEYS.contains(&key);
            let shown = set
                .iter()
                .map(|(n, v)| {
                    if secret {
                        format!("{n}={}", super::secret::REDACTED)
                    } else {
                        format!("{n}={}", display(v))
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            problems.push(Problem::new(
                key,
                sources,
                format!("conflicting environment variables {shown}; set only one"),
            ));
            continue;
        }
        providers.push(SeedProvider {
            var: first_var,
            key,
            value: first,
        });
    }
    (providers, problems)
}

fn display(value: &Converted) -> String {
    match value {
        Converted::Text(s) => s.clone(),
        Converted::Integer(i) => i.to_string(),
        Converted::Bool(b) => b.to_string(),
        Converted::List(l) => l.join(","),
    }
}

/// `KAFKA_USE_SSL` (seed 003) selects TLS without naming the protocol.
/// It must agree with `KAFKA_SECURITY_PROTOCOL` when both are set.
fn use_ssl(
    lookup: &dyn Fn(&str) -> Option<String>,
    by_key: &mut BTreeMap<&'static str, Vec<(&'static str, Converted)>>,
    problems: &mut Vec<Problem>,
) {
    const KEY: &str = "kafka.security.protocol";
    let Some(raw) = lookup(USE_SSL_VARIABLE).filter(|v| !v.trim().is_empty()) else {
        return;
    };
    let Some(on) = parse_bool(raw.trim()) else {
        problems.push(Problem::new(
            KEY,
            seed_source_name(USE_SSL_VARIABLE),
            format!("expected true or false, got `{raw}`"),
        ));
        return;
    };
    match by_key.get(KEY).and_then(|set| set.first()) {
        Some((name, Converted::Text(protocol))) => {
            let tls = protocol.ends_with("SSL");
            if tls != on {
                problems.push(Problem::new(
                    KEY,
                    format!(
                        "{} and {}",
                        seed_source_name(USE_SSL_VARIABLE),
                        seed_source_name(name)
                    ),
                    format!("{USE_SSL_VARIABLE}={raw} contradicts {name}={protocol}; set only one"),
                ));
            }
        }
        _ => {
            let protocol = if on { "SSL" } else { "PLAINTEXT" };
            by_key
                .entry(KEY)
                .or_default()
                .push((USE_SSL_VARIABLE, Converted::Text(protocol.to_owned())));
        }
    }
}

/// The `KAFKA_ACTORS_*` variables, with metadata that names the exact
/// variable a value came from.
pub(crate) struct PrefixedEnv(Env);

impl PrefixedEnv {
    pub(crate) fn new() -> Self {
        Self(Env::prefixed(ENV_PREFIX).split("__").filter(|k| {
            let k = k.as_str();
            !RESERVED.iter().any(|r| k.eq_ignore_ascii_case(r))
                        && !k
                            .get(..RESERVED_PREFIX.len())
                            .is_some_and(|p| p.eq_ignore_ascii_case(RESERVED_PREFIX))
                        // `*_FILE` variants of secrets are seed variables.
                        && !SECRET_KEYS.iter().any(|s| {
                            k.get(..s.len()).is_some_and(|h| h.eq_ignore_ascii_case(s))
                                && k.get(s.len()..).is_some_and(|t| t.eq_ignore_ascii_case("_file"))
                        })
        }))
    }
}

/// Kafka topic config names use dots, which variable names cannot hold:
/// `topics.orders.configs.retention_ms` (from
/// `KAFKA_ACTORS_TOPICS__ORDERS__CONFIGS__RETENTION_MS`) means
/// `retention.ms` in the table `topics.orders.configs`. No Kafka topic config
/// has an underscore in its name.
fn topic_config_name(key: &str) -> Option<(String, String)> {
    match key.split('.').collect::<Vec<_>>().as_slice() {
        ["topics", topic, "configs", name] => {
            Some((format!("topics.{topic}.configs"), name.replace('_', ".")))
        }
        _ => None,
    }
}

fn merge_into(into: &mut Dict, from: Dict) {
    for (k, v) in from {
        match (into.get_mut(&k), v) {
            (
                Some(figment::value::Value::Dict(_, existing)),
                figment::value::Value::Dict(_, new),
            ) => merge_into(existing, new),
            (_, v) => {
                into.insert(k, v);
            }
        }
    }
}

/// The variable that sets `keys` in the `KAFKA_ACTORS_*` scheme.
pub(crate) fn prefixed_name(keys: &[&str]) -> String {
    format!("{ENV_PREFIX}{}", keys.join("__").to_ascii_uppercase())
}

impl Provider for PrefixedEnv {
    fn metadata(&self) -> Metadata {
        Metadata::named("environment variable")
            .interpolater(|_: &Profile, keys: &[&str]| prefixed_name(keys))
    }

    /// Values stay strings (figment's `Env` would parse `123` as a number
    /// and `true` as a bool, and then refuse them for string keys such as
    /// `consumer.group_id`); the lossy extraction in `load` converts them
    /// where a number or bool is expected.
    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        let mut dict = Dict::new();
        for (key, value) in self.0.iter().filter(|(_, v)| !v.trim().is_empty()) {
            let value = match topic_config_name(key.as_str()) {
                // The name holds dots, so it must not be split into keys.
                Some((table, name)) => figment::util::nest(
                    &table,
                    Dict::from([(name, figment::value::Value::from(value))]).into(),
                ),
                None => figment::util::nest(key.as_str(), value.into()),
            };
            if let Some(nested) = value.into_dict() {
                merge_into(&mut dict, nested);
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn run(vars: &[(&str, &str)]) -> (Vec<SeedProvider>, Vec<Problem>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        seed_providers(&|name| map.get(name).cloned())
    }

    #[test]
    fn every_seed_variable_targets_a_known_key_shape() {
        for var in SEED_VARIABLES {
            assert!(var.name.starts_with("KAFKA_"), "{}", var.name);
            assert!(var.key.contains('.'), "{}", var.key);
        }
    }

    #[test]
    fn durations_and_booleans() {
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("2s"), Ok(2000));
        assert_eq!(parse_duration_ms("750"), Ok(750));
        assert!(parse_duration_ms("soon").is_err());
        assert_eq!(parse_bool("TRUE"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("maybe"), None);
    }

    #[test]
    fn agreeing_aliases_are_fine_and_differing_ones_are_reported() {
        let (p, problems) = run(&[("KAFKA_GROUP_ID", "g"), ("KAFKA_CONSUMER_GROUP", "g")]);
        assert!(problems.is_empty());
        assert_eq!(p.len(), 1);

        let (_, problems) = run(&[("KAFKA_GROUP_ID", "a"), ("KAFKA_CONSUMER_GROUP", "b")]);
        assert_eq!(problems.len(), 1);
        let text = problems[0].to_string();
        assert!(text.contains("KAFKA_CONSUMER_GROUP=b"), "{text}");
        assert!(text.contains("KAFKA_GROUP_ID=a"), "{text}");
    }

    #[test]
    fn use_ssl_maps_to_the_protocol_and_must_agree() {
        let (p, problems) = run(&[("KAFKA_USE_SSL", "true")]);
        assert!(problems.is_empty());
        assert_eq!(p[0].value, Converted::Text("SSL".into()));
        assert_eq!(p[0].var, USE_SSL_VARIABLE);

        let (_, problems) = run(&[
            ("KAFKA_USE_SSL", "true"),
            ("KAFKA_SECURITY_PROTOCOL", "sasl_ssl"),
        ]);
        assert!(problems.is_empty());

        let (_, problems) = run(&[
            ("KAFKA_USE_SSL", "true"),
            ("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"),
        ]);
        assert_eq!(problems.len(), 1);
        assert!(problems[0].to_string().contains("contradicts"));
    }

    #[test]
    fn bad_values_name_the_variable() {
        let (_, problems) = run(&[
            ("KAFKA_MAX_POLL_RECORDS", "lots"),
            ("KAFKA_BROKERS", "a:1,,b"),
        ]);
        assert_eq!(problems.len(), 2);
        let all = problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            all.contains("environment variable KAFKA_MAX_POLL_RECORDS"),
            "{all}"
        );
        assert!(all.contains("expected a whole number"), "{all}");
        assert!(all.contains("environment variable KAFKA_BROKERS"), "{all}");
    }
}
