//! Statements that run however large the tables grow, and must not read a whole table to do
//! it: each database's planner is asked how it would run them, on the real schema, with
//! sequential scans priced out (PostgreSQL) so that only a missing index can choose one.
//!
//! Before `0019_indexed_housekeeping`, every purge batch and every start-up read the whole
//! sessions or customers table: seconds each at ten million rows, holding SQLite's one writer
//! (and every login behind it) and tripping PostgreSQL's statement timeout at start-up.

use sqlx::{Postgres, Sqlite};

use super::backend::Backend;
use super::test_schema::{drop_postgres, migrated_postgres, migrated_sqlite};

/// The statements, by name.
fn statements<B: Backend>() -> [(&'static str, &'static str); 3] {
    [
        ("PURGE_ENDED_SESSIONS", B::PURGE_ENDED_SESSIONS),
        ("PURGE_UNFINISHED_SESSIONS", B::PURGE_UNFINISHED_SESSIONS),
        ("NON_ASCII_USERNAMES", B::NON_ASCII_USERNAMES),
    ]
}

#[tokio::test]
async fn sqlite_purges_and_start_up_search_indexes_rather_than_scan_tables() {
    let mut conn = migrated_sqlite().await;
    for (name, statement) in statements::<Sqlite>() {
        let explain = sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {statement}"));
        let plan: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(explain).fetch_all(&mut conn).await.unwrap();
        let plan: Vec<String> = plan.into_iter().map(|row| row.3).collect();
        for step in plan.iter().filter(|step| step.starts_with("SCAN ")) {
            // A scan is allowed only through a partial index: it holds the rows wanted alone.
            let index = step.split(" INDEX ").nth(1).unwrap_or_default();
            let partial: Option<(String,)> = sqlx::query_as(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND name = $1 \
                 AND sql LIKE '% WHERE %'",
            )
            .bind(index)
            .fetch_optional(&mut conn)
            .await
            .unwrap();
            assert!(
                partial.is_some(),
                "{name} reads a whole table or index: {plan:#?}"
            );
        }
    }
}

#[tokio::test]
async fn postgres_purges_and_start_up_search_indexes_rather_than_scan_tables() {
    let (mut conn, schema) = migrated_postgres("index_use").await;
    // Priced out, so that only a missing index can choose a scan.
    sqlx::raw_sql("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut scans = Vec::new();
    for (i, (name, statement)) in statements::<Postgres>().into_iter().enumerate() {
        // Typed parameters as the service binds them (a cutoff, a batch size).
        let prepare = match statement.matches('$').count() {
            0 => format!("PREPARE s{i} AS {statement}"),
            _ => format!("PREPARE s{i}(bigint, bigint) AS {statement}"),
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(prepare))
            .execute(&mut conn)
            .await
            .unwrap();
        let execute = if statement.contains('$') {
            format!("EXPLAIN EXECUTE s{i}(0, 500)")
        } else {
            format!("EXPLAIN EXECUTE s{i}")
        };
        let plan: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(execute))
            .fetch_all(&mut conn)
            .await
            .unwrap();
        let plan: Vec<String> = plan.into_iter().map(|row| row.0).collect();
        if plan.iter().any(|step| step.contains("Seq Scan")) {
            scans.push(format!("{name} reads a whole table: {plan:#?}"));
        }
    }
    drop_postgres(&mut conn, &schema).await;
    assert!(scans.is_empty(), "{scans:#?}");
}
