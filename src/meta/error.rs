//! Meta's error envelope, kept whole, and what each error means for us: retry, wait, or ask the user.

use serde_json::Value;

/// Meta's error codes this service acts on, by name (reference §2, §6).
pub mod codes {
    /// Could not authenticate the app user: the token is expired or invalidated.
    pub const AUTH_EXCEPTION: i64 = 0;
    /// Access token expired or invalid.
    pub const TOKEN_INVALID: i64 = 190;
    /// Invalid request or possible server error.
    pub const UNKNOWN: i64 = 1;
    /// Temporary downtime or overload.
    pub const TEMPORARY: i64 = 2;
    pub const CAPABILITY: i64 = 3;
    /// App-level rate limit.
    pub const APP_RATE_LIMIT: i64 = 4;
    /// Permission not granted or removed.
    pub const PERMISSION_DENIED: i64 = 10;
    pub const USER_RATE_LIMIT: i64 = 17;
    pub const PAGE_RATE_LIMIT: i64 = 32;
    /// The business phone number has been deleted.
    pub const NUMBER_DELETED: i64 = 33;
    /// Unsupported or misspelled parameter (also: an expired or used authorization code).
    pub const INVALID_PARAMETER: i64 = 100;
    /// Permission errors span 200 to 299.
    pub const PERMISSIONS: std::ops::RangeInclusive<i64> = 200..=299;
    /// WABA restricted or disabled for a policy violation.
    pub const POLICY_RESTRICTED: i64 = 368;
    pub const CUSTOM_RATE_LIMIT: i64 = 613;
    pub const WABA_RATE_LIMIT: i64 = 80007;
    pub const WABA_TOO_MANY_CALLS: i64 = 80008;
    pub const THROUGHPUT_REACHED: i64 = 130429;
    pub const UNKNOWN_MESSAGE_ERROR: i64 = 131000;
    pub const SERVICE_UNAVAILABLE: i64 = 131016;
    pub const ACCOUNT_LOCKED: i64 = 131031;
    pub const NOT_REGISTERED_CERTIFICATE: i64 = 131045;
    pub const SPAM_RATE_LIMIT: i64 = 131048;
    pub const PAIR_RATE_LIMIT: i64 = 131056;
    pub const MAINTENANCE_MODE: i64 = 131057;
    /// A previous deregistration failed: deregister, then register.
    pub const DEREGISTRATION_FAILED: i64 = 133000;
    pub const REGISTER_SERVER_UNAVAILABLE: i64 = 133004;
    /// The two-step PIN Meta has differs from the one sent.
    pub const PIN_MISMATCH: i64 = 133005;
    /// The number must be verified (OTP) before registering.
    pub const NUMBER_NOT_VERIFIED: i64 = 133006;
    pub const TOO_MANY_PIN_GUESSES: i64 = 133008;
    pub const PIN_TOO_FAST: i64 = 133009;
    pub const NUMBER_NOT_ON_PLATFORM: i64 = 133010;
    /// The number was recently deleted; Meta asks to wait 5 minutes.
    pub const RECENTLY_DELETED: i64 = 133015;
    /// Too many register/deregister calls: registration blocked for 72 hours.
    pub const REGISTRATION_BLOCKED: i64 = 133016;
    pub const NUMBER_MAINTENANCE: i64 = 2494100;
    /// Subcodes of [`INVALID_PARAMETER`] on the code exchange: the code expired, or was used already.
    pub const AUTH_CODE_EXPIRED: i64 = 36007;
    pub const AUTH_CODE_USED: i64 = 36009;
}

use codes::*;

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

impl ErrorClass {
    /// How to react to Meta's `code` alone (the classification of [`MetaError::class`]).
    pub fn of_code(code: i64) -> Self {
        MetaError::Api(Box::new(GraphError {
            http_status: 400,
            code,
            subcode: None,
            message: String::new(),
            details: None,
            user_message: None,
            is_transient: false,
            fbtrace_id: None,
            retry_after_seconds: None,
        }))
        .class()
    }

