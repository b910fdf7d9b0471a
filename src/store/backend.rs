//! The contract between the shared queries (`sql/`) and a database: what differs between SQLite
//! and PostgreSQL is declared once, in [`Backend`], and each backend implements it in its own
//! module (`sqlite/mod.rs`, `postgres/mod.rs`).
//!
//! sqlx cannot state "this value can be bound on this database" for a generic database without
//! repeating the bounds on every function, so the shared queries go through [`Query`], which
//! accepts any [`Param`] and decodes any [`Record`] (`store/record.rs`): values and rows that
//! both databases support, checked by the compiler for each backend.
//!
//! A [`Query`] holds its text and its values ([`Value`]) itself until it runs. Bound into a
//! driver's arguments at once, as sqlx binds them, they could not be read back (sqlx's SQLite
//! arguments are its own), and a shared statement could only ever run through that driver. It
//! runs on whatever implements [`Runs`]: sqlx's connections and transactions, and SQLite's own
//! writer (`sqlite/writer.rs`), whose transactions implement [`WriteTx`] as sqlx's do.
//!
//! # Batch sizes
//!
//! Statements that insert many rows (an import, a flush of refused logins) are kept within one
//! TLS record (16 KiB). sqlx 0.9.0 leaves Nagle's algorithm on (transact-rs/sqlx#4335) and
//! writes each TLS record with its own system call, so a longer statement to PostgreSQL over
//! TLS waits for the server's delayed acknowledgement, about 40 ms a statement: an import ran
//! 15 times slower. The row counts assume typical rows; a batch of unusually long ones is only
//! slower, never wrong.

use std::future::Future;
use std::marker::PhantomData;

use sqlx::{Database, Encode, Transaction, Type};

use super::token_rows::TokenRecord;
use crate::domain::ports::StoreResult;
pub use crate::store::record::Record;
use crate::store::rows::lockout_columns;

/// A value a statement binds, held by the store itself (not by a driver's arguments, which
/// cannot be read back), so that any driver can run the statement. Each kind keeps its own
/// null: PostgreSQL types every parameter, a null included.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Bool(Option<bool>),
    I32(Option<i32>),
    I64(Option<i64>),
    F64(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

/// A value both databases can bind, as the [`Value`] the store holds.
pub trait Param: Send {
    fn into_value(self) -> Value;
}

/// [`Param`] for a type and its `Option`, as `kind` of [`Value`] (converted by `into`).
macro_rules! params {
    ($($t:ty => $kind:ident($into:expr)),* $(,)?) => {$(
        impl Param for $t {
            fn into_value(self) -> Value {
                Value::$kind(Some($into(self)))
            }
        }
        impl Param for Option<$t> {
            fn into_value(self) -> Value {
                Value::$kind(self.map($into))
            }
        }
    )*};
}
params! {
    bool => Bool(std::convert::identity),
    i32 => I32(std::convert::identity),
    i64 => I64(std::convert::identity),
    f64 => F64(std::convert::identity),
    String => Text(std::convert::identity),
    &str => Text(str::to_owned),
    &String => Text(String::clone),
    Vec<u8> => Bytes(std::convert::identity),
    &[u8] => Bytes(<[u8]>::to_vec),
}

/// A read of one row by a token's hash, in the two forms a backend may run it.
#[derive(Debug)]
pub struct TokenRead {
    /// `$1` the hash; every backend runs it.
    pub one: &'static str,
    /// The same read for many hashes at once (`$1` an array of them): one row per hash found,
    /// led by the 1-based position of its hash in the array (`token_slot`). PostgreSQL's
    /// syntax, for a backend that reads the requests arriving together in one round trip.
    pub batch: &'static str,
}

/// Builds [`TokenRead::batch`] from a statement that selects by `k.hash`: a lookup per hash
/// (the `LIMIT 1` keeps the planner from turning the lookups into a scan and a hash join).
macro_rules! token_read_batch {
    ($select_by_k_hash:expr) => {
        concat!(
            "SELECT k.n AS token_slot, x.* FROM unnest($1::bytea[]) WITH ORDINALITY AS k(hash, n) \
             CROSS JOIN LATERAL (",
            $select_by_k_hash,
            " LIMIT 1) x"
        )
    };
}
pub(crate) use token_read_batch;

/// The per-request lookups by token hash, read the backend's own way where it has one that is
/// faster than its pool (SQLite: on the calling thread, `sqlite/inline_reads.rs`; PostgreSQL:
/// on connections that skip the pool's checks, `postgres/token_reads.rs`). The generic store
/// asks first and reads through the pool when this answers `None`.
pub trait TokenReads: std::fmt::Debug + Send + Sync + 'static {
    /// The row `sql` selects by `key`; `None` when the caller should read through the pool.
    fn read_one<R: Record + TokenRecord>(
        &self,
        read: &'static TokenRead,
        key: &[u8],
    ) -> impl Future<Output = Option<StoreResult<Option<R>>>> + Send;

    /// Lets go of what it holds, at shutdown.
    fn close(&self);
}

