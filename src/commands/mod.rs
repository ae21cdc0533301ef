//! The sessions commands: routing an act to a command, validating its arguments,
//! applying it to the store, and the command-level error enum. One file per command.
//! Nothing here knows about sockets or the Seneca envelope.

mod args;
mod close_expired_sessions;
mod close_session;
mod close_user_sessions;
mod delete_session;
mod get_session_by_id;
mod get_sessions;
mod open_session;
mod store_session_data;
mod update_session_user;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::{Map, Value};

use crate::clock::Clock;
use crate::lifecycle::At;
use crate::metrics::Metrics;
use crate::model::Session;
use crate::store::{AnyStore, Page, SessionCap, StoreError};
use crate::sweeper::SweepConfig;

pub use args::Limits;

/// The commands of `role: 'sessions', version: 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cmd {
    GetSessions,
    GetSessionById,
    OpenSession,
    StoreSessionData,
    UpdateSessionUser,
    CloseSession,
    CloseExpiredSessions,
    DeleteSession,
    DeleteSessionById,
    CloseUserSessions,
}

impl Cmd {
    pub const ALL: [Cmd; 10] = [
        Cmd::GetSessions,
        Cmd::GetSessionById,
        Cmd::OpenSession,
        Cmd::StoreSessionData,
        Cmd::UpdateSessionUser,
        Cmd::CloseSession,
        Cmd::CloseExpiredSessions,
        Cmd::DeleteSession,
        Cmd::DeleteSessionById,
        Cmd::CloseUserSessions,
    ];

    /// The wire name (`cmd` value), also the metrics label.
    pub fn name(self) -> &'static str {
        match self {
            Cmd::GetSessions => "get_sessions",
            Cmd::GetSessionById => "get_session_by_id",
            Cmd::OpenSession => "open_session",
            Cmd::StoreSessionData => "store_session_data",
            Cmd::UpdateSessionUser => "update_session_user",
            Cmd::CloseSession => "close_session",
            Cmd::CloseExpiredSessions => "close_expired_sessions",
            Cmd::DeleteSession => "delete_session",
            Cmd::DeleteSessionById => "delete_session_by_id",
            Cmd::CloseUserSessions => "close_user_sessions",
        }
    }

    /// The command a wire name stands for.
    pub fn from_name(name: &str) -> Option<Cmd> {
        Cmd::ALL.into_iter().find(|c| c.name() == name)
    }
}

/// Why an act matched no command (answered as Seneca's `act_not_found`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotFound;

/// Finds the command an act asks for: `role` must be `sessions`, `version` 1, "1" or
/// absent (values compare by their string form, as Seneca's pattern matcher does),
/// and `cmd` one of ours.
pub fn route(act: &Map<String, Value>) -> Result<Cmd, NotFound> {
    if act.get("role").and_then(Value::as_str) != Some("sessions") {
        return Err(NotFound);
    }
    let version_ok = match act.get("version") {
        None => true,
        Some(Value::Number(n)) => n.as_f64() == Some(1.0),
        Some(Value::String(s)) => s == "1",
        Some(_) => false,
    };
    if !version_ok {
        return Err(NotFound);
    }
    act.get("cmd")
        .and_then(Value::as_str)
        .and_then(Cmd::from_name)
        .ok_or(NotFound)
}

/// An application error, as the `orig` of a Seneca error on the wire.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CommandError {
    /// A missing or wrongly typed argument; the message names the field.
    #[error("{message}")]
    InvalidData { field: String, message: String },
    /// `data` or `user` larger than the configured limit.
    #[error("{field} is {size} bytes, more than the limit of {limit} bytes")]
    DataTooLarge {
        field: &'static str,
        size: usize,
        limit: usize,
    },
    /// A write to a closed (or expired) session.
    #[error("session {session_id} is closed")]
    SessionClosed { session_id: String },
    /// open_session refused: the user has as many active sessions as the per-user cap
    /// allows (policy `refuse`).
    #[error("the user already has {limit} active sessions, the most allowed")]
    SessionLimit { limit: u32 },
    /// The store did not answer in time.
    #[error("session store is unavailable, try again")]
    StoreUnavailable,
    /// Anything else; details go to the log, not the wire.
    #[error("internal error")]
    Internal,
}

