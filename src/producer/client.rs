//! A producer over rskafka: resolves topics to partition clients once,
//! places records with the Java-compatible [`Partitioner`], and gives up
//! after a deadline (rskafka's default backoff never does).
//!
//! Every produce is acknowledged by all in-sync replicas (rskafka always
//! sends acks=all) before [`Producer::send`] returns its offset.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use rskafka::BackoffConfig;
use rskafka::client::partition::{
    Compression as RsCompression, PartitionClient, UnknownTopicHandling,
};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;
use tokio::sync::Mutex;

use super::partitioner::{PartitionError, Partitioner};
use crate::config::{Compression, KafkaConfig};

/// A record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutRecord {
    /// Target topic.
    pub topic: String,
    /// An explicit partition; else the key (or round robin) decides.
    pub partition: Option<i32>,
    /// The key.
    pub key: Option<Vec<u8>>,
    /// The value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: BTreeMap<String, Vec<u8>>,
}

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Why a produce failed. Every variant names the topic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProduceError {
    /// The client could not be built.
    #[error("cannot connect to {bootstrap}: {source}")]
    Connect {
        /// The bootstrap servers.
        bootstrap: String,
        /// rskafka's error.
        #[source]
        source: rskafka::client::error::Error,
    },
    /// The topic does not exist.
    #[error("topic {topic} does not exist")]
    UnknownTopic {
        /// The topic.
        topic: String,
    },
    /// No partition could be chosen.
    #[error("topic {topic}: {source}")]
    Partition {
        /// The topic.
        topic: String,
        /// Why.
        #[source]
        source: PartitionError,
    },
    /// The broker refused, or the deadline passed. Every record of a failed
    /// batch gets its own copy of the error.
    #[error("producing to {topic}/{partition} failed: {message}")]
    Produce {
        /// The topic.
        topic: String,
        /// The partition (-1 before one was chosen).
        partition: i32,
        /// rskafka's error, as text.
        message: String,
    },
    /// The broker refused the record as larger than it accepts for the
    /// topic (`MESSAGE_TOO_LARGE`, `RECORD_LIST_TOO_LARGE`): never retried.
    #[error(
        "producing to {topic}/{partition} failed: the record ({bytes} bytes) is larger than the broker accepts for {topic} (max.message.bytes): {message}"
    )]
    TooLarge {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The record's key and value bytes.
        bytes: usize,
        /// The broker's error.
        message: String,
    },
    /// The codec is not compiled in.
    #[error("compression {0} is not available in this build")]
    Codec(&'static str),
    /// The broker refused the produce for authorization or authentication
    /// (`TOPIC_AUTHORIZATION_FAILED`, `CLUSTER_AUTHORIZATION_FAILED`,
    /// `SASL_AUTHENTICATION_FAILED`): never retried.
    #[error("producing to {topic}/{partition} was refused: not authorized: {message}")]
    Unauthorized {
        /// The topic.
        topic: String,
        /// The partition.
        partition: i32,
        /// The broker's error.
        message: String,
    },
}

/// Whether the broker refused a produce because of the records' size.
pub fn too_large(e: &rskafka::client::error::Error) -> bool {
    matches!(
        e,
        rskafka::client::error::Error::ServerError {
            protocol_error: rskafka::client::error::ProtocolError::MessageTooLarge
                | rskafka::client::error::ProtocolError::RecordListTooLarge,
            ..
        }
    )
}

/// Whether the broker refused a request for authorization or
/// authentication: retrying cannot help.
pub fn unauthorized(e: &rskafka::client::error::Error) -> bool {
    use rskafka::client::error::ProtocolError as P;
    refused_credentials(e)
        || matches!(
            e,
            rskafka::client::error::Error::ServerError {
                protocol_error: P::TopicAuthorizationFailed
                    | P::ClusterAuthorizationFailed
                    | P::TransactionalIdAuthorizationFailed
                    | P::SaslAuthenticationFailed,
                ..
            }
        )
}

/// Whether a broker refused the SASL credentials or mechanism on a new
/// connection (rskafka, patched, does not retry that; see
/// vendor/rskafka/PATCHED.md).
pub fn refused_credentials(e: &rskafka::client::error::Error) -> bool {
    matches!(e, rskafka::client::error::Error::Connection(c) if c.is_sasl_refusal())
}

/// A topic's partition clients and its partitioner, resolved once.
pub struct TopicHandle {
    partitions: Vec<Arc<PartitionClient>>,
    partitioner: Partitioner,
}

impl std::fmt::Debug for TopicHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicHandle")
            .field("partitions", &self.partitions.len())
            .finish_non_exhaustive()
    }
}

impl TopicHandle {
    /// Where a record with `key` (or an `explicit` partition) goes, and
    /// that partition's client.
    pub fn place(
        &self,
        key: Option<&[u8]>,
        explicit: Option<i32>,
    ) -> Result<(i32, Arc<PartitionClient>), PartitionError> {
        let count = self.partitions.len() as i32;
        let p = self.partitioner.partition(key, explicit, count)?;
        self.partitions
            .get(usize::try_from(p).unwrap_or(usize::MAX))
            .map(|pc| (p, Arc::clone(pc)))
            .ok_or(PartitionError::PartitionOutOfRange {
                partition: p,
                partitions: count,
            })
    }
}

