//! Redis I/O: the connections of the configured topology and [`Redis::send`], the
//! single function every request to Redis goes through. That is where the deadline is
//! enforced, where a request is sent again when that is safe, where the topology
//! learns that its primary changed, and where Redis errors become [`StoreError`]s; and
//! the place for command metrics (latency, errors) when they are added.
//!
//! Every topology (chosen by [`Topology`]) sends over the store's own batching
//! connection (`pipe.rs`: plain TCP, TLS or a Unix socket), so requests that arrive
//! together go to each node in one write whatever the topology:
//! - standalone (`standalone.rs`): connections to one address that reconnect by
//!   themselves;
//! - cluster (`cluster.rs`): connections per primary, commands routed by the slot of
//!   their key, MOVED and ASK followed, batches split per primary;
//! - sentinel (`sentinel.rs`): connections to the primary Sentinel names,
//!   rediscovered when it fails over.
//!
//! Connections are made lazily: building the store never waits for Redis, a dead
//! connection is replaced on the next use, and every call is cut off at its deadline,
//! so a slow, absent or failing-over Redis yields [`StoreError::Unavailable`] in time
//! and the store recovers by itself when Redis is back.
//!
//! When to send again: a read whose connection broke under it is sent once more
//! within its deadline; a script never is, unless Redis certainly did not run it (the
//! node refused the connection, answered READONLY because it is a replica now, or on
//! a cluster answered CLUSTERDOWN or TRYAGAIN, or redirected it: `cluster.rs` follows
//! MOVED and ASK itself); on a cluster those are sent again, with a growing pause,
//! until the deadline, so a request made while the map catches up with a failover
//! may still be served. The scripts are written so that running one twice would do
//! no harm anyway (see `lua/open.lua`).

use std::sync::Arc;
use std::time::Duration;

use redis::aio::ConnectionLike;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, ServerErrorKind, Value};
use tokio::time::Instant;

use super::cluster::Cluster;
use super::node;
use super::options::{self, RedisOptions, Topology};
use super::pipe::PipeConn;
use super::scripts::Lua;
use super::sentinel::{Primary, Sentinel};
use super::standalone::Standalone;
use crate::store::{StoreError, StoreResult};

/// How many times a request is sent again (see the module doc for when; on a cluster,
/// what certainly did not run is sent again until its deadline).
const MAX_RESENDS: usize = 3;
/// Pause before sending again to a topology that is failing over: grows from this...
const RESEND_PAUSE: Duration = Duration::from_millis(25);

/// Whether a request may be sent again after the connection broke under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Reads: sending twice is harmless.
    Idempotent,
    /// Scripts: the first attempt may have run, so never resend.
    Never,
}

/// Commands for one round trip, each on keys of one bucket. On a single node they go
/// out as one pipeline; on a cluster, as one pipeline per primary, concurrently.
pub(crate) struct Batch {
    pipe: Pipeline,
}

impl Batch {
    pub fn with_capacity(n: usize) -> Self {
        Batch {
            pipe: Pipeline::with_capacity(n),
        }
    }

    /// Adds command `name` on keys of `bucket`; chain `.arg(..)` for its arguments.
    /// (A cluster routes each command by its first key, which carries the bucket's
    /// hash tag.)
    pub fn cmd(&mut self, _bucket: u16, name: &str) -> &mut Pipeline {
        self.pipe.cmd(name)
    }

    pub fn len(&self) -> usize {
        self.pipe.len()
    }

    pub fn is_empty(&self) -> bool {
        self.pipe.is_empty()
    }

    pub(crate) fn pipeline(&self) -> &Pipeline {
        &self.pipe
    }
}

