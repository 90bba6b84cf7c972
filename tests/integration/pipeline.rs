//! The pipeline end to end, through the real binary: requests in, replies
//! out, failures dead-lettered, offsets committed only after the outputs
//! were acknowledged, restarts losing nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use rskafka::client::Client;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use serde_json::{Value, json};

use crate::support::{Service, bounded};

const READY_WITHIN: Duration = Duration::from_secs(30);

pub(crate) struct Topics {
    pub(crate) requests: String,
    pub(crate) responses: String,
}

pub(crate) async fn topics(client: &Client, partitions: i32) -> Topics {
    let requests = testkit::unique_name("req");
    let responses = testkit::unique_name("resp");
    let dlq = format!("{requests}.dlq");
    testkit::create_topics(
        client,
        &[requests.as_str(), responses.as_str()],
        partitions,
        1,
    )
    .await
    .unwrap();
    testkit::create_topics(client, &[dlq.as_str()], 1, 1)
        .await
        .unwrap();
    Topics {
        requests,
        responses,
    }
}

pub(crate) fn write_config(dir: &tempfile::TempDir, t: &Topics, route: &str) -> PathBuf {
    let path = dir.path().join("service.toml");
    let group = testkit::unique_name("group");
    std::fs::write(
        &path,
        format!(
            r#"
[consumer]
group_id = "{group}"
fetch_max_wait_ms = 100

[routes.main]
topic = "{requests}"
reply_topic = "{responses}"
{route}
"#,
            requests = t.requests,
            responses = t.responses,
        ),
    )
    .unwrap();
    path
}

pub(crate) fn start(bootstrap: &str, config: &std::path::Path) -> Service {
    start_with(bootstrap, config, &[])
}

pub(crate) fn start_with(
    bootstrap: &str,
    config: &std::path::Path,
    env: &[(&str, &str)],
) -> Service {
    let config = config.to_string_lossy().into_owned();
    let mut env = env.to_vec();
    env.push(("KAFKA_ACTORS_CONFIG", config.as_str()));
    let mut service = Service::start(bootstrap, &[], &env);
    service.wait_for_status("/health/ready", 200, READY_WITHIN);
    service
}

async fn publish(producer: &Producer, topic: &str, from: usize, to: usize) {
    let records = (from..to)
        .map(|i| OutRecord {
            topic: topic.to_owned(),
            key: Some(format!("key-{}", i % 6).into_bytes()),
            value: Some(
                json!({"correlation_id": format!("c{i}"), "payload": {"seq": i}})
                    .to_string()
                    .into_bytes(),
            ),
            ..OutRecord::default()
        })
        .collect();
    for r in producer.send(records).await {
        r.unwrap();
    }
}

/// Every record of `topic` (all partitions) from the start, until `want`
/// records were read or `within` passed.
pub(crate) async fn read_all(
    client: &Client,
    topic: &str,
    partitions: i32,
    want: usize,
    within: Duration,
) -> Vec<(i32, Value)> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut next = BTreeMap::new();
    for p in 0..partitions {
        let pc = client
            .partition_client(topic, p, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let start = pc.get_offset(OffsetAt::Earliest).await.unwrap();
        next.insert(p, (pc, start));
    }
    while out.len() < want && Instant::now() < deadline {
        for (p, (pc, offset)) in &mut next {
            let (records, _) = pc.fetch_records(*offset, 1..1_000_000, 50).await.unwrap();
            let from = *offset;
            for r in records.into_iter().filter(|r| r.offset >= from) {
                *offset = r.offset + 1;
                let value = r
                    .record
                    .value
                    .as_deref()
                    .and_then(|v| serde_json::from_slice(v).ok())
                    .unwrap_or(Value::Null);
                out.push((*p, value));
            }
        }
    }
    out
}

