//! INVITE sessions (RFC 3261 §13–15, RFC 3262, RFC 4028, RFC 6026) between two [`Call`]s,
//! each over its own transaction layer, across the virtual-time simulated network of
//! `common/sim.rs`: seeded loss, latency and jitter, no sleeping, so ten minutes of session
//! refreshes run in milliseconds. The harness plays the runtime: it adds Vias, starts
//! transactions, routes requests and responses to the calls, and fires their timers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/sim.rs"]
mod sim;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use handset_sip::auth::{Challenge, CredentialStore, Credentials, DigestResponse};
use handset_sip::message::{
    HeaderName, Host, Message, Method, NameAddr, Request, Response, SipUri,
};
use handset_sip::transaction::{TransactionError, TransactionEvent, cancel_request, new_branch};
use handset_sip::usage::invite::{
    Call, CallConfig, CallEvent, CallOutput, CallState, EndReason, TransactionFailure,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sim::{Link, Node, Sim};

const SEEDS: u64 = 20;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn idx(node: Node) -> usize {
    match node {
        Node::A => 0,
        Node::B => 1,
    }
}

/// Something the test makes a call do at a given time.
type Action = Box<dyn FnOnce(Instant, &mut Call)>;

/// What the callee's harness does with a new INVITE.
enum Incoming {
    /// Make a call of it and run these actions after these delays.
    Accept(Vec<(Duration, Action)>),
    /// Answer it with this response, without a call (a proxy's 401, a redirect server's 302).
    Respond(Response),
}

type IncomingHook = Box<dyn FnMut(&Request) -> Incoming>;
type EventHook = Box<dyn FnMut(&CallEvent) -> Vec<(Duration, Action)>>;

fn act(f: impl FnOnce(Instant, &mut Call) + 'static) -> Action {
    Box::new(f)
}

/// One endpoint as its runtime sees it.
struct Side {
    config: CallConfig,
    call: Option<Call>,
    events: Vec<(Duration, CallEvent)>,
    on_incoming: IncomingHook,
    on_event: EventHook,
    /// Transaction-layer refusals of what the call asked (should stay empty).
    errors: Vec<String>,
    queue: Rc<RefCell<Vec<TransactionEvent<Node>>>>,
    rng: StdRng,
}

struct Harness {
    sim: Sim,
    sides: [Side; 2],
    script: Vec<(Instant, Node, Action)>,
}

fn uri(user: &str, host: &str) -> SipUri {
    SipUri::new(Some(user), Host::Domain(host.into()))
}

fn alice_config() -> CallConfig {
    let mut local = NameAddr::new(uri("alice", "atlanta.example.com"));
    local.display = Some("Alice".into());
    let mut contact = SipUri::new(Some("alice"), Host::V4([192, 0, 2, 1].into()));
    contact.port = Some(5060);
    let mut c = CallConfig::new(local, uri("bob", "biloxi.example.com"), contact);
    c.user_agent = "Handset-A".into();
    c
}

fn bob_config() -> CallConfig {
    let local = NameAddr::new(uri("bob", "biloxi.example.com"));
    let mut contact = SipUri::new(Some("bob"), Host::V4([192, 0, 2, 2].into()));
    contact.port = Some(5060);
    let mut c = CallConfig::new(local, uri("alice", "atlanta.example.com"), contact);
    c.user_agent = "Handset-B".into();
    c
}

/// The default TU reaction to offers: answer `X` with `answer-to:X`, supply `late-offer`.
fn auto_offers(name: &'static str) -> EventHook {
    Box::new(move |event| match event {
        CallEvent::RemoteOffer { sdp } => {
            let mut answer = b"answer-to:".to_vec();
            answer.extend_from_slice(sdp);
            vec![(
                Duration::ZERO,
                act(move |now, c| c.accept_offer(now, answer).unwrap()),
            )]
        }
        CallEvent::OfferRequested => {
            let offer = format!("late-offer-from-{name}").into_bytes();
            vec![(
                Duration::ZERO,
                act(move |now, c| c.accept_offer(now, offer).unwrap()),
            )]
        }
        _ => vec![],
    })
}

/// Callee behaviour: ring at once, answer with `answer-B` after `after`.
fn ring_then_answer(after: Duration) -> IncomingHook {
    Box::new(move |_| {
        Incoming::Accept(vec![
            (Duration::ZERO, act(|now, c| c.ring(now).unwrap())),
            (
                after,
                act(|now, c| {
                    // The caller may have given up meanwhile.
                    if c.state() == CallState::Incoming {
                        c.answer(now, b"answer-B".to_vec()).unwrap();
                    }
                }),
            ),
        ])
    })
}

impl Harness {
    fn new(seed: u64, link: Link) -> Harness {
        let sim = Sim::new(seed, link);
        let side = |config, name, n: u64| Side {
            config,
            call: None,
            events: Vec::new(),
            on_incoming: Box::new(|_| Incoming::Accept(vec![])),
            on_event: auto_offers(name),
            errors: Vec::new(),
            queue: Rc::new(RefCell::new(Vec::new())),
            rng: StdRng::seed_from_u64(seed * 1000 + n),
        };
        let mut h = Harness {
            sim,
            sides: [side(alice_config(), "A", 1), side(bob_config(), "B", 2)],
            script: Vec::new(),
        };
        for node in [Node::A, Node::B] {
            let queue = h.sides[idx(node)].queue.clone();
            h.sim.set_tu(node, move |_, event, _| {
                queue.borrow_mut().push(event.clone())
            });
        }
        h
    }

    fn side(&self, node: Node) -> &Side {
        &self.sides[idx(node)]
    }

    fn side_mut(&mut self, node: Node) -> &mut Side {
        &mut self.sides[idx(node)]
    }

    fn call(&self, node: Node) -> &Call {
        self.side(node).call.as_ref().expect("no call")
    }

    /// A calls B offering `offer`.
    fn dial(&mut self, offer: &[u8]) {
        let now = self.sim.now;
        let rng = Box::new(StdRng::seed_from_u64(self.side_mut(Node::A).rng_u64()));
        let call = Call::outgoing(self.side(Node::A).config.clone(), offer.to_vec(), now, rng);
        self.side_mut(Node::A).call = Some(call);
        self.pump();
    }

    /// Runs `action` on `node`'s call `after` from now.
    fn at(
        &mut self,
        after: Duration,
        node: Node,
        action: impl FnOnce(Instant, &mut Call) + 'static,
    ) {
        let at = self.sim.now + after;
        self.script.push((at, node, Box::new(action)));
    }

    fn events(&self, node: Node) -> Vec<CallEvent> {
        self.side(node)
            .events
            .iter()
            .map(|(_, e)| e.clone())
            .collect()
    }

    fn ended(&self, node: Node) -> Option<EndReason> {
        self.side(node).events.iter().find_map(|(_, e)| match e {
            CallEvent::Ended { reason } => Some(reason.clone()),
            _ => None,
        })
    }

    fn count(&self, node: Node, f: impl Fn(&CallEvent) -> bool) -> usize {
        self.side(node).events.iter().filter(|(_, e)| f(e)).count()
    }

    /// When `node` first reported an event `f` accepts.
    fn when(&self, node: Node, f: impl Fn(&CallEvent) -> bool) -> Option<Duration> {
        self.side(node)
            .events
            .iter()
            .find(|(_, e)| f(e))
            .map(|(t, _)| *t)
    }

    /// One step: a packet delivery, a layer timer, a call timer or a scripted action.
    fn step(&mut self, deadline: Instant) -> bool {
        self.pump();
        let sim_next = self.sim.next_event();
        let call_next = self
            .sides
            .iter()
            .filter_map(|s| s.call.as_ref().and_then(Call::poll_timeout))
            .min();
        let script_next = self.script.iter().map(|(t, _, _)| *t).min();
        let Some(next) = [sim_next, call_next, script_next]
            .into_iter()
            .flatten()
            .min()
        else {
            return false;
        };
        if next > deadline {
            return false;
        }
        if sim_next == Some(next) {
            self.sim.progress();
        } else {
            self.sim.now = self.sim.now.max(next);
            let now = self.sim.now;
            for side in &mut self.sides {
                if let Some(call) = side.call.as_mut()
                    && call.poll_timeout().is_some_and(|t| t <= now)
                {
                    call.handle_timeout(now);
                }
            }
            let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.script)
                .into_iter()
                .partition(|(t, _, _)| *t <= now);
            self.script = later;
            for (_, node, action) in due {
                if let Some(call) = self.sides[idx(node)].call.as_mut() {
                    action(now, call);
                }
            }
        }
        self.pump();
        true
    }

    /// Runs everything due in the next `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        let deadline = self.sim.now + d;
        while self.step(deadline) {}
        self.sim.now = self.sim.now.max(deadline);
    }

    /// Runs until nothing is left to happen; panics after `limit`.
    fn run_until_idle(&mut self, limit: Duration) {
        let deadline = self.sim.now + limit;
        while self.step(deadline + secs(1)) {
            assert!(self.sim.now <= deadline, "still busy after {limit:?}");
        }
    }

    /// Moves work between the layers, the calls and the network until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut moved = false;
            for node in [Node::A, Node::B] {
                let events: Vec<_> = self.sides[idx(node)].queue.borrow_mut().drain(..).collect();
                for event in events {
                    moved = true;
                    self.on_transaction_event(node, event);
                }
                loop {
                    let output = self.sides[idx(node)]
                        .call
                        .as_mut()
                        .and_then(Call::poll_output);
                    let Some(output) = output else { break };
                    moved = true;
                    self.on_call_output(node, output);
                }
            }
            self.sim.flush();
            let queued = self.sides.iter().any(|s| !s.queue.borrow().is_empty());
            if !moved && !queued {
                return;
            }
        }
    }

    fn on_transaction_event(&mut self, node: Node, event: TransactionEvent<Node>) {
        let now = self.sim.now;
        let side = &mut self.sides[idx(node)];
        match event {
            TransactionEvent::NewRequest {
                id,
                request,
                cancels,
                ..
            } => {
                if let Some(call) = side
                    .call
                    .as_mut()
                    .filter(|c| c.matches_request(&request) || cancels.is_some())
                {
                    call.handle_request(now, id, request);
                    return;
                }
                let layer = &mut self.sim.node_mut(node).layer;
                let fresh = request.method == Method::Invite
                    && request.headers.to().is_ok_and(|t| t.tag().is_none());
                if !fresh {
                    let _ = layer.send_response(now, id, Response::to_request(&request, 481));
                    return;
                }
                match (side.on_incoming)(&request) {
                    Incoming::Respond(response) => {
                        layer.send_response(now, id, response).unwrap();
                    }
                    Incoming::Accept(actions) => {
                        let rng = Box::new(StdRng::seed_from_u64(side.rng_u64()));
                        match Call::incoming(request, id, side.config.clone(), now, rng) {
                            Ok(call) => {
                                side.call = Some(call);
                                for (after, action) in actions {
                                    self.script.push((now + after, node, action));
                                }
                            }
                            Err(response) => layer.send_response(now, id, response).unwrap(),
                        }
                    }
                }
            }
            TransactionEvent::Response { id, response } => {
                if let Some(call) = side.call.as_mut() {
                    call.handle_response(now, id, response);
                }
            }
            TransactionEvent::Timeout { id } => {
                if let Some(call) = side.call.as_mut() {
                    call.handle_transaction_failure(now, id, TransactionFailure::Timeout);
                }
            }
            TransactionEvent::TransportError { id } => {
                if let Some(call) = side.call.as_mut() {
                    call.handle_transaction_failure(now, id, TransactionFailure::Transport);
                }
            }
            TransactionEvent::StrayAck { request, .. } => {
                if let Some(call) = side.call.as_mut() {
                    call.handle_stray_ack(now, request);
                }
            }
            TransactionEvent::StrayResponse { response, .. } => {
                if let Some(call) = side.call.as_mut().filter(|c| c.matches_response(&response)) {
                    call.handle_stray_response(now, response);
                }
            }
            TransactionEvent::Terminated { .. } => {}
        }
    }

    fn on_call_output(&mut self, node: Node, output: CallOutput) {
        let now = self.sim.now;
        let peer = node.peer();
        let reliable = self.sim.node(node).link.reliable;
        let host = match node {
            Node::A => "192.0.2.1:5060",
            Node::B => "192.0.2.2:5060",
        };
        let side = &mut self.sides[idx(node)];
        let layer = &mut self.sim.node_mut(node).layer;
        match output {
            CallOutput::SendRequest {
                handle,
                mut request,
            } => {
                let via = format!("SIP/2.0/UDP {host};branch={}", new_branch(&mut side.rng));
                request.headers.push_front(HeaderName::Via, via);
                let tx = layer.send_request(now, request, peer, reliable).unwrap();
                if let Some(call) = side.call.as_mut() {
                    call.request_sent(handle, tx);
                }
            }
            CallOutput::SendCancel { invite } => {
                if let Some(invite) = layer.request(invite).cloned() {
                    let cancel = cancel_request(&invite).unwrap();
                    layer.send_request(now, cancel, peer, reliable).unwrap();
                }
            }
            CallOutput::SendResponse { tx, response } => {
                match layer.send_response(now, tx, response.clone()) {
                    Ok(()) => {}
                    Err(TransactionError::UnknownTransaction)
                        if (200..300).contains(&response.status) =>
                    {
                        layer.send_stateless(peer, reliable, Message::Response(response));
                    }
                    Err(e) => side.errors.push(format!("{} {e}", response.status)),
                }
            }
            CallOutput::SendAck(mut ack) => {
                let via = format!("SIP/2.0/UDP {host};branch={}", new_branch(&mut side.rng));
                ack.headers.push_front(HeaderName::Via, via);
                layer.send_stateless(peer, reliable, Message::Request(ack));
            }
            CallOutput::Event(event) => {
                let elapsed = now - self.sim.start;
                let reactions = (side.on_event)(&event);
                side.events.push((elapsed, event));
                for (after, action) in reactions {
                    self.script.push((now + after, node, action));
                }
            }
        }
    }

    /// Requests `from` sent with `method`, in order.
    fn requests(&self, from: Node, method: Method) -> Vec<(Duration, Request)> {
        self.sim
            .sent_by(from, method, None)
            .into_iter()
            .filter_map(|s| match &s.message {
                Message::Request(r) => Some((s.at - self.sim.start, r.clone())),
                Message::Response(_) => None,
            })
            .collect()
    }

    fn assert_clean(&self) {
        for node in [Node::A, Node::B] {
            assert!(
                self.side(node).errors.is_empty(),
                "{node:?}: {:?}",
                self.side(node).errors
            );
        }
    }
}

