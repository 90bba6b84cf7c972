//! The consumer protocol's subscription and assignment blobs.
//!
//! A classic consumer group carries them as opaque bytes: each member's
//! JoinGroup `metadata` is a [`Subscription`], each SyncGroup assignment an
//! [`Assignment`]. The broker stores them and hands them back (DescribeGroups
//! shows both), so Java, librdkafka, Go and kafka-actors members of one group
//! must agree on the layout. It is Kafka's `ConsumerProtocolSubscription` and
//! `ConsumerProtocolAssignment` messages (non-flexible, encoded through the
//! `kafka-protocol` crate), preceded by a 2-byte big-endian version that the
//! messages themselves do not carry:
//!
//! ```text
//! Subscription => Version Topics UserData [OwnedPartitions] [GenerationId] [RackId]
//!   Version         => INT16
//!   Topics          => ARRAY(STRING)
//!   UserData        => NULLABLE_BYTES
//!   OwnedPartitions => ARRAY(Topic ARRAY(INT32))     v1+
//!   GenerationId    => INT32 (-1: none)              v2+
//!   RackId          => NULLABLE_STRING               v3+
//! Assignment => Version AssignedPartitions UserData
//!   AssignedPartitions => ARRAY(Topic ARRAY(INT32))
//!   UserData           => NULLABLE_BYTES
//! ```
//!
//! Like Java's `ConsumerProtocol`, decoding reads a version newer than the
//! highest known one with the highest known layout (new versions may only
//! append fields) and ignores trailing bytes. Before a blob reaches the
//! decoder, its layout is walked with bounds checks: a blob from another
//! client that lies about an array's length is an error naming the field,
//! not a huge allocation.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::TopicName;
use kafka_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedTopic,
};
use kafka_protocol::messages::consumer_protocol_subscription::{
    ConsumerProtocolSubscription, TopicPartition as OwnedTopic,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::{ErrorKind, TopicPartition};

/// The protocol type of groups whose members speak this protocol (JoinGroup
/// `protocol_type`, DescribeGroups `protocol_type`).
pub const PROTOCOL_TYPE: &str = "consumer";

/// Highest subscription version known here and written by default: v3 (rack
/// id, KIP-881), what the Java client writes since 3.5 and still in 4.x, and
/// the highest that `kafka-protocol` 0.18 encodes.
pub const SUBSCRIPTION_VERSION: i16 = 3;

/// Highest assignment version known here and written by default. Java keeps
/// both parts of the protocol at the same version (v3 has the same layout as
/// v0); `kafka-protocol` 0.18 encodes up to v3.
pub const ASSIGNMENT_VERSION: i16 = 3;

/// What a member asks for when it joins: JoinGroup's protocol metadata.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    /// Topics the member wants to consume.
    pub topics: Vec<String>,
    /// Assignor-specific data (see [`cooperative_user_data`]).
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (v1+), which cooperative assignors
    /// keep in place. Encoded grouped by topic, topics in first-seen order.
    pub owned: Vec<TopicPartition>,
    /// Generation the owned partitions come from (v2+); -1 when absent.
    pub generation: i32,
    /// The member's rack (v3+), for rack-aware assignment.
    pub rack: Option<String>,
}

/// What a member is given: SyncGroup's assignment.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    /// The assigned partitions. Encoded grouped by topic, topics in
    /// first-seen order.
    pub partitions: Vec<TopicPartition>,
    /// Assignor-specific data.
    pub user_data: Option<Bytes>,
}

