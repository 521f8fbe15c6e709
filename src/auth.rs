//! Authentication: argon2id password hashing (off the async runtime), HS256 access tokens,
//! and the security-scheme extractors that turn credentials into a [`TenantContext`].
//!
//! Tenant rule: a tenant named by the subdomain or `X-Tenant-ID` is accepted only when the
//! credentials belong to it. A key or token of tenant A on B's subdomain answers 401.

use crate::domain::{ApiKeyId, ApiKeySecret, Password, Role, TenantId, UserId};
use crate::error::ApiError;
use crate::middleware::RequestScope;
use crate::state::AppState;
use crate::tenancy::{NamedTenant, Principal, Tenant, TenantContext, TenantStatus, named_tenant};
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};
use chrono::{DateTime, Duration, Utc};
use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation, decode, encode};
use poem::Request;
use poem_openapi::registry::Registry;
use poem_openapi::{ApiExtractor, ApiExtractorType, ExtractParamOptions, SecurityScheme};
use std::sync::Arc;

/// How stale `api_keys.last_used_at` may get before a request rewrites it.
pub const LAST_USED_RESOLUTION: Duration = Duration::seconds(60);

/// Access-token lifetime.
pub const ACCESS_TOKEN_TTL: Duration = Duration::minutes(15);

/// argon2id parameters: OWASP's minimum (m = 19 MiB, t = 2, p = 1).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with argon2id on the blocking pool; returns the PHC string.
///
/// # Errors
/// 500 when hashing fails (it does not for valid parameters).
pub async fn hash_password(password: Password) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| ApiError::internal(format!("argon2: {e}")))
    })
    .await?
}

/// A PHC hash of a random password, verified against when the user does not exist so that
/// unknown and known emails take the same time.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Verifies `password` against a PHC string (or a dummy hash when `hash` is `None`) on the
/// blocking pool. Returns `false` for a wrong password or a missing user.
///
/// # Errors
/// 500 when the blocking task fails.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, ApiError> {
    tokio::task::spawn_blocking(move || {
        let dummy;
        let phc = match &hash {
            Some(h) => h.as_str(),
            None => {
                dummy = DUMMY_HASH
                    .get_or_init(|| {
                        argon2()
                            .hash_password(b"not-a-real-password-0000")
                            .map(|h| h.to_string())
                            .unwrap_or_default()
                    })
                    .clone();
                dummy.as_str()
            }
        };
        argon2().verify_password(password.as_bytes(), phc).is_ok() && hash.is_some()
    })
    .await
    .map_err(ApiError::from)
}

/// Access-token claims.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Claims {
    /// User id (`usr_…`).
    pub sub: String,
    /// Tenant id (`ten_…`).
    pub tid: String,
    /// Role inside the tenant.
    pub role: Role,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
    /// Token id.
    pub jti: String,
}

/// HS256 signing and verification keys; the algorithm is pinned.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl JwtKeys {
    /// Keys from the configured secret.
    pub fn new(secret: &[u8]) -> Self {
        let mut validation = Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        // `exp` is checked against the service clock in `verify`, so tests can move time.
        validation.validate_exp = false;
        validation.leeway = 0;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// Issues an access token valid for [`ACCESS_TOKEN_TTL`] from `now`.
    ///
    /// # Errors
    /// 500 when signing fails.
    pub fn issue(
        &self,
        user: UserId,
        tenant: TenantId,
        role: Role,
        now: DateTime<Utc>,
    ) -> Result<(String, DateTime<Utc>), ApiError> {
        let exp = now + ACCESS_TOKEN_TTL;
        let claims = Claims {
            sub: user.to_string(),
            tid: tenant.to_string(),
            role,
            iat: now.timestamp(),
            exp: exp.timestamp(),
            jti: uuid::Uuid::new_v4().to_string(),
        };
        let token = encode(
            &Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &self.encoding,
        )
        .map_err(|e| ApiError::internal(format!("jwt encode: {e}")))?;
        Ok((token, exp))
    }

    /// Verifies signature (HS256 only; `alg: none` and every other algorithm are refused) and
    /// expiry against `now`.
    ///
    /// # Errors
    /// 401 with the reason.
    pub fn verify(&self, token: &str, now: DateTime<Utc>) -> Result<Claims, ApiError> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            let why = match e.kind() {
                ErrorKind::InvalidSignature => "signature does not verify",
                ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
                    "only HS256 tokens are accepted"
                }
                ErrorKind::MissingRequiredClaim(_) => "a required claim is missing",
                ErrorKind::InvalidToken
                | ErrorKind::Base64(_)
                | ErrorKind::Json(_)
                | ErrorKind::Utf8(_) => "malformed token",
                _ => "token refused",
            };
            ApiError::unauthorized(format!("invalid bearer token: {why}"))
        })?;
        if data.claims.exp <= now.timestamp() {
            return Err(ApiError::unauthorized(
                "bearer token has expired; sign in again",
            ));
        }
        if data.claims.exp - data.claims.iat > ACCESS_TOKEN_TTL.num_seconds() {
            return Err(ApiError::unauthorized(
                "bearer token lifetime exceeds 15 minutes",
            ));
        }
        Ok(data.claims)
    }
}

