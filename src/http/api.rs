//! The table of every HTTP route, and what is built from it: the routes
//! registered on the app ([`register`]) and the OpenAPI document served at
//! `/api/v1/openapi.json` ([`openapi`]), so the two cannot differ. Also the
//! admin API's read routes over the cluster: the metrics summary, the
//! consumer group, the dead-letter statistics and the topics.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::admin::{self, Admin, error, json_body, refusal};
use crate::health::alerts::{Series, parse};
use crate::telemetry::metrics as m;

/// One route: method, path (with `{parameters}`), what it does, whether it
/// changes something (then it needs the admin token), and how it is
/// registered.
pub struct ApiRoute {
    /// `GET`, `POST` or `DELETE`.
    pub method: &'static str,
    /// The path, with `{name}` for path parameters.
    pub path: &'static str,
    /// What it does (the OpenAPI summary).
    pub summary: &'static str,
    /// Needs `Authorization: Bearer <http.admin_token>`.
    pub mutating: bool,
    register: fn(&mut web::ServiceConfig, &'static str),
}

macro_rules! route {
    ($method:ident, $path:literal, $summary:literal, $mutating:literal, $handler:path) => {
        ApiRoute {
            method: route!(@name $method),
            path: $path,
            summary: $summary,
            mutating: $mutating,
            register: |cfg, path| {
                cfg.route(path, web::$method().to($handler));
            },
        }
    };
    (@name get) => { "GET" };
    (@name post) => { "POST" };
    (@name delete) => { "DELETE" };
}

/// Every route of the HTTP listener.
pub const ROUTES: &[ApiRoute] = &[
    route!(
        get,
        "/health",
        "Deep health in seed 003's shape, with per-component status (503 unless ready)",
        false,
        super::get_health
    ),
    route!(
        get,
        "/health/live",
        "200 while the actor system answers",
        false,
        super::get_live
    ),
    route!(
        get,
        "/health/ready",
        "200 when connected, declared topics present and partitions consuming; else 503 with the reasons",
        false,
        super::get_ready
    ),
    route!(
        get,
        "/health/topics",
        "Seed 003's topic health (503 while a declared topic is missing, 404 without declared topics)",
        false,
        super::get_topics
    ),
    route!(
        get,
        "/metrics",
        "Prometheus text format",
        false,
        super::get_metrics
    ),
    route!(
        get,
        "/api/v1/openapi.json",
        "This document",
        false,
        openapi_document
    ),
    route!(
        get,
        "/api/v1/status",
        "Version, uptime, group, instance, health and partitions by state",
        false,
        admin::status
    ),
    route!(
        get,
        "/api/v1/config",
        "The effective configuration, secrets redacted",
        false,
        admin::config
    ),
    route!(
        get,
        "/api/v1/metrics",
        "A JSON summary of the metrics (Prometheus text stays at /metrics)",
        false,
        metrics_summary
    ),
    route!(
        get,
        "/api/v1/alerts",
        "The pending and firing alerts",
        false,
        admin::alerts
    ),
    route!(
        get,
        "/api/v1/partitions",
        "Every partition this instance consumes, with its state",
        false,
        admin::list_partitions
    ),
    route!(
        post,
        "/api/v1/partitions/{topic}/{partition}/pause",
        "Pause a partition until resumed",
        true,
        admin::pause_partition
    ),
    route!(
        post,
        "/api/v1/partitions/{topic}/{partition}/resume",
        "Resume a partition (also ends a failure pause, a retry wait or an unreadable batch now)",
        true,
        admin::resume_partition
    ),
    route!(
        post,
        "/api/v1/partitions/{topic}/{partition}/seek",
        "Start a partition this instance consumes over from an offset ({offset}, {to: earliest|latest} or {timestamp}): in-flight records are dropped, the offset is committed, fetching goes on from it; {replay: ID} marks the records handled again",
        true,
        admin::seek_partition
    ),
    route!(
        get,
        "/api/v1/consumers",
        "The consumer group (?group=, default consumer.group_id): state, members, assignment, committed offsets, log ends and lag",
        false,
        consumers
    ),
    route!(
        post,
        "/api/v1/consumers/{group}/reset-offsets",
        "Reset a group's offsets in {topic} (optionally {partitions}) to {to: earliest|latest}, {offset}, {timestamp} or {shift_by}, coordinated with the running instances: each partition's owner seeks (drops its in-flight records, commits the offset, fetches from it); `replay` marks the records handled again; `dry_run` returns the plan",
        true,
        reset_offsets
    ),
    route!(
        get,
        "/api/v1/dead-letter-queue/stats",
        "Dead letters by topic, original topic, route, class and code, with oldest and newest times (?topic=, repeatable; default every route's dead-letter topic)",
        false,
        dlq_stats
    ),
    route!(
        get,
        "/api/v1/dead-letter-queue/records",
        "One page of dead letters of ?topic= (default: the first route's dead-letter topic), selected by ?partition=, from_offset, to_offset, class, since, until; ?limit= (1-1000, default 50); with where the next page starts",
        false,
        dlq_records
    ),
    route!(
        post,
        "/api/v1/dead-letter-queue/replay",
        "Republish selected dead letters to their original topic (or `to`), rate-limited, with a replay header; `dry_run` returns the plan",
        true,
        dlq_replay
    ),
    route!(
        post,
        "/api/v1/dead-letter-queue/purge",
        "Delete dead letters before an offset (`before`) or all (`all`), per partition (DeleteRecords); `dry_run` returns the plan",
        true,
        dlq_purge
    ),
    route!(
        get,
        "/api/v1/topics",
        "The cluster's topics with their partition counts (?internal=true for internal ones)",
        false,
        list_topics
    ),
    route!(
        post,
        "/api/v1/topics",
        "Create a topic: {name, partitions, replication_factor, configs}",
        true,
        create_topic
    ),
    route!(
        delete,
        "/api/v1/topics/{name}",
        "Delete a topic this service does not use",
        true,
        delete_topic
    ),
    route!(
        post,
        "/api/v1/events",
        "Publish one event: {topic, event_type, payload, key, correlation_id, headers} as the envelope the routes read",
        true,
        publish_event
    ),
];

/// Registers every route of [`ROUTES`].
pub fn register(cfg: &mut web::ServiceConfig) {
    for r in ROUTES {
        (r.register)(cfg, r.path);
    }
}

/// The OpenAPI 3.1 document of [`ROUTES`].
pub fn openapi() -> Value {
    let mut paths: BTreeMap<&str, serde_json::Map<String, Value>> = BTreeMap::new();
    for r in ROUTES {
        let parameters: Vec<Value> = r
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| {
                let kind = if name == "partition" {
                    "integer"
                } else {
                    "string"
                };
                json!({"name": name, "in": "path", "required": true, "schema": {"type": kind}})
            })
            .collect();
        let mut responses = json!({
            "200": {"description": "OK", "content": {"application/json": {}}},
        });
        if r.path.starts_with("/api/") {
            for (code, why) in [
                ("400", "a malformed request; the error names the field"),
                ("404", "no such partition, topic or group"),
                ("503", "an actor or the brokers did not answer"),
            ] {
                responses[code] = json!({"description": why, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
            }
        }
        if r.mutating {
            responses["401"] = json!({"description": "no or a wrong bearer token", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
            responses["403"] = json!({"description": "no http.admin_token is configured", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
        }
        let mut operation = json!({
            "summary": r.summary,
            "operationId": format!(
                "{}{}",
                r.method.to_lowercase(),
                r.path.replace(['/', '-', '.', '{', '}'], "_")
            ),
            "responses": responses,
        });
        if !parameters.is_empty() {
            operation["parameters"] = Value::Array(parameters);
        }
        if r.mutating {
            operation["security"] = json!([{"bearer": []}]);
        }
        paths
            .entry(r.path)
            .or_default()
            .insert(r.method.to_lowercase(), operation);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "kafka-actors",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Health, metrics and the admin API of a kafka-actors service."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "status": {"type": "integer"},
                                "message": {"type": "string"},
                                "field": {"type": ["string", "null"]}
                            },
                            "required": ["status", "message", "field"]
                        }
                    }
                }
            }
        }
    })
}