impl Side {
    fn rng_u64(&mut self) -> u64 {
        use rand::RngCore;
        self.rng.next_u64()
    }
}

fn is_ended(e: &CallEvent) -> bool {
    matches!(e, CallEvent::Ended { .. })
}

fn links() -> Vec<(&'static str, Link)> {
    vec![
        ("lossless", Link::udp(ms(30))),
        ("30% loss", Link::lossy(0.3, ms(40), ms(30))),
        ("tcp", Link::reliable(ms(30))),
    ]
}

/// A basic call from A to B: ring, answer after a second; returns the harness once both
/// sides are confirmed.
fn established(seed: u64, link: Link) -> Harness {
    let mut h = Harness::new(seed, link);
    h.side_mut(Node::B).on_incoming = ring_then_answer(secs(1));
    h.dial(b"offer-A");
    for _ in 0..60 {
        h.run_for(secs(1));
        let confirmed = |n| h.side(n).call.as_ref().map(Call::state) == Some(CallState::Confirmed);
        if confirmed(Node::A) && confirmed(Node::B) {
            break;
        }
    }
    assert_eq!(h.call(Node::A).state(), CallState::Confirmed, "seed {seed}");
    assert_eq!(h.call(Node::B).state(), CallState::Confirmed, "seed {seed}");
    h
}

