//! Health status logic, free of actix: what a set of check results means.

use std::time::SystemTime;

use serde::Serialize;

use crate::config::Config;
use crate::kafka::{BrokerInfo, ClusterInfo};
use crate::topics::{TopicReport, TopicStatistics, TopicStatus};

/// Overall or per-component status, as seed 003 spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Everything works.
    Healthy,
    /// Working, with something to look at.
    Degraded,
    /// Not working.
    Unhealthy,
}

/// The outcome of the latest broker check.
#[derive(Debug, Clone)]
pub struct BrokerCheck {
    /// When it finished.
    pub at: SystemTime,
    /// What it learnt, or why it failed.
    pub outcome: Result<ClusterInfo, String>,
}

/// The brokers component of a health report.
#[derive(Debug, Clone, Serialize)]
pub struct BrokersHealth {
    /// Status of the connection to the cluster.
    pub status: Status,
    /// RFC 3339 time of the last check, if one finished.
    pub last_check: Option<String>,
    /// The cluster id, when known.
    pub cluster_id: Option<String>,
    /// Brokers seen at the last successful check.
    pub brokers: Vec<BrokerInfo>,
    /// The error of the last check, if it failed.
    pub error: Option<String>,
}

/// The latest verification of the declared topics (seed 003's topic
/// health), or why it could not run.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum TopicCheck {
    /// `status`, `required_topics`, `existing_topics`, `missing_topics`,
    /// `last_verification`, drift.
    Report(TopicReport),
    /// The verification failed (the brokers component says more).
    Failed {
        /// Why.
        error: String,
    },
}

/// Components of a health report.
#[derive(Debug, Clone, Serialize)]
pub struct Components {
    /// The broker connection.
    pub brokers: BrokersHealth,
    /// The declared topics; absent when none are declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<TopicCheck>,
    /// The actors' heartbeats; absent when nothing reports them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actors: Option<ActorsHealth>,
}

/// The actors component of a health report: how many actors of each kind
/// send heartbeats, and the stale ones.
#[derive(Debug, Clone, Serialize)]
pub struct ActorsHealth {
    /// Degraded while an actor is stale.
    pub status: Status,
    /// Actors by kind.
    pub by_kind: std::collections::BTreeMap<&'static str, usize>,
    /// The stale actors.
    pub stale: Vec<super::heartbeat::ActorBeat>,
}

/// Seed 003's `configuration` block.
#[derive(Debug, Clone, Serialize)]
pub struct ConfigurationSummary {
    /// `topic_manager.auto_create`.
    pub auto_create_topics: bool,
    /// `topic_manager.creation_retries`.
    pub creation_retries: u32,
    /// `topic_manager.creation_timeout_secs`.
    pub creation_timeout: u64,
}

/// The deep health report served at `/health` (seed 003's shape, with
/// per-component status and the reasons behind a non-healthy status).
#[derive(Debug, Clone, Serialize)]
pub struct HealthReport {
    /// Overall status: the worst component's.
    pub status: Status,
    /// Why the status is not healthy (empty when it is).
    pub reasons: Vec<String>,
    /// The configured bootstrap servers, comma-separated.
    pub bootstrap_servers: String,
    /// Whether partition consumers are running (false without routes).
    pub consumer_running: bool,
    /// Per-component status.
    pub components: Components,
    /// Configuration summary.
    pub configuration: ConfigurationSummary,
    /// Seed 003's statistics (`topics_created`, `topic_creation_errors`);
    /// absent when no topics are declared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub statistics: Option<TopicStatistics>,
    /// Something in `reasons` stops the service from serving (as opposed to
    /// drift, which only degrades it).
    #[serde(skip)]
    blocking: bool,
}

