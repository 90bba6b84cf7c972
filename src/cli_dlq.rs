//! `kafka-actors dlq stats|list|replay|purge`: what the dead-letter topics
//! hold, read from their `dlq.*` headers (or Spring Kafka's `kafka_dlt-*`),
//! and the way back: republish selected dead letters, or delete them.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rskafka::client::partition::{OffsetAt, PartitionClient};
use rskafka::record::RecordAndOffset;
use serde::Serialize;
use serde_json::json;

use crate::cli::{DlqSelect, emit, emit_err};
use crate::config::{Compression, Config};
use crate::exit::Exit;
use crate::handler::dead_letter;
use crate::producer::{OutRecord, Producer};

/// One group of dead letters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Group {
    dlq_topic: String,
    original_topic: String,
    route: String,
    class: String,
    /// The handler's error code (`-`: none).
    code: String,
    count: u64,
    /// RFC 3339.
    oldest: Option<String>,
    /// RFC 3339.
    newest: Option<String>,
    #[serde(skip)]
    times: Option<(DateTime<Utc>, DateTime<Utc>)>,
}

/// The dead-letter topics of every route (`dlq_topic`, else `<topic>.dlq`).
/// The first route's dead-letter topic, if any route is configured.
pub(crate) fn stats_default_topic(config: &Config) -> Option<String> {
    route_dlq_topics(config).into_iter().next()
}

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

/// One partition being read: from `next` up to `end` (exclusive).
struct Part {
    client: std::sync::Arc<PartitionClient>,
    next: i64,
    end: i64,
    /// The records of the fetch that found the end, read first.
    fetched: Vec<RecordAndOffset>,
}

