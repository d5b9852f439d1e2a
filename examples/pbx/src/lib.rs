//! `handset-pbx`: a small SIP server for demos and tests, built on the same sans-IO SIP core
//! (`handset-sip`) and media core (`handset-media`) as the Handset softphone, driven by tokio
//! the way the Handset runtime drives them.
//!
//! It is an example and a test fixture, not part of the SDK: apps never link it. It exists so
//! `handset demo` and the end-to-end tests have a PBX on loopback with no outside server.
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
//! - an **echo bot** ([`BotConfig`], user `echo` by default) that rings, answers after a
//!   second, sends a tone for two seconds and then echoes back what it hears, over RTP or
//!   SDES-SRTP with Opus, PCMU or PCMA. It hangs up after `max_duration`, or ends on BYE.
//!
//! # Authentication of calls
//!
//! With [`PbxConfig::authenticate_calls`] (the default) every out-of-dialog request other
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

pub mod auth;
mod bot;
mod push;
mod push_inbox;
mod registrar;
mod server;
mod transport;

use std::net::SocketAddr;
use std::time::Duration;

use handset_media::sdp::MediaConfig;
use handset_sip::transaction::Timers;
use tokio::sync::{broadcast, mpsc, oneshot};

pub use push_inbox::PushInbox;
pub use transport::{Flow, Transport};

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

/// How a [`Pbx`] is set up. `Default` gives a PBX on `127.0.0.1:0` (a free port) with realm
/// `handset.demo`, no users, no push endpoint, a 10 s push wait and no bot.
#[derive(Debug, Clone)]
pub struct PbxConfig {
    /// Address for UDP and TCP (the same port for both; port 0 picks a free one).
    pub bind: SocketAddr,
    /// Digest realm.
    pub realm: String,
    /// `(user, password)` pairs: who may register and call.
    pub users: Vec<(String, String)>,
    /// Where push notifications are POSTed: `http://IP:PORT/path` (IP literal or
    /// `localhost`; no TLS). Without it push bindings are remembered but never used.
    pub push_endpoint: Option<String>,
    /// How long an INVITE is held for the callee to register after a push (default 10 s).
    pub push_wait: Duration,
    /// The echo bot, if any.
    pub bot: Option<BotConfig>,
    /// The `pbx` field of push payloads and the `Server` header (default `HANDSET-DEMO-1`).
    pub serial: String,
    /// Challenge out-of-dialog requests other than REGISTER with 407 (default `true`; see
    /// the crate documentation).
    pub authenticate_calls: bool,
    /// Binding lifetime when the REGISTER names none, in seconds (default 3600).
    pub default_expires: u32,
    /// Shortest binding lifetime accepted; shorter ones get 423 (default 1 s: a demo PBX
    /// lets tests use short lifetimes).
    pub min_expires: u32,
    /// Longest binding lifetime granted (default 3600 s).
    pub max_expires: u32,
    /// How long a nonce may be used (default 300 s); an older one gets `stale=true`.
    pub nonce_lifetime: Duration,
    /// SIP timers (T1, T2, T4) of the PBX's transactions.
    pub timers: Timers,
}

impl Default for PbxConfig {
    fn default() -> Self {
        PbxConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            realm: "handset.demo".into(),
            users: Vec::new(),
            push_endpoint: None,
            push_wait: Duration::from_secs(10),
            bot: None,
            serial: "HANDSET-DEMO-1".into(),
            authenticate_calls: true,
            default_expires: 3600,
            min_expires: 1,
            max_expires: 3600,
            nonce_lifetime: Duration::from_secs(300),
            timers: Timers::default(),
        }
    }
}

impl PbxConfig {
    /// Adds a user with its password.
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((user.into(), password.into()));
        self
    }

    /// Enables the echo bot.
    pub fn with_bot(mut self, bot: BotConfig) -> Self {
        self.bot = Some(bot);
        self
    }

    /// Sets the push endpoint (`http://IP:PORT/path`).
    pub fn with_push_endpoint(mut self, url: impl Into<String>) -> Self {
        self.push_endpoint = Some(url.into());
        self
    }

    /// Sets how long INVITEs wait for a pushed callee.
    pub fn with_push_wait(mut self, wait: Duration) -> Self {
        self.push_wait = wait;
        self
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

/// What happened in the PBX, for tests and demo output ([`Pbx::subscribe`]).
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

pub(crate) enum Command {
    Bindings(String, oneshot::Sender<Vec<BindingInfo>>),
    PushBinding(String, oneshot::Sender<Option<PushInfo>>),
    Shutdown(oneshot::Sender<()>),
}

/// A running PBX. Dropping it stops the server too (without waiting).
#[derive(Debug)]
pub struct Pbx {
    addr: SocketAddr,
    realm: String,
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<PbxEvent>,
}

impl Pbx {
    /// Binds the sockets and starts serving.
    pub async fn start(config: PbxConfig) -> Result<Pbx, PbxError> {
        let realm = config.realm.clone();
        let (events, _) = broadcast::channel(1024);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let addr = server::start(config, events.clone(), command_rx).await?;
        Ok(Pbx {
            addr,
            realm,
            commands,
            events,
        })
    }

    /// The address the PBX serves (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PBX as a registrar/proxy URI, `sip:127.0.0.1:PORT`.
    pub fn server_uri(&self) -> String {
        format!("sip:{}", self.addr)
    }

    /// The PBX as a TCP registrar/proxy URI, `sip:127.0.0.1:PORT;transport=tcp`.
    pub fn server_uri_tcp(&self) -> String {
        format!("sip:{};transport=tcp", self.addr)
    }

    /// The digest realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A stream of [`PbxEvent`]s from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PbxEvent> {
        self.events.subscribe()
    }

    /// The live bindings of `user`, newest first (empty for unknown users or a stopped PBX).
    pub async fn bindings(&self, user: &str) -> Vec<BindingInfo> {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Bindings(user.to_string(), tx))
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The push binding of `user`, if it has one.
    pub async fn push_binding(&self, user: &str) -> Option<PushInfo> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::PushBinding(user.to_string(), tx))
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Stops the server: sockets close, held INVITEs and bot calls are dropped.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}
