//! `/api/v1/whatsapp`: connecting WhatsApp Business Accounts and the Embedded Signup settings.

use actix_web::{get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{Editor, Reader};
use super::types::{
    ConnectedAccount, SignupConfig, SyncResult, WhatsAppAccount, WhatsAppAccountList,
};
use crate::error::{ApiError, Problem};
use crate::service::accounts::{self as service, validate_waba_id, Credentials};
use crate::state::AppState;

/// Body of `POST /whatsapp/accounts`: either Embedded Signup's `code` (with `waba_id` and
/// `phone_number_id` from the popup's message event, when the SPA has them), or a system-user
/// `access_token` with its `waba_id`. Other keys of the popup's event data (`business_id`, ...) are
/// accepted and ignored, so the SPA may forward that data as it came.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConnectAccount {
    /// The code from `FB.login`'s callback (valid for 30 seconds: send it at once).
    pub code: Option<String>,
    /// The WABA id; required with `access_token`, optional with `code` (read from the token otherwise).
    pub waba_id: Option<String>,
    /// From the popup's FINISH event; accepted for completeness, the number arrives with the sync.
    pub phone_number_id: Option<String>,
    /// Write-only: a system-user token with `whatsapp_business_management` and `whatsapp_business_messaging`.
    #[schema(write_only)]
    pub access_token: Option<String>,
}

impl ConnectAccount {
    fn credentials(self) -> Result<Credentials, ApiError> {
        let waba_id = self.waba_id.as_deref().map(validate_waba_id).transpose()?;
        let text = |v: Option<String>| v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty());
        match (text(self.code), text(self.access_token)) {
            (Some(code), None) => Ok(Credentials::SignupCode { code, waba_id }),
            (None, Some(access_token)) => {
                let waba_id = waba_id.ok_or_else(|| {
                    ApiError::Validation("`waba_id` is required with `access_token`".into())
                })?;
                Ok(Credentials::SystemUserToken {
                    waba_id,
                    access_token,
                })
            }
            (Some(_), Some(_)) => Err(ApiError::Validation(
                "send either `code` or `access_token`, not both".into(),
            )),
            (None, None) => Err(ApiError::Validation(
                "send `code` (Embedded Signup) or `waba_id` with `access_token` (system user)"
                    .into(),
            )),
        }
    }
}

/// Connect a WhatsApp Business Account, then sync its numbers.
///
/// Finishes Embedded Signup (exchanges the code, finds the WABA, subscribes our app to its webhooks)
/// or connects with a system-user token. Connecting a WABA this workspace already has replaces its
/// token and re-syncs (`reconnected: true`). A WABA of another workspace: 409.
#[utoipa::path(
    tag = "whatsapp-accounts",
    operation_id = "connect_whatsapp_account",
    context_path = "/api/v1",
    request_body = ConnectAccount,
    responses(
        (status = 201, description = "Connected (or re-connected) and synced", body = ConnectedAccount),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`account_connected_elsewhere`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`meta_error`: Meta refused (bad code or token, missing permission)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/whatsapp/accounts")]
pub async fn connect_whatsapp_account(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    body: web::Json<ConnectAccount>,
) -> Result<HttpResponse, ApiError> {
    let credentials = body.into_inner().credentials()?;
    let connected = service::connect(&state, &caller, credentials).await?;
    let body = ConnectedAccount {
        account: connected.account.into(),
        reconnected: !connected.created,
        sync: connected.sync,
    };
    Ok(HttpResponse::Created()
        .insert_header((
            "Location",
            format!("/api/v1/whatsapp/accounts/{}", body.account.id),
        ))
        .json(body))
}

/// List connected accounts with their last sync and any sync error.
#[utoipa::path(
    tag = "whatsapp-accounts",
    operation_id = "list_whatsapp_accounts",
    context_path = "/api/v1",
    responses(
        (status = 200, description = "The workspace's accounts", body = WhatsAppAccountList),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/whatsapp/accounts")]
pub async fn list_whatsapp_accounts(
    state: web::Data<AppState>,
    Reader(caller): Reader,
) -> Result<web::Json<WhatsAppAccountList>, ApiError> {
    let accounts = service::list(&state, &caller.workspace_id).await?;
    Ok(web::Json(WhatsAppAccountList {
        data: accounts.into_iter().map(WhatsAppAccount::from).collect(),
        next_cursor: None,
    }))
}

/// Sync one account's numbers from Meta now.
#[utoipa::path(
    tag = "whatsapp-accounts",
    operation_id = "sync_whatsapp_account",
    context_path = "/api/v1",
    params(("id" = Uuid, Path, description = "Our id of the account")),
    responses(
        (status = 200, description = "What changed", body = SyncResult),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`account_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`sync_in_progress` or `account_needs_reconnect`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`meta_error`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/whatsapp/accounts/{id}/sync")]
pub async fn sync_whatsapp_account(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    id: web::Path<Uuid>,
) -> Result<web::Json<SyncResult>, ApiError> {
    let (_, counts) = service::sync_one(&state, &caller.workspace_id, &id.to_string()).await?;
    Ok(web::Json(SyncResult::new(counts, Vec::new())))
}

/// What the SPA needs to open Meta's Embedded Signup popup (never a secret).
#[utoipa::path(
    tag = "whatsapp-accounts",
    operation_id = "get_signup_config",
    context_path = "/api/v1",
    responses(
        (status = 200, description = "Embedded Signup settings", body = SignupConfig),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/whatsapp/signup-config")]
pub async fn get_signup_config(
    state: web::Data<AppState>,
    _caller: Reader,
) -> web::Json<SignupConfig> {
    let settings = &state.settings;
    web::Json(SignupConfig {
        app_id: settings.meta_app.as_ref().map(|a| a.app_id.clone()),
        config_id: settings
            .meta_app
            .as_ref()
            .and_then(|a| a.es_config_id.clone()),
        graph_version: settings.meta_graph_version.clone(),
        mode: state.meta.mode(),
    })
}
