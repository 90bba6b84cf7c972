//! `kafka-actors run`: readiness, health, metrics, clean stop on SIGTERM.

use std::time::Duration;

use kafka_actors::testkit::TestBroker;

use crate::support::{Service, bounded, free_port, http_get, wait_until};

const READY_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_health_and_metrics_and_stops_cleanly_on_sigterm() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let bootstrap = broker.bootstrap().to_owned();
        tokio::task::spawn_blocking(move || {
            let mut service = Service::start(&bootstrap, &[], &[]);
            service.wait_for_status("/health/ready", 200, READY_WITHIN);

            let (status, body) = http_get(&service.http, "/health").unwrap();
            assert_eq!(status, 200, "{body}");
            let health: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(health["status"], "healthy", "{body}");
            assert_eq!(health["bootstrap_servers"], bootstrap.as_str());
            assert_eq!(health["components"]["brokers"]["status"], "healthy");
            assert_eq!(
                health["components"]["brokers"]["brokers"]
                    .as_array()
                    .map(Vec::len),
                Some(1),
                "{body}"
            );
            assert_eq!(health["configuration"]["creation_retries"], 3);

            let (status, _) = http_get(&service.http, "/health/live").unwrap();
            assert_eq!(status, 200);

            let (status, metrics) = http_get(&service.http, "/metrics").unwrap();
            assert_eq!(status, 200);
            assert!(metrics.contains("kafka_actors_broker_up 1"), "{metrics}");
            assert!(
                metrics.contains("kafka_actors_broker_checks_total{outcome=\"ok\"}"),
                "{metrics}"
            );
            assert!(
                metrics.contains("kafka_actors_build_info{version=\""),
                "{metrics}"
            );

            let exit = service.terminate(Duration::from_secs(20));
            assert!(exit.success(), "exit {exit}\n{}", service.log());
            let log = service.log();
            assert!(log.contains("SIGTERM received"), "{log}");
            assert!(log.contains("stopped"), "{log}");
        })
        .await
        .unwrap();
    })
    .await;
}

#[test]
fn not_ready_while_the_brokers_are_unreachable_but_live() {
    let dead = format!("127.0.0.1:{}", free_port());
    let mut service = Service::start(&dead, &[], &[]);
    // Live answers as soon as the HTTP listener is up.
    service.wait_for_status("/health/live", 200, READY_WITHIN);
    // Ready stays 503 once a check has failed, and says why.
    let body = service.wait_for_status("/health", 503, READY_WITHIN);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["status"], "unhealthy", "{body}");
    let reasons = health["reasons"].to_string();
    assert!(reasons.contains(&dead), "{reasons}");
    let (status, body) = http_get(&service.http, "/health/ready").unwrap();
    assert_eq!(status, 503, "{body}");
    let (_, metrics) = http_get(&service.http, "/metrics").unwrap();
    assert!(metrics.contains("kafka_actors_broker_up 0"), "{metrics}");
    assert!(
        metrics.contains("kafka_actors_broker_checks_total{outcome=\"unreachable\"}"),
        "{metrics}"
    );
    let exit = service.terminate(Duration::from_secs(20));
    assert!(exit.success(), "exit {exit}");
}

/// The quickstart, as the README's first command runs it:
/// `--config config/quickstart.toml run --embedded-broker --demo-rate N`
/// brings its own broker, creates its topics, and traffic flows.
#[test]
fn quickstart_with_the_embedded_broker_shows_traffic() {
    // The bootstrap given here is ignored in favour of the embedded broker.
    let dead = format!("127.0.0.1:{}", free_port());
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/config/quickstart.toml");
    let mut service = Service::start(
        &dead,
        &["--embedded-broker", "--demo-rate", "50"],
        &[("KAFKA_ACTORS_CONFIG", config)],
    );
    let body = service.wait_for_status("/health", 200, READY_WITHIN);
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_ne!(health["bootstrap_servers"], dead.as_str(), "{body}");
    assert_eq!(
        health["components"]["brokers"]["cluster_id"], "kafka-actors-embedded",
        "{body}"
    );
    // Seed 003's topic health and statistics: the three declared topics
    // were created at start-up and verified by the health monitor.
    let http = service.http.clone();
    let mut health = serde_json::Value::Null;
    wait_until("topic health in /health", READY_WITHIN, || {
        health = http_get(&http, "/health")
            .ok()
            .and_then(|(_, b)| serde_json::from_str(&b).ok())
            .unwrap_or_default();
        health["components"]["topics"]["status"] == "healthy"
    });
    assert_eq!(health["statistics"]["topics_created"], 3, "{health}");
    assert_eq!(
        health["components"]["topics"]["missing_topics"],
        serde_json::json!([]),
        "{health}"
    );
    // Requests handled, replies acknowledged, offsets committed.
    let value = |metrics: &str, prefix: &str| -> f64 {
        metrics
            .lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    };
    let mut last = String::new();
    wait_until("demo traffic in the metrics", READY_WITHIN, || {
        last = http_get(&http, "/metrics")
            .map(|(_, b)| b)
            .unwrap_or_default();
        value(
            &last,
            r#"kafka_actors_handler_records_total{route="greet",outcome="handled"}"#,
        ) >= 20.0
            && value(
                &last,
                r#"kafka_actors_producer_records_total{topic="demo.responses",outcome="ok"}"#,
            ) >= 20.0
            && value(
                &last,
                r#"kafka_actors_consumer_commits_total{outcome="ok"}"#,
            ) >= 1.0
    });
    // The demo's own report: replies came back to it.
    wait_until("the demo's report", READY_WITHIN, || {
        service
            .log()
            .lines()
            .any(|l| l.contains("demo: last 5 s") && !l.contains("replies=0 "))
    });
    assert!(
        service.log().contains(r#"\"greeting\":\"hello, user-"#),
        "{}",
        service.log()
    );
    let exit = service.terminate(Duration::from_secs(20));
    assert!(exit.success(), "exit {exit}\n{}", service.log());
}
