//! Key-ordered retries (`ordering = "key"`) on a real broker: a failing
//! record waits with the later records of its key parked behind it, in
//! order, while records with other keys go on; after its retries it ends
//! answered or dead-lettered, and only then do the records behind it run.
//! A `kill -9` while records are parked loses none and breaks no key's
//! order. Each test runs with in-place retries and with a retry topic
//! (`retry.mode = "topic"`: the failing record and the later ones of its
//! key wait in the retry partition of their input partition).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_actors::config::{Ordering, RetryConfig, RetryMode, RetryStrategy, RouteConfig};
use kafka_actors::handler::{HandlerError, HandlerRegistry, typed};
use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use serde_json::{Value, json};

use crate::pipeline::{read_all, topics};
use crate::retries::{header, read_records};
use crate::support::{InProcess, bounded, library_config};

const KEYS: u64 = 6;

fn key_of(seq: u64) -> u64 {
    seq % KEYS
}

/// Failed calls before seq succeeds (`u32::MAX`: never).
fn failures(seq: u64) -> u32 {
    match seq {
        57 | 88 => u32::MAX,
        s if s % 10 == 3 => (s / 10 % 3) as u32 + 1,
        _ => 0,
    }
}

fn request(topic: &str, seq: u64, fail: bool) -> OutRecord {
    OutRecord {
        topic: topic.to_owned(),
        key: Some(format!("k{}", key_of(seq)).into_bytes()),
        value: Some(
            json!({"correlation_id": format!("c{seq}"), "payload": {"seq": seq, "fail": fail}})
                .to_string()
                .into_bytes(),
        ),
        ..OutRecord::default()
    }
}

/// The seq of each response, in the order of the (one-partition) topic.
fn seqs(responses: &[(i32, Value)]) -> Vec<u64> {
    responses
        .iter()
        .map(|(_, v)| v["payload"]["seq"].as_u64().unwrap())
        .collect()
}

/// Whether every key's seqs appear in increasing order (ignoring repeats
/// of one seq in a row, and, with `first_only`, later repeats).
fn in_key_order(seqs: &[u64], first_only: bool) -> Result<(), String> {
    let mut last: BTreeMap<u64, u64> = BTreeMap::new();
    let mut seen = BTreeSet::new();
    for &s in seqs {
        if first_only && !seen.insert(s) {
            continue;
        }
        if let Some(&prev) = last.get(&key_of(s))
            && prev > s
        {
            return Err(format!("key k{}: seq {s} after seq {prev}", key_of(s)));
        }
        last.insert(key_of(s), s);
    }
    Ok(())
}

