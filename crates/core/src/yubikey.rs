//! Yubico OTP, checked locally (no YubiCloud): the token types a 32–48
//! character modhex string, a public id followed by one AES-128 block. The
//! block decrypts, under the token's key, to its private id, a usage
//! counter, a timestamp, a session counter, random bytes and a CRC-16.
//! An OTP is accepted only if the CRC holds, the private id matches, and
//! its (usage, session) counter is strictly above the last one accepted,
//! so a captured OTP never works twice.

use aes::Aes128;
use aes::cipher::{BlockDecrypt, KeyInit};
use subtle::ConstantTimeEq;

const MODHEX: &[u8; 16] = b"cbdefghijklnrtuv";

/// Modhex (Yubico's keyboard-safe hex) to bytes.
pub fn modhex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| MODHEX.iter().position(|&m| m == c.to_ascii_lowercase()).map(|p| p as u8);
    text.as_bytes().chunks(2).map(|pair| Some((nibble(pair[0])? << 4) | nibble(pair[1])?)).collect()
}

/// Bytes to modhex.
pub fn modhex_encode(bytes: &[u8]) -> String {
    bytes.iter().flat_map(|b| [MODHEX[(b >> 4) as usize] as char, MODHEX[(b & 15) as usize] as char]).collect()
}

/// CRC-16 (ISO 13239) as the YubiKey computes it.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0xffff;
    for &byte in data {
        crc ^= u16::from(byte);
        for _ in 0..8 {
            let carry = crc & 1;
            crc >>= 1;
            if carry != 0 {
                crc ^= 0x8408;
            }
        }
    }
    crc
}

/// Over a whole decrypted block (CRC included) the CRC leaves this residue.
const CRC_OK_RESIDUE: u16 = 0xf0b8;

/// The fields of one decrypted OTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decrypted {
    pub private_id: [u8; 6],
    pub usage_counter: u16,
    pub session_counter: u8,
}

impl Decrypted {
    /// One number that grows with every OTP the token makes: the usage
    /// counter (per power-up) above the session counter (per touch).
    pub fn counter(&self) -> i64 {
        (i64::from(self.usage_counter) << 8) | i64::from(self.session_counter)
    }
}

/// Why an OTP was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtpError {
    /// Not 32–48 modhex characters.
    Format,
    /// The public id is not this token's.
    PublicId,
    /// The block did not decrypt to a valid one (wrong key or tampered).
    Crc,
    /// The private id inside does not match.
    PrivateId,
}

/// Splits an OTP into its public id (modhex) and its encrypted block.
pub fn split(otp: &str) -> Result<(&str, [u8; 16]), OtpError> {
    let otp = otp.trim();
    if !(32..=48).contains(&otp.len()) || !otp.is_ascii() {
        return Err(OtpError::Format);
    }
    let (public_id, block) = otp.split_at(otp.len() - 32);
    let bytes = modhex_decode(block).ok_or(OtpError::Format)?;
    modhex_decode(public_id).ok_or(OtpError::Format)?;
    let mut out = [0u8; 16];
    out.copy_from_slice(&bytes);
    Ok((public_id, out))
}

/// Decrypts and checks one OTP of the token with this public id, private
/// id and AES key. The counter is the caller's to compare and store.
pub fn verify(otp: &str, public_id: &str, private_id: &[u8; 6], aes_key: &[u8; 16]) -> Result<Decrypted, OtpError> {
    let (given_public, block) = split(otp)?;
    if !given_public.eq_ignore_ascii_case(public_id) {
        return Err(OtpError::PublicId);
    }
    let cipher = Aes128::new(aes_key.into());
    let mut plain = block.into();
    cipher.decrypt_block(&mut plain);
    let plain: [u8; 16] = plain.into();
    if crc16(&plain) != CRC_OK_RESIDUE {
        return Err(OtpError::Crc);
    }
    // SECURITY: constant-time comparison of the private id.
    if !bool::from(plain[..6].ct_eq(private_id)) {
        return Err(OtpError::PrivateId);
    }
    let mut id = [0u8; 6];
    id.copy_from_slice(&plain[..6]);
    Ok(Decrypted {
        private_id: id,
        usage_counter: u16::from_le_bytes([plain[6], plain[7]]),
        session_counter: plain[11],
    })
}

