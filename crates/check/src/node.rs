//! One Redis node for `sessions check`: a blocking connection made with the service's
//! settings (credentials, TLS material, database), in the plain RESP2 protocol, with
//! a bound on connecting and on every reply, named `host:port` in the report.

use std::time::Duration;

use redis::{Connection, ConnectionInfo, ProtocolVersion, Value};

use super::CheckError;
use sessions_shared::connect::{client, is_primary, TlsPem};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on one reply: a script over a batch of keys, a SCAN step.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// A connected node.
pub(super) struct Node {
    /// `host:port` (or the socket path).
    pub addr: String,
    pub con: Connection,
}

impl Node {
    /// Connects to the node `info` names.
    pub fn open(info: ConnectionInfo, tls: &TlsPem) -> Result<Node, CheckError> {
        let addr = info.addr().to_string();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP2);
        let info = info.set_redis_settings(settings);
        let failed = |source| CheckError::Connect {
            addr: addr.clone(),
            source,
        };
        let con = client(info, tls)
            .and_then(|c| c.get_connection_with_timeout(CONNECT_TIMEOUT))
            .map_err(failed)?;
        con.set_read_timeout(Some(IO_TIMEOUT)).map_err(failed)?;
        con.set_write_timeout(Some(IO_TIMEOUT)).map_err(failed)?;
        Ok(Node { addr, con })
    }

    /// Whether the node says it is a primary (`ROLE`).
    pub fn is_primary(&mut self) -> Result<bool, CheckError> {
        let role: Value = redis::cmd("ROLE").query(&mut self.con)?;
        Ok(is_primary(&role))
    }
}
