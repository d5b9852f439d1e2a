//! The PBX machine: registrar, digest authentication, transaction-stateful proxy and RFC 8599
//! push hold, with no I/O — no sockets, no clock, no threads, no tokio. It is driven like the
//! `handset_sip` machines and `handset_phone::Phone`:
//!
//! ```text
//!  Received { flow, bytes } ─┐                            ┌─► Transmit { flow, bytes }
//!  Closed { flow }           ├─ PbxMachine::handle_input ─┼─► Disconnect { flow }
//!  Timeout ──────────────────┘   (now, input)             ├─► Push(PushNotification)
//!                                PbxMachine::poll_output  ├─► Event(PbxEvent)
//!                                                         └─► Timeout(at)  (last of a drain)
//! ```
//!
//! The driver feeds every input with the current time, then drains [`PbxMachine::poll_output`]
//! until it returns `None`, carrying out each output; the last output of a drain is the next
//! [`Output::Timeout`] (none: nothing is scheduled). [`crate::Pbx`] does this with tokio
//! sockets; tests do it in virtual time, so Timer C's three minutes take microseconds.
//!
//! Inputs are raw bytes: a UDP datagram is one message (CRLF keep-alives are dropped); TCP
//! bytes are framed here, per flow (RFC 3261 §18.3), and double-CRLF pings answered with a
//! CRLF pong (RFC 5626 §3.5.1). A stream whose framing is lost is given up with
//! [`Output::Disconnect`]. Malformed input is dropped (logged at debug level), never a panic.
//!
//! What the machine decides is described in the crate documentation (registrar, push proxy,
//! proxy, authentication); the proxy's state per request is drawn in `machine/proxy.rs`.

mod proxy;
mod register;
pub(crate) mod registrar;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handset_sip::message::{
    HeaderName, Message, Method, Request, Response, StreamFramer, StreamItem, Uri,
};
use handset_sip::transaction::{
    Output as LayerOutput, Timers, TransactionEvent, TransactionId, TransactionLayer, new_branch,
};
use handset_sip::transport::{Flow, Transport};
use rand::RngCore;

use crate::auth::{NonceStore, random_hex};
use crate::push::PushNotification;
use crate::{BindingInfo, PbxEvent, PushInfo};
use proxy::{DialogRoute, Forward};
use registrar::{ExpiryPolicy, Registrar};

/// Methods the PBX routes, advertised in `Allow`.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REGISTER, MESSAGE";

