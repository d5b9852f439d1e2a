//! The one public error type and the one table that converts every internal error into it.
//!
//! Internal errors (`handset::HandsetError`, `handset::audio::AudioError`, panics) are rich and
//! change with the core; [`HandsetError`] is small, flat and stable: the foreign side sees one
//! exception class per variant carrying the readable message (`HandsetException.Dns` in
//! Kotlin, `HandsetError.Dns` in Swift).
//!
//! No panic crosses the boundary: synchronous exported bodies run inside [`guard`] (or
//! [`guard_or`] for infallible getters), asynchronous ones run as tasks on the phone's runtime
//! whose panics come back as [`HandsetError::Internal`] (see `phone::Core::run`).

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};

use handset::audio::AudioError;

/// Every error the bindings report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi(flat_error)]
pub enum HandsetError {
    /// An argument is malformed (address, path, digit, status code...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The account's server URI is not a usable SIP URI.
    #[error("invalid server URI: {0}")]
    InvalidServer(String),
    /// The server could not be located in DNS.
    #[error("cannot locate the server: {0}")]
    Dns(String),
    /// TLS settings are unusable (CA file, handshake).
    #[error("TLS: {0}")]
    Tls(String),
    /// A socket could not be opened or a connection failed.
    #[error("network: {0}")]
    Network(String),
    /// No account has this id in this phone.
    #[error("unknown account {0}")]
    UnknownAccount(String),
    /// No live call has this id.
    #[error("unknown call {0}")]
    UnknownCall(String),
    /// The call cannot do that now (e.g. answer an outgoing call).
    #[error("call {0}")]
    CallState(String),
    /// The call target is not a usable address.
    #[error("invalid call target: {0}")]
    InvalidTarget(String),
    /// The audio device or a WAV file could not be used.
    #[error("audio: {0}")]
    Audio(String),
    /// The platform's secret store holds nothing for this account.
    #[error("no password or HA1 stored for account {0}")]
    MissingSecret(String),
    /// A platform service (secret store, contacts, push, audio factory) failed.
    #[error("platform service failed: {0}")]
    Platform(String),
    /// The on-device database failed (file damaged or of a newer app version, disk full...).
    #[error("storage: {0}")]
    Storage(String),
    /// The company directory server refused the sync or answered something unusable
    /// (credentials refused, HTTP error status, malformed page). An unreachable server is
    /// [`HandsetError::Network`].
    #[error("company directory: {0}")]
    Directory(String),
    /// A push payload is malformed (not the documented JSON, a required field missing...).
    /// Nothing changed; the message names the problem, never the payload's values.
    #[error("push payload: {0}")]
    InvalidPush(String),
    /// An instant message was not delivered (rejected, unanswered, authentication failed).
    #[error("message not delivered: {0}")]
    MessageNotDelivered(String),
    /// The phone has been shut down.
    #[error("the Handset runtime has stopped")]
    Stopped,
    /// A bug inside Handset (a caught panic). Please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

/// A refused push payload.
impl From<handset::PushError> for HandsetError {
    fn from(e: handset::PushError) -> Self {
        Self::InvalidPush(e.to_string())
    }
}

/// The conversion table from the runtime's errors.
impl From<handset::HandsetError> for HandsetError {
    fn from(e: handset::HandsetError) -> Self {
        use handset::HandsetError as E;
        match e {
            E::Phone(e) => e.into(),
            E::Dns(m) => Self::Dns(m),
            E::Tls(m) => Self::Tls(m),
            E::Io(m) => Self::Network(m),
            E::MessageFailed(m) => Self::MessageNotDelivered(m),
            E::InvalidArgument(m) => Self::InvalidArgument(m),
            E::Stopped => Self::Stopped,
        }
    }
}

/// The conversion table from the phone machine's refusals.
impl From<handset::PhoneError> for HandsetError {
    fn from(e: handset::PhoneError) -> Self {
        use handset::PhoneError as E;
        let message = e.to_string();
        match e {
            E::InvalidServer(m) => Self::InvalidServer(m),
            E::UnknownAccount(id) => Self::UnknownAccount(id.to_string()),
            E::UnknownCall(id) => Self::UnknownCall(id.to_string()),
            E::CallState(..) => Self::CallState(message.trim_start_matches("call ").to_string()),
            E::InvalidTarget(m) => Self::InvalidTarget(m),
            E::InvalidMessage(m) => Self::InvalidArgument(format!("message: {m}")),
            E::Push(e) => e.into(),
            E::Route(e) => Self::InvalidArgument(e.to_string()),
            E::InvalidArgument(m) => Self::InvalidArgument(m),
        }
    }
}

/// The conversion table from audio device errors (all of them are `Audio` to the app).
impl From<AudioError> for HandsetError {
    fn from(e: AudioError) -> Self {
        Self::Audio(e.to_string())
    }
}

/// The conversion table from the store's errors: bad input is the caller's, anything else is
/// the database's.
impl From<handset_store::StoreError> for HandsetError {
    fn from(e: handset_store::StoreError) -> Self {
        match e {
            handset_store::StoreError::InvalidInput(m) => Self::InvalidArgument(m),
            other => Self::Storage(other.to_string()),
        }
    }
}

/// The conversion table from company directory sync errors (the bearer token is never in them).
impl From<handset_store::SyncError> for HandsetError {
    fn from(e: handset_store::SyncError) -> Self {
        use handset_store::SyncError as E;
        let message = e.to_string();
        match e {
            E::InvalidConfig(m) => Self::InvalidArgument(format!("company directory: {m}")),
            E::Unreachable(_) | E::Timeout | E::Transport(_) => Self::Network(message),
            E::Unauthorized { .. } | E::HttpStatus { .. } | E::Malformed { .. } => {
                Self::Directory(message)
            }
            E::Store(e) => e.into(),
        }
    }
}

/// The conversion table from provisioning code errors: a bad code is a bad argument (the
/// messages never contain the secret).
impl From<handset_phone::provisioning::ProvisionError> for HandsetError {
    fn from(e: handset_phone::provisioning::ProvisionError) -> Self {
        Self::InvalidArgument(e.to_string())
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic".to_string()
    }
}

/// Runs an exported body; a panic becomes [`HandsetError::Internal`].
pub(crate) fn guard<T>(body: impl FnOnce() -> Result<T, HandsetError>) -> Result<T, HandsetError> {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(result) => result,
        Err(payload) => {
            let message = panic_message(payload.as_ref());
            tracing::error!(%message, "panic caught at the FFI boundary");
            Err(HandsetError::Internal(message))
        }
    }
}

