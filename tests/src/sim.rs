//! A simulated network in virtual time for phone machines.
//!
//! Each [`PhoneNode`] is a `handset_phone::Phone` answered the way the runtime answers it —
//! lookups resolve to the numeric host, flows open at once, RTP sockets bind, media starts and
//! stops — with every output kept for the test to read (events, history records, media plans,
//! packets). Other nodes are scripted SIP peers ([`Script`]) or anything else implementing
//! [`Peer`] (the embedded PBX machine). Packets go through `to_bytes()`-style byte strings
//! exactly as on the wire, over links with seeded loss, latency and jitter for UDP, and
//! loss-free, in-order delivery for TCP.
//!
//! [`Sim::run_for`] jumps virtual time from one packet or timer to the next and never sleeps:
//! minutes of phone life take milliseconds. The addresses are made up (127.0.x.y) and never
//! reach a socket.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use handset_media::ice::{CandidateType, IceConfig, IcePolicy, LocalCandidate};
use handset_media::sdp::Negotiated;
use handset_phone::phone::{
    BoundMedia, CallId, CallerInfo, Command, Directory, IcePlan, Input, MediaCommand, Output,
    Phone, PhoneConfig, PhoneError, PhoneEvent, Record, Reply,
};
use handset_sip::message::Message;
use handset_sip::transport::{Flow, Target, Transport};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// How a direction of the network behaves.
#[derive(Debug, Clone, Copy)]
pub struct Link {
    /// Probability that a UDP packet is lost.
    pub loss: f64,
    /// One-way delay.
    pub latency: Duration,
    /// Extra random delay in `0..=jitter` for UDP (reorders packets).
    pub jitter: Duration,
}

impl Link {
    /// No loss, 20 ms one way, no jitter.
    pub fn clean() -> Link {
        Link {
            loss: 0.0,
            latency: Duration::from_millis(20),
            jitter: Duration::ZERO,
        }
    }

    /// `loss` probability, 20–60 ms one way.
    pub fn lossy(loss: f64) -> Link {
        Link {
            loss,
            latency: Duration::from_millis(20),
            jitter: Duration::from_millis(40),
        }
    }
}

/// A caller directory with fixed contents.
#[derive(Debug, Clone, Default)]
pub struct FixedDirectory {
    /// Number → contact name.
    pub contacts: HashMap<String, String>,
    /// Blocked numbers.
    pub blocked: HashSet<String>,
}

impl Directory for FixedDirectory {
    fn caller(&self, number: &str) -> CallerInfo {
        CallerInfo {
            contact_name: self.contacts.get(number).cloned(),
            blocked: self.blocked.contains(number),
        }
    }
}

/// A packet as it crossed the network (also the ones lost).
#[derive(Debug, Clone)]
pub struct Packet {
    /// When it was sent.
    pub sent: Instant,
    /// Sender's address.
    pub from: SocketAddr,
    /// Destination.
    pub to: SocketAddr,
    /// Transport.
    pub transport: Transport,
    /// The bytes.
    pub bytes: Vec<u8>,
    /// The network lost it.
    pub lost: bool,
}

impl Packet {
    /// The SIP message in it, if it holds one.
    pub fn message(&self) -> Option<Message> {
        Message::parse(&self.bytes).ok()
    }

    /// An RFC 5626 keep-alive (CRLF, or a STUN Binding message): it carries no message.
    pub fn is_keepalive(&self) -> bool {
        handset_stun::binding::is_stun(&self.bytes)
            || (!self.bytes.is_empty() && self.bytes.iter().all(|b| matches!(b, b'\r' | b'\n')))
    }

    /// The method of a request, or `"<status> <method>"` of a response.
    pub fn kind(&self) -> String {
        match self.message() {
            Some(Message::Request(r)) => r.method.to_string(),
            Some(Message::Response(r)) => format!(
                "{} {}",
                r.status,
                r.headers
                    .cseq()
                    .map(|c| c.method.to_string())
                    .unwrap_or_default()
            ),
            None => "<not SIP>".into(),
        }
    }
}

