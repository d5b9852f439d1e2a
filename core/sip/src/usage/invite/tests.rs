//! Unit tests of one [`Call`] fed hand-made messages: refusals, CSeq rules, unknown methods,
//! bad bodies, PRACK matching and timers. The two-sided scenarios are in
//! `tests/invite_sim.rs`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]

use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::in_dialog::{parse_dtmf, parse_dtmf_relay};
use super::uas::parse_rack;
use super::*;
use crate::message::{Host, Message};
use crate::transaction::{Output, TransactionEvent, TransactionLayer, new_branch};

fn base() -> Instant {
    Instant::now()
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn rng(seed: u64) -> Box<dyn RngCore + Send> {
    Box::new(StdRng::seed_from_u64(seed))
}

fn config() -> CallConfig {
    let mut local = NameAddr::new(SipUri::new(
        Some("alice"),
        Host::Domain("atlanta.example.com".into()),
    ));
    local.display = Some("Alice".into());
    let target = SipUri::new(Some("bob"), Host::Domain("biloxi.example.com".into()));
    let contact = SipUri::new(Some("alice"), Host::V4([192, 0, 2, 1].into()));
    CallConfig::new(local, target, contact)
}

fn parse_request(text: &str) -> Request {
    match Message::parse(text.replace('\n', "\r\n").as_bytes()).unwrap() {
        Message::Request(r) => r,
        Message::Response(_) => unreachable!(),
    }
}

/// An INVITE from Bob with `extra` header lines and `body`.
fn incoming_invite(extra: &str, body: &str) -> Request {
    parse_request(&format!(
        "INVITE sip:alice@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKinv1
Max-Forwards: 70
To: <sip:alice@atlanta.example.com>
From: Bob <sip:bob@biloxi.example.com>;tag=bobtag
Call-ID: call-1@biloxi
CSeq: 10 INVITE
Contact: <sip:bob@192.0.2.2:5060>
Supported: 100rel, timer
{extra}Content-Type: application/sdp
Content-Length: {}

{body}",
        body.len()
    ))
}

/// A test double of the runtime around one call: a transaction layer for ids, and the
/// call's outputs sorted by kind.
struct Rig {
    now: Instant,
    layer: TransactionLayer<u8>,
    call: Call,
    rng: StdRng,
    requests: Vec<(TransactionId, Request)>,
    responses: Vec<(TransactionId, Response)>,
    acks: Vec<Request>,
    cancels: Vec<TransactionId>,
    events: Vec<CallEvent>,
}

fn server_tx(layer: &mut TransactionLayer<u8>, now: Instant, request: &Request) -> TransactionId {
    layer
        .handle_message(now, Message::Request(request.clone()), 2, false)
        .unwrap();
    let mut found = None;
    while let Some(out) = layer.poll_output() {
        if let Output::Event(TransactionEvent::NewRequest { id, .. }) = out {
            found = Some(id);
        }
    }
    found.expect("a new server transaction")
}

impl Rig {
    fn outgoing() -> Rig {
        let now = base();
        let call = Call::outgoing(config(), b"offer-A".to_vec(), now, rng(1));
        Rig::with(now, call)
    }

    fn incoming(invite: Request) -> (Rig, TransactionId) {
        let now = base();
        let mut layer = TransactionLayer::default();
        let tx = server_tx(&mut layer, now, &invite);
        let call = Call::incoming(invite, tx, config(), now, rng(2)).unwrap();
        let mut rig = Rig::with(now, call);
        rig.layer = layer;
        (rig, tx)
    }

    fn with(now: Instant, call: Call) -> Rig {
        let mut rig = Rig {
            now,
            layer: TransactionLayer::default(),
            call,
            rng: StdRng::seed_from_u64(9),
            requests: Vec::new(),
            responses: Vec::new(),
            acks: Vec::new(),
            cancels: Vec::new(),
            events: Vec::new(),
        };
        rig.drain();
        rig
    }

    fn drain(&mut self) {
        while let Some(out) = self.call.poll_output() {
            match out {
                CallOutput::SendRequest {
                    handle,
                    mut request,
                } => {
                    let via = format!("SIP/2.0/UDP 192.0.2.1;branch={}", new_branch(&mut self.rng));
                    request.headers.push_front(HeaderName::Via, via);
                    let tx = self
                        .layer
                        .send_request(self.now, request.clone(), 2, false)
                        .unwrap();
                    self.call.request_sent(handle, tx);
                    self.requests.push((tx, request));
                }
                CallOutput::SendResponse { tx, response } => self.responses.push((tx, response)),
                CallOutput::SendAck(ack) => self.acks.push(ack),
                CallOutput::SendCancel { invite } => self.cancels.push(invite),
                CallOutput::Event(e) => self.events.push(e),
            }
        }
    }

    fn advance(&mut self, d: Duration) {
        self.now += d;
        self.call.handle_timeout(self.now);
        self.drain();
    }

    /// Our last request of `method`.
    fn last(&self, method: Method) -> (TransactionId, Request) {
        self.requests
            .iter()
            .rev()
            .find(|(_, r)| r.method == method)
            .cloned()
            .expect("no such request")
    }

    /// The peer answers our last `method` with `status` (To tag `bobtag` unless 100).
    fn answer(&mut self, method: Method, status: u16, edit: impl FnOnce(&mut Response)) {
        let (tx, request) = self.last(method);
        let mut response = Response::to_request(&request, status);
        if status > 100 && request.headers.to().unwrap().tag().is_none() {
            let to = format!(
                "{};tag=bobtag",
                request.headers.get(&HeaderName::To).unwrap()
            );
            response.headers.set(HeaderName::To, to);
        }
        if (101..300).contains(&status) {
            response
                .headers
                .push(HeaderName::Contact, "<sip:bob@192.0.2.2:5060>");
        }
        edit(&mut response);
        self.call.handle_response(self.now, tx, response);
        self.drain();
    }

    /// A request from the peer inside the dialog (From bobtag, To our tag).
    fn peer_request(&mut self, method: &str, cseq: u32, extra: &str, body: &str) -> TransactionId {
        let text = format!(
            "{method} sip:alice@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.2:5060;branch={}
Max-Forwards: 70
To: <sip:alice@atlanta.example.com>;tag={}
From: Bob <sip:bob@biloxi.example.com>;tag=bobtag
Call-ID: {}
CSeq: {cseq} {method}
Contact: <sip:bob@192.0.2.2:5060>
{extra}Content-Length: {}

{body}",
            new_branch(&mut self.rng),
            self.call.local_tag(),
            self.call.call_id(),
            body.len()
        );
        let request = parse_request(&text);
        assert!(self.call.matches_request(&request));
        let tx = server_tx(&mut self.layer, self.now, &request);
        self.call.handle_request(self.now, tx, request);
        self.drain();
        tx
    }

    fn status_for(&self, tx: TransactionId) -> Vec<u16> {
        self.responses
            .iter()
            .filter(|(t, _)| *t == tx)
            .map(|(_, r)| r.status)
            .collect()
    }

    fn ended(&self) -> Option<EndReason> {
        self.events.iter().find_map(|e| match e {
            CallEvent::Ended { reason } => Some(reason.clone()),
            _ => None,
        })
    }
}

/// An outgoing call answered and ACKed.
fn confirmed_outgoing() -> Rig {
    let mut rig = Rig::outgoing();
    rig.answer(Method::Invite, 200, |r| {
        r.headers.push(HeaderName::ContentType, SDP);
        r.body = b"answer-B".to_vec();
    });
    assert_eq!(rig.call.state(), CallState::Confirmed);
    rig
}

#[test]
fn incoming_invites_that_are_refused() {
    let now = base();
    let refuse = |invite: Request| {
        let mut layer = TransactionLayer::<u8>::default();
        let tx = server_tx(&mut layer, now, &invite);
        let response = Call::incoming(invite, tx, config(), now, rng(3)).unwrap_err();
        assert!(response.headers.to().unwrap().tag().is_some(), "a To tag");
        response
    };
    let r = refuse(incoming_invite("Require: foo, 100rel\n", ""));
    assert_eq!(r.status, 420);
    assert_eq!(r.headers.get(&HeaderName::Unsupported), Some("foo"));
    let mut no_timer = incoming_invite("Require: timer\n", "");
    no_timer.headers.remove(&HeaderName::Supported);
    let mut c = config();
    c.supports_timer = false;
    let mut layer = TransactionLayer::<u8>::default();
    let tx = server_tx(&mut layer, now, &no_timer);
    assert_eq!(
        Call::incoming(no_timer, tx, c, now, rng(3))
            .unwrap_err()
            .status,
        420
    );
    let mut text = incoming_invite("", "hello");
    text.headers.set(HeaderName::ContentType, "text/plain");
    let r = refuse(text);
    assert_eq!(r.status, 415);
    assert_eq!(r.headers.get(&HeaderName::Accept), Some(SDP));
    let mut no_contact = incoming_invite("", "v=0");
    no_contact.headers.remove(&HeaderName::Contact);
    assert_eq!(refuse(no_contact).status, 400);
    let mut tagged = incoming_invite("", "v=0");
    tagged
        .headers
        .set(HeaderName::To, "<sip:alice@atlanta.example.com>;tag=zz");
    assert_eq!(refuse(tagged).status, 481);
    let r = refuse(incoming_invite("Session-Expires: 60\n", "v=0"));
    assert_eq!(r.status, 422);
    assert_eq!(r.headers.get(&HeaderName::from("Min-SE")), Some("90"));
    assert_eq!(
        refuse(incoming_invite("Session-Expires: soon\n", "v=0")).status,
        400
    );
    assert_eq!(
        refuse(incoming_invite(
            "Min-SE: never\nSession-Expires: 1800\n",
            "v=0"
        ))
        .status,
        400
    );
    // Not an INVITE at all.
    let mut options = incoming_invite("", "");
    options.method = Method::Options;
    options.headers.set(HeaderName::CSeq, "10 OPTIONS");
    let r = refuse(options);
    assert_eq!(r.status, 405);
    assert!(r.headers.contains(&HeaderName::Allow));
}

#[test]
fn incoming_invite_accepted_negotiates_the_session_timer() {
    let (mut rig, tx) = Rig::incoming(incoming_invite(
        "Session-Expires: 1800;refresher=uas\nMin-SE: 120\n",
        "v=0 offer",
    ));
    assert_eq!(rig.call.state(), CallState::Incoming);
    assert_eq!(rig.call.remote_sdp(), Some(&b"v=0 offer"[..]));
    rig.call.answer(rig.now, b"v=0 answer".to_vec()).unwrap();
    rig.drain();
    let (_, ok) = rig.responses.iter().find(|(t, _)| *t == tx).unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers.get(&HeaderName::SessionExpires),
        Some("1800;refresher=uas")
    );
    assert!(has_option(&ok.headers, &HeaderName::Require, "timer"));
    assert_eq!(ok.body, b"v=0 answer");
    assert!(ok.headers.contains(&HeaderName::Contact));
    assert_eq!(rig.call.session_timer(), Some((1800, true)));
    assert_eq!(rig.call.state(), CallState::Accepted);
}

