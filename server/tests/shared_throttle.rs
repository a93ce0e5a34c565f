//! The login throttle shared by two replicas through Valkey (the CI machine's on
//! 127.0.0.1:6379, a prefix per test), in the cases where counting a check before it runs could
//! go wrong: checks abandoned by their clients, and successes in flight beside a failure.
//! Clients bind to distinct 127.x.y.z addresses to act as distinct sources.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use common::valkey::{shared_valkey, unique_prefix};
use common::{ADMIN, ADMIN_PASSWORD, TestServer, USER_PASSWORD};
use lib_auth::Secret;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::AsyncWriteExt;

async fn replica(url: &str, prefix: &str) -> TestServer {
    let (url, prefix) = (url.to_owned(), prefix.to_owned());
    TestServer::start_with(move |c| {
        c.valkey_url = Some(Secret::new(url));
        c.valkey_prefix = prefix;
    })
    .await
}

fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(Ipv4Addr::from(address)))
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

async fn login_from(
    client: &reqwest::Client,
    server: &TestServer,
    user: &str,
    pw: &str,
) -> StatusCode {
    client
        .post(server.url("/v1/login/oauth/access_token"))
        .json(&json!({"grantType": "password", "username": user, "password": pw}))
        .send()
        .await
        .expect("sent")
        .status()
}

/// A login from `from` whose connection is closed after `hold`, before its answer.
async fn abandoned_login(server: &TestServer, from: [u8; 4], user: &str, pw: &str, hold: Duration) {
    let address: SocketAddr = server
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(from)), 0))
        .expect("bind");
    let mut stream = socket.connect(address).await.expect("connect");
    let body = json!({"grantType": "password", "username": user, "password": pw}).to_string();
    let request = format!(
        "POST /v1/login/oauth/access_token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    tokio::time::sleep(hold).await;
}

/// Was: a check counted before it ran stayed counted when its client went away, so five
/// abandoned logins with the right password held the admin out for the window (the local
/// throttle alone forgets an abandoned check).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn abandoned_logins_count_for_nothing() {
    let (url, prefix) = (shared_valkey(), unique_prefix("abandoned"));
    let server = Arc::new(replica(&url, &prefix).await);
    server.create_user("busy", &[]).await;
    // The hashing slots are kept busy, so that the abandoned logins wait for one.
    let busy: Vec<_> = (0..8)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                abandoned_login(
                    &server,
                    [127, 0, 0, 12],
                    "busy",
                    USER_PASSWORD,
                    Duration::from_millis(400),
                )
                .await;
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(5)).await;
    let abandoned: Vec<_> = (0..5)
        .map(|_| {
            let server = server.clone();
            tokio::spawn(async move {
                abandoned_login(
                    &server,
                    [127, 0, 0, 11],
                    ADMIN,
                    ADMIN_PASSWORD,
                    Duration::from_millis(15),
                )
                .await;
            })
        })
        .collect();
    for task in busy.into_iter().chain(abandoned) {
        task.await.expect("task");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let client = client_from([127, 0, 0, 11]);
    assert_eq!(
        login_from(&client, &server, ADMIN, ADMIN_PASSWORD).await,
        StatusCode::OK
    );
}

