//! How a connect or a request failed, and how a Redis error is classified: the three
//! outcomes (`Unavailable`: fall back and reconnect; `Rejected`: a configuration problem, raised
//! by `connect()`; `Command`: the server's own answer) and the helpers every subsystem uses to
//! tell them apart. Error text never echoes command arguments.

use crate::error::{Error, ErrorCode};
use redis::RedisError;
use std::future::Future;

#[derive(Debug, Clone)]
pub enum Failure {
    /// Redis cannot be reached right now (refused, timed out, reconnecting). Callers fall back.
    Unavailable(String),
    /// Something answered but we must not or cannot talk to it: TLS verification failed,
    /// AUTH was refused, or the port does not speak TLS. Carries the user-facing error.
    Rejected(Error),
    /// Redis answered the command with an error (a missing ACL permission, say).
    Command(String),
}

impl Failure {
    pub fn message(&self) -> String {
        match self {
            Failure::Unavailable(m) | Failure::Command(m) => m.clone(),
            Failure::Rejected(e) => e.message.clone(),
        }
    }
}

/// A configuration refusal from the node `shown`, with the fix in `message`.
pub(super) fn refused(message: String, field: &str, shown: &str, code: ErrorCode) -> Failure {
    Failure::Rejected(
        Error::configuration(message)
            .with(field, shown.to_owned())
            .code(code),
    )
}

/// Runs `attempts` concurrently and returns the first success. When none succeeds, a refusal
/// (a configuration problem to fix) is reported before an outage.
pub(super) async fn first_success<T, F>(attempts: Vec<F>) -> Result<T, Failure>
where
    F: Future<Output = Result<T, Failure>>,
{
    use futures_util::stream::{FuturesUnordered, StreamExt};
    let mut pending: FuturesUnordered<F> = attempts.into_iter().collect();
    let (mut refusal, mut outage) = (None, None);
    while let Some(result) = pending.next().await {
        match result {
            Ok(found) => return Ok(found),
            Err(failure @ Failure::Rejected(_)) => {
                refusal.get_or_insert(failure);
            }
            Err(failure) => outage = Some(failure),
        }
    }
    Err(refusal
        .or(outage)
        .unwrap_or_else(|| Failure::Unavailable("no node is configured".into())))
}

pub(super) fn is_auth_failure(err: &RedisError) -> bool {
    err.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("WRONGPASS" | "NOAUTH" | "NOPERM"))
}

pub(super) fn is_connection_level(err: &RedisError) -> bool {
    // A reply of an unexpected shape was read whole: the connection itself is fine. (A real
    // protocol error ends the connection's driver, which marks it broken.)
    if matches!(
        err.kind(),
        redis::ErrorKind::Parse | redis::ErrorKind::UnexpectedReturnType
    ) {
        return false;
    }
    err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout()
        || err.is_unrecoverable_error()
}

/// Redis error text without echoing arguments (our commands carry ciphertext only anyway).
pub(super) fn describe(err: &RedisError) -> String {
    match (err.code(), err.detail()) {
        (Some(code), Some(detail)) => format!("{code} {detail}"),
        (Some(code), None) => code.to_owned(),
        _ => format!("{} ({})", err.category(), err),
    }
}
