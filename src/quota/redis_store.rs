//! Monthly counters in Redis, with an in-process fallback while Redis is unreachable;
//! see [`RedisQuotaStore`].

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use crate::domain::TenantId;
use async_trait::async_trait;
use chrono::{DateTime, Utc};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{RedisResult, Script};

use super::period::Period;
use super::store::{ConsumeOutcome, Counts, LocalQuotaStore, QuotaStore, StoreError};
use crate::clock::SharedClock;

/// Seconds a period's Redis key outlives the period.
pub const KEY_GRACE_SECS: i64 = 31 * 86_400;

const CONSUME_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 'used', 'overage')
local used = tonumber(v[1] or '0')
local ov = tonumber(v[2] or '0')
local limit = tonumber(ARGV[1])
local within = limit < 0 or used < limit
if within or ARGV[2] == '1' then
  used = redis.call('HINCRBY', KEYS[1], 'used', 1)
  local is_over = 0
  if not within then
    ov = redis.call('HINCRBY', KEYS[1], 'overage', 1)
    is_over = 1
  end
  redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[3]))
  return {1, used, ov, is_over}
end
return {0, used, ov, 0}
";

const RECONCILE_LUA: &str = r"
local v = redis.call('HMGET', KEYS[1], 'used', 'overage')
local used = tonumber(v[1] or '0') + tonumber(ARGV[1])
local ov = tonumber(v[2] or '0') + tonumber(ARGV[2])
if used < tonumber(ARGV[3]) then used = tonumber(ARGV[3]) end
if ov < tonumber(ARGV[4]) then ov = tonumber(ARGV[4]) end
redis.call('HSET', KEYS[1], 'used', used, 'overage', ov)
redis.call('EXPIREAT', KEYS[1], tonumber(ARGV[5]))
return {used, ov}
";

// ARGV[1] = simulations to take back, ARGV[2] = of them, overage. Never below zero; a key that
// expired is not recreated.
const REFUND_LUA: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then return {0, 0} end
local v = redis.call('HMGET', KEYS[1], 'used', 'overage')
local used = tonumber(v[1] or '0') - tonumber(ARGV[1])
local ov = tonumber(v[2] or '0') - tonumber(ARGV[2])
if used < 0 then used = 0 end
if ov < 0 then ov = 0 end
redis.call('HSET', KEYS[1], 'used', used, 'overage', ov)
return {used, ov}
";

/// Timeouts of the Redis store.
#[derive(Debug, Clone, Copy)]
pub struct RedisTimeouts {
    /// Upper bound of one Redis operation, connection included.
    pub op_timeout: Duration,
    /// While degraded, how often Redis is probed.
    pub retry_interval: Duration,
    /// While degraded, how often the ongoing failure is logged.
    pub log_interval: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        Self {
            op_timeout: Duration::from_millis(250),
            retry_interval: Duration::from_secs(1),
            log_interval: Duration::from_secs(60),
        }
    }
}

struct Down {
    since: DateTime<Utc>,
    last_error: String,
    next_probe: Instant,
    last_log: Instant,
    failures_since_log: u64,
}

/// State of the Redis connection as seen by this instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisHealth {
    /// Redis answered the last operation.
    Up,
    /// Redis failed; limits are enforced per instance since `since`.
    Degraded {
        /// When the outage began (injected clock).
        since: DateTime<Utc>,
        /// The most recent error.
        last_error: String,
    },
}

