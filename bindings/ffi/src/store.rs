//! [`PhoneStore`]: the phone's on-device data (call history, contacts and the company
//! directory, blocklist, speed dial, voicemail counts), a thin wrapper around
//! `handset_store::Store` with its records mirrored by value.
//!
//! The store is the one the phone's run loop writes to (it records calls, logs blocked
//! callers and names incoming callers from the contacts), so the app reads what the phone
//! wrote. Every method is synchronous and quick (one SQLite transaction) except
//! [`PhoneStore::sync_company_directory`], which talks HTTP and runs as a task on the phone's
//! runtime. Timestamps are Unix milliseconds. Numbers are compared by the store's matching
//! rule, normalized with the phone's default country (ISO 3166 alpha-2, e.g. "DE").

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use handset_store::contacts::{self as core_contacts, SourceContact};
use handset_store::{
    BearerToken, CompanyDirectory, DirectoryConfig, Store, blocklist, history, speed_dial,
    voicemail,
};
use tokio::runtime::Handle;

use crate::error::{HandsetError, guard, panic_message};
use crate::platform::{ContactsSource, call_foreign};
use crate::types::{CallDirection, Contact};

// ---------------------------------------------------------------------------------------------
// Records (mirrored from handset_store)

/// One call of the history (mirrors `handset_store::history::CallEntry`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryEntry {
    /// Row id, for [`PhoneStore::history_entry`] and [`PhoneStore::delete_history_entry`].
    pub id: i64,
    /// Who called.
    pub direction: CallDirection,
    /// Remote number or URI as signaled.
    pub remote_number: String,
    /// Remote display name as signaled (or from the contacts), if any.
    pub remote_display_name: Option<String>,
    /// The account (address-of-record) the call was on.
    pub account: String,
    /// When it started ringing / was dialed, Unix ms.
    pub started_at_ms: i64,
    /// When it was answered, Unix ms.
    pub answered_at_ms: Option<i64>,
    /// When it ended, Unix ms.
    pub ended_at_ms: i64,
    /// Talk time, ms (0 when not answered).
    pub duration_ms: i64,
    /// Why it ended ("remote hangup", "cancelled", "486 Busy Here", ...).
    pub end_reason: String,
    /// An incoming call answered neither here nor on another device, nor declined here.
    pub missed: bool,
    /// Seen by the user (always true for calls that are not missed).
    pub seen: bool,
}

impl From<history::Direction> for CallDirection {
    fn from(d: history::Direction) -> Self {
        match d {
            history::Direction::Incoming => Self::Incoming,
            history::Direction::Outgoing => Self::Outgoing,
        }
    }
}

impl From<history::CallEntry> for HistoryEntry {
    fn from(e: history::CallEntry) -> Self {
        Self {
            id: e.id,
            direction: e.direction.into(),
            remote_number: e.remote_number,
            remote_display_name: e.remote_display_name,
            account: e.account,
            started_at_ms: e.started_at,
            answered_at_ms: e.answered_at,
            ended_at_ms: e.ended_at,
            duration_ms: e.duration_ms,
            end_reason: e.end_reason,
            missed: e.missed,
            seen: e.seen,
        }
    }
}

/// Where the next (older) page of history starts (mirrors `handset_store::history::HistoryCursor`).
/// Pass [`HistoryPage::next`] back unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct HistoryCursor {
    /// `started_at_ms` of the last entry of the previous page.
    pub started_at_ms: i64,
    /// `id` of the last entry of the previous page.
    pub id: i64,
}

impl From<HistoryCursor> for history::HistoryCursor {
    fn from(c: HistoryCursor) -> Self {
        Self {
            started_at: c.started_at_ms,
            id: c.id,
        }
    }
}

impl From<history::HistoryCursor> for HistoryCursor {
    fn from(c: history::HistoryCursor) -> Self {
        Self {
            started_at_ms: c.started_at,
            id: c.id,
        }
    }
}

/// One page of history, newest first (mirrors `handset_store::history::HistoryPage`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct HistoryPage {
    /// The calls, newest first.
    pub entries: Vec<HistoryEntry>,
    /// Cursor of the next (older) page; absent after the last page.
    pub next: Option<HistoryCursor>,
}

impl From<history::HistoryPage> for HistoryPage {
    fn from(p: history::HistoryPage) -> Self {
        Self {
            entries: p.entries.into_iter().map(Into::into).collect(),
            next: p.next.map(Into::into),
        }
    }
}

/// What an address book import changed (mirrors `handset_store::contacts::ImportReport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct ImportReport {
    /// New contacts.
    pub added: u32,
    /// Contacts whose name, numbers, e-mails or company changed.
    pub updated: u32,
    /// Contacts no longer in the address book, removed.
    pub deleted: u32,
}

impl From<core_contacts::ImportReport> for ImportReport {
    fn from(r: core_contacts::ImportReport) -> Self {
        Self {
            added: count(r.added),
            updated: count(r.updated),
            deleted: count(r.deleted),
        }
    }
}

/// Where a contact comes from (mirrors `handset_store::ContactKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum ContactKind {
    /// The phone's address book.
    Local,
    /// The PBX company directory.
    Company,
}

impl From<handset_store::ContactKind> for ContactKind {
    fn from(k: handset_store::ContactKind) -> Self {
        match k {
            handset_store::ContactKind::Local => Self::Local,
            handset_store::ContactKind::Company => Self::Company,
        }
    }
}

/// How well a search result matched, best first (mirrors `handset_store::MatchRank`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MatchRank {
    /// The whole name, or the number by the matching rule / all its digits.
    Exact,
    /// The start of the name or of one of its words, or the leading digits.
    Prefix,
    /// Anywhere inside the name or the digits.
    Substring,
}

