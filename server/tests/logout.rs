//! `POST /v1/logout`: with the bearer token or an `id_token_hint`, the session ends at once.

mod common;

use common::{Answer, TestServer};
use reqwest::StatusCode;
use serde_json::Value;

async fn logout_with_bearer(server: &TestServer, token: &str) -> Answer {
    let response = server
        .http
        .post(server.url("/v1/logout"))
        .bearer_auth(token)
        .send()
        .await
        .expect("logout sent");
    Answer::read(response).await
}

async fn logout_with_hint(server: &TestServer, id_token: &str) -> Answer {
    let response = server
        .http
        .post(server.url("/v1/logout"))
        .form(&[("id_token_hint", id_token)])
        .send()
        .await
        .expect("logout sent");
    Answer::read(response).await
}

fn tokens(login: &Value) -> (&str, &str, &str) {
    (
        login["accessToken"].as_str().expect("access"),
        login["refreshToken"].as_str().expect("refresh"),
        login["idToken"].as_str().expect("id token"),
    )
}

#[tokio::test]
async fn logout_with_the_bearer_token_refuses_it_at_once() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let (access, refresh, _) = tokens(&login);
    server.assert_token_accepted(access).await;
    let answer = logout_with_bearer(&server, access).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    assert!(answer.text.is_empty());
    server.assert_token_refused(access).await;
    server
        .refresh(refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    // lib-auth would still verify the signature; the server's own check is what refuses.
    assert_eq!(
        server.get("/v1/userinfo", Some(access)).await.code(),
        "AUT-0007"
    );
}

#[tokio::test]
async fn logout_with_an_id_token_hint_ends_the_session() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let (access, refresh, id_token) = tokens(&login);
    let answer = logout_with_hint(&server, id_token).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
    server.assert_token_refused(access).await;
    server
        .refresh(refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
}

#[tokio::test]
async fn logout_ends_only_its_own_session() {
    let server = TestServer::start().await;
    let first = server.login_admin().await;
    let second = server.login_admin().await;
    let answer = logout_with_bearer(&server, tokens(&first).0).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    server.assert_token_accepted(tokens(&second).0).await;
    assert_eq!(
        server.refresh(tokens(&second).1).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_refreshed_token_of_a_logged_out_session_is_refused_too() {
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let refreshed = server.refresh(tokens(&login).1).await;
    assert_eq!(refreshed.status, StatusCode::OK);
    // Logging out with the older access token ends the session of both.
    let answer = logout_with_bearer(&server, tokens(&login).0).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    server
        .assert_token_refused(refreshed.str("accessToken"))
        .await;
}

#[tokio::test]
async fn logout_without_a_token_or_with_a_bad_one_is_refused() {
    let server = TestServer::start().await;
    let none = Answer::read(
        server
            .http
            .post(server.url("/v1/logout"))
            .send()
            .await
            .expect("sent"),
    )
    .await;
    none.assert_error(StatusCode::UNAUTHORIZED, "AUT-0006");
    logout_with_bearer(&server, "not-a-jwt")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "AUT-0007");
    logout_with_hint(&server, "not-a-jwt")
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "AUT-0007");
    // Twice: the second time the token is already revoked.
    let login = server.login_admin().await;
    let access = tokens(&login).0;
    assert_eq!(
        logout_with_bearer(&server, access).await.status,
        StatusCode::NO_CONTENT
    );
    logout_with_bearer(&server, access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "AUT-0007");
}

#[tokio::test]
async fn an_application_token_can_be_logged_out() {
    let server = TestServer::start().await;
    let (id, secret) = server.create_app("midaz", &["midaz-editor-role"]).await;
    let first = server.app_token(&id, &secret).await;
    let second = server.app_token(&id, &secret).await;
    assert_eq!(
        logout_with_bearer(&server, &first).await.status,
        StatusCode::NO_CONTENT
    );
    server.assert_token_refused(&first).await;
    server.assert_token_accepted(&second).await;
}

#[tokio::test]
async fn an_oversized_logout_form_is_answered_in_the_envelope() {
    let server = TestServer::start().await;
    let huge = "x".repeat(100_000);
    logout_with_hint(&server, &huge)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-0003");
}

