//! The ledger's error answers and its extractors: every refusal, axum's own included, is JSON
//! `{code,title,message}`, like lib-auth's 401/403/503.

use axum::extract::rejection::{JsonRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Json, Path, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;
use uuid::Uuid;

/// An error answer of the ledger: a status and the `{code,title,message}` envelope.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    message: String,
}

impl ApiError {
    /// 400: the request body is not what the route takes.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            code: "LDG-0001",
            title: "Bad Request",
            message: message.into(),
        }
    }

    /// 404: no `entity` with this id (in this organization or ledger).
    pub(crate) fn not_found(entity: &str, id: Uuid) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "LDG-0003",
            title: "Entity Not Found",
            message: format!("no {entity} with id {id}"),
        }
    }

    /// 404: no route has this path.
    pub(crate) fn no_route() -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            code: "LDG-0004",
            title: "Route Not Found",
            message: "no route has this path".to_owned(),
        }
    }

    /// 405: the path exists, not with this method.
    pub(crate) fn method_not_allowed() -> ApiError {
        ApiError {
            status: StatusCode::METHOD_NOT_ALLOWED,
            code: "LDG-0005",
            title: "Method Not Allowed",
            message: "this route does not take this method".to_owned(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "code": self.code, "title": self.title, "message": self.message });
        (self.status, Json(body)).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> ApiError {
        let message = rejection.body_text();
        match rejection {
            JsonRejection::MissingJsonContentType(_) => ApiError {
                status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
                code: "LDG-0006",
                title: "Unsupported Media Type",
                message,
            },
            // Unreadable JSON and JSON of the wrong shape are both the caller's bad body: 400
            // (axum answers 422 for the latter).
            JsonRejection::JsonSyntaxError(_) | JsonRejection::JsonDataError(_) => {
                ApiError::bad_request(message)
            }
            // Too large, or the body could not be read.
            other => ApiError {
                status: other.status(),
                code: "LDG-0001",
                title: "Bad Request",
                message,
            },
        }
    }
}

impl From<PathRejection> for ApiError {
    fn from(rejection: PathRejection) -> ApiError {
        match rejection {
            PathRejection::FailedToDeserializePathParams(e) => ApiError {
                status: StatusCode::BAD_REQUEST,
                code: "LDG-0002",
                title: "Invalid Path Parameter",
                message: e.body_text(),
            },
            // A route declared without the parameters its handler reads: our bug, not the
            // caller's.
            other => ApiError {
                status: other.status(),
                code: "LDG-0500",
                title: "Internal Server Error",
                message: "the route is misconfigured".to_owned(),
            },
        }
    }
}

/// `axum::extract::Path` whose rejection is an [`ApiError`] (400 for a bad UUID).
pub(crate) struct Ids<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for Ids<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(ids) = Path::<T>::from_request_parts(parts, state).await?;
        Ok(Ids(ids))
    }
}

/// `axum::Json` whose rejection is an [`ApiError`] (400 for bad JSON).
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Json(body) = Json::<T>::from_request(request, state).await?;
        Ok(Body(body))
    }
}
