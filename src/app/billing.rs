//! Billing with Stripe: customers, Checkout and the Billing Portal, plan changes, cancellation,
//! verified webhooks that drive the tenant's tier, the overage invoice item, and revenue figures.
//! Every Stripe call goes through [`StripeApi`] (the one adapter); every query through
//! `db::billing`.
//!
//! # States
//! A tenant's billing status (`platform.billing_accounts.billing_status`) and what it does to the
//! tenant row (`platform.tenants`, whose trigger tells every instance):
//!
//! | status | entered when | tenant |
//! |---|---|---|
//! | `trial` | signup (no billing row yet) | the trial tier and its end date, as before billing |
//! | `pending_payment` | a Checkout Session was created, or the subscription is `incomplete` | unchanged (trial limits) |
//! | `active` | the subscription is `active` or `trialing` | the subscribed tier |
//! | `past_due` | the subscription is `past_due` (a payment failed) | keeps the paid tier until `grace_until` (`BILLING_GRACE_DAYS`); keys keep working, responses carry a `Warning` header |
//! | `suspended` | grace over, or the subscription is `unpaid` | the trial tier with its trial ended now: simulations answer 402, reads, keys and billing still work |
//! | `cancelled` | the subscription was deleted (period over) or the customer was deleted | the trial tier (its original trial end): data kept |
//!
//! A successful payment (`invoice.paid`) re-reads the subscription and returns to `active`.
//! Every change of status is written to `platform.billing_audit` with the event id.

use super::directory::TenantDirectory;
use super::stripe_api::{StripeApi, Subscription};
use crate::clock::SharedClock;
use crate::config::{BillingSettings, Secret};
use crate::db::billing::{self as store, BillingAccount, PlatformTx};
use crate::db::{Db, TenantContext, users};
use crate::domain::{TenantId, Tier};
use crate::error::AppError;
use crate::quota::{Period, Quotas};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::Value;
use std::sync::Arc;

/// Invoices shown by `GET /api/v1/billing`.
const INVOICES_SHOWN: i64 = 10;

/// The service.
pub struct BillingService {
    db: Db,
    directory: Arc<TenantDirectory>,
    quotas: Arc<Quotas>,
    clock: SharedClock,
    /// `PUBLIC_URL`: the base of the return URLs given to Checkout and the Portal.
    public_url: String,
    stripe: Option<Configured>,
}

struct Configured {
    api: StripeApi,
    secrets: Vec<Secret<String>>,
    grace: Duration,
}

/// What `GET /api/v1/billing` shows.
#[derive(Debug, Clone)]
pub struct BillingOverview {
    /// The tenant's current tier.
    pub tier: String,
    /// Billing status (see the module's table).
    pub status: String,
    /// Stripe customer, once created.
    pub customer_id: Option<String>,
    /// Subscription, once there is one.
    pub subscription_id: Option<String>,
    /// Stripe's subscription status.
    pub subscription_status: Option<String>,
    /// Current period start.
    pub current_period_start: Option<DateTime<Utc>>,
    /// Current period end.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Cancels at period end.
    pub cancel_at_period_end: bool,
    /// `past_due`: the paid tier is kept until then.
    pub grace_until: Option<DateTime<Utc>>,
    /// Quota period (`YYYY-MM`).
    pub period: String,
    /// Simulations beyond the quota so far this period.
    pub overage_simulations: u64,
    /// Their price so far, cents.
    pub overage_amount_cents: i64,
    /// Latest invoices, newest first.
    pub invoices: Vec<InvoiceSummary>,
}

/// One invoice.
#[derive(Debug, Clone)]
pub struct InvoiceSummary {
    /// `in_…`.
    pub id: String,
    /// Number (absent on drafts).
    pub number: Option<String>,
    /// Amount due, cents.
    pub amount_cents: i64,
    /// Currency.
    pub currency: String,
    /// Stripe's status.
    pub status: String,
    /// Stripe-hosted page.
    pub hosted_url: Option<String>,
    /// Creation time.
    pub created: Option<DateTime<Utc>>,
}

/// What a webhook delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookOutcome {
    /// Event id.
    pub event_id: String,
    /// Event type.
    pub event_type: String,
    /// `false` when the event id had been processed before (nothing changed).
    pub first_delivery: bool,
    /// What the event did.
    pub outcome: String,
}

/// Revenue per tier.
#[derive(Debug, Clone)]
pub struct TierRevenue {
    /// Tier.
    pub tier: String,
    /// Monthly price, cents.
    pub price_cents: i64,
    /// Tenants paying (active).
    pub active: i64,
    /// Tenants past due.
    pub past_due: i64,
    /// Monthly recurring revenue, cents (active + past due).
    pub mrr_cents: i64,
}

/// The admin revenue summary.
#[derive(Debug, Clone)]
pub struct Revenue {
    /// Per paid tier.
    pub by_tier: Vec<TierRevenue>,
    /// Σ MRR, cents.
    pub mrr_cents: i64,
    /// Tenants per billing status.
    pub tenants_by_status: Vec<(String, i64)>,
    /// Quota period.
    pub period: String,
    /// Overage simulations of paying tenants this period.
    pub overage_simulations: u64,
    /// Their price, cents.
    pub overage_amount_cents: i64,
    /// This period: tenants that started paying.
    pub new_subscriptions: i64,
    /// This period: plan changes to a dearer tier.
    pub upgrades: i64,
    /// This period: plan changes to a cheaper tier.
    pub downgrades: i64,
    /// This period: subscriptions that ended.
    pub churned: i64,
}

