//! The feeds local-mode validators poll: `GET /v1/policy` and `GET /v1/revocations`, for
//! application tokens only.

mod common;

use common::{TestServer, decode_jwt};
use reqwest::StatusCode;

async fn with_app() -> (TestServer, String) {
    let server = TestServer::start().await;
    let (id, secret) = server.create_app("midaz", &["midaz-viewer-role"]).await;
    let token = server.app_token(&id, &secret).await;
    (server, token)
}

#[tokio::test]
async fn the_feeds_need_an_application_token() {
    let (server, _) = with_app().await;
    let login = server.login_admin().await;
    let user_token = login["accessToken"].as_str().expect("access");
    for path in ["/v1/policy", "/v1/revocations"] {
        server
            .get(path, None)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "AUT-0006");
        server
            .get(path, Some("garbage"))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "AUT-0007");
        // Even the admin's user token: the feeds are for services.
        server
            .get(path, Some(user_token))
            .await
            .assert_error(StatusCode::FORBIDDEN, "AUT-0008");
    }
}

#[tokio::test]
async fn the_policy_has_an_etag_and_answers_304_when_unchanged() {
    let (server, token) = with_app().await;
    let answer = server.get("/v1/policy", Some(&token)).await;
    assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
    let etag = answer.header("etag").expect("ETag").to_owned();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    let policy = lib_auth::Policy::from_json(&answer.text).expect("a policy document");
    assert!(policy.roles.iter().any(|r| r.id == "midaz-viewer-role"));
    assert!(policy.groups.iter().any(|g| g.id == "admin-group"));

    let unchanged = server
        .http
        .get(server.url("/v1/policy"))
        .bearer_auth(&token)
        .header("If-None-Match", &etag)
        .send()
        .await
        .expect("sent");
    assert_eq!(unchanged.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(
        unchanged
            .headers()
            .get("etag")
            .and_then(|v| v.to_str().ok()),
        Some(etag.as_str())
    );
    assert!(unchanged.text().await.expect("body").is_empty());

    let stale = server
        .http
        .get(server.url("/v1/policy"))
        .bearer_auth(&token)
        .header("If-None-Match", "\"something-else\"")
        .send()
        .await
        .expect("sent");
    assert_eq!(stale.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_logout_appears_in_the_revocations_feed_after_the_cursor() {
    let (server, token) = with_app().await;
    let empty = server.get("/v1/revocations", Some(&token)).await;
    assert_eq!(empty.status, StatusCode::OK, "{empty:?}");
    assert_eq!(empty.body["items"].as_array().map(Vec::len), Some(0));
    let start = empty.str("cursor").to_owned();

    let login = server.login_admin().await;
    let access = login["accessToken"].as_str().expect("access");
    let (_, claims) = decode_jwt(access);
    let logout = server
        .http
        .post(server.url("/v1/logout"))
        .bearer_auth(access)
        .send()
        .await
        .expect("logout sent");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);

    let feed = server
        .get(&format!("/v1/revocations?since={start}"), Some(&token))
        .await;
    assert_eq!(feed.status, StatusCode::OK, "{feed:?}");
    let items = feed.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{feed:?}");
    assert_eq!(items[0]["sid"], claims["sid"]);
    let expires_at = items[0]["expiresAt"].as_i64().expect("expiresAt");
    assert!(
        expires_at >= claims["exp"].as_i64().expect("exp"),
        "kept at least as long as the token lives"
    );
    let cursor = feed.str("cursor").to_owned();
    assert_ne!(cursor, start);

    // Nothing new after the cursor; everything again without one.
    let after = server
        .get(&format!("/v1/revocations?since={cursor}"), Some(&token))
        .await;
    assert_eq!(
        after.body["items"].as_array().map(Vec::len),
        Some(0),
        "{after:?}"
    );
    assert_eq!(after.str("cursor"), cursor);
    let all = server.get("/v1/revocations", Some(&token)).await;
    assert_eq!(
        all.body["items"].as_array().map(Vec::len),
        Some(1),
        "{all:?}"
    );

    // A second logout shows up alone after the cursor.
    let second = server.login_admin().await;
    let second_access = second["accessToken"].as_str().expect("access");
    let (_, second_claims) = decode_jwt(second_access);
    let logout = server
        .http
        .post(server.url("/v1/logout"))
        .bearer_auth(second_access)
        .send()
        .await
        .expect("logout sent");
    assert_eq!(logout.status(), StatusCode::NO_CONTENT);
    let next = server
        .get(&format!("/v1/revocations?since={cursor}"), Some(&token))
        .await;
    let items = next.body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{next:?}");
    assert_eq!(items[0]["sid"], second_claims["sid"]);
}

#[tokio::test]
async fn a_bad_cursor_is_aut_0003() {
    let (server, token) = with_app().await;
    for since in ["abc", "-1"] {
        server
            .get(&format!("/v1/revocations?since={since}"), Some(&token))
            .await
            .assert_error(StatusCode::BAD_REQUEST, "AUT-0003");
    }
}

#[tokio::test]
async fn a_weak_etag_matches_too() {
    let (server, token) = with_app().await;
    let etag = server
        .get("/v1/policy", Some(&token))
        .await
        .header("etag")
        .expect("ETag")
        .to_owned();
    let weak = server
        .http
        .get(server.url("/v1/policy"))
        .bearer_auth(&token)
        .header("If-None-Match", format!("W/{etag}"))
        .send()
        .await
        .expect("sent");
    assert_eq!(weak.status(), StatusCode::NOT_MODIFIED);
}
