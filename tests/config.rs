//! Configuration loading: layers, the seed documents' variables, and bad
//! input. Each test runs in a `figment::Jail` (its own temp directory and
//! environment), so they do not see each other's variables.

// figment::Jail closures return figment::Error, which is large; not ours to change.
#![allow(clippy::result_large_err)]

use std::path::PathBuf;

use figment::Jail;
use kafka_actors::config::{
    Acks, Compression, Config, ConfigError, LoadOptions, Loaded, OffsetReset, load,
};

fn load_in_jail(file: Option<&str>) -> Result<Loaded, ConfigError> {
    load(&LoadOptions {
        config_file: file.map(PathBuf::from),
        default_file: PathBuf::from("config/default.toml"),
    })
}

fn problems(err: &ConfigError) -> String {
    err.to_string()
}

#[test]
fn defaults_alone_are_valid() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        let loaded = load_in_jail(None).unwrap();
        assert_eq!(loaded.config, Config::default());
        assert_eq!(
            loaded.provenance.source_of("consumer.max_poll_records"),
            "built-in default"
        );
        Ok(())
    });
}

#[test]
fn every_shipped_config_file_loads_and_validates() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        seen += 1;
        Jail::expect_with(|jail| {
            jail.clear_env();
            let loaded = load(&LoadOptions {
                config_file: Some(path.clone()),
                ..LoadOptions::default()
            });
            if let Err(e) = &loaded {
                panic!("{} does not load: {e}", path.display());
            }
            Ok(())
        });
    }
    assert!(seen > 0, "no config files under {}", dir.display());
}

#[test]
fn shipped_default_toml_matches_the_built_in_defaults() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("config/default.toml");
    Jail::expect_with(|jail| {
        jail.clear_env();
        let loaded = load(&LoadOptions {
            config_file: Some(path.clone()),
            ..LoadOptions::default()
        })
        .unwrap();
        assert_eq!(loaded.config, Config::default());
        Ok(())
    });
}

#[test]
fn layers_override_in_order_and_report_their_source() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "app.toml",
            r#"
[consumer]
max_poll_records = 100
group_id = "from-file"

[kafka]
client_id = "from-file"
"#,
        )?;
        jail.set_env("KAFKA_MAX_POLL_RECORDS", "200");
        jail.set_env("KAFKA_ACTORS_CONSUMER__MAX_POLL_RECORDS", "300");
        jail.set_env("KAFKA_CLIENT_ID", "from-seed-env");
        let loaded = load_in_jail(Some("app.toml")).unwrap();
        let c = &loaded.config;
        // KAFKA_ACTORS_* beats the seed name, which beats the file.
        assert_eq!(c.consumer.max_poll_records, 300);
        assert_eq!(c.kafka.client_id, "from-seed-env");
        assert_eq!(c.consumer.group_id, "from-file");
        let p = &loaded.provenance;
        assert_eq!(
            p.source_of("consumer.max_poll_records"),
            "environment variable KAFKA_ACTORS_CONSUMER__MAX_POLL_RECORDS"
        );
        assert_eq!(
            p.source_of("kafka.client_id"),
            "environment variable KAFKA_CLIENT_ID"
        );
        let group_source = p.source_of("consumer.group_id");
        assert!(group_source.ends_with("app.toml:4"), "{group_source}");
        assert_eq!(p.source_of("producer.linger_ms"), "built-in default");
        Ok(())
    });
}

#[test]
fn config_default_toml_is_read_when_present() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_dir("config")?;
        jail.create_file(
            "config/default.toml",
            "[kafka]\nclient_id = \"cwd-default\"\n",
        )?;
        let loaded = load_in_jail(None).unwrap();
        assert_eq!(loaded.config.kafka.client_id, "cwd-default");
        assert_eq!(loaded.file, Some(PathBuf::from("config/default.toml")));
        Ok(())
    });
}

#[test]
fn seed_000_variables() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_BOOTSTRAP_SERVERS", "omninode-bridge-redpanda:9092");
        jail.set_env("KAFKA_CONSUMER_GROUP", "archon-intelligence");
        jail.set_env("KAFKA_AUTO_OFFSET_RESET", "latest");
        jail.set_env("KAFKA_ENABLE_AUTO_COMMIT", "true");
        jail.set_env("KAFKA_MAX_POLL_RECORDS", "1000");
        jail.set_env("KAFKA_SESSION_TIMEOUT_MS", "45000");
        jail.set_env(
            "KAFKA_CODEGEN_VALIDATE_REQUEST",
            "omninode.codegen.request.validate.v1",
        );
        jail.set_env(
            "KAFKA_CODEGEN_MIXIN_RESPONSE",
            "omninode.codegen.response.mixin.v1",
        );
        let c = load_in_jail(None).unwrap().config;
        assert_eq!(
            c.kafka.bootstrap_servers,
            vec!["omninode-bridge-redpanda:9092"]
        );
        assert_eq!(c.consumer.group_id, "archon-intelligence");
        assert_eq!(c.consumer.auto_offset_reset, OffsetReset::Latest);
        assert!(c.consumer.enable_auto_commit);
        assert_eq!(c.consumer.max_poll_records, 1000);
        assert_eq!(c.consumer.session_timeout_ms, 45000);
        assert_eq!(
            c.topics["codegen_validate_request"].topic_name("codegen_validate_request"),
            "omninode.codegen.request.validate.v1"
        );
        assert_eq!(
            c.topics["codegen_mixin_response"].name.as_deref(),
            Some("omninode.codegen.response.mixin.v1")
        );
        Ok(())
    });
}

