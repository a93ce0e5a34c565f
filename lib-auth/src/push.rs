//! Revocations pushed over Valkey pub/sub (SPEC §7). With `VALKEY_URL`, the Auth service
//! publishes a notice on [`revocation_channel`] the moment it writes new revocations, and every
//! validator subscribed there reads its revocation feed at once: a logout reaches all of them
//! within milliseconds instead of a poll interval.
//!
//! A notice is only a wake-up: what it says is never read. Revocations come from the feed
//! alone, which answers only the service's own application token; anyone who can publish on
//! the channel could otherwise revoke any session or subject, or fill the revocation store
//! until it dropped the real entries. Notices are coalesced: one arriving while the feed is
//! being read brings one more read after it, and a flood of them brings at most one read per
//! [`MIN_WAKE_GAP`](crate::sync::MIN_WAKE_GAP).
//!
//! The subscription is pinged every few seconds, so a connection that died without a word (a
//! NAT or load balancer dropping it when idle) is found out and opened again.
//!
//! The feed's polls stay. They are the fallback while Valkey cannot be reached, and after
//! every (re)subscription the feed is read at once, which catches up with whatever was
//! published while this validator was not listening. Valkey down therefore never lets a
//! revoked token through for longer than a poll interval; it never fails open.

use std::sync::Weak;
use std::time::Duration;

use crate::sync::{Feeds, Outage};

/// The version of the notice the Auth service publishes (`{"v":2}`); validators read none of
/// it (version 1 carried the revocations themselves, which were read).
pub const MESSAGE_VERSION: u64 = 2;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// The first pause after a lost connection; it doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often the subscription is pinged: a connection that died without a word (a NAT or
/// load balancer dropping it when idle, a Valkey host gone) would otherwise lose every notice
/// unnoticed, leaving revocations to the polls.
const PING_EVERY: Duration = Duration::from_secs(5);
/// How long a ping may take before the connection counts as lost.
const PING_TIMEOUT: Duration = Duration::from_secs(2);

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
    let pubsub = match tokio::time::timeout(CONNECT_TIMEOUT, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => pubsub,
        Ok(Err(e)) => return Ended::Lost(e.to_string()),
        Err(_) => return Ended::Lost("connecting timed out".to_owned()),
    };
    let (mut sink, mut messages) = pubsub.split();
    match tokio::time::timeout(
        CONNECT_TIMEOUT,
        sink.subscribe(subscription.channel.as_str()),
    )
    .await
    {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Ended::Lost(e.to_string()),
        Err(_) => return Ended::Lost("subscribing timed out".to_owned()),
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
    let mut pings = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => {
                if message.is_none() {
                    return Ended::Lost("the connection was closed".to_owned());
                }
                let Some(feeds) = feeds.upgrade() else {
                    return Ended::FeedsGone;
                };
                feeds.poll_now();
            }
            _ = pings.tick() => {
                // Notices that come meanwhile wait in the stream.
                match tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => return Ended::Lost(e.to_string()),
                    Err(_) => return Ended::Lost("no answer to a ping within 2 s".to_owned()),
                }
            }
        }
    }
}
