//! Billing tables (platform migration V4): `billing_accounts` (a tenant's Stripe customer,
//! subscription and billing state), `stripe_events` (processed event ids, written in the
//! transaction of their effect), `billing_overage` (overage billed once per tenant and period),
//! `billing_audit` (every billing transition with the event that caused it), and the Stripe
//! price of each tier (`tiers.stripe_price_id`).

use super::pool::Db;
use crate::domain::TenantId;
use chrono::{DateTime, Utc};
use sqlx::Row;

/// A transaction on the platform tables (a webhook's event id and its effect commit together).
pub type PlatformTx = super::RequestTx;

/// A tenant's billing row.
#[derive(Debug, Clone, Default)]
pub struct BillingAccount {
    /// Stripe customer.
    pub customer_id: Option<String>,
    /// Current (or last) subscription.
    pub subscription_id: Option<String>,
    /// Stripe's subscription status.
    pub subscription_status: Option<String>,
    /// Tier the subscription pays for.
    pub subscribed_tier: Option<String>,
    /// Period start.
    pub current_period_start: Option<DateTime<Utc>>,
    /// Period end.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Cancels at the period's end.
    pub cancel_at_period_end: bool,
    /// `trial`, `pending_payment`, `active`, `past_due`, `suspended`, `cancelled`.
    pub billing_status: String,
    /// End of the grace period while `past_due`.
    pub grace_until: Option<DateTime<Utc>>,
    /// `created` of the newest event applied to the subscription state.
    pub state_event_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "stripe_customer_id, subscription_id, subscription_status, subscribed_tier, \
     current_period_start, current_period_end, cancel_at_period_end, billing_status, grace_until, \
     state_event_at";

fn account(row: &sqlx::postgres::PgRow) -> Result<BillingAccount, sqlx::Error> {
    Ok(BillingAccount {
        customer_id: row.try_get("stripe_customer_id")?,
        subscription_id: row.try_get("subscription_id")?,
        subscription_status: row.try_get("subscription_status")?,
        subscribed_tier: row.try_get("subscribed_tier")?,
        current_period_start: row.try_get("current_period_start")?,
        current_period_end: row.try_get("current_period_end")?,
        cancel_at_period_end: row.try_get("cancel_at_period_end")?,
        billing_status: row.try_get("billing_status")?,
        grace_until: row.try_get("grace_until")?,
        state_event_at: row.try_get("state_event_at")?,
    })
}

/// The tenant's billing row, if it took a billing action.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn get(db: &Db, tenant: TenantId) -> Result<Option<BillingAccount>, sqlx::Error> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM platform.billing_accounts WHERE tenant_id = $1"
    )))
    .bind(tenant.as_uuid())
    .fetch_optional(&db.pool)
    .await?;
    row.as_ref().map(account).transpose()
}

/// Records the tenant's Stripe customer unless it already has one; returns the customer the
/// tenant has now (the first one written wins).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn set_customer(
    db: &Db,
    tenant: TenantId,
    customer: &str,
    now: DateTime<Utc>,
) -> Result<String, sqlx::Error> {
    let row = sqlx::query(
        "INSERT INTO platform.billing_accounts AS b (tenant_id, stripe_customer_id, updated_at) \
         VALUES ($1, $2, $3) ON CONFLICT (tenant_id) DO UPDATE \
            SET stripe_customer_id = COALESCE(b.stripe_customer_id, EXCLUDED.stripe_customer_id), \
                updated_at = EXCLUDED.updated_at \
         RETURNING stripe_customer_id",
    )
    .bind(tenant.as_uuid())
    .bind(customer)
    .bind(now)
    .fetch_one(&db.pool)
    .await?;
    row.try_get(0)
}

/// Marks a started checkout (`pending_payment`) when the tenant has no paying subscription.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn mark_pending(
    db: &Db,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE platform.billing_accounts SET billing_status = 'pending_payment', updated_at = $2 \
         WHERE tenant_id = $1 AND billing_status IN ('trial', 'cancelled')",
    )
    .bind(tenant.as_uuid())
    .bind(now)
    .execute(&db.pool)
    .await?;
    Ok(())
}

