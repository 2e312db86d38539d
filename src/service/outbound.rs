//! Messages an agent sends from its outbound number.
//!
//! - [`send`]: checks everything that can be known before Meta is called (the agent's outbound
//!   number is usable, the recipient is well formed, free text only inside the customer's 24-hour
//!   window), records the message as `queued` in the customer's conversation and queues a `send`
//!   job in the same transaction.
//! - [`handle`]: a worker takes the job, checks again, takes a slot within Meta's rate limits (the
//!   number's throughput and the pair limit, shared by all instances through the database), and
//!   calls Meta once. Transient and rate-limit errors go back to the queue with backoff; a
//!   permanent refusal fails the message with Meta's code; an answer that may have reached Meta is
//!   never sent again. Status webhooks move the message on, as for answers.

use chrono::{NaiveDateTime, TimeDelta};

use super::inbound::{still_ours, Outcome};
use super::{events, ServiceError};
use crate::auth::Principal;
use crate::db::conversations::{self as convs, ConversationRow, CustomerRow, MessageRow};
use crate::db::send_pacing::{self as pacing, Reservation};
use crate::db::webhook_jobs::{self as jobs, JobRow, NewJobRow};
use crate::db::{self, write_tx, DbConnection};
use crate::domain::outbound::{self, Content, Pace, Recipient, PAIR_PACE};
use crate::domain::{
    AccountStatus, AgentId, CustomerId, EventKind, JobKind, JobState, LeaseOwner, MessageDirection,
    MessageId, MessageStatus, PhoneNumberId,
};
use crate::meta::error::codes;
use crate::meta::MetaError;
use crate::state::AppState;

/// How often a worker retries taking a rate-limit slot that another instance changed meanwhile.
const PACING_RACES: usize = 5;

/// Sends `content` to `to` from the agent's outbound number: the message, `queued`.
pub async fn send(
    state: &AppState,
    caller: &Principal,
    agent_id: AgentId,
    to: Recipient,
    content: Content,
) -> Result<MessageRow, ServiceError> {
    let caller = caller.clone();
    let message = state
        .db
        .run(move |conn| write_tx(conn, |conn| enqueue(conn, &caller, agent_id, &to, &content)))
        .await?;
    state.intake.wake.notify_waiters();
    Ok(message)
}

fn enqueue(
    conn: &mut DbConnection,
    caller: &Principal,
    agent_id: AgentId,
    to: &Recipient,
    content: &Content,
) -> Result<MessageRow, ServiceError> {
    let ws = &caller.workspace_id;
    let now = db::now();
    let agent = db::agents::get(conn, ws, agent_id)?.ok_or(ServiceError::AgentNotFound)?;
    let number_id = agent
        .outbound_number_id
        .ok_or_else(|| ServiceError::NoOutboundNumber {
            agent: agent.name.clone(),
        })?;
    let number = db::phone_numbers::get(conn, ws, number_id)?.ok_or_else(|| {
        ServiceError::NoOutboundNumber {
            agent: agent.name.clone(),
        }
    })?;
    super::phone_numbers::facts(&number).ensure_usable_for_agents()?;
    // Meta would refuse a send with a token it rejected: say so now.
    let account = db::accounts::get(conn, ws, number.whatsapp_account_id)?
        .filter(|a| a.status == AccountStatus::Connected && a.access_token_enc.is_some())
        .ok_or(ServiceError::AccountNeedsReconnect)?;
    let (user_id, phone) = match to {
        Recipient::Phone(digits) => (None, Some(digits.as_str())),
        Recipient::Bsuid(id) => (Some(id.as_str()), None),
    };
    let customer = convs::find_customer(conn, ws, user_id, phone)?;
    let conversation = match &customer {
        Some(c) => convs::conversation_of(conn, number.id, c.id)?,
        None => None,
    };
    let last_inbound = conversation.as_ref().and_then(|c| c.last_inbound_at);
    if !content.allowed_outside_window() && !outbound::window_open(last_inbound, now) {
        return Err(ServiceError::OutsideServiceWindow {
            last_inbound_at: last_inbound,
        });
    }
    let customer = match customer {
        Some(c) => c,
        None => {
            let row = CustomerRow {
                id: CustomerId::random(),
                workspace_id: ws.clone(),
                user_id: user_id.map(str::to_owned),
                phone: phone.map(str::to_owned),
                profile_name: None,
                username: None,
                created_at: now,
                updated_at: now,
            };
            convs::insert_customer(conn, &row)?;
            row
        }
    };
    let conversation = match conversation {
        Some(c) => c,
        None => convs::new_conversation(conn, ws, number.id, customer.id, now)?,
    };
    let message = MessageRow {
        id: MessageId::random(),
        workspace_id: ws.clone(),
        conversation_id: conversation.id,
        direction: MessageDirection::Outbound,
        wamid: None,
        kind: content.kind().to_owned(),
        body: match content {
            Content::Text(text) => Some(text.clone()),
            Content::Template(_) => None,
        },
        reply_to_id: None,
        part: 0,
        agent_id: Some(agent.id),
        status: MessageStatus::Queued,
        error_code: None,
        error_message: None,
        meta_timestamp: None,
        created_at: now,
        updated_at: now,
        template: content.stored_template(),
    };
    convs::insert_message(conn, &message)?;
    convs::touch_conversation(conn, &conversation, now, false)?;
    let kind = EventKind::MessageQueued;
    events::message(conn, &message, Some(number.id), kind, MessageStatus::Queued)?;
    let dedup = format!("send:{}", message.id);
    let order = format!("send:{}", conversation.id);
    let payload = message.id.to_string();
    jobs::insert_new(
        conn,
        &[NewJobRow {
            dedup_key: &dedup,
            kind: JobKind::Send,
            waba_id: Some(account.waba_id.0.as_str()),
            meta_phone_number_id: Some(number.meta_phone_number_id.0.as_str()),
            order_key: Some(&order),
            payload: &payload,
            state: JobState::Queued,
            run_after: now,
            received_at: now,
        }],
    )?;
    Ok(message)
}

