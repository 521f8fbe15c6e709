//! Reading request cookies and the `Secure` attribute of the cookies the pages set.

use crate::app::App;
use poem::Request;
use poem::http::header;
use std::sync::Arc;

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(req: &'a Request, name: &str) -> Option<&'a str> {
    req.headers()
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
}

/// Cookies carry `Secure` when `PUBLIC_URL` is https.
pub fn secure(req: &Request) -> bool {
    req.data::<Arc<App>>()
        .is_some_and(|app| app.mailer.public_url().starts_with("https://"))
}
