//! `sessions check`: a read-only consistency check of the sessions kept in Redis.
//!
//! It connects to `REDIS_URL`, walks the keys of `SESSIONS_KEY_PREFIX` bucket by
//! bucket with `SCAN` (never `KEYS`), and checks that every session hash and every
//! index entry agree, as the store's scripts keep them (key layout: see
//! `store/redis/mod.rs`):
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
//! Each look at Redis is one read-only Lua script over one batch of one bucket (every
//! key it reads shares the bucket's hash tag), so a session and its index entries are
//! seen in one atomic snapshot: running the check against a live service reports no
//! false problems, and a session changed between the scan and the look is judged by
//! what it is at the look. Only keys the scan found are looked at.
//!
//! The cost is one `SCAN` pass over the keyspace per bucket, plus a script call per
//! hundred keys or entries; nothing is written. It talks to one Redis node.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::process::ExitCode;
use std::time::Duration;

use redis::{Connection, Script, Value};

use crate::model::{bucket_of_session, bucket_of_user, BUCKETS};
use crate::telemetry::mask_url;

/// `COUNT` hint of each SCAN / ZSCAN / HSCAN step.
const SCAN_COUNT: usize = 1000;
/// Keys or entries looked at per script call: small enough to keep each call short.
const BATCH: usize = 100;
/// User indexes read whole per script call, and the most members read from one; a
/// bigger index is walked with ZSCAN.
const USER_BATCH: usize = 50;
const SMALL_INDEX: usize = 100;
/// Problems listed per kind; the rest are only counted.
const EXAMPLES: usize = 10;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// For each session id: the hash and its membership of every index it could be in.
/// KEYS: oa, oc, exp, ret of the bucket. ARGV[1] the bucket base, ARGV[2..] ids.
/// Row: {type} when not a hash, else {type, id, active, user_id, open_time,
/// request_time, close_time, score in ua, uc, oa, oc, exp, ret}.
const SESSIONS_LUA: &str = r#"#!lua flags=no-writes
local base = ARGV[1]
local function score(key, id)
  local r = redis.pcall('ZSCORE', key, id)
  if type(r) == 'table' then return false end
  return r
