//! Tests of the transaction layer: matching, creation, removal, CANCEL, errors.
#![allow(clippy::unwrap_used)]

use rand::SeedableRng;

use super::testutil::*;
use super::*;
use crate::message::HeaderName;

type Layer = TransactionLayer<u8>;

fn outputs(layer: &mut Layer) -> Vec<Output<u8>> {
    std::iter::from_fn(|| layer.poll_output()).collect()
}

fn events(layer: &mut Layer) -> Vec<TransactionEvent<u8>> {
    outputs(layer)
        .into_iter()
        .filter_map(|o| match o {
            Output::Event(e) => Some(e),
            Output::Transmit { .. } => None,
        })
        .collect()
}

fn transmitted(layer: &mut Layer) -> Vec<Message> {
    outputs(layer)
        .into_iter()
        .filter_map(|o| match o {
            Output::Transmit { message, .. } => Some(message),
            Output::Event(_) => None,
        })
        .collect()
}

fn with_via(mut r: Request, via: &str) -> Request {
    r.headers.set(HeaderName::Via, via);
    r
}

#[test]
fn new_branch_has_magic_cookie_and_differs() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let a = new_branch(&mut rng);
    let b = new_branch(&mut rng);
    assert!(a.starts_with(MAGIC_COOKIE));
    assert_eq!(a.len(), MAGIC_COOKIE.len() + 32);
    assert_ne!(a, b);
}

#[test]
fn timers_follow_the_rfc_table() {
    let t = Timers::default();
    assert_eq!(t.b(), ms(32_000));
    assert_eq!(t.f(), ms(32_000));
    assert_eq!(t.h(), ms(32_000));
    assert_eq!(t.l(), ms(32_000));
    assert_eq!(t.m(), ms(32_000));
    assert_eq!(t.d(false), ms(32_000));
    assert_eq!(t.d(true), Duration::ZERO);
    assert_eq!(t.i(false), ms(5000));
    assert_eq!(t.j(false), ms(32_000));
    assert_eq!(t.k(false), ms(5000));
    for reliable_zero in [t.i(true), t.j(true), t.k(true)] {
        assert_eq!(reliable_zero, Duration::ZERO);
    }
    let slow = Timers { t1: ms(2000), ..t };
    assert_eq!(slow.d(false), ms(128_000));
    let huge = Timers {
        t1: Duration::MAX,
        ..t
    };
    assert_eq!(huge.b(), Duration::MAX);
}

#[test]
fn send_request_validates_the_request() {
    let t0 = base();
    let mut layer = Layer::default();
    assert_eq!(
        layer
            .send_request(t0, register("z9hG4bKok"), 1, false)
            .map(|_| ()),
        Ok(())
    );
    assert_eq!(
        layer.send_request(t0, register("z9hG4bKok"), 1, false),
        Err(TransactionError::DuplicateTransaction)
    );
    assert_eq!(
        layer.send_request(t0, register("1234"), 1, false),
        Err(TransactionError::MissingBranch)
    );
    let no_branch = with_via(register("x"), "SIP/2.0/UDP host.example.com");
    assert_eq!(
        layer.send_request(t0, no_branch, 1, false),
        Err(TransactionError::MissingBranch)
    );
    let mut no_via = register("z9hG4bKnv");
    no_via.headers.remove(&HeaderName::Via);
    assert!(matches!(
        layer.send_request(t0, no_via, 1, false),
        Err(TransactionError::Malformed(_))
    ));
    let ack = ack_for(&invite("z9hG4bKi"), "z9hG4bKa", "t");
    assert_eq!(
        layer.send_request(t0, ack, 1, false),
        Err(TransactionError::AckNotTransactional)
    );
    let mut wrong = register("z9hG4bKw");
    wrong.headers.set(HeaderName::CSeq, "7 OPTIONS");
    assert_eq!(
        layer.send_request(t0, wrong, 1, false),
        Err(TransactionError::WrongMethod)
    );
    assert_eq!(layer.len(), 1);
}

