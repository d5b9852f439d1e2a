//! One call: an INVITE session (RFC 3261 §13–15) with reliable provisional responses
//! (RFC 3262), UPDATE (RFC 3311) for session refreshes, session timers (RFC 4028) and the
//! RFC 6026 rules for 2xx responses and their ACKs.
//!
//! Sans-IO, like every machine of this crate: [`Call`] takes its inputs through `handle_*`
//! methods that all carry `now`, and hands out work through [`Call::poll_output`]; it says when
//! it next needs the clock through [`Call::poll_timeout`]. Session descriptions are opaque
//! bytes: the TU (`handset-phone`, with `handset-media`) builds offers and answers, including
//! the `sendonly`/`inactive` ones of a hold; this machine only knows *where* offers and answers
//! travel (INVITE/2xx/ACK, reliable 18x/PRACK, UPDATE/2xx).
//!
//! The runtime's duties, in short:
//! - [`CallOutput::SendRequest`]: add the top Via with a fresh branch, start a client
//!   transaction, and echo the transaction id with [`Call::request_sent`];
//! - [`CallOutput::SendCancel`]: build the CANCEL with `transaction::cancel_request` from the
//!   INVITE that transaction sent, and send it in a client transaction of its own (its
//!   responses need not reach the call);
//! - [`CallOutput::SendResponse`]: send it in that server transaction (for a 2xx
//!   retransmission after the transaction is gone, send it statelessly to its peer);
//! - [`CallOutput::SendAck`]: add a Via with a fresh branch and send it statelessly;
//! - route to the call: responses of its transactions ([`Call::handle_response`]), requests it
//!   [`matches`](Call::matches_request) ([`Call::handle_request`], CANCELs included),
//!   transaction failures, stray ACKs and stray responses of its Call-ID.
//!
//! Choices worth knowing:
//! - A 3xx is followed to its first SIP Contact with the same Call-ID, From tag and To (the
//!   called address-of-record) and the next CSeq, like any retry of §8.1.3.5; at most
//!   [`CallConfig::max_redirects`] times.
//! - Forking: the first early dialog wins; provisional responses of other forks are ignored.
//!   A 2xx of another fork after ours is ACKed and ended with a BYE (§13.2.2.4).
//! - An offer that repeats the last session description the peer sent (a session refresh) is
//!   answered at once with our last one, without asking the TU.
//! - [`CallEvent::Ended`] is emitted as soon as the call is over for the user; the state then
//!   stays [`CallState::Terminating`] while a BYE, CANCEL or ACK still has to go out or
//!   complete, and reaches [`CallState::Terminated`] when the runtime may drop the call.

mod in_dialog;
mod session_timer;
mod uac;
mod uas;

#[cfg(test)]
mod tests;

use super::random_hex;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::auth::{AuthError, CredentialStore, DigestSession};
use crate::dialog::Dialog;
use crate::message::{HeaderName, Headers, Method, NameAddr, Request, Response, SipUri};
use crate::transaction::{Timers, TransactionId};

use super::registration::ALLOW;
pub use super::registration::TransactionFailure;

use session_timer::SessionTimer;
use uac::UacInvite;
use uas::{UasInvite, Unacked2xx};

/// The media type of session descriptions.
pub const SDP: &str = "application/sdp";

/// How often a re-INVITE or UPDATE refused with 491 is retried before it counts as refused.
pub const MAX_GLARE_RETRIES: u8 = 4;

/// The lowest Session-Expires RFC 4028 allows, and our default Min-SE.
pub const MIN_SESSION_EXPIRES: u32 = 90;

/// How one call is set up.
#[derive(Debug, Clone)]
pub struct CallConfig {
    /// Our address: From of outgoing calls (without tag), display name included.
    pub local: NameAddr,
    /// Whom to call: To and Request-URI of the INVITE (ignored for incoming calls).
    pub target: SipUri,
    /// Our Contact URI.
    pub contact: SipUri,
    /// Credentials for 401/407 challenges.
    pub credentials: CredentialStore,
    /// `User-Agent` (requests) and `Server` (responses) header value.
    pub user_agent: String,
    /// Support reliable provisional responses (RFC 3262): advertise `100rel`, PRACK the
    /// peer's reliable 18x, and send ours reliably when the peer supports them too.
    pub supports_100rel: bool,
    /// Support session timers (RFC 4028): advertise `timer` and honour Session-Expires.
    pub supports_timer: bool,
    /// The session interval we ask for (INVITE) or impose when the peer asks for none
    /// (incoming); `None` asks for no session timer.
    pub session_expires: Option<u32>,
    /// Our Min-SE: the shortest session interval we accept (at least 90 s).
    pub min_se: u32,
    /// Refresh sessions with an UPDATE without body when the peer allows UPDATE, instead of
    /// a re-INVITE repeating our last session description.
    pub refresh_with_update: bool,
    /// Preloaded Route set (an outbound proxy), used for the initial INVITE.
    pub route: Vec<NameAddr>,
    /// How many 3xx redirections to follow.
    pub max_redirects: u8,
    /// T1/T2 for 2xx and reliable-provisional retransmissions and 64·T1 give-ups.
    pub timers: Timers,
}

impl CallConfig {
    /// A configuration with defaults: 100rel and session timers supported, no session timer
    /// requested, Min-SE 90 s, refresh by UPDATE, no preloaded route, 5 redirections, RFC
    /// timer values, no credentials.
    pub fn new(local: NameAddr, target: SipUri, contact: SipUri) -> Self {
        CallConfig {
            local,
            target,
            contact,
            credentials: CredentialStore::new(),
            user_agent: "Handset".to_string(),
            supports_100rel: true,
            supports_timer: true,
            session_expires: None,
            min_se: MIN_SESSION_EXPIRES,
            refresh_with_update: true,
            route: Vec::new(),
            max_redirects: 5,
            timers: Timers::default(),
        }
    }

