//! Cross-site request forgery defences of the pages. Every state-changing form carries a hidden
//! field `csrf`:
//! - signed in: the session's token, derived from the session cookie
//!   (`base64url(SHA-256("mc-csrf:" ‖ cookie))`), so it needs no storage and changes with the
//!   session; check it with `SignedIn::check_csrf`;
//! - signed out (login, signup, password reset): a double-submit token, the random value of
//!   the `mc_csrf` cookie (HttpOnly, SameSite=Lax) that `page::layer` issues on first visit;
//!   check it with [`check_visitor`].
//!
//! Besides, `page::layer` refuses any POST whose `Sec-Fetch-Site` is not `same-origin`/`none`
//! or whose `Origin` is not this host. A refused token answers the 403 page.

use super::cookies;
use poem::Request;
use poem::http::{HeaderValue, StatusCode};
use sha2::{Digest, Sha256};

/// Cookie holding the signed-out double-submit token.
pub const VISITOR_COOKIE: &str = "mc_csrf";

/// The visitor's double-submit token for this request (set by [`prepare`]).
#[derive(Debug, Clone)]
struct VisitorToken(String);

fn well_formed(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn random_token() -> String {
    use base64::Engine;
    use rand::TryRng;
    let mut bytes = [0u8; 32];
    // The OS generator does not fail on supported platforms; a zeroed token would only
    // weaken the double submit (the Origin/Sec-Fetch-Site checks still hold).
    let _ = rand::rngs::SysRng.try_fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Attaches the visitor's token to the request (the `mc_csrf` cookie's, or a new one) and
/// returns the `Set-Cookie` value when a new one must be sent.
pub(super) fn prepare(req: &mut Request) -> Option<HeaderValue> {
    if let Some(existing) = cookies::cookie(req, VISITOR_COOKIE).filter(|t| well_formed(t)) {
        let token = existing.to_string();
        req.set_data(VisitorToken(token));
        return None;
    }
    let token = random_token();
    let secure = if cookies::secure(req) { "; Secure" } else { "" };
    let cookie = format!("{VISITOR_COOKIE}={token}; Path=/; HttpOnly; SameSite=Lax{secure}");
    req.set_data(VisitorToken(token));
    HeaderValue::from_str(&cookie).ok()
}

/// The visitor's double-submit token to put in a signed-out form's `csrf` field.
pub fn visitor_token(req: &Request) -> String {
    req.data::<VisitorToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default()
}

/// Checks a signed-out form's `csrf` field against the `mc_csrf` cookie the browser sent.
///
/// # Errors
/// The 403 page when the cookie is missing or the values differ.
pub fn check_visitor(req: &Request, submitted: &str) -> poem::Result<()> {
    match cookies::cookie(req, VISITOR_COOKIE).filter(|t| well_formed(t)) {
        Some(cookie) if same(cookie, submitted) => Ok(()),
        _ => Err(forged()),
    }
}

/// The per-session token of a session cookie value.
pub fn session_token(cookie: &str) -> String {
    use base64::Engine;
    let digest = Sha256::digest(format!("mc-csrf:{cookie}").as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
}

/// Compares `expected` with `submitted` in constant time (of the SHA-256 digests).
///
/// # Errors
/// The 403 page when they differ.
pub fn check(expected: &str, submitted: &str) -> poem::Result<()> {
    if !expected.is_empty() && same(expected, submitted) {
        Ok(())
    } else {
        Err(forged())
    }
}

fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// A 403 (the page layer renders it as the error page with this detail).
fn forged() -> poem::Error {
    poem::Error::from_string(
        "the form's security token is missing or does not match; reload the page and submit it again",
        StatusCode::FORBIDDEN,
    )
}
