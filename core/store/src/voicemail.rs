//! Voicemail state: the message-waiting counts of each account, from the
//! `message-summary` NOTIFY bodies of RFC 3842 (`Voice-Message: 2/8`), kept for the UI.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::StoreError;

/// Message-waiting counts of one account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Mwi {
    /// New (unheard) voice messages.
    pub new: u32,
    /// Old (heard, kept) voice messages.
    pub old: u32,
}

/// Stores the latest counts of `account` (replacing the previous ones).
pub fn set_mwi(tx: &Transaction<'_>, account: &str, new: u32, old: u32) -> Result<(), StoreError> {
    tx.execute(
        "INSERT INTO mwi (account, new_count, old_count) VALUES (?1, ?2, ?3) \
         ON CONFLICT (account) DO UPDATE SET new_count = excluded.new_count, \
         old_count = excluded.old_count",
        params![account, new, old],
    )?;
    Ok(())
}

/// The counts of `account`, `None` if no NOTIFY was received yet.
pub fn mwi(conn: &Connection, account: &str) -> Result<Option<Mwi>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT new_count, old_count FROM mwi WHERE account = ?1",
            [account],
            |r| {
                Ok(Mwi {
                    new: r.get(0)?,
                    old: r.get(1)?,
                })
            },
        )
        .optional()?)
}

/// Forgets the counts of `account` (account removed); `true` if there were some.
pub fn clear_mwi(tx: &Transaction<'_>, account: &str) -> Result<bool, StoreError> {
    Ok(tx.execute("DELETE FROM mwi WHERE account = ?1", [account])? > 0)
}
