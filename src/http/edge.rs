//! What the HTTP edge enforces before and around every operation, configured at start-up:
//! the in-flight cap (load shedding), the request timeout, `Allow` on 405, the client address
//! behind trusted reverse proxies, and the security headers of every response.

use super::contract::AllowTable;
use poem::Request;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Settings of the edge (from `config::Settings`).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Requests served at once; beyond, 503 (health checks exempt).
    pub max_in_flight: usize,
    /// Longest a request may run; beyond, 503 (health checks exempt).
    pub request_timeout: Duration,
    /// Reverse proxies whose `X-Forwarded-For` / `Forwarded` headers are believed.
    pub trusted_proxies: Vec<ipnet::IpNet>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            max_in_flight: 1024,
            request_timeout: Duration::from_secs(300),
            trusted_proxies: Vec::new(),
        }
    }
}

/// The edge's state, attached to every request.
pub struct Edge {
    /// Settings.
    pub config: EdgeConfig,
    /// Permits for requests in flight.
    pub in_flight: Arc<Semaphore>,
    /// Methods of every documented path.
    pub allow: AllowTable,
}

impl Edge {
    /// The edge for `config` and the operations' `allow` table.
    pub fn new(config: EdgeConfig, allow: AllowTable) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(config.max_in_flight)),
            config,
            allow,
        }
    }

    /// The client's address: the peer, or — when the peer is a trusted proxy — the last
    /// address in `X-Forwarded-For` (or `Forwarded: for=`) that is not itself a trusted proxy.
    /// Headers from untrusted peers are ignored (anyone can send them).
    pub fn client_addr(&self, req: &Request) -> String {
        let peer = req.remote_addr().as_socket_addr().map(|a| a.ip());
        self.client_of(peer, req.headers())
    }

    fn client_of(&self, peer: Option<IpAddr>, headers: &poem::http::HeaderMap) -> String {
        let Some(peer) = peer else {
            return "unknown".into();
        };
        if !self.trusted(peer) {
            return peer.to_string();
        }
        let mut hops: Vec<IpAddr> = Vec::new();
        for value in headers.get_all("x-forwarded-for") {
            if let Ok(text) = value.to_str() {
                hops.extend(text.split(',').filter_map(|h| parse_hop(h.trim())));
            }
        }
        if hops.is_empty() {
            for value in headers.get_all("forwarded") {
                if let Ok(text) = value.to_str() {
                    hops.extend(
                        text.split(',')
                            .flat_map(|e| e.split(';'))
                            .filter_map(|pair| {
                                let (k, v) = pair.trim().split_once('=')?;
                                k.trim()
                                    .eq_ignore_ascii_case("for")
                                    .then(|| parse_hop(v.trim()))?
                            }),
                    );
                }
            }
        }
        hops.into_iter()
            .rev()
            .find(|ip| !self.trusted(*ip))
            .unwrap_or(peer)
            .to_string()
    }

    fn trusted(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.config
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&ip))
    }
}

/// An address as forwarding headers write it: `1.2.3.4`, `1.2.3.4:5678`, `"[2001:db8::1]:80"`,
/// `[2001:db8::1]`, `2001:db8::1`.
fn parse_hop(text: &str) -> Option<IpAddr> {
    let t = text.trim_matches('"');
    if let Ok(ip) = t.parse() {
        return Some(ip);
    }
    if let Some(rest) = t.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    t.rsplit_once(':').and_then(|(h, _)| h.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edge(trusted: &[&str]) -> Edge {
        Edge::new(
            EdgeConfig {
                trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
                ..EdgeConfig::default()
            },
            AllowTable::of::<crate::http::Apis>(),
        )
    }

    fn client(edge: &Edge, peer: &str, headers: &[(&str, &str)]) -> String {
        let mut map = poem::http::HeaderMap::new();
        for (k, v) in headers {
            map.append(
                poem::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                poem::http::HeaderValue::from_str(v).unwrap(),
            );
        }
        let peer: std::net::SocketAddr = peer.parse().unwrap();
        edge.client_of(Some(peer.ip()), &map)
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let xff = [("x-forwarded-for", "203.0.113.9, 10.0.0.5")];
        assert_eq!(client(&edge(&[]), "10.0.0.1:4000", &xff), "10.0.0.1");
        assert_eq!(
            client(&edge(&["10.0.0.0/8"]), "10.0.0.1:4000", &xff),
            "203.0.113.9"
        );
        // A client cannot spoof its way past the proxy: the rightmost untrusted hop counts.
        let spoofed = [("x-forwarded-for", "1.1.1.1, 203.0.113.9")];
        assert_eq!(
            client(&edge(&["10.0.0.0/8"]), "10.0.0.1:4000", &spoofed),
            "203.0.113.9"
        );
        let fwd = [("forwarded", "for=\"[2001:db8::7]:443\";proto=https")];
        assert_eq!(
            client(&edge(&["10.0.0.0/8"]), "10.0.0.1:4000", &fwd),
            "2001:db8::7"
        );
        assert_eq!(
            client(&edge(&["10.0.0.0/8"]), "10.0.0.1:4000", &[]),
            "10.0.0.1"
        );
    }
}
