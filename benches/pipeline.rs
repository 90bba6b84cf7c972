//! End-to-end pipeline benchmark: the real `kafka-actors` binary with one
//! echo route (6 partitions, ~250-byte JSON requests, commits on), against
//! two ceilings measured in the same run on the same broker: the broker
//! ceiling (produce N, then fetch them back) and the relay ceiling (the
//! pipeline's own shape — requests in, fetched and produced again, read
//! back — done by a raw rskafka loop with no parsing, actors or commits).
//! The relay ceiling is the like-for-like one: the pipeline makes the broker
//! do twice the work of produce-then-fetch.
//!
//! ```sh
//! cargo bench --bench pipeline --features embedded-broker                      # embedded Tansu
//! KAFKA_ACTORS_TEST_BOOTSTRAP=127.0.0.1:9092 cargo bench --bench pipeline --features embedded-broker
//! ```
//!
//! Prints: both ceilings in records/s; pipeline throughput (N requests
//! produced into the running service → N replies read back) and its ratio to
//! each ceiling; latency p50/p99/p99.9 from request produce to reply consume
//! at a fixed rate, for the raw relay (the floor on this machine) and for the
//! service, with their ratio; the service's peak RSS; and the throughput
//! with one record in 11 not JSON (N/10 malformed among N good ones, every
//! good one answered and every bad one dead-lettered with its headers,
//! both checked) as a ratio to a clean pass just before it, in
//! `BENCH_MALFORMED_ROUNDS` rounds (default 3), with their median.
//! Environment: `BENCH_RECORDS` (default 100000), `BENCH_RATE` (default
//! 2000/s), `BENCH_SECONDS` (default 10), `BENCH_SERVICE_BIN` (another build
//! of the service to run, e.g. the static musl binary), `BENCH_DLQ_PARTITIONS`
//! (default 1), `BENCH_SERVICE_LOG` (the service's `RUST_LOG`, default
//! `warn`). No asserts: figures.

// A benchmark prints its figures and unwraps its set-up.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_actors::config::Compression;
use kafka_actors::producer::{OutRecord, Producer};
use kafka_actors::testkit::{self, TestBroker};
use rskafka::client::partition::{OffsetAt, PartitionClient};

const PARTITIONS: i32 = 6;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request(i: u64, sent_ns: u128) -> OutRecord {
    // ~250 bytes of JSON, as the targets specify.
    let value = format!(
        r#"{{"correlation_id":"c{i}","event_type":"bench","payload":{{"seq":{i},"sent_ns":{sent_ns},"pad":"{}"}}}}"#,
        "x".repeat(150)
    );
    OutRecord {
        topic: String::new(),
        key: Some(format!("k{}", i % 1000).into_bytes()),
        value: Some(value.into_bytes()),
        ..OutRecord::default()
    }
}

/// `n` good requests (sequence numbers from `first`) with a record that is
/// not JSON after every `every` of them, in batches of about 1000.
async fn produce_mixed(producer: &Producer, topic: &str, first: u64, n: u64, every: u64) {
    let mut batch = Vec::new();
    for i in 0..n {
        batch.push(OutRecord {
            topic: topic.to_owned(),
            ..request(first + i, 0)
        });
        if (i + 1) % every == 0 {
            batch.push(OutRecord {
                topic: topic.to_owned(),
                key: Some(format!("k{}", i % 1000).into_bytes()),
                value: Some(format!("not json #{i}").into_bytes()),
                ..OutRecord::default()
            });
        }
        if batch.len() >= 1000 || i + 1 == n {
            for r in producer.send(std::mem::take(&mut batch)).await {
                r.unwrap();
            }
        }
    }
}

async fn produce_all(producer: &Producer, topic: &str, n: u64) {
    produce_from(producer, topic, 0, n).await;
}

/// `n` good requests, sequence numbers from `first`, in batches of 1000.
async fn produce_from(producer: &Producer, topic: &str, first: u64, n: u64) {
    let (mut i, end) = (first, first + n);
    while i < end {
        let batch: Vec<OutRecord> = (i..(i + 1000).min(end))
            .map(|j| OutRecord {
                topic: topic.to_owned(),
                ..request(j, 0)
            })
            .collect();
        i += batch.len() as u64;
        for r in producer.send(batch).await {
            r.unwrap();
        }
    }
}

/// One partition client per partition, each on its own connection: a
/// broker answers one request per connection at a time, so readers sharing
/// a connection would wait on each other's long polls.
async fn clients(
    config: &kafka_actors::config::KafkaConfig,
    topic: &str,
) -> Vec<Arc<PartitionClient>> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        out.push(
            kafka_actors::consumer::partition::connect(config, topic, p)
                .await
                .unwrap(),
        );
    }
    out
}

