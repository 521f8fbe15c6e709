//! API keys: list, create (secret shown once), revoke (effective at once).

use crate::api::ApiTags;
use crate::api::accounts::audit;
use crate::api::payload::ApiJson;
use crate::auth::UserAuth;
use crate::domain::{ApiKeyId, ApiKeySecret};
use crate::error::ApiError;
use crate::problem_responses;
use crate::provisioning::CreatedKey;
use crate::state::AppState;
use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use sqlx::Row;
use std::sync::Arc;

/// Key operations.
pub struct KeysApi {
    /// Shared state.
    pub state: Arc<AppState>,
}

/// Key status. `expired` is derived from `expires_at`.
#[derive(Enum, Debug, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum KeyStatus {
    /// Usable.
    Active,
    /// Revoked by an owner or admin.
    Revoked,
    /// Past `expires_at` (trial keys expire with the trial).
    Expired,
}

/// An API key (never its secret).
#[derive(Object, Debug)]
#[oai(example)]
pub struct ApiKeyView {
    /// Id (`key_…`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Display prefix (`mk_live_` + 6 characters).
    pub prefix: String,
    /// Status.
    pub status: KeyStatus,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// Last successful use.
    pub last_used_at: Option<DateTime<Utc>>,
    /// Revocation time.
    pub revoked_at: Option<DateTime<Utc>>,
}

/// A newly created API key with its secret — shown only once.
#[derive(Object, Debug)]
#[oai(example)]
pub struct NewApiKey {
    /// Id (`key_…`).
    pub id: String,
    /// Name.
    pub name: String,
    /// Display prefix.
    pub prefix: String,
    /// The whole key (`mk_live_…`): send it as `X-API-Key`. Never shown again.
    pub secret: String,
    /// Creation time.
    pub created_at: DateTime<Utc>,
    /// Expiry, if any (30 days while the tenant is on trial).
    pub expires_at: Option<DateTime<Utc>>,
}

impl NewApiKey {
    pub(crate) fn from_created(k: &CreatedKey) -> Self {
        Self {
            id: k.id.to_string(),
            name: k.name.clone(),
            prefix: k.key.prefix.clone(),
            secret: k.key.secret.expose().to_string(),
            created_at: k.created_at,
            expires_at: k.expires_at,
        }
    }
}

/// Create an API key.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct CreateKeyRequest {
    /// Name (1–100 characters), e.g. `ci-pipeline`.
    pub name: String,
}

impl Example for CreateKeyRequest {
    fn example() -> Self {
        Self {
            name: "ci-pipeline".into(),
        }
    }
}

#[derive(ApiResponse)]
enum KeyCreated {
    /// Key created; the secret is in the body, once.
    #[oai(status = 201)]
    Created(Json<NewApiKey>),
}

problem_responses!(KeysError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });

