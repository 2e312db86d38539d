//! What customers wrote and what agents answered, as the workspace reads it.

use super::ServiceError;
use crate::db::conversations::{self as convs, ConversationView, MessageRow};
use crate::db::webhook_jobs::{self, JobRow};
use crate::db::Db;
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::{ConversationId, JobState, PhoneNumberId, WorkspaceId};

/// A page of the workspace's conversations, most recently active first.
pub async fn list(
    db: &Db,
    workspace: &WorkspaceId,
    number: Option<PhoneNumberId>,
    page: PageRequest,
) -> Result<(Vec<ConversationView>, Option<String>), ServiceError> {
    let workspace = workspace.clone();
    let after = page.time_after::<ConversationId>()?;
    db.run(move |conn| {
        let rows = convs::list_conversations(conn, &workspace, number, after, page.fetch_limit())?;
        Ok(page.finish(rows, |(c, _, _)| Cursor::time(c.last_message_at, c.id)))
    })
    .await
}

/// A page of one conversation's messages, oldest first; 404 for another workspace's.
pub async fn messages(
    db: &Db,
    workspace: &WorkspaceId,
    id: ConversationId,
    page: PageRequest,
) -> Result<(Vec<MessageRow>, Option<String>), ServiceError> {
    let workspace = workspace.clone();
    let after = page.time_after()?;
    db.run(move |conn| {
        convs::get_conversation(conn, &workspace, id)?.ok_or(ServiceError::ConversationNotFound)?;
        let rows = convs::list_messages(conn, id, after, page.fetch_limit())?;
        Ok(page.finish(rows, |m| Cursor::time(m.created_at, m.id)))
    })
    .await
}

/// A page of the webhook jobs in `state` that concern the workspace (its numbers, or its WABAs
/// for account-level changes), newest first: where a dead job's error is read.
pub async fn jobs(
    db: &Db,
    workspace: &WorkspaceId,
    state: JobState,
    page: PageRequest,
) -> Result<(Vec<JobRow>, Option<String>), ServiceError> {
    let workspace = workspace.clone();
    let before = page
        .time_after::<uuid::Uuid>()?
        .map(|(_, id)| i64::try_from(id.as_u128()).unwrap_or(i64::MAX));
    db.run(move |conn| {
        let meta_ids: Vec<String> = crate::db::phone_numbers::meta_ids(conn, &workspace)?
            .into_iter()
            .map(|id| id.0)
            .collect();
        let waba_ids: Vec<String> = crate::db::accounts::list(conn, &workspace)?
            .into_iter()
            .map(|a| a.waba_id.0)
            .collect();
        let rows = webhook_jobs::list_for(
            conn,
            &meta_ids,
            &waba_ids,
            state,
            before,
            page.fetch_limit(),
        )?;
        Ok(page.finish(rows, |j| {
            Cursor::time(
                j.received_at,
                uuid::Uuid::from_u128(u128::try_from(j.id).unwrap_or(0)),
            )
        }))
    })
    .await
}

/// Records that Meta accepted the message (its `wamid`), with its `message.sent` event.
pub(super) async fn record_sent(
    db: &Db,
    row: MessageRow,
    number: crate::domain::PhoneNumberId,
    wamid: String,
    answers: Option<crate::domain::MessageId>,
) -> Result<(), ServiceError> {
    db.run(move |conn| {
        crate::db::write_tx(conn, |conn| {
            let now = crate::db::now();
            convs::set_sent(conn, row.id, &wamid, now)?;
            if let Some(inbound) = answers {
                let answered = crate::domain::MessageStatus::Answered;
                convs::set_status(conn, inbound, answered, None, now)?;
            }
            let (kind, status) = (
                crate::domain::EventKind::MessageSent,
                crate::domain::MessageStatus::Sent,
            );
            super::events::message(conn, &row, Some(number), kind, status)
        })
    })
    .await
}