/// `config/intelligence.toml` carries seed 000's defaults, and seed 000's
/// variables rename its topics: the routes follow the new names.
#[test]
fn seed_000_intelligence_config_and_its_topic_variables() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/intelligence.toml");
    Jail::expect_with(|jail| {
        jail.clear_env();
        let c = load_in_jail(Some(file)).unwrap().config;
        assert_eq!(c.consumer.group_id, "archon-intelligence");
        assert_eq!(c.consumer.auto_offset_reset, OffsetReset::Earliest);
        assert!(c.consumer.enable_auto_commit);
        assert_eq!(c.consumer.max_poll_records, 500);
        assert_eq!(c.consumer.session_timeout_ms, 30000);
        for kind in ["validate", "analyze", "pattern", "mixin"] {
            let route = &c.routes[kind];
            assert_eq!(route.handler, kind);
            assert_eq!(
                c.topic_name(&route.topic),
                format!("omninode.codegen.request.{kind}.v1")
            );
            assert_eq!(
                c.topic_name(route.reply_topic.as_deref().unwrap()),
                format!("omninode.codegen.response.{kind}.v1")
            );
        }

        jail.set_env("KAFKA_CODEGEN_VALIDATE_REQUEST", "dev.validate.requests");
        jail.set_env("KAFKA_CODEGEN_MIXIN_RESPONSE", "dev.mixin.responses");
        jail.set_env("KAFKA_CONSUMER_GROUP", "archon-intelligence-dev");
        jail.set_env("KAFKA_MAX_POLL_RECORDS", "1000");
        let c = load_in_jail(Some(file)).unwrap().config;
        assert_eq!(
            c.topic_name(&c.routes["validate"].topic),
            "dev.validate.requests"
        );
        assert_eq!(
            c.topic_name(c.routes["mixin"].reply_topic.as_deref().unwrap()),
            "dev.mixin.responses"
        );
        // The renamed topic keeps the file's partitions.
        assert_eq!(c.topics["codegen_validate_request"].partitions, 3);
        assert_eq!(c.consumer.group_id, "archon-intelligence-dev");
        assert_eq!(c.consumer.max_poll_records, 1000);
        Ok(())
    });
}

#[test]
fn seed_001_variables() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_BROKERS", "k1:9092,k2:9092");
        jail.set_env("KAFKA_CLIENT_ID", "helixagent");
        jail.set_env("KAFKA_GROUP_ID", "helixagent-group");
        jail.set_env("KAFKA_COMPRESSION", "snappy");
        jail.set_env("KAFKA_REQUIRED_ACKS", "all");
        jail.set_env("KAFKA_MAX_WAIT_TIME", "500ms");
        let c = load_in_jail(None).unwrap().config;
        assert_eq!(c.kafka.bootstrap_servers, vec!["k1:9092", "k2:9092"]);
        assert_eq!(c.kafka.client_id, "helixagent");
        assert_eq!(c.consumer.group_id, "helixagent-group");
        assert_eq!(c.producer.compression_type, Compression::Snappy);
        assert_eq!(c.producer.acks, Acks::All);
        assert_eq!(c.consumer.fetch_max_wait_ms, 500);
        Ok(())
    });
}

#[test]
fn seed_002_variables() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_BOOTSTRAP_SERVERS", r#"["localhost:9092"]"#);
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "PLAINTEXT");
        jail.set_env("KAFKA_CONSUMER_GROUP_ID", "xseven-ai-consumers");
        jail.set_env("KAFKA_PRODUCER_ACKS", "all");
        jail.set_env("KAFKA_PRODUCER_RETRIES", "3");
        jail.set_env("KAFKA_PRODUCER_BATCH_SIZE", "32768");
        jail.set_env("KAFKA_PRODUCER_COMPRESSION_TYPE", "gzip");
        jail.set_env("KAFKA_PRODUCER_LINGER_MS", "20");
        jail.set_env("KAFKA_CONSUMER_AUTO_OFFSET_RESET", "earliest");
        jail.set_env("KAFKA_CONSUMER_ENABLE_AUTO_COMMIT", "false");
        jail.set_env("KAFKA_CONSUMER_MAX_POLL_RECORDS", "500");
        jail.set_env("KAFKA_CONSUMER_FETCH_MIN_BYTES", "50000");
        let c = load_in_jail(None).unwrap().config;
        assert_eq!(c.kafka.bootstrap_servers, vec!["localhost:9092"]);
        assert_eq!(c.consumer.group_id, "xseven-ai-consumers");
        assert_eq!(c.producer.retries, 3);
        assert_eq!(c.producer.batch_size, 32768);
        assert_eq!(c.producer.linger_ms, 20);
        assert_eq!(c.consumer.fetch_min_bytes, 50000);
        assert!(!c.consumer.enable_auto_commit);
        Ok(())
    });
}