#[derive(SecurityScheme)]
#[oai(
    rename = "ApiKey",
    ty = "api_key",
    key_name = "X-API-Key",
    key_in = "header"
)]
#[allow(dead_code)]
/// Tenant API key (`mk_live_…`), from `POST /api/v1/signup` or `POST /api/v1/keys`.
struct ApiKeyScheme(poem_openapi::auth::ApiKey);

#[derive(SecurityScheme)]
#[oai(rename = "BearerJwt", ty = "bearer", bearer_format = "JWT")]
#[allow(dead_code)]
/// Access token from `POST /api/v1/auth/login` (HS256, 15 minutes).
struct BearerScheme(poem_openapi::auth::Bearer);

#[derive(SecurityScheme)]
#[oai(rename = "AdminToken", ty = "bearer")]
#[allow(dead_code)]
/// Platform admin token (`ADMIN_TOKEN`).
struct AdminScheme(poem_openapi::auth::Bearer);

fn state(req: &Request) -> Result<&Arc<AppState>, ApiError> {
    req.data::<Arc<AppState>>()
        .ok_or_else(|| ApiError::internal("application state missing from request"))
}

fn bearer_token(req: &Request) -> Option<&str> {
    let value = req
        .headers()
        .get(poem::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Records the caller on the span and request scope (for the usage row), then applies the
/// tier's burst limit (GCRA per API key or user).
fn admit(state: &AppState, req: &Request, ctx: &TenantContext) -> Result<(), ApiError> {
    tracing::Span::current().record("tenant", ctx.tenant.slug.as_str());
    let scope = req.data::<Arc<RequestScope>>();
    if let Some(scope) = scope {
        let endpoint = endpoint_pattern(req.uri().path());
        scope.set_caller(ctx.clone(), format!("{} {}", req.method(), endpoint));
    }
    let info = state
        .quotas
        .check_burst(ctx.principal.limiter_key(), &ctx.tenant.tier)
        .map_err(crate::api::simulations::rejection_to_error)?;
    if let Some(scope) = scope {
        scope.set_burst(info);
    }
    Ok(())
}

/// The path with id segments (`sim_…`, `key_…`, `usr_…`) replaced by `{id}`, so usage rows
/// aggregate by endpoint.
fn endpoint_pattern(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            let is_id = ["sim_", "key_", "usr_", "ten_"]
                .iter()
                .any(|p| seg.starts_with(p))
                && seg.len() > 20;
            if is_id { "{id}" } else { seg }
        })
        .collect::<Vec<_>>()
        .join("/")
}

async fn resolve_named(
    state: &AppState,
    req: &Request,
) -> Result<Option<(NamedTenant, Arc<Tenant>)>, ApiError> {
    let Some(named) = named_tenant(req, &state.settings.base_domain)? else {
        return Ok(None);
    };
    let tenant = state.tenants.by_slug(&named.slug).await?.ok_or_else(|| {
        ApiError::not_found(format!(
            "no tenant named {:?} (from the {})",
            named.slug.as_str(),
            named.source
        ))
    })?;
    Ok(Some((named, tenant)))
}

fn check_status(tenant: &Tenant) -> Result<(), ApiError> {
    match tenant.status {
        TenantStatus::Active => Ok(()),
        TenantStatus::Suspended => Err(ApiError::forbidden(format!(
            "tenant {:?} is suspended; contact the platform administrators",
            tenant.slug.as_str()
        ))),
    }
}

