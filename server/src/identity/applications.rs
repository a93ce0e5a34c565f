//! Applications: machine-to-machine clients. The secret is shown once, in the answer that
//! creates or rotates it; the store keeps only its hash, and no list, get, log line or audit
//! event ever carries it (SPEC §8: never retrievable after creation).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;

use super::body::Body;
use super::rights::holds;
use super::{
    Caller, IdentityError, Page, Paging, audit, query_map, rfc3339, sync_revocations, uuid_path,
};
use crate::admin::{CreatedApplication, new_application, rotate_secret as new_secret};
use crate::auth::issue::revocation_horizon;
use crate::state::AppState;
use crate::store::applications::{
    Application, delete_application, find_application, list_applications,
};
use lib_auth::Policy;

/// Application names that are products without being in the policy (Lerian's list).
const EXTRA_PRODUCTS: &[&str] = &["reporter"];

/// An application as lists and gets show it: no secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApplicationView {
    id: String,
    name: String,
    description: String,
    client_id: String,
    roles: Vec<String>,
    created_at: String,
    secret_rotated_at: String,
}

impl From<Application> for ApplicationView {
    fn from(app: Application) -> ApplicationView {
        ApplicationView {
            id: app.id,
            name: app.name,
            description: app.description,
            client_id: app.client_id,
            roles: app.roles,
            created_at: rfc3339(app.created_at),
            secret_rotated_at: rfc3339(app.secret_rotated_at),
        }
    }
}

/// The one answer that carries a secret.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct WithSecret {
    #[serde(flatten)]
    application: ApplicationView,
    client_secret: String,
}

fn with_secret(status: StatusCode, created: CreatedApplication) -> Response {
    let mut response = (
        status,
        Json(WithSecret {
            application: created.application.into(),
            client_secret: created.client_secret,
        }),
    )
        .into_response();
    response.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    response
}

/// `POST /v1/applications`: `{name, description, roles?}`; 201 with the secret, shown once.
/// Without `roles`, the application holds `<name>-editor-role` when the policy has it.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, IdentityError> {
    let body = Body::read(&headers, body, &["name", "description"], &["roles"])?;
    let name = body.required_string("name")?;
    let description = body.required_string("description")?;
    let roles = body.strings("roles")?;
    let (policy, _) = state.policy();
    let roles = checked_application(&policy, &name, &description, roles)?;
    if !holds(&state, &caller.principal, &roles) {
        return Err(caller
            .refuse_escalation(
                &state,
                "application",
                "",
                &name,
                "create an application with roles the caller does not hold",
            )
            .await);
    }
    let created = new_application(state.store(), &name, &description, roles).await?;
    let app = &created.application;
    audit::record(
        &state,
        caller.event(
            "application.created",
            Some("application"),
            Some(&app.id),
            Some(&app.name),
            json!({"clientId": app.client_id, "roles": app.roles}),
        ),
    )
    .await?;
    tracing::info!(actor = %caller.id(), application = %app.id, client_id = %app.client_id, "application created");
    Ok(with_secret(StatusCode::CREATED, created))
}

/// Checks a new application's name (a product) and description, and answers its roles: the
/// given ones, each of the policy, or by default `<name>-editor-role` when the policy has it.
/// Shared by the API and the CLI.
pub fn checked_application(
    policy: &Policy,
    name: &str,
    description: &str,
    roles: Option<Vec<String>>,
) -> Result<Vec<String>, IdentityError> {
    let is_product = EXTRA_PRODUCTS.contains(&name)
        || policy
            .roles
            .iter()
            .flat_map(|r| &r.permissions)
            .any(|p| p.product == name);
    if !is_product {
        return Err(IdentityError::NotAProduct(
            name.chars().filter(|c| !c.is_control()).take(64).collect(),
        ));
    }
    if description.chars().count() > 500 || description.chars().any(char::is_control) {
        return Err(IdentityError::InvalidText(
            "description",
            "must have at most 500 characters and no control characters",
        ));
    }
    let mut roles = match roles {
        Some(roles) => roles,
        None => {
            let default = format!("{name}-editor-role");
            if policy.roles.iter().any(|r| r.id == default) {
                vec![default]
            } else {
                Vec::new()
            }
        }
    };
    roles.sort();
    roles.dedup();
    let unknown: Vec<String> = roles
        .iter()
        .filter(|r| !policy.roles.iter().any(|p| &p.id == *r))
        .take(5)
        .map(|r| format!("{:?}", r.chars().take(64).collect::<String>()))
        .collect();
    if !unknown.is_empty() {
        return Err(IdentityError::UnknownRoles(unknown.join(", ")));
    }
    Ok(roles)
}

