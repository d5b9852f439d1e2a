//! One event subscription, subscriber side (RFC 6665): the dialog-creating SUBSCRIBE, its
//! refreshes and its end, and the NOTIFYs that carry the state. Written for message-waiting
//! indication (RFC 3842, [`SubscriptionConfig::message_summary`]) but generic in the event
//! package: `Event` and `Accept` come from the configuration.
//!
//! Sans-IO like [`Registration`](super::registration::Registration): the runtime sends the
//! SUBSCRIBEs this machine emits in client transactions (it adds the Via with a fresh branch),
//! feeds back their final responses and transaction failures, fires its timers, and hands it
//! the NOTIFYs it [matches](Subscription::matches_request), sending back the response
//! [`Subscription::handle_notify`] returns in that NOTIFY's server transaction.
//!
//! The runtime's duties, in short:
//! - [`SubscriptionOutput::Send`]: add the Via, start a client transaction, and remember it as
//!   this subscription's current transaction. Feed its final response to
//!   [`Subscription::handle_response`] (responses of older transactions may be fed too: the
//!   machine ignores those whose Call-ID and CSeq are not the ones it waits for), and its
//!   Timer F / transport failure to [`Subscription::handle_transaction_failure`] (only for the
//!   current transaction: a failure carries no CSeq to check).
//! - An incoming NOTIFY: ask every subscription [`matches_request`](Subscription::matches_request)
//!   (Call-ID, our From tag in its To, the notifier's tag in its From); answer it with
//!   [`handle_notify`](Subscription::handle_notify) of the one that matches, or with 481 when
//!   none does ([`stray_notify_response`]).
//! - Call [`Subscription::handle_timeout`] at [`Subscription::poll_timeout`] and drain
//!   [`Subscription::poll_output`] after every call.
//!
//! Choices worth knowing:
//! - A NOTIFY may arrive before the 2xx to the initial SUBSCRIBE (RFC 6665 §4.1.2.4): it is
//!   accepted and creates the dialog (remote tag from its From, route set from its
//!   Record-Route, target from its Contact). Only one dialog is kept: NOTIFYs of other forks
//!   get 481, which ends their subscriptions.
//! - After the 2xx to the initial SUBSCRIBE, a NOTIFY must follow within Timer N (64·T1,
//!   RFC 6665 §4.1.2.4); otherwise the subscription has failed and is retried.
//! - A refresh that fails (other than an answerable challenge or a 423) abandons the dialog:
//!   the subscription starts over as a new one after the backoff. A new dialog is the one thing
//!   certain to work after a 481, a timeout or a notifier restart; the notifier's old
//!   subscription expires, or ends at our 481 to its next NOTIFY.
//! - `Subscription-State: terminated` with reason `deactivated` or `timeout` (RFC 6665 §4.2.2)
//!   starts a new subscription at once, unless the subscription that ended never reached
//!   active or pending (then the usual backoff applies, so that a notifier that ends every
//!   subscription at once is not hammered). `rejected`, `noresource` and `invariant` end it for
//!   good; `probation`, `giveup` and unknown or absent reasons retry after the backoff, or
//!   after `retry-after` when that is longer.
//! - A substate other than active/pending/terminated is an extension value: the NOTIFY is
//!   accepted and the subscription goes on in its current state.

use super::random_hex;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::auth::{AuthError, AuthHeader, CredentialStore, DigestSession};
use crate::dialog::{Dialog, DialogError};
use crate::message::{
    HeaderName, Method, NameAddr, ParseError, Request, Response, SipUri, Uri, is_token_char,
    parse_delta_seconds, parse_quoted,
};

use super::message_summary::{
    MESSAGE_SUMMARY_EVENT, MessageSummary, MessageSummaryError, SIMPLE_MESSAGE_SUMMARY,
};
use super::registration::{ALLOW, refresh_delay};
pub use super::registration::{RetryPolicy, TransactionFailure};

/// Subscription duration asked for by default (RFC 3842 §6 suggests an hour).
pub const DEFAULT_EXPIRES: u32 = 3600;

/// Timer N (RFC 6665 §4.1.2.4): 64·T1.
pub const TIMER_N: Duration = Duration::from_secs(32);

/// The `Subscription-State` header name.
fn subscription_state_header() -> HeaderName {
    HeaderName::Other("Subscription-State".to_string())
}

/// Status codes after which subscribing again cannot help: the notifier does not know the
/// resource (404), refuses us (403, 603), or does not do this event package or SUBSCRIBE at
/// all (489, 405, 501).
const PERMANENT_REJECTIONS: [u16; 6] = [403, 404, 405, 489, 501, 603];

/// What one subscription subscribes to, and how.
#[derive(Debug, Clone)]
pub struct SubscriptionConfig {
    /// The event package (`Event` header), e.g. `message-summary`.
    pub event: String,
    /// The body type we take in NOTIFYs (`Accept` header), e.g.
    /// `application/simple-message-summary`.
    pub accept: String,
    /// Our address-of-record: From of the SUBSCRIBE.
    pub aor: SipUri,
    /// Display name put in From.
    pub display_name: Option<String>,
    /// The resource subscribed to: Request-URI and To of the initial SUBSCRIBE. For
    /// message-summary this is the account's own AOR (RFC 3842 §4), unless the voicemail
    /// server wants another URI.
    pub target: SipUri,
    /// Our contact address (NOTIFYs come there).
    pub contact: SipUri,
    /// Requested subscription duration in seconds.
    pub expires: u32,
    /// Preloaded Route set for the initial SUBSCRIBE (an outbound proxy), in order.
    pub route: Vec<NameAddr>,
    /// Retry timing after failures.
    pub retry: RetryPolicy,
    /// How long to wait for the first NOTIFY after the 2xx to the initial SUBSCRIBE, and for
    /// the final NOTIFY after the 2xx to an unsubscribe.
    pub timer_n: Duration,
    /// `User-Agent` header value.
    pub user_agent: String,
}

impl SubscriptionConfig {
    /// Message-waiting indication for the account `aor` (RFC 3842): event `message-summary`,
    /// accepting `application/simple-message-summary`, subscribed at the AOR itself, for
    /// [`DEFAULT_EXPIRES`] seconds, default retry policy, Timer N of 32 s, no route.
    pub fn message_summary(aor: SipUri, contact: SipUri) -> Self {
        SubscriptionConfig {
            event: MESSAGE_SUMMARY_EVENT.to_string(),
            accept: SIMPLE_MESSAGE_SUMMARY.to_string(),
            target: aor.clone(),
            aor,
            display_name: None,
            contact,
            expires: DEFAULT_EXPIRES,
            route: Vec::new(),
            retry: RetryPolicy::default(),
            timer_n: TIMER_N,
            user_agent: "Handset".to_string(),
        }
    }
}

/// Why an attempt failed; the subscription retries on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionFailure {
    /// A final error response that may go away (5xx, 408, 480, 481...).
    Rejected {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// No final response before Timer F fired.
    Timeout,
    /// The transport could not deliver the request.
    Transport,
    /// The response was unusable (a 423 without Min-Expires, a 2xx without To tag...).
    BadResponse(&'static str),
    /// No NOTIFY within Timer N after the 2xx.
    NoNotify,
    /// The notifier ended the subscription with this `reason` (none when absent).
    NotifierTerminated {
        /// The `reason` parameter of `Subscription-State: terminated`, lower-cased.
        reason: Option<String>,
    },
}

impl fmt::Display for SubscriptionFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected { status, reason } => write!(f, "notifier answered {status} {reason}"),
            Self::Timeout => f.write_str("no answer from the notifier (timeout)"),
            Self::Transport => f.write_str("could not reach the notifier (transport error)"),
            Self::BadResponse(what) => write!(f, "unusable answer from the notifier: {what}"),
            Self::NoNotify => f.write_str("the notifier accepted but sent no NOTIFY"),
            Self::NotifierTerminated { reason: Some(r) } => {
                write!(f, "the notifier ended the subscription ({r})")
            }
            Self::NotifierTerminated { reason: None } => {
                f.write_str("the notifier ended the subscription")
            }
        }
    }
}

