//! Settings: every knob the service reads from its environment, with defaults,
//! parsing and validation. An invalid value stops the start with a message naming
//! the variable. Read through [`Source`] so tests can pass a map.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::store::redis::{Credentials, Secret, Topology};
pub use crate::telemetry::LogFormat;

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl Source for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

impl Source for HashMap<&str, &str> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).map(|s| s.to_string())
    }
}

/// A setting that could not be used, naming the variable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every setting of the service.
#[derive(Debug, Clone)]
pub struct Config {
    /// `SESSIONS_LISTEN`: the Seneca TCP listener.
    pub listen: SocketAddr,
    /// `SESSIONS_ADMIN_LISTEN`: the admin HTTP listener (/metrics, /live, /ready).
    pub admin_listen: SocketAddr,
    /// `REDIS_URL`: unset means the embedded in-process store. One URL in standalone
    /// mode; seed nodes (cluster) or sentinels (sentinel), separated by commas.
    pub redis_url: Option<String>,
    /// `SESSIONS_REDIS_MODE` (`standalone`, `cluster`, `sentinel`), with
    /// `SESSIONS_REDIS_SENTINEL_MASTER` for sentinel.
    pub redis_topology: Topology,
    /// `REDIS_USERNAME` / `REDIS_PASSWORD`: the data nodes' ACL user and password,
    /// overriding those in `REDIS_URL`. Like `REDIS_URL`, and unlike the `SESSIONS_*`
    /// settings, these are credentials, meant to come from a secret store.
    pub redis_auth: Credentials,
    /// `REDIS_SENTINEL_USERNAME` / `REDIS_SENTINEL_PASSWORD`: the sentinels' user and
    /// password, overriding those in the sentinel URLs.
    pub redis_sentinel_auth: Credentials,
    /// `SESSIONS_REDIS_CA_FILE`: PEM CA certificates trusted for `rediss://` instead of
    /// the system roots.
    pub redis_ca_file: Option<PathBuf>,
    /// `SESSIONS_REDIS_CLIENT_CERT_FILE` / `SESSIONS_REDIS_CLIENT_KEY_FILE`: PEM client
    /// certificate and key for Redis servers that require them (mutual TLS).
    pub redis_client_cert_file: Option<PathBuf>,
    pub redis_client_key_file: Option<PathBuf>,
    /// `SESSIONS_REDIS_WAIT_REPLICAS`: acknowledge a write only once this many
    /// replicas have it (Redis WAIT); 0 does not wait.
    pub redis_wait_replicas: u32,
    /// `SESSIONS_KEY_PREFIX`: prefix of every Redis key.
    pub key_prefix: String,
    /// `SESSIONS_REDIS_CONNECTIONS`: pipelined Redis connections per replica. Default
    /// 1: every request of the replica shares it, so requests arriving together go
    /// to Redis in one write (docs/benchmarks.md). With WAIT the default is 4: a WAIT
    /// holds its connection until the replicas acknowledge, and everything queued
    /// behind it waits too.
    pub redis_connections: usize,
    /// `SESSIONS_REQUEST_TIMEOUT`: bound on one request's store work.
    pub request_timeout: Duration,
    /// `SESSIONS_MAX_LINE_BYTES`: longest request line accepted.
    pub max_line_bytes: usize,
    /// `SESSIONS_MAX_DATA_BYTES`: largest `data` or `user` (compact JSON bytes).
    pub max_data_bytes: usize,
    /// `SESSIONS_MAX_FIELD_BYTES`: longest user_id, user_name, address, client, id.
    pub max_field_bytes: usize,
    /// `SESSIONS_MAX_CONNECTIONS`: concurrent client connections; more wait in the backlog.
    pub max_connections: usize,
    /// `SESSIONS_WORKER_THREADS`: threads running the requests; unset, one per CPU
    /// the process may use (cgroup limits included, as the runtime counts them).
    pub worker_threads: Option<usize>,
    /// `SESSIONS_MAX_IN_FLIGHT`: requests in progress per connection before reading pauses.
    pub max_in_flight: usize,
    /// `SESSIONS_MAX_REQUEST_MEMORY`: memory all requests in progress and replies not
    /// yet written may reserve together; past it connections pause reading.
    pub max_request_memory: usize,
    /// `SESSIONS_MAX_CONN_REQUEST_MEMORY`: the same for one connection.
    pub max_conn_request_memory: usize,
    /// `SESSIONS_MAX_TAKE`: the largest page get_sessions returns.
    pub max_take: u64,
    /// `SESSIONS_REUSE`: open_session reuses the active session of the same
    /// user, address and client.
    pub reuse: bool,
    /// `SESSIONS_IDLE_TIMEOUT`: an active session expires this long after its last
    /// request_time.
    pub idle_timeout: Duration,
    /// `SESSIONS_ABSOLUTE_LIFETIME`: an active session expires this long after its
    /// open_time however busy it is; `None` (configured as 0): no such limit.
    pub absolute_lifetime: Option<Duration>,
    /// `SESSIONS_MAX_PER_USER` and `SESSIONS_MAX_PER_USER_POLICY`: the most active
    /// sessions one user may have (0: no cap), and what a new one past it does.
    pub max_per_user: crate::store::SessionCap,
    /// `SESSIONS_SWEEP_INTERVAL`: how often each replica sweeps (with jitter).
    pub sweep_interval: Duration,
    /// `SESSIONS_RETENTION`: how long closed sessions stay; `None` keeps them forever.
    pub retention: Option<Duration>,
    /// `SESSIONS_SWEEP_BATCH`: sessions per sweep script call.
    pub sweep_batch: usize,
    /// `SESSIONS_SWEEP_MAX_BATCHES`: sweep script calls per bucket in one run.
    pub sweep_max_batches: usize,
    /// `SESSIONS_SHUTDOWN_GRACE`: how long in-flight requests may finish at shutdown.
    pub shutdown_grace: Duration,
    /// `SESSIONS_LOG_FORMAT`: `text` or `json`.
    pub log_format: LogFormat,
    /// `SESSIONS_LOG`: tracing filter directive.
    pub log_filter: String,
}

