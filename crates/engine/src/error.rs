//! What can go wrong in the engine, before it is put into words: `/v1`
//! turns it into API.md's errors, `/v2` into Twilio's.

use vouchsafe_core::error::BoxError;
use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::store::{SendRefusal, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// A parameter is malformed (`400` on `/v1`).
    #[error("{0:?}")]
    Invalid(FieldError),
    /// A well-formed value the rules refuse: out of bounds, a name taken
    /// by the format, an address the outbound rule forbids (`422` on `/v1`).
    #[error("refused: {0:?}")]
    Refused(FieldError),
    /// `to` is not a phone number.
    #[error("not a phone number: {0:?}")]
    InvalidPhoneNumber(FieldError),
    /// `to` is a landline and the channel is SMS.
    #[error("a landline cannot receive SMS")]
    Landline,
    /// The destination's country (alpha-2, or `international`) is not allowed.
    #[error("sending to {0} is not permitted")]
    GeoNotPermitted(String),
    /// A send limit refused the send.
    #[error("a send limit refused the send: {0:?}")]
    SendLimit(SendRefusal),
    /// Every provider of the channel failed.
    #[error("every provider of the channel failed")]
    ProviderUnavailable,
    #[error("not found")]
    NotFound,
    /// Another start for the same destination kept winning.
    #[error("busy")]
    Busy,
    /// The caller has a second factor and must approve on the link with it.
    #[error("a second factor is required")]
    FactorRequired,
    /// Every slow-hash thread is busy: refused before anything was written
    /// (`429` with `Retry-After`).
    #[error("saturated")]
    Saturated,
    #[error(transparent)]
    Store(StoreError),
    /// Something that should not fail did (randomness, a cipher, a
    /// serializer); the cause is kept for the log.
    #[error("internal error")]
    Internal(#[source] BoxError),
}

impl EngineError {
    /// An internal failure, keeping `cause`.
    pub fn internal(cause: impl Into<BoxError>) -> Self {
        Self::Internal(cause.into())
    }
}

impl From<StoreError> for EngineError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => Self::NotFound,
            other => Self::Store(other),
        }
    }
}

impl From<FieldError> for EngineError {
    fn from(e: FieldError) -> Self {
        Self::Invalid(e)
    }
}

pub type EngineResult<T> = Result<T, EngineError>;
