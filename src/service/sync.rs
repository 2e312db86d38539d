//! Keeping numbers in step with Meta: every page of a WABA's numbers, new ones added, changed ones
//! updated (quality changes recorded), missing ones marked removed. One account's failure never
//! touches another's.

use crate::domain::phone_number::QualityAlert;
use std::collections::{HashMap, HashSet};

use chrono::{NaiveDateTime, TimeDelta};

use super::{audit_row, events, AuditDetail, ServiceError};
use crate::auth::Principal;
use crate::db::models::{AccountRow, MetaFields, PhoneNumberRow, QualityEventRow};
use crate::db::{
    self, accounts, audit, phone_numbers as numbers, registration, write_tx, DbConnection,
};
use crate::domain::{
    digits, search_key, AccountId, AccountStatus, AuditAction, LeaseOwner, MetaPhoneNumberId,
    PhoneNumberId, PlatformType, QualityEventId, QualityEventSource, QualityRating,
    RegistrationState, WabaId,
};
use crate::domain::{EventKind, WorkspaceId};
use crate::meta::{MetaError, MetaPhoneNumber};
use crate::state::AppState;
use serde_json::json;

/// Slack on top of one page's call: the database work around it.
const SYNC_LEASE_MARGIN: TimeDelta = TimeDelta::seconds(30);

/// One sync of one account: who holds its lease, and how long the lease lasts after a renewal:
/// one call to Meta and [`SYNC_LEASE_MARGIN`].
#[derive(Debug, Clone, Copy)]
struct SyncLease {
    account: AccountId,
    owner: LeaseOwner,
    length: TimeDelta,
}

/// Calls of the budget reserved at most at once: a sync reserves 1, then 2, 4, ... up to this many
/// as its pages go on, so a small WABA spends what it uses and a large one writes a reservation
/// every sixteen pages, not one per page.
const MAX_RESERVATION: i64 = 16;

/// Where a sync stands before its next page.
#[derive(Debug, Clone, Copy)]
struct Paging {
    /// Calls of the WABA's budget reserved and not yet used.
    reserved: i64,
    /// How many to reserve next time.
    next_reservation: i64,
    /// Until when the lease was last extended.
    lease_until: NaiveDateTime,
}

impl SyncLease {
    /// Before a page: the lease is checked (a sync that lost it stops) and extended whenever it
    /// could lapse during the call, and a call of the WABA's budget is taken from the reserved
    /// ones, reserving more when none are left (a sync past the budget waits).
    async fn before_page(
        &self,
        state: &AppState,
        waba: &WabaId,
        paging: &mut Paging,
    ) -> Result<(), ServiceError> {
        let (lease, waba, current) = (*self, waba.clone(), *paging);
        *paging = state
            .db
            .run(move |conn| {
                let now = db::now();
                // Extended at least every SYNC_LEASE_MARGIN: it always outlasts the next call.
                let lapses_soon = current.lease_until - now < lease.length - SYNC_LEASE_MARGIN;
                if current.reserved > 0 && !lapses_soon {
                    return if accounts::holds_sync(conn, lease.account, lease.owner, now)? {
                        Ok(Paging {
                            reserved: current.reserved - 1,
                            ..current
                        })
                    } else {
                        Err(ServiceError::SyncInProgress)
                    };
                }
                write_tx(conn, |conn| {
                    let until = now + lease.length;
                    if !accounts::renew_sync(conn, lease.account, lease.owner, now, until)? {
                        return Err(ServiceError::SyncInProgress);
                    }
                    let mut next = Paging {
                        lease_until: until,
                        ..current
                    };
                    if next.reserved == 0 {
                        // Near the end of the budget, one call at a time until it is spent.
                        next.reserved =
                            match super::budget::spend(conn, &waba, next.next_reservation, now) {
                                Ok(()) => next.next_reservation,
                                Err(ServiceError::WabaCallBudgetSpent { .. })
                                    if next.next_reservation > 1 =>
                                {
                                    super::budget::spend(conn, &waba, 1, now)?;
                                    1
                                }
                                Err(err) => return Err(err),
                            };
                        next.next_reservation = (next.next_reservation * 2).min(MAX_RESERVATION);
                    }
                    next.reserved -= 1;
                    Ok(next)
                })
            })
            .await?;
        Ok(())
    }
}
/// Guard against a Meta that keeps answering with a next page.
const MAX_PAGES: usize = 500;

