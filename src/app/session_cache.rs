//! Sessions and users as every instance remembers them, so a bearer request costs no query
//! once its session and user were seen, and a logout, revocation, deactivation or role change
//! applies on every instance within milliseconds, not when the 15-minute access token expires.
//!
//! * Sessions: a revoked session is remembered as such (the in-memory revocation set); a live
//!   one as live until the `sessions` trigger's `NOTIFY session_revoked` (or this instance's
//!   own revocation) marks it revoked. Sessions are never un-revoked, so the mark is final.
//! * Users: role, status and two-factor state (with the team's two-factor rule), dropped on
//!   `NOTIFY user_changed` (payload the user's uuid, `*` for all: the team's settings changed)
//!   and read again on the next request.
//!
//! After a reconnect of the listener everything is dropped (notifications may have been
//! missed). A read that raced a notification is not stored: every notification bumps an epoch,
//! and [`SessionCache::put_session`] / [`SessionCache::put_user`] store only when the epoch is
//! the one seen before the read. Each map holds at most [`MAX_ENTRIES`]; when full it is
//! emptied (and refilled by use).

use crate::db::users::UserState;
use crate::domain::{SessionId, TenantId, UserId};
use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Most sessions (and most users) remembered at once.
pub const MAX_ENTRIES: usize = 200_000;

/// The cache (see the module docs).
#[derive(Debug, Default)]
pub struct SessionCache {
    sessions: RwLock<HashMap<SessionId, bool>>,
    users: RwLock<HashMap<(TenantId, UserId), UserState>>,
    epoch: AtomicU64,
}

fn write<T>(l: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(l: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|e| e.into_inner())
}

impl SessionCache {
    /// The epoch to pass to the `put_*` calls that store what is read next.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// `Some(true)` when the session is known revoked, `Some(false)` known live, `None`
    /// unknown.
    pub fn session_revoked(&self, id: SessionId) -> Option<bool> {
        read(&self.sessions).get(&id).copied()
    }

    /// The remembered state of a user.
    pub fn user(&self, tenant: TenantId, user: UserId) -> Option<UserState> {
        read(&self.users).get(&(tenant, user)).copied()
    }

    /// Remembers a session read at `epoch` (skipped when a notification came in between; a
    /// revocation is always stored).
    pub fn put_session(&self, id: SessionId, revoked: bool, epoch: u64) {
        let mut map = write(&self.sessions);
        if !revoked && self.epoch() != epoch {
            return;
        }
        if map.len() >= MAX_ENTRIES && !map.contains_key(&id) {
            map.clear();
        }
        let entry = map.entry(id).or_insert(revoked);
        *entry |= revoked;
    }

    /// Remembers a user's state read at `epoch` (skipped when a notification came in between).
    pub fn put_user(&self, tenant: TenantId, user: UserId, state: UserState, epoch: u64) {
        let mut map = write(&self.users);
        if self.epoch() != epoch {
            return;
        }
        if map.len() >= MAX_ENTRIES && !map.contains_key(&(tenant, user)) {
            map.clear();
        }
        map.insert((tenant, user), state);
    }

    /// Marks sessions revoked (a notification, or this instance's own revocation).
    pub fn revoked(&self, ids: &[SessionId]) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut map = write(&self.sessions);
        if map.len() + ids.len() >= MAX_ENTRIES {
            map.clear();
        }
        for id in ids {
            map.insert(*id, true);
        }
    }

    /// Forgets a user's state (it changed); `None`: every user (team settings changed).
    pub fn forget_user(&self, user: Option<uuid::Uuid>) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        let mut map = write(&self.users);
        match user {
            Some(u) => map.retain(|(_, id), _| id.as_uuid() != u),
            None => map.clear(),
        }
    }

    /// Forgets everything (after notifications may have been missed).
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        write(&self.sessions).clear();
        write(&self.users).clear();
    }

    /// Applies a `session_revoked` payload; `false` when malformed.
    pub fn on_session_revoked(&self, payload: &str) -> bool {
        match uuid::Uuid::parse_str(payload) {
            Ok(id) => {
                self.revoked(&[SessionId::from_uuid(id)]);
                true
            }
            Err(_) => false,
        }
    }

    /// Applies a `user_changed` payload; `false` when malformed.
    pub fn on_user_changed(&self, payload: &str) -> bool {
        if payload == "*" {
            self.forget_user(None);
            return true;
        }
        match uuid::Uuid::parse_str(payload) {
            Ok(id) => {
                self.forget_user(Some(id));
                true
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::users::UserStatus;
    use crate::domain::Role;

    #[test]
    fn revocations_stick_and_races_are_not_stored() {
        let cache = SessionCache::default();
        let (s, t, u) = (SessionId::new(), TenantId::new(), UserId::new());
        let state = UserState {
            role: Role::Admin,
            status: UserStatus::Active,
            two_factor: false,
            team_requires_two_factor: false,
        };
        let e = cache.epoch();
        cache.put_session(s, false, e);
        cache.put_user(t, u, state, e);
        assert_eq!(cache.session_revoked(s), Some(false));
        assert_eq!(cache.user(t, u), Some(state));
        assert!(cache.on_session_revoked(&s.as_uuid().to_string()));
        assert_eq!(cache.session_revoked(s), Some(true));
        // A stale "live" read cannot undo a revocation.
        cache.put_session(s, false, cache.epoch());
        assert_eq!(cache.session_revoked(s), Some(true));
        // A read that started before a notification is not stored.
        let before = cache.epoch();
        assert!(cache.on_user_changed(&u.as_uuid().to_string()));
        assert_eq!(cache.user(t, u), None);
        cache.put_user(t, u, state, before);
        assert_eq!(cache.user(t, u), None);
        cache.put_user(t, u, state, cache.epoch());
        assert!(cache.on_user_changed("*"));
        assert_eq!(cache.user(t, u), None);
        assert!(!cache.on_user_changed("nope"));
    }
}
