//! Routes: which handler takes which record, and what happens to its
//! outputs and failures. Built once at start-up from `[routes.*]` and the
//! handlers registered by the library user; pure logic, no actors.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use serde_json::Value;

use super::api::{BoxFuture, Context, Handler, HandlerError};
use super::dead_letter;
use crate::config::{Config, Unrouted};

/// Handlers by name: the built-ins plus those the library user registers.
#[derive(Clone, Default)]
pub struct HandlerRegistry {
    handlers: HashMap<String, Arc<dyn Handler>>,
}

impl std::fmt::Debug for HandlerRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.handlers.keys().collect();
        names.sort();
        f.debug_struct("HandlerRegistry")
            .field("handlers", &names)
            .finish()
    }
}

/// `echo` and `forward`: the payload, unchanged.
struct Identity;

impl Handler for Identity {
    fn handle<'a>(
        &'a self,
        _ctx: Context<'a>,
        payload: Value,
    ) -> BoxFuture<'a, Result<Vec<Value>, HandlerError>> {
        Box::pin(async move { Ok(vec![payload]) })
    }
}

/// `jq`: the route's program, each output one reply.
struct Jq(super::jq::JqProgram);

impl Handler for Jq {
    fn handle<'a>(
        &'a self,
        _ctx: Context<'a>,
        payload: Value,
    ) -> BoxFuture<'a, Result<Vec<Value>, HandlerError>> {
        let result = self.0.run(payload).map_err(|e| jq_failure(&e));
        Box::pin(async move { result })
    }
}

/// A jq error as a handler error: `error({class: "dependency" | "processing"
/// | "validation", code: "...", message: "..."})` picks the class (so a jq
/// route can ask for a retry) and the error code (a string or a number);
/// any other error is a validation failure.
fn jq_failure(e: &super::jq::JqError) -> HandlerError {
    if let super::jq::JqError::Runtime { message } = e
        && let Ok(Value::Object(error)) = serde_json::from_str::<Value>(message)
    {
        let text = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or(message)
            .to_owned();
        let failure = match error.get("class").and_then(Value::as_str) {
            Some("processing") => Some(HandlerError::Retryable(text)),
            Some("dependency") => Some(HandlerError::Dependency(text)),
            Some("validation") => Some(HandlerError::Permanent(text)),
            _ => None,
        };
        let code = match error.get("code") {
            Some(Value::String(code)) => Some(code.clone()),
            Some(Value::Number(code)) => Some(code.to_string()),
            _ => None,
        };
        let failure = failure.unwrap_or_else(|| HandlerError::Permanent(e.to_string()));
        return match code {
            Some(code) => failure.with_code(code),
            None => failure,
        };
    }
    HandlerError::Permanent(e.to_string())
}

impl HandlerRegistry {
    /// The built-in handlers: `echo` (reply with the payload) and `forward`
    /// (republish the payload to the route's `forward_to`).
    pub fn with_builtins() -> Self {
        let mut registry = Self::default();
        registry.register("echo", Arc::new(Identity));
        registry.register("forward", Arc::new(Identity));
        registry
    }

    /// Registers `handler` as `name`, replacing any handler of that name.
    pub fn register(&mut self, name: impl Into<String>, handler: Arc<dyn Handler>) {
        self.handlers.insert(name.into(), handler);
    }

    /// The handler registered as `name`.
    pub fn get(&self, name: &str) -> Option<Arc<dyn Handler>> {
        self.handlers.get(name).cloned()
    }
}