/// Reads every partition from `starts` until `n` records arrived (or
/// `within` passed); calls `each` on every record as it arrives. Each
/// partition is read by its own loop, so an idle partition's long poll never
/// delays another's records.
async fn read_n(
    parts: &[Arc<PartitionClient>],
    starts: &[i64],
    n: u64,
    within: Duration,
    mut each: impl FnMut(&rskafka::record::Record),
) -> u64 {
    let deadline = Instant::now() + within;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<rskafka::record::Record>>();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut loops = Vec::new();
    for (pc, start) in parts.iter().zip(starts) {
        let (pc, tx, stop, mut next) = (Arc::clone(pc), tx.clone(), Arc::clone(&stop), *start);
        loops.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
                let (records, _) = pc.fetch_records(next, 1..4_000_000, 20).await.unwrap();
                let from = next;
                let values: Vec<rskafka::record::Record> = records
                    .into_iter()
                    .filter(|r| r.offset >= from)
                    .map(|r| {
                        next = r.offset + 1;
                        r.record
                    })
                    .collect();
                if !values.is_empty() && tx.send(values).is_err() {
                    return;
                }
            }
        }));
    }
    drop(tx);
    let mut seen = 0;
    while seen < n {
        let Ok(Some(values)) = tokio::time::timeout_at(deadline.into(), rx.recv()).await else {
            break;
        };
        for v in values {
            each(&v);
            seen += 1;
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for l in loops {
        let _ = l.await;
    }
    seen
}

/// The raw relay: per partition, fetch from `from` (a fresh topic, from
/// offset 0) and produce the same records to the same partition of `to`, with rskafka
/// alone: no parsing, no actors, no commits. Runs until `n` records were
/// relayed.
async fn relay(from: &[Arc<PartitionClient>], to: &[Arc<PartitionClient>], n: u64) {
    let done = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut loops = Vec::new();
    for (src, dst) in from.iter().zip(to) {
        let (src, dst, done) = (Arc::clone(src), Arc::clone(dst), Arc::clone(&done));
        loops.push(tokio::spawn(async move {
            // Both relays read fresh topics.
            let mut next = 0;
            while done.load(std::sync::atomic::Ordering::Relaxed) < n {
                let (records, _) = src.fetch_records(next, 1..1_048_576, 20).await.unwrap();
                let from = next;
                let batch: Vec<rskafka::record::Record> = records
                    .into_iter()
                    .filter(|r| r.offset >= from)
                    .map(|r| {
                        next = r.offset + 1;
                        r.record
                    })
                    .collect();
                if batch.is_empty() {
                    continue;
                }
                let count = batch.len() as u64;
                dst.produce(
                    batch,
                    rskafka::client::partition::Compression::NoCompression,
                )
                .await
                .unwrap();
                done.fetch_add(count, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    for l in loops {
        l.await.unwrap();
    }
}

/// Sends `rate` requests/s for `seconds` to `topic` (sequence numbers from
/// `first`), reads the replies from `out`, and returns each request's
/// round trip in ms, sorted.
async fn latencies(
    config: &kafka_actors::config::KafkaConfig,
    topic: &str,
    out: &[Arc<PartitionClient>],
    first: u64,
    rate: u64,
    seconds: u64,
) -> Vec<f64> {
    let starts = ends(out).await;
    let total = rate * seconds;
    let epoch = Instant::now();
    let sender = {
        let producer = Producer::connect(config, Compression::None).await.unwrap();
        let topic = topic.to_owned();
        tokio::spawn(async move {
            let tick = Duration::from_millis(5);
            let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0) as u64;
            let mut sent = 0u64;
            let mut interval = tokio::time::interval(tick);
            while sent < total {
                interval.tick().await;
                let batch: Vec<OutRecord> = (sent..(sent + per_tick).min(total))
                    .map(|i| OutRecord {
                        topic: topic.clone(),
                        ..request(first + i, epoch.elapsed().as_nanos())
                    })
                    .collect();
                sent += batch.len() as u64;
                for r in producer.send(batch).await {
                    r.unwrap();
                }
            }
        })
    };
    let mut out_ms = Vec::with_capacity(total as usize);
    let mut seen: HashMap<u64, ()> = HashMap::new();
    read_n(
        out,
        &starts,
        total,
        Duration::from_secs(seconds + 60),
        |r| {
            let now = epoch.elapsed().as_nanos();
            let v = r.value.as_deref().unwrap_or_default();
            if let Ok(json) = serde_json::from_slice::<serde_json::Value>(v) {
                let sent = json["payload"]["sent_ns"].as_u64().unwrap_or(0) as u128;
                let seq = json["payload"]["seq"].as_u64().unwrap_or(0);
                if seen.insert(seq, ()).is_none() {
                    out_ms.push((now.saturating_sub(sent)) as f64 / 1e6);
                }
            }
        },
    )
    .await;
    sender.await.unwrap();
    out_ms.sort_by(|a, b| a.total_cmp(b));
    out_ms
}

/// Each partition's high watermark, from a Fetch response (Tansu's
/// ListOffsets(latest) is the last batch's base offset + 1, FINDINGS.md).
async fn ends(parts: &[Arc<PartitionClient>]) -> Vec<i64> {
    let mut out = Vec::new();
    for pc in parts {
        let latest = pc.get_offset(OffsetAt::Latest).await.unwrap();
        let (_, high_watermark) = pc.fetch_records(latest, 1..1_000_000, 0).await.unwrap();
        out.push(high_watermark);
    }
    out
}

/// One pass through the running service: `n` requests (sequence numbers
/// from `first`), with `bad` of them not JSON (one after every ten good
/// ones) when set; reads every reply and dead letter.
struct Pass {
    /// Records handled (answered or dead-lettered) per second.
    per_second: f64,
    /// Every good request was answered.
    all_answered: bool,
    /// Dead letters read, and those with the expected headers.
    dead: u64,
    dead_ok: u64,
}

async fn pass(
    config: &kafka_actors::config::KafkaConfig,
    req: &str,
    resp_parts: &[Arc<PartitionClient>],
    dlq_parts: &[Arc<PartitionClient>],
    first: u64,
    n: u64,
    bad: Option<u64>,
) -> Pass {
    let starts = ends(resp_parts).await;
    let dlq_starts = ends(dlq_parts).await;
    let t = Instant::now();
    let requests = {
        let producer = Producer::connect(config, Compression::None).await.unwrap();
        let req = req.to_owned();
        tokio::spawn(async move {
            if bad.is_some() {
                produce_mixed(&producer, &req, first, n, 10).await;
            } else {
                produce_from(&producer, &req, first, n).await;
            }
        })
    };
    let mut answered = std::collections::HashSet::new();
    let got = read_n(resp_parts, &starts, n, Duration::from_secs(300), |r| {
        let v: serde_json::Value =
            serde_json::from_slice(r.value.as_deref().unwrap_or_default()).unwrap_or_default();
        if let Some(seq) = v["payload"]["seq"].as_u64() {
            answered.insert(seq);
        }
    })
    .await;
    let (mut dead, mut dead_ok) = (0, 0u64);
    if let Some(bad) = bad {
        dead = read_n(dlq_parts, &dlq_starts, bad, Duration::from_secs(120), |r| {
            let h = |name: &str| {
                r.headers
                    .get(name)
                    .map(|v| String::from_utf8_lossy(v).into_owned())
            };
            let value =
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned();
            if h("dlq.error.kind").as_deref() == Some("deserialization")
                && h("dlq.original.topic").as_deref() == Some(req)
                && h("dlq.original.offset").is_some()
                && h("dlq.attempts").as_deref() == Some("0")
                && value.starts_with("not json #")
            {
                dead_ok += 1;
            }
        })
        .await;
    }
    let elapsed = t.elapsed().as_secs_f64();
    requests.await.unwrap();
    Pass {
        per_second: (got + dead) as f64 / elapsed,
        all_answered: (first..first + n).all(|seq| answered.contains(&seq)),
        dead,
        dead_ok,
    }
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

fn start_service(
    bootstrap: &str,
    config: &std::path::Path,
    http: &str,
    log: &std::path::Path,
) -> Child {
    // BENCH_SERVICE_BIN runs another build of the service (the static musl
    // binary, for the musl-versus-glibc comparison).
    let bin = std::env::var("BENCH_SERVICE_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_kafka-actors").to_owned());
    println!("service binary: {bin}");
    Command::new(bin)
        .args(["--config", &config.to_string_lossy(), "run"])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_ACTORS_HTTP__BIND", http)
        .env(
            "RUST_LOG",
            std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".to_owned()),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_ready(http: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if let Ok(mut s) = std::net::TcpStream::connect(http) {
            use std::io::{Read, Write};
            let _ = s.write_all(b"GET /health/ready HTTP/1.0\r\n\r\n");
            let mut buf = String::new();
            let _ = s.read_to_string(&mut buf);
            if buf.starts_with("HTTP/1.1 200") || buf.starts_with("HTTP/1.0 200") {
                return;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("service not ready");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[(((sorted.len() - 1) as f64) * p).round() as usize]
}

fn main() {
    let n = env_or("BENCH_RECORDS", 100_000);
    let rate = env_or("BENCH_RATE", 2_000);
    let seconds = env_or("BENCH_SECONDS", 10);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let broker = TestBroker::start().await.unwrap();
        let kind = if broker.is_external() { "external broker" } else { "embedded Tansu" };
        let client = testkit::client(broker.bootstrap(), Duration::from_secs(30)).await.unwrap();
        let config = testkit::kafka_config(broker.bootstrap());
        let producer = Producer::connect(&config, Compression::None).await.unwrap();
        println!(
            "pipeline bench: {kind} at {}, {PARTITIONS} partitions, {n} records of ~250 bytes",
            broker.bootstrap()
        );

        // Broker ceiling: produce N, then fetch N back.
        let raw = testkit::unique_name("bench-raw");
        testkit::create_topics(&client, &[raw.as_str()], PARTITIONS, 1).await.unwrap();
        let raw_parts = clients(&config, &raw).await;
        let t = Instant::now();
        produce_all(&producer, &raw, n).await;
        let read = read_n(&raw_parts, &[0; PARTITIONS as usize], n, Duration::from_secs(300), |_| {}).await;
        let broker_ceiling = read as f64 / t.elapsed().as_secs_f64();
        println!("broker ceiling (produce {n}, then fetch them)     {broker_ceiling:>10.0} records/s");

        // Relay ceiling: the pipeline's shape with no processing: produce N
        // requests, a raw rskafka loop fetches and re-produces them, read N.
        let relayed = testkit::unique_name("bench-relay");
        testkit::create_topics(&client, &[relayed.as_str()], PARTITIONS, 1).await.unwrap();
        let relay_parts = clients(&config, &relayed).await;
        let raw_in = testkit::unique_name("bench-relay-in");
        testkit::create_topics(&client, &[raw_in.as_str()], PARTITIONS, 1).await.unwrap();
        let raw_in_parts = clients(&config, &raw_in).await;
        let t = Instant::now();
        let feed = {
            let producer = Producer::connect(&config, Compression::None).await.unwrap();
            let raw_in = raw_in.clone();
            tokio::spawn(async move { produce_all(&producer, &raw_in, n).await })
        };
        // The relay produces over connections of its own (not the readers').
        let relay_out = clients(&config, &relayed).await;
        let relaying = {
            let (from, to) = (raw_in_parts.clone(), relay_out.clone());
            tokio::spawn(async move { relay(&from, &to, n).await })
        };
        let read = read_n(&relay_parts, &[0; PARTITIONS as usize], n, Duration::from_secs(300), |_| {}).await;
        let ceiling = read as f64 / t.elapsed().as_secs_f64();
        feed.await.unwrap();
        relaying.await.unwrap();
        println!("relay ceiling (produce -> raw fetch+produce -> read) {ceiling:>8.0} records/s");

        // Pipeline: N requests in -> N replies out, commits on, with the
        // service already running (start-up is not part of the figure).
        let req = testkit::unique_name("bench-req");
        let resp = testkit::unique_name("bench-resp");
        let dlq = format!("{req}.dlq");
        testkit::create_topics(&client, &[req.as_str(), resp.as_str()], PARTITIONS, 1).await.unwrap();
        let dlq_partitions = env_or("BENCH_DLQ_PARTITIONS", 1) as i32;
        testkit::create_topics(&client, &[dlq.as_str()], dlq_partitions, 1).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.toml");
        // Defaults everywhere but the codec: the ceiling produces uncompressed.
        std::fs::write(
            &path,
            format!(
                "[consumer]\ngroup_id = \"{}\"\n\
                 session_timeout_ms = 6000\nheartbeat_interval_ms = 1000\n\
                 [producer]\ncompression_type = \"none\"\n\
                 [routes.bench]\ntopic = \"{req}\"\nhandler = \"echo\"\nreply_topic = \"{resp}\"\n",
                testkit::unique_name("bench-group")
            ),
        )
        .unwrap();
        let resp_parts = clients(&config, &resp).await;
        let http = format!(
            "127.0.0.1:{}",
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        );
        let log = dir.path().join("service.log");
        let mut service = start_service(broker.bootstrap(), &path, &http, &log);
        let pid = service.id();
        tokio::task::spawn_blocking({
            let http = http.clone();
            move || wait_ready(&http)
        })
        .await
        .unwrap();
        let t = Instant::now();
        let requests = {
            let producer = Producer::connect(&config, Compression::None).await.unwrap();
            let req = req.clone();
            tokio::spawn(async move { produce_all(&producer, &req, n).await })
        };
        let got = read_n(&resp_parts, &[0; PARTITIONS as usize], n, Duration::from_secs(300), |_| {}).await;
        let elapsed = t.elapsed().as_secs_f64();
        requests.await.unwrap();
        let throughput = got as f64 / elapsed;
        println!(
            "pipeline ({n} requests in -> {got} replies out)   {throughput:>10.0} records/s = {:.2} x relay ceiling, {:.2} x broker ceiling",
            throughput / ceiling,
            throughput / broker_ceiling
        );

        // The same again with one record in 11 not JSON (N/10 among N good
        // ones): every good one answered, every bad one dead-lettered with
        // its headers. The figure is records handled per second against a
        // clean pass just before it, in rounds (clean, then mixed), and the
        // median of the rounds' ratios: one pass lasts about a second, so a
        // single pair is at the mercy of the machine's noise.
        let bad = n / 10;
        let mut dlq_parts = Vec::new();
        for p in 0..dlq_partitions {
            dlq_parts.push(kafka_actors::consumer::partition::connect(&config, &dlq, p).await.unwrap());
        }
        let rounds = env_or("BENCH_MALFORMED_ROUNDS", 3).max(1);
        let mut ratios = Vec::new();
        let (mut all_answered, mut dead_ok, mut dead_total) = (true, 0u64, 0u64);
        for round in 0..rounds {
            let base = n * (1 + 2 * round);
            let clean = pass(&config, &req, &resp_parts, &dlq_parts, base, n, None).await;
            let mixed = pass(&config, &req, &resp_parts, &dlq_parts, base + n, n, Some(bad)).await;
            all_answered &= clean.all_answered && mixed.all_answered;
            dead_ok += mixed.dead_ok;
            dead_total += mixed.dead;
            let ratio = mixed.per_second / clean.per_second;
            println!(
                "  round {}: clean {:>10.0} records/s, with malformed {:>10.0} records/s = {ratio:.2} x",
                round + 1,
                clean.per_second,
                mixed.per_second
            );
            ratios.push(ratio);
        }
        ratios.sort_by(f64::total_cmp);
        println!(
            "pipeline with malformed records ({n} good + {bad} not JSON in per pass, DLQ of {dlq_partitions} partition(s)): median {:.2} x the clean pass before it over {rounds} round(s)",
            ratios[ratios.len() / 2]
        );
        println!(
            "  checked: every good request answered: {all_answered}; dead letters: {dead_total}, with correct headers: {dead_ok} of {}",
            bad * rounds
        );

        // Latency at a fixed rate, request produce -> reply consume: the
        // raw relay first (the floor on this machine), then the service.
        let total = rate * seconds;
        let lat_in = testkit::unique_name("bench-lat-in");
        let lat_out = testkit::unique_name("bench-lat-out");
        testkit::create_topics(&client, &[lat_in.as_str(), lat_out.as_str()], PARTITIONS, 1).await.unwrap();
        let lat_in_parts = clients(&config, &lat_in).await;
        let lat_out_parts = clients(&config, &lat_out).await;
        let relay_out = clients(&config, &lat_out).await;
        let relaying = {
            let (from, to) = (lat_in_parts.clone(), relay_out.clone());
            tokio::spawn(async move { relay(&from, &to, total).await })
        };
        let floor = latencies(&config, &lat_in, &lat_out_parts, 0, rate, seconds).await;
        relaying.await.unwrap();
        let service_lat = latencies(&config, &req, &resp_parts, 2 * n, rate, seconds).await;
        for (what, l) in [("raw relay", &floor), ("pipeline ", &service_lat)] {
            println!(
                "latency {what} at {rate}/s for {seconds}s ({} replies): p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
                l.len(),
                percentile(l, 0.5),
                percentile(l, 0.99),
                percentile(l, 0.999)
            );
        }
        println!(
            "latency pipeline / raw relay: p50 {:.2} x  p99 {:.2} x",
            percentile(&service_lat, 0.5) / percentile(&floor, 0.5),
            percentile(&service_lat, 0.99) / percentile(&floor, 0.99)
        );
        match peak_rss_kib(pid) {
            Some(kib) => println!("service peak RSS: {:.1} MiB", kib as f64 / 1024.0),
            None => println!("service peak RSS: unavailable"),
        }
        let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
        let _ = service.wait();
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        let warnings = log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).count();
        println!("service log: {warnings} warning/error lines");
        for line in log.lines().filter(|l| l.contains("WARN") || l.contains("ERROR")).take(5) {
            println!("  {line}");
        }
    });
}
