//! Seed 000's intelligence service: `config/intelligence.toml` run with the
//! handlers of `examples/intelligence`, tested as seed 004 describes
//! ("validation request → response flow" and "correlation ID tracking")
//! for all four handlers.

use std::time::{Duration, Instant};

use kafka_actors::config::{self, LoadOptions};
use kafka_actors::testkit::{self, TestBroker};
use rskafka::client::partition::UnknownTopicHandling;
use serde_json::{Value, json};

use crate::support::bounded;

// The example's handlers, compiled into this test (their unit tests run
// here too).
#[path = "../../examples/intelligence/codegen.rs"]
mod codegen;

const WITHIN: Duration = Duration::from_secs(60);

/// An ONEX effect node with one badly named, untyped, undocumented helper.
const NODE: &str = r#"import httpx


class NodeWeatherEffect(NodeEffect):
    """Fetches the weather for a city."""

    async def execute(self, city: str) -> dict:
        """Returns the forecast."""
        async with httpx.AsyncClient() as client:
            response = await client.get(f"https://weather.example/{city}")
            if response.status_code != 200 or not response.content:
                raise RuntimeError(response.text)
            return response.json()


def Celsius(kelvin):
    return kelvin - 273.15
"#;

/// The four kinds: request topic, response topic (logical names in the
/// config), and what each response must say about [`NODE`].
const KINDS: [&str; 4] = ["validate", "analyze", "pattern", "mixin"];

