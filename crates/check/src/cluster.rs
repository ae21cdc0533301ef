//! Redis Cluster, for `sessions check`: which primary holds each bucket, and whether
//! it still does.
//!
//! Every key of a bucket carries the hash tag `{NN}`, so the bucket is one slot
//! ([`bucket_slot`]) on one primary. The slot map comes from `CLUSTER SHARDS`, asked of
//! the seed nodes of `REDIS_URL` in turn, then of every node of the previous map, until
//! one answers; the primary of each slot is the shard's `master` whose health is
//! `online`. Before and after a bucket is read, its primary is asked for its own view
//! (`CLUSTER NODES`, the `myself` line): it must still be a primary, serve the slot,
//! and not be migrating it. Anything else is [`CheckError::Moved`], which makes the
//! caller ask for the map again and read the bucket again.
//!
//! One connection per primary is kept, made with the service's credentials and the
//! transport of the seeds (the TLS port of a node when the seeds use `rediss://`).

use std::collections::HashMap;

use redis::{ConnectionInfo, Value};

use super::node::Node;
use super::CheckError;
use super::Target;
use sessions_shared::connect::{connection_infos, is_tls, node_at, Credentials, TlsPem};

/// Slots of a Redis Cluster.
const SLOTS: u16 = 16384;

/// The slot of every key of `bucket` (the CRC16 of its hash tag, two hex digits).
pub(super) fn bucket_slot(bucket: u16) -> u16 {
    crc16(format!("{bucket:02x}").as_bytes()) % SLOTS
}

/// CRC16-CCITT (XMODEM), the key hash of Redis Cluster.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        crc ^= u16::from(byte) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// A node's address as the cluster announces it.
type Addr = (String, u16);

/// One shard of `CLUSTER SHARDS`: its slot ranges, its primary (when one is online),
/// and every node's address.
#[derive(Debug, PartialEq, Eq)]
struct Shard {
    slots: Vec<(u16, u16)>,
    primary: Option<Addr>,
    nodes: Vec<Addr>,
}

/// The cluster as last seen, and connections to its primaries.
pub(super) struct Cluster {
    seeds: Vec<ConnectionInfo>,
    /// Transport and database of every node: the first seed's.
    template: ConnectionInfo,
    /// Every node of the last map, asked for a new map after the seeds.
    known: Vec<Addr>,
    shards: Vec<Shard>,
    auth: Credentials,
    tls: TlsPem,
    conns: HashMap<Addr, Node>,
}

impl Cluster {
    /// Learns the slot map from the seeds in `opts.url`.
    pub fn discover(opts: &Target) -> Result<Cluster, CheckError> {
        let seeds = connection_infos(&opts.url, &opts.auth).map_err(CheckError::Config)?;
        let template = seeds
            .first()
            .cloned()
            .ok_or_else(|| CheckError::Config("REDIS_URL holds no URL".into()))?;
        let mut c = Cluster {
            seeds,
            template,
            known: Vec::new(),
            shards: Vec::new(),
            auth: opts.auth.clone(),
            tls: opts.tls.clone(),
            conns: HashMap::new(),
        };
        c.refresh()?;
        Ok(c)
    }

    /// Asks for the slot map again and drops every connection.
    pub fn refresh(&mut self) -> Result<(), CheckError> {
        self.conns.clear();
        let tls = is_tls(&self.template);
        let known = self.known.iter().map(|(h, p)| self.at(h, *p));
        let askable: Vec<ConnectionInfo> = self.seeds.iter().cloned().chain(known).collect();
        let mut why = Vec::new();
        for info in askable {
            let reply = Node::open(info, &self.tls).and_then(|mut n| {
                let v: Value = redis::cmd("CLUSTER").arg("SHARDS").query(&mut n.con)?;
                Ok((n.addr, v))
            });
            match reply {
                Ok((addr, v)) => match parse_shards(&v, tls) {
                    Ok(shards) => {
                        self.known = shards.iter().flat_map(|s| s.nodes.clone()).collect();
                        self.shards = shards;
                        return Ok(());
                    }
                    Err(e) => why.push(format!("{addr}: CLUSTER SHARDS: {e}")),
                },
                Err(e) => why.push(e.to_string()),
            }
        }
        Err(CheckError::NoPrimary(format!(
            "no cluster node told the slot map: {}",
            why.join("; ")
        )))
    }

