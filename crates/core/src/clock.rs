//! The one wall clock: Unix seconds. Token timestamps, sealed expiries and certificate
//! lifetimes are all compared against this, so they can never disagree about "now".

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; 0 if the system clock is set before 1970 (every comparison
/// then errs towards "expired", never towards "still valid").
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whole days from `now` until `unix_time` (negative once it has passed), as certificate
/// reports show it.
pub fn days_until(unix_time: i64, now: u64) -> i64 {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    unix_time.saturating_sub(now).div_euclid(86_400)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_until_rounds_down_and_goes_negative() {
        assert_eq!(days_until(86_400 * 10 + 5, 0), 10);
        assert_eq!(days_until(86_400 * 10 - 1, 0), 9);
        assert_eq!(days_until(0, 1), -1);
        assert!(unix_now() > 1_700_000_000);
    }
}
