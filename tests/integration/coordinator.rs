//! The group coordinator under stress: the broker restarting mid-stream
//! (coordinator errors, lost connections, a group reloaded from
//! `__consumer_offsets`), and handler work that outlasts the session
//! timeout while heartbeats go on.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use kafka_actors::config::{Compression, KafkaConfig};
use kafka_actors::kafka::TopicPartition;
use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use serde_json::json;

use crate::groups::{
    Traffic, assert_all_answered, assert_fenced, events, latest_join, start, wait_stable,
    write_config,
};
use crate::pipeline::{Topics, correlation_counts, read_all, topics};
use crate::support::{Service, free_port, init_logs};

/// Starting a broker (~10-20 s), a restart (the same again), rebalances.
const RESTART_TEST_DEADLINE: Duration = Duration::from_secs(420);

async fn bounded_by<T>(deadline: Duration, fut: impl std::future::Future<Output = T>) -> T {
    init_logs();
    match tokio::time::timeout(deadline, fut).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {deadline:?}"),
    }
}

/// An Apache Kafka broker of the test's own (`scripts/kafka up` on a free
/// port), so restarting it disturbs no other test. Stopped, with its data,
/// on drop; its log is printed first if the test is failing.
struct OwnKafka {
    port: u16,
    bootstrap: String,
}

/// Runs `scripts/kafka` with `args` and `env` to completion.
fn kafka_script(args: &[&str], env: &[(&str, &str)]) -> std::io::Result<Output> {
    Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/kafka"))
        .args(args)
        // A SASL port is for the shared broker only.
        .env_remove("KAFKA_SASL_PORT")
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::null())
        .output()
}

impl OwnKafka {
    /// Starts the broker; blocks until it is ready.
    fn up() -> Self {
        let mut last = String::new();
        // The port is free when picked; another process may take it before
        // the broker binds it, so try a few.
        for _ in 0..3 {
            let port = free_port();
            let out = kafka_script(&["up", "--port", &port.to_string()], &[])
                .expect("run scripts/kafka up");
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                let stdout = String::from_utf8_lossy(&out.stdout);
                let bootstrap = stdout.lines().last().unwrap_or_default().trim().to_owned();
                let broker = Self { port, bootstrap };
                assert!(
                    broker.bootstrap.ends_with(&format!(":{port}")),
                    "scripts/kafka up printed {stdout:?}"
                );
                return broker;
            }
            if !stderr.contains("is busy") {
                panic!("scripts/kafka up --port {port} failed: {stderr}");
            }
            last = stderr;
        }
        panic!("scripts/kafka up found no free port: {last}");
    }

    /// Stops the broker, keeps it down for `pause`, and starts it again
    /// with its data; blocks until it is ready. Returns how long it was
    /// away.
    fn restart(&self, pause: Duration) -> Duration {
        let started = Instant::now();
        let out = kafka_script(
            &["restart", "--port", &self.port.to_string()],
            &[("KAFKA_RESTART_PAUSE", &pause.as_secs().to_string())],
        )
        .expect("run scripts/kafka restart");
        assert!(
            out.status.success(),
            "scripts/kafka restart --port {} failed: {}",
            self.port,
            String::from_utf8_lossy(&out.stderr)
        );
        started.elapsed()
    }
}

// Printing the broker log of a failing test is the point here.
#[allow(clippy::print_stderr)]
impl Drop for OwnKafka {
    fn drop(&mut self) {
        let port = self.port.to_string();
        if std::thread::panicking()
            && let Ok(logs) =
                kafka_script(&["logs", "--port", &port], &[("KAFKA_LOG_LINES", "150")])
        {
            eprintln!(
                "----- broker log (port {port}) -----\n{}\n----- end of broker log -----",
                String::from_utf8_lossy(&logs.stdout)
            );
        }
        let _ = kafka_script(&["down", "--port", &port], &[]);
    }
}

/// The members' settings for surviving a broker restart: every Kafka
/// request (fetch, produce, coordinator lookup) retries for a minute before
/// it fails, longer than the broker is away (the pause plus up to ~20 s of
/// stopping and starting on a busy 2-core machine). The session timeout
/// stays at 6 s (Kafka's minimum), shorter than the outage.
const SURVIVE_RESTART: [(&str, &str); 1] = [("KAFKA_ACTORS_KAFKA__REQUEST_TIMEOUT_MS", "60000")];

