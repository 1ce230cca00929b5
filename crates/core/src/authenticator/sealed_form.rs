//! Reading an [`AuthenticatorSecret`] back from the JSON it is sealed as:
//! `{"kind":"seed","seed":[49,50,…]}`, `{"kind":"yubikey",…}`, and so on
//! (serde's internally tagged form, which [`AuthenticatorSecret`]'s
//! `Serialize` writes).
//!
//! serde's derived reader for that form cannot know the variant until it
//! has seen `kind`, so it first copies the whole document into a generic
//! buffer (every seed byte a separate value) and reads the variant from
//! that: 2.6% of the workers' time in the wrong TOTP answer's profile,
//! where every answer opens its user's seeds, and a copy of the secret
//! left behind unwiped. This reader takes every field a variant may have
//! into one flat struct in a single pass, wiped on drop, and then picks the
//! variant by `kind`. It is the only reader of the form; the round-trip
//! tests hold it to the writer.
//!
//! A seed, the secret every TOTP answer opens, is read first by
//! [`seed_as_written`]: the writer's exact bytes for it, and nothing else,
//! are read straight into a vector of the seed's length. serde's reader
//! took about 2.5% of a wrong TOTP answer's instructions, most of it per
//! byte of the seed, and grew its vector as it went, leaving unwiped
//! copies of the seed's first bytes behind in freed memory. Anything else
//! (another variant, whitespace, fields in another order) is serde's.

use serde::Deserialize;
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::AuthenticatorSecret;

/// Every field of every variant; which ones must be present depends on
/// `kind`. Fields no variant has are ignored, as the derived reader did.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct Flat {
    kind: String,
    seed: Option<Vec<u8>>,
    private_id: Option<[u8; 6]>,
    aes_key: Option<[u8; 16]>,
    state: Option<String>,
    passkey: Option<String>,
}

/// The secret `plain` (opened JSON) holds; `None` if it is not one.
pub(super) fn read(plain: &[u8]) -> Option<AuthenticatorSecret> {
    if let Some(seed) = seed_as_written(plain) {
        return Some(AuthenticatorSecret::Seed { seed });
    }
    let mut flat: Flat = serde_json::from_slice(plain).ok()?;
    Some(match flat.kind.as_str() {
        "seed" => AuthenticatorSecret::Seed { seed: flat.seed.take()? },
        "yubikey" => {
            AuthenticatorSecret::Yubikey { private_id: flat.private_id.take()?, aes_key: flat.aes_key.take()? }
        }
        "passkey_registration" => AuthenticatorSecret::PasskeyRegistration { state: flat.state.take()? },
        "passkey" => AuthenticatorSecret::Passkey { passkey: flat.passkey.take()? },
        "none" => AuthenticatorSecret::None,
        _ => return None,
    })
}

/// What the writer writes for a seed: `{"kind":"seed","seed":[` then
/// each byte in decimal (no sign, no leading zero), `,` between them, then
/// `]}`.
const SEED_OPENS: &[u8] = br#"{"kind":"seed","seed":["#;
const SEED_CLOSES: &[u8] = b"]}";

