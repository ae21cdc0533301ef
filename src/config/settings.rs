//! The table of settings: every environment variable the service reads, with its kind
//! (syntax and bounds), its default and what it means. The reader
//! ([`crate::config::Config::from_source`]) takes each setting's name, default and
//! bounds from here, `sessions --help` prints the table, and a test holds README's
//! configuration tables to it row by row, so the three cannot drift apart.
//!
//! The Redis rows (where Redis is, the credentials, the TLS files, the key prefix) are
//! declared with the code that reads them, which `sessions check` shares
//! ([`sessions_shared::settings::redis`]), and listed here (`use NAME;`) in README's
//! order.
//!
//! Adding a setting is adding a row to the table below (and README's row, which the
//! test then asks for), plus the line in the reader that stores it in [`Config`].
//!
//! [`Config`]: crate::config::Config

pub use sessions_shared::settings::redis::{
    KEY_PREFIX, REDIS_CA_FILE, REDIS_CLIENT_CERT_FILE, REDIS_CLIENT_KEY_FILE, REDIS_MODE,
    REDIS_PASSWORD, REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD, REDIS_SENTINEL_USERNAME,
    REDIS_URL, REDIS_USERNAME,
};
use sessions_shared::settings::DefaultValue::{Computed, Literal};
use sessions_shared::settings::Kind::{Address, Bool, Choice, Duration, LogFilter, Number, Size};
pub use sessions_shared::settings::{DefaultValue, Kind, Setting};