fn check_result(kind: &str, payload: &Value) {
    match kind {
        "validate" => {
            assert_eq!(payload["is_valid"], true, "{payload}");
            // Three warnings on `Celsius`: name, return type, docstring.
            assert_eq!(payload["quality_score"], 0.85, "{payload}");
            let rules: Vec<&str> = payload["issues"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["rule"].as_str().unwrap())
                .collect();
            assert_eq!(
                rules,
                ["naming.function", "typing.return", "structure.docstring"],
                "{payload}"
            );
            assert_eq!(payload["issues"][0]["line"], 16, "{payload}");
        }
        "analyze" => {
            assert_eq!(payload["lines"]["total"], 17, "{payload}");
            assert_eq!(payload["classes"], 1, "{payload}");
            assert_eq!(payload["functions"], 2, "{payload}");
            assert_eq!(payload["imports"], json!(["httpx"]), "{payload}");
            // execute: if, or.
            assert_eq!(payload["max_function_complexity"], 3, "{payload}");
            // class > def > with > if.
            assert_eq!(payload["max_nesting_depth"], 4, "{payload}");
        }
        "pattern" => {
            let names: Vec<&str> = payload["patterns"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| p["pattern"].as_str().unwrap())
                .collect();
            assert!(names.contains(&"onex_node"), "{payload}");
            assert!(names.contains(&"async_io"), "{payload}");
            assert!(!names.contains(&"singleton"), "{payload}");
        }
        "mixin" => {
            assert_eq!(payload["node_type"], "effect", "{payload}");
            assert_eq!(
                payload["recommendations"][0]["mixin"], "MixinRetry",
                "{payload}"
            );
            assert!(
                payload["recommendations"][0]["reason"]
                    .as_str()
                    .unwrap()
                    .contains("httpx"),
                "{payload}"
            );
        }
        other => unreachable!("{other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn intelligence_service_answers_all_four_handlers_by_correlation_id() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/intelligence.toml");
        let mut config = config::load(&LoadOptions {
            config_file: Some(file.into()),
            ..LoadOptions::default()
        })
        .unwrap()
        .config;
        assert_eq!(config.consumer.max_poll_records, 500);
        assert_eq!(config.consumer.session_timeout_ms, 30_000);
        // What KAFKA_CODEGEN_* and KAFKA_CONSUMER_GROUP do, with names
        // unique to this run (tests/config.rs checks the variables).
        for spec in config.topics.values_mut() {
            let name = spec.name.clone().unwrap();
            spec.name = Some(testkit::unique_name(&name));
        }
        config.consumer.group_id = testkit::unique_name("archon-intelligence");
        config.kafka = testkit::kafka_config(broker.bootstrap());
        config.consumer.fetch_max_wait_ms = 100;
        // Tansu holds a new member's first JoinGroup for about half the
        // session timeout.
        config.consumer.session_timeout_ms = 6_000;
        config.consumer.heartbeat_interval_ms = 1_000;
        config.http.bind = "127.0.0.1:0".to_owned();
        let topic = |logical: &str| config.topic_name(logical);
        let names: Vec<(String, String)> = KINDS
            .iter()
            .map(|k| {
                (
                    topic(&format!("codegen_{k}_request")),
                    topic(&format!("codegen_{k}_response")),
                )
            })
            .collect();
        let dlq = topic("codegen_dlq");

        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let service = std::thread::spawn(move || {
            actix::System::new().block_on(kafka_actors::runtime::run(
                config,
                codegen::registry(),
                async {
                    let _ = stop_rx.await;
                },
                Some(started_tx),
            ))
        });
        started_rx.await.expect("the service started");
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();

        for (kind, (requests, responses)) in KINDS.iter().zip(&names) {
            // Seed 004 example 2: request -> response flow.
            let id = testkit::unique_name(&format!("{kind}-flow"));
            let started = Instant::now();
            testkit::publish_test_event(
                &client,
                requests,
                0,
                json!({
                    "event_type": format!("codegen.request.{kind}"),
                    "payload": {"code_content": NODE, "node_type": "effect"},
                }),
                &id,
            )
            .await
            .unwrap();
            let response = testkit::consume_response(&client, responses, 3, &id, WITHIN)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("no {kind} response for {id} on {responses}"));
            let round_trip = started.elapsed();
            assert_eq!(response.value["correlation_id"], id.as_str());
            assert_eq!(response.headers["correlation_id"], id.as_bytes());
            assert_eq!(
                response.value["event_type"],
                format!("codegen.request.{kind}.response")
            );
            check_result(kind, &response.value["payload"]);

            // Seed 004 example 3: correlation ID tracking, with an empty
            // payload (the handlers answer it too: validate says why it is
            // not valid).
            let id = testkit::unique_name(&format!("{kind}-track"));
            testkit::publish_test_event(&client, requests, 1, json!({"payload": {}}), &id)
                .await
                .unwrap();
            let tracking =
                testkit::track_event_flow(&client, &id, (requests, 3), (responses, 3), WITHIN)
                    .await
                    .unwrap();
            assert!(tracking.request_found, "{kind}: request event not found");
            assert!(tracking.response_found, "{kind}: response event not found");
            let duration_ms = tracking.duration_ms.expect("a duration");
            eprintln!(
                "intelligence {kind}: request -> response in {} ms (round trip seen by the test), \
                 tracked {duration_ms} ms (broker timestamps)",
                round_trip.as_millis()
            );
        }
        // A payload that is not an object is dead-lettered, not answered.
        let bad = testkit::unique_name("not-an-object");
        testkit::publish_test_event(
            &client,
            &names[0].0,
            2,
            json!({"payload": "class Foo: pass"}),
            &bad,
        )
        .await
        .unwrap();
        let pc = client
            .partition_client(dlq.as_str(), 0, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let deadline = Instant::now() + WITHIN;
        let dead = loop {
            let (records, _) = pc.fetch_records(0, 1..1_000_000, 100).await.unwrap();
            if let Some(r) = records.into_iter().next() {
                break r;
            }
            assert!(Instant::now() < deadline, "no dead letter in {dlq}");
        };
        let header = |n: &str| String::from_utf8(dead.record.headers[n].clone()).unwrap();
        assert_eq!(header("dlq.original.topic"), names[0].0);
        assert_eq!(header("dlq.error.kind"), "deserialization");

        stop_tx.send(()).unwrap();
        tokio::task::spawn_blocking(move || service.join().unwrap())
            .await
            .unwrap()
            .unwrap();
    })
    .await;
}