/// [`QuotaStore`] over Redis with a per-instance fallback.
///
/// # Exactness
/// Each consume is one Lua script (`redis::Script`, EVALSHA with automatic EVAL fallback, so a
/// restarted Redis with an empty script cache is handled) that reads the counters, decides and
/// increments atomically; Redis runs scripts one at a time, so N instances sharing one Redis never
/// admit more than the quota together. Key: `{prefix}quota:{tenant_id}:{YYYY-MM}`, a hash with
/// fields `used` and `overage`, expiring [`KEY_GRACE_SECS`] after the period ends (so last
/// month's overage can still be read for billing early in the next month).
///
/// # Failure handling (a circuit breaker)
/// * Every Redis call is bounded by `op_timeout` (default 250 ms) on top of the connection
///   manager's own connect/response timeouts, so a dead or black-holed Redis never makes a
///   request hang.
/// * The first failure marks Redis *degraded*: for `retry_interval` (default 1 s) no request
///   touches Redis; after that exactly one request (or a [`health`](RedisQuotaStore::health)
///   call) probes it while the others continue locally. A failed probe rebuilds the connection
///   manager, so a restarted Redis is picked up without restarting the service.
/// * While degraded, quotas are enforced **per instance** by an in-process counter seeded with the
///   last totals this instance saw from Redis (not from zero). With N instances a tenant can
///   therefore get up to N × its remaining quota during an outage. Simulations admitted locally
///   are written back when Redis returns (`used = max(redis + pending, local view)`), so
///   overage billing is not lost, even if Redis restarted empty.
/// * Logged once on the transition, then at most once per `log_interval` (default 60 s) with the
///   number of failures in between; recovery is logged once.
pub struct RedisQuotaStore {
    client: Option<redis::Client>,
    manager: RwLock<Option<ConnectionManager>>,
    prefix: String,
    timeouts: RedisTimeouts,
    clock: SharedClock,
    local: LocalQuotaStore,
    healthy: AtomicBool,
    probing: AtomicBool,
    flushing: AtomicBool,
    has_pending: AtomicBool,
    ops: AtomicU64,
    down: Mutex<Option<Down>>,
    consume_script: Script,
    reconcile_script: Script,
    refund_script: Script,
}

impl RedisQuotaStore {
    /// Connects to `url` (waiting at most `timeouts.op_timeout`). Never fails: an unreachable
    /// Redis or an invalid URL yields a store that starts degraded.
    pub async fn connect(
        url: &str,
        prefix: String,
        timeouts: RedisTimeouts,
        clock: SharedClock,
    ) -> Self {
        let (client, open_error) = match redis::Client::open(url) {
            Ok(c) => (Some(c), None),
            Err(e) => (None, Some(format!("invalid REDIS_URL: {e}"))),
        };
        let store = Self {
            manager: RwLock::new(None),
            client,
            prefix,
            timeouts,
            clock,
            local: LocalQuotaStore::default(),
            healthy: AtomicBool::new(true),
            probing: AtomicBool::new(false),
            flushing: AtomicBool::new(false),
            has_pending: AtomicBool::new(false),
            ops: AtomicU64::new(0),
            down: Mutex::new(None),
            consume_script: Script::new(CONSUME_LUA),
            reconcile_script: Script::new(RECONCILE_LUA),
            refund_script: Script::new(REFUND_LUA),
        };
        match open_error {
            Some(e) => store.mark_down(e),
            None => {
                store.rebuild_manager();
                // Establish the connection now, so health is accurate from the start.
                let _ = store.ping().await;
            }
        }
        store
    }

