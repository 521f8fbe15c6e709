//! Signup, login, `me`, and tenant users.

use crate::api::ApiTags;
use crate::api::keys::NewApiKey;
use crate::api::payload::ApiJson;
use crate::auth::{self, Caller, UserAuth};
use crate::domain::{Email, Password, Role, TenantSlug, UserId};
use crate::error::ApiError;
use crate::problem_responses;
use crate::provisioning::{self, NewTenant};
use crate::state::AppState;
use crate::tenancy::{Principal, named_tenant};
use chrono::{DateTime, Utc};
use poem::Request;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use sqlx::Row;
use std::sync::Arc;

/// Account operations.
pub struct AccountsApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// Sign up an organisation.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct SignupRequest {
    /// Organisation name (1–200 characters).
    pub organisation_name: String,
    /// Subdomain slug: `^[a-z][a-z0-9-]{2,39}$`, not reserved (www, api, admin, app, docs,
    /// static, public, platform, pg_*, information_schema).
    pub slug: String,
    /// Owner's full name (1–200 characters).
    pub full_name: String,
    /// Owner's email.
    pub email: String,
    /// Owner's password, 8–128 characters.
    pub password: String,
}

impl Example for SignupRequest {
    fn example() -> Self {
        Self {
            organisation_name: "Acme Capital".into(),
            slug: "acme".into(),
            full_name: "Ada Lovelace".into(),
            email: "ada@acme.example".into(),
            password: "correct horse battery".into(),
        }
    }
}

/// A tenant as its members see it.
#[derive(Object, Debug)]
#[oai(example)]
pub struct TenantView {
    /// Id (`ten_…`).
    pub id: String,
    /// Slug / subdomain.
    pub slug: String,
    /// Organisation name.
    pub name: String,
    /// Tier name.
    pub tier: String,
    /// `active` or `suspended`.
    pub status: String,
    /// End of the trial (trial tier only).
    pub trial_ends_at: Option<DateTime<Utc>>,
}

/// A user.
#[derive(Object, Debug)]
#[oai(example)]
pub struct UserView {
    /// Id (`usr_…`).
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Role.
    pub role: Role,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// Signup result. The API key secrets are shown only here.
#[derive(Object, Debug)]
#[oai(example)]
pub struct SignupResponse {
    /// The new tenant (30-day trial).
    pub tenant: TenantView,
    /// The owner.
    pub user: UserView,
    /// Access token (HS256 JWT, 15 minutes).
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Access-token expiry.
    pub expires_at: DateTime<Utc>,
    /// Two API keys, with their secrets (store them now: they are never shown again).
    pub api_keys: Vec<NewApiKey>,
}

/// Sign in.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct LoginRequest {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

impl Example for LoginRequest {
    fn example() -> Self {
        Self {
            email: "ada@acme.example".into(),
            password: "correct horse battery".into(),
        }
    }
}

/// An access token.
#[derive(Object, Debug)]
#[oai(example)]
pub struct TokenResponse {
    /// HS256 JWT with claims sub, tid, role, iat, exp, jti.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Expiry (15 minutes after issue).
    pub expires_at: DateTime<Utc>,
    /// The signed-in user.
    pub user: UserView,
}

/// Who is calling.
#[derive(Object, Debug)]
#[oai(example)]
pub struct MeResponse {
    /// The tenant.
    pub tenant: TenantView,
    /// The signed-in user (bearer token callers).
    pub user: Option<UserView>,
    /// The API key id (`key_…`, API-key callers).
    pub api_key_id: Option<String>,
}

/// Add a user to the tenant.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct CreateUserRequest {
    /// Email (unique within the tenant).
    pub email: String,
    /// Full name.
    pub full_name: String,
    /// Initial password, 8–128 characters.
    pub password: String,
    /// `admin` or `member` (there is one owner).
    pub role: Role,
}

impl Example for CreateUserRequest {
    fn example() -> Self {
        Self {
            email: "grace@acme.example".into(),
            full_name: "Grace Hopper".into(),
            password: "another long secret".into(),
            role: Role::Member,
        }
    }
}