/// The seed `plain` holds if it is exactly a seed as the writer writes it
/// (see [`SEED_OPENS`]); `None` for anything else, which serde then reads.
/// Every form accepted here is valid JSON that serde reads to the same
/// seed, so the two readers never disagree.
fn seed_as_written(plain: &[u8]) -> Option<Vec<u8>> {
    let numbers = plain.strip_prefix(SEED_OPENS)?.strip_suffix(SEED_CLOSES)?;
    if numbers.is_empty() {
        return Some(Vec::new());
    }
    // n numbers take at least 2n - 1 bytes: the vector never grows.
    let mut seed = Vec::with_capacity(numbers.len().div_ceil(2));
    let (mut value, mut digits) = (0u16, 0u8);
    // A byte in JSON's decimal form: 1–3 digits, no leading zero, at most
    // 255; the comma after the last one is implied.
    for &b in numbers.iter().chain(std::iter::once(&b',')) {
        match b {
            b'0'..=b'9' if digits < 3 && !(digits == 1 && value == 0) => {
                value = value * 10 + u16::from(b - b'0');
                digits += 1;
            }
            b',' if digits > 0 && value <= 255 => {
                seed.push(value as u8);
                (value, digits) = (0, 0);
            }
            _ => {
                seed.zeroize();
                return None;
            }
        }
    }
    Some(seed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant reads back as written, so the writer (serde's derived
    /// `Serialize`) and this reader agree on the form.
    #[test]
    fn every_variant_reads_back_as_written() {
        let secrets = [
            AuthenticatorSecret::Seed { seed: b"12345678901234567890".to_vec() },
            AuthenticatorSecret::Yubikey { private_id: [1, 2, 3, 4, 5, 6], aes_key: [7; 16] },
            AuthenticatorSecret::PasskeyRegistration { state: r#"{"rs":1}"#.into() },
            AuthenticatorSecret::Passkey { passkey: r#"{"cred":"x"}"#.into() },
            AuthenticatorSecret::None,
        ];
        for secret in secrets {
            let json = serde_json::to_vec(&secret).unwrap();
            assert!(read(&json) == Some(secret.clone()), "{}", String::from_utf8_lossy(&json));
        }
    }

    /// Secrets sealed by earlier versions are stored in this exact form.
    #[test]
    fn the_stored_form_is_read() {
        let seed = read(br#"{"kind":"seed","seed":[49,50,51]}"#);
        assert!(seed == Some(AuthenticatorSecret::Seed { seed: b"123".to_vec() }));
        let none = read(br#"{"kind":"none"}"#);
        assert!(none == Some(AuthenticatorSecret::None));
        let with_more = read(br#"{"seed":[1],"kind":"seed","added_later":true}"#);
        assert!(with_more == Some(AuthenticatorSecret::Seed { seed: vec![1] }), "field order and unknown fields");
    }

    /// Every seed length and byte value the writer can write is read the
    /// quick way, to what serde reads from the same text.
    #[test]
    fn seeds_as_written_are_read_the_quick_way_to_serdes_answer() {
        let all_bytes: Vec<u8> = (0..=255).collect();
        for seed in
            [vec![], vec![0], vec![255], vec![7; 20], all_bytes, (0..64u32).map(|i| (i * 37 % 256) as u8).collect()]
        {
            let json = serde_json::to_vec(&AuthenticatorSecret::Seed { seed: seed.clone() }).unwrap();
            assert_eq!(seed_as_written(&json).as_ref(), Some(&seed), "{}", String::from_utf8_lossy(&json));
            let flat: Flat = serde_json::from_slice(&json).unwrap();
            assert_eq!(flat.seed.as_ref(), Some(&seed), "serde reads the same");
        }
    }

    /// Anything but the writer's exact form is left to serde, which reads
    /// the JSON that is valid and refuses the rest.
    #[test]
    fn other_forms_are_left_to_serde() {
        for (text, serde_reads) in [
            (&br#"{"kind":"seed","seed":[1, 2]}"#[..], Some(vec![1, 2])),
            (br#"{"kind":"seed","seed":[01]}"#, None),
            (br#"{"kind":"seed","seed":[256]}"#, None),
            (br#"{"kind":"seed","seed":[-1]}"#, None),
            (br#"{"kind":"seed","seed":[1,,2]}"#, None),
            (br#"{"kind":"seed","seed":[1,]}"#, None),
            (br#"{"kind":"seed","seed":[,]}"#, None),
            (br#"{"kind":"seed","seed":[1e2]}"#, None),
            (br#"{"kind":"seed","seed":[1000]}"#, None),
            (br#"{"kind":"seed","seed":[1,2]} "#, Some(vec![1, 2])),
        ] {
            assert_eq!(seed_as_written(text), None, "{}", String::from_utf8_lossy(text));
            let expected = serde_reads.map(|seed| AuthenticatorSecret::Seed { seed });
            assert!(read(text) == expected, "{}", String::from_utf8_lossy(text));
        }
    }

    /// A document that is not one of the variants is not read as another.
    #[test]
    fn a_document_without_its_variants_fields_is_refused() {
        for bad in [
            &br#"{"kind":"seed"}"#[..],
            br#"{"kind":"yubikey","private_id":[1,2,3,4,5,6]}"#,
            br#"{"kind":"yubikey","private_id":[1,2,3],"aes_key":[0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0]}"#,
            br#"{"kind":"passkey","state":"x"}"#,
            br#"{"kind":"sms","seed":[1]}"#,
            br#"{"seed":[1]}"#,
            br#"{"kind":"seed","seed":[256]}"#,
            b"not json",
        ] {
            assert!(read(bad).is_none(), "{}", String::from_utf8_lossy(bad));
        }
    }
}
