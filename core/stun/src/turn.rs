//! The TURN client (RFC 8656), sans-IO: one allocation on one server, its permissions and
//! channels, with time supplied by the caller.
//!
//! The runtime owns the socket (or the TCP/TLS connection, cut into frames by
//! [`StreamFramer`]) and the timer. It feeds [`TurnClient::handle_message`] with what comes
//! from the server's address only, [`TurnClient::handle_timeout`] when
//! [`TurnClient::poll_timeout`] is due, and drains [`TurnClient::poll_transmit`] and
//! [`TurnClient::poll_event`] after each call.
//!
//! Requests are STUN transactions (RFC 8489 §6.2): over UDP sent at 0, 0.5, 1.5, 3.5, 7.5,
//! 15.5 and 31.5 s (RTO 500 ms doubling, Rc = 7) and given up at 39.5 s (16 × RTO after the
//! last); over TCP/TLS sent once and given up at the same 39.5 s. A response is matched by
//! transaction id and method; the response to a request sent with MESSAGE-INTEGRITY must carry
//! a valid one under the long-term key, except the 401 and 438 errors a server cannot sign.

use std::collections::VecDeque;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};

use crate::channel_data::{CHANNELS, ChannelData, is_channel_data};
use crate::message::{
    Attribute, Class, Integrity, LongTermKey, Message, Method, StunError, StunTransactionId,
    check_integrity,
};

mod framer;

pub use framer::{FramingError, StreamFramer};

/// The first retransmission interval over UDP (RFC 8489 §6.2.1).
const RTO: Duration = Duration::from_millis(500);
/// Transmissions of a request over UDP before the last wait (RFC 8489 §6.2.1).
const RC: u32 = 7;
/// How long a transaction waits for its response: over UDP the sum of the waits 0.5 + 1 + 2 +
/// 4 + 8 + 16 s and the last 16 × RTO = 8 s; over TCP/TLS the same (RFC 8489 §6.2.2).
const TRANSACTION_TIMEOUT: Duration = Duration::from_millis(39_500);
/// The allocation lifetime when a success names none (RFC 8656 §3.2).
const DEFAULT_LIFETIME: u32 = 600;
/// The longest lifetime taken at its word, in seconds: one day.
const MAX_LIFETIME: u64 = 24 * 3600;
/// A permission lasts 300 s (RFC 8656 §9); refreshed after 4 minutes.
const PERMISSION_REFRESH: Duration = Duration::from_secs(240);
/// A channel binding lasts 10 minutes (RFC 8656 §12); refreshed after 8.
const CHANNEL_REFRESH: Duration = Duration::from_secs(480);
/// REQUESTED-TRANSPORT: the relay speaks UDP (IP protocol 17).
const PROTOCOL_UDP: u8 = 17;
/// Peers with a permission at once.
const MAX_PERMISSIONS: usize = 64;
/// Channels at once.
const MAX_CHANNELS: usize = 64;
/// Control messages waiting for the runtime to send them.
const MAX_TRANSMITS: usize = 256;
/// Events waiting for the runtime.
const MAX_EVENTS: usize = 256;

/// How the client reaches the TURN server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TurnTransport {
    /// Datagrams; requests are retransmitted.
    Udp,
    /// A TCP connection; ChannelData is padded to four bytes.
    Tcp,
    /// A TLS connection; ChannelData is padded to four bytes.
    Tls,
}

impl TurnTransport {
    /// Whether the transport delivers reliably (no retransmissions; padded ChannelData).
    pub fn is_reliable(self) -> bool {
        !matches!(self, TurnTransport::Udp)
    }
}

/// A TURN server and the long-term credential to use there.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnServer {
    /// Where the server listens.
    pub address: SocketAddr,
    /// How to reach it.
    pub transport: TurnTransport,
    /// The long-term credential's username.
    pub username: String,
    /// The long-term credential's password; never shown by Debug.
    pub password: String,
}

