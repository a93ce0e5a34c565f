//! A small gRPC ledger service guarded by lib-auth's [`GrpcRequireLayer`](lib_auth::GrpcRequireLayer),
//! written without protoc or code generation: the messages are hand-written prost structs and
//! the service is a plain tower service that decodes each unary call with
//! `tonic::server::Grpc` and the prost codec.
//!
//! The service `ledger.v1.LedgerService` has three methods; [`policy`] maps two of them to
//! Midaz permissions and leaves `DeleteLedger` out on purpose, so that calling it is refused
//! (`PERMISSION_DENIED`) whoever calls: the layer fails closed.
//!
//! ```proto
//! service LedgerService {
//!   rpc GetLedger(GetLedgerRequest) returns (Ledger);       // midaz/ledgers get
//!   rpc CreateLedger(CreateLedgerRequest) returns (Ledger); // midaz/ledgers post
//!   rpc DeleteLedger(GetLedgerRequest) returns (Ledger);    // unmapped: always refused
//! }
//! ```

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use lib_auth::{Action, Auth, GrpcPolicy, Principal};
use tonic::body::Body;
use tonic::server::{Grpc, NamedService};
use tonic::transport::Server;
use tonic::transport::server::TcpIncoming;
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// The product whose permissions the policy names.
pub const PRODUCT: &str = "midaz";
/// The gRPC service name.
pub const SERVICE: &str = "ledger.v1.LedgerService";
/// `GetLedger`'s path: requires `midaz/ledgers get`.
pub const GET_LEDGER: &str = "/ledger.v1.LedgerService/GetLedger";
/// `CreateLedger`'s path: requires `midaz/ledgers post`.
pub const CREATE_LEDGER: &str = "/ledger.v1.LedgerService/CreateLedger";
/// `DeleteLedger`'s path: implemented, but absent from [`policy`], hence always refused.
pub const DELETE_LEDGER: &str = "/ledger.v1.LedgerService/DeleteLedger";

/// The request of `GetLedger` and `DeleteLedger`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GetLedgerRequest {
    /// The ledger's id.
    #[prost(string, tag = "1")]
    pub id: String,
}

/// The request of `CreateLedger`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateLedgerRequest {
    /// The new ledger's name.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// A ledger.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Ledger {
    /// Its id.
    #[prost(string, tag = "1")]
    pub id: String,
    /// Its name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// The subject of the principal who created it (`anonymous` when auth is disabled).
    #[prost(string, tag = "3")]
    pub created_by: String,
}

/// The per-method policy: `GetLedger` → `ledgers get`, `CreateLedger` → `ledgers post`;
/// `DeleteLedger` is deliberately unmapped.
pub fn policy() -> GrpcPolicy {
    GrpcPolicy::new()
        .method(GET_LEDGER, "ledgers", Action::Get)
        .method(CREATE_LEDGER, "ledgers", Action::Post)
}

type Ledgers = Arc<Mutex<BTreeMap<String, Ledger>>>;

/// The service: an in-memory map of ledgers, as a tower service of HTTP/2 requests.
#[derive(Debug, Clone, Default)]
pub struct LedgerService {
    ledgers: Ledgers,
}

impl NamedService for LedgerService {
    const NAME: &'static str = SERVICE;
}

/// The subject of the principal the auth layer put into the request, if any.
fn caller<T>(request: &Request<T>) -> String {
    request
        .extensions()
        .get::<Principal>()
        .map_or_else(|| "anonymous".to_owned(), |p| p.subject().to_owned())
}

fn get_ledger(ledgers: &Ledgers, request: Request<GetLedgerRequest>) -> Result<Ledger, Status> {
    let id = request.into_inner().id;
    let ledgers = ledgers
        .lock()
        .map_err(|_| Status::internal("store poisoned"))?;
    ledgers
        .get(&id)
        .cloned()
        .ok_or_else(|| Status::not_found(format!("no ledger {id}")))
}

fn create_ledger(
    ledgers: &Ledgers,
    request: Request<CreateLedgerRequest>,
) -> Result<Ledger, Status> {
    let created_by = caller(&request);
    let name = request.into_inner().name;
    if name.trim().is_empty() {
        return Err(Status::invalid_argument("name must not be empty"));
    }
    let ledger = Ledger {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        created_by,
    };
    let mut ledgers = ledgers
        .lock()
        .map_err(|_| Status::internal("store poisoned"))?;
    ledgers.insert(ledger.id.clone(), ledger.clone());
    Ok(ledger)
}

fn delete_ledger(ledgers: &Ledgers, request: Request<GetLedgerRequest>) -> Result<Ledger, Status> {
    let id = request.into_inner().id;
    let mut ledgers = ledgers
        .lock()
        .map_err(|_| Status::internal("store poisoned"))?;
    ledgers
        .remove(&id)
        .ok_or_else(|| Status::not_found(format!("no ledger {id}")))
}

/// Runs a synchronous handler as a unary gRPC call.
async fn unary<M1, M2>(
    ledgers: Ledgers,
    request: http::Request<Body>,
    handler: fn(&Ledgers, Request<M1>) -> Result<M2, Status>,
) -> http::Response<Body>
where
    M1: prost::Message + Default + Send + 'static,
    M2: prost::Message + Send + 'static,
{
    let method = tower::service_fn(move |request: Request<M1>| {
        let answer = handler(&ledgers, request).map(Response::new);
        std::future::ready(answer)
    });
    Grpc::new(ProstCodec::<M2, M1>::default())
        .unary(method, request)
        .await
}

impl tower::Service<http::Request<Body>> for LedgerService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let ledgers = self.ledgers.clone();
        Box::pin(async move {
            let response = match request.uri().path() {
                GET_LEDGER => unary(ledgers, request, get_ledger).await,
                CREATE_LEDGER => unary(ledgers, request, create_ledger).await,
                DELETE_LEDGER => unary(ledgers, request, delete_ledger).await,
                other => Status::unimplemented(format!("no method {other}")).into_http(),
            };
            Ok(response)
        })
    }
}

/// Serves the guarded service on `listener` until `shutdown` completes: every call goes
/// through `auth.require_grpc(PRODUCT, policy())`.
pub async fn serve(
    auth: &Auth,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .layer(auth.require_grpc(PRODUCT, policy()))
        .add_service(LedgerService::default())
        .serve_with_incoming_shutdown(TcpIncoming::from(listener), shutdown)
        .await
}