/// Was: successes in flight counted against their address, so one mistyped password among 49
/// logins under way from one office address reached the address's limit (50) and locked it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_failure_among_successes_in_flight_does_not_lock_their_address() {
    let (url, prefix) = (shared_valkey(), unique_prefix("office"));
    let a = Arc::new(replica(&url, &prefix).await);
    let b = Arc::new(replica(&url, &prefix).await);
    // Each test replica has a database of its own: the users are made in both.
    for i in 0..10 {
        a.create_user(&format!("office{i}"), &[]).await;
        b.create_user(&format!("office{i}"), &[]).await;
    }
    for (trial, delay) in [(1u8, 4u64), (2, 12), (3, 20)] {
        let client = client_from([127, 0, 3, trial]);
        let logins: Vec<_> = (0..49)
            .map(|i| {
                let server = if i % 2 == 0 { a.clone() } else { b.clone() };
                let client = client.clone();
                tokio::spawn(async move {
                    login_from(
                        &client,
                        &server,
                        &format!("office{}", i % 10),
                        USER_PASSWORD,
                    )
                    .await
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(delay)).await;
        // Another user, so that only the address is shared with the logins under way.
        let typo = login_from(&client, &a, &format!("newcomer{trial}"), "a typo").await;
        assert_eq!(typo, StatusCode::UNAUTHORIZED);
        for login in logins {
            assert_eq!(login.await.expect("task"), StatusCode::OK);
        }
        assert_eq!(
            login_from(&client, &b, "office5", USER_PASSWORD).await,
            StatusCode::OK,
            "trial {trial}: the address was locked"
        );
    }
}

/// Keeps the Redis-protocol server at `url` busy for `busy` (one Lua script that waits): what
/// it receives meanwhile runs afterwards, as with a slow fork or a long script in production.
async fn stall(url: &str, busy: Duration) {
    let client = redis::Client::open(url).expect("valkey url");
    let mut connection = client
        .get_multiplexed_async_connection()
        .await
        .expect("valkey");
    let script = "local t0 = redis.call('TIME') \
        local start = t0[1] * 1000000 + t0[2] \
        while true do \
          local t = redis.call('TIME') \
          if t[1] * 1000000 + t[2] - start > tonumber(ARGV[1]) then break end \
        end \
        return 1";
    // The client stops waiting for the answer before the script ends; the script runs on.
    let _ = redis::cmd("EVAL")
        .arg(script)
        .arg(0)
        .arg(busy.as_micros().to_string())
        .query_async::<i64>(&mut connection)
        .await;
}

/// Was: the pending counts of logins made while Valkey stalled past its deadline reached
/// Valkey after the replicas had given up on them, and nobody took them back: they lived for
/// an hour, renewed by every try, and the user's right password got 429 from every replica
/// all along. Now a count nobody takes back stops counting within two slots.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn counts_left_behind_by_a_valkey_stall_stop_counting_within_two_slots() {
    let port = common::valkey::free_port();
    let _redis = common::valkey::start_redis(port);
    let url = format!("redis://127.0.0.1:{port}");
    let prefix = unique_prefix("stall");
    let a = Arc::new(replica(&url, &prefix).await);
    let b = Arc::new(replica(&url, &prefix).await);
    for server in [&a, &b] {
        server.create_user("stalled", &[]).await;
        // Each replica's connection to Valkey is made.
        assert_eq!(
            login_from(
                &client_from([127, 0, 4, 1]),
                server,
                "stalled",
                USER_PASSWORD
            )
            .await,
            StatusCode::OK
        );
    }
    let stall_started = std::time::Instant::now();
    let stall_length = Duration::from_millis(1500);
    let stalled = tokio::spawn({
        let url = url.clone();
        async move { stall(&url, stall_length).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Six logins while Valkey stalls (one more than the limit): each replica's own throttle
    // admits them, and their pending counts reach Valkey after the replicas gave up on them.
    let logins: Vec<_> = (0..6u8)
        .map(|i| {
            let server = if i % 2 == 0 { a.clone() } else { b.clone() };
            tokio::spawn(async move {
                login_from(
                    &client_from([127, 0, 4, 10 + i]),
                    &server,
                    "stalled",
                    USER_PASSWORD,
                )
                .await
            })
        })
        .collect();
    for login in logins {
        assert_eq!(login.await.expect("task"), StatusCode::OK);
    }
    stalled.await.expect("stall");
    // Past the stall, and the store's pause after its failures.
    let settled = stall_started + stall_length + Duration::from_millis(600);
    tokio::time::sleep(settled.saturating_duration_since(std::time::Instant::now())).await;
    let since = std::time::Instant::now();
    let limit = lib_auth_server::shared_throttle::PENDING_SLOT * 2 + Duration::from_secs(2);
    for i in 0u8.. {
        let server = if i % 2 == 0 { &a } else { &b };
        match login_from(
            &client_from([127, 0, 4, 100 + i]),
            server,
            "stalled",
            USER_PASSWORD,
        )
        .await
        {
            StatusCode::OK => break,
            status => assert!(
                since.elapsed() < limit,
                "the right password still refused ({status}) {:?} after the stall",
                since.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `PATCH /v1/users/{id}/update-password` with `oldPassword` of the user `{id}`.
async fn change_password(server: &TestServer, id: &str, token: &str, old: &str) -> StatusCode {
    server
        .identity_call(
            "PATCH",
            &format!("/v1/users/{id}/update-password"),
            Some(token),
            Some(&json!({"oldPassword": old, "newPassword": "Another-long-password-42"})),
        )
        .await
        .status
}

/// Was: old-password checks used the replica's own throttle only: a username locked for every
/// replica still had its old password checked on the others, five guesses per window each,
/// and those failures counted on no other replica.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn old_password_checks_share_the_throttle_of_logins() {
    let (url, prefix) = (shared_valkey(), unique_prefix("old-password"));
    let a = replica(&url, &prefix).await;
    let b = replica(&url, &prefix).await;
    for user in ["pat", "quin"] {
        a.create_user(user, &[]).await;
    }
    let pat = b.create_user("pat", &[]).await;
    let quin = b.create_user("quin", &[]).await;
    let (pat_token, quin_token) = (b.user_token("pat").await, b.user_token("quin").await);

    // Locked by failed logins on A: no old-password guess of pat's is checked on B.
    for i in 0..5u8 {
        let client = client_from([127, 0, 5, 1 + i]);
        assert_eq!(
            login_from(&client, &a, "pat", "wrong").await,
            StatusCode::UNAUTHORIZED
        );
    }
    for i in 0..3 {
        assert_eq!(
            change_password(&b, &pat, &pat_token, &format!("guess-{i}")).await,
            StatusCode::TOO_MANY_REQUESTS
        );
    }
    // Wrong old passwords on B lock quin's logins on A.
    for i in 0..5 {
        assert_eq!(
            change_password(&b, &quin, &quin_token, &format!("guess-{i}")).await,
            StatusCode::BAD_REQUEST
        );
    }
    assert_eq!(
        login_from(&client_from([127, 0, 5, 50]), &a, "quin", USER_PASSWORD).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}