impl From<handset_store::MatchRank> for MatchRank {
    fn from(r: handset_store::MatchRank) -> Self {
        match r {
            handset_store::MatchRank::Exact => Self::Exact,
            handset_store::MatchRank::Prefix => Self::Prefix,
            handset_store::MatchRank::Substring => Self::Substring,
        }
    }
}

/// One search result: a contact and one of its numbers (mirrors `handset_store::ContactMatch`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct ContactMatch {
    /// Local or company.
    pub kind: ContactKind,
    /// The address book's id of a local contact, the directory id of a company one.
    pub id: String,
    /// Name to show.
    pub display_name: String,
    /// The number as stored; absent for a contact without numbers.
    pub number: Option<String>,
    /// Its label ("mobile", "work", "sip", ...).
    pub label: Option<String>,
    /// How well it matched.
    pub rank: MatchRank,
}

impl From<handset_store::ContactMatch> for ContactMatch {
    fn from(m: handset_store::ContactMatch) -> Self {
        Self {
            kind: m.kind.into(),
            id: m.id,
            display_name: m.display_name,
            number: m.number,
            label: m.label,
            rank: m.rank.into(),
        }
    }
}

/// Who is calling (mirrors `handset_store::CallerId`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CallerId {
    /// Name to show.
    pub display_name: String,
    /// Local or company.
    pub kind: ContactKind,
    /// The address book's id or the directory id.
    pub id: String,
    /// Label of the matching number (may be empty).
    pub label: String,
}

impl From<handset_store::CallerId> for CallerId {
    fn from(c: handset_store::CallerId) -> Self {
        Self {
            display_name: c.display_name,
            kind: c.kind.into(),
            id: c.id,
            label: c.label,
        }
    }
}

/// How to reach a PBX company directory (see `handset_store::directory` for the endpoint).
/// `Debug` never shows the bearer token.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompanyDirectoryConfig {
    /// Base URL of the PBX API, e.g. `https://pbx.example.com/api/v1` (the collection is
    /// `{base_url}/contacts`); also the key of this directory in the store.
    pub base_url: String,
    /// Sent as `Authorization: Bearer ...` (personal data: never logged nor shown).
    #[uniffi(default = None)]
    pub bearer_token: Option<String>,
    /// Extra trusted CA certificate(s): PEM (one or more) or a single DER certificate.
    #[uniffi(default = None)]
    pub custom_ca_pem: Option<Vec<u8>>,
    /// Timeout of each page request (connect + answer + body), seconds; 0 means 30.
    #[uniffi(default = 30)]
    pub timeout_secs: u32,
    /// Allow `http://` (the token would travel in clear text): tests and lab setups only.
    #[uniffi(default = false)]
    pub allow_insecure_http: bool,
}

impl fmt::Debug for CompanyDirectoryConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CompanyDirectoryConfig")
            .field("base_url", &self.base_url)
            .field(
                "bearer_token",
                &self.bearer_token.as_ref().map(|_| "<redacted>"),
            )
            .field("custom_ca_pem", &self.custom_ca_pem.as_ref().map(Vec::len))
            .field("timeout_secs", &self.timeout_secs)
            .field("allow_insecure_http", &self.allow_insecure_http)
            .finish()
    }
}

impl From<CompanyDirectoryConfig> for DirectoryConfig {
    fn from(c: CompanyDirectoryConfig) -> Self {
        let mut config = DirectoryConfig::new(c.base_url);
        config.token = c.bearer_token.map(BearerToken::new);
        config.custom_ca = c.custom_ca_pem;
        if c.timeout_secs > 0 {
            config.timeout = Duration::from_secs(u64::from(c.timeout_secs));
            config.connect_timeout = config.connect_timeout.min(config.timeout);
        }
        config.allow_insecure_http = c.allow_insecure_http;
        config
    }
}

/// What a directory sync changed (mirrors `handset_store::SyncReport`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct SyncReport {
    /// New entries.
    pub added: u32,
    /// Entries whose content changed.
    pub updated: u32,
    /// Entries removed.
    pub deleted: u32,
    /// The server answered 304 Not Modified: nothing was fetched or written.
    pub unchanged: bool,
    /// Pages fetched.
    pub pages: u32,
}

impl From<handset_store::SyncReport> for SyncReport {
    fn from(r: handset_store::SyncReport) -> Self {
        Self {
            added: count(r.added),
            updated: count(r.updated),
            deleted: count(r.deleted),
            unchanged: r.unchanged,
            pages: r.pages,
        }
    }
}

/// A labelled number of a contact.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct LabeledNumber {
    /// "work", "mobile", "extension", ... (may be empty).
    pub label: String,
    /// The number as written.
    pub number: String,
}

/// An entry of a company directory (mirrors `handset_store::contacts::CompanyContact`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct CompanyContact {
    /// Id in the directory.
    pub id: String,
    /// Name to show.
    pub display_name: String,
    /// Its numbers.
    pub numbers: Vec<LabeledNumber>,
    /// Department, if the PBX has one.
    pub department: Option<String>,
    /// E-mail addresses.
    pub emails: Vec<String>,
}

impl From<core_contacts::CompanyContact> for CompanyContact {
    fn from(c: core_contacts::CompanyContact) -> Self {
        Self {
            id: c.id,
            display_name: c.display_name,
            numbers: c
                .numbers
                .into_iter()
                .map(|(label, number)| LabeledNumber { label, number })
                .collect(),
            department: c.department,
            emails: c.emails,
        }
    }
}

