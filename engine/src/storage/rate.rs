//! A token-bucket bandwidth limit shared by all transfers of one direction.

use std::time::{Duration, Instant};

/// Limits throughput to a number of bytes per second, with one second of burst.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    state: tokio::sync::Mutex<(f64, Instant)>,
}

impl RateLimiter {
    pub(crate) fn new(bytes_per_second: u64) -> Self {
        let rate = bytes_per_second.max(1) as f64;
        RateLimiter {
            rate,
            state: tokio::sync::Mutex::new((rate, Instant::now())),
        }
    }

    /// Wait until `bytes` may be transferred. Larger requests than the burst simply wait
    /// longer (the bucket goes negative), so any size is allowed.
    pub(crate) async fn acquire(&self, bytes: u64) {
        let wait = {
            let mut s = self.state.lock().await;
            let now = Instant::now();
            let refill = now.duration_since(s.1).as_secs_f64() * self.rate;
            s.0 = (s.0 + refill).min(self.rate) - bytes as f64;
            s.1 = now;
            if s.0 < 0.0 {
                Duration::from_secs_f64(-s.0 / self.rate)
            } else {
                Duration::ZERO
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_throughput() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let l = RateLimiter::new(1_000_000);
            let start = Instant::now();
            for _ in 0..4 {
                l.acquire(500_000).await;
            }
            // 2 MB at 1 MB/s with a 1 MB initial burst: about one second.
            let t = start.elapsed();
            assert!(
                t >= Duration::from_millis(900) && t < Duration::from_millis(2500),
                "{t:?}"
            );
        });
    }
}
