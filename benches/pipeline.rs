//! End-to-end pipeline benchmark: the real `kafka-actors` binary with one
//! echo route (6 partitions, ~250-byte JSON requests, commits on), against
//! a ceiling measured in the same run on the same broker: raw produce, then
//! fetch back, with no processing.
//!
//! ```sh
//! cargo bench --bench pipeline --features embedded-broker                      # embedded Tansu
//! KAFKA_ACTORS_TEST_BOOTSTRAP=127.0.0.1:9092 cargo bench --bench pipeline --features embedded-broker
//! ```
//!
//! Prints: ceiling records/s; pipeline throughput (backlog of N requests →
//! N replies) and its ratio to the ceiling; latency p50/p99/p99.9 from
//! request produce to reply consume at a fixed rate; the service's peak RSS.
//! Environment: `BENCH_RECORDS` (default 50000), `BENCH_RATE` (default
//! 2000/s), `BENCH_SECONDS` (default 10). No asserts: figures.

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

async fn produce_all(producer: &Producer, topic: &str, n: u64) {
    let mut i = 0;
    while i < n {
        let batch: Vec<OutRecord> = (i..(i + 1000).min(n))
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

async fn clients(producer: &Producer, topic: &str) -> Vec<Arc<PartitionClient>> {
    let mut out = Vec::new();
    for p in 0..PARTITIONS {
        out.push(producer.partition_client(topic, p).await.unwrap());
    }
    out
}

/// Reads every partition from its current start until `n` records arrived
/// (or `within` passed); calls `each` on every record value.
async fn read_n(
    parts: &[Arc<PartitionClient>],
    starts: &[i64],
    n: u64,
    within: Duration,
    mut each: impl FnMut(&[u8]),
) -> u64 {
    let deadline = Instant::now() + within;
    let mut next = starts.to_vec();
    let mut seen = 0;
    while seen < n && Instant::now() < deadline {
        let fetches = parts
            .iter()
            .zip(&next)
            .map(|(pc, o)| pc.fetch_records(*o, 1..4_000_000, 20));
        let results = futures_util::future::join_all(fetches).await;
        for (i, r) in results.into_iter().enumerate() {
            let (records, _) = r.unwrap();
            let from = next[i];
            for rec in records.into_iter().filter(|r| r.offset >= from) {
                next[i] = rec.offset + 1;
                if let Some(v) = &rec.record.value {
                    each(v);
                }
                seen += 1;
            }
        }
    }
    seen
}

async fn ends(parts: &[Arc<PartitionClient>]) -> Vec<i64> {
    let mut out = Vec::new();
    for pc in parts {
        out.push(pc.get_offset(OffsetAt::Latest).await.unwrap());
    }
    out
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
    Command::new(env!("CARGO_BIN_EXE_kafka-actors"))
        .args(["--config", &config.to_string_lossy(), "run"])
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
        .env("KAFKA_ACTORS_HTTP__BIND", http)
        .env("RUST_LOG", "warn")
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
    let n = env_or("BENCH_RECORDS", 50_000);
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

        // Ceiling: produce N, fetch N back, no processing.
        let raw = testkit::unique_name("bench-raw");
        testkit::create_topics(&client, &[raw.as_str()], PARTITIONS, 1).await.unwrap();
        let raw_parts = clients(&producer, &raw).await;
        let t = Instant::now();
        produce_all(&producer, &raw, n).await;
        let read = read_n(&raw_parts, &[0; PARTITIONS as usize], n, Duration::from_secs(300), |_| {}).await;
        let ceiling = read as f64 / t.elapsed().as_secs_f64();
        println!("ceiling (produce {n} then fetch them back)      {ceiling:>10.0} records/s");

        // Pipeline: a backlog of N requests -> N replies, commits on.
        let req = testkit::unique_name("bench-req");
        let resp = testkit::unique_name("bench-resp");
        let dlq = format!("{req}.dlq");
        testkit::create_topics(&client, &[req.as_str(), resp.as_str()], PARTITIONS, 1).await.unwrap();
        testkit::create_topics(&client, &[dlq.as_str()], 1, 1).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bench.toml");
        std::fs::write(
            &path,
            format!(
                "[consumer]\ngroup_id = \"{}\"\nfetch_max_wait_ms = 20\nmax_poll_records = 2000\n\
                 [producer]\ncompression_type = \"none\"\n\
                 [routes.bench]\ntopic = \"{req}\"\nhandler = \"echo\"\nreply_topic = \"{resp}\"\n",
                testkit::unique_name("bench-group")
            ),
        )
        .unwrap();
        produce_all(&producer, &req, n).await;
        let resp_parts = clients(&producer, &resp).await;
        let http = format!(
            "127.0.0.1:{}",
            std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
        );
        let t = Instant::now();
        let log = dir.path().join("service.log");
        let mut service = start_service(broker.bootstrap(), &path, &http, &log);
        let pid = service.id();
        let got = read_n(&resp_parts, &[0; PARTITIONS as usize], n, Duration::from_secs(300), |_| {}).await;
        let elapsed = t.elapsed().as_secs_f64();
        let throughput = got as f64 / elapsed;
        println!(
            "pipeline (backlog {n} -> {got} replies, incl. start-up) {throughput:>10.0} records/s = {:.2} x ceiling",
            throughput / ceiling
        );

        // Latency at a fixed rate, request produce -> reply consume.
        tokio::task::spawn_blocking({
            let http = http.clone();
            move || wait_ready(&http)
        })
        .await
        .unwrap();
        let starts = ends(&resp_parts).await;
        let total = rate * seconds;
        let epoch = Instant::now();
        let sender = {
            let producer = Producer::connect(&config, Compression::None).await.unwrap();
            let req = req.clone();
            tokio::spawn(async move {
                let tick = Duration::from_millis(5);
                let per_tick = (rate as f64 * tick.as_secs_f64()).max(1.0) as u64;
                let mut sent = 0u64;
                let mut interval = tokio::time::interval(tick);
                while sent < total {
                    interval.tick().await;
                    let batch: Vec<OutRecord> = (sent..(sent + per_tick).min(total))
                        .map(|i| OutRecord {
                            topic: req.clone(),
                            ..request(n + i, epoch.elapsed().as_nanos())
                        })
                        .collect();
                    sent += batch.len() as u64;
                    for r in producer.send(batch).await {
                        r.unwrap();
                    }
                }
            })
        };
        let mut latencies = Vec::with_capacity(total as usize);
        let mut seen: HashMap<u64, ()> = HashMap::new();
        read_n(&resp_parts, &starts, total, Duration::from_secs(seconds + 60), |v| {
            let now = epoch.elapsed().as_nanos();
            if let Ok(json) = serde_json::from_slice::<serde_json::Value>(v) {
                let sent = json["payload"]["sent_ns"].as_u64().unwrap_or(0) as u128;
                let seq = json["payload"]["seq"].as_u64().unwrap_or(0);
                if seen.insert(seq, ()).is_none() {
                    latencies.push((now.saturating_sub(sent)) as f64 / 1e6);
                }
            }
        })
        .await;
        sender.await.unwrap();
        latencies.sort_by(|a, b| a.total_cmp(b));
        println!(
            "latency at {rate}/s for {seconds}s ({} replies): p50 {:.2} ms  p99 {:.2} ms  p99.9 {:.2} ms",
            latencies.len(),
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            percentile(&latencies, 0.999)
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