/// Why a subscription is over for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationReason {
    /// We unsubscribed.
    Unsubscribed,
    /// The notifier refused in a way retrying cannot fix (403, 404, 405, 489, 501, 603).
    Rejected {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// The notifier rejected our credentials (wrong password or user name).
    AuthenticationFailed {
        /// Realm that refused them.
        realm: String,
    },
    /// A challenge could not be answered (no credentials for the realm, unsupported algorithm).
    Authentication(AuthError),
    /// The notifier ended it with `rejected`, `noresource` or `invariant` (RFC 6665 §4.2.2).
    NotifierTerminated {
        /// The reason, lower-cased.
        reason: String,
    },
}

impl fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unsubscribed => f.write_str("unsubscribed"),
            Self::Rejected { status, reason } => write!(f, "notifier answered {status} {reason}"),
            Self::AuthenticationFailed { realm } => write!(
                f,
                "authentication failed for realm {realm:?}: wrong user name or password"
            ),
            Self::Authentication(e) => write!(f, "cannot authenticate: {e}"),
            Self::NotifierTerminated { reason } => {
                write!(f, "the notifier ended the subscription ({reason})")
            }
        }
    }
}

/// A NOTIFY's body of the accepted type.
#[derive(Clone, PartialEq, Eq)]
pub struct Notification {
    /// Its Content-Type, as received.
    pub content_type: String,
    /// The body.
    pub body: Vec<u8>,
}

impl Notification {
    /// The body read as an RFC 3842 message summary.
    pub fn message_summary(&self) -> Result<MessageSummary, MessageSummaryError> {
        MessageSummary::parse(&self.body)
    }
}

impl fmt::Debug for Notification {
    /// The body is personal data: only its type and size are shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Notification")
            .field("content_type", &self.content_type)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// What the subscription reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEvent {
    /// A new subscription's SUBSCRIBE is on its way (first one, retry or re-subscription).
    Subscribing,
    /// The notifier accepted a SUBSCRIBE (initial or refresh) for this long.
    Accepted {
        /// Granted duration in seconds.
        expires: u32,
    },
    /// The notifier says the subscription awaits authorization (`pending`).
    Pending,
    /// The subscription became active.
    Active {
        /// The `expires` of `Subscription-State`, if given.
        expires: Option<u32>,
    },
    /// A NOTIFY carried a body of the accepted type.
    Notification(Notification),
    /// An attempt failed; a new one starts on its own after `retry_in` (zero: at once).
    Failed {
        /// Why.
        reason: SubscriptionFailure,
        /// When the next attempt starts.
        retry_in: Duration,
    },
    /// Over for good: no SUBSCRIBE will go out again unless [`Subscription::start`] is called.
    Terminated {
        /// Why.
        reason: TerminationReason,
    },
}

/// What the machine asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionOutput {
    /// Send this SUBSCRIBE in a new client transaction (the runtime adds the Via).
    Send(Request),
    /// Report this to the application.
    Event(SubscriptionEvent),
}

/// Subscription state (subscriber side).
///
/// ```text
///            start                        NOTIFY active
///   Idle ───────────► Subscribing ──────────────────────────────► Active ◄──┐
///                      │ ▲  │  │                                   ▲  │     │ refresh timer:
///     401/407 answered,└─┘  │  │ NOTIFY pending                    │  └─────┘ in-dialog
///     423 + Min-Expires:    │  └────────────────► Pending ─────────┘          SUBSCRIBE, 2xx
///     SUBSCRIBE again       │                      │  ▲  NOTIFY active
///                           │                      │  └─ refresh timer, 2xx
///                           │ failure, Timer N,    │
///                           │ NOTIFY terminated    │ (from Active too) refresh failure,
///                           │ (retryable)          │ NOTIFY terminated (retryable)
///                           ▼                      │
///                         Failed ◄─────────────────┘
///                           │ retry timer
///                           └────────────► Subscribing (new Call-ID and tag)
///
///   Subscribing/Pending/Active ── 403/404/405/489/501/603, credentials refused,
///                                 NOTIFY terminated rejected/noresource/invariant ──► Terminated
///   Pending/Active ── NOTIFY terminated deactivated/timeout ──► Subscribing (new dialog, at once)
///   Subscribing/Pending/Active ── unsubscribe ──► Unsubscribing
///   Unsubscribing ── NOTIFY terminated / failure / Timer N after the 2xx ──► Terminated
///   Idle/Failed ── unsubscribe ──► Terminated
/// ```
///
/// "Retryable" terminations are those with reason probation, giveup, none or unknown, and
/// deactivated/timeout for a subscription that never got to Active or Pending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Not started.
    Idle,
    /// A new subscription's SUBSCRIBE is outstanding, or accepted without NOTIFY yet.
    Subscribing,
    /// A NOTIFY said `pending`; a refresh is scheduled.
    Pending,
    /// A NOTIFY said `active`; a refresh is scheduled.
    Active,
    /// An attempt failed; a retry is scheduled.
    Failed,
    /// An unsubscribe (Expires: 0) is outstanding, or awaits the final NOTIFY.
    Unsubscribing,
    /// Over.
    Terminated,
}

/// The parsed `Subscription-State` header (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStateHeader {
    /// The substate.
    pub state: SubState,
    /// `expires`: seconds left, for active and pending.
    pub expires: Option<u32>,
    /// `reason`, lower-cased, for terminated.
    pub reason: Option<String>,
    /// `retry-after`: seconds before subscribing again, for terminated.
    pub retry_after: Option<u32>,
}

/// The substate of `Subscription-State`: the notifier's view of the subscription
/// (RFC 6665 §4.1.3).
///
/// ```text
///   pending ──authorized──► active
///      │                      │
///      └──────────────────────┴──(expiry, rejection, unsubscribe...)──► terminated
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    /// `active`
    Active,
    /// `pending`
    Pending,
    /// `terminated`
    Terminated,
    /// An extension value, lower-cased.
    Other(String),
}

impl SubscriptionStateHeader {
    /// Parses a header value such as `terminated;reason=timeout;retry-after=30`. Unknown
    /// parameters are ignored, and so are `expires` and `retry-after` values that are not
    /// numbers; a missing or non-token substate is an error.
    pub fn parse(value: &str) -> Result<Self, ParseError> {
        let (state, mut rest) = match value.find(';') {
            Some(i) => (&value[..i], &value[i..]),
            None => (value, ""),
        };
        let state = state.trim();
        if state.is_empty() || !state.bytes().all(is_token_char) {
            return Err(ParseError::new(
                "Subscription-State substate is not a token",
            ));
        }
        let state = match state.to_ascii_lowercase().as_str() {
            "active" => SubState::Active,
            "pending" => SubState::Pending,
            "terminated" => SubState::Terminated,
            other => SubState::Other(other.to_string()),
        };
        let mut header = SubscriptionStateHeader {
            state,
            expires: None,
            reason: None,
            retry_after: None,
        };
        while let Some(after) = rest.strip_prefix(';') {
            let after = after.trim_start();
            let end = after.find([';', '=']).unwrap_or(after.len());
            let name = after[..end].trim();
            rest = &after[end..];
            let mut param_value = None;
            if let Some(v) = rest.strip_prefix('=') {
                let v = v.trim_start();
                if v.starts_with('"') {
                    let (unquoted, tail) = parse_quoted(v)?;
                    param_value = Some(unquoted);
                    rest = tail.trim_start();
                } else {
                    let end = v.find(';').unwrap_or(v.len());
                    param_value = Some(v[..end].trim().to_string());
                    rest = &v[end..];
                }
            }
            if !rest.is_empty() && !rest.starts_with(';') {
                return Err(ParseError::new("Subscription-State parameter is malformed"));
            }
            let Some(param_value) = param_value else {
                continue;
            };
            if name.eq_ignore_ascii_case("expires") {
                header.expires = parse_delta_seconds(&param_value);
            } else if name.eq_ignore_ascii_case("retry-after") {
                header.retry_after = parse_delta_seconds(&param_value);
            } else if name.eq_ignore_ascii_case("reason") && !param_value.is_empty() {
                header.reason = Some(param_value.to_ascii_lowercase());
            }
        }
        Ok(header)
    }
}

/// The 481 for a NOTIFY no subscription matches.
pub fn stray_notify_response(request: &Request) -> Response {
    Response::to_request(request, 481)
}

/// Which SUBSCRIBE is outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The dialog-creating one.
    Initial,
    /// An in-dialog refresh.
    Refresh,
    /// An in-dialog one with Expires: 0.
    Unsubscribe,
}

/// The SUBSCRIBE awaiting its final response.
#[derive(Debug, Clone)]
struct InFlight {
    kind: Kind,
    request: Request,
    expires: u32,
}

