//! Workspaces are created the first time a valid token names one.

use diesel::prelude::*;

use super::models::WorkspaceRow;
use super::schema::workspaces;
use super::{is_unique_violation, DbConnection};
use crate::domain::WorkspaceId;

/// Creates the workspace unless it exists. Safe to race: a duplicate insert is ignored.
pub fn ensure(conn: &mut DbConnection, id: &WorkspaceId) -> QueryResult<()> {
    let exists = workspaces::table
        .filter(workspaces::id.eq(id))
        .count()
        .get_result::<i64>(conn)?
        > 0;
    if exists {
        return Ok(());
    }
    let row = WorkspaceRow {
        id: id.clone(),
        created_at: super::now(),
    };
    match diesel::insert_into(workspaces::table)
        .values(&row)
        .execute(conn)
    {
        Ok(_) => Ok(()),
        Err(err) if is_unique_violation(&err) => Ok(()),
        Err(err) => Err(err),
    }
}