/// How long the broker stays down: well past the 6 s session timeout, so
/// every member finds its session over whatever the machine's speed.
const RESTART_PAUSE: Duration = Duration::from_secs(8);

/// Kafka's group coordinator goes away in the middle of a request stream:
/// the broker restarts and stays down longer than the session timeout, so
/// connections drop, fetches, produces, heartbeats and commits fail, each
/// member treats its partitions as lost (stopped without committing) and
/// rejoins while the coordinator reloads `__consumer_offsets`. Both members
/// get back to a complete, disjoint assignment and go on consuming and
/// committing; every request is answered; no committed offset goes
/// backwards; no partition is committed by two members in one generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Apache Kafka: starts and restarts its own broker with scripts/kafka (Tansu is in-process and cannot be restarted with its data)"]
async fn the_group_recovers_from_a_broker_restart_without_losing_requests() {
    bounded_by(RESTART_TEST_DEADLINE, async {
        let broker = Arc::new(tokio::task::spawn_blocking(OwnKafka::up).await.unwrap());
        let bootstrap = broker.bootstrap.clone();
        let kafka = testkit::kafka_config(&bootstrap);
        let client = testkit::client(&bootstrap, Duration::from_secs(60))
            .await
            .unwrap();
        let t = topics(&client, 6).await;
        let group = testkit::unique_name("restart");
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, &t, &group, "");
        let all: BTreeSet<TopicPartition> = (0..6).map(|p| (t.requests.clone(), p)).collect();

        let (b, p, a) = (bootstrap.clone(), path.clone(), all.clone());
        let members = tokio::task::spawn_blocking(move || {
            let first = start(&b, &p, &SURVIVE_RESTART);
            let second = start(&b, &p, &SURVIVE_RESTART);
            let shares = wait_stable(&[&first, &second], &a);
            assert!(shares.iter().all(|s| s.len() == 3), "{shares:?}");
            [first, second]
        })
        .await
        .unwrap();

        // The test's own clients wait out the restart too.
        let patient = KafkaConfig {
            request_timeout_ms: 90_000,
            ..kafka.clone()
        };
        let traffic = Traffic::start(&patient, &kafka, &t.requests, &group).await;
        traffic.flow(150).await;

        let joins_before: Vec<usize> = members
            .iter()
            .map(|m| events(m, "joined the group").len())
            .collect();
        let sent_before = traffic.sent.load(Ordering::SeqCst);
        let b = Arc::clone(&broker);
        let away = tokio::task::spawn_blocking(move || b.restart(RESTART_PAUSE))
            .await
            .unwrap();
        tracing::info!(?away, sent_before, "broker restarted");

        // Each member's session ran out while the broker was away: it
        // rejoins, and the two get back to a complete, disjoint assignment.
        let a = all.clone();
        let (members, commits_at_recovery) = tokio::task::spawn_blocking(move || {
            let deadline = Instant::now() + Duration::from_secs(120);
            while members
                .iter()
                .zip(&joins_before)
                .any(|(m, before)| events(m, "joined the group").len() <= *before)
            {
                assert!(
                    Instant::now() < deadline,
                    "a member did not rejoin after the restart: {:?}",
                    members.iter().map(latest_join).collect::<Vec<_>>()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
            for m in &members {
                let causes: Vec<_> = events(m, "rebalancing")
                    .iter()
                    .filter_map(|e| e["fields"]["cause"].as_str().map(str::to_owned))
                    .collect();
                assert!(
                    causes.iter().any(|c| c == "session_timeout"),
                    "the member noticed its session was over: {causes:?}"
                );
            }
            let [first, second] = &members;
            let shares = wait_stable(&[first, second], &a);
            assert!(shares.iter().all(|s| s.len() == 3), "{shares:?}");
            let commits: Vec<usize> = members
                .iter()
                .map(|m| events(m, "committed").len())
                .collect();
            (members, commits)
        })
        .await
        .unwrap();

        // Requests keep flowing after the recovery.
        let resumed_at = traffic.sent.load(Ordering::SeqCst);
        traffic.flow(150).await;
        let (n, committed) = traffic.finish().await;
        assert!(
            n > resumed_at,
            "requests were sent after the recovery ({resumed_at} -> {n})"
        );
        for (m, at_recovery) in members.iter().zip(&commits_at_recovery) {
            assert!(
                events(m, "committed").len() > *at_recovery,
                "each member committed again after the recovery"
            );
        }

        assert_all_answered(&client, &t.responses, n).await;
        assert_eq!(
            committed.len(),
            6,
            "every partition committed: {committed:?}"
        );
        let [first, second] = &members;
        assert_fenced(&[first, second]);
        // Members first: they must not outlive the broker they talk to.
        drop(members);
        drop(broker);
    })
    .await;
}

/// How long the marked record keeps its handler busy: longer than the
/// session timeout (6 s, see [`write_slow_config`]).
const SLOW_SECS: u64 = 9;

/// A jq route that busy-waits [`SLOW_SECS`] on a record whose payload has
/// `slow: true` (jq has no sleep; a loop on `now` takes the same time on
/// any machine and holds the handler's thread like a CPU-bound handler).
fn write_slow_config(dir: &tempfile::TempDir, t: &Topics, group: &str) -> PathBuf {
    let path = dir.path().join("service.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[consumer]
group_id = "{group}"
fetch_max_wait_ms = 100
session_timeout_ms = 6000
heartbeat_interval_ms = 1000

[log]
format = "json"

[routes.main]
topic = "{requests}"
reply_topic = "{responses}"
handler = "jq"
program = '''
if .slow then
  now as $t0
  | first(range(0; 1000000000000) | select(now - $t0 >= {SLOW_SECS}))
  | {{slow: true, took: (now - $t0)}}
else . end
'''
"#,
            requests = t.requests,
            responses = t.responses,
        ),
    )
    .unwrap();
    path
}