async fn openapi_document() -> HttpResponse {
    HttpResponse::Ok().json(openapi())
}

fn sum(series: &[Series], name: &str, keep: impl Fn(&Series) -> bool) -> f64 {
    // `+ 0.0`: an empty sum of floats is -0.0, which JSON shows as such.
    series
        .iter()
        .filter(|s| s.name == name && keep(s))
        .map(|s| s.value)
        .sum::<f64>()
        + 0.0
}

fn max(series: &[Series], name: &str) -> f64 {
    series
        .iter()
        .filter(|s| s.name == name)
        .map(|s| s.value)
        .fold(0.0, f64::max)
}

fn label<'s>(s: &'s Series, name: &str) -> Option<&'s str> {
    s.labels
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// A summary of this process's metrics (seed 002's `/metrics` JSON).
pub fn summary(series: &[Series]) -> Value {
    let mut outcomes: BTreeMap<String, f64> = BTreeMap::new();
    for s in series.iter().filter(|s| s.name == m::HANDLER_RECORDS_TOTAL) {
        if let Some(o) = label(s, "outcome") {
            *outcomes.entry(o.to_owned()).or_default() += s.value;
        }
    }
    let partitions = series
        .iter()
        .filter(|s| s.name == m::CONSUMER_LAG_RECORDS)
        .count();
    json!({
        "consumer": {
            "records_consumed": sum(series, m::CONSUMER_RECORDS_TOTAL, |_| true),
            "partitions": partitions,
            "lag_records_total": sum(series, m::CONSUMER_LAG_RECORDS, |_| true),
            "lag_records_max": max(series, m::CONSUMER_LAG_RECORDS),
            "lag_seconds_max": max(series, m::CONSUMER_LAG_SECONDS),
            "in_flight_records": sum(series, m::CONSUMER_IN_FLIGHT_RECORDS, |_| true),
            "held_partitions": sum(series, m::PARTITION_HELD, |_| true),
            "parked_records": sum(series, m::PARTITION_PARKED_RECORDS, |_| true),
            "stalls": sum(series, m::PARTITION_STALLS_TOTAL, |_| true),
        },
        "handler": {
            "records_by_outcome": outcomes,
            "retries": sum(series, m::HANDLER_RETRIES_TOTAL, |_| true),
        },
        "producer": {
            "records_sent": sum(series, m::PRODUCER_RECORDS_TOTAL, |s| label(s, "outcome") == Some("ok")),
            "records_failed": sum(series, m::PRODUCER_RECORDS_TOTAL, |s| label(s, "outcome") != Some("ok")),
        },
        "group": {
            "generation": max(series, m::GROUP_GENERATION_COUNT),
            "assigned_partitions": max(series, m::GROUP_ASSIGNED_PARTITIONS_COUNT),
            "rebalances": sum(series, m::GROUP_REBALANCES_TOTAL, |_| true),
        },
        "broker_up": series.iter().find(|s| s.name == m::BROKER_UP).map(|s| s.value),
        "alerts_active": sum(series, m::ALERTS_ACTIVE, |_| true),
    })
}

