//! The one error shape for invalid input: which field, and why.

/// A value outside its bounds or of the wrong shape. `field` is a dotted
/// path (`otp.code_length`) that the API returns as the error's `field`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self { field: field.into(), message: message.into() }
    }
}

/// Checks that `value` lies in `range`, naming `field` when it does not.
pub fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    field: &str,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), FieldError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(FieldError::new(field, format!("must be between {} and {}", range.start(), range.end())))
    }
}
