//! The outermost request middleware: request id and tracing span, problem+json for every
//! error that escaped a handler (including 404/405 and parse errors), extra headers (rate
//! limits, `Retry-After`), and the usage row for every authenticated tenant call.

use crate::error::{ProblemJson, in_request_scope, problem_from_poem_error};
use crate::state::AppState;
use crate::tenancy::{Principal, TenantContext};
use poem::http::{HeaderName, HeaderValue};
use poem::{Endpoint, IntoResponse, Request, Response};
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tracing::Instrument;

/// Per-request facts gathered while the request runs.
pub struct RequestScope {
    /// Request id (UUIDv7), echoed as `X-Request-Id`.
    pub request_id: String,
    started: Instant,
    inner: Mutex<ScopeInner>,
}

#[derive(Default)]
struct ScopeInner {
    caller: Option<(TenantContext, String)>,
    burst: Option<crate::quota::RateLimitInfo>,
    units: i64,
    headers: Vec<(String, String)>,
}

impl RequestScope {
    fn new(request_id: String) -> Self {
        Self {
            request_id,
            started: Instant::now(),
            inner: Mutex::new(ScopeInner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ScopeInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records the authenticated caller and the endpoint pattern (for the usage row).
    pub fn set_caller(&self, ctx: TenantContext, endpoint: String) {
        self.lock().caller = Some((ctx, endpoint));
    }

    /// Records the burst policy's state (headers are combined with the monthly policy's).
    pub fn set_burst(&self, info: crate::quota::RateLimitInfo) {
        let mut inner = self.lock();
        inner.headers.extend(info.headers());
        inner.burst = Some(info);
    }

    /// The burst policy's state of this request, if it was checked.
    pub fn burst(&self) -> Option<crate::quota::RateLimitInfo> {
        self.lock().burst.clone()
    }

    /// Records the work units of this call (paths × steps for a simulation).
    pub fn set_units(&self, units: i64) {
        self.lock().units = units;
    }

    /// Adds headers to the response, whatever its status.
    pub fn add_headers(&self, headers: Vec<(String, String)>) {
        self.lock().headers.extend(headers);
    }
}

fn apply_headers(resp: &mut Response, headers: &[(String, String)]) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::try_from(name.as_str()),
            HeaderValue::try_from(value.as_str()),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
}

/// The middleware body, used with `EndpointExt::around`.
pub async fn around<E: Endpoint>(ep: Arc<E>, mut req: Request) -> poem::Result<Response> {
    let request_id = uuid::Uuid::now_v7().to_string();
    let scope = Arc::new(RequestScope::new(request_id.clone()));
    req.extensions_mut().insert(scope.clone());
    let state = req.data::<Arc<AppState>>().cloned();
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", request_id = %request_id, %method, %path, tenant = tracing::field::Empty);

    if let Err(err) = limit_body(&mut req).await {
        let (problem, _) = in_request_scope(request_id.clone(), path.clone(), async {
            problem_from_poem_error(&err)
        })
        .await
        .0;
        tracing::info!(parent: &span, status = 413, "request body too large");
        return Ok(ProblemJson(problem).into_response());
    }
    let (result, stashed) = in_request_scope(request_id.clone(), path.clone(), ep.call(req))
        .instrument(span.clone())
        .await;
    let mut resp = match result {
        Ok(r) => r.into_response(),
        Err(err)
            if err.is_from_response() && err.downcast_ref::<crate::error::ApiError>().is_none() =>
        {
            // A typed operation response carried as an error (poem-openapi does this for the
            // `Err` side of a handler): it already is a problem+json response.
            err.into_response()
        }
        Err(err) => {
            let (problem, headers) = in_request_scope(request_id.clone(), path.clone(), async {
                problem_from_poem_error(&err)
            })
            .await
            .0;
            let mut resp = ProblemJson(problem).into_response();
            apply_headers(&mut resp, &headers);
            resp
        }
    };
    let (caller, units, headers) = {
        let mut inner = scope.lock();
        (
            inner.caller.take(),
            inner.units,
            std::mem::take(&mut inner.headers),
        )
    };
    apply_headers(&mut resp, &headers);
    apply_headers(&mut resp, &stashed);
    if let Ok(v) = HeaderValue::try_from(request_id.as_str()) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let status = resp.status().as_u16();
    let duration_ms = scope.started.elapsed().as_secs_f64() * 1000.0;
    if let (Some((ctx, endpoint)), Some(state)) = (caller, state)
        && let Err(err) =
            record_usage(&state, &ctx, &method, &endpoint, status, duration_ms, units).await
    {
        tracing::warn!(parent: &span, error = ?err, "could not record usage row");
    }
    tracing::info!(parent: &span, status, duration_ms, "request");
    Ok(resp)
}

/// Refuses bodies over [`crate::startup::MAX_BODY_BYTES`]: a declared `Content-Length` is
/// checked before reading; a chunked body is read with the cap.
async fn limit_body(req: &mut Request) -> Result<(), poem::Error> {
    let max = crate::startup::MAX_BODY_BYTES;
    let too_large = || poem::Error::from_status(poem::http::StatusCode::PAYLOAD_TOO_LARGE);
    let declared = req
        .headers()
        .get(poem::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > max as u64 => Err(too_large()),
        Some(_) => Ok(()),
        None if req
            .headers()
            .contains_key(poem::http::header::TRANSFER_ENCODING) =>
        {
            let bytes = req
                .take_body()
                .into_bytes_limit(max)
                .await
                .map_err(|_| too_large())?;
            req.set_body(bytes);
            Ok(())
        }
        None => Ok(()),
    }
}

async fn record_usage(
    state: &AppState,
    ctx: &TenantContext,
    method: &str,
    endpoint: &str,
    status: u16,
    duration_ms: f64,
    units: i64,
) -> Result<(), crate::error::ApiError> {
    let (key, user) = match ctx.principal {
        Principal::ApiKey(k) => (Some(k.as_uuid()), None),
        Principal::User { id, .. } => (None, Some(id.as_uuid())),
    };
    let mut tx = ctx.begin(&state.pool).await?;
    sqlx::query(
        "INSERT INTO api_call_logs (created_at, api_key_id, user_id, method, endpoint, status, duration_ms, units) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(state.clock.now())
    .bind(key)
    .bind(user)
    .bind(method)
    .bind(endpoint.strip_prefix(&format!("{method} ")).unwrap_or(endpoint))
    .bind(i32::from(status))
    .bind(duration_ms)
    .bind(units)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}