/// One tenant's billing, for platform admins.
#[derive(Debug, Clone)]
pub struct TenantBilling {
    /// The billing row.
    pub row: store::TenantBillingRow,
    /// Overage simulations this period.
    pub overage_simulations: u64,
    /// Their price, cents.
    pub overage_amount_cents: i64,
}

/// The admin billing summary: the revenue figures and a page of per-tenant detail.
#[derive(Debug, Clone)]
pub struct BillingSummary {
    /// Platform-wide figures.
    pub revenue: Revenue,
    /// Tenants (by slug) of this page.
    pub tenants: Vec<TenantBilling>,
    /// Tenants in all.
    pub total_tenants: i64,
}

fn ts(secs: Option<i64>) -> Option<DateTime<Utc>> {
    secs.and_then(|s| Utc.timestamp_opt(s, 0).single())
}

/// Stripe's clock resolution is a second: a state read from Stripe now counts as seen in this
/// second, so an event created in the same second still applies.
fn stripe_now() -> DateTime<Utc> {
    ts(Some(Utc::now().timestamp())).unwrap_or_else(Utc::now)
}

fn not_configured() -> AppError {
    AppError::client_status(
        503,
        "billing-not-configured",
        "billing is not configured on this service (STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are unset)",
    )
}

/// The billing status a Stripe subscription status leads to.
fn status_of(stripe_status: &str) -> &'static str {
    match stripe_status {
        "active" | "trialing" => "active",
        "past_due" => "past_due",
        "unpaid" => "suspended",
        "canceled" | "incomplete_expired" => "cancelled",
        _ => "pending_payment",
    }
}

/// The subscription fields we apply, from Stripe's object (API or event).
#[derive(Debug, Clone)]
struct SubState {
    id: String,
    customer: String,
    status: String,
    price: Option<String>,
    start: Option<i64>,
    end: Option<i64>,
    cancel_at_period_end: bool,
}

impl From<&Subscription> for SubState {
    fn from(s: &Subscription) -> Self {
        let (start, end) = s.period();
        Self {
            id: s.id.clone(),
            customer: s.customer.clone(),
            status: s.status.clone(),
            price: s.price_id().map(str::to_string),
            start,
            end,
            cancel_at_period_end: s.cancel_at_period_end.unwrap_or(false),
        }
    }
}