/// Whether a number rule blocks or allows (mirrors `handset_store::blocklist::RuleKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum NumberRuleKind {
    /// Calls from the number are rejected.
    Block,
    /// Calls from the number are never rejected, even when it is also blocked.
    Allow,
}

impl From<blocklist::RuleKind> for NumberRuleKind {
    fn from(k: blocklist::RuleKind) -> Self {
        match k {
            blocklist::RuleKind::Block => Self::Block,
            blocklist::RuleKind::Allow => Self::Allow,
        }
    }
}

/// A blocked or allowed number (mirrors `handset_store::blocklist::NumberRule`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct NumberRule {
    /// Row id, for [`PhoneStore::remove_number_rule`].
    pub id: i64,
    /// Block or allow.
    pub kind: NumberRuleKind,
    /// The number as the user entered it.
    pub number: String,
}

impl From<blocklist::NumberRule> for NumberRule {
    fn from(r: blocklist::NumberRule) -> Self {
        Self {
            id: r.id,
            kind: r.kind.into(),
            number: r.number,
        }
    }
}

/// A call the blocklist rejected (mirrors `handset_store::blocklist::BlockedAttempt`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct BlockedAttempt {
    /// Row id.
    pub id: i64,
    /// The caller's number.
    pub number: String,
    /// When, Unix ms.
    pub at_ms: i64,
}

impl From<blocklist::BlockedAttempt> for BlockedAttempt {
    fn from(a: blocklist::BlockedAttempt) -> Self {
        Self {
            id: a.id,
            number: a.number,
            at_ms: a.at,
        }
    }
}

/// A speed dial entry (mirrors `handset_store::speed_dial::SpeedDial`).
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Record)]
pub struct SpeedDial {
    /// The dial pad digit, 1..=9.
    pub digit: u8,
    /// The number to call.
    pub number: String,
    /// Label to show ("Voicemail", "Office").
    pub label: Option<String>,
}

impl From<speed_dial::SpeedDial> for SpeedDial {
    fn from(s: speed_dial::SpeedDial) -> Self {
        Self {
            digit: s.digit,
            number: s.number,
            label: s.label,
        }
    }
}

/// The message-waiting counts of an account (mirrors `handset_store::voicemail::Mwi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct VoicemailCounts {
    /// New (unheard) voice messages.
    pub new: u32,
    /// Old (heard, kept) voice messages.
    pub old: u32,
}

impl From<voicemail::Mwi> for VoicemailCounts {
    fn from(m: voicemail::Mwi) -> Self {
        Self {
            new: m.new,
            old: m.old,
        }
    }
}

/// A count for the foreign side (saturating: a database never holds 4 billion rows).
fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// An address book contact as the store imports it: phone numbers without a label (the
/// platform's `Contact` has none), SIP addresses labelled "sip" (their user part is matched
/// like a number).
fn source_contact(c: Contact) -> SourceContact {
    let mut labels = c.phone_labels.into_iter();
    let numbers = c
        .phone_numbers
        .into_iter()
        .map(|n| (labels.next().unwrap_or_default(), n))
        .chain(c.sip_addresses.into_iter().map(|a| ("sip".to_string(), a)))
        .collect();
    SourceContact {
        source_id: c.id,
        display_name: c.display_name,
        numbers,
        emails: c.emails,
        company: c.company,
    }
}

/// The key of a directory in the store, as `CompanyDirectory::key` derives it from the base URL.
fn directory_key(base_url: &str) -> &str {
    base_url.trim().trim_end_matches('/')
}

// ---------------------------------------------------------------------------------------------
// PhoneStore

/// The phone's on-device data: call history, contacts (address book and company
/// directory), blocklist, speed dial and voicemail counts. Get it from the phone; it stays
/// usable as long as it is held.
#[derive(uniffi::Object)]
pub struct PhoneStore {
    inner: Arc<Store>,
    default_country: String,
    rt: Handle,
}

impl fmt::Debug for PhoneStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneStore")
            .field("path", &self.inner.path())
            .field("default_country", &self.default_country)
            .finish_non_exhaustive()
    }
}

impl PhoneStore {
    /// Wraps the phone's store. `default_country` (ISO 3166 alpha-2) normalizes numbers
    /// written without country code; `rt` runs the directory sync (the phone's runtime).
    // Until `HandsetPhone` (phone.rs) constructs it.
    pub(crate) fn new(store: Arc<Store>, default_country: String, rt: Handle) -> Self {
        Self {
            inner: store,
            default_country,
            rt,
        }
    }
}

#[uniffi::export]
impl PhoneStore {
    // --- history ---------------------------------------------------------------------------

    /// A page of the call history, newest first: at most `limit` calls (1..=1000; 0 counts
    /// as 1) older than `before` (absent: from the newest), only missed calls when
    /// `missed_only`. Keyset paging: pages stay consistent while new calls are recorded.
    pub fn history(
        &self,
        limit: u32,
        before: Option<HistoryCursor>,
        missed_only: bool,
    ) -> Result<HistoryPage, HandsetError> {
        let query = history::HistoryQuery {
            limit,
            before: before.map(Into::into),
            missed_only,
        };
        guard(|| Ok(self.inner.read(|c| history::list(c, &query))?.into()))
    }

    /// One call of the history by id; absent when there is none (deleted).
    pub fn history_entry(&self, id: i64) -> Result<Option<HistoryEntry>, HandsetError> {
        guard(|| Ok(self.inner.read(|c| history::get(c, id))?.map(Into::into)))
    }

