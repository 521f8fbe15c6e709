//! Platform administration: list tenants and tiers, change a tenant's status, tier, trial end
//! or overage flag. Changes take effect on this instance's next request.

use crate::api::ApiTags;
use crate::api::payload::ApiJson;
use crate::auth::AdminAuth;
use crate::error::ApiError;
use crate::problem_responses;
use crate::state::AppState;
use crate::tenancy::TenantStatus;
use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use std::sync::Arc;

/// Admin operations.
pub struct AdminApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// A tenant as the platform sees it.
#[derive(Object, Debug)]
#[oai(example)]
pub struct AdminTenantView {
    /// Id (`ten_…`).
    pub id: String,
    /// Slug.
    pub slug: String,
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

/// A tier's limits.
#[derive(Object, Debug)]
#[oai(example)]
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

/// Changes to a tenant; absent fields are left alone.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct TenantPatch {
    /// `active` or `suspended`.
    pub status: Option<TenantStatus>,
    /// A tier name (see `GET /api/v1/admin/tiers`).
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

problem_responses!(AdminError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, Unavailable = 503 });

fn view(t: &crate::tenancy::Tenant) -> AdminTenantView {
    AdminTenantView {
        id: t.id.to_string(),
        slug: t.slug.to_string(),
        name: t.display_name.clone(),
        schema: t.schema.as_str().to_string(),
        tier: t.tier.name.clone(),
        status: t.status,
        trial_ends_at: t.trial_ends_at,
        overage_enabled: t.overage_enabled,
        created_at: t.created_at,
    }
}

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
    async fn tiers(&self, _admin: AdminAuth) -> Result<Json<Vec<TierView>>, AdminError> {
        Ok(Json(
            self.state
                .tenants
                .tiers()
                .iter()
                .map(|t| TierView {
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
                })
                .collect(),
        ))
    }

    /// List tenants
    ///
    /// Every tenant, oldest first.
    #[oai(
        path = "/api/v1/admin/tenants",
        method = "get",
        operation_id = "adminListTenants"
    )]
    async fn tenants(&self, _admin: AdminAuth) -> Result<Json<Vec<AdminTenantView>>, AdminError> {
        let ids: Vec<uuid::Uuid> =
            sqlx::query_scalar("SELECT id FROM platform.tenants ORDER BY created_at, id")
                .fetch_all(&self.state.pool)
                .await?;
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(t) = self
                .state
                .tenants
                .by_id(crate::domain::TenantId::from_uuid(id))
                .await?
            {
                out.push(view(&t));
            }
        }
        Ok(Json(out))
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
        slug: Path<String>,
        body: ApiJson<TenantPatch>,
    ) -> Result<Json<AdminTenantView>, AdminError> {
        let state = &self.state;
        let slug = crate::domain::TenantSlug::parse(&slug.0)
            .map_err(|e| ApiError::not_found(format!("no tenant {:?}: {e}", slug.0)))?;
        let tenant =
            state.tenants.by_slug(&slug).await?.ok_or_else(|| {
                ApiError::not_found(format!("no tenant named {:?}", slug.as_str()))
            })?;
        let p = body.0;
        if let Some(tier) = &p.tier
            && state.tenants.tier(tier).is_none()
        {
            let names: Vec<String> = state
                .tenants
                .tiers()
                .iter()
                .map(|t| t.name.clone())
                .collect();
            return Err(ApiError::validation(
                "tier",
                format!("unknown tier {tier:?}; one of {}", names.join(", ")),
            )
            .into());
        }
        let status = p.status.map(|s| match s {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        });
        sqlx::query(
            "UPDATE platform.tenants SET status = COALESCE($2, status), tier = COALESCE($3, tier), \
             trial_ends_at = COALESCE($4, trial_ends_at), overage_enabled = COALESCE($5, overage_enabled), updated_at = $6 \
             WHERE id = $1",
        )
        .bind(tenant.id.as_uuid())
        .bind(status)
        .bind(p.tier.as_deref())
        .bind(p.trial_ends_at)
        .bind(p.overage_enabled)
        .bind(state.clock.now())
        .execute(&state.pool)
        .await?;
        crate::tenancy::notify_changed(&state.pool, tenant.id).await?;
        let fresh =
            state.tenants.refresh(tenant.id).await?.ok_or_else(|| {
                ApiError::not_found(format!("no tenant named {:?}", slug.as_str()))
            })?;
        tracing::info!(tenant = %slug, ?p, "tenant changed by admin");
        Ok(Json(view(&fresh)))
    }
}