impl SubState {
    /// From an event's `data.object` (a subscription).
    fn from_json(o: &Value) -> Option<Self> {
        let item = o.pointer("/items/data/0");
        let price = item
            .and_then(|i| i.pointer("/price/id").or(i.pointer("/plan/id")))
            .or(o.pointer("/plan/id"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let secs = |k: &str| {
            o.get(k)
                .and_then(Value::as_i64)
                .or(item.and_then(|i| i.get(k)).and_then(Value::as_i64))
        };
        Some(Self {
            id: o.get("id")?.as_str()?.to_string(),
            customer: o.get("customer")?.as_str()?.to_string(),
            status: o.get("status")?.as_str()?.to_string(),
            price,
            start: secs("current_period_start"),
            end: secs("current_period_end"),
            cancel_at_period_end: o
                .get("cancel_at_period_end")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// A verified event, as much of it as we read.
struct Event<'a> {
    id: &'a str,
    type_: &'a str,
    created: DateTime<Utc>,
    object: &'a Value,
}

impl BillingService {
    /// The service; `settings = None` leaves billing off (its operations answer 503). A Stripe
    /// client that cannot be built is logged as an error and leaves billing off too.
    pub fn new(
        db: Db,
        directory: Arc<TenantDirectory>,
        quotas: Arc<Quotas>,
        clock: SharedClock,
        public_url: String,
        settings: Option<&BillingSettings>,
    ) -> Self {
        let stripe = settings.and_then(|s| {
            match StripeApi::new(s.secret_key.expose(), s.api_base.as_deref()) {
                Ok(api) => Some(Configured {
                    api,
                    secrets: s.webhook_secrets.clone(),
                    grace: s.grace,
                }),
                Err(e) => {
                    tracing::error!(error = ?e, "the Stripe client could not be built: billing is off");
                    None
                }
            }
        });
        Self {
            db,
            directory,
            quotas,
            clock,
            public_url,
            stripe,
        }
    }

    /// Is billing configured?
    pub fn enabled(&self) -> bool {
        self.stripe.is_some()
    }

    fn cfg(&self) -> Result<&Configured, AppError> {
        self.stripe.as_ref().ok_or_else(not_configured)
    }

    /// `path` on the tenant's public URL (`PUBLIC_URL` with `{tenant}` = `slug`): where Stripe
    /// sends the browser back to.
    fn tenant_url(&self, slug: &str, path: &str) -> String {
        format!("{}{path}", self.public_url.replace("{tenant}", slug))
    }

    /// The tenant's Stripe customer, created on the first billing action (email of the caller,
    /// tenant id and slug in its metadata; the idempotency key makes concurrent first actions
    /// share one customer).
    async fn customer(&self, cfg: &Configured, ctx: &TenantContext) -> Result<String, AppError> {
        let tenant = ctx.tenant();
        if let Some(id) = store::get(&self.db, tenant.id)
            .await?
            .and_then(|a| a.customer_id)
        {
            return Ok(id);
        }
        let user_id = ctx.require_manager()?;
        let mut tx = ctx.begin(&self.db).await?;
        let user = users::get(&mut tx, user_id).await?;
        tx.commit().await?;
        let email = user
            .map(|u| u.email)
            .ok_or_else(|| AppError::unauthorized("the user of this token no longer exists"))?;
        let created = cfg
            .api
            .create_customer(
                &email,
                &tenant.display_name,
                &tenant.id.to_string(),
                tenant.slug.as_str(),
                &format!("customer-{}", tenant.id),
            )
            .await?;
        Ok(store::set_customer(&self.db, tenant.id, &created.id, self.clock.now()).await?)
    }

    async fn price_of(&self, tier: &str) -> Result<Option<String>, AppError> {
        Ok(store::tier_prices(&self.db)
            .await?
            .into_iter()
            .find(|(t, _)| t == tier)
            .map(|(_, p)| p))
    }

    fn paid_tier(&self, name: &str) -> Result<Arc<Tier>, AppError> {
        let tiers = self.directory.tiers();
        match tiers.get(name) {
            Some(t) if t.price_cents_per_month > 0 => Ok(t),
            _ => {
                let paid: Vec<String> = tiers
                    .all()
                    .iter()
                    .filter(|t| t.price_cents_per_month > 0)
                    .map(|t| t.name.clone())
                    .collect();
                Err(AppError::validation(
                    "tier",
                    format!("{name:?} is not a paid tier; one of {}", paid.join(", ")),
                ))
            }
        }
    }

    async fn priced_tier(&self, name: &str) -> Result<String, AppError> {
        self.paid_tier(name)?;
        self.price_of(name).await?.ok_or_else(|| {
            AppError::conflict(format!(
                "tier {name:?} has no Stripe price yet: an operator must run `montecarlo-platform billing sync-catalog`"
            ))
        })
    }

    /// A Checkout Session to subscribe to `tier` (owner or admin).
    ///
    /// # Errors
    /// 503 when billing is off; 403 for other callers or while the owner's address is not
    /// verified; 422 for an unknown or free tier; 409 when the tenant already has a
    /// subscription (change it instead) or the tier has no price.
    pub async fn checkout(&self, ctx: &TenantContext, tier: &str) -> Result<String, AppError> {
        let cfg = self.cfg()?;
        ctx.require_manager()?;
        super::credentials::require_verified_owner(&self.db, ctx, "start a paid plan").await?;
        let price = self.priced_tier(tier).await?;
        let tenant = ctx.tenant();
        if let Some(a) = store::get(&self.db, tenant.id).await?
            && matches!(a.billing_status.as_str(), "active" | "past_due")
        {
            return Err(AppError::conflict(format!(
                "tenant {:?} already has a {} subscription ({}); change its plan with PUT /api/v1/billing/subscription",
                tenant.slug.as_str(),
                a.billing_status,
                a.subscribed_tier.unwrap_or_default()
            )));
        }
        let customer = self.customer(cfg, ctx).await?;
        // Repeated clicks within ten minutes get the same session.
        let window = Utc::now().timestamp() / 600;
        let session = cfg
            .api
            .checkout_session(
                &customer,
                &price,
                &tenant.id.to_string(),
                &self.tenant_url(
                    tenant.slug.as_str(),
                    "/billing/success?session_id={CHECKOUT_SESSION_ID}",
                ),
                &self.tenant_url(tenant.slug.as_str(), "/billing/cancelled"),
                &format!("checkout-{}-{tier}-{window}", tenant.id),
            )
            .await?;
        let url = session.url.ok_or_else(|| {
            AppError::internal(format!("checkout session {} has no url", session.id))
        })?;
        store::mark_pending(&self.db, tenant.id, self.clock.now()).await?;
        Ok(url)
    }

    /// A Billing Portal session URL (owner or admin).
    ///
    /// # Errors
    /// 503 when billing is off; 403 for other callers.
    pub async fn portal(&self, ctx: &TenantContext) -> Result<String, AppError> {
        let cfg = self.cfg()?;
        ctx.require_manager()?;
        let customer = self.customer(cfg, ctx).await?;
        let session = cfg
            .api
            .portal_session(
                &customer,
                &self.tenant_url(ctx.tenant().slug.as_str(), "/billing"),
            )
            .await?;
        session
            .url
            .ok_or_else(|| AppError::internal(format!("portal session {} has no url", session.id)))
    }

    async fn current_subscription(
        &self,
        ctx: &TenantContext,
    ) -> Result<(BillingAccount, String), AppError> {
        let a = store::get(&self.db, ctx.tenant().id)
            .await?
            .unwrap_or_default();
        match (&a.subscription_id, a.billing_status.as_str()) {
            (Some(id), "active" | "past_due") => {
                let id = id.clone();
                Ok((a, id))
            }
            _ => Err(AppError::conflict(format!(
                "tenant {:?} has no active subscription (billing status {}); start one with POST /api/v1/billing/checkout",
                ctx.tenant().slug.as_str(),
                if a.billing_status.is_empty() {
                    "trial"
                } else {
                    a.billing_status.as_str()
                }
            ))),
        }
    }

    /// Moves the subscription to `tier` with proration; applied at once.
    ///
    /// # Errors
    /// 503 when billing is off; 403; 422 for an unknown tier; 409 without an active subscription.
    pub async fn change_plan(
        &self,
        ctx: &TenantContext,
        tier: &str,
    ) -> Result<BillingOverview, AppError> {
        let cfg = self.cfg()?;
        ctx.require_manager()?;
        let price = self.priced_tier(tier).await?;
        let (_, sub_id) = self.current_subscription(ctx).await?;
        let sub = cfg.api.subscription(&sub_id).await?;
        let item = sub
            .item_id()
            .ok_or_else(|| AppError::internal(format!("subscription {sub_id} has no item")))?;
        if sub.price_id() != Some(price.as_str()) {
            let key = format!("plan-{sub_id}-{price}-{}", Utc::now().timestamp() / 60);
            let updated = cfg.api.change_plan(&sub_id, item, &price, &key).await?;
            self.apply_now(ctx.tenant().id, &updated).await?;
        }
        self.overview(ctx).await
    }

    /// Cancels at the period's end (`cancel = true`) or resumes (`false`); applied at once.
    ///
    /// # Errors
    /// 503 when billing is off; 403; 409 without an active subscription.
    pub async fn set_cancel(
        &self,
        ctx: &TenantContext,
        cancel: bool,
    ) -> Result<BillingOverview, AppError> {
        let cfg = self.cfg()?;
        ctx.require_manager()?;
        let (_, sub_id) = self.current_subscription(ctx).await?;
        let updated = cfg.api.set_cancel_at_period_end(&sub_id, cancel).await?;
        self.apply_now(ctx.tenant().id, &updated).await?;
        self.overview(ctx).await
    }

    /// Applies a subscription Stripe just returned (Stripe's clock: now).
    async fn apply_now(&self, tenant: TenantId, sub: &Subscription) -> Result<(), AppError> {
        let cfg = self.cfg()?;
        let now = self.clock.now();
        let mut tx = store::begin(&self.db).await?;
        let mut a = store::lock(&mut tx, tenant, now).await?;
        self.apply_subscription(
            cfg,
            &mut tx,
            tenant,
            &mut a,
            &sub.into(),
            stripe_now(),
            None,
            now,
        )
        .await?;
        tx.commit().await?;
        self.directory.refresh(tenant).await?;
        Ok(())
    }

    /// The tenant's billing overview (owner or admin). Applies an expired grace period first.
    ///
    /// # Errors
    /// 503 when billing is off or Stripe is unreachable; 403 for other callers.
    pub async fn overview(&self, ctx: &TenantContext) -> Result<BillingOverview, AppError> {
        let cfg = self.cfg()?;
        ctx.require_manager()?;
        let tenant_id = ctx.tenant().id;
        let now = self.clock.now();
        let mut a = store::get(&self.db, tenant_id).await?.unwrap_or_default();
        if a.billing_status == "past_due" && a.grace_until.is_some_and(|g| g <= now) {
            self.expire_grace_of(tenant_id).await?;
            a = store::get(&self.db, tenant_id).await?.unwrap_or_default();
        }
        if a.billing_status.is_empty() {
            a.billing_status = "trial".into();
        }
        let tenant = self
            .directory
            .refresh(tenant_id)
            .await?
            .unwrap_or_else(|| ctx.tenant().clone());
        let usage = self.quotas.period_usage(tenant_id, &tenant.tier).await;
        // The live counters, or the durable copy in PostgreSQL if higher (Redis keys lost).
        let durable = crate::db::quota_counters::usage(
            &self.db,
            tenant_id,
            self.quotas.current_period().key(),
        )
        .await?
        .map_or(0, |(_, overage)| overage.max(0) as u64);
        let overage = usage.overage.max(durable);
        let cents = tenant.tier.overage_cents_per_simulation.unwrap_or(0);
        let invoices = match &a.customer_id {
            None => Vec::new(),
            Some(c) => cfg
                .api
                .invoices(c, INVOICES_SHOWN)
                .await?
                .into_iter()
                .map(|i| InvoiceSummary {
                    id: i.id,
                    number: i.number,
                    amount_cents: i.amount_due.or(i.amount_paid).unwrap_or(0),
                    currency: i.currency.unwrap_or_else(|| "usd".into()),
                    status: i.status.unwrap_or_else(|| "unknown".into()),
                    hosted_url: i.hosted_invoice_url,
                    created: ts(i.created),
                })
                .collect(),
        };
        Ok(BillingOverview {
            tier: tenant.tier.name.clone(),
            status: a.billing_status,
            customer_id: a.customer_id,
            subscription_id: a.subscription_id,
            subscription_status: a.subscription_status,
            current_period_start: a.current_period_start,
            current_period_end: a.current_period_end,
            cancel_at_period_end: a.cancel_at_period_end,
            grace_until: a.grace_until,
            period: usage.period,
            overage_simulations: overage,
            overage_amount_cents: i64::try_from(overage).unwrap_or(i64::MAX) * cents,
            invoices,
        })
    }

    /// Suspends every `past_due` tenant whose grace ended (a periodic task and
    /// `GET /api/v1/billing` call this). Returns how many were suspended.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn expire_grace(&self) -> Result<usize, AppError> {
        if self.stripe.is_none() {
            return Ok(0);
        }
        let mut n = 0;
        for tenant in store::grace_expired(&self.db, self.clock.now()).await? {
            if self.expire_grace_of(tenant).await? {
                n += 1;
            }
        }
        Ok(n)
    }

    async fn expire_grace_of(&self, tenant: TenantId) -> Result<bool, AppError> {
        let now = self.clock.now();
        let mut tx = store::begin(&self.db).await?;
        let mut a = store::lock(&mut tx, tenant, now).await?;
        if a.billing_status != "past_due" || a.grace_until.is_none_or(|g| g > now) {
            return Ok(false);
        }
        self.transition(&mut tx, tenant, &mut a, "suspended", None, now)
            .await?;
        store::save(&mut tx, tenant, &a, None, now).await?;
        tx.commit().await?;
        self.directory.refresh(tenant).await?;
        Ok(true)
    }

    /// Moves the billing status to `to` and the tenant row with it; audited.
    async fn transition(
        &self,
        tx: &mut PlatformTx,
        tenant: TenantId,
        a: &mut BillingAccount,
        to: &str,
        event_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(), AppError> {
        let trial = self.trial_tier();
        let tier = match to {
            "active" | "past_due" => a.subscribed_tier.clone().unwrap_or_else(|| trial.clone()),
            _ => trial.clone(),
        };
        match to {
            "active" | "past_due" => store::set_tenant_tier(tx, tenant, &tier, None, now).await?,
            // Trial limits with the trial over: simulations answer 402, reads keep working.
            "suspended" => store::set_tenant_tier(tx, tenant, &trial, Some(now), now).await?,
            "cancelled" => store::set_tenant_tier(tx, tenant, &trial, None, now).await?,
            _ => {}
        }
        if to != "past_due" {
            a.grace_until = None;
        }
        let from = if a.billing_status.is_empty() {
            "trial".to_string()
        } else {
            a.billing_status.clone()
        };
        if from != to {
            store::touch_tenant(tx, tenant, now).await?;
            store::audit(tx, tenant, now, &from, to, &tier, None, event_id).await?;
            tracing::info!(%tenant, from, to, tier, event_id, "billing status changed");
        }
        a.billing_status = to.to_string();
        Ok(())
    }

    fn trial_tier(&self) -> String {
        self.directory
            .tiers()
            .all()
            .iter()
            .find(|t| t.trial_days.is_some())
            .map(|t| t.name.clone())
            .unwrap_or_else(|| "trial".into())
    }

    /// Applies a subscription state seen at `seen_at` (Stripe's clock) unless a newer one was
    /// applied already. Returns the outcome.
    #[allow(clippy::too_many_arguments)]
    async fn apply_subscription(
        &self,
        cfg: &Configured,
        tx: &mut PlatformTx,
        tenant: TenantId,
        a: &mut BillingAccount,
        sub: &SubState,
        seen_at: DateTime<Utc>,
        event_id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<String, AppError> {
        if a.state_event_at.is_some_and(|t| t > seen_at) {
            return Ok(format!(
                "stale: a newer subscription state (of {}) was applied",
                a.state_event_at.map(|t| t.to_rfc3339()).unwrap_or_default()
            ));
        }
        if let Some(current) = &a.subscription_id
            && current != &sub.id
            && matches!(a.billing_status.as_str(), "active" | "past_due")
            && status_of(&sub.status) != "active"
        {
            return Ok(format!(
                "ignored: subscription {} is not the tenant's current one ({current})",
                sub.id
            ));
        }
        let prices = store::tier_prices(&self.db).await?;
        let tier = sub
            .price
            .as_ref()
            .and_then(|p| prices.iter().find(|(_, price)| price == p))
            .map(|(t, _)| t.clone());
        let Some(tier) = tier else {
            return Ok(format!(
                "ignored: price {:?} is not in the catalogue",
                sub.price
            ));
        };
        let to = status_of(&sub.status);
        let previous = (a.billing_status.clone(), a.subscribed_tier.clone());
        a.customer_id = Some(sub.customer.clone());
        a.subscription_id = Some(sub.id.clone());
        a.subscription_status = Some(sub.status.clone());
        a.subscribed_tier = Some(tier.clone());
        a.current_period_start = ts(sub.start);
        a.current_period_end = ts(sub.end);
        a.cancel_at_period_end = sub.cancel_at_period_end;
        a.state_event_at = Some(seen_at);
        if to == "past_due" && a.grace_until.is_none() {
            a.grace_until = Some(now + cfg.grace);
        }
        if to == "pending_payment" && a.billing_status != "pending_payment" {
            // An incomplete subscription changes nothing the tenant can use.
            a.billing_status = "pending_payment".into();
        } else {
            self.transition(tx, tenant, a, to, event_id, now).await?;
        }
        if previous.0 == to
            && matches!(to, "active" | "past_due")
            && previous.1.as_deref().is_some_and(|p| p != tier)
        {
            // A plan change: the tier moved, the status did not.
            store::audit(
                tx,
                tenant,
                now,
                to,
                to,
                &tier,
                previous.1.as_deref(),
                event_id,
            )
            .await?;
        }
        store::save(tx, tenant, a, event_id, now).await?;
        Ok(format!(
            "applied: subscription {} {} → {to} on {tier}",
            sub.id, sub.status
        ))
    }

    /// Verifies and processes one webhook delivery.
    ///
    /// # Errors
    /// 503 when billing is off; 400 when the signature is missing, matches no configured secret,
    /// or is older than 300 s, and when the payload is not a Stripe event.
    pub async fn webhook(
        &self,
        payload: &str,
        signature: Option<&str>,
    ) -> Result<WebhookOutcome, AppError> {
        let cfg = self.cfg()?;
        let signature = signature
            .ok_or_else(|| AppError::bad_request("the Stripe-Signature header is missing"))?;
        verify(cfg, payload, signature)?;
        let v: Value = serde_json::from_str(payload)
            .map_err(|e| AppError::bad_request(format!("the event is not JSON: {e}")))?;
        let (Some(id), Some(type_), Some(created), Some(object)) = (
            v.get("id").and_then(Value::as_str),
            v.get("type").and_then(Value::as_str),
            v.get("created")
                .and_then(Value::as_i64)
                .and_then(|s| ts(Some(s))),
            v.pointer("/data/object"),
        ) else {
            return Err(AppError::bad_request(
                "the event lacks id, type, created or data.object",
            ));
        };
        let ev = Event {
            id,
            type_,
            created,
            object,
        };
        let now = self.clock.now();
        let mut tx = store::begin(&self.db).await?;
        if !store::claim_event(&mut tx, id, type_, created, now).await? {
            let outcome = store::event_outcome(&self.db, id)
                .await?
                .unwrap_or_default();
            return Ok(WebhookOutcome {
                event_id: id.into(),
                event_type: type_.into(),
                first_delivery: false,
                outcome: format!("already processed ({outcome})"),
            });
        }
        let (tenant, outcome) = self.dispatch(cfg, &mut tx, &ev, now).await?;
        store::finish_event(&mut tx, id, tenant, &outcome).await?;
        tx.commit().await?;
        // This instance at once; the others through the tenants trigger's NOTIFY.
        if let Some(t) = tenant {
            self.directory.refresh(t).await?;
        }
        tracing::info!(
            event_id = id,
            event_type = type_,
            outcome,
            "stripe event processed"
        );
        Ok(WebhookOutcome {
            event_id: id.into(),
            event_type: type_.into(),
            first_delivery: true,
            outcome,
        })
    }

    async fn tenant_of(
        &self,
        tx: &mut PlatformTx,
        object: &Value,
        customer_key: &str,
    ) -> Result<Option<TenantId>, AppError> {
        match object.get(customer_key).and_then(Value::as_str) {
            Some(c) => Ok(store::tenant_of_customer(tx, c).await?),
            None => Ok(None),
        }
    }

    async fn dispatch(
        &self,
        cfg: &Configured,
        tx: &mut PlatformTx,
        ev: &Event<'_>,
        now: DateTime<Utc>,
    ) -> Result<(Option<TenantId>, String), AppError> {
        let o = ev.object;
        match ev.type_ {
            "checkout.session.completed" => {
                let tenant = match o
                    .get("client_reference_id")
                    .and_then(Value::as_str)
                    .and_then(|s| TenantId::parse(s).ok())
                {
                    Some(t) if store::tenant_exists(tx, t).await? => Some(t),
                    _ => self.tenant_of(tx, o, "customer").await?,
                };
                let Some(tenant) = tenant else {
                    return Ok((None, "ignored: unknown tenant".into()));
                };
                let Some(sub_id) = o.get("subscription").and_then(Value::as_str) else {
                    return Ok((
                        Some(tenant),
                        "ignored: no subscription on the session".into(),
                    ));
                };
                let sub = cfg.api.subscription(sub_id).await?;
                let mut a = store::lock(tx, tenant, now).await?;
                let out = self
                    .apply_subscription(
                        cfg,
                        tx,
                        tenant,
                        &mut a,
                        &(&sub).into(),
                        stripe_now().max(ev.created),
                        Some(ev.id),
                        now,
                    )
                    .await?;
                Ok((Some(tenant), out))
            }
            "customer.subscription.created"
            | "customer.subscription.updated"
            | "customer.subscription.deleted" => {
                let Some(mut sub) = SubState::from_json(o) else {
                    return Err(AppError::bad_request(
                        "the event's subscription lacks id, customer or status",
                    ));
                };
                if ev.type_ == "customer.subscription.deleted" {
                    sub.status = "canceled".into();
                }
                let Some(tenant) = store::tenant_of_customer(tx, &sub.customer).await? else {
                    return Ok((None, "ignored: unknown customer".into()));
                };
                let mut a = store::lock(tx, tenant, now).await?;
                let out = self
                    .apply_subscription(cfg, tx, tenant, &mut a, &sub, ev.created, Some(ev.id), now)
                    .await?;
                Ok((Some(tenant), out))
            }
            "invoice.paid" | "invoice.payment_succeeded" | "invoice.payment_failed" => {
                let Some(tenant) = self.tenant_of(tx, o, "customer").await? else {
                    return Ok((None, "ignored: unknown customer".into()));
                };
                let sub_id = o.get("subscription").and_then(Value::as_str).or(o
                    .pointer("/parent/subscription_details/subscription")
                    .and_then(Value::as_str));
                let Some(sub_id) = sub_id else {
                    return Ok((Some(tenant), "ignored: not a subscription invoice".into()));
                };
                // The subscription as Stripe has it now decides (order-proof).
                let sub = cfg.api.subscription(sub_id).await?;
                let mut a = store::lock(tx, tenant, now).await?;
                let out = self
                    .apply_subscription(
                        cfg,
                        tx,
                        tenant,
                        &mut a,
                        &(&sub).into(),
                        stripe_now().max(ev.created),
                        Some(ev.id),
                        now,
                    )
                    .await?;
                Ok((Some(tenant), out))
            }
            "invoice.created" => {
                let Some(tenant) = self.tenant_of(tx, o, "customer").await? else {
                    return Ok((None, "ignored: unknown customer".into()));
                };
                let out = self.bill_overage(cfg, tx, tenant, o, now).await?;
                Ok((Some(tenant), out))
            }
            "customer.deleted" => {
                let Some(customer) = o.get("id").and_then(Value::as_str) else {
                    return Err(AppError::bad_request("the event's customer lacks an id"));
                };
                let Some(tenant) = store::tenant_of_customer(tx, customer).await? else {
                    return Ok((None, "ignored: unknown customer".into()));
                };
                let mut a = store::lock(tx, tenant, now).await?;
                self.transition(tx, tenant, &mut a, "cancelled", Some(ev.id), now)
                    .await?;
                a.customer_id = None;
                a.subscription_id = None;
                a.subscription_status = None;
                a.cancel_at_period_end = false;
                store::save(tx, tenant, &a, Some(ev.id), now).await?;
                Ok((
                    Some(tenant),
                    format!("applied: customer {customer} deleted → cancelled"),
                ))
            }
            other => Ok((None, format!("ignored: {other} is not handled"))),
        }
    }

    /// On a draft invoice of a paying tenant: one invoice item for the overage of the quota
    /// period before the current one (`overage × price`), at most once per (tenant, period):
    /// a `billing_overage` row in this transaction, and a Stripe idempotency key derived from
    /// (tenant, period) in case the transaction is retried after Stripe answered.
    async fn bill_overage(
        &self,
        cfg: &Configured,
        tx: &mut PlatformTx,
        tenant: TenantId,
        invoice: &Value,
        now: DateTime<Utc>,
    ) -> Result<String, AppError> {
        let (Some(invoice_id), Some(customer)) = (
            invoice.get("id").and_then(Value::as_str),
            invoice.get("customer").and_then(Value::as_str),
        ) else {
            return Err(AppError::bad_request(
                "the event's invoice lacks id or customer",
            ));
        };
        if invoice.get("status").and_then(Value::as_str) != Some("draft") {
            return Ok(format!("ignored: invoice {invoice_id} is not a draft"));
        }
        let a = store::lock(tx, tenant, now).await?;
        if !matches!(a.billing_status.as_str(), "active" | "past_due") {
            return Ok(format!("ignored: tenant is {}", a.billing_status));
        }
        let current = Period::containing(now);
        let previous = Period::containing(current.starts_at() - Duration::seconds(1));
        if store::overage_billed(tx, tenant, previous.key()).await? {
            return Ok(format!(
                "ignored: overage of {} already billed",
                previous.key()
            ));
        }
        // The durable totals (PostgreSQL, copied from Redis every minute), else the live store's.
        let durable = crate::db::quota_counters::usage(&self.db, tenant, previous.key())
            .await?
            .map_or(0, |(_, overage)| overage.max(0) as u64);
        let live = self
            .quotas
            .counts_in(tenant, &previous)
            .await
            .map_err(AppError::internal)?
            .overage;
        let counts = crate::quota::Counts {
            used: 0,
            overage: durable.max(live),
        };
        let tier = a
            .subscribed_tier
            .as_deref()
            .and_then(|t| self.directory.tiers().get(t));
        let cents = tier
            .and_then(|t| t.overage_cents_per_simulation)
            .unwrap_or(0);
        let simulations = i64::try_from(counts.overage).unwrap_or(i64::MAX);
        let amount = simulations.saturating_mul(cents);
        if amount == 0 {
            return Ok(format!("no overage in {}", previous.key()));
        }
        let item = cfg
            .api
            .add_invoice_item(
                customer,
                invoice_id,
                amount,
                &format!(
                    "Overage {}: {simulations} simulations beyond the quota × ${}.{:02}",
                    previous.key(),
                    cents / 100,
                    cents % 100
                ),
                &format!("overage-{tenant}-{}", previous.key()),
            )
            .await?;
        store::insert_overage(
            tx,
            tenant,
            previous.key(),
            simulations,
            amount,
            invoice_id,
            Some(&item.id),
            now,
        )
        .await?;
        Ok(format!(
            "applied: overage {} of {simulations} simulations = {amount} cents on {invoice_id}",
            previous.key()
        ))
    }

    /// Revenue for platform admins.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn revenue(&self) -> Result<Revenue, AppError> {
        let by_tier: Vec<TierRevenue> = store::revenue_by_tier(&self.db)
            .await?
            .into_iter()
            .map(|(tier, price, active, past_due)| TierRevenue {
                mrr_cents: price * (active + past_due),
                tier,
                price_cents: price,
                active,
                past_due,
            })
            .collect();
        let period = self.quotas.current_period();
        let mut overage_simulations = 0u64;
        let mut overage_amount_cents = 0i64;
        for (tenant, tier) in store::paying_tenants(&self.db).await? {
            let counts = self
                .quotas
                .counts_in(TenantId::from_uuid(tenant), &period)
                .await
                .map_err(AppError::internal)?;
            let cents = self
                .directory
                .tiers()
                .get(&tier)
                .and_then(|t| t.overage_cents_per_simulation)
                .unwrap_or(0);
            overage_simulations += counts.overage;
            overage_amount_cents += i64::try_from(counts.overage).unwrap_or(i64::MAX) * cents;
        }
        let (new_subscriptions, upgrades, downgrades, churned) =
            store::movements(&self.db, period.starts_at()).await?;
        Ok(Revenue {
            new_subscriptions,
            upgrades,
            downgrades,
            churned,
            mrr_cents: by_tier.iter().map(|t| t.mrr_cents).sum(),
            by_tier,
            tenants_by_status: store::tenants_by_status(&self.db).await?,
            period: period.key().to_string(),
            overage_simulations,
            overage_amount_cents,
        })
    }

    /// The admin billing summary: [`Self::revenue`] and the billing of `limit` tenants (by
    /// slug) from `offset`, with each one's overage this period.
    ///
    /// # Errors
    /// When PostgreSQL or the quota store fails.
    pub async fn summary(&self, limit: u32, offset: u32) -> Result<BillingSummary, AppError> {
        let revenue = self.revenue().await?;
        let period = self.quotas.current_period();
        let rows = store::tenant_details(&self.db, i64::from(limit), i64::from(offset)).await?;
        let mut tenants = Vec::with_capacity(rows.len());
        for row in rows {
            let counts = self
                .quotas
                .counts_in(TenantId::from_uuid(row.tenant_id), &period)
                .await
                .map_err(AppError::internal)?;
            let cents = self
                .directory
                .tiers()
                .get(&row.tier)
                .and_then(|t| t.overage_cents_per_simulation)
                .unwrap_or(0);
            tenants.push(TenantBilling {
                overage_amount_cents: i64::try_from(counts.overage).unwrap_or(i64::MAX) * cents,
                overage_simulations: counts.overage,
                row,
            });
        }
        let total_tenants = revenue.tenants_by_status.iter().map(|(_, n)| n).sum();
        Ok(BillingSummary {
            revenue,
            tenants,
            total_tenants,
        })
    }

    /// Creates or checks the products and monthly plans of every paid tier in Stripe (ids
    /// `mc_<tier>` and `mc_<tier>_monthly`) and records each plan on its tier. Idempotent: a
    /// second run finds everything and changes nothing. Returns one line per object.
    ///
    /// # Errors
    /// 503 when billing is off; 409 when an existing plan has another amount, currency or
    /// interval (plans are immutable: archive it in Stripe first); Stripe or database failures.
    pub async fn sync_catalog(&self) -> Result<Vec<String>, AppError> {
        let cfg = self.cfg()?;
        let mut report = Vec::new();
        for tier in self.directory.tiers().all().iter() {
            if tier.price_cents_per_month == 0 {
                continue;
            }
            let product_id = format!("mc_{}", tier.name);
            let plan_id = format!("mc_{}_monthly", tier.name);
            match cfg.api.product(&product_id).await? {
                Some(_) => report.push(format!("product {product_id}: exists")),
                None => {
                    cfg.api
                        .create_product(&product_id, &format!("Monte Carlo {}", tier.display_name))
                        .await?;
                    report.push(format!("product {product_id}: created"));
                }
            }
            match cfg.api.plan(&plan_id).await? {
                Some(p) => {
                    let same = p.amount == Some(tier.price_cents_per_month)
                        && p.currency.as_deref() == Some("usd")
                        && p.interval.as_deref() == Some("month");
                    if !same {
                        return Err(AppError::conflict(format!(
                            "plan {plan_id} exists with amount {:?} {:?} per {:?}, not {} usd per month: archive it in Stripe and run again",
                            p.amount, p.currency, p.interval, tier.price_cents_per_month
                        )));
                    }
                    report.push(format!(
                        "plan {plan_id}: exists ({} cents/month)",
                        tier.price_cents_per_month
                    ));
                }
                None => {
                    cfg.api
                        .create_monthly_plan(
                            &plan_id,
                            &product_id,
                            tier.price_cents_per_month,
                            &tier.display_name,
                        )
                        .await?;
                    report.push(format!(
                        "plan {plan_id}: created ({} cents/month)",
                        tier.price_cents_per_month
                    ));
                }
            }
            if store::set_tier_price(&self.db, &tier.name, &plan_id).await? {
                report.push(format!("tier {}: price set to {plan_id}", tier.name));
            }
        }
        Ok(report)
    }
}

/// Checks `Stripe-Signature` against every configured secret with async-stripe's verifier
/// (HMAC-SHA256 over `t.payload`, any of several `v1` signatures, 300 s tolerance against the
/// system clock). Its typed event parse is not relied on: a verified payload it cannot map onto
/// its generated types (another API version, localstripe's older objects) is still accepted,
/// and the fields we use are read from the JSON.
fn verify(cfg: &Configured, payload: &str, signature: &str) -> Result<(), AppError> {
    use stripe_webhook::{Webhook, WebhookError};
    let mut stale = None;
    for secret in &cfg.secrets {
        match Webhook::construct_event(payload, signature, secret.expose()) {
            Ok(_) | Err(WebhookError::BadParse(_)) => return Ok(()),
            Err(WebhookError::BadTimestamp(t)) => stale = Some(t),
            Err(_) => {}
        }
    }
    Err(AppError::bad_request(match stale {
        Some(t) => format!(
            "the Stripe-Signature timestamp {t} is more than 300 s away from now: a stale or replayed delivery"
        ),
        None => {
            "the Stripe-Signature matches no configured webhook secret (or is malformed)".into()
        }
    }))
}
