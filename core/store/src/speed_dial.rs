//! Speed dial: digits 1–9, each bound to a number and an optional label
//! (a long press on the digit in the dial pad calls it). Schema version 2.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::StoreError;

/// A speed dial entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpeedDial {
    /// 1..=9.
    pub digit: u8,
    /// The number to call.
    pub number: String,
    /// Label to show ("Voicemail", "Office").
    pub label: Option<String>,
}

fn check(digit: u8) -> Result<(), StoreError> {
    if (1..=9).contains(&digit) {
        Ok(())
    } else {
        Err(StoreError::InvalidInput(format!(
            "speed dial digit {digit} is not in 1..=9"
        )))
    }
}

/// Binds `digit` (1..=9) to `number`, replacing any previous entry.
pub fn set(
    tx: &Transaction<'_>,
    digit: u8,
    number: &str,
    label: Option<&str>,
) -> Result<(), StoreError> {
    check(digit)?;
    if number.trim().is_empty() {
        return Err(StoreError::InvalidInput("empty speed dial number".into()));
    }
    tx.execute(
        "INSERT INTO speed_dial (digit, number, label) VALUES (?1, ?2, ?3) \
         ON CONFLICT (digit) DO UPDATE SET number = excluded.number, label = excluded.label",
        params![digit, number.trim(), label],
    )?;
    Ok(())
}

/// Removes the entry of `digit`; `true` if there was one.
pub fn clear(tx: &Transaction<'_>, digit: u8) -> Result<bool, StoreError> {
    check(digit)?;
    Ok(tx.execute("DELETE FROM speed_dial WHERE digit = ?1", [digit])? > 0)
}

/// The entry of `digit`.
pub fn get(conn: &Connection, digit: u8) -> Result<Option<SpeedDial>, StoreError> {
    check(digit)?;
    Ok(conn
        .query_row(
            "SELECT digit, number, label FROM speed_dial WHERE digit = ?1",
            [digit],
            read,
        )
        .optional()?)
}

/// All entries by digit.
pub fn list(conn: &Connection) -> Result<Vec<SpeedDial>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT digit, number, label FROM speed_dial ORDER BY digit")?;
    let rows = stmt.query_map([], read)?.collect::<Result<_, _>>()?;
    Ok(rows)
}

fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<SpeedDial> {
    Ok(SpeedDial {
        digit: r.get(0)?,
        number: r.get(1)?,
        label: r.get(2)?,
    })
}
