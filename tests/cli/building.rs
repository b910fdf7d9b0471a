//! Each command builds only what it needs: reading the audit trail changes nothing, not even
//! the schema, and no command but `serve` prepares code delivery.

use crate::{database, sandbox, sqlite_rows, stderr};

#[tokio::test]
async fn audit_commands_neither_create_nor_migrate_a_database() {
    let (setup, _dir) = sandbox();
    let db = database(&setup);

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
    assert!(!db.exists(), "no database file made");

    assert!(setup.run(&["migrate"], None).status.success());
    assert!(setup.run(&["audit", "verify"], None).status.success());
    // As if the database had been left behind by an older version: its newest migration undone.
    let newest = "DELETE FROM _sqlx_migrations \
         WHERE version = (SELECT MAX(version) FROM _sqlx_migrations) RETURNING 1";
    assert_eq!(sqlite_rows(&db, newest).await, 1);
    let applied = sqlite_rows(&db, "SELECT 1 FROM _sqlx_migrations").await;

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
        sqlite_rows(&db, "SELECT 1 FROM _sqlx_migrations").await,
        applied,
        "verify did not migrate"
    );
}

#[test]
fn only_serving_prepares_code_delivery() {
    let (setup, dir) = sandbox();
    let outbox = dir.path().join("outbox");
    let setup = setup.with(
        "FINHUB_OUTBOX_PATH",
        &outbox.join("codes.jsonl").display().to_string(),
    );

    setup.create_customer("ops", "sms", crate::PASSWORD);
    let lock = setup.run(&["customers", "lock", "ops@example.com"], None);
    assert!(lock.status.success(), "{}", stderr(&lock));
    assert!(setup.run(&["audit", "verify"], None).status.success());
    assert!(setup.run(&["migrate"], None).status.success());

    assert!(
        !outbox.exists(),
        "no outbox directory made by operator commands"
    );
}
