//! API keys as every instance remembers them, so an authenticated request costs no query once
//! its key was seen (and a request refused by the burst limit costs none at all).
//!
//! An entry holds what decides whether the key may be used: its tenant, revocation and expiry.
//! It is dropped when the key changes: at once on the instance that revoked it, and on every
//! other instance when the `api_keys` trigger's `NOTIFY api_key_changed` arrives (milliseconds);
//! everything is dropped after a reconnect of the listener (notifications may have been
//! missed). Keys that do not exist are remembered too ([`NEGATIVE_TTL`]), so a flood of made-up
//! keys with valid checksums costs one lookup each per minute, not one per request. The cache
//! holds at most [`MAX_ENTRIES`]; when full it is emptied (and refilled by use).

use crate::domain::{ApiKeyId, TenantId};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// How long a key that does not exist is remembered as such.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(60);

/// Most keys remembered at once.
pub const MAX_ENTRIES: usize = 200_000;

/// What is known of a presented key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Known {
    /// A key of `tenant`.
    Key {
        /// The key.
        id: ApiKeyId,
        /// Its tenant.
        tenant: TenantId,
        /// Revoked.
        revoked: bool,
        /// Expiry.
        expires_at: Option<DateTime<Utc>>,
        /// Last use recorded in the database.
        last_used_at: Option<DateTime<Utc>>,
    },
    /// No such key (as of when it was looked up).
    Unknown,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    known: Known,
    cached_at: Instant,
}

/// The cache (see the module docs).
#[derive(Debug, Default)]
pub struct KeyCache {
    by_hash: RwLock<HashMap<[u8; 32], Entry>>,
}

impl KeyCache {
    /// What is known of the key with this hash, if it is remembered and not stale.
    pub fn get(&self, hash: &[u8; 32]) -> Option<Known> {
        let map = self.by_hash.read().unwrap_or_else(|e| e.into_inner());
        let e = map.get(hash)?;
        match e.known {
            Known::Unknown if e.cached_at.elapsed() > NEGATIVE_TTL => None,
            known => Some(known),
        }
    }

    /// Remembers what was just read.
    pub fn put(&self, hash: [u8; 32], known: Known) {
        let mut map = self.by_hash.write().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES && !map.contains_key(&hash) {
            map.clear();
        }
        map.insert(
            hash,
            Entry {
                known,
                cached_at: Instant::now(),
            },
        );
    }

    /// Records that the key's use at `at` was written to the database.
    pub fn touched(&self, hash: &[u8; 32], at: DateTime<Utc>) {
        let mut map = self.by_hash.write().unwrap_or_else(|e| e.into_inner());
        if let Some(Entry {
            known: Known::Key { last_used_at, .. },
            ..
        }) = map.get_mut(hash)
        {
            *last_used_at = Some(at);
        }
    }

    /// Forgets the key with this hash (it changed).
    pub fn forget(&self, hash: &[u8; 32]) {
        self.by_hash
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(hash);
    }

    /// Forgets the key with this id (it was revoked through this instance).
    pub fn forget_id(&self, id: ApiKeyId) {
        self.by_hash
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|_, e| !matches!(e.known, Known::Key { id: k, .. } if k == id));
    }

    /// Forgets everything (after notifications may have been missed).
    pub fn clear(&self) {
        self.by_hash
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Keys remembered.
    pub fn len(&self) -> usize {
        self.by_hash.read().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Nothing remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A key hash as the `api_key_changed` notification spells it (64 hex digits).
pub fn parse_hex_hash(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_forgets_and_parses_notifications() {
        let cache = KeyCache::default();
        let (h1, h2) = ([1u8; 32], [2u8; 32]);
        let id = ApiKeyId::new();
        let key = Known::Key {
            id,
            tenant: TenantId::new(),
            revoked: false,
            expires_at: None,
            last_used_at: None,
        };
        cache.put(h1, key);
        cache.put(h2, Known::Unknown);
        assert_eq!(cache.get(&h1), Some(key));
        assert_eq!(cache.get(&h2), Some(Known::Unknown));
        let now = Utc::now();
        cache.touched(&h1, now);
        assert!(
            matches!(cache.get(&h1), Some(Known::Key { last_used_at: Some(t), .. }) if t == now)
        );
        cache.forget_id(id);
        assert_eq!(cache.get(&h1), None);
        let hex: String = h2.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse_hex_hash(&hex), Some(h2));
        assert_eq!(parse_hex_hash("zz"), None);
        cache.forget(&h2);
        assert!(cache.is_empty());
    }
}
