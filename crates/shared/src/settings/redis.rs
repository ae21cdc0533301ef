//! The Redis settings: their rows of the settings table — where Redis is (URL list,
//! mode, the Sentinel master name), who to be (credentials), the TLS files, and the
//! key prefix — and reading them together, because they are checked against each
//! other: the mode against the number and schemes of the URLs, the TLS files against
//! the URLs using TLS, a client certificate against its key. The service and
//! `sessions check` both read them here, so both reach the same Redis and keys; the
//! service's table lists these rows among its own.

use std::path::{Path, PathBuf};

use super::reader::{invalid, Reader};
use super::DefaultValue::{Literal, Unset};
use super::Kind::{Choice, File, Secret, Text, Urls};
use super::{ConfigError, Source};
use crate::connect::{check_url, split_urls, Credentials, TlsPem, Topology};
use crate::keys::check_prefix;

crate::settings_table! {
    /// Every Redis row, in the order the service's table lists them.
    REDIS:
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
}

/// The Redis settings, read and checked.
#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// [`REDIS_URL`]: `None` when unset (the service then keeps sessions in itself).
    pub url: Option<String>,
    /// [`KEY_PREFIX`]
    pub prefix: String,
    /// [`REDIS_MODE`], with [`REDIS_SENTINEL_MASTER`] for sentinel.
    pub topology: Topology,
    /// [`REDIS_USERNAME`], [`REDIS_PASSWORD`].
    pub auth: Credentials,
    /// [`REDIS_SENTINEL_USERNAME`], [`REDIS_SENTINEL_PASSWORD`].
    pub sentinel_auth: Credentials,
    /// [`REDIS_CA_FILE`], [`REDIS_CLIENT_CERT_FILE`], [`REDIS_CLIENT_KEY_FILE`].
    pub tls: TlsFiles,
}

/// The PEM files for `rediss://`, each opened once to check it can be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsFiles {
    /// The files' contents; the error names the file that cannot be read.
    pub fn read(&self) -> Result<TlsPem, String> {
        let read = |path: &Option<PathBuf>| {
            path.as_deref()
                .map(|p: &Path| {
                    std::fs::read(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
                })
                .transpose()
        };
        Ok(TlsPem {
            ca: read(&self.ca)?,
            client_cert: read(&self.client_cert)?,
            client_key: read(&self.client_key)?,
        })
    }
}

impl RedisSettings {
    /// Reads the Redis settings from `src`.
    pub fn from_source(src: &dyn Source) -> Result<RedisSettings, ConfigError> {
        read(&Reader::new(src))
    }
}

/// Reads the Redis settings, the key prefix first.
pub fn read(r: &Reader) -> Result<RedisSettings, ConfigError> {
    let prefix = key_prefix(r)?;
    let topology = topology(r)?;
    let url = r.urls(&REDIS_URL);
    let tls = urls_use_tls(url.as_deref(), &topology)?;
    Ok(RedisSettings {
        url,
        prefix,
        topology,
        auth: Credentials {
            username: r.text(&REDIS_USERNAME),
            password: r.secret(&REDIS_PASSWORD),
        },
        sentinel_auth: Credentials {
            username: r.text(&REDIS_SENTINEL_USERNAME),
            password: r.secret(&REDIS_SENTINEL_PASSWORD),
        },
        tls: tls_files(r, tls)?,
    })
}

/// `SESSIONS_KEY_PREFIX`, held to the rule for prefixes.
fn key_prefix(r: &Reader) -> Result<String, ConfigError> {
    let prefix = r.text(&KEY_PREFIX).unwrap_or_default();
    check_prefix(&prefix).map_err(|rule| invalid(&KEY_PREFIX, rule))?;
    Ok(prefix)
}

/// `SESSIONS_REDIS_MODE`, with the master name sentinel mode needs.
fn topology(r: &Reader) -> Result<Topology, ConfigError> {
    Ok(match r.choice(&REDIS_MODE)? {
        "cluster" => Topology::Cluster,
        "sentinel" => Topology::Sentinel {
            master: r.text(&REDIS_SENTINEL_MASTER).ok_or_else(|| {
                invalid(
                    &REDIS_SENTINEL_MASTER,
                    format!(
                        "is required when {} is sentinel (the name the sentinels monitor \
                         the primary under)",
                        REDIS_MODE.name
                    ),
                )
            })?,
        },
        _ => Topology::Standalone,
    })
}

