//! `kafka-actors dlq stats`: what the dead-letter topics hold, by origin and
//! failure class, read from their `dlq.*` headers.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rskafka::client::partition::OffsetAt;
use serde::Serialize;

use crate::cli::{emit, emit_err};
use crate::config::{Compression, Config};
use crate::exit::Exit;
use crate::handler::dead_letter;
use crate::producer::Producer;

/// One group of dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
struct Group {
    dlq_topic: String,
    original_topic: String,
    route: String,
    class: String,
    count: u64,
    /// RFC 3339.
    oldest: Option<String>,
    /// RFC 3339.
    newest: Option<String>,
    #[serde(skip)]
    times: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The dead-letter topics of every route (`dlq_topic`, else `<topic>.dlq`).
fn route_dlq_topics(config: &Config) -> Vec<String> {
    let mut topics: Vec<String> = config
        .routes
        .values()
        .map(|r| match &r.dlq_topic {
            Some(t) => config.topic_name(t),
            None => dead_letter::default_topic(&config.topic_name(&r.topic)),
        })
        .collect();
    topics.sort();
    topics.dedup();
    topics
}

fn header(headers: &BTreeMap<String, Vec<u8>>, name: &str) -> String {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_else(|| "-".to_owned())
}

/// Reads `topics` (default: the routes' dead-letter topics) from the start
/// to their end and prints counts by original topic, route and failure
/// class, with the oldest and newest record time.
pub(crate) async fn stats(config: Config, topics: Vec<String>, json: bool) -> Exit {
    let topics = if topics.is_empty() {
        route_dlq_topics(&config)
    } else {
        topics
    };
    if topics.is_empty() {
        emit_err("kafka-actors: no dead-letter topic given and no route configured");
        return Exit::Usage;
    }
    let producer = match Producer::connect(&config.kafka, Compression::None).await {
        Ok(p) => p,
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            return Exit::Unavailable;
        }
    };
    let mut groups: BTreeMap<(String, String, String, String), Group> = BTreeMap::new();
    for topic in &topics {
        let partitions = match producer.partitions(topic).await {
            Ok(n) => n,
            Err(e) => {
                emit_err(&format!("kafka-actors: dead-letter topic {topic}: {e}"));
                return Exit::Unavailable;
            }
        };
        for p in 0..partitions {
            let read = async {
                let pc = producer
                    .partition_client(topic, p)
                    .await
                    .map_err(|e| e.to_string())?;
                let mut next = pc
                    .get_offset(OffsetAt::Earliest)
                    .await
                    .map_err(|e| e.to_string())?;
                loop {
                    let (records, high_watermark) =
                        pc.fetch_records(next, 1..1_048_576, 0)
                            .await
                            .map_err(|e| format!("at offset {next}: {e}"))?;
                    let from = next;
                    if records.is_empty() {
                        // Nothing readable up to the end (aborted
                        // transactions, control batches): done.
                        return Ok::<(), String>(());
                    }
                    for r in records.into_iter().filter(|r| r.offset >= from) {
                        next = r.offset + 1;
                        let h = &r.record.headers;
                        let key = (
                            topic.clone(),
                            header(h, dead_letter::ORIGINAL_TOPIC),
                            header(h, dead_letter::ROUTE),
                            header(h, dead_letter::ERROR_KIND),
                        );
                        let g = groups.entry(key.clone()).or_insert_with(|| Group {
                            dlq_topic: key.0,
                            original_topic: key.1,
                            route: key.2,
                            class: key.3,
                            count: 0,
                            oldest: None,
                            newest: None,
                            times: None,
                        });
                        g.count += 1;
                        let at = r.record.timestamp;
                        g.times = Some(g.times.map_or((at, at), |(o, n)| (o.min(at), n.max(at))));
                    }
                    if next >= high_watermark {
                        return Ok::<(), String>(());
                    }
                }
            };
            if let Err(e) = read.await {
                emit_err(&format!("kafka-actors: reading {topic}/{p}: {e}"));
                return Exit::Unavailable;
            }
        }
    }
    let groups: Vec<Group> = groups
        .into_values()
        .map(|mut g| {
            if let Some((oldest, newest)) = g.times {
                let text = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string();
                g.oldest = Some(text(oldest));
                g.newest = Some(text(newest));
            }
            g
        })
        .collect();
    if json {
        match serde_json::to_string_pretty(&groups) {
            Ok(text) => emit(&text),
            Err(e) => {
                emit_err(&format!("kafka-actors: {e}"));
                return Exit::Failure;
            }
        }
        return Exit::Ok;
    }
    if groups.is_empty() {
        emit(&format!("no dead letters in {}", topics.join(", ")));
        return Exit::Ok;
    }
    let mut out = format!(
        "{:<32} {:<32} {:<16} {:<16} {:>8}  {:<24}  {:<24}\n",
        "DLQ TOPIC", "ORIGINAL TOPIC", "ROUTE", "CLASS", "COUNT", "OLDEST", "NEWEST"
    );
    for g in &groups {
        out.push_str(&format!(
            "{:<32} {:<32} {:<16} {:<16} {:>8}  {:<24}  {:<24}\n",
            g.dlq_topic,
            g.original_topic,
            g.route,
            g.class,
            g.count,
            g.oldest.as_deref().unwrap_or("-"),
            g.newest.as_deref().unwrap_or("-")
        ));
    }
    emit(out.trim_end());
    Exit::Ok
}
