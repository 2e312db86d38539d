//! What the generated document says beyond what utoipa derives, applied in one pass:
//! - every field of a response body is `required` (the server always sends it, null where empty);
//! - each error response lists the problem codes it can carry, as an enum on `code`;
//! - every 429 declares `Retry-After` and a required `retry_after_seconds`;
//! - every operation declares the 500 and 503 any request can end in;
//! - links from the operations that return ids to those that take them (Schemathesis' stateful
//!   phase and the SPA's readers follow them);
//! - the input rules the server checks (`domain::text`, limits, cursor grammars), declared on the
//!   fields and parameters they check, from the same constants.

use serde_json::{json, Map, Value};

use super::ProblemCode;
use crate::domain::outbound;
use crate::domain::page::{CursorKind, MAX_LIMIT};
use crate::domain::registration::MAX_NUMBERS_PER_REQUEST;
use crate::domain::responder::{
    UrlPolicy, MAX_FAQ_ENTRIES, MAX_FAQ_KEYWORDS, MAX_HISTORY_MESSAGES,
};
use crate::domain::text::{self, TextRule};

/// `(schema, pointer to the property inside it, rule)`.
const TEXT_FIELDS: &[(&str, &str, &TextRule)] = &[
    ("SendMessage", "/properties/to", &text::MESSAGE_TO),
    ("SendMessage", "/properties/text", &text::MESSAGE_TEXT),
    ("TemplateInput", "/properties/name", &text::TEMPLATE_NAME),
    (
        "TemplateInput",
        "/properties/language",
        &text::TEMPLATE_LANGUAGE,
    ),
    ("CreateAgent", "/properties/name", &text::AGENT_NAME),
    (
        "CreateAgent",
        "/properties/description",
        &text::AGENT_DESCRIPTION,
    ),
    ("UpdateAgent", "/properties/name", &text::AGENT_NAME),
    (
        "UpdateAgent",
        "/properties/description",
        &text::AGENT_DESCRIPTION,
    ),
    ("FaqEntry", "/properties/keywords/items", &text::FAQ_KEYWORD),
    ("FaqEntry", "/properties/answer", &text::FAQ_ANSWER),
    ("FaqSettings", "/properties/fallback", &text::FAQ_FALLBACK),
    (
        "OpenAiInput",
        "/properties/base_url",
        &text::OPENAI_BASE_URL,
    ),
    ("OpenAiInput", "/properties/model", &text::OPENAI_MODEL),
    ("OpenAiInput", "/properties/api_key", &text::OPENAI_API_KEY),
    (
        "OpenAiInput",
        "/properties/system_prompt",
        &text::OPENAI_SYSTEM_PROMPT,
    ),
    ("WebhookInput", "/properties/url", &text::WEBHOOK_URL),
    ("WebhookInput", "/properties/secret", &text::WEBHOOK_SECRET),
    (
        "InboundMessageInput",
        "/properties/phone_number_id",
        &text::META_PHONE_NUMBER_ID,
    ),
    (
        "InboundMessageInput",
        "/properties/from",
        &text::SANDBOX_FROM,
    ),
    (
        "InboundMessageInput",
        "/properties/text",
        &text::MESSAGE_TEXT,
    ),
];

/// `(operation, query parameter, rule)`.
const TEXT_PARAMETERS: &[(&str, &str, &TextRule)] = &[
    (
        "list_phone_numbers",
        "platform_type",
        &text::PLATFORM_TYPE_FILTER,
    ),
    ("list_phone_numbers", "q", &text::SEARCH),
    ("list_agents", "q", &text::SEARCH),
    (
        "register_phone_number",
        "Idempotency-Key",
        &text::IDEMPOTENCY_KEY,
    ),
    (
        "send_agent_message",
        "Idempotency-Key",
        &text::IDEMPOTENCY_KEY,
    ),
    ("stream_events", "Last-Event-ID", &text::LAST_EVENT_ID),
];

/// The lists and how they are ordered (which decides their cursors' grammar).
const LISTS: &[(&str, CursorKind)] = &[
    ("list_phone_numbers", CursorKind::Text),
    ("list_agents", CursorKind::Text),
    ("list_registration_attempts", CursorKind::Time),
    ("list_quality_events", CursorKind::Time),
    ("list_audit_events", CursorKind::Time),
    ("list_conversations", CursorKind::Time),
    ("list_conversation_messages", CursorKind::Time),
    ("list_webhook_jobs", CursorKind::Time),
];

