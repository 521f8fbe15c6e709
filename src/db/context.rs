//! The only door to a tenant schema: a [`TenantContext`] (made by authentication) hands out a
//! [`TenantTx`], a transaction whose `search_path` is the tenant's schema, set
//! transaction-locally (`SET LOCAL`, sent with the `BEGIN`). Repository functions take `&mut TenantTx`, so no
//! tenant query can run without a context, and nothing here sets a session-level path that a
//! pooled connection could carry into another tenant's request.

use super::pool::Db;
use super::statements::{Conn, RequestTx};
use crate::domain::{ApiKeyId, Client, Principal, Role, SchemaName, SessionId, Tenant, UserId};
use crate::error::AppError;
use std::sync::Arc;

/// The tenant and principal of an authenticated request, job or page.
#[derive(Debug, Clone)]
pub struct TenantContext {
    tenant: Arc<Tenant>,
    principal: Principal,
    session: Option<SessionId>,
    client: Client,
}

impl TenantContext {
    /// A context for credentials that were checked against `tenant`. Only the authentication
    /// service calls this, after the check.
    pub(crate) fn authenticated(tenant: Arc<Tenant>, principal: Principal) -> Self {
        Self {
            tenant,
            principal,
            session: None,
            client: Client::default(),
        }
    }

    /// The same context for a bearer token of session `session` (set by authentication).
    pub(crate) fn in_session(mut self, session: SessionId) -> Self {
        self.session = Some(session);
        self
    }

    /// The same context, recording where the request came from (for audit rows).
    pub fn from_client(mut self, client: Client) -> Self {
        self.client = client;
        self
    }

    /// The session of a bearer token (none for API keys and background work).
    pub fn session(&self) -> Option<SessionId> {
        self.session
    }

    /// Where the request came from (empty for background work).
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The tenant.
    pub fn tenant(&self) -> &Arc<Tenant> {
        &self.tenant
    }

    /// The caller.
    pub fn principal(&self) -> Principal {
        self.principal
    }

    /// The user behind the request, if signed in.
    pub fn user(&self) -> Option<(UserId, Role)> {
        match self.principal {
            Principal::User { id, role } => Some((id, role)),
            Principal::ApiKey(_) => None,
        }
    }

    /// The API key behind the request, if any.
    pub fn api_key(&self) -> Option<ApiKeyId> {
        match self.principal {
            Principal::ApiKey(k) => Some(k),
            Principal::User { .. } => None,
        }
    }

    /// Requires a signed-in owner or admin.
    ///
    /// # Errors
    /// 403 otherwise, saying why.
    pub fn require_manager(&self) -> Result<UserId, AppError> {
        match self.principal {
            Principal::User { id, role } if role.can_manage() => Ok(id),
            Principal::User { role, .. } => Err(AppError::forbidden(format!(
                "this action needs the owner or admin role; you are {}",
                role.as_str()
            ))),
            Principal::ApiKey(_) => Err(AppError::forbidden(
                "this action needs a signed-in owner or admin (bearer token), not an API key",
            )),
        }
    }

    /// Requires a caller that may run simulations, jobs and batches (an API key, or any role
    /// but viewer).
    ///
    /// # Errors
    /// 403 for a viewer.
    pub fn require_runner(&self) -> Result<(), AppError> {
        match self.principal {
            Principal::User { role, .. } if !role.can_run() => Err(AppError::forbidden(
                "viewers read simulations, jobs and usage but cannot run or cancel them; ask an owner or admin for the member role",
            )),
            _ => Ok(()),
        }
    }

    /// Begins a transaction in this tenant's schema.
    ///
    /// # Errors
    /// 503 when no connection can be had; 500 when PostgreSQL fails.
    pub async fn begin(&self, db: &Db) -> Result<TenantTx, AppError> {
        begin_in(db, &self.tenant.schema).await
    }
}

/// A transaction whose `search_path` is one tenant's schema only (`platform` tables are always
/// named schema-qualified). Dropping it without [`TenantTx::commit`] rolls back.
pub struct TenantTx {
    tx: RequestTx,
}

impl TenantTx {
    /// The connection, for repository queries.
    pub(super) fn conn(&mut self) -> Conn<'_> {
        self.tx.conn()
    }

    /// Commits.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn commit(self) -> Result<(), AppError> {
        self.tx.commit().await?;
        Ok(())
    }
}

/// Begins a transaction in `tenant`'s schema for a step that comes before authentication
/// (signing in, refreshing a session, a reset link): the caller proves who it is with what it
/// reads in this transaction.
///
/// # Errors
/// 503 when no connection can be had; 500 when PostgreSQL fails.
pub async fn begin_pre_auth(db: &Db, tenant: &Tenant) -> Result<TenantTx, AppError> {
    begin_in(db, &tenant.schema).await
}

/// Begins a transaction in `tenant`'s schema before any context exists: only for the
/// credential checks of the data layer.
pub(super) async fn begin_for(db: &Db, tenant: &Tenant) -> Result<TenantTx, AppError> {
    begin_in(db, &tenant.schema).await
}

/// `BEGIN` and `SET LOCAL search_path` in one round trip. The schema name is spliced into the
/// statement text, quoted: [`SchemaName`] only holds `t_[a-z][a-z0-9_]{2,39}`, so it cannot
/// carry a quote or anything else into the SQL.
async fn begin_in(db: &Db, schema: &SchemaName) -> Result<TenantTx, AppError> {
    let tx = db
        .pool
        .begin_with_search_path(&schema.search_path())
        .await?;
    Ok(TenantTx { tx })
}