/// A manual sync of an account synced less than this ago answers that sync's result, without
/// calling Meta: a button pressed repeatedly must not spend the WABA's Graph calls.
pub const COALESCE_MANUAL_SYNCS: TimeDelta = TimeDelta::seconds(30);

/// What a sync changed.
#[derive(
    Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct SyncCounts {
    /// Numbers new to this workspace.
    pub added: u64,
    /// Numbers whose Meta facts changed.
    pub updated: u64,
    /// Numbers gone from Meta, now marked removed.
    pub removed: u64,
    /// Our ids of the added numbers.
    #[serde(skip)]
    pub added_ids: Vec<PhoneNumberId>,
    /// Numbers Meta lists here that another workspace's account holds: left where they are.
    #[serde(skip)]
    pub held_elsewhere: Vec<String>,
}

impl SyncCounts {
    /// What the account's sync note says about numbers it could not take, if any.
    fn note(&self) -> Option<String> {
        (!self.held_elsewhere.is_empty()).then(|| {
            format!(
                "Meta lists {} here that another workspace's account already holds; left there \
                 (disconnect that account to move them): {}",
                if self.held_elsewhere.len() == 1 {
                    "a number"
                } else {
                    "numbers"
                },
                self.held_elsewhere.join(", ")
            )
        })
    }
}

impl std::ops::AddAssign for SyncCounts {
    fn add_assign(&mut self, other: Self) {
        self.added += other.added;
        self.updated += other.updated;
        self.removed += other.removed;
        self.added_ids.extend(other.added_ids);
        self.held_elsewhere.extend(other.held_elsewhere);
    }
}

/// The stored form of what Meta says at `now`; `previous` supplies what Meta left out, and the
/// rating and alert the number had.
pub fn meta_fields(
    meta: &MetaPhoneNumber,
    previous: Option<&PhoneNumberRow>,
    now: NaiveDateTime,
) -> MetaFields {
    let quality_rating = match (&meta.quality_rating, previous) {
        (None, Some(p)) => p.quality_rating,
        (rating, _) => rating
            .as_deref()
            .map_or(QualityRating::Unknown, QualityRating::from_meta),
    };
    let keep = |new: &Option<String>, old: Option<&Option<String>>| {
        new.clone().or_else(|| old.cloned().flatten())
    };
    let status = keep(&meta.status, previous.map(|p| &p.status));
    let quality_alert = QualityAlert::next(
        previous.and_then(|p| p.quality_alert),
        previous.map(|p| p.quality_rating),
        quality_rating,
        status.as_deref(),
        now,
    );
    MetaFields {
        quality_alert,
        display_phone_number: meta.display_phone_number.clone(),
        display_digits: digits(&meta.display_phone_number),
        verified_name: keep(&meta.verified_name, previous.map(|p| &p.verified_name)),
        verified_name_key: search_key(
            meta.verified_name
                .as_deref()
                .or(previous.and_then(|p| p.verified_name.as_deref()))
                .unwrap_or_default(),
        ),
        platform_type: meta
            .platform_type
            .as_deref()
            .map(PlatformType::from_meta)
            .or_else(|| previous.map(|p| p.platform_type.clone()))
            .unwrap_or(PlatformType::NotApplicable),
        quality_rating,
        quality_rank: quality_rating.rank().to_owned(),
        status,
        code_verification_status: keep(
            &meta.code_verification_status,
            previous.map(|p| &p.code_verification_status),
        ),
        name_status: keep(&meta.name_status, previous.map(|p| &p.name_status)),
        messaging_limit: keep(&meta.messaging_limit, previous.map(|p| &p.messaging_limit)),
        throughput_level: keep(
            &meta.throughput_level,
            previous.map(|p| &p.throughput_level),
        ),
        account_mode: keep(&meta.account_mode, previous.map(|p| &p.account_mode)),
        is_on_biz_app: meta.is_on_biz_app,
    }
}

