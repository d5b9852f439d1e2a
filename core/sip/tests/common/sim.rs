//! A simulated network in virtual time for transaction-layer tests.
//!
//! Two endpoints, each with a [`TransactionLayer`], exchange messages over a link with seeded
//! per-packet loss, latency and jitter (jitter reorders unreliable traffic; reliable links keep
//! order and lose nothing, like TCP). [`Sim::progress`] jumps virtual time to the next packet
//! delivery or the earliest `poll_timeout()` and never sleeps, so a 32 s Timer F runs in
//! microseconds. Every packet goes through `to_bytes()` and `Message::parse`, as on the wire.
//!
//! The transaction user of each endpoint is a closure called for every event; it can answer
//! through the layer it is given.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use handset_sip::message::{Message, Method};
use handset_sip::transaction::{Output, Timers, TransactionEvent, TransactionLayer};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The two endpoints; also the address type of the layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// Usually the client.
    A,
    /// Usually the server.
    B,
}

impl Node {
    fn index(self) -> usize {
        match self {
            Node::A => 0,
            Node::B => 1,
        }
    }

    /// The other endpoint.
    pub fn peer(self) -> Node {
        match self {
            Node::A => Node::B,
            Node::B => Node::A,
        }
    }
}

/// One direction of the network.
#[derive(Debug, Clone)]
pub struct Link {
    /// Probability that a packet is lost (ignored when reliable).
    pub loss: f64,
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra random delay in `0..=jitter` (reorders unreliable packets).
    pub jitter: Duration,
    /// TCP-like: no loss, in-order delivery.
    pub reliable: bool,
    /// Delays used, in order, for the next packets instead of latency + jitter (to script a
    /// reordering).
    pub scripted: VecDeque<Duration>,
}

impl Link {
    /// A lossless UDP link with `latency`.
    pub fn udp(latency: Duration) -> Link {
        Link {
            loss: 0.0,
            latency,
            jitter: Duration::ZERO,
            reliable: false,
            scripted: VecDeque::new(),
        }
    }

    /// A UDP link with loss and jitter.
    pub fn lossy(loss: f64, latency: Duration, jitter: Duration) -> Link {
        Link {
            loss,
            jitter,
            ..Link::udp(latency)
        }
    }

    /// A TCP-like link.
    pub fn reliable(latency: Duration) -> Link {
        Link {
            reliable: true,
            ..Link::udp(latency)
        }
    }

    /// A link that loses everything: the peer never answers.
    pub fn black_hole() -> Link {
        Link {
            loss: 1.0,
            ..Link::udp(Duration::from_millis(10))
        }
    }
}

/// The transaction user of an endpoint.
pub type Tu = Box<dyn FnMut(Instant, &TransactionEvent<Node>, &mut TransactionLayer<Node>)>;

/// One endpoint.
pub struct Endpoint {
    /// Its transaction layer.
    pub layer: TransactionLayer<Node>,
    /// Every event its layer produced, with the virtual time.
    pub events: Vec<(Instant, TransactionEvent<Node>)>,
    /// Its outgoing link.
    pub link: Link,
    tu: Option<Tu>,
}

/// A message put on the wire.
#[derive(Debug, Clone)]
pub struct Sent {
    /// When.
    pub at: Instant,
    /// By whom.
    pub from: Node,
    /// What.
    pub message: Message,
    /// Whether the network lost it.
    pub lost: bool,
}

/// A message handed to an endpoint.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// When.
    pub at: Instant,
    /// To whom.
    pub to: Node,
    /// What.
    pub message: Message,
}

struct Packet {
    at: Instant,
    seq: u64,
    to: Node,
    reliable: bool,
    bytes: Vec<u8>,
}

/// The simulated network and its two endpoints.
pub struct Sim {
    /// Virtual time zero.
    pub start: Instant,
    /// Virtual now.
    pub now: Instant,
    rng: StdRng,
    nodes: [Endpoint; 2],
    in_flight: Vec<Packet>,
    last_arrival: [Instant; 2],
    seq: u64,
    /// Every message sent, in order.
    pub sent: Vec<Sent>,
    /// Every message delivered, in order.
    pub delivered: Vec<Delivered>,
}

/// The base instant; the only clock read in these tests.
#[allow(clippy::disallowed_methods)]
pub fn base_instant() -> Instant {
    Instant::now()
}

impl Sim {
    /// A network with the same link both ways.
    pub fn new(seed: u64, link: Link) -> Sim {
        Sim::asymmetric(seed, link.clone(), link)
    }

    /// A network with link `a_to_b` from A to B and `b_to_a` back.
    pub fn asymmetric(seed: u64, a_to_b: Link, b_to_a: Link) -> Sim {
        let start = base_instant();
        let endpoint = |link| Endpoint {
            layer: TransactionLayer::new(Timers::default()),
            events: Vec::new(),
            link,
            tu: None,
        };
        Sim {
            start,
            now: start,
            rng: StdRng::seed_from_u64(seed),
            nodes: [endpoint(a_to_b), endpoint(b_to_a)],
            in_flight: Vec::new(),
            last_arrival: [start; 2],
            seq: 0,
            sent: Vec::new(),
            delivered: Vec::new(),
        }
    }

    /// An endpoint.
    pub fn node(&self, node: Node) -> &Endpoint {
        &self.nodes[node.index()]
    }

    /// An endpoint, mutable (to send requests, script delays...). Call
    /// [`flush`](Self::flush) after acting on its layer, or let `progress` do it.
    pub fn node_mut(&mut self, node: Node) -> &mut Endpoint {
        &mut self.nodes[node.index()]
    }

