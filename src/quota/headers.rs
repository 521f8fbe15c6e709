//! Rate-limit response headers and the rejection type.
//!
//! Headers follow the IETF HTTPAPI draft *RateLimit header fields for HTTP*
//! (`draft-ietf-httpapi-ratelimit-headers-10`): `RateLimit-Policy` lists the policies as a
//! structured-field list of strings with parameters `q` (quota units) and `w` (window, seconds);
//! `RateLimit` lists the current state with `r` (remaining units) and `t` (seconds until the
//! quota is restored). The legacy `X-RateLimit-Limit`, `X-RateLimit-Remaining` and
//! `X-RateLimit-Reset` (delta seconds) describe the most restrictive of the listed policies.

use std::fmt;

/// Name of the per-key GCRA burst policy.
pub const POLICY_BURST: &str = "burst";
/// Name of the per-tenant monthly simulation quota policy.
pub const POLICY_MONTHLY: &str = "monthly";
/// Name of the per-tenant concurrent-simulation cap.
pub const POLICY_CONCURRENCY: &str = "concurrency";
/// Name of the login / signup throttle and lockout.
pub const POLICY_LOGIN: &str = "login";

/// The state of one quota policy after a request, as advertised to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitInfo {
    /// Policy name, one of the `POLICY_*` constants.
    pub policy: String,
    /// Quota units (requests or simulations) the policy grants per window (`q`).
    pub quota: u64,
    /// Window length in seconds (`w`).
    pub window_secs: u64,
    /// Units left now (`r`).
    pub remaining: u64,
    /// Seconds, rounded up, until the remaining units are back to `quota` (`t`); for the
    /// monthly quota the time until the period resets.
    pub reset_secs: u64,
}

impl RateLimitInfo {
    /// This policy's item of `RateLimit-Policy`, e.g. `"burst";q=10;w=2`.
    pub fn policy_item(&self) -> String {
        format!(
            "\"{}\";q={};w={}",
            self.policy, self.quota, self.window_secs
        )
    }

    /// This policy's item of `RateLimit`, e.g. `"burst";r=7;t=1`.
    pub fn state_item(&self) -> String {
        format!(
            "\"{}\";r={};t={}",
            self.policy, self.remaining, self.reset_secs
        )
    }

    /// The headers for a response governed by this policy alone.
    pub fn headers(&self) -> Vec<(String, String)> {
        rate_limit_headers(&[self])
    }
}

/// Header name/value pairs for a response governed by `policies` (e.g. burst and monthly on
/// `POST /simulations`, burst alone elsewhere).
///
/// Returns nothing when `policies` is empty. The legacy `X-RateLimit-*` headers describe the
/// policy with the fewest remaining units (ties: the later reset).
pub fn rate_limit_headers(policies: &[&RateLimitInfo]) -> Vec<(String, String)> {
    let Some(tightest) = policies.iter().min_by(|a, b| {
        a.remaining
            .cmp(&b.remaining)
            .then(b.reset_secs.cmp(&a.reset_secs))
    }) else {
        return Vec::new();
    };
    let join = |f: fn(&RateLimitInfo) -> String| {
        policies.iter().map(|p| f(p)).collect::<Vec<_>>().join(", ")
    };
    vec![
        (
            "RateLimit-Policy".to_owned(),
            join(RateLimitInfo::policy_item),
        ),
        ("RateLimit".to_owned(), join(RateLimitInfo::state_item)),
        ("X-RateLimit-Limit".to_owned(), tightest.quota.to_string()),
        (
            "X-RateLimit-Remaining".to_owned(),
            tightest.remaining.to_string(),
        ),
        (
            "X-RateLimit-Reset".to_owned(),
            tightest.reset_secs.to_string(),
        ),
    ]
}

/// A request refused by a limit. The caller answers `status` with a problem-details body
/// (RFC 9457) whose detail is `detail`, naming `policy`, and sets every pair of `headers`
/// (which include `Retry-After` when `retry_after_secs` is known).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// HTTP status: 429 for an exhausted limit, 503 when the quota store cannot be reached.
    pub status: u16,
    /// The violated policy: `"burst"`, `"monthly"`, `"concurrency"` or `"login"`.
    pub policy: String,
    /// Precise, human-readable reason (safe to show to the client).
    pub detail: String,
    /// Whole seconds, rounded up, after which a retry can succeed.
    pub retry_after_secs: Option<u64>,
    /// Response headers: `Retry-After` and, for burst and monthly, the rate-limit headers.
    pub headers: Vec<(String, String)>,
}

impl From<Rejection> for crate::error::AppError {
    fn from(r: Rejection) -> Self {
        crate::error::AppError::limit(r.status, r.policy, r.detail, r.retry_after_secs, r.headers)
    }
}

impl Rejection {
    pub(crate) fn new(
        status: u16,
        policy: &str,
        detail: String,
        retry_after_secs: Option<u64>,
        info: Option<&RateLimitInfo>,
    ) -> Rejection {
        let mut headers = info.map(RateLimitInfo::headers).unwrap_or_default();
        if let Some(secs) = retry_after_secs {
            headers.push(("Retry-After".to_owned(), secs.to_string()));
        }
        Rejection {
            status,
            policy: policy.to_owned(),
            detail,
            retry_after_secs,
            headers,
        }
    }

    /// Short title for the problem body: "Too Many Requests" or "Service Unavailable".
    pub fn title(&self) -> &'static str {
        match self.status {
            429 => "Too Many Requests",
            503 => "Service Unavailable",
            _ => "Request refused",
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} policy): {}",
            self.status, self.policy, self.detail
        )
    }
}

impl std::error::Error for Rejection {}

/// Whole seconds in `d`, rounded up, at least 1: a client that waits that long will succeed.
pub(crate) fn ceil_secs(d: std::time::Duration) -> u64 {
    let s = d.as_secs();
    let s = if d.subsec_nanos() > 0 { s + 1 } else { s };
    s.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn structured_field_syntax() {
        let burst = RateLimitInfo {
            policy: POLICY_BURST.into(),
            quota: 10,
            window_secs: 1,
            remaining: 7,
            reset_secs: 1,
        };
        let monthly = RateLimitInfo {
            policy: POLICY_MONTHLY.into(),
            quota: 1000,
            window_secs: 2_592_000,
            remaining: 998,
            reset_secs: 86_400,
        };
        let h = rate_limit_headers(&[&burst, &monthly]);
        let get = |n: &str| h.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
        assert_eq!(
            get("RateLimit-Policy"),
            Some(r#""burst";q=10;w=1, "monthly";q=1000;w=2592000"#)
        );
        assert_eq!(
            get("RateLimit"),
            Some(r#""burst";r=7;t=1, "monthly";r=998;t=86400"#)
        );
        assert_eq!(get("X-RateLimit-Limit"), Some("10"));
        assert_eq!(get("X-RateLimit-Remaining"), Some("7"));
        assert_eq!(get("X-RateLimit-Reset"), Some("1"));
        assert!(rate_limit_headers(&[]).is_empty());
    }

    #[test]
    fn ceil_rounds_up() {
        use std::time::Duration;
        assert_eq!(ceil_secs(Duration::from_millis(1)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1000)), 1);
        assert_eq!(ceil_secs(Duration::from_millis(1001)), 2);
        assert_eq!(ceil_secs(Duration::ZERO), 1);
    }
}
