//! SIP transactions (RFC 3261 §17, with the RFC 6026 changes for 2xx to INVITE).
//!
//! Four sans-IO state machines, one per file and named after the RFC:
//!
//! | file    | machine                     | RFC                     |
//! |---------|-----------------------------|-------------------------|
//! | ict.rs  | [`ClientInvite`] (ICT)      | 3261 §17.1.1, 6026 §8.4 |
//! | nict.rs | [`ClientNonInvite`] (NICT)  | 3261 §17.1.2            |
//! | ist.rs  | [`ServerInvite`] (IST)      | 3261 §17.2.1, 6026 §8.7 |
//! | nist.rs | [`ServerNonInvite`] (NIST)  | 3261 §17.2.2            |
//!
//! States follow the RFC names: [`IctState`], [`NictState`], [`IstState`], [`NistState`], each
//! with its transition diagram.
//!
//! Each machine takes its inputs through `handle_input(now, input)` (inputs are listed by source:
//! transport, TU, clock), fires due timers in `handle_timeout(now)`, says when it next needs
//! the clock in `poll_timeout()` and hands out work as [`Action`]s from `poll_action()`.
//!
//! [`TransactionLayer`] owns all transactions of one user agent: it matches incoming messages to
//! transactions (§17.1.3, §17.2.3, with the RFC 2543 fallback), creates server transactions for
//! new requests, and turns the machines' actions into [`Output`]s addressed to the runtime's
//! remote address type `A`. Nothing here reads the clock: every entry point takes `now`.
//!
//! Timers (all derived from [`Timers`]):
//!
//! | timer | value (unreliable / reliable) | meaning                                        |
//! |-------|-------------------------------|------------------------------------------------|
//! | A     | T1, doubling / —              | ICT INVITE retransmission                      |
//! | B     | 64·T1                         | ICT timeout in Calling                         |
//! | D     | max(32 s, 64·T1) / 0          | ICT wait for final-response retransmissions    |
//! | E     | T1, doubling to T2 / —        | NICT request retransmission                    |
//! | F     | 64·T1                         | NICT timeout                                   |
//! | G     | T1, doubling to T2 / —        | IST final (non-2xx) response retransmission    |
//! | H     | 64·T1                         | IST wait for ACK                               |
//! | I     | T4 / 0                        | IST wait for ACK retransmissions               |
//! | J     | 64·T1 / 0                     | NIST wait for request retransmissions          |
//! | K     | T4 / 0                        | NICT wait for response retransmissions         |
//! | L     | 64·T1                         | IST in Accepted (RFC 6026)                     |
//! | M     | 64·T1                         | ICT in Accepted (RFC 6026)                     |

mod ict;
mod ist;
mod nict;
mod nist;

#[cfg(test)]
mod testutil;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

pub use ict::{ClientInvite, IctInput, IctState, IctTimer};
pub use ist::{IstInput, IstState, IstTimer, ServerInvite, TRYING_DELAY};
pub use nict::{ClientNonInvite, NictInput, NictState, NictTimer};
pub use nist::{NistInput, NistState, NistTimer, ServerNonInvite};

use crate::message::{HeaderName, Host, Message, Method, ParseError, Request, Response};

/// The RFC 3261 §8.1.1.7 magic cookie every RFC 3261 branch starts with.
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// The shortest retransmission interval used even when `T1` is configured as zero, so that a
/// bad configuration cannot make a retransmission timer fire forever at the same instant.
const MIN_RETRANSMIT_INTERVAL: Duration = Duration::from_millis(1);