/// The tenant whose Stripe customer is `customer`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn tenant_of_customer(
    tx: &mut PlatformTx,
    customer: &str,
) -> Result<Option<TenantId>, sqlx::Error> {
    let id: Option<uuid::Uuid> = sqlx::query_scalar(
        "SELECT tenant_id FROM platform.billing_accounts WHERE stripe_customer_id = $1",
    )
    .bind(customer)
    .fetch_optional(tx.conn())
    .await?;
    Ok(id.map(TenantId::from_uuid))
}

/// Whether tenant `id` exists.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn tenant_exists(tx: &mut PlatformTx, id: TenantId) -> Result<bool, sqlx::Error> {
    let n: Option<i32> = sqlx::query_scalar("SELECT 1 FROM platform.tenants WHERE id = $1")
        .bind(id.as_uuid())
        .fetch_optional(tx.conn())
        .await?;
    Ok(n.is_some())
}

/// Begins a platform transaction (webhook effects).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn begin(db: &Db) -> Result<PlatformTx, sqlx::Error> {
    db.pool.begin().await
}

/// Claims event `id`: `false` when it was already processed (or is being processed by a
/// concurrent delivery, which this call waits for).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn claim_event(
    tx: &mut PlatformTx,
    id: &str,
    type_: &str,
    created: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "INSERT INTO platform.stripe_events (event_id, type, created, outcome, processed_at) \
         VALUES ($1, $2, $3, 'processing', $4) ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(id)
    .bind(type_)
    .bind(created)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Writes what event `id` did.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn finish_event(
    tx: &mut PlatformTx,
    id: &str,
    tenant: Option<TenantId>,
    outcome: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE platform.stripe_events SET tenant_id = $2, outcome = $3 WHERE event_id = $1",
    )
    .bind(id)
    .bind(tenant.map(|t| t.as_uuid()))
    .bind(outcome)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// The outcome recorded for event `id`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn event_outcome(db: &Db, id: &str) -> Result<Option<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT outcome FROM platform.stripe_events WHERE event_id = $1")
        .bind(id)
        .fetch_optional(&db.pool)
        .await
}

/// The tenant's billing row, locked for the transaction (created as `trial` if missing).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn lock(
    tx: &mut PlatformTx,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<BillingAccount, sqlx::Error> {
    sqlx::query(
        "INSERT INTO platform.billing_accounts (tenant_id, updated_at) VALUES ($1, $2) \
         ON CONFLICT (tenant_id) DO NOTHING",
    )
    .bind(tenant.as_uuid())
    .bind(now)
    .execute(tx.conn())
    .await?;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM platform.billing_accounts WHERE tenant_id = $1 FOR UPDATE"
    )))
    .bind(tenant.as_uuid())
    .fetch_one(tx.conn())
    .await?;
    account(&row)
}

/// Writes the whole billing row (after [`lock`]).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn save(
    tx: &mut PlatformTx,
    tenant: TenantId,
    a: &BillingAccount,
    event_id: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE platform.billing_accounts SET stripe_customer_id = $2, \
            subscription_id = $3, subscription_status = $4, subscribed_tier = $5, \
            current_period_start = $6, current_period_end = $7, cancel_at_period_end = $8, \
            billing_status = $9, grace_until = $10, state_event_at = $11, \
            state_event_id = COALESCE($12, state_event_id), updated_at = $13 \
         WHERE tenant_id = $1",
    )
    .bind(tenant.as_uuid())
    .bind(a.customer_id.as_deref())
    .bind(a.subscription_id.as_deref())
    .bind(a.subscription_status.as_deref())
    .bind(a.subscribed_tier.as_deref())
    .bind(a.current_period_start)
    .bind(a.current_period_end)
    .bind(a.cancel_at_period_end)
    .bind(&a.billing_status)
    .bind(a.grace_until)
    .bind(a.state_event_at)
    .bind(event_id)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Puts the tenant on `tier` (and optionally a trial end) in the transaction; the tenants
/// trigger announces it to every instance on commit.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn set_tenant_tier(
    tx: &mut PlatformTx,
    tenant: TenantId,
    tier: &str,
    trial_ends_at: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE platform.tenants SET tier = $2, trial_ends_at = COALESCE($3, trial_ends_at), \
         updated_at = $4 WHERE id = $1 AND (tier IS DISTINCT FROM $2 OR $3::timestamptz IS NOT NULL)",
    )
    .bind(tenant.as_uuid())
    .bind(tier)
    .bind(trial_ends_at)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Touches the tenant row so its trigger announces a billing change to every instance (the
/// directory reads the billing grace period with the tenant).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn touch_tenant(
    tx: &mut PlatformTx,
    tenant: TenantId,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE platform.tenants SET updated_at = $2 WHERE id = $1")
        .bind(tenant.as_uuid())
        .bind(now)
        .execute(tx.conn())
        .await?;
    Ok(())
}

