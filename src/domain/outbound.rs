//! Messages an agent sends first (not answers): who may receive what, and how fast.
//!
//! - [`Recipient`]: an E.164 phone number or a business-scoped user id (BSUID, reference §12).
//! - [`Content`]: free text, allowed only inside the customer's 24-hour window, or an approved
//!   template, allowed always (reference §3).
//! - [`Pace`]: Meta's rate limits as a generic cell-rate algorithm: a number's throughput
//!   (80 messages a second, 20 for coexistence numbers, 1,000 once Meta raised it) and the pair
//!   rate limit (one message every 6 seconds to the same user, bursts of up to 45).

use chrono::{NaiveDateTime, TimeDelta};
use serde_json::{json, Map, Value};

use super::{text, RuleError};

/// The customer-service window: free-form messages are allowed this long after the customer's
/// last message (reference §3).
pub const CUSTOMER_SERVICE_WINDOW: TimeDelta = TimeDelta::hours(24);

/// Meta's limit of a text message's body, in characters (reference §3).
pub const MAX_TEXT_CHARS: usize = 4096;

/// Body of `POST /api/v1/agents/{id}/messages`: `to`, and `text` or `template`.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct SendMessage {
    /// An E.164 phone number (`+16505551234`) or a customer's business-scoped user id
    /// (`US.13491208655302741918`).
    pub to: String,
    /// Free text: only while the customer's 24-hour window on the agent's number is open.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(nullable = false)]
    pub text: Option<String>,
    /// An approved template: always allowed.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(nullable = false)]
    pub template: Option<TemplateInput>,
}

/// An approved message template and its parameters, as Meta's `template` object takes them.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(remote = "Self", deny_unknown_fields)]
pub struct TemplateInput {
    /// The template's name (`order_update`).
    pub name: String,
    /// Its language code (`en_US`).
    pub language: String,
    /// Meta's `components` (header, body and button parameters), passed on as given.
    #[serde(default, deserialize_with = "super::present")]
    #[schema(value_type = Vec<Object>, nullable = false)]
    pub components: Option<Vec<Map<String, Value>>>,
}

super::object_only!(SendMessage, TemplateInput);

impl SendMessage {
    /// The recipient and the content, checked.
    pub fn into_parts(self) -> Result<(Recipient, Content), RuleError> {
        let to = Recipient::parse(&self.to)?;
        let content = match (self.text, self.template) {
            (Some(body), None) => Content::text(body)?,
            (None, Some(t)) => {
                Content::template(t.name, t.language, t.components.unwrap_or_default())?
            }
            _ => {
                return Err(RuleError::Invalid(
                    "send either `text` or `template`, not both and not neither".into(),
                ))
            }
        };
        Ok((to, content))
    }
}

/// Whether free-form text may go to a customer whose last message was at `last_inbound_at`.
pub fn window_open(last_inbound_at: Option<NaiveDateTime>, now: NaiveDateTime) -> bool {
    last_inbound_at.is_some_and(|at| now < at + CUSTOMER_SERVICE_WINDOW)
}

/// Whom a message goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// A phone number: its digits (country code first, no `+`), as Meta's `wa_id`.
    Phone(String),
    /// A business-scoped user id, such as `US.13491208655302741918` (or a parent BSUID).
    Bsuid(String),
}

impl Recipient {
    /// Reads `to` ([`text::MESSAGE_TO`]): `+` and the number, or a BSUID.
    pub fn parse(to: &str) -> Result<Self, RuleError> {
        text::MESSAGE_TO.check(to)?;
        Ok(match to.strip_prefix('+') {
            Some(digits) => Recipient::Phone(digits.to_owned()),
            None => Recipient::Bsuid(to.to_owned()),
        })
    }
}

/// What an agent sends.
#[derive(Debug, Clone, PartialEq)]
pub enum Content {
    Text(String),
    Template(Template),
}

/// An approved message template, as Meta's `template` object takes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub name: String,
    pub language: String,
    /// Meta's `components` (header, body, button parameters), passed on as given.
    pub components: Vec<Map<String, Value>>,
}

/// Most components a template message can carry (a header, a body, up to 10 buttons, ...).
pub const MAX_COMPONENTS: usize = 20;

impl Content {
    /// A text body ([`text::MESSAGE_TEXT`]).
    pub fn text(body: String) -> Result<Self, RuleError> {
        text::MESSAGE_TEXT.check(&body)?;
        Ok(Content::Text(body))
    }