/// RFC 3261 timer values (§17, Table 4). `Default` gives the RFC's recommended values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Maximum retransmission interval for non-INVITE requests and INVITE responses (default 4 s).
    pub t2: Duration,
    /// Maximum time a message remains in the network (default 5 s).
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    fn t1_times_64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }

    /// Timer A: the first INVITE retransmission interval (T1); it doubles after each firing.
    pub fn a(&self) -> Duration {
        self.t1
    }

    /// Timer B: INVITE transaction timeout (64·T1).
    pub fn b(&self) -> Duration {
        self.t1_times_64()
    }

    /// Timer D: how long a completed ICT absorbs final-response retransmissions: at least 32 s
    /// (and no less than the server's 64·T1 of Timer G retransmissions) for unreliable
    /// transports, zero for reliable ones.
    pub fn d(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1_times_64().max(Duration::from_secs(32))
        }
    }

    /// Timer E: the first non-INVITE retransmission interval (T1); it doubles up to T2.
    pub fn e(&self) -> Duration {
        self.t1
    }

    /// Timer F: non-INVITE transaction timeout (64·T1).
    pub fn f(&self) -> Duration {
        self.t1_times_64()
    }

    /// Timer G: the first INVITE final-response retransmission interval (T1); doubles up to T2.
    pub fn g(&self) -> Duration {
        self.t1
    }

    /// Timer H: how long an IST waits for the ACK (64·T1).
    pub fn h(&self) -> Duration {
        self.t1_times_64()
    }

    /// Timer I: how long a confirmed IST absorbs ACK retransmissions (T4; zero if reliable).
    pub fn i(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer J: how long a completed NIST absorbs request retransmissions (64·T1; zero if
    /// reliable).
    pub fn j(&self, reliable: bool) -> Duration {
        if reliable {
            Duration::ZERO
        } else {
            self.t1_times_64()
        }
    }

    /// Timer K: how long a completed NICT absorbs response retransmissions (T4; zero if
    /// reliable).
    pub fn k(&self, reliable: bool) -> Duration {
        if reliable { Duration::ZERO } else { self.t4 }
    }

    /// Timer L (RFC 6026): how long an IST stays in Accepted (64·T1).
    pub fn l(&self) -> Duration {
        self.t1_times_64()
    }

    /// Timer M (RFC 6026): how long an ICT stays in Accepted (64·T1).
    pub fn m(&self) -> Duration {
        self.t1_times_64()
    }
}

/// A one-shot timer: stopped, or armed with a deadline.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Deadline(Option<Instant>);

impl Deadline {
    /// Arms the timer to fire `after` from `now`. A deadline beyond what `Instant` can hold
    /// means the timer never fires.
    pub(crate) fn start(&mut self, now: Instant, after: Duration) {
        self.0 = now.checked_add(after);
    }

    /// Stops the timer.
    pub(crate) fn stop(&mut self) {
        self.0 = None;
    }

    /// The deadline, if armed.
    pub(crate) fn at(&self) -> Option<Instant> {
        self.0
    }

    /// Whether the timer is armed and its deadline has passed.
    pub(crate) fn is_due(&self, now: Instant) -> bool {
        self.0.is_some_and(|at| at <= now)
    }
}

/// Doubles a retransmission interval, capped at `cap` (pass `Duration::MAX` for no cap).
pub(crate) fn double(interval: Duration, cap: Duration) -> Duration {
    interval
        .saturating_mul(2)
        .min(cap)
        .max(MIN_RETRANSMIT_INTERVAL)
}

/// The first retransmission interval, never zero.
pub(crate) fn first_interval(t1: Duration) -> Duration {
    t1.max(MIN_RETRANSMIT_INTERVAL)
}

/// The earliest of a set of deadlines.
pub(crate) fn earliest(deadlines: &[Deadline]) -> Option<Instant> {
    deadlines.iter().filter_map(Deadline::at).min()
}

/// What a transaction state machine asks its owner to do. The [`TransactionLayer`] turns these
/// into [`Output`]s; a runtime driving a machine directly executes them itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Hand this message to the transport for the transaction's peer.
    Transmit(Message),
    /// Pass the request that created this server transaction up to the TU.
    PassRequest(Request),
    /// Pass an ACK up to the TU (an ACK matching an INVITE server transaction in Accepted,
    /// RFC 6026 §8.7).
    PassAck(Request),
    /// Pass a response up to the TU.
    PassResponse(Response),
    /// Timer B, F or H fired: tell the TU the transaction timed out.
    Timeout,
    /// Tell the TU the transport failed to deliver a message of this transaction.
    TransportError,
    /// The transaction reached Terminated; its owner should forget it.
    Terminated,
}