/// Stores Meta's view of an existing number, if it changed anything; records a quality event when
/// the rating changed.
pub fn apply_to_row(
    conn: &mut DbConnection,
    row: &PhoneNumberRow,
    account_id: AccountId,
    fields: &MetaFields,
    source: QualityEventSource,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    if !is_changed(row, account_id, fields) {
        return Ok(());
    }
    numbers::update_from_meta(conn, row.id, account_id, fields, now)?;
    // Raising and clearing a quality alert are recorded with the rating changes.
    let alert = match (&row.quality_alert, &fields.quality_alert) {
        (None, Some(raised)) => Some(format!("quality_alert_raised:{}", raised.reason)),
        (Some(_), None) => Some("quality_alert_cleared".to_owned()),
        _ => None,
    };
    let ws = &row.workspace_id;
    events::emit(
        conn,
        ws,
        EventKind::NumberChanged,
        json!({"number_id": row.id}),
    )?;
    match (&row.quality_alert, &fields.quality_alert) {
        (None, Some(raised)) => events::emit(
            conn,
            ws,
            EventKind::QualityAlertRaised,
            json!({"number_id": row.id, "reason": raised.reason}),
        )?,
        (Some(_), None) => events::emit(
            conn,
            ws,
            EventKind::QualityAlertCleared,
            json!({"number_id": row.id}),
        )?,
        _ => {}
    }
    if row.quality_rating != fields.quality_rating || alert.is_some() {
        registration::insert_quality_event(
            conn,
            &QualityEventRow {
                id: QualityEventId::random(),
                workspace_id: row.workspace_id.clone(),
                number_id: row.id,
                old_rating: Some(row.quality_rating),
                new_rating: fields.quality_rating,
                source,
                event: alert,
                created_at: now,
            },
        )?;
    }
    Ok(())
}

/// Whether storing `fields` for `account_id` changes the row.
fn is_changed(row: &PhoneNumberRow, account_id: AccountId, fields: &MetaFields) -> bool {
    row.removed_at.is_some()
        || row.whatsapp_account_id != account_id
        || MetaFields::of(row) != *fields
}

/// Reads every page of the account's numbers from Meta.
async fn fetch_all(
    state: &AppState,
    token: &str,
    waba_id: &WabaId,
    lease: &SyncLease,
) -> Result<Vec<MetaPhoneNumber>, ServiceError> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    let mut seen_cursors = HashSet::new();
    let mut paging = Paging {
        reserved: 0,
        next_reservation: 1,
        lease_until: db::now(),
    };
    for _ in 0..MAX_PAGES {
        lease.before_page(state, waba_id, &mut paging).await?;
        let page = state
            .meta
            .list_phone_numbers(token, waba_id, after.as_deref())
            .await;
        super::budget::note_usage(state, waba_id.as_str(), waba_id, &page).await;
        let page = page?;
        all.extend(page.numbers);
        match page.after {
            Some(cursor) if seen_cursors.insert(cursor.clone()) => after = Some(cursor),
            Some(_) => {
                return Err(MetaError::Unexpected("Meta repeated a paging cursor".into()).into())
            }
            None => return Ok(all),
        }
    }
    Err(MetaError::Unexpected(format!("more than {MAX_PAGES} pages of phone numbers")).into())
}

