//! The table of settings: every environment variable the service reads, with its kind
//! (syntax and bounds), its default and what it means. The reader
//! ([`crate::config::Config::from_source`]) takes each setting's name, default and
//! bounds from here, `sessions --help` prints the table, and a test holds README's
//! configuration tables to it row by row, so the three cannot drift apart.
//!
//! Adding a setting is adding a row to [`settings!`] below (and README's row, which the
//! test then asks for), plus the line in the reader that stores it in [`Config`].
//!
//! [`Config`]: crate::config::Config

use self::DefaultValue::{Computed, Literal, Unset};
use self::Kind::{
    Address, Bool, Choice, Duration, File, LogFilter, Number, Secret, Size, Text, Urls,
};

/// What a setting's value looks like, with the bounds it must keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `host:port`.
    Address,
    /// Redis URLs, separated by commas.
    Urls,
    /// Free text.
    Text,
    /// Free text that is never printed or logged (passwords); taken as is, untrimmed.
    Secret,
    /// The path of a file that must be readable at start.
    File,
    /// A whole number in `min..=max`.
    Number { min: usize, max: usize },
    /// Bytes, or a number with `B`, `KiB`, `MiB` or `GiB`; at least `min` bytes.
    Size { min: usize },
    /// A number with `ms`, `s`, `m`, `h` or `d` (a bare number is seconds); zero only
    /// where `zero` says it has a meaning.
    Duration { zero: bool },
    /// `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
    Bool,
    /// One of the words, in any case.
    Choice(&'static [&'static str]),
    /// `tracing` filter directives.
    LogFilter,
}

impl Kind {
    /// The value's shape, as `--help` shows it after the name.
    pub fn placeholder(&self) -> String {
        match self {
            Address => "<host:port>".into(),
            Urls => "<url>[,<url>...]".into(),
            Text => "<text>".into(),
            Secret => "<secret>".into(),
            File => "<path>".into(),
            Number { min, max } => format!("<{min}..{max}>"),
            Size { .. } => "<size>".into(),
            Duration { .. } => "<duration>".into(),
            Bool => "<true|false>".into(),
            Choice(words) => format!("<{}>", words.join("|")),
            LogFilter => "<filter>".into(),
        }
    }

    /// What a value must be, for the error naming a value that is not it.
    pub fn expected(&self) -> String {
        match self {
            Address => "an address like 0.0.0.0:8807".into(),
            Urls => "a Redis URL, or several separated by commas".into(),
            Text | Secret => "text".into(),
            File => "a readable file".into(),
            Number { min, max } => format!("a whole number from {min} to {max}"),
            Size { min } => {
                format!("a size in bytes of at least {min} (e.g. 65536, 64KiB, 1MiB)")
            }
            Duration { .. } => {
                "a duration (e.g. 500ms, 30s, 15m, 24h, 30d; a bare number is seconds)".into()
            }
            Bool => "true or false".into(),
            Choice(words) => match words.split_last() {
                Some((last, [])) => (*last).to_owned(),
                Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
                None => "nothing".into(),
            },
            LogFilter => "a tracing filter (e.g. info,sessions=debug)".into(),
        }
    }
}