/// Why a transaction operation was refused. Bad input is reported here, never by panicking.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    /// A header the transaction layer relies on (Via, CSeq, Call-ID, From, To) is missing or
    /// malformed.
    #[error("transaction layer: {0}")]
    Malformed(#[from] ParseError),
    /// The request's top Via has no branch, or one without the `z9hG4bK` magic cookie.
    #[error("the top Via has no branch starting with z9hG4bK")]
    MissingBranch,
    /// The CSeq method differs from the request's method, or the request has the wrong method
    /// for the operation (e.g. a CANCEL built from something other than an INVITE).
    #[error("wrong method for this operation")]
    WrongMethod,
    /// ACK is never sent in a client transaction: the ICT sends the ACK for non-2xx responses
    /// itself, and the TU sends the ACK for 2xx with `TransactionLayer::send_stateless`.
    #[error("ACK is not sent in a client transaction")]
    AckNotTransactional,
    /// A live client transaction already uses this branch and method.
    #[error("a transaction with this branch and method already exists")]
    DuplicateTransaction,
    /// No live transaction has this id (it may have terminated).
    #[error("no such transaction")]
    UnknownTransaction,
    /// Responses can only be sent in server transactions.
    #[error("not a server transaction")]
    NotServerTransaction,
    /// The status code is outside 100..=699.
    #[error("status code {0} outside 100..=699")]
    InvalidStatus(u16),
    /// The response's CSeq does not belong to this transaction's request.
    #[error("the response does not belong to this transaction")]
    ResponseMismatch,
    /// The transaction's state does not allow this response (e.g. a second final response).
    #[error("the transaction's state does not allow this response")]
    InvalidState,
}

/// Identifies one transaction in a [`TransactionLayer`]. Ids are never reused by a layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TransactionId(u64);

impl fmt::Display for TransactionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tx-{}", self.0)
    }
}

/// The state of a transaction, by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionState {
    /// A client INVITE transaction.
    Ict(IctState),
    /// A client non-INVITE transaction.
    Nict(NictState),
    /// A server INVITE transaction.
    Ist(IstState),
    /// A server non-INVITE transaction.
    Nist(NistState),
}

/// Something the TU (the dialog and usage layers above) must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransactionEvent<A> {
    /// A new request created server transaction `id`; answer it with
    /// [`TransactionLayer::send_response`].
    NewRequest {
        /// The new server transaction.
        id: TransactionId,
        /// The request.
        request: Request,
        /// Where it came from.
        from: A,
        /// For a CANCEL: the INVITE server transaction it cancels (RFC 3261 §9.2), if any is
        /// live. The TU answers the CANCEL (200, or 481 when `None`) and then the INVITE (487).
        cancels: Option<TransactionId>,
    },
    /// A response for client transaction `id`. For an INVITE, every 2xx (including
    /// retransmissions, RFC 6026) is passed up; the TU sends the ACK for a 2xx itself.
    Response {
        /// The client transaction.
        id: TransactionId,
        /// The response.
        response: Response,
    },
    /// Timer B, F (no final response) or H (no ACK) fired.
    Timeout {
        /// The transaction.
        id: TransactionId,
    },
    /// The transport reported a failure for this transaction.
    TransportError {
        /// The transaction.
        id: TransactionId,
    },
    /// The transaction terminated and was removed from the layer.
    Terminated {
        /// The transaction.
        id: TransactionId,
    },
    /// An ACK matching no transaction: the ACK for a 2xx (a transaction of its own per
    /// RFC 3261 §17), for the dialog layer. ACKs matching an INVITE server transaction in
    /// Accepted are passed up the same way (RFC 6026 §8.7).
    StrayAck {
        /// The ACK.
        request: Request,
        /// Where it came from.
        from: A,
    },
    /// A response matching no client transaction, e.g. a 2xx retransmission after Timer M or
    /// a 2xx from another fork, for the dialog layer.
    StrayResponse {
        /// The response.
        response: Response,
        /// Where it came from.
        from: A,
    },
}

