//! Consumer groups: several `kafka-actors run` processes with one group id
//! share the partitions, take over from a member that stops or crashes,
//! lose no request, never move a committed offset backwards and never
//! commit one partition from two members in one generation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use kafka_actors::kafka::{GroupCoordinator, TopicPartition};
use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use serde_json::{Value, json};

use crate::pipeline::{Topics, correlation_counts, read_all, topics};
use crate::support::{Service, init_logs};

/// Group tests go through several rebalances (about 5 s each on Tansu).
const GROUP_TEST_DEADLINE: Duration = Duration::from_secs(300);
const STABLE_WITHIN: Duration = Duration::from_secs(90);

pub(crate) async fn bounded_long<T>(fut: impl std::future::Future<Output = T>) -> T {
    init_logs();
    match tokio::time::timeout(GROUP_TEST_DEADLINE, fut).await {
        Ok(v) => v,
        Err(_) => panic!("test did not finish within {GROUP_TEST_DEADLINE:?}"),
    }
}

pub(crate) fn write_config(
    dir: &tempfile::TempDir,
    t: &Topics,
    group: &str,
    extra: &str,
) -> PathBuf {
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
{extra}

[log]
format = "json"

[routes.main]
topic = "{requests}"
reply_topic = "{responses}"
handler = "echo"
"#,
            requests = t.requests,
            responses = t.responses,
        ),
    )
    .unwrap();
    path
}

pub(crate) fn start(bootstrap: &str, config: &Path, env: &[(&str, &str)]) -> Service {
    let config = config.to_string_lossy().into_owned();
    let mut env = env.to_vec();
    env.push(("KAFKA_ACTORS_CONFIG", config.as_str()));
    let mut service = Service::start(bootstrap, &[], &env);
    service.wait_for_status("/health/live", 200, STABLE_WITHIN);
    service
}

/// The JSON log lines of `service` with the given message.
pub(crate) fn events(service: &Service, message: &str) -> Vec<Value> {
    service
        .log()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["fields"]["message"] == message)
        .collect()
}

/// `{("t", 0), ("t", 1)}` (a `Debug` set of topic-partitions) as a set.
fn parse_partitions(debug: &str) -> BTreeSet<TopicPartition> {
    let mut out = BTreeSet::new();
    for item in debug.split("(\"").skip(1) {
        if let Some((topic, rest)) = item.split_once("\", ") {
            let n: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(p) = n.parse() {
                out.insert((topic.to_owned(), p));
            }
        }
    }
    out
}

/// A member's latest "joined the group": (generation, partitions).
pub(crate) fn latest_join(service: &Service) -> Option<(i64, BTreeSet<TopicPartition>)> {
    let last = events(service, "joined the group").pop()?;
    Some((
        last["fields"]["generation"].as_i64()?,
        parse_partitions(last["fields"]["partitions"].as_str()?),
    ))
}

/// Whether the member led (computed the assignment) in its latest join.
fn last_join_led(service: &Service) -> Option<bool> {
    events(service, "joined the group").pop()?["fields"]["leader"].as_bool()
}

