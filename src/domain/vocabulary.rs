//! The product's closed sets, each an enum whose text form is written once, in its declaration:
//! the JSON value, the stored column value and the OpenAPI `enum` all come from it.

use std::fmt;

/// A text that names no member of a closed set (a bad query value, or a stored value this build
/// does not know).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{value}` is not a {set}; expected one of: {expected}")]
pub struct UnknownValue {
    pub set: &'static str,
    pub value: String,
    pub expected: String,
}

/// Declares a closed set whose members are written as fixed texts.
macro_rules! text_enum {
    (
        $(#[doc = $doc:literal])*
        $set:literal pub enum $name:ident {
            $($(#[doc = $vdoc:literal])* $variant:ident = $text:literal,)+
        }
    ) => {
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        pub enum $name {
            $($(#[doc = $vdoc])* $variant,)+
        }

        impl $name {
            /// Every member, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The member's text, as JSON, the database and the OpenAPI document write it.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The member named by `text`, exactly.
            pub fn parse(text: &str) -> Result<Self, $crate::domain::vocabulary::UnknownValue> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::domain::vocabulary::UnknownValue {
                        set: $set,
                        value: text.chars().take(64).collect(),
                        expected: [$($text),+].join(", "),
                    }),
                }
            }
        }

        impl ::std::fmt::Display for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::domain::vocabulary::UnknownValue;
            fn from_str(text: &str) -> Result<Self, $crate::domain::vocabulary::UnknownValue> {
                Self::parse(text)
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
                utoipa::openapi::schema::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .enum_values(Some([$($text),+]))
                    .description(Some(concat!($($doc, "\n"),*).trim()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}

pub(crate) use text_enum;

text_enum! {
    /// Who may change things in a workspace: `editor` reads and changes, `viewer` only reads.
    "role" pub enum Role {
        Editor = "editor",
        Viewer = "viewer",
    }
}

impl Role {
    pub fn can_write(self) -> bool {
        matches!(self, Role::Editor)
    }
}

text_enum! {
    /// Meta's quality rating of a number. Meta's `NA` for new numbers, and anything new, is `UNKNOWN`.
    "quality rating" pub enum QualityRating {
        Green = "GREEN",
        Yellow = "YELLOW",
        Red = "RED",
        Unknown = "UNKNOWN",
    }
}

impl QualityRating {
    /// Maps whatever Meta sends (`GREEN`, `yellow`, `HIGH`, `NA`, ...) onto the four values.
    pub fn from_meta(raw: &str) -> Self {
        match raw.trim().to_ascii_uppercase().as_str() {
            "GREEN" | "HIGH" => QualityRating::Green,
            "YELLOW" | "MEDIUM" => QualityRating::Yellow,
            "RED" | "LOW" => QualityRating::Red,
            _ => QualityRating::Unknown,
        }
    }
}

text_enum! {
    /// Where a number stands with Meta's `/register` (the Actions column).
    "registration state" pub enum RegistrationState {
        /// Not on the Cloud API yet: the Register action is offered.
        NotRegistered = "not_registered",
        /// A register call to Meta is running now.
        Registering = "registering",
        /// On the Cloud API (or a coexistence number, which Meta registers itself).
        Registered = "registered",
        /// The last attempt failed; `last_error` says why and whether retrying helps.
        Failed = "failed",
    }
}

text_enum! {
    /// How one register call ended: `pending` while it runs (one left by a crashed process still
    /// counts toward Meta's limit, as the call may have reached Meta), `succeeded` or `failed`.
    "registration attempt outcome" pub enum AttemptOutcome {
        Pending = "pending",
        Succeeded = "succeeded",
        Failed = "failed",
    }
}

text_enum! {
    /// What noticed a quality change: a `sync` with Meta, a `registration`, or a Meta `webhook`.
    "quality event source" pub enum QualityEventSource {
        Sync = "sync",
        Registration = "registration",
        Webhook = "webhook",
    }
}

text_enum! {
    /// A connected account's standing: `connected`, or `needs_reconnect` after Meta rejected its
    /// token (connect it again with a new code or token). A `disconnected` account (token wiped,
    /// numbers removed) is kept for its history only and never listed.
    "account status" pub enum AccountStatus {
        Connected = "connected",
        NeedsReconnect = "needs_reconnect",
        Disconnected = "disconnected",
    }
}

/// What to do about an account whose token is missing or was rejected: said in these words only.
pub const RECONNECT_ADVICE: &str =
    "Reconnect the WhatsApp account: run Embedded Signup again, or connect a new system-user token.";

text_enum! {
    /// What an audit-trail entry records.
    "audit action" pub enum AuditAction {
        InboundAgentAssigned = "inbound_agent.assigned",
        InboundAgentCleared = "inbound_agent.cleared",
        OutboundNumberSet = "outbound_number.set",
        OutboundNumberCleared = "outbound_number.cleared",
        AgentCreated = "agent.created",
        AgentUpdated = "agent.updated",
        AgentDeleted = "agent.deleted",
        AccountConnected = "account.connected",
        AccountReconnected = "account.reconnected",
        AccountSynced = "account.synced",
        AccountDisconnected = "account.disconnected",
        /// Meta reported an event on the account (`account_update`: a violation, a restriction,
        /// a ban decision...), named in `detail.meta_event`.
        AccountMetaEvent = "account.meta_event",
    }
}

text_enum! {
    /// Which Meta the server talks to: the real Graph API (`graph`), or the built-in `sandbox`
    /// that stands in for Meta when no Meta app is configured.
    "Meta mode" pub enum MetaMode {
        Graph = "graph",
        Sandbox = "sandbox",
    }
}

text_enum! {
    /// How an agent answers: FAQ keywords, an OpenAI-compatible server, or a webhook.
    "responder kind" pub enum ResponderKind {
        Faq = "faq",
        Openai = "openai",
        Webhook = "webhook",
    }
}

text_enum! {
    /// Why the Register action cannot be used now; null when nothing blocks it (or the number is
    /// registered already). `coexistence`: Meta registered the number itself (WhatsApp Business
    /// app); `removed`: gone from Meta; `account_needs_reconnect`: the account's token was
    /// rejected; `limit_reached`: Meta's 10 calls in 72 hours are used up (see `next_attempt_at`);
    /// `meta_unavailable`: Meta did not answer the latest register calls (down, timing out), so
    /// the next try waits until `next_attempt_at` and makes one call.
    "blocked reason" pub enum BlockedReason {
        Coexistence = "coexistence",
        Removed = "removed",
        AccountNeedsReconnect = "account_needs_reconnect",
        LimitReached = "limit_reached",
        MetaUnavailable = "meta_unavailable",
    }
}

text_enum! {
    /// The Phone Numbers table's order, by one of its columns; `-` before a name reverses it. Ties
    /// go by our id, so paging is stable. `quality_rating` puts the worst first (RED, YELLOW,
    /// UNKNOWN, GREEN); `phone_number` (the default) orders by the number's digits.
    "sort order" pub enum NumberSort {
        PhoneNumber = "phone_number",
        PhoneNumberDesc = "-phone_number",
        VerifiedName = "verified_name",
        VerifiedNameDesc = "-verified_name",
        PlatformType = "platform_type",
        PlatformTypeDesc = "-platform_type",
        PhoneNumberId = "phone_number_id",
        PhoneNumberIdDesc = "-phone_number_id",
        QualityRating = "quality_rating",
        QualityRatingDesc = "-quality_rating",
    }
}

impl NumberSort {
    /// True for the reversed orders.
    pub fn descending(self) -> bool {
        self.as_str().starts_with('-')
    }
}

impl QualityRating {
    /// Worst first: the order of the table's quality sort (stored beside the rating as text, so
    /// every sort of the table pages on a text key).
    pub fn rank(self) -> &'static str {
        match self {
            QualityRating::Red => "0",
            QualityRating::Yellow => "1",
            QualityRating::Unknown => "2",
            QualityRating::Green => "3",
        }
    }
}

text_enum! {
    /// Why a number carries a quality alert: its rating dropped (`quality_dropped`), or Meta's
    /// status of it turned `flagged`, `restricted`, `banned` or `disconnected`.
    "quality alert reason" pub enum QualityAlertReason {
        QualityDropped = "quality_dropped",
        Flagged = "flagged",
        Restricted = "restricted",
        Banned = "banned",
        Disconnected = "disconnected",
    }
}

impl QualityAlertReason {
    /// The alert Meta's status of a number calls for, if any.
    pub fn of_status(status: Option<&str>) -> Option<Self> {
        match status?.trim().to_ascii_uppercase().as_str() {
            "FLAGGED" => Some(QualityAlertReason::Flagged),
            "RESTRICTED" => Some(QualityAlertReason::Restricted),
            "BANNED" => Some(QualityAlertReason::Banned),
            "DISCONNECTED" => Some(QualityAlertReason::Disconnected),
            _ => None,
        }
    }
}

/// Meta's platform type of a number: an open set, since Meta may add values. Only `CLOUD_API`
/// numbers can answer inbound messages or send.
#[derive(
    Debug,
    Clone,
    PartialEq,
    Eq,
    Hash,
    diesel::expression::AsExpression,
    diesel::deserialize::FromSqlRow,
)]
#[diesel(sql_type = diesel::sql_types::Text)]
pub enum PlatformType {
    CloudApi,
    OnPremise,
    /// Registered with neither API.
    NotApplicable,
    /// A value this build does not know, kept as Meta sent it.
    Other(String),
}

impl PlatformType {
    pub fn as_str(&self) -> &str {
        match self {
            PlatformType::CloudApi => "CLOUD_API",
            PlatformType::OnPremise => "ON_PREMISE",
            PlatformType::NotApplicable => "NOT_APPLICABLE",
            PlatformType::Other(text) => text,
        }
    }

    /// Any text is a platform type; the known ones become their member.
    pub fn from_meta(text: &str) -> Self {
        match text.trim() {
            "CLOUD_API" => PlatformType::CloudApi,
            "ON_PREMISE" => PlatformType::OnPremise,
            "NOT_APPLICABLE" => PlatformType::NotApplicable,
            other => PlatformType::Other(other.to_owned()),
        }
    }
}

impl fmt::Display for PlatformType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for PlatformType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl utoipa::PartialSchema for PlatformType {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        utoipa::openapi::schema::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "Meta's platform type: `CLOUD_API`, `ON_PREMISE`, `NOT_APPLICABLE`, or any other \
                 value Meta sends. Only `CLOUD_API` numbers can answer or send.",
            ))
            .examples(["CLOUD_API", "ON_PREMISE", "NOT_APPLICABLE"])
            .into()
    }
}