#[test]
fn basic_call_then_caller_hangs_up() {
    for (name, link) in links() {
        for seed in 0..5 {
            let mut h = established(seed, link.clone());
            assert_eq!(
                h.events(Node::A)[..],
                [
                    CallEvent::Ringing,
                    CallEvent::Answered {
                        sdp: Some(b"answer-B".to_vec())
                    },
                    CallEvent::Confirmed,
                ],
                "{name} seed {seed}"
            );
            assert_eq!(
                h.events(Node::B),
                vec![CallEvent::Confirmed],
                "{name} seed {seed}"
            );
            assert_eq!(h.call(Node::B).remote_sdp(), Some(&b"offer-A"[..]));
            h.at(Duration::ZERO, Node::A, |now, c| c.hangup(now).unwrap());
            h.run_until_idle(secs(120));
            assert_eq!(
                h.ended(Node::A),
                Some(EndReason::LocalHangup),
                "{name} seed {seed}"
            );
            assert_eq!(
                h.ended(Node::B),
                Some(EndReason::RemoteHangup),
                "{name} seed {seed}"
            );
            assert!(h.call(Node::A).is_terminated() && h.call(Node::B).is_terminated());
            // The INVITE's 2xx was answered by a stateless ACK, every retransmission too.
            let acks = h.requests(Node::A, Method::Ack);
            assert!(!acks.is_empty());
            let oks = h.sim.delivered_to(Node::A, Method::Invite, Some(200)).len();
            assert_eq!(
                acks.len(),
                oks,
                "{name} seed {seed}: one ACK per 2xx received"
            );
            h.assert_clean();
        }
    }
}

#[test]
fn basic_call_then_callee_hangs_up() {
    for (name, link) in links() {
        let mut h = established(7, link);
        h.at(secs(3), Node::B, |now, c| c.hangup(now).unwrap());
        h.run_until_idle(secs(120));
        assert_eq!(h.ended(Node::A), Some(EndReason::RemoteHangup), "{name}");
        assert_eq!(h.ended(Node::B), Some(EndReason::LocalHangup), "{name}");
        let bye = &h.requests(Node::B, Method::Bye)[0].1;
        // The callee's BYE goes to the caller's Contact, with the tags swapped.
        assert_eq!(bye.uri.to_string(), "sip:alice@192.0.2.1:5060");
        assert_eq!(
            bye.headers.to().unwrap().tag(),
            Some(h.call(Node::A).local_tag())
        );
        h.assert_clean();
    }
}

