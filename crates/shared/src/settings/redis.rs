//! The Redis settings besides the key prefix, read together because they are checked
//! against each other: the mode against the number and schemes of the URLs, the TLS
//! files against the URLs using TLS, a client certificate against its key.

use std::path::PathBuf;

use super::reader::{invalid, Reader};
use super::settings::{
    REDIS_CA_FILE, REDIS_CLIENT_CERT_FILE, REDIS_CLIENT_KEY_FILE, REDIS_MODE, REDIS_PASSWORD,
    REDIS_SENTINEL_MASTER, REDIS_SENTINEL_PASSWORD, REDIS_SENTINEL_USERNAME, REDIS_URL,
    REDIS_USERNAME, REDIS_WAIT_REPLICAS,
};
use super::{ConfigError, Credentials, Topology};

pub(super) struct RedisSettings {
    pub url: Option<String>,
    pub topology: Topology,
    pub auth: Credentials,
    pub sentinel_auth: Credentials,
    pub tls: TlsFiles,
    pub wait_replicas: u32,
}

/// The PEM files for `rediss://`, each opened once to check it can be read.
pub(super) struct TlsFiles {
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

pub(super) fn read(r: &Reader) -> Result<RedisSettings, ConfigError> {
    let topology = topology(r)?;
    let url = r.urls(&REDIS_URL);
    let tls = urls_use_tls(url.as_deref(), &topology)?;
    Ok(RedisSettings {
        url,
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
        wait_replicas: r.number(&REDIS_WAIT_REPLICAS)? as u32,
    })
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
    let urls: Vec<&str> = crate::store::redis::split_urls(url).collect();
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
        crate::store::redis::check_url(u).map_err(bad)?;
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
