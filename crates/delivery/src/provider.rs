//! What every provider implements, and the message it is handed.

use async_trait::async_trait;
use vouchsafe_core::channel::Channel;

use crate::templates::Rendered;

/// One message on its way to one destination. `Debug` hides the message
/// and the code.
#[derive(Clone)]
pub struct OutgoingMessage {
    pub channel: Channel,
    /// E.164 number or email address.
    pub to: String,
    /// Masked `to`, for logs.
    pub to_masked: String,
    pub rendered: Rendered,
    /// The code alone, for `http` body templates (`{code}`).
    pub code: String,
    pub locale: Option<String>,
    pub user_id: Option<String>,
    pub network_id: Option<String>,
    pub experience_id: Option<String>,
    /// Where the provider should post delivery receipts, if it can.
    pub status_callback: Option<String>,
}

impl std::fmt::Debug for OutgoingMessage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutgoingMessage")
            .field("channel", &self.channel)
            .field("to", &self.to_masked)
            .finish_non_exhaustive()
    }
}

/// A provider accepted the message.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Accepted {
    /// The provider's id for it (Twilio's `SM…`/`CA…`, Telesign's
    /// reference id, the email's Message-ID), for receipts.
    pub provider_message_id: Option<String>,
}

/// Why a provider did not take the message, in words safe to store and
/// show: a status, a provider error code — never a credential, a URL or
/// the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProviderError(pub String);

impl std::fmt::Display for ProviderError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[async_trait]
pub trait Provider: Send + Sync {
    async fn send(&self, message: &OutgoingMessage) -> Result<Accepted, ProviderError>;
}