    fn supported(&self) -> String {
        let mut options = Vec::new();
        if self.supports_100rel {
            options.push("100rel");
        }
        if self.supports_timer {
            options.push("timer");
        }
        options.join(", ")
    }

    fn min_se(&self) -> u32 {
        self.min_se.max(MIN_SESSION_EXPIRES)
    }
}

/// Names one request the call asked the runtime to send; the runtime echoes it with the
/// transaction id it started ([`Call::request_sent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestHandle(u64);

/// What the call asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum CallOutput {
    /// Send this request in a new client transaction (the runtime adds the Via), then call
    /// [`Call::request_sent`] with `handle` and the transaction id.
    SendRequest {
        /// Echo this back with the transaction id.
        handle: RequestHandle,
        /// The request, without Via.
        request: Request,
    },
    /// CANCEL the INVITE of client transaction `invite` (RFC 3261 §9.1): build it with
    /// `transaction::cancel_request` from that transaction's request.
    SendCancel {
        /// The INVITE client transaction.
        invite: TransactionId,
    },
    /// Send this response in server transaction `tx`.
    SendResponse {
        /// The server transaction.
        tx: TransactionId,
        /// The response.
        response: Response,
    },
    /// Send this ACK for a 2xx outside any transaction (the runtime adds the Via).
    SendAck(Request),
    /// Tell the TU.
    Event(CallEvent),
}

/// Why a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndReason {
    /// We hung up (BYE sent).
    LocalHangup,
    /// The peer hung up (BYE received).
    RemoteHangup,
    /// The call was cancelled before it was answered: by us (CANCEL sent, or cancel crossing
    /// the 2xx) or by the caller (CANCEL received).
    Cancelled,
    /// The peer (or a proxy) answered our INVITE with this final status.
    Rejected {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// We answered the incoming INVITE with this final status.
    RejectedLocally {
        /// Status code.
        status: u16,
    },
    /// More redirections than [`CallConfig::max_redirects`].
    TooManyRedirects,
    /// A challenge could not be answered, or our credentials were refused.
    Authentication(AuthError),
    /// A request got no final response in time (Timer B/F, or 408 in the dialog).
    Timeout,
    /// The transport could not deliver a request.
    TransportError,
    /// Our 2xx was retransmitted for 64·T1 without an ACK (RFC 3261 §13.3.1.4).
    AckTimeout,
    /// Our reliable provisional response was not PRACKed within 64·T1 (RFC 3262 §3).
    PrackTimeout,
    /// The session timer ran out without a refresh (RFC 4028 §10).
    SessionExpired,
    /// The peer no longer knows the dialog (481 to an in-dialog request).
    DialogGone,
    /// The peer broke the protocol in a way the call cannot recover from.
    Protocol(&'static str),
}

impl EndReason {
    /// Whether the call ended normally: a hangup by either side, or a cancel.
    pub fn is_normal(&self) -> bool {
        matches!(
            self,
            Self::LocalHangup | Self::RemoteHangup | Self::Cancelled
        )
    }

    /// The SIP status of a rejection (either way), if the call was rejected.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Rejected { status, .. } | Self::RejectedLocally { status } => Some(*status),
            _ => None,
        }
    }
}

impl fmt::Display for EndReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LocalHangup => f.write_str("hung up"),
            Self::RemoteHangup => f.write_str("the other party hung up"),
            Self::Cancelled => f.write_str("cancelled"),
            Self::Rejected { status, reason } => write!(f, "rejected: {status} {reason}"),
            Self::RejectedLocally { status } => write!(f, "declined with {status}"),
            Self::TooManyRedirects => f.write_str("too many redirections"),
            Self::Authentication(e) => write!(f, "authentication failed: {e}"),
            Self::Timeout => f.write_str("no answer (timeout)"),
            Self::TransportError => f.write_str("transport error"),
            Self::AckTimeout => f.write_str("the answer was never acknowledged"),
            Self::PrackTimeout => f.write_str("the provisional response was never acknowledged"),
            Self::SessionExpired => f.write_str("session expired"),
            Self::DialogGone => f.write_str("the other party lost the call"),
            Self::Protocol(what) => write!(f, "protocol error: {what}"),
        }
    }
}

/// What the call reports to the TU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallEvent {
    /// 100 Trying arrived.
    Trying,
    /// The callee is ringing (180); reported once.
    Ringing,
    /// Early media: the session description of a provisional response (the answer to our
    /// offer). Reported once per distinct description.
    EarlyMedia {
        /// The peer's session description.
        sdp: Vec<u8>,
    },
    /// Our INVITE was answered with a 2xx; `sdp` is its session description, if any (none when
    /// the answer already came reliably in a provisional response).
    Answered {
        /// The peer's session description in the 2xx.
        sdp: Option<Vec<u8>>,
    },
    /// The dialog is confirmed: we sent the ACK (caller) or received it (callee).
    Confirmed,
    /// The peer made an offer (re-INVITE, UPDATE, 2xx or reliable 18x to our offerless
    /// INVITE): answer with [`Call::accept_offer`] or refuse with [`Call::reject_offer`].
    RemoteOffer {
        /// The offer.
        sdp: Vec<u8>,
    },
    /// The peer sent a re-INVITE without offer: supply one with [`Call::accept_offer`]; the
    /// answer will come in the ACK ([`CallEvent::RemoteAnswer`]).
    OfferRequested,
    /// The peer answered our offer.
    RemoteAnswer {
        /// The answer.
        sdp: Vec<u8>,
    },
    /// The peer refused our re-INVITE or UPDATE; the previous session stands.
    OfferRejected {
        /// The final status.
        status: u16,
    },
    /// Our [`hold`](Call::hold) or [`resume`](Call::resume) re-INVITE succeeded. (Whether the
    /// peer put *us* on hold is in its session descriptions, which only the TU reads.)
    HoldChanged {
        /// Whether we now hold the call.
        local_hold: bool,
    },
    /// The session timer was negotiated or refreshed (RFC 4028).
    SessionRefreshed {
        /// Session interval in seconds.
        interval: u32,
        /// Whether we are the refresher.
        local_refresher: bool,
    },
    /// A 3xx sent our INVITE elsewhere.
    Redirected {
        /// The new Request-URI.
        target: SipUri,
    },
    /// A DTMF digit arrived in an INFO.
    Dtmf {
        /// `0`–`9`, `*`, `#`, `A`–`D`.
        digit: char,
        /// Its duration, when the INFO said.
        duration: Option<Duration>,
    },
    /// The call is over (see [`EndReason`]); the state may still be
    /// [`CallState::Terminating`] while clean-up messages go out.
    Ended {
        /// Why.
        reason: EndReason,
    },
}

