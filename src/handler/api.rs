//! The handler API: what a handler sees, what it returns, and the boundary
//! that turns a panic into a failure instead of a dead actor.

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A boxed, sendable future, as handlers return it.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a handler knows about the record it handles.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// Topic the record was read from.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Key.
    pub key: Option<&'a [u8]>,
    /// Headers.
    pub headers: &'a BTreeMap<String, Vec<u8>>,
    /// Correlation id (header or envelope).
    pub correlation_id: Option<&'a str>,
    /// Event type (header or envelope).
    pub event_type: Option<&'a str>,
}

/// A handler's own verdict on a record it could not handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandlerError {
    /// Trying again later may work (a dependency was down, a timeout).
    #[error("retryable: {0}")]
    Retryable(String),
    /// It will never work (invalid input).
    #[error("permanent: {0}")]
    Permanent(String),
    /// Something the handler needs (a database, a service) is unavailable;
    /// retried like [`HandlerError::Retryable`], counted apart.
    #[error("dependency unavailable: {0}")]
    Dependency(String),
    /// One of the above with an error code of the handler's own: an
    /// `on_failure.codes` table maps codes to actions, and a dead letter
    /// carries it in `dlq.error.code`. Made by [`HandlerError::with_code`].
    #[error("{error} (code {code})")]
    Coded {
        /// The code.
        code: String,
        /// The error.
        error: Box<HandlerError>,
    },
}

impl HandlerError {
    /// This error with an error code (replacing any code it had).
    pub fn with_code(self, code: impl Into<String>) -> Self {
        let error = match self {
            Self::Coded { error, .. } => error,
            other => Box::new(other),
        };
        Self::Coded {
            code: code.into(),
            error,
        }
    }
}

/// A request handler. Returns zero or more outputs: none means no reply.
pub trait Handler: Send + Sync + 'static {
    /// Handles one record's payload.
    fn handle<'a>(
        &'a self,
        ctx: Context<'a>,
        payload: Value,
    ) -> BoxFuture<'a, Result<Vec<Value>, HandlerError>>;
}

/// How a record's handling failed, by class (seed 002's categories that
/// apply before the failures issue adds the rest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The payload is not valid JSON or not the handler's input type.
    Deserialization,
    /// The handler said the record can never be handled.
    Validation,
    /// The handler failed and says it may work later.
    Processing,
    /// The handler panicked.
    Panic,
    /// The handler took longer than the route's `handler_timeout_ms`.
    Timeout,
    /// The handler said a dependency is unavailable.
    Dependency,
    /// An output (a reply, a forward) is larger than the broker accepts
    /// for its topic; the record is dead-lettered.
    Oversize,
    /// An output could not be written: the broker was unavailable past
    /// `pipeline.produce_attempts`, or a configured output topic is gone.
    Infrastructure,
    /// The broker refused an output for authorization.
    Authorization,
}

impl FailureKind {
    /// Every class.
    pub const ALL: [Self; 9] = [
        Self::Deserialization,
        Self::Validation,
        Self::Processing,
        Self::Panic,
        Self::Timeout,
        Self::Dependency,
        Self::Oversize,
        Self::Infrastructure,
        Self::Authorization,
    ];

    /// A stable label for headers and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Deserialization => "deserialization",
            Self::Validation => "validation",
            Self::Processing => "processing",
            Self::Panic => "panic",
            Self::Timeout => "timeout",
            Self::Dependency => "dependency",
            Self::Oversize => "oversize",
            Self::Infrastructure => "infrastructure",
            Self::Authorization => "authorization",
        }
    }
}

/// A failed handling, with its class and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// The class.
    pub kind: FailureKind,
    /// What happened.
    pub message: String,
    /// The handler's error code, if it gave one.
    pub code: Option<String>,
}

impl Failure {
    /// A failure of class `kind` without an error code.
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            code: None,
        }
    }

    /// A handler's error as a failure.
    fn of(error: HandlerError) -> Self {
        match error {
            HandlerError::Permanent(message) => Self::new(
                if message.starts_with(DESERIALIZATION_PREFIX) {
                    FailureKind::Deserialization
                } else {
                    FailureKind::Validation
                },
                message,
            ),
            HandlerError::Retryable(message) => Self::new(FailureKind::Processing, message),
            HandlerError::Dependency(message) => Self::new(FailureKind::Dependency, message),
            HandlerError::Coded { code, error } => Self {
                code: Some(code),
                ..Self::of(*error)
            },
        }
    }
}

