//! Phone-number rows. Numbers come from Meta (sync); nothing here deletes one.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::models::{MetaFields, PhoneNumberRow};
use super::schema::{phone_numbers, registration_attempts};
use super::types::MaybeTime;
use super::{DbConnection, MultiBackend};
use crate::domain::page::PageRequest;
use crate::domain::phone_number::{PhoneNumberFilter, THROUGHPUT_NOT_APPLICABLE};
use crate::domain::{
    AccountId, AccountStatus, AgentId, LeaseOwner, MetaPhoneNumberId, NumberSort, PhoneNumberId,
    PlatformType, RegistrationState, WorkspaceId,
};

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

/// Keyset paging on `column` then id, ascending or descending, from `after`'s key (parsed by `key`).
macro_rules! ordered_page {
    ($query:ident, $page:expr, $column:expr, $desc:expr, $key:expr) => {{
        if let Some(after) = &$page.after {
            let key = $key(&after.key)?;
            let id = after.id.clone();
            $query = if $desc {
                $query.filter(
                    $column
                        .lt(key.clone())
                        .or($column.eq(key).and(p::id.lt(id))),
                )
            } else {
                $query.filter(
                    $column
                        .gt(key.clone())
                        .or($column.eq(key).and(p::id.gt(id))),
                )
            };
        }
        $query = if $desc {
            $query.order(($column.desc(), p::id.desc()))
        } else {
            $query.order(($column.asc(), p::id.asc()))
        };
    }};
}

fn text_key(key: &str) -> QueryResult<String> {
    Ok(key.to_owned())
}

/// The cursor key of a row under `sort` (what [`list`] compares against).
pub fn sort_key(row: &PhoneNumberRow, sort: NumberSort) -> String {
    use NumberSort as S;
    match sort {
        S::PhoneNumber | S::PhoneNumberDesc => row.display_digits.clone(),
        S::VerifiedName | S::VerifiedNameDesc => row.verified_name_key.clone(),
        S::PlatformType | S::PlatformTypeDesc => row.platform_type.as_str().to_owned(),
        S::PhoneNumberId | S::PhoneNumberIdDesc => row.meta_phone_number_id.to_string(),
        S::QualityRating | S::QualityRatingDesc => row.quality_rank.clone(),
    }
}

