//! The [`Store`] contract, run over both implementations: [`LocalStore`] and [`ValkeyStore`]
//! against a real Redis-protocol server (the CI machine's on 127.0.0.1:6379, or
//! `LIB_AUTH_TEST_VALKEY_URL`), each test under a key prefix of its own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lib_auth::{LocalStore, Store, StoreError, ValkeyStore};

fn valkey_url() -> String {
    std::env::var("LIB_AUTH_TEST_VALKEY_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn unique_prefix(test: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("lib-auth-test-store-{test}-{}-{nanos}", std::process::id())
}

/// What every implementation must do.
async fn keeps_the_contract(store: &dyn Store) {
    let minute = Duration::from_secs(60);
    // Absent keys.
    assert_eq!(store.get("absent").await.unwrap(), None);
    assert_eq!(store.remaining("absent").await.unwrap(), None);
    store.delete("absent").await.unwrap();
    store.expire("absent", minute).await.unwrap();
    assert_eq!(
        store.get("absent").await.unwrap(),
        None,
        "expire creates nothing"
    );

    // Values: set, replace, binary-safe, TTL, delete.
    store.set("v", b"one", minute).await.unwrap();
    store.set("v", b"\x00two\xff", minute).await.unwrap();
    assert_eq!(
        store.get("v").await.unwrap().as_deref(),
        Some(&b"\x00two\xff"[..])
    );
    let left = store.remaining("v").await.unwrap().expect("a TTL");
    assert!(
        left <= minute && left > minute - Duration::from_secs(5),
        "{left:?}"
    );
    store.delete("v").await.unwrap();
    assert_eq!(store.get("v").await.unwrap(), None);

    // Counters: start at 1 with their TTL, keep it, read as digits, refuse text.
    assert_eq!(store.increment("c", minute).await.unwrap(), 1);
    assert_eq!(store.increment("c", minute * 10).await.unwrap(), 2);
    assert!(store.remaining("c").await.unwrap().expect("a TTL") <= minute);
    assert_eq!(store.get("c").await.unwrap().as_deref(), Some(&b"2"[..]));
    store.expire("c", minute * 10).await.unwrap();
    assert!(store.remaining("c").await.unwrap().expect("a TTL") > minute);
    store.set("text", b"not a number", minute).await.unwrap();
    assert!(matches!(
        store.increment("text", minute).await,
        Err(StoreError::Unexpected { .. })
    ));

    // Entries end with their TTL.
    store
        .set("short", b"x", Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        store
            .increment("short-c", Duration::from_millis(50))
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(store.get("short").await.unwrap(), None);
    assert_eq!(store.remaining("short-c").await.unwrap(), None);
    assert_eq!(
        store.increment("short-c", minute).await.unwrap(),
        1,
        "a new counter"
    );
}

/// Parallel increments of one counter lose no count.
async fn counts_every_parallel_increment(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    store
                        .increment("parallel", Duration::from_secs(60))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(
        store.get("parallel").await.unwrap().as_deref(),
        Some(&b"400"[..])
    );
}

#[tokio::test]
async fn the_local_store_keeps_the_contract() {
    keeps_the_contract(&LocalStore::new(&unique_prefix("local"), 1000)).await;
    counts_every_parallel_increment(Arc::new(LocalStore::new("p", 1000))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_valkey_store_keeps_the_contract() {
    let url = valkey_url();
    keeps_the_contract(&ValkeyStore::new(&url, &unique_prefix("valkey"), "test")).await;
    counts_every_parallel_increment(Arc::new(ValkeyStore::new(
        &url,
        &unique_prefix("parallel"),
        "test",
    )))
    .await;
}

#[tokio::test]
async fn valkey_keys_live_under_the_prefix_with_a_ttl_and_namespaces_do_not_mix() {
    let url = valkey_url();
    let prefix = unique_prefix("ns");
    let a = ValkeyStore::new(&url, &prefix, "test");
    let b = ValkeyStore::new(&url, &prefix, "test");
    let other = ValkeyStore::new(&url, &unique_prefix("other"), "test");
    a.set("k", b"v", Duration::from_secs(30)).await.unwrap();
    a.increment("n", Duration::from_secs(30)).await.unwrap();
    assert_eq!(
        b.get("k").await.unwrap().as_deref(),
        Some(&b"v"[..]),
        "same namespace"
    );
    assert_eq!(other.get("k").await.unwrap(), None, "another namespace");

    let client = redis::Client::open(url.as_str()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    for key in ["k", "n"] {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(format!("{prefix}:{key}"))
            .query_async(&mut raw)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 30_000, "{key}: PTTL {ttl}");
    }
}

#[tokio::test]
async fn an_unreachable_valkey_answers_unavailable_quickly_then_pauses() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let store = ValkeyStore::new(&format!("redis://127.0.0.1:{port}"), "t", "test");
    let started = Instant::now();
    assert!(matches!(
        store.increment("n", Duration::from_secs(1)).await,
        Err(StoreError::Unavailable { .. })
    ));
    assert!(started.elapsed() < Duration::from_millis(400));
    // A server that takes connections and never answers: the call deadline applies.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let store = ValkeyStore::new(
        &format!("redis://127.0.0.1:{}", silent.local_addr().unwrap().port()),
        "t",
        "test",
    )
    .with_timeout(Duration::from_millis(150));
    let started = Instant::now();
    assert!(store.get("k").await.is_err());
    assert!(started.elapsed() < Duration::from_millis(600));
    // Within the pause, calls fail without waiting.
    let started = Instant::now();
    assert!(store.get("k").await.is_err());
    assert!(started.elapsed() < Duration::from_millis(50));
}
