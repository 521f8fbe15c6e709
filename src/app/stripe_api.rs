//! The one adapter to Stripe: every call the service makes, through async-stripe 1.0's typed
//! request builders. What we read back is decoded into small shapes holding only the fields we
//! use (all optional where Stripe's API versions or localstripe differ), so an object with more
//! or fewer fields than async-stripe's generated types expect still works.
//!
//! Differences between Stripe and the test server (localstripe 1.15) kept here:
//! - the catalogue is made of **plans** (`/v1/plans`), which Stripe accepts wherever a price id
//!   goes (Checkout line items, subscription items); localstripe has no `/v1/prices`;
//! - subscription items are changed with `items[0][plan]` (localstripe refuses `price`), and
//!   proration is Stripe's default rather than an explicit `proration_behavior` (refused too);
//! - Checkout Sessions and Billing Portal sessions (`checkout_session`, `portal_session`) do not
//!   exist in localstripe: tests check those two requests at a capture server.

use crate::error::AppError;
use std::collections::HashMap;
use stripe::{IdempotencyKey, RequestStrategy, StripeError, StripeRequest};

/// A configured Stripe client.
#[derive(Clone)]
pub struct StripeApi {
    client: stripe::Client,
}

impl std::fmt::Debug for StripeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StripeApi")
    }
}

/// A customer as we read it.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct Customer {
    /// `cus_…`.
    pub id: String,
}

/// A created session (Checkout or Billing Portal): its URL.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct SessionUrl {
    /// Session id.
    pub id: String,
    /// Where to send the customer.
    pub url: Option<String>,
}

/// A plan (or price) reference inside a subscription item.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct PlanRef {
    /// `plan_…` / `price_…` or our deterministic id.
    pub id: String,
}

/// One subscription item.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct SubscriptionItem {
    /// `si_…`.
    pub id: String,
    /// Its plan (Stripe and localstripe).
    pub plan: Option<PlanRef>,
    /// Its price (Stripe).
    pub price: Option<PlanRef>,
    /// Newer Stripe API versions keep the period on the item.
    pub current_period_start: Option<i64>,
    /// See `current_period_start`.
    pub current_period_end: Option<i64>,
}

/// A list of subscription items.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct ItemList {
    /// Items.
    pub data: Vec<SubscriptionItem>,
}

/// A subscription as we read it.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct Subscription {
    /// `sub_…`.
    pub id: String,
    /// `cus_…`.
    pub customer: String,
    /// Stripe's status.
    pub status: String,
    /// Cancels when the period ends.
    pub cancel_at_period_end: Option<bool>,
    /// Period start (older API versions and localstripe), seconds.
    pub current_period_start: Option<i64>,
    /// Period end, seconds.
    pub current_period_end: Option<i64>,
    /// Its items (exactly one for us).
    pub items: Option<ItemList>,
    /// Legacy single plan.
    pub plan: Option<PlanRef>,
}

impl Subscription {
    /// The plan / price id the subscription is on.
    pub fn price_id(&self) -> Option<&str> {
        let item = self.items.as_ref().and_then(|l| l.data.first());
        item.and_then(|i| i.price.as_ref().or(i.plan.as_ref()))
            .or(self.plan.as_ref())
            .map(|p| p.id.as_str())
    }

    /// The first item's id.
    pub fn item_id(&self) -> Option<&str> {
        self.items
            .as_ref()
            .and_then(|l| l.data.first())
            .map(|i| i.id.as_str())
    }

    /// `(start, end)` of the current period, seconds.
    pub fn period(&self) -> (Option<i64>, Option<i64>) {
        let item = self.items.as_ref().and_then(|l| l.data.first());
        (
            self.current_period_start
                .or(item.and_then(|i| i.current_period_start)),
            self.current_period_end
                .or(item.and_then(|i| i.current_period_end)),
        )
    }
}

/// An invoice as we show it.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct Invoice {
    /// `in_…`.
    pub id: String,
    /// Human number (absent on drafts and in localstripe).
    pub number: Option<String>,
    /// Amount due, cents.
    pub amount_due: Option<i64>,
    /// Amount paid, cents.
    pub amount_paid: Option<i64>,
    /// Currency.
    pub currency: Option<String>,
    /// `draft`, `open`, `paid`, `void`, `uncollectible`.
    pub status: Option<String>,
    /// Stripe-hosted page.
    pub hosted_invoice_url: Option<String>,
    /// Creation, seconds.
    pub created: Option<i64>,
}

/// A list of invoices.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct InvoiceList {
    /// Invoices, newest first.
    pub data: Vec<Invoice>,
}

/// A product or plan, for the catalogue check.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct CatalogObject {
    /// Id.
    pub id: String,
    /// Plans: amount, cents.
    pub amount: Option<i64>,
    /// Plans: currency.
    pub currency: Option<String>,
    /// Plans: interval.
    pub interval: Option<String>,
    /// Name (products).
    pub name: Option<String>,
}

