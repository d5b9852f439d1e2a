//! The run loop: owns the transports, the transaction layer and the accounts, and feeds the
//! sans-IO machines with what arrives and with the clock.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use handset_sip::auth::{CredentialStore, Credentials, Secret};
use handset_sip::message::{
    HeaderName, Host, Message, Method, NameAddr, Request, Response, SipUri, Uri,
};
use handset_sip::transaction::{
    Output, Timers, TransactionEvent, TransactionId, TransactionLayer, new_branch,
};
use handset_sip::usage::message_summary::MessageSummary;
use handset_sip::usage::registration::{
    ALLOW, Registration, RegistrationConfig, RegistrationEvent, RegistrationFailure,
    RegistrationOutput, RegistrationState, RetryPolicy, TransactionFailure,
};
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use tokio::sync::{mpsc, oneshot};

use crate::audio::AudioDevice;
use crate::dns::{ResolverSource, ServerTarget, SipResolver, Target};
use crate::media::CallQuality;
use crate::transport::{Flow, Incoming, Transport, TransportError, Transports, tls_config};
use handset_media::sdp::MediaConfig;
use handset_phone::push::{EndReason as PushEndReason, PushError, PushWake, ReportId};
use handset_store::Store;

mod calls;
mod messages;
mod push;
mod records;
mod voicemail;

pub use handset_phone::push::IncomingCallReport;
pub use handset_sip::usage::invite::EndReason;
pub use push::PushReport;

/// The `User-Agent` / `Server` value Handset sends.
pub const USER_AGENT: &str = concat!("Handset/", env!("CARGO_PKG_VERSION"));

/// Identifies an account inside one [`Handset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub u64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A SIP account: where to register and with which credentials.
#[derive(Clone)]
pub struct AccountConfig {
    /// Registrar/proxy URI, e.g. `sip:pbx.example.com`, `sip:127.0.0.1:5060;transport=tcp`
    /// or `sips:pbx.example.com`. Located with RFC 3263 (NAPTR/SRV/A) unless numeric.
    pub server: String,
    /// User part of the address-of-record.
    pub user: String,
    /// Domain of the address-of-record; defaults to the server's host.
    pub domain: Option<String>,
    /// Authentication user name when it differs from `user`.
    pub auth_user: Option<String>,
    /// Password or stored HA1.
    pub secret: Secret,
    /// Transport; defaults to the URI's `transport` parameter, then to what DNS says.
    pub transport: Option<Transport>,
    /// Extra PEM CA file trusted for TLS (private PBX CAs).
    pub ca_file: Option<PathBuf>,
    /// Requested registration lifetime in seconds.
    pub expires: u32,
    /// Display name.
    pub display_name: Option<String>,
    /// RFC 5626 instance id (`urn:uuid:...`); one is made up when absent.
    pub instance_id: Option<String>,
    /// Retry timing after failures.
    pub retry: RetryPolicy,
    /// Codecs, SRTP policy and packetization for this account's calls.
    pub media: MediaConfig,
    /// Extra Contact URI parameters, e.g. RFC 8599 `pn-provider`/`pn-prid`/`pn-param` so the
    /// server can wake the app by push.
    pub contact_params: Vec<(String, Option<String>)>,
    /// Register with the server. Without registration the account can still place calls
    /// (sent straight to the server, e.g. a PBX trunk or a test peer) but receives none.
    pub register: bool,
    /// Subscribe to the account's voicemail message-waiting indication (RFC 3842
    /// `message-summary`) once registered; counts arrive as [`HandsetEvent::Voicemail`].
    pub voicemail: bool,
}

impl fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountConfig")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("transport", &self.transport)
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl AccountConfig {
    /// An account with a password, default lifetime (3600 s) and default retry policy.
    pub fn new(
        server: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        AccountConfig {
            server: server.into(),
            user: user.into(),
            domain: None,
            auth_user: None,
            secret: Secret::Password(password.into()),
            transport: None,
            ca_file: None,
            expires: 3600,
            display_name: None,
            instance_id: None,
            retry: RetryPolicy::default(),
            media: MediaConfig::default(),
            register: true,
            contact_params: Vec::new(),
            voicemail: false,
        }
    }
}

/// Runtime-wide settings.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// Local address of the UDP socket (port 0 picks one).
    pub bind: SocketAddr,
    /// CRLF keep-alive interval on TCP/TLS connections (RFC 5626 recommends 95–120 s).
    pub keepalive: Duration,
    /// Where DNS answers come from.
    pub dns: ResolverSource,
    /// Transaction timers (T1, T2, T4).
    pub timers: Timers,
    /// The on-device database: every call goes into its history, blocked numbers are refused
    /// with 603, and incoming callers are looked up in its contacts. Without one, none of that
    /// happens.
    pub store: Option<Arc<Store>>,
    /// Country (ISO 3166 alpha-2, e.g. "US", "DE") that national numbers are dialled in, for
    /// matching callers against contacts and the blocklist.
    pub default_country: String,
    /// How long a call reported from a push waits for its INVITE before it ends as missed.
    pub push_wait_for_invite: Duration,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            keepalive: Duration::from_secs(100),
            dns: ResolverSource::System,
            timers: Timers::default(),
            store: None,
            default_country: "US".to_string(),
            push_wait_for_invite: handset_phone::push::DEFAULT_WAIT_FOR_INVITE,
        }
    }
}