#[test]
fn responses_match_by_branch_and_cseq_method() {
    let t0 = base();
    let mut layer = Layer::default();
    let inv = invite("z9hG4bKsame");
    let invite_id = layer.send_request(t0, inv.clone(), 9, false).unwrap();
    let cancel = cancel_request(&inv).unwrap();
    let cancel_id = layer.send_request(t0, cancel.clone(), 9, false).unwrap();
    assert_ne!(invite_id, cancel_id);
    let sent = transmitted(&mut layer);
    assert_eq!(sent.len(), 2);

    layer
        .handle_message(
            t0 + ms(10),
            response(&cancel, 200, Some("b")).into(),
            9,
            false,
        )
        .unwrap();
    let ev = events(&mut layer);
    assert!(matches!(
        &ev[..],
        [TransactionEvent::Response { id, response }]
            if *id == cancel_id && response.status == 200
    ));
    layer
        .handle_message(t0 + ms(20), response(&inv, 487, Some("b")).into(), 9, false)
        .unwrap();
    let out = outputs(&mut layer);
    assert!(matches!(
        &out[0],
        Output::Event(TransactionEvent::Response { id, response })
            if *id == invite_id && response.status == 487
    ));
    assert!(matches!(
        &out[1],
        Output::Transmit { to: 9, reliable: false, message: Message::Request(ack) }
            if ack.method == Method::Ack
    ));

    // Another branch matches nothing: passed up as stray.
    let other = response(&invite("z9hG4bKother"), 200, Some("c"));
    layer
        .handle_message(t0 + ms(30), other.clone().into(), 4, false)
        .unwrap();
    assert_eq!(
        events(&mut layer),
        vec![TransactionEvent::StrayResponse {
            response: other,
            from: 4
        }]
    );
}

#[test]
fn new_requests_create_server_transactions_and_retransmissions_are_absorbed() {
    let t0 = base();
    let mut layer = Layer::default();
    let req = register("z9hG4bKsrv");
    layer
        .handle_message(t0, req.clone().into(), 3, false)
        .unwrap();
    let ev = events(&mut layer);
    let [
        TransactionEvent::NewRequest {
            id,
            request,
            from: 3,
            cancels: None,
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(request, &req);
    let id = *id;
    assert_eq!(
        layer.state(id),
        Some(TransactionState::Nist(NistState::Trying))
    );
    layer
        .handle_message(t0 + ms(500), req.clone().into(), 3, false)
        .unwrap();
    assert!(outputs(&mut layer).is_empty());

    // Same branch, other sent-by: another transaction (§17.2.3).
    let other = with_via(
        req.clone(),
        "SIP/2.0/UDP other.example.com;branch=z9hG4bKsrv",
    );
    layer.handle_message(t0, other.into(), 3, false).unwrap();
    assert!(matches!(
        events(&mut layer)[..],
        [TransactionEvent::NewRequest { id: other_id, .. }] if other_id != id
    ));

    let ok = response(&req, 200, Some("r"));
    layer.send_response(t0 + ms(600), id, ok.clone()).unwrap();
    assert_eq!(
        outputs(&mut layer),
        vec![Output::Transmit {
            to: 3,
            reliable: false,
            message: ok.clone().into()
        }]
    );
    assert_eq!(
        layer.send_response(t0, id, ok.clone()),
        Err(TransactionError::InvalidState)
    );
    layer
        .handle_message(t0 + ms(700), req.into(), 3, false)
        .unwrap();
    assert_eq!(transmitted(&mut layer), vec![Message::from(ok)]);

    // Timer J removes it.
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(600) + ms(32_000)));
    layer.handle_timeout(t0 + ms(600) + ms(32_000));
    assert_eq!(
        events(&mut layer),
        vec![TransactionEvent::Terminated { id }]
    );
    assert_eq!(layer.state(id), None);
    assert_eq!(layer.len(), 1);
}