/// Syncs one account. Errors are recorded on the account (`last_sync_error`, and
/// `needs_reconnect` when Meta rejected the token) and returned.
pub async fn sync_account(
    state: &AppState,
    account: &AccountRow,
) -> Result<SyncCounts, ServiceError> {
    let lease = SyncLease {
        account: account.id,
        owner: LeaseOwner::random(),
        length: TimeDelta::from_std(std::time::Duration::from_secs(
            state.settings.meta_timeout_seconds,
        ))
        .unwrap_or(TimeDelta::minutes(5))
            + SYNC_LEASE_MARGIN,
    };
    let claimed = state
        .db
        .run(move |conn| {
            let now = db::now();
            accounts::claim_sync(conn, lease.account, lease.owner, now, now + lease.length)
                .map_err(ServiceError::from)
        })
        .await?;
    if !claimed {
        return Err(ServiceError::SyncInProgress);
    }
    let result = fetch_and_apply(state, account, &lease).await;
    if matches!(result, Err(ServiceError::SyncInProgress)) {
        // The lease went to another sync: its result is not ours to write over.
        return result;
    }
    let (synced, error, status) = match &result {
        Ok(counts) => (
            serde_json::to_string(counts).ok(),
            counts.note(),
            AccountStatus::Connected,
        ),
        Err(ServiceError::Meta(err)) if err.is_token_rejected() => (
            None,
            Some(err.user_sentence()),
            AccountStatus::NeedsReconnect,
        ),
        Err(err) => (None, Some(err.to_string()), account.status),
    };
    // Meta failing in a way worth retrying is kept, so that the next clicks answer it again
    // rather than spend the WABA's calls on a Meta that is down ([`recent_failure`]).
    let failure = match &result {
        Err(ServiceError::Meta(err)) if err.retryable() => serde_json::to_string(err).ok(),
        _ => None,
    };
    let id = account.id;
    state
        .db
        .run(move |conn| {
            let end = accounts::SyncEnd {
                synced: synced.as_deref(),
                error: error.as_deref(),
                failure: failure.as_deref(),
                status,
            };
            accounts::finish_sync(conn, id, lease.owner, &end, db::now())
                .map_err(ServiceError::from)
        })
        .await?;
    if let Err(err) = &result {
        tracing::warn!(account = %account.id, waba = %account.waba_id, error = %err.diagnostic(), "sync failed");
    }
    result
}

/// The error of the account's last sync when Meta failed it less than [`COALESCE_MANUAL_SYNCS`]
/// ago in a way worth retrying, with how long until it may be tried again.
fn recent_failure(account: &AccountRow, now: chrono::NaiveDateTime) -> Option<MetaError> {
    let since = now - account.last_sync_failed_at?;
    if since >= COALESCE_MANUAL_SYNCS {
        return None;
    }
    let mut err: MetaError = serde_json::from_str(account.last_sync_failure.as_deref()?).ok()?;
    let left = (COALESCE_MANUAL_SYNCS - since)
        .num_seconds()
        .max(1)
        .unsigned_abs();
    if let MetaError::Api(graph) = &mut err {
        graph.retry_after_seconds = Some(graph.retry_after_seconds.unwrap_or(0).max(left));
    }
    Some(err)
}

/// A sync someone asked for: an account synced successfully moments ago
/// ([`COALESCE_MANUAL_SYNCS`]) answers that sync's result without calling Meta, and one Meta
/// failed moments ago (down, timing out) answers that failure, with when to try again.
pub async fn sync_manually(
    state: &AppState,
    caller: &Principal,
    account: &AccountRow,
) -> Result<SyncCounts, ServiceError> {
    let now = db::now();
    let recent = account
        .last_synced_at
        .is_some_and(|at| now - at < COALESCE_MANUAL_SYNCS)
        && account.last_sync_error.is_none()
        && account.status == AccountStatus::Connected;
    let coalesced = recent
        .then_some(account.last_sync_counts.as_deref())
        .flatten()
        .and_then(|json| serde_json::from_str::<SyncCounts>(json).ok());
    let (outcome, reason) = match (coalesced, recent_failure(account, now)) {
        (Some(counts), _) => (Ok(counts), Some("coalesced")),
        (None, Some(err)) => (Err(ServiceError::Meta(err)), Some("coalesced")),
        (None, None) => {
            let outcome = sync_account(state, account).await;
            let reason = outcome.is_err().then_some("failed");
            (outcome, reason)
        }
    };
    // Who asked, and what it found; the sync stands even if its audit entry cannot be written.
    let detail = AuditDetail {
        account_id: Some(account.id),
        waba_id: Some(account.waba_id.clone()),
        sync_counts: outcome.as_ref().ok().cloned(),
        reason: reason.map(str::to_owned),
        ..AuditDetail::default()
    };
    let row = audit_row(caller, AuditAction::AccountSynced, None, None, &detail);
    let written: Result<_, ServiceError> = state
        .db
        .run(move |conn| write_tx(conn, |conn| Ok(audit::insert(conn, &row)?)))
        .await;
    if let Err(err) = written {
        tracing::warn!(waba = %account.waba_id, error = %err.diagnostic(), "could not record a manual sync");
    }
    outcome
}

