//! The seed documents' services, each run from its file under `config/`.

use std::time::{Duration, Instant};

use kafka_actors::kafka::admin::Admin;
use kafka_actors::kafka::cluster;
use kafka_actors::producer::{OutRecord, Producer, partition_for_key};
use kafka_actors::testkit::{self, TestBroker};
use rskafka::client::partition::UnknownTopicHandling;
use serde_json::json;

use crate::support::{Service, bounded, http_get};

const READY_WITHIN: Duration = Duration::from_secs(60);

/// Starts `kafka-actors run` with `env` against `bootstrap` and waits until
/// it is ready.
async fn start_ready(bootstrap: &str, env: Vec<(&'static str, String)>) -> Service {
    let bootstrap = bootstrap.to_owned();
    tokio::task::spawn_blocking(move || {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut service = Service::start(&bootstrap, &[], &env);
        service.wait_for_status("/health/ready", 200, READY_WITHIN);
        service
    })
    .await
    .unwrap()
}

/// Every topic exists with its partition count.
async fn assert_partitions(bootstrap: &str, expected: &[(&str, usize)]) {
    let listed = cluster::list_topics(&testkit::kafka_config(bootstrap))
        .await
        .unwrap();
    for (topic, partitions) in expected {
        let found = listed.iter().find(|t| t.name == *topic);
        assert_eq!(
            found.map(|t| t.partitions),
            Some(*partitions),
            "{topic}: {listed:?}"
        );
    }
}

/// Seed 003's service from `config/gigaoffice.toml`, with its topic names
/// and consumer group overridden through seed 003's own variables (unique
/// per run): topics created as declared, requests answered by correlation
/// id, bad requests dead-lettered, topic health reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gigaoffice_service_creates_its_topics_answers_and_dead_letters() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let requests = testkit::unique_name("gigaoffice-requests");
        let responses = testkit::unique_name("gigaoffice-responses");
        let dlq = testkit::unique_name("gigaoffice-dlq");
        let group = testkit::unique_name("gigaoffice-consumers");
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/gigaoffice.toml");
        let env: Vec<(&str, String)> = vec![
            ("KAFKA_ACTORS_CONFIG", config.to_owned()),
            ("KAFKA_TOPIC_REQUESTS", requests.clone()),
            ("KAFKA_TOPIC_RESPONSES", responses.clone()),
            ("KAFKA_TOPIC_DLQ", dlq.clone()),
            ("KAFKA_CONSUMER_GROUP", group),
            ("KAFKA_ACTORS_CONSUMER__FETCH_MAX_WAIT_MS", "100".to_owned()),
        ];
        let mut service = start_ready(broker.bootstrap(), env).await;

        // The topics, as seed 003 declares them.
        assert_partitions(
            broker.bootstrap(),
            &[(&requests, 3), (&responses, 3), (&dlq, 1)],
        )
        .await;

        // A request is answered with its correlation id (seed 004's flow).
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let id = testkit::unique_name("corr");
        let started = Instant::now();
        testkit::publish_test_event(
            &client,
            &requests,
            1,
            json!({"event_type": "document.generate", "payload": {"document": "q3-report"}}),
            &id,
        )
        .await
        .unwrap();
        let response = testkit::consume_response(&client, &responses, 3, &id, READY_WITHIN)
            .await
            .unwrap()
            .expect("a response with the request's correlation id");
        eprintln!("gigaoffice request -> response in {:?}", started.elapsed());
        assert_eq!(response.value["correlation_id"], id.as_str());
        assert_eq!(response.value["payload"]["status"], "processed");
        assert_eq!(
            response.value["payload"]["request"]["document"],
            "q3-report"
        );

        // A payload the handler refuses goes to the DLQ with its origin.
        let bad = testkit::unique_name("bad");
        let offset =
            testkit::publish_test_event(&client, &requests, 0, json!({"payload": 42}), &bad)
                .await
                .unwrap();
        let pc = client
            .partition_client(dlq.as_str(), 0, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let deadline = Instant::now() + READY_WITHIN;
        let dead = loop {
            let (records, _) = pc.fetch_records(0, 1..1_000_000, 100).await.unwrap();
            if let Some(r) = records.into_iter().next() {
                break r;
            }
            assert!(Instant::now() < deadline, "no dead letter in {dlq}");
        };
        let header = |n: &str| String::from_utf8(dead.record.headers[n].clone()).unwrap();
        assert_eq!(header("dlq.original.topic"), requests);
        assert_eq!(header("dlq.original.offset"), offset.to_string());
        assert_eq!(header("dlq.error.kind"), "validation");
        assert!(header("dlq.error.message").contains("JSON object"));

        // Seed 003's topic health and statistics.
        let http = service.http.clone();
        let (status, body) =
            tokio::task::spawn_blocking(move || http_get(&http, "/health").unwrap())
                .await
                .unwrap();
        assert_eq!(status, 200, "{body}");
        let health: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(health["statistics"]["topics_created"], 3, "{body}");
        // Every long-lived actor sends heartbeats; none is stale.
        let actors = &health["components"]["actors"];
        assert_eq!(actors["status"], "healthy", "{body}");
        assert_eq!(actors["stale"], json!([]), "{body}");
        for kind in [
            "partition_consumer",
            "handler_worker",
            "producer_pool",
            "committer",
            "group_member",
            "alert_manager",
        ] {
            assert!(
                actors["by_kind"][kind].as_u64().unwrap_or(0) >= 1,
                "no {kind} heartbeat: {body}"
            );
        }
        assert_eq!(
            health["components"]["topics"]["missing_topics"],
            json!([]),
            "{body}"
        );
        // The same as seed 003's topic health, on its own route.
        let http = service.http.clone();
        let (status, body) =
            tokio::task::spawn_blocking(move || http_get(&http, "/health/topics").unwrap())
                .await
                .unwrap();
        assert_eq!(status, 200, "{body}");
        let topics: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(topics["status"], "healthy", "{body}");
        assert_eq!(topics["missing_topics"], json!([]), "{body}");
        assert_eq!(
            topics["required_topics"], health["components"]["topics"]["required_topics"],
            "{body}"
        );
        assert!(topics["last_verification"].is_string(), "{body}");

        let exit = tokio::task::spawn_blocking(move || service.terminate(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(exit.success(), "exit {exit}");
    })
    .await;
}

/// Seed 002's event bus from `config/event-bus.toml`: its five topics with
/// their partitions and compaction, events routed by event type to their
/// handlers, a bad event dead-lettered to `dead.letter.queue`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_bus_routes_events_by_type_and_dead_letters_failures() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/event-bus.toml");
        let env: Vec<(&str, String)> = vec![
            ("KAFKA_ACTORS_CONFIG", config.to_owned()),
            ("KAFKA_CONSUMER_GROUP_ID", testkit::unique_name("xseven")),
            ("KAFKA_ACTORS_CONSUMER__FETCH_MAX_WAIT_MS", "100".to_owned()),
        ];
        let mut service = start_ready(broker.bootstrap(), env).await;

        let kafka = testkit::kafka_config(broker.bootstrap());
        assert_partitions(
            broker.bootstrap(),
            &[
                ("conversation.events", 3),
                ("ai.responses", 6),
                ("business.analytics", 2),
                ("system.monitoring", 1),
                ("dead.letter.queue", 1),
            ],
        )
        .await;
        let mut admin = Admin::connect(&kafka, Duration::from_secs(30))
            .await
            .unwrap();
        let names = ["conversation.events".to_owned()];
        let configs = admin.describe_topic_configs(&names).await.unwrap();
        let configs = configs["conversation.events"].as_ref().unwrap();
        assert_eq!(
            configs["cleanup.policy"].value.as_deref(),
            Some("compact"),
            "{configs:?}"
        );

        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let publish =
            |topic: &'static str, event_type: &'static str, payload: serde_json::Value| {
                let client = &client;
                async move {
                    let id = testkit::unique_name("evt");
                    testkit::publish_test_event(
                        client,
                        topic,
                        0,
                        json!({"event_type": event_type, "payload": payload}),
                        &id,
                    )
                    .await
                    .unwrap();
                    id
                }
            };

        // conversation.ended and ai.response.generated feed analytics.
        let ended = publish(
            "conversation.events",
            "conversation.ended",
            json!({"conversation_id": "c-1", "message_count": 4}),
        )
        .await;
        let tokens = publish(
            "ai.responses",
            "ai.response.generated",
            json!({"model": "m-1", "tokens": 321}),
        )
        .await;
        for (id, metric, field, value) in [
            (&ended, "conversations.ended", "messages", json!(4)),
            (&tokens, "ai.tokens", "tokens", json!(321)),
        ] {
            let update =
                testkit::consume_response(&client, "business.analytics", 2, id, READY_WITHIN)
                    .await
                    .unwrap()
                    .unwrap_or_else(|| panic!("no analytics update for {metric}"));
            assert_eq!(
                update.value["payload"]["metric"], metric,
                "{:?}",
                update.value
            );
            assert_eq!(update.value["payload"][field], value, "{:?}", update.value);
        }

        // An analytics update without a metric goes to dead.letter.queue.
        let bad = publish(
            "business.analytics",
            "business.analytics.update",
            json!({"value": 1}),
        )
        .await;
        let dead = testkit::consume_response(&client, "dead.letter.queue", 1, &bad, READY_WITHIN)
            .await
            .unwrap()
            .expect("the bad update in dead.letter.queue");
        let header = |n: &str| String::from_utf8(dead.headers[n].clone()).unwrap();
        assert_eq!(header("dlq.original.topic"), "business.analytics");
        assert_eq!(header("dlq.route"), "business_analytics_update");
        assert_eq!(header("dlq.error.kind"), "validation");
        assert!(header("dlq.error.message").contains("needs a metric"));

        let exit = tokio::task::spawn_blocking(move || service.terminate(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(exit.success(), "exit {exit}");
    })
    .await;
}

