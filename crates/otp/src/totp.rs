//! TOTP (RFC 6238): HOTP over the number of `period`-second steps since the
//! Unix epoch, verified within a drift window of steps.

use crate::algorithm::{KeyedMac, format_code};
use crate::hotp::parse_code;
use crate::{Algorithm, DIGITS_RANGE, ParamError, Secret};

/// Steps of clock drift accepted either side by default (RFC 6238 §5.2
/// recommends at most one step backward; one forward covers a fast phone).
pub const DEFAULT_WINDOW: u64 = 1;

/// A TOTP generator: secret, digits, period and hash function.
#[derive(Clone)]
pub struct Totp {
    mac: KeyedMac,
    digits: u32,
    period: u64,
}

impl Totp {
    /// Builds a generator; `digits` must be 6–8 and `period` 1–3600 seconds.
    pub fn new(secret: &Secret, digits: u32, period: u64, algorithm: Algorithm) -> Result<Self, ParamError> {
        if !DIGITS_RANGE.contains(&digits) {
            return Err(ParamError::Digits(digits));
        }
        if !(1..=3600).contains(&period) {
            return Err(ParamError::Period(period));
        }
        Ok(Self { mac: KeyedMac::new(algorithm, secret.as_bytes()), digits, period })
    }

    pub fn digits(&self) -> u32 {
        self.digits
    }

    pub fn period(&self) -> u64 {
        self.period
    }

    /// The time step that contains `unix_time` (RFC 6238 §4.2, T0 = 0).
    pub fn step(&self, unix_time: u64) -> u64 {
        unix_time / self.period
    }

    /// Seconds left before the code at `unix_time` changes.
    pub fn remaining_s(&self, unix_time: u64) -> u64 {
        self.period - unix_time % self.period
    }

    /// The code at `unix_time`, leading zeros kept.
    pub fn generate(&self, unix_time: u64) -> String {
        self.generate_step(self.step(unix_time))
    }

    /// The code of one time step.
    pub fn generate_step(&self, step: u64) -> String {
        format_code(self.mac.truncated(step), self.digits)
    }

    /// Checks `code` against the steps within `window` of `unix_time` and
    /// returns the step that matched. Steps at or before `last_used_step`
    /// never match, which is how callers refuse a replayed code: store the
    /// returned step and pass it back next time.
    pub fn verify(&self, code: &str, unix_time: u64, window: u64, last_used_step: Option<u64>) -> Option<u64> {
        let wanted = parse_code(code, self.digits)?;
        let now = self.step(unix_time);
        let first = now.saturating_sub(window);
        let first = match last_used_step {
            Some(last) if last >= first => last.saturating_add(1),
            _ => first,
        };
        // The earliest matching step is returned, so it is the one recorded.
        self.mac.find_counter(first..=now.saturating_add(window), wanted, self.digits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The generator answers the parameters it was built with.
    #[test]
    fn a_generator_keeps_its_digits_and_period() {
        let totp = Totp::new(&Secret::from_bytes(b"12345678901234567890".to_vec()), 8, 60, Algorithm::Sha256).unwrap();
        assert_eq!((totp.digits(), totp.period()), (8, 60));
    }

    /// A step used long ago does not widen the window: a code older than
    /// the window is refused even when the last used step is older still.
    #[test]
    fn an_old_last_step_does_not_reopen_older_codes() {
        let totp = Totp::new(&Secret::from_bytes(b"12345678901234567890".to_vec()), 6, 30, Algorithm::Sha1).unwrap();
        let now = 1_800_000_000;
        let stale = totp.generate(now - 5 * 30);
        assert_eq!(totp.verify(&stale, now, 1, Some(0)), None, "five steps back is outside a window of one");
        assert_eq!(totp.verify(&totp.generate(now - 30), now, 1, Some(0)), Some(now / 30 - 1));
    }

    fn secret() -> Secret {
        Secret::from_bytes(b"12345678901234567890".to_vec())
    }

    #[test]
    fn rfc6238_sha1_at_59() {
        let t = Totp::new(&secret(), 8, 30, Algorithm::Sha1).unwrap();
        assert_eq!(t.generate(59), "94287082");
    }

    #[test]
    fn drift_window_is_one_step_each_side() {
        let t = Totp::new(&secret(), 6, 30, Algorithm::Sha1).unwrap();
        let now = 1_700_000_000;
        let step = t.step(now);
        assert_eq!(t.verify(&t.generate_step(step - 1), now, 1, None), Some(step - 1));
        assert_eq!(t.verify(&t.generate_step(step + 1), now, 1, None), Some(step + 1));
        assert_eq!(t.verify(&t.generate_step(step - 2), now, 1, None), None);
        assert_eq!(t.verify(&t.generate_step(step + 2), now, 1, None), None);
        assert_eq!(t.verify(&t.generate_step(step + 2), now, 2, None), Some(step + 2));
    }

    #[test]
    fn a_used_step_is_refused() {
        let t = Totp::new(&secret(), 6, 30, Algorithm::Sha1).unwrap();
        let now = 1_700_000_000;
        let code = t.generate(now);
        let step = t.verify(&code, now, 1, None).unwrap();
        assert_eq!(t.verify(&code, now, 1, Some(step)), None);
        assert_eq!(t.verify(&t.generate_step(step - 1), now, 1, Some(step)), None);
        assert_eq!(t.verify(&t.generate_step(step + 1), now, 1, Some(step)), Some(step + 1));
    }

    #[test]
    fn remaining_counts_down_to_the_next_step() {
        let t = Totp::new(&secret(), 6, 30, Algorithm::Sha1).unwrap();
        assert_eq!(t.remaining_s(60), 30);
        assert_eq!(t.remaining_s(89), 1);
    }

    #[test]
    fn period_bounds() {
        assert!(Totp::new(&secret(), 6, 0, Algorithm::Sha1).is_err());
        assert!(Totp::new(&secret(), 6, 3601, Algorithm::Sha1).is_err());
        assert!(Totp::new(&secret(), 6, 60, Algorithm::Sha256).is_ok());
    }

    fn algorithm(i: u8) -> Algorithm {
        [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512][usize::from(i % 3)]
    }

    proptest::proptest! {
        #[test]
        fn a_generated_code_verifies_at_its_own_step(
            key in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..64),
            time in 0u64..4_102_444_800,
            digits in 6u32..=8,
            period in 1u64..=3600,
            alg in 0u8..3,
        ) {
            let t = Totp::new(&Secret::from_bytes(key), digits, period, algorithm(alg)).unwrap();
            let code = t.generate(time);
            proptest::prop_assert_eq!(code.len(), digits as usize);
            proptest::prop_assert_eq!(t.verify(&code, time, 0, None), Some(t.step(time)));
            // Once its step is used, the same code never verifies again.
            proptest::prop_assert_eq!(t.verify(&code, time, 1, Some(t.step(time))), None);
        }
    }
}
