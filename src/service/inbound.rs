//! Meta's webhooks, from the door to the answer.
//!
//! - [`accept`]: checks the signature over the raw bytes, splits the delivery into jobs and has the
//!   [`Intake`] store them before the delivery is acknowledged.
//! - [`Intake`]: one writer thread with a connection of its own commits every delivery waiting at
//!   that moment in one transaction (group commit), skipping jobs already stored (redeliveries).
//! - [`run_workers`]: background workers claim due jobs under a lease with an owner, handle them,
//!   and finish, retry (with backoff) or bury each. One conversation's jobs run one at a time.
//! - Handling a customer's message: store it (customer, conversation, message), mark it read, ask
//!   the number's inbound agent, send the answer as a reply from the same number.

use std::sync::Arc;
use std::time::Duration;

use chrono::NaiveDateTime;
use serde_json::json;
use tokio::sync::{mpsc, oneshot, Notify};
use tracing::Instrument;

use super::responders::{self, Question, ResponderError, Turn};
use super::{events, outbound, ServiceError};
use crate::db::conversations::{self as convs, ConversationRow, CustomerRow, MessageRow};
use crate::db::models::{AccountRow, AgentRow};
use crate::db::webhook_jobs::{self as jobs, JobRow, NewJobRow};
use crate::db::{self, phone_numbers as numbers, write_tx, DbConnection, DbUrl};
use crate::domain::webhook::{self, InboundMessage, NewJob};
use crate::domain::{
    CustomerId, EventKind, JobKind, JobState, LeaseOwner, MessageDirection, MessageId,
    MessageStatus, MetaPhoneNumberId, PhoneNumberId,
};
use crate::state::AppState;

/// Most deliveries committed in one transaction.
const MAX_GROUP: usize = 1024;
/// Deliveries waiting for the writer before senders wait too.
const QUEUE_DEPTH: usize = 8192;
/// Claims (each up to this many jobs) per worker round.
const CLAIM_BATCH: i64 = 8;
/// How often idle workers look for due jobs that no wake-up announced (retries, other instances).
const POLL_EVERY: Duration = Duration::from_millis(500);
/// Attempts before a job is given up (dead).
pub const MAX_JOB_ATTEMPTS: i64 = 10;
/// Attempts of an agent's responder before the message is recorded as not answered.
pub const MAX_RESPONDER_ATTEMPTS: i64 = 3;
/// Longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(600);
/// How long a finished job (and so its dedup key) is kept: Meta redelivers for up to 7 days.
pub const KEEP_DONE_JOBS: chrono::TimeDelta = chrono::TimeDelta::days(8);
/// How often a worker clears finished jobs past [`KEEP_DONE_JOBS`].
const PRUNE_EVERY: Duration = Duration::from_secs(600);

/// Why a delivery was not taken.
#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    /// No signature, or not Meta's: nothing is stored.
    #[error("the X-Hub-Signature-256 header is missing or does not match the body")]
    BadSignature,
    #[error("{0}")]
    NotADelivery(#[from] webhook::NotADelivery),
    /// The delivery could not be stored: Meta will deliver it again.
    #[error("{0}")]
    Unavailable(String),
}

/// The writer of the webhook queue.
#[derive(Clone)]
pub struct Intake {
    sender: mpsc::Sender<Submission>,
    /// Wakes the workers when jobs were stored.
    pub wake: Arc<Notify>,
    /// The process's metrics (the writer counts duplicate jobs into them).
    pub metrics: Arc<crate::metrics::Metrics>,
}

struct Submission {
    jobs: Vec<NewJob>,
    done: oneshot::Sender<Result<(), String>>,
}

impl Intake {
    /// Starts the writer thread with a connection of its own to `url`.
    pub fn start(url: DbUrl, metrics: Arc<crate::metrics::Metrics>) -> Result<Self, String> {
        let (sender, receiver) = mpsc::channel(QUEUE_DEPTH);
        let wake = Arc::new(Notify::new());
        let (woken, counted) = (wake.clone(), metrics.clone());
        std::thread::Builder::new()
            .name("webhook-intake".into())
            .spawn(move || write_loop(url, receiver, woken, &counted))
            .map_err(|e| format!("cannot start the webhook intake: {e}"))?;
        Ok(Intake {
            sender,
            wake,
            metrics,
        })
    }

    /// Stores the jobs durably (those already stored are skipped: redeliveries).
    pub async fn store(&self, jobs: Vec<NewJob>) -> Result<(), IntakeError> {
        if jobs.is_empty() {
            return Ok(());
        }
        let (done, answer) = oneshot::channel();
        self.sender
            .send(Submission { jobs, done })
            .await
            .map_err(|_| IntakeError::Unavailable("the webhook intake stopped".into()))?;
        answer
            .await
            .map_err(|_| IntakeError::Unavailable("the webhook intake stopped".into()))?
            .map_err(IntakeError::Unavailable)
    }
}

fn write_loop(
    url: DbUrl,
    mut receiver: mpsc::Receiver<Submission>,
    wake: Arc<Notify>,
    metrics: &crate::metrics::Metrics,
) {
    let mut conn: Option<DbConnection> = None;
    while let Some(first) = receiver.blocking_recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match receiver.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let result = write_group(&url, &mut conn, &group);
        if let Ok(added) = &result {
            let total: usize = group.iter().map(|s| s.jobs.len()).sum();
            metrics.webhook_duplicates(total.saturating_sub(*added));
        }
        if result.is_err() {
            // Open a new connection for the next group: this one may be broken.
            conn = None;
        }
        for submission in group {
            let _ = submission
                .done
                .send(result.as_ref().map(|_| ()).map_err(Clone::clone));
        }
        if result.is_ok_and(|added| added > 0) {
            wake.notify_waiters();
        }
    }
}

