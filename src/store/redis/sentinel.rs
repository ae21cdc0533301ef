//! Redis behind Sentinel: the primary is whoever the sentinels say it is.
//!
//! Discovery follows the Sentinel client guidelines: ask the sentinels in turn
//! `SENTINEL get-master-addr-by-name <master>`, connect to the address given, check
//! with `ROLE` that it really is a primary (a sentinel may not have seen the latest
//! failover yet), and move the sentinel that answered to the front of the list.
//!
//! The connections to a primary are plain multiplexed connections that are never
//! reconnected to the same address: any sign that the primary changed or is gone — a
//! READONLY reply (it was demoted to replica), a refused, dropped or timed-out
//! connection (on failover Sentinel also closes every client of the old primary) —
//! makes the store [`Sentinel::forget`] it, and the next request discovers the
//! primary again. So the store follows a failover by itself and never keeps writing
//! to, or reading from, a demoted node. Discoveries are single-flight: concurrent
//! requests wait for the one in progress.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, ConnectionInfo, ErrorKind, RedisError, RedisResult, ServerErrorKind,
    Value,
};

use super::options::{client, node_at, Credentials, TlsPem};

/// Longest wait for one sentinel (connect and answer), so a dead one is passed over
/// quickly; also bounded by the request's deadline.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(500);

/// The primary in use and its connections.
pub(crate) struct Primary {
    /// `host:port`, for logs.
    pub addr: String,
    conns: Box<[MultiplexedConnection]>,
    next: AtomicUsize,
}

impl Primary {
    pub fn pick(&self) -> MultiplexedConnection {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

pub(crate) struct Sentinel {
    /// The sentinels, the last one that answered first.
    sentinels: Mutex<Vec<ConnectionInfo>>,
    master: String,
    /// Transport (TLS or not) and database for the primary.
    template: ConnectionInfo,
    auth: Credentials,
    tls: TlsPem,
    connections: usize,
    timeout: Duration,
    current: RwLock<Option<Arc<Primary>>>,
    discovery: tokio::sync::Mutex<()>,
}

impl Sentinel {
    pub fn new(
        sentinels: Vec<ConnectionInfo>,
        master: String,
        auth: Credentials,
        tls: TlsPem,
        connections: usize,
        timeout: Duration,
    ) -> Result<Self, String> {
        let template = sentinels
            .first()
            .cloned()
            .ok_or_else(|| "no sentinel address given".to_owned())?;
        if master.is_empty() {
            return Err("the Sentinel master name is empty".into());
        }
        Ok(Sentinel {
            sentinels: Mutex::new(sentinels),
            master,
            template,
            auth,
            tls,
            connections: connections.max(1),
            timeout,
            current: RwLock::new(None),
            discovery: tokio::sync::Mutex::new(()),
        })
    }

    /// The primary in use, discovering it first when there is none.
    pub async fn primary(&self) -> RedisResult<Arc<Primary>> {
        if let Some(p) = self.known() {
            return Ok(p);
        }
        let _one_at_a_time = self.discovery.lock().await;
        // Someone else may have found it while this request waited.
        if let Some(p) = self.known() {
            return Ok(p);
        }
        let p = Arc::new(self.discover().await?);
        tracing::info!(master = %self.master, primary = %p.addr, "using the primary named by Sentinel");
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Some(p.clone());
        Ok(p)
    }

    /// Drops `primary` (unless another one replaced it already), so that the next
    /// request asks the sentinels again.
    pub fn forget(&self, primary: &Arc<Primary>, why: &RedisError) {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, primary)) {
            tracing::warn!(primary = %primary.addr, error = %why, "Redis primary lost; asking Sentinel again");
            *cur = None;
        }
    }

    fn known(&self) -> Option<Arc<Primary>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn discover(&self) -> RedisResult<Primary> {
        let sentinels = self
            .sentinels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut last: Option<RedisError> = None;
        for (i, s) in sentinels.iter().enumerate() {
            let found = match self.ask(s).await {
                Ok(addr) => addr,
                Err(e) => {
                    tracing::debug!(sentinel = i, error = %e, "sentinel did not answer");
                    last = Some(e);
                    continue;
                }
            };
            let Some((host, port)) = found else {
                last = Some(RedisError::from((
                    ErrorKind::MasterNameNotFoundBySentinel,
                    "the sentinel does not know the master",
                    self.master.clone(),
                )));
                continue;
            };
            match self.connect(&host, port).await {
                Ok(p) => {
                    if i > 0 {
                        let mut list = self.sentinels.lock().unwrap_or_else(|e| e.into_inner());
                        if i < list.len() {
                            let s = list.remove(i);
                            list.insert(0, s);
                        }
                    }
                    return Ok(p);
                }
                Err(e) => {
                    tracing::debug!(sentinel = i, primary = %format!("{host}:{port}"), error = %e, "not a usable primary");
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            RedisError::from((ErrorKind::EmptySentinelList, "no sentinel to ask"))
        }))
    }

    /// The primary's address according to one sentinel; `None` when it does not know
    /// the master name.
    async fn ask(&self, sentinel: &ConnectionInfo) -> RedisResult<Option<(String, u16)>> {
        let wait = SENTINEL_TIMEOUT.min(self.timeout);
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(wait))
            .set_response_timeout(Some(wait));
        let mut conn = client(sentinel.clone(), &self.tls)?
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(&self.master)
            .query_async(&mut conn)
            .await
    }

    /// Connects to the named primary and checks it is one.
    async fn connect(&self, host: &str, port: u16) -> RedisResult<Primary> {
        let info = node_at(&self.template, host, port, &self.auth);
        let node = client(info, &self.tls)?;
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeout))
            // Requests are bounded by their own deadline in `conn.rs`.
            .set_response_timeout(None);
        let conns = try_join_all(
            (0..self.connections)
                .map(|_| node.get_multiplexed_async_connection_with_config(&config)),
        )
        .await?;
        let mut first = conns[0].clone();
        let role: Value = redis::cmd("ROLE").query_async(&mut first).await?;
        if !is_primary(&role) {
            return Err(RedisError::from((
                ErrorKind::Server(ServerErrorKind::ReadOnly),
                "the node Sentinel named is not a primary (yet)",
                format!("{host}:{port}"),
            )));
        }
        Ok(Primary {
            addr: format!("{host}:{port}"),
            conns: conns.into_boxed_slice(),
            next: AtomicUsize::new(0),
        })
    }
}

/// Whether a ROLE reply is a primary's (`["master", offset, replicas]`).
fn is_primary(role: &Value) -> bool {
    let Value::Array(items) = role else {
        return false;
    };
    match items.first() {
        Some(Value::BulkString(b)) => b == b"master",
        Some(Value::SimpleString(s)) => s == "master",
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
