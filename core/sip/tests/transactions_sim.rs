//! RFC 3261 §17 / RFC 6026 transactions between two endpoints over a simulated network in
//! virtual time: seeded loss, latency and jitter; no sleeping, so the 32 s timers of these
//! tests run in milliseconds of real time.
#![allow(clippy::unwrap_used)]

#[path = "common/sim.rs"]
mod sim;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use handset_sip::message::{HeaderName, Message, Method, Request, Response};
use handset_sip::transaction::{
    IctState, IstState, TransactionEvent, TransactionId, TransactionState, cancel_request,
    new_branch,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use sim::{Link, Node, Sim};

const SEEDS: u64 = 20;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn branch(seed: u64) -> String {
    new_branch(&mut StdRng::seed_from_u64(seed))
}

fn request(method: &str, branch: &str) -> Request {
    let text = format!(
        "{method} sip:bob@biloxi.example.com SIP/2.0\r\n\
         Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch={branch}\r\n\
         Max-Forwards: 70\r\n\
         To: Bob <sip:bob@biloxi.example.com>\r\n\
         From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
         Call-ID: 3848276298220188511@atlanta.example.com\r\n\
         CSeq: 1 {method}\r\n\
         Contact: <sip:alice@client.atlanta.example.com>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match Message::parse(text.as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

/// A response with the UAS's To tag (none for 100).
fn answer(request: &Request, status: u16) -> Response {
    let mut r = Response::to_request(request, status);
    if status > 100 {
        let to = format!(
            "{};tag=uas-tag",
            request.headers.get(&HeaderName::To).unwrap()
        );
        r.headers.set(HeaderName::To, to);
    }
    r
}

/// A UAS that answers every new request at once: INVITE with `invite_status`, anything else
/// with 200.
fn answering_uas(sim: &mut Sim, invite_status: u16) {
    sim.set_tu(Node::B, move |now, event, layer| {
        if let TransactionEvent::NewRequest { id, request, .. } = event {
            let status = match request.method {
                Method::Invite => invite_status,
                _ => 200,
            };
            layer
                .send_response(now, *id, answer(request, status))
                .unwrap();
        }
    });
}

/// The events of `node`, without their times.
fn events(sim: &Sim, node: Node) -> Vec<TransactionEvent<Node>> {
    sim.node(node)
        .events
        .iter()
        .map(|(_, e)| e.clone())
        .collect()
}

fn statuses(sim: &Sim, node: Node, id: TransactionId) -> Vec<u16> {
    events(sim, node)
        .into_iter()
        .filter_map(|e| match e {
            TransactionEvent::Response { id: i, response } if i == id => Some(response.status),
            _ => None,
        })
        .collect()
}

fn new_requests(sim: &Sim, node: Node) -> usize {
    events(sim, node)
        .iter()
        .filter(|e| matches!(e, TransactionEvent::NewRequest { .. }))
        .count()
}

fn timeouts(sim: &Sim, node: Node) -> usize {
    events(sim, node)
        .iter()
        .filter(|e| matches!(e, TransactionEvent::Timeout { .. }))
        .count()
}

fn terminated_at(sim: &Sim, node: Node, id: TransactionId) -> Option<Duration> {
    sim.node(node).events.iter().find_map(|(at, e)| match e {
        TransactionEvent::Terminated { id: i } if *i == id => Some(*at - sim.start),
        _ => None,
    })
}

fn send(sim: &mut Sim, request: Request) -> TransactionId {
    let now = sim.now;
    let reliable = sim.node(Node::A).link.reliable;
    let id = sim
        .node_mut(Node::A)
        .layer
        .send_request(now, request, Node::B, reliable)
        .unwrap();
    sim.flush();
    id
}

/// Offsets from the start of `sends`.
fn offsets(sim: &Sim, sends: &[&sim::Sent]) -> Vec<Duration> {
    sends.iter().map(|s| s.at - sim.start).collect()
}

#[test]
fn timer_f_register_to_silent_peer_times_out_after_64_t1() {
    let mut sim = Sim::new(1, Link::black_hole());
    let id = send(&mut sim, request("REGISTER", &branch(1)));
    sim.run(Duration::from_secs(3600));

    let t = Duration::from_secs(32);
    assert_eq!(
        sim.node(Node::A).events,
        vec![
            (sim.start + t, TransactionEvent::Timeout { id }),
            (sim.start + t, TransactionEvent::Terminated { id }),
        ]
    );
    assert_eq!(sim.elapsed(), t);
    // Timer E: 500 ms, 1 s, 2 s, 4 s, 4 s...: the original plus 10 retransmissions.
    let sends = sim.sent_by(Node::A, Method::Register, None);
    let expected: Vec<Duration> = [
        0, 500, 1500, 3500, 7500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500,
    ]
    .into_iter()
    .map(ms)
    .collect();
    assert_eq!(offsets(&sim, &sends), expected);
    assert_eq!(sends.len() - 1, 10, "retransmissions");
    assert!(sim.node(Node::A).layer.is_empty());
}

#[test]
fn timer_b_invite_to_silent_peer_times_out_after_64_t1() {
    let mut sim = Sim::new(2, Link::black_hole());
    let id = send(&mut sim, request("INVITE", &branch(2)));
    sim.run(Duration::from_secs(3600));

    let t = Duration::from_secs(32);
    assert_eq!(
        sim.node(Node::A).events,
        vec![
            (sim.start + t, TransactionEvent::Timeout { id }),
            (sim.start + t, TransactionEvent::Terminated { id }),
        ]
    );
    // Timer A doubles without cap: the original plus 6 retransmissions.
    let sends = sim.sent_by(Node::A, Method::Invite, None);
    let expected: Vec<Duration> = [0, 500, 1500, 3500, 7500, 15_500, 31_500]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(offsets(&sim, &sends), expected);
    assert_eq!(sends.len() - 1, 6, "retransmissions");
}

#[test]
fn register_completes_over_30_percent_loss_for_every_seed() {
    let mut absorbed = 0;
    for seed in 0..SEEDS {
        let mut sim = Sim::new(seed, Link::lossy(0.3, ms(40), ms(30)));
        answering_uas(&mut sim, 486);
        let id = send(&mut sim, request("REGISTER", &branch(seed)));
        sim.run(Duration::from_secs(3600));

        assert_eq!(statuses(&sim, Node::A, id), vec![200], "seed {seed}");
        assert_eq!(timeouts(&sim, Node::A), 0, "seed {seed}");
        assert!(terminated_at(&sim, Node::A, id).is_some(), "seed {seed}");
        // The TU saw the request once, however many copies arrived...
        assert_eq!(new_requests(&sim, Node::B), 1, "seed {seed}");
        let arrivals = sim.delivered_to(Node::B, Method::Register, None).len();
        // ...and every copy was answered: by the TU, then by the NIST from Completed.
        let answers = sim.sent_by(Node::B, Method::Register, Some(200)).len();
        assert_eq!(answers, arrivals, "seed {seed}");
        absorbed += arrivals - 1;
        assert!(sim.node(Node::A).layer.is_empty() && sim.node(Node::B).layer.is_empty());
    }
    assert!(absorbed > 0, "loss never made the client retransmit");
}

#[test]
fn invite_486_over_30_percent_loss_is_acked_and_stops_timer_g() {
    for seed in 0..SEEDS {
        let mut sim = Sim::new(seed, Link::lossy(0.3, ms(40), ms(30)));
        answering_uas(&mut sim, 486);
        let id = send(&mut sim, request("INVITE", &branch(100 + seed)));
        sim.run(Duration::from_secs(3600));

        assert_eq!(statuses(&sim, Node::A, id), vec![486], "seed {seed}");
        // One ACK for every 486 that reached the client, all equal.
        let arrivals = sim.delivered_to(Node::A, Method::Invite, Some(486));
        let acks = sim.sent_by(Node::A, Method::Ack, None);
        assert_eq!(acks.len(), arrivals.len(), "seed {seed}");
        assert!(acks.windows(2).all(|w| w[0].message == w[1].message));
        // Timer D runs from the first 486.
        assert_eq!(
            terminated_at(&sim, Node::A, id),
            Some(arrivals[0].at - sim.start + Duration::from_secs(32)),
            "seed {seed}"
        );
        // The server stopped retransmitting once the ACK arrived, and never timed out.
        let first_ack = sim.delivered_to(Node::B, Method::Ack, None)[0].at;
        let finals = sim.sent_by(Node::B, Method::Invite, Some(486));
        assert!(finals.iter().all(|s| s.at <= first_ack), "seed {seed}");
        assert_eq!(timeouts(&sim, Node::B), 0, "seed {seed}");
        assert_eq!(new_requests(&sim, Node::B), 1, "seed {seed}");
        // Timer I runs from the first ACK.
        let server_end = sim.node(Node::B).events.last().unwrap();
        assert!(matches!(server_end.1, TransactionEvent::Terminated { .. }));
        assert_eq!(server_end.0, first_ack + Duration::from_secs(5));
    }
}

#[test]
fn reliable_transport_never_retransmits() {
    // A silent peer: one REGISTER, then Timer F still ends it.
    let mut sim = Sim::new(3, Link::reliable(ms(30)));
    let id = send(&mut sim, request("REGISTER", &branch(3)));
    sim.run(Duration::from_secs(3600));
    assert_eq!(sim.sent.len(), 1);
    assert_eq!(
        events(&sim, Node::A),
        vec![
            TransactionEvent::Timeout { id },
            TransactionEvent::Terminated { id }
        ]
    );
    assert_eq!(sim.elapsed(), Duration::from_secs(32));

    // INVITE / 486 / ACK: three messages; Timers D and I are zero.
    let mut sim = Sim::new(4, Link::reliable(ms(30)));
    answering_uas(&mut sim, 486);
    let id = send(&mut sim, request("INVITE", &branch(4)));
    sim.run(Duration::from_secs(3600));
    let methods: Vec<String> = sim
        .sent
        .iter()
        .map(|s| match &s.message {
            Message::Request(r) => r.method.to_string(),
            Message::Response(r) => r.status.to_string(),
        })
        .collect();
    assert_eq!(methods, vec!["INVITE", "486", "ACK"]);
    assert_eq!(terminated_at(&sim, Node::A, id), Some(ms(60)));
    assert_eq!(sim.elapsed(), ms(90), "the IST ended when the ACK arrived");

    // REGISTER / 200: Timers J and K are zero.
    let mut sim = Sim::new(5, Link::reliable(ms(30)));
    answering_uas(&mut sim, 486);
    let id = send(&mut sim, request("REGISTER", &branch(5)));
    sim.run(Duration::from_secs(3600));
    assert_eq!(sim.sent.len(), 2);
    assert_eq!(terminated_at(&sim, Node::A, id), Some(ms(60)));
    assert!(sim.sent.iter().all(|s| !s.lost));
}

#[test]
fn retransmitted_request_is_absorbed_by_the_server_transaction() {
    let mut sim = Sim::new(6, Link::udp(ms(50)));
    let server_tx = Rc::new(RefCell::new(None));
    let seen = server_tx.clone();
    sim.set_tu(Node::B, move |_, event, _| {
        if let TransactionEvent::NewRequest { id, request, .. } = event {
            *seen.borrow_mut() = Some((*id, request.clone()));
        }
    });
    let id = send(&mut sim, request("REGISTER", &branch(6)));

    // The TU is slow: the client retransmits at 0.5 s and 1.5 s.
    sim.run_until(sim.start + ms(2000));
    assert_eq!(sim.delivered_to(Node::B, Method::Register, None).len(), 3);
    assert_eq!(new_requests(&sim, Node::B), 1);
    assert!(sim.sent_by(Node::B, Method::Register, Some(100)).is_empty());

    // A provisional; the next retransmission (3.5 s) gets it again from the NIST.
    let (server, req) = server_tx.borrow().clone().unwrap();
    let now = sim.now;
    let layer = &mut sim.node_mut(Node::B).layer;
    layer.send_response(now, server, answer(&req, 100)).unwrap();
    sim.run_until(sim.start + ms(5000));
    assert_eq!(sim.sent_by(Node::B, Method::Register, Some(100)).len(), 2);

    // The final: the client completes; the TU still saw one request.
    let now = sim.now;
    let layer = &mut sim.node_mut(Node::B).layer;
    layer.send_response(now, server, answer(&req, 200)).unwrap();
    sim.run(Duration::from_secs(3600));
    assert_eq!(sim.delivered_to(Node::B, Method::Register, None).len(), 4);
    assert_eq!(new_requests(&sim, Node::B), 1);
    assert_eq!(statuses(&sim, Node::A, id), vec![100, 100, 200]);
    assert_eq!(sim.sent_by(Node::B, Method::Register, Some(200)).len(), 1);
}

#[test]
fn two_hundred_to_invite_follows_rfc_6026() {
    let mut sim = Sim::new(7, Link::udp(ms(50)));
    let server_tx = Rc::new(RefCell::new(None));
    let seen = server_tx.clone();
    sim.set_tu(Node::B, move |now, event, layer| {
        if let TransactionEvent::NewRequest { id, request, .. } = event {
            *seen.borrow_mut() = Some((*id, request.clone()));
            layer.send_response(now, *id, answer(request, 180)).unwrap();
            layer.send_response(now, *id, answer(request, 200)).unwrap();
        }
    });
    let invite = request("INVITE", &branch(7));
    let id = send(&mut sim, invite.clone());
    sim.run_until(sim.start + ms(1000));
    let (server, _) = server_tx.borrow().clone().unwrap();
    assert_eq!(
        sim.node(Node::A).layer.state(id),
        Some(TransactionState::Ict(IctState::Accepted))
    );
    assert_eq!(
        sim.node(Node::B).layer.state(server),
        Some(TransactionState::Ist(IstState::Accepted))
    );
    assert_eq!(statuses(&sim, Node::A, id), vec![180, 200]);

    // The UAS core retransmits its 2xx through the transaction; the client passes it up.
    let now = sim.now;
    let ok = answer(&invite, 200);
    sim.node_mut(Node::B)
        .layer
        .send_response(now, server, ok.clone())
        .unwrap();
    sim.run_until(sim.start + ms(2000));
    assert_eq!(statuses(&sim, Node::A, id), vec![180, 200, 200]);

    // A late INVITE retransmission is absorbed by the server in Accepted.
    let sent_before = sim.sent.len();
    sim.inject(Node::A, invite.clone().into());
    sim.run_until(sim.start + ms(3000));
    assert_eq!(sim.sent.len(), sent_before + 1, "only the injected INVITE");
    assert_eq!(new_requests(&sim, Node::B), 1);

    // The ACK for the 2xx is the TU's, with a new branch: the server passes it up.
    let mut ack = request("ACK", &branch(70));
    ack.headers
        .set(HeaderName::To, ok.headers.get(&HeaderName::To).unwrap());
    sim.node_mut(Node::A)
        .layer
        .send_stateless(Node::B, false, ack.clone().into());
    sim.run_until(sim.start + ms(4000));
    assert!(events(&sim, Node::B).contains(&TransactionEvent::StrayAck {
        request: ack,
        from: Node::A
    }));
    assert_eq!(
        sim.sent_by(Node::A, Method::Ack, None).len(),
        1,
        "no ACK from the ICT"
    );

    // Timers M and L: 64*T1 after the first 2xx was received / sent.
    sim.run(Duration::from_secs(3600));
    assert_eq!(terminated_at(&sim, Node::A, id), Some(ms(100 + 32_000)));
    assert_eq!(terminated_at(&sim, Node::B, server), Some(ms(50 + 32_000)));

    // After Timer M a 2xx retransmission matches nothing: passed up as stray.
    sim.node_mut(Node::B)
        .layer
        .send_stateless(Node::A, false, ok.clone().into());
    sim.run(Duration::from_secs(3600));
    assert!(matches!(
        events(&sim, Node::A).last(),
        Some(TransactionEvent::StrayResponse { response, from: Node::B })
            if response.to_bytes() == ok.to_bytes()
    ));
}

#[test]
fn provisional_overtaken_by_the_final_is_ignored() {
    for (method, provisional, final_status) in [("INVITE", 180, 486), ("REGISTER", 100, 200)] {
        let mut sim = Sim::new(8, Link::udp(ms(20)));
        // The provisional is slow, the final fast: the final arrives first.
        sim.node_mut(Node::B).link.scripted = [ms(300), ms(20)].into();
        sim.set_tu(Node::B, move |now, event, layer| {
            if let TransactionEvent::NewRequest { id, request, .. } = event {
                layer
                    .send_response(now, *id, answer(request, provisional))
                    .unwrap();
                layer
                    .send_response(now, *id, answer(request, final_status))
                    .unwrap();
            }
        });
        let id = send(&mut sim, request(method, &branch(8)));
        sim.run(Duration::from_secs(3600));
        let order: Vec<u16> = sim
            .delivered
            .iter()
            .filter_map(|d| match &d.message {
                Message::Response(r) if d.to == Node::A => Some(r.status),
                _ => None,
            })
            .collect();
        assert_eq!(order, vec![final_status, provisional], "{method}");
        assert_eq!(statuses(&sim, Node::A, id), vec![final_status], "{method}");
    }
}

#[test]
fn cancel_ends_a_ringing_invite_with_487() {
    let mut sim = Sim::new(9, Link::lossy(0.1, ms(40), ms(20)));
    let invite_tx = Rc::new(RefCell::new(None));
    let seen = invite_tx.clone();
    sim.set_tu(Node::B, move |now, event, layer| {
        if let TransactionEvent::NewRequest {
            id,
            request,
            cancels,
            ..
        } = event
        {
            match request.method {
                Method::Invite => {
                    *seen.borrow_mut() = Some((*id, request.clone()));
                    layer.send_response(now, *id, answer(request, 180)).unwrap();
                }
                Method::Cancel => {
                    let (invite_id, invite) = seen.borrow().clone().unwrap();
                    assert_eq!(*cancels, Some(invite_id));
                    layer.send_response(now, *id, answer(request, 200)).unwrap();
                    layer
                        .send_response(now, invite_id, answer(&invite, 487))
                        .unwrap();
                }
                _ => {}
            }
        }
    });
    let invite = request("INVITE", &branch(9));
    let id = send(&mut sim, invite.clone());
    sim.run_until(sim.start + ms(3000));
    assert_eq!(statuses(&sim, Node::A, id).first(), Some(&180));
    let cancel_id = send(&mut sim, cancel_request(&invite).unwrap());
    sim.run(Duration::from_secs(3600));
    assert_eq!(statuses(&sim, Node::A, cancel_id), vec![200]);
    assert_eq!(statuses(&sim, Node::A, id).last(), Some(&487));
    assert!(!sim.sent_by(Node::A, Method::Ack, None).is_empty());
    assert_eq!(timeouts(&sim, Node::A) + timeouts(&sim, Node::B), 0);
    assert!(sim.node(Node::A).layer.is_empty() && sim.node(Node::B).layer.is_empty());
}
