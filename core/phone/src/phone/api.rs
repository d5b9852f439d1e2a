//! The phone machine's vocabulary: what goes in ([`Input`], [`Command`]), what comes out
//! ([`Output`], [`PhoneEvent`]), the configuration of the phone and of its accounts, and the
//! one synchronous lookup it makes ([`Directory`]).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use handset_media::dtls_session::DtlsCert;
use handset_media::ice::{IceConfig, IcePolicy, LocalCandidate};
use handset_media::sdp::{IceCredentials, MediaConfig, Negotiated, SessionDescription};
use handset_media::session::{MediaEvent, StreamStart};
use handset_media::stats::CallQuality;
use handset_sip::auth::Secret;
use handset_sip::transaction::Timers;
use handset_sip::transport::{Flow, ServerTarget, Target, Transport};
use handset_sip::usage::message_summary::MessageSummary;
use handset_sip::usage::registration::RetryPolicy;

use super::state::{CallDirection, CallState, CallUpdate, EndReason, RegistrationState};
use crate::pin::CertFingerprint;
use crate::push::{IncomingCallReport, PushError, ReportId};
use crate::screen::{AudioRoute, RouteError, RouteInput, ScreenDecision, ScreenInput};

/// The `User-Agent` / `Server` value Handset sends.
pub const USER_AGENT: &str = concat!("Handset/", env!("CARGO_PKG_VERSION"));

/// Identifies an account inside one [`super::Phone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AccountId(pub u64);

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies a call inside one [`super::Phone`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u64);

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Identifies an outgoing instant message until it is delivered or fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The default [`PhoneConfig::udp_keepalive`]: with the 80–100 % jitter, every 20–25 s.
pub const DEFAULT_UDP_KEEPALIVE: Duration = Duration::from_secs(25);

/// Phone-wide settings.
#[derive(Clone)]
pub struct PhoneConfig {
    /// Transaction timers (T1, T2, T4).
    pub timers: Timers,
    /// Most calls at once; an INVITE beyond them is answered 486 Busy Here.
    pub max_calls: usize,
    /// How long an incoming call rings before it is refused with 480 and logged as missed.
    pub ring_timeout: Duration,
    /// How long a call reported from a push waits for its INVITE before it ends as missed.
    pub push_wait_for_invite: Duration,
    /// CRLF keep-alive interval on TCP/TLS connections (RFC 5626 recommends 95–120 s).
    pub keepalive: Duration,
    /// Keep-alive interval on UDP flows that carry a registration (STUN when the registrar
    /// applies outbound, else a CRLF datagram): below the NAT's UDP timeout, which is 30 s on
    /// many mobile networks. `None` sends none (a UDP registration behind NAT then goes deaf
    /// once the NAT forgets it).
    pub udp_keepalive: Option<Duration>,
    /// How long a keep-alive ping may wait for its pong before the connection counts as dead.
    pub pong_timeout: Duration,
    /// The certificate of DTLS-SRTP calls (one per phone); DTLS-SRTP is refused without it.
    pub dtls_cert: Option<Arc<DtlsCert>>,
    /// How long the call screen shows the ended call after the last call ends.
    pub ended_screen: Duration,
    /// The RFC 4028 session interval calls ask for, in seconds (at least 90): a call whose
    /// peer or network vanished ends after it instead of lasting forever. `None` asks for
    /// none (a peer's request is still honoured).
    pub session_expires: Option<u32>,
}

impl Default for PhoneConfig {
    fn default() -> Self {
        PhoneConfig {
            timers: Timers::default(),
            max_calls: 4,
            ring_timeout: Duration::from_secs(60),
            push_wait_for_invite: crate::push::DEFAULT_WAIT_FOR_INVITE,
            keepalive: Duration::from_secs(100),
            udp_keepalive: Some(DEFAULT_UDP_KEEPALIVE),
            pong_timeout: Duration::from_secs(10),
            dtls_cert: None,
            ended_screen: Duration::from_secs(2),
            session_expires: None,
        }
    }
}

impl fmt::Debug for PhoneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PhoneConfig")
            .field("max_calls", &self.max_calls)
            .field("ring_timeout", &self.ring_timeout)
            .field("push_wait_for_invite", &self.push_wait_for_invite)
            .field("keepalive", &self.keepalive)
            .field("udp_keepalive", &self.udp_keepalive)
            .field("dtls_cert", &self.dtls_cert.is_some())
            .finish_non_exhaustive()
    }
}