/// A blob that cannot be decoded, or a value that cannot be encoded. Every
/// variant names the blob; a malformed one names the field and the byte.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConsumerProtocolError {
    /// Shorter than the 2-byte version prefix.
    #[error("consumer protocol {blob}: {len} byte(s) is too short for the 2-byte version prefix")]
    NoVersion {
        /// `subscription` or `assignment`.
        blob: &'static str,
        /// The blob's length.
        len: usize,
    },
    /// A negative version (Java rejects these too).
    #[error("consumer protocol {blob}: unsupported version {version}")]
    UnsupportedVersion {
        /// `subscription` or `assignment`.
        blob: &'static str,
        /// The version read.
        version: i16,
    },
    /// The body does not match the version's layout.
    #[error("consumer protocol {blob} v{version}: {field} at byte {at}: {problem}")]
    Malformed {
        /// `subscription` or `assignment`.
        blob: &'static str,
        /// The version the body was read as.
        version: i16,
        /// The field, as a path (`owned_partitions[1].partitions`).
        field: String,
        /// Offset of the field in the blob, version prefix included.
        at: usize,
        /// What is wrong.
        problem: String,
    },
    /// A value the layout cannot hold (a string over 32767 bytes).
    #[error("consumer protocol {blob}: cannot encode: {problem}")]
    Unencodable {
        /// `subscription` or `assignment`.
        blob: &'static str,
        /// What is wrong.
        problem: String,
    },
}

impl ConsumerProtocolError {
    /// Always permanent: the same bytes fail the same way.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::NoVersion { .. }
            | Self::UnsupportedVersion { .. }
            | Self::Malformed { .. }
            | Self::Unencodable { .. } => ErrorKind::Permanent,
        }
    }

    /// A short, stable label for metrics.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NoVersion { .. } => "no_version",
            Self::UnsupportedVersion { .. } => "unsupported_version",
            Self::Malformed { .. } => "malformed",
            Self::Unencodable { .. } => "unencodable",
        }
    }
}

const SUBSCRIPTION: &str = "subscription";
const ASSIGNMENT: &str = "assignment";

/// Groups partitions by topic, topics in first-seen order (the wire groups
/// them; Java uses a map, so no order is promised to readers).
fn by_topic(partitions: &[TopicPartition]) -> Vec<(&str, Vec<i32>)> {
    let mut out: Vec<(&str, Vec<i32>)> = Vec::new();
    for (topic, partition) in partitions {
        match out.iter_mut().find(|(t, _)| *t == topic.as_str()) {
            Some((_, ps)) => ps.push(*partition),
            None => out.push((topic, vec![*partition])),
        }
    }
    out
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}

fn prefixed(
    blob: &'static str,
    version: i16,
    body: &impl Encodable,
) -> Result<Bytes, ConsumerProtocolError> {
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    body.encode(&mut buf, version)
        .map_err(|e| ConsumerProtocolError::Unencodable {
            blob,
            problem: format!("{e:#}").trim_end().to_owned(),
        })?;
    Ok(buf.freeze())
}