/// Checks `REDIS_URL` against the topology (how many URLs, which schemes) and says
/// whether its URLs use TLS: all of them do or none does.
fn urls_use_tls(url: Option<&str>, topology: &Topology) -> Result<bool, ConfigError> {
    let bad = |message: String| invalid(&REDIS_URL, message);
    let several = *topology != Topology::Standalone;
    let Some(url) = url else {
        if several {
            return Err(bad(format!(
                "is required when {} is {}",
                REDIS_MODE.name,
                mode_name(topology)
            )));
        }
        return Ok(false);
    };
    let urls: Vec<&str> = split_urls(url).collect();
    if urls.is_empty() {
        return Err(bad("holds no URL".into()));
    }
    if urls.len() > 1 && !several {
        return Err(bad(format!(
            "holds several URLs; set {} to cluster or sentinel",
            REDIS_MODE.name
        )));
    }
    for u in &urls {
        let unix = u.starts_with("unix://") || u.starts_with("redis+unix://");
        if !(u.starts_with("redis://") || u.starts_with("rediss://") || (unix && !several)) {
            let allowed = if several {
                "redis:// or rediss://"
            } else {
                "redis://, rediss:// or unix://"
            };
            return Err(bad(format!("every URL must start with {allowed}")));
        }
        check_url(u).map_err(bad)?;
    }
    let tls = urls.iter().filter(|u| u.starts_with("rediss://")).count();
    if tls != 0 && tls != urls.len() {
        return Err(bad(
            "mixes rediss:// and redis://; use one for every node".into()
        ));
    }
    Ok(tls != 0)
}

/// The mode as `SESSIONS_REDIS_MODE` spells it.
fn mode_name(topology: &Topology) -> &'static str {
    match topology {
        Topology::Standalone => "standalone",
        Topology::Cluster => "cluster",
        Topology::Sentinel { .. } => "sentinel",
    }
}

/// The CA and client certificate files: only with TLS, and a certificate only with
/// its key.
fn tls_files(r: &Reader, tls: bool) -> Result<TlsFiles, ConfigError> {
    let files = TlsFiles {
        ca: r.file(&REDIS_CA_FILE)?,
        client_cert: r.file(&REDIS_CLIENT_CERT_FILE)?,
        client_key: r.file(&REDIS_CLIENT_KEY_FILE)?,
    };
    let lacking = match (&files.client_cert, &files.client_key) {
        (Some(_), None) => Some((&REDIS_CLIENT_KEY_FILE, &REDIS_CLIENT_CERT_FILE)),
        (None, Some(_)) => Some((&REDIS_CLIENT_CERT_FILE, &REDIS_CLIENT_KEY_FILE)),
        _ => None,
    };
    if let Some((lacking, given)) = lacking {
        return Err(invalid(lacking, format!("is required with {}", given.name)));
    }
    for (setting, set) in [
        (&REDIS_CA_FILE, files.ca.is_some()),
        (&REDIS_CLIENT_CERT_FILE, files.client_cert.is_some()),
    ] {
        if set && !tls {
            return Err(invalid(
                setting,
                format!(
                    "is set, but {} does not use TLS (rediss://)",
                    REDIS_URL.name
                ),
            ));
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::settings::Recording;

    fn cfg(pairs: &[(&str, &str)]) -> Result<RedisSettings, ConfigError> {
        let map: HashMap<&str, &str> = pairs.iter().copied().collect();
        RedisSettings::from_source(&map)
    }

    #[test]
    fn defaults() {
        let s = cfg(&[]).unwrap();
        assert_eq!(s.url, None);
        assert_eq!(s.prefix, "sessions");
        assert_eq!(s.topology, Topology::Standalone);
        assert_eq!(s.auth, Credentials::default());
        assert_eq!(s.tls, TlsFiles::default());
    }

    /// Every Redis row is read (sentinel mode and TLS files set, so every branch is
    /// taken), and nothing else is: `sessions check` needs no other setting.
    #[test]
    fn reads_every_redis_setting_and_nothing_else() {
        let src = Recording::new(HashMap::from([
            ("REDIS_URL", "rediss://s1:26379,rediss://s2:26379"),
            ("SESSIONS_REDIS_MODE", "sentinel"),
            ("SESSIONS_REDIS_SENTINEL_MASTER", "mymaster"),
            ("SESSIONS_REDIS_CA_FILE", "/etc/hostname"),
            ("SESSIONS_REDIS_CLIENT_CERT_FILE", "/etc/hostname"),
            ("SESSIONS_REDIS_CLIENT_KEY_FILE", "/etc/hostname"),
        ]));
        RedisSettings::from_source(&src).unwrap();
        let mut asked = src.asked();
        asked.sort();
        let mut rows: Vec<&str> = REDIS.iter().map(|s| s.name).collect();
        rows.sort();
        assert_eq!(asked, rows);
    }

    #[test]
    fn tls_files_are_read() {
        let files = TlsFiles {
            ca: Some("/etc/hostname".into()),
            ..TlsFiles::default()
        };
        let pem = files.read().unwrap();
        assert_eq!(pem.ca, Some(std::fs::read("/etc/hostname").unwrap()));
        assert_eq!((pem.client_cert, pem.client_key), (None, None));
        let gone = TlsFiles {
            client_key: Some("/nonexistent/key.pem".into()),
            ..TlsFiles::default()
        };
        assert!(gone.read().unwrap_err().contains("/nonexistent/key.pem"));
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
        ] {
            let err = cfg(pairs).unwrap_err();
            assert_eq!(err.variable, var, "{pairs:?}: {err}");
        }
        // A URL's password never shows in the error.
        let err = cfg(&[("REDIS_URL", "redis://u:hunter2@h:notaport")]).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
}
