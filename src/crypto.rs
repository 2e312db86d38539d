//! Secrets at rest: AES-256-GCM with the operator's `SECRETS_KEY`. Each value gets a fresh random
//! nonce; the stored form is `v1:` + base64(nonce ‖ ciphertext ‖ tag).

use aes_gcm::aead::{Aead, AeadCore, KeyInit, OsRng};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use base64::engine::general_purpose::STANDARD;
use base64::Engine;

const PREFIX: &str = "v1:";
const NONCE_LEN: usize = 12;

/// Encrypts and decrypts secrets with one 256-bit key. Its `Debug` never shows the key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: Aes256Gcm,
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
        })
    }

    /// A new random key in the base64 form `from_base64` reads.
    pub fn generate_key() -> String {
        STANDARD.encode(Aes256Gcm::generate_key(OsRng))
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

#[cfg(test)]
mod tests {
    use super::*;

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
