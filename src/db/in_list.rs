//! `column IN (…)` whose statement text does not depend on how many values it tests.
//!
//! diesel's `eq_any` writes `IN (?, ?, …)` on SQLite, one placeholder a value, and marks the
//! statement as not cacheable, so every page of the table prepared its register-call lookup
//! afresh. [`in_stored`] binds the values as one JSON array instead
//! (`column IN (SELECT value FROM json_each(?))`): one statement text, prepared once per
//! connection. PostgreSQL's `eq_any` is already one text (`= ANY(?)`) and stays as it is.

use diesel::expression::ValidGrouping;
use diesel::expression::{is_aggregate, AppearsOnTable, Expression, SelectableExpression};
use diesel::query_builder::{AstPass, QueryFragment, QueryId};
use diesel::result::{Error, QueryResult};
use diesel::sql_types::{Bool, Text};

use super::types::StoredText;
use super::MultiBackend;

/// `column IN (SELECT value FROM json_each(?))`: SQLite only; on PostgreSQL building the
/// statement is an error (use `eq_any` there).
#[derive(Debug, Clone)]
pub struct InStored<C> {
    column: C,
    /// The values' stored text, as a JSON array of strings.
    values: String,
}

/// `column` is one of `values` (compared by their stored text), for SQLite.
pub fn in_stored<C, T: StoredText>(column: C, values: &[T]) -> InStored<C> {
    let texts: Vec<_> = values.iter().map(StoredText::to_text).collect();
    InStored {
        column,
        values: serde_json::to_string(&texts).unwrap_or_else(|_| "[]".to_owned()),
    }
}

impl<C: Expression<SqlType = Text>> Expression for InStored<C> {
    type SqlType = Bool;
}

impl<C, QS> AppearsOnTable<QS> for InStored<C> where
    C: AppearsOnTable<QS> + Expression<SqlType = Text>
{
}

impl<C, QS> SelectableExpression<QS> for InStored<C> where
    C: SelectableExpression<QS> + Expression<SqlType = Text>
{
}

impl<C> ValidGrouping<()> for InStored<C> {
    type IsAggregate = is_aggregate::Never;
}

impl<C> QueryId for InStored<C> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<C: QueryFragment<MultiBackend>> QueryFragment<MultiBackend> for InStored<C> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, MultiBackend>) -> QueryResult<()> {
        if !matches!(out.backend(), MultiBackend::Sqlite(_)) {
            return Err(Error::QueryBuilderError(
                "json_each is SQLite's: PostgreSQL uses `= ANY(?)`".into(),
            ));
        }
        self.column.walk_ast(out.reborrow())?;
        out.push_sql(" IN (SELECT value FROM json_each(");
        out.push_bind_param::<Text, String>(&self.values)?;
        out.push_sql("))");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use diesel::connection::{InstrumentationEvent, SimpleConnection};
    use diesel::prelude::*;

    use super::*;
    use crate::db::DbUrl;
    use crate::domain::PhoneNumberId;

    diesel::table! {
        listed (k) {
            k -> Integer,
            v -> Text,
        }
    }

    #[test]
    fn finds_the_values_by_their_stored_text_with_one_prepared_statement_for_any_count() {
        let mut conn = DbUrl::Sqlite(":memory:".into()).connect().unwrap();
        conn.batch_execute("CREATE TABLE listed (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
            .unwrap();
        let ids: Vec<PhoneNumberId> = (0..5).map(|_| PhoneNumberId::random()).collect();
        for (k, id) in ids.iter().enumerate() {
            diesel::insert_into(listed::table)
                .values((listed::k.eq(k as i32), listed::v.eq(id)))
                .execute(&mut conn)
                .unwrap();
        }
        let cached = Arc::new(AtomicUsize::new(0));
        let counter = cached.clone();
        conn.set_instrumentation(move |event: InstrumentationEvent<'_>| {
            if let InstrumentationEvent::CacheQuery { .. } = event {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        });
        for (from, to) in [(0, 1), (1, 4), (3, 5), (2, 2), (0, 5)] {
            let found: Vec<i32> = listed::table
                .select(listed::k)
                .filter(in_stored(listed::v, &ids[from..to]))
                .order(listed::k)
                .into_boxed::<MultiBackend>()
                .load(&mut conn)
                .unwrap();
            assert_eq!(found, (from as i32..to as i32).collect::<Vec<_>>());
        }
        assert_eq!(
            cached.load(Ordering::Relaxed),
            1,
            "prepared once for 0 to 5 values"
        );
    }

    #[test]
    fn postgresql_refuses_it() {
        let Some(url) = std::env::var("TEST_DATABASE_URL")
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return;
        };
        let mut conn = DbUrl::Postgres(url).connect().unwrap();
        conn.batch_execute(
            "CREATE TEMPORARY TABLE listed (k INTEGER PRIMARY KEY, v TEXT NOT NULL)",
        )
        .unwrap();
        let err = listed::table
            .select(listed::k)
            .filter(in_stored(listed::v, &[PhoneNumberId::random()]))
            .into_boxed::<MultiBackend>()
            .load::<i32>(&mut conn)
            .expect_err("json_each is not built for PostgreSQL");
        assert!(err.to_string().contains("SQLite's"), "{err}");
    }
}
