//! Shared test plumbing: run the real binary, wait for conditions with a
//! deadline, fetch HTTP, bound every async test.

use std::future::Future;
use std::io::Read;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kafka_actors::config::{Config, RouteConfig};
use kafka_actors::handler::HandlerRegistry;
use kafka_actors::testkit;

/// Upper bound on any one integration test.
pub const TEST_DEADLINE: Duration = Duration::from_secs(120);

/// Logs of this process (the harness and the embedded broker) at `RUST_LOG`,
/// default `warn`, captured per test by the test runner where it can.
pub fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_test_writer()
        .try_init();
}

/// Runs `fut` with [`TEST_DEADLINE`]; a test that hangs fails instead.
pub async fn bounded<T>(fut: impl Future<Output = T>) -> T {
    init_logs();
    match tokio::time::timeout(TEST_DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {TEST_DEADLINE:?}"),
    }
}

/// Polls `cond` every 50 ms until it holds or `within` passes.
pub fn wait_until(what: &str, within: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A free 127.0.0.1 port (released before return; a race with another
/// process is possible but rare on a test machine).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("reserve a port")
}

/// `GET http://addr/path`: status and body. Errors (connection refused,
/// ...) come back as `Err` so callers can poll.
pub fn http_get(addr: &str, path: &str) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let mut response = agent
        .get(&format!("http://{addr}{path}"))
        .call()
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// `POST http://addr/path` with an empty body and, when given, `Authorization:
/// Bearer <token>`: status and body.
pub fn http_post(addr: &str, path: &str, token: Option<&str>) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.post(&format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    let mut response = request.send_empty().map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// `METHOD http://addr/path` with a JSON body (or none) and, when given,
/// `Authorization: Bearer <token>`: status and body.
pub fn http_send(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> Result<(u16, String), String> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut request = ureq::http::Request::builder()
        .method(method)
        .uri(format!("http://{addr}{path}"));
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    if body.is_some() {
        request = request.header("Content-Type", "application/json");
    }
    let request = request
        .body(body.unwrap_or_default().to_owned())
        .map_err(|e| e.to_string())?;
    let mut response = agent.run(request).map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response
        .body_mut()
        .read_to_string()
        .map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Waits up to 30 s until `group` has committed `want` for `partition`.
pub async fn wait_committed(bootstrap: &str, group: &str, partition: (&str, i32), want: i64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let d = kafka_actors::kafka::groups::describe_group(
            &kafka_actors::testkit::kafka_config(bootstrap),
            group,
        )
        .await
        .unwrap();
        let committed = d
            .partitions
            .iter()
            .find(|p| p.topic == partition.0 && p.partition == partition.1)
            .and_then(|p| p.committed_offset);
        if committed == Some(want) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{}/{} of group {group}: committed {committed:?}, not {want}",
            partition.0,
            partition.1
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The binary under test.
pub fn binary() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_kafka-actors"))
}

/// A `Command` for the binary with a clean slate: no config file from the
/// working directory, no inherited seed variables.
pub fn command() -> Command {
    let mut cmd = Command::new(binary());
    let empty = std::env::temp_dir();
    cmd.current_dir(empty);
    for (key, _) in std::env::vars() {
        if key.starts_with("KAFKA_") && key != "KAFKA_ACTORS_TEST_BOOTSTRAP" {
            cmd.env_remove(key);
        }
    }
    cmd.env_remove("RUST_LOG");
    cmd
}

/// Runs the binary to completion: exit status, stdout, stderr.
pub fn run_cli(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut cmd = command();
    cmd.args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run kafka-actors");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A running `kafka-actors run`. Killed on drop; its log is printed if the
/// test is failing.
pub struct Service {
    child: Option<Child>,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// `127.0.0.1:PORT` of its HTTP listener.
    pub http: String,
}

impl Service {
    /// Starts `kafka-actors run [extra args]` against `bootstrap` (unless
    /// the args choose the embedded broker) with its HTTP listener on a free
    /// port.
    pub fn start(bootstrap: &str, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = dir.path().join("service.log");
        let http = format!("127.0.0.1:{}", free_port());
        let mut cmd = command();
        cmd.arg("run")
            .args(extra_args)
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
            .env("KAFKA_ACTORS_HTTP__BIND", &http)
            .env("KAFKA_ACTORS_HEALTH__CHECK_INTERVAL_MS", "500")
            .env("KAFKA_ACTORS_KAFKA__CONNECT_TIMEOUT_MS", "2000")
            // Tansu holds a new member's first JoinGroup for about half the
            // session timeout: keep it short.
            .env("KAFKA_ACTORS_CONSUMER__SESSION_TIMEOUT_MS", "6000")
            .env("KAFKA_ACTORS_CONSUMER__HEARTBEAT_INTERVAL_MS", "1000")
            .env("RUST_LOG", "info,kafka_actors=debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).expect("log file"))
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawn kafka-actors run");
        Self {
            child: Some(child),
            log,
            _dir: dir,
            http,
        }
    }

    /// Everything the service wrote so far.
    pub fn log(&self) -> String {
        let mut out = String::new();
        for name in ["service.log", "stderr.log"] {
            let path = self.log.with_file_name(name);
            if let Ok(mut f) = std::fs::File::open(&path) {
                let _ = f.read_to_string(&mut out);
            }
        }
        out
    }

    /// Waits until `GET path` answers `status`.
    pub fn wait_for_status(&mut self, path: &str, status: u16, within: Duration) -> String {
        let mut body = String::new();
        let http = self.http.clone();
        let child = self.child.as_mut().expect("running");
        wait_until(&format!("{path} to answer {status}"), within, || {
            if let Ok(Some(exit)) = child.try_wait() {
                panic!("service exited early with {exit}");
            }
            match http_get(&http, path) {
                Ok((s, b)) if s == status => {
                    body = b;
                    true
                }
                _ => false,
            }
        });
        body
    }

    /// Kills the process with SIGKILL (a crash) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends `signal` (`STOP`, `CONT`, ...) without waiting.
    pub fn signal(&self, signal: &str) {
        let child = self.child.as_ref().expect("running");
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Waits for the process to exit by itself.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let deadline = Instant::now() + within;
        loop {
            if let Some(exit) = child.try_wait().expect("wait") {
                self.child = None;
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "service did not exit by itself within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().expect("running");
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(exit) = child.try_wait().expect("wait") {
                self.child = None;
                return exit;
            }
            assert!(
                Instant::now() < deadline,
                "service did not stop within {within:?} of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

// Printing the log of a failing test is the point here.
#[allow(clippy::print_stderr)]
impl Drop for Service {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- kafka-actors log -----\n{}\n----- end of log -----",
                self.log()
            );
        }
    }
}

/// The python of the interoperability tests' venv (confluent-kafka),
/// created by `scripts/python-env` on first use.
pub fn python() -> String {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/python-env"))
        .output()
        .expect("run scripts/python-env");
    assert!(
        out.status.success(),
        "scripts/python-env failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The runtime in its own actix System, as a library user runs it.
pub struct InProcess {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<Result<(), kafka_actors::runtime::RuntimeError>>,
    /// `127.0.0.1:PORT` of its HTTP listener.
    pub http: String,
}

impl InProcess {
    /// Runs `config` with `registry`'s handlers until [`InProcess::stop`].
    pub async fn start(config: Config, registry: HandlerRegistry) -> Self {
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            actix::System::new().block_on(kafka_actors::runtime::run(
                config,
                registry,
                async {
                    let _ = stop_rx.await;
                },
                Some(started_tx),
            ))
        });
        let started = started_rx.await.expect("runtime started");
        Self {
            stop,
            thread,
            http: started.http_addr.unwrap().to_string(),
        }
    }

    /// The value of the first `/metrics` line starting with `prefix`.
    pub async fn metric(&self, prefix: &str) -> Option<f64> {
        let http = self.http.clone();
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let (_, body) = http_get(&http, "/metrics").unwrap();
            body.lines()
                .find(|l| l.starts_with(&prefix))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse().ok())
        })
        .await
        .unwrap()
    }

    /// Polls `series` every 100 ms until `ok` holds for its value (`None`:
    /// not exported yet); fails naming `what` after `within`.
    pub async fn wait_for_metric(
        &self,
        series: &str,
        within: Duration,
        what: &str,
        ok: impl Fn(Option<f64>) -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            let value = self.metric(series).await;
            if ok(value) {
                return;
            }
            assert!(Instant::now() < deadline, "{what}: {series} = {value:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Stops it and waits for a clean end.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::task::spawn_blocking(move || self.thread.join().unwrap())
            .await
            .unwrap()
            .unwrap();
    }
}

/// A library service's configuration: `route` as `main`, group and HTTP
/// port fresh, short fetch waits, `pipeline.pause_ms` 1.5 s.
pub fn library_config(bootstrap: &str, route: RouteConfig) -> Config {
    let mut config = Config {
        kafka: testkit::kafka_config(bootstrap),
        ..Config::default()
    };
    config.consumer.group_id = testkit::unique_name("group");
    config.consumer.fetch_max_wait_ms = 100;
    config.consumer.session_timeout_ms = 6_000;
    config.consumer.heartbeat_interval_ms = 1_000;
    config.http.bind = "127.0.0.1:0".to_owned();
    config.pipeline.pause_ms = 1_500;
    config.routes.insert("main".to_owned(), route);
    config
}