/// The columns of `api_keys` that decide whether a key may be used.
#[derive(sqlx::FromRow)]
struct KeyRow {
    status: String,
    expires_at: Option<DateTime<Utc>>,
    last_used_at: Option<DateTime<Utc>>,
}

/// Authenticates an `X-API-Key`.
async fn api_key_context(
    state: &AppState,
    req: &Request,
    raw: &str,
) -> Result<TenantContext, ApiError> {
    let named = resolve_named(state, req).await?;
    let key = ApiKeySecret::parse(raw.trim())
        .map_err(|why| ApiError::unauthorized(format!("malformed API key: {why}")))?;
    let hash = key.hash().to_vec();
    let row: Option<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT key_id, tenant_id FROM platform.api_key_directory WHERE key_hash = $1",
    )
    .bind(&hash)
    .fetch_optional(&state.pool)
    .await?;
    let (key_id, tenant_id) = row.ok_or_else(|| ApiError::unauthorized("unknown API key"))?;
    let tenant = match named {
        Some((n, t)) if t.id.as_uuid() != tenant_id => {
            return Err(ApiError::unauthorized(format!(
                "this API key does not belong to tenant {:?} named by the {}",
                t.slug.as_str(),
                n.source
            )));
        }
        Some((_, t)) => t,
        None => state
            .tenants
            .by_id(TenantId::from_uuid(tenant_id))
            .await?
            .ok_or_else(|| ApiError::unauthorized("unknown API key"))?,
    };
    let now = state.clock.now();
    let mut tx = crate::db::begin_tenant(&state.pool, &tenant.schema).await?;
    let row: Option<KeyRow> = sqlx::query_as(
        "SELECT status, expires_at, last_used_at FROM api_keys WHERE id = $1 AND key_hash = $2",
    )
    .bind(key_id)
    .bind(&hash)
    .fetch_optional(&mut *tx)
    .await?;
    let refusal = match &row {
        None => Some(ApiError::unauthorized("unknown API key")),
        Some(k) if k.status != "active" => Some(ApiError::unauthorized("API key has been revoked")),
        Some(KeyRow {
            expires_at: Some(exp),
            ..
        }) if *exp <= now => Some(ApiError::unauthorized(format!(
            "API key expired at {}",
            exp.to_rfc3339()
        ))),
        Some(_) => None,
    };
    if let Some(err) = refusal {
        tx.rollback().await?;
        return Err(err);
    }
    // `last_used_at` is kept to the minute: rewriting the row on every request would add a
    // write (and a dead tuple) to each call of a busy key.
    let last_used = row.and_then(|k| k.last_used_at);
    if last_used.is_none_or(|t| now - t >= LAST_USED_RESOLUTION) {
        sqlx::query("UPDATE api_keys SET last_used_at = $2 WHERE id = $1")
            .bind(key_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    check_status(&tenant)?;
    Ok(TenantContext {
        tenant,
        principal: Principal::ApiKey(ApiKeyId::from_uuid(key_id)),
    })
}

/// Authenticates a bearer access token.
async fn jwt_context(
    state: &AppState,
    req: &Request,
    token: &str,
) -> Result<TenantContext, ApiError> {
    let named = resolve_named(state, req).await?;
    let claims = state.jwt.verify(token, state.clock.now())?;
    let tid = TenantId::parse(&claims.tid)
        .map_err(|_| ApiError::unauthorized("bearer token has a malformed tid claim"))?;
    let user = UserId::parse(&claims.sub)
        .map_err(|_| ApiError::unauthorized("bearer token has a malformed sub claim"))?;
    let tenant = match named {
        Some((n, t)) if t.id != tid => {
            return Err(ApiError::unauthorized(format!(
                "this bearer token was not issued for tenant {:?} named by the {}",
                t.slug.as_str(),
                n.source
            )));
        }
        Some((_, t)) => t,
        None => state
            .tenants
            .by_id(tid)
            .await?
            .ok_or_else(|| ApiError::unauthorized("bearer token names an unknown tenant"))?,
    };
    check_status(&tenant)?;
    Ok(TenantContext {
        tenant,
        principal: Principal::User {
            id: user,
            role: claims.role,
        },
    })
}

/// Either credential: an `X-API-Key` or a bearer access token (for dashboards).
#[derive(Debug, Clone)]
pub struct Caller(pub TenantContext);

/// A signed-in user (bearer access token only).
#[derive(Debug, Clone)]
pub struct UserAuth(pub TenantContext);

/// The platform administrator (`Authorization: Bearer <ADMIN_TOKEN>`).
#[derive(Debug, Clone, Copy)]
pub struct AdminAuth;

impl<'a> ApiExtractor<'a> for Caller {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <ApiKeyScheme as ApiExtractor>::register(registry);
        <BearerScheme as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["ApiKey", "BearerJwt"]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut poem::RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = state(req)?;
        let ctx = if let Some(key) = req.headers().get("x-api-key") {
            let key = key
                .to_str()
                .map_err(|_| ApiError::unauthorized("malformed API key: not ASCII"))?;
            api_key_context(state, req, key).await?
        } else if let Some(token) = bearer_token(req) {
            jwt_context(state, req, token).await?
        } else {
            return Err(ApiError::unauthorized(
                "missing credentials: send X-API-Key: mk_live_… or Authorization: Bearer <access token>",
            )
            .into());
        };
        admit(state, req, &ctx)?;
        Ok(Caller(ctx))
    }
}

