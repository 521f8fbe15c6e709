//! One error shape on the wire: RFC 9457 problem details (`application/problem+json`).
//!
//! Services fail with [`AppError`]; each operation's error enum (made by
//! [`problem_responses!`](crate::problem_responses)) lists only the statuses that operation can
//! return, so the OpenAPI spec documents them. Anything else that escapes — framework parse
//! errors, 404 and 405 from routing — is turned into a [`Problem`] by [`problem_from_poem_error`]
//! in the request middleware. Unexpected errors are logged with their cause chain and answered
//! as a 500 that carries the request id, never the internal message.

use super::limits::MAX_BODY_BYTES;
use super::scope;
use crate::error::{AppError, error_chain};
use poem::http::StatusCode;
use poem::{IntoResponse, Response};
use poem_openapi::registry::{MetaMediaType, MetaResponse, MetaResponses, MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Object, payload::Payload};

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
    /// For a 402 because the tenant's billing is suspended (a payment failed and the grace
    /// period is over): the operation to call for a Stripe Billing Portal session, where the
    /// owner or an admin pays (`POST /api/v1/billing/portal`).
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub portal: Option<String>,
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

/// The problem body of `err`, with the current request's id and path. Logs internal errors
/// with their cause chain.
pub fn problem_of(err: &AppError) -> Problem {
    if let AppError::Client(p) = err
        && let Some(policy) = &p.policy
    {
        crate::metrics::rejected(policy);
    }
    annotate(match err {
        AppError::Client(p) => Problem {
            problem_type: format!("https://docs.montecarlo.dev/problems/{}", p.kind),
            title: reason(p.status),
            status: p.status,
            detail: p.detail.clone(),
            instance: None,
            request_id: None,
            field: p.field.clone(),
            policy: p.policy.clone(),
            portal: p.portal.clone(),
        },
        AppError::Internal(cause) => {
            tracing::error!(error = %error_chain(cause.as_ref()), "internal error");
            Problem {
                problem_type: "about:blank".into(),
                title: "Internal Server Error".into(),
                status: 500,
                detail: "an unexpected error occurred; it has been logged — quote the request id when reporting it".into(),
                instance: None,
                request_id: None,
                field: None,
                policy: None,
                portal: None,
            }
        }
        AppError::Unavailable(what) => {
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
                portal: None,
            }
        }
    })
}

fn reason(status: u16) -> String {
    StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error")
        .to_string()
}

/// Fills `request_id` and `instance` of a problem from the current request, if any.
fn annotate(mut problem: Problem) -> Problem {
    if let Some((request_id, path)) = scope::request_id_and_path() {
        problem.request_id.get_or_insert(request_id);
        problem.instance.get_or_insert(path);
    }
    problem
}

/// The response for `err`: its problem body and headers.
pub fn response_of(err: &AppError) -> Response {
    let mut resp = ProblemJson(problem_of(err)).into_response();
    apply_headers(&mut resp, &err.headers());
    resp
}

/// Sets `headers` on `resp` (invalid names or values are skipped).
pub fn apply_headers(resp: &mut Response, headers: &[(String, String)]) {
    for (name, value) in headers {
        if let (Ok(n), Ok(v)) = (
            poem::http::HeaderName::try_from(name.as_str()),
            poem::http::HeaderValue::try_from(value.as_str()),
        ) {
            resp.headers_mut().insert(n, v);
        }
    }
}

impl poem::error::ResponseError for AppError {
    fn status(&self) -> StatusCode {
        StatusCode::from_u16(AppError::status(self)).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn as_response(&self) -> Response {
        response_of(self)
    }
}

/// Converts any error that escaped a handler (parse errors, 404/405 from routing, our own
/// [`AppError`]) into a problem and its headers.
pub fn problem_from_poem_error(err: &poem::Error) -> (Problem, Vec<(String, String)>) {
    if let Some(app) = err.downcast_ref::<AppError>() {
        return (problem_of(app), app.headers());
    }
    if let Some(path) = err.downcast_ref::<poem_openapi::error::ParsePathError>() {
        // A path that does not parse names nothing.
        let not_found = AppError::not_found(format!(
            "nothing at this path: the {} segment is malformed ({})",
            path.name, path.reason
        ));
        return (problem_of(&not_found), Vec::new());
    }
    if let Some(param) = err.downcast_ref::<poem_openapi::error::ParseParamError>() {
        // A query or header parameter that does not parse: an invalid value, like a body field.
        let invalid = AppError::validation(param.name, format!("{}: {}", param.name, param.reason));
        return (problem_of(&invalid), Vec::new());
    }
    let status = err.status();
    let detail = if status == StatusCode::NOT_FOUND {
        "no such endpoint; see /docs for the API reference".to_string()
    } else if status == StatusCode::METHOD_NOT_ALLOWED {
        "this endpoint does not support that HTTP method; see /docs".to_string()
    } else if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!(
            "the request body is larger than the {} MiB limit",
            MAX_BODY_BYTES / (1024 * 1024)
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
            portal: None,
        }),
        Vec::new(),
    )
}

/// Declares an operation's error enum: one `application/problem+json` variant per status the
/// operation can return (documented in the spec), plus `From<AppError>` (a status outside the
/// list becomes the 500).
///
/// ```ignore
/// problem_responses!(SignupError { BadRequest = 400, Conflict = 409, Invalid = 422 });
/// ```
#[macro_export]
macro_rules! problem_responses {
    ($name:ident { $($variant:ident = $status:tt),* $(,)? }) => {
        $crate::problem_responses!(@enum $name [] $($variant = $status,)*);

        impl From<$crate::error::AppError> for $name {
            fn from(err: $crate::error::AppError) -> Self {
                let status = err.status();
                let problem = $crate::http::problem::ProblemJson($crate::http::problem::problem_of(&err));
                $crate::http::scope::add_headers(err.headers());
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

    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 400, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Malformed request: invalid or empty JSON, conflicting tenant sources, bad header."]
            #[oai(status = 400)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 401, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Missing, malformed, unknown, revoked, expired or foreign credentials."]
            #[oai(status = 401)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 402, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "The tenant's trial has ended."]
            #[oai(status = 402)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 403, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Not allowed: role, suspended tenant, or a tier limit (the detail names the tier that allows it)."]
            #[oai(status = 403)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 404, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "No such resource in this tenant (another tenant's resources are never visible)."]
            #[oai(status = 404)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 409, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Conflicts with existing state (taken slug, duplicate user, idempotency key in use)."]
            #[oai(status = 409)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 422, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "Well-formed but invalid input; `field` names the offending field."]
            #[oai(status = 422)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 429, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "A rate limit or quota was hit; see `Retry-After`, the RateLimit headers and `policy`."]
            #[oai(status = 429)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*] $variant:ident = 503, $($rest:tt)*) => {
        $crate::problem_responses!(@enum $name [$($acc)*
            #[doc = "A dependency is unavailable; retry after `Retry-After`."]
            #[oai(status = 503)]
            $variant($crate::http::problem::ProblemJson),
        ] $($rest)*);
    };
    (@enum $name:ident [$($acc:tt)*]) => {
        /// Error responses of this operation (RFC 9457 problem details).
        #[derive(poem_openapi::ApiResponse, Debug)]
        pub enum $name {
            $($acc)*
            /// Unexpected server error (logged; the body carries the request id).
            #[oai(status = 500)]
            Internal($crate::http::problem::ProblemJson),
        }
    };
}
