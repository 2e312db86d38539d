//! Meta's error envelope, kept whole, and what each error means for us: retry, wait, or ask the user.

use serde_json::Value;

/// How to react to a Meta error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// A passing fault on Meta's side or the network: back off and retry.
    Transient,
    /// A rate or attempt limit: retry only after the wait Meta asks for.
    RateLimited,
    /// Retrying will not help until someone fixes something (a PIN, a token, a verification).
    NeedsUserAction,
}

/// Meta's error envelope, kept whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GraphError {
    pub http_status: u16,
    pub code: i64,
    pub subcode: Option<i64>,
    pub message: String,
    /// `error_data.details`: what Meta says to build logic on, beside `code`.
    pub details: Option<String>,
    /// `error_user_msg`, localized text meant for end users.
    pub user_message: Option<String>,
    pub is_transient: bool,
    pub fbtrace_id: Option<String>,
    /// From `Retry-After` or `X-Business-Use-Case-Usage`, when Meta said.
    pub retry_after_seconds: Option<u64>,
}

/// A failed call to Meta.
#[derive(Debug, Clone, thiserror::Error)]
pub enum MetaError {
    /// Meta answered with its error envelope.
    #[error("Meta error {}: {}", .0.code, .0.message)]
    Api(Box<GraphError>),
    /// No usable answer: connection refused, timeout, or a body that is not Meta's.
    #[error("could not reach Meta: {0}")]
    Transport(String),
    /// Meta answered success with a body we cannot read.
    #[error("unexpected answer from Meta: {0}")]
    Unexpected(String),
}