impl Config {
    /// Reads every setting from `src`, applying defaults and validating.
    pub fn from_source(src: &dyn Source) -> Result<Config, ConfigError> {
        let r = Reader { src };
        let key_prefix = r.string("SESSIONS_KEY_PREFIX", "sessions");
        if key_prefix.is_empty() || key_prefix.contains(['{', '}']) || key_prefix.len() > 128 {
            return Err(ConfigError {
                variable: "SESSIONS_KEY_PREFIX",
                message: "must be 1 to 128 characters without '{' or '}'".into(),
            });
        }
        let redis_url = r.src.get("REDIS_URL").filter(|s| !s.trim().is_empty());
        let redis = r.redis(redis_url.as_deref())?;
        let retention = r.duration("SESSIONS_RETENTION", Duration::from_secs(30 * 86_400))?;
        let absolute_lifetime = r.duration("SESSIONS_ABSOLUTE_LIFETIME", Duration::ZERO)?;
        let cfg = Config {
            listen: r.addr("SESSIONS_LISTEN", "0.0.0.0:8807")?,
            admin_listen: r.addr("SESSIONS_ADMIN_LISTEN", "0.0.0.0:9807")?,
            redis_url,
            redis_topology: redis.topology,
            redis_auth: redis.auth,
            redis_sentinel_auth: redis.sentinel_auth,
            redis_ca_file: redis.ca_file,
            redis_client_cert_file: redis.client_cert_file,
            redis_client_key_file: redis.client_key_file,
            redis_wait_replicas: redis.wait_replicas,
            key_prefix,
            redis_connections: r.number(
                "SESSIONS_REDIS_CONNECTIONS",
                if redis.wait_replicas > 0 { 4 } else { 1 },
                1,
                256,
            )?,
            request_timeout: r.duration("SESSIONS_REQUEST_TIMEOUT", Duration::from_secs(2))?,
            max_line_bytes: r.size("SESSIONS_MAX_LINE_BYTES", 256 << 10, 1024)?,
            max_data_bytes: r.size("SESSIONS_MAX_DATA_BYTES", 64 << 10, 16)?,
            max_field_bytes: r.size("SESSIONS_MAX_FIELD_BYTES", 1024, 16)?,
            max_connections: r.number("SESSIONS_MAX_CONNECTIONS", 256, 1, 1_000_000)?,
            worker_threads: match r.raw("SESSIONS_WORKER_THREADS") {
                None => None,
                Some(_) => Some(r.number("SESSIONS_WORKER_THREADS", 1, 1, 1024)?),
            },
            max_in_flight: r.number("SESSIONS_MAX_IN_FLIGHT", 1024, 1, 1_000_000)?,
            max_request_memory: r.size("SESSIONS_MAX_REQUEST_MEMORY", 64 << 20, 64 << 10)?,
            max_conn_request_memory: r.size(
                "SESSIONS_MAX_CONN_REQUEST_MEMORY",
                16 << 20,
                64 << 10,
            )?,
            max_take: r.number("SESSIONS_MAX_TAKE", 100, 1, 100_000)? as u64,
            reuse: r.boolean("SESSIONS_REUSE", true)?,
            idle_timeout: r.duration("SESSIONS_IDLE_TIMEOUT", Duration::from_secs(86_400))?,
            absolute_lifetime: (!absolute_lifetime.is_zero()).then_some(absolute_lifetime),
            max_per_user: crate::store::SessionCap {
                max: r.number("SESSIONS_MAX_PER_USER", 0, 0, 1_000_000)? as u32,
                policy: match r
                    .string("SESSIONS_MAX_PER_USER_POLICY", "close_oldest")
                    .as_str()
                {
                    "close_oldest" => crate::store::CapPolicy::CloseOldest,
                    "refuse" => crate::store::CapPolicy::Refuse,
                    other => {
                        return Err(ConfigError {
                            variable: "SESSIONS_MAX_PER_USER_POLICY",
                            message: format!("{other:?} is not close_oldest or refuse"),
                        })
                    }
                },
            },
            sweep_interval: r.duration("SESSIONS_SWEEP_INTERVAL", Duration::from_secs(900))?,
            retention: (!retention.is_zero()).then_some(retention),
            sweep_batch: r.number("SESSIONS_SWEEP_BATCH", 500, 1, 100_000)?,
            sweep_max_batches: r.number("SESSIONS_SWEEP_MAX_BATCHES", 20, 1, 100_000)?,
            shutdown_grace: r.duration("SESSIONS_SHUTDOWN_GRACE", Duration::from_secs(20))?,
            log_format: r.string("SESSIONS_LOG_FORMAT", "text").parse().map_err(
                |e: crate::telemetry::TelemetryError| ConfigError {
                    variable: "SESSIONS_LOG_FORMAT",
                    message: e.to_string(),
                },
            )?,
            log_filter: r.string("SESSIONS_LOG", "info"),
        };
        if let Err(e) = crate::telemetry::filter(Some(&cfg.log_filter)) {
            return Err(ConfigError {
                variable: "SESSIONS_LOG",
                message: e.to_string(),
            });
        }
        for (variable, d) in [
            ("SESSIONS_REQUEST_TIMEOUT", cfg.request_timeout),
            ("SESSIONS_IDLE_TIMEOUT", cfg.idle_timeout),
            ("SESSIONS_SWEEP_INTERVAL", cfg.sweep_interval),
        ] {
            if d.is_zero() {
                return Err(ConfigError {
                    variable,
                    message: "must be greater than zero".into(),
                });
            }
        }
        if cfg.max_line_bytes <= cfg.max_data_bytes * 2 {
            return Err(ConfigError {
                variable: "SESSIONS_MAX_LINE_BYTES",
                message: "must be more than twice SESSIONS_MAX_DATA_BYTES so a request with data \
                          at the limit fits on a line"
                    .into(),
            });
        }
        Ok(cfg)
    }

