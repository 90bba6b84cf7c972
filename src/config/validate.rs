//! One validation pass over a deserialised [`Config`]: every problem is
//! collected, each with its key and source.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use super::load::Problem;
use super::provenance::Provenance;
use super::{Acks, Compression, Config, SaslMechanism, SecurityProtocol};

struct Check<'a> {
    provenance: &'a Provenance,
    problems: &'a mut Vec<Problem>,
}

impl Check<'_> {
    fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.problems
            .push(Problem::new(key, self.provenance.source_of(key), message));
    }

    fn range(&mut self, key: &str, value: u64, min: u64, max: u64) {
        if value < min || value > max {
            self.fail(key, format!("must be between {min} and {max}, got {value}"));
        }
    }
}

/// Kafka's topic-name rule, with seed 003's messages.
pub(crate) fn topic_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() || name.len() > 249 {
        return Some("Topic name must be between 1 and 249 characters");
    }
    if name == "." || name == ".." {
        return Some("Topic name cannot be \".\" or \"..\"");
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Some("Topic name contains invalid characters (allowed: a-z A-Z 0-9 . _ -)");
    }
    None
}

fn host_port_problem(server: &str) -> Option<String> {
    if let Some((scheme, _)) = server.split_once("://") {
        return Some(format!(
            "`{server}`: give host:port only; the protocol ({scheme}) belongs in \
             kafka.security.protocol"
        ));
    }
    let Some((host, port)) = server.rsplit_once(':') else {
        return Some(format!("`{server}` is not host:port"));
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Some(format!("`{server}` has no host"));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => None,
        _ => Some(format!("`{server}` has an invalid port `{port}`")),
    }
}

