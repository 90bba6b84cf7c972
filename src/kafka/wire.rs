//! One connection to one broker, speaking the Kafka protocol through the
//! `kafka-protocol` crate: what rskafka does not expose (API versions,
//! consumer groups, offsets, topic configs) goes through here.
//!
//! Frames are a 4-byte big-endian length, the request header, then the
//! body, written in one `write_all` on a socket with `TCP_NODELAY` set (a
//! split write on a Nagle socket stalls ~40 ms against delayed ACKs, see
//! FINDINGS.md). Every round trip has a deadline.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Message, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::KafkaError;
use crate::config::{KafkaConfig, SaslMechanism, Secret, SecurityProtocol};

/// Largest response frame accepted (the Java client's default
/// `fetch.max.bytes` is 50 MiB; anything far beyond is a corrupt length).
const MAX_FRAME: usize = 256 * 1024 * 1024;

/// The version range a broker supports for one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VersionRange {
    /// Lowest supported version.
    pub min: i16,
    /// Highest supported version.
    pub max: i16,
}

/// A byte stream to a broker: TCP, or TLS over TCP.
trait Stream: AsyncRead + AsyncWrite + Unpin + Send + Sync {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Sync> Stream for T {}

/// What a TLS connection negotiated (`check` reports it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSession {
    /// `TLSv1.3` or `TLSv1.2`.
    pub version: String,
    /// The cipher suite's IANA name.
    pub cipher: String,
}

/// An open connection to one broker, with the API versions it advertised.
pub struct BrokerConnection {
    addr: String,
    stream: Box<dyn Stream>,
    tls: Option<TlsSession>,
    /// The TLS settings the connection was opened with, to explain an
    /// alert the broker sends after the handshake.
    #[cfg(feature = "tls")]
    ssl: Option<crate::config::SslConfig>,
    client_id: StrBytes,
    correlation_id: i32,
    request_timeout: Duration,
    versions: BTreeMap<i16, VersionRange>,
}

impl std::fmt::Debug for BrokerConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConnection")
            .field("addr", &self.addr)
            .field("tls", &self.tls)
            .field("correlation_id", &self.correlation_id)
            .finish_non_exhaustive()
    }
}

/// Opens a TCP connection with `TCP_NODELAY`, within `connect_timeout`.
async fn tcp(addr: &str, connect_timeout: Duration) -> Result<TcpStream, KafkaError> {
    let stream = tokio::time::timeout(connect_timeout, TcpStream::connect(addr))
        .await
        .map_err(|_| KafkaError::Timeout {
            broker: addr.to_owned(),
            operation: "connect".to_owned(),
            after: connect_timeout,
        })?
        .map_err(|source| KafkaError::Connect {
            broker: addr.to_owned(),
            source,
        })?;
    stream
        .set_nodelay(true)
        .map_err(|source| KafkaError::Connect {
            broker: addr.to_owned(),
            source,
        })?;
    Ok(stream)
}

impl BrokerConnection {
    /// Connects to `addr` (`host:port`) and negotiates API versions.
    ///
    /// # Cancellation
    /// Safe to drop at any point: the connection is simply closed.
    pub async fn connect(
        addr: &str,
        client_id: &str,
        connect_timeout: Duration,
        request_timeout: Duration,
    ) -> Result<Self, KafkaError> {
        let stream = tcp(addr, connect_timeout).await?;
        let mut conn = Self {
            addr: addr.to_owned(),
            stream: Box::new(stream),
            tls: None,
            #[cfg(feature = "tls")]
            ssl: None,
            client_id: StrBytes::from_string(client_id.to_owned()),
            correlation_id: 0,
            request_timeout,
            versions: BTreeMap::new(),
        };
        conn.negotiate().await?;
        Ok(conn)
    }

    /// The `host:port` this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// What TLS negotiated; `None` on a plaintext connection.
    pub fn tls(&self) -> Option<&TlsSession> {
        self.tls.as_ref()
    }

    /// Every API the broker advertised, by API key.
    pub fn api_versions(&self) -> &BTreeMap<i16, VersionRange> {
        &self.versions
    }