/// Produces records; cheap to share behind an `Arc`.
pub struct Producer {
    client: Client,
    compression: RsCompression,
    topics: Mutex<HashMap<String, Arc<TopicHandle>>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("compression", &self.compression)
            .finish_non_exhaustive()
    }
}

/// rskafka's backoff with a deadline: every call gives up after `deadline`.
pub fn backoff(deadline: Duration) -> BackoffConfig {
    BackoffConfig {
        init_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(2),
        base: 2.0,
        deadline: Some(deadline),
    }
}

/// The rskafka codec for a configured compression.
pub fn codec(compression: Compression) -> Result<RsCompression, ProduceError> {
    match compression {
        Compression::None => Ok(RsCompression::NoCompression),
        Compression::Gzip => Ok(RsCompression::Gzip),
        Compression::Snappy => Ok(RsCompression::Snappy),
        Compression::Lz4 | Compression::Zstd => Err(ProduceError::Codec(compression.as_str())),
    }
}

/// An rskafka client for `config`: its bootstrap servers and client id, and
/// a backoff that gives up after the request timeout. Each client has
/// connections of its own.
pub async fn rskafka_client(config: &KafkaConfig) -> Result<Client, rskafka::client::error::Error> {
    let mut builder = ClientBuilder::new(config.bootstrap_servers.clone())
        .client_id(config.client_id.clone())
        .backoff_config(backoff(config.request_timeout()));
    if let Some(sasl) = crate::kafka::wire::SaslCredentials::of(config) {
        use rskafka::client::{Credentials, SaslConfig};
        let credentials = Credentials::new(sasl.username, sasl.password.expose().to_owned());
        builder = builder.sasl_config(match sasl.mechanism {
            crate::config::SaslMechanism::Plain => SaslConfig::Plain(credentials),
            crate::config::SaslMechanism::ScramSha256 => SaslConfig::ScramSha256(credentials),
            crate::config::SaslMechanism::ScramSha512 => SaslConfig::ScramSha512(credentials),
            // Refused by validation; a configuration built in code fails
            // here, at authentication, instead of connecting without it.
            crate::config::SaslMechanism::OAuthBearer => {
                SaslConfig::Oauthbearer(rskafka::client::OauthBearerCredentials {
                    callback: std::sync::Arc::new(|| {
                        Box::pin(async {
                            Err("OAUTHBEARER is not supported by kafka-actors yet".into())
                        })
                    }),
                    authz_id: None,
                    bearer_kvs: Vec::new(),
                })
            }
        });
    }
    if matches!(
        config.security.protocol,
        crate::config::SecurityProtocol::Ssl | crate::config::SecurityProtocol::SaslSsl
    ) {
        // Validation has built this configuration already (and this build
        // refuses TLS without the feature); a configuration made in code
        // that skips validation fails here instead of connecting in plain
        // text.
        #[cfg(feature = "tls")]
        {
            let tls = crate::kafka::tls::client_config(&config.security.ssl).map_err(|e| {
                rskafka::client::error::Error::InvalidResponse(format!(
                    "TLS cannot be set up: {}: {}",
                    e.key, e.message
                ))
            })?;
            builder = builder.tls_config(tls);
        }
        #[cfg(not(feature = "tls"))]
        return Err(rskafka::client::error::Error::InvalidResponse(format!(
            "{} needs TLS, which this build does not include (build with --features tls)",
            config.security.protocol.as_str()
        )));
    }
    builder.build().await
}

impl Producer {
    /// Connects to `config`'s bootstrap servers.
    pub async fn connect(
        config: &KafkaConfig,
        compression: Compression,
    ) -> Result<Self, ProduceError> {
        let client = rskafka_client(config)
            .await
            .map_err(|source| ProduceError::Connect {
                bootstrap: config.bootstrap_servers.join(","),
                source,
            })?;
        Ok(Self {
            client,
            compression: codec(compression)?,
            topics: Mutex::new(HashMap::new()),
        })
    }

    /// The underlying rskafka client (for fetching with the same
    /// connections).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The codec produce requests use.
    pub fn compression(&self) -> RsCompression {
        self.compression
    }

