//! Every metric name, in one place, with its description.
//!
//! Labels are bounded: topic, partition, handler, outcome, error code —
//! never keys, offsets or error text.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Namespace of every metric.
pub const NAMESPACE: &str = "kafka_actors";

/// Build information; always 1, labelled with `version`.
pub const BUILD_INFO: &str = "kafka_actors_build_info";
/// 1 while the last broker check succeeded, else 0.
pub const BROKER_UP: &str = "kafka_actors_broker_up";
/// Broker checks, labelled `outcome` = `ok` | error code.
pub const BROKER_CHECKS_TOTAL: &str = "kafka_actors_broker_checks_total";
/// Duration of one broker check (connect + ApiVersions + Metadata).
pub const BROKER_CHECK_DURATION_SECONDS: &str = "kafka_actors_broker_check_duration_seconds";
/// Brokers in the cluster as of the last successful check.
pub const BROKER_COUNT: &str = "kafka_actors_broker_count";
/// HTTP requests served, labelled `path` (the route, not the raw URL) and
/// `status`.
pub const HTTP_REQUESTS_TOTAL: &str = "kafka_actors_http_requests_total";

/// Records fetched, labelled `topic`.
pub const CONSUMER_RECORDS_TOTAL: &str = "kafka_actors_consumer_records_total";
/// Records handled, labelled `route` and `outcome` (`handled`, a failure
/// class, `unrouted_skipped`, `unrouted_dead_lettered`).
pub const HANDLER_RECORDS_TOTAL: &str = "kafka_actors_handler_records_total";
/// Time to route and handle one record, labelled `route`.
pub const HANDLER_DURATION_SECONDS: &str = "kafka_actors_handler_duration_seconds";
/// Handler calls tried again after a failure that may pass, labelled
/// `route` and `class`.
pub const HANDLER_RETRIES_TOTAL: &str = "kafka_actors_handler_retries_total";
/// Output records acknowledged by the broker, labelled `topic`, `outcome`.
pub const PRODUCER_RECORDS_TOTAL: &str = "kafka_actors_producer_records_total";
/// Offset commits, labelled `outcome` (`ok` or an error code).
pub const CONSUMER_COMMITS_TOTAL: &str = "kafka_actors_consumer_commits_total";
/// Records between the handled position and the fetch high watermark,
/// labelled `topic`, `partition`.
pub const CONSUMER_LAG_RECORDS: &str = "kafka_actors_consumer_lag_records";
/// Age of the oldest record of a partition fetched and not yet handled
/// (0 when there is none), labelled `topic`, `partition`.
pub const CONSUMER_LAG_SECONDS: &str = "kafka_actors_consumer_lag_seconds";
/// Records of a partition fetched and not yet fully handled, labelled
/// `topic`, `partition`.
pub const CONSUMER_IN_FLIGHT_RECORDS: &str = "kafka_actors_consumer_in_flight_records";
/// 1 while a partition is paused at a record batch this build cannot read,
/// labelled `topic`, `partition`.
pub const CONSUMER_PAUSED_COUNT: &str = "kafka_actors_consumer_paused_count";
/// 1 while a route's circuit breaker is open, labelled `route`.
pub const CIRCUIT_BREAKER_OPEN: &str = "kafka_actors_circuit_breaker_open_count";
/// Circuit breaker trips, labelled `route`.
pub const CIRCUIT_BREAKER_TRIPS_TOTAL: &str = "kafka_actors_circuit_breaker_trips_total";
/// Partitions paused by a `pause` action or an open circuit breaker,
/// labelled `topic`, `partition`: 1 while paused.
pub const PARTITION_HELD: &str = "kafka_actors_partition_held_count";
/// Records parked behind a failed record of their key (`ordering = "key"`),
/// labelled `topic`, `partition`.
pub const PARTITION_PARKED_RECORDS: &str = "kafka_actors_partition_parked_records";
/// Partitions found stalled and restarted, labelled `topic`, `partition`.
pub const PARTITION_STALLS_TOTAL: &str = "kafka_actors_partition_stalls_total";
/// Actor restarts, labelled `actor`.
pub const ACTOR_RESTARTS_TOTAL: &str = "kafka_actors_actor_restarts_total";
/// Actors found stale (no heartbeat), labelled `actor`.
pub const ACTOR_STALE_TOTAL: &str = "kafka_actors_actor_stale_total";
/// Actors stale now, labelled `actor`.
pub const ACTORS_STALE_COUNT: &str = "kafka_actors_actors_stale_count";