impl HealthReport {
    /// The report with the actors' heartbeats: a stale actor degrades it
    /// (it stays ready: the actor is being restarted).
    pub fn with_actors(mut self, actors: Vec<super::heartbeat::ActorBeat>) -> Self {
        let mut by_kind = std::collections::BTreeMap::new();
        for a in &actors {
            *by_kind.entry(a.kind).or_insert(0) += 1;
        }
        let stale: Vec<_> = actors.into_iter().filter(|a| a.stale).collect();
        for a in &stale {
            self.reasons.push(format!(
                "{} {} sent no heartbeat for {:.1}s",
                a.kind, a.name, a.last_beat_seconds
            ));
        }
        let status = if stale.is_empty() {
            Status::Healthy
        } else {
            if self.status == Status::Healthy {
                self.status = Status::Degraded;
            }
            Status::Degraded
        };
        self.components.actors = Some(ActorsHealth {
            status,
            by_kind,
            stale,
        });
        self
    }

    /// Ready to serve: the brokers are reachable and, when routes are
    /// configured, the partition consumers run.
    pub fn ready(&self) -> bool {
        self.components.brokers.status == Status::Healthy && !self.blocking
    }
}

/// What the monitor knows about the declared topics.
#[derive(Debug, Clone, Default)]
pub struct TopicsState {
    /// The latest verification, if one ran.
    pub check: Option<TopicCheck>,
    /// The topic manager's counters.
    pub statistics: Option<TopicStatistics>,
}

