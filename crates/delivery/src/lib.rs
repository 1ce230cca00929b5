//! Message delivery for vouchsafe: the providers that carry codes over SMS,
//! voice and email (console, any HTTP API, Twilio, Telesign, SMTP), the
//! message templates, and failover between providers of a channel.
//!
//! This crate is the only place that talks to providers. It must not decide
//! who may receive a code or when (the domain in `vouchsafe-core` does), and
//! it must never log a code or a provider credential. The providers arrive
//! with the verification capability; the foundation only fixes the crate's
//! place in the workspace (between `store` and `server`).
