//! Phone-number rows. Numbers come from Meta (sync); nothing here deletes one.

use std::collections::HashMap;

use chrono::NaiveDateTime;
use diesel::dsl::count_star;
use diesel::prelude::*;

use super::models::{MetaFields, PhoneNumberRow};
use super::schema::{phone_numbers, registration_attempts};
use super::{DbConnection, MultiBackend};
use crate::domain::page::PageRequest;
use crate::domain::phone_number::PhoneNumberFilter;

/// Escapes `%`, `_` and `\` for a `LIKE … ESCAPE '\'` pattern and wraps it in `%…%`.
pub fn contains_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// One page of a workspace's numbers, ordered by number (digits), then id.
pub fn list(
    conn: &mut DbConnection,
    workspace: &str,
    filter: &PhoneNumberFilter,
    page: &PageRequest,
) -> QueryResult<Vec<PhoneNumberRow>> {
    use phone_numbers::dsl as p;
    let mut query = p::phone_numbers
        .filter(p::workspace_id.eq(workspace.to_owned()))
        .select(PhoneNumberRow::as_select())
        .into_boxed::<MultiBackend>();
    if !filter.include_removed {
        query = query.filter(p::removed_at.is_null());
    }
    if let Some(platform) = &filter.platform_type {
        query = query.filter(p::platform_type.eq(platform.clone()));
    }
    if let Some(rating) = &filter.quality_rating {
        query = query.filter(p::quality_rating.eq(rating.clone()));
    }
    match filter.has_inbound_agent {
        Some(true) => query = query.filter(p::inbound_agent_id.is_not_null()),
        Some(false) => query = query.filter(p::inbound_agent_id.is_null()),
        None => {}
    }
    if let Some(search) = &filter.search {
        let by_name = p::verified_name_key
            .like(contains_pattern(&search.name_key))
            .escape('\\');
        query = match &search.digits {
            Some(digits) => query.filter(
                by_name.or(p::display_digits
                    .like(contains_pattern(digits))
                    .escape('\\')),
            ),
            None => query.filter(by_name),
        };
    }
    if let Some(after) = &page.after {
        query = query.filter(
            p::display_digits.gt(after.key.clone()).or(p::display_digits
                .eq(after.key.clone())
                .and(p::id.gt(after.id.clone()))),
        );
    }
    query
        .order((p::display_digits.asc(), p::id.asc()))
        .limit(page.fetch_limit())
        .load(conn)
}

/// One number of the workspace.
pub fn get(
    conn: &mut DbConnection,
    workspace: &str,
    id: &str,
) -> QueryResult<Option<PhoneNumberRow>> {
    phone_numbers::table
        .filter(phone_numbers::workspace_id.eq(workspace))
        .filter(phone_numbers::id.eq(id))
        .select(PhoneNumberRow::as_select())
        .first(conn)
        .optional()
}

/// `(id, display_phone_number)` of the given numbers of the workspace.
pub fn display_numbers(
    conn: &mut DbConnection,
    workspace: &str,
    ids: &[String],
) -> QueryResult<Vec<(String, String)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    phone_numbers::table
        .filter(phone_numbers::workspace_id.eq(workspace))
        .filter(phone_numbers::id.eq_any(ids))
        .select((phone_numbers::id, phone_numbers::display_phone_number))
        .load(conn)
}

/// `(agent id, number id, display_phone_number)` for every number answered by one of `agent_ids`.
pub fn inbound_numbers_of(
    conn: &mut DbConnection,
    workspace: &str,
    agent_ids: &[String],
) -> QueryResult<Vec<(String, String, String)>> {
    if agent_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Option<String>, String, String)> = phone_numbers::table
        .filter(phone_numbers::workspace_id.eq(workspace))
        .filter(phone_numbers::inbound_agent_id.eq_any(agent_ids))
        .order((phone_numbers::display_digits.asc(), phone_numbers::id.asc()))
        .select((
            phone_numbers::inbound_agent_id,
            phone_numbers::id,
            phone_numbers::display_phone_number,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(agent, id, display)| Some((agent?, id, display)))
        .collect())
}

