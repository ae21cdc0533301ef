//! Reaching Redis with the Redis settings: the topology (one server, a cluster, or a
//! primary found through Sentinel), the credentials and the TLS material, and how
//! they become the redis crate's connection settings — a URL with the credentials
//! applied, a node found at an address with the transport of the URL it was found
//! through, a client with the TLS material. Also what is read from a node to know it
//! is a primary, and a URL with its password masked, for printing. No I/O.
//!
//! Secrets are held in [`Secret`], whose `Debug` prints `***`, so settings can be
//! logged or put in an error without leaking a password.

use std::fmt;

use redis::{
    Client, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion,
    RedisResult, TlsCertificates, Value,
};

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
    pub fn certificates(&self) -> Option<TlsCertificates> {
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

/// The URLs of a comma-separated list, trimmed, empty items skipped.
pub fn split_urls(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').map(str::trim).filter(|u| !u.is_empty())
}

/// An invalid URL, without echoing it (it may hold a password).
fn invalid(e: redis::RedisError) -> String {
    format!("invalid Redis URL: {}", mask_url(&e.to_string()))
}

/// Connection settings of one URL with `auth` applied and RESP3 chosen. RESP3 lets a
/// redis crate connection learn that Redis went away while it is idle and reconnect
/// at once, instead of failing the next request sent on it. (The service's store
/// speaks RESP2 on a connection of its own, and notices that by reading while idle.)
pub fn connection_info(url: &str, auth: &Credentials) -> Result<ConnectionInfo, String> {
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
pub fn connection_infos(list: &str, auth: &Credentials) -> Result<Vec<ConnectionInfo>, String> {
    let infos = split_urls(list)
        .map(|u| connection_info(u, auth))
        .collect::<Result<Vec<_>, _>>()?;
    if infos.is_empty() {
        return Err("no Redis URL given".into());
    }
    Ok(infos)
}

/// Whether the connection uses TLS.
pub fn is_tls(info: &ConnectionInfo) -> bool {
    matches!(info.addr(), ConnectionAddr::TcpTls { .. })
}

/// A client for one node, with the CA and client certificate when it uses TLS.
pub fn client(info: ConnectionInfo, tls: &TlsPem) -> RedisResult<Client> {
    match tls.certificates() {
        Some(certs) if is_tls(&info) => Client::build_with_tls(info, certs),
        _ => Client::open(info),
    }
}

/// The settings for a node found at `host:port` (a primary named by a sentinel): the
/// template's transport (TLS or not) and database, with `auth`.
pub fn node_at(
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

/// Whether a ROLE reply is a primary's (`["master", offset, replicas]`).
pub fn is_primary(role: &Value) -> bool {
    let Value::Array(items) = role else {
        return false;
    };
    match items.first() {
        Some(Value::BulkString(b)) => b == b"master",
        Some(Value::SimpleString(s)) => s == "master",
        _ => false,
    }
}

/// `url` with any password replaced by `***`, for logging connection settings:
/// `redis://:pw@host` and `redis://user:pw@host` in the authority, and the `pass` /
/// `password` query parameters redis uses for unix-socket URLs. Something that is not
/// a URL is returned as is; a user name is kept (it is not a secret).
pub fn mask_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_owned();
    };
    let (head, rest) = url.split_at(scheme_end + 3);
    // The last '@' ends the user info: a raw '@' or '/' inside a password then stays
    // inside the masked part instead of leaking.
    let rest = match rest.rfind('@') {
        Some(at) => {
            let (userinfo, host) = rest.split_at(at);
            match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***{host}"),
                None => rest.to_owned(),
            }
        }
        None => rest.to_owned(),
    };
    format!("{head}{}", mask_query(&rest))
}

/// Masks the values of `pass` and `password` query parameters.
fn mask_query(s: &str) -> String {
    let Some((before, query)) = s.split_once('?') else {
        return s.to_owned();
    };
    let (query, fragment) = match query.split_once('#') {
        Some((q, f)) => (q, Some(f)),
        None => (query, None),
    };
    let params: Vec<String> = query
        .split('&')
        .map(|p| match p.split_once('=') {
            Some((k, _))
                if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") =>
            {
                format!("{k}=***")
            }
            _ => p.to_owned(),
        })
        .collect();
    let mut out = format!("{before}?{}", params.join("&"));
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(f);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn role_replies() {
        let master = Value::Array(vec![
            Value::BulkString(b"master".to_vec()),
            Value::Int(10),
            Value::Array(vec![]),
        ]);
        let replica = Value::Array(vec![Value::BulkString(b"slave".to_vec())]);
        assert!(is_primary(&master));
        assert!(!is_primary(&replica));
        assert!(!is_primary(&Value::Nil));
    }

    #[test]
    fn masks_passwords_in_the_authority() {
        assert_eq!(
            mask_url("redis://:s3cret@host:6379/0"),
            "redis://:***@host:6379/0"
        );
        assert_eq!(
            mask_url("redis://alice:s3cret@127.0.0.1:6379"),
            "redis://alice:***@127.0.0.1:6379"
        );
        assert_eq!(mask_url("rediss://u:p@h"), "rediss://u:***@h");
        // A raw '@', ':' or '/' inside the password must not leak any part of it.
        assert_eq!(
            mask_url("redis://u:p@ss:w/rd@host/1"),
            "redis://u:***@host/1"
        );
    }

    #[test]
    fn masks_passwords_in_the_query() {
        assert_eq!(
            mask_url("redis+unix:///run/redis.sock?db=2&pass=s3cret"),
            "redis+unix:///run/redis.sock?db=2&pass=***"
        );
        assert_eq!(
            mask_url("unix:///run/redis.sock?password=x&db=1#f"),
            "unix:///run/redis.sock?password=***&db=1#f"
        );
    }

    #[test]
    fn leaves_urls_without_secrets_alone() {
        for url in [
            "redis://127.0.0.1:6379",
            "redis://127.0.0.1:6379/3?protocol=resp3",
            "redis://alice@host:6379",
            "not a url",
            "",
        ] {
            assert_eq!(mask_url(url), url);
        }
    }
}