/// A SIP account: where to register and with which credentials.
#[derive(Clone)]
pub struct AccountConfig {
    /// Registrar/proxy URI, e.g. `sip:pbx.example.com`, `sip:127.0.0.1:5060;transport=tcp`
    /// or `sips:pbx.example.com`. Located with RFC 3263 (NAPTR/SRV/A) unless numeric. Every
    /// request of the account goes through it.
    pub server: String,
    /// User part of the address-of-record.
    pub user: String,
    /// Domain of the address-of-record; defaults to the server's host.
    pub domain: Option<String>,
    /// Authentication user name when it differs from `user`.
    pub auth_user: Option<String>,
    /// Password or stored HA1.
    pub secret: Secret,
    /// Realms the credentials may be given to besides the one the registrar challenges with
    /// (see the phone's security rules).
    pub realms: Vec<String>,
    /// Transport; defaults to the URI's `transport` parameter, then to what DNS says.
    pub transport: Option<Transport>,
    /// Extra PEM file trusted for TLS; the runtime reads it. Its certificates are trust
    /// anchors (a private PBX CA) and are also pinned: a server presenting one of them itself
    /// is accepted even when it is self-signed and marked CA (name and validity still checked).
    pub ca_file: Option<PathBuf>,
    /// SHA-256 fingerprint of the server's own certificate, pinned like a certificate of
    /// [`Self::ca_file`] (for a self-signed PBX certificate, without a file to ship).
    pub pinned_sha256: Option<CertFingerprint>,
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
    /// (sent straight to the server, e.g. a PBX trunk or a test peer) but receives none unless
    /// [`Self::accept_direct_requests`] is set.
    pub register: bool,
    /// Subscribe to the account's voicemail message-waiting indication (RFC 3842) once
    /// registered; counts arrive as [`PhoneEvent::Voicemail`].
    pub voicemail: bool,
    /// Accept calls and messages that do not come through the account's server (anybody
    /// who can reach the phone's address could then ring it). Off by default.
    pub accept_direct_requests: bool,
    /// ICE for plain RTP and SDES-SRTP calls: STUN and TURN servers and the policy (off when
    /// none is set). TURN over TLS trusts what the account's TLS trusts ([`Self::ca_file`],
    /// [`Self::pinned_sha256`]).
    pub ice: IceConfig,
}

impl fmt::Debug for AccountConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccountConfig")
            .field("server", &self.server)
            .field("user", &self.user)
            .field("transport", &self.transport)
            .field("secret", &self.secret)
            .field("register", &self.register)
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
            realms: Vec::new(),
            transport: None,
            ca_file: None,
            pinned_sha256: None,
            expires: 3600,
            display_name: None,
            instance_id: None,
            retry: RetryPolicy::default(),
            media: MediaConfig::default(),
            contact_params: Vec::new(),
            register: true,
            voicemail: false,
            accept_direct_requests: false,
            ice: IceConfig::default(),
        }
    }
}

