//! How a session ends: the lifetimes that end it by themselves (the idle timeout and
//! the absolute lifetime), the reasons a session is closed, and how a session whose
//! lifetime is over, but which nothing has closed for good yet, is presented.
//!
//! Pure functions over a decoded session, so every store and every command applies
//! the same rule; the Redis scripts apply it too (`expiry` in `lua/common.lua`), and
//! the two must agree: a session expires at
//! `min(request_time + idle, open_time + absolute)`, and is expired from that
//! instant on (`now >= instant`). When both limits fall on the same millisecond the
//! reason is `absolute`.

use std::time::Duration;

use crate::model::{Millis, Session};

/// How long a session may live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// The idle timeout: a session ends this many milliseconds after its request_time.
    pub idle: Millis,
    /// The absolute lifetime: a session ends this many milliseconds after its
    /// open_time, however busy it is; `None` sets no such limit.
    pub absolute: Option<Millis>,
}

impl Default for Lifetimes {
    /// The service's defaults: 24 h idle, no absolute lifetime.
    fn default() -> Self {
        Lifetimes::new(Duration::from_secs(24 * 60 * 60), None)
    }
}

fn millis(d: Duration) -> Millis {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Lifetimes {
    /// An absolute lifetime of zero means none (as configured with `0`).
    pub fn new(idle: Duration, absolute: Option<Duration>) -> Self {
        Lifetimes {
            idle: millis(idle),
            absolute: absolute.filter(|a| !a.is_zero()).map(millis),
        }
    }

    /// The instant a session opened at `open_time` and last touched at
    /// `request_time` expires, and the reason it ends then.
    pub fn expiry(&self, open_time: Millis, request_time: Millis) -> (Millis, CloseReason) {
        let idle_end = request_time.saturating_add(self.idle);
        match self.absolute {
            Some(a) if open_time.saturating_add(a) <= idle_end => {
                (open_time.saturating_add(a), CloseReason::Absolute)
            }
            _ => (idle_end, CloseReason::Idle),
        }
    }
}

/// The instant a command runs at, with the lifetimes that decide what has expired
/// by then. Every store call that reads or changes sessions takes one, so the whole
/// call judges expiry at one instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    pub now: Millis,
    pub lifetimes: Lifetimes,
}

impl At {
    pub fn new(now: Millis, lifetimes: Lifetimes) -> At {
        At { now, lifetimes }
    }

    /// When `s` expired and why, if it is active and has expired by now.
    pub fn expired(&self, s: &Session) -> Option<(Millis, CloseReason)> {
        if !s.active {
            return None;
        }
        let (at, why) = self.lifetimes.expiry(s.open_time, s.request_time);
        (self.now >= at).then_some((at, why))
    }

    /// `s` as it stands now: an active session past its lifetime is shown closed at
    /// the instant it expired (as a sweep would close it then); anything else as is.
    pub fn present(&self, mut s: Session) -> Session {
        if let Some((at, _)) = self.expired(&s) {
            close(&mut s, at);
        }
        s
    }

    /// Sessions whose request_time is at or before this are idle past the timeout.
    pub fn idle_cutoff(&self) -> Millis {
        self.now.saturating_sub(self.lifetimes.idle)
    }

    /// Sessions whose open_time is at or before this are past the absolute lifetime.
    pub fn lifetime_cutoff(&self) -> Option<Millis> {
        self.lifetimes.absolute.map(|a| self.now.saturating_sub(a))
    }
}

/// What closing does to a session, whatever closes it: `active` false, close_time and
/// request_time set to `at`, and the user and data it carried wiped.
pub fn close(s: &mut Session, at: Millis) {
    s.active = false;
    s.close_time = Some(at);
    s.request_time = at;
    s.user = None;
    s.data = None;
}

/// Why a session was closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// close_session.
    Logout,
    /// Idle longer than the idle timeout.
    Idle,
    /// Older than the absolute lifetime.
    Absolute,
    /// close_user_sessions.
    Revoked,
    /// Closed by open_session to keep the user within the per-user cap.
    Evicted,
}

impl CloseReason {
    /// Every reason, in the order of [`CloseReason::index`].
    pub const ALL: [CloseReason; 5] = [
        CloseReason::Logout,
        CloseReason::Idle,
        CloseReason::Absolute,
        CloseReason::Revoked,
        CloseReason::Evicted,
    ];