/// What the simulated runtime did with one call's media.
#[derive(Debug, Default)]
pub struct MediaLog {
    /// The RTP socket's address, once bound.
    pub local: Option<SocketAddr>,
    /// Every negotiation applied: the start, then updates.
    pub negotiations: Vec<Negotiated>,
    /// Media runs (started, not stopped).
    pub running: bool,
    /// DTMF digits sent.
    pub dtmf: String,
    /// Muted now.
    pub muted: bool,
    /// Times the media moved to a new socket.
    pub switches: usize,
    /// The ICE part of the plan media started with, or of its last ICE restart.
    pub ice: Option<IcePlan>,
    /// ICE restarts of the running media.
    pub ice_restarts: usize,
    /// A socket was bound while media ran (a network change) and not switched to yet.
    pub rebound: bool,
}

/// What gathering would find for a socket at `local` (the runtime's job): the host address,
/// a server-reflexive one at 203.0.113.1 when a STUN server is set, a relayed one at
/// 198.51.100.200 when a TURN server is set; only the relayed one under the relay policy.
pub fn simulated_candidates(config: &IceConfig, local: SocketAddr) -> Vec<LocalCandidate> {
    let mut found = Vec::new();
    if config.policy == IcePolicy::All {
        found.push(LocalCandidate {
            kind: CandidateType::Host,
            address: local,
            base: local,
        });
        if !config.stun.is_empty() {
            found.push(LocalCandidate {
                kind: CandidateType::ServerReflexive,
                address: SocketAddr::from(([203, 0, 113, 1], local.port())),
                base: local,
            });
        }
    }
    if !config.turn.is_empty() {
        let relayed = SocketAddr::from(([198, 51, 100, 200], local.port()));
        found.push(LocalCandidate {
            kind: CandidateType::Relayed,
            address: relayed,
            base: relayed,
        });
    }
    found
}

/// A phone machine with the runtime's answers simulated.
pub struct PhoneNode {
    /// Name in failure messages.
    pub name: String,
    /// The machine.
    pub phone: Phone,
    /// Its UDP address.
    pub addr: SocketAddr,
    /// Every event, with when it came.
    pub events: Vec<(Instant, PhoneEvent)>,
    /// Every record written to the store.
    pub records: Vec<Record>,
    /// Media per call.
    pub media: BTreeMap<CallId, MediaLog>,
    /// RTP sockets bound, in all.
    pub sockets_bound: usize,
    /// Sockets bound and not yet released.
    pub sockets_open: usize,
    /// Flows the phone asked to open.
    pub connects: Vec<Flow>,
    timeout: Option<Instant>,
    inputs: VecDeque<Input>,
    tcp_local: HashMap<Flow, SocketAddr>,
    next_port: u16,
}

impl PhoneNode {
    fn new(name: &str, addr: SocketAddr, phone: Phone) -> Self {
        PhoneNode {
            name: name.to_string(),
            phone,
            addr,
            events: Vec::new(),
            records: Vec::new(),
            media: BTreeMap::new(),
            sockets_bound: 0,
            sockets_open: 0,
            connects: Vec::new(),
            timeout: None,
            inputs: VecDeque::new(),
            tcp_local: HashMap::new(),
            next_port: 40_000,
        }
    }

    /// Feeds one input and carries out what follows; returns the packets to send.
    fn input(&mut self, now: Instant, input: Input) -> Vec<(Flow, SocketAddr, Vec<u8>)> {
        if let Err(error) = self.phone.handle_input(now, input) {
            panic!("{}: an input was refused: {error}", self.name);
        }
        self.settle(now)
    }

