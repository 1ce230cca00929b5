//! The development default: writes the message to the server log instead
//! of sending it, so the whole flow works with no SMS account. It logs the
//! message — code included — on purpose, at `warn` so it stands out; a
//! production tenant replaces it with a real provider.

use async_trait::async_trait;

use crate::provider::{Accepted, OutgoingMessage, Provider, ProviderError};

pub struct Console;

#[async_trait]
impl Provider for Console {
    async fn send(&self, m: &OutgoingMessage) -> Result<Accepted, ProviderError> {
        tracing::warn!(
            target: "vouchsafe::console_provider",
            channel = m.channel.as_str(),
            to = %m.to_masked,
            subject = m.rendered.subject.as_deref(),
            text = %m.rendered.text,
            "console provider (development only): message printed here, not sent"
        );
        Ok(Accepted::default())
    }
}
