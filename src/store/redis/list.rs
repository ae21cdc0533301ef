//! get_sessions over the sorted-set indexes: picks the index sets a query needs, reads
//! the page's ids by rank, fetches the rows in one pipelined HGETALL, and repairs index
//! entries whose hash is gone.
//!
//! Order is "open_time descending, ties by id descending", which is what ZRANGE ... REV
//! gives (scores, then members, both reversed), so it is stable across pages.
//!
//! Two ways to find a page:
//! - One index set (a user's active or closed sessions) and `skip > 0`: by rank. The
//!   window `[from, to)` starts at rank `ZCOUNT key to +inf` (a round trip, only when
//!   `to` is given); the page is `ZRANGE key start+skip start+skip+take-1 REV`, and
//!   entries below `from` are cut off client-side. Cost: O(log N + take), whatever the
//!   skip.
//! - Several sets (no `active` filter: active + closed; no `user_id`: all 64 buckets),
//!   or `skip == 0`: the first `skip + take` entries of each set's window
//!   (`ZRANGE key (to from BYSCORE REV LIMIT 0 skip+take WITHSCORES`, offset always 0,
//!   so Redis seeks by score rather than walking) in one pipelined round trip, merged by
//!   (score desc, id desc). The cost of a merged page grows with `skip`: up to
//!   `sets × (skip + take)` entries are read and sorted. Deep pages over all users are
//!   therefore expensive; a single user's listing with `active` given is by rank.
//!
//! `total` is the sum of `ZCOUNT key from (to` over the sets, in the same pipeline.
//! A page is not a snapshot: a session closed between the index read and the row read
//! shows as closed. Rows are presented as of the query's `now`: one past its lifetime
//! shows closed at the instant it expired. With the `active` filter the store has
//! closed those for good before the indexes are read, so the filter, `total` and the
//! paging agree with exact expiry.

use redis::Value;

use super::codec;
use super::conn::{Batch, Redis, Retry};
use super::keys::Keys;
use crate::lifecycle::{At, Closes};
use crate::model::{bucket_of_session, bucket_of_user, Millis, Session, BUCKETS};
use crate::store::{ListQuery, Page, StoreError, StoreResult};
use tokio::time::Instant;

/// How many times a page is read again after repairing entries whose hash was gone;
/// after that the page is returned without those rows.
const REPAIR_ROUNDS: usize = 3;

/// An index sorted set and the bucket its key is in.
struct IndexSet {
    bucket: u16,
    key: String,
}

/// An index entry of the page: score (open_time), id, and which set it came from.
struct Entry {
    score: Millis,
    id: String,
    set: usize,
}

/// The score bounds of the window, as Redis arguments.
struct Bounds {
    /// `from` (inclusive) or `-inf`.
    min: String,
    /// `(to` (exclusive) or `+inf`.
    max: String,
}

impl Bounds {
    fn new(q: &ListQuery) -> Self {
        Bounds {
            min: q.from.map_or_else(|| "-inf".to_owned(), |f| f.to_string()),
            max: q.to.map_or_else(|| "+inf".to_owned(), |t| format!("({t}")),
        }
    }
}

/// A page for a query without an id filter.
pub(crate) async fn list(
    redis: &Redis,
    keys: &Keys,
    q: &ListQuery,
    at: &At,
    deadline: Instant,
) -> StoreResult<Page> {
    let sets = index_sets(keys, q);
    let page = |rows: Vec<Option<Session>>, total| Page {
        data: rows.into_iter().flatten().map(|s| at.present(s)).collect(),
        total,
        closed: Closes::default(),
    };
    let bounds = Bounds::new(q);
    let mut round = 0;
    loop {
        round += 1;
        let (entries, total) = if sets.len() == 1 && q.skip > 0 {
            by_rank(redis, &sets[0], q, &bounds, deadline).await?
        } else {
            merged(redis, &sets, q, &bounds, deadline).await?
        };
        let rows = rows(redis, keys, &entries, deadline).await?;
        let gaps: Vec<&Entry> = entries
            .iter()
            .zip(&rows)
            .filter(|(_, r)| r.is_none())
            .map(|(e, _)| e)
            .collect();
        if gaps.is_empty() {
            return Ok(page(rows, total));
        }
        repair(redis, &sets, &gaps, deadline).await?;
        if round == REPAIR_ROUNDS {
            let missing = gaps.len() as u64;
            return Ok(page(rows, total.map(|t| t.saturating_sub(missing))));
        }
    }
}

