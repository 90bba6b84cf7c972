//! Dead-letter records: the failed record, unchanged, with versioned
//! `dlq.*` headers naming where it came from and why it failed; and the
//! reading side, which also understands Spring Kafka's `kafka_dlt-*` headers
//! so that `dlq list`, `dlq stats` and `dlq replay` work on a dead-letter
//! topic written by a Spring service.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};

use crate::producer::OutRecord;

use super::api::Failure;

/// Header: the version of this header set (`1`).
pub const VERSION: &str = "dlq.version";
/// The header set written by this build.
pub const HEADER_VERSION: &str = "1";
/// Header: the topic the record was read from.
pub const ORIGINAL_TOPIC: &str = "dlq.original.topic";
/// Header: its partition.
pub const ORIGINAL_PARTITION: &str = "dlq.original.partition";
/// Header: its offset.
pub const ORIGINAL_OFFSET: &str = "dlq.original.offset";
/// Header: its timestamp, milliseconds since the epoch.
pub const ORIGINAL_TIMESTAMP: &str = "dlq.original.timestamp";
/// Header: the failure class (`deserialization`, `validation`, ...).
pub const ERROR_KIND: &str = "dlq.error.kind";
/// Header: the failure message, at most [`MESSAGE_LIMIT`] bytes.
pub const ERROR_MESSAGE: &str = "dlq.error.message";
/// The handler's error code, when it gave one.
pub const ERROR_CODE: &str = "dlq.error.code";
/// Header: the route that failed.
pub const ROUTE: &str = "dlq.route";
/// Header: the handler of that route.
pub const HANDLER: &str = "dlq.handler";
/// Header: how many times the handler was tried.
pub const ATTEMPTS: &str = "dlq.attempts";
/// Header: when the first attempt failed (RFC 3339, UTC, milliseconds).
pub const FIRST_FAILURE: &str = "dlq.failure.first";
/// Header: when the last attempt failed (RFC 3339, UTC, milliseconds).
pub const LAST_FAILURE: &str = "dlq.failure.last";
/// Header: the instance that dead-lettered it (see [`instance_id`]).
pub const INSTANCE: &str = "dlq.instance.id";
/// Header on a replayed record: the dead letter it was replayed from,
/// `<dlq topic>/<partition>@<offset>`.
pub const REPLAY_SOURCE: &str = "dlq.replay.source";
/// Header on a replayed record: when it was replayed (RFC 3339).
pub const REPLAY_TIME: &str = "dlq.replay.time";
/// Header on a replayed record: how many times it was replayed so far.
pub const REPLAY_COUNT: &str = "dlq.replay.count";
/// Header: the record's value was left out of this dead letter because the
/// dead-letter topic refused it as too large (its size, and why).
pub const VALUE_DROPPED: &str = "dlq.value.dropped";
/// Longest failure message kept in [`ERROR_MESSAGE`], in bytes.
pub const MESSAGE_LIMIT: usize = 4096;

/// Spring Kafka's dead-letter headers (`DeadLetterPublishingRecoverer`):
/// the topic and messages as UTF-8, partition, offset and timestamp as
/// big-endian binary numbers.
pub mod spring {
    /// The prefix of every Spring dead-letter header.
    pub const PREFIX: &str = "kafka_dlt-";
    /// Original topic.
    pub const ORIGINAL_TOPIC: &str = "kafka_dlt-original-topic";
    /// Original partition (4 bytes).
    pub const ORIGINAL_PARTITION: &str = "kafka_dlt-original-partition";
    /// Original offset (8 bytes).
    pub const ORIGINAL_OFFSET: &str = "kafka_dlt-original-offset";
    /// Original timestamp (8 bytes, milliseconds).
    pub const ORIGINAL_TIMESTAMP: &str = "kafka_dlt-original-timestamp";
    /// The exception's class name.
    pub const EXCEPTION_FQCN: &str = "kafka_dlt-exception-fqcn";
    /// The exception's message.
    pub const EXCEPTION_MESSAGE: &str = "kafka_dlt-exception-message";
}