    fn new_manager(&self) -> Result<ConnectionManager, String> {
        let client = self.client.clone().ok_or("invalid REDIS_URL")?;
        let t = self.timeouts.op_timeout;
        let cfg = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(t))
            .set_response_timeout(Some(t))
            .set_number_of_retries(0)
            .set_min_delay(Duration::from_millis(10))
            .set_max_delay(t);
        ConnectionManager::new_lazy_with_config(client, cfg).map_err(|e| e.to_string())
    }

    fn rebuild_manager(&self) {
        let m = self.new_manager().ok();
        *self.manager.write().unwrap_or_else(|e| e.into_inner()) = m;
    }

    fn key(&self, tenant_id: TenantId, period: &Period) -> String {
        counter_key(&self.prefix, tenant_id, period.key())
    }

    fn expire_at(period: &Period) -> i64 {
        period.resets_at().timestamp() + KEY_GRACE_SECS
    }

    /// Current connection state. While degraded and a probe is due, probes Redis first (so a
    /// readiness check notices recovery even without traffic).
    pub async fn health(&self) -> RedisHealth {
        if !self.healthy.load(Ordering::Acquire) {
            let _ = self.ping().await;
        }
        let down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match (&*down, self.healthy.load(Ordering::Acquire)) {
            (Some(d), false) => RedisHealth::Degraded {
                since: d.since,
                last_error: d.last_error.clone(),
            },
            _ => RedisHealth::Up,
        }
    }

    async fn ping(&self) -> Option<String> {
        self.with_redis(
            |mut c| async move { redis::cmd("PING").query_async::<String>(&mut c).await },
        )
        .await
    }

    /// Runs `op` against Redis unless the breaker is open; `None` means "use the fallback".
    async fn with_redis<T, F, Fut>(&self, op: F) -> Option<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let probing = if self.healthy.load(Ordering::Acquire) {
            false
        } else {
            let due = self
                .down
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_none_or(|d| Instant::now() >= d.next_probe);
            if !due
                || self
                    .probing
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_err()
            {
                return None;
            }
            true
        };
        let result = self.run(op).await;
        let out = match result {
            Ok(v) => {
                if probing {
                    self.mark_up();
                }
                Some(v)
            }
            Err(e) => {
                self.mark_down(e);
                None
            }
        };
        if probing {
            self.probing.store(false, Ordering::Release);
        }
        if out.is_some() && self.has_pending.load(Ordering::Acquire) {
            self.flush_pending().await;
        }
        out
    }

    async fn run<T, F, Fut>(&self, op: F) -> Result<T, String>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let manager = self
            .manager
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| "no Redis connection manager".to_owned())?;
        match tokio::time::timeout(self.timeouts.op_timeout, op(manager)).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!(
                "Redis did not answer within {} ms",
                self.timeouts.op_timeout.as_millis()
            )),
        }
    }

    fn mark_down(&self, error: String) {
        let now = Instant::now();
        let was_healthy = self.healthy.swap(false, Ordering::AcqRel);
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        match down.as_mut() {
            Some(d) if !was_healthy => {
                d.next_probe = now + self.timeouts.retry_interval;
                d.failures_since_log += 1;
                if now.duration_since(d.last_log) >= self.timeouts.log_interval {
                    tracing::warn!(
                        error = %error,
                        failures = d.failures_since_log,
                        since = %d.since,
                        "Redis still unreachable; monthly quotas enforced per instance"
                    );
                    d.last_log = now;
                    d.failures_since_log = 0;
                }
                d.last_error = error;
            }
            _ => {
                tracing::warn!(
                    error = %error,
                    "Redis unreachable; monthly quotas now enforced per instance until it returns"
                );
                *down = Some(Down {
                    since: self.clock.now(),
                    last_error: error,
                    next_probe: now + self.timeouts.retry_interval,
                    last_log: now,
                    failures_since_log: 0,
                });
            }
        }
        drop(down);
        // A fresh manager makes the next probe a fresh connection attempt.
        self.rebuild_manager();
    }

    fn mark_up(&self) {
        let mut down = self.down.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(d) = down.take() {
            tracing::info!(since = %d.since, "Redis reachable again; quotas shared across instances");
        }
        self.healthy.store(true, Ordering::Release);
    }

    /// Writes simulations admitted locally during an outage back to Redis.
    async fn flush_pending(&self) {
        if self
            .flushing
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return;
        }
        self.has_pending.store(false, Ordering::Release);
        let batch: Vec<_> = {
            let mut map = self.local.entries.lock().unwrap_or_else(|e| e.into_inner());
            map.iter_mut()
                .filter(|(_, e)| e.pending != Counts::default() || e.refunds != Counts::default())
                .map(|(k, e)| {
                    (
                        k.clone(),
                        std::mem::take(&mut e.pending),
                        std::mem::take(&mut e.refunds),
                        e.counts,
                        e.expire_at,
                    )
                })
                .collect()
        };
        let mut failed = Vec::new();
        let mut iter = batch.into_iter();
        for (k, pending, refunds, floor, expire_at) in iter.by_ref() {
            let key = counter_key(&self.prefix, k.0, &k.1);
            let (reconcile, refund) = (&self.reconcile_script, &self.refund_script);
            let res = self
                .run(|mut c| async move {
                    if pending != Counts::default() {
                        reconcile
                            .key(&key)
                            .arg(pending.used)
                            .arg(pending.overage)
                            .arg(floor.used)
                            .arg(floor.overage)
                            .arg(expire_at)
                            .invoke_async::<Vec<i64>>(&mut c)
                            .await?;
                    }
                    if refunds != Counts::default() {
                        refund
                            .key(&key)
                            .arg(refunds.used)
                            .arg(refunds.overage)
                            .invoke_async::<Vec<i64>>(&mut c)
                            .await?;
                    }
                    Ok(())
                })
                .await;
            if let Err(e) = res {
                failed.push((k, pending, refunds));
                self.mark_down(e);
                break;
            }
        }
        failed.extend(iter.map(|(k, p, r, _, _)| (k, p, r)));
        if !failed.is_empty() {
            let mut map = self.local.entries.lock().unwrap_or_else(|e| e.into_inner());
            for (k, p, r) in failed {
                let e = map.entry(k).or_default();
                e.pending.used += p.used;
                e.pending.overage += p.overage;
                e.refunds.used += r.used;
                e.refunds.overage += r.overage;
            }
            self.has_pending.store(true, Ordering::Release);
        } else {
            tracing::info!("simulations counted locally during the Redis outage written back");
        }
        self.flushing.store(false, Ordering::Release);
    }
}

