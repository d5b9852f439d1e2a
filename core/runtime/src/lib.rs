//! The Handset runtime: the only layer that performs I/O (sockets, TLS, DNS, timers). It
//! drives the sans-IO machines of `handset-sip` from one run loop.

pub mod audio;
pub mod dns;
pub mod endpoint;
pub mod media;
pub mod transport;

pub use endpoint::{
    AccountConfig, AccountId, CallId, CallOptions, CallUpdate, EndReason, Handset, HandsetError,
    HandsetEvent, IncomingCallReport, PushReport, RuntimeConfig, USER_AGENT,
};
pub use handset_phone::push::{EndReason as PushEndReason, PushError, ReportId};
pub use handset_sip::auth::Secret;
pub use handset_sip::usage::registration::{RegistrationEvent, RegistrationFailure, RetryPolicy};
pub use handset_store::Store;
pub use transport::Transport;