fn key_from_row(row: &sqlx::postgres::PgRow, now: DateTime<Utc>) -> Result<ApiKeyView, ApiError> {
    let status: String = row.try_get("status")?;
    let expires_at: Option<DateTime<Utc>> = row.try_get("expires_at")?;
    let status = match status.as_str() {
        "revoked" => KeyStatus::Revoked,
        _ if expires_at.is_some_and(|e| e <= now) => KeyStatus::Expired,
        _ => KeyStatus::Active,
    };
    Ok(ApiKeyView {
        id: ApiKeyId::from_uuid(row.try_get("id")?).to_string(),
        name: row.try_get("name")?,
        prefix: row.try_get("prefix")?,
        status,
        created_at: row.try_get("created_at")?,
        expires_at,
        last_used_at: row.try_get("last_used_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

const KEY_COLUMNS: &str =
    "id, name, prefix, status, created_at, expires_at, last_used_at, revoked_at";

#[OpenApi(tag = "ApiTags::Keys")]
impl KeysApi {
    /// List API keys
    ///
    /// Owner or admin only. Every key of the tenant with its status; secrets are never shown.
    #[oai(path = "/api/v1/keys", method = "get", operation_id = "listKeys")]
    async fn list(&self, auth: UserAuth) -> Result<Json<Vec<ApiKeyView>>, KeysError> {
        let ctx = auth.0;
        ctx.require_manager()?;
        let now = self.state.clock.now();
        let mut tx = ctx.begin(&self.state.pool).await?;
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {KEY_COLUMNS} FROM api_keys ORDER BY created_at, id"
        )))
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Json(
            rows.iter()
                .map(|r| key_from_row(r, now))
                .collect::<Result<_, _>>()?,
        ))
    }

    /// Create an API key
    ///
    /// Owner or admin only. The secret is in the response, once. While the tenant is on trial
    /// the key expires with the trial. The tier caps the number of active keys.
    #[oai(path = "/api/v1/keys", method = "post", operation_id = "createKey")]
    async fn create(
        &self,
        auth: UserAuth,
        body: ApiJson<CreateKeyRequest>,
    ) -> Result<KeyCreated, KeysError> {
        let ctx = auth.0;
        let (actor, _) = ctx.require_manager()?;
        let name = body.0.name.trim().to_string();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(
                ApiError::validation("name", "name must be 1 to 100 printable characters").into(),
            );
        }
        let now = self.state.clock.now();
        let tenant = &ctx.tenant;
        let expires_at = if tenant.tier.trial_days.is_some() {
            tenant.trial_ends_at
        } else {
            None
        };
        let mut tx = ctx.begin(&self.state.pool).await?;
        // Serialise key creation per tenant so the cap holds under concurrency.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(format!("keys:{}", tenant.id))
            .execute(&mut *tx)
            .await?;
        if let Some(max) = tenant.tier.max_api_keys {
            let active: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM api_keys WHERE status = 'active' AND (expires_at IS NULL OR expires_at > $1)",
            )
            .bind(now)
            .fetch_one(&mut *tx)
            .await?;
            if active >= i64::from(max) {
                return Err(ApiError::limit(
                    poem::http::StatusCode::FORBIDDEN,
                    "api_keys",
                    format!(
                        "tier {} allows {max} active API keys and you have {active}; revoke one or upgrade",
                        tenant.tier.name
                    ),
                    None,
                    Vec::new(),
                )
                .into());
            }
        }
        let key = ApiKeySecret::generate();
        let id = ApiKeyId::new();
        let hash = key.hash.to_vec();
        sqlx::query(
            "INSERT INTO api_keys (id, name, prefix, key_hash, status, created_by, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, 'active', $5, $6, $7)",
        )
        .bind(id.as_uuid())
        .bind(&name)
        .bind(&key.prefix)
        .bind(&hash)
        .bind(actor.as_uuid())
        .bind(now)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO platform.api_key_directory (key_hash, key_id, tenant_id) VALUES ($1, $2, $3)")
            .bind(&hash)
            .bind(id.as_uuid())
            .bind(tenant.id.as_uuid())
            .execute(&mut *tx)
            .await?;
        audit(
            &mut tx,
            now,
            Some(actor),
            "api_key.created",
            &id.to_string(),
            serde_json::json!({"name": name}),
        )
        .await?;
        tx.commit().await?;
        Ok(KeyCreated::Created(Json(NewApiKey::from_created(
            &CreatedKey {
                id,
                name,
                key,
                expires_at,
                created_at: now,
            },
        ))))
    }

    /// Revoke an API key
    ///
    /// Owner or admin only. Takes effect on the next request. Revoking twice is harmless.
    #[oai(
        path = "/api/v1/keys/:id",
        method = "delete",
        operation_id = "revokeKey"
    )]
    async fn revoke(
        &self,
        auth: UserAuth,
        /// Key id (`key_…`).
        id: Path<String>,
    ) -> Result<Json<ApiKeyView>, KeysError> {
        let ctx = auth.0;
        let (actor, _) = ctx.require_manager()?;
        let key_id = ApiKeyId::parse(&id.0)
            .map_err(|e| ApiError::not_found(format!("no API key {:?}: {e}", id.0)))?;
        let now = self.state.clock.now();
        let mut tx = ctx.begin(&self.state.pool).await?;
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE api_keys SET status = 'revoked', revoked_at = COALESCE(revoked_at, $2) WHERE id = $1 RETURNING {KEY_COLUMNS}"
        )))
        .bind(key_id.as_uuid())
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no API key {key_id} in this tenant")))?;
        audit(
            &mut tx,
            now,
            Some(actor),
            "api_key.revoked",
            &key_id.to_string(),
            serde_json::json!({}),
        )
        .await?;
        tx.commit().await?;
        Ok(Json(key_from_row(&row, now)?))
    }
}
