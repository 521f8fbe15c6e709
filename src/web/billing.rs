//! The billing pages: `/billing` (plan and status, the tiers with prices, upgrade → Stripe
//! Checkout, manage → the Customer Portal, invoices, the past-due banner), `/billing/success`
//! and `/billing/cancelled` (where Checkout sends the browser back). Owners and admins manage;
//! other roles read. With billing off (no `STRIPE_SECRET_KEY`) the page says so.

use super::page::{self, Chrome, FieldErrors, Nav};
use super::session::SignedIn;
use super::usage::dollars;
use crate::app::billing::BillingOverview;
use crate::error::AppError;
use askama::Template;
use poem::http::{StatusCode, header};
use poem::web::Form;
use poem::{Request, Response, handler};
use serde::Deserialize;

/// The Stripe origins the billing forms send the browser to (CSP `form-action`).
const STRIPE_ORIGINS: &str = "https://checkout.stripe.com https://billing.stripe.com";

#[derive(Template)]
#[template(path = "billing/billing.html")]
struct BillingPage {
    chrome: Chrome,
    enabled: bool,
    can_manage: bool,
    tier: String,
    status: String,
    status_badge: &'static str,
    subscribed: bool,
    period_end: Option<String>,
    cancel_at_period_end: bool,
    grace_until: Option<String>,
    suspended: bool,
    trial_ends: Option<String>,
    overage: Option<(u64, String)>,
    tiers: Vec<TierCard>,
    invoices: Option<Vec<Invoice>>,
    errors: FieldErrors,
}

struct TierCard {
    name: String,
    display: String,
    price: String,
    quota: String,
    overage: String,
    max_paths: u64,
    current: bool,
}

struct Invoice {
    number: String,
    date: String,
    amount: String,
    status: String,
    url: Option<String>,
}

#[derive(Template)]
#[template(path = "billing/landing.html")]
struct LandingPage {
    chrome: Chrome,
    success: bool,
    tier: String,
}

fn date(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%-d %B %Y").to_string()
}

/// The page with `errors` (`tier` for the upgrade form, the form message otherwise).
async fn billing_page(
    req: &Request,
    s: &SignedIn,
    errors: FieldErrors,
    status: StatusCode,
) -> poem::Result<Response> {
    let app = super::session::app(req)?;
    let enabled = app.billing.enabled();
    let can_manage = s.role.can_manage();
    let mut errors = errors;
    let overview: Option<BillingOverview> = if enabled && can_manage {
        match app.billing.overview(&s.ctx).await {
            Ok(o) => Some(o),
            Err(err @ AppError::Unavailable(_)) => {
                if errors.form.is_none() {
                    errors.form = FieldErrors::from_app_error(&err, &[]).form;
                }
                None
            }
            Err(err) => return Err(err.into()),
        }
    } else {
        None
    };
    let tenant = app
        .directory
        .by_slug(&s.tenant.slug)
        .await?
        .unwrap_or_else(|| s.tenant.clone());
    let status_text = overview.as_ref().map_or_else(
        || {
            if tenant.billing_suspended {
                "suspended".to_string()
            } else if tenant.billing_grace_until.is_some() {
                "past_due".to_string()
            } else if tenant.tier.price_cents_per_month == 0 {
                "trial".to_string()
            } else {
                "active".to_string()
            }
        },
        |o| o.status.clone(),
    );
    let status_badge = match status_text.as_str() {
        "active" => "badge-success",
        "past_due" | "pending_payment" => "badge-warning",
        "suspended" | "cancelled" => "badge-error",
        _ => "badge-info",
    };
    let tiers = app
        .directory
        .tiers()
        .all()
        .iter()
        .filter(|t| t.price_cents_per_month > 0)
        .map(|t| TierCard {
            name: t.name.clone(),
            display: t.display_name.clone(),
            price: dollars(t.price_cents_per_month),
            quota: t.monthly_simulations.map_or_else(
                || "Unlimited simulations".to_string(),
                |q| format!("{q} simulations a month"),
            ),
            overage: t.overage_cents_per_simulation.map_or_else(
                || "no overage".to_string(),
                |c| format!("then {} per simulation", dollars(c)),
            ),
            max_paths: t.max_paths,
            current: t.name == tenant.tier.name,
        })
        .collect();
    let tpl = BillingPage {
        chrome: s.chrome(Nav::Billing),
        enabled,
        can_manage,
        tier: tenant.tier.display_name.clone(),
        subscribed: matches!(status_text.as_str(), "active" | "past_due"),
        status: status_text.replace('_', " "),
        status_badge,
        period_end: overview
            .as_ref()
            .and_then(|o| o.current_period_end)
            .map(date),
        cancel_at_period_end: overview.as_ref().is_some_and(|o| o.cancel_at_period_end),
        grace_until: overview
            .as_ref()
            .and_then(|o| o.grace_until)
            .or(tenant.billing_grace_until)
            .map(date),
        suspended: tenant.billing_suspended,
        trial_ends: tenant
            .trial_ends_at
            .filter(|_| tenant.tier.price_cents_per_month == 0)
            .map(date),
        overage: overview
            .as_ref()
            .map(|o| (o.overage_simulations, dollars(o.overage_amount_cents))),
        tiers,
        invoices: overview.map(|o| {
            o.invoices
                .into_iter()
                .map(|i| Invoice {
                    number: i.number.unwrap_or(i.id),
                    date: i.created.map(date).unwrap_or_default(),
                    amount: format!("{} {}", dollars(i.amount_cents), i.currency.to_uppercase()),
                    status: i.status,
                    url: i.hosted_url.filter(|u| u.starts_with("https://")),
                })
                .collect()
        }),
        errors,
    };
    let mut resp = page::render(status, &tpl);
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        page::csp_with_form_action(STRIPE_ORIGINS),
    );
    Ok(resp)
}

