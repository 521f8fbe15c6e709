//! Billing: the tenant's subscription (`/api/v1/billing…`, owner or admin), the platform's
//! billing summary (`/api/v1/admin/billing/summary`), and Stripe's webhook (`POST /webhooks/stripe`, a plain
//! route outside the OpenAPI document: Stripe signs it, no tenant credentials).

use super::payload::{ApiJson, BodyLimit, Json};
use super::security::{AdminAuth, UserAuth};
use super::tags::ApiTags;
use crate::app::App;
use crate::app::billing::{BillingOverview, BillingSummary, TenantBilling};
use crate::{ok_response, problem_responses};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem::{IntoResponse, Request, Response, handler};
use poem_openapi::param::Query;
use poem_openapi::types::Example;
use poem_openapi::{Object, OpenApi};
use std::sync::Arc;

/// Billing operations.
pub struct BillingApi {
    /// The application.
    pub app: Arc<App>,
}

/// A tier to subscribe or move to.
#[derive(Object, Debug)]
#[oai(deny_unknown_fields, example)]
pub struct TierChoice {
    /// A paid tier: `starter`, `professional` or `enterprise`.
    #[oai(validator(max_length = 32))]
    pub tier: String,
}

impl Example for TierChoice {
    fn example() -> Self {
        Self {
            tier: "professional".into(),
        }
    }
}

impl BodyLimit for TierChoice {
    const MAX_BODY_BYTES: usize = 4 * 1024;
}

/// Where to send the customer.
#[derive(Object, Debug)]
pub struct RedirectUrl {
    /// Stripe-hosted page (Checkout or the Billing Portal).
    pub url: String,
}

/// One invoice.
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct InvoiceView {
    /// Stripe id (`in_…`).
    pub id: String,
    /// Invoice number (absent on drafts).
    pub number: Option<String>,
    /// Amount, cents.
    pub amount_cents: i64,
    /// Currency (ISO 4217, lower case).
    pub currency: String,
    /// `draft`, `open`, `paid`, `void` or `uncollectible`.
    pub status: String,
    /// Stripe-hosted invoice page.
    pub hosted_url: Option<String>,
    /// Creation time.
    pub created_at: Option<DateTime<Utc>>,
}

/// The tenant's billing.
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct BillingView {
    /// Current tier.
    pub tier: String,
    /// `trial`, `pending_payment`, `active`, `past_due`, `suspended` or `cancelled`.
    pub status: String,
    /// Stripe customer (`cus_…`), once created.
    pub customer_id: Option<String>,
    /// Subscription (`sub_…`), once there is one.
    pub subscription_id: Option<String>,
    /// Stripe's subscription status.
    pub subscription_status: Option<String>,
    /// Current billing period start.
    pub current_period_start: Option<DateTime<Utc>>,
    /// Current billing period end.
    pub current_period_end: Option<DateTime<Utc>>,
    /// The subscription ends with the current period.
    pub cancel_at_period_end: bool,
    /// `past_due`: the paid tier is kept until then, then the tenant is suspended.
    pub grace_until: Option<DateTime<Utc>>,
    /// Quota period (`YYYY-MM`, UTC).
    pub period: String,
    /// Simulations beyond the monthly quota so far this period.
    pub overage_simulations: u64,
    /// Their price so far, cents.
    pub overage_amount_cents: i64,
    /// Latest invoices, newest first (at most 10).
    pub invoices: Vec<InvoiceView>,
}

impl From<BillingOverview> for BillingView {
    fn from(o: BillingOverview) -> Self {
        Self {
            tier: o.tier,
            status: o.status,
            customer_id: o.customer_id,
            subscription_id: o.subscription_id,
            subscription_status: o.subscription_status,
            current_period_start: o.current_period_start,
            current_period_end: o.current_period_end,
            cancel_at_period_end: o.cancel_at_period_end,
            grace_until: o.grace_until,
            period: o.period,
            overage_simulations: o.overage_simulations,
            overage_amount_cents: o.overage_amount_cents,
            invoices: o
                .invoices
                .into_iter()
                .map(|i| InvoiceView {
                    id: i.id,
                    number: i.number,
                    amount_cents: i.amount_cents,
                    currency: i.currency,
                    status: i.status,
                    hosted_url: i.hosted_url,
                    created_at: i.created,
                })
                .collect(),
        }
    }
}