/// Creates the retry topic of `requests` for `mode`: as many partitions as
/// the input topic (one).
async fn retry_topic(client: &rskafka::client::Client, requests: &str, mode: RetryMode) -> String {
    let retry = format!("{requests}.retry");
    if mode == RetryMode::Topic {
        testkit::create_topics(client, &[retry.as_str()], 1, 1)
            .await
            .unwrap();
    }
    retry
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_key_waits_in_order_while_other_keys_go_on() {
    a_failing_key_waits(RetryMode::InPlace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_key_waits_in_order_in_the_retry_topic_while_other_keys_go_on() {
    a_failing_key_waits(RetryMode::Topic).await;
}

// A figure for the session notes, printed with --nocapture.
#[allow(clippy::print_stderr)]
async fn a_failing_key_waits(mode: RetryMode) {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let bootstrap = broker.bootstrap().to_owned();
        let client = testkit::client(&bootstrap, Duration::from_secs(20))
            .await
            .unwrap();
        // One partition: every key shares it, so only key order can let
        // the others go on.
        let t = topics(&client, 1).await;
        let retry = retry_topic(&client, &t.requests, mode).await;

        const N: u64 = 120;
        let started = Instant::now();
        let calls: Arc<Mutex<Vec<(u64, Duration)>>> = Arc::default();
        let log = Arc::clone(&calls);
        let mut registry = HandlerRegistry::with_builtins();
        registry.register(
            "flaky",
            typed(move |_ctx, input: Value| {
                let seq = input["seq"].as_u64().unwrap();
                let n = {
                    let mut calls = log.lock().unwrap();
                    calls.push((seq, started.elapsed()));
                    calls.iter().filter(|(s, _)| *s == seq).count() as u32
                };
                async move {
                    if n <= failures(seq) {
                        Err(HandlerError::Retryable(format!("call {n} of {seq}")))
                    } else {
                        Ok(Some(json!({"seq": seq})))
                    }
                }
            }),
        );
        let config = library_config(
                &bootstrap,
                RouteConfig {
                    topic: t.requests.clone(),
                    handler: "flaky".to_owned(),
                    reply_topic: Some(t.responses.clone()),
                    ordering: Ordering::Key,
                    retry: RetryConfig {
                        mode,
                        strategy: RetryStrategy::Fixed,
                        max_attempts: 4,
                        initial_delay_ms: 300,
                        max_delay_ms: 300,
                        jitter: 0.0,
                        ..RetryConfig::default()
                    },
                    ..RouteConfig::default()
                },
            );
        let group = config.consumer.group_id.clone();
        let service = InProcess::start(config, registry).await;

        let producer = Producer::connect(
            &testkit::kafka_config(&bootstrap),
            kafka_actors::config::Compression::None,
        )
        .await
        .unwrap();
        // One produce call: one record batch, fetched at once.
        let sent = Instant::now();
        for r in producer
            .send((0..N).map(|s| request(&t.requests, s, false)).collect())
            .await
        {
            r.unwrap();
        }

        let dead: BTreeSet<u64> = (0..N).filter(|s| failures(*s) == u32::MAX).collect();
        let want = (N as usize) - dead.len();
        let responses = read_all(&client, &t.responses, 1, want, Duration::from_secs(60)).await;
        let answered = seqs(&responses);
        let elapsed = sent.elapsed();
        // Every record but the two that never succeed, answered once, and
        // each key's answers in the key's order.
        assert_eq!(answered.len(), want, "{answered:?}");
        assert_eq!(
            answered.iter().copied().collect::<BTreeSet<_>>(),
            (0..N).filter(|s| !dead.contains(s)).collect::<BTreeSet<_>>()
        );
        in_key_order(&answered, false).unwrap();

        // The two that never succeed are dead-lettered after four calls.
        let dlq = format!("{}.dlq", t.requests);
        let letters = read_records(&client, &dlq, 1, 2, Duration::from_secs(30)).await;
        let mut lettered = BTreeSet::new();
        for (_, r) in &letters {
            assert_eq!(header(r, "dlq.attempts"), "4");
            assert_eq!(header(r, "dlq.error.kind"), "processing");
            let v: Value = serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
            lettered.insert(v["payload"]["seq"].as_u64().unwrap());
        }
        assert_eq!(lettered, dead);

        let calls = calls.lock().unwrap().clone();
        let order: Vec<u64> = calls.iter().map(|(s, _)| *s).collect();
        // Exactly the planned calls...
        for seq in 0..N {
            let want = failures(seq).min(3) + 1;
            let got = order.iter().filter(|s| **s == seq).count() as u32;
            assert_eq!(got, want, "calls of seq {seq}");
        }
        // ...and no record was called before the records of its key ahead
        // of it were finished (their calls are all before its first).
        in_key_order(&order, false).unwrap();
        // Other keys went on while seq 3 waited: seq 4 (another key) was
        // called between its first and second calls.
        let at = |seq: u64, nth: usize| {
            order
                .iter()
                .enumerate()
                .filter(|(_, s)| **s == seq)
                .nth(nth)
                .map(|(i, _)| i)
                .unwrap()
        };
        assert!(at(3, 0) < at(4, 0) && at(4, 0) < at(3, 1), "{order:?}");

        // The figure: when the keys that never failed were done, against
        // when the last key was.
        let clean_keys: BTreeSet<u64> = (0..KEYS)
            .filter(|k| (0..N).all(|s| key_of(s) != *k || failures(s) == 0))
            .collect();
        let clean_done = calls
            .iter()
            .filter(|(s, _)| clean_keys.contains(&key_of(*s)))
            .map(|(_, t)| *t)
            .max()
            .unwrap();
        let all_done = calls.iter().map(|(_, t)| *t).max().unwrap();
        eprintln!(
            "ordering = \"key\", {mode:?}: keys {clean_keys:?} (never failing) all handled {clean_done:?} after the start; \
             the failing keys finished after {all_done:?} (300 ms per retry); every answer in {elapsed:?}"
        );
        assert!(!clean_keys.is_empty());

        // Every metric the service exports after this traffic (retries,
        // parking, dead letters) is in the catalogue (docs/metrics.md,
        // checked against the same list).
        let http = service.http.clone();
        let (_, exported) = tokio::task::spawn_blocking(move || {
            crate::support::http_get(&http, "/metrics").unwrap()
        })
        .await
        .unwrap();
        let catalogue = kafka_actors::telemetry::metrics::ALL;
        let mut seen = BTreeSet::new();
        for line in exported.lines().filter(|l| l.starts_with("kafka_actors_")) {
            let series = line.split(['{', ' ']).next().unwrap();
            let metric = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| series.strip_suffix(s).filter(|b| catalogue.contains(b)))
                .unwrap_or(series);
            assert!(catalogue.contains(&metric), "{metric} is not in docs/metrics.md");
            seen.insert(metric.to_owned());
        }
        for expected in [
            "kafka_actors_handler_retries_total",
            "kafka_actors_partition_parked_records",
            "kafka_actors_producer_records_total",
        ] {
            assert!(seen.contains(expected), "{expected} not exported: {seen:?}");
        }
        if mode == RetryMode::Topic {
            // The failing records and the later records of their keys went
            // through the retry topic: each failing record once (its later
            // calls are in place there), and each record behind one once,
            // with no call made.
            let waited = read_records(&client, &retry, 1, usize::MAX, Duration::from_secs(2)).await;
            let mut first_failed = BTreeSet::new();
            let mut behind = BTreeSet::new();
            for (_, r) in &waited {
                let v: Value = serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
                let seq = v["payload"]["seq"].as_u64().unwrap();
                assert_eq!(header(r, "retry.original.partition"), "0");
                let fresh = match header(r, "retry.attempts").as_str() {
                    "1" => first_failed.insert(seq),
                    "0" => behind.insert(seq),
                    other => panic!("seq {seq} written to the retry topic after {other} calls"),
                };
                assert!(fresh, "seq {seq} written to the retry topic twice");
            }
            // A failing record went there when it failed, or before its
            // first call if an earlier record of its key was waiting.
            assert!(first_failed.iter().all(|s| failures(*s) > 0), "{first_failed:?}");
            let waited: BTreeSet<u64> = first_failed.union(&behind).copied().collect();
            for seq in (0..N).filter(|s| failures(*s) > 0) {
                assert!(waited.contains(&seq), "failing seq {seq} never went to the retry topic");
            }
            assert!(!behind.is_empty());
            // The retry partition's offsets are committed under the group:
            // every record there finished, so the committed offset reaches
            // its end (a restart would not read them again).
            let end = waited.len() as i64;
            crate::support::wait_committed(&bootstrap, &group, (&retry, 0), end).await;
            for seq in &behind {
                assert!(
                    (0..*seq).any(|e| key_of(e) == key_of(*seq) && failures(e) > 0),
                    "seq {seq} went behind its key with no earlier failure of that key"
                );
            }
        }
        service.stop().await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_records_are_parked_loses_none_and_keeps_key_order() {
    kill_9_while_parked(RetryMode::InPlace).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_records_wait_in_the_retry_topic_loses_none_and_keeps_key_order() {
    kill_9_while_parked(RetryMode::Topic).await;
}

// A figure for the session notes, printed with --nocapture.
#[allow(clippy::print_stderr)]
async fn kill_9_while_parked(mode: RetryMode) {
    bounded(async {
        let broker = TestBroker::start().await.unwrap();
        let bootstrap = broker.bootstrap().to_owned();
        let client = testkit::client(&bootstrap, Duration::from_secs(20))
            .await
            .unwrap();
        let t = topics(&client, 1).await;
        retry_topic(&client, &t.requests, mode).await;
        let dir = tempfile::tempdir().unwrap();
        let mode_line = match mode {
            RetryMode::Topic => "mode = \"topic\"\n",
            _ => "",
        };
        let path = crate::pipeline::write_config(
            &dir,
            &t,
            &format!(
                "handler = \"jq\"\n\
                 program = 'if .fail then error({{class: \"dependency\", message: \"inventory down\"}}) else {{seq}} end'\n\
                 ordering = \"key\"\n\
                 [routes.main.retry]\n{mode_line}strategy = \"fixed\"\n\
                 initial_delay_ms = 5000\nmax_delay_ms = 5000\nmax_attempts = 3\njitter = 0.0"
            ),
        );
        let (b, p) = (bootstrap.clone(), path.clone());
        let mut service = tokio::task::spawn_blocking(move || crate::pipeline::start(&b, &p))
            .await
            .unwrap();

        // 30 requests over six keys; seq 2 (k2) and 9 (k3) always fail,
        // so k2's and k3's later records park behind them.
        const N: u64 = 30;
        let failing = |seq: u64| seq == 2 || seq == 9;
        let behind = |seq: u64| {
            (0..seq).any(|earlier| failing(earlier) && key_of(earlier) == key_of(seq))
        };
        let producer = Producer::connect(
            &testkit::kafka_config(&bootstrap),
            kafka_actors::config::Compression::None,
        )
        .await
        .unwrap();
        // One record per batch: the restart resumes at a batch boundary
        // on every broker (Tansu answers a fetch from inside a batch with
        // the next batch; README).
        for seq in 0..N {
            for r in producer
                .send(vec![request(&t.requests, seq, failing(seq))])
                .await
            {
                r.unwrap();
            }
        }

        // Every record of the other keys is answered while the two failing
        // ones wait their 10 s; then crash.
        let free = (0..N).filter(|s| !failing(*s) && !behind(*s)).count();
        let before = read_all(&client, &t.responses, 1, free, Duration::from_secs(60)).await;
        tokio::task::spawn_blocking(move || service.kill())
            .await
            .unwrap();
        let before = seqs(&before);
        assert_eq!(
            before.iter().copied().collect::<BTreeSet<_>>(),
            (0..N)
                .filter(|s| !failing(*s) && !behind(*s))
                .collect::<BTreeSet<_>>(),
            "answered before the crash"
        );
        let dlq = format!("{}.dlq", t.requests);
        assert!(
            read_records(&client, &dlq, 1, 1, Duration::from_millis(200))
                .await
                .is_empty(),
            "a failing record was dead-lettered before the crash: the test did not crash while records were parked"
        );

        let (b, p) = (bootstrap.clone(), path.clone());
        let service = tokio::task::spawn_blocking(move || crate::pipeline::start(&b, &p))
            .await
            .unwrap();
        // Six more requests, one per key, after the restart: those of k2
        // and k3 must still wait behind the failing ones (with a retry
        // topic: the restarted service read which keys wait there).
        const MORE: u64 = 6;
        for seq in N..N + MORE {
            for r in producer.send(vec![request(&t.requests, seq, false)]).await {
                r.unwrap();
            }
        }
        // After the restart: every good record answered (those after the
        // committed offset twice: at least once), each key's first answers
        // in order, and the two failing ones dead-lettered after their
        // three calls.
        let good: BTreeSet<u64> = (0..N + MORE).filter(|s| !failing(*s)).collect();
        let deadline = Instant::now() + Duration::from_secs(90);
        let all = loop {
            let all = seqs(&read_all(&client, &t.responses, 1, usize::MAX, Duration::from_secs(1)).await);
            if all.iter().copied().collect::<BTreeSet<_>>() == good || Instant::now() > deadline {
                break all;
            }
        };
        assert_eq!(all.iter().copied().collect::<BTreeSet<_>>(), good);
        in_key_order(&all, true).unwrap();
        let letters = read_records(&client, &dlq, 1, 2, Duration::from_secs(60)).await;
        // Each failing seq's dead letters (a rebalance after the restart
        // may write one twice: at least once), with their offsets and
        // timestamps; the first one is when it was dead-lettered.
        let mut lettered: BTreeMap<u64, Vec<(i64, chrono::DateTime<chrono::Utc>)>> =
            BTreeMap::new();
        for (_, r) in &letters {
            assert_eq!(header(r, "dlq.attempts"), "3");
            let v: Value = serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
            lettered
                .entry(v["payload"]["seq"].as_u64().unwrap())
                .or_default()
                .push((r.offset, r.record.timestamp));
        }
        assert_eq!(
            lettered.keys().copied().collect::<BTreeSet<_>>(),
            (0..N).filter(|s| failing(*s)).collect::<BTreeSet<_>>()
        );
        // The records parked behind a failing one were answered only after
        // its dead letter was written.
        let stamps = read_records(&client, &t.responses, 1, all.len(), Duration::from_secs(10)).await;
        let answers: Vec<(u64, i64, chrono::DateTime<chrono::Utc>)> = stamps
            .iter()
            .map(|(_, r)| {
                let v: Value =
                    serde_json::from_slice(r.record.value.as_deref().unwrap()).unwrap();
                (v["payload"]["seq"].as_u64().unwrap(), r.offset, r.record.timestamp)
            })
            .collect();
        for &(seq, offset, at) in &answers {
            if behind(seq) {
                let ahead = (0..seq)
                    .find(|e| failing(*e) && key_of(*e) == key_of(seq))
                    .unwrap();
                let first = lettered[&ahead].iter().map(|(_, t)| *t).min().unwrap();
                assert!(
                    at >= first,
                    "seq {seq} answered (offset {offset}, {at}) before seq {ahead} was dead-lettered \
                     (letters {:?}); answers (seq, offset, time): {answers:?}",
                    lettered[&ahead]
                );
            }
        }
        eprintln!(
            "kill -9 with parked records ({mode:?}): {} answers before the crash, {} in all for {} good requests; {} dead letters",
            before.len(),
            all.len(),
            good.len(),
            letters.len()
        );
        drop(service);
    })
    .await;
}