/// The dead-letter topic of `topic` when a route names none.
pub fn default_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// Who this process is in [`INSTANCE`] headers: the static member id
/// (`consumer.group_instance_id`) when there is one, else
/// `<client_id>@<host>:<pid>`.
pub fn instance_id(config: &crate::config::Config) -> String {
    if let Some(id) = &config.consumer.group_instance_id {
        return id.clone();
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".to_owned());
    format!("{}@{host}:{}", config.kafka.client_id, std::process::id())
}

/// A time as the `dlq.*` headers write it.
pub fn time_text(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Where a failed record came from.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Its timestamp (milliseconds since the epoch), when known.
    pub timestamp: Option<i64>,
    /// The route that handled it (empty when none did).
    pub route: &'a str,
    /// That route's handler (empty when none did).
    pub handler: &'a str,
}

/// How the handling went: attempts and when they failed, and who tried.
#[derive(Debug, Clone, Copy)]
pub struct Attempts<'a> {
    /// Handler calls (0 when the record never reached the handler).
    pub count: u32,
    /// When the first attempt failed.
    pub first_failure: DateTime<Utc>,
    /// When the last attempt failed.
    pub last_failure: DateTime<Utc>,
    /// [`instance_id`] of this process.
    pub instance: &'a str,
}

/// `message` cut to at most `limit` bytes on a character boundary, with `…`
/// when something was cut.
pub fn truncated(message: &str, limit: usize) -> String {
    if message.len() <= limit {
        return message.to_owned();
    }
    let mut end = limit.saturating_sub('…'.len_utf8());
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &message[..end])
}

/// The dead-letter record for a failed record: same key, value and headers,
/// plus the `dlq.*` headers.
pub fn record(
    dlq_topic: &str,
    origin: Origin<'_>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &BTreeMap<String, Vec<u8>>,
    failure: &Failure,
    attempts: Attempts<'_>,
) -> OutRecord {
    let mut headers = headers.clone();
    for (name, value) in [
        (VERSION, HEADER_VERSION.to_owned()),
        (ORIGINAL_TOPIC, origin.topic.to_owned()),
        (ORIGINAL_PARTITION, origin.partition.to_string()),
        (ORIGINAL_OFFSET, origin.offset.to_string()),
        (ERROR_KIND, failure.kind.as_str().to_owned()),
        (ERROR_MESSAGE, truncated(&failure.message, MESSAGE_LIMIT)),
        (ROUTE, origin.route.to_owned()),
        (HANDLER, origin.handler.to_owned()),
        (ATTEMPTS, attempts.count.to_string()),
        (FIRST_FAILURE, time_text(attempts.first_failure)),
        (LAST_FAILURE, time_text(attempts.last_failure)),
        (INSTANCE, attempts.instance.to_owned()),
    ] {
        headers.insert(name.to_owned(), value.into_bytes());
    }
    match &failure.code {
        Some(code) => {
            headers.insert(ERROR_CODE.to_owned(), code.clone().into_bytes());
        }
        None => {
            headers.remove(ERROR_CODE);
        }
    }
    match origin.timestamp {
        Some(ms) => {
            headers.insert(ORIGINAL_TIMESTAMP.to_owned(), ms.to_string().into_bytes());
        }
        None => {
            headers.remove(ORIGINAL_TIMESTAMP);
        }
    }
    OutRecord {
        topic: dlq_topic.to_owned(),
        partition: None,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers,
    }
}

/// Who wrote a dead letter's headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// kafka-actors' `dlq.*` headers.
    KafkaActors,
    /// Spring Kafka's `kafka_dlt-*` headers.
    Spring,
    /// Neither: a record some other program wrote.
    Unknown,
}

/// What a dead letter's headers say about it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Letter {
    /// Whose headers these are.
    pub format: Format,
    /// The topic it failed on.
    pub original_topic: Option<String>,
    /// Its partition there.
    pub original_partition: Option<i32>,
    /// Its offset there.
    pub original_offset: Option<i64>,
    /// Failure class (kafka-actors) or exception class (Spring).
    pub class: Option<String>,
    /// Failure message.
    pub message: Option<String>,
    /// The handler's error code (kafka-actors only).
    pub code: Option<String>,
    /// The route that failed (kafka-actors only).
    pub route: Option<String>,
    /// Handler calls (kafka-actors only).
    pub attempts: Option<u32>,
    /// Replays so far.
    pub replays: u32,
}