/// What the machine decides with. `Default` gives realm `handset.demo`, no users, no push
/// notifications, a 10 s push wait and authenticated calls.
#[derive(Debug, Clone)]
pub struct MachineConfig {
    /// Digest realm.
    pub realm: String,
    /// `(user, password)` pairs: who may register and call.
    pub users: Vec<(String, String)>,
    /// Hold INVITEs for users with a push binding and output [`Output::Push`] notifications
    /// (RFC 8599). Without it push bindings are remembered but INVITEs go straight to the
    /// binding. [`crate::Pbx::start`] sets it when a push endpoint is configured.
    pub push_notifications: bool,
    /// How long an INVITE is held for the callee to register after a push (default 10 s).
    pub push_wait: Duration,
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

impl Default for MachineConfig {
    fn default() -> Self {
        MachineConfig {
            realm: "handset.demo".into(),
            users: Vec::new(),
            push_notifications: false,
            push_wait: Duration::from_secs(10),
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

/// A [`MachineConfig`] the machine cannot work with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(pub String);

impl MachineConfig {
    /// Checks what would make the machine misbehave: user names that are not SIP user
    /// tokens (they are matched against Request-URIs), a user listed twice, and an expiry
    /// range with `min_expires` above `max_expires`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let token = |u: &str| {
            !u.is_empty()
                && u.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'+".contains(&b))
        };
        if !self.users.iter().all(|(u, _)| token(u)) {
            return Err(ConfigError(
                "user names must be non-empty SIP user tokens".into(),
            ));
        }
        let mut names: Vec<&str> = self.users.iter().map(|(u, _)| u.as_str()).collect();
        names.sort_unstable();
        if names
            .windows(2)
            .any(|pair| matches!(pair, [a, b] if a == b))
        {
            return Err(ConfigError("a user is listed twice".into()));
        }
        if self.min_expires > self.max_expires {
            return Err(ConfigError("min_expires is above max_expires".into()));
        }
        Ok(())
    }
}

/// What the driver feeds the machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Bytes arrived on a flow: one UDP datagram, or a chunk of a TCP stream (framed here).
    Received {
        /// Where they came from.
        flow: Flow,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// A TCP connection ended: its bindings go (RFC 5626 §5.3) and its framing state too.
    Closed {
        /// The flow.
        flow: Flow,
    },
    /// The time asked for with [`Output::Timeout`] came (any input also runs due timers).
    Timeout,
}

/// What the machine asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send bytes on a flow (a UDP datagram to `flow.remote`, or bytes on that TCP
    /// connection).
    Transmit {
        /// Where.
        flow: Flow,
        /// One whole message, or a CRLF keep-alive pong.
        bytes: Vec<u8>,
    },
    /// Close this TCP connection: its byte stream cannot be framed any more. The machine has
    /// already forgotten it (as after [`Input::Closed`]).
    Disconnect {
        /// The flow.
        flow: Flow,
    },
    /// POST this notification to the push service (the driver adds the wall-clock
    /// `sent_at`, see [`PushNotification::to_json`]).
    Push(PushNotification),
    /// Tell the application (tests, demo output).
    Event(PbxEvent),
    /// Call [`PbxMachine::handle_input`] with [`Input::Timeout`] at this time. The last
    /// output of a drain; a drain without one means nothing is scheduled.
    Timeout(Instant),
}

/// Who a transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The server side of a forward.
    Server(u64),
    /// The client side of a forward.
    Client(u64),
    /// A CANCEL the PBX sent downstream: its answer concerns nobody.
    Cancel,
}

/// The PBX machine (see the module documentation).
pub struct PbxMachine {
    config: MachineConfig,
    /// The address the PBX advertises (Via, Record-Route) and recognises as its own (Route).
    local: SocketAddr,
    rng: Box<dyn RngCore + Send>,
    layer: TransactionLayer<Flow>,
    /// The framing state of each TCP flow that sent bytes.
    framers: HashMap<Flow, StreamFramer>,
    registrar: Registrar,
    nonces: NonceStore,
    /// Proxied requests by id; ordered so that timers fire in a reproducible order.
    forwards: BTreeMap<u64, Forward>,
    next_forward: u64,
    owners: HashMap<TransactionId, Owner>,
    /// Dialogs set up through the PBX, by Call-ID.
    dialogs: HashMap<String, DialogRoute>,
    outputs: VecDeque<Output>,
    /// An input was handled since the last drain ended: the drain ends with the next timeout.
    timeout_due: bool,
}

impl std::fmt::Debug for PbxMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PbxMachine")
            .field("local", &self.local)
            .field("forwards", &self.forwards.len())
            .field("dialogs", &self.dialogs.len())
            .field("transactions", &self.layer.len())
            .finish_non_exhaustive()
    }
}

impl PbxMachine {
    /// A machine serving at `local` (the address its Via and Record-Route name). `rng` makes
    /// every random value (nonces, tags, branches), so a seeded one makes the machine
    /// deterministic.
    pub fn new(
        config: MachineConfig,
        local: SocketAddr,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Result<PbxMachine, ConfigError> {
        config.validate()?;
        let nonces = NonceStore::new(config.nonce_lifetime, rng.as_mut());
        let registrar = Registrar::new(
            &config.users,
            ExpiryPolicy {
                default: config.default_expires,
                min: config.min_expires,
                max: config.max_expires,
            },
        );
        Ok(PbxMachine {
            layer: TransactionLayer::new(config.timers),
            config,
            local,
            rng,
            framers: HashMap::new(),
            registrar,
            nonces,
            forwards: BTreeMap::new(),
            next_forward: 0,
            owners: HashMap::new(),
            dialogs: HashMap::new(),
            outputs: VecDeque::new(),
            timeout_due: true,
        })
    }

    /// Handles one input at `now`, running every timer that is due first.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.timeout_due = true;
        self.handle_timers(now);
        match input {
            Input::Received { flow, bytes } => self.handle_received(now, flow, &bytes),
            Input::Closed { flow } => self.forget_flow(flow),
            Input::Timeout => {}
        }
        self.pump(now);
    }

