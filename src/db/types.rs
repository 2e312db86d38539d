//! The one place where the domain's ids and closed sets become column text and back, on
//! PostgreSQL, on SQLite, and through the `MultiBackend` of [`super::DbConnection`]. A stored value
//! this build does not know is a clear deserialization error naming the set, never a panic.

use std::borrow::Cow;
use std::io::Write;

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::Text;
use diesel::sqlite::Sqlite;

use super::MultiBackend;
use crate::domain::ids::*;
use crate::domain::vocabulary::*;

/// How a type is written to, and read from, a TEXT column.
pub trait StoredText: Sized {
    fn to_text(&self) -> Cow<'_, str>;
    fn from_text(text: &str) -> Result<Self, String>;
}

/// `StoredText` for types with `as_str`, read back by `$read` (a `fn(&str) -> Result<Self, String>`).
macro_rules! stored_as_str {
    ($read:expr => $($t:ty),+) => {$(
        impl StoredText for $t {
            fn to_text(&self) -> Cow<'_, str> {
                Cow::Borrowed(self.as_str())
            }
            fn from_text(text: &str) -> Result<Self, String> {
                $read(text)
            }
        }
    )+};
}

macro_rules! uuid_text {
    ($($t:ty),+) => {$(
        impl StoredText for $t {
            fn to_text(&self) -> Cow<'_, str> {
                Cow::Owned(self.to_string())
            }
            fn from_text(text: &str) -> Result<Self, String> {
                text.parse()
                    .map_err(|e| format!("stored {} `{text}` is {e}", stringify!($t)))
            }
        }
    )+};
}

uuid_text!(
    PhoneNumberId,
    AgentId,
    AccountId,
    AttemptId,
    QualityEventId,
    AuditEventId,
    LeaseOwner
);
stored_as_str!(|text: &str| Ok(Self::from(text)) => WorkspaceId, MetaPhoneNumberId, WabaId);
stored_as_str!(|text: &str| Ok(PlatformType::from_meta(text)) => PlatformType);
stored_as_str!(|text: &str| Ok(Self::from(text)) => crate::crypto::Sealed);
stored_as_str!(
    |text: &str| Self::parse(text).map_err(|e| format!("stored value: {e}")) =>
    QualityRating,
    RegistrationState,
    AttemptOutcome,
    QualityEventSource,
    AccountStatus,
    AuditAction,
    ResponderKind
);

macro_rules! sql_text {
    ($($t:ty),+ $(,)?) => {$(
        impl ToSql<Text, Pg> for $t {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Pg>) -> serialize::Result {
                out.write_all(self.to_text().as_bytes())?;
                Ok(IsNull::No)
            }
        }

        impl ToSql<Text, Sqlite> for $t {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, Sqlite>) -> serialize::Result {
                match self.to_text() {
                    Cow::Borrowed(text) => out.set_value(text),
                    Cow::Owned(text) => out.set_value(text),
                }
                Ok(IsNull::No)
            }
        }

        impl ToSql<Text, MultiBackend> for $t {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, MultiBackend>) -> serialize::Result {
                out.set_value((Text, self));
                Ok(IsNull::No)
            }
        }

        impl FromSql<Text, Pg> for $t {
            fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
                let text = std::str::from_utf8(bytes.as_bytes())?;
                Ok(<$t as StoredText>::from_text(text)?)
            }
        }

        impl FromSql<Text, Sqlite> for $t {
            fn from_sql(bytes: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                let text = <String as FromSql<Text, Sqlite>>::from_sql(bytes)?;
                Ok(<$t as StoredText>::from_text(&text)?)
            }
        }

        impl FromSql<Text, MultiBackend> for $t {
            fn from_sql(bytes: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
                bytes.from_sql::<Self, Text>()
            }
        }
    )+};
}

sql_text!(
    PhoneNumberId,
    AgentId,
    AccountId,
    AttemptId,
    QualityEventId,
    AuditEventId,
    LeaseOwner,
    WorkspaceId,
    MetaPhoneNumberId,
    WabaId,
    QualityRating,
    RegistrationState,
    AttemptOutcome,
    QualityEventSource,
    AccountStatus,
    AuditAction,
    ResponderKind,
    PlatformType,
    crate::crypto::Sealed,
);

#[cfg(test)]
mod tests {
    //! Every id and closed set, written to a real column and read back, on SQLite and (when
    //! `TEST_DATABASE_URL` names one) on PostgreSQL, through the same `DbConnection` the service uses.

