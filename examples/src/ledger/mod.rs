//! An in-memory Midaz-like ledger guarded by lib-auth: organizations, their ledgers, and the
//! ledgers' accounts and transactions. The binary `ledger` serves [`router`]; the integration
//! tests start it on loopback.
//!
//! Every route is guarded by `auth.require_method("midaz", <resource>)`, so the HTTP method is
//! the action (`GET`→get, `HEAD`→head, `POST`→post, `PATCH`→patch, `DELETE`→delete):
//!
//! | route | resource | success |
//! |---|---|---|
//! | `POST`, `GET /v1/organizations` | organizations | 201, 200 |
//! | `GET`, `PATCH`, `DELETE /v1/organizations/{organization_id}` | organizations | 200, 200, 204 |
//! | `HEAD /v1/organizations/metrics/count` | organizations | 204 with `X-Total-Count` |
//! | `POST`, `GET …/{organization_id}/ledgers` | ledgers | 201, 200 |
//! | `GET`, `PATCH`, `DELETE …/ledgers/{ledger_id}` | ledgers | 200, 200, 204 |
//! | `POST`, `GET …/ledgers/{ledger_id}/accounts` | accounts | 201, 200 |
//! | `GET …/accounts/{account_id}` | accounts | 200 |
//! | `POST …/ledgers/{ledger_id}/transactions/json` | transactions | 201 |
//! | `GET …/transactions/{transaction_id}` | transactions | 200 |
//!
//! `GET /ready` is open: 200 `{"ready":true}`, or 503 `{"ready":false,…}` while lib-auth has
//! a revocation feed it has not read to its end (just started, the Auth service down, or its
//! credentials refused): a readiness probe keeps traffic away until every revocation the Auth
//! service had made is known here.
//!
//! Bodies are JSON: `{"name": "…"}` for organizations, ledgers and accounts (create and
//! patch); any JSON object for a transaction, kept as is. Lists answer `{"items": […]}` sorted
//! by name. Deleting an organization or a ledger deletes what it owns.
//!
//! The guard runs first: a request without a valid token is 401 and one without the permission
//! 403 (lib-auth's `AUT-*` envelope) before its ids or body are looked at. Then an id that is
//! not a UUID is 400 (`LDG-0002`), a body that is not JSON of the right shape 400 (`LDG-0001`),
//! an unknown id 404 (`LDG-0003`), an unknown path 404 (`LDG-0004`), a method the path does not
//! take 405 (`LDG-0005`); every answer is JSON `{code,title,message}`.
//!
//! Created objects record `createdBy`, the subject (`sub`) of the caller. Handlers take
//! `Option<lib_auth_axum::Principal>` rather than `Principal`: when lib-auth is disabled
//! (`PLUGIN_AUTH_ENABLED=false`) no layer authenticates the request, every route is open, and
//! `createdBy` is `null`. When lib-auth is enabled the guard always provides the principal.

mod api;
mod store;

use axum::extract::State;
use axum::http::{HeaderName, StatusCode};
use axum::routing::{get, head, post};
use axum::{Json, Router};
use lib_auth_axum::{Auth, Principal};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use api::{ApiError, Body, Ids};
use store::{Account, Db, Ledger, Organization, Transaction};

/// The product of every permission the ledger checks.
pub const PRODUCT: &str = "midaz";

/// The ledger's routes, guarded by `auth` (see the [module documentation](self)), over a new
/// empty store.
pub fn router(auth: Auth) -> Router {
    let readiness = auth.clone();
    let ready = get(move || ready(readiness.clone()));
    let organizations = Router::new()
        .route(
            "/v1/organizations",
            post(create_organization).get(list_organizations),
        )
        .route("/v1/organizations/metrics/count", head(count_organizations))
        .route(
            "/v1/organizations/{organization_id}",
            get(get_organization)
                .patch(update_organization)
                .delete(delete_organization),
        )
        .route_layer(auth.require_method(PRODUCT, "organizations"));
    let ledgers = Router::new()
        .route(
            "/v1/organizations/{organization_id}/ledgers",
            post(create_ledger).get(list_ledgers),
        )
        .route(
            "/v1/organizations/{organization_id}/ledgers/{ledger_id}",
            get(get_ledger).patch(update_ledger).delete(delete_ledger),
        )
        .route_layer(auth.require_method(PRODUCT, "ledgers"));
    let accounts = Router::new()
        .route(
            "/v1/organizations/{organization_id}/ledgers/{ledger_id}/accounts",
            post(create_account).get(list_accounts),
        )
        .route(
            "/v1/organizations/{organization_id}/ledgers/{ledger_id}/accounts/{account_id}",
            get(get_account),
        )
        .route_layer(auth.require_method(PRODUCT, "accounts"));
    let transactions = Router::new()
        .route(
            "/v1/organizations/{organization_id}/ledgers/{ledger_id}/transactions/json",
            post(create_transaction),
        )
        .route(
            "/v1/organizations/{organization_id}/ledgers/{ledger_id}/transactions/{transaction_id}",
            get(get_transaction),
        )
        .route_layer(auth.require_method(PRODUCT, "transactions"));
    Router::new()
        .merge(organizations)
        .merge(ledgers)
        .merge(accounts)
        .merge(transactions)
        .route("/ready", ready)
        .fallback(|| async { ApiError::no_route() })
        .method_not_allowed_fallback(|| async { ApiError::method_not_allowed() })
        .with_state(Db::default())
}

