//! One error shape on the wire: RFC 9457 problem details (`application/problem+json`).
//!
//! Handlers and extractors fail with [`ApiError`]; each operation's error enum (made by
//! [`problem_responses!`]) lists only the statuses that operation can return, so the OpenAPI
//! spec documents them. Anything else that escapes — framework parse errors, 404 and 405 from
//! routing — is turned into a [`Problem`] by [`problem_from_poem_error`] in the request
//! middleware. Unexpected errors are logged with their cause chain and answered as a 500 that
//! carries the request id, never the internal message.

use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, payload::Payload};
use std::fmt;

/// Media type of every error body.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// An RFC 9457 problem-details object.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize, serde::Deserialize)]
#[oai(rename = "Problem")]
pub struct Problem {
    /// URI reference naming the problem type (`about:blank` when the status says it all).
    #[oai(rename = "type")]
    #[serde(rename = "type")]
    pub problem_type: String,
    /// Short, human-readable summary of the problem type.
    pub title: String,
    /// HTTP status code.
    pub status: u16,
    /// Explanation specific to this occurrence: what was wrong and how to fix it.
    pub detail: String,
    /// The request path this problem occurred on.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub instance: Option<String>,
    /// Request id (also in the `X-Request-Id` response header); quote it to support.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub request_id: Option<String>,
    /// For validation problems: the offending request field, e.g. `assets[1].weight`.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub field: Option<String>,
    /// For limit problems: the violated policy (`burst`, `monthly`, `concurrency`, `login`, `size`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub policy: Option<String>,
}

/// Payload wrapper that serialises a [`Problem`] as `application/problem+json`.
#[derive(Debug, Clone)]
pub struct ProblemJson(pub Problem);

impl Payload for ProblemJson {
    const CONTENT_TYPE: &'static str = PROBLEM_CONTENT_TYPE;

    fn check_content_type(content_type: &str) -> bool {
        content_type.starts_with(PROBLEM_CONTENT_TYPE)
    }

    fn schema_ref() -> MetaSchemaRef {
        Problem::schema_ref()
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

impl IntoResponse for ProblemJson {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.0.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = self.0.to_json_string();
        Response::builder()
            .status(status)
            .content_type(PROBLEM_CONTENT_TYPE)
            .body(body)
    }
}

impl ApiResponse for ProblemJson {
    fn meta() -> MetaResponses {
        MetaResponses {
            responses: vec![MetaResponse {
                description: "Problem details (RFC 9457)",
                status: None,
                status_range: None,
                content: vec![MetaMediaType {
                    content_type: PROBLEM_CONTENT_TYPE,
                    schema: Self::schema_ref(),
                }],
                headers: vec![],
            }],
        }
    }

    fn register(registry: &mut Registry) {
        Problem::register(registry);
    }
}

/// The service's error: a status plus a precise, user-facing detail.
///
/// `Internal` keeps its cause for the log and shows the caller only the request id.
pub enum ApiError {
    /// A client-side problem with a public explanation.
    Client(Box<ClientProblem>),
    /// Something unexpected on our side; logged, answered as a bare 500.
    Internal(Box<dyn std::error::Error + Send + Sync>),
    /// A dependency (database) is unavailable; answered as 503.
    Unavailable(String),
}

/// A client-side problem (4xx).
#[derive(Debug, Clone)]
pub struct ClientProblem {
    /// HTTP status (4xx).
    pub status: StatusCode,
    /// Machine-readable problem type slug, e.g. `validation`.
    pub kind: &'static str,
    /// What was wrong, precisely.
    pub detail: String,
    /// Offending request field, for validation problems.
    pub field: Option<String>,
    /// Violated policy, for limit problems.
    pub policy: Option<String>,
    /// `Retry-After` seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// Extra headers (rate-limit headers on a 429).
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    fn client(status: StatusCode, kind: &'static str, detail: impl Into<String>) -> Self {
        Self::Client(Box::new(ClientProblem {
            status,
            kind,
            detail: detail.into(),
            field: None,
            policy: None,
            retry_after: None,
            headers: Vec::new(),
        }))
    }

