//! Health status logic, free of actix: what a set of check results means.

use std::time::SystemTime;

use serde::Serialize;

use crate::config::Config;
use crate::kafka::{BrokerInfo, ClusterInfo};

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

/// Components of a health report.
#[derive(Debug, Clone, Serialize)]
pub struct Components {
    /// The broker connection.
    pub brokers: BrokersHealth,
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
}

impl HealthReport {
    /// Ready to serve: the brokers are reachable and, when routes are
    /// configured, the partition consumers run.
    pub fn ready(&self) -> bool {
        self.components.brokers.status == Status::Healthy && self.reasons.is_empty()
    }
}

/// Builds the report from the configuration, the last broker check, and
/// whether the pipeline consumes.
pub fn report(config: &Config, check: Option<&BrokerCheck>, consuming: bool) -> HealthReport {
    let mut reasons = Vec::new();
    if !config.routes.is_empty() && !consuming {
        reasons.push("partition consumers are not running".to_owned());
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
        Status::Healthy if !reasons.is_empty() => Status::Degraded,
        other => other,
    };
    HealthReport {
        status,
        reasons,
        bootstrap_servers: config.kafka.bootstrap_servers.join(","),
        consumer_running: consuming,
        components: Components { brokers },
        configuration: ConfigurationSummary {
            auto_create_topics: config.topic_manager.auto_create,
            creation_retries: config.topic_manager.creation_retries,
            creation_timeout: config.topic_manager.creation_timeout_secs,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn info() -> ClusterInfo {
        ClusterInfo {
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
        let r = report(&config, None, false);
        assert_eq!(r.status, Status::Unhealthy);
        assert!(!r.ready());
        assert_eq!(r.reasons.len(), 1);

        let ok = BrokerCheck {
            at: SystemTime::now(),
            outcome: Ok(info()),
        };
        let r = report(&config, Some(&ok), false);
        assert_eq!(r.status, Status::Healthy);
        assert!(r.ready());
        assert!(r.reasons.is_empty());
        assert_eq!(r.components.brokers.brokers.len(), 1);

        let bad = BrokerCheck {
            at: SystemTime::now(),
            outcome: Err("refused".into()),
        };
        let r = report(&config, Some(&bad), false);
        assert_eq!(r.status, Status::Unhealthy);
        assert!(r.reasons[0].contains("refused"));
    }

    #[test]
    fn serialises_in_seed_003_shape() {
        let r = report(&Config::default(), None, false);
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
