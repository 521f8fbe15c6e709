//! The outermost request middleware: request id and tracing span, the request scope,
//! problem+json for every error that escaped a handler (including 404/405 and parse errors),
//! headers recorded during the request (rate limits, `Retry-After`), and the usage row of every
//! authenticated tenant call.

use super::limits::MAX_BODY_BYTES;
use super::problem::{ProblemJson, apply_headers, problem_from_poem_error};
use super::scope::RequestScope;
use crate::app::App;
use crate::app::usage::Call;
use poem::http::HeaderValue;
use poem::{Endpoint, IntoResponse, Request, Response};
use std::sync::Arc;
use tracing::Instrument;

/// The middleware body, used with `EndpointExt::around`.
pub async fn around<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let request_id = uuid::Uuid::now_v7().to_string();
    let app = req.data::<Arc<App>>().cloned();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let scope = RequestScope::new(request_id.clone(), path.clone());
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path, tenant = tracing::field::Empty);

    if let Err(err) = limit_body(&mut req).await {
        let (problem, _) = scope.run(async { problem_from_poem_error(&err) }).await;
        tracing::info!(parent: &span, status = 413, "request body too large");
        return Ok(ProblemJson(problem).into_response());
    }
    let mut resp = scope
        .run(async {
            match ep.call(req).await {
                Ok(r) => r.into_response(),
                Err(err)
                    if err.is_from_response()
                        && err.downcast_ref::<crate::error::AppError>().is_none() =>
                {
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
            }
        })
        .instrument(span.clone())
        .await;
    let finished = scope.finish();
    apply_headers(&mut resp, &finished.headers);
    if let Ok(v) = HeaderValue::try_from(request_id.as_str()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let duration_ms = scope.started.elapsed().as_secs_f64() * 1000.0;
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
    tracing::info!(parent: &span, status, duration_ms, "request");
    Ok(resp)
}

/// Refuses bodies over [`MAX_BODY_BYTES`]: a declared `Content-Length` is checked before
/// reading; a chunked body is read with the cap.
async fn limit_body(req: &mut Request) -> Result<(), poem::Error> {
    let too_large = || poem::Error::from_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE);
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > MAX_BODY_BYTES as u64 => Err(too_large()),
        Some(_) => Ok(()),
        None if req
            .headers()
            .contains_key(poem::http::header::TRANSFER_ENCODING) =>
        {
            let bytes = req
                .take_body()
                .into_bytes_limit(MAX_BODY_BYTES)
                .await
                .map_err(|_| too_large())?;
            req.set_body(bytes);
            Ok(())
        }
        None => Ok(()),
    }
}
