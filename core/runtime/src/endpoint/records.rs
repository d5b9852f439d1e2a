//! What the run loop keeps in the store: every call in the history, blocked callers in the
//! blocklist log, and contact names for incoming callers. A store error is logged and the call
//! goes on: a full disk must not stop the phone from ringing.

use std::time::{SystemTime, UNIX_EPOCH};

use handset_store::history::{CallRecord, Direction};
use handset_store::{Store, blocklist, contacts};

use super::RunLoop;

/// Now, in Unix milliseconds (0 if the clock is before 1970).
pub(super) fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A call for the history, finished now.
pub(super) struct CallSummary {
    pub(super) direction: Direction,
    pub(super) remote_number: String,
    pub(super) remote_name: Option<String>,
    /// The account's address-of-record.
    pub(super) account: String,
    /// Unix ms.
    pub(super) started_at: i64,
    /// Unix ms.
    pub(super) answered_at: Option<i64>,
    pub(super) end_reason: String,
    pub(super) answered_elsewhere: bool,
    /// An incoming call the user declined here.
    pub(super) declined: bool,
}

/// The caller's contact name, when there is a store and a contact with this number.
pub(super) fn contact_name(
    store: Option<&Store>,
    number: &str,
    default_country: &str,
) -> Option<String> {
    let store = store?;
    match store.read(|conn| contacts::lookup_caller(conn, number, default_country)) {
        Ok(found) => found.map(|c| c.display_name),
        Err(error) => {
            tracing::warn!(%error, "caller lookup failed");
            None
        }
    }
}

impl RunLoop {
    /// Records a finished call in the history.
    pub(super) fn record_call(&self, call: &CallSummary) {
        let Some(store) = &self.store else {
            return;
        };
        let ended_at = unix_ms().max(call.started_at);
        let record = CallRecord {
            direction: call.direction,
            remote_number: call.remote_number.clone(),
            remote_display_name: call.remote_name.clone(),
            account: call.account.clone(),
            started_at: call.started_at,
            answered_at: call.answered_at.map(|a| a.clamp(call.started_at, ended_at)),
            ended_at,
            end_reason: call.end_reason.clone(),
            answered_elsewhere: call.answered_elsewhere,
            declined: call.declined,
        };
        if let Err(error) = store.write(|tx| handset_store::history::record_call(tx, &record)) {
            tracing::warn!(%error, "call not recorded in the history");
        }
    }

    /// Whether `number` is blocked; a blocked attempt is logged.
    pub(super) fn blocked(&self, number: &str) -> bool {
        let Some(store) = &self.store else {
            return false;
        };
        let blocked =
            match store.read(|conn| blocklist::is_blocked(conn, number, &self.default_country)) {
                Ok(blocked) => blocked,
                Err(error) => {
                    tracing::warn!(%error, "blocklist not readable; letting the call through");
                    false
                }
            };
        if blocked
            && let Err(error) =
                store.write(|tx| blocklist::log_blocked_attempt(tx, number, unix_ms()))
        {
            tracing::warn!(%error, "blocked call not logged");
        }
        blocked
    }

    /// The caller's contact name, from the store.
    pub(super) fn lookup_contact(&self, number: &str) -> Option<String> {
        contact_name(self.store.as_deref(), number, &self.default_country)
    }
}
