//! What customers wrote and what agents answered, as the workspace reads it.

use super::ServiceError;
use crate::db::conversations::{self as convs, ConversationView, MessageRow};
use crate::db::Db;
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::{ConversationId, PhoneNumberId, WorkspaceId};

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