/// Writes every job of the group in one transaction; returns how many were new.
fn write_group(
    url: &DbUrl,
    conn: &mut Option<DbConnection>,
    group: &[Submission],
) -> Result<usize, String> {
    if conn.is_none() {
        *conn = Some(
            url.connect()
                .map_err(|e| format!("webhook intake cannot connect: {e}"))?,
        );
    }
    let Some(conn) = conn.as_mut() else {
        return Err("webhook intake has no connection".into());
    };
    let now = db::now();
    let rows: Vec<NewJobRow<'_>> = group
        .iter()
        .flat_map(|s| s.jobs.iter())
        .map(|job| NewJobRow {
            dedup_key: &job.dedup_key,
            kind: job.kind,
            waba_id: job.waba_id.as_deref(),
            meta_phone_number_id: job.meta_phone_number_id.as_deref(),
            order_key: job.order_key.as_deref(),
            payload: &job.payload,
            state: JobState::Queued,
            run_after: now,
            received_at: now,
        })
        .collect();
    write_tx(conn, |conn| jobs::insert_new(conn, &rows))
        .map_err(|e| format!("storing webhook jobs failed: {e}"))
}

/// Takes one delivery: the signature over the raw bytes first, then the jobs are stored.
pub async fn accept(
    state: &AppState,
    body: &[u8],
    signature: Option<&str>,
) -> Result<(), IntakeError> {
    if !crate::crypto::verify_hub_signature(state.webhook_secret.as_bytes(), body, signature) {
        state.metrics.webhook_rejected();
        return Err(IntakeError::BadSignature);
    }
    let jobs = webhook::jobs_of_delivery(body)?;
    let count = jobs.len();
    state.intake.store(jobs).await?;
    state.metrics.webhook_received(count);
    Ok(())
}

/// What became of a job.
#[derive(Debug)]
pub(super) enum Outcome {
    Done(Option<String>),
    /// Try again later (or give up once attempts run out).
    Retry(String),
    /// Try again after this wait (Meta asked for it), or give up once attempts run out.
    RetryAfter(chrono::TimeDelta, String),
    /// Not now: run again from then, without counting the attempt (a rate limit's turn).
    Later(NaiveDateTime),
    /// Pointless to retry.
    Dead(String),
    /// The lease was lost: another worker has the job.
    LostLease,
}

/// Runs `count` workers until the process ends.
pub async fn run_workers(state: AppState, count: usize) {
    let mut tasks = Vec::new();
    for _ in 0..count {
        tasks.push(tokio::spawn(work(state.clone())));
    }
    for task in tasks {
        let _ = task.await;
    }
}

/// How long a claim lasts: twice the longest single step (an agent's answer, a call to Meta) and
/// a few seconds for the database. Renewed before every external call, and before a claimed job
/// that waited behind others in its batch starts, so a worker that dies holds its jobs only this
/// long.
fn lease_length(state: &AppState) -> chrono::TimeDelta {
    let settings = &state.settings;
    let longest = settings
        .meta_timeout_seconds
        .max(settings.agent_timeout_seconds);
    chrono::TimeDelta::seconds(i64::try_from(2 * longest + 5).unwrap_or(i64::MAX / 2))
}

async fn work(state: AppState) {
    let owner = LeaseOwner::random();
    let mut pruned_at = tokio::time::Instant::now();
    while !state.shutdown.is_stopping() {
        if pruned_at.elapsed() >= PRUNE_EVERY {
            pruned_at = tokio::time::Instant::now();
            if let Err(err) = prune_finished(&state, db::now()).await {
                tracing::warn!(error = %err, "clearing finished webhook jobs failed");
            }
            if let Err(err) = super::events::prune(&state.db, db::now()).await {
                tracing::warn!(error = %err, "clearing old events failed");
            }
            if let Err(err) = super::budget::prune(&state).await {
                tracing::warn!(error = %err, "clearing counted Graph calls failed");
            }
        }
        let wake = state.intake.wake.clone();
        let notified = wake.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        let claimed = claim(&state, owner).await;
        let jobs = match claimed {
            Ok(jobs) => jobs,
            Err(err) => {
                tracing::warn!(error = %err, "claiming webhook jobs failed");
                tokio::time::sleep(POLL_EVERY).await;
                continue;
            }
        };
        if jobs.is_empty() {
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
                _ = state.shutdown.wait() => {}
            }
            continue;
        }
        for job in jobs {
            if state.shutdown.is_stopping() {
                hand_back(&state, job.id, owner).await;
                continue;
            }
            // A job that waited behind others in its batch may need its lease extended (fresh
            // ones are answered in memory).
            match still_ours(&state, &job, owner).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::debug!(
                        job = job.id,
                        "a job that waited in its batch was taken by another worker"
                    );
                    continue;
                }
                Err(err) => {
                    tracing::warn!(job = job.id, error = %err, "renewing a claimed job failed");
                    continue;
                }
            }
            let span = tracing::info_span!(
                "job",
                job = job.id,
                kind = %job.kind,
                attempt = job.attempts,
                phone_number_id = job.meta_phone_number_id.as_deref(),
                waba_id = job.waba_id.as_deref(),
            );
            run_job(&state, job, owner).instrument(span).await;
        }
    }
}

/// Gives a claimed job back at once, its attempt not counted (the process is stopping).
async fn hand_back(state: &AppState, id: i64, owner: LeaseOwner) {
    let released = state
        .db
        .run(move |conn| jobs::postpone(conn, id, owner, db::now()).map_err(ServiceError::from))
        .await;
    if let Err(err) = released {
        // Its lease lapses instead, and another worker takes it then.
        tracing::warn!(job = id, error = %err, "handing back a job failed");
    }
}

