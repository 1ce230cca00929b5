//! Between the wire types of `vouchsafe_proto` and domain values, where
//! more than one surface shares the mapping (the `/v1` API and the agent
//! console both start and show caller verifications). Neither surface
//! imports the other, and the engine sees only the domain side.

use vouchsafe_core::caller::CallerVerification;
use vouchsafe_core::clock::rfc3339;
use vouchsafe_core::destination::{EmailAddress, PhoneNumber};
use vouchsafe_core::ids::TenantId;
use vouchsafe_proto::{CallerVerificationResponse, CreateAuthenticatorRequest, CreateCallerVerificationRequest};

use crate::engine::authenticators::NewAuthenticator;
use crate::engine::callers::NewCaller;

/// A caller verification as agents see it: the destination masked, the
/// status as of `now`, never the code.
pub fn caller_response(cv: &CallerVerification, now: time::OffsetDateTime) -> CallerVerificationResponse {
    let to = PhoneNumber::parse("to", &cv.destination)
        .map(|p| p.masked())
        .or_else(|_| EmailAddress::parse("to", &cv.destination).map(|e| e.masked()))
        .unwrap_or_else(|_| "***".into());
    CallerVerificationResponse {
        id: cv.id.to_string(),
        record_id: cv.record_id.clone(),
        record_type: cv.record_type.clone(),
        status: cv.status_at(now).as_str().to_owned(),
        channel: cv.channel.as_str().to_owned(),
        to,
        agent_id: cv.agent_id.clone(),
        user_id: cv.user_id.clone(),
        time_allowed_s: cv.time_allowed_s,
        attempts_remaining: cv.attempts_remaining(),
        expires_at: rfc3339(cv.expires_at),
        created_at: rfc3339(cv.created_at),
        completed_at: cv.completed_at.map(rfc3339),
    }
}

/// A caller verification to start, as the API and the agent console both
/// take it; they differ only in who the agent is.
pub fn new_caller<'a>(
    tenant_id: &'a TenantId,
    actor: &'a str,
    req: &'a CreateCallerVerificationRequest,
    agent_id: Option<&'a str>,
) -> NewCaller<'a> {
    NewCaller {
        tenant_id,
        actor,
        record_id: &req.record_id,
        record_type: req.record_type.as_deref(),
        phone: req.phone.as_deref(),
        email: req.email.as_deref(),
        channel: req.channel.as_deref(),
        time_allowed_s: req.time_allowed_s,
        agent_id,
        user_id: req.user_id.as_deref(),
        locale: req.locale.as_deref(),
        default_country: req.default_country.as_deref(),
    }
}

/// An enrollment request as the engine takes it.
pub fn new_authenticator(req: &CreateAuthenticatorRequest) -> NewAuthenticator<'_> {
    NewAuthenticator {
        kind: &req.kind,
        issuer: req.issuer.as_deref(),
        label: req.label.as_deref(),
        algorithm: req.algorithm.as_deref(),
        digits: req.digits,
        period: req.period,
        secret: req.secret.as_deref(),
        counter: req.counter,
        public_id: req.public_id.as_deref(),
        private_id: req.private_id.as_deref(),
        aes_key: req.aes_key.as_deref(),
    }
}