impl fmt::Debug for TurnServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnServer")
            .field("address", &self.address)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Why the allocation failed (or a request in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TurnError {
    /// The server refused the credentials (a 401 to a request sent with them).
    #[error("the TURN server refused the username or password")]
    Unauthorized,
    /// The server answered with an error.
    #[error("the TURN server refused the request: {code} {reason}")]
    Refused {
        /// The ERROR-CODE, e.g. 486 Allocation Quota Reached.
        code: u16,
        /// The server's reason phrase.
        reason: String,
    },
    /// No answer within 39.5 s.
    #[error("the TURN server did not answer")]
    Timeout,
    /// The server's answer lacks what it must carry, or a request cannot be written.
    #[error("unusable TURN exchange: {0}")]
    Malformed(String),
    /// The server no longer knows the allocation (437 Allocation Mismatch, or a zero
    /// lifetime).
    #[error("the TURN server no longer has the allocation")]
    AllocationLost,
}

/// What happened, for the owner of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TurnEvent {
    /// The allocation exists: peers reach us at `relayed`.
    Allocated {
        /// The relayed transport address (XOR-RELAYED-ADDRESS).
        relayed: SocketAddr,
        /// Our address as the server saw it (XOR-MAPPED-ADDRESS), when it said.
        mapped: Option<SocketAddr>,
    },
    /// The allocation failed or was lost; the client is done.
    Failed(TurnError),
    /// A permission for this peer IP could not be installed or refreshed.
    PermissionFailed(IpAddr),
}

/// What a message from the server was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TurnReceived<'a> {
    /// Data relayed from a peer (a Data indication or ChannelData).
    Data {
        /// The peer that sent it.
        peer: SocketAddr,
        /// What it sent, borrowed from the message.
        data: &'a [u8],
    },
    /// A response or control message, consumed.
    Handled,
    /// Not ours: an unknown transaction, wrong integrity, a peer without permission, garbage.
    Ignored,
}

/// The client's allocation state.
///
/// ```text
///   new ──> Allocating ── Allocate success ──> Allocated ── close ──> Closed
///            │ │  401 / retry with the credential (once)   │
///            │ │  438 / retry with the new nonce (once)    │ Refresh at 80 % of LIFETIME;
///            │ │                                           │ a Refresh refused (437: lost)
///            │ └─ close ──> Closed                         │ or unanswered
///            │ refused, unanswered, malformed               v
///            └────────────────────────────────────────> Failed
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The Allocate request is in flight.
    Allocating,
    /// The server granted the allocation.
    Allocated {
        relayed: SocketAddr,
        mapped: Option<SocketAddr>,
        /// When to send the next Refresh; `None` while one is in flight.
        refresh_at: Option<Instant>,
    },
    /// Given up: an event said why.
    Failed,
    /// Deallocated by the owner.
    Closed,
}

/// What a request is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    Allocate,
    Refresh,
    /// Refresh with LIFETIME 0, sent once by close.
    Deallocate,
    CreatePermission(IpAddr),
    ChannelBind {
        channel: u16,
        peer: SocketAddr,
    },
}

impl Request {
    fn method(self) -> Method {
        match self {
            Request::Allocate => Method::ALLOCATE,
            Request::Refresh | Request::Deallocate => Method::REFRESH,
            Request::CreatePermission(_) => Method::CREATE_PERMISSION,
            Request::ChannelBind { .. } => Method::CHANNEL_BIND,
        }
    }
}

/// A request waiting for its response.
#[derive(Debug)]
struct Transaction {
    id: StunTransactionId,
    request: Request,
    bytes: Vec<u8>,
    /// Sent with MESSAGE-INTEGRITY: the response must carry a valid one.
    authenticated: bool,
    /// This request is already the retry after a 438 Stale Nonce.
    retried_stale_nonce: bool,
    transmissions: u32,
    /// The next retransmission over UDP; `None` over TCP/TLS and after the last.
    next_retransmit: Option<Instant>,
    /// The current retransmission interval.
    rto: Duration,
    /// When the transaction fails with [`TurnError::Timeout`].
    deadline: Instant,
}

/// The realm and nonce the server gave, and the key they make.
#[derive(Debug)]
struct Credential {
    realm: String,
    nonce: String,
    key: LongTermKey,
}

