//! Call history.
//!
//! Timestamps are Unix milliseconds passed in by the caller; the library never reads the
//! clock. A call is **missed** when it was incoming and never answered here nor elsewhere
//! (a CANCEL with `Reason: SIP;cause=200;text="Call completed elsewhere"`, RFC 3326, means
//! another device of the user answered: not missed). That includes calls the caller
//! cancelled and calls that timed out ringing, but not calls the user declined here. Missed
//! calls start unseen (the badge); every other call is recorded as seen.

use rusqlite::{Connection, Transaction, params};

use crate::StoreError;

/// Direction of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The remote party called us.
    Incoming,
    /// We called the remote party.
    Outgoing,
}

impl Direction {
    fn as_str(self) -> &'static str {
        match self {
            Direction::Incoming => "incoming",
            Direction::Outgoing => "outgoing",
        }
    }
}

/// A finished call, as the phone layer reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRecord {
    /// Incoming or outgoing.
    pub direction: Direction,
    /// Remote number or URI as signaled.
    pub remote_number: String,
    /// Remote display name as signaled, if any.
    pub remote_display_name: Option<String>,
    /// The account (AOR) the call was on.
    pub account: String,
    /// When it started ringing / was dialed (Unix ms).
    pub started_at: i64,
    /// When it was answered (Unix ms), if it was.
    pub answered_at: Option<i64>,
    /// When it ended (Unix ms).
    pub ended_at: i64,
    /// Why it ended ("remote hangup", "busy", "cancelled", "486 Busy Here", …).
    pub end_reason: String,
    /// An incoming call answered on another device of the user (not missed).
    pub answered_elsewhere: bool,
    /// An incoming call the user declined here (not missed: they saw it).
    pub declined: bool,
}

/// A stored call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEntry {
    /// Row id, for [`delete`].
    pub id: i64,
    /// Incoming or outgoing.
    pub direction: Direction,
    /// Remote number or URI.
    pub remote_number: String,
    /// Remote display name.
    pub remote_display_name: Option<String>,
    /// Account.
    pub account: String,
    /// Start (Unix ms).
    pub started_at: i64,
    /// Answer (Unix ms).
    pub answered_at: Option<i64>,
    /// End (Unix ms).
    pub ended_at: i64,
    /// Talk time in ms: `ended_at - answered_at`, 0 when not answered.
    pub duration_ms: i64,
    /// Why it ended.
    pub end_reason: String,
    /// Missed (see the module docs).
    pub missed: bool,
    /// Seen by the user (always true for calls that are not missed).
    pub seen: bool,
}

/// Where a page of history starts: strictly older than this entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryCursor {
    /// `started_at` of the last entry of the previous page.
    pub started_at: i64,
    /// `id` of the last entry of the previous page.
    pub id: i64,
}

/// A history query: newest first, keyset paging (stable while new calls are added).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryQuery {
    /// Page size (1..=1000; 0 is taken as 1).
    pub limit: u32,
    /// Continue after this entry (from [`HistoryPage::next`]).
    pub before: Option<HistoryCursor>,
    /// Only missed calls.
    pub missed_only: bool,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        HistoryQuery {
            limit: 50,
            before: None,
            missed_only: false,
        }
    }
}

/// One page of history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Newest first.
    pub entries: Vec<CallEntry>,
    /// Cursor for the next (older) page, `None` after the last page.
    pub next: Option<HistoryCursor>,
}