/// Encodes `s` at `version` (clamped to `0..=`[`SUBSCRIPTION_VERSION`], as
/// Java writes a too-new version as its highest), version prefix included.
/// Fields newer than `version` are left out.
pub fn try_encode_subscription(
    s: &Subscription,
    version: i16,
) -> Result<Bytes, ConsumerProtocolError> {
    let version = version.clamp(0, SUBSCRIPTION_VERSION);
    let body = ConsumerProtocolSubscription::default()
        .with_topics(
            s.topics
                .iter()
                .map(|t| StrBytes::from_string(t.clone()))
                .collect(),
        )
        .with_user_data(s.user_data.clone())
        .with_owned_partitions(
            by_topic(&s.owned)
                .into_iter()
                .map(|(topic, partitions)| {
                    OwnedTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_generation_id(s.generation)
        .with_rack_id(s.rack.clone().map(StrBytes::from_string));
    prefixed(SUBSCRIPTION, version, &body)
}

/// [`try_encode_subscription`] for values that fit the layout.
///
/// # Panics
/// If a topic name or the rack id is longer than 32767 bytes (Kafka limits
/// topic names to 249 characters); use [`try_encode_subscription`] for
/// unchecked input.
pub fn encode_subscription(s: &Subscription, version: i16) -> Bytes {
    match try_encode_subscription(s, version) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// Encodes `a` at `version` (clamped to `0..=`[`ASSIGNMENT_VERSION`]),
/// version prefix included.
pub fn try_encode_assignment(a: &Assignment, version: i16) -> Result<Bytes, ConsumerProtocolError> {
    let version = version.clamp(0, ASSIGNMENT_VERSION);
    let body = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            by_topic(&a.partitions)
                .into_iter()
                .map(|(topic, partitions)| {
                    AssignedTopic::default()
                        .with_topic(topic_name(topic))
                        .with_partitions(partitions)
                })
                .collect(),
        )
        .with_user_data(a.user_data.clone());
    prefixed(ASSIGNMENT, version, &body)
}

/// [`try_encode_assignment`] for values that fit the layout.
///
/// # Panics
/// If a topic name is longer than 32767 bytes (Kafka limits topic names to
/// 249 characters); use [`try_encode_assignment`] for unchecked input.
pub fn encode_assignment(a: &Assignment, version: i16) -> Bytes {
    match try_encode_assignment(a, version) {
        Ok(b) => b,
        Err(e) => panic!("{e}"),
    }
}

/// Reads the version prefix: the version to decode the body with (a newer
/// one is read as `highest`) and the body.
fn split_version(
    blob: &'static str,
    b: &[u8],
    highest: i16,
) -> Result<(i16, Bytes), ConsumerProtocolError> {
    let [hi, lo, rest @ ..] = b else {
        return Err(ConsumerProtocolError::NoVersion { blob, len: b.len() });
    };
    let version = i16::from_be_bytes([*hi, *lo]);
    if version < 0 {
        return Err(ConsumerProtocolError::UnsupportedVersion { blob, version });
    }
    Ok((version.min(highest), Bytes::copy_from_slice(rest)))
}

/// Decodes a JoinGroup member metadata blob of any version.
pub fn decode_subscription(b: &[u8]) -> Result<Subscription, ConsumerProtocolError> {
    let (version, body) = split_version(SUBSCRIPTION, b, SUBSCRIPTION_VERSION)?;
    let mut walk = Walk::new(SUBSCRIPTION, version, &body);
    walk.array("topics", |w, _| w.string(false))?;
    walk.bytes("user_data")?;
    if version >= 1 {
        walk.topic_partitions("owned_partitions")?;
    }
    if version >= 2 {
        walk.fixed("generation_id", 4)?;
    }
    if version >= 3 {
        walk.string_field("rack_id", true)?;
    }
    let m = ConsumerProtocolSubscription::decode(&mut body.clone(), version)
        .map_err(|e| walk.undecodable(&e))?;
    Ok(Subscription {
        topics: m.topics.iter().map(ToString::to_string).collect(),
        user_data: m.user_data,
        owned: m
            .owned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        generation: m.generation_id,
        // Java reads an empty rack as no rack.
        rack: m.rack_id.map(|r| r.to_string()).filter(|r| !r.is_empty()),
    })
}

/// Decodes a SyncGroup assignment blob of any version. An empty blob (what
/// the broker hands a member the leader gave nothing, and what
/// DescribeGroups shows outside the Stable state) is no partitions.
pub fn decode_assignment(b: &[u8]) -> Result<Assignment, ConsumerProtocolError> {
    if b.is_empty() {
        return Ok(Assignment::default());
    }
    let (version, body) = split_version(ASSIGNMENT, b, ASSIGNMENT_VERSION)?;
    let mut walk = Walk::new(ASSIGNMENT, version, &body);
    walk.topic_partitions("assigned_partitions")?;
    walk.bytes("user_data")?;
    let m = ConsumerProtocolAssignment::decode(&mut body.clone(), version)
        .map_err(|e| walk.undecodable(&e))?;
    Ok(Assignment {
        partitions: m
            .assigned_partitions
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| (t.topic.0.to_string(), *p)))
            .collect(),
        user_data: m.user_data,
    })
}

/// The user data Java's `CooperativeStickyAssignor` puts in every
/// subscription: the member's generation as a big-endian INT32 (its
/// `COOPERATIVE_STICKY_ASSIGNOR_USER_DATA_V0`), which subscription v2 made
/// redundant but Java still writes for members that read older versions.
pub fn cooperative_user_data(generation: i32) -> Bytes {
    Bytes::copy_from_slice(&generation.to_be_bytes())
}

/// The generation in [`cooperative_user_data`]: the first 4 bytes, big
/// endian. `None` when shorter (Java then assumes the default generation,
/// -1). Java prefers the subscription's own generation (v2+) and reads this
/// only when that is absent.
pub fn generation_from_user_data(b: &[u8]) -> Option<i32> {
    let [a, b, c, d, ..] = b else {
        return None;
    };
    Some(i32::from_be_bytes([*a, *b, *c, *d]))
}

/// The prefix of the user data with which a kafka-actors member advertises
/// its admin API to the other members (see [`admin_user_data`]).
const ADMIN_PREFIX: &[u8] = b"kafka-actors/1 admin=";

/// The user data a kafka-actors member puts in the subscriptions of the
/// assignors that read no user data (`range`, `roundrobin`: no Java,
/// librdkafka or Go assignor of those names reads it): where its admin API
/// answers, so that an instance coordinating an offset reset can ask each
/// partition's owner to seek. `advert` is a base URL (`http://host:port`),
/// or `:port` when the members should use the address the broker sees the
/// member connect from ([`admin_url`]).
pub fn admin_user_data(advert: &str) -> Bytes {
    let mut b = ADMIN_PREFIX.to_vec();
    b.extend_from_slice(advert.as_bytes());
    Bytes::from(b)
}

/// The admin API's base URL in a member's [`admin_user_data`], if it has
/// one; `client_host` (as DescribeGroups gives it: `/10.0.0.7`) completes a
/// `:port` advert.
pub fn admin_url(user_data: &[u8], client_host: &str) -> Option<String> {
    let advert = std::str::from_utf8(user_data.strip_prefix(ADMIN_PREFIX)?).ok()?;
    match advert.strip_prefix(':') {
        Some(port) => {
            let port: u16 = port.parse().ok()?;
            let host = client_host.trim_start_matches('/');
            let host = host.rsplit_once('/').map_or(host, |(_, ip)| ip);
            if host.is_empty() {
                return None;
            }
            Some(if host.contains(':') {
                format!("http://[{host}]:{port}")
            } else {
                format!("http://{host}:{port}")
            })
        }
        None if advert.starts_with("http://") || advert.starts_with("https://") => {
            Some(advert.trim_end_matches('/').to_owned())
        }
        None => None,
    }
}

/// A bounds-checked walk over a body's layout, before the decoder (whose
/// arrays preallocate whatever length the blob claims) sees it.
struct Walk<'a> {
    blob: &'static str,
    version: i16,
    buf: &'a [u8],
    pos: usize,
    path: Vec<String>,
}