#[test]
fn out_of_order_cseq_and_unknown_methods() {
    let mut rig = confirmed_outgoing();
    let tx = rig.peer_request("INFO", 5, "", "");
    assert_eq!(rig.status_for(tx), [200]);
    // Lower than the last one: 500 (§12.2.2).
    let tx = rig.peer_request("INFO", 4, "", "");
    assert_eq!(rig.status_for(tx), [500]);
    let tx = rig.peer_request("FOO", 6, "", "");
    assert_eq!(rig.status_for(tx), [501]);
    let tx = rig.peer_request("SUBSCRIBE", 7, "Event: dialog\n", "");
    assert_eq!(rig.status_for(tx), [405]);
    let (_, r) = rig.responses.last().unwrap();
    assert!(r.headers.contains(&HeaderName::Allow));
    let tx = rig.peer_request("OPTIONS", 8, "", "");
    assert_eq!(rig.status_for(tx), [200]);
    assert_eq!(rig.call.state(), CallState::Confirmed);
    assert_eq!(rig.ended(), None);
}

#[test]
fn info_bodies() {
    let mut rig = confirmed_outgoing();
    let tx = rig.peer_request(
        "INFO",
        20,
        "Content-Type: application/dtmf-relay\n",
        "Signal=*\r\nDuration=250\r\n",
    );
    assert_eq!(rig.status_for(tx), [200]);
    assert_eq!(
        rig.events.last(),
        Some(&CallEvent::Dtmf {
            digit: '*',
            duration: Some(ms(250))
        })
    );
    let tx = rig.peer_request(
        "INFO",
        21,
        "Content-Type: application/dtmf-relay\n",
        "Signal=Z\r\n",
    );
    assert_eq!(rig.status_for(tx), [400]);
    let tx = rig.peer_request("INFO", 22, "Content-Type: text/plain\n", "hi");
    assert_eq!(rig.status_for(tx), [415]);
    let tx = rig.peer_request("INFO", 23, "Content-Type: application/dtmf\n", "11");
    assert_eq!(rig.status_for(tx), [200]);
    assert_eq!(
        rig.events.last(),
        Some(&CallEvent::Dtmf {
            digit: '#',
            duration: None
        })
    );
}