/// Records a finished call and returns its id. Fails with
/// [`StoreError::InvalidInput`] when `ended_at < started_at` or `answered_at` lies
/// outside `started_at..=ended_at`.
pub fn record_call(tx: &Transaction<'_>, call: &CallRecord) -> Result<i64, StoreError> {
    if call.ended_at < call.started_at {
        return Err(StoreError::InvalidInput(format!(
            "call ended ({}) before it started ({})",
            call.ended_at, call.started_at
        )));
    }
    if let Some(answered) = call.answered_at
        && !(call.started_at..=call.ended_at).contains(&answered)
    {
        return Err(StoreError::InvalidInput(format!(
            "call answered at {answered}, outside {}..={}",
            call.started_at, call.ended_at
        )));
    }
    let duration = call.answered_at.map_or(0, |a| call.ended_at - a);
    let missed = call.direction == Direction::Incoming
        && call.answered_at.is_none()
        && !call.answered_elsewhere
        && !call.declined;
    tx.execute(
        "INSERT INTO calls (direction, remote_number, remote_display_name, account, started_at, \
         answered_at, ended_at, duration_ms, end_reason, missed, seen) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            call.direction.as_str(),
            call.remote_number,
            call.remote_display_name,
            call.account,
            call.started_at,
            call.answered_at,
            call.ended_at,
            duration,
            call.end_reason,
            missed,
            !missed,
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Number of missed calls not yet seen (the badge).
pub fn missed_count(conn: &Connection) -> Result<u32, StoreError> {
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM calls WHERE missed = 1 AND seen = 0",
        [],
        |r| r.get(0),
    )?;
    Ok(u32::try_from(n).unwrap_or(u32::MAX))
}

/// Marks every missed call seen; returns how many changed.
pub fn mark_missed_seen(tx: &Transaction<'_>) -> Result<usize, StoreError> {
    Ok(tx.execute(
        "UPDATE calls SET seen = 1 WHERE missed = 1 AND seen = 0",
        [],
    )?)
}

/// Deletes one call; `true` if it existed.
pub fn delete(tx: &Transaction<'_>, id: i64) -> Result<bool, StoreError> {
    Ok(tx.execute("DELETE FROM calls WHERE id = ?1", [id])? > 0)
}

/// Deletes the whole history; returns how many calls were deleted.
pub fn delete_all(tx: &Transaction<'_>) -> Result<usize, StoreError> {
    Ok(tx.execute("DELETE FROM calls", [])?)
}

/// One call by id.
pub fn get(conn: &Connection, id: i64) -> Result<Option<CallEntry>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("{SELECT} WHERE id = ?1"))?;
    let mut rows = stmt.query_map([id], read_entry)?;
    Ok(rows.next().transpose()?)
}

/// A page of history, newest first.
pub fn list(conn: &Connection, query: &HistoryQuery) -> Result<HistoryPage, StoreError> {
    let limit = query.limit.clamp(1, 1000);
    let (before_at, before_id) = query
        .before
        .map_or((i64::MAX, i64::MAX), |c| (c.started_at, c.id));
    let mut stmt = conn.prepare_cached(&format!(
        "{SELECT} WHERE (started_at, id) < (?1, ?2) AND (?3 = 0 OR missed = 1) \
         ORDER BY started_at DESC, id DESC LIMIT ?4"
    ))?;
    let entries = stmt
        .query_map(
            params![
                before_at,
                before_id,
                query.missed_only,
                i64::from(limit) + 1
            ],
            read_entry,
        )?
        .collect::<Result<Vec<_>, _>>()?;
    let mut entries = entries;
    let next = if entries.len() > limit as usize {
        entries.truncate(limit as usize);
        entries.last().map(|e| HistoryCursor {
            started_at: e.started_at,
            id: e.id,
        })
    } else {
        None
    };
    Ok(HistoryPage { entries, next })
}

const SELECT: &str = "SELECT id, direction, remote_number, remote_display_name, account, \
    started_at, answered_at, ended_at, duration_ms, end_reason, missed, seen FROM calls";

fn read_entry(r: &rusqlite::Row<'_>) -> rusqlite::Result<CallEntry> {
    let direction: String = r.get(1)?;
    Ok(CallEntry {
        id: r.get(0)?,
        direction: if direction == "incoming" {
            Direction::Incoming
        } else {
            Direction::Outgoing
        },
        remote_number: r.get(2)?,
        remote_display_name: r.get(3)?,
        account: r.get(4)?,
        started_at: r.get(5)?,
        answered_at: r.get(6)?,
        ended_at: r.get(7)?,
        duration_ms: r.get(8)?,
        end_reason: r.get(9)?,
        missed: r.get(10)?,
        seen: r.get(11)?,
    })
}