    use diesel::connection::SimpleConnection;
    use diesel::prelude::*;
    use diesel::sql_types::Text;

    use super::*;
    use crate::db::{DbConnection, DbUrl};

    diesel::table! {
        roundtrip (k) {
            k -> Integer,
            v -> Text,
        }
    }

    fn connections() -> Vec<DbConnection> {
        let mut all = vec![DbUrl::Sqlite(":memory:".into()).connect().unwrap()];
        if let Some(url) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        {
            all.push(DbUrl::Postgres(url).connect().unwrap());
        }
        for conn in &mut all {
            conn.batch_execute(
                "CREATE TEMPORARY TABLE roundtrip (k INTEGER PRIMARY KEY, v TEXT NOT NULL)",
            )
            .unwrap();
        }
        all
    }

    /// Writes `values` to the column, reads them back as the same type, and compares.
    macro_rules! round_trip {
        ($conn:expr, $t:ty, $values:expr $(,)?) => {{
            let values = $values;
            $conn.batch_execute("DELETE FROM roundtrip").unwrap();
            for (k, value) in values.iter().enumerate() {
                diesel::insert_into(roundtrip::table)
                    .values((roundtrip::k.eq(k as i32), roundtrip::v.eq(value)))
                    .execute($conn)
                    .unwrap();
            }
            let back: Vec<$t> = diesel::sql_query("SELECT v FROM roundtrip ORDER BY k")
                .load::<Row<$t>>($conn)
                .unwrap()
                .into_iter()
                .map(|r| r.v)
                .collect();
            assert_eq!(back, values.to_vec());
        }};
    }

    #[derive(QueryableByName)]
    struct Row<T: FromSql<Text, crate::db::MultiBackend> + 'static> {
        #[diesel(sql_type = Text)]
        v: T,
    }

    #[test]
    fn ids_and_closed_sets_round_trip_through_their_columns() {
        for mut conn in connections() {
            round_trip!(
                &mut conn,
                PhoneNumberId,
                &[PhoneNumberId::random(), PhoneNumberId::random()]
            );
            round_trip!(&mut conn, AgentId, &[AgentId::random()]);
            round_trip!(&mut conn, AccountId, &[AccountId::random()]);
            round_trip!(&mut conn, AttemptId, &[AttemptId::random()]);
            round_trip!(&mut conn, QualityEventId, &[QualityEventId::random()]);
            round_trip!(&mut conn, AuditEventId, &[AuditEventId::random()]);
            round_trip!(&mut conn, WorkspaceId, &[WorkspaceId::from("ws-ü")]);
            round_trip!(
                &mut conn,
                MetaPhoneNumberId,
                &[MetaPhoneNumberId::from("106540352242922")]
            );
            round_trip!(&mut conn, WabaId, &[WabaId::from("100000000000001")]);
            round_trip!(&mut conn, QualityRating, QualityRating::ALL);
            round_trip!(&mut conn, RegistrationState, RegistrationState::ALL);
            round_trip!(&mut conn, AttemptOutcome, AttemptOutcome::ALL);
            round_trip!(&mut conn, QualityEventSource, QualityEventSource::ALL);
            round_trip!(&mut conn, AccountStatus, AccountStatus::ALL);
            round_trip!(&mut conn, AuditAction, AuditAction::ALL);
            round_trip!(&mut conn, ResponderKind, ResponderKind::ALL);
            round_trip!(
                &mut conn,
                PlatformType,
                &[
                    PlatformType::CloudApi,
                    PlatformType::OnPremise,
                    PlatformType::NotApplicable,
                    PlatformType::Other("SOMETHING_NEW".into()),
                ]
            );
        }
    }

    #[test]
    fn an_unknown_stored_value_is_a_clear_error_not_a_panic() {
        for mut conn in connections() {
            conn.batch_execute("INSERT INTO roundtrip (k, v) VALUES (1, 'PURPLE')")
                .unwrap();
            let err = diesel::sql_query("SELECT v FROM roundtrip")
                .load::<Row<QualityRating>>(&mut conn)
                .err()
                .expect("an unknown rating does not load");
            assert!(
                err.to_string().contains("`PURPLE` is not a quality rating"),
                "{err}"
            );
            let err = diesel::sql_query("SELECT v FROM roundtrip")
                .load::<Row<AgentId>>(&mut conn)
                .err()
                .expect("a non-UUID does not load as an id");
            assert!(
                err.to_string().contains("is not a hyphenated UUID"),
                "{err}"
            );
        }
    }
}