/// One subscription.
pub struct Subscription {
    config: SubscriptionConfig,
    digest: DigestSession,
    rng: Box<dyn RngCore + Send>,
    state: SubscriptionState,
    call_id: String,
    local_tag: String,
    /// CSeq of out-of-dialog SUBSCRIBEs (in-dialog ones use the dialog's).
    cseq: u32,
    dialog: Option<Dialog>,
    in_flight: Option<InFlight>,
    /// A NOTIFY arrived in the current dialog.
    notified: bool,
    /// Unsubscribe once the SUBSCRIBE in flight completes.
    unsubscribe_pending: bool,
    /// Refresh (Pending, Active) or retry (Failed) time.
    timer: Option<Instant>,
    /// Timer N: waiting for the first NOTIFY, or the final one when unsubscribing.
    timer_n: Option<Instant>,
    /// When the notifier considers the subscription expired.
    expires_at: Option<Instant>,
    failures: u32,
    /// Whether the current subscription reached active or pending (an immediate
    /// re-subscription after `deactivated`/`timeout` is allowed only then).
    established: bool,
    outputs: VecDeque<SubscriptionOutput>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("state", &self.state)
            .field("dialog", &self.dialog)
            .field("in_flight", &self.in_flight.as_ref().map(|i| i.kind))
            .field("timer", &self.timer)
            .field("timer_n", &self.timer_n)
            .finish_non_exhaustive()
    }
}

/// The media type of a Content-Type or Accept value, without parameters.
fn media_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

/// The event type of an Event header value, without parameters.
fn event_type(value: &str) -> &str {
    value.split(';').next().unwrap_or("").trim()
}

