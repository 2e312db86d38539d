//! The shared state of Meta's rate limits (`domain::outbound::Pace`): one theoretical arrival
//! time per key, changed only by compare-and-set so that instances racing for the same slot
//! cannot both take it.

use diesel::prelude::*;

use super::schema::send_pacing;
use super::DbConnection;
use crate::domain::outbound::Pace;

/// What [`reserve`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reservation {
    /// Every key had room: the slot is taken (once the transaction commits).
    Granted,
    /// Some key is full until then (microseconds since the Unix epoch); nothing was written.
    WaitUntil(i64),
    /// Another instance changed a key meanwhile: roll back and try again.
    Contended,
}

fn stored(conn: &mut DbConnection, keys: &[&str]) -> QueryResult<Vec<(String, i64)>> {
    send_pacing::table
        .filter(send_pacing::pace_key.eq_any(keys))
        .select((send_pacing::pace_key, send_pacing::tat))
        .load(conn)
}

/// Sets `key` from `old` to `new`; false when it was not `old` any more (or was inserted
/// meanwhile).
fn compare_and_set(
    conn: &mut DbConnection,
    key: &str,
    old: Option<i64>,
    new: i64,
) -> QueryResult<bool> {
    let changed = match old {
        Some(old) => diesel::update(
            send_pacing::table
                .filter(send_pacing::pace_key.eq(key))
                .filter(send_pacing::tat.eq(old)),
        )
        .set(send_pacing::tat.eq(new))
        .execute(conn)?,
        None => {
            let row = (send_pacing::pace_key.eq(key), send_pacing::tat.eq(new));
            match conn {
                DbConnection::Postgresql(pg) => diesel::insert_into(send_pacing::table)
                    .values(row)
                    .on_conflict(send_pacing::pace_key)
                    .do_nothing()
                    .execute(pg)?,
                DbConnection::Sqlite(sqlite) => diesel::insert_into(send_pacing::table)
                    .values(row)
                    .on_conflict(send_pacing::pace_key)
                    .do_nothing()
                    .execute(sqlite)?,
            }
        }
    };
    Ok(changed == 1)
}

/// Takes one message's slot under every `(key, pace)` at `now_us`, or says when there is room.
/// Run it in a write transaction and roll back on [`Reservation::Contended`].
pub fn reserve(
    conn: &mut DbConnection,
    paces: &[(&str, Pace)],
    now_us: i64,
) -> QueryResult<Reservation> {
    let keys: Vec<&str> = paces.iter().map(|(k, _)| *k).collect();
    let tats = stored(conn, &keys)?;
    let mut writes = Vec::with_capacity(paces.len());
    let mut wait: Option<i64> = None;
    for (key, pace) in paces {
        let tat = tats.iter().find(|(k, _)| k == key).map(|(_, t)| *t);
        match pace.admit(tat, now_us) {
            Ok(next) => writes.push((*key, tat, next)),
            Err(at) => wait = Some(wait.map_or(at, |w| w.max(at))),
        }
    }
    if let Some(at) = wait {
        return Ok(Reservation::WaitUntil(at));
    }
    for (key, old, new) in writes {
        if !compare_and_set(conn, key, old, new)? {
            return Ok(Reservation::Contended);
        }
    }
    Ok(Reservation::Granted)
}

/// Meta said the limit of `key` was reached anyway (it counts what others sent too): no slot
/// before `until_us`, then one per interval.
pub fn exhaust_until(
    conn: &mut DbConnection,
    key: &str,
    pace: Pace,
    until_us: i64,
) -> QueryResult<()> {
    let old = stored(conn, &[key])?.first().map(|(_, t)| *t);
    let new = pace.exhausted_until(old, until_us);
    if !compare_and_set(conn, key, old, new)? {
        // Someone moved it meanwhile; their slot stands and the retry's backoff still applies.
        tracing::debug!(key, "pacing key changed while marking it exhausted");
    }
    Ok(())
}
