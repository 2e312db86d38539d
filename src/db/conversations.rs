//! Customers, conversations and messages. Lookups on behalf of a caller filter by the caller's
//! workspace; the webhook pipeline finds rows by Meta's ids and acts within the number's workspace.

use chrono::NaiveDateTime;
use diesel::prelude::*;

use super::schema::{conversations, customers, messages, phone_numbers};
use super::DbConnection;
use crate::domain::{
    AgentId, ConversationId, CustomerId, MessageDirection, MessageId, MessageStatus, PhoneNumberId,
    WorkspaceId,
};

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = customers, treat_none_as_default_value = false)]
pub struct CustomerRow {
    pub id: CustomerId,
    pub workspace_id: WorkspaceId,
    /// Meta's business-scoped user id (BSUID).
    pub user_id: Option<String>,
    pub phone: Option<String>,
    pub profile_name: Option<String>,
    pub username: Option<String>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = conversations, treat_none_as_default_value = false)]
pub struct ConversationRow {
    pub id: ConversationId,
    pub workspace_id: WorkspaceId,
    pub number_id: PhoneNumberId,
    pub customer_id: CustomerId,
    pub last_inbound_at: Option<NaiveDateTime>,
    pub last_message_at: NaiveDateTime,
    pub created_at: NaiveDateTime,
}

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = messages, treat_none_as_default_value = false)]
pub struct MessageRow {
    pub id: MessageId,
    pub workspace_id: WorkspaceId,
    pub conversation_id: ConversationId,
    pub direction: MessageDirection,
    pub wamid: Option<String>,
    pub kind: String,
    pub body: Option<String>,
    pub reply_to_id: Option<MessageId>,
    pub part: i64,
    pub agent_id: Option<AgentId>,
    pub status: MessageStatus,
    pub error_code: Option<i64>,
    pub error_message: Option<String>,
    pub meta_timestamp: Option<NaiveDateTime>,
    pub created_at: NaiveDateTime,
    pub updated_at: NaiveDateTime,
    /// For a template message: its name, language and components (JSON).
    pub template: Option<String>,
}