/// The state of a call.
///
/// ```text
///  caller (UAC)                                       callee (UAS)
///
///  Idle ─outgoing()─► Calling ─100─► Proceeding       INVITE ─incoming()─► Incoming
///                       │  ▲           │                                   │ ring(), progress():
///                       │  │ 3xx, 401/ │ 18x with To tag                   │ 18x (reliable: RSeq,
///                       │  │ 407, 422: │                                   │ wait PRACK, resend T1·2ⁿ)
///                       │  └new INVITE─┤                                   │
///                       │              ▼                                   │ answer(): 2xx, resend
///                       │            Early ─18x─► Early (PRACK if 100rel)  ▼ T1..T2 until ACK
///                       │              │                                Accepted
///                       └─2xx / ACK────┴─2xx / ACK─┐                       │ ACK
///                                                  ▼                       ▼
///                                            Confirmed ◄───────────────────┘
///              re-INVITE / UPDATE / INFO / OPTIONS │ (either way; 491 glare → retry later;
///              session refresh or expiry           │  2xx re-ACKed / resent until ACK)
///                          hangup(), session expired, no ACK after 64·T1: BYE
///                                                  ▼
///                                            Terminating ─BYE done─► Terminated
///
///  Calling/Proceeding/Early ─cancel()─► Terminating (CANCEL after a provisional; 487 or
///      64·T1 ─► Terminated; a 2xx crossing the CANCEL is ACKed and BYEd)
///  Calling/Proceeding/Early ─2xx carrying an offer (offerless INVITE)─► Accepted
///      ─accept_offer(): ACK with the answer─► Confirmed
///  Calling/Proceeding/Early ─3xx..6xx, Timer B, transport error─► Terminated
///  Incoming ─reject(), CANCEL (487), BYE, no PRACK after 64·T1─► Terminated
///  any ─BYE received (200)─► Terminated
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// Not started (only before [`Call::outgoing`] returns).
    Idle,
    /// Our INVITE is out; nothing came back yet.
    Calling,
    /// A provisional response without dialog (100, or 18x without To tag) arrived.
    Proceeding,
    /// An early dialog exists (18x with To tag).
    Early,
    /// An INVITE arrived; the TU has not answered it finally.
    Incoming,
    /// A 2xx was sent and waits for its ACK (callee), or a 2xx carrying an offer was received
    /// and waits for the TU's answer to put in the ACK (caller).
    Accepted,
    /// The dialog is confirmed: the call is up.
    Confirmed,
    /// The call is over for the user; a BYE, CANCEL or ACK is still in progress.
    Terminating,
    /// Nothing left to do: drop the call.
    Terminated,
}

/// Why the TU's command was refused. Nothing is sent when a command fails.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The command does not apply in this state (e.g. `answer` on an outgoing call).
    #[error("{action} is not possible in state {state:?}")]
    InvalidState {
        /// The state.
        state: CallState,
        /// The command.
        action: &'static str,
    },
    /// Another offer/answer exchange (re-INVITE, UPDATE) is in progress: try again later.
    #[error("another offer/answer exchange is in progress")]
    RequestPending,
    /// There is no offer or offer request waiting for the TU.
    #[error("no offer is waiting for an answer")]
    NoPendingOffer,
    /// The status code does not fit the command.
    #[error("status {0} is not allowed here")]
    InvalidStatus(u16),
    /// The command would break the offer/answer rules (RFC 3264, RFC 3261 §13.2.1).
    #[error("offer/answer: {0}")]
    OfferAnswer(&'static str),
    /// Not a DTMF digit (`0`–`9`, `*`, `#`, `A`–`D`).
    #[error("{0:?} is not a DTMF digit")]
    InvalidDigit(char),
}

/// Which side of the initial INVITE we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Uac,
    Uas,
}

/// What a client request of ours is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// The initial INVITE (or its retry after 3xx/401/407/422).
    InitialInvite,
    /// A re-INVITE or UPDATE carrying (or asking for) an offer, or refreshing the session.
    Offer,
    /// PRACK for a reliable provisional.
    Prack,
    /// BYE ending this call.
    Bye,
    /// BYE ending a forked dialog we do not want.
    ForkBye,
    /// INFO (DTMF or other).
    Info,
    /// OPTIONS inside the dialog.
    Options,
}

/// One client request of ours, until its final response.
#[derive(Debug, Clone)]
struct ClientRequest {
    handle: RequestHandle,
    tx: Option<TransactionId>,
    method: Method,
    cseq: u32,
    purpose: Purpose,
}

/// What an outgoing re-INVITE or UPDATE is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OfferKind {
    /// A new offer (or an offerless re-INVITE).
    Offer,
    /// Hold: report [`CallEvent::HoldChanged`] with `local_hold: true` on success.
    Hold,
    /// Resume: report [`CallEvent::HoldChanged`] with `local_hold: false` on success.
    Resume,
    /// RFC 4028 session refresh.
    Refresh,
}

