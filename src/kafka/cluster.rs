//! Cluster-level operations: reach a bootstrap server, describe the cluster.

use std::collections::BTreeMap;

use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use serde::Serialize;

use super::wire::{BrokerConnection, VersionRange};
use super::{KafkaError, api_name, error_code_name};
use crate::config::KafkaConfig;

/// One broker of the cluster, as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokerInfo {
    /// Node id.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// Rack, when the broker has one.
    pub rack: Option<String>,
}

/// One topic, as metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicInfo {
    /// Name.
    pub name: String,
    /// Partition count.
    pub partitions: usize,
    /// Whether Kafka marks it internal (`__consumer_offsets`).
    pub internal: bool,
    /// The per-topic error, if metadata reported one.
    pub error: Option<String>,
}

/// What a connectivity check learns.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterInfo {
    /// The bootstrap server that answered.
    pub bootstrap: String,
    /// The cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// Node id of the active controller (-1 when unknown).
    pub controller_id: i32,
    /// Every broker in the cluster.
    pub brokers: Vec<BrokerInfo>,
    /// API versions advertised by the broker that answered, by API name.
    pub api_versions: BTreeMap<String, (i16, i16)>,
    /// How the connection was secured: `PLAINTEXT`, or `SASL_PLAINTEXT`
    /// with the mechanism and user it authenticated with.
    pub security: Security,
}

/// The security a connection negotiated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Security {
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub protocol: &'static str,
    /// The SASL mechanism the broker accepted.
    pub sasl_mechanism: Option<&'static str>,
    /// The user it authenticated.
    pub sasl_user: Option<String>,
    /// The TLS version (`TLSv1.3`).
    pub tls_version: Option<String>,
    /// The TLS cipher suite (`TLS13_AES_256_GCM_SHA384`).
    pub tls_cipher: Option<String>,
    /// Whether the broker's certificate was checked against the host name
    /// (`false` only when `kafka.security.ssl.check_hostname` turned it
    /// off).
    pub tls_hostname_checked: Option<bool>,
}

impl Security {
    /// What `config` negotiated on `conn`.
    pub fn of(config: &KafkaConfig, conn: &BrokerConnection) -> Self {
        let sasl = super::wire::SaslCredentials::of(config);
        let tls = conn.tls();
        Self {
            protocol: config.security.protocol.as_str(),
            sasl_mechanism: sasl.as_ref().map(|s| s.mechanism.as_str()),
            sasl_user: sasl.map(|s| s.username),
            tls_version: tls.map(|t| t.version.clone()),
            tls_cipher: tls.map(|t| t.cipher.clone()),
            tls_hostname_checked: tls.map(|_| config.security.ssl.check_hostname),
        }
    }
}

impl std::fmt::Display for Security {
    /// `SASL_SSL (TLSv1.3, TLS13_AES_256_GCM_SHA384; SASL SCRAM-SHA-512,
    /// authenticated as svc)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.protocol)?;
        let mut parts = Vec::new();
        if let (Some(version), Some(cipher)) = (&self.tls_version, &self.tls_cipher) {
            let mut tls = format!("{version}, {cipher}");
            if self.tls_hostname_checked == Some(false) {
                tls.push_str(", host name NOT checked");
            }
            parts.push(tls);
        }
        if let Some(mechanism) = self.sasl_mechanism {
            let mut sasl = format!("SASL {mechanism}");
            if let Some(user) = &self.sasl_user {
                sasl.push_str(&format!(", authenticated as {user}"));
            }
            parts.push(sasl);
        }
        if !parts.is_empty() {
            write!(f, " ({})", parts.join("; "))?;
        }
        Ok(())
    }
}

/// Connects to the first bootstrap server that answers ApiVersions.
pub async fn connect_any(config: &KafkaConfig) -> Result<BrokerConnection, KafkaError> {
    let mut tried = Vec::new();
    let mut last = None;
    for server in &config.bootstrap_servers {
        tried.push(server.clone());
        match BrokerConnection::open(server, config).await {
            Ok(conn) => return Ok(conn),
            // The brokers share their users and their CA: another one
            // refuses the credentials or the certificate too.
            Err(e @ (KafkaError::Authentication { .. } | KafkaError::Tls { .. })) => {
                return Err(e);
            }
            Err(e) => {
                tracing::debug!(broker = %server, error = %e, "bootstrap server did not answer");
                last = Some(e);
            }
        }
    }
    match last {
        Some(last) => Err(KafkaError::NoBrokerReachable {
            tried,
            last: Box::new(last),
        }),
        None => Err(KafkaError::NoBrokerReachable {
            tried,
            last: Box::new(KafkaError::Protocol {
                broker: String::new(),
                api: "bootstrap".to_owned(),
                message: "no bootstrap servers configured".to_owned(),
            }),
        }),
    }
}

