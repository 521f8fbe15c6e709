//! Tenants: the in-memory directory (cache of `platform.tenants` and `platform.tiers`), the
//! resolution of the tenant a request names (subdomain, `X-Tenant-ID`), and the
//! [`TenantContext`] that only authentication can produce.

use crate::db;
use crate::domain::{ApiKeyId, Role, SchemaName, TenantId, TenantSlug, UserId};
use crate::error::ApiError;
use crate::quota::Tier;
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Row, Transaction};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

/// Tenant lifecycle status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum, serde::Serialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum TenantStatus {
    /// Serving requests.
    Active,
    /// Every authenticated request answers 403.
    Suspended,
}

/// A tenant as cached in memory.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Id.
    pub id: TenantId,
    /// Subdomain / `X-Tenant-ID` value.
    pub slug: TenantSlug,
    /// Organisation name.
    pub display_name: String,
    /// The tenant's PostgreSQL schema.
    pub schema: SchemaName,
    /// Tier limits, current as of the last change on this instance.
    pub tier: Arc<Tier>,
    /// Status.
    pub status: TenantStatus,
    /// End of the trial, when on the trial tier.
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// Paid tiers: admit simulations beyond the monthly quota as metered overage.
    pub overage_enabled: bool,
    /// Signup time.
    pub created_at: DateTime<Utc>,
}

impl Tenant {
    /// Has the trial ended at `now`?
    pub fn trial_ended(&self, now: DateTime<Utc>) -> bool {
        self.tier.trial_days.is_some() && self.trial_ends_at.is_some_and(|end| end <= now)
    }
}

/// In-memory tenant and tier directory. Lookups cost no query once a tenant was seen; every
/// change made through this instance calls [`TenantDirectory::refresh`], so it takes effect on
/// the next request. Unknown slugs are not cached (a tenant may sign up on another instance).
pub struct TenantDirectory {
    pool: PgPool,
    by_slug: RwLock<HashMap<String, Arc<Tenant>>>,
    by_id: RwLock<HashMap<uuid::Uuid, Arc<Tenant>>>,
    tiers: RwLock<HashMap<String, Arc<Tier>>>,
}

impl TenantDirectory {
    /// An empty directory (spec generation).
    pub fn empty(pool: PgPool) -> Self {
        Self {
            pool,
            by_slug: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
            tiers: RwLock::new(HashMap::new()),
        }
    }