/// What a send job needs, read in one go.
struct Loaded {
    message: MessageRow,
    customer: CustomerRow,
    conversation: ConversationRow,
    number: crate::db::models::PhoneNumberRow,
    account: Option<crate::db::models::AccountRow>,
}

fn load(conn: &mut DbConnection, id: MessageId) -> Result<Option<Loaded>, ServiceError> {
    let Some(message) = convs::message_by_id(conn, id)? else {
        return Ok(None);
    };
    let ws = message.workspace_id.clone();
    let Some(conversation) = convs::get_conversation(conn, &ws, message.conversation_id)? else {
        return Ok(None);
    };
    let Some(customer) = convs::customer_by_id(conn, conversation.customer_id)? else {
        return Ok(None);
    };
    let Some(number) = db::phone_numbers::get(conn, &ws, conversation.number_id)? else {
        return Ok(None);
    };
    let account = db::accounts::get(conn, &ws, number.whatsapp_account_id)?;
    Ok(Some(Loaded {
        message,
        customer,
        conversation,
        number,
        account,
    }))
}

/// Fails the message with `why` (and Meta's code); the job is done.
async fn fail(
    state: &AppState,
    row: &MessageRow,
    code: Option<i64>,
    why: String,
) -> Result<Outcome, ServiceError> {
    let (stored, row) = (why.clone(), row.clone());
    state
        .db
        .run(move |conn| write_tx(conn, |conn| failed(conn, &row, code, &stored, db::now())))
        .await?;
    Ok(Outcome::Done(Some(why)))
}

/// Marks the message failed, with its event.
fn failed(
    conn: &mut DbConnection,
    row: &MessageRow,
    code: Option<i64>,
    why: &str,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let status = MessageStatus::Failed;
    convs::set_status(conn, row.id, status, Some((code, why)), now)?;
    events::message(conn, row, None, EventKind::MessageStatusChanged, status)
}

/// The pacing keys of a number and of the pair (number, customer): Meta's two limits on sending.
pub(super) fn pace_keys(number: PhoneNumberId, customer: CustomerId) -> (String, String) {
    (
        format!("number:{number}"),
        format!("pair:{number}:{customer}"),
    )
}

fn micros(at: NaiveDateTime) -> i64 {
    at.and_utc().timestamp_micros()
}

fn from_micros(us: i64) -> NaiveDateTime {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|t| t.naive_utc())
        .unwrap_or_else(db::now)
}

/// Why a slot was not taken.
enum SlotError {
    /// Another instance changed a key meanwhile: the transaction is rolled back, look again.
    Contended,
    Failed(ServiceError),
}

impl From<diesel::result::Error> for SlotError {
    fn from(e: diesel::result::Error) -> Self {
        SlotError::Failed(e.into())
    }
}

impl From<crate::db::DbError> for SlotError {
    fn from(e: crate::db::DbError) -> Self {
        SlotError::Failed(e.into())
    }
}

