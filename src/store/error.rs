//! How database errors become [`StoreError`]s: outages and contention the caller may retry are
//! `Unavailable` (503 at the edge), a taken unique value is a `Conflict`, anything else a bug.

use sqlx::error::DatabaseError;
use sqlx::sqlite::SqliteError;

use super::sqlite::InlineError;

use crate::domain::ports::{StoreError, Taken};

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => Self::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict(Taken::Other),
            sqlx::Error::Database(db) if is_transient(db.as_ref()) => {
                Self::Unavailable(e.to_string())
            }
            _ => Self::Other(anyhow::Error::new(e).context("database")),
        }
    }
}

/// Whether a database error names a condition that passes.
fn is_transient(db: &dyn DatabaseError) -> bool {
    let Some(code) = db.code() else {
        return false;
    };
    // SQLite's errors come from sqlx's readers or from the writer's own driver.
    if db.try_downcast_ref::<SqliteError>().is_some()
        || db.try_downcast_ref::<InlineError>().is_some()
    {
        sqlite_transient(&code)
    } else {
        postgres_transient(&code)
    }
}

/// SQLite: BUSY (5), LOCKED (6), READONLY (8), IOERR (10) and FULL (13), with their extended
/// codes (the primary code in the low byte).
fn sqlite_transient(code: &str) -> bool {
    code.parse::<i32>()
        .is_ok_and(|c| matches!(c & 0xff, 5 | 6 | 8 | 10 | 13))
}

/// PostgreSQL: connection exceptions (08), invalid transaction state such as a read-only
/// transaction after a failover (25), insufficient resources (53), operator intervention such as
/// a shutdown or a statement timeout (57), serialization failures and deadlocks.
fn postgres_transient(sqlstate: &str) -> bool {
    sqlstate.len() == 5
        && (["08", "25", "53", "57"]
            .iter()
            .any(|class| sqlstate.starts_with(class))
            || sqlstate == "40001"
            || sqlstate == "40P01")
}

#[cfg(test)]
mod tests {
    use super::{postgres_transient, sqlite_transient};

    #[test]
    fn sqlite_outages_and_contention_are_transient() {
        // BUSY, BUSY_RECOVERY, LOCKED, READONLY, READONLY_DBMOVED, IOERR, IOERR_FSYNC, FULL.
        for code in ["5", "261", "6", "8", "1032", "10", "1034", "13"] {
            assert!(sqlite_transient(code), "{code}");
        }
        // CONSTRAINT, CONSTRAINT_FOREIGNKEY, ERROR, CORRUPT.
        for code in ["19", "787", "1", "11"] {
            assert!(!sqlite_transient(code), "{code}");
        }
    }

    #[test]
    fn postgres_outages_failover_and_contention_are_transient() {
        for code in [
            "08006", "25006", "53300", "57014", "57P01", "40001", "40P01",
        ] {
            assert!(postgres_transient(code), "{code}");
        }
        // unique violation, syntax error, undefined table, not null violation.
        for code in ["23505", "42601", "42P01", "23502"] {
            assert!(!postgres_transient(code), "{code}");
        }
    }
}
