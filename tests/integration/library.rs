//! The runtime as a library: a handler registered by name on the registry,
//! run in-process. A handler that panics or fails never stops the pipeline.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_actors::config::{Config, RouteConfig};
use kafka_actors::handler::{HandlerError, HandlerRegistry, typed};
use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use rskafka::client::partition::UnknownTopicHandling;
use serde::{Deserialize, Serialize};

use crate::pipeline::{correlation_counts, read_all, topics};
use crate::support::{bounded, http_get};

#[derive(Deserialize)]
struct In {
    seq: u64,
}

#[derive(Serialize)]
struct Out {
    seq: u64,
    doubled: u64,
}

/// Panics on every seq ≡ 3 (mod 10), fails (retryable) on seq ≡ 5.
fn flaky() -> Arc<dyn kafka_actors::handler::Handler> {
    typed(|_ctx, input: In| async move {
        match input.seq % 10 {
            3 => panic!("seq {} is unlucky", input.seq),
            5 => Err(HandlerError::Retryable(format!(
                "backend down for {}",
                input.seq
            ))),
            _ => Ok(Some(Out {
                seq: input.seq,
                doubled: input.seq * 2,
            })),
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_and_failing_library_handlers_never_stop_the_pipeline() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 3).await;
        let mut config = Config {
            kafka: testkit::kafka_config(broker.bootstrap()),
            ..Config::default()
        };
        config.consumer.group_id = testkit::unique_name("group");
        config.consumer.fetch_max_wait_ms = 100;
        // Tansu holds a new member's first JoinGroup for about half the
        // session timeout.
        config.consumer.session_timeout_ms = 6_000;
        config.consumer.heartbeat_interval_ms = 1_000;
        config.http.bind = "127.0.0.1:0".to_owned();
        config.routes.insert(
            "flaky".to_owned(),
            RouteConfig {
                topic: t.requests.clone(),
                handler: "flaky".to_owned(),
                reply_topic: Some(t.responses.clone()),
                // Two workers per partition: per-key order must still hold.
                concurrency: 2,
                ..RouteConfig::default()
            },
        );
        let mut registry = HandlerRegistry::with_builtins();
        registry.register("flaky", flaky());

        // The runtime in its own actix System, as a library user runs it.
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let service = std::thread::spawn(move || {
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
        let http = started.http_addr.unwrap().to_string();

        const N: u64 = 60;
        let producer = Producer::connect(
            &testkit::kafka_config(broker.bootstrap()),
            kafka_actors::config::Compression::None,
        )
        .await
        .unwrap();
        let records = (0..N)
            .map(|seq| OutRecord {
                topic: t.requests.clone(),
                key: Some(format!("k{}", seq % 6).into_bytes()),
                value: Some(
                    serde_json::json!({"correlation_id": format!("c{seq}"), "payload": {"seq": seq}})
                        .to_string()
                        .into_bytes(),
                ),
                ..OutRecord::default()
            })
            .collect();
        for r in producer.send(records).await {
            r.unwrap();
        }

        let failing = |seq: u64| matches!(seq % 10, 3 | 5);
        let want = (0..N).filter(|s| !failing(*s)).count();
        let responses = read_all(&client, &t.responses, 3, want, Duration::from_secs(60)).await;
        let counts = correlation_counts(&responses);
        let expected: Vec<String> = (0..N)
            .filter(|s| !failing(*s))
            .map(|s| format!("c{s}"))
            .collect();
        assert_eq!(counts.keys().cloned().collect::<Vec<_>>(), {
            let mut e = expected.clone();
            e.sort();
            e
        });
        assert!(counts.values().all(|n| *n == 1), "duplicates: {counts:?}");
        // Replies keep the request's key: per key, in request order.
        let mut last: BTreeMap<u64, u64> = BTreeMap::new();
        for (_, v) in &responses {
            let seq = v["payload"]["seq"].as_u64().unwrap();
            assert_eq!(v["payload"]["doubled"].as_u64(), Some(seq * 2));
            if let Some(prev) = last.insert(seq % 6, seq) {
                assert!(prev < seq, "key k{}: {prev} then {seq}", seq % 6);
            }
        }

        // Every failure is dead-lettered with its kind and origin.
        let dlq = format!("{}.dlq", t.requests);
        let pc = client
            .partition_client(dlq.as_str(), 0, UnknownTopicHandling::Retry)
            .await
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut dead = Vec::new();
        let fails = (0..N).filter(|s| failing(*s)).count();
        while dead.len() < fails && Instant::now() < deadline {
            let have = dead.len() as i64;
            let (records, _) = pc.fetch_records(have, 1..1_000_000, 50).await.unwrap();
            dead.extend(records.into_iter().filter(|r| r.offset >= have));
        }
        assert_eq!(dead.len(), fails, "dead letters");
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for r in &dead {
            let header = |n: &str| String::from_utf8(r.record.headers[n].clone()).unwrap();
            assert_eq!(header("dlq.original.topic"), t.requests);
            assert_eq!(header("dlq.route"), "flaky");
            let value: serde_json::Value =
                serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
            let seq = value["payload"]["seq"].as_u64().unwrap();
            let kind = header("dlq.error.kind");
            match seq % 10 {
                3 => {
                    assert_eq!(kind, "panic");
                    assert!(header("dlq.error.message").contains("is unlucky"));
                    // A panic is not retried.
                    assert_eq!(header("dlq.attempts"), "1");
                }
                5 => {
                    assert_eq!(kind, "processing");
                    assert!(header("dlq.error.message").contains("backend down"));
                    // Retried in place as the route's default says: three
                    // attempts in all.
                    assert_eq!(header("dlq.attempts"), "3");
                }
                other => panic!("seq {seq} (mod 10 = {other}) should not be dead-lettered"),
            }
            *kinds.entry(kind).or_default() += 1;
        }
        assert_eq!(kinds.len(), 2, "{kinds:?}");

        // Each panic restarted its worker, and the restarts are counted.
        let (status, metrics) =
            tokio::task::spawn_blocking(move || http_get(&http, "/metrics").unwrap())
                .await
                .unwrap();
        assert_eq!(status, 200);
        let restarts: f64 = metrics
            .lines()
            .find(|l| {
                l.starts_with("kafka_actors_actor_restarts_total")
                    && l.contains("actor=\"handler_worker\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        assert!(restarts >= 1.0, "restarts counted: {metrics}");

        stop_tx.send(()).unwrap();
        tokio::task::spawn_blocking(move || service.join().unwrap())
            .await
            .unwrap()
            .unwrap();
    })
    .await;
}

/// Retries in place, end to end: a handler that fails twice per record
/// (retryable) then succeeds answers every record, after exactly three
/// calls each; with two attempts allowed, every record is dead-lettered
/// after exactly two.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_failing_twice_then_succeeding_is_retried_exactly_as_configured() {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(20))
            .await
            .unwrap();
        const N: u64 = 12;
        for (max_attempts, answered) in [(3, true), (2, false)] {
            let t = topics(&client, 2).await;
            let calls: Arc<std::sync::Mutex<BTreeMap<u64, u32>>> = Arc::default();
            let seen = Arc::clone(&calls);
            let mut registry = HandlerRegistry::with_builtins();
            registry.register(
                "twice",
                typed(move |_ctx, input: In| {
                    let n = {
                        let mut calls = seen.lock().unwrap();
                        let n = calls.entry(input.seq).or_insert(0);
                        *n += 1;
                        *n
                    };
                    async move {
                        if n <= 2 {
                            Err(HandlerError::Retryable(format!("call {n} of {}", input.seq)))
                        } else {
                            Ok(Some(Out {
                                seq: input.seq,
                                doubled: input.seq * 2,
                            }))
                        }
                    }
                }),
            );
            let mut config = Config {
                kafka: testkit::kafka_config(broker.bootstrap()),
                ..Config::default()
            };
            config.consumer.group_id = testkit::unique_name("group");
            config.consumer.fetch_max_wait_ms = 100;
            config.consumer.session_timeout_ms = 6_000;
            config.consumer.heartbeat_interval_ms = 1_000;
            config.http.bind = "127.0.0.1:0".to_owned();
            config.routes.insert(
                "twice".to_owned(),
                RouteConfig {
                    topic: t.requests.clone(),
                    handler: "twice".to_owned(),
                    reply_topic: Some(t.responses.clone()),
                    retry: kafka_actors::config::RetryConfig {
                        strategy: kafka_actors::config::RetryStrategy::Fixed,
                        max_attempts,
                        initial_delay_ms: 20,
                        ..Default::default()
                    },
                    ..RouteConfig::default()
                },
            );
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let (started_tx, started_rx) = tokio::sync::oneshot::channel();
            let service = std::thread::spawn(move || {
                actix::System::new().block_on(kafka_actors::runtime::run(
                    config,
                    registry,
                    async {
                        let _ = stop_rx.await;
                    },
                    Some(started_tx),
                ))
            });
            started_rx.await.expect("runtime started");
            let producer = Producer::connect(
                &testkit::kafka_config(broker.bootstrap()),
                kafka_actors::config::Compression::None,
            )
            .await
            .unwrap();
            let records = (0..N)
                .map(|seq| OutRecord {
                    topic: t.requests.clone(),
                    key: Some(format!("k{seq}").into_bytes()),
                    value: Some(
                        serde_json::json!({"correlation_id": format!("c{seq}"), "payload": {"seq": seq}})
                            .to_string()
                            .into_bytes(),
                    ),
                    ..OutRecord::default()
                })
                .collect();
            for r in producer.send(records).await {
                r.unwrap();
            }
            if answered {
                let responses =
                    read_all(&client, &t.responses, 2, N as usize, Duration::from_secs(60)).await;
                assert_eq!(correlation_counts(&responses).len(), N as usize);
            } else {
                let dlq = format!("{}.dlq", t.requests);
                let dead = read_all(&client, &dlq, 1, N as usize, Duration::from_secs(60)).await;
                assert_eq!(dead.len(), N as usize, "every record dead-lettered");
            }
            stop_tx.send(()).unwrap();
            tokio::task::spawn_blocking(move || service.join().unwrap())
                .await
                .unwrap()
                .unwrap();
            let calls = calls.lock().unwrap().clone();
            assert_eq!(calls.len(), N as usize);
            assert!(
                calls.values().all(|n| *n == max_attempts),
                "every record called exactly {max_attempts} times: {calls:?}"
            );
        }
    })
    .await;
}
