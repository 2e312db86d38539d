//! The durable queue of Meta's webhook deliveries: group inserts that skip what is already
//! stored, claims under a lease with an owner (`FOR UPDATE SKIP LOCKED` on PostgreSQL), and the
//! owner-checked ends of a job.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text, Timestamp};

use super::schema::webhook_jobs;
use super::DbConnection;
use crate::domain::{JobKind, JobState, LeaseOwner};

/// A job as stored.
#[derive(Debug, Clone, Queryable, QueryableByName, Selectable)]
#[diesel(table_name = webhook_jobs)]
pub struct JobRow {
    pub id: i64,
    pub dedup_key: String,
    pub kind: JobKind,
    pub waba_id: Option<String>,
    pub meta_phone_number_id: Option<String>,
    pub order_key: Option<String>,
    pub payload: String,
    pub state: JobState,
    pub attempts: i64,
    pub run_after: NaiveDateTime,
    pub lease_owner: Option<LeaseOwner>,
    pub lease_until: Option<NaiveDateTime>,
    pub last_error: Option<String>,
    pub received_at: NaiveDateTime,
    pub finished_at: Option<NaiveDateTime>,
}

/// A job as the intake writes it.
#[derive(Debug, Clone, Insertable)]
#[diesel(table_name = webhook_jobs, treat_none_as_default_value = false)]
pub struct NewJobRow<'a> {
    pub dedup_key: &'a str,
    pub kind: JobKind,
    pub waba_id: Option<&'a str>,
    pub meta_phone_number_id: Option<&'a str>,
    pub order_key: Option<&'a str>,
    pub payload: &'a str,
    pub state: JobState,
    pub run_after: NaiveDateTime,
    pub received_at: NaiveDateTime,
}

/// Rows per INSERT: well inside SQLite's limit of bound values.
const INSERT_CHUNK: usize = 500;

