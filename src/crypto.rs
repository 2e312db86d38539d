//! Secrets at rest: AES-256-GCM with the operator's `SECRETS_KEY`. Each value gets a fresh random
//! nonce; the stored form is `v1:` + base64(nonce ‖ ciphertext ‖ tag).

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// Encrypts and decrypts secrets with one 256-bit key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
    /// A key of its own for [`SecretBox::derive`], so derived secrets say nothing of the cipher's.
    derivation: [u8; 32],
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

/// A secret as stored, sealed by a [`SecretBox`]. Its `Debug` shows nothing of it.
#[derive(
    Clone, PartialEq, Eq, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub struct Sealed(String);

impl Sealed {
    /// The stored text (`v1:` + base64), for the database only.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for Sealed {
    fn from(stored: &str) -> Self {
        Sealed(stored.to_owned())
    }
}

impl std::fmt::Debug for Sealed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealed(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CryptoError {
    #[error("SECRETS_KEY must be 32 bytes encoded as base64")]
    BadKey,
    #[error("a stored secret could not be decrypted (wrong SECRETS_KEY or damaged value)")]
    Undecryptable,
}

impl SecretBox {
    /// From the base64 form of a 32-byte key (`SECRETS_KEY`).
    pub fn from_base64(key: &str) -> Result<Self, CryptoError> {
        let bytes = STANDARD
            .decode(key.trim())
            .map_err(|_| CryptoError::BadKey)?;
        if bytes.len() != 32 {
            return Err(CryptoError::BadKey);
        }
        Ok(SecretBox {
            cipher: Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&bytes)),
            derivation: hmac_sha256(&bytes, b"whatsapp-numbers derived secrets"),
        })
    }

    /// A new random key in the base64 form `from_base64` reads.
    pub fn generate_key() -> String {
        STANDARD.encode(Aes256Gcm::generate_key(OsRng))
    }

    /// A secret of its own for `purpose`, derived from the key: stable across restarts, known to
    /// no one without the key (the sandbox signs the webhooks it plays with one).
    pub fn derive(&self, purpose: &str) -> String {
        hex(&hmac_sha256(&self.derivation, purpose.as_bytes()))
    }

    pub fn encrypt(&self, plaintext: &str) -> Sealed {
        let nonce = Aes256Gcm::generate_nonce(OsRng);
        // Encryption with a valid key and a 12-byte nonce cannot fail for inputs this small.
        let ciphertext = self
            .cipher
            .encrypt(&nonce, plaintext.as_bytes())
            .unwrap_or_default();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&ciphertext);
        Sealed(format!("{PREFIX}{}", STANDARD.encode(out)))
    }

    pub fn decrypt(&self, stored: &Sealed) -> Result<String, CryptoError> {
        let body = stored
            .0
            .strip_prefix(PREFIX)
            .ok_or(CryptoError::Undecryptable)?;
        let bytes = STANDARD
            .decode(body)
            .map_err(|_| CryptoError::Undecryptable)?;
        if bytes.len() <= NONCE_LEN {
            return Err(CryptoError::Undecryptable);
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let plain = self
            .cipher
            .decrypt(Nonce::from_slice(nonce), ciphertext)
            .map_err(|_| CryptoError::Undecryptable)?;
        String::from_utf8(plain).map_err(|_| CryptoError::Undecryptable)
    }
}

/// HMAC-SHA256 of `message` under `key`.
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length (longer ones are hashed first): this cannot fail.
    #[allow(clippy::expect_used)]
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

/// `sha256=<hex>` of `body` under `secret`: the `X-Hub-Signature-256` value Meta sends, and the
/// one we send to agents' webhooks.
pub fn hub_signature(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex(&hmac_sha256(secret, body)))
}

/// Whether `header` is `sha256=<hex>` of the HMAC-SHA256 of the raw `body` under `secret`.
/// The comparison is the `hmac` crate's, in constant time; nothing says how close a wrong one was.
pub fn verify_hub_signature(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_mac) = header
        .map(str::trim)
        .and_then(|h| h.strip_prefix("sha256="))
    else {
        return false;
    };
    let Some(expected) = unhex(hex_mac) else {
        return false;
    };
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return false,
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Whether two secrets are equal, without the time taken saying how much of them matched: their
/// HMACs under a random key are compared instead.
pub fn same_secret(a: &str, b: &str) -> bool {
    let key: [u8; 32] = rand_key();
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&key) {
        Ok(mac) => mac,
        Err(_) => return false,
    };
    mac.update(a.as_bytes());
    mac.verify_slice(&hmac_sha256(&key, b.as_bytes())).is_ok()
}

fn rand_key() -> [u8; 32] {
    Aes256Gcm::generate_key(OsRng).into()
}

/// SHA-256 of `data`, in lower-case hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut out, b| {
            let _ = write!(out, "{b:02x}");
            out
        })
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_signatures_verify_over_the_raw_bytes_only() {
        let body =
            br#"{"object":"whatsapp_business_account","entry":[{"id":"1","text":"K\u00e4se"}]}"#;
        let good = hub_signature(b"app-secret", body);
        assert!(verify_hub_signature(b"app-secret", body, Some(&good)));
        assert!(verify_hub_signature(
            b"app-secret",
            body,
            Some(&good.to_uppercase().replace("SHA256=", "sha256="))
        ));
        assert!(!verify_hub_signature(b"other-secret", body, Some(&good)));
        assert!(!verify_hub_signature(b"app-secret", body, None));
        assert!(!verify_hub_signature(b"app-secret", body, Some("sha256=")));
        assert!(!verify_hub_signature(
            b"app-secret",
            body,
            Some(good.trim_start_matches("sha256="))
        ));
        assert!(!verify_hub_signature(
            b"app-secret",
            body,
            Some("sha256=zz")
        ));
        // The same JSON with the unicode unescaped is another body.
        let reserialized =
            r#"{"object":"whatsapp_business_account","entry":[{"id":"1","text":"Käse"}]}"#;
        assert!(!verify_hub_signature(
            b"app-secret",
            reserialized.as_bytes(),
            Some(&good)
        ));
    }

    #[test]
    fn round_trip_with_fresh_nonces() {
        let key = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let a = key.encrypt("EAAG-token");
        let b = key.encrypt("EAAG-token");
        assert_ne!(a, b, "each value gets its own nonce");
        assert!(!a.as_str().contains("EAAG"));
        assert_eq!(format!("{a:?}"), "Sealed(..)", "Debug shows nothing of it");
        assert_eq!(key.decrypt(&a).unwrap(), "EAAG-token");
    }

    #[test]
    fn another_key_or_a_damaged_value_cannot_decrypt() {
        let key = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let other = SecretBox::from_base64(&SecretBox::generate_key()).unwrap();
        let sealed = key.encrypt("123456");
        assert_eq!(other.decrypt(&sealed), Err(CryptoError::Undecryptable));
        let mut text = sealed.as_str().to_owned();
        text.pop();
        text.push('A');
        let damaged = Sealed::from(text.as_str());
        assert!(key.decrypt(&damaged).is_err() || damaged == sealed);
        assert_eq!(
            key.decrypt(&Sealed::from("plain")),
            Err(CryptoError::Undecryptable)
        );
    }

    #[test]
    fn keys_must_be_32_bytes_of_base64() {
        assert_eq!(
            SecretBox::from_base64("c2hvcnQ=").unwrap_err(),
            CryptoError::BadKey
        );
        assert_eq!(
            SecretBox::from_base64("not base64!").unwrap_err(),
            CryptoError::BadKey
        );
    }
}
