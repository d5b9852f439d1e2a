//! `handset-pbx`: a small SIP server for demos and tests, built on the same sans-IO SIP core
//! (`handset-sip`) and media core (`handset-media`) as the Handset softphone.
//!
//! It is an example and a test fixture, not part of the SDK: apps never link it. It exists so
//! `handset demo` and the end-to-end tests have a PBX on loopback with no outside server.
//!
//! # Layout
//!
//! - [`machine`]: the sans-IO [`PbxMachine`] (registrar, digest authentication, proxy, push
//!   hold). No sockets, no clock, no threads: `handle_input(now, input)` / `poll_output()`,
//!   like `handset_phone::Phone`, so tests can run it in virtual time next to phones.
//! - [`Pbx`]: the tokio driver that runs the machine on real loopback sockets, POSTs its push
//!   notifications over HTTP and broadcasts its events.
//! - The echo bot (configured with [`BotConfig`]): a user agent of its own that registers to
//!   the machine like any user, run by the driver.
//! - [`PushInbox`]: a loopback stand-in for APNs/FCM that receives the POSTs.
//!
//! One [`Pbx`] listens on one address for UDP and TCP (same port) and is:
//!
//! - a **registrar** with MD5 digest authentication (`qop=auth`, nonces that expire, replay
//!   protection through the nonce count): a REGISTER without credentials gets 401, a wrong
//!   password 403; bindings expire; the 200 lists every binding with its remaining
//!   `expires`; `Expires: 0` (or `Contact: *`) unregisters;
//! - an **RFC 8599 push proxy**: a Contact carrying `pn-provider`/`pn-prid`/`pn-param` (as URI
//!   or header parameters) makes a push binding for its user. An INVITE for a user with a push
//!   binding is always held (RFC 8599 §5.6: the binding it has may be stale): the PBX POSTs
//!   an `incoming_call` JSON notification (format below, *Push payloads*) to the
//!   configured HTTP endpoint, answers the caller 100 + 180, and forwards the INVITE to the
//!   binding of the next successful REGISTER of that user; after `push_wait` without one the
//!   caller gets 480. A CANCEL while holding gets 200, the INVITE 487, and a `cancel`
//!   notification is POSTed (also sent, with reason `timeout`, when the wait runs out);
//! - a **transaction-stateful proxy** between users: out-of-dialog requests go to the user's
//!   newest live binding (over the flow its REGISTER came on, so TCP connections are reused),
//!   INVITEs are Record-Routed so every in-dialog request (ACK, BYE, re-INVITE, INFO, UPDATE,
//!   PRACK, OPTIONS) passes through the PBX; responses are relayed back; CANCEL is answered
//!   hop by hop and a CANCEL is sent downstream. Unknown user: 404; no binding and no push
//!   binding: 480. A forwarded INVITE that gets no final answer within 3 minutes is CANCELled
//!   and answered 408 (Timer C);
//! - an **echo bot** ([`BotConfig`], user `echo` by default, registered like any user) that
//!   rings, answers after a second, sends a tone for two seconds and then echoes back what it
//!   hears, over RTP or SDES-SRTP with Opus, PCMU or PCMA. It hangs up after `max_duration`, or ends on BYE.
//!
//! # Authentication of calls
//!
//! With [`MachineConfig::authenticate_calls`] (the default) every out-of-dialog request other
//! than REGISTER, OPTIONS, ACK and CANCEL must carry `Proxy-Authorization` for one of the
//! configured users: the first attempt gets 407 with a `Proxy-Authenticate` challenge (the
//! Handset `Call` machine answers it by itself), a wrong password gets 403. In-dialog
//! requests are not challenged: they can only follow an authenticated INVITE (the PBX only
//! routes dialogs it set up). Set it to `false` to let anyone call.
//!
//! # Push payloads
//!
//! ```json
//! {"type":"incoming_call","call_id":"<the INVITE's Call-ID>","from":"sip:alice@127.0.0.1",
//!  "from_name":"Alice","to":"bob","pbx":"HANDSET-DEMO-1","sent_at":1764000000000,
//!  "pn_provider":"apns","pn_prid":"<token>","pn_param":"<topic>"}
//! {"type":"cancel","call_id":"<the INVITE's Call-ID>","reason":"caller_cancelled",
//!  "to":"bob","pbx":"HANDSET-DEMO-1","sent_at":1764000000000,
//!  "pn_provider":"apns","pn_prid":"<token>","pn_param":"<topic>"}
//! ```
//!
//! `from` is the caller's From URI without parameters, `from_name` its display name (else
//! its user part), `sent_at` Unix time in milliseconds, `pn_*` are `null` when absent.
//!
//! # Example
//!
//! ```no_run
//! # async fn demo() -> Result<(), handset_pbx::PbxError> {
//! use handset_pbx::{BotConfig, Pbx, PbxConfig};
//! let pbx = Pbx::start(
//!     PbxConfig::default()
//!         .with_user("alice", "alice-secret")
//!         .with_user("bob", "bob-secret")
//!         .with_bot(BotConfig::default())
//!         .with_push_endpoint("http://127.0.0.1:8099/push"),
//! )
//! .await?;
//! let server = pbx.server_uri(); // "sip:127.0.0.1:PORT": the accounts' registrar/proxy
//! let mut events = pbx.subscribe();
//! # let _ = (server, events.recv().await);
//! pbx.shutdown().await;
//! # Ok(()) }
//! ```