#[test]
fn busy_callee_rejects_with_486() {
    for (name, link) in links() {
        let mut h = Harness::new(3, link);
        h.side_mut(Node::B).on_incoming = Box::new(|_| {
            Incoming::Accept(vec![
                (Duration::ZERO, act(|now, c| c.ring(now).unwrap())),
                (ms(500), act(|now, c| c.reject(now, 486).unwrap())),
            ])
        });
        h.dial(b"offer-A");
        h.run_until_idle(secs(120));
        assert_eq!(
            h.ended(Node::A),
            Some(EndReason::Rejected {
                status: 486,
                reason: "Busy Here".into()
            }),
            "{name}"
        );
        assert_eq!(
            h.ended(Node::B),
            Some(EndReason::RejectedLocally { status: 486 })
        );
        // The transaction layer ACKed the 486 (same branch as the INVITE).
        assert!(!h.requests(Node::A, Method::Ack).is_empty());
        assert!(h.call(Node::A).is_terminated() && h.call(Node::B).is_terminated());
        h.assert_clean();
    }
}

#[test]
fn cancel_while_ringing_gets_200_and_487() {
    for (name, link) in links() {
        for seed in 0..5 {
            let mut h = Harness::new(seed, link.clone());
            h.side_mut(Node::B).on_incoming = ring_then_answer(secs(60));
            h.dial(b"offer-A");
            h.at(secs(2), Node::A, |now, c| c.cancel(now).unwrap());
            h.run_until_idle(secs(120));
            assert_eq!(
                h.ended(Node::A),
                Some(EndReason::Cancelled),
                "{name} seed {seed}"
            );
            assert_eq!(
                h.ended(Node::B),
                Some(EndReason::Cancelled),
                "{name} seed {seed}"
            );
            assert!(!h.sim.sent_by(Node::B, Method::Cancel, Some(200)).is_empty());
            assert!(!h.sim.sent_by(Node::B, Method::Invite, Some(487)).is_empty());
            assert!(h.sim.sent_by(Node::B, Method::Invite, Some(200)).is_empty());
            assert!(h.call(Node::A).is_terminated() && h.call(Node::B).is_terminated());
            h.assert_clean();
        }
    }
}

#[test]
fn cancel_waits_for_a_provisional_response() {
    // §9.1: a CANCEL may only go out once a provisional arrived. B stays silent, so the
    // IST's own 100 Trying (after 200 ms) is the first provisional.
    let mut h = Harness::new(1, Link::udp(ms(30)));
    h.side_mut(Node::B).on_incoming = Box::new(|_| Incoming::Accept(vec![]));
    h.dial(b"offer-A");
    h.at(ms(10), Node::A, |now, c| c.cancel(now).unwrap());
    h.run_until_idle(secs(120));
    let trying_at = h.sim.delivered_to(Node::A, Method::Invite, Some(100))[0].at - h.sim.start;
    let cancel_at = h.requests(Node::A, Method::Cancel)[0].0;
    // The INVITE arrives at 30 ms, the IST sends 100 Trying 200 ms later, 30 ms on the way.
    assert_eq!(trying_at, ms(260));
    assert_eq!(cancel_at, trying_at);
    assert_eq!(h.when(Node::A, is_ended), Some(ms(10)), "Ended at once");
    assert_eq!(h.ended(Node::B), Some(EndReason::Cancelled));
    assert!(h.call(Node::A).is_terminated());
}

#[test]
fn cancel_crossing_the_200_is_acked_then_byed() {
    // B answers and A cancels at the same virtual instant: the 200 and the CANCEL cross.
    // A must ACK the 200 and send BYE; B answers the CANCEL with 200 and no 487.
    for (name, link) in links() {
        for seed in 0..5 {
            let mut h = Harness::new(seed, link.clone());
            h.side_mut(Node::B).on_incoming = Box::new(|_| {
                Incoming::Accept(vec![(Duration::ZERO, act(|now, c| c.ring(now).unwrap()))])
            });
            h.dial(b"offer-A");
            h.run_for(secs(2));
            h.at(Duration::ZERO, Node::B, |now, c| {
                c.answer(now, b"answer-B".to_vec()).unwrap()
            });
            h.at(Duration::ZERO, Node::A, |now, c| c.cancel(now).unwrap());
            h.run_until_idle(secs(120));
            let ctx = format!("{name} seed {seed}");
            assert_eq!(h.ended(Node::A), Some(EndReason::Cancelled), "{ctx}");
            assert!(!h.sim.sent_by(Node::B, Method::Cancel, Some(200)).is_empty());
            let answered = !h.sim.sent_by(Node::B, Method::Invite, Some(200)).is_empty();
            if name == "30% loss" && !answered {
                // A lost PRACK held the 2xx back (RFC 3262 §3) until the CANCEL won.
                assert_eq!(h.ended(Node::B), Some(EndReason::Cancelled), "{ctx}");
                assert!(!h.sim.sent_by(Node::B, Method::Invite, Some(487)).is_empty());
            } else {
                assert!(answered, "{ctx}");
                assert_eq!(h.ended(Node::B), Some(EndReason::RemoteHangup), "{ctx}");
                assert!(!h.requests(Node::A, Method::Ack).is_empty(), "{ctx}");
                assert!(!h.requests(Node::A, Method::Bye).is_empty(), "{ctx}");
                assert!(h.sim.sent_by(Node::B, Method::Invite, Some(487)).is_empty());
            }
            // Without loss the ACK arrives before the BYE (with loss the BYE may overtake it).
            if name != "30% loss" {
                assert!(h.events(Node::B).contains(&CallEvent::Confirmed), "{ctx}");
            }
            assert!(!h.events(Node::A).contains(&CallEvent::Confirmed));
            assert!(h.call(Node::A).is_terminated() && h.call(Node::B).is_terminated());
            h.assert_clean();
        }
    }
}