    /// Drains the phone, answering its requests the way the runtime would, until it is quiet.
    fn settle(&mut self, now: Instant) -> Vec<(Flow, SocketAddr, Vec<u8>)> {
        let mut sent = Vec::new();
        loop {
            let mut drained = 0usize;
            while let Some(output) = self.phone.poll_output() {
                drained += 1;
                assert!(
                    drained < 100_000,
                    "{}: the phone never stops talking",
                    self.name
                );
                self.carry_out(now, output, &mut sent);
            }
            match self.inputs.pop_front() {
                Some(input) => {
                    if let Err(error) = self.phone.handle_input(now, input) {
                        panic!("{}: an input was refused: {error}", self.name);
                    }
                }
                None => return sent,
            }
        }
    }

    fn carry_out(
        &mut self,
        now: Instant,
        output: Output,
        sent: &mut Vec<(Flow, SocketAddr, Vec<u8>)>,
    ) {
        match output {
            Output::Transmit { flow, bytes } => {
                let from = match flow.transport {
                    Transport::Udp => self.addr,
                    Transport::Tcp | Transport::Tls => {
                        self.tcp_local.get(&flow).copied().unwrap_or(self.addr)
                    }
                };
                sent.push((flow, from, bytes));
            }
            Output::Resolve { account, target } => {
                let result = target
                    .host
                    .trim_matches(['[', ']'])
                    .parse::<IpAddr>()
                    .map(|ip| {
                        let transport = target.transport.unwrap_or(if target.sips {
                            Transport::Tls
                        } else {
                            Transport::Udp
                        });
                        vec![Target {
                            transport,
                            addr: SocketAddr::new(
                                ip,
                                target.port.unwrap_or(transport.default_port()),
                            ),
                            host: target.host.clone(),
                        }]
                    })
                    .map_err(|_| format!("{} is not in the simulated DNS", target.host));
                self.inputs.push_back(Input::Resolved { account, result });
            }
            Output::Connect { flow, .. } => {
                self.connects.push(flow);
                let local = if flow.reliable() {
                    self.next_port += 1;
                    let local = SocketAddr::new(self.addr.ip(), self.next_port);
                    self.tcp_local.insert(flow, local);
                    local
                } else {
                    self.addr
                };
                self.inputs.push_back(Input::Connected { flow, local });
            }
            Output::Disconnect { flow } => {
                self.tcp_local.remove(&flow);
            }
            Output::BindMedia { call, ice, .. } => {
                self.next_port += 1;
                let local = SocketAddr::new(self.addr.ip(), self.next_port);
                self.sockets_bound += 1;
                self.sockets_open += 1;
                let log = self.media.entry(call).or_default();
                log.rebound = log.running;
                log.local = Some(local);
                let candidates = ice
                    .map(|ice| simulated_candidates(&ice.config, local))
                    .unwrap_or_default();
                self.inputs.push_back(Input::MediaBound {
                    call,
                    result: Ok(BoundMedia { local, candidates }),
                });
            }
            Output::Media { call, command } => {
                let log = self.media.entry(call).or_default();
                match command {
                    MediaCommand::Start(plan) => {
                        assert_eq!(
                            Some(plan.local),
                            log.local,
                            "{}: media starts on its own socket",
                            self.name
                        );
                        log.running = true;
                        log.muted = plan.muted;
                        log.dtmf.push_str(&plan.dtmf);
                        log.ice = plan.ice;
                        log.negotiations.push(plan.negotiated);
                    }
                    MediaCommand::Update(negotiated) => log.negotiations.push(*negotiated),
                    MediaCommand::Dtmf(digits) => log.dtmf.push_str(&digits),
                    MediaCommand::Mute(muted) => log.muted = muted,
                    MediaCommand::RestartIce {
                        negotiated,
                        local,
                        ice,
                    } => {
                        assert_eq!(
                            Some(local),
                            log.local,
                            "{}: ICE restarts on the socket bound last",
                            self.name
                        );
                        // A restart after a network change leaves the old socket.
                        if std::mem::take(&mut log.rebound) {
                            self.sockets_open -= 1;
                        }
                        log.ice_restarts += 1;
                        log.ice = Some(*ice);
                        log.negotiations.push(*negotiated);
                    }
                    MediaCommand::SwitchSocket => {
                        // The socket bound last replaces the one media started on.
                        log.rebound = false;
                        log.switches += 1;
                        self.sockets_open -= 1;
                    }
                    MediaCommand::Stop => {
                        log.running = false;
                        if log.local.take().is_some() {
                            self.sockets_open -= 1;
                        }
                        self.inputs.push_back(Input::MediaStopped {
                            call,
                            quality: None,
                        });
                    }
                }
            }
            Output::Store(record) => self.records.push(record),
            Output::Event(event) => self.events.push((now, event)),
            Output::Timeout(at) => self.timeout = Some(at),
        }
    }

