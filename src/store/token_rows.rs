//! The rows every signed-in request reads, by token, decoded by position from whichever
//! driver read them: rusqlite's on SQLite (`sqlite/inline_reads.rs`), sqlx's on PostgreSQL
//! (`postgres/token_reads.rs`).
//!
//! Their columns are read by position rather than by name (a search of the statement's names,
//! once per column and request). Positions follow `session_columns!` and `customer_columns!`,
//! which the test below pins.

use crate::store::record::Cells;
use crate::store::rows::{CustomerRow, SessionCustomerRow, SessionRow};

/// A row read by token, its columns from position `first` on.
pub trait TokenRecord: Sized {
    fn from_columns<C: Cells>(row: &C, first: usize) -> Result<Self, C::Error>;
}

/// Columns of [`SessionRow`].
const SESSION_COLUMNS: usize = 12;

impl TokenRecord for SessionRow {
    fn from_columns<C: Cells>(row: &C, i: usize) -> Result<Self, C::Error> {
        Ok(Self {
            id: row.at(i)?,
            customer_id: row.at(i + 1)?,
            state: row.at(i + 2)?,
            created_at: row.at(i + 3)?,
            expires_at: row.at(i + 4)?,
            absolute_expires_at: row.at(i + 5)?,
            last_seen_at: row.at(i + 6)?,
            login_at: row.at(i + 7)?,
            previous_login_at: row.at(i + 8)?,
            two_factor_verified: row.at(i + 9)?,
            revoked_at: row.at(i + 10)?,
            recent_auth_at: row.at(i + 11)?,
        })
    }
}

impl TokenRecord for CustomerRow {
    fn from_columns<C: Cells>(row: &C, i: usize) -> Result<Self, C::Error> {
        Ok(Self {
            id: row.at(i)?,
            username: row.at(i + 1)?,
            email: row.at(i + 2)?,
            phone: row.at(i + 3)?,
            first_name: row.at(i + 4)?,
            last_name: row.at(i + 5)?,
            kyc_status: row.at(i + 6)?,
            password_hash: row.at(i + 7)?,
            last_login_at: row.at(i + 8)?,
            factor_id: row.at(i + 9)?,
            factor_method: row.at(i + 10)?,
            factor_address: row.at(i + 11)?,
        })
    }
}

impl TokenRecord for SessionCustomerRow {
    fn from_columns<C: Cells>(row: &C, i: usize) -> Result<Self, C::Error> {
        Ok(Self {
            session: SessionRow::from_columns(row, i)?,
            customer: CustomerRow::from_columns(row, i + SESSION_COLUMNS)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::store::rows::{customer_columns, session_columns};

    /// The positions above follow the column lists; this fails if either changes.
    #[test]
    fn positions_follow_the_column_lists() {
        let names = |columns: &str| -> Vec<String> {
            columns
                .split(',')
                .map(|c| c.split_whitespace().last().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(
            names(session_columns!()),
            [
                "session_id",
                "s.customer_id",
                "s.state",
                "s.created_at",
                "s.expires_at",
                "s.absolute_expires_at",
                "s.last_seen_at",
                "s.login_at",
                "s.previous_login_at",
                "s.two_factor_verified",
                "s.revoked_at",
                "s.recent_auth_at"
            ]
        );
        assert_eq!(names(session_columns!()).len(), super::SESSION_COLUMNS);
        assert_eq!(
            names(customer_columns!()),
            [
                "c.id",
                "c.username",
                "c.email",
                "c.phone",
                "c.first_name",
                "c.last_name",
                "c.kyc_status",
                "c.password_hash",
                "c.last_login_at",
                "factor_id",
                "factor_method",
                "factor_address"
            ]
        );
    }
}