    /// Reads the process environment.
    pub fn from_env() -> Result<Config, ConfigError> {
        Self::from_source(&Env)
    }
}

struct Reader<'a> {
    src: &'a dyn Source,
}

impl Reader<'_> {
    fn raw(&self, name: &str) -> Option<String> {
        self.src
            .get(name)
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    }

    fn string(&self, name: &str, default: &str) -> String {
        self.raw(name).unwrap_or_else(|| default.to_string())
    }

    fn addr(&self, name: &'static str, default: &str) -> Result<SocketAddr, ConfigError> {
        let v = self.string(name, default);
        v.parse().map_err(|_| ConfigError {
            variable: name,
            message: format!("{v:?} is not an address like 0.0.0.0:8807"),
        })
    }

    fn number(
        &self,
        name: &'static str,
        default: usize,
        min: usize,
        max: usize,
    ) -> Result<usize, ConfigError> {
        let Some(v) = self.raw(name) else {
            return Ok(default);
        };
        match v.parse::<usize>() {
            Ok(n) if (min..=max).contains(&n) => Ok(n),
            _ => Err(ConfigError {
                variable: name,
                message: format!("{v:?} is not a whole number from {min} to {max}"),
            }),
        }
    }

    fn size(&self, name: &'static str, default: usize, min: usize) -> Result<usize, ConfigError> {
        let Some(v) = self.raw(name) else {
            return Ok(default);
        };
        let bad = || ConfigError {
            variable: name,
            message: format!(
                "{v:?} is not a size in bytes of at least {min} (e.g. 65536, 64KiB, 1MiB)"
            ),
        };
        let (digits, mult) = split_unit(
            &v,
            &[
                ("KiB", 1 << 10),
                ("MiB", 1 << 20),
                ("GiB", 1 << 30),
                ("B", 1),
            ],
        );
        let n = digits.parse::<usize>().map_err(|_| bad())?;
        let n = n.checked_mul(mult).ok_or_else(bad)?;
        if n < min {
            return Err(bad());
        }
        Ok(n)
    }

    fn duration(&self, name: &'static str, default: Duration) -> Result<Duration, ConfigError> {
        let Some(v) = self.raw(name) else {
            return Ok(default);
        };
        parse_duration(&v).ok_or_else(|| ConfigError {
            variable: name,
            message: format!("{v:?} is not a duration (e.g. 500ms, 30s, 15m, 24h, 30d; a bare number is seconds)"),
        })
    }

    fn boolean(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(v) = self.raw(name) else {
            return Ok(default);
        };
        match v.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError {
                variable: name,
                message: format!("{v:?} is not true or false"),
            }),
        }
    }
}

