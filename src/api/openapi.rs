//! The OpenAPI 3.1 document the SPA team builds against (committed at `openapi/openapi.json`).

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::{
    accounts, agents, audit, conversations, events, health, me, phone_numbers, sandbox, types,
    webhooks, Problem,
};
use crate::domain::responder::UrlPolicy;
use crate::domain::{self, responder};

/// The whole API.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "whatsapp-numbers",
        version = "1",
        description = "Manage WhatsApp Business phone numbers: the numbers table (verified name, platform type, \
Meta's phone-number id, quality rating), registration to Meta's Cloud API, the one AI agent that answers each \
number's inbound messages, and the number each agent sends outbound messages from. Numbers are never typed in: \
they come from Meta when an account is connected and stay current through sync.\n\n\
Conventions: JSON with snake_case keys; timestamps RFC 3339 UTC; our ids are UUIDs; `phone_number_id` is \
always Meta's id of a number and `number_id` our own. Lists are \
`{\"data\": [...], \"next_cursor\": \"...\" | null}` with `?limit=` (default 50, max 200) and `?cursor=`. \
Errors are RFC 9457 `application/problem+json` with a stable `code`; each response lists the codes it can \
carry. A method a path does not support answers 405 `method_not_allowed` with `Allow`. Every `/api/v1` call needs \
`Authorization: Bearer <JWT>` (HS256; claims `sub`, `workspace_id`, `role` = `editor` | `viewer`, `exp`); \
anything of another workspace answers 404 exactly as if it did not exist."
    ),
    paths(
        phone_numbers::list_phone_numbers,
        phone_numbers::get_phone_number,
        phone_numbers::assign_inbound_agent,
        phone_numbers::register_phone_number,
        phone_numbers::list_registration_attempts,
        phone_numbers::list_quality_events,
        phone_numbers::sync_phone_numbers,
        accounts::connect_whatsapp_account,
        accounts::list_whatsapp_accounts,
        accounts::sync_whatsapp_account,
        accounts::disconnect_whatsapp_account,
        accounts::get_signup_config,
        agents::list_agents,
        agents::create_agent,
        agents::get_agent,
        agents::update_agent,
        agents::delete_agent,
        agents::set_whatsapp_outbound_number,
        phone_numbers::register_phone_numbers,
        agents::send_agent_message,
        events::stream_events,
        audit::list_audit_events,
        health::healthz,
        health::readyz,
        health::metrics,
        me::get_me,
        sandbox::list_sandbox_messages,
        sandbox::play_sandbox_inbound_message,
        conversations::list_conversations,
        conversations::list_conversation_messages,
        conversations::list_webhook_jobs,
        webhooks::verify_whatsapp_webhook,
        webhooks::receive_whatsapp_webhook,
    ),
    components(schemas(
        Problem,
        super::ProblemCode,
        domain::Role,
        domain::QualityRating,
        domain::PlatformType,
        domain::RegistrationState,
        domain::AttemptOutcome,
        domain::QualityEventSource,
        domain::AccountStatus,
        domain::AuditAction,
        domain::MetaMode,
        domain::ResponderKind,
        domain::BlockedReason,
        domain::NumberSort,
        domain::MessageDirection,
        domain::MessageStatus,
        domain::CustomerId,
        domain::ConversationId,
        domain::MessageId,
        domain::PhoneNumberId,
        domain::AgentId,
        domain::AccountId,
        domain::AttemptId,
        domain::QualityEventId,
        domain::AuditEventId,
        domain::WorkspaceId,
        domain::MetaPhoneNumberId,
        domain::WabaId,
        crate::service::AuditDetail,
        crate::service::sync::SyncCounts,
        me::Me,
        accounts::ConnectAccount,
        types::SignupLoginOptions,
        types::SignupExtras,
        sandbox::SandboxMessageBody,
        types::PhoneNumber,
        types::QualityAlert,
        domain::QualityAlertReason,
        types::PhoneNumberList,
        types::Registration,
        types::AgentSummary,
        types::NumberSummary,
        types::Agent,
        types::AgentList,
        types::AuditEvent,
        types::AuditEventList,
        types::WhatsAppAccount,
        types::WhatsAppAccountList,
        types::ConnectedAccount,
        types::SyncResult,
        types::FailedSync,
        types::SignupConfig,
        types::RegistrationAttempt,
        types::RegistrationAttemptList,
        types::QualityEvent,
        types::QualityEventList,
        super::problem::MetaErrorBody,
        sandbox::SandboxMessage,
        sandbox::SandboxMessageList,
        sandbox::InboundMessageInput,
        sandbox::PlayedMessage,
        conversations::Customer,
        conversations::Conversation,
        conversations::ConversationList,
        conversations::Message,
        conversations::MessageError,
        conversations::MessageList,
        conversations::WebhookJob,
        conversations::WebhookJobList,
        domain::JobKind,
        domain::JobState,
        responder::Responder,
        responder::ResponderInput,
        responder::FaqSettings,
        responder::FaqEntry,
        responder::OpenAiSettings,
        responder::OpenAiInput,
        responder::WebhookSettings,
        responder::WebhookInput,
    )),
    modifiers(&BearerAuth),
    tags(
        (name = "phone-numbers", description = "The Phone Numbers table and each number's inbound agent"),
        (name = "agents", description = "AI chat agents and the number each sends outbound messages from"),
        (name = "whatsapp-accounts", description = "Connecting WhatsApp Business Accounts (Embedded Signup or system-user token)"),
        (name = "audit", description = "Who assigned what, and when"),
        (name = "conversations", description = "What customers wrote to the numbers and what agents answered"),
        (name = "webhooks", description = "Meta's webhook: the verification handshake and signed deliveries"),
        (name = "events", description = "Live updates of the workspace (Server-Sent Events)"),
        (name = "auth", description = "Who the caller is"),
        (name = "operations", description = "Health, readiness and metrics"),
    )
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The whole document as JSON: what utoipa derives, refined by [`super::contract`], for a server
/// whose agent URLs follow `urls`.
pub fn spec_json(urls: UrlPolicy) -> serde_json::Value {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    super::contract::refine(&mut doc, urls);
    doc
}

/// The document as committed: pretty JSON with a trailing newline. It describes a server outside
/// development mode (agent URLs `https` only); a development server serves its own.
pub fn document() -> String {
    let mut json =
        serde_json::to_string_pretty(&spec_json(UrlPolicy::default())).unwrap_or_default();
    json.push('\n');
    json
}
