//! When a batch of log rows is due: after `max_lines` rows, or `max_delay`
//! after the oldest waiting row arrived, whichever comes first. A crash
//! loses at most one batch; the database sees one commit per batch.

use std::time::{Duration, Instant};

/// Batching limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Commit once this many rows wait.
    pub max_lines: usize,
    /// Commit once the oldest waiting row is this old.
    pub max_delay: Duration,
}

impl Default for Policy {
    /// 100 rows or 200 ms.
    fn default() -> Self {
        Policy {
            max_lines: 100,
            max_delay: Duration::from_millis(200),
        }
    }
}

/// Rows waiting to be committed, in arrival order.
#[derive(Debug)]
pub struct Batcher<T> {
    policy: Policy,
    rows: Vec<T>,
    oldest: Option<Instant>,
}

impl<T> Batcher<T> {
    /// An empty batch under `policy`.
    pub fn new(policy: Policy) -> Batcher<T> {
        Batcher {
            policy,
            rows: Vec::new(),
            oldest: None,
        }
    }

    /// Add a row that arrived at `now`.
    pub fn push(&mut self, row: T, now: Instant) {
        if self.rows.is_empty() {
            self.oldest = Some(now);
        }
        self.rows.push(row);
    }

    /// Number of rows waiting.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when nothing waits.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// When the waiting rows must be committed at the latest (None: none
    /// wait).
    pub fn deadline(&self) -> Option<Instant> {
        self.oldest.map(|t| t + self.policy.max_delay)
    }

    /// Whether the waiting rows must be committed at `now`.
    pub fn due(&self, now: Instant) -> bool {
        !self.rows.is_empty()
            && (self.rows.len() >= self.policy.max_lines
                || self.deadline().is_some_and(|d| now >= d))
    }

    /// Take every waiting row, oldest first.
    pub fn take(&mut self) -> Vec<T> {
        self.oldest = None;
        std::mem::take(&mut self.rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            max_lines: 3,
            max_delay: Duration::from_millis(200),
        }
    }

    #[test]
    fn due_after_max_lines() {
        let t0 = Instant::now();
        let mut b = Batcher::new(policy());
        assert!(!b.due(t0));
        assert_eq!(b.deadline(), None);
        b.push(1, t0);
        b.push(2, t0);
        assert!(!b.due(t0));
        b.push(3, t0);
        assert!(b.due(t0));
        assert_eq!(b.take(), vec![1, 2, 3]);
        assert!(b.is_empty());
        assert!(!b.due(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn due_after_max_delay_from_the_oldest_row() {
        let t0 = Instant::now();
        let mut b = Batcher::new(policy());
        b.push("a", t0);
        b.push("b", t0 + Duration::from_millis(150));
        assert_eq!(b.deadline(), Some(t0 + Duration::from_millis(200)));
        assert!(!b.due(t0 + Duration::from_millis(199)));
        assert!(b.due(t0 + Duration::from_millis(200)));
        assert_eq!(b.take(), vec!["a", "b"]);
        // The clock restarts with the next row.
        let t1 = t0 + Duration::from_secs(1);
        b.push("c", t1);
        assert_eq!(b.deadline(), Some(t1 + Duration::from_millis(200)));
        assert!(!b.due(t1 + Duration::from_millis(100)));
        assert_eq!(b.len(), 1);
    }
}
