//! The real clock: the one place below which nothing reads the system time.

use time::OffsetDateTime;
use vouchsafe_core::clock::Clock;

pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods, reason = "the one wall clock of the whole program")]
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}