/// `GET /ready`: whether lib-auth knows every revocation the Auth service had made (see the
/// [module documentation](self)).
async fn ready(auth: Auth) -> (StatusCode, Json<Value>) {
    match auth.revocation_feed_current() {
        Some(false) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({
                "ready": false,
                "reason": "the revocation feed has not been read yet, or refuses the credentials",
            })),
        ),
        Some(true) | None => (StatusCode::OK, Json(serde_json::json!({ "ready": true }))),
    }
}

/// The body that creates or renames an organization, a ledger or an account.
#[derive(Deserialize)]
struct NameInput {
    name: String,
}

impl NameInput {
    /// The name, trimmed; empty names are refused.
    fn name(self) -> Result<String, ApiError> {
        match self.name.trim() {
            "" => Err(ApiError::bad_request("name must not be empty")),
            name => Ok(name.to_owned()),
        }
    }
}

/// A list answer.
#[derive(Serialize)]
struct Items<T> {
    items: Vec<T>,
}

type Created<T> = (StatusCode, Json<T>);

fn created<T>(value: T) -> Result<Created<T>, ApiError> {
    Ok((StatusCode::CREATED, Json(value)))
}

fn subject(caller: Option<Principal>) -> Option<String> {
    caller.map(|c| c.subject().to_owned())
}

fn sorted<'a, T: Clone + 'a>(
    values: impl Iterator<Item = &'a T>,
    key: impl Fn(&T) -> (&str, Uuid),
) -> Json<Items<T>> {
    let mut items: Vec<T> = values.cloned().collect();
    items.sort_by(|a, b| key(a).cmp(&key(b)));
    Json(Items { items })
}

// Organizations.

async fn create_organization(
    State(db): State<Db>,
    caller: Option<Principal>,
    Body(input): Body<NameInput>,
) -> Result<Created<Organization>, ApiError> {
    let organization = Organization {
        id: Uuid::new_v4(),
        name: input.name()?,
        created_by: subject(caller),
    };
    let mut store = db.write().await;
    store
        .organizations
        .insert(organization.id, organization.clone());
    created(organization)
}

async fn list_organizations(State(db): State<Db>) -> Json<Items<Organization>> {
    let store = db.read().await;
    sorted(store.organizations.values(), |o| (&o.name, o.id))
}

async fn count_organizations(State(db): State<Db>) -> (StatusCode, [(HeaderName, String); 1]) {
    let count = db.read().await.organizations.len();
    (
        StatusCode::NO_CONTENT,
        [(HeaderName::from_static("x-total-count"), count.to_string())],
    )
}

async fn get_organization(
    State(db): State<Db>,
    Ids(id): Ids<Uuid>,
) -> Result<Json<Organization>, ApiError> {
    Ok(Json(db.read().await.organization(id)?.clone()))
}

async fn update_organization(
    State(db): State<Db>,
    Ids(id): Ids<Uuid>,
    Body(input): Body<NameInput>,
) -> Result<Json<Organization>, ApiError> {
    let name = input.name()?;
    let mut store = db.write().await;
    let organization = store
        .organizations
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found("organization", id))?;
    organization.name = name;
    Ok(Json(organization.clone()))
}

async fn delete_organization(
    State(db): State<Db>,
    Ids(id): Ids<Uuid>,
) -> Result<StatusCode, ApiError> {
    let mut store = db.write().await;
    store.organization(id)?;
    store.remove_organization(id);
    Ok(StatusCode::NO_CONTENT)
}

