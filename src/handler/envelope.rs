//! The request envelope of seeds 000, 002 and 004, and the reply built from
//! it. Pure logic: no actors, no I/O.
//!
//! A request is a JSON object `{correlation_id, event_type, payload}` or any
//! other payload; its correlation id comes from the `correlation_id` header,
//! else the envelope field; its event type from the `event_type` header, else
//! the envelope field. A reply goes to the request's `reply_to` header when
//! present, else the route's reply topic; it carries the request's key and
//! the same correlation id in header and envelope.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::producer::OutRecord;

/// Header and envelope field of the correlation id.
pub const CORRELATION_ID: &str = "correlation_id";
/// Header and envelope field of the event type.
pub const EVENT_TYPE: &str = "event_type";
/// Envelope field of the payload.
pub const PAYLOAD: &str = "payload";
/// Header naming the topic a reply should go to.
pub const REPLY_TO: &str = "reply_to";

/// Why a record is not a readable request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// The record has no value.
    #[error("record has no value")]
    Empty,
    /// The value is not JSON.
    #[error("value is not JSON: {0}")]
    NotJson(String),
    /// A header that must be text is not UTF-8.
    #[error("header {0} is not UTF-8")]
    HeaderNotUtf8(&'static str),
}

/// What a request says about itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Correlation id, from the header or the envelope.
    pub correlation_id: Option<String>,
    /// Event type, from the header or the envelope.
    pub event_type: Option<String>,
    /// `reply_to` header.
    pub reply_to: Option<String>,
    /// Whether the value was an envelope (`payload` field present).
    pub enveloped: bool,
    /// The payload: the envelope's `payload`, or the whole value.
    pub payload: Value,
}

fn header(
    headers: &BTreeMap<String, Vec<u8>>,
    name: &'static str,
) -> Result<Option<String>, EnvelopeError> {
    headers
        .get(name)
        .map(|v| String::from_utf8(v.clone()).map_err(|_| EnvelopeError::HeaderNotUtf8(name)))
        .transpose()
}

