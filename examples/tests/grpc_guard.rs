//! The gRPC ledger over real HTTP/2 on loopback, guarded by `Auth::require_grpc` with a
//! per-method policy: each refusal arrives as the gRPC status a tonic client sees.

use std::net::SocketAddr;

use http::uri::PathAndQuery;
use lib_auth::{Auth, AuthConfig};
use lib_auth_examples::grpc_ledger::{
    self, CREATE_LEDGER, CreateLedgerRequest, DELETE_LEDGER, GET_LEDGER, GetLedgerRequest, Ledger,
};
use lib_auth_testkit::{ISSUER, JwksServer, TestKey, user_claims};
use tonic::client::Grpc;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_prost::ProstCodec;

/// Starts the guarded service on 127.0.0.1:0 with keys from `jwks`.
async fn start(jwks: &JwksServer) -> SocketAddr {
    let auth = Auth::new(
        AuthConfig::default()
            .enabled(true)
            .issuer(ISSUER)
            .jwks_url(jwks.jwks_url.clone()),
    )
    .expect("valid configuration");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind 127.0.0.1:0");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = grpc_ledger::serve(&auth, listener, std::future::pending()).await;
    });
    address
}

/// One unary call of `path` with `authorization: <authorization>` if given.
async fn call<M1, M2>(
    address: SocketAddr,
    path: &'static str,
    authorization: Option<String>,
    message: M1,
) -> Result<M2, Status>
where
    M1: prost::Message + Send + Sync + 'static,
    M2: prost::Message + Default + Send + Sync + 'static,
{
    let channel = Channel::from_shared(format!("http://{address}"))
        .expect("valid URI")
        .connect()
        .await
        .expect("connect to the service");
    let mut client = Grpc::new(channel);
    client.ready().await.expect("client ready");
    let mut request = Request::new(message);
    if let Some(value) = authorization {
        let value = MetadataValue::try_from(value).expect("ASCII metadata");
        request.metadata_mut().insert("authorization", value);
    }
    client
        .unary(
            request,
            PathAndQuery::from_static(path),
            ProstCodec::<M1, M2>::default(),
        )
        .await
        .map(tonic::Response::into_inner)
}

async fn create(address: SocketAddr, authorization: Option<String>) -> Result<Ledger, Status> {
    let request = CreateLedgerRequest {
        name: "main".to_owned(),
    };
    call(address, CREATE_LEDGER, authorization, request).await
}

fn bearer(token: &str) -> Option<String> {
    Some(format!("Bearer {token}"))
}

fn assert_refused<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) {
    match result {
        Err(status) => {
            assert_eq!(status.code(), code, "{status:?}");
            assert!(!status.message().is_empty(), "{status:?}");
        }
        Ok(answer) => panic!("expected {code:?}, got {answer:?}"),
    }
}

#[tokio::test]
async fn allowed_calls_reach_the_service_with_the_principal() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let address = start(&jwks).await;
    let editor = key.sign(&user_claims("editor-user", &["midaz-editor-role"]));
    let created = create(address, bearer(&editor))
        .await
        .expect("editor may create");
    assert_eq!(created.created_by, "editor-user");
    // A bare token (no `Bearer ` prefix) is accepted as well.
    let viewer = key.sign(&user_claims("viewer-user", &["midaz-viewer-role"]));
    let request = GetLedgerRequest {
        id: created.id.clone(),
    };
    let fetched: Ledger = call(address, GET_LEDGER, Some(viewer), request)
        .await
        .expect("viewer may get");
    assert_eq!(fetched, created);
    // A service error after the guard is the service's own status.
    let request = GetLedgerRequest {
        id: "missing".to_owned(),
    };
    let missing: Result<Ledger, _> = call(address, GET_LEDGER, bearer(&editor), request).await;
    assert_refused(missing, Code::NotFound);
}

#[tokio::test]
async fn a_missing_token_is_unauthenticated() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let address = start(&jwks).await;
    assert_refused(create(address, None).await, Code::Unauthenticated);
}

#[tokio::test]
async fn a_garbage_token_is_unauthenticated() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let address = start(&jwks).await;
    assert_refused(
        create(address, bearer("not-a-jwt")).await,
        Code::Unauthenticated,
    );
    // Signed by a key the issuer never published.
    let foreign = TestKey::rsa_b().sign(&user_claims("editor-user", &["midaz-editor-role"]));
    assert_refused(
        create(address, bearer(&foreign)).await,
        Code::Unauthenticated,
    );
}

#[tokio::test]
async fn a_valid_token_without_the_permission_is_permission_denied() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let address = start(&jwks).await;
    // Viewers may get ledgers, not create them; a CRM editor holds no Midaz permission.
    let viewer = key.sign(&user_claims("viewer-user", &["midaz-viewer-role"]));
    assert_refused(
        create(address, bearer(&viewer)).await,
        Code::PermissionDenied,
    );
    let outsider = key.sign(&user_claims("crm-user", &["plugin-crm-editor-role"]));
    let request = GetLedgerRequest { id: "x".to_owned() };
    let result: Result<Ledger, _> = call(address, GET_LEDGER, bearer(&outsider), request).await;
    assert_refused(result, Code::PermissionDenied);
}

#[tokio::test]
async fn an_unmapped_method_is_permission_denied_even_for_an_editor() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    let address = start(&jwks).await;
    let editor = key.sign(&user_claims("editor-user", &["midaz-editor-role"]));
    let created = create(address, bearer(&editor))
        .await
        .expect("editor may create");
    let request = GetLedgerRequest { id: created.id };
    let deleted: Result<Ledger, _> = call(address, DELETE_LEDGER, bearer(&editor), request).await;
    assert_refused(deleted, Code::PermissionDenied);
    // Still authenticated first: without a token an unmapped method is Unauthenticated.
    let request = GetLedgerRequest { id: "x".to_owned() };
    let anonymous: Result<Ledger, _> = call(address, DELETE_LEDGER, None, request).await;
    assert_refused(anonymous, Code::Unauthenticated);
}

#[tokio::test]
async fn a_key_source_outage_is_unavailable() {
    let key = TestKey::rsa_a();
    let jwks = JwksServer::start(&[&key]).await;
    jwks.set_failing(true);
    let address = start(&jwks).await;
    let editor = key.sign(&user_claims("editor-user", &["midaz-editor-role"]));
    let result = create(address, bearer(&editor)).await;
    match result {
        Err(status) => {
            assert_eq!(status.code(), Code::Unavailable, "{status:?}");
            // The caller-safe message only: no URL, no internal detail.
            assert!(!status.message().contains("127.0.0.1"), "{status:?}");
            assert!(
                status.message().contains("temporarily unavailable"),
                "{status:?}"
            );
        }
        Ok(answer) => panic!("expected Unavailable, got {answer:?}"),
    }
}
