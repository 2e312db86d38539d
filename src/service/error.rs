//! What a use case can end in, in the product's words. Only `api/` turns these into HTTP.

use chrono::NaiveDateTime;

use crate::db::DbError;
use crate::domain::{PlatformType, RuleError};
use crate::meta::MetaError;

/// How soon to try again after the database could not serve (its lock or its pool was busy).
pub const UNAVAILABLE_RETRY_AFTER_SECONDS: u64 = 2;

/// Every way a use case can fail.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// Input that breaks a rule (a bad name, an empty keyword, a bad cursor...).
    #[error("{0}")]
    Invalid(String),
    #[error("No phone number with that id exists in your workspace.")]
    PhoneNumberNotFound,
    #[error("No agent with that id exists in your workspace.")]
    AgentNotFound,
    #[error("No WhatsApp account with that id exists in your workspace.")]
    AccountNotFound,
    #[error("No conversation with that id exists in your workspace.")]
    ConversationNotFound,
    /// The Idempotency-Key was used before for another request.
    #[error("This Idempotency-Key was used for another request; use a new key for a new request.")]
    IdempotencyKeyReused,
    /// The request holding the Idempotency-Key has not answered yet.
    #[error("A request with this Idempotency-Key is still running; try again in a moment for its answer.")]
    IdempotencyKeyInProgress,
    /// Only numbers fully on the Cloud API can answer inbound messages or send outbound ones.
    #[error("{}", RuleError::NotCloudApi { display: display.clone(), platform_type: platform_type.clone() })]
    NotCloudApi {
        display: String,
        platform_type: PlatformType,
    },
    #[error("{display} was removed from its WhatsApp Business Account in Meta and can no longer be used.")]
    NumberRemoved { display: String },
    /// The agent has no outbound number to send from.
    #[error("The agent \"{agent}\" has no outbound number. Pick one with PUT /api/v1/agents/{{id}}/whatsapp-outbound-number, then send again.")]
    NoOutboundNumber { agent: String },
    /// Free text to a customer whose 24-hour window is closed (or never opened).
    #[error("{}", outside_window_sentence(*last_inbound_at))]
    OutsideServiceWindow {
        last_inbound_at: Option<NaiveDateTime>,
    },
    #[error("An agent named \"{name}\" already exists in your workspace; choose another name.")]
    AgentNameTaken { name: String },
    #[error("`{field}` is required: the agent has no stored secret of this kind to keep.")]
    SecretRequired { field: &'static str },
    #[error("{display} is being registered right now; wait for that attempt to finish.")]
    RegistrationInProgress { display: String },
    #[error("{display} {}; there is nothing to register.", if *coexistence {
        "is also on the WhatsApp Business app (coexistence): Meta registered it already"
    } else {
        "is already on the WhatsApp Cloud API"
    })]
    AlreadyRegistered { display: String, coexistence: bool },
    /// Meta's limit of register calls is used up, or Meta itself blocked the number.
    #[error("{} Try again after {} UTC; trying sooner would keep the number blocked.",
        if *by_meta { "Meta blocked registration of this number." }
        else { "Meta allows 10 register calls per number in 72 hours, and they are used up." },
        until.format("%Y-%m-%d %H:%M"))]
    RegistrationLimitReached {
        until: NaiveDateTime,
        by_meta: bool,
        retry_after_seconds: u64,
    },
    /// Meta did not answer the number's latest register calls (down, timing out): the next try
    /// waits, so that an outage does not spend Meta's 10 calls in 72 hours.
    #[error("Meta did not answer the last {unanswered} register calls for this number (it may be down). So that retrying does not spend the number's 10 register calls in 72 hours, the next try waits until {} UTC, and makes one call.", until.format("%Y-%m-%d %H:%M:%S"))]
    RegistrationPaused {
        until: NaiveDateTime,
        unanswered: usize,
        retry_after_seconds: u64,
    },
    /// The account's token is missing or Meta rejected it.
    #[error(
        "The WhatsApp account's access token is missing or was rejected by Meta. {}",
        crate::domain::RECONNECT_ADVICE
    )]
    AccountNeedsReconnect,
    #[error("This WhatsApp Business Account is connected to another workspace. Disconnect it there first; accounts are never shared or moved silently.")]
    AccountConnectedElsewhere,
    #[error("This account is being synced right now; its numbers will be current in a moment.")]
    SyncInProgress,
    /// The service's budget of calls to this WABA for the hour is spent (it stays below Meta's).
    #[error("This WhatsApp Business Account has used this hour's share of Meta's call limit; try again in {retry_after_seconds} seconds.")]
    WabaCallBudgetSpent { retry_after_seconds: u64 },
    /// Embedded Signup's code was refused: it expired (30 seconds), or was used already.
    #[error("Meta refused the signup code: it expired or was already used. Open the Embedded Signup popup again. ({})", .0.user_sentence())]
    SignupCodeInvalid(MetaError),
    /// The token works but lacks a permission the connection needs.
    #[error("{}", .0.user_sentence())]
    MetaPermissionMissing(MetaError),
    /// Meta refused the call or could not be reached.
    #[error("{}", .0.user_sentence())]
    Meta(MetaError),
    #[error("A Meta app is configured: messages go to Meta, not to the sandbox.")]
    SandboxOff,
    /// A dependency (the database) cannot serve now.
    #[error("The service is temporarily unavailable; try again shortly.")]
    Unavailable(String),
    /// A bug or an unexpected failure; the cause is logged, never shown.
    #[error("An unexpected error occurred.")]
    Internal(String),
}

