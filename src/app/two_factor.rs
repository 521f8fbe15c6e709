//! Optional two-factor authentication: TOTP (RFC 6238: HMAC-SHA-1, 6 digits, 30 s steps, one
//! step of skew, each step accepted once) with `totp-rs`, and 10 single-use recovery codes
//! stored as SHA-256 hashes (80 random bits each). An owner can require it for the team.

use super::audit::record;
use super::passwords::verify_password;
use super::session_cache::SessionCache;
use crate::clock::SharedClock;
use crate::db::audit::AuditEvent;
use crate::db::users;
use crate::db::{Db, TenantContext, TenantTx};
use crate::domain::{Role, UserId};
use crate::error::AppError;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use totp_rs::{Algorithm, Builder, Totp};

/// The issuer shown by authenticator apps.
pub const ISSUER: &str = "Monte Carlo Platform";

/// Recovery codes given when two-factor authentication is enabled.
pub const RECOVERY_CODES: usize = 10;

/// Random bytes of a TOTP secret (160 bits, RFC 4226 §4).
const SECRET_BYTES: usize = 20;

/// A TOTP secret awaiting confirmation.
#[derive(Debug, Clone)]
pub struct Enrolment {
    /// The secret, base32 (RFC 4648, no padding), for typing into an app.
    pub secret: String,
    /// `otpauth://totp/…` URI (for a QR code).
    pub otpauth_uri: String,
}

/// How a second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecondFactor {
    /// A TOTP code.
    Totp,
    /// A recovery code; `left` unused ones remain.
    RecoveryCode {
        /// Unused codes left.
        left: i64,
    },
}

fn totp(secret: &[u8], account: &str) -> Result<Totp, AppError> {
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_skew(1)
        .with_step_duration(30)
        .with_secret(secret.to_vec())
        .with_account_name(account.replace(':', " "))
        .with_issuer(Some(ISSUER))
        .build()
        .map_err(|e| AppError::internal(format!("totp: {e:?}")))
}

fn random_bytes<const N: usize>() -> Result<[u8; N], AppError> {
    use rand::TryRng;
    let mut bytes = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .map_err(|e| AppError::internal(format!("OS randomness: {e}")))?;
    Ok(bytes)
}

/// A recovery code: 16 characters of RFC 4648 base32 (80 bits) shown as `XXXX-XXXX-XXXX-XXXX`.
fn recovery_code() -> Result<String, AppError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes = random_bytes::<16>()?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(b % 32)] as char)
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The SHA-256 of a recovery code as typed (dashes, spaces and case ignored).
fn recovery_hash(code: &str) -> [u8; 32] {
    let norm: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_uppercase())
        .collect();
    Sha256::digest(norm.as_bytes()).into()
}

fn unix(now: DateTime<Utc>) -> u64 {
    u64::try_from(now.timestamp()).unwrap_or(0)
}

/// Checks a second factor of `user` (whose enabled secret is `secret`) inside the caller's
/// transaction: a 6-digit TOTP code not used before, or an unused recovery code (then used).
///
/// # Errors
/// 401 when the code is wrong or was already used; 422 when it is not a code at all.
pub async fn verify_second_factor(
    tx: &mut TenantTx,
    user: UserId,
    secret: &[u8],
    code: &str,
    now: DateTime<Utc>,
) -> Result<SecondFactor, AppError> {
    let code = code.trim();
    if code.len() > 64 {
        return Err(AppError::validation(
            "otp",
            "a two-factor code is 6 digits, or a recovery code XXXX-XXXX-XXXX-XXXX",
        ));
    }
    let digits: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if digits.len() == 6 && digits.chars().all(|c| c.is_ascii_digit()) {
        let step = totp(secret, "user")?
            .check(&digits, unix(now))
            .ok_or_else(|| AppError::unauthorized("the two-factor code is incorrect or expired"))?;
        let step = i64::try_from(step).unwrap_or(i64::MAX);
        if !users::use_totp_step(tx, user, step).await? {
            return Err(AppError::unauthorized(
                "this two-factor code was already used; wait for the next one (30 s)",
            ));
        }
        return Ok(SecondFactor::Totp);
    }
    match users::use_recovery_code(tx, user, &recovery_hash(code), now).await? {
        Some(left) => Ok(SecondFactor::RecoveryCode { left }),
        None => Err(AppError::unauthorized(
            "the two-factor code is incorrect, or the recovery code was already used",
        )),
    }
}