/// A route, ready to run.
pub struct Route {
    /// Its name (the `[routes.<name>]` key).
    pub name: String,
    /// The handler.
    pub handler: Arc<dyn Handler>,
    /// The handler's name (`handler` of the route config).
    pub handler_name: String,
    /// Where replies go (unless the request names `reply_to`).
    pub reply_topic: Option<String>,
    /// Where failures go.
    pub dlq_topic: String,
    /// For forwarding routes: where outputs are republished.
    pub forward_to: Option<String>,
    /// Records of one input partition handled at once.
    pub concurrency: usize,
    /// Deadline of one handler call.
    pub timeout: Option<std::time::Duration>,
    /// How failures whose action is `retry` are retried in place.
    pub retry: crate::config::RetryConfig,
    /// What each failure class does.
    pub actions: super::failure::Actions,
    /// The circuit breaker, when configured.
    pub breaker: Option<super::failure::Breaker>,
    /// With `retry.mode = "topic"`: where failed records wait for their
    /// next attempt.
    pub retry_topic: Option<String>,
    /// `ordering = "key"`: an in-place retry parks the record and the later
    /// records with its key; other keys go on.
    pub key_order: bool,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("name", &self.name)
            .field("reply_topic", &self.reply_topic)
            .field("dlq_topic", &self.dlq_topic)
            .field("forward_to", &self.forward_to)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct TopicRoutes {
    by_type: HashMap<String, Arc<Route>>,
    any: Option<Arc<Route>>,
}

/// Why the routes could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RouterError {
    /// A jq route's program does not compile.
    #[error("routes.{route}.program: {message}")]
    Program {
        /// The route.
        route: String,
        /// The compiler's message.
        message: String,
    },
    /// A route names a handler nobody registered.
    #[error(
        "routes.{route}.handler: no handler named `{handler}` (built-in: echo, forward, jq{registered}); \
         handlers of your own are registered by a program built on the library, \
         see examples/intelligence"
    )]
    UnknownHandler {
        /// The route.
        route: String,
        /// The handler it names.
        handler: String,
        /// Registered names besides the built-ins, `, a, b`.
        registered: String,
    },
    /// Key order of one input topic configured two ways.
    #[error("routes.{route}.ordering: {message}")]
    KeyOrder {
        /// The route.
        route: String,
        /// What conflicts.
        message: String,
    },
    /// A retry topic that keeps key order is shared with another input
    /// topic's routes.
    #[error(
        "routes.{route}.retry.topic: `{retry_topic}` keeps the key order of `{}` \
         (ordering = \"key\") and is co-partitioned with it, so it cannot also be the retry \
         topic of routes.{other} (input topic `{}`); give one of them its own",
        .inputs.0, .inputs.1
    )]
    SharedRetryTopic {
        /// A key-ordered route.
        route: String,
        /// Its retry topic.
        retry_topic: String,
        /// A route of another input topic retrying through it.
        other: String,
        /// The two routes' input topics.
        inputs: Box<(String, String)>,
    },
}

/// Why the service was asked to stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// A `stop` failure action, with its reason.
    Action(String),
    /// A broker refused the credentials after start-up.
    Refused(String),
    /// TLS to a broker failed after start-up (a certificate replaced by
    /// one the CA did not sign, or expired).
    Tls(String),
}

/// Every route by input topic and event type.
#[derive(Debug)]
pub struct Router {
    topics: BTreeMap<String, TopicRoutes>,
    /// Retry topics: the routes retrying through each, by name.
    retry_topics: BTreeMap<String, HashMap<String, Arc<Route>>>,
    /// Retry topics that keep key order, by input topic: each partition of
    /// one is consumed beside the same partition of its input topic.
    companions: BTreeMap<String, String>,
    unrouted: Unrouted,
    instance: String,
    /// `pipeline.pause_ms`.
    pause: std::time::Duration,
    /// The pipeline's failure actions, for records no route takes.
    unrouted_actions: super::failure::Actions,
    /// Set once a `stop` action asks the service to shut down (why).
    stop: tokio::sync::watch::Sender<Option<Stop>>,
    /// A one-off replay's id: every output carries it in
    /// [`REPLAY_HEADER`].
    replay: Option<String>,
}

/// The header every output of a one-off replay (`kafka-actors replay
/// --group`) carries, with the replay's group id as its value.
pub const REPLAY_HEADER: &str = "kafka-actors.replay";

