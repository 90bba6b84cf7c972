//! Step 2 of seed 003's workflow: check every declared topic before anything
//! is sent to Kafka, and report **all** problems at once, each naming the
//! configuration key to change (`topics.requests.partitions`).
//!
//! The rules are Kafka's own (`org.apache.kafka.common.internals.Topic`):
//! 1-249 characters of `[a-zA-Z0-9._-]`, not `.` or `..`, and no two topics
//! that differ only by `.` versus `_` (Kafka refuses the second, because the
//! two collide in metric names). Messages are seed 003's where it has one.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::config::TopicSpec;

/// Longest topic name Kafka accepts.
pub const MAX_TOPIC_NAME_LEN: usize = 249;

/// One problem with one declared topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ValidationProblem {
    /// The configuration key to change (`topics.requests.partitions`).
    pub key: String,
    /// The Kafka topic name the problem concerns.
    pub topic: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ValidationProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Why Kafka would refuse `name` as a topic name, if it would.
pub fn topic_name_problem(name: &str) -> Option<String> {
    if name.is_empty() || name.len() > MAX_TOPIC_NAME_LEN {
        return Some("Topic name must be between 1 and 249 characters".to_owned());
    }
    if name == "." || name == ".." {
        return Some(format!(
            "Topic name \"{name}\" is not allowed: \".\" and \"..\" are reserved"
        ));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    {
        return Some(format!(
            "Topic name contains invalid characters: \"{name}\" (only ASCII letters, digits, \
             '.', '_' and '-' are allowed)"
        ));
    }
    None
}

/// The key naming a declared topic's Kafka name: `topics.<logical>.name`
/// when the name is set explicitly, else the table itself.
pub(crate) fn name_key(logical: &str, spec: &TopicSpec) -> String {
    if spec.name.is_some() {
        format!("topics.{logical}.name")
    } else {
        format!("topics.{logical}")
    }
}

/// Checks every declared topic; empty when all are valid.
pub fn validate_topics(topics: &BTreeMap<String, TopicSpec>) -> Vec<ValidationProblem> {
    let mut problems = Vec::new();
    let mut fail = |key: String, topic: &str, message: String| {
        problems.push(ValidationProblem {
            key,
            topic: topic.to_owned(),
            message,
        });
    };
    // Kafka name -> logical name, and metric-collision form -> Kafka name.
    let mut names: BTreeMap<&str, &str> = BTreeMap::new();
    let mut collisions: BTreeMap<String, (&str, &str)> = BTreeMap::new();
    for (logical, spec) in topics {
        let name = spec.topic_name(logical);
        let key = |field: &str| format!("topics.{logical}.{field}");
        let name_ok = match topic_name_problem(name) {
            Some(message) => {
                fail(name_key(logical, spec), name, message);
                false
            }
            None => true,
        };
        if let Some(other) = names.insert(name, logical) {
            fail(
                name_key(logical, spec),
                name,
                format!("Topic name \"{name}\" is also declared as topics.{other}"),
            );
        } else if name_ok {
            let unified = name.replace('.', "_");
            if let Some((other_name, other_logical)) = collisions.get(&unified) {
                fail(
                    name_key(logical, spec),
                    name,
                    format!(
                        "Topic name \"{name}\" collides with \"{other_name}\" \
                         (topics.{other_logical}): Kafka treats '.' and '_' alike in metric \
                         names and refuses the second topic; rename one of them"
                    ),
                );
            } else {
                collisions.insert(unified, (name, logical));
            }
        }
        if spec.partitions <= 0 {
            fail(
                key("partitions"),
                name,
                format!("Partition count must be greater than 0 for topic {name}"),
            );
        }
        if spec.replication_factor <= 0 {
            fail(
                key("replication_factor"),
                name,
                format!("Replication factor must be greater than 0 for topic {name}"),
            );
        }
        for (config, value) in &spec.configs {
            let config_key = format!("topics.{logical}.configs.{config}");
            if config.is_empty()
                || !config
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.')
            {
                fail(
                    config_key,
                    name,
                    format!(
                        "\"{config}\" is not a Kafka topic config name for topic {name} \
                         (lower case, digits and dots, such as retention.ms)"
                    ),
                );
            } else if value.trim().is_empty() {
                fail(
                    config_key,
                    name,
                    format!("Config {config} of topic {name} has an empty value"),
                );
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(partitions: i32, replication_factor: i16) -> TopicSpec {
        TopicSpec {
            partitions,
            replication_factor,
            ..TopicSpec::default()
        }
    }

    fn named(name: &str) -> TopicSpec {
        TopicSpec {
            name: Some(name.to_owned()),
            ..TopicSpec::default()
        }
    }

    #[test]
    fn valid_topics_have_no_problems() {
        let topics = BTreeMap::from([
            ("requests".to_owned(), spec(3, 1)),
            ("responses".to_owned(), named("gigaoffice-responses")),
            (
                "dlq".to_owned(),
                TopicSpec {
                    configs: BTreeMap::from([
                        ("retention.ms".to_owned(), "604800000".to_owned()),
                        ("cleanup.policy".to_owned(), "compact".to_owned()),
                    ]),
                    ..TopicSpec::default()
                },
            ),
        ]);
        assert_eq!(validate_topics(&topics), vec![]);
    }

    #[test]
    fn every_problem_is_reported_with_seed_messages_and_keys() {
        let topics = BTreeMap::from([
            ("requests".to_owned(), spec(0, 0)),
            ("responses".to_owned(), named(&"x".repeat(250))),
            ("dlq".to_owned(), named("bad topic")),
            ("dots".to_owned(), named("..")),
            ("empty".to_owned(), named("")),
        ]);
        let problems = validate_topics(&topics);
        let got: Vec<(String, String)> = problems
            .iter()
            .map(|p| (p.key.clone(), p.message.clone()))
            .collect();
        let expect = |key: &str, message: &str| {
            assert!(
                got.iter().any(|(k, m)| k == key && m == message),
                "missing ({key}, {message}) in {got:#?}"
            );
        };
        expect(
            "topics.requests.partitions",
            "Partition count must be greater than 0 for topic requests",
        );
        expect(
            "topics.requests.replication_factor",
            "Replication factor must be greater than 0 for topic requests",
        );
        expect(
            "topics.responses.name",
            "Topic name must be between 1 and 249 characters",
        );
        expect(
            "topics.empty.name",
            "Topic name must be between 1 and 249 characters",
        );
        expect(
            "topics.dlq.name",
            "Topic name contains invalid characters: \"bad topic\" (only ASCII letters, \
             digits, '.', '_' and '-' are allowed)",
        );
        expect(
            "topics.dots.name",
            "Topic name \"..\" is not allowed: \".\" and \"..\" are reserved",
        );
        assert_eq!(problems.len(), 6, "{got:#?}");
    }

    #[test]
    fn names_follow_kafka_rules() {
        assert!(topic_name_problem("omninode.codegen.request.validate.v1").is_none());
        assert!(topic_name_problem("a-b_c.D9").is_none());
        assert!(topic_name_problem(&"x".repeat(249)).is_none());
        assert!(topic_name_problem(&"x".repeat(250)).is_some());
        assert!(topic_name_problem(".").is_some());
        assert!(topic_name_problem("...").is_none());
        assert!(topic_name_problem("é").is_some());
        assert!(topic_name_problem("a/b").is_some());
    }

    #[test]
    fn duplicate_and_colliding_names_are_problems() {
        let topics = BTreeMap::from([
            ("a".to_owned(), named("orders.v1")),
            ("b".to_owned(), named("orders_v1")),
            ("c".to_owned(), named("orders.v1")),
        ]);
        let problems = validate_topics(&topics);
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert_eq!(problems[0].key, "topics.b.name");
        assert!(
            problems[0]
                .message
                .contains("collides with \"orders.v1\" (topics.a)"),
            "{}",
            problems[0]
        );
        assert_eq!(problems[1].key, "topics.c.name");
        assert!(
            problems[1].message.contains("also declared as topics.a"),
            "{}",
            problems[1]
        );
    }

    #[test]
    fn bad_configs_name_their_key() {
        let topics = BTreeMap::from([(
            "t".to_owned(),
            TopicSpec {
                configs: BTreeMap::from([
                    ("Retention.MS".to_owned(), "1".to_owned()),
                    ("retention.ms".to_owned(), " ".to_owned()),
                ]),
                ..TopicSpec::default()
            },
        )]);
        let problems = validate_topics(&topics);
        let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            vec![
                "topics.t.configs.Retention.MS",
                "topics.t.configs.retention.ms"
            ]
        );
        assert_eq!(problems[0].topic, "t");
        assert_eq!(
            problems[1].to_string(),
            "topics.t.configs.retention.ms: Config retention.ms of topic t has an empty value"
        );
    }
}
