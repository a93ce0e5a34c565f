//! Publishing new revocations over Valkey pub/sub (`VALKEY_URL`), so that every validator
//! subscribed to the channel applies them at once (lib-auth's `push` module reads them).
//!
//! Publishing never holds up a request: new revocations are handed to one background task
//! through a bounded queue. While Valkey cannot be reached, messages are dropped (logged once
//! per outage) and validators get the revocations from the feed's polls instead, as they do
//! for anything published while they were not listening. The task connects on first use and
//! again after each failure, so Valkey down at start or lost mid-run changes nothing else.

use std::sync::Mutex;
use std::time::Duration;

use lib_auth::{REVOCATION_MESSAGE_VERSION, revocation_channel};
use serde_json::json;
use tokio::sync::mpsc;

use crate::store::revocations::Revocation;

/// Messages waiting to be published at most; beyond it, new ones are dropped (the feed has
/// them).
const QUEUE: usize = 1024;
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one publish may take.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(2);

/// The publishing side of the revocation channel.
#[derive(Debug)]
pub struct Publisher {
    sender: mpsc::Sender<String>,
    /// The receiver until [`start`](Publisher::start) hands it to the task.
    receiver: Mutex<Option<mpsc::Receiver<String>>>,
    url: String,
    channel: String,
}

impl Publisher {
    /// A publisher to `url` (`VALKEY_URL`) on the revocation channel of `prefix`; nothing is
    /// connected until [`start`](Publisher::start).
    pub fn new(url: &str, prefix: &str) -> Publisher {
        let (sender, receiver) = mpsc::channel(QUEUE);
        Publisher {
            sender,
            receiver: Mutex::new(Some(receiver)),
            url: url.to_owned(),
            channel: revocation_channel(prefix),
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
            tokio::spawn(run(self.url.clone(), self.channel.clone(), receiver));
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

async fn run(url: String, channel: String, mut queue: mpsc::Receiver<String>) {
    let mut connection: Option<redis::aio::MultiplexedConnection> = None;
    let mut down = false;
    while let Some(message) = queue.recv().await {
        // Twice at most: a connection that broke since the last message is replaced once.
        for _ in 0..2 {
            // No pause between attempts: each costs at most CONNECT_TIMEOUT, and while they
            // fail the queue fills and sheds messages the feed will bring anyway.
            if connection.is_none() {
                match connect(&url).await {
                    Ok(fresh) => connection = Some(fresh),
                    Err(e) => {
                        report(&mut down, &e);
                        break;
                    }
                }
            }
            let Some(open) = connection.as_mut() else {
                break;
            };
            let published = tokio::time::timeout(
                PUBLISH_TIMEOUT,
                redis::cmd("PUBLISH")
                    .arg(&channel)
                    .arg(&message)
                    .query_async::<i64>(open),
            )
            .await;
            match published {
                Ok(Ok(_)) => {
                    if std::mem::take(&mut down) {
                        tracing::info!("publishing revocations to Valkey again");
                    }
                    break;
                }
                Ok(Err(e)) => report(&mut down, &e.to_string()),
                Err(_) => report(&mut down, "publishing timed out"),
            }
            connection = None;
        }
    }
}

async fn connect(url: &str) -> Result<redis::aio::MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|e| e.to_string())?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.get_multiplexed_async_connection()).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connecting timed out".to_owned()),
    }
}

/// Logs the first failure of an outage at WARN, the rest at DEBUG.
fn report(down: &mut bool, error: &str) {
    if std::mem::replace(down, true) {
        tracing::debug!(%error, "publishing revocations to Valkey still fails");
    } else {
        tracing::warn!(
            %error,
            "cannot publish revocations to Valkey: validators get them from the feed's polls until it answers"
        );
    }
}