/// Inserts the jobs, skipping any whose `dedup_key` is stored already (a redelivery). Returns how
/// many were new. PostgreSQL takes them in multi-row statements (one round trip each); SQLite,
/// in-process, one row at a time through one cached statement, which costs less than parsing a
/// statement of a new shape for every group.
pub fn insert_new(conn: &mut DbConnection, rows: &[NewJobRow<'_>]) -> QueryResult<usize> {
    let mut added = 0;
    match conn {
        DbConnection::Postgresql(pg) => {
            for chunk in rows.chunks(INSERT_CHUNK) {
                added += diesel::insert_into(webhook_jobs::table)
                    .values(chunk)
                    .on_conflict(webhook_jobs::dedup_key)
                    .do_nothing()
                    .execute(pg)?;
            }
        }
        DbConnection::Sqlite(sqlite) => {
            for row in rows {
                added += diesel::insert_into(webhook_jobs::table)
                    .values(row)
                    .on_conflict(webhook_jobs::dedup_key)
                    .do_nothing()
                    .execute(sqlite)?;
            }
        }
    }
    Ok(added)
}

/// Takes up to `limit` jobs that are due (queued and past `run_after`, or running under a lease
/// that lapsed: their worker died) for `owner` until `lease_until`, oldest first. A job waits while
/// an earlier job of its `order_key` is queued or running, so one conversation's messages are
/// handled one at a time, in order. Each claim counts an attempt.
pub fn claim(
    conn: &mut DbConnection,
    owner: LeaseOwner,
    now: NaiveDateTime,
    lease_until: NaiveDateTime,
    limit: i64,
) -> QueryResult<Vec<JobRow>> {
    // Each state is walked in arrival order by the index (state, id), up to the first few the
    // worker may take. With both states in one OR, the planners gathered every due job (SQLite)
    // or walked every job ever kept from the oldest (PostgreSQL: 8 days of done ones) on every
    // claim, under the write lock.
    const ORDER_FREE: &str = "NOT EXISTS (SELECT 1 FROM webhook_jobs e \
        WHERE e.order_key = j.order_key AND e.id < j.id AND e.state IN ('queued', 'running'))";
    const SET: &str =
        "UPDATE webhook_jobs SET state = 'running', lease_owner = $1, lease_until = $3, \
        attempts = attempts + 1";
    let lapsed = format!(
        "SELECT j.id FROM webhook_jobs j WHERE j.state = 'running' AND j.lease_until < $2 \
         AND {ORDER_FREE} ORDER BY j.id LIMIT $4"
    );
    let queued = format!(
        "SELECT j.id FROM webhook_jobs j {} WHERE j.state = 'queued' AND j.run_after <= $2 \
         AND {ORDER_FREE} ORDER BY j.id LIMIT $4",
        if matches!(conn, DbConnection::Sqlite(_)) {
            "INDEXED BY webhook_jobs_queue"
        } else {
            ""
        }
    );
    match conn {
        DbConnection::Postgresql(pg) => {
            // Rows another instance is claiming are skipped, not waited for. FOR UPDATE does not
            // go over a UNION: the lapsed ones (a dead worker's, rare) first, then the queued.
            let take = |pg: &mut diesel::PgConnection, select: &str, n: i64| {
                let sql =
                    format!("{SET} WHERE id IN ({select} FOR UPDATE SKIP LOCKED) RETURNING *");
                diesel::sql_query(sql)
                    .bind::<Text, _>(owner.to_string())
                    .bind::<Timestamp, _>(now)
                    .bind::<Timestamp, _>(lease_until)
                    .bind::<BigInt, _>(n)
                    .load::<JobRow>(pg)
            };
            let mut rows = take(pg, &lapsed, limit)?;
            let left = limit - i64::try_from(rows.len()).unwrap_or(limit);
            if left > 0 {
                rows.extend(take(pg, &queued, left)?);
            }
            rows.sort_by_key(|r| r.id);
            Ok(rows)
        }
        DbConnection::Sqlite(sqlite) => {
            // The caller's write transaction (BEGIN IMMEDIATE) already excludes other claimers.
            let sql = format!(
                "{SET} WHERE id IN (SELECT id FROM (SELECT id FROM ({queued}) \
                 UNION ALL SELECT id FROM ({lapsed})) ORDER BY id LIMIT $4) RETURNING *"
            )
            .replace("$1", "?1")
            .replace("$2", "?2")
            .replace("$3", "?3")
            .replace("$4", "?4");
            diesel::sql_query(sql)
                .bind::<Text, _>(owner.to_string())
                .bind::<Timestamp, _>(now)
                .bind::<Timestamp, _>(lease_until)
                .bind::<BigInt, _>(limit)
                .load(sqlite)
        }
    }
}

/// The job, only while `owner` holds it.
macro_rules! held {
    ($id:expr, $owner:expr) => {
        webhook_jobs::table
            .filter(webhook_jobs::id.eq($id))
            .filter(webhook_jobs::lease_owner.eq($owner))
            .filter(webhook_jobs::state.eq(JobState::Running))
    };
}

/// Whether any job is due (a read: idle workers look before they take the write lock to claim).
pub fn any_due(conn: &mut DbConnection, now: NaiveDateTime) -> QueryResult<bool> {
    let queued = webhook_jobs::table
        .filter(webhook_jobs::state.eq(JobState::Queued))
        .filter(webhook_jobs::run_after.le(now));
    let lapsed = webhook_jobs::table
        .filter(webhook_jobs::state.eq(JobState::Running))
        .filter(webhook_jobs::lease_until.lt(now));
    Ok(
        diesel::select(diesel::dsl::exists(queued)).get_result(conn)?
            || diesel::select(diesel::dsl::exists(lapsed)).get_result(conn)?,
    )
}

/// Deletes up to `limit` jobs finished (`done`) before `before`; dead jobs stay for someone to
/// read. Returns how many went.
pub fn delete_done_before(
    conn: &mut DbConnection,
    before: NaiveDateTime,
    limit: i64,
) -> QueryResult<usize> {
    let old = webhook_jobs::table
        .filter(webhook_jobs::state.eq(JobState::Done))
        .filter(webhook_jobs::finished_at.lt(before))
        .select(webhook_jobs::id)
        .limit(limit);
    let ids: Vec<i64> = old.load(conn)?;
    diesel::delete(webhook_jobs::table.filter(webhook_jobs::id.eq_any(ids))).execute(conn)
}

/// When `owner`'s lease on the job runs out; `None` when `owner` no longer holds it (a read).
pub fn lease_of(
    conn: &mut DbConnection,
    id: i64,
    owner: LeaseOwner,
) -> QueryResult<Option<NaiveDateTime>> {
    held!(id, owner)
        .select(webhook_jobs::lease_until)
        .first::<Option<NaiveDateTime>>(conn)
        .optional()
        .map(Option::flatten)
}

/// Extends the lease if `owner` still holds it; false when it does not (it lapsed and another
/// worker took the job): the caller must stop before its next external call.
pub fn renew(
    conn: &mut DbConnection,
    id: i64,
    owner: LeaseOwner,
    until: NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(held!(id, owner))
        .set(webhook_jobs::lease_until.eq(until))
        .execute(conn)?;
    Ok(n == 1)
}

/// Ends the job as done (with a note, e.g. why nothing was to be done). False if `owner` no
/// longer held it.
pub fn finish(
    conn: &mut DbConnection,
    id: i64,
    owner: LeaseOwner,
    now: NaiveDateTime,
    note: Option<&str>,
) -> QueryResult<bool> {
    let n = diesel::update(held!(id, owner))
        .set((
            webhook_jobs::state.eq(JobState::Done),
            webhook_jobs::finished_at.eq(Some(now)),
            webhook_jobs::lease_owner.eq(None::<LeaseOwner>),
            webhook_jobs::lease_until.eq(None::<NaiveDateTime>),
            webhook_jobs::last_error.eq(note),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Puts the job back in the queue until `run_after`, with the error that stopped it.
pub fn retry_later(
    conn: &mut DbConnection,
    id: i64,
    owner: LeaseOwner,
    run_after: NaiveDateTime,
    error: &str,
) -> QueryResult<bool> {
    let n = diesel::update(held!(id, owner))
        .set((
            webhook_jobs::state.eq(JobState::Queued),
            webhook_jobs::run_after.eq(run_after),
            webhook_jobs::lease_owner.eq(None::<LeaseOwner>),
            webhook_jobs::lease_until.eq(None::<NaiveDateTime>),
            webhook_jobs::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Gives the job up: `dead`, with its last error, for someone to look at.
pub fn bury(
    conn: &mut DbConnection,
    id: i64,
    owner: LeaseOwner,
    now: NaiveDateTime,
    error: &str,
) -> QueryResult<bool> {
    let n = diesel::update(held!(id, owner))
        .set((
            webhook_jobs::state.eq(JobState::Dead),
            webhook_jobs::finished_at.eq(Some(now)),
            webhook_jobs::lease_owner.eq(None::<LeaseOwner>),
            webhook_jobs::lease_until.eq(None::<NaiveDateTime>),
            webhook_jobs::last_error.eq(Some(error)),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Hands a claimed job back without counting the attempt, to run again from `run_after` (it
/// must wait for a rate limit, or the service is shutting down).
pub fn postpone(
    conn: &mut DbConnection,
    id: i64,
    owner: LeaseOwner,
    run_after: NaiveDateTime,
) -> QueryResult<bool> {
    let n = diesel::update(held!(id, owner))
        .set((
            webhook_jobs::state.eq(JobState::Queued),
            webhook_jobs::run_after.eq(run_after),
            webhook_jobs::lease_owner.eq(None::<LeaseOwner>),
            webhook_jobs::lease_until.eq(None::<NaiveDateTime>),
            webhook_jobs::attempts.eq(webhook_jobs::attempts - 1),
        ))
        .execute(conn)?;
    Ok(n == 1)
}

/// Jobs in `state` about the given numbers (Meta ids) or WABAs, newest first, before `before_id`.
pub fn list_for(
    conn: &mut DbConnection,
    meta_ids: &[String],
    waba_ids: &[String],
    state: JobState,
    before_id: Option<i64>,
    limit: i64,
) -> QueryResult<Vec<JobRow>> {
    let mut query = webhook_jobs::table
        .filter(
            webhook_jobs::meta_phone_number_id.eq_any(meta_ids).or(
                webhook_jobs::meta_phone_number_id
                    .is_null()
                    .and(webhook_jobs::waba_id.eq_any(waba_ids)),
            ),
        )
        .filter(webhook_jobs::state.eq(state))
        .into_boxed();
    if let Some(before) = before_id {
        query = query.filter(webhook_jobs::id.lt(before));
    }
    query
        .order(webhook_jobs::id.desc())
        .limit(limit)
        .select(JobRow::as_select())
        .load(conn)
}

/// How many jobs are in each state (for `/metrics` and tests).
pub fn count_by_state(conn: &mut DbConnection) -> QueryResult<Vec<(JobState, i64)>> {
    webhook_jobs::table
        .group_by(webhook_jobs::state)
        .select((webhook_jobs::state, diesel::dsl::count_star()))
        .load(conn)
}

/// Whether a job of `kind` about the number with Meta id `meta_id` is queued or running.
pub fn pending_for(conn: &mut DbConnection, kind: JobKind, meta_id: &str) -> QueryResult<bool> {
    diesel::select(diesel::dsl::exists(
        webhook_jobs::table
            .filter(webhook_jobs::kind.eq(kind))
            .filter(webhook_jobs::meta_phone_number_id.eq(meta_id))
            .filter(webhook_jobs::state.eq_any([JobState::Queued, JobState::Running])),
    ))
    .get_result(conn)
}

/// The `limit` numbers (Meta ids) with the most jobs queued or running, with how many and when
/// the oldest of them came in.
pub fn busiest_numbers(
    conn: &mut DbConnection,
    limit: i64,
) -> QueryResult<Vec<(String, i64, Option<NaiveDateTime>)>> {
    webhook_jobs::table
        .filter(webhook_jobs::state.eq_any([JobState::Queued, JobState::Running]))
        .filter(webhook_jobs::meta_phone_number_id.is_not_null())
        .group_by(webhook_jobs::meta_phone_number_id)
        .select((
            webhook_jobs::meta_phone_number_id.assume_not_null(),
            diesel::dsl::count_star(),
            diesel::dsl::min(webhook_jobs::received_at),
        ))
        .order((
            diesel::dsl::count_star().desc(),
            webhook_jobs::meta_phone_number_id,
        ))
        .limit(limit)
        .load(conn)
}

/// When the oldest job still queued came in.
pub fn oldest_queued(conn: &mut DbConnection) -> QueryResult<Option<NaiveDateTime>> {
    webhook_jobs::table
        .filter(webhook_jobs::state.eq(JobState::Queued))
        .select(diesel::dsl::min(webhook_jobs::received_at))
        .first(conn)
}
