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
    /// The phone has been shut down.
    #[error("the Handset runtime has stopped")]
    Stopped,
    /// A bug inside Handset (a caught panic). Please report it.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The conversion table from the runtime's errors.
impl From<handset::HandsetError> for HandsetError {
    fn from(e: handset::HandsetError) -> Self {
        use handset::HandsetError as E;
        let message = e.to_string();
        match e {
            E::InvalidServer(m) => Self::InvalidServer(m),
            E::Dns(m) => Self::Dns(m),
            E::Tls(m) => Self::Tls(m),
            E::Io(m) => Self::Network(m),
            E::UnknownAccount(id) => Self::UnknownAccount(id.to_string()),
            E::UnknownCall(id) => Self::UnknownCall(id.to_string()),
            E::CallState(..) => Self::CallState(message.trim_start_matches("call ").to_string()),
            E::InvalidTarget(m) => Self::InvalidTarget(m),
            E::Audio(m) => Self::Audio(m),
            E::Stopped => Self::Stopped,
        }
    }
}

/// The conversion table from audio device errors (all of them are `Audio` to the app).
impl From<AudioError> for HandsetError {
    fn from(e: AudioError) -> Self {
        Self::Audio(e.to_string())
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
        let cases = [
            (E::InvalidServer("x".into()), "invalid server URI: x"),
            (E::Dns("no A".into()), "cannot locate the server: no A"),
            (E::Tls("bad CA".into()), "TLS: bad CA"),
            (E::Io("bind".into()), "network: bind"),
            (E::UnknownAccount(AccountId(3)), "unknown account 3"),
            (E::UnknownCall(CallId(4)), "unknown call 4"),
            (
                E::CallState(CallId(5), "not incoming".into()),
                "call 5: not incoming",
            ),
            (E::InvalidTarget("@".into()), "invalid call target: @"),
            (E::Audio("busy".into()), "audio: busy"),
            (E::Stopped, "the Handset runtime has stopped"),
        ];
        for (internal, text) in cases {
            assert_eq!(HandsetError::from(internal).to_string(), text);
        }
        let audio = HandsetError::from(AudioError::Device("no card".into()));
        assert_eq!(audio.to_string(), "audio: audio device error: no card");
    }

    #[test]
    fn a_panic_becomes_an_internal_error() {
        let r: Result<(), _> = guard(|| panic!("boom {}", 7));
        assert_eq!(r, Err(HandsetError::Internal("boom 7".into())));
        assert_eq!(guard_or(1, || -> i32 { panic!("x") }), 1);
        assert_eq!(guard(|| Ok(2)), Ok(2));
    }
}
