//! `/api/v1/phone-numbers`: the table, one number, and its inbound agent.

use actix_web::{get, post, put, web, HttpRequest, HttpResponse};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::auth::{Editor, Reader};
use super::types::{
    PhoneNumber, PhoneNumberList, QualityEvent, QualityEventList, RegistrationAttempt,
    RegistrationAttemptList, SyncResult,
};
use super::{ApiError, Problem};
use crate::domain::page::{CursorKind, PageRequest};
use crate::domain::phone_number::{parse_platform_type, PhoneNumberFilter, Search};
use crate::domain::registration::RegisterMany;
use crate::domain::RegisterSkipReason;
use crate::domain::{AccountId, AgentId, NumberSort, PhoneNumberId, QualityRating};
use crate::service::phone_numbers as service;
use crate::service::{register_all, registration, sync};
use crate::state::AppState;

/// Filters, order and paging of the Phone Numbers table.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PhoneNumberQuery {
    /// Only numbers of this platform type (`CLOUD_API`, `ON_PREMISE`, `NOT_APPLICABLE`, or any
    /// other upper-case value Meta uses).
    #[param(example = "CLOUD_API")]
    pub platform_type: Option<String>,
    /// Only numbers of this quality rating.
    #[param(inline)]
    pub quality_rating: Option<QualityRating>,
    /// `true`: only numbers with an inbound agent; `false`: only those without.
    pub has_inbound_agent: Option<bool>,
    /// `true`: only numbers with a quality alert; `false`: only those without.
    pub quality_alert: Option<bool>,
    /// Matches the verified name (case-insensitive, anywhere) or, when it reads as a number, the
    /// phone number's digits (`+1 555` finds `15551234567`).
    pub q: Option<String>,
    /// Also list numbers removed from Meta (default false).
    pub include_removed: Option<bool>,
    /// Only numbers that can (`true`) or cannot (`false`) be registered.
    pub can_register: Option<bool>,
    /// Only numbers agents may (`true`) or may not (`false`) use: the outbound-number dropdown.
    pub can_use_as_outbound: Option<bool>,
    /// Only numbers of this connected account.
    pub whatsapp_account_id: Option<AccountId>,
    /// The order (default `phone_number`).
    #[param(inline)]
    pub sort: Option<NumberSort>,
    /// Page size (default 50).
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page (of the same `sort`).
    pub cursor: Option<String>,
}

/// Body of `PUT /phone-numbers/{id}/inbound-agent`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct AssignInboundAgent {
    /// The agent to answer this number's inbound messages; null to unassign.
    #[serde(deserialize_with = "super::required_nullable")]
    #[schema(required = true)]
    pub agent_id: Option<AgentId>,
}

crate::domain::object_only!(AssignInboundAgent);

