//! `kafka-actors topics describe|create|delete|verify|align`: the topic
//! manager ([`crate::topics`]) and the admin requests
//! ([`crate::kafka::admin`]) from the command line.

use std::time::Duration;

use crate::cli::{emit, emit_err};
use crate::config::{Config, TopicSpec};
use crate::exit::Exit;
use crate::kafka::ErrorKind;
use crate::kafka::admin::{Admin, ConfigSource};
use crate::topics::{TopicError, TopicManager, TopicReport, TopicStatus};

fn topic_failed(e: &TopicError) -> Exit {
    emit_err(&format!("kafka-actors: {e}"));
    match e {
        TopicError::Invalid { .. } => Exit::Config,
        _ if e.kind() == ErrorKind::Retryable => Exit::Unavailable,
        _ => Exit::Failure,
    }
}

fn print_report(report: &TopicReport, json: bool) {
    if json {
        emit(&serde_json::to_string_pretty(report).unwrap_or_default());
        return;
    }
    emit(&format!(
        "status: {}",
        serde_json::to_value(report.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default()
    ));
    for topic in &report.required_topics {
        let state = if report.created_topics.contains(topic) {
            "created"
        } else if report.missing_topics.contains(topic) {
            "MISSING"
        } else {
            "exists"
        };
        emit(&format!("  {topic}: {state}"));
    }
    for drift in &report.drift {
        emit(&format!("  drift: {} ({})", drift.message, drift.key));
    }
}

/// `topics describe NAME`: partitions with leaders and replicas, and the
/// topic's configs (those set on the topic, or every one with `--all`).
pub async fn describe(config: Config, name: String, all: bool, json: bool) -> Exit {
    let mut admin = match Admin::connect(&config.kafka, config.kafka.request_timeout()).await {
        Ok(a) => a,
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            return Exit::Unavailable;
        }
    };
    let names = [name.clone()];
    let described = match admin.describe_topics(Some(&names)).await {
        Ok(mut r) => r.remove(&name),
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            return Exit::Unavailable;
        }
    };
    let topic = match described {
        Some(Ok(t)) => t,
        Some(Err(e)) => {
            emit_err(&format!("kafka-actors: topic {name}: {e}"));
            return Exit::Failure;
        }
        None => {
            emit_err(&format!("kafka-actors: topic {name} does not exist"));
            return Exit::Failure;
        }
    };
    let configs = match admin.describe_topic_configs(&names).await {
        Ok(mut r) => match r.remove(&name) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                emit_err(&format!("kafka-actors: topic {name}: {e}"));
                return Exit::Failure;
            }
            None => Default::default(),
        },
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            return Exit::Unavailable;
        }
    };
    let configs: Vec<_> = configs
        .into_values()
        .filter(|c| all || c.source == ConfigSource::DynamicTopic)
        .collect();
    if json {
        emit(
            &serde_json::to_string_pretty(&serde_json::json!({
                "topic": topic,
                "configs": configs,
            }))
            .unwrap_or_default(),
        );
        return Exit::Ok;
    }
    emit(&format!(
        "topic {} ({} partitions{})",
        topic.name,
        topic.partition_count(),
        if topic.internal { ", internal" } else { "" }
    ));
    emit("  PARTITION  LEADER  REPLICAS");
    for p in &topic.partitions {
        let replicas: Vec<String> = p.replicas.iter().map(i32::to_string).collect();
        emit(&format!(
            "  {:>9}  {:>6}  {}",
            p.index,
            p.leader,
            replicas.join(",")
        ));
    }
    emit(if all {
        "  configs:"
    } else {
        "  configs set on the topic (--all for every one):"
    });
    for c in &configs {
        let value = if c.sensitive {
            "(sensitive)".to_owned()
        } else {
            c.value.clone().unwrap_or_else(|| "(unset)".to_owned())
        };
        emit(&format!("    {} = {value}", c.name));
    }
    Exit::Ok
}

