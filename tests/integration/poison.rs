//! Poison pills that must not stall a partition forever.

use std::time::{Duration, Instant};

use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use serde_json::json;

use crate::pipeline::{correlation_counts, read_all, topics};
use crate::support::{Service, bounded, http_get};

/// Produces `n` JSON requests `lz4-0..` to `topic`/`partition` in one
/// lz4-compressed batch, with librdkafka (confluent-kafka).
fn produce_lz4(bootstrap: &str, topic: &str, partition: i32, n: usize) {
    let python = crate::support::python();
    let script = format!(
        r#"
import json
from confluent_kafka import Producer
p = Producer({{"bootstrap.servers": "{bootstrap}", "compression.type": "lz4", "linger.ms": 50}})
for i in range({n}):
    p.produce("{topic}", partition={partition}, value=json.dumps({{"correlation_id": f"lz4-{{i}}", "payload": {{}}}}).encode())
left = p.flush(30)
assert left == 0, left
"#
    );
    let out = std::process::Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

async fn publish(producer: &Producer, topic: &str, partition: i32, ids: std::ops::Range<usize>) {
    let records = ids
        .map(|i| OutRecord {
            topic: topic.to_owned(),
            partition: Some(partition),
            value: Some(
                json!({"correlation_id": format!("p{partition}-{i}"), "payload": {"i": i}})
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

/// An lz4 batch (a codec this build lacks; rskafka fails the whole fetch):
/// the partition pauses at its offset with an error naming the topic,
/// partition, offset, codec and cargo feature, instead of restarting in a
/// loop; records before it and the other partition are handled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_in_a_missing_codec_pauses_its_partition_with_a_clear_error() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let kafka = testkit::kafka_config(broker.bootstrap());
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 2).await;
        let producer = Producer::connect(&kafka, kafka_actors::config::Compression::None)
            .await
            .unwrap();
        publish(&producer, &t.requests, 0, 0..3).await;
        publish(&producer, &t.requests, 1, 0..3).await;
        let (b, topic) = (broker.bootstrap().to_owned(), t.requests.clone());
        tokio::task::spawn_blocking(move || produce_lz4(&b, &topic, 0, 5))
            .await
            .unwrap();
        publish(&producer, &t.requests, 0, 3..5).await;
        publish(&producer, &t.requests, 1, 3..6).await;

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("service.toml");
        std::fs::write(
            &path,
            format!(
                "[consumer]\ngroup_id = \"{}\"\nfetch_max_wait_ms = 100\n\n\
                 [alerts]\ninterval_ms = 200\n\n\
                 [routes.main]\ntopic = \"{}\"\nreply_topic = \"{}\"\nhandler = \"echo\"\n",
                testkit::unique_name("poison"),
                t.requests,
                t.responses
            ),
        )
        .unwrap();
        let (b, p) = (broker.bootstrap().to_owned(), path.clone());
        let service = tokio::task::spawn_blocking(move || {
            let config = p.to_string_lossy().into_owned();
            let mut s = Service::start(&b, &[], &[("KAFKA_ACTORS_CONFIG", config.as_str())]);
            s.wait_for_status("/health/ready", 200, Duration::from_secs(60));
            s
        })
        .await
        .unwrap();

        // Partition 1 entirely, partition 0 up to the lz4 batch.
        let responses = read_all(&client, &t.responses, 2, 9, Duration::from_secs(60)).await;
        let counts = correlation_counts(&responses);
        let mut expected: Vec<String> = (0..3).map(|i| format!("p0-{i}")).collect();
        expected.extend((0..6).map(|i| format!("p1-{i}")));
        expected.sort();
        assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), expected);

        // The pause is reported once, with everything needed to act on it,
        // and the partition consumer does not restart in a loop.
        let deadline = Instant::now() + Duration::from_secs(30);
        let line = loop {
            if let Some(line) = service
                .log()
                .lines()
                .find(|l| l.contains("partition paused"))
                .map(ToOwned::to_owned)
            {
                break line;
            }
            assert!(
                Instant::now() < deadline,
                "no pause logged:\n{}",
                service.log()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        for part in [
            t.requests.as_str(),
            "partition=0",
            "offset=3",
            "lz4",
            "cargo feature `lz4`",
        ] {
            assert!(line.contains(part), "{part}: {line}");
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(
            service.log().matches("partition paused").count(),
            1,
            "paused once, not in a loop"
        );
        let http = service.http.clone();
        let (status, metrics) =
            tokio::task::spawn_blocking(move || http_get(&http, "/metrics").unwrap())
                .await
                .unwrap();
        assert_eq!(status, 200);
        let paused = metrics
            .lines()
            .find(|l| {
                l.starts_with("kafka_actors_consumer_paused_count") && l.contains("partition=\"0\"")
            })
            .unwrap_or_else(|| panic!("no paused gauge:\n{metrics}"));
        assert!(paused.ends_with(" 1"), "{paused}");
        assert!(
            !metrics.contains("kafka_actors_actor_restarts_total{actor=\"partition_consumer\"}"),
            "no partition consumer restarted:\n{metrics}"
        );
        // And an alert: the built-in partition_paused rule names it.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let http = service.http.clone();
            let (_, alerts) =
                tokio::task::spawn_blocking(move || http_get(&http, "/api/v1/alerts").unwrap())
                    .await
                    .unwrap();
            let alerts: serde_json::Value = serde_json::from_str(&alerts).unwrap();
            let paused = alerts["alerts"]
                .as_array()
                .unwrap()
                .iter()
                .find(|a| a["name"] == "partition_paused" && a["state"] == "firing");
            if let Some(alert) = paused {
                let message = alert["message"].as_str().unwrap();
                assert!(message.contains(&format!("{}/0", t.requests)), "{alert}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no partition_paused alert: {alerts}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        drop(service);
    })
    .await;
}

/// Records whose headers are malformed: a header with a null value (which
/// rskafka could not decode: the whole fetch failed, in a loop), and
/// `correlation_id`, `event_type` and `reply_to` headers that are not
/// UTF-8 or name no valid topic. None stalls the partition: the null-valued
/// header reads as empty and its record is answered; the others are
/// dead-lettered with their class, and the good records around them are
/// answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_with_malformed_headers_never_stall_the_partition() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 1).await;
        let (b, topic) = (broker.bootstrap().to_owned(), t.requests.clone());
        tokio::task::spawn_blocking(move || {
            let python = crate::support::python();
            let script = format!(
                r#"
import json
from confluent_kafka import Producer
p = Producer({{"bootstrap.servers": "{b}", "linger.ms": 0}})
cases = [
    [],
    [("trace", None)],
    [("correlation_id", b"\xff\xfe")],
    [("reply_to", b"\xff")],
    [("reply_to", b"not a topic!")],
    [("event_type", b"\xc3")],
    [],
]
for i, headers in enumerate(cases):
    p.produce("{topic}", partition=0, value=json.dumps({{"correlation_id": f"h{{i}}", "payload": {{"i": i}}}}).encode(), headers=headers)
    p.flush(30)
assert p.flush(30) == 0
"#
            );
            let out = std::process::Command::new(python)
                .args(["-c", &script])
                .output()
                .expect("run python");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        })
        .await
        .unwrap();

        let dir = tempfile::tempdir().unwrap();
        let path = crate::pipeline::write_config(&dir, &t, "handler = \"echo\"");
        let (b, p) = (broker.bootstrap().to_owned(), path.clone());
        let service = tokio::task::spawn_blocking(move || crate::pipeline::start(&b, &p))
            .await
            .unwrap();

        let responses = read_all(&client, &t.responses, 1, 3, Duration::from_secs(60)).await;
        let counts = correlation_counts(&responses);
        assert_eq!(
            counts.keys().cloned().collect::<Vec<_>>(),
            ["h0", "h1", "h6"],
            "{}",
            service.log()
        );
        let dlq = format!("{}.dlq", t.requests);
        let letters =
            crate::retries::read_records(&client, &dlq, 1, 4, Duration::from_secs(30)).await;
        let mut classes = std::collections::BTreeMap::new();
        for (_, r) in &letters {
            let v: serde_json::Value =
                serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
            classes.insert(
                v["payload"]["i"].as_u64().unwrap(),
                (
                    crate::retries::header(r, "dlq.error.kind"),
                    crate::retries::header(r, "dlq.error.message"),
                ),
            );
        }
        let kinds: Vec<(u64, &str)> = classes.iter().map(|(i, (k, _))| (*i, k.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (2, "deserialization"),
                (3, "deserialization"),
                (4, "validation"),
                (5, "deserialization")
            ],
            "{classes:?}"
        );
        for (i, header) in [(2, "correlation_id"), (3, "reply_to"), (5, "event_type")] {
            assert!(classes[&i].1.contains(header), "{i}: {:?}", classes[&i]);
        }
        assert!(classes[&4].1.contains("not a topic!"), "{:?}", classes[&4]);
        let http = service.http.clone();
        let (_, metrics) = tokio::task::spawn_blocking(move || http_get(&http, "/metrics").unwrap())
            .await
            .unwrap();
        assert!(
            !metrics.contains("kafka_actors_actor_restarts_total{actor=\"partition_consumer\"}"),
            "no partition consumer restarted:\n{metrics}"
        );
        drop(service);
    })
    .await;
}