    /// Loads tiers and every tenant.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn load(pool: PgPool) -> Result<Self, ApiError> {
        let dir = Self {
            pool,
            by_slug: RwLock::new(HashMap::new()),
            by_id: RwLock::new(HashMap::new()),
            tiers: RwLock::new(HashMap::new()),
        };
        dir.reload_tiers().await?;
        let rows = sqlx::query(tenant_select!()).fetch_all(&dir.pool).await?;
        for row in rows {
            let tenant = dir.tenant_from_row(&row)?;
            dir.insert(tenant);
        }
        Ok(dir)
    }

    /// Re-reads `platform.tiers` (after an admin changed a tier) and re-links cached tenants.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn reload_tiers(&self) -> Result<(), ApiError> {
        let tiers = Tier::load_all(&self.pool).await?;
        let map: HashMap<String, Arc<Tier>> = tiers
            .into_iter()
            .map(|t| (t.name.clone(), Arc::new(t)))
            .collect();
        *self.tiers.write().unwrap_or_else(|e| e.into_inner()) = map;
        if !self.is_empty() {
            // Re-link cached tenants to the new tier values in one query.
            self.reload_all().await?;
        }
        Ok(())
    }

    /// Every tier, cheapest first.
    pub fn tiers(&self) -> Vec<Arc<Tier>> {
        let mut tiers: Vec<Arc<Tier>> = self
            .tiers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect();
        tiers.sort_by_key(|t| t.price_cents_per_month);
        tiers
    }

    /// A tier by name.
    pub fn tier(&self, name: &str) -> Option<Arc<Tier>> {
        self.tiers
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    fn tenant_from_row(&self, row: &sqlx::postgres::PgRow) -> Result<Tenant, ApiError> {
        let slug: String = row.try_get("slug")?;
        let schema: String = row.try_get("schema_name")?;
        let tier_name: String = row.try_get("tier")?;
        let status: String = row.try_get("status")?;
        let tier = self.tier(&tier_name).ok_or_else(|| {
            ApiError::internal(format!("tenant {slug} has unknown tier {tier_name}"))
        })?;
        Ok(Tenant {
            id: TenantId::from_uuid(row.try_get("id")?),
            slug: TenantSlug::parse(&slug).map_err(ApiError::internal)?,
            display_name: row.try_get("display_name")?,
            schema: SchemaName::parse(&schema).map_err(ApiError::internal)?,
            tier,
            status: if status == "suspended" {
                TenantStatus::Suspended
            } else {
                TenantStatus::Active
            },
            trial_ends_at: row.try_get("trial_ends_at")?,
            overage_enabled: row.try_get("overage_enabled")?,
            created_at: row.try_get("created_at")?,
        })
    }

    fn insert(&self, tenant: Tenant) -> Arc<Tenant> {
        let tenant = Arc::new(tenant);
        let mut by_slug = self.by_slug.write().unwrap_or_else(|e| e.into_inner());
        let mut by_id = self.by_id.write().unwrap_or_else(|e| e.into_inner());
        by_slug.insert(tenant.slug.as_str().to_string(), tenant.clone());
        by_id.insert(tenant.id.as_uuid(), tenant.clone());
        tenant
    }

    /// A tenant by slug: from memory, else from PostgreSQL (then cached).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn by_slug(&self, slug: &TenantSlug) -> Result<Option<Arc<Tenant>>, ApiError> {
        if let Some(t) = self
            .by_slug
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(slug.as_str())
        {
            return Ok(Some(t.clone()));
        }
        let row = sqlx::query(concat!(tenant_select!(), " WHERE slug = $1"))
            .bind(slug.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| self.tenant_from_row(&r).map(|t| self.insert(t)))
            .transpose()
    }

    /// A tenant by id: from memory, else from PostgreSQL (then cached).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn by_id(&self, id: TenantId) -> Result<Option<Arc<Tenant>>, ApiError> {
        if let Some(t) = self
            .by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&id.as_uuid())
        {
            return Ok(Some(t.clone()));
        }
        self.refresh(id).await
    }

    /// Re-reads every tenant in one query, replacing the cache (after missed notifications).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn reload_all(&self) -> Result<usize, ApiError> {
        let rows = sqlx::query(tenant_select!()).fetch_all(&self.pool).await?;
        let tenants: Vec<Tenant> = rows
            .iter()
            .map(|r| self.tenant_from_row(r))
            .collect::<Result<_, _>>()?;
        let n = tenants.len();
        let mut by_slug = HashMap::with_capacity(n);
        let mut by_id = HashMap::with_capacity(n);
        for t in tenants {
            let t = Arc::new(t);
            by_slug.insert(t.slug.as_str().to_string(), t.clone());
            by_id.insert(t.id.as_uuid(), t);
        }
        *self.by_slug.write().unwrap_or_else(|e| e.into_inner()) = by_slug;
        *self.by_id.write().unwrap_or_else(|e| e.into_inner()) = by_id;
        Ok(n)
    }

    /// Re-reads one tenant from PostgreSQL (after a change) and replaces the cached copy.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn refresh(&self, id: TenantId) -> Result<Option<Arc<Tenant>>, ApiError> {
        let row = sqlx::query(concat!(tenant_select!(), " WHERE id = $1"))
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => Ok(Some(self.insert(self.tenant_from_row(&r)?))),
            None => {
                self.forget(id);
                Ok(None)
            }
        }
    }

    /// Drops a tenant from the cache.
    pub fn forget(&self, id: TenantId) {
        let removed = self
            .by_id
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id.as_uuid());
        if let Some(t) = removed {
            self.by_slug
                .write()
                .unwrap_or_else(|e| e.into_inner())
                .remove(t.slug.as_str());
        }
    }

    /// Every cached tenant (admin listing reads PostgreSQL instead).
    pub fn len(&self) -> usize {
        self.by_id.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// No tenant cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

macro_rules! tenant_select {
    () => {
        "SELECT id, slug, display_name, schema_name, tier, status, trial_ends_at, overage_enabled, created_at FROM platform.tenants"
    };
}
use tenant_select;

/// PostgreSQL `NOTIFY` channel announcing a changed tenant (payload: the tenant's UUID).
pub const TENANT_CHANGED_CHANNEL: &str = "tenant_changed";

/// Announces to every instance (including this one) that a tenant changed. Delivered when the
/// surrounding transaction commits (immediately on an autocommit connection).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn notify_changed<'c, E: sqlx::PgExecutor<'c>>(
    executor: E,
    id: TenantId,
) -> Result<(), ApiError> {
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(TENANT_CHANGED_CHANNEL)
        .bind(id.as_uuid().to_string())
        .execute(executor)
        .await?;
    Ok(())
}