impl Router {
    /// Builds the routes of `config` with the handlers of `registry`.
    pub fn build(config: &Config, registry: &HandlerRegistry) -> Result<Self, RouterError> {
        let mut topics: BTreeMap<String, TopicRoutes> = BTreeMap::new();
        let mut retry_topics: BTreeMap<String, HashMap<String, Arc<Route>>> = BTreeMap::new();
        // Each route's input topic, for the retry topics' checks.
        let mut inputs: BTreeMap<String, String> = BTreeMap::new();
        for (name, route) in &config.routes {
            let handler: Option<Arc<dyn Handler>> =
                match (route.handler.as_str(), &route.program) {
                    ("jq", Some(program)) => Some(Arc::new(Jq(super::jq::compile(program)
                        .map_err(|e| RouterError::Program {
                            route: name.clone(),
                            message: e.to_string(),
                        })?))),
                    _ => registry.get(&route.handler),
                };
            let handler = handler.ok_or_else(|| {
                let mut others: Vec<&String> = registry
                    .handlers
                    .keys()
                    .filter(|n| !matches!(n.as_str(), "echo" | "forward"))
                    .collect();
                others.sort();
                RouterError::UnknownHandler {
                    route: name.clone(),
                    handler: route.handler.clone(),
                    registered: others.iter().map(|n| format!(", {n}")).collect(),
                }
            })?;
            let topic = config.topic_name(&route.topic);
            let ready = Arc::new(Route {
                name: name.clone(),
                handler,
                handler_name: route.handler.clone(),
                reply_topic: route.reply_topic.as_deref().map(|t| config.topic_name(t)),
                dlq_topic: route
                    .dlq_topic
                    .as_deref()
                    .map(|t| config.topic_name(t))
                    .unwrap_or_else(|| dead_letter::default_topic(&topic)),
                forward_to: route.forward_to.as_deref().map(|t| config.topic_name(t)),
                concurrency: route.concurrency.max(1) as usize,
                timeout: route
                    .handler_timeout_ms
                    .map(std::time::Duration::from_millis),
                retry: route.retry.clone(),
                actions: super::failure::Actions::new(
                    &route.on_failure,
                    &config.pipeline.on_failure,
                ),
                breaker: super::failure::Breaker::new(
                    name,
                    &route.circuit_breaker,
                    std::time::Duration::from_millis(config.pipeline.pause_ms),
                ),
                retry_topic: (route.retry.mode == crate::config::RetryMode::Topic).then(|| {
                    route
                        .retry
                        .topic
                        .as_deref()
                        .map(|t| config.topic_name(t))
                        .unwrap_or_else(|| super::retry_topic::default_topic(&topic))
                }),
                key_order: route.ordering == crate::config::Ordering::Key,
            });
            if let Some(retry_topic) = &ready.retry_topic {
                retry_topics
                    .entry(retry_topic.clone())
                    .or_default()
                    .insert(name.clone(), Arc::clone(&ready));
            }
            inputs.insert(name.clone(), topic.clone());
            let entry = topics.entry(topic).or_default();
            match &route.event_type {
                Some(t) => {
                    entry.by_type.insert(t.clone(), ready);
                }
                None => entry.any = Some(ready),
            }
        }
        let mut companions = BTreeMap::new();
        for (retry_topic, routes) in &retry_topics {
            let Some(keyed) = routes.values().find(|r| r.key_order) else {
                continue;
            };
            let input = &inputs[&keyed.name];
            if let Some(other) = routes.values().find(|r| &inputs[&r.name] != input) {
                return Err(RouterError::SharedRetryTopic {
                    route: keyed.name.clone(),
                    retry_topic: retry_topic.clone(),
                    other: other.name.clone(),
                    inputs: Box::new((input.clone(), inputs[&other.name].clone())),
                });
            }
            if let Some(first) = companions.insert(input.clone(), retry_topic.clone()) {
                return Err(RouterError::KeyOrder {
                    route: keyed.name.clone(),
                    message: format!(
                        "`{input}` already keeps key order through `{first}`; the key-ordered \
                         routes of one input topic must share one retry topic"
                    ),
                });
            }
        }
        // One input topic keeps key order one way: in place, or through
        // its retry topic (records parked in place would not see the keys
        // waiting there).
        for (name, route) in &config.routes {
            let input = &inputs[name];
            if let Some(retry_topic) = companions.get(input)
                && route.ordering == crate::config::Ordering::Key
                && route.retry.mode != crate::config::RetryMode::Topic
            {
                return Err(RouterError::KeyOrder {
                    route: name.clone(),
                    message: format!(
                        "`{input}` keeps key order through its retry topic `{retry_topic}`, \
                         so its key-ordered routes must retry through it too \
                         (retry.mode = \"topic\")"
                    ),
                });
            }
        }
        Ok(Self {
            topics,
            retry_topics,
            companions,
            unrouted: config.pipeline.unrouted,
            instance: dead_letter::instance_id(config),
            pause: std::time::Duration::from_millis(config.pipeline.pause_ms),
            unrouted_actions: super::failure::Actions::new(
                &crate::config::FailureActions::default(),
                &config.pipeline.on_failure,
            ),
            stop: tokio::sync::watch::Sender::new(None),
            replay: None,
        })
    }

    /// The routes of a one-off replay `id`: their outputs carry
    /// [`REPLAY_HEADER`].
    pub fn with_replay(mut self, id: Option<String>) -> Self {
        self.replay = id;
        self
    }

    /// The one-off replay these routes run for, if any.
    pub fn replay(&self) -> Option<&str> {
        self.replay.as_deref()
    }

    /// Every topic consumed on its own (input topics, and retry topics
    /// that do not keep key order), sorted.
    pub fn topics(&self) -> Vec<String> {
        let mut all: Vec<String> = self
            .topics
            .keys()
            .chain(
                self.retry_topics
                    .keys()
                    .filter(|t| !self.companions.values().any(|c| c == *t)),
            )
            .cloned()
            .collect();
        all.sort();
        all.dedup();
        all
    }