#[derive(Clone, Copy)]
enum Request<'a> {
    One(&'a Cmd),
    /// Split per primary on a cluster.
    Batch(&'a Batch),
    /// One pipeline on one connection, never split (a script and its WAIT).
    Together(&'a Pipeline),
}

enum Reply {
    One(Value),
    Many(Vec<Value>),
}

enum Link {
    Standalone(Box<Standalone>),
    Cluster(Box<Cluster>),
    Sentinel(Box<Sentinel>),
}

/// A connection picked for one request (on a cluster, the cluster routes it).
enum Handle {
    Standalone(usize, PipeConn),
    Cluster,
    Sentinel(Arc<Primary>, PipeConn),
}

/// The connections to Redis, whatever the topology.
pub(crate) struct Redis {
    link: Link,
    timeout: Duration,
    wait_replicas: u32,
}

impl Redis {
    /// Sets the connections up without contacting Redis. Fails only on invalid
    /// options or when called outside a Tokio runtime.
    pub fn new(opts: &RedisOptions) -> StoreResult<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(StoreError::Internal(
                "the Redis store must be created inside a Tokio runtime".into(),
            ));
        }
        opts.tls.check().map_err(StoreError::Internal)?;
        let link = match &opts.topology {
            Topology::Standalone => {
                let infos = options::connection_infos(&opts.url, &opts.auth)
                    .map_err(StoreError::Internal)?;
                if infos.len() > 1 {
                    return Err(StoreError::Internal(
                        "several Redis URLs need the cluster or sentinel topology".into(),
                    ));
                }
                let tls = node::tls_for(&infos, &opts.tls).map_err(StoreError::Internal)?;
                let target = node::target(&infos[0], tls.as_ref(), opts.timeout, true)
                    .map_err(|e| StoreError::Internal(format!("Redis client setup: {e}")))?;
                Link::Standalone(Box::new(Standalone::new(target, opts.connections)))
            }
            Topology::Cluster => {
                let seeds = options::connection_infos(&opts.url, &opts.auth)
                    .map_err(StoreError::Internal)?;
                Link::Cluster(Box::new(
                    Cluster::new(&seeds, &opts.tls, opts.connections, opts.timeout)
                        .map_err(|e| StoreError::Internal(format!("Redis Cluster setup: {e}")))?,
                ))
            }
            Topology::Sentinel { master } => {
                let sentinels = options::connection_infos(&opts.url, &opts.sentinel_auth)
                    .map_err(StoreError::Internal)?;
                Link::Sentinel(Box::new(
                    Sentinel::new(
                        sentinels,
                        master.clone(),
                        opts.auth.clone(),
                        opts.tls.clone(),
                        opts.connections,
                        opts.timeout,
                    )
                    .map_err(StoreError::Internal)?,
                ))
            }
        };
        Ok(Redis {
            link,
            timeout: opts.timeout,
            wait_replicas: opts.wait_replicas,
        })
    }

    /// The deadline of an operation that starts now.
    pub fn deadline(&self) -> Instant {
        Instant::now() + self.timeout
    }

    /// One command; `what` names it for logs (and metrics).
    pub async fn cmd(
        &self,
        what: &'static str,
        cmd: &Cmd,
        deadline: Instant,
        retry: Retry,
    ) -> StoreResult<Value> {
        match self.send(what, Request::One(cmd), deadline, retry).await {
            Ok(Reply::One(v)) => Ok(v),
            Ok(Reply::Many(_)) => Err(StoreError::Internal("one reply expected".into())),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Several commands in one round trip (per node); one reply per command, in order.
    pub async fn pipe(
        &self,
        what: &'static str,
        batch: &Batch,
        deadline: Instant,
        retry: Retry,
    ) -> StoreResult<Vec<Value>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        match self
            .send(what, Request::Batch(batch), deadline, retry)
            .await
        {
            Ok(Reply::Many(v)) if v.len() == batch.len() => Ok(v),
            Ok(_) => Err(StoreError::Internal("short pipeline reply".into())),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Runs `evalsha` (an EVALSHA of `lua` built by [`Lua::evalsha`]). When Redis does
    /// not know the script (restarted, failed over, SCRIPT FLUSH), sends it again as
    /// EVAL with the script's text, which also caches it on that node: the script did
    /// not run, so that is safe, and EVAL goes to the same node as the EVALSHA would
    /// (on a cluster, the node of its keys).
    ///
    /// With `wait_replicas` set, the script is followed on the same connection by
    /// `WAIT n timeout`; fewer acknowledgements than asked is
    /// [`StoreError::Unavailable`] (the write happened on the primary, but is not
    /// known to be on enough replicas to survive its loss).
    pub async fn script(&self, lua: &Lua, evalsha: &Cmd, deadline: Instant) -> StoreResult<Value> {
        match self.run_script(lua, evalsha, deadline).await {
            Err(e) if e.kind() == ErrorKind::Server(ServerErrorKind::NoScript) => {}
            other => {
                return other
                    .map_err(|e| store_error(&e))
                    .and_then(|r| self.acked(r))
            }
        }
        tracing::debug!(
            script = lua.name(),
            "script not cached in Redis, sending its text"
        );
        self.run_script(lua, &lua.eval(evalsha), deadline)
            .await
            .map_err(|e| store_error(&e))
            .and_then(|r| self.acked(r))
    }

    /// The script's reply and, with WAIT, how many replicas acknowledged it.
    async fn run_script(
        &self,
        lua: &Lua,
        cmd: &Cmd,
        deadline: Instant,
    ) -> Result<(Value, Option<i64>), RedisError> {
        if self.wait_replicas == 0 {
            return match self
                .send(lua.name(), Request::One(cmd), deadline, Retry::Never)
                .await?
            {
                Reply::One(v) => Ok((v, None)),
                Reply::Many(_) => Err(RedisError::from((ErrorKind::Client, "one reply expected"))),
            };
        }
        // WAIT blocks the connection it is sent on, and so every request multiplexed
        // behind it: keep it to a quarter of the store timeout.
        let wait_ms = (self.timeout.as_millis() / 4).max(1);
        let mut p = Pipeline::with_capacity(2);
        p.add_command(cmd.clone());
        p.cmd("WAIT").arg(self.wait_replicas).arg(wait_ms as u64);
        let replies = match self
            .send(lua.name(), Request::Together(&p), deadline, Retry::Never)
            .await?
        {
            Reply::Many(v) => v,
            Reply::One(_) => {
                return Err(RedisError::from((
                    ErrorKind::Client,
                    "two replies expected",
                )))
            }
        };
        let mut it = replies.into_iter();
        match (it.next(), it.next()) {
            (Some(v), Some(Value::Int(acks))) => Ok((v, Some(acks))),
            _ => Err(RedisError::from((
                ErrorKind::Client,
                "unexpected reply to a script and WAIT",
            ))),
        }
    }

    fn acked(&self, (value, acks): (Value, Option<i64>)) -> StoreResult<Value> {
        match acks {
            Some(n) if n < i64::from(self.wait_replicas) => Err(StoreError::Unavailable(format!(
                "the write reached {n} of the {} replicas asked for in time",
                self.wait_replicas
            ))),
            _ => Ok(value),
        }
    }

    /// The chokepoint: every Redis round trip of the store goes through here. `what`
    /// names the call (a command, a script, a listing step) for logs and metrics.
    async fn send(
        &self,
        what: &'static str,
        req: Request<'_>,
        deadline: Instant,
        retry: Retry,
    ) -> Result<Reply, RedisError> {
        let mut resends = 0;
        let mut keep: Option<Handle> = None;
        loop {
            let handle = match keep.take() {
                Some(h) => h,
                None => match tokio::time::timeout_at(deadline, self.handle()).await {
                    Ok(Ok(h)) => h,
                    // No primary found (Sentinel still names the one that is gone, or
                    // it is not promoted yet): nothing was sent, so wait a little and
                    // look again, within the deadline.
                    Ok(Err(e)) => {
                        if resends < MAX_RESENDS && Instant::now() < deadline {
                            pause(resends, deadline).await;
                            resends += 1;
                            continue;
                        }
                        tracing::debug!(call = what, error = %e, "no Redis connection");
                        return Err(e);
                    }
                    Err(_) => return Err(timed_out()),
                },
            };
            let result =
                match tokio::time::timeout_at(deadline, send_on(&self.link, &handle, req)).await {
                    Ok(r) => r.and_then(server_errors),
                    Err(_) => Err(timed_out()),
                };
            let e = match result {
                Ok(reply) => return Ok(reply),
                Err(e) => e,
            };
            let replaced = self.failed(&handle, &e);
            let not_run = is_read_only(&e) || e.is_connection_refusal();
            let cluster_not_run = not_run
                || e.kind() == ErrorKind::ClusterConnectionNotFound
                || matches!(e.code(), Some("CLUSTERDOWN" | "TRYAGAIN" | "MOVED" | "ASK"));
            // On a cluster, what certainly did not run is sent again until the deadline,
            // as the map catches up with a failover (seconds): the request may still
            // be served in time.
            let budget = match handle {
                Handle::Cluster if cluster_not_run => usize::MAX,
                _ => MAX_RESENDS,
            };
            let resend = resends < budget
                && Instant::now() < deadline
                && match (&handle, &replaced) {
                    // The connection reconnects by itself; a read can be sent again.
                    (Handle::Standalone(..), None) => {
                        retry == Retry::Idempotent && resends == 0 && e.is_connection_dropped()
                    }
                    // A READONLY node was swapped for a fresh connection.
                    (Handle::Standalone(..), Some(_)) => resends == 0,
                    // Redirects were followed already; the map is being refreshed.
                    (Handle::Cluster, _) => {
                        cluster_not_run || (retry == Retry::Idempotent && e.is_connection_dropped())
                    }
                    (Handle::Sentinel(..), _) => {
                        not_run || (retry == Retry::Idempotent && e.is_connection_dropped())
                    }
                };
            if !resend {
                tracing::debug!(call = what, error = %e, "Redis call failed");
                return Err(e);
            }
            match (handle, replaced) {
                (Handle::Standalone(..), Some(fresh)) => keep = Some(fresh),
                (h @ Handle::Standalone(..), None) => keep = Some(h),
                // Sentinel: the primary was forgotten; the next handle rediscovers it,
                // after a pause while the failover is still going on.
                _ => pause(resends, deadline).await,
            }
            resends += 1;
        }
    }

    /// A connection for the next request.
    async fn handle(&self) -> Result<Handle, RedisError> {
        Ok(match &self.link {
            Link::Standalone(s) => {
                let (i, c) = s.pick();
                Handle::Standalone(i, c)
            }
            Link::Cluster(_) => Handle::Cluster,
            Link::Sentinel(s) => {
                // Boxed: discovery is rare and its future is large; kept inline it
                // would grow every request's future (see `Redis::send`).
                let p = Box::pin(s.primary()).await?;
                let c = p.pick();
                Handle::Sentinel(p, c)
            }
        })
    }

    /// Tells the topology a request failed on `handle`: a standalone connection that
    /// hit a replica is replaced (returned to send on); a sentinel primary that is no
    /// longer one, or no longer answers, is forgotten; a cluster whose node failed or
    /// whose slot moved refreshes its map.
    fn failed(&self, handle: &Handle, e: &RedisError) -> Option<Handle> {
        match (&self.link, handle) {
            (Link::Standalone(s), Handle::Standalone(i, _)) if is_read_only(e) => {
                tracing::warn!("Redis answered READONLY: reconnecting to find the primary");
                s.replace(*i).map(|c| Handle::Standalone(*i, c))
            }
            (Link::Sentinel(s), Handle::Sentinel(p, _))
                if is_read_only(e)
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout() =>
            {
                s.forget(p, e);
                None
            }
            (Link::Cluster(c), Handle::Cluster)
                if e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
                    || e.kind() == ErrorKind::ClusterConnectionNotFound
                    || matches!(e.code(), Some("CLUSTERDOWN" | "TRYAGAIN" | "MOVED" | "ASK")) =>
            {
                c.stale();
                None
            }
            _ => None,
        }
    }
}

/// The pause before resend number `resends` (from 0): 25 ms, doubling up to 200 ms.
async fn pause(resends: usize, deadline: Instant) {
    let wait = RESEND_PAUSE * (1u32 << resends.min(3));
    tokio::time::sleep_until((Instant::now() + wait).min(deadline)).await;
}

async fn send_on(link: &Link, handle: &Handle, req: Request<'_>) -> Result<Reply, RedisError> {
    match (handle, link, req) {
        (Handle::Standalone(_, c), ..) | (Handle::Sentinel(_, c), ..) => {
            send_plain(&mut c.clone(), req).await
        }
        (Handle::Cluster, Link::Cluster(c), Request::One(cmd)) => c.one(cmd).await.map(Reply::One),
        // Boxed: a batch's future is large, and a single command never awaits it.
        (Handle::Cluster, Link::Cluster(c), Request::Batch(b)) => {
            Box::pin(c.batch(b)).await.map(Reply::Many)
        }
        (Handle::Cluster, Link::Cluster(c), Request::Together(p)) => {
            c.together(p).await.map(Reply::Many)
        }
        (Handle::Cluster, ..) => Err(RedisError::from((
            ErrorKind::Client,
            "a cluster handle without a cluster",
        ))),
    }
}

async fn send_plain(conn: &mut impl ConnectionLike, req: Request<'_>) -> Result<Reply, RedisError> {
    match req {
        Request::One(cmd) => conn.req_packed_command(cmd).await.map(Reply::One),
        Request::Batch(b) => conn
            .req_packed_commands(b.pipeline(), 0, b.len())
            .await
            .map(Reply::Many),
        Request::Together(p) => conn
            .req_packed_commands(p, 0, p.len())
            .await
            .map(Reply::Many),
    }
}

fn timed_out() -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "no answer from Redis within the store timeout",
    ))
}

