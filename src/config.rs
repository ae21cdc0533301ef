//! Settings: every knob the service reads from its environment. The names, defaults,
//! kinds and meanings are one table ([`settings`]); this file turns them into a
//! [`Config`], with the checks that span several settings. An invalid value stops the
//! start with a message naming the variable. Read through [`Source`] so tests can pass
//! a map. The Redis settings are read as `sessions check` reads them
//! ([`sessions_shared::settings::redis`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub mod settings;

use self::settings::*;
use sessions_shared::settings::reader::{invalid, Reader};
pub use sessions_shared::settings::{ConfigError, Env, Source};

pub use crate::store::redis::{Credentials, Secret, Topology};
pub use crate::telemetry::LogFormat;

/// Every setting of the service, read. Each field names its row of [`settings`],
/// which says what it means and what its default is.
#[derive(Debug, Clone)]
pub struct Config {
    /// [`LISTEN`]
    pub listen: SocketAddr,
    /// [`ADMIN_LISTEN`]
    pub admin_listen: SocketAddr,
    /// [`REDIS_URL`]: `None` is the embedded in-process store.
    pub redis_url: Option<String>,
    /// [`REDIS_MODE`], with [`REDIS_SENTINEL_MASTER`] for sentinel.
    pub redis_topology: Topology,
    /// [`REDIS_USERNAME`], [`REDIS_PASSWORD`]. Like `REDIS_URL`, and unlike the
    /// `SESSIONS_*` settings, credentials, meant to come from a secret store.
    pub redis_auth: Credentials,
    /// [`REDIS_SENTINEL_USERNAME`], [`REDIS_SENTINEL_PASSWORD`].
    pub redis_sentinel_auth: Credentials,
    /// [`REDIS_CA_FILE`]
    pub redis_ca_file: Option<PathBuf>,
    /// [`REDIS_CLIENT_CERT_FILE`]: both or neither with the key.
    pub redis_client_cert_file: Option<PathBuf>,
    /// [`REDIS_CLIENT_KEY_FILE`]
    pub redis_client_key_file: Option<PathBuf>,
    /// [`REDIS_WAIT_REPLICAS`]: 0 does not wait.
    pub redis_wait_replicas: u32,
    /// [`KEY_PREFIX`]
    pub key_prefix: String,
    /// [`REDIS_CONNECTIONS`]
    pub redis_connections: usize,
    /// [`REQUEST_TIMEOUT`]
    pub request_timeout: Duration,
    /// [`MAX_LINE_BYTES`]
    pub max_line_bytes: usize,
    /// [`MAX_DATA_BYTES`]
    pub max_data_bytes: usize,
    /// [`MAX_FIELD_BYTES`]
    pub max_field_bytes: usize,
    /// [`MAX_CONNECTIONS`]
    pub max_connections: usize,
    /// [`WORKER_THREADS`]: `None` leaves the count to the runtime (one per CPU the
    /// process may use, cgroup limits included).
    pub worker_threads: Option<usize>,
    /// [`MAX_IN_FLIGHT`]
    pub max_in_flight: usize,
    /// [`MAX_REQUEST_MEMORY`]
    pub max_request_memory: usize,
    /// [`MAX_CONN_REQUEST_MEMORY`]
    pub max_conn_request_memory: usize,
    /// [`MAX_TAKE`]
    pub max_take: u64,
    /// [`REUSE`]
    pub reuse: bool,
    /// [`IDLE_TIMEOUT`]
    pub idle_timeout: Duration,
    /// [`ABSOLUTE_LIFETIME`]: `None` (a zero setting) is no such limit.
    pub absolute_lifetime: Option<Duration>,
    /// [`MAX_PER_USER`] and [`MAX_PER_USER_POLICY`].
    pub max_per_user: crate::store::SessionCap,
    /// [`SWEEP_INTERVAL`]
    pub sweep_interval: Duration,
    /// [`RETENTION`]: `None` (a zero setting) keeps closed sessions forever.
    pub retention: Option<Duration>,
    /// [`SWEEP_BATCH`]
    pub sweep_batch: usize,
    /// [`SWEEP_MAX_BATCHES`]
    pub sweep_max_batches: usize,
    /// [`SHUTDOWN_GRACE`]
    pub shutdown_grace: Duration,
    /// [`LOG_FORMAT`]
    pub log_format: LogFormat,
    /// [`LOG`]: `tracing` directives.
    pub log_filter: String,
}