/// What the runtime reports to the application.
#[derive(Debug, Clone, PartialEq)]
pub enum HandsetEvent {
    /// An account's registration changed.
    Registration {
        /// Which account.
        account: AccountId,
        /// What happened.
        event: RegistrationEvent,
        /// Transport detail behind a transport failure (e.g. the TLS certificate problem).
        detail: Option<String>,
    },
    /// Something happened to a call.
    Call {
        /// Which call.
        call: CallId,
        /// What happened.
        update: CallUpdate,
    },
    /// A call reported from a push ended before its INVITE arrived (cancel push, no INVITE in
    /// time, or declined on the ringing screen): end it on CallKit / Telecom. Calls whose
    /// INVITE arrived end through [`CallUpdate::Ended`] instead.
    PushReportEnded {
        /// The report ([`IncomingCallReport::report_id`]).
        report_id: ReportId,
        /// Why.
        reason: PushEndReason,
    },
    /// A blocked number called; it was refused with 603 Decline and logged in the store.
    CallBlocked {
        /// The account it came in on.
        account: AccountId,
        /// The caller's address.
        from: String,
    },
    /// An instant message (RFC 3428 MESSAGE, `text/plain`) arrived; it was answered 200.
    MessageReceived {
        /// The account it came in on.
        account: AccountId,
        /// The sender's address.
        from: String,
        /// The sender's display name, if sent.
        display_name: Option<String>,
        /// The sender's name from the contacts in the store, if known.
        contact_name: Option<String>,
        /// The text.
        text: String,
    },
    /// An account was removed (after its binding was removed, when it had one).
    AccountRemoved {
        /// Which account.
        account: AccountId,
    },
    /// The voicemail server sent the account's message-waiting state (RFC 3842); the voice
    /// counts are also kept in the store.
    Voicemail {
        /// Which account.
        account: AccountId,
        /// Messages waiting, and new/old (urgent) counts per message class.
        summary: MessageSummary,
    },
}

/// Identifies a call inside one [`Handset`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What happened to a call.
#[derive(Debug, Clone, PartialEq)]
pub enum CallUpdate {
    /// A call came in; answer it with [`Handset::answer`] or refuse it with [`Handset::reject`].
    Incoming {
        /// The account it came in on.
        account: AccountId,
        /// The caller's address.
        from: String,
        /// The caller's display name, if sent.
        display_name: Option<String>,
        /// The caller's name from the contacts in the store (local or company), if known.
        contact_name: Option<String>,
        /// The push report this INVITE belongs to, when the call was announced by push
        /// (already shown on CallKit / Telecom under this id).
        push_report: Option<ReportId>,
        /// The INVITE's Call-ID (a push that comes after the INVITE names the call by it:
        /// [`IncomingCallReport::call_id`]).
        sip_call_id: String,
    },
    /// The callee is being alerted.
    Ringing,
    /// Early media (183 with SDP) flows.
    EarlyMedia,
    /// The call is answered and media flows.
    Answered {
        /// Negotiated codec.
        codec: String,
        /// Whether SRTP protects the media.
        srtp: bool,
    },
    /// A DTMF digit arrived (RFC 4733 or SIP INFO).
    Dtmf {
        /// The digit.
        digit: char,
    },
    /// The call was put on hold or resumed by either side.
    Hold {
        /// Whether the call is now on hold.
        on_hold: bool,
    },
    /// The call ended.
    Ended {
        /// Why ([`EndReason::is_normal`], [`EndReason::status`]; `Display` gives words).
        reason: EndReason,
        /// Another device of the user answered it (CANCEL with RFC 3326
        /// `Reason: SIP;cause=200`): not a missed call.
        answered_elsewhere: bool,
        /// Media statistics, when media flowed.
        quality: Option<CallQuality>,
    },
}

/// How to place or answer a call.
pub struct CallOptions {
    /// The audio device of the call.
    pub device: Box<dyn AudioDevice>,
    /// Media settings; the account's when `None`.
    pub media: Option<MediaConfig>,
}

impl fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("device", &self.device.name())
            .field("media", &self.media)
            .finish()
    }
}

/// Errors of the runtime API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandsetError {
    /// The server URI is not a usable SIP URI.
    #[error("invalid server URI: {0}")]
    InvalidServer(String),
    /// The server could not be located in DNS.
    #[error("cannot locate the server: {0}")]
    Dns(String),
    /// The TLS settings are unusable.
    #[error("{0}")]
    Tls(String),
    /// A socket could not be opened.
    #[error("network: {0}")]
    Io(String),
    /// No account has this id.
    #[error("unknown account {0}")]
    UnknownAccount(AccountId),
    /// No call has this id (or it has ended).
    #[error("unknown call {0}")]
    UnknownCall(CallId),
    /// The call cannot do that now (e.g. answer an outgoing call).
    #[error("call {0}: {1}")]
    CallState(CallId, String),
    /// The call target is not a usable address.
    #[error("invalid call target: {0}")]
    InvalidTarget(String),
    /// The audio device could not start.
    #[error("audio device: {0}")]
    Audio(String),
    /// The message cannot be sent as it is (empty, too long).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// The message was not delivered (rejected, unanswered, authentication failed).
    #[error("message not delivered: {0}")]
    MessageFailed(String),
    /// The runtime has stopped.
    #[error("the Handset runtime has stopped")]
    Stopped,
}

enum Command {
    AddAccount(
        Box<AccountConfig>,
        oneshot::Sender<Result<AccountId, HandsetError>>,
    ),
    Register(AccountId, oneshot::Sender<Result<(), HandsetError>>),
    Unregister(AccountId, oneshot::Sender<Result<(), HandsetError>>),
    RemoveAccount(AccountId, oneshot::Sender<Result<(), HandsetError>>),
    SendMessage(
        AccountId,
        String,
        String,
        oneshot::Sender<Result<(), HandsetError>>,
    ),
    SetContactParams(
        AccountId,
        Vec<(String, Option<String>)>,
        oneshot::Sender<Result<(), HandsetError>>,
    ),
    /// The push machine has work (a push arrived).
    PushWork,
    /// The user declined this push report before its INVITE came.
    PushDeclined(ReportId),
    SetForeground(bool),
    Call(
        AccountId,
        String,
        Box<CallOptions>,
        oneshot::Sender<Result<CallId, HandsetError>>,
    ),
    CallAction(
        CallId,
        CallAction,
        oneshot::Sender<Result<(), HandsetError>>,
    ),
    Shutdown(oneshot::Sender<()>),
}

