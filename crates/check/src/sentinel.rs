//! Redis behind Sentinel, for `sessions check`: the node to read is the primary the
//! sentinels name, found as the service finds it — each sentinel in turn is asked
//! `SENTINEL get-master-addr-by-name`, and the node named must say it is a primary
//! (`ROLE`). When the check ends, the sentinels must still name that node: after a
//! failover during the check, what was read is a mix of old and new, so the check
//! stops with exit code 2 instead of reporting it.

use redis::ConnectionInfo;

use super::node::Node;
use super::CheckError;
use super::Target;
use sessions_shared::connect::{connection_infos, node_at, TlsPem};

/// The primary of `master`, connected.
pub(super) fn primary(opts: &Target, master: &str) -> Result<Node, CheckError> {
    let sentinels = connection_infos(&opts.url, &opts.sentinel_auth).map_err(CheckError::Config)?;
    let mut why = Vec::new();
    for s in &sentinels {
        let (host, port) = match ask(s, &opts.tls, master) {
            Ok(Some(addr)) => addr,
            Ok(None) => {
                why.push(format!("sentinel {} does not know {master:?}", s.addr()));
                continue;
            }
            Err(e) => {
                why.push(e.to_string());
                continue;
            }
        };
        // The primary is reached with the sentinels' transport and database.
        let named = node_at(s, &host, port, &opts.auth);
        match Node::open(named, &opts.tls).and_then(|mut n| Ok((n.is_primary()?, n))) {
            Ok((true, node)) => return Ok(node),
            Ok((false, node)) => why.push(format!(
                "{} (named by sentinel {}) is not a primary",
                node.addr,
                s.addr()
            )),
            Err(e) => why.push(e.to_string()),
        }
    }
    Err(CheckError::NoPrimary(format!(
        "no sentinel named a usable primary for {master:?}: {}",
        why.join("; ")
    )))
}

/// Whether the sentinels still name `node` as the primary.
pub(super) fn still_primary(opts: &Target, master: &str, node: &Node) -> Result<(), CheckError> {
    let now = primary(opts, master)?;
    if now.addr == node.addr {
        return Ok(());
    }
    Err(CheckError::Moved(format!(
        "the primary moved from {} to {} during the check (a failover); run it again",
        node.addr, now.addr
    )))
}

/// The primary's address according to one sentinel; `None` when it does not know the
/// master name.
fn ask(
    sentinel: &ConnectionInfo,
    tls: &TlsPem,
    master: &str,
) -> Result<Option<(String, u16)>, CheckError> {
    // A database number in the URL is the primary's; sentinels have none.
    let settings = sentinel.redis_settings().clone().set_db(0);
    let mut s = Node::open(sentinel.clone().set_redis_settings(settings), tls)?;
    Ok(redis::cmd("SENTINEL")
        .arg("get-master-addr-by-name")
        .arg(master)
        .query(&mut s.con)?)
}
