//! Local contacts (imported from the OS address book), company contacts (the PBX
//! directory, see [`crate::directory`]), unified search and caller-ID lookup.
//!
//! Numbers are stored as written, with their digits and last 4 digits (indexed) beside
//! them. Normalization happens at query time with the caller's `default_country`, so a
//! change of country (travel, SIM swap) needs no re-import.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use crate::number::{self, Strength, index_digits, match_strength, normalize, tail};
use crate::text::{fold, like_escape};
use crate::{Store, StoreError};

/// At most this many results are returned by [`search`].
pub const SEARCH_LIMIT: usize = 100;

/// A contact as the platform address book delivers it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceContact {
    /// Stable identifier in the OS address book (Android `CONTACT_ID`/lookup key, iOS
    /// `CNContact.identifier`).
    pub source_id: String,
    /// Name to show.
    pub display_name: String,
    /// `(label, number)` pairs, e.g. `("mobile", "+49 170 1234567")`.
    pub numbers: Vec<(String, String)>,
    /// E-mail addresses.
    pub emails: Vec<String>,
    /// Company / organization.
    pub company: Option<String>,
}

/// A failure of the platform address book (permission denied, provider crashed, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("contacts source failed: {message}")]
pub struct SourceError {
    /// What went wrong, from the platform.
    pub message: String,
}

/// The platform address book, implemented by the Kotlin/Swift shells.
pub trait ContactsSource: Send + Sync {
    /// Every contact the user allows the app to see (a full snapshot, not a delta).
    fn contacts(&self) -> Result<Vec<SourceContact>, SourceError>;
}

/// What an import or sync changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ImportReport {
    /// New contacts.
    pub added: usize,
    /// Contacts whose name, numbers, e-mails or company changed.
    pub updated: usize,
    /// Contacts removed.
    pub deleted: usize,
}

/// Errors of [`import_local`].
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The address book failed; nothing was changed.
    #[error(transparent)]
    Source(#[from] SourceError),
    /// Writing failed; nothing was changed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Local or company contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ContactKind {
    /// From the phone's address book.
    Local,
    /// From the PBX company directory.
    Company,
}

/// How well a search result matched; best first in `Ord`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MatchRank {
    /// The whole name, or the number by the matching rule / all its digits.
    Exact,
    /// The start of the name or of one of its words, or the leading digits.
    Prefix,
    /// Anywhere inside the name or the digits.
    Substring,
}

/// One search result: a contact and one of its numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContactMatch {
    /// Local or company.
    pub kind: ContactKind,
    /// `source_id` of a local contact, directory id of a company contact.
    pub id: String,
    /// Name to show.
    pub display_name: String,
    /// The number (as stored), `None` for a contact without numbers.
    pub number: Option<String>,
    /// Its label ("mobile", "work", …).
    pub label: Option<String>,
    /// How well it matched.
    pub rank: MatchRank,
}

/// Who is calling.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerId {
    /// Name to show.
    pub display_name: String,
    /// Local or company.
    pub kind: ContactKind,
    /// `source_id` or directory id.
    pub id: String,
    /// Label of the matching number.
    pub label: String,
}

/// A stored local contact.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalContact {
    /// The contact as imported.
    pub contact: SourceContact,
}

/// A company directory entry.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompanyContact {
    /// Id in the directory.
    pub id: String,
    /// Name to show.
    pub display_name: String,
    /// `(label, number)` pairs.
    pub numbers: Vec<(String, String)>,
    /// Department, if the PBX has one.
    pub department: Option<String>,
    /// E-mail addresses.
    pub emails: Vec<String>,
}

/// Result of a single upsert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Inserted.
    Added,
    /// Existed with other content and was rewritten.
    Updated,
    /// Existed with the same content.
    Unchanged,
}

/// Reads the address book, then applies it as a full sync in one transaction (see
/// [`apply_local_contacts`]). The source is read before the writer lock is taken.
pub fn import_local(
    store: &Store,
    source: &dyn ContactsSource,
) -> Result<ImportReport, ImportError> {
    let contacts = source.contacts()?;
    Ok(store.write(|tx| apply_local_contacts(tx, &contacts))?)
}