/// Metadata for `topics` (`None`: every topic; `Some(vec![])`: none, only
/// the brokers).
pub async fn metadata(
    conn: &mut BrokerConnection,
    topics: Option<Vec<String>>,
) -> Result<MetadataResponse, KafkaError> {
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::protocol::StrBytes;

    let request = MetadataRequest::default()
        .with_topics(topics.map(|names| {
            names
                .into_iter()
                .map(|n| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(n))))
                })
                .collect()
        }))
        .with_allow_auto_topic_creation(false);
    let response = conn.send(&request).await?;
    if response.error_code != 0 {
        return Err(KafkaError::Broker {
            broker: conn.addr().to_owned(),
            api: "Metadata".to_owned(),
            code: response.error_code,
        });
    }
    Ok(response)
}

/// The topic ids of `topics` (Metadata v10+), by name; a topic that does
/// not exist is left out.
pub async fn topic_ids(
    config: &KafkaConfig,
    topics: &[String],
) -> Result<BTreeMap<String, uuid::Uuid>, KafkaError> {
    let mut conn = connect_any(config).await?;
    let response = metadata(&mut conn, Some(topics.to_vec())).await?;
    Ok(response
        .topics
        .into_iter()
        .filter(|t| t.error_code == 0 && !t.topic_id.is_nil())
        .filter_map(|t| Some((t.name?.0.to_string(), t.topic_id)))
        .collect())
}

/// Connects, then describes the cluster: brokers, controller, API versions.
pub async fn describe(config: &KafkaConfig) -> Result<ClusterInfo, KafkaError> {
    let mut conn = connect_any(config).await?;
    let response = metadata(&mut conn, Some(Vec::new())).await?;
    Ok(ClusterInfo {
        security: Security::of(config, &conn),
        bootstrap: conn.addr().to_owned(),
        cluster_id: response.cluster_id.map(|s| s.to_string()),
        controller_id: response.controller_id.0,
        brokers: response
            .brokers
            .iter()
            .map(|b| BrokerInfo {
                node_id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.as_ref().map(ToString::to_string),
            })
            .collect(),
        api_versions: versions_by_name(conn.api_versions()),
    })
}

fn versions_by_name(versions: &BTreeMap<i16, VersionRange>) -> BTreeMap<String, (i16, i16)> {
    versions
        .iter()
        .map(|(key, range)| (api_name(*key), (range.min, range.max)))
        .collect()
}

/// Every topic in the cluster, sorted by name.
pub async fn list_topics(config: &KafkaConfig) -> Result<Vec<TopicInfo>, KafkaError> {
    let mut conn = connect_any(config).await?;
    let response = metadata(&mut conn, None).await?;
    let mut topics: Vec<TopicInfo> = response
        .topics
        .iter()
        .map(|t| TopicInfo {
            name: t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
            partitions: t.partitions.len(),
            internal: t.is_internal,
            error: (t.error_code != 0).then(|| error_code_name(t.error_code)),
        })
        .collect();
    topics.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(topics)
}

/// Retries [`describe`] with exponential backoff (`initial`, times `factor`
/// per attempt, at most 30 s apart) until it succeeds, a permanent error
/// occurs, or `deadline` passes; seed 004's `wait_for_kafka`.
pub async fn wait_until_reachable(
    config: &KafkaConfig,
    deadline: std::time::Instant,
    initial: std::time::Duration,
    factor: f64,
) -> Result<ClusterInfo, KafkaError> {
    let mut delay = initial;
    let mut attempt = 1u32;
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let attempt_result = match tokio::time::timeout(left, describe(config)).await {
            Ok(result) => result,
            Err(_) => Err(KafkaError::Timeout {
                broker: config.bootstrap_servers.join(","),
                operation: "waiting for the brokers".to_owned(),
                after: left,
            }),
        };
        match attempt_result {
            Ok(info) => return Ok(info),
            Err(e) if e.kind() == super::ErrorKind::Permanent => return Err(e),
            Err(e) => {
                let now = std::time::Instant::now();
                if now >= deadline {
                    return Err(e);
                }
                let pause = delay.min(deadline - now);
                tracing::info!(attempt, retry_in = ?pause, error = %e, "broker not reachable yet");
                tokio::time::sleep(pause).await;
                delay = delay
                    .mul_f64(factor)
                    .min(std::time::Duration::from_secs(30));
                attempt += 1;
            }
        }
    }
}