async fn metrics_summary(admin: web::Data<Admin>) -> HttpResponse {
    HttpResponse::Ok().json(summary(&parse(&admin.prometheus.render())))
}

#[derive(Debug, Deserialize)]
struct GroupQuery {
    group: Option<String>,
}

async fn consumers(admin: web::Data<Admin>, query: web::Query<GroupQuery>) -> HttpResponse {
    let group = query
        .into_inner()
        .group
        .unwrap_or_else(|| admin.settings.consumer.group_id.clone());
    match crate::kafka::groups::describe_group(&admin.settings.kafka, &group).await {
        Ok(d) if d.exists() => HttpResponse::Ok().json(d),
        Ok(_) => error(
            StatusCode::NOT_FOUND,
            Some("group"),
            format!("group {group} does not exist"),
        ),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!("group {group}: {e}"),
        ),
    }
}

/// The body of a reset: the topic, the partitions, exactly one target.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    topic: String,
    partitions: Option<Vec<i32>>,
    to: Option<String>,
    offset: Option<i64>,
    timestamp: Option<String>,
    shift_by: Option<i64>,
    /// A replay id: the records handled again, and their outputs, carry
    /// it in the `kafka-actors.replay` header.
    replay: Option<String>,
    #[serde(default)]
    dry_run: bool,
}