pub(crate) fn validate(config: &Config, provenance: &Provenance, problems: &mut Vec<Problem>) {
    let mut c = Check {
        provenance,
        problems,
    };

    // [kafka]
    let k = &config.kafka;
    if k.bootstrap_servers.is_empty() {
        c.fail(
            "kafka.bootstrap_servers",
            "must list at least one host:port",
        );
    }
    for server in &k.bootstrap_servers {
        if let Some(p) = host_port_problem(server) {
            c.fail("kafka.bootstrap_servers", p);
        }
    }
    if k.client_id.trim().is_empty() {
        c.fail("kafka.client_id", "must not be empty");
    }
    c.range("kafka.connect_timeout_ms", k.connect_timeout_ms, 1, 300_000);
    c.range("kafka.request_timeout_ms", k.request_timeout_ms, 1, 600_000);

    validate_security(&mut c, &k.security);

    // [consumer]
    let cons = &config.consumer;
    if cons.group_id.trim().is_empty() {
        c.fail("consumer.group_id", "must not be empty");
    }
    c.range(
        "consumer.max_poll_records",
        u64::from(cons.max_poll_records),
        1,
        10_000,
    );
    c.range(
        "consumer.session_timeout_ms",
        cons.session_timeout_ms,
        1_000,
        300_000,
    );
    c.range(
        "consumer.heartbeat_interval_ms",
        cons.heartbeat_interval_ms,
        1,
        300_000,
    );
    if cons.heartbeat_interval_ms >= cons.session_timeout_ms {
        let session_source = c.provenance.source_of("consumer.session_timeout_ms");
        c.fail(
            "consumer.heartbeat_interval_ms",
            format!(
                "must be lower than consumer.session_timeout_ms ({} ms, from {session_source}), \
                 got {} ms (Kafka recommends at most a third of it)",
                cons.session_timeout_ms, cons.heartbeat_interval_ms
            ),
        );
    }
    c.range(
        "consumer.rebalance_timeout_ms",
        cons.rebalance_timeout_ms,
        1_000,
        i32::MAX as u64,
    );
    if cons.partition_assignment_strategy.is_empty() {
        c.fail(
            "consumer.partition_assignment_strategy",
            format!(
                "must name at least one assignor ({})",
                crate::group::assignor::NAMES.join(", ")
            ),
        );
    }
    for name in &cons.partition_assignment_strategy {
        if !crate::group::assignor::NAMES.contains(&name.as_str()) {
            c.fail(
                "consumer.partition_assignment_strategy",
                format!(
                    "unknown assignor `{name}` (known: {})",
                    crate::group::assignor::NAMES.join(", ")
                ),
            );
        }
    }
    if let Some(assignor) = &cons.group_remote_assignor
        && !matches!(assignor.as_str(), "uniform" | "range")
    {
        c.fail(
            "consumer.group_remote_assignor",
            format!(
                "unknown server-side assignor `{assignor}` (Apache Kafka has uniform and range)"
            ),
        );
    }
    if let Some(id) = &cons.group_instance_id
        && (id.trim().is_empty() || id.len() > 249)
    {
        c.fail(
            "consumer.group_instance_id",
            "must be 1-249 characters when set",
        );
    }
    c.range(
        "consumer.auto_commit_interval_ms",
        cons.auto_commit_interval_ms,
        1,
        3_600_000,
    );
    c.range(
        "consumer.fetch_min_bytes",
        u64::from(cons.fetch_min_bytes),
        1,
        u64::from(i32::MAX as u32),
    );
    c.range(
        "consumer.fetch_max_bytes",
        u64::from(cons.fetch_max_bytes),
        1,
        u64::from(i32::MAX as u32),
    );
    if cons.fetch_max_bytes < cons.fetch_min_bytes {
        c.fail(
            "consumer.fetch_max_bytes",
            format!(
                "must be at least consumer.fetch_min_bytes ({}), got {}",
                cons.fetch_min_bytes, cons.fetch_max_bytes
            ),
        );
    }
    c.range(
        "consumer.fetch_max_wait_ms",
        cons.fetch_max_wait_ms,
        0,
        300_000,
    );

    // [producer]
    let prod = &config.producer;
    match prod.acks {
        Acks::All => {}
        Acks::Leader => c.fail(
            "producer.acks",
            "acks=1 (leader) cannot be honoured: rskafka always produces with acks=all \
             (every in-sync replica acknowledges); set acks = \"all\"",
        ),
        Acks::None => c.fail(
            "producer.acks",
            "acks=0 (none) cannot be used: a record is committed only after its output is \
             acknowledged by the broker, and rskafka always produces with acks=all; \
             set acks = \"all\"",
        ),
    }
    if matches!(prod.compression_type, Compression::Lz4 | Compression::Zstd) {
        c.fail(
            "producer.compression_type",
            format!(
                "{codec} is not available in this build: it needs the cargo feature `{codec}`, \
                 which does not exist yet; use none, gzip or snappy",
                codec = prod.compression_type.as_str()
            ),
        );
    }
    c.range("producer.linger_ms", prod.linger_ms, 0, 60_000);
    c.range(
        "producer.batch_size",
        u64::from(prod.batch_size),
        1,
        u64::from(i32::MAX as u32),
    );
    c.range(
        "producer.max_request_bytes",
        u64::from(prod.max_request_bytes),
        1024,
        u64::from(i32::MAX as u32),
    );
    c.range(
        "producer.batch_max_records",
        u64::from(prod.batch_max_records),
        1,
        100_000,
    );
    c.range("producer.retries", u64::from(prod.retries), 0, 1_000);
    c.range(
        "producer.retry_backoff_ms",
        prod.retry_backoff_ms,
        0,
        600_000,
    );

    // [topic_manager]
    let tm = &config.topic_manager;
    c.range(
        "topic_manager.creation_timeout_secs",
        tm.creation_timeout_secs,
        1,
        3_600,
    );
    c.range(
        "topic_manager.creation_retries",
        u64::from(tm.creation_retries),
        0,
        100,
    );
    c.range(
        "topic_manager.creation_retry_delay_secs",
        tm.creation_retry_delay_secs,
        0,
        3_600,
    );

    // [topics.*]
    let mut kafka_names: BTreeMap<&str, &str> = BTreeMap::new();
    for (logical, spec) in &config.topics {
        let name = spec.topic_name(logical);
        let key = |field: &str| format!("topics.{logical}.{field}");
        let name_key = if spec.name.is_some() {
            key("name")
        } else {
            format!("topics.{logical}")
        };
        if let Some(msg) = topic_name_problem(name) {
            c.fail(&name_key, format!("{msg} (got `{name}`)"));
        }
        if let Some(other) = kafka_names.insert(name, logical) {
            c.fail(
                &name_key,
                format!("topic `{name}` is also declared as topics.{other}"),
            );
        }
        if spec.partitions <= 0 {
            c.fail(
                &key("partitions"),
                format!("Partition count must be greater than 0 for topic {name}"),
            );
        }
        if spec.replication_factor <= 0 {
            c.fail(
                &key("replication_factor"),
                format!("Replication factor must be greater than 0 for topic {name}"),
            );
        }
        for (cfg, value) in &spec.configs {
            if !cfg
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '.')
                || cfg.is_empty()
            {
                c.fail(
                    &format!("topics.{logical}.configs.{cfg}"),
                    "not a Kafka topic config name (lower case, digits and dots, such as \
                     retention.ms)",
                );
            } else if value.trim().is_empty() {
                c.fail(
                    &format!("topics.{logical}.configs.{cfg}"),
                    "a topic config value is empty",
                );
            }
        }
    }

    // Failure actions: retrying cannot help a record that is not JSON or
    // that the handler refused for good.
    let mut tables: Vec<(String, &crate::config::FailureActions)> = vec![(
        "pipeline.on_failure".to_owned(),
        &config.pipeline.on_failure,
    )];
    for (name, route) in &config.routes {
        tables.push((format!("routes.{name}.on_failure"), &route.on_failure));
    }
    for (table, actions) in tables {
        for code in actions.codes.keys() {
            if code.trim().is_empty() || code.len() > 128 {
                c.fail(
                    &format!("{table}.codes"),
                    format!("an error code must have 1 to 128 characters, got {code:?}"),
                );
            }
        }
        for (class, action) in actions.entries() {
            if action == crate::config::FailureAction::Retry
                && matches!(class, "deserialization" | "validation" | "oversize")
            {
                c.fail(
                    &format!("{table}.{class}"),
                    format!(
                        "`retry` cannot help a {class} failure (the same record fails the same \
                         way); use dlq, pause or stop"
                    ),
                );
            }
        }
    }
    c.range(
        "pipeline.pause_ms",
        config.pipeline.pause_ms,
        100,
        86_400_000,
    );

    // [routes.*]
    let mut taken: BTreeMap<(String, Option<&str>), &str> = BTreeMap::new();
    for (name, route) in &config.routes {
        let key = |field: &str| format!("routes.{name}.{field}");
        let breaker = &route.circuit_breaker;
        if !(breaker.ratio.is_finite() && (0.0..=1.0).contains(&breaker.ratio)) {
            c.fail(
                &key("circuit_breaker.ratio"),
                format!("must be between 0 (off) and 1, got {}", breaker.ratio),
            );
        }
        if breaker.ratio > 0.0 {
            c.range(
                &key("circuit_breaker.window_ms"),
                breaker.window_ms,
                100,
                86_400_000,
            );
            c.range(
                &key("circuit_breaker.min_records"),
                u64::from(breaker.min_records),
                1,
                1_000_000,
            );
        }
        let retry = &route.retry;
        if retry.topic.is_some() && retry.mode != crate::config::RetryMode::Topic {
            c.fail(
                &key("retry.topic"),
                "a retry topic is only used with retry.mode = \"topic\"",
            );
        }
        c.range(
            &key("retry.max_attempts"),
            u64::from(retry.max_attempts),
            1,
            100,
        );
        c.range(
            &key("retry.max_delay_ms"),
            retry.max_delay_ms,
            0,
            86_400_000,
        );
        if retry.initial_delay_ms > retry.max_delay_ms {
            c.fail(
                &key("retry.initial_delay_ms"),
                format!(
                    "must not exceed retry.max_delay_ms ({} ms), got {} ms",
                    retry.max_delay_ms, retry.initial_delay_ms
                ),
            );
        }
        if !(retry.multiplier.is_finite() && (1.0..=100.0).contains(&retry.multiplier)) {
            c.fail(
                &key("retry.multiplier"),
                format!("must be between 1 and 100, got {}", retry.multiplier),
            );
        }
        if !(retry.jitter.is_finite() && (0.0..=1.0).contains(&retry.jitter)) {
            c.fail(
                &key("retry.jitter"),
                format!("must be between 0 and 1, got {}", retry.jitter),
            );
        }
        if let Some(ms) = route.handler_timeout_ms {
            c.range(&key("handler_timeout_ms"), ms, 1, 3_600_000);
        }
        let topic = config
            .topics
            .get(&route.topic)
            .map(|spec| spec.topic_name(&route.topic).to_owned())
            .unwrap_or_else(|| route.topic.clone());
        if route.topic.is_empty() {
            c.fail(&key("topic"), "every route needs an input topic");
        } else if let Some(msg) = topic_name_problem(&topic) {
            c.fail(&key("topic"), format!("{msg} (got `{topic}`)"));
        }
        for (field, value) in [
            ("reply_topic", &route.reply_topic),
            ("dlq_topic", &route.dlq_topic),
            ("forward_to", &route.forward_to),
        ] {
            if let Some(msg) = value.as_deref().and_then(topic_name_problem) {
                c.fail(
                    &key(field),
                    format!("{msg} (got `{}`)", value.as_deref().unwrap_or_default()),
                );
            }
        }
        match route.handler.as_str() {
            "forward" if route.forward_to.is_none() => c.fail(
                &key("forward_to"),
                "the forward handler needs forward_to (the topic to republish to)",
            ),
            "" => c.fail(&key("handler"), "every route needs a handler"),
            "jq" => match &route.program {
                None => c.fail(&key("program"), "the jq handler needs a program"),
                Some(program) => {
                    if let Err(e) = crate::handler::jq::compile(program) {
                        c.fail(&key("program"), e.to_string());
                    }
                }
            },
            _ => {}
        }
        if route.program.is_some() && route.handler != "jq" {
            c.fail(&key("program"), "program is only for handler = \"jq\"");
        }
        if route.forward_to.is_some() && route.handler != "forward" {
            c.fail(
                &key("forward_to"),
                "forward_to is only for handler = \"forward\"",
            );
        }
        c.range(&key("concurrency"), u64::from(route.concurrency), 1, 256);
        if let Some(other) = taken.insert((topic.clone(), route.event_type.as_deref()), name) {
            c.fail(
                &key("event_type"),
                format!(
                    "routes.{other} already takes {} records of topic {topic}",
                    route
                        .event_type
                        .as_deref()
                        .map_or("all".to_owned(), |t| format!("`{t}`"))
                ),
            );
        }
    }
    c.range(
        "pipeline.produce_attempts",
        u64::from(config.pipeline.produce_attempts),
        1,
        100,
    );
    c.range(
        "pipeline.max_in_flight_records",
        u64::from(config.pipeline.max_in_flight_records),
        1,
        1_000_000,
    );
    c.range(
        "pipeline.max_in_flight_bytes",
        config.pipeline.max_in_flight_bytes,
        1024,
        1 << 34,
    );

    // [http], [health], [log], [shutdown]
    if config.http.bind.parse::<SocketAddr>().is_err() {
        c.fail(
            "http.bind",
            format!(
                "`{}` is not an address:port such as 127.0.0.1:8080",
                config.http.bind
            ),
        );
    }
    if let Some(url) = &config.http.advertised_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        c.fail(
            "http.advertised_url",
            format!("`{url}` is not a base URL such as http://10.0.0.7:8080"),
        );
    }
    c.range(
        "health.check_interval_ms",
        config.health.check_interval_ms,
        100,
        3_600_000,
    );
    if config.health.stall_timeout_ms > 0 {
        c.range(
            "health.stall_timeout_ms",
            config.health.stall_timeout_ms,
            1_000,
            86_400_000,
        );
    }
    c.range(
        "health.heartbeat_interval_ms",
        config.health.heartbeat_interval_ms,
        10,
        600_000,
    );
    c.range(
        "health.heartbeat_stale_after",
        u64::from(config.health.heartbeat_stale_after),
        0,
        10_000,
    );
    let alerts = &config.alerts;
    c.range("alerts.interval_ms", alerts.interval_ms, 100, 3_600_000);
    c.range(
        "alerts.webhook_attempts",
        u64::from(alerts.webhook_attempts),
        1,
        100,
    );
    c.range(
        "alerts.webhook_timeout_ms",
        alerts.webhook_timeout_ms,
        100,
        600_000,
    );
    if let Some(url) = &alerts.webhook_url {
        match url.parse::<ureq::http::Uri>() {
            Ok(uri) if uri.scheme_str() == Some("http") && uri.host().is_some() => {}
            Ok(uri) if uri.scheme_str() == Some("https") => c.fail(
                "alerts.webhook_url",
                format!("`{url}`: https is not supported by this build (no TLS in the default build); use http://"),
            ),
            _ => c.fail(
                "alerts.webhook_url",
                format!("`{url}` is not an http:// URL such as http://127.0.0.1:9000/alerts"),
            ),
        }
    }
    for (name, rule) in &alerts.rules {
        let key = |field: &str| format!("alerts.rules.{name}.{field}");
        if !rule.above.is_finite() {
            c.fail(&key("above"), "must be a finite number");
        }
        c.range(&key("for_ms"), rule.for_ms, 0, 86_400_000);
        c.range(&key("window_ms"), rule.window_ms, 1_000, 86_400_000);
    }
    if let Err(e) = tracing_subscriber::EnvFilter::try_new(&config.log.level) {
        c.fail("log.level", format!("not a valid filter: {e}"));
    }
    c.range(
        "shutdown.drain_timeout_ms",
        config.shutdown.drain_timeout_ms,
        0,
        600_000,
    );
}