sessions_shared::settings_table! {
    /// Every setting, in the order README's tables and `--help` list them.
    ALL:
    LISTEN = "SESSIONS_LISTEN" {
        kind: Address,
        default: Literal("0.0.0.0:8807"),
        meaning: "Seneca TCP listen address",
    }
    ADMIN_LISTEN = "SESSIONS_ADMIN_LISTEN" {
        kind: Address,
        default: Literal("0.0.0.0:9807"),
        meaning: "admin HTTP listen address (`/metrics`, `/live`, `/ready`)",
    }
    use REDIS_URL;
    use KEY_PREFIX;
    /// Computed: a `WAIT` holds its connection until the replicas acknowledge, and
    /// everything queued behind it waits too, hence more connections with WAIT.
    REDIS_CONNECTIONS = "SESSIONS_REDIS_CONNECTIONS" {
        kind: Number { min: 1, max: 256 },
        default: Computed("`1` (`4` with `SESSIONS_REDIS_WAIT_REPLICAS`)"),
        meaning: "pipelined Redis connections per replica to the server (or the Sentinel \
            primary, or each cluster primary): requests arriving together go to Redis in \
            one write; a `WAIT` holds its connection, hence more with WAIT \
            (docs/benchmarks.md)",
    }
    REQUEST_TIMEOUT = "SESSIONS_REQUEST_TIMEOUT" {
        kind: Duration { zero: false },
        default: Literal("2s"),
        meaning: "longest a request waits for the store before `STORE_UNAVAILABLE`",
    }
    MAX_LINE_BYTES = "SESSIONS_MAX_LINE_BYTES" {
        kind: Size { min: 1024 },
        default: Literal("256KiB"),
        meaning: "longest request line; must exceed twice `SESSIONS_MAX_DATA_BYTES`",
    }
    MAX_DATA_BYTES = "SESSIONS_MAX_DATA_BYTES" {
        kind: Size { min: 16 },
        default: Literal("64KiB"),
        meaning: "largest `data` or `user`, measured as compact JSON",
    }
    MAX_FIELD_BYTES = "SESSIONS_MAX_FIELD_BYTES" {
        kind: Size { min: 16 },
        default: Literal("1024"),
        meaning: "longest string argument (`user_id`, `user_name`, `address`, `client`, ids)",
    }
    MAX_CONNECTIONS = "SESSIONS_MAX_CONNECTIONS" {
        kind: Number { min: 1, max: 1_000_000 },
        default: Literal("256"),
        meaning: "concurrent client connections; further clients wait in the listen backlog",
    }
    WORKER_THREADS = "SESSIONS_WORKER_THREADS" {
        kind: Number { min: 1, max: 1024 },
        default: Computed("one per CPU the process may use (cgroup CPU limit included)"),
        meaning: "threads running requests; `1` is faster when the replica shares one or \
            two cores with Redis (docs/benchmarks.md)",
    }
    MAX_IN_FLIGHT = "SESSIONS_MAX_IN_FLIGHT" {
        kind: Number { min: 1, max: 1_000_000 },
        default: Literal("1024"),
        meaning: "requests in progress per connection; past it the connection is not read \
            until replies go out",
    }
    MAX_REQUEST_MEMORY = "SESSIONS_MAX_REQUEST_MEMORY" {
        kind: Size { min: 64 << 10 },
        default: Literal("64MiB"),
        meaning: "memory all requests in progress and replies not yet written may reserve \
            together; past it connections pause reading",
    }
    MAX_CONN_REQUEST_MEMORY = "SESSIONS_MAX_CONN_REQUEST_MEMORY" {
        kind: Size { min: 64 << 10 },
        default: Literal("16MiB"),
        meaning: "the same for one connection, so one client cannot take it all",
    }
    MAX_TAKE = "SESSIONS_MAX_TAKE" {
        kind: Number { min: 1, max: 100_000 },
        default: Literal("100"),
        meaning: "largest page `get_sessions` returns",
    }
    REUSE = "SESSIONS_REUSE" {
        kind: Bool,
        default: Literal("true"),
        meaning: "`open_session` returns the active session of the same user, address and \
            client",
    }
    IDLE_TIMEOUT = "SESSIONS_IDLE_TIMEOUT" {
        kind: Duration { zero: false },
        default: Literal("24h"),
        meaning: "a session expires this long after its `request_time` \
            ([Session lifetime](#session-lifetime-revocation-and-the-per-user-cap))",
    }
    ABSOLUTE_LIFETIME = "SESSIONS_ABSOLUTE_LIFETIME" {
        kind: Duration { zero: true },
        default: Literal("0"),
        meaning: "a session expires this long after its `open_time`, however busy it is; \
            `0`: no such limit",
    }
    MAX_PER_USER = "SESSIONS_MAX_PER_USER" {
        kind: Number { min: 0, max: 1_000_000 },
        default: Literal("0"),
        meaning: "the most active sessions one user may have; `0`: no cap",
    }
    MAX_PER_USER_POLICY = "SESSIONS_MAX_PER_USER_POLICY" {
        kind: Choice(&["close_oldest", "refuse"]),
        default: Literal("close_oldest"),
        meaning: "a new session past the cap closes the user's least recently used ones \
            (`close_oldest`), or is refused with `SESSION_LIMIT` (`refuse`)",
    }
    SWEEP_INTERVAL = "SESSIONS_SWEEP_INTERVAL" {
        kind: Duration { zero: false },
        default: Literal("15m"),
        meaning: "how often each replica sweeps (with jitter)",
    }
    RETENTION = "SESSIONS_RETENTION" {
        kind: Duration { zero: true },
        default: Literal("30d"),
        meaning: "how long closed sessions stay readable; `0` keeps them forever",
    }
    SWEEP_BATCH = "SESSIONS_SWEEP_BATCH" {
        kind: Number { min: 1, max: 100_000 },
        default: Literal("500"),
        meaning: "sessions handled per sweep step (one script call)",
    }
    SWEEP_MAX_BATCHES = "SESSIONS_SWEEP_MAX_BATCHES" {
        kind: Number { min: 1, max: 100_000 },
        default: Literal("20"),
        meaning: "sweep steps per bucket in one run (bounds one run's work)",
    }
    SHUTDOWN_GRACE = "SESSIONS_SHUTDOWN_GRACE" {
        kind: Duration { zero: true },
        default: Literal("20s"),
        meaning: "how long in-flight requests may finish after SIGTERM",
    }
    LOG_FORMAT = "SESSIONS_LOG_FORMAT" {
        kind: Choice(&["text", "json"]),
        default: Literal("text"),
        meaning: "`text` or `json`",
    }
    LOG = "SESSIONS_LOG" {
        kind: LogFilter,
        default: Literal("info"),
        meaning: "log filter (`tracing` directives, e.g. `sessions=debug`)",
    }
    use REDIS_MODE;
    use REDIS_SENTINEL_MASTER;
    use REDIS_USERNAME;
    use REDIS_PASSWORD;
    use REDIS_SENTINEL_USERNAME;
    use REDIS_SENTINEL_PASSWORD;
    use REDIS_CA_FILE;
    use REDIS_CLIENT_CERT_FILE;
    use REDIS_CLIENT_KEY_FILE;
    REDIS_WAIT_REPLICAS = "SESSIONS_REDIS_WAIT_REPLICAS" {
        kind: Number { min: 0, max: 64 },
        default: Literal("0"),
        meaning: "acknowledge a write only once this many replicas have it (Redis `WAIT`)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique() {
        for (i, s) in ALL.iter().enumerate() {
            assert!(
                ALL[i + 1..].iter().all(|o| o.name != s.name),
                "{} is in the table twice",
                s.name
            );
        }
    }

    /// README's configuration tables (every table headed `| variable | default |
    /// meaning |`) hold exactly the rows of [`ALL`], in its order: a setting added,
    /// removed or reworded on one side only fails here, with the row to paste.
    #[test]
    fn readme_tables_match_the_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
            .expect("README.md");
        let documented = readme_setting_rows(&readme);
        let expected: Vec<String> = ALL.iter().map(Setting::readme_row).collect();
        let missing: Vec<&String> = expected
            .iter()
            .filter(|r| !documented.contains(r))
            .collect();
        let extra: Vec<&String> = documented
            .iter()
            .filter(|r| !expected.contains(r))
            .collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "README.md's configuration tables and the settings table differ \
             (src/config/settings.rs, crates/shared/src/settings/redis.rs).\n\
             Rows the table has and README lacks (or words differently):\n{}\n\
             Rows README has and the table lacks:\n{}",
            missing
                .iter()
                .map(|r| format!("  {r}\n"))
                .collect::<String>(),
            extra.iter().map(|r| format!("  {r}\n")).collect::<String>(),
        );
        assert_eq!(
            documented, expected,
            "README.md lists the settings in another order than src/config/settings.rs"
        );
    }

    /// The body rows of every Markdown table whose header is `| variable | default |
    /// meaning |`, in document order.
    fn readme_setting_rows(readme: &str) -> Vec<String> {
        let mut rows = Vec::new();
        let mut in_table = false;
        for line in readme.lines().map(str::trim) {
            if line == "| variable | default | meaning |" {
                in_table = true;
            } else if !line.starts_with('|') {
                in_table = false;
            } else if in_table && !line.starts_with("|---") {
                rows.push(line.to_owned());
            }
        }
        assert!(rows.len() > 10, "README.md has no configuration table");
        rows
    }
}
