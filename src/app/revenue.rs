//! Platform-admin overviews for the dashboard: every tenant with this period's usage. (The
//! revenue figures themselves are `BillingService::revenue`.)

use super::tenants::TenantService;
use crate::domain::Tenant;
use crate::error::AppError;
use crate::quota::Quotas;
use std::sync::Arc;

/// One tenant as the admin tenants list shows it.
#[derive(Debug, Clone)]
pub struct TenantUsageRow {
    /// The tenant.
    pub tenant: Arc<Tenant>,
    /// Simulations admitted this quota period (overage included).
    pub used: u64,
    /// Of `used`, simulations beyond the quota (metered overage).
    pub overage: u64,
}

/// Every tenant (as `TenantService::list` orders them) with its usage in the current quota
/// period (`YYYY-MM`, returned too). One quota-store read per tenant.
///
/// # Errors
/// When PostgreSQL or the quota store (Redis) fails.
pub async fn tenants_with_usage(
    tenants: &TenantService,
    quotas: &Quotas,
) -> Result<(String, Vec<TenantUsageRow>), AppError> {
    let period = quotas.current_period();
    let mut rows = Vec::new();
    for tenant in tenants.list().await? {
        let counts = quotas
            .counts_in(tenant.id, &period)
            .await
            .map_err(AppError::internal)?;
        rows.push(TenantUsageRow {
            tenant,
            used: counts.used,
            overage: counts.overage,
        });
    }
    Ok((period.key().to_string(), rows))
}
