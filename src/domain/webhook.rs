//! Meta's webhook deliveries, read: a delivery becomes one job per message, status or other
//! change, each with the key that makes a redelivery a no-op, and the key that keeps one
//! conversation's messages in order. Then what a job's payload says, read leniently: Meta adds and
//! drops fields often (reference §4, §12).

use serde_json::{json, Value};

use super::{JobKind, MessageStatus};

/// Longest dedup key stored as is; longer ones are stored as their hash.
const MAX_KEY_LEN: usize = 200;

/// One unit of work taken from a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewJob {
    /// Equal for a redelivery of the same message (`message:<wamid>`), status
    /// (`status:<wamid>:<status>`) or change (`<field>:<hash>`).
    pub dedup_key: String,
    pub kind: JobKind,
    /// `entry[].id`: the WABA.
    pub waba_id: Option<String>,
    /// `metadata.phone_number_id`: which of our numbers it concerns.
    pub meta_phone_number_id: Option<String>,
    /// Jobs with the same key run one at a time, in the order they arrived: one customer on one
    /// number.
    pub order_key: Option<String>,
    /// The unit with the context it needs (`metadata`, the matching contact), as JSON.
    pub payload: String,
}

/// A delivery that is not Meta's JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the delivery is not a JSON object")]
pub struct NotADelivery;

/// Reads `value` as text whether Meta sent a string or a number; an empty string is absent. A NUL
/// (which a customer can type) becomes U+FFFD ([`super::text::storable`]).
fn text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(super::text::storable(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn key(prefix: &str, id: &str) -> String {
    let key = format!("{prefix}:{id}");
    if key.len() <= MAX_KEY_LEN {
        key
    } else {
        format!("{prefix}#{}", crate::crypto::sha256_hex(id.as_bytes()))
    }
}

/// Splits a delivery into jobs. Every entry, change, message and status is kept; a delivery of
/// another `object` than a WhatsApp Business Account has none.
pub fn jobs_of_delivery(body: &[u8]) -> Result<Vec<NewJob>, NotADelivery> {
    let delivery: Value = serde_json::from_slice(body).map_err(|_| NotADelivery)?;
    let Some(object) = delivery.as_object() else {
        return Err(NotADelivery);
    };
    if object
        .get("object")
        .and_then(Value::as_str)
        .is_some_and(|o| o != "whatsapp_business_account")
    {
        return Ok(Vec::new());
    }
    let mut jobs = Vec::new();
    let entries = object.get("entry").and_then(Value::as_array);
    for entry in entries.into_iter().flatten() {
        let waba_id = text(entry.get("id"));
        let time = entry.get("time").cloned().unwrap_or(Value::Null);
        let changes = entry.get("changes").and_then(Value::as_array);
        for change in changes.into_iter().flatten() {
            let field = text(change.get("field")).unwrap_or_else(|| "unknown".into());
            let field = field.as_str();
            let value = change.get("value").cloned().unwrap_or(Value::Null);
            if field == "messages" {
                messages_jobs(&waba_id, &value, &mut jobs);
                continue;
            }
            let kind = match field {
                "phone_number_quality_update" => JobKind::QualityUpdate,
                "phone_number_name_update" => JobKind::NameUpdate,
                "account_update" => JobKind::AccountUpdate,
                _ => JobKind::Other,
            };
            let payload = json!({"waba_id": waba_id, "time": time, "field": field, "value": value});
            // The same change redelivered hashes the same (serde_json orders keys); the same
            // event on another day differs in `time`.
            let hash = crate::crypto::sha256_hex(payload.to_string().as_bytes());
            jobs.push(NewJob {
                dedup_key: key(field, &hash),
                kind,
                waba_id: waba_id.clone(),
                meta_phone_number_id: None,
                order_key: None,
                payload: payload.to_string(),
            });
        }
    }
    Ok(jobs)
}

/// The sender of a message as one key: the BSUID when Meta gave one, else the phone number.
fn sender_key(message: &Value, contact: Option<&Value>) -> Option<String> {
    text(message.get("from_user_id"))
        .or_else(|| contact.and_then(|c| text(c.get("user_id"))))
        .or_else(|| text(message.get("from")))
        .or_else(|| contact.and_then(|c| text(c.get("wa_id"))))
}

/// The contact of `contacts[]` that sent `message`: the one with its BSUID or phone number, or the
/// only one.
fn contact_of<'a>(message: &Value, contacts: &'a [Value]) -> Option<&'a Value> {
    let from_user = text(message.get("from_user_id"));
    let from = text(message.get("from"));
    contacts
        .iter()
        .find(|c| {
            let user = text(c.get("user_id"));
            let wa_id = text(c.get("wa_id"));
            (user.is_some() && user == from_user) || (wa_id.is_some() && wa_id == from)
        })
        .or(if contacts.len() == 1 {
            contacts.first()
        } else {
            None
        })
}