impl utoipa::ToSchema for PlatformType {}

text_enum! {
    /// What a job holds: one part of one of Meta's deliveries, or a message an agent sends.
    "webhook job kind" pub enum JobKind {
        /// A customer's message (`messages[]` of the `messages` field).
        Message = "message",
        /// A status of a message we sent (`statuses[]`).
        Status = "status",
        /// `phone_number_quality_update`.
        QualityUpdate = "quality_update",
        /// `phone_number_name_update`.
        NameUpdate = "name_update",
        /// `account_update`.
        AccountUpdate = "account_update",
        /// Any other field or error Meta sends: recorded, nothing to do.
        Other = "other",
        /// A message an agent sends from its outbound number (`POST /agents/{id}/messages`).
        Send = "send",
        /// A registration queued by `POST /phone-numbers/register` (register everything pending).
        Register = "register",
    }
}

text_enum! {
    /// Where a webhook job is: `queued` (waiting or retrying), `running` (a worker holds it),
    /// `done`, or `dead` (it kept failing; its last error says why).
    "webhook job state" pub enum JobState {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Dead = "dead",
    }
}

text_enum! {
    /// Why `POST /api/v1/phone-numbers/register` did not queue a number: `not_found` (no such
    /// number in the workspace), `removed`, `coexistence` (Meta registered it itself),
    /// `already_registered`, `in_progress` (being registered or already queued),
    /// `account_needs_reconnect`, `limit_reached` (Meta's 10 calls in 72 hours are used up; see
    /// `retry_after_seconds`).
    "skip reason" pub enum RegisterSkipReason {
        NotFound = "not_found",
        Removed = "removed",
        Coexistence = "coexistence",
        AlreadyRegistered = "already_registered",
        InProgress = "in_progress",
        AccountNeedsReconnect = "account_needs_reconnect",
        LimitReached = "limit_reached",
    }
}

