//! The admin API under `/api/v1/` (the first of its routes): the running
//! partitions, and pausing or resuming one.
//!
//! - `GET /api/v1/status`: version, uptime, group, instance, health, and
//!   the partitions by state.
//! - `GET /api/v1/config`: the effective configuration, secrets redacted.
//! - `GET /api/v1/partitions`: every partition this instance consumes, with
//!   its [`PartitionState`].
//! - `POST /api/v1/partitions/{topic}/{partition}/pause` and `.../resume`.
//! - `GET /api/v1/alerts`: the pending and firing alerts
//!   ([`crate::health::alerts`]).
//!
//! Mutating requests need `Authorization: Bearer <http.admin_token>`,
//! compared in constant time; without a configured token they are refused
//! (403). Errors are JSON, `{"error": {"status", "message", "field"}}`,
//! naming the field that is wrong; nothing changes on a refused request.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use subtle::ConstantTimeEq;

use crate::config::Secret;
use crate::consumer::partition::{
    AdminPause, AdminResume, AdminSeek, Describe, PartitionState, SeekTo,
};
use crate::health::alerts::{AlertManager, GetAlerts};
use crate::health::{GetHealth, HealthMonitor};
use crate::runtime::pipeline::Directory;

/// How long a request waits for a partition consumer.
const ASK_TIMEOUT: Duration = Duration::from_secs(5);

/// What the admin routes need.
#[derive(Clone)]
pub struct Admin {
    /// The running partition consumers.
    pub directory: Directory,
    /// `http.admin_token`.
    pub token: Option<Secret>,
    /// The effective configuration as JSON (secrets serialise redacted).
    pub config: Arc<serde_json::Value>,
    /// The health monitor.
    pub health: Addr<HealthMonitor>,
    /// The alert manager.
    pub alerts: Addr<AlertManager>,
    /// `consumer.group_id`.
    pub group: String,
    /// This instance, as dead letters name it.
    pub instance: String,
    /// When the service started.
    pub started: chrono::DateTime<chrono::Utc>,
    /// The metrics of this process.
    pub prometheus: PrometheusHandle,
    /// The configuration (for the routes that ask the cluster).
    pub settings: Arc<crate::config::Config>,
    /// Topics this service reads or writes (never deleted by a request).
    pub used_topics: BTreeSet<String>,
}

impl Admin {
    /// The admin state of a service running `config`, started now.
    pub fn new(
        config: &crate::config::Config,
        directory: Directory,
        health: Addr<HealthMonitor>,
        alerts: Addr<AlertManager>,
        prometheus: PrometheusHandle,
    ) -> Self {
        Self {
            directory,
            token: config.http.admin_token.clone(),
            config: Arc::new(serde_json::to_value(config).unwrap_or(serde_json::Value::Null)),
            health,
            alerts,
            group: config.consumer.group_id.clone(),
            instance: crate::handler::dead_letter::instance_id(config),
            started: chrono::Utc::now(),
            prometheus,
            settings: Arc::new(config.clone()),
            used_topics: used_topics(config),
        }
    }
}

/// Every topic the routes read or write, and the declared ones.
fn used_topics(config: &crate::config::Config) -> BTreeSet<String> {
    let mut used: BTreeSet<String> = config
        .topics
        .iter()
        .map(|(key, spec)| spec.topic_name(key).to_owned())
        .collect();
    for route in config.routes.values() {
        let input = config.topic_name(&route.topic);
        // Where records no route takes are dead-lettered.
        used.insert(crate::handler::dead_letter::default_topic(&input));
        used.insert(
            route
                .dlq_topic
                .as_deref()
                .map(|t| config.topic_name(t))
                .unwrap_or_else(|| crate::handler::dead_letter::default_topic(&input)),
        );
        if route.retry.mode == crate::config::RetryMode::Topic {
            used.insert(
                route
                    .retry
                    .topic
                    .as_deref()
                    .map(|t| config.topic_name(t))
                    .unwrap_or_else(|| crate::handler::retry_topic::default_topic(&input)),
            );
        }
        for t in [&route.reply_topic, &route.forward_to]
            .into_iter()
            .flatten()
        {
            used.insert(config.topic_name(t));
        }
        used.insert(input);
    }
    used
}

/// `body` as JSON of type `T`, or a 400 naming `body` that says what was
/// `expected`.
pub(super) fn json_body<T: serde::de::DeserializeOwned>(
    body: &[u8],
    expected: &str,
) -> Result<T, Box<HttpResponse>> {
    serde_json::from_slice(body).map_err(|e| {
        Box::new(error(
            StatusCode::BAD_REQUEST,
            Some("body"),
            format!("expected {expected}: {e}"),
        ))
    })
}

