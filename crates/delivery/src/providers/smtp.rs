//! Email through an SMTP server (lettre): `tls` is `starttls` (default,
//! port 587), `tls` (implicit TLS, port 465) or `none` (port 25; for a
//! relay on a trusted network). A `basic` credential logs in. The message
//! is multipart/alternative: the plain-text body and its HTML twin.
//!
//! lettre connects by itself, so the outbound-address rule is applied
//! here: the host is resolved, refused unless every address is public,
//! and the connection goes to that address while TLS still checks the
//! certificate against the host name.

use async_trait::async_trait;
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use vouchsafe_core::outbound::SmtpHost;
use vouchsafe_core::provider::{Credential, SmtpSettings, SmtpTls};

use crate::outbound::{OutboundClient, resolve_public};
use crate::provider::{Accepted, OutgoingMessage, Provider, ProviderError};

pub struct Smtp {
    pub client: OutboundClient,
    pub settings: SmtpSettings,
    pub credential: Option<Credential>,
    pub timeout: std::time::Duration,
}

fn failed(what: &str) -> ProviderError {
    ProviderError(format!("smtp: {what}"))
}

/// lettre's error, reduced to what is safe to store: the SMTP reply code
/// (the server's text may quote the address).
fn smtp_error(e: &lettre::transport::smtp::Error) -> ProviderError {
    if e.is_timeout() {
        return failed("timed out");
    }
    match e.status() {
        Some(code) => failed(&format!("the server answered {code}")),
        None if e.is_tls() => failed("TLS failed"),
        None => failed("could not connect or the connection broke"),
    }
}

impl Smtp {
    fn message(&self, m: &OutgoingMessage) -> Result<Message, ProviderError> {
        let from: Mailbox = self.settings.from.parse().map_err(|_| failed("settings.from is not a mailbox"))?;
        let to: Mailbox = m.to.parse().map_err(|_| failed("the address is not a mailbox"))?;
        let text = m.rendered.text.clone();
        let html = m.rendered.html.clone().unwrap_or_else(|| text.clone());
        // RFC 5322 §3.6.4: every message carries a unique Message-ID. Its
        // right side is the sender's domain, never this machine's name.
        let message_id = format!("<{}@{}>", uuid::Uuid::new_v4().simple(), from.email.domain());
        Message::builder()
            .message_id(Some(message_id))
            .from(from)
            .to(to)
            .subject(m.rendered.subject.clone().unwrap_or_default())
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|_| failed("the message could not be built"))
    }

    async fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, ProviderError> {
        let tls = self.settings.tls.unwrap_or(SmtpTls::Starttls);
        let default_port = match tls {
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
            SmtpTls::Starttls => 587,
        };
        let port = self.settings.port.unwrap_or(default_port);
        let parsed =
            SmtpHost::parse("settings.host", &self.settings.host).map_err(|_| failed("settings.host is not a host"))?;
        let host = parsed.as_string();
        let server = if self.client.allows_private() {
            host.clone()
        } else {
            let addrs = resolve_public(&parsed, port).await.map_err(|e| failed(&e.to_string()))?;
            addrs.first().map(|a| a.ip().to_string()).ok_or_else(|| failed("the host has no address"))?
        };
        let parameters = || TlsParameters::new(host.clone()).map_err(|_| failed("bad TLS parameters"));
        let tls = match tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Tls => Tls::Wrapper(parameters()?),
            SmtpTls::Starttls => Tls::Required(parameters()?),
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(server)
            .port(port)
            .tls(tls)
            .timeout(Some(self.timeout));
        if let Some(Credential::Basic { username, password }) = &self.credential {
            builder = builder.credentials(Credentials::new(username.clone(), password.clone()));
        }
        Ok(builder.build())
    }
}

#[async_trait]
impl Provider for Smtp {
    async fn send(&self, m: &OutgoingMessage) -> Result<Accepted, ProviderError> {
        let message = self.message(m)?;
        let message_id = message.headers().get_raw("Message-ID").map(|id| id.trim().to_owned());
        let transport = self.transport().await?;
        transport.send(message).await.map_err(|e| smtp_error(&e))?;
        Ok(Accepted { provider_message_id: message_id })
    }
}