#[test]
fn seed_003_variables() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env(
            "KAFKA_BOOTSTRAP_SERVERS",
            "kafka-1:9092,kafka-2:9092,kafka-3:9092",
        );
        jail.set_env("KAFKA_TOPIC_REQUESTS", "gigaoffice-requests");
        jail.set_env("KAFKA_TOPIC_RESPONSES", "gigaoffice-responses");
        jail.set_env("KAFKA_TOPIC_DLQ", "gigaoffice-dlq");
        jail.set_env("KAFKA_CONSUMER_GROUP", "gigaoffice-consumers");
        jail.set_env("KAFKA_TOPIC_AUTO_CREATE", "false");
        jail.set_env("KAFKA_TOPIC_CREATION_TIMEOUT", "60");
        jail.set_env("KAFKA_TOPIC_CREATION_RETRIES", "5");
        jail.set_env("KAFKA_TOPIC_CREATION_RETRY_DELAY", "3");
        jail.set_env("KAFKA_TOPIC_REQUESTS_PARTITIONS", "12");
        jail.set_env("KAFKA_TOPIC_REQUESTS_REPLICATION", "3");
        jail.set_env("KAFKA_TOPIC_DLQ_PARTITIONS", "3");
        jail.set_env("KAFKA_PRODUCER_RETRY_BACKOFF_MS", "250");
        jail.set_env("KAFKA_CONSUMER_SESSION_TIMEOUT_MS", "10000");
        jail.set_env("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "3000");
        jail.set_env("KAFKA_USE_SSL", "false");
        let c = load_in_jail(None).unwrap().config;
        assert_eq!(c.kafka.bootstrap_servers.len(), 3);
        assert!(!c.topic_manager.auto_create);
        assert_eq!(c.topic_manager.creation_timeout_secs, 60);
        assert_eq!(c.topic_manager.creation_retries, 5);
        assert_eq!(c.topic_manager.creation_retry_delay_secs, 3);
        let requests = &c.topics["requests"];
        assert_eq!(requests.topic_name("requests"), "gigaoffice-requests");
        assert_eq!(requests.partitions, 12);
        assert_eq!(requests.replication_factor, 3);
        assert_eq!(c.topics["dlq"].partitions, 3);
        assert_eq!(
            c.topics["responses"].name.as_deref(),
            Some("gigaoffice-responses")
        );
        assert_eq!(c.producer.retry_backoff_ms, 250);
        assert_eq!(c.consumer.session_timeout_ms, 10000);
        Ok(())
    });
}

#[test]
fn unknown_key_in_file_names_key_file_and_line() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "bad.toml",
            "[consumer]\ngroup_id = \"g\"\nmax_pol_records = 5\n",
        )?;
        let err = load_in_jail(Some("bad.toml")).unwrap_err();
        let text = problems(&err);
        assert!(text.contains("consumer.max_pol_records"), "{text}");
        assert!(text.contains("unknown key"), "{text}");
        assert!(text.contains("bad.toml:3"), "{text}");
        Ok(())
    });
}