fn text(headers: &BTreeMap<String, Vec<u8>>, name: &str) -> Option<String> {
    headers
        .get(name)
        .map(|v| String::from_utf8_lossy(v).into_owned())
}

fn number<T: std::str::FromStr>(headers: &BTreeMap<String, Vec<u8>>, name: &str) -> Option<T> {
    text(headers, name).and_then(|t| t.trim().parse().ok())
}

/// Spring writes numbers as big-endian binary; some ports write text.
fn spring_number(headers: &BTreeMap<String, Vec<u8>>, name: &str) -> Option<i64> {
    let raw = headers.get(name)?;
    match raw.len() {
        4 => Some(i64::from(i32::from_be_bytes(raw[..].try_into().ok()?))),
        8 => Some(i64::from_be_bytes(raw[..].try_into().ok()?)),
        _ => std::str::from_utf8(raw).ok()?.trim().parse().ok(),
    }
}

/// Reads a dead letter's headers, kafka-actors' first, else Spring's.
pub fn read(headers: &BTreeMap<String, Vec<u8>>) -> Letter {
    let replays = number(headers, REPLAY_COUNT).unwrap_or(0);
    if headers.contains_key(ORIGINAL_TOPIC) {
        return Letter {
            format: Format::KafkaActors,
            original_topic: text(headers, ORIGINAL_TOPIC),
            original_partition: number(headers, ORIGINAL_PARTITION),
            original_offset: number(headers, ORIGINAL_OFFSET),
            class: text(headers, ERROR_KIND),
            message: text(headers, ERROR_MESSAGE),
            code: text(headers, ERROR_CODE),
            route: text(headers, ROUTE).filter(|r| !r.is_empty()),
            attempts: number(headers, ATTEMPTS),
            replays,
        };
    }
    if headers.contains_key(spring::ORIGINAL_TOPIC) {
        return Letter {
            format: Format::Spring,
            original_topic: text(headers, spring::ORIGINAL_TOPIC),
            original_partition: spring_number(headers, spring::ORIGINAL_PARTITION)
                .and_then(|p| i32::try_from(p).ok()),
            original_offset: spring_number(headers, spring::ORIGINAL_OFFSET),
            class: text(headers, spring::EXCEPTION_FQCN),
            message: text(headers, spring::EXCEPTION_MESSAGE),
            code: None,
            route: None,
            attempts: None,
            replays,
        };
    }
    Letter {
        format: Format::Unknown,
        original_topic: None,
        original_partition: None,
        original_offset: None,
        class: None,
        message: None,
        code: None,
        route: None,
        attempts: None,
        replays,
    }
}

