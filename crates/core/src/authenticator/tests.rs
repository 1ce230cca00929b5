//! The authenticator's values: names, the kinds and statuses as stored,
//! sealing bound to the row, recovery-code hashing and tags, and what an
//! import makes of a token.

use time::OffsetDateTime;

use super::recovery::{Memory, lookup_tag, matches_in};
use super::*;
use crate::crypto::MasterKey;
use crate::otp::OtpauthUri;
use crate::verification::CodeHasher;

fn master() -> MasterKey {
    MasterKey::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
}

#[test]
fn names_are_one_to_a_hundred_bytes_without_colons_or_controls() {
    assert!(check_name("label", &"a".repeat(MAX_NAME_BYTES)).is_ok());
    for bad in ["", "Acme:ada", "tab\there", "bell\u{7}"] {
        assert_eq!(check_name("label", bad).unwrap_err().field, "label", "{bad:?}");
    }
    assert!(check_name("issuer", &"a".repeat(MAX_NAME_BYTES + 1)).is_err());
}

/// The names are what the database stores: they must not change.
#[test]
fn kinds_and_statuses_keep_their_stored_names() {
    let names: Vec<_> = AuthenticatorKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(names, ["totp", "hotp", "yubikey", "recovery_codes", "passkey"]);
    for kind in AuthenticatorKind::ALL {
        assert_eq!(AuthenticatorKind::parse(kind.as_str()), Some(kind));
    }
    assert_eq!(AuthenticatorKind::parse("sms"), None);
    for (status, name) in [(AuthenticatorStatus::Unconfirmed, "unconfirmed"), (AuthenticatorStatus::Active, "active")] {
        assert_eq!(status.as_str(), name);
        assert_eq!(AuthenticatorStatus::parse(name), Some(status));
    }
    assert_eq!(AuthenticatorStatus::parse("revoked"), None);
}

/// A sealed secret opens for its own row only, and never shows in logs.
#[test]
fn a_sealed_secret_opens_only_for_its_own_authenticator() {
    let sealer = master().sealer();
    let tenant = TenantId::generate();
    let uri = OtpauthUri::parse("otpauth://totp/Acme:ada?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ").unwrap();
    let a = import::authenticator(&tenant, "ada", &uri, &sealer, OffsetDateTime::UNIX_EPOCH).unwrap();
    let secret = AuthenticatorSecret::open(&sealer, &a).unwrap();
    assert_eq!(secret, AuthenticatorSecret::Seed { seed: b"12345678901234567890".to_vec() });
    assert!(!a.sealed.windows(20).any(|w| w == b"12345678901234567890"), "sealed, not plain");

    let moved = Authenticator { id: AuthenticatorId::generate(), ..a.clone() };
    assert!(AuthenticatorSecret::open(&sealer, &moved).is_err(), "moved to another row");
    let other_tenant = Authenticator { tenant_id: TenantId::generate(), ..a.clone() };
    assert!(AuthenticatorSecret::open(&sealer, &other_tenant).is_err(), "moved to another tenant");
    assert!(Authenticator::seal_context(&a.tenant_id, &a.id).ends_with(a.id.as_str()));

    assert_eq!(format!("{secret:?}"), "AuthenticatorSecret(..)");
}

#[test]
fn an_imported_token_keeps_its_label_and_starts_unused() {
    let sealer = master().sealer();
    let tenant = TenantId::generate();
    let totp = OtpauthUri::parse("otpauth://totp/Acme:ada?secret=GEZDGNBVGY3TQOJQ&issuer=Acme").unwrap();
    let a = import::authenticator(&tenant, "ada", &totp, &sealer, OffsetDateTime::UNIX_EPOCH).unwrap();
    assert_eq!((a.kind, a.status, a.counter), (AuthenticatorKind::Totp, AuthenticatorStatus::Active, -1));
    assert_eq!(a.label.as_deref(), Some("ada"));
    let hotp = OtpauthUri::parse("otpauth://hotp/?secret=GEZDGNBVGY3TQOJQ&counter=7").unwrap();
    let h = import::authenticator(&tenant, "bo", &hotp, &sealer, OffsetDateTime::UNIX_EPOCH).unwrap();
    assert_eq!((h.kind, h.counter, h.label), (AuthenticatorKind::Hotp, 7, None));
}

/// 80 bits is the shortest seed RFC 4226 allows; it is accepted.
#[test]
fn an_imported_seed_of_exactly_80_bits_is_enough() {
    assert!(import::parse_line(1, "u,otpauth://totp/x?secret=GEZDGNBVGY3TQOJQ").is_ok());
    assert!(import::parse_line(1, "u,otpauth://totp/x?secret=GEZDGNBVGY3TQOI").is_err());
}

/// Hashes stored with other Argon2 parameters, versions or variants
/// still check the same, in kept memory or not.
#[test]
fn recovery_hashes_of_other_parameters_still_match() {
    use argon2::{Algorithm, Argon2, Params, PasswordHash, PasswordHasher, Version};
    let mut memory = Memory::new();
    for (algorithm, version) in [
        (Algorithm::Argon2id, Version::V0x13),
        (Algorithm::Argon2i, Version::V0x13),
        (Algorithm::Argon2id, Version::V0x10),
    ] {
        let params = Params::new(1024, 1, 1, None).unwrap();
        let hashed: PasswordHash = Argon2::new(algorithm, version, params).hash_password(b"abcd2345").unwrap();
        let stored = hashed.to_string();
        assert!(matches_in(&mut memory, &stored, "ABCD-2345"), "{stored}");
        assert!(!matches_in(&mut memory, &stored, "abcd-2346"), "{stored}");
    }
}

#[test]
fn lookup_tags_are_short_keyed_and_follow_the_normal_form() {
    let hasher = CodeHasher::new(&master());
    let tag = lookup_tag(&hasher, "aut_1", "abcd-2345");
    assert_eq!(tag.len(), 4);
    assert!(tag.chars().all(|c| c.is_ascii_hexdigit()), "{tag}");
    assert_eq!(lookup_tag(&hasher, "aut_1", "ABCD 2345"), tag, "the same code in another form");
    let others: std::collections::HashSet<_> =
        (0..20).map(|n| lookup_tag(&hasher, "aut_1", &format!("abcd-{n:04}"))).collect();
    assert!(others.len() > 10, "tags tell codes apart: {others:?}");
    let other_key = CodeHasher::new(&MasterKey::generate().unwrap());
    let elsewhere: std::collections::HashSet<_> =
        (0..20).map(|n| lookup_tag(&other_key, "aut_1", &format!("abcd-{n:04}"))).collect();
    assert_ne!(others, elsewhere, "keyed: another key gives other tags");
}
