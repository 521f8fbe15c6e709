//! Platform administration: list tenants and tiers, change a tenant's status, tier, trial end
//! or overage flag. Changes take effect on the next request on every instance.

use super::payload::{ApiJson, BodyLimit, Json};
use super::security::AdminAuth;
use super::tags::ApiTags;
use crate::app::App;
use crate::db::tenants::TenantChange;
use crate::domain::{Tenant, TenantId, TenantSlug, TenantStatus, Tier};
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use std::sync::Arc;

/// Admin operations.
pub struct AdminApi {
    /// The application.
    pub app: Arc<App>,
}

/// A tenant as the platform sees it.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct AdminTenantView {
    /// Id (`ten_…`).
    pub id: TenantId,
    /// Slug.
    pub slug: TenantSlug,
    /// Organisation name.
    pub name: String,
    /// Schema name.
    pub schema: String,
    /// Tier.
    pub tier: String,
    /// Status.
    pub status: TenantStatus,
    /// Trial end.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Overage billing enabled.
    pub overage_enabled: bool,
    /// Signup time.
    pub created_at: DateTime<Utc>,
}

impl From<&Tenant> for AdminTenantView {
    fn from(t: &Tenant) -> Self {
        Self {
            id: t.id,
            slug: t.slug.clone(),
            name: t.display_name.clone(),
            schema: t.schema.as_str().to_string(),
            tier: t.tier.name.clone(),
            status: t.status,
            trial_ends_at: t.trial_ends_at,
            overage_enabled: t.overage_enabled,
            created_at: t.created_at,
        }
    }
}

/// A tier's limits.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct TierView {
    /// Name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Price per month, cents (USD).
    pub price_cents_per_month: i64,
    /// Simulations per month; absent = unlimited.
    pub monthly_simulations: Option<u64>,
    /// Max paths per simulation.
    pub max_paths: u64,
    /// Max paths × steps × assets.
    pub max_work: u64,
    /// Sustained requests per second per key.
    pub burst_per_second: u32,
    /// Burst size per key.
    pub burst_size: u32,
    /// Concurrent simulations per tenant.
    pub max_concurrent_simulations: u32,
    /// Active API keys; absent = unlimited.
    pub max_api_keys: Option<u32>,
    /// Overage price per simulation, cents; absent = no overage.
    pub overage_cents_per_simulation: Option<i64>,
}

impl From<&Tier> for TierView {
    fn from(t: &Tier) -> Self {
        Self {
            name: t.name.clone(),
            display_name: t.display_name.clone(),
            price_cents_per_month: t.price_cents_per_month,
            monthly_simulations: t.monthly_simulations,
            max_paths: t.max_paths,
            max_work: t.max_work,
            burst_per_second: t.burst_per_second,
            burst_size: t.burst_size,
            max_concurrent_simulations: t.max_concurrent_simulations,
            max_api_keys: t.max_api_keys,
            overage_cents_per_simulation: t.overage_cents_per_simulation,
        }
    }
}

/// Changes to a tenant; absent fields are left alone.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example, skip_serializing_if_is_none)]
pub struct TenantPatch {
    /// `active` or `suspended`.
    pub status: Option<TenantStatus>,
    /// A tier name (see `GET /api/v1/admin/tiers`).
    #[oai(validator(max_length = 32))]
    pub tier: Option<String>,
    /// New trial end.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Allow metered overage on paid tiers.
    pub overage_enabled: Option<bool>,
}

impl Example for TenantPatch {
    fn example() -> Self {
        Self {
            status: None,
            tier: Some("starter".into()),
            trial_ends_at: None,
            overage_enabled: Some(true),
        }
    }
}

impl BodyLimit for TenantPatch {
    const MAX_BODY_BYTES: usize = 4 * 1024;
}

ok_response!(
    TiersOk,
    Vec<TierView>,
    "Every tier with its limits, cheapest first."
);
ok_response!(
    TenantsOk,
    Vec<AdminTenantView>,
    "Every tenant, oldest first."
);
ok_response!(TenantOk, AdminTenantView, "The tenant after the change.");

problem_responses!(AdminError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, Unavailable = 503 });

#[OpenApi(tag = "ApiTags::Admin")]
impl AdminApi {
    /// List tiers
    ///
    /// Every tier with its limits, cheapest first.
    #[oai(
        path = "/api/v1/admin/tiers",
        method = "get",
        operation_id = "adminListTiers"
    )]
    async fn tiers(&self, _admin: AdminAuth) -> Result<TiersOk, AdminError> {
        Ok(TiersOk::Ok(Json(
            self.app
                .tenants
                .tiers()
                .iter()
                .map(|t| t.as_ref().into())
                .collect(),
        )))
    }

    /// List tenants
    ///
    /// Every tenant, oldest first.
    #[oai(
        path = "/api/v1/admin/tenants",
        method = "get",
        operation_id = "adminListTenants"
    )]
    async fn tenants(&self, _admin: AdminAuth) -> Result<TenantsOk, AdminError> {
        let tenants = self.app.tenants.list().await?;
        Ok(TenantsOk::Ok(Json(
            tenants.iter().map(|t| t.as_ref().into()).collect(),
        )))
    }

    /// Change a tenant
    ///
    /// Suspend or reactivate, change tier, trial end or overage. Effective on the next request.
    #[oai(
        path = "/api/v1/admin/tenants/:slug",
        method = "patch",
        operation_id = "adminUpdateTenant"
    )]
    async fn update(
        &self,
        _admin: AdminAuth,
        /// Tenant slug.
        slug: Path<TenantSlug>,
        body: ApiJson<TenantPatch>,
    ) -> Result<TenantOk, AdminError> {
        let p = body.0;
        let change = TenantChange {
            status: p.status,
            tier: p.tier,
            trial_ends_at: p.trial_ends_at,
            overage_enabled: p.overage_enabled,
        };
        let tenant = self.app.tenants.update(&slug.0, change).await?;
        Ok(TenantOk::Ok(Json(tenant.as_ref().into())))
    }
}