/// Work for the runtime, drained with [`TransactionLayer::poll_output`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output<A> {
    /// Send `message` to `to` over a reliable (TCP/TLS) or unreliable (UDP) transport.
    Transmit {
        /// Destination (the runtime's address or flow type).
        to: A,
        /// Whether the transport is reliable.
        reliable: bool,
        /// The message.
        message: Message,
    },
    /// Tell the TU.
    Event(TransactionEvent<A>),
}

/// A fresh RFC 3261 branch: the magic cookie followed by 32 random hex digits.
pub fn new_branch(rng: &mut impl rand::RngCore) -> String {
    format!(
        "{MAGIC_COOKIE}{:016x}{:016x}",
        rng.next_u64(),
        rng.next_u64()
    )
}

/// Builds the CANCEL for `invite` (RFC 3261 §9.1): same Request-URI, Call-ID, From, To and CSeq
/// number, method CANCEL, a single Via equal to the INVITE's top Via (so the same branch), the
/// INVITE's Route headers and Max-Forwards. Send it with [`TransactionLayer::send_request`]
/// once a provisional response has arrived.
pub fn cancel_request(invite: &Request) -> Result<Request, TransactionError> {
    if invite.method != Method::Invite {
        return Err(TransactionError::WrongMethod);
    }
    let headers = &invite.headers;
    let cseq = headers.cseq()?;
    let call_id = headers.call_id()?;
    let via = top_via_text(headers).ok_or(TransactionError::MissingBranch)?;
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    let h = &mut cancel.headers;
    h.push(HeaderName::Via, via);
    for route in headers.get_all(&HeaderName::Route) {
        h.push(HeaderName::Route, route);
    }
    h.push(
        HeaderName::MaxForwards,
        headers.get(&HeaderName::MaxForwards).unwrap_or("70"),
    );
    copy_header(headers, h, HeaderName::From)?;
    copy_header(headers, h, HeaderName::To)?;
    h.push(HeaderName::CallId, call_id);
    h.push(HeaderName::CSeq, format!("{} CANCEL", cseq.seq));
    h.push(HeaderName::ContentLength, "0");
    Ok(cancel)
}

/// The top Via value as it was written (the first element of the first Via line).
pub(crate) fn top_via_text(headers: &crate::message::Headers) -> Option<String> {
    headers
        .values(&HeaderName::Via)
        .first()
        .map(|v| (*v).to_string())
}

/// Copies the first `name` line of `from` to `to`; the header must be present.
fn copy_header(
    from: &crate::message::Headers,
    to: &mut crate::message::Headers,
    name: HeaderName,
) -> Result<(), TransactionError> {
    let value = from.get(&name).ok_or_else(|| ParseError {
        reason: "missing",
        header: Some(name.as_str().to_string()),
    })?;
    to.push(name, value);
    Ok(())
}

/// What a transaction is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    /// §17.1.3: top Via branch and CSeq method.
    Client { branch: String, method: Method },
    /// §17.2.3: branch, sent-by and method (ACK counts as INVITE).
    Server {
        branch: String,
        host: Host,
        port: Option<u16>,
        method: Method,
    },
    /// The RFC 2543 fallback (§17.2.3), for branches without the magic cookie.
    Legacy {
        uri: String,
        to_tag: Option<String>,
        from_tag: Option<String>,
        call_id: String,
        seq: u32,
        method: Method,
        via: String,
    },
}