/// What asking for a slot found.
pub(super) enum SlotTry {
    Taken,
    WaitUntil(NaiveDateTime),
    /// Another instance changed a key meanwhile: the transaction must be rolled back.
    Contended,
}

/// Asks for a slot within the number's and the pair's limits ([`pace_keys`]), in the caller's
/// transaction.
pub(super) fn try_slot(
    conn: &mut DbConnection,
    keys: &(String, String),
    number_pace: Pace,
    now: NaiveDateTime,
) -> Result<SlotTry, ServiceError> {
    let paces = [(keys.0.as_str(), number_pace), (keys.1.as_str(), PAIR_PACE)];
    Ok(match pacing::reserve(conn, &paces, micros(now))? {
        Reservation::Granted => SlotTry::Taken,
        Reservation::WaitUntil(at) => SlotTry::WaitUntil(from_micros(at)),
        Reservation::Contended => SlotTry::Contended,
    })
}

/// Takes a slot within the number's and the pair's limits ([`pace_keys`]) and marks `message`
/// `sending` in the same transaction (when given); or says when to come back.
pub(super) async fn take_slot(
    state: &AppState,
    message: Option<MessageId>,
    keys: (String, String),
    number_pace: Pace,
) -> Result<Option<NaiveDateTime>, ServiceError> {
    for _ in 0..PACING_RACES {
        let keys = keys.clone();
        let result = state
            .db
            .run(move |conn| {
                write_tx(conn, |conn| {
                    let now = db::now();
                    match try_slot(conn, &keys, number_pace, now).map_err(SlotError::Failed)? {
                        SlotTry::Taken => {
                            if let Some(message) = message {
                                let sending = MessageStatus::Sending;
                                convs::set_status(conn, message, sending, None, now)?;
                            }
                            Ok(None)
                        }
                        SlotTry::WaitUntil(at) => Ok(Some(at)),
                        SlotTry::Contended => Err(SlotError::Contended),
                    }
                })
            })
            .await;
        match result {
            Ok(wait) => return Ok(wait),
            Err(SlotError::Contended) => continue,
            Err(SlotError::Failed(err)) => return Err(err),
        }
    }
    // Still contended: come back in a moment.
    Ok(Some(db::now() + TimeDelta::milliseconds(50)))
}