/// What the application asks of the phone. Each command is decided at once:
/// [`super::Phone::handle_input`] returns its [`Reply`] or why it was refused.
#[derive(Debug)]
pub enum Command {
    /// Adds an account and starts registering it ([`Reply::Account`]).
    AddAccount(Box<AccountConfig>),
    /// Registers the account again now (after a failure or an unregister).
    Register(AccountId),
    /// Removes the account's binding; [`RegistrationState::Unregistered`] follows.
    Unregister(AccountId),
    /// Unregisters (when registered) and forgets the account; [`PhoneEvent::AccountRemoved`]
    /// follows. Its calls go on until they end.
    RemoveAccount(AccountId),
    /// Replaces the account's extra Contact parameters (a new push token, or none to stop
    /// push) and registers again with them.
    SetContactParams(AccountId, Vec<(String, Option<String>)>),
    /// The app went to the foreground (`true`) or the background.
    SetForeground(bool),
    /// The runtime's DNS servers changed (a new network): accounts whose server could not be
    /// found, and that wait to retry, look it up again now instead of after their back-off.
    /// Servers already found are kept until they fail.
    DnsChanged,
    /// The device moved to another network (Wi-Fi ↔ cellular, a new Wi-Fi, an address or
    /// route change): every flow is opened again (connections closed, UDP flows asked for our
    /// new address), every account looks its server up again (the new network's DNS may
    /// answer differently) and registers again from its new address, which replaces its
    /// binding at the registrar (same `+sip.instance` and `reg-id`); accounts waiting to
    /// retry a failed registration try at once.
    NetworkChanged,
    /// Sends a page-mode instant message ([`Reply::Message`]; the outcome arrives as
    /// [`PhoneEvent::MessageDelivered`] or [`PhoneEvent::MessageFailed`]).
    SendMessage {
        /// From this account.
        account: AccountId,
        /// A SIP URI, or a user or number in the account's domain.
        target: String,
        /// `text/plain`, at most 1300 bytes.
        text: String,
    },
    /// Places a call ([`Reply::Call`]).
    Dial {
        /// From this account.
        account: AccountId,
        /// A SIP URI, or a user or number in the account's domain.
        target: String,
        /// Media settings; the account's when `None`.
        media: Option<MediaConfig>,
        /// The call's CallKit / Telecom id, when the app chose it first (CallKit's
        /// `CXStartCallAction` UUID); one is made up otherwise.
        report_id: Option<ReportId>,
    },
    /// Answers an incoming call.
    Answer {
        /// The call.
        call: CallId,
        /// Media settings; the account's when `None`.
        media: Option<MediaConfig>,
    },
    /// Refuses an incoming call with this status (486 Busy Here, 603 Decline...).
    Reject {
        /// The call.
        call: CallId,
        /// 400..=699.
        status: u16,
    },
    /// Ends a call: BYE when answered, CANCEL while ringing out, 486 while ringing in.
    Hangup(CallId),
    /// Sends DTMF digits (RFC 4733 in the media stream); digits sent before media is up
    /// wait for it.
    Dtmf {
        /// The call.
        call: CallId,
        /// `0-9`, `*`, `#`, `A-D`.
        digits: String,
    },
    /// Holds (`true`) or resumes the call with a re-INVITE.
    Hold {
        /// The call.
        call: CallId,
        /// Whether to hold.
        on_hold: bool,
    },
    /// Mutes (`true`) or unmutes the call's microphone (silence is sent while muted).
    Mute {
        /// The call.
        call: CallId,
        /// Whether to mute.
        muted: bool,
    },
    /// A VoIP push payload arrived ([`Reply::PushReport`]: report it to CallKit / Telecom
    /// before the push handler returns).
    Push(Vec<u8>),
    /// The user declined a push-reported call before its INVITE arrived
    /// ([`Reply::ReportEnded`]: whether it was still waiting).
    DeclinePushReport(ReportId),
    /// A sensor or UI input of the call screen (proximity, orientation, keypad...).
    Screen(ScreenInput),
    /// The platform's audio routes changed, or the user picked one.
    Routes(RouteInput),
}

/// A command's answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Done.
    Done,
    /// The account added.
    Account(AccountId),
    /// The call placed.
    Call(CallId),
    /// The message on its way.
    Message(MessageId),
    /// What to report to CallKit / Telecom for a push.
    PushReport {
        /// The report (its `Debug` never shows the caller).
        report: IncomingCallReport,
        /// The caller's name from the contacts, if known.
        contact_name: Option<String>,
    },
    /// Whether the push report was still waiting for its INVITE.
    ReportEnded(bool),
}