async fn reset_offsets(
    req: HttpRequest,
    group: web::Path<String>,
    admin: web::Data<Admin>,
    body: web::Bytes,
) -> HttpResponse {
    use crate::group::reset::{self, ResetError, ResetRequest, ResetTo};
    if let Some(refused) = refusal(&req, admin.token.as_ref()) {
        return refused;
    }
    let body: ResetBody = match json_body(
        &body,
        "{\"topic\": T, \"partitions\": [P...] (optional), one of \"to\": \"earliest\"|\"latest\", \"offset\": N, \"timestamp\": RFC 3339, \"shift_by\": N, \"dry_run\": bool}",
    ) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let to = match (
        body.to.as_deref(),
        body.offset,
        body.timestamp.as_deref(),
        body.shift_by,
    ) {
        (Some("earliest"), None, None, None) => ResetTo::Earliest,
        (Some("latest"), None, None, None) => ResetTo::Latest,
        (Some(other), None, None, None) => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("to"),
                format!("to must be earliest or latest, got {other:?}"),
            );
        }
        (None, Some(o), None, None) => ResetTo::Offset(o),
        (None, None, Some(t), None) => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => ResetTo::Timestamp(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some("timestamp"),
                    format!("`{t}`: {e} (expected RFC 3339)"),
                );
            }
        },
        (None, None, None, Some(n)) => ResetTo::ShiftBy(n),
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("body"),
                "give exactly one of to, offset, timestamp and shift_by",
            );
        }
    };
    if let Some(Err(e)) = body.replay.as_deref().map(reset::check_replay_id) {
        return error(StatusCode::BAD_REQUEST, Some("replay"), e.to_string());
    }
    let request = ResetRequest {
        group: group.into_inner(),
        topic: body.topic,
        partitions: body.partitions,
        to,
    };
    let plan = match reset::plan(&admin.settings.kafka, &request).await {
        Ok(plan) => plan,
        Err(e) => {
            let (status, field) = match &e {
                ResetError::Field { field, .. } => (StatusCode::BAD_REQUEST, Some(*field)),
                ResetError::NotFound(_) => (StatusCode::NOT_FOUND, None),
                ResetError::Conflict(_) => (StatusCode::CONFLICT, None),
                ResetError::Kafka(_) | ResetError::Broker(_) => {
                    (StatusCode::SERVICE_UNAVAILABLE, None)
                }
            };
            return error(status, field, e.to_string());
        }
    };
    if body.dry_run {
        return HttpResponse::Ok().json(json!({"dry_run": true, "plan": plan}));
    }
    let results = reset::execute(
        &admin.settings.kafka,
        admin.token.as_ref(),
        &plan,
        body.replay.as_deref(),
    )
    .await;
    let status = if results.iter().all(|r| r.error.is_none()) {
        StatusCode::OK
    } else {
        StatusCode::BAD_GATEWAY
    };
    HttpResponse::build(status).json(json!({"dry_run": false, "plan": plan, "partitions": results}))
}

async fn dlq_stats(req: HttpRequest, admin: web::Data<Admin>) -> HttpResponse {
    // `?topic=a&topic=b`: repeated keys, which serde_urlencoded's maps do
    // not keep.
    let pairs = match query_pairs(&req) {
        Ok(pairs) => pairs,
        Err(refused) => return *refused,
    };
    let topics: Vec<String> = pairs
        .into_iter()
        .filter(|(k, _)| k == "topic")
        .map(|(_, v)| admin.settings.topic_name(&v))
        .collect();
    match crate::cli_dlq::stats_of(&admin.settings, topics).await {
        Ok((topics, groups)) => {
            HttpResponse::Ok().json(json!({"topics": topics, "groups": groups}))
        }
        Err((crate::exit::Exit::Usage, message)) => {
            error(StatusCode::BAD_REQUEST, Some("topic"), message)
        }
        Err((_, message)) => error(StatusCode::SERVICE_UNAVAILABLE, None, message),
    }
}