/// Revenue of one paid tier.
#[derive(Object, Debug)]
pub struct TierRevenueView {
    /// Tier.
    pub tier: String,
    /// Monthly price, cents.
    pub price_cents: i64,
    /// Tenants paying on it.
    pub active_tenants: i64,
    /// Tenants past due on it.
    pub past_due_tenants: i64,
    /// Monthly recurring revenue, cents (active and past due).
    pub mrr_cents: i64,
}

/// Tenants in one billing status.
#[derive(Object, Debug)]
pub struct StatusCount {
    /// Billing status.
    pub status: String,
    /// Tenants.
    pub tenants: i64,
}

/// One tenant's billing (admin view).
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct TenantBillingView {
    /// Tenant id.
    pub tenant_id: uuid::Uuid,
    /// Tenant slug.
    pub slug: String,
    /// Effective tier.
    pub tier: String,
    /// Billing status: `trial`, `pending_payment`, `active`, `past_due`, `suspended`,
    /// `cancelled`.
    pub billing_status: String,
    /// Stripe's subscription status, if subscribed.
    pub subscription_status: Option<String>,
    /// Stripe customer id (`cus_…`), once created.
    pub customer_id: Option<String>,
    /// End of the current subscription period.
    pub current_period_end: Option<DateTime<Utc>>,
    /// The subscription ends with the current period.
    pub cancel_at_period_end: bool,
    /// While `past_due`: the paid tier is kept until then.
    pub grace_until: Option<DateTime<Utc>>,
    /// Overage simulations this period.
    pub overage_simulations: u64,
    /// Their price, cents.
    pub overage_amount_cents: i64,
}

impl From<TenantBilling> for TenantBillingView {
    fn from(t: TenantBilling) -> Self {
        Self {
            tenant_id: t.row.tenant_id,
            slug: t.row.slug,
            tier: t.row.tier,
            billing_status: t.row.billing_status,
            subscription_status: t.row.subscription_status,
            customer_id: t.row.stripe_customer_id,
            current_period_end: t.row.current_period_end,
            cancel_at_period_end: t.row.cancel_at_period_end,
            grace_until: t.row.grace_until,
            overage_simulations: t.overage_simulations,
            overage_amount_cents: t.overage_amount_cents,
        }
    }
}

/// The platform's billing: revenue figures and a page of per-tenant detail.
#[derive(Object, Debug)]
#[oai(skip_serializing_if_is_none)]
pub struct BillingSummaryView {
    /// Monthly recurring revenue, cents.
    pub mrr_cents: i64,
    /// Per paid tier.
    pub by_tier: Vec<TierRevenueView>,
    /// Tenants paying (`active`).
    pub paying_tenants: i64,
    /// Tenants `past_due`.
    pub past_due_tenants: i64,
    /// Tenants per billing status.
    pub tenants_by_status: Vec<StatusCount>,
    /// Current quota period (`YYYY-MM`).
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
    /// Tenants in all.
    pub total_tenants: i64,
    /// Per-tenant billing, by slug: `limit` tenants from `offset`.
    pub tenants: Vec<TenantBillingView>,
    /// The next page's `offset`, absent on the last page.
    pub next_offset: Option<u32>,
}