    /// The name (also the metrics label).
    pub const fn as_str(self) -> &'static str {
        match self {
            CloseReason::Logout => "logout",
            CloseReason::Idle => "idle",
            CloseReason::Absolute => "absolute",
            CloseReason::Revoked => "revoked",
            CloseReason::Evicted => "evicted",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }
}

/// How many sessions one call closed, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Closes([u64; 5]);

impl Closes {
    /// One close for `reason`.
    pub fn one(reason: CloseReason) -> Closes {
        let mut c = Closes::default();
        c.add(reason, 1);
        c
    }

    pub fn add(&mut self, reason: CloseReason, n: u64) {
        self.0[reason.index()] += n;
    }

    pub fn get(&self, reason: CloseReason) -> u64 {
        self.0[reason.index()]
    }

    /// Adds every count of `other`.
    pub fn merge(&mut self, other: Closes) {
        for r in CloseReason::ALL {
            self.add(r, other.get(r));
        }
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The closes for inactivity or age (what a sweep makes permanent).
    pub fn expired(&self) -> u64 {
        self.get(CloseReason::Idle) + self.get(CloseReason::Absolute)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(open_time: Millis, request_time: Millis) -> Session {
        Session {
            id: "00".repeat(16),
            user_id: "u".into(),
            user_name: None,
            active: true,
            open_time,
            request_time,
            close_time: None,
            address: None,
            client: None,
            user: serde_json::value::to_raw_value(&1).ok(),
            data: serde_json::value::to_raw_value(&2).ok(),
        }
    }

    const IDLE: Lifetimes = Lifetimes {
        idle: 1_000,
        absolute: None,
    };

    #[test]
    fn a_session_expires_at_the_instant_its_idle_time_is_up() {
        let s = session(0, 500);
        assert_eq!(At::new(1_499, IDLE).expired(&s), None);
        assert_eq!(
            At::new(1_500, IDLE).expired(&s),
            Some((1_500, CloseReason::Idle))
        );
        let shown = At::new(9_999, IDLE).present(s.clone());
        assert!(!shown.active);
        assert_eq!(shown.close_time, Some(1_500));
        assert_eq!(shown.request_time, 1_500, "the instant it expired, not now");
        assert!(shown.user.is_none() && shown.data.is_none());
        assert_eq!(shown.open_time, 0);
        let live = At::new(1_499, IDLE).present(s);
        assert!(live.active && live.data.is_some());
    }

    #[test]
    fn the_absolute_lifetime_ends_a_busy_session() {
        let l = Lifetimes {
            idle: 1_000,
            absolute: Some(3_000),
        };
        // Touched at 2_900: idle would end it at 3_900, the lifetime at 3_000.
        let s = session(0, 2_900);
        assert_eq!(l.expiry(0, 2_900), (3_000, CloseReason::Absolute));
        assert_eq!(At::new(2_999, l).expired(&s), None);
        assert_eq!(
            At::new(3_000, l).expired(&s),
            Some((3_000, CloseReason::Absolute))
        );
        // Idle first: touched at 100, idle ends it at 1_100.
        assert_eq!(l.expiry(0, 100), (1_100, CloseReason::Idle));
        // A tie is absolute.
        assert_eq!(l.expiry(0, 2_000), (3_000, CloseReason::Absolute));
    }

    #[test]
    fn closed_sessions_are_shown_as_they_are() {
        let mut s = session(0, 10);
        close(&mut s, 20);
        let shown = At::new(1_000_000, IDLE).present(s.clone());
        assert_eq!(shown.close_time, Some(20));
        assert_eq!(At::new(1_000_000, IDLE).expired(&s), None);
    }

    #[test]
    fn huge_lifetimes_saturate() {
        let l = Lifetimes::new(Duration::MAX, Some(Duration::MAX));
        assert_eq!(l.expiry(5, 5).0, i64::MAX);
        let at = At::new(i64::MIN + 1, l);
        assert_eq!(at.idle_cutoff(), i64::MIN);
    }

    #[test]
    fn closes_count_by_reason() {
        let mut c = Closes::one(CloseReason::Idle);
        c.add(CloseReason::Absolute, 2);
        c.merge(Closes::one(CloseReason::Revoked));
        assert_eq!(c.get(CloseReason::Idle), 1);
        assert_eq!(c.expired(), 3);
        assert_eq!(c.total(), 4);
        let names: Vec<_> = CloseReason::ALL.iter().map(|r| r.as_str()).collect();
        assert_eq!(names, ["logout", "idle", "absolute", "revoked", "evicted"]);
    }
}
