//! Dead-letter records: the failed record, unchanged, with headers naming
//! where it came from and why it failed.

use crate::producer::OutRecord;

use super::api::Failure;

/// Header: the topic the record was read from.
pub const ORIGINAL_TOPIC: &str = "dlq.original.topic";
/// Header: its partition.
pub const ORIGINAL_PARTITION: &str = "dlq.original.partition";
/// Header: its offset.
pub const ORIGINAL_OFFSET: &str = "dlq.original.offset";
/// Header: the failure class (`deserialization`, `validation`, ...).
pub const ERROR_KIND: &str = "dlq.error.kind";
/// Header: the failure message.
pub const ERROR_MESSAGE: &str = "dlq.error.message";
/// Header: the route that failed.
pub const ROUTE: &str = "dlq.route";
/// Header: how many times the handler was tried.
pub const ATTEMPTS: &str = "dlq.attempts";

/// The dead-letter topic of `topic` when a route names none.
pub fn default_topic(topic: &str) -> String {
    format!("{topic}.dlq")
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
    /// The route that handled it.
    pub route: &'a str,
}

/// The dead-letter record for a failed record: same key, value and headers,
/// plus the `dlq.*` headers.
pub fn record(
    dlq_topic: &str,
    origin: Origin<'_>,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &std::collections::BTreeMap<String, Vec<u8>>,
    failure: &Failure,
) -> OutRecord {
    let mut headers = headers.clone();
    for (name, value) in [
        (ORIGINAL_TOPIC, origin.topic.to_owned()),
        (ORIGINAL_PARTITION, origin.partition.to_string()),
        (ORIGINAL_OFFSET, origin.offset.to_string()),
        (ERROR_KIND, failure.kind.as_str().to_owned()),
        (ERROR_MESSAGE, failure.message.clone()),
        (ROUTE, origin.route.to_owned()),
    ] {
        headers.insert(name.to_owned(), value.into_bytes());
    }
    OutRecord {
        topic: dlq_topic.to_owned(),
        partition: None,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::api::FailureKind;
    use std::collections::BTreeMap;

    #[test]
    fn keeps_the_record_and_names_its_origin_and_failure() {
        let headers = BTreeMap::from([("correlation_id".to_owned(), b"c1".to_vec())]);
        let failure = Failure {
            kind: FailureKind::Panic,
            message: "boom".into(),
        };
        let origin = Origin {
            topic: "orders",
            partition: 2,
            offset: 41,
            route: "validate",
        };
        let r = record(
            &default_topic("orders"),
            origin,
            Some(b"k"),
            Some(b"{}"),
            &headers,
            &failure,
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
    }
}