async fn fetch_and_apply(
    state: &AppState,
    account: &AccountRow,
    lease: &SyncLease,
) -> Result<SyncCounts, ServiceError> {
    let token_enc = account
        .access_token_enc
        .as_ref()
        .ok_or(ServiceError::AccountNeedsReconnect)?;
    let token = state
        .secrets
        .decrypt(token_enc)
        .map_err(|e| ServiceError::Internal(e.to_string()))?;
    let from_meta = fetch_all(state, &token, &account.waba_id, lease).await?;
    // Work out the changes from what is stored, without the write lock; then write them in short
    // transactions, each re-checking the lease, so a large sync never holds the database's write
    // lock for long, and a sync in which nothing changed writes nothing.
    let plan_for = account.clone();
    let (changes, counts) = state
        .db
        .run(move |conn| plan(conn, &plan_for, &from_meta))
        .await?;
    let refresh = counts.added >= REFRESH_STATISTICS_AFTER;
    let mut changes = changes.into_iter().peekable();
    let (account_id, lease) = (account.id, *lease);
    let ws = account.workspace_id.clone();
    while changes.peek().is_some() {
        let chunk: Vec<Change> = changes.by_ref().take(WRITE_CHUNK).collect();
        let ws = ws.clone();
        state
            .db
            .run(move |conn| {
                write_tx(conn, |conn| {
                    // Still ours as we write: a sync that lost its lease writes nothing more.
                    let now = db::now();
                    if !accounts::renew_sync(
                        conn,
                        account_id,
                        lease.owner,
                        now,
                        now + lease.length,
                    )? {
                        return Err(ServiceError::SyncInProgress);
                    }
                    write(conn, &ws, account_id, chunk, now)
                })
            })
            .await?;
    }
    if refresh {
        // Fresh statistics now, or the next sync and the table are planned as for an empty table
        // until the database gets round to it.
        let refreshed: Result<(), ServiceError> = state
            .db
            .run(|conn| numbers::refresh_statistics(conn).map_err(ServiceError::from))
            .await;
        if let Err(err) = refreshed {
            tracing::warn!(error = %err.diagnostic(), "could not refresh the numbers' statistics");
        }
    }
    Ok(counts)
}

/// A sync that adds this many numbers refreshes the database's statistics of the table.
const REFRESH_STATISTICS_AFTER: u64 = 1000;

/// Changes written per transaction.
const WRITE_CHUNK: usize = 500;
/// Meta ids looked up per query.
const READ_CHUNK: usize = 1000;

/// One change a sync makes to the stored numbers.
enum Change {
    /// Meta's facts of a stored number changed, or it comes back, or it moves to this account;
    /// `meta_id`: Meta's new id for it (deleted and added again in Meta).
    Update {
        row: Box<PhoneNumberRow>,
        fields: Box<MetaFields>,
        meta_id: Option<MetaPhoneNumberId>,
    },
    Insert(Box<PhoneNumberRow>),
    Remove(PhoneNumberId),
}