/// Appends a billing transition (or, with `from_tier`, a plan change).
///
/// # Errors
/// When PostgreSQL fails.
#[allow(clippy::too_many_arguments)]
pub async fn audit(
    tx: &mut PlatformTx,
    tenant: TenantId,
    at: DateTime<Utc>,
    from: &str,
    to: &str,
    tier: &str,
    from_tier: Option<&str>,
    event_id: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO platform.billing_audit \
           (tenant_id, at, from_status, to_status, tier, from_tier, event_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.as_uuid())
    .bind(at)
    .bind(from)
    .bind(to)
    .bind(tier)
    .bind(from_tier)
    .bind(event_id)
    .execute(tx.conn())
    .await?;
    // The same transition is an event of the tenant's own audit log (`GET /api/v1/audit`),
    // written in the same transaction; the schema comes from the validated slug, quoted.
    let slug: Option<String> =
        sqlx::query_scalar("SELECT slug FROM platform.tenants WHERE id = $1")
            .bind(tenant.as_uuid())
            .fetch_optional(tx.conn())
            .await?;
    if let Some(schema) = slug
        .and_then(|s| crate::domain::TenantSlug::parse(&s).ok())
        .map(|s| s.schema_name())
    {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {}.audit_log (created_at, action, target, details) \
             VALUES ($1, 'billing.state_changed', $2, $3)",
            schema.quoted()
        )))
        .bind(at)
        .bind(tier)
        .bind(serde_json::json!({
            "from": from, "to": to, "tier": tier, "from_tier": from_tier, "event_id": event_id,
        }))
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// Whether overage of `period` was already billed for the tenant.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn overage_billed(
    tx: &mut PlatformTx,
    tenant: TenantId,
    period: &str,
) -> Result<bool, sqlx::Error> {
    let n: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM platform.billing_overage WHERE tenant_id = $1 AND period = $2",
    )
    .bind(tenant.as_uuid())
    .bind(period)
    .fetch_optional(tx.conn())
    .await?;
    Ok(n.is_some())
}

/// Records overage billed for (tenant, period).
///
/// # Errors
/// When PostgreSQL fails (a second row for the same period violates the primary key).
#[allow(clippy::too_many_arguments)]
pub async fn insert_overage(
    tx: &mut PlatformTx,
    tenant: TenantId,
    period: &str,
    simulations: i64,
    amount_cents: i64,
    invoice: &str,
    item: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO platform.billing_overage \
           (tenant_id, period, simulations, amount_cents, invoice_id, invoice_item_id, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(tenant.as_uuid())
    .bind(period)
    .bind(simulations)
    .bind(amount_cents)
    .bind(invoice)
    .bind(item)
    .bind(now)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// Every tier's Stripe price id (tiers without one are absent).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn tier_prices(db: &Db) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT name, stripe_price_id FROM platform.tiers WHERE stripe_price_id IS NOT NULL \
         ORDER BY sort_order",
    )
    .fetch_all(&db.pool)
    .await
}

/// Records `price` as tier `tier`'s Stripe price (the catalogue sync; needs the owner role).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn set_tier_price(db: &Db, tier: &str, price: &str) -> Result<bool, sqlx::Error> {
    let done = sqlx::query(
        "UPDATE platform.tiers SET stripe_price_id = $2 \
         WHERE name = $1 AND stripe_price_id IS DISTINCT FROM $2",
    )
    .bind(tier)
    .bind(price)
    .execute(&db.pool)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Revenue figures per tier: `(tier, price cents, active tenants, past-due tenants)`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn revenue_by_tier(db: &Db) -> Result<Vec<(String, i64, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.name, t.price_cents_per_month, \
                count(b.tenant_id) FILTER (WHERE b.billing_status = 'active'), \
                count(b.tenant_id) FILTER (WHERE b.billing_status = 'past_due') \
         FROM platform.tiers t \
         LEFT JOIN platform.billing_accounts b ON b.subscribed_tier = t.name \
         WHERE t.price_cents_per_month > 0 \
         GROUP BY t.name, t.price_cents_per_month, t.sort_order ORDER BY t.sort_order",
    )
    .fetch_all(&db.pool)
    .await
}

