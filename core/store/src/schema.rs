//! The database schema: its version history and the upgrade path.
//!
//! `PRAGMA user_version` holds the schema version and `PRAGMA application_id` holds
//! [`crate::APPLICATION_ID`].
//!
//! # Rules for changing the schema
//! 1. Never edit a released `SCHEMA_Vn` or `MIGRATE_n_TO_m`: they are history, used by
//!    `test_all_upgrades` to build a database exactly as that version left it.
//! 2. Add `SCHEMA_V{n+1}` (the full CREATE SQL of the new version, used for new files),
//!    `MIGRATE_{n}_TO_{n+1}`, an entry in [`HISTORY`] and [`MIGRATIONS`], bump [`VERSION`].
//! 3. `test_all_upgrades` then checks that every past version upgrades to a schema
//!    identical to a fresh one and that the data survives.
//!
//! # History
//! * v1: local contacts, company directory, call history, blocked/allowed numbers and the
//!   log of blocked attempts, MWI counts.
//! * v2: speed dial (digits 1–9) and a partial index for the unseen-missed-calls badge.

use rusqlite::{Connection, Transaction, TransactionBehavior};

use crate::StoreError;

/// The schema version this build writes (`PRAGMA user_version`).
pub const VERSION: u32 = 2;

/// The complete schema of version 1 (history: never edit).
pub const SCHEMA_V1: &str = r#"
CREATE TABLE local_contacts (
    id            INTEGER PRIMARY KEY,
    source_id     TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    company       TEXT,
    emails        TEXT NOT NULL DEFAULT ''
);
CREATE TABLE local_numbers (
    contact_id  INTEGER NOT NULL REFERENCES local_contacts(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    label       TEXT NOT NULL,
    number      TEXT NOT NULL,
    digits      TEXT NOT NULL,
    tail        TEXT NOT NULL,
    PRIMARY KEY (contact_id, position)
);
CREATE INDEX local_numbers_tail ON local_numbers(tail);
CREATE TABLE company_contacts (
    id            INTEGER PRIMARY KEY,
    directory     TEXT NOT NULL,
    remote_id     TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    department    TEXT,
    emails        TEXT NOT NULL DEFAULT '',
    UNIQUE (directory, remote_id)
);
CREATE TABLE company_numbers (
    contact_id  INTEGER NOT NULL REFERENCES company_contacts(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    label       TEXT NOT NULL,
    number      TEXT NOT NULL,
    digits      TEXT NOT NULL,
    tail        TEXT NOT NULL,
    PRIMARY KEY (contact_id, position)
);
CREATE INDEX company_numbers_tail ON company_numbers(tail);
CREATE TABLE directory_state (
    directory  TEXT PRIMARY KEY,
    etag       TEXT
);
CREATE TABLE calls (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    direction            TEXT NOT NULL CHECK (direction IN ('incoming', 'outgoing')),
    remote_number        TEXT NOT NULL,
    remote_display_name  TEXT,
    account              TEXT NOT NULL,
    started_at           INTEGER NOT NULL,
    answered_at          INTEGER,
    ended_at             INTEGER NOT NULL,
    duration_ms          INTEGER NOT NULL,
    end_reason           TEXT NOT NULL,
    missed               INTEGER NOT NULL,
    seen                 INTEGER NOT NULL
);
CREATE INDEX calls_started ON calls(started_at DESC, id DESC);
CREATE TABLE number_rules (
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    number  TEXT NOT NULL,
    digits  TEXT NOT NULL,
    UNIQUE (kind, number)
);
CREATE TABLE blocked_attempts (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    number  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE TABLE mwi (
    account    TEXT PRIMARY KEY,
    new_count  INTEGER NOT NULL,
    old_count  INTEGER NOT NULL
);
"#;

/// Version 1 → 2: speed dial and the missed-calls badge index (history: never edit).
pub const MIGRATE_1_TO_2: &str = r#"
CREATE TABLE speed_dial (
    digit   INTEGER PRIMARY KEY CHECK (digit BETWEEN 1 AND 9),
    number  TEXT NOT NULL,
    label   TEXT
);
CREATE INDEX calls_unseen_missed ON calls(missed, seen) WHERE missed = 1 AND seen = 0;
"#;

/// The complete schema of version 2, used to create new databases.
pub const SCHEMA_V2: &str = r#"
CREATE TABLE local_contacts (
    id            INTEGER PRIMARY KEY,
    source_id     TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    company       TEXT,
    emails        TEXT NOT NULL DEFAULT ''
);
CREATE TABLE local_numbers (
    contact_id  INTEGER NOT NULL REFERENCES local_contacts(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    label       TEXT NOT NULL,
    number      TEXT NOT NULL,
    digits      TEXT NOT NULL,
    tail        TEXT NOT NULL,
    PRIMARY KEY (contact_id, position)
);
CREATE INDEX local_numbers_tail ON local_numbers(tail);
CREATE TABLE company_contacts (
    id            INTEGER PRIMARY KEY,
    directory     TEXT NOT NULL,
    remote_id     TEXT NOT NULL,
    display_name  TEXT NOT NULL,
    name_key      TEXT NOT NULL,
    department    TEXT,
    emails        TEXT NOT NULL DEFAULT '',
    UNIQUE (directory, remote_id)
);
CREATE TABLE company_numbers (
    contact_id  INTEGER NOT NULL REFERENCES company_contacts(id) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    label       TEXT NOT NULL,
    number      TEXT NOT NULL,
    digits      TEXT NOT NULL,
    tail        TEXT NOT NULL,
    PRIMARY KEY (contact_id, position)
);
CREATE INDEX company_numbers_tail ON company_numbers(tail);
CREATE TABLE directory_state (
    directory  TEXT PRIMARY KEY,
    etag       TEXT
);
CREATE TABLE calls (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    direction            TEXT NOT NULL CHECK (direction IN ('incoming', 'outgoing')),
    remote_number        TEXT NOT NULL,
    remote_display_name  TEXT,
    account              TEXT NOT NULL,
    started_at           INTEGER NOT NULL,
    answered_at          INTEGER,
    ended_at             INTEGER NOT NULL,
    duration_ms          INTEGER NOT NULL,
    end_reason           TEXT NOT NULL,
    missed               INTEGER NOT NULL,
    seen                 INTEGER NOT NULL
);
CREATE INDEX calls_started ON calls(started_at DESC, id DESC);
CREATE INDEX calls_unseen_missed ON calls(missed, seen) WHERE missed = 1 AND seen = 0;
CREATE TABLE number_rules (
    id      INTEGER PRIMARY KEY,
    kind    TEXT NOT NULL CHECK (kind IN ('block', 'allow')),
    number  TEXT NOT NULL,
    digits  TEXT NOT NULL,
    UNIQUE (kind, number)
);
CREATE TABLE blocked_attempts (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    number  TEXT NOT NULL,
    at      INTEGER NOT NULL
);
CREATE TABLE mwi (
    account    TEXT PRIMARY KEY,
    new_count  INTEGER NOT NULL,
    old_count  INTEGER NOT NULL
);
CREATE TABLE speed_dial (
    digit   INTEGER PRIMARY KEY CHECK (digit BETWEEN 1 AND 9),
    number  TEXT NOT NULL,
    label   TEXT
);
"#;

/// Every version's complete CREATE SQL, index `n - 1` for version `n`.
pub const HISTORY: &[&str] = &[SCHEMA_V1, SCHEMA_V2];

/// `(from_version, sql)`: the SQL that upgrades `from_version` to `from_version + 1`.
pub const MIGRATIONS: &[(u32, &str)] = &[(1, MIGRATE_1_TO_2)];

/// The complete CREATE SQL of `version` (1..=[`VERSION`]).
pub fn create_sql(version: u32) -> Option<&'static str> {
    let index = usize::try_from(version.checked_sub(1)?).ok()?;
    HISTORY.get(index).copied()
}

/// Brings a database at `from_version` to [`VERSION`] inside the caller's transaction
/// (so the whole upgrade commits or rolls back as one): version 0 (a new, empty file)
/// gets the latest schema, older versions run every migration in order. Sets
/// `PRAGMA user_version`.
pub fn upgrade_from(tx: &Transaction<'_>, from_version: u32) -> Result<(), StoreError> {
    if from_version > VERSION {
        return Err(StoreError::TooNew {
            found: from_version,
            supported: VERSION,
        });
    }
    if from_version == VERSION {
        return Ok(());
    }
    if from_version == 0 {
        tx.execute_batch(SCHEMA_V2)?;
    } else {
        for version in from_version..VERSION {
            let sql = MIGRATIONS
                .iter()
                .find(|(from, _)| *from == version)
                .map(|(_, sql)| *sql)
                .ok_or_else(|| StoreError::Corrupt {
                    reason: format!("no migration from schema version {version}"),
                })?;
            tx.execute_batch(sql)?;
        }
    }
    tx.pragma_update(None, "user_version", VERSION)?;
    Ok(())
}

/// Opens an immediate transaction, reads the version inside it (another process may have
/// upgraded in the meantime) and upgrades.
pub(crate) fn upgrade(conn: &mut Connection) -> Result<(), StoreError> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    let version = u32::try_from(version).map_err(|_| StoreError::Corrupt {
        reason: format!("negative schema version {version}"),
    })?;
    if version == VERSION {
        return Ok(());
    }
    if version > 0 {
        tracing::info!(
            from = version,
            to = VERSION,
            "upgrading the Handset database"
        );
    }
    upgrade_from(&tx, version)?;
    tx.commit()?;
    Ok(())
}

/// The tables a database of `version` must have (0: none).
pub(crate) fn tables_of(version: u32) -> Vec<&'static str> {
    let Some(sql) = create_sql(version) else {
        return Vec::new();
    };
    sql.split("CREATE TABLE ")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .collect()
}

/// Checks that a database of `version` has the tables it should (`present` sorted).
pub(crate) fn check_tables(version: u32, present: &[String]) -> Result<(), StoreError> {
    if version == 0 {
        if present.is_empty() {
            return Ok(());
        }
        return Err(StoreError::Corrupt {
            reason: format!("schema version 0 but tables exist: {}", present.join(", ")),
        });
    }
    let missing: Vec<&str> = tables_of(version)
        .into_iter()
        .filter(|t| !present.iter().any(|p| p == t))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(StoreError::Corrupt {
            reason: format!("tables missing: {}", missing.join(", ")),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::{APPLICATION_ID, Store, blocklist, contacts, history, speed_dial, voicemail};
    use std::path::PathBuf;

    struct TempFile(PathBuf);
    impl TempFile {
        fn new(tag: &str) -> TempFile {
            static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let p = std::env::temp_dir().join(format!(
                "handset-store-schema-{tag}-{}-{}.db",
                std::process::id(),
                N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ));
            let t = TempFile(p);
            t.clean();
            t
        }
        fn clean(&self) {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = self.0.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }
    impl Drop for TempFile {
        fn drop(&mut self) {
            self.clean();
        }
    }

    /// Sample data a database of `version` may hold, written with that version's SQL.
    fn insert_sample_data(conn: &Connection, version: u32) {
        // Present since v1.
        conn.execute_batch(
            r#"
            INSERT INTO local_contacts (id, source_id, display_name, name_key, company, emails)
                VALUES (1, 'os-1', 'Jürgen Weiß', 'jurgen weiss', 'ACME', 'j@acme.example');
            INSERT INTO local_numbers VALUES (1, 0, 'mobile', '+49 170 1234567', '491701234567', '4567');
            INSERT INTO company_contacts (id, directory, remote_id, display_name, name_key, department)
                VALUES (1, 'https://pbx.example.com/api', 'u7', 'Reception', 'reception', 'Front');
            INSERT INTO company_numbers VALUES (1, 0, 'work', '200', '200', '200');
            INSERT INTO directory_state VALUES ('https://pbx.example.com/api', '"v1"');
            INSERT INTO calls (direction, remote_number, remote_display_name, account, started_at,
                answered_at, ended_at, duration_ms, end_reason, missed, seen)
                VALUES ('incoming', '01701234567', NULL, 'acc', 1000, NULL, 5000, 0, 'cancelled', 1, 0);
            INSERT INTO number_rules (kind, number, digits) VALUES ('block', '+1 900 555 0100', '19005550100');
            INSERT INTO blocked_attempts (number, at) VALUES ('+1 900 555 0100', 7000);
            INSERT INTO mwi VALUES ('acc', 2, 8);
            "#,
        )
        .unwrap();
        if version >= 2 {
            conn.execute_batch("INSERT INTO speed_dial VALUES (2, '+49 30 1234567', 'office');")
                .unwrap();
        }
    }

    /// Every table's columns and every index, in a comparable form.
    fn describe(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut stmt = conn
            .prepare(
                "SELECT type, name, tbl_name FROM sqlite_master \
                 WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .unwrap();
        let objects: Vec<(String, String, String)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        for (kind, name, table) in objects {
            out.push(format!("{kind} {name} on {table}"));
            let pragma = if kind == "table" {
                "table_xinfo"
            } else {
                "index_xinfo"
            };
            let mut stmt = conn
                .prepare(&format!("SELECT * FROM pragma_{pragma}(?1)"))
                .unwrap();
            let n = stmt.column_count();
            let rows = stmt
                .query_map([&name], |r| {
                    (0..n)
                        .map(|i| {
                            r.get::<_, rusqlite::types::Value>(i)
                                .map(|v| format!("{v:?}"))
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
                .unwrap();
            for row in rows {
                out.push(format!("  {}", row.unwrap().join(" ")));
            }
        }
        out
    }

    #[test]
    fn history_is_consistent() {
        assert_eq!(HISTORY.len(), VERSION as usize);
        assert_eq!(MIGRATIONS.len(), VERSION as usize - 1);
        assert_eq!(create_sql(VERSION), Some(SCHEMA_V2));
        assert_eq!(create_sql(0), None);
        assert!(tables_of(2).contains(&"speed_dial"));
        assert!(!tables_of(1).contains(&"speed_dial"));
    }

    #[test]
    fn test_all_upgrades() {
        let fresh = TempFile::new("fresh");
        let store = Store::open(&fresh.0).unwrap();
        let expected = store.read(|c| Ok(describe(c))).unwrap();
        drop(store);

        for version in 1..=VERSION {
            let file = TempFile::new(&format!("v{version}"));
            {
                // Exactly as that version created it.
                let conn = Connection::open(&file.0).unwrap();
                conn.pragma_update(None, "application_id", APPLICATION_ID)
                    .unwrap();
                conn.pragma_update(None, "journal_mode", "WAL").unwrap();
                conn.execute_batch(create_sql(version).unwrap()).unwrap();
                conn.pragma_update(None, "user_version", version).unwrap();
                insert_sample_data(&conn, version);
            }
            let store = Store::open(&file.0).unwrap();
            let (found, schema) = store
                .read(|c| {
                    let v: u32 = c.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                    Ok((v, describe(c)))
                })
                .unwrap();
            assert_eq!(found, VERSION, "from v{version}");
            assert_eq!(
                schema, expected,
                "schema upgraded from v{version} differs from a fresh one"
            );

            // The data survived and is readable through the public API.
            let page = store
                .read(|c| history::list(c, &history::HistoryQuery::default()))
                .unwrap();
            assert_eq!(page.entries.len(), 1);
            assert!(page.entries[0].missed);
            assert_eq!(store.read(history::missed_count).unwrap(), 1);
            let caller = store
                .read(|c| contacts::lookup_caller(c, "01701234567", "DE"))
                .unwrap()
                .unwrap();
            assert_eq!(caller.display_name, "Jürgen Weiß");
            let caller = store
                .read(|c| contacts::lookup_caller(c, "200", "DE"))
                .unwrap()
                .unwrap();
            assert_eq!(caller.display_name, "Reception");
            assert!(
                store
                    .read(|c| blocklist::is_blocked(c, "19005550100", "US"))
                    .unwrap()
            );
            assert_eq!(store.read(blocklist::blocked_attempts).unwrap().len(), 1);
            let mwi = store.read(|c| voicemail::mwi(c, "acc")).unwrap().unwrap();
            assert_eq!((mwi.new, mwi.old), (2, 8));
            // And the new features work on the upgraded file.
            store
                .write(|tx| speed_dial::set(tx, 3, "+1 202 555 0123", Some("US office")))
                .unwrap();
            let dials = store.read(speed_dial::list).unwrap();
            assert_eq!(dials.len(), if version >= 2 { 2 } else { 1 });
            drop(store);

            // Reopening an up-to-date file changes nothing.
            let store = Store::open(&file.0).unwrap();
            assert_eq!(store.read(|c| Ok(describe(c))).unwrap(), expected);
        }
    }

    #[test]
    fn failed_migration_rolls_back() {
        let file = TempFile::new("rollback");
        {
            let conn = Connection::open(&file.0).unwrap();
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .unwrap();
            conn.execute_batch(SCHEMA_V1).unwrap();
            // A table named like the index v2 creates makes the migration fail halfway,
            // after `speed_dial` was created.
            conn.execute_batch("CREATE TABLE calls_unseen_missed (x INTEGER);")
                .unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let mut conn = Connection::open(&file.0).unwrap();
        assert!(upgrade(&mut conn).is_err());
        let v: u32 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 1, "the version is unchanged after a failed upgrade");
        let speed_dial: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name = 'speed_dial'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            speed_dial, 0,
            "the first half of the migration was rolled back"
        );
    }
}