impl Config {
    /// Reads every setting from `src`, applying defaults and validating.
    pub fn from_source(src: &dyn Source) -> Result<Config, ConfigError> {
        let r = Reader::new(src);
        let redis = sessions_shared::settings::redis::read(&r)?;
        let redis_wait_replicas = r.number(&REDIS_WAIT_REPLICAS)? as u32;
        let retention = r.duration(&RETENTION)?;
        let absolute_lifetime = r.duration(&ABSOLUTE_LIFETIME)?;
        let cfg = Config {
            listen: r.addr(&LISTEN)?,
            admin_listen: r.addr(&ADMIN_LISTEN)?,
            redis_url: redis.url,
            redis_topology: redis.topology,
            redis_auth: redis.auth,
            redis_sentinel_auth: redis.sentinel_auth,
            redis_ca_file: redis.tls.ca,
            redis_client_cert_file: redis.tls.client_cert,
            redis_client_key_file: redis.tls.client_key,
            redis_wait_replicas,
            key_prefix: redis.prefix,
            // The computed default the table describes.
            redis_connections: if r.is_set(&REDIS_CONNECTIONS) {
                r.number(&REDIS_CONNECTIONS)?
            } else if redis_wait_replicas > 0 {
                4
            } else {
                1
            },
            request_timeout: r.duration(&REQUEST_TIMEOUT)?,
            max_line_bytes: r.size(&MAX_LINE_BYTES)?,
            max_data_bytes: r.size(&MAX_DATA_BYTES)?,
            max_field_bytes: r.size(&MAX_FIELD_BYTES)?,
            max_connections: r.number(&MAX_CONNECTIONS)?,
            // Unset: the runtime counts the CPUs.
            worker_threads: r
                .is_set(&WORKER_THREADS)
                .then(|| r.number(&WORKER_THREADS))
                .transpose()?,
            max_in_flight: r.number(&MAX_IN_FLIGHT)?,
            max_request_memory: r.size(&MAX_REQUEST_MEMORY)?,
            max_conn_request_memory: r.size(&MAX_CONN_REQUEST_MEMORY)?,
            max_take: r.number(&MAX_TAKE)? as u64,
            reuse: r.boolean(&REUSE)?,
            idle_timeout: r.duration(&IDLE_TIMEOUT)?,
            absolute_lifetime: (!absolute_lifetime.is_zero()).then_some(absolute_lifetime),
            max_per_user: max_per_user(&r)?,
            sweep_interval: r.duration(&SWEEP_INTERVAL)?,
            retention: (!retention.is_zero()).then_some(retention),
            sweep_batch: r.number(&SWEEP_BATCH)?,
            sweep_max_batches: r.number(&SWEEP_MAX_BATCHES)?,
            shutdown_grace: r.duration(&SHUTDOWN_GRACE)?,
            log_format: log_format(&r)?,
            log_filter: log_filter(&r)?,
        };
        if cfg.max_line_bytes <= cfg.max_data_bytes * 2 {
            return Err(invalid(
                &MAX_LINE_BYTES,
                format!(
                    "must be more than twice {} so a request with data at the limit fits \
                     on a line",
                    MAX_DATA_BYTES.name
                ),
            ));
        }
        Ok(cfg)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_source(&Env)
    }
}

fn log_format(r: &Reader) -> Result<LogFormat, ConfigError> {
    r.choice(&LOG_FORMAT)?
        .parse()
        .map_err(|e: crate::telemetry::TelemetryError| invalid(&LOG_FORMAT, e.to_string()))
}

/// [`MAX_PER_USER`] and [`MAX_PER_USER_POLICY`].
fn max_per_user(r: &Reader) -> Result<crate::store::SessionCap, ConfigError> {
    Ok(crate::store::SessionCap {
        // The table bounds it to a million.
        max: r.number(&MAX_PER_USER)? as u32,
        policy: match r.choice(&MAX_PER_USER_POLICY)? {
            "refuse" => crate::store::CapPolicy::Refuse,
            _ => crate::store::CapPolicy::CloseOldest,
        },
    })
}

/// `SESSIONS_LOG`, parsed now so a typo stops the start instead of being ignored.
fn log_filter(r: &Reader) -> Result<String, ConfigError> {
    let filter = r.text(&LOG).unwrap_or_default();
    crate::telemetry::filter(Some(&filter)).map_err(|e| invalid(&LOG, e.to_string()))?;
    Ok(filter)
}

