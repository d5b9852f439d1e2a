//! Virtual-time tests of the sans-IO [`PbxMachine`]: scripted SIP messages go in as bytes on
//! flows, what comes out is parsed and checked. No socket, no sleep: the clock is a variable
//! that jumps to the machine's next timeout, so Timer C's three minutes, a push wait or an
//! hour of binding lifetime take microseconds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handset_pbx::machine::{Input, Output};
use handset_pbx::{
    CancelReason, Flow, MachineConfig, PbxEvent, PbxMachine, PushContent, PushNotification,
    Transport,
};
use handset_sip::auth::{Challenge, Credentials, DigestResponse};
use handset_sip::message::{HeaderName, Message, Method, Request, Response, Uri};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const PBX: &str = "127.0.0.1:5060";

fn pbx_addr() -> SocketAddr {
    PBX.parse().unwrap()
}

fn config() -> MachineConfig {
    MachineConfig {
        users: vec![
            ("alice".into(), "alice-pw".into()),
            ("bob".into(), "bob-pw".into()),
        ],
        ..MachineConfig::default()
    }
}

fn push_config() -> MachineConfig {
    MachineConfig {
        push_notifications: true,
        ..config()
    }
}

/// The machine, a virtual clock, and everything the machine output, not yet looked at.
struct Harness {
    pbx: PbxMachine,
    now: Instant,
    /// When the machine asked to be called back (the last drain's `Timeout`).
    deadline: Option<Instant>,
    sent: VecDeque<(Flow, Message)>,
    /// Transmitted bytes that are no message (CRLF pongs).
    other: Vec<(Flow, Vec<u8>)>,
    pushes: VecDeque<PushNotification>,
    events: Vec<PbxEvent>,
    disconnects: Vec<Flow>,
}

impl Harness {
    fn new(config: MachineConfig) -> Harness {
        let pbx = PbxMachine::new(config, pbx_addr(), Box::new(StdRng::seed_from_u64(7))).unwrap();
        #[allow(clippy::disallowed_methods)] // any instant will do as the start of virtual time
        let now = Instant::now();
        let mut h = Harness {
            pbx,
            now,
            deadline: None,
            sent: VecDeque::new(),
            other: Vec::new(),
            pushes: VecDeque::new(),
            events: Vec::new(),
            disconnects: Vec::new(),
        };
        h.input(Input::Timeout);
        h
    }

    fn input(&mut self, input: Input) {
        self.pbx.handle_input(self.now, input);
        self.deadline = None;
        let mut timeout_seen = false;
        while let Some(output) = self.pbx.poll_output() {
            assert!(!timeout_seen, "an output after the drain's Timeout");
            match output {
                Output::Transmit { flow, bytes } => match Message::parse(&bytes) {
                    Ok(message) => self.sent.push_back((flow, message)),
                    Err(_) => self.other.push((flow, bytes)),
                },
                Output::Disconnect { flow } => self.disconnects.push(flow),
                Output::Push(push) => self.pushes.push_back(push),
                Output::Event(event) => self.events.push(event),
                Output::Timeout(at) => {
                    assert!(at >= self.now, "a timeout in the past");
                    timeout_seen = true;
                    self.deadline = Some(at);
                }
            }
        }
    }

    fn send(&mut self, ua: &Ua, message: impl Into<Message>) {
        let bytes = message.into().to_bytes();
        self.input(Input::Received {
            flow: ua.flow,
            bytes,
        });
    }