    /// Whether trying again (now or after a wait) can succeed.
    pub fn retryable(self) -> bool {
        !matches!(self, ErrorClass::NeedsUserAction)
    }
}

/// Meta's error envelope, kept whole.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
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

/// What a [`MetaError::Transport`] says when no connection to Meta was made: the request
/// never reached Meta.
pub const CONNECTION_FAILED: &str = "connection failed";

impl MetaError {
    /// True when Meta cannot have acted on the request: it answered with an error, or no
    /// connection was made. False when the answer was lost (a timeout, a broken answer): Meta may
    /// have acted on it.
    pub fn surely_not_done(&self) -> bool {
        match self {
            MetaError::Api(_) => true,
            MetaError::Transport(what) => what == CONNECTION_FAILED,
            MetaError::Unexpected(_) => false,
        }
    }

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
                .map(crate::domain::text::storable)
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

    /// Meta's error subcode, if Meta gave one.
    pub fn subcode(&self) -> Option<i64> {
        match self {
            MetaError::Api(e) => e.subcode,
            _ => None,
        }
    }

    /// True when Meta rejected the access token: the account needs reconnecting. Decided here only.
    pub fn is_token_rejected(&self) -> bool {
        matches!(self.code(), Some(TOKEN_INVALID) | Some(AUTH_EXCEPTION))
    }

    /// True when the token lacks a permission the call needs.
    pub fn is_permission_missing(&self) -> bool {
        self.code()
            .is_some_and(|c| c == PERMISSION_DENIED || PERMISSIONS.contains(&c))
    }

    /// True when Meta blocked the number from registering for 72 hours.
    pub fn is_registration_blocked(&self) -> bool {
        self.code() == Some(REGISTRATION_BLOCKED)
    }

    /// Transient, rate-limited or needs-user-action, from Meta's code first (as Meta advises),
    /// then `is_transient` and the HTTP status.
    pub fn class(&self) -> ErrorClass {
        let MetaError::Api(e) = self else {
            return ErrorClass::Transient;
        };
        let (is_transient, http_status) = (&e.is_transient, &e.http_status);
        match e.code {
            APP_RATE_LIMIT | USER_RATE_LIMIT | PAGE_RATE_LIMIT | CUSTOM_RATE_LIMIT
            | WABA_RATE_LIMIT | WABA_TOO_MANY_CALLS | THROUGHPUT_REACHED | SPAM_RATE_LIMIT
            | PAIR_RATE_LIMIT | TOO_MANY_PIN_GUESSES | PIN_TOO_FAST | REGISTRATION_BLOCKED => {
                ErrorClass::RateLimited
            }
            UNKNOWN
            | TEMPORARY
            | UNKNOWN_MESSAGE_ERROR
            | SERVICE_UNAVAILABLE
            | MAINTENANCE_MODE
            | REGISTER_SERVER_UNAVAILABLE
            | RECENTLY_DELETED
            | NUMBER_MAINTENANCE => ErrorClass::Transient,
            AUTH_EXCEPTION
            | CAPABILITY
            | PERMISSION_DENIED
            | NUMBER_DELETED
            | INVALID_PARAMETER
            | TOKEN_INVALID
            | POLICY_RESTRICTED
            | ACCOUNT_LOCKED
            | NOT_REGISTERED_CERTIFICATE
            | DEREGISTRATION_FAILED
            | PIN_MISMATCH
            | NUMBER_NOT_VERIFIED
            | NUMBER_NOT_ON_PLATFORM => ErrorClass::NeedsUserAction,
            c if PERMISSIONS.contains(&c) => ErrorClass::NeedsUserAction,
            _ if *is_transient || *http_status >= 500 => ErrorClass::Transient,
            _ if *http_status == 429 => ErrorClass::RateLimited,
            _ => ErrorClass::NeedsUserAction,
        }
    }