#[test]
fn early_media_in_183_without_100rel() {
    let mut h = Harness::new(2, Link::udp(ms(30)));
    h.side_mut(Node::B).config.supports_100rel = false;
    h.side_mut(Node::B).on_incoming = Box::new(|_| {
        Incoming::Accept(vec![
            (
                Duration::ZERO,
                act(|now, c| c.progress(now, b"early-B".to_vec()).unwrap()),
            ),
            (
                secs(3),
                act(|now, c| c.answer(now, b"answer-B".to_vec()).unwrap()),
            ),
        ])
    });
    h.dial(b"offer-A");
    h.run_for(secs(10));
    assert_eq!(
        h.events(Node::A),
        vec![
            CallEvent::EarlyMedia {
                sdp: b"early-B".to_vec()
            },
            CallEvent::Answered {
                sdp: Some(b"answer-B".to_vec())
            },
            CallEvent::Confirmed,
        ]
    );
    assert_eq!(
        h.when(Node::A, |e| matches!(e, CallEvent::EarlyMedia { .. })),
        Some(ms(60))
    );
    assert!(h.requests(Node::A, Method::Prack).is_empty());
    let provisional = h.sim.delivered_to(Node::A, Method::Invite, Some(183));
    let Message::Response(r) = &provisional[0].message else {
        panic!()
    };
    assert!(!r.headers.contains(&HeaderName::from("RSeq")));
    h.assert_clean();
}

#[test]
fn reliable_provisionals_are_pracked_in_order() {
    // 180 and 183 (with the early answer) are reliable; the 183 waits for the PRACK of the
    // 180 and the 2xx waits for the PRACK of the 183 (RFC 3262 §3). Under loss the UAS
    // retransmits them and the UAC PRACKs each RSeq once.
    let mut retransmitted = 0;
    for (name, link) in links() {
        for seed in 0..SEEDS {
            let mut h = Harness::new(seed, link.clone());
            h.side_mut(Node::B).on_incoming = Box::new(|_| {
                Incoming::Accept(vec![(
                    Duration::ZERO,
                    act(|now, c| {
                        c.ring(now).unwrap();
                        c.progress(now, b"early-B".to_vec()).unwrap();
                        c.answer(now, b"answer-B".to_vec()).unwrap();
                    }),
                )])
            });
            h.dial(b"offer-A");
            h.run_for(secs(40));
            let ctx = format!("{name} seed {seed}");
            assert_eq!(
                h.events(Node::A),
                vec![
                    CallEvent::Ringing,
                    CallEvent::EarlyMedia {
                        sdp: b"early-B".to_vec()
                    },
                    CallEvent::Answered { sdp: None },
                    CallEvent::Confirmed,
                ],
                "{ctx}"
            );
            assert_eq!(h.call(Node::B).state(), CallState::Confirmed, "{ctx}");
            // One PRACK transaction (CSeq) per reliable provisional, whatever the loss.
            let pracks: std::collections::BTreeMap<u32, String> = h
                .requests(Node::A, Method::Prack)
                .iter()
                .map(|(_, r)| {
                    let rack = r
                        .headers
                        .get(&HeaderName::from("RAck"))
                        .unwrap()
                        .to_string();
                    (r.headers.cseq().unwrap().seq, rack)
                })
                .collect();
            let racks: Vec<String> = pracks.into_values().collect();
            assert_eq!(racks.len(), 2, "{ctx}: {racks:?}");
            let rseq = |s: &str| s.split(' ').next().unwrap().parse::<u32>().unwrap();
            assert_eq!(rseq(&racks[1]), rseq(&racks[0]) + 1, "{ctx}");
            let invite_cseq = h.requests(Node::A, Method::Invite)[0]
                .1
                .headers
                .cseq()
                .unwrap()
                .seq;
            assert!(
                racks[0].ends_with(&format!(" {invite_cseq} INVITE")),
                "{ctx}"
            );
            // Order on the wire: the 183 only after the first PRACK arrived, the 200 only after
            // the second.
            let prack_arrivals = h.sim.delivered_to(Node::B, Method::Prack, None);
            let first_183 = h.sim.sent_by(Node::B, Method::Invite, Some(183))[0].at;
            let first_200 = h.sim.sent_by(Node::B, Method::Invite, Some(200))[0].at;
            assert!(prack_arrivals[0].at <= first_183, "{ctx}");
            assert!(prack_arrivals.iter().any(|p| p.at <= first_200), "{ctx}");
            let sent_180 = h.sim.sent_by(Node::B, Method::Invite, Some(180)).len();
            retransmitted += sent_180 - 1;
            h.assert_clean();
        }
    }
    assert!(
        retransmitted > 0,
        "loss never made the UAS retransmit a reliable 180"
    );
}

#[test]
fn hold_and_resume_with_reinvite() {
    for (name, link) in links() {
        let mut h = established(11, link);
        h.side_mut(Node::B).on_event = Box::new(|event| match event {
            CallEvent::RemoteOffer { sdp } => {
                let answer = match &sdp[..] {
                    b"a=sendonly" => b"a=recvonly".to_vec(),
                    _ => b"a=sendrecv".to_vec(),
                };
                vec![(
                    ms(10),
                    act(move |now, c| c.accept_offer(now, answer).unwrap()),
                )]
            }
            _ => vec![],
        });
        h.at(secs(1), Node::A, |now, c| {
            c.hold(now, b"a=sendonly".to_vec()).unwrap()
        });
        h.at(secs(20), Node::A, |now, c| {
            c.resume(now, b"a=sendrecv".to_vec()).unwrap()
        });
        h.run_for(secs(60));
        let offers: Vec<_> = h
            .events(Node::B)
            .into_iter()
            .filter_map(|e| match e {
                CallEvent::RemoteOffer { sdp } => Some(sdp),
                _ => None,
            })
            .collect();
        assert_eq!(
            offers,
            vec![b"a=sendonly".to_vec(), b"a=sendrecv".to_vec()],
            "{name}"
        );
        let a_events: Vec<_> = h
            .events(Node::A)
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    CallEvent::RemoteAnswer { .. } | CallEvent::HoldChanged { .. }
                )
            })
            .collect();
        assert_eq!(
            a_events,
            vec![
                CallEvent::RemoteAnswer {
                    sdp: b"a=recvonly".to_vec()
                },
                CallEvent::HoldChanged { local_hold: true },
                CallEvent::RemoteAnswer {
                    sdp: b"a=sendrecv".to_vec()
                },
                CallEvent::HoldChanged { local_hold: false },
            ],
            "{name}"
        );
        // Both re-INVITEs are in the dialog, and their 2xx were ACKed.
        let invites = h.requests(Node::A, Method::Invite);
        let reinvites: Vec<_> = invites
            .iter()
            .filter(|(_, r)| r.headers.to().unwrap().tag().is_some())
            .collect();
        assert!(reinvites.len() >= 2, "{name}");
        assert_eq!(h.call(Node::A).state(), CallState::Confirmed);
        assert_eq!(h.call(Node::B).state(), CallState::Confirmed);
        assert_eq!(
            h.call(Node::B).poll_timeout(),
            None,
            "{name}: no 2xx left unacked"
        );
        assert_eq!(h.call(Node::B).remote_sdp(), Some(&b"a=sendrecv"[..]));
        h.assert_clean();
    }
}