    /// The primary serving `slot` in the last map, connected.
    pub fn owner(&mut self, slot: u16) -> Result<&mut Node, CheckError> {
        let shard = self
            .shards
            .iter()
            .find(|s| s.slots.iter().any(|(a, b)| (*a..=*b).contains(&slot)));
        let addr = match shard {
            Some(Shard {
                primary: Some(addr),
                ..
            }) => addr.clone(),
            Some(_) => {
                return Err(CheckError::NoPrimary(format!(
                    "slot {slot} has no primary online"
                )))
            }
            None => {
                return Err(CheckError::NoPrimary(format!(
                    "no shard serves slot {slot}"
                )))
            }
        };
        if !self.conns.contains_key(&addr) {
            let node = Node::open(self.at(&addr.0, addr.1), &self.tls)?;
            self.conns.insert(addr.clone(), node);
        }
        self.conns
            .get_mut(&addr)
            .ok_or_else(|| CheckError::NoPrimary(format!("lost the connection to {}", addr.0)))
    }

    /// Connection settings of the node at `host:port`: the seeds' transport, the
    /// service's credentials.
    fn at(&self, host: &str, port: u16) -> ConnectionInfo {
        node_at(&self.template, host, port, &self.auth)
    }
}

/// Fails with [`CheckError::Moved`] unless `node` says it is a primary serving `slot`
/// and not migrating it.
pub(super) fn ensure_serves(node: &mut Node, slot: u16) -> Result<(), CheckError> {
    let text: String = redis::cmd("CLUSTER").arg("NODES").query(&mut node.con)?;
    serving(&text, slot).map_err(|why| CheckError::Moved(format!("{}: {why}", node.addr)))
}

/// Whether the `myself` line of a `CLUSTER NODES` reply is a primary serving `slot`,
/// with the slot neither migrating nor importing.
fn serving(nodes: &str, slot: u16) -> Result<(), String> {
    let me: Vec<&str> = nodes
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .find(|f| {
            f.get(2)
                .is_some_and(|flags| flags.split(',').any(|x| x == "myself"))
        })
        .ok_or("no myself line in CLUSTER NODES")?;
    let flags: Vec<&str> = me
        .get(2)
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    if !flags.contains(&"master") || flags.iter().any(|f| f.starts_with("fail")) {
        return Err(format!("no longer a primary (flags {})", flags.join(",")));
    }
    let mut owned = false;
    for entry in me.iter().skip(8) {
        if let Some(moving) = entry.strip_prefix('[') {
            // "[slot->-node]" migrating, "[slot-<-node]" importing.
            let n = moving.split(['-', ']']).next().unwrap_or_default();
            if n.parse::<u16>().ok() == Some(slot) {
                return Err(format!("slot {slot} is being moved ({entry})"));
            }
            continue;
        }
        let (a, b) = entry.split_once('-').unwrap_or((entry, entry));
        if let (Ok(a), Ok(b)) = (a.parse::<u16>(), b.parse::<u16>()) {
            owned |= (a..=b).contains(&slot);
        }
    }
    if owned {
        Ok(())
    } else {
        Err(format!("does not serve slot {slot} any more"))
    }
}