impl CommandError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        CommandError::InvalidData {
            field: field.into(),
            message: message.into(),
        }
    }

    /// The application code (`orig.code`).
    pub fn code(&self) -> &'static str {
        match self {
            CommandError::InvalidData { .. } => "INVALID_DATA",
            CommandError::DataTooLarge { .. } => "DATA_TOO_LARGE",
            CommandError::SessionClosed { .. } => "SESSION_CLOSED",
            CommandError::SessionLimit { .. } => "SESSION_LIMIT",
            CommandError::StoreUnavailable => "STORE_UNAVAILABLE",
            CommandError::Internal => "INTERNAL",
        }
    }

    /// The HTTP-like status (`orig.status`).
    pub fn status(&self) -> u16 {
        match self {
            CommandError::InvalidData { .. } => 400,
            CommandError::DataTooLarge { .. } => 413,
            CommandError::SessionClosed { .. } | CommandError::SessionLimit { .. } => 409,
            CommandError::StoreUnavailable => 503,
            CommandError::Internal => 500,
        }
    }

    /// The error category (`orig.category`).
    pub fn category(&self) -> &'static str {
        match self {
            CommandError::InvalidData { .. } | CommandError::DataTooLarge { .. } => "BadRequest",
            CommandError::SessionClosed { .. } | CommandError::SessionLimit { .. } => "Conflict",
            CommandError::StoreUnavailable => "Unavailable",
            CommandError::Internal => "Internal",
        }
    }

    /// Extra facts for `orig.details`, where there is more to say.
    pub fn details(&self) -> Option<Value> {
        match self {
            CommandError::InvalidData { field, .. } => Some(serde_json::json!({ "field": field })),
            CommandError::DataTooLarge { field, size, limit } => {
                Some(serde_json::json!({ "field": field, "size": size, "limit": limit }))
            }
            CommandError::SessionClosed { session_id } => {
                Some(serde_json::json!({ "session_id": session_id }))
            }
            CommandError::SessionLimit { limit } => Some(serde_json::json!({ "limit": limit })),
            CommandError::StoreUnavailable | CommandError::Internal => None,
        }
    }

    /// The metrics label of this outcome.
    pub fn outcome(&self) -> &'static str {
        match self {
            CommandError::InvalidData { .. } => "invalid_data",
            CommandError::DataTooLarge { .. } => "data_too_large",
            CommandError::SessionClosed { .. } => "session_closed",
            CommandError::SessionLimit { .. } => "session_limit",
            CommandError::StoreUnavailable => "store_unavailable",
            CommandError::Internal => "internal",
        }
    }
}

/// The result of a command, serialized as the reply's `res`.
#[derive(Debug)]
pub enum Output {
    Null,
    Session(Session),
    Page(Page),
    /// `{closed: n}`: how many sessions a command closed.
    Closed(u64),
}

impl From<Option<Session>> for Output {
    fn from(s: Option<Session>) -> Self {
        s.map_or(Output::Null, Output::Session)
    }
}

impl Serialize for Output {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Output::Null => s.serialize_unit(),
            Output::Session(session) => session.serialize(s),
            Output::Page(page) => {
                let mut st = s.serialize_struct("DataPage", 2)?;
                st.serialize_field("data", &page.data)?;
                st.serialize_field("total", &page.total)?;
                st.end()
            }
            Output::Closed(n) => {
                let mut st = s.serialize_struct("Closed", 1)?;
                st.serialize_field("closed", n)?;
                st.end()
            }
        }
    }
}

/// What every command needs: the store, the limits, the session policy and a clock.
pub struct Context {
    pub store: Arc<AnyStore>,
    pub limits: Limits,
    pub reuse: bool,
    /// The lifetimes expiry is judged by, and the sweep close_expired_sessions runs.
    pub sweep: SweepConfig,
    /// The per-user cap on active sessions open_session keeps.
    pub cap: SessionCap,
    pub request_timeout: Duration,
    /// Session lifecycle counters (opened, reused, closed by reason, refused, deleted,
    /// expired, purged).
    pub metrics: Arc<Metrics>,
    /// Where "now" comes from: the system clock, or a test's.
    pub clock: Clock,
}

impl Context {
    /// Now, with the lifetimes that decide what has expired by now.
    pub fn at(&self) -> At {
        At::new(self.clock.now(), self.sweep.lifetimes())
    }