    /// The highest version of `R` that both this crate and the broker speak.
    pub fn version_for<R: Request>(&self) -> Result<i16, KafkaError> {
        let ours = <R as Message>::VERSIONS;
        let theirs = self
            .versions
            .get(&R::KEY)
            .ok_or_else(|| KafkaError::UnsupportedApi {
                broker: self.addr.clone(),
                api: api_name(R::KEY),
            })?;
        let max = ours.max.min(theirs.max);
        if max < ours.min.max(theirs.min) {
            return Err(KafkaError::UnsupportedApi {
                broker: self.addr.clone(),
                api: api_name(R::KEY),
            });
        }
        Ok(max)
    }

    /// Sends `request` at the highest common version and returns the
    /// response.
    pub async fn send<R: Request>(&mut self, request: &R) -> Result<R::Response, KafkaError> {
        let version = self.version_for::<R>()?;
        self.send_version(request, version).await
    }

    /// Sends `request` at `version`.
    ///
    /// # Cancellation
    /// Dropping the future mid-way leaves the stream in an unknown state;
    /// drop the connection too.
    pub async fn send_version<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        let timeout = self.request_timeout;
        let api = api_name(R::KEY);
        tokio::time::timeout(timeout, self.round_trip(request, version))
            .await
            .map_err(|_| KafkaError::Timeout {
                broker: self.addr.clone(),
                operation: api.clone(),
                after: timeout,
            })?
    }

    /// Sends `request` at `version` with a deadline of its own, for
    /// requests the broker holds on purpose (JoinGroup waits for the whole
    /// rebalance).
    ///
    /// # Cancellation
    /// As [`Self::send_version`].
    pub async fn send_version_within<R: Request>(
        &mut self,
        request: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response, KafkaError> {
        let api = api_name(R::KEY);
        tokio::time::timeout(timeout, self.round_trip(request, version))
            .await
            .map_err(|_| KafkaError::Timeout {
                broker: self.addr.clone(),
                operation: api,
                after: timeout,
            })?
    }

    async fn round_trip<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, KafkaError> {
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));

        let addr = &self.addr;
        let protocol = |message: String| KafkaError::Protocol {
            broker: addr.clone(),
            api: api_name(R::KEY),
            message,
        };
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .map_err(|e| protocol(format!("{e:#}")))?;
        request
            .encode(&mut body, version)
            .map_err(|e| protocol(format!("{e:#}")))?;
        let len = u32::try_from(body.len())
            .map_err(|_| protocol("request larger than 4 GiB".to_owned()))?;
        let mut frame = BytesMut::with_capacity(body.len() + 4);
        frame.put_u32(len);
        frame.extend_from_slice(&body);
        self.stream
            .write_all(&frame)
            .await
            .map_err(|source| self.io_error(source))?;

        let len = self
            .stream
            .read_u32()
            .await
            .map_err(|source| self.io_error(source))? as usize;
        if len > MAX_FRAME {
            let head = (len as u32).to_be_bytes();
            // A TLS record (alert 0x15 or handshake 0x16, version 3.x): a
            // TLS listener refusing what it took for a client hello.
            if matches!(head, [0x15 | 0x16, 0x03, 0..=4, _]) {
                return Err(KafkaError::Tls {
                    broker: self.addr.clone(),
                    message: "this port is a TLS listener and the connection is not TLS (the \
                              broker answered with a TLS alert): set kafka.security.protocol to \
                              SSL or SASL_SSL"
                        .to_owned(),
                });
            }
            let message = if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
                format!(
                    "the peer does not speak the Kafka protocol (its reply starts with \"{}\")",
                    String::from_utf8_lossy(&head)
                )
            } else {
                format!("response frame of {len} bytes exceeds {MAX_FRAME}")
            };
            return Err(KafkaError::Protocol {
                broker: self.addr.clone(),
                api: api_name(R::KEY),
                message,
            });
        }
        let mut buf = vec![0u8; len];
        self.stream
            .read_exact(&mut buf)
            .await
            .map_err(|source| self.io_error(source))?;
        let mut buf = Bytes::from(buf);

        let header = ResponseHeader::decode(
            &mut buf,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| protocol(format!("{e:#}")))?;
        if header.correlation_id != correlation_id {
            return Err(KafkaError::Protocol {
                broker: self.addr.clone(),
                api: api_name(R::KEY),
                message: format!(
                    "correlation id mismatch: sent {correlation_id}, got {}",
                    header.correlation_id
                ),
            });
        }
        let response =
            R::Response::decode(&mut buf, version).map_err(|e| protocol(format!("{e:#}")))?;
        if buf.has_remaining() {
            tracing::debug!(
                broker = %self.addr,
                api = api_name(R::KEY),
                left = buf.remaining(),
                "response has trailing bytes"
            );
        }
        Ok(response)
    }

    fn io_error(&self, source: std::io::Error) -> KafkaError {
        #[cfg(feature = "tls")]
        if let Some(message) = self
            .ssl
            .as_ref()
            .and_then(|ssl| super::tls::alert(&source, ssl))
        {
            return KafkaError::Tls {
                broker: self.addr.clone(),
                message,
            };
        }
        KafkaError::Io {
            broker: self.addr.clone(),
            source,
        }
    }

    /// ApiVersions: v3 first (flexible, what every Kafka since 2.4 speaks);
    /// a broker that answers UNSUPPORTED_VERSION is retried at v0, as the
    /// protocol prescribes.
    async fn negotiate(&mut self) -> Result<(), KafkaError> {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("kafka-actors"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut response: ApiVersionsResponse = self.send_version(&request, 3).await?;
        if response.error_code == UNSUPPORTED_VERSION {
            response = self.send_version(&request, 0).await?;
        }
        if response.error_code != 0 {
            return Err(KafkaError::Broker {
                broker: self.addr.clone(),
                api: api_name(ApiVersionsRequest::KEY),
                code: response.error_code,
            });
        }
        self.versions = response
            .api_keys
            .iter()
            .map(|k| {
                (
                    k.api_key,
                    VersionRange {
                        min: k.min_version,
                        max: k.max_version,
                    },
                )
            })
            .collect();
        Ok(())
    }
}

