//! Per-registry limits: requests in flight and requests per second.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// Token bucket state, kept as "the time the bucket is full again" so that one number says
/// everything and the arithmetic stays a pure function.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub per_second: f64,
    pub burst: f64,
}

impl Bucket {
    /// Given when the bucket would be full (`full_at`) and `now`, returns how long this request
    /// waits and the new `full_at`. Each request costs one token; tokens come back at
    /// `per_second` and at most `burst` are saved up.
    pub fn take(&self, full_at: Instant, now: Instant) -> (Duration, Instant) {
        let interval = Duration::from_secs_f64(1.0 / self.per_second);
        let window = interval.mul_f64(self.burst.max(1.0));
        // Never let saved-up capacity exceed `burst`.
        let full_at = full_at.max(now);
        let new_full_at = full_at + interval;
        let earliest = new_full_at.checked_sub(window).unwrap_or(now);
        let wait = earliest.saturating_duration_since(now);
        (wait, new_full_at)
    }
}

#[derive(Debug)]
pub struct Limiter {
    in_flight: Arc<Semaphore>,
    rate: Option<(Bucket, Mutex<Instant>)>,
}

impl Limiter {
    pub fn new(max_in_flight: usize, rate: Option<Bucket>) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            rate: rate
                .filter(|b| b.per_second > 0.0 && b.per_second.is_finite())
                .map(|b| (b, Mutex::new(Instant::now()))),
        }
    }

    /// Waits for a rate slot, then for a free slot; the permit is held while the request runs.
    pub async fn acquire(&self) -> Option<OwnedSemaphorePermit> {
        if let Some((bucket, full_at)) = &self.rate {
            let wait = {
                let mut full_at = full_at.lock().await;
                let (wait, next) = bucket.take(*full_at, Instant::now());
                *full_at = next;
                wait
            };
            if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
        // The semaphore is never closed, so this is always `Some`.
        Arc::clone(&self.in_flight).acquire_owned().await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_passes_then_requests_are_paced() {
        let bucket = Bucket {
            per_second: 10.0,
            burst: 3.0,
        };
        let t0 = Instant::now();
        let mut full_at = t0;
        let mut waits = Vec::new();
        for _ in 0..5 {
            let (wait, next) = bucket.take(full_at, t0);
            full_at = next;
            waits.push(wait.as_millis());
        }
        assert_eq!(waits, vec![0, 0, 0, 100, 200]);
        // After idling a long time, only `burst` requests go without waiting.
        let later = t0 + Duration::from_secs(60);
        let (w1, f) = bucket.take(full_at, later);
        let (w2, f) = bucket.take(f, later);
        let (w3, f) = bucket.take(f, later);
        let (w4, _) = bucket.take(f, later);
        assert_eq!(
            (w1, w2, w3),
            (Duration::ZERO, Duration::ZERO, Duration::ZERO)
        );
        assert_eq!(w4, Duration::from_millis(100));
    }
}
