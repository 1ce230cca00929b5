//! A software passkey for the engine's tests: a P-256 key that answers
//! WebAuthn ceremonies the way a platform authenticator does (`none`
//! attestation, user present and verified, a signature counter), in the
//! browser's JSON forms. CBOR is written by hand: only the few shapes an
//! attestation object and a COSE key need.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

pub struct SoftPasskey {
    key: EcdsaKeyPair,
    credential_id: Vec<u8>,
    pub counter: u32,
    /// A synced passkey keeps no signature counter: it always signs 0.
    pub keeps_counter: bool,
    origin: String,
    rng: SystemRandom,
}

/// Flags of authenticator data: user present, user verified, attested data.
const UP: u8 = 0x01;
const UV: u8 = 0x04;
const AT: u8 = 0x40;

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data).as_ref().to_vec()
}

/// A CBOR head: major type and length (below 65,536 here).
fn head(out: &mut Vec<u8>, major: u8, n: usize) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | u8::try_from(n).unwrap()),
        24..=255 => out.extend([m | 24, u8::try_from(n).unwrap()]),
        _ => {
            out.push(m | 25);
            out.extend(u16::try_from(n).unwrap().to_be_bytes());
        }
    }
}

fn text(out: &mut Vec<u8>, s: &str) {
    head(out, 3, s.len());
    out.extend(s.as_bytes());
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    head(out, 2, b.len());
    out.extend(b);
}

/// A small integer key or value of a COSE map (-24..=23).
fn int(out: &mut Vec<u8>, v: i8) {
    if v >= 0 {
        head(out, 0, usize::try_from(v).unwrap());
    } else {
        head(out, 1, usize::try_from(-1 - i16::from(v)).unwrap());
    }
}

impl SoftPasskey {
    /// A new key for the relying party at `origin` (`https://host`).
    pub fn new(origin: &str) -> Self {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let credential_id = sha256(pkcs8.as_ref())[..16].to_vec();
        Self { key, credential_id, counter: 0, keeps_counter: true, origin: origin.to_owned(), rng }
    }

    fn rp_id_hash(&self) -> Vec<u8> {
        sha256(self.origin.trim_start_matches("https://").as_bytes())
    }

    fn client_data(&self, kind: &str, options: &Value, cross_origin: bool) -> Vec<u8> {
        let challenge = options["challenge"].as_str().expect("options carry a challenge");
        json!({"type": kind, "challenge": challenge, "origin": self.origin, "crossOrigin": cross_origin})
            .to_string()
            .into_bytes()
    }

    /// The COSE form of the public key (EC2, ES256, P-256).
    fn cose_key(&self) -> Vec<u8> {
        let point = self.key.public_key().as_ref();
        let mut out = Vec::new();
        head(&mut out, 5, 5);
        int(&mut out, 1);
        int(&mut out, 2);
        int(&mut out, 3);
        int(&mut out, -7);
        int(&mut out, -1);
        int(&mut out, 1);
        int(&mut out, -2);
        bytes(&mut out, &point[1..33]);
        int(&mut out, -3);
        bytes(&mut out, &point[33..65]);
        out
    }

    /// `navigator.credentials.create()`'s answer to `options` (the
    /// `publicKey` member of the creation options), as `toJSON()` gives it.
    pub fn register(&mut self, options: &Value) -> Value {
        let mut auth_data = self.rp_id_hash();
        auth_data.push(UP | UV | AT);
        auth_data.extend(self.counter.to_be_bytes());
        auth_data.extend([0u8; 16]);
        auth_data.extend(u16::try_from(self.credential_id.len()).unwrap().to_be_bytes());
        auth_data.extend(&self.credential_id);
        auth_data.extend(self.cose_key());
        let mut attestation = Vec::new();
        head(&mut attestation, 5, 3);
        text(&mut attestation, "fmt");
        text(&mut attestation, "none");
        text(&mut attestation, "attStmt");
        head(&mut attestation, 5, 0);
        text(&mut attestation, "authData");
        bytes(&mut attestation, &auth_data);
        let id = B64.encode(&self.credential_id);
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "attestationObject": B64.encode(attestation),
                "clientDataJSON": B64.encode(self.client_data("webauthn.create", options, false)),
            },
            "clientExtensionResults": {},
        })
    }

    /// `navigator.credentials.get()`'s answer to `options` (the request
    /// options' `publicKey` member); the counter moves on by one (if kept).
    pub fn assert(&mut self, options: &Value, user_handle: &[u8]) -> Value {
        self.assert_from(options, user_handle, false)
    }

    /// The same, made inside a frame of another origin when `cross_origin`.
    pub fn assert_from(&mut self, options: &Value, user_handle: &[u8], cross_origin: bool) -> Value {
        if self.keeps_counter {
            self.counter += 1;
        }
        let mut auth_data = self.rp_id_hash();
        auth_data.push(UP | UV);
        auth_data.extend(self.counter.to_be_bytes());
        let client_data = self.client_data("webauthn.get", options, cross_origin);
        let mut signed = auth_data.clone();
        signed.extend(sha256(&client_data));
        let signature = self.key.sign(&self.rng, &signed).unwrap();
        let id = B64.encode(&self.credential_id);
        json!({
            "id": id, "rawId": id, "type": "public-key",
            "response": {
                "authenticatorData": B64.encode(auth_data),
                "clientDataJSON": B64.encode(client_data),
                "signature": B64.encode(signature.as_ref()),
                "userHandle": B64.encode(user_handle),
            },
            "clientExtensionResults": {},
        })
    }
}