/// Rebalances this member took part in, labelled `cause`.
pub const GROUP_REBALANCES_TOTAL: &str = "kafka_actors_group_rebalances_total";
/// Time from the start of a rebalance to consuming the new assignment.
pub const GROUP_REBALANCE_DURATION_SECONDS: &str = "kafka_actors_group_rebalance_duration_seconds";
/// The group generation this member is in (-1 before its first join).
pub const GROUP_GENERATION_COUNT: &str = "kafka_actors_group_generation_count";
/// Partitions assigned to this member.
pub const GROUP_ASSIGNED_PARTITIONS_COUNT: &str = "kafka_actors_group_assigned_partitions_count";
/// Group protocol errors, labelled `api` and `error` (Kafka's error name).
pub const GROUP_ERRORS_TOTAL: &str = "kafka_actors_group_errors_total";

/// Firing alerts, labelled `severity`.
pub const ALERTS_ACTIVE: &str = "kafka_actors_alerts_active_count";
/// Alerts that fired or resolved, labelled `rule` and `state`.
pub const ALERT_TRANSITIONS_TOTAL: &str = "kafka_actors_alert_transitions_total";
/// Alert webhook deliveries, labelled `outcome` (`ok`, `failed`, `dropped`).
pub const ALERT_WEBHOOK_DELIVERIES_TOTAL: &str = "kafka_actors_alert_webhook_deliveries_total";

/// Every name above; the template test walks this list.
pub const ALL: &[&str] = &[
    ALERTS_ACTIVE,
    ALERT_TRANSITIONS_TOTAL,
    ALERT_WEBHOOK_DELIVERIES_TOTAL,
    CONSUMER_PAUSED_COUNT,
    CIRCUIT_BREAKER_OPEN,
    CIRCUIT_BREAKER_TRIPS_TOTAL,
    PARTITION_HELD,
    PARTITION_PARKED_RECORDS,
    PARTITION_STALLS_TOTAL,
    HANDLER_RETRIES_TOTAL,
    GROUP_REBALANCES_TOTAL,
    GROUP_REBALANCE_DURATION_SECONDS,
    GROUP_GENERATION_COUNT,
    GROUP_ASSIGNED_PARTITIONS_COUNT,
    GROUP_ERRORS_TOTAL,
    CONSUMER_RECORDS_TOTAL,
    HANDLER_RECORDS_TOTAL,
    HANDLER_DURATION_SECONDS,
    PRODUCER_RECORDS_TOTAL,
    CONSUMER_COMMITS_TOTAL,
    CONSUMER_LAG_RECORDS,
    CONSUMER_LAG_SECONDS,
    CONSUMER_IN_FLIGHT_RECORDS,
    ACTOR_RESTARTS_TOTAL,
    ACTOR_STALE_TOTAL,
    ACTORS_STALE_COUNT,
    BUILD_INFO,
    BROKER_UP,
    BROKER_CHECKS_TOTAL,
    BROKER_CHECK_DURATION_SECONDS,
    BROKER_COUNT,
    HTTP_REQUESTS_TOTAL,
];

/// Histogram buckets for durations in seconds: 1 ms to 30 s.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