/// Reads a username's failure counters (`$1` the username), without a lock.
pub(super) const SELECT_LOCKOUT: &str = concat!(
    "SELECT ",
    lockout_columns!(),
    " FROM lockouts WHERE username = $1"
);

/// A database the shared queries run on.
pub trait Backend: Database<Connection: Runs<Self>> + Sync {
    /// How it reads a session by its token on every request.
    type TokenReads: TokenReads;
    /// Reads the chain head for an append, locked against concurrent appenders.
    const HEAD_FOR_APPEND: &'static str;
    /// Reads a customer's id (`$1`), locked against concurrent sends to the same customer.
    const CUSTOMER_FOR_SEND: &'static str;
    /// Claims due outbox messages (`$1` claimed until, `$2` now, `$3` at most, `$4` the claim's
    /// token), returning them with whether each is still worth sending (`live`); each is
    /// claimed by one worker however many run.
    const CLAIM_MESSAGES: &'static str;
    /// Claims due webhook events (`$1` claimed until, `$2` now, `$3` batch size, `$4` the
    /// claim token).
    const CLAIM_WEBHOOKS: &'static str;
    /// Reads a username's failure counters (`$1` the username; `failures`, `lock_count`,
    /// `locked_until`, `operator_locked`, `locked_down`) after locking the username, so that
    /// concurrent transactions on one username, from any instance, take their turn whether or
    /// not it has a counter row yet, and each reads what the one before it committed (in READ
    /// COMMITTED, PostgreSQL's default, which the service relies on).
    const LOCKOUT_UNDER_LOCK: &'static str;
    /// Reads the retention checkpoint, locked against concurrent purges.
    const CHECKPOINT_FOR_PURGE: &'static str;
    /// Deletes a batch of sessions whose absolute lifetime ended before the cutoff (`$1`
    /// cutoff, `$2` batch size), walking `sessions_by_absolute_expiry`.
    const PURGE_ENDED_SESSIONS: &'static str;
    /// Deletes a batch of sessions that expired before the cutoff without becoming ACTIVE (a
    /// login that never finished its second factor), walking `sessions_unfinished_by_expiry`.
    const PURGE_UNFINISHED_SESSIONS: &'static str;
    /// Deletes a batch of stale failure counters (`$1` cutoff, `$2` batch size).
    const PURGE_LOCKOUTS: &'static str;
    /// The id and username of every customer whose username has a non-ASCII character.
    const NON_ASCII_USERNAMES: &'static str;
    /// The audit trail's client address, compared byte by byte (as its index sorts it), so
    /// that a range of its text is a range of addresses whatever the database's collation.
    const AUDIT_IP_BYTEWISE: &'static str;
    /// Writes the `n`th (1-based) value of a statement built at run time.
    fn placeholder(n: usize) -> String;

