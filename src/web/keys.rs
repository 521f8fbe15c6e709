//! API keys page `/keys`: the tenant's keys (name, prefix, created, expiry, last use, creator,
//! state), a create form whose response shows the new secret once, and revoke buttons.
//! Owners and admins manage keys; other roles see a read-only page (writes answer 403).

use super::page::{self, Chrome, FieldErrors, Nav};
use super::session::{self, SignedIn};
use crate::app::keys::CreatedKey;
use crate::domain::{ApiKeyId, KeyName};
use askama::Template;
use chrono::{DateTime, NaiveDate, Utc};
use poem::http::StatusCode;
use poem::web::{Form, Path};
use poem::{Request, Response, handler};
use serde::Deserialize;

/// One row of the keys table.
struct KeyRow {
    id: String,
    name: String,
    prefix: String,
    created: String,
    expires: String,
    last_used: String,
    created_by: String,
    state: &'static str,
    badge: &'static str,
    active: bool,
}

/// The secret of a key created by this very request.
struct NewSecret {
    name: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "keys/list.html")]
struct KeysPage {
    chrome: Chrome,
    can_manage: bool,
    rows: Vec<KeyRow>,
    created: Option<NewSecret>,
    errors: FieldErrors,
    name: String,
    expires_on: String,
    min_date: String,
}

/// The submitted create form.
#[derive(Deserialize)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    expires_on: String,
}

/// The submitted revoke form.
#[derive(Deserialize)]
pub struct RevokeForm {
    #[serde(default)]
    csrf: String,
}

fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn render_page(
    s: &SignedIn,
    app: &crate::app::App,
    status: StatusCode,
    created: Option<&CreatedKey>,
    errors: FieldErrors,
    name: String,
    expires_on: String,
) -> poem::Result<Response> {
    let can_manage = s.ctx.require_manager().is_ok();
    let now = app.clock.now();
    let rows = if can_manage {
        app.keys
            .list_with_creators(&s.ctx)
            .await?
            .into_iter()
            .rev()
            .map(|(k, creator)| {
                let expired = k.expires_at.is_some_and(|e| e <= now);
                let (state, badge) = if k.revoked {
                    ("revoked", "badge-error")
                } else if expired {
                    ("expired", "badge-warning")
                } else {
                    ("active", "badge-success")
                };
                KeyRow {
                    id: k.id.to_string(),
                    name: k.name,
                    prefix: k.prefix,
                    created: when(k.created_at),
                    expires: k.expires_at.map_or_else(|| "never".into(), when),
                    last_used: k.last_used_at.map_or_else(|| "never".into(), when),
                    created_by: creator.unwrap_or_else(|| "—".into()),
                    state,
                    badge,
                    active: state == "active",
                }
            })
            .collect()
    } else {
        Vec::new()
    };
    let tpl = KeysPage {
        chrome: s.chrome(Nav::Keys),
        can_manage,
        rows,
        created: created.map(|c| NewSecret {
            name: c.name.as_str().to_string(),
            secret: c.key.secret.expose().to_string(),
        }),
        errors,
        name,
        expires_on,
        min_date: (now.date_naive() + chrono::Days::new(1))
            .format("%Y-%m-%d")
            .to_string(),
    };
    Ok(page::render(status, &tpl))
}

/// `GET /keys`.
#[handler]
pub async fn list(req: &Request, s: SignedIn) -> poem::Result<Response> {
    let app = session::app(req)?;
    render_page(
        &s,
        app,
        StatusCode::OK,
        None,
        FieldErrors::default(),
        String::new(),
        String::new(),
    )
    .await
}

/// `POST /keys`: creates a key and shows its secret on this response only.
#[handler]
pub async fn create(
    req: &Request,
    s: SignedIn,
    Form(form): Form<CreateForm>,
) -> poem::Result<Response> {
    s.check_csrf(&form.csrf)?;
    s.ctx.require_manager()?;
    let app = session::app(req)?;
    let mut errors = FieldErrors::default();
    let name = KeyName::parse(&form.name);
    if let Err(e) = &name {
        errors.add("name", format!("name {e}"));
    }
    let expires_at = match form.expires_on.trim() {
        "" => None,
        text => match NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            // The key works through the whole chosen day (UTC).
            Ok(d) => d
                .succ_opt()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| t.and_utc()),
            Err(_) => {
                errors.add("expires_at", "expiry must be a date like 2027-01-31");
                None
            }
        },
    };
    let outcome = match (name, errors.is_empty()) {
        (Ok(name), true) => app.keys.create_expiring(&s.ctx, name, expires_at).await,
        _ => {
            return render_page(
                &s,
                app,
                StatusCode::UNPROCESSABLE_ENTITY,
                None,
                errors,
                form.name,
                form.expires_on,
            )
            .await;
        }
    };
    match outcome {
        Ok(created) => {
            render_page(
                &s,
                app,
                StatusCode::CREATED,
                Some(&created),
                FieldErrors::default(),
                String::new(),
                String::new(),
            )
            .await
        }
        Err(err) => {
            let status = StatusCode::from_u16(err.status()).unwrap_or(StatusCode::BAD_REQUEST);
            render_page(
                &s,
                app,
                status,
                None,
                FieldErrors::from_app_error(&err, &["name", "expires_at"]),
                form.name,
                form.expires_on,
            )
            .await
        }
    }
}

/// `POST /keys/{id}/revoke`.
#[handler]
pub async fn revoke(
    req: &Request,
    s: SignedIn,
    Path(id): Path<String>,
    Form(form): Form<RevokeForm>,
) -> poem::Result<Response> {
    s.check_csrf(&form.csrf)?;
    s.ctx.require_manager()?;
    let id = ApiKeyId::parse(&id)
        .map_err(|_| page::fail(StatusCode::NOT_FOUND, "no such API key in this tenant"))?;
    let app = session::app(req)?;
    let key = app.keys.revoke(&s.ctx, id).await?;
    Ok(page::with_flash(
        page::redirect("/keys"),
        "success",
        &format!(
            "Key “{}” ({}…) revoked; the API refuses it from now on.",
            key.name, key.prefix
        ),
    ))
}
