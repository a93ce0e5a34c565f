//! Publishing new revocations over Valkey pub/sub (`VALKEY_URL`), so that every validator
//! subscribed to the channel applies them at once (lib-auth's `push` module reads them).
//!
//! Publishing never holds up a request: new revocations are handed to one background task
//! through a bounded queue. While Valkey cannot be reached, messages are dropped (the store logs
//! once per outage) and validators get the revocations from the feed's polls instead, as they do
//! for anything published while they were not listening. The store connects on first use and
//! again after each failure, so Valkey down at start or lost mid-run changes nothing else.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lib_auth::{REVOCATION_CHANNEL, REVOCATION_MESSAGE_VERSION, ValkeyStore};
use serde_json::json;
use tokio::sync::mpsc;

use crate::store::revocations::Revocation;

/// Messages waiting to be published at most; beyond it, new ones are dropped (the feed has
/// them).
const QUEUE: usize = 1024;
/// How long one publish may take, connecting included.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The publishing side of the revocation channel.
#[derive(Debug)]
pub struct Publisher {
    sender: mpsc::Sender<String>,
    /// The receiver until [`start`](Publisher::start) hands it to the task.
    receiver: Mutex<Option<mpsc::Receiver<String>>>,
    valkey: Arc<ValkeyStore>,
}

impl Publisher {
    /// A publisher to `url` (`VALKEY_URL`) on the revocation channel of `prefix`; nothing is
    /// connected until [`start`](Publisher::start).
    pub fn new(url: &str, prefix: &str) -> Publisher {
        let (sender, receiver) = mpsc::channel(QUEUE);
        Publisher {
            sender,
            receiver: Mutex::new(Some(receiver)),
            valkey: Arc::new(
                ValkeyStore::new(url, prefix, "revocation publishing")
                    .with_timeout(PUBLISH_TIMEOUT)
                    // Every message tries: one published the moment Valkey is back is not lost.
                    .with_retry_pause(Duration::ZERO),
            ),
        }
    }

    /// Starts the background task (once; later calls do nothing). Needs a Tokio runtime.
    pub fn start(&self) {
        let receiver = self
            .receiver
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        if let Some(receiver) = receiver {
            tokio::spawn(run(self.valkey.clone(), receiver));
        }
    }

    /// Queues `items` for publishing; never waits.
    pub fn publish(&self, items: &[Revocation]) {
        if items.is_empty() {
            return;
        }
        let message = json!({"v": REVOCATION_MESSAGE_VERSION, "items": items}).to_string();
        if self.sender.try_send(message).is_err() {
            tracing::warn!(
                "the revocation publishing queue is full: validators get these revocations from the feed's polls"
            );
        }
    }
}

/// Publishes the queue's messages one by one. A failed one is dropped (the store logs it): while
/// Valkey is down each try costs at most [`PUBLISH_TIMEOUT`], and the queue sheds messages the
/// feed will bring.
async fn run(valkey: Arc<ValkeyStore>, mut queue: mpsc::Receiver<String>) {
    while let Some(message) = queue.recv().await {
        let _ = valkey.publish(REVOCATION_CHANNEL, &message).await;
    }
}
