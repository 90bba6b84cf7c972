//! What happens to one consumed record: route it, run its handler behind
//! the panic boundary, and turn the result into output records (replies,
//! forwards, or a dead letter). No actors, no I/O: the handler worker
//! publishes the outputs, and the partition consumer counts the record as
//! handled only once the broker acknowledged them.

use std::collections::BTreeMap;

use super::api::{Context, Failure, FailureKind, invoke};
use super::dead_letter::{self, Origin};
use super::envelope;
use super::router::Router;
use crate::config::Unrouted;
use crate::producer::OutRecord;

/// A consumed record, as the pipeline sees it.
#[derive(Debug, Clone)]
pub struct InRecord {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value.
    pub value: Option<Vec<u8>>,
    /// Headers.
    pub headers: BTreeMap<String, Vec<u8>>,
}

/// How a record ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The handler succeeded (with or without output).
    Handled,
    /// It failed and goes to the dead-letter topic.
    Failed(FailureKind),
    /// No route takes it; skipped.
    Skipped,
    /// No route takes it; dead-lettered.
    UnroutedDeadLettered,
}

impl Outcome {
    /// A stable label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Handled => "handled",
            Self::Failed(kind) => kind.as_str(),
            Self::Skipped => "unrouted_skipped",
            Self::UnroutedDeadLettered => "unrouted_dead_lettered",
        }
    }
}

/// The result of processing one record.
#[derive(Debug, Clone)]
pub struct Processed {
    /// The route that took it, if any.
    pub route: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Records to publish before the record counts as handled.
    pub outputs: Vec<OutRecord>,
}

/// Routes and handles `record`.
pub async fn process(router: &Router, record: &InRecord) -> Processed {
    let header_type = record
        .headers
        .get(envelope::EVENT_TYPE)
        .and_then(|v| std::str::from_utf8(v).ok());
    let request = envelope::read(&record.headers, record.value.as_deref());
    let event_type = match &request {
        Ok(r) => r.event_type.as_deref(),
        Err(_) => header_type,
    };
    let Some(route) = router.route(&record.topic, event_type) else {
        return match router.unrouted() {
            Unrouted::Skip => Processed {
                route: None,
                outcome: Outcome::Skipped,
                outputs: Vec::new(),
            },
            Unrouted::DeadLetter => {
                let failure = Failure {
                    kind: FailureKind::Validation,
                    message: format!("no route for event type {}", event_type.unwrap_or("(none)")),
                };
                Processed {
                    route: None,
                    outcome: Outcome::UnroutedDeadLettered,
                    outputs: vec![dead_letter_of(
                        record,
                        &dead_letter::default_topic(&record.topic),
                        "",
                        &failure,
                    )],
                }
            }
        };
    };

    let result = match &request {
        Err(e) => Err(Failure {
            kind: FailureKind::Deserialization,
            message: e.to_string(),
        }),
        Ok(request) => {
            let ctx = Context {
                topic: &record.topic,
                partition: record.partition,
                offset: record.offset,
                key: record.key.as_deref(),
                headers: &record.headers,
                correlation_id: request.correlation_id.as_deref(),
                event_type: request.event_type.as_deref(),
            };
            invoke(route.handler.as_ref(), ctx, request.payload.clone()).await
        }
    };

    match (result, request) {
        (Ok(values), Ok(request)) => {
            let outputs = values
                .into_iter()
                .filter_map(|value| match &route.forward_to {
                    Some(target) => Some(OutRecord {
                        topic: target.clone(),
                        partition: None,
                        key: record.key.clone(),
                        value: Some(value.to_string().into_bytes()),
                        headers: record.headers.clone(),
                    }),
                    None => envelope::reply(
                        &request,
                        record.key.as_deref(),
                        route.reply_topic.as_deref(),
                        value,
                    ),
                })
                .collect();
            Processed {
                route: Some(route.name.clone()),
                outcome: Outcome::Handled,
                outputs,
            }
        }
        (Err(failure), _) => Processed {
            route: Some(route.name.clone()),
            outcome: Outcome::Failed(failure.kind),
            outputs: vec![dead_letter_of(
                record,
                &route.dlq_topic,
                &route.name,
                &failure,
            )],
        },
        // A handler cannot have run without a readable request.
        (Ok(_), Err(e)) => Processed {
            route: Some(route.name.clone()),
            outcome: Outcome::Failed(FailureKind::Deserialization),
            outputs: vec![dead_letter_of(
                record,
                &route.dlq_topic,
                &route.name,
                &Failure {
                    kind: FailureKind::Deserialization,
                    message: e.to_string(),
                },
            )],
        },
    }
}

