//! Message delivery for vouchsafe: the providers that carry codes over SMS,
//! voice and email (console, any HTTP API, Twilio, Telesign, SMTP), the
//! message templates in several languages, and failover between the
//! providers of a channel with a circuit breaker per provider.
//!
//! This crate is the only place that talks to providers. It must not decide
//! who may receive a code or when (the domain in `vouchsafe-core` does), and
//! it must never log a code or a provider credential.

pub mod failover;
pub mod outbound;
pub mod provider;
pub mod providers;
pub mod templates;
