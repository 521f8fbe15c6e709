//! The tenant directory: every tenant and tier in memory, so resolving a tenant costs no query
//! once it was seen. Kept current on every instance by `LISTEN tenant_changed, tiers_changed`
//! (the triggers of platform migration V2 announce every change, whoever makes it), with a full
//! reload after a lost connection.

use crate::db::listen::Heard;
use crate::db::tenants::{TIERS_CHANGED_CHANNEL, TenantRecord};
use crate::db::{self, Db};
use crate::domain::{Tenant, TenantId, TenantSlug, TierCatalog};
use crate::error::AppError;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// How long a slug that names no tenant is remembered as such (a tenant created meanwhile on
/// another instance is announced and clears it sooner).
pub const UNKNOWN_SLUG_TTL: Duration = Duration::from_secs(5);

/// Most unknown slugs remembered at once (emptied when full).
const MAX_UNKNOWN: usize = 10_000;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Where a request named its tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TenantSource {
    /// The `Host` subdomain (`<slug>.<base domain>`).
    Subdomain,
    /// The `X-Tenant-ID` header.
    Header,
}

impl fmt::Display for TenantSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TenantSource::Subdomain => "subdomain",
            TenantSource::Header => "X-Tenant-ID",
        })
    }
}

/// A tenant as a request names it, before it is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedTenant {
    /// The slug.
    pub slug: TenantSlug,
    /// Where it came from.
    pub source: TenantSource,
}

#[derive(Default)]
struct Maps {
    by_slug: HashMap<TenantSlug, Arc<Tenant>>,
    by_id: HashMap<TenantId, Arc<Tenant>>,
}

/// Every tenant and tier, in memory.
pub struct TenantDirectory {
    db: Db,
    tiers: Arc<TierCatalog>,
    maps: RwLock<Maps>,
    unknown: Mutex<HashMap<TenantSlug, Instant>>,
}

impl TenantDirectory {
    /// An empty directory over `tiers` (nothing loaded: spec generation and tests).
    pub fn empty(db: Db, tiers: Arc<TierCatalog>) -> Self {
        Self {
            db,
            tiers,
            maps: RwLock::new(Maps::default()),
            unknown: Mutex::new(HashMap::new()),
        }
    }

