//! Calls to URLs that tenants gave us (webhook endpoints and providers),
//! under API.md's outbound-address rule: no loopback, private, link-local
//! or otherwise internal targets unless the server runs with
//! `allow_private_targets`.
//!
//! SECURITY: the rule is applied when a URL is saved and again on every
//! request, on the request reqwest is about to send (its own parsed URL):
//! an IP literal is judged as it is, a name by the client's resolver,
//! which refuses it unless every address DNS returns is public (so DNS
//! rebinding is judged on the addresses actually connected to). Redirects
//! are not followed (a public URL could redirect inward), proxies from
//! the environment are ignored, and answers are read only up to a few KiB.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::outbound::{OutboundUrl, SmtpHost, Target, is_local_name, is_public, target_of_url};

/// The most of any answer from a tenant-given URL that is read: enough
/// for a provider's JSON receipt, never a body that fills memory.
pub const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// Resolves names and refuses a name unless every address is public.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        Box::pin(async move {
            let addrs = public_addresses(Target::Name(name.as_str()), 0).await.map_err(Box::new)?;
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// SECURITY: the addresses of `target`, refused unless every one is
/// public: the one place the rule meets DNS (when a URL or host is saved,
/// in reqwest's resolver, and before lettre connects). `Connect` when a
/// name does not resolve.
async fn public_addresses(target: Target<'_>, port: u16) -> Result<Vec<SocketAddr>, SendError> {
    let all: Vec<SocketAddr> = match target {
        Target::Ip(ip) => vec![SocketAddr::new(ip, port)],
        Target::Name(name) if is_local_name(name) => return Err(SendError::Refused),
        Target::Name(name) => tokio::net::lookup_host((name, port)).await.map_err(|_| SendError::Connect)?.collect(),
    };
    if all.is_empty() || all.iter().any(|a| !is_public(a.ip())) {
        return Err(SendError::Refused);
    }
    Ok(all)
}

/// An HTTP client for tenant-given URLs.
#[derive(Clone)]
pub struct OutboundClient {
    /// `None` when the client could not be built: every call then fails
    /// (never a fallback client without the address rule).
    client: Option<reqwest::Client>,
    allow_private: bool,
}

impl OutboundClient {
    pub fn new(allow_private: bool, timeout: Duration) -> Self {
        let mut builder = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .user_agent(concat!("vouchsafe/", env!("CARGO_PKG_VERSION")));
        if !allow_private {
            builder = builder.dns_resolver(Arc::new(PublicOnlyResolver));
        }
        let client = builder
            .build()
            .inspect_err(
                |e| tracing::error!(error = %e, "cannot build the outbound HTTP client; outbound calls will fail"),
            )
            .ok();
        Self { client, allow_private }
    }

    /// Checks a URL when it is saved: its shape, and (unless private
    /// targets are allowed) that its host is public or resolves to public
    /// addresses only.
    pub async fn check_url(&self, field: &str, url: &str) -> Result<OutboundUrl, FieldError> {
        let parsed = OutboundUrl::parse(field, url)?;
        if self.allow_private {
            return Ok(parsed);
        }
        match public_addresses(parsed.target(), parsed.port()).await {
            Ok(_) => Ok(parsed),
            Err(SendError::Connect) => Err(FieldError::new(field, "host does not resolve")),
            Err(_) => Err(FieldError::new(field, "must not point at a loopback, private or link-local address")),
        }
    }