/// Our re-INVITE or UPDATE: in flight, or waiting to be retried after a 491.
#[derive(Debug, Clone)]
struct OutgoingOffer {
    kind: OfferKind,
    method: Method,
    /// The offer; `None` for an offerless re-INVITE or a refreshing UPDATE.
    sdp: Option<Vec<u8>>,
    /// The request as last sent (credentials are copied into its ACK).
    request: Option<Request>,
    cseq: u32,
    in_flight: bool,
    /// RFC 3261 §14.1: when to retry after a 491.
    retry_at: Option<Instant>,
    /// 491s received for this offer: a peer that always answers 491 gets a refusal reported
    /// after [`MAX_GLARE_RETRIES`] instead of retries forever.
    glares: u8,
    challenges: u8,
    retries_422: u8,
    /// The Session-Expires we asked for, if any.
    requested_se: Option<u32>,
}

/// A decision the TU owes us.
#[derive(Debug, Clone)]
enum Awaiting {
    /// An offer arrived in a re-INVITE or UPDATE: the answer goes in its 2xx.
    ResponseAnswer {
        tx: TransactionId,
        request: Request,
        session: Option<session_timer::Negotiated>,
    },
    /// A re-INVITE without offer arrived: our offer goes in its 2xx, the answer in the ACK.
    ResponseOffer {
        tx: TransactionId,
        request: Request,
        session: Option<session_timer::Negotiated>,
    },
    /// An offer arrived in the 2xx to our offerless INVITE: the answer goes in the ACK.
    AckAnswer { cseq: u32, initial: bool },
    /// An offer arrived in a reliable 18x to our offerless INVITE: the answer goes in PRACK.
    PrackAnswer { rseq: u32, cseq: u32 },
}

/// One INVITE session. See [`CallState`] for the diagram and the module documentation for
/// the runtime's duties.
///
/// Inputs, by source:
/// - from the TU: [`ring`](Self::ring), [`progress`](Self::progress),
///   [`answer`](Self::answer), [`reject`](Self::reject), [`cancel`](Self::cancel),
///   [`hangup`](Self::hangup), [`reinvite`](Self::reinvite), [`hold`](Self::hold),
///   [`resume`](Self::resume), [`accept_offer`](Self::accept_offer),
///   [`reject_offer`](Self::reject_offer), [`send_dtmf`](Self::send_dtmf),
///   [`send_info`](Self::send_info), [`send_options`](Self::send_options);
/// - from the transaction layer: [`handle_response`](Self::handle_response),
///   [`handle_request`](Self::handle_request), [`handle_stray_ack`](Self::handle_stray_ack),
///   [`handle_stray_response`](Self::handle_stray_response),
///   [`handle_transaction_failure`](Self::handle_transaction_failure),
///   [`request_sent`](Self::request_sent), [`request_not_sent`](Self::request_not_sent);
/// - from the clock: [`handle_timeout`](Self::handle_timeout).
///
/// After any input, drain [`poll_output`](Self::poll_output) and re-arm the timer from
/// [`poll_timeout`](Self::poll_timeout).
pub struct Call {
    role: Role,
    state: CallState,
    config: CallConfig,
    rng: Box<dyn RngCore + Send>,
    digest: DigestSession,
    call_id: String,
    local_tag: String,
    dialog: Option<Dialog>,
    outputs: VecDeque<CallOutput>,
    next_handle: u64,
    clients: Vec<ClientRequest>,
    uac: Option<UacInvite>,
    uas: Option<UasInvite>,
    /// The last session description we sent (offer or answer).
    local_sdp: Option<Vec<u8>>,
    /// The last session description the peer sent (offer or answer).
    remote_sdp: Option<Vec<u8>>,
    awaiting: Option<Awaiting>,
    /// The last INVITE we sent (initial or re-INVITE), for the credentials of its ACK.
    last_invite: Option<Request>,
    /// The ACK we sent for the last 2xx we accepted (resent for its retransmissions).
    last_ack: Option<Request>,
    /// Our 2xx waiting for its ACK.
    unacked: Option<Unacked2xx>,
    reinvite: Option<OutgoingOffer>,
    session: Option<SessionTimer>,
    peer_allows_update: bool,
    peer_min_se: u32,
    /// Send the BYE once the ACK for our 2xx arrives (hangup while Accepted, §15).
    bye_after_ack: bool,
    bye_sent: bool,
    ended: bool,
}

impl fmt::Debug for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Call")
            .field("role", &self.role)
            .field("state", &self.state)
            .field("dialog", &self.dialog)
            .field("pending", &self.clients.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The longest wait a call arms: deadlines beyond it are clamped so that adding them to an
/// `Instant` can never overflow, whatever the configured timers.
const MAX_WAIT: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// `now + after`, clamped to [`MAX_WAIT`] (never panics).
fn later(now: Instant, after: Duration) -> Instant {
    now.checked_add(after.min(MAX_WAIT)).unwrap_or(now)
}

/// Whether the comma-separated option list of header `name` holds `option`.
fn has_option(headers: &Headers, name: &HeaderName, option: &str) -> bool {
    headers
        .values(name)
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case(option))
}

/// Whether the `Allow` header lists `method`.
fn allows(headers: &Headers, method: &str) -> bool {
    headers
        .get_all(&HeaderName::Allow)
        .flat_map(|v| v.split(','))
        .any(|m| m.trim().eq_ignore_ascii_case(method))
}

/// The media type of the body, lower-cased and without parameters.
fn content_type(headers: &Headers) -> Option<String> {
    headers.get(&HeaderName::ContentType).map(|v| {
        v.split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase()
    })
}

/// Puts `body` of type `media_type` into a message.
fn set_body(headers: &mut Headers, body_slot: &mut Vec<u8>, media_type: &str, body: Vec<u8>) {
    headers.set(HeaderName::ContentType, media_type);
    *body_slot = body;
}