    /// The number of missed calls not seen yet (the badge).
    pub fn missed_count(&self) -> Result<u32, HandsetError> {
        guard(|| Ok(self.inner.read(history::missed_count)?))
    }

    /// Marks every missed call seen (the user opened the history); returns how many changed.
    pub fn mark_missed_seen(&self) -> Result<u32, HandsetError> {
        guard(|| Ok(count(self.inner.write(history::mark_missed_seen)?)))
    }

    /// Deletes one call of the history; `false` when there was none with this id.
    pub fn delete_history_entry(&self, id: i64) -> Result<bool, HandsetError> {
        guard(|| Ok(self.inner.write(|tx| history::delete(tx, id))?))
    }

    /// Deletes the whole call history; returns how many calls were deleted.
    pub fn clear_history(&self) -> Result<u32, HandsetError> {
        guard(|| Ok(count(self.inner.write(history::delete_all)?)))
    }

    // --- contacts --------------------------------------------------------------------------

    /// Reads the platform's address book through `source` and makes the local contacts
    /// equal to it (a full sync in one transaction: new ones added, changed ones rewritten,
    /// missing ones deleted). When the platform fails (permission denied) nothing changes and
    /// the error is [`HandsetError::Platform`].
    pub fn import_local_contacts(
        &self,
        source: Arc<dyn ContactsSource>,
    ) -> Result<ImportReport, HandsetError> {
        guard(|| {
            let contacts = call_foreign("contacts source", move || source.contacts())?;
            let contacts: Vec<SourceContact> = contacts.into_iter().map(source_contact).collect();
            let report = self
                .inner
                .write(|tx| core_contacts::apply_local_contacts(tx, &contacts))?;
            tracing::debug!(
                added = report.added,
                updated = report.updated,
                deleted = report.deleted,
                "address book imported"
            );
            Ok(report.into())
        })
    }

    /// Searches the local and company contacts, best first, at most `limit` results (0, or
    /// more than 100, means the store's maximum of 100). A query of at least 3 digits (with
    /// dial punctuation) searches numbers, anything else names (case- and accent-insensitive).
    pub fn search_contacts(
        &self,
        query: String,
        limit: u32,
    ) -> Result<Vec<ContactMatch>, HandsetError> {
        guard(|| {
            let mut found = self
                .inner
                .read(|c| core_contacts::search(c, &query, &self.default_country))?;
            if limit > 0 {
                found.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
            }
            Ok(found.into_iter().map(Into::into).collect())
        })
    }