/// Waits until `members` are all in one generation and their assignments
/// are disjoint and cover `expected`; returns them.
pub(crate) fn wait_stable(
    members: &[&Service],
    expected: &BTreeSet<TopicPartition>,
) -> Vec<BTreeSet<TopicPartition>> {
    let deadline = Instant::now() + STABLE_WITHIN;
    loop {
        let joins: Vec<_> = members.iter().map(|s| latest_join(s)).collect();
        if joins.iter().all(Option::is_some) {
            let joins: Vec<_> = joins.into_iter().flatten().collect();
            let same_generation = joins.iter().all(|(g, _)| *g == joins[0].0);
            let total: usize = joins.iter().map(|(_, p)| p.len()).sum();
            let union: BTreeSet<_> = joins.iter().flat_map(|(_, p)| p.clone()).collect();
            if same_generation && total == expected.len() && &union == expected {
                return joins.into_iter().map(|(_, p)| p).collect();
            }
        }
        assert!(
            Instant::now() < deadline,
            "members did not settle on a complete, disjoint assignment: {:?}",
            members.iter().map(|s| latest_join(s)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Prints how long a take-over took (a figure, not an assertion).
#[allow(clippy::print_stderr)]
fn report_take_over(what: &str, took: Duration) {
    eprintln!("group take-over after {what}: partitions consumed again by the others in {took:?}");
}

/// Every "committed" line of every member: (generation, member, partition).
pub(crate) fn commits(services: &[&Service]) -> Vec<(i64, String, TopicPartition)> {
    let mut out = Vec::new();
    for s in services {
        for e in events(s, "committed") {
            let f = &e["fields"];
            let (Some(generation), Some(member), Some(offsets)) = (
                f["generation"].as_i64(),
                f["member"].as_str(),
                f["offsets"].as_str(),
            ) else {
                continue;
            };
            for entry in offsets.split(',') {
                let Some((tp, _offset)) = entry.rsplit_once('=') else {
                    continue;
                };
                let Some((topic, p)) = tp.rsplit_once('/') else {
                    continue;
                };
                if let Ok(p) = p.parse() {
                    out.push((generation, member.to_owned(), (topic.to_owned(), p)));
                }
            }
        }
    }
    out
}

/// Reads the responses until every request `c0..c{n}` has at least one
/// (at-least-once: some may have two), or a minute passes; fails naming
/// the unanswered ones.
pub(crate) async fn assert_all_answered(client: &rskafka::client::Client, topic: &str, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let responses = read_all(client, topic, 6, n, Duration::from_secs(5)).await;
        let counts = correlation_counts(&responses);
        let missing: Vec<String> = (0..n)
            .map(|i| format!("c{i}"))
            .filter(|id| !counts.contains_key(id))
            .collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {n} requests unanswered: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// What every group test starts from: a broker (the one the tests use), a
/// 6-partition request topic with its responses topic, a fresh group id,
/// and a config file for `kafka-actors run` (see [`write_config`]).
pub(crate) struct Fixture {
    pub(crate) broker: TestBroker,
    pub(crate) kafka: kafka_actors::config::KafkaConfig,
    pub(crate) client: rskafka::client::Client,
    pub(crate) t: Topics,
    pub(crate) group: String,
    pub(crate) path: PathBuf,
    /// Every partition of the request topic.
    pub(crate) all: BTreeSet<TopicPartition>,
    pub(crate) _dir: tempfile::TempDir,
}

impl Fixture {
    /// A fresh group named after `prefix`, with `extra` in `[consumer]`.
    pub(crate) async fn new(prefix: &str, extra: &str) -> Self {
        let broker = TestBroker::start().await.unwrap();
        let kafka = testkit::kafka_config(broker.bootstrap());
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 6).await;
        let group = testkit::unique_name(prefix);
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, &t, &group, extra);
        let all = (0..6).map(|p| (t.requests.clone(), p)).collect();
        Self {
            broker,
            kafka,
            client,
            t,
            group,
            path,
            all,
            _dir: dir,
        }
    }
}

/// Requests flowing to a topic (see [`request_stream`]) and a watch on the
/// group's committed offsets of its six partitions (see [`watch_commits`]).
pub(crate) struct Traffic {
    stop: Arc<AtomicBool>,
    /// Requests sent so far.
    pub(crate) sent: Arc<AtomicUsize>,
    stream: tokio::task::JoinHandle<()>,
    watcher: tokio::task::JoinHandle<BTreeMap<TopicPartition, i64>>,
}

impl Traffic {
    /// Starts both; the requests go through a producer with `producer`'s
    /// settings, the commits are read with `kafka`'s.
    pub(crate) async fn start(
        producer: &kafka_actors::config::KafkaConfig,
        kafka: &kafka_actors::config::KafkaConfig,
        topic: &str,
        group: &str,
    ) -> Self {
        let producer = Arc::new(
            Producer::connect(producer, kafka_actors::config::Compression::None)
                .await
                .unwrap(),
        );
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(0));
        let stream = request_stream(
            producer,
            topic.to_owned(),
            Arc::clone(&stop),
            Arc::clone(&sent),
        );
        let watcher = watch_commits(
            kafka.clone(),
            group.to_owned(),
            (0..6).map(|p| (topic.to_owned(), p)).collect(),
            Arc::clone(&stop),
        );
        Self {
            stop,
            sent,
            stream,
            watcher,
        }
    }

    /// Waits until `more` further requests were sent: requests flowing
    /// through a phase of the test.
    pub(crate) async fn flow(&self, more: usize) {
        let sent = Arc::clone(&self.sent);
        tokio::task::spawn_blocking(move || wait_sent(&sent, more))
            .await
            .unwrap();
    }

    /// Stops both: how many requests were sent, and the last committed
    /// offsets seen (the watch fails the test if one ever went backwards).
    pub(crate) async fn finish(self) -> (usize, BTreeMap<TopicPartition, i64>) {
        self.stop.store(true, Ordering::SeqCst);
        self.stream.await.unwrap();
        let committed = self.watcher.await.unwrap();
        (self.sent.load(Ordering::SeqCst), committed)
    }
}

/// Blocks until `more` further requests were counted in `sent` (see
/// [`Traffic`]).
pub(crate) fn wait_sent(sent: &AtomicUsize, more: usize) {
    let target = sent.load(Ordering::SeqCst) + more;
    crate::support::wait_until(
        &format!("{more} more requests sent"),
        Duration::from_secs(60),
        || sent.load(Ordering::SeqCst) >= target,
    );
}

/// The commit fence, from every member's commit log: no partition was
/// committed by two members in one generation.
pub(crate) fn assert_fenced(services: &[&Service]) {
    let mut by_generation: BTreeMap<(i64, TopicPartition), BTreeSet<String>> = BTreeMap::new();
    for (generation, member, tp) in commits(services) {
        by_generation
            .entry((generation, tp))
            .or_default()
            .insert(member);
    }
    assert!(!by_generation.is_empty(), "no commits logged");
    for ((generation, tp), members) in &by_generation {
        assert_eq!(
            members.len(),
            1,
            "{tp:?} committed by {members:?} in generation {generation}"
        );
    }
}

/// Sends a request every few milliseconds until stopped; returns how many.
pub(crate) fn request_stream(
    producer: Arc<Producer>,
    topic: String,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut i = 0usize;
        while !stop.load(Ordering::SeqCst) {
            let records = (i..i + 5)
                .map(|n| OutRecord {
                    topic: topic.clone(),
                    // Every partition gets traffic.
                    partition: Some(i32::try_from(n % 6).unwrap_or(0)),
                    key: Some(format!("key-{}", n % 12).into_bytes()),
                    value: Some(
                        json!({"correlation_id": format!("c{n}"), "payload": {"seq": n}})
                            .to_string()
                            .into_bytes(),
                    ),
                    ..OutRecord::default()
                })
                .collect();
            for r in producer.send(records).await {
                r.unwrap();
            }
            i += 5;
            sent.store(i, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
}

/// Polls the group's committed offsets until stopped; fails on any that
/// goes backwards.
pub(crate) fn watch_commits(
    kafka: kafka_actors::config::KafkaConfig,
    group: String,
    partitions: Vec<TopicPartition>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<BTreeMap<TopicPartition, i64>> {
    tokio::spawn(async move {
        let mut seen: BTreeMap<TopicPartition, i64> = BTreeMap::new();
        while !stop.load(Ordering::SeqCst) {
            if let Ok(mut c) = GroupCoordinator::connect(&kafka, &group).await
                && let Ok(now) = c.fetch(&partitions).await
            {
                for (tp, offset) in now {
                    let Some(offset) = offset else { continue };
                    if let Some(prev) = seen.insert(tp.clone(), offset) {
                        assert!(
                            offset >= prev,
                            "committed offset of {tp:?} went back from {prev} to {offset}"
                        );
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        seen
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_share_partitions_and_take_over_without_losing_requests() {
    bounded_long(async {
        let Fixture {
            broker,
            kafka,
            client,
            t,
            group,
            path,
            all,
            _dir,
        } = Fixture::new("group", "").await;

        // Three members.
        let bootstrap = broker.bootstrap().to_owned();
        let (p, b, all1) = (path.clone(), bootstrap.clone(), all.clone());
        let (mut members, shares) = tokio::task::spawn_blocking(move || {
            let members: Vec<Service> = (0..3).map(|_| start(&b, &p, &[])).collect();
            let shares = {
                let refs: Vec<&Service> = members.iter().collect();
                wait_stable(&refs, &all1)
            };
            (members, shares)
        })
        .await
        .unwrap();
        assert_eq!(shares.len(), 3);
        assert!(shares.iter().all(|s| s.len() == 2), "{shares:?}");
        // What the coordinator says (`group describe`): three members, the
        // range assignor, and (Kafka only: Tansu's DescribeGroups leaves
        // assignments out) the same partitions per member.
        let described = kafka_actors::kafka::groups::describe_group(&kafka, &group)
            .await
            .unwrap();
        assert_eq!(described.state, "Stable", "{described:?}");
        assert_eq!(described.members.len(), 3, "{described:?}");
        if broker.is_external() {
            assert_eq!(described.protocol, "range");
            let mut theirs: Vec<BTreeSet<TopicPartition>> = described
                .members
                .iter()
                .map(|m| m.assignment.iter().cloned().collect())
                .collect();
            let mut ours = shares.clone();
            theirs.sort();
            ours.sort();
            assert_eq!(theirs, ours);
        }

        // Requests flow while members come and go.
        let traffic = Traffic::start(&kafka, &kafka, &t.requests, &group).await;
        traffic.flow(100).await;

        // SIGTERM: its partitions move to the other two.
        let mut first = members.remove(0);
        let all2 = all.clone();
        let (mut first, members) = tokio::task::spawn_blocking(move || {
            let stopping = Instant::now();
            let status = first.terminate(Duration::from_secs(60));
            assert!(status.success(), "{status}");
            let refs: Vec<&Service> = members.iter().collect();
            let shares = wait_stable(&refs, &all2);
            report_take_over("SIGTERM", stopping.elapsed());
            assert!(shares.iter().all(|s| s.len() == 3), "{shares:?}");
            (first, members)
        })
        .await
        .unwrap();
        traffic.flow(100).await;

        // kill -9: after the session timeout, the last member has them all.
        let mut members = members;
        let mut second = members.remove(0);
        let all3 = all.clone();
        let (second, last) = tokio::task::spawn_blocking(move || {
            let crashing = Instant::now();
            second.kill();
            let last = members.remove(0);
            let shares = wait_stable(&[&last], &all3);
            report_take_over("kill -9 (session timeout 6 s)", crashing.elapsed());
            assert_eq!(shares[0].len(), 6);
            (second, last)
        })
        .await
        .unwrap();
        traffic.flow(100).await;
        let (n, committed) = traffic.finish().await;

        // Every request answered at least once (at-least-once: the crashed
        // member's in-flight requests may be answered twice).
        assert_all_answered(&client, &t.responses, n).await;
        assert_eq!(
            committed.len(),
            6,
            "every partition committed: {committed:?}"
        );

        // The commit fence: no partition committed by two members in one
        // generation.
        assert_fenced(&[&first, &second, &last]);
        first.kill();
        drop((first, second, last));
    })
    .await;
}

/// A static member's settings: its instance id, and a session timeout long
/// enough for a restart.
fn static_member(id: &'static str) -> [(&'static str, &'static str); 2] {
    [
        ("KAFKA_ACTORS_CONSUMER__GROUP_INSTANCE_ID", id),
        ("KAFKA_ACTORS_CONSUMER__SESSION_TIMEOUT_MS", "20000"),
    ]
}

/// Static membership (KIP-345): a member restarted within the session
/// timeout gets its partitions back without a rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_member_restarting_within_the_session_keeps_its_partitions() {
    bounded_long(async {
        let Fixture {
            broker,
            path,
            all,
            _dir,
            ..
        } = Fixture::new("group", "").await;
        let bootstrap = broker.bootstrap().to_owned();
        tokio::task::spawn_blocking(move || {
            let a = start(&bootstrap, &path, &static_member("a"));
            let b = start(&bootstrap, &path, &static_member("b"));
            let before = wait_stable(&[&a, &b], &all);
            let (generation, _) = latest_join(&b).unwrap();
            let rebalances_of_b = events(&b, "rebalancing").len();

            let mut a = a;
            let status = a.terminate(Duration::from_secs(60));
            assert!(status.success(), "{status}");
            let a = start(&bootstrap, &path, &static_member("a"));
            let after = wait_stable(&[&a, &b], &all);
            assert_eq!(
                after, before,
                "the same partitions, each to the same member"
            );
            assert_eq!(latest_join(&a).unwrap().0, generation, "no new generation");
            assert_eq!(
                events(&b, "rebalancing").len(),
                rebalances_of_b,
                "the other member did not rebalance"
            );
        })
        .await
        .unwrap();
    })
    .await;
}

/// A librdkafka group member (`scripts/interop/rdkafka_member.py`, with
/// confluent-kafka from `scripts/python-env`). Killed on drop.
struct RdMember {
    child: Option<std::process::Child>,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl RdMember {
    fn start(bootstrap: &str, group: &str, t: &Topics, assignor: &str) -> Self {
        let root = env!("CARGO_MANIFEST_DIR");
        let python = crate::support::python();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("events.jsonl");
        let child = std::process::Command::new(python)
            .arg(format!("{root}/scripts/interop/rdkafka_member.py"))
            .args([bootstrap, group, &t.requests, &t.responses, assignor])
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
            .spawn()
            .expect("start the librdkafka member");
        Self {
            child: Some(child),
            out,
            _dir: dir,
        }
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// What it owns now, replaying its assign and revoke events.
    fn owned(&self) -> Option<BTreeSet<TopicPartition>> {
        let mut owned: Option<BTreeSet<TopicPartition>> = None;
        let parse = |v: &Value| -> BTreeSet<TopicPartition> {
            v["partitions"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    Some((
                        p[0].as_str()?.to_owned(),
                        i32::try_from(p[1].as_i64()?).ok()?,
                    ))
                })
                .collect()
        };
        for e in self.events() {
            match e["event"].as_str() {
                Some("assigned") => owned = Some(parse(&e)),
                Some("revoked") => {
                    if let Some(o) = owned.as_mut() {
                        for tp in parse(&e) {
                            o.remove(&tp);
                        }
                    }
                }
                _ => {}
            }
        }
        owned
    }

    /// SIGTERM: it commits, leaves the group and exits.
    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(60);
            while child.try_wait().ok().flatten().is_none() {
                assert!(
                    Instant::now() < deadline,
                    "the librdkafka member did not stop"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

#[allow(clippy::print_stderr)]
impl Drop for RdMember {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            let stderr = std::fs::read_to_string(self.out.with_file_name("stderr.log"));
            eprintln!(
                "----- librdkafka member -----\n{}\n{}\n-----",
                std::fs::read_to_string(&self.out).unwrap_or_default(),
                stderr.unwrap_or_default()
            );
        }
    }
}

/// Waits until the members' partitions (`None`: not assigned yet) are
/// disjoint and cover `expected`; returns them.
fn wait_covering(
    members: &[&dyn Fn() -> Option<BTreeSet<TopicPartition>>],
    expected: &BTreeSet<TopicPartition>,
) -> Vec<BTreeSet<TopicPartition>> {
    let deadline = Instant::now() + STABLE_WITHIN;
    loop {
        let now: Vec<_> = members.iter().map(|m| m()).collect();
        if now.iter().all(Option::is_some) {
            let now: Vec<_> = now.into_iter().flatten().collect();
            let total: usize = now.iter().map(BTreeSet::len).sum();
            let union: BTreeSet<_> = now.iter().flatten().cloned().collect();
            if total == expected.len() && &union == expected {
                return now;
            }
        }
        assert!(
            Instant::now() < deadline,
            "members did not settle on a complete, disjoint assignment: {:?}",
            members.iter().map(|m| m()).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// As [`wait_covering`], and until the shares differ by at most one
/// (KIP-848 moves partitions over several heartbeats).
fn wait_balanced(
    members: &[&dyn Fn() -> Option<BTreeSet<TopicPartition>>],
    expected: &BTreeSet<TopicPartition>,
) -> Vec<BTreeSet<TopicPartition>> {
    let deadline = Instant::now() + STABLE_WITHIN;
    loop {
        let shares = wait_covering(members, expected);
        let sizes: Vec<usize> = shares.iter().map(BTreeSet::len).collect();
        let (min, max) = (sizes.iter().min(), sizes.iter().max());
        if let (Some(min), Some(max)) = (min, max)
            && max - min <= 1
        {
            return shares;
        }
        assert!(
            Instant::now() < deadline,
            "shares never balanced: {shares:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A librdkafka consumer (confluent-kafka) and kafka-actors in one group,
/// each leader in turn: assignments disjoint and complete, both answer
/// requests and commit, every request answered, no committed offset goes
/// backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_librdkafka_consumer_and_kafka_actors_share_a_group_either_one_leading() {
    bounded_long(async {
        let broker = TestBroker::start().await.unwrap();
        let kafka = testkit::kafka_config(broker.bootstrap());
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = Arc::new(topics(&client, 6).await);
        let group = testkit::unique_name("interop");
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, &t, &group, "");
        let all: BTreeSet<TopicPartition> = (0..6).map(|p| (t.requests.clone(), p)).collect();
        let bootstrap = broker.bootstrap().to_owned();

        let traffic = Traffic::start(&kafka, &kafka, &t.requests, &group).await;

        let (b, g, tt, p, a) = (
            bootstrap.clone(),
            group.clone(),
            Arc::clone(&t),
            path.clone(),
            all.clone(),
        );
        let sent = Arc::clone(&traffic.sent);
        let (ours, theirs) = tokio::task::spawn_blocking(move || {
            // kafka-actors first: it leads and computes the assignment.
            let mut ours = start(&b, &p, &[]);
            wait_stable(&[&ours], &a);
            let mut theirs = RdMember::start(&b, &g, &tt, "range");
            let shares = wait_covering(
                &[&|| latest_join(&ours).map(|(_, p)| p), &|| theirs.owned()],
                &a,
            );
            assert!(
                shares.iter().all(|s| s.len() == 3),
                "kafka-actors leading: {shares:?}"
            );
            assert_eq!(
                last_join_led(&ours),
                Some(true),
                "kafka-actors computed the assignment"
            );
            std::thread::sleep(Duration::from_secs(2));

            // kafka-actors leaves: librdkafka takes everything, then leads
            // when a new kafka-actors member joins.
            let status = ours.terminate(Duration::from_secs(60));
            assert!(status.success(), "{status}");
            wait_covering(&[&|| theirs.owned()], &a);
            let ours = start(&b, &p, &[]);
            let shares = wait_covering(
                &[&|| latest_join(&ours).map(|(_, p)| p), &|| theirs.owned()],
                &a,
            );
            assert!(
                shares.iter().all(|s| s.len() == 3),
                "librdkafka leading: {shares:?}"
            );
            assert_eq!(
                last_join_led(&ours),
                Some(false),
                "librdkafka computed the assignment"
            );
            wait_sent(&sent, 100);
            theirs.terminate();
            (ours, theirs)
        })
        .await
        .unwrap();
        traffic.flow(50).await;
        let (n, committed) = traffic.finish().await;
        assert_all_answered(&client, &t.responses, n).await;
        assert_eq!(
            committed.len(),
            6,
            "every partition committed: {committed:?}"
        );
        let handled_by_them = theirs
            .events()
            .iter()
            .filter_map(|e| e["count"].as_u64())
            .max()
            .unwrap_or(0);
        assert!(
            handled_by_them > 0,
            "the librdkafka member handled requests too"
        );
        drop((ours, theirs));
    })
    .await;
}

/// The partitions a member stopped consuming, from its log.
fn stopped(service: &Service) -> Vec<TopicPartition> {
    events(service, "stopped consuming")
        .iter()
        .filter_map(|e| {
            Some((
                e["fields"]["topic"].as_str()?.to_owned(),
                i32::try_from(e["fields"]["partition"].as_i64()?).ok()?,
            ))
        })
        .collect()
}

/// Cooperative-sticky: a member joining takes partitions from the others,
/// and they stop only the partitions that move; the rest keep being
/// consumed through the rebalance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Apache Kafka: Tansu completes a generation without waiting for every known member and answers followers' JoinGroup seconds after the leader's, so the cooperative protocol's immediate rejoin after a revocation (as the Java client does it) keeps starting new rounds there under load"]
async fn cooperative_sticky_revokes_only_the_partitions_that_move() {
    bounded_long(async {
        let Fixture {
            broker,
            kafka,
            client,
            t,
            group,
            path,
            all,
            _dir,
        } = Fixture::new(
            "coop",
            r#"partition_assignment_strategy = ["cooperative-sticky"]"#,
        )
        .await;
        let traffic = Traffic::start(&kafka, &kafka, &t.requests, &group).await;
        let bootstrap = broker.bootstrap().to_owned();
        let (kafka2, group2) = (kafka.clone(), group.clone());
        let services = tokio::task::spawn_blocking(move || {
            let a = start(&bootstrap, &path, &[]);
            let b = start(&bootstrap, &path, &[]);
            let before = wait_stable(&[&a, &b], &all);
            assert!(before.iter().all(|s| s.len() == 3), "{before:?}");
            let stopped_before = (stopped(&a).len(), stopped(&b).len());
            let committed = || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    let mut c = GroupCoordinator::connect(&kafka2, &group2).await.unwrap();
                    c.fetch(&all.iter().cloned().collect::<Vec<_>>())
                        .await
                        .unwrap()
                })
            };
            let progress_before = committed();

            let c = start(&bootstrap, &path, &[]);
            let after = wait_stable(&[&a, &b, &c], &all);
            // The partitions that stayed kept being handled and committed
            // while the group rebalanced around them.
            let progress_after = committed();
            for tp in after[0].iter().chain(&after[1]) {
                assert!(
                    progress_after[tp] > progress_before[tp],
                    "{tp:?} made no progress during the rebalance: {:?} -> {:?}",
                    progress_before[tp],
                    progress_after[tp]
                );
            }
            assert!(after.iter().all(|s| s.len() == 2), "{after:?}");
            for (i, (old, new)) in before.iter().zip(&after).enumerate() {
                // Sticky: a member keeps what it can.
                assert!(new.is_subset(old), "member {i}: {old:?} -> {new:?}");
            }
            // Each of the two stopped exactly the partition it gave away.
            let moved_a: Vec<_> = stopped(&a).split_off(stopped_before.0);
            let moved_b: Vec<_> = stopped(&b).split_off(stopped_before.1);
            let gave_a: Vec<_> = before[0].difference(&after[0]).cloned().collect();
            let gave_b: Vec<_> = before[1].difference(&after[1]).cloned().collect();
            assert_eq!(moved_a, gave_a, "member a stopped only what moved");
            assert_eq!(moved_b, gave_b, "member b stopped only what moved");
            assert_eq!(after[2], gave_a.iter().chain(&gave_b).cloned().collect());
            (a, b, c)
        })
        .await
        .unwrap();
        let (n, _) = traffic.finish().await;
        assert_all_answered(&client, &t.responses, n).await;
        drop(services);
    })
    .await;
}

/// A member that stops answering (SIGSTOP past the session timeout) is
/// evicted; the other takes its partitions over. When it wakes up it finds
/// out, stops its partitions without committing, and rejoins. Nothing is
/// lost, no committed offset goes backwards, and no partition is committed
/// by two members in one generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_member_is_fenced_off_and_rejoins_when_it_wakes() {
    bounded_long(async {
        let Fixture {
            broker,
            kafka,
            client,
            t,
            group,
            path,
            all,
            _dir,
        } = Fixture::new("frozen", "").await;
        let traffic = Traffic::start(&kafka, &kafka, &t.requests, &group).await;
        let bootstrap = broker.bootstrap().to_owned();
        let sent = Arc::clone(&traffic.sent);
        let (a, b) = tokio::task::spawn_blocking(move || {
            let a = start(&bootstrap, &path, &[]);
            let b = start(&bootstrap, &path, &[]);
            wait_stable(&[&a, &b], &all);
            wait_sent(&sent, 100);

            a.signal("STOP");
            let taken = wait_stable(&[&b], &all);
            assert_eq!(taken[0].len(), 6);
            a.signal("CONT");
            let shares = wait_stable(&[&a, &b], &all);
            assert!(shares.iter().all(|s| s.len() == 3), "{shares:?}");
            let lost = events(&a, "partitions lost; stopping them without committing");
            assert!(
                !lost.is_empty(),
                "the woken member treated its partitions as lost"
            );
            (a, b)
        })
        .await
        .unwrap();
        traffic.flow(100).await;
        let (n, _) = traffic.finish().await;
        assert_all_answered(&client, &t.responses, n).await;
        assert_fenced(&[&a, &b]);
        drop((a, b));
    })
    .await;
}

/// KIP-848 (`group_protocol = "consumer"`): the broker assigns; two members
/// share the partitions, one leaves and the other takes them all; nothing
/// is lost and no committed offset goes backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Apache Kafka: Tansu does not implement KIP-848's ConsumerGroupHeartbeat"]
async fn kip848_members_share_partitions_and_take_over() {
    bounded_long(async {
        let Fixture {
            broker,
            kafka,
            client,
            t,
            group,
            path,
            all,
            _dir,
        } = Fixture::new("kip848", r#"group_protocol = "consumer""#).await;
        let traffic = Traffic::start(&kafka, &kafka, &t.requests, &group).await;
        let bootstrap = broker.bootstrap().to_owned();
        let (kafka2, group2) = (kafka.clone(), group.clone());
        let sent = Arc::clone(&traffic.sent);
        let survivor = tokio::task::spawn_blocking(move || {
            let mut a = start(&bootstrap, &path, &[]);
            let b = start(&bootstrap, &path, &[]);
            let shares = wait_balanced(
                &[&|| latest_join(&a).map(|(_, p)| p), &|| {
                    latest_join(&b).map(|(_, p)| p)
                }],
                &all,
            );
            assert!(shares.iter().all(|s| s.len() == 3), "{shares:?}");
            // `group describe` of a KIP-848 group (ConsumerGroupDescribe).
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            let described = rt
                .block_on(kafka_actors::kafka::groups::describe_group(
                    &kafka2, &group2,
                ))
                .unwrap();
            assert_eq!(described.members.len(), 2, "{described:?}");
            let mut theirs: Vec<BTreeSet<TopicPartition>> = described
                .members
                .iter()
                .map(|m| m.assignment.iter().cloned().collect())
                .collect();
            let mut ours = shares.clone();
            theirs.sort();
            ours.sort();
            assert_eq!(theirs, ours, "{described:?}");
            wait_sent(&sent, 100);
            let status = a.terminate(Duration::from_secs(60));
            assert!(status.success(), "{status}");
            assert!(!events(&a, "left the group").is_empty());
            wait_covering(&[&|| latest_join(&b).map(|(_, p)| p)], &all);
            b
        })
        .await
        .unwrap();
        traffic.flow(100).await;
        let (n, committed) = traffic.finish().await;
        assert_all_answered(&client, &t.responses, n).await;
        assert_eq!(
            committed.len(),
            6,
            "every partition committed: {committed:?}"
        );
        drop(survivor);
    })
    .await;
}

/// On a broker without KIP-848 (Tansu), `group_protocol = "consumer"`
/// fails at start-up saying so and what to change (exit code 3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kip848_on_a_broker_without_it_fails_with_the_advice() {
    bounded_long(async {
        // Always Tansu, whichever broker the other tests use.
        let broker = kafka_actors::embedded::EmbeddedBroker::start()
            .await
            .unwrap();
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 1).await;
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, &t, "kip848", r#"group_protocol = "consumer""#);
        let bootstrap = broker.bootstrap().to_owned();
        let (status, out, err) = tokio::task::spawn_blocking(move || {
            let config = path.to_string_lossy().into_owned();
            crate::support::run_cli(
                &["--config", &config, "run"],
                &[
                    ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
                    ("KAFKA_ACTORS_HTTP__BIND", "127.0.0.1:0"),
                ],
            )
        })
        .await
        .unwrap();
        assert_eq!(status.code(), Some(3), "{out}\n{err}");
        assert!(err.contains("needs KIP-848"), "{err}");
        assert!(
            err.contains("consumer.group_protocol = \\\"classic\\\""),
            "{err}"
        );
    })
    .await;
}

/// The Java client (Kafka's console consumer, from the jars `scripts/kafka`
/// fetched) and kafka-actors in one group, each leader in turn: the
/// coordinator's view (DescribeGroups, both members' assignments decoded)
/// is disjoint and complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Apache Kafka: runs the Java console consumer from the broker jars scripts/kafka fetched"]
async fn a_java_consumer_and_kafka_actors_share_a_group_either_one_leading() {
    bounded_long(async {
        let Fixture {
            broker,
            kafka,
            t,
            group,
            path,
            all,
            _dir,
            ..
        } = Fixture::new("java", "").await;
        let bootstrap = broker.bootstrap().to_owned();

        // Both members, as the coordinator sees them.
        let described = |kafka: kafka_actors::config::KafkaConfig, group: String| async move {
            let d = kafka_actors::kafka::groups::describe_group(&kafka, &group)
                .await
                .unwrap();
            d.members
                .iter()
                .map(|m| (m.client_id.clone(), m.assignment.iter().cloned().collect()))
                .collect::<Vec<(String, BTreeSet<TopicPartition>)>>()
        };
        let balanced = |members: &[(String, BTreeSet<TopicPartition>)]| {
            members.len() == 2
                && members.iter().all(|(_, p)| p.len() == 3)
                && members
                    .iter()
                    .flat_map(|(_, p)| p.clone())
                    .collect::<BTreeSet<_>>()
                    == all
        };
        let wait_described = |want_java: bool| {
            let (kafka, group) = (kafka.clone(), group.clone());
            async move {
                let deadline = Instant::now() + STABLE_WITHIN;
                loop {
                    let now = described(kafka.clone(), group.clone()).await;
                    if balanced(&now)
                        && now.iter().any(|(c, _)| c.starts_with("console-consumer")) == want_java
                    {
                        return now;
                    }
                    assert!(Instant::now() < deadline, "not balanced: {now:?}");
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            }
        };

        let (b, p) = (bootstrap.clone(), path.clone());
        let all1 = all.clone();
        let ours = tokio::task::spawn_blocking(move || {
            let ours = start(&b, &p, &[]);
            wait_stable(&[&ours], &all1);
            ours
        })
        .await
        .unwrap();
        let root = env!("CARGO_MANIFEST_DIR");
        let java = std::process::Command::new("bash")
            .arg(format!("{root}/scripts/kafka"))
            .args([
                "tool",
                "org.apache.kafka.tools.consumer.ConsoleConsumer",
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                &t.requests,
                "--group",
                &group,
                "--consumer-property",
                "session.timeout.ms=6000",
                "--consumer-property",
                "heartbeat.interval.ms=1000",
            ])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("start the Java console consumer");
        let _java = KillOnDrop(java);
        wait_described(true).await;
        assert_eq!(last_join_led(&ours), Some(true), "kafka-actors led");

        // kafka-actors leaves and comes back: the Java member leads.
        let status = tokio::task::spawn_blocking(move || {
            let mut ours = ours;
            ours.terminate(Duration::from_secs(60))
        })
        .await
        .unwrap();
        assert!(status.success(), "{status}");
        // The Java member alone, with everything, before kafka-actors joins
        // again (else both may join one round and either could lead).
        let deadline = Instant::now() + STABLE_WITHIN;
        loop {
            let now = described(kafka.clone(), group.clone()).await;
            if now.len() == 1 && now[0].0.starts_with("console-consumer") && now[0].1 == all {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the Java member never took everything: {now:?}"
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let ours = tokio::task::spawn_blocking(move || start(&bootstrap, &path, &[]))
            .await
            .unwrap();
        wait_described(true).await;
        // The coordinator describes the group as soon as SyncGroup is
        // answered; the member logs its join just after.
        let deadline = Instant::now() + Duration::from_secs(10);
        let led = loop {
            match last_join_led(&ours) {
                Some(led) => break Some(led),
                None if Instant::now() > deadline => break None,
                None => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        assert_eq!(led, Some(false), "the Java consumer led");
        drop(ours);
    })
    .await;
}

/// Kills a process and its children (the Java process under
/// `bash scripts/kafka tool`) when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-P", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
