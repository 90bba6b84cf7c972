//! Retry records (`retry.mode = "topic"`): a failed record waits in its
//! route's retry topic, unchanged, with `retry.*` headers saying which
//! route takes it, which attempt comes next, when it is due and where it
//! came from. The retry topic's partition consumer holds at a record that
//! is not due yet (only that partition waits) and hands it back to the
//! route's handler when it is.
//!
//! With `ordering = "key"` the retry topic is co-partitioned with its
//! input topic (see [`super::key_waits`]): a record waits in the retry
//! partition of its input partition, and a later record of a key that has
//! a record waiting is written there too, behind it, with `retry.attempts`
//! 0 and no failure headers. That retry partition does not hold at a record
//! that is not due: it parks the record with the later ones of its key, and
//! retries it in place.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::producer::OutRecord;

use super::api::Failure;
use super::process::InRecord;

/// Header: the version of this header set (`1`).
pub const VERSION: &str = "retry.version";
/// Header: the route whose handler takes the record.
pub const ROUTE: &str = "retry.route";
/// Header: handler calls so far (all failed).
pub const ATTEMPTS: &str = "retry.attempts";
/// Header: when the next attempt is due, milliseconds since the epoch.
pub const DUE: &str = "retry.due";
/// Header: the topic the record was first read from.
pub const ORIGINAL_TOPIC: &str = "retry.original.topic";
/// Header: its partition there.
pub const ORIGINAL_PARTITION: &str = "retry.original.partition";
/// Header: its offset there.
pub const ORIGINAL_OFFSET: &str = "retry.original.offset";
/// Header: its timestamp, milliseconds since the epoch.
pub const ORIGINAL_TIMESTAMP: &str = "retry.original.timestamp";
/// Header: when the first attempt failed (RFC 3339).
pub const FIRST_FAILURE: &str = "retry.failure.first";
/// Header: the class of the last failure.
pub const ERROR_KIND: &str = "retry.error.kind";
/// Header: its message (cut like dead letters').
pub const ERROR_MESSAGE: &str = "retry.error.message";

/// Every header this module writes (a user's own `retry.*` headers stay).
const HEADERS: [&str; 11] = [
    VERSION,
    ROUTE,
    ATTEMPTS,
    DUE,
    ORIGINAL_TOPIC,
    ORIGINAL_PARTITION,
    ORIGINAL_OFFSET,
    ORIGINAL_TIMESTAMP,
    FIRST_FAILURE,
    ERROR_KIND,
    ERROR_MESSAGE,
];

/// The retry topic of `topic` when a route names none.
pub fn default_topic(topic: &str) -> String {
    format!("{topic}.retry")
}

/// Where a retry record stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The route.
    pub route: String,
    /// Handler calls so far.
    pub attempts: u32,
    /// Due, milliseconds since the epoch.
    pub due_ms: i64,
    /// The first failure (none for a record written behind an earlier one
    /// of its key, before any call).
    pub first_failure: Option<DateTime<Utc>>,
    /// The record as first read: original coordinates, key, value and
    /// headers without the `retry.*` ones.
    pub original: InRecord,
}

fn text<'a>(headers: &'a BTreeMap<String, Vec<u8>>, name: &str) -> Result<&'a str, String> {
    let raw = headers
        .get(name)
        .ok_or_else(|| format!("no {name} header"))?;
    std::str::from_utf8(raw).map_err(|_| format!("header {name} is not UTF-8"))
}

fn number<T: std::str::FromStr>(
    headers: &BTreeMap<String, Vec<u8>>,
    name: &str,
) -> Result<T, String> {
    let t = text(headers, name)?;
    t.trim()
        .parse()
        .map_err(|_| format!("header {name} is not a number: `{t}`"))
}

/// Reads a retry record.
pub fn read(record: &InRecord) -> Result<Pending, String> {
    let h = &record.headers;
    let first_failure = match h.get(FIRST_FAILURE) {
        Some(_) => Some(
            DateTime::parse_from_rfc3339(text(h, FIRST_FAILURE)?)
                .map_err(|e| format!("header {FIRST_FAILURE}: {e}"))?
                .with_timezone(&Utc),
        ),
        None => None,
    };
    let attempts = number(h, ATTEMPTS)?;
    if attempts > 0 && first_failure.is_none() {
        return Err(format!("no {FIRST_FAILURE} header"));
    }
    let timestamp = match h.get(ORIGINAL_TIMESTAMP) {
        Some(_) => Some(number(h, ORIGINAL_TIMESTAMP)?),
        None => None,
    };
    Ok(Pending {
        route: text(h, ROUTE)?.to_owned(),
        attempts,
        due_ms: number(h, DUE)?,
        first_failure,
        original: InRecord {
            topic: text(h, ORIGINAL_TOPIC)?.to_owned(),
            partition: number(h, ORIGINAL_PARTITION)?,
            offset: number(h, ORIGINAL_OFFSET)?,
            timestamp,
            key: record.key.clone(),
            value: record.value.clone(),
            headers: h
                .iter()
                .filter(|(k, _)| !HEADERS.contains(&k.as_str()))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        },
    })
}