impl BillingSummaryView {
    fn of(s: BillingSummary, offset: u32) -> Self {
        let shown = u32::try_from(s.tenants.len()).unwrap_or(u32::MAX);
        let next_offset = offset.saturating_add(shown);
        let next_offset =
            (shown > 0 && i64::from(next_offset) < s.total_tenants).then_some(next_offset);
        let r = s.revenue;
        Self {
            total_tenants: s.total_tenants,
            tenants: s.tenants.into_iter().map(Into::into).collect(),
            next_offset,
            mrr_cents: r.mrr_cents,
            paying_tenants: r.by_tier.iter().map(|t| t.active).sum(),
            past_due_tenants: r.by_tier.iter().map(|t| t.past_due).sum(),
            by_tier: r
                .by_tier
                .into_iter()
                .map(|t| TierRevenueView {
                    tier: t.tier,
                    price_cents: t.price_cents,
                    active_tenants: t.active,
                    past_due_tenants: t.past_due,
                    mrr_cents: t.mrr_cents,
                })
                .collect(),
            tenants_by_status: r
                .tenants_by_status
                .into_iter()
                .map(|(status, tenants)| StatusCount { status, tenants })
                .collect(),
            period: r.period,
            overage_simulations: r.overage_simulations,
            overage_amount_cents: r.overage_amount_cents,
            new_subscriptions: r.new_subscriptions,
            upgrades: r.upgrades,
            downgrades: r.downgrades,
            churned: r.churned,
        }
    }
}

ok_response!(BillingOk, BillingView, "The tenant's billing.");
ok_response!(
    RedirectOk,
    RedirectUrl,
    "Send the customer to this Stripe-hosted page."
);
ok_response!(SummaryOk, BillingSummaryView, "Billing summary.");

problem_responses!(BillingError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, Conflict = 409, Invalid = 422, Unavailable = 503 });

#[OpenApi(tag = "ApiTags::Billing")]
impl BillingApi {
    /// Billing overview
    ///
    /// Tier, billing status, subscription and current period, overage so far this period and
    /// its price, latest invoices. Owner or admin. 503 when billing is not configured.
    #[oai(path = "/api/v1/billing", method = "get", operation_id = "getBilling")]
    async fn overview(&self, user: UserAuth) -> Result<BillingOk, BillingError> {
        let o = self.app.billing.overview(&user.0).await?;
        Ok(BillingOk::Ok(Json(o.into())))
    }

    /// Start a subscription
    ///
    /// A Stripe Checkout Session (mode subscription) for a paid tier; returns its URL. The
    /// tier changes when Stripe confirms the payment (webhook). Owner or admin.
    #[oai(
        path = "/api/v1/billing/checkout",
        method = "post",
        operation_id = "createCheckoutSession"
    )]
    async fn checkout(
        &self,
        user: UserAuth,
        body: ApiJson<TierChoice>,
    ) -> Result<RedirectOk, BillingError> {
        let url = self.app.billing.checkout(&user.0, &body.0.tier).await?;
        Ok(RedirectOk::Ok(Json(RedirectUrl { url })))
    }

    /// Manage billing
    ///
    /// A Stripe Billing Portal session (payment methods, invoices, cancellation); returns its
    /// URL. Owner or admin.
    #[oai(
        path = "/api/v1/billing/portal",
        method = "post",
        operation_id = "createPortalSession"
    )]
    async fn portal(&self, user: UserAuth) -> Result<RedirectOk, BillingError> {
        let url = self.app.billing.portal(&user.0).await?;
        Ok(RedirectOk::Ok(Json(RedirectUrl { url })))
    }

    /// Change plan
    ///
    /// Moves the active subscription to another paid tier, prorating; effective at once.
    /// Owner or admin.
    #[oai(
        path = "/api/v1/billing/subscription",
        method = "put",
        operation_id = "changeSubscription"
    )]
    async fn change(
        &self,
        user: UserAuth,
        body: ApiJson<TierChoice>,
    ) -> Result<BillingOk, BillingError> {
        let o = self.app.billing.change_plan(&user.0, &body.0.tier).await?;
        Ok(BillingOk::Ok(Json(o.into())))
    }

    /// Cancel at period end
    ///
    /// The subscription ends with the current period; the tenant then returns to trial
    /// limits (data kept). Owner or admin.
    #[oai(
        path = "/api/v1/billing/subscription/cancel",
        method = "post",
        operation_id = "cancelSubscription"
    )]
    async fn cancel(&self, user: UserAuth) -> Result<BillingOk, BillingError> {
        let o = self.app.billing.set_cancel(&user.0, true).await?;
        Ok(BillingOk::Ok(Json(o.into())))
    }

    /// Resume
    ///
    /// Undoes a cancellation at period end. Owner or admin.
    #[oai(
        path = "/api/v1/billing/subscription/resume",
        method = "post",
        operation_id = "resumeSubscription"
    )]
    async fn resume(&self, user: UserAuth) -> Result<BillingOk, BillingError> {
        let o = self.app.billing.set_cancel(&user.0, false).await?;
        Ok(BillingOk::Ok(Json(o.into())))
    }
}

