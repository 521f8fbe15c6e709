//! Where a request came from: the client's address and user agent, as recorded in audit rows
//! and shown in the list of sessions.

/// Longest user agent kept (characters); longer ones are cut.
pub const MAX_USER_AGENT_CHARS: usize = 256;

/// The client of a request: its address (the peer, or the forwarded client behind a trusted
/// proxy) and its `User-Agent`, bounded. Both are informative, never trusted for a decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    ip: Option<String>,
    user_agent: Option<String>,
}

impl Client {
    /// A client seen at `ip` with `user_agent` (control characters dropped, cut to
    /// [`MAX_USER_AGENT_CHARS`]; empty means none).
    pub fn new(ip: Option<String>, user_agent: Option<&str>) -> Self {
        let user_agent = user_agent
            .map(|ua| {
                ua.chars()
                    .filter(|c| !c.is_control())
                    .take(MAX_USER_AGENT_CHARS)
                    .collect::<String>()
            })
            .filter(|ua| !ua.trim().is_empty());
        let ip = ip.filter(|ip| !ip.is_empty() && ip.len() <= 64);
        Self { ip, user_agent }
    }

    /// The client's address (IPv4 or IPv6 text), if known.
    pub fn ip(&self) -> Option<&str> {
        self.ip.as_deref()
    }

    /// The address as the login throttle keys it (`unknown` when none).
    pub fn ip_or_unknown(&self) -> &str {
        self.ip.as_deref().unwrap_or("unknown")
    }

    /// The user agent, if sent.
    pub fn user_agent(&self) -> Option<&str> {
        self.user_agent.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_cleans() {
        let c = Client::new(
            Some("10.0.0.1".into()),
            Some(&format!("a\u{7}b{}", "x".repeat(500))),
        );
        assert_eq!(c.ip(), Some("10.0.0.1"));
        let ua = c.user_agent().unwrap();
        assert!(ua.starts_with("ab"));
        assert_eq!(ua.chars().count(), MAX_USER_AGENT_CHARS);
        assert_eq!(Client::new(None, Some("  ")).user_agent(), None);
        assert_eq!(Client::default().ip_or_unknown(), "unknown");
    }
}
