//! Uniformly random numeric codes (the codes a server sends by SMS, voice or
//! email), drawn from the OS CSPRNG without modulo bias.

/// Shortest and longest code the server will make.
pub const CODE_LENGTH_RANGE: std::ops::RangeInclusive<u32> = 4..=10;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeLengthError {
    #[error("code length must be between 4 and 10 digits, got {0}")]
    OutOfRange(u32),
    #[error("the operating system's random number generator failed")]
    Rng,
}

/// A code of `length` decimal digits, every value equally likely, leading
/// zeros kept (`"0042"` is a valid 4-digit code).
pub fn random_numeric_code(length: u32) -> Result<String, CodeLengthError> {
    if !CODE_LENGTH_RANGE.contains(&length) {
        return Err(CodeLengthError::OutOfRange(length));
    }
    let modulus = 10u64.pow(length);
    // SECURITY: rejection sampling. Values at or above the largest multiple
    // of `modulus` that fits in a u64 are drawn again, so `value % modulus`
    // is exactly uniform (a plain `% modulus` would favour low codes).
    let zone = u64::MAX - (u64::MAX % modulus);
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|_| CodeLengthError::Rng)?;
        let value = u64::from_le_bytes(bytes);
        if value < zone {
            return Ok(format!("{:0width$}", value % modulus, width = length as usize));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_4_to_10_are_made_with_leading_zeros_kept() {
        for len in 4..=10 {
            let code = random_numeric_code(len).unwrap();
            assert_eq!(code.len(), len as usize);
            assert!(code.bytes().all(|b| b.is_ascii_digit()));
        }
    }

    #[test]
    fn out_of_range_lengths_are_refused() {
        assert_eq!(random_numeric_code(3), Err(CodeLengthError::OutOfRange(3)));
        assert_eq!(random_numeric_code(11), Err(CodeLengthError::OutOfRange(11)));
    }

    /// A chi-squared test over the first digit of 20,000 four-digit codes:
    /// with 9 degrees of freedom the 99.99th percentile is 33.7, so a
    /// uniform generator fails this about once in 10,000 runs, while a
    /// biased one (or one that drops leading zeros) fails every time.
    #[test]
    fn digits_are_uniform() {
        let n = 20_000;
        let mut counts = [0u32; 10];
        for _ in 0..n {
            let code = random_numeric_code(4).unwrap();
            counts[usize::from(code.as_bytes()[0] - b'0')] += 1;
        }
        let expected = f64::from(n) / 10.0;
        let chi2: f64 = counts.iter().map(|&c| (f64::from(c) - expected).powi(2) / expected).sum();
        assert!(chi2 < 33.7, "first-digit counts {counts:?} are not uniform (chi2 = {chi2})");
    }
}
