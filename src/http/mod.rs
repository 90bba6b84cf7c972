//! The HTTP listener: `/health`, `/health/live`, `/health/ready`,
//! `/metrics` (Prometheus text format), and the admin API under `/api/v1/`
//! ([`admin`], [`api`]); every route is in [`api::ROUTES`], which also
//! gives the OpenAPI document.
//!
//! One actix-web worker: these endpoints are cheap and the cores belong to
//! the pipeline. Handlers ask the [`HealthMonitor`] actor, so `/health/live`
//! failing means the actor system itself stopped answering.

pub mod admin;
pub mod api;

use std::net::SocketAddr;
use std::time::Duration;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{App, HttpResponse, HttpServer, web};
use metrics_exporter_prometheus::PrometheusHandle;

use crate::health::{GetHealth, HealthMonitor, TopicCheck};
use crate::telemetry::metrics as m;

/// How long `/health*` waits for the monitor before answering 503.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Clone)]
struct State {
    health: Addr<HealthMonitor>,
    prometheus: PrometheusHandle,
}

fn count(path: &'static str, status: StatusCode) {
    metrics::counter!(m::HTTP_REQUESTS_TOTAL, "path" => path, "status" => status.as_str().to_owned())
        .increment(1);
}

async fn get_health(state: web::Data<State>) -> HttpResponse {
    let response = match state.health.send(GetHealth).timeout(ASK_TIMEOUT).await {
        Ok(report) => {
            let code = if report.ready() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            HttpResponse::build(code).json(report)
        }
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unhealthy", "reasons": [format!("health monitor did not answer: {e}")]})),
    };
    count("/health", response.status());
    response
}

/// Seed 003's topic health: the declared topics' latest verification
/// (`status`, `required_topics`, `existing_topics`, `missing_topics`,
/// `last_verification`, drift); 503 when one is missing, 404 when no topic
/// is declared.
async fn get_topics(state: web::Data<State>) -> HttpResponse {
    let response = match state.health.send(GetHealth).timeout(ASK_TIMEOUT).await {
        Ok(report) => match report.components.topics {
            Some(topics) => {
                let code = match &topics {
                    TopicCheck::Report(r) if r.missing_topics.is_empty() => StatusCode::OK,
                    _ => StatusCode::SERVICE_UNAVAILABLE,
                };
                HttpResponse::build(code).json(topics)
            }
            None => HttpResponse::NotFound().json(serde_json::json!({
                "error": {"status": 404, "message": "no topics are declared ([topics.*])", "field": null}
            })),
        },
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "unhealthy", "reasons": [format!("health monitor did not answer: {e}")]})),
    };
    count("/health/topics", response.status());
    response
}

async fn get_live(state: web::Data<State>) -> HttpResponse {
    let response = match state.health.send(GetHealth).timeout(ASK_TIMEOUT).await {
        Ok(_) => HttpResponse::Ok().json(serde_json::json!({"status": "live"})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "dead", "reason": e.to_string()})),
    };
    count("/health/live", response.status());
    response
}

async fn get_ready(state: web::Data<State>) -> HttpResponse {
    let response = match state.health.send(GetHealth).timeout(ASK_TIMEOUT).await {
        Ok(report) if report.ready() => {
            HttpResponse::Ok().json(serde_json::json!({"status": "ready"}))
        }
        Ok(report) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "not ready", "reasons": report.reasons})),
        Err(e) => HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"status": "not ready", "reasons": [e.to_string()]})),
    };
    count("/health/ready", response.status());
    response
}

async fn get_metrics(state: web::Data<State>) -> HttpResponse {
    count("/metrics", StatusCode::OK);
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.prometheus.render())
}

/// A started HTTP listener.
pub struct HttpService {
    /// The bound address (the real port when 0 was asked for).
    pub addr: SocketAddr,
    /// Stops the server gracefully.
    pub handle: ServerHandle,
}

/// Serves on `listener` (bound by the caller, so a busy port fails before
/// any actor starts) on the current actix system.
pub fn start(
    listener: std::net::TcpListener,
    health: Addr<HealthMonitor>,
    prometheus: PrometheusHandle,
    admin: admin::Admin,
    shutdown_timeout: Duration,
) -> std::io::Result<HttpService> {
    let state = State { health, prometheus };
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::Data::new(admin.clone()))
            .configure(api::register)
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(shutdown_timeout.as_secs().max(1))
    .listen(listener)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("the HTTP listener has no address"))?;
    let server = server.run();
    let handle = server.handle();
    actix::spawn(async move {
        if let Err(e) = server.await {
            tracing::error!(error = %e, "HTTP server failed");
        }
    });
    Ok(HttpService { addr, handle })
}
