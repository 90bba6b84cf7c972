//! The dead-letter lifecycle through the real binary: records a library
//! handler refuses are dead-lettered with the versioned `dlq.*` headers;
//! `dlq list` pages through them; `dlq replay` republishes the selected ones
//! (a dry run publishes nothing) and, once the handler recovered, they are
//! answered; Spring Kafka dead letters replay too; `dlq purge` deletes.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use kafka_actors::config::RouteConfig;
use kafka_actors::handler::{HandlerError, HandlerRegistry, typed};
use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use rskafka::client::Client;
use rskafka::client::partition::{OffsetAt, UnknownTopicHandling};
use rskafka::record::RecordAndOffset;
use serde_json::{Value, json};

use crate::pipeline::{correlation_counts, read_all, topics};
use crate::support::{InProcess, bounded, library_config, run_cli};

/// Runs the binary against `bootstrap` off the test's runtime threads.
async fn cli(bootstrap: &str, args: &[&str]) -> (i32, String, String) {
    let bootstrap = bootstrap.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (status, out, err) = run_cli(&args, &[("KAFKA_BOOTSTRAP_SERVERS", &bootstrap)]);
        (status.code().unwrap_or(-1), out, err)
    })
    .await
    .unwrap()
}

/// Every record of `partition` of `topic` from its start, once `want` are
/// there.
async fn read_partition(
    client: &Client,
    topic: &str,
    partition: i32,
    want: usize,
) -> Vec<RecordAndOffset> {
    let pc = client
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let start = pc.get_offset(OffsetAt::Earliest).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut out: Vec<RecordAndOffset> = Vec::new();
    loop {
        let next = out.last().map_or(start, |r| r.offset + 1);
        let (records, _) = pc.fetch_records(next, 1..1_000_000, 100).await.unwrap();
        out.extend(records.into_iter().filter(|r| r.offset >= next));
        if out.len() >= want {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {} of {want} records",
            out.len()
        );
    }
}

/// The high watermark, from a Fetch response (Tansu's ListOffsets(latest)
/// is the last batch's base offset + 1, FINDINGS.md).
async fn end_offset(client: &Client, topic: &str, partition: i32) -> i64 {
    let pc = client
        .partition_client(topic, partition, UnknownTopicHandling::Retry)
        .await
        .unwrap();
    let start = pc.get_offset(OffsetAt::Earliest).await.unwrap();
    pc.fetch_records(start, 1..1_000_000, 0).await.unwrap().1
}