/// Keeps this instance's [`TenantDirectory`] in step with changes made through any instance:
/// `LISTEN tenant_changed` on a dedicated connection, refresh the named tenant on each
/// notification, and reload every tenant after a reconnect (notifications may have been
/// missed). Ends when the application state is dropped.
pub fn spawn_change_listener(state: std::sync::Weak<crate::state::AppState>, url: String) {
    use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
    use std::str::FromStr;
    tokio::spawn(async move {
        let Ok(opts) = PgConnectOptions::from_str(&url) else {
            tracing::error!("tenant change listener: unusable DATABASE_URL");
            return;
        };
        // Its own connection: a listener holds one for good.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(opts);
        let mut first = true;
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(error = %err, "tenant change listener: cannot connect; retrying");
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(err) = listener.listen(TENANT_CHANGED_CHANNEL).await {
                tracing::warn!(error = %err, "tenant change listener: LISTEN failed; retrying");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                continue;
            }
            let mut resync = !first;
            first = false;
            loop {
                if resync {
                    let Some(state) = state.upgrade() else { return };
                    match state.tenants.reload_all().await {
                        Ok(n) => tracing::info!(
                            tenants = n,
                            "tenant cache reloaded after listener reconnect"
                        ),
                        Err(err) => tracing::warn!(error = ?err, "tenant cache reload failed"),
                    }
                    resync = false;
                }
                match listener.try_recv().await {
                    Ok(Some(note)) => {
                        let Some(state) = state.upgrade() else { return };
                        match uuid::Uuid::parse_str(note.payload()) {
                            Ok(id) => {
                                if let Err(err) =
                                    state.tenants.refresh(TenantId::from_uuid(id)).await
                                {
                                    tracing::warn!(error = ?err, "tenant refresh after notification failed");
                                }
                            }
                            Err(_) => tracing::warn!(
                                payload = note.payload(),
                                "ignoring malformed tenant notification"
                            ),
                        }
                    }
                    Ok(None) => resync = true,
                    Err(err) => {
                        tracing::warn!(error = %err, "tenant change listener lost its connection");
                        break;
                    }
                }
            }
        }
    });
}

/// Who is calling, inside the tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Principal {
    /// An API key (acts with member rights).
    ApiKey(ApiKeyId),
    /// A signed-in user (bearer JWT).
    User {
        /// The user.
        id: UserId,
        /// Their role.
        role: Role,
    },
}

impl Principal {
    /// The id governor keys the burst limit on.
    pub fn limiter_key(&self) -> uuid::Uuid {
        match self {
            Principal::ApiKey(k) => k.as_uuid(),
            Principal::User { id, .. } => id.as_uuid(),
        }
    }
}

/// The tenant and principal of an authenticated request. Only the authentication extractors
/// build one, after checking the credentials against the resolved tenant; every tenant query
/// starts from it.
#[derive(Debug, Clone)]
pub struct TenantContext {
    /// The tenant.
    pub tenant: Arc<Tenant>,
    /// The caller.
    pub principal: Principal,
}

impl TenantContext {
    /// Begins this request's transaction with the search_path set to the tenant's schema.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn begin(&self, pool: &PgPool) -> Result<Transaction<'static, Postgres>, ApiError> {
        Ok(db::begin_tenant(pool, &self.tenant.schema).await?)
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
    /// 403 otherwise.
    pub fn require_manager(&self) -> Result<(UserId, Role), ApiError> {
        match self.principal {
            Principal::User { id, role } if role.can_manage() => Ok((id, role)),
            Principal::User { role, .. } => Err(ApiError::forbidden(format!(
                "this action needs the owner or admin role; you are {}",
                role.as_str()
            ))),
            Principal::ApiKey(_) => Err(ApiError::forbidden(
                "this action needs a signed-in owner or admin (bearer token), not an API key",
            )),
        }
    }
}