/// The key of the server transaction a request belongs to. ACK and CANCEL are keyed with
/// `method` so they can be looked up as the INVITE they refer to.
fn server_key(request: &Request, method: Method) -> Result<Key, TransactionError> {
    let headers = &request.headers;
    let via = headers.top_via()?;
    match via.branch() {
        Some(branch) if branch.starts_with(MAGIC_COOKIE) => Ok(Key::Server {
            branch: branch.to_string(),
            host: via.host.clone(),
            port: via.port,
            method,
        }),
        _ => Ok(Key::Legacy {
            uri: request.uri.to_string(),
            to_tag: headers.to()?.tag().map(str::to_string),
            from_tag: headers.from()?.tag().map(str::to_string),
            call_id: headers.call_id()?.to_string(),
            seq: headers.cseq()?.seq,
            method,
            via: via.to_string(),
        }),
    }
}

/// One of the four machines.
#[derive(Debug)]
enum Machine {
    Ict(Box<ClientInvite>),
    Nict(Box<ClientNonInvite>),
    Ist(Box<ServerInvite>),
    Nist(Box<ServerNonInvite>),
}

impl Machine {
    fn poll_action(&mut self) -> Option<Action> {
        match self {
            Machine::Ict(m) => m.poll_action(),
            Machine::Nict(m) => m.poll_action(),
            Machine::Ist(m) => m.poll_action(),
            Machine::Nist(m) => m.poll_action(),
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Machine::Ict(m) => m.poll_timeout(),
            Machine::Nict(m) => m.poll_timeout(),
            Machine::Ist(m) => m.poll_timeout(),
            Machine::Nist(m) => m.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        match self {
            Machine::Ict(m) => m.handle_timeout(now),
            Machine::Nict(m) => m.handle_timeout(now),
            Machine::Ist(m) => m.handle_timeout(now),
            Machine::Nist(m) => m.handle_timeout(now),
        }
    }

    fn handle_transport_error(&mut self, now: Instant) {
        match self {
            Machine::Ict(m) => m.handle_input(now, IctInput::TransportError),
            Machine::Nict(m) => m.handle_input(now, NictInput::TransportError),
            // Transport errors are never refused.
            Machine::Ist(m) => m.handle_input(now, IstInput::TransportError).unwrap_or(()),
            Machine::Nist(m) => m.handle_input(now, NistInput::TransportError).unwrap_or(()),
        }
    }

    fn state(&self) -> TransactionState {
        match self {
            Machine::Ict(m) => TransactionState::Ict(m.state()),
            Machine::Nict(m) => TransactionState::Nict(m.state()),
            Machine::Ist(m) => TransactionState::Ist(m.state()),
            Machine::Nist(m) => TransactionState::Nist(m.state()),
        }
    }

    fn request(&self) -> &Request {
        match self {
            Machine::Ict(m) => m.request(),
            Machine::Nict(m) => m.request(),
            Machine::Ist(m) => m.request(),
            Machine::Nist(m) => m.request(),
        }
    }
}

#[derive(Debug)]
struct Entry<A> {
    key: Key,
    peer: A,
    reliable: bool,
    cancels: Option<TransactionId>,
    machine: Machine,
}

/// Owns every transaction of one user agent and routes messages, responses and timers to them.
///
/// Inputs, by source:
/// - from the TU: [`send_request`](Self::send_request), [`send_response`](Self::send_response),
///   [`send_stateless`](Self::send_stateless);
/// - from the transport: [`handle_message`](Self::handle_message),
///   [`handle_transport_error`](Self::handle_transport_error);
/// - from the clock: [`handle_timeout`](Self::handle_timeout).
///
/// After any input, drain [`poll_output`](Self::poll_output) until `None`, then arm one timer
/// for [`poll_timeout`](Self::poll_timeout). Terminated transactions are removed (after their
/// [`TransactionEvent::Terminated`] event is queued).
#[derive(Debug)]
pub struct TransactionLayer<A> {
    timers: Timers,
    next_id: u64,
    entries: BTreeMap<TransactionId, Entry<A>>,
    index: HashMap<Key, TransactionId>,
    outputs: VecDeque<Output<A>>,
}

impl<A: Clone + Eq + fmt::Debug> Default for TransactionLayer<A> {
    fn default() -> Self {
        Self::new(Timers::default())
    }
}

impl<A: Clone + Eq + fmt::Debug> TransactionLayer<A> {
    /// An empty layer using `timers`.
    pub fn new(timers: Timers) -> Self {
        TransactionLayer {
            timers,
            next_id: 0,
            entries: BTreeMap::new(),
            index: HashMap::new(),
            outputs: VecDeque::new(),
        }
    }

