//! Authentication: turns credentials into a [`TenantContext`].
//!
//! Tenant rule: a tenant named by the subdomain or `X-Tenant-ID` is accepted only when the
//! credentials belong to it. A key or token of tenant A on B's subdomain answers 401; a key
//! alone names its tenant through the platform's key directory.

use super::directory::{NamedTenant, TenantDirectory};
use super::key_cache::{KeyCache, Known};
use super::sessions::SessionService;
use super::tokens::JwtKeys;
use crate::clock::SharedClock;
use crate::db::api_keys;
use crate::db::{Db, TenantContext};
use crate::domain::{ApiKeySecret, Principal, SessionId, Tenant, TenantId, TenantStatus, UserId};
use crate::error::AppError;
use chrono::Duration;
use std::sync::Arc;

/// How stale `api_keys.last_used_at` may get before a request rewrites it.
pub const LAST_USED_RESOLUTION: Duration = Duration::seconds(60);

/// Checks credentials against tenants.
pub struct AuthService {
    db: Db,
    directory: Arc<TenantDirectory>,
    jwt: Arc<JwtKeys>,
    keys: Arc<KeyCache>,
    sessions: Arc<SessionService>,
    clock: SharedClock,
}

impl AuthService {
    /// The service.
    pub fn new(
        db: Db,
        directory: Arc<TenantDirectory>,
        jwt: Arc<JwtKeys>,
        keys: Arc<KeyCache>,
        sessions: Arc<SessionService>,
        clock: SharedClock,
    ) -> Self {
        Self {
            db,
            directory,
            jwt,
            keys,
            sessions,
            clock,
        }
    }

    /// What is known of the key with this hash: from memory, else from the platform directory
    /// and the tenant's row (then remembered).
    async fn known(&self, hash: &[u8; 32]) -> Result<Known, AppError> {
        if let Some(known) = self.keys.get(hash) {
            return Ok(known);
        }
        let known = match api_keys::directory_lookup(&self.db, hash).await? {
            None => Known::Unknown,
            Some((id, tenant_id)) => match self.directory.by_id(tenant_id).await? {
                None => Known::Unknown,
                Some(tenant) => match api_keys::auth_row(&self.db, &tenant, id, hash).await? {
                    None => Known::Unknown,
                    Some(row) => Known::Key {
                        id,
                        tenant: tenant_id,
                        revoked: row.revoked,
                        expires_at: row.expires_at,
                        last_used_at: row.last_used_at,
                    },
                },
            },
        };
        self.keys.put(*hash, known);
        Ok(known)
    }

    /// The tenant credentials belonging to `owner` act in. When the request names a tenant,
    /// it must be `owner`; a named tenant that does not exist is answered like another
    /// tenant's (401, with `foreign`'s wording), so credentials cannot discover tenants.
    async fn tenant_for(
        &self,
        named: Option<&NamedTenant>,
        owner: TenantId,
        foreign: impl FnOnce(&NamedTenant) -> String,
        unknown: &str,
    ) -> Result<Arc<Tenant>, AppError> {
        if let Some(n) = named {
            return match self.directory.by_slug(&n.slug).await? {
                Some(t) if t.id == owner => Ok(t),
                _ => Err(AppError::unauthorized(foreign(n))),
            };
        }
        self.directory
            .by_id(owner)
            .await?
            .ok_or_else(|| AppError::unauthorized(unknown.to_string()))
    }