    /// The events so far, without their times.
    pub fn event_list(&self) -> Vec<&PhoneEvent> {
        self.events.iter().map(|(_, e)| e).collect()
    }
}

/// A scripted SIP peer: called with every message it receives (and where from), it returns
/// the messages to send back (and where to).
pub type Script = Box<dyn FnMut(Instant, Flow, Message) -> Vec<(Flow, Message)>>;

/// Something on the simulated network that is not a phone (a scripted peer, a PBX machine).
pub trait Peer {
    /// Bytes arrived from `from`; returns the packets to send (flow, bytes).
    fn receive(&mut self, now: Instant, from: Flow, bytes: &[u8]) -> Vec<(Flow, Vec<u8>)>;
    /// The clock reached the peer's deadline; returns the packets to send.
    fn tick(&mut self, now: Instant) -> Vec<(Flow, Vec<u8>)>;
    /// When the peer next needs [`Peer::tick`].
    fn deadline(&self) -> Option<Instant>;
    /// Push notifications the peer asked to send so far (a PBX's).
    fn pushes(&self) -> Vec<handset_pbx::PushNotification> {
        Vec::new()
    }
    /// The PBX machine, when the peer is one.
    fn pbx(&self) -> Option<&handset_pbx::PbxMachine> {
        None
    }
}

struct ScriptPeer(Script);