    /// 400: the request is malformed.
    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::BAD_REQUEST, "bad-request", detail)
    }

    /// 401: credentials are missing, malformed, unknown, expired or for another tenant.
    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// 402: payment required (trial ended).
    pub fn payment_required(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::PAYMENT_REQUIRED, "payment-required", detail)
    }

    /// 403: authenticated but not allowed (role, suspended tenant, tier limit).
    pub fn forbidden(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::FORBIDDEN, "forbidden", detail)
    }

    /// 404: no such resource (also for another tenant's resource).
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::NOT_FOUND, "not-found", detail)
    }

    /// 409: conflicts with existing state.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::client(StatusCode::CONFLICT, "conflict", detail)
    }

    /// 422: well-formed but semantically invalid; names the field.
    pub fn validation(field: impl Into<String>, detail: impl Into<String>) -> Self {
        let mut err = Self::client(StatusCode::UNPROCESSABLE_ENTITY, "validation", detail);
        if let Self::Client(p) = &mut err {
            p.field = Some(field.into());
        }
        err
    }

    /// A limit was hit (`status` 429, 403 or 422), naming the policy.
    pub fn limit(
        status: StatusCode,
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
        }))
    }

    /// 500 with a logged cause.
    pub fn internal(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Internal(err.into())
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Client(p) => p.status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Renders the problem body. Logs internal errors with their cause chain.
    pub fn to_problem(&self) -> Problem {
        annotate(self.problem_body())
    }

    fn problem_body(&self) -> Problem {
        match self {
            Self::Client(p) => Problem {
                problem_type: format!("https://docs.montecarlo.dev/problems/{}", p.kind),
                title: p.status.canonical_reason().unwrap_or("Error").to_string(),
                status: p.status.as_u16(),
                detail: p.detail.clone(),
                instance: None,
                request_id: None,
                field: p.field.clone(),
                policy: p.policy.clone(),
            },
            Self::Internal(err) => {
                tracing::error!(error = %error_chain(err.as_ref()), "internal error");
                Problem {
                    problem_type: "about:blank".into(),
                    title: "Internal Server Error".into(),
                    status: 500,
                    detail: "an unexpected error occurred; it has been logged — quote the request id when reporting it".into(),
                    instance: None,
                    request_id: None,
                    field: None,
                    policy: None,
                }
            }
            Self::Unavailable(what) => {
                tracing::warn!(%what, "dependency unavailable");
                Problem {
                    problem_type: "about:blank".into(),
                    title: "Service Unavailable".into(),
                    status: 503,
                    detail: format!("{what} is unavailable; retry shortly"),
                    instance: None,
                    request_id: None,
                    field: None,
                    policy: None,
                }
            }
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

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(p) => write!(f, "{}: {}", p.status, p.detail),
            Self::Internal(err) => write!(f, "internal: {}", error_chain(err.as_ref())),
            Self::Unavailable(what) => write!(f, "unavailable: {what}"),
        }
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Client(p) => f.write_str(&p.detail),
            Self::Internal(_) => f.write_str("internal error"),
            Self::Unavailable(what) => write!(f, "{what} is unavailable"),
        }
    }
}

impl std::error::Error for ApiError {}

impl poem::error::ResponseError for ApiError {
    fn status(&self) -> StatusCode {
        ApiError::status(self)
    }

