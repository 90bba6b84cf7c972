//! The quickstart's demo load (`kafka-actors run --demo-rate N`): sends `N`
//! enveloped requests per second to the input topic of the first route that
//! has a reply topic, reads that reply topic, and logs every five seconds
//! what went out, what came back and how long the round trips took, with
//! one reply as an example. The service's own metrics move with it.
//!
//! It is a client of the service like any other (its own producer and
//! fetches), so what it shows is what a user of the service would see.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rskafka::client::partition::OffsetAt;
use serde_json::json;
use tokio::sync::Mutex;

use crate::config::Config;
use crate::producer::{OutRecord, Producer};

/// Why the demo cannot run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// No route replies anywhere.
    #[error(
        "--demo-rate needs a route with a reply_topic to send requests to (config/quickstart.toml has one)"
    )]
    NoRoute,
    /// Kafka refused.
    #[error("demo load: {0}")]
    Kafka(String),
}

/// Where the demo sends and reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The route's name.
    pub route: String,
    /// Its input topic (Kafka name).
    pub topic: String,
    /// Its event type filter, if any (the requests carry it).
    pub event_type: Option<String>,
    /// Its reply topic.
    pub reply_topic: String,
}

/// The first route (by name) with a reply topic.
pub fn target(config: &Config) -> Result<Target, DemoError> {
    config
        .routes
        .iter()
        .find_map(|(name, route)| {
            let reply_topic = config.topic_name(route.reply_topic.as_deref()?);
            let topic = config.topic_name(&route.topic);
            Some(Target {
                route: name.clone(),
                topic,
                event_type: route.event_type.clone(),
                reply_topic,
            })
        })
        .ok_or(DemoError::NoRoute)
}

#[derive(Default)]
struct Window {
    sent: u64,
    received: u64,
    latencies_ms: Vec<f64>,
    example: Option<String>,
}

/// Runs the demo load until `stop` is set. Logs a summary every 5 s.
pub async fn run(config: &Config, rate: u32, stop: Arc<AtomicBool>) -> Result<(), DemoError> {
    let target = target(config)?;
    let producer = Arc::new(
        Producer::connect(&config.kafka, crate::config::Compression::None)
            .await
            .map_err(|e| DemoError::Kafka(e.to_string()))?,
    );
    let partitions = producer
        .partitions(&target.reply_topic)
        .await
        .map_err(|e| DemoError::Kafka(e.to_string()))?;
    let epoch = Instant::now();
    let window = Arc::new(Mutex::new(Window::default()));
    let sent_at: Arc<Mutex<HashMap<String, Duration>>> = Arc::default();
    tracing::info!(
        rate, route = %target.route, topic = %target.topic, reply_topic = %target.reply_topic,
        "demo load started"
    );

    // Readers: one per reply partition, from its end.
    for p in 0..partitions {
        let pc = crate::consumer::partition::connect(&config.kafka, &target.reply_topic, p)
            .await
            .map_err(|e| DemoError::Kafka(format!("{}/{p}: {e}", target.reply_topic)))?;
        let (window, sent_at, stop) =
            (Arc::clone(&window), Arc::clone(&sent_at), Arc::clone(&stop));
        actix_rt::spawn(async move {
            let Ok(mut next) = pc.get_offset(OffsetAt::Latest).await else {
                return;
            };
            while !stop.load(Ordering::Relaxed) {
                let Ok((records, _)) = pc.fetch_records(next, 1..1_048_576, 50).await else {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                };
                let now = epoch.elapsed();
                let from = next;
                for r in records.into_iter().filter(|r| r.offset >= from) {
                    next = r.offset + 1;
                    let Some(value) = r.record.value else {
                        continue;
                    };
                    let id = serde_json::from_slice::<serde_json::Value>(&value)
                        .ok()
                        .and_then(|v| v["correlation_id"].as_str().map(str::to_owned));
                    let sent = match id {
                        Some(id) => sent_at.lock().await.remove(&id),
                        None => None,
                    };
                    let mut w = window.lock().await;
                    w.received += 1;
                    if let Some(sent) = sent {
                        w.latencies_ms
                            .push(now.saturating_sub(sent).as_secs_f64() * 1e3);
                    }
                    if w.example.is_none() {
                        w.example = Some(String::from_utf8_lossy(&value).into_owned());
                    }
                }
            }
        });
    }

    // Reporter.
    {
        let (window, stop) = (Arc::clone(&window), Arc::clone(&stop));
        actix_rt::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                let mut w = std::mem::take(&mut *window.lock().await);
                w.latencies_ms.sort_by(f64::total_cmp);
                let pct = |p: f64| {
                    w.latencies_ms
                        .get(((w.latencies_ms.len().saturating_sub(1)) as f64 * p) as usize)
                        .copied()
                        .unwrap_or(f64::NAN)
                };
                tracing::info!(
                    sent = w.sent,
                    replies = w.received,
                    p50_ms = format!("{:.1}", pct(0.5)),
                    p99_ms = format!("{:.1}", pct(0.99)),
                    example = w.example.as_deref().unwrap_or("-"),
                    "demo: last 5 s"
                );
            }
        });
    }

    // Sender: every 100 ms, a tenth of the rate.
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mut seq: u64 = 0;
    let mut carry = 0.0;
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        carry += f64::from(rate) / 10.0;
        let n = carry as u64;
        carry -= n as f64;
        let mut batch = Vec::with_capacity(n as usize);
        let now = epoch.elapsed();
        let mut ids = sent_at.lock().await;
        for _ in 0..n {
            seq += 1;
            let id = format!("demo-{seq}");
            ids.insert(id.clone(), now);
            batch.push(OutRecord {
                topic: target.topic.clone(),
                key: Some(format!("user-{}", seq % 100).into_bytes()),
                value: Some(
                    json!({
                        "correlation_id": id,
                        "event_type": target.event_type.as_deref().unwrap_or("demo"),
                        "payload": {"name": format!("user-{}", seq % 100), "seq": seq},
                    })
                    .to_string()
                    .into_bytes(),
                ),
                ..OutRecord::default()
            });
        }
        // Forget requests whose reply never came (bounded memory).
        if ids.len() > 100_000 {
            ids.clear();
        }
        drop(ids);
        let failed = producer
            .send(batch)
            .await
            .into_iter()
            .filter_map(Result::err)
            .next();
        if let Some(e) = failed {
            tracing::warn!(error = %e, "demo load: sending requests failed");
        }
        window.lock().await.sent += n;
    }
    Ok(())
}