/// Runs `handler` on one record; a panic inside it becomes a
/// [`FailureKind::Panic`] failure instead of unwinding into the caller.
pub async fn invoke(
    handler: &dyn Handler,
    ctx: Context<'_>,
    payload: Value,
) -> Result<Vec<Value>, Failure> {
    match AssertUnwindSafe(handler.handle(ctx, payload))
        .catch_unwind()
        .await
    {
        Ok(Ok(outputs)) => Ok(outputs),
        Ok(Err(error)) => Err(Failure::of(error)),
        Err(panic) => Err(Failure::new(FailureKind::Panic, panic_message(&panic))),
    }
}

/// Prefix of the permanent error a [`typed`] handler returns when the
/// payload does not match its input type.
const DESERIALIZATION_PREFIX: &str = "payload does not match the handler's input type: ";

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "handler panicked".to_owned()
    }
}

/// A handler from an async function with typed input and output: the
/// payload is deserialised into `I` (a mismatch is a permanent,
/// deserialization failure) and the output serialised from `O` (`None`: no
/// reply).
pub fn typed<I, O, F, Fut>(f: F) -> Arc<dyn Handler>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(Context<'_>, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<O>, HandlerError>> + Send + 'static,
{
    Arc::new(Typed {
        f,
        _types: PhantomData::<fn(I) -> O>,
    })
}

struct Typed<F, I, O> {
    f: F,
    _types: PhantomData<fn(I) -> O>,
}

impl<I, O, F, Fut> Handler for Typed<F, I, O>
where
    I: DeserializeOwned + Send + 'static,
    O: Serialize + Send + 'static,
    F: Fn(Context<'_>, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<Option<O>, HandlerError>> + Send + 'static,
{
    fn handle<'a>(
        &'a self,
        ctx: Context<'a>,
        payload: Value,
    ) -> BoxFuture<'a, Result<Vec<Value>, HandlerError>> {
        let input = serde_json::from_value::<I>(payload)
            .map_err(|e| HandlerError::Permanent(format!("{DESERIALIZATION_PREFIX}{e}")));
        let fut = input.map(|input| (self.f)(ctx, input));
        Box::pin(async move {
            match fut?.await? {
                None => Ok(Vec::new()),
                Some(output) => serde_json::to_value(output)
                    .map(|v| vec![v])
                    .map_err(|e| HandlerError::Permanent(format!("output is not JSON: {e}"))),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    fn ctx(headers: &BTreeMap<String, Vec<u8>>) -> Context<'_> {
        Context {
            topic: "t",
            partition: 0,
            offset: 7,
            key: Some(b"k"),
            headers,
            correlation_id: Some("c"),
            event_type: None,
        }
    }

    #[derive(Deserialize)]
    struct In {
        n: i64,
    }

    #[derive(Serialize)]
    struct Out {
        doubled: i64,
        offset: i64,
    }

    fn doubler() -> Arc<dyn Handler> {
        typed(|ctx: Context<'_>, input: In| {
            let offset = ctx.offset;
            async move {
                match input.n {
                    0 => Ok(None),
                    n if n < 0 => Err(HandlerError::Permanent("negative".into())),
                    13 => Err(HandlerError::Retryable("unlucky".into())),
                    42 => panic!("the answer"),
                    n => Ok(Some(Out {
                        doubled: n * 2,
                        offset,
                    })),
                }
            }
        })
    }

    #[tokio::test]
    async fn typed_handlers_and_every_failure_class() {
        let h = doubler();
        let headers = BTreeMap::new();
        let ok = invoke(h.as_ref(), ctx(&headers), json!({"n": 2})).await;
        assert_eq!(ok, Ok(vec![json!({"doubled": 4, "offset": 7})]));
        assert_eq!(
            invoke(h.as_ref(), ctx(&headers), json!({"n": 0})).await,
            Ok(vec![])
        );

        let kind = |r: Result<Vec<Value>, Failure>| r.map_err(|f| f.kind);
        assert_eq!(
            kind(invoke(h.as_ref(), ctx(&headers), json!({"n": -1})).await),
            Err(FailureKind::Validation)
        );
        assert_eq!(
            kind(invoke(h.as_ref(), ctx(&headers), json!({"n": 13})).await),
            Err(FailureKind::Processing)
        );
        assert_eq!(
            kind(invoke(h.as_ref(), ctx(&headers), json!({"m": 1})).await),
            Err(FailureKind::Deserialization)
        );
        let panicked = invoke(h.as_ref(), ctx(&headers), json!({"n": 42})).await;
        assert_eq!(
            panicked,
            Err(Failure::new(FailureKind::Panic, "the answer"))
        );
        // The handler still works after a panic.
        assert!(
            invoke(h.as_ref(), ctx(&headers), json!({"n": 1}))
                .await
                .is_ok()
        );
    }
}
