//! Telling validators of new revocations over Valkey pub/sub (`VALKEY_URL`): a notice on the
//! revocation channel, on which every validator subscribed there reads its revocation feed at
//! once (lib-auth's `push` module). The notice carries no revocation: validators read none of
//! it, so whoever else can publish on the channel can make them read their feed, and nothing
//! more.
//!
//! Publishing never holds up a request: the background task is told through a queue of one
//! notice. Revocations written while a notice waits are covered by it (it is published after
//! they are written, and validators then read the feed), so a burst of logouts costs one or two
//! notices. While Valkey cannot be reached, notices are dropped (the store logs once per outage)
//! and validators get the revocations from the feed's polls instead, as they do for anything
//! written while they were not listening. The store connects on first use and again after each
//! failure, so Valkey down at start or lost mid-run changes nothing else.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lib_auth::{REVOCATION_CHANNEL, REVOCATION_MESSAGE_VERSION, ValkeyStore};
use serde_json::json;
use tokio::sync::mpsc;

/// How long one publish may take, connecting included.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The publishing side of the revocation channel.
#[derive(Debug)]
pub struct Publisher {
    /// Holds the notice waiting to be published, if any.
    sender: mpsc::Sender<()>,
    /// The receiver until [`start`](Publisher::start) hands it to the task.
    receiver: Mutex<Option<mpsc::Receiver<()>>>,
    valkey: Arc<ValkeyStore>,
}

impl Publisher {
    /// A publisher to `url` (`VALKEY_URL`) on the revocation channel of `prefix`; nothing is
    /// connected until [`start`](Publisher::start).
    pub fn new(url: &str, prefix: &str) -> Publisher {
        let (sender, receiver) = mpsc::channel(1);
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

    /// Tells validators that revocations were written (call it after writing them); never
    /// waits. A notice already waiting covers these too.
    pub fn notify(&self) {
        // Full: the waiting notice is published after this point, which is all it takes.
        let _ = self.sender.try_send(());
    }
}

/// Publishes a notice for each wake-up. A failed one is dropped (the store logs it): while
/// Valkey is down each try costs at most [`PUBLISH_TIMEOUT`], and the feed's polls bring the
/// revocations.
async fn run(valkey: Arc<ValkeyStore>, mut queue: mpsc::Receiver<()>) {
    let notice = json!({"v": REVOCATION_MESSAGE_VERSION}).to_string();
    while queue.recv().await.is_some() {
        let _ = valkey.publish(REVOCATION_CHANNEL, &notice).await;
    }
}