/// Runs an infallible exported body (a getter); a panic gives `fallback` instead.
pub(crate) fn guard_or<T>(fallback: T, body: impl FnOnce() -> T) -> T {
    guard(|| Ok(body())).unwrap_or(fallback)
}

#[cfg(test)]
mod tests {
    use super::*;
    use handset::{AccountId, CallId};

    #[test]
    fn every_runtime_error_maps_to_a_readable_public_one() {
        use handset::HandsetError as E;
        use handset::PhoneError as P;
        let cases = [
            (
                E::Phone(P::InvalidServer("x".into())),
                "invalid server URI: x",
            ),
            (E::Dns("no A".into()), "cannot locate the server: no A"),
            (E::Tls("bad CA".into()), "TLS: bad CA"),
            (E::Io("bind".into()), "network: bind"),
            (
                E::Phone(P::UnknownAccount(AccountId(3))),
                "unknown account 3",
            ),
            (E::Phone(P::UnknownCall(CallId(4))), "unknown call 4"),
            (
                E::Phone(P::CallState(CallId(5), "not incoming".into())),
                "call 5: not incoming",
            ),
            (
                E::Phone(P::InvalidTarget("@".into())),
                "invalid call target: @",
            ),
            (
                E::Phone(P::InvalidMessage("empty".into())),
                "invalid argument: message: empty",
            ),
            (E::MessageFailed("404".into()), "message not delivered: 404"),
            (
                E::InvalidArgument("volume 11".into()),
                "invalid argument: volume 11",
            ),
            (
                E::Phone(P::Route(handset_phone::screen::RouteError::Unavailable(
                    handset_phone::screen::AudioRoute::Speaker,
                ))),
                "invalid argument: audio route Speaker is not available",
            ),
            (
                E::Phone(P::Push(handset::PushError::Empty)),
                "push payload: push payload is empty",
            ),
            (E::Stopped, "the Handset runtime has stopped"),
        ];
        for (internal, text) in cases {
            assert_eq!(HandsetError::from(internal).to_string(), text);
        }
        let audio = HandsetError::from(AudioError::Device("no card".into()));
        assert_eq!(audio.to_string(), "audio: audio device error: no card");
    }

    #[test]
    fn store_directory_and_provisioning_errors_map_to_readable_public_ones() {
        use handset_phone::provisioning::ProvisionError;
        use handset_store::{StoreError, SyncError};
        let cases = [
            (
                HandsetError::from(StoreError::InvalidInput("digit 0".into())),
                "invalid argument: digit 0",
            ),
            (
                HandsetError::from(StoreError::TooNew {
                    found: 9,
                    supported: 3,
                }),
                "storage: the database has schema version 9, newer than the supported 3",
            ),
            (
                HandsetError::from(SyncError::InvalidConfig("base URL: x".into())),
                "invalid argument: company directory: base URL: x",
            ),
            (
                HandsetError::from(SyncError::Timeout),
                "network: the directory server did not answer in time",
            ),
            (
                HandsetError::from(SyncError::Unauthorized { status: 401 }),
                "company directory: the directory server refused the credentials (HTTP 401)",
            ),
            (
                HandsetError::from(SyncError::Store(StoreError::InvalidInput("x".into()))),
                "invalid argument: x",
            ),
            (
                HandsetError::from(ProvisionError::MissingUser),
                "invalid argument: provisioning code lacks `user`",
            ),
        ];
        for (public, text) in cases {
            assert_eq!(public.to_string(), text);
        }
        assert!(matches!(
            HandsetError::from(SyncError::Unreachable("refused".into())),
            HandsetError::Network(_)
        ));
    }

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let r: Result<(), _> = guard(|| panic!("boom {}", 7));
        assert_eq!(r, Err(HandsetError::Internal("boom 7".into())));
        assert_eq!(guard_or(1, || -> i32 { panic!("x") }), 1);
        assert_eq!(guard(|| Ok(2)), Ok(2));
    }
}
