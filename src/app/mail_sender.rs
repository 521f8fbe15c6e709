//! The mail sender: a background task beside the services (started by `startup.rs` on every
//! instance) that delivers `platform.mail_outbox`. It claims due messages with
//! `FOR UPDATE SKIP LOCKED` (so instances never send the same message at once), delivers them
//! outside any transaction over SMTP (`lettre`), and records the outcome: sent, due again after
//! an exponential back-off (`MAIL_RETRY_BASE_SECS` × 2^(attempt − 1), at most
//! `MAIL_RETRY_MAX_SECS`), or given up after `MAIL_MAX_ATTEMPTS` attempts or a permanent SMTP
//! refusal (5xx), with the last error kept. Delivery is at least once: a sender that dies
//! between the SMTP `250` and recording it sends the message again when its lease ends.
//!
//! Once delivered over SMTP a message's body is removed from its row, so no live link stays
//! readable in the database. Without `SMTP_URL` (development) every message is written to the
//! log and marked sent, its body kept.

use crate::clock::SharedClock;
use crate::config::MailSettings;
use crate::db::Db;
use crate::db::outbox::{self, ClaimedMail};
use crate::error::AppError;
use chrono::Duration;
use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

/// Messages claimed per round.
pub const BATCH: i64 = 20;

/// How long a claimed message is leased before another sender may retry it.
pub const LEASE_SECS: i64 = 300;

/// How a message leaves the service.
enum Transport {
    /// No `SMTP_URL`: written to the log (development).
    Log,
    /// An SMTP server.
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// `SMTP_URL` could not be used: every attempt fails with this reason.
    Broken(String),
}

/// Why one delivery failed.
struct Failure {
    error: String,
    permanent: bool,
}

/// Delivers the outbox.
pub struct MailSender {
    db: Db,
    clock: SharedClock,
    transport: Transport,
    from: Option<Mailbox>,
    max_attempts: u32,
    retry_base_secs: u64,
    retry_max_secs: u64,
    poll: std::time::Duration,
}

impl MailSender {
    /// The sender for `settings` (the SMTP connection is opened per round, not here).
    pub fn new(settings: &MailSettings, db: Db, clock: SharedClock) -> Self {
        let transport = match &settings.smtp_url {
            None => Transport::Log,
            Some(url) => match AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose()) {
                Ok(builder) => Transport::Smtp(
                    builder
                        .timeout(Some(std::time::Duration::from_secs(15)))
                        .build(),
                ),
                Err(e) => Transport::Broken(format!("SMTP_URL cannot be used: {e}")),
            },
        };
        Self {
            db,
            clock,
            transport,
            from: settings.from.parse().ok(),
            max_attempts: settings.max_attempts,
            retry_base_secs: settings.retry_base_secs,
            retry_max_secs: settings.retry_max_secs,
            poll: std::time::Duration::from_millis(settings.poll_ms),
        }
    }

    /// How often an idle sender looks for due messages.
    pub fn poll_interval(&self) -> std::time::Duration {
        self.poll
    }

    /// Whether messages go to the log instead of an SMTP server.
    pub fn logs_only(&self) -> bool {
        matches!(self.transport, Transport::Log)
    }

    /// The delay before attempt `attempts + 1`, after `attempts` failed ones.
    pub fn backoff(&self, attempts: u32) -> Duration {
        let exp = attempts.saturating_sub(1).min(30);
        let secs = self
            .retry_base_secs
            .saturating_mul(1u64 << exp)
            .min(self.retry_max_secs);
        Duration::seconds(secs as i64)
    }

    /// One round: claims up to [`BATCH`] due messages, delivers each and records the outcome.
    /// Returns how many were claimed.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn run_once(&self) -> Result<usize, AppError> {
        let claimed = outbox::claim(
            &self.db,
            self.clock.now(),
            Duration::seconds(LEASE_SECS),
            BATCH,
        )
        .await?;
        for mail in &claimed {
            let outcome = self.deliver(mail).await;
            let now = self.clock.now();
            match outcome {
                Ok(()) => {
                    // Delivered over SMTP: the body (with its link) is removed from the row.
                    // Written to the log (development): kept, the log has it anyway.
                    outbox::mark_sent(&self.db, mail.id, now, !self.logs_only()).await?;
                }
                Err(f) => {
                    let attempts = u32::try_from(mail.attempts).unwrap_or(u32::MAX);
                    let give_up = f.permanent || attempts >= self.max_attempts;
                    let retry_at = (!give_up).then(|| now + self.backoff(attempts));
                    tracing::warn!(
                        id = %mail.id, kind = %mail.kind, attempts, give_up,
                        error = %f.error, "mail delivery failed"
                    );
                    outbox::mark_failed(&self.db, mail.id, &f.error, retry_at, now).await?;
                }
            }
        }
        Ok(claimed.len())
    }

    async fn deliver(&self, mail: &ClaimedMail) -> Result<(), Failure> {
        let smtp = match &self.transport {
            Transport::Log => {
                tracing::info!(
                    kind = %mail.kind, to = %mail.recipient, subject = %mail.subject,
                    "mail (SMTP_URL is not set, so it is written here instead of sent):\n{}",
                    mail.body_text
                );
                return Ok(());
            }
            Transport::Broken(why) => {
                return Err(Failure {
                    error: why.clone(),
                    permanent: false,
                });
            }
            Transport::Smtp(t) => t,
        };
        let permanent = |error: String| Failure {
            error,
            permanent: true,
        };
        let from = self
            .from
            .clone()
            .ok_or_else(|| permanent("MAIL_FROM is not a mailbox".into()))?;
        let to: Mailbox = mail
            .recipient
            .parse()
            .map_err(|e| permanent(format!("recipient {:?}: {e}", mail.recipient)))?;
        let message = Message::builder()
            .from(from)
            .to(to)
            .subject(mail.subject.clone())
            .header(ContentType::TEXT_PLAIN)
            .body(mail.body_text.clone())
            .map_err(|e| permanent(format!("message: {e}")))?;
        smtp.send(message).await.map(|_| ()).map_err(|e| Failure {
            permanent: e.is_permanent(),
            error: crate::error::error_chain(&e),
        })
    }
}

/// Runs the sender until the application is dropped: a round whenever a message was written on
/// this instance (`wake`) or every poll interval, repeated while rounds come back full.
pub fn spawn(
    app: std::sync::Weak<crate::app::App>,
    wake: std::sync::Arc<tokio::sync::Notify>,
    poll: std::time::Duration,
) {
    tokio::spawn(async move {
        loop {
            let Some(a) = app.upgrade() else { return };
            loop {
                match a.mail_sender.run_once().await {
                    Ok(n) if n as i64 >= BATCH => continue,
                    Ok(_) => break,
                    Err(err) => {
                        tracing::warn!(error = ?err, "mail sender round failed");
                        break;
                    }
                }
            }
            drop(a);
            tokio::select! {
                () = wake.notified() => {}
                () = tokio::time::sleep(poll) => {}
            }
        }
    });
}