/// `[kafka.security]`: what the protocol needs is there, nothing it would
/// ignore is set (a TLS file with a plaintext protocol means a mistake, not
/// a wish to connect unencrypted), and, with the `tls` feature, the TLS
/// files can be read and used.
fn validate_security(c: &mut Check<'_>, sec: &super::SecurityConfig) {
    let protocol = sec.protocol.as_str();
    let tls = matches!(
        sec.protocol,
        SecurityProtocol::Ssl | SecurityProtocol::SaslSsl
    );
    let sasl = matches!(
        sec.protocol,
        SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
    );
    if sasl {
        match sec.sasl.mechanism {
            None => c.fail(
                "kafka.security.sasl.mechanism",
                format!("{protocol} needs a mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"),
            ),
            Some(SaslMechanism::OAuthBearer) => c.fail(
                "kafka.security.sasl.mechanism",
                "OAUTHBEARER is not supported by this build yet (PLAIN, SCRAM-SHA-256 and \
                 SCRAM-SHA-512 are)",
            ),
            Some(_) => {}
        }
        if sec.sasl.username.as_deref().is_none_or(str::is_empty) {
            c.fail(
                "kafka.security.sasl.username",
                format!("{protocol} needs a user name"),
            );
        }
        if sec.sasl.password.as_ref().is_none_or(|p| p.is_empty()) {
            c.fail(
                "kafka.security.sasl.password",
                format!("{protocol} needs a password"),
            );
        }
    } else {
        let set = [
            (
                "kafka.security.sasl.mechanism",
                sec.sasl.mechanism.is_some(),
            ),
            ("kafka.security.sasl.username", sec.sasl.username.is_some()),
            ("kafka.security.sasl.password", sec.sasl.password.is_some()),
        ];
        for (key, _) in set.into_iter().filter(|(_, is_set)| *is_set) {
            c.fail(
                key,
                format!(
                    "a SASL setting is given but kafka.security.protocol is {protocol}; \
                     refusing to connect without the authentication it asks for"
                ),
            );
        }
    }
    if !tls {
        let set = [
            ("kafka.security.ssl.ca_file", sec.ssl.ca_file.is_some()),
            ("kafka.security.ssl.cert_file", sec.ssl.cert_file.is_some()),
            ("kafka.security.ssl.key_file", sec.ssl.key_file.is_some()),
            (
                "kafka.security.ssl.key_password",
                sec.ssl.key_password.is_some(),
            ),
            ("kafka.security.ssl.check_hostname", !sec.ssl.check_hostname),
        ];
        for (key, _) in set.into_iter().filter(|(_, is_set)| *is_set) {
            c.fail(
                key,
                format!(
                    "a TLS setting is given but kafka.security.protocol is {protocol}; \
                     refusing to connect unencrypted"
                ),
            );
        }
        return;
    }
    #[cfg(feature = "tls")]
    if let Err(e) = crate::kafka::tls::client_config(&sec.ssl) {
        c.fail(e.key, e.message);
    }
    #[cfg(not(feature = "tls"))]
    c.fail(
        "kafka.security.protocol",
        format!(
            "{protocol} needs TLS, which this build does not include: build kafka-actors with \
             `--features tls` (README \"TLS\"); it does not fall back to plaintext"
        ),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_kafka_rules() {
        assert!(topic_name_problem("omninode.codegen.request.validate.v1").is_none());
        assert!(topic_name_problem("a-b_c.D9").is_none());
        assert!(topic_name_problem("").is_some());
        assert!(topic_name_problem(".").is_some());
        assert!(topic_name_problem("..").is_some());
        assert!(topic_name_problem("has space").is_some());
        assert!(topic_name_problem(&"x".repeat(249)).is_none());
        assert!(topic_name_problem(&"x".repeat(250)).is_some());
    }

    #[test]
    fn host_ports() {
        assert!(host_port_problem("localhost:9092").is_none());
        assert!(host_port_problem("[::1]:9092").is_none());
        assert!(host_port_problem("localhost").is_some());
        assert!(host_port_problem(":9092").is_some());
        assert!(host_port_problem("h:0").is_some());
        assert!(host_port_problem("h:99999").is_some());
        assert!(
            host_port_problem("SASL_SSL://b:9093")
                .unwrap()
                .contains("kafka.security.protocol")
        );
    }
}