/// What the application asks of a call.
enum CallAction {
    Answer(Box<CallOptions>),
    Reject(u16),
    Hangup,
    Dtmf(String),
    Hold(bool),
    Mute(bool),
}

/// A running Handset: a handle to the run loop task. Cloning shares the same runtime.
#[derive(Clone)]
pub struct Handset {
    commands: mpsc::UnboundedSender<Command>,
    push: Arc<Mutex<push::PushState>>,
    store: Option<Arc<Store>>,
    default_country: String,
}

impl Handset {
    /// Starts the run loop on the current tokio runtime. Returns the handle and the event
    /// stream.
    pub async fn start(
        config: RuntimeConfig,
    ) -> Result<(Handset, mpsc::UnboundedReceiver<HandsetEvent>), HandsetError> {
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let transports = Transports::bind(config.bind, incoming_tx, config.keepalive)
            .await
            .map_err(|e| HandsetError::Io(e.to_string()))?;
        let resolver =
            SipResolver::new(config.dns.clone()).map_err(|e| HandsetError::Dns(e.to_string()))?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let (commands_tx, commands_rx) = mpsc::unbounded_channel();
        let (media_tx, media_rx) = mpsc::unbounded_channel();
        let push = Arc::new(Mutex::new(push::PushState::new(PushWake::new(
            config.push_wait_for_invite,
        ))));
        let run_loop = RunLoop {
            push: push.clone(),
            messages: HashMap::new(),
            next_message: 1,
            store: config.store.clone(),
            default_country: config.default_country.clone(),
            foreground: true,
            calls: HashMap::new(),
            next_call: 1,
            dtls_cert: None,
            media_events: media_tx,
            transports,
            resolver,
            layer: TransactionLayer::new(config.timers),
            accounts: HashMap::new(),
            transactions: HashMap::new(),
            events: events_tx,
            rng: StdRng::from_os_rng(),
            next_account: 1,
        };
        tokio::spawn(run_loop.run(commands_rx, incoming_rx, media_rx));
        Ok((
            Handset {
                commands: commands_tx,
                push,
                store: config.store,
                default_country: config.default_country,
            },
            events_rx,
        ))
    }

