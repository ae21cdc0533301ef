//! One bucket of `sessions check`: SCANs the bucket's keys on the node that holds
//! them, sorts them by what the key layout says they are, and looks at them with the
//! read-only scripts (`lua/*.lua`, each documented at its head), handing each row to
//! the verdicts (`verdict.rs`). Every key of a bucket shares the bucket's hash tag, so
//! every script call is one atomic look at one slot of one node.

use std::collections::HashSet;

use redis::{Connection, Script, Value};

use super::report::{Kind, Report};
use super::verdict::{cell, judge_entry, judge_reuse, judge_session, Index};
use super::CheckError;

/// `COUNT` hint of each SCAN / ZSCAN / HSCAN step.
const SCAN_COUNT: usize = 1000;
/// Keys or entries looked at per script call: small enough to keep each call short.
const BATCH: usize = 100;
/// User indexes read whole per script call, and the most members read from one; a
/// bigger index is walked with ZSCAN.
const USER_BATCH: usize = 50;
const SMALL_INDEX: usize = 100;

/// For each session id: the hash and its membership of every index it could be in.
const SESSIONS_LUA: &str = include_str!("lua/sessions.lua");

/// For each member of a sorted-set index: still there, and the session behind it.
const ENTRIES_LUA: &str = include_str!("lua/entries.lua");

/// Every member of many small user indexes of one bucket, and the session behind each.
const USERS_LUA: &str = include_str!("lua/users.lua");

/// For each entry of the reuse hash: still there, and the session it points at.
const REUSE_LUA: &str = include_str!("lua/reuse.lua");

/// Checks the buckets of one prefix, one at a time, on whatever connection holds each.
pub(super) struct Walker {
    prefix: String,
    scripts: Scripts,
}

impl Walker {
    pub fn new(prefix: &str) -> Walker {
        Walker {
            prefix: prefix.to_owned(),
            scripts: Scripts {
                sessions: Script::new(SESSIONS_LUA),
                entries: Script::new(ENTRIES_LUA),
                users: Script::new(USERS_LUA),
                reuse: Script::new(REUSE_LUA),
            },
        }
    }

    /// The findings of `bucket`, read on `con` (the node that holds its slot).
    pub fn bucket(&self, con: &mut Connection, bucket: u16) -> Result<Report, CheckError> {
        let mut report = Report::new(&self.prefix);
        check_bucket(con, &self.scripts, &self.prefix, bucket, &mut report)?;
        Ok(report)
    }
}

struct Scripts {
    sessions: Script,
    entries: Script,
    users: Script,
    reuse: Script,
}

/// The keys of one bucket, by what the layout says they are.
#[derive(Default)]
struct BucketKeys {
    base: String,
    sessions: Vec<String>,
    /// Sorted-set indexes: (key, what it holds).
    indexes: Vec<(String, Index)>,
    reuse: Option<String>,
}

/// What the part of a key after the bucket base names.
#[derive(Debug, PartialEq, Eq)]
enum KeyKind {
    Session(String),
    Index(Index),
    Reuse,
    Unknown,
}

fn classify(rest: &str) -> KeyKind {
    match rest {
        "oa" => KeyKind::Index(Index::OpenActive),
        "oc" => KeyKind::Index(Index::OpenClosed),
        "exp" => KeyKind::Index(Index::Expiry),
        "ret" => KeyKind::Index(Index::Retention),
        "reuse" => KeyKind::Reuse,
        _ => {
            if let Some(id) = rest.strip_prefix("s:") {
                KeyKind::Session(id.to_owned())
            } else if let Some(u) = rest.strip_prefix("ua:") {
                KeyKind::Index(Index::User {
                    user_id: u.to_owned(),
                    active: true,
                })
            } else if let Some(u) = rest.strip_prefix("uc:") {
                KeyKind::Index(Index::User {
                    user_id: u.to_owned(),
                    active: false,
                })
            } else {
                KeyKind::Unknown
            }
        }
    }
}

