//! Everything the service asks of Meta, behind one trait: the Graph API client ([`graph`]) in
//! production, the in-memory [`sandbox`] when no Meta app is configured.

pub mod error;
pub mod graph;
pub mod sandbox;
pub mod usage;

use serde_json::Value;

use crate::domain::{MetaMode, MetaPhoneNumberId, WabaId};
pub use error::{codes, ErrorClass, MetaError};
pub use usage::MetaUsage;

/// The fields asked of Meta for each number (the default set leaves out status, name status and
/// the messaging limit). From v24 the messaging limit is `whatsapp_business_manager_messaging_limit`.
pub fn phone_number_fields(graph_version: &str) -> String {
    let limit_field = if version_number(graph_version) >= 24 {
        "whatsapp_business_manager_messaging_limit"
    } else {
        "messaging_limit_tier"
    };
    format!(
        "id,display_phone_number,verified_name,quality_rating,platform_type,status,code_verification_status,\
         name_status,{limit_field},throughput,account_mode,is_on_biz_app,last_onboarded_time"
    )
}

fn version_number(version: &str) -> u32 {
    version
        .trim_start_matches('v')
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Meta's limit on calls to a WABA's management endpoints (`GET /{WABA}`, its `phone_numbers`,
/// `subscribed_apps`, and `GET` on a number): per hour, per app (reference §6).
pub const WABA_CALLS_PER_HOUR: i64 = 200;
/// The same limit once the WABA has a registered number ("active").
pub const ACTIVE_WABA_CALLS_PER_HOUR: i64 = 5000;

/// The service's own budget of such calls, per WABA and hour: four fifths of Meta's, so manual
/// and background work together never reach Meta's limit (which would block the WABA).
pub fn waba_call_budget(active: bool) -> i64 {
    waba_call_limit(active) * 4 / 5
}

/// Meta's own limit for the WABA: [`WABA_CALLS_PER_HOUR`] or [`ACTIVE_WABA_CALLS_PER_HOUR`].
pub fn waba_call_limit(active: bool) -> i64 {
    if active {
        ACTIVE_WABA_CALLS_PER_HOUR
    } else {
        WABA_CALLS_PER_HOUR
    }
}

/// Numbers asked for per page of `GET /{WABA}/phone_numbers`: the largest page Meta's spec allows
/// (its default is 25), so a sync spends as few of the WABA's Graph calls as it can.
pub const PHONE_NUMBERS_PAGE_SIZE: i64 = 100;

/// A phone number as Meta describes it. Unknown enum values are kept as they come.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MetaPhoneNumber {
    pub id: MetaPhoneNumberId,
    pub display_phone_number: String,
    pub verified_name: Option<String>,
    pub quality_rating: Option<String>,
    pub platform_type: Option<String>,
    pub status: Option<String>,
    pub code_verification_status: Option<String>,
    pub name_status: Option<String>,
    pub messaging_limit: Option<String>,
    pub throughput_level: Option<String>,
    pub account_mode: Option<String>,
    pub is_on_biz_app: bool,
}

/// A string field that Meta sometimes sends as a number, or as an object holding the value; a NUL
/// in it becomes U+FFFD ([`crate::domain::text::storable`]).
fn loose_string(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) if !s.trim().is_empty() => Some(crate::domain::text::storable(s.trim())),
        Value::Number(n) => Some(n.to_string()),
        Value::Object(map) => ["current_limit", "tier", "value", "score", "level"]
            .iter()
            .find_map(|key| loose_string(map.get(*key))),
        _ => None,
    }
}