pub(super) fn error(
    status: StatusCode,
    field: Option<&str>,
    message: impl Into<String>,
) -> HttpResponse {
    HttpResponse::build(status).json(json!({
        "error": {"status": status.as_u16(), "message": message.into(), "field": field}
    }))
}

/// The refusal of `req` unless it carries the admin token.
pub(super) fn refusal(req: &HttpRequest, token: Option<&Secret>) -> Option<HttpResponse> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Some(error(
            StatusCode::FORBIDDEN,
            None,
            "mutating admin requests are disabled: no http.admin_token is configured",
        ));
    };
    let given = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(given) if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) => None,
        _ => {
            let mut refusal = error(
                StatusCode::UNAUTHORIZED,
                Some("Authorization"),
                "a mutating admin request needs the header Authorization: Bearer <http.admin_token>",
            );
            refusal.headers_mut().insert(
                actix_web::http::header::WWW_AUTHENTICATE,
                actix_web::http::header::HeaderValue::from_static("Bearer"),
            );
            Some(refusal)
        }
    }
}

/// The state of every running partition consumer that answers in time.
async fn states(admin: &Admin) -> Vec<PartitionState> {
    let consumers: Vec<_> = match admin.directory.read() {
        Ok(d) => d.values().cloned().collect(),
        Err(_) => Vec::new(),
    };
    let asks = consumers
        .iter()
        .map(|c| tokio::time::timeout(ASK_TIMEOUT, c.send(Describe)));
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .filter_map(|r| r.ok().and_then(Result::ok))
        .collect()
}

pub(super) async fn alerts(admin: web::Data<Admin>) -> HttpResponse {
    match admin.alerts.send(GetAlerts).timeout(ASK_TIMEOUT).await {
        Ok(alerts) => HttpResponse::Ok().json(json!({"alerts": alerts})),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!("the alert manager did not answer: {e}"),
        ),
    }
}

pub(super) async fn list_partitions(admin: web::Data<Admin>) -> HttpResponse {
    HttpResponse::Ok().json(states(&admin).await)
}

pub(super) async fn status(admin: web::Data<Admin>) -> HttpResponse {
    let partitions = states(&admin).await;
    let mut by_state: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for p in &partitions {
        *by_state.entry(p.state).or_default() += 1;
    }
    let health = match tokio::time::timeout(ASK_TIMEOUT, admin.health.send(GetHealth)).await {
        Ok(Ok(report)) => {
            json!({"status": report.status, "ready": report.ready(), "reasons": report.reasons})
        }
        _ => {
            json!({"status": "unhealthy", "ready": false, "reasons": ["the health monitor did not answer"]})
        }
    };
    let now = chrono::Utc::now();
    HttpResponse::Ok().json(json!({
        "service": "kafka-actors",
        "version": env!("CARGO_PKG_VERSION"),
        "started_at": crate::handler::dead_letter::time_text(admin.started),
        "uptime_seconds": (now - admin.started).num_seconds(),
        "group": admin.group,
        "instance": admin.instance,
        "health": health,
        "partitions": {
            "count": partitions.len(),
            "by_state": by_state,
            "in_flight_records": partitions.iter().map(|p| p.in_flight_records).sum::<usize>(),
            "parked_records": partitions.iter().map(|p| p.parked_records).sum::<usize>(),
        },
    }))
}

pub(super) async fn config(admin: web::Data<Admin>) -> HttpResponse {
    HttpResponse::Ok().json(admin.config.as_ref())
}

pub(super) async fn pause_partition(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    admin: web::Data<Admin>,
) -> HttpResponse {
    partition_action(&req, path.into_inner(), &admin, true).await
}

pub(super) async fn resume_partition(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    admin: web::Data<Admin>,
) -> HttpResponse {
    partition_action(&req, path.into_inner(), &admin, false).await
}

/// The body of a seek: exactly one of `offset`, `to` (`earliest`,
/// `latest`) and `timestamp` (RFC 3339).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SeekBody {
    offset: Option<i64>,
    to: Option<String>,
    timestamp: Option<String>,
    /// A replay id for the records handled again.
    replay: Option<String>,
}