/// Builds the report from the configuration, the last broker check, the
/// declared topics' state, and whether the pipeline consumes.
///
/// Unhealthy (and not ready): brokers unreachable or declared topics
/// missing. Degraded: not consuming although routes exist (not ready), or
/// topics that drifted from their declaration (still ready).
pub fn report(
    config: &Config,
    check: Option<&BrokerCheck>,
    topics: &TopicsState,
    consuming: bool,
) -> HealthReport {
    let mut reasons = Vec::new();
    let not_consuming = !config.routes.is_empty() && !consuming;
    if not_consuming {
        reasons.push("partition consumers are not running".to_owned());
    }
    let mut missing = false;
    let mut drifted = false;
    match &topics.check {
        Some(TopicCheck::Report(r)) if !r.missing_topics.is_empty() => {
            reasons.push(format!(
                "declared topics missing: {}",
                r.missing_topics.join(", ")
            ));
            missing = true;
        }
        Some(TopicCheck::Report(r)) if r.status == TopicStatus::Degraded => {
            for d in &r.drift {
                reasons.push(format!("topic drift: {} ({})", d.message, d.key));
            }
            drifted = true;
        }
        Some(TopicCheck::Failed { error }) if check.is_some_and(|c| c.outcome.is_ok()) => {
            reasons.push(format!("declared topics could not be verified: {error}"));
            drifted = true;
        }
        _ => {}
    }
    let brokers = match check {
        None => {
            reasons.push("no broker check has completed yet".to_owned());
            BrokersHealth {
                status: Status::Unhealthy,
                last_check: None,
                cluster_id: None,
                brokers: Vec::new(),
                error: None,
            }
        }
        Some(check) => {
            let last_check = Some(humantime::format_rfc3339_seconds(check.at).to_string());
            match &check.outcome {
                Ok(info) => BrokersHealth {
                    status: Status::Healthy,
                    last_check,
                    cluster_id: info.cluster_id.clone(),
                    brokers: info.brokers.clone(),
                    error: None,
                },
                Err(e) => {
                    reasons.push(format!("brokers unreachable: {e}"));
                    BrokersHealth {
                        status: Status::Unhealthy,
                        last_check,
                        cluster_id: None,
                        brokers: Vec::new(),
                        error: Some(e.clone()),
                    }
                }
            }
        }
    };
    let status = match brokers.status {
        Status::Healthy if missing => Status::Unhealthy,
        Status::Healthy if not_consuming || drifted => Status::Degraded,
        other => other,
    };
    let blocking = brokers.status != Status::Healthy || missing || not_consuming;
    HealthReport {
        status,
        reasons,
        bootstrap_servers: config.kafka.bootstrap_servers.join(","),
        consumer_running: consuming,
        components: Components {
            brokers,
            topics: topics.check.clone(),
            actors: None,
        },
        configuration: ConfigurationSummary {
            auto_create_topics: config.topic_manager.auto_create,
            creation_retries: config.topic_manager.creation_retries,
            creation_timeout: config.topic_manager.creation_timeout_secs,
        },
        statistics: topics.statistics.clone(),
        blocking,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn info() -> ClusterInfo {
        ClusterInfo {
            security: crate::kafka::cluster::Security {
                protocol: "PLAINTEXT",
                sasl_mechanism: None,
                sasl_user: None,
                tls_version: None,
                tls_cipher: None,
                tls_hostname_checked: None,
            },
            bootstrap: "h:1".into(),
            cluster_id: Some("c".into()),
            controller_id: 1,
            brokers: vec![BrokerInfo {
                node_id: 1,
                host: "h".into(),
                port: 1,
                rack: None,
            }],
            api_versions: BTreeMap::new(),
        }
    }

    #[test]
    fn status_follows_the_last_check() {
        let config = Config::default();
        let r = report(&config, None, &TopicsState::default(), false);
        assert_eq!(r.status, Status::Unhealthy);
        assert!(!r.ready());
        assert_eq!(r.reasons.len(), 1);

        let ok = BrokerCheck {
            at: SystemTime::now(),
            outcome: Ok(info()),
        };
        let r = report(&config, Some(&ok), &TopicsState::default(), false);
        assert_eq!(r.status, Status::Healthy);
        assert!(r.ready());
        assert!(r.reasons.is_empty());
        assert_eq!(r.components.brokers.brokers.len(), 1);

        let bad = BrokerCheck {
            at: SystemTime::now(),
            outcome: Err("refused".into()),
        };
        let r = report(&config, Some(&bad), &TopicsState::default(), false);
        assert_eq!(r.status, Status::Unhealthy);
        assert!(r.reasons[0].contains("refused"));
    }

    fn topics(missing: &[&str], drift: bool) -> TopicsState {
        let drift = if drift {
            vec![crate::topics::Drift {
                topic: "orders".into(),
                key: "topics.orders.partitions".into(),
                kind: crate::topics::DriftKind::FewerPartitions {
                    declared: 6,
                    actual: 3,
                },
                message: "topic orders has 3 partitions, 6 declared".into(),
            }]
        } else {
            Vec::new()
        };
        TopicsState {
            check: Some(TopicCheck::Report(TopicReport {
                status: if !missing.is_empty() {
                    TopicStatus::Unhealthy
                } else if drift.is_empty() {
                    TopicStatus::Healthy
                } else {
                    TopicStatus::Degraded
                },
                required_topics: vec!["orders".into(), "replies".into()],
                existing_topics: Vec::new(),
                missing_topics: missing.iter().map(|m| (*m).to_owned()).collect(),
                last_verification: Some(SystemTime::now()),
                created_topics: Vec::new(),
                created_concurrently: Vec::new(),
                drift,
                statistics: TopicStatistics::default(),
            })),
            statistics: Some(TopicStatistics {
                topics_created: 2,
                ..TopicStatistics::default()
            }),
        }
    }

    #[test]
    fn missing_topics_are_unhealthy_and_not_ready_drift_only_degrades() {
        let config = Config::default();
        let ok = BrokerCheck {
            at: SystemTime::now(),
            outcome: Ok(info()),
        };
        let r = report(&config, Some(&ok), &topics(&[], false), false);
        assert_eq!(r.status, Status::Healthy);
        assert!(r.ready());
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["components"]["topics"]["status"], "healthy");
        assert_eq!(v["statistics"]["topics_created"], 2);

        let r = report(&config, Some(&ok), &topics(&["replies"], false), false);
        assert_eq!(r.status, Status::Unhealthy);
        assert!(!r.ready());
        assert!(r.reasons[0].contains("replies"), "{:?}", r.reasons);

        let r = report(&config, Some(&ok), &topics(&[], true), false);
        assert_eq!(r.status, Status::Degraded);
        assert!(r.ready());
        assert!(r.reasons[0].contains("topics.orders.partitions"));
    }

    #[test]
    fn serialises_in_seed_003_shape() {
        let r = report(&Config::default(), None, &TopicsState::default(), false);
        let v = serde_json::to_value(&r).unwrap();
        for key in [
            "status",
            "bootstrap_servers",
            "consumer_running",
            "configuration",
        ] {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["status"], "unhealthy");
        assert_eq!(v["configuration"]["creation_retries"], 3);
    }
}
