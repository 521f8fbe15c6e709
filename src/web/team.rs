//! The team page `/team`: members (role, status, two-factor, last sign-in), invitations,
//! role changes, deactivation and removal, the team's two-factor rule (owners), and the
//! signed-in user's own sessions. Every change is one `POST /team` form with an `action`
//! field (and `csrf`); the service's refusals (last owner, yourself, admins and owners, an
//! unverified owner) are shown on the page at the service's status.

use super::page::{self, Chrome, FieldErrors, Nav};
use super::session::{self, SignedIn};
use crate::app::invitations::InvitationStatus;
use crate::app::team::UserChange;
use crate::db::users::UserStatus;
use crate::domain::{Email, InvitationId, Role, SessionId, UserId};
use crate::error::AppError;
use askama::Template;
use poem::http::StatusCode;
use poem::web::Form;
use poem::{Request, Response, handler};
use serde::Deserialize;
use std::collections::HashMap;

#[derive(Template)]
#[template(path = "team/team.html")]
struct TeamPage {
    chrome: Chrome,
    can_manage: bool,
    is_owner: bool,
    members: Vec<Member>,
    invitations: Vec<Invitation>,
    sessions: Vec<SessionRow>,
    two_factor_required: bool,
    invite_email: String,
    invite_role: String,
    errors: TeamErrors,
}

/// Errors of the page's forms.
#[derive(Default)]
struct TeamErrors {
    /// The invite form (fields `email`, `role`).
    invite: FieldErrors,
    /// A member action, with the member's id.
    member: Option<(String, String)>,
    /// An invitation action.
    invitations: Option<String>,
    /// The two-factor rule.
    two_factor: Option<String>,
    /// A session action.
    sessions: Option<String>,
}

impl TeamErrors {
    fn member_error(&self, id: &str) -> Option<&str> {
        self.member
            .as_ref()
            .filter(|(m, _)| m == id)
            .map(|(_, e)| e.as_str())
    }
}

struct Member {
    id: String,
    name: String,
    email: String,
    role: String,
    active: bool,
    two_factor: bool,
    verified: bool,
    last_sign_in: String,
    is_me: bool,
    /// The signed-in user may change this member (not themselves; admins not owners).
    manageable: bool,
}

struct Invitation {
    id: String,
    email: String,
    role: String,
    expires: String,
}

struct SessionRow {
    id: String,
    started: String,
    last_used: String,
    ip: String,
    user_agent: String,
    current: bool,
}

/// Roles a manager may give: never owner (ownership is transferred), never above their own.
fn assignable(actor: Role) -> Vec<&'static str> {
    [Role::Admin, Role::Member, Role::Viewer]
        .into_iter()
        .filter(|r| r.rank() <= actor.rank())
        .map(|r| r.as_str())
        .collect()
}

fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

