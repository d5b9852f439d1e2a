//! uniffi bindings of the Handset runtime (`handset`), for Kotlin (Android, JVM) and Swift.
//!
//! - Objects, thin wrappers `{ inner: Arc<..> }`: [`HandsetPhone`] (owns a tokio runtime with
//!   2 workers and the SIP run loop), [`Account`], [`Call`], [`ForeignAudio`] (PCM handle of
//!   the platform's audio), [`TaskHandle`] (a subscription).
//! - Records and enums mirrored from the core with `From` ([`types`]): one [`CallState`], one
//!   [`EndReason`] (calls and push reports alike), [`RegistrationState`], [`CallUpdate`] with
//!   each call's CallKit / Telecom id.
//! - Subscriptions: a listener (callback interface) plus a [`TaskHandle`]; the current value
//!   is sent first, then every change; cancelling or dropping the handle ends it. The current
//!   value comes from a mirror of the runtime's events: every state, and every decision (call
//!   screen, audio route, how long the ended-call screen shows), is the phone machine's
//!   (`handset_phone::Phone`); this crate derives none and runs no timer.
//! - One public error enum, [`HandsetError`], filled through one conversion table; no panic
//!   crosses the boundary.
//! - Platform services are foreign traits given to the constructor: [`AudioDeviceFactory`],
//!   [`SecretStore`], [`ContactsSource`], [`PushTokenProvider`], [`AudioRoutePlatform`].
//!
//! Bindings are generated in library mode from the built `libhandset_ffi` by
//! `scripts/bindings.sh` (crate `handset-uniffi-bindgen`); the namespace is `handset`, the
//! Kotlin package `dev.handset` (see `uniffi.toml`).
//!
//! Unsafe code: none is written here, and `forbid(unsafe_code)` holds. uniffi's macros expand
//! to `extern "C"` functions and `#[unsafe(no_mangle)]` items in this crate, but the lint does
//! not fire on proc-macro expansions (spans from an external macro), so no `allow` is needed.

#![forbid(unsafe_code)]

mod error;
mod phone;
mod platform;
mod provisioning;
mod store;
mod task_handle;
pub mod types;

pub use error::HandsetError;
pub use phone::{
    Account, AudioRouteListener, Call, CallListener, CallScreenListener, HandsetPhone,
    PhoneEventListener, RegistrationListener,
};
pub use platform::{
    AudioConfig, AudioDeviceFactory, AudioRoutePlatform, ContactsSource, ForeignAudio,
    PlatformError, PlayoutStats, PushTokenProvider, SecretStore,
};
pub use provisioning::{
    MediaEncryption, ProvisionedAccount, parse_provisioning, parse_provisioning_qr,
};
pub use store::{
    BlockedAttempt, CallerId, CompanyContact, CompanyDirectoryConfig, ContactKind, ContactMatch,
    HistoryCursor, HistoryEntry, HistoryPage, ImportReport, LabeledNumber, MatchRank, NumberRule,
    NumberRuleKind, PhoneStore, SpeedDial, SyncReport, VoicemailCounts,
};
pub use task_handle::TaskHandle;
pub use types::*;

uniffi::setup_scaffolding!("handset");

/// The version string Handset sends as its `User-Agent`, e.g. `Handset/0.1.0`.
#[uniffi::export]
pub fn handset_version() -> String {
    handset::USER_AGENT.to_string()
}

/// The core's default media settings: Opus, PCMU, PCMA; DTMF; 20 ms; optional SDES-SRTP.
#[uniffi::export]
pub fn default_media_config() -> MediaConfig {
    handset_media::sdp::MediaConfig::default().into()
}

#[cfg(test)]
mod tests;
