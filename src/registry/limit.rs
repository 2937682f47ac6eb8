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

/// The longest wait between two requests, whatever the rate says: a rate below one request an
/// hour is no longer a rate but a stalled scan (config validation asks for at least 0.01/s).
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

impl Bucket {
    /// The time between two requests. Rates too small, negative or not a number give the
    /// longest interval; huge ones give none. Never panics: `Duration::from_secs_f64` would on
    /// `1 / 1e-300`.
    fn interval(&self) -> Duration {
        if self.per_second.is_nan() || self.per_second <= 0.0 {
            return MAX_INTERVAL;
        }
        Duration::try_from_secs_f64(1.0 / self.per_second)
            .unwrap_or(MAX_INTERVAL)
            .min(MAX_INTERVAL)
    }

    /// Given when the bucket would be full (`full_at`) and `now`, returns how long this request
    /// waits and the new `full_at`. Each request costs one token; tokens come back at
    /// `per_second` and at most `burst` are saved up.
    pub fn take(&self, full_at: Instant, now: Instant) -> (Duration, Instant) {
        let interval = self.interval();
        // `burst` is a whole number of requests in config; clamp what a library caller passes.
        let burst = if self.burst.is_finite() {
            self.burst.clamp(1.0, f64::from(u32::MAX))
        } else {
            1.0
        };
        // Truncation is intended: whole requests.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let window = interval.saturating_mul(burst as u32);
        // Never let saved-up capacity exceed `burst`.
        let full_at = full_at.max(now);
        // Saturate at `now + MAX_INTERVAL` rather than overflow `Instant` (which panics).
        let new_full_at = full_at.checked_add(interval).unwrap_or(full_at);
        let earliest = new_full_at.checked_sub(window).unwrap_or(now);
        let wait = earliest.saturating_duration_since(now).min(MAX_INTERVAL);
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
            // An infinite rate is no limit; anything else, however odd, is paced by `take`.
            rate: rate
                .filter(|b| b.per_second != f64::INFINITY)
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

    #[test]
    fn odd_rates_never_panic_and_stay_bounded() {
        let t0 = Instant::now();
        for per_second in [
            1e-300,
            -1.0,
            0.0,
            f64::NAN,
            f64::MIN_POSITIVE,
            1e300,
            f64::MAX,
        ] {
            for burst in [0.0, 1.0, 1e300, f64::NAN, -5.0] {
                let bucket = Bucket { per_second, burst };
                let mut full_at = t0;
                for _ in 0..3 {
                    let (wait, next) = bucket.take(full_at, t0);
                    assert!(wait <= MAX_INTERVAL, "{per_second} {burst}: {wait:?}");
                    full_at = next;
                }
            }
        }
        let tiny = Bucket {
            per_second: 1e-300,
            burst: 1.0,
        };
        let (first, next) = tiny.take(t0, t0);
        let (second, _) = tiny.take(next, t0);
        assert_eq!((first, second), (Duration::ZERO, MAX_INTERVAL));
        let huge = Bucket {
            per_second: 1e300,
            burst: 1.0,
        };
        let (w1, next) = huge.take(t0, t0);
        let (w2, _) = huge.take(next, t0);
        assert_eq!((w1, w2), (Duration::ZERO, Duration::ZERO));
    }
}