#[test]
fn send_response_errors() {
    let t0 = base();
    let mut layer = Layer::default();
    let req = register("z9hG4bKe");
    let client = layer.send_request(t0, req.clone(), 1, false).unwrap();
    assert_eq!(
        layer.send_response(t0, client, response(&req, 200, None)),
        Err(TransactionError::NotServerTransaction)
    );
    layer
        .handle_message(t0, invite("z9hG4bKinv").into(), 2, false)
        .unwrap();
    let server = match &events(&mut layer)[..] {
        [TransactionEvent::NewRequest { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        layer.send_response(t0, server, response(&req, 200, None)),
        Err(TransactionError::ResponseMismatch)
    );
    let mut bad = response(&invite("z9hG4bKinv"), 200, None);
    bad.status = 800;
    assert_eq!(
        layer.send_response(t0, server, bad),
        Err(TransactionError::InvalidStatus(800))
    );
    let gone = TransactionId(999);
    assert_eq!(
        layer.send_response(t0, gone, response(&req, 200, None)),
        Err(TransactionError::UnknownTransaction)
    );
    // Unknown ids are ignored by the transport error entry point.
    layer.handle_transport_error(t0, gone);
    assert!(outputs(&mut layer).is_empty());
}

#[test]
fn ack_for_non_2xx_goes_to_the_ist_and_ack_for_2xx_is_stray() {
    let t0 = base();
    let mut layer = Layer::default();
    let inv = invite("z9hG4bKist");
    layer
        .handle_message(t0, inv.clone().into(), 5, false)
        .unwrap();
    let id = match &events(&mut layer)[..] {
        [TransactionEvent::NewRequest { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    layer
        .send_response(t0, id, response(&inv, 486, Some("b")))
        .unwrap();
    outputs(&mut layer);
    // ACK with the INVITE's branch: matches the IST (ACK counts as INVITE).
    layer
        .handle_message(
            t0 + ms(5),
            ack_for(&inv, "z9hG4bKist", "b").into(),
            5,
            false,
        )
        .unwrap();
    assert!(outputs(&mut layer).is_empty());
    assert_eq!(
        layer.state(id),
        Some(TransactionState::Ist(IstState::Confirmed))
    );
    // ACK for a 2xx carries a new branch: no transaction, passed up.
    let ack = ack_for(&invite("z9hG4bKelse"), "z9hG4bKnewack", "b");
    layer
        .handle_message(t0 + ms(6), ack.clone().into(), 5, false)
        .unwrap();
    assert_eq!(
        events(&mut layer),
        vec![TransactionEvent::StrayAck {
            request: ack,
            from: 5
        }]
    );
    layer.handle_timeout(t0 + ms(5) + ms(5000));
    assert_eq!(
        events(&mut layer),
        vec![TransactionEvent::Terminated { id }]
    );
    assert!(layer.is_empty());
}

#[test]
fn cancel_names_the_invite_it_cancels() {
    let t0 = base();
    let mut layer = Layer::default();
    let inv = invite("z9hG4bKc");
    layer
        .handle_message(t0, inv.clone().into(), 5, false)
        .unwrap();
    let invite_id = match &events(&mut layer)[..] {
        [TransactionEvent::NewRequest { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    let cancel = cancel_request(&inv).unwrap();
    layer
        .handle_message(t0 + ms(1), cancel.clone().into(), 5, false)
        .unwrap();
    let ev = events(&mut layer);
    let [
        TransactionEvent::NewRequest {
            id,
            request,
            cancels,
            ..
        },
    ] = &ev[..]
    else {
        panic!("{ev:?}")
    };
    assert_eq!(request.method, Method::Cancel);
    assert_eq!(*cancels, Some(invite_id));
    assert_eq!(layer.cancelled_invite(*id), Some(invite_id));
    assert_ne!(*id, invite_id);
    // TU: 200 to the CANCEL, 487 to the INVITE.
    layer
        .send_response(t0 + ms(2), *id, response(&cancel, 200, Some("b")))
        .unwrap();
    layer
        .send_response(t0 + ms(2), invite_id, response(&inv, 487, Some("b")))
        .unwrap();
    let statuses: Vec<u16> = transmitted(&mut layer)
        .into_iter()
        .filter_map(|m| match m {
            Message::Response(r) => Some(r.status),
            Message::Request(_) => None,
        })
        .collect();
    assert_eq!(statuses, vec![200, 487]);

    // A CANCEL for an unknown INVITE: no target, the TU answers 481.
    let lone = cancel_request(&invite("z9hG4bKlone")).unwrap();
    layer.handle_message(t0, lone.into(), 5, false).unwrap();
    assert!(matches!(
        events(&mut layer)[..],
        [TransactionEvent::NewRequest { cancels: None, .. }]
    ));
}

#[test]
fn cancel_request_copies_what_section_9_1_requires() {
    let inv = invite("z9hG4bKcopy");
    let cancel = cancel_request(&inv).unwrap();
    assert_eq!(cancel.method, Method::Cancel);
    assert_eq!(cancel.uri, inv.uri);
    let h = &cancel.headers;
    assert_eq!(h.vias().unwrap(), vec![inv.headers.top_via().unwrap()]);
    assert_eq!(h.call_id().unwrap(), inv.headers.call_id().unwrap());
    assert_eq!(h.to().unwrap(), inv.headers.to().unwrap());
    assert_eq!(h.from().unwrap(), inv.headers.from().unwrap());
    assert_eq!(h.cseq().unwrap().seq, inv.headers.cseq().unwrap().seq);
    assert_eq!(h.cseq().unwrap().method, Method::Cancel);
    assert_eq!(h.routes().unwrap(), inv.headers.routes().unwrap());
    Message::parse(&cancel.to_bytes()).unwrap();

    assert_eq!(
        cancel_request(&register("z9hG4bKr")).err(),
        Some(TransactionError::WrongMethod)
    );
    let mut no_cseq = invite("z9hG4bKn");
    no_cseq.headers.remove(&HeaderName::CSeq);
    assert!(matches!(
        cancel_request(&no_cseq),
        Err(TransactionError::Malformed(_))
    ));
}

#[test]
fn rfc2543_requests_match_without_magic_cookie() {
    let t0 = base();
    let mut layer = Layer::default();
    let old_via = "SIP/2.0/UDP old.example.com:5060";
    let inv = with_via(invite("x"), old_via);
    layer
        .handle_message(t0, inv.clone().into(), 7, false)
        .unwrap();
    let id = match &events(&mut layer)[..] {
        [TransactionEvent::NewRequest { id, .. }] => *id,
        other => panic!("{other:?}"),
    };
    // A retransmission matches by Request-URI, tags, Call-ID, CSeq and top Via.
    layer
        .handle_message(t0 + ms(100), inv.clone().into(), 7, false)
        .unwrap();
    assert!(outputs(&mut layer).is_empty());
    assert_eq!(layer.len(), 1);
    layer
        .send_response(t0 + ms(600), id, response(&inv, 486, Some("old")))
        .unwrap();
    outputs(&mut layer);
    // An ACK whose To tag is not the one we sent does not match...
    let wrong = with_via(ack_for(&inv, "x", "other"), old_via);
    layer
        .handle_message(t0 + ms(700), wrong.into(), 7, false)
        .unwrap();
    assert!(matches!(
        events(&mut layer)[..],
        [TransactionEvent::StrayAck { .. }]
    ));
    // ...the right one confirms the transaction.
    let ack = with_via(ack_for(&inv, "x", "old"), old_via);
    layer
        .handle_message(t0 + ms(700), ack.into(), 7, false)
        .unwrap();
    assert!(outputs(&mut layer).is_empty());
    assert_eq!(
        layer.state(id),
        Some(TransactionState::Ist(IstState::Confirmed))
    );
}

#[test]
fn malformed_messages_are_errors_not_panics() {
    let t0 = base();
    let mut layer = Layer::default();
    let mut no_via = register("z9hG4bKm");
    no_via.headers.remove(&HeaderName::Via);
    assert!(matches!(
        layer.handle_message(t0, no_via.into(), 1, false),
        Err(TransactionError::Malformed(_))
    ));
    let mut no_cseq = response(&register("z9hG4bKm"), 200, None);
    no_cseq.headers.remove(&HeaderName::CSeq);
    assert!(matches!(
        layer.handle_message(t0, no_cseq.into(), 1, false),
        Err(TransactionError::Malformed(_))
    ));
    let mut legacy_no_call_id = with_via(register("x"), "SIP/2.0/UDP h.example.com");
    legacy_no_call_id.headers.remove(&HeaderName::CallId);
    assert!(
        layer
            .handle_message(t0, legacy_no_call_id.into(), 1, false)
            .is_err()
    );
    assert!(layer.is_empty());
    assert!(outputs(&mut layer).is_empty());
}

#[test]
fn transport_error_reaches_the_tu_and_removes_the_transaction() {
    let t0 = base();
    let mut layer = Layer::default();
    let id = layer
        .send_request(t0, invite("z9hG4bKte"), 1, true)
        .unwrap();
    outputs(&mut layer);
    layer.handle_transport_error(t0 + ms(1), id);
    assert_eq!(
        events(&mut layer),
        vec![
            TransactionEvent::TransportError { id },
            TransactionEvent::Terminated { id }
        ]
    );
    assert!(layer.is_empty());
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn poll_timeout_is_the_earliest_timer() {
    let t0 = base();
    let mut layer = Layer::default();
    layer
        .send_request(t0, register("z9hG4bK1"), 1, true)
        .unwrap();
    layer
        .send_request(t0 + ms(100), register("z9hG4bK2"), 1, false)
        .unwrap();
    assert_eq!(layer.poll_timeout(), Some(t0 + ms(600)));
    assert_eq!(
        layer.request(TransactionId(1)).map(|r| &r.method),
        Some(&Method::Register)
    );
    let stateless = Message::from(ack_for(&invite("z9hG4bKs"), "z9hG4bKs2", "x"));
    outputs(&mut layer);
    layer.send_stateless(4, true, stateless.clone());
    assert_eq!(
        outputs(&mut layer),
        vec![Output::Transmit {
            to: 4,
            reliable: true,
            message: stateless
        }]
    );
}
