//! Alerts (seed 002): rules over the service's own metrics.
//!
//! **What it does**: every `alerts.interval_ms` the alert manager actor
//! reads the metrics this process exports (the same text `/metrics`
//! serves), computes each rule's value — the largest partition lag, a
//! failure ratio or rate over the rule's window, stalls or rebalances over
//! the window, the broker check — and moves the rule through its states: a
//! value above the threshold makes it *pending*; pending for the rule's
//! `for_ms` makes it *firing*; a value at or below the threshold resolves
//! it. Firing and resolved transitions are logged, counted, and POSTed as
//! JSON to `alerts.webhook_url` by a task of their own (retried with
//! backoff, in order, never blocking the actor).
//!
//! **Messages**: in: [`GetAlerts`] (the pending and firing alerts).
//!
//! **Metrics**: `kafka_actors_alerts_active_count{severity}` (firing alerts),
//! `kafka_actors_alert_transitions_total{rule,state}`,
//! `kafka_actors_alert_webhook_deliveries_total{outcome}`.
//!
//! [`prometheus_rules`] writes the same rules as a Prometheus alerting-rules
//! file, over the same metrics, for those who alert in Prometheus.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use serde_json::{Value, json};

use crate::config::{AlertMetric, AlertRule, AlertsConfig, Severity};
use crate::handler::FailureKind;
use crate::health::heartbeat::{Heart, Registration};
use crate::telemetry::metrics as m;

/// One series of the exposition text: name, labels, value.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    /// The metric name.
    pub name: String,
    /// Its labels, in their order.
    pub labels: Vec<(String, String)>,
    /// Its value.
    pub value: f64,
}

