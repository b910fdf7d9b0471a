//! Rows as the store decodes them, from whichever driver read them: sqlx's rows (SQLite and
//! PostgreSQL) and rusqlite's (`sqlite/inline_reads.rs`). Each row type says once how its
//! columns become its fields ([`Record`]), over any row that can hand out its columns
//! ([`Cells`]), so that a statement shared by both databases is decoded alike whichever driver
//! ran it.

use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use sqlx::{Postgres, Sqlite};

/// A column type every driver decodes.
pub trait Cell:
    rusqlite::types::FromSql
    + for<'r> sqlx::Decode<'r, Sqlite>
    + sqlx::Type<Sqlite>
    + for<'r> sqlx::Decode<'r, Postgres>
    + sqlx::Type<Postgres>
{
}

impl<T> Cell for T where
    T: rusqlite::types::FromSql
        + for<'r> sqlx::Decode<'r, Sqlite>
        + sqlx::Type<Sqlite>
        + for<'r> sqlx::Decode<'r, Postgres>
        + sqlx::Type<Postgres>
{
}

/// A row as a driver returns it: its columns by name, or by position where the statement's
/// column list is known (a lookup by name searches the statement's names each time).
pub trait Cells {
    type Error;
    fn named<T: Cell>(&self, name: &str) -> Result<T, Self::Error>;
    fn at<T: Cell>(&self, i: usize) -> Result<T, Self::Error>;
}

impl Cells for rusqlite::Row<'_> {
    type Error = rusqlite::Error;
    fn named<T: Cell>(&self, name: &str) -> rusqlite::Result<T> {
        self.get(name)
    }
    fn at<T: Cell>(&self, i: usize) -> rusqlite::Result<T> {
        self.get(i)
    }
}

/// sqlx's rows, of either database.
macro_rules! sqlx_cells {
    ($($row:ty),*) => {$(
        impl Cells for $row {
            type Error = sqlx::Error;
            fn named<T: Cell>(&self, name: &str) -> sqlx::Result<T> {
                sqlx::Row::try_get(self, name)
            }
            fn at<T: Cell>(&self, i: usize) -> sqlx::Result<T> {
                sqlx::Row::try_get(self, i)
            }
        }
    )*};
}
sqlx_cells!(SqliteRow, PgRow);

/// A row the store reads, whichever driver read it.
pub trait Record: Sized + Send + Unpin + 'static {
    fn decode<C: Cells>(row: &C) -> Result<Self, C::Error>;
}

/// [`Record`] for tuples, their columns by position.
macro_rules! tuple_records {
    ($(($($i:tt $t:ident),+)),* $(,)?) => {$(
        impl<$($t: Cell + Send + Unpin + 'static),+> Record for ($($t,)+) {
            fn decode<Row: Cells>(row: &Row) -> Result<Self, Row::Error> {
                Ok(($(row.at::<$t>($i)?,)+))
            }
        }
    )*};
}
tuple_records!(
    (0 A),
    (0 A, 1 B),
    (0 A, 1 B, 2 C),
    (0 A, 1 B, 2 C, 3 D),
    (0 A, 1 B, 2 C, 3 D, 4 E),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G),
    (0 A, 1 B, 2 C, 3 D, 4 E, 5 F, 6 G, 7 H),
);

/// A row struct whose [`Record`] reads each field from the column of its name.
macro_rules! record {
    (
        $(#[$meta:meta])*
        $vis:vis struct $name:ident {
            $($(#[$field_meta:meta])* $field_vis:vis $field:ident: $ty:ty),* $(,)?
        }
    ) => {
        $(#[$meta])*
        $vis struct $name {
            $($(#[$field_meta])* $field_vis $field: $ty),*
        }

        impl $crate::store::record::Record for $name {
            fn decode<C: $crate::store::record::Cells>(row: &C) -> Result<Self, C::Error> {
                Ok(Self {
                    $($field: row.named(stringify!($field))?),*
                })
            }
        }
    };
}
pub(crate) use record;

#[cfg(test)]
mod tests {
    use super::{Cells as _, Record};

    record! {
        #[derive(Debug, PartialEq)]
        struct Sample {
            name: String,
            count: i64,
            missing: Option<String>,
            flag: bool,
        }
    }

    /// The same statement decodes alike from sqlx's rows and from rusqlite's.
    #[tokio::test]
    async fn rows_decode_alike_from_either_driver() {
        use sqlx::Connection as _;
        const SQL: &str = "SELECT 7 AS count, 'seven' AS name, NULL AS missing, 1 AS flag";
        let expected = Sample {
            name: "seven".into(),
            count: 7,
            missing: None,
            flag: true,
        };
        let mut sqlx_conn = sqlx::SqliteConnection::connect("sqlite::memory:")
            .await
            .unwrap();
        let row = sqlx::query(SQL).fetch_one(&mut sqlx_conn).await.unwrap();
        assert_eq!(Sample::decode(&row).unwrap(), expected);
        assert_eq!(
            <(i64, String)>::decode(&row).unwrap(),
            (7, "seven".to_owned())
        );

        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let decoded = conn
            .query_row(SQL, [], |row| Ok((Sample::decode(row)?, row.at::<i64>(0)?)))
            .unwrap();
        assert_eq!(decoded, (expected, 7));
    }
}