    /// Installs the transaction user of `node`.
    pub fn set_tu(
        &mut self,
        node: Node,
        tu: impl FnMut(Instant, &TransactionEvent<Node>, &mut TransactionLayer<Node>) + 'static,
    ) {
        self.nodes[node.index()].tu = Some(Box::new(tu));
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }

    /// Puts `message` on the wire from `from`, as if its transport had sent it (e.g. a
    /// retransmission from a stateless element).
    pub fn inject(&mut self, from: Node, message: Message) {
        self.transmit(from, message);
    }

    /// Moves every pending output of both layers onto the network or to the TUs.
    pub fn flush(&mut self) {
        loop {
            let mut moved = false;
            for node in [Node::A, Node::B] {
                while let Some(output) = self.nodes[node.index()].layer.poll_output() {
                    moved = true;
                    match output {
                        Output::Transmit {
                            to,
                            reliable,
                            message,
                        } => {
                            assert_eq!(to, node.peer(), "only two nodes");
                            assert_eq!(reliable, self.nodes[node.index()].link.reliable);
                            self.transmit(node, message);
                        }
                        Output::Event(event) => {
                            let now = self.now;
                            let endpoint = &mut self.nodes[node.index()];
                            if let Some(tu) = endpoint.tu.as_mut() {
                                tu(now, &event, &mut endpoint.layer);
                            }
                            endpoint.events.push((now, event));
                        }
                    }
                }
            }
            if !moved {
                return;
            }
        }
    }

    fn transmit(&mut self, from: Node, message: Message) {
        let link = &mut self.nodes[from.index()].link;
        let lost = !link.reliable && link.loss > 0.0 && self.rng.random_bool(link.loss.min(1.0));
        let delay = match link.scripted.pop_front() {
            Some(d) => d,
            None => {
                let jitter = if link.jitter.is_zero() {
                    Duration::ZERO
                } else {
                    self.rng.random_range(Duration::ZERO..=link.jitter)
                };
                link.latency + jitter
            }
        };
        let to = from.peer();
        let mut at = self.now + delay;
        if link.reliable {
            // In order, like a byte stream.
            at = at.max(self.last_arrival[to.index()]);
            self.last_arrival[to.index()] = at;
        }
        self.sent.push(Sent {
            at: self.now,
            from,
            message: message.clone(),
            lost,
        });
        if !lost {
            self.seq += 1;
            self.in_flight.push(Packet {
                at,
                seq: self.seq,
                to,
                reliable: link.reliable,
                bytes: message.to_bytes(),
            });
        }
    }

    /// When something next happens: a delivery or a timer.
    pub fn next_event(&self) -> Option<Instant> {
        let packet = self.in_flight.iter().map(|p| p.at).min();
        let timers = self.nodes.iter().filter_map(|n| n.layer.poll_timeout());
        packet.into_iter().chain(timers).min()
    }

    /// Advances virtual time to the next delivery or timer and handles everything due then.
    /// Returns false when nothing is left to happen.
    pub fn progress(&mut self) -> bool {
        self.flush();
        let Some(next) = self.next_event() else {
            return false;
        };
        self.now = self.now.max(next);
        self.deliver_due();
        for endpoint in &mut self.nodes {
            endpoint.layer.handle_timeout(self.now);
        }
        self.flush();
        true
    }

    fn deliver_due(&mut self) {
        loop {
            let due = self
                .in_flight
                .iter()
                .enumerate()
                .filter(|(_, p)| p.at <= self.now)
                .min_by_key(|(_, p)| (p.at, p.seq))
                .map(|(i, _)| i);
            let Some(i) = due else { return };
            let packet = self.in_flight.swap_remove(i);
            let message = Message::parse(&packet.bytes).unwrap();
            self.delivered.push(Delivered {
                at: self.now,
                to: packet.to,
                message: message.clone(),
            });
            let from = packet.to.peer();
            self.nodes[packet.to.index()]
                .layer
                .handle_message(self.now, message, from, packet.reliable)
                .unwrap();
            self.flush();
        }
    }

    /// Runs until nothing is left to happen; panics after `limit` of virtual time.
    pub fn run(&mut self, limit: Duration) {
        while self.progress() {
            assert!(self.elapsed() <= limit, "still busy after {limit:?}");
        }
    }

    /// Runs every event up to `deadline` (virtual), then sets the clock to it.
    pub fn run_until(&mut self, deadline: Instant) {
        self.flush();
        while self.next_event().is_some_and(|t| t <= deadline) {
            self.progress();
        }
        self.now = self.now.max(deadline);
    }

    /// Messages `from` put on the wire whose request method or response CSeq method is
    /// `method` and, for responses, whose status is `status`.
    pub fn sent_by(&self, from: Node, method: Method, status: Option<u16>) -> Vec<&Sent> {
        self.sent
            .iter()
            .filter(|s| s.from == from && matches(&s.message, &method, status))
            .collect()
    }

    /// Like [`sent_by`](Self::sent_by) for deliveries to `to`.
    pub fn delivered_to(&self, to: Node, method: Method, status: Option<u16>) -> Vec<&Delivered> {
        self.delivered
            .iter()
            .filter(|d| d.to == to && matches(&d.message, &method, status))
            .collect()
    }
}

fn matches(message: &Message, method: &Method, status: Option<u16>) -> bool {
    match (message, status) {
        (Message::Request(r), None) => &r.method == method,
        (Message::Response(r), Some(s)) => {
            r.status == s && r.headers.cseq().is_ok_and(|c| &c.method == method)
        }
        _ => false,
    }
}