/// One page of a workspace's numbers, in `sort` order, then by id, each with what the table
/// shows beside it (its agent's name, its account's standing), in one query.
pub fn list(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    filter: &PhoneNumberFilter,
    sort: NumberSort,
    page: &PageRequest,
) -> QueryResult<Vec<(PhoneNumberRow, Beside)>> {
    use phone_numbers::dsl as p;
    let mut query = beside_query!(workspace).into_boxed::<MultiBackend>();
    if !filter.include_removed {
        query = query.filter(p::removed_at.is_null());
    }
    if let Some(platform) = &filter.platform_type {
        query = query.filter(p::platform_type.eq(platform.clone()));
    }
    if let Some(rating) = filter.quality_rating {
        query = query.filter(p::quality_rating.eq(rating));
    }
    if let Some(account) = filter.whatsapp_account_id {
        query = query.filter(p::whatsapp_account_id.eq(account));
    }
    match filter.has_inbound_agent {
        Some(true) => query = query.filter(p::inbound_agent_id.is_not_null()),
        Some(false) => query = query.filter(p::inbound_agent_id.is_null()),
        None => {}
    }
    match filter.quality_alert {
        Some(true) => query = query.filter(p::quality_alert.is_not_null()),
        Some(false) => query = query.filter(p::quality_alert.is_null()),
        None => {}
    }
    // The SQL form of `domain::phone_number::NumberFacts::needs_registration`; `IS NOT NULL AND`
    // keeps a NULL throughput from turning the whole test NULL.
    let throughput_na = p::throughput_level
        .is_not_null()
        .and(p::throughput_level.eq(THROUGHPUT_NOT_APPLICABLE));
    let off_cloud = p::platform_type
        .ne(PlatformType::CloudApi)
        .or(throughput_na);
    match filter.can_register {
        Some(true) => {
            query = query.filter(
                p::removed_at
                    .is_null()
                    .and(p::is_on_biz_app.eq(false))
                    .and(off_cloud),
            )
        }
        Some(false) => {
            query = query.filter(
                p::removed_at
                    .is_not_null()
                    .or(p::is_on_biz_app.eq(true))
                    .or(diesel::dsl::not(off_cloud)),
            )
        }
        None => {}
    }
    // `NumberFacts::is_usable_for_agents`: on the Cloud API, not removed, not waiting for Register
    // (coexistence numbers never wait for Register).
    let usable = p::platform_type
        .eq(PlatformType::CloudApi)
        .and(p::removed_at.is_null())
        .and(
            p::is_on_biz_app
                .eq(true)
                .or(diesel::dsl::not(throughput_na)),
        );
    match filter.can_use_as_outbound {
        Some(true) => query = query.filter(usable),
        Some(false) => query = query.filter(diesel::dsl::not(usable)),
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
    let desc = sort.descending();
    match sort {
        NumberSort::PhoneNumber | NumberSort::PhoneNumberDesc => {
            ordered_page!(query, page, p::display_digits, desc, text_key)
        }
        NumberSort::VerifiedName | NumberSort::VerifiedNameDesc => {
            ordered_page!(query, page, p::verified_name_key, desc, text_key)
        }
        NumberSort::PlatformType | NumberSort::PlatformTypeDesc => {
            ordered_page!(query, page, p::platform_type, desc, |k: &str| Ok::<
                _,
                diesel::result::Error,
            >(
                PlatformType::from_meta(k)
            ))
        }
        NumberSort::PhoneNumberId | NumberSort::PhoneNumberIdDesc => {
            ordered_page!(query, page, p::meta_phone_number_id, desc, |k: &str| Ok::<
                _,
                diesel::result::Error,
            >(
                MetaPhoneNumberId::from(k)
            ))
        }
        NumberSort::QualityRating | NumberSort::QualityRatingDesc => {
            ordered_page!(query, page, p::quality_rank, desc, text_key)
        }
    }
    let rows: Vec<BesideRow> = query.limit(page.fetch_limit()).load(conn)?;
    Ok(rows.into_iter().map(beside).collect())
}

/// The workspace's numbers joined with what the table shows beside each: the inbound agent's
/// name (an agent of the same workspace) and the account's standing.
macro_rules! beside_query {
    ($workspace:expr) => {{
        use crate::db::schema::{agents, whatsapp_accounts as accounts};
        phone_numbers::table
            .left_join(
                agents::table.on(agents::id
                    .nullable()
                    .eq(phone_numbers::inbound_agent_id)
                    .and(agents::workspace_id.eq(phone_numbers::workspace_id))),
            )
            .inner_join(accounts::table.on(accounts::id.eq(phone_numbers::whatsapp_account_id)))
            .filter(phone_numbers::workspace_id.eq($workspace.clone()))
            .select((
                PhoneNumberRow::as_select(),
                agents::name.nullable(),
                accounts::status,
                accounts::last_synced_at,
            ))
    }};
}
use beside_query;

/// A row of [`beside_query`].
type BesideRow = (PhoneNumberRow, Option<String>, AccountStatus, MaybeTime);

fn beside((row, agent_name, account_status, synced): BesideRow) -> (PhoneNumberRow, Beside) {
    let beside = Beside {
        agent_name,
        account_status,
        account_synced_at: synced.0,
    };
    (row, beside)
}

/// One number of the workspace with what the table shows beside it.
pub fn get_beside(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    id: PhoneNumberId,
) -> QueryResult<Option<(PhoneNumberRow, Beside)>> {
    let row: Option<BesideRow> = beside_query!(workspace)
        .filter(phone_numbers::id.eq(id))
        .first(conn)
        .optional()?;
    Ok(row.map(beside))
}

/// The given numbers of the workspace with what the table shows beside them, in its default order.
pub fn by_ids_beside(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    ids: &[PhoneNumberId],
) -> QueryResult<Vec<(PhoneNumberRow, Beside)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<BesideRow> = beside_query!(workspace)
        .filter(phone_numbers::id.eq_any(ids))
        .order((phone_numbers::display_digits.asc(), phone_numbers::id.asc()))
        .load(conn)?;
    Ok(rows.into_iter().map(beside).collect())
}