const UNSUPPORTED_VERSION: i16 = 35;
/// What a listener without SASL answers SaslHandshake with.
const ILLEGAL_SASL_STATE: i16 = 34;

/// SASL credentials of a connection (`kafka.security.sasl`).
#[derive(Debug, Clone)]
pub struct SaslCredentials {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user name.
    pub username: String,
    /// The password.
    pub password: Secret,
}

impl SaslCredentials {
    /// The credentials `config` asks for: `None` unless its protocol uses
    /// SASL. Validation makes sure the mechanism, user and password are
    /// there.
    pub fn of(config: &KafkaConfig) -> Option<Self> {
        let sec = &config.security;
        if !matches!(
            sec.protocol,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        ) {
            return None;
        }
        Some(Self {
            mechanism: sec.sasl.mechanism?,
            username: sec.sasl.username.clone()?,
            password: sec.sasl.password.clone()?,
        })
    }
}

impl BrokerConnection {
    /// Connects to `addr` as `config` says: the timeouts, the client id and,
    /// when its security protocol asks for it, SASL authentication.
    pub async fn open(addr: &str, config: &KafkaConfig) -> Result<Self, KafkaError> {
        let tcp = tcp(addr, config.connect_timeout()).await?;
        let (stream, tls): (Box<dyn Stream>, _) = match config.security.protocol {
            SecurityProtocol::Plaintext | SecurityProtocol::SaslPlaintext => (Box::new(tcp), None),
            SecurityProtocol::Ssl | SecurityProtocol::SaslSsl => {
                #[cfg(feature = "tls")]
                {
                    let (stream, session) = super::tls::handshake(
                        &config.security.ssl,
                        addr,
                        tcp,
                        config.connect_timeout(),
                    )
                    .await?;
                    (Box::new(stream), Some(session))
                }
                #[cfg(not(feature = "tls"))]
                {
                    drop(tcp);
                    return Err(KafkaError::Tls {
                        broker: addr.to_owned(),
                        message: format!(
                            "{} needs TLS, which this build does not include (build with \
                             --features tls)",
                            config.security.protocol.as_str()
                        ),
                    });
                }
            }
        };
        let mut conn = Self {
            addr: addr.to_owned(),
            #[cfg(feature = "tls")]
            ssl: tls.as_ref().map(|_| config.security.ssl.clone()),
            stream,
            tls,
            client_id: StrBytes::from_string(config.client_id.clone()),
            correlation_id: 0,
            request_timeout: config.request_timeout(),
            versions: BTreeMap::new(),
        };
        conn.negotiate().await?;
        if let Some(sasl) = SaslCredentials::of(config) {
            conn.authenticate(&sasl).await?;
        }
        Ok(conn)
    }