/// The retry record of `original` (as first read) for `route`, after
/// `attempts` failed calls, due at `due`. With `copartitioned` (the retry
/// topic keeps key order) it goes to the retry partition of `original`'s
/// partition.
#[allow(clippy::too_many_arguments)]
pub fn record(
    retry_topic: &str,
    route: &str,
    original: &InRecord,
    failure: &Failure,
    attempts: u32,
    first_failure: DateTime<Utc>,
    due: DateTime<Utc>,
    copartitioned: bool,
) -> OutRecord {
    let mut out = written(retry_topic, route, original, 0, due, copartitioned);
    for (name, value) in [
        (ATTEMPTS, attempts.to_string()),
        (FIRST_FAILURE, super::dead_letter::time_text(first_failure)),
        (ERROR_KIND, failure.kind.as_str().to_owned()),
        (
            ERROR_MESSAGE,
            super::dead_letter::truncated(&failure.message, super::dead_letter::MESSAGE_LIMIT),
        ),
    ] {
        out.headers.insert(name.to_owned(), value.into_bytes());
    }
    out
}

/// The retry record of `original`, a record of a key that has a record
/// waiting (`ordering = "key"`): due now, no call made; it goes to the
/// retry partition of `original`'s partition, behind the waiting one.
pub fn behind(retry_topic: &str, route: &str, original: &InRecord) -> OutRecord {
    written(retry_topic, route, original, 0, Utc::now(), true)
}

fn written(
    retry_topic: &str,
    route: &str,
    original: &InRecord,
    attempts: u32,
    due: DateTime<Utc>,
    key_order: bool,
) -> OutRecord {
    let mut headers = original.headers.clone();
    for (name, value) in [
        (VERSION, "1".to_owned()),
        (ROUTE, route.to_owned()),
        (ATTEMPTS, attempts.to_string()),
        (DUE, due.timestamp_millis().to_string()),
        (ORIGINAL_TOPIC, original.topic.clone()),
        (ORIGINAL_PARTITION, original.partition.to_string()),
        (ORIGINAL_OFFSET, original.offset.to_string()),
    ] {
        headers.insert(name.to_owned(), value.into_bytes());
    }
    if let Some(ms) = original.timestamp {
        headers.insert(ORIGINAL_TIMESTAMP.to_owned(), ms.to_string().into_bytes());
    }
    OutRecord {
        topic: retry_topic.to_owned(),
        partition: key_order.then_some(original.partition),
        key: original.key.clone(),
        value: original.value.clone(),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::api::FailureKind;

    #[test]
    fn a_retry_record_reads_back_as_the_original_with_its_schedule() {
        let original = InRecord {
            topic: "orders".into(),
            partition: 2,
            offset: 40,
            timestamp: Some(1_700_000_000_000),
            key: Some(b"k".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: BTreeMap::from([("trace".to_owned(), b"t1".to_vec())]),
        };
        let failure = Failure::new(FailureKind::Dependency, "db down");
        let first = Utc::now();
        let due = first + chrono::Duration::seconds(30);
        let out = record(
            "orders.retry",
            "main",
            &original,
            &failure,
            1,
            first,
            due,
            false,
        );
        assert_eq!(out.topic, "orders.retry");
        assert_eq!(out.partition, None);
        assert_eq!(out.key, original.key);
        let back = read(&InRecord {
            topic: "orders.retry".into(),
            partition: 0,
            offset: 7,
            timestamp: None,
            key: out.key.clone(),
            value: out.value.clone(),
            headers: out.headers.clone(),
        })
        .unwrap();
        assert_eq!(back.route, "main");
        assert_eq!(back.attempts, 1);
        assert_eq!(back.due_ms, due.timestamp_millis());
        assert_eq!(back.original, original);
        assert_eq!(
            back.first_failure.map(|t| t.timestamp_millis()),
            Some(first.timestamp_millis())
        );

        let mut broken = out.headers.clone();
        broken.insert(DUE.to_owned(), b"soon".to_vec());
        let e = read(&InRecord {
            topic: "orders.retry".into(),
            partition: 0,
            offset: 7,
            timestamp: None,
            key: None,
            value: None,
            headers: broken,
        })
        .unwrap_err();
        assert!(e.contains("retry.due is not a number"), "{e}");
    }

    #[test]
    fn a_record_behind_its_key_goes_to_its_own_partition_with_no_call_made() {
        let original = InRecord {
            topic: "orders".into(),
            partition: 3,
            offset: 41,
            timestamp: None,
            key: Some(b"k".to_vec()),
            value: Some(b"{}".to_vec()),
            headers: BTreeMap::new(),
        };
        let out = behind("orders.retry", "main", &original);
        assert_eq!(out.partition, Some(3));
        let back = read(&InRecord {
            topic: "orders.retry".into(),
            partition: 3,
            offset: 9,
            timestamp: None,
            key: out.key.clone(),
            value: out.value.clone(),
            headers: out.headers.clone(),
        })
        .unwrap();
        assert_eq!((back.attempts, back.first_failure), (0, None));
        assert!(back.due_ms <= Utc::now().timestamp_millis());
        assert_eq!(back.original, original);
        // A failed record's retry record says when it failed first.
        let mut headers = out.headers.clone();
        headers.insert(ATTEMPTS.to_owned(), b"2".to_vec());
        let e = read(&InRecord {
            topic: "orders.retry".into(),
            partition: 3,
            offset: 9,
            timestamp: None,
            key: None,
            value: None,
            headers,
        })
        .unwrap_err();
        assert!(e.contains("no retry.failure.first header"), "{e}");
    }
}
