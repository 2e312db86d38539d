//! Reading the audit trail.

use crate::db::audit::{self, AuditFilter};
use crate::db::models::AuditEventRow;
use crate::db::Db;
use crate::domain::page::{Cursor, PageRequest};
use crate::domain::RuleError;
use crate::error::ApiError;

/// Newest first.
pub async fn list(
    db: &Db,
    workspace: &str,
    filter: AuditFilter,
    page: PageRequest,
) -> Result<(Vec<AuditEventRow>, Option<String>), ApiError> {
    let after = match &page.after {
        Some(cursor) => {
            let at = chrono::DateTime::parse_from_rfc3339(&cursor.key).map_err(|_| {
                RuleError::Invalid("`cursor` is not a cursor this API returned".into())
            })?;
            Some((at.naive_utc(), cursor.id.clone()))
        }
        None => None,
    };
    let workspace = workspace.to_owned();
    db.run(move |conn| {
        let rows = audit::list(conn, &workspace, &filter, after, &page)?;
        Ok(page.finish(rows, |r| Cursor {
            key: r.created_at.and_utc().to_rfc3339(),
            id: r.id.clone(),
        }))
    })
    .await
}
