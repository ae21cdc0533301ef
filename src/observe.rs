//! Connects the server's observer hooks (`service::Observer` and
//! `server::ConnObserver`) to [`Metrics`], so the request path reports into the
//! metric handles without knowing about Prometheus.

use std::sync::Arc;

use crate::commands;
use crate::connection::CloseReason;
use crate::metrics::{self, Metrics, Outcome, ProtocolErrorKind};
use crate::protocol;
use crate::server::ConnObserver;
use crate::service::Observer;

/// The observer that records everything into the metrics. Cheap to clone.
#[derive(Debug, Clone)]
pub struct MetricsObserver(pub Arc<Metrics>);

/// The metrics label of a command; an exhaustive match, so a new command cannot be
/// added without its label.
pub fn cmd_label(cmd: commands::Cmd) -> metrics::Cmd {
    use commands::Cmd as C;
    use metrics::Cmd as M;
    match cmd {
        C::GetSessions => M::GetSessions,
        C::GetSessionById => M::GetSessionById,
        C::OpenSession => M::OpenSession,
        C::StoreSessionData => M::StoreSessionData,
        C::UpdateSessionUser => M::UpdateSessionUser,
        C::CloseSession => M::CloseSession,
        C::CloseExpiredSessions => M::CloseExpiredSessions,
        C::DeleteSession => M::DeleteSession,
        C::DeleteSessionById => M::DeleteSessionById,
        C::CloseUserSessions => M::CloseUserSessions,
    }
}

/// The metrics label of a protocol error kind.
pub fn protocol_label(kind: protocol::ProtocolErrorKind) -> ProtocolErrorKind {
    use protocol::ProtocolErrorKind as P;
    match kind {
        P::LineTooLong => ProtocolErrorKind::LineTooLong,
        P::InvalidJson => ProtocolErrorKind::InvalidJson,
        P::InvalidUtf8 => ProtocolErrorKind::InvalidUtf8,
        P::NotAnObject => ProtocolErrorKind::NotAnObject,
        P::BadEnvelope => ProtocolErrorKind::BadEnvelope,
    }
}

impl Observer for MetricsObserver {
    fn request(&self, cmd: Option<commands::Cmd>, outcome: &'static str, seconds: f64) {
        let cmd = cmd.map_or(metrics::Cmd::Unknown, cmd_label);
        // An outcome outside the known set would be a bug; count it as internal
        // rather than create a series.
        let outcome = Outcome::from_label(outcome).unwrap_or(Outcome::Internal);
        self.0.observe_request(cmd, outcome, seconds);
    }

    fn in_flight(&self, delta: i64) {
        self.0.add_in_flight(delta);
    }

    fn protocol_error(&self, kind: protocol::ProtocolErrorKind) {
        self.0.protocol_error(protocol_label(kind));
    }
}

impl ConnObserver for MetricsObserver {
    fn opened(&self) {
        self.0.connection_accepted();
    }

    fn closed(&self, _reason: CloseReason) {
        self.0.connection_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn value(m: &Metrics, series: &str) -> u64 {
        m.render()
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("{series} missing"))
    }

    #[test]
    fn labels_match_the_wire_names() {
        for cmd in commands::Cmd::ALL {
            assert_eq!(cmd_label(cmd).as_str(), cmd.name());
        }
        // Every application error has an outcome label of its own.
        for e in [
            commands::CommandError::invalid("f", "m"),
            commands::CommandError::DataTooLarge {
                field: "data",
                size: 2,
                limit: 1,
            },
            commands::CommandError::SessionClosed {
                session_id: "s".into(),
            },
            commands::CommandError::SessionLimit { limit: 3 },
            commands::CommandError::StoreUnavailable,
            commands::CommandError::Internal,
        ] {
            let outcome = Outcome::from_label(e.outcome());
            assert!(outcome.is_some(), "{e:?}");
            assert_eq!(e.outcome(), e.code().to_ascii_lowercase());
        }
        for kind in [
            protocol::ProtocolErrorKind::LineTooLong,
            protocol::ProtocolErrorKind::InvalidJson,
            protocol::ProtocolErrorKind::InvalidUtf8,
            protocol::ProtocolErrorKind::NotAnObject,
            protocol::ProtocolErrorKind::BadEnvelope,
        ] {
            assert_eq!(protocol_label(kind).as_str(), kind.label());
        }
    }

    #[test]
    fn hooks_land_in_their_series() {
        let m = Arc::new(Metrics::new().unwrap());
        let o = MetricsObserver(m.clone());
        Observer::in_flight(&o, 1);
        Observer::request(
            &o,
            Some(commands::Cmd::CloseSession),
            "session_closed",
            0.001,
        );
        Observer::request(&o, None, "not_found", 0.000_1);
        Observer::request(&o, Some(commands::Cmd::GetSessions), "bogus", 0.000_1);
        Observer::protocol_error(&o, protocol::ProtocolErrorKind::InvalidUtf8);
        ConnObserver::opened(&o);
        assert_eq!(value(&m, "sessions_requests_in_flight"), 1);
        assert_eq!(value(&m, "sessions_connections_open"), 1);
        Observer::in_flight(&o, -1);
        ConnObserver::closed(&o, CloseReason::ClientClosed);

        assert_eq!(
            value(
                &m,
                r#"sessions_requests_total{cmd="close_session",outcome="session_closed"}"#
            ),
            1
        );
        assert_eq!(
            value(
                &m,
                r#"sessions_requests_total{cmd="unknown",outcome="not_found"}"#
            ),
            1
        );
        assert_eq!(
            value(
                &m,
                r#"sessions_requests_total{cmd="get_sessions",outcome="internal"}"#
            ),
            1
        );
        assert_eq!(
            value(&m, r#"sessions_protocol_errors_total{kind="invalid_utf8"}"#),
            1
        );
        assert_eq!(value(&m, "sessions_requests_in_flight"), 0);
        assert_eq!(value(&m, "sessions_connections_open"), 0);
        assert_eq!(value(&m, "sessions_connections_closed_total"), 1);
    }
}