#[test]
fn reinvite_without_offer_gets_the_answer_in_the_ack() {
    for (name, link) in links() {
        let mut h = established(12, link);
        h.at(secs(1), Node::A, |now, c| c.reinvite(now, None).unwrap());
        h.run_for(secs(40));
        assert!(
            h.events(Node::B).contains(&CallEvent::OfferRequested),
            "{name}"
        );
        assert!(
            h.events(Node::A).contains(&CallEvent::RemoteOffer {
                sdp: b"late-offer-from-B".to_vec()
            }),
            "{name}"
        );
        assert!(
            h.events(Node::B).contains(&CallEvent::RemoteAnswer {
                sdp: b"answer-to:late-offer-from-B".to_vec()
            }),
            "{name}"
        );
        let ack = h
            .sim
            .delivered_to(Node::B, Method::Ack, None)
            .into_iter()
            .find(|d| !d.message.body().is_empty())
            .expect("an ACK with the answer");
        assert_eq!(ack.message.body(), b"answer-to:late-offer-from-B");
        assert_eq!(h.call(Node::A).state(), CallState::Confirmed);
        h.assert_clean();
    }
}

#[test]
fn glare_both_get_491_and_retry_in_their_windows() {
    for seed in 0..SEEDS {
        let mut h = established(seed, Link::udp(ms(30)));
        let t0 = h.sim.now;
        h.at(secs(1), Node::A, |now, c| {
            c.reinvite(now, Some(b"offer-A2".to_vec())).unwrap()
        });
        h.at(secs(1), Node::B, |now, c| {
            c.reinvite(now, Some(b"offer-B2".to_vec())).unwrap()
        });
        h.run_for(secs(30));
        let ctx = format!("seed {seed}");
        // Both re-INVITEs crossed and were refused.
        let got_491 = |node: Node| h.sim.delivered_to(node, Method::Invite, Some(491));
        assert_eq!(got_491(Node::A).len(), 1, "{ctx}");
        assert_eq!(got_491(Node::B).len(), 1, "{ctx}");
        let retry = |node: Node| {
            let refused = got_491(node)[0].at;
            let invites: Vec<Instant> = h
                .sim
                .sent_by(node, Method::Invite, None)
                .into_iter()
                .map(|s| s.at)
                .filter(|at| *at > t0 && *at >= refused)
                .collect();
            invites[0] - refused
        };
        // §14.1: the Call-ID owner (the caller) waits 2.1-4 s, the other side 0-2 s.
        let a = retry(Node::A);
        let b = retry(Node::B);
        assert!(
            (ms(2100)..=ms(4000)).contains(&a),
            "{ctx}: A retried after {a:?}"
        );
        assert!(b <= ms(2000), "{ctx}: B retried after {b:?}");
        // Both offers went through in the end.
        assert!(
            h.events(Node::A).contains(&CallEvent::RemoteAnswer {
                sdp: b"answer-to:offer-A2".to_vec()
            }),
            "{ctx}"
        );
        assert!(
            h.events(Node::B).contains(&CallEvent::RemoteAnswer {
                sdp: b"answer-to:offer-B2".to_vec()
            }),
            "{ctx}"
        );
        assert_eq!(h.call(Node::A).state(), CallState::Confirmed);
        assert_eq!(h.call(Node::B).state(), CallState::Confirmed);
        h.assert_clean();
    }
}

/// A call with Session-Expires 90 requested by A (B lets A refresh).
fn timed_call(seed: u64, link: Link, refresh_with_update: bool) -> Harness {
    let mut h = Harness::new(seed, link);
    h.side_mut(Node::A).config.session_expires = Some(90);
    h.side_mut(Node::A).config.refresh_with_update = refresh_with_update;
    h.side_mut(Node::B).on_incoming = ring_then_answer(secs(1));
    h.dial(b"offer-A");
    h.run_for(secs(5));
    assert_eq!(h.call(Node::A).session_timer(), Some((90, true)));
    assert_eq!(h.call(Node::B).session_timer(), Some((90, false)));
    h
}

#[test]
fn session_timer_refreshes_keep_the_call_up_for_ten_minutes() {
    for (name, link) in links() {
        for update in [true, false] {
            let ctx = format!("{name} update={update}");
            let mut h = timed_call(21, link.clone(), update);
            h.run_for(secs(600));
            assert_eq!(h.call(Node::A).state(), CallState::Confirmed, "{ctx}");
            assert_eq!(h.call(Node::B).state(), CallState::Confirmed, "{ctx}");
            assert_eq!(h.ended(Node::A), None, "{ctx}");
            assert_eq!(h.ended(Node::B), None, "{ctx}");
            let method = if update {
                Method::Update
            } else {
                Method::Invite
            };
            let mut refreshes: Vec<u32> = h
                .requests(Node::A, method)
                .iter()
                .filter(|(_, r)| r.headers.to().unwrap().tag().is_some())
                .map(|(_, r)| r.headers.cseq().unwrap().seq)
                .collect();
            refreshes.dedup();
            // One every 45 s: 600 / 45.
            assert!(
                (12..=14).contains(&refreshes.len()),
                "{ctx}: {}",
                refreshes.len()
            );
            let refreshed = h.count(Node::B, |e| matches!(e, CallEvent::SessionRefreshed { .. }));
            assert!(refreshed >= 13, "{ctx}: {refreshed}");
            // Refreshes repeat the session: the callee's TU is never asked.
            assert_eq!(
                h.count(Node::B, |e| matches!(e, CallEvent::RemoteOffer { .. })),
                0
            );
            if !update {
                assert_eq!(h.requests(Node::A, Method::Invite)[1].1.body, b"offer-A");
            }
            h.assert_clean();
        }
    }
}