#[derive(ApiResponse)]
enum SignupCreated {
    /// Tenant provisioned on a 30-day trial.
    #[oai(status = 201)]
    Created(Json<SignupResponse>),
}

problem_responses!(SignupError { BadRequest = 400, Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(LoginError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(MeError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, TooMany = 429, Unavailable = 503 });
problem_responses!(UsersError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503 });

#[derive(ApiResponse)]
enum UserCreated {
    /// User added.
    #[oai(status = 201)]
    Created(Json<UserView>),
}

fn text(field: &str, value: &str, max: usize) -> Result<String, ApiError> {
    let v = value.trim();
    if v.is_empty() || v.chars().count() > max {
        return Err(ApiError::validation(
            field,
            format!("{field} must be 1 to {max} characters long"),
        ));
    }
    if v.chars().any(char::is_control) {
        return Err(ApiError::validation(
            field,
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(v.to_string())
}

/// The peer address. Behind a load balancer this is the balancer; trusting a forwarded
/// header needs a configured list of trusted proxies (not implemented).
fn client_ip(req: &Request) -> String {
    req.remote_addr()
        .as_socket_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_else(|| "unknown".into())
}

pub(crate) fn tenant_view(t: &crate::tenancy::Tenant) -> TenantView {
    TenantView {
        id: t.id.to_string(),
        slug: t.slug.to_string(),
        name: t.display_name.clone(),
        tier: t.tier.name.clone(),
        status: match t.status {
            crate::tenancy::TenantStatus::Active => "active".into(),
            crate::tenancy::TenantStatus::Suspended => "suspended".into(),
        },
        trial_ends_at: t.trial_ends_at,
    }
}

fn user_from_row(row: &sqlx::postgres::PgRow) -> Result<UserView, ApiError> {
    let role: String = row.try_get("role")?;
    Ok(UserView {
        id: UserId::from_uuid(row.try_get("id")?).to_string(),
        email: row.try_get("email")?,
        full_name: row.try_get("full_name")?,
        role: Role::from_db(&role)
            .ok_or_else(|| ApiError::internal(format!("unknown role {role}")))?,
        created_at: row.try_get("created_at")?,
    })
}

fn throttle(state: &AppState, ip: &str, account: &str) -> Result<(), ApiError> {
    state
        .quotas
        .login_throttle()
        .check(ip, account)
        .map_err(crate::api::simulations::rejection_to_error)
}

#[OpenApi(tag = "ApiTags::Accounts")]
impl AccountsApi {
    /// Sign up an organisation
    ///
    /// Provisions a tenant (its own PostgreSQL schema, migrated), its owner and two API keys,
    /// atomically, on a 30-day trial. Returns an access token and the API key secrets (shown
    /// only here). Throttled per client IP.
    #[oai(path = "/api/v1/signup", method = "post", operation_id = "signup")]
    async fn signup(
        &self,
        req: &Request,
        body: ApiJson<SignupRequest>,
    ) -> Result<SignupCreated, SignupError> {
        let state = &self.state;
        let b = body.0;
        let slug = TenantSlug::parse(b.slug.trim()).map_err(|e| ApiError::validation("slug", e))?;
        throttle(state, &client_ip(req), &format!("signup:{slug}"))?;
        let display_name = text("organisation_name", &b.organisation_name, 200)?;
        let owner_name = text("full_name", &b.full_name, 200)?;
        let email = Email::parse(&b.email).map_err(|e| ApiError::validation("email", e))?;
        let password =
            Password::parse(&b.password).map_err(|e| ApiError::validation("password", e))?;
        if state.tenants.by_slug(&slug).await?.is_some() {
            return Err(ApiError::conflict(format!(
                "the slug {:?} is already taken",
                slug.as_str()
            ))
            .into());
        }
        let hash = auth::hash_password(password).await?;
        let started = std::time::Instant::now();
        let p = provisioning::provision(
            state,
            NewTenant {
                slug: slug.clone(),
                display_name,
                owner_name: owner_name.clone(),
                owner_email: email.clone(),
                owner_password_hash: hash,
            },
        )
        .await?;
        tracing::info!(tenant = %slug, ms = started.elapsed().as_secs_f64() * 1000.0, "tenant provisioned");
        let tenant = state
            .tenants
            .refresh(p.tenant_id)
            .await?
            .ok_or_else(|| ApiError::internal("provisioned tenant vanished"))?;
        let now = state.clock.now();
        let (token, expires_at) = state.jwt.issue(p.owner_id, p.tenant_id, Role::Owner, now)?;
        Ok(SignupCreated::Created(Json(SignupResponse {
            tenant: tenant_view(&tenant),
            user: UserView {
                id: p.owner_id.to_string(),
                email: email.to_string(),
                full_name: owner_name,
                role: Role::Owner,
                created_at: now,
            },
            access_token: token,
            token_type: "Bearer".into(),
            expires_at,
            api_keys: p.keys.iter().map(NewApiKey::from_created).collect(),
        })))
    }

    /// Sign in
    ///
    /// Exchanges email and password for a 15-minute access token. The tenant comes from the
    /// subdomain or `X-Tenant-ID`. Throttled per IP and per account (5 per minute) with an
    /// exponential lockout after repeated failures.
    #[oai(path = "/api/v1/auth/login", method = "post", operation_id = "login")]
    async fn login(
        &self,
        req: &Request,
        body: ApiJson<LoginRequest>,
    ) -> Result<Json<TokenResponse>, LoginError> {
        let state = &self.state;
        let named = named_tenant(req, &state.settings.base_domain)?.ok_or_else(|| {
            ApiError::bad_request("name the tenant: use its subdomain (<slug>.<base domain>) or the X-Tenant-ID header")
        })?;
        let tenant = state.tenants.by_slug(&named.slug).await?.ok_or_else(|| {
            ApiError::not_found(format!("no tenant named {:?}", named.slug.as_str()))
        })?;
        let email = Email::parse(&body.0.email).map_err(|e| ApiError::validation("email", e))?;
        let account = format!("{}:{}", tenant.slug, email);
        throttle(state, &client_ip(req), &account)?;
        let mut tx = crate::db::begin_tenant(&state.pool, &tenant.schema).await?;
        let row = sqlx::query("SELECT id, email, full_name, role, created_at, password_hash FROM users WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(&mut *tx)
            .await?;
        tx.commit().await?;
        let hash = row
            .as_ref()
            .map(|r| r.try_get::<String, _>("password_hash"))
            .transpose()?;
        if !auth::verify_password(body.0.password, hash).await? {
            state.quotas.login_throttle().record_failure(&account);
            return Err(ApiError::unauthorized("email or password is incorrect").into());
        }
        state.quotas.login_throttle().record_success(&account);
        let row = row.ok_or_else(|| ApiError::internal("verified user without row"))?;
        let user = user_from_row(&row)?;
        if tenant.status == crate::tenancy::TenantStatus::Suspended {
            return Err(ApiError::forbidden(format!(
                "tenant {:?} is suspended",
                tenant.slug.as_str()
            ))
            .into());
        }
        let user_id = UserId::from_uuid(row.try_get("id")?);
        let (token, expires_at) =
            state
                .jwt
                .issue(user_id, tenant.id, user.role, state.clock.now())?;
        Ok(Json(TokenResponse {
            access_token: token,
            token_type: "Bearer".into(),
            expires_at,
            user,
        }))
    }

    /// Who am I
    ///
    /// The tenant and the signed-in user (bearer token) or API key behind the request.
    #[oai(path = "/api/v1/auth/me", method = "get", operation_id = "me")]
    async fn me(&self, caller: Caller) -> Result<Json<MeResponse>, MeError> {
        let ctx = caller.0;
        let user = match ctx.principal {
            Principal::User { id, .. } => {
                let mut tx = ctx.begin(&self.state.pool).await?;
                let row = sqlx::query(
                    "SELECT id, email, full_name, role, created_at FROM users WHERE id = $1",
                )
                .bind(id.as_uuid())
                .fetch_optional(&mut *tx)
                .await?;
                tx.commit().await?;
                let row = row.ok_or_else(|| {
                    ApiError::unauthorized("the user of this token no longer exists")
                })?;
                Some(user_from_row(&row)?)
            }
            Principal::ApiKey(_) => None,
        };
        Ok(Json(MeResponse {
            tenant: tenant_view(&ctx.tenant),
            user,
            api_key_id: ctx.api_key().map(|k| k.to_string()),
        }))
    }

    /// Add a user
    ///
    /// Owner or admin only. Adds an `admin` or `member` to the tenant.
    #[oai(
        path = "/api/v1/users",
        method = "post",
        operation_id = "createUser",
        tag = "ApiTags::Users"
    )]
    async fn create_user(
        &self,
        auth: UserAuth,
        body: ApiJson<CreateUserRequest>,
    ) -> Result<UserCreated, UsersError> {
        let ctx = auth.0;
        let (actor, _) = ctx.require_manager()?;
        let b = body.0;
        if b.role == Role::Owner {
            return Err(ApiError::validation(
                "role",
                "a tenant has exactly one owner; choose admin or member",
            )
            .into());
        }
        let email = Email::parse(&b.email).map_err(|e| ApiError::validation("email", e))?;
        let full_name = text("full_name", &b.full_name, 200)?;
        let password =
            Password::parse(&b.password).map_err(|e| ApiError::validation("password", e))?;
        let hash = auth::hash_password(password).await?;
        let id = UserId::new();
        let now = self.state.clock.now();
        let mut tx = ctx.begin(&self.state.pool).await?;
        let inserted = sqlx::query(
            "INSERT INTO users (id, email, full_name, password_hash, role, created_at) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (email) DO NOTHING",
        )
        .bind(id.as_uuid())
        .bind(email.as_str())
        .bind(&full_name)
        .bind(&hash)
        .bind(b.role.as_str())
        .bind(now)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 0 {
            return Err(ApiError::conflict(format!(
                "a user with email {email} already exists in this tenant"
            ))
            .into());
        }
        audit(
            &mut tx,
            now,
            Some(actor),
            "user.created",
            &id.to_string(),
            serde_json::json!({"role": b.role.as_str()}),
        )
        .await?;
        tx.commit().await?;
        Ok(UserCreated::Created(Json(UserView {
            id: id.to_string(),
            email: email.to_string(),
            full_name,
            role: b.role,
            created_at: now,
        })))
    }

    /// List users
    ///
    /// Every user of the tenant, oldest first.
    #[oai(
        path = "/api/v1/users",
        method = "get",
        operation_id = "listUsers",
        tag = "ApiTags::Users"
    )]
    async fn list_users(&self, auth: UserAuth) -> Result<Json<Vec<UserView>>, UsersError> {
        let mut tx = auth.0.begin(&self.state.pool).await?;
        let rows = sqlx::query(
            "SELECT id, email, full_name, role, created_at FROM users ORDER BY created_at, id",
        )
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Json(
            rows.iter().map(user_from_row).collect::<Result<_, _>>()?,
        ))
    }
}

/// Appends an audit row inside the request's transaction.
pub(crate) async fn audit(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    now: DateTime<Utc>,
    actor: Option<UserId>,
    action: &str,
    target: &str,
    details: serde_json::Value,
) -> Result<(), ApiError> {
    sqlx::query("INSERT INTO audit_log (created_at, actor_user_id, action, target, details) VALUES ($1, $2, $3, $4, $5)")
        .bind(now)
        .bind(actor.map(|a| a.as_uuid()))
        .bind(action)
        .bind(target)
        .bind(details)
        .execute(&mut **tx)
        .await?;
    Ok(())
}