    /// Runs a store call bounded by the request timeout, mapping store errors.
    fn call<'a, T: 'a>(
        &'a self,
        fut: impl Future<Output = Result<T, StoreError>> + 'a,
    ) -> impl Future<Output = Result<T, CommandError>> + 'a {
        self.call_on("", fut)
    }

    /// Like [`Context::call`], for a call on one session (named in SESSION_CLOSED).
    ///
    /// A combinator, not an `async fn`: an `async fn` taking a future by value holds
    /// it twice in its state, and every request's future (moved into its task) grew
    /// threefold through these two wrappers (measured: 22 KB for a get).
    fn call_on<'a, T: 'a>(
        &'a self,
        session_id: &'a str,
        fut: impl Future<Output = Result<T, StoreError>> + 'a,
    ) -> impl Future<Output = Result<T, CommandError>> + 'a {
        tokio::time::timeout(self.request_timeout, fut).map(move |r| match r {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(self.map_store_error(e, session_id)),
            Err(_) => {
                tracing::warn!("store call timed out");
                Err(CommandError::StoreUnavailable)
            }
        })
    }

    fn map_store_error(&self, e: StoreError, session_id: &str) -> CommandError {
        map_store_error(e, session_id, self.cap.max)
    }
}

fn map_store_error(e: StoreError, session_id: &str, limit: u32) -> CommandError {
    match e {
        StoreError::SessionClosed => CommandError::SessionClosed {
            session_id: session_id.to_string(),
        },
        StoreError::SessionLimit => CommandError::SessionLimit { limit },
        StoreError::Unavailable(msg) => {
            tracing::warn!(error = %msg, "store unavailable");
            CommandError::StoreUnavailable
        }
        StoreError::Internal(msg) => {
            tracing::error!(error = %msg, "store error");
            CommandError::Internal
        }
    }
}

/// Validates the act's arguments for `cmd` and applies the command.
pub async fn execute(
    ctx: &Context,
    cmd: Cmd,
    act: &Map<String, Value>,
) -> Result<Output, CommandError> {
    let args = args::Args::new(act, &ctx.limits);
    match cmd {
        Cmd::GetSessions => get_sessions::run(ctx, &args).await,
        Cmd::GetSessionById => get_session_by_id::run(ctx, &args).await,
        Cmd::OpenSession => open_session::run(ctx, &args).await,
        Cmd::StoreSessionData => store_session_data::run(ctx, &args).await,
        Cmd::UpdateSessionUser => update_session_user::run(ctx, &args).await,
        Cmd::CloseSession => close_session::run(ctx, &args).await,
        Cmd::CloseExpiredSessions => close_expired_sessions::run(ctx).await,
        Cmd::DeleteSession | Cmd::DeleteSessionById => delete_session::run(ctx, &args).await,
        Cmd::CloseUserSessions => close_user_sessions::run(ctx, &args).await,
    }
}

/// The most sessions a reply to `act` can carry: the page size for get_sessions
/// (its `take`, clamped), one for the commands answering with a session, none
/// otherwise (close_user_sessions answers a count). Lets the connection reserve memory for a request before it runs.
pub fn reply_sessions(act: &Map<String, Value>, limits: &Limits) -> usize {
    match route(act) {
        Ok(Cmd::GetSessions) => get_sessions::parse(&args::Args::new(act, limits))
            .map_or(0, |q| usize::try_from(q.take).unwrap_or(usize::MAX)),
        Ok(Cmd::CloseExpiredSessions | Cmd::CloseUserSessions) | Err(NotFound) => 0,
        Ok(_) => 1,
    }
}

/// The optional `correlation_id` argument, when it is a reasonably short string.
pub fn correlation_id(act: &Map<String, Value>) -> Option<&str> {
    act.get("correlation_id")
        .and_then(Value::as_str)
        .filter(|s| s.len() <= 256)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instrumented::Instrumented;
    use crate::store::redis::{RedisOptions, RedisStore};

    /// Every request's future is moved into its connection's set of running
    /// requests, so its size is copied on every request: nested `async fn`s that take
    /// futures by value once made it 27 KB (10 % of the service's CPU in memcpy).
    #[tokio::test]
    async fn request_futures_stay_small() {
        let metrics = Arc::new(Metrics::new().expect("metrics"));
        // Built lazily: nothing connects to this address.
        let redis = RedisStore::new(RedisOptions::default()).expect("store");
        let ctx = Context {
            store: Arc::new(AnyStore::Redis(Instrumented::new(redis, metrics.clone()))),
            limits: Limits {
                max_data_bytes: 1024,
                max_field_bytes: 1024,
                max_take: 100,
            },
            reuse: true,
            sweep: crate::sweeper::SweepConfig::default(),
            cap: SessionCap::default(),
            request_timeout: Duration::from_secs(1),
            metrics,
            clock: Clock::system(),
        };
        let act = Map::new();
        for cmd in Cmd::ALL {
            let size = std::mem::size_of_val(&execute(&ctx, cmd, &act));
            assert!(size <= 4096, "{}: the future is {size} bytes", cmd.name());
        }
    }
}