/// List the workspace's phone numbers (the Phone Numbers table).
///
/// Sorted by number. Numbers removed in Meta are left out unless `include_removed=true`.
#[utoipa::path(
    tag = "phone-numbers",
    operation_id = "list_phone_numbers",
    context_path = "/api/v1",
    params(PhoneNumberQuery),
    responses(
        (status = 200, description = "One page of numbers", body = PhoneNumberList),
        (status = 400, description = "`validation_failed`: a filter value, `limit` or `cursor` is invalid", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/phone-numbers")]
pub async fn list_phone_numbers(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    query: web::Query<PhoneNumberQuery>,
) -> Result<HttpResponse, ApiError> {
    let query = query.into_inner();
    let filter = PhoneNumberFilter {
        platform_type: query
            .platform_type
            .as_deref()
            .map(parse_platform_type)
            .transpose()?,
        quality_rating: query.quality_rating,
        has_inbound_agent: query.has_inbound_agent,
        quality_alert: query.quality_alert,
        search: query
            .q
            .as_deref()
            .map(Search::checked)
            .transpose()?
            .flatten(),
        include_removed: query.include_removed.unwrap_or(false),
        whatsapp_account_id: query.whatsapp_account_id,
        can_register: query.can_register,
        can_use_as_outbound: query.can_use_as_outbound,
    };
    let sort = query.sort.unwrap_or(NumberSort::PhoneNumber);
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Text)?;
    let (records, next_cursor) =
        service::list(&state.db, &caller.workspace_id, filter, sort, page).await?;
    let page = PhoneNumberList {
        data: records.into_iter().map(PhoneNumber::from).collect(),
        next_cursor,
    };
    // About a kilobyte a number: written once into a buffer of that size, not grown as it goes.
    super::json_sized(&page, 1024 * page.data.len() + 64)
}

/// Get one phone number.
#[utoipa::path(
    tag = "phone-numbers",
    operation_id = "get_phone_number",
    context_path = "/api/v1",
    params(("id" = PhoneNumberId, Path, description = "Our id of the number")),
    responses(
        (status = 200, description = "The number", body = PhoneNumber),
        (status = 400, description = "`validation_failed`: the id is not a UUID", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`phone_number_not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/phone-numbers/{id}")]
pub async fn get_phone_number(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    id: web::Path<PhoneNumberId>,
) -> Result<web::Json<PhoneNumber>, ApiError> {
    let record = service::get(&state.db, &caller.workspace_id, id.into_inner()).await?;
    Ok(web::Json(record.into()))
}

/// Assign the inbound agent of a number, or clear it with `{"agent_id": null}`.
///
/// Any inbound WhatsApp message to the number is then answered by this agent. Only `CLOUD_API`
/// numbers can have one (409 `number_not_cloud_api`: register the number first). One agent per
/// number; an agent may answer several numbers. The change is recorded in the audit trail.
#[utoipa::path(
    tag = "phone-numbers",
    operation_id = "assign_inbound_agent",
    context_path = "/api/v1",
    params(("id" = PhoneNumberId, Path, description = "Our id of the number")),
    request_body = AssignInboundAgent,
    responses(
        (status = 200, description = "The number with its new inbound agent", body = PhoneNumber),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`: viewers may not change assignments", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`phone_number_not_found` or `agent_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`number_not_cloud_api` (register it first) or `number_removed`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[put("/phone-numbers/{id}/inbound-agent")]
pub async fn assign_inbound_agent(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    id: web::Path<PhoneNumberId>,
    body: web::Json<AssignInboundAgent>,
) -> Result<HttpResponse, ApiError> {
    let agent_id = body.into_inner().agent_id;
    let record =
        service::assign_inbound_agent(&state.db, &caller, id.into_inner(), agent_id).await?;
    Ok(HttpResponse::Ok().json(PhoneNumber::from(record)))
}

/// Paging of a number's history lists.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// Page size (default 50).
    #[param(minimum = 1)]
    #[serde(default, deserialize_with = "crate::domain::whole_number")]
    pub limit: Option<i64>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// Register the number to Meta's Cloud API (the Actions column's Register button).
///
/// Uses the number's stored two-step PIN (made once, reused on every attempt). One click makes
/// at most `registration.calls_per_click` (3) calls to Meta: transient Meta errors are retried
/// with backoff within the request; each call is an entry of the registration ledger. Meta allows
/// 10 register calls per number in 72 hours; the 11th is refused here before Meta would block the
/// number. Errors that need the user (wrong PIN, number not verified, expired token) come back at
/// once with Meta's code and what to do. Every error of this operation carries `phone_number`:
/// the number as it now is, so the row can be redrawn without another request.
#[utoipa::path(
    tag = "phone-numbers",
    operation_id = "register_phone_number",
    context_path = "/api/v1",
    params(
        ("id" = PhoneNumberId, Path, description = "Our id of the number"),
        ("Idempotency-Key" = Option<String>, Header, description = "Any key of the client's making (a UUID): the same key for the same number answers what the first click answered, and Meta is called once; the same key for another request is `idempotency_key_reused`"),
    ),
    responses(
        (status = 200, description = "Registered: `platform_type` is `CLOUD_API`, `registration.state` is `registered`", body = PhoneNumber),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`phone_number_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`registration_in_progress`, `already_registered` (also coexistence numbers), `number_removed`, `account_needs_reconnect`, or `idempotency_key_in_progress` (the first request with this key has not answered yet)", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`idempotency_key_reused`: the key was used for another request", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`registration_limit_reached`: wait `retry_after_seconds`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`meta_error`: Meta refused; `retryable`, `meta_error.code` and the detail say what to do", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/phone-numbers/{id}/register")]
pub async fn register_phone_number(
    state: web::Data<AppState>,
    request: HttpRequest,
    Editor(caller): Editor,
    id: web::Path<PhoneNumberId>,
) -> Result<HttpResponse, ApiError> {
    let id = id.into_inner();
    let work = async {
        match registration::register(&state, &caller, id).await {
            Ok(record) => HttpResponse::Ok().json(PhoneNumber::from(record)),
            Err(err) => {
                let err = ApiError::Service(err);
                let mut problem = err.problem();
                if let Ok(number) = service::get(&state.db, &caller.workspace_id, id).await {
                    problem.phone_number = Some(Box::new(number.into()));
                }
                err.response_with(problem)
            }
        }
    };
    super::idempotency::once(&state, &request, &caller, "register", b"", work).await
}

/// The number's registration ledger: every register call made to Meta, newest first.
#[utoipa::path(
    tag = "phone-numbers",
    operation_id = "list_registration_attempts",
    context_path = "/api/v1",
    params(("id" = PhoneNumberId, Path, description = "Our id of the number"), HistoryQuery),
    responses(
        (status = 200, description = "One page of attempts", body = RegistrationAttemptList),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`phone_number_not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/phone-numbers/{id}/registration-attempts")]
pub async fn list_registration_attempts(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    id: web::Path<PhoneNumberId>,
    query: web::Query<HistoryQuery>,
) -> Result<web::Json<RegistrationAttemptList>, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Time)?;
    let (rows, next_cursor) =
        service::registration_attempts(&state.db, &caller.workspace_id, id.into_inner(), page)
            .await?;
    Ok(web::Json(RegistrationAttemptList {
        data: rows.into_iter().map(RegistrationAttempt::from).collect(),
        next_cursor,
    }))
}

/// The number's quality-rating history, newest first.
#[utoipa::path(
    tag = "phone-numbers",
    operation_id = "list_quality_events",
    context_path = "/api/v1",
    params(("id" = PhoneNumberId, Path, description = "Our id of the number"), HistoryQuery),
    responses(
        (status = 200, description = "One page of quality changes", body = QualityEventList),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`phone_number_not_found`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[get("/phone-numbers/{id}/quality-events")]
pub async fn list_quality_events(
    state: web::Data<AppState>,
    Reader(caller): Reader,
    id: web::Path<PhoneNumberId>,
    query: web::Query<HistoryQuery>,
) -> Result<web::Json<QualityEventList>, ApiError> {
    let page = PageRequest::new(query.limit, query.cursor.as_deref(), CursorKind::Time)?;
    let (rows, next_cursor) =
        service::quality_events(&state.db, &caller.workspace_id, id.into_inner(), page).await?;
    Ok(web::Json(QualityEventList {
        data: rows.into_iter().map(QualityEvent::from).collect(),
        next_cursor,
    }))
}

/// Pull every connected account's numbers from Meta now.
///
/// New numbers appear, changed ones update, numbers gone from Meta get `removed_at`. Accounts that
/// fail are listed in `failed_accounts`; when every account fails, the first error is returned.
/// An account synced less than 30 seconds ago answers that sync's result without calling Meta
/// (Meta allows 200 Graph calls an hour per WABA), and one whose sync Meta failed (down, timing
/// out) less than 30 seconds ago answers that failure again, with `retry_after_seconds`.
#[utoipa::path(
    tag = "phone-numbers",
    operation_id = "sync_phone_numbers",
    context_path = "/api/v1",
    responses(
        (status = 200, description = "What changed", body = SyncResult),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`sync_in_progress` (the only account is being synced) or `account_needs_reconnect` (every account's token was rejected)", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`waba_call_budget_spent`: this WABA used this hour's share of Meta's call limit; wait `retry_after_seconds`", body = Problem, content_type = "application/problem+json"),
        (status = 502, description = "`meta_error`: every account failed", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/phone-numbers/sync")]
pub async fn sync_phone_numbers(
    state: web::Data<AppState>,
    Editor(caller): Editor,
) -> Result<web::Json<SyncResult>, ApiError> {
    let mut result = sync::sync_workspace(&state, &caller).await?;
    if !result.failed.is_empty() && result.failed.len() == result.accounts {
        return Err(result.failed.swap_remove(0).1.into());
    }
    Ok(web::Json(SyncResult::new(result.counts, result.failed)))
}

/// A number queued for registration.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct QueuedRegistration {
    pub id: PhoneNumberId,
    pub display_phone_number: String,
}

/// A number not queued, and why.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct SkippedRegistration {
    pub id: PhoneNumberId,
    /// Null when no such number exists in the workspace.
    pub display_phone_number: Option<String>,
    pub reason: RegisterSkipReason,
    /// For `limit_reached`: seconds until Meta's window allows a register call again.
    pub retry_after_seconds: Option<u64>,
}

/// What `POST /phone-numbers/register` queued and skipped.
#[derive(Debug, serde::Serialize, ToSchema)]
pub struct RegisterManyResult {
    pub queued: Vec<QueuedRegistration>,
    pub skipped: Vec<SkippedRegistration>,
}

/// Register every pending number: `number_ids`, or `all_pending: true` for every number of the
/// workspace not fully on the Cloud API.
///
/// Each eligible number is queued and registered through the same guarded path as its Register
/// button (one attempt at a time, Meta's 10 calls in 72 hours, the ledger, each WABA's hourly
/// budget), one WABA's numbers one after another. The answer comes at once (202) and lists what
/// was queued and what was skipped and why; progress arrives on the live stream
/// (`registration.started`, `registration.succeeded`, `registration.failed`) and in each
/// number's `registration`.
#[utoipa::path(
    tag = "phone-numbers",
    operation_id = "register_phone_numbers",
    context_path = "/api/v1",
    request_body = RegisterMany,
    responses(
        (status = 202, description = "What was queued and what was skipped", body = RegisterManyResult),
        (status = 400, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "`forbidden`", body = Problem, content_type = "application/problem+json"),
    ),
    security(("bearer" = []))
)]
#[post("/phone-numbers/register")]
pub async fn register_phone_numbers(
    state: web::Data<AppState>,
    Editor(caller): Editor,
    body: web::Json<RegisterMany>,
) -> Result<HttpResponse, ApiError> {
    let selection = body
        .into_inner()
        .selection()
        .map_err(crate::service::ServiceError::from)?;
    let (queued, skipped) = register_all::queue(&state, &caller, selection).await?;
    Ok(HttpResponse::Accepted().json(RegisterManyResult {
        queued: queued
            .into_iter()
            .map(|q| QueuedRegistration {
                id: q.id,
                display_phone_number: q.display_phone_number,
            })
            .collect(),
        skipped: skipped
            .into_iter()
            .map(|s| SkippedRegistration {
                id: s.id,
                display_phone_number: s.display_phone_number,
                reason: s.reason,
                retry_after_seconds: s.retry_after_seconds,
            })
            .collect(),
    }))
}
