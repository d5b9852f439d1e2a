//! On-device data of the Handset softphone: local and company contacts, call history,
//! blocklist, speed dial and voicemail (MWI) state, kept in one SQLite file.
//!
//! # Shape
//!
//! * [`Store`] owns the database file. It holds exactly **one writer** connection behind a
//!   mutex and a small pool of read-only connections. The file is in WAL mode, so readers
//!   see the last committed snapshot and never wait for the writer.
//! * Writer functions in the modules take `&rusqlite::Transaction` and are run through
//!   [`Store::write`], which opens an immediate transaction, commits on `Ok` and rolls back
//!   on `Err` (or on a panic). Reader functions take `&rusqlite::Connection` and are run
//!   through [`Store::read`] (a `Transaction` derefs to a `Connection`, so readers can be
//!   called inside a write too).
//! * [`schema`] has the schema version history and the upgrade path.
//! * The library never reads the clock: every timestamp is passed in by the caller as Unix
//!   milliseconds.
//!
//! ```no_run
//! use handset_store::{Store, history, history::{CallRecord, Direction}};
//! # fn main() -> Result<(), handset_store::StoreError> {
//! let store = Store::open("/data/handset.db")?;
//! store.write(|tx| {
//!     history::record_call(tx, &CallRecord {
//!         direction: Direction::Incoming,
//!         remote_number: "+4930123456".into(),
//!         remote_display_name: Some("Alice".into()),
//!         account: "alice@pbx.example.com".into(),
//!         started_at: 1_700_000_000_000,
//!         answered_at: None,
//!         ended_at: 1_700_000_020_000,
//!         end_reason: "cancelled".into(),
//!         answered_elsewhere: false,
//!         declined: false,
//!     })
//! })?;
//! let unseen = store.read(history::missed_count)?;
//! # let _ = unseen; Ok(()) }
//! ```
#![forbid(unsafe_code)]

pub mod blocklist;
pub mod contacts;
pub mod directory;
pub mod history;
pub mod number;
pub mod schema;
pub mod speed_dial;
mod text;
pub mod voicemail;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use contacts::{CallerId, ContactKind, ContactMatch, MatchRank};
pub use directory::{BearerToken, CompanyDirectory, DirectoryConfig, SyncError, SyncReport};
pub use number::{NormalizedNumber, normalize, numbers_match};

/// The value of `PRAGMA application_id` in every Handset database ("HSET" in ASCII).
///
/// A SQLite file with any other application id belongs to another application and is
/// never modified.
pub const APPLICATION_ID: i32 = 0x4853_4554;

/// How long a connection waits for a lock held by another process before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Read-only connections kept for reuse by [`Store::read`].
const MAX_IDLE_READERS: usize = 4;

/// Errors of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file is not a Handset database: not SQLite at all, or a SQLite database of
    /// another application. The file was not modified.
    #[error("not a Handset database: {reason}")]
    NotHandsetDatabase {
        /// What was found instead.
        reason: String,
    },
    /// The file is a Handset (or at least SQLite) database but it is damaged: truncated,
    /// malformed pages, tables missing. The file was not modified.
    #[error("the Handset database is corrupt: {reason}")]
    Corrupt {
        /// What is damaged.
        reason: String,
    },
    /// The database was written by a newer Handset with a schema this version does not
    /// know. The file was not modified.
    #[error("the database has schema version {found}, newer than the supported {supported}")]
    TooNew {
        /// `PRAGMA user_version` of the file.
        found: u32,
        /// [`schema::VERSION`].
        supported: u32,
    },
    /// A value passed in is out of range (for example a speed dial digit of 0).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// Reading the file failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The database path.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// Any other SQLite error.
    #[error("SQLite error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// The on-device database. `Send + Sync`: share it with an `Arc`.
///
/// One writer connection (behind a mutex: writes are serialized) and a pool of read-only
/// connections (reads run concurrently with each other and with the writer).
#[derive(Debug)]
pub struct Store {
    path: PathBuf,
    writer: Mutex<Connection>,
    readers: Mutex<Vec<Connection>>,
}

impl Store {
    /// Opens the Handset database at `path`, creating it if the file does not exist (or is
    /// empty), and upgrading an older schema to [`schema::VERSION`] in one transaction.
    ///
    /// Before anything is written the file is inspected read-only; it is left untouched
    /// (byte for byte) and an error is returned when it is
    /// * not SQLite, or SQLite of another application (other `application_id`, or no
    ///   Handset tables): [`StoreError::NotHandsetDatabase`];
    /// * damaged (truncated, failing `PRAGMA quick_check`, tables missing): [`StoreError::Corrupt`];
    /// * of a newer schema: [`StoreError::TooNew`].
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref().to_path_buf();
        let state = inspect(&path)?;
        let mut conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        if state == FileState::New {
            // Claim the file first, in its own (rollback-journal) transaction: a crash
            // after this point leaves a file that is recognizably ours at version 0.
            conn.pragma_update(None, "application_id", APPLICATION_ID)?;
        }
        let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::InvalidInput(format!(
                "WAL mode is not available for this file (journal_mode = {mode})"
            )));
        }
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        schema::upgrade(&mut conn)?;
        Ok(Store {
            path,
            writer: Mutex::new(conn),
            readers: Mutex::new(Vec::new()),
        })
    }

    /// The path this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in one immediate write transaction: commit if it returns `Ok`, roll back
    /// if it returns `Err` or panics. Writes are serialized.
    pub fn write<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let value = f(&tx)?;
        tx.commit()?;
        Ok(value)
    }

    /// Runs `f` on a read-only connection. It sees the last committed snapshot, does not
    /// wait for a running write, and cannot write (SQLite refuses).
    pub fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(conn) => conn,
            None => {
                let conn = Connection::open_with_flags(
                    &self.path,
                    OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
                )?;
                conn.busy_timeout(BUSY_TIMEOUT)?;
                conn
            }
        };
        let result = f(&conn);
        // A reader left inside a transaction would pin an old snapshot: drop it instead.
        if conn.is_autocommit() {
            let mut idle = lock(&self.readers);
            if idle.len() < MAX_IDLE_READERS {
                idle.push(conn);
            }
        }
        result
    }
}

