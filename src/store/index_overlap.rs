//! No index repeats the leading columns of another on its table: a lookup by those columns can
//! use the longer one, so the shorter only costs every insert, and every update that moves a
//! row, one more entry to write (three a full flow, for `sessions_by_customer`, until
//! `0021_redundant_session_index`). Checked on each database's real schema after migration.

use super::test_schema::{drop_postgres, migrated_postgres, migrated_sqlite};

/// An index as its database describes it.
#[derive(Debug)]
struct Index {
    table: String,
    name: String,
    /// A unique index is a constraint as well as a path: never redundant.
    unique: bool,
    /// A partial index holds some rows only: it neither covers nor is covered.
    partial: bool,
    columns: Vec<String>,
}

/// Each index whose columns lead another's on the same table, with the one that covers it.
fn covered(indexes: &[Index]) -> Vec<String> {
    let mut found = Vec::new();
    for short in indexes.iter().filter(|i| !i.unique && !i.partial) {
        let cover = indexes.iter().find(|long| {
            long.name != short.name
                && long.table == short.table
                && !long.partial
                && long.columns.starts_with(&short.columns)
        });
        if let Some(long) = cover {
            found.push(format!(
                "{}.{} {:?} is led by {} {:?}",
                short.table, short.name, short.columns, long.name, long.columns
            ));
        }
    }
    found
}

#[test]
fn an_index_covered_by_another_is_found() {
    let index = |name: &str, unique, partial, columns: &[&str]| Index {
        table: "t".into(),
        name: name.into(),
        unique,
        partial,
        columns: columns.iter().map(|c| (*c).to_owned()).collect(),
    };
    let found = covered(&[
        index("by_a", false, false, &["a"]),
        index("by_a_b", false, false, &["a", "b"]),
        index("unique_c", true, false, &["c"]),
        index("by_c_d", false, false, &["c", "d"]),
        index("live_by_e", false, true, &["e"]),
        index("by_e", false, false, &["e"]),
        index("live_by_e_f", false, true, &["e", "f"]),
    ]);
    assert_eq!(found, ["t.by_a [\"a\"] is led by by_a_b [\"a\", \"b\"]"]);
}

#[tokio::test]
async fn sqlite_keeps_no_index_that_another_leads_with_the_same_columns() {
    let mut conn = migrated_sqlite().await;
    let listed: Vec<(String, String, i64, i64)> = sqlx::query_as(
        "SELECT t.name, l.name, l.\"unique\", l.partial FROM sqlite_master t, \
         pragma_index_list(t.name) l WHERE t.type = 'table'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut indexes = Vec::new();
    for (table, name, unique, partial) in listed {
        let columns: Vec<(String,)> =
            sqlx::query_as("SELECT name FROM pragma_index_info($1) ORDER BY seqno")
                .bind(&name)
                .fetch_all(&mut conn)
                .await
                .unwrap();
        indexes.push(Index {
            table,
            name,
            unique: unique == 1,
            partial: partial == 1,
            columns: columns.into_iter().map(|c| c.0).collect(),
        });
    }
    assert!(indexes.len() > 10, "the schema's indexes were not read");
    let found = covered(&indexes);
    assert!(found.is_empty(), "{found:#?}");
}

#[tokio::test]
async fn postgres_keeps_no_index_that_another_leads_with_the_same_columns() {
    let (mut conn, schema) = migrated_postgres("index_overlap").await;
    let listed: Vec<(String, String, bool, bool, Vec<String>)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, x.indisunique, x.indpred IS NOT NULL, \
         array_agg(a.attname::text ORDER BY k.n) \
         FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_class t ON t.oid = x.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace \
         CROSS JOIN LATERAL unnest(x.indkey) WITH ORDINALITY AS k(attnum, n) \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum \
         WHERE s.nspname = $1 GROUP BY 1, 2, 3, 4",
    )
    .bind(&schema)
    .fetch_all(&mut conn)
    .await
    .unwrap();
    drop_postgres(&mut conn, &schema).await;
    let indexes: Vec<Index> = listed
        .into_iter()
        .map(|(table, name, unique, partial, columns)| Index {
            table,
            name,
            unique,
            partial,
            columns,
        })
        .collect();
    assert!(indexes.len() > 10, "the schema's indexes were not read");
    let found = covered(&indexes);
    assert!(found.is_empty(), "{found:#?}");
}