/// Why a command was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// The server URI is not a usable SIP URI.
    #[error("invalid server URI: {0}")]
    InvalidServer(String),
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
    /// The message cannot be sent as it is (empty, too long).
    #[error("invalid message: {0}")]
    InvalidMessage(String),
    /// A malformed push payload.
    #[error("push: {0}")]
    Push(#[from] PushError),
    /// The audio route cannot be selected.
    #[error("audio route: {0}")]
    Route(#[from] RouteError),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

/// Everything that can happen to the phone, in one stream.
#[derive(Debug)]
pub enum Input {
    /// The application asks for something.
    Command(Command),
    /// The clock reached a deadline the phone asked for (any input also runs due timers).
    Timeout,
    /// Bytes arrived on a flow: a UDP datagram, or a chunk of a TCP/TLS stream.
    Received {
        /// Where they came from.
        flow: Flow,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A flow asked for with [`Output::Connect`] is ready; `local` is our address on it.
    Connected {
        /// The flow.
        flow: Flow,
        /// Our address on it (for UDP: the address the route to the peer leaves from).
        local: SocketAddr,
    },
    /// A flow could not be opened (TCP refused, TLS handshake failed, timeout).
    ConnectFailed {
        /// The flow.
        flow: Flow,
        /// What went wrong, for the user (never message content).
        error: String,
    },
    /// A TCP/TLS connection ended.
    Closed {
        /// The flow.
        flow: Flow,
        /// Why, when it was not an orderly close.
        error: Option<String>,
    },
    /// The answer to [`Output::Resolve`].
    Resolved {
        /// The account whose server was looked up.
        account: AccountId,
        /// The targets in the order to try, or what went wrong.
        result: Result<Vec<Target>, String>,
    },
    /// The answer to [`Output::BindMedia`].
    MediaBound {
        /// The call.
        call: CallId,
        /// The RTP socket's address and candidates, or what went wrong.
        result: Result<BoundMedia, String>,
    },
    /// The media of a call reports something.
    Media {
        /// The call.
        call: CallId,
        /// What happened.
        event: MediaEvent,
    },
    /// The media of a call could not start (audio device failure); the call ends.
    MediaFailed {
        /// The call.
        call: CallId,
        /// What went wrong.
        error: String,
    },
    /// The media of a call stopped (after [`MediaCommand::Stop`]).
    MediaStopped {
        /// The call.
        call: CallId,
        /// Final statistics, when media flowed.
        quality: Option<CallQuality>,
    },
}

/// Work for the runtime, drained with [`super::Phone::poll_output`].
#[derive(Debug)]
pub enum Output {
    /// Send bytes on a flow (connected before: see [`Output::Connect`]).
    Transmit {
        /// Where.
        flow: Flow,
        /// The message (or a keep-alive).
        bytes: Vec<u8>,
    },
    /// Look up where an account's server is (RFC 3263); answer with [`Input::Resolved`].
    Resolve {
        /// The account.
        account: AccountId,
        /// What to look up.
        target: ServerTarget,
    },
    /// Open a flow (TCP connect and TLS handshake; for UDP, find our address on the route
    /// to the peer); answer with [`Input::Connected`] or [`Input::ConnectFailed`].
    Connect {
        /// The flow.
        flow: Flow,
        /// For TLS: whom to verify.
        tls: Option<TlsTarget>,
    },
    /// Close a TCP/TLS flow nobody uses any more.
    Disconnect {
        /// The flow.
        flow: Flow,
    },
    /// Bind an RTP socket for the call on our address toward `peer` (port chosen by the
    /// system), and gather its ICE candidates when asked; answer with
    /// [`Input::MediaBound`].
    BindMedia {
        /// The call.
        call: CallId,
        /// The signaling peer; the socket takes the local address the route to it leaves
        /// from.
        peer: SocketAddr,
        /// Gather candidates from these servers (with [`handset_media::ice::Gatherer`]) and
        /// keep the TURN allocation for the call's media; `None` without ICE.
        ice: Option<Box<IceGathering>>,
    },
    /// Start, change or stop a call's media.
    Media {
        /// The call.
        call: CallId,
        /// What to do.
        command: MediaCommand,
    },
    /// Write this to the on-device database.
    Store(Record),
    /// Tell the application.
    Event(PhoneEvent),
    /// Call [`super::Phone::handle_input`] with [`Input::Timeout`] at this time (the last
    /// output of a drain; a later deadline replaces an earlier one).
    Timeout(Instant),
}

/// Whom a TLS flow must prove to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsTarget {
    /// The name checked against the server's certificate (RFC 5922).
    pub server_name: String,
    /// Extra CA file of the account, if any (trusted and pinned).
    pub ca_file: Option<PathBuf>,
    /// Fingerprint of the account's pinned server certificate, if any.
    pub pinned_sha256: Option<CertFingerprint>,
}

/// The servers and trust for gathering a call's candidates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IceGathering {
    /// The account's ICE settings.
    pub config: IceConfig,
    /// Extra PEM file trusted for TURN over TLS (the account's).
    pub ca_file: Option<PathBuf>,
    /// Pinned certificate fingerprint for TURN over TLS (the account's).
    pub pinned_sha256: Option<CertFingerprint>,
}

/// A call's bound RTP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundMedia {
    /// The socket's address.
    pub local: SocketAddr,
    /// The candidates gathered for it, best first (empty without ICE).
    pub candidates: Vec<LocalCandidate>,
}

