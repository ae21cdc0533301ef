//! `sessions check`: a read-only consistency check of the sessions kept in Redis.
//!
//! It reads the service's own settings (`REDIS_URL`, `SESSIONS_REDIS_MODE`, the
//! credentials and TLS files, `SESSIONS_KEY_PREFIX`), walks the keys of the prefix
//! bucket by bucket with `SCAN` (never `KEYS`), and checks that every session hash and
//! every index entry agree, as the store's scripts keep them (key layout: see
//! the service's `store/redis/mod.rs`):
//!
//! - every entry of an index (user, open-time, expiry, retention) and of the reuse
//!   hash has a session hash;
//! - an active session is in its user's active index, the bucket's active open-time
//!   index and the expiry index, and in none of the closed ones; a closed session is
//!   in the closed user and open-time indexes and the retention index, and in none of
//!   the active ones; scores are the session's open, request and close times;
//! - a reuse entry points at an active session with that reuse key, and a user index
//!   entry belongs to that user.
//!
//! Exit code 0 when clean, 1 when problems were found, 2 when the check could not run.
//!
//! Where each bucket is read depends on the topology: the one server (standalone);
//! the primary the sentinels name (`sentinel.rs`), which must still be the
//! primary when the check ends; or, on Redis Cluster, the primary that serves the
//! bucket's slot (`cluster.rs`) — every key of a bucket shares its hash tag, so a
//! bucket lives wholly on one primary, and SCAN on that primary sees all of it. When
//! the cluster moves a bucket's slot while it is read (a failover, a resharding), that
//! bucket's findings are thrown away and it is read again where the slot is now; if
//! the slot does not settle within [`RETRY_FOR`], the check stops with exit code 2.
//! A topology change never turns into a reported problem.
//!
//! Each look at Redis is one read-only Lua script over one batch of one bucket (every
//! key it reads shares the bucket's hash tag), so a session and its index entries are
//! seen in one atomic snapshot: running the check against a live service reports no
//! false problems, and a session changed between the scan and the look is judged by
//! what it is at the look. Only keys the scan found are looked at.
//!
//! The cost is one `SCAN` pass per bucket over the keyspace of the node holding it,
//! plus a script call per hundred keys or entries; nothing is written.
//!
//! The check shares with the service, through `sessions-shared`, what both must agree
//! on: reading the Redis settings, connecting with them, and the key layout. It does
//! not depend on the service.
//!
//! This file reads the settings and decides where each bucket is read; `bucket.rs`
//! walks one bucket, `verdict.rs` judges what the scripts return, and `report.rs`
//! counts and prints the findings.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use redis::{ErrorKind, RedisError, ServerErrorKind};

use sessions_shared::connect::{
    connection_info, mask_url, split_urls, Credentials, TlsPem, Topology,
};
use sessions_shared::keys::{check_prefix, BUCKETS};
use sessions_shared::settings::redis::{RedisSettings, KEY_PREFIX, REDIS_MODE, REDIS_URL};
use sessions_shared::settings::{Env, Source};

mod bucket;
mod cluster;
mod node;
mod report;
mod sentinel;
mod verdict;

use self::bucket::Walker;
use self::cluster::Cluster;
use self::node::Node;
pub use self::report::{Finding, Kind, NodeTally, Report};

/// How long one bucket may keep failing with a moved slot or a lost node (on a
/// cluster) before the check gives up with exit code 2.
pub const RETRY_FOR: Duration = Duration::from_secs(10);
/// First pause before reading a moved bucket again; doubles up to [`RETRY_WAIT_MAX`].
const RETRY_WAIT: Duration = Duration::from_millis(100);
const RETRY_WAIT_MAX: Duration = Duration::from_secs(1);

/// Where the sessions to check are: the service's Redis settings, read as the
/// service reads them, with the TLS files' contents.
#[derive(Clone)]
pub struct Target {
    /// One URL, the seed nodes of a cluster or the sentinels, comma-separated.
    pub url: String,
    pub prefix: String,
    pub topology: Topology,
    pub auth: Credentials,
    pub sentinel_auth: Credentials,
    pub tls: TlsPem,
}

impl Target {
    /// The Redis settings in `src`; `None` when `REDIS_URL` is unset.
    pub fn from_source(src: &dyn Source) -> Result<Option<Target>, String> {
        let settings = RedisSettings::from_source(src).map_err(|e| e.to_string())?;
        let Some(url) = settings.url else {
            return Ok(None);
        };
        Ok(Some(Target {
            url,
            prefix: settings.prefix,
            topology: settings.topology,
            auth: settings.auth,
            sentinel_auth: settings.sentinel_auth,
            tls: settings.tls.read()?,
        }))
    }