/// Clears finished jobs older than [`KEEP_DONE_JOBS`] (a redelivery after that would be taken as
/// new, but Meta stops redelivering after 7 days), in batches. Returns how many went.
pub async fn prune_finished(state: &AppState, now: NaiveDateTime) -> Result<usize, ServiceError> {
    let before = now - KEEP_DONE_JOBS;
    let mut total = 0;
    loop {
        let gone = state
            .db
            .run(move |conn| {
                write_tx(conn, |conn| jobs::delete_done_before(conn, before, 1000))
                    .map_err(ServiceError::from)
            })
            .await?;
        total += gone;
        if gone < 1000 {
            return Ok(total);
        }
    }
}

async fn claim(state: &AppState, owner: LeaseOwner) -> Result<Vec<JobRow>, ServiceError> {
    let lease = lease_length(state);
    state
        .db
        .run(move |conn| {
            let now = db::now();
            // Idle workers look first, so that they take the write lock only when there is work.
            if !jobs::any_due(conn, now)? {
                return Ok(Vec::new());
            }
            write_tx(conn, |conn| {
                jobs::claim(conn, owner, now, now + lease, CLAIM_BATCH).map_err(ServiceError::from)
            })
        })
        .await
}

/// Handles one claimed job and records its end; also used by tests to run a job by hand.
async fn run_job(state: &AppState, job: JobRow, owner: LeaseOwner) {
    let (id, kind, attempts) = (job.id, job.kind, job.attempts);
    let outcome = if attempts > MAX_JOB_ATTEMPTS {
        // Claimed again and again without finishing: its worker died each time.
        Outcome::Dead(format!(
            "gave up after {MAX_JOB_ATTEMPTS} attempts; last error: {}",
            job.last_error
                .as_deref()
                .unwrap_or("none (the worker stopped)")
        ))
    } else {
        handle(state, &job, owner).await
    };
    let base = state.settings.job_retry_base_ms;
    let result = state
        .db
        .run(move |conn| {
            let now = db::now();
            let recorded = match &outcome {
                Outcome::Done(note) => jobs::finish(conn, id, owner, now, note.as_deref())?,
                Outcome::Retry(err) if attempts < MAX_JOB_ATTEMPTS => {
                    jobs::retry_later(conn, id, owner, now + backoff(base, attempts), err)?
                }
                Outcome::RetryAfter(wait, err) if attempts < MAX_JOB_ATTEMPTS => {
                    jobs::retry_later(conn, id, owner, now + *wait, err)?
                }
                Outcome::Later(at) => jobs::postpone(conn, id, owner, *at)?,
                Outcome::Retry(err) | Outcome::RetryAfter(_, err) | Outcome::Dead(err) => {
                    let buried = jobs::bury(conn, id, owner, now, err)?;
                    if buried && kind == JobKind::Message {
                        give_up_message(conn, &job.payload, err, now)?;
                    }
                    if buried && kind == JobKind::Send {
                        super::outbound::give_up(conn, &job.payload, err, now)?;
                    }
                    buried
                }
                Outcome::LostLease => false,
            };
            Ok::<_, ServiceError>((recorded, outcome))
        })
        .await;
    match result {
        Ok((true, Outcome::Retry(err) | Outcome::RetryAfter(_, err))) => {
            tracing::info!(job = id, kind = %kind, attempts, error = %err, "webhook job will be retried")
        }
        Ok((true, Outcome::Dead(err))) => {
            tracing::error!(job = id, kind = %kind, attempts, error = %err, "webhook job is dead")
        }
        Ok((false, _)) => {
            tracing::warn!(job = id, kind = %kind, "webhook job's lease was lost; another worker has it")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(job = id, error = %err, "recording a webhook job's end failed"),
    }
}

/// 2^(attempt-1) times the base, at most [`MAX_BACKOFF`].
fn backoff(base_ms: u64, attempts: i64) -> chrono::TimeDelta {
    let exp = u32::try_from(attempts.clamp(1, 20) - 1).unwrap_or(0);
    let ms = base_ms
        .saturating_mul(2u64.saturating_pow(exp))
        .min(MAX_BACKOFF.as_millis() as u64);
    chrono::TimeDelta::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2))
}

/// A message job that is given up leaves its message marked as not answered, with the reason.
fn give_up_message(
    conn: &mut DbConnection,
    payload: &str,
    error: &str,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    if let Ok(message) = webhook::inbound_message(payload) {
        if let Some(row) = convs::message_by_wamid(conn, &message.wamid)? {
            if row.status == MessageStatus::Received {
                convs::set_status(
                    conn,
                    row.id,
                    MessageStatus::ReplyFailed,
                    Some((None, error)),
                    now,
                )?;
            }
        }
    }
    Ok(())
}

async fn handle(state: &AppState, job: &JobRow, owner: LeaseOwner) -> Outcome {
    let result = match job.kind {
        JobKind::Message => handle_message(state, job, owner).await,
        JobKind::Status => handle_status(state, job).await,
        JobKind::QualityUpdate | JobKind::NameUpdate | JobKind::AccountUpdate => {
            super::webhook_fields::handle(state, job, owner).await
        }
        JobKind::Send => super::outbound::handle(state, job, owner).await,
        JobKind::Register => super::register_all::handle(state, job, owner).await,
        JobKind::Other => Ok(Outcome::Done(None)),
    };
    result.unwrap_or_else(|err| Outcome::Retry(err.to_string()))
}

/// Whether the job is still this worker's, its lease long enough for the next step; false when
/// another worker took it (stop before calling out). A lease is twice the longest step and only
/// its holder extends it, so while more than half of the lease the claim gave is left, nobody else
/// can have the job and nothing needs asking; later, the database is read, and the lease extended
/// when less than half is left there too.
pub(super) async fn still_ours(
    state: &AppState,
    job: &JobRow,
    owner: LeaseOwner,
) -> Result<bool, ServiceError> {
    let lease = lease_length(state);
    if job
        .lease_until
        .is_some_and(|until| until - db::now() > lease / 2)
    {
        return Ok(true);
    }
    let id = job.id;
    state
        .db
        .run(move |conn| {
            let now = db::now();
            match jobs::lease_of(conn, id, owner)? {
                None => Ok(false),
                Some(until) if until - now > lease / 2 => Ok(true),
                Some(_) => jobs::renew(conn, id, owner, now + lease).map_err(ServiceError::from),
            }
        })
        .await
}

