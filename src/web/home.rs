//! The tenant's home page `/`: greeting, tier, this period's simulations against the quota.

use super::page::{self, Chrome, Nav};
use super::session::{self, SignedIn};
use askama::Template;
use poem::Response;
use poem::http::StatusCode;

#[derive(Template)]
#[template(path = "home/home.html")]
struct HomePage {
    chrome: Chrome,
    first_name: String,
    tenant_name: String,
    slug: String,
    tier: String,
    role: String,
    trial_ends: Option<String>,
    grace_until: Option<String>,
    billing_suspended: bool,
    period: String,
    used: u64,
    quota: Option<u64>,
    overage: u64,
    percent: u64,
    resets: String,
    calls_30d: i64,
    simulations_30d: i64,
    errors_30d: i64,
    keys_30d: usize,
    recent: Vec<Recent>,
    /// The signed-in user's address while it is not verified.
    unverified_email: Option<String>,
}

/// A row of the recent simulations table.
struct Recent {
    id: String,
    when: String,
    paths: u64,
    steps: u64,
    median: String,
}

/// `x` with two decimals and thousands separators (`127,331.79`).
fn money(x: f64) -> String {
    let text = format!("{:.2}", x.abs());
    let (int, frac) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if x < 0.0 { "-" } else { "" };
    format!("{sign}{grouped}.{frac}")
}

/// The signed-in home page.
pub async fn home(s: SignedIn, app: &crate::app::App) -> poem::Result<Response> {
    let report = app.usage.report(&s.ctx, 30).await?;
    let p = &report.period;
    let percent = p
        .quota
        .filter(|q| *q > 0)
        .map_or(0, |q| (p.used.saturating_mul(100) / q).min(100));
    let recent = app
        .simulations
        .list(&s.ctx, None, 5)
        .await?
        .items
        .into_iter()
        .map(|r| Recent {
            id: r.id.to_string(),
            when: r.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
            paths: r.paths,
            steps: r.steps,
            median: money(r.terminal_p50),
        })
        .collect();
    let tenant = &s.tenant;
    let date = |t: chrono::DateTime<chrono::Utc>| t.format("%-d %B %Y").to_string();
    let page = HomePage {
        chrome: s.chrome(Nav::Home),
        first_name: s
            .user
            .full_name
            .split_whitespace()
            .next()
            .unwrap_or("there")
            .to_string(),
        tenant_name: tenant.display_name.clone(),
        slug: tenant.slug.as_str().to_string(),
        tier: tenant.tier.display_name.clone(),
        role: s.role.as_str().to_string(),
        trial_ends: tenant.trial_ends_at.map(date),
        grace_until: tenant.billing_grace_until.map(date),
        billing_suspended: tenant.billing_suspended,
        period: p.period.clone(),
        used: p.used,
        quota: p.quota,
        overage: p.overage,
        percent,
        resets: date(p.resets_at),
        calls_30d: report.daily.iter().map(|d| d.calls).sum(),
        simulations_30d: report.daily.iter().map(|d| d.simulations).sum(),
        errors_30d: report.daily.iter().map(|d| d.errors).sum(),
        keys_30d: report.per_key.len(),
        recent,
        unverified_email: s
            .user
            .email_verified_at
            .is_none()
            .then(|| s.user.email.clone()),
    };
    Ok(page::render(StatusCode::OK, &page))
}

/// `GET /` on a tenant host: home when signed in, else `/login`.
pub async fn root(req: &poem::Request) -> poem::Result<Response> {
    use poem::FromRequest;
    let s = SignedIn::from_request_without_body(req).await?;
    home(s, session::app(req)?).await
}

/// The resend form's field.
#[derive(Debug, serde::Deserialize)]
pub struct ResendForm {
    #[serde(default)]
    csrf: String,
}

/// `POST /verification/resend`: mails the signed-in user a new verification link
/// (`CredentialService::resend_verification`); back home with the outcome as a message (the
/// service's 429 and 409 details included).
#[poem::handler]
pub async fn resend_verification(
    req: &poem::Request,
    s: SignedIn,
    poem::web::Form(form): poem::web::Form<ResendForm>,
) -> poem::Result<Response> {
    s.check_csrf(&form.csrf)?;
    let app = session::app(req)?;
    let home = page::redirect("/");
    Ok(match app.credentials.resend_verification(&s.ctx).await {
        Ok(()) => page::with_flash(
            home,
            "success",
            &format!(
                "A new verification link is on its way to {}. It works for one use.",
                s.user.email
            ),
        ),
        Err(crate::error::AppError::Client(p)) if p.status == 429 || p.status == 409 => {
            page::with_flash(home, "warning", &p.detail)
        }
        Err(err) => return Err(err.into()),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn money_groups_thousands() {
        assert_eq!(super::money(127_331.785_6), "127,331.79");
        assert_eq!(super::money(999.0), "999.00");
        assert_eq!(super::money(-1_234_567.0), "-1,234,567.00");
    }
}