    /// Whether trying again (now or after `retry_after_seconds`) can succeed.
    pub fn retryable(&self) -> bool {
        self.class().retryable()
    }

    /// The wait Meta asked for, or what the code implies.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            MetaError::Api(e) if e.retry_after_seconds.is_some() => e.retry_after_seconds,
            MetaError::Api(e) if e.code == REGISTRATION_BLOCKED => Some(
                crate::domain::registration::WINDOW
                    .num_seconds()
                    .unsigned_abs(),
            ),
            MetaError::Api(e) if e.code == RECENTLY_DELETED => Some(5 * 60 + 30),
            _ => None,
        }
    }

    /// A sentence telling the user what happened and what to do.
    pub fn user_sentence(&self) -> String {
        let MetaError::Api(e) = self else {
            return format!("Meta could not be reached ({self}). Try again in a minute.");
        };
        let (code, message, details) = (&e.code, &e.message, &e.details);
        let advice = match *code {
            PIN_MISMATCH => "The two-step verification PIN Meta has for this number differs from ours. Reset the number's PIN in WhatsApp Manager (or ask support to set ours through the API), then register again.",
            NUMBER_NOT_VERIFIED => "The number must be verified with a one-time code first: finish the OTP verification in WhatsApp Manager, then register again.",
            NUMBER_NOT_ON_PLATFORM => "The number is not registered on the WhatsApp platform yet: complete its setup in WhatsApp Manager, then register again.",
            DEREGISTRATION_FAILED => "A previous deregistration of this number did not finish. Deregister it in Meta, then register again.",
            REGISTRATION_BLOCKED => "Meta blocked registration of this number for 72 hours after too many register or deregister attempts. Try again after the block ends.",
            TOO_MANY_PIN_GUESSES => "Too many PIN attempts; Meta asks to wait before trying again.",
            PIN_TOO_FAST => "The PIN was entered too quickly; wait a moment and try again.",
            REGISTER_SERVER_UNAVAILABLE | SERVICE_UNAVAILABLE | TEMPORARY | UNKNOWN | UNKNOWN_MESSAGE_ERROR => "Meta's service is temporarily unavailable. Try again in a minute.",
            RECENTLY_DELETED => "The number was recently deleted and Meta has not finished; wait 5 minutes and try again.",
            NUMBER_MAINTENANCE | MAINTENANCE_MODE => "The number is in maintenance mode at Meta; try again in a few minutes.",
            TOKEN_INVALID | AUTH_EXCEPTION => crate::domain::RECONNECT_ADVICE,
            c if c == PERMISSION_DENIED || PERMISSIONS.contains(&c) => "The token lacks a permission this needs (whatsapp_business_management and whatsapp_business_messaging). Reconnect the account granting both.",
            INVALID_PARAMETER => "Meta rejected a parameter of the request; check that the number still belongs to this account.",
            POLICY_RESTRICTED => "The WhatsApp Business Account is restricted for a policy violation; see Business Support Home.",
            APP_RATE_LIMIT | WABA_RATE_LIMIT | WABA_TOO_MANY_CALLS | THROUGHPUT_REACHED => "Meta's rate limit was reached; try again later.",
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

    #[test]
    fn nul_in_metas_error_never_reaches_its_texts() {
        let body = json!({"error": {"message": "bad\u{0}", "code": 100, "fbtrace_id": "A\u{0}",
            "error_user_msg": "u\u{0}", "error_data": {"details": "d\u{0}"}}});
        let Some(MetaError::Api(err)) = MetaError::from_envelope(400, &body, None) else {
            panic!("an envelope");
        };
        for text in [
            Some(err.message.as_str()),
            err.details.as_deref(),
            err.user_message.as_deref(),
            err.fbtrace_id.as_deref(),
        ] {
            let text = text.unwrap();
            assert!(text.ends_with('\u{FFFD}'), "{text:?}");
        }
    }

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