/// Locks a mutex, recovering from poisoning: a panic inside [`Store::write`] rolled its
/// transaction back when the `Transaction` was dropped, so the connection is still sound.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Debug, PartialEq, Eq)]
enum FileState {
    /// Missing or zero-length: a new database is created.
    New,
    /// A Handset database at a version we can open (possibly needing an upgrade).
    Existing,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Looks at the file without modifying it and decides whether we may open it for writing.
fn inspect(path: &Path) -> Result<FileState, StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::New),
        Err(e) => return Err(io_err(e)),
    };
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Ok(FileState::New);
    }
    let mut header = Vec::with_capacity(100);
    file.by_ref()
        .take(100)
        .read_to_end(&mut header)
        .map_err(io_err)?;
    drop(file);
    if header.len() < SQLITE_MAGIC.len() || header[..16] != SQLITE_MAGIC[..] {
        return Err(StoreError::NotHandsetDatabase {
            reason: "the file is not a SQLite database".into(),
        });
    }
    if header.len() < 100 {
        return Err(StoreError::Corrupt {
            reason: format!("truncated SQLite header ({len} bytes)"),
        });
    }
    check_size(&header, len)?;

    let conn = open_for_inspection(path).map_err(classify)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(classify)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(classify)?;
    let tables = table_names(&conn).map_err(classify)?;
    if app_id != APPLICATION_ID {
        let reason = if tables.is_empty() {
            format!("SQLite database without tables and application_id {app_id:#x}")
        } else {
            format!(
                "SQLite database of another application (application_id {app_id:#x}, tables: {})",
                tables.join(", ")
            )
        };
        return Err(StoreError::NotHandsetDatabase { reason });
    }
    let version = u32::try_from(version).map_err(|_| StoreError::Corrupt {
        reason: format!("negative schema version {version}"),
    })?;
    if version > schema::VERSION {
        return Err(StoreError::TooNew {
            found: version,
            supported: schema::VERSION,
        });
    }
    let problems: Vec<String> = conn
        .prepare("PRAGMA quick_check(5)")
        .and_then(|mut stmt| {
            stmt.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(classify)?;
    if problems != ["ok"] {
        return Err(StoreError::Corrupt {
            reason: problems.join("; ").replace('\n', " "),
        });
    }
    schema::check_tables(version, &tables)?;
    Ok(FileState::Existing)
}

/// A read-only connection that creates nothing next to the file.
///
/// A plain read-only connection to a WAL-mode file creates `-wal` and `-shm` files. When
/// no `-wal` file exists, every committed page is in the main file and no other
/// connection has it open in WAL mode, so it is opened `immutable` (no locks, no
/// companion files). When a `-wal` exists (in use, or a crash left it) it must be read,
/// and the ordinary read-only open does that without touching the main file.
fn open_for_inspection(path: &Path) -> rusqlite::Result<Connection> {
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    match path.to_str() {
        Some(text) if !Path::new(&wal).exists() => {
            let uri = format!("file:{}?immutable=1", uri_escape(text));
            Connection::open_with_flags(uri, flags | OpenFlags::SQLITE_OPEN_URI)
        }
        _ => Connection::open_with_flags(path, flags),
    }
}

/// Percent-encodes a path for a `file:` URI (RFC 3986 unreserved characters and `/` kept).
fn uri_escape(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A file shorter than the page count in its header was truncated.
fn check_size(header: &[u8], len: u64) -> Result<(), StoreError> {
    let be32 = |at: usize| {
        u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
    };
    let raw_page_size = u32::from(u16::from_be_bytes([header[16], header[17]]));
    let page_size = match raw_page_size {
        1 => 65_536,
        n if n >= 512 && n.is_power_of_two() && n <= 32_768 => n,
        n => {
            return Err(StoreError::Corrupt {
                reason: format!("invalid page size {n}"),
            });
        }
    };
    let page_count = be32(28);
    // The in-header size is only valid when the change counter matches "version valid for".
    if page_count > 0 && be32(24) == be32(92) {
        let expected = u64::from(page_count) * u64::from(page_size);
        if len < expected {
            return Err(StoreError::Corrupt {
                reason: format!("truncated: {len} bytes, the header says {expected}"),
            });
        }
    }
    Ok(())
}

fn table_names(conn: &Connection) -> Result<Vec<String>, rusqlite::Error> {
    let mut stmt = conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(names)
}

/// Maps SQLite's "not a database" / "corrupt" codes to our errors.
fn classify(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase) | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
            StoreError::Corrupt {
                reason: e.to_string(),
            }
        }
        _ => StoreError::Sqlite(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_escaping() {
        assert_eq!(uri_escape("/tmp/a b/x?.db#1%"), "/tmp/a%20b/x%3F.db%231%25");
        assert_eq!(uri_escape("/data/ü"), "/data/%C3%BC");
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Store>();
    }
}
