//! The audit page `/audit` (owner and admin): the tenant's audit log newest first, filtered by
//! a GET form (action, actor, since, until), paged with the service's cursor.

use super::page::{self, Chrome, FieldErrors, Nav};
use super::session::SignedIn;
use crate::app::audit::AuditQuery;
use crate::domain::UserId;
use crate::error::AppError;
use askama::Template;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use poem::http::StatusCode;
use poem::web::Query;
use poem::{Request, Response, handler};
use serde::Deserialize;
use std::collections::HashMap;

/// Rows per page.
const PAGE_SIZE: u32 = 50;
/// Longest filter value accepted.
const MAX_FILTER: usize = 200;

#[derive(Template)]
#[template(path = "audit/audit.html")]
struct AuditPage {
    chrome: Chrome,
    filter: Filter,
    actors: Vec<(String, String)>,
    rows: Vec<Row>,
    next: Option<String>,
    first_page: bool,
    errors: FieldErrors,
}

struct Row {
    at: String,
    actor: String,
    action: String,
    target: String,
    details: String,
    ip: String,
    user_agent: String,
}

/// The filter form (all optional).
#[derive(Debug, Default, Deserialize, Clone)]
pub struct Filter {
    #[serde(default)]
    action: String,
    #[serde(default)]
    actor: String,
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    cursor: String,
}

impl Filter {
    /// The query string of this filter with `cursor` (for the next-page link).
    fn next_href(&self, cursor: &str) -> String {
        let mut parts = vec![];
        for (k, v) in [
            ("action", &self.action),
            ("actor", &self.actor),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !v.is_empty() {
                parts.push(format!("{k}={}", enc(v)));
            }
        }
        parts.push(format!("cursor={}", enc(cursor)));
        format!("/audit?{}", parts.join("&"))
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A date (`2026-11-10`, midnight UTC) or a date and time (`2026-11-10T12:30`, UTC).
fn parse_time(field: &str, text: &str, errors: &mut FieldErrors) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let parsed = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .map(|t| Utc.from_utc_datetime(&t))
        })
        .or_else(|| {
            NaiveDate::parse_from_str(text, "%Y-%m-%d")
                .ok()
                .and_then(|d| d.and_hms_opt(0, 0, 0))
                .map(|t| Utc.from_utc_datetime(&t))
        });
    if parsed.is_none() {
        errors.add(
            field,
            format!(
                "{text:?} is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM, UTC)"
            ),
        );
    }
    parsed
}

/// `GET /audit`.
#[handler]
pub async fn list(req: &Request, s: SignedIn, Query(f): Query<Filter>) -> poem::Result<Response> {
    let app = super::session::app(req)?;
    // Owner or admin only (the service says so too; the page answers 403 before any work).
    s.ctx.require_manager()?;
    let mut errors = FieldErrors::default();
    for (name, v) in [
        ("action", &f.action),
        ("actor", &f.actor),
        ("since", &f.since),
        ("until", &f.until),
        ("cursor", &f.cursor),
    ] {
        if v.len() > MAX_FILTER {
            errors.add(name, format!("at most {MAX_FILTER} characters"));
        }
    }
    let users = app.team.list(&s.ctx).await?;
    let names: HashMap<UserId, String> = users
        .iter()
        .map(|(u, _)| (u.id, format!("{} <{}>", u.full_name, u.email)))
        .collect();
    let actor = match f.actor.trim() {
        "" => None,
        a => match UserId::parse(a) {
            Ok(id) => Some(id),
            Err(_) => {
                errors.add("actor", "choose a member of the team");
                None
            }
        },
    };
    let since = parse_time("since", &f.since, &mut errors);
    let until = parse_time("until", &f.until, &mut errors);
    let mut rows = Vec::new();
    let mut next = None;
    if errors.is_empty() {
        let q = AuditQuery {
            action: Some(f.action.trim().to_string()).filter(|a| !a.is_empty()),
            actor,
            since,
            until,
            cursor: Some(f.cursor.trim().to_string()).filter(|c| !c.is_empty()),
            limit: PAGE_SIZE,
        };
        match app.audit.list(&s.ctx, q).await {
            Ok(found) => {
                next = found.next_cursor.map(|c| f.next_href(&c));
                rows = found
                    .items
                    .into_iter()
                    .map(|r| Row {
                        at: r.at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
                        actor: match (r.actor, r.actor_key) {
                            (Some(u), _) => names
                                .get(&u)
                                .cloned()
                                .unwrap_or_else(|| format!("user {u}")),
                            (None, Some(k)) => format!("API key {k}"),
                            (None, None) => "the service".to_string(),
                        },
                        action: r.action,
                        target: r.target.unwrap_or_default(),
                        details: match &r.details {
                            serde_json::Value::Object(m) if m.is_empty() => String::new(),
                            d => d.to_string(),
                        },
                        ip: r.ip.unwrap_or_default(),
                        user_agent: r.user_agent.unwrap_or_default(),
                    })
                    .collect();
            }
            Err(err @ AppError::Client(_)) if err.status() == 422 => {
                errors = FieldErrors::from_app_error(&err, &["since", "until", "cursor", "action"]);
            }
            Err(err) => return Err(err.into()),
        }
    }
    let status = if errors.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let mut actors: Vec<(String, String)> = users
        .iter()
        .map(|(u, _)| (u.id.to_string(), format!("{} <{}>", u.full_name, u.email)))
        .collect();
    actors.sort_by(|a, b| a.1.cmp(&b.1));
    let tpl = AuditPage {
        chrome: s.chrome(Nav::Audit),
        first_page: f.cursor.is_empty(),
        filter: f,
        actors,
        rows,
        next,
        errors,
    };
    Ok(page::render(status, &tpl))
}