/// Where a tenant was named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTenant {
    /// The slug.
    pub slug: TenantSlug,
    /// `"subdomain"` or `"X-Tenant-ID"`.
    pub source: &'static str,
}

/// Subdomains of the base domain that never name a tenant.
const NON_TENANT_HOSTS: &[&str] = &["www", "api"];

/// The tenant a request names through its `Host` subdomain and/or `X-Tenant-ID` header.
///
/// # Errors
/// 400 when the header is not a valid slug or the two sources disagree; 404 when the
/// subdomain cannot be a tenant.
pub fn named_tenant(
    req: &poem::Request,
    base_domain: &str,
) -> Result<Option<NamedTenant>, ApiError> {
    let from_host = host_slug(req, base_domain)?;
    let from_header = match req.headers().get("x-tenant-id") {
        None => None,
        Some(v) => {
            let text = v
                .to_str()
                .map_err(|_| ApiError::bad_request("X-Tenant-ID must be ASCII text"))?;
            let slug = TenantSlug::parse(text.trim()).map_err(|e| {
                ApiError::bad_request(format!("X-Tenant-ID is not a valid tenant slug: {e}"))
            })?;
            Some(slug)
        }
    };
    match (from_host, from_header) {
        (Some(h), Some(x)) if h != x => Err(ApiError::bad_request(format!(
            "the subdomain names tenant {h:?} but X-Tenant-ID names {x:?}; send one or make them agree"
        ))),
        (Some(h), _) => Ok(Some(NamedTenant {
            slug: h,
            source: "subdomain",
        })),
        (None, Some(x)) => Ok(Some(NamedTenant {
            slug: x,
            source: "X-Tenant-ID",
        })),
        (None, None) => Ok(None),
    }
}

fn host_slug(req: &poem::Request, base_domain: &str) -> Result<Option<TenantSlug>, ApiError> {
    let host = req
        .headers()
        .get(poem::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    let host = host.rsplit_once(':').map_or(host, |(h, port)| {
        if port.chars().all(|c| c.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    let Some(label) = host
        .strip_suffix(base_domain)
        .and_then(|rest| rest.strip_suffix('.'))
    else {
        return Ok(None);
    };
    if NON_TENANT_HOSTS.contains(&label) {
        return Ok(None);
    }
    TenantSlug::parse(label).map(Some).map_err(|_| {
        ApiError::not_found(format!(
            "no tenant at {host}: {label:?} is not a tenant subdomain"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, header: Option<&str>) -> poem::Request {
        let mut b = poem::Request::builder()
            .uri_str("/api/v1/auth/me")
            .header("host", host);
        if let Some(h) = header {
            b = b.header("x-tenant-id", h);
        }
        b.finish()
    }

    #[test]
    fn resolves_subdomain_and_header() {
        let n = named_tenant(&req("acme.example.com:8080", None), "example.com")
            .unwrap()
            .unwrap();
        assert_eq!((n.slug.as_str(), n.source), ("acme", "subdomain"));
        let n = named_tenant(&req("example.com", Some("beta")), "example.com")
            .unwrap()
            .unwrap();
        assert_eq!((n.slug.as_str(), n.source), ("beta", "X-Tenant-ID"));
        assert!(
            named_tenant(&req("www.example.com", None), "example.com")
                .unwrap()
                .is_none()
        );
        assert!(
            named_tenant(&req("acme.other.com", None), "example.com")
                .unwrap()
                .is_none()
        );
        let same = named_tenant(&req("acme.example.com", Some("acme")), "example.com").unwrap();
        assert_eq!(same.unwrap().slug.as_str(), "acme");
    }

    #[test]
    fn refuses_disagreement_and_bad_slugs() {
        let e = named_tenant(&req("acme.example.com", Some("beta")), "example.com").unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        let e = named_tenant(&req("example.com", Some("Acme\";--")), "example.com").unwrap_err();
        assert_eq!(e.status().as_u16(), 400);
        let e = named_tenant(&req("a.b.example.com", None), "example.com").unwrap_err();
        assert_eq!(e.status().as_u16(), 404);
        let e = named_tenant(&req("pg_catalog.example.com", None), "example.com").unwrap_err();
        assert_eq!(e.status().as_u16(), 404);
    }
}
