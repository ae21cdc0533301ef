//! What the store is told about reaching Redis — the topology (one server, a cluster,
//! or a primary found through Sentinel), the credentials and the TLS material — and
//! how that becomes the redis crate's connection settings (which `node.rs` turns into
//! the store's own connection targets; the sentinels and `sessions check` are reached
//! through the redis crate's client). No I/O.
//!
//! Secrets are held in [`Secret`], whose `Debug` prints `***`, so an options value can
//! be logged or put in an error without leaking a password.

use std::fmt;
use std::time::Duration;

use redis::{
    Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion,
    RedisResult, TlsCertificates,
};

use crate::telemetry::mask_url;

/// How the Redis deployment is laid out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Topology {
    /// One primary at one address (possibly a name a managed service moves on
    /// failover). The URL is `redis://` or `rediss://` (TLS) or `unix://`.
    #[default]
    Standalone,
    /// Redis Cluster: the URL lists one or more seed nodes, separated by commas; the
    /// rest of the cluster is discovered from them.
    Cluster,
    /// A primary (and replicas) watched by Redis Sentinel: the URL lists the
    /// sentinels, separated by commas; the primary is asked of them by this name.
    Sentinel { master: String },
}

/// A password: `Debug` and `Display` never show it.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret itself, for handing to the Redis client only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Who to authenticate as. Set values override the user info of the URL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// ACL user (Redis 6+); none means `default`.
    pub username: Option<String>,
    pub password: Option<Secret>,
}

/// TLS material in PEM, for `rediss://` connections. Without a CA the system's roots
/// are trusted.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsPem {
    /// CA certificates to trust instead of the system roots.
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain and key, for servers that require client
    /// certificates (`tls-auth-clients yes`); both or neither.
    pub client_cert: Option<Vec<u8>>,
    pub client_key: Option<Vec<u8>>,
}

impl fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsPem")
            .field("ca", &self.ca.is_some())
            .field("client_cert", &self.client_cert.is_some())
            .field("client_key", &self.client_key.is_some())
            .finish()
    }
}

impl TlsPem {
    /// Why the material cannot be used: a CA or client certificate without any
    /// certificate in it, an unreadable key, or a certificate without its key.
    pub fn check(&self) -> Result<(), String> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs = |what: &str, pem: &[u8]| -> Result<(), String> {
            let n = CertificateDer::pem_slice_iter(pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the {what} is not PEM: {e}"))?
                .len();
            if n == 0 {
                return Err(format!("the {what} holds no PEM certificate"));
            }
            Ok(())
        };
        if let Some(ca) = &self.ca {
            certs("Redis CA file", ca)?;
        }
        match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                certs("Redis client certificate", cert)?;
                PrivateKeyDer::from_pem_slice(key)
                    .map_err(|_| "the Redis client key holds no PEM private key".to_owned())?;
            }
            (None, None) => {}
            _ => {
                return Err(
                    "a Redis client certificate needs its key, and the other way round".into(),
                )
            }
        }
        Ok(())
    }

    /// The material as the redis crate takes it; `None` when nothing is set (system
    /// roots, no client certificate).
    pub(crate) fn certificates(&self) -> Option<TlsCertificates> {
        if self.ca.is_none() && self.client_cert.is_none() {
            return None;
        }
        let client_tls = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => Some(ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            _ => None,
        };
        Some(TlsCertificates {
            client_tls,
            root_cert: self.ca.clone(),
        })
    }
}

/// How to reach Redis and name the keys.
#[derive(Clone)]
pub struct RedisOptions {
    /// Standalone: `redis://[user:password@]host:port[/db]` (or `rediss://`,
    /// `unix://`). Cluster: seed node URLs separated by commas. Sentinel: sentinel
    /// URLs separated by commas (their user info authenticates to the sentinels; the
    /// path's db number applies to the primary).
    pub url: String,
    /// Prefix of every key; must not contain `{` or `}`.
    pub prefix: String,
    /// Upper bound on every store operation, connecting included.
    pub timeout: Duration,
    /// Pipelined connections used round-robin (at least 1): to the server, to the
    /// primary Sentinel names, or to each primary of a cluster.
    pub connections: usize,
    pub topology: Topology,
    /// Authentication to the data nodes; overrides the URL's user info.
    pub auth: Credentials,
    /// Authentication to the sentinels; overrides the sentinel URLs' user info.
    pub sentinel_auth: Credentials,
    /// CA and client certificate for `rediss://`.
    pub tls: TlsPem,
    /// After every mutation, wait until this many replicas have it (Redis `WAIT`);
    /// 0 does not wait.
    pub wait_replicas: u32,
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            url: "redis://127.0.0.1:6379/".into(),
            prefix: "sessions".into(),
            timeout: Duration::from_secs(1),
            connections: 1,
            topology: Topology::Standalone,
            auth: Credentials::default(),
            sentinel_auth: Credentials::default(),
            tls: TlsPem::default(),
            wait_replicas: 0,
        }
    }
}

impl fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let urls: Vec<String> = split_urls(&self.url).map(mask_url).collect();
        f.debug_struct("RedisOptions")
            .field("url", &urls.join(","))
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connections", &self.connections)
            .field("topology", &self.topology)
            .field("auth", &self.auth)
            .field("sentinel_auth", &self.sentinel_auth)
            .field("tls", &self.tls)
            .field("wait_replicas", &self.wait_replicas)
            .finish()
    }
}

/// The URLs of a comma-separated list, trimmed, empty items skipped.
pub fn split_urls(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|u| !u.is_empty())
}