/// The causes of a member's rebalances, in order: the one that led to its
/// first join (`start`; a join retried because a fresh broker was still
/// loading `__consumer_offsets` counts as part of it), then every later one.
fn rebalances_after_first_join(service: &Service) -> Vec<String> {
    let mut causes = Vec::new();
    let mut joined = false;
    for line in service.log().lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        match v["fields"]["message"].as_str() {
            Some("joined the group") => joined = true,
            Some("rebalancing") if joined || causes.is_empty() => {
                causes.push(v["fields"]["cause"].as_str().unwrap_or_default().to_owned());
            }
            _ => {}
        }
    }
    causes
}

/// A handler busy for longer than the session timeout does not get its
/// member evicted: heartbeats run apart from handler work. The member never
/// rebalances after its first join, and the slow record is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_slower_than_the_session_timeout_does_not_get_the_member_evicted() {
    bounded_by(Duration::from_secs(180), async {
        let broker = TestBroker::start().await.unwrap();
        let kafka = testkit::kafka_config(broker.bootstrap());
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 6).await;
        let group = testkit::unique_name("slow");
        let dir = tempfile::tempdir().unwrap();
        let path = write_slow_config(&dir, &t, &group);
        let all: BTreeSet<TopicPartition> = (0..6).map(|p| (t.requests.clone(), p)).collect();
        let bootstrap = broker.bootstrap().to_owned();
        let member = tokio::task::spawn_blocking(move || {
            let member = start(&bootstrap, &path, &[]);
            wait_stable(&[&member], &all);
            member
        })
        .await
        .unwrap();
        let (generation, _) = latest_join(&member).unwrap();

        // Requests around one slow one (six partitions, as
        // `assert_all_answered` reads six).
        const N: usize = 20;
        const SLOW: usize = 5;
        let producer = Producer::connect(&kafka, Compression::None)
            .await
            .unwrap();
        let records = (0..N)
            .map(|i| OutRecord {
                topic: t.requests.clone(),
                key: Some(format!("key-{}", i % 4).into_bytes()),
                value: Some(
                    json!({
                        "correlation_id": format!("c{i}"),
                        "payload": if i == SLOW { json!({"slow": true}) } else { json!({"seq": i}) },
                    })
                    .to_string()
                    .into_bytes(),
                ),
                ..OutRecord::default()
            })
            .collect();
        for r in producer.send(records).await {
            r.unwrap();
        }

        // The slow one is answered, after keeping its handler busy past the
        // session timeout.
        let deadline = Instant::now() + Duration::from_secs(60);
        let slow = loop {
            let responses = read_all(&client, &t.responses, 6, N, Duration::from_secs(5)).await;
            if let Some((_, v)) = responses
                .iter()
                .find(|(_, v)| v["correlation_id"] == format!("c{SLOW}"))
            {
                break v.clone();
            }
            assert!(
                Instant::now() < deadline,
                "the slow request was not answered: {:?}",
                correlation_counts(&responses)
            );
        };
        let took = slow["payload"]["took"]
            .as_f64()
            .unwrap_or_else(|| panic!("no `took` in the slow reply: {slow}"));
        assert!(took >= SLOW_SECS as f64, "{slow}");
        assert_all_answered(&client, &t.responses, N).await;

        // A heartbeat interval or two more, for a late eviction to show.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let causes = rebalances_after_first_join(&member);
        assert_eq!(causes.first().map(String::as_str), Some("start"));
        assert_eq!(
            &causes[1..],
            &[] as &[String],
            "the member rebalanced after its first join (causes: {causes:?})"
        );
        assert_eq!(
            latest_join(&member).map(|(g, _)| g),
            Some(generation),
            "no new generation"
        );
        drop(member);
    })
    .await;
}