impl BoundMedia {
    /// A socket without ICE candidates.
    pub fn plain(local: SocketAddr) -> Self {
        BoundMedia {
            local,
            candidates: Vec::new(),
        }
    }
}

/// What to do with a call's media.
#[derive(Debug)]
pub enum MediaCommand {
    /// Start the media with this plan on the socket bound for the call; the call's audio
    /// device (the runtime's) starts with it.
    Start(Box<MediaPlan>),
    /// Apply a renegotiation (hold, resume, new address or codec).
    Update(Box<Negotiated>),
    /// Send DTMF digits (RFC 4733).
    Dtmf(String),
    /// Mute or unmute the microphone.
    Mute(bool),
    /// Stop the media and the device; answer with [`Input::MediaStopped`].
    Stop,
    /// The running media moves to the socket just bound for the call (an
    /// [`Output::BindMedia`] answered while media ran, after a network change): send and
    /// receive on it from now on and close the old one.
    SwitchSocket,
    /// Restart ICE on the running media (RFC 8445 §9) with the renegotiation that carried
    /// the restart: on the socket bound for the call last, with the TURN allocation gathered
    /// for it if any (after a network change), or on the same socket (the peer restarted).
    RestartIce {
        /// What the renegotiation settled.
        negotiated: Box<Negotiated>,
        /// The socket's address (our host candidate).
        local: SocketAddr,
        /// Our new credentials and candidates, and the peer's description.
        ice: Box<IcePlan>,
    },
}

/// Everything the runtime needs to run a call's media.
#[derive(Debug)]
pub struct MediaPlan {
    /// What offer/answer settled.
    pub negotiated: Negotiated,
    /// The RTP socket's address.
    pub local: SocketAddr,
    /// Our RTP stream's SSRC, first sequence number and timestamp (random, RFC 3550 §5.1).
    pub stream: StreamStart,
    /// RTCP CNAME.
    pub cname: String,
    /// For DTLS-SRTP calls: certificate, ICE credentials and the peer's candidates.
    pub dtls: Option<DtlsPlan>,
    /// For plain RTP and SDES-SRTP calls with ICE: our credentials, candidates and role (the
    /// runtime adds the TURN allocation it kept from gathering).
    pub ice: Option<IcePlan>,
    /// Start muted.
    pub muted: bool,
    /// DTMF digits to send as soon as media flows.
    pub dtmf: String,
}

/// The ICE + DTLS part of a [`MediaPlan`].
#[derive(Debug)]
pub struct DtlsPlan {
    /// The phone's DTLS certificate.
    pub cert: Arc<DtlsCert>,
    /// Our ICE credentials (the ones in our description).
    pub local_ice: IceCredentials,
    /// The peer's description (its ICE candidates and ICE-lite flag).
    pub remote_description: Option<SessionDescription>,
}

/// The ICE part of a plain RTP or SDES-SRTP [`MediaPlan`].
#[derive(Debug, Clone)]
pub struct IcePlan {
    /// Our ICE credentials (the ones in our description).
    pub local_ice: IceCredentials,
    /// Our candidates as announced.
    pub candidates: Vec<LocalCandidate>,
    /// We made the first offer, so we control (RFC 8445 §6.1.1).
    pub controlling: bool,
    /// Which candidates may carry media.
    pub policy: IcePolicy,
    /// The peer's description (its candidates and ICE-lite flag).
    pub remote_description: Option<SessionDescription>,
}

/// What the phone keeps in the on-device database. Times are the phone's `Instant`s; the
/// runtime turns them into wall-clock times when it writes.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A call (or a push report that never became one) for the history.
    Call(CallRecord),
    /// A blocked number called (or sent a message) and was refused.
    BlockedAttempt {
        /// Its number.
        number: String,
        /// When.
        at: Instant,
    },
    /// The account's voicemail counts (RFC 3842 voice messages).
    Voicemail {
        /// The account's address-of-record.
        account: String,
        /// New messages.
        new: u32,
        /// Old messages.
        old: u32,
    },
}