pub(crate) fn correlation_counts(responses: &[(i32, Value)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, v) in responses {
        let id = v["correlation_id"].as_str().unwrap_or_default().to_owned();
        *counts.entry(id).or_insert(0) += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_gets_exactly_one_reply_in_key_order() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let config = testkit::kafka_config(broker.bootstrap());
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 3).await;
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, &t, "handler = \"echo\"");
        let producer = Producer::connect(&config, kafka_actors::config::Compression::None)
            .await
            .unwrap();
        const N: usize = 60;
        publish(&producer, &t.requests, 0, N).await;

        let bootstrap = broker.bootstrap().to_owned();
        let mut service = tokio::task::spawn_blocking(move || start(&bootstrap, &path))
            .await
            .unwrap();
        let responses = read_all(&client, &t.responses, 3, N, Duration::from_secs(60)).await;
        let counts = correlation_counts(&responses);
        assert_eq!(counts.len(), N, "distinct replies: {counts:?}");
        assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");

        // Replies keep the request key, so per key they come in request order.
        let mut last_seq: BTreeMap<i32, BTreeMap<u64, u64>> = BTreeMap::new();
        for (partition, v) in &responses {
            let seq = v["payload"]["seq"].as_u64().unwrap();
            let key = seq % 6;
            let slot = last_seq.entry(*partition).or_default();
            if let Some(prev) = slot.insert(key, seq) {
                assert!(prev < seq, "key {key}: {prev} then {seq}");
            }
        }
        let exit = tokio::task::spawn_blocking(move || service.terminate(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(exit.success(), "exit {exit}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_dead_lettered_with_their_origin_and_the_rest_flows() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let config = testkit::kafka_config(broker.bootstrap());
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 2).await;
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            &dir,
            &t,
            // A processing failure would be retried; its code dead-letters
            // it at once.
            "handler = \"jq\"\n\
             program = 'if .fail then error({class: \"processing\", code: \"REFUSED\", message: \"refused\"}) else {seen: .n} end'\n\
             [routes.main.on_failure.codes]\nREFUSED = \"dlq\"",
        );
        let producer = Producer::connect(&config, kafka_actors::config::Compression::None)
            .await
            .unwrap();
        let record = |key: &str, value: &str| OutRecord {
            topic: t.requests.clone(),
            key: Some(key.as_bytes().to_vec()),
            value: Some(value.as_bytes().to_vec()),
            ..OutRecord::default()
        };
        let sent = producer
            .send(vec![
                record("a", r#"{"correlation_id": "ok1", "payload": {"n": 1}}"#),
                record(
                    "a",
                    r#"{"correlation_id": "bad", "payload": {"fail": true}}"#,
                ),
                record("b", "this is not json"),
                record("b", r#"{"correlation_id": "ok2", "payload": {"n": 2}}"#),
            ])
            .await;
        let sent: Vec<_> = sent.into_iter().map(Result::unwrap).collect();

        let (bootstrap, config_path) = (broker.bootstrap().to_owned(), path.clone());
        let mut service = tokio::task::spawn_blocking(move || start(&bootstrap, &config_path))
            .await
            .unwrap();
        let responses = read_all(&client, &t.responses, 2, 2, Duration::from_secs(60)).await;
        let ids: BTreeSet<_> = correlation_counts(&responses).into_keys().collect();
        assert_eq!(ids, BTreeSet::from(["ok1".to_owned(), "ok2".to_owned()]));

        let dlq = format!("{}.dlq", t.requests);
        let pc = client
            .partition_client(dlq.as_str(), 0, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut dead = Vec::new();
        while dead.len() < 2 && Instant::now() < deadline {
            let (records, _) = pc
                .fetch_records(dead.len() as i64, 1..1_000_000, 50)
                .await
                .unwrap();
            let have = dead.len() as i64;
            dead.extend(records.into_iter().filter(|r| r.offset >= have));
        }
        assert_eq!(dead.len(), 2, "dead letters");
        let header = |r: &rskafka::record::RecordAndOffset, n: &str| {
            String::from_utf8(r.record.headers[n].clone()).unwrap()
        };
        let mut kinds: Vec<(String, String, String)> = dead
            .iter()
            .map(|r| {
                (
                    header(r, "dlq.error.kind"),
                    header(r, "dlq.original.offset"),
                    header(r, "dlq.original.topic"),
                )
            })
            .collect();
        kinds.sort();
        assert_eq!(kinds[0].0, "deserialization");
        assert_eq!(kinds[0].1, sent[2].offset.to_string());
        assert_eq!(kinds[1].0, "processing");
        assert_eq!(kinds[1].1, sent[1].offset.to_string());
        assert!(kinds.iter().all(|k| k.2 == t.requests));
        let refused = dead
            .iter()
            .find(|r| header(r, "dlq.error.kind") == "processing")
            .unwrap();
        assert!(header(refused, "dlq.error.message").contains("refused"));
        assert_eq!(header(refused, "dlq.error.code"), "REFUSED");
        assert_eq!(header(refused, "dlq.attempts"), "1", "not retried");
        assert_eq!(
            refused.record.value.as_deref(),
            Some(&br#"{"correlation_id": "bad", "payload": {"fail": true}}"#[..])
        );

        // `dlq stats` (the route's dead-letter topic by default) counts
        // what was written, by class and code.
        let (b, p) = (broker.bootstrap().to_owned(), path.clone());
        let (status, out, err) = tokio::task::spawn_blocking(move || {
            let config = p.to_string_lossy().into_owned();
            crate::support::run_cli(
                &["--config", &config, "dlq", "stats", "--json"],
                &[("KAFKA_BOOTSTRAP_SERVERS", b.as_str())],
            )
        })
        .await
        .unwrap();
        assert!(status.success(), "{out}\n{err}");
        let stats: Value = serde_json::from_str(&out).unwrap();
        let by_class: BTreeMap<(String, String), (u64, String, String)> = stats
            .as_array()
            .unwrap()
            .iter()
            .map(|g| {
                (
                    (
                        g["class"].as_str().unwrap().to_owned(),
                        g["code"].as_str().unwrap().to_owned(),
                    ),
                    (
                        g["count"].as_u64().unwrap(),
                        g["dlq_topic"].as_str().unwrap().to_owned(),
                        g["original_topic"].as_str().unwrap().to_owned(),
                    ),
                )
            })
            .collect();
        assert_eq!(
            by_class,
            BTreeMap::from([
                (
                    ("deserialization".to_owned(), "-".to_owned()),
                    (1, dlq.clone(), t.requests.clone())
                ),
                (
                    ("processing".to_owned(), "REFUSED".to_owned()),
                    (1, dlq.clone(), t.requests.clone())
                ),
            ]),
            "{out}"
        );

        let exit = tokio::task::spawn_blocking(move || service.terminate(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(exit.success(), "exit {exit}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_handles_no_record_twice_and_a_crash_loses_none() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let config = testkit::kafka_config(broker.bootstrap());
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 3).await;
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, &t, "handler = \"echo\"");
        let producer = Producer::connect(&config, kafka_actors::config::Compression::None)
            .await
            .unwrap();

        // 1. Graceful: SIGTERM while records flow, restart, more records.
        publish(&producer, &t.requests, 0, 150).await;
        let (b, p) = (broker.bootstrap().to_owned(), path.clone());
        let mut service = tokio::task::spawn_blocking(move || start(&b, &p))
            .await
            .unwrap();
        let seen = read_all(&client, &t.responses, 3, 20, Duration::from_secs(60)).await;
        assert!(seen.len() >= 20, "service did not reply");
        let exit = tokio::task::spawn_blocking(move || service.terminate(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(exit.success(), "exit {exit}");
        publish(&producer, &t.requests, 150, 200).await;
        let (b, p) = (broker.bootstrap().to_owned(), path.clone());
        let mut service = tokio::task::spawn_blocking(move || start(&b, &p))
            .await
            .unwrap();
        let responses = read_all(&client, &t.responses, 3, 200, Duration::from_secs(60)).await;
        let counts = correlation_counts(&responses);
        assert_eq!(counts.len(), 200, "every request answered");
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            twice.is_empty(),
            "handled twice after a graceful stop: {twice:?}"
        );

        // 2. Crash: kill -9 while records flow, restart: nothing lost.
        publish(&producer, &t.requests, 200, 400).await;
        tokio::task::spawn_blocking(move || service.kill())
            .await
            .unwrap();
        let (b, p) = (broker.bootstrap().to_owned(), path.clone());
        let mut service = tokio::task::spawn_blocking(move || start(&b, &p))
            .await
            .unwrap();
        let responses = read_all(&client, &t.responses, 3, 400, Duration::from_secs(60)).await;
        let counts = correlation_counts(&responses);
        let missing: Vec<_> = (0..400)
            .filter(|i| !counts.contains_key(&format!("c{i}")))
            .collect();
        assert!(missing.is_empty(), "lost after a crash: {missing:?}");
        let duplicates: usize = counts.values().map(|n| n - 1).sum();
        eprintln!("crash test: {duplicates} duplicate replies after kill -9 (at-least-once)");
        let exit = tokio::task::spawn_blocking(move || service.terminate(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(exit.success(), "exit {exit}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_command_waits_for_its_reply_or_times_out() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 2).await;
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(
            &dir,
            &t,
            "handler = \"jq\"\nprogram = '{doubled: (.n * 2)}'",
        );
        let payload = dir.path().join("payload.json");
        std::fs::write(&payload, r#"{"n": 21}"#).unwrap();
        let bootstrap = broker.bootstrap().to_owned();
        let (requests, responses) = (t.requests.clone(), t.responses.clone());

        let (answered, unanswered) = tokio::task::spawn_blocking(move || {
            let env = [("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str())];
            let file = payload.to_string_lossy().into_owned();
            // Nobody serves the requests yet: the request times out.
            let unanswered = crate::support::run_cli(
                &[
                    "request",
                    "-t",
                    &requests,
                    "-r",
                    &responses,
                    "--file",
                    &file,
                    "--timeout",
                    "1s",
                ],
                &env,
            );
            let mut service = start(&bootstrap, &path);
            let answered = crate::support::run_cli(
                &[
                    "request",
                    "-t",
                    &requests,
                    "-r",
                    &responses,
                    "--file",
                    &file,
                    "--timeout",
                    "30s",
                ],
                &env,
            );
            let exit = service.terminate(Duration::from_secs(30));
            assert!(exit.success(), "exit {exit}");
            (answered, unanswered)
        })
        .await
        .unwrap();

        let (status, _, err) = unanswered;
        assert_eq!(status.code(), Some(5), "{err}");
        assert!(err.contains("no reply with correlation id"), "{err}");

        let (status, out, err) = answered;
        assert!(status.success(), "{out}\n{err}");
        let reply: Value = serde_json::from_str(out.trim()).unwrap();
        let body: Value = serde_json::from_str(reply["value"].as_str().unwrap()).unwrap();
        assert_eq!(body["payload"], json!({"doubled": 42}), "{out}");
        assert_eq!(reply["headers"]["correlation_id"], body["correlation_id"]);
    })
    .await;
}

/// A fetch returns whole record batches; with `max_poll_records` smaller
/// than a batch, the rest is handed out without fetching again (fetching
/// from the middle of a batch re-reads it, and Tansu answers nothing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_larger_than_max_poll_records_are_handled_in_pieces() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let config = testkit::kafka_config(broker.bootstrap());
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 2).await;
        let dir = tempfile::tempdir().unwrap();
        let path = write_config(&dir, &t, "handler = \"echo\"");
        let producer = Producer::connect(&config, kafka_actors::config::Compression::None)
            .await
            .unwrap();
        // One send: one record batch per partition, about 50 records each.
        publish(&producer, &t.requests, 0, 100).await;
        let bootstrap = broker.bootstrap().to_owned();
        let mut service = tokio::task::spawn_blocking(move || {
            start_with(
                &bootstrap,
                &path,
                &[("KAFKA_ACTORS_CONSUMER__MAX_POLL_RECORDS", "7")],
            )
        })
        .await
        .unwrap();
        let responses = read_all(&client, &t.responses, 2, 100, Duration::from_secs(60)).await;
        let counts = correlation_counts(&responses);
        assert_eq!(counts.len(), 100, "distinct replies");
        assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
        let exit = tokio::task::spawn_blocking(move || service.terminate(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(exit.success(), "exit {exit}");
    })
    .await;
}
