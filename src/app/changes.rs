//! One `LISTEN` connection per instance for every change other instances (or operators) make:
//! tenants and tiers (the directory), API keys (the key cache), revoked sessions and changed
//! users (the session cache). After a reconnect, notifications may have been missed: the
//! directory reloads and the caches empty.

use super::directory::TenantDirectory;
use super::key_cache::{KeyCache, parse_hex_hash};
use super::session_cache::SessionCache;
use crate::db::listen::{Heard, spawn_listener};
use crate::db::sessions::{SESSION_REVOKED_CHANNEL, USER_CHANGED_CHANNEL};
use crate::db::tenants::{API_KEY_CHANGED_CHANNEL, TENANT_CHANGED_CHANNEL, TIERS_CHANGED_CHANNEL};
use std::sync::Weak;

/// Starts the listener; it ends when the directory is dropped.
pub fn spawn(
    database_url: String,
    directory: Weak<TenantDirectory>,
    keys: Weak<KeyCache>,
    sessions: Weak<SessionCache>,
) {
    spawn_listener(
        database_url,
        vec![
            TENANT_CHANGED_CHANNEL,
            TIERS_CHANGED_CHANNEL,
            API_KEY_CHANGED_CHANNEL,
            SESSION_REVOKED_CHANNEL,
            USER_CHANGED_CHANNEL,
        ],
        move |heard| {
            let (directory, keys) = (directory.upgrade(), keys.upgrade());
            let sessions = sessions.upgrade();
            async move {
                let Some(directory) = directory else {
                    return false;
                };
                match &heard {
                    Heard::Notification { channel, payload }
                        if channel == API_KEY_CHANGED_CHANNEL =>
                    {
                        match (parse_hex_hash(payload), &keys) {
                            (Some(hash), Some(keys)) => keys.forget(&hash),
                            (None, _) => {
                                tracing::warn!(%payload, "ignoring malformed key notification")
                            }
                            _ => {}
                        }
                    }
                    Heard::Notification { channel, payload }
                        if channel == SESSION_REVOKED_CHANNEL
                            || channel == USER_CHANGED_CHANNEL =>
                    {
                        let applied = sessions.as_ref().is_none_or(|s| {
                            if channel == SESSION_REVOKED_CHANNEL {
                                s.on_session_revoked(payload)
                            } else {
                                s.on_user_changed(payload)
                            }
                        });
                        if !applied {
                            tracing::warn!(%channel, %payload, "ignoring malformed notification");
                        }
                    }
                    Heard::Reconnected => {
                        if let Some(keys) = &keys {
                            keys.clear();
                        }
                        if let Some(sessions) = &sessions {
                            sessions.clear();
                        }
                        directory.on_heard(&heard).await;
                    }
                    Heard::Notification { .. } => directory.on_heard(&heard).await,
                }
                true
            }
        },
    );
}