/// Full sync of the local contacts: inserts new `source_id`s, rewrites changed ones and
/// deletes those not in `contacts`. Two entries with the same `source_id` are an error.
pub fn apply_local_contacts(
    tx: &Transaction<'_>,
    contacts: &[SourceContact],
) -> Result<ImportReport, StoreError> {
    let mut seen = HashSet::new();
    for c in contacts {
        if !seen.insert(c.source_id.as_str()) {
            return Err(StoreError::InvalidInput(format!(
                "duplicate contact source_id {:?}",
                c.source_id
            )));
        }
    }
    let mut report = ImportReport::default();
    let existing: Vec<(i64, String)> = {
        let mut stmt = tx.prepare("SELECT id, source_id FROM local_contacts")?;
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    for (id, source_id) in existing {
        if !seen.contains(source_id.as_str()) {
            tx.execute("DELETE FROM local_contacts WHERE id = ?1", [id])?;
            report.deleted += 1;
        }
    }
    for c in contacts {
        match upsert_local(tx, c)? {
            Change::Added => report.added += 1,
            Change::Updated => report.updated += 1,
            Change::Unchanged => {}
        }
    }
    Ok(report)
}

fn upsert_local(tx: &Transaction<'_>, c: &SourceContact) -> Result<Change, StoreError> {
    let emails = join_emails(&c.emails);
    let current = tx
        .query_row(
            "SELECT id, display_name, company, emails FROM local_contacts WHERE source_id = ?1",
            [&c.source_id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    let change = match current {
        Some((id, name, company, old_emails)) => {
            if name == c.display_name
                && company == c.company
                && old_emails == emails
                && numbers_of(tx, "local_numbers", id)? == c.numbers
            {
                return Ok(Change::Unchanged);
            }
            tx.execute(
                "UPDATE local_contacts SET display_name = ?2, name_key = ?3, company = ?4, emails = ?5 \
                 WHERE id = ?1",
                params![id, c.display_name, fold(&c.display_name), c.company, emails],
            )?;
            tx.execute("DELETE FROM local_numbers WHERE contact_id = ?1", [id])?;
            insert_numbers(tx, "local_numbers", id, &c.numbers)?;
            Change::Updated
        }
        None => {
            tx.execute(
                "INSERT INTO local_contacts (source_id, display_name, name_key, company, emails) \
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![
                    c.source_id,
                    c.display_name,
                    fold(&c.display_name),
                    c.company,
                    emails
                ],
            )?;
            insert_numbers(tx, "local_numbers", tx.last_insert_rowid(), &c.numbers)?;
            Change::Added
        }
    };
    Ok(change)
}

/// Inserts or rewrites a company directory entry of `directory`.
pub fn upsert_company(
    tx: &Transaction<'_>,
    directory: &str,
    c: &CompanyContact,
) -> Result<Change, StoreError> {
    let emails = join_emails(&c.emails);
    let current = tx
        .query_row(
            "SELECT id, display_name, department, emails FROM company_contacts \
             WHERE directory = ?1 AND remote_id = ?2",
            [directory, &c.id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    let change =
        match current {
            Some((id, name, department, old_emails)) => {
                if name == c.display_name
                    && department == c.department
                    && old_emails == emails
                    && numbers_of(tx, "company_numbers", id)? == c.numbers
                {
                    return Ok(Change::Unchanged);
                }
                tx.execute(
                "UPDATE company_contacts SET display_name = ?2, name_key = ?3, department = ?4, \
                 emails = ?5 WHERE id = ?1",
                params![id, c.display_name, fold(&c.display_name), c.department, emails],
            )?;
                tx.execute("DELETE FROM company_numbers WHERE contact_id = ?1", [id])?;
                insert_numbers(tx, "company_numbers", id, &c.numbers)?;
                Change::Updated
            }
            None => {
                tx.execute(
                    "INSERT INTO company_contacts (directory, remote_id, display_name, name_key, \
                 department, emails) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        directory,
                        c.id,
                        c.display_name,
                        fold(&c.display_name),
                        c.department,
                        emails
                    ],
                )?;
                insert_numbers(tx, "company_numbers", tx.last_insert_rowid(), &c.numbers)?;
                Change::Added
            }
        };
    Ok(change)
}

/// Deletes a company directory entry; `true` if it existed.
pub fn delete_company(tx: &Transaction<'_>, directory: &str, id: &str) -> Result<bool, StoreError> {
    let n = tx.execute(
        "DELETE FROM company_contacts WHERE directory = ?1 AND remote_id = ?2",
        [directory, id],
    )?;
    Ok(n > 0)
}

/// Deletes every entry of `directory` whose id is not in `keep`; returns how many.
pub fn retain_company(
    tx: &Transaction<'_>,
    directory: &str,
    keep: &HashSet<String>,
) -> Result<usize, StoreError> {
    let ids: Vec<(i64, String)> = {
        let mut stmt =
            tx.prepare("SELECT id, remote_id FROM company_contacts WHERE directory = ?1")?;
        stmt.query_map([directory], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?
    };
    let mut deleted = 0;
    for (row, id) in ids {
        if !keep.contains(&id) {
            tx.execute("DELETE FROM company_contacts WHERE id = ?1", [row])?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

/// Removes a whole company directory and its sync state (account removed).
pub fn clear_company(tx: &Transaction<'_>, directory: &str) -> Result<usize, StoreError> {
    tx.execute(
        "DELETE FROM directory_state WHERE directory = ?1",
        [directory],
    )?;
    Ok(tx.execute(
        "DELETE FROM company_contacts WHERE directory = ?1",
        [directory],
    )?)
}

/// A local contact by `source_id`.
pub fn local_contact(
    conn: &Connection,
    source_id: &str,
) -> Result<Option<LocalContact>, StoreError> {
    let row = conn
        .query_row(
            "SELECT id, display_name, company, emails FROM local_contacts WHERE source_id = ?1",
            [source_id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, Option<String>>(2)?,
                    r.get::<_, String>(3)?,
                ))
            },
        )
        .optional()?;
    let Some((id, display_name, company, emails)) = row else {
        return Ok(None);
    };
    Ok(Some(LocalContact {
        contact: SourceContact {
            source_id: source_id.to_string(),
            display_name,
            numbers: numbers_of(conn, "local_numbers", id)?,
            emails: split_emails(&emails),
            company,
        },
    }))
}

/// Number of local contacts.
pub fn local_count(conn: &Connection) -> Result<usize, StoreError> {
    let n: i64 = conn.query_row("SELECT count(*) FROM local_contacts", [], |r| r.get(0))?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Every entry of a company directory, ordered by name.
pub fn company_contacts(
    conn: &Connection,
    directory: &str,
) -> Result<Vec<CompanyContact>, StoreError> {
    let rows: Vec<(i64, CompanyContact, String)> = {
        let mut stmt = conn.prepare(
            "SELECT id, remote_id, display_name, department, emails FROM company_contacts \
             WHERE directory = ?1 ORDER BY name_key, remote_id",
        )?;
        stmt.query_map([directory], |r| {
            Ok((
                r.get(0)?,
                CompanyContact {
                    id: r.get(1)?,
                    display_name: r.get(2)?,
                    numbers: Vec::new(),
                    department: r.get(3)?,
                    emails: Vec::new(),
                },
                r.get(4)?,
            ))
        })?
        .collect::<Result<_, _>>()?
    };
    rows.into_iter()
        .map(|(row, mut c, emails)| {
            c.numbers = numbers_of(conn, "company_numbers", row)?;
            c.emails = split_emails(&emails);
            Ok(c)
        })
        .collect()
}

/// Unified search over local and company contacts, best first, at most [`SEARCH_LIMIT`].
///
/// * A query of digits and dial punctuation with at least 3 digits searches numbers:
///   [`MatchRank::Exact`] when the number matches by the matching rule (normalized with
///   `default_country`) or has exactly these digits, [`MatchRank::Prefix`] when its digits,
///   or its national digits, start with them (a typed trunk or international prefix is
///   ignored: "0170" finds "+49 170 …" in DE), [`MatchRank::Substring`] when they contain them.
/// * Any other query searches names, case-insensitively and accent-folded ("muller" finds
///   "Müller"): exact name, then a name or word starting with the query, then substring.
///   One result per number of each contact (a contact without numbers gives one result).
///
/// Ties are ordered local before company, then by name.
pub fn search(
    conn: &Connection,
    query: &str,
    default_country: &str,
) -> Result<Vec<ContactMatch>, StoreError> {
    let query = query.trim();
    let digits: String = query.chars().filter(char::is_ascii_digit).collect();
    let dialable = query
        .chars()
        .all(|c| c.is_ascii_digit() || " +-().*#/".contains(c));
    let mut results = if dialable && digits.len() >= 3 {
        search_numbers(conn, query, &digits, default_country)?
    } else {
        let key = fold(query);
        if key.is_empty() {
            return Ok(Vec::new());
        }
        search_names(conn, &key)?
    };
    results.sort_by(|a, b| {
        (a.rank, a.kind, fold(&a.display_name), &a.number).cmp(&(
            b.rank,
            b.kind,
            fold(&b.display_name),
            &b.number,
        ))
    });
    results.truncate(SEARCH_LIMIT);
    Ok(results)
}

/// One row of the number/name queries.
struct Row {
    kind: ContactKind,
    id: String,
    display_name: String,
    name_key: String,
    label: Option<String>,
    number: Option<String>,
    digits: Option<String>,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    let kind: String = r.get(0)?;
    Ok(Row {
        kind: if kind == "local" {
            ContactKind::Local
        } else {
            ContactKind::Company
        },
        id: r.get(1)?,
        display_name: r.get(2)?,
        name_key: r.get(3)?,
        label: r.get(4)?,
        number: r.get(5)?,
        digits: r.get(6)?,
    })
}

fn search_names(conn: &Connection, key: &str) -> Result<Vec<ContactMatch>, StoreError> {
    let pattern = format!("%{}%", like_escape(key));
    let mut stmt = conn.prepare(
        "SELECT 'local', c.source_id, c.display_name, c.name_key, n.label, n.number, n.digits \
           FROM local_contacts c LEFT JOIN local_numbers n ON n.contact_id = c.id \
          WHERE c.name_key LIKE ?1 ESCAPE '\\' \
         UNION ALL \
         SELECT 'company', c.remote_id, c.display_name, c.name_key, n.label, n.number, n.digits \
           FROM company_contacts c LEFT JOIN company_numbers n ON n.contact_id = c.id \
          WHERE c.name_key LIKE ?1 ESCAPE '\\'",
    )?;
    let rows = stmt.query_map([&pattern], read_row)?;
    let word_start = format!(" {key}");
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        let rank = if row.name_key == key {
            MatchRank::Exact
        } else if row.name_key.starts_with(key) || row.name_key.contains(&word_start) {
            MatchRank::Prefix
        } else {
            MatchRank::Substring
        };
        out.push(to_match(row, rank));
    }
    Ok(out)
}

fn search_numbers(
    conn: &Connection,
    query: &str,
    digits: &str,
    country: &str,
) -> Result<Vec<ContactMatch>, StoreError> {
    let q = normalize(query, country);
    let partial = number::partial_national(query, country);
    let pattern = format!("%{digits}%");
    let q_tail = tail(&index_digits(query)).to_string();
    let mut stmt = conn.prepare(
        "SELECT 'local', c.source_id, c.display_name, c.name_key, n.label, n.number, n.digits \
           FROM local_numbers n JOIN local_contacts c ON c.id = n.contact_id \
          WHERE n.digits LIKE ?1 OR n.digits LIKE ?3 OR n.tail = ?2 \
         UNION ALL \
         SELECT 'company', c.remote_id, c.display_name, c.name_key, n.label, n.number, n.digits \
           FROM company_numbers n JOIN company_contacts c ON c.id = n.contact_id \
          WHERE n.digits LIKE ?1 OR n.digits LIKE ?3 OR n.tail = ?2",
    )?;
    let partial_pattern = if partial.len() >= 3 {
        format!("%{partial}%")
    } else {
        pattern.clone()
    };
    let rows = stmt.query_map([&pattern, &q_tail, &partial_pattern], read_row)?;
    let mut out = Vec::new();
    for row in rows {
        let row = row?;
        let (Some(number), Some(stored_digits)) = (&row.number, &row.digits) else {
            continue;
        };
        let stored = normalize(number, country);
        let national_hit = |f: fn(&str, &str) -> bool| {
            partial.len() >= 3 && !stored.national.is_empty() && f(&stored.national, &partial)
        };
        let rank = if stored_digits == digits || match_strength(&q, &stored).is_some() {
            MatchRank::Exact
        } else if stored_digits.starts_with(digits) || national_hit(|s, q| s.starts_with(q)) {
            MatchRank::Prefix
        } else if stored_digits.contains(digits) || national_hit(|s, q| s.contains(q)) {
            MatchRank::Substring
        } else {
            continue;
        };
        out.push(to_match(row, rank));
    }
    Ok(out)
}

fn to_match(row: Row, rank: MatchRank) -> ContactMatch {
    ContactMatch {
        kind: row.kind,
        id: row.id,
        display_name: row.display_name,
        number: row.number,
        label: row.label,
        rank,
    }
}

/// Caller ID: the contact whose number matches `number` by the matching rule
/// ([`crate::number`]), both normalized with `default_country`.
///
/// The strongest match wins (same E.164 > same short extension > last 8 digits); on a tie
/// a local contact wins over a company one (the user's own naming), then the name.
pub fn lookup_caller(
    conn: &Connection,
    number: &str,
    default_country: &str,
) -> Result<Option<CallerId>, StoreError> {
    let digits = index_digits(number);
    if digits.is_empty() {
        return Ok(None);
    }
    let wanted = normalize(number, default_country);
    let mut stmt = conn.prepare_cached(
        "SELECT 'local', c.source_id, c.display_name, c.name_key, n.label, n.number, n.digits \
           FROM local_numbers n JOIN local_contacts c ON c.id = n.contact_id WHERE n.tail = ?1 \
         UNION ALL \
         SELECT 'company', c.remote_id, c.display_name, c.name_key, n.label, n.number, n.digits \
           FROM company_numbers n JOIN company_contacts c ON c.id = n.contact_id WHERE n.tail = ?1",
    )?;
    let rows = stmt.query_map([tail(&digits)], read_row)?;
    let mut best: Option<(Strength, Row)> = None;
    for row in rows {
        let row = row?;
        let Some(candidate) = &row.number else {
            continue;
        };
        let Some(strength) = match_strength(&wanted, &normalize(candidate, default_country)) else {
            continue;
        };
        let better = match &best {
            None => true,
            Some((s, b)) => {
                (
                    std::cmp::Reverse(strength),
                    row.kind,
                    &row.name_key,
                    &row.id,
                ) < (std::cmp::Reverse(*s), b.kind, &b.name_key, &b.id)
            }
        };
        if better {
            best = Some((strength, row));
        }
    }
    Ok(best.map(|(_, row)| CallerId {
        display_name: row.display_name,
        kind: row.kind,
        id: row.id,
        label: row.label.unwrap_or_default(),
    }))
}

fn insert_numbers(
    tx: &Transaction<'_>,
    table: &str,
    contact: i64,
    numbers: &[(String, String)],
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(&format!(
        "INSERT INTO {table} (contact_id, position, label, number, digits, tail) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
    ))?;
    for (position, (label, number)) in numbers.iter().enumerate() {
        let digits = number::index_digits(number);
        let position = i64::try_from(position).unwrap_or(i64::MAX);
        stmt.execute(params![
            contact,
            position,
            label,
            number,
            digits,
            tail(&digits)
        ])?;
    }
    Ok(())
}

fn numbers_of(
    conn: &Connection,
    table: &str,
    contact: i64,
) -> Result<Vec<(String, String)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT label, number FROM {table} WHERE contact_id = ?1 ORDER BY position"
    ))?;
    let rows = stmt
        .query_map([contact], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

fn join_emails(emails: &[String]) -> String {
    emails
        .iter()
        .map(|e| e.replace(['\n', '\r'], ""))
        .collect::<Vec<_>>()
        .join("\n")
}

fn split_emails(s: &str) -> Vec<String> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split('\n').map(str::to_string).collect()
    }
}
