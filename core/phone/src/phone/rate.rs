//! A token bucket for the requests the phone sends on its own (REGISTER, SUBSCRIBE,
//! re-INVITE, retries after challenges and failures): whatever a server answers, the phone
//! cannot be talked into flooding it. A request without a token waits for one.

use std::time::{Duration, Instant};

/// A token bucket: `capacity` requests at once, then one more every `refill`.
#[derive(Debug, Clone)]
pub(crate) struct RateLimiter {
    capacity: u32,
    refill: Duration,
    tokens: u32,
    /// When the last token was added (or the bucket was made).
    last: Option<Instant>,
}

impl RateLimiter {
    /// Registrations and subscriptions of one account: a challenge, a 423 and the voicemail
    /// subscription fit in one burst; a server that keeps asking gets one request per 10 s.
    pub(crate) fn account() -> RateLimiter {
        RateLimiter::new(8, Duration::from_secs(10))
    }

    /// In-dialog requests of one call that the user did not ask for one by one.
    pub(crate) fn call() -> RateLimiter {
        RateLimiter::new(6, Duration::from_secs(5))
    }

    /// A full bucket.
    pub(crate) fn new(capacity: u32, refill: Duration) -> RateLimiter {
        RateLimiter {
            capacity: capacity.max(1),
            refill,
            tokens: capacity.max(1),
            last: None,
        }
    }

    fn refill_to(&mut self, now: Instant) {
        let last = *self.last.get_or_insert(now);
        if self.tokens >= self.capacity {
            self.last = Some(now);
            return;
        }
        let elapsed = now.saturating_duration_since(last);
        let earned = elapsed.as_nanos() / self.refill.as_nanos().max(1);
        let earned = u32::try_from(earned).unwrap_or(u32::MAX);
        if earned == 0 {
            return;
        }
        self.tokens = self.tokens.saturating_add(earned).min(self.capacity);
        self.last = Some(if self.tokens >= self.capacity {
            now
        } else {
            last + self.refill.saturating_mul(earned)
        });
    }

    /// Takes a token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        self.refill_to(now);
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }

    /// When the next token will be there; `None` when one is there now.
    pub(crate) fn next_token_at(&self) -> Option<Instant> {
        if self.tokens > 0 {
            return None;
        }
        self.last.map(|last| last + self.refill)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[allow(clippy::disallowed_methods)]
    fn t0() -> Instant {
        Instant::now()
    }

    #[test]
    fn a_burst_then_one_per_refill_whatever_is_asked() {
        let start = t0();
        let mut limiter = RateLimiter::new(3, Duration::from_secs(10));
        let mut sent = Vec::new();
        // Ask every 100 ms for two minutes of virtual time.
        for step in 0..1200u64 {
            let now = start + Duration::from_millis(step * 100);
            if limiter.try_take(now) {
                sent.push(now - start);
            }
        }
        // 3 at once, then one per 10 s: 3 + 11 in 120 s.
        assert_eq!(sent.len(), 14, "{sent:?}");
        assert!(sent[3] >= Duration::from_secs(10));
        for pair in sent[3..].windows(2) {
            assert!(pair[1] - pair[0] >= Duration::from_secs(10), "{sent:?}");
        }
    }

    #[test]
    fn the_next_token_time_is_when_a_request_may_go() {
        let start = t0();
        let mut limiter = RateLimiter::new(1, Duration::from_secs(5));
        assert_eq!(limiter.next_token_at(), None);
        assert!(limiter.try_take(start));
        let at = limiter.next_token_at().unwrap();
        assert_eq!(at, start + Duration::from_secs(5));
        assert!(!limiter.try_take(at - Duration::from_millis(1)));
        assert!(limiter.try_take(at));
    }

    #[test]
    fn an_idle_bucket_fills_up_to_its_capacity_only() {
        let start = t0();
        let mut limiter = RateLimiter::new(2, Duration::from_secs(1));
        assert!(limiter.try_take(start));
        assert!(limiter.try_take(start));
        let later = start + Duration::from_secs(3600);
        assert!(limiter.try_take(later));
        assert!(limiter.try_take(later));
        assert!(!limiter.try_take(later));
    }
}
