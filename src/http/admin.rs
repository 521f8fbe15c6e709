//! Platform administration: list tenants and tiers, change a tenant's status, tier, trial end
//! or overage flag. Changes take effect on the next request on every instance.

use super::payload::{ApiJson, BodyLimit, Json};
use super::security::{AdminAuth, BootstrapAuth, client_addr, user_agent};
use super::tags::ApiTags;
use crate::app::App;
use crate::db::tenants::TenantChange;
use crate::domain::{AdminId, Email, Password, Tenant, TenantId, TenantSlug, TenantStatus, Tier};
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::param::Path;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
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
    /// Soft-deleted at (absent: live). A deleted tenant's credentials are all refused.
    pub deleted_at: Option<DateTime<Utc>>,
    /// A deleted tenant's data is purged after this (restorable until then).
    pub purge_after: Option<DateTime<Utc>>,
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
            deleted_at: t.deleted_at,
            purge_after: t.purge_after,
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
problem_responses!(AdminLifecycleError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, Invalid = 422, Unavailable = 503 });
problem_responses!(BootstrapError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409, Invalid = 422, Unavailable = 503 });
problem_responses!(AdminLoginError { BadRequest = 400, Unauthorized = 401, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(AdminLogoutError { BadRequest = 400, Unauthorized = 401, Unavailable = 503 });

/// The first platform administrator.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct BootstrapRequest {
    /// The administrator's email (their sign-in name).
    pub email: Email,
    /// Their password (argon2id-hashed).
    pub password: Password,
}

impl Example for BootstrapRequest {
    fn example() -> Self {
        Self {
            email: Email::parse("ops@platform.example").expect("valid example"),
            password: Password::parse("a long admin passphrase").expect("valid example"),
        }
    }
}

impl BodyLimit for BootstrapRequest {
    const MAX_BODY_BYTES: usize = 4 * 1024;
}

/// A new administrator and their TOTP enrolment, shown only once.
#[derive(Object, Debug)]
#[oai(example)]
pub struct AdminCreatedView {
    /// Id (`adm_…`).
    pub id: AdminId,
    /// Email.
    pub email: String,
    /// The TOTP secret (base32, RFC 6238: SHA-1, 6 digits, 30 s). Store it in an
    /// authenticator app now: it is never shown again.
    pub totp_secret: String,
    /// The same as an `otpauth://totp/…` URI (for a QR code).
    pub otpauth_uri: String,
}

impl Example for AdminCreatedView {
    fn example() -> Self {
        Self {
            id: AdminId::parse("adm_01a1fe67-63d8-714e-938a-1da86c597c0c").expect("valid example id"),
            email: "ops@platform.example".into(),
            totp_secret: "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP".into(),
            otpauth_uri: "otpauth://totp/montecarlo-platform:ops%40platform.example?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=montecarlo-platform".into(),
        }
    }
}

/// Platform-admin sign-in: password and a current TOTP code.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct AdminLoginRequest {
    /// Email.
    pub email: Email,
    /// Password.
    #[oai(validator(max_length = 128))]
    pub password: String,
    /// The 6-digit code from the authenticator app (each code is accepted once).
    #[oai(validator(max_length = 16))]
    pub totp_code: String,
}

impl Example for AdminLoginRequest {
    fn example() -> Self {
        Self {
            email: Email::parse("ops@platform.example").expect("valid example"),
            password: "a long admin passphrase".into(),
            totp_code: "123456".into(),
        }
    }
}

impl BodyLimit for AdminLoginRequest {
    const MAX_BODY_BYTES: usize = 4 * 1024;
}

/// A platform-admin token.
#[derive(Object, Debug)]
#[oai(example)]
pub struct AdminTokenView {
    /// HS256 JWT for the admin API and `/metrics` (audience `montecarlo-admin`).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Expiry (15 minutes; the session ends sooner at logout).
    pub expires_at: DateTime<Utc>,
}

impl Example for AdminTokenView {
    fn example() -> Self {
        Self {
            access_token: "eyJhbGciOiJIUzI1NiJ9.e30.signature".into(),
            token_type: "Bearer".into(),
            expires_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        }
    }
}

#[derive(ApiResponse)]
enum AdminCreated {
    /// The first administrator: enrol the TOTP secret now.
    #[oai(status = 201)]
    Created(Json<AdminCreatedView>),
}

ok_response!(
    AdminTokenOk,
    AdminTokenView,
    "Signed in: a 15-minute admin token."
);

#[derive(ApiResponse)]
enum LoggedOut {
    /// The session has ended; its token is refused from now on.
    #[oai(status = 204)]
    Done,
}