/// Reads the selected partitions of one topic, in offset order, up to the
/// end each partition had when the reader opened (records written later,
/// such as replays that fail again, are not read).
struct Reader {
    topic: String,
    parts: Vec<Part>,
    current: usize,
    select: DlqSelect,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Reader {
    /// Opens the selected partitions; a partition the topic lacks is a
    /// usage error, anything else the brokers' (an `Exit` and its message).
    async fn open(
        producer: &Producer,
        topic: &str,
        select: &DlqSelect,
    ) -> Result<Self, (Exit, String)> {
        let fail = |exit: Exit, message: String| (exit, message);
        let count = producer
            .partitions(topic)
            .await
            .map_err(|e| fail(Exit::Unavailable, format!("dead-letter topic {topic}: {e}")))?;
        let partitions: Vec<i32> = if select.partitions.is_empty() {
            (0..count).collect()
        } else {
            select.partitions.clone()
        };
        let mut parts = Vec::new();
        for p in partitions {
            if !(0..count).contains(&p) {
                return Err(fail(
                    Exit::Usage,
                    format!("dead-letter topic {topic} has no partition {p} (it has {count})"),
                ));
            }
            let unavailable = |e: String| fail(Exit::Unavailable, format!("{topic}/{p}: {e}"));
            let client = producer
                .partition_client(topic, p)
                .await
                .map_err(|e| unavailable(e.to_string()))?;
            let low = client
                .get_offset(OffsetAt::Earliest)
                .await
                .map_err(|e| unavailable(format!("cannot read the earliest offset: {e}")))?;
            // The end is the high watermark of a Fetch response: not every
            // broker answers ListOffsets(latest) with it (FINDINGS.md).
            let (fetched, high) = client
                .fetch_records(low, 1..1_048_576, 0)
                .await
                .map_err(|e| unavailable(format!("cannot read from offset {low}: {e}")))?;
            let next = select.from_offset.map_or(low, |o| o.max(low));
            let end = select.to_offset.map_or(high, |o| (o + 1).min(high));
            // Reused only when it reaches the first record wanted.
            let fetched = if fetched.iter().any(|r| r.offset >= next) {
                fetched
            } else {
                Vec::new()
            };
            parts.push(Part {
                client,
                next,
                end,
                fetched,
            });
        }
        Ok(Self {
            topic: topic.to_owned(),
            parts,
            current: 0,
            select: select.clone(),
            since: select.since.map(DateTime::<Utc>::from),
            until: select.until.map(DateTime::<Utc>::from),
        })
    }

    /// Whether `r` passes the class and time filters.
    fn wanted(&self, r: &RecordAndOffset) -> bool {
        if self.since.is_some_and(|t| r.record.timestamp < t)
            || self.until.is_some_and(|t| r.record.timestamp >= t)
        {
            return false;
        }
        if self.select.classes.is_empty() {
            return true;
        }
        let letter = dead_letter::read(&r.record.headers);
        letter
            .class
            .is_some_and(|c| self.select.classes.contains(&c))
    }

    /// The next selected records of one partition (possibly none, when a
    /// whole fetch was filtered out); `None` at the end of every partition.
    async fn next_batch(&mut self) -> Result<Option<(i32, Vec<RecordAndOffset>)>, String> {
        while let Some(part) = self.parts.get_mut(self.current) {
            if part.next >= part.end {
                self.current += 1;
                continue;
            }
            let p = part.client.partition();
            let records = if part.fetched.is_empty() {
                part.client
                    .fetch_records(part.next, 1..1_048_576, 0)
                    .await
                    .map_err(|e| {
                        format!("reading {}/{p} at offset {}: {e}", self.topic, part.next)
                    })?
                    .0
            } else {
                std::mem::take(&mut part.fetched)
            };
            let (from, end) = (part.next, part.end);
            let records: Vec<RecordAndOffset> = records
                .into_iter()
                .filter(|r| r.offset >= from && r.offset < end)
                .collect();
            match records.last() {
                // Nothing readable up to the end (aborted transactions,
                // control batches): this partition is done.
                None => part.next = part.end,
                Some(last) => part.next = last.offset + 1,
            }
            let selected = records.into_iter().filter(|r| self.wanted(r)).collect();
            return Ok(Some((p, selected)));
        }
        Ok(None)
    }
}

fn dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

/// Dead letters of `topics` (default: every route's dead-letter topic)
/// counted by original topic, route, class and code, with their oldest
/// and newest times; `Err` with the exit code and what went wrong.
pub(crate) async fn stats_of(
    config: &Config,
    topics: Vec<String>,
) -> Result<(Vec<String>, Vec<Group>), (Exit, String)> {
    let topics = if topics.is_empty() {
        route_dlq_topics(config)
    } else {
        topics
    };
    if topics.is_empty() {
        return Err((
            Exit::Usage,
            "no dead-letter topic given and no route configured".to_owned(),
        ));
    }
    let producer = Producer::connect(&config.kafka, config.producer.compression_type)
        .await
        .map_err(|e| (Exit::Unavailable, e.to_string()))?;
    let mut groups: BTreeMap<(String, String, String, String, String), Group> = BTreeMap::new();
    for topic in &topics {
        let mut reader = Reader::open(&producer, topic, &DlqSelect::default()).await?;
        loop {
            let records = match reader.next_batch().await {
                Ok(Some((_, records))) => records,
                Ok(None) => break,
                Err(e) => return Err((Exit::Unavailable, e.to_string())),
            };
            for r in records {
                let letter = dead_letter::read(&r.record.headers);
                let key = (
                    topic.clone(),
                    dash(letter.original_topic),
                    dash(letter.route),
                    dash(letter.class),
                    dash(letter.code),
                );
                let g = groups.entry(key.clone()).or_insert_with(|| Group {
                    dlq_topic: key.0,
                    original_topic: key.1,
                    route: key.2,
                    class: key.3,
                    code: key.4,
                    count: 0,
                    oldest: None,
                    newest: None,
                    times: None,
                });
                g.count += 1;
                let at = r.record.timestamp;
                g.times = Some(g.times.map_or((at, at), |(o, n)| (o.min(at), n.max(at))));
            }
        }
    }
    let groups = groups
        .into_values()
        .map(|mut g| {
            if let Some((oldest, newest)) = g.times {
                g.oldest = Some(dead_letter::time_text(oldest));
                g.newest = Some(dead_letter::time_text(newest));
            }
            g
        })
        .collect();
    Ok((topics, groups))
}

/// Reads `topics` (default: the routes' dead-letter topics) from the start
/// to their end and prints counts by original topic, route, failure class
/// and error code, with the oldest and newest record time.
pub(crate) async fn stats(config: Config, topics: Vec<String>, json: bool) -> Exit {
    let (topics, groups) = match stats_of(&config, topics).await {
        Ok(found) => found,
        Err((exit, message)) => {
            emit_err(&format!("kafka-actors: {message}"));
            return exit;
        }
    };
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
        "{:<32} {:<32} {:<16} {:<16} {:<16} {:>8}  {:<24}  {:<24}\n",
        "DLQ TOPIC", "ORIGINAL TOPIC", "ROUTE", "CLASS", "CODE", "COUNT", "OLDEST", "NEWEST"
    );
    for g in &groups {
        out.push_str(&format!(
            "{:<32} {:<32} {:<16} {:<16} {:<16} {:>8}  {:<24}  {:<24}\n",
            g.dlq_topic,
            g.original_topic,
            g.route,
            g.class,
            g.code,
            g.count,
            g.oldest.as_deref().unwrap_or("-"),
            g.newest.as_deref().unwrap_or("-")
        ));
    }
    emit(out.trim_end());
    Exit::Ok
}