/// Sets (or clears) the number's inbound agent.
pub fn set_inbound_agent(
    conn: &mut DbConnection,
    workspace: &str,
    id: &str,
    agent_id: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        phone_numbers::table
            .filter(phone_numbers::workspace_id.eq(workspace))
            .filter(phone_numbers::id.eq(id)),
    )
    .set((
        phone_numbers::inbound_agent_id.eq(agent_id),
        phone_numbers::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Clears `agent_id` from every number it answers; returns the numbers it answered.
pub fn clear_inbound_agent(
    conn: &mut DbConnection,
    workspace: &str,
    agent_id: &str,
    now: NaiveDateTime,
) -> QueryResult<Vec<(String, String)>> {
    let numbers: Vec<(String, String)> = phone_numbers::table
        .filter(phone_numbers::workspace_id.eq(workspace))
        .filter(phone_numbers::inbound_agent_id.eq(agent_id))
        .select((phone_numbers::id, phone_numbers::display_phone_number))
        .load(conn)?;
    diesel::update(
        phone_numbers::table
            .filter(phone_numbers::workspace_id.eq(workspace))
            .filter(phone_numbers::inbound_agent_id.eq(agent_id)),
    )
    .set((
        phone_numbers::inbound_agent_id.eq(None::<String>),
        phone_numbers::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(numbers)
}

/// Register calls per number since `since` (Meta's moving 72-hour window), for the given numbers.
pub fn attempts_since(
    conn: &mut DbConnection,
    ids: &[String],
    since: NaiveDateTime,
) -> QueryResult<HashMap<String, i64>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, i64)> = registration_attempts::table
        .filter(registration_attempts::phone_number_id.eq_any(ids))
        .filter(registration_attempts::created_at.gt(since))
        .group_by(registration_attempts::phone_number_id)
        .select((registration_attempts::phone_number_id, count_star()))
        .load(conn)?;
    Ok(rows.into_iter().collect())
}

/// Inserts a number row as is (sync decides what the row holds).
pub fn insert(conn: &mut DbConnection, row: &PhoneNumberRow) -> QueryResult<usize> {
    diesel::insert_into(phone_numbers::table)
        .values(row)
        .execute(conn)
}

/// Every number of an account, removed ones included.
pub fn for_account(conn: &mut DbConnection, account_id: &str) -> QueryResult<Vec<PhoneNumberRow>> {
    phone_numbers::table
        .filter(phone_numbers::whatsapp_account_id.eq(account_id))
        .select(PhoneNumberRow::as_select())
        .load(conn)
}

/// Numbers with the given Meta ids, in any account (a number can move between WABAs).
pub fn by_meta_ids(
    conn: &mut DbConnection,
    meta_ids: &[String],
) -> QueryResult<Vec<PhoneNumberRow>> {
    if meta_ids.is_empty() {
        return Ok(Vec::new());
    }
    phone_numbers::table
        .filter(phone_numbers::phone_number_id.eq_any(meta_ids))
        .select(PhoneNumberRow::as_select())
        .load(conn)
}

/// Stores what Meta says about the number; also moves it to `account_id` and un-removes it.
pub fn update_from_meta(
    conn: &mut DbConnection,
    id: &str,
    account_id: &str,
    fields: &MetaFields,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(phone_numbers::table.filter(phone_numbers::id.eq(id)))
        .set((
            fields,
            phone_numbers::whatsapp_account_id.eq(account_id),
            phone_numbers::removed_at.eq(None::<NaiveDateTime>),
            phone_numbers::last_synced_at.eq(now),
            phone_numbers::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Marks numbers as seen by a sync without other changes.
pub fn touch_synced(
    conn: &mut DbConnection,
    ids: &[String],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(phone_numbers::table.filter(phone_numbers::id.eq_any(ids)))
        .set(phone_numbers::last_synced_at.eq(now))
        .execute(conn)
}

/// Marks numbers gone from Meta as removed; their rows, history and audit trail stay.
pub fn mark_removed(
    conn: &mut DbConnection,
    ids: &[String],
    now: NaiveDateTime,
) -> QueryResult<usize> {
    if ids.is_empty() {
        return Ok(0);
    }
    diesel::update(phone_numbers::table.filter(phone_numbers::id.eq_any(ids)))
        .set((
            phone_numbers::removed_at.eq(now),
            phone_numbers::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Takes the number's registration lease unless an attempt holds it; true when taken.
/// A single conditional UPDATE, so two processes cannot both take it.
pub fn claim_registration(
    conn: &mut DbConnection,
    workspace: &str,
    id: &str,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let taken = diesel::update(
        phone_numbers::table
            .filter(phone_numbers::workspace_id.eq(workspace))
            .filter(phone_numbers::id.eq(id))
            .filter(
                phone_numbers::registration_lease_until
                    .is_null()
                    .or(phone_numbers::registration_lease_until.lt(now)),
            ),
    )
    .set((
        phone_numbers::registration_lease_until.eq(until),
        phone_numbers::registration_last_attempt_at.eq(now),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Ends an attempt: records its outcome and releases the lease.
pub fn finish_registration(
    conn: &mut DbConnection,
    id: &str,
    state: &str,
    last_error: Option<&str>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(phone_numbers::table.filter(phone_numbers::id.eq(id)))
        .set((
            phone_numbers::registration_state.eq(state),
            phone_numbers::registration_last_error.eq(last_error),
            phone_numbers::registration_lease_until.eq(None::<NaiveDateTime>),
            phone_numbers::updated_at.eq(now),
        ))
        .execute(conn)
}

/// Stores the number's PIN unless it already has one; returns the stored (encrypted) PIN.
pub fn ensure_pin(conn: &mut DbConnection, id: &str, new_pin_enc: &str) -> QueryResult<String> {
    diesel::update(
        phone_numbers::table
            .filter(phone_numbers::id.eq(id))
            .filter(phone_numbers::pin_enc.is_null()),
    )
    .set(phone_numbers::pin_enc.eq(new_pin_enc))
    .execute(conn)?;
    phone_numbers::table
        .filter(phone_numbers::id.eq(id))
        .select(phone_numbers::pin_enc)
        .first::<Option<String>>(conn)?
        .ok_or(diesel::result::Error::NotFound)
}

/// Gives the row Meta's new id for the same number (deleted and added again in Meta).
pub fn set_meta_id(conn: &mut DbConnection, id: &str, meta_id: &str) -> QueryResult<usize> {
    diesel::update(phone_numbers::table.filter(phone_numbers::id.eq(id)))
        .set(phone_numbers::phone_number_id.eq(meta_id))
        .execute(conn)
}

/// Meta's ids of the workspace's numbers.
pub fn meta_ids(conn: &mut DbConnection, workspace: &str) -> QueryResult<Vec<String>> {
    phone_numbers::table
        .filter(phone_numbers::workspace_id.eq(workspace))
        .select(phone_numbers::phone_number_id)
        .load(conn)
}