#[test]
fn out_of_range_env_value_names_key_and_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_MAX_POLL_RECORDS", "20000");
        let err = load_in_jail(None).unwrap_err();
        let text = problems(&err);
        assert!(text.contains("consumer.max_poll_records"), "{text}");
        assert!(text.contains("between 1 and 10000"), "{text}");
        assert!(
            text.contains("environment variable KAFKA_MAX_POLL_RECORDS"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn session_timeout_range_from_the_prefixed_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_ACTORS_CONSUMER__SESSION_TIMEOUT_MS", "999");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("consumer.session_timeout_ms"), "{text}");
        assert!(text.contains("between 1000 and 300000"), "{text}");
        assert!(
            text.contains("KAFKA_ACTORS_CONSUMER__SESSION_TIMEOUT_MS"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn malformed_list_names_the_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_BOOTSTRAP_SERVERS", r#"["localhost:9092""#);
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("kafka.bootstrap_servers"), "{text}");
        assert!(text.contains("malformed list"), "{text}");
        assert!(
            text.contains("environment variable KAFKA_BOOTSTRAP_SERVERS"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn wrong_type_in_file_names_key_and_line() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("bad.toml", "[producer]\n\nlinger_ms = \"soon\"\n")?;
        let text = problems(&load_in_jail(Some("bad.toml")).unwrap_err());
        assert!(text.contains("producer.linger_ms"), "{text}");
        assert!(text.contains("bad.toml:3"), "{text}");
        Ok(())
    });
}

#[test]
fn bad_retry_settings_are_named_by_route_and_key() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "bad.toml",
            "[routes.orders]\ntopic = \"orders\"\nhandler_timeout_ms = 0\n\
             [routes.orders.retry]\nstrategy = \"linear\"\nmax_attempts = 0\n\
             initial_delay_ms = 500\nmax_delay_ms = 100\njitter = 2.0\n",
        )?;
        let text = problems(&load_in_jail(Some("bad.toml")).unwrap_err());
        for key in [
            "routes.orders.handler_timeout_ms",
            "routes.orders.retry.max_attempts",
            "routes.orders.retry.initial_delay_ms",
            "routes.orders.retry.jitter",
        ] {
            assert!(text.contains(key), "{key}: {text}");
        }
        jail.create_file(
            "keyed.toml",
            "[routes.orders]\ntopic = \"orders\"\nordering = \"key\"\n\
             [routes.orders.retry]\nmode = \"topic\"\n",
        )?;
        // Key order through a retry topic is allowed.
        let keyed = load_in_jail(Some("keyed.toml")).unwrap();
        assert_eq!(
            keyed.config.routes["orders"].ordering,
            kafka_actors::config::Ordering::Key
        );
        jail.create_file(
            "keyed.toml",
            "[routes.orders]\ntopic = \"orders\"\nordering = \"by_key\"\n",
        )?;
        let text = problems(&load_in_jail(Some("keyed.toml")).unwrap_err());
        assert!(text.contains("routes.orders.ordering"), "{text}");
        jail.create_file("typo.toml", "[routes.orders]\ntopic = \"orders\"\n[routes.orders.retry]\nstrategy = \"sometimes\"\n")?;
        let text = problems(&load_in_jail(Some("typo.toml")).unwrap_err());
        assert!(text.contains("routes.orders.retry.strategy"), "{text}");
        Ok(())
    });
}

#[test]
fn every_problem_is_reported_at_once() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "bad.toml",
            r#"
[consumer]
max_poll_records = "many"
unknown_one = 1

[producer]
linger_ms = -5

[topics.requests]
name = "bad name!"
partitions = 0
replication_factor = 0
"#,
        )?;
        jail.set_env("KAFKA_SESSION_TIMEOUT_MS", "5");
        jail.set_env("KAFKA_ENABLE_AUTO_COMMIT", "perhaps");
        let err = load_in_jail(Some("bad.toml")).unwrap_err();
        let text = problems(&err);
        for expected in [
            "consumer.max_poll_records",
            "consumer.unknown_one",
            "producer.linger_ms",
            "Topic name contains invalid characters",
            "Partition count must be greater than 0 for topic bad name!",
            "Replication factor must be greater than 0 for topic bad name!",
            "KAFKA_ENABLE_AUTO_COMMIT",
        ] {
            assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
        }
        assert!(err.problems.len() >= 7, "{text}");
        Ok(())
    });
}

#[test]
fn conflicting_seed_variables_are_an_error() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_GROUP_ID", "a");
        jail.set_env("KAFKA_CONSUMER_GROUP", "b");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("consumer.group_id"), "{text}");
        assert!(text.contains("conflicting"), "{text}");
        Ok(())
    });
}

#[cfg(not(feature = "tls"))]
#[test]
fn tls_protocols_fail_without_the_tls_feature_and_never_fall_back() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("kafka.security.protocol"), "{text}");
        assert!(
            text.contains("SASL_SSL needs TLS, which this build does not include"),
            "{text}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_USE_SSL", "true");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("SSL needs TLS"), "{text}");
        assert!(text.contains("KAFKA_USE_SSL"), "{text}");
        Ok(())
    });
}

