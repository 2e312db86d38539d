//! Ids, one type each, so a function that takes a [`PhoneNumberId`] cannot be handed an
//! [`AgentId`], and a reader knows what a value is from its type. Our own ids are UUIDs; Meta's
//! ids and workspace ids are opaque text. How they are stored is `db::types`' business alone.

use std::fmt;
use std::str::FromStr;

use utoipa::openapi::schema::{ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{KnownFormat, RefOr, Schema};

/// The one spelling of our ids: a hyphenated UUID (either case). Other spellings the `uuid` crate
/// would read (simple, braced, URN) are refused, so the document can state the form exactly.
pub const UUID_PATTERN: &str =
    "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$";

/// A text that is not an id of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a hyphenated UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")]
pub struct NotAnId;

/// Reads a hyphenated UUID, and nothing else (36 characters is that form alone).
pub fn parse_hyphenated(text: &str) -> Result<uuid::Uuid, NotAnId> {
    match uuid::Uuid::parse_str(text) {
        Ok(uuid) if text.len() == 36 => Ok(uuid),
        _ => Err(NotAnId),
    }
}

/// Declares newtypes over `Uuid`: our own resources' ids.
macro_rules! uuid_ids {
    ($($(#[doc = $doc:literal])* $name:ident;)+) => {$(
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[serde(transparent)]
        pub struct $name(pub uuid::Uuid);

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse()
                    .map_err(|e| serde::de::Error::custom(format!("`{text}` is {e}")))
            }
        }

        impl $name {
            /// A new random id.
            pub fn random() -> Self {
                Self(uuid::Uuid::new_v4())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl FromStr for $name {
            type Err = NotAnId;
            fn from_str(text: &str) -> Result<Self, Self::Err> {
                parse_hyphenated(text).map(Self)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .format(Some(SchemaFormat::KnownFormat(KnownFormat::Uuid)))
                    .pattern(Some(UUID_PATTERN))
                    .description(Some(concat!($($doc, "\n"),*).trim()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )+};
}

/// Declares newtypes over text: ids we are given (by Meta, by a token) and never make.
macro_rules! text_ids {
    ($($(#[doc = $doc:literal])* $name:ident;)+) => {$(
        $(#[doc = $doc])*
        #[derive(
            Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord,
            serde::Serialize, serde::Deserialize, diesel::expression::AsExpression, diesel::deserialize::FromSqlRow,
        )]
        #[diesel(sql_type = diesel::sql_types::Text)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(text: &str) -> Self {
                Self(text.to_owned())
            }
        }

        impl From<String> for $name {
            fn from(text: String) -> Self {
                Self(text)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some(concat!($($doc, "\n"),*).trim()))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}
    )+};
}

uuid_ids! {
    /// Our id of a phone number (UUID). Not Meta's id, which is `phone_number_id`.
    PhoneNumberId;
    /// Our id of an AI chat agent (UUID).
    AgentId;
    /// Our id of a connected WhatsApp Business Account (UUID). Not Meta's id, which is `waba_id`.
    AccountId;
    /// Our id of one register call in a number's ledger (UUID).
    AttemptId;
    /// Our id of one quality-rating change (UUID).
    QualityEventId;
    /// Our id of one audit-trail entry (UUID).
    AuditEventId;
    /// Who holds a lease (one click of Register, one sync, one worker's webhook jobs): only its
    /// holder renews or releases it.
    LeaseOwner;
    /// Our id of a customer: someone who wrote to one of the workspace's numbers (UUID).
    CustomerId;
    /// Our id of a conversation: one customer on one of our numbers (UUID).
    ConversationId;
    /// Our id of a message, inbound or outbound (UUID). Meta's is `wamid`.
    MessageId;
}

text_ids! {
    /// The workspace a token names (its `workspace_id` claim); everything belongs to one.
    WorkspaceId;
    /// Meta's id of a phone number (the table's "ID" column; `phone_number_id` in JSON).
    MetaPhoneNumberId;
    /// Meta's id of a WhatsApp Business Account.
    WabaId;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_ids_print_and_parse_as_hyphenated_uuids() {
        let id = PhoneNumberId::random();
        assert_eq!(id.to_string().parse::<PhoneNumberId>().unwrap(), id);
        assert_eq!(
            serde_json::to_value(id).unwrap(),
            serde_json::json!(id.to_string())
        );
        assert!("not-a-uuid".parse::<AgentId>().is_err());
        let simple = id.0.simple().to_string();
        assert!(
            simple.parse::<PhoneNumberId>().is_err(),
            "only the hyphenated form"
        );
        assert!(serde_json::from_value::<PhoneNumberId>(serde_json::json!(simple)).is_err());
        let upper = id.to_string().to_uppercase();
        assert_eq!(upper.parse::<PhoneNumberId>().unwrap(), id);
    }

    #[test]
    fn text_ids_are_transparent_in_json() {
        let waba = WabaId::from("100000000000001");
        assert_eq!(serde_json::to_string(&waba).unwrap(), "\"100000000000001\"");
        assert_eq!(waba.as_str(), "100000000000001");
    }
}