    /// How long a failed record whose action is `pause` waits
    /// (`pipeline.pause_ms`).
    pub fn pause(&self) -> std::time::Duration {
        self.pause
    }

    /// The failure actions for records no route takes: the pipeline's.
    pub fn unrouted_actions(&self) -> &super::failure::Actions {
        &self.unrouted_actions
    }

    /// The retry topic that keeps the key order of input topic `topic`:
    /// its partition `p` is consumed beside `topic`'s partition `p`.
    pub fn companion(&self, topic: &str) -> Option<&str> {
        self.companions.get(topic).map(String::as_str)
    }

    /// Whether `topic` is the retry topic of a route.
    pub fn is_retry_topic(&self, topic: &str) -> bool {
        self.retry_topics.contains_key(topic)
    }

    /// The routes retrying through `topic`.
    pub fn retry_routes(&self, topic: &str) -> impl Iterator<Item = &Arc<Route>> {
        self.retry_topics
            .get(topic)
            .into_iter()
            .flat_map(|r| r.values())
    }

    /// The route named `name` if it retries through `topic`.
    pub fn retry_route(&self, topic: &str, name: &str) -> Option<&Arc<Route>> {
        self.retry_topics.get(topic)?.get(name)
    }

    /// The route for a record of `topic` with `event_type`: the route of that
    /// event type, else the topic's catch-all route.
    pub fn route(&self, topic: &str, event_type: Option<&str>) -> Option<&Arc<Route>> {
        let routes = self.topics.get(topic)?;
        event_type
            .and_then(|t| routes.by_type.get(t))
            .or(routes.any.as_ref())
    }

    /// Handler workers per partition of `topic`: the largest concurrency of
    /// its routes (1 for a topic no route reads).
    pub fn concurrency(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(1, |routes| {
            routes
                .by_type
                .values()
                .chain(routes.any.iter())
                .map(|r| r.concurrency)
                .max()
                .unwrap_or(1)
        })
    }

    /// What to do with records no route takes.
    pub fn unrouted(&self) -> Unrouted {
        self.unrouted
    }

    /// Asks the service to shut down cleanly because of `reason` (a `stop`
    /// failure action); the first reason wins.
    pub fn stop_service(&self, reason: String) {
        self.stop_with(Stop::Action(reason));
    }

    /// Asks the service to shut down cleanly because a broker refused its
    /// credentials after start-up: connecting again cannot help, so it is
    /// not retried like a network failure (exit code 6, as at start-up).
    pub fn stop_refused(&self, reason: String) {
        self.stop_with(Stop::Refused(reason));
    }

    /// Asks the service to shut down cleanly because TLS to a broker failed
    /// after start-up (exit code 7, as at start-up).
    pub fn stop_tls(&self, reason: String) {
        self.stop_with(Stop::Tls(reason));
    }

    fn stop_with(&self, stop: Stop) {
        self.stop.send_if_modified(|current| {
            if current.is_none() {
                *current = Some(stop);
                true
            } else {
                false
            }
        });
    }

    /// Resolves once [`Router::stop_service`] or [`Router::stop_refused`]
    /// was called, with why.
    pub async fn stopped(&self) -> Stop {
        let mut rx = self.stop.subscribe();
        loop {
            if let Some(stop) = rx.borrow_and_update().clone() {
                return stop;
            }
            if rx.changed().await.is_err() {
                // The sender lives as long as `self`: unreachable.
                std::future::pending::<()>().await;
            }
        }
    }