/// What the store step found and wrote for a customer's message.
struct Stored {
    message: MessageRow,
    conversation: ConversationRow,
    customer: CustomerRow,
    number_id: PhoneNumberId,
    meta_id: MetaPhoneNumberId,
    display: String,
    /// How fast the number may send (Meta's throughput for it).
    pace: crate::domain::outbound::Pace,
    /// The answer's first slot in Meta's limits, when the store step asked for it.
    first_slot: Option<outbound::SlotTry>,
    account: Option<AccountRow>,
    agent: Option<AgentRow>,
}

async fn handle_message(
    state: &AppState,
    job: &JobRow,
    owner: LeaseOwner,
) -> Result<Outcome, ServiceError> {
    // From the message reaching the service to this attempt: the queue, and earlier attempts.
    let waited = (db::now() - job.received_at).to_std().unwrap_or_default();
    let message = match webhook::inbound_message(&job.payload) {
        Ok(message) => message,
        Err(err) => return Ok(Outcome::Dead(err.to_string())),
    };
    let stored = {
        let message = message.clone();
        state
            .db
            .run(move |conn| write_tx(conn, |conn| store_inbound(conn, &message, db::now())))
            .await?
    };
    let Some(stored) = stored else {
        return Ok(Outcome::Done(Some(format!(
            "no connected number has Meta id {}: stored nothing",
            message.meta_phone_number_id
        ))));
    };
    if stored.message.status != MessageStatus::Received {
        // Handled before (a redelivery, or a retry after the answer went out), or nothing to do.
        return Ok(Outcome::Done(None));
    }
    let (Some(agent), Some(account)) = (stored.agent.clone(), stored.account.clone()) else {
        return Ok(Outcome::Done(None));
    };
    let Some(token) = account
        .access_token_enc
        .as_ref()
        .and_then(|sealed| state.secrets.decrypt(sealed).ok())
    else {
        return Ok(Outcome::Retry(
            "the number's account has no usable token: reconnect it".into(),
        ));
    };
    // The answer's first part goes within Meta's limits on the number and on this customer
    // (shared by every instance, with the agents' own sends); until there is room, nothing is
    // asked of the agent.
    match stored.first_slot {
        Some(outbound::SlotTry::Taken) => {}
        Some(outbound::SlotTry::WaitUntil(at)) => return Ok(Outcome::Later(at)),
        Some(outbound::SlotTry::Contended) | None => {
            let keys = outbound::pace_keys(stored.number_id, stored.customer.id);
            if let Some(at) = outbound::take_slot(state, None, keys, stored.pace).await? {
                return Ok(Outcome::Later(at));
            }
        }
    }
    // The customer sees the message read at once; a failure here changes nothing else.
    if !still_ours(state, job, owner).await? {
        return Ok(Outcome::LostLease);
    }
    if let Err(err) = state
        .meta
        .mark_read(&token, &stored.meta_id, &message.wamid)
        .await
    {
        tracing::info!(wamid = %message.wamid, error = %err, "marking a message read failed");
    }
    let asked = std::time::Instant::now();
    let answer = match ask_agent(state, &stored, &agent, &message, job, owner).await? {
        Ok(answer) => answer,
        Err(outcome) => return Ok(outcome),
    };
    let clock = ReplyClock {
        waited,
        agent: asked.elapsed(),
    };
    let Some(answer) = answer else {
        set_inbound(state, stored.message.id, MessageStatus::NotAnswered, None).await?;
        return Ok(Outcome::Done(None));
    };
    send_answer(
        state, &stored, &agent, &token, &message, &answer, job, owner, clock,
    )
    .await
}

/// The agent's answer, or the job's outcome when there is none to be had now.
async fn ask_agent(
    state: &AppState,
    stored: &Stored,
    agent: &AgentRow,
    message: &InboundMessage,
    job: &JobRow,
    owner: LeaseOwner,
) -> Result<Result<Option<String>, Outcome>, ServiceError> {
    let settings: crate::domain::responder::Responder =
        match serde_json::from_str(&agent.responder_config) {
            Ok(settings) => settings,
            Err(err) => {
                return Ok(Err(Outcome::Dead(format!(
                    "the agent's settings are unreadable: {err}"
                ))))
            }
        };
    let history = {
        let (conversation, before) = (stored.conversation.id, stored.message.created_at);
        let n = match &settings {
            crate::domain::responder::Responder::Openai { openai } => {
                i64::from(openai.history_messages)
            }
            // The FAQ answers from the message alone.
            crate::domain::responder::Responder::Faq { .. } => 0,
            crate::domain::responder::Responder::Webhook { .. } => 20,
        };
        if n == 0 {
            Vec::new()
        } else {
            state
                .db
                .run(move |conn| {
                    convs::recent_texts(conn, conversation, before, n).map_err(ServiceError::from)
                })
                .await?
        }
    };
    let secret = match &agent.responder_secret_enc {
        Some(sealed) => match state.secrets.decrypt(sealed) {
            Ok(secret) => Some(secret),
            Err(_) => {
                return Ok(Err(Outcome::Dead(
                    "the agent's secret cannot be decrypted".into(),
                )))
            }
        },
        None => None,
    };
    let question = Question {
        message_id: stored.message.id.to_string(),
        conversation_id: stored.conversation.id.to_string(),
        text: message
            .text
            .clone()
            .unwrap_or_else(|| format!("[{}]", message.kind)),
        kind: message.kind.clone(),
        customer: json!({
            "id": stored.customer.id,
            "user_id": stored.customer.user_id,
            "phone": stored.customer.phone,
            "profile_name": stored.customer.profile_name,
            "username": stored.customer.username,
        }),
        number: json!({"id": stored.number_id, "phone_number_id": stored.meta_id, "display_phone_number": stored.display}),
        agent: json!({"id": agent.id, "name": agent.name}),
        history: history
            .into_iter()
            .filter_map(|m| {
                Some(Turn {
                    from_customer: m.direction == MessageDirection::Inbound,
                    text: m.body?,
                })
            })
            .collect(),
    };
    if !still_ours(state, job, owner).await? {
        return Ok(Err(Outcome::LostLease));
    }
    let responder = responders::responder_for(settings, secret, &state.agent_http);
    match responder.answer(&question).await {
        Ok(answer) => Ok(Ok(answer.map(|a| crate::domain::text::storable(&a)))),
        Err(err) if err.retryable() && job.attempts < MAX_RESPONDER_ATTEMPTS => Ok(Err(
            Outcome::Retry(format!("the agent could not answer: {err}")),
        )),
        Err(err) => {
            let why = match &err {
                ResponderError::Refused(_) => err.to_string(),
                ResponderError::Failed(_) => format!(
                    "the agent could not answer after {} attempts: {err}",
                    job.attempts
                ),
            };
            set_inbound(
                state,
                stored.message.id,
                MessageStatus::ReplyFailed,
                Some(why.clone()),
            )
            .await?;
            Ok(Err(Outcome::Done(Some(why))))
        }
    }
}

