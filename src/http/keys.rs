//! API keys: list, create (secret shown once), revoke (effective at once).

use super::payload::{ApiJson, BodyLimit, Json};
use super::security::UserAuth;
use super::tags::ApiTags;
use crate::app::App;
use crate::app::keys::CreatedKey;
use crate::db::api_keys::KeyRecord;
use crate::domain::{ApiKeyId, KeyName};
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem_openapi::param::Path;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use std::sync::Arc;

/// Key operations.
pub struct KeysApi {
    /// The application.
    pub app: Arc<App>,
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
#[oai(example, skip_serializing_if_is_none)]
pub struct ApiKeyView {
    /// Id (`key_…`).
    pub id: ApiKeyId,
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

impl ApiKeyView {
    fn of(k: &KeyRecord, now: DateTime<Utc>) -> Self {
        let status = if k.revoked {
            KeyStatus::Revoked
        } else if k.expires_at.is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        };
        Self {
            id: k.id,
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            status,
            created_at: k.created_at,
            expires_at: k.expires_at,
            last_used_at: k.last_used_at,
            revoked_at: k.revoked_at,
        }
    }
}

/// A newly created API key with its secret — shown only once.
#[derive(Object, Debug)]
#[oai(example, skip_serializing_if_is_none)]
pub struct NewApiKey {
    /// Id (`key_…`).
    pub id: ApiKeyId,
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

impl From<&CreatedKey> for NewApiKey {
    fn from(k: &CreatedKey) -> Self {
        Self {
            id: k.id,
            name: k.name.to_string(),
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
    pub name: KeyName,
}

impl Example for CreateKeyRequest {
    fn example() -> Self {
        Self {
            name: KeyName::parse("ci-pipeline").expect("valid example"),
        }
    }
}

impl BodyLimit for CreateKeyRequest {
    const MAX_BODY_BYTES: usize = 4 * 1024;
}

ok_response!(
    KeysOk,
    Vec<ApiKeyView>,
    "Every API key of the tenant, oldest first."
);
ok_response!(KeyRevoked, ApiKeyView, "The key, now revoked.");

#[derive(ApiResponse)]
enum KeyCreated {
    /// Key created; the secret is in the body, once.
    #[oai(status = 201)]
    Created(Json<NewApiKey>),
}

problem_responses!(KeysError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, TooMany = 429, Unavailable = 503 });

#[OpenApi(tag = "ApiTags::Keys")]
impl KeysApi {
    /// List API keys
    ///
    /// Owner or admin only. Every key of the tenant with its status; secrets are never shown.
    #[oai(path = "/api/v1/keys", method = "get", operation_id = "listKeys")]
    async fn list(&self, auth: UserAuth) -> Result<KeysOk, KeysError> {
        let keys = self.app.keys.list(&auth.0).await?;
        let now = self.app.clock.now();
        Ok(KeysOk::Ok(Json(
            keys.iter().map(|k| ApiKeyView::of(k, now)).collect(),
        )))
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
        let key = self.app.keys.create(&auth.0, body.0.name).await?;
        Ok(KeyCreated::Created(Json((&key).into())))
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
        id: Path<ApiKeyId>,
    ) -> Result<KeyRevoked, KeysError> {
        let key = self.app.keys.revoke(&auth.0, id.0).await?;
        Ok(KeyRevoked::Ok(Json(ApiKeyView::of(
            &key,
            self.app.clock.now(),
        ))))
    }
}
