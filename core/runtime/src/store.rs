//! The phone's on-device database: the [`Directory`] the phone asks about callers (a read of
//! the last committed snapshot, which never waits for a write), and the sink task that carries
//! out the phone's [`Record`]s one after the other, off the run loop, delivering the events
//! that follow them after them. A store error is logged and the phone goes on: a full disk
//! must not stop it from ringing.

use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use handset_phone::phone::{CallDirection, CallerInfo, Directory, Record};
use handset_store::history::{CallRecord, Direction};
use handset_store::{Store, blocklist, contacts};
use tokio::sync::mpsc;

/// Records and events waiting for the sink before new ones are dropped (and logged).
const WRITE_QUEUE: usize = 4096;

/// Caller lookups in the store.
pub(crate) struct StoreDirectory {
    store: Arc<Store>,
    default_country: String,
}

impl StoreDirectory {
    pub(crate) fn new(store: Arc<Store>, default_country: String) -> Self {
        StoreDirectory {
            store,
            default_country,
        }
    }
}

impl Directory for StoreDirectory {
    fn caller(&self, number: &str) -> CallerInfo {
        CallerInfo {
            contact_name: contact_name(&self.store, number, &self.default_country),
            blocked: match self
                .store
                .read(|conn| blocklist::is_blocked(conn, number, &self.default_country))
            {
                Ok(blocked) => blocked,
                Err(error) => {
                    tracing::warn!(%error, "blocklist not readable; letting the caller through");
                    false
                }
            },
        }
    }
}

/// The contact name of a number, when the store knows it.
pub(crate) fn contact_name(store: &Store, number: &str, default_country: &str) -> Option<String> {
    match store.read(|conn| contacts::lookup_caller(conn, number, default_country)) {
        Ok(found) => found.map(|c| c.display_name),
        Err(error) => {
            tracing::warn!(%error, "caller lookup failed");
            None
        }
    }
}

/// Now, in Unix milliseconds (0 if the clock is before 1970).
fn unix_ms_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Turns the phone's `Instant`s into wall-clock times, read once per record.
struct WallClock {
    now: Instant,
    unix_ms: i64,
}

impl WallClock {
    fn read() -> Self {
        WallClock {
            now: Instant::now(),
            unix_ms: unix_ms_now(),
        }
    }

    fn unix_ms(&self, at: Instant) -> i64 {
        let ago =
            i64::try_from(self.now.saturating_duration_since(at).as_millis()).unwrap_or(i64::MAX);
        self.unix_ms.saturating_sub(ago)
    }
}

/// A record with its times made wall-clock, ready for the writer.
#[derive(Debug)]
pub(crate) enum Write {
    Call(CallRecord),
    Blocked { number: String, at_ms: i64 },
    Voicemail { account: String, new: u32, old: u32 },
}

impl Write {
    /// Converts a phone record now (so its `Instant`s still mean what they meant).
    pub(crate) fn from_record(record: Record) -> Write {
        let clock = WallClock::read();
        match record {
            Record::Call(call) => {
                let started_at = clock.unix_ms(call.started);
                let ended_at = clock.unix_ms(call.ended).max(started_at);
                Write::Call(CallRecord {
                    direction: match call.direction {
                        CallDirection::Incoming => Direction::Incoming,
                        CallDirection::Outgoing => Direction::Outgoing,
                    },
                    remote_number: call.remote_number,
                    remote_display_name: call.remote_name,
                    account: call.account,
                    started_at,
                    answered_at: call
                        .answered
                        .map(|a| clock.unix_ms(a).clamp(started_at, ended_at)),
                    ended_at,
                    end_reason: call.reason.to_string(),
                    answered_elsewhere: call.reason
                        == handset_phone::phone::EndReason::AnsweredElsewhere,
                    declined: call.direction == CallDirection::Incoming
                        && call.reason.is_declined(),
                })
            }
            Record::BlockedAttempt { number, at } => Write::Blocked {
                number,
                at_ms: clock.unix_ms(at),
            },
            Record::Voicemail { account, new, old } => Write::Voicemail { account, new, old },
        }
    }
}

/// What the sink carries out, in order.
#[derive(Debug)]
pub(crate) enum SinkItem {
    /// Write this record.
    Write(Write),
    /// Deliver this event to the application.
    Event(handset_phone::phone::PhoneEvent),
}

/// Starts the sink task of a runtime with a store: records are written and events delivered
/// in the order the phone produced them, so an application that hears a call ended finds it
/// in the history. The run loop never waits for it.
pub(crate) fn spawn_sink(
    store: Arc<Store>,
    shared: Arc<crate::handset::Shared>,
) -> mpsc::Sender<SinkItem> {
    let (tx, mut rx) = mpsc::channel::<SinkItem>(WRITE_QUEUE);
    tokio::spawn(async move {
        while let Some(item) = rx.recv().await {
            let write = match item {
                SinkItem::Event(event) => {
                    shared.deliver(event);
                    continue;
                }
                SinkItem::Write(write) => write,
            };
            let store = store.clone();
            let done = tokio::task::spawn_blocking(move || {
                let result = match &write {
                    Write::Call(record) => store
                        .write(|tx| handset_store::history::record_call(tx, record))
                        .map(drop),
                    Write::Blocked { number, at_ms } => store
                        .write(|tx| blocklist::log_blocked_attempt(tx, number, *at_ms))
                        .map(drop),
                    Write::Voicemail { account, new, old } => {
                        store.write(|tx| handset_store::voicemail::set_mwi(tx, account, *new, *old))
                    }
                };
                if let Err(error) = result {
                    tracing::warn!(%error, "not written to the store");
                }
            })
            .await;
            if done.is_err() {
                tracing::error!("a store write panicked");
            }
        }
    });
    tx
}
