//! Per-tenant cap on simulations running at once.
//!
//! **Per instance**: each service instance holds its own semaphore per tenant, so with N
//! instances a tenant can run up to N × `max_concurrent_simulations`. The cap exists so one
//! tenant's large simulations cannot starve the others on the same instance's CPU pool.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::domain::TenantId;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::headers::{POLICY_CONCURRENCY, Rejection, ceil_secs};
use crate::domain::Tier;

/// A running simulation's slot; dropping it frees the slot for the tenant's next simulation.
#[derive(Debug)]
#[must_use = "the slot is released as soon as it is dropped"]
pub struct SimulationSlot {
    _permit: OwnedSemaphorePermit,
}

#[derive(Default)]
pub(crate) struct ConcurrencyLimiter {
    tenants: Mutex<HashMap<TenantId, (u32, Arc<Semaphore>)>>,
}

impl ConcurrencyLimiter {
    fn semaphore(&self, tenant_id: TenantId, cap: u32) -> Arc<Semaphore> {
        let mut map = self.tenants.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map
            .entry(tenant_id)
            .or_insert_with(|| (cap, Arc::new(Semaphore::new(cap as usize))));
        if entry.0 != cap {
            // Tier changed. Raising the cap adds permits; lowering it starts a new semaphore
            // (simulations already running under the old cap finish undisturbed, so for a short
            // while the tenant may run old + new cap at once).
            if cap > entry.0 {
                entry.1.add_permits((cap - entry.0) as usize);
            } else {
                entry.1 = Arc::new(Semaphore::new(cap as usize));
            }
            entry.0 = cap;
        }
        entry.1.clone()
    }

    pub(crate) async fn acquire(
        &self,
        tenant_id: TenantId,
        tier: &Tier,
        wait: Duration,
    ) -> Result<SimulationSlot, Rejection> {
        let cap = tier.max_concurrent_simulations.max(1);
        let sem = self.semaphore(tenant_id, cap);
        let permit = match sem.clone().try_acquire_owned() {
            Ok(p) => Ok(p),
            Err(_) if wait.is_zero() => Err(()),
            Err(_) => match tokio::time::timeout(wait, sem.acquire_owned()).await {
                Ok(Ok(p)) => Ok(p),
                _ => Err(()),
            },
        };
        permit.map(|p| SimulationSlot { _permit: p }).map_err(|()| {
            Rejection::new(
                429,
                POLICY_CONCURRENCY,
                format!(
                    "tier {} allows {cap} concurrent simulation{} per tenant and all are \
                         running; none finished within {} ms",
                    tier.name,
                    if cap == 1 { "" } else { "s" },
                    wait.as_millis()
                ),
                Some(ceil_secs(wait)),
                None,
            )
        })
    }

    /// Slots of `tenant_id` free right now (for diagnostics and tests).
    pub(crate) fn available(&self, tenant_id: TenantId) -> Option<usize> {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&tenant_id)
            .map(|(_, s)| s.available_permits())
    }
}
