//! The live stream (`GET /api/v1/events`): what changed, from the database, so that every instance
//! on one database serves the same stream.
//!
//! - [`emit`]: use cases record an event in the transaction that made the change.
//! - [`Hub`]: one poller per instance reads new events in id order and broadcasts each, already
//!   written as a Server-Sent Events frame, to the instance's clients. Sending never waits for a
//!   client.
//! - [`subscribe`]: one client: what it missed since `Last-Event-ID` (from the database, within
//!   [`KEEP_EVENTS`]; a `reset` event when that is not possible), then the broadcast filtered to
//!   its workspace, with a keep-alive comment while idle. A client that falls behind the broadcast
//!   catches up from the database on its own; a client that stops reading only fills its own
//!   small buffer.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use chrono::NaiveDateTime;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use super::ServiceError;
use crate::db::events::{self as store, EventRow};
use crate::db::{self, write_tx, Db, DbConnection};
use crate::domain::{EventKind, WorkspaceId};

/// How long events are kept for clients that reconnect.
pub const KEEP_EVENTS: chrono::TimeDelta = chrono::TimeDelta::hours(24);
/// How often the hub looks for new events.
const POLL_EVERY: Duration = Duration::from_millis(100);
/// A comment this often keeps proxies from closing an idle stream.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Frames a slow client may have waiting before it catches up from the database instead.
const BROADCAST_DEPTH: usize = 1024;
/// Frames waiting in one client's socket buffer.
const CLIENT_BUFFER: usize = 64;
/// Events read per query.
const BATCH: i64 = 500;
/// How soon a client reconnects, in milliseconds (the SSE `retry` field).
const RECONNECT_MS: u64 = 2000;

/// Records an event of `workspace` in the caller's transaction. `data` holds the ids the event is
/// about (`number_id`, `agent_id`, `conversation_id`, `message_id`) and what changed.
pub fn emit(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    kind: EventKind,
    data: Value,
) -> Result<(), ServiceError> {
    store::emit(conn, workspace, kind, &data, db::now())?;
    Ok(())
}

/// Records several events of one change in the caller's transaction, in order (one statement per
/// 500: a sync that adds thousands of numbers).
pub fn emit_many(
    conn: &mut DbConnection,
    rows: &[(WorkspaceId, EventKind, Value)],
) -> Result<(), ServiceError> {
    store::emit_many(conn, rows, db::now())?;
    Ok(())
}

/// One event as a frame: `id`, `event` and the JSON `data` (`{id, type, at, ...}`).
struct Frame {
    id: i64,
    workspace: WorkspaceId,
    bytes: Bytes,
}

fn frame(row: &EventRow) -> Frame {
    let mut data: Value = serde_json::from_str(&row.data).unwrap_or_else(|_| json!({}));
    if let Value::Object(map) = &mut data {
        map.insert("id".into(), json!(row.id));
        map.insert("type".into(), json!(row.kind));
        map.insert(
            "at".into(),
            json!(row
                .created_at
                .and_utc()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)),
        );
    }
    Frame {
        id: row.id,
        workspace: row.workspace_id.clone(),
        bytes: Bytes::from(format!(
            "id: {}\nevent: {}\ndata: {}\n\n",
            row.id, row.kind, data
        )),
    }
}

/// An instance's reader of new events and its broadcast to the instance's clients.
pub struct Hub {
    sender: broadcast::Sender<Arc<Frame>>,
    /// The last id broadcast.
    head: AtomicI64,
    clients: AtomicI64,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            sender: broadcast::channel(BROADCAST_DEPTH).0,
            head: AtomicI64::new(-1),
            clients: AtomicI64::new(0),
        }
    }
}