pub(crate) fn describe_all() {
    describe_gauge!(ALERTS_ACTIVE, "Firing alerts, by severity.");
    describe_counter!(
        ALERT_TRANSITIONS_TOTAL,
        "Alerts that fired or resolved, by rule and state."
    );
    describe_counter!(
        ALERT_WEBHOOK_DELIVERIES_TOTAL,
        "Alert transitions POSTed to the webhook, by outcome."
    );
    describe_gauge!(
        BUILD_INFO,
        "Build information (always 1), labelled with version."
    );
    describe_gauge!(
        BROKER_UP,
        "1 while the last broker connectivity check succeeded."
    );
    describe_gauge!(
        PARTITION_PARKED_RECORDS,
        "Records parked behind a failed record of their key (ordering = \"key\"), not committed yet."
    );
    describe_counter!(
        BROKER_CHECKS_TOTAL,
        "Broker connectivity checks, by outcome."
    );
    describe_histogram!(
        BROKER_CHECK_DURATION_SECONDS,
        Unit::Seconds,
        "Duration of one broker connectivity check."
    );
    describe_gauge!(
        BROKER_COUNT,
        "Brokers in the cluster at the last successful check."
    );
    describe_counter!(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests served, by route and status."
    );
    describe_counter!(CONSUMER_RECORDS_TOTAL, "Records fetched, by topic.");
    describe_counter!(
        HANDLER_RECORDS_TOTAL,
        "Records handled, by route and outcome."
    );
    describe_histogram!(
        HANDLER_DURATION_SECONDS,
        Unit::Seconds,
        "Time to route and handle one record, by route."
    );
    describe_counter!(
        PRODUCER_RECORDS_TOTAL,
        "Output records acknowledged or failed, by topic and outcome."
    );
    describe_counter!(CONSUMER_COMMITS_TOTAL, "Offset commits, by outcome.");
    describe_gauge!(
        CONSUMER_LAG_RECORDS,
        "Records between the handled position and the high watermark."
    );
    describe_counter!(
        PARTITION_STALLS_TOTAL,
        "Partitions with records in flight and none finished within health.stall_timeout_ms, restarted."
    );
    describe_gauge!(
        CONSUMER_LAG_SECONDS,
        "Age in seconds of the oldest record fetched and not yet handled (0 when none)."
    );
    describe_gauge!(
        CONSUMER_IN_FLIGHT_RECORDS,
        "Records fetched and not yet fully handled, by partition."
    );
    describe_counter!(ACTOR_RESTARTS_TOTAL, "Actor restarts, by actor.");
    describe_counter!(
        ACTOR_STALE_TOTAL,
        "Actors that sent no heartbeat for health.heartbeat_stale_after intervals, by actor."
    );
    describe_gauge!(ACTORS_STALE_COUNT, "Actors stale now, by actor.");
    describe_gauge!(
        CONSUMER_PAUSED_COUNT,
        "1 while a partition is paused at a record batch this build cannot read."
    );
    describe_gauge!(
        CIRCUIT_BREAKER_OPEN,
        "1 while the route's circuit breaker is open."
    );
    describe_counter!(
        CIRCUIT_BREAKER_TRIPS_TOTAL,
        "Circuit breaker trips, by route."
    );
    describe_gauge!(
        PARTITION_HELD,
        "1 while a partition is paused at a failed record (pause action or open circuit breaker)."
    );
    describe_counter!(
        HANDLER_RETRIES_TOTAL,
        "Handler calls tried again after a failure that may pass, by route and class."
    );
    describe_counter!(
        GROUP_REBALANCES_TOTAL,
        "Rebalances this member took part in, by cause."
    );
    describe_histogram!(
        GROUP_REBALANCE_DURATION_SECONDS,
        Unit::Seconds,
        "Time from the start of a rebalance to consuming the new assignment."
    );
    describe_gauge!(
        GROUP_GENERATION_COUNT,
        "The consumer group generation this member is in."
    );
    describe_gauge!(
        GROUP_ASSIGNED_PARTITIONS_COUNT,
        "Partitions assigned to this member."
    );
    describe_counter!(
        GROUP_ERRORS_TOTAL,
        "Group protocol errors, by API and Kafka error name."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `kafka_actors_<subsystem>_<name>[_<unit>][_total]`, lower snake case.
    #[test]
    fn names_follow_the_template() {
        let units = [
            "seconds", "bytes", "records", "total", "info", "up", "count",
        ];
        for name in ALL {
            assert!(name.starts_with(&format!("{NAMESPACE}_")), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            let parts: Vec<&str> = name.split('_').collect();
            assert!(parts.len() >= 4, "{name}: needs subsystem and name");
            let last = parts.last().copied().unwrap_or_default();
            assert!(units.contains(&last), "{name}: ends in a unit or _total");
            if name.ends_with("_total") {
                assert!(
                    !name.ends_with("_seconds_total") || name.contains("_seconds_"),
                    "{name}"
                );
            }
        }
        let mut sorted = ALL.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), ALL.len(), "duplicate metric names");
    }

    /// Every `kafka_actors_...` name in `text`.
    fn names_in(text: &str) -> std::collections::BTreeSet<String> {
        text.match_indices("kafka_actors_")
            .map(|(at, _)| {
                text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                    .collect::<String>()
            })
            // The namespace alone (`kafka_actors_`, `kafka_actors_<...>`).
            .filter(|name| !name.ends_with('_'))
            .collect()
    }

    /// A series name's metric: a histogram's `_bucket`, `_sum` and `_count`
    /// belong to it.
    fn family(series: &str) -> &str {
        ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                series
                    .strip_suffix(suffix)
                    .filter(|base| ALL.contains(base) && base.ends_with("_seconds"))
            })
            .unwrap_or(series)
    }

    #[test]
    fn the_catalogue_lists_every_name_and_no_other() {
        let catalogue = names_in(include_str!("../../docs/metrics.md"));
        for name in ALL {
            assert!(catalogue.contains(*name), "docs/metrics.md lacks {name}");
        }
        for name in &catalogue {
            assert!(
                ALL.contains(&name.as_str()),
                "docs/metrics.md lists {name}, which the code does not export"
            );
        }
    }

    #[test]
    fn the_grafana_dashboard_queries_only_catalogued_names() {
        let dashboard: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/grafana/kafka-actors.json"))
                .expect("the dashboard is JSON");
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty());
        let mut used = std::collections::BTreeSet::new();
        for panel in panels {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{}", panel["title"]);
            for target in targets {
                let expr = target["expr"].as_str().expect("expr");
                let names = names_in(expr);
                assert!(!names.is_empty(), "{expr}");
                for name in names {
                    let metric = family(&name).to_owned();
                    assert!(
                        ALL.contains(&metric.as_str()),
                        "the dashboard queries {name}, which is not in the catalogue"
                    );
                    used.insert(metric);
                }
            }
        }
        // It shows most of the catalogue.
        assert!(used.len() * 4 >= ALL.len() * 3, "{used:?}");
    }
}
