//! A small xorshift for the tests' generated load and input: the choices
//! need to vary from run to run, not to be secret. Tests that could fail on
//! a particular draw print their seed so the run can be replayed.

pub struct Dice(u64);

#[allow(dead_code)]
impl Dice {
    pub fn seeded(seed: u64) -> Dice {
        Dice(seed | 1)
    }

    /// Seeded from the clock's nanoseconds.
    pub fn from_clock() -> Dice {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
        Dice::seeded(nanos as u64)
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}