/// What a setting is when its variable is unset or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultValue {
    /// This value, written as the variable would be and read by the same parser.
    Literal(&'static str),
    /// Nothing: the feature the setting turns on is off, or another setting decides
    /// (the meaning says which).
    Unset,
    /// Worked out at start, as the text (Markdown) says; the reader has the rule.
    Computed(&'static str),
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment variable.
    pub name: &'static str,
    pub kind: Kind,
    pub default: DefaultValue,
    /// What it does, in Markdown, word for word as README's table has it.
    pub meaning: &'static str,
}

impl Setting {
    /// The default as README's table shows it (Markdown).
    pub fn default_markdown(&self) -> String {
        match self.default {
            Literal(v) => format!("`{v}`"),
            Unset => "unset".into(),
            Computed(text) => text.into(),
        }
    }

    /// The default as plain text, for help texts.
    pub fn default_text(&self) -> String {
        self.default_markdown().replace('`', "")
    }

    /// This setting's row of README's configuration tables.
    pub fn readme_row(&self) -> String {
        format!(
            "| `{}` | {} | {} |",
            self.name,
            self.default_markdown(),
            self.meaning
        )
    }
}

/// Declares each row as a constant the reader names, and [`ALL`] listing them in
/// order, from one list.
macro_rules! settings {
    ($(
        $(#[$doc:meta])*
        $id:ident = $name:literal {
            kind: $kind:expr,
            default: $default:expr,
            meaning: $meaning:expr $(,)?
        }
    )*) => {
        $(
            $(#[$doc])*
            pub const $id: Setting = Setting {
                name: $name,
                kind: $kind,
                default: $default,
                meaning: $meaning,
            };
        )*

        /// Every setting, in the order README's tables and `--help` list them.
        pub const ALL: &[Setting] = &[$($id),*];
    };
}

settings! {
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
    REDIS_URL = "REDIS_URL" {
        kind: Urls,
        default: Unset,
        meaning: "Redis to keep sessions in (`redis://[user:password@]host:port/db`, \
            `rediss://` for TLS; comma-separated nodes in cluster and sentinel mode, see \
            Scaling); unset: embedded store, single replica",
    }
    KEY_PREFIX = "SESSIONS_KEY_PREFIX" {
        kind: Text,
        default: Literal("sessions"),
        meaning: "prefix of every Redis key (1 to 128 bytes, no `{` or `}`)",
    }
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
        meaning: "an active session whose `request_time` is older is closed by the sweep",
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
    REDIS_MODE = "SESSIONS_REDIS_MODE" {
        kind: Choice(&["standalone", "cluster", "sentinel"]),
        default: Literal("standalone"),
        meaning: "`standalone`, `cluster` or `sentinel`",
    }
    REDIS_SENTINEL_MASTER = "SESSIONS_REDIS_SENTINEL_MASTER" {
        kind: Text,
        default: Unset,
        meaning: "the master name the sentinels monitor (sentinel mode, required)",
    }
    REDIS_USERNAME = "REDIS_USERNAME" {
        kind: Text,
        default: Unset,
        meaning: "data-node ACL user (overrides the URL's)",
    }
    REDIS_PASSWORD = "REDIS_PASSWORD" {
        kind: Secret,
        default: Unset,
        meaning: "data-node password (overrides the URL's); a secret, like `REDIS_URL`",
    }
    REDIS_SENTINEL_USERNAME = "REDIS_SENTINEL_USERNAME" {
        kind: Text,
        default: Unset,
        meaning: "the sentinels' ACL user",
    }
    REDIS_SENTINEL_PASSWORD = "REDIS_SENTINEL_PASSWORD" {
        kind: Secret,
        default: Unset,
        meaning: "the sentinels' password; a secret",
    }
    REDIS_CA_FILE = "SESSIONS_REDIS_CA_FILE" {
        kind: File,
        default: Unset,
        meaning: "PEM CA to trust for `rediss://` instead of the system roots",
    }
    REDIS_CLIENT_CERT_FILE = "SESSIONS_REDIS_CLIENT_CERT_FILE" {
        kind: File,
        default: Unset,
        meaning: "PEM client certificate for mutual TLS (both or neither with \
            `SESSIONS_REDIS_CLIENT_KEY_FILE`)",
    }
    REDIS_CLIENT_KEY_FILE = "SESSIONS_REDIS_CLIENT_KEY_FILE" {
        kind: File,
        default: Unset,
        meaning: "its PEM private key (both or neither with `SESSIONS_REDIS_CLIENT_CERT_FILE`)",
    }
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

    #[test]
    fn choices_read_as_a_list() {
        assert_eq!(
            REDIS_MODE.kind.expected(),
            "standalone, cluster or sentinel"
        );
        assert_eq!(LOG_FORMAT.kind.expected(), "text or json");
        assert_eq!(LOG_FORMAT.kind.placeholder(), "<text|json>");
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
            "README.md's configuration tables and src/config/settings.rs differ.\n\
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