/// The `tag` of a header, owned.
fn tag_of(addr: &Result<NameAddr, crate::message::ParseError>) -> Option<String> {
    addr.as_ref().ok().and_then(|a| a.tag().map(str::to_string))
}

impl Call {
    fn blank(
        role: Role,
        config: CallConfig,
        rng: Box<dyn RngCore + Send>,
        call_id: String,
        local_tag: String,
    ) -> Self {
        let digest = DigestSession::new(config.credentials.clone());
        Call {
            role,
            state: CallState::Idle,
            config,
            rng,
            digest,
            call_id,
            local_tag,
            dialog: None,
            outputs: VecDeque::new(),
            next_handle: 0,
            clients: Vec::new(),
            uac: None,
            uas: None,
            local_sdp: None,
            remote_sdp: None,
            awaiting: None,
            last_invite: None,
            last_ack: None,
            unacked: None,
            reinvite: None,
            session: None,
            peer_allows_update: false,
            peer_min_se: MIN_SESSION_EXPIRES,
            bye_after_ack: false,
            bye_sent: false,
            ended: false,
        }
    }

    // ----- accessors -------------------------------------------------------------------

    /// The current state.
    pub fn state(&self) -> CallState {
        self.state
    }

    /// Whether the runtime may drop the call.
    pub fn is_terminated(&self) -> bool {
        self.state == CallState::Terminated
    }

    /// Whether we placed the call.
    pub fn is_outgoing(&self) -> bool {
        self.role == Role::Uac
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Our tag.
    pub fn local_tag(&self) -> &str {
        &self.local_tag
    }

    /// The peer's tag, once a dialog exists.
    pub fn remote_tag(&self) -> Option<&str> {
        self.dialog.as_ref().map(|d| d.remote_tag.as_str())
    }

    /// The dialog, once one exists (early or confirmed).
    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// The configuration.
    pub fn config(&self) -> &CallConfig {
        &self.config
    }

    /// The last session description we sent.
    pub fn local_sdp(&self) -> Option<&[u8]> {
        self.local_sdp.as_deref()
    }

    /// The last session description the peer sent (for an incoming call: the INVITE's offer).
    pub fn remote_sdp(&self) -> Option<&[u8]> {
        self.remote_sdp.as_deref()
    }

    /// The negotiated session interval and whether we refresh it, when a session timer runs.
    pub fn session_timer(&self) -> Option<(u32, bool)> {
        self.session
            .as_ref()
            .map(|s| (s.interval, s.local_refresher))
    }

    /// Whether the runtime should hand `request` to this call: an in-dialog request of its
    /// dialog (early or confirmed), or a CANCEL (or retransmitted INVITE) of the INVITE it is
    /// answering.
    pub fn matches_request(&self, request: &Request) -> bool {
        let h = &request.headers;
        if h.call_id().ok() != Some(self.call_id.as_str()) {
            return false;
        }
        if self.dialog.as_ref().is_some_and(|d| d.matches(request)) {
            return true;
        }
        self.uas
            .as_ref()
            .is_some_and(|uas| uas.is_same_invite(request))
    }

    /// Whether a response (e.g. a stray 2xx) belongs to this call: its Call-ID and our From
    /// tag.
    pub fn matches_response(&self, response: &Response) -> bool {
        let h = &response.headers;
        h.call_id().ok() == Some(self.call_id.as_str())
            && tag_of(&h.from()).as_deref() == Some(self.local_tag.as_str())
    }

    // ----- output plumbing -------------------------------------------------------------

    /// Replaces the credentials that answer challenges (the TU learned or dropped a realm).
    pub fn set_credentials(&mut self, credentials: CredentialStore) {
        self.digest.set_credentials(credentials);
    }

    /// The next piece of work for the runtime.
    pub fn poll_output(&mut self) -> Option<CallOutput> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == CallState::Terminated {
            return None;
        }
        let uac = self.uac.as_ref().and_then(UacInvite::deadline);
        let uas = self.uas.as_ref().and_then(UasInvite::deadline);
        let unacked = self.unacked.as_ref().map(Unacked2xx::deadline);
        let retry = self.reinvite.as_ref().and_then(|r| r.retry_at);
        let session = self.session.as_ref().map(SessionTimer::deadline);
        [uac, uas, unacked, retry, session]
            .into_iter()
            .flatten()
            .min()
    }

    fn emit(&mut self, event: CallEvent) {
        self.outputs.push_back(CallOutput::Event(event));
    }

    fn respond(&mut self, tx: TransactionId, response: Response) {
        self.outputs
            .push_back(CallOutput::SendResponse { tx, response });
    }

    /// A response to an in-dialog (or otherwise already tagged) request.
    fn simple_response(&self, request: &Request, status: u16) -> Response {
        let mut response = Response::to_request(request, status);
        if status > 100
            && let Ok(mut to) = request.headers.to()
            && to.tag().is_none()
        {
            to.set_param("tag", Some(self.local_tag.clone()));
            response.headers.set(HeaderName::To, to.to_string());
        }
        response
            .headers
            .push(HeaderName::Server, self.config.user_agent.clone());
        if status == 405 {
            response.headers.push(HeaderName::Allow, ALLOW);
        }
        response
    }

    fn reply(&mut self, tx: TransactionId, request: &Request, status: u16) {
        let response = self.simple_response(request, status);
        self.respond(tx, response);
    }

    /// Queues `request` for a new client transaction.
    fn send_request(&mut self, request: Request, purpose: Purpose) -> RequestHandle {
        self.next_handle += 1;
        let handle = RequestHandle(self.next_handle);
        let cseq = request.headers.cseq().map(|c| c.seq).unwrap_or_default();
        self.clients.push(ClientRequest {
            handle,
            tx: None,
            method: request.method.clone(),
            cseq,
            purpose,
        });
        self.outputs
            .push_back(CallOutput::SendRequest { handle, request });
        handle
    }

