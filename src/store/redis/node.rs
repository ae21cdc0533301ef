//! A connection to one Redis node, whichever client makes it: the store's own
//! batching connection (`pipe.rs`) over plain TCP, the redis crate's over TLS or a
//! Unix socket. Used by the standalone and Sentinel topologies (the cluster client
//! keeps its own connections per node).

use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::{Cmd, ConnectionAddr, ConnectionInfo, Pipeline, RedisFuture, Value};

use super::pipe::{PipeConn, Target};

/// One connection to a node; cheap to clone (clones share the connection).
#[derive(Clone)]
pub(crate) enum NodeConn {
    Pipe(PipeConn),
    /// Reconnects by itself (standalone over TLS or a Unix socket).
    Manager(ConnectionManager),
    /// Never reconnects (Sentinel over TLS or a Unix socket).
    Multiplexed(MultiplexedConnection),
}

impl ConnectionLike for NodeConn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            NodeConn::Pipe(c) => c.req_packed_command(cmd),
            NodeConn::Manager(c) => c.req_packed_command(cmd),
            NodeConn::Multiplexed(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            NodeConn::Pipe(c) => c.req_packed_commands(pipeline, offset, count),
            NodeConn::Manager(c) => c.req_packed_commands(pipeline, offset, count),
            NodeConn::Multiplexed(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            NodeConn::Pipe(c) => c.get_db(),
            NodeConn::Manager(c) => c.get_db(),
            NodeConn::Multiplexed(c) => c.get_db(),
        }
    }
}

/// Where the store's own connection can go: plain TCP only (`None` for TLS and Unix
/// sockets). `reconnect`: whether a connection that broke connects again on the next
/// request (see [`Target::reconnect`]).
pub(crate) fn plain_tcp(
    info: &ConnectionInfo,
    connect_timeout: Duration,
    reconnect: bool,
) -> Option<Target> {
    let ConnectionAddr::Tcp(host, port) = info.addr() else {
        return None;
    };
    let settings = info.redis_settings();
    Some(Target {
        host: host.clone(),
        port: *port,
        username: settings.username().map(str::to_owned),
        password: settings.password().map(str::to_owned),
        db: settings.db(),
        connect_timeout,
        reconnect,
    })
}