async fn team_page(
    req: &Request,
    s: &SignedIn,
    errors: TeamErrors,
    invite: (String, String),
    status: StatusCode,
) -> poem::Result<Response> {
    let app = session::app(req)?;
    let can_manage = s.role.can_manage();
    let me = s.user.id;
    let list = app.team.list(&s.ctx).await?;
    let (last, invitations) = if can_manage {
        let last: HashMap<UserId, chrono::DateTime<chrono::Utc>> =
            app.team.last_sign_ins(&s.ctx).await?.into_iter().collect();
        let now = app.invitations.now();
        let open = app
            .invitations
            .list(&s.ctx)
            .await?
            .into_iter()
            .filter(|i| InvitationStatus::of(i, now) == InvitationStatus::Pending)
            .map(|i| Invitation {
                id: i.id.to_string(),
                email: i.email,
                role: i.role.as_str().to_string(),
                expires: when(i.expires_at),
            })
            .collect();
        (last, open)
    } else {
        (HashMap::new(), Vec::new())
    };
    let two_factor_required = list
        .first()
        .is_some_and(|(_, st)| st.team_requires_two_factor);
    let members = list
        .into_iter()
        .map(|(u, st)| Member {
            id: u.id.to_string(),
            name: u.full_name,
            email: u.email,
            role: st.role.as_str().to_string(),
            active: st.status == UserStatus::Active,
            two_factor: st.two_factor,
            verified: u.email_verified_at.is_some(),
            last_sign_in: last.get(&u.id).map(|t| when(*t)).unwrap_or_default(),
            is_me: u.id == me,
            manageable: can_manage
                && u.id != me
                && (st.role != Role::Owner || s.role == Role::Owner),
        })
        .collect();
    let current = s.ctx.session();
    let sessions = app
        .sessions
        .list(&s.ctx)
        .await?
        .into_iter()
        .map(|r| SessionRow {
            id: r.id.to_string(),
            started: when(r.created_at),
            last_used: when(r.last_used_at),
            ip: r.ip.unwrap_or_default(),
            user_agent: r.user_agent.unwrap_or_default(),
            current: Some(r.id) == current,
        })
        .collect();
    let tpl = TeamPage {
        chrome: s.chrome(Nav::Team),
        can_manage,
        is_owner: s.role == Role::Owner,
        members,
        invitations,
        sessions,
        two_factor_required,
        invite_email: invite.0,
        invite_role: invite.1,
        errors,
    };
    Ok(page::render(status, &tpl))
}

/// `GET /team`.
#[handler]
pub async fn show(req: &Request, s: SignedIn) -> poem::Result<Response> {
    team_page(
        req,
        &s,
        TeamErrors::default(),
        (String::new(), "member".into()),
        StatusCode::OK,
    )
    .await
}

/// Every form of the page (fields unused by an action are absent).
#[derive(Debug, Deserialize)]
pub struct TeamForm {
    #[serde(default)]
    csrf: String,
    /// `invite`, `revoke-invitation`, `role`, `deactivate`, `reactivate`, `remove`,
    /// `two-factor`, `end-session`.
    #[serde(default)]
    action: String,
    /// The member, invitation or session the action is about.
    #[serde(default)]
    id: String,
    #[serde(default)]
    email: String,
    #[serde(default)]
    role: String,
    /// `on` to require two-factor authentication.
    #[serde(default)]
    required: String,
}