/// `tests/fixtures/tls/<name>`, absolute (a jail changes the directory).
#[cfg(feature = "tls")]
fn fixture(name: &str) -> String {
    format!("{}/tests/fixtures/tls/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[cfg(feature = "tls")]
#[test]
fn tls_files_are_read_and_checked_at_validation() {
    // A CA alone, and mutual TLS with an encrypted key and its password.
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_USE_SSL", "true");
        jail.set_env("KAFKA_SSL_CAFILE", fixture("ca.pem"));
        let loaded = load_in_jail(None).unwrap();
        assert_eq!(
            loaded.config.kafka.security.protocol,
            kafka_actors::config::SecurityProtocol::Ssl
        );
        jail.set_env("KAFKA_SSL_CERTFILE", fixture("client.crt"));
        jail.set_env("KAFKA_SSL_KEYFILE", fixture("client-encrypted.key"));
        jail.set_env("KAFKA_SSL_PASSWORD", "fixture-key-password");
        let loaded = load_in_jail(None).unwrap();
        assert!(!format!("{:?}", loaded.config).contains("fixture-key-password"));
        Ok(())
    });
    // Each bad file or combination names its key and the file.
    // (variables, the key named, the message)
    type Case<'a> = (&'a [(&'a str, String)], &'a str, &'a str);
    let cases: &[Case<'_>] = &[
        (
            &[("KAFKA_SSL_CAFILE", "/nonexistent/ca.pem".to_owned())],
            "kafka.security.ssl.ca_file",
            "cannot read /nonexistent/ca.pem",
        ),
        (
            &[("KAFKA_SSL_CAFILE", fixture("client.key"))],
            "kafka.security.ssl.ca_file",
            "holds no PEM certificate",
        ),
        (
            &[("KAFKA_SSL_CERTFILE", fixture("client.crt"))],
            "kafka.security.ssl.key_file",
            "mutual TLS needs the client certificate's private key too",
        ),
        (
            &[("KAFKA_SSL_KEYFILE", fixture("client.key"))],
            "kafka.security.ssl.cert_file",
            "mutual TLS needs the client certificate too",
        ),
        (
            &[
                ("KAFKA_SSL_CERTFILE", fixture("client.crt")),
                ("KAFKA_SSL_KEYFILE", fixture("client-encrypted.key")),
            ],
            "kafka.security.ssl.key_password",
            "holds an encrypted key: set its password",
        ),
        (
            &[
                ("KAFKA_SSL_CERTFILE", fixture("client.crt")),
                ("KAFKA_SSL_KEYFILE", fixture("client-encrypted.key")),
                ("KAFKA_SSL_PASSWORD", "wrong-password-7".to_owned()),
            ],
            "kafka.security.ssl.key_password",
            "cannot decrypt the key",
        ),
        (
            &[
                ("KAFKA_SSL_CERTFILE", fixture("client.crt")),
                ("KAFKA_SSL_KEYFILE", fixture("client.key")),
                ("KAFKA_SSL_PASSWORD", "wrong-password-7".to_owned()),
            ],
            "kafka.security.ssl.key_password",
            "is not encrypted",
        ),
        (
            &[
                ("KAFKA_SSL_CERTFILE", fixture("client.crt")),
                ("KAFKA_SSL_KEYFILE", fixture("other.key")),
            ],
            "kafka.security.ssl.key_file",
            "cannot be used with the certificate",
        ),
    ];
    for (env, key, message) in cases {
        Jail::expect_with(|jail| {
            jail.clear_env();
            jail.set_env("KAFKA_SECURITY_PROTOCOL", "SSL");
            for (name, value) in *env {
                jail.set_env(name, value);
            }
            let text = problems(&load_in_jail(None).unwrap_err());
            assert!(text.contains(&format!("{key}: ")), "{key}: {text}");
            assert!(text.contains(message), "{message}: {text}");
            assert!(!text.contains("wrong-password-7"), "{text}");
            Ok(())
        });
    }
    // SASL_SSL needs the SASL settings; TLS settings without TLS fail.
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "SASL_SSL");
        jail.set_env("KAFKA_SSL_CAFILE", fixture("ca.pem"));
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(
            text.contains("kafka.security.sasl.mechanism: SASL_SSL needs a mechanism"),
            "{text}"
        );
        assert!(text.contains("kafka.security.sasl.password"), "{text}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT");
        jail.set_env("KAFKA_SASL_MECHANISM", "PLAIN");
        jail.set_env("KAFKA_SASL_USERNAME", "u");
        jail.set_env("KAFKA_SASL_PASSWORD", "p");
        jail.set_env("KAFKA_SSL_CHECK_HOSTNAME", "false");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(
            text.contains("kafka.security.ssl.check_hostname: a TLS setting is given"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn secrets_are_read_from_file_variables() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("sasl-password", "from-a-file-1\n")?;
        jail.create_file("token", "admin-token-2\r\n")?;
        let dir = jail.directory().to_owned();
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT");
        jail.set_env("KAFKA_SASL_MECHANISM", "PLAIN");
        jail.set_env("KAFKA_SASL_USERNAME", "u");
        jail.set_env(
            "KAFKA_SASL_PASSWORD_FILE",
            dir.join("sasl-password").display(),
        );
        jail.set_env(
            "KAFKA_ACTORS_HTTP__ADMIN_TOKEN_FILE",
            dir.join("token").display(),
        );
        let loaded = load_in_jail(None).unwrap();
        let sasl = &loaded.config.kafka.security.sasl;
        assert_eq!(
            sasl.password.as_ref().map(|p| p.expose()),
            Some("from-a-file-1")
        );
        assert_eq!(
            loaded.config.http.admin_token.as_ref().map(|p| p.expose()),
            Some("admin-token-2")
        );
        assert_eq!(
            loaded.provenance.source_of("kafka.security.sasl.password"),
            "environment variable KAFKA_SASL_PASSWORD_FILE"
        );

        // The same value in both variables is fine; different ones are
        // refused without quoting either.
        jail.set_env("KAFKA_SASL_PASSWORD", "from-a-file-1");
        load_in_jail(None).unwrap();
        jail.set_env("KAFKA_SASL_PASSWORD", "another-one-3");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("conflicting environment variables"), "{text}");
        assert!(
            !text.contains("from-a-file-1") && !text.contains("another-one-3"),
            "{text}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("empty", "")?;
        let dir = jail.directory().to_owned();
        jail.set_env("KAFKA_SSL_PASSWORD_FILE", "/nonexistent/key-password");
        jail.set_env(
            "KAFKA_ACTORS_KAFKA__SECURITY__SASL__PASSWORD_FILE",
            dir.join("empty").display(),
        );
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(
            text.contains("kafka.security.ssl.key_password: cannot read /nonexistent/key-password"),
            "{text}"
        );
        assert!(text.contains("KAFKA_SSL_PASSWORD_FILE"), "{text}");
        assert!(text.contains("is empty"), "{text}");
        assert!(
            text.contains("KAFKA_ACTORS_KAFKA__SECURITY__SASL__PASSWORD_FILE"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn sasl_plaintext_needs_a_supported_mechanism_a_user_and_a_password() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("kafka.security.sasl.mechanism"), "{text}");
        assert!(text.contains("kafka.security.sasl.username"), "{text}");
        assert!(text.contains("kafka.security.sasl.password"), "{text}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT");
        jail.set_env("KAFKA_SASL_MECHANISM", "OAUTHBEARER");
        jail.set_env("KAFKA_SASL_USERNAME", "u");
        jail.set_env("KAFKA_SASL_PASSWORD", "hunter2-secret");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("OAUTHBEARER is not supported"), "{text}");
        assert!(!text.contains("hunter2-secret"), "{text}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext");
        jail.set_env("KAFKA_SASL_MECHANISM", "scram-sha-512");
        jail.set_env("KAFKA_SASL_USERNAME", "u");
        jail.set_env("KAFKA_SASL_PASSWORD", "hunter2-secret");
        let loaded = load_in_jail(None).unwrap();
        let sec = &loaded.config.kafka.security;
        assert_eq!(
            sec.protocol,
            kafka_actors::config::SecurityProtocol::SaslPlaintext
        );
        assert_eq!(
            sec.sasl.mechanism,
            Some(kafka_actors::config::SaslMechanism::ScramSha512)
        );
        assert!(!format!("{:?}", loaded.config).contains("hunter2-secret"));
        Ok(())
    });
}

#[test]
fn sasl_settings_with_plaintext_fail_without_printing_the_password() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SASL_USERNAME", "archon");
        jail.set_env("KAFKA_SASL_PASSWORD", "hunter2-secret");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("kafka.security.sasl"), "{text}");
        assert!(!text.contains("hunter2-secret"), "{text}");
        Ok(())
    });
}

