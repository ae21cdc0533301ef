//! Where a Redis node is and how to log in to it, as the store's own connection
//! (`pipe.rs`) takes it: a [`Target`] from the redis crate's connection settings (a
//! parsed URL with the credentials applied), and the TLS client configuration made
//! once from the configured PEM material. No I/O (reading the system's CA roots
//! aside).

use std::sync::Arc;
use std::time::Duration;

use redis::{ConnectionAddr, ConnectionInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::options::TlsPem;
use super::pipe::{Addr, Target};

/// The TLS client configuration for `rediss://`: the configured CA (or the system's
/// roots), and the client certificate when one is set. Certificates are always
/// verified.
pub(crate) fn tls_config(pem: &TlsPem) -> Result<Arc<ClientConfig>, String> {
    let mut roots = RootCertStore::empty();
    match &pem.ca {
        Some(ca) => {
            for cert in CertificateDer::pem_slice_iter(ca) {
                let cert = cert.map_err(|e| format!("the Redis CA file is not PEM: {e}"))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("the Redis CA file holds an unusable certificate: {e}"))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            for cert in found.certs {
                // A system root rustls cannot parse is skipped, as the redis crate does.
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup: {e}"))?
        .with_root_certificates(roots);
    let config = match (&pem.client_cert, &pem.client_key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_slice_iter(cert)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("the Redis client certificate is not PEM: {e}"))?;
            let key = PrivateKeyDer::from_pem_slice(key)
                .map_err(|_| "the Redis client key holds no PEM private key".to_owned())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| format!("the Redis client certificate cannot be used: {e}"))?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// How to reach the node of `info` and log in. `tls` is required for a `rediss://`
/// address. `reconnect`: whether a connection that broke connects again on the next
/// request (see [`Target::reconnect`]).
pub(crate) fn target(
    info: &ConnectionInfo,
    tls: Option<&Arc<ClientConfig>>,
    connect_timeout: Duration,
    reconnect: bool,
) -> Result<Target, String> {
    let addr = match info.addr() {
        ConnectionAddr::Tcp(host, port) => Addr::Tcp {
            host: host.clone(),
            port: *port,
        },
        ConnectionAddr::TcpTls { host, port, .. } => Addr::Tls {
            host: host.clone(),
            port: *port,
            config: tls
                .cloned()
                .ok_or_else(|| "no TLS configuration for a rediss:// address".to_owned())?,
        },
        ConnectionAddr::Unix(path) => Addr::Unix(path.clone()),
        _ => return Err("unsupported Redis address".into()),
    };
    let settings = info.redis_settings();
    Ok(Target {
        addr,
        username: settings.username().map(str::to_owned),
        password: settings.password().map(str::to_owned),
        db: settings.db(),
        connect_timeout,
        reconnect,
    })
}

/// The TLS configuration `infos` need: made when the first one is `rediss://`.
pub(crate) fn tls_for(
    infos: &[ConnectionInfo],
    pem: &TlsPem,
) -> Result<Option<Arc<ClientConfig>>, String> {
    match infos.first() {
        Some(first) if super::options::is_tls(first) => tls_config(pem).map(Some),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sessions_shared::connect::{connection_info, Credentials, Secret};

    #[test]
    fn targets_keep_transport_credentials_and_db() {
        let info = connection_info(
            "redis://u:pw@127.0.0.1:6380/3",
            &Credentials {
                username: None,
                password: Some(Secret::new("other")),
            },
        )
        .unwrap();
        let t = target(&info, None, Duration::from_secs(1), true).unwrap();
        assert!(matches!(&t.addr, Addr::Tcp { host, port: 6380 } if host == "127.0.0.1"));
        assert_eq!(t.username.as_deref(), Some("u"));
        assert_eq!(t.password.as_deref(), Some("other"));
        assert_eq!(t.db, 3);
        let tls = connection_info("rediss://h:1/", &Credentials::default()).unwrap();
        assert!(target(&tls, None, Duration::from_secs(1), true).is_err());
        let config = tls_config(&TlsPem::default()).unwrap();
        let t = target(&tls, Some(&config), Duration::from_secs(1), true).unwrap();
        assert!(matches!(t.addr, Addr::Tls { port: 1, .. }));
        let unix = connection_info("unix:///tmp/r.sock", &Credentials::default()).unwrap();
        let t = target(&unix, None, Duration::from_secs(1), true).unwrap();
        assert!(matches!(t.addr, Addr::Unix(ref p) if p.to_str() == Some("/tmp/r.sock")));
    }
}
