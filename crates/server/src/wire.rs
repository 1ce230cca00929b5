//! Domain values as the wire types of `vouchsafe_proto`, where more than
//! one surface shows the same thing (the `/v1` API and the agent console
//! both show a caller verification). Neither surface imports the other.

use vouchsafe_core::caller::CallerVerification;
use vouchsafe_core::clock::rfc3339;
use vouchsafe_core::destination::{EmailAddress, PhoneNumber};
use vouchsafe_proto::CallerVerificationResponse;

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
