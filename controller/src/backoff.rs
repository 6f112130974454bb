//! Waiting between attempts: one exponential backoff for every retry in the controller (a
//! failed reconcile, a rejected audit push, a failed revocation).

use std::time::Duration;

/// Doubling waits from `first` up to `max`.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub fn new(first: Duration, max: Duration) -> Self {
        let first = first.min(max);
        Self {
            first,
            max,
            next: first,
        }
    }

    /// The wait before the next attempt; the one after is twice as long (up to the maximum).
    pub fn next_wait(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }

    /// [`Backoff::next_wait`] plus up to as much again at random, so writers that collided do
    /// not retry in step.
    pub fn next_wait_with_jitter(&mut self) -> Duration {
        let wait = self.next_wait();
        wait + wait.mul_f64(rand::random::<f64>())
    }

    /// After a success: the next failure waits `first` again.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// The wait after `failures` failed attempts, for retries whose count is stored rather
    /// than kept in memory (a lease's revocation attempts).
    pub fn after(first: Duration, max: Duration, failures: u32) -> Duration {
        first.saturating_mul(1u32 << failures.min(20)).min(max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_to_the_maximum_and_starts_again_after_a_reset() {
        let mut backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let waits: Vec<u64> = (0..5).map(|_| backoff.next_wait().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        backoff.reset();
        assert_eq!(backoff.next_wait(), Duration::from_secs(1));
        let jittered = backoff.next_wait_with_jitter();
        assert!(jittered >= Duration::from_secs(2) && jittered <= Duration::from_secs(4));
        assert_eq!(
            Backoff::new(Duration::from_secs(1), Duration::from_millis(300)).next_wait(),
            Duration::from_millis(300),
            "a first wait over the maximum is the maximum"
        );
    }

    #[test]
    fn after_a_count_of_failures() {
        let (first, max) = (Duration::from_secs(1), Duration::from_secs(600));
        assert_eq!(Backoff::after(first, max, 0), first);
        assert_eq!(Backoff::after(first, max, 3), Duration::from_secs(8));
        assert_eq!(Backoff::after(first, max, 30), max);
    }
}
