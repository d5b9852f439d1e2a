//! The Handset runtime: the only layer that performs I/O. It drives the sans-IO phone machine
//! of `handset-phone` (which owns every SIP decision) with sockets, TLS, DNS, timers, media
//! tasks, audio devices and the on-device database, from one run loop.

#![deny(clippy::string_slice, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::string_slice))]

pub mod audio;
pub mod dns;
mod gather;
mod handset;
pub mod media;
mod pinning;
mod run_loop;
mod store;
pub mod transport;

pub use handset::{
    CallOptions, Events, Handset, HandsetError, HandsetEvent, PushReport, RuntimeConfig,
};
pub use handset_media::stats::CallQuality;
pub use handset_phone::phone::{
    AccountConfig, AccountId, CallDirection, CallId, CallState, CallUpdate, DEFAULT_UDP_KEEPALIVE,
    EndReason, MessageId, PhoneError, PhoneEvent, RegistrationState, USER_AGENT,
};
pub use handset_phone::pin::{CertFingerprint, FingerprintError};
pub use handset_phone::push::{IncomingCallReport, PushError, ReportId};
pub use handset_sip::auth::Secret;
pub use handset_sip::usage::registration::{RegistrationFailure, RetryPolicy};
pub use handset_store::Store;
pub use transport::Transport;
