//! What the store is told about reaching Redis — the topology (one server, a cluster,
//! or a primary found through Sentinel), the credentials and the TLS material — with
//! the store's own bounds (timeout, connections, `WAIT`). How these become the redis
//! crate's connection settings is shared with `sessions check`
//! ([`sessions_shared::connect`]); `node.rs` turns them into the store's own
//! connection targets. No I/O.
//!
//! Secrets are held in [`Secret`], whose `Debug` prints `***`, so an options value can
//! be logged or put in an error without leaking a password.

use std::fmt;
use std::time::Duration;

pub use sessions_shared::connect::{check_url, split_urls, Credentials, Secret, TlsPem, Topology};
// The store's modules take these from here.
pub(crate) use sessions_shared::connect::{client, connection_infos, is_tls, mask_url, node_at};

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
}
