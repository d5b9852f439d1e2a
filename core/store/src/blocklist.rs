//! Blocked and allowed numbers, and the log of rejected call attempts.
//!
//! Numbers are stored as written and compared with the matching rule of
//! [`crate::number`] at check time, normalized with the caller's `default_country`.
//! An allowed number overrides a blocked one (for example: block a whole company's
//! number written once, allow the one colleague).

use rusqlite::{Connection, Transaction, params};

use crate::StoreError;
use crate::number::{index_digits, normalize, numbers_match};

/// Block or allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Calls from this number are rejected.
    Block,
    /// Calls from this number are never rejected, even if it is also blocked.
    Allow,
}

impl RuleKind {
    fn as_str(self) -> &'static str {
        match self {
            RuleKind::Block => "block",
            RuleKind::Allow => "allow",
        }
    }
}

/// A blocked or allowed number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRule {
    /// Row id.
    pub id: i64,
    /// Block or allow.
    pub kind: RuleKind,
    /// The number as the user entered it.
    pub number: String,
}

/// A rejected call attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockedAttempt {
    /// Row id.
    pub id: i64,
    /// The caller's number.
    pub number: String,
    /// When (Unix ms).
    pub at: i64,
}

/// Blocks `number`. Blocking the same text twice is a no-op.
pub fn block(tx: &Transaction<'_>, number: &str) -> Result<(), StoreError> {
    add(tx, RuleKind::Block, number)
}

/// Allows `number` (overrides blocks). Allowing the same text twice is a no-op.
pub fn allow(tx: &Transaction<'_>, number: &str) -> Result<(), StoreError> {
    add(tx, RuleKind::Allow, number)
}

/// Removes every block rule matching `number`; returns how many.
pub fn unblock(
    tx: &Transaction<'_>,
    number: &str,
    default_country: &str,
) -> Result<usize, StoreError> {
    remove(tx, RuleKind::Block, number, default_country)
}

/// Removes every allow rule matching `number`; returns how many.
pub fn unallow(
    tx: &Transaction<'_>,
    number: &str,
    default_country: &str,
) -> Result<usize, StoreError> {
    remove(tx, RuleKind::Allow, number, default_country)
}

/// Removes one rule by id; `true` if it existed.
pub fn remove_rule(tx: &Transaction<'_>, id: i64) -> Result<bool, StoreError> {
    Ok(tx.execute("DELETE FROM number_rules WHERE id = ?1", [id])? > 0)
}

/// All rules, blocks first, in the order they were added.
pub fn rules(conn: &Connection) -> Result<Vec<NumberRule>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id, kind, number FROM number_rules ORDER BY kind = 'allow', id")?;
    let rows = stmt
        .query_map([], |r| {
            let kind: String = r.get(1)?;
            Ok(NumberRule {
                id: r.get(0)?,
                kind: if kind == "allow" {
                    RuleKind::Allow
                } else {
                    RuleKind::Block
                },
                number: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Whether a call from `number` is to be rejected: some block rule matches it and no
/// allow rule does.
pub fn is_blocked(
    conn: &Connection,
    number: &str,
    default_country: &str,
) -> Result<bool, StoreError> {
    let wanted = normalize(number, default_country);
    let mut blocked = false;
    for rule in rules(conn)? {
        if numbers_match(&wanted, &normalize(&rule.number, default_country)) {
            match rule.kind {
                RuleKind::Allow => return Ok(false),
                RuleKind::Block => blocked = true,
            }
        }
    }
    Ok(blocked)
}

/// Logs a rejected call attempt at `at` (Unix ms); returns its id.
pub fn log_blocked_attempt(tx: &Transaction<'_>, number: &str, at: i64) -> Result<i64, StoreError> {
    tx.execute(
        "INSERT INTO blocked_attempts (number, at) VALUES (?1, ?2)",
        params![number, at],
    )?;
    Ok(tx.last_insert_rowid())
}

/// The rejected attempts, newest first.
pub fn blocked_attempts(conn: &Connection) -> Result<Vec<BlockedAttempt>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT id, number, at FROM blocked_attempts ORDER BY at DESC, id DESC")?;
    let rows = stmt
        .query_map([], |r| {
            Ok(BlockedAttempt {
                id: r.get(0)?,
                number: r.get(1)?,
                at: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Clears the log of rejected attempts; returns how many were removed.
pub fn clear_blocked_attempts(tx: &Transaction<'_>) -> Result<usize, StoreError> {
    Ok(tx.execute("DELETE FROM blocked_attempts", [])?)
}

fn add(tx: &Transaction<'_>, kind: RuleKind, number: &str) -> Result<(), StoreError> {
    let number = number.trim();
    let digits = index_digits(number);
    if digits.is_empty() {
        return Err(StoreError::InvalidInput("a number without digits".into()));
    }
    tx.execute(
        "INSERT OR IGNORE INTO number_rules (kind, number, digits) VALUES (?1, ?2, ?3)",
        params![kind.as_str(), number, digits],
    )?;
    Ok(())
}

fn remove(
    tx: &Transaction<'_>,
    kind: RuleKind,
    number: &str,
    country: &str,
) -> Result<usize, StoreError> {
    let wanted = normalize(number, country);
    let mut removed = 0;
    for rule in rules(tx)?.into_iter().filter(|r| r.kind == kind) {
        if rule.number == number.trim() || numbers_match(&wanted, &normalize(&rule.number, country))
        {
            removed += usize::from(remove_rule(tx, rule.id)?);
        }
    }
    Ok(removed)
}