end
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = base .. 's:' .. id
  local t = redis.call('TYPE', key).ok
  if t ~= 'hash' then
    out[#out + 1] = {t}
  else
    local f = redis.call('HMGET', key, 'id', 'active', 'user_id', 'open_time',
      'request_time', 'close_time')
    local ua, uc = false, false
    if f[3] then
      ua = score(base .. 'ua:' .. f[3], id)
      uc = score(base .. 'uc:' .. f[3], id)
    end
    out[#out + 1] = {t, f[1], f[2], f[3], f[4], f[5], f[6], ua, uc,
      score(KEYS[1], id), score(KEYS[2], id), score(KEYS[3], id), score(KEYS[4], id)}
  end
end
return out
"#;

/// For each member of a sorted-set index: still there, and the session behind it.
/// KEYS[1] the index. ARGV[1] the bucket base, ARGV[2..] ids.
/// Row: {1 when still a member else 0, type of the session key, active, user_id}.
const ENTRIES_LUA: &str = r#"#!lua flags=no-writes
local out = {}
for i = 2, #ARGV do
  local id = ARGV[i]
  local key = ARGV[1] .. 's:' .. id
  local present = 0
  if redis.call('ZSCORE', KEYS[1], id) then present = 1 end
  local t = redis.call('TYPE', key).ok
  local f = {false, false}
  if t == 'hash' then f = redis.call('HMGET', key, 'active', 'user_id') end
  out[#out + 1] = {present, t, f[1], f[2]}
end
return out
"#;

/// Every member of many small user indexes of one bucket, and the session behind each:
/// one call instead of a ZSCAN and a look per index, as most users have few sessions.
/// KEYS[1] the bucket's oa (names the slot). ARGV[1] the bucket base, ARGV[2] the most
/// members read from one index, ARGV[3..] index keys.
/// Row per index: {'big'} when it has more members (the caller walks it with ZSCAN),
/// else {'ok', then id, type, active, user_id for each member}.
const USERS_LUA: &str = r#"#!lua flags=no-writes
local limit = tonumber(ARGV[2])
local out = {}
for i = 3, #ARGV do
  local k = ARGV[i]
  local row = {'big'}
  if redis.call('ZCARD', k) <= limit then
    row[1] = 'ok'
    for _, id in ipairs(redis.call('ZRANGE', k, 0, -1)) do
      local key = ARGV[1] .. 's:' .. id
      local t = redis.call('TYPE', key).ok
      local f = {false, false}
      if t == 'hash' then f = redis.call('HMGET', key, 'active', 'user_id') end
      row[#row + 1] = id
      row[#row + 1] = t
      row[#row + 1] = f[1]
      row[#row + 1] = f[2]
    end
  end
  out[#out + 1] = row
end
return out
"#;

/// For each entry of the reuse hash: still there, and the session it points at.
/// KEYS[1] the reuse hash. ARGV[1] the bucket base, ARGV[2..] pairs reuse key, id.
/// Row: {1 when the entry still points at id else 0, type, active, the session's rk}.
const REUSE_LUA: &str = r#"#!lua flags=no-writes
local out = {}
for i = 2, #ARGV, 2 do
  local rk, id = ARGV[i], ARGV[i + 1]
  local key = ARGV[1] .. 's:' .. id
  local present = 0
  if redis.call('HGET', KEYS[1], rk) == id then present = 1 end
  local t = redis.call('TYPE', key).ok
  local f = {false, false}
  if t == 'hash' then f = redis.call('HMGET', key, 'active', 'rk') end
  out[#out + 1] = {present, t, f[1], f[2]}
end
return out
"#;

/// What kind of inconsistency a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// An index or reuse entry whose session hash does not exist.
    DanglingEntry,
    /// A session missing from an index its active flag puts it in (other than expiry).
    MissingFromIndex,
    /// An active session missing from the expiry index: it would never expire.
    MissingFromExpiry,
    /// A closed session in an active index, or an active one in a closed index.
    InWrongIndex,
    /// An index entry whose score is not the session's time it is sorted by.
    WrongScore,
    /// A user index entry of a session of another user.
    WrongUserIndex,
    /// A reuse entry pointing at a closed session.
    ReuseNotActive,
    /// A reuse entry whose key is not the reuse key of the session it points at.
    ReuseKeyMismatch,
    /// A session hash that is malformed (missing or bad fields, wrong bucket, not a hash).
    BadSession,
    /// A key under the prefix that is not part of the layout, or of the wrong type.
    UnknownKey,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::DanglingEntry => "dangling_entry",
            Kind::MissingFromIndex => "missing_from_index",
            Kind::MissingFromExpiry => "missing_from_expiry",
            Kind::InWrongIndex => "in_wrong_index",
            Kind::WrongScore => "wrong_score",
            Kind::WrongUserIndex => "wrong_user_index",
            Kind::ReuseNotActive => "reuse_not_active",
            Kind::ReuseKeyMismatch => "reuse_key_mismatch",
            Kind::BadSession => "bad_session",
            Kind::UnknownKey => "unknown_key",
        }
    }

    fn meaning(self) -> &'static str {
        match self {
            Kind::DanglingEntry => "index or reuse entries without a session hash",
            Kind::MissingFromIndex => "sessions missing from an index their state calls for",
            Kind::MissingFromExpiry => "active sessions missing from the expiry index",
            Kind::InWrongIndex => {
                "closed sessions in active indexes or active ones in closed indexes"
            }
            Kind::WrongScore => "index entries whose score is not the session's time",
            Kind::WrongUserIndex => "user index entries of another user's session",
            Kind::ReuseNotActive => "reuse entries pointing at a closed session",
            Kind::ReuseKeyMismatch => "reuse entries whose key is not the session's reuse key",
            Kind::BadSession => "malformed session hashes",
            Kind::UnknownKey => "keys under the prefix that are not part of the layout",
        }
    }
}

/// One problem: its kind, the key it was found at, the session id, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub kind: Kind,
    pub key: String,
    pub id: String,
    pub detail: String,
}

/// What a check saw and found.
#[derive(Debug, Default)]
pub struct Report {
    pub prefix: String,
    pub buckets: u16,
    pub active: u64,
    pub closed: u64,
    /// Sorted-set index entries looked at.
    pub index_entries: u64,
    /// Reuse hash entries looked at.
    pub reuse_entries: u64,
    /// Problems by kind.
    pub counts: BTreeMap<Kind, u64>,
    /// The first [`EXAMPLES`] problems of each kind.
    pub examples: Vec<Finding>,
}

impl Report {
    /// Total problems found.
    pub fn problems(&self) -> u64 {
        self.counts.values().sum()
    }

    fn add(&mut self, kind: Kind, key: &str, id: &str, detail: impl Into<String>) {
        let n = self.counts.entry(kind).or_insert(0);
        *n += 1;
        if *n <= EXAMPLES as u64 {
            self.examples.push(Finding {
                kind,
                key: key.to_owned(),
                id: id.to_owned(),
                detail: detail.into(),
            });
        }
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "prefix {:?}: {} buckets, {} sessions ({} active, {} closed), {} index entries, {} reuse entries",
            self.prefix,
            self.buckets,
            self.active + self.closed,
            self.active,
            self.closed,
            self.index_entries,
            self.reuse_entries
        )?;
        for (kind, n) in &self.counts {
            writeln!(f, "{}: {n} ({})", kind.name(), kind.meaning())?;
            for e in self.examples.iter().filter(|e| e.kind == *kind) {
                writeln!(f, "  {} {}: {}", e.key, e.id, e.detail)?;
            }
        }
        if self.counts.is_empty() {
            writeln!(f, "OK: no problems found")
        } else {
            writeln!(f, "FAILED: {} problems found", self.problems())
        }
    }
}

/// Why the check could not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{0}")]
    Config(String),
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("unexpected reply from Redis: {0}")]
    Reply(String),
}