#[test]
fn lz4_is_refused_in_the_default_build() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_COMPRESSION", "lz4");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("producer.compression_type"), "{text}");
        assert!(text.contains("lz4 is not available"), "{text}");
        Ok(())
    });
}

#[test]
fn acks_other_than_all_are_refused_with_the_reason() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_PRODUCER_ACKS", "0");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("acks=0"), "{text}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_REQUIRED_ACKS", "leader");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(
            text.contains("acks=1 (leader) cannot be honoured"),
            "{text}"
        );
        assert!(
            text.contains("rskafka always produces with acks=all"),
            "{text}"
        );
        assert!(text.contains("KAFKA_REQUIRED_ACKS"), "{text}");
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_PRODUCER_ACKS", "-1");
        let loaded = load_in_jail(None).unwrap();
        assert_eq!(loaded.config.producer.acks, Acks::All);
        Ok(())
    });
}

#[test]
fn missing_explicit_file_is_an_error() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        let text = problems(&load_in_jail(Some("nope.toml")).unwrap_err());
        assert!(text.contains("nope.toml"), "{text}");
        assert!(text.contains("not found"), "{text}");
        Ok(())
    });
}

#[test]
fn toml_syntax_error_names_the_file() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("broken.toml", "[consumer\nmax_poll_records = 1\n")?;
        let text = problems(&load_in_jail(Some("broken.toml")).unwrap_err());
        assert!(text.contains("broken.toml"), "{text}");
        Ok(())
    });
}

#[test]
fn readme_documents_every_key_and_seed_variable() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    for var in kafka_actors::config::SEED_VARIABLES {
        assert!(readme.contains(var.name), "README lacks {}", var.name);
    }
    assert!(readme.contains("KAFKA_USE_SSL"));

    fn leaves(prefix: &str, v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    leaves(&key, v, out);
                }
            }
            _ => out.push(prefix.to_owned()),
        }
    }
    let mut keys = Vec::new();
    leaves(
        "",
        &serde_json::to_value(Config::default()).unwrap(),
        &mut keys,
    );
    assert!(keys.len() > 30, "{keys:?}");
    for key in keys.iter().filter(|k| *k != "topics") {
        assert!(
            readme.contains(&format!("`{key}`")),
            "README lacks the key `{key}`"
        );
    }
}