/// `GET /billing`.
#[handler]
pub async fn show(req: &Request, s: SignedIn) -> poem::Result<Response> {
    billing_page(req, &s, FieldErrors::default(), StatusCode::OK).await
}

/// The billing forms: `action` is `checkout` (with `tier`) or `portal`.
#[derive(Debug, Deserialize)]
pub struct BillingForm {
    #[serde(default)]
    action: String,
    #[serde(default)]
    tier: String,
    #[serde(default)]
    csrf: String,
}

fn require_manager(s: &SignedIn) -> poem::Result<()> {
    if s.role.can_manage() {
        Ok(())
    } else {
        Err(page::fail(
            StatusCode::FORBIDDEN,
            format!(
                "billing is managed by the owner or an admin; you are {}",
                s.role.as_str()
            ),
        ))
    }
}

/// A 303 to a Stripe page (`url` must be https).
fn to_stripe(url: &str) -> poem::Result<Response> {
    if !url.starts_with("https://") {
        return Err(AppError::internal(format!("Stripe answered a non-https URL: {url}")).into());
    }
    Ok(Response::builder()
        .status(StatusCode::SEE_OTHER)
        .header(header::LOCATION, url)
        .header(header::CACHE_CONTROL, "no-store")
        .finish())
}

async fn refused(req: &Request, s: &SignedIn, err: AppError) -> poem::Result<Response> {
    match &err {
        AppError::Client(p) => {
            let status = StatusCode::from_u16(p.status).unwrap_or(StatusCode::BAD_REQUEST);
            billing_page(req, s, FieldErrors::from_app_error(&err, &["tier"]), status).await
        }
        _ => Err(err.into()),
    }
}

/// `POST /billing`: `action=checkout` creates a Checkout Session for `tier`, `action=portal`
/// a Customer Portal session; either answers 303 to Stripe's URL, or the page again with the
/// service's refusal (unverified owner, existing subscription, billing off) at its status.
#[handler]
pub async fn act(
    req: &Request,
    s: SignedIn,
    Form(form): Form<BillingForm>,
) -> poem::Result<Response> {
    s.check_csrf(&form.csrf)?;
    require_manager(&s)?;
    let app = super::session::app(req)?;
    let outcome = match form.action.as_str() {
        "checkout" => {
            let tier: String = form.tier.trim().chars().take(64).collect();
            app.billing.checkout(&s.ctx, &tier).await
        }
        "portal" => app.billing.portal(&s.ctx).await,
        other => {
            return Err(page::fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "unknown action {:?}",
                    other.chars().take(40).collect::<String>()
                ),
            ));
        }
    };
    match outcome {
        Ok(url) => to_stripe(&url),
        Err(err) => refused(req, &s, err).await,
    }
}

async fn landing(req: &Request, s: SignedIn, paid: bool) -> poem::Result<Response> {
    let app = super::session::app(req)?;
    let tenant = app
        .directory
        .by_slug(&s.tenant.slug)
        .await?
        .unwrap_or_else(|| s.tenant.clone());
    Ok(page::render(
        StatusCode::OK,
        &LandingPage {
            chrome: s.chrome(Nav::Billing),
            success: paid,
            tier: tenant.tier.display_name.clone(),
        },
    ))
}

/// `GET /billing/success`: back from Checkout after paying.
#[handler]
pub async fn success(req: &Request, s: SignedIn) -> poem::Result<Response> {
    landing(req, s, true).await
}

/// `GET /billing/cancelled`: back from Checkout without paying.
#[handler]
pub async fn cancelled(req: &Request, s: SignedIn) -> poem::Result<Response> {
    landing(req, s, false).await
}