impl Peer for ScriptPeer {
    fn receive(&mut self, now: Instant, from: Flow, bytes: &[u8]) -> Vec<(Flow, Vec<u8>)> {
        match Message::parse(bytes) {
            Ok(message) => (self.0)(now, from, message)
                .into_iter()
                .map(|(flow, m)| (flow, m.to_bytes()))
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    fn tick(&mut self, _now: Instant) -> Vec<(Flow, Vec<u8>)> {
        Vec::new()
    }

    fn deadline(&self) -> Option<Instant> {
        None
    }
}

/// The embedded PBX machine on the simulated network, with what it asked to push.
pub struct PbxPeer {
    /// The machine.
    pub machine: handset_pbx::PbxMachine,
    /// Push notifications it asked to send, in order (the test delivers them to a phone).
    pub pushes: Vec<handset_pbx::PushNotification>,
    timeout: Option<Instant>,
}

impl PbxPeer {
    /// A PBX machine listening on `local`.
    pub fn new(config: handset_pbx::MachineConfig, local: SocketAddr, seed: u64) -> PbxPeer {
        let machine =
            handset_pbx::PbxMachine::new(config, local, Box::new(StdRng::seed_from_u64(seed)))
                .expect("a valid PBX configuration");
        PbxPeer {
            machine,
            pushes: Vec::new(),
            timeout: None,
        }
    }

    fn drain(&mut self) -> Vec<(Flow, Vec<u8>)> {
        use handset_pbx::machine::Output as PbxOutput;
        let mut sent = Vec::new();
        while let Some(output) = self.machine.poll_output() {
            match output {
                PbxOutput::Transmit { flow, bytes } => sent.push((flow, bytes)),
                PbxOutput::Push(notification) => self.pushes.push(notification),
                PbxOutput::Timeout(at) => self.timeout = Some(at),
                PbxOutput::Disconnect { .. } | PbxOutput::Event(_) => {}
            }
        }
        sent
    }
}

impl Peer for PbxPeer {
    fn receive(&mut self, now: Instant, from: Flow, bytes: &[u8]) -> Vec<(Flow, Vec<u8>)> {
        self.machine.handle_input(
            now,
            handset_pbx::machine::Input::Received {
                flow: from,
                bytes: bytes.to_vec(),
            },
        );
        self.drain()
    }

    fn tick(&mut self, now: Instant) -> Vec<(Flow, Vec<u8>)> {
        self.timeout = None;
        self.machine
            .handle_input(now, handset_pbx::machine::Input::Timeout);
        self.drain()
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout
    }

    fn pushes(&self) -> Vec<handset_pbx::PushNotification> {
        self.pushes.clone()
    }

    fn pbx(&self) -> Option<&handset_pbx::PbxMachine> {
        Some(&self.machine)
    }
}

/// Identifies a phone in a [`Sim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneRef(usize);

/// Identifies a peer in a [`Sim`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerRef(usize);

struct Flight {
    to: SocketAddr,
    flow_at_receiver: Flow,
    bytes: Vec<u8>,
}

/// The simulated network (see the module documentation).
pub struct Sim {
    /// Virtual now.
    pub now: Instant,
    /// The network's behaviour.
    pub link: Link,
    /// Every packet sent, in order.
    pub packets: Vec<Packet>,
    rng: StdRng,
    phones: Vec<PhoneNode>,
    peers: Vec<(SocketAddr, Box<dyn Peer>)>,
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    flights: HashMap<u64, Flight>,
    next_flight: u64,
    /// The last delivery time per TCP connection, to keep stream order.
    stream_clock: HashMap<(SocketAddr, SocketAddr), Instant>,
}

impl Sim {
    /// An empty network; `seed` fixes every random choice (loss, jitter, the phones' rngs).
    pub fn new(seed: u64, link: Link) -> Sim {
        let now = Instant::now();
        Sim {
            now,
            link,
            packets: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            phones: Vec::new(),
            peers: Vec::new(),
            queue: BinaryHeap::new(),
            flights: HashMap::new(),
            next_flight: 0,
            stream_clock: HashMap::new(),
        }
    }

    /// Adds a phone listening on `addr`.
    pub fn add_phone(
        &mut self,
        name: &str,
        addr: SocketAddr,
        config: PhoneConfig,
        directory: FixedDirectory,
    ) -> PhoneRef {
        let rng = StdRng::seed_from_u64(self.rng.random());
        let phone = Phone::new(config, Box::new(directory), Box::new(rng));
        self.phones.push(PhoneNode::new(name, addr, phone));
        PhoneRef(self.phones.len() - 1)
    }

    /// The app was killed and launched again: the phone at `phone`'s address starts over
    /// with a fresh machine (no accounts, nothing remembered); its logs are kept.
    pub fn restart_phone(
        &mut self,
        phone: PhoneRef,
        config: PhoneConfig,
        directory: FixedDirectory,
    ) {
        let rng = StdRng::seed_from_u64(self.rng.random());
        let node = &mut self.phones[phone.0];
        node.phone = Phone::new(config, Box::new(directory), Box::new(rng));
        node.timeout = None;
        node.inputs.clear();
        node.tcp_local.clear();
    }

    /// Adds a scripted peer listening on `addr` (UDP and TCP).
    pub fn add_script(&mut self, addr: SocketAddr, script: Script) -> PeerRef {
        self.add_peer(addr, Box::new(ScriptPeer(script)))
    }

    /// Adds any peer listening on `addr` (UDP and TCP).
    pub fn add_peer(&mut self, addr: SocketAddr, peer: Box<dyn Peer>) -> PeerRef {
        self.peers.push((addr, peer));
        PeerRef(self.peers.len() - 1)
    }

    /// Adds the embedded PBX machine, listening on `addr`.
    pub fn add_pbx(&mut self, addr: SocketAddr, config: handset_pbx::MachineConfig) -> PeerRef {
        let seed = self.rng.random();
        self.add_peer(addr, Box::new(PbxPeer::new(config, addr, seed)))
    }

    /// The push notifications a PBX peer asked to send so far (empty for other peers).
    pub fn pushes(&self, pbx: PeerRef) -> Vec<handset_pbx::PushNotification> {
        self.peers[pbx.0].1.pushes()
    }

    /// The PBX machine of a PBX peer.
    pub fn pbx(&self, pbx: PeerRef) -> &handset_pbx::PbxMachine {
        self.peers[pbx.0].1.pbx().expect("a PBX peer")
    }

    /// A phone.
    pub fn phone(&self, phone: PhoneRef) -> &PhoneNode {
        &self.phones[phone.0]
    }

    /// A phone, to change.
    pub fn phone_mut(&mut self, phone: PhoneRef) -> &mut PhoneNode {
        &mut self.phones[phone.0]
    }

    /// Gives a phone a command now; what follows goes out on the network.
    pub fn command(&mut self, phone: PhoneRef, command: Command) -> Result<Reply, PhoneError> {
        let now = self.now;
        let node = &mut self.phones[phone.0];
        let reply = node.phone.handle_input(now, Input::Command(command));
        let sent = node.settle(now);
        self.send_all(sent);
        reply
    }

    /// Feeds a phone any input now (as if its runtime reported it).
    pub fn input(&mut self, phone: PhoneRef, input: Input) {
        let now = self.now;
        let sent = self.phones[phone.0].input(now, input);
        self.send_all(sent);
    }

    /// Sends bytes to `to` from `from` as if a peer outside the simulation sent them.
    pub fn inject(
        &mut self,
        from: SocketAddr,
        to: SocketAddr,
        transport: Transport,
        bytes: Vec<u8>,
    ) {
        self.send(Flow::new(transport, to), from, bytes);
    }

    fn send_all(&mut self, sent: Vec<(Flow, SocketAddr, Vec<u8>)>) {
        for (flow, from, bytes) in sent {
            self.send(flow, from, bytes);
        }
    }

    fn send(&mut self, flow: Flow, from: SocketAddr, bytes: Vec<u8>) {
        let reliable = flow.reliable();
        let lost = !reliable && self.rng.random_bool(self.link.loss.clamp(0.0, 1.0));
        self.packets.push(Packet {
            sent: self.now,
            from,
            to: flow.remote,
            transport: flow.transport,
            bytes: bytes.clone(),
            lost,
        });
        if lost {
            return;
        }
        let mut at = self.now + self.link.latency;
        if reliable {
            let last = self.stream_clock.entry((from, flow.remote)).or_insert(at);
            at = at.max(*last);
            *last = at;
        } else if !self.link.jitter.is_zero() {
            at += self.link.jitter.mul_f64(self.rng.random::<f64>());
        }
        let id = self.next_flight;
        self.next_flight += 1;
        self.flights.insert(
            id,
            Flight {
                to: flow.remote,
                flow_at_receiver: Flow::new(flow.transport, from),
                bytes,
            },
        );
        self.queue.push(Reverse((at, id)));
    }

    /// The earliest thing that will happen: a delivery or a timer.
    fn next_time(&self) -> Option<Instant> {
        let delivery = self.queue.peek().map(|Reverse((at, _))| *at);
        let phones = self.phones.iter().filter_map(|p| p.timeout);
        let peers = self.peers.iter().filter_map(|(_, p)| p.deadline());
        delivery.into_iter().chain(phones).chain(peers).min()
    }

    /// Runs the next event; false when nothing is scheduled before `limit`.
    fn step(&mut self, limit: Instant) -> bool {
        let Some(at) = self.next_time().filter(|at| *at <= limit) else {
            return false;
        };
        self.now = self.now.max(at);
        let now = self.now;
        if let Some(Reverse((when, id))) = self.queue.peek().copied()
            && when <= now
        {
            self.queue.pop();
            if let Some(flight) = self.flights.remove(&id) {
                self.deliver(flight);
            }
            return true;
        }
        for i in 0..self.phones.len() {
            if self.phones[i].timeout.is_some_and(|t| t <= now) {
                self.phones[i].timeout = None;
                let sent = self.phones[i].input(now, Input::Timeout);
                self.send_all(sent);
                return true;
            }
        }
        for i in 0..self.peers.len() {
            if self.peers[i].1.deadline().is_some_and(|t| t <= now) {
                let (addr, peer) = &mut self.peers[i];
                let addr = *addr;
                let sent = peer.tick(now);
                for (flow, bytes) in sent {
                    self.send(flow, addr, bytes);
                }
                return true;
            }
        }
        true
    }

    fn deliver(&mut self, flight: Flight) {
        let now = self.now;
        if let Some(i) = self
            .phones
            .iter()
            .position(|p| p.addr == flight.to || p.tcp_local.values().any(|a| *a == flight.to))
        {
            let sent = self.phones[i].input(
                now,
                Input::Received {
                    flow: flight.flow_at_receiver,
                    bytes: flight.bytes,
                },
            );
            self.send_all(sent);
            return;
        }
        if let Some(i) = self.peers.iter().position(|(addr, _)| *addr == flight.to) {
            let (addr, peer) = &mut self.peers[i];
            let addr = *addr;
            let sent = peer.receive(now, flight.flow_at_receiver, &flight.bytes);
            for (flow, bytes) in sent {
                self.send(flow, addr, bytes);
            }
        }
        // Nobody there: the packet is gone, as on a real network.
    }

    /// Runs virtual time forward by `duration`.
    pub fn run_for(&mut self, duration: Duration) {
        let limit = self.now + duration;
        let mut steps = 0u64;
        while self.step(limit) {
            steps += 1;
            assert!(steps < 10_000_000, "the simulation does not settle");
        }
        self.now = limit;
    }

    /// Runs until `done` holds (checked after every event), at most `limit` of virtual time.
    /// Returns whether it came true.
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&Sim) -> bool) -> bool {
        let end = self.now + limit;
        let mut steps = 0u64;
        loop {
            if done(self) {
                return true;
            }
            if !self.step(end) {
                self.now = end;
                return done(self);
            }
            steps += 1;
            assert!(steps < 10_000_000, "the simulation does not settle");
        }
    }