/// The field/value pairs of a map reply (a RESP3 map, or a flat array in RESP2).
fn pairs(v: &Value) -> Option<Vec<(String, &Value)>> {
    match v {
        Value::Map(m) => m.iter().map(|(k, v)| Some((text(k)?, v))).collect(),
        Value::Array(a) => a
            .chunks(2)
            .map(|p| match p {
                [k, v] => Some((text(k)?, v)),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn number(v: &Value) -> Option<u16> {
    text(v)?.parse().ok()
}

/// The shards of a `CLUSTER SHARDS` reply; a node's port is its `tls-port` when `tls`.
fn parse_shards(v: &Value, tls: bool) -> Result<Vec<Shard>, String> {
    let Value::Array(shards) = v else {
        return Err(format!("expected a list of shards, got {v:?}"));
    };
    shards
        .iter()
        .map(|shard| {
            let fields = pairs(shard).ok_or("a shard is not a map")?;
            let field = |name: &str| fields.iter().find(|(k, _)| k == name).map(|(_, v)| *v);
            let bounds: Vec<u16> = match field("slots") {
                Some(Value::Array(b)) => b.iter().filter_map(number).collect(),
                _ => return Err("a shard without slots".to_owned()),
            };
            let slots = bounds.chunks_exact(2).map(|p| (p[0], p[1])).collect();
            let Some(Value::Array(nodes)) = field("nodes") else {
                return Err("a shard without nodes".to_owned());
            };
            let mut out = Shard {
                slots,
                primary: None,
                nodes: Vec::new(),
            };
            for node in nodes {
                let f = pairs(node).ok_or("a node is not a map")?;
                let get = |name: &str| f.iter().find(|(k, _)| k == name).and_then(|(_, v)| text(v));
                let host = get("endpoint")
                    .filter(|e| !e.is_empty() && e != "?")
                    .or_else(|| get("ip"))
                    .ok_or("a node without an address")?;
                let (first, second) = if tls {
                    ("tls-port", "port")
                } else {
                    ("port", "tls-port")
                };
                let port = get(first)
                    .or_else(|| get(second))
                    .and_then(|p| p.parse::<u16>().ok())
                    .ok_or("a node without a port")?;
                let addr = (host, port);
                let role = get("role").unwrap_or_default();
                let health = get("health").unwrap_or_default();
                if role == "master" && health == "online" {
                    out.primary = Some(addr.clone());
                }
                out.nodes.push(addr);
            }
            Ok(out)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &str) -> Value {
        Value::BulkString(s.as_bytes().to_vec())
    }

    fn node(port: i64, role: &str, health: &str) -> Value {
        Value::Array(vec![
            bulk("id"),
            bulk("abc"),
            bulk("port"),
            Value::Int(port),
            bulk("tls-port"),
            Value::Int(port + 1000),
            bulk("ip"),
            bulk("10.0.0.1"),
            bulk("endpoint"),
            bulk("10.0.0.1"),
            bulk("role"),
            bulk(role),
            bulk("replication-offset"),
            Value::Int(5),
            bulk("health"),
            bulk(health),
        ])
    }

    #[test]
    fn bucket_slots_are_those_of_redis() {
        // CLUSTER KEYSLOT answers: "123456789" is the CRC16 check value 0x31C3.
        assert_eq!(crc16(b"123456789"), 0x31c3);
        assert_eq!(crc16(b"foo") % SLOTS, 12182);
        // The keys of bucket 0x0a all hash by "0a".
        assert_eq!(bucket_slot(10), crc16(b"0a") % SLOTS);
        let slots: std::collections::HashSet<u16> = (0..64).map(bucket_slot).collect();
        assert_eq!(slots.len(), 64, "every bucket has a slot of its own");
    }

    #[test]
    fn shards_name_the_online_primary_of_each_slot_range() {
        let reply = Value::Array(vec![
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![
                    Value::Int(0),
                    Value::Int(99),
                    Value::Int(200),
                    Value::Int(299),
                ]),
                bulk("nodes"),
                Value::Array(vec![
                    node(7001, "replica", "online"),
                    node(7000, "master", "online"),
                ]),
            ]),
            Value::Array(vec![
                bulk("slots"),
                Value::Array(vec![Value::Int(100), Value::Int(199)]),
                bulk("nodes"),
                Value::Array(vec![node(7002, "master", "failed")]),
            ]),
        ]);
        let shards = parse_shards(&reply, false).unwrap();
        assert_eq!(shards[0].slots, [(0, 99), (200, 299)]);
        assert_eq!(shards[0].primary, Some(("10.0.0.1".to_owned(), 7000)));
        assert_eq!(shards[0].nodes.len(), 2);
        assert_eq!(shards[1].primary, None, "a failed primary serves nothing");
        let tls = parse_shards(&reply, true).unwrap();
        assert_eq!(tls[0].primary, Some(("10.0.0.1".to_owned(), 8000)));
        assert!(parse_shards(&Value::Nil, false).is_err());
    }

    #[test]
    fn a_node_serves_a_slot_only_when_it_owns_it_and_keeps_it() {
        let me = "e1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-100 205 [150->-e2]\n\
                  e2 127.0.0.1:7001@17001 master - 0 0 2 connected 101-204\n";
        assert!(serving(me, 0).is_ok());
        assert!(serving(me, 100).is_ok());
        assert!(serving(me, 205).is_ok());
        assert!(serving(me, 101).unwrap_err().contains("does not serve"));
        assert!(serving(me, 150).unwrap_err().contains("being moved"));
        let importing = "e1 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-100 [7-<-e2]";
        assert!(serving(importing, 7).is_err());
        let replica = "e1 127.0.0.1:7000@17000 myself,slave e2 0 0 1 connected";
        assert!(serving(replica, 0)
            .unwrap_err()
            .contains("no longer a primary"));
        assert!(serving("", 0).is_err());
    }
}