    /// Lets `by` pass, firing every timeout on the way at its time.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        while let Some(at) = self.deadline.filter(|at| *at <= until) {
            self.now = at;
            self.input(Input::Timeout);
        }
        self.now = until;
    }

    fn take(&mut self, flow: Flow, pred: impl Fn(&Message) -> bool) -> Option<Message> {
        let index = self
            .sent
            .iter()
            .position(|(to, m)| *to == flow && pred(m))?;
        self.sent.remove(index).map(|(_, m)| m)
    }

    fn expect_request(&mut self, ua: &Ua, method: Method) -> Request {
        let found = self.take(
            ua.flow,
            |m| matches!(m, Message::Request(r) if r.method == method),
        );
        match found {
            Some(Message::Request(r)) => r,
            _ => panic!("{}: no {method} in {:?}", ua.user, self.pending(ua)),
        }
    }

    fn expect_response(&mut self, ua: &Ua, method: Method, status: u16) -> Response {
        match self.take(ua.flow, |m| is_response(m, &method, |s| s == status)) {
            Some(Message::Response(r)) => r,
            _ => panic!(
                "{}: no {status} to {method} in {:?}",
                ua.user,
                self.pending(ua)
            ),
        }
    }

    /// The next final response to `method`, whatever its status.
    fn expect_final(&mut self, ua: &Ua, method: Method) -> Response {
        match self.take(ua.flow, |m| is_response(m, &method, |s| s >= 200)) {
            Some(Message::Response(r)) => r,
            _ => panic!(
                "{}: no final response to {method} in {:?}",
                ua.user,
                self.pending(ua)
            ),
        }
    }

    fn nothing_matching(&self, ua: &Ua, pred: impl Fn(&Message) -> bool) {
        let found: Vec<_> = self
            .sent
            .iter()
            .filter(|(to, m)| *to == ua.flow && pred(m))
            .collect();
        assert!(found.is_empty(), "{}: unexpected {found:?}", ua.user);
    }

    fn pending(&self, ua: &Ua) -> Vec<String> {
        self.sent
            .iter()
            .filter(|(to, _)| *to == ua.flow)
            .map(|(_, m)| match m {
                Message::Request(r) => r.method.to_string(),
                Message::Response(r) => format!(
                    "{} {}",
                    r.status,
                    r.headers.cseq().map(|c| c.method.to_string()).unwrap()
                ),
            })
            .collect()
    }

    fn has_event(&self, pred: impl Fn(&PbxEvent) -> bool) -> bool {
        self.events.iter().any(pred)
    }

    /// REGISTER answering one 401 with `password`; returns the final response.
    fn register_with(&mut self, ua: &mut Ua, expires: u32, password: &str) -> Response {
        let first = ua.register_request(expires);
        self.send(ua, first);
        let challenge = self.expect_final(ua, Method::Register);
        assert_eq!(challenge.status, 401, "REGISTER without credentials");
        let mut second = ua.register_request(expires);
        ua.authorize(&mut second, &challenge, password);
        self.send(ua, second);
        self.expect_final(ua, Method::Register)
    }

    fn register(&mut self, ua: &mut Ua, expires: u32) -> Response {
        let password = ua.password;
        let ok = self.register_with(ua, expires, password);
        assert_eq!(ok.status, 200, "{} could not register", ua.user);
        ok
    }

    /// INVITE to `target`, answering the 407 (and ACKing it); returns the authenticated
    /// INVITE as sent.
    fn invite(&mut self, ua: &mut Ua, target: &str) -> Request {
        let call_id = ua.unique("call");
        let first = ua.invite_request(target, &call_id, 1);
        self.send(ua, first.clone());
        let challenge = self.expect_response(ua, Method::Invite, 407);
        self.send(ua, ack_for_failure(&first, &challenge));
        let mut second = ua.invite_request(target, &call_id, 2);
        ua.authorize(&mut second, &challenge, ua.password);
        self.send(ua, second.clone());
        second
    }
}

fn is_response(m: &Message, method: &Method, status: impl Fn(u16) -> bool) -> bool {
    matches!(m, Message::Response(r) if status(r.status)
        && r.headers.cseq().is_ok_and(|c| c.method == *method))
}

fn is_request(method: Method) -> impl Fn(&Message) -> bool {
    move |m| matches!(m, Message::Request(r) if r.method == method)
}

/// A scripted user agent: builds the messages a phone would send from `flow`.
struct Ua {
    user: &'static str,
    password: &'static str,
    flow: Flow,
    counter: u32,
    reg_cseq: u32,
    /// Appended to the Contact URI of REGISTERs (RFC 8599 push parameters).
    contact_params: String,
}

impl Ua {
    fn new(user: &'static str, password: &'static str, transport: Transport, port: u16) -> Ua {
        Ua {
            user,
            password,
            flow: Flow::new(transport, SocketAddr::from(([127, 0, 0, 1], port))),
            counter: 0,
            reg_cseq: 0,
            contact_params: String::new(),
        }
    }

    fn udp(user: &'static str, password: &'static str, port: u16) -> Ua {
        Ua::new(user, password, Transport::Udp, port)
    }

