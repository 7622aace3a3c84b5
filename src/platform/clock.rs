//! The one source of "now" for every decision about expiry (sessions, tokens, rate limits).
//! Production uses [`SystemClock`]; tests inject a [`ManualClock`] and move time by hand.

use chrono::{DateTime, Duration, Utc};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync + Debug {
    fn now(&self) -> DateTime<Utc>;
}

/// Shared handle to the process clock.
pub type SharedClock = Arc<dyn Clock>;

#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        // Millisecond precision: what Better Auth writes, and what round-trips through JSON.
        let now = Utc::now();
        DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
    }
}

/// A clock that only moves when told to. For tests.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(start),
        }
    }

    /// Starts at the current wall-clock time, truncated to milliseconds.
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }

    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|e| e.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The longest lifetime we believe of a token a remote party hands us: ten years.
pub const MAX_REMOTE_LIFETIME_SECS: u64 = 10 * 365 * 24 * 3600;

/// `now` plus a lifetime that came from outside (an OAuth `expires_in`), clamped to
/// [`MAX_REMOTE_LIFETIME_SECS`]: `DateTime + TimeDelta` panics on overflow, and a provider must
/// not be able to kill a worker with `expires_in: 1e15`. The one place such arithmetic happens.
pub fn expires_after(now: DateTime<Utc>, secs: u64) -> DateTime<Utc> {
    let secs = i64::try_from(secs.min(MAX_REMOTE_LIFETIME_SECS)).unwrap_or(0);
    now.checked_add_signed(Duration::seconds(secs))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_after_clamps_what_a_provider_sends() {
        let now = SystemClock.now();
        let ten_years = Duration::seconds(MAX_REMOTE_LIFETIME_SECS as i64);
        assert_eq!(expires_after(now, 3600) - now, Duration::hours(1));
        assert_eq!(expires_after(now, 0), now);
        assert_eq!(expires_after(now, 1_000_000_000_000_000) - now, ten_years);
        assert_eq!(expires_after(now, u64::MAX) - now, ten_years);
        let late = DateTime::<Utc>::MAX_UTC - Duration::days(1);
        assert_eq!(expires_after(late, 3600 * 48), DateTime::<Utc>::MAX_UTC);
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let clock = ManualClock::starting_now();
        let t0 = clock.now();
        assert_eq!(clock.now(), t0);
        clock.advance(Duration::seconds(10));
        assert_eq!(clock.now() - t0, Duration::seconds(10));
    }
}
