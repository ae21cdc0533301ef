//! The verdicts of `sessions check`: what a look at Redis shows to be wrong. Pure
//! functions over the rows the check scripts return (`lua/*.lua`), adding findings to
//! a [`Report`], so every rule is unit-tested without Redis.

use super::report::{Kind, Report};
use sessions_shared::keys::{bucket_of_session, bucket_of_user};

/// A sorted-set index and what its entries must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Index {
    OpenActive,
    OpenClosed,
    Expiry,
    Retention,
    User { user_id: String, active: bool },
}

pub(super) fn cell(row: &[Option<String>], i: usize) -> Option<&str> {
    row.get(i).and_then(|c| c.as_deref())
}

/// Whether an index score (as Redis prints it) is the time field `ms`.
fn same_time(score: &str, ms: Option<&str>) -> bool {
    match (score.parse::<f64>(), ms.and_then(|m| m.parse::<i64>().ok())) {
        (Ok(s), Some(m)) => (s - m as f64).abs() < 0.5,
        _ => false,
    }
}

/// The cells of a `lua/sessions.lua` row: the key's type, then the hash's fields,
/// then the session's score in each index it could be in (none when not in it).
const TYPE: usize = 0;
const ID: usize = 1;
const ACTIVE: usize = 2;
const USER_ID: usize = 3;
const OPEN_TIME: usize = 4;
const REQUEST_TIME: usize = 5;
const CLOSE_TIME: usize = 6;

/// Every index a session can be in: its name, the cell of the session's score in it,
/// whether it holds active (or closed) sessions, and the cell of the time it is
/// sorted by.
const MEMBERSHIPS: [(&str, usize, bool, usize); 6] = [
    ("ua", 7, true, OPEN_TIME),
    ("uc", 8, false, OPEN_TIME),
    ("oa", 9, true, OPEN_TIME),
    ("oc", 10, false, OPEN_TIME),
    ("exp", 11, true, REQUEST_TIME),
    ("ret", 12, false, CLOSE_TIME),
];

/// The session being judged, as findings name it.
struct Judged<'a> {
    key: &'a str,
    id: &'a str,
}

impl Judged<'_> {
    fn add(&self, report: &mut Report, kind: Kind, detail: impl Into<String>) {
        report.add(kind, self.key, self.id, detail);
    }
}

/// Judges one session from its `lua/sessions.lua` row: the hash's own fields, then,
/// when they say whether it is active, its place in every index.
pub(super) fn judge_session(
    bucket: u16,
    key: &str,
    id: &str,
    row: &[Option<String>],
    report: &mut Report,
) {
    let session = Judged { key, id };
    if !is_hash(&session, row, report) {
        return;
    }
    let Some(active) = judge_fields(&session, bucket, row, report) else {
        return;
    };
    if active {
        report.active += 1;
    } else {
        report.closed += 1;
    }
    judge_memberships(&session, active, row, report);
}

/// Whether the session's key is a hash; another type is a bad session, a key gone
/// since the scan is passed over.
fn is_hash(session: &Judged, row: &[Option<String>], report: &mut Report) -> bool {
    match cell(row, TYPE) {
        Some("hash") => true,
        Some("none") | None => false, // deleted since the scan
        Some(other) => {
            session.add(report, Kind::BadSession, format!("a {other}, not a hash"));
            false
        }
    }
}

/// Judges the hash's fields: the id it holds, the bucket its id and its user_id name,
/// the active flag and the times. Returns whether the session is active, or `None`
/// when it has no user_id or no active flag to judge its indexes by.
fn judge_fields(
    session: &Judged,
    bucket: u16,
    row: &[Option<String>],
    report: &mut Report,
) -> Option<bool> {
    let bad = |report: &mut Report, detail: String| session.add(report, Kind::BadSession, detail);
    let stored_id = cell(row, ID);
    if stored_id != Some(session.id) {
        bad(report, format!("id field is {stored_id:?}"));
    }
    if bucket_of_session(session.id) != Some(bucket) {
        bad(report, "the id does not name this bucket".into());
    }
    let Some(user_id) = cell(row, USER_ID) else {
        bad(report, "no user_id".into());
        return None;
    };
    if bucket_of_user(user_id) != bucket {
        bad(report, "the user_id belongs to another bucket".into());
    }
    let active = match cell(row, ACTIVE) {
        Some("1") => true,
        Some("0") => false,
        other => {
            bad(report, format!("active is {other:?}"));
            return None;
        }
    };
    let is_time = |i| cell(row, i).and_then(|v| v.parse::<i64>().ok()).is_some();
    for (name, i) in [("open_time", OPEN_TIME), ("request_time", REQUEST_TIME)] {
        if !is_time(i) {
            bad(report, format!("{name} is {:?}", cell(row, i)));
        }
    }
    if !active && !is_time(CLOSE_TIME) {
        let close = cell(row, CLOSE_TIME);
        bad(report, format!("closed, close_time is {close:?}"));
    }
    Some(active)
}

/// Judges which indexes the session is in, and with what score, against the ones its
/// state puts it in.
fn judge_memberships(session: &Judged, active: bool, row: &[Option<String>], report: &mut Report) {
    let state = if active { "active" } else { "closed" };
    for (name, i, holds_active, time) in MEMBERSHIPS {
        let (score, time) = (cell(row, i), cell(row, time));
        match (holds_active == active, score) {
            (true, None) if name == "exp" => {
                session.add(report, Kind::MissingFromExpiry, "active, not in exp")
            }
            (true, None) => session.add(
                report,
                Kind::MissingFromIndex,
                format!("{state}, not in {name}"),
            ),
            (true, Some(s)) if !same_time(s, time) => session.add(
                report,
                Kind::WrongScore,
                format!("score {s} in {name}, session time {time:?}"),
            ),
            (true, Some(_)) | (false, None) => {}
            (false, Some(_)) => session.add(
                report,
                Kind::InWrongIndex,
                format!("{state}, but in {name}"),
            ),
        }
    }
}

/// Judges one sorted-set index entry from its `lua/entries.lua` or `lua/users.lua` row. State mismatches
/// (a closed session in an active index) are the session side's to report.
pub(super) fn judge_entry(
    key: &str,
    index: &Index,
    id: &str,
    row: &[Option<String>],
    report: &mut Report,
) {
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

/// Judges one reuse entry from its `lua/reuse.lua` row.
pub(super) fn judge_reuse(
    key: &str,
    rk: &str,
    id: &str,
    row: &[Option<String>],
    report: &mut Report,
) {
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