    /// The timer configuration.
    pub fn timers(&self) -> Timers {
        self.timers
    }

    /// Starts a client transaction for `request` (ICT for INVITE, NICT otherwise) and transmits
    /// it to `to`. The request must carry a top Via whose branch starts with
    /// [`MAGIC_COOKIE`] (see [`new_branch`]) and a CSeq with the request's method.
    pub fn send_request(
        &mut self,
        now: Instant,
        request: Request,
        to: A,
        reliable: bool,
    ) -> Result<TransactionId, TransactionError> {
        if request.method == Method::Ack {
            return Err(TransactionError::AckNotTransactional);
        }
        let cseq = request.headers.cseq()?;
        if cseq.method != request.method {
            return Err(TransactionError::WrongMethod);
        }
        let via = request.headers.top_via()?;
        let branch = via
            .branch()
            .filter(|b| b.starts_with(MAGIC_COOKIE))
            .ok_or(TransactionError::MissingBranch)?;
        let key = Key::Client {
            branch: branch.to_string(),
            method: request.method.clone(),
        };
        if self.index.contains_key(&key) {
            return Err(TransactionError::DuplicateTransaction);
        }
        let machine = if request.method == Method::Invite {
            Machine::Ict(Box::new(ClientInvite::new(
                now,
                request,
                reliable,
                self.timers,
            )?))
        } else {
            Machine::Nict(Box::new(ClientNonInvite::new(
                now,
                request,
                reliable,
                self.timers,
            )))
        };
        let id = self.insert(key, to, reliable, None, machine);
        self.drain(id, None);
        Ok(id)
    }

    /// Sends the TU's `response` in server transaction `id`. The CSeq must be the request's;
    /// a response the transaction's state does not allow (e.g. a second final response) is
    /// refused with [`TransactionError::InvalidState`].
    pub fn send_response(
        &mut self,
        now: Instant,
        id: TransactionId,
        response: Response,
    ) -> Result<(), TransactionError> {
        let entry = self
            .entries
            .get_mut(&id)
            .ok_or(TransactionError::UnknownTransaction)?;
        if !(100..=699).contains(&response.status) {
            return Err(TransactionError::InvalidStatus(response.status));
        }
        let cseq = response.headers.cseq()?;
        let request_cseq = entry.machine.request().headers.cseq()?;
        if cseq != request_cseq {
            return Err(TransactionError::ResponseMismatch);
        }
        let result = match &mut entry.machine {
            Machine::Ist(m) => m.handle_input(now, IstInput::Response(response)),
            Machine::Nist(m) => m.handle_input(now, NistInput::Response(response)),
            Machine::Ict(_) | Machine::Nict(_) => Err(TransactionError::NotServerTransaction),
        };
        self.drain(id, None);
        result
    }

    /// Queues `message` for transmission outside any transaction: the ACK for a 2xx, and the
    /// TU's 2xx retransmissions after the INVITE server transaction is gone.
    pub fn send_stateless(&mut self, to: A, reliable: bool, message: Message) {
        self.outputs.push_back(Output::Transmit {
            to,
            reliable,
            message,
        });
    }

    /// Handles a message received from `from`: responses go to the matching client
    /// transaction (§17.1.3) or up as [`TransactionEvent::StrayResponse`]; requests go to the
    /// matching server transaction (§17.2.3), or create one, except an ACK matching none, which
    /// goes up as [`TransactionEvent::StrayAck`]. Errors name a missing or malformed header the
    /// matching needs; the message is then dropped.
    pub fn handle_message(
        &mut self,
        now: Instant,
        message: Message,
        from: A,
        reliable: bool,
    ) -> Result<(), TransactionError> {
        match message {
            Message::Response(response) => self.handle_response(now, response, from),
            Message::Request(request) => self.handle_request(now, request, from, reliable),
        }
    }