/// What the table shows beside a number, from other tables.
#[derive(Debug, Clone)]
pub struct Beside {
    /// The inbound agent's name.
    pub agent_name: Option<String>,
    pub account_status: AccountStatus,
    /// The account's last successful sync.
    pub account_synced_at: Option<NaiveDateTime>,
}

/// One number of the workspace.
pub fn get(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    id: PhoneNumberId,
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
    workspace: &WorkspaceId,
    ids: &[PhoneNumberId],
) -> QueryResult<Vec<(PhoneNumberId, String)>> {
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
    workspace: &WorkspaceId,
    agent_ids: &[AgentId],
) -> QueryResult<Vec<(AgentId, PhoneNumberId, String)>> {
    if agent_ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Option<AgentId>, PhoneNumberId, String)> = phone_numbers::table
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
    workspace: &WorkspaceId,
    id: PhoneNumberId,
    agent_id: Option<AgentId>,
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
    workspace: &WorkspaceId,
    agent_id: AgentId,
    now: NaiveDateTime,
) -> QueryResult<Vec<(PhoneNumberId, String)>> {
    let numbers: Vec<(PhoneNumberId, String)> = phone_numbers::table
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
        phone_numbers::inbound_agent_id.eq(None::<AgentId>),
        phone_numbers::updated_at.eq(now),
    ))
    .execute(conn)?;
    Ok(numbers)
}

/// The account's numbers that have an inbound agent: `(number, display form, agent)`.
pub fn inbound_agents_of_account(
    conn: &mut DbConnection,
    account_id: AccountId,
) -> QueryResult<Vec<(PhoneNumberId, String, AgentId)>> {
    let rows: Vec<(PhoneNumberId, String, Option<AgentId>)> = phone_numbers::table
        .filter(phone_numbers::whatsapp_account_id.eq(account_id))
        .filter(phone_numbers::inbound_agent_id.is_not_null())
        .select((
            phone_numbers::id,
            phone_numbers::display_phone_number,
            phone_numbers::inbound_agent_id,
        ))
        .load(conn)?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, display, agent)| Some((id, display, agent?)))
        .collect())
}

