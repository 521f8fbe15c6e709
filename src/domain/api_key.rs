//! API key format: `mk_live_` + 22 base62 characters (128 random bits) + a 6-character base62
//! CRC-32 checksum of those 22 characters. A malformed or mistyped key is refused by
//! [`ApiKeySecret::parse`] without touching the database. Only the SHA-256 of the whole key is
//! stored, plus a display prefix (`mk_live_` + the first 6 random characters).

use rand::Rng;
use sha2::{Digest, Sha256};
use std::fmt;

/// Every key starts with this.
pub const KEY_PREFIX: &str = "mk_live_";
const BODY_LEN: usize = 22;
const CHECK_LEN: usize = 6;
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

fn base62(mut n: u128, width: usize) -> String {
    let mut out = vec![b'0'; width];
    for slot in out.iter_mut().rev() {
        *slot = ALPHABET[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out).expect("alphabet is ASCII")
}

fn checksum(body: &str) -> String {
    base62(u128::from(crc32fast::hash(body.as_bytes())), CHECK_LEN)
}

/// A syntactically valid API key as presented by a caller. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeySecret(String);

/// A freshly generated key: the secret (shown once) and what is stored.
#[derive(Debug, Clone)]
pub struct GeneratedKey {
    /// The whole key; returned to the caller once, never stored.
    pub secret: ApiKeySecret,
    /// SHA-256 of the whole key, stored and used for lookup.
    pub hash: [u8; 32],
    /// Display prefix, e.g. `mk_live_7GxQ2a`.
    pub prefix: String,
}

impl ApiKeySecret {
    /// Generates a key from 128 bits of the thread-local CSPRNG (ChaCha, seeded by the OS).
    pub fn generate() -> GeneratedKey {
        let mut bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut bytes);
        let body = base62(u128::from_le_bytes(bytes), BODY_LEN);
        let secret = Self(format!("{KEY_PREFIX}{body}{}", checksum(&body)));
        GeneratedKey {
            hash: secret.hash(),
            prefix: secret.display_prefix(),
            secret,
        }
    }

    /// Checks prefix, length, alphabet and checksum.
    ///
    /// # Errors
    /// A message saying which part of the key is malformed.
    pub fn parse(s: &str) -> Result<Self, &'static str> {
        let rest = s
            .strip_prefix(KEY_PREFIX)
            .ok_or("API key must start with mk_live_")?;
        if rest.len() != BODY_LEN + CHECK_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err("API key has the wrong length or characters");
        }
        let (body, check) = rest.split_at(BODY_LEN);
        if checksum(body) != check {
            return Err("API key checksum does not match (mistyped or truncated key)");
        }
        Ok(Self(s.to_string()))
    }

    /// SHA-256 of the whole key.
    pub fn hash(&self) -> [u8; 32] {
        Sha256::digest(self.0.as_bytes()).into()
    }

    /// `mk_live_` + the first 6 random characters.
    pub fn display_prefix(&self) -> String {
        self.0[..KEY_PREFIX.len() + 6].to_string()
    }

    /// The key text (only for showing once at creation).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKeySecret({}…)", self.display_prefix())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_and_differ() {
        let a = ApiKeySecret::generate();
        let b = ApiKeySecret::generate();
        assert_ne!(a.secret.expose(), b.secret.expose());
        assert_eq!(
            a.secret.expose().len(),
            KEY_PREFIX.len() + BODY_LEN + CHECK_LEN
        );
        assert_eq!(ApiKeySecret::parse(a.secret.expose()).unwrap(), a.secret);
        assert!(a.prefix.starts_with(KEY_PREFIX));
        assert!(!format!("{:?}", a.secret).contains(&a.secret.expose()[20..]));
    }

    #[test]
    fn malformed_keys_are_refused() {
        let key = ApiKeySecret::generate().secret.expose().to_string();
        let mut typo = key.clone().into_bytes();
        typo[12] = if typo[12] == b'a' { b'b' } else { b'a' };
        let typo = String::from_utf8(typo).unwrap();
        for bad in [
            "",
            "mk_test_abc",
            &key[..key.len() - 1],
            &format!("{key}x"),
            &typo,
            &key.replace("mk_live_", "mk_live-"),
        ] {
            assert!(ApiKeySecret::parse(bad).is_err(), "{bad:?}");
        }
    }
}