impl Series {
    fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads the series of Prometheus exposition text (comments and lines that
/// are not `name{labels} value` are skipped).
pub fn parse(text: &str) -> Vec<Series> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

fn parse_line(line: &str) -> Option<Series> {
    let (head, value) = line.trim().rsplit_once(' ')?;
    let value = value.parse::<f64>().ok()?;
    let Some((name, rest)) = head.split_once('{') else {
        return Some(Series {
            name: head.to_owned(),
            labels: Vec::new(),
            value,
        });
    };
    let body = rest.strip_suffix('}')?;
    let mut labels = Vec::new();
    let mut chars = body.chars().peekable();
    loop {
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if key.is_empty() {
            break;
        }
        if chars.next() != Some('"') {
            return None;
        }
        let mut v = String::new();
        loop {
            match chars.next()? {
                '\\' => match chars.next()? {
                    'n' => v.push('\n'),
                    other => v.push(other),
                },
                '"' => break,
                c => v.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').trim().to_owned(), v));
        if chars.peek() == Some(&',') {
            chars.next();
        }
    }
    Some(Series {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// The built-in rules (`alerts.default_rules`), by name.
pub fn builtin() -> BTreeMap<String, AlertRule> {
    let rule = |metric, above, for_ms, window_ms, severity| AlertRule {
        metric,
        above,
        for_ms,
        window_ms,
        severity,
    };
    BTreeMap::from([
        (
            "consumer_lag".to_owned(),
            // Seed 001's threshold.
            rule(
                AlertMetric::ConsumerLagRecords,
                10_000.0,
                60_000,
                60_000,
                Severity::Warning,
            ),
        ),
        (
            "consumer_lag_seconds".to_owned(),
            rule(
                AlertMetric::ConsumerLagSeconds,
                300.0,
                60_000,
                60_000,
                Severity::Warning,
            ),
        ),
        (
            "error_rate".to_owned(),
            rule(
                AlertMetric::ErrorRate,
                0.05,
                60_000,
                60_000,
                Severity::Warning,
            ),
        ),
        (
            "dlq_rate".to_owned(),
            rule(
                AlertMetric::DlqRate,
                10.0,
                60_000,
                60_000,
                Severity::Warning,
            ),
        ),
        (
            "stalled_partition".to_owned(),
            rule(
                AlertMetric::PartitionStalls,
                0.0,
                0,
                300_000,
                Severity::Critical,
            ),
        ),
        (
            "partition_paused".to_owned(),
            rule(
                AlertMetric::PausedPartitions,
                0.0,
                0,
                60_000,
                Severity::Warning,
            ),
        ),
        (
            "rebalance_storm".to_owned(),
            rule(AlertMetric::Rebalances, 5.0, 0, 300_000, Severity::Warning),
        ),
        (
            "broker_unreachable".to_owned(),
            rule(
                AlertMetric::BrokerUnreachable,
                0.0,
                30_000,
                60_000,
                Severity::Critical,
            ),
        ),
    ])
}

/// The rules in effect: the built-in ones (unless `default_rules` is off)
/// with the configured ones over them.
pub fn effective(config: &AlertsConfig) -> BTreeMap<String, AlertRule> {
    let mut rules = if config.default_rules {
        builtin()
    } else {
        BTreeMap::new()
    };
    rules.extend(config.rules.clone());
    rules
}

impl AlertMetric {
    /// Its name in config and alerts.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConsumerLagRecords => "consumer_lag_records",
            Self::ConsumerLagSeconds => "consumer_lag_seconds",
            Self::ErrorRate => "error_rate",
            Self::DlqRate => "dlq_rate",
            Self::PartitionStalls => "partition_stalls",
            Self::PausedPartitions => "paused_partitions",
            Self::Rebalances => "rebalances",
            Self::BrokerUnreachable => "broker_unreachable",
        }
    }
}

impl Severity {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// The `outcome` labels of records that ended as failures.
fn failure_outcomes() -> impl Iterator<Item = &'static str> {
    FailureKind::ALL
        .iter()
        .map(|k| k.as_str())
        .chain(["unrouted_dead_lettered"])
}

/// One reading of what a rule measures: a gauge's value (and where), or a
/// counter's running total (and the total it is a fraction of).
#[derive(Debug, Clone, Copy, PartialEq)]
struct Reading {
    value: f64,
    of: f64,
}

fn read(metric: AlertMetric, series: &[Series]) -> (Reading, Option<String>) {
    let sum = |name: &str, keep: &dyn Fn(&Series) -> bool| -> f64 {
        series
            .iter()
            .filter(|s| s.name == name && keep(s))
            .map(|s| s.value)
            .sum()
    };
    let max = |name: &str| {
        series
            .iter()
            .filter(|s| s.name == name)
            .max_by(|a, b| a.value.total_cmp(&b.value))
            .map_or((0.0, None), |s| {
                let at = match (s.label("topic"), s.label("partition")) {
                    (Some(t), Some(p)) => Some(format!("{t}/{p}")),
                    _ => None,
                };
                (s.value, at)
            })
    };
    let failed = |s: &Series| {
        s.label("outcome")
            .is_some_and(|o| failure_outcomes().any(|f| f == o))
    };
    let reading = |value| Reading { value, of: 0.0 };
    match metric {
        AlertMetric::ConsumerLagRecords => {
            let (v, at) = max(m::CONSUMER_LAG_RECORDS);
            (reading(v), at)
        }
        AlertMetric::ConsumerLagSeconds => {
            let (v, at) = max(m::CONSUMER_LAG_SECONDS);
            (reading(v), at)
        }
        AlertMetric::ErrorRate => {
            let failures = sum(m::HANDLER_RECORDS_TOTAL, &failed);
            let ended = sum(m::HANDLER_RECORDS_TOTAL, &|s| {
                failed(s) || s.label("outcome") == Some("handled")
            });
            (
                Reading {
                    value: failures,
                    of: ended,
                },
                None,
            )
        }
        AlertMetric::DlqRate => (reading(sum(m::HANDLER_RECORDS_TOTAL, &failed)), None),
        AlertMetric::PartitionStalls => (reading(sum(m::PARTITION_STALLS_TOTAL, &|_| true)), None),
        AlertMetric::Rebalances => (reading(sum(m::GROUP_REBALANCES_TOTAL, &|_| true)), None),
        AlertMetric::PausedPartitions => {
            // A partition held and unreadable at once counts once.
            let paused: std::collections::BTreeSet<String> = series
                .iter()
                .filter(|s| {
                    (s.name == m::PARTITION_HELD || s.name == m::CONSUMER_PAUSED_COUNT)
                        && s.value > 0.0
                })
                .map(|s| {
                    format!(
                        "{}/{}",
                        s.label("topic").unwrap_or("?"),
                        s.label("partition").unwrap_or("?")
                    )
                })
                .collect();
            let at = paused.iter().cloned().collect::<Vec<_>>().join(", ");
            (
                reading(paused.len() as f64),
                (!paused.is_empty()).then_some(at),
            )
        }
        AlertMetric::BrokerUnreachable => {
            let up = series
                .iter()
                .find(|s| s.name == m::BROKER_UP)
                .map_or(1.0, |s| s.value);
            (reading(1.0 - up), None)
        }
    }
}

fn is_counter(metric: AlertMetric) -> bool {
    matches!(
        metric,
        AlertMetric::ErrorRate
            | AlertMetric::DlqRate
            | AlertMetric::PartitionStalls
            | AlertMetric::Rebalances
    )
}

/// A pending or firing alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// The rule's name.
    pub name: String,
    /// What it measures.
    pub metric: &'static str,
    /// `info`, `warning` or `critical`.
    pub severity: &'static str,
    /// `pending` (above the threshold, not for long enough yet) or
    /// `firing`.
    pub state: &'static str,
    /// The value at the last evaluation.
    pub value: f64,
    /// The rule's threshold.
    pub threshold: f64,
    /// Since when it is above the threshold.
    pub since: DateTime<Utc>,
    /// When it fired (firing alerts).
    pub fired_at: Option<DateTime<Utc>>,
    /// What is wrong, in words.
    pub message: String,
}

/// A rule fired or resolved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// `firing` or `resolved`.
    pub status: &'static str,
    /// The alert (for a resolved one: as it was last seen firing, with the
    /// value that resolved it).
    pub alert: Alert,
}

#[derive(Debug)]
struct RuleState {
    name: String,
    rule: AlertRule,
    /// Counter readings, oldest first, back to the start of the window.
    history: VecDeque<(Instant, Reading)>,
    above_since: Option<(Instant, DateTime<Utc>)>,
    fired_at: Option<DateTime<Utc>>,
    value: f64,
    at: Option<String>,
}

impl RuleState {
    /// The rule's value from this reading (counters: over the window).
    fn value(&mut self, now: Instant, reading: Reading) -> f64 {
        if !is_counter(self.rule.metric) {
            return reading.value;
        }
        let window = Duration::from_millis(self.rule.window_ms);
        self.history.push_back((now, reading));
        // Keep one reading at or before the window's start as the base.
        while self.history.len() > 2
            && self
                .history
                .get(1)
                .is_some_and(|(t, _)| now.duration_since(*t) >= window)
        {
            self.history.pop_front();
        }
        let Some(&(then, base)) = self.history.front() else {
            return 0.0;
        };
        // A counter that went down was reset (a restart): count from zero.
        let increase = |now: f64, base: f64| if now >= base { now - base } else { now };
        let (value, of) = (
            increase(reading.value, base.value),
            increase(reading.of, base.of),
        );
        match self.rule.metric {
            AlertMetric::ErrorRate if of > 0.0 => value / of,
            AlertMetric::ErrorRate => 0.0,
            AlertMetric::DlqRate => {
                let seconds = now.duration_since(then).as_secs_f64();
                if seconds > 0.0 { value / seconds } else { 0.0 }
            }
            _ => value,
        }
    }

    fn alert(&self) -> Option<Alert> {
        let (_, since) = self.above_since?;
        let at = self
            .at
            .as_deref()
            .map(|a| format!(" (at {a})"))
            .unwrap_or_default();
        Some(Alert {
            name: self.name.clone(),
            metric: self.rule.metric.as_str(),
            severity: self.rule.severity.as_str(),
            state: if self.fired_at.is_some() {
                "firing"
            } else {
                "pending"
            },
            value: self.value,
            threshold: self.rule.above,
            since,
            fired_at: self.fired_at,
            message: format!(
                "{} is {}{at}, above {} since {}",
                self.rule.metric.as_str(),
                self.value,
                self.rule.above,
                since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
        })
    }
}

/// The rules and their states; see the module documentation.
#[derive(Debug)]
pub struct Evaluator {
    rules: Vec<RuleState>,
}

impl Evaluator {
    /// An evaluator of `rules`, none pending.
    pub fn new(rules: BTreeMap<String, AlertRule>) -> Self {
        Self {
            rules: rules
                .into_iter()
                .map(|(name, rule)| RuleState {
                    name,
                    rule,
                    history: VecDeque::new(),
                    above_since: None,
                    fired_at: None,
                    value: 0.0,
                    at: None,
                })
                .collect(),
        }
    }

    /// Evaluates every rule on `series`, read at `now` (`wall`): the
    /// alerts that fired or resolved.
    pub fn evaluate(
        &mut self,
        series: &[Series],
        now: Instant,
        wall: DateTime<Utc>,
    ) -> Vec<Transition> {
        let mut transitions = Vec::new();
        for state in &mut self.rules {
            let (reading, at) = read(state.rule.metric, series);
            state.value = state.value(now, reading);
            state.at = at;
            if state.value > state.rule.above {
                let (since, _) = *state.above_since.get_or_insert((now, wall));
                let held = now.duration_since(since) >= Duration::from_millis(state.rule.for_ms);
                if held && state.fired_at.is_none() {
                    state.fired_at = Some(wall);
                    if let Some(alert) = state.alert() {
                        transitions.push(Transition {
                            status: "firing",
                            alert,
                        });
                    }
                }
            } else {
                if state.fired_at.is_some()
                    && let Some(alert) = state.alert()
                {
                    transitions.push(Transition {
                        status: "resolved",
                        alert,
                    });
                }
                state.above_since = None;
                state.fired_at = None;
            }
        }
        transitions
    }

    /// The pending and firing alerts.
    pub fn active(&self) -> Vec<Alert> {
        self.rules.iter().filter_map(RuleState::alert).collect()
    }
}

/// The rules of `config` as a Prometheus alerting-rules file. It is JSON,
/// which Prometheus reads as YAML.
pub fn prometheus_rules(config: &AlertsConfig) -> Value {
    let failures = failure_outcomes().collect::<Vec<_>>().join("|");
    let rules: Vec<Value> = effective(config)
        .into_iter()
        .map(|(name, rule)| {
            let window = duration(rule.window_ms);
            let expr = match rule.metric {
                AlertMetric::ConsumerLagRecords => {
                    format!("max by (instance) ({})", m::CONSUMER_LAG_RECORDS)
                }
                AlertMetric::ConsumerLagSeconds => {
                    format!("max by (instance) ({})", m::CONSUMER_LAG_SECONDS)
                }
                AlertMetric::ErrorRate => format!(
                    "sum by (instance) (increase({n}{{outcome=~\"{failures}\"}}[{window}])) \
                     / (sum by (instance) (increase({n}{{outcome=~\"handled|{failures}\"}}[{window}])) > 0)",
                    n = m::HANDLER_RECORDS_TOTAL
                ),
                AlertMetric::DlqRate => format!(
                    "sum by (instance) (rate({}{{outcome=~\"{failures}\"}}[{window}]))",
                    m::HANDLER_RECORDS_TOTAL
                ),
                AlertMetric::PartitionStalls => format!(
                    "sum by (instance) (increase({}[{window}]))",
                    m::PARTITION_STALLS_TOTAL
                ),
                AlertMetric::Rebalances => format!(
                    "sum by (instance) (increase({}[{window}]))",
                    m::GROUP_REBALANCES_TOTAL
                ),
                AlertMetric::PausedPartitions => format!(
                    "count by (instance) ({} > 0 or {} > 0)",
                    m::PARTITION_HELD,
                    m::CONSUMER_PAUSED_COUNT
                ),
                AlertMetric::BrokerUnreachable => {
                    format!("1 - min by (instance) ({})", m::BROKER_UP)
                }
            };
            json!({
                "alert": name,
                "expr": format!("({expr}) > {}", rule.above),
                "for": duration(rule.for_ms),
                "labels": {"severity": rule.severity.as_str()},
                "annotations": {
                    "summary": format!(
                        "kafka-actors {}: {} above {}",
                        name,
                        rule.metric.as_str(),
                        rule.above
                    ),
                    "description": format!(
                        "{} of {{{{ $labels.instance }}}} is {{{{ $value }}}}",
                        rule.metric.as_str()
                    ),
                },
            })
        })
        .collect();
    json!({"groups": [{"name": "kafka-actors", "rules": rules}]})
}

/// A Prometheus duration: `90s`, or `1500ms`.
fn duration(ms: u64) -> String {
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Asks for the pending and firing alerts.
#[derive(Debug, Message)]
#[rtype(result = "Vec<Alert>")]
pub struct GetAlerts;

/// The alert manager actor; see the module documentation.
pub struct AlertManager {
    evaluator: Evaluator,
    interval: Duration,
    prometheus: PrometheusHandle,
    webhook: Option<tokio::sync::mpsc::Sender<Value>>,
    /// For the webhook's payloads.
    instance: String,
    group: String,
    /// Where its heart registers, and the heart.
    registration: Option<Registration>,
    heart: Option<Arc<Heart>>,
}

impl std::fmt::Debug for AlertManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertManager")
            .field("evaluator", &self.evaluator)
            .finish_non_exhaustive()
    }
}

/// Webhook payloads waiting at most (a transition beyond is dropped,
/// logged and counted).
const WEBHOOK_QUEUE: usize = 1_000;

impl AlertManager {
    /// The alert manager of a service running `config`, reading the
    /// metrics of `prometheus`.
    pub fn new(config: &crate::config::Config, prometheus: PrometheusHandle) -> Self {
        let alerts = &config.alerts;
        let webhook = alerts.webhook_url.clone().map(|url| {
            let (tx, rx) = tokio::sync::mpsc::channel(WEBHOOK_QUEUE);
            tokio::spawn(deliver(
                url,
                rx,
                alerts.webhook_attempts.max(1),
                Duration::from_millis(alerts.webhook_timeout_ms),
            ));
            tx
        });
        Self {
            evaluator: Evaluator::new(effective(alerts)),
            interval: Duration::from_millis(alerts.interval_ms),
            prometheus,
            webhook,
            instance: crate::handler::dead_letter::instance_id(config),
            group: config.consumer.group_id.clone(),
            registration: None,
            heart: None,
        }
    }

    /// Sends heartbeats as `registration` says (see
    /// [`crate::health::heartbeat`]).
    pub fn with_heartbeats(mut self, registration: Option<Registration>) -> Self {
        self.registration = registration;
        self
    }

    fn evaluate(&mut self) {
        let series = parse(&self.prometheus.render());
        let transitions = self.evaluator.evaluate(&series, Instant::now(), Utc::now());
        let active = self.evaluator.active();
        for severity in [Severity::Info, Severity::Warning, Severity::Critical] {
            let firing = active
                .iter()
                .filter(|a| a.state == "firing" && a.severity == severity.as_str())
                .count();
            metrics::gauge!(m::ALERTS_ACTIVE, "severity" => severity.as_str()).set(firing as f64);
        }
        for t in transitions {
            let a = &t.alert;
            if t.status == "firing" {
                tracing::warn!(
                    alert = %a.name, severity = a.severity, value = a.value,
                    threshold = a.threshold, "alert firing: {}", a.message
                );
            } else {
                tracing::info!(alert = %a.name, value = a.value, "alert resolved");
            }
            metrics::counter!(
                m::ALERT_TRANSITIONS_TOTAL,
                "rule" => a.name.clone(),
                "state" => t.status
            )
            .increment(1);
            if let Some(webhook) = &self.webhook {
                let payload = json!({
                    "status": t.status,
                    "alert": a,
                    "instance": self.instance,
                    "group": self.group,
                    "at": Utc::now(),
                });
                if webhook.try_send(payload).is_err() {
                    tracing::warn!(alert = %a.name, "alert webhook queue full; this transition is not delivered");
                    metrics::counter!(m::ALERT_WEBHOOK_DELIVERIES_TOTAL, "outcome" => "dropped")
                        .increment(1);
                }
            }
        }
    }
}

/// Delivers webhook payloads in order, each with up to `attempts` tries.
async fn deliver(
    url: String,
    mut rx: tokio::sync::mpsc::Receiver<Value>,
    attempts: u32,
    timeout: Duration,
) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        .http_status_as_error(true)
        .build()
        .into();
    while let Some(payload) = rx.recv().await {
        let mut pause = Duration::from_secs(1);
        for attempt in 1..=attempts {
            let (agent, to, body) = (agent.clone(), url.clone(), payload.clone());
            let sent = tokio::task::spawn_blocking(move || {
                agent
                    .post(&to)
                    .send_json(&body)
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
            match sent {
                Ok(()) => {
                    metrics::counter!(m::ALERT_WEBHOOK_DELIVERIES_TOTAL, "outcome" => "ok")
                        .increment(1);
                    break;
                }
                Err(e) if attempt == attempts => {
                    tracing::warn!(url = %url, attempts, error = %e, "alert webhook failed; transition not delivered");
                    metrics::counter!(m::ALERT_WEBHOOK_DELIVERIES_TOTAL, "outcome" => "failed")
                        .increment(1);
                }
                Err(e) => {
                    tracing::debug!(url = %url, attempt, error = %e, retry_in = ?pause, "alert webhook failed; retrying");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                }
            }
        }
    }
}

impl Actor for AlertManager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.heart = self
            .registration
            .as_ref()
            .map(|r| r.start("alert_manager", ctx));
        ctx.run_interval(self.interval, |act, _| act.evaluate());
    }
}

impl Handler<GetAlerts> for AlertManager {
    type Result = MessageResult<GetAlerts>;

    fn handle(&mut self, _msg: GetAlerts, _ctx: &mut Self::Context) -> Self::Result {
        MessageResult(self.evaluator.active())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn series(text: &str) -> Vec<Series> {
        parse(text)
    }

    #[test]
    fn exposition_lines_are_read_with_their_labels() {
        let s = series(
            "# HELP x y\n# TYPE a counter\na_total 3\n\
             b{topic=\"t.1\",partition=\"0\"} 12.5\n\
             c{msg=\"say \\\"hi\\\", a\\\\b\"} 1e3\n\
             d{le=\"+Inf\"} 7\nnot a line\n",
        );
        assert_eq!(s.len(), 4, "{s:?}");
        assert_eq!((s[0].name.as_str(), s[0].value), ("a_total", 3.0));
        assert_eq!(s[1].label("topic"), Some("t.1"));
        assert_eq!(s[1].label("partition"), Some("0"));
        assert_eq!(s[1].value, 12.5);
        assert_eq!(s[2].label("msg"), Some("say \"hi\", a\\b"));
        assert_eq!(s[2].value, 1000.0);
        assert_eq!(s[3].label("le"), Some("+Inf"));
    }

    fn lag(value: u64) -> Vec<Series> {
        series(&format!(
            "kafka_actors_consumer_lag_records{{topic=\"orders\",partition=\"2\"}} {value}\n\
             kafka_actors_consumer_lag_records{{topic=\"orders\",partition=\"0\"}} 1\n"
        ))
    }

    #[test]
    fn a_rule_fires_after_its_duration_above_the_threshold_and_resolves_below_it() {
        let mut e = Evaluator::new(BTreeMap::from([(
            "lag".to_owned(),
            AlertRule {
                metric: AlertMetric::ConsumerLagRecords,
                above: 100.0,
                for_ms: 10_000,
                window_ms: 60_000,
                severity: Severity::Critical,
            },
        )]));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let wall = Utc::now();
        assert!(e.evaluate(&lag(50), at(0), wall).is_empty());
        assert!(e.active().is_empty());
        // Above, but not for 10 s yet: pending.
        assert!(e.evaluate(&lag(500), at(5), wall).is_empty());
        assert_eq!(e.active()[0].state, "pending");
        assert!(e.evaluate(&lag(500), at(14), wall).is_empty());
        let fired = e.evaluate(&lag(600), at(15), wall);
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].status, "firing");
        let alert = &fired[0].alert;
        assert_eq!((alert.value, alert.severity), (600.0, "critical"));
        assert!(alert.message.contains("orders/2"), "{}", alert.message);
        // Still above: no new transition.
        assert!(e.evaluate(&lag(700), at(20), wall).is_empty());
        assert_eq!(e.active()[0].state, "firing");
        let resolved = e.evaluate(&lag(10), at(25), wall);
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].status, "resolved");
        assert!(e.active().is_empty());
        // A dip below the threshold starts the duration over.
        e.evaluate(&lag(500), at(30), wall);
        e.evaluate(&lag(0), at(35), wall);
        assert!(e.evaluate(&lag(500), at(41), wall).is_empty());
        assert!(e.evaluate(&lag(500), at(50), wall).is_empty());
        assert_eq!(e.evaluate(&lag(500), at(51), wall).len(), 1);
    }

    fn outcomes(handled: u64, dead: u64) -> Vec<Series> {
        series(&format!(
            "kafka_actors_handler_records_total{{route=\"a\",outcome=\"handled\"}} {handled}\n\
             kafka_actors_handler_records_total{{route=\"a\",outcome=\"deserialization\"}} {dead}\n\
             kafka_actors_handler_records_total{{route=\"a\",outcome=\"parked\"}} 999\n"
        ))
    }

    #[test]
    fn rates_and_ratios_are_taken_over_the_window() {
        let rule = |metric| AlertRule {
            metric,
            above: 0.0,
            for_ms: 0,
            window_ms: 10_000,
            severity: Severity::Warning,
        };
        let mut e = Evaluator::new(BTreeMap::from([
            ("ratio".to_owned(), rule(AlertMetric::ErrorRate)),
            ("rate".to_owned(), rule(AlertMetric::DlqRate)),
        ]));
        let t0 = Instant::now();
        let wall = Utc::now();
        // Old failures before the window do not count.
        e.evaluate(&outcomes(100, 50), t0, wall);
        e.evaluate(&outcomes(190, 60), t0 + Duration::from_secs(5), wall);
        e.evaluate(&outcomes(280, 70), t0 + Duration::from_secs(10), wall);
        // Over the last 10 s: 180 handled, 20 dead-lettered.
        let values: BTreeMap<String, f64> =
            e.active().into_iter().map(|a| (a.name, a.value)).collect();
        assert!((values["ratio"] - 0.1).abs() < 1e-9, "{values:?}");
        assert!((values["rate"] - 2.0).abs() < 1e-9, "{values:?}");
        // The window moves on: 15 s, base at 5 s.
        e.evaluate(&outcomes(370, 70), t0 + Duration::from_secs(15), wall);
        let values: BTreeMap<String, f64> =
            e.active().into_iter().map(|a| (a.name, a.value)).collect();
        assert!((values["ratio"] - 10.0 / 190.0).abs() < 1e-9, "{values:?}");
        // Nothing failed in the 10 s since the base at 10 s: both resolve.
        let done = e.evaluate(&outcomes(460, 70), t0 + Duration::from_secs(20), wall);
        assert_eq!(done.len(), 2, "{done:?}");
        assert!(done.iter().all(|t| t.status == "resolved"));
        // A counter that went down (a restart) counts from zero.
        let t = e.evaluate(&outcomes(10, 5), t0 + Duration::from_secs(30), wall);
        assert_eq!(t.len(), 2, "{t:?}");
    }

    #[test]
    fn paused_partitions_are_counted_once_and_named() {
        let mut e = Evaluator::new(BTreeMap::from([(
            "paused".to_owned(),
            builtin()["partition_paused"].clone(),
        )]));
        let t0 = Instant::now();
        let wall = Utc::now();
        let fired = e.evaluate(
            &series(
                "kafka_actors_partition_held_count{topic=\"a\",partition=\"1\"} 1\n\
                 kafka_actors_consumer_paused_count{topic=\"a\",partition=\"1\"} 1\n\
                 kafka_actors_partition_held_count{topic=\"a\",partition=\"2\"} 0\n\
                 kafka_actors_consumer_paused_count{topic=\"b\",partition=\"0\"} 1\n",
            ),
            t0,
            wall,
        );
        assert_eq!(fired.len(), 1);
        assert_eq!(fired[0].alert.value, 2.0);
        assert!(
            fired[0].alert.message.contains("a/1, b/0"),
            "{}",
            fired[0].alert.message
        );
        let resolved = e.evaluate(
            &series("kafka_actors_partition_held_count{topic=\"a\",partition=\"1\"} 0\n"),
            t0 + Duration::from_secs(1),
            wall,
        );
        assert_eq!(resolved[0].status, "resolved");
    }

    #[test]
    fn the_broker_rule_reads_the_broker_gauge() {
        let mut e = Evaluator::new(BTreeMap::from([(
            "broker".to_owned(),
            builtin()["broker_unreachable"].clone(),
        )]));
        let t0 = Instant::now();
        let wall = Utc::now();
        let down = series("kafka_actors_broker_up 0\n");
        assert!(e.evaluate(&down, t0, wall).is_empty());
        let fired = e.evaluate(&down, t0 + Duration::from_secs(30), wall);
        assert_eq!(fired[0].alert.severity, "critical");
        // No gauge yet (no check finished): not unreachable.
        assert_eq!(e.evaluate(&[], t0 + Duration::from_secs(31), wall).len(), 1);
    }

    #[test]
    fn configured_rules_replace_built_in_ones_of_the_same_name() {
        let mut config = AlertsConfig::default();
        assert_eq!(effective(&config).len(), builtin().len());
        config.rules.insert(
            "consumer_lag".to_owned(),
            AlertRule {
                metric: AlertMetric::ConsumerLagRecords,
                above: 5.0,
                for_ms: 0,
                window_ms: 60_000,
                severity: Severity::Info,
            },
        );
        assert_eq!(effective(&config)["consumer_lag"].above, 5.0);
        config.default_rules = false;
        assert_eq!(
            effective(&config).keys().collect::<Vec<_>>(),
            ["consumer_lag"]
        );
    }

    #[test]
    fn the_prometheus_rules_use_catalogue_metrics_and_prometheus_durations() {
        let doc = prometheus_rules(&AlertsConfig::default());
        let rules = doc["groups"][0]["rules"].as_array().unwrap();
        assert_eq!(rules.len(), builtin().len());
        for r in rules {
            let expr = r["expr"].as_str().unwrap();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("kafka_actors_"))
                .collect();
            assert!(!names.is_empty(), "{expr}");
            for n in names {
                assert!(m::ALL.contains(&n), "{n} in {expr} is not in the catalogue");
            }
            let d = r["for"].as_str().unwrap();
            assert!(d.ends_with("ms") || d.ends_with('s'), "{d}");
            assert!(
                ["info", "warning", "critical"]
                    .contains(&r["labels"]["severity"].as_str().unwrap())
            );
        }
        let lag = rules.iter().find(|r| r["alert"] == "consumer_lag").unwrap();
        assert_eq!(
            lag["expr"],
            "(max by (instance) (kafka_actors_consumer_lag_records)) > 10000"
        );
        assert_eq!(lag["for"], "60s");
        assert_eq!(duration(1500), "1500ms");
    }
}