    fn unique(&mut self, what: &str) -> String {
        self.counter += 1;
        format!("{what}{}x{}", self.flow.remote.port(), self.counter)
    }

    fn contact_uri(&self) -> String {
        let transport = match self.flow.transport {
            Transport::Udp => "",
            Transport::Tcp | Transport::Tls => ";transport=tcp",
        };
        format!("sip:{}@{}{transport}", self.user, self.flow.remote)
    }

    fn via(&mut self) -> String {
        let branch = self.unique("z9hG4bK");
        format!(
            "SIP/2.0/{} {};branch={branch}",
            self.flow.transport.via_name(),
            self.flow.remote
        )
    }

    fn request(
        &mut self,
        method: Method,
        uri: &str,
        to: &str,
        call_id: &str,
        cseq: u32,
    ) -> Request {
        let mut r = Request::new(method.clone(), Uri::parse(uri).unwrap());
        let via = self.via();
        let from_tag = format!("ft-{call_id}");
        let h = &mut r.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        h.push(
            HeaderName::From,
            format!(
                "\"{}\" <sip:{}@127.0.0.1>;tag={from_tag}",
                title(self.user),
                self.user
            ),
        );
        h.push(HeaderName::To, to);
        h.push(HeaderName::CallId, call_id);
        h.push(HeaderName::CSeq, format!("{cseq} {method}"));
        h.push(HeaderName::Contact, format!("<{}>", self.contact_uri()));
        r
    }

    fn register_request(&mut self, expires: u32) -> Request {
        self.reg_cseq += 1;
        let aor = format!("<sip:{}@127.0.0.1>", self.user);
        let call_id = format!("reg-{}", self.flow.remote.port());
        let mut r = self.request(
            Method::Register,
            "sip:127.0.0.1",
            &aor,
            &call_id,
            self.reg_cseq,
        );
        let contact = format!("<{}{}>", self.contact_uri(), self.contact_params);
        r.headers.set(HeaderName::Contact, contact);
        r.headers.push(HeaderName::Expires, expires.to_string());
        r
    }

    fn invite_request(&mut self, target: &str, call_id: &str, cseq: u32) -> Request {
        let uri = format!("sip:{target}@127.0.0.1");
        let mut r = self.request(Method::Invite, &uri, &format!("<{uri}>"), call_id, cseq);
        r.headers.push(HeaderName::ContentType, "application/sdp");
        r.body = b"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n".to_vec();
        r
    }