fn lossy(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Text for a terminal: at most `limit` characters, one line.
fn short(text: &str, limit: usize) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= limit {
        return one_line;
    }
    let cut: String = one_line.chars().take(limit).collect();
    format!("{cut}…")
}

/// Spring writes partition, offset and timestamp as binary: shown as
/// numbers; other non-UTF-8 headers as hex.
fn header_text(name: &str, value: &[u8]) -> String {
    let binary_number = name.starts_with(dead_letter::spring::PREFIX)
        && matches!(value.len(), 4 | 8)
        && std::str::from_utf8(value).map_or(true, |t| t.chars().any(char::is_control));
    if binary_number {
        return match value.len() {
            4 => i32::from_be_bytes([value[0], value[1], value[2], value[3]]).to_string(),
            _ => {
                let mut b = [0u8; 8];
                b.copy_from_slice(value);
                i64::from_be_bytes(b).to_string()
            }
        };
    }
    match std::str::from_utf8(value) {
        Ok(t) => t.to_owned(),
        Err(_) => value.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

/// One page of dead letters: up to `limit` selected records, and where the
/// next page starts when more may follow (its partition and offset, then
/// the partitions after it).
pub(crate) struct Page {
    /// `(partition, record)`, partition by partition.
    pub records: Vec<(i32, RecordAndOffset)>,
    /// `(partition, from_offset, later partitions)`.
    pub next: Option<(i32, i64, Vec<i32>)>,
}

/// Reads one [`Page`] of `topic`'s selected dead letters.
pub(crate) async fn page(
    config: &Config,
    topic: &str,
    select: &DlqSelect,
    limit: usize,
) -> Result<Page, (Exit, String)> {
    let producer = Producer::connect(&config.kafka, Compression::None)
        .await
        .map_err(|e| (Exit::Unavailable, e.to_string()))?;
    let mut reader = Reader::open(&producer, topic, select).await?;
    let mut records = Vec::new();
    loop {
        let Some((partition, batch)) = reader
            .next_batch()
            .await
            .map_err(|e| (Exit::Unavailable, e.to_string()))?
        else {
            return Ok(Page {
                records,
                next: None,
            });
        };
        for r in batch {
            if records.len() == limit {
                // Next page: this partition from this record on, then the
                // partitions after it.
                let later = reader.parts[reader.current + 1..]
                    .iter()
                    .map(|p| p.client.partition())
                    .collect();
                return Ok(Page {
                    records,
                    next: Some((partition, r.offset, later)),
                });
            }
            records.push((partition, r));
        }
    }
}

/// `dlq list`: prints up to `limit` selected dead letters and, when more
/// may follow, the options that read the next page.
pub(crate) async fn list(
    config: Config,
    topic: String,
    select: DlqSelect,
    limit: usize,
    as_json: bool,
) -> Exit {
    let found = match page(&config, &topic, &select, limit).await {
        Ok(found) => found,
        Err((exit, message)) => {
            emit_err(&format!("kafka-actors: {message}"));
            return exit;
        }
    };
    for (partition, r) in &found.records {
        emit(&render(&topic, *partition, r, as_json));
    }
    let printed = found.records.len();
    match found.next {
        None => {
            if !as_json {
                emit(&format!("-- {printed} dead letter(s); end of {topic}"));
            }
        }
        Some((partition, offset, later)) => {
            let mut hint = format!(
                "-- {printed} dead letter(s); next page: --partition {partition} --from-offset {offset}"
            );
            if !later.is_empty() {
                let later: String = later.iter().map(|p| format!(" -p {p}")).collect();
                hint.push_str(&format!("; then the other partitions:{later}"));
            }
            if as_json {
                emit_err(&hint);
            } else {
                emit(&hint);
            }
        }
    }
    Exit::Ok
}

/// A dead letter as JSON: where it is, when, its `dlq.*` headers read, its
/// key, value and every header as text.
pub(crate) fn letter_json(topic: &str, partition: i32, r: &RecordAndOffset) -> serde_json::Value {
    let headers: BTreeMap<&str, String> = r
        .record
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), header_text(k, v)))
        .collect();
    json!({
        "topic": topic,
        "partition": partition,
        "offset": r.offset,
        "timestamp": dead_letter::time_text(r.record.timestamp),
        "letter": dead_letter::read(&r.record.headers),
        "key": lossy(r.record.key.as_deref()),
        "value": lossy(r.record.value.as_deref()),
        "headers": headers,
    })
}