/// `topics create`: every declared topic that is missing, or one topic
/// given on the command line; seed 003's workflow either way (validate,
/// create with retries, verify).
pub async fn create(
    mut config: Config,
    name: Option<String>,
    partitions: i32,
    replication_factor: i16,
    configs: Vec<(String, String)>,
    json: bool,
) -> Exit {
    if let Some(name) = name {
        config.topics = [(
            name,
            TopicSpec {
                name: None,
                partitions,
                replication_factor,
                configs: configs.into_iter().collect(),
            },
        )]
        .into();
    } else if config.topics.is_empty() {
        emit_err(
            "kafka-actors: no topics declared ([topics.<name>] in the configuration); \
             name one: topics create NAME --partitions N",
        );
        return Exit::Usage;
    }
    // An explicit command creates whatever topic_manager.auto_create says.
    config.topic_manager.auto_create = true;
    match TopicManager::new().ensure(&config).await {
        Ok(report) => {
            print_report(&report, json);
            Exit::Ok
        }
        Err(e) => topic_failed(&e),
    }
}

/// `topics delete NAME... --yes`.
pub async fn delete(config: Config, names: Vec<String>, yes: bool) -> Exit {
    if !yes {
        emit_err(&format!(
            "kafka-actors: deleting {} removes its records for good; pass --yes to confirm",
            names.join(", ")
        ));
        return Exit::Usage;
    }
    let mut admin = match Admin::connect(&config.kafka, config.kafka.request_timeout()).await {
        Ok(a) => a,
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            return Exit::Unavailable;
        }
    };
    let timeout = Duration::from_secs(config.topic_manager.creation_timeout_secs);
    match admin.delete_topics(&names, timeout).await {
        Ok(results) => {
            let mut exit = Exit::Ok;
            for (topic, result) in results {
                match result {
                    Ok(()) => emit(&format!("deleted {topic}")),
                    Err(e) => {
                        emit_err(&format!("kafka-actors: {e}"));
                        exit = Exit::Failure;
                    }
                }
            }
            exit
        }
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            Exit::Unavailable
        }
    }
}

/// `topics verify`: exit 0 when every declared topic exists as declared,
/// 1 when one is missing or differs.
pub async fn verify(config: Config, json: bool) -> Exit {
    match TopicManager::new().verify(&config).await {
        Ok(report) => {
            print_report(&report, json);
            if report.status == TopicStatus::Healthy {
                Exit::Ok
            } else {
                Exit::Failure
            }
        }
        Err(e) => topic_failed(&e),
    }
}

/// `topics align [--dry-run]`: create missing topics, add partitions, set
/// differing configs (never removes partitions).
pub async fn align(config: Config, dry_run: bool, json: bool) -> Exit {
    let manager = TopicManager::new();
    let plan = match manager.plan_alignment(&config).await {
        Ok(plan) => plan,
        Err(e) => return topic_failed(&e),
    };
    if json && dry_run {
        emit(&serde_json::to_string_pretty(&plan).unwrap_or_default());
        return Exit::Ok;
    }
    if !json {
        if plan.is_empty() {
            emit("nothing to do: every declared topic matches");
        }
        for action in &plan.actions {
            emit(&format!("{}{action}", if dry_run { "would " } else { "" }));
        }
        for note in &plan.notes {
            emit(&format!("note: {note}"));
        }
    }
    if dry_run || plan.is_empty() {
        return Exit::Ok;
    }
    match manager.apply_alignment(&config, &plan).await {
        Ok(done) => {
            if json {
                emit(&serde_json::to_string_pretty(&done).unwrap_or_default());
            } else {
                print_report(&done.report, false);
            }
            if done.report.status == TopicStatus::Healthy {
                Exit::Ok
            } else {
                Exit::Failure
            }
        }
        Err(e) => topic_failed(&e),
    }
}
