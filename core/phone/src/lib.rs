//! Sans-IO phone logic of Handset: every decision the runtime and the platform shells (Android,
//! iOS) carry out but must not make themselves.
//!
//! - [`phone`]: the phone machine, the one transaction user: accounts, registrations,
//!   subscriptions, calls, messages, push wake binding, history records, the call state and
//!   end reasons the application sees. Start here.
//! - [`screen`]: call screen state (proximity wake lock, keep-screen-on, rotation, incoming-call
//!   UI) from a documented rule table, and the [`screen::AudioRoutes`] route-change rules.
//! - [`push`]: VoIP push wake-up (RFC 8599 Contact parameters, the push payload format, the
//!   report-at-once / wait-for-INVITE machine, keep-alive policy).
//! - [`provisioning`]: accounts from a QR code or a `handset://provision` URI.
//! - [`pin`]: the SHA-256 fingerprint of a pinned PBX certificate.
//!
//! Nothing in this crate performs I/O, reads the clock, sleeps or spawns threads (a
//! `clippy.toml` forbids the clock and thread calls): time comes in as an argument and work goes
//! out as values (decisions, commands, actions) the runtime or the shell executes. Bad input is
//! an error value, never a panic.

#![forbid(unsafe_code)]
#![deny(clippy::string_slice, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::string_slice))]

pub mod phone;
pub mod pin;
pub mod provisioning;
pub mod push;
pub mod screen;

pub use phone::{
    AccountConfig, AccountId, CallDirection, CallId, CallState, CallUpdate, Command, EndReason,
    Input, MessageId, Output, Phone, PhoneConfig, PhoneError, PhoneEvent, RegistrationState, Reply,
};
