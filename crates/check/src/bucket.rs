//! One bucket of `sessions check`: SCANs the bucket's keys on the node that holds
//! them, sorts them by what the key layout says they are, and looks at them with the
//! read-only scripts (`lua/*.lua`, each documented at its head), handing each row to
//! the verdicts (`verdict.rs`). Every key of a bucket shares the bucket's hash tag, so
//! every script call is one atomic look at one slot of one node.

use std::collections::HashSet;

use redis::{Connection, Script, Value};

use sessions_shared::keys::{BucketKeys, KeyKind as Layout, Keys};

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
    keys: Keys,
    scripts: Scripts,
}

impl Walker {
    pub fn new(prefix: &str) -> Walker {
        Walker {
            prefix: prefix.to_owned(),
            keys: Keys::new(prefix),
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
        let look = Look {
            scripts: &self.scripts,
            keys: &self.keys,
            names: self.keys.bucket(bucket),
            bucket,
        };
        check_bucket(con, &look, &mut report)?;
        Ok(report)
    }
}

struct Scripts {
    sessions: Script,
    entries: Script,
    users: Script,
    reuse: Script,
}

/// What looking at one bucket needs: the scripts, and the bucket's key names.
struct Look<'a> {
    scripts: &'a Scripts,
    keys: &'a Keys,
    /// `keys`' names of this bucket.
    names: &'a BucketKeys,
    bucket: u16,
}