/// `text` with the glob characters of SCAN's MATCH escaped.
fn glob_escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            s.push('\\');
        }
        s.push(c);
    }
    s
}

fn check_bucket(
    con: &mut Connection,
    scripts: &Scripts,
    prefix: &str,
    bucket: u16,
    report: &mut Report,
) -> Result<(), CheckError> {
    let keys = scan_bucket(con, prefix, bucket, report)?;
    let oa = format!("{}oa", keys.base);
    let oc = format!("{}oc", keys.base);
    let exp = format!("{}exp", keys.base);
    let ret = format!("{}ret", keys.base);
    for ids in keys.sessions.chunks(BATCH) {
        let mut inv = scripts.sessions.prepare_invoke();
        inv.key(&oa).key(&oc).key(&exp).key(&ret).arg(&keys.base);
        for id in ids {
            inv.arg(id);
        }
        let rows = rows(inv.invoke(con)?, ids.len())?;
        for (id, row) in ids.iter().zip(rows) {
            let key = format!("{}s:{id}", keys.base);
            judge_session(bucket, &key, id, &row, report);
        }
    }
    let (users, mut walk): (Vec<_>, Vec<_>) = keys
        .indexes
        .iter()
        .partition(|(_, index)| matches!(index, Index::User { .. }));
    for batch in users.chunks(USER_BATCH) {
        let mut inv = scripts.users.prepare_invoke();
        inv.key(&oa).arg(&keys.base).arg(SMALL_INDEX);
        for (key, _) in batch {
            inv.arg(key);
        }
        let rows = rows(inv.invoke(con)?, batch.len())?;
        for (&pair, row) in batch.iter().zip(rows) {
            let (key, index) = pair;
            if cell(&row, 0) != Some("ok") {
                walk.push(pair);
                continue;
            }
            for entry in row.get(1..).unwrap_or_default().chunks(4) {
                let [id, rest @ ..] = entry else { continue };
                let Some(id) = id.as_deref() else { continue };
                let mut looked = vec![Some("1".to_string())];
                looked.extend(rest.iter().cloned());
                report.index_entries += 1;
                judge_entry(key, index, id, &looked, report);
            }
        }
    }
    for (key, index) in walk {
        let mut seen = HashSet::new();
        scan_members(con, "ZSCAN", key, |con, page| {
            let ids: Vec<String> = page
                .chunks(2)
                .filter_map(|p| p.first().cloned())
                .filter(|id| seen.insert(id.clone()))
                .collect();
            for batch in ids.chunks(BATCH) {
                let mut inv = scripts.entries.prepare_invoke();
                inv.key(key).arg(&keys.base);
                for id in batch {
                    inv.arg(id);
                }
                let rows = rows(inv.invoke(con)?, batch.len())?;
                for (id, row) in batch.iter().zip(rows) {
                    report.index_entries += 1;
                    judge_entry(key, index, id, &row, report);
                }
            }
            Ok(())
        })?;
    }
    if let Some(key) = &keys.reuse {
        let mut seen = HashSet::new();
        scan_members(con, "HSCAN", key, |con, page| {
            let pairs: Vec<(String, String)> = page
                .chunks(2)
                .filter_map(|p| match p {
                    [rk, id] => Some((rk.clone(), id.clone())),
                    _ => None,
                })
                .filter(|(rk, _)| seen.insert(rk.clone()))
                .collect();
            for batch in pairs.chunks(BATCH) {
                let mut inv = scripts.reuse.prepare_invoke();
                inv.key(key).arg(&keys.base);
                for (rk, id) in batch {
                    inv.arg(rk).arg(id);
                }
                let rows = rows(inv.invoke(con)?, batch.len())?;
                for ((rk, id), row) in batch.iter().zip(rows) {
                    report.reuse_entries += 1;
                    judge_reuse(key, rk, id, &row, report);
                }
            }
            Ok(())
        })?;
    }
    Ok(())
}