/// The index sets that hold exactly the sessions the user/active filters allow.
fn index_sets(keys: &Keys, q: &ListQuery) -> Vec<IndexSet> {
    let wanted: &[bool] = match q.active {
        Some(true) => &[true],
        Some(false) => &[false],
        None => &[true, false],
    };
    match q.user_id.as_deref() {
        Some(user) => {
            let bucket = bucket_of_user(user);
            wanted
                .iter()
                .map(|a| IndexSet {
                    bucket,
                    key: keys.user(bucket, user, *a),
                })
                .collect()
        }
        None => (0..BUCKETS)
            .flat_map(|bucket| {
                let k = keys.bucket(bucket);
                wanted.iter().map(move |a| IndexSet {
                    bucket,
                    key: if *a { k.oa.clone() } else { k.oc.clone() },
                })
            })
            .collect(),
    }
}

fn rank(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// One set, paged by rank.
async fn by_rank(
    redis: &Redis,
    set: &IndexSet,
    q: &ListQuery,
    bounds: &Bounds,
    deadline: Instant,
) -> StoreResult<(Vec<Entry>, Option<u64>)> {
    let (b, key) = (set.bucket, set.key.as_str());
    let mut total = None;
    let mut start = 0u64;
    if let Some(to) = q.to {
        // Scores >= to come first in REV order; the window starts right after them.
        let mut p = Batch::with_capacity(2);
        p.cmd(b, "ZCOUNT").arg(key).arg(to).arg("+inf");
        if q.total {
            p.cmd(b, "ZCOUNT")
                .arg(key)
                .arg(&bounds.min)
                .arg(&bounds.max);
        }
        let r = redis
            .pipe("list window start", &p, deadline, Retry::Idempotent)
            .await?;
        start = codec::count(reply(&r, 0)?)?;
        if q.total {
            total = Some(codec::count(reply(&r, 1)?)?);
        }
    }
    let mut p = Batch::with_capacity(2);
    if q.take > 0 {
        let first = start.saturating_add(q.skip);
        let last = first.saturating_add(q.take - 1);
        p.cmd(b, "ZRANGE")
            .arg(key)
            .arg(rank(first))
            .arg(rank(last))
            .arg("REV")
            .arg("WITHSCORES");
    }
    let count_here = q.total && q.to.is_none();
    if count_here {
        p.cmd(b, "ZCOUNT")
            .arg(key)
            .arg(&bounds.min)
            .arg(&bounds.max);
    }
    let mut r = redis
        .pipe("list by rank", &p, deadline, Retry::Idempotent)
        .await?;
    if count_here {
        total = Some(codec::count(reply(&r, r.len().wrapping_sub(1))?)?);
    }
    let mut entries = Vec::new();
    if q.take > 0 {
        let range = take_reply(&mut r, 0)?;
        for (score, id) in codec::scored_ids(range)? {
            // Past the window's low end: everything after is older still.
            if q.from.is_some_and(|f| score < f) {
                break;
            }
            entries.push(Entry { score, id, set: 0 });
        }
    }
    Ok((entries, total))
}

/// Several sets (or the first page of one): the head of every window, merged.
async fn merged(
    redis: &Redis,
    sets: &[IndexSet],
    q: &ListQuery,
    bounds: &Bounds,
    deadline: Instant,
) -> StoreResult<(Vec<Entry>, Option<u64>)> {
    let head = q.skip.saturating_add(q.take);
    let per_set = usize::from(q.take > 0) + usize::from(q.total);
    let mut p = Batch::with_capacity(sets.len() * per_set);
    for set in sets {
        let (b, key) = (set.bucket, &set.key);
        if q.take > 0 {
            p.cmd(b, "ZRANGE")
                .arg(key)
                .arg(&bounds.max)
                .arg(&bounds.min)
                .arg("BYSCORE")
                .arg("REV")
                .arg("LIMIT")
                .arg(0)
                .arg(rank(head))
                .arg("WITHSCORES");
        }
        if q.total {
            p.cmd(b, "ZCOUNT")
                .arg(key)
                .arg(&bounds.min)
                .arg(&bounds.max);
        }
    }
    let mut r = redis
        .pipe("list merged", &p, deadline, Retry::Idempotent)
        .await?;
    if r.len() != sets.len() * per_set {
        return Err(StoreError::Internal("short pipeline reply".into()));
    }
    let mut total = q.total.then_some(0u64);
    let mut entries = Vec::new();
    for set in 0..sets.len() {
        let at = set * per_set;
        if q.take > 0 {
            for (score, id) in codec::scored_ids(take_reply(&mut r, at)?)? {
                entries.push(Entry { score, id, set });
            }
        }
        if let Some(t) = total.as_mut() {
            *t += codec::count(reply(&r, at + per_set - 1)?)?;
        }
    }
    entries.sort_unstable_by(|a, b| (b.score, &b.id).cmp(&(a.score, &a.id)));
    // A session closed between two reads of the pipeline can show in both its old and
    // new set; same score, so the copies are adjacent.
    entries.dedup_by(|a, b| a.id == b.id);
    let skip = usize::try_from(q.skip).unwrap_or(usize::MAX);
    let take = usize::try_from(q.take).unwrap_or(usize::MAX);
    Ok((entries.into_iter().skip(skip).take(take).collect(), total))
}

/// The rows of the page, in order; `None` where the hash is gone (or the index held
/// an id that is not a session id).
async fn rows(
    redis: &Redis,
    keys: &Keys,
    entries: &[Entry],
    deadline: Instant,
) -> StoreResult<Vec<Option<Session>>> {
    let mut p = Batch::with_capacity(entries.len());
    let mut asked = Vec::with_capacity(entries.len());
    let mut key = String::new();
    for e in entries {
        let Some(b) = bucket_of_session(&e.id) else {
            asked.push(false);
            continue;
        };
        keys.write_session(&mut key, b, &e.id);
        p.cmd(b, "HGETALL").arg(&key);
        asked.push(true);
    }
    let mut replies = redis
        .pipe("list rows", &p, deadline, Retry::Idempotent)
        .await?
        .into_iter();
    let mut out = Vec::with_capacity(entries.len());
    for asked in asked {
        if !asked {
            out.push(None);
            continue;
        }
        let v = replies
            .next()
            .ok_or_else(|| StoreError::Internal("short pipeline reply".into()))?;
        out.push(codec::session(v)?);
    }
    Ok(out)
}

/// Removes entries whose hash is gone from the set they were read from. Idempotent:
/// ids are never reused, so such an entry can only ever be stale.
async fn repair(
    redis: &Redis,
    sets: &[IndexSet],
    gaps: &[&Entry],
    deadline: Instant,
) -> StoreResult<()> {
    let mut p = Batch::with_capacity(gaps.len());
    for e in gaps {
        let set = &sets[e.set];
        p.cmd(set.bucket, "ZREM").arg(&set.key).arg(&e.id);
    }
    tracing::info!(
        entries = gaps.len(),
        "removing index entries whose session is gone"
    );
    redis
        .pipe("list repair", &p, deadline, Retry::Idempotent)
        .await?;
    Ok(())
}

fn reply(r: &[Value], i: usize) -> StoreResult<&Value> {
    r.get(i)
        .ok_or_else(|| StoreError::Internal("short pipeline reply".into()))
}

fn take_reply(r: &mut [Value], i: usize) -> StoreResult<Value> {
    r.get_mut(i)
        .map(std::mem::take)
        .ok_or_else(|| StoreError::Internal("short pipeline reply".into()))
}