/// Reads what is stored and works out what the sync must change; writes nothing.
fn plan(
    conn: &mut DbConnection,
    account: &AccountRow,
    from_meta: &[MetaPhoneNumber],
) -> Result<(Vec<Change>, SyncCounts), ServiceError> {
    let now = db::now();
    let mut counts = SyncCounts::default();
    let mut changes = Vec::new();
    let meta_ids: Vec<MetaPhoneNumberId> = from_meta.iter().map(|n| n.id.clone()).collect();
    let mut known: HashMap<MetaPhoneNumberId, PhoneNumberRow> = HashMap::new();
    for ids in meta_ids.chunks(READ_CHUNK) {
        for row in numbers::by_meta_ids(conn, ids)? {
            let claim = claim_on(&row, account);
            if claim > 0
                && known
                    .get(&row.meta_phone_number_id)
                    .is_none_or(|k| claim_on(k, account) < claim)
            {
                known.insert(row.meta_phone_number_id.clone(), row);
            }
        }
    }
    // Rows of this account that Meta no longer lists under their id, by digits: a number deleted and
    // added again in Meta comes back with a new id, and keeps its history and agent here.
    let listed: HashSet<&MetaPhoneNumberId> = meta_ids.iter().collect();
    let ours = numbers::for_account(conn, account.id)?;
    let mut orphans: HashMap<String, &PhoneNumberRow> = ours
        .iter()
        .filter(|r| !listed.contains(&r.meta_phone_number_id))
        .map(|r| (r.display_digits.clone(), r))
        .collect();
    let mut kept: HashSet<PhoneNumberId> = HashSet::new();
    let mut seen = HashSet::new();
    for meta in from_meta {
        if !seen.insert(meta.id.clone()) {
            continue;
        }
        match known.get(&meta.id) {
            Some(row) if row.workspace_id != account.workspace_id => {
                tracing::warn!(meta_phone_number_id = %meta.id, "number belongs to another workspace's account; left there");
                counts
                    .held_elsewhere
                    .push(meta.display_phone_number.clone());
            }
            Some(row) => {
                kept.insert(row.id);
                let fields = meta_fields(meta, Some(row), now);
                if is_changed(row, account.id, &fields) {
                    counts.updated += 1;
                    changes.push(Change::Update {
                        row: Box::new(row.clone()),
                        fields: Box::new(fields),
                        meta_id: None,
                    });
                }
            }
            None => match orphans.remove(&digits(&meta.display_phone_number)) {
                Some(row) => {
                    kept.insert(row.id);
                    counts.updated += 1;
                    changes.push(Change::Update {
                        row: Box::new(row.clone()),
                        fields: Box::new(meta_fields(meta, Some(row), now)),
                        meta_id: Some(meta.id.clone()),
                    });
                }
                None => {
                    let row = new_row(account, meta, now);
                    counts.added += 1;
                    counts.added_ids.push(row.id);
                    changes.push(Change::Insert(Box::new(row)));
                }
            },
        }
    }
    for row in &ours {
        if row.removed_at.is_none() && !kept.contains(&row.id) {
            counts.removed += 1;
            changes.push(Change::Remove(row.id));
        }
    }
    Ok((changes, counts))
}

/// Writes planned changes (the caller holds the transaction and the lease).
fn write(
    conn: &mut DbConnection,
    ws: &WorkspaceId,
    account_id: AccountId,
    changes: Vec<Change>,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let (mut removed, mut inserted) = (Vec::new(), Vec::new());
    for change in changes {
        match change {
            Change::Update {
                row,
                fields,
                meta_id,
            } => {
                if let Some(meta_id) = &meta_id {
                    numbers::set_meta_id(conn, row.id, meta_id)?;
                }
                apply_to_row(
                    conn,
                    &row,
                    account_id,
                    &fields,
                    QualityEventSource::Sync,
                    now,
                )?;
            }
            Change::Insert(row) => inserted.push(*row),
            Change::Remove(id) => removed.push(id),
        }
    }
    numbers::insert_many(conn, &inserted)?;
    numbers::mark_removed(conn, &removed, now)?;
    let added = inserted.iter().map(|row| {
        (
            ws.clone(),
            EventKind::NumberAdded,
            json!({"number_id": row.id}),
        )
    });
    let gone = removed.iter().map(|id| {
        (
            ws.clone(),
            EventKind::NumberRemoved,
            json!({"number_id": id}),
        )
    });
    events::emit_many(conn, &added.chain(gone).collect::<Vec<_>>())?;
    Ok(())
}