async fn set_inbound(
    state: &AppState,
    id: MessageId,
    status: MessageStatus,
    error: Option<String>,
) -> Result<(), ServiceError> {
    state
        .db
        .run(move |conn| {
            convs::set_status(
                conn,
                id,
                status,
                error.as_deref().map(|e| (None, e)),
                db::now(),
            )
            .map(|_| ())
            .map_err(ServiceError::from)
        })
        .await
}

/// Longest a worker waits in place for the next part of a long answer to have room in Meta's
/// limits; beyond it the job is put off (its earlier parts are not sent again).
const MAX_PACE_WAIT: Duration = Duration::from_secs(2);

/// Takes a slot for the next part of a long answer, waiting in place up to [`MAX_PACE_WAIT`] for
/// one; otherwise says when to come back.
async fn room_for_next_part(
    state: &AppState,
    keys: &(String, String),
    pace: crate::domain::outbound::Pace,
) -> Result<Option<NaiveDateTime>, ServiceError> {
    loop {
        let Some(at) = outbound::take_slot(state, None, keys.clone(), pace).await? else {
            return Ok(None);
        };
        let wait = (at - db::now()).to_std().unwrap_or_default();
        if wait > MAX_PACE_WAIT {
            return Ok(Some(at));
        }
        tokio::time::sleep(wait).await;
    }
}

/// Whole milliseconds, for log fields.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Where an answer's time went before it was sent.
#[derive(Debug, Clone, Copy)]
struct ReplyClock {
    /// From the message reaching the service to the attempt that answered it (the queue, the
    /// customer's earlier messages, earlier attempts and their waits).
    waited: Duration,
    /// The agent producing the answer.
    agent: Duration,
}