/// Two-factor enrolment and the team's rule.
pub struct TwoFactorService {
    db: Db,
    cache: Arc<SessionCache>,
    clock: SharedClock,
}

fn signed_in(ctx: &TenantContext) -> Result<(UserId, Role), AppError> {
    ctx.user().ok_or_else(|| {
        AppError::forbidden("two-factor authentication belongs to a signed-in user, not an API key")
    })
}

impl TwoFactorService {
    /// The service.
    /// The service; `cache` is told of every change at once (other instances hear the
    /// `user_changed` notification).
    pub fn new(db: Db, cache: Arc<SessionCache>, clock: SharedClock) -> Self {
        Self { db, cache, clock }
    }

    /// Starts enrolment: a new secret (replacing an unconfirmed one), to confirm with
    /// [`TwoFactorService::enable`].
    ///
    /// # Errors
    /// 409 when two-factor authentication is already enabled.
    pub async fn setup(&self, ctx: &TenantContext) -> Result<Enrolment, AppError> {
        let (user, _) = signed_in(ctx)?;
        let mut tx = ctx.begin(&self.db).await?;
        let row = users::totp_for_update(&mut tx, user).await?;
        if row.secret.is_some() {
            return Err(AppError::conflict(
                "two-factor authentication is already enabled; disable it first to enrol a new device",
            ));
        }
        let me = users::get(&mut tx, user)
            .await?
            .ok_or_else(|| AppError::unauthorized("the user of this token no longer exists"))?;
        let secret = random_bytes::<SECRET_BYTES>()?;
        users::set_totp_pending(&mut tx, user, &secret).await?;
        tx.commit().await?;
        let t = totp(
            &secret,
            &format!("{} ({})", me.email, ctx.tenant().slug.as_str()),
        )?;
        Ok(Enrolment {
            secret: t.secret().to_base32(),
            otpauth_uri: t
                .to_url()
                .map_err(|e| AppError::internal(format!("totp url: {e:?}")))?,
        })
    }