/// The keys of one bucket the scan found, by what the layout says they are.
#[derive(Default)]
struct Found {
    /// Ids of the session hashes, sorted.
    sessions: Vec<String>,
    /// Sorted-set indexes, sorted by key: (key, what it holds).
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

/// What a key is, by the layout ([`Layout::parse`]), as the check sorts it.
fn classify(rest: &str) -> KeyKind {
    let user = |user_id: &str, active| {
        KeyKind::Index(Index::User {
            user_id: user_id.to_owned(),
            active,
        })
    };
    match Layout::parse(rest) {
        Some(Layout::Session(id)) => KeyKind::Session(id.to_owned()),
        Some(Layout::OpenActive) => KeyKind::Index(Index::OpenActive),
        Some(Layout::OpenClosed) => KeyKind::Index(Index::OpenClosed),
        Some(Layout::Expiry) => KeyKind::Index(Index::Expiry),
        Some(Layout::Retention) => KeyKind::Index(Index::Retention),
        Some(Layout::User { user_id, active }) => user(user_id, active),
        Some(Layout::Reuse) => KeyKind::Reuse,
        None => KeyKind::Unknown,
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

/// Scans one bucket, then looks at what the scan found: the sessions, the user
/// indexes small enough to read whole, then, walked, the bucket's own indexes and the
/// bigger user indexes, and last the reuse hash.
fn check_bucket(con: &mut Connection, look: &Look, report: &mut Report) -> Result<(), CheckError> {
    let found = scan_bucket(con, &look.names.base, report)?;
    look_at_sessions(con, look, &found.sessions, report)?;
    let (users, others): (Vec<_>, Vec<_>) = found
        .indexes
        .iter()
        .partition(|(_, index)| matches!(index, Index::User { .. }));
    let big = look_at_user_indexes(con, look, &users, report)?;
    for (key, index) in others.into_iter().chain(big) {
        walk_index(con, look, key, index, report)?;
    }
    if let Some(key) = &found.reuse {
        walk_reuse(con, look, key, report)?;
    }
    Ok(())
}

/// Each session hash with its membership of every index (`lua/sessions.lua`).
fn look_at_sessions(
    con: &mut Connection,
    look: &Look,
    ids: &[String],
    report: &mut Report,
) -> Result<(), CheckError> {
    let names = look.names;
    for batch in ids.chunks(BATCH) {
        let mut inv = look.scripts.sessions.prepare_invoke();
        inv.key(&names.oa)
            .key(&names.oc)
            .key(&names.exp)
            .key(&names.ret)
            .arg(&names.base);
        for id in batch {
            inv.arg(id);
        }
        let rows = rows(inv.invoke(con)?, batch.len())?;
        for (id, row) in batch.iter().zip(rows) {
            let key = look.keys.session(look.bucket, id);
            judge_session(look.bucket, &key, id, &row, report);
        }
    }
    Ok(())
}

/// Reads user indexes whole, many per call (`lua/users.lua`), and judges their
/// entries; returns those too big to read whole, for [`walk_index`].
fn look_at_user_indexes<'i>(
    con: &mut Connection,
    look: &Look,
    users: &[&'i (String, Index)],
    report: &mut Report,
) -> Result<Vec<&'i (String, Index)>, CheckError> {
    let mut big = Vec::new();
    for batch in users.chunks(USER_BATCH) {
        let mut inv = look.scripts.users.prepare_invoke();
        inv.key(&look.names.oa)
            .arg(&look.names.base)
            .arg(SMALL_INDEX);
        for (key, _) in batch {
            inv.arg(key);
        }
        let rows = rows(inv.invoke(con)?, batch.len())?;
        for (&pair, row) in batch.iter().zip(rows) {
            if cell(&row, 0) != Some("ok") {
                big.push(pair);
                continue;
            }
            let (key, index) = pair;
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
    Ok(big)
}

/// Walks one sorted-set index with ZSCAN and judges each entry (`lua/entries.lua`).
fn walk_index(
    con: &mut Connection,
    look: &Look,
    key: &str,
    index: &Index,
    report: &mut Report,
) -> Result<(), CheckError> {
    let mut seen = HashSet::new();
    scan_members(con, "ZSCAN", key, |con, page| {
        let ids: Vec<String> = page
            .chunks(2)
            .filter_map(|p| p.first().cloned())
            .filter(|id| seen.insert(id.clone()))
            .collect();
        for batch in ids.chunks(BATCH) {
            let mut inv = look.scripts.entries.prepare_invoke();
            inv.key(key).arg(&look.names.base);
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
    })
}

/// Walks the reuse hash with HSCAN and judges each entry (`lua/reuse.lua`).
fn walk_reuse(
    con: &mut Connection,
    look: &Look,
    key: &str,
    report: &mut Report,
) -> Result<(), CheckError> {
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
            let mut inv = look.scripts.reuse.prepare_invoke();
            inv.key(key).arg(&look.names.base);
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
    })
}

/// SCANs the keys of one bucket (those starting with its `base`) and sorts them by
/// what they are; keys of the wrong type or outside the layout are reported and left
/// out.
fn scan_bucket(con: &mut Connection, base: &str, report: &mut Report) -> Result<Found, CheckError> {
    let mut found = Found::default();
    let mut typed: Vec<(String, Option<Index>)> = Vec::new();
    for raw in scan_keys(con, base)? {
        let Ok(key) = String::from_utf8(raw) else {
            report.add(Kind::UnknownKey, "(not UTF-8)", "", "key name is not UTF-8");
            continue;
        };
        let rest = key.get(base.len()..).unwrap_or_default();
        match classify(rest) {
            KeyKind::Session(id) => found.sessions.push(id),
            KeyKind::Index(index) => typed.push((key, Some(index))),
            KeyKind::Reuse => typed.push((key, None)),
            KeyKind::Unknown => report.add(Kind::UnknownKey, &key, "", "not a key of the layout"),
        }
    }
    found.sessions.sort();
    keep_if_typed(con, &typed, &mut found, report)?;
    found.indexes.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}

/// The names of the keys starting with `base`, each once (SCAN may return a key
/// twice), in the order SCAN returns them.
fn scan_keys(con: &mut Connection, base: &str) -> Result<Vec<Vec<u8>>, CheckError> {
    let pattern = format!("{}*", glob_escape(base));
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut keys = Vec::new();
    let mut cursor = 0u64;
    loop {
        let (next, page): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query(con)?;
        keys.extend(page.into_iter().filter(|k| seen.insert(k.clone())));
        cursor = next;
        if cursor == 0 {
            return Ok(keys);
        }
    }
}

/// Keeps the index keys that are sorted sets and the reuse key if it is a hash (each
/// given with its [`Index`], or `None` for the reuse key), checked before reading them;
/// a key of another type is reported, one gone since the scan skipped.
fn keep_if_typed(
    con: &mut Connection,
    typed: &[(String, Option<Index>)],
    found: &mut Found,
    report: &mut Report,
) -> Result<(), CheckError> {
    for batch in typed.chunks(BATCH) {
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
                Some(index) => found.indexes.push((key.clone(), index.clone())),
                None => found.reuse = Some(key.clone()),
            }
        }
    }
    Ok(())
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