    /// The topology, the URLs (passwords masked) and the prefix, as the report's
    /// first line names them.
    fn describe(&self) -> String {
        let urls: Vec<String> = split_urls(&self.url).map(mask_url).collect();
        let mode = match &self.topology {
            Topology::Standalone => "standalone".to_owned(),
            Topology::Cluster => "cluster".to_owned(),
            Topology::Sentinel { master } => format!("sentinel master {master:?}"),
        };
        format!("{mode} {} prefix {:?}", urls.join(","), self.prefix)
    }
}

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Config(String),
    #[error("cannot reach Redis at {addr}: {source}")]
    Connect { addr: String, source: RedisError },
    #[error("Redis: {0}")]
    Redis(#[from] RedisError),
    #[error("unexpected reply from Redis: {0}")]
    Reply(String),
    /// No node could be found to read (no sentinel names a primary, no cluster node
    /// answers, no primary serves a slot).
    #[error("{0}")]
    NoPrimary(String),
    /// The node read is no longer where the data is (a failover, a slot moved).
    #[error("{0}")]
    Moved(String),
    /// A bucket kept moving or failing on a cluster for [`RETRY_FOR`].
    #[error(
        "bucket {bucket:02x} (slot {slot}) could not be read within {} s, as the cluster \
         kept changing; run the check again once it is stable. Last: {last}",
        RETRY_FOR.as_secs()
    )]
    Unsettled {
        bucket: u16,
        slot: u16,
        last: Box<CheckError>,
    },
}

impl CheckError {
    /// Whether reading the bucket again, after asking the cluster where it is now,
    /// may succeed: a moved slot, a node lost or failing over.
    fn passing(&self) -> bool {
        let redis = match self {
            CheckError::Moved(_) | CheckError::NoPrimary(_) => return true,
            CheckError::Redis(e) | CheckError::Connect { source: e, .. } => e,
            _ => return false,
        };
        redis.is_cluster_error()
            || redis.is_io_error()
            || matches!(
                redis.kind(),
                ErrorKind::Server(ServerErrorKind::MasterDown | ServerErrorKind::BusyLoading)
            )
    }
}

/// `sessions check [--help]`: reads the service's Redis settings and
/// `SESSIONS_KEY_PREFIX` (and no other setting), prints the report, and returns 0
/// (clean), 1 (problems) or 2 (could not check).
pub fn main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("{}", help());
        return ExitCode::SUCCESS;
    }
    if let Some(extra) = args.first() {
        eprintln!("sessions check: unexpected argument {extra:?} (try --help)");
        return ExitCode::from(2);
    }
    let opts = match Target::from_source(&Env) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            eprintln!("sessions check: REDIS_URL is not set: there is no Redis to check");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("sessions check: {e}");
            return ExitCode::from(2);
        }
    };
    println!("sessions check: {}", opts.describe());
    match check(&opts) {
        Ok(report) => {
            print!("{report}");
            if report.problems() == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("sessions check: {}", mask_url(&e.to_string()));
            ExitCode::from(2)
        }
    }
}

/// `sessions check --help`.
fn help() -> String {
    format!(
        "usage: sessions check\n\nChecks the sessions under {} (default \"{}\") in the Redis \
         the service is configured for ({}, {} standalone, cluster or sentinel, \
         credentials and TLS settings as for the service) for index entries without a \
         session and sessions missing from their indexes. On a cluster it reads every \
         primary. Read-only. Exit code 0: clean, 1: problems found, 2: error.",
        KEY_PREFIX.name,
        KEY_PREFIX.default_text(),
        REDIS_URL.name,
        REDIS_MODE.name,
    )
}

/// Checks every bucket of `opts.prefix` in the Redis `opts` describes.
pub fn check(opts: &Target) -> Result<Report, CheckError> {
    let prefix = opts.prefix.as_str();
    check_prefix(prefix).map_err(|rule| {
        CheckError::Config(format!("invalid {} {prefix:?}: {rule}", KEY_PREFIX.name))
    })?;
    opts.tls.check().map_err(CheckError::Config)?;
    let walker = Walker::new(prefix);
    let mut report = Report::new(prefix);
    match &opts.topology {
        Topology::Standalone => {
            let url = split_urls(&opts.url)
                .next()
                .ok_or_else(|| CheckError::Config("REDIS_URL holds no URL".into()))?;
            let info = connection_info(url, &opts.auth).map_err(CheckError::Config)?;
            let mut node = Node::open(info, &opts.tls)?;
            check_node(&walker, &mut node, &mut report)?;
        }
        Topology::Sentinel { master } => {
            let mut node = sentinel::primary(opts, master)?;
            check_node(&walker, &mut node, &mut report)?;
            sentinel::still_primary(opts, master, &node)?;
        }
        Topology::Cluster => {
            let mut cluster = Cluster::discover(opts)?;
            for bucket in 0..BUCKETS {
                let (node, part) = check_cluster_bucket(&walker, &mut cluster, bucket)?;
                report.absorb(part, &node);
            }
        }
    }
    Ok(report)
}