/// The variables that bring seed 001's replication factor 3 down to the one
/// broker of a test.
const HELIXAGENT_SINGLE_BROKER: [&str; 10] = [
    "KAFKA_ACTORS_TOPICS__LLM_RESPONSES__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__DEBATE_ROUNDS__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__VERIFICATION_RESULTS__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__PROVIDER_HEALTH__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__AUDIT__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__METRICS__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__ERRORS__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__STREAM_TOKENS__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__STREAM_SSE__REPLICATION_FACTOR",
    "KAFKA_ACTORS_TOPICS__STREAM_WEBSOCKET__REPLICATION_FACTOR",
];

/// Seed 001's HelixAgent topics from `config/helixagent.toml` (replication
/// overridden to the single broker as the file shows): all ten created with
/// their partition counts, and key-based routing: records forwarded to the
/// audit topic land, per key, in the one partition the Java client's
/// partitioner picks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn helixagent_topics_are_created_and_keys_keep_their_partition() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/helixagent.toml");
        let mut env: Vec<(&str, String)> = vec![
            ("KAFKA_ACTORS_CONFIG", config.to_owned()),
            ("KAFKA_GROUP_ID", testkit::unique_name("helixagent-group")),
            ("KAFKA_ACTORS_CONSUMER__FETCH_MAX_WAIT_MS", "100".to_owned()),
        ];
        env.extend(
            HELIXAGENT_SINGLE_BROKER
                .iter()
                .map(|v| (*v, "1".to_owned())),
        );
        let mut service = start_ready(broker.bootstrap(), env).await;

        let kafka = testkit::kafka_config(broker.bootstrap());
        assert_partitions(
            broker.bootstrap(),
            &[
                ("helixagent.events.llm.responses", 6),
                ("helixagent.events.debate.rounds", 6),
                ("helixagent.events.verification.results", 3),
                ("helixagent.events.provider.health", 3),
                ("helixagent.events.audit", 6),
                ("helixagent.events.metrics", 3),
                ("helixagent.events.errors", 3),
                ("helixagent.stream.tokens", 12),
                ("helixagent.stream.sse", 6),
                ("helixagent.stream.websocket", 6),
            ],
        )
        .await;

        // Three sessions, five LLM responses each, spread over the input
        // partitions; the audit copies must group by key.
        let sessions: Vec<String> = (0..3).map(|_| testkit::unique_name("session")).collect();
        let producer = Producer::connect(&kafka, kafka_actors::config::Compression::None)
            .await
            .unwrap();
        let records: Vec<OutRecord> = (0..15)
            .map(|i| OutRecord {
                topic: "helixagent.events.llm.responses".to_owned(),
                partition: Some(i % 6),
                key: Some(sessions[(i % 3) as usize].clone().into_bytes()),
                value: Some(json!({"seq": i, "text": "…"}).to_string().into_bytes()),
                ..OutRecord::default()
            })
            .collect();
        for r in producer.send(records).await {
            r.unwrap();
        }
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let mut seen: Vec<(String, i32)> = Vec::new();
        let deadline = Instant::now() + READY_WITHIN;
        while seen.len() < 15 {
            assert!(Instant::now() < deadline, "audit copies: {seen:?}");
            seen.clear();
            for p in 0..6 {
                let pc = client
                    .partition_client("helixagent.events.audit", p, UnknownTopicHandling::Retry)
                    .await
                    .unwrap();
                let (records, _) = pc.fetch_records(0, 1..10_000_000, 50).await.unwrap();
                for r in records {
                    let key = String::from_utf8(r.record.key.unwrap_or_default()).unwrap();
                    if sessions.contains(&key) {
                        seen.push((key, p));
                    }
                }
            }
        }
        for session in &sessions {
            let expected = partition_for_key(session.as_bytes(), 6);
            let partitions: Vec<i32> = seen
                .iter()
                .filter(|(k, _)| k == session)
                .map(|(_, p)| *p)
                .collect();
            assert_eq!(partitions.len(), 5, "{session}: {seen:?}");
            assert!(
                partitions.iter().all(|p| *p == expected),
                "{session} should be in partition {expected}: {partitions:?}"
            );
        }

        let exit = tokio::task::spawn_blocking(move || service.terminate(Duration::from_secs(30)))
            .await
            .unwrap();
        assert!(exit.success(), "exit {exit}");
    })
    .await;
}

