//! Per-request facts gathered while a request runs, in one task-local [`RequestScope`] set by
//! the middleware: the request id and path (for problem bodies), the authenticated caller (for
//! the usage row), the burst policy's state, work units, and response headers that handlers,
//! extractors and error conversions add whatever the response's status.

use crate::db::TenantContext;
use crate::quota::RateLimitInfo;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

/// Facts about the request being served.
pub struct RequestScope {
    /// Request id (UUIDv7), echoed as `X-Request-Id`.
    pub request_id: String,
    /// Request path (the problem's `instance`).
    pub path: String,
    /// When the request arrived.
    pub started: Instant,
    inner: Mutex<ScopeInner>,
}

#[derive(Default)]
struct ScopeInner {
    caller: Option<(TenantContext, String)>,
    burst: Option<RateLimitInfo>,
    units: i64,
    headers: Vec<(String, String)>,
}

/// What the middleware needs once the handler finished.
pub struct Finished {
    /// The authenticated caller and the endpoint pattern.
    pub caller: Option<(TenantContext, String)>,
    /// Work units.
    pub units: i64,
    /// Headers to add to the response.
    pub headers: Vec<(String, String)>,
}

tokio::task_local! {
    static SCOPE: Arc<RequestScope>;
}

impl RequestScope {
    /// A scope for a new request.
    pub fn new(request_id: String, path: String) -> Arc<Self> {
        Arc::new(Self {
            request_id,
            path,
            started: Instant::now(),
            inner: Mutex::new(ScopeInner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, ScopeInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `fut` with this scope as the current one.
    pub async fn run<F: std::future::Future>(self: &Arc<Self>, fut: F) -> F::Output {
        SCOPE.scope(self.clone(), fut).await
    }

    /// Takes what the handler recorded.
    pub fn finish(&self) -> Finished {
        let mut inner = self.lock();
        Finished {
            caller: inner.caller.take(),
            units: inner.units,
            headers: std::mem::take(&mut inner.headers),
        }
    }
}

/// Runs `f` on the current request's scope; `None` outside a request.
fn with<R>(f: impl FnOnce(&RequestScope) -> R) -> Option<R> {
    SCOPE.try_with(|s| f(s)).ok()
}

/// The current request's id and path, if inside a request.
pub fn request_id_and_path() -> Option<(String, String)> {
    with(|s| (s.request_id.clone(), s.path.clone()))
}

/// Records the authenticated caller and the endpoint pattern (for the usage row).
pub fn set_caller(ctx: TenantContext, endpoint: String) {
    with(|s| s.lock().caller = Some((ctx, endpoint)));
}

/// Records the burst policy's state; its headers go on the response.
pub fn set_burst(info: RateLimitInfo) {
    with(|s| {
        let mut inner = s.lock();
        inner.headers.extend(info.headers());
        inner.burst = Some(info);
    });
}

/// The burst policy's state of this request, if it was checked.
pub fn burst() -> Option<RateLimitInfo> {
    with(|s| s.lock().burst.clone()).flatten()
}

/// Records the work units of this call (paths × steps for a simulation).
pub fn set_units(units: i64) {
    with(|s| s.lock().units = units);
}

/// Adds headers to the response, whatever its status.
pub fn add_headers(headers: Vec<(String, String)>) {
    if headers.is_empty() {
        return;
    }
    with(|s| s.lock().headers.extend(headers));
}