    /// A template: its name and language code as Meta writes them, and components that each say
    /// their `type`.
    pub fn template(
        name: String,
        language: String,
        components: Vec<Map<String, Value>>,
    ) -> Result<Self, RuleError> {
        text::TEMPLATE_NAME.check(&name)?;
        text::TEMPLATE_LANGUAGE.check(&language)?;
        if components.len() > MAX_COMPONENTS {
            return Err(RuleError::Invalid(format!(
                "`template.components` has {} entries; at most {MAX_COMPONENTS}",
                components.len()
            )));
        }
        for component in &components {
            match component.get("type").and_then(Value::as_str) {
                Some(kind) => text::TEMPLATE_COMPONENT_TYPE.check(kind)?,
                None => {
                    return Err(RuleError::Invalid(
                        "every `template.components[]` needs a `type` (`header`, `body`, `button`, ...)"
                            .into(),
                    ))
                }
            }
        }
        Ok(Content::Template(Template {
            name,
            language,
            components,
        }))
    }

    /// The message type, as Meta names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Content::Text(_) => "text",
            Content::Template(_) => "template",
        }
    }

    /// Whether it may go to a customer whose window is closed.
    pub fn allowed_outside_window(&self) -> bool {
        matches!(self, Content::Template(_))
    }

    /// The body of `POST /{PHONE-NUMBER-ID}/messages` for `recipient` (reference §3, §12).
    pub fn meta_body(&self, recipient: &Recipient) -> Value {
        let mut body = json!({"messaging_product": "whatsapp", "recipient_type": "individual"});
        match recipient {
            Recipient::Phone(digits) => body["to"] = json!(format!("+{digits}")),
            Recipient::Bsuid(id) => body["recipient"] = json!(id),
        }
        match self {
            Content::Text(text) => {
                body["type"] = json!("text");
                body["text"] = json!({"preview_url": false, "body": text});
            }
            Content::Template(t) => {
                body["type"] = json!("template");
                let mut template = json!({"name": t.name, "language": {"code": t.language}});
                if !t.components.is_empty() {
                    template["components"] = json!(t.components);
                }
                body["template"] = template;
            }
        }
        body
    }

    /// The template as stored with the message (JSON), for a template.
    pub fn stored_template(&self) -> Option<String> {
        match self {
            Content::Text(_) => None,
            Content::Template(t) => Some(
                json!({"name": t.name, "language": t.language, "components": t.components})
                    .to_string(),
            ),
        }
    }

    /// The content back from a stored message (`kind`, `body`, `template`).
    pub fn from_stored(kind: &str, body: Option<&str>, template: Option<&str>) -> Option<Self> {
        match kind {
            "text" => Some(Content::Text(body?.to_owned())),
            "template" => {
                let v: Value = serde_json::from_str(template?).ok()?;
                let components = v
                    .get("components")
                    .and_then(Value::as_array)
                    .map(|all| all.iter().filter_map(|c| c.as_object().cloned()).collect())
                    .unwrap_or_default();
                Some(Content::Template(Template {
                    name: v.get("name")?.as_str()?.to_owned(),
                    language: v.get("language")?.as_str()?.to_owned(),
                    components,
                }))
            }
            _ => None,
        }
    }
}

/// A rate limit as a generic cell-rate algorithm: one message per `interval`, with up to `burst`
/// at once. Its state is the theoretical arrival time (TAT) of the next message, in microseconds
/// since the Unix epoch; a message may go when the TAT is no more than `burst - 1` intervals ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pace {
    /// Microseconds between two messages at the steady rate.
    pub interval_us: i64,
    pub burst: i64,
}

/// Meta's pair rate limit: one message every 6 seconds to the same user, bursts of up to 45
/// (reference §2.2, error 131056).
pub const PAIR_PACE: Pace = Pace {
    interval_us: 6_000_000,
    burst: 45,
};

/// Messages per second a number may send: 20 for coexistence numbers (fixed), 1,000 once Meta
/// raised its throughput (`throughput.level` `HIGH`), else 80 (reference §3, §8).
pub fn messages_per_second(coexistence: bool, throughput_level: Option<&str>) -> i64 {
    if coexistence {
        20
    } else if throughput_level.is_some_and(|l| l.eq_ignore_ascii_case("HIGH")) {
        1000
    } else {
        80
    }
}

impl Pace {
    /// A number's throughput: `per_second` messages a second, a second's worth at once.
    pub fn per_second(per_second: i64) -> Self {
        let per_second = per_second.max(1);
        Pace {
            interval_us: 1_000_000 / per_second,
            burst: per_second,
        }
    }

    /// Whether a message may go at `now_us` given the stored TAT: `Ok(new TAT)`, or `Err(when)`
    /// it may.
    pub fn admit(self, tat_us: Option<i64>, now_us: i64) -> Result<i64, i64> {
        let tat = tat_us.unwrap_or(now_us).max(now_us);
        let allowed_at = tat - (self.burst - 1) * self.interval_us;
        if allowed_at > now_us {
            Err(allowed_at)
        } else {
            Ok(tat + self.interval_us)
        }
    }

    /// The TAT once Meta said the limit was reached anyway (others' messages count too): no
    /// message before `until`, then one per interval (the burst is used up).
    pub fn exhausted_until(self, tat_us: Option<i64>, until_us: i64) -> i64 {
        let spent = until_us + (self.burst - 1) * self.interval_us;
        tat_us.map_or(spent, |tat| tat.max(spent))
    }
}

