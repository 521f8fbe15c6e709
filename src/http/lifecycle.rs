//! The tenant's own lifecycle and GDPR operations (owner only): delete the organisation
//! (password confirmation; soft delete with a grace period), export all its data (Art. 20,
//! a streamed `tar.gz`), erase a user (Art. 17, pseudonymisation).

use super::payload::{ApiJson, BodyLimit, Json};
use super::security::UserAuth;
use super::tags::ApiTags;
use crate::app::App;
use crate::domain::UserId;
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem::Body;
use poem_openapi::param::Path;
use poem_openapi::payload::Binary;
use poem_openapi::types::Example;
use poem_openapi::{ApiResponse, Object, OpenApi};
use std::sync::Arc;

/// The tenant's lifecycle operations.
pub struct LifecycleApi {
    /// The application.
    pub app: Arc<App>,
}

/// Confirmation of the organisation's deletion.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct DeleteOrganisationRequest {
    /// The owner's current password.
    #[oai(validator(max_length = 128))]
    pub password: String,
}

impl Example for DeleteOrganisationRequest {
    fn example() -> Self {
        Self {
            password: "correct horse battery".into(),
        }
    }
}

impl BodyLimit for DeleteOrganisationRequest {
    const MAX_BODY_BYTES: usize = 4 * 1024;
}

/// A deleted organisation.
#[derive(Object, Debug)]
#[oai(example)]
pub struct OrganisationDeleted {
    /// Deleted at: every API key, token and sign-in of the organisation is refused from now.
    pub deleted_at: DateTime<Utc>,
    /// The data is erased after this; until then a platform administrator can restore it.
    pub purge_after: DateTime<Utc>,
}

impl Example for OrganisationDeleted {
    fn example() -> Self {
        let at = DateTime::from_timestamp(1_795_000_000, 0).unwrap_or_default();
        Self {
            deleted_at: at,
            purge_after: at + chrono::Duration::days(30),
        }
    }
}

/// An erased user: their email and name are replaced by this stable pseudonym everywhere.
#[derive(Object, Debug)]
#[oai(example)]
pub struct ErasedUser {
    /// The user (the id is kept: it is not personal data).
    pub id: UserId,
    /// Pseudonymous email (`erased-…@erased.invalid`).
    pub email: String,
    /// Pseudonymous name.
    pub full_name: String,
}

impl Example for ErasedUser {
    fn example() -> Self {
        Self {
            id: UserId::parse("usr_01a1fe67-63d8-714e-938a-1da9ab5bc23d")
                .expect("valid example id"),
            email: "erased-3f2a9c1b7d40@erased.invalid".into(),
            full_name: "Erased user 3f2a9c1b7d40".into(),
        }
    }
}

ok_response!(
    DeletedOk,
    OrganisationDeleted,
    "Deleted; restorable by a platform administrator until `purge_after`."
);
ok_response!(ErasedOk, ErasedUser, "The user, pseudonymised.");

/// The export archive.
#[derive(ApiResponse)]
enum ExportOk {
    /// A gzip-compressed tar (`.tar.gz`; served as `application/octet-stream`, which every
    /// generated client can save): `manifest.json` (tables, row counts, schema version,
    /// creation time, columns left out) then `tables/<table>.jsonl` for every table of the
    /// organisation, one JSON object per row. Secrets (password, key and token hashes, TOTP
    /// secrets) are left out.
    #[oai(status = 200, content_type = "application/octet-stream")]
    Ok(
        Binary<Body>,
        /// `attachment; filename="<slug>-export-<time>.tar.gz"`.
        #[oai(header = "Content-Disposition")]
        String,
    ),
}

problem_responses!(DeleteError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, Invalid = 422, TooMany = 429, Unavailable = 503 });
problem_responses!(ExportError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, TooMany = 429, Unavailable = 503 });
problem_responses!(EraseError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Conflict = 409, TooMany = 429, Unavailable = 503 });

#[OpenApi(tag = "ApiTags::Accounts")]
impl LifecycleApi {
    /// Delete the organisation
    ///
    /// Owner only, confirmed with the owner's password. At once every API key, token and
    /// sign-in of the organisation is refused and its slug stays reserved; the data is erased
    /// after the grace period (`purge_after`), until when a platform administrator can restore
    /// it. Export first (`GET /api/v1/export`) to keep a copy.
    #[oai(
        path = "/api/v1/organisation/delete",
        method = "post",
        operation_id = "deleteOrganisation"
    )]
    async fn delete(
        &self,
        user: UserAuth,
        body: ApiJson<DeleteOrganisationRequest>,
    ) -> Result<DeletedOk, DeleteError> {
        let tenant = self
            .app
            .lifecycle
            .delete_own(&user.0, body.0.password)
            .await?;
        let (Some(deleted_at), Some(purge_after)) = (tenant.deleted_at, tenant.purge_after) else {
            return Err(crate::error::AppError::internal("deleted tenant without times").into());
        };
        Ok(DeletedOk::Ok(Json(OrganisationDeleted {
            deleted_at,
            purge_after,
        })))
    }

    /// Export all data
    ///
    /// Owner only (GDPR Art. 20): one `tar.gz` of every table of the organisation as JSON
    /// lines with a manifest, streamed from one consistent snapshot. Secrets are left out.
    #[oai(
        path = "/api/v1/export",
        method = "get",
        operation_id = "exportOrganisation"
    )]
    async fn export(&self, user: UserAuth) -> Result<ExportOk, ExportError> {
        let archive = self.app.export.export_own(&user.0).await?;
        let stream = futures_util::stream::unfold(archive.chunks, |mut rx| async move {
            rx.recv().await.map(|chunk| (chunk, rx))
        });
        Ok(ExportOk::Ok(
            Binary(Body::from_bytes_stream(stream)),
            format!("attachment; filename=\"{}\"", archive.filename),
        ))
    }

    /// Erase a user
    ///
    /// Owner only (GDPR Art. 17): the user's email and name are replaced by a stable pseudonym
    /// in their user row and in every audit event that named them (the events are kept), and
    /// they can no longer sign in. The owner cannot erase themselves.
    #[oai(
        path = "/api/v1/users/:id/erase",
        method = "post",
        operation_id = "eraseUser"
    )]
    async fn erase(
        &self,
        user: UserAuth,
        /// The user (`usr_…`).
        id: Path<UserId>,
    ) -> Result<ErasedOk, EraseError> {
        let (email, full_name) = self.app.lifecycle.erase_user(&user.0, id.0).await?;
        Ok(ErasedOk::Ok(Json(ErasedUser {
            id: id.0,
            email,
            full_name,
        })))
    }
}