#[test]
fn silent_refresher_gets_a_bye_when_the_session_expires() {
    let mut h = timed_call(22, Link::udp(ms(30)), true);
    h.run_for(secs(600));
    let last_refresh = h
        .requests(Node::A, Method::Update)
        .last()
        .map(|(t, _)| *t)
        .unwrap();
    // A goes silent: nothing it sends arrives any more.
    h.sim.node_mut(Node::A).link = Link::black_hole();
    h.run_for(secs(180));
    assert_eq!(h.ended(Node::B), Some(EndReason::SessionExpired));
    let expired = h.when(Node::B, is_ended).unwrap();
    // RFC 4028 §10: the non-refresher sends its BYE at interval - min(32, interval/3) = 60 s
    // after the last refresh (it arrived 30 ms after it was sent).
    assert_eq!(expired, last_refresh + ms(30) + secs(60));
    let bye = &h.requests(Node::B, Method::Bye);
    assert_eq!(bye[0].0, expired);
    // The BYE still reaches A, which hangs up too.
    assert_eq!(h.ended(Node::A), Some(EndReason::RemoteHangup));
    assert!(h.call(Node::A).is_terminated());
    assert!(h.call(Node::B).is_terminated(), "B's BYE timed out");
}

#[test]
fn redirect_is_followed_with_the_same_call_id_and_from_tag() {
    let mut h = Harness::new(5, Link::udp(ms(30)));
    h.side_mut(Node::B).on_incoming = Box::new(|request| {
        if request.uri.to_string() == "sip:bob@biloxi.example.com" {
            let mut r = Response::to_request(request, 302);
            let to = format!(
                "{};tag=redirect1",
                request.headers.get(&HeaderName::To).unwrap()
            );
            r.headers.set(HeaderName::To, to);
            r.headers
                .push(HeaderName::Contact, "<sip:bob@mobile.biloxi.example.com>");
            Incoming::Respond(r)
        } else {
            ring_then_answer(secs(1))(request)
        }
    });
    h.dial(b"offer-A");
    h.run_for(secs(10));
    let invites = h.requests(Node::A, Method::Invite);
    let (first, second) = (&invites[0].1, &invites.last().unwrap().1);
    assert_eq!(second.uri.to_string(), "sip:bob@mobile.biloxi.example.com");
    assert_eq!(
        second.headers.call_id().unwrap(),
        first.headers.call_id().unwrap()
    );
    assert_eq!(
        second.headers.from().unwrap().tag(),
        first.headers.from().unwrap().tag()
    );
    assert_eq!(second.headers.to().unwrap().tag(), None);
    assert_eq!(
        second.headers.cseq().unwrap().seq,
        first.headers.cseq().unwrap().seq + 1
    );
    assert_eq!(
        h.events(Node::A)[0],
        CallEvent::Redirected {
            target: uri("bob", "mobile.biloxi.example.com")
        }
    );
    assert_eq!(h.call(Node::A).state(), CallState::Confirmed);
    assert_eq!(h.call(Node::B).state(), CallState::Confirmed);
    h.assert_clean();
}

#[test]
fn redirect_loop_stops_after_five() {
    let mut h = Harness::new(6, Link::udp(ms(30)));
    h.side_mut(Node::B).on_incoming = Box::new(|request| {
        let mut r = Response::to_request(request, 302);
        let to = format!("{};tag=loop", request.headers.get(&HeaderName::To).unwrap());
        r.headers.set(HeaderName::To, to);
        r.headers
            .push(HeaderName::Contact, "<sip:bob@elsewhere.example.com>");
        Incoming::Respond(r)
    });
    h.dial(b"offer-A");
    h.run_until_idle(secs(120));
    assert_eq!(h.ended(Node::A), Some(EndReason::TooManyRedirects));
    let invites: Vec<u32> = h
        .requests(Node::A, Method::Invite)
        .iter()
        .map(|(_, r)| r.headers.cseq().unwrap().seq)
        .collect();
    assert_eq!(invites.len(), 6, "the original and five redirections");
}

const CHALLENGE: &str = r#"Digest realm="biloxi.example.com", nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", qop="auth", algorithm=MD5"#;

#[test]
fn challenged_invite_is_resent_with_credentials() {
    for (name, link) in links() {
        let mut h = Harness::new(8, link);
        h.side_mut(Node::A).config.credentials =
            CredentialStore::with_default(Credentials::with_password("alice", "wonderland"));
        h.side_mut(Node::B).on_incoming = Box::new(|request| {
            if request.headers.contains(&HeaderName::Authorization) {
                return ring_then_answer(secs(1))(request);
            }
            let mut r = Response::to_request(request, 401);
            let to = format!(
                "{};tag=auth1",
                request.headers.get(&HeaderName::To).unwrap()
            );
            r.headers.set(HeaderName::To, to);
            r.headers.push(HeaderName::WwwAuthenticate, CHALLENGE);
            Incoming::Respond(r)
        });
        h.dial(b"offer-A");
        h.run_for(secs(10));
        assert_eq!(h.call(Node::A).state(), CallState::Confirmed, "{name}");
        let invites = h.requests(Node::A, Method::Invite);
        let first = &invites[0].1;
        let second = &invites
            .iter()
            .find(|(_, r)| r.headers.contains(&HeaderName::Authorization))
            .unwrap()
            .1;
        assert_eq!(
            second.headers.call_id().unwrap(),
            first.headers.call_id().unwrap()
        );
        assert_eq!(
            second.headers.from().unwrap().tag(),
            first.headers.from().unwrap().tag()
        );
        assert_eq!(
            second.headers.cseq().unwrap().seq,
            first.headers.cseq().unwrap().seq + 1
        );
        // The credentials are right.
        let auth = second.headers.get(&HeaderName::Authorization).unwrap();
        let field = |name: &str| {
            let start = auth.find(&format!("{name}=")).unwrap() + name.len() + 1;
            auth[start..]
                .trim_start_matches('"')
                .split(['"', ','])
                .next()
                .unwrap()
                .to_string()
        };
        let expected = DigestResponse::compute(
            &Challenge::parse(CHALLENGE).unwrap(),
            &Credentials::with_password("alice", "wonderland"),
            "INVITE",
            &second.uri.to_string(),
            &second.body,
            u32::from_str_radix(&field("nc"), 16).unwrap(),
            &field("cnonce"),
        )
        .unwrap();
        assert_eq!(field("response"), expected.response, "{name}");
        assert_eq!(field("username"), "alice");
        // The ACK for the 2xx carries the INVITE's credentials (§22.1).
        let ack = h
            .requests(Node::A, Method::Ack)
            .into_iter()
            .find(|(_, r)| r.headers.to().unwrap().tag() != Some("auth1"))
            .unwrap()
            .1;
        assert_eq!(ack.headers.get(&HeaderName::Authorization), Some(auth));
        h.assert_clean();
    }
}

