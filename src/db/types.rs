//! The one place where the domain's ids and closed sets become column text and back, on
//! PostgreSQL, on SQLite, and through the `MultiBackend` of [`super::DbConnection`]. A stored value
//! this build does not know is a clear deserialization error naming the set, never a panic.

use std::borrow::Cow;
use std::io::Write;

use chrono::NaiveDateTime;
use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::pg::{Pg, PgValue};
use diesel::serialize::{self, IsNull, Output, ToSql};
use diesel::sql_types::{Nullable, Text, Timestamp};
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
    LeaseOwner,
    CustomerId,
    ConversationId,
    MessageId
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
    ResponderKind,
    JobKind,
    JobState,
    MessageDirection,
    MessageStatus,
    EventKind
);

/// A number's quality alert is stored as one JSON text (`{since, reason, previous_rating}`).
impl StoredText for crate::domain::phone_number::QualityAlert {
    fn to_text(&self) -> Cow<'_, str> {
        Cow::Owned(serde_json::to_string(self).unwrap_or_default())
    }
    fn from_text(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("stored quality alert `{text}`: {e}"))
    }
}

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
                Ok(<$t as StoredText>::from_text(sqlite_text(bytes)?)?)
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
    CustomerId,
    ConversationId,
    MessageId,
    JobKind,
    JobState,
    MessageDirection,
    MessageStatus,
    EventKind,
    crate::domain::phone_number::QualityAlert,
);

/// The text of a SQLite value, borrowed for the duration of the read (no copy).
fn sqlite_text(bytes: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<&str> {
    let text = <*const str as FromSql<Text, Sqlite>>::from_sql(bytes)?;
    // SAFETY: diesel hands out a pointer into the row's current value, valid until the statement
    // steps again; the reference does not leave the `from_sql` that holds the row.
    Ok(unsafe { &*text })
}

/// A stored timestamp, read the fast way: SQLite keeps it as text (`2026-11-26 12:00:00.123456`),
/// which diesel parses with chrono's general format parser, trying format after format; the
/// numbers table reads five per row. PostgreSQL's binary form is read as diesel reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct DbTime(pub NaiveDateTime);

/// The same, for a nullable column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, diesel::deserialize::FromSqlRow)]
pub struct MaybeTime(pub Option<NaiveDateTime>);

impl From<DbTime> for NaiveDateTime {
    fn from(time: DbTime) -> Self {
        time.0
    }
}

impl From<MaybeTime> for Option<NaiveDateTime> {
    fn from(time: MaybeTime) -> Self {
        time.0
    }
}

/// `YYYY-MM-DD HH:MM:SS` with an optional fraction of up to nine digits (`T` also separates).
fn parse_time(text: &str) -> Option<NaiveDateTime> {
    let b = text.as_bytes();
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b' ' | b'T') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        b[from..to].iter().try_fold(0u32, |n, c| {
            c.is_ascii_digit().then(|| n * 10 + u32::from(c - b'0'))
        })
    };
    let date =
        chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(20, b.len())? * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    let time =
        chrono::NaiveTime::from_hms_nano_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?, nanos)?;
    Some(NaiveDateTime::new(date, time))
}

impl FromSql<Timestamp, Sqlite> for DbTime {
    fn from_sql(bytes: <Sqlite as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        let text = sqlite_text(bytes)?;
        match parse_time(text) {
            Some(time) => Ok(DbTime(time)),
            // Anything else SQLite may hold (another separator, a zone): chrono's parser.
            None => [
                "%Y-%m-%d %H:%M:%S%.f%:z",
                "%Y-%m-%dT%H:%M:%S%.f%:z",
                "%Y-%m-%d %H:%M",
            ]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
            .map(DbTime)
            .ok_or_else(|| format!("stored timestamp `{text}` is not one").into()),
        }
    }
}

impl FromSql<Timestamp, Pg> for DbTime {
    fn from_sql(bytes: PgValue<'_>) -> deserialize::Result<Self> {
        <NaiveDateTime as FromSql<Timestamp, Pg>>::from_sql(bytes).map(DbTime)
    }
}

impl FromSql<Timestamp, MultiBackend> for DbTime {
    fn from_sql(bytes: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        bytes.from_sql::<Self, Timestamp>()
    }
}

impl FromSql<Nullable<Timestamp>, MultiBackend> for MaybeTime {
    fn from_sql(bytes: <MultiBackend as Backend>::RawValue<'_>) -> deserialize::Result<Self> {
        <DbTime as FromSql<Timestamp, MultiBackend>>::from_sql(bytes).map(|t| MaybeTime(Some(t.0)))
    }

    fn from_nullable_sql(
        bytes: Option<<MultiBackend as Backend>::RawValue<'_>>,
    ) -> deserialize::Result<Self> {
        match bytes {
            Some(bytes) => Self::from_sql(bytes),
            None => Ok(MaybeTime(None)),
        }
    }
}

#[cfg(test)]
mod time_tests {
    use super::*;

    #[test]
    fn stored_times_read_as_chrono_reads_them() {
        for text in [
            "2026-11-26 12:00:00",
            "2026-11-26 12:00:00.5",
            "2026-11-26 12:00:00.123456",
            "2026-11-26T23:59:59.123456789",
            "2000-01-01 00:00:00",
        ] {
            let chrono = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
                .or_else(|_| NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f"))
                .unwrap();
            assert_eq!(parse_time(text), Some(chrono), "{text}");
        }
        for text in [
            "",
            "2026-11-26",
            "2026-13-01 00:00:00",
            "2026-11-26 12:00:00.",
            "2026-11-26 12:00:00.1234567890",
            "2026-11-26 12:00:00+01:00",
            "2026-11-26 1a:00:00",
        ] {
            assert_eq!(parse_time(text), None, "{text}");
        }
    }
}

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