text_enum! {
    /// What an event of the live stream (`GET /api/v1/events`) says happened.
    "event type" pub enum EventKind {
        /// A number appeared in a connected account (a sync, Embedded Signup, Business Manager).
        NumberAdded = "number.added",
        /// A number is gone from Meta, or its account was disconnected.
        NumberRemoved = "number.removed",
        /// What Meta says of a number changed (name, rating, status, platform, limits).
        NumberChanged = "number.changed",
        RegistrationStarted = "registration.started",
        RegistrationSucceeded = "registration.succeeded",
        RegistrationFailed = "registration.failed",
        /// A number's inbound agent was assigned or cleared.
        InboundAgentChanged = "inbound_agent.changed",
        /// An agent's outbound number was picked or cleared.
        OutboundNumberChanged = "outbound_number.changed",
        QualityAlertRaised = "quality_alert.raised",
        QualityAlertCleared = "quality_alert.cleared",
        /// A customer wrote.
        MessageReceived = "message.received",
        /// An agent's message was queued for sending.
        MessageQueued = "message.queued",
        /// Meta accepted a message (an answer or an agent's message).
        MessageSent = "message.sent",
        /// A message's status moved on (`delivered`, `read`, `failed`, ...).
        MessageStatusChanged = "message.status_changed",
        /// Sent first on a stream whose `Last-Event-ID` is too old (its events were cleared):
        /// reload the screen, then listen on.
        Reset = "reset",
    }
}

text_enum! {
    /// `inbound` (a customer wrote it) or `outbound` (an agent's answer).
    "message direction" pub enum MessageDirection {
        Inbound = "inbound",
        Outbound = "outbound",
    }
}

