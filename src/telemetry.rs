//! Logging setup (tracing-subscriber: readable text by default, JSON lines for log
//! collectors). [`mask_url`] keeps secrets in URLs out of the logs.

use std::ffi::OsStr;
use std::io::IsTerminal;
use std::str::FromStr;

pub use sessions_shared::connect::mask_url;
use tracing_subscriber::EnvFilter;

/// The filter used when neither a directive nor `RUST_LOG` is given.
pub const DEFAULT_FILTER: &str = "info";

/// How log lines are written (to stdout).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// One human-readable line per event.
    #[default]
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

impl FromStr for LogFormat {
    type Err = TelemetryError;

    /// `text` or `json`, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(TelemetryError::BadFormat(s.to_owned())),
        }
    }
}

/// What can go wrong setting up logging.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("log format must be \"text\" or \"json\", got {0:?}")]
    BadFormat(String),
    #[error("invalid log filter {directive:?}: {reason}")]
    BadFilter { directive: String, reason: String },
    #[error("logging was already set up: {0}")]
    AlreadySet(String),
}

/// The filter from `directive` (e.g. `info,sessions=debug`), else from `RUST_LOG`,
/// else [`DEFAULT_FILTER`]. An explicit directive that does not parse is an error,
/// so a typo in configuration is reported at start instead of silently ignored.
pub fn filter(directive: Option<&str>) -> Result<EnvFilter, TelemetryError> {
    match directive.map(str::trim).filter(|d| !d.is_empty()) {
        Some(d) => EnvFilter::try_new(d).map_err(|e| TelemetryError::BadFilter {
            directive: d.to_owned(),
            reason: e.to_string(),
        }),
        None => Ok(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
        ),
    }
}

/// Whether text log lines carry terminal colours: only when stdout is a terminal, so a
/// file, a pipe, `docker logs` or the journal get plain text, and never when
/// `NO_COLOR` is set to anything but an empty string (no-color.org).
pub fn colour(stdout_is_terminal: bool, no_color: Option<&OsStr>) -> bool {
    stdout_is_terminal && no_color.is_none_or(OsStr::is_empty)
}

/// Installs the global subscriber, writing to stdout. Call once, early in `main`.
pub fn init(format: LogFormat, directive: Option<&str>) -> Result<(), TelemetryError> {
    let filter = filter(directive)?;
    let ansi = colour(
        std::io::stdout().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stdout);
    let res = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .try_init(),
    };
    res.map_err(|e| TelemetryError::AlreadySet(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_format_parses() {
        assert_eq!("json".parse::<LogFormat>().unwrap(), LogFormat::Json);
        assert_eq!(" Text ".parse::<LogFormat>().unwrap(), LogFormat::Text);
        assert!(matches!(
            "yaml".parse::<LogFormat>(),
            Err(TelemetryError::BadFormat(_))
        ));
    }

    #[test]
    fn bad_filter_directive_is_an_error() {
        assert!(filter(Some("info,sessions=debug")).is_ok());
        assert!(filter(None).is_ok());
        let err = filter(Some("sessions=loud")).unwrap_err();
        assert!(matches!(err, TelemetryError::BadFilter { .. }), "{err}");
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(colour(true, None));
        assert!(colour(true, Some(OsStr::new(""))));
        assert!(!colour(false, None), "a file or a pipe gets plain text");
        assert!(!colour(true, Some(OsStr::new("1"))));
    }

    #[test]
    fn init_installs_once() {
        init(LogFormat::Json, Some("warn")).unwrap();
        assert!(matches!(
            init(LogFormat::Text, None),
            Err(TelemetryError::AlreadySet(_))
        ));
    }
}
