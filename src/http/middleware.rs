//! The outermost request middleware: request id and tracing span, the request scope, load
//! shedding and the request timeout, problem+json for every error that escaped a handler
//! (including 404/405 — with `Allow` — and parse errors), headers recorded during the request
//! (rate limits, `Retry-After`), the security headers of every response, and the usage row of
//! every authenticated tenant call.

use super::edge::Edge;
use super::limits::MAX_BODY_BYTES;
use super::payload::too_large;
use super::problem::{ProblemJson, apply_headers, problem_from_poem_error, response_of};
use super::scope::RequestScope;
use crate::app::App;
use crate::app::usage::Call;
use crate::error::AppError;
use poem::http::{HeaderValue, StatusCode, header};
use poem::{Endpoint, IntoResponse, Request, Response};
use poem_openapi::OperationId;
use std::sync::Arc;
use tracing::Instrument;

/// The middleware body, used with `EndpointExt::around`.
pub async fn around<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let request_id = uuid::Uuid::now_v7().to_string();
    let app = req.data::<Arc<App>>().cloned();
    let edge = req.data::<Arc<Edge>>().cloned();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let scope = RequestScope::new(request_id.clone(), path.clone());
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path, tenant = tracing::field::Empty);

    let unshed = edge.as_ref().is_none_or(|e| e.allow.unshed(&path));
    let mut resp = scope
        .run(async {
            // Load shedding: a request over the in-flight cap is refused before any work.
            let _permit = match (&edge, unshed) {
                (Some(edge), false) => match edge.in_flight.clone().try_acquire_owned() {
                    Ok(p) => Some(p),
                    Err(_) => {
                        return response_of(&AppError::limit(
                            503,
                            "load",
                            format!(
                                "the service is at capacity ({} requests in flight); retry shortly",
                                edge.config.max_in_flight
                            ),
                            Some(1),
                            Vec::new(),
                        ));
                    }
                },
                _ => None,
            };
            if declared_length(&req).is_some_and(|n| n > MAX_BODY_BYTES as u64) {
                return response_of(&too_large(MAX_BODY_BYTES));
            }
            let call = ep.call(req);
            let outcome = match (&edge, unshed) {
                (Some(edge), false) => {
                    match tokio::time::timeout(edge.config.request_timeout, call).await {
                        Ok(outcome) => outcome,
                        Err(_) => {
                            return response_of(&AppError::limit(
                                503,
                                "timeout",
                                format!(
                                    "the request did not finish within {} s; retry later (large simulations: fewer paths)",
                                    edge.config.request_timeout.as_secs()
                                ),
                                Some(5),
                                Vec::new(),
                            ));
                        }
                    }
                }
                _ => call.await,
            };
            let outcome = outcome.map(IntoResponse::into_response);
            let operation = match &outcome {
                Ok(r) => r.data::<OperationId>().cloned(),
                Err(e) => e.data::<OperationId>().cloned(),
            };
            let mut resp = match outcome {
                Ok(r) => r,
                Err(err) if err.is_from_response() && err.downcast_ref::<AppError>().is_none() => {
                    // A typed operation response carried as an error (poem-openapi does this
                    // for the `Err` side of a handler): it already is a problem+json response.
                    err.into_response()
                }
                Err(err) => {
                    let (problem, headers) = problem_from_poem_error(&err);
                    let mut resp = ProblemJson(problem).into_response();
                    apply_headers(&mut resp, &headers);
                    resp
                }
            };
            if let Some(op) = operation {
                resp.set_data(op);
            }
            resp
        })
        .instrument(span.clone())
        .await;
    let finished = scope.finish();
    apply_headers(&mut resp, &finished.headers);
    if resp.status() == StatusCode::METHOD_NOT_ALLOWED
        && let Some(allow) = edge.as_ref().and_then(|e| e.allow.allow(&path))
        && let Ok(v) = HeaderValue::from_str(allow)
    {
        resp.headers_mut().insert(header::ALLOW, v);
    }
    security_headers(&mut resp, &path);
    // While the instance drains before stopping, a kept-alive connection is closed after its
    // answer, so the client's next request opens a new one (to another instance behind a load
    // balancer) instead of racing the close.
    if app.as_ref().is_some_and(|a| a.health.is_draining()) {
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if let Ok(v) = HeaderValue::try_from(request_id.as_str()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let duration_ms = scope.started.elapsed().as_secs_f64() * 1000.0;
    let tier = crate::metrics::tier_label(
        finished
            .caller
            .as_ref()
            .map(|(ctx, _)| ctx.tenant().tier.name.as_str()),
    );
    if let (Some((ctx, endpoint)), Some(app)) = (finished.caller, app) {
        let call = Call {
            method: &method,
            endpoint: &endpoint,
            status,
            duration_ms,
            units: finished.units,
        };
        if let Err(err) = app.usage.record_call(&ctx, &call).await {
            tracing::warn!(parent: &span, error = ?err, "could not record usage row");
        }
    }
    let operation = resp.data::<OperationId>().map_or("other", |o| o.0);
    crate::metrics::http_request(operation, &method, status, tier, scope.started.elapsed());
    tracing::info!(parent: &span, status, duration_ms, "request");
    Ok(resp)
}

fn declared_length(req: &Request) -> Option<u64> {
    req.headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Headers every response carries, unless the endpoint set its own (the docs page sets its
/// Content-Security-Policy).
fn security_headers(resp: &mut Response, path: &str) {
    let h = resp.headers_mut();
    let mut set = |name: header::HeaderName, value: &'static str| {
        if !h.contains_key(&name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(
        header::STRICT_TRANSPORT_SECURITY,
        "max-age=31536000; includeSubDomains",
    );
    // API responses are data for one caller (some carry secrets or tokens): never cached, never
    // rendered as a page.
    set(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; frame-ancestors 'none'",
    );
    if path.starts_with("/api/") {
        set(header::CACHE_CONTROL, "no-store");
    }
}
