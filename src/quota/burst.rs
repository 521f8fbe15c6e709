//! Per-principal burst limiting with governor's keyed GCRA.
//!
//! GCRA (generic cell rate algorithm) is the token-bucket equivalent that stores one timestamp
//! per key (the "theoretical arrival time"); see Brandur Leach, "Rate Limiting, Cells, and GCRA"
//! (brandur.org/rate-limiting) and the `governor` crate docs. One keyed limiter exists per
//! `(burst_per_second, burst_size)` pair, so a tenant whose tier changes is checked against the
//! new tier's limiter on its next request (its state in the new limiter starts fresh).
//!
//! In-process only: with N instances behind a load balancer a key can get up to N × the burst.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use governor::clock::{Clock as _, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use uuid::Uuid;

use super::headers::{POLICY_BURST, RateLimitInfo, Rejection, ceil_secs};
use crate::domain::Tier;

type KeyedLimiter =
    RateLimiter<Uuid, DefaultKeyedStateStore<Uuid>, DefaultClock, StateInformationMiddleware>;

/// How many checks between sweeps of keys whose bucket is full again (memory bound).
const SWEEP_EVERY: u64 = 16_384;

/// Burst limiters, one per distinct `(burst_per_second, burst_size)`.
#[derive(Default)]
pub(crate) struct BurstLimiters {
    limiters: RwLock<HashMap<(u32, u32), Arc<KeyedLimiter>>>,
    checks: AtomicU64,
}

impl BurstLimiters {
    fn limiter(&self, rate: u32, burst: u32) -> Arc<KeyedLimiter> {
        if let Some(l) = self
            .limiters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(rate, burst))
        {
            return l.clone();
        }
        let mut map = self.limiters.write().unwrap_or_else(|e| e.into_inner());
        map.entry((rate, burst))
            .or_insert_with(|| {
                let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
                let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
                let quota = Quota::per_second(rate).allow_burst(burst);
                Arc::new(RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>())
            })
            .clone()
    }

    pub(crate) fn check(&self, principal: Uuid, tier: &Tier) -> Result<RateLimitInfo, Rejection> {
        let rate = tier.burst_per_second.max(1);
        let burst = tier.burst_size.max(1);
        let limiter = self.limiter(rate, burst);
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.sweep();
        }
        // Seconds for a fully drained bucket to refill: the policy window `w`.
        let window_secs = u64::from(burst).div_ceil(u64::from(rate)).max(1);
        let cell = std::time::Duration::from_secs(1) / rate;
        match limiter.check_key(&principal) {
            Ok(snapshot) => {
                let remaining = snapshot.remaining_burst_capacity();
                let missing = burst.saturating_sub(remaining);
                let reset_secs = if missing == 0 {
                    0
                } else {
                    ceil_secs(cell * missing)
                };
                Ok(RateLimitInfo {
                    policy: POLICY_BURST.to_owned(),
                    quota: u64::from(burst),
                    window_secs,
                    remaining: u64::from(remaining),
                    reset_secs,
                })
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(limiter.clock().now());
                let retry = ceil_secs(wait);
                let info = RateLimitInfo {
                    policy: POLICY_BURST.to_owned(),
                    quota: u64::from(burst),
                    window_secs,
                    remaining: 0,
                    reset_secs: retry,
                };
                Err(Rejection::new(
                    429,
                    POLICY_BURST,
                    format!(
                        "burst limit of {burst} requests at {rate} per second for tier {} \
                         exceeded; retry in {retry} s",
                        tier.name
                    ),
                    Some(retry),
                    Some(&info),
                ))
            }
        }
    }

    /// Drops per-key state that is indistinguishable from a fresh key, bounding memory.
    fn sweep(&self) {
        let all: Vec<_> = self
            .limiters
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        for l in all {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}