/// Runs one send job.
pub(super) async fn handle(
    state: &AppState,
    job: &JobRow,
    owner: LeaseOwner,
) -> Result<Outcome, ServiceError> {
    let Ok(id) = job.payload.parse::<MessageId>() else {
        return Ok(Outcome::Dead(format!("not a message id: {}", job.payload)));
    };
    let Some(found) = state.db.run(move |conn| load(conn, id)).await? else {
        return Ok(Outcome::Done(Some("the message is gone".into())));
    };
    let message = &found.message;
    match message.status {
        MessageStatus::Queued => {}
        MessageStatus::Sending if message.wamid.is_none() => {
            // A worker stopped between taking the slot and hearing Meta's answer.
            return fail(
                state,
                &found.message,
                None,
                "the service stopped while sending; Meta may have sent it, so it is not sent again"
                    .into(),
            )
            .await;
        }
        _ => return Ok(Outcome::Done(None)),
    }
    let facts = super::phone_numbers::facts(&found.number);
    if let Err(rule) = facts.ensure_usable_for_agents() {
        return fail(state, &found.message, None, rule.to_string()).await;
    }
    let Some(content) = Content::from_stored(
        &message.kind,
        message.body.as_deref(),
        message.template.as_deref(),
    ) else {
        return fail(
            state,
            &found.message,
            None,
            "the stored message cannot be read".into(),
        )
        .await;
    };
    if !content.allowed_outside_window()
        && !outbound::window_open(found.conversation.last_inbound_at, db::now())
    {
        return fail(
            state,
            &found.message,
            None,
            "the customer's 24-hour window closed before the message's turn came; send a template"
                .into(),
        )
        .await;
    }
    let token = found
        .account
        .as_ref()
        .and_then(|a| a.access_token_enc.as_ref())
        .and_then(|sealed| state.secrets.decrypt(sealed).ok());
    let Some(token) = token else {
        return fail(
            state,
            &found.message,
            None,
            format!(
                "the number's WhatsApp account has no usable token. {}",
                crate::domain::RECONNECT_ADVICE
            ),
        )
        .await;
    };
    // The phone number when known (it wins over `recipient` at Meta), else the BSUID.
    let recipient = match (&found.customer.phone, &found.customer.user_id) {
        (Some(phone), _) => Recipient::Phone(phone.clone()),
        (None, Some(user_id)) => Recipient::Bsuid(user_id.clone()),
        (None, None) => {
            return fail(
                state,
                &found.message,
                None,
                "the customer has no address".into(),
            )
            .await
        }
    };
    let keys = pace_keys(found.number.id, found.customer.id);
    if !still_ours(state, job, owner).await? {
        return Ok(Outcome::LostLease);
    }
    if let Some(at) = take_slot(state, Some(id), keys.clone(), facts.send_pace()).await? {
        return Ok(Outcome::Later(at));
    }
    if !still_ours(state, job, owner).await? {
        // Another worker has the job; it finds the message `sending` and does not send it.
        return Ok(Outcome::LostLease);
    }
    let body = content.meta_body(&recipient);
    let meta_id = found.number.meta_phone_number_id.clone();
    let sent = state.meta.send_message(&token, &meta_id, &body).await;
    let err = match sent {
        Ok(sent) => {
            let (row, number) = (found.message.clone(), found.number.id);
            super::conversations::record_sent(&state.db, row, number, sent.message_id, None)
                .await?;
            return Ok(Outcome::Done(None));
        }
        Err(err) => err,
    };
    let code = match &err {
        MetaError::Api(e) => Some(e.code),
        _ => None,
    };
    if err.surely_not_done() && err.retryable() {
        // Meta did not take it: back to the queue, and the limit Meta hit is respected.
        let attempts = job.attempts;
        let wait = refusal_wait(&err, attempts);
        let number_pace = facts.send_pace();
        state
            .db
            .run(move |conn| {
                write_tx(conn, |conn| {
                    let now = db::now();
                    note_refusal(conn, &keys, number_pace, code, wait, now)?;
                    convs::set_status(conn, id, MessageStatus::Queued, None, now)?;
                    Ok::<_, ServiceError>(())
                })
            })
            .await?;
        let why = format!("Meta did not take the message (attempt {attempts}): {err}");
        return Ok(match wait {
            Some(wait) => Outcome::RetryAfter(wait, why),
            None => Outcome::Retry(why),
        });
    }
    let why = if err.surely_not_done() {
        err.to_string()
    } else {
        format!("{err}; Meta may have sent it, so it is not sent again")
    };
    fail(state, &found.message, code, why).await
}

/// How long to leave a send Meta did not take (`err` is retryable and surely not done), on its
/// `attempts`-th try: what Meta asked for; else for its pair limit the 4^X seconds it describes,
/// for its throughput limit a second; else `None` (the queue's own backoff).
pub(super) fn refusal_wait(err: &MetaError, attempts: i64) -> Option<TimeDelta> {
    let asked = err
        .retry_after_seconds()
        .map(|s| TimeDelta::seconds(i64::try_from(s).unwrap_or(600)));
    match err {
        MetaError::Api(e) if e.code == codes::PAIR_RATE_LIMIT => {
            Some(asked.unwrap_or(outbound::pair_limit_backoff(attempts - 1)))
        }
        MetaError::Api(e) if e.code == codes::THROUGHPUT_REACHED => {
            Some(asked.unwrap_or(TimeDelta::seconds(1)))
        }
        _ => asked,
    }
}

/// Marks the limit Meta said was hit (Meta's `code`) spent for `wait`, so that every instance's
/// next sends on that number, or to that customer, wait too.
pub(super) fn note_refusal(
    conn: &mut DbConnection,
    keys: &(String, String),
    number_pace: Pace,
    code: Option<i64>,
    wait: Option<TimeDelta>,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    let Some(wait) = wait else { return Ok(()) };
    let until = micros(now + wait);
    match code {
        Some(codes::PAIR_RATE_LIMIT) => pacing::exhaust_until(conn, &keys.1, PAIR_PACE, until)?,
        Some(codes::THROUGHPUT_REACHED) => {
            pacing::exhaust_until(conn, &keys.0, number_pace, until)?
        }
        _ => {}
    }
    Ok(())
}

/// A send job that is given up leaves its message failed, with the reason.
pub(super) fn give_up(
    conn: &mut DbConnection,
    payload: &str,
    error: &str,
    now: NaiveDateTime,
) -> Result<(), ServiceError> {
    if let Ok(id) = payload.parse::<MessageId>() {
        if let Some(row) = convs::message_by_id(conn, id)? {
            if row.status == MessageStatus::Queued {
                failed(conn, &row, None, error, now)?;
            }
        }
    }
    Ok(())
}
