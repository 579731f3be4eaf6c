//! Entries the cache refused to serve (not ours, copied from another key, replayed, oversized,
//! malformed): every one counted by kind, and the warning about it let through at most once
//! per key and kind a minute.
//!
//! Whoever can write to Redis can poison one key that is read in a loop, or millions of keys;
//! neither may flood the logs or grow the process. So what was warned about is remembered by a
//! keyed hash of (kind, key), never the key itself, in a map of at most `REMEMBERED` entries:
//! when more distinct keys than that are rejected within a minute, the others are still
//! counted, but not logged one by one. Every warning held back is counted too.

use crate::codec::DecodeError;
use serde::Serialize;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Why an entry was refused: the codec's reasons, and JSON that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rejection {
    NotOurs,
    ForeignKey,
    Malformed,
    TooLarge,
    Expired,
    Oversized,
    /// A genuine token whose JSON does not parse (found by the bindings, which parse it).
    MalformedJson,
}

const KINDS: usize = 7;

impl From<DecodeError> for Rejection {
    fn from(why: DecodeError) -> Rejection {
        match why {
            DecodeError::NotOurs => Rejection::NotOurs,
            DecodeError::ForeignKey => Rejection::ForeignKey,
            DecodeError::Malformed => Rejection::Malformed,
            DecodeError::TooLarge => Rejection::TooLarge,
            DecodeError::Expired => Rejection::Expired,
            DecodeError::Oversized => Rejection::Oversized,
        }
    }
}

/// Rejected entries by kind, as `get_cache_stats()["performance"]["rejected_by_kind"]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RejectionCounts {
    /// Not a token of our keys: plaintext, pickle, garbage, tampered, another keyring's.
    pub not_ours: u64,
    /// A genuine token copied from another key or another database.
    pub foreign_key: u64,
    /// A genuine token whose envelope is malformed.
    pub malformed: u64,
    /// A genuine token that decompresses past the value cap.
    pub too_large: u64,
    /// A genuine token past its sealed expiry: a replay.
    pub expired: u64,
    /// A stored value longer than any entry the cache writes; never read whole.
    pub oversized: u64,
    /// A genuine token whose JSON does not parse.
    pub malformed_json: u64,
}

/// How often a warning about one key and kind may be repeated.
pub const WARN_INTERVAL: Duration = Duration::from_secs(60);
/// (kind, key) pairs remembered as warned about: 4096 × 24 bytes or so.
const REMEMBERED: usize = 4096;
/// How often a full map may be swept for entries whose minute is over (a sweep walks it all).
const SWEEP_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Default)]
pub struct Rejections {
    counts: [AtomicU64; KINDS],
    suppressed: AtomicU64,
    warned: Mutex<Warned>,
}

#[derive(Default)]
struct Warned {
    /// Keyed hash of (kind, key) -> when its warning was last let through.
    at: HashMap<u64, Instant>,
    /// Random per cache, so nobody can choose keys whose hashes collide.
    hasher: RandomState,
    last_sweep: Option<Instant>,
}

impl Rejections {
    /// Counts an entry of `kind` rejected under `key`; true when a warning about it is due.
    pub fn note(&self, key: &str, kind: Rejection) -> bool {
        self.note_at(key, kind, Instant::now())
    }

    fn note_at(&self, key: &str, kind: Rejection, now: Instant) -> bool {
        self.counts[kind as usize].fetch_add(1, Relaxed);
        let due = self
            .warned
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .due(key, kind, now);
        if !due {
            self.suppressed.fetch_add(1, Relaxed);
        }
        due
    }

    pub fn counts(&self) -> RejectionCounts {
        let get = |kind: Rejection| self.counts[kind as usize].load(Relaxed);
        RejectionCounts {
            not_ours: get(Rejection::NotOurs),
            foreign_key: get(Rejection::ForeignKey),
            malformed: get(Rejection::Malformed),
            too_large: get(Rejection::TooLarge),
            expired: get(Rejection::Expired),
            oversized: get(Rejection::Oversized),
            malformed_json: get(Rejection::MalformedJson),
        }
    }