/// Sends the answer in parts Meta takes, each recorded before it is sent, so that no part goes
/// out twice: a part found `sending` by a retry may have reached Meta and is not sent again.
#[allow(clippy::too_many_arguments)]
async fn send_answer(
    state: &AppState,
    stored: &Stored,
    agent: &AgentRow,
    token: &str,
    message: &InboundMessage,
    answer: &str,
    job: &JobRow,
    owner: LeaseOwner,
    clock: ReplyClock,
) -> Result<Outcome, ServiceError> {
    let parts = webhook::split_text(answer, crate::domain::outbound::MAX_TEXT_CHARS);
    let mut at_meta = Duration::ZERO;
    let mut answered_with_last_part = false;
    let mut failure: Option<String> = None;
    let keys = outbound::pace_keys(stored.number_id, stored.customer.id);
    for (index, text) in parts.iter().enumerate() {
        let part = i64::try_from(index).unwrap_or(i64::MAX);
        // The first part's slot was taken before the agent was asked.
        if index > 0 {
            if let Some(at) = room_for_next_part(state, &keys, stored.pace).await? {
                return Ok(Outcome::Later(at));
            }
        }
        let row = {
            let (inbound, conversation) = (stored.message.clone(), stored.conversation.clone());
            let (agent_id, text, number) = (agent.id, text.clone(), stored.number_id);
            state
                .db
                .run(move |conn| {
                    write_tx(conn, |conn| {
                        start_part(conn, &inbound, &conversation, number, agent_id, part, &text)
                    })
                })
                .await?
        };
        let row = match row {
            Part::New(row) => *row,
            Part::Sent => continue,
            Part::InDoubt(why) => {
                failure = Some(why.to_owned());
                break;
            }
        };
        if !still_ours(state, job, owner).await? {
            return Ok(Outcome::LostLease);
        }
        let mut body = json!({
            "messaging_product": "whatsapp",
            "recipient_type": "individual",
            "type": "text",
            "text": {"preview_url": false, "body": text},
            "context": {"message_id": message.wamid},
        });
        // The phone number when Meta shared it (it wins over `recipient`), else the BSUID.
        match (&message.sender.phone, &message.sender.user_id) {
            (Some(phone), _) => body["to"] = json!(format!("+{}", phone.trim_start_matches('+'))),
            (None, Some(user_id)) => body["recipient"] = json!(user_id),
            (None, None) => {}
        }
        let calling = std::time::Instant::now();
        let sent = state.meta.send_message(token, &stored.meta_id, &body).await;
        at_meta += calling.elapsed();
        let id = row.id;
        let number = stored.number_id;
        match sent {
            Ok(sent) => {
                // The last part marks the customer's message answered in the same transaction.
                let last = index + 1 == parts.len();
                let answers = last.then_some(stored.message.id);
                super::conversations::record_sent(&state.db, row, number, sent.message_id, answers)
                    .await?;
                answered_with_last_part = last;
            }
            Err(err) if err.surely_not_done() && err.retryable() => {
                // Meta did not take it: tried again later, and the limit Meta hit is respected.
                let wait = outbound::refusal_wait(&err, job.attempts);
                let code = match &err {
                    crate::meta::MetaError::Api(e) => Some(e.code),
                    _ => None,
                };
                let (keys, pace) = (keys.clone(), stored.pace);
                state
                    .db
                    .run(move |conn| {
                        write_tx(conn, |conn| {
                            outbound::note_refusal(conn, &keys, pace, code, wait, db::now())?;
                            convs::delete_unsent(conn, id)?;
                            Ok::<_, ServiceError>(())
                        })
                    })
                    .await?;
                let why = format!("Meta did not take the answer: {err}");
                return Ok(match wait {
                    Some(wait) => Outcome::RetryAfter(wait, why),
                    None => Outcome::Retry(why),
                });
            }
            Err(err) => {
                let code = match &err {
                    crate::meta::MetaError::Api(e) => Some(e.code),
                    _ => None,
                };
                let why = if err.surely_not_done() {
                    err.to_string()
                } else {
                    format!("{err}; Meta may have sent it, so it is not sent again")
                };
                let stored_why = why.clone();
                state
                    .db
                    .run(move |conn| {
                        write_tx(conn, |conn| {
                            let failed = MessageStatus::Failed;
                            convs::set_status(
                                conn,
                                id,
                                failed,
                                Some((code, &stored_why)),
                                db::now(),
                            )?;
                            let kind = EventKind::MessageStatusChanged;
                            events::message(conn, &row, Some(number), kind, failed)
                        })
                    })
                    .await?;
                failure = Some(why);
                break;
            }
        }
    }
    let (status, error) = match failure {
        None => {
            let total = (db::now() - job.received_at).to_std().unwrap_or_default();
            let kind = agent.responder_kind.as_str();
            state
                .metrics
                .reply(kind, total, clock.waited, clock.agent, at_meta);
            tracing::info!(
                agent = %agent.id,
                responder = kind,
                parts = parts.len(),
                total_ms = millis(total),
                waited_ms = millis(clock.waited),
                agent_ms = millis(clock.agent),
                meta_ms = millis(at_meta),
                "answer sent"
            );
            (MessageStatus::Answered, None)
        }
        Some(why) => (MessageStatus::ReplyFailed, Some(why)),
    };
    if !answered_with_last_part || error.is_some() {
        set_inbound(state, stored.message.id, status, error.clone()).await?;
    }
    Ok(Outcome::Done(error))
}

/// What a try finds of one part of an answer.
enum Part {
    /// Not tried before: recorded `sending`, to be sent now.
    New(Box<MessageRow>),
    /// Sent (or given up) by an earlier try.
    Sent,
    /// Found `sending`: an earlier try stopped while Meta had it, so it may have been sent. It is
    /// marked failed with this reason and not sent again, nor are the parts after it.
    InDoubt(&'static str),
}

const STOPPED_WHILE_SENDING: &str =
    "the service stopped while sending; Meta may have sent it, so it is not sent again";

/// Records part `part` of the answer as `sending`, unless an earlier try got to it.
fn start_part(
    conn: &mut DbConnection,
    inbound: &MessageRow,
    conversation: &ConversationRow,
    number: PhoneNumberId,
    agent: crate::domain::AgentId,
    part: i64,
    text: &str,
) -> Result<Part, ServiceError> {
    let now = db::now();
    if let Some(existing) = convs::answer_part(conn, inbound.id, part)? {
        if existing.status == MessageStatus::Sending && existing.wamid.is_none() {
            let failed = MessageStatus::Failed;
            convs::set_status(
                conn,
                existing.id,
                failed,
                Some((None, STOPPED_WHILE_SENDING)),
                now,
            )?;
            let kind = EventKind::MessageStatusChanged;
            events::message(conn, &existing, Some(number), kind, failed)?;
            return Ok(Part::InDoubt(STOPPED_WHILE_SENDING));
        }
        return Ok(Part::Sent);
    }
    let row = MessageRow {
        id: MessageId::random(),
        workspace_id: inbound.workspace_id.clone(),
        conversation_id: conversation.id,
        direction: MessageDirection::Outbound,
        wamid: None,
        kind: "text".into(),
        body: Some(text.to_owned()),
        reply_to_id: Some(inbound.id),
        part,
        agent_id: Some(agent),
        status: MessageStatus::Sending,
        error_code: None,
        error_message: None,
        meta_timestamp: None,
        created_at: now,
        updated_at: now,
        template: None,
    };
    convs::insert_message(conn, &row)?;
    if let Some(current) = convs::get_conversation(conn, &inbound.workspace_id, conversation.id)? {
        convs::touch_conversation(conn, &current, now, false)?;
    }
    Ok(Part::New(Box::new(row)))
}

fn unix(seconds: Option<i64>) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp(seconds?, 0).map(|t| t.naive_utc())
}

