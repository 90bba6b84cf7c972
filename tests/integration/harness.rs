//! The seed 004 harness itself: publish with a correlation id, consume until
//! it arrives, track a request -> response flow.

use std::time::Duration;

use kafka_actors::testkit::{self, TestBroker};
use serde_json::json;

use crate::support::bounded;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_kafka_and_connectivity() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        assert!(testkit::verify_connectivity(broker.bootstrap()).await);
        let info = testkit::wait_for_kafka(broker.bootstrap(), 3, Duration::from_millis(100))
            .await
            .unwrap();
        assert_eq!(info.brokers.len(), 1);
        assert!(!testkit::verify_connectivity("127.0.0.1:1").await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_response_flow_is_tracked_by_correlation_id() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let requests = testkit::unique_name("requests");
        let responses = testkit::unique_name("responses");
        testkit::create_topics(&client, &[requests.as_str(), responses.as_str()], 2, 1)
            .await
            .unwrap();

        // Noise first: another correlation id must not match.
        testkit::publish_test_event(&client, &requests, 0, json!({"n": 0}), "other")
            .await
            .unwrap();
        let id = testkit::unique_name("corr");
        testkit::publish_test_event(&client, &requests, 1, json!({"code": "class T: pass"}), &id)
            .await
            .unwrap();

        // Play the service: read the request, answer on the response topic.
        let request =
            testkit::consume_response(&client, &requests, 2, &id, Duration::from_secs(20))
                .await
                .unwrap()
                .expect("request found");
        assert_eq!(request.partition, 1);
        assert_eq!(request.value["correlation_id"], id.as_str());
        assert_eq!(request.value["code"], "class T: pass");
        assert_eq!(request.headers["correlation_id"], id.as_bytes());

        testkit::publish_test_event(&client, &responses, 0, json!({"quality_score": 0.9}), &id)
            .await
            .unwrap();

        let tracking = testkit::track_event_flow(
            &client,
            &id,
            (&requests, 2),
            (&responses, 2),
            Duration::from_secs(20),
        )
        .await
        .unwrap();
        assert!(tracking.request_found);
        assert!(tracking.response_found);
        assert!(tracking.duration_ms.is_some_and(|d| d >= 0), "{tracking:?}");

        // A correlation id that was never published is not found.
        let missing = testkit::consume_response(
            &client,
            &responses,
            2,
            "never-sent",
            Duration::from_millis(500),
        )
        .await
        .unwrap();
        assert!(missing.is_none());
    })
    .await;
}