    /// Loads every tier and tenant.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn load(db: Db) -> Result<Self, AppError> {
        let tiers = Arc::new(TierCatalog::new(db::tiers::load_all(&db).await?));
        let dir = Self::empty(db, tiers);
        dir.reload_all().await?;
        Ok(dir)
    }

    /// The tier catalogue (shared with the quota module).
    pub fn tiers(&self) -> &Arc<TierCatalog> {
        &self.tiers
    }

    fn link(&self, r: TenantRecord) -> Result<Tenant, AppError> {
        let tier = self.tiers.get(&r.tier).ok_or_else(|| {
            AppError::internal(format!("tenant {} has unknown tier {}", r.slug, r.tier))
        })?;
        Ok(Tenant {
            id: r.id,
            slug: r.slug,
            display_name: r.display_name,
            schema: r.schema,
            tier,
            status: r.status,
            trial_ends_at: r.trial_ends_at,
            overage_enabled: r.overage_enabled,
            created_at: r.created_at,
            billing_grace_until: r.billing_grace_until,
            billing_suspended: r.billing_suspended,
            deleted_at: r.deleted_at,
            purge_after: r.purge_after,
        })
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Maps> {
        self.maps.write().unwrap_or_else(|e| e.into_inner())
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Maps> {
        self.maps.read().unwrap_or_else(|e| e.into_inner())
    }

    fn insert(&self, tenant: Tenant) -> Arc<Tenant> {
        let tenant = Arc::new(tenant);
        let mut maps = self.write();
        if let Some(old) = maps.by_id.insert(tenant.id, tenant.clone())
            && old.slug != tenant.slug
        {
            maps.by_slug.remove(&old.slug);
        }
        maps.by_slug.insert(tenant.slug.clone(), tenant.clone());
        tenant
    }

    /// A live tenant by slug: from memory, else from PostgreSQL (then cached). A slug that names
    /// no tenant is remembered for [`UNKNOWN_SLUG_TTL`], so a flood of made-up slugs costs no
    /// query per request. A soft-deleted tenant is `None` here, as if it did not exist: every
    /// credential of it is refused like an unknown one (platform admins use
    /// [`TenantDirectory::by_slug_including_deleted`]).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn by_slug(&self, slug: &TenantSlug) -> Result<Option<Arc<Tenant>>, AppError> {
        Ok(self
            .by_slug_including_deleted(slug)
            .await?
            .filter(|t| !t.is_deleted()))
    }

    /// A tenant by slug, soft-deleted or not (platform administration).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn by_slug_including_deleted(
        &self,
        slug: &TenantSlug,
    ) -> Result<Option<Arc<Tenant>>, AppError> {
        if let Some(t) = self.read().by_slug.get(slug) {
            return Ok(Some(t.clone()));
        }
        if lock(&self.unknown)
            .get(slug)
            .is_some_and(|at| at.elapsed() < UNKNOWN_SLUG_TTL)
        {
            return Ok(None);
        }
        match db::tenants::by_slug(&self.db, slug).await? {
            Some(r) => Ok(Some(self.insert(self.link(r)?))),
            None => {
                let mut unknown = lock(&self.unknown);
                if unknown.len() >= MAX_UNKNOWN {
                    unknown.clear();
                }
                unknown.insert(slug.clone(), Instant::now());
                Ok(None)
            }
        }
    }

    /// A live tenant by id: from memory, else from PostgreSQL (then cached); `None` for a
    /// soft-deleted tenant, as [`TenantDirectory::by_slug`].
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn by_id(&self, id: TenantId) -> Result<Option<Arc<Tenant>>, AppError> {
        let cached = self.read().by_id.get(&id).cloned();
        let found = match cached {
            Some(t) => Some(t),
            None => self.refresh(id).await?,
        };
        Ok(found.filter(|t| !t.is_deleted()))
    }

    /// Every tenant, oldest first, as cached (admin listings read PostgreSQL instead).
    pub fn cached(&self) -> Vec<Arc<Tenant>> {
        let mut all: Vec<_> = self.read().by_id.values().cloned().collect();
        all.sort_by_key(|t| (t.created_at, t.id));
        all
    }

    /// Re-reads every tenant in one query, replacing the cache (after missed notifications or
    /// a tier change).
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn reload_all(&self) -> Result<usize, AppError> {
        let records = db::tenants::all(&self.db).await?;
        let mut maps = Maps::default();
        for r in records {
            let t = Arc::new(self.link(r)?);
            maps.by_slug.insert(t.slug.clone(), t.clone());
            maps.by_id.insert(t.id, t);
        }
        let n = maps.by_id.len();
        *self.write() = maps;
        Ok(n)
    }

    /// Re-reads `platform.tiers`, then re-links every cached tenant to the new values.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn reload_tiers(&self) -> Result<(), AppError> {
        self.tiers.replace(db::tiers::load_all(&self.db).await?);
        self.reload_all().await?;
        Ok(())
    }

    /// Re-reads one tenant and replaces the cached copy (dropping it when it is gone); a slug
    /// remembered as unknown is forgotten.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn refresh(&self, id: TenantId) -> Result<Option<Arc<Tenant>>, AppError> {
        match db::tenants::by_id(&self.db, id).await? {
            Some(r) => {
                lock(&self.unknown).remove(&r.slug);
                Ok(Some(self.insert(self.link(r)?)))
            }
            None => {
                self.forget(id);
                Ok(None)
            }
        }
    }

    /// Drops a tenant from the cache.
    pub fn forget(&self, id: TenantId) {
        let mut maps = self.write();
        if let Some(t) = maps.by_id.remove(&id) {
            maps.by_slug.remove(&t.slug);
        }
    }

    /// Applies a change heard on `tenant_changed` or `tiers_changed` (or a reconnect, after
    /// which everything is reloaded).
    pub async fn on_heard(&self, heard: &Heard) {
        let outcome = match heard {
            Heard::Reconnected => self.reload_tiers().await,
            Heard::Notification { channel, .. } if channel == TIERS_CHANGED_CHANNEL => {
                self.reload_tiers().await
            }
            Heard::Notification { payload, .. } => match uuid::Uuid::parse_str(payload) {
                Ok(id) => {
                    // A new tenant may have been remembered as unknown.
                    lock(&self.unknown).clear();
                    self.refresh(TenantId::from_uuid(id)).await.map(|_| ())
                }
                Err(_) => {
                    tracing::warn!(%payload, "ignoring malformed tenant notification");
                    Ok(())
                }
            },
        };
        match outcome {
            Ok(()) => tracing::debug!(?heard, "tenant directory updated"),
            Err(err) => tracing::warn!(error = ?err, ?heard, "tenant directory update failed"),
        }
    }
}