/// An invoice item we created.
#[derive(miniserde::Deserialize, Debug, Clone)]
pub struct InvoiceItem {
    /// `ii_…`.
    pub id: String,
}

/// A Stripe failure: the API's answer or a transport problem.
#[derive(Debug, thiserror::Error)]
#[error("stripe {operation}: {source}")]
pub struct StripeCallError {
    /// What we were doing.
    pub operation: &'static str,
    /// Cause.
    #[source]
    pub source: StripeError,
}

impl StripeCallError {
    /// Stripe answered 404 (the object does not exist).
    pub fn is_not_found(&self) -> bool {
        matches!(self.source, StripeError::Stripe(_, 404))
    }
}

impl From<StripeCallError> for AppError {
    fn from(e: StripeCallError) -> Self {
        match &e.source {
            StripeError::ClientError(_) | StripeError::Timeout => {
                tracing::warn!(error = %e, "stripe unreachable");
                AppError::unavailable("the payment provider (Stripe)")
            }
            StripeError::Stripe(_, status) if *status >= 500 || *status == 429 => {
                tracing::warn!(error = %e, "stripe unavailable");
                AppError::unavailable("the payment provider (Stripe)")
            }
            _ => AppError::internal(e),
        }
    }
}

fn key(k: &str) -> RequestStrategy {
    match IdempotencyKey::new(k) {
        Ok(key) => RequestStrategy::Idempotent(key),
        Err(_) => RequestStrategy::Once,
    }
}

fn call(operation: &'static str) -> impl FnOnce(StripeError) -> StripeCallError {
    move |source| StripeCallError { operation, source }
}

impl StripeApi {
    /// A client for `secret_key` at `api_base` (`None` = api.stripe.com).
    ///
    /// # Errors
    /// When the client cannot be built (TLS set-up).
    pub fn new(secret_key: &str, api_base: Option<&str>) -> Result<Self, AppError> {
        let mut builder = stripe::ClientBuilder::new(secret_key);
        if let Some(base) = api_base {
            builder = builder.url(base);
        }
        let client = builder.build().map_err(AppError::internal)?;
        Ok(Self { client })
    }

    /// Creates the customer of a tenant; `idempotency` makes a retried first action reuse it.
    ///
    /// # Errors
    /// When Stripe fails.
    pub async fn create_customer(
        &self,
        email: &str,
        name: &str,
        tenant_id: &str,
        tenant_slug: &str,
        idempotency: &str,
    ) -> Result<Customer, StripeCallError> {
        let metadata = HashMap::from([
            ("tenant_id".to_string(), tenant_id.to_string()),
            ("tenant_slug".to_string(), tenant_slug.to_string()),
        ]);
        stripe_core::customer::CreateCustomer::new()
            .email(email)
            .name(name)
            .metadata(metadata)
            .build()
            .customize::<Customer>()
            .request_strategy(key(idempotency))
            .send(&self.client)
            .await
            .map_err(call("create customer"))
    }

    /// A Checkout Session (mode subscription) for `price` (a plan id works too).
    ///
    /// # Errors
    /// When Stripe fails.
    #[allow(clippy::too_many_arguments)]
    pub async fn checkout_session(
        &self,
        customer: &str,
        price: &str,
        tenant_id: &str,
        success_url: &str,
        cancel_url: &str,
        idempotency: &str,
    ) -> Result<SessionUrl, StripeCallError> {
        let mut item = stripe_checkout::checkout_session::CreateCheckoutSessionLineItems::new();
        item.price = Some(price.to_string());
        item.quantity = Some(1);
        stripe_checkout::checkout_session::CreateCheckoutSession::new()
            .mode(stripe_checkout::CheckoutSessionMode::Subscription)
            .customer(customer)
            .client_reference_id(tenant_id)
            .line_items(vec![item])
            .success_url(success_url)
            .cancel_url(cancel_url)
            .build()
            .customize::<SessionUrl>()
            .request_strategy(key(idempotency))
            .send(&self.client)
            .await
            .map_err(call("create checkout session"))
    }

    /// A Billing Portal session returning to `return_url`.
    ///
    /// # Errors
    /// When Stripe fails.
    pub async fn portal_session(
        &self,
        customer: &str,
        return_url: &str,
    ) -> Result<SessionUrl, StripeCallError> {
        stripe_billing::billing_portal_session::CreateBillingPortalSession::new()
            .customer(customer)
            .return_url(return_url)
            .build()
            .customize::<SessionUrl>()
            .send(&self.client)
            .await
            .map_err(call("create billing portal session"))
    }

    /// The subscription as Stripe has it now.
    ///
    /// # Errors
    /// When Stripe fails (404 when it does not exist).
    pub async fn subscription(&self, id: &str) -> Result<Subscription, StripeCallError> {
        stripe_billing::subscription::RetrieveSubscription::new(id)
            .build()
            .customize::<Subscription>()
            .send(&self.client)
            .await
            .map_err(call("retrieve subscription"))
    }