    /// Caller ID: the contact (local first on a tie, then company) whose number matches
    /// `number` by the store's matching rule; absent when none does.
    pub fn lookup_caller(&self, number: String) -> Result<Option<CallerId>, HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .read(|c| core_contacts::lookup_caller(c, &number, &self.default_country))?
                .map(Into::into))
        })
    }

    /// Fetches the PBX company directory described by `config` and applies it in one
    /// transaction (all pages or nothing; a 304 Not Modified writes nothing). Errors: a bad
    /// configuration is [`HandsetError::InvalidArgument`], an unreachable or silent server
    /// [`HandsetError::Network`], refused credentials, an HTTP error status or a malformed
    /// page [`HandsetError::Directory`]; the stored directory is unchanged after each.
    pub async fn sync_company_directory(
        &self,
        config: CompanyDirectoryConfig,
    ) -> Result<SyncReport, HandsetError> {
        let store = self.inner.clone();
        let task = self.rt.spawn(async move {
            let directory = CompanyDirectory::new(config.into())?;
            Ok::<_, HandsetError>(directory.sync(&store).await?.into())
        });
        match task.await {
            Ok(result) => result,
            Err(e) if e.is_panic() => {
                let message = panic_message(e.into_panic().as_ref());
                tracing::error!(%message, "panic caught at the FFI boundary");
                Err(HandsetError::Internal(message))
            }
            Err(_) => Err(HandsetError::Stopped),
        }
    }

    /// Every entry of the company directory synced from `base_url`, ordered by name.
    pub fn company_contacts(&self, base_url: String) -> Result<Vec<CompanyContact>, HandsetError> {
        guard(|| {
            let key = directory_key(&base_url);
            Ok(self
                .inner
                .read(|c| core_contacts::company_contacts(c, key))?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Forgets the company directory synced from `base_url` and its sync state (the account
    /// was removed); returns how many entries were deleted.
    pub fn clear_company_directory(&self, base_url: String) -> Result<u32, HandsetError> {
        guard(|| {
            let key = directory_key(&base_url);
            Ok(count(
                self.inner
                    .write(|tx| core_contacts::clear_company(tx, key))?,
            ))
        })
    }

    // --- blocklist -------------------------------------------------------------------------

    /// Blocks calls from `number` (rejected with 603 Decline and logged). Blocking the same
    /// text twice does nothing; a number without digits is [`HandsetError::InvalidArgument`].
    pub fn block_number(&self, number: String) -> Result<(), HandsetError> {
        guard(|| Ok(self.inner.write(|tx| blocklist::block(tx, &number))?))
    }

    /// Allows calls from `number` even when a block rule matches it.
    pub fn allow_number(&self, number: String) -> Result<(), HandsetError> {
        guard(|| Ok(self.inner.write(|tx| blocklist::allow(tx, &number))?))
    }

    /// Removes every block rule matching `number`; returns how many.
    pub fn unblock_number(&self, number: String) -> Result<u32, HandsetError> {
        guard(|| {
            Ok(count(self.inner.write(|tx| {
                blocklist::unblock(tx, &number, &self.default_country)
            })?))
        })
    }

    /// Removes every allow rule matching `number`; returns how many.
    pub fn unallow_number(&self, number: String) -> Result<u32, HandsetError> {
        guard(|| {
            Ok(count(self.inner.write(|tx| {
                blocklist::unallow(tx, &number, &self.default_country)
            })?))
        })
    }

    /// Removes one rule by id; `false` when there was none.
    pub fn remove_number_rule(&self, id: i64) -> Result<bool, HandsetError> {
        guard(|| Ok(self.inner.write(|tx| blocklist::remove_rule(tx, id))?))
    }

    /// Every block and allow rule: blocks first, each in the order they were added.
    pub fn number_rules(&self) -> Result<Vec<NumberRule>, HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .read(blocklist::rules)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Whether a call from `number` would be rejected: a block rule matches and no allow
    /// rule does.
    pub fn is_blocked(&self, number: String) -> Result<bool, HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .read(|c| blocklist::is_blocked(c, &number, &self.default_country))?)
        })
    }

    /// The calls the blocklist rejected, newest first.
    pub fn blocked_attempts(&self) -> Result<Vec<BlockedAttempt>, HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .read(blocklist::blocked_attempts)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    /// Clears the log of rejected calls; returns how many entries were removed.
    pub fn clear_blocked_attempts(&self) -> Result<u32, HandsetError> {
        guard(|| Ok(count(self.inner.write(blocklist::clear_blocked_attempts)?)))
    }

    // --- speed dial ------------------------------------------------------------------------

    /// Binds dial pad `digit` (1..=9) to `number` with an optional `label`, replacing what
    /// it had. Another digit or an empty number is [`HandsetError::InvalidArgument`].
    pub fn set_speed_dial(
        &self,
        digit: u8,
        number: String,
        label: Option<String>,
    ) -> Result<(), HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .write(|tx| speed_dial::set(tx, digit, &number, label.as_deref()))?)
        })
    }

    /// Unbinds `digit` (1..=9); `false` when it had nothing.
    pub fn clear_speed_dial(&self, digit: u8) -> Result<bool, HandsetError> {
        guard(|| Ok(self.inner.write(|tx| speed_dial::clear(tx, digit))?))
    }

    /// The entry of `digit` (1..=9), if any.
    pub fn speed_dial(&self, digit: u8) -> Result<Option<SpeedDial>, HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .read(|c| speed_dial::get(c, digit))?
                .map(Into::into))
        })
    }

    /// Every speed dial entry, by digit.
    pub fn speed_dials(&self) -> Result<Vec<SpeedDial>, HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .read(speed_dial::list)?
                .into_iter()
                .map(Into::into)
                .collect())
        })
    }

    // --- voicemail -------------------------------------------------------------------------

    /// The latest message-waiting counts of `account` (its address-of-record, as in
    /// [`HistoryEntry::account`]); absent before the server sent any.
    pub fn voicemail_counts(
        &self,
        account: String,
    ) -> Result<Option<VoicemailCounts>, HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .read(|c| voicemail::mwi(c, &account))?
                .map(Into::into))
        })
    }
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpListener;
    use std::path::PathBuf;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU64, Ordering};

    use handset_store::history::{CallRecord, Direction};

    use super::*;
    use crate::platform::PlatformError;

    /// A database file in the temp dir, unique per test, removed (with its WAL files) on drop.
    pub(crate) struct TempDb(pub(crate) PathBuf);

    impl TempDb {
        pub(crate) fn new(tag: &str) -> Self {
            static NEXT: AtomicU64 = AtomicU64::new(0);
            let path = std::env::temp_dir().join(format!(
                "handset-ffi-{tag}-{}-{}.db",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            let db = Self(path);
            db.clean();
            db
        }

        fn clean(&self) {
            for suffix in ["", "-wal", "-shm", "-journal"] {
                let mut p = self.0.clone().into_os_string();
                p.push(suffix);
                let _ = std::fs::remove_file(p);
            }
        }
    }

    impl Drop for TempDb {
        fn drop(&mut self) {
            self.clean();
        }
    }

    /// The phone's runtime (its handle runs the directory sync).
    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn open(db: &TempDb, rt: &tokio::runtime::Runtime) -> (Arc<Store>, PhoneStore) {
        let store = Arc::new(Store::open(&db.0).unwrap());
        let phone_store = PhoneStore::new(store.clone(), "DE".into(), rt.handle().clone());
        (store, phone_store)
    }

    /// The foreign side's executor: polls the exported future outside the phone's runtime.
    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    fn call(direction: Direction, number: &str, started: i64, answered: bool) -> CallRecord {
        CallRecord {
            direction,
            remote_number: number.into(),
            remote_display_name: None,
            account: "1001@pbx.example.com".into(),
            started_at: started,
            answered_at: answered.then_some(started + 5_000),
            ended_at: started + 65_000,
            end_reason: if answered {
                "remote hangup"
            } else {
                "cancelled"
            }
            .into(),
            answered_elsewhere: false,
            declined: false,
        }
    }

    #[test]
    fn history_pages_newest_first_and_counts_missed_calls() {
        let (db, rt) = (TempDb::new("history"), runtime());
        let (store, phone_store) = open(&db, &rt);
        // Five calls, one minute apart: incoming unanswered ones are missed.
        let calls = [
            call(Direction::Incoming, "+4930111", 1_000_000, true),
            call(Direction::Incoming, "+4930222", 1_060_000, false),
            call(Direction::Outgoing, "+4930333", 1_120_000, false),
            call(Direction::Incoming, "+4930444", 1_180_000, false),
            call(Direction::Outgoing, "+4930555", 1_240_000, true),
        ];
        let ids: Vec<i64> = calls
            .iter()
            .map(|c| store.write(|tx| history::record_call(tx, c)).unwrap())
            .collect();

        let first = phone_store.history(2, None, false).unwrap();
        let numbers = |p: &HistoryPage| {
            p.entries
                .iter()
                .map(|e| e.remote_number.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(numbers(&first), ["+4930555", "+4930444"]);
        let newest = &first.entries[0];
        assert_eq!(newest.direction, CallDirection::Outgoing);
        assert_eq!(newest.started_at_ms, 1_240_000);
        assert_eq!(newest.answered_at_ms, Some(1_245_000));
        assert_eq!(newest.duration_ms, 60_000);
        assert_eq!(newest.account, "1001@pbx.example.com");
        assert!(!newest.missed && newest.seen);
        assert!(first.entries[1].missed && !first.entries[1].seen);
        let second = phone_store.history(2, first.next, false).unwrap();
        assert_eq!(numbers(&second), ["+4930333", "+4930222"]);
        let last = phone_store.history(2, second.next, false).unwrap();
        assert_eq!(numbers(&last), ["+4930111"]);
        assert_eq!(last.next, None);

        let missed = phone_store.history(10, None, true).unwrap();
        assert_eq!(numbers(&missed), ["+4930444", "+4930222"]);
        assert_eq!(phone_store.missed_count().unwrap(), 2);
        assert_eq!(phone_store.mark_missed_seen().unwrap(), 2);
        assert_eq!(phone_store.missed_count().unwrap(), 0);
        assert_eq!(phone_store.mark_missed_seen().unwrap(), 0);

        let entry = phone_store.history_entry(ids[1]).unwrap().unwrap();
        assert_eq!(entry.remote_number, "+4930222");
        assert!(entry.missed && entry.seen);
        assert!(phone_store.delete_history_entry(ids[1]).unwrap());
        assert!(!phone_store.delete_history_entry(ids[1]).unwrap());
        assert_eq!(phone_store.history_entry(ids[1]).unwrap(), None);
        assert_eq!(phone_store.clear_history().unwrap(), 4);
        assert!(
            phone_store
                .history(10, None, false)
                .unwrap()
                .entries
                .is_empty()
        );
    }

    #[test]
    fn block_allow_round_trip_and_the_attempt_log() {
        let (db, rt) = (TempDb::new("blocklist"), runtime());
        let (store, phone_store) = open(&db, &rt);
        assert!(!phone_store.is_blocked("+49 30 1234567".into()).unwrap());
        phone_store.block_number("+49 30 1234567".into()).unwrap();
        // Written nationally, matched with the default country DE.
        assert!(phone_store.is_blocked("030 1234567".into()).unwrap());
        phone_store.allow_number("030-1234567".into()).unwrap();
        assert!(!phone_store.is_blocked("+49301234567".into()).unwrap());
        let rules = phone_store.number_rules().unwrap();
        let kinds: Vec<_> = rules.iter().map(|r| (r.kind, r.number.as_str())).collect();
        assert_eq!(
            kinds,
            [
                (NumberRuleKind::Block, "+49 30 1234567"),
                (NumberRuleKind::Allow, "030-1234567")
            ]
        );
        assert_eq!(
            phone_store.unallow_number("+49301234567".into()).unwrap(),
            1
        );
        assert!(phone_store.is_blocked("030 1234567".into()).unwrap());
        assert_eq!(phone_store.unblock_number("0301234567".into()).unwrap(), 1);
        assert!(!phone_store.is_blocked("030 1234567".into()).unwrap());
        assert!(phone_store.number_rules().unwrap().is_empty());
        let bad = phone_store.block_number("no digits".into());
        assert!(
            matches!(&bad, Err(HandsetError::InvalidArgument(m)) if m.contains("without digits")),
            "{bad:?}"
        );
        phone_store.block_number("666".into()).unwrap();
        let id = phone_store.number_rules().unwrap()[0].id;
        assert!(phone_store.remove_number_rule(id).unwrap());
        assert!(!phone_store.remove_number_rule(id).unwrap());

        for at in [10, 20] {
            store
                .write(|tx| blocklist::log_blocked_attempt(tx, "+4930999", at))
                .unwrap();
        }
        let attempts = phone_store.blocked_attempts().unwrap();
        assert_eq!(
            attempts.iter().map(|a| a.at_ms).collect::<Vec<_>>(),
            [20, 10]
        );
        assert_eq!(attempts[0].number, "+4930999");
        assert_eq!(phone_store.clear_blocked_attempts().unwrap(), 2);
        assert!(phone_store.blocked_attempts().unwrap().is_empty());
    }

    #[test]
    fn speed_dial_and_voicemail_counts() {
        let (db, rt) = (TempDb::new("speed"), runtime());
        let (store, phone_store) = open(&db, &rt);
        phone_store
            .set_speed_dial(1, "*97".into(), Some("Voicemail".into()))
            .unwrap();
        phone_store.set_speed_dial(5, "1005".into(), None).unwrap();
        phone_store
            .set_speed_dial(5, "1006".into(), Some("Office".into()))
            .unwrap();
        let dials = phone_store.speed_dials().unwrap();
        assert_eq!(
            dials,
            [
                SpeedDial {
                    digit: 1,
                    number: "*97".into(),
                    label: Some("Voicemail".into())
                },
                SpeedDial {
                    digit: 5,
                    number: "1006".into(),
                    label: Some("Office".into())
                }
            ]
        );
        assert_eq!(phone_store.speed_dial(5).unwrap(), Some(dials[1].clone()));
        assert!(phone_store.clear_speed_dial(5).unwrap());
        assert!(!phone_store.clear_speed_dial(5).unwrap());
        for bad in [0, 10, 255] {
            let r = phone_store.set_speed_dial(bad, "1".into(), None);
            assert!(
                matches!(&r, Err(HandsetError::InvalidArgument(m)) if m.contains("1..=9")),
                "{r:?}"
            );
        }
        assert!(matches!(
            phone_store.set_speed_dial(2, "  ".into(), None),
            Err(HandsetError::InvalidArgument(_))
        ));

        let account = "1001@pbx.example.com".to_string();
        assert_eq!(phone_store.voicemail_counts(account.clone()).unwrap(), None);
        store
            .write(|tx| voicemail::set_mwi(tx, &account, 2, 8))
            .unwrap();
        assert_eq!(
            phone_store.voicemail_counts(account).unwrap(),
            Some(VoicemailCounts { new: 2, old: 8 })
        );
    }

    /// The platform's address book, as Kotlin/Swift implement it.
    struct AddressBook(Mutex<Result<Vec<Contact>, String>>);

    impl ContactsSource for AddressBook {
        fn contacts(&self) -> Result<Vec<Contact>, PlatformError> {
            self.0
                .lock()
                .unwrap()
                .clone()
                .map_err(|reason| PlatformError::Failed { reason })
        }
    }

    fn contact(id: &str, name: &str, numbers: &[&str], sip: &[&str]) -> Contact {
        Contact {
            id: id.into(),
            display_name: name.into(),
            phone_numbers: numbers.iter().map(|n| n.to_string()).collect(),
            sip_addresses: sip.iter().map(|n| n.to_string()).collect(),
            // Only the first number is labelled: a shorter label list is allowed.
            phone_labels: vec!["mobile".into()],
            emails: vec![format!("{id}@example.com")],
            company: Some("Example GmbH".into()),
        }
    }

    #[test]
    fn imported_contacts_are_searched_and_name_callers() {
        let (db, rt) = (TempDb::new("contacts"), runtime());
        let (_store, phone_store) = open(&db, &rt);
        let book = Arc::new(AddressBook(Mutex::new(Ok(vec![
            contact("a1", "Alice Müller", &["0170 1234567"], &[]),
            contact(
                "b2",
                "Bob Stone",
                &["+49 30 7654321"],
                &["sip:2002@pbx.example.com"],
            ),
        ]))));
        let report = phone_store.import_local_contacts(book.clone()).unwrap();
        assert_eq!(
            report,
            ImportReport {
                added: 2,
                updated: 0,
                deleted: 0
            }
        );

        let found = phone_store.search_contacts("muller".into(), 10).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].display_name, "Alice Müller");
        assert_eq!(found[0].kind, ContactKind::Local);
        assert_eq!(found[0].rank, MatchRank::Prefix);
        assert_eq!(found[0].number.as_deref(), Some("0170 1234567"));
        assert_eq!(found[0].label.as_deref(), Some("mobile"));
        let by_number = phone_store.search_contacts("7654".into(), 0).unwrap();
        assert_eq!(by_number.len(), 1);
        assert_eq!(by_number[0].id, "b2");
        let all = phone_store.search_contacts("o".into(), 1).unwrap();
        assert_eq!(all.len(), 1, "the limit applies");

        // International form of a nationally stored number (default country DE).
        let caller = phone_store.lookup_caller("+491701234567".into()).unwrap();
        assert_eq!(
            caller,
            Some(CallerId {
                display_name: "Alice Müller".into(),
                kind: ContactKind::Local,
                id: "a1".into(),
                label: "mobile".into(),
            })
        );
        // A SIP address's user part is matched like a number.
        let caller = phone_store.lookup_caller("2002".into()).unwrap().unwrap();
        assert_eq!((caller.id.as_str(), caller.label.as_str()), ("b2", "sip"));
        assert_eq!(
            phone_store.lookup_caller("+1 555 0100".into()).unwrap(),
            None
        );
        assert_eq!(phone_store.lookup_caller("".into()).unwrap(), None);

        // The second import is a full sync: Bob changed, Alice was removed.
        *book.0.lock().unwrap() = Ok(vec![contact("b2", "Bob Stone", &["+49 30 7654322"], &[])]);
        let report = phone_store.import_local_contacts(book.clone()).unwrap();
        assert_eq!(
            report,
            ImportReport {
                added: 0,
                updated: 1,
                deleted: 1
            }
        );
        assert_eq!(
            phone_store.lookup_caller("01701234567".into()).unwrap(),
            None
        );

        // A failing address book changes nothing and says why.
        *book.0.lock().unwrap() = Err("the user denied the contacts permission".into());
        let r = phone_store.import_local_contacts(book.clone());
        assert!(
            matches!(&r, Err(HandsetError::Platform(m)) if m.contains("denied")),
            "{r:?}"
        );
        // Two contacts with one id are refused, not half-imported.
        *book.0.lock().unwrap() = Ok(vec![
            contact("x", "X", &["1"], &[]),
            contact("x", "Y", &["2"], &[]),
        ]);
        let r = phone_store.import_local_contacts(book);
        assert!(matches!(r, Err(HandsetError::InvalidArgument(_))), "{r:?}");
        assert_eq!(
            phone_store.search_contacts("bob".into(), 10).unwrap().len(),
            1
        );
    }

    /// A one-shot HTTP/1.1 server on 127.0.0.1: answers each connection with `status` and
    /// `body`, and keeps the request heads it saw.
    struct HttpServer {
        base: String,
        requests: Arc<Mutex<Vec<String>>>,
    }

    impl HttpServer {
        fn start(status: &'static str, body: String, connections: usize) -> Self {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let base = format!("http://{}/api", listener.local_addr().unwrap());
            let requests = Arc::new(Mutex::new(Vec::new()));
            let seen = requests.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming().take(connections) {
                    let Ok(mut stream) = stream else { return };
                    let mut head = String::new();
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                            break;
                        }
                        head.push_str(&line);
                    }
                    seen.lock().unwrap().push(head);
                    let response = format!(
                        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n\
                         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = stream.write_all(response.as_bytes());
                }
            });
            Self { base, requests }
        }
    }

    fn directory_config(base_url: &str) -> CompanyDirectoryConfig {
        CompanyDirectoryConfig {
            base_url: base_url.into(),
            bearer_token: Some("s3cret-t0ken".into()),
            custom_ca_pem: None,
            timeout_secs: 5,
            allow_insecure_http: true,
        }
    }

    #[test]
    fn company_directory_syncs_from_a_loopback_server() {
        let (db, rt) = (TempDb::new("directory"), runtime());
        let (_store, phone_store) = open(&db, &rt);
        let body = r#"{"contacts": [
            {"id": "u-1001", "name": "Carol Desk", "department": "Sales",
             "numbers": [{"type": "extension", "number": "1001"},
                         {"type": "work", "number": "+49 30 1234 1001"}],
             "emails": ["carol@example.com"]},
            {"id": 1002, "name": "Dave Lab", "numbers": [{"number": "1002"}]}
        ], "next": null, "full": true}"#;
        let server = HttpServer::start("200 OK", body.to_string(), 1);
        let config = directory_config(&format!("{}/", server.base));
        assert!(!format!("{config:?}").contains("s3cret"));

        // Polled by another executor than the phone's runtime, as Kotlin/Swift do.
        let report = block_on(phone_store.sync_company_directory(config)).unwrap();
        assert_eq!(
            report,
            SyncReport {
                added: 2,
                updated: 0,
                deleted: 0,
                unchanged: false,
                pages: 1
            }
        );
        let head = server.requests.lock().unwrap()[0].clone();
        assert!(head.starts_with("GET /api/contacts?page=1 "), "{head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("authorization: bearer s3cret-t0ken"),
            "{head}"
        );

        let listing = phone_store.company_contacts(server.base.clone()).unwrap();
        assert_eq!(listing.len(), 2);
        assert_eq!(listing[0].display_name, "Carol Desk");
        assert_eq!(listing[0].department.as_deref(), Some("Sales"));
        assert_eq!(
            listing[0].numbers[0],
            LabeledNumber {
                label: "extension".into(),
                number: "1001".into()
            }
        );
        assert_eq!(listing[1].id, "1002");
        let caller = phone_store
            .lookup_caller("+493012341001".into())
            .unwrap()
            .unwrap();
        assert_eq!(
            (caller.display_name.as_str(), caller.kind),
            ("Carol Desk", ContactKind::Company)
        );
        let found = phone_store.search_contacts("dave".into(), 5).unwrap();
        assert_eq!(found[0].kind, ContactKind::Company);

        assert_eq!(
            phone_store
                .clear_company_directory(format!("{}/", server.base))
                .unwrap(),
            2
        );
        assert!(
            phone_store
                .company_contacts(server.base)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn directory_failures_are_errors_not_panics() {
        let (db, rt) = (TempDb::new("directory-errors"), runtime());
        let (_store, phone_store) = open(&db, &rt);

        // Nothing listens on a port just released: connection refused.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = block_on(
            phone_store
                .sync_company_directory(directory_config(&format!("http://127.0.0.1:{port}/api"))),
        );
        assert!(
            matches!(&r, Err(HandsetError::Network(m)) if m.contains("unreachable")),
            "{r:?}"
        );

        let server = HttpServer::start("401 Unauthorized", String::new(), 1);
        let r = block_on(phone_store.sync_company_directory(directory_config(&server.base)));
        assert!(
            matches!(&r, Err(HandsetError::Directory(m)) if m.contains("401")),
            "{r:?}"
        );
        let text = format!(
            "{:?} {}",
            r,
            r.as_ref()
                .map_or_else(ToString::to_string, |_| String::new())
        );
        assert!(!text.contains("s3cret"), "{text}");

        let server = HttpServer::start("200 OK", "{\"contacts\": 7}".into(), 1);
        let r = block_on(phone_store.sync_company_directory(directory_config(&server.base)));
        assert!(
            matches!(&r, Err(HandsetError::Directory(m)) if m.contains("malformed")),
            "{r:?}"
        );

        let mut insecure = directory_config("http://127.0.0.1:9/api");
        insecure.allow_insecure_http = false;
        let r = block_on(phone_store.sync_company_directory(insecure));
        assert!(
            matches!(&r, Err(HandsetError::InvalidArgument(m)) if m.contains("https")),
            "{r:?}"
        );
        let r = block_on(phone_store.sync_company_directory(directory_config("not a url")));
        assert!(matches!(r, Err(HandsetError::InvalidArgument(_))), "{r:?}");
        assert!(
            phone_store
                .company_contacts("not a url".into())
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn the_sync_of_a_stopped_phone_is_an_error() {
        let db = TempDb::new("directory-stopped");
        let rt = runtime();
        let (_store, phone_store) = open(&db, &rt);
        rt.shutdown_background();
        let r = block_on(
            phone_store.sync_company_directory(directory_config("http://127.0.0.1:9/api")),
        );
        assert_eq!(r, Err(HandsetError::Stopped));
    }
}
