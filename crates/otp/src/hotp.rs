//! HOTP (RFC 4226): counter-based codes, verification with a look-ahead
//! window, and resynchronisation by two consecutive codes (RFC 4226 §7.4).

use subtle::ConstantTimeEq;

use crate::algorithm::{KeyedMac, format_code};
use crate::{Algorithm, DIGITS_RANGE, ParamError, Secret};

/// Look-ahead the server allows by default (RFC 4226 §7.4 suggests a small
/// window; hardware tokens drift when the button is pressed away from us).
pub const DEFAULT_LOOK_AHEAD: u64 = 10;

/// An HOTP generator: secret, digits and hash function.
#[derive(Clone)]
pub struct Hotp {
    mac: KeyedMac,
    digits: u32,
}

/// Outcome of a resynchronisation: the counter to store next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resync {
    /// Counter of the second of the two codes; the stored counter becomes
    /// `matched + 1`.
    pub matched: u64,
}

impl Hotp {
    /// Builds a generator; `digits` must be 6–8.
    pub fn new(secret: &Secret, digits: u32, algorithm: Algorithm) -> Result<Self, ParamError> {
        if !DIGITS_RANGE.contains(&digits) {
            return Err(ParamError::Digits(digits));
        }
        Ok(Self { mac: KeyedMac::new(algorithm, secret.as_bytes()), digits })
    }

    pub fn digits(&self) -> u32 {
        self.digits
    }

    /// The code for `counter`, leading zeros kept.
    pub fn generate(&self, counter: u64) -> String {
        format_code(self.mac.truncated(counter), self.digits)
    }

    /// Checks `code` against counters `counter ..= counter + look_ahead` and
    /// returns the counter that matched. The caller stores `matched + 1` so
    /// the same code (and every earlier one) can never be used again.
    pub fn verify(&self, code: &str, counter: u64, look_ahead: u64) -> Option<u64> {
        let wanted = parse_code(code, self.digits)?;
        self.mac.find_counter(counter..=counter.saturating_add(look_ahead), wanted, self.digits)
    }

    /// Resynchronises a token that drifted past the look-ahead: `first` and
    /// `second` must be the codes of two consecutive counters within
    /// `counter ..= counter + window` (RFC 4226 §7.4).
    pub fn resync(&self, first: &str, second: &str, counter: u64, window: u64) -> Option<Resync> {
        let a = parse_code(first, self.digits)?;
        let b = parse_code(second, self.digits)?;
        let modulus = 10u32.pow(self.digits);
        let mut previous = self.mac.truncated(counter) % modulus;
        for c in counter.saturating_add(1)..=counter.saturating_add(window) {
            let current = self.mac.truncated(c) % modulus;
            if bool::from(previous.ct_eq(&a) & current.ct_eq(&b)) {
                return Some(Resync { matched: c });
            }
            previous = current;
        }
        None
    }
}

/// A submitted code as a number; `None` unless it is exactly `digits` ASCII
/// digits (an 8-digit code never matches a 6-digit generator).
pub(crate) fn parse_code(code: &str, digits: u32) -> Option<u32> {
    let code = code.trim();
    if code.len() != digits as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    code.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_keeps_its_digits() {
        let hotp = Hotp::new(&Secret::from_bytes(b"12345678901234567890".to_vec()), 7, Algorithm::Sha1).unwrap();
        assert_eq!(hotp.digits(), 7);
    }

    /// Two consecutive codes starting at the stored counter itself resync
    /// to the counter after them.
    #[test]
    fn a_resync_may_start_at_the_stored_counter() {
        let hotp = Hotp::new(&Secret::from_bytes(b"12345678901234567890".to_vec()), 6, Algorithm::Sha1).unwrap();
        let (first, second) = (hotp.generate(40), hotp.generate(41));
        assert_eq!(hotp.resync(&first, &second, 40, 100).map(|r| r.matched), Some(41));
        assert_eq!(hotp.resync(&second, &first, 40, 100).map(|r| r.matched), None, "in order only");
    }

    /// Exactly `digits` digits: a longer string of digits (a leading zero
    /// added) is not the code it would parse to.
    #[test]
    fn a_code_is_exactly_its_number_of_digits() {
        assert_eq!(parse_code("123456", 6), Some(123_456));
        assert_eq!(parse_code(" 012345 ", 6), Some(12_345));
        assert_eq!(parse_code("0123456", 6), None);
        assert_eq!(parse_code("12345a", 6), None);
        assert_eq!(parse_code("12345", 6), None);
    }

    fn rfc_secret() -> Secret {
        Secret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc4226_appendix_d() {
        let h = Hotp::new(&rfc_secret(), 6, Algorithm::Sha1).unwrap();
        let expected =
            ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"];
        for (counter, code) in expected.iter().enumerate() {
            assert_eq!(h.generate(counter as u64), *code);
        }
    }

    #[test]
    fn verify_returns_matched_counter_inside_look_ahead_only() {
        let h = Hotp::new(&rfc_secret(), 6, Algorithm::Sha1).unwrap();
        assert_eq!(h.verify("969429", 0, 10), Some(3));
        assert_eq!(h.verify("969429", 4, 10), None, "a used counter must not match again");
        assert_eq!(h.verify("520489", 0, 8), None, "counter 9 is beyond a look-ahead of 8");
        assert_eq!(h.verify("520489", 0, 9), Some(9));
    }

    #[test]
    fn verify_rejects_malformed_codes() {
        let h = Hotp::new(&rfc_secret(), 6, Algorithm::Sha1).unwrap();
        assert_eq!(h.verify("75522", 0, 10), None);
        assert_eq!(h.verify("7552240", 0, 10), None);
        assert_eq!(h.verify("75522a", 0, 10), None);
        assert_eq!(h.verify("+55224", 0, 10), None);
    }

    #[test]
    fn resync_needs_two_consecutive_codes() {
        let h = Hotp::new(&rfc_secret(), 6, Algorithm::Sha1).unwrap();
        // Counters 7 and 8, found from a stored counter of 0.
        assert_eq!(h.resync("162583", "399871", 0, 100), Some(Resync { matched: 8 }));
        // Not consecutive (7 then 9).
        assert_eq!(h.resync("162583", "520489", 0, 100), None);
        // Outside the window.
        assert_eq!(h.resync("162583", "399871", 0, 5), None);
    }

    #[test]
    fn digits_outside_6_to_8_are_refused() {
        assert!(Hotp::new(&rfc_secret(), 5, Algorithm::Sha1).is_err());
        assert!(Hotp::new(&rfc_secret(), 9, Algorithm::Sha1).is_err());
    }

    proptest::proptest! {
        #[test]
        fn generated_codes_verify_and_resync_at_their_counter(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            base in 0u64..u64::MAX / 2,
            ahead in 1u64..50,
            digits in 6u32..=8,
        ) {
            let h = Hotp::new(&Secret::from_bytes(key), digits, Algorithm::Sha1).unwrap();
            let counter = base + ahead;
            proptest::prop_assert_eq!(h.verify(&h.generate(counter), counter, 0), Some(counter));
            proptest::prop_assert_eq!(
                h.resync(&h.generate(counter), &h.generate(counter + 1), base, ahead + 1),
                Some(Resync { matched: counter + 1 })
            );
        }
    }
}
