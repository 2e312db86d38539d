//! `/api/v1/whatsapp`: connecting WhatsApp Business Accounts and the Embedded Signup settings.

use actix_web::{delete, get, post, web, HttpResponse};
use serde::Deserialize;
use utoipa::openapi::{RefOr, Schema};

use super::auth::{Editor, Reader};
use super::types::{
    ConnectedAccount, PhoneNumber, SignupConfig, SignupExtras, SignupLoginOptions, SyncResult,
    WhatsAppAccount, WhatsAppAccountList,
};
use super::{ApiError, Problem};
use crate::domain::text::{
    self, TextRule, ACCESS_TOKEN, META_PHONE_NUMBER_ID, SIGNUP_CODE, WABA_ID,
};
use crate::domain::{AccountId, MetaMode, Secret};
use crate::service::accounts::{self as service, validate_waba_id, Credentials};
use crate::state::AppState;

/// Body of `POST /whatsapp/accounts`: either Embedded Signup's `code` (with `waba_id` and
/// `phone_number_id` from the popup's message event, when the SPA has them), or a system-user
/// `access_token` with its `waba_id`. Other keys (the popup's `business_id`, ...) are ignored, so
/// the SPA may forward the popup's event data as it came. A null field counts as absent.
#[derive(Deserialize)]
#[serde(remote = "Self")]
pub struct ConnectAccount {
    code: Option<Secret>,
    waba_id: Option<String>,
    access_token: Option<Secret>,
    /// Read only to be checked: the number itself arrives with the sync.
    phone_number_id: Option<String>,
}

crate::domain::object_only!(ConnectAccount);

/// A given text must keep its rule; it is used without surrounding white space.
fn given(rule: &TextRule, value: Option<Secret>) -> Result<Option<Secret>, ApiError> {
    match value {
        Some(v) => {
            rule.check(v.expose())?;
            Ok(Some(Secret::from(text::trim(v.expose()))))
        }
        None => Ok(None),
    }
}

