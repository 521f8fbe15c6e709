//! Public pages of the apex host. This phase: the landing page `/` (the full landing, pricing
//! and signup pages are added here later).

use super::page::{self, Chrome};
use askama::Template;
use poem::http::StatusCode;
use poem::{Request, Response};

#[derive(Template)]
#[template(path = "public/landing.html")]
struct Landing {
    chrome: Chrome,
}

/// `GET /` on the apex host.
pub fn landing(req: &Request) -> Response {
    page::render(
        StatusCode::OK,
        &Landing {
            chrome: Chrome::public(req),
        },
    )
}
