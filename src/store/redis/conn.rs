//! Redis I/O: a few multiplexed connections used round-robin, and [`Redis::send`], the
//! single function every request to Redis goes through. That is where the deadline is
//! enforced and Redis errors become [`StoreError`]s, and the place for command metrics
//! (latency, errors) when they are added.
//!
//! Connections are `redis::aio::ConnectionManager`s created lazily: building the store
//! never waits for Redis, a dead connection is replaced in the background on the next
//! use, and every call is cut off at its deadline, so a slow or absent Redis yields
//! [`StoreError::Unavailable`] in time and the store recovers by itself when Redis is
//! back.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{
    Cmd, ErrorKind, IntoConnectionInfo, Pipeline, ProtocolVersion, RedisError, ServerErrorKind,
    Value,
};
use tokio::time::Instant;

use super::scripts::Lua;
use crate::store::{StoreError, StoreResult};

/// Reconnect backoff: first retry after up to this long...
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(20);
/// ...growing to at most this, so a Redis that comes back is used again quickly.
const RECONNECT_MAX_DELAY: Duration = Duration::from_millis(500);
/// Attempts per reconnect round; the next request starts a new round.
const RECONNECT_ATTEMPTS: usize = 8;

/// Whether a request may be sent again after the connection broke under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads: sending twice is harmless.
    Idempotent,
    /// Scripts: the first attempt may have run, so never resend.
    Never,
}

enum Request<'a> {
    One(&'a Cmd),
    Many(&'a Pipeline),
}

enum Reply {
    One(Value),
    Many(Vec<Value>),
}

/// The connections to one Redis.
pub(crate) struct Redis {
    conns: Box<[ConnectionManager]>,
    next: AtomicUsize,
    timeout: Duration,
}

impl Redis {
    /// Sets up `connections` lazy connections to `url`. Fails only on an invalid URL
    /// or when called outside a Tokio runtime; Redis itself is not contacted.
    pub fn new(url: &str, connections: usize, timeout: Duration) -> StoreResult<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Internal(
                "the Redis store must be created inside a Tokio runtime".into(),
            ));
        }
        let invalid = |e: RedisError| StoreError::Internal(format!("invalid Redis URL: {e}"));
        let info = url.into_connection_info().map_err(invalid)?;
        // RESP3 lets a connection learn that Redis went away while it is idle and
        // reconnect at once, instead of failing the next request sent on it.
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings)).map_err(invalid)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            // Requests are bounded by their own deadline in `send`.
            .set_response_timeout(None)
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY)
            .set_number_of_retries(RECONNECT_ATTEMPTS);
        let conns = (0..connections.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Internal(format!("Redis connection setup: {e}")))?;
        Ok(Redis {
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
            timeout,
        })
    }

    /// The deadline of an operation that starts now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// One command; `what` names it for logs (and metrics).
    pub async fn cmd(
        &self,
        what: &'static str,
        cmd: &Cmd,
        deadline: Instant,
        retry: Retry,
    ) -> StoreResult<Value> {
        match self.send(what, Request::One(cmd), deadline, retry).await {
            Ok(Reply::One(v)) => Ok(v),
            Ok(Reply::Many(_)) => Err(StoreError::Internal("one reply expected".into())),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Several commands in one round trip; one reply per command, in order.
    pub async fn pipe(
        &self,
        what: &'static str,
        pipe: &Pipeline,
        deadline: Instant,
        retry: Retry,
    ) -> StoreResult<Vec<Value>> {
        if pipe.is_empty() {
            return Ok(Vec::new());
        }
        match self.send(what, Request::Many(pipe), deadline, retry).await {
            Ok(Reply::Many(v)) => Ok(v),
            Ok(Reply::One(_)) => Err(StoreError::Internal("several replies expected".into())),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Runs `evalsha` (an EVALSHA of `lua` built by [`Lua::evalsha`]). When Redis does
    /// not know the script (restarted, failed over, SCRIPT FLUSH), loads it and runs
    /// it again: the script did not run, so that is safe.
    pub async fn script(&self, lua: &Lua, evalsha: &Cmd, deadline: Instant) -> StoreResult<Value> {
        match self
            .send(lua.name(), Request::One(evalsha), deadline, Retry::Never)
            .await
        {
            Ok(Reply::One(v)) => return Ok(v),
            Ok(Reply::Many(_)) => return Err(StoreError::Internal("one reply expected".into())),
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {}
            Err(e) => return Err(store_error(&e)),
        }
        tracing::debug!(
            script = lua.name(),
            "script not cached in Redis, loading it"
        );
        self.cmd("script load", &lua.load(), deadline, Retry::Idempotent)
            .await?;
        self.cmd(lua.name(), evalsha, deadline, Retry::Never).await
    }

    /// The chokepoint: every Redis round trip of the store goes through here. `what`
    /// names the call (a command, a script, a listing step) for logs and metrics.
    async fn send(
        &self,
        what: &'static str,
        req: Request<'_>,
        deadline: Instant,
        retry: Retry,
    ) -> Result<Reply, RedisError> {
        // A resend goes to the same connection: it is the one reconnecting.
        let mut conn = self.pick();
        let mut resent = false;
        loop {
            let call = async {
                match req {
                    Request::One(cmd) => conn.send_packed_command(cmd).await.map(Reply::One),
                    Request::Many(pipe) => conn
                        .send_packed_commands(pipe, 0, pipe.len())
                        .await
                        .map(Reply::Many),
                }
            };
            let result = match tokio::time::timeout_at(deadline, call).await {
                Ok(r) => r.and_then(server_errors),
                Err(_) => Err(RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no answer from Redis within the store timeout",
                ))),
            };
            match result {
                Ok(reply) => return Ok(reply),
                // The connection broke before or while sending: the manager is already
                // reconnecting; a read can wait for that within its deadline.
                Err(e) if retry == Retry::Idempotent && !resent && e.is_connection_dropped() => {
                    resent = true;
                }
                Err(e) => {
                    tracing::debug!(call = what, error = %e, "Redis call failed");
                    return Err(e);
                }
            }
        }
    }

    fn pick(&self) -> ConnectionManager {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

/// Turns an error reply into an error (the connection hands them back as values).
fn server_errors(reply: Reply) -> Result<Reply, RedisError> {
    match reply {
        Reply::One(Value::ServerError(e)) => Err(e.into()),
        Reply::Many(values) => {
            if let Some(Value::ServerError(e)) =
                values.iter().find(|v| matches!(v, Value::ServerError(_)))
            {
                return Err(e.clone().into());
            }
            Ok(Reply::Many(values))
        }
        other => Ok(other),
    }
}

/// Redis down, unreachable, too slow, read-only, loading or out of memory is
/// "unavailable" (the client may retry later); anything else is internal.
pub(crate) fn store_error(e: &RedisError) -> StoreError {
    let unavailable = match e.kind() {
        ErrorKind::Io => true,
        ErrorKind::Server(
            ServerErrorKind::ReadOnly
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown,
        ) => true,
        _ => {
            matches!(
                e.code(),
                Some("OOM" | "BUSY" | "MISCONF" | "NOREPLICAS" | "READONLY" | "LOADING")
            ) || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
        }
    };
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}
