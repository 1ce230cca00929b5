//! The providers, one file each (each reads its own typed settings), and
//! what they share: applying a credential, describing a failed HTTP status.

pub mod console;
pub mod http;
pub mod smtp;
pub mod telesign;
pub mod twilio;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use vouchsafe_core::provider::{Credential, ProviderConfig, ProviderSettings};

use crate::outbound::OutboundClient;
use crate::provider::{Provider, ProviderError};

/// Authenticates a request with the provider's credential.
pub(crate) fn apply_credential(
    request: reqwest::RequestBuilder,
    credential: Option<&Credential>,
) -> reqwest::RequestBuilder {
    match credential {
        None => request,
        Some(Credential::Basic { username, password }) => {
            let token = STANDARD.encode(format!("{username}:{password}"));
            request.header("authorization", format!("Basic {token}"))
        }
        Some(Credential::Bearer { token }) => request.header("authorization", format!("Bearer {token}")),
        Some(Credential::Header { header, value }) => request.header(header.as_str(), value.as_str()),
    }
}

pub(crate) fn error_status(status: reqwest::StatusCode) -> ProviderError {
    ProviderError(format!("the provider answered {}", status.as_u16()))
}

/// The provider a configuration describes, ready to send.
pub fn build(config: &ProviderConfig, credential: Option<Credential>, client: &OutboundClient) -> Box<dyn Provider> {
    let (timeout, client) = (config.timeout(), client.clone());
    match config.settings.clone() {
        ProviderSettings::Console(_) => Box::new(console::Console),
        ProviderSettings::Http(settings) => Box::new(http::Http { client, settings, credential, timeout }),
        ProviderSettings::Twilio(settings) => Box::new(twilio::Twilio { client, settings, credential, timeout }),
        ProviderSettings::Telesign(settings) => Box::new(telesign::Telesign { client, settings, credential, timeout }),
        ProviderSettings::Smtp(settings) => Box::new(smtp::Smtp { client, settings, credential, timeout }),
    }
}