#[test]
fn dtmf_and_rack_parsers() {
    assert_eq!(
        parse_dtmf_relay(b"Signal= 7\nDuration= 100\n"),
        Some(('7', Some(ms(100))))
    );
    assert_eq!(parse_dtmf_relay(b"Signal=d"), Some(('D', None)));
    assert_eq!(parse_dtmf_relay(b"Duration=100"), None);
    assert_eq!(parse_dtmf_relay(b"Signal=5\nDuration=-1"), None);
    assert_eq!(parse_dtmf_relay(&[0xff, 0xfe]), None);
    assert_eq!(parse_dtmf(b"10"), Some('*'));
    assert_eq!(parse_dtmf(b"55"), None);
    assert_eq!(parse_rack("776 1 INVITE"), Some((776, 1, Method::Invite)));
    assert_eq!(parse_rack("776 INVITE"), None);
    assert_eq!(parse_rack("1 2 INVITE extra"), None);
    assert_eq!(parse_rack("99999999999 1 INVITE"), None);
}

#[test]
fn prack_matching() {
    let (mut rig, invite_tx) = Rig::incoming(incoming_invite("Require: 100rel\n", "v=0"));
    rig.call.ring(rig.now).unwrap();
    rig.drain();
    let (_, ringing) = rig.responses.last().cloned().unwrap();
    assert_eq!(ringing.status, 180);
    let rseq: u32 = ringing
        .headers
        .get(&HeaderName::from("RSeq"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(has_option(&ringing.headers, &HeaderName::Require, "100rel"));
    // A malformed RAck is a bad request; a wrong one matches nothing.
    let tx = rig.peer_request("PRACK", 11, "RAck: x\n", "");
    assert_eq!(rig.status_for(tx), [400]);
    let tx = rig.peer_request("PRACK", 12, &format!("RAck: {} 10 INVITE\n", rseq + 1), "");
    assert_eq!(rig.status_for(tx), [481]);
    let tx = rig.peer_request("PRACK", 13, &format!("RAck: {rseq} 9 INVITE\n"), "");
    assert_eq!(rig.status_for(tx), [481]);
    // answer() waits for the PRACK.
    rig.call.answer(rig.now, b"v=0 answer".to_vec()).unwrap();
    rig.drain();
    assert!(rig.status_for(invite_tx).iter().all(|s| *s == 180));
    let tx = rig.peer_request("PRACK", 14, &format!("RAck: {rseq} 10 INVITE\n"), "");
    assert_eq!(rig.status_for(tx), [200]);
    assert_eq!(rig.status_for(invite_tx).last(), Some(&200));
    // The same RSeq again: nothing outstanding any more.
    let tx = rig.peer_request("PRACK", 15, &format!("RAck: {rseq} 10 INVITE\n"), "");
    assert_eq!(rig.status_for(tx), [481]);
}

#[test]
fn unpracked_reliable_provisional_is_retransmitted_then_gives_up_with_500() {
    let (mut rig, invite_tx) = Rig::incoming(incoming_invite("", "v=0"));
    rig.call.progress(rig.now, b"v=0 early".to_vec()).unwrap();
    rig.drain();
    let start = rig.now;
    let mut sent = vec![Duration::ZERO];
    while rig.ended().is_none() {
        let next = rig.call.poll_timeout().unwrap();
        let before = rig.responses.len();
        rig.advance(next - rig.now);
        if rig.responses.len() > before && rig.responses.last().unwrap().1.status == 183 {
            sent.push(rig.now - start);
        }
    }
    // T1 doubling without cap (RFC 3262 §3), until 64·T1.
    let expected: Vec<Duration> = [0, 500, 1500, 3500, 7500, 15_500, 31_500]
        .into_iter()
        .map(ms)
        .collect();
    assert_eq!(sent, expected);
    assert_eq!(rig.now - start, ms(32_000));
    assert_eq!(rig.status_for(invite_tx).last(), Some(&500));
    assert_eq!(rig.ended(), Some(EndReason::PrackTimeout));
    assert!(rig.call.is_terminated());
}

#[test]
fn hangup_while_accepted_waits_for_the_ack() {
    let (mut rig, invite_tx) = Rig::incoming(incoming_invite("", "v=0"));
    rig.call.answer(rig.now, b"v=0 answer".to_vec()).unwrap();
    rig.drain();
    rig.call.hangup(rig.now).unwrap();
    rig.drain();
    assert_eq!(rig.ended(), Some(EndReason::LocalHangup));
    assert_eq!(rig.call.state(), CallState::Terminating);
    assert!(rig.requests.is_empty(), "no BYE before the ACK (§15)");
    rig.advance(ms(500));
    assert_eq!(
        rig.status_for(invite_tx),
        [200, 200],
        "the 2xx is still resent"
    );
    let ack = parse_request(&format!(
        "ACK sip:alice@192.0.2.1 SIP/2.0
Via: SIP/2.0/UDP 192.0.2.2:5060;branch=z9hG4bKack1
Max-Forwards: 70
To: <sip:alice@atlanta.example.com>;tag={}
From: Bob <sip:bob@biloxi.example.com>;tag=bobtag
Call-ID: call-1@biloxi
CSeq: 10 ACK
Content-Length: 0

",
        rig.call.local_tag()
    ));
    rig.call.handle_stray_ack(rig.now, ack);
    rig.drain();
    let (_, bye) = rig.last(Method::Bye);
    assert_eq!(bye.uri.to_string(), "sip:bob@192.0.2.2:5060");
    assert!(!rig.events.contains(&CallEvent::Confirmed));
    assert_eq!(rig.call.poll_timeout(), None, "no more 2xx retransmissions");
    let (bye_tx, _) = rig.last(Method::Bye);
    let ok = Response::to_request(&rig.last(Method::Bye).1, 200);
    rig.call.handle_response(rig.now, bye_tx, ok);
    assert!(rig.call.is_terminated());
}

#[test]
fn bye_before_the_answer_ends_the_invite_with_487() {
    let (mut rig, invite_tx) = Rig::incoming(incoming_invite("", "v=0"));
    rig.call.ring(rig.now).unwrap();
    rig.drain();
    let tx = rig.peer_request("BYE", 11, "", "");
    assert_eq!(rig.status_for(tx), [200]);
    assert_eq!(rig.status_for(invite_tx), [180, 487]);
    assert_eq!(rig.ended(), Some(EndReason::RemoteHangup));
    assert!(rig.call.is_terminated());
    // Anything after that: 481.
    let tx = rig.peer_request("INFO", 12, "", "");
    assert_eq!(rig.status_for(tx), [481]);
}

#[test]
fn commands_in_the_wrong_state_are_refused() {
    let mut rig = Rig::outgoing();
    let now = rig.now;
    assert!(matches!(
        rig.call.answer(now, b"x".to_vec()),
        Err(CallError::InvalidState { .. })
    ));
    assert!(matches!(
        rig.call.reinvite(now, None),
        Err(CallError::InvalidState { .. })
    ));
    assert_eq!(
        rig.call.accept_offer(now, b"x".to_vec()),
        Err(CallError::NoPendingOffer)
    );
    let mut rig = confirmed_outgoing();
    let now = rig.now;
    assert_eq!(
        rig.call.send_dtmf(now, 'x', ms(100)),
        Err(CallError::InvalidDigit('X'))
    );
    rig.call.reinvite(now, Some(b"v=1".to_vec())).unwrap();
    assert_eq!(
        rig.call.hold(now, b"v=2".to_vec()),
        Err(CallError::RequestPending)
    );
    assert_eq!(
        rig.call.reject_offer(now, 200),
        Err(CallError::InvalidStatus(200))
    );
    let (mut rig, _) = Rig::incoming(incoming_invite("", "v=0"));
    assert_eq!(
        rig.call.reject(now, 200),
        Err(CallError::InvalidStatus(200))
    );
    assert!(rig.call.cancel(now).is_err());
    rig.drain();
    assert!(rig.responses.is_empty(), "nothing sent on refusal");
}

#[test]
fn reinvite_while_another_waits_for_the_tu_gets_500_retry_after() {
    let mut rig = confirmed_outgoing();
    let first = rig.peer_request("INVITE", 30, "Content-Type: application/sdp\n", "v=9");
    assert_eq!(
        rig.events.last(),
        Some(&CallEvent::RemoteOffer {
            sdp: b"v=9".to_vec()
        })
    );
    let second = rig.peer_request("INVITE", 31, "Content-Type: application/sdp\n", "v=10");
    assert_eq!(rig.status_for(second), [500]);
    let (_, r) = rig.responses.last().unwrap();
    let retry: u32 = r
        .headers
        .get(&HeaderName::RetryAfter)
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry <= 10);
    // The TU refuses the first offer.
    rig.call.reject_offer(rig.now, 488).unwrap();
    rig.drain();
    assert_eq!(rig.status_for(first), [488]);
    assert_eq!(rig.call.state(), CallState::Confirmed);
}

#[test]
fn our_reinvite_pending_makes_theirs_491() {
    let mut rig = confirmed_outgoing();
    rig.call.reinvite(rig.now, Some(b"v=1".to_vec())).unwrap();
    rig.drain();
    let tx = rig.peer_request("INVITE", 40, "Content-Type: application/sdp\n", "v=2");
    assert_eq!(rig.status_for(tx), [491]);
    // Our 491 arrives: we are the Call-ID owner, so the retry waits 2.1-4 s.
    rig.answer(Method::Invite, 491, |_| {});
    let retry_at = rig.call.poll_timeout().unwrap();
    assert!((ms(2100)..=ms(4000)).contains(&(retry_at - rig.now)));
    let before = rig.requests.len();
    rig.advance(retry_at - rig.now);
    assert_eq!(rig.requests.len(), before + 1);
    assert_eq!(rig.last(Method::Invite).1.body, b"v=1");
}

/// Regression: a peer that answered every re-INVITE with 491 made the call retry forever
/// (every 2–4 s), and the user never learned that the hold did not happen.
#[test]
fn a_peer_that_always_answers_491_gets_a_refusal_reported() {
    let mut rig = confirmed_outgoing();
    rig.call.hold(rig.now, b"v=hold".to_vec()).unwrap();
    rig.drain();
    let mut invites = 1;
    loop {
        rig.answer(Method::Invite, 491, |_| {});
        if rig
            .events
            .iter()
            .any(|e| matches!(e, CallEvent::OfferRejected { status: 491 }))
        {
            break;
        }
        let retry_at = rig.call.poll_timeout().expect("a retry is scheduled");
        rig.advance(retry_at - rig.now);
        invites += 1;
        assert!(invites <= 10, "the retries never stop");
    }
    assert_eq!(invites, 1 + usize::from(MAX_GLARE_RETRIES));
    assert_eq!(rig.call.state(), CallState::Confirmed, "the call stays up");
    // Nothing is pending any more: the next hold can go.
    rig.call.hold(rig.now, b"v=hold".to_vec()).unwrap();
}

#[test]
fn forked_2xx_after_ours_is_acked_and_byed() {
    let mut rig = confirmed_outgoing();
    let (_, invite) = rig.last(Method::Invite);
    let mut fork = Response::to_request(&invite, 200);
    let to = format!("{};tag=fork2", invite.headers.get(&HeaderName::To).unwrap());
    fork.headers.set(HeaderName::To, to);
    fork.headers
        .push(HeaderName::Contact, "<sip:bob@198.51.100.9>");
    rig.call.handle_stray_response(rig.now, fork);
    rig.drain();
    let ack = rig.acks.last().unwrap();
    assert_eq!(ack.headers.to().unwrap().tag(), Some("fork2"));
    assert_eq!(ack.uri.to_string(), "sip:bob@198.51.100.9");
    let (_, bye) = rig.last(Method::Bye);
    assert_eq!(bye.headers.to().unwrap().tag(), Some("fork2"));
    assert_eq!(
        rig.call.state(),
        CallState::Confirmed,
        "our call is untouched"
    );
    // A retransmission of our own 2xx is simply re-ACKed.
    let acks = rig.acks.len();
    let mut again = Response::to_request(&invite, 200);
    let to = format!(
        "{};tag=bobtag",
        invite.headers.get(&HeaderName::To).unwrap()
    );
    again.headers.set(HeaderName::To, to);
    rig.call.handle_stray_response(rig.now, again);
    rig.drain();
    assert_eq!(rig.acks.len(), acks + 1);
    assert_eq!(rig.acks[acks], rig.acks[0]);
}

#[test]
fn unusable_2xx_ends_the_call() {
    let mut rig = Rig::outgoing();
    rig.answer(Method::Invite, 200, |r| {
        r.headers.remove(&HeaderName::Contact);
    });
    assert_eq!(
        rig.ended(),
        Some(EndReason::Protocol("2xx without To tag or Contact"))
    );
    assert!(rig.call.is_terminated());
}

#[test]
fn redirect_without_contact_and_timer_b() {
    let mut rig = Rig::outgoing();
    rig.answer(Method::Invite, 302, |_| {});
    assert_eq!(
        rig.ended(),
        Some(EndReason::Rejected {
            status: 302,
            reason: "Moved Temporarily".into()
        })
    );
    let mut rig = Rig::outgoing();
    let (tx, _) = rig.last(Method::Invite);
    rig.call
        .handle_transaction_failure(rig.now, tx, TransactionFailure::Timeout);
    rig.drain();
    assert_eq!(rig.ended(), Some(EndReason::Timeout));
    assert!(rig.call.is_terminated());
}

#[test]
fn session_interval_too_small_is_retried_with_min_se() {
    let mut c = config();
    c.session_expires = Some(90);
    let now = base();
    let mut rig = Rig::with(now, Call::outgoing(c, b"offer".to_vec(), now, rng(4)));
    let (_, first) = rig.last(Method::Invite);
    assert_eq!(first.headers.get(&HeaderName::SessionExpires), Some("90"));
    assert!(has_option(&first.headers, &HeaderName::Supported, "timer"));
    rig.answer(Method::Invite, 422, |r| {
        r.headers.push(HeaderName::from("Min-SE"), "300");
    });
    let (_, second) = rig.last(Method::Invite);
    assert_eq!(second.headers.get(&HeaderName::SessionExpires), Some("300"));
    assert_eq!(second.headers.get(&HeaderName::from("Min-SE")), Some("300"));
    assert_eq!(
        second.headers.cseq().unwrap().seq,
        first.headers.cseq().unwrap().seq + 1
    );
    // The 2xx without Session-Expires: we refresh ourselves at half the interval.
    rig.answer(Method::Invite, 200, |r| {
        r.headers.push(HeaderName::ContentType, SDP);
        r.body = b"answer".to_vec();
    });
    assert_eq!(rig.call.session_timer(), Some((300, true)));
    assert_eq!(
        rig.call.poll_timeout(),
        Some(rig.now + Duration::from_secs(150))
    );
}

#[test]
fn cancel_before_and_after_provisional() {
    let mut rig = Rig::outgoing();
    rig.call.cancel(rig.now).unwrap();
    rig.drain();
    assert_eq!(rig.ended(), Some(EndReason::Cancelled));
    assert!(rig.cancels.is_empty(), "no CANCEL before a provisional");
    rig.answer(Method::Invite, 100, |_| {});
    let (invite_tx, _) = rig.last(Method::Invite);
    assert_eq!(rig.cancels, [invite_tx]);
    // No final response at all: give up after 64·T1.
    rig.advance(Duration::from_secs(32));
    assert!(rig.call.is_terminated());
}

#[test]
fn bad_session_timer_values_in_dialog_are_refused() {
    let mut rig = confirmed_outgoing();
    let tx = rig.peer_request("UPDATE", 50, "Session-Expires: 1x\n", "");
    assert_eq!(rig.status_for(tx), [400]);
    let tx = rig.peer_request("UPDATE", 51, "Session-Expires: 30\n", "");
    assert_eq!(rig.status_for(tx), [422]);
    let (_, r) = rig.responses.last().unwrap();
    assert_eq!(r.headers.get(&HeaderName::from("Min-SE")), Some("90"));
    let tx = rig.peer_request(
        "INVITE",
        52,
        "Session-Expires: 120;refresher=uas\nContent-Type: application/sdp\n",
        "v=3",
    );
    assert!(rig.status_for(tx).is_empty(), "waits for the TU");
    rig.call.accept_offer(rig.now, b"v=4".to_vec()).unwrap();
    rig.drain();
    let (_, ok) = rig.responses.last().unwrap();
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.headers.get(&HeaderName::SessionExpires),
        Some("120;refresher=uas")
    );
    assert_eq!(rig.call.session_timer(), Some((120, true)));
    // An UPDATE that no longer asks for a session timer stops it.
    let tx = rig.peer_request("UPDATE", 53, "", "");
    assert_eq!(rig.status_for(tx), [200]);
    assert_eq!(rig.call.session_timer(), None);
}

#[test]
fn absurd_timer_configuration_does_not_panic() {
    for t1 in [Duration::ZERO, Duration::MAX] {
        let mut c = config();
        c.timers.t1 = t1;
        c.timers.t2 = t1;
        let now = base();
        let mut layer = TransactionLayer::<u8>::default();
        let invite = incoming_invite("", "v=0");
        let tx = server_tx(&mut layer, now, &invite);
        let mut call = Call::incoming(invite, tx, c.clone(), now, rng(5)).unwrap();
        call.progress(now, b"v=1".to_vec()).unwrap();
        call.answer(now, b"v=1".to_vec()).unwrap();
        call.handle_timeout(now + Duration::from_secs(1));
        while call.poll_output().is_some() {}
        let mut out = Call::outgoing(c, b"v=0".to_vec(), now, rng(6));
        out.cancel(now).unwrap();
        out.handle_timeout(now + Duration::from_secs(1));
        while out.poll_output().is_some() {}
    }
}