impl<'a> ApiExtractor<'a> for UserAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <BearerScheme as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["BearerJwt"]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut poem::RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = state(req)?;
        let Some(token) = bearer_token(req) else {
            let detail = if req.headers().contains_key("x-api-key") {
                "this endpoint needs a signed-in user: send Authorization: Bearer <access token> (API keys are not accepted here)"
            } else {
                "missing credentials: send Authorization: Bearer <access token> from POST /api/v1/auth/login"
            };
            return Err(ApiError::unauthorized(detail).into());
        };
        let ctx = jwt_context(state, req, token).await?;
        admit(state, req, &ctx)?;
        Ok(UserAuth(ctx))
    }
}

impl<'a> ApiExtractor<'a> for AdminAuth {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::SecurityScheme];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        <AdminScheme as ApiExtractor>::register(registry);
    }

    fn security_schemes() -> Vec<&'static str> {
        vec!["AdminToken"]
    }

    async fn from_request(
        req: &'a Request,
        _body: &mut poem::RequestBody,
        _opts: ExtractParamOptions<()>,
    ) -> poem::Result<Self> {
        let state = state(req)?;
        let Some(expected) = &state.settings.admin_token else {
            return Err(ApiError::forbidden(
                "the admin API is disabled: set ADMIN_TOKEN to enable it",
            )
            .into());
        };
        let Some(token) = bearer_token(req) else {
            return Err(ApiError::unauthorized(
                "missing credentials: send Authorization: Bearer <ADMIN_TOKEN>",
            )
            .into());
        };
        if !constant_time_eq(token.as_bytes(), expected.expose().as_bytes()) {
            return Err(ApiError::unauthorized("invalid admin token").into());
        }
        Ok(AdminAuth)
    }
}

/// Compares two byte strings in time independent of where they differ.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_and_expire() {
        let keys = JwtKeys::new(&[7u8; 32]);
        let now = Utc::now();
        let (token, exp) = keys
            .issue(UserId::new(), TenantId::new(), Role::Owner, now)
            .unwrap();
        assert_eq!((exp - now).num_minutes(), 15);
        assert!(keys.verify(&token, now).is_ok());
        assert!(keys.verify(&token, now + Duration::minutes(16)).is_err());
        let other = JwtKeys::new(&[8u8; 32]);
        assert!(other.verify(&token, now).is_err());
    }

    #[test]
    fn alg_none_is_refused() {
        use base64::Engine;
        let keys = JwtKeys::new(&[7u8; 32]);
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let now = Utc::now().timestamp();
        let header = b64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = b64.encode(format!(
            r#"{{"sub":"usr_{}","tid":"ten_{}","role":"owner","iat":{now},"exp":{},"jti":"x"}}"#,
            uuid::Uuid::nil(),
            uuid::Uuid::nil(),
            now + 60
        ));
        assert!(
            keys.verify(&format!("{header}.{body}."), Utc::now())
                .is_err()
        );
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password(Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse!".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }
}