/// How strongly a stored row of a Meta id claims the number for `account`'s sync: a live row holds
/// it wherever it is (3); else a removed row of this account (2) or workspace (1) comes back with
/// its history; a removed row of another workspace (left by a disconnect) holds nothing (0).
fn claim_on(row: &PhoneNumberRow, account: &AccountRow) -> u8 {
    if row.removed_at.is_none() {
        3
    } else if row.whatsapp_account_id == account.id {
        2
    } else if row.workspace_id == account.workspace_id {
        1
    } else {
        0
    }
}

fn new_row(account: &AccountRow, meta: &MetaPhoneNumber, now: NaiveDateTime) -> PhoneNumberRow {
    let f = meta_fields(meta, None, now);
    PhoneNumberRow {
        id: PhoneNumberId::random(),
        workspace_id: account.workspace_id.clone(),
        whatsapp_account_id: account.id,
        meta_phone_number_id: meta.id.clone(),
        display_phone_number: f.display_phone_number,
        display_digits: f.display_digits,
        verified_name: f.verified_name,
        verified_name_key: f.verified_name_key,
        platform_type: f.platform_type,
        quality_rating: f.quality_rating,
        quality_rank: f.quality_rank,
        status: f.status,
        code_verification_status: f.code_verification_status,
        name_status: f.name_status,
        messaging_limit: f.messaging_limit,
        throughput_level: f.throughput_level,
        account_mode: f.account_mode,
        is_on_biz_app: f.is_on_biz_app,
        inbound_agent_id: None,
        registration_state: RegistrationState::NotRegistered,
        registration_last_error: None,
        registration_last_error_code: None,
        registration_last_attempt_at: None,
        registration_lease_until: None,
        registration_lease_owner: None,
        pin_enc: None,
        last_synced_at: Some(now),
        removed_at: None,
        created_at: now,
        updated_at: now,
        quality_alert: f.quality_alert,
    }
}

/// What syncing a workspace did: the totals, the accounts that failed, and how many it has.
pub struct WorkspaceSync {
    pub counts: SyncCounts,
    pub failed: Vec<(AccountRow, ServiceError)>,
    pub accounts: usize,
}

/// Syncs every account of the workspace; one account's failure does not stop the others.
pub async fn sync_workspace(
    state: &AppState,
    caller: &Principal,
) -> Result<WorkspaceSync, ServiceError> {
    let ws = caller.workspace_id.clone();
    let accounts = state
        .db
        .run(move |conn| accounts::list(conn, &ws).map_err(ServiceError::from))
        .await?;
    let mut result = WorkspaceSync {
        counts: SyncCounts::default(),
        failed: Vec::new(),
        accounts: accounts.len(),
    };
    for (account, outcome) in sync_concurrently(state, accounts, Some(caller)).await {
        match outcome {
            Ok(counts) => result.counts += counts,
            Err(err) => result.failed.push((account, err)),
        }
    }
    Ok(result)
}

/// Accounts synced at once: a slow or hanging WABA does not hold up the others.
const CONCURRENT_SYNCS: usize = 4;

