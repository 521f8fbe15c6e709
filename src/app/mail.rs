//! The messages the service sends, and the links in them. A service writes a message with
//! `db::outbox::enqueue` inside the transaction that stores the token it carries, then calls
//! [`Mailer::wake`] after the commit; the sender (`app::mail_sender`) delivers it.

use crate::db::outbox::NewMail;
use crate::domain::{OneTimeToken, Role, TenantSlug};
use chrono::{DateTime, Utc};
use std::sync::Arc;
use tokio::sync::Notify;

/// Paths of the links in mail, below the tenant's public URL. The token is in the query
/// string; the page (or a client) posts it to the matching API operation.
pub const RESET_PATH: &str = "/reset-password";
/// See [`RESET_PATH`].
pub const VERIFY_PATH: &str = "/verify-email";
/// See [`RESET_PATH`].
pub const INVITATION_PATH: &str = "/accept-invitation";

/// Composes messages and wakes the sender.
pub struct Mailer {
    public_url: String,
    wake: Arc<Notify>,
}

impl Mailer {
    /// `public_url` is the base of links with `{tenant}` for the slug (`PUBLIC_URL`); `wake`
    /// is shared with the sender.
    pub fn new(public_url: String, wake: Arc<Notify>) -> Self {
        Self { public_url, wake }
    }

    /// The public base URL (`PUBLIC_URL`, `{tenant}` standing for the slug; no trailing `/`).
    pub fn public_url(&self) -> &str {
        &self.public_url
    }

    /// Tells this instance's sender that a message was committed (others find it by polling).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The link to `path` on `tenant`'s public URL carrying `token`.
    pub fn link(&self, tenant: &TenantSlug, path: &str, token: &OneTimeToken) -> String {
        format!(
            "{}{path}?token={}",
            self.public_url.replace("{tenant}", tenant.as_str()),
            token.expose()
        )
    }

    /// The password-reset message for `email` (valid until `expires_at`).
    pub fn password_reset(
        &self,
        tenant: &TenantSlug,
        tenant_name: &str,
        email: &str,
        token: &OneTimeToken,
        expires_at: DateTime<Utc>,
    ) -> NewMail {
        let link = self.link(tenant, RESET_PATH, token);
        NewMail {
            tenant_id: None,
            kind: "password_reset",
            recipient: email.to_string(),
            subject: format!("Reset your {tenant_name} password"),
            body_text: format!(
                "Someone (hopefully you) asked to reset the password of {email} at {tenant_name} ({tenant}).\n\n\
                 Choose a new password here:\n{link}\n\n\
                 The link works once, until {} (30 minutes). Signing in elsewhere ends when the password changes.\n\
                 API: POST /api/v1/auth/password-reset/confirm with {{\"token\": \"{}\", \"new_password\": \"...\"}} \
                 and X-Tenant-ID: {tenant}.\n\n\
                 If you did not ask for this, ignore this message: your password stays as it is.\n",
                expires_at.format("%Y-%m-%d %H:%M UTC"),
                token.expose(),
            ),
        }
    }

    /// The email-verification message for `email` (valid until `expires_at`).
    pub fn email_verification(
        &self,
        tenant: &TenantSlug,
        tenant_name: &str,
        email: &str,
        token: &OneTimeToken,
        expires_at: DateTime<Utc>,
    ) -> NewMail {
        let link = self.link(tenant, VERIFY_PATH, token);
        NewMail {
            tenant_id: None,
            kind: "email_verification",
            recipient: email.to_string(),
            subject: format!("Confirm your email address for {tenant_name}"),
            body_text: format!(
                "Please confirm that {email} is your address at {tenant_name} ({tenant}):\n{link}\n\n\
                 The link works once, until {}. Inviting members and starting a paid plan need a \
                 confirmed owner address.\n\
                 API: POST /api/v1/auth/verify-email with {{\"token\": \"{}\"}} and X-Tenant-ID: {tenant}.\n",
                expires_at.format("%Y-%m-%d %H:%M UTC"),
                token.expose(),
            ),
        }
    }

    /// The invitation message for `email` to join with `role`, from `inviter`.
    #[allow(clippy::too_many_arguments)]
    pub fn invitation(
        &self,
        tenant: &TenantSlug,
        tenant_name: &str,
        inviter: &str,
        email: &str,
        role: Role,
        token: &OneTimeToken,
        expires_at: DateTime<Utc>,
    ) -> NewMail {
        let link = self.link(tenant, INVITATION_PATH, token);
        NewMail {
            tenant_id: None,
            kind: "invitation",
            recipient: email.to_string(),
            subject: format!("{inviter} invited you to {tenant_name}"),
            body_text: format!(
                "{inviter} invited {email} to join {tenant_name} ({tenant}) as {}.\n\n\
                 Accept here:\n{link}\n\n\
                 The invitation works once, until {}.\n\
                 API: POST /api/v1/invitations/accept with {{\"token\": \"{}\", \"full_name\": \"...\", \
                 \"password\": \"...\"}} and X-Tenant-ID: {tenant}.\n\n\
                 If you do not know {inviter}, ignore this message.\n",
                role.as_str(),
                expires_at.format("%Y-%m-%d %H:%M UTC"),
                token.expose(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_are_on_the_tenant_url_and_carry_the_token() {
        let m = Mailer::new(
            "https://{tenant}.mc.example".into(),
            Arc::new(Notify::new()),
        );
        let slug = TenantSlug::parse("acme").unwrap();
        let token = OneTimeToken::generate();
        let link = m.link(&slug, RESET_PATH, &token);
        assert_eq!(
            link,
            format!(
                "https://acme.mc.example/reset-password?token={}",
                token.expose()
            )
        );
        let mail = m.password_reset(&slug, "Acme", "ada@acme.example", &token, Utc::now());
        assert!(mail.body_text.contains(&link));
        assert_eq!(mail.recipient, "ada@acme.example");
        // ASCII only, so SMTP carries it as 7bit text and the link stays whole in the message.
        for m in [
            mail,
            m.email_verification(&slug, "Acme", "ada@acme.example", &token, Utc::now()),
            m.invitation(
                &slug,
                "Acme",
                "Ada",
                "g@acme.example",
                Role::Viewer,
                &token,
                Utc::now(),
            ),
        ] {
            assert!(m.body_text.is_ascii(), "{}", m.body_text);
            assert!(m.body_text.lines().all(|l| l.len() < 500));
        }
    }
}
