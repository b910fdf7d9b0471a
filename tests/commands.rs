//! Each operator command builds only what it needs: reading the audit trail changes nothing,
//! and no command but `serve` prepares code delivery.

#[path = "common/process.rs"]
mod process;

use process::Setup;

fn sqlite_setup(dir: &std::path::Path) -> Setup {
    let url = format!("sqlite://{}", dir.join("auth.db").display());
    Setup::new(url, dir).with(
        "FINHUB_OUTBOX_PATH",
        &dir.join("outbox/codes.jsonl").display().to_string(),
    )
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn audit_commands_neither_create_nor_migrate_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let setup = sqlite_setup(dir.path());

    for args in [
        &["audit", "verify"][..],
        &["audit", "export", "--since", "2026-01-01T00:00:00Z"],
    ] {
        let out = setup.run(args, None);
        assert!(!out.status.success(), "{args:?} on no database");
        assert!(
            stderr(&out).contains("cannot open the SQLite database"),
            "{}",
            stderr(&out)
        );
    }
    assert!(
        !dir.path().join("auth.db").exists(),
        "no database file made"
    );

    assert!(setup.run(&["migrate"], None).status.success());
    assert!(setup.run(&["audit", "verify"], None).status.success());
    // As if the database were left behind by an older version.
    sqlite(&dir.path().join("auth.db"), "DELETE FROM _sqlx_migrations");

    let out = setup.run(&["audit", "verify"], None);

    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("schema is behind"),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("finhub-auth migrate"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        sqlite(
            &dir.path().join("auth.db"),
            "SELECT COUNT(*) FROM _sqlx_migrations"
        ),
        Some(0),
        "verify did not migrate"
    );
}

#[test]
fn only_serving_prepares_code_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let setup = sqlite_setup(dir.path());

    setup.create_customer("ops", "sms", "Corr3ct-horse-battery");
    assert!(
        setup
            .run(&["customers", "lock", "ops@example.com"], None)
            .status
            .success()
    );
    assert!(setup.run(&["audit", "verify"], None).status.success());
    assert!(setup.run(&["migrate"], None).status.success());

    assert!(
        !dir.path().join("outbox").exists(),
        "no outbox directory made by operator commands"
    );
}

/// Runs `sql` on the database file directly, as an operator with file access could.
fn sqlite(db: &std::path::Path, sql: &str) -> Option<i64> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use sqlx::Connection as _;
            let url = format!("sqlite://{}", db.display());
            let mut conn = sqlx::SqliteConnection::connect(&url).await.unwrap();
            sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(sql.to_owned()))
                .fetch_optional(&mut conn)
                .await
                .unwrap()
                .map(|(n,)| n)
        })
}