/// Response bodies: every property they declare is always sent.
const RESPONSE_SCHEMAS: &[&str] = &[
    "PhoneNumber",
    "PhoneNumberList",
    "QualityAlert",
    "Registration",
    "AgentSummary",
    "NumberSummary",
    "Agent",
    "AgentList",
    "AuditEvent",
    "AuditEventList",
    "WhatsAppAccount",
    "WhatsAppAccountList",
    "ConnectedAccount",
    "SyncCounts",
    "SyncResult",
    "FailedSync",
    "SignupConfig",
    "SignupLoginOptions",
    "SignupExtras",
    "RegistrationAttempt",
    "RegistrationAttemptList",
    "QualityEvent",
    "QualityEventList",
    "MetaErrorBody",
    "SandboxMessage",
    "SandboxMessageBody",
    "SandboxMessageList",
    "Me",
    "Customer",
    "Conversation",
    "ConversationList",
    "RegisterManyResult",
    "QueuedRegistration",
    "SkippedRegistration",
    "Message",
    "MessageTemplate",
    "MessageError",
    "MessageList",
    "WebhookJob",
    "WebhookJobList",
    "PlayedMessage",
    "Health",
    "Readiness",
    // Shown only (the input forms are OpenAiInput and WebhookInput). FaqSettings is not here: the
    // input shares it, and may leave `fallback` out.
    "OpenAiSettings",
    "WebhookSettings",
];

/// `(from operation, status, link name, to operation, where the id is in the response body)`.
const LINKS: &[(&str, &str, &str, &str, &str)] = &[
    ("create_agent", "201", "GetAgent", "get_agent", "/id"),
    ("create_agent", "201", "UpdateAgent", "update_agent", "/id"),
    ("create_agent", "201", "DeleteAgent", "delete_agent", "/id"),
    // Not `create_agent` -> `set_whatsapp_outbound_number`: that body names a number, and a 404
    // for the number right after a POST reads, to Schemathesis, as the new agent gone missing.
    // The operation is reached from `get_agent` and `list_agents` instead.
    (
        "list_agents",
        "200",
        "GetFirstAgent",
        "get_agent",
        "/data/0/id",
    ),
    (
        "list_agents",
        "200",
        "UpdateFirstAgent",
        "update_agent",
        "/data/0/id",
    ),
    (
        "list_agents",
        "200",
        "SetFirstAgentsOutboundNumber",
        "set_whatsapp_outbound_number",
        "/data/0/id",
    ),
    ("get_agent", "200", "UpdateAgent", "update_agent", "/id"),
    (
        "get_agent",
        "200",
        "SetOutboundNumber",
        "set_whatsapp_outbound_number",
        "/id",
    ),
    ("update_agent", "200", "GetAgent", "get_agent", "/id"),
    (
        "list_phone_numbers",
        "200",
        "GetFirstNumber",
        "get_phone_number",
        "/data/0/id",
    ),
    (
        "list_phone_numbers",
        "200",
        "AssignFirstNumbersAgent",
        "assign_inbound_agent",
        "/data/0/id",
    ),
    (
        "list_phone_numbers",
        "200",
        "RegisterFirstNumber",
        "register_phone_number",
        "/data/0/id",
    ),
    (
        "list_phone_numbers",
        "200",
        "FirstNumbersAttempts",
        "list_registration_attempts",
        "/data/0/id",
    ),
    (
        "list_phone_numbers",
        "200",
        "FirstNumbersQualityEvents",
        "list_quality_events",
        "/data/0/id",
    ),
    (
        "get_phone_number",
        "200",
        "AssignAgent",
        "assign_inbound_agent",
        "/id",
    ),
    (
        "get_phone_number",
        "200",
        "Register",
        "register_phone_number",
        "/id",
    ),
    (
        "get_phone_number",
        "200",
        "RegistrationAttempts",
        "list_registration_attempts",
        "/id",
    ),
    (
        "get_phone_number",
        "200",
        "QualityEvents",
        "list_quality_events",
        "/id",
    ),
    (
        "connect_whatsapp_account",
        "201",
        "SyncAccount",
        "sync_whatsapp_account",
        "/id",
    ),
    (
        "connect_whatsapp_account",
        "201",
        "DisconnectAccount",
        "disconnect_whatsapp_account",
        "/id",
    ),
    (
        "list_whatsapp_accounts",
        "200",
        "SyncFirstAccount",
        "sync_whatsapp_account",
        "/data/0/id",
    ),
    (
        "list_conversations",
        "200",
        "FirstConversationsMessages",
        "list_conversation_messages",
        "/data/0/id",
    ),
];

