//! Calls to URLs that tenants gave us (webhook endpoints and providers), under API.md's outbound-address rule: no loopback, private,
//! link-local or unspecified targets unless the server runs with
//! `allow_private_targets`. The rule is applied when a URL is saved and
//! again at connect time by the client's own DNS resolver, so a name that
//! later resolves to an internal address (DNS rebinding) is refused too.
//! Redirects are not followed: a public URL could redirect inward.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::outbound::{OutboundUrl, is_public};

/// Resolves names and drops every address that is not public.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs = public_addresses(name.as_str(), 0).await?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

async fn public_addresses(host: &str, port: u16) -> Result<Vec<SocketAddr>, BoxError> {
    let all: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
    let public: Vec<SocketAddr> = all.into_iter().filter(|a| is_public(a.ip())).collect();
    if public.is_empty() {
        return Err(format!("{host} resolves to no public address").into());
    }
    Ok(public)
}

/// An HTTP client for tenant-given URLs.
#[derive(Clone)]
pub struct OutboundClient {
    client: reqwest::Client,
    allow_private: bool,
}

impl OutboundClient {
    pub fn new(allow_private: bool, timeout: Duration) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("vouchsafe/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        let client = builder.build().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot build the outbound HTTP client; using defaults without the address rule");
            reqwest::Client::new()
        });
        Self { client, allow_private }
    }

    /// Checks a URL when it is saved: its shape, and (unless private
    /// targets are allowed) that its host resolves to public addresses only.
    pub async fn check_url(&self, field: &str, url: &str) -> Result<OutboundUrl, FieldError> {
        let parsed = OutboundUrl::parse(field, url)?;
        if self.allow_private {
            return Ok(parsed);
        }
        let refused = || FieldError::new(field, "must not point at a loopback, private or link-local address");
        match ip_literal(parsed.as_str()) {
            Some(ip) if is_public(ip) => Ok(parsed),
            Some(_) => Err(refused()),
            None => {
                let host = host_of(parsed.as_str());
                let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                    .await
                    .map_err(|_| FieldError::new(field, "host does not resolve"))?
                    .collect();
                if all.is_empty() || all.iter().any(|a| !is_public(a.ip())) { Err(refused()) } else { Ok(parsed) }
            }
        }
    }

    /// Sends a request to a tenant-given URL. IP literals skip DNS, so the
    /// address rule is checked here for them.
    pub async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Result<reqwest::Response, SendError> {
        if !self.allow_private && ip_literal(url).is_some_and(|ip| !is_public(ip)) {
            return Err(SendError::Refused);
        }
        let mut req = self.client.post(url).header("content-type", "application/json").body(body);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req.send().await.map_err(SendError::from)
    }

    /// A request to a tenant-given URL, for providers to finish and send
    /// with [`OutboundClient::execute`]. IP literals skip DNS, so the
    /// address rule is checked here for them.
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, SendError> {
        if !self.allow_private && ip_literal(url).is_some_and(|ip| !is_public(ip)) {
            return Err(SendError::Refused);
        }
        Ok(self.client.request(method, url))
    }

    pub async fn execute(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, SendError> {
        request.send().await.map_err(SendError::from)
    }

    /// Whether private targets are allowed (SMTP applies the rule itself).
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks a host name (an SMTP server) when it is saved.
    pub async fn check_host(&self, field: &str, host: &str) -> Result<(), FieldError> {
        let valid = !host.is_empty()
            && host.len() <= 253
            && host.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'));
        if !valid {
            return Err(FieldError::new(field, "must be a host name or IP address"));
        }
        if self.allow_private {
            return Ok(());
        }
        resolve_public(host, 25).await.map(|_| ()).map_err(|_| {
            FieldError::new(field, "must resolve to public addresses only (not loopback, private or link-local)")
        })
    }
}

/// The addresses of `host`, refused unless every one is public: the
/// connect-time half of the rule for connections reqwest does not make.
pub async fn resolve_public(host: &str, port: u16) -> Result<Vec<SocketAddr>, SendError> {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let all: Vec<SocketAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::net::lookup_host((bare, port)).await.map_err(|_| SendError::Connect)?.collect(),
    };
    if all.is_empty() || all.iter().any(|a| !is_public(a.ip())) {
        return Err(SendError::Refused);
    }
    Ok(all)
}

/// Why a call failed, in words safe to store and show: never the URL
/// (which may carry credentials) and never a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendError {
    Refused,
    Timeout,
    Connect,
    Other,
}

impl From<reqwest::Error> for SendError {
    fn from(e: reqwest::Error) -> Self {
        if e.is_timeout() {
            Self::Timeout
        } else if e.is_connect() {
            // The public-only resolver's refusal also surfaces as a connect error.
            Self::Connect
        } else {
            Self::Other
        }
    }
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Refused => "refused: the address is loopback, private or link-local",
            Self::Timeout => "timed out",
            Self::Connect => "could not connect (refused, unreachable, or not a public address)",
            Self::Other => "the request failed",
        })
    }
}

/// The address of a URL whose host is an IP literal (`10.0.0.1`, `[::1]`).
fn ip_literal(url: &str) -> Option<IpAddr> {
    host_of(url).trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The host part of an http(s) URL.
fn host_of(url: &str) -> String {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host_port = authority.rsplit('@').next().unwrap_or_default();
    if let Some(end) = host_port.find(']') {
        return host_port[..=end].to_owned();
    }
    host_port.split(':').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_found_in_urls() {
        assert_eq!(host_of("https://crm.example.com:8443/x?y"), "crm.example.com");
        assert_eq!(host_of("http://user:pw@10.0.0.1/hook"), "10.0.0.1");
        assert_eq!(host_of("http://[::1]:80/"), "[::1]");
    }

    #[tokio::test]
    async fn private_targets_are_refused_when_saved_and_when_sent() {
        // reqwest is built without a default TLS provider; the binary installs ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let strict = OutboundClient::new(false, Duration::from_secs(2));
        for url in ["http://127.0.0.1:9/x", "http://localhost:9/x", "http://[::1]:9/", "http://169.254.169.254/latest"]
        {
            let err = strict.check_url("url", url).await.unwrap_err();
            assert_eq!(err.field, "url", "{url}");
        }
        assert_eq!(strict.post("http://127.0.0.1:9/x", vec![], String::new()).await.unwrap_err(), SendError::Refused);
        // Through a name, the resolver refuses at connect time.
        assert_eq!(strict.post("http://localhost:9/x", vec![], String::new()).await.unwrap_err(), SendError::Connect);
        let relaxed = OutboundClient::new(true, Duration::from_secs(2));
        assert!(relaxed.check_url("url", "http://127.0.0.1:9/x").await.is_ok());
    }

    #[tokio::test]
    async fn the_resolver_keeps_only_public_addresses() {
        assert!(public_addresses("localhost", 80).await.is_err());
    }
}
