//! What can go wrong in the engine, before it is put into words: `/v1`
//! turns it into API.md's errors, `/v2` into Twilio's.

use vouchsafe_core::field_error::FieldError;
use vouchsafe_core::store::{SendRefusal, StoreError};

#[derive(Debug)]
pub enum EngineError {
    /// A parameter is malformed or out of bounds.
    Invalid(FieldError),
    /// `to` is not a phone number.
    InvalidPhoneNumber(FieldError),
    /// `to` is a landline and the channel is SMS.
    Landline,
    /// The destination's country (alpha-2, or `international`) is not allowed.
    GeoNotPermitted(String),
    /// A send limit refused the send.
    SendLimit(SendRefusal),
    /// Every provider of the channel failed.
    ProviderUnavailable,
    NotFound,
    /// Another start for the same destination kept winning.
    Busy,
    /// The caller has a second factor and must approve on the link with it.
    FactorRequired,
    /// Every slow-hash thread is busy: refused before anything was written
    /// (`429` with `Retry-After`).
    Saturated,
    Store(StoreError),
    Internal(String),
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