/// The Redis connection settings besides the URL, read together because they are
/// checked against each other and against the URL.
struct RedisSettings {
    topology: Topology,
    auth: Credentials,
    sentinel_auth: Credentials,
    ca_file: Option<PathBuf>,
    client_cert_file: Option<PathBuf>,
    client_key_file: Option<PathBuf>,
    wait_replicas: u32,
}

impl Reader<'_> {
    fn redis(&self, url: Option<&str>) -> Result<RedisSettings, ConfigError> {
        let err = |variable: &'static str, message: String| ConfigError { variable, message };
        let mode = self.string("SESSIONS_REDIS_MODE", "standalone");
        let topology = match mode.to_ascii_lowercase().as_str() {
            "standalone" => Topology::Standalone,
            "cluster" => Topology::Cluster,
            "sentinel" => Topology::Sentinel {
                master: self.raw("SESSIONS_REDIS_SENTINEL_MASTER").ok_or_else(|| {
                    err(
                        "SESSIONS_REDIS_SENTINEL_MASTER",
                        "is required when SESSIONS_REDIS_MODE is sentinel (the name the \
                         sentinels monitor the primary under)"
                            .into(),
                    )
                })?,
            },
            _ => {
                return Err(err(
                    "SESSIONS_REDIS_MODE",
                    format!("{mode:?} is not standalone, cluster or sentinel"),
                ))
            }
        };
        let urls: Vec<&str> = url
            .map(|u| crate::store::redis::split_urls(u).collect())
            .unwrap_or_default();
        if url.is_some() && urls.is_empty() {
            return Err(err("REDIS_URL", "holds no URL".into()));
        }
        if url.is_none() && topology != Topology::Standalone {
            return Err(err(
                "REDIS_URL",
                format!("is required when SESSIONS_REDIS_MODE is {mode}"),
            ));
        }
        let several = topology != Topology::Standalone;
        if urls.len() > 1 && !several {
            return Err(err(
                "REDIS_URL",
                "holds several URLs; set SESSIONS_REDIS_MODE to cluster or sentinel".into(),
            ));
        }
        for u in &urls {
            let unix = u.starts_with("unix://") || u.starts_with("redis+unix://");
            if !(u.starts_with("redis://") || u.starts_with("rediss://") || (unix && !several)) {
                let allowed = if several {
                    "redis:// or rediss://"
                } else {
                    "redis://, rediss:// or unix://"
                };
                return Err(err(
                    "REDIS_URL",
                    format!("every URL must start with {allowed}"),
                ));
            }
            crate::store::redis::check_url(u).map_err(|m| err("REDIS_URL", m))?;
        }
        let tls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
        if tls != 0 && tls != urls.len() {
            return Err(err(
                "REDIS_URL",
                "mixes rediss:// and redis://; use one for every node".into(),
            ));
        }
        let credentials = |user: &str, password: &str| Credentials {
            username: self.raw(user),
            password: self
                .src
                .get(password)
                .filter(|p| !p.is_empty())
                .map(Secret::new),
        };
        let file = |name: &'static str| -> Result<Option<PathBuf>, ConfigError> {
            let Some(path) = self.raw(name).map(PathBuf::from) else {
                return Ok(None);
            };
            match std::fs::File::open(&path) {
                Ok(_) => Ok(Some(path)),
                Err(e) => Err(err(name, format!("cannot read {}: {e}", path.display()))),
            }
        };
        let ca_file = file("SESSIONS_REDIS_CA_FILE")?;
        let client_cert_file = file("SESSIONS_REDIS_CLIENT_CERT_FILE")?;
        let client_key_file = file("SESSIONS_REDIS_CLIENT_KEY_FILE")?;
        match (&client_cert_file, &client_key_file) {
            (Some(_), None) => {
                return Err(err(
                    "SESSIONS_REDIS_CLIENT_KEY_FILE",
                    "is required with SESSIONS_REDIS_CLIENT_CERT_FILE".into(),
                ))
            }
            (None, Some(_)) => {
                return Err(err(
                    "SESSIONS_REDIS_CLIENT_CERT_FILE",
                    "is required with SESSIONS_REDIS_CLIENT_KEY_FILE".into(),
                ))
            }
            _ => {}
        }
        for (variable, set) in [
            ("SESSIONS_REDIS_CA_FILE", ca_file.is_some()),
            (
                "SESSIONS_REDIS_CLIENT_CERT_FILE",
                client_cert_file.is_some(),
            ),
        ] {
            if set && tls == 0 {
                return Err(err(
                    variable,
                    "is set, but REDIS_URL does not use TLS (rediss://)".into(),
                ));
            }
        }
        Ok(RedisSettings {
            topology,
            auth: credentials("REDIS_USERNAME", "REDIS_PASSWORD"),
            sentinel_auth: credentials("REDIS_SENTINEL_USERNAME", "REDIS_SENTINEL_PASSWORD"),
            ca_file,
            client_cert_file,
            client_key_file,
            wait_replicas: self.number("SESSIONS_REDIS_WAIT_REPLICAS", 0, 0, 64)? as u32,
        })
    }
}

