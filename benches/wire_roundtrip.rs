//! Round-trip latency of one small request (Metadata for no topics) over
//! `kafka_actors::kafka::BrokerConnection` (one write per frame,
//! TCP_NODELAY) against a baseline in the same run: the same frames written
//! the way rskafka 0.6 writes them (4-byte length, then the body, in two
//! writes on a socket with Nagle's algorithm on). FINDINGS.md measured that
//! pattern stalling ~40 ms per request against delayed ACKs.
//!
//! ```sh
//! cargo bench --bench wire_roundtrip --features embedded-broker
//! KAFKA_ACTORS_TEST_BOOTSTRAP=127.0.0.1:9092 cargo bench --bench wire_roundtrip --features embedded-broker
//! ```
//!
//! Also one-record produce batches and single-record fetches through
//! rskafka, whose sockets get TCP_NODELAY from the vendored patch
//! (vendor/rskafka/PATCHED.md): small batches must not pay the stall.
//!
//! Prints p50/p99 per request and the ratio baseline / ours. No asserts:
//! figures, not pass/fail.

// A benchmark prints its figures.
#![allow(clippy::print_stdout)]

use std::time::{Duration, Instant};

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_actors::kafka::BrokerConnection;
use kafka_actors::testkit::{self, TestBroker};
use kafka_protocol::messages::{MetadataRequest, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROUNDS: usize = 200;
const WARMUP: usize = 20;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn request() -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(Vec::new()))
        .with_allow_auto_topic_creation(false)
}

async fn ours(bootstrap: &str, version: &mut i16) -> anyhow::Result<Vec<Duration>> {
    let mut conn = BrokerConnection::connect(
        bootstrap,
        "bench",
        Duration::from_secs(5),
        Duration::from_secs(5),
    )
    .await?;
    *version = conn.version_for::<MetadataRequest>()?;
    let req = request();
    let mut times = Vec::with_capacity(ROUNDS);
    for i in 0..WARMUP + ROUNDS {
        let t = Instant::now();
        conn.send_version(&req, *version).await?;
        if i >= WARMUP {
            times.push(t.elapsed());
        }
    }
    Ok(times)
}

/// rskafka's framing: length and body as two writes, Nagle on.
async fn baseline(bootstrap: &str, version: i16) -> anyhow::Result<Vec<Duration>> {
    let mut stream = TcpStream::connect(bootstrap).await?;
    stream.set_nodelay(false)?;
    let req = request();
    let mut times = Vec::with_capacity(ROUNDS);
    for i in 0..WARMUP + ROUNDS {
        let correlation_id = i as i32;
        let mut body = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(MetadataRequest::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("bench")))
            .encode(&mut body, MetadataRequest::header_version(version))?;
        req.encode(&mut body, version)?;
        let mut len = BytesMut::new();
        len.put_u32(u32::try_from(body.len())?);

        let t = Instant::now();
        stream.write_all(&len).await?;
        stream.write_all(&body).await?;
        let n = stream.read_u32().await? as usize;
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).await?;
        let mut buf = Bytes::from(buf);
        let header = ResponseHeader::decode(
            &mut buf,
            <MetadataRequest as Request>::Response::header_version(version),
        )?;
        anyhow::ensure!(
            header.correlation_id == correlation_id,
            "correlation mismatch"
        );
        let _ = <MetadataRequest as Request>::Response::decode(&mut buf, version)?;
        anyhow::ensure!(
            !buf.has_remaining() || buf.remaining() < 64,
            "unexpected trailing bytes"
        );
        if i >= WARMUP {
            times.push(t.elapsed());
        }
    }
    Ok(times)
}

/// One-record produce batches through rskafka (patched for TCP_NODELAY,
/// vendor/rskafka/PATCHED.md), then single fetches of those records.
async fn rskafka_small_batches(bootstrap: &str) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    use rskafka::client::partition::{Compression, UnknownTopicHandling};
    use rskafka::record::Record;

    let client = testkit::client(bootstrap, Duration::from_secs(20)).await?;
    let topic = testkit::unique_name("bench-wire");
    testkit::create_topics(&client, &[topic.as_str()], 1, 1).await?;
    let pc = client
        .partition_client(topic.as_str(), 0, UnknownTopicHandling::Retry)
        .await?;
    let mut produce = Vec::with_capacity(ROUNDS);
    let mut offsets = Vec::with_capacity(ROUNDS);
    for i in 0..WARMUP + ROUNDS {
        let record = Record {
            key: Some(format!("k{i}").into_bytes()),
            value: Some(vec![b'x'; 250]),
            headers: Default::default(),
            timestamp: chrono::Utc::now(),
        };
        let t = Instant::now();
        let written = pc.produce(vec![record], Compression::NoCompression).await?;
        if i >= WARMUP {
            produce.push(t.elapsed());
            offsets.extend(written);
        }
    }
    let mut fetch = Vec::with_capacity(ROUNDS);
    for offset in offsets {
        let t = Instant::now();
        let (records, _) = pc.fetch_records(offset, 1..300, 0).await?;
        anyhow::ensure!(!records.is_empty(), "no record at offset {offset}");
        fetch.push(t.elapsed());
    }
    Ok((produce, fetch))
}

fn summary(name: &str, times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    let p50 = percentile(times, 0.5);
    let p99 = percentile(times, 0.99);
    let total: Duration = times.iter().sum();
    println!(
        "{name:<44} p50 {:>9.3} ms   p99 {:>9.3} ms   {:>8.0} req/s",
        p50.as_secs_f64() * 1e3,
        p99.as_secs_f64() * 1e3,
        times.len() as f64 / total.as_secs_f64()
    );
    p50
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let broker = TestBroker::start().await?;
        let kind = if broker.is_external() {
            "external broker"
        } else {
            "embedded Tansu"
        };
        println!(
            "wire_roundtrip: {ROUNDS} Metadata round trips each, {kind} at {}",
            broker.bootstrap()
        );
        let mut version = 0;
        let mut a = ours(broker.bootstrap(), &mut version).await?;
        let mut b = baseline(broker.bootstrap(), version).await?;
        let (mut produce, mut fetch) = rskafka_small_batches(broker.bootstrap()).await?;
        let base_p50 = summary("baseline: Metadata, 2 writes, Nagle on", &mut b);
        let ours_p50 = summary("BrokerConnection Metadata (TCP_NODELAY)", &mut a);
        let produce_p50 = summary("rskafka produce, 1 record (patched)", &mut produce);
        let fetch_p50 = summary("rskafka fetch, 1 record (patched)", &mut fetch);
        for (name, p50) in [
            ("BrokerConnection Metadata", ours_p50),
            ("rskafka produce", produce_p50),
            ("rskafka fetch", fetch_p50),
        ] {
            println!(
                "baseline p50 / {name} p50: {:.1}x",
                base_p50.as_secs_f64() / p50.as_secs_f64()
            );
        }
        anyhow::Ok(())
    })
}