/// A peer IP we want a permission for.
#[derive(Debug)]
struct Permission {
    ip: IpAddr,
    /// The server confirmed it.
    installed: bool,
    /// When to send the next CreatePermission; `None` while one is in flight.
    due: Option<Instant>,
}

/// A channel we want bound to a peer.
#[derive(Debug)]
struct Channel {
    number: u16,
    peer: SocketAddr,
    /// The server confirmed it.
    bound: bool,
    /// When to send the next ChannelBind; `None` while one is in flight.
    due: Option<Instant>,
}

/// A TURN allocation on one server: allocates, keeps the allocation, its permissions and
/// channels refreshed, wraps data for peers and unwraps data from them.
pub struct TurnClient {
    server: TurnServer,
    /// Transaction ids; seeded by the caller so tests are repeatable.
    rng: StdRng,
    state: State,
    credential: Option<Credential>,
    transactions: Vec<Transaction>,
    permissions: Vec<Permission>,
    channels: Vec<Channel>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<TurnEvent>,
    /// The deallocation sent by close, whose answer is recognised but changes nothing.
    closing: Option<StunTransactionId>,
}

impl fmt::Debug for TurnClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnClient")
            .field("server", &self.server)
            .field("state", &self.state)
            .field("transactions", &self.transactions.len())
            .field("permissions", &self.permissions)
            .field("channels", &self.channels)
            .finish_non_exhaustive()
    }
}

impl TurnClient {
    /// Starts allocating (queues an Allocate request: REQUESTED-TRANSPORT UDP, first
    /// unauthenticated, then on 401 with REALM/NONCE authenticated with the long-term
    /// credential).
    pub fn new(server: TurnServer, now: Instant, rng: &mut dyn RngCore) -> Self {
        let mut seed = [0u8; 32];
        rng.fill_bytes(&mut seed);
        let mut client = TurnClient {
            server,
            rng: StdRng::from_seed(seed),
            state: State::Allocating,
            credential: None,
            transactions: Vec::new(),
            permissions: Vec::new(),
            channels: Vec::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            closing: None,
        };
        client.start(now, Request::Allocate, false);
        client
    }

    /// The server this client allocates on.
    pub fn server(&self) -> &TurnServer {
        &self.server
    }

    /// The relayed transport address, once allocated.
    pub fn relayed_address(&self) -> Option<SocketAddr> {
        match self.state {
            State::Allocated { relayed, .. } => Some(relayed),
            _ => None,
        }
    }

    /// Our address as the server saw it (the XOR-MAPPED-ADDRESS of the Allocate success).
    pub fn mapped_address(&self) -> Option<SocketAddr> {
        match self.state {
            State::Allocated { mapped, .. } => mapped,
            _ => None,
        }
    }

    /// Whether the allocation failed or was lost (a [`TurnEvent::Failed`] said why).
    pub fn is_failed(&self) -> bool {
        self.state == State::Failed
    }

