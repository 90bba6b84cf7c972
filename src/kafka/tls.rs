//! TLS to the brokers (cargo feature `tls`): one rustls client
//! configuration, built from `kafka.security.ssl`, for rskafka's
//! connections and for ours, and the handshake of our own connections with
//! its failures told apart (untrusted, expired, wrong name, refused by the
//! broker, not a TLS listener).
//!
//! The crypto provider is rustls' `ring`, named explicitly rather than
//! taken from the process default: the embedded broker's dependency tree
//! enables aws-lc-rs too, and rustls refuses to pick between two.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::KafkaError;
use super::wire::TlsSession;
use crate::config::{Secret, SslConfig};

/// A TLS setting that cannot be used, with its configuration key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetupError {
    /// The configuration key (`kafka.security.ssl.ca_file`, ...).
    pub key: &'static str,
    /// What is wrong, naming the file.
    pub message: String,
}

const CA_FILE: &str = "kafka.security.ssl.ca_file";
const CERT_FILE: &str = "kafka.security.ssl.cert_file";
const KEY_FILE: &str = "kafka.security.ssl.key_file";
const KEY_PASSWORD: &str = "kafka.security.ssl.key_password";

/// The client configuration `ssl` describes. Built once per distinct
/// `ssl` and shared: every connection of the process uses the same one.
pub fn client_config(ssl: &SslConfig) -> Result<Arc<ClientConfig>, SetupError> {
    static BUILT: Mutex<Option<(SslConfig, Arc<ClientConfig>)>> = Mutex::new(None);
    let mut built = BUILT
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((of, config)) = built.as_ref()
        && of == ssl
    {
        return Ok(Arc::clone(config));
    }
    let config = build(ssl)?;
    *built = Some((ssl.clone(), Arc::clone(&config)));
    Ok(config)
}