fn render(topic: &str, partition: i32, r: &RecordAndOffset, as_json: bool) -> String {
    let letter = dead_letter::read(&r.record.headers);
    let headers: BTreeMap<&str, String> = r
        .record
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), header_text(k, v)))
        .collect();
    let at = dead_letter::time_text(r.record.timestamp);
    if as_json {
        return letter_json(topic, partition, r).to_string();
    }
    let origin = match (
        &letter.original_topic,
        letter.original_partition,
        letter.original_offset,
    ) {
        (Some(t), Some(p), Some(o)) => format!("{t}/{p}@{o}"),
        (Some(t), _, _) => t.clone(),
        _ => "(unknown origin)".to_owned(),
    };
    let mut out = format!(
        "{topic}/{partition}@{}  {at}  from {origin}  class={}  code={}  route={}  attempts={}",
        r.offset,
        letter.class.as_deref().unwrap_or("-"),
        letter.code.as_deref().unwrap_or("-"),
        letter.route.as_deref().unwrap_or("-"),
        letter.attempts.map_or("-".to_owned(), |a| a.to_string()),
    );
    if let Some(message) = &letter.message {
        out.push_str(&format!("\n  error: {}", short(message, 200)));
    }
    out.push_str(&format!(
        "\n  key: {}\n  value: {}",
        lossy(r.record.key.as_deref()).map_or("-".to_owned(), |k| short(&k, 120)),
        lossy(r.record.value.as_deref()).map_or("-".to_owned(), |v| short(&v, 200)),
    ));
    for (k, v) in &headers {
        out.push_str(&format!("\n  {k}: {}", short(v, 200)));
    }
    out
}

/// `dlq replay` options besides the selection.
#[derive(Debug, Clone)]
pub(crate) struct ReplayOptions {
    /// Republish here instead of the original topic.
    pub to: Option<String>,
    /// Records per second at most.
    pub rate: u32,
    /// Publish nothing.
    pub dry_run: bool,
}

/// What a replay did (or, dry, would do).
#[derive(Debug, Default, Serialize)]
pub(crate) struct ReplaySummary {
    /// Records replayed (or to be replayed), by target topic.
    pub by_target: BTreeMap<String, u64>,
    /// Records skipped: no original topic in their headers and no `to`.
    pub skipped: Vec<String>,
    /// A dry run's plan, `source -> target`.
    pub planned: Vec<String>,
}

