//! The wall clock as the wire formats and records write it: seconds or milliseconds since the
//! Unix epoch. OpenAI's `created`, a Responses object's `created_at`, a decision record's `at_ms`,
//! a rollout's reports and the hour a fleet settlement falls in all read it here. A clock set
//! before 1970 reads as 0 rather than failing a request. This module depends on nothing else in
//! the crate.

use std::time::{SystemTime, UNIX_EPOCH};

/// Whole seconds since the Unix epoch, now.
pub fn unix_secs() -> u64 {
    since_epoch(SystemTime::now()).as_secs()
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_millis() -> u64 {
    u64::try_from(since_epoch(SystemTime::now()).as_millis()).unwrap_or(u64::MAX)
}

/// How long after the epoch `at` is; zero for a time before it.
fn since_epoch(at: SystemTime) -> std::time::Duration {
    at.duration_since(UNIX_EPOCH).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_time_before_the_epoch_reads_as_zero() {
        let before = UNIX_EPOCH - Duration::from_secs(5);
        assert_eq!(since_epoch(before), Duration::ZERO);
        let after = UNIX_EPOCH + Duration::from_millis(1_500);
        assert_eq!(since_epoch(after), Duration::from_millis(1_500));
    }

    #[test]
    fn seconds_and_milliseconds_read_the_same_clock() {
        let secs = unix_secs();
        let millis = unix_millis();
        // 2026-01-01 is 1_767_225_600 s after the epoch; the clock reads later than that.
        assert!(secs > 1_767_225_600, "{secs}");
        assert!(
            millis / 1000 >= secs && millis / 1000 - secs <= 1,
            "{millis} {secs}"
        );
    }
}