#![forbid(unsafe_code)]
// Remote input is never sliced or indexed unchecked.
#![deny(clippy::string_slice, clippy::indexing_slicing)]
#![cfg_attr(test, allow(clippy::indexing_slicing, clippy::string_slice))]

pub mod auth;
mod bot;
mod driver;
pub mod machine;
mod push;
mod push_inbox;

use std::net::SocketAddr;
use std::time::Duration;

use handset_media::sdp::MediaConfig;

pub use driver::{Pbx, PbxConfig};
pub use handset_sip::transport::{Flow, Transport};
pub use machine::{ConfigError, MachineConfig, PbxMachine};
pub use push::{CancelReason, PushContent, PushNotification};
pub use push_inbox::PushInbox;

/// The echo bot's settings.
#[derive(Debug, Clone)]
pub struct BotConfig {
    /// The bot's user name: calls to `sip:<user>@<pbx>` reach it (default `echo`).
    pub user: String,
    /// Display name in its responses (default `Echo Bot`).
    pub display_name: String,
    /// Frequency of the greeting tone in Hz (default 440).
    pub tone_hz: u32,
    /// How long the tone plays before the echo starts (default 2 s).
    pub tone_duration: Duration,
    /// How long the bot rings before answering (default 1 s).
    pub answer_after: Duration,
    /// The bot hangs up after this long (default 10 minutes).
    pub max_duration: Duration,
    /// Codecs and SRTP policy of its answers (default: Opus, PCMU, PCMA; SDES-SRTP when
    /// offered).
    pub media: MediaConfig,
}

impl Default for BotConfig {
    fn default() -> Self {
        BotConfig {
            user: "echo".into(),
            display_name: "Echo Bot".into(),
            tone_hz: 440,
            tone_duration: Duration::from_secs(2),
            answer_after: Duration::from_secs(1),
            max_duration: Duration::from_secs(600),
            media: MediaConfig::default(),
        }
    }
}

/// Why the PBX could not start.
#[derive(Debug, thiserror::Error)]
pub enum PbxError {
    /// The UDP socket or TCP listener could not be bound.
    #[error("cannot bind {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The system's error.
        error: std::io::Error,
    },
    /// The push endpoint URL is unusable.
    #[error("invalid push endpoint: {0}")]
    InvalidPushEndpoint(String),
    /// Something else in the configuration is unusable.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
}