    /// Whether logins waiting together commit together ([`super::sql`]'s `login_commits`):
    /// where every write takes its turn on one connection anyway, a transaction of several
    /// logins writes their shared pages and syncs once for all of them.
    const GROUP_LOGINS: bool;

    /// How an audit append moves the chain's head: on PostgreSQL in its last insert, as each
    /// statement costs a round trip, which is most of what these two small writes cost.
    const HEAD_MOVE: HeadMove;

    /// Moves a customer's last login (`$1` the new one, `$2` the customer) and returns the one
    /// it replaces, in one statement (a self-join: PostgreSQL). `None` where `RETURNING` sees
    /// only the new row (SQLite): the old one is read first, in process, at no cost a round trip
    /// would have. Either way under the username's lock, which every login's move holds.
    const MOVE_LAST_LOGIN: Option<&'static str>;

    /// Where write transactions start: on SQLite the one writer connection, on PostgreSQL a
    /// pool.
    type Writer: std::fmt::Debug + Send + Sync + 'static;

    /// A write transaction (or a savepoint in one) on [`Backend::Writer`].
    type Tx<'c>: WriteTx<Self>;

    /// Starts a transaction that may write.
    fn begin_write(
        writer: &Self::Writer,
    ) -> impl Future<Output = sqlx::Result<Self::Tx<'static>>> + Send;

    /// Runs one write statement as a write of its own; returns how many rows it changed.
    /// PostgreSQL runs it outside a transaction, saving the `BEGIN` and `COMMIT` round trips;
    /// SQLite in [`Backend::begin_write`]'s transaction, which takes the write lock before
    /// the statement reads (an `UPDATE` that reads first, like a claim's subquery, could
    /// otherwise meet another process's write between its read and its write).
    fn execute_alone(
        writer: &Self::Writer,
        query: Query<Self>,
    ) -> impl Future<Output = sqlx::Result<u64>> + Send;

    /// [`Backend::execute_alone`] for a statement that returns rows.
    fn fetch_all_alone<R: Record>(
        writer: &Self::Writer,
        query: Query<Self>,
    ) -> impl Future<Output = sqlx::Result<Vec<R>>> + Send;

    /// Lets go of the writer, at shutdown.
    fn close_writer(writer: &Self::Writer) -> impl Future<Output = ()> + Send;

    /// Where reads outside a transaction run.
    type Reader: std::fmt::Debug + Send + Sync + 'static;

    /// One caller's connection for reads.
    type Read: Runs<Self>;

    fn read(reader: &Self::Reader) -> impl Future<Output = sqlx::Result<Self::Read>> + Send;

    /// Lets go of the readers, at shutdown.
    fn close_reader(reader: &Self::Reader) -> impl Future<Output = ()> + Send;
}

/// A connection or a transaction that runs backend `B`'s statements: sqlx's connections (both
/// databases' readers, PostgreSQL's writers) and SQLite's own writer (`sqlite/writer.rs`).
pub trait Runs<B: Backend>: Send {
    /// Runs a statement; returns how many rows it changed.
    fn execute(&mut self, query: Query<B>) -> impl Future<Output = sqlx::Result<u64>> + Send;

    fn fetch_optional<R: Record>(
        &mut self,
        query: Query<B>,
    ) -> impl Future<Output = sqlx::Result<Option<R>>> + Send;

    fn fetch_all<R: Record>(
        &mut self,
        query: Query<B>,
    ) -> impl Future<Output = sqlx::Result<Vec<R>>> + Send;
}

/// A write transaction, or a savepoint in one. Dropped without [`WriteTx::commit`], it rolls
/// back.
pub trait WriteTx<B: Backend>: Runs<B> + Sized {
    fn commit(self) -> impl Future<Output = sqlx::Result<()>> + Send;

    fn rollback(self) -> impl Future<Output = sqlx::Result<()>> + Send;