/// `GET /v1/applications`: a page of applications, without secrets.
pub async fn list(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<ApplicationView>>, IdentityError> {
    let paging = Paging::from_query(&query_map(query.as_deref())?)?;
    let (apps, total) = state
        .store()
        .run(move |c| list_applications(c, paging.offset(), paging.limit))
        .await?;
    let items = apps.into_iter().map(ApplicationView::from).collect();
    Ok(Json(Page::new(items, paging, total)))
}

/// `GET /v1/applications/{id}`, without its secret.
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<ApplicationView>, IdentityError> {
    uuid_path(&id, "application")?;
    let app = state
        .store()
        .run(move |c| find_application(c, &id))
        .await?
        .ok_or(IdentityError::ApplicationNotFound)?;
    Ok(Json(app.into()))
}

/// `DELETE /v1/applications/{id}`: 204; its tokens are revoked.
pub async fn delete(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, IdentityError> {
    uuid_path(&id, "application")?;
    manageable_application(&state, &caller, &id, "delete an application").await?;
    let horizon = revocation_horizon(&state);
    let app = state
        .store()
        .run(move |c| delete_application(c, &id, horizon))
        .await?
        .ok_or(IdentityError::ApplicationNotFound)?;
    sync_revocations(&state).await?;
    audit::record(
        &state,
        caller.event(
            "application.deleted",
            Some("application"),
            Some(&app.id),
            Some(&app.name),
            json!({"clientId": app.client_id}),
        ),
    )
    .await?;
    tracing::info!(actor = %caller.id(), application = %app.id, "application deleted");
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/applications/{id}/rotate-secret`: 200 with the new secret, shown once; the old
/// secret stops working and the tokens issued with it are revoked.
pub async fn rotate_secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, IdentityError> {
    uuid_path(&id, "application")?;
    // The new secret is the application's rights: only a caller holding them gets it.
    manageable_application(&state, &caller, &id, "rotate an application's secret").await?;
    let horizon = revocation_horizon(&state);
    let created = new_secret(state.store(), &id, horizon)
        .await?
        .ok_or(IdentityError::ApplicationNotFound)?;
    sync_revocations(&state).await?;
    let app = &created.application;
    audit::record(
        &state,
        caller.event(
            "application.secret_rotated",
            Some("application"),
            Some(&app.id),
            Some(&app.name),
            json!({"clientId": app.client_id, "tokensRevoked": true}),
        ),
    )
    .await?;
    tracing::info!(actor = %caller.id(), application = %app.id, "application secret rotated");
    Ok(with_secret(StatusCode::OK, created))
}

/// The application `id`, if the caller holds every one of its roles (else IDE-0019, recorded).
async fn manageable_application(
    state: &AppState,
    caller: &Caller,
    id: &str,
    what: &str,
) -> Result<Application, IdentityError> {
    let lookup = id.to_owned();
    let app = state
        .store()
        .run(move |c| find_application(c, &lookup))
        .await?
        .ok_or(IdentityError::ApplicationNotFound)?;
    if holds(state, &caller.principal, &app.roles) {
        Ok(app)
    } else {
        Err(caller
            .refuse_escalation(state, "application", &app.id, &app.name, what)
            .await)
    }
}