    fn as_response(&self) -> Response {
        let mut resp = ProblemJson(self.to_problem()).into_response();
        for (name, value) in self.headers() {
            if let (Ok(n), Ok(v)) = (
                poem::http::HeaderName::try_from(name.as_str()),
                poem::http::HeaderValue::try_from(value.as_str()),
            ) {
                resp.headers_mut().insert(n, v);
            }
        }
        resp
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(err: sqlx::Error) -> Self {
        match &err {
            sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => {
                Self::Unavailable("the database".into())
            }
            sqlx::Error::Io(_) => Self::Unavailable("the database".into()),
            _ => Self::Internal(Box::new(err)),
        }
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(err: tokio::task::JoinError) -> Self {
        Self::Internal(Box::new(err))
    }
}

/// Converts any error that escaped a handler (parse errors, 404/405 from routing, our own
/// [`ApiError`]) into a problem response.
pub fn problem_from_poem_error(err: &poem::Error) -> (Problem, Vec<(String, String)>) {
    if let Some(api) = err.downcast_ref::<ApiError>() {
        return (api.to_problem(), api.headers());
    }
    let status = err.status();
    let detail = if status == StatusCode::NOT_FOUND {
        "no such endpoint; see /docs for the API reference".to_string()
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        "this endpoint does not support that HTTP method; see /docs".to_string()
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "the request body is larger than the {} MiB limit",
            crate::startup::MAX_BODY_BYTES / (1024 * 1024)
        )
    } else if status == StatusCode::UNSUPPORTED_MEDIA_TYPE {
        format!("{err}; send the body as application/json")
    } else if status.is_server_error() {
        tracing::error!(error = %err, "unhandled framework error");
        "an unexpected error occurred; it has been logged".to_string()
    } else {
        let text = err.to_string();
        if text.is_empty() {
            status.canonical_reason().unwrap_or("error").to_string()
        } else {
            text
        }
    };
    let kind = match status.as_u16() {
        400 => "bad-request",
        401 => "unauthorized",
        404 => "not-found",
        405 => "method-not-allowed",
        413 => "payload-too-large",
        415 => "unsupported-media-type",
        _ => "error",
    };
    (
        annotate(Problem {
            problem_type: if status.is_server_error() {
                "about:blank".into()
            } else {
                format!("https://docs.montecarlo.dev/problems/{kind}")
            },
            title: status.canonical_reason().unwrap_or("Error").to_string(),
            status: status.as_u16(),
            detail,
            instance: None,
            request_id: None,
            field: None,
            policy: None,
        }),
        Vec::new(),
    )
}

/// Declares an operation's error enum: one `application/problem+json` variant per status the
/// operation can return (documented in the spec), plus `From<ApiError>` (a status outside the
/// list becomes the 500).
///
/// ```ignore
/// problem_responses!(SignupError { BadRequest = 400, Conflict = 409, Invalid = 422 });
/// ```
#[macro_export]
macro_rules! problem_responses {
    ($name:ident { $($variant:ident = $status:tt),* $(,)? }) => {
        $crate::problem_responses!(@enum $name [] $($variant = $status,)*);

        impl From<$crate::error::ApiError> for $name {
            fn from(err: $crate::error::ApiError) -> Self {
                let status = err.status().as_u16();
                let problem = $crate::error::ProblemJson(err.to_problem());
                $crate::error::stash_headers(err.headers());
                match status {
                    $($status => Self::$variant(problem),)*
                    _ => {
                        if status != 500 {
                            tracing::error!(status, "undeclared error status for this operation");
                        }
                        Self::Internal(problem)
                    }
                }
            }
        }

        impl From<sqlx::Error> for $name {
            fn from(err: sqlx::Error) -> Self {
                $crate::error::ApiError::from(err).into()
            }
        }

        impl From<tokio::task::JoinError> for $name {
            fn from(err: tokio::task::JoinError) -> Self {
                $crate::error::ApiError::from(err).into()
            }
        }
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 400, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Malformed request: invalid or empty JSON, conflicting tenant sources, bad header."]
            #[oai(status = 400)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 401, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Missing, malformed, unknown, revoked, expired or foreign credentials."]
            #[oai(status = 401)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 402, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "The tenant's trial has ended."]
            #[oai(status = 402)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 403, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Not allowed: role, suspended tenant, or a tier limit (the detail names the tier that allows it)."]
            #[oai(status = 403)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 404, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "No such resource in this tenant (another tenant's resources are never visible)."]
            #[oai(status = 404)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 409, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Conflicts with existing state (taken slug, duplicate user, idempotency key in use)."]
            #[oai(status = 409)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 422, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Well-formed but invalid input; `field` names the offending field."]
            #[oai(status = 422)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 429, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "A rate limit or quota was hit; see `Retry-After`, the RateLimit headers and `policy`."]
            #[oai(status = 429)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 503, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "A dependency is unavailable; retry after `Retry-After`."]
            #[oai(status = 503)]
            $variant($crate::error::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*]) => {
        /// Error responses of this operation (RFC 9457 problem details).
        #[derive(poem_openapi::ApiResponse, Debug)]
        pub enum $name {
            $($acc)*
            /// Unexpected server error (logged; the body carries the request id).
            #[oai(status = 500)]
            Internal($crate::error::ProblemJson),
        }
    };
}

/// Per-request facts the error layer needs: the request id and path for the problem body, and
/// headers that belong on the error response.
pub struct RequestLocal {
    /// Request id.
    pub request_id: String,
    /// Request path (the problem's `instance`).
    pub path: String,
    headers: std::cell::RefCell<Vec<(String, String)>>,
}

tokio::task_local! {
    static REQUEST: RequestLocal;
}

/// Records headers that belong on the error response being built (e.g. `Retry-After`),
/// for the request middleware to apply. A no-op outside a request scope.
pub fn stash_headers(headers: Vec<(String, String)>) {
    if headers.is_empty() {
        return;
    }
    let _ = REQUEST.try_with(|r| r.headers.borrow_mut().extend(headers));
}

/// Fills `request_id` and `instance` of a problem from the current request, if any.
pub fn annotate(mut problem: Problem) -> Problem {
    let _ = REQUEST.try_with(|r| {
        problem
            .request_id
            .get_or_insert_with(|| r.request_id.clone());
        problem.instance.get_or_insert_with(|| r.path.clone());
    });
    problem
}

/// Runs `fut` inside a request scope and returns its output with the stashed headers.
pub async fn in_request_scope<F: std::future::Future>(
    request_id: String,
    path: String,
    fut: F,
) -> (F::Output, Vec<(String, String)>) {
    let local = RequestLocal {
        request_id,
        path,
        headers: std::cell::RefCell::new(Vec::new()),
    };
    REQUEST
        .scope(local, async move {
            let out = fut.await;
            let headers = REQUEST.with(|r| std::mem::take(&mut *r.headers.borrow_mut()));
            (out, headers)
        })
        .await
}