/// Every bucket, read on one node.
fn check_node(walker: &Walker, node: &mut Node, report: &mut Report) -> Result<(), CheckError> {
    for bucket in 0..BUCKETS {
        let part = walker.bucket(&mut node.con, bucket)?;
        report.absorb(part, &node.addr);
    }
    Ok(())
}

/// One bucket on the primary serving its slot, read again (after asking the cluster
/// where the slot is now) while the slot moves or its node fails, for up to
/// [`RETRY_FOR`]. Returns the node read and the bucket's findings.
fn check_cluster_bucket(
    walker: &Walker,
    cluster: &mut Cluster,
    bucket: u16,
) -> Result<(String, Report), CheckError> {
    let slot = cluster::bucket_slot(bucket);
    let deadline = Instant::now() + RETRY_FOR;
    let mut wait = RETRY_WAIT;
    loop {
        let last = match read_on_owner(walker, cluster, bucket, slot) {
            Ok(done) => return Ok(done),
            Err(e) if e.passing() => e,
            Err(e) => return Err(e),
        };
        if Instant::now() + wait > deadline {
            return Err(CheckError::Unsettled {
                bucket,
                slot,
                last: Box::new(last),
            });
        }
        std::thread::sleep(wait);
        wait = (wait * 2).min(RETRY_WAIT_MAX);
        // A failed refresh (no node answers yet) is retried like the read.
        if let Err(e) = cluster.refresh() {
            if !e.passing() {
                return Err(e);
            }
        }
    }
}

/// Reads one bucket on the primary the slot map names, if that primary says it serves
/// the slot (and is not migrating it) both before and after.
fn read_on_owner(
    walker: &Walker,
    cluster: &mut Cluster,
    bucket: u16,
    slot: u16,
) -> Result<(String, Report), CheckError> {
    let node = cluster.owner(slot)?;
    cluster::ensure_serves(node, slot)?;
    let part = walker.bucket(&mut node.con, bucket)?;
    cluster::ensure_serves(node, slot)?;
    Ok((node.addr.clone(), part))
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_target_is_read_from_the_redis_settings_alone() {
        let none: HashMap<&str, &str> = [("SESSIONS_LISTEN", "not an address")].into();
        assert!(
            Target::from_source(&none).unwrap().is_none(),
            "no REDIS_URL, nothing to check; settings of the service alone are not read"
        );
        let set: HashMap<&str, &str> = [
            ("REDIS_URL", "rediss://a:1,rediss://b:2"),
            ("SESSIONS_REDIS_MODE", "sentinel"),
            ("SESSIONS_REDIS_SENTINEL_MASTER", "m"),
            ("REDIS_PASSWORD", "pw"),
            ("SESSIONS_KEY_PREFIX", "p"),
            ("SESSIONS_REDIS_CA_FILE", "/etc/hostname"),
        ]
        .into();
        let t = Target::from_source(&set).unwrap().unwrap();
        assert_eq!(t.url, "rediss://a:1,rediss://b:2");
        assert_eq!(t.prefix, "p");
        assert_eq!(t.topology, Topology::Sentinel { master: "m".into() });
        assert_eq!(t.auth.password.as_ref().map(|p| p.expose()), Some("pw"));
        assert_eq!(t.tls.ca, Some(std::fs::read("/etc/hostname").unwrap()));
        let secret: HashMap<&str, &str> = [("REDIS_URL", "redis://u:hunter2@h:1/0")].into();
        let described = Target::from_source(&secret).unwrap().unwrap().describe();
        assert_eq!(
            described,
            "standalone redis://u:***@h:1/0 prefix \"sessions\""
        );
        let bad: HashMap<&str, &str> =
            [("REDIS_URL", "redis://h"), ("SESSIONS_KEY_PREFIX", "{")].into();
        let err = Target::from_source(&bad).err().unwrap();
        assert!(err.starts_with("invalid SESSIONS_KEY_PREFIX"), "{err}");
    }

    #[test]
    fn only_topology_changes_are_retried() {
        let moved = RedisError::from((
            ErrorKind::Server(ServerErrorKind::Moved),
            "MOVED",
            "3999 127.0.0.1:6381".to_owned(),
        ));
        assert!(CheckError::Redis(moved).passing());
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(CheckError::Connect {
            addr: "a:1".into(),
            source: io
        }
        .passing());
        assert!(CheckError::Moved("slot moved".into()).passing());
        let auth = RedisError::from((ErrorKind::AuthenticationFailed, "WRONGPASS"));
        assert!(!CheckError::Redis(auth).passing());
        assert!(!CheckError::Reply("junk".into()).passing());
        assert!(!CheckError::Config("bad".into()).passing());
    }
}