text_enum! {
    /// Inbound: `received` (being answered), `answered`, `no_agent` (the number has no inbound
    /// agent: stored, nothing sent), `not_answered` (the agent had nothing to say), `reply_failed`
    /// (the agent could not answer; see the error). Outbound: `queued` (an agent's message
    /// waiting for its turn within Meta's rate limits), `sending`, then Meta's `sent`,
    /// `delivered`, `read` or `failed` (with Meta's error).
    "message status" pub enum MessageStatus {
        Received = "received",
        Answered = "answered",
        NoAgent = "no_agent",
        NotAnswered = "not_answered",
        ReplyFailed = "reply_failed",
        Queued = "queued",
        Sending = "sending",
        Sent = "sent",
        Delivered = "delivered",
        Read = "read",
        Failed = "failed",
    }
}

impl MessageStatus {
    /// Meta's delivery statuses, as they arrive in `statuses[].status`.
    pub fn from_meta_status(raw: &str) -> Option<Self> {
        match raw {
            "sent" => Some(MessageStatus::Sent),
            "delivered" => Some(MessageStatus::Delivered),
            "read" | "played" => Some(MessageStatus::Read),
            "failed" => Some(MessageStatus::Failed),
            _ => None,
        }
    }

    /// How far an outbound message has got. Meta's statuses arrive in any order; one that says
    /// less than what is known (a `delivered` after a `read`) changes nothing. A failure ends a
    /// message that was not yet read.
    pub fn outbound_rank(self) -> u8 {
        match self {
            MessageStatus::Queued | MessageStatus::Sending => 0,
            MessageStatus::Sent => 1,
            MessageStatus::Delivered => 2,
            MessageStatus::Failed => 3,
            MessageStatus::Read => 4,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_member_round_trips_through_its_text_and_json() {
        fn check<T>(
            all: &[T],
            as_str: fn(T) -> &'static str,
            parse: fn(&str) -> Result<T, UnknownValue>,
        ) where
            T: Copy + PartialEq + fmt::Debug + serde::Serialize + serde::de::DeserializeOwned,
        {
            for member in all {
                assert_eq!(parse(as_str(*member)).unwrap(), *member);
                let json = serde_json::to_value(member).unwrap();
                assert_eq!(json, serde_json::json!(as_str(*member)));
                assert_eq!(serde_json::from_value::<T>(json).unwrap(), *member);
            }
        }
        check(Role::ALL, Role::as_str, Role::parse);
        check(
            QualityRating::ALL,
            QualityRating::as_str,
            QualityRating::parse,
        );
        check(
            RegistrationState::ALL,
            RegistrationState::as_str,
            RegistrationState::parse,
        );
        check(
            AttemptOutcome::ALL,
            AttemptOutcome::as_str,
            AttemptOutcome::parse,
        );
        check(
            QualityEventSource::ALL,
            QualityEventSource::as_str,
            QualityEventSource::parse,
        );
        check(
            AccountStatus::ALL,
            AccountStatus::as_str,
            AccountStatus::parse,
        );
        check(AuditAction::ALL, AuditAction::as_str, AuditAction::parse);
        check(MetaMode::ALL, MetaMode::as_str, MetaMode::parse);
        check(
            ResponderKind::ALL,
            ResponderKind::as_str,
            ResponderKind::parse,
        );
        check(
            BlockedReason::ALL,
            BlockedReason::as_str,
            BlockedReason::parse,
        );
        check(NumberSort::ALL, NumberSort::as_str, NumberSort::parse);
    }

    #[test]
    fn an_unknown_text_is_a_clear_error_naming_the_set_and_its_members() {
        let err = QualityRating::parse("PURPLE").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`PURPLE` is not a quality rating; expected one of: GREEN, YELLOW, RED, UNKNOWN"
        );
        assert!(serde_json::from_str::<Role>("\"owner\"").is_err());
    }

    #[test]
    fn quality_ratings_from_meta_are_normalized() {
        assert_eq!(QualityRating::from_meta("GREEN"), QualityRating::Green);
        assert_eq!(QualityRating::from_meta("yellow"), QualityRating::Yellow);
        assert_eq!(QualityRating::from_meta("NA"), QualityRating::Unknown);
        assert_eq!(
            QualityRating::from_meta("SOMETHING_NEW"),
            QualityRating::Unknown
        );
    }

    #[test]
    fn platform_types_keep_values_meta_may_add() {
        assert_eq!(PlatformType::from_meta("CLOUD_API"), PlatformType::CloudApi);
        let new = PlatformType::from_meta("SOMETHING_NEW");
        assert_eq!(new, PlatformType::Other("SOMETHING_NEW".into()));
        assert_eq!(new.as_str(), "SOMETHING_NEW");
    }

    #[test]
    fn only_editors_write() {
        assert!(Role::Editor.can_write());
        assert!(!Role::Viewer.can_write());
    }
}
