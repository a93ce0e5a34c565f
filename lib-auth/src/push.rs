//! Revocations pushed over Valkey pub/sub (SPEC §7). With `VALKEY_URL`, the Auth service
//! publishes each new revocation on [`revocation_channel`] the moment it is written, and every
//! validator subscribed there applies it at once: a logout reaches all of them within
//! milliseconds instead of a poll interval.
//!
//! The revocation feed stays. It is the fallback while Valkey cannot be reached, and after
//! every (re)subscription it is polled at once, which catches up with whatever was published
//! while this validator was not listening. Valkey down therefore never lets a revoked token
//! through for longer than a poll interval; it never fails open.
//!
//! Messages are JSON `{"v": 1, "items": [<feed items>]}`, the items exactly as
//! `GET /v1/revocations` answers them. A message of another version, or one that cannot be
//! read, is ignored (and logged once): the next poll brings what it carried. A message can
//! only refuse tokens, never admit one, so whoever can publish on the channel can at worst
//! log users out; keep Valkey private to the services, as the Auth service's database is.

use std::sync::Weak;
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use crate::revocation::RevocationStore;
use crate::sync::{Feeds, Outage, revocations_of};

/// The version of revocation messages this library writes and reads.
pub const MESSAGE_VERSION: u64 = 1;

/// The largest message read; a longer one is ignored.
const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The first pause after a lost connection; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);

const SOURCE: &str = "valkey revocation channel";
const DOWN: &str = "cannot listen for pushed revocations: they arrive with the revocation feed's polls until Valkey answers again";

/// The name of the revocation channel within a namespace.
pub const REVOCATION_CHANNEL: &str = "revocations";

/// The pub/sub channel of revocation messages in the namespace `prefix` (`VALKEY_PREFIX`):
/// `<prefix>:`[`REVOCATION_CHANNEL`].
pub fn revocation_channel(prefix: &str) -> String {
    format!("{prefix}:{REVOCATION_CHANNEL}")
}

/// Where to listen.
#[derive(Debug, Clone)]
pub(crate) struct Subscription {
    /// `VALKEY_URL`.
    pub(crate) url: crate::config::Secret,
    /// [`revocation_channel`] of `VALKEY_PREFIX`.
    pub(crate) channel: String,
}

#[derive(Deserialize)]
struct Message {
    v: u64,
    #[serde(default)]
    items: Vec<Value>,
}

/// Listens until the `Auth` is gone, reconnecting with backoff whenever the connection fails.
pub(crate) async fn run(subscription: Subscription, feeds: Weak<Feeds>) {
    let mut outage = Outage::default();
    let mut backoff = MIN_BACKOFF;
    loop {
        match listen(&subscription, &feeds, &mut outage, &mut backoff).await {
            Ended::FeedsGone => return,
            Ended::Lost(detail) => outage.failed(SOURCE, DOWN, &detail),
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

enum Ended {
    FeedsGone,
    Lost(String),
}

async fn listen(
    subscription: &Subscription,
    feeds: &Weak<Feeds>,
    outage: &mut Outage,
    backoff: &mut Duration,
) -> Ended {
    use futures_util::StreamExt as _;

    let client = match redis::Client::open(subscription.url.expose()) {
        Ok(client) => client,
        Err(e) => return Ended::Lost(e.to_string()),
    };
    let mut pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return Ended::Lost(e.to_string()),
        Err(_) => return Ended::Lost("connecting timed out".to_owned()),
    };
    if let Err(e) = pubsub.subscribe(subscription.channel.as_str()).await {
        return Ended::Lost(e.to_string());
    }
    outage.recovered(SOURCE);
    tracing::info!(channel = %subscription.channel, "listening for pushed revocations");
    *backoff = MIN_BACKOFF;
    // Everything published from now on arrives here; what was published before, while this
    // validator was not listening, comes with one poll of the feed, now.
    match feeds.upgrade() {
        Some(feeds) => feeds.poll_now(),
        None => return Ended::FeedsGone,
    }
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let Some(feeds) = feeds.upgrade() else {
            return Ended::FeedsGone;
        };
        apply(&feeds.store, message.get_payload_bytes());
    }
    Ended::Lost("the connection was closed".to_owned())
}

/// Applies the revocations of one message; how many entries it added or changed.
fn apply(store: &RevocationStore, payload: &[u8]) -> usize {
    if payload.len() > MAX_MESSAGE_BYTES {
        tracing::warn!(
            bytes = payload.len(),
            "ignored a revocation message larger than 1 MiB; the next poll brings its revocations"
        );
        return 0;
    }
    let message: Message = match serde_json::from_slice(payload) {
        Ok(message) => message,
        Err(_) => {
            tracing::warn!(
                "ignored a revocation message that is not {{\"v\",\"items\"}} JSON; the next poll brings its revocations"
            );
            return 0;
        }
    };
    if message.v != MESSAGE_VERSION {
        tracing::warn!(
            version = message.v,
            "ignored a revocation message of another version; the next poll brings its revocations"
        );
        return 0;
    }
    store.apply(message.items.iter().filter_map(revocations_of).flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_of_this_version_are_applied_and_others_ignored() {
        let store = RevocationStore::new(0);
        let far = crate::verify::unix_now() + 3600;
        let message = |v: u64| {
            format!(r#"{{"v":{v},"items":[{{"sid":"s-{v}","expiresAt":{far}}},{{"bogus":true}}]}}"#)
        };
        assert_eq!(apply(&store, message(1).as_bytes()), 1);
        assert_eq!(apply(&store, message(2).as_bytes()), 0);
        assert_eq!(apply(&store, b"not json"), 0);
        assert_eq!(apply(&store, br#"{"items":[]}"#), 0, "no version");
        let huge = format!(
            r#"{{"v":1,"items":[],"pad":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(apply(&store, huge.as_bytes()), 0);
        assert_eq!(store.len(), 1);
    }
}
