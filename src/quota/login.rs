//! Login and signup throttling, with a lockout that an attacker cannot turn against the owner.
//!
//! Follows the OWASP Authentication Cheat Sheet ("Protect against automated attacks"):
//! * attempts are throttled per (account, client address) and per client address with
//!   governor's GCRA (default 5 per minute per pair, 4 × that per address across accounts);
//! * a (account, client address) pair is locked after repeated consecutive failures (the 5th
//!   locks it for 1 min, each further failure doubles the lock, up to 1 h): the attacker's
//!   address is locked out, the owner signing in from elsewhere is not;
//! * across all addresses, an account's consecutive failures add a progressive delay before
//!   each further attempt is answered (from the 5th: 250 ms, doubling, at most 4 s), which
//!   slows a distributed guesser without ever refusing the owner.
//!
//! A success resets the account's delay and its pair's failures. Everything applies to any
//! account name, existing or not, so it reveals nothing about which accounts exist.
//!
//! **In-process**: every instance throttles on its own, so an attacker spreading attempts over N
//! instances gets up to N × the rate; lockout state is also per instance.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use super::headers::{POLICY_LOGIN, Rejection, ceil_secs};
use crate::clock::SharedClock;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock>;

/// Tunables of [`LoginThrottle`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Attempts per minute per (account, client address); a client address gets
    /// [`PER_ADDRESS_FACTOR`] × this across all accounts.
    pub attempts_per_minute: u32,
    /// Consecutive failures of an (account, address) pair that trigger its first lock.
    pub lockout_threshold: u32,
    /// Length of the first lock; doubled by each further failure.
    pub base_lockout: Duration,
    /// Longest lock.
    pub max_lockout: Duration,
    /// Consecutive failures older than this are forgotten.
    pub failure_memory: Duration,
    /// Consecutive failures of an account (from any address) before answers are delayed.
    pub delay_threshold: u32,
    /// The first delay; doubled by each further failure.
    pub base_delay: Duration,
    /// Longest delay.
    pub max_delay: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            attempts_per_minute: 5,
            lockout_threshold: 5,
            base_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
            failure_memory: Duration::from_secs(24 * 3600),
            delay_threshold: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
        }
    }
}

#[derive(Debug, Clone)]
struct Failures {
    count: u32,
    last: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
}

/// Throttle and lockout for login and signup. Call [`check`](Self::check) before verifying the
/// credentials (and wait the delay it returns), then [`record_failure`](Self::record_failure)
/// or [`record_success`](Self::record_success).
pub struct LoginThrottle {
    policy: LoginPolicy,
    per_ip: Keyed<String>,
    per_pair: Keyed<(String, String)>,
    pairs: Mutex<HashMap<(String, String), Failures>>,
    accounts: Mutex<HashMap<String, Failures>>,
    clock: SharedClock,
    calls: AtomicU64,
}

/// A client address may try this many times more attempts per minute across accounts than at
/// one account (people behind one address share it).
pub const PER_ADDRESS_FACTOR: u32 = 4;

fn normalize(account: &str) -> String {
    account.trim().to_lowercase()
}

/// Throttle key of a client address: IPv4 as is, IPv6 by its /64 network (one host usually
/// holds a whole /64), anything unparsable as given.
fn ip_key(ip: &str) -> String {
    match ip.trim().parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.to_string(),
        Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let net = u128::from(v6) & !((1u128 << 64) - 1);
                format!("{}/64", Ipv6Addr::from(net))
            }
        },
        Err(_) => ip.trim().to_owned(),
    }
}