#[test]
fn prefixed_values_keep_their_text_where_text_is_expected() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_ACTORS_CONSUMER__GROUP_ID", "123");
        jail.set_env("KAFKA_ACTORS_KAFKA__CLIENT_ID", "true");
        jail.set_env("KAFKA_ACTORS_CONSUMER__ENABLE_AUTO_COMMIT", "yes");
        jail.set_env("KAFKA_ACTORS_TOPICS__ORDERS__PARTITIONS", "6");
        jail.set_env(
            "KAFKA_ACTORS_TOPICS__ORDERS__CONFIGS__CLEANUP_POLICY",
            "compact",
        );
        let c = load_in_jail(None).unwrap().config;
        assert_eq!(c.consumer.group_id, "123");
        assert_eq!(c.kafka.client_id, "true");
        assert!(c.consumer.enable_auto_commit);
        assert_eq!(c.topics["orders"].partitions, 6);
        assert_eq!(c.topics["orders"].configs["cleanup.policy"], "compact");
        Ok(())
    });
}

#[test]
fn secrets_never_appear_in_errors() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        // Unquoted digits are still a password.
        jail.create_file(
            "num.toml",
            "[kafka.security.sasl]\nusername = \"u\"\npassword = 987654321\n",
        )?;
        let text = problems(&load_in_jail(Some("num.toml")).unwrap_err());
        assert!(!text.contains("987654321"), "{text}");
        assert!(text.contains("kafka.security.sasl.password"), "{text}");
        // A TOML syntax error must not quote the line holding the secret.
        jail.create_file(
            "broken.toml",
            "[kafka.security.sasl]\npassword = \"hunter2-secret\n",
        )?;
        let text = problems(&load_in_jail(Some("broken.toml")).unwrap_err());
        assert!(!text.contains("hunter2"), "{text}");
        assert!(text.contains("line 2"), "{text}");
        // A value of the wrong shape is reported without its text.
        jail.create_file(
            "list.toml",
            "[kafka.security.sasl]\npassword = [\"s3cr3t-in-a-list\"]\n",
        )?;
        let text = problems(&load_in_jail(Some("list.toml")).unwrap_err());
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(text.contains("not shown"), "{text}");
        Ok(())
    });
}

#[test]
fn a_bad_list_element_does_not_hide_other_problems() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "bad.toml",
            "[kafka]\nbootstrap_servers = [\"a:1\", 5]\n\n[consumer]\nmax_poll_records = 0\n",
        )?;
        let err = load_in_jail(Some("bad.toml")).unwrap_err();
        let text = problems(&err);
        assert!(text.contains("kafka.bootstrap_servers"), "{text}");
        assert!(text.contains("consumer.max_poll_records"), "{text}");
        Ok(())
    });
}

#[test]
fn unset_keys_under_a_set_table_report_the_default_as_their_source() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_TOPIC_REQUESTS", "req");
        let loaded = load_in_jail(None).unwrap();
        let p = &loaded.provenance;
        assert_eq!(
            p.source_of("topics.requests.name"),
            "environment variable KAFKA_TOPIC_REQUESTS"
        );
        assert_eq!(
            p.source_of("topics.requests.partitions"),
            "built-in default"
        );
        Ok(())
    });
}

#[test]
fn empty_variables_count_as_unset() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SSL_CAFILE", "");
        jail.set_env("KAFKA_SASL_MECHANISM", " ");
        jail.set_env("KAFKA_USE_SSL", "");
        jail.set_env("KAFKA_ACTORS_KAFKA__SECURITY__SASL__USERNAME", "");
        let loaded = load_in_jail(None).unwrap();
        assert_eq!(loaded.config, Config::default());
        Ok(())
    });
}

#[test]
fn heartbeat_follows_a_short_session_timeout_unless_set() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SESSION_TIMEOUT_MS", "2000");
        let c = load_in_jail(None).unwrap().config;
        assert_eq!(c.consumer.heartbeat_interval_ms, 666);
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SESSION_TIMEOUT_MS", "2000");
        jail.set_env("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS", "2500");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(
            text.contains("KAFKA_CONSUMER_HEARTBEAT_INTERVAL_MS"),
            "{text}"
        );
        assert!(text.contains("KAFKA_SESSION_TIMEOUT_MS"), "{text}");
        Ok(())
    });
}

#[test]
fn protocol_prefixes_in_bootstrap_servers_are_refused() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_BOOTSTRAP_SERVERS", "SASL_SSL://b:9093");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("kafka.security.protocol"), "{text}");
        assert!(text.contains("SASL_SSL://b:9093"), "{text}");
        Ok(())
    });
}

#[test]
fn each_security_setting_with_plaintext_is_named_with_its_variable() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.set_env("KAFKA_SASL_USERNAME", "u");
        jail.set_env("KAFKA_SSL_CAFILE", "/etc/ca.pem");
        let text = problems(&load_in_jail(None).unwrap_err());
        assert!(text.contains("kafka.security.sasl.username"), "{text}");
        assert!(
            text.contains("environment variable KAFKA_SASL_USERNAME"),
            "{text}"
        );
        assert!(text.contains("kafka.security.ssl.ca_file"), "{text}");
        assert!(
            text.contains("environment variable KAFKA_SSL_CAFILE"),
            "{text}"
        );
        Ok(())
    });
}