fn status_of(err: &AppError) -> StatusCode {
    StatusCode::from_u16(err.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

fn detail(err: &AppError) -> Option<String> {
    match err {
        AppError::Client(p) => Some(p.detail.clone()),
        _ => None,
    }
}

/// `POST /team`: one action (see [`TeamForm`]); 303 back to `/team` with a message, or the
/// page again with the service's refusal at its status.
#[handler]
pub async fn act(req: &Request, s: SignedIn, Form(f): Form<TeamForm>) -> poem::Result<Response> {
    s.check_csrf(&f.csrf)?;
    let app = session::app(req)?;
    let action = f.action.as_str();
    if action != "end-session" && !s.role.can_manage() {
        return Err(page::fail(
            StatusCode::FORBIDDEN,
            format!(
                "managing the team needs the owner or admin role; you are {}",
                s.role.as_str()
            ),
        ));
    }
    let bad_id = |what: &str| page::fail(StatusCode::NOT_FOUND, format!("no such {what}"));
    let mut errors = TeamErrors::default();
    let mut invite = (String::new(), "member".to_string());
    let outcome: Result<String, AppError> = match action {
        "invite" => {
            let email_text: String = f.email.trim().chars().take(300).collect();
            invite = (email_text.clone(), f.role.clone());
            let email = Email::parse(&email_text);
            let role = Role::parse(f.role.trim());
            match (email, role) {
                (Err(e), _) => Err(AppError::validation("email", e)),
                (_, Err(e)) => Err(AppError::validation("role", e)),
                (Ok(email), Ok(role)) => app
                    .invitations
                    .create(&s.ctx, email, role)
                    .await
                    .map(|inv| format!("Invitation sent to {}.", inv.email)),
            }
        }
        "revoke-invitation" => {
            let id = InvitationId::parse(f.id.trim()).map_err(|_| bad_id("invitation"))?;
            app.invitations
                .revoke(&s.ctx, id)
                .await
                .map(|inv| format!("Invitation of {} revoked.", inv.email))
        }
        "role" | "deactivate" | "reactivate" => {
            let id = UserId::parse(f.id.trim()).map_err(|_| bad_id("member"))?;
            let change = match action {
                "role" => match Role::parse(f.role.trim()) {
                    Ok(r) => Ok(UserChange {
                        role: Some(r),
                        active: None,
                    }),
                    Err(e) => Err(AppError::validation("role", e)),
                },
                "deactivate" => Ok(UserChange {
                    role: None,
                    active: Some(false),
                }),
                _ => Ok(UserChange {
                    role: None,
                    active: Some(true),
                }),
            };
            match change {
                Ok(change) => app.team.update(&s.ctx, id, change).await.map(
                    |(u, st)| match action {
                        "role" => format!("{} is now {}.", u.full_name, st.role.as_str()),
                        "deactivate" => format!(
                            "{} is deactivated: their sessions ended and their keys were revoked.",
                            u.full_name
                        ),
                        _ => format!("{} is active again.", u.full_name),
                    },
                ),
                Err(e) => Err(e),
            }
        }
        "remove" => {
            let id = UserId::parse(f.id.trim()).map_err(|_| bad_id("member"))?;
            app.team.remove(&s.ctx, id).await.map(|()| {
                "Member removed: their sessions ended and their keys were revoked.".into()
            })
        }
        "two-factor" => {
            let required = f.required == "on" || f.required == "true";
            app.two_factor
                .set_team_required(&s.ctx, required)
                .await
                .map(|r| {
                    if r {
                        "The team now requires two-factor authentication.".into()
                    } else {
                        "Two-factor authentication is no longer required.".into()
                    }
                })
        }
        "end-session" => {
            let id = SessionId::parse(f.id.trim()).map_err(|_| bad_id("session"))?;
            let current = s.ctx.session() == Some(id);
            match app.sessions.revoke(&s.ctx, id).await {
                Ok(()) if current => {
                    return Ok(page::with_flash(
                        session::to_login(req, true),
                        "success",
                        "This session was signed out.",
                    ));
                }
                Ok(()) => Ok("Session signed out.".into()),
                Err(e) => Err(e),
            }
        }
        _ => {
            return Err(page::fail(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "unknown action {:?}",
                    f.action.chars().take(40).collect::<String>()
                ),
            ));
        }
    };
    match outcome {
        Ok(message) => Ok(page::with_flash(
            page::redirect("/team"),
            "success",
            &message,
        )),
        Err(err @ AppError::Client(_)) => {
            let status = status_of(&err);
            let text = detail(&err);
            match action {
                "invite" => errors.invite = FieldErrors::from_app_error(&err, &["email", "role"]),
                "revoke-invitation" => errors.invitations = text,
                "two-factor" => errors.two_factor = text,
                "end-session" => errors.sessions = text,
                _ => errors.member = text.map(|t| (f.id.trim().to_string(), t)),
            }
            team_page(req, &s, errors, invite, status).await
        }
        Err(err) => Err(err.into()),
    }
}

impl Member {
    fn has_role(&self, r: &str) -> bool {
        self.role == r
    }
}

/// The roles the signed-in manager may give (for the template).
impl TeamPage {
    fn invite_is(&self, r: &str) -> bool {
        self.invite_role == r
    }

    fn roles(&self) -> Vec<&'static str> {
        match self.chrome.user.as_ref().map(|u| u.role.as_str()) {
            Some("owner") => assignable(Role::Owner),
            Some("admin") => assignable(Role::Admin),
            _ => Vec::new(),
        }
    }
}