/// Readiness follows the broker: `/health/ready` answers 200 while the
/// broker is up, 503 (naming the broker check) while it is away, and 200
/// again once it is back; a `broker_unreachable` rule fires while it is
/// away and resolves after, and the partition is answered again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Apache Kafka: stops and starts its own broker with scripts/kafka (Tansu is in-process and cannot be restarted with its data)"]
async fn readiness_and_the_broker_alert_follow_the_broker_away_and_back() {
    bounded_by(RESTART_TEST_DEADLINE, async {
        let broker = Arc::new(tokio::task::spawn_blocking(OwnKafka::up).await.unwrap());
        let bootstrap = broker.bootstrap.clone();
        let client = testkit::client(&bootstrap, Duration::from_secs(60))
            .await
            .unwrap();
        let t = topics(&client, 1).await;
        let dir = tempfile::tempdir().unwrap();
        let path = crate::pipeline::write_config(
            &dir,
            &t,
            "handler = \"echo\"\n\
             [alerts]\ninterval_ms = 250\ndefault_rules = false\n\
             [alerts.rules.broker]\nmetric = \"broker_unreachable\"\nabove = 0\nfor_ms = 1000\n\
             severity = \"critical\"\n",
        );
        let (b, p) = (bootstrap.clone(), path.clone());
        let service = tokio::task::spawn_blocking(move || {
            crate::pipeline::start_with(&b, &p, &SURVIVE_RESTART)
        })
        .await
        .unwrap();
        let http = service.http.clone();
        let get = move |path: &'static str| {
            let http = http.clone();
            async move {
                tokio::task::spawn_blocking(move || crate::support::http_get(&http, path))
                    .await
                    .unwrap()
            }
        };
        assert_eq!(get("/health/ready").await.unwrap().0, 200);

        let b = Arc::clone(&broker);
        let away = tokio::task::spawn_blocking(move || b.restart(RESTART_PAUSE));
        // Not ready while it is away, saying why; the alert fires.
        let deadline = Instant::now() + Duration::from_secs(60);
        let (mut not_ready, mut fired) = (None, false);
        while not_ready.is_none() || !fired {
            assert!(
                Instant::now() < deadline,
                "while the broker was away: not ready {not_ready:?}, alert fired {fired}"
            );
            if let Ok((503, body)) = get("/health/ready").await {
                not_ready = Some(body);
            }
            if let Ok((200, alerts)) = get("/api/v1/alerts").await {
                fired |= alerts.contains("\"state\":\"firing\"");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let reason = not_ready.unwrap();
        assert!(reason.contains("not ready"), "{reason}");
        assert!(reason.to_lowercase().contains("broker"), "{reason}");
        let away = away.await.unwrap();

        // Back: ready again, the alert resolved, and requests answered.
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let ready = get("/health/ready").await.map(|(s, _)| s);
            let alerts = get("/api/v1/alerts").await.map(|(_, a)| a);
            if ready == Ok(200) && alerts.as_deref() == Ok("{\"alerts\":[]}") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "not back after the broker returned: ready {ready:?}, alerts {alerts:?}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let producer = Producer::connect(&testkit::kafka_config(&bootstrap), Compression::None)
            .await
            .unwrap();
        for r in producer
            .send(vec![OutRecord {
                topic: t.requests.clone(),
                value: Some(
                    json!({"correlation_id": "c0", "payload": {"seq": 0}})
                        .to_string()
                        .into_bytes(),
                ),
                ..OutRecord::default()
            }])
            .await
        {
            r.unwrap();
        }
        let answered = read_all(&client, &t.responses, 1, 1, Duration::from_secs(60)).await;
        assert_eq!(answered.len(), 1);
        tracing::info!(?away, "readiness followed the broker");
        drop(service);
    })
    .await;
}
