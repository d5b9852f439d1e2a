//! Opening files: new, existing, and every kind of file that must be refused untouched;
//! concurrency of readers and the writer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::time::Duration;

use common::TempDb;
use handset_store::history::{self, CallRecord, Direction};
use handset_store::{APPLICATION_ID, Store, StoreError, schema, voicemail};
use rusqlite::Connection;

fn call(n: i64) -> CallRecord {
    CallRecord {
        direction: Direction::Outgoing,
        remote_number: format!("+4930123{n:04}"),
        remote_display_name: None,
        account: "acc".into(),
        started_at: 1_000 * n,
        answered_at: Some(1_000 * n + 100),
        ended_at: 1_000 * n + 500,
        end_reason: "hangup".into(),
        answered_elsewhere: false,
        declined: false,
    }
}

/// Opens `path`, expects an error, and proves the file is byte-for-byte unchanged.
fn refuse(db: &TempDb) -> StoreError {
    let before = std::fs::read(db.path()).unwrap();
    let err = Store::open(db.path()).expect_err("the file must be refused");
    let after = std::fs::read(db.path()).unwrap();
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut companion = db.path().as_os_str().to_owned();
        companion.push(suffix);
        assert!(
            !std::path::Path::new(&companion).exists(),
            "no {suffix} file was created next to the refused file ({err})"
        );
    }
    assert!(before == after, "the refused file was modified ({err})");
    // And a second try gives the same answer (nothing was half-initialized).
    let again = Store::open(db.path()).expect_err("still refused");
    assert_eq!(std::mem::discriminant(&err), std::mem::discriminant(&again));
    assert!(before == std::fs::read(db.path()).unwrap());
    err
}

#[test]
fn creates_a_new_database_with_wal_and_foreign_keys() {
    let db = TempDb::new("new");
    let store = Store::open(db.path()).unwrap();
    store
        .write(|tx| {
            let mode: String = tx.query_row("PRAGMA journal_mode", [], |r| r.get(0))?;
            let fk: bool = tx.query_row("PRAGMA foreign_keys", [], |r| r.get(0))?;
            let app: i32 = tx.query_row("PRAGMA application_id", [], |r| r.get(0))?;
            let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            assert_eq!(mode, "wal");
            assert!(fk, "foreign keys are on for the writer");
            assert_eq!(app, APPLICATION_ID);
            assert_eq!(version, schema::VERSION);
            Ok(())
        })
        .unwrap();
    store
        .write(|tx| history::record_call(tx, &call(1)))
        .unwrap();
    drop(store);
    // Reopen: the data is there.
    let store = Store::open(db.path()).unwrap();
    let page = store
        .read(|c| history::list(c, &history::HistoryQuery::default()))
        .unwrap();
    assert_eq!(page.entries.len(), 1);
}

#[test]
fn an_empty_file_becomes_a_new_database() {
    let db = TempDb::new("empty");
    std::fs::write(db.path(), b"").unwrap();
    let store = Store::open(db.path()).unwrap();
    store.write(|tx| voicemail::set_mwi(tx, "a", 1, 0)).unwrap();
}

#[test]
fn readers_cannot_write() {
    let db = TempDb::new("ro");
    let store = Store::open(db.path()).unwrap();
    let err = store
        .read(|c| Ok(c.execute("DELETE FROM calls", [])?))
        .unwrap_err();
    assert!(matches!(err, StoreError::Sqlite(_)), "{err}");
}

#[test]
fn a_failed_write_rolls_back() {
    let db = TempDb::new("rollback");
    let store = Store::open(db.path()).unwrap();
    let err = store
        .write(|tx| {
            history::record_call(tx, &call(1))?;
            Err::<(), _>(StoreError::InvalidInput("abort".into()))
        })
        .unwrap_err();
    assert!(matches!(err, StoreError::InvalidInput(_)));
    let page = store
        .read(|c| history::list(c, &history::HistoryQuery::default()))
        .unwrap();
    assert!(page.entries.is_empty());
}

#[test]
fn a_panicking_writer_rolls_back_and_the_store_stays_usable() {
    let db = TempDb::new("panic");
    let store = Arc::new(Store::open(db.path()).unwrap());
    let s = store.clone();
    let result = std::thread::spawn(move || {
        s.write(|tx| {
            history::record_call(tx, &call(1))?;
            panic!("writer bug");
            #[allow(unreachable_code)]
            Ok(())
        })
    })
    .join();
    assert!(result.is_err());
    store
        .write(|tx| history::record_call(tx, &call(2)))
        .unwrap();
    let page = store
        .read(|c| history::list(c, &history::HistoryQuery::default()))
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    assert_eq!(page.entries[0].started_at, 2_000);
}

// ---- the corrupt-file suite: every refused file is left byte-for-byte unchanged ----