/// Without the override, seed 001's replication factor 3 is refused on a
/// single broker with seed 003's advice, and start-up exits with the
/// configuration code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Apache Kafka: Tansu accepts a replication factor above its broker count; runs in .ci/run against Kafka"]
async fn helixagent_replication_factor_three_is_refused_on_one_broker() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/helixagent.toml");
        let bootstrap = broker.bootstrap().to_owned();
        let group = testkit::unique_name("helixagent-group");
        // A metrics topic of its own, so one topic is always missing (the
        // others may exist from the test above, with replication 1).
        let metrics = testkit::unique_name("helixagent.events.metrics");
        let (status, out, err) = tokio::task::spawn_blocking(move || {
            crate::support::run_cli(
                &["--config", config, "run"],
                &[
                    ("KAFKA_BOOTSTRAP_SERVERS", bootstrap.as_str()),
                    ("KAFKA_GROUP_ID", group.as_str()),
                    ("KAFKA_ACTORS_TOPICS__METRICS__NAME", metrics.as_str()),
                    ("KAFKA_ACTORS_HTTP__BIND", "127.0.0.1:0"),
                ],
            )
        })
        .await
        .unwrap();
        let all = format!("{out}{err}");
        assert_eq!(status.code(), Some(3), "{all}");
        assert!(
            all.contains("reduce the replication factor to match the broker count"),
            "{all}"
        );
        assert!(
            all.contains("REPLICATION_FACTOR") || all.contains("replication_factor"),
            "{all}"
        );
    })
    .await;
}