/// A message job's payload, written from the delivery without copying it.
#[derive(serde::Serialize)]
struct MessagePayload<'a> {
    metadata: &'a Value,
    contact: Option<&'a Value>,
    message: &'a Value,
}

/// A status job's payload.
#[derive(serde::Serialize)]
struct StatusPayload<'a> {
    metadata: &'a Value,
    status: &'a Value,
}

fn messages_jobs(waba_id: &Option<String>, value: &Value, jobs: &mut Vec<NewJob>) {
    let metadata = value.get("metadata").cloned().unwrap_or(Value::Null);
    let number = text(metadata.get("phone_number_id"));
    let contacts: &[Value] = value
        .get("contacts")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for message in value
        .get("messages")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let contact = contact_of(message, contacts);
        let payload = serde_json::to_string(&MessagePayload {
            metadata: &metadata,
            contact,
            message,
        })
        .unwrap_or_default();
        let dedup_key = match text(message.get("id")) {
            Some(id) => key("message", &id),
            None => key("message", &crate::crypto::sha256_hex(payload.as_bytes())),
        };
        let order_key = match (&number, sender_key(message, contact)) {
            (Some(number), Some(sender)) => Some(format!("{number}/{sender}")),
            _ => None,
        };
        jobs.push(NewJob {
            dedup_key,
            kind: JobKind::Message,
            waba_id: waba_id.clone(),
            meta_phone_number_id: number.clone(),
            order_key,
            payload,
        });
    }
    for status in value
        .get("statuses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let payload = serde_json::to_string(&StatusPayload {
            metadata: &metadata,
            status,
        })
        .unwrap_or_default();
        let id = text(status.get("id")).unwrap_or_default();
        let state = text(status.get("status")).unwrap_or_default();
        jobs.push(NewJob {
            dedup_key: key("status", &format!("{id}:{state}")),
            kind: JobKind::Status,
            waba_id: waba_id.clone(),
            meta_phone_number_id: number.clone(),
            order_key: None,
            payload,
        });
    }
    // Errors about no one message (system or app level) arrive beside them: kept, as Meta asks.
    if let Some(errors) = value.get("errors").filter(|e| e.is_array()) {
        let payload = json!({"waba_id": waba_id, "field": "messages", "metadata": metadata, "errors": errors});
        let hash = crate::crypto::sha256_hex(payload.to_string().as_bytes());
        jobs.push(NewJob {
            dedup_key: key("errors", &hash),
            kind: JobKind::Other,
            waba_id: waba_id.clone(),
            meta_phone_number_id: number,
            order_key: None,
            payload: payload.to_string(),
        });
    }
}

/// Who wrote: Meta's business-scoped user id, the phone number when Meta shared it, and what the
/// profile shows. At least one of `user_id` and `phone` is present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub user_id: Option<String>,
    pub phone: Option<String>,
    pub profile_name: Option<String>,
    pub username: Option<String>,
}

/// A customer's message, as a job holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InboundMessage {
    pub meta_phone_number_id: String,
    pub wamid: String,
    pub sender: Sender,
    /// Meta's `type`: `text`, `image`, `interactive`, `system`, ...
    pub kind: String,
    /// What the customer said, where a text can be read from the message (a text's body, a
    /// caption, a button's title); `None` for a sticker or a location.
    pub text: Option<String>,
    /// Unix seconds, as Meta says it was sent.
    pub timestamp: Option<i64>,
    /// For `system` `user_changed_number` / `user_changed_user_id`: the identity the customer had.
    pub identity_change: Option<IdentityChange>,
}

/// A customer's move to a new identity (a new phone number, hence a new BSUID).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdentityChange {
    pub previous_user_id: Option<String>,
    pub previous_phone: Option<String>,
    pub new_user_id: Option<String>,
    pub new_phone: Option<String>,
}

/// Why a job's payload cannot be acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is not JSON")]
    NotJson,
    #[error("the message has no {0}")]
    Missing(&'static str),
}

