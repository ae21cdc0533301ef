//! One request from parsed act to reply bytes: route, execute, log failures, and
//! encode the reply (or nothing, for fire-and-forget acts). Shared by every connection.

use std::sync::Arc;

use crate::commands::{self, Cmd, CommandError, Context};
use crate::model::now_ms;
use crate::protocol::{self, BadLine, Echo, Failure, ReplyMeta, Request};

/// Receives what the service sees, for metrics. Every method has a no-op default.
pub trait Observer: Send + Sync {
    fn request(&self, _cmd: Option<Cmd>, _outcome: &'static str, _seconds: f64) {}
    fn in_flight(&self, _delta: i64) {}
    fn protocol_error(&self, _kind: protocol::ProtocolErrorKind) {}
}

/// An observer that ignores everything.
pub struct NoObserver;
impl Observer for NoObserver {}

/// The request handler shared by all connections.
pub struct Service {
    pub ctx: Context,
    /// This instance's id, sent as `accept` in replies.
    pub accept: String,
    pub max_line_bytes: usize,
    pub observer: Arc<dyn Observer>,
}

impl Service {
    /// A Seneca-style instance id: `<12 base36>/<start ms>/<pid>/<version>/sessions`.
    pub fn instance_id() -> String {
        let nid: String = uuid::Uuid::new_v4()
            .as_u128()
            .to_string()
            .chars()
            .take(12)
            .collect();
        format!(
            "{nid}/{}/{}/{}/sessions",
            now_ms(),
            std::process::id(),
            env!("CARGO_PKG_VERSION")
        )
    }

    /// Handles a request; returns the reply line when the caller waits for one.
    pub async fn handle(&self, req: Request, listen_recv: i64) -> Option<Vec<u8>> {
        let started = std::time::Instant::now();
        self.observer.in_flight(1);
        let Request { echo, sync, act } = req;
        let routed = commands::route(&act);
        let result = match routed {
            Ok(cmd) => Some(commands::execute(&self.ctx, cmd, &act).await),
            Err(commands::NotFound) => None,
        };
        let cmd = routed.ok();
        let outcome = match &result {
            Some(Ok(_)) => "ok",
            Some(Err(e)) => e.outcome(),
            None => "not_found",
        };
        self.observer
            .request(cmd, outcome, started.elapsed().as_secs_f64());
        self.observer.in_flight(-1);
        let correlation_id = commands::correlation_id(&act);
        if let (Some(cmd), Some(Err(e))) = (cmd, &result) {
            log_failure(cmd, e, correlation_id);
        }
        if !sync {
            return None;
        }
        let mut out = Vec::with_capacity(512);
        let meta = ReplyMeta {
            accept: &self.accept,
            listen_recv,
            listen_sent: now_ms(),
        };
        match (&result, cmd) {
            (Some(Ok(output)), _) => protocol::write_ok(&mut out, &echo, &meta, output),
            (Some(Err(error)), Some(cmd)) => protocol::write_error(
                &mut out,
                &echo,
                &meta,
                &Failure::Command {
                    cmd: cmd.name(),
                    error,
                    correlation_id,
                },
            ),
            _ => protocol::write_error(&mut out, &echo, &meta, &Failure::NotFound { act: &act }),
        }
        Some(out)
    }

    /// Answers a line that is not a usable request, when its sender is known.
    pub fn bad_line(&self, bad: BadLine, listen_recv: i64) -> Option<Vec<u8>> {
        self.observer.protocol_error(bad.kind);
        tracing::warn!(
            kind = bad.kind.label(),
            answered = bad.echo.is_some(),
            "bad request line"
        );
        let echo: Echo = bad.echo?;
        let mut out = Vec::with_capacity(512);
        let meta = ReplyMeta {
            accept: &self.accept,
            listen_recv,
            listen_sent: now_ms(),
        };
        protocol::write_error(
            &mut out,
            &echo,
            &meta,
            &Failure::Protocol {
                kind: bad.kind,
                max_line_bytes: self.max_line_bytes,
                cmd: bad.cmd,
            },
        );
        Some(out)
    }
}

fn log_failure(cmd: Cmd, e: &CommandError, correlation_id: Option<&str>) {
    match e {
        CommandError::StoreUnavailable | CommandError::Internal => tracing::warn!(
            cmd = cmd.name(),
            code = e.code(),
            correlation_id,
            "request failed"
        ),
        // Validation messages name a field and a limit, never a value; the cap's names
        // only the limit.
        CommandError::InvalidData { .. }
        | CommandError::DataTooLarge { .. }
        | CommandError::SessionLimit { .. } => tracing::info!(
            cmd = cmd.name(),
            code = e.code(),
            correlation_id,
            message = %e,
            "request failed"
        ),
        // Session ids can work as bearer tokens: keep them out of logs.
        CommandError::SessionClosed { .. } => tracing::info!(
            cmd = cmd.name(),
            code = e.code(),
            correlation_id,
            "request failed"
        ),
    }
}
