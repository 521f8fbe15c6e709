//! Password hashing: argon2id with OWASP's minimum parameters (m = 19 MiB, t = 2, p = 1),
//! run on the blocking pool so a hash never stalls the async runtime.

use crate::domain::Password;
use crate::error::AppError;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// argon2id parameters: OWASP's minimum (m = 19 MiB, t = 2, p = 1).
fn argon2() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).expect("OWASP argon2id parameters are valid");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes a password with argon2id on the blocking pool; returns the PHC string.
///
/// # Errors
/// 500 when hashing fails (it does not for valid parameters).
pub async fn hash_password(password: Password) -> Result<String, AppError> {
    tokio::task::spawn_blocking(move || {
        argon2()
            .hash_password(password.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| AppError::internal(format!("argon2: {e}")))
    })
    .await?
}

/// A PHC hash of a random password, verified against when the user does not exist so that
/// unknown and known emails take the same time.
static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Verifies `password` against a PHC string (or a dummy hash when `hash` is `None`) on the
/// blocking pool. Returns `false` for a wrong password or a missing user.
///
/// # Errors
/// 500 when the blocking task fails.
pub async fn verify_password(password: String, hash: Option<String>) -> Result<bool, AppError> {
    tokio::task::spawn_blocking(move || {
        let dummy;
        let phc = match &hash {
            Some(h) => h.as_str(),
            None => {
                dummy = DUMMY_HASH
                    .get_or_init(|| {
                        argon2()
                            .hash_password(b"not-a-real-password-0000")
                            .map(|h| h.to_string())
                            .unwrap_or_default()
                    })
                    .clone();
                dummy.as_str()
            }
        };
        argon2().verify_password(password.as_bytes(), phc).is_ok() && hash.is_some()
    })
    .await
    .map_err(AppError::from)
}

/// The lowest zxcvbn score accepted: 3, "safely unguessable" (about 10^10 guesses or more),
/// the level zxcvbn's authors suggest for accounts worth protecting.
pub const MIN_STRENGTH: u8 = 3;

/// Refuses a weak or common password, saying why. `user_inputs` are words an attacker would try
/// first for this account (email, its local part, the person's and the organisation's names):
/// a password built from them scores low.
///
/// # Errors
/// 422 naming `field`, with zxcvbn's warning and suggestions in the detail.
pub async fn check_strength(
    field: &'static str,
    password: &Password,
    user_inputs: Vec<String>,
) -> Result<(), AppError> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || {
        let mut inputs: Vec<&str> = user_inputs.iter().map(String::as_str).collect();
        let locals: Vec<&str> = user_inputs
            .iter()
            .filter_map(|i| i.split_once('@').map(|(local, _)| local))
            .collect();
        inputs.extend(locals);
        let estimate = zxcvbn::zxcvbn(password.expose(), &inputs);
        let score = u8::from(estimate.score());
        if score >= MIN_STRENGTH {
            return Ok(());
        }
        let mut why = String::new();
        if let Some(feedback) = estimate.feedback() {
            if let Some(warning) = feedback.warning() {
                why.push_str(&format!(" {warning}"));
            }
            for suggestion in feedback.suggestions() {
                why.push_str(&format!(" {suggestion}"));
            }
        }
        if why.is_empty() {
            why = " Add another word or two; uncommon words are better.".into();
        }
        Err(AppError::validation(
            field,
            format!(
                "password is too easy to guess (strength {score} of 4, at least {MIN_STRENGTH} required; about 10^{:.0} guesses).{why}",
                estimate.guesses_log10()
            ),
        ))
    })
    .await?
}

/// Argon2 work equal to one password verification, for a path that must take as long as one
/// that verifies or hashes a password (so its timing reveals nothing).
///
/// # Errors
/// 500 when the blocking task fails.
pub async fn equalising_work() -> Result<(), AppError> {
    verify_password("not-a-real-password-0000".into(), None)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn weak_and_personal_passwords_are_refused_with_the_reason() {
        let p = |s: &str| Password::parse(s).unwrap();
        let err = check_strength("password", &p("password1"), vec![])
            .await
            .unwrap_err();
        let detail = err.to_string();
        assert_eq!(err.status(), 422);
        assert!(detail.contains("too easy to guess"), "{detail}");
        assert!(detail.contains("common password"), "{detail}");
        // Built from the user's own address: refused only because of the inputs.
        let own = p("grace.hopper.acme");
        assert!(check_strength("password", &own, vec![]).await.is_ok());
        assert!(
            check_strength(
                "password",
                &own,
                vec!["grace.hopper@acme.example".into(), "acme".into()]
            )
            .await
            .is_err()
        );
        assert!(
            check_strength("password", &p("correct horse battery"), vec![])
                .await
                .is_ok()
        );
        assert!(
            check_strength("password", &p(&"x".repeat(128)), vec![])
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn passwords_hash_and_verify() {
        let hash = hash_password(Password::parse("correct horse").unwrap())
            .await
            .unwrap();
        assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse!".into(), Some(hash))
                .await
                .unwrap()
        );
        assert!(!verify_password("anything".into(), None).await.unwrap());
    }
}