    /// The next piece of work for the driver; `None` when there is none. Each drain after an
    /// input ends with at most one [`Output::Timeout`].
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if self.timeout_due {
            self.timeout_due = false;
            return self.next_deadline().map(Output::Timeout);
        }
        None
    }

    /// The address the PBX advertises.
    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// The configuration.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    /// The bindings of `user` still alive at `now`, newest first (empty for unknown users).
    pub fn bindings(&self, user: &str, now: Instant) -> Vec<BindingInfo> {
        self.registrar
            .live(user, now)
            .iter()
            .map(|b| b.info(now))
            .collect()
    }

    /// The push binding of `user`, if it has one.
    pub fn push_binding(&self, user: &str) -> Option<PushInfo> {
        self.registrar.user(user).and_then(|u| u.push.clone())
    }

    /// How many proxied requests the machine still tracks (each until both its server and
    /// client transactions have terminated): for leak checks.
    pub fn forward_count(&self) -> usize {
        self.forwards.len()
    }

    /// How many SIP transactions are alive: for leak checks.
    pub fn transaction_count(&self) -> usize {
        self.layer.len()
    }

    fn handle_received(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        if flow.transport == Transport::Udp {
            // CRLF keep-alives (RFC 5626 §4.4.2 over UDP uses STUN; some send CRLFs).
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return;
            }
            match Message::parse(bytes) {
                Ok(message) => self.handle_message(now, flow, message),
                Err(error) => tracing::debug!(%flow, %error, "dropped a malformed datagram"),
            }
            return;
        }
        let framer = self.framers.entry(flow).or_default();
        framer.push(bytes);
        let mut items = Vec::new();
        while let Some(item) = framer.next_item() {
            items.push(item);
        }
        let broken = framer.is_broken();
        for item in items {
            match item {
                Ok(StreamItem::Message(message)) => self.handle_message(now, flow, message),
                Ok(StreamItem::Ping) => self.outputs.push_back(Output::Transmit {
                    flow,
                    bytes: b"\r\n".to_vec(),
                }),
                Ok(StreamItem::Pong) => {}
                Err(error) => tracing::debug!(%flow, %error, "dropped a malformed message"),
            }
        }
        if broken {
            tracing::info!(%flow, "stream framing lost: closing the connection");
            self.forget_flow(flow);
            self.outputs.push_back(Output::Disconnect { flow });
        }
    }

    fn handle_message(&mut self, now: Instant, flow: Flow, message: Message) {
        if let Err(error) = self
            .layer
            .handle_message(now, message, flow, flow.reliable())
        {
            tracing::debug!(%flow, %error, "message matched no usable transaction");
        }
    }

    /// A connection is gone: its framing state and the bindings reached over it.
    fn forget_flow(&mut self, flow: Flow) {
        self.framers.remove(&flow);
        for (user, binding) in self.registrar.flow_closed(&flow) {
            self.emit(PbxEvent::Unregistered {
                user,
                contact: binding.contact.uri.to_string(),
            });
        }
    }

    /// Runs the transaction layer's timers and the proxy's (push wait, Timer C).
    fn handle_timers(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.proxy_timers(now);
    }

    fn next_deadline(&self) -> Option<Instant> {
        let forwards = self.forwards.values().flat_map(Forward::deadlines);
        self.layer.poll_timeout().into_iter().chain(forwards).min()
    }

    /// Runs the transaction layer until it has nothing left to say.
    fn pump(&mut self, now: Instant) {
        while let Some(output) = self.layer.poll_output() {
            match output {
                LayerOutput::Transmit { to, message, .. } => {
                    self.outputs.push_back(Output::Transmit {
                        flow: to,
                        bytes: message.to_bytes(),
                    });
                }
                LayerOutput::Event(event) => self.handle_transaction_event(now, event),
            }
        }
    }

    fn emit(&mut self, event: PbxEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn next_forward_id(&mut self) -> u64 {
        self.next_forward += 1;
        self.next_forward
    }

    fn handle_transaction_event(&mut self, now: Instant, event: TransactionEvent<Flow>) {
        match event {
            TransactionEvent::NewRequest {
                id,
                request,
                from,
                cancels,
            } => match request.method {
                Method::Register => self.on_register(now, id, request, from),
                Method::Cancel => self.on_cancel(now, id, request, cancels),
                _ if request.headers.to().is_ok_and(|t| t.tag().is_some()) => {
                    self.route_in_dialog(now, id, request, from);
                }
                _ => self.route_new(now, id, request, from),
            },
            TransactionEvent::Response { id, response } => {
                if let Some(Owner::Client(forward)) = self.owners.get(&id).copied() {
                    self.on_client_response(now, forward, response);
                }
            }
            TransactionEvent::Timeout { id } | TransactionEvent::TransportError { id } => {
                let status = if matches!(event, TransactionEvent::Timeout { .. }) {
                    408
                } else {
                    503
                };
                if let Some(Owner::Client(forward)) = self.owners.get(&id).copied() {
                    self.client_failed(now, forward, status);
                }
            }
            TransactionEvent::Terminated { id } => match self.owners.remove(&id) {
                Some(Owner::Server(forward)) => self.transaction_done(forward, true),
                Some(Owner::Client(forward)) => self.transaction_done(forward, false),
                Some(Owner::Cancel) | None => {}
            },
            TransactionEvent::StrayAck { request, .. } => self.on_ack(request),
            TransactionEvent::StrayResponse { response, .. } => self.on_stray_response(response),
        }
    }

    // ----- building blocks ---------------------------------------------------------------

    fn via(&mut self, transport: Transport) -> String {
        format!(
            "SIP/2.0/{} {};branch={}",
            transport.via_name(),
            self.local,
            new_branch(&mut self.rng)
        )
    }

    fn record_route(&self, transport: Transport) -> String {
        match transport {
            Transport::Udp => format!("<sip:{};lr>", self.local),
            // The PBX serves no TLS; its TCP route serves stream peers.
            Transport::Tcp | Transport::Tls => format!("<sip:{};transport=tcp;lr>", self.local),
        }
    }

    fn is_own(&self, uri: &Uri) -> bool {
        uri.as_sip().is_some_and(|u| {
            u.host.ip() == Some(self.local.ip()) && u.port.unwrap_or(5060) == self.local.port()
        })
    }

    fn random_tag(&mut self) -> String {
        random_hex(self.rng.as_mut(), 6)
    }

    /// A response of the PBX's own; `tag` is added to To when it has none (not for 100).
    fn local_response(&self, request: &Request, status: u16, tag: Option<&str>) -> Response {
        let mut response = Response::to_request(request, status);
        if let (true, Some(tag), Ok(mut to)) = (status > 100, tag, request.headers.to())
            && to.tag().is_none()
        {
            to.set_param("tag", Some(tag.to_string()));
            response.headers.set(HeaderName::To, to.to_string());
        }
        response.headers.push(
            HeaderName::Server,
            format!("handset-pbx ({})", self.config.serial),
        );
        response
    }

    /// Answers `request` (server transaction `tx`) with a response of the PBX's own.
    fn reply(&mut self, now: Instant, tx: TransactionId, request: &Request, status: u16) {
        let tag = self.random_tag();
        let mut response = self.local_response(request, status, Some(&tag));
        if status == 405 || (status == 200 && request.method == Method::Options) {
            response.headers.push(HeaderName::Allow, ALLOW);
        }
        self.send_response(now, tx, response);
    }

    fn send_response(&mut self, now: Instant, tx: TransactionId, response: Response) {
        if let Err(error) = self.layer.send_response(now, tx, response) {
            tracing::debug!(%error, "response not sent");
        }
    }
}

/// The tag of a From or To value, if it parsed and has one.
fn tag_of(
    addr: Result<handset_sip::message::NameAddr, handset_sip::message::ParseError>,
) -> Option<String> {
    addr.ok().and_then(|a| a.tag().map(str::to_string))
}