/// One call in the history.
#[derive(Debug, Clone, PartialEq)]
pub struct CallRecord {
    /// Who started it.
    pub direction: CallDirection,
    /// The other party's number or user.
    pub remote_number: String,
    /// The other party's name (display name, else contact name), when known.
    pub remote_name: Option<String>,
    /// The account's address-of-record.
    pub account: String,
    /// When it started.
    pub started: Instant,
    /// When it was answered here, if it was.
    pub answered: Option<Instant>,
    /// When it ended.
    pub ended: Instant,
    /// Why it ended.
    pub reason: EndReason,
}

impl CallRecord {
    /// A missed call: incoming, never answered here, and not taken or declined by anyone.
    pub fn missed(&self) -> bool {
        self.direction == CallDirection::Incoming
            && self.answered.is_none()
            && self.reason.is_missed_call()
    }
}

/// What the phone tells the application.
#[derive(Debug, Clone, PartialEq)]
pub enum PhoneEvent {
    /// An account's registration changed.
    Registration {
        /// Which account.
        account: AccountId,
        /// Its state now.
        state: RegistrationState,
    },
    /// Something happened to a call.
    Call {
        /// Which call.
        call: CallId,
        /// What happened.
        update: CallUpdate,
        /// The call's state after it.
        state: CallState,
    },
    /// A call reported from a push ended before its INVITE arrived (cancel push, no INVITE in
    /// time, declined on the ringing screen): end it on CallKit / Telecom. Calls whose INVITE
    /// arrived end through [`CallUpdate::Ended`] instead.
    PushReportEnded {
        /// The report.
        report_id: ReportId,
        /// Why.
        reason: EndReason,
    },
    /// A blocked number called; it was refused with 603 Decline and logged.
    CallBlocked {
        /// The account it came in on.
        account: AccountId,
        /// The caller's address.
        from: String,
    },
    /// An instant message arrived; it was answered 200.
    MessageReceived {
        /// The account it came in on.
        account: AccountId,
        /// The sender's address.
        from: String,
        /// The sender's display name, if sent.
        display_name: Option<String>,
        /// The sender's name from the contacts, if known.
        contact_name: Option<String>,
        /// The text.
        text: String,
    },
    /// A message sent with [`Command::SendMessage`] was delivered (2xx).
    MessageDelivered {
        /// Which message.
        message: MessageId,
    },
    /// A message sent with [`Command::SendMessage`] was not delivered.
    MessageFailed {
        /// Which message.
        message: MessageId,
        /// Why, in words.
        reason: String,
    },
    /// The voicemail server sent the account's message-waiting state.
    Voicemail {
        /// Which account.
        account: AccountId,
        /// Messages waiting, and counts per class.
        summary: MessageSummary,
    },
    /// An account was removed.
    AccountRemoved {
        /// Which account.
        account: AccountId,
    },
    /// What the call screen must do now.
    CallScreen(ScreenDecision),
    /// The audio routes changed (available ones, the selected one).
    AudioRoutes {
        /// Routes the platform offers.
        available: Vec<AudioRoute>,
        /// The route in use, if any.
        selected: Option<AudioRoute>,
    },
    /// The platform must switch the call audio to this route.
    SelectAudioRoute(AudioRoute),
    /// The runtime stopped for good (an internal error); every later call fails. Emitted by
    /// the runtime, never by the machine itself.
    Stopped {
        /// What happened.
        reason: String,
    },
}

/// Lookups in the user's data that the phone needs while it decides, answered synchronously.
/// The store's implementation reads a committed snapshot of the on-device database (SQLite in
/// WAL mode: a read never waits for a write), in microseconds; tests give a fixed table.
/// Lookups are synchronous so that an INVITE is answered, or a push reported, in one step.
pub trait Directory: Send {
    /// What is known of this caller's number (a SIP user part or a phone number).
    fn caller(&self, number: &str) -> CallerInfo;
}

/// What the [`Directory`] knows of a caller.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerInfo {
    /// The contact's name, if the number belongs to a contact.
    pub contact_name: Option<String>,
    /// The user blocked this number.
    pub blocked: bool,
}

/// A directory that knows nobody (no database).
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDirectory;

impl Directory for NoDirectory {
    fn caller(&self, _number: &str) -> CallerInfo {
        CallerInfo::default()
    }
}
