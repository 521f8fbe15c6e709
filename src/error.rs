//! The service's error: a status class, a precise user-facing detail, and for unexpected
//! failures the cause (logged, never shown). Every layer below HTTP returns [`AppError`]; the
//! HTTP layer renders it as an RFC 9457 problem (`http::problem`), a page or a CLI message.

use std::fmt;

/// The operation that opens a Stripe Billing Portal session (named in the 402 of a suspended
/// tenant).
pub const BILLING_PORTAL_PATH: &str = "/api/v1/billing/portal";

/// The service's error.
///
/// `Internal` keeps its cause for the log and shows the caller only the request id.
pub enum AppError {
    /// A client-side problem with a public explanation.
    Client(Box<ClientProblem>),
    /// Something unexpected on our side; logged, answered as a bare 500.
    Internal(Box<dyn std::error::Error + Send + Sync>),
    /// A dependency (database, quota store) is unavailable; answered as 503.
    Unavailable(String),
}

/// A client-side problem (4xx).
#[derive(Debug, Clone)]
pub struct ClientProblem {
    /// HTTP status class (4xx).
    pub status: u16,
    /// Machine-readable problem type slug, e.g. `validation`.
    pub kind: &'static str,
    /// What was wrong, precisely.
    pub detail: String,
    /// Offending request field, for validation problems.
    pub field: Option<String>,
    /// Violated policy, for limit problems (`burst`, `monthly`, `size`, …).
    pub policy: Option<String>,
    /// Seconds after which a retry can succeed, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Extra response headers (rate-limit headers on a 429).
    pub headers: Vec<(String, String)>,
    /// For a 402 of a suspended tenant: the path of the billing portal operation.
    pub portal: Option<String>,
}

impl AppError {
    /// A client problem with any 4xx `status` and problem-type slug `kind`.
    pub fn client_status(status: u16, kind: &'static str, detail: impl Into<String>) -> Self {
        Self::client(status, kind, detail)
    }

    fn client(status: u16, kind: &'static str, detail: impl Into<String>) -> Self {
        Self::Client(Box::new(ClientProblem {
            status,
            kind,
            detail: detail.into(),
            field: None,
            policy: None,
            retry_after: None,
            headers: Vec::new(),
            portal: None,
        }))
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::client(400, "bad-request", detail)
    }

    /// 401: credentials are missing, malformed, unknown, expired or for another tenant.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::client(401, "unauthorized", detail)
    }

    /// 402: payment required (trial ended).
    pub fn payment_required(detail: impl Into<String>) -> Self {
        Self::client(402, "payment-required", detail)
    }

    /// 402 because the tenant's billing is suspended; the problem names the portal operation
    /// (`portal` extension member).
    pub fn billing_suspended(detail: impl Into<String>) -> Self {
        let mut err = Self::client(402, "payment-required", detail);
        if let Self::Client(p) = &mut err {
            p.portal = Some(BILLING_PORTAL_PATH.into());
        }
        err
    }

    /// 403: authenticated but not allowed (role, suspended tenant, tier limit).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::client(403, "forbidden", detail)
    }

    /// 404: no such resource (also for another tenant's resource).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::client(404, "not-found", detail)
    }

    /// 409: conflicts with existing state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::client(409, "conflict", detail)
    }

    /// 422: well-formed but semantically invalid; names the field.
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut err = Self::client(422, "validation", detail);
        if let Self::Client(p) = &mut err {
            p.field = Some(field.into());
        }
        err
    }

    /// A limit was hit (`status` 429, 403 or 503), naming the policy.
    pub fn limit(
        status: u16,
        policy: impl Into<String>,
        detail: impl Into<String>,
        retry_after: Option<u64>,
        headers: Vec<(String, String)>,
    ) -> Self {
        Self::Client(Box::new(ClientProblem {
            status,
            kind: "limit-exceeded",
            detail: detail.into(),
            field: None,
            policy: Some(policy.into()),
            retry_after,
            headers,
            portal: None,
        }))
    }

    /// 500 with a logged cause.
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(err.into())
    }

    /// 503: `what` (e.g. "the database") is unavailable.
    pub fn unavailable(what: impl Into<String>) -> Self {
        Self::Unavailable(what.into())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::Client(p) => p.status,
            Self::Internal(_) => 500,
            Self::Unavailable(_) => 503,
        }
    }

    /// Extra response headers (`Retry-After`, rate-limit headers).
    pub fn headers(&self) -> Vec<(String, String)> {
        match self {
            Self::Client(p) => {
                let mut out = p.headers.clone();
                if let Some(secs) = p.retry_after {
                    out.push(("Retry-After".into(), secs.to_string()));
                }
                out
            }
            Self::Unavailable(_) => vec![("Retry-After".into(), "5".into())],
            Self::Internal(_) => Vec::new(),
        }
    }
}

/// Formats an error and its `source()` chain on one line.
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(cause) = cur {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        cur = cause.source();
    }
    out
}

impl fmt::Debug for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(p) => write!(f, "{}: {}", p.status, p.detail),
            Self::Internal(err) => write!(f, "internal: {}", error_chain(err.as_ref())),
            Self::Unavailable(what) => write!(f, "unavailable: {what}"),
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(p) => f.write_str(&p.detail),
            Self::Internal(_) => f.write_str("internal error"),
            Self::Unavailable(what) => write!(f, "{what} is unavailable"),
        }
    }
}

impl std::error::Error for AppError {}

impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) => {
                Self::Unavailable("the database".into())
            }
            // The server is going away, refusing connections, or out of resources: class 08
            // (connection exception), 53 (insufficient resources, e.g. too many connections),
            // 57 (operator intervention: shutdown, terminated backend), 3D000 (the database
            // is gone). Not the request's fault, and worth a retry.
            sqlx::Error::Database(db)
                if db.code().is_some_and(|c| {
                    c.starts_with("08")
                        || c.starts_with("53")
                        || c.starts_with("57")
                        || c == "3D000"
                }) =>
            {
                Self::Unavailable("the database".into())
            }
            _ => Self::Internal(Box::new(err)),
        }
    }
}

impl From<tokio::task::JoinError> for AppError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Internal(Box::new(err))
    }
}
