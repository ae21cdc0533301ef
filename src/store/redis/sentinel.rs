//! Redis behind Sentinel: the primary is whoever the sentinels say it is.
//!
//! Discovery follows the Sentinel client guidelines: ask the sentinels in turn
//! `SENTINEL get-master-addr-by-name <master>`, connect to the address given, check
//! with `ROLE` that it really is a primary (a sentinel may not have seen the latest
//! failover yet), and move the sentinel that answered to the front of the list.
//!
//! The connections to a primary (the store's own, `pipe.rs`) are never reconnected to
//! the same address: any sign that the primary changed or is gone — a
//! READONLY reply (it was demoted to replica), a refused, dropped or timed-out
//! connection (on failover Sentinel also closes every client of the old primary) —
//! makes the store [`Sentinel::forget`] it, and the next request discovers the
//! primary again. Discoveries are single-flight: concurrent requests wait for the one
//! in progress.
//!
//! Errors alone would be late: after a failover Sentinel demotes the old primary only
//! when it reconfigures it, seconds later, and until then the old primary takes writes
//! that are lost when it is demoted. So a background watcher also subscribes to
//! `+switch-master` on a sentinel, and checks `get-master-addr-by-name` every few
//! seconds in case a message was missed; when the primary moved, it forgets the old
//! one at once.
//!
//! Talking to the sentinels themselves (the question, the subscription) goes through
//! the redis crate's client: it is rare, and needs pub/sub, which the store's own
//! connection does not speak.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::future::try_join_all;
use futures::StreamExt;
use redis::{
    AsyncConnectionConfig, ConnectionInfo, ErrorKind, ProtocolVersion, RedisError, RedisResult,
    ServerErrorKind, Value,
};
use rustls::ClientConfig;
use tokio::task::JoinHandle;

use super::node;
use super::options::{client, node_at, Credentials, TlsPem};
use super::pipe::PipeConn;
use sessions_shared::connect::is_primary;

/// Longest wait for one sentinel (connect and answer), so a dead one is passed over
/// quickly; also bounded by the request's deadline.
const SENTINEL_TIMEOUT: Duration = Duration::from_millis(500);
/// How often the watcher asks a sentinel where the primary is, besides listening for
/// `+switch-master`.
const WATCH_INTERVAL: Duration = Duration::from_secs(5);
/// Pause before the watcher tries the sentinels again when none answered.
const WATCH_RETRY: Duration = Duration::from_secs(1);

/// The primary in use and its connections.
pub(crate) struct Primary {
    /// `host:port`, for logs.
    pub addr: String,
    conns: Box<[PipeConn]>,
    next: AtomicUsize,
}

impl Primary {
    pub fn pick(&self) -> PipeConn {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.conns.len();
        self.conns[i].clone()
    }
}

pub(crate) struct Sentinel {
    inner: Arc<Inner>,
    watcher: JoinHandle<()>,
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

impl Sentinel {
    /// Sets discovery up and starts the watcher; contacts nobody before the first
    /// request (the watcher connects in the background). Must run inside a Tokio
    /// runtime.
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
        let primary_tls = node::tls_for(std::slice::from_ref(&template), &tls)?;
        let inner = Arc::new(Inner {
            sentinels: Mutex::new(for_asking(sentinels)),
            master,
            template,
            auth,
            tls,
            primary_tls,
            connections: connections.max(1),
            timeout,
            current: RwLock::new(None),
            discovery: tokio::sync::Mutex::new(()),
        });
        let watcher = tokio::spawn(watch(Arc::downgrade(&inner)));
        Ok(Sentinel { inner, watcher })
    }

    /// The primary in use, discovering it first when there is none.
    pub async fn primary(&self) -> RedisResult<Arc<Primary>> {
        self.inner.primary().await
    }

    /// Drops `primary` (unless another one replaced it already), so that the next
    /// request asks the sentinels again.
    pub fn forget(&self, primary: &Arc<Primary>, why: &RedisError) {
        self.inner.forget(primary, &why.to_string());
    }
}

struct Inner {
    /// The sentinels, the last one that answered first.
    sentinels: Mutex<Vec<ConnectionInfo>>,
    master: String,
    /// Transport (TLS or not) and database for the primary.
    template: ConnectionInfo,
    auth: Credentials,
    /// For the sentinels (through the redis crate's client).
    tls: TlsPem,
    /// For the primary (through the store's own connection).
    primary_tls: Option<Arc<ClientConfig>>,
    connections: usize,
    timeout: Duration,
    current: RwLock<Option<Arc<Primary>>>,
    discovery: tokio::sync::Mutex<()>,
}

impl Inner {
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

    fn forget(&self, primary: &Arc<Primary>, why: &str) {
        let mut cur = self.current.write().unwrap_or_else(|e| e.into_inner());
        if cur.as_ref().is_some_and(|c| Arc::ptr_eq(c, primary)) {
            tracing::warn!(primary = %primary.addr, reason = %why, "Redis primary lost; asking Sentinel again");
            *cur = None;
        }
    }