/// The ID token of `login` re-signed by the server's key with `exp` `age_secs` in the past.
fn expired_copy(server: &TestServer, token: &str, typ: &str, age_secs: i64) -> String {
    let (_, mut claims) = common::decode_jwt(token);
    let now = common::now();
    claims["exp"] = serde_json::json!(now - age_secs);
    claims["iat"] = serde_json::json!(now - age_secs - 3600);
    claims["nbf"] = serde_json::json!(now - age_secs - 3600);
    server
        .state
        .keyring()
        .active
        .sign(typ, &claims)
        .expect("signed")
}

#[tokio::test]
async fn an_expired_id_token_is_still_a_logout_hint() {
    // Found by an attack run: after the ID token's hour, a hint could no longer end the
    // session, whose refresh token lives a day.
    let server = TestServer::start().await;
    let login = server.login_admin().await;
    let id_token = login["idToken"].as_str().expect("id token");
    let refresh = login["refreshToken"].as_str().expect("refresh token");
    let form = |hint: String| {
        let request = server
            .http
            .post(server.url("/v1/logout"))
            .form(&[("id_token_hint", hint)]);
        async move { request.send().await.expect("sent").status() }
    };
    // Too old (past any session's life), an access token, a forged signature: refused.
    let too_old = expired_copy(&server, id_token, "JWT", 2 * 86_400);
    assert_eq!(form(too_old).await, StatusCode::UNAUTHORIZED);
    let access_like = expired_copy(&server, id_token, "at+jwt", 120);
    assert_eq!(form(access_like).await, StatusCode::UNAUTHORIZED);
    let access_token = login["accessToken"].as_str().expect("access").to_owned();
    assert_eq!(
        form(access_token).await,
        StatusCode::UNAUTHORIZED,
        "an access token is no hint"
    );
    let mut forged = expired_copy(&server, id_token, "JWT", 120);
    forged.truncate(forged.len() - 4);
    forged.push_str("AAAA");
    assert_eq!(form(forged).await, StatusCode::UNAUTHORIZED);
    let untouched = server.refresh(refresh).await;
    assert_eq!(
        untouched.status,
        StatusCode::OK,
        "refused hints end nothing: {untouched:?}"
    );
    let login = server.login_admin().await;
    let id_token = login["idToken"].as_str().expect("id token");
    let refresh = login["refreshToken"].as_str().expect("refresh token");
    let expired = expired_copy(&server, id_token, "JWT", 120);
    assert_eq!(form(expired).await, StatusCode::NO_CONTENT);
    server
        .refresh(refresh)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "AUT-1005");
    server
        .assert_token_refused(login["accessToken"].as_str().expect("access"))
        .await;
}

/// Was: each replay of an ID token to the logout endpoint (no credential needed, for a day
/// after it expired) added a revocation to the feed, so one user could grow it without bound,
/// each row read by every validator; a validator starting after 600 000 of them took 12 s to
/// refuse a logged-out token.
#[tokio::test]
async fn a_replayed_logout_adds_nothing_to_the_revocation_feed() {
    let server = TestServer::start().await;
    let (id, secret) = server
        .create_app("feed-reader", &["midaz-viewer-role"])
        .await;
    let reader = server.app_token(&id, &secret).await;
    let login = server.login_admin().await;
    let (access, _, id_token) = tokens(&login);
    let sid = common::decode_jwt(access).1["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    for _ in 0..20 {
        let answer = logout_with_hint(&server, id_token).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT, "{answer:?}");
        assert_eq!(
            logout_with_bearer(&server, access).await.status,
            StatusCode::UNAUTHORIZED,
            "a logged-out access token is no logout credential"
        );
    }
    // An application token logged out again and again: one revocation too.
    let app = server.app_token(&id, &secret).await;
    let app_sid = common::decode_jwt(&app).1["sid"]
        .as_str()
        .expect("sid")
        .to_owned();
    assert_eq!(
        logout_with_bearer(&server, &app).await.status,
        StatusCode::NO_CONTENT
    );
    let feed = server.get("/v1/revocations", Some(&reader)).await;
    assert_eq!(feed.status, StatusCode::OK, "{}", feed.text);
    let items = feed.body["items"].as_array().expect("items");
    let of = |sid: &str| items.iter().filter(|i| i["sid"] == sid).count();
    assert_eq!(of(&sid), 1, "{items:?}");
    assert_eq!(of(&app_sid), 1, "{items:?}");
    server.assert_token_refused(access).await;
}