impl Subscription {
    /// A subscription in state Idle. `credentials` answer the notifier's (or a proxy's)
    /// challenges; `rng` makes Call-IDs, tags, client nonces and retry jitter.
    pub fn new(
        config: SubscriptionConfig,
        credentials: CredentialStore,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Self {
        let call_id = random_hex(rng.as_mut(), 16);
        let local_tag = random_hex(rng.as_mut(), 8);
        Subscription {
            config,
            digest: DigestSession::new(credentials),
            rng,
            state: SubscriptionState::Idle,
            call_id,
            local_tag,
            cseq: 0,
            dialog: None,
            in_flight: None,
            notified: false,
            unsubscribe_pending: false,
            timer: None,
            timer_n: None,
            expires_at: None,
            failures: 0,
            established: false,
            outputs: VecDeque::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> SubscriptionState {
        self.state
    }

    /// The configuration.
    pub fn config(&self) -> &SubscriptionConfig {
        &self.config
    }

    /// The Call-ID of the current subscription (a new subscription gets a new one).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The dialog, once the 2xx or the first NOTIFY has created it.
    pub fn dialog(&self) -> Option<&Dialog> {
        self.dialog.as_ref()
    }

    /// Starts a new subscription now, abandoning the current one if any.
    pub fn start(&mut self, now: Instant) {
        self.unsubscribe_pending = false;
        self.failures = 0;
        self.new_subscription(now);
    }

    /// Replaces our Contact (the runtime's local address changed). An established
    /// subscription is refreshed at once, since SUBSCRIBE is a target refresh request and the
    /// notifier must learn where to send NOTIFYs; otherwise the next SUBSCRIBE carries it.
    pub fn set_contact(&mut self, now: Instant, contact: SipUri) {
        self.config.contact = contact;
        let established = matches!(
            self.state,
            SubscriptionState::Pending | SubscriptionState::Active
        );
        if established && self.in_flight.is_none() && self.dialog.is_some() {
            self.timer = None;
            self.send_in_dialog(now, Kind::Refresh, self.config.expires);
        }
    }

    /// Ends the subscription: an in-dialog SUBSCRIBE with Expires: 0, then the final NOTIFY.
    /// Without a dialog this ends at once; with the initial SUBSCRIBE or a refresh in flight,
    /// the unsubscribe follows its answer.
    pub fn unsubscribe(&mut self, now: Instant) {
        self.timer = None;
        match self.state {
            SubscriptionState::Terminated | SubscriptionState::Unsubscribing => {}
            SubscriptionState::Idle | SubscriptionState::Failed => {
                self.terminate(TerminationReason::Unsubscribed)
            }
            SubscriptionState::Subscribing
            | SubscriptionState::Pending
            | SubscriptionState::Active => {
                if self.in_flight.is_some() {
                    self.unsubscribe_pending = true;
                } else if self.dialog.is_some() {
                    self.send_in_dialog(now, Kind::Unsubscribe, 0);
                } else {
                    self.terminate(TerminationReason::Unsubscribed);
                }
            }
        }
    }

    /// Replaces the credentials that answer challenges (the TU learned or dropped a realm).
    pub fn set_credentials(&mut self, credentials: CredentialStore) {
        self.digest.set_credentials(credentials);
    }

    /// Earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.timer, self.timer_n) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Next thing to do.
    pub fn poll_output(&mut self) -> Option<SubscriptionOutput> {
        self.outputs.pop_front()
    }

    /// Fires Timer N and the refresh or retry timer when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer_n.is_some_and(|t| t <= now) {
            self.timer_n = None;
            self.handle_timer_n(now);
        }
        if self.timer.is_some_and(|t| t <= now) {
            self.timer = None;
            match self.state {
                SubscriptionState::Subscribing
                | SubscriptionState::Pending
                | SubscriptionState::Active
                    if self.in_flight.is_none() && self.dialog.is_some() =>
                {
                    self.send_in_dialog(now, Kind::Refresh, self.config.expires);
                }
                SubscriptionState::Failed => self.new_subscription(now),
                _ => {}
            }
        }
    }

    /// Handles a final response (provisional ones are ignored) to the SUBSCRIBE in flight;
    /// responses to other requests (an older SUBSCRIBE) are ignored.
    pub fn handle_response(&mut self, now: Instant, response: &Response) {
        if response.status < 200 || !self.answers_in_flight(response) {
            return;
        }
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        if self.unsubscribe_pending
            && self.dialog.is_none()
            && !(200..=299).contains(&response.status)
        {
            // Nothing to unsubscribe from: the subscription never came about.
            self.terminate(TerminationReason::Unsubscribed);
            return;
        }
        match response.status {
            200..=299 => self.handle_success(now, response, &flight),
            401 | 407 => self.handle_challenge(now, response, &flight),
            423 => self.handle_interval_too_brief(now, response, &flight),
            _ => self.handle_rejection(now, response, &flight),
        }
    }

    /// Handles a timeout or transport failure of the SUBSCRIBE in flight.
    pub fn handle_transaction_failure(&mut self, now: Instant, failure: TransactionFailure) {
        let Some(flight) = self.in_flight.take() else {
            return;
        };
        if flight.kind == Kind::Unsubscribe || self.unsubscribe_pending {
            self.terminate(TerminationReason::Unsubscribed);
            return;
        }
        let reason = match failure {
            TransactionFailure::Timeout => SubscriptionFailure::Timeout,
            TransactionFailure::Transport => SubscriptionFailure::Transport,
        };
        self.fail(now, reason, None);
    }

    /// Whether `request` is a NOTIFY of this subscription: same Call-ID, our tag in its To,
    /// and the notifier's tag in its From (any tag while the initial SUBSCRIBE awaits its
    /// answer, since the NOTIFY may overtake the 2xx).
    pub fn matches_request(&self, request: &Request) -> bool {
        if request.method != Method::Notify {
            return false;
        }
        let h = &request.headers;
        let (Ok(call_id), Ok(from), Ok(to)) = (h.call_id(), h.from(), h.to()) else {
            return false;
        };
        if call_id != self.call_id || to.tag() != Some(self.local_tag.as_str()) {
            return false;
        }
        match &self.dialog {
            Some(dialog) => from.tag().unwrap_or_default() == dialog.remote_tag,
            None => self
                .in_flight
                .as_ref()
                .is_some_and(|flight| flight.kind == Kind::Initial),
        }
    }

    /// Handles a NOTIFY and returns the response to send in its server transaction: 481 when
    /// it is not this subscription's ([`matches_request`](Self::matches_request)), 489 when
    /// its Event is not ours, 400 without a readable Subscription-State (or, creating the
    /// dialog, without Contact), 500 when its CSeq is out of order, 405 for another method,
    /// else 200. A body of the accepted type is reported as a
    /// [`SubscriptionEvent::Notification`] before the state change the NOTIFY brings.
    pub fn handle_notify(&mut self, now: Instant, request: &Request) -> Response {
        if request.method != Method::Notify {
            let mut response = Response::to_request(request, 405);
            response.headers.push(HeaderName::Allow, ALLOW);
            return response;
        }
        if !self.matches_request(request) {
            return stray_notify_response(request);
        }
        let ours = request
            .headers
            .get(&HeaderName::Event)
            .is_some_and(|e| event_type(e).eq_ignore_ascii_case(event_type(&self.config.event)));
        if !ours {
            let mut response = Response::to_request(request, 489);
            response.reason = "Bad Event".to_string();
            return response;
        }
        let Some(sub_state) = request
            .headers
            .get(&subscription_state_header())
            .and_then(|v| SubscriptionStateHeader::parse(v).ok())
        else {
            return Response::to_request(request, 400);
        };
        if let Err(status) = self.update_dialog_from_notify(request) {
            return Response::to_request(request, status);
        }
        self.notified = true;
        if self.state != SubscriptionState::Unsubscribing {
            self.timer_n = None;
        }
        if let Some(content_type) = request.headers.get(&HeaderName::ContentType)
            && !request.body.is_empty()
            && media_type(content_type).eq_ignore_ascii_case(media_type(&self.config.accept))
        {
            self.emit(SubscriptionEvent::Notification(Notification {
                content_type: content_type.to_string(),
                body: request.body.clone(),
            }));
        }
        match sub_state.state {
            SubState::Active => self.handle_notify_active(now, sub_state.expires),
            SubState::Pending => self.handle_notify_pending(now, sub_state.expires),
            SubState::Terminated => {
                self.handle_notify_terminated(now, sub_state.reason, sub_state.retry_after)
            }
            SubState::Other(_) => {}
        }
        Response::to_request(request, 200)
    }

    fn answers_in_flight(&self, response: &Response) -> bool {
        let Some(flight) = &self.in_flight else {
            return false;
        };
        let (Ok(call_id), Ok(cseq), Ok(sent_call_id), Ok(sent_cseq)) = (
            response.headers.call_id(),
            response.headers.cseq(),
            flight.request.headers.call_id(),
            flight.request.headers.cseq(),
        ) else {
            return false;
        };
        call_id == sent_call_id && cseq == sent_cseq
    }

    /// Creates the dialog from a NOTIFY that overtook the 2xx, or checks the NOTIFY's CSeq in
    /// the existing one; `Err` is the status to answer.
    fn update_dialog_from_notify(&mut self, request: &Request) -> Result<(), u16> {
        match &mut self.dialog {
            Some(dialog) => match dialog.check_remote_cseq(request) {
                Ok(()) => {
                    // NOTIFY is a target refresh request (RFC 6665 §4.1.3); a bad Contact
                    // leaves the target as it was.
                    let _ = dialog.refresh_target(&request.headers);
                    Ok(())
                }
                Err(DialogError::OutOfOrder { .. }) => Err(500),
                Err(_) => Err(400),
            },
            None => {
                let local_seq = self
                    .in_flight
                    .as_ref()
                    .and_then(|f| f.request.headers.cseq().ok())
                    .map_or(self.cseq, |c| c.seq);
                let dialog =
                    Dialog::uas(request, self.local_tag.clone(), local_seq).map_err(|_| 400u16)?;
                self.dialog = Some(dialog);
                Ok(())
            }
        }
    }

    fn handle_notify_active(&mut self, now: Instant, expires: Option<u32>) {
        self.note_remaining(now, expires);
        if matches!(
            self.state,
            SubscriptionState::Subscribing | SubscriptionState::Pending
        ) {
            self.state = SubscriptionState::Active;
            self.established = true;
            self.emit(SubscriptionEvent::Active { expires });
        }
    }

    fn handle_notify_pending(&mut self, now: Instant, expires: Option<u32>) {
        self.note_remaining(now, expires);
        if self.state == SubscriptionState::Subscribing {
            self.state = SubscriptionState::Pending;
            self.established = true;
            self.emit(SubscriptionEvent::Pending);
        }
    }

    /// The notifier's `expires` may be shorter than what the 2xx granted: refresh earlier.
    fn note_remaining(&mut self, now: Instant, expires: Option<u32>) {
        let Some(expires) = expires else { return };
        if self.in_flight.is_some() || self.timer.is_none() {
            // The 2xx still has to come (or a refresh is under way): it sets the timer.
            return;
        }
        let at = now + refresh_delay(expires);
        if self.timer.is_some_and(|t| at < t) {
            self.timer = Some(at);
        }
        let end = now + Duration::from_secs(expires.into());
        if self.expires_at.is_none_or(|t| end < t) {
            self.expires_at = Some(end);
        }
    }

    fn handle_notify_terminated(
        &mut self,
        now: Instant,
        reason: Option<String>,
        retry_after: Option<u32>,
    ) {
        if self.state == SubscriptionState::Unsubscribing || self.unsubscribe_pending {
            self.terminate(TerminationReason::Unsubscribed);
            return;
        }
        // The dialog is over, and so is any SUBSCRIBE in flight in it.
        self.dialog = None;
        self.in_flight = None;
        let retry_after = retry_after.map(|s| Duration::from_secs(s.into()));
        match reason.as_deref() {
            Some(r @ ("rejected" | "noresource" | "invariant")) => {
                let reason = r.to_string();
                self.terminate(TerminationReason::NotifierTerminated { reason });
            }
            Some("deactivated" | "timeout") if retry_after.is_none() && self.established => {
                // RFC 6665 §4.2.2: subscribe again at once, as a new subscription.
                self.emit(SubscriptionEvent::Failed {
                    reason: SubscriptionFailure::NotifierTerminated { reason },
                    retry_in: Duration::ZERO,
                });
                self.new_subscription(now);
            }
            _ => self.fail(
                now,
                SubscriptionFailure::NotifierTerminated { reason },
                retry_after,
            ),
        }
    }

    fn handle_timer_n(&mut self, now: Instant) {
        match self.state {
            SubscriptionState::Unsubscribing => self.terminate(TerminationReason::Unsubscribed),
            SubscriptionState::Subscribing if !self.notified => {
                self.fail(now, SubscriptionFailure::NoNotify, None)
            }
            _ => {}
        }
    }

    fn handle_success(&mut self, now: Instant, response: &Response, flight: &InFlight) {
        if flight.kind == Kind::Unsubscribe {
            // Wait for the final NOTIFY, but not for ever.
            self.timer_n = Some(now + self.config.timer_n);
            return;
        }
        match &mut self.dialog {
            Some(dialog) => {
                // SUBSCRIBE is a target refresh request. A 2xx of another fork than the one
                // whose NOTIFY created the dialog changes nothing.
                if dialog.matches_response(response) {
                    let _ = dialog.refresh_target(&response.headers);
                }
            }
            None => match Dialog::uac(&flight.request, response) {
                Ok(dialog) => self.dialog = Some(dialog),
                Err(_) => {
                    self.fail(
                        now,
                        SubscriptionFailure::BadResponse("2xx without To tag or Contact"),
                        None,
                    );
                    return;
                }
            },
        }
        if self.unsubscribe_pending {
            self.unsubscribe_pending = false;
            self.send_in_dialog(now, Kind::Unsubscribe, 0);
            return;
        }
        let granted = response
            .headers
            .expires()
            .ok()
            .flatten()
            .unwrap_or(flight.expires)
            .min(flight.expires.max(1));
        if granted == 0 {
            self.fail(
                now,
                SubscriptionFailure::BadResponse("2xx granted Expires: 0"),
                None,
            );
            return;
        }
        self.failures = 0;
        self.expires_at = Some(now + Duration::from_secs(granted.into()));
        self.timer = Some(now + refresh_delay(granted));
        if !self.notified {
            self.timer_n = Some(now + self.config.timer_n);
        }
        self.emit(SubscriptionEvent::Accepted { expires: granted });
    }

    fn handle_challenge(&mut self, now: Instant, response: &Response, flight: &InFlight) {
        let name = if response.status == 401 {
            HeaderName::WwwAuthenticate
        } else {
            HeaderName::ProxyAuthenticate
        };
        let challenges: Vec<&str> = response.headers.get_all(&name).collect();
        let error = match self.digest.on_challenge(response.status, &challenges) {
            Ok(()) => {
                self.resend(now, flight);
                return;
            }
            Err(e) => e,
        };
        if flight.kind == Kind::Unsubscribe {
            self.terminate(TerminationReason::Unsubscribed);
            return;
        }
        match error {
            AuthError::Rejected { realm } => {
                self.terminate(TerminationReason::AuthenticationFailed { realm })
            }
            e => self.terminate(TerminationReason::Authentication(e)),
        }
    }

    fn handle_interval_too_brief(&mut self, now: Instant, response: &Response, flight: &InFlight) {
        match response.headers.min_expires() {
            Ok(Some(min)) if min > flight.expires && flight.kind != Kind::Unsubscribe => {
                self.config.expires = min;
                let retry = InFlight {
                    expires: min,
                    ..flight.clone()
                };
                self.resend(now, &retry);
            }
            _ if flight.kind == Kind::Unsubscribe => {
                self.terminate(TerminationReason::Unsubscribed)
            }
            _ => self.fail(
                now,
                SubscriptionFailure::BadResponse("423 without usable Min-Expires"),
                None,
            ),
        }
    }

    fn handle_rejection(&mut self, now: Instant, response: &Response, flight: &InFlight) {
        if flight.kind == Kind::Unsubscribe {
            self.terminate(TerminationReason::Unsubscribed);
            return;
        }
        let status = response.status;
        let reason = response.reason.clone();
        if PERMANENT_REJECTIONS.contains(&status) {
            self.terminate(TerminationReason::Rejected { status, reason });
            return;
        }
        let retry_after = response
            .headers
            .get(&HeaderName::RetryAfter)
            .and_then(|v| v.split([';', ' ', '(']).next())
            .and_then(parse_delta_seconds)
            .map(|s| Duration::from_secs(s.into()));
        self.fail(
            now,
            SubscriptionFailure::Rejected { status, reason },
            retry_after,
        );
    }

    /// Sends the SUBSCRIBE of `flight` again (after a challenge or a 423), with a new CSeq.
    fn resend(&mut self, now: Instant, flight: &InFlight) {
        match flight.kind {
            Kind::Initial if self.dialog.is_none() => self.send_initial(now, flight.expires),
            Kind::Initial | Kind::Refresh => {
                self.send_in_dialog(now, Kind::Refresh, flight.expires)
            }
            Kind::Unsubscribe => self.send_in_dialog(now, Kind::Unsubscribe, 0),
        }
    }

    /// Drops the dialog, schedules a new subscription after the backoff (at least
    /// `at_least`), and reports it.
    fn fail(&mut self, now: Instant, reason: SubscriptionFailure, at_least: Option<Duration>) {
        if self.unsubscribe_pending {
            // The application wants it over anyway.
            self.terminate(TerminationReason::Unsubscribed);
            return;
        }
        self.failures = self.failures.saturating_add(1);
        let wait = self.backoff().max(at_least.unwrap_or_default());
        self.dialog = None;
        self.in_flight = None;
        self.timer_n = None;
        self.expires_at = None;
        self.state = SubscriptionState::Failed;
        self.timer = Some(now + wait);
        self.emit(SubscriptionEvent::Failed {
            reason,
            retry_in: wait,
        });
    }

    fn terminate(&mut self, reason: TerminationReason) {
        self.state = SubscriptionState::Terminated;
        self.dialog = None;
        self.in_flight = None;
        self.timer = None;
        self.timer_n = None;
        self.expires_at = None;
        self.unsubscribe_pending = false;
        self.emit(SubscriptionEvent::Terminated { reason });
    }

    /// RFC 5626 §4.5 wait, with jitter between 50 % and 100 % (as for registrations).
    fn backoff(&mut self) -> Duration {
        let RetryPolicy { base, max } = self.config.retry;
        let exponent = self.failures.saturating_sub(1).min(16);
        let full = base.saturating_mul(1 << exponent).min(max);
        let fraction = 0.5 + f64::from(self.rng.next_u32() % 1001) / 2000.0;
        full.mul_f64(fraction)
    }

    fn emit(&mut self, event: SubscriptionEvent) {
        self.outputs.push_back(SubscriptionOutput::Event(event));
    }

    /// A new subscription: new Call-ID and tag, no dialog, initial SUBSCRIBE now.
    fn new_subscription(&mut self, now: Instant) {
        self.call_id = random_hex(self.rng.as_mut(), 16);
        self.local_tag = random_hex(self.rng.as_mut(), 8);
        self.dialog = None;
        self.notified = false;
        self.established = false;
        self.timer = None;
        self.timer_n = None;
        self.expires_at = None;
        self.state = SubscriptionState::Subscribing;
        self.send_initial(now, self.config.expires);
        self.emit(SubscriptionEvent::Subscribing);
    }

    fn send_initial(&mut self, _now: Instant, expires: u32) {
        self.cseq = self.cseq.saturating_add(1);
        let c = &self.config;
        let mut request = Request::new(Method::Subscribe, Uri::Sip(c.target.clone()));
        let mut from = NameAddr::new(c.aor.clone());
        from.display = c.display_name.clone();
        from.set_param("tag", Some(self.local_tag.clone()));
        let to = NameAddr::new(c.target.clone());
        let h = &mut request.headers;
        for route in &c.route {
            h.push(HeaderName::Route, route.to_string());
        }
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, from.to_string());
        h.push(HeaderName::To, to.to_string());
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, format!("{} SUBSCRIBE", self.cseq));
        self.finish_request(request, Kind::Initial, expires);
    }

    fn send_in_dialog(&mut self, _now: Instant, kind: Kind, expires: u32) {
        let Some(dialog) = self.dialog.as_mut() else {
            return;
        };
        let request = dialog.new_request(Method::Subscribe);
        if kind == Kind::Unsubscribe {
            self.state = SubscriptionState::Unsubscribing;
            self.timer = None;
        }
        self.finish_request(request, kind, expires);
    }

    /// Adds the headers every SUBSCRIBE carries and the credentials, and queues it.
    fn finish_request(&mut self, mut request: Request, kind: Kind, expires: u32) {
        let c = &self.config;
        let h = &mut request.headers;
        h.push(
            HeaderName::Contact,
            NameAddr::new(c.contact.clone()).to_string(),
        );
        h.push(HeaderName::Event, c.event.clone());
        h.push(HeaderName::Accept, c.accept.clone());
        h.push(HeaderName::Expires, expires.to_string());
        h.push(HeaderName::Allow, ALLOW);
        h.push(HeaderName::UserAgent, c.user_agent.clone());
        let uri = request.uri.to_string();
        for (header, value) in
            self.digest
                .authorization_headers("SUBSCRIBE", &uri, &request.body, self.rng.as_mut())
        {
            let name = match header {
                AuthHeader::Authorization => HeaderName::Authorization,
                AuthHeader::ProxyAuthorization => HeaderName::ProxyAuthorization,
            };
            request.headers.push(name, value);
        }
        self.in_flight = Some(InFlight {
            kind,
            request: request.clone(),
            expires,
        });
        self.outputs.push_back(SubscriptionOutput::Send(request));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::disallowed_methods)]

    use super::*;
    use crate::auth::Credentials;
    use crate::message::Host;
    use crate::usage::message_summary::MessageCounts;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    const CHALLENGE: &str =
        r#"Digest realm="example.test", nonce="abc123", qop="auth", algorithm=MD5"#;
    const MWI: &str = "Messages-Waiting: yes\r\nMessage-Account: sip:alice@example.test\r\n\
                       Voice-Message: 2/8 (0/2)\r\n";

    fn config() -> SubscriptionConfig {
        let aor = SipUri::new(Some("alice"), Host::Domain("example.test".into()));
        let mut contact = SipUri::new(Some("alice"), Host::V4([127, 0, 0, 1].into()));
        contact.port = Some(5070);
        let mut c = SubscriptionConfig::message_summary(aor, contact);
        c.user_agent = "Handset-test".into();
        c.retry = RetryPolicy {
            base: Duration::from_secs(10),
            max: Duration::from_secs(60),
        };
        c
    }

    fn subscription() -> Subscription {
        Subscription::new(
            config(),
            CredentialStore::with_default(Credentials::with_password("alice", "alice-secret")),
            Box::new(StdRng::seed_from_u64(3)),
        )
    }

    fn drain(sub: &mut Subscription) -> (Vec<Request>, Vec<SubscriptionEvent>) {
        let mut sent = Vec::new();
        let mut events = Vec::new();
        while let Some(out) = sub.poll_output() {
            match out {
                SubscriptionOutput::Send(mut r) => {
                    r.headers.push_front(
                        HeaderName::Via,
                        "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKt;rport",
                    );
                    sent.push(r)
                }
                SubscriptionOutput::Event(e) => events.push(e),
            }
        }
        (sent, events)
    }

    fn answer(request: &Request, status: u16, extra: &[(&str, &str)]) -> Response {
        let mut response = Response::to_request(request, status);
        if status >= 200 && request.headers.to().unwrap().tag().is_none() {
            let to = format!("{};tag=pbx1", request.headers.get(&HeaderName::To).unwrap());
            response.headers.set(HeaderName::To, to);
        }
        for (name, value) in extra {
            response.headers.push(*name, *value);
        }
        response
    }

    fn ok(request: &Request, expires: u32) -> Response {
        answer(
            request,
            200,
            &[
                ("Contact", "<sip:vm@192.0.2.9:5060>"),
                ("Expires", &expires.to_string()),
                ("Record-Route", "<sip:p1.example.test;lr>"),
                ("Record-Route", "<sip:p2.example.test;lr>"),
            ],
        )
    }

    /// A NOTIFY the notifier sends in the dialog of `subscribe` (our SUBSCRIBE).
    fn notify(subscribe: &Request, cseq: u32, state: &str, body: Option<&str>) -> Request {
        let from_us = subscribe.headers.from().unwrap();
        let mut r = Request::new(Method::Notify, Uri::Sip(subscribe_contact(subscribe)));
        let h = &mut r.headers;
        h.push(HeaderName::Via, "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKn");
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, "<sip:alice@example.test>;tag=pbx1");
        h.push(HeaderName::To, from_us.to_string());
        h.push(HeaderName::CallId, subscribe.headers.call_id().unwrap());
        h.push(HeaderName::CSeq, format!("{cseq} NOTIFY"));
        h.push(HeaderName::Contact, "<sip:vm@192.0.2.9:5060>");
        h.push(HeaderName::Event, "message-summary");
        h.push("Subscription-State", state);
        if let Some(body) = body {
            h.push(HeaderName::ContentType, SIMPLE_MESSAGE_SUMMARY);
            r.body = body.as_bytes().to_vec();
        }
        r
    }

    fn subscribe_contact(subscribe: &Request) -> SipUri {
        match subscribe.headers.contacts().unwrap()[0]
            .clone()
            .unwrap()
            .uri
        {
            Uri::Sip(u) => u,
            Uri::Other { .. } => unreachable!(),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    /// Subscribe, 200, NOTIFY active: returns the machine and the initial SUBSCRIBE.
    fn active(t0: Instant) -> (Subscription, Request) {
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        sub.handle_response(t0, &ok(&sent[0], 600));
        let r = sub.handle_notify(t0, &notify(&sent[0], 1, "active;expires=600", Some(MWI)));
        assert_eq!(r.status, 200);
        drain(&mut sub);
        assert_eq!(sub.state(), SubscriptionState::Active);
        (sub, sent[0].clone())
    }

    #[test]
    fn initial_subscribe_headers() {
        let t0 = Instant::now();
        let mut sub = subscription();
        sub.start(t0);
        let (sent, events) = drain(&mut sub);
        assert_eq!(events, vec![SubscriptionEvent::Subscribing]);
        let s = &sent[0];
        assert_eq!(s.method, Method::Subscribe);
        assert_eq!(s.uri.to_string(), "sip:alice@example.test");
        assert_eq!(
            s.headers.get(&HeaderName::To),
            Some("<sip:alice@example.test>")
        );
        assert!(s.headers.from().unwrap().tag().is_some());
        assert_eq!(s.headers.get(&HeaderName::Event), Some("message-summary"));
        assert_eq!(
            s.headers.get(&HeaderName::Accept),
            Some("application/simple-message-summary")
        );
        assert_eq!(s.headers.expires().unwrap(), Some(3600));
        assert_eq!(
            s.headers.get(&HeaderName::Contact),
            Some("<sip:alice@127.0.0.1:5070>")
        );
        assert_eq!(s.headers.cseq().unwrap().to_string(), "1 SUBSCRIBE");
        assert_eq!(sub.state(), SubscriptionState::Subscribing);
        assert!(crate::message::Message::parse(&s.to_bytes()).is_ok());
    }

    #[test]
    fn challenge_then_dialog_then_refresh_in_dialog() {
        let t0 = Instant::now();
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        sub.handle_response(
            t0,
            &answer(&sent[0], 401, &[("WWW-Authenticate", CHALLENGE)]),
        );
        let (sent2, events) = drain(&mut sub);
        assert!(events.is_empty(), "{events:?}");
        let second = &sent2[0];
        assert_eq!(second.headers.cseq().unwrap().seq, 2);
        assert_eq!(
            second.headers.call_id().unwrap(),
            sent[0].headers.call_id().unwrap()
        );
        assert!(
            second
                .headers
                .get(&HeaderName::Authorization)
                .unwrap()
                .contains("nc=00000001")
        );
        // A response to the first (challenged) SUBSCRIBE is ignored now.
        sub.handle_response(t0, &ok(&sent[0], 600));
        assert!(sub.dialog().is_none());

        sub.handle_response(t0, &ok(second, 600));
        let (_, events) = drain(&mut sub);
        assert_eq!(events, vec![SubscriptionEvent::Accepted { expires: 600 }]);
        let d = sub.dialog().unwrap();
        assert_eq!(d.remote_tag, "pbx1");
        assert_eq!(d.remote_target.to_string(), "sip:vm@192.0.2.9:5060");
        let routes: Vec<String> = d.route_set.iter().map(|r| r.uri.to_string()).collect();
        assert_eq!(routes, ["sip:p2.example.test;lr", "sip:p1.example.test;lr"]);
        // Timer N runs until the first NOTIFY.
        assert_eq!(sub.poll_timeout(), Some(t0 + TIMER_N));

        let r = sub.handle_notify(t0, &notify(second, 1, "active;expires=600", Some(MWI)));
        assert_eq!(r.status, 200);
        let (_, events) = drain(&mut sub);
        let SubscriptionEvent::Notification(n) = &events[0] else {
            panic!("{events:?}")
        };
        let summary = n.message_summary().unwrap();
        assert_eq!(
            summary.voice,
            Some(MessageCounts {
                new: 2,
                old: 8,
                urgent_new: 0,
                urgent_old: 2
            })
        );
        assert_eq!(events[1], SubscriptionEvent::Active { expires: Some(600) });
        assert_eq!(sub.poll_timeout(), Some(t0 + secs(510)));

        sub.handle_timeout(t0 + secs(509));
        assert!(sub.poll_output().is_none(), "refresh fired early");
        sub.handle_timeout(t0 + secs(510));
        let (sent3, events) = drain(&mut sub);
        assert!(events.is_empty(), "{events:?}");
        let refresh = &sent3[0];
        assert_eq!(refresh.uri.to_string(), "sip:vm@192.0.2.9:5060");
        assert_eq!(
            refresh.headers.call_id().unwrap(),
            second.headers.call_id().unwrap()
        );
        assert_eq!(refresh.headers.cseq().unwrap().seq, 3);
        assert_eq!(refresh.headers.to().unwrap().tag(), Some("pbx1"));
        let routes: Vec<&str> = refresh.headers.get_all(&HeaderName::Route).collect();
        assert_eq!(
            routes,
            ["<sip:p2.example.test;lr>", "<sip:p1.example.test;lr>"]
        );
        assert!(
            refresh
                .headers
                .get(&HeaderName::Authorization)
                .unwrap()
                .contains("nc=00000002")
        );
        // A refresh asks for the configured duration again; the notifier may shorten it.
        assert_eq!(refresh.headers.expires().unwrap(), Some(3600));
        sub.handle_response(t0 + secs(510), &ok(refresh, 600));
        let (_, events) = drain(&mut sub);
        assert_eq!(events, vec![SubscriptionEvent::Accepted { expires: 600 }]);
        assert_eq!(sub.state(), SubscriptionState::Active);
        assert_eq!(sub.poll_timeout(), Some(t0 + secs(1020)));
    }

    #[test]
    fn notify_before_2xx_creates_the_dialog() {
        let t0 = Instant::now();
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        let mut early = notify(&sent[0], 7, "pending", None);
        early
            .headers
            .push(HeaderName::RecordRoute, "<sip:p1.example.test;lr>");
        assert!(sub.matches_request(&early));
        assert_eq!(sub.handle_notify(t0, &early).status, 200);
        let (_, events) = drain(&mut sub);
        assert_eq!(events, vec![SubscriptionEvent::Pending]);
        let d = sub.dialog().unwrap();
        assert_eq!(d.remote_tag, "pbx1");
        assert_eq!(d.remote_seq, Some(7));
        assert_eq!(d.route_set.len(), 1);
        // Now only that notifier's NOTIFYs match.
        let mut other_fork = notify(&sent[0], 1, "active", None);
        other_fork
            .headers
            .set(HeaderName::From, "<sip:alice@example.test>;tag=fork2");
        assert!(!sub.matches_request(&other_fork));
        assert_eq!(sub.handle_notify(t0, &other_fork).status, 481);

        sub.handle_response(t0, &ok(&sent[0], 3600));
        let (_, events) = drain(&mut sub);
        assert_eq!(events, vec![SubscriptionEvent::Accepted { expires: 3600 }]);
        // No Timer N: the NOTIFY came already.
        assert_eq!(sub.poll_timeout(), Some(t0 + secs(3060)));
        assert_eq!(sub.state(), SubscriptionState::Pending);
        let r = sub.handle_notify(t0, &notify(&sent[0], 8, "active", Some(MWI)));
        assert_eq!(r.status, 200);
        let (_, events) = drain(&mut sub);
        assert!(matches!(events[0], SubscriptionEvent::Notification(_)));
        assert_eq!(events[1], SubscriptionEvent::Active { expires: None });
        // An old CSeq is out of order.
        let r = sub.handle_notify(t0, &notify(&sent[0], 6, "active", None));
        assert_eq!(r.status, 500);
    }

    #[test]
    fn notify_answers() {
        let t0 = Instant::now();
        let (mut sub, first) = active(t0);
        let mut wrong_event = notify(&first, 2, "active", None);
        wrong_event.headers.set(HeaderName::Event, "presence");
        assert_eq!(sub.handle_notify(t0, &wrong_event).status, 489);
        let mut no_event = notify(&first, 2, "active", None);
        no_event.headers.remove(&HeaderName::Event);
        assert_eq!(sub.handle_notify(t0, &no_event).status, 489);
        let mut no_state = notify(&first, 2, "active", None);
        no_state.headers.remove(&subscription_state_header());
        assert_eq!(sub.handle_notify(t0, &no_state).status, 400);
        let bad_state = notify(&first, 2, ";expires=5", None);
        assert_eq!(sub.handle_notify(t0, &bad_state).status, 400);
        let mut stray = notify(&first, 2, "active", None);
        stray.headers.set(HeaderName::CallId, "other-call");
        assert!(!sub.matches_request(&stray));
        assert_eq!(sub.handle_notify(t0, &stray).status, 481);
        let mut not_our_tag = notify(&first, 2, "active", None);
        not_our_tag
            .headers
            .set(HeaderName::To, "<sip:alice@example.test>;tag=someone-else");
        assert!(!sub.matches_request(&not_our_tag));
        assert_eq!(sub.handle_notify(t0, &not_our_tag).status, 481);
        let mut info = notify(&first, 2, "active", None);
        info.method = Method::Info;
        assert!(!sub.matches_request(&info));
        // Event parameters and case do not matter; other body types are not reported.
        let mut lenient = notify(&first, 3, "ACTIVE ; expires = 300", Some("x"));
        lenient
            .headers
            .set(HeaderName::Event, "Message-Summary;id=1");
        lenient.headers.set(HeaderName::ContentType, "text/plain");
        assert_eq!(sub.handle_notify(t0, &lenient).status, 200);
        let (_, events) = drain(&mut sub);
        assert!(events.is_empty(), "{events:?}");
        // Its expires=300 brings the refresh forward.
        assert_eq!(sub.poll_timeout(), Some(t0 + secs(255)));
        assert_eq!(sub.state(), SubscriptionState::Active);
    }

    #[test]
    fn interval_too_brief_uses_min_expires() {
        let t0 = Instant::now();
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        sub.handle_response(t0, &answer(&sent[0], 423, &[("Min-Expires", "7200")]));
        let (sent2, events) = drain(&mut sub);
        assert!(events.is_empty());
        assert_eq!(sent2[0].headers.expires().unwrap(), Some(7200));
        assert_eq!(sent2[0].headers.cseq().unwrap().seq, 2);
        // A 423 whose Min-Expires is not above what we asked is unusable.
        sub.handle_response(t0, &answer(&sent2[0], 423, &[("Min-Expires", "60")]));
        let (sent3, events) = drain(&mut sub);
        assert!(sent3.is_empty());
        assert!(matches!(
            events[0],
            SubscriptionEvent::Failed {
                reason: SubscriptionFailure::BadResponse(_),
                ..
            }
        ));
    }

    #[test]
    fn permanent_rejections_terminate() {
        for status in [489, 403, 404] {
            let t0 = Instant::now();
            let mut sub = subscription();
            sub.start(t0);
            let (sent, _) = drain(&mut sub);
            sub.handle_response(t0, &answer(&sent[0], status, &[]));
            let (sent, events) = drain(&mut sub);
            assert!(sent.is_empty());
            assert!(
                matches!(
                    &events[..],
                    [SubscriptionEvent::Terminated {
                        reason: TerminationReason::Rejected { status: s, .. }
                    }] if *s == status
                ),
                "{events:?}"
            );
            assert_eq!(sub.state(), SubscriptionState::Terminated);
            assert_eq!(sub.poll_timeout(), None);
        }
    }

    #[test]
    fn wrong_password_terminates() {
        let t0 = Instant::now();
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        sub.handle_response(
            t0,
            &answer(&sent[0], 407, &[("Proxy-Authenticate", CHALLENGE)]),
        );
        let (sent, _) = drain(&mut sub);
        assert!(
            sent[0]
                .headers
                .get(&HeaderName::ProxyAuthorization)
                .is_some()
        );
        let again = CHALLENGE.replace("abc123", "zzz");
        sub.handle_response(
            t0,
            &answer(&sent[0], 407, &[("Proxy-Authenticate", &again)]),
        );
        let (sent, events) = drain(&mut sub);
        assert!(sent.is_empty());
        assert_eq!(
            events,
            vec![SubscriptionEvent::Terminated {
                reason: TerminationReason::AuthenticationFailed {
                    realm: "example.test".into()
                }
            }]
        );
    }

    #[test]
    fn server_error_retries_after_retry_after_and_timeout_backs_off() {
        let t0 = Instant::now();
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        sub.handle_response(t0, &answer(&sent[0], 503, &[("Retry-After", "120")]));
        let (_, events) = drain(&mut sub);
        assert_eq!(
            events,
            vec![SubscriptionEvent::Failed {
                reason: SubscriptionFailure::Rejected {
                    status: 503,
                    reason: "Service Unavailable".into()
                },
                retry_in: secs(120)
            }]
        );
        sub.handle_timeout(t0 + secs(119));
        assert!(sub.poll_output().is_none(), "retried early");
        sub.handle_timeout(t0 + secs(120));
        let (retry, events) = drain(&mut sub);
        assert_eq!(events, vec![SubscriptionEvent::Subscribing]);
        assert_ne!(
            retry[0].headers.call_id().unwrap(),
            sent[0].headers.call_id().unwrap(),
            "a retry is a new subscription"
        );
        let mut now = t0 + secs(120);
        let mut waits = Vec::new();
        for _ in 0..5 {
            now += secs(32);
            sub.handle_transaction_failure(now, TransactionFailure::Timeout);
            let (_, events) = drain(&mut sub);
            let [
                SubscriptionEvent::Failed {
                    reason: SubscriptionFailure::Timeout,
                    retry_in,
                },
            ] = events[..]
            else {
                panic!("{events:?}")
            };
            waits.push(retry_in);
            now += retry_in;
            sub.handle_timeout(now);
            drain(&mut sub);
        }
        // failures 2..6 after the 503: full waits 20, 40, 60, 60, 60 s, jittered to 50..100 %.
        for (wait, full) in waits.iter().zip([20, 40, 60, 60, 60]) {
            assert!(*wait >= secs(full) / 2 && *wait <= secs(full), "{waits:?}");
        }
    }

    #[test]
    fn timer_n_without_notify_fails() {
        let t0 = Instant::now();
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        sub.handle_response(t0, &ok(&sent[0], 600));
        drain(&mut sub);
        sub.handle_timeout(t0 + TIMER_N);
        let (_, events) = drain(&mut sub);
        assert!(
            matches!(
                events[..],
                [SubscriptionEvent::Failed {
                    reason: SubscriptionFailure::NoNotify,
                    ..
                }]
            ),
            "{events:?}"
        );
        // The abandoned dialog's NOTIFYs are strays now.
        assert_eq!(
            sub.handle_notify(t0, &notify(&sent[0], 1, "active", None))
                .status,
            481
        );
    }

    #[test]
    fn terminated_reasons() {
        let t0 = Instant::now();
        // deactivated: a new subscription at once.
        let (mut sub, first) = active(t0);
        let r = sub.handle_notify(
            t0,
            &notify(&first, 2, "terminated;reason=deactivated", None),
        );
        assert_eq!(r.status, 200);
        let (sent, events) = drain(&mut sub);
        assert_eq!(
            events,
            vec![
                SubscriptionEvent::Failed {
                    reason: SubscriptionFailure::NotifierTerminated {
                        reason: Some("deactivated".into())
                    },
                    retry_in: Duration::ZERO
                },
                SubscriptionEvent::Subscribing
            ]
        );
        assert_ne!(
            sent[0].headers.call_id().unwrap(),
            first.headers.call_id().unwrap()
        );
        assert!(sent[0].headers.to().unwrap().tag().is_none());
        // A notifier that ends the new subscription before it was ever active gets backoff.
        let r = sub.handle_notify(t0, &notify(&sent[0], 1, "terminated;reason=timeout", None));
        assert_eq!(r.status, 200);
        let (sent2, events) = drain(&mut sub);
        assert!(sent2.is_empty());
        assert!(matches!(
            events[..],
            [SubscriptionEvent::Failed { retry_in, .. }] if retry_in >= secs(5)
        ));

        // rejected / noresource: over.
        for reason in ["rejected", "noresource"] {
            let (mut sub, first) = active(t0);
            let state = format!("terminated;reason={reason}");
            sub.handle_notify(t0, &notify(&first, 2, &state, None));
            let (sent, events) = drain(&mut sub);
            assert!(sent.is_empty());
            assert_eq!(
                events,
                vec![SubscriptionEvent::Terminated {
                    reason: TerminationReason::NotifierTerminated {
                        reason: reason.into()
                    }
                }]
            );
            assert_eq!(sub.poll_timeout(), None);
        }

        // probation with retry-after: wait that long at least.
        let (mut sub, first) = active(t0);
        sub.handle_notify(
            t0,
            &notify(
                &first,
                2,
                "terminated;reason=probation;retry-after=600",
                Some(MWI),
            ),
        );
        let (_, events) = drain(&mut sub);
        assert!(matches!(events[0], SubscriptionEvent::Notification(_)));
        assert!(matches!(
            events[1],
            SubscriptionEvent::Failed { retry_in, .. } if retry_in == secs(600)
        ));
    }

    #[test]
    fn unsubscribe_waits_for_the_final_notify() {
        let t0 = Instant::now();
        let (mut sub, first) = active(t0);
        sub.unsubscribe(t0);
        let (sent, events) = drain(&mut sub);
        assert!(events.is_empty());
        let unsub = &sent[0];
        assert_eq!(unsub.headers.expires().unwrap(), Some(0));
        assert_eq!(unsub.headers.to().unwrap().tag(), Some("pbx1"));
        assert_eq!(sub.state(), SubscriptionState::Unsubscribing);
        sub.handle_response(t0, &ok(unsub, 0));
        assert!(sub.poll_output().is_none());
        let r = sub.handle_notify(
            t0,
            &notify(&first, 2, "terminated;reason=timeout", Some(MWI)),
        );
        assert_eq!(r.status, 200);
        let (sent, events) = drain(&mut sub);
        assert!(sent.is_empty());
        assert!(matches!(events[0], SubscriptionEvent::Notification(_)));
        assert_eq!(
            events[1],
            SubscriptionEvent::Terminated {
                reason: TerminationReason::Unsubscribed
            }
        );
        assert_eq!(sub.poll_timeout(), None);

        // Without a final NOTIFY, Timer N ends it.
        let (mut sub, _) = active(t0);
        sub.unsubscribe(t0);
        let (sent, _) = drain(&mut sub);
        sub.handle_response(t0, &ok(&sent[0], 0));
        sub.handle_timeout(t0 + TIMER_N);
        let (_, events) = drain(&mut sub);
        assert_eq!(
            events,
            vec![SubscriptionEvent::Terminated {
                reason: TerminationReason::Unsubscribed
            }]
        );
    }

    #[test]
    fn unsubscribe_during_the_initial_subscribe() {
        let t0 = Instant::now();
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        sub.unsubscribe(t0);
        assert!(sub.poll_output().is_none());
        sub.handle_response(t0, &ok(&sent[0], 600));
        let (sent2, events) = drain(&mut sub);
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(sent2[0].headers.expires().unwrap(), Some(0));
        assert_eq!(sub.state(), SubscriptionState::Unsubscribing);

        // Refused before any dialog: over at once.
        let mut sub = subscription();
        sub.start(t0);
        let (sent, _) = drain(&mut sub);
        sub.unsubscribe(t0);
        sub.handle_response(t0, &answer(&sent[0], 500, &[]));
        let (sent, events) = drain(&mut sub);
        assert!(sent.is_empty());
        assert_eq!(
            events,
            vec![SubscriptionEvent::Terminated {
                reason: TerminationReason::Unsubscribed
            }]
        );
    }

    #[test]
    fn refresh_failure_starts_over() {
        let t0 = Instant::now();
        let (mut sub, first) = active(t0);
        let t1 = t0 + secs(510);
        sub.handle_timeout(t1);
        let (sent, _) = drain(&mut sub);
        sub.handle_response(t1, &answer(&sent[0], 481, &[]));
        let (_, events) = drain(&mut sub);
        let [SubscriptionEvent::Failed { retry_in, .. }] = events[..] else {
            panic!("{events:?}")
        };
        assert_eq!(sub.state(), SubscriptionState::Failed);
        sub.handle_timeout(t1 + retry_in);
        let (sent, events) = drain(&mut sub);
        assert_eq!(events, vec![SubscriptionEvent::Subscribing]);
        assert_ne!(
            sent[0].headers.call_id().unwrap(),
            first.headers.call_id().unwrap()
        );
    }

    #[test]
    fn new_contact_refreshes_the_dialog() {
        let t0 = Instant::now();
        let (mut sub, first) = active(t0);
        let mut contact = SipUri::new(Some("alice"), Host::V4([198, 51, 100, 7].into()));
        contact.port = Some(40000);
        sub.set_contact(t0 + secs(60), contact);
        let (sent, events) = drain(&mut sub);
        assert!(events.is_empty(), "{events:?}");
        assert_eq!(
            sent[0].headers.get(&HeaderName::Contact),
            Some("<sip:alice@198.51.100.7:40000>")
        );
        assert_eq!(
            sent[0].headers.call_id().unwrap(),
            first.headers.call_id().unwrap()
        );
        assert_eq!(sent[0].headers.to().unwrap().tag(), Some("pbx1"));
        // While a SUBSCRIBE is in flight the new Contact waits for the next one.
        sub.set_contact(t0 + secs(61), config().contact);
        assert!(sub.poll_output().is_none());
    }

    #[test]
    fn subscription_state_header_parsing() {
        let h = SubscriptionStateHeader::parse(
            "terminated ; reason = \"Deactivated\" ;retry-after=30;x",
        )
        .unwrap();
        assert_eq!(h.state, SubState::Terminated);
        assert_eq!(h.reason.as_deref(), Some("deactivated"));
        assert_eq!(h.retry_after, Some(30));
        let h = SubscriptionStateHeader::parse("active;expires=abc").unwrap();
        assert_eq!((h.state, h.expires), (SubState::Active, None));
        let h = SubscriptionStateHeader::parse("waiting").unwrap();
        assert_eq!(h.state, SubState::Other("waiting".into()));
        for bad in [
            "",
            ";",
            "act ive",
            "active;reason=\"open",
            "active;reason=\"a\" b",
        ] {
            assert!(SubscriptionStateHeader::parse(bad).is_err(), "{bad}");
        }
    }
}