    /// One whole message from the server: a UDP datagram, or one frame split off a TCP/TLS
    /// stream by [`StreamFramer`]. The caller passes only what comes from the server's
    /// address.
    pub fn handle_message<'a>(&mut self, now: Instant, bytes: &'a [u8]) -> TurnReceived<'a> {
        if is_channel_data(bytes) {
            return self.handle_channel_data(bytes);
        }
        let Ok(message) = Message::decode(bytes) else {
            return TurnReceived::Ignored;
        };
        match message.class {
            Class::Indication if message.method == Method::DATA => {
                self.handle_data_indication(&message)
            }
            Class::SuccessResponse | Class::ErrorResponse => {
                self.handle_response(now, &message, bytes)
            }
            Class::Request | Class::Indication => TurnReceived::Ignored,
        }
    }

    /// Installs (and keeps refreshing, every 4 minutes, RFC 8656 permission lifetime 300 s) a
    /// permission for a peer IP. Idempotent. Asked before the allocation exists, it is
    /// installed right after.
    pub fn permit(&mut self, now: Instant, peer: IpAddr) {
        if !self.is_live() || self.permissions.iter().any(|p| p.ip == peer) {
            return;
        }
        if self.permissions.len() == MAX_PERMISSIONS {
            push_bounded(
                &mut self.events,
                TurnEvent::PermissionFailed(peer),
                MAX_EVENTS,
            );
            return;
        }
        self.permissions.push(Permission {
            ip: peer,
            installed: false,
            due: Some(now),
        });
        self.drive(now);
    }

    /// Binds a channel to the peer (ChannelBind, refreshed before its 10 min lifetime); once
    /// bound, send() uses ChannelData. Also asks for a permission for the peer's IP. A
    /// refused binding leaves the peer on Send and Data indications.
    pub fn bind_channel(&mut self, now: Instant, peer: SocketAddr) {
        if !self.is_live() || self.channels.iter().any(|c| c.peer == peer) {
            return;
        }
        self.permit(now, peer.ip());
        if !self.permissions.iter().any(|p| p.ip == peer.ip())
            || self.channels.len() == MAX_CHANNELS
        {
            return;
        }
        let Some(number) = CHANNELS
            .clone()
            .find(|n| self.channels.iter().all(|c| c.number != *n))
        else {
            return;
        };
        self.channels.push(Channel {
            number,
            peer,
            bound: false,
            due: Some(now),
        });
        self.drive(now);
    }

    /// The bytes to send to the server to relay `data` to `peer` (Send indication, or
    /// ChannelData once the channel is bound; padded for TCP/TLS); None while not allocated
    /// or without a permission for peer's IP, or when `data` is too long for one message.
    pub fn send(&mut self, peer: SocketAddr, data: &[u8]) -> Option<Vec<u8>> {
        if !matches!(self.state, State::Allocated { .. }) || !self.is_permitted(peer.ip()) {
            return None;
        }
        if let Some(channel) = self.channels.iter().find(|c| c.peer == peer && c.bound) {
            let frame = ChannelData {
                channel: channel.number,
                data,
            };
            return frame.encode(self.server.transport.is_reliable()).ok();
        }
        let id = StunTransactionId::random(&mut self.rng);
        Message::new(Class::Indication, Method::SEND, id)
            .with(Attribute::XorPeerAddress(peer))
            .with(Attribute::Data(data))
            .encode(None)
            .ok()
    }

    /// Control messages to the server (requests and their retransmissions), in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<TurnEvent> {
        self.events.pop_front()
    }

    /// When [`TurnClient::handle_timeout`] is due next; `None` once failed or closed.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let transactions = self.transactions.iter().map(|t| {
            t.next_retransmit
                .map_or(t.deadline, |at| at.min(t.deadline))
        });
        let State::Allocated { refresh_at, .. } = self.state else {
            return transactions.min();
        };
        let permissions = self.permissions.iter().filter_map(|p| p.due);
        let channels = self.channels.iter().filter_map(|c| c.due);
        transactions
            .chain(refresh_at)
            .chain(permissions)
            .chain(channels)
            .min()
    }

    /// Retransmits, gives up on unanswered requests and sends the refreshes that are due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if !self.is_live() {
            return;
        }
        let mut expired = Vec::new();
        for transaction in &mut self.transactions {
            if now >= transaction.deadline {
                expired.push(transaction.id);
                continue;
            }
            if transaction.next_retransmit.is_some_and(|at| now >= at) {
                push_bounded(
                    &mut self.transmits,
                    transaction.bytes.clone(),
                    MAX_TRANSMITS,
                );
                transaction.transmissions += 1;
                transaction.rto *= 2;
                transaction.next_retransmit =
                    (transaction.transmissions < RC).then(|| now + transaction.rto);
            }
        }
        for id in expired {
            let Some(transaction) = self.take_transaction(id) else {
                continue;
            };
            self.request_failed(transaction.request, TurnError::Timeout);
            if !self.is_live() {
                return;
            }
        }
        self.drive(now);
    }

    /// Deallocates (Refresh with LIFETIME 0), best effort: one transmission.
    pub fn close(&mut self, _now: Instant) {
        if let State::Allocated { .. } = self.state {
            let id = StunTransactionId::random(&mut self.rng);
            if let Ok(bytes) = self.encode_request(id, Request::Deallocate) {
                push_bounded(&mut self.transmits, bytes, MAX_TRANSMITS);
                self.closing = Some(id);
            }
        }
        if self.is_live() {
            self.state = State::Closed;
        }
        self.forget_requests();
    }

    fn is_live(&self) -> bool {
        matches!(self.state, State::Allocating | State::Allocated { .. })
    }

    /// Whether the server relays for this peer IP: a permission it confirmed.
    fn is_permitted(&self, ip: IpAddr) -> bool {
        self.permissions.iter().any(|p| p.ip == ip && p.installed)
    }

    fn handle_channel_data<'a>(&self, bytes: &'a [u8]) -> TurnReceived<'a> {
        let Ok(frame) = ChannelData::decode(bytes) else {
            return TurnReceived::Ignored;
        };
        let channel = self
            .channels
            .iter()
            .find(|c| c.number == frame.channel && c.bound);
        match channel {
            Some(channel) if self.is_permitted(channel.peer.ip()) => TurnReceived::Data {
                peer: channel.peer,
                data: frame.data,
            },
            _ => TurnReceived::Ignored,
        }
    }

    fn handle_data_indication<'a>(&self, message: &Message<'a>) -> TurnReceived<'a> {
        if !matches!(self.state, State::Allocated { .. }) {
            return TurnReceived::Ignored;
        }
        match (message.xor_peer_address(), message.data()) {
            (Some(peer), Some(data)) if self.is_permitted(peer.ip()) => {
                TurnReceived::Data { peer, data }
            }
            _ => TurnReceived::Ignored,
        }
    }

    fn handle_response<'a>(
        &mut self,
        now: Instant,
        message: &Message<'_>,
        bytes: &[u8],
    ) -> TurnReceived<'a> {
        if self.closing == Some(message.transaction) {
            self.closing = None;
            return TurnReceived::Handled;
        }
        let Some(transaction) = self
            .transactions
            .iter()
            .find(|t| t.id == message.transaction)
        else {
            return TurnReceived::Ignored;
        };
        if message.method != transaction.request.method() {
            return TurnReceived::Ignored;
        }
        if transaction.authenticated && !self.is_authentic(message, bytes) {
            return TurnReceived::Ignored;
        }
        let Some(transaction) = self.take_transaction(message.transaction) else {
            return TurnReceived::Ignored;
        };
        if message.class == Class::SuccessResponse {
            self.handle_success(now, transaction.request, message);
        } else {
            self.handle_error(now, &transaction, message);
        }
        TurnReceived::Handled
    }

    /// Whether a response to an authenticated request may be believed: a valid
    /// MESSAGE-INTEGRITY, or none on the 401 and 438 a server cannot sign (RFC 8489 §9.2.5).
    fn is_authentic(&self, message: &Message<'_>, bytes: &[u8]) -> bool {
        let Some(credential) = &self.credential else {
            return false;
        };
        match check_integrity(bytes, &credential.key) {
            Integrity::Valid => true,
            Integrity::Invalid => false,
            Integrity::Absent => {
                message.class == Class::ErrorResponse
                    && matches!(message.error_code(), Some((401 | 438, _)))
            }
        }
    }

    fn handle_success(&mut self, now: Instant, request: Request, message: &Message<'_>) {
        match request {
            Request::Allocate => {
                let Some(relayed) = message.xor_relayed_address() else {
                    let why = "the Allocate success has no XOR-RELAYED-ADDRESS";
                    return self.fail(TurnError::Malformed(why.into()));
                };
                let lifetime = message.lifetime().unwrap_or(DEFAULT_LIFETIME);
                if lifetime == 0 {
                    let why = "the Allocate success grants no lifetime";
                    return self.fail(TurnError::Malformed(why.into()));
                }
                let mapped = message.xor_mapped_address();
                self.state = State::Allocated {
                    relayed,
                    mapped,
                    refresh_at: Some(now + refresh_delay(lifetime)),
                };
                let allocated = TurnEvent::Allocated { relayed, mapped };
                push_bounded(&mut self.events, allocated, MAX_EVENTS);
                self.drive(now);
            }
            Request::Refresh | Request::Deallocate => {
                let lifetime = message.lifetime().unwrap_or(DEFAULT_LIFETIME);
                if lifetime == 0 {
                    return self.fail(TurnError::AllocationLost);
                }
                if let State::Allocated { refresh_at, .. } = &mut self.state {
                    *refresh_at = Some(now + refresh_delay(lifetime));
                }
            }
            Request::CreatePermission(ip) => {
                if let Some(permission) = self.permissions.iter_mut().find(|p| p.ip == ip) {
                    permission.installed = true;
                    permission.due = Some(now + PERMISSION_REFRESH);
                }
            }
            Request::ChannelBind { channel, peer } => {
                let bound = self
                    .channels
                    .iter_mut()
                    .find(|c| c.number == channel && c.peer == peer);
                if let Some(bound) = bound {
                    bound.bound = true;
                    bound.due = Some(now + CHANNEL_REFRESH);
                }
                // The binding installed a permission for the peer's IP too (RFC 8656 §12).
                let ip = peer.ip();
                if let Some(permission) = self.permissions.iter_mut().find(|p| p.ip == ip) {
                    permission.installed = true;
                }
            }
        }
    }

    fn handle_error(&mut self, now: Instant, transaction: &Transaction, message: &Message<'_>) {
        let request = transaction.request;
        let Some((code, reason)) = message.error_code() else {
            let why = format!("a {:?} error response has no ERROR-CODE", request.method());
            return self.request_failed(request, TurnError::Malformed(why));
        };
        match code {
            401 if !transaction.authenticated => {
                let (Some(realm), Some(nonce)) = (message.realm(), message.nonce()) else {
                    let why = "a 401 without REALM and NONCE";
                    return self.request_failed(request, TurnError::Malformed(why.into()));
                };
                self.learn_credential(realm, nonce);
                self.start(now, request, transaction.retried_stale_nonce);
            }
            401 => self.request_failed(request, TurnError::Unauthorized),
            438 => {
                // The new nonce serves the next requests even when this one is not retried.
                let known_realm = self.credential.as_ref().map(|c| c.realm.clone());
                let realm = message.realm().map(str::to_owned).or(known_realm);
                let (Some(realm), Some(nonce)) = (realm, message.nonce()) else {
                    let why = "a 438 without NONCE";
                    return self.request_failed(request, TurnError::Malformed(why.into()));
                };
                self.learn_credential(&realm, nonce);
                if transaction.retried_stale_nonce {
                    let reason = reason.to_owned();
                    self.request_failed(request, TurnError::Refused { code, reason });
                } else {
                    self.start(now, request, true);
                }
            }
            437 => self.fail(TurnError::AllocationLost),
            _ => {
                let reason = reason.to_owned();
                self.request_failed(request, TurnError::Refused { code, reason });
            }
        }
    }

    fn learn_credential(&mut self, realm: &str, nonce: &str) {
        self.credential = Some(Credential {
            realm: realm.to_owned(),
            nonce: nonce.to_owned(),
            key: LongTermKey::new(&self.server.username, realm, &self.server.password),
        });
    }

    /// What a failed request means: the allocation's own requests fail the client, a
    /// permission's is reported, a channel's leaves the peer on indications.
    fn request_failed(&mut self, request: Request, error: TurnError) {
        match request {
            Request::Allocate | Request::Refresh | Request::Deallocate => self.fail(error),
            Request::CreatePermission(ip) => {
                self.permissions.retain(|p| p.ip != ip);
                push_bounded(
                    &mut self.events,
                    TurnEvent::PermissionFailed(ip),
                    MAX_EVENTS,
                );
            }
            Request::ChannelBind { channel, .. } => {
                self.channels.retain(|c| c.number != channel);
            }
        }
    }

    fn fail(&mut self, error: TurnError) {
        self.state = State::Failed;
        self.forget_requests();
        push_bounded(&mut self.events, TurnEvent::Failed(error), MAX_EVENTS);
    }

    fn forget_requests(&mut self) {
        self.transactions.clear();
        self.permissions.clear();
        self.channels.clear();
    }

    fn take_transaction(&mut self, id: StunTransactionId) -> Option<Transaction> {
        let index = self.transactions.iter().position(|t| t.id == id)?;
        Some(self.transactions.remove(index))
    }

    /// Sends what is due once allocated: the allocation's Refresh, then CreatePermission and
    /// ChannelBind requests.
    fn drive(&mut self, now: Instant) {
        let State::Allocated { refresh_at, .. } = &mut self.state else {
            return;
        };
        if refresh_at.is_some_and(|at| now >= at) {
            *refresh_at = None;
            self.start(now, Request::Refresh, false);
        }
        let mut due = Vec::new();
        for permission in &mut self.permissions {
            if permission.due.is_some_and(|at| now >= at) {
                permission.due = None;
                due.push(Request::CreatePermission(permission.ip));
            }
        }
        for channel in &mut self.channels {
            if channel.due.is_some_and(|at| now >= at) {
                channel.due = None;
                due.push(Request::ChannelBind {
                    channel: channel.number,
                    peer: channel.peer,
                });
            }
        }
        for request in due {
            if !self.is_live() {
                return;
            }
            self.start(now, request, false);
        }
    }

    /// Sends a new request and waits for its response.
    fn start(&mut self, now: Instant, request: Request, retried_stale_nonce: bool) {
        let id = StunTransactionId::random(&mut self.rng);
        let bytes = match self.encode_request(id, request) {
            Ok(bytes) => bytes,
            Err(error) => {
                let why = format!("cannot write the {:?} request: {error}", request.method());
                return self.fail(TurnError::Malformed(why));
            }
        };
        push_bounded(&mut self.transmits, bytes.clone(), MAX_TRANSMITS);
        let retransmits = !self.server.transport.is_reliable();
        self.transactions.push(Transaction {
            id,
            request,
            bytes,
            authenticated: self.credential.is_some(),
            retried_stale_nonce,
            transmissions: 1,
            next_retransmit: retransmits.then(|| now + RTO),
            rto: RTO,
            deadline: now + TRANSACTION_TIMEOUT,
        });
    }

    /// The request's bytes, with the long-term credential once the server asked for it.
    fn encode_request(
        &self,
        id: StunTransactionId,
        request: Request,
    ) -> Result<Vec<u8>, StunError> {
        let mut message = Message::new(Class::Request, request.method(), id);
        match request {
            Request::Allocate => {
                message = message.with(Attribute::RequestedTransport(PROTOCOL_UDP));
            }
            Request::Refresh => {}
            Request::Deallocate => message = message.with(Attribute::Lifetime(0)),
            Request::CreatePermission(ip) => {
                message = message.with(Attribute::XorPeerAddress(SocketAddr::new(ip, 0)));
            }
            Request::ChannelBind { channel, peer } => {
                message = message
                    .with(Attribute::ChannelNumber(channel))
                    .with(Attribute::XorPeerAddress(peer));
            }
        }
        let Some(credential) = &self.credential else {
            return message.encode(None);
        };
        message
            .with(Attribute::Username(&self.server.username))
            .with(Attribute::Realm(&credential.realm))
            .with(Attribute::Nonce(&credential.nonce))
            .encode(Some(&credential.key))
    }
}

/// When to refresh an allocation granted for `lifetime` seconds: at 80 % of it, and at least
/// daily (a LIFETIME of decades would overflow `Instant` arithmetic on some platforms).
fn refresh_delay(lifetime: u32) -> Duration {
    Duration::from_secs(u64::from(lifetime).min(MAX_LIFETIME)) * 4 / 5
}

/// Queues `item` unless `limit` items already wait (the newest is dropped: a retransmission
/// or the next refresh will come).
fn push_bounded<T>(queue: &mut VecDeque<T>, item: T, limit: usize) {
    if queue.len() < limit {
        queue.push_back(item);
    }
}

#[cfg(test)]
mod tests;