pub(super) async fn seek_partition(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    admin: web::Data<Admin>,
    body: web::Bytes,
) -> HttpResponse {
    if let Some(refused) = refusal(&req, admin.token.as_ref()) {
        return refused;
    }
    let (topic, partition) = path.into_inner();
    let body: SeekBody = match json_body(
        &body,
        "{\"offset\": N}, {\"to\": \"earliest\"|\"latest\"} or {\"timestamp\": RFC 3339}",
    ) {
        Ok(b) => b,
        Err(refused) => return *refused,
    };
    let to = match (body.offset, body.to.as_deref(), body.timestamp) {
        (Some(o), None, None) => SeekTo::Offset(o),
        (None, Some("earliest"), None) => SeekTo::Earliest,
        (None, Some("latest"), None) => SeekTo::Latest,
        (None, Some(other), None) => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("to"),
                format!("to must be earliest or latest, got {other:?}"),
            );
        }
        (None, None, Some(t)) => match chrono::DateTime::parse_from_rfc3339(&t) {
            Ok(t) => SeekTo::Timestamp(t.with_timezone(&chrono::Utc)),
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    Some("timestamp"),
                    format!("`{t}`: {e} (expected RFC 3339)"),
                );
            }
        },
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                Some("body"),
                "give exactly one of offset, to and timestamp",
            );
        }
    };
    if let Some(Err(e)) = body
        .replay
        .as_deref()
        .map(crate::group::reset::check_replay_id)
    {
        return error(StatusCode::BAD_REQUEST, Some("replay"), e.to_string());
    }
    let Some(consumer) = consumer_of(&admin, &topic, &partition) else {
        return not_consumed(&topic, &partition);
    };
    match consumer
        .send(AdminSeek {
            to,
            replay: body.replay,
        })
        .await
    {
        Ok(Ok(offset)) => HttpResponse::Ok().json(json!({
            "topic": topic,
            "partition": partition,
            "offset": offset,
        })),
        Ok(Err(("offset", why))) => error(StatusCode::BAD_REQUEST, Some("offset"), why),
        Ok(Err((_, why))) => error(StatusCode::SERVICE_UNAVAILABLE, Some("partition"), why),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!("{topic}/{partition} did not answer: {e}"),
        ),
    }
}

/// The consumer of `topic`/`partition` here, if this instance has one.
fn consumer_of(
    admin: &Admin,
    topic: &str,
    partition: &str,
) -> Option<Addr<crate::consumer::partition::PartitionConsumer>> {
    let partition = partition.parse::<i32>().ok()?;
    admin
        .directory
        .read()
        .ok()
        .and_then(|d| d.get(&(topic.to_owned(), partition)).cloned())
}

fn not_consumed(topic: &str, partition: &str) -> HttpResponse {
    if partition.parse::<i32>().is_err() {
        return error(
            StatusCode::BAD_REQUEST,
            Some("partition"),
            format!("partition must be a number, got {partition:?}"),
        );
    }
    error(
        StatusCode::NOT_FOUND,
        Some("partition"),
        format!("{topic}/{partition} is not consumed by this instance"),
    )
}

async fn partition_action(
    req: &HttpRequest,
    (topic, partition): (String, String),
    admin: &Admin,
    pause: bool,
) -> HttpResponse {
    if let Some(refused) = refusal(req, admin.token.as_ref()) {
        return refused;
    }
    let Ok(partition) = partition.parse::<i32>() else {
        return error(
            StatusCode::BAD_REQUEST,
            Some("partition"),
            format!("partition must be a number, got {partition:?}"),
        );
    };
    let consumer = admin
        .directory
        .read()
        .ok()
        .and_then(|d| d.get(&(topic.clone(), partition)).cloned());
    let Some(consumer) = consumer else {
        return error(
            StatusCode::NOT_FOUND,
            Some("partition"),
            format!("{topic}/{partition} is not consumed by this instance"),
        );
    };
    let answer = if pause {
        tokio::time::timeout(ASK_TIMEOUT, consumer.send(AdminPause)).await
    } else {
        tokio::time::timeout(ASK_TIMEOUT, consumer.send(AdminResume)).await
    };
    match answer {
        Ok(Ok(state)) => HttpResponse::Ok().json(state),
        _ => error(
            StatusCode::SERVICE_UNAVAILABLE,
            None,
            format!("{topic}/{partition} did not answer (it may be restarting or revoked)"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn only_the_configured_bearer_token_is_let_through() {
        let token = Secret::new("s3cret");
        let with = |value: &str| {
            TestRequest::default()
                .insert_header(("Authorization", value.to_owned()))
                .to_http_request()
        };
        assert!(refusal(&with("Bearer s3cret"), Some(&token)).is_none());
        for wrong in [
            "Bearer s3cre",
            "Bearer s3cret2",
            "s3cret",
            "Basic s3cret",
            "Bearer ",
        ] {
            let refused = refusal(&with(wrong), Some(&token)).unwrap();
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED, "{wrong}");
        }
        let none = TestRequest::default().to_http_request();
        assert_eq!(
            refusal(&none, Some(&token)).unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
        // No token configured (or an empty one): mutations are refused.
        assert_eq!(
            refusal(&with("Bearer s3cret"), None).unwrap().status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            refusal(&with("Bearer "), Some(&Secret::new("")))
                .unwrap()
                .status(),
            StatusCode::FORBIDDEN
        );
    }
}