impl Hub {
    /// Open streams on this instance (for `/metrics`).
    pub fn clients(&self) -> i64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// Reads and broadcasts new events until the process ends; while no client listens it reads
    /// nothing (it goes on from where it was when one comes).
    pub async fn run(self: Arc<Self>, db: Db) {
        loop {
            if self.clients() > 0 {
                if let Err(err) = self.poll(&db).await {
                    tracing::warn!(error = %err, "reading events failed");
                }
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    async fn poll(&self, db: &Db) -> Result<(), ServiceError> {
        let mut head = self.head.load(Ordering::Acquire);
        if head < 0 {
            // Start from what is there: clients that need older events read them themselves.
            head = db
                .run(|conn| Ok::<_, ServiceError>(store::bounds(conn)?.1.unwrap_or(0)))
                .await?;
            self.head.store(head, Ordering::Release);
        }
        loop {
            let rows = db
                .run(move |conn| Ok::<_, ServiceError>(store::after(conn, head, BATCH)?))
                .await?;
            let full = rows.len() as i64 == BATCH;
            for row in &rows {
                head = row.id;
                // No receivers is fine; a lagging one catches up on its own.
                let _ = self.sender.send(Arc::new(frame(row)));
            }
            self.head.store(head, Ordering::Release);
            if !full {
                return Ok(());
            }
        }
    }

    /// The last id broadcast, once the hub has started.
    async fn head(&self, db: &Db) -> Result<i64, ServiceError> {
        if self.head.load(Ordering::Acquire) < 0 {
            self.poll(db).await?;
        }
        Ok(self.head.load(Ordering::Acquire))
    }
}

/// A stream's body: the frames one client's task writes.
pub struct EventStream {
    receiver: mpsc::Receiver<Bytes>,
}

impl EventStream {
    /// The next frame, or `None` when the stream ended.
    pub fn poll_frame(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Bytes>> {
        self.receiver.poll_recv(cx)
    }
}

/// Opens a stream of `workspace`'s events: those after `last_event_id` (when given), then new
/// ones as they happen.
pub async fn subscribe(
    shutdown: &crate::state::Shutdown,
    db: &Db,
    hub: &Arc<Hub>,
    workspace: WorkspaceId,
    last_event_id: Option<i64>,
) -> Result<EventStream, ServiceError> {
    // Where the database is now, then the broadcast: whatever comes between is read from the
    // database.
    let (min, max) = db
        .run(|conn| Ok::<_, ServiceError>(store::bounds(conn)?))
        .await?;
    let now = max.unwrap_or(0);
    hub.head(db).await?;
    let live = hub.sender.subscribe();
    let start = match last_event_id {
        None => Start::From(now),
        // Ahead of anything stored (another database, or everything cleared): start over.
        Some(id) if id > now => Start::Reset(now),
        // Events after it may have been cleared: the client must reload.
        Some(id) if min.is_some_and(|min| id < min - 1) => Start::Reset(now),
        Some(id) => Start::From(id),
    };
    let (sender, receiver) = mpsc::channel(CLIENT_BUFFER);
    let (db, hub, shutdown) = (db.clone(), hub.clone(), shutdown.clone());
    hub.clients.fetch_add(1, Ordering::Relaxed);
    tokio::spawn(async move {
        let _ = serve(&shutdown, &db, workspace, start, live, &sender).await;
        hub.clients.fetch_sub(1, Ordering::Relaxed);
    });
    Ok(EventStream { receiver })
}

enum Start {
    /// Send what came after this id.
    From(i64),
    /// Tell the client it missed too much, then go on from this id.
    Reset(i64),
}

/// The client went away.
struct Gone;

async fn serve(
    shutdown: &crate::state::Shutdown,
    db: &Db,
    workspace: WorkspaceId,
    start: Start,
    mut live: broadcast::Receiver<Arc<Frame>>,
    out: &mpsc::Sender<Bytes>,
) -> Result<(), Gone> {
    let send = |bytes: Bytes| async move { out.send(bytes).await.map_err(|_| Gone) };
    send(Bytes::from(format!(
        ": connected\nretry: {RECONNECT_MS}\n\n"
    )))
    .await?;
    let mut sent = match start {
        Start::From(id) => id,
        Start::Reset(head) => {
            let kind = EventKind::Reset;
            let data = json!({"id": head, "type": kind, "reason": "Events since your Last-Event-ID are no longer kept: reload, then listen on."});
            send(Bytes::from(format!(
                "id: {head}\nevent: {kind}\ndata: {data}\n\n"
            )))
            .await?;
            head
        }
    };
    sent = catch_up(db, &workspace, sent, out).await?;
    loop {
        let next = tokio::select! {
            next = live.recv() => next,
            _ = tokio::time::sleep(KEEP_ALIVE) => {
                send(Bytes::from_static(b": keep-alive\n\n")).await?;
                continue;
            }
            _ = out.closed() => return Err(Gone),
            // The process is stopping: end the stream (the client reconnects elsewhere).
            _ = shutdown.wait() => return Ok(()),
        };
        match next {
            Ok(frame) => {
                if frame.id > sent && frame.workspace == workspace {
                    send(frame.bytes.clone()).await?;
                    sent = frame.id;
                }
            }
            // Fell behind the broadcast: the database has it all.
            Err(broadcast::error::RecvError::Lagged(_)) => {
                sent = catch_up(db, &workspace, sent, out).await?;
            }
            Err(broadcast::error::RecvError::Closed) => return Ok(()),
        }
    }
}

/// Sends the workspace's stored events after `after`; returns the last id sent.
async fn catch_up(
    db: &Db,
    workspace: &WorkspaceId,
    mut after: i64,
    out: &mpsc::Sender<Bytes>,
) -> Result<i64, Gone> {
    loop {
        let ws = workspace.clone();
        let rows = match db
            .run(move |conn| {
                Ok::<_, ServiceError>(store::of_workspace_after(conn, &ws, after, BATCH)?)
            })
            .await
        {
            Ok(rows) => rows,
            Err(err) => {
                tracing::warn!(error = %err, "reading missed events failed");
                return Ok(after);
            }
        };
        for row in &rows {
            out.send(frame(row).bytes).await.map_err(|_| Gone)?;
            after = row.id;
        }
        if (rows.len() as i64) < BATCH {
            return Ok(after);
        }
    }
}

/// Clears events past [`KEEP_EVENTS`], in batches; returns how many went.
pub async fn prune(db: &Db, now: NaiveDateTime) -> Result<usize, ServiceError> {
    let before = now - KEEP_EVENTS;
    let mut total = 0;
    loop {
        let gone = db
            .run(move |conn| {
                write_tx(conn, |conn| store::delete_before(conn, before, 1000))
                    .map_err(ServiceError::from)
            })
            .await?;
        total += gone;
        if gone < 1000 {
            return Ok(total);
        }
    }
}

/// Records an event about a message (its conversation, the agent, the new status).
pub fn message(
    conn: &mut DbConnection,
    row: &crate::db::conversations::MessageRow,
    number: Option<crate::domain::PhoneNumberId>,
    kind: EventKind,
    status: crate::domain::MessageStatus,
) -> Result<(), ServiceError> {
    let mut data = json!({
        "conversation_id": row.conversation_id,
        "message_id": row.id,
        "status": status,
    });
    if let Some(number) = number {
        data["number_id"] = json!(number);
    }
    if let Some(agent) = row.agent_id {
        data["agent_id"] = json!(agent);
    }
    emit(conn, &row.workspace_id, kind, data)
}