ok_response!(
    TenantShown,
    AdminTenantView,
    "The tenant (deleted ones included, with their purge time)."
);

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
        admin: AdminAuth,
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
        let tenant = self.app.tenants.update(&admin.0, &slug.0, change).await?;
        Ok(TenantOk::Ok(Json(tenant.as_ref().into())))
    }

    /// Create the first platform admin
    ///
    /// Bootstrap: with `Authorization: Bearer <ADMIN_TOKEN>`, creates the FIRST named platform
    /// administrator and returns their TOTP secret (shown once). Answers 409 once any
    /// administrator exists; further ones are made with `montecarlo-platform admin create`.
    #[oai(
        path = "/api/v1/admin/bootstrap",
        method = "post",
        operation_id = "adminBootstrap"
    )]
    async fn bootstrap(
        &self,
        req: &Request,
        token: BootstrapAuth,
        body: ApiJson<BootstrapRequest>,
    ) -> Result<AdminCreated, BootstrapError> {
        let b = body.0;
        let created = self
            .app
            .admins
            .bootstrap(
                token.0.as_deref(),
                &b.email,
                b.password,
                &client_addr(req),
                &user_agent(req),
            )
            .await?;
        Ok(AdminCreated::Created(Json(AdminCreatedView {
            id: created.id,
            email: created.email,
            totp_secret: created.totp_secret,
            otpauth_uri: created.otpauth_uri,
        })))
    }

    /// Platform-admin sign-in
    ///
    /// Email, password and a current TOTP code (each code once) for a 15-minute admin token
    /// bound to a new session. Throttled per address and account; every attempt is audited.
    #[oai(
        path = "/api/v1/admin/auth/login",
        method = "post",
        operation_id = "adminLogin"
    )]
    async fn login(
        &self,
        req: &Request,
        body: ApiJson<AdminLoginRequest>,
    ) -> Result<AdminTokenOk, AdminLoginError> {
        let b = body.0;
        let token = self
            .app
            .admins
            .login(
                &b.email,
                b.password,
                &b.totp_code,
                &client_addr(req),
                &user_agent(req),
            )
            .await?;
        Ok(AdminTokenOk::Ok(Json(AdminTokenView {
            access_token: token.token,
            token_type: "Bearer".into(),
            expires_at: token.expires_at,
        })))
    }

    /// Platform-admin sign-out
    ///
    /// Ends the caller's session: its token is refused from now on, on every instance.
    #[oai(
        path = "/api/v1/admin/auth/logout",
        method = "post",
        operation_id = "adminLogout"
    )]
    async fn logout(&self, admin: AdminAuth) -> Result<LoggedOut, AdminLogoutError> {
        self.app.admins.logout(&admin.0).await?;
        Ok(LoggedOut::Done)
    }

    /// Show a tenant
    ///
    /// One tenant, deleted ones included (with their deletion and purge times).
    #[oai(
        path = "/api/v1/admin/tenants/:slug",
        method = "get",
        operation_id = "adminShowTenant"
    )]
    async fn show(
        &self,
        _admin: AdminAuth,
        /// Tenant slug.
        slug: Path<TenantSlug>,
    ) -> Result<TenantShown, AdminError> {
        let tenant = self.app.tenants.show(&slug.0).await?;
        Ok(TenantShown::Ok(Json(tenant.as_ref().into())))
    }

    /// Delete a tenant
    ///
    /// Soft delete: at once every API key, token and sign-in of the tenant is refused and its
    /// slug stays taken; restorable until `purge_after` (`TENANT_DELETE_GRACE_DAYS`), then its
    /// schema and platform rows are dropped. Audited. (A `POST` action rather than `DELETE`:
    /// the tenant stays readable here, with its purge time, until then.)
    #[oai(
        path = "/api/v1/admin/tenants/:slug/delete",
        method = "post",
        operation_id = "adminDeleteTenant"
    )]
    async fn delete(
        &self,
        admin: AdminAuth,
        /// Tenant slug.
        slug: Path<TenantSlug>,
    ) -> Result<TenantShown, AdminLifecycleError> {
        let tenant = self.app.lifecycle.delete(&admin.0, &slug.0).await?;
        Ok(TenantShown::Ok(Json(tenant.as_ref().into())))
    }

    /// Restore a deleted tenant
    ///
    /// Undoes a deletion before its purge: the tenant's credentials work again at once.
    #[oai(
        path = "/api/v1/admin/tenants/:slug/restore",
        method = "post",
        operation_id = "adminRestoreTenant"
    )]
    async fn restore(
        &self,
        admin: AdminAuth,
        /// Tenant slug.
        slug: Path<TenantSlug>,
    ) -> Result<TenantShown, AdminLifecycleError> {
        let tenant = self.app.lifecycle.restore(&admin.0, &slug.0).await?;
        Ok(TenantShown::Ok(Json(tenant.as_ref().into())))
    }
}