fn lock<K>(m: &Mutex<K>) -> std::sync::MutexGuard<'_, K> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LoginThrottle {
    /// A throttle using `policy`; lock times are measured with `clock`.
    pub fn new(policy: LoginPolicy, clock: SharedClock) -> Self {
        let per_min = NonZeroU32::new(policy.attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        let per_address =
            per_min.saturating_mul(NonZeroU32::new(PER_ADDRESS_FACTOR).unwrap_or(NonZeroU32::MIN));
        Self {
            policy,
            per_ip: RateLimiter::keyed(Quota::per_minute(per_address)),
            per_pair: RateLimiter::keyed(Quota::per_minute(per_min)),
            pairs: Mutex::new(HashMap::new()),
            accounts: Mutex::new(HashMap::new()),
            clock,
            calls: AtomicU64::new(0),
        }
    }

    fn memory(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.policy.failure_memory).unwrap_or(chrono::Duration::days(1))
    }

    /// Admits one login or signup attempt from client address `ip` (IPv4 or IPv6 text; IPv6 is
    /// throttled per /64) for `account` (compared trimmed and case-insensitively), consuming
    /// one unit of both per-minute throttles. Returns the delay to wait before answering (the
    /// account's progressive delay; zero below the threshold).
    ///
    /// # Errors
    /// A 429 [`Rejection`] with policy `"login"` and `Retry-After` when this address is locked
    /// out of the account or either throttle is exhausted.
    pub fn check(&self, ip: &str, account: &str) -> Result<Duration, Rejection> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.sweep();
        }
        let pair = (normalize(account), ip_key(ip));
        let now = self.clock.now();
        if let Some(until) = lock(&self.pairs)
            .get(&pair)
            .and_then(|s| s.locked_until)
            .filter(|u| *u > now)
        {
            let secs = ceil_secs((until - now).to_std().unwrap_or_default());
            return Err(reject(
                format!(
                    "too many failed sign-in attempts for this account from this address; it is \
                     locked for this address until {}; retry in {secs} s",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                secs,
            ));
        }
        self.throttle(&self.per_ip, &pair.1, "from this address")?;
        self.throttle(&self.per_pair, &pair, "for this account from this address")?;
        let failures = lock(&self.accounts)
            .get(&pair.0)
            .filter(|f| now - f.last <= self.memory())
            .map_or(0, |f| f.count);
        Ok(self.delay_for(failures))
    }

    fn delay_for(&self, failures: u32) -> Duration {
        if failures < self.policy.delay_threshold {
            return Duration::ZERO;
        }
        let doublings = (failures - self.policy.delay_threshold).min(31);
        self.policy
            .base_delay
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max_delay)
    }

    /// One unit of a per-minute throttle for `key`; `whose` completes the refusal's detail.
    fn throttle<K: std::hash::Hash + Eq + Clone>(
        &self,
        limiter: &Keyed<K>,
        key: &K,
        whose: &str,
    ) -> Result<(), Rejection> {
        limiter.check_key(key).map_err(|nu| {
            let secs = ceil_secs(nu.wait_time_from(limiter.clock().now()));
            reject(
                format!(
                    "too many sign-in or sign-up attempts per minute {whose}; retry in {secs} s"
                ),
                secs,
            )
        })
    }

    /// Counts a failed attempt for `account` from `ip`. Returns the lock of this (account,
    /// address) pair now in force, if any (`base_lockout × 2^(failures − threshold)`, capped at
    /// `max_lockout`).
    pub fn record_failure(&self, ip: &str, account: &str) -> Option<Duration> {
        let account = normalize(account);
        let now = self.clock.now();
        let memory = self.memory();
        let bump = |f: &mut Failures| {
            if now - f.last > memory {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
        };
        let fresh = || Failures {
            count: 0,
            last: now,
            locked_until: None,
        };
        bump(
            lock(&self.accounts)
                .entry(account.clone())
                .or_insert_with(fresh),
        );
        let mut pairs = lock(&self.pairs);
        let state = pairs.entry((account, ip_key(ip))).or_insert_with(fresh);
        bump(state);
        if state.count < self.policy.lockout_threshold {
            return None;
        }
        let doublings = (state.count - self.policy.lockout_threshold).min(31);
        let lockout = self
            .policy
            .base_lockout
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max_lockout);
        state.locked_until =
            Some(now + chrono::Duration::from_std(lockout).unwrap_or(chrono::Duration::hours(1)));
        Some(lockout)
    }

    /// After a successful sign-in of `account` from `ip`: clears the account's delay and this
    /// pair's failures (other addresses stay locked out).
    pub fn record_success(&self, ip: &str, account: &str) {
        let account = normalize(account);
        lock(&self.accounts).remove(&account);
        lock(&self.pairs).remove(&(account, ip_key(ip)));
    }

    fn sweep(&self) {
        let now = self.clock.now();
        let memory = self.memory();
        let keep = |s: &Failures| now - s.last <= memory || s.locked_until.is_some_and(|u| u > now);
        lock(&self.pairs).retain(|_, s| keep(s));
        lock(&self.accounts).retain(|_, s| keep(s));
        self.per_ip.retain_recent();
        self.per_pair.retain_recent();
    }
}

fn reject(detail: String, secs: u64) -> Rejection {
    Rejection::new(429, POLICY_LOGIN, detail, Some(secs), None)
}

#[cfg(test)]
mod tests {
    #[test]
    fn ip_keys() {
        use super::ip_key;
        assert_eq!(ip_key("10.0.0.1"), "10.0.0.1");
        assert_eq!(ip_key("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("2001:db8:1:2:ffff::1"), "2001:db8:1:2::/64");
        assert_eq!(ip_key("::ffff:10.0.0.1"), "10.0.0.1");
        assert_eq!(ip_key(" unknown "), "unknown");
    }
}
