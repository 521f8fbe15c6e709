//! Static files embedded in the binary (`static/`), served at `/static/<hash>/<name>` with
//! `cache-control: public, max-age=31536000, immutable`; `<hash>` is the first 12 hex digits of
//! the file's SHA-256, so a changed file gets a new URL. A URL with another hash (a page
//! rendered by an older build) still gets the current file, with `no-cache`.
//!
//! To add a file: put it under `static/`, add a line to [`FILES`], and reference it in a
//! template with `{{ chrome.asset("js/name.js") }}`.

use poem::http::{StatusCode, header};
use poem::web::Path;
use poem::{Response, handler};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::LazyLock;

macro_rules! file {
    ($name:literal) => {
        (
            $name,
            include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/static/", $name)).as_slice(),
        )
    };
}

/// Every embedded file: (path under `static/`, bytes).
pub const FILES: &[(&str, &[u8])] = &[
    file!("app.css"),
    file!("app.js"),
    file!("favicon.svg"),
    file!("img/fan-chart.svg"),
    file!("vendor/htmx/htmx-2.0.11.min.js"),
    file!("vendor/htmx/LICENSE"),
    file!("vendor/uplot/uPlot-1.6.32.iife.min.js"),
    file!("vendor/uplot/uPlot-1.6.32.min.css"),
    file!("vendor/uplot/LICENSE"),
    file!("js/websim-keys.js"),
    file!("js/websim-new.js"),
    file!("js/websim-result.js"),
    file!("js/webops-usage.js"),
];

struct Asset {
    bytes: &'static [u8],
    hash: String,
    content_type: &'static str,
}

fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("woff2") => "font/woff2",
        _ => "text/plain; charset=utf-8",
    }
}

static ASSETS: LazyLock<HashMap<&'static str, Asset>> = LazyLock::new(|| {
    FILES
        .iter()
        .map(|(name, bytes)| {
            let digest = Sha256::digest(bytes);
            let hash: String = digest.iter().take(6).map(|b| format!("{b:02x}")).collect();
            (
                *name,
                Asset {
                    bytes,
                    hash,
                    content_type: content_type(name),
                },
            )
        })
        .collect()
});

/// The versioned URL of `name` (a path under `static/` listed in [`FILES`]); an unknown name
/// gives `/static/missing/<name>` (a 404, visible in tests).
pub fn url(name: &str) -> String {
    match ASSETS.get(name) {
        Some(a) => format!("/static/{}/{name}", a.hash),
        None => format!("/static/missing/{name}"),
    }
}

/// `GET /static/:hash/*name`.
#[handler]
pub fn serve(Path((hash, name)): Path<(String, String)>) -> Response {
    let Some(asset) = ASSETS.get(name.as_str()) else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .content_type("text/plain; charset=utf-8")
            .body("no such static file");
    };
    let cache = if hash == asset.hash {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Response::builder()
        .content_type(asset.content_type)
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, format!("\"{}\"", asset.hash))
        .body(asset.bytes)
}