    /// Partition clients of `topic`, resolved once.
    pub async fn topic(&self, topic: &str) -> Result<Arc<TopicHandle>, ProduceError> {
        let mut topics = self.topics.lock().await;
        if let Some(handle) = topics.get(topic) {
            return Ok(Arc::clone(handle));
        }
        let listed = self
            .client
            .list_topics()
            .await
            .map_err(|e| ProduceError::Produce {
                topic: topic.to_owned(),
                partition: -1,
                message: e.to_string(),
            })?;
        let count = listed
            .iter()
            .find(|t| t.name == topic)
            .map(|t| t.partitions.len())
            .ok_or_else(|| ProduceError::UnknownTopic {
                topic: topic.to_owned(),
            })?;
        let mut partitions = Vec::with_capacity(count);
        for p in 0..count as i32 {
            let pc = self
                .client
                .partition_client(topic, p, UnknownTopicHandling::Error)
                .await
                .map_err(|e| ProduceError::Produce {
                    topic: topic.to_owned(),
                    partition: p,
                    message: e.to_string(),
                })?;
            partitions.push(Arc::new(pc));
        }
        let handle = Arc::new(TopicHandle {
            partitions,
            partitioner: Partitioner::new(),
        });
        topics.insert(topic.to_owned(), Arc::clone(&handle));
        Ok(handle)
    }

    /// The partition client of `topic`/`partition`.
    pub async fn partition_client(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<Arc<PartitionClient>, ProduceError> {
        let handle = self.topic(topic).await?;
        let count = handle.partitions.len() as i32;
        handle
            .partitions
            .get(usize::try_from(partition).unwrap_or(usize::MAX))
            .cloned()
            .ok_or_else(|| ProduceError::Partition {
                topic: topic.to_owned(),
                source: PartitionError::PartitionOutOfRange {
                    partition,
                    partitions: count,
                },
            })
    }

    /// The partition count of `topic`.
    pub async fn partitions(&self, topic: &str) -> Result<i32, ProduceError> {
        Ok(self.topic(topic).await?.partitions.len() as i32)
    }

    /// Produces `records` (all to one topic or several), batching those that
    /// share a partition into one request. Results come back in input order.
    pub async fn send(&self, records: Vec<OutRecord>) -> Vec<Result<Written, ProduceError>> {
        let mut results: Vec<Option<Result<Written, ProduceError>>> =
            (0..records.len()).map(|_| None).collect();
        // (topic, partition) -> [(index, record)]
        let mut batches: BTreeMap<(String, i32), Vec<(usize, Record)>> = BTreeMap::new();
        for (i, r) in records.into_iter().enumerate() {
            let handle = match self.topic(&r.topic).await {
                Ok(h) => h,
                Err(e) => {
                    results[i] = Some(Err(e));
                    continue;
                }
            };
            let partition = match handle.partitioner.partition(
                r.key.as_deref(),
                r.partition,
                handle.partitions.len() as i32,
            ) {
                Ok(p) => p,
                Err(source) => {
                    results[i] = Some(Err(ProduceError::Partition {
                        topic: r.topic.clone(),
                        source,
                    }));
                    continue;
                }
            };
            batches.entry((r.topic, partition)).or_default().push((
                i,
                Record {
                    key: r.key,
                    value: r.value,
                    headers: r.headers,
                    timestamp: chrono::Utc::now(),
                },
            ));
        }
        // One produce request per partition, all in flight at once.
        let sends = batches
            .into_iter()
            .map(|((topic, partition), batch)| async move {
                let (indices, records): (Vec<usize>, Vec<Record>) = batch.into_iter().unzip();
                let outcome = match self.partition_client(&topic, partition).await {
                    Ok(pc) => pc
                        .produce(records, self.compression)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                (topic, partition, indices, outcome)
            });
        for (topic, partition, indices, outcome) in futures_util::future::join_all(sends).await {
            match outcome {
                Ok(offsets) => {
                    for (i, offset) in indices.into_iter().zip(offsets) {
                        results[i] = Some(Ok(Written { partition, offset }));
                    }
                }
                Err(message) => {
                    for i in indices {
                        results[i] = Some(Err(ProduceError::Produce {
                            topic: topic.clone(),
                            partition,
                            message: message.clone(),
                        }));
                    }
                }
            }
        }
        results
            .into_iter()
            // Every index is filled above, either with an error or by its batch.
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(ProduceError::Produce {
                        topic: String::new(),
                        partition: -1,
                        message: "record was not produced (internal error)".to_owned(),
                    })
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rskafka::client::error::{Error, ProtocolError, RequestContext};

    fn server(protocol_error: ProtocolError) -> Error {
        Error::ServerError {
            protocol_error,
            error_message: None,
            request: RequestContext::Topic("t".to_owned()),
            response: None,
            is_virtual: false,
        }
    }

    #[test]
    fn authorization_refusals_are_told_apart_from_other_errors() {
        for e in [
            ProtocolError::TopicAuthorizationFailed,
            ProtocolError::ClusterAuthorizationFailed,
            ProtocolError::SaslAuthenticationFailed,
        ] {
            assert!(unauthorized(&server(e)), "{e:?}");
            assert!(!too_large(&server(e)));
        }
        for e in [
            ProtocolError::UnknownTopicOrPartition,
            ProtocolError::NotLeaderOrFollower,
            ProtocolError::RequestTimedOut,
        ] {
            assert!(!unauthorized(&server(e)), "{e:?}");
        }
        assert!(too_large(&server(ProtocolError::MessageTooLarge)));
    }
}