    /// Adds credentials answering the challenge in `challenged` (401 or 407).
    fn authorize(&mut self, request: &mut Request, challenged: &Response, password: &str) {
        let (from, to) = if challenged.status == 401 {
            (HeaderName::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderName::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let challenge = Challenge::parse(challenged.headers.get(&from).unwrap()).unwrap();
        let cnonce = self.unique("cn");
        let answer = DigestResponse::compute(
            &challenge,
            &Credentials::with_password(self.user, password),
            request.method.as_str(),
            &request.uri.to_string(),
            &request.body,
            1,
            &cnonce,
        )
        .unwrap();
        request.headers.push(to, answer.to_header_value());
    }

    /// A response to `request`; `to_tag` is added to To when it has none (not for 100).
    fn respond(&self, request: &Request, status: u16, to_tag: &str) -> Response {
        let mut r = Response::to_request(request, status);
        if let Ok(mut to) = r.headers.to()
            && to.tag().is_none()
            && status > 100
        {
            to.set_param("tag", Some(to_tag.to_string()));
            r.headers.set(HeaderName::To, to.to_string());
        }
        if (101..300).contains(&status) {
            r.headers
                .push(HeaderName::Contact, format!("<{}>", self.contact_uri()));
        }
        r
    }

    /// A request inside the dialog `invite` set up, from the caller's side: Request-URI from
    /// the 2xx's Contact, Route from its Record-Route reversed.
    fn caller_in_dialog(
        &mut self,
        invite: &Request,
        ok: &Response,
        method: Method,
        cseq: u32,
    ) -> Request {
        let target = ok.headers.contacts().unwrap()[0].clone().unwrap().uri;
        let mut r = Request::new(method.clone(), target);
        let via = self.via();
        let h = &mut r.headers;
        h.push(HeaderName::Via, via);
        h.push(HeaderName::MaxForwards, "70");
        for route in ok.headers.record_routes().unwrap().into_iter().rev() {
            h.push(HeaderName::Route, route.to_string());
        }
        h.push(
            HeaderName::From,
            invite.headers.get(&HeaderName::From).unwrap(),
        );
        h.push(HeaderName::To, ok.headers.get(&HeaderName::To).unwrap());
        h.push(HeaderName::CallId, invite.headers.call_id().unwrap());
        h.push(HeaderName::CSeq, format!("{cseq} {method}"));
        r
    }
}

fn title(user: &str) -> String {
    let mut c = user.chars();
    c.next()
        .map(|first| first.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

/// The ACK for a non-2xx final response: same branch as the INVITE, the response's To.
fn ack_for_failure(invite: &Request, response: &Response) -> Request {
    let mut ack = Request::new(Method::Ack, invite.uri.clone());
    let h = &mut ack.headers;
    h.push(
        HeaderName::Via,
        invite.headers.values(&HeaderName::Via)[0].to_string(),
    );
    h.push(HeaderName::MaxForwards, "70");
    h.push(
        HeaderName::From,
        invite.headers.get(&HeaderName::From).unwrap(),
    );
    h.push(
        HeaderName::To,
        response.headers.get(&HeaderName::To).unwrap(),
    );
    h.push(HeaderName::CallId, invite.headers.call_id().unwrap());
    let seq = invite.headers.cseq().unwrap().seq;
    h.push(HeaderName::CSeq, format!("{seq} ACK"));
    ack
}

fn branch(request: &Request) -> String {
    request
        .headers
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_string()
}

fn push_params(token: &str) -> String {
    format!(";pn-provider=apns;pn-prid={token};pn-param=demo.handset.voip")
}

#[test]
fn register_is_challenged_a_wrong_password_gets_403_and_the_right_one_200() {
    let mut h = Harness::new(config());
    let mut alice = Ua::udp("alice", "alice-pw", 5001);

    let first = alice.register_request(60);
    h.send(&alice, first);
    let challenge = h.expect_final(&alice, Method::Register);
    assert_eq!(challenge.status, 401);
    let value = challenge.headers.get(&HeaderName::WwwAuthenticate).unwrap();
    assert!(value.contains("realm=\"handset.demo\""), "{value}");
    assert!(value.contains("qop=\"auth\""), "{value}");

    let mut wrong = alice.register_request(60);
    alice.authorize(&mut wrong, &challenge, "not-the-password");
    h.send(&alice, wrong);
    assert_eq!(h.expect_final(&alice, Method::Register).status, 403);
    assert!(h.has_event(|e| matches!(e,
        PbxEvent::AuthFailed { user, method } if user == "alice" && method == "REGISTER")));
    assert!(h.pbx.bindings("alice", h.now).is_empty());

    // Alice's own credentials do not register Bob's address-of-record.
    let mut fake_bob = Ua::udp("bob", "alice-pw", 5002);
    let first = fake_bob.register_request(60);
    h.send(&fake_bob, first);
    let challenge = h.expect_final(&fake_bob, Method::Register);
    let mut second = fake_bob.register_request(60);
    fake_bob.user = "alice";
    fake_bob.authorize(&mut second, &challenge, "alice-pw");
    h.send(&fake_bob, second);
    assert_eq!(h.expect_final(&fake_bob, Method::Register).status, 403);
    assert!(h.pbx.bindings("bob", h.now).is_empty());

    let ok = h.register(&mut alice, 60);
    let contact = ok.headers.contacts().unwrap()[0].clone().unwrap();
    assert_eq!(contact.uri.to_string(), alice.contact_uri());
    assert_eq!(contact.expires(), Some(60));
    let bindings = h.pbx.bindings("alice", h.now);
    assert_eq!(bindings.len(), 1);
    assert_eq!(bindings[0].source, alice.flow.remote);
    assert!(h.has_event(|e| matches!(e,
        PbxEvent::Registered { user, expires: 60, push: false, .. } if user == "alice")));
}

#[test]
fn bindings_expire_in_virtual_time_and_callers_then_get_480() {
    let mut h = Harness::new(config());
    let mut alice = Ua::udp("alice", "alice-pw", 5001);
    let mut bob = Ua::udp("bob", "bob-pw", 5002);
    h.register(&mut bob, 3600);
    h.advance(Duration::from_secs(3599));
    let left = h.pbx.bindings("bob", h.now);
    assert_eq!(left.len(), 1, "the binding went early");
    assert_eq!(left[0].expires_in, Duration::from_secs(1));
    h.advance(Duration::from_secs(2));
    assert!(
        h.pbx.bindings("bob", h.now).is_empty(),
        "the binding outlived its hour"
    );

    let invite = h.invite(&mut alice, "bob");
    let refused = h.expect_final(&alice, Method::Invite);
    assert_eq!(refused.status, 480);
    assert!(h.has_event(|e| matches!(e, PbxEvent::Refused { status: 480, .. })));
    h.send(&alice, ack_for_failure(&invite, &refused));

    // Expires: 0 removes a binding at once.
    h.register(&mut bob, 60);
    assert_eq!(h.pbx.bindings("bob", h.now).len(), 1);
    let ok = h.register(&mut bob, 0);
    assert!(ok.headers.contacts().unwrap().is_empty());
    assert!(h.pbx.bindings("bob", h.now).is_empty());
    assert!(h.has_event(|e| matches!(e, PbxEvent::Unregistered { user, .. } if user == "bob")));
}

#[test]
fn an_invite_goes_to_the_binding_with_record_route_and_the_dialog_follows_it() {
    let mut h = Harness::new(config());
    let mut alice = Ua::udp("alice", "alice-pw", 5001);
    // Bob is on TCP; his REGISTER arrives in two chunks cut mid-header (the machine frames).
    let mut bob = Ua::new("bob", "bob-pw", Transport::Tcp, 5002);
    let first = bob.register_request(60).to_bytes();
    let (head, tail) = first.split_at(40);
    h.input(Input::Received {
        flow: bob.flow,
        bytes: head.to_vec(),
    });
    h.nothing_matching(&bob, |_| true);
    h.input(Input::Received {
        flow: bob.flow,
        bytes: tail.to_vec(),
    });
    let challenge = h.expect_final(&bob, Method::Register);
    let mut second = bob.register_request(60);
    bob.authorize(&mut second, &challenge, "bob-pw");
    h.send(&bob, second);
    assert_eq!(h.expect_final(&bob, Method::Register).status, 200);

    let invite = h.invite(&mut alice, "bob");
    h.expect_response(&alice, Method::Invite, 100);
    let incoming = h.expect_request(&bob, Method::Invite);
    assert_eq!(incoming.uri.to_string(), bob.contact_uri());
    assert_eq!(incoming.headers.vias().unwrap().len(), 2);
    let rr: Vec<String> = incoming
        .headers
        .record_routes()
        .unwrap()
        .iter()
        .map(|r| r.uri.to_string())
        .collect();
    // One Record-Route per transport: TCP toward Bob, UDP toward Alice.
    assert_eq!(
        rr,
        [
            format!("sip:{PBX};transport=tcp;lr"),
            format!("sip:{PBX};lr")
        ]
    );
    assert!(!incoming.headers.contains(&HeaderName::ProxyAuthorization));
    assert_eq!(incoming.headers.max_forwards().unwrap(), Some(69));
    assert_eq!(incoming.body, invite.body);
    assert!(h.has_event(|e| matches!(e,
        PbxEvent::Routed { method, to, after_push: false, .. } if method == "INVITE" && to == "bob")));

    h.send(&bob, bob.respond(&incoming, 180, "bobtag"));
    let ringing = h.expect_response(&alice, Method::Invite, 180);
    assert_eq!(
        ringing.headers.vias().unwrap().len(),
        1,
        "the PBX's Via was not removed"
    );
    h.send(&bob, bob.respond(&incoming, 200, "bobtag"));
    let ok = h.expect_response(&alice, Method::Invite, 200);
    assert!(h.has_event(|e| matches!(e, PbxEvent::CallAnswered { status: 200, .. })));

    // In-dialog requests follow the Record-Route through the PBX, to the flow Bob uses.
    let ack = alice.caller_in_dialog(&invite, &ok, Method::Ack, 2);
    h.send(&alice, ack);
    let got = h.expect_request(&bob, Method::Ack);
    assert!(
        got.headers.routes().unwrap().is_empty(),
        "the PBX's Route was not removed"
    );
    let bye = alice.caller_in_dialog(&invite, &ok, Method::Bye, 3);
    h.send(&alice, bye);
    let got = h.expect_request(&bob, Method::Bye);
    h.send(&bob, bob.respond(&got, 200, "bobtag"));
    h.expect_response(&alice, Method::Bye, 200);
    assert!(h.has_event(|e| matches!(e, PbxEvent::CallEnded { .. })));

    // Once every transaction's timers ran out, nothing of the call is left.
    h.advance(Duration::from_secs(64));
    assert_eq!(h.pbx.forward_count(), 0);
    assert_eq!(h.pbx.transaction_count(), 0);
}

#[test]
fn cancel_is_answered_here_and_sent_downstream_once_the_callee_sent_a_provisional_response() {
    let mut h = Harness::new(config());
    let mut alice = Ua::udp("alice", "alice-pw", 5001);
    let mut bob = Ua::udp("bob", "bob-pw", 5002);
    h.register(&mut bob, 60);
    let invite = h.invite(&mut alice, "bob");
    let incoming = h.expect_request(&bob, Method::Invite);

    // RFC 3261 §9.1: no CANCEL downstream before a provisional response from there.
    let cancel = handset_sip::transaction::cancel_request(&invite).unwrap();
    h.send(&alice, cancel);
    h.expect_response(&alice, Method::Cancel, 200);
    assert!(h.has_event(|e| matches!(e, PbxEvent::Cancelled { .. })));
    h.nothing_matching(&bob, is_request(Method::Cancel));

    h.send(&bob, bob.respond(&incoming, 180, "b1"));
    let got = h.expect_request(&bob, Method::Cancel);
    assert_eq!(
        branch(&got),
        branch(&incoming),
        "not the CANCEL of the INVITE sent"
    );
    h.send(&bob, bob.respond(&got, 200, "b1"));
    let terminated = bob.respond(&incoming, 487, "b1");
    h.send(&bob, terminated);
    let r = h.expect_final(&alice, Method::Invite);
    assert_eq!(r.status, 487);
    h.send(&alice, ack_for_failure(&invite, &r));
    // The PBX ACKs Bob's 487 itself, hop by hop.
    let ack = h.expect_request(&bob, Method::Ack);
    assert_eq!(branch(&ack), branch(&incoming));
}

#[test]
fn a_held_invite_is_pushed_and_released_by_the_next_register() {
    let mut h = Harness::new(push_config());
    let mut alice = Ua::udp("alice", "alice-pw", 5001);
    // Bob registered with push parameters, then his app was suspended.
    let mut sleeping = Ua::udp("bob", "bob-pw", 5002);
    sleeping.contact_params = push_params("tok123");
    h.register(&mut sleeping, 600);

    let invite = h.invite(&mut alice, "bob");
    h.expect_response(&alice, Method::Invite, 100);
    h.expect_response(&alice, Method::Invite, 180);
    let push = h.pushes.pop_front().expect("no push notification");
    assert_eq!(push.call_id, invite.headers.call_id().unwrap());
    assert_eq!(push.user, "bob");
    assert_eq!(push.device.prid.as_deref(), Some("tok123"));
    assert_eq!(push.device.param.as_deref(), Some("demo.handset.voip"));
    assert_eq!(
        push.content,
        PushContent::IncomingCall {
            from: "sip:alice@127.0.0.1".into(),
            from_name: "Alice".into()
        }
    );
    assert!(h.has_event(|e| matches!(e, PbxEvent::PushSent { user, .. } if user == "bob")));
    // RFC 8599 §5.6: the old binding may be stale; the INVITE waits for the device.
    h.nothing_matching(&sleeping, is_request(Method::Invite));

    h.advance(Duration::from_secs(5));
    h.nothing_matching(&alice, |m| is_response(m, &Method::Invite, |s| s >= 200));
    let mut woken = Ua::udp("bob", "bob-pw", 5003);
    woken.contact_params = push_params("tok123");
    h.register(&mut woken, 600);
    let incoming = h.expect_request(&woken, Method::Invite);
    assert_eq!(
        incoming.headers.call_id().unwrap(),
        invite.headers.call_id().unwrap()
    );
    assert!(incoming.uri.to_string().starts_with(&woken.contact_uri()));
    assert!(h.has_event(|e| matches!(
        e,
        PbxEvent::Routed {
            after_push: true,
            ..
        }
    )));
    h.nothing_matching(&sleeping, is_request(Method::Invite));

    h.send(&woken, woken.respond(&incoming, 200, "woke"));
    h.expect_response(&alice, Method::Invite, 200);
    // The wait is over: its deadline fires nothing later.
    h.advance(Duration::from_secs(20));
    assert!(h.pushes.is_empty(), "{:?}", h.pushes);
    h.nothing_matching(&alice, |m| is_response(m, &Method::Invite, |s| s >= 300));
}

#[test]
fn the_push_wait_runs_out_with_480_and_a_cancel_notification() {
    let wait = Duration::from_secs(10);
    let mut h = Harness::new(MachineConfig {
        push_wait: wait,
        ..push_config()
    });
    let mut alice = Ua::udp("alice", "alice-pw", 5001);
    let mut bob = Ua::udp("bob", "bob-pw", 5002);
    bob.contact_params = push_params("tok-timeout");
    h.register(&mut bob, 600);
    let invite = h.invite(&mut alice, "bob");
    let push = h.pushes.pop_front().expect("no incoming_call push");
    assert!(matches!(push.content, PushContent::IncomingCall { .. }));

    h.advance(wait - Duration::from_millis(1));
    h.nothing_matching(&alice, |m| is_response(m, &Method::Invite, |s| s >= 200));
    assert!(h.pushes.is_empty());
    h.advance(Duration::from_millis(2));
    let r = h.expect_final(&alice, Method::Invite);
    assert_eq!(r.status, 480);
    h.send(&alice, ack_for_failure(&invite, &r));
    let cancel = h.pushes.pop_front().expect("no cancel push");
    assert_eq!(cancel.call_id, invite.headers.call_id().unwrap());
    assert_eq!(cancel.device.prid.as_deref(), Some("tok-timeout"));
    assert_eq!(
        cancel.content,
        PushContent::Cancel {
            reason: CancelReason::Timeout
        }
    );
    assert!(h.has_event(|e| matches!(e, PbxEvent::PushTimeout { user, .. } if user == "bob")));

    // A registration after the wait does not resurrect the call.
    h.register(&mut bob, 600);
    h.nothing_matching(&bob, is_request(Method::Invite));
}

#[test]
fn a_cancel_while_held_gives_487_and_a_cancel_notification() {
    let mut h = Harness::new(push_config());
    let mut alice = Ua::udp("alice", "alice-pw", 5001);
    let mut bob = Ua::udp("bob", "bob-pw", 5002);
    bob.contact_params = push_params("tok-cancel");
    h.register(&mut bob, 600);
    let invite = h.invite(&mut alice, "bob");
    h.pushes.pop_front().expect("no incoming_call push");

    h.advance(Duration::from_secs(2));
    let cancel = handset_sip::transaction::cancel_request(&invite).unwrap();
    h.send(&alice, cancel);
    h.expect_response(&alice, Method::Cancel, 200);
    let r = h.expect_final(&alice, Method::Invite);
    assert_eq!(r.status, 487);
    h.send(&alice, ack_for_failure(&invite, &r));
    let push = h.pushes.pop_front().expect("no cancel push");
    assert_eq!(
        push.content,
        PushContent::Cancel {
            reason: CancelReason::CallerCancelled
        }
    );
    // The wait was ended by the CANCEL: no timeout later.
    h.advance(Duration::from_secs(30));
    assert!(h.pushes.is_empty(), "{:?}", h.pushes);
    assert!(!h.has_event(|e| matches!(e, PbxEvent::PushTimeout { .. })));
}

#[test]
fn timer_c_cancels_an_invite_ringing_three_minutes_after_its_last_provisional_response() {
    let mut h = Harness::new(config());
    let mut alice = Ua::udp("alice", "alice-pw", 5001);
    let mut bob = Ua::udp("bob", "bob-pw", 5002);
    h.register(&mut bob, 3600);
    let invite = h.invite(&mut alice, "bob");
    let incoming = h.expect_request(&bob, Method::Invite);
    h.send(&bob, bob.respond(&incoming, 180, "b1"));
    h.expect_response(&alice, Method::Invite, 180);

    // A new provisional response restarts Timer C (RFC 3261 §16.7 step 2).
    h.advance(Duration::from_secs(100));
    h.send(&bob, bob.respond(&incoming, 183, "b1"));
    h.advance(Duration::from_secs(179));
    h.nothing_matching(&alice, |m| is_response(m, &Method::Invite, |s| s >= 200));
    h.nothing_matching(&bob, is_request(Method::Cancel));

    h.advance(Duration::from_secs(2));
    let cancel = h.expect_request(&bob, Method::Cancel);
    assert_eq!(branch(&cancel), branch(&incoming));
    let r = h.expect_final(&alice, Method::Invite);
    assert_eq!(r.status, 408);
    h.send(&alice, ack_for_failure(&invite, &r));
    h.send(&bob, bob.respond(&cancel, 200, "b1"));
    h.send(&bob, bob.respond(&incoming, 487, "b1"));
    h.expect_request(&bob, Method::Ack);
    // The PBX answered already: Bob's 487 goes no further.
    h.nothing_matching(&alice, |m| is_response(m, &Method::Invite, |s| s == 487));
    h.advance(Duration::from_secs(64));
    assert_eq!(h.pbx.forward_count(), 0);
}

#[test]
fn garbage_datagrams_and_stream_bytes_never_panic_and_the_machine_keeps_working() {
    let mut h = Harness::new(push_config());
    let mut rng = StdRng::seed_from_u64(0x5eed);
    let mut alice = Ua::udp("alice", "alice-pw", 5001);
    let samples: Vec<Vec<u8>> = vec![
        alice.register_request(60).to_bytes(),
        alice.invite_request("bob", "g1", 1).to_bytes(),
        bob_ok(&mut alice).to_bytes(),
    ];
    for round in 0..3000u32 {
        let bytes = match round % 3 {
            // Pure noise.
            0 => {
                let mut noise = vec![0u8; rng.random_range(0..1500)];
                rng.fill_bytes(&mut noise);
                noise
            }
            // A real message, cut short and with bytes overwritten.
            _ => {
                let mut message = samples[rng.random_range(0..samples.len())].clone();
                message.truncate(rng.random_range(0..=message.len()));
                for _ in 0..rng.random_range(0..8) {
                    if !message.is_empty() {
                        let at = rng.random_range(0..message.len());
                        message[at] = rng.random();
                    }
                }
                message
            }
        };
        let port = 6000 + (round % 7) as u16;
        let transport = if round % 2 == 0 {
            Transport::Udp
        } else {
            Transport::Tcp
        };
        let flow = Flow::new(transport, SocketAddr::from(([127, 0, 0, 1], port)));
        h.input(Input::Received { flow, bytes });
        if round % 100 == 0 {
            h.advance(Duration::from_secs(1));
        }
    }
    // 64 KiB of header with no end is a stream that lost its framing: it is closed.
    let flooded = Flow::new(Transport::Tcp, SocketAddr::from(([127, 0, 0, 1], 7000)));
    for _ in 0..70 {
        h.input(Input::Received {
            flow: flooded,
            bytes: vec![b'a'; 1024],
        });
    }
    assert!(
        h.disconnects.contains(&flooded),
        "a flooded stream was not closed"
    );

    // Some damaged messages still parsed and reached the registrar and the proxy (so the
    // noise went past the parser), and were answered.
    let answered = h
        .sent
        .iter()
        .filter(|(_, m)| matches!(m, Message::Response(r) if matches!(r.status, 401 | 407)))
        .count();
    assert!(answered > 10, "only {answered} challenges");

    // Still a registrar and a proxy.
    h.sent.clear();
    let mut bob = Ua::udp("bob", "bob-pw", 5002);
    h.register(&mut bob, 60);
    let mut alice_tcp = Ua::new("alice", "alice-pw", Transport::Tcp, 5003);
    h.register(&mut alice_tcp, 60);
    assert_eq!(h.pbx.bindings("alice", h.now).len(), 1);
}

/// A response-looking message for the garbage samples.
fn bob_ok(alice: &mut Ua) -> Response {
    let invite = alice.invite_request("bob", "g2", 1);
    Ua::udp("bob", "bob-pw", 5002).respond(&invite, 200, "t")
}
