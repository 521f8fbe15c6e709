//! Subscription tiers (rows of `platform.tiers`) and the in-memory catalogue every instance
//! keeps of them.

use std::sync::{Arc, RwLock};

/// One subscription tier: its price and every limit the quota module enforces.
///
/// Loaded from `platform.tiers` (`db::tiers::load_all`); the caller passes the tenant's current
/// tier to every check, so a tier change takes effect on the next request without a restart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tier {
    /// Stable identifier (`trial`, `starter`, `professional`, `enterprise`).
    pub name: String,
    /// Name shown to people.
    pub display_name: String,
    /// Monthly price in US cents.
    pub price_cents_per_month: i64,
    /// Simulations per calendar month (UTC); `None` = unlimited.
    pub monthly_simulations: Option<u64>,
    /// Largest number of Monte Carlo paths in one simulation.
    pub max_paths: u64,
    /// Largest `paths × steps × assets` of one simulation.
    pub max_work: u64,
    /// Sustained request rate per API key (or JWT user), requests per second.
    pub burst_per_second: u32,
    /// Requests a key may send at once before the sustained rate applies (GCRA burst).
    pub burst_size: u32,
    /// Simulations of one tenant running at once (per service instance).
    pub max_concurrent_simulations: u32,
    /// API keys a tenant may hold; `None` = unlimited.
    pub max_api_keys: Option<u32>,
    /// Price of one simulation beyond the monthly quota in US cents; `None` = the tier has no
    /// overage and its quota is a hard stop.
    pub overage_cents_per_simulation: Option<i64>,
    /// Length of the free trial in days, for trial tiers.
    pub trial_days: Option<u32>,
}

impl Tier {
    /// Whether this tier allows metered overage at all (the tenant must also have enabled it).
    pub fn allows_overage(&self) -> bool {
        self.overage_cents_per_simulation.is_some()
    }
}

/// The tiers as this instance knows them, cheapest first: the one tier cache of the service.
/// The tenant directory links each cached tenant to an entry; the quota module and the size
/// policy read it for upgrade hints. Replaced as a whole when `platform.tiers` changes (every
/// instance hears of it through `NOTIFY tiers_changed`).
#[derive(Debug, Default)]
pub struct TierCatalog {
    tiers: RwLock<Arc<[Arc<Tier>]>>,
}

impl TierCatalog {
    /// A catalogue holding `tiers` (any order; kept cheapest first).
    pub fn new(tiers: Vec<Tier>) -> Self {
        let catalog = Self::default();
        catalog.replace(tiers);
        catalog
    }

    /// Replaces every tier (after `platform.tiers` changed).
    pub fn replace(&self, mut tiers: Vec<Tier>) {
        tiers.sort_by(|a, b| {
            (a.price_cents_per_month, &a.name).cmp(&(b.price_cents_per_month, &b.name))
        });
        let list: Arc<[Arc<Tier>]> = tiers.into_iter().map(Arc::new).collect();
        *self.tiers.write().unwrap_or_else(|e| e.into_inner()) = list;
    }

    /// Every tier, cheapest first (a snapshot).
    pub fn all(&self) -> Arc<[Arc<Tier>]> {
        self.tiers.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A tier by name.
    pub fn get(&self, name: &str) -> Option<Arc<Tier>> {
        self.all().iter().find(|t| t.name == name).cloned()
    }

    /// Names of every tier, cheapest first.
    pub fn names(&self) -> Vec<String> {
        self.all().iter().map(|t| t.name.clone()).collect()
    }

    /// The cheapest tier above `current` (more expensive, or listed after it at the same
    /// price) for which `allows` holds: the upgrade to suggest when `current` refuses something.
    pub fn upgrade(&self, current: &str, allows: impl Fn(&Tier) -> bool) -> Option<Arc<Tier>> {
        let all = self.all();
        let start = all.iter().position(|t| t.name == current)? + 1;
        all[start..].iter().find(|t| allows(t)).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tier(name: &str, price: i64, sims: Option<u64>) -> Tier {
        Tier {
            name: name.into(),
            display_name: name.into(),
            price_cents_per_month: price,
            monthly_simulations: sims,
            max_paths: 1,
            max_work: 1,
            burst_per_second: 1,
            burst_size: 1,
            max_concurrent_simulations: 1,
            max_api_keys: None,
            overage_cents_per_simulation: None,
            trial_days: None,
        }
    }

    #[test]
    fn catalogue_is_cheapest_first_and_finds_upgrades() {
        let c = TierCatalog::new(vec![
            tier("pro", 49_900, Some(10_000)),
            tier("trial", 0, Some(100)),
            tier("ent", 299_900, None),
        ]);
        assert_eq!(c.names(), ["trial", "pro", "ent"]);
        let more = c.upgrade("trial", |t| t.monthly_simulations.is_none_or(|m| m > 100));
        assert_eq!(more.unwrap().name, "pro");
        assert_eq!(c.upgrade("pro", |_| true).unwrap().name, "ent");
        assert!(
            c.upgrade("trial", |t| t.price_cents_per_month > 1_000_000)
                .is_none()
        );
        assert!(c.upgrade("nope", |_| true).is_none());
        c.replace(vec![tier("only", 1, None)]);
        assert_eq!(c.get("only").unwrap().price_cents_per_month, 1);
        assert!(c.get("trial").is_none());
    }
}