fn payload(text: &str) -> Result<Value, PayloadError> {
    serde_json::from_str(text).map_err(|_| PayloadError::NotJson)
}

/// Reads a message job's payload.
pub fn inbound_message(payload_text: &str) -> Result<InboundMessage, PayloadError> {
    let p = payload(payload_text)?;
    let message = p.get("message").ok_or(PayloadError::Missing("message"))?;
    let contact = p.get("contact").filter(|c| c.is_object());
    let number = text(p.get("metadata").and_then(|m| m.get("phone_number_id")))
        .ok_or(PayloadError::Missing("metadata.phone_number_id"))?;
    let wamid = text(message.get("id")).ok_or(PayloadError::Missing("id"))?;
    let kind = text(message.get("type")).unwrap_or_else(|| "unknown".into());
    let user_id =
        text(message.get("from_user_id")).or_else(|| contact.and_then(|c| text(c.get("user_id"))));
    let phone = text(message.get("from")).or_else(|| contact.and_then(|c| text(c.get("wa_id"))));
    if user_id.is_none() && phone.is_none() {
        return Err(PayloadError::Missing("sender (from_user_id or from)"));
    }
    let profile = contact.and_then(|c| c.get("profile"));
    let sender = Sender {
        user_id,
        phone,
        profile_name: text(profile.and_then(|p| p.get("name"))),
        username: text(profile.and_then(|p| p.get("username"))),
    };
    let body = message.get(kind.as_str());
    let said = match kind.as_str() {
        "text" => text(body.and_then(|b| b.get("body"))),
        "button" => text(body.and_then(|b| b.get("text"))),
        "interactive" => body.and_then(|b| {
            ["button_reply", "list_reply"]
                .iter()
                .find_map(|k| text(b.get(*k).and_then(|r| r.get("title"))))
        }),
        "image" | "video" | "document" => text(body.and_then(|b| b.get("caption"))),
        "system" => text(body.and_then(|b| b.get("body"))),
        _ => None,
    };
    let identity_change = (kind == "system")
        .then_some(body)
        .flatten()
        .filter(|s| {
            matches!(
                s.get("type").and_then(Value::as_str),
                Some("user_changed_number" | "user_changed_user_id")
            )
        })
        .map(|s| IdentityChange {
            previous_user_id: text(s.get("previous_user_id")).or_else(|| sender.user_id.clone()),
            previous_phone: sender.phone.clone(),
            new_user_id: text(s.get("user_id")).or_else(|| text(s.get("new_user_id"))),
            new_phone: text(s.get("wa_id")).or_else(|| text(s.get("new_wa_id"))),
        });
    Ok(InboundMessage {
        meta_phone_number_id: number,
        wamid,
        sender,
        kind,
        text: said,
        timestamp: text(message.get("timestamp")).and_then(|t| t.parse().ok()),
        identity_change,
    })
}

/// A status of a message we sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusUpdate {
    pub wamid: String,
    pub status: MessageStatus,
    pub timestamp: Option<i64>,
    /// Meta's first error on a `failed` status: code and message.
    pub error: Option<(Option<i64>, String)>,
}

/// Reads a status job's payload; `None` for a status this service does not track.
pub fn status_update(payload_text: &str) -> Result<Option<StatusUpdate>, PayloadError> {
    let p = payload(payload_text)?;
    let status = p.get("status").ok_or(PayloadError::Missing("status"))?;
    let wamid = text(status.get("id")).ok_or(PayloadError::Missing("status id"))?;
    let Some(state) = text(status.get("status")).and_then(|s| MessageStatus::from_meta_status(&s))
    else {
        return Ok(None);
    };
    let error = status
        .get("errors")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
        .map(|e| {
            let message = text(e.get("message"))
                .or_else(|| text(e.get("title")))
                .or_else(|| text(e.get("error_data").and_then(|d| d.get("details"))))
                .unwrap_or_else(|| "Meta did not say why".into());
            (e.get("code").and_then(Value::as_i64), message)
        });
    Ok(Some(StatusUpdate {
        wamid,
        status: state,
        timestamp: text(status.get("timestamp")).and_then(|t| t.parse().ok()),
        error,
    }))
}

/// A change of another field: the WABA, and the change's `value`.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldChange {
    pub waba_id: Option<String>,
    pub value: Value,
}

impl FieldChange {
    /// `value.<name>` as text.
    pub fn text(&self, name: &str) -> Option<String> {
        text(self.value.get(name))
    }
}