    /// Moves the subscription's one item to `price`, prorating (Stripe's default).
    ///
    /// # Errors
    /// When Stripe fails.
    pub async fn change_plan(
        &self,
        subscription: &str,
        item: &str,
        price: &str,
        idempotency: &str,
    ) -> Result<Subscription, StripeCallError> {
        let mut it = stripe_billing::subscription::UpdateSubscriptionItems::new();
        it.id = Some(item.to_string());
        it.plan = Some(price.to_string());
        // Proration: `create_prorations` is Stripe's default for an item change, so it is not
        // sent (localstripe refuses `proration_behavior`; it prorates with "Unused time" items).
        stripe_billing::subscription::UpdateSubscription::new(subscription)
            .items(vec![it])
            .build()
            .customize::<Subscription>()
            .request_strategy(key(idempotency))
            .send(&self.client)
            .await
            .map_err(call("change subscription plan"))
    }

    /// Sets or clears cancellation at the period's end.
    ///
    /// # Errors
    /// When Stripe fails.
    pub async fn set_cancel_at_period_end(
        &self,
        subscription: &str,
        cancel: bool,
    ) -> Result<Subscription, StripeCallError> {
        stripe_billing::subscription::UpdateSubscription::new(subscription)
            .cancel_at_period_end(cancel)
            .build()
            .customize::<Subscription>()
            .send(&self.client)
            .await
            .map_err(call("update subscription cancellation"))
    }

    /// The customer's latest invoices, newest first.
    ///
    /// # Errors
    /// When Stripe fails.
    pub async fn invoices(
        &self,
        customer: &str,
        limit: i64,
    ) -> Result<Vec<Invoice>, StripeCallError> {
        stripe_billing::invoice::ListInvoice::new()
            .customer(customer)
            .limit(limit)
            .build()
            .customize::<InvoiceList>()
            .send(&self.client)
            .await
            .map(|l| l.data)
            .map_err(call("list invoices"))
    }

    /// Adds an invoice item of `amount_cents` (USD) to `invoice`.
    ///
    /// # Errors
    /// When Stripe fails.
    pub async fn add_invoice_item(
        &self,
        customer: &str,
        invoice: &str,
        amount_cents: i64,
        description: &str,
        idempotency: &str,
    ) -> Result<InvoiceItem, StripeCallError> {
        stripe_billing::invoice_item::CreateInvoiceItem::new()
            .customer(customer)
            .invoice(invoice)
            .amount(amount_cents)
            .currency(stripe_types::Currency::USD)
            .description(description)
            .build()
            .customize::<InvoiceItem>()
            .request_strategy(key(idempotency))
            .send(&self.client)
            .await
            .map_err(call("create invoice item"))
    }

    /// A product by id, `None` when it does not exist.
    ///
    /// # Errors
    /// When Stripe fails otherwise.
    pub async fn product(&self, id: &str) -> Result<Option<CatalogObject>, StripeCallError> {
        let got = stripe_product::product::RetrieveProduct::new(id)
            .build()
            .customize::<CatalogObject>()
            .send(&self.client)
            .await
            .map_err(call("retrieve product"));
        match got {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates product `id`.
    ///
    /// # Errors
    /// When Stripe fails.
    pub async fn create_product(
        &self,
        id: &str,
        name: &str,
    ) -> Result<CatalogObject, StripeCallError> {
        stripe_product::product::CreateProduct::new(name)
            .id(id)
            .build()
            .customize::<CatalogObject>()
            .request_strategy(key(&format!("product-{id}")))
            .send(&self.client)
            .await
            .map_err(call("create product"))
    }

    /// A plan by id, `None` when it does not exist.
    ///
    /// # Errors
    /// When Stripe fails otherwise.
    pub async fn plan(&self, id: &str) -> Result<Option<CatalogObject>, StripeCallError> {
        let got = stripe_billing::plan::RetrievePlan::new(id)
            .build()
            .customize::<CatalogObject>()
            .send(&self.client)
            .await
            .map_err(call("retrieve plan"));
        match got {
            Ok(p) => Ok(Some(p)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Creates monthly USD plan `id` of `amount_cents` for `product`.
    ///
    /// # Errors
    /// When Stripe fails.
    pub async fn create_monthly_plan(
        &self,
        id: &str,
        product: &str,
        amount_cents: i64,
        nickname: &str,
    ) -> Result<CatalogObject, StripeCallError> {
        stripe_billing::plan::CreatePlan::new(
            stripe_types::Currency::USD,
            stripe_billing::PlanInterval::Month,
        )
        .id(id)
        .amount(amount_cents)
        .product(stripe_billing::plan::CreatePlanProduct::Id(
            product.to_string(),
        ))
        .nickname(nickname)
        .build()
        .customize::<CatalogObject>()
        .request_strategy(key(&format!("plan-{id}")))
        .send(&self.client)
        .await
        .map_err(call("create plan"))
    }
}
