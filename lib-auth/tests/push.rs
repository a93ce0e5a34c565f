//! Notices on the revocation channel, published straight into a real Redis-protocol server
//! (the CI machine's on 127.0.0.1:6379, or `LIB_AUTH_TEST_VALKEY_URL`) under a prefix of each
//! test's own, as anyone who can reach Valkey could: a notice only makes the validator read
//! its revocation feed (the fake Auth service of `common/`), and a flood of them costs the
//! Auth service a bounded number of reads.

mod common;

use std::time::{Duration, Instant};

use common::*;
use lib_auth::{Auth, revocation_channel};
use lib_auth_testkit::{TestKey, now};
use serde_json::json;

/// A validator of `fake` subscribed to the channel of `prefix`, which polls only once an hour:
/// whatever it reads sooner, a notice made it read.
async fn subscribed(fake: &FakeAuth, prefix: &str) -> Auth {
    let auth = Auth::new(
        config(fake)
            .revocation_poll_interval(Duration::from_secs(3600))
            .valkey_url(valkey_url())
            .valkey_prefix(prefix.to_owned()),
    )
    .unwrap();
    // The first read at start, and the one right after subscribing.
    eventually(Duration::from_secs(5), "subscribed", || async {
        fake.feed_requests().len() >= 2
    })
    .await;
    auth
}

struct Publisher {
    connection: redis::aio::MultiplexedConnection,
    channel: String,
}

impl Publisher {
    async fn new(prefix: &str) -> Publisher {
        let client = redis::Client::open(valkey_url()).unwrap();
        Publisher {
            connection: client.get_multiplexed_async_connection().await.unwrap(),
            channel: revocation_channel(prefix),
        }
    }

    /// Publishes `message`; answers how many subscribers got it.
    async fn publish(&mut self, message: &str) -> i64 {
        redis::cmd("PUBLISH")
            .arg(&self.channel)
            .arg(message)
            .query_async(&mut self.connection)
            .await
            .unwrap()
    }
}