#[async_trait]
impl QuotaStore for RedisQuotaStore {
    async fn consume(
        &self,
        tenant_id: TenantId,
        period: &Period,
        limit: Option<u64>,
        overage_allowed: bool,
    ) -> Result<ConsumeOutcome, StoreError> {
        if self.ops.fetch_add(1, Ordering::Relaxed) % 4096 == 4095 {
            self.local.prune(period);
        }
        let key = self.key(tenant_id, period);
        let expire_at = Self::expire_at(period);
        let limit_arg: i64 = limit.map_or(-1, |l| i64::try_from(l).unwrap_or(i64::MAX));
        let script = &self.consume_script;
        let key_ref = &key;
        let res = self
            .with_redis(|mut c| async move {
                script
                    .key(key_ref)
                    .arg(limit_arg)
                    .arg(u8::from(overage_allowed))
                    .arg(expire_at)
                    .invoke_async::<Vec<i64>>(&mut c)
                    .await
            })
            .await;
        match res {
            Some(v) if v.len() == 4 => {
                let counts = Counts::from_signed(v[1], v[2]);
                self.local.observe(tenant_id, period, counts, expire_at);
                Ok(ConsumeOutcome {
                    admitted: v[0] == 1,
                    overage: v[3] == 1,
                    counts,
                })
            }
            Some(v) => Err(StoreError::Redis(format!(
                "unexpected quota script reply {v:?}"
            ))),
            None => {
                let out =
                    self.local
                        .consume_local(tenant_id, period, limit, overage_allowed, expire_at);
                if out.admitted {
                    self.has_pending.store(true, Ordering::Release);
                }
                Ok(out)
            }
        }
    }

    async fn usage(&self, tenant_id: TenantId, period: &Period) -> Result<Counts, StoreError> {
        let key = self.key(tenant_id, period);
        let key_ref = &key;
        let res = self
            .with_redis(|mut c| async move {
                redis::cmd("HMGET")
                    .arg(key_ref)
                    .arg("used")
                    .arg("overage")
                    .query_async::<(Option<i64>, Option<i64>)>(&mut c)
                    .await
            })
            .await;
        Ok(match res {
            Some((u, o)) => {
                let counts = Counts::from_signed(u.unwrap_or(0), o.unwrap_or(0));
                self.local
                    .observe(tenant_id, period, counts, Self::expire_at(period));
                self.local.counts(tenant_id, period)
            }
            None => self.local.counts(tenant_id, period),
        })
    }

    async fn refund(
        &self,
        tenant_id: TenantId,
        period: &Period,
        overage: bool,
    ) -> Result<(), StoreError> {
        let key = self.key(tenant_id, period);
        let (key_ref, script) = (&key, &self.refund_script);
        let res = self
            .with_redis(|mut c| async move {
                script
                    .key(key_ref)
                    .arg(1)
                    .arg(u8::from(overage))
                    .invoke_async::<Vec<i64>>(&mut c)
                    .await
            })
            .await;
        match res {
            Some(v) if v.len() == 2 => {
                let counts = Counts::from_signed(v[0], v[1]);
                self.local
                    .observe(tenant_id, period, counts, Self::expire_at(period));
            }
            Some(v) => {
                return Err(StoreError::Redis(format!(
                    "unexpected refund script reply {v:?}"
                )));
            }
            None => {
                self.local.refund_local(tenant_id, period, overage);
                self.has_pending.store(true, Ordering::Release);
            }
        }
        Ok(())
    }
}

/// The Redis key of a tenant's counters in a period: `{prefix}quota:{tenant uuid}:{YYYY-MM}`.
fn counter_key(prefix: &str, tenant: TenantId, period: &str) -> String {
    format!("{prefix}quota:{}:{period}", tenant.as_uuid())
}