    fn handle_response(
        &mut self,
        now: Instant,
        response: Response,
        from: A,
    ) -> Result<(), TransactionError> {
        let via = response.headers.top_via()?;
        let cseq = response.headers.cseq()?;
        let id = via.branch().and_then(|branch| {
            self.index
                .get(&Key::Client {
                    branch: branch.to_string(),
                    method: cseq.method,
                })
                .copied()
        });
        let machine = id.and_then(|id| self.entries.get_mut(&id).map(|e| &mut e.machine));
        match (id, machine) {
            (Some(id), Some(Machine::Ict(m))) => {
                m.handle_input(now, IctInput::Response(response));
                self.drain(id, None);
            }
            (Some(id), Some(Machine::Nict(m))) => {
                m.handle_input(now, NictInput::Response(response));
                self.drain(id, None);
            }
            _ => self.event(TransactionEvent::StrayResponse { response, from }),
        }
        Ok(())
    }

    fn handle_request(
        &mut self,
        now: Instant,
        request: Request,
        from: A,
        reliable: bool,
    ) -> Result<(), TransactionError> {
        let method = match request.method {
            Method::Ack => Method::Invite,
            ref m => m.clone(),
        };
        let key = server_key(&request, method)?;
        let found = match (&request.method, &key) {
            (Method::Ack, Key::Legacy { .. }) => self.find_legacy_ack_target(&key),
            _ => self.index.get(&key).copied(),
        };
        if let Some(id) = found {
            let result = match self.entries.get_mut(&id).map(|e| &mut e.machine) {
                Some(Machine::Ist(m)) => m.handle_input(now, IstInput::Request(request)),
                Some(Machine::Nist(m)) => m.handle_input(now, NistInput::Request(request)),
                _ => Ok(()),
            };
            self.drain(id, Some(&from));
            return result;
        }
        match request.method {
            Method::Ack => {
                self.event(TransactionEvent::StrayAck { request, from });
                Ok(())
            }
            Method::Invite => {
                let machine = Machine::Ist(Box::new(ServerInvite::new(
                    now,
                    request,
                    reliable,
                    self.timers,
                )));
                let id = self.insert(key, from, reliable, None, machine);
                self.drain(id, None);
                Ok(())
            }
            _ => {
                let cancels = if request.method == Method::Cancel {
                    self.find_cancel_target(&request)?
                } else {
                    None
                };
                let machine = Machine::Nist(Box::new(ServerNonInvite::new(
                    now,
                    request,
                    reliable,
                    self.timers,
                )));
                let id = self.insert(key, from, reliable, cancels, machine);
                self.drain(id, None);
                Ok(())
            }
        }
    }

    /// The INVITE server transaction a CANCEL refers to (§9.2): same key as the INVITE.
    fn find_cancel_target(
        &self,
        cancel: &Request,
    ) -> Result<Option<TransactionId>, TransactionError> {
        let key = server_key(cancel, Method::Invite)?;
        Ok(self.index.get(&key).copied().filter(
            |id| matches!(self.entries.get(id), Some(e) if matches!(e.machine, Machine::Ist(_))),
        ))
    }

    /// RFC 2543 ACK matching (§17.2.3): everything as for the INVITE except the To tag, which
    /// must equal the To tag of the response the server transaction sent.
    fn find_legacy_ack_target(&self, key: &Key) -> Option<TransactionId> {
        let Key::Legacy {
            uri,
            to_tag,
            from_tag,
            call_id,
            seq,
            via,
            ..
        } = key
        else {
            return None;
        };
        self.entries.iter().find_map(|(id, entry)| {
            let Machine::Ist(ist) = &entry.machine else {
                return None;
            };
            let Key::Legacy {
                uri: u,
                from_tag: f,
                call_id: c,
                seq: s,
                via: v,
                ..
            } = &entry.key
            else {
                return None;
            };
            let sent_tag = ist
                .last_response()
                .and_then(|r| r.headers.to().ok())
                .and_then(|t| t.tag().map(str::to_string));
            (u == uri
                && f == from_tag
                && c == call_id
                && s == seq
                && v == via
                && &sent_tag == to_tag)
                .then_some(*id)
        })
    }