/// `GET /api/v1/dead-letter-queue/records`: one page of dead letters,
/// selected as `dlq list` selects them.
async fn dlq_records(req: HttpRequest, admin: web::Data<Admin>) -> HttpResponse {
    let mut select = crate::cli::DlqSelect::default();
    let mut topic = None;
    let mut limit = 50usize;
    let pairs = match query_pairs(&req) {
        Ok(pairs) => pairs,
        Err(refused) => return *refused,
    };
    for (key, value) in pairs {
        let bad = |what: &str| {
            error(
                StatusCode::BAD_REQUEST,
                Some(key.as_str()),
                format!("{key} must be {what}, got {value:?}"),
            )
        };
        match key.as_str() {
            "topic" => topic = Some(admin.settings.topic_name(&value)),
            "partition" => match value.parse() {
                Ok(p) => select.partitions.push(p),
                Err(_) => return bad("a partition number"),
            },
            "from_offset" => match value.parse() {
                Ok(o) => select.from_offset = Some(o),
                Err(_) => return bad("an offset"),
            },
            "to_offset" => match value.parse() {
                Ok(o) => select.to_offset = Some(o),
                Err(_) => return bad("an offset"),
            },
            "class" => select.classes.push(value.clone()),
            "since" | "until" => match crate::cli::parse_time(&value) {
                Ok(t) if key == "since" => select.since = Some(t),
                Ok(t) => select.until = Some(t),
                Err(_) => return bad("an RFC 3339 time"),
            },
            "limit" => match value.parse::<usize>() {
                Ok(n) if (1..=1000).contains(&n) => limit = n,
                _ => return bad("a number from 1 to 1000"),
            },
            _ => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some(key.as_str()),
                    format!(
                        "unknown parameter {key}: use topic, partition, from_offset, to_offset, \
                         class, since, until, limit"
                    ),
                );
            }
        }
    }
    let topic = match topic {
        Some(t) => t,
        None => match crate::cli_dlq::stats_default_topic(&admin.settings) {
            Some(t) => t,
            None => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some("topic"),
                    "no topic given and no route configured",
                );
            }
        },
    };
    match crate::cli_dlq::page(&admin.settings, &topic, &select, limit).await {
        Ok(page) => HttpResponse::Ok().json(json!({
            "topic": topic,
            "records": page
                .records
                .iter()
                .map(|(p, r)| crate::cli_dlq::letter_json(&topic, *p, r))
                .collect::<Vec<_>>(),
            "next": page.next.map(|(partition, from_offset, then)| json!({
                "partition": partition,
                "from_offset": from_offset,
                "then_partitions": then,
            })),
        })),
        Err(failure) => dlq_failure(&topic, "partition", failure),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayBody {
    topic: Option<String>,
    #[serde(default)]
    partitions: Vec<i32>,
    from_offset: Option<i64>,
    to_offset: Option<i64>,
    #[serde(default)]
    classes: Vec<String>,
    since: Option<String>,
    until: Option<String>,
    to: Option<String>,
    #[serde(default = "default_rate")]
    rate: u32,
    #[serde(default)]
    dry_run: bool,
}

fn default_rate() -> u32 {
    100
}

/// A dead-letter topic named in a request body, or the first route's.
fn dlq_topic(admin: &Admin, topic: Option<String>) -> Result<String, Box<HttpResponse>> {
    match topic {
        Some(t) => Ok(admin.settings.topic_name(&t)),
        None => crate::cli_dlq::stats_default_topic(&admin.settings).ok_or_else(|| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                Some("topic"),
                "no topic given and no route configured",
            ))
        }),
    }
}

/// An error of the DLQ operations as a response: a usage error names
/// `field`, a missing topic is 404, anything else the brokers'.
fn dlq_failure(
    topic: &str,
    field: &str,
    (exit, message): (crate::exit::Exit, String),
) -> HttpResponse {
    if exit == crate::exit::Exit::Usage {
        return error(StatusCode::BAD_REQUEST, Some(field), message);
    }
    // The producer's UnknownTopic ("topic T does not exist").
    if message.contains(&format!("topic {topic} does not exist")) {
        return error(StatusCode::NOT_FOUND, Some("topic"), message);
    }
    error(StatusCode::SERVICE_UNAVAILABLE, None, message)
}