impl MetaError {
    /// Builds the error from Meta's envelope `{"error": {...}}`, if the body is one.
    pub fn from_envelope(
        http_status: u16,
        body: &Value,
        retry_after_seconds: Option<u64>,
    ) -> Option<Self> {
        let error = body.get("error")?;
        let int = |key: &str| {
            error
                .get(key)
                .and_then(|v| v.as_i64().or_else(|| v.as_str()?.parse().ok()))
        };
        let text = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .map(str::to_owned)
                .filter(|s| !s.is_empty())
        };
        Some(MetaError::Api(Box::new(GraphError {
            http_status,
            code: int("code").unwrap_or(-1),
            subcode: int("error_subcode"),
            message: text(error.get("message")).unwrap_or_else(|| "Meta returned an error".into()),
            details: text(error.get("error_data").and_then(|d| d.get("details"))),
            user_message: text(error.get("error_user_msg")),
            is_transient: error
                .get("is_transient")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            fbtrace_id: text(error.get("fbtrace_id")),
            retry_after_seconds,
        })))
    }

    /// Meta's error code, if Meta answered.
    pub fn code(&self) -> Option<i64> {
        match self {
            MetaError::Api(e) => Some(e.code),
            _ => None,
        }
    }

    /// True when Meta rejected the access token (code 190, or 0 "could not authenticate").
    pub fn is_token_rejected(&self) -> bool {
        matches!(self.code(), Some(190) | Some(0))
    }

    /// Transient, rate-limited or needs-user-action, from Meta's code first (as Meta advises),
    /// then `is_transient` and the HTTP status.
    pub fn class(&self) -> ErrorClass {
        let MetaError::Api(e) = self else {
            return ErrorClass::Transient;
        };
        let (is_transient, http_status) = (&e.is_transient, &e.http_status);
        match e.code {
            4 | 17 | 32 | 613 | 80007 | 80008 | 130429 | 131048 | 131056 | 133008 | 133009
            | 133016 => ErrorClass::RateLimited,
            1 | 2 | 131000 | 131016 | 131057 | 133004 | 133015 | 2494100 => ErrorClass::Transient,
            0
            | 3
            | 10
            | 33
            | 100
            | 190
            | 200..=299
            | 368
            | 131031
            | 131045
            | 133000
            | 133005
            | 133006
            | 133010 => ErrorClass::NeedsUserAction,
            _ if *is_transient || *http_status >= 500 => ErrorClass::Transient,
            _ if *http_status == 429 => ErrorClass::RateLimited,
            _ => ErrorClass::NeedsUserAction,
        }
    }

    /// Whether trying again (now or after `retry_after_seconds`) can succeed.
    pub fn retryable(&self) -> bool {
        !matches!(self.class(), ErrorClass::NeedsUserAction)
    }

    /// The wait Meta asked for, or what the code implies.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            MetaError::Api(e) if e.retry_after_seconds.is_some() => e.retry_after_seconds,
            MetaError::Api(e) if e.code == 133016 => Some(72 * 3600),
            MetaError::Api(e) if e.code == 133015 => Some(5 * 60 + 30),
            _ => None,
        }
    }

    /// A sentence telling the user what happened and what to do.
    pub fn user_sentence(&self) -> String {
        let MetaError::Api(e) = self else {
            return format!("Meta could not be reached ({self}). Try again in a minute.");
        };
        let (code, message, details) = (&e.code, &e.message, &e.details);
        let advice = match code {
            133005 => "The two-step verification PIN Meta has for this number differs from ours. Reset the number's PIN in WhatsApp Manager (or ask support to set ours through the API), then register again.",
            133006 => "The number must be verified with a one-time code first: finish the OTP verification in WhatsApp Manager, then register again.",
            133010 => "The number is not registered on the WhatsApp platform yet: complete its setup in WhatsApp Manager, then register again.",
            133000 => "A previous deregistration of this number did not finish. Deregister it in Meta, then register again.",
            133016 => "Meta blocked registration of this number for 72 hours after too many register or deregister attempts. Try again after the block ends.",
            133008 => "Too many PIN attempts; Meta asks to wait before trying again.",
            133009 => "The PIN was entered too quickly; wait a moment and try again.",
            133004 | 131016 | 2 | 1 | 131000 => "Meta's service is temporarily unavailable. Try again in a minute.",
            133015 => "The number was recently deleted and Meta has not finished; wait 5 minutes and try again.",
            2494100 | 131057 => "The number is in maintenance mode at Meta; try again in a few minutes.",
            190 | 0 => "Meta rejected the access token (expired or revoked). Reconnect the WhatsApp account.",
            10 | 200..=299 => "The token lacks a permission this needs (whatsapp_business_management and whatsapp_business_messaging). Reconnect the account granting both.",
            100 => "Meta rejected a parameter of the request; check that the number still belongs to this account.",
            368 => "The WhatsApp Business Account is restricted for a policy violation; see Business Support Home.",
            4 | 80007 | 80008 | 130429 => "Meta's rate limit was reached; try again later.",
            _ => "Meta refused the request.",
        };
        match details {
            Some(details) => format!("{advice} (Meta {code}: {message}; {details})"),
            None => format!("{advice} (Meta {code}: {message})"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn api(code: i64, http_status: u16, is_transient: bool) -> MetaError {
        let body = json!({"error": {"message": "(#x) y", "code": code, "is_transient": is_transient, "fbtrace_id": "Az8"}});
        MetaError::from_envelope(http_status, &body, None).unwrap()
    }

    #[test]
    fn the_envelope_is_kept_whole() {
        let body = json!({"error": {"message": "(#130429) Rate limit hit", "type": "OAuthException", "code": 130429,
            "error_subcode": 2494055, "error_user_msg": "Slow down",
            "error_data": {"messaging_product": "whatsapp", "details": "Cloud API message throughput has been reached."},
            "is_transient": false, "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam"}});
        let Some(MetaError::Api(e)) = MetaError::from_envelope(400, &body, Some(60)) else {
            panic!("not an API error")
        };
        let GraphError {
            http_status,
            code,
            subcode,
            details,
            user_message,
            fbtrace_id,
            ..
        } = *e;
        assert_eq!((http_status, code, subcode), (400, 130429, Some(2494055)));
        assert_eq!(
            details.as_deref(),
            Some("Cloud API message throughput has been reached.")
        );
        assert_eq!(user_message.as_deref(), Some("Slow down"));
        assert_eq!(fbtrace_id.as_deref(), Some("Az8or2yhqkZfEZ-_4Qn_Bam"));
        assert!(MetaError::from_envelope(500, &json!({"oops": 1}), None).is_none());
    }

    #[test]
    fn errors_are_classified_by_code_first() {
        assert_eq!(api(133004, 503, false).class(), ErrorClass::Transient);
        assert_eq!(api(133005, 400, true).class(), ErrorClass::NeedsUserAction);
        assert_eq!(api(133016, 400, false).class(), ErrorClass::RateLimited);
        assert_eq!(api(190, 401, false).class(), ErrorClass::NeedsUserAction);
        assert_eq!(api(80008, 400, false).class(), ErrorClass::RateLimited);
        assert_eq!(api(999_999, 500, false).class(), ErrorClass::Transient);
        assert_eq!(api(999_999, 400, true).class(), ErrorClass::Transient);
        assert_eq!(
            api(999_999, 400, false).class(),
            ErrorClass::NeedsUserAction
        );
        assert_eq!(
            MetaError::Transport("timeout".into()).class(),
            ErrorClass::Transient
        );
    }

    #[test]
    fn user_sentences_say_what_to_do() {
        assert!(api(133005, 400, false).user_sentence().contains("PIN"));
        assert!(api(133006, 400, false).user_sentence().contains("verified"));
        assert!(api(190, 401, false).user_sentence().contains("Reconnect"));
        assert!(api(190, 401, false).is_token_rejected());
        assert_eq!(
            api(133016, 400, false).retry_after_seconds(),
            Some(72 * 3600)
        );
    }
}