fn dead_letter_of(record: &InRecord, dlq_topic: &str, route: &str, failure: &Failure) -> OutRecord {
    dead_letter::record(
        dlq_topic,
        Origin {
            topic: &record.topic,
            partition: record.partition,
            offset: record.offset,
            route,
        },
        record.key.as_deref(),
        record.value.as_deref(),
        &record.headers,
        failure,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, RouteConfig};
    use crate::handler::router::HandlerRegistry;
    use serde_json::{Value, json};

    fn router(unrouted: Unrouted) -> Router {
        let mut c = Config::default();
        c.pipeline.unrouted = unrouted;
        c.routes.insert(
            "validate".into(),
            RouteConfig {
                topic: "req".into(),
                event_type: Some("validate".into()),
                handler: "echo".into(),
                reply_topic: Some("resp".into()),
                ..Default::default()
            },
        );
        c.routes.insert(
            "copy".into(),
            RouteConfig {
                topic: "events".into(),
                handler: "forward".into(),
                forward_to: Some("events.copy".into()),
                ..Default::default()
            },
        );
        Router::build(&c, &HandlerRegistry::with_builtins()).unwrap()
    }

    fn rec(topic: &str, value: &str) -> InRecord {
        InRecord {
            topic: topic.into(),
            partition: 1,
            offset: 9,
            key: Some(b"k".to_vec()),
            value: Some(value.as_bytes().to_vec()),
            headers: BTreeMap::new(),
        }
    }

    #[tokio::test]
    async fn echo_replies_forward_republishes_and_bad_input_is_dead_lettered() {
        let r = router(Unrouted::Skip);
        let body = json!({"correlation_id": "c1", "event_type": "validate", "payload": {"a": 1}});
        let p = process(&r, &rec("req", &body.to_string())).await;
        assert_eq!(p.outcome, Outcome::Handled);
        assert_eq!(p.outputs.len(), 1);
        assert_eq!(p.outputs[0].topic, "resp");
        let v: Value = serde_json::from_slice(p.outputs[0].value.as_deref().unwrap()).unwrap();
        assert_eq!(v["payload"], json!({"a": 1}));
        assert_eq!(v["correlation_id"], "c1");

        let p = process(&r, &rec("events", r#"{"x": 2}"#)).await;
        assert_eq!(p.outputs[0].topic, "events.copy");
        assert_eq!(p.outputs[0].key.as_deref(), Some(&b"k"[..]));

        let p = process(&r, &rec("events", "not json")).await;
        assert_eq!(p.outcome, Outcome::Failed(FailureKind::Deserialization));
        assert_eq!(p.outputs[0].topic, "events.dlq");
        assert_eq!(p.outputs[0].headers[dead_letter::ORIGINAL_OFFSET], b"9");
    }

    #[tokio::test]
    async fn unrouted_records_are_skipped_or_dead_lettered() {
        let body = json!({"event_type": "other", "payload": 1}).to_string();
        let p = process(&router(Unrouted::Skip), &rec("req", &body)).await;
        assert_eq!(p.outcome, Outcome::Skipped);
        assert!(p.outputs.is_empty());
        let p = process(&router(Unrouted::DeadLetter), &rec("req", &body)).await;
        assert_eq!(p.outcome, Outcome::UnroutedDeadLettered);
        assert_eq!(p.outputs[0].topic, "req.dlq");
    }

    #[tokio::test]
    async fn no_reply_topic_means_no_output() {
        let mut c = Config::default();
        c.routes.insert(
            "sink".into(),
            RouteConfig {
                topic: "t".into(),
                handler: "echo".into(),
                ..Default::default()
            },
        );
        let r = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap();
        let p = process(&r, &rec("t", "{}")).await;
        assert_eq!(p.outcome, Outcome::Handled);
        assert!(p.outputs.is_empty());
    }
}