    /// Adds User-Agent and, when challenges were answered before, credentials to a request
    /// whose body is final.
    fn finish_request(&mut self, request: &mut Request) {
        request
            .headers
            .push(HeaderName::UserAgent, self.config.user_agent.clone());
        if self.digest.is_empty() {
            return;
        }
        let uri = request.uri.to_string();
        let method = request.method.as_str().to_string();
        for (header, value) in
            self.digest
                .authorization_headers(&method, &uri, &request.body, self.rng.as_mut())
        {
            request.headers.push(header.name(), value);
        }
    }

    /// A request inside the dialog with the headers every one of ours carries; `None` without
    /// dialog.
    fn dialog_request(&mut self, method: Method) -> Option<Request> {
        let dialog = self.dialog.as_mut()?;
        let mut request = dialog.new_request(method.clone());
        if matches!(method, Method::Invite | Method::Update) {
            request.headers.push(
                HeaderName::Contact,
                NameAddr::new(self.config.contact.clone()).to_string(),
            );
            request.headers.push(HeaderName::Allow, ALLOW);
            let supported = self.config.supported();
            if !supported.is_empty() {
                request.headers.push(HeaderName::Supported, supported);
            }
        }
        Some(request)
    }

    /// Emits `Ended` once.
    fn end(&mut self, reason: EndReason) {
        if !self.ended {
            self.ended = true;
            self.emit(CallEvent::Ended { reason });
        }
    }

    /// Nothing left to do: stop every timer.
    fn terminate(&mut self) {
        self.state = CallState::Terminated;
        self.unacked = None;
        self.session = None;
        self.reinvite = None;
        self.awaiting = None;
        self.bye_after_ack = false;
        if let Some(uac) = self.uac.as_mut() {
            uac.stop_timers();
        }
        if let Some(uas) = self.uas.as_mut() {
            uas.stop_timers();
        }
    }

    /// Ends the call with `reason` and sends a BYE (or just terminates without a dialog).
    /// Pending decisions of the TU are dropped; an offer waiting in a server transaction gets
    /// 487.
    fn hang_up_with(&mut self, reason: EndReason) {
        self.end(reason);
        self.drop_awaiting();
        self.unacked = None;
        self.session = None;
        if let Some(r) = self.reinvite.as_mut() {
            r.retry_at = None;
        }
        self.send_bye();
    }

    /// Answers a request still waiting for the TU with 487 and forgets it.
    fn drop_awaiting(&mut self) {
        match self.awaiting.take() {
            Some(Awaiting::ResponseAnswer { tx, request, .. })
            | Some(Awaiting::ResponseOffer { tx, request, .. }) => {
                self.reply(tx, &request, 487);
            }
            Some(Awaiting::AckAnswer { cseq, .. }) => self.send_ack(cseq, None),
            Some(Awaiting::PrackAnswer { .. }) | None => {}
        }
    }

    fn send_bye(&mut self) {
        if self.bye_sent {
            return;
        }
        match self.dialog_request(Method::Bye) {
            Some(mut bye) => {
                self.finish_request(&mut bye);
                self.bye_sent = true;
                self.state = CallState::Terminating;
                self.send_request(bye, Purpose::Bye);
            }
            None => self.terminate(),
        }
    }