impl ConnectAccount {
    fn credentials(self) -> Result<Credentials, ApiError> {
        let waba_id = self.waba_id.as_deref().map(validate_waba_id).transpose()?;
        if let Some(id) = &self.phone_number_id {
            META_PHONE_NUMBER_ID.check(id)?;
        }
        match (
            given(&SIGNUP_CODE, self.code)?,
            given(&ACCESS_TOKEN, self.access_token)?,
        ) {
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

/// The two forms, exactly as [`ConnectAccount::credentials`] accepts them.
fn connect_schema() -> serde_json::Value {
    let rule = |rule: &TextRule, description: &str| {
        serde_json::json!({
            "type": "string", "minLength": rule.min_chars, "maxLength": rule.max_chars,
            "pattern": rule.pattern, "description": description
        })
    };
    let waba_id = rule(&WABA_ID, "Meta's WhatsApp Business Account id.");
    serde_json::json!({
        "description": "Finish Embedded Signup with its `code`, or connect with a system-user token. \
            Keys other than these are ignored, so the popup's event data may be forwarded as it came; \
            a null field counts as absent.",
        "oneOf": [
            {
                "title": "ConnectWithSignupCode",
                "type": "object",
                "required": ["code"],
                "properties": {
                    "code": rule(&SIGNUP_CODE, "The code from `FB.login`'s callback (valid for 30 seconds: send it at once)."),
                    "waba_id": {"oneOf": [{"type": "null"}, waba_id.clone()]},
                    "phone_number_id": {"oneOf": [{"type": "null"}, rule(&META_PHONE_NUMBER_ID, "From the popup's FINISH event; the number itself arrives with the sync.")]},
                    "access_token": {"type": "null", "description": "Not with `code`."}
                }
            },
            {
                "title": "ConnectWithSystemUserToken",
                "type": "object",
                "required": ["waba_id", "access_token"],
                "properties": {
                    "waba_id": waba_id,
                    "access_token": rule(&ACCESS_TOKEN, "Write-only: a system-user token with whatsapp_business_management and whatsapp_business_messaging."),
                    "phone_number_id": {"oneOf": [{"type": "null"}, rule(&META_PHONE_NUMBER_ID, "Not used with a token.")]},
                    "code": {"type": "null", "description": "Not with `access_token`."}
                }
            }
        ]
    })
}

impl utoipa::PartialSchema for ConnectAccount {
    fn schema() -> RefOr<Schema> {
        serde_json::from_value(connect_schema()).unwrap_or_default()
    }
}

impl utoipa::ToSchema for ConnectAccount {}

/// Connect a WhatsApp Business Account, then sync its numbers.
///
/// Finishes Embedded Signup (exchanges the code, finds the WABA, subscribes our app to its webhooks)
/// or connects with a system-user token. Connecting a WABA this workspace already has replaces its
/// token and re-syncs (`reconnected: true`). A WABA of another workspace: 409. The answer lists
/// the numbers the connection added (`added_phone_numbers`).
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
        (status = 422, description = "`signup_code_invalid`: the code expired or was used (open the popup again); `meta_permission_missing`: the token lacks a permission", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`waba_call_budget_spent`: this WABA used this hour's share of Meta's call limit; wait `retry_after_seconds`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`meta_error`: Meta refused otherwise (bad token) or could not be reached", body = Problem, content_type = "application/problem+json"),
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
        added_phone_numbers: connected.added.into_iter().map(PhoneNumber::from).collect(),
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
///
/// If the account was synced less than 30 seconds ago, that sync's result answers, without a
/// call to Meta (Meta allows 200 Graph calls an hour per WABA); if Meta failed its sync (down,
/// timing out) less than 30 seconds ago, that failure answers again, with `retry_after_seconds`.
#[utoipa::path(
    tag = "whatsapp-accounts",
    operation_id = "sync_whatsapp_account",
    context_path = "/api/v1",
    params(("id" = AccountId, Path, description = "Our id of the account")),
    responses(
        (status = 200, description = "What changed", body = SyncResult),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`account_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`sync_in_progress` or `account_needs_reconnect`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`waba_call_budget_spent`: this WABA used this hour's share of Meta's call limit; wait `retry_after_seconds`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`meta_error`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/whatsapp/accounts/{id}/sync")]
pub async fn sync_whatsapp_account(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    id: web::Path<AccountId>,
) -> Result<web::Json<SyncResult>, ApiError> {
    let (_, counts) = service::sync_one(&state, &caller, id.into_inner()).await?;
    Ok(web::Json(SyncResult::new(counts, Vec::new())))
}

/// Disconnect an account.
///
/// Ends our app's webhook subscription to the WABA (best effort, while the token still works),
/// wipes the token, marks the account's numbers removed (their history stays) and takes them from
/// every agent as inbound or outbound number; each change is recorded in the audit trail. The
/// account is no longer listed, and the WABA may then be connected again, by any workspace:
/// connected again here, its numbers come back with their ids and history.
#[utoipa::path(
    tag = "whatsapp-accounts",
    operation_id = "disconnect_whatsapp_account",
    context_path = "/api/v1",
    params(("id" = AccountId, Path, description = "Our id of the account")),
    responses(
        (status = 204, description = "Disconnected"),
        (status = 400, description = "`validation_failed`: the id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`account_not_found` (or already disconnected)", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[delete("/whatsapp/accounts/{id}")]
pub async fn disconnect_whatsapp_account(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    id: web::Path<AccountId>,
) -> Result<HttpResponse, ApiError> {
    service::disconnect(&state, &caller, id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
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
    let app_id = settings.meta_app.as_ref().map(|a| a.app_id.clone());
    let config_id = settings
        .meta_app
        .as_ref()
        .and_then(|a| a.es_config_id.clone());
    let mode = state.meta.mode();
    let login_options = match (&app_id, &config_id, mode) {
        (Some(_), Some(config_id), MetaMode::Graph) => Some(SignupLoginOptions {
            config_id: config_id.clone(),
            response_type: "code",
            override_default_response_type: true,
            extras: SignupExtras {
                setup: serde_json::Map::new(),
            },
        }),
        _ => None,
    };
    web::Json(SignupConfig {
        available: login_options.is_some(),
        app_id,
        config_id,
        graph_version: settings.meta_graph_version.clone(),
        mode,
        sdk_url: "https://connect.facebook.net/en_US/sdk.js",
        message_origin_suffix: "facebook.com",
        login_options,
    })
}