/// Makes an OTP the way a YubiKey does (for tests and token simulators).
pub fn generate(public_id: &str, fields: &Decrypted, timestamp: u32, random: u16, aes_key: &[u8; 16]) -> String {
    use aes::cipher::BlockEncrypt;
    let mut plain = [0u8; 16];
    plain[..6].copy_from_slice(&fields.private_id);
    plain[6..8].copy_from_slice(&fields.usage_counter.to_le_bytes());
    plain[8..11].copy_from_slice(&timestamp.to_le_bytes()[..3]);
    plain[11] = fields.session_counter;
    plain[12..14].copy_from_slice(&random.to_le_bytes());
    let crc = !crc16(&plain[..14]);
    plain[14..16].copy_from_slice(&crc.to_le_bytes());
    let cipher = Aes128::new(aes_key.into());
    let mut block = plain.into();
    cipher.encrypt_block(&mut block);
    let block: [u8; 16] = block.into();
    format!("{public_id}{}", modhex_encode(&block))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex16(text: &str) -> [u8; 16] {
        let bytes: Vec<u8> = (0..16).map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap()).collect();
        bytes.try_into().unwrap()
    }

    #[test]
    fn yubicos_published_test_vector_decrypts() {
        // The vector of Yubico's libyubikey documentation.
        let key = hex16("ecde18dbe76fbd0c33330f1c354871db");
        let private_id = [0x87, 0x92, 0xeb, 0xfe, 0x26, 0xcc];
        let d = verify("dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh", "dteffuje", &private_id, &key).unwrap();
        assert_eq!((d.usage_counter, d.session_counter), (0x13, 0x11));
        assert_eq!(d.counter(), 0x1311);
    }

    #[test]
    fn wrong_keys_ids_and_tampering_are_refused() {
        let key = hex16("ecde18dbe76fbd0c33330f1c354871db");
        let private_id = [0x87, 0x92, 0xeb, 0xfe, 0x26, 0xcc];
        let otp = "dteffujehknhfjbrjnlnldnhcujvddbikngjrtgh";
        assert_eq!(verify(otp, "dteffujf", &private_id, &key), Err(OtpError::PublicId));
        assert_eq!(verify(otp, "dteffuje", &[0; 6], &key), Err(OtpError::PrivateId));
        assert_eq!(verify(otp, "dteffuje", &private_id, &[0; 16]), Err(OtpError::Crc));
        let tampered = format!("{}c", &otp[..otp.len() - 1]);
        assert_eq!(verify(&tampered, "dteffuje", &private_id, &key), Err(OtpError::Crc));
        assert_eq!(verify("short", "dteffuje", &private_id, &key), Err(OtpError::Format));
        assert_eq!(verify(&otp.replace('d', "x"), "dteffuje", &private_id, &key), Err(OtpError::Format));
    }

    #[test]
    fn generated_otps_round_trip_with_growing_counters() {
        let key = hex16("000102030405060708090a0b0c0d0e0f");
        let public_id = "vvccccdddeee";
        let fields = Decrypted { private_id: [1, 2, 3, 4, 5, 6], usage_counter: 7, session_counter: 3 };
        let otp = generate(public_id, &fields, 0x00abcdef, 0x1234, &key);
        assert_eq!(otp.len(), 44);
        assert_eq!(verify(&otp, public_id, &fields.private_id, &key).unwrap(), fields);
        let next = Decrypted { session_counter: 4, ..fields.clone() };
        assert!(next.counter() > fields.counter());
        let replugged = Decrypted { usage_counter: 8, session_counter: 0, ..fields.clone() };
        assert!(replugged.counter() > next.counter());
        assert_eq!(modhex_decode(&modhex_encode(&[0x00, 0xff, 0x5a])).unwrap(), vec![0x00, 0xff, 0x5a]);
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_refused_or_checked_without_panicking(text in "\\PC{0,60}") {
            let _ = verify(&text, "dteffuje", &[0; 6], &[0; 16]);
        }

        #[test]
        fn modhex_round_trips(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..40)) {
            proptest::prop_assert_eq!(modhex_decode(&modhex_encode(&bytes)).unwrap(), bytes);
        }
    }
}