    /// Confirms enrolment with a current code; returns the recovery codes (shown once).
    ///
    /// # Errors
    /// 409 when already enabled or not set up; 422 when the code does not match.
    pub async fn enable(&self, ctx: &TenantContext, code: &str) -> Result<Vec<String>, AppError> {
        let (user, _) = signed_in(ctx)?;
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let row = users::totp_for_update(&mut tx, user).await?;
        if row.secret.is_some() {
            return Err(AppError::conflict(
                "two-factor authentication is already enabled",
            ));
        }
        let Some(pending) = row.pending else {
            return Err(AppError::conflict(
                "no enrolment in progress: call POST /api/v1/auth/2fa/setup first",
            ));
        };
        let step = totp(&pending, "user")?
            .check(code.trim(), unix(now))
            .ok_or_else(|| {
                AppError::validation(
                    "code",
                    "the code does not match the secret from setup (check the device's clock)",
                )
            })?;
        users::enable_totp(
            &mut tx,
            user,
            &pending,
            i64::try_from(step).unwrap_or(i64::MAX),
            now,
        )
        .await?;
        let codes = (0..RECOVERY_CODES)
            .map(|_| recovery_code())
            .collect::<Result<Vec<_>, _>>()?;
        let hashes: Vec<[u8; 32]> = codes.iter().map(|c| recovery_hash(c)).collect();
        users::replace_recovery_codes(&mut tx, user, &hashes).await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(user),
                action: "two_factor.enabled",
                target: &user.to_string(),
                details: serde_json::json!({}),
            },
        )
        .await?;
        tx.commit().await?;
        self.cache.forget_user(Some(user.as_uuid()));
        Ok(codes)
    }

    /// Disables two-factor authentication, proven by the password or a current code.
    ///
    /// # Errors
    /// 409 when not enabled; 403 when the team requires it; 422 without a proof; 401 for a wrong
    /// password or code.
    pub async fn disable(
        &self,
        ctx: &TenantContext,
        password: Option<String>,
        code: Option<String>,
    ) -> Result<(), AppError> {
        let (user, _) = signed_in(ctx)?;
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        let row = users::totp_for_update(&mut tx, user).await?;
        let Some(secret) = row.secret else {
            return Err(AppError::conflict(
                "two-factor authentication is not enabled",
            ));
        };
        if users::team_requires_two_factor(&mut tx).await? {
            return Err(AppError::forbidden(
                "your team requires two-factor authentication; an owner must lift the requirement before you can disable it",
            ));
        }
        let proof = match (code, password) {
            (Some(code), _) => {
                verify_second_factor(&mut tx, user, &secret, &code, now).await?;
                "code"
            }
            (None, Some(password)) => {
                let hash = users::password_hash(&mut tx, user).await?;
                if !verify_password(password, hash).await? {
                    return Err(AppError::unauthorized("the password is incorrect"));
                }
                "password"
            }
            (None, None) => {
                return Err(AppError::validation(
                    "password",
                    "send your password or a current two-factor code to disable two-factor authentication",
                ));
            }
        };
        users::disable_totp(&mut tx, user).await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(user),
                action: "two_factor.disabled",
                target: &user.to_string(),
                details: serde_json::json!({"proof": proof}),
            },
        )
        .await?;
        tx.commit().await?;
        self.cache.forget_user(Some(user.as_uuid()));
        Ok(())
    }

    /// Whether the team requires two-factor authentication.
    ///
    /// # Errors
    /// When PostgreSQL fails.
    pub async fn team_required(&self, ctx: &TenantContext) -> Result<bool, AppError> {
        let mut tx = ctx.begin(&self.db).await?;
        let required = users::team_requires_two_factor(&mut tx).await?;
        tx.commit().await?;
        Ok(required)
    }

    /// Requires (or stops requiring) two-factor authentication for the team (owner only; an
    /// owner must have it before requiring it). Members without it are asked to enrol on their
    /// next request.
    ///
    /// # Errors
    /// 403 for other callers; 409 when requiring it without having it.
    pub async fn set_team_required(
        &self,
        ctx: &TenantContext,
        required: bool,
    ) -> Result<bool, AppError> {
        let (user, role) = signed_in(ctx)?;
        if role != Role::Owner {
            return Err(AppError::forbidden(format!(
                "only an owner can change the team's two-factor rule; you are {}",
                role.as_str()
            )));
        }
        let now = self.clock.now();
        let mut tx = ctx.begin(&self.db).await?;
        if required
            && users::totp_for_update(&mut tx, user)
                .await?
                .secret
                .is_none()
        {
            return Err(AppError::conflict(
                "enable two-factor authentication for yourself before requiring it for the team",
            ));
        }
        users::set_team_requires_two_factor(&mut tx, required, now).await?;
        record(
            &mut tx,
            ctx,
            AuditEvent {
                at: now,
                actor: Some(user),
                action: "team.two_factor_required",
                target: &ctx.tenant().id.to_string(),
                details: serde_json::json!({"required": required}),
            },
        )
        .await?;
        tx.commit().await?;
        // Every user's "must enrol" state changed: this instance applies it before answering.
        self.cache.forget_user(None);
        Ok(required)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_reference_and_recovery_codes() {
        // RFC 6238 Appendix B, SHA-1 secret "12345678901234567890", T = 59 s → 94287082 (8
        // digits); its last 6 digits are the 6-digit code.
        let t = totp(b"12345678901234567890", "a@b.example").unwrap();
        assert_eq!(t.generate(59).to_string(), "287082");
        assert_eq!(t.check("287082", 59), Some(1));
        assert_eq!(t.check("287082", 59 + 90), None);
        let code = recovery_code().unwrap();
        assert_eq!(code.len(), 19);
        assert_eq!(
            recovery_hash(&code),
            recovery_hash(&code.to_lowercase().replace('-', " "))
        );
    }
}