    /// Tells transaction `id` that the transport failed to send one of its messages. Unknown
    /// (e.g. already terminated) ids are ignored.
    pub fn handle_transport_error(&mut self, now: Instant, id: TransactionId) {
        if let Some(entry) = self.entries.get_mut(&id) {
            entry.machine.handle_transport_error(now);
            self.drain(id, None);
        }
    }

    /// Fires every timer due at `now`, in transaction order.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<TransactionId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.machine.poll_timeout().is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            if let Some(entry) = self.entries.get_mut(&id) {
                entry.machine.handle_timeout(now);
                self.drain(id, None);
            }
        }
    }

    /// The next piece of work for the runtime.
    pub fn poll_output(&mut self) -> Option<Output<A>> {
        self.outputs.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .filter_map(|e| e.machine.poll_timeout())
            .min()
    }

    /// The state of live transaction `id`.
    pub fn state(&self, id: TransactionId) -> Option<TransactionState> {
        self.entries.get(&id).map(|e| e.machine.state())
    }

    /// The request that created live transaction `id`.
    pub fn request(&self, id: TransactionId) -> Option<&Request> {
        self.entries.get(&id).map(|e| e.machine.request())
    }

    /// For a live CANCEL server transaction, the INVITE server transaction it cancels.
    pub fn cancelled_invite(&self, id: TransactionId) -> Option<TransactionId> {
        self.entries.get(&id).and_then(|e| e.cancels)
    }

    /// How many transactions are live.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no transaction is live.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn insert(
        &mut self,
        key: Key,
        peer: A,
        reliable: bool,
        cancels: Option<TransactionId>,
        machine: Machine,
    ) -> TransactionId {
        self.next_id += 1;
        let id = TransactionId(self.next_id);
        self.index.insert(key.clone(), id);
        self.entries.insert(
            id,
            Entry {
                key,
                peer,
                reliable,
                cancels,
                machine,
            },
        );
        id
    }

    fn event(&mut self, event: TransactionEvent<A>) {
        self.outputs.push_back(Output::Event(event));
    }

    /// Moves transaction `id`'s actions to the output queue; removes it once terminated.
    /// `source` is where the message being handled came from, if any.
    fn drain(&mut self, id: TransactionId, source: Option<&A>) {
        let Some(entry) = self.entries.get_mut(&id) else {
            return;
        };
        let mut terminated = false;
        while let Some(action) = entry.machine.poll_action() {
            let from = || source.unwrap_or(&entry.peer).clone();
            let output = match action {
                Action::Transmit(message) => Output::Transmit {
                    to: entry.peer.clone(),
                    reliable: entry.reliable,
                    message,
                },
                Action::PassRequest(request) => Output::Event(TransactionEvent::NewRequest {
                    id,
                    request,
                    from: from(),
                    cancels: entry.cancels,
                }),
                Action::PassAck(request) => Output::Event(TransactionEvent::StrayAck {
                    request,
                    from: from(),
                }),
                Action::PassResponse(response) => {
                    Output::Event(TransactionEvent::Response { id, response })
                }
                Action::Timeout => Output::Event(TransactionEvent::Timeout { id }),
                Action::TransportError => Output::Event(TransactionEvent::TransportError { id }),
                Action::Terminated => {
                    terminated = true;
                    Output::Event(TransactionEvent::Terminated { id })
                }
            };
            self.outputs.push_back(output);
        }
        if terminated
            && let Some(entry) = self.entries.remove(&id)
            && self.index.get(&entry.key) == Some(&id)
        {
            self.index.remove(&entry.key);
        }
    }
}

#[cfg(test)]
mod tests;