/// `POST /api/v1/dead-letter-queue/replay`: `dlq replay` over HTTP; the
/// answer comes once every record was acknowledged (or the plan, dry).
async fn dlq_replay(req: HttpRequest, admin: web::Data<Admin>, body: web::Bytes) -> HttpResponse {
    if let Some(refused) = refusal(&req, admin.token.as_ref()) {
        return refused;
    }
    let body: ReplayBody = match json_body(
        &body,
        "{\"topic\", \"partitions\", \"from_offset\", \"to_offset\", \"classes\", \
                     \"since\", \"until\", \"to\", \"rate\", \"dry_run\"}",
    ) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let mut select = crate::cli::DlqSelect {
        partitions: body.partitions,
        from_offset: body.from_offset,
        to_offset: body.to_offset,
        classes: body.classes,
        ..crate::cli::DlqSelect::default()
    };
    for (field, value, slot) in [
        ("since", body.since, &mut select.since),
        ("until", body.until, &mut select.until),
    ] {
        if let Some(text) = value {
            match crate::cli::parse_time(&text) {
                Ok(t) => *slot = Some(t),
                Err(e) => return error(StatusCode::BAD_REQUEST, Some(field), e),
            }
        }
    }
    if body.rate == 0 {
        return error(
            StatusCode::BAD_REQUEST,
            Some("rate"),
            "must be at least 1 record per second",
        );
    }
    let topic = match dlq_topic(&admin, body.topic) {
        Ok(t) => t,
        Err(refused) => return *refused,
    };
    let options = crate::cli_dlq::ReplayOptions {
        to: body.to.map(|t| admin.settings.topic_name(&t)),
        rate: body.rate,
        dry_run: body.dry_run,
    };
    match crate::cli_dlq::replay_core(&admin.settings, &topic, &select, &options).await {
        Ok(summary) => {
            let total: u64 = summary.by_target.values().sum();
            HttpResponse::Ok().json(json!({
                "topic": topic,
                "dry_run": body.dry_run,
                "replayed": if body.dry_run { 0 } else { total },
                "by_target": summary.by_target,
                "skipped": summary.skipped,
                "planned": summary.planned.iter().take(1000).collect::<Vec<_>>(),
            }))
        }
        Err(failure) => dlq_failure(&topic, "partitions", failure),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PurgeBody {
    topic: Option<String>,
    #[serde(default)]
    partitions: Vec<i32>,
    before: Option<i64>,
    #[serde(default)]
    all: bool,
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/v1/dead-letter-queue/purge`: `dlq purge` over HTTP.
async fn dlq_purge(req: HttpRequest, admin: web::Data<Admin>, body: web::Bytes) -> HttpResponse {
    if let Some(refused) = refusal(&req, admin.token.as_ref()) {
        return refused;
    }
    let body: PurgeBody = match json_body(
        &body,
        "{\"topic\", \"partitions\", \"before\" | \"all\": true, \"dry_run\"}",
    ) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    if body.before.is_some() == body.all {
        return error(
            StatusCode::BAD_REQUEST,
            Some("before"),
            "give either before (an offset) or all: true",
        );
    }
    let topic = match dlq_topic(&admin, body.topic) {
        Ok(t) => t,
        Err(refused) => return *refused,
    };
    let plan =
        match crate::cli_dlq::purge_plan(&admin.settings, &topic, body.partitions, body.before)
            .await
        {
            Ok(plan) => plan,
            Err(failure) => return dlq_failure(&topic, "partitions", failure),
        };
    let ranges: Vec<Value> = plan
        .ranges()
        .into_iter()
        .map(|(partition, from, before)| {
            json!({"partition": partition, "from_offset": from, "before": before, "records": before - from})
        })
        .collect();
    if body.dry_run {
        return HttpResponse::Ok().json(json!({"topic": topic, "dry_run": true, "plan": ranges}));
    }
    match crate::cli_dlq::purge_run(&admin.settings, &topic, &plan, |_, _, _| {}).await {
        Ok(()) => {
            HttpResponse::Ok().json(json!({"topic": topic, "dry_run": false, "purged": ranges}))
        }
        Err(failure) => dlq_failure(&topic, "partitions", failure),
    }
}

/// The `key=value` pairs of the query string, decoded (repeated keys kept);
/// a malformed one gets 400.
fn query_pairs(req: &HttpRequest) -> Result<Vec<(String, String)>, Box<HttpResponse>> {
    web::Query::<Vec<(String, String)>>::from_query(req.query_string())
        .map(web::Query::into_inner)
        .map_err(|e| {
            Box::new(error(
                StatusCode::BAD_REQUEST,
                Some("query"),
                format!("malformed query string: {e}"),
            ))
        })
}

#[derive(Debug, Deserialize)]
struct TopicsQuery {
    #[serde(default)]
    internal: bool,
}

async fn connect_admin(admin: &Admin) -> Result<crate::kafka::admin::Admin, HttpResponse> {
    crate::kafka::admin::Admin::connect(
        &admin.settings.kafka,
        admin.settings.kafka.request_timeout(),
    )
    .await
    .map_err(|e| error(StatusCode::SERVICE_UNAVAILABLE, None, e.to_string()))
}

async fn list_topics(admin: web::Data<Admin>, query: web::Query<TopicsQuery>) -> HttpResponse {
    let mut kafka = match connect_admin(&admin).await {
        Ok(k) => k,
        Err(refused) => return refused,
    };
    match kafka.describe_topics(None).await {
        Ok(topics) => {
            let list: Vec<Value> = topics
                .into_values()
                .filter_map(Result::ok)
                .filter(|t| query.internal || !t.internal)
                .map(|t| {
                    json!({
                        "name": t.name,
                        "partitions": t.partition_count(),
                        "internal": t.internal,
                        "replication_factor": t.partitions.first().map(|p| p.replicas.len()),
                    })
                })
                .collect();
            HttpResponse::Ok().json(json!({"topics": list}))
        }
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, None, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTopicBody {
    name: String,
    partitions: i32,
    #[serde(default = "one")]
    replication_factor: i16,
    #[serde(default)]
    configs: BTreeMap<String, String>,
}

fn one() -> i16 {
    1
}

async fn create_topic(req: HttpRequest, admin: web::Data<Admin>, body: web::Bytes) -> HttpResponse {
    if let Some(refused) = refusal(&req, admin.token.as_ref()) {
        return refused;
    }
    let topic: NewTopicBody = match json_body(
        &body,
        "{\"name\", \"partitions\", \"replication_factor\", \"configs\"}",
    ) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    if let Some(problem) = crate::topics::validate::topic_name_problem(&topic.name) {
        return error(
            StatusCode::BAD_REQUEST,
            Some("name"),
            format!("`{}`: {problem}", topic.name),
        );
    }
    if topic.partitions < 1 {
        return error(
            StatusCode::BAD_REQUEST,
            Some("partitions"),
            format!("must be at least 1, got {}", topic.partitions),
        );
    }
    if topic.replication_factor < 1 {
        return error(
            StatusCode::BAD_REQUEST,
            Some("replication_factor"),
            format!("must be at least 1, got {}", topic.replication_factor),
        );
    }
    let mut kafka = match connect_admin(&admin).await {
        Ok(k) => k,
        Err(refused) => return refused,
    };
    let new = crate::kafka::admin::NewTopic {
        name: topic.name.clone(),
        partitions: topic.partitions,
        replication_factor: topic.replication_factor,
        configs: topic.configs,
    };
    match kafka
        .create_topics(&[new], admin.settings.kafka.request_timeout(), false)
        .await
    {
        Ok(results) => match results.get(&topic.name) {
            Some(Ok(_)) => HttpResponse::Created().json(json!({
                "name": topic.name,
                "partitions": topic.partitions,
                "replication_factor": topic.replication_factor,
            })),
            Some(Err(f)) if f.code == 36 => error(
                StatusCode::CONFLICT,
                Some("name"),
                format!("topic {} already exists", topic.name),
            ),
            Some(Err(f)) => error(StatusCode::BAD_REQUEST, None, f.to_string()),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the broker did not answer for the topic",
            ),
        },
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, None, e.to_string()),
    }
}

async fn delete_topic(
    req: HttpRequest,
    admin: web::Data<Admin>,
    name: web::Path<String>,
) -> HttpResponse {
    if let Some(refused) = refusal(&req, admin.token.as_ref()) {
        return refused;
    }
    let name = name.into_inner();
    if admin.used_topics.contains(&name) {
        return error(
            StatusCode::CONFLICT,
            Some("name"),
            format!("topic {name} is used by this service's routes; stop using it first"),
        );
    }
    let mut kafka = match connect_admin(&admin).await {
        Ok(k) => k,
        Err(refused) => return refused,
    };
    match kafka
        .delete_topics(
            std::slice::from_ref(&name),
            admin.settings.kafka.request_timeout(),
        )
        .await
    {
        Ok(results) => match results.get(&name) {
            Some(Ok(())) => HttpResponse::Ok().json(json!({"deleted": name})),
            Some(Err(f)) if f.code == 3 => error(
                StatusCode::NOT_FOUND,
                Some("name"),
                format!("no topic {name}"),
            ),
            Some(Err(f)) => error(StatusCode::BAD_REQUEST, None, f.to_string()),
            None => error(
                StatusCode::SERVICE_UNAVAILABLE,
                None,
                "the broker did not answer for the topic",
            ),
        },
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, None, e.to_string()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventBody {
    topic: String,
    event_type: Option<String>,
    #[serde(default)]
    payload: Value,
    key: Option<String>,
    correlation_id: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Seed 002's event publishing: one event, as the envelope
/// `{correlation_id, event_type, payload}` the routes read, with the
/// `correlation_id` and `event_type` headers; 201 with where it was
/// written once the broker acknowledged it.
async fn publish_event(
    req: HttpRequest,
    admin: web::Data<Admin>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(refused) = refusal(&req, admin.token.as_ref()) {
        return refused;
    }
    let event: EventBody = match json_body(
        &body,
        "{\"topic\", \"event_type\", \"payload\", \"key\", \"correlation_id\", \"headers\"}",
    ) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let topic = admin.settings.topic_name(&event.topic);
    if let Some(problem) = crate::topics::validate::topic_name_problem(&topic) {
        return error(
            StatusCode::BAD_REQUEST,
            Some("topic"),
            format!("`{topic}`: {problem}"),
        );
    }
    let correlation_id = event
        .correlation_id
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let mut headers: BTreeMap<String, Vec<u8>> = event
        .headers
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    headers.insert(
        crate::handler::envelope::CORRELATION_ID.to_owned(),
        correlation_id.clone().into_bytes(),
    );
    if let Some(t) = &event.event_type {
        headers.insert(
            crate::handler::envelope::EVENT_TYPE.to_owned(),
            t.clone().into_bytes(),
        );
    }
    let value = json!({
        "correlation_id": correlation_id,
        "event_type": event.event_type,
        "payload": event.payload,
    });
    let producer = match crate::producer::Producer::connect(
        &admin.settings.kafka,
        admin.settings.producer.compression_type,
    )
    .await
    {
        Ok(p) => p,
        Err(e) => return error(StatusCode::SERVICE_UNAVAILABLE, None, e.to_string()),
    };
    let record = crate::producer::OutRecord {
        topic: topic.clone(),
        partition: None,
        key: event.key.map(String::into_bytes),
        value: Some(value.to_string().into_bytes()),
        headers,
    };
    match producer.send(vec![record]).await.pop() {
        Some(Ok(w)) => HttpResponse::Created().json(json!({
            "topic": topic,
            "partition": w.partition,
            "offset": w.offset,
            "correlation_id": correlation_id,
        })),
        Some(Err(crate::producer::ProduceError::UnknownTopic { .. })) => error(
            StatusCode::NOT_FOUND,
            Some("topic"),
            format!("no topic {topic}"),
        ),
        Some(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, None, e.to_string()),
        None => error(StatusCode::SERVICE_UNAVAILABLE, None, "nothing was sent"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_lists_every_route_once_with_its_parameters_and_security() {
        let doc = openapi();
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = 0;
        for (path, methods) in paths {
            for (method, op) in methods.as_object().unwrap() {
                documented += 1;
                let route = ROUTES
                    .iter()
                    .find(|r| r.path == path && r.method.to_lowercase() == *method)
                    .unwrap_or_else(|| panic!("{method} {path} is documented but not a route"));
                assert_eq!(op["summary"], route.summary);
                assert_eq!(op.get("security").is_some(), route.mutating, "{path}");
                let params = path.matches('{').count();
                assert_eq!(
                    op["parameters"].as_array().map_or(0, Vec::len),
                    params,
                    "{path}"
                );
            }
        }
        assert_eq!(documented, ROUTES.len(), "a route is listed twice");
        // Every mutating route is a POST or DELETE, and every POST or
        // DELETE mutates.
        for r in ROUTES {
            assert_eq!(r.mutating, r.method != "GET", "{} {}", r.method, r.path);
        }
    }

    #[test]
    fn the_metrics_summary_adds_up_the_series() {
        let series = parse(
            "kafka_actors_consumer_records_total{topic=\"a\"} 10\n\
             kafka_actors_consumer_records_total{topic=\"b\"} 5\n\
             kafka_actors_consumer_lag_records{topic=\"a\",partition=\"0\"} 3\n\
             kafka_actors_consumer_lag_records{topic=\"a\",partition=\"1\"} 7\n\
             kafka_actors_handler_records_total{route=\"r\",outcome=\"handled\"} 12\n\
             kafka_actors_handler_records_total{route=\"s\",outcome=\"handled\"} 1\n\
             kafka_actors_handler_records_total{route=\"r\",outcome=\"validation\"} 2\n\
             kafka_actors_producer_records_total{topic=\"x\",outcome=\"ok\"} 14\n\
             kafka_actors_producer_records_total{topic=\"x\",outcome=\"error\"} 1\n\
             kafka_actors_broker_up 1\n",
        );
        let s = summary(&series);
        assert_eq!(s["consumer"]["records_consumed"], 15.0);
        assert_eq!(s["consumer"]["partitions"], 2);
        assert_eq!(s["consumer"]["lag_records_total"], 10.0);
        assert_eq!(s["consumer"]["lag_records_max"], 7.0);
        assert_eq!(s["handler"]["records_by_outcome"]["handled"], 13.0);
        assert_eq!(s["handler"]["records_by_outcome"]["validation"], 2.0);
        assert_eq!(s["producer"]["records_sent"], 14.0);
        assert_eq!(s["producer"]["records_failed"], 1.0);
        assert_eq!(s["broker_up"], 1.0);
        // Nothing there: 0, not -0.
        assert_eq!(s["consumer"]["stalls"].to_string(), "0.0");
    }
}