fn is_read_only(e: &RedisError) -> bool {
    e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly) || e.code() == Some("READONLY")
}

/// Turns an error reply into an error (the connection hands them back as values).
fn server_errors(reply: Reply) -> Result<Reply, RedisError> {
    match reply {
        Reply::One(Value::ServerError(e)) => Err(e.into()),
        Reply::Many(values) => {
            if let Some(Value::ServerError(e)) =
                values.iter().find(|v| matches!(v, Value::ServerError(_)))
            {
                return Err(e.clone().into());
            }
            Ok(Reply::Many(values))
        }
        other => Ok(other),
    }
}

/// Redis down, unreachable, too slow, read-only, loading, out of memory, failing over
/// or redirecting (a cluster resharding or electing), or refusing our credentials is
/// "unavailable" (the client may retry later); anything else is internal.
pub(crate) fn store_error(e: &RedisError) -> StoreError {
    let unavailable = match e.kind() {
        ErrorKind::Io
        | ErrorKind::AuthenticationFailed
        | ErrorKind::ClusterConnectionNotFound
        | ErrorKind::MasterNameNotFoundBySentinel
        | ErrorKind::NoValidReplicasFoundBySentinel
        | ErrorKind::EmptySentinelList => true,
        ErrorKind::Server(
            ServerErrorKind::ReadOnly
            | ServerErrorKind::BusyLoading
            | ServerErrorKind::MasterDown
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        ) => true,
        _ => {
            matches!(
                e.code(),
                Some(
                    "OOM"
                        | "BUSY"
                        | "MISCONF"
                        | "NOREPLICAS"
                        | "READONLY"
                        | "LOADING"
                        | "MASTERDOWN"
                        | "CLUSTERDOWN"
                        | "TRYAGAIN"
                        | "MOVED"
                        | "ASK"
                        | "WRONGPASS"
                        | "NOAUTH"
                        | "UNBLOCKED"
                )
            ) || e.is_connection_dropped()
                || e.is_connection_refusal()
                || e.is_timeout()
        }
    };
    if unavailable {
        StoreError::Unavailable(e.to_string())
    } else {
        StoreError::Internal(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::ServerErrorKind;

    fn parsed(reply: &str) -> RedisError {
        match redis::parse_redis_value(reply.as_bytes()) {
            Ok(Value::ServerError(e)) => e.into(),
            other => panic!("not an error reply: {other:?}"),
        }
    }

    #[test]
    fn failover_conditions_are_unavailable() {
        for reply in [
            "-READONLY You can't write against a read only replica.\r\n",
            "-MOVED 3999 127.0.0.1:6381\r\n",
            "-ASK 3999 127.0.0.1:6381\r\n",
            "-CLUSTERDOWN The cluster is down\r\n",
            "-TRYAGAIN Multiple keys request during rehashing of slot\r\n",
            "-MASTERDOWN Link with MASTER is down\r\n",
            "-LOADING Redis is loading the dataset in memory\r\n",
            "-NOREPLICAS Not enough good replicas to write.\r\n",
            "-WRONGPASS invalid username-password pair or user is disabled.\r\n",
            "-NOAUTH Authentication required.\r\n",
            "-OOM command not allowed when used memory > 'maxmemory'.\r\n",
        ] {
            assert!(
                matches!(store_error(&parsed(reply)), StoreError::Unavailable(_)),
                "{reply}"
            );
        }
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(matches!(store_error(&refused), StoreError::Unavailable(_)));
        assert!(matches!(
            store_error(&timed_out()),
            StoreError::Unavailable(_)
        ));
        let not_primary = RedisError::from((
            ErrorKind::Server(ServerErrorKind::ReadOnly),
            "not a primary",
        ));
        assert!(is_read_only(&not_primary));
        assert!(matches!(
            store_error(&not_primary),
            StoreError::Unavailable(_)
        ));
    }

    #[test]
    fn bugs_are_internal() {
        for reply in [
            "-CROSSSLOT Keys in request don't hash to the same slot\r\n",
            "-ERR unknown command\r\n",
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
            "-NOPERM this user has no permissions to run the 'evalsha' command\r\n",
        ] {
            assert!(
                matches!(store_error(&parsed(reply)), StoreError::Internal(_)),
                "{reply}"
            );
        }
    }
}