/// `sessions check [--help]`: reads `REDIS_URL` and `SESSIONS_KEY_PREFIX`, prints the
/// report, and returns 0 (clean), 1 (problems) or 2 (could not check).
pub fn main(args: &[String]) -> ExitCode {
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: sessions check\n\nChecks the sessions in REDIS_URL under SESSIONS_KEY_PREFIX \
             (default \"sessions\") for index entries without a session and sessions missing \
             from their indexes. Read-only. Exit code 0: clean, 1: problems found, 2: error."
        );
        return ExitCode::SUCCESS;
    }
    if let Some(extra) = args.first() {
        eprintln!("sessions check: unexpected argument {extra:?} (try --help)");
        return ExitCode::from(2);
    }
    let url = match std::env::var("REDIS_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            eprintln!("sessions check: REDIS_URL is not set: there is no Redis to check");
            return ExitCode::from(2);
        }
    };
    let prefix = std::env::var("SESSIONS_KEY_PREFIX").unwrap_or_else(|_| "sessions".into());
    println!("sessions check: {} prefix {prefix:?}", mask_url(&url));
    match check(&url, &prefix) {
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

/// Checks every bucket of `prefix` in the Redis at `url`.
pub fn check(url: &str, prefix: &str) -> Result<Report, CheckError> {
    if prefix.is_empty() || prefix.contains(['{', '}']) {
        return Err(CheckError::Config(format!(
            "invalid SESSIONS_KEY_PREFIX {prefix:?}: it must be non-empty without '{{' or '}}'"
        )));
    }
    let client = redis::Client::open(url)
        .map_err(|e| CheckError::Config(format!("invalid REDIS_URL: {e}")))?;
    let mut con = client.get_connection_with_timeout(CONNECT_TIMEOUT)?;
    con.set_read_timeout(Some(IO_TIMEOUT))?;
    con.set_write_timeout(Some(IO_TIMEOUT))?;
    let scripts = Scripts {
        sessions: Script::new(SESSIONS_LUA),
        entries: Script::new(ENTRIES_LUA),
        users: Script::new(USERS_LUA),
        reuse: Script::new(REUSE_LUA),
    };
    let mut report = Report {
        prefix: prefix.to_owned(),
        ..Report::default()
    };
    for bucket in 0..BUCKETS {
        check_bucket(&mut con, &scripts, prefix, bucket, &mut report)?;
        report.buckets += 1;
    }
    Ok(report)
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

/// A sorted-set index and what its entries must be.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Index {
    OpenActive,
    OpenClosed,
    Expiry,
    Retention,
    User { user_id: String, active: bool },
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

fn cell(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i).and_then(|c| c.as_deref())
}

/// Whether an index score (as Redis prints it) is the time field `ms`.
fn same_time(score: &str, ms: Option<&str>) -> bool {
    match (score.parse::<f64>(), ms.and_then(|m| m.parse::<i64>().ok())) {
        (Ok(s), Some(m)) => (s - m as f64).abs() < 0.5,
        _ => false,
    }
}

/// Judges one session from its [`SESSIONS_LUA`] row.
fn judge_session(bucket: u16, key: &str, id: &str, row: &[Option<String>], report: &mut Report) {
    match cell(row, 0) {
        Some("hash") => {}
        Some("none") | None => return, // deleted since the scan
        Some(other) => {
            report.add(Kind::BadSession, key, id, format!("a {other}, not a hash"));
            return;
        }
    }
    let field = |i| cell(row, i);
    let (stored_id, active, user_id) = (field(1), field(2), field(3));
    let (open, request, close) = (field(4), field(5), field(6));
    if stored_id != Some(id) {
        report.add(
            Kind::BadSession,
            key,
            id,
            format!("id field is {stored_id:?}"),
        );
    }
    if bucket_of_session(id) != Some(bucket) {
        report.add(
            Kind::BadSession,
            key,
            id,
            "the id does not name this bucket",
        );
    }
    let Some(user_id) = user_id else {
        report.add(Kind::BadSession, key, id, "no user_id");
        return;
    };
    if bucket_of_user(user_id) != bucket {
        report.add(
            Kind::BadSession,
            key,
            id,
            "the user_id belongs to another bucket",
        );
    }
    let active = match active {
        Some("1") => true,
        Some("0") => false,
        other => {
            report.add(Kind::BadSession, key, id, format!("active is {other:?}"));
            return;
        }
    };
    for (name, value) in [("open_time", open), ("request_time", request)] {
        if value.and_then(|v| v.parse::<i64>().ok()).is_none() {
            report.add(Kind::BadSession, key, id, format!("{name} is {value:?}"));
        }
    }
    if !active && close.and_then(|v| v.parse::<i64>().ok()).is_none() {
        report.add(
            Kind::BadSession,
            key,
            id,
            format!("closed, close_time is {close:?}"),
        );
    }
    if active {
        report.active += 1;
    } else {
        report.closed += 1;
    }
    // (index name, score cell, whether it holds active sessions, time it is sorted by)
    let indexes = [
        ("ua", 7, true, open),
        ("uc", 8, false, open),
        ("oa", 9, true, open),
        ("oc", 10, false, open),
        ("exp", 11, true, request),
        ("ret", 12, false, close),
    ];
    for (name, i, holds_active, time) in indexes {
        let score = field(i);
        let state = if active { "active" } else { "closed" };
        match (holds_active == active, score) {
            (true, None) if name == "exp" => {
                report.add(Kind::MissingFromExpiry, key, id, "active, not in exp")
            }
            (true, None) => report.add(
                Kind::MissingFromIndex,
                key,
                id,
                format!("{state}, not in {name}"),
            ),
            (true, Some(s)) if !same_time(s, time) => report.add(
                Kind::WrongScore,
                key,
                id,
                format!("score {s} in {name}, session time {time:?}"),
            ),
            (true, Some(_)) | (false, None) => {}
            (false, Some(_)) => report.add(
                Kind::InWrongIndex,
                key,
                id,
                format!("{state}, but in {name}"),
            ),
        }
    }
}

/// Judges one sorted-set index entry from its [`ENTRIES_LUA`] row. State mismatches
/// (a closed session in an active index) are the session side's to report.
fn judge_entry(key: &str, index: &Index, id: &str, row: &[Option<String>], report: &mut Report) {
    if cell(row, 0) != Some("1") {
        return; // removed since the scan
    }
    match cell(row, 1) {
        Some("none") | None => {
            report.add(Kind::DanglingEntry, key, id, "no session hash");
            return;
        }
        Some("hash") => {}
        Some(_) => return, // reported as a bad session
    }
    if let Index::User { user_id, .. } = index {
        let owner = cell(row, 3);
        if owner != Some(user_id.as_str()) {
            report.add(
                Kind::WrongUserIndex,
                key,
                id,
                format!("the session's user_id is {owner:?}"),
            );
        }
    }
}

/// Judges one reuse entry from its [`REUSE_LUA`] row.
fn judge_reuse(key: &str, rk: &str, id: &str, row: &[Option<String>], report: &mut Report) {
    if cell(row, 0) != Some("1") {
        return; // changed since the scan
    }
    match cell(row, 1) {
        Some("none") | None => {
            report.add(
                Kind::DanglingEntry,
                key,
                id,
                format!("reuse entry {rk} without a session hash"),
            );
            return;
        }
        Some("hash") => {}
        Some(_) => return,
    }
    if cell(row, 2) != Some("1") {
        report.add(
            Kind::ReuseNotActive,
            key,
            id,
            format!("reuse entry {rk} points at a closed session"),
        );
    }
    let session_rk = cell(row, 3);
    if session_rk != Some(rk) {
        report.add(
            Kind::ReuseKeyMismatch,
            key,
            id,
            format!("entry {rk}, session reuse key {session_rk:?}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[Option<&str>]) -> Vec<Option<String>> {
        cells.iter().map(|c| c.map(str::to_owned)).collect()
    }

    /// A consistent active session row of `id` (bucket from the id) for user `u`.
    fn active_row(id: &str, user: &str) -> Vec<Option<String>> {
        let t = Some("1700000000000");
        row(&[
            Some("hash"),
            Some(id),
            Some("1"),
            Some(user),
            t,
            Some("1700000000500"),
            None,
            t,
            None,
            t,
            None,
            Some("1700000000500"),
            None,
        ])
    }

    fn user_in(bucket: u16) -> String {
        (0..)
            .map(|i| format!("u{i}"))
            .find(|u| bucket_of_user(u) == bucket)
            .unwrap()
    }

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

    #[test]
    fn a_consistent_session_passes() {
        let user = user_in(5);
        let id = format!("05{}", "0".repeat(30));
        let mut r = Report::default();
        judge_session(5, "k", &id, &active_row(&id, &user), &mut r);
        assert_eq!(r.problems(), 0, "{:?}", r.examples);
        assert_eq!(r.active, 1);
    }

    #[test]
    fn index_problems_are_named() {
        let user = user_in(5);
        let id = format!("05{}", "0".repeat(30));
        let mut bad = active_row(&id, &user);
        bad[11] = None; // not in exp
        bad[12] = Some("1".into()); // in ret
        bad[9] = Some("5".into()); // oa score off
        bad[7] = None; // not in ua
        let mut r = Report::default();
        judge_session(5, "k", &id, &bad, &mut r);
        assert_eq!(r.counts.get(&Kind::MissingFromExpiry), Some(&1));
        assert_eq!(r.counts.get(&Kind::InWrongIndex), Some(&1));
        assert_eq!(r.counts.get(&Kind::WrongScore), Some(&1));
        assert_eq!(r.counts.get(&Kind::MissingFromIndex), Some(&1));
        assert_eq!(r.problems(), 4);
    }

    #[test]
    fn wrong_bucket_and_gone_sessions() {
        let user = user_in(6);
        let id = format!("05{}", "0".repeat(30));
        let mut r = Report::default();
        judge_session(5, "k", &id, &active_row(&id, &user), &mut r);
        assert_eq!(r.counts.get(&Kind::BadSession), Some(&1));
        let mut r = Report::default();
        judge_session(5, "k", &id, &row(&[Some("none")]), &mut r);
        assert_eq!(
            r.problems() + r.active + r.closed,
            0,
            "a session deleted since the scan is skipped"
        );
    }

    #[test]
    fn entries_and_reuse_are_judged() {
        let mut r = Report::default();
        let user = Index::User {
            user_id: "u".into(),
            active: true,
        };
        judge_entry(
            "ua",
            &user,
            "x",
            &row(&[Some("1"), Some("none"), None, None]),
            &mut r,
        );
        judge_entry(
            "ua",
            &user,
            "y",
            &row(&[Some("1"), Some("hash"), Some("1"), Some("v")]),
            &mut r,
        );
        judge_entry(
            "ua",
            &user,
            "z",
            &row(&[Some("0"), Some("none"), None, None]),
            &mut r,
        );
        judge_reuse(
            "reuse",
            "rk",
            "a",
            &row(&[Some("1"), Some("hash"), Some("0"), Some("rk")]),
            &mut r,
        );
        judge_reuse(
            "reuse",
            "rk",
            "b",
            &row(&[Some("1"), Some("hash"), Some("1"), Some("other")]),
            &mut r,
        );
        judge_reuse(
            "reuse",
            "rk",
            "c",
            &row(&[Some("1"), Some("none"), None, None]),
            &mut r,
        );
        assert_eq!(r.counts.get(&Kind::DanglingEntry), Some(&2));
        assert_eq!(r.counts.get(&Kind::WrongUserIndex), Some(&1));
        assert_eq!(r.counts.get(&Kind::ReuseNotActive), Some(&1));
        assert_eq!(r.counts.get(&Kind::ReuseKeyMismatch), Some(&1));
    }

    #[test]
    fn scores_compare_as_times() {
        assert!(same_time("1700000000000", Some("1700000000000")));
        assert!(!same_time("1700000000001", Some("1700000000000")));
        assert!(!same_time("1", None));
    }
}