#[test]
fn two_hundred_is_retransmitted_until_the_ack_and_byed_without_one() {
    // B answers; A's ACKs never arrive. B resends the 2xx at T1, 2T1, 4T1... capped at T2
    // (§13.3.1.4), A re-ACKs every copy, and after 64·T1 B gives up with a BYE.
    let mut h = Harness::new(9, Link::udp(ms(30)));
    h.side_mut(Node::B).on_incoming = ring_then_answer(secs(1));
    h.dial(b"offer-A");
    h.run_for(ms(1010));
    // The 2xx left B at 1.03 s; cut A off before its ACK.
    h.sim.node_mut(Node::A).link = Link::black_hole();
    h.run_for(secs(60));
    let oks: Vec<Duration> = h
        .sim
        .sent_by(Node::B, Method::Invite, Some(200))
        .iter()
        .map(|s| s.at - h.sim.start)
        .collect();
    let first = oks[0];
    let offsets: Vec<Duration> = oks.iter().map(|t| *t - first).collect();
    let expected: Vec<Duration> = [
        0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
    ]
    .into_iter()
    .map(ms)
    .collect();
    assert_eq!(offsets, expected);
    assert_eq!(h.ended(Node::B), Some(EndReason::AckTimeout));
    assert_eq!(h.when(Node::B, is_ended), Some(first + secs(32)));
    assert_eq!(h.requests(Node::B, Method::Bye)[0].0, first + secs(32));
    // A acknowledged every copy it received, and hung up on B's BYE.
    let received = h.sim.delivered_to(Node::A, Method::Invite, Some(200)).len();
    assert_eq!(h.requests(Node::A, Method::Ack).len(), received);
    assert_eq!(h.ended(Node::A), Some(EndReason::RemoteHangup));
}

#[test]
fn two_hundred_retransmissions_stop_at_the_ack_under_30_percent_loss() {
    let mut resent = 0;
    for seed in 0..SEEDS {
        let mut h = established(seed, Link::lossy(0.3, ms(40), ms(30)));
        h.run_for(secs(40));
        let ctx = format!("seed {seed}");
        assert_eq!(h.call(Node::B).state(), CallState::Confirmed, "{ctx}");
        let invite_cseq = h.requests(Node::A, Method::Invite)[0]
            .1
            .headers
            .cseq()
            .unwrap()
            .seq;
        let acks = h.sim.delivered_to(Node::B, Method::Ack, None);
        let first_ack = acks
            .iter()
            .find(|d| d.message.headers().cseq().unwrap().seq == invite_cseq)
            .unwrap()
            .at;
        let oks = h.sim.sent_by(Node::B, Method::Invite, Some(200));
        assert!(
            oks.iter().all(|s| s.at <= first_ack),
            "{ctx}: 2xx resent after the ACK"
        );
        resent += oks.len() - 1;
        h.at(Duration::ZERO, Node::B, |now, c| c.hangup(now).unwrap());
        h.run_until_idle(secs(120));
        assert_eq!(h.ended(Node::A), Some(EndReason::RemoteHangup), "{ctx}");
        assert_eq!(h.ended(Node::B), Some(EndReason::LocalHangup), "{ctx}");
        h.assert_clean();
    }
    assert!(resent > 0, "loss never made the UAS retransmit its 2xx");
}

#[test]
fn dtmf_in_info_and_options_in_dialog() {
    for (name, link) in links() {
        let mut h = established(10, link);
        h.at(secs(1), Node::A, |now, c| {
            c.send_dtmf(now, '5', ms(160)).unwrap()
        });
        h.at(secs(2), Node::A, |now, c| {
            c.send_info(now, "application/dtmf", b"#".to_vec()).unwrap()
        });
        h.at(secs(3), Node::A, |now, c| c.send_options(now).unwrap());
        h.run_for(secs(40));
        let digits: Vec<_> = h
            .events(Node::B)
            .into_iter()
            .filter(|e| matches!(e, CallEvent::Dtmf { .. }))
            .collect();
        assert_eq!(
            digits,
            vec![
                CallEvent::Dtmf {
                    digit: '5',
                    duration: Some(ms(160))
                },
                CallEvent::Dtmf {
                    digit: '#',
                    duration: None
                },
            ],
            "{name}"
        );
        let info = &h.requests(Node::A, Method::Info)[0].1;
        assert_eq!(info.body, b"Signal=5\r\nDuration=160\r\n");
        assert_eq!(
            info.headers.get(&HeaderName::ContentType),
            Some("application/dtmf-relay")
        );
        assert!(!h.sim.sent_by(Node::B, Method::Info, Some(200)).is_empty());
        assert!(
            !h.sim
                .sent_by(Node::B, Method::Options, Some(200))
                .is_empty()
        );
        assert_eq!(h.ended(Node::A), None);
        h.assert_clean();
    }
}
