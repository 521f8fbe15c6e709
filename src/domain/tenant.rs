//! Tenants as the service holds them in memory, and who calls inside one.

use super::ids::{ApiKeyId, TenantId, UserId};
use super::slug::{SchemaName, TenantSlug};
use super::tier::Tier;
use super::user::Role;
use chrono::{DateTime, Utc};
use std::sync::Arc;

/// Tenant lifecycle status (`platform.tenants.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TenantStatus {
    /// Serving requests.
    Active,
    /// Every authenticated request answers 403.
    Suspended,
}

impl TenantStatus {
    /// Every status, in the order the API lists them.
    pub const ALL: [TenantStatus; 2] = [TenantStatus::Active, TenantStatus::Suspended];

    /// The database and wire spelling.
    pub fn as_str(&self) -> &'static str {
        match self {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        }
    }

    /// Parses the database and wire spelling.
    ///
    /// # Errors
    /// A message listing the statuses when `s` is none of them.
    pub fn parse(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| format!("{s:?} is not a tenant status; one of active, suspended"))
    }
}

/// A tenant as cached in memory.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Subdomain / `X-Tenant-ID` value.
    pub slug: TenantSlug,
    /// Organisation name.
    pub display_name: String,
    /// The tenant's PostgreSQL schema (derived from the slug at signup, validated on load).
    pub schema: SchemaName,
    /// Tier limits, current as of the last change heard by this instance.
    pub tier: Arc<Tier>,
    /// Status.
    pub status: TenantStatus,
    /// End of the trial, when on the trial tier.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Paid tiers: admit simulations beyond the monthly quota as metered overage.
    pub overage_enabled: bool,
    /// Signup time.
    pub created_at: DateTime<Utc>,
    /// Billing: a payment failed and the paid tier is kept until then (`past_due`).
    pub billing_grace_until: Option<DateTime<Utc>>,
    /// Billing: `suspended` (grace over or unpaid): simulations answer 402 naming the portal.
    pub billing_suspended: bool,
    /// Soft-deleted at (then every credential is refused and the slug stays taken).
    pub deleted_at: Option<DateTime<Utc>>,
    /// A deleted tenant's schema is dropped after this instant (restorable until then).
    pub purge_after: Option<DateTime<Utc>>,
}

impl Tenant {
    /// Has the tenant been (soft-)deleted?
    pub fn is_deleted(&self) -> bool {
        self.deleted_at.is_some()
    }

    /// Has the trial ended at `now`?
    pub fn trial_ended(&self, now: DateTime<Utc>) -> bool {
        self.tier.trial_days.is_some() && self.trial_ends_at.is_some_and(|end| end <= now)
    }
}

/// Who is calling, inside the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Principal {
    /// An API key (acts with member rights).
    ApiKey(ApiKeyId),
    /// A signed-in user (bearer JWT).
    User {
        /// The user.
        id: UserId,
        /// Their role.
        role: Role,
    },
}

impl Principal {
    /// The id the burst limit is keyed on: the API key, or the user for bearer tokens.
    pub fn limiter_key(&self) -> uuid::Uuid {
        match self {
            Principal::ApiKey(k) => k.as_uuid(),
            Principal::User { id, .. } => id.as_uuid(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips() {
        for s in TenantStatus::ALL {
            assert_eq!(TenantStatus::parse(s.as_str()), Ok(s));
        }
        assert!(TenantStatus::parse("deleted").is_err());
    }
}
