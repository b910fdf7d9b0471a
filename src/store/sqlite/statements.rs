//! How the store's statements run through rusqlite, on whichever SQLite connection: values
//! bound as sqlx binds them, rows decoded through [`Record`], errors classified as sqlx's.

use rusqlite::{Connection, Statement};
use sqlx::Sqlite;

use crate::store::backend::{Query, Record, Value};

/// Runs a statement to its end; returns how many rows it changed.
pub fn execute(conn: &Connection, query: &Query<Sqlite>) -> rusqlite::Result<u64> {
    with_statement(conn, query, |statement| {
        {
            let mut rows = statement.raw_query();
            while rows.next()?.is_some() {}
        }
        // What SQLite counts is the last change of any statement: a read changed nothing.
        Ok(if statement.readonly() {
            0
        } else {
            conn.changes()
        })
    })
}

pub fn fetch_optional<R: Record>(
    conn: &Connection,
    query: &Query<Sqlite>,
) -> rusqlite::Result<Option<R>> {
    with_statement(conn, query, |statement| {
        statement.raw_query().next()?.map(R::decode).transpose()
    })
}

pub fn fetch_all<R: Record>(conn: &Connection, query: &Query<Sqlite>) -> rusqlite::Result<Vec<R>> {
    with_statement(conn, query, |statement| {
        let mut rows = statement.raw_query();
        let mut all = Vec::new();
        while let Some(row) = rows.next()? {
            all.push(R::decode(row)?);
        }
        Ok(all)
    })
}

/// Prepares `query` (kept prepared unless its text was built for this call), binds its values
/// and hands it to `run`.
fn with_statement<T>(
    conn: &Connection,
    query: &Query<Sqlite>,
    run: impl FnOnce(&mut Statement<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<T> {
    let (sql, built, values) = query.parts();
    if built {
        let mut statement = conn.prepare(sql)?;
        bind(&mut statement, values)?;
        run(&mut statement)
    } else {
        let mut statement = conn.prepare_cached(sql)?;
        bind(&mut statement, values)?;
        run(&mut statement)
    }
}

/// Binds `values` as sqlx binds them on SQLite: `$n` is the `n`th value wherever it stands,
/// and anonymous `?` take the values in order (statements use one kind or the other). Every
/// parameter needs its value: a missing one is an error, not a null.
fn bind(statement: &mut Statement<'_>, values: &[Value]) -> rusqlite::Result<()> {
    let mut anonymous = 0;
    for i in 1..=statement.parameter_count() {
        let n = match statement.parameter_name(i) {
            Some(name) => name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .ok_or_else(|| rusqlite::Error::InvalidParameterName(name.to_owned()))?,
            None => {
                anonymous += 1;
                anonymous
            }
        };
        let value = values
            .get(n.wrapping_sub(1))
            .ok_or(rusqlite::Error::InvalidParameterCount(n, values.len()))?;
        statement.raw_bind_parameter(i, value)?;
    }
    Ok(())
}

impl rusqlite::ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, Value as Owned, ValueRef};
        Ok(match self {
            Self::Bool(v) => v.map_or(ToSqlOutput::Owned(Owned::Null), |b| {
                ToSqlOutput::Owned(Owned::Integer(i64::from(b)))
            }),
            Self::I32(v) => v.map_or(ToSqlOutput::Owned(Owned::Null), |n| {
                ToSqlOutput::Owned(Owned::Integer(i64::from(n)))
            }),
            Self::I64(v) => v.map_or(ToSqlOutput::Owned(Owned::Null), |n| {
                ToSqlOutput::Owned(Owned::Integer(n))
            }),
            Self::F64(v) => v.map_or(ToSqlOutput::Owned(Owned::Null), |x| {
                ToSqlOutput::Owned(Owned::Real(x))
            }),
            Self::Text(v) => v.as_deref().map_or(ToSqlOutput::Owned(Owned::Null), |t| {
                ToSqlOutput::Borrowed(ValueRef::Text(t.as_bytes()))
            }),
            Self::Bytes(v) => v.as_deref().map_or(ToSqlOutput::Owned(Owned::Null), |b| {
                ToSqlOutput::Borrowed(ValueRef::Blob(b))
            }),
        })
    }
}

pub fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// rusqlite's errors as sqlx's, so that both drivers' are classified alike (`store/error.rs`):
/// SQLite's own codes as a database error, a column that does not decode as a decoding error.
pub fn to_sqlx(e: rusqlite::Error) -> sqlx::Error {
    match e {
        rusqlite::Error::SqliteFailure(failure, message) => {
            sqlx::Error::Database(Box::new(InlineError {
                code: failure.extended_code,
                message: message.unwrap_or_else(|| failure.to_string()),
            }))
        }
        e @ (rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::InvalidColumnIndex(_)
        | rusqlite::Error::InvalidColumnName(_)) => sqlx::Error::Decode(Box::new(e)),
        e => sqlx::Error::AnyDriverError(Box::new(e)),
    }
}

/// An error SQLite reported through rusqlite: its extended result code and message.
#[derive(Debug, thiserror::Error)]
#[error("{message} (SQLite code {code})")]
pub struct InlineError {
    code: i32,
    message: String,
}

impl sqlx::error::DatabaseError for InlineError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<std::borrow::Cow<'_, str>> {
        Some(self.code.to_string().into())
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use rusqlite::ffi;
        match self.code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
                sqlx::error::ErrorKind::UniqueViolation
            }
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => sqlx::error::ErrorKind::ForeignKeyViolation,
            ffi::SQLITE_CONSTRAINT_NOTNULL => sqlx::error::ErrorKind::NotNullViolation,
            ffi::SQLITE_CONSTRAINT_CHECK => sqlx::error::ErrorKind::CheckViolation,
            _ => sqlx::error::ErrorKind::Other,
        }
    }
}