/// Applies every refinement to the document (as JSON).
pub fn refine(doc: &mut Value, urls: UrlPolicy) {
    if let Some(schemas) = doc
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        for name in RESPONSE_SCHEMAS {
            if let Some(schema) = schemas.get_mut(*name) {
                require_all(schema);
            }
        }
        declare_input_rules(schemas, urls);
        declare_new_responder(schemas);
    }
    declare_parameter_rules(doc);
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, operations) in paths.iter_mut() {
        let Some(operations) = operations.as_object_mut() else {
            continue;
        };
        for operation in operations.values_mut() {
            let has_body = operation.get("requestBody").is_some();
            let Some(responses) = operation
                .get_mut("responses")
                .and_then(Value::as_object_mut)
            else {
                continue;
            };
            if path.starts_with("/api/") {
                add_server_errors(responses);
            }
            if has_body {
                add_body_errors(responses);
            }
            for (status, response) in responses.iter_mut() {
                if status.starts_with('4') || status.starts_with('5') {
                    refine_problem(status, response);
                }
            }
        }
    }
    for (from, status, name, to, pointer) in LINKS {
        let link = json!({
            "operationId": to,
            "parameters": {"id": format!("$response.body#{pointer}")},
        });
        if let Some(response) = find_response(paths, from, status) {
            let links = response
                .as_object_mut()
                .map(|r| r.entry("links").or_insert_with(|| json!({})));
            if let Some(Value::Object(links)) = links {
                links.insert((*name).to_owned(), link);
            }
        }
    }
}

/// Marks every property of an object schema required (also inside `allOf`).
fn require_all(schema: &mut Value) {
    if let Some(parts) = schema.get_mut("allOf").and_then(Value::as_array_mut) {
        for part in parts {
            require_all(part);
        }
    }
    let names: Vec<Value> = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().map(Value::String).collect())
        .unwrap_or_default();
    if !names.is_empty() {
        schema["required"] = Value::Array(names);
    }
}

/// 500 and 503 can answer any request; say so where the operation does not already.
fn add_server_errors(responses: &mut Map<String, Value>) {
    // (413 is added by `add_body_errors` where a body is taken.)
    for (status, description) in [
        (
            "500",
            "`internal_error`: a bug; the cause is logged, never shown",
        ),
        (
            "503",
            "`service_unavailable`: the database cannot serve now; retry shortly",
        ),
    ] {
        responses.entry(status).or_insert_with(|| {
            json!({
                "description": description,
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
            })
        });
    }
}

/// A body larger than the server reads is refused before it is parsed.
fn add_body_errors(responses: &mut Map<String, Value>) {
    responses.entry("413").or_insert_with(|| {
        json!({
            "description": format!("`payload_too_large`: the body is larger than the server reads ({} KiB)", super::JSON_LIMIT / 1024),
            "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
        })
    });
}

/// Narrows a problem response to the codes its description names, and describes 429's wait.
fn refine_problem(status: &str, response: &mut Value) {
    let description = response["description"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let codes: Vec<&str> = description
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|word| ProblemCode::parse(word).is_ok())
        .collect();
    let Some(content) = response
        .pointer_mut("/content/application~1problem+json")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    let mut narrowed = json!({"type": "object", "properties": {}});
    if !codes.is_empty() {
        narrowed["properties"]["code"] = json!({"type": "string", "enum": codes});
        narrowed["required"] = json!(["code"]);
    }
    if status == "429" {
        narrowed["properties"]["retry_after_seconds"] = json!({"type": "integer", "minimum": 0});
        narrowed["properties"]["retryable"] = json!({"type": "boolean"});
        narrowed["required"] = json!(["code", "retry_after_seconds", "retryable"]);
    }
    content.insert(
        "schema".into(),
        json!({"allOf": [{"$ref": "#/components/schemas/Problem"}, narrowed]}),
    );
    if status == "429" {
        response["headers"] = json!({
            "Retry-After": {
                "description": "Seconds to wait before trying again (the same as `retry_after_seconds`).",
                "required": true,
                "schema": {"type": "integer", "minimum": 0}
            }
        });
    }
}

fn find_response<'a>(
    paths: &'a mut Map<String, Value>,
    operation_id: &str,
    status: &str,
) -> Option<&'a mut Value> {
    paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut())
        .find(|op| op["operationId"] == operation_id)
        .and_then(|op| op.pointer_mut(&format!("/responses/{status}")))
}

/// Writes a text rule's bounds and pattern onto a string schema.
fn apply_text_rule(schema: &mut Value, rule: &TextRule) {
    if rule.min_chars > 0 {
        schema["minLength"] = json!(rule.min_chars);
    }
    schema["maxLength"] = json!(rule.max_chars);
    if let Some(pattern) = rule.pattern {
        schema["pattern"] = json!(pattern);
    }
}

