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

#[cfg(test)]
mod tests {
    use super::*;

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