    /// A savepoint in this transaction, as a transaction of its own.
    fn savepoint(&mut self) -> impl Future<Output = sqlx::Result<B::Tx<'_>>> + Send;
}

/// Where the statement that moves the audit chain's head goes in an append's last call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadMove {
    /// In a data-modifying `WITH` before the insert: one statement.
    With,
    /// In a statement of its own after the insert: SQLite, whose `WITH` cannot change rows;
    /// its writer runs on the calling thread, so a statement more costs no hand-off.
    Separate,
}

/// A statement with its values, for backend `B`.
pub struct Query<B: Backend> {
    sql: Sql,
    values: Vec<Value>,
    backend: PhantomData<fn() -> B>,
}

/// A statement's text: fixed, or built at run time from fixed text and placeholders only.
enum Sql {
    Fixed(&'static str),
    Built(String),
}

/// A statement to run on backend `B`; placeholders are `$1`, `$2`, … on both databases.
pub fn query<B: Backend>(sql: &'static str) -> Query<B> {
    Query::new(Sql::Fixed(sql))
}

/// A statement whose text is built at run time from fixed text and placeholders only
/// (multi-row inserts), never from values.
pub fn query_built<B: Backend>(sql: String) -> Query<B> {
    Query::new(Sql::Built(sql))
}

/// `($1, …, $c), ($c+1, …), …` (as [`Backend::placeholder`] writes them): the placeholders of
/// `rows` rows of `columns` values each.
pub fn row_placeholders<B: Backend>(rows: usize, columns: usize) -> String {
    (0..rows)
        .map(|row| {
            let values: Vec<String> = (1..=columns)
                .map(|column| B::placeholder(row * columns + column))
                .collect();
            format!("({})", values.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl<B: Backend> Query<B> {
    fn new(sql: Sql) -> Self {
        Self {
            sql,
            values: Vec::new(),
            backend: PhantomData,
        }
    }

    pub fn bind<T: Param>(mut self, value: T) -> Self {
        self.values.push(value.into_value());
        self
    }

    /// The statement as sqlx runs it, its values bound in order.
    pub(super) fn into_sqlx<'q>(self) -> sqlx::query::Query<'q, B, B::Arguments>
    where
        Option<bool>: for<'e> Encode<'e, B> + Type<B>,
        Option<i32>: for<'e> Encode<'e, B> + Type<B>,
        Option<i64>: for<'e> Encode<'e, B> + Type<B>,
        Option<f64>: for<'e> Encode<'e, B> + Type<B>,
        Option<String>: for<'e> Encode<'e, B> + Type<B>,
        Option<Vec<u8>>: for<'e> Encode<'e, B> + Type<B>,
    {
        let statement = match self.sql {
            Sql::Fixed(sql) => sqlx::query(sql),
            Sql::Built(sql) => sqlx::query(sqlx::AssertSqlSafe(sql)),
        };
        self.values
            .into_iter()
            .fold(statement, |statement, value| match value {
                Value::Bool(v) => statement.bind(v),
                Value::I32(v) => statement.bind(v),
                Value::I64(v) => statement.bind(v),
                Value::F64(v) => statement.bind(v),
                Value::Text(v) => statement.bind(v),
                Value::Bytes(v) => statement.bind(v),
            })
    }

    /// Runs the statement; returns how many rows it changed.
    pub async fn execute(self, conn: &mut (impl Runs<B> + ?Sized)) -> sqlx::Result<u64> {
        conn.execute(self).await
    }

    pub async fn fetch_optional<R: Record>(
        self,
        conn: &mut (impl Runs<B> + ?Sized),
    ) -> sqlx::Result<Option<R>> {
        conn.fetch_optional(self).await
    }

    pub async fn fetch_one<R: Record>(self, conn: &mut (impl Runs<B> + ?Sized)) -> sqlx::Result<R> {
        conn.fetch_optional(self)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    pub async fn fetch_all<R: Record>(
        self,
        conn: &mut (impl Runs<B> + ?Sized),
    ) -> sqlx::Result<Vec<R>> {
        conn.fetch_all(self).await
    }

    /// The statement's text, whether it was built at run time (and so is not worth keeping
    /// prepared), and its values in order.
    pub(super) fn parts(&self) -> (&str, bool, &[Value]) {
        match &self.sql {
            Sql::Fixed(sql) => (sql, false, &self.values),
            Sql::Built(sql) => (sql, true, &self.values),
        }
    }
}

/// [`Runs`] for sqlx's connections and transactions of database `$db`.
macro_rules! runs_on_sqlx {
    ($($db:ty => $conn:ty),*) => {$(
        impl Runs<$db> for $conn {
            async fn execute(&mut self, query: Query<$db>) -> sqlx::Result<u64> {
                Ok(query.into_sqlx().execute(self).await?.rows_affected())
            }

            async fn fetch_optional<R: Record>(
                &mut self,
                query: Query<$db>,
            ) -> sqlx::Result<Option<R>> {
                query
                    .into_sqlx()
                    .fetch_optional(self)
                    .await?
                    .map(|row| R::decode(&row))
                    .transpose()
            }

            async fn fetch_all<R: Record>(&mut self, query: Query<$db>) -> sqlx::Result<Vec<R>> {
                query
                    .into_sqlx()
                    .fetch_all(self)
                    .await?
                    .iter()
                    .map(R::decode)
                    .collect()
            }
        }

        impl Runs<$db> for Transaction<'_, $db> {
            async fn execute(&mut self, query: Query<$db>) -> sqlx::Result<u64> {
                (**self).execute(query).await
            }

            async fn fetch_optional<R: Record>(
                &mut self,
                query: Query<$db>,
            ) -> sqlx::Result<Option<R>> {
                (**self).fetch_optional(query).await
            }

            async fn fetch_all<R: Record>(&mut self, query: Query<$db>) -> sqlx::Result<Vec<R>> {
                (**self).fetch_all(query).await
            }
        }
    )*};
}
runs_on_sqlx!(sqlx::Sqlite => sqlx::SqliteConnection, sqlx::Postgres => sqlx::PgConnection);

impl<B: Backend> Runs<B> for sqlx::pool::PoolConnection<B> {
    async fn execute(&mut self, query: Query<B>) -> sqlx::Result<u64> {
        (**self).execute(query).await
    }

    async fn fetch_optional<R: Record>(&mut self, query: Query<B>) -> sqlx::Result<Option<R>> {
        (**self).fetch_optional(query).await
    }

    async fn fetch_all<R: Record>(&mut self, query: Query<B>) -> sqlx::Result<Vec<R>> {
        (**self).fetch_all(query).await
    }
}

/// The statements of [`Backend`] whose text differs between the databases only in how the rows
/// they take are locked. Each backend module invokes it inside its `impl Backend` with its two
/// clauses: `read` locks rows read in order to change them (PostgreSQL's `FOR UPDATE`), and
/// `batch` locks the rows a batch takes (PostgreSQL's `FOR UPDATE SKIP LOCKED`, so that
/// instances working at once take different rows). On SQLite both are empty: its single writer
/// already orders every write.
macro_rules! locking_statements {
    (read = $lock_read_rows:literal, batch = $lock_taken_rows:literal) => {
        const HEAD_FOR_APPEND: &'static str =
            concat!("SELECT seq, hash FROM audit_head WHERE id = 1", $lock_read_rows);
        const CUSTOMER_FOR_SEND: &'static str =
            concat!("SELECT id FROM customers WHERE id = $1", $lock_read_rows);
        const CHECKPOINT_FOR_PURGE: &'static str =
            concat!("SELECT seq, hash FROM audit_checkpoint WHERE id = 1", $lock_read_rows);
        const CLAIM_MESSAGES: &'static str = concat!(
            "UPDATE messages SET claimed_until = $1, claim_token = $4, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM messages WHERE status = 'PENDING' \
             AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) \
             ORDER BY next_attempt_at LIMIT $3",
            $lock_taken_rows,
            ") RETURNING id, purpose, customer_id, session_id, challenge_id, reset_id, channel, \
             address, sealed_code, payload, dedupe_key, valid_for_minutes, created_at, expires_at, \
             attempts, claim_token, maybe_delivered, lockdown_link, \
             CAST(CASE WHEN reset_id IS NOT NULL THEN (CASE WHEN EXISTS (SELECT 1 FROM \
             password_resets r WHERE r.id = messages.reset_id AND r.status = 'OPEN' \
             AND r.expires_at > $2) THEN 1 ELSE 0 END) \
             WHEN challenge_id IS NULL THEN 1 WHEN EXISTS (SELECT 1 FROM challenges c \
             JOIN sessions s ON s.id = c.session_id WHERE c.id = messages.challenge_id \
             AND c.status = 'OPEN' AND s.revoked_at IS NULL AND s.expires_at > $2) THEN 1 ELSE 0 END \
             AS BIGINT) AS live"
        );
        const CLAIM_WEBHOOKS: &'static str = concat!(
            "UPDATE webhook_events SET claimed_until = $1, claim_token = $4, attempts = attempts + 1 \
             WHERE id IN (SELECT id FROM webhook_events WHERE status = 'PENDING' \
             AND next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2) \
             ORDER BY next_attempt_at LIMIT $3",
            $lock_taken_rows,
            ") RETURNING id, kind, body, expires_at, attempts, claim_token"
        );
        // Two statements, each over an index of its own: one with `OR` reads the whole table
        // (PostgreSQL builds the bitmap of every match before its LIMIT), seconds a batch at
        // ten million sessions.
        const PURGE_ENDED_SESSIONS: &'static str = concat!(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
             WHERE absolute_expires_at <= $1 LIMIT $2",
            $lock_taken_rows,
            ")"
        );
        const PURGE_UNFINISHED_SESSIONS: &'static str = concat!(
            "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
             WHERE state <> 'ACTIVE' AND expires_at <= $1 LIMIT $2",
            $lock_taken_rows,
            ")"
        );
        const PURGE_LOCKOUTS: &'static str = concat!(
            "DELETE FROM lockouts WHERE username IN (SELECT username FROM lockouts \
             WHERE operator_locked = FALSE AND locked_down = FALSE AND updated_at <= $1 AND (locked_until IS NULL OR locked_until <= $1) \
             LIMIT $2",
            $lock_taken_rows,
            ")"
        );
    };
}
pub(super) use locking_statements;

#[cfg(test)]
mod tests {
    use sqlx::{Postgres, Sqlite};

    /// PostgreSQL types every parameter, a null's too: a null keeps the kind of its value.
    #[test]
    fn a_value_keeps_its_kind_null_or_not() {
        use super::{Param as _, Value};
        assert_eq!(None::<&str>.into_value(), Value::Text(None));
        assert_eq!("a".into_value(), Value::Text(Some("a".to_owned())));
        assert_eq!(None::<i64>.into_value(), Value::I64(None));
        assert_eq!(7_i32.into_value(), Value::I32(Some(7)));
        assert_eq!(
            b"ab".as_slice().into_value(),
            Value::Bytes(Some(b"ab".to_vec()))
        );
        assert_eq!(None::<bool>.into_value(), Value::Bool(None));
    }

    #[test]
    fn placeholders_number_rows_and_columns_in_order() {
        assert_eq!(super::row_placeholders::<Postgres>(1, 2), "($1, $2)");
        assert_eq!(
            super::row_placeholders::<Postgres>(2, 3),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(super::row_placeholders::<Sqlite>(2, 2), "(?, ?), (?, ?)");
    }
}