fn declare_input_rules(schemas: &mut Map<String, Value>, urls: UrlPolicy) {
    for (schema, pointer, rule) in TEXT_FIELDS {
        if let Some(property) = schemas
            .get_mut(*schema)
            .and_then(|s| s.pointer_mut(pointer))
        {
            apply_text_rule(property, rule);
            // An agent URL as this server takes it: plain `http` only where the policy allows it.
            if rule.pattern == Some(text::HTTP_URL_PATTERN) {
                property["pattern"] = json!(urls.url_pattern());
            }
        }
    }
    if let Some(faq) = schemas.get_mut("FaqSettings") {
        faq["properties"]["entries"]["maxItems"] = json!(MAX_FAQ_ENTRIES);
        // At least one entry, or a fallback that says something.
        faq["anyOf"] = json!([
            {"properties": {"entries": {"minItems": 1}}},
            {"required": ["fallback"], "properties": {"fallback": {"type": "string", "pattern": text::NOT_BLANK_TEXT_PATTERN}}}
        ]);
    }
    if let Some(entry) = schemas.get_mut("FaqEntry") {
        entry["properties"]["keywords"]["minItems"] = json!(1);
        entry["properties"]["keywords"]["maxItems"] = json!(MAX_FAQ_KEYWORDS);
    }
    if let Some(many) = schemas.get_mut("RegisterMany") {
        // Exactly one of the two; `all_pending` only as `true`.
        many["properties"]["number_ids"]["minItems"] = json!(1);
        many["properties"]["number_ids"]["maxItems"] = json!(MAX_NUMBERS_PER_REQUEST);
        many["properties"]["all_pending"]["enum"] = json!([true]);
        many["oneOf"] = json!([{"required": ["number_ids"]}, {"required": ["all_pending"]}]);
    }
    if let Some(send) = schemas.get_mut("SendMessage") {
        // Exactly one of the two.
        send["oneOf"] = json!([{"required": ["text"]}, {"required": ["template"]}]);
    }
    if let Some(template) = schemas.get_mut("TemplateInput") {
        let mut kind = json!({"type": "string"});
        apply_text_rule(&mut kind, &text::TEMPLATE_COMPONENT_TYPE);
        template["properties"]["components"]["maxItems"] = json!(outbound::MAX_COMPONENTS);
        template["properties"]["components"]["items"] =
            json!({"type": "object", "required": ["type"], "properties": {"type": kind}});
    }
    if let Some(openai) = schemas.get_mut("OpenAiInput") {
        openai["properties"]["history_messages"]["maximum"] = json!(MAX_HISTORY_MESSAGES);
    }
}

fn declare_parameter_rules(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    let operations = paths
        .values_mut()
        .filter_map(Value::as_object_mut)
        .flat_map(|ops| ops.values_mut());
    for operation in operations {
        let id = operation["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(parameters) = operation
            .get_mut("parameters")
            .and_then(Value::as_array_mut)
        else {
            continue;
        };
        for parameter in parameters {
            let name = parameter["name"].as_str().unwrap_or_default().to_owned();
            for (operation, param, rule) in TEXT_PARAMETERS {
                if *operation == id && *param == name {
                    apply_text_rule(&mut parameter["schema"], rule);
                }
            }
            if name == "cursor" {
                if let Some((_, kind)) = LISTS.iter().find(|(op, _)| *op == id) {
                    parameter["schema"]["pattern"] = json!(kind.pattern());
                    parameter["description"] = json!(
                        "`next_cursor` of the previous page. Any value of this form is a position: \
                         the list continues after it."
                    );
                }
            }
            if name == "limit" {
                parameter["schema"]["maximum"] = json!(MAX_LIMIT);
            }
        }
    }
}

/// A new agent has no secret to keep, so its responder's secret is required: the create body gets
/// its own responder schemas (`NewResponderInput`), the update body keeps the optional ones.
fn declare_new_responder(schemas: &mut Map<String, Value>) {
    for (from, to, secret) in [
        ("OpenAiInput", "NewOpenAiInput", "api_key"),
        ("WebhookInput", "NewWebhookInput", "secret"),
    ] {
        let Some(mut schema) = schemas.get(from).cloned() else {
            continue;
        };
        if let Some(required) = schema["required"].as_array_mut() {
            required.push(json!(secret));
        }
        schema["properties"][secret]["type"] = json!("string");
        schema["properties"][secret]["description"] = json!("Write-only.");
        schemas.insert(to.to_owned(), schema);
    }
    let Some(responder) = schemas.get("ResponderInput") else {
        return;
    };
    let text = responder
        .to_string()
        .replace("/OpenAiInput\"", "/NewOpenAiInput\"")
        .replace("/WebhookInput\"", "/NewWebhookInput\"");
    if let Ok(mut new) = serde_json::from_str::<Value>(&text) {
        new["description"] = json!("How a new agent answers; secrets are required.");
        schemas.insert("NewResponderInput".into(), new);
        if let Some(create) = schemas.get_mut("CreateAgent") {
            create["properties"]["responder"] =
                json!({"$ref": "#/components/schemas/NewResponderInput"});
        }
    }
}
