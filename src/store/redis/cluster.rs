//! Redis Cluster: one `ClusterConnection` (the redis crate's async cluster client),
//! which keeps a multiplexed connection per node, routes each command and script by
//! the slot of its first key, follows MOVED and ASK, refreshes the slot map when a
//! node fails over, and reconnects by itself. It connects in the background: building
//! the store never waits for the cluster.
//!
//! Every command of the store touches one bucket, so one slot. A batch that reads many
//! buckets at once (a listing over all users, the counts) is split here into one
//! pipeline per bucket, sent concurrently, and its replies put back in order, so no
//! request can ever span slots (no CROSSSLOT).

use std::time::Duration;

use futures::future::try_join_all;
use redis::aio::ConnectionLike;
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionInfo, Pipeline, ProtocolVersion, RedisResult, Value};

use super::conn::Batch;
use super::options::{is_tls, TlsPem};
use crate::store::{StoreError, StoreResult};

/// Redirects and retries the client may make for one request; the store's deadline
/// cuts them off first in practice.
const RETRIES: u32 = 16;
/// Backoff between retries that wait (CLUSTERDOWN, TRYAGAIN, a node being replaced):
/// from this...
const MIN_RETRY_WAIT_MS: u64 = 20;
/// ...to at most this, so a failed-over slot is used again soon after the election.
const MAX_RETRY_WAIT_MS: u64 = 500;

pub(crate) struct Cluster {
    conn: ClusterConnection,
}

impl Cluster {
    /// A cluster client over `seeds` (any reachable node is enough to learn the rest).
    pub fn new(seeds: Vec<ConnectionInfo>, tls: &TlsPem, timeout: Duration) -> StoreResult<Self> {
        let certs = match seeds.first() {
            Some(first) if is_tls(first) => tls.certificates(),
            _ => None,
        };
        let mut builder = ClusterClientBuilder::new(seeds)
            .use_protocol(ProtocolVersion::RESP3)
            .connection_timeout(timeout)
            .retries(RETRIES)
            .min_retry_wait(MIN_RETRY_WAIT_MS)
            .max_retry_wait(MAX_RETRY_WAIT_MS);
        if let Some(certs) = certs {
            builder = builder.certs(certs);
        }
        let client = builder
            .build()
            .map_err(|e| StoreError::Internal(format!("Redis Cluster setup: {e}")))?;
        // Requests are bounded by their own deadline in `conn.rs`.
        let config = ClusterConfig::new().set_connection_timeout(timeout);
        Ok(Cluster {
            conn: client.get_pending_async_connection_with_config(config),
        })
    }

    pub fn conn(&self) -> ClusterConnection {
        self.conn.clone()
    }
}

/// Sends a batch: one pipeline per bucket, all at once; replies in the batch's order.
pub(crate) async fn send_batch(conn: &ClusterConnection, batch: &Batch) -> RedisResult<Vec<Value>> {
    let groups = batch.groups();
    if groups.len() <= 1 {
        let mut c = conn.clone();
        return c
            .req_packed_commands(batch.pipeline(), 0, batch.len())
            .await;
    }
    let sends = groups.iter().map(|(pipe, _)| {
        let mut c = conn.clone();
        async move { c.req_packed_commands(pipe, 0, pipe.len()).await }
    });
    let replies = try_join_all(sends).await?;
    Ok(scatter(batch.len(), &groups, replies))
}

/// Puts the replies of the per-bucket pipelines back in the order of the batch.
fn scatter(len: usize, groups: &[(Pipeline, Vec<usize>)], replies: Vec<Vec<Value>>) -> Vec<Value> {
    let mut out = vec![Value::Nil; len];
    for ((_, positions), values) in groups.iter().zip(replies) {
        for (at, v) in positions.iter().zip(values) {
            if let Some(slot) = out.get_mut(*at) {
                *slot = v;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_go_back_in_batch_order() {
        let mut b = Batch::with_capacity(4);
        b.cmd(3, "ZCARD").arg("a:{03}:oa");
        b.cmd(1, "ZCARD").arg("a:{01}:oa");
        b.cmd(3, "ZCARD").arg("a:{03}:oc");
        b.cmd(2, "ZCARD").arg("a:{02}:oa");
        let groups = b.groups();
        assert_eq!(groups.len(), 3);
        let positions: Vec<&Vec<usize>> = groups.iter().map(|(_, p)| p).collect();
        assert_eq!(positions, [&vec![0, 2], &vec![1], &vec![3]]);
        assert_eq!(groups[0].0.len(), 2);
        let replies = vec![
            vec![Value::Int(0), Value::Int(2)],
            vec![Value::Int(1)],
            vec![Value::Int(3)],
        ];
        let out = scatter(4, &groups, replies);
        assert_eq!(
            out,
            [Value::Int(0), Value::Int(1), Value::Int(2), Value::Int(3)]
        );
    }
}
