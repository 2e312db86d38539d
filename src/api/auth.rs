//! Extractors that authenticate a request: [`Reader`] for any valid token, [`Editor`] for changes.

use actix_web::dev::Payload;
use actix_web::{http::header, web, FromRequest, HttpRequest};
use std::future::Future;
use std::pin::Pin;

use crate::api::ApiError;
use crate::auth::Principal;
use crate::service::ServiceError;
use crate::state::AppState;

type LocalBoxFuture<T> = Pin<Box<dyn Future<Output = T>>>;

/// Any valid token of the workspace (`viewer` or `editor`).
pub struct Reader(pub Principal);

/// A valid token with the `editor` role; a viewer gets 403 `forbidden`.
pub struct Editor(pub Principal);

fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

async fn authenticate(
    state: Option<web::Data<AppState>>,
    token: Option<String>,
) -> Result<Principal, ApiError> {
    let state = state.ok_or_else(|| {
        ApiError::Service(ServiceError::Internal("application state missing".into()))
    })?;
    let principal = token
        .and_then(|t| state.tokens.verify(&t))
        .ok_or(ApiError::Unauthorized)?;
    state.ensure_workspace(&principal.workspace_id).await?;
    Ok(principal)
}

impl FromRequest for Reader {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (state, token) = (req.app_data::<web::Data<AppState>>().cloned(), bearer(req));
        Box::pin(async move { authenticate(state, token).await.map(Reader) })
    }
}

impl FromRequest for Editor {
    type Error = ApiError;
    type Future = LocalBoxFuture<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let (state, token) = (req.app_data::<web::Data<AppState>>().cloned(), bearer(req));
        Box::pin(async move {
            let principal = authenticate(state, token).await?;
            if !principal.role.can_write() {
                return Err(ApiError::Forbidden);
            }
            Ok(Editor(principal))
        })
    }
}