    /// Sends (and remembers) the ACK for the 2xx to our INVITE with CSeq `cseq`; `answer` is
    /// the session description it carries, if any.
    fn send_ack(&mut self, cseq: u32, answer: Option<Vec<u8>>) {
        let Some(dialog) = self.dialog.as_ref() else {
            return;
        };
        let mut ack = dialog.ack_for_2xx(cseq);
        // §22.1: the ACK for a 2xx carries the INVITE's credentials.
        let invite = self
            .last_invite
            .as_ref()
            .filter(|i| i.headers.cseq().is_ok_and(|c| c.seq == cseq));
        if let Some(invite) = invite {
            for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
                for value in invite.headers.get_all(&name) {
                    ack.headers.push(name.clone(), value);
                }
            }
        }
        ack.headers
            .push(HeaderName::UserAgent, self.config.user_agent.clone());
        if let Some(sdp) = answer {
            self.local_sdp = Some(sdp.clone());
            set_body(&mut ack.headers, &mut ack.body, SDP, sdp);
        }
        self.last_ack = Some(ack.clone());
        self.outputs.push_back(CallOutput::SendAck(ack));
    }

    // ----- TU commands ------------------------------------------------------------------

    fn invalid(&self, action: &'static str) -> CallError {
        CallError::InvalidState {
            state: self.state,
            action,
        }
    }

    /// Ends the call whatever its state: CANCEL before an answer (caller), 603 Decline
    /// (callee before answering), BYE once answered (after the ACK when it is still
    /// missing). Does nothing once the call is over.
    pub fn hangup(&mut self, now: Instant) -> Result<(), CallError> {
        if self.ended || matches!(self.state, CallState::Terminated) {
            return Ok(());
        }
        match self.state {
            CallState::Idle | CallState::Calling | CallState::Proceeding | CallState::Early => {
                self.cancel(now)
            }
            CallState::Incoming => self.reject(now, 603),
            CallState::Accepted if self.role == Role::Uas => {
                // §15: the callee waits for the ACK (or its give-up) before sending BYE.
                self.end(EndReason::LocalHangup);
                self.drop_awaiting();
                self.session = None;
                self.bye_after_ack = true;
                self.state = CallState::Terminating;
                Ok(())
            }
            _ => {
                self.hang_up_with(EndReason::LocalHangup);
                Ok(())
            }
        }
    }

    /// Replaces our Contact for every later request and response of the call: the next
    /// re-INVITE or UPDATE carries it and refreshes the peer's target (RFC 3261 §12.2), e.g.
    /// after the phone moved to another network.
    pub fn set_contact(&mut self, contact: SipUri) {
        self.config.contact = contact;
    }

    /// Starts a re-INVITE with `sdp` as offer, or without offer when `None` (the peer's offer
    /// will come as [`CallEvent::RemoteOffer`] and our answer goes in the ACK).
    pub fn reinvite(&mut self, now: Instant, sdp: Option<Vec<u8>>) -> Result<(), CallError> {
        self.start_offer(now, OfferKind::Offer, Method::Invite, sdp)
    }

    /// Puts the call on hold with a re-INVITE offering `sdp` (the TU's `sendonly` or
    /// `inactive` description); [`CallEvent::HoldChanged`] follows on success.
    pub fn hold(&mut self, now: Instant, sdp: Vec<u8>) -> Result<(), CallError> {
        self.start_offer(now, OfferKind::Hold, Method::Invite, Some(sdp))
    }

    /// Takes the call off hold with a re-INVITE offering `sdp` (`sendrecv`).
    pub fn resume(&mut self, now: Instant, sdp: Vec<u8>) -> Result<(), CallError> {
        self.start_offer(now, OfferKind::Resume, Method::Invite, Some(sdp))
    }

    /// Answers the offer of a [`CallEvent::RemoteOffer`], or supplies the offer a
    /// [`CallEvent::OfferRequested`] asked for.
    pub fn accept_offer(&mut self, now: Instant, sdp: Vec<u8>) -> Result<(), CallError> {
        if sdp.is_empty() {
            return Err(CallError::OfferAnswer("an empty session description"));
        }
        match self.awaiting.take() {
            None => Err(CallError::NoPendingOffer),
            Some(Awaiting::ResponseAnswer {
                tx,
                request,
                session,
            }) => {
                self.remote_sdp = Some(request.body.clone());
                self.answer_in_dialog_request(now, tx, &request, Some(sdp), false, session);
                Ok(())
            }
            Some(Awaiting::ResponseOffer {
                tx,
                request,
                session,
            }) => {
                self.answer_in_dialog_request(now, tx, &request, Some(sdp), true, session);
                Ok(())
            }
            Some(Awaiting::AckAnswer { cseq, initial }) => {
                self.send_ack(cseq, Some(sdp));
                if initial && !self.ended {
                    self.state = CallState::Confirmed;
                    self.emit(CallEvent::Confirmed);
                }
                Ok(())
            }
            Some(Awaiting::PrackAnswer { rseq, cseq }) => {
                self.local_sdp = Some(sdp.clone());
                if let Some(uac) = self.uac.as_mut() {
                    uac.early_answer = true;
                }
                self.send_prack(rseq, cseq, Some(sdp));
                Ok(())
            }
        }
    }

    /// Refuses the offer of a [`CallEvent::RemoteOffer`] (or a [`CallEvent::OfferRequested`])
    /// with `status` (488 Not Acceptable Here, usually). An offer that came in a 2xx or a
    /// reliable 18x cannot be refused by a response: the call is ended instead.
    pub fn reject_offer(&mut self, now: Instant, status: u16) -> Result<(), CallError> {
        if !(400..=699).contains(&status) {
            return Err(CallError::InvalidStatus(status));
        }
        match self.awaiting.take() {
            None => Err(CallError::NoPendingOffer),
            Some(Awaiting::ResponseAnswer { tx, request, .. })
            | Some(Awaiting::ResponseOffer { tx, request, .. }) => {
                self.reply(tx, &request, status);
                Ok(())
            }
            Some(Awaiting::AckAnswer { cseq, .. }) => {
                self.send_ack(cseq, None);
                self.hang_up_with(EndReason::LocalHangup);
                Ok(())
            }
            Some(Awaiting::PrackAnswer { .. }) => self.cancel(now),
        }
    }

    /// Sends a DTMF digit in an INFO (`application/dtmf-relay`, `Signal=`/`Duration=`).
    pub fn send_dtmf(
        &mut self,
        now: Instant,
        digit: char,
        duration: Duration,
    ) -> Result<(), CallError> {
        let digit = digit.to_ascii_uppercase();
        if !"0123456789*#ABCD".contains(digit) {
            return Err(CallError::InvalidDigit(digit));
        }
        let body = format!("Signal={digit}\r\nDuration={}\r\n", duration.as_millis());
        self.send_info(now, "application/dtmf-relay", body.into_bytes())
    }

    /// Sends an INFO with `body` of type `media_type` inside the confirmed dialog.
    pub fn send_info(
        &mut self,
        _now: Instant,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<(), CallError> {
        if self.state != CallState::Confirmed {
            return Err(self.invalid("INFO"));
        }
        let mut info = self
            .dialog_request(Method::Info)
            .ok_or(self.invalid("INFO"))?;
        set_body(&mut info.headers, &mut info.body, media_type, body);
        self.finish_request(&mut info);
        self.send_request(info, Purpose::Info);
        Ok(())
    }

    /// Sends an OPTIONS inside the confirmed dialog (a liveness check: a 481 or a timeout
    /// ends the call).
    pub fn send_options(&mut self, _now: Instant) -> Result<(), CallError> {
        if self.state != CallState::Confirmed {
            return Err(self.invalid("OPTIONS"));
        }
        let mut options = self
            .dialog_request(Method::Options)
            .ok_or(self.invalid("OPTIONS"))?;
        options.headers.push(HeaderName::Accept, SDP);
        self.finish_request(&mut options);
        self.send_request(options, Purpose::Options);
        Ok(())
    }

    // ----- inputs from the transaction layer --------------------------------------------

    /// The runtime started client transaction `tx` for the request of `handle`.
    pub fn request_sent(&mut self, handle: RequestHandle, tx: TransactionId) {
        if let Some(client) = self.clients.iter_mut().find(|c| c.handle == handle) {
            client.tx = Some(tx);
        }
        if let Some(uac) = self.uac.as_mut()
            && uac.handle == Some(handle)
        {
            uac.tx = Some(tx);
        }
    }

    /// The runtime could not send the request of `handle` (no route, transaction refused):
    /// handled like a transport error of its transaction.
    pub fn request_not_sent(&mut self, now: Instant, handle: RequestHandle) {
        if let Some(i) = self.clients.iter().position(|c| c.handle == handle) {
            let client = self.clients.remove(i);
            self.on_client_failure(now, client, TransactionFailure::Transport);
        }
    }

    /// A response in one of our client transactions.
    pub fn handle_response(&mut self, now: Instant, tx: TransactionId, response: Response) {
        let Ok(cseq) = response.headers.cseq() else {
            return;
        };
        let found = self
            .clients
            .iter()
            .position(|c| c.tx == Some(tx))
            .or_else(|| {
                self.clients
                    .iter()
                    .position(|c| c.tx.is_none() && c.cseq == cseq.seq && c.method == cseq.method)
            });
        let Some(i) = found else {
            // Not (or no longer) ours: a 2xx retransmission after its first copy, a CANCEL's
            // response, a forked 2xx.
            self.handle_stray_response(now, response);
            return;
        };
        let client = self.clients[i].clone();
        if client.cseq != cseq.seq || client.method != cseq.method {
            // Only a response matched by its transaction gets here (the other match needs the
            // CSeq). The transaction layer pairs responses with requests by branch and method
            // (RFC 3261 §17.1.3), so a final one has ended the transaction although its CSeq
            // number is not the request's: nothing else will come for the request, not even
            // a timeout. The request failed; ignoring the response left the call waiting for
            // ever (an outgoing call stuck calling, a BYE never done: the call never released).
            // A provisional one has stopped our INVITE's Timer B: see
            // `on_untrusted_provisional`.
            if response.status >= 200 {
                self.clients.remove(i);
                self.on_request_failed(
                    now,
                    client,
                    EndReason::Protocol("a final response with another CSeq"),
                );
            } else if client.purpose == Purpose::InitialInvite {
                self.on_untrusted_provisional(now, tx);
            }
            return;
        }
        if response.status >= 200 {
            self.clients.remove(i);
        }
        if self.state == CallState::Terminated {
            if response.status >= 200 {
                self.handle_stray_response(now, response);
            }
            return;
        }
        match client.purpose {
            Purpose::InitialInvite => self.on_invite_response(now, response),
            Purpose::Offer => self.on_offer_response(now, response),
            Purpose::Bye => {
                if response.status >= 200 {
                    self.terminate();
                }
            }
            Purpose::Prack | Purpose::ForkBye => {}
            Purpose::Info | Purpose::Options => match response.status {
                481 => {
                    self.end(EndReason::DialogGone);
                    self.terminate();
                }
                408 => self.hang_up_with(EndReason::Timeout),
                _ => {}
            },
        }
    }

    /// Timer B/F fired or the transport failed for client transaction `tx`.
    pub fn handle_transaction_failure(
        &mut self,
        now: Instant,
        tx: TransactionId,
        failure: TransactionFailure,
    ) {
        if let Some(i) = self.clients.iter().position(|c| c.tx == Some(tx)) {
            let client = self.clients.remove(i);
            self.on_client_failure(now, client, failure);
        }
    }

    fn on_client_failure(
        &mut self,
        now: Instant,
        client: ClientRequest,
        failure: TransactionFailure,
    ) {
        let reason = match failure {
            TransactionFailure::Timeout => EndReason::Timeout,
            TransactionFailure::Transport => EndReason::TransportError,
        };
        self.on_request_failed(now, client, reason);
    }

    /// A request of ours will get no usable answer: the call goes on without it or ends
    /// with `reason`.
    fn on_request_failed(&mut self, now: Instant, client: ClientRequest, reason: EndReason) {
        if self.state == CallState::Terminated {
            return;
        }
        match client.purpose {
            Purpose::InitialInvite => self.on_invite_failure(now, client.cseq, reason),
            Purpose::Offer | Purpose::Info | Purpose::Options => self.hang_up_with(reason),
            Purpose::Bye => self.terminate(),
            Purpose::Prack | Purpose::ForkBye => {}
        }
    }

    /// A 2xx to an INVITE of ours that matched no client transaction (RFC 6026: a
    /// retransmission after Timer M, or another fork's answer): re-send our ACK, or ACK and
    /// BYE a fork. Anything else is ignored.
    pub fn handle_stray_response(&mut self, _now: Instant, response: Response) {
        if !self.matches_response(&response) || !(200..=299).contains(&response.status) {
            return;
        }
        let Ok(cseq) = response.headers.cseq() else {
            return;
        };
        if cseq.method != Method::Invite {
            return;
        }
        let to_tag = tag_of(&response.headers.to());
        let same_dialog = self
            .dialog
            .as_ref()
            .is_some_and(|d| Some(d.remote_tag.as_str()) == to_tag.as_deref());
        if same_dialog {
            let ack = self
                .last_ack
                .as_ref()
                .filter(|ack| ack.headers.cseq().is_ok_and(|c| c.seq == cseq.seq))
                .cloned();
            if let Some(ack) = ack {
                self.outputs.push_back(CallOutput::SendAck(ack));
            }
            return;
        }
        if self.uac.as_ref().is_some_and(|u| u.cseq == cseq.seq) {
            self.ack_and_bye_fork(&response);
        }
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == CallState::Terminated {
            return;
        }
        self.uac_timeout(now);
        if self.state == CallState::Terminated {
            return;
        }
        self.uas_timeout(now);
        self.unacked_timeout(now);
        if self
            .reinvite
            .as_ref()
            .and_then(|r| r.retry_at)
            .is_some_and(|t| t <= now)
        {
            self.retry_offer(now);
        }
        if self.session.as_ref().is_some_and(|s| s.deadline() <= now) {
            self.session_timeout(now);
        }
    }
}