/// Syncs the accounts, several at a time, each on its own task; results in the accounts' order.
/// `requested_by`: someone asked, so recent results are answered again and the sync is audited
/// ([`sync_manually`]).
async fn sync_concurrently(
    state: &AppState,
    accounts: Vec<AccountRow>,
    requested_by: Option<&Principal>,
) -> Vec<(AccountRow, Result<SyncCounts, ServiceError>)> {
    let permits = std::sync::Arc::new(tokio::sync::Semaphore::new(CONCURRENT_SYNCS));
    let tasks: Vec<_> = accounts
        .into_iter()
        .map(|account| {
            let (state, permits) = (state.clone(), permits.clone());
            let requested_by = requested_by.cloned();
            tokio::spawn(async move {
                let _permit = permits.acquire_owned().await;
                let outcome = match &requested_by {
                    Some(caller) => sync_manually(&state, caller, &account).await,
                    None => sync_account(&state, &account).await,
                };
                (account, outcome)
            })
        })
        .collect();
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(result) => results.push(result),
            Err(err) => tracing::error!(error = %err, "sync task failed"),
        }
    }
    results
}

/// How long a background sync's claim on an account lasts at least.
const SYNC_CLAIM: TimeDelta = TimeDelta::minutes(10);
/// Accounts one instance takes per round of the background sync.
const BACKGROUND_BATCH: i64 = 4 * CONCURRENT_SYNCS as i64;

/// Syncs, until the process stops, every connected account when it is due: `interval` after its
/// last background sync, or the longer interval its size allows inside its call budget
/// ([`super::budget::background_sync_interval`]), and never within `interval` of a manual sync.
/// Each instance takes a small batch of due accounts, soonest first, skipping those another
/// instance holds the sync lease of; with none due it sleeps until the soonest is.
pub async fn run_periodic(state: AppState, interval: std::time::Duration) {
    let configured = TimeDelta::from_std(interval).unwrap_or(TimeDelta::minutes(5));
    while !state.shutdown.is_stopping() {
        let now = db::now();
        // Due accounts, each claimed by moving its next sync past this one's end, so that no other
        // instance takes it meanwhile (and, should this one die, it is due again then).
        let due = state
            .db
            .run(move |conn| {
                let mut claimed = Vec::new();
                for account in
                    accounts::due_for_sync(conn, now - configured, now, BACKGROUND_BATCH)?
                {
                    if accounts::claim_due(conn, account.id, now, now + configured.max(SYNC_CLAIM))?
                    {
                        claimed.push(account);
                    }
                }
                Ok::<_, ServiceError>(claimed)
            })
            .await;
        let due = match due {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err.diagnostic(), "background sync could not list accounts");
                Vec::new()
            }
        };
        if due.is_empty() {
            // Nothing due: sleep until the soonest account is (at most a minute: new accounts and
            // other instances' changes are seen then).
            let next = state
                .db
                .run(move |conn| Ok::<_, ServiceError>(accounts::next_sync_due(conn, configured)?))
                .await
                .ok()
                .flatten();
            let wait = next
                .and_then(|at| (at - db::now()).to_std().ok())
                .unwrap_or(std::time::Duration::from_secs(60))
                .clamp(
                    std::time::Duration::from_secs(1),
                    interval.clamp(
                        std::time::Duration::from_secs(1),
                        std::time::Duration::from_secs(60),
                    ),
                );
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = state.shutdown.wait() => {}
            }
            continue;
        }
        for (account, outcome) in sync_concurrently(&state, due, None).await {
            match &outcome {
                Ok(counts) => tracing::info!(waba = %account.waba_id, ?counts, "background sync"),
                // A manual sync has it; the claim stands until then.
                Err(ServiceError::SyncInProgress) => continue,
                Err(err) => {
                    tracing::warn!(waba = %account.waba_id, error = %err.diagnostic(), "background sync failed")
                }
            }
            let id = account.id;
            let scheduled = state
                .db
                .run(move |conn| {
                    let at = super::budget::next_background_sync(conn, id, interval, db::now())?;
                    Ok::<_, ServiceError>(accounts::schedule_sync(conn, id, at)?)
                })
                .await;
            if let Err(err) = scheduled {
                tracing::warn!(waba = %account.waba_id, error = %err.diagnostic(), "scheduling the next background sync failed");
            }
        }
    }
}