impl<'a> Walk<'a> {
    fn new(blob: &'static str, version: i16, buf: &'a [u8]) -> Self {
        Self {
            blob,
            version,
            buf,
            pos: 0,
            path: Vec::new(),
        }
    }

    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn error(&self, problem: String) -> ConsumerProtocolError {
        ConsumerProtocolError::Malformed {
            blob: self.blob,
            version: self.version,
            field: self.path.join("."),
            // + 2: offsets count from the start of the blob.
            at: self.pos + 2,
            problem,
        }
    }

    /// A decoder error the walk did not foresee (it checks lengths, not
    /// every value).
    fn undecodable(&self, e: &impl std::fmt::Display) -> ConsumerProtocolError {
        ConsumerProtocolError::Malformed {
            blob: self.blob,
            version: self.version,
            field: "(body)".to_owned(),
            at: 2,
            problem: format!("{e:#}").trim_end().to_owned(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ConsumerProtocolError> {
        if self.left() < n {
            return Err(self.error(format!(
                "truncated: needs {n} byte(s), {} left",
                self.left()
            )));
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn i16(&mut self) -> Result<i16, ConsumerProtocolError> {
        let b = self.take(2)?;
        Ok(i16::from_be_bytes([b[0], b[1]]))
    }

    fn i32(&mut self) -> Result<i32, ConsumerProtocolError> {
        let b = self.take(4)?;
        Ok(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn in_field<T>(
        &mut self,
        name: &str,
        f: impl FnOnce(&mut Self) -> Result<T, ConsumerProtocolError>,
    ) -> Result<T, ConsumerProtocolError> {
        self.path.push(name.to_owned());
        let out = f(self)?;
        self.path.pop();
        Ok(out)
    }

    fn fixed(&mut self, name: &str, n: usize) -> Result<(), ConsumerProtocolError> {
        self.in_field(name, |w| w.take(n).map(drop))
    }

    /// A STRING (INT16 length) or NULLABLE_STRING, at the current path.
    fn string(&mut self, nullable: bool) -> Result<(), ConsumerProtocolError> {
        let start = self.pos;
        match self.i16()? {
            -1 if nullable => Ok(()),
            n if n < 0 => {
                self.pos = start;
                Err(self.error(format!("invalid string length {n}")))
            }
            n => {
                let bytes = self.take(n as usize)?;
                if std::str::from_utf8(bytes).is_err() {
                    self.pos = start;
                    return Err(self.error("string is not UTF-8".to_owned()));
                }
                Ok(())
            }
        }
    }

    fn string_field(&mut self, name: &str, nullable: bool) -> Result<(), ConsumerProtocolError> {
        self.in_field(name, |w| w.string(nullable))
    }

    /// NULLABLE_BYTES (INT32 length).
    fn bytes(&mut self, name: &str) -> Result<(), ConsumerProtocolError> {
        self.in_field(name, |w| {
            let start = w.pos;
            match w.i32()? {
                -1 => Ok(()),
                n if n < 0 => {
                    w.pos = start;
                    Err(w.error(format!("invalid length {n}")))
                }
                n => w.take(n as usize).map(drop),
            }
        })
    }

    /// ARRAY (INT32 count, -1 invalid: none of these arrays is nullable);
    /// each element at least `min` bytes, so a count the rest of the blob
    /// cannot hold fails before anything is allocated for it.
    fn array_min(
        &mut self,
        name: &str,
        min: usize,
        mut element: impl FnMut(&mut Self, usize) -> Result<(), ConsumerProtocolError>,
    ) -> Result<(), ConsumerProtocolError> {
        self.in_field(name, |w| {
            let start = w.pos;
            let n = w.i32()?;
            if n < 0 {
                w.pos = start;
                return Err(w.error(format!("invalid array length {n}")));
            }
            let n = n as usize;
            if n.saturating_mul(min) > w.left() {
                w.pos = start;
                return Err(w.error(format!(
                    "array of {n} element(s) does not fit in the {} byte(s) left",
                    w.left() - 4
                )));
            }
            for i in 0..n {
                let last = w.path.pop().unwrap_or_default();
                w.path.push(format!("{last}[{i}]"));
                element(w, i)?;
                w.path.pop();
                w.path.push(last);
            }
            Ok(())
        })
    }

    fn array(
        &mut self,
        name: &str,
        element: impl FnMut(&mut Self, usize) -> Result<(), ConsumerProtocolError>,
    ) -> Result<(), ConsumerProtocolError> {
        // The smallest element of any array here is an empty string (2 bytes).
        self.array_min(name, 2, element)
    }

    /// ARRAY(Topic STRING, Partitions ARRAY(INT32)).
    fn topic_partitions(&mut self, name: &str) -> Result<(), ConsumerProtocolError> {
        // An element is at least an empty topic and an empty array: 6 bytes.
        self.array_min(name, 6, |w, _| {
            w.string_field("topic", false)?;
            w.array_min("partitions", 4, |w, _| w.take(4).map(drop))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tp(t: &str, p: i32) -> TopicPartition {
        (t.to_owned(), p)
    }

    fn full_subscription() -> Subscription {
        Subscription {
            topics: vec!["orders".into(), "payments".into()],
            user_data: Some(Bytes::from_static(b"\x00\x00\x00\x07")),
            owned: vec![tp("orders", 0), tp("orders", 2), tp("payments", 1)],
            generation: 7,
            rack: Some("eu-west-1a".into()),
        }
    }

    /// What a reader of `version` sees of `s`: the fields that version has.
    fn as_of(s: &Subscription, version: i16) -> Subscription {
        Subscription {
            topics: s.topics.clone(),
            user_data: s.user_data.clone(),
            owned: if version >= 1 {
                s.owned.clone()
            } else {
                vec![]
            },
            generation: if version >= 2 { s.generation } else { -1 },
            rack: if version >= 3 { s.rack.clone() } else { None },
        }
    }

    #[test]
    fn subscriptions_round_trip_at_every_version() {
        let s = full_subscription();
        for version in 0..=SUBSCRIPTION_VERSION {
            let b = encode_subscription(&s, version);
            assert_eq!(i16::from_be_bytes([b[0], b[1]]), version);
            assert_eq!(
                decode_subscription(&b).unwrap(),
                as_of(&s, version),
                "v{version}"
            );
        }
        let empty = Subscription {
            generation: -1,
            ..Subscription::default()
        };
        for version in 0..=SUBSCRIPTION_VERSION {
            let b = encode_subscription(&empty, version);
            assert_eq!(decode_subscription(&b).unwrap(), empty, "v{version}");
        }
    }

    #[test]
    fn assignments_round_trip_at_every_version() {
        let a = Assignment {
            partitions: vec![tp("orders", 1), tp("orders", 0), tp("audit", 4)],
            user_data: Some(Bytes::from_static(b"sticky")),
        };
        for version in 0..=ASSIGNMENT_VERSION {
            let b = encode_assignment(&a, version);
            assert_eq!(i16::from_be_bytes([b[0], b[1]]), version);
            assert_eq!(decode_assignment(&b).unwrap(), a, "v{version}");
        }
        let none = Assignment::default();
        assert_eq!(
            decode_assignment(&encode_assignment(&none, 3)).unwrap(),
            none
        );
    }

    #[test]
    fn partitions_are_grouped_by_topic_on_the_wire() {
        let a = Assignment {
            partitions: vec![tp("a", 0), tp("b", 0), tp("a", 1)],
            user_data: None,
        };
        let decoded = decode_assignment(&encode_assignment(&a, 3)).unwrap();
        assert_eq!(decoded.partitions, [tp("a", 0), tp("a", 1), tp("b", 0)]);
    }

    fn string(out: &mut Vec<u8>, s: &str) {
        out.extend_from_slice(&(s.len() as i16).to_be_bytes());
        out.extend_from_slice(s.as_bytes());
    }

    /// A v3 subscription byte for byte as the schema (and so Java's
    /// `ConsumerProtocol.serializeSubscription`) lays it out.
    fn java_subscription_v3() -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&3i16.to_be_bytes()); // version
        b.extend_from_slice(&1i32.to_be_bytes()); // topics: 1
        string(&mut b, "orders");
        b.extend_from_slice(&4i32.to_be_bytes()); // user_data: 4 bytes
        b.extend_from_slice(&5i32.to_be_bytes()); //   generation 5 (cooperative-sticky)
        b.extend_from_slice(&1i32.to_be_bytes()); // owned_partitions: 1 topic
        string(&mut b, "orders");
        b.extend_from_slice(&2i32.to_be_bytes()); //   2 partitions
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&2i32.to_be_bytes());
        b.extend_from_slice(&5i32.to_be_bytes()); // generation_id
        string(&mut b, "rack-a"); // rack_id
        b
    }

    #[test]
    fn a_java_subscription_decodes_and_is_reproduced_byte_for_byte() {
        let blob = java_subscription_v3();
        let s = decode_subscription(&blob).unwrap();
        assert_eq!(s.topics, ["orders"]);
        assert_eq!(s.owned, [tp("orders", 0), tp("orders", 2)]);
        assert_eq!(s.generation, 5);
        assert_eq!(s.rack.as_deref(), Some("rack-a"));
        assert_eq!(
            generation_from_user_data(s.user_data.as_deref().unwrap()),
            Some(5)
        );
        assert_eq!(encode_subscription(&s, 3).as_ref(), blob.as_slice());
    }

    #[test]
    fn a_java_assignment_decodes() {
        let mut b = Vec::new();
        b.extend_from_slice(&3i16.to_be_bytes());
        b.extend_from_slice(&2i32.to_be_bytes()); // 2 topics
        string(&mut b, "orders");
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&1i32.to_be_bytes());
        string(&mut b, "audit");
        b.extend_from_slice(&0i32.to_be_bytes()); // no partitions
        b.extend_from_slice(&(-1i32).to_be_bytes()); // user_data: null
        let a = decode_assignment(&b).unwrap();
        assert_eq!(a.partitions, [tp("orders", 1)]);
        assert_eq!(a.user_data, None);
    }

    #[test]
    fn a_newer_version_is_read_as_the_highest_known_and_trailing_bytes_ignored() {
        let mut blob = java_subscription_v3();
        blob[..2].copy_from_slice(&9i16.to_be_bytes());
        blob.extend_from_slice(b"field-from-v9");
        let s = decode_subscription(&blob).unwrap();
        assert_eq!(s.rack.as_deref(), Some("rack-a"));
        assert_eq!(s.generation, 5);

        let mut a = encode_assignment(
            &Assignment {
                partitions: vec![tp("t", 3)],
                user_data: None,
            },
            3,
        )
        .to_vec();
        a[..2].copy_from_slice(&4i16.to_be_bytes());
        a.push(0xff);
        assert_eq!(decode_assignment(&a).unwrap().partitions, [tp("t", 3)]);
    }

    #[test]
    fn an_empty_assignment_is_no_partitions_and_an_empty_subscription_an_error() {
        assert_eq!(decode_assignment(&[]).unwrap(), Assignment::default());
        let e = decode_subscription(&[]).unwrap_err();
        assert_eq!(
            e,
            ConsumerProtocolError::NoVersion {
                blob: "subscription",
                len: 0
            }
        );
        assert!(
            e.to_string().contains("too short for the 2-byte version"),
            "{e}"
        );
        let e = decode_assignment(&[0]).unwrap_err();
        assert!(e.to_string().contains("assignment: 1 byte(s)"), "{e}");
    }

    #[test]
    fn a_truncated_blob_names_the_field_and_the_byte() {
        let blob = java_subscription_v3();
        // Cut inside the generation (bytes 46..50).
        let e = decode_subscription(&blob[..48]).unwrap_err();
        let text = e.to_string();
        assert_eq!(
            text,
            "consumer protocol subscription v3: generation_id at byte 46: \
             truncated: needs 4 byte(s), 2 left"
        );
        assert_eq!(e.kind(), ErrorKind::Permanent);
        assert_eq!(e.code(), "malformed");

        // Cut inside the second owned partition (bytes 42..46): the array
        // of two INT32s no longer fits.
        let e = decode_subscription(&blob[..44]).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("owned_partitions[0].partitions at byte 34"),
            "{text}"
        );
        assert!(
            text.contains("array of 2 element(s) does not fit in the 6 byte(s) left"),
            "{text}"
        );

        // Without the rack: a v3 reader wants its length.
        let e = decode_subscription(&blob[..blob.len() - 8]).unwrap_err();
        assert!(e.to_string().contains("rack_id"), "{e}");
    }

    #[test]
    fn lying_lengths_are_errors_not_allocations() {
        let mut b = Vec::new();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&i32::MAX.to_be_bytes()); // 2^31 topics claimed
        let e = decode_subscription(&b).unwrap_err();
        assert!(e.to_string().contains("topics"), "{e}");
        assert!(e.to_string().contains("does not fit"), "{e}");

        let mut b = Vec::new();
        b.extend_from_slice(&0i16.to_be_bytes());
        b.extend_from_slice(&(-1i32).to_be_bytes()); // null, not allowed here
        let e = decode_assignment(&b).unwrap_err();
        assert!(e.to_string().contains("assigned_partitions"), "{e}");
        assert!(e.to_string().contains("invalid array length -1"), "{e}");

        let mut b = 0i16.to_be_bytes().to_vec();
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&2i16.to_be_bytes());
        b.extend_from_slice(&[0xff, 0xfe]);
        let e = decode_subscription(&b).unwrap_err();
        assert!(e.to_string().contains("topics[0]"), "{e}");
        assert!(e.to_string().contains("not UTF-8"), "{e}");
    }

    #[test]
    fn a_negative_version_is_refused() {
        let e = decode_assignment(&(-1i16).to_be_bytes()).unwrap_err();
        assert_eq!(
            e,
            ConsumerProtocolError::UnsupportedVersion {
                blob: "assignment",
                version: -1
            }
        );
    }

    #[test]
    fn versions_out_of_range_are_clamped_when_encoding() {
        let s = full_subscription();
        assert_eq!(encode_subscription(&s, 7), encode_subscription(&s, 3));
        assert_eq!(&encode_subscription(&s, -2)[..2], &[0, 0]);
        let too_long = Subscription {
            rack: Some("r".repeat(40_000)),
            ..full_subscription()
        };
        let e = try_encode_subscription(&too_long, 3).unwrap_err();
        assert_eq!(e.code(), "unencodable");
        assert!(
            try_encode_subscription(&too_long, 2).is_ok(),
            "v2 has no rack"
        );
    }

    #[test]
    fn cooperative_user_data_is_javas_int32() {
        assert_eq!(cooperative_user_data(3).as_ref(), &[0, 0, 0, 3]);
        assert_eq!(cooperative_user_data(-1).as_ref(), &[0xff; 4]);
        assert_eq!(
            generation_from_user_data(&cooperative_user_data(12)),
            Some(12)
        );
        assert_eq!(generation_from_user_data(&[0, 1]), None);
    }
    #[test]
    fn admin_adverts_round_trip_and_take_the_member_host_for_a_bare_port() {
        let port = admin_user_data(":8080");
        assert_eq!(
            admin_url(&port, "/10.0.0.7").as_deref(),
            Some("http://10.0.0.7:8080")
        );
        assert_eq!(
            admin_url(&port, "/::1").as_deref(),
            Some("http://[::1]:8080")
        );
        assert_eq!(admin_url(&port, ""), None);
        let url = admin_user_data("https://svc-0.svc:9443/");
        assert_eq!(
            admin_url(&url, "/10.0.0.7").as_deref(),
            Some("https://svc-0.svc:9443")
        );
        // Other members' user data (Java's cooperative generation, a
        // sticky partition list) is not an advert.
        assert_eq!(admin_url(&cooperative_user_data(3), "/10.0.0.7"), None);
        assert_eq!(admin_url(b"kafka-actors/1 admin=ftp://x", "/h"), None);
        assert_eq!(admin_url(b"kafka-actors/1 admin=:99999", "/h"), None);
    }
}