    /// Posts JSON to a tenant-given URL (webhooks).
    pub async fn post(
        &self,
        url: &str,
        headers: Vec<(&'static str, String)>,
        body: String,
    ) -> Result<reqwest::Response, SendError> {
        let mut req = self.request(reqwest::Method::POST, url)?.header("content-type", "application/json").body(body);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        self.execute(req).await
    }

    /// A request to a tenant-given URL (or one a provider built from it),
    /// for providers to finish and send with [`OutboundClient::execute`].
    /// The text is parsed once here and reqwest gets the parsed URL.
    pub fn request(&self, method: reqwest::Method, url: &str) -> Result<reqwest::RequestBuilder, SendError> {
        let parsed = OutboundUrl::parse("url", url).map_err(|_| SendError::Refused)?;
        let client = self.client.as_ref().ok_or(SendError::Other)?;
        Ok(client.request(method, parsed.into_url()))
    }

    /// Sends a request, after judging the URL reqwest is about to use:
    /// IP literals skip the resolver, so they are checked here.
    pub async fn execute(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, SendError> {
        let request = request.build().map_err(|_| SendError::Refused)?;
        if !self.allow_private {
            let allowed = target_of_url(request.url()).is_some_and(|target| target.is_allowed_without_dns())
                && request.url().username().is_empty()
                && request.url().password().is_none();
            if !allowed {
                return Err(SendError::Refused);
            }
        }
        let client = self.client.as_ref().ok_or(SendError::Other)?;
        client.execute(request).await.map_err(SendError::from)
    }

    /// Whether private targets are allowed (SMTP applies the rule itself).
    pub fn allows_private(&self) -> bool {
        self.allow_private
    }

    /// Checks a host name (an SMTP server) when it is saved.
    pub async fn check_host(&self, field: &str, host: &str) -> Result<(), FieldError> {
        let host = SmtpHost::parse(field, host)?;
        if self.allow_private {
            return Ok(());
        }
        resolve_public(&host, 25).await.map(|_| ()).map_err(|_| {
            FieldError::new(field, "must resolve to public addresses only (not loopback, private or link-local)")
        })
    }
}

/// At most `limit` bytes of an answer, read as they arrive; the rest is
/// never read (the connection is dropped with the response).
pub async fn read_limited(mut response: reqwest::Response, limit: usize) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = limit - body.len();
        if chunk.len() >= room {
            body.extend_from_slice(&chunk[..room]);
            break;
        }
        body.extend_from_slice(&chunk);
    }
    body
}

/// An answer's JSON, if its first [`MAX_ANSWER_BYTES`] hold a whole JSON
/// document; `Null` otherwise.
pub async fn read_json(response: reqwest::Response) -> serde_json::Value {
    let body = read_limited(response, MAX_ANSWER_BYTES).await;
    serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null)
}

/// The addresses of an SMTP host, refused unless every one is public:
/// the connect-time half of the rule for connections reqwest does not make.
pub async fn resolve_public(host: &SmtpHost, port: u16) -> Result<Vec<SocketAddr>, SendError> {
    public_addresses(host.target(), port).await
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

impl std::error::Error for SendError {}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn private_targets_are_refused_when_saved_and_when_sent() {
        // reqwest is built without a default TLS provider; the binary installs ring.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let strict = OutboundClient::new(false, Duration::from_secs(2));
        for url in [
            "http://127.0.0.1:9/x",
            "http://localhost:9/x",
            "http://[::1]:9/",
            "http://169.254.169.254/latest",
            "http://127.0.0.1:9\\@8.8.8.8/a",
            "http://0x7f.1:9/",
        ] {
            let err = strict.check_url("url", url).await.unwrap_err();
            assert_eq!(err.field, "url", "{url}");
            assert_eq!(strict.post(url, vec![], String::new()).await.unwrap_err(), SendError::Refused, "{url}");
        }
        // A name that resolves inward is refused by the resolver at connect time.
        assert_eq!(strict.post("http://localhost.:9/x", vec![], String::new()).await.unwrap_err(), SendError::Refused);
        let relaxed = OutboundClient::new(true, Duration::from_secs(2));
        assert!(relaxed.check_url("url", "http://127.0.0.1:9/x").await.is_ok());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_with_internal_addresses() {
        assert_eq!(public_addresses(Target::Name("localhost"), 80).await.unwrap_err(), SendError::Refused);
        assert_eq!(
            public_addresses(Target::Ip("127.0.0.1".parse().unwrap()), 80).await.unwrap_err(),
            SendError::Refused
        );
        assert!(public_addresses(Target::Name("127.0.0.1.nip.invalid"), 80).await.is_err());
        assert_eq!(public_addresses(Target::Ip("8.8.8.8".parse().unwrap()), 80).await.unwrap().len(), 1);
    }
}
