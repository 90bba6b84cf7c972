//! Deserialisers for values that arrive in more than one shape.

use serde::de::{self, Deserializer, SeqAccess, Visitor};
use std::fmt;

/// Splits a bootstrap list given as one string: a JSON list
/// (`["a:9092", "b:9092"]`, seed 002) or a comma-separated list
/// (`a:9092,b:9092`, seeds 000 and 003). Empty items are an error, so a
/// stray comma is reported instead of silently dropped.
pub(crate) fn split_host_list(raw: &str) -> Result<Vec<String>, String> {
    let trimmed = raw.trim();
    if trimmed.starts_with('[') {
        let hosts: Vec<String> = serde_json::from_str(trimmed)
            .map_err(|e| format!("malformed list `{raw}`: {e} (expected [\"host:port\", ...])"))?;
        return check_hosts(hosts.into_iter(), raw);
    }
    check_hosts(trimmed.split(',').map(|h| h.trim().to_owned()), raw)
}

fn check_hosts(hosts: impl Iterator<Item = String>, raw: &str) -> Result<Vec<String>, String> {
    let hosts: Vec<String> = hosts.map(|h| h.trim().to_owned()).collect();
    if hosts.iter().any(String::is_empty) {
        return Err(format!(
            "malformed list `{raw}`: empty entry (expected host:port[,host:port...])"
        ));
    }
    Ok(hosts)
}

pub(crate) fn host_list<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<String>, D::Error> {
    struct HostList;

    impl<'de> Visitor<'de> for HostList {
        type Value = Vec<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of host:port strings, or one comma-separated string")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            split_host_list(v).map_err(E::custom)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut hosts = Vec::new();
            while let Some(host) = seq.next_element::<String>()? {
                hosts.push(host);
            }
            Ok(hosts)
        }
    }

    deserializer.deserialize_any(HostList)
}

/// `acks` as Kafka (`all`, `-1`, `1`, `0`) and seed 001 (`leader`, `none`)
/// spell it, as a string or a number (environment values `1` and `0` arrive
/// as integers).
pub(crate) mod acks {
    use super::*;
    use crate::config::Acks;
    use serde::Serializer;

    pub(crate) fn parse(v: &str) -> Option<Acks> {
        match v.trim().to_ascii_lowercase().as_str() {
            "all" | "-1" => Some(Acks::All),
            "1" | "leader" => Some(Acks::Leader),
            "0" | "none" => Some(Acks::None),
            _ => None,
        }
    }

    pub(crate) fn serialize<S: Serializer>(acks: &Acks, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(match acks {
            Acks::All => "all",
            Acks::Leader => "1",
            Acks::None => "0",
        })
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Acks, D::Error> {
        struct AcksVisitor;

        impl Visitor<'_> for AcksVisitor {
            type Value = Acks;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("one of all, -1, 1, leader, 0, none")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Acks, E> {
                parse(v).ok_or_else(|| E::invalid_value(de::Unexpected::Str(v), &self))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Acks, E> {
                parse(&v.to_string())
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Signed(v), &self))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Acks, E> {
                parse(&v.to_string())
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(v), &self))
            }
        }

        d.deserialize_any(AcksVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_lists_in_every_documented_form() {
        assert_eq!(split_host_list("a:1").unwrap(), vec!["a:1"]);
        assert_eq!(split_host_list("a:1, b:2").unwrap(), vec!["a:1", "b:2"]);
        assert_eq!(
            split_host_list(r#"["localhost:9092"]"#).unwrap(),
            vec!["localhost:9092"]
        );
        assert!(
            split_host_list("a:1,,b:2")
                .unwrap_err()
                .contains("empty entry")
        );
        assert!(
            split_host_list(r#"["a:1""#)
                .unwrap_err()
                .contains("malformed list")
        );
        assert!(split_host_list("").is_err());
    }

    #[test]
    fn acks_spellings() {
        use crate::config::Acks;
        for (s, a) in [
            ("all", Acks::All),
            ("-1", Acks::All),
            ("ALL", Acks::All),
            ("1", Acks::Leader),
            ("leader", Acks::Leader),
            ("0", Acks::None),
            ("none", Acks::None),
        ] {
            assert_eq!(acks::parse(s), Some(a), "{s}");
        }
        assert_eq!(acks::parse("2"), None);
    }
}