fn split_unit<'a>(v: &'a str, units: &[(&str, usize)]) -> (&'a str, usize) {
    for (suffix, mult) in units {
        if let Some(d) = v.strip_suffix(suffix) {
            return (d.trim(), *mult);
        }
    }
    (v, 1)
}

/// Parses `500ms`, `30s`, `15m`, `24h`, `30d`, or a bare number of seconds.
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let (digits, unit_ms): (&str, u64) = if let Some(d) = v.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = v.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = v.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = v.strip_suffix('h') {
        (d, 3_600_000)
    } else if let Some(d) = v.strip_suffix('d') {
        (d, 86_400_000)
    } else {
        (v, 1000)
    };
    let n: u64 = digits.trim().parse().ok()?;
    n.checked_mul(unit_ms).map(Duration::from_millis)
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
    use super::*;

    fn cfg(pairs: &[(&'static str, &'static str)]) -> Result<Config, ConfigError> {
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

    #[test]
    fn invalid_redis_settings_name_the_variable() {
        for (pairs, var) in [
            (
                &[("REDIS_URL", "redis://h"), ("SESSIONS_REDIS_MODE", "ring")][..],
                "SESSIONS_REDIS_MODE",
            ),
            (
                &[
                    ("REDIS_URL", "redis://h"),
                    ("SESSIONS_REDIS_MODE", "sentinel"),
                ][..],
                "SESSIONS_REDIS_SENTINEL_MASTER",
            ),
            (&[("SESSIONS_REDIS_MODE", "cluster")][..], "REDIS_URL"),
            (&[("REDIS_URL", "redis://a,redis://b")][..], "REDIS_URL"),
            (
                &[
                    ("REDIS_URL", "rediss://a,redis://b"),
                    ("SESSIONS_REDIS_MODE", "cluster"),
                ][..],
                "REDIS_URL",
            ),
            (
                &[
                    ("REDIS_URL", "unix:///tmp/r.sock"),
                    ("SESSIONS_REDIS_MODE", "cluster"),
                ][..],
                "REDIS_URL",
            ),
            (&[("REDIS_URL", "redis://h:notaport")][..], "REDIS_URL"),
            (
                &[
                    ("REDIS_URL", "redis://h"),
                    ("SESSIONS_REDIS_CA_FILE", "/etc/hostname"),
                ][..],
                "SESSIONS_REDIS_CA_FILE",
            ),
            (
                &[
                    ("REDIS_URL", "rediss://h"),
                    ("SESSIONS_REDIS_CA_FILE", "/nonexistent/ca.pem"),
                ][..],
                "SESSIONS_REDIS_CA_FILE",
            ),
            (
                &[
                    ("REDIS_URL", "rediss://h"),
                    ("SESSIONS_REDIS_CLIENT_CERT_FILE", "/etc/hostname"),
                ][..],
                "SESSIONS_REDIS_CLIENT_KEY_FILE",
            ),
            (
                &[
                    ("REDIS_URL", "redis://h"),
                    ("SESSIONS_REDIS_WAIT_REPLICAS", "-1"),
                ][..],
                "SESSIONS_REDIS_WAIT_REPLICAS",
            ),
        ] {
            let err = cfg(pairs).unwrap_err();
            assert_eq!(err.variable, var, "{pairs:?}: {err}");
        }
        // A URL's password never shows in the error.
        let err = cfg(&[("REDIS_URL", "redis://u:hunter2@h:notaport")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("15m"), Some(Duration::from_secs(900)));
        assert_eq!(parse_duration("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_duration("x"), None);
    }
}
