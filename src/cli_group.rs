//! `kafka-actors group list` and `group describe`: the consumer groups of
//! the cluster ([`crate::kafka::groups`]) from the command line.

use crate::cli::{emit, emit_err};
use crate::config::Config;
use crate::exit::Exit;
use crate::kafka::groups::{self, GroupDescription, GroupListing};

fn or_dash(s: Option<&str>) -> &str {
    match s {
        Some(s) if !s.is_empty() => s,
        _ => "-",
    }
}

fn number(n: Option<i64>) -> String {
    n.map_or_else(|| "-".to_owned(), |n| n.to_string())
}

/// Left-aligned columns, each as wide as its widest cell, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>], indent: &str) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut out = indent.to_owned();
        for (i, (cell, &w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  "));
            }
        }
        out.trim_end().to_owned()
    };
    emit(&line(header.to_vec()));
    for row in rows {
        emit(&line(row.iter().map(String::as_str).collect()));
    }
}

fn print_list(groups: &[GroupListing]) {
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group_id.clone(),
                or_dash(g.group_type.as_deref()).to_owned(),
                or_dash(Some(&g.protocol_type)).to_owned(),
                or_dash(g.state.as_deref()).to_owned(),
                g.coordinator.clone(),
            ]
        })
        .collect();
    table(
        &["GROUP", "TYPE", "PROTOCOL", "STATE", "COORDINATOR"],
        &rows,
        "",
    );
}

/// `group list`: every group on every broker.
pub(crate) async fn list(config: Config, json: bool) -> Exit {
    match groups::list_groups(&config.kafka).await {
        Ok(groups) => {
            if json {
                emit(&serde_json::to_string_pretty(&groups).unwrap_or_default());
            } else {
                print_list(&groups);
            }
            Exit::Ok
        }
        Err(e) => {
            emit_err(&format!("kafka-actors: {e}"));
            Exit::Unavailable
        }
    }
}

/// `orders[0,1] audit[3]`.
fn partitions_text(assignment: &[crate::kafka::TopicPartition]) -> String {
    let mut by_topic: std::collections::BTreeMap<&str, Vec<String>> = Default::default();
    for (topic, partition) in assignment {
        by_topic
            .entry(topic)
            .or_default()
            .push(partition.to_string());
    }
    if by_topic.is_empty() {
        return "-".to_owned();
    }
    by_topic
        .iter()
        .map(|(t, ps)| format!("{t}[{}]", ps.join(",")))
        .collect::<Vec<_>>()
        .join(" ")
}

fn print_description(d: &GroupDescription) {
    emit(&format!(
        "group {} (coordinator {})",
        d.group_id, d.coordinator
    ));
    emit(&format!(
        "  state: {}   protocol type: {}   assignor: {}",
        d.state,
        or_dash(Some(&d.protocol_type)),
        or_dash(Some(&d.protocol))
    ));
    if d.members.is_empty() {
        emit("  members: none");
    } else {
        emit(&format!("  members ({}):", d.members.len()));
        let rows: Vec<Vec<String>> = d
            .members
            .iter()
            .map(|m| {
                vec![
                    m.member_id.clone(),
                    or_dash(m.group_instance_id.as_deref()).to_owned(),
                    or_dash(Some(&m.client_id)).to_owned(),
                    or_dash(Some(&m.client_host)).to_owned(),
                    match &m.assignment_error {
                        Some(e) => format!("(undecodable: {e})"),
                        None => partitions_text(&m.assignment),
                    },
                ]
            })
            .collect();
        table(
            &["MEMBER", "INSTANCE", "CLIENT ID", "HOST", "PARTITIONS"],
            &rows,
            "    ",
        );
    }
    if d.partitions.is_empty() {
        emit("  offsets: none committed");
        return;
    }
    emit(&format!(
        "  offsets ({} partitions, total lag {}):",
        d.partitions.len(),
        d.total_lag()
    ));
    let rows: Vec<Vec<String>> = d
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.topic.clone(),
                p.partition.to_string(),
                number(p.committed_offset),
                number(p.log_end_offset),
                number(p.lag),
                match (&p.owner, &p.error) {
                    (owner, None) => or_dash(owner.as_deref()).to_owned(),
                    (owner, Some(e)) => {
                        format!("{}  (log end unknown: {e})", or_dash(owner.as_deref()))
                    }
                },
            ]
        })
        .collect();
    table(
        &["TOPIC", "PARTITION", "COMMITTED", "LOG END", "LAG", "OWNER"],
        &rows,
        "    ",
    );
}

/// `group describe [GROUP]`: state, members and their partitions, and per
/// partition the committed offset, log end and lag. GROUP defaults to
/// `consumer.group_id`. A group that does not exist is an error (exit 1,
/// like a missing topic in `topics describe`).
pub(crate) async fn describe(config: Config, group: Option<String>, json: bool) -> Exit {
    let group = group.unwrap_or_else(|| config.consumer.group_id.clone());
    let description = match groups::describe_group(&config.kafka, &group).await {
        Ok(d) => d,
        Err(e) => {
            emit_err(&format!("kafka-actors: group {group}: {e}"));
            return Exit::Unavailable;
        }
    };
    if !description.exists() {
        // Kafka 4 says why (a KIP-848 group is "not a classic group").
        let why = description
            .broker_message
            .as_deref()
            .filter(|m| !m.is_empty())
            .map(|m| format!(" (coordinator: {m})"))
            .unwrap_or_default();
        emit_err(&format!("kafka-actors: group {group} does not exist{why}"));
        return Exit::Failure;
    }
    if json {
        emit(&serde_json::to_string_pretty(&description).unwrap_or_default());
    } else {
        print_description(&description);
    }
    Exit::Ok
}