fn outside_window_sentence(last_inbound_at: Option<NaiveDateTime>) -> String {
    let when = match last_inbound_at {
        Some(at) => format!(
            "The customer last wrote to this number at {} UTC, more than 24 hours ago",
            at.format("%Y-%m-%d %H:%M")
        ),
        None => "The customer has never written to this number".to_owned(),
    };
    format!("{when}, so WhatsApp allows only an approved template now: send `template` instead of `text`.")
}

impl ServiceError {
    /// The cause to log (never shown to callers for internal errors).
    pub fn cause(&self) -> Option<&str> {
        match self {
            ServiceError::Unavailable(cause) | ServiceError::Internal(cause) => Some(cause),
            _ => None,
        }
    }

    /// What to log: the sentence, and for internal and unavailable errors the cause callers
    /// never see (their sentence alone says nothing an operator can act on).
    pub fn diagnostic(&self) -> String {
        match self.cause() {
            Some(cause) => format!("{self} ({cause})"),
            None => self.to_string(),
        }
    }

    /// Meta's error, for failures Meta caused.
    pub fn meta(&self) -> Option<&MetaError> {
        match self {
            ServiceError::Meta(e)
            | ServiceError::SignupCodeInvalid(e)
            | ServiceError::MetaPermissionMissing(e) => Some(e),
            _ => None,
        }
    }

    /// Whether trying again (now or after a wait) can succeed, for errors where the API says.
    pub fn retryable(&self) -> Option<bool> {
        match self {
            ServiceError::RegistrationLimitReached { .. }
            | ServiceError::RegistrationPaused { .. }
            | ServiceError::SyncInProgress
            | ServiceError::WabaCallBudgetSpent { .. }
            | ServiceError::Unavailable(_) => Some(true),
            ServiceError::Meta(e) => Some(e.retryable()),
            ServiceError::SignupCodeInvalid(_) | ServiceError::MetaPermissionMissing(_) => {
                Some(false)
            }
            _ => None,
        }
    }

    /// How long to wait before trying again, when known.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            ServiceError::RegistrationLimitReached {
                retry_after_seconds,
                ..
            }
            | ServiceError::RegistrationPaused {
                retry_after_seconds,
                ..
            } => Some(*retry_after_seconds),
            ServiceError::Meta(e) => e.retry_after_seconds(),
            ServiceError::Unavailable(_) => Some(UNAVAILABLE_RETRY_AFTER_SECONDS),
            ServiceError::WabaCallBudgetSpent {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            _ => None,
        }
    }
}

impl From<RuleError> for ServiceError {
    fn from(err: RuleError) -> Self {
        match err {
            RuleError::Invalid(msg) => ServiceError::Invalid(msg),
            RuleError::NotCloudApi {
                display,
                platform_type,
            } => ServiceError::NotCloudApi {
                display,
                platform_type,
            },
            RuleError::NumberRemoved { display } => ServiceError::NumberRemoved { display },
            RuleError::SecretRequired { field } => ServiceError::SecretRequired { field },
        }
    }
}

impl From<diesel::result::Error> for ServiceError {
    fn from(err: diesel::result::Error) -> Self {
        if crate::db::is_busy(&err) {
            ServiceError::Unavailable(format!("database busy: {err}"))
        } else if crate::db::is_connection_lost(&err) {
            ServiceError::Unavailable(format!("database connection lost: {err}"))
        } else {
            ServiceError::Internal(format!("database: {err}"))
        }
    }
}

impl From<DbError> for ServiceError {
    fn from(err: DbError) -> Self {
        match err {
            DbError::Unavailable(cause) => ServiceError::Unavailable(cause),
            DbError::Task(cause) => ServiceError::Internal(cause),
        }
    }
}

impl From<MetaError> for ServiceError {
    fn from(err: MetaError) -> Self {
        ServiceError::Meta(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diagnostic_carries_the_cause_the_caller_never_sees() {
        let err = ServiceError::Internal("database: disk I/O error".into());
        assert_eq!(err.to_string(), "An unexpected error occurred.");
        assert!(err.diagnostic().contains("disk I/O error"));
        assert_eq!(
            ServiceError::SyncInProgress.diagnostic(),
            ServiceError::SyncInProgress.to_string()
        );
    }
}