/// Republishes the selected dead letters in batches, each acknowledged
/// before the next, paced to `options.rate`; `Err` with the exit code and
/// what went wrong (how far it got, and how to go on from there).
pub(crate) async fn replay_core(
    config: &Config,
    topic: &str,
    select: &DlqSelect,
    options: &ReplayOptions,
) -> Result<ReplaySummary, (Exit, String)> {
    if options.rate == 0 {
        return Err((
            Exit::Usage,
            "the rate must be at least 1 record per second".to_owned(),
        ));
    }
    let producer = Producer::connect(&config.kafka, config.producer.compression_type)
        .await
        .map_err(|e| (Exit::Unavailable, e.to_string()))?;
    let mut reader = Reader::open(&producer, topic, select).await?;
    let batch_size = (options.rate as usize / 10).clamp(1, 500);
    let started = Instant::now();
    let mut summary = ReplaySummary::default();
    let mut sent: u64 = 0;
    loop {
        let (partition, records) = match reader.next_batch().await {
            Ok(Some(batch)) => batch,
            Ok(None) => break,
            Err(e) => {
                return Err((
                    Exit::Unavailable,
                    format!("{e} ({sent} record(s) replayed before)"),
                ));
            }
        };
        let mut outgoing: Vec<(i64, OutRecord)> = Vec::new();
        for r in records {
            let source = format!("{topic}/{partition}@{}", r.offset);
            let target = options
                .to
                .clone()
                .or_else(|| dead_letter::read(&r.record.headers).original_topic);
            let Some(target) = target else {
                summary.skipped.push(source);
                continue;
            };
            if options.dry_run {
                summary.planned.push(format!("{source} -> {target}"));
                *summary.by_target.entry(target).or_default() += 1;
                continue;
            }
            outgoing.push((
                r.offset,
                OutRecord {
                    headers: dead_letter::replay_headers(&r.record.headers, &source, Utc::now()),
                    topic: target,
                    partition: None,
                    key: r.record.key,
                    value: r.record.value,
                },
            ));
        }
        for chunk in outgoing.chunks(batch_size) {
            let results = producer
                .send(chunk.iter().map(|(_, out)| out.clone()).collect())
                .await;
            // A chunk's records go out to their partitions at once: count
            // every one written, and report the first that was not.
            let mut first_failure = None;
            for ((offset, out), result) in chunk.iter().zip(results) {
                match result {
                    Ok(_) => {
                        sent += 1;
                        *summary.by_target.entry(out.topic.clone()).or_default() += 1;
                    }
                    Err(e) if first_failure.is_none() => {
                        first_failure = Some((*offset, out.topic.clone(), e.to_string()));
                    }
                    Err(_) => {}
                }
            }
            if let Some((offset, target, e)) = first_failure {
                return Err((
                    Exit::Unavailable,
                    format!(
                        "replaying {topic}/{partition}@{offset} to {target}: {e}; \
                         {sent} record(s) were replayed (some after it in the same batch may be \
                         among them); to go on from here: --partition {partition} --from-offset {offset}"
                    ),
                ));
            }
            // Pace: `sent` records may have left by now at `rate` per second.
            let due = Duration::from_secs_f64(sent as f64 / f64::from(options.rate));
            if let Some(wait) = due.checked_sub(started.elapsed()) {
                tokio::time::sleep(wait).await;
            }
        }
    }
    Ok(summary)
}

/// `dlq replay`: [`replay_core`], printing the plan (dry run) and the
/// outcome. A record whose origin is unknown (and no `--to`) is skipped
/// and named; the exit code is then 1.
pub(crate) async fn replay(
    config: Config,
    topic: String,
    select: DlqSelect,
    options: ReplayOptions,
) -> Exit {
    let summary = match replay_core(&config, &topic, &select, &options).await {
        Ok(summary) => summary,
        Err((exit, message)) => {
            let message = if exit == Exit::Usage {
                message.replace("the rate", "--rate")
            } else {
                message
            };
            emit_err(&format!("kafka-actors: {message}"));
            return exit;
        }
    };
    for line in &summary.planned {
        emit(line);
    }
    let verb = if options.dry_run {
        "would replay"
    } else {
        "replayed"
    };
    let total: u64 = summary.by_target.values().sum();
    let targets = summary
        .by_target
        .iter()
        .map(|(t, n)| format!("{n} to {t}"))
        .collect::<Vec<_>>()
        .join(", ");
    emit(&format!(
        "{verb} {total} record(s) from {topic}{}{targets}",
        if total > 0 { ": " } else { "" }
    ));
    if !summary.skipped.is_empty() {
        emit_err(&format!(
            "kafka-actors: skipped {} record(s) with no original topic in their headers \
             (name one with --to): {}",
            summary.skipped.len(),
            summary.skipped.join(", ")
        ));
        return Exit::Failure;
    }
    Exit::Ok
}

