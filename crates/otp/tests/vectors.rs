//! Every RFC 4226 and RFC 6238 test vector, read from the vector file copied
//! from `shared/vectors/` so a change to the arithmetic cannot hide.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use vouchsafe_otp::{Algorithm, Hotp, Secret, Totp};

fn vectors() -> Value {
    serde_json::from_str(include_str!("data/rfc4226_rfc6238.json")).unwrap()
}

#[test]
fn rfc4226_appendix_d_all_counters() {
    let v = vectors();
    let hotp = &v["hotp"];
    let secret = Secret::parse_base32(hotp["secret_base32"].as_str().unwrap()).unwrap();
    assert_eq!(secret.as_bytes(), hotp["secret_ascii"].as_str().unwrap().as_bytes());
    let generator = Hotp::new(&secret, 6, Algorithm::Sha1).unwrap();
    let cases = hotp["vectors"].as_array().unwrap();
    assert_eq!(cases.len(), 10);
    for case in cases {
        let counter = case["counter"].as_u64().unwrap();
        let code = case["code"].as_str().unwrap();
        assert_eq!(generator.generate(counter), code, "counter {counter}");
        assert_eq!(generator.verify(code, 0, 10), Some(counter));
    }
}

#[test]
fn rfc6238_appendix_b_all_times_and_algorithms() {
    let v = vectors();
    let totp = &v["totp"];
    let cases = totp["vectors"].as_array().unwrap();
    assert_eq!(cases.len(), 18, "RFC 6238 lists 6 times x 3 algorithms");
    for case in cases {
        let name = case["algorithm"].as_str().unwrap();
        let algorithm = Algorithm::parse(name).unwrap();
        let seed = &totp["seeds"][name];
        let secret = Secret::parse_base32(seed["base32"].as_str().unwrap()).unwrap();
        assert_eq!(secret.as_bytes(), seed["ascii"].as_str().unwrap().as_bytes());
        let digits = case["digits"].as_u64().unwrap() as u32;
        let period = case["period"].as_u64().unwrap();
        let time = case["time"].as_u64().unwrap();
        let code = case["code"].as_str().unwrap();
        let generator = Totp::new(&secret, digits, period, algorithm).unwrap();
        assert_eq!(generator.generate(time), code, "{name} at {time}");
        assert_eq!(generator.verify(code, time, 0, None), Some(time / period));
    }
}
