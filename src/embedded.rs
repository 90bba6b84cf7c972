//! An in-process Kafka-compatible broker (Tansu, memory storage) for tests,
//! examples and the quickstart. Feature `embedded-broker` (compiles C).
//!
//! The broker runs on its own thread with its own tokio runtime, so it
//! works under an actix `System`, a `#[tokio::test]` or plain threads, and
//! its load never competes with the caller's executor. It listens on an
//! ephemeral `127.0.0.1` port (Tansu cannot report a port-0 bind, so a free
//! port is picked first and the start retried if it was taken meanwhile),
//! is ready once it answers ApiVersions, and stops when the handle is
//! dropped: its serve task is aborted and the port freed.

use std::net::TcpListener;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tansu_broker::broker::Broker;
use tansu_broker::coordinator::group::administrator::Controller;
use tansu_storage::StorageContainer;
use tokio::sync::{mpsc, oneshot};
use url::Url;

/// Tansu's broker over its memory storage.
type TansuBroker = Broker<Controller<StorageContainer>, StorageContainer>;

use crate::kafka::BrokerConnection;

/// How many ports are tried before giving up.
const PORT_ATTEMPTS: usize = 5;
/// Deadline for the broker to answer ApiVersions after start.
const READY_DEADLINE: Duration = Duration::from_secs(20);

/// Why the embedded broker did not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// No free port could be reserved.
    #[error("embedded broker: cannot reserve a 127.0.0.1 port: {0}")]
    Port(#[source] std::io::Error),
    /// The broker thread could not be started.
    #[error("embedded broker: cannot start its thread: {0}")]
    Thread(#[source] std::io::Error),
    /// Tansu failed to build or serve.
    #[error("embedded broker failed on 127.0.0.1:{port}: {message}")]
    Broker {
        /// The port it was given.
        port: u16,
        /// Tansu's error.
        message: String,
    },
    /// It never answered ApiVersions.
    #[error("embedded broker on 127.0.0.1:{port} did not answer within {after:?}: {last}")]
    NotReady {
        /// The port it was given.
        port: u16,
        /// The deadline.
        after: Duration,
        /// The last connection error.
        last: String,
    },
}

/// A running in-process broker. Dropping it stops the broker.
#[derive(Debug)]
pub struct EmbeddedBroker {
    bootstrap: String,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl EmbeddedBroker {
    /// Starts a broker on a free 127.0.0.1 port and waits until it answers
    /// ApiVersions.
    pub async fn start() -> Result<Self, EmbeddedError> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            match Self::start_on(free_port()?).await {
                Ok(broker) => return Ok(broker),
                // Another process took the port between our probe and
                // Tansu's bind: try another one.
                Err(e @ EmbeddedError::Broker { .. }) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| EmbeddedError::Port(std::io::Error::other("no attempt made"))))
    }

    /// `127.0.0.1:PORT`, the bootstrap address to give clients.
    pub fn bootstrap(&self) -> &str {
        &self.bootstrap
    }

    async fn start_on(port: u16) -> Result<Self, EmbeddedError> {
        let (stop_tx, stop_rx) = oneshot::channel();
        let (err_tx, mut err_rx) = mpsc::unbounded_channel::<String>();
        let thread = std::thread::Builder::new()
            .name(format!("tansu-{port}"))
            .spawn(move || serve_thread(port, stop_rx, err_tx))
            .map_err(EmbeddedError::Thread)?;
        let mut broker = Self {
            bootstrap: format!("127.0.0.1:{port}"),
            stop: Some(stop_tx),
            thread: Some(thread),
        };

        let deadline = Instant::now() + READY_DEADLINE;
        loop {
            if let Ok(message) = err_rx.try_recv() {
                broker.shutdown();
                return Err(EmbeddedError::Broker { port, message });
            }
            match BrokerConnection::connect(
                &broker.bootstrap,
                "kafka-actors-embedded-probe",
                Duration::from_secs(2),
                Duration::from_secs(2),
            )
            .await
            {
                Ok(_) => return Ok(broker),
                Err(e) if Instant::now() >= deadline => {
                    broker.shutdown();
                    return Err(EmbeddedError::NotReady {
                        port,
                        after: READY_DEADLINE,
                        last: e.to_string(),
                    });
                }
                Err(_) => {}
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for EmbeddedBroker {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn free_port() -> Result<u16, EmbeddedError> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(EmbeddedError::Port)?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(EmbeddedError::Port)
}

fn serve_thread(port: u16, stop: oneshot::Receiver<()>, errors: mpsc::UnboundedSender<String>) {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name(format!("tansu-{port}-worker"))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = errors.send(format!("cannot build its runtime: {e}"));
            return;
        }
    };
    runtime.block_on(async move {
        // Tansu's dependency tree enables both rustls providers; rustls then
        // refuses to pick one implicitly.
        let _ = rustls::crypto::ring::default_provider().install_default();

        let url = match Url::parse(&format!("tcp://127.0.0.1:{port}")) {
            Ok(url) => url,
            Err(e) => {
                let _ = errors.send(e.to_string());
                return;
            }
        };
        let storage = match Url::parse("memory://tansu/") {
            Ok(url) => url,
            Err(e) => {
                let _ = errors.send(e.to_string());
                return;
            }
        };
        let built = TansuBroker::builder()
            .node_id(111)
            .cluster_id("kafka-actors-embedded")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(url.clone())
            .storage(storage)
            .listener(url)
            .authentication(false)
            .tls_server_config(None)
            .silent(true)
            .build()
            .await;
        let mut broker = match built {
            Ok(broker) => broker,
            Err(e) => {
                let _ = errors.send(e.to_string());
                return;
            }
        };
        let serve_errors = errors.clone();
        let serve = tokio::spawn(async move {
            if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
                let _ = serve_errors.send(e.to_string());
            }
        });
        let _ = stop.await;
        serve.abort();
        let _ = serve.await;
    });
    runtime.shutdown_timeout(Duration::from_secs(2));
}