/// Was: a message's items were applied as revocations, so whoever could publish on the
/// channel could log out any session or block any subject for good (`notBefore` far in the
/// future), or send a million far-future entries that filled the revocation store until it
/// dropped the real ones, and a logged-out token was accepted again.
#[tokio::test]
async fn a_message_revokes_nothing_itself_it_only_makes_the_validator_read_its_feed() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let prefix = unique_prefix("push", "forged");
    let auth = subscribed(&fake, &prefix).await;
    let app = start_app(&auth).await;
    let alice = token(&key, "alice", VIEWER, now());
    assert_eq!(app.get("/v1/ledgers", &alice).await, 200);

    let mut publisher = Publisher::new(&prefix).await;
    let far = now() + 10 * 365 * 86_400;
    let forged = json!({"v": 1, "items": [
        {"sid": "sid-alice", "expiresAt": far},
        {"sub": "alice", "notBefore": far, "expiresAt": far},
    ]});
    let reads = fake.feed_requests().len();
    assert_eq!(publisher.publish(&forged.to_string()).await, 1);
    eventually(Duration::from_secs(2), "the feed read", || async {
        fake.feed_requests().len() > reads
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(app.get("/v1/ledgers", &alice).await, 200, "not revoked");
    let later = token(&key, "alice", VIEWER, now());
    assert_eq!(app.get("/v1/ledgers", &later).await, 200, "not blocked");

    // A real revocation, in the feed, comes with any notice.
    fake.publish(json!({"sid": "sid-alice", "expiresAt": now() + 3600}));
    publisher.publish("any").await;
    let took = eventually(Duration::from_secs(1), "alice refused", || async {
        app.get("/v1/ledgers", &alice).await == 401
    })
    .await;
    eprintln!("a revocation in the feed refused {took:?} after its notice");
}

/// Notices sent as fast as one connection can send them cost the Auth service at most one
/// read of the feed per 50 ms, and the last of them is still followed by a read.
#[tokio::test]
async fn a_flood_of_notices_costs_the_auth_service_a_few_reads() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let prefix = unique_prefix("push", "flood");
    let auth = subscribed(&fake, &prefix).await;
    let app = start_app(&auth).await;
    let bob = token(&key, "bob", VIEWER, now());
    assert_eq!(app.get("/v1/ledgers", &bob).await, 200);

    let mut publisher = Publisher::new(&prefix).await;
    let reads = fake.feed_requests().len();
    let started = Instant::now();
    for n in 0..2_000 {
        if n == 1_000 {
            // Mid-flood, a real revocation.
            fake.publish(json!({"sid": "sid-bob", "expiresAt": now() + 3600}));
        }
        publisher.publish(r#"{"v":2}"#).await;
    }
    let flood = started.elapsed();
    eventually(Duration::from_secs(1), "bob refused", || async {
        app.get("/v1/ledgers", &bob).await == 401
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let made = fake.feed_requests().len() - reads;
    let bound = (started.elapsed().as_millis() / 50 + 2) as usize;
    eprintln!("2000 notices in {flood:?}: {made} reads of the feed (bound {bound})");
    assert!(made >= 1, "woken");
    assert!(made <= bound, "{made} reads of the feed for 2000 notices");
}

/// Was: a read of the feed set off by a notice that failed (the Auth service restarting, say)
/// was not tried again before the next poll, an interval later, and the revocation waited for
/// it; and while the feed kept failing, every notice was another request to it.
#[tokio::test]
async fn a_failed_read_is_retried_within_seconds_and_notices_do_not_hurry_it() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let prefix = unique_prefix("push", "retry");
    let auth = subscribed(&fake, &prefix).await;
    let app = start_app(&auth).await;
    let carol = token(&key, "carol", VIEWER, now());
    assert_eq!(app.get("/v1/ledgers", &carol).await, 200);

    let mut publisher = Publisher::new(&prefix).await;
    fake.set_feed(Answer::Down);
    fake.publish(json!({"sid": "sid-carol", "expiresAt": now() + 3600}));
    let reads = fake.feed_requests().len();
    publisher.publish(r#"{"v":2}"#).await;
    eventually(Duration::from_secs(2), "the failed read", || async {
        fake.feed_requests().len() > reads
    })
    .await;
    // Failing: notices for half a second bring no more reads (the retry comes a second
    // after the failure).
    let failed = Instant::now();
    while failed.elapsed() < Duration::from_millis(500) {
        publisher.publish(r#"{"v":2}"#).await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let retries = usize::from(failed.elapsed() >= Duration::from_millis(900));
    assert!(
        fake.feed_requests().len() <= reads + 1 + retries,
        "notices hurried the retry: {} reads",
        fake.feed_requests().len() - reads
    );
    fake.set_feed(Answer::Normal);
    let took = eventually(
        Duration::from_secs(3),
        "carol refused by the retry",
        || async { app.get("/v1/ledgers", &carol).await == 401 },
    )
    .await;
    eprintln!("the retry read the revocation {took:?} after the feed answered again");
}

/// A TCP proxy to the test Valkey whose connections, once [`Proxy::kill_open`] is called,
/// stay open but carry nothing more either way (a NAT or load balancer that dropped them when
/// idle); connections opened after it work.
struct Proxy {
    url: String,
    /// Connections numbered below this one are dead.
    dead_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
    next: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

/// Copies `from` to `to` while connection `number` is alive.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    number: u64,
    dead_below: std::sync::Arc<std::sync::atomic::AtomicU64>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer).await {
        if number >= dead_below.load(Ordering::SeqCst) && to.write_all(&buffer[..n]).await.is_err()
        {
            return;
        }
    }
}

impl Proxy {
    async fn start() -> Proxy {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicU64, Ordering};

        let upstream = valkey_url()
            .trim_start_matches("redis://")
            .trim_end_matches('/')
            .to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("redis://{}", listener.local_addr().unwrap());
        let (dead_below, next) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let (dead, counter) = (dead_below.clone(), next.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let number = counter.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = tokio::net::TcpStream::connect(&upstream).await else {
                    continue;
                };
                let ((client_read, client_write), (server_read, server_write)) =
                    (client.into_split(), server.into_split());
                tokio::spawn(pump(client_read, server_write, number, dead.clone()));
                tokio::spawn(pump(server_read, client_write, number, dead.clone()));
            }
        });
        Proxy {
            url,
            dead_below,
            next,
        }
    }

    fn kill_open(&self) {
        use std::sync::atomic::Ordering;
        self.dead_below
            .store(self.next.load(Ordering::SeqCst), Ordering::SeqCst);
    }
}

/// Was: a subscription whose connection died without a word was never noticed (no ping, no
/// keepalive): every notice was lost and revocations waited for the polls, unlogged.
#[tokio::test]
async fn a_subscription_that_dies_silently_is_noticed_and_renewed() {
    let key = TestKey::rsa_a();
    let fake = FakeAuth::start(&key).await;
    let prefix = unique_prefix("push", "silent");
    let proxy = Proxy::start().await;
    let auth = Auth::new(
        config(&fake)
            .revocation_poll_interval(Duration::from_secs(3600))
            .valkey_url(proxy.url.clone())
            .valkey_prefix(prefix.clone()),
    )
    .unwrap();
    eventually(Duration::from_secs(5), "subscribed", || async {
        fake.feed_requests().len() >= 2
    })
    .await;
    let app = start_app(&auth).await;
    let dave = token(&key, "dave", VIEWER, now());
    assert_eq!(app.get("/v1/ledgers", &dave).await, 200);

    proxy.kill_open();
    fake.publish(json!({"sid": "sid-dave", "expiresAt": now() + 3600}));
    let mut publisher = Publisher::new(&prefix).await;
    assert_eq!(
        publisher.publish(r#"{"v":2}"#).await,
        1,
        "Valkey delivered it"
    );
    // Lost on the way; the next ping (every 5 s, 2 s to answer) finds the connection dead,
    // and the feed is read on subscribing again.
    let took = eventually(Duration::from_secs(12), "dave refused", || async {
        app.get("/v1/ledgers", &dave).await == 401
    })
    .await;
    eprintln!("a notice lost on a dead connection: revocation read {took:?} later");
}