/// What a purge deletes: `(partition client, first offset, end)` per
/// partition with records before `before` (or all, when `None`).
pub(crate) struct PurgePlan {
    parts: Vec<(Arc<PartitionClient>, i64, i64)>,
}

impl PurgePlan {
    /// `(partition, first offset, end offset)` of each partition purged.
    pub(crate) fn ranges(&self) -> Vec<(i32, i64, i64)> {
        self.parts
            .iter()
            .map(|(c, low, upto)| (c.partition(), *low, *upto))
            .collect()
    }
}

/// The plan of a purge of `topic`.
pub(crate) async fn purge_plan(
    config: &Config,
    topic: &str,
    partitions: Vec<i32>,
    before: Option<i64>,
) -> Result<PurgePlan, (Exit, String)> {
    let producer = Producer::connect(&config.kafka, Compression::None)
        .await
        .map_err(|e| (Exit::Unavailable, e.to_string()))?;
    let select = DlqSelect {
        partitions,
        ..DlqSelect::default()
    };
    // The reader resolves and checks the partitions, and each one's range.
    let reader = Reader::open(&producer, topic, &select).await?;
    let mut parts = Vec::new();
    for part in &reader.parts {
        let (low, high) = (part.next, part.end);
        let upto = before.map_or(high, |b| b.min(high));
        if upto > low {
            parts.push((Arc::clone(&part.client), low, upto));
        }
    }
    Ok(PurgePlan { parts })
}

/// Carries out `plan` (DeleteRecords per partition); `Err` names the
/// partition that failed.
pub(crate) async fn purge_run(
    config: &Config,
    topic: &str,
    plan: &PurgePlan,
    mut done: impl FnMut(i32, i64, i64),
) -> Result<(), (Exit, String)> {
    let timeout = i32::try_from(config.kafka.request_timeout_ms).unwrap_or(i32::MAX);
    for (client, low, upto) in &plan.parts {
        let p = client.partition();
        client.delete_records(*upto, timeout).await.map_err(|e| {
            (
                Exit::Unavailable,
                format!("deleting the records of {topic}/{p} before offset {upto}: {e}"),
            )
        })?;
        done(p, *low, *upto);
    }
    Ok(())
}

/// `dlq purge`: deletes the records before `before` (or all, when `None`)
/// in the selected partitions with DeleteRecords; without `yes`, prints the
/// plan and exits with the usage code.
pub(crate) async fn purge(
    config: Config,
    topic: String,
    partitions: Vec<i32>,
    before: Option<i64>,
    yes: bool,
) -> Exit {
    let plan = match purge_plan(&config, &topic, partitions, before).await {
        Ok(plan) => plan,
        Err((exit, message)) => {
            emit_err(&format!("kafka-actors: {message}"));
            return exit;
        }
    };
    if plan.parts.is_empty() {
        emit(&format!("nothing to purge in {topic}"));
        return Exit::Ok;
    }
    for (p, low, upto) in plan.ranges() {
        emit(&format!(
            "{topic}/{p}: {} record(s), offsets {low}..{}",
            upto - low,
            upto - 1
        ));
    }
    if !yes {
        emit_err(&format!(
            "kafka-actors: purging deletes these records of {topic} for good; pass --yes to confirm"
        ));
        return Exit::Usage;
    }
    let purged = purge_run(&config, &topic, &plan, |p, low, upto| {
        emit(&format!(
            "purged {topic}/{p}: {} record(s) before offset {upto}",
            upto - low
        ));
    })
    .await;
    match purged {
        Ok(()) => Exit::Ok,
        Err((exit, message)) => {
            emit_err(&format!("kafka-actors: {message}"));
            exit
        }
    }
}