#[test]
fn random_bytes_are_not_a_handset_database() {
    let db = TempDb::new("random");
    // Deterministic pseudo-random bytes (xorshift), 8 KiB.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let bytes: Vec<u8> = (0..8192)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(db.path(), &bytes).unwrap();
    let err = refuse(&db);
    assert!(
        matches!(err, StoreError::NotHandsetDatabase { .. }),
        "{err}"
    );
}

#[test]
fn a_text_file_is_not_a_handset_database() {
    let db = TempDb::new("text");
    std::fs::write(db.path(), "my notes\n").unwrap();
    let err = refuse(&db);
    assert!(
        matches!(err, StoreError::NotHandsetDatabase { .. }),
        "{err}"
    );
}

/// A real Handset database with some data, closed cleanly (WAL checkpointed).
fn real_database(db: &TempDb) -> Vec<u8> {
    let store = Store::open(db.path()).unwrap();
    store
        .write(|tx| {
            for n in 0..200 {
                history::record_call(tx, &call(n))?;
            }
            Ok(())
        })
        .unwrap();
    drop(store);
    std::fs::read(db.path()).unwrap()
}

#[test]
fn a_truncated_database_is_corrupt() {
    let db = TempDb::new("truncated");
    let bytes = real_database(&db);
    assert!(
        bytes.len() > 8192,
        "the sample database spans several pages"
    );
    for cut in [50, 100, 4096, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(db.path(), &bytes[..cut]).unwrap();
        let err = refuse(&db);
        assert!(
            matches!(err, StoreError::Corrupt { .. }),
            "cut at {cut}: {err}"
        );
    }
}

#[test]
fn a_damaged_page_is_corrupt() {
    let db = TempDb::new("damaged");
    let mut bytes = real_database(&db);
    // Overwrite the second page (the calls table's b-tree) with garbage.
    let page_size = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
    for b in &mut bytes[page_size..page_size * 2] {
        *b = 0xA5;
    }
    std::fs::write(db.path(), &bytes).unwrap();
    let err = refuse(&db);
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

#[test]
fn a_foreign_sqlite_database_is_refused() {
    let db = TempDb::new("foreign");
    {
        let conn = Connection::open(db.path()).unwrap();
        conn.execute_batch(
            "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
             INSERT INTO notes (body) VALUES ('do not touch');",
        )
        .unwrap();
    }
    let err = refuse(&db);
    match &err {
        StoreError::NotHandsetDatabase { reason } => assert!(reason.contains("notes"), "{reason}"),
        other => panic!("{other}"),
    }
}

#[test]
fn a_foreign_database_with_our_table_names_but_other_application_id_is_refused() {
    let db = TempDb::new("foreign-app-id");
    {
        let conn = Connection::open(db.path()).unwrap();
        conn.pragma_update(None, "application_id", 0x1234_5678)
            .unwrap();
        conn.execute_batch(schema::SCHEMA_V1).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
    }
    let err = refuse(&db);
    assert!(
        matches!(err, StoreError::NotHandsetDatabase { .. }),
        "{err}"
    );
}

#[test]
fn an_empty_sqlite_database_of_nobody_is_refused() {
    let db = TempDb::new("no-tables");
    {
        let conn = Connection::open(db.path()).unwrap();
        // Writes the header (page 1) but creates no table.
        conn.pragma_update(None, "user_version", 3).unwrap();
    }
    assert!(std::fs::metadata(db.path()).unwrap().len() > 0);
    let err = refuse(&db);
    assert!(
        matches!(err, StoreError::NotHandsetDatabase { .. }),
        "{err}"
    );
}

#[test]
fn a_newer_schema_version_is_too_new() {
    let db = TempDb::new("newer");
    drop(Store::open(db.path()).unwrap());
    {
        let conn = Connection::open(db.path()).unwrap();
        conn.pragma_update(None, "user_version", schema::VERSION + 1)
            .unwrap();
        conn.pragma_update(None, "journal_mode", "DELETE").unwrap();
    }
    let err = refuse(&db);
    match err {
        StoreError::TooNew { found, supported } => {
            assert_eq!((found, supported), (schema::VERSION + 1, schema::VERSION));
        }
        other => panic!("{other}"),
    }
}

#[test]
fn our_database_with_missing_tables_is_corrupt() {
    let db = TempDb::new("missing");
    {
        let conn = Connection::open(db.path()).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
        conn.execute_batch("CREATE TABLE calls (id INTEGER PRIMARY KEY);")
            .unwrap();
        conn.pragma_update(None, "user_version", schema::VERSION)
            .unwrap();
    }
    let err = refuse(&db);
    match &err {
        StoreError::Corrupt { reason } => assert!(reason.contains("local_contacts"), "{reason}"),
        other => panic!("{other}"),
    }
}

#[test]
fn a_directory_is_an_error_not_a_panic() {
    let dir = std::env::temp_dir();
    assert!(Store::open(&dir).is_err());
}

// ---- concurrency ----

#[test]
fn readers_run_while_the_writer_holds_a_transaction() {
    let db = TempDb::new("concurrent");
    let store = Arc::new(Store::open(db.path()).unwrap());
    store
        .write(|tx| history::record_call(tx, &call(1)))
        .unwrap();

    let (in_tx, writer_inside) = mpsc::channel();
    let (release, wait_release) = mpsc::channel::<()>();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            store
                .write(|tx| {
                    history::record_call(tx, &call(2))?;
                    in_tx.send(()).unwrap();
                    // Hold the write transaction open until the readers are done.
                    wait_release.recv_timeout(Duration::from_secs(10)).unwrap();
                    Ok(())
                })
                .unwrap();
        })
    };
    writer_inside.recv_timeout(Duration::from_secs(10)).unwrap();

    // Several readers at once, while the write is uncommitted: none blocks, all see the
    // committed snapshot (one call).
    let readers = 4;
    let barrier = Arc::new(Barrier::new(readers));
    let handles: Vec<_> = (0..readers)
        .map(|_| {
            let (store, barrier) = (store.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let mut counts = Vec::new();
                for _ in 0..20 {
                    let page = store
                        .read(|c| history::list(c, &history::HistoryQuery::default()))
                        .unwrap();
                    counts.push(page.entries.len());
                }
                counts
            })
        })
        .collect();
    for h in handles {
        let counts = h.join().unwrap();
        assert!(counts.iter().all(|&n| n == 1), "{counts:?}");
    }
    release.send(()).unwrap();
    writer.join().unwrap();
    let page = store
        .read(|c| history::list(c, &history::HistoryQuery::default()))
        .unwrap();
    assert_eq!(page.entries.len(), 2, "the write is visible after commit");
}

