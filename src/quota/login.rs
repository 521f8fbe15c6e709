//! Login and signup throttling with exponential account lockout.
//!
//! Follows the OWASP Authentication Cheat Sheet ("Protect against automated attacks",
//! account lockout): attempts are throttled per client IP and per account name with governor's
//! GCRA (default 5 per minute each), and an account is locked after repeated consecutive failures
//! (default: the 5th failure locks it for 1 min, each further failure doubles the lock, up to 1 h).
//! A success resets the account. Lockout applies to any account name, existing or not, so it
//! does not reveal which accounts exist.
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
    /// Attempts per minute per IP and, separately, per account.
    pub attempts_per_minute: u32,
    /// Consecutive failures that trigger the first lock.
    pub lockout_threshold: u32,
    /// Length of the first lock; doubled by each further failure.
    pub base_lockout: Duration,
    /// Longest lock.
    pub max_lockout: Duration,
    /// Consecutive failures older than this are forgotten.
    pub failure_memory: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        Self {
            attempts_per_minute: 5,
            lockout_threshold: 5,
            base_lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
            failure_memory: Duration::from_secs(24 * 3600),
        }
    }
}

#[derive(Debug, Clone)]
struct AccountState {
    failures: u32,
    last_failure: DateTime<Utc>,
    locked_until: Option<DateTime<Utc>>,
}

/// Throttle and lockout for login and signup. Call [`check`](Self::check) before verifying the
/// credentials, then [`record_failure`](Self::record_failure) or
/// [`record_success`](Self::record_success).
pub struct LoginThrottle {
    policy: LoginPolicy,
    per_ip: Keyed<String>,
    per_account: Keyed<String>,
    accounts: Mutex<HashMap<String, AccountState>>,
    clock: SharedClock,
    calls: AtomicU64,
}

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

impl LoginThrottle {
    /// A throttle using `policy`; lock times are measured with `clock`.
    pub fn new(policy: LoginPolicy, clock: SharedClock) -> Self {
        let per_min = NonZeroU32::new(policy.attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        let quota = Quota::per_minute(per_min);
        Self {
            policy,
            per_ip: RateLimiter::keyed(quota),
            per_account: RateLimiter::keyed(quota),
            accounts: Mutex::new(HashMap::new()),
            clock,
            calls: AtomicU64::new(0),
        }
    }

    /// Admits one login or signup attempt from client address `ip` (IPv4 or IPv6 text; IPv6 is
    /// throttled per /64) for `account` (e-mail or user name; compared trimmed and
    /// case-insensitively), consuming one unit of both per-minute throttles.
    ///
    /// # Errors
    /// A 429 [`Rejection`] with policy `"login"` and `Retry-After` when the account is locked or
    /// either throttle is exhausted.
    pub fn check(&self, ip: &str, account: &str) -> Result<(), Rejection> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.sweep();
        }
        let account = normalize(account);
        let now = self.clock.now();
        if let Some(until) = self
            .accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&account)
            .and_then(|s| s.locked_until)
            .filter(|u| *u > now)
        {
            let secs = ceil_secs((until - now).to_std().unwrap_or_default());
            return Err(reject(
                format!(
                    "too many failed sign-in attempts for this account; it is locked until \
                     {}; retry in {secs} s",
                    until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
                secs,
            ));
        }
        self.throttle(&self.per_ip, &ip_key(ip), "from this address")?;
        self.throttle(&self.per_account, &account, "for this account")
    }

    /// One unit of a per-minute throttle for `key`; `whose` completes the refusal's detail.
    fn throttle(
        &self,
        limiter: &Keyed<String>,
        key: &String,
        whose: &str,
    ) -> Result<(), Rejection> {
        limiter.check_key(key).map_err(|nu| {
            let secs = ceil_secs(nu.wait_time_from(limiter.clock().now()));
            reject(
                format!(
                    "more than {} sign-in or sign-up attempts per minute {whose}; retry in {secs} s",
                    self.policy.attempts_per_minute
                ),
                secs,
            )
        })
    }

    /// Counts a failed attempt for `account`. Returns the lock now in force, if any
    /// (`base_lockout × 2^(failures − threshold)`, capped at `max_lockout`).
    pub fn record_failure(&self, account: &str) -> Option<Duration> {
        let account = normalize(account);
        let now = self.clock.now();
        let memory = chrono::Duration::from_std(self.policy.failure_memory)
            .unwrap_or(chrono::Duration::days(1));
        let mut map = self.accounts.lock().unwrap_or_else(|e| e.into_inner());
        let state = map.entry(account).or_insert(AccountState {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if now - state.last_failure > memory {
            state.failures = 0;
        }
        state.failures = state.failures.saturating_add(1);
        state.last_failure = now;
        if state.failures < self.policy.lockout_threshold {
            return None;
        }
        let doublings = (state.failures - self.policy.lockout_threshold).min(31);
        let lock = self
            .policy
            .base_lockout
            .saturating_mul(1u32 << doublings)
            .min(self.policy.max_lockout);
        state.locked_until =
            Some(now + chrono::Duration::from_std(lock).unwrap_or(chrono::Duration::hours(1)));
        Some(lock)
    }

    /// Clears the failure count and any lock of `account` after a successful login.
    pub fn record_success(&self, account: &str) {
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&normalize(account));
    }

    fn sweep(&self) {
        let now = self.clock.now();
        let memory = chrono::Duration::from_std(self.policy.failure_memory)
            .unwrap_or(chrono::Duration::days(1));
        self.accounts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, s| {
                now - s.last_failure <= memory || s.locked_until.is_some_and(|u| u > now)
            });
        self.per_ip.retain_recent();
        self.per_account.retain_recent();
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
