//! Reading the audit trail.

use crate::db::audit::{self, AuditFilter};
use crate::db::models::AuditEventRow;
use crate::db::Db;
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::WorkspaceId;
use crate::service::ServiceError;

/// Newest first.
pub async fn list(
    db: &Db,
    workspace: &WorkspaceId,
    filter: AuditFilter,
    page: PageRequest,
) -> Result<(Vec<AuditEventRow>, Option<String>), ServiceError> {
    let after = page.time_after()?;
    let workspace = workspace.clone();
    db.run(move |conn| {
        let rows = audit::list(conn, &workspace, &filter, after, &page)?;
        Ok(page.finish(rows, |r| Cursor::time(r.created_at, r.id)))
    })
    .await
}