fn build(ssl: &SslConfig) -> Result<Arc<ClientConfig>, SetupError> {
    let client = client_identity(ssl)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = Arc::new(roots(ssl)?);
    let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
        .build()
        .map_err(|e| SetupError {
            key: CA_FILE,
            message: format!("no usable CA certificate: {e}"),
        })?;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SetupError {
            key: "kafka.security.protocol",
            message: format!("rustls: {e}"),
        })?;
    let builder = if ssl.check_hostname {
        builder.with_webpki_verifier(verifier)
    } else {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyHostName(verifier)))
    };
    let config = match client {
        Some(identity) => builder
            .with_client_auth_cert(identity.chain, identity.key)
            .map_err(|e| SetupError {
                key: KEY_FILE,
                message: format!(
                    "{} cannot be used with the certificate in {}: {e}",
                    identity.key_file.display(),
                    identity.cert_file.display()
                ),
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// The client certificate chain and key for mutual TLS, and their files.
struct Identity<'a> {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    cert_file: &'a Path,
    key_file: &'a Path,
}

/// The client identity `ssl` configures, if any.
fn client_identity(ssl: &SslConfig) -> Result<Option<Identity<'_>>, SetupError> {
    match (&ssl.cert_file, &ssl.key_file) {
        (Some(cert_file), Some(key_file)) => Ok(Some(Identity {
            chain: certificates(cert_file, CERT_FILE)?,
            key: private_key(key_file, ssl.key_password.as_ref())?,
            cert_file,
            key_file,
        })),
        (Some(_), None) => Err(SetupError {
            key: KEY_FILE,
            message: "is not set, but kafka.security.ssl.cert_file is: mutual TLS needs the \
                      client certificate's private key too"
                .to_owned(),
        }),
        (None, Some(_)) => Err(SetupError {
            key: CERT_FILE,
            message: "is not set, but kafka.security.ssl.key_file is: mutual TLS needs the \
                      client certificate too"
                .to_owned(),
        }),
        (None, None) if ssl.key_password.is_some() => Err(SetupError {
            key: KEY_PASSWORD,
            message: "is set, but there is no kafka.security.ssl.key_file to decrypt".to_owned(),
        }),
        (None, None) => Ok(None),
    }
}

/// The CA file's certificates, or the system's trust store.
fn roots(ssl: &SslConfig) -> Result<RootCertStore, SetupError> {
    let mut roots = RootCertStore::empty();
    match &ssl.ca_file {
        Some(path) => {
            for cert in certificates(path, CA_FILE)? {
                roots.add(cert).map_err(|e| SetupError {
                    key: CA_FILE,
                    message: format!("{}: not a usable CA certificate: {e}", path.display()),
                })?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(SetupError {
                    key: CA_FILE,
                    message: format!(
                        "is not set and no CA certificate was found in the system's trust store \
                         ({}); set it (KAFKA_SSL_CAFILE) to the CA that signs the brokers' \
                         certificates",
                        found
                            .errors
                            .first()
                            .map(ToString::to_string)
                            .unwrap_or_else(|| "it is empty".to_owned())
                    ),
                });
            }
        }
    }
    Ok(roots)
}

fn certificates(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    let unreadable = |e: &dyn std::fmt::Display| SetupError {
        key,
        message: format!("cannot read {}: {e}", path.display()),
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(SetupError {
            key,
            message: format!(
                "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ),
        });
    }
    Ok(certs)
}

const ENCRYPTED_BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
const ENCRYPTED_END: &str = "-----END ENCRYPTED PRIVATE KEY-----";

/// The client key: PKCS#8, PKCS#1 or SEC1 PEM, or encrypted PKCS#8
/// decrypted with the key password.
fn private_key(
    path: &Path,
    password: Option<&Secret>,
) -> Result<PrivateKeyDer<'static>, SetupError> {
    let text = std::fs::read_to_string(path).map_err(|e| SetupError {
        key: KEY_FILE,
        message: format!("cannot read {}: {e}", path.display()),
    })?;
    let encrypted = text.find(ENCRYPTED_BEGIN).and_then(|start| {
        text[start..]
            .find(ENCRYPTED_END)
            .map(|end| &text[start..start + end + ENCRYPTED_END.len()])
    });
    match (encrypted, password) {
        (Some(pem), Some(password)) => {
            let wrong = |what: &dyn std::fmt::Display| SetupError {
                key: KEY_PASSWORD,
                message: format!("cannot decrypt the key in {}: {what}", path.display()),
            };
            let (_, document) = pkcs8::SecretDocument::from_pem(pem).map_err(|e| SetupError {
                key: KEY_FILE,
                message: format!("{}: not a PEM key: {e}", path.display()),
            })?;
            let info =
                pkcs8::EncryptedPrivateKeyInfo::try_from(document.as_bytes()).map_err(|e| {
                    SetupError {
                        key: KEY_FILE,
                        message: format!("{}: not an encrypted PKCS#8 key: {e}", path.display()),
                    }
                })?;
            let plain = info
                .decrypt(password.expose())
                .map_err(|_| wrong(&"wrong password, or an encryption scheme other than PBES2"))?;
            Ok(PrivateKeyDer::Pkcs8(plain.as_bytes().to_vec().into()))
        }
        (Some(_), None) => Err(SetupError {
            key: KEY_PASSWORD,
            message: format!(
                "{} holds an encrypted key: set its password (KAFKA_SSL_PASSWORD)",
                path.display()
            ),
        }),
        (None, Some(_)) => Err(SetupError {
            key: KEY_PASSWORD,
            message: format!(
                "is set, but the key in {} is not encrypted (-----BEGIN ENCRYPTED PRIVATE \
                 KEY-----)",
                path.display()
            ),
        }),
        (None, None) => PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|e| SetupError {
            key: KEY_FILE,
            message: format!(
                "{} holds no PEM private key (PKCS#8, PKCS#1 or SEC1): {e}",
                path.display()
            ),
        }),
    }
}

/// `kafka.security.ssl.check_hostname = false`: the chain, the dates and
/// the signatures are still checked; only the name is not.
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, after the chain and the dates.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// The host part of `host:port` (`[::1]:9093` gives `::1`).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// TLS handshake on `stream`, within `within`. A failure is
/// [`KafkaError::Tls`] naming the broker and the cause, never retried.
pub async fn handshake(
    ssl: &SslConfig,
    addr: &str,
    stream: TcpStream,
    within: Duration,
) -> Result<(TlsStream<TcpStream>, TlsSession), KafkaError> {
    let config = client_config(ssl).map_err(|e| KafkaError::Tls {
        broker: addr.to_owned(),
        message: format!("{}: {}", e.key, e.message),
    })?;
    let name = ServerName::try_from(host_of(addr).to_owned()).map_err(|e| KafkaError::Tls {
        broker: addr.to_owned(),
        message: format!("not a host name for TLS: {e}"),
    })?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let stream = tokio::time::timeout(within, connector.connect(name, stream))
        .await
        .map_err(|_| KafkaError::Tls {
            broker: addr.to_owned(),
            message: format!(
                "no TLS handshake within {within:?}: the port does not answer a TLS client \
                 hello (is it a TLS listener?)"
            ),
        })?
        .map_err(|e| KafkaError::Tls {
            broker: addr.to_owned(),
            message: cause(&e, ssl),
        })?;
    let session = stream.get_ref().1;
    let negotiated = TlsSession {
        version: match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3".to_owned(),
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2".to_owned(),
            Some(other) => format!("{other:?}"),
            None => "unknown".to_owned(),
        },
        cipher: session
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("unknown")
            .to_owned(),
    };
    Ok((stream, negotiated))
}