fn text_field(map: &Map<String, Value>, name: &str) -> Option<String> {
    match map.get(name)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Reads a request's correlation id, event type, reply topic and payload.
pub fn read(
    headers: &BTreeMap<String, Vec<u8>>,
    value: Option<&[u8]>,
) -> Result<Request, EnvelopeError> {
    let value = value.ok_or(EnvelopeError::Empty)?;
    let parsed: Value =
        serde_json::from_slice(value).map_err(|e| EnvelopeError::NotJson(e.to_string()))?;
    let (mut correlation_id, mut event_type) = (
        header(headers, CORRELATION_ID)?,
        header(headers, EVENT_TYPE)?,
    );
    let reply_to = header(headers, REPLY_TO)?;
    let (enveloped, payload) = match parsed {
        Value::Object(mut map) => {
            correlation_id = correlation_id.or_else(|| text_field(&map, CORRELATION_ID));
            event_type = event_type.or_else(|| text_field(&map, EVENT_TYPE));
            match map.remove(PAYLOAD) {
                Some(payload) => (true, payload),
                None => (false, Value::Object(map)),
            }
        }
        other => (false, other),
    };
    Ok(Request {
        correlation_id,
        event_type,
        reply_to,
        enveloped,
        payload,
    })
}

/// The reply to `request` carrying `output`: to the `reply_to` header's
/// topic, else `route_reply_topic`; `None` when there is neither. An
/// enveloped request gets an enveloped reply; either way the correlation id
/// is in the header and, for JSON objects, in the body.
pub fn reply(
    request: &Request,
    request_key: Option<&[u8]>,
    route_reply_topic: Option<&str>,
    output: Value,
) -> Option<OutRecord> {
    let topic = request
        .reply_to
        .clone()
        .or_else(|| route_reply_topic.map(ToOwned::to_owned))?;
    let mut headers = BTreeMap::new();
    let body = if request.enveloped {
        let mut map = Map::new();
        if let Some(id) = &request.correlation_id {
            map.insert(CORRELATION_ID.to_owned(), Value::String(id.clone()));
        }
        if let Some(t) = &request.event_type {
            map.insert(
                EVENT_TYPE.to_owned(),
                Value::String(format!("{t}.response")),
            );
        }
        map.insert(PAYLOAD.to_owned(), output);
        Value::Object(map)
    } else {
        match (output, &request.correlation_id) {
            (Value::Object(mut map), Some(id)) => {
                map.entry(CORRELATION_ID)
                    .or_insert_with(|| Value::String(id.clone()));
                Value::Object(map)
            }
            (other, _) => other,
        }
    };
    if let Some(id) = &request.correlation_id {
        headers.insert(CORRELATION_ID.to_owned(), id.as_bytes().to_vec());
    }
    Some(OutRecord {
        topic,
        partition: None,
        key: request_key.map(<[u8]>::to_vec),
        value: Some(body.to_string().into_bytes()),
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn h(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn envelope_fields_and_headers() {
        let body = json!({"correlation_id": "c1", "event_type": "codegen.request.validate",
                          "payload": {"code": "x"}})
        .to_string();
        let r = read(&BTreeMap::new(), Some(body.as_bytes())).unwrap();
        assert_eq!(r.correlation_id.as_deref(), Some("c1"));
        assert_eq!(r.event_type.as_deref(), Some("codegen.request.validate"));
        assert!(r.enveloped);
        assert_eq!(r.payload, json!({"code": "x"}));

        // Headers win over envelope fields.
        let r = read(
            &h(&[("correlation_id", "from-header"), ("reply_to", "replies")]),
            Some(body.as_bytes()),
        )
        .unwrap();
        assert_eq!(r.correlation_id.as_deref(), Some("from-header"));
        assert_eq!(r.reply_to.as_deref(), Some("replies"));
    }

    #[test]
    fn plain_payloads_and_bad_input() {
        let r = read(&h(&[("correlation_id", "c2")]), Some(b"[1,2]")).unwrap();
        assert!(!r.enveloped);
        assert_eq!(r.payload, json!([1, 2]));
        assert_eq!(read(&BTreeMap::new(), None), Err(EnvelopeError::Empty));
        assert!(matches!(
            read(&BTreeMap::new(), Some(b"not json")),
            Err(EnvelopeError::NotJson(_))
        ));
        let bad = BTreeMap::from([("correlation_id".to_owned(), vec![0xff, 0xfe])]);
        assert_eq!(
            read(&bad, Some(b"{}")),
            Err(EnvelopeError::HeaderNotUtf8("correlation_id"))
        );
    }

    #[test]
    fn replies_keep_key_and_correlation_and_pick_the_topic() {
        let body = json!({"correlation_id": "c3", "event_type": "t", "payload": 1}).to_string();
        let req = read(&BTreeMap::new(), Some(body.as_bytes())).unwrap();
        assert!(
            reply(&req, Some(b"k"), None, json!(2)).is_none(),
            "no reply topic"
        );

        let out = reply(&req, Some(b"k"), Some("responses"), json!({"ok": true})).unwrap();
        assert_eq!(out.topic, "responses");
        assert_eq!(out.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(out.headers["correlation_id"], b"c3");
        let v: Value = serde_json::from_slice(out.value.as_deref().unwrap()).unwrap();
        assert_eq!(
            v,
            json!({"correlation_id": "c3", "event_type": "t.response", "payload": {"ok": true}})
        );

        let req = read(
            &h(&[("reply_to", "direct"), ("correlation_id", "c4")]),
            Some(b"{}"),
        )
        .unwrap();
        let out = reply(&req, None, Some("responses"), json!({"n": 1})).unwrap();
        assert_eq!(out.topic, "direct", "reply_to header wins");
        let v: Value = serde_json::from_slice(out.value.as_deref().unwrap()).unwrap();
        assert_eq!(v, json!({"n": 1, "correlation_id": "c4"}));
    }
}