    pub fn total(&self) -> u64 {
        self.counts.iter().map(|count| count.load(Relaxed)).sum()
    }

    /// Warnings held back: repeats within a minute, and keys past the map's capacity.
    pub fn suppressed(&self) -> u64 {
        self.suppressed.load(Relaxed)
    }
}

impl Warned {
    fn due(&mut self, key: &str, kind: Rejection, now: Instant) -> bool {
        let id = self.hasher.hash_one((kind, key));
        if let Some(last) = self.at.get_mut(&id) {
            if now.saturating_duration_since(*last) < WARN_INTERVAL {
                return false;
            }
            *last = now;
            return true;
        }
        if self.at.len() >= REMEMBERED {
            let swept_lately = self
                .last_sweep
                .is_some_and(|at| now.saturating_duration_since(at) < SWEEP_INTERVAL);
            if swept_lately {
                return false;
            }
            self.last_sweep = Some(now);
            self.at
                .retain(|_, last| now.saturating_duration_since(*last) < WARN_INTERVAL);
            if self.at.len() >= REMEMBERED {
                return false;
            }
        }
        self.at.insert(id, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_warning_per_key_and_kind_a_minute_every_entry_counted() {
        let rejections = Rejections::default();
        let start = Instant::now();
        assert!(rejections.note_at("k", Rejection::NotOurs, start));
        for n in 1..100 {
            assert!(!rejections.note_at("k", Rejection::NotOurs, start + Duration::from_millis(n)));
        }
        // Another kind of the same key, and another key, each warn once.
        assert!(rejections.note_at("k", Rejection::Expired, start));
        assert!(!rejections.note_at("k", Rejection::Expired, start));
        assert!(rejections.note_at("other", Rejection::NotOurs, start));
        // A minute later the key warns again, once.
        let later = start + WARN_INTERVAL;
        assert!(rejections.note_at("k", Rejection::NotOurs, later));
        assert!(!rejections.note_at("k", Rejection::NotOurs, later));
        assert_eq!(rejections.total(), 105);
        assert_eq!(rejections.suppressed(), 101);
        assert_eq!(
            rejections.counts(),
            RejectionCounts {
                not_ours: 103,
                expired: 2,
                ..RejectionCounts::default()
            }
        );
    }

    #[test]
    fn memory_stays_bounded_however_many_keys_are_poisoned() {
        let rejections = Rejections::default();
        let start = Instant::now();
        let keys = REMEMBERED * 3;
        let warned = (0..keys)
            .filter(|n| rejections.note_at(&format!("poisoned:{n}"), Rejection::NotOurs, start))
            .count();
        // The first REMEMBERED keys warn; the rest are counted, not logged one by one.
        assert_eq!(warned, REMEMBERED);
        assert_eq!(rejections.suppressed(), (keys - REMEMBERED) as u64);
        assert_eq!(rejections.total(), keys as u64);
        let remembered = || rejections.warned.lock().unwrap().at.len();
        assert_eq!(remembered(), REMEMBERED);
        // Once their minute is over the map is swept and new keys warn again.
        let later = start + WARN_INTERVAL;
        assert!(rejections.note_at("fresh", Rejection::NotOurs, later));
        assert_eq!(remembered(), 1);
    }

    #[test]
    fn every_decode_error_has_its_own_kind() {
        let kinds = [
            DecodeError::NotOurs,
            DecodeError::ForeignKey,
            DecodeError::Malformed,
            DecodeError::TooLarge,
            DecodeError::Expired,
            DecodeError::Oversized,
        ]
        .map(Rejection::from);
        let rejections = Rejections::default();
        for kind in kinds {
            rejections.note("k", kind);
        }
        rejections.note("k", Rejection::MalformedJson);
        let counts = serde_json::to_value(rejections.counts()).unwrap();
        let counts = counts.as_object().unwrap();
        assert_eq!(counts.len(), KINDS);
        assert!(counts.values().all(|count| count == 1), "{counts:?}");
    }
}