#[test]
fn bad_topic_config_names_are_refused() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "t.toml",
            "[topics.orders.configs]\n\"Retention MS\" = \"1\"\n",
        )?;
        let text = problems(&load_in_jail(Some("t.toml")).unwrap_err());
        assert!(text.contains("not a Kafka topic config name"), "{text}");
        Ok(())
    });
}

#[test]
fn routes_are_validated_and_jq_programs_compiled_at_load() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "routes.toml",
            r#"
[routes.shape]
topic = "requests"
handler = "jq"
program = "{ok: .a"

[routes.copy]
topic = "events"
handler = "forward"

[routes.twice]
topic = "events"
handler = "echo"
"#,
        )?;
        let text = problems(&load_in_jail(Some("routes.toml")).unwrap_err());
        assert!(text.contains("routes.shape.program"), "{text}");
        assert!(text.contains("routes.copy.forward_to"), "{text}");
        assert!(
            text.contains("already takes all records of topic events"),
            "{text}"
        );
        Ok(())
    });
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "ok.toml",
            "[routes.shape]\ntopic = \"requests\"\nhandler = \"jq\"\nprogram = \"{ok: .a}\"\nreply_topic = \"responses\"\n",
        )?;
        let c = load_in_jail(Some("ok.toml")).unwrap().config;
        assert_eq!(c.routes["shape"].program.as_deref(), Some("{ok: .a}"));
        Ok(())
    });
}

#[test]
fn failure_tables_refuse_retrying_bad_input_and_unknown_classes() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "actions.toml",
            r#"
[pipeline]
pause_ms = 50
[pipeline.on_failure]
deserialization = "retry"
oversize = "retry"
infrastructure = "dlq"
[pipeline.on_failure.codes]
"" = "dlq"
[routes.orders]
topic = "orders"
[routes.orders.on_failure]
validation = "retry"
dependency = "pause"
[routes.orders.circuit_breaker]
ratio = 1.5
"#,
        )?;
        let text = problems(&load_in_jail(Some("actions.toml")).unwrap_err());
        assert!(
            text.contains("pipeline.on_failure.deserialization: `retry` cannot help"),
            "{text}"
        );
        assert!(
            text.contains("routes.orders.on_failure.validation: `retry` cannot help"),
            "{text}"
        );
        assert!(
            text.contains("pipeline.on_failure.oversize: `retry` cannot help"),
            "{text}"
        );
        assert!(
            text.contains("pipeline.on_failure.codes: an error code must have"),
            "{text}"
        );
        assert!(!text.contains("infrastructure"), "{text}");
        assert!(text.contains("pipeline.pause_ms"), "{text}");
        assert!(
            text.contains("routes.orders.circuit_breaker.ratio"),
            "{text}"
        );
        assert!(!text.contains("dependency"), "{text}");

        jail.create_file("typo.toml", "[pipeline.on_failure]\nprocesing = \"dlq\"\n")?;
        let text = problems(&load_in_jail(Some("typo.toml")).unwrap_err());
        assert!(text.contains("procesing"), "{text}");
        jail.create_file(
            "action.toml",
            "[pipeline.on_failure]\nprocessing = \"ignore\"\n",
        )?;
        let text = problems(&load_in_jail(Some("action.toml")).unwrap_err());
        assert!(text.contains("ignore"), "{text}");
        Ok(())
    });
}

#[test]
fn alert_settings_are_validated_naming_the_key() {
    Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file(
            "alerts.toml",
            "[alerts]\ninterval_ms = 10\nwebhook_url = \"https://hooks.example/x\"\n\
             [alerts.rules.lag]\nmetric = \"consumer_lag_records\"\nabove = 5\nwindow_ms = 5\n",
        )?;
        let text = problems(&load_in_jail(Some("alerts.toml")).unwrap_err());
        for key in [
            "alerts.interval_ms",
            "alerts.webhook_url",
            "alerts.rules.lag.window_ms",
        ] {
            assert!(text.contains(key), "{key}: {text}");
        }
        assert!(text.contains("https is not supported"), "{text}");
        jail.create_file(
            "metric.toml",
            "[alerts.rules.lag]\nmetric = \"lag\"\nabove = 5\n",
        )?;
        let text = problems(&load_in_jail(Some("metric.toml")).unwrap_err());
        assert!(text.contains("alerts.rules.lag.metric"), "{text}");
        jail.create_file(
            "good.toml",
            "[alerts]\nwebhook_url = \"http://127.0.0.1:9000/alerts\"\n\
             [alerts.rules.lag]\nmetric = \"consumer_lag_seconds\"\nabove = 30\nseverity = \"critical\"\n",
        )?;
        jail.set_env("KAFKA_ACTORS_ALERTS__RULES__LAG__FOR_MS", "5000");
        let c = load_in_jail(Some("good.toml")).unwrap().config;
        let rule = &c.alerts.rules["lag"];
        assert_eq!(
            (rule.above, rule.for_ms, rule.window_ms),
            (30.0, 5000, 60_000)
        );
        Ok(())
    });
}
