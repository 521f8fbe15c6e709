//! Every route of the server: the API's (`crate::http`) and the web pages (`crate::web`) beside
//! them, inside the one request middleware. The top of the house: it imports both, neither
//! imports it.

use crate::app::App;
use crate::http::edge::EdgeConfig;
use poem::{Endpoint, EndpointExt};
use std::sync::Arc;

/// The API (`/api/v1/…`, `/openapi.json`, `/docs`, `/metrics`, `/webhooks/stripe`), the pages
/// and `/static/…`; a browser's error outside `/api/` is an HTML page
/// ([`crate::web::page::browser_errors`]); all in the request middleware
/// ([`crate::http::serve`]).
pub fn routes(app: Arc<App>, edge: EdgeConfig) -> impl Endpoint {
    let (api, rest) = crate::http::api_routes(app.clone());
    let site = crate::web::mount(rest)
        .nest("/", crate::web::with_root(api))
        .around(crate::web::page::browser_errors);
    crate::http::serve(site, app, edge)
}