/// SCANs the keys of one bucket and sorts them by what they are; keys of the wrong
/// type or outside the layout are reported and left out.
fn scan_bucket(
    con: &mut Connection,
    prefix: &str,
    bucket: u16,
    report: &mut Report,
) -> Result<BucketKeys, CheckError> {
    let mut keys = BucketKeys {
        base: format!("{prefix}:{{{bucket:02x}}}:"),
        ..BucketKeys::default()
    };
    let pattern = format!("{}*", glob_escape(&keys.base));
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut others: Vec<(String, Option<Index>)> = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(con)?;
        for raw in page {
            if !seen.insert(raw.clone()) {
                continue; // SCAN may return a key twice
            }
            let Ok(key) = String::from_utf8(raw) else {
                report.add(Kind::UnknownKey, "(not UTF-8)", "", "key name is not UTF-8");
                continue;
            };
            let rest = key.get(keys.base.len()..).unwrap_or_default();
            match classify(rest) {
                KeyKind::Session(id) => keys.sessions.push(id),
                KeyKind::Index(index) => others.push((key, Some(index))),
                KeyKind::Reuse => others.push((key, None)),
                KeyKind::Unknown => {
                    report.add(Kind::UnknownKey, &key, "", "not a key of the layout")
                }
            }
        }
        cursor = next;
        if cursor == 0 {
            break;
        }
    }
    keys.sessions.sort();
    // Index keys must be sorted sets and the reuse key a hash: check before reading.
    for batch in others.chunks(BATCH) {
        let mut pipe = redis::pipe();
        for (key, _) in batch {
            pipe.cmd("TYPE").arg(key);
        }
        let types: Vec<String> = pipe.query(con)?;
        for ((key, index), ty) in batch.iter().zip(types) {
            let want = if index.is_some() { "zset" } else { "hash" };
            if ty == "none" {
                continue; // deleted since the scan
            }
            if ty != want {
                report.add(
                    Kind::UnknownKey,
                    key,
                    "",
                    format!("a {ty}, expected a {want}"),
                );
                continue;
            }
            match index {
                Some(index) => keys.indexes.push((key.clone(), index.clone())),
                None => keys.reuse = Some(key.clone()),
            }
        }
    }
    keys.indexes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(keys)
}

/// Walks a sorted set (ZSCAN) or hash (HSCAN), handing each page of flat
/// member/score or field/value pairs to `each`.
fn scan_members(
    con: &mut Connection,
    command: &str,
    key: &str,
    mut each: impl FnMut(&mut Connection, Vec<String>) -> Result<(), CheckError>,
) -> Result<(), CheckError> {
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<String>) = redis::cmd(command)
            .arg(key)
            .arg(cursor)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(con)?;
        each(con, page)?;
        cursor = next;
        if cursor == 0 {
            return Ok(());
        }
    }
}

/// One row per input of a script reply, each a list of optional strings.
fn rows(reply: Value, expected: usize) -> Result<Vec<Vec<Option<String>>>, CheckError> {
    let Value::Array(rows) = reply else {
        return Err(CheckError::Reply(format!("expected rows, got {reply:?}")));
    };
    if rows.len() != expected {
        return Err(CheckError::Reply(format!(
            "{} rows for {expected} inputs",
            rows.len()
        )));
    }
    rows.into_iter()
        .map(|row| match row {
            Value::Array(cells) => Ok(cells.iter().map(text).collect()),
            other => Err(CheckError::Reply(format!("expected a row, got {other:?}"))),
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Okay => Some("OK".into()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_classified_by_the_layout() {
        assert_eq!(classify("oa"), KeyKind::Index(Index::OpenActive));
        assert_eq!(classify("s:0a12"), KeyKind::Session("0a12".into()));
        assert_eq!(
            classify("uc:a:b"),
            KeyKind::Index(Index::User {
                user_id: "a:b".into(),
                active: false
            })
        );
        assert_eq!(classify("reuse"), KeyKind::Reuse);
        assert_eq!(classify("other"), KeyKind::Unknown);
        assert_eq!(glob_escape("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