/// A TLS alert the broker sent after the handshake, in words: with TLS
/// 1.3 a refused client certificate arrives with the first read, not
/// during the handshake. `None` for any other I/O error.
pub fn alert(error: &std::io::Error, ssl: &SslConfig) -> Option<String> {
    let tls = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())?;
    matches!(tls, rustls::Error::AlertReceived(_)).then(|| cause(error, ssl))
}

/// A handshake failure in words, with what to check.
fn cause(error: &std::io::Error, ssl: &SslConfig) -> String {
    let trusted = match &ssl.ca_file {
        Some(path) => format!("the CA in kafka.security.ssl.ca_file ({})", path.display()),
        None => "the system's trust store (kafka.security.ssl.ca_file is not set)".to_owned(),
    };
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::BrokenPipe => format!(
                "the broker closed the connection during the TLS handshake: this port is \
                 probably not a TLS listener (a PLAINTEXT or SASL_PLAINTEXT listener does \
                 that); {error}"
            ),
            _ => format!("TLS handshake failed: {error}"),
        };
    };
    match tls {
        rustls::Error::InvalidCertificate(e) => match e {
            CertificateError::UnknownIssuer => format!(
                "the broker's certificate is not trusted: no certificate of its chain is \
                 signed by {trusted}"
            ),
            CertificateError::Expired => "the broker's certificate has expired".to_owned(),
            CertificateError::ExpiredContext { time, not_after } => format!(
                "the broker's certificate expired at {} (now {})",
                unix_time(*not_after),
                unix_time(*time)
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the broker's certificate is not valid yet (check the clocks)".to_owned()
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                format!(
                    "the broker's certificate is not valid for the host name it was reached at \
                 ({e}); use a name the certificate lists in kafka.bootstrap_servers and the \
                 broker's advertised listeners (kafka.security.ssl.check_hostname = false \
                 turns this check off, for testing only)"
                )
            }
            CertificateError::Revoked => "the broker's certificate is revoked".to_owned(),
            other => format!("the broker's certificate is not accepted: {other}"),
        },
        rustls::Error::AlertReceived(alert) => {
            let hint = match alert {
                AlertDescription::CertificateRequired
                | AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::HandshakeFailure
                    if ssl.cert_file.is_none() =>
                {
                    ": the listener may require a client certificate (mutual TLS): set \
                     kafka.security.ssl.cert_file and key_file"
                }
                AlertDescription::BadCertificate
                | AlertDescription::UnknownCA
                | AlertDescription::CertificateUnknown
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateRequired => {
                    ": the broker does not accept the client certificate in \
                     kafka.security.ssl.cert_file (not signed by a CA it trusts, or expired)"
                }
                _ => "",
            };
            format!("the broker refused the TLS handshake (alert {alert:?}){hint}")
        }
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            format!(
                "the peer does not speak TLS ({tls}): this port is probably a PLAINTEXT or \
                 SASL_PLAINTEXT listener"
            )
        }
        other => format!("TLS handshake failed: {other}"),
    }
}

fn unix_time(t: UnixTime) -> String {
    i64::try_from(t.as_secs())
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| format!("{} s after 1970", t.as_secs()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_taken_from_addresses() {
        assert_eq!(host_of("127.0.0.1:9093"), "127.0.0.1");
        assert_eq!(host_of("kafka-1.example.com:9093"), "kafka-1.example.com");
        assert_eq!(host_of("[::1]:9093"), "::1");
    }

    #[test]
    fn missing_and_unreadable_files_name_their_key() {
        let ssl = SslConfig {
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..SslConfig::default()
        };
        let e = build(&ssl).expect_err("a missing CA file");
        assert_eq!(e.key, CA_FILE);
        assert!(e.message.contains("/nonexistent/ca.pem"), "{}", e.message);

        let dir = tempfile::tempdir().expect("temp dir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not pem\n").expect("write");
        let ssl = SslConfig {
            ca_file: Some(empty.clone()),
            ..SslConfig::default()
        };
        let e = build(&ssl).expect_err("a file without certificates");
        assert_eq!(e.key, CA_FILE);
        assert!(
            e.message.contains("holds no PEM certificate"),
            "{}",
            e.message
        );

        let ssl = SslConfig {
            cert_file: Some(empty),
            ..SslConfig::default()
        };
        let e = build(&ssl).expect_err("a certificate without a key");
        assert_eq!(e.key, KEY_FILE);
    }
}