/// The workspace's customer with this BSUID, else with this phone number (the most recent).
pub fn find_customer(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    user_id: Option<&str>,
    phone: Option<&str>,
) -> QueryResult<Option<CustomerRow>> {
    if let Some(user_id) = user_id {
        let found = customers::table
            .filter(customers::workspace_id.eq(workspace))
            .filter(customers::user_id.eq(user_id))
            .select(CustomerRow::as_select())
            .first(conn)
            .optional()?;
        if found.is_some() {
            return Ok(found);
        }
    }
    let Some(phone) = phone else {
        return Ok(None);
    };
    let mut query = customers::table
        .filter(customers::workspace_id.eq(workspace))
        .filter(customers::phone.eq(phone))
        .into_boxed();
    // A customer known by another BSUID is someone else (a number passed on); one known by phone
    // alone is the same person, now with a BSUID.
    if user_id.is_some() {
        query = query.filter(customers::user_id.is_null());
    }
    query
        .order(customers::updated_at.desc())
        .select(CustomerRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert_customer(conn: &mut DbConnection, row: &CustomerRow) -> QueryResult<usize> {
    diesel::insert_into(customers::table)
        .values(row)
        .execute(conn)
}

/// Writes the customer's identity and profile as now known.
pub fn update_customer(conn: &mut DbConnection, row: &CustomerRow) -> QueryResult<usize> {
    diesel::update(customers::table.filter(customers::id.eq(row.id)))
        .set((
            customers::user_id.eq(&row.user_id),
            customers::phone.eq(&row.phone),
            customers::profile_name.eq(&row.profile_name),
            customers::username.eq(&row.username),
            customers::updated_at.eq(row.updated_at),
        ))
        .execute(conn)
}

pub fn conversation_of(
    conn: &mut DbConnection,
    number: PhoneNumberId,
    customer: CustomerId,
) -> QueryResult<Option<ConversationRow>> {
    conversations::table
        .filter(conversations::number_id.eq(number))
        .filter(conversations::customer_id.eq(customer))
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()
}

/// Starts the conversation of `customer` on `number`.
pub fn new_conversation(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    number: PhoneNumberId,
    customer: CustomerId,
    now: NaiveDateTime,
) -> QueryResult<ConversationRow> {
    let row = ConversationRow {
        id: ConversationId::random(),
        workspace_id: workspace.clone(),
        number_id: number,
        customer_id: customer,
        last_inbound_at: None,
        last_message_at: now,
        created_at: now,
    };
    insert_conversation(conn, &row)?;
    Ok(row)
}

pub fn insert_conversation(conn: &mut DbConnection, row: &ConversationRow) -> QueryResult<usize> {
    diesel::insert_into(conversations::table)
        .values(row)
        .execute(conn)
}

/// Records a message in the conversation: its time, and for a customer's message the start of
/// the 24-hour window (never moved back by a late redelivery).
pub fn touch_conversation(
    conn: &mut DbConnection,
    conversation: &ConversationRow,
    at: NaiveDateTime,
    inbound: bool,
) -> QueryResult<usize> {
    let last_message_at = conversation.last_message_at.max(at);
    let last_inbound_at = if inbound {
        Some(conversation.last_inbound_at.map_or(at, |t| t.max(at)))
    } else {
        conversation.last_inbound_at
    };
    diesel::update(conversations::table.filter(conversations::id.eq(conversation.id)))
        .set((
            conversations::last_message_at.eq(last_message_at),
            conversations::last_inbound_at.eq(last_inbound_at),
        ))
        .execute(conn)
}

/// Moves every conversation of `from` to `to` (a customer's new identity), merging into `to`'s
/// conversation on the same number where there is one.
pub fn move_conversations(
    conn: &mut DbConnection,
    from: CustomerId,
    to: CustomerId,
) -> QueryResult<()> {
    let theirs: Vec<ConversationRow> = conversations::table
        .filter(conversations::customer_id.eq(from))
        .select(ConversationRow::as_select())
        .load(conn)?;
    for old in theirs {
        match conversation_of(conn, old.number_id, to)? {
            Some(existing) => {
                diesel::update(messages::table.filter(messages::conversation_id.eq(old.id)))
                    .set(messages::conversation_id.eq(existing.id))
                    .execute(conn)?;
                let inbound = old.last_inbound_at.max(existing.last_inbound_at);
                diesel::update(conversations::table.filter(conversations::id.eq(existing.id)))
                    .set((
                        conversations::last_inbound_at.eq(inbound),
                        conversations::last_message_at
                            .eq(old.last_message_at.max(existing.last_message_at)),
                    ))
                    .execute(conn)?;
                diesel::delete(conversations::table.filter(conversations::id.eq(old.id)))
                    .execute(conn)?;
            }
            None => {
                diesel::update(conversations::table.filter(conversations::id.eq(old.id)))
                    .set(conversations::customer_id.eq(to))
                    .execute(conn)?;
            }
        }
    }
    Ok(())
}

pub fn message_by_wamid(conn: &mut DbConnection, wamid: &str) -> QueryResult<Option<MessageRow>> {
    messages::table
        .filter(messages::wamid.eq(wamid))
        .select(MessageRow::as_select())
        .first(conn)
        .optional()
}

pub fn insert_message(conn: &mut DbConnection, row: &MessageRow) -> QueryResult<usize> {
    diesel::insert_into(messages::table)
        .values(row)
        .execute(conn)
}

/// Part `part` of the answer to `inbound`, if it was started.
pub fn answer_part(
    conn: &mut DbConnection,
    inbound: MessageId,
    part: i64,
) -> QueryResult<Option<MessageRow>> {
    messages::table
        .filter(messages::reply_to_id.eq(inbound))
        .filter(messages::part.eq(part))
        .select(MessageRow::as_select())
        .first(conn)
        .optional()
}

/// A message's new status, its error (cleared when `None`), and when it happened (kept when
/// `None`).
#[derive(AsChangeset)]
#[diesel(table_name = messages)]
struct StatusChange<'a> {
    status: MessageStatus,
    error_code: Option<Option<i64>>,
    error_message: Option<Option<&'a str>>,
    meta_timestamp: Option<NaiveDateTime>,
    updated_at: NaiveDateTime,
}

/// Sets a message's status and error.
pub fn set_status(
    conn: &mut DbConnection,
    id: MessageId,
    status: MessageStatus,
    error: Option<(Option<i64>, &str)>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    set_delivery(conn, id, status, error, None, now)
}

/// Records that Meta accepted an outbound message (its `wamid`), unless a status already moved it on.
pub fn set_sent(
    conn: &mut DbConnection,
    id: MessageId,
    wamid: &str,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(
        messages::table
            .filter(messages::id.eq(id))
            .filter(messages::status.eq(MessageStatus::Sending)),
    )
    .set((
        messages::wamid.eq(wamid),
        messages::status.eq(MessageStatus::Sent),
        messages::updated_at.eq(now),
    ))
    .execute(conn)
}

/// Applies one of Meta's statuses to an outbound message, at `at` when Meta says when.
pub fn set_delivery(
    conn: &mut DbConnection,
    id: MessageId,
    status: MessageStatus,
    error: Option<(Option<i64>, &str)>,
    at: Option<NaiveDateTime>,
    now: NaiveDateTime,
) -> QueryResult<usize> {
    diesel::update(messages::table.filter(messages::id.eq(id)))
        .set(StatusChange {
            status,
            error_code: Some(error.and_then(|(code, _)| code)),
            error_message: Some(error.map(|(_, message)| message)),
            meta_timestamp: at,
            updated_at: now,
        })
        .execute(conn)
}

/// Removes an outbound message Meta definitely refused before the send is tried again.
pub fn delete_unsent(conn: &mut DbConnection, id: MessageId) -> QueryResult<usize> {
    diesel::delete(
        messages::table
            .filter(messages::id.eq(id))
            .filter(messages::status.eq(MessageStatus::Sending))
            .filter(messages::wamid.is_null()),
    )
    .execute(conn)
}

/// The conversation's last `n` messages with a text, oldest first (an agent's history).
pub fn recent_texts(
    conn: &mut DbConnection,
    conversation: ConversationId,
    before: NaiveDateTime,
    n: i64,
) -> QueryResult<Vec<MessageRow>> {
    let mut rows: Vec<MessageRow> = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .filter(messages::body.is_not_null())
        .filter(messages::created_at.lt(before))
        .order((messages::created_at.desc(), messages::id.desc()))
        .limit(n)
        .select(MessageRow::as_select())
        .load(conn)?;
    rows.reverse();
    Ok(rows)
}

/// A conversation with its customer and number, as the API lists it.
pub type ConversationView = (ConversationRow, CustomerRow, String);

/// The workspace's conversations, most recently active first, optionally of one number.
pub fn list_conversations(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    number: Option<PhoneNumberId>,
    after: Option<(NaiveDateTime, ConversationId)>,
    limit: i64,
) -> QueryResult<Vec<ConversationView>> {
    let mut query = conversations::table
        .inner_join(customers::table.on(customers::id.eq(conversations::customer_id)))
        .inner_join(phone_numbers::table.on(phone_numbers::id.eq(conversations::number_id)))
        .filter(conversations::workspace_id.eq(workspace))
        .select((
            ConversationRow::as_select(),
            CustomerRow::as_select(),
            phone_numbers::display_phone_number,
        ))
        .into_boxed();
    if let Some(number) = number {
        query = query.filter(conversations::number_id.eq(number));
    }
    if let Some((at, id)) = after {
        query = query.filter(
            conversations::last_message_at
                .lt(at)
                .or(conversations::last_message_at
                    .eq(at)
                    .and(conversations::id.lt(id))),
        );
    }
    query
        .order((
            conversations::last_message_at.desc(),
            conversations::id.desc(),
        ))
        .limit(limit)
        .load(conn)
}

/// One conversation of the workspace.
pub fn get_conversation(
    conn: &mut DbConnection,
    workspace: &WorkspaceId,
    id: ConversationId,
) -> QueryResult<Option<ConversationRow>> {
    conversations::table
        .filter(conversations::workspace_id.eq(workspace))
        .filter(conversations::id.eq(id))
        .select(ConversationRow::as_select())
        .first(conn)
        .optional()
}

/// A conversation's messages, oldest first.
pub fn list_messages(
    conn: &mut DbConnection,
    conversation: ConversationId,
    after: Option<(NaiveDateTime, MessageId)>,
    limit: i64,
) -> QueryResult<Vec<MessageRow>> {
    let mut query = messages::table
        .filter(messages::conversation_id.eq(conversation))
        .into_boxed();
    if let Some((at, id)) = after {
        query = query.filter(
            messages::created_at
                .gt(at)
                .or(messages::created_at.eq(at).and(messages::id.gt(id))),
        );
    }
    query
        .order((messages::created_at.asc(), messages::id.asc()))
        .limit(limit)
        .select(MessageRow::as_select())
        .load(conn)
}

pub fn message_by_id(conn: &mut DbConnection, id: MessageId) -> QueryResult<Option<MessageRow>> {
    messages::table
        .filter(messages::id.eq(id))
        .select(MessageRow::as_select())
        .first(conn)
        .optional()
}

pub fn customer_by_id(conn: &mut DbConnection, id: CustomerId) -> QueryResult<Option<CustomerRow>> {
    customers::table
        .filter(customers::id.eq(id))
        .select(CustomerRow::as_select())
        .first(conn)
        .optional()
}