    /// How many events `phone` has emitted so far: a mark for [`Sim::wait_event_since`].
    pub fn mark(&self, phone: PhoneRef) -> usize {
        self.phones[phone.0].events.len()
    }

    /// Runs until `phone` emits an event matching `wanted` (looking only at events after the
    /// ones already there), at most `limit`; returns it.
    pub fn wait_event(
        &mut self,
        phone: PhoneRef,
        limit: Duration,
        wanted: impl Fn(&PhoneEvent) -> bool,
    ) -> Option<PhoneEvent> {
        let seen = self.mark(phone);
        self.wait_event_since(phone, seen, limit, wanted)
    }

    /// Runs until `phone` has emitted, after its first `seen` events, an event matching
    /// `wanted` (at most `limit`); returns the first such event.
    pub fn wait_event_since(
        &mut self,
        phone: PhoneRef,
        seen: usize,
        limit: Duration,
        wanted: impl Fn(&PhoneEvent) -> bool,
    ) -> Option<PhoneEvent> {
        let found = self.run_until(limit, |sim| {
            sim.phones[phone.0]
                .events
                .iter()
                .skip(seen)
                .any(|(_, e)| wanted(e))
        });
        found.then(|| {
            self.phones[phone.0]
                .events
                .iter()
                .skip(seen)
                .map(|(_, e)| e)
                .find(|e| wanted(e))
                .cloned()
        })?
    }

    /// Packets sent so far (lost ones included) whose SIP kind is `kind` (a method, or
    /// `"<status> <method>"`), from `from` when given.
    pub fn count(&self, kind: &str, from: Option<SocketAddr>) -> usize {
        self.packets
            .iter()
            .filter(|p| from.is_none_or(|f| p.from.ip() == f.ip()))
            .filter(|p| p.kind() == kind)
            .count()
    }
}
