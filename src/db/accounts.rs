//! Connected WhatsApp Business Accounts (WABAs).

use diesel::prelude::*;

use super::models::AccountRow;
use super::schema::whatsapp_accounts;
use super::DbConnection;

pub fn insert(conn: &mut DbConnection, row: &AccountRow) -> QueryResult<usize> {
    diesel::insert_into(whatsapp_accounts::table)
        .values(row)
        .execute(conn)
}

pub fn get(conn: &mut DbConnection, workspace: &str, id: &str) -> QueryResult<Option<AccountRow>> {
    whatsapp_accounts::table
        .filter(whatsapp_accounts::workspace_id.eq(workspace))
        .filter(whatsapp_accounts::id.eq(id))
        .select(AccountRow::as_select())
        .first(conn)
        .optional()
}