    async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, HandsetError>>) -> Command,
    ) -> Result<T, HandsetError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .map_err(|_| HandsetError::Stopped)?;
        rx.await.map_err(|_| HandsetError::Stopped)?
    }

    /// Adds an account and starts registering it. Progress arrives as events.
    pub async fn add_account(&self, config: AccountConfig) -> Result<AccountId, HandsetError> {
        self.request(|tx| Command::AddAccount(Box::new(config), tx))
            .await
    }

    /// Registers the account again now (after a failure or an unregister).
    pub async fn register(&self, account: AccountId) -> Result<(), HandsetError> {
        self.request(|tx| Command::Register(account, tx)).await
    }

    /// Removes the account's binding; `Unregistered` follows as an event.
    pub async fn unregister(&self, account: AccountId) -> Result<(), HandsetError> {
        self.request(|tx| Command::Unregister(account, tx)).await
    }

    /// Sends `text` as an instant message (RFC 3428 page mode, `text/plain`, at most 1300
    /// bytes) from `account` to `target` (a SIP URI, or a user or number in the account's
    /// domain). Returns once it is delivered (2xx), or with
    /// [`HandsetError::MessageFailed`] saying why not.
    pub async fn send_message(
        &self,
        account: AccountId,
        target: &str,
        text: &str,
    ) -> Result<(), HandsetError> {
        let (target, text) = (target.to_string(), text.to_string());
        self.request(|tx| Command::SendMessage(account, target, text, tx))
            .await
    }

    /// Unregisters the account (when it is registered) and forgets it;
    /// [`HandsetEvent::AccountRemoved`] follows. Its calls go on until they end.
    pub async fn remove_account(&self, account: AccountId) -> Result<(), HandsetError> {
        self.request(|tx| Command::RemoveAccount(account, tx)).await
    }

    /// Replaces the account's extra Contact parameters (a new push token: RFC 8599
    /// `pn-provider`/`pn-prid`/`pn-param`, or none to stop push) and registers again with them.
    pub async fn set_contact_params(
        &self,
        account: AccountId,
        params: Vec<(String, Option<String>)>,
    ) -> Result<(), HandsetError> {
        self.request(|tx| Command::SetContactParams(account, params, tx))
            .await
    }

    /// Handles a VoIP push payload (see `handset_phone::push` for the JSON format) and returns
    /// at once, without network, what to report to CallKit / Telecom. Then, in the background,
    /// the push-enabled accounts register again so the PBX can deliver the INVITE, which
    /// arrives as [`CallUpdate::Incoming`] carrying this report's id. If it does not come in
    /// [`RuntimeConfig::push_wait_for_invite`], or a cancel push comes first,
    /// [`HandsetEvent::PushReportEnded`] follows and the history records a missed call.
    /// A duplicate push returns the same report. A malformed payload is an error and changes
    /// nothing.
    pub fn handle_push(&self, payload: &[u8]) -> Result<PushReport, PushError> {
        let report = push::lock(&self.push).handle_push(Instant::now(), payload)?;
        let contact_name = self.contact_name(&report.caller_number);
        // A stopped run loop cannot re-register; the report is still the right answer.
        let _ = self.commands.send(Command::PushWork);
        Ok(PushReport {
            report,
            contact_name,
        })
    }

    /// The user declined a push-reported call on the ringing screen before its INVITE arrived:
    /// the report ends, and the INVITE, if it still comes, is refused with 603. Returns
    /// whether the report was still waiting.
    pub fn decline_push_report(&self, report_id: ReportId) -> bool {
        let ended = push::lock(&self.push).wake.end_report(
            Instant::now(),
            report_id,
            PushEndReason::DeclinedByUser,
        );
        if ended {
            let _ = self.commands.send(Command::PushDeclined(report_id));
        }
        ended
    }

    /// Tells the runtime whether the app is in the foreground. In the background with push
    /// enabled on an account (RFC 8599 `pn-provider` in its Contact), no keep-alive timers run:
    /// the OS wakes the app by push instead (see `handset_phone::push::keepalive_policy`).
    pub fn set_foreground(&self, foreground: bool) -> Result<(), HandsetError> {
        self.commands
            .send(Command::SetForeground(foreground))
            .map_err(|_| HandsetError::Stopped)
    }

    /// The caller's name from the store's contacts, if there is a store and a match.
    fn contact_name(&self, number: &str) -> Option<String> {
        records::contact_name(self.store.as_deref(), number, &self.default_country)
    }

    /// Places a call from `account` to `target` (a SIP URI, or a user or number that is
    /// dialled in the account's domain). Progress arrives as [`HandsetEvent::Call`] events.
    pub async fn call(
        &self,
        account: AccountId,
        target: &str,
        options: CallOptions,
    ) -> Result<CallId, HandsetError> {
        let target = target.to_string();
        self.request(|tx| Command::Call(account, target, Box::new(options), tx))
            .await
    }

    async fn act(&self, call: CallId, action: CallAction) -> Result<(), HandsetError> {
        self.request(|tx| Command::CallAction(call, action, tx))
            .await
    }

    /// Answers an incoming call.
    pub async fn answer(&self, call: CallId, options: CallOptions) -> Result<(), HandsetError> {
        self.act(call, CallAction::Answer(Box::new(options))).await
    }

    /// Refuses an incoming call with `status` (486 Busy Here, 603 Decline...).
    pub async fn reject(&self, call: CallId, status: u16) -> Result<(), HandsetError> {
        self.act(call, CallAction::Reject(status)).await
    }

    /// Ends a call: BYE when answered, CANCEL while ringing out, 486 while ringing in.
    pub async fn hangup(&self, call: CallId) -> Result<(), HandsetError> {
        self.act(call, CallAction::Hangup).await
    }

    /// Sends DTMF digits (RFC 4733 events in the media stream).
    pub async fn send_dtmf(&self, call: CallId, digits: &str) -> Result<(), HandsetError> {
        self.act(call, CallAction::Dtmf(digits.to_string())).await
    }

    /// Puts the call on hold (`true`) or resumes it (`false`) with a re-INVITE.
    pub async fn hold(&self, call: CallId, on_hold: bool) -> Result<(), HandsetError> {
        self.act(call, CallAction::Hold(on_hold)).await
    }

    /// Mutes (`true`) or unmutes the call's microphone: silence is sent while muted. Works
    /// before media starts too (the call starts muted).
    pub async fn mute(&self, call: CallId, muted: bool) -> Result<(), HandsetError> {
        self.act(call, CallAction::Mute(muted)).await
    }

    /// Stops the run loop, closing every connection. Bindings are not removed: call
    /// [`Self::unregister`] first for that.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

struct Account {
    user: String,
    /// Removal asked for: forget the account once its binding and subscription are gone.
    removing: bool,
    /// The binding is gone after a removal.
    unregistered: bool,
    aor: SipUri,
    display_name: Option<String>,
    credentials: CredentialStore,
    media: MediaConfig,
    registration: Registration,
    targets: Vec<Target>,
    current: usize,
    tls: Option<Arc<rustls::ClientConfig>>,
    /// The REGISTER in flight, without its Via, kept to retry it on the next target.
    in_flight: Option<Request>,
    last_transport_error: Option<String>,
    /// Wants a voicemail subscription ([`AccountConfig::voicemail`]).
    voicemail: bool,
    /// The voicemail subscription, once started, and its SUBSCRIBE in flight.
    mwi: Option<handset_sip::usage::subscription::Subscription>,
    mwi_tx: Option<TransactionId>,
}

impl Account {
    fn target(&self) -> Option<&Target> {
        self.targets.get(self.current)
    }

    /// Asks to be woken by push (RFC 8599 `pn-provider` in its Contact).
    fn wants_push(&self) -> bool {
        self.registration
            .config()
            .contact_params
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("pn-provider"))
    }

    /// Sends a REGISTER now, starting again from the first server target.
    fn register_now(&mut self, now: Instant) {
        self.current = 0;
        self.registration.start(now);
    }
}

struct RunLoop {
    transports: Transports,
    resolver: SipResolver,
    layer: TransactionLayer<Flow>,
    accounts: HashMap<AccountId, Account>,
    /// Client transactions of accounts, and the flow each one uses.
    transactions: HashMap<TransactionId, (Owner, Flow)>,
    events: mpsc::UnboundedSender<HandsetEvent>,
    rng: StdRng,
    next_account: u64,
    calls: HashMap<CallId, calls::CallEntry>,
    next_call: u64,
    /// The DTLS certificate of every DTLS-SRTP call, made on first use.
    dtls_cert: Option<Arc<handset_media::dtls_session::DtlsCert>>,
    media_events: mpsc::UnboundedSender<(CallId, handset_media::session::MediaEvent)>,
    /// Instant messages on their way.
    messages: HashMap<u64, messages::Outgoing>,
    next_message: u64,
    /// Push wake-up, shared with [`Handset::handle_push`] (which must answer synchronously).
    push: Arc<Mutex<push::PushState>>,
    store: Option<Arc<Store>>,
    default_country: String,
    /// The app is in the foreground ([`Handset::set_foreground`]).
    foreground: bool,
}