impl MetaPhoneNumber {
    /// Reads a phone-number node leniently; `None` only when it has no id.
    pub fn from_json(node: &Value) -> Option<Self> {
        let id = loose_string(node.get("id"))?;
        let quality = loose_string(node.get("quality_rating"))
            .or_else(|| loose_string(node.get("quality_score")));
        let limit = loose_string(node.get("whatsapp_business_manager_messaging_limit"))
            .or_else(|| loose_string(node.get("messaging_limit_tier")));
        Some(MetaPhoneNumber {
            display_phone_number: loose_string(node.get("display_phone_number"))
                .unwrap_or_else(|| id.clone()),
            id: MetaPhoneNumberId(id),
            verified_name: loose_string(node.get("verified_name")),
            quality_rating: quality,
            platform_type: loose_string(node.get("platform_type")),
            status: loose_string(node.get("status")),
            code_verification_status: loose_string(node.get("code_verification_status")),
            name_status: loose_string(node.get("name_status"))
                .or_else(|| loose_string(node.get("new_name_status"))),
            messaging_limit: limit,
            throughput_level: loose_string(node.get("throughput")),
            account_mode: loose_string(node.get("account_mode")),
            is_on_biz_app: node
                .get("is_on_biz_app")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// One page of `GET /{WABA}/phone_numbers`.
#[derive(Debug, Clone, Default)]
pub struct PhoneNumberPage {
    pub numbers: Vec<MetaPhoneNumber>,
    /// Meta's opaque `after` cursor when `paging.next` says another page follows.
    pub after: Option<String>,
}

/// What `debug_token` says about a token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenInfo {
    /// WABAs the token was granted (`granular_scopes[].target_ids`).
    pub waba_ids: Vec<WabaId>,
    /// Unix seconds; `None` for tokens that never expire.
    pub expires_at: Option<i64>,
}

/// What Meta answered to a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMessage {
    /// `wamid...`
    pub message_id: String,
}

/// Everything the service asks of Meta. Tokens are passed per call and never stored here.
#[async_trait::async_trait]
pub trait MetaApi: Send + Sync {
    /// The real Graph API, or the sandbox.
    fn mode(&self) -> MetaMode;

    /// One page of a WABA's numbers, with every field we store (`fields=`); `after` from the last page.
    async fn list_phone_numbers(
        &self,
        token: &str,
        waba_id: &WabaId,
        after: Option<&str>,
    ) -> Result<PhoneNumberPage, MetaError>;

    /// One number, with every field we store.
    async fn get_phone_number(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
    ) -> Result<MetaPhoneNumber, MetaError>;

    /// The WABA's name (also proves the token can read the WABA).
    async fn get_waba_name(
        &self,
        token: &str,
        waba_id: &WabaId,
    ) -> Result<Option<String>, MetaError>;

    /// `POST /{PHONE}/register` with the number's two-step PIN.
    async fn register(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
        pin: &str,
    ) -> Result<(), MetaError>;

    /// Exchanges an Embedded Signup code for a business token.
    async fn exchange_code(&self, code: &str) -> Result<String, MetaError>;

    /// Inspects a token for the WABAs it was granted.
    async fn inspect_token(&self, token: &str) -> Result<TokenInfo, MetaError>;

    /// The usage Meta last reported for calls on `object` (a WABA id), once: the service stores it
    /// so that its budget, on every replica, follows Meta's own count.
    fn take_usage(&self, _object: &str) -> Option<MetaUsage> {
        None
    }

    /// Subscribes our app to the WABA's webhooks (without it Meta sends none, silently).
    async fn subscribe_app(&self, token: &str, waba_id: &WabaId) -> Result<(), MetaError>;

    /// Ends our app's subscription to the WABA's webhooks (the account is being disconnected).
    async fn unsubscribe_app(&self, token: &str, waba_id: &WabaId) -> Result<(), MetaError>;

    /// `POST /{PHONE}/messages` with a complete message body.
    async fn send_message(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
        body: &Value,
    ) -> Result<SentMessage, MetaError>;

    /// Marks an inbound message read.
    async fn mark_read(
        &self,
        token: &str,
        meta_phone_number_id: &MetaPhoneNumberId,
        message_id: &str,
    ) -> Result<(), MetaError>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn nul_in_a_node_never_reaches_a_field() {
        let node = json!({"id": "1\u{0}", "display_phone_number": "+1 555\u{0}", "verified_name": "Jas\u{0}pers"});
        let number = MetaPhoneNumber::from_json(&node).unwrap();
        assert_eq!(number.id.as_str(), "1\u{FFFD}");
        assert_eq!(number.display_phone_number, "+1 555\u{FFFD}");
        assert_eq!(number.verified_name.as_deref(), Some("Jas\u{FFFD}pers"));
    }

    #[test]
    fn fields_follow_the_graph_version() {
        assert!(phone_number_fields("v25.0").contains("whatsapp_business_manager_messaging_limit"));
        assert!(phone_number_fields("v23.0").contains("messaging_limit_tier"));
        for field in [
            "status",
            "name_status",
            "platform_type",
            "throughput",
            "quality_rating",
            "is_on_biz_app",
        ] {
            assert!(
                phone_number_fields("v25.0").split(',').any(|f| f == field),
                "{field}"
            );
        }
    }

    #[test]
    fn phone_numbers_are_read_leniently() {
        let node = json!({
            "id": "106853218861309", "display_phone_number": "+1 555-555-5555", "verified_name": "Jaspers Market",
            "quality_score": {"score": "GREEN"}, "platform_type": "SOMETHING_NEW", "throughput": {"level": "STANDARD"},
            "whatsapp_business_manager_messaging_limit": 2000, "is_on_biz_app": true, "unexpected": [1, 2]
        });
        let number = MetaPhoneNumber::from_json(&node).unwrap();
        assert_eq!(number.quality_rating.as_deref(), Some("GREEN"));
        assert_eq!(number.platform_type.as_deref(), Some("SOMETHING_NEW"));
        assert_eq!(number.throughput_level.as_deref(), Some("STANDARD"));
        assert_eq!(number.messaging_limit.as_deref(), Some("2000"));
        assert!(number.is_on_biz_app);
        assert!(MetaPhoneNumber::from_json(&json!({"display_phone_number": "1"})).is_none());
    }
}