/// Stores a customer's message with its customer and conversation, once: a redelivery finds the
/// message and changes nothing. `None` when no live number has the message's Meta id.
fn store_inbound(
    conn: &mut DbConnection,
    message: &InboundMessage,
    now: NaiveDateTime,
) -> Result<Option<Stored>, ServiceError> {
    let meta_id = MetaPhoneNumberId::from(message.meta_phone_number_id.as_str());
    let Some(number) = numbers::by_meta_ids(conn, std::slice::from_ref(&meta_id))?
        .into_iter()
        .find(|n| n.removed_at.is_none())
    else {
        return Ok(None);
    };
    let ws = number.workspace_id.clone();
    let account = crate::db::accounts::get(conn, &ws, number.whatsapp_account_id)?;
    let agent = match number.inbound_agent_id {
        Some(id) => crate::db::agents::get(conn, &ws, id)?,
        None => None,
    };
    let customer = match &message.identity_change {
        Some(change) => move_customer(conn, &ws, change, message, now)?,
        None => customer_for(conn, &ws, message, now)?,
    };
    let conversation = match convs::conversation_of(conn, number.id, customer.id)? {
        Some(c) => c,
        None => convs::new_conversation(conn, &ws, number.id, customer.id, now)?,
    };
    let sent_at = unix(message.timestamp).unwrap_or(now);
    let mut is_new = false;
    let row = match convs::message_by_wamid(conn, &message.wamid)? {
        Some(existing) => existing,
        None => {
            is_new = true;
            let status = if message.kind == "system" {
                MessageStatus::NotAnswered
            } else if agent.is_some() && account.is_some() {
                MessageStatus::Received
            } else {
                MessageStatus::NoAgent
            };
            let row = MessageRow {
                id: MessageId::random(),
                workspace_id: ws.clone(),
                conversation_id: conversation.id,
                direction: MessageDirection::Inbound,
                wamid: Some(message.wamid.clone()),
                kind: message.kind.clone(),
                body: message.text.clone(),
                reply_to_id: None,
                part: 0,
                agent_id: None,
                status,
                error_code: None,
                error_message: None,
                meta_timestamp: Some(sent_at),
                created_at: now,
                updated_at: now,
                template: None,
            };
            convs::insert_message(conn, &row)?;
            convs::touch_conversation(conn, &conversation, sent_at, true)?;
            let kind = EventKind::MessageReceived;
            events::message(conn, &row, Some(number.id), kind, row.status)?;
            row
        }
    };
    let pace = super::phone_numbers::facts(&number).send_pace();
    // A new message to answer takes its answer's first slot in Meta's limits in this same
    // transaction; a retry, or a slot contended by another instance, asks again before the agent.
    let first_slot = if is_new && row.status == MessageStatus::Received {
        let keys = outbound::pace_keys(number.id, customer.id);
        Some(outbound::try_slot(conn, &keys, pace, now)?)
    } else {
        None
    };
    Ok(Some(Stored {
        message: row,
        conversation,
        customer,
        number_id: number.id,
        meta_id,
        pace,
        first_slot,
        display: number.display_phone_number,
        account,
        agent,
    }))
}

/// The customer who wrote, created on first sight, with what Meta now says of them.
fn customer_for(
    conn: &mut DbConnection,
    ws: &crate::domain::WorkspaceId,
    message: &InboundMessage,
    now: NaiveDateTime,
) -> Result<CustomerRow, ServiceError> {
    let sender = &message.sender;
    match convs::find_customer(conn, ws, sender.user_id.as_deref(), sender.phone.as_deref())? {
        Some(mut customer) => {
            let before = (
                customer.user_id.clone(),
                customer.phone.clone(),
                customer.profile_name.clone(),
                customer.username.clone(),
            );
            customer.user_id = sender.user_id.clone().or(customer.user_id);
            customer.phone = sender.phone.clone().or(customer.phone);
            customer.profile_name = sender.profile_name.clone().or(customer.profile_name);
            customer.username = sender.username.clone().or(customer.username);
            let after = (
                customer.user_id.clone(),
                customer.phone.clone(),
                customer.profile_name.clone(),
                customer.username.clone(),
            );
            if before != after {
                customer.updated_at = now;
                convs::update_customer(conn, &customer)?;
            }
            Ok(customer)
        }
        None => {
            let customer = CustomerRow {
                id: CustomerId::random(),
                workspace_id: ws.clone(),
                user_id: sender.user_id.clone(),
                phone: sender.phone.clone(),
                profile_name: sender.profile_name.clone(),
                username: sender.username.clone(),
                created_at: now,
                updated_at: now,
            };
            convs::insert_customer(conn, &customer)?;
            Ok(customer)
        }
    }
}

/// A customer changed number (so BSUID): the customer known by the old identity takes the new
/// one and keeps their conversations; if the new identity was seen already, the two are merged
/// into it.
fn move_customer(
    conn: &mut DbConnection,
    ws: &crate::domain::WorkspaceId,
    change: &webhook::IdentityChange,
    message: &InboundMessage,
    now: NaiveDateTime,
) -> Result<CustomerRow, ServiceError> {
    let old = convs::find_customer(
        conn,
        ws,
        change.previous_user_id.as_deref(),
        change.previous_phone.as_deref(),
    )?;
    let new_user = change.new_user_id.clone();
    let new_phone = change.new_phone.clone();
    let existing_new = match (&new_user, &new_phone) {
        (None, None) => None,
        _ => convs::find_customer(conn, ws, new_user.as_deref(), new_phone.as_deref())?,
    };
    match (old, existing_new) {
        (Some(old), Some(new)) if old.id != new.id => {
            convs::move_conversations(conn, old.id, new.id)?;
            Ok(new)
        }
        (Some(mut old), _) => {
            if new_user.is_some() {
                old.user_id = new_user;
            }
            if new_phone.is_some() {
                old.phone = new_phone;
            }
            old.updated_at = now;
            convs::update_customer(conn, &old)?;
            Ok(old)
        }
        (None, Some(new)) => Ok(new),
        (None, None) => customer_for(conn, ws, message, now),
    }
}