// Ledgers.

async fn create_ledger(
    State(db): State<Db>,
    Ids(organization_id): Ids<Uuid>,
    caller: Option<Principal>,
    Body(input): Body<NameInput>,
) -> Result<Created<Ledger>, ApiError> {
    let ledger = Ledger {
        id: Uuid::new_v4(),
        organization_id,
        name: input.name()?,
        created_by: subject(caller),
    };
    let mut store = db.write().await;
    store.organization(organization_id)?;
    store.ledgers.insert(ledger.id, ledger.clone());
    created(ledger)
}

async fn list_ledgers(
    State(db): State<Db>,
    Ids(organization_id): Ids<Uuid>,
) -> Result<Json<Items<Ledger>>, ApiError> {
    let store = db.read().await;
    store.organization(organization_id)?;
    let of_organization = store
        .ledgers
        .values()
        .filter(|l| l.organization_id == organization_id);
    Ok(sorted(of_organization, |l| (&l.name, l.id)))
}

async fn get_ledger(
    State(db): State<Db>,
    Ids((organization_id, id)): Ids<(Uuid, Uuid)>,
) -> Result<Json<Ledger>, ApiError> {
    Ok(Json(db.read().await.ledger(organization_id, id)?.clone()))
}

async fn update_ledger(
    State(db): State<Db>,
    Ids((organization_id, id)): Ids<(Uuid, Uuid)>,
    Body(input): Body<NameInput>,
) -> Result<Json<Ledger>, ApiError> {
    let name = input.name()?;
    let mut store = db.write().await;
    store.ledger(organization_id, id)?;
    let ledger = store
        .ledgers
        .get_mut(&id)
        .ok_or_else(|| ApiError::not_found("ledger", id))?;
    ledger.name = name;
    Ok(Json(ledger.clone()))
}

async fn delete_ledger(
    State(db): State<Db>,
    Ids((organization_id, id)): Ids<(Uuid, Uuid)>,
) -> Result<StatusCode, ApiError> {
    let mut store = db.write().await;
    store.ledger(organization_id, id)?;
    store.remove_ledger(id);
    Ok(StatusCode::NO_CONTENT)
}

// Accounts.

async fn create_account(
    State(db): State<Db>,
    Ids((organization_id, ledger_id)): Ids<(Uuid, Uuid)>,
    caller: Option<Principal>,
    Body(input): Body<NameInput>,
) -> Result<Created<Account>, ApiError> {
    let account = Account {
        id: Uuid::new_v4(),
        organization_id,
        ledger_id,
        name: input.name()?,
        created_by: subject(caller),
    };
    let mut store = db.write().await;
    store.ledger(organization_id, ledger_id)?;
    store.accounts.insert(account.id, account.clone());
    created(account)
}

async fn list_accounts(
    State(db): State<Db>,
    Ids((organization_id, ledger_id)): Ids<(Uuid, Uuid)>,
) -> Result<Json<Items<Account>>, ApiError> {
    let store = db.read().await;
    store.ledger(organization_id, ledger_id)?;
    let of_ledger = store.accounts.values().filter(|a| a.ledger_id == ledger_id);
    Ok(sorted(of_ledger, |a| (&a.name, a.id)))
}

async fn get_account(
    State(db): State<Db>,
    Ids((organization_id, ledger_id, id)): Ids<(Uuid, Uuid, Uuid)>,
) -> Result<Json<Account>, ApiError> {
    let store = db.read().await;
    Ok(Json(store.account(organization_id, ledger_id, id)?.clone()))
}

// Transactions.

async fn create_transaction(
    State(db): State<Db>,
    Ids((organization_id, ledger_id)): Ids<(Uuid, Uuid)>,
    caller: Option<Principal>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Created<Transaction>, ApiError> {
    let transaction = Transaction {
        id: Uuid::new_v4(),
        organization_id,
        ledger_id,
        body,
        created_by: subject(caller),
    };
    let mut store = db.write().await;
    store.ledger(organization_id, ledger_id)?;
    store
        .transactions
        .insert(transaction.id, transaction.clone());
    created(transaction)
}

async fn get_transaction(
    State(db): State<Db>,
    Ids((organization_id, ledger_id, id)): Ids<(Uuid, Uuid, Uuid)>,
) -> Result<Json<Transaction>, ApiError> {
    let store = db.read().await;
    Ok(Json(
        store.transaction(organization_id, ledger_id, id)?.clone(),
    ))
}
