//! `LISTEN` on a dedicated connection, with reconnection: the way every instance hears of
//! changes made through any instance (or by an operator).

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use std::str::FromStr;
use std::time::Duration;

/// What a listener hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A notification on `channel` with its payload.
    Notification {
        /// Channel name.
        channel: String,
        /// Payload.
        payload: String,
    },
    /// The connection was (re-)established after a loss: notifications may have been missed.
    Reconnected,
}

/// Listens on `channels` with its own connection to `url` and calls `on_heard` for each
/// notification, and with [`Heard::Reconnected`] after every reconnect. Retries every second
/// while PostgreSQL is unreachable. Stops when `on_heard` returns `false`.
pub fn spawn_listener<F, Fut>(url: String, channels: Vec<&'static str>, mut on_heard: F)
where
    F: FnMut(Heard) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = bool> + Send,
{
    tokio::spawn(async move {
        let Ok(opts) = PgConnectOptions::from_str(&url) else {
            tracing::error!("change listener: unusable DATABASE_URL");
            return;
        };
        // Its own connection: a listener holds one for good.
        let pool = PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(opts);
        let mut first = true;
        loop {
            let mut listener = match PgListener::connect_with(&pool).await {
                Ok(l) => l,
                Err(err) => {
                    tracing::warn!(error = %err, "change listener: cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            if let Err(err) = listener.listen_all(channels.iter().copied()).await {
                tracing::warn!(error = %err, "change listener: LISTEN failed; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
            let mut resync = !first;
            first = false;
            loop {
                if resync {
                    if !on_heard(Heard::Reconnected).await {
                        return;
                    }
                    resync = false;
                }
                match listener.try_recv().await {
                    Ok(Some(note)) => {
                        let heard = Heard::Notification {
                            channel: note.channel().to_string(),
                            payload: note.payload().to_string(),
                        };
                        if !on_heard(heard).await {
                            return;
                        }
                    }
                    Ok(None) => resync = true,
                    Err(err) => {
                        tracing::warn!(error = %err, "change listener lost its connection");
                        break;
                    }
                }
            }
        }
    });
}
