//! The [`Store`] contract, run over both implementations: [`LocalStore`] and [`ValkeyStore`]
//! against a real Redis-protocol server (the CI machine's on 127.0.0.1:6379, or
//! `LIB_AUTH_TEST_VALKEY_URL`), each test under a key prefix of its own.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{unique_prefix, valkey_url};
use lib_auth::{LocalStore, Store, StoreError, ValkeyStore};

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
    assert_eq!(store.add("c", 1, minute).await.unwrap(), 1);
    assert_eq!(store.add("c", 1, minute * 10).await.unwrap(), 2);
    assert!(store.remaining("c").await.unwrap().expect("a TTL") <= minute);
    assert_eq!(store.get("c").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(store.add("c", -2, minute).await.unwrap(), 0, "taken away");
    assert_eq!(
        store.add("c", -1, minute).await.unwrap(),
        0,
        "never below 0"
    );
    assert_eq!(store.add("c", 3, minute).await.unwrap(), 3);
    assert_eq!(store.add("gone", -1, minute).await.unwrap(), 0);
    assert_eq!(
        store.get("gone").await.unwrap(),
        None,
        "taking away creates nothing"
    );
    store.expire("c", minute * 10).await.unwrap();
    assert!(store.remaining("c").await.unwrap().expect("a TTL") > minute);
    store.set("text", b"not a number", minute).await.unwrap();
    assert!(matches!(
        store.add("text", 1, minute).await,
        Err(StoreError::Unexpected { .. })
    ));

    // Entries end with their TTL.
    store
        .set("short", b"x", Duration::from_millis(50))
        .await
        .unwrap();
    assert_eq!(
        store
            .add("short-c", 1, Duration::from_millis(50))
            .await
            .unwrap(),
        1
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(store.get("short").await.unwrap(), None);
    assert_eq!(store.remaining("short-c").await.unwrap(), None);
    assert_eq!(
        store.add("short-c", 1, minute).await.unwrap(),
        1,
        "a new counter"
    );
}

/// Parallel increments of one counter lose no count.
async fn counts_every_parallel_addition(store: Arc<dyn Store>) {
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..50 {
                    store
                        .add("parallel", 1, Duration::from_secs(60))
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
    keeps_the_contract(&LocalStore::new(&unique_prefix("store", "local"), 1000)).await;
    counts_every_parallel_addition(Arc::new(LocalStore::new("p", 1000))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_valkey_store_keeps_the_contract() {
    let url = valkey_url();
    keeps_the_contract(&ValkeyStore::new(
        &url,
        &unique_prefix("store", "valkey"),
        "test",
    ))
    .await;
    counts_every_parallel_addition(Arc::new(ValkeyStore::new(
        &url,
        &unique_prefix("store", "parallel"),
        "test",
    )))
    .await;
}

#[tokio::test]
async fn valkey_keys_live_under_the_prefix_with_a_ttl_and_namespaces_do_not_mix() {
    let url = valkey_url();
    let prefix = unique_prefix("store", "ns");
    let a = ValkeyStore::new(&url, &prefix, "test");
    let b = ValkeyStore::new(&url, &prefix, "test");
    let other = ValkeyStore::new(&url, &unique_prefix("store", "other"), "test");
    a.set("k", b"v", Duration::from_secs(30)).await.unwrap();
    a.add("n", 1, Duration::from_secs(30)).await.unwrap();
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
        store.add("n", 1, Duration::from_secs(1)).await,
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

/// Was: with a Valkey that takes connections and never answers, calls arriving every 10 ms
/// took up to 610 ms, twice the deadline (the connection was reset outside it, behind callers
/// still connecting, and the pause began only after that).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_call_outlives_its_deadline_when_valkey_never_answers() {
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = silent.local_addr().unwrap().port();
    // Accepts, keeps every socket open, answers nothing.
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let store = Arc::new(ValkeyStore::new(
        &format!("redis://127.0.0.1:{port}"),
        "t",
        "test",
    ));
    let mut calls = Vec::new();
    for _ in 0..150 {
        let store = store.clone();
        calls.push(tokio::spawn(async move {
            let started = Instant::now();
            let _ = store.get("k").await;
            started.elapsed()
        }));
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let mut slowest = Duration::ZERO;
    for call in calls {
        slowest = slowest.max(call.await.unwrap());
    }
    assert!(
        slowest < Duration::from_millis(450),
        "a call took {slowest:?} (deadline 300 ms)"
    );
}

/// Was: `format!("{auth:?}")` showed VALKEY_URL's password (the push subscription kept the URL
/// as a plain string), and so did `AuthConfig`'s Debug.
#[tokio::test]
async fn no_debug_output_shows_the_valkey_password() {
    use lib_auth::{Auth, AuthConfig, Mode};
    for mode in [Mode::Local, Mode::Remote] {
        let config = AuthConfig::default()
            .enabled(true)
            .mode(mode)
            .host("http://127.0.0.1:9")
            .client_id("ledger")
            .client_secret("ledger-secret")
            .valkey_url("redis://:hunter2pw@127.0.0.1:9")
            .valkey_decision_secret("a-decision-secret-of-32-bytes-at-least");
        assert!(!format!("{config:?}").contains("hunter2pw"));
        let auth = Auth::new(config).expect("config");
        let debug = format!("{auth:?}");
        assert!(!debug.contains("hunter2pw"), "{mode:?}: {debug}");
        assert!(!debug.contains("32-bytes"), "{mode:?}: {debug}");
    }
}