    /// SASL authentication: SaslHandshake v1 naming the mechanism, then
    /// SaslAuthenticate round trips driven by `rsasl` (one for PLAIN,
    /// three for SCRAM, whose last proves the broker knows the password
    /// too). A refusal is [`KafkaError::Authentication`], never retried.
    pub async fn authenticate(&mut self, sasl: &SaslCredentials) -> Result<(), KafkaError> {
        use rsasl::prelude::{Mechname, SASLClient, SASLConfig};
        let mechanism = sasl.mechanism.as_str();
        let refused = |broker: &str, message: String| KafkaError::Authentication {
            broker: broker.to_owned(),
            mechanism: mechanism.to_owned(),
            message,
        };
        if sasl.mechanism == SaslMechanism::OAuthBearer {
            // Refused by validation; a configuration built in code fails
            // here instead of connecting without authentication.
            return Err(refused(
                &self.addr,
                "OAUTHBEARER is not supported by kafka-actors yet".to_owned(),
            ));
        }
        let version = self.version_for::<SaslHandshakeRequest>()?.min(1);
        let handshake =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let answer: SaslHandshakeResponse = self.send_version(&handshake, version).await?;
        if answer.error_code == ILLEGAL_SASL_STATE {
            return Err(refused(
                &self.addr,
                "this port is not a SASL listener (kafka.security.protocol asks for SASL; the \
                 broker listens here with PLAINTEXT or SSL)"
                    .to_owned(),
            ));
        }
        if answer.error_code != 0 {
            let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(
                &self.addr,
                format!(
                    "the broker does not enable this mechanism on this listener (it offers: {})",
                    if offered.is_empty() {
                        "none".to_owned()
                    } else {
                        offered.join(", ")
                    }
                ),
            ));
        }
        let config = SASLConfig::with_credentials(
            None,
            sasl.username.clone(),
            sasl.password.expose().to_owned(),
        )
        .map_err(|e| refused(&self.addr, e.to_string()))?;
        let name = Mechname::parse(mechanism.as_bytes())
            .map_err(|e| refused(&self.addr, e.to_string()))?;
        let mut session = SASLClient::new(config)
            .start_suggested(&[name])
            .map_err(|e| refused(&self.addr, e.to_string()))?;
        let mut received: Option<Vec<u8>> = None;
        loop {
            let mut out = Vec::new();
            let state = session
                .step(received.as_deref(), &mut out)
                .map_err(|e| refused(&self.addr, format!("the broker's answer: {e}")))?;
            if state.has_sent_message() {
                let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(out));
                let answer: SaslAuthenticateResponse = self.send(&request).await?;
                if answer.error_code != 0 {
                    let message = answer
                        .error_message
                        .as_ref()
                        .map(|m| m.to_string())
                        .filter(|m| !m.is_empty())
                        .unwrap_or_else(|| super::error_code_name(answer.error_code));
                    return Err(refused(&self.addr, message));
                }
                received = Some(answer.auth_bytes.to_vec());
            }
            if state.is_finished() {
                return Ok(());
            }
        }
    }
}

/// The protocol name of an API key (`Metadata`, `JoinGroup`, ...); the
/// number for a key this crate does not know.
pub fn api_name(key: i16) -> String {
    match ApiKey::try_from(key) {
        // ApiKey's Debug is exactly the protocol's name for the API.
        Ok(k) => format!("{k:?}"),
        Err(()) => format!("ApiKey({key})"),
    }
}