/// Lets go of a disconnected account's numbers: those not yet removed are marked removed (the
/// count is returned), and none keeps an inbound agent or a registration lease (an attempt in
/// flight makes no further call). Rows and history stay.
pub fn release_account(
    conn: &mut DbConnection,
    account_id: AccountId,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    let removed = diesel::update(
        phone_numbers::table
            .filter(phone_numbers::whatsapp_account_id.eq(account_id))
            .filter(phone_numbers::removed_at.is_null()),
    )
    .set(phone_numbers::removed_at.eq(now))
    .execute(conn)?;
    diesel::update(phone_numbers::table.filter(phone_numbers::whatsapp_account_id.eq(account_id)))
        .set((
            phone_numbers::inbound_agent_id.eq(None::<AgentId>),
            phone_numbers::registration_lease_until.eq(None::<NaiveDateTime>),
            phone_numbers::registration_lease_owner.eq(None::<LeaseOwner>),
            phone_numbers::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(removed)
}

/// One register call as the window needs it: the number, when, Meta's error code, and whether
/// Meta left it unanswered (down, timing out).
pub type CallRecord = (PhoneNumberId, NaiveDateTime, Option<i64>, bool);

/// Register calls since `since` of the given numbers.
pub fn calls_since(
    conn: &mut DbConnection,
    ids: &[PhoneNumberId],
    since: NaiveDateTime,
) -> QueryResult<Vec<CallRecord>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    use registration_attempts::dsl as r;
    let query = r::registration_attempts
        .filter(r::created_at.gt(since))
        .select((
            r::number_id,
            r::created_at,
            r::meta_code,
            r::meta_unavailable,
        ))
        .into_boxed::<MultiBackend>();
    // One statement text however many numbers the page has, so it is prepared once.
    let query = match conn {
        DbConnection::Sqlite(_) => query.filter(super::in_list::in_stored(r::number_id, ids)),
        DbConnection::Postgresql(_) => query.filter(r::number_id.eq_any(ids)),
    };
    let calls: Vec<(PhoneNumberId, super::types::DbTime, Option<i64>, bool)> = query.load(conn)?;
    Ok(calls
        .into_iter()
        .map(|(id, at, code, unavailable)| (id, at.0, code, unavailable))
        .collect())
}

/// Inserts a number row as is (sync decides what the row holds).
pub fn insert(conn: &mut DbConnection, row: &PhoneNumberRow) -> QueryResult<usize> {
    diesel::insert_into(phone_numbers::table)
        .values(row)
        .execute(conn)
}

/// Inserts rows as they are, in one statement (each backend's own multi-row insert, which the
/// multi-backend connection does not offer).
pub fn insert_many(conn: &mut DbConnection, rows: &[PhoneNumberRow]) -> QueryResult<usize> {
    if rows.is_empty() {
        return Ok(0);
    }
    match conn {
        DbConnection::Postgresql(pg) => diesel::insert_into(phone_numbers::table)
            .values(rows)
            .execute(pg),
        DbConnection::Sqlite(sqlite) => diesel::insert_into(phone_numbers::table)
            .values(rows)
            .execute(sqlite),
    }
}

/// Every number of an account, removed ones included.
pub fn for_account(
    conn: &mut DbConnection,
    account_id: AccountId,
) -> QueryResult<Vec<PhoneNumberRow>> {
    phone_numbers::table
        .filter(phone_numbers::whatsapp_account_id.eq(account_id))
        .select(PhoneNumberRow::as_select())
        .load(conn)
}

/// Numbers with the given Meta ids, in any account (a number can move between WABAs).
pub fn by_meta_ids(
    conn: &mut DbConnection,
    meta_ids: &[MetaPhoneNumberId],
) -> QueryResult<Vec<PhoneNumberRow>> {
    if meta_ids.is_empty() {
        return Ok(Vec::new());
    }
    phone_numbers::table
        .filter(phone_numbers::meta_phone_number_id.eq_any(meta_ids))
        .select(PhoneNumberRow::as_select())
        .load(conn)
}

/// Stores what Meta says about the number; also moves it to `account_id` and un-removes it.
pub fn update_from_meta(
    conn: &mut DbConnection,
    id: PhoneNumberId,
    account_id: AccountId,
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

/// Marks numbers gone from Meta as removed; their rows, history and audit trail stay.
pub fn mark_removed(
    conn: &mut DbConnection,
    ids: &[PhoneNumberId],
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

/// Takes the number's registration lease for `owner` unless a live lease is held; true when
/// taken. A single conditional UPDATE: it also takes the row's lock for the rest of the
/// transaction, so what the caller counts after it cannot change under it.
pub fn claim_registration(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    id: PhoneNumberId,
    owner: LeaseOwner,
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
        phone_numbers::registration_lease_owner.eq(owner),
        phone_numbers::registration_last_attempt_at.eq(now),
    ))
    .execute(conn)?;
    Ok(taken == 1)
}

/// Extends `owner`'s lease to `until` if `owner` still holds a live one; true when it does.
/// Like the claim, it sets the last attempt time: every register call is recorded after one of
/// them, so no call is later than its number's `registration_last_attempt_at` (the table relies
/// on it to skip numbers with no call in Meta's window).
pub fn renew_registration(
    conn: &mut DbConnection,
    id: PhoneNumberId,
    owner: LeaseOwner,
    now: NaiveDateTime,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let renewed = diesel::update(
        phone_numbers::table
            .filter(phone_numbers::id.eq(id))
            .filter(phone_numbers::registration_lease_owner.eq(owner))
            .filter(phone_numbers::registration_lease_until.ge(now)),
    )
    .set((
        phone_numbers::registration_lease_until.eq(until),
        phone_numbers::registration_last_attempt_at.eq(now),
    ))
    .execute(conn)?;
    Ok(renewed == 1)
}

/// Ends `owner`'s attempt: records its outcome and releases the lease. Does nothing (0 rows) when
/// the lease is no longer `owner`'s: another attempt's state is not ours to write.
pub fn finish_registration(
    conn: &mut DbConnection,
    id: PhoneNumberId,
    owner: LeaseOwner,
    state: RegistrationState,
    last_error: Option<(&str, Option<i64>)>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        phone_numbers::table
            .filter(phone_numbers::id.eq(id))
            .filter(phone_numbers::registration_lease_owner.eq(owner)),
    )
    .set((
        phone_numbers::registration_state.eq(state),
        phone_numbers::registration_last_error.eq(last_error.map(|(text, _)| text)),
        phone_numbers::registration_last_error_code.eq(last_error.and_then(|(_, code)| code)),
        phone_numbers::registration_lease_until.eq(None::<NaiveDateTime>),
        phone_numbers::registration_lease_owner.eq(None::<LeaseOwner>),
        phone_numbers::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Stores the number's PIN unless it already has one; returns the stored (encrypted) PIN.
pub fn ensure_pin(
    conn: &mut DbConnection,
    id: PhoneNumberId,
    new_pin_enc: &crate::crypto::Sealed,
) -> QueryResult<crate::crypto::Sealed> {
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
        .first::<Option<crate::crypto::Sealed>>(conn)?
        .ok_or(diesel::result::Error::NotFound)
}

/// Gives the row Meta's new id for the same number (deleted and added again in Meta).
pub fn set_meta_id(
    conn: &mut DbConnection,
    id: PhoneNumberId,
    meta_id: &MetaPhoneNumberId,
) -> QueryResult<usize> {
    diesel::update(phone_numbers::table.filter(phone_numbers::id.eq(id)))
        .set(phone_numbers::meta_phone_number_id.eq(meta_id))
        .execute(conn)
}

/// Meta's ids of the workspace's numbers.
pub fn meta_ids(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
) -> QueryResult<Vec<MetaPhoneNumberId>> {
    phone_numbers::table
        .filter(phone_numbers::workspace_id.eq(workspace))
        .select(phone_numbers::meta_phone_number_id)
        .load(conn)
}

/// Has PostgreSQL gather the table's statistics now (after a sync added many rows, its planner
/// would otherwise plan for the table as it was); SQLite keeps none, so nothing to do there.
pub fn refresh_statistics(conn: &mut DbConnection) -> QueryResult<()> {
    use diesel::connection::SimpleConnection;
    match conn {
        DbConnection::Postgresql(pg) => pg.batch_execute("ANALYZE phone_numbers"),
        DbConnection::Sqlite(_) => Ok(()),
    }
}

/// The ids of the workspace's numbers not removed, in the table's default order.
pub fn live_ids(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
) -> QueryResult<Vec<PhoneNumberId>> {
    phone_numbers::table
        .filter(phone_numbers::workspace_id.eq(workspace))
        .filter(phone_numbers::removed_at.is_null())
        .order((phone_numbers::display_digits.asc(), phone_numbers::id.asc()))
        .select(phone_numbers::id)
        .load(conn)
}