    /// Authenticates an `X-API-Key` (format and checksum are checked before any query).
    ///
    /// # Errors
    /// 401 for a malformed, unknown, revoked, expired or foreign key (a named tenant that does
    /// not exist counts as foreign); 403 for a suspended tenant.
    pub async fn api_key(
        &self,
        named: Option<&NamedTenant>,
        raw: &str,
    ) -> Result<TenantContext, AppError> {
        let key = ApiKeySecret::parse(raw.trim())
            .map_err(|why| AppError::unauthorized(format!("malformed API key: {why}")))?;
        let hash = key.hash();
        let Known::Key {
            id: key_id,
            tenant: tenant_id,
            revoked,
            expires_at,
            last_used_at,
        } = self.known(&hash).await?
        else {
            return Err(AppError::unauthorized("unknown API key"));
        };
        let tenant = self
            .tenant_for(
                named,
                tenant_id,
                |n| {
                    format!(
                        "this API key does not belong to tenant {:?} named by the {}",
                        n.slug.as_str(),
                        n.source
                    )
                },
                "unknown API key",
            )
            .await?;
        let now = self.clock.now();
        if revoked {
            return Err(AppError::unauthorized("API key has been revoked"));
        }
        if let Some(at) = expires_at.filter(|at| *at <= now) {
            return Err(AppError::unauthorized(format!(
                "API key expired at {}",
                at.to_rfc3339()
            )));
        }
        check_status(&tenant)?;
        // `last_used_at` is kept to the minute: rewriting the row on every request would add a
        // write (and a dead tuple) to each call of a busy key.
        if last_used_at.is_none_or(|t| now - t >= LAST_USED_RESOLUTION) {
            api_keys::touch(&self.db, &tenant, key_id, now).await?;
            self.keys.touched(&hash, now);
        }
        Ok(TenantContext::authenticated(
            tenant,
            Principal::ApiKey(key_id),
        ))
    }

    /// Authenticates a bearer access token: its signature and expiry, then its session (live)
    /// and user (active), whose role is read from the directory (cached, kept current by
    /// `NOTIFY`), not from the token. When the team requires two-factor authentication and the
    /// user has not enrolled, only `enrolling` operations are allowed.
    ///
    /// # Errors
    /// 401 for an invalid, expired or foreign token (a named tenant that does not exist counts
    /// as foreign), an ended session or a user who is not active; 403 for a suspended tenant,
    /// or (problem type `two-factor-enrolment-required`) a user who must enrol first.
    pub async fn bearer(
        &self,
        named: Option<&NamedTenant>,
        token: &str,
        enrolling: bool,
    ) -> Result<TenantContext, AppError> {
        let claims = self.jwt.verify(token, self.clock.now())?;
        let tid = TenantId::parse(&claims.tid)
            .map_err(|_| AppError::unauthorized("bearer token has a malformed tid claim"))?;
        let user = UserId::parse(&claims.sub)
            .map_err(|_| AppError::unauthorized("bearer token has a malformed sub claim"))?;
        let session = SessionId::parse(&claims.sid)
            .map_err(|_| AppError::unauthorized("bearer token has a malformed sid claim"))?;
        let tenant = self
            .tenant_for(
                named,
                tid,
                |n| {
                    format!(
                        "this bearer token was not issued for tenant {:?} named by the {}",
                        n.slug.as_str(),
                        n.source
                    )
                },
                "bearer token names an unknown tenant",
            )
            .await?;
        check_status(&tenant)?;
        let state = self.sessions.check(&tenant, session, user).await?;
        if !enrolling && state.team_requires_two_factor && !state.two_factor {
            return Err(AppError::client_status(
                403,
                "two-factor-enrolment-required",
                "your team requires two-factor authentication: enrol with POST /api/v1/auth/2fa/setup, then confirm a code with POST /api/v1/auth/2fa/enable",
            ));
        }
        Ok(TenantContext::authenticated(
            tenant,
            Principal::User {
                id: user,
                role: state.role,
            },
        )
        .in_session(session))
    }
}

/// A suspended tenant's credentials are refused.
pub(super) fn check_status(tenant: &Tenant) -> Result<(), AppError> {
    match tenant.status {
        TenantStatus::Active => Ok(()),
        TenantStatus::Suspended => Err(AppError::forbidden(format!(
            "tenant {:?} is suspended; contact the platform administrators",
            tenant.slug.as_str()
        ))),
    }
}
