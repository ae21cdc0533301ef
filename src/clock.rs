//! The clock commands read "now" from: the system clock in the service, a clock a
//! test sets by hand, so expiry can be tested to the millisecond without sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::model::{now_ms, Millis};

/// Where "now" comes from. Cheap to clone; clones of a manual clock share its hands.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<Arc<AtomicI64>>);

impl Clock {
    /// The system clock (UTC milliseconds since the epoch).
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that shows `start` until it is set or advanced.
    pub fn manual(start: Millis) -> Clock {
        Clock(Some(Arc::new(AtomicI64::new(start))))
    }

    /// The current time in milliseconds since the epoch.
    pub fn now(&self) -> Millis {
        match &self.0 {
            None => now_ms(),
            Some(t) => t.load(Ordering::SeqCst),
        }
    }

    /// Sets a manual clock to `ms`; the system clock cannot be set (no effect).
    pub fn set(&self, ms: Millis) {
        if let Some(t) = &self.0 {
            t.store(ms, Ordering::SeqCst);
        }
    }

    /// Moves a manual clock forward by `d` (no effect on the system clock).
    pub fn advance(&self, d: Duration) {
        if let Some(t) = &self.0 {
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            // fetch_add wraps; a test never advances by anything near i64::MAX.
            t.fetch_add(ms, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clocks_move_only_when_told_and_share_their_hands() {
        let c = Clock::manual(1_000);
        let twin = c.clone();
        assert_eq!(c.now(), 1_000);
        c.advance(Duration::from_millis(250));
        assert_eq!(twin.now(), 1_250);
        twin.set(5);
        assert_eq!(c.now(), 5);
    }

    #[test]
    fn the_system_clock_ignores_setting() {
        let c = Clock::system();
        c.set(5);
        assert!(c.now() > 1_600_000_000_000);
    }
}