#[test]
fn concurrent_writers_and_readers_keep_every_write() {
    let db = TempDb::new("many");
    let store = Arc::new(Store::open(db.path()).unwrap());
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let store = store.clone();
            std::thread::spawn(move || {
                for n in 0..50 {
                    store
                        .write(|tx| history::record_call(tx, &call(w * 1000 + n)))
                        .unwrap();
                }
            })
        })
        .collect();
    let reader = {
        let store = store.clone();
        std::thread::spawn(move || {
            let mut last = 0;
            for _ in 0..100 {
                let n = store
                    .read(|c| {
                        Ok(c.query_row("SELECT count(*) FROM calls", [], |r| r.get::<_, i64>(0))?)
                    })
                    .unwrap();
                assert!(n >= last, "a reader never sees the count go down");
                last = n;
            }
        })
    };
    for w in writers {
        w.join().unwrap();
    }
    reader.join().unwrap();
    let n = store
        .read(|c| Ok(c.query_row("SELECT count(*) FROM calls", [], |r| r.get::<_, i64>(0))?))
        .unwrap();
    assert_eq!(n, 150);
}

#[test]
fn a_path_with_spaces_and_uri_characters_reopens() {
    let dir = std::env::temp_dir().join(format!("handset store #{}% ?x", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("data base.db");
    {
        let store = Store::open(&path).unwrap();
        store.write(|tx| voicemail::set_mwi(tx, "a", 1, 2)).unwrap();
    }
    let store = Store::open(&path).unwrap();
    let mwi = store.read(|c| voicemail::mwi(c, "a")).unwrap().unwrap();
    assert_eq!((mwi.new, mwi.old), (1, 2));
    drop(store);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_second_store_on_an_open_file_sees_its_data() {
    // Like an app extension opening the database while the app has it open (the -wal
    // file exists and holds data not yet checkpointed).
    let db = TempDb::new("two-stores");
    let first = Store::open(db.path()).unwrap();
    first
        .write(|tx| history::record_call(tx, &call(1)))
        .unwrap();
    let second = Store::open(db.path()).unwrap();
    let page = second
        .read(|c| history::list(c, &history::HistoryQuery::default()))
        .unwrap();
    assert_eq!(page.entries.len(), 1);
    second
        .write(|tx| history::record_call(tx, &call(2)))
        .unwrap();
    let n = first
        .read(|c| history::list(c, &history::HistoryQuery::default()))
        .unwrap()
        .entries
        .len();
    assert_eq!(n, 2);
}

#[test]
fn a_file_claimed_but_never_initialized_is_initialized() {
    // A crash during the very first open, after the application id was written and
    // before the schema transaction committed, leaves exactly this file.
    let db = TempDb::new("claimed");
    {
        let conn = Connection::open(db.path()).unwrap();
        conn.pragma_update(None, "application_id", APPLICATION_ID)
            .unwrap();
    }
    let store = Store::open(db.path()).unwrap();
    store.write(|tx| voicemail::set_mwi(tx, "a", 0, 0)).unwrap();
}