problem_responses!(SummaryError { BadRequest = 400, Unauthorized = 401, Forbidden = 403, NotFound = 404, Invalid = 422, Unavailable = 503 });

fn default_summary_limit() -> u32 {
    50
}

/// Platform billing summary (admin).
pub struct BillingSummaryApi {
    /// The application.
    pub app: Arc<App>,
}

#[OpenApi(tag = "ApiTags::Admin")]
impl BillingSummaryApi {
    /// Billing summary
    ///
    /// Monthly recurring revenue by tier, paying and past-due tenants, tenants per billing
    /// status, overage this period, this period's new subscriptions, upgrades, downgrades and
    /// churn, and per-tenant billing detail (by slug, at most 100 tenants a page; follow
    /// `next_offset`).
    #[oai(
        path = "/api/v1/admin/billing/summary",
        method = "get",
        operation_id = "adminBillingSummary"
    )]
    async fn summary(
        &self,
        _admin: AdminAuth,
        /// Tenants per page, 1–100.
        #[oai(
            default = "default_summary_limit",
            validator(minimum(value = "1"), maximum(value = "100"))
        )]
        limit: Query<u32>,
        /// Tenants to skip (`next_offset` of the previous page).
        #[oai(default)]
        offset: Query<u32>,
    ) -> Result<SummaryOk, SummaryError> {
        let s = self.app.billing.summary(limit.0, offset.0).await?;
        Ok(SummaryOk::Ok(Json(BillingSummaryView::of(s, offset.0))))
    }
}

/// Largest webhook body accepted.
const MAX_WEBHOOK_BYTES: usize = 512 * 1024;

/// `POST /webhooks/stripe`: verifies `Stripe-Signature`, processes the event once, answers
/// 200 (also for duplicates and ignored types), 400 problem for a bad signature or payload,
/// 503 when billing is off.
#[handler]
pub async fn stripe_webhook(req: &Request, body: poem::Body, app: Data<&Arc<App>>) -> Response {
    let bytes = match body.into_bytes_limit(MAX_WEBHOOK_BYTES).await {
        Ok(b) => b,
        Err(_) => {
            return super::problem::response_of(&crate::error::AppError::client_status(
                413,
                "payload-too-large",
                format!("a webhook body may have at most {MAX_WEBHOOK_BYTES} bytes"),
            ));
        }
    };
    let Ok(payload) = std::str::from_utf8(&bytes) else {
        return super::problem::response_of(&crate::error::AppError::bad_request(
            "the webhook body is not UTF-8",
        ));
    };
    let signature = req
        .headers()
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    match app.billing.webhook(payload, signature).await {
        Ok(o) => poem::web::Json(serde_json::json!({
            "received": true,
            "event_id": o.event_id,
            "type": o.event_type,
            "duplicate": !o.first_delivery,
            "outcome": o.outcome,
        }))
        .into_response(),
        Err(e) => super::problem::response_of(&e),
    }
}