fn text(r: &RecordAndOffset, name: &str) -> String {
    String::from_utf8(
        r.record
            .headers
            .get(name)
            .unwrap_or_else(|| panic!("no header {name} at offset {}", r.offset))
            .clone(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_listed_and_replayed_through_the_recovered_handler() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let bootstrap = broker.bootstrap().to_owned();
        let client = testkit::client(&bootstrap, Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 2).await;
        let dlq = format!("{}.dlq", t.requests);

        // A handler whose backend is down until the flag flips: until then
        // it refuses every request (a permanent failure: no retries).
        let healthy = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&healthy);
        let mut registry = HandlerRegistry::with_builtins();
        registry.register(
            "gate",
            typed(move |_ctx, input: Value| {
                let up = flag.load(Ordering::SeqCst);
                async move {
                    if up {
                        Ok(Some(json!({"ok": input})))
                    } else {
                        Err(HandlerError::Permanent("backend refused it".to_owned()))
                    }
                }
            }),
        );
        let mut config = library_config(
            &bootstrap,
            RouteConfig {
                topic: t.requests.clone(),
                handler: "gate".to_owned(),
                reply_topic: Some(t.responses.clone()),
                ..RouteConfig::default()
            },
        );
        config.consumer.group_instance_id = Some("dlq-test-instance".to_owned());
        let service = InProcess::start(config, registry).await;

        // 24 requests the handler refuses, then one that is not JSON.
        const N: usize = 24;
        let producer = Producer::connect(
            &testkit::kafka_config(&bootstrap),
            kafka_actors::config::Compression::None,
        )
        .await
        .unwrap();
        let mut records: Vec<OutRecord> = (0..N)
            .map(|i| OutRecord {
                topic: t.requests.clone(),
                key: Some(format!("k{}", i % 5).into_bytes()),
                value: Some(
                    json!({"correlation_id": format!("c{i}"), "payload": {"i": i}})
                        .to_string()
                        .into_bytes(),
                ),
                headers: BTreeMap::from([("trace".to_owned(), format!("t{i}").into_bytes())]),
                ..OutRecord::default()
            })
            .collect();
        records.push(OutRecord {
            topic: t.requests.clone(),
            value: Some(b"not json".to_vec()),
            ..OutRecord::default()
        });
        let mut written = Vec::new();
        for r in producer.send(records).await {
            written.push(r.unwrap());
        }

        // Every one is dead-lettered with the version-1 headers.
        let dead = read_partition(&client, &dlq, 0, N + 1).await;
        assert_eq!(dead.len(), N + 1);
        // The requests as written, by partition and offset.
        let mut requests: BTreeMap<(i32, i64), RecordAndOffset> = BTreeMap::new();
        for p in 0..2 {
            let count = written.iter().filter(|w| w.partition == p).count();
            for r in read_partition(&client, &t.requests, p, count).await {
                requests.insert((p, r.offset), r);
            }
        }
        let mut classes: BTreeMap<String, usize> = BTreeMap::new();
        for r in &dead {
            assert_eq!(text(r, "dlq.version"), "1");
            assert_eq!(text(r, "dlq.original.topic"), t.requests);
            assert_eq!(text(r, "dlq.route"), "main");
            assert_eq!(text(r, "dlq.handler"), "gate");
            assert_eq!(text(r, "dlq.instance.id"), "dlq-test-instance");
            let first = chrono::DateTime::parse_from_rfc3339(&text(r, "dlq.failure.first"))
                .expect("first failure time is RFC 3339");
            let last = chrono::DateTime::parse_from_rfc3339(&text(r, "dlq.failure.last"))
                .expect("last failure time is RFC 3339");
            assert!(first <= last, "{first} after {last}");
            // The original timestamp is the request's own.
            let partition: i32 = text(r, "dlq.original.partition").parse().unwrap();
            let offset: i64 = text(r, "dlq.original.offset").parse().unwrap();
            let original = &requests[&(partition, offset)];
            assert_eq!(
                text(r, "dlq.original.timestamp"),
                original.record.timestamp.timestamp_millis().to_string()
            );
            assert_eq!(r.record.value, original.record.value);
            *classes.entry(text(r, "dlq.error.kind")).or_default() += 1;
        }
        assert_eq!(
            classes,
            BTreeMap::from([
                ("deserialization".to_owned(), 1),
                ("validation".to_owned(), N)
            ])
        );

        // `dlq list`: a page of 10, the hint for the next, class filter.
        let (code, out, err) = cli(
            &bootstrap,
            &["dlq", "list", &dlq, "--limit", "10", "--json"],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        let listed: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(listed.len(), 10);
        for (i, v) in listed.iter().enumerate() {
            assert_eq!(v["offset"], json!(i));
            assert_eq!(v["letter"]["format"], "kafka_actors");
            assert_eq!(v["letter"]["original_topic"], json!(t.requests));
            assert_eq!(v["headers"]["dlq.route"], "main");
        }
        let (code, out, _) = cli(&bootstrap, &["dlq", "list", &dlq, "--limit", "10"]).await;
        assert_eq!(code, 0);
        assert!(
            out.trim_end()
                .ends_with("next page: --partition 0 --from-offset 10"),
            "{out}"
        );
        assert!(out.contains("error: backend refused it"), "{out}");
        let (code, out, _) = cli(
            &bootstrap,
            &["dlq", "list", &dlq, "--class", "deserialization", "--json"],
        )
        .await;
        assert_eq!(code, 0);
        let listed: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(listed.len(), 1, "{out}");
        assert_eq!(listed[0]["value"], "not json");

        // A dry run names every record and publishes nothing.
        let ends = [
            end_offset(&client, &t.requests, 0).await,
            end_offset(&client, &t.requests, 1).await,
        ];
        let (code, out, err) = cli(
            &bootstrap,
            &["dlq", "replay", &dlq, "--class", "validation", "--dry-run"],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!(
                "would replay {N} record(s) from {dlq}: {N} to {}",
                t.requests
            )),
            "{out}"
        );
        assert_eq!(out.lines().filter(|l| l.contains(" -> ")).count(), N);
        // The dry run has exited: anything it had published would be there.
        assert_eq!(end_offset(&client, &t.requests, 0).await, ends[0]);
        assert_eq!(end_offset(&client, &t.requests, 1).await, ends[1]);

        // The backend is back: the replayed records are answered, once each,
        // and nothing new is dead-lettered.
        healthy.store(true, Ordering::SeqCst);
        let (code, out, err) = cli(
            &bootstrap,
            &[
                "dlq",
                "replay",
                &dlq,
                "--class",
                "validation",
                "--rate",
                "200",
            ],
        )
        .await;
        assert_eq!(code, 0, "{err}");
        assert!(
            out.contains(&format!(
                "replayed {N} record(s) from {dlq}: {N} to {}",
                t.requests
            )),
            "{out}"
        );
        let responses = read_all(&client, &t.responses, 2, N, Duration::from_secs(60)).await;
        let counts = correlation_counts(&responses);
        assert_eq!(counts.len(), N, "{counts:?}");
        assert!(counts.values().all(|n| *n == 1), "{counts:?}");
        for (_, v) in &responses {
            let i = v["payload"]["ok"]["i"].as_u64().unwrap();
            assert_eq!(v["correlation_id"], json!(format!("c{i}")));
        }
        // The replayed requests carry the replay headers and their own
        // headers, not the failure headers; keys are kept.
        let mut replayed = 0;
        for (p, end) in ends.iter().enumerate() {
            let p = p as i32;
            let now = end_offset(&client, &t.requests, p).await;
            let records = read_partition(&client, &t.requests, p, now as usize).await;
            for r in records.iter().filter(|r| r.offset >= *end) {
                replayed += 1;
                let source = text(r, "dlq.replay.source");
                assert!(source.starts_with(&format!("{dlq}/0@")), "{source}");
                assert_eq!(text(r, "dlq.replay.count"), "1");
                assert!(text(r, "trace").starts_with('t'));
                assert!(!r.record.headers.contains_key("dlq.error.kind"));
                assert!(r.record.key.is_some());
            }
        }
        assert_eq!(replayed, N);
        assert_eq!(end_offset(&client, &dlq, 0).await, (N + 1) as i64);

        // A Spring Kafka dead letter (binary partition and offset headers)
        // replays to its original topic too; a record with no origin is
        // skipped and named.
        let spring_offset = (N + 1).to_string();
        for r in producer
            .send(vec![
                OutRecord {
                    topic: dlq.clone(),
                    key: Some(b"spring".to_vec()),
                    value: Some(
                        json!({"correlation_id": "spring-1", "payload": {"i": 99}})
                            .to_string()
                            .into_bytes(),
                    ),
                    headers: BTreeMap::from([
                        (
                            "kafka_dlt-original-topic".to_owned(),
                            t.requests.clone().into_bytes(),
                        ),
                        (
                            "kafka_dlt-original-partition".to_owned(),
                            1i32.to_be_bytes().to_vec(),
                        ),
                        (
                            "kafka_dlt-original-offset".to_owned(),
                            77i64.to_be_bytes().to_vec(),
                        ),
                        (
                            "kafka_dlt-exception-fqcn".to_owned(),
                            b"java.lang.IllegalStateException".to_vec(),
                        ),
                    ]),
                    ..OutRecord::default()
                },
                OutRecord {
                    topic: dlq.clone(),
                    value: Some(b"{}".to_vec()),
                    ..OutRecord::default()
                },
            ])
            .await
        {
            r.unwrap();
        }
        let (code, out, _) = cli(
            &bootstrap,
            &[
                "dlq",
                "list",
                &dlq,
                "--from-offset",
                &spring_offset,
                "--json",
            ],
        )
        .await;
        assert_eq!(code, 0);
        let spring: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
        assert_eq!(spring["letter"]["format"], "spring");
        assert_eq!(spring["letter"]["original_partition"], 1);
        assert_eq!(spring["letter"]["original_offset"], 77);
        assert_eq!(spring["headers"]["kafka_dlt-original-offset"], "77");

        let (code, out, err) = cli(
            &bootstrap,
            &["dlq", "replay", &dlq, "--from-offset", &spring_offset],
        )
        .await;
        assert_eq!(code, 1, "{out}{err}");
        assert!(
            out.contains(&format!(
                "replayed 1 record(s) from {dlq}: 1 to {}",
                t.requests
            )),
            "{out}"
        );
        assert!(
            err.contains("skipped 1 record(s) with no original topic")
                && err.contains(&format!("{dlq}/0@{}", N + 2)),
            "{err}"
        );
        let responses = read_all(&client, &t.responses, 2, N + 1, Duration::from_secs(60)).await;
        assert!(
            correlation_counts(&responses).get("spring-1") == Some(&1),
            "no answer to the replayed Spring dead letter"
        );

        service.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Apache Kafka: Tansu's memory engine panics on DeleteRecords (FINDINGS.md); runs in .ci/run against Kafka"]
async fn purge_deletes_dead_letters_only_with_yes() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let bootstrap = broker.bootstrap().to_owned();
        let client = testkit::client(&bootstrap, Duration::from_secs(20))
            .await
            .unwrap();
        let dlq = testkit::unique_name("purge.dlq");
        testkit::create_topics(&client, &[dlq.as_str()], 2, 1)
            .await
            .unwrap();
        let producer = Producer::connect(
            &testkit::kafka_config(&bootstrap),
            kafka_actors::config::Compression::None,
        )
        .await
        .unwrap();
        let records = (0..5)
            .flat_map(|i| {
                [0, 1].map(|p| OutRecord {
                    topic: dlq.clone(),
                    partition: Some(p),
                    value: Some(format!("{i}").into_bytes()),
                    ..OutRecord::default()
                })
            })
            .collect();
        for r in producer.send(records).await {
            r.unwrap();
        }
        let earliest = |p: i32| {
            let client = &client;
            let dlq = dlq.clone();
            async move {
                client
                    .partition_client(dlq.as_str(), p, UnknownTopicHandling::Retry)
                    .await
                    .unwrap()
                    .get_offset(OffsetAt::Earliest)
                    .await
                    .unwrap()
            }
        };

        // Without --yes: the plan, the usage exit code, nothing deleted.
        let (code, out, err) = cli(
            &bootstrap,
            &["dlq", "purge", &dlq, "-p", "0", "--before", "3"],
        )
        .await;
        assert_eq!(code, 2, "{out}{err}");
        assert!(
            out.contains(&format!("{dlq}/0: 3 record(s), offsets 0..2")),
            "{out}"
        );
        assert!(err.contains("pass --yes"), "{err}");
        assert_eq!(earliest(0).await, 0);

        let (code, out, err) = cli(
            &bootstrap,
            &["dlq", "purge", &dlq, "-p", "0", "--before", "3", "--yes"],
        )
        .await;
        assert_eq!(code, 0, "{out}{err}");
        assert_eq!(earliest(0).await, 3);
        assert_eq!(earliest(1).await, 0, "partition 1 was not selected");
        // `dlq list` starts at the new beginning.
        let (_, out, _) = cli(&bootstrap, &["dlq", "list", &dlq, "-p", "0", "--json"]).await;
        let offsets: Vec<i64> = out
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["offset"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        assert_eq!(offsets, vec![3, 4]);

        let (code, _, err) = cli(&bootstrap, &["dlq", "purge", &dlq, "--all", "--yes"]).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(earliest(0).await, 5);
        assert_eq!(earliest(1).await, 5);
        let (code, out, _) = cli(&bootstrap, &["dlq", "purge", &dlq, "--all", "--yes"]).await;
        assert_eq!(code, 0);
        assert!(out.contains("nothing to purge"), "{out}");

        // A partition the topic lacks is named.
        let (code, _, err) = cli(&bootstrap, &["dlq", "list", &dlq, "-p", "7"]).await;
        assert_eq!(code, 2);
        assert!(
            err.contains(&format!("{dlq} has no partition 7 (it has 2)")),
            "{err}"
        );
    })
    .await;
}