/// Movements since `since`: `(new subscriptions, upgrades, downgrades, churned)`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn movements(db: &Db, since: DateTime<Utc>) -> Result<(i64, i64, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT \
           count(*) FILTER (WHERE a.to_status = 'active' \
                              AND a.from_status IN ('trial', 'pending_payment', 'cancelled')), \
           count(*) FILTER (WHERE a.from_status = a.to_status \
                              AND tf.price_cents_per_month < tt.price_cents_per_month), \
           count(*) FILTER (WHERE a.from_status = a.to_status \
                              AND tf.price_cents_per_month > tt.price_cents_per_month), \
           count(*) FILTER (WHERE a.to_status = 'cancelled' \
                              AND a.from_status IN ('active', 'past_due', 'suspended')) \
         FROM platform.billing_audit a \
         LEFT JOIN platform.tiers tf ON tf.name = a.from_tier \
         LEFT JOIN platform.tiers tt ON tt.name = a.tier \
         WHERE a.at >= $1",
    )
    .bind(since)
    .fetch_one(&db.pool)
    .await
}

/// Tenants per billing status (tenants without a billing row count as `trial`).
///
/// # Errors
/// When PostgreSQL fails.
pub async fn tenants_by_status(db: &Db) -> Result<Vec<(String, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT COALESCE(b.billing_status, 'trial') AS s, count(*) FROM platform.tenants t \
         LEFT JOIN platform.billing_accounts b ON b.tenant_id = t.id GROUP BY s ORDER BY s",
    )
    .fetch_all(&db.pool)
    .await
}

/// Overage of `period` over every paying tenant: `(tenant, overage simulations, cents each)`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn paying_tenants(db: &Db) -> Result<Vec<(uuid::Uuid, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT b.tenant_id, t.tier FROM platform.billing_accounts b \
         JOIN platform.tenants t ON t.id = b.tenant_id \
         WHERE b.billing_status IN ('active', 'past_due')",
    )
    .fetch_all(&db.pool)
    .await
}

/// Tenants whose grace period ended by `now` while still `past_due`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn grace_expired(db: &Db, now: DateTime<Utc>) -> Result<Vec<TenantId>, sqlx::Error> {
    let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
        "SELECT tenant_id FROM platform.billing_accounts \
         WHERE billing_status = 'past_due' AND grace_until <= $1",
    )
    .bind(now)
    .fetch_all(&db.pool)
    .await?;
    Ok(ids.into_iter().map(TenantId::from_uuid).collect())
}

/// One tenant's billing row for the admin summary.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TenantBillingRow {
    /// Tenant id.
    pub tenant_id: uuid::Uuid,
    /// Tenant slug.
    pub slug: String,
    /// The tenant's effective tier.
    pub tier: String,
    /// Billing status (`trial` when the tenant has no billing row).
    pub billing_status: String,
    /// Stripe's subscription status.
    pub subscription_status: Option<String>,
    /// Stripe customer id.
    pub stripe_customer_id: Option<String>,
    /// End of the current subscription period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// Whether the subscription ends with the period.
    pub cancel_at_period_end: bool,
    /// `past_due`: the paid tier is kept until then.
    pub grace_until: Option<DateTime<Utc>>,
}

/// Per-tenant billing detail, by slug, `limit` rows from `offset`.
///
/// # Errors
/// When PostgreSQL fails.
pub async fn tenant_details(
    db: &Db,
    limit: i64,
    offset: i64,
) -> Result<Vec<TenantBillingRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT t.id AS tenant_id, t.slug, t.tier, \
                COALESCE(b.billing_status, 'trial') AS billing_status, b.subscription_status, \
                b.stripe_customer_id, b.current_period_end, \
                COALESCE(b.cancel_at_period_end, false) AS cancel_at_period_end, b.grace_until \
         FROM platform.tenants t \
         LEFT JOIN platform.billing_accounts b ON b.tenant_id = t.id \
         ORDER BY t.slug LIMIT $1 OFFSET $2",
    )
    .bind(limit)
    .bind(offset)
    .fetch_all(&db.pool)
    .await
}