/// An invalid URL, without echoing it (it may hold a password).
fn invalid(e: redis::RedisError) -> String {
    format!("invalid Redis URL: {}", mask_url(&e.to_string()))
}

/// Connection settings of one URL with `auth` applied and RESP3 chosen. RESP3 lets a
/// redis crate connection (to a sentinel) learn that Redis went away while it is idle
/// and reconnect at once, instead of failing the next request sent on it. (The
/// store's own connection, `pipe.rs`, speaks RESP2 and notices that by reading while
/// idle.)
pub(crate) fn connection_info(url: &str, auth: &Credentials) -> Result<ConnectionInfo, String> {
    let info = url.into_connection_info().map_err(invalid)?;
    let mut settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    if let Some(user) = &auth.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &auth.password {
        settings = settings.set_password(password.expose());
    }
    Ok(info.set_redis_settings(settings))
}

/// Why a URL cannot be used (never echoing it: it may hold a password).
pub fn check_url(url: &str) -> Result<(), String> {
    connection_info(url, &Credentials::default()).map(|_| ())
}

/// Every URL of a list as connection settings; an empty list is an error.
pub(crate) fn connection_infos(
    list: &str,
    auth: &Credentials,
) -> Result<Vec<ConnectionInfo>, String> {
    let infos = split_urls(list)
        .map(|u| connection_info(u, auth))
        .collect::<Result<Vec<_>, _>>()?;
    if infos.is_empty() {
        return Err("no Redis URL given".into());
    }
    Ok(infos)
}

/// Whether the connection uses TLS.
pub(crate) fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// A client for one node, with the CA and client certificate when it uses TLS.
pub(crate) fn client(info: ConnectionInfo, tls: &TlsPem) -> RedisResult<Client> {
    match tls.certificates() {
        Some(certs) if is_tls(&info) => Client::build_with_tls(info, certs),
        _ => Client::open(info),
    }
}

/// The settings for a node found at `host:port` (a primary named by a sentinel): the
/// template's transport (TLS or not) and database, with `auth`.
pub(crate) fn node_at(
    template: &ConnectionInfo,
    host: &str,
    port: u16,
    auth: &Credentials,
) -> ConnectionInfo {
    let addr = if is_tls(template) {
        ConnectionAddr::TcpTls {
            host: host.to_owned(),
            port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(host.to_owned(), port)
    };
    let mut settings = redis::RedisConnectionInfo::default()
        .set_protocol(ProtocolVersion::RESP3)
        .set_db(template.redis_settings().db());
    if let Some(user) = &auth.username {
        settings = settings.set_username(user);
    }
    if let Some(password) = &auth.password {
        settings = settings.set_password(password.expose());
    }
    template.clone().set_addr(addr).set_redis_settings(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_secrets() {
        let opts = RedisOptions {
            url: "redis://u:hunter2@a:1,redis://u:hunter2@b:2".into(),
            auth: Credentials {
                username: Some("app".into()),
                password: Some(Secret::new("s3cr3t")),
            },
            tls: TlsPem {
                client_key: Some(b"KEY".to_vec()),
                ..TlsPem::default()
            },
            ..RedisOptions::default()
        };
        let text = format!("{opts:?}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!text.contains("s3cr3t"), "{text}");
        assert!(!text.contains("KEY"), "{text}");
        assert!(text.contains("app"), "{text}");
    }

    #[test]
    fn credentials_override_the_url() {
        let info = connection_info(
            "redis://old:pw@127.0.0.1:6380/3",
            &Credentials {
                username: Some("new".into()),
                password: Some(Secret::new("other")),
            },
        )
        .unwrap();
        assert_eq!(info.redis_settings().username(), Some("new"));
        assert_eq!(info.redis_settings().password(), Some("other"));
        assert_eq!(info.redis_settings().db(), 3);
        let kept = connection_info("redis://old:pw@h/", &Credentials::default()).unwrap();
        assert_eq!(kept.redis_settings().password(), Some("pw"));
    }

    #[test]
    fn a_discovered_node_keeps_transport_and_db_but_not_the_sentinel_password() {
        let sentinel =
            connection_info("rediss://:sentinelpw@s:26379/2", &Credentials::default()).unwrap();
        let node = node_at(
            &sentinel,
            "10.0.0.9",
            6379,
            &Credentials {
                username: None,
                password: Some(Secret::new("datapw")),
            },
        );
        assert!(is_tls(&node));
        assert_eq!(node.redis_settings().db(), 2);
        assert_eq!(node.redis_settings().password(), Some("datapw"));
        let plain = node_at(
            &connection_info("redis://s:26379", &Credentials::default()).unwrap(),
            "h",
            1,
            &Credentials::default(),
        );
        assert!(!is_tls(&plain));
        assert_eq!(plain.redis_settings().password(), None);
    }

    #[test]
    fn tls_material_is_checked() {
        assert!(TlsPem::default().check().is_ok());
        let junk = TlsPem {
            ca: Some(b"not a certificate".to_vec()),
            ..TlsPem::default()
        };
        assert!(junk.check().unwrap_err().contains("CA"));
        let half = TlsPem {
            client_key: Some(b"k".to_vec()),
            ..TlsPem::default()
        };
        assert!(half.check().is_err());
    }

    #[test]
    fn lists_split_on_commas() {
        let v: Vec<&str> = split_urls(" redis://a:1 ,,redis://b:2,").collect();
        assert_eq!(v, ["redis://a:1", "redis://b:2"]);
        assert!(connection_infos(" , ", &Credentials::default()).is_err());
        let err = connection_infos("redis://u:pw@a:notaport", &Credentials::default()).unwrap_err();
        assert!(!err.contains("pw@"), "{err}");
    }
}