/// Applies one of Meta's statuses to the message we sent. A status for a message not yet
/// recorded as sent (its status raced the send's answer) is retried; one for a message this
/// service did not send is noted and dropped.
async fn handle_status(state: &AppState, job: &JobRow) -> Result<Outcome, ServiceError> {
    let update = match webhook::status_update(&job.payload) {
        Ok(Some(update)) => update,
        Ok(None) => {
            return Ok(Outcome::Done(Some(
                "a status this service does not track".into(),
            )))
        }
        Err(err) => return Ok(Outcome::Dead(err.to_string())),
    };
    let attempts = job.attempts;
    state
        .db
        .run(move |conn| {
            write_tx(conn, |conn| {
                let Some(row) = convs::message_by_wamid(conn, &update.wamid)? else {
                    return Ok(if attempts < 3 {
                        Outcome::Retry(format!("no message {} yet", update.wamid))
                    } else {
                        Outcome::Done(Some(format!(
                            "{} is not a message this service sent",
                            update.wamid
                        )))
                    });
                };
                if row.direction != MessageDirection::Outbound
                    || update.status.outbound_rank() <= row.status.outbound_rank()
                {
                    return Ok(Outcome::Done(None));
                }
                let error = update
                    .error
                    .as_ref()
                    .map(|(code, message)| (*code, message.as_str()));
                events::message(
                    conn,
                    &row,
                    None,
                    EventKind::MessageStatusChanged,
                    update.status,
                )?;
                convs::set_delivery(
                    conn,
                    row.id,
                    update.status,
                    if update.status == MessageStatus::Failed {
                        error
                    } else {
                        None
                    },
                    unix(update.timestamp),
                    db::now(),
                )?;
                Ok(Outcome::Done(None))
            })
        })
        .await
}

/// Counts of jobs by state (for `/metrics`).
/// The job queue by state, and how long its oldest queued job has waited (for `/metrics`).
pub async fn queue_state(state: &AppState) -> Result<crate::metrics::QueueState, ServiceError> {
    state
        .db
        .run(|conn| {
            let now = db::now();
            let age =
                |at: Option<NaiveDateTime>| at.map_or(0, |at| (now - at).num_seconds().max(0));
            let counts = jobs::count_by_state(conn)?;
            let oldest_queued_seconds = age(jobs::oldest_queued(conn)?);
            let busiest_numbers = jobs::busiest_numbers(conn, super::budget::BUSIEST)?
                .into_iter()
                .map(|(meta_id, jobs, oldest)| crate::metrics::NumberBacklog {
                    meta_id,
                    jobs,
                    oldest_seconds: age(oldest),
                })
                .collect();
            Ok(crate::metrics::QueueState {
                counts,
                oldest_queued_seconds,
                busiest_numbers,
            })
        })
        .await
}

/// In sandbox mode: plays a WhatsApp user writing `text` to the workspace's number, as Meta
/// would deliver it: the payload is built, signed with the webhook secret and taken through
/// [`accept`], like any delivery. Returns the message's `wamid`.
pub async fn play_inbound(
    state: &AppState,
    workspace: &crate::domain::WorkspaceId,
    meta_id: MetaPhoneNumberId,
    from: &str,
    text: &str,
) -> Result<String, ServiceError> {
    if state.sandbox.is_none() {
        return Err(ServiceError::SandboxOff);
    }
    crate::domain::text::META_PHONE_NUMBER_ID.check(meta_id.as_str())?;
    crate::domain::text::SANDBOX_FROM.check(from)?;
    crate::domain::text::MESSAGE_TEXT.check(text)?;
    let ws = workspace.clone();
    let found = state
        .db
        .run(move |conn| {
            let number = numbers::by_meta_ids(conn, std::slice::from_ref(&meta_id))?
                .into_iter()
                .find(|n| n.workspace_id == ws && n.removed_at.is_none());
            let Some(number) = number else {
                return Ok::<_, ServiceError>(None);
            };
            let account = crate::db::accounts::get(conn, &ws, number.whatsapp_account_id)?;
            Ok(account.map(|a| (number, a.waba_id)))
        })
        .await?;
    let (number, waba) = found.ok_or(ServiceError::PhoneNumberNotFound)?;
    let wamid = format!("wamid.sandbox.{}", uuid::Uuid::new_v4().simple());
    let digits: String = number
        .display_phone_number
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    let (contact, sender) = match from.strip_prefix('+').unwrap_or(from) {
        phone if phone.chars().all(|c| c.is_ascii_digit()) => (
            json!({"wa_id": phone, "profile": {"name": "Sandbox user"}}),
            json!({"from": phone}),
        ),
        user_id => (
            json!({"wa_id": "", "user_id": user_id, "profile": {"username": "sandbox.user"}}),
            json!({"from_user_id": user_id}),
        ),
    };
    let mut message = json!({
        "id": wamid,
        "timestamp": chrono::Utc::now().timestamp().to_string(),
        "type": "text",
        "text": {"body": text},
    });
    if let (Some(m), Some(s)) = (message.as_object_mut(), sender.as_object()) {
        m.extend(s.clone());
    }
    let delivery = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": waba, "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": digits, "phone_number_id": number.meta_phone_number_id},
            "contacts": [contact],
            "messages": [message],
        }}]}],
    });
    let body = delivery.to_string().into_bytes();
    let signature = crate::crypto::hub_signature(state.webhook_secret.as_bytes(), &body);
    accept(state, &body, Some(&signature))
        .await
        .map_err(|e| match e {
            IntakeError::Unavailable(cause) => ServiceError::Unavailable(cause),
            other => ServiceError::Internal(other.to_string()),
        })?;
    Ok(wamid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        assert_eq!(backoff(1000, 1), chrono::TimeDelta::seconds(1));
        assert_eq!(backoff(1000, 2), chrono::TimeDelta::seconds(2));
        assert_eq!(backoff(1000, 4), chrono::TimeDelta::seconds(8));
        assert_eq!(backoff(1000, 30), chrono::TimeDelta::seconds(600));
    }
}