/// Reads a change job's payload.
pub fn field_change(payload_text: &str) -> Result<FieldChange, PayloadError> {
    let p = payload(payload_text)?;
    Ok(FieldChange {
        waba_id: text(p.get("waba_id")),
        value: p.get("value").cloned().unwrap_or(Value::Null),
    })
}

/// Splits an answer into parts Meta takes (`text.body` holds at most `max` characters), at a
/// paragraph, line or word break where there is one in the second half of a part.
pub fn split_text(text: &str, max: usize) -> Vec<String> {
    let mut parts = Vec::new();
    let mut rest = text.trim();
    while rest.chars().count() > max {
        let cut = rest
            .char_indices()
            .nth(max)
            .map(|(i, _)| i)
            .unwrap_or(rest.len());
        let window = &rest[..cut];
        let half = window
            .char_indices()
            .nth(max / 2)
            .map(|(i, _)| i)
            .unwrap_or(0);
        let at = ["\n\n", "\n", " "]
            .iter()
            .find_map(|sep| window.rfind(sep).filter(|&i| i >= half))
            .unwrap_or(cut);
        let (head, tail) = rest.split_at(at);
        if !head.trim().is_empty() {
            parts.push(head.trim_end().to_owned());
        }
        rest = tail.trim_start();
    }
    if !rest.is_empty() {
        parts.push(rest.to_owned());
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(changes: Value) -> Vec<u8> {
        json!({"object": "whatsapp_business_account", "entry": [{"id": "WABA1", "changes": changes}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn every_message_status_and_change_of_a_batch_becomes_a_job() {
        let body = json!({"object": "whatsapp_business_account", "entry": [
            {"id": "WABA1", "changes": [
                {"field": "messages", "value": {
                    "metadata": {"phone_number_id": "PN1", "display_phone_number": "15550001"},
                    "contacts": [{"wa_id": "111", "user_id": "US.1", "profile": {"name": "Ann"}},
                                 {"wa_id": "", "user_id": "US.2", "profile": {"username": "bob"}}],
                    "messages": [
                        {"id": "wamid.A", "from": "111", "from_user_id": "US.1", "type": "text", "text": {"body": "hi"}},
                        {"id": "wamid.B", "from_user_id": "US.2", "type": "text", "text": {"body": "yo"}}],
                    "statuses": [{"id": "wamid.OUT", "status": "read", "timestamp": "1"}]}},
                {"field": "phone_number_quality_update", "value": {"display_phone_number": "15550001", "event": "THROUGHPUT_UPGRADE"}}]},
            {"id": "WABA2", "time": 5, "changes": [{"field": "account_update", "value": {"event": "PARTNER_REMOVED"}}]}
        ]});
        let jobs = jobs_of_delivery(body.to_string().as_bytes()).unwrap();
        let kinds: Vec<JobKind> = jobs.iter().map(|j| j.kind).collect();
        assert_eq!(
            kinds,
            [
                JobKind::Message,
                JobKind::Message,
                JobKind::Status,
                JobKind::QualityUpdate,
                JobKind::AccountUpdate
            ]
        );
        assert_eq!(jobs[0].dedup_key, "message:wamid.A");
        assert_eq!(jobs[0].order_key.as_deref(), Some("PN1/US.1"));
        assert_eq!(jobs[1].order_key.as_deref(), Some("PN1/US.2"));
        assert_eq!(jobs[2].dedup_key, "status:wamid.OUT:read");
        assert_eq!(jobs[4].waba_id.as_deref(), Some("WABA2"));
        // Each message carries its own contact.
        let b = inbound_message(&jobs[1].payload).unwrap();
        assert_eq!(b.sender.user_id.as_deref(), Some("US.2"));
        assert_eq!(b.sender.phone, None, "an empty wa_id is absent");
        assert_eq!(b.sender.username.as_deref(), Some("bob"));
        let a = inbound_message(&jobs[0].payload).unwrap();
        assert_eq!(a.sender.profile_name.as_deref(), Some("Ann"));
        assert_eq!(a.text.as_deref(), Some("hi"));
    }

    #[test]
    fn a_redelivery_gives_the_same_keys_and_another_event_another() {
        let change = |time: i64| {
            json!({"object": "whatsapp_business_account", "entry": [{"id": "W", "time": time, "changes": [
                {"field": "phone_number_name_update", "value": {"display_phone_number": "1", "decision": "APPROVED"}}]}]})
            .to_string()
        };
        let a = jobs_of_delivery(change(1).as_bytes()).unwrap();
        let again = jobs_of_delivery(change(1).as_bytes()).unwrap();
        let later = jobs_of_delivery(change(2).as_bytes()).unwrap();
        assert_eq!(a[0].dedup_key, again[0].dedup_key);
        assert_ne!(a[0].dedup_key, later[0].dedup_key);
        assert_eq!(a[0].kind, JobKind::NameUpdate);
    }

    #[test]
    fn not_json_is_refused_and_other_objects_hold_nothing() {
        assert_eq!(jobs_of_delivery(b"<html>"), Err(NotADelivery));
        assert_eq!(jobs_of_delivery(b"[1]"), Err(NotADelivery));
        assert!(
            jobs_of_delivery(br#"{"object":"page","entry":[{"id":"1"}]}"#)
                .unwrap()
                .is_empty()
        );
        assert!(jobs_of_delivery(&delivery(json!([]))).unwrap().is_empty());
    }

    #[test]
    fn nul_from_meta_never_reaches_a_key_or_a_text() {
        let body = delivery(json!([
            {"field": "messages", "value": {
                "metadata": {"phone_number_id": "PN1"},
                "contacts": [{"wa_id": "111", "profile": {"name": "A\u{0}nn"}}],
                "messages": [{"id": "wamid.\u{0}N", "from": "111", "type": "text", "text": {"body": "h\u{0}i"}}]}},
            {"field": "account_update\u{0}", "value": {"event": "X"}}]));
        let jobs = jobs_of_delivery(&body).unwrap();
        assert_eq!(jobs.len(), 2);
        for job in &jobs {
            assert!(!job.dedup_key.contains('\0'), "{}", job.dedup_key);
            assert!(!job.order_key.clone().unwrap_or_default().contains('\0'));
        }
        let m = inbound_message(&jobs[0].payload).unwrap();
        assert_eq!(m.text.as_deref(), Some("h\u{FFFD}i"));
        assert_eq!(m.sender.profile_name.as_deref(), Some("A\u{FFFD}nn"));
        assert_eq!(m.wamid, "wamid.\u{FFFD}N");
    }

    #[test]
    fn a_system_message_moves_the_customer() {
        let body = delivery(json!([{"field": "messages", "value": {
            "metadata": {"phone_number_id": "PN1"},
            "messages": [{"id": "wamid.S", "from": "111", "from_user_id": "US.OLD", "type": "system",
                "system": {"body": "User A changed from 111 to 222", "type": "user_changed_number",
                           "wa_id": "222", "user_id": "US.NEW", "previous_user_id": "US.OLD"}}]}}]));
        let jobs = jobs_of_delivery(&body).unwrap();
        let m = inbound_message(&jobs[0].payload).unwrap();
        let change = m.identity_change.unwrap();
        assert_eq!(change.previous_user_id.as_deref(), Some("US.OLD"));
        assert_eq!(change.new_user_id.as_deref(), Some("US.NEW"));
        assert_eq!(change.new_phone.as_deref(), Some("222"));
    }

    #[test]
    fn statuses_read_with_their_errors() {
        let p = json!({"status": {"id": "wamid.X", "status": "failed", "timestamp": "17",
            "errors": [{"code": 131049, "title": "Spam", "message": "Not delivered"}]}})
        .to_string();
        let s = status_update(&p).unwrap().unwrap();
        assert_eq!(s.status, MessageStatus::Failed);
        assert_eq!(s.error, Some((Some(131049), "Not delivered".into())));
        let unknown = json!({"status": {"id": "wamid.X", "status": "deleted"}}).to_string();
        assert_eq!(status_update(&unknown).unwrap(), None);
    }

    #[test]
    fn long_answers_split_at_breaks_within_the_limit() {
        let text = format!(
            "{} {}\n\n{}",
            "a".repeat(30),
            "b".repeat(30),
            "c".repeat(50)
        );
        let parts = split_text(&text, 64);
        assert!(parts.iter().all(|p| p.chars().count() <= 64), "{parts:?}");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[1], "c".repeat(50));
        let unbroken = "x".repeat(150);
        let parts = split_text(&unbroken, 64);
        assert_eq!(parts.concat(), unbroken);
        assert_eq!(split_text("  short  ", 64), vec!["short"]);
        let umlauts = "ä".repeat(100);
        assert!(split_text(&umlauts, 64)
            .iter()
            .all(|p| p.chars().count() <= 64));
    }
}