/// Who a client or server transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Registration(AccountId),
    Subscription(AccountId),
    Message(u64),
    Call(CallId),
    Nobody,
}

fn transport_of(uri: &SipUri, explicit: Option<Transport>) -> Option<Transport> {
    explicit.or_else(|| match uri.transport_param().as_deref() {
        Some("udp") => Some(Transport::Udp),
        Some("tcp") => Some(Transport::Tcp),
        Some("tls") => Some(Transport::Tls),
        _ if uri.secure => Some(Transport::Tls),
        _ => None,
    })
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Domain(d) => d.clone(),
        Host::V4(a) => a.to_string(),
        Host::V6(a) => a.to_string(),
    }
}

/// The local address a packet to `remote` would leave from: found by connecting a throwaway
/// UDP socket, which sends nothing.
fn route_local_ip(remote: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if remote.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = std::net::UdpSocket::bind(bind).ok()?;
    probe.connect(remote).ok()?;
    probe.local_addr().ok().map(|a| a.ip())
}

impl RunLoop {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut incoming: mpsc::UnboundedReceiver<Incoming>,
        mut media_events: mpsc::UnboundedReceiver<(CallId, handset_media::session::MediaEvent)>,
    ) {
        loop {
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Shutdown(done)) => {
                        self.transports.close_all();
                        let _ = done.send(());
                        return;
                    }
                    // Every handle is gone: nobody can use the runtime any more.
                    None => {
                        self.transports.close_all();
                        return;
                    }
                    Some(command) => self.handle_command(command).await,
                },
                Some(item) = incoming.recv() => self.handle_incoming(item),
                Some((call, event)) = media_events.recv() => self.handle_media_event(call, event),
                _ = sleep => {}
            }
            let now = Instant::now();
            self.layer.handle_timeout(now);
            for account in self.accounts.values_mut() {
                account.registration.handle_timeout(now);
                if let Some(mwi) = account.mwi.as_mut() {
                    mwi.handle_timeout(now);
                }
            }
            for entry in self.calls.values_mut() {
                entry.call.handle_timeout(now);
            }
            push::lock(&self.push).wake.handle_timeout(now);
            self.handle_push_actions(now);
            self.pump().await;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        self.accounts
            .values()
            .filter_map(|a| a.registration.poll_timeout())
            .chain(self.layer.poll_timeout())
            .chain(self.calls.values().filter_map(|c| c.call.poll_timeout()))
            .chain(push::lock(&self.push).wake.poll_timeout())
            .chain(
                self.accounts
                    .values()
                    .filter_map(|a| a.mwi.as_ref().and_then(|m| m.poll_timeout())),
            )
            .min()
    }

    fn emit(&self, event: HandsetEvent) {
        // A closed event stream means the application stopped listening; keep running.
        let _ = self.events.send(event);
    }

    async fn handle_command(&mut self, command: Command) {
        let now = Instant::now();
        match command {
            Command::AddAccount(config, reply) => {
                let result = self.add_account(*config, now).await;
                let _ = reply.send(result);
            }
            Command::Register(id, reply) => {
                let result = match self.accounts.get_mut(&id) {
                    Some(account) => {
                        account.register_now(now);
                        Ok(())
                    }
                    None => Err(HandsetError::UnknownAccount(id)),
                };
                let _ = reply.send(result);
            }
            Command::Unregister(id, reply) => {
                let result = match self.accounts.get_mut(&id) {
                    Some(account) => {
                        account.registration.unregister(now);
                        Ok(())
                    }
                    None => Err(HandsetError::UnknownAccount(id)),
                };
                let _ = reply.send(result);
            }
            Command::RemoveAccount(id, reply) => {
                let result = match self.accounts.get_mut(&id) {
                    Some(account) => {
                        // The machine reports `Unregistered` when done (at once when it
                        // has no binding); the account is forgotten then.
                        account.removing = true;
                        account.registration.unregister(now);
                        if let Some(mwi) = account.mwi.as_mut() {
                            mwi.unsubscribe(now);
                        }
                        Ok(())
                    }
                    None => Err(HandsetError::UnknownAccount(id)),
                };
                let _ = reply.send(result);
            }
            Command::SetContactParams(id, params, reply) => {
                let result = match self.accounts.get_mut(&id) {
                    Some(account) => {
                        account.registration.set_contact_params(params);
                        account.register_now(now);
                        Ok(())
                    }
                    None => Err(HandsetError::UnknownAccount(id)),
                };
                self.apply_keepalive_policy();
                let _ = reply.send(result);
            }
            Command::SendMessage(account, target, text, reply) => {
                self.send_message(account, &target, &text, reply);
            }
            Command::PushWork => self.handle_push_actions(now),
            Command::PushDeclined(report_id) => {
                self.end_push_report(report_id, PushEndReason::DeclinedByUser);
            }
            Command::SetForeground(foreground) => {
                self.foreground = foreground;
                self.apply_keepalive_policy();
            }
            Command::Call(account, target, options, reply) => {
                let result = self.start_call(account, &target, *options, now).await;
                let _ = reply.send(result);
            }
            Command::CallAction(call, action, reply) => {
                let result = self.call_action(call, action, now);
                let _ = reply.send(result);
            }
            Command::Shutdown(_) => {}
        }
    }

    async fn add_account(
        &mut self,
        config: AccountConfig,
        now: Instant,
    ) -> Result<AccountId, HandsetError> {
        let server = match Uri::parse(config.server.trim()) {
            Ok(Uri::Sip(uri)) => uri,
            Ok(_) => {
                return Err(HandsetError::InvalidServer(
                    "not a sip: or sips: URI".into(),
                ));
            }
            Err(e) => return Err(HandsetError::InvalidServer(e.to_string())),
        };
        let transport = transport_of(&server, config.transport);
        let mut target = ServerTarget::new(host_text(&server.host)).with_sips(server.secure);
        if let Some(port) = server.port {
            target = target.with_port(port);
        }
        if let Some(t) = transport {
            target = target.with_transport(t);
        }
        let targets = self
            .resolver
            .resolve(&target)
            .await
            .map_err(|e| HandsetError::Dns(e.to_string()))?;
        let tls = if targets.iter().any(|t| t.transport == Transport::Tls) {
            Some(
                tls_config(config.ca_file.as_deref())
                    .map_err(|e| HandsetError::Tls(e.to_string()))?,
            )
        } else {
            None
        };
        let domain = match &config.domain {
            Some(d) => Host::parse(d).map_err(|e| HandsetError::InvalidServer(e.to_string()))?,
            None => server.host.clone(),
        };
        let aor = SipUri::new(Some(&config.user), domain.clone());
        let registrar = SipUri::new(None, domain);
        let contact = SipUri::new(Some(&config.user), Host::V4(Ipv4Addr::LOCALHOST));
        let instance_id = config.instance_id.clone().unwrap_or_else(|| {
            let mut b = [0u8; 16];
            self.rng.fill_bytes(&mut b);
            b[6] = (b[6] & 0x0f) | 0x40;
            b[8] = (b[8] & 0x3f) | 0x80;
            let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
            format!(
                "urn:uuid:{}-{}-{}-{}-{}",
                &h[..8],
                &h[8..12],
                &h[12..16],
                &h[16..20],
                &h[20..]
            )
        });
        let auth_user = config
            .auth_user
            .clone()
            .unwrap_or_else(|| config.user.clone());
        let credentials =
            CredentialStore::with_default(Credentials::new(auth_user, config.secret.clone()));
        let registration = Registration::new(
            RegistrationConfig {
                aor,
                registrar,
                contact,
                display_name: config.display_name.clone(),
                expires: config.expires,
                instance_id: Some(instance_id),
                reg_id: Some(1),
                contact_params: config.contact_params.clone(),
                rewrite_contact: true,
                retry: config.retry,
                user_agent: USER_AGENT.to_string(),
            },
            credentials,
            Box::new(StdRng::from_rng(&mut self.rng)),
        );
        let id = AccountId(self.next_account);
        self.next_account += 1;
        let mut account = Account {
            removing: false,
            unregistered: false,
            user: config.user.clone(),
            aor: SipUri::new(
                Some(&config.user),
                match &config.domain {
                    Some(d) => {
                        Host::parse(d).map_err(|e| HandsetError::InvalidServer(e.to_string()))?
                    }
                    None => server.host.clone(),
                },
            ),
            display_name: config.display_name.clone(),
            credentials: CredentialStore::with_default(Credentials::new(
                config
                    .auth_user
                    .clone()
                    .unwrap_or_else(|| config.user.clone()),
                config.secret.clone(),
            )),
            media: config.media.clone(),
            registration,
            targets,
            current: 0,
            tls,
            in_flight: None,
            last_transport_error: None,
            voicemail: config.voicemail,
            mwi: None,
            mwi_tx: None,
        };
        if config.register {
            account.registration.start(now);
        }
        self.accounts.insert(id, account);
        if !config.register {
            self.start_voicemail(id, now);
        }
        self.apply_keepalive_policy();
        Ok(id)
    }

    /// Forgets the removed accounts whose binding and voicemail subscription are gone.
    fn forget_removed_accounts(&mut self) {
        let done: Vec<AccountId> = self
            .accounts
            .iter()
            .filter(|(_, a)| {
                a.removing
                    && a.unregistered
                    && a.mwi.as_ref().is_none_or(|m| {
                        matches!(
                            m.state(),
                            handset_sip::usage::subscription::SubscriptionState::Idle
                                | handset_sip::usage::subscription::SubscriptionState::Terminated
                        )
                    })
            })
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            self.forget_account(id);
        }
    }

    /// Forgets a removed account.
    fn forget_account(&mut self, id: AccountId) {
        if self.accounts.remove(&id).is_some() {
            self.transactions
                .retain(|_, (owner, _)| *owner != Owner::Registration(id));
            self.emit(HandsetEvent::AccountRemoved { account: id });
            self.apply_keepalive_policy();
        }
    }

    /// Some account asks to be woken by push.
    fn push_enabled(&self) -> bool {
        self.accounts.values().any(Account::wants_push)
    }

    /// Runs or stops the connections' keep-alive timers as `keepalive_policy` says.
    fn apply_keepalive_policy(&mut self) {
        let policy = handset_phone::push::keepalive_policy(self.foreground, self.push_enabled());
        self.transports.set_keepalive(policy.run_keepalive_timers);
    }

    fn handle_incoming(&mut self, item: Incoming) {
        let now = Instant::now();
        match item {
            Incoming::Message { flow, message } => {
                tracing::debug!(transport = %flow.transport, kind = message_kind(&message), "received");
                if let Err(error) = self
                    .layer
                    .handle_message(now, message, flow, flow.reliable())
                {
                    tracing::debug!(%error, "message matched no usable transaction");
                }
            }
            Incoming::Malformed { flow, error } => {
                tracing::debug!(transport = %flow.transport, %error, "dropped malformed message");
            }
            Incoming::Closed { flow, error } => {
                self.transports.forget(&flow);
                let affected: Vec<TransactionId> = self
                    .transactions
                    .iter()
                    .filter(|(_, (_, f))| *f == flow)
                    .map(|(id, _)| *id)
                    .collect();
                for id in affected {
                    self.layer.handle_transport_error(now, id);
                }
                // Bound accounts that lost their connection register again at once on a new one.
                for account in self.accounts.values_mut() {
                    let on_flow = account
                        .target()
                        .is_some_and(|t| t.transport == flow.transport && t.addr == flow.remote);
                    if on_flow {
                        account.last_transport_error = error.clone();
                        if account.registration.state() == RegistrationState::Registered {
                            account.registration.start(now);
                        }
                    }
                }
            }
        }
    }

    /// Runs the machines until none has anything left to do.
    async fn pump(&mut self) {
        loop {
            let mut progressed = false;
            let ids: Vec<AccountId> = self.accounts.keys().copied().collect();
            for id in ids {
                while let Some(output) = self
                    .accounts
                    .get_mut(&id)
                    .and_then(|a| a.registration.poll_output())
                {
                    progressed = true;
                    match output {
                        RegistrationOutput::Send(request) => {
                            self.dispatch_register(id, request).await
                        }
                        RegistrationOutput::Event(event) => self.report(id, event),
                    }
                }
            }
            progressed |= self.pump_messages().await;
            if self.pump_voicemail().await {
                progressed = true;
                self.forget_removed_accounts();
            }
            let call_ids: Vec<CallId> = self.calls.keys().copied().collect();
            for id in call_ids {
                while let Some(output) = self.calls.get_mut(&id).and_then(|c| c.call.poll_output())
                {
                    progressed = true;
                    self.handle_call_output(id, output).await;
                }
                self.reap_call(id);
            }
            while let Some(output) = self.layer.poll_output() {
                progressed = true;
                match output {
                    Output::Transmit { to, message, .. } => self.transmit(to, message).await,
                    Output::Event(event) => self.handle_transaction_event(event).await,
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn report(&mut self, id: AccountId, event: RegistrationEvent) {
        let removed = match self.accounts.get_mut(&id) {
            Some(a) if a.removing && event == RegistrationEvent::Unregistered => {
                a.unregistered = true;
                true
            }
            _ => false,
        };
        let detail = match &event {
            RegistrationEvent::Failed {
                reason: RegistrationFailure::Transport,
                ..
            } => self
                .accounts
                .get(&id)
                .and_then(|a| a.last_transport_error.clone()),
            _ => None,
        };
        self.emit(HandsetEvent::Registration {
            account: id,
            event: event.clone(),
            detail,
        });
        if removed {
            self.forget_removed_accounts();
        } else if matches!(event, RegistrationEvent::Registered { .. }) {
            self.start_voicemail(id, Instant::now());
        }
    }

    /// Sends a REGISTER to the account's current target, moving on to the next target when
    /// the connection cannot be made (RFC 3263 §4.3 failover).
    async fn dispatch_register(&mut self, id: AccountId, request: Request) {
        let now = Instant::now();
        loop {
            let Some(account) = self.accounts.get_mut(&id) else {
                return;
            };
            let Some(target) = account.target().cloned() else {
                account.current = 0;
                account.in_flight = None;
                account
                    .registration
                    .handle_transaction_failure(now, TransactionFailure::Transport);
                return;
            };
            let flow = Flow {
                transport: target.transport,
                remote: target.addr,
            };
            let tls = account.tls.clone();
            let local = match self.transports.connect(flow, &target.host, tls).await {
                Ok(local) => local,
                Err(e) => {
                    self.connection_failed(id, &e);
                    continue;
                }
            };
            let Some(account) = self.accounts.get_mut(&id) else {
                return;
            };
            let local_ip = if local.ip().is_unspecified() {
                route_local_ip(target.addr).unwrap_or(local.ip())
            } else {
                local.ip()
            };
            let mut request = request.clone();
            let mut contact = local_contact(
                &account.user,
                target.transport,
                SocketAddr::new(local_ip, local.port()),
            );
            for (name, value) in &account.registration.config().contact_params {
                contact.params.push(handset_sip::message::Param {
                    name: name.clone(),
                    value: value.clone(),
                });
            }
            rewrite_contact(&mut request, &contact);
            account.registration.note_contact(contact);
            account.in_flight = Some(request.clone());
            let branch = new_branch(&mut self.rng);
            let via = format!(
                "SIP/2.0/{} {};branch={branch};rport",
                target.transport.as_str().to_ascii_uppercase(),
                SocketAddr::new(local_ip, local.port())
            );
            request.headers.push_front(HeaderName::Via, via);
            match self.layer.send_request(now, request, flow, flow.reliable()) {
                Ok(tx) => {
                    self.transactions
                        .insert(tx, (Owner::Registration(id), flow));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "REGISTER not sent");
                    if let Some(account) = self.accounts.get_mut(&id) {
                        account
                            .registration
                            .handle_transaction_failure(now, TransactionFailure::Transport);
                    }
                }
            }
            return;
        }
    }

    /// Records a failed connection attempt and moves the account to its next target.
    fn connection_failed(&mut self, id: AccountId, error: &TransportError) {
        if let Some(account) = self.accounts.get_mut(&id) {
            tracing::info!(account = %id, %error, "target failed, trying the next one");
            account.last_transport_error = Some(error.to_string());
            account.current += 1;
        }
    }

    async fn transmit(&mut self, to: Flow, message: Message) {
        tracing::debug!(transport = %to.transport, kind = message_kind(&message), "sending");
        if let Err(e) = self.transports.send(&to, message.to_bytes()).await {
            let now = Instant::now();
            let affected: Vec<TransactionId> = self
                .transactions
                .iter()
                .filter(|(_, (_, f))| *f == to)
                .map(|(id, _)| *id)
                .collect();
            for id in affected {
                if let Some((Owner::Registration(account), _)) = self.transactions.get(&id)
                    && let Some(a) = self.accounts.get_mut(account)
                {
                    a.last_transport_error = Some(e.to_string());
                }
                self.layer.handle_transport_error(now, id);
            }
        }
    }

    async fn handle_transaction_event(&mut self, event: TransactionEvent<Flow>) {
        let now = Instant::now();
        match event {
            TransactionEvent::Response { id, response } => {
                match self.transactions.get(&id).map(|(owner, _)| *owner) {
                    Some(Owner::Registration(account)) => {
                        if let Some(a) = self.accounts.get_mut(&account) {
                            if response.status >= 200 {
                                a.in_flight = None;
                                a.last_transport_error = None;
                            }
                            a.registration.handle_response(now, &response);
                        }
                    }
                    Some(Owner::Call(call)) => {
                        if let Some(entry) = self.calls.get_mut(&call) {
                            entry.call.handle_response(now, id, response);
                        }
                    }
                    Some(Owner::Subscription(account)) => {
                        self.subscription_response(account, id, Ok(&response), now);
                    }
                    Some(Owner::Message(message)) => {
                        self.message_response(message, Ok(&response));
                    }
                    _ => {}
                }
            }
            TransactionEvent::Timeout { id } | TransactionEvent::TransportError { id } => {
                let failure = if matches!(event, TransactionEvent::Timeout { .. }) {
                    TransactionFailure::Timeout
                } else {
                    TransactionFailure::Transport
                };
                match self.transactions.remove(&id).map(|(owner, _)| owner) {
                    Some(Owner::Registration(account)) => {
                        self.retry_on_next_target(account, failure, now).await;
                    }
                    Some(Owner::Call(call)) => {
                        if let Some(entry) = self.calls.get_mut(&call) {
                            entry.call.handle_transaction_failure(now, id, failure);
                        }
                    }
                    Some(Owner::Subscription(account)) => {
                        self.subscription_response(account, id, Err(failure), now);
                    }
                    Some(Owner::Message(message)) => {
                        self.message_response(message, Err(failure));
                    }
                    _ => {}
                }
            }
            TransactionEvent::Terminated { id } => {
                self.transactions.remove(&id);
            }
            TransactionEvent::NewRequest {
                id,
                request,
                from,
                cancels,
            } => self.handle_new_request(id, request, from, cancels, now),
            TransactionEvent::StrayAck { request, .. } => {
                if let Some(entry) = self
                    .calls
                    .values_mut()
                    .find(|c| c.call.matches_request(&request))
                {
                    entry.call.handle_stray_ack(now, request);
                }
            }
            TransactionEvent::StrayResponse { response, .. } => {
                if let Some(entry) = self
                    .calls
                    .values_mut()
                    .find(|c| c.call.matches_response(&response))
                {
                    entry.call.handle_stray_response(now, response);
                }
            }
        }
    }

    /// A REGISTER timed out or hit a transport error: try the next target with the same
    /// request, or report the failure once every target has failed.
    async fn retry_on_next_target(
        &mut self,
        id: AccountId,
        failure: TransactionFailure,
        now: Instant,
    ) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        let Some(request) = account.in_flight.take() else {
            return;
        };
        if account.current + 1 < account.targets.len() {
            account.current += 1;
            self.dispatch_register(id, request).await;
        } else {
            account.current = 0;
            account
                .registration
                .handle_transaction_failure(now, failure);
        }
    }
}

/// Our Contact URI for `user` on a flow of `transport` from `local`.
fn local_contact(user: &str, transport: Transport, local: SocketAddr) -> SipUri {
    let mut contact = SipUri::new(Some(user), Host::from(local.ip()));
    contact.port = Some(local.port());
    if transport != Transport::Udp {
        contact.params.push(handset_sip::message::Param::new(
            "transport",
            transport.as_str(),
        ));
    }
    contact
}

/// Replaces the Contact of a request by `contact`, keeping its header parameters.
fn rewrite_contact(request: &mut Request, contact: &SipUri) {
    let Some(value) = request.headers.get(&HeaderName::Contact) else {
        return;
    };
    if let Ok(mut addr) = NameAddr::parse(value) {
        addr.uri = Uri::Sip(contact.clone());
        request.headers.set(HeaderName::Contact, addr.to_string());
    }
}

/// The answer to a request outside any call: OPTIONS gets 200 with our capabilities, an
/// INVITE that cannot become a call 480, other methods 405 with Allow.
fn answer_request(request: &Request) -> Response {
    let status = match request.method {
        Method::Options => 200,
        Method::Invite => 480,
        Method::Ack => 200,
        _ => 405,
    };
    final_response(request, status)
}

/// A final response to `request` with a To tag, our Allow and Server.
fn final_response(request: &Request, status: u16) -> Response {
    let mut response = Response::to_request(request, status);
    add_to_tag(
        &mut response,
        &format!("h{}", request.headers.cseq().map(|c| c.seq).unwrap_or(0)),
    );
    response.headers.push(HeaderName::Allow, ALLOW);
    response.headers.push(HeaderName::Server, USER_AGENT);
    response
}

/// Gives a response to an out-of-dialog request our To tag, unless it has one.
fn add_to_tag(response: &mut Response, tag: &str) {
    if response.headers.to().is_ok_and(|to| to.tag().is_none())
        && let Some(to) = response.headers.get(&HeaderName::To).map(str::to_string)
    {
        response
            .headers
            .set(HeaderName::To, format!("{to};tag={tag}"));
    }
}

/// A log-safe description of a message: method or status, nothing personal.
fn message_kind(message: &Message) -> String {
    match message {
        Message::Request(r) => r.method.to_string(),
        Message::Response(r) => format!(
            "{} {}",
            r.status,
            r.headers
                .cseq()
                .map(|c| c.method.to_string())
                .unwrap_or_default()
        ),
    }
}
