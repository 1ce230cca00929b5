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