    /// Forgets the primary in use unless it is at `addr` (where a sentinel says the
    /// primary is now).
    fn moved_to(&self, addr: &str) {
        let Some(p) = self.known() else {
            return;
        };
        if p.addr != addr {
            self.forget(&p, &format!("Sentinel moved the primary to {addr}"));
        }
    }

    fn sentinel_list(&self) -> Vec<ConnectionInfo> {
        self.sentinels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn known(&self) -> Option<Arc<Primary>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    async fn discover(&self) -> RedisResult<Primary> {
        let sentinels = self.sentinel_list();
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
        // Connections to a primary never reconnect: see the module doc.
        let target = node::target(&info, self.primary_tls.as_ref(), self.timeout, false)
            .map_err(|e| RedisError::from((ErrorKind::InvalidClientConfig, "primary", e)))?;
        let conns: Vec<PipeConn> = (0..self.connections)
            .map(|_| PipeConn::new(target.clone()))
            .collect();
        // Connected now, like the first one by ROLE below, so that an unusable primary
        // is found at discovery rather than by the first requests.
        try_join_all(conns.iter().skip(1).map(|c| async move {
            redis::cmd("PING")
                .query_async::<Value>(&mut c.clone())
                .await
        }))
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

/// Follows failovers as Sentinel announces them (see the module doc). Ends when the
/// store is dropped.
async fn watch(inner: std::sync::Weak<Inner>) {
    loop {
        let Some(me) = inner.upgrade() else {
            return;
        };
        let sentinels = me.sentinel_list();
        drop(me);
        for s in sentinels {
            // Returns when the sentinel stops answering; then try the next one.
            if let Err(e) = listen(&inner, s).await {
                tracing::debug!(error = %e, "Sentinel watcher lost its sentinel");
            }
            if inner.strong_count() == 0 {
                return;
            }
        }
        tokio::time::sleep(WATCH_RETRY).await;
    }
}

/// Listens to one sentinel's `+switch-master` announcements, and asks it where the
/// primary is every [`WATCH_INTERVAL`], until it fails.
async fn listen(inner: &std::sync::Weak<Inner>, sentinel: ConnectionInfo) -> RedisResult<()> {
    let (client, master) = {
        let Some(me) = inner.upgrade() else {
            return Ok(());
        };
        // Pub/sub in the plain protocol: every Redis version speaks it.
        let settings = sentinel
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP2);
        let info = sentinel.clone().set_redis_settings(settings);
        (client(info, &me.tls)?, me.master.clone())
    };
    let mut pubsub = tokio::time::timeout(SENTINEL_TIMEOUT, client.get_async_pubsub())
        .await
        .map_err(|_| timed_out())??;
    pubsub.subscribe("+switch-master").await?;
    let mut messages = pubsub.into_on_message();
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(SENTINEL_TIMEOUT))
        .set_response_timeout(Some(SENTINEL_TIMEOUT));
    loop {
        match tokio::time::timeout(WATCH_INTERVAL, messages.next()).await {
            // "<name> <old-ip> <old-port> <new-ip> <new-port>"
            Ok(Some(msg)) => {
                let payload: String = msg.get_payload().unwrap_or_default();
                let f: Vec<&str> = payload.split_whitespace().collect();
                if let [name, _, _, ip, port] = f[..] {
                    if name == master {
                        if let Some(me) = inner.upgrade() {
                            me.moved_to(&format!("{ip}:{port}"));
                        }
                    }
                }
            }
            Ok(None) => {
                return Err(RedisError::from((
                    ErrorKind::Io,
                    "sentinel closed the subscription",
                )))
            }
            Err(_) => {
                let mut conn = client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                let addr: Option<(String, u16)> = redis::cmd("SENTINEL")
                    .arg("get-master-addr-by-name")
                    .arg(&master)
                    .query_async(&mut conn)
                    .await?;
                match (addr, inner.upgrade()) {
                    (Some((host, port)), Some(me)) => me.moved_to(&format!("{host}:{port}")),
                    (_, None) => return Ok(()),
                    (None, Some(_)) => {}
                }
            }
        }
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from the sentinel",
    ))
}

/// The sentinels as they are asked: a database number in the URL is the primary's
/// (kept in the template); a sentinel has no databases and refuses SELECT.
fn for_asking(sentinels: Vec<ConnectionInfo>) -> Vec<ConnectionInfo> {
    sentinels
        .into_iter()
        .map(|s| {
            let settings = s.redis_settings().clone().set_db(0);
            s.set_redis_settings(settings)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn sentinels_are_asked_without_the_primarys_database() {
        let infos = super::super::options::connection_infos(
            "redis://127.0.0.1:26379/2,redis://127.0.0.1:26380/2",
            &Credentials::default(),
        )
        .expect("urls");
        let sentinel = Sentinel::new(
            infos,
            "mymaster".into(),
            Credentials::default(),
            TlsPem::default(),
            1,
            Duration::from_secs(1),
        )
        .expect("sentinel");
        let asked = sentinel.inner.sentinel_list();
        assert_eq!(asked.len(), 2);
        assert!(asked.iter().all(|i| i.redis_settings().db() == 0));
        // The primary keeps it: its settings come from the URL as given.
        assert_eq!(sentinel.inner.template.redis_settings().db(), 2);
    }
}