/// Meta's suggested wait after the pair rate limit: 4^X seconds for the X-th retry (reference §2.2).
pub fn pair_limit_backoff(retry: i64) -> TimeDelta {
    let exp = u32::try_from(retry.clamp(0, 5)).unwrap_or(0);
    TimeDelta::seconds(4i64.pow(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e164_numbers_and_bsuids_are_recipients_and_nothing_else_is() {
        assert_eq!(
            Recipient::parse("+16505551234").unwrap(),
            Recipient::Phone("16505551234".into())
        );
        assert_eq!(
            Recipient::parse("US.13491208655302741918").unwrap(),
            Recipient::Bsuid("US.13491208655302741918".into())
        );
        assert!(matches!(
            Recipient::parse("US.ENT.1349120865").unwrap(),
            Recipient::Bsuid(_)
        ));
        for bad in [
            "16505551234",
            "+0123456789",
            "+1234",
            "+1234567890123456",
            "+1650x5551234",
            "+1 650-555-1234",
            "us.123",
            "USA.123",
            "US.",
            "US.12-3",
            "",
        ] {
            assert!(Recipient::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn the_window_is_open_for_24_hours_after_the_customer_wrote() {
        let wrote = chrono::DateTime::from_timestamp(1_700_000_000, 0)
            .unwrap()
            .naive_utc();
        assert!(window_open(Some(wrote), wrote + TimeDelta::hours(23)));
        assert!(!window_open(Some(wrote), wrote + TimeDelta::hours(24)));
        assert!(!window_open(None, wrote));
    }

    #[test]
    fn text_and_templates_are_checked_and_built_as_meta_takes_them() {
        assert!(Content::text("  ".into()).is_err());
        assert!(Content::text("x".repeat(MAX_TEXT_CHARS + 1)).is_err());
        assert!(Content::template("Hello World".into(), "en_US".into(), vec![]).is_err());
        assert!(Content::template("hello".into(), "english".into(), vec![]).is_err());
        let untyped = serde_json::from_value(json!({"parameters": []})).unwrap();
        assert!(Content::template("hello".into(), "en".into(), vec![untyped]).is_err());
        let body = serde_json::from_value(
            json!({"type": "body", "parameters": [{"type": "text", "text": "Ann"}]}),
        )
        .unwrap();
        let t = Content::template("order_update".into(), "pt_BR".into(), vec![body]).unwrap();
        let sent = t.meta_body(&Recipient::Bsuid("BR.99".into()));
        assert_eq!(sent["recipient"], "BR.99");
        assert!(sent.get("to").is_none());
        assert_eq!(sent["template"]["language"]["code"], "pt_BR");
        assert_eq!(
            sent["template"]["components"][0]["parameters"][0]["text"],
            "Ann"
        );
        let stored = t.stored_template().unwrap();
        assert_eq!(
            Content::from_stored("template", None, Some(&stored)),
            Some(t)
        );
        let text = Content::text("hi".into()).unwrap();
        assert_eq!(
            text.meta_body(&Recipient::Phone("4915".into()))["to"],
            "+4915"
        );
        assert!(!text.allowed_outside_window());
    }

    #[test]
    fn a_pace_lets_a_burst_through_then_spreads_the_rest() {
        let now = 1_000_000_000;
        let mut tat = None;
        for _ in 0..PAIR_PACE.burst {
            tat = Some(PAIR_PACE.admit(tat, now).unwrap());
        }
        let wait = PAIR_PACE.admit(tat, now).unwrap_err();
        assert_eq!(wait, now + PAIR_PACE.interval_us);
        assert!(PAIR_PACE.admit(tat, wait).is_ok());
        // An idle pair starts afresh.
        assert!(PAIR_PACE.admit(tat, now + 3_600_000_000).is_ok());
        let number = Pace::per_second(messages_per_second(false, None));
        assert_eq!(number.interval_us, 12_500);
        assert_eq!(messages_per_second(true, Some("HIGH")), 20);
        assert_eq!(messages_per_second(false, Some("HIGH")), 1000);
        // Meta said "too many" anyway: nothing before then, then one per interval.
        let later = now + 4_000_000;
        let tat = PAIR_PACE.exhausted_until(Some(now), later);
        assert_eq!(
            PAIR_PACE.admit(Some(tat), later + 1),
            Ok(tat + PAIR_PACE.interval_us)
        );
        assert!(PAIR_PACE.admit(Some(tat), later - 1).is_err());
        let tat = PAIR_PACE.admit(Some(tat), later).unwrap();
        assert!(PAIR_PACE.admit(Some(tat), later + 1).is_err());
        assert_eq!(pair_limit_backoff(0), TimeDelta::seconds(1));
        assert_eq!(pair_limit_backoff(2), TimeDelta::seconds(16));
    }
}