impl Config {
    /// The sweep settings (expiry and retention) of this configuration.
    pub fn sweep(&self) -> crate::sweeper::SweepConfig {
        crate::sweeper::SweepConfig {
            idle_timeout: self.idle_timeout,
            absolute_lifetime: self.absolute_lifetime,
            interval: self.sweep_interval,
            jitter: 0.2,
            retention: self.retention,
            batch: self.sweep_batch,
            max_batches_per_bucket: self.sweep_max_batches,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use sessions_shared::settings::Recording;

    use super::*;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        Config::from_source(&map)
    }

    #[test]
    fn defaults() {
        let c = cfg(&[]).unwrap();
        assert_eq!(c.listen.to_string(), "0.0.0.0:8807");
        assert_eq!(c.admin_listen.to_string(), "0.0.0.0:9807");
        assert!(c.redis_url.is_none());
        assert_eq!(c.key_prefix, "sessions");
        assert_eq!(c.max_take, 100);
        // Limits sized for a 256 MiB replica (SECURITY.md has the arithmetic).
        assert_eq!(c.max_connections, 256);
        assert_eq!(c.worker_threads, None, "the runtime's own count of CPUs");
        assert_eq!(c.max_line_bytes, 256 * 1024);
        assert_eq!(c.max_request_memory, 64 << 20);
        assert_eq!(c.max_conn_request_memory, 16 << 20);
        assert!(c.reuse);
        assert_eq!(c.idle_timeout, Duration::from_secs(86_400));
        assert_eq!(c.sweep_interval, Duration::from_secs(900));
        assert_eq!(c.retention, Some(Duration::from_secs(30 * 86_400)));
        assert_eq!(c.absolute_lifetime, None);
        assert_eq!(c.max_per_user, crate::store::SessionCap::default());
        assert_eq!(c.max_per_user.max, 0, "no cap");
        assert_eq!(c.max_per_user.policy, crate::store::CapPolicy::CloseOldest);
    }

    #[test]
    fn session_policy_settings() {
        let c = cfg(&[
            ("SESSIONS_ABSOLUTE_LIFETIME", "12h"),
            ("SESSIONS_MAX_PER_USER", "5"),
            ("SESSIONS_MAX_PER_USER_POLICY", "refuse"),
        ])
        .unwrap();
        assert_eq!(c.absolute_lifetime, Some(Duration::from_secs(12 * 3600)));
        assert_eq!(c.sweep().absolute_lifetime, c.absolute_lifetime);
        assert_eq!(c.max_per_user.max, 5);
        assert_eq!(c.max_per_user.policy, crate::store::CapPolicy::Refuse);
        let c = cfg(&[("SESSIONS_ABSOLUTE_LIFETIME", "0")]).unwrap();
        assert_eq!(c.absolute_lifetime, None, "0 means none");
        for (var, val) in [
            ("SESSIONS_ABSOLUTE_LIFETIME", "forever"),
            ("SESSIONS_MAX_PER_USER", "-1"),
            ("SESSIONS_MAX_PER_USER_POLICY", "lru"),
        ] {
            assert_eq!(cfg(&[(var, val)]).unwrap_err().variable, var);
        }
    }

    /// Every row of the table is read (with every branch taken: sentinel mode, TLS
    /// files, the optional numbers set), and nothing outside the table is.
    #[test]
    fn reads_every_setting_of_the_table_and_nothing_else() {
        let src = Recording::new(HashMap::from([
            ("REDIS_URL", "rediss://s1:26379,rediss://s2:26379"),
            ("SESSIONS_REDIS_MODE", "sentinel"),
            ("SESSIONS_REDIS_SENTINEL_MASTER", "mymaster"),
            ("SESSIONS_REDIS_CA_FILE", "/etc/hostname"),
            ("SESSIONS_REDIS_CLIENT_CERT_FILE", "/etc/hostname"),
            ("SESSIONS_REDIS_CLIENT_KEY_FILE", "/etc/hostname"),
            ("SESSIONS_REDIS_CONNECTIONS", "2"),
            ("SESSIONS_WORKER_THREADS", "2"),
        ]));
        let c = Config::from_source(&src).unwrap();
        assert_eq!((c.redis_connections, c.worker_threads), (2, Some(2)));
        let asked = src.asked();
        for s in ALL {
            assert!(
                asked.iter().any(|a| a == s.name),
                "{} is never read",
                s.name
            );
        }
        for a in &asked {
            assert!(
                ALL.iter().any(|s| s.name == a),
                "{a} is read but not in the table"
            );
        }
    }

    /// Setting a variable to its documented default changes nothing: the defaults
    /// parse, and they are the values the reader uses.
    #[test]
    fn documented_defaults_are_the_defaults() {
        let implicit = format!("{:?}", cfg(&[]).unwrap());
        for s in ALL {
            if let DefaultValue::Literal(v) = s.default {
                let explicit = cfg(&[(s.name, v)]).unwrap_or_else(|e| panic!("{e}"));
                assert_eq!(format!("{explicit:?}"), implicit, "{}={v}", s.name);
            }
        }
    }

    /// Each kind's reader turns a bad value into an error naming the variable.
    #[test]
    fn every_checked_setting_refuses_a_bad_value() {
        for s in ALL {
            let bad = match s.kind {
                Kind::Text | Kind::Secret | Kind::Urls => continue,
                Kind::Number { max, .. } => (max + 1).to_string(),
                Kind::Size { .. } => "1".into(),
                Kind::File => "/nonexistent/file.pem".into(),
                Kind::LogFilter => "sessions=loud".into(),
                _ => "not-a-value".into(),
            };
            let err = cfg(&[("REDIS_URL", "rediss://h"), (s.name, &bad)]).unwrap_err();
            assert_eq!(err.variable, s.name, "{}={bad}: {err}", s.name);
        }
    }

    #[test]
    fn parses_values() {
        let c = cfg(&[
            ("SESSIONS_LISTEN", "127.0.0.1:1"),
            ("REDIS_URL", "redis://:secret@localhost:6379/0"),
            ("SESSIONS_IDLE_TIMEOUT", "30m"),
            ("SESSIONS_RETENTION", "0"),
            ("SESSIONS_MAX_DATA_BYTES", "1KiB"),
            ("SESSIONS_REUSE", "no"),
            ("SESSIONS_LOG_FORMAT", "json"),
            ("SESSIONS_WORKER_THREADS", "1"),
        ])
        .unwrap();
        assert_eq!(c.listen.port(), 1);
        assert_eq!(c.worker_threads, Some(1));
        assert_eq!(c.idle_timeout, Duration::from_secs(1800));
        assert_eq!(c.retention, None);
        assert_eq!(c.max_data_bytes, 1024);
        assert!(!c.reuse);
        assert_eq!(c.log_format, LogFormat::Json);
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, val) in [
            ("SESSIONS_LISTEN", "nope"),
            ("SESSIONS_MAX_TAKE", "0"),
            ("SESSIONS_IDLE_TIMEOUT", "soon"),
            ("SESSIONS_KEY_PREFIX", "a{b}"),
            ("REDIS_URL", "http://x"),
            ("SESSIONS_REUSE", "maybe"),
            ("SESSIONS_LOG_FORMAT", "xml"),
            ("SESSIONS_MAX_LINE_BYTES", "2048"),
            ("SESSIONS_WORKER_THREADS", "0"),
            ("SESSIONS_KEY_PREFIX", &*"p".repeat(129)),
            ("SESSIONS_REDIS_WAIT_REPLICAS", "-1"),
        ] {
            let err = cfg(&[(var, val)]).unwrap_err();
            assert_eq!(err.variable, var, "{err}");
            assert!(err.to_string().contains(var));
        }
    }