/// The headers a replayed record carries: the dead letter's headers without
/// the failure headers (ours and Spring's), plus where and when it was
/// replayed and how often so far.
pub fn replay_headers(
    headers: &BTreeMap<String, Vec<u8>>,
    source: &str,
    at: DateTime<Utc>,
) -> BTreeMap<String, Vec<u8>> {
    let replays: u32 = number(headers, REPLAY_COUNT).unwrap_or(0);
    let mut out: BTreeMap<String, Vec<u8>> = headers
        .iter()
        .filter(|(k, _)| !k.starts_with("dlq.") && !k.starts_with(spring::PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out.insert(REPLAY_SOURCE.to_owned(), source.as_bytes().to_vec());
    out.insert(REPLAY_TIME.to_owned(), time_text(at).into_bytes());
    out.insert(
        REPLAY_COUNT.to_owned(),
        (replays + 1).to_string().into_bytes(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::api::FailureKind;

    #[test]
    fn keeps_the_record_and_names_its_origin_and_failure() {
        let headers = BTreeMap::from([("correlation_id".to_owned(), b"c1".to_vec())]);
        let failure = Failure::new(FailureKind::Panic, "boom");
        let origin = Origin {
            topic: "orders",
            partition: 2,
            offset: 41,
            timestamp: Some(1_700_000_000_123),
            route: "validate",
            handler: "echo",
        };
        let first = DateTime::parse_from_rfc3339("2026-11-23T01:02:03.004Z")
            .unwrap()
            .with_timezone(&Utc);
        let attempts = Attempts {
            count: 3,
            first_failure: first,
            last_failure: first + chrono::Duration::milliseconds(1500),
            instance: "svc-1",
        };
        let r = record(
            &default_topic("orders"),
            origin,
            Some(b"k"),
            Some(b"{}"),
            &headers,
            &failure,
            attempts,
        );
        assert_eq!(r.topic, "orders.dlq");
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"{}"[..]));
        let h = |n: &str| String::from_utf8(r.headers[n].clone()).unwrap();
        assert_eq!(h("correlation_id"), "c1");
        assert_eq!(h(ORIGINAL_TOPIC), "orders");
        assert_eq!(h(ORIGINAL_PARTITION), "2");
        assert_eq!(h(ORIGINAL_OFFSET), "41");
        assert_eq!(h(ERROR_KIND), "panic");
        assert_eq!(h(ERROR_MESSAGE), "boom");
        assert_eq!(h(ROUTE), "validate");
        assert_eq!(h(VERSION), "1");
        assert_eq!(h(ORIGINAL_TIMESTAMP), "1700000000123");
        assert_eq!(h(HANDLER), "echo");
        assert_eq!(h(ATTEMPTS), "3");
        assert_eq!(h(FIRST_FAILURE), "2026-11-23T01:02:03.004Z");
        assert_eq!(h(LAST_FAILURE), "2026-11-23T01:02:04.504Z");
        assert_eq!(h(INSTANCE), "svc-1");

        let letter = read(&r.headers);
        assert_eq!(letter.format, Format::KafkaActors);
        assert_eq!(letter.original_topic.as_deref(), Some("orders"));
        assert_eq!(letter.original_partition, Some(2));
        assert_eq!(letter.original_offset, Some(41));
        assert_eq!(letter.class.as_deref(), Some("panic"));
        assert_eq!(letter.attempts, Some(3));
        assert_eq!(letter.replays, 0);
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        let long = "é".repeat(MESSAGE_LIMIT);
        let cut = truncated(&long, MESSAGE_LIMIT);
        assert!(cut.len() <= MESSAGE_LIMIT, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(truncated("short", MESSAGE_LIMIT), "short");
    }

    #[test]
    fn spring_dead_letters_are_read_with_their_binary_numbers() {
        let headers = BTreeMap::from([
            (spring::ORIGINAL_TOPIC.to_owned(), b"payments".to_vec()),
            (
                spring::ORIGINAL_PARTITION.to_owned(),
                3i32.to_be_bytes().to_vec(),
            ),
            (
                spring::ORIGINAL_OFFSET.to_owned(),
                1234i64.to_be_bytes().to_vec(),
            ),
            (
                spring::EXCEPTION_FQCN.to_owned(),
                b"org.springframework.kafka.listener.ListenerExecutionFailedException".to_vec(),
            ),
            (spring::EXCEPTION_MESSAGE.to_owned(), b"boom".to_vec()),
            ("traceparent".to_owned(), b"00-abc".to_vec()),
        ]);
        let letter = read(&headers);
        assert_eq!(letter.format, Format::Spring);
        assert_eq!(letter.original_topic.as_deref(), Some("payments"));
        assert_eq!(letter.original_partition, Some(3));
        assert_eq!(letter.original_offset, Some(1234));
        assert_eq!(letter.message.as_deref(), Some("boom"));

        let at = Utc::now();
        let replayed = replay_headers(&headers, "payments.DLT/0@7", at);
        assert!(replayed.keys().all(|k| !k.starts_with(spring::PREFIX)));
        assert_eq!(replayed["traceparent"], b"00-abc");
        assert_eq!(replayed[REPLAY_SOURCE], b"payments.DLT/0@7");
        assert_eq!(replayed[REPLAY_COUNT], b"1");
        // A second replay counts on.
        let again = replay_headers(&replayed, "payments.DLT/0@9", at);
        assert_eq!(again[REPLAY_COUNT], b"2");
        assert_eq!(read(&again).format, Format::Unknown);
    }
}
