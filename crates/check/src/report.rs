//! The report of `sessions check`: the kinds of problem it can find, the findings
//! (counted per kind, the first few of each kept as examples), what it looked at per
//! Redis node, and how all that is printed. Reports of single buckets are merged into
//! the report of the whole prefix.

use std::collections::BTreeMap;
use std::fmt;

/// Problems listed per kind; the rest are only counted.
const EXAMPLES: usize = 10;

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
    /// What was looked at on each Redis node (`host:port`), by where each bucket was
    /// read: one node, or every primary of a cluster.
    pub nodes: BTreeMap<String, NodeTally>,
}

/// Buckets and sessions read from one Redis node.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NodeTally {
    pub buckets: u16,
    pub sessions: u64,
}

impl Report {
    pub fn new(prefix: &str) -> Report {
        Report {
            prefix: prefix.to_owned(),
            ..Report::default()
        }
    }

    /// Total problems found.
    pub fn problems(&self) -> u64 {
        self.counts.values().sum()
    }

    pub(super) fn add(&mut self, kind: Kind, key: &str, id: &str, detail: impl Into<String>) {
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

    /// Adds the report of one bucket, read on `node`.
    pub(super) fn absorb(&mut self, bucket: Report, node: &str) {
        let tally = self.nodes.entry(node.to_owned()).or_default();
        tally.buckets += 1;
        tally.sessions += bucket.active + bucket.closed;
        self.buckets += 1;
        self.active += bucket.active;
        self.closed += bucket.closed;
        self.index_entries += bucket.index_entries;
        self.reuse_entries += bucket.reuse_entries;
        for e in bucket.examples {
            let kept = self.examples.iter().filter(|k| k.kind == e.kind).count();
            if kept < EXAMPLES {
                self.examples.push(e);
            }
        }
        for (kind, n) in bucket.counts {
            *self.counts.entry(kind).or_insert(0) += n;
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
        for (node, t) in &self.nodes {
            writeln!(
                f,
                "node {node}: {} buckets, {} sessions",
                t.buckets, t.sessions
            )?;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_with(kind: Kind, n: usize, active: u64) -> Report {
        let mut r = Report {
            active,
            index_entries: 3,
            ..Report::default()
        };
        for i in 0..n {
            r.add(kind, "k", &format!("id{i}"), "d");
        }
        r
    }

    #[test]
    fn bucket_reports_add_up_per_node_and_keep_few_examples() {
        let mut all = Report::new("p");
        all.absorb(bucket_with(Kind::DanglingEntry, 7, 2), "a:1");
        all.absorb(bucket_with(Kind::DanglingEntry, 7, 3), "b:2");
        all.absorb(bucket_with(Kind::WrongScore, 1, 0), "a:1");
        assert_eq!(all.buckets, 3);
        assert_eq!(all.active, 5);
        assert_eq!(all.index_entries, 9);
        assert_eq!(all.counts.get(&Kind::DanglingEntry), Some(&14));
        assert_eq!(all.problems(), 15);
        let dangling = all
            .examples
            .iter()
            .filter(|e| e.kind == Kind::DanglingEntry)
            .count();
        assert_eq!(dangling, EXAMPLES);
        assert_eq!(
            all.nodes.get("a:1"),
            Some(&NodeTally {
                buckets: 2,
                sessions: 2
            })
        );
        let text = all.to_string();
        assert!(text.contains("node b:2: 1 buckets, 3 sessions"), "{text}");
        assert!(text.contains("FAILED: 15 problems found"), "{text}");
    }
}