    #[test]
    fn redis_topologies() {
        let c = cfg(&[("REDIS_URL", "redis://h:6379")]).unwrap();
        assert_eq!(c.redis_topology, Topology::Standalone);
        assert_eq!(c.redis_wait_replicas, 0);
        assert_eq!(c.redis_connections, 1, "one shared connection without WAIT");
        let c = cfg(&[
            ("REDIS_URL", "redis://a:7000, redis://b:7001"),
            ("SESSIONS_REDIS_MODE", "cluster"),
            ("SESSIONS_REDIS_WAIT_REPLICAS", "1"),
        ])
        .unwrap();
        assert_eq!(c.redis_connections, 4, "WAIT blocks its connection");
        assert_eq!(c.redis_topology, Topology::Cluster);
        assert_eq!(c.redis_wait_replicas, 1);
        let c = cfg(&[
            ("REDIS_URL", "redis://:spw@s1:26379,redis://:spw@s2:26379"),
            ("SESSIONS_REDIS_MODE", "Sentinel"),
            ("SESSIONS_REDIS_SENTINEL_MASTER", "mymaster"),
            ("REDIS_USERNAME", "app"),
            ("REDIS_PASSWORD", "datapw"),
            ("REDIS_SENTINEL_PASSWORD", "sentpw"),
        ])
        .unwrap();
        assert_eq!(
            c.redis_topology,
            Topology::Sentinel {
                master: "mymaster".into()
            }
        );
        assert_eq!(c.redis_auth.username.as_deref(), Some("app"));
        assert_eq!(
            c.redis_auth.password.as_ref().map(Secret::expose),
            Some("datapw")
        );
        assert_eq!(
            c.redis_sentinel_auth.password.as_ref().map(Secret::expose),
            Some("sentpw")
        );
        // Passwords never show in a printed configuration.
        let printed = format!("{c:?}");
        assert!(!printed.contains("datapw") && !printed.contains("sentpw"));
    }
}