/// The RFC 8599 parameters of a push binding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushInfo {
    /// `pn-provider` (e.g. `apns`, `fcm`).
    pub provider: Option<String>,
    /// `pn-prid`: the device's push token.
    pub prid: Option<String>,
    /// `pn-param`: provider-specific (APNs topic, FCM project).
    pub param: Option<String>,
}

/// One registered contact, as [`Pbx::bindings`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindingInfo {
    /// The Contact URI.
    pub contact: String,
    /// The transport the REGISTER came on.
    pub transport: Transport,
    /// The address it came from (where requests for the user are sent).
    pub source: SocketAddr,
    /// Remaining lifetime.
    pub expires_in: Duration,
    /// Push parameters of this contact, if it had any.
    pub push: Option<PushInfo>,
}

/// Which notification a push was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushKind {
    /// `incoming_call`.
    IncomingCall,
    /// `cancel`.
    Cancel,
}

/// What happened in the PBX, for tests and demo output ([`Pbx::subscribe`]). The machine
/// reports most of them ([`machine::Output::Event`]); [`PbxEvent::PushDelivered`] comes from
/// the driver's HTTP client and the `Bot*` events from the echo bot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxEvent {
    /// A REGISTER added or refreshed a binding.
    Registered {
        /// The user.
        user: String,
        /// The Contact URI.
        contact: String,
        /// Granted lifetime in seconds.
        expires: u32,
        /// Whether the contact carried push parameters.
        push: bool,
    },
    /// A binding was removed (unregistered, or its TCP connection closed).
    Unregistered {
        /// The user.
        user: String,
        /// The Contact URI.
        contact: String,
    },
    /// Credentials were refused (403).
    AuthFailed {
        /// The user name the credentials claimed.
        user: String,
        /// The request's method.
        method: String,
    },
    /// A new request was forwarded to a user's binding.
    Routed {
        /// The request's method.
        method: String,
        /// Its Call-ID.
        call_id: String,
        /// The callee.
        to: String,
        /// Whether it had waited for a push wake-up.
        after_push: bool,
    },
    /// The PBX itself refused a new request for a user (404, 480, 483...).
    Refused {
        /// The request's method.
        method: String,
        /// Its Call-ID.
        call_id: String,
        /// The status sent.
        status: u16,
    },
    /// An INVITE is held and a push notification was queued.
    PushSent {
        /// The INVITE's Call-ID.
        call_id: String,
        /// The callee.
        user: String,
    },
    /// The push endpoint answered (`status`) or could not be reached (`error`).
    PushDelivered {
        /// Which notification.
        kind: PushKind,
        /// The INVITE's Call-ID.
        call_id: String,
        /// The callee.
        user: String,
        /// The HTTP status, when an answer came.
        status: Option<u16>,
        /// What went wrong, when none came.
        error: Option<String>,
    },
    /// A held INVITE got no REGISTER in time: 480 sent.
    PushTimeout {
        /// The INVITE's Call-ID.
        call_id: String,
        /// The callee.
        user: String,
    },
    /// The caller cancelled an INVITE (held or forwarded).
    Cancelled {
        /// The INVITE's Call-ID.
        call_id: String,
    },
    /// A final response to an INVITE went back to the caller.
    CallAnswered {
        /// The INVITE's Call-ID.
        call_id: String,
        /// The status.
        status: u16,
    },
    /// A dialog the PBX routes ended (BYE answered).
    CallEnded {
        /// The Call-ID.
        call_id: String,
    },
    /// The echo bot answered a call.
    BotAnswered {
        /// The Call-ID.
        call_id: String,
        /// The codec in use.
        codec: String,
        /// Whether SRTP protects the media.
        srtp: bool,
    },
    /// An echo bot call ended.
    BotEnded {
        /// The Call-ID.
        call_id: String,
    },
}