    /// This process in dead letters' `dlq.instance.id`.
    pub fn instance(&self) -> &str {
        &self.instance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jq_errors_pick_their_class_with_an_object() {
        let run = |program: &str| {
            let p = super::super::jq::compile(program).unwrap();
            jq_failure(&p.run(serde_json::json!({})).unwrap_err())
        };
        assert_eq!(
            run(r#"error({class: "dependency", message: "db down"})"#),
            HandlerError::Dependency("db down".into())
        );
        assert_eq!(
            run(r#"error({class: "processing", message: "busy"})"#),
            HandlerError::Retryable("busy".into())
        );
        assert!(
            matches!(run(r#"error("refused")"#), HandlerError::Permanent(m) if m.contains("refused"))
        );
        assert!(matches!(
            run(r#"error({class: "other"})"#),
            HandlerError::Permanent(_)
        ));
        assert_eq!(
            run(r#"error({class: "processing", code: "RATE_LIMITED", message: "slow down"})"#),
            HandlerError::Retryable("slow down".into()).with_code("RATE_LIMITED")
        );
        assert_eq!(
            run(r#"error({class: "validation", code: 404, message: "no such sku"})"#),
            HandlerError::Permanent("no such sku".into()).with_code("404")
        );
        // A code without a class: a validation failure with that code.
        assert!(matches!(
            run(r#"error({code: "X", message: "m"})"#),
            HandlerError::Coded { code, .. } if code == "X"
        ));
    }
    use crate::config::RouteConfig;

    fn config(routes: &[(&str, &str, Option<&str>, &str)]) -> Config {
        let mut c = Config::default();
        for (name, topic, event_type, handler) in routes {
            c.routes.insert(
                (*name).to_owned(),
                RouteConfig {
                    topic: (*topic).to_owned(),
                    event_type: event_type.map(ToOwned::to_owned),
                    handler: (*handler).to_owned(),
                    ..RouteConfig::default()
                },
            );
        }
        c
    }

    #[test]
    fn a_retry_topic_that_keeps_key_order_is_consumed_beside_its_input_only() {
        use crate::config::{Ordering, RetryMode};
        let mut c = config(&[
            ("keyed", "orders", Some("placed"), "echo"),
            ("rest", "orders", None, "echo"),
            ("audit", "audit", None, "echo"),
        ]);
        for (name, ordering) in [("keyed", Ordering::Key), ("rest", Ordering::Partition)] {
            let route = c.routes.get_mut(name).unwrap();
            route.retry.mode = RetryMode::Topic;
            route.ordering = ordering;
        }
        c.routes.get_mut("audit").unwrap().retry.mode = RetryMode::Topic;
        let r = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap();
        // orders.retry is consumed with orders; audit.retry on its own.
        assert_eq!(r.topics(), ["audit", "audit.retry", "orders"]);
        assert_eq!(r.companion("orders"), Some("orders.retry"));
        assert_eq!(r.companion("audit"), None);
        assert!(r.is_retry_topic("orders.retry"));

        // Another input topic's route retrying through it is refused.
        c.routes.get_mut("audit").unwrap().retry.topic = Some("orders.retry".to_owned());
        let e = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap_err();
        assert!(
            matches!(&e, RouterError::SharedRetryTopic { route, other, .. } if route == "keyed" && other == "audit"),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with("routes.keyed.retry.topic: `orders.retry`"),
            "{e}"
        );

        // Key order of one input topic goes one way only.
        c.routes.get_mut("audit").unwrap().retry.topic = None;
        let rest = c.routes.get_mut("rest").unwrap();
        rest.ordering = Ordering::Key;
        rest.retry.mode = RetryMode::InPlace;
        let e = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap_err();
        assert!(
            matches!(&e, RouterError::KeyOrder { route, .. } if route == "rest"),
            "{e}"
        );
        let rest = c.routes.get_mut("rest").unwrap();
        rest.retry.mode = RetryMode::Topic;
        rest.retry.topic = Some("orders.retry2".to_owned());
        let e = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap_err();
        assert!(e.to_string().contains("must share one retry topic"), "{e}");
    }

    #[test]
    fn routes_by_event_type_then_catch_all() {
        let c = config(&[
            ("validate", "requests", Some("validate"), "echo"),
            ("rest", "requests", None, "echo"),
            ("audit", "audit", Some("login"), "echo"),
        ]);
        let r = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap();
        assert_eq!(r.topics(), ["audit", "requests"]);
        assert_eq!(
            r.route("requests", Some("validate")).unwrap().name,
            "validate"
        );
        assert_eq!(r.route("requests", Some("other")).unwrap().name, "rest");
        assert_eq!(r.route("requests", None).unwrap().name, "rest");
        assert!(r.route("audit", Some("logout")).is_none());
        assert!(r.route("nope", None).is_none());
        assert_eq!(
            r.route("audit", Some("login")).unwrap().dlq_topic,
            "audit.dlq"
        );
    }

    #[test]
    fn logical_topic_names_resolve_and_unknown_handlers_are_named() {
        let mut c = config(&[("r", "requests", None, "echo")]);
        c.topics.insert(
            "requests".into(),
            crate::config::TopicSpec {
                name: Some("gigaoffice-requests".into()),
                ..Default::default()
            },
        );
        let r = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap();
        assert_eq!(r.topics(), ["gigaoffice-requests"]);

        let c = config(&[("r", "t", None, "validate")]);
        let err = Router::build(&c, &HandlerRegistry::with_builtins()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "routes.r.handler: no handler named `validate` (built-in: echo, forward, jq); \
             handlers of your own are registered by a program built on the library, \
             see examples/intelligence"
        );
    }
}
