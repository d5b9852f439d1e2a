//! The phone's security rules (`handset_phone::phone`, "Security rules, by construction"),
//! each proven in virtual time against hostile peers scripted on the simulated network
//! (`handset_tests::sim`):
//!
//! 1. out-of-dialog requests are taken only from an account's flow (OPTIONS aside, or when the
//!    account opts in with `accept_direct_requests`);
//! 2. credentials go only to the account's realms, never to a realm the far end or a foreign
//!    server names;
//! 3. a flood of INVITEs rings at most `max_calls` calls, binds no RTP socket, and leaves
//!    nothing behind once the ring timeout and the SIP timers have run;
//! 4. what the phone sends on its own is rate-limited whatever the server answers;
//! 5. hostile text in a CANCEL's `Reason` ends the call as cancelled, and the phone goes on.
//!
//! The addresses are made up (127.0.9.x) and never reach a socket. The rules about real I/O
//! (a panic inside the phone, a TLS handshake that never ends) are in
//! `core/runtime/tests/security.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use handset_media::sdp::{
    MediaConfig, OfferKeys, SessionDescription, SessionIdentity, answer, create_offer,
};
use handset_phone::phone::{
    AccountConfig, AccountId, CallId, CallState, CallUpdate, Command, EndReason, PhoneConfig,
    PhoneEvent, Record, RegistrationState, Reply,
};
use handset_sip::message::{HeaderName, Message, Method, Request, Response, Uri};
use handset_sip::transport::{Flow, Transport};
use handset_tests::sim::{FixedDirectory, Link, PhoneRef, Script, Sim};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// Long enough for any exchange on the clean simulated link.
const LIMIT: Duration = Duration::from_secs(40);
/// Longer than every SIP timer that keeps a finished transaction (64·T1 = 32 s).
const SIP_TIMERS: Duration = Duration::from_secs(40);

fn addr(host: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 9, host], 5060))
}

/// The phone under attack.
fn phone_addr() -> SocketAddr {
    addr(1)
}

/// The account's server (registrar and proxy).
fn server_addr() -> SocketAddr {
    addr(2)
}

/// Somebody who can reach the phone's address and is not its server.
fn stranger_addr() -> SocketAddr {
    addr(66)
}

// ----- messages as peers send them ------------------------------------------------------------

/// An out-of-dialog request from a peer at `from` to the phone's user 1001 at `to`. The branch
/// is made of the Call-ID and CSeq number (a CANCEL shares its INVITE's).
fn request(
    method: Method,
    transport: Transport,
    from: SocketAddr,
    to: SocketAddr,
    call_id: &str,
    cseq: u32,
) -> Request {
    let uri = Uri::parse(&format!("sip:1001@{to}")).unwrap();
    let mut request = Request::new(method.clone(), uri);
    let h = &mut request.headers;
    h.push(
        HeaderName::Via,
        format!(
            "SIP/2.0/{} {from};branch=z9hG4bK-{call_id}-{cseq}",
            transport.via_name()
        ),
    );
    h.push(HeaderName::MaxForwards, "70");
    h.push(
        HeaderName::From,
        format!("\"Mallory\" <sip:2000@{}>;tag=f-{call_id}", from.ip()),
    );
    h.push(HeaderName::To, format!("<sip:1001@{}>", to.ip()));
    h.push(HeaderName::CallId, call_id);
    h.push(HeaderName::CSeq, format!("{cseq} {method}"));
    h.push(HeaderName::Contact, format!("<sip:2000@{from}>"));
    match method {
        Method::Message => {
            h.push(HeaderName::ContentType, "text/plain");
            request.body = b"click this link".to_vec();
        }
        Method::Subscribe => {
            h.push(HeaderName::Event, "message-summary");
            h.push(HeaderName::Expires, "3600");
        }
        Method::Notify => {
            h.push(HeaderName::Event, "message-summary");
            h.push(
                HeaderName::Other("Subscription-State".into()),
                "active;expires=3600",
            );
            h.push(
                HeaderName::ContentType,
                "application/simple-message-summary",
            );
            request.body = b"Messages-Waiting: yes\r\nVoice-Message: 9/0\r\n".to_vec();
        }
        _ => {}
    }
    request
}

/// A new INVITE with an SDP offer the phone can answer.
fn invite(transport: Transport, from: SocketAddr, to: SocketAddr, call_id: &str) -> Request {
    let mut rng = StdRng::seed_from_u64(5);
    let offer = create_offer(
        &MediaConfig::default(),
        SocketAddr::new(from.ip(), 30_000),
        &mut SessionIdentity::new(&mut rng),
        &OfferKeys::generate(&mut rng),
    );
    let mut invite = request(Method::Invite, transport, from, to, call_id, 1);
    invite
        .headers
        .push(HeaderName::ContentType, "application/sdp");
    invite.body = offer.print().into_bytes();
    invite
}

/// The CANCEL of `invite` (same branch, Call-ID, From, To and CSeq number), with extra headers.
fn cancel(invite: &Request, extra: &[(HeaderName, &str)]) -> Request {
    let mut cancel = Request::new(Method::Cancel, invite.uri.clone());
    for name in [
        HeaderName::Via,
        HeaderName::MaxForwards,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
    ] {
        for value in invite.headers.get_all(&name) {
            cancel.headers.push(name.clone(), value);
        }
    }
    let seq = invite.headers.cseq().unwrap().seq;
    cancel
        .headers
        .push(HeaderName::CSeq, format!("{seq} CANCEL"));
    for (name, value) in extra {
        cancel.headers.push(name.clone(), *value);
    }
    cancel
}

/// A response from a scripted peer, with its To tag.
fn reply(request: &Request, status: u16) -> Response {
    let mut response = Response::to_request(request, status);
    if response.headers.to().is_ok_and(|to| to.tag().is_none())
        && let Some(to) = response.headers.get(&HeaderName::To).map(str::to_string)
    {
        response
            .headers
            .set(HeaderName::To, format!("{to};tag=srv"));
    }
    response
}

/// A Digest challenge (401 with WWW-Authenticate, 407 with Proxy-Authenticate).
fn challenge(request: &Request, status: u16, realm: &str, nonce: &str, stale: bool) -> Response {
    let mut response = reply(request, status);
    let name = if status == 401 {
        HeaderName::WwwAuthenticate
    } else {
        HeaderName::ProxyAuthenticate
    };
    let stale = if stale { ", stale=true" } else { "" };
    response.headers.push(
        name,
        format!("Digest realm=\"{realm}\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"{stale}"),
    );
    response
}

/// A 200 to a REGISTER, granting its Contact for an hour.
fn registered(request: &Request) -> Response {
    let mut ok = reply(request, 200);
    if let Some(contact) = request.headers.get(&HeaderName::Contact) {
        ok.headers
            .push(HeaderName::Contact, format!("{contact};expires=3600"));
    }
    ok
}

/// The ACK a peer owes for a failure response to its INVITE (RFC 3261 §17.1.1.3).
fn ack_for(response: &Response) -> Option<Request> {
    let cseq = response.headers.cseq().ok()?;
    if cseq.method != Method::Invite || response.status < 300 {
        return None;
    }
    let mut ack = Request::new(
        Method::Ack,
        Uri::parse(&format!("sip:1001@{}", phone_addr())).unwrap(),
    );
    for name in [
        HeaderName::Via,
        HeaderName::From,
        HeaderName::To,
        HeaderName::CallId,
    ] {
        for value in response.headers.get_all(&name) {
            ack.headers.push(name.clone(), value);
        }
    }
    ack.headers.push(HeaderName::MaxForwards, "70");
    ack.headers
        .push(HeaderName::CSeq, format!("{} ACK", cseq.seq));
    Some(ack)
}

/// Answers SDP offers as a far end would (one RTP address, its own keys).
struct Answerer {
    me: SocketAddr,
    rng: StdRng,
    identity: SessionIdentity,
    keys: OfferKeys,
}

impl Answerer {
    fn new(me: SocketAddr) -> Answerer {
        let mut rng = StdRng::seed_from_u64(99);
        let identity = SessionIdentity::new(&mut rng);
        let keys = OfferKeys::generate(&mut rng);
        Answerer {
            me,
            rng,
            identity,
            keys,
        }
    }

    /// A 200 with an SDP answer to the INVITE's offer.
    fn ok(&mut self, request: &Request) -> Response {
        let offer = SessionDescription::parse_bytes(&request.body).unwrap();
        let (sdp, _) = answer(
            &offer,
            &MediaConfig::default(),
            SocketAddr::new(self.me.ip(), 30_000),
            &mut self.identity,
            &mut self.keys,
            &mut self.rng,
        )
        .unwrap();
        let mut ok = reply(request, 200);
        ok.headers
            .push(HeaderName::Contact, format!("<sip:2002@{}>", self.me));
        ok.headers.push(HeaderName::ContentType, "application/sdp");
        ok.body = sdp.print().into_bytes();
        ok
    }
}

fn in_dialog(request: &Request) -> bool {
    request.headers.to().is_ok_and(|to| to.tag().is_some())
}

fn has(request: &Request, name: &HeaderName) -> bool {
    request.headers.contains(name)
}

/// The flows the server heard the phone on (the last REGISTER's is the account's flow).
type Heard = Rc<RefCell<Vec<Flow>>>;

/// A registrar that binds every REGISTER at once, ACKs the phone's failure responses to the
/// INVITEs sent to it, answers every other request 200, and notes where the phone talks from.
fn plain_registrar(heard: Heard) -> Script {
    Box::new(move |_now, from, message| match message {
        Message::Request(request) => {
            heard.borrow_mut().push(from);
            let response = match request.method {
                Method::Register => registered(&request),
                Method::Ack => return Vec::new(),
                _ => reply(&request, 200),
            };
            vec![(from, Message::Response(response))]
        }
        Message::Response(response) => ack_for(&response)
            .map(|ack| vec![(from, Message::Request(ack))])
            .unwrap_or_default(),
    })
}

// ----- the phone's side -------------------------------------------------------------------

fn add_account(sim: &mut Sim, phone: PhoneRef, config: AccountConfig) -> AccountId {
    match sim.command(phone, Command::AddAccount(Box::new(config))) {
        Ok(Reply::Account(id)) => id,
        other => panic!("account not added: {other:?}"),
    }
}

fn server_account(transport: Transport) -> AccountConfig {
    let mut config = AccountConfig::new(format!("sip:{}", server_addr()), "1001", "secret");
    config.transport = Some(transport);
    config
}

fn wait_registered(sim: &mut Sim, phone: PhoneRef) {
    sim.wait_event_since(phone, 0, LIMIT, |e| {
        matches!(
            e,
            PhoneEvent::Registration {
                state: RegistrationState::Registered { .. },
                ..
            }
        )
    })
    .expect("the account registers");
}

fn dial(sim: &mut Sim, phone: PhoneRef, account: AccountId, target: &str) -> CallId {
    match sim.command(
        phone,
        Command::Dial {
            account,
            target: target.into(),
            media: None,
            report_id: None,
        },
    ) {
        Ok(Reply::Call(id)) => id,
        other => panic!("not dialled: {other:?}"),
    }
}

/// Waits for an update of `call` matching `wanted` among all its updates so far and to come.
fn wait_update(
    sim: &mut Sim,
    phone: PhoneRef,
    call: CallId,
    wanted: impl Fn(&CallUpdate) -> bool,
) -> Option<CallUpdate> {
    match sim.wait_event_since(
        phone,
        0,
        LIMIT,
        |e| matches!(e, PhoneEvent::Call { call: c, update, .. } if *c == call && wanted(update)),
    ) {
        Some(PhoneEvent::Call { update, .. }) => Some(update),
        _ => None,
    }
}

fn end_reason(sim: &mut Sim, phone: PhoneRef, call: CallId) -> EndReason {
    match wait_update(sim, phone, call, |u| matches!(u, CallUpdate::Ended { .. })) {
        Some(CallUpdate::Ended { reason, .. }) => reason,
        other => panic!("call {call} did not end: {other:?}"),
    }
}

/// The incoming calls the phone announced after its first `seen` events.
fn incoming_since(sim: &Sim, phone: PhoneRef, seen: usize) -> Vec<CallId> {
    sim.phone(phone)
        .event_list()
        .into_iter()
        .skip(seen)
        .filter_map(|e| match e {
            PhoneEvent::Call {
                call,
                update: CallUpdate::Incoming { .. },
                ..
            } => Some(*call),
            _ => None,
        })
        .collect()
}

/// Every request the phone sent, with when it went out (retransmissions included).
fn sent_requests(sim: &Sim) -> Vec<(Instant, Request)> {
    sim.packets
        .iter()
        .filter(|p| p.from.ip() == phone_addr().ip())
        .filter_map(|p| match p.message() {
            Some(Message::Request(r)) => Some((p.sent, r)),
            _ => None,
        })
        .collect()
}

/// The first transmission of each request matching `wanted` (one per CSeq and Call-ID).
fn distinct_requests(sim: &Sim, wanted: impl Fn(&Request) -> bool) -> Vec<(Instant, Request)> {
    let mut seen = BTreeSet::new();
    sent_requests(sim)
        .into_iter()
        .filter(|(_, r)| wanted(r))
        .filter(|(_, r)| {
            seen.insert((
                r.headers.call_id().unwrap().to_string(),
                r.headers.cseq().unwrap().seq,
                r.method.to_string(),
            ))
        })
        .collect()
}

/// The realms the phone answered with credentials (Authorization, Proxy-Authorization), in
/// every packet it sent.
fn realms_answered(sim: &Sim) -> BTreeSet<String> {
    let mut realms = BTreeSet::new();
    for (_, request) in sent_requests(sim) {
        for name in [HeaderName::Authorization, HeaderName::ProxyAuthorization] {
            for value in request.headers.get_all(&name) {
                let realm = value
                    .split_once("realm=\"")
                    .and_then(|(_, rest)| rest.split_once('"'))
                    .map(|(realm, _)| realm.to_string())
                    .unwrap_or_else(|| format!("<no realm in {value}>"));
                realms.insert(realm);
            }
        }
    }
    realms
}

/// The kinds of the packets the phone sent to `to`.
fn packets_to(sim: &Sim, to: SocketAddr) -> Vec<String> {
    sim.packets
        .iter()
        .filter(|p| p.from.ip() == phone_addr().ip() && p.to == to)
        .map(|p| p.kind())
        .collect()
}

// ----- 1. out-of-dialog requests only from the account's flow ---------------------------------

/// The attack: anybody who can reach the phone's address — another host on the Wi-Fi, a
/// scanner on the Internet that found the port — sends it INVITEs or MESSAGEs directly,
/// bypassing the PBX and its caller checks: fake caller IDs ring the phone, spam messages
/// appear, and each request costs a transaction. The phone must take out-of-dialog requests
/// only from its account's flow (the server's address for UDP, its connection for TCP) and
/// drop everything else silently, before it makes a transaction.
fn strangers_get_nothing(transport: Transport) {
    let mut sim = Sim::new(1, Link::clean());
    let phone = sim.add_phone(
        "phone",
        phone_addr(),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    let heard: Heard = Rc::default();
    sim.add_script(server_addr(), plain_registrar(heard.clone()));
    add_account(&mut sim, phone, server_account(transport));
    wait_registered(&mut sim, phone);
    let account_flow = *heard
        .borrow()
        .last()
        .expect("the server heard the REGISTER");
    assert_eq!(account_flow.transport, transport);
    // Let the REGISTER's transaction end: from now on every transaction is the attack's.
    sim.run_for(SIP_TIMERS);
    assert_eq!(sim.phone(phone).phone.transaction_count(), 0);

    // Hostile sources: a stranger over UDP and TCP, the server's host on another port, and
    // (on a TCP account) the server's own address and port spoofed over UDP.
    let server_other_port = SocketAddr::new(server_addr().ip(), 5070);
    let mut sources = vec![
        (stranger_addr(), Transport::Udp),
        (stranger_addr(), Transport::Tcp),
        (server_other_port, Transport::Udp),
    ];
    if transport != Transport::Udp {
        sources.push((server_addr(), Transport::Udp));
    }
    let events_before = sim.phone(phone).events.len();
    for (n, (source, via)) in sources.iter().enumerate() {
        for method in [
            Method::Invite,
            Method::Message,
            Method::Subscribe,
            Method::Notify,
        ] {
            let call_id = format!("stranger-{n}-{method}");
            let bytes = if method == Method::Invite {
                invite(*via, *source, phone_addr(), &call_id).to_bytes()
            } else {
                request(method.clone(), *via, *source, phone_addr(), &call_id, 1).to_bytes()
            };
            let packets_before = sim.packets.len();
            sim.inject(*source, phone_addr(), *via, bytes);
            sim.run_for(Duration::from_secs(2));
            let node = sim.phone(phone);
            assert_eq!(
                node.phone.transaction_count(),
                0,
                "{method} from {source} over {via}: no transaction"
            );
            assert_eq!(node.phone.call_count(), 0, "{method} from {source}");
            assert_eq!(
                node.events.len(),
                events_before,
                "{method} from {source} over {via}: no event: {:?}",
                &node.events[events_before..]
            );
            let answers: Vec<String> = sim.packets[packets_before..]
                .iter()
                .filter(|p| p.from.ip() == phone_addr().ip() && !p.is_keepalive())
                .map(|p| format!("{} to {}", p.kind(), p.to))
                .collect();
            assert!(
                answers.is_empty(),
                "{method} from {source} over {via}: nothing goes back: {answers:?}"
            );
        }
    }

    // The same INVITE and MESSAGE on the account's flow ring and arrive: what was dropped
    // was well-formed, and dropped for where it came from.
    let seen = sim.mark(phone);
    let to = match transport {
        Transport::Udp => phone_addr(),
        // The phone's end of its connection to the server.
        _ => *heard
            .borrow()
            .iter()
            .find(|f| f.transport == transport)
            .map(|f| &f.remote)
            .unwrap(),
    };
    let call_id = "from-the-server";
    sim.inject(
        server_addr(),
        to,
        transport,
        invite(transport, server_addr(), phone_addr(), call_id).to_bytes(),
    );
    sim.inject(
        server_addr(),
        to,
        transport,
        request(
            Method::Message,
            transport,
            server_addr(),
            phone_addr(),
            "server-message",
            1,
        )
        .to_bytes(),
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        incoming_since(&sim, phone, seen).len(),
        1,
        "the server's INVITE rings"
    );
    assert!(
        sim.phone(phone)
            .event_list()
            .iter()
            .skip(seen)
            .any(|e| matches!(e, PhoneEvent::MessageReceived { .. })),
        "the server's MESSAGE arrives"
    );

    // OPTIONS is answered whoever asks (it reveals nothing and makes no state but its
    // transaction).
    sim.inject(
        stranger_addr(),
        phone_addr(),
        Transport::Udp,
        request(
            Method::Options,
            Transport::Udp,
            stranger_addr(),
            phone_addr(),
            "stranger-options",
            1,
        )
        .to_bytes(),
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(
        packets_to(&sim, stranger_addr()),
        ["200 OPTIONS"],
        "a stranger's OPTIONS gets its 200 and nothing else ever went to the stranger"
    );
}

/// A stranger's (or a spoofed other-port) INVITE, MESSAGE, SUBSCRIBE or NOTIFY to the phone of
/// a UDP account: dropped silently (see `strangers_get_nothing`).
#[test]
fn out_of_dialog_requests_from_strangers_are_dropped_on_a_udp_account() {
    strangers_get_nothing(Transport::Udp);
}

/// The same on a TCP-only account, where even the server's own address is a stranger over UDP
/// (anyone can spoof a UDP source): only the account's connection counts.
#[test]
fn out_of_dialog_requests_from_strangers_are_dropped_on_a_tcp_only_account() {
    strangers_get_nothing(Transport::Tcp);
}

/// The opt-in: a peer-to-peer setup (no PBX, e.g. a door intercom calling the phone straight)
/// sets `accept_direct_requests`, and then a direct INVITE rings and a direct MESSAGE
/// arrives. Pins that the drop above is the rule's doing, switchable per account.
#[test]
fn an_account_that_accepts_direct_requests_rings_for_a_direct_invite() {
    let mut sim = Sim::new(2, Link::clean());
    let phone = sim.add_phone(
        "phone",
        phone_addr(),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    sim.add_script(server_addr(), plain_registrar(Rc::default()));
    let mut config = server_account(Transport::Udp);
    config.accept_direct_requests = true;
    add_account(&mut sim, phone, config);
    wait_registered(&mut sim, phone);
    let seen = sim.mark(phone);
    sim.inject(
        stranger_addr(),
        phone_addr(),
        Transport::Udp,
        invite(Transport::Udp, stranger_addr(), phone_addr(), "direct").to_bytes(),
    );
    sim.inject(
        stranger_addr(),
        phone_addr(),
        Transport::Udp,
        request(
            Method::Message,
            Transport::Udp,
            stranger_addr(),
            phone_addr(),
            "direct-message",
            1,
        )
        .to_bytes(),
    );
    sim.run_for(Duration::from_secs(2));
    assert_eq!(incoming_since(&sim, phone, seen).len(), 1, "it rings");
    assert!(
        sim.phone(phone)
            .event_list()
            .iter()
            .skip(seen)
            .any(|e| matches!(e, PhoneEvent::MessageReceived { .. }))
    );
    let back = packets_to(&sim, stranger_addr());
    assert!(
        back.contains(&"180 INVITE".to_string()) && back.contains(&"200 MESSAGE".to_string()),
        "{back:?}"
    );
}

// ----- 2. credentials only for the account's realms ---------------------------------------------

/// A PBX in realm "pbx" (REGISTER, INVITE and MESSAGE challenged in it) whose far ends are
/// hostile: the callee challenges our re-INVITE and BYE in realm "evil", user "evil" is a
/// destination whose own proxy challenges INVITE and MESSAGE in realm "evil".
fn pbx_with_hostile_far_ends() -> Script {
    let mut answerer = Answerer::new(server_addr());
    let mut nonce = 0u32;
    Box::new(move |_now, from, message| {
        let Message::Request(request) = message else {
            return Vec::new();
        };
        nonce += 1;
        let nonce = format!("n{nonce}");
        let user = request.uri.as_sip().and_then(|u| u.user.clone());
        let authorized = has(&request, &HeaderName::Authorization)
            || has(&request, &HeaderName::ProxyAuthorization);
        let response = match (&request.method, user.as_deref()) {
            (Method::Ack, _) => return Vec::new(),
            (Method::Register, _) if authorized => registered(&request),
            (Method::Register, _) => challenge(&request, 401, "pbx", &nonce, false),
            (Method::Invite | Method::Bye, _) if in_dialog(&request) => {
                challenge(&request, 401, "evil", &nonce, false)
            }
            (Method::Invite | Method::Message, Some("evil")) => {
                challenge(&request, 407, "evil", &nonce, false)
            }
            (Method::Invite | Method::Message, _) if !authorized => {
                challenge(&request, 407, "pbx", &nonce, false)
            }
            (Method::Invite, _) => answerer.ok(&request),
            _ => reply(&request, 200),
        };
        vec![(from, Message::Response(response))]
    })
}

fn wait_message_outcome(sim: &mut Sim, phone: PhoneRef, message: Reply) -> PhoneEvent {
    let Reply::Message(id) = message else {
        panic!("not sent: {message:?}")
    };
    sim.wait_event_since(phone, 0, LIMIT, |e| {
        matches!(e, PhoneEvent::MessageDelivered { message } | PhoneEvent::MessageFailed { message, .. } if *message == id)
    })
    .expect("the message's outcome")
}

/// The attack: the phone's password digest is only as safe as the realms it answers. A
/// callee (any SIP user reachable through the PBX) challenges our re-INVITE or BYE with its
/// own realm and gets a digest response computed from our password, which it can crack
/// offline or replay; a destination's proxy does the same to our INVITE or MESSAGE. The
/// phone must answer only the realm its registrar challenged with (learned from REGISTER)
/// and refuse every other: no Authorization naming "evil" in anything it sends.
#[test]
fn credentials_go_only_to_the_registrars_realm() {
    let mut sim = Sim::new(3, Link::clean());
    let phone = sim.add_phone(
        "phone",
        phone_addr(),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    sim.add_script(server_addr(), pbx_with_hostile_far_ends());
    let account = add_account(&mut sim, phone, server_account(Transport::Udp));
    wait_registered(&mut sim, phone);

    // The registrar's realm answers the INVITE's 407.
    let call = dial(&mut sim, phone, account, "2002");
    assert!(
        wait_update(&mut sim, phone, call, |u| matches!(
            u,
            CallUpdate::Answered { .. }
        ))
        .is_some(),
        "the INVITE challenged in the registrar's realm is answered and connects"
    );
    // The callee challenges our re-INVITE in its own realm: refused, the call goes on.
    sim.command(
        phone,
        Command::Hold {
            call,
            on_hold: true,
        },
    )
    .unwrap();
    sim.run_for(Duration::from_secs(10));
    assert!(
        matches!(
            sim.phone(phone).phone.call_state(call),
            Some(CallState::Active { on_hold: false, .. })
        ),
        "{:?}",
        sim.phone(phone).phone.call_state(call)
    );
    // And our BYE: the call ends all the same.
    sim.command(phone, Command::Hangup(call)).unwrap();
    assert_eq!(end_reason(&mut sim, phone, call), EndReason::LocalHangup);

    // A destination whose proxy challenges in its realm: the call fails, unanswered.
    let evil_call = dial(&mut sim, phone, account, "evil");
    assert!(matches!(
        end_reason(&mut sim, phone, evil_call),
        EndReason::Failed { .. }
    ));
    // The same for a MESSAGE; one to a friend, challenged in the registrar's realm, goes.
    let to_evil = sim
        .command(
            phone,
            Command::SendMessage {
                account,
                target: "evil".into(),
                text: "hello".into(),
            },
        )
        .unwrap();
    assert!(matches!(
        wait_message_outcome(&mut sim, phone, to_evil),
        PhoneEvent::MessageFailed { .. }
    ));
    let to_friend = sim
        .command(
            phone,
            Command::SendMessage {
                account,
                target: "2002".into(),
                text: "hello".into(),
            },
        )
        .unwrap();
    assert!(matches!(
        wait_message_outcome(&mut sim, phone, to_friend),
        PhoneEvent::MessageDelivered { .. }
    ));
    sim.run_for(SIP_TIMERS);

    // Every packet the phone sent: credentials named the registrar's realm only.
    assert_eq!(
        realms_answered(&sim),
        BTreeSet::from(["pbx".to_string()]),
        "only the registrar's realm got a digest"
    );
    // Nothing challenged in realm "evil" was sent again (with or without credentials).
    let reinvites = distinct_requests(&sim, |r| r.method == Method::Invite && in_dialog(r));
    assert_eq!(
        reinvites.len(),
        1,
        "the challenged re-INVITE is not retried"
    );
    let byes = distinct_requests(&sim, |r| r.method == Method::Bye);
    assert_eq!(byes.len(), 1, "the challenged BYE is not retried");
    let to_evil_user = |r: &Request| {
        r.uri.as_sip().and_then(|u| u.user.as_deref()) == Some("evil")
            && matches!(r.method, Method::Invite | Method::Message)
    };
    assert_eq!(
        distinct_requests(&sim, to_evil_user).len(),
        2,
        "one INVITE and one MESSAGE to the hostile destination, none retried"
    );
}

/// A trunk in realm "trunk" for an account that does not register: it challenges INVITEs to
/// anyone but "open", and every MESSAGE in realm "other"; the callee of "open" challenges the
/// re-INVITE in realm "evil".
fn trunk() -> Script {
    let mut answerer = Answerer::new(server_addr());
    let mut nonce = 0u32;
    Box::new(move |_now, from, message| {
        let Message::Request(request) = message else {
            return Vec::new();
        };
        nonce += 1;
        let nonce = format!("t{nonce}");
        let user = request.uri.as_sip().and_then(|u| u.user.clone());
        let authorized = has(&request, &HeaderName::ProxyAuthorization);
        let response = match (&request.method, user.as_deref()) {
            (Method::Ack, _) => return Vec::new(),
            (Method::Invite, _) if in_dialog(&request) => {
                challenge(&request, 401, "evil", &nonce, false)
            }
            (Method::Invite, Some("open")) => answerer.ok(&request),
            (Method::Invite, _) if !authorized => challenge(&request, 407, "trunk", &nonce, false),
            (Method::Invite, _) => answerer.ok(&request),
            (Method::Message, _) => challenge(&request, 407, "other", &nonce, false),
            _ => reply(&request, 200),
        };
        vec![(from, Message::Response(response))]
    })
}

/// The attack: an account that does not register has no registrar to learn its realm from,
/// so it takes the realm of the first challenge its server sends to an out-of-dialog request
/// — and only that one. A callee who challenges first, inside a dialog, must not become the
/// account's realm (it would then get digests for everything), and a later challenge in
/// another realm must not be answered either.
#[test]
fn an_account_without_registration_learns_only_its_servers_first_realm() {
    let mut sim = Sim::new(4, Link::clean());
    let phone = sim.add_phone(
        "phone",
        phone_addr(),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    sim.add_script(server_addr(), trunk());
    let mut config = server_account(Transport::Udp);
    config.register = false;
    let account = add_account(&mut sim, phone, config);

    // First challenge of all: in-dialog, from the callee. Not answered, not learned.
    let call = dial(&mut sim, phone, account, "open");
    assert!(
        wait_update(&mut sim, phone, call, |u| matches!(
            u,
            CallUpdate::Answered { .. }
        ))
        .is_some()
    );
    sim.command(
        phone,
        Command::Hold {
            call,
            on_hold: true,
        },
    )
    .unwrap();
    sim.run_for(Duration::from_secs(10));
    sim.command(phone, Command::Hangup(call)).unwrap();
    end_reason(&mut sim, phone, call);
    assert!(
        realms_answered(&sim).is_empty(),
        "the callee's challenge got nothing"
    );

    // First out-of-dialog challenge from the server: realm "trunk", answered from now on.
    for target in ["2002", "2003"] {
        let call = dial(&mut sim, phone, account, target);
        assert!(
            wait_update(&mut sim, phone, call, |u| matches!(
                u,
                CallUpdate::Answered { .. }
            ))
            .is_some(),
            "the call to {target} is answered after the trunk's challenge"
        );
        sim.command(phone, Command::Hangup(call)).unwrap();
        end_reason(&mut sim, phone, call);
    }
    // A second realm from the same server is not learned.
    let message = sim
        .command(
            phone,
            Command::SendMessage {
                account,
                target: "2002".into(),
                text: "hello".into(),
            },
        )
        .unwrap();
    assert!(matches!(
        wait_message_outcome(&mut sim, phone, message),
        PhoneEvent::MessageFailed { .. }
    ));
    sim.run_for(SIP_TIMERS);
    assert_eq!(realms_answered(&sim), BTreeSet::from(["trunk".to_string()]));
    let reinvites = distinct_requests(&sim, |r| r.method == Method::Invite && in_dialog(r));
    assert_eq!(reinvites.len(), 1, "the callee's challenge is not retried");
}

// ----- 3. call cap, ring timeout, no RTP socket while ringing --------------------------------

/// The bug this pins: 300 INVITEs spoofed from the account's server address (UDP makes that
/// easy) left 210 calls ringing forever and 210 RTP sockets open — every INVITE made a call, a
/// call rang until somebody answered, and its socket was bound when it started ringing. With
/// the phone's defaults: at most `max_calls` ring, the rest get 486, no RTP socket is bound
/// for any of them, and after the ring timeout every call is gone and every transaction ends.
#[test]
fn a_flood_of_invites_rings_at_most_max_calls_binds_no_socket_and_leaves_nothing() {
    let config = PhoneConfig::default();
    let (max_calls, ring_timeout) = (config.max_calls, config.ring_timeout);
    let mut sim = Sim::new(5, Link::clean());
    let phone = sim.add_phone("phone", phone_addr(), config, FixedDirectory::default());
    sim.add_script(server_addr(), plain_registrar(Rc::default()));
    add_account(&mut sim, phone, server_account(Transport::Udp));
    wait_registered(&mut sim, phone);
    let seen = sim.mark(phone);

    const FLOOD: usize = 300;
    for n in 0..FLOOD {
        sim.inject(
            server_addr(),
            phone_addr(),
            Transport::Udp,
            invite(
                Transport::Udp,
                server_addr(),
                phone_addr(),
                &format!("flood-{n}"),
            )
            .to_bytes(),
        );
    }
    sim.run_for(Duration::from_secs(5));
    let ringing = incoming_since(&sim, phone, seen);
    assert_eq!(ringing.len(), max_calls, "at most max_calls ring");
    assert_eq!(
        sim.count("486 INVITE", Some(phone_addr())),
        FLOOD - max_calls,
        "the rest are busy"
    );
    assert_eq!(
        sim.phone(phone).sockets_bound,
        0,
        "no RTP socket while ringing"
    );

    sim.run_for(ring_timeout);
    for call in &ringing {
        assert_eq!(end_reason(&mut sim, phone, *call), EndReason::Unanswered);
    }
    assert_eq!(sim.count("480 INVITE", Some(phone_addr())), max_calls);
    sim.run_for(SIP_TIMERS);
    let node = sim.phone(phone);
    assert_eq!(node.phone.call_count(), 0, "every call is gone");
    assert_eq!(node.phone.transaction_count(), 0, "every transaction ended");
    assert_eq!(node.sockets_bound, 0, "no RTP socket was ever bound");
    let missed = node
        .records
        .iter()
        .filter(|r| matches!(r, Record::Call(c) if c.missed()))
        .count();
    assert_eq!(
        missed, FLOOD,
        "each INVITE is one missed call in the history"
    );
}

// ----- 4. requests the phone sends on its own are rate-limited ---------------------------------

/// The account's token bucket (core/phone/src/phone/rate.rs): 8 at once, then one per 10 s.
const ACCOUNT_BURST: usize = 8;
const ACCOUNT_REFILL: Duration = Duration::from_secs(10);
/// A call's: 6 at once, then one per 5 s.
const CALL_BURST: usize = 6;
const CALL_REFILL: Duration = Duration::from_secs(5);
/// How long the hostile servers keep at it.
const SIEGE: Duration = Duration::from_secs(600);

fn most_in(window: Duration, burst: usize, refill: Duration) -> usize {
    burst + (window.as_secs() / refill.as_secs()) as usize
}

/// Checks a count of requests over [`SIEGE`] against a bucket: at most the bucket allows,
/// at least `at_least` (the server did keep the phone busy), and past the burst no two
/// closer than the refill.
fn assert_bucket(times: &[Instant], burst: usize, refill: Duration, at_least: usize, what: &str) {
    let most = most_in(SIEGE, burst, refill);
    assert!(
        (at_least..=most).contains(&times.len()),
        "{what}: {} sent in {SIEGE:?}, expected {at_least}..={most}",
        times.len()
    );
    let settled = times.len() / 2;
    for pair in times[settled..].windows(2) {
        assert!(
            pair[1] - pair[0] >= refill,
            "{what}: two requests {:?} apart after the burst",
            pair[1] - pair[0]
        );
    }
}

fn register_times(sim: &Sim, since: Instant) -> Vec<Instant> {
    distinct_requests(sim, |r| r.method == Method::Register)
        .into_iter()
        .map(|(at, _)| at)
        .filter(|at| *at >= since)
        .collect()
}

/// A phone on a UDP account at a scripted registrar, run for [`SIEGE`]; returns the sim.
fn besieged_registration(registrar: Script) -> (Sim, PhoneRef, Instant) {
    let mut sim = Sim::new(6, Link::clean());
    let phone = sim.add_phone(
        "phone",
        phone_addr(),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    sim.add_script(server_addr(), registrar);
    let start = sim.now;
    add_account(&mut sim, phone, server_account(Transport::Udp));
    sim.run_for(SIEGE);
    (sim, phone, start)
}

/// The bug this pins: behind a NAT whose mapping a registrar sees change (or a registrar that
/// lies), every 200 OK to REGISTER carried `received`/`rport` different from the Contact just
/// sent; the phone rewrote its Contact and registered again at once — a UDP account sent
/// about 1,900 REGISTERs a second and never registered. The account's token bucket bounds
/// that whatever the registrar answers.
#[test]
fn a_registrar_moving_our_contact_every_time_gets_a_bounded_number_of_registers() {
    let mut port = 20_000u16;
    let nat = Box::new(move |_now, from: Flow, message| {
        let Message::Request(request) = message else {
            return Vec::new();
        };
        let mut ok = registered(&request);
        port += 1;
        let via = request.headers.get(&HeaderName::Via).unwrap();
        let via = format!(
            "{};received={};rport={port}",
            via.replace(";rport", ""),
            from.remote.ip()
        );
        ok.headers.remove(&HeaderName::Via);
        ok.headers.push_front(HeaderName::Via, via);
        vec![(from, Message::Response(ok))]
    });
    let (sim, _, start) = besieged_registration(nat);
    let times = register_times(&sim, start);
    assert_bucket(
        &times,
        ACCOUNT_BURST,
        ACCOUNT_REFILL,
        most_in(SIEGE, ACCOUNT_BURST, ACCOUNT_REFILL) - 2,
        "REGISTERs to a NAT-moving registrar",
    );
    // The phone did follow the registrar: its Contact moved with nearly every REGISTER.
    let contacts: BTreeSet<String> = distinct_requests(&sim, |r| r.method == Method::Register)
        .iter()
        .filter_map(|(_, r)| r.headers.get(&HeaderName::Contact).map(str::to_string))
        .collect();
    assert!(contacts.len() > times.len() / 2, "{contacts:?}");
}

/// A registrar that answers every REGISTER with a fresh 401 (new nonce, `stale=true`), in
/// `realms` in turn.
fn stale_forever(realms: &'static [&'static str]) -> Script {
    let mut n = 0usize;
    Box::new(move |_now, from, message| {
        let Message::Request(request) = message else {
            return Vec::new();
        };
        n += 1;
        let realm = realms[n % realms.len()];
        vec![(
            from,
            Message::Response(challenge(&request, 401, realm, &format!("s{n}"), true)),
        )]
    })
}

/// The bug this pins: a registrar that declares every nonce stale (broken, or hostile) made
/// the phone answer each fresh 401 at once, forever. With one realm the digest session gives
/// up after a few stale challenges in a row; a registrar that alternates between two realms
/// defeats that count (each realm's nonce was "used twice"), and then only the account's
/// token bucket stands between it and a REGISTER flood.
#[test]
fn a_registrar_answering_every_register_with_a_stale_401_gets_a_bounded_number() {
    let (sim, phone, start) = besieged_registration(stale_forever(&["pbx"]));
    let times = register_times(&sim, start);
    assert!(
        times.len() <= most_in(SIEGE, ACCOUNT_BURST, ACCOUNT_REFILL),
        "{} REGISTERs",
        times.len()
    );
    assert!(
        sim.phone(phone).event_list().iter().any(|e| matches!(
            e,
            PhoneEvent::Registration {
                state: RegistrationState::Failed { retry_in: None, .. },
                ..
            }
        )),
        "one stale realm: the account gives up"
    );

    let (sim, _, start) = besieged_registration(stale_forever(&["pbx", "pbx-b"]));
    let times = register_times(&sim, start);
    assert_bucket(
        &times,
        ACCOUNT_BURST,
        ACCOUNT_REFILL,
        most_in(SIEGE, ACCOUNT_BURST, ACCOUNT_REFILL) - 2,
        "REGISTERs to a registrar alternating stale realms",
    );
}

/// A far end that answers the first INVITE with 200 and its SDP, and every re-INVITE with
/// `reinvite_status` when given (491 Request Pending: a peer that never lets a re-INVITE
/// through), else with 200 and its SDP too.
fn far_end(reinvite_status: Option<u16>) -> Script {
    let mut answerer = Answerer::new(server_addr());
    Box::new(move |_now, from, message| {
        let Message::Request(request) = message else {
            return Vec::new();
        };
        let response = match request.method {
            Method::Ack => return Vec::new(),
            Method::Invite => match reinvite_status {
                Some(status) if in_dialog(&request) => reply(&request, status),
                _ => answerer.ok(&request),
            },
            _ => reply(&request, 200),
        };
        vec![(from, Message::Response(response))]
    })
}

/// A phone (simulation `seed`, clean links) whose non-registering account has dialed the far
/// end `script` and been answered.
fn answered_call(seed: u64, script: Script) -> (Sim, PhoneRef, CallId) {
    let mut sim = Sim::new(seed, Link::clean());
    let phone = sim.add_phone(
        "phone",
        phone_addr(),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    sim.add_script(server_addr(), script);
    let mut config = server_account(Transport::Udp);
    config.register = false;
    let account = add_account(&mut sim, phone, config);
    let call = dial(&mut sim, phone, account, "2002");
    assert!(
        wait_update(&mut sim, phone, call, |u| matches!(
            u,
            CallUpdate::Answered { .. }
        ))
        .is_some()
    );
    (sim, phone, call)
}

/// The bug this pins: RFC 3261 §14.1 says to retry a re-INVITE refused with 491 after 2.1–4 s,
/// and says nothing about stopping: a peer that answers every re-INVITE with 491 kept the
/// phone re-INVITing every 3 s for the whole call, and the user never learned that the hold
/// did not happen. Now the offer is retried `MAX_GLARE_RETRIES` times, then counts as refused:
/// the application hears the call's unchanged hold state again, and the call goes on. (The
/// call's token bucket stays behind it as the backstop for anything the call sends on its
/// own.)
#[test]
fn a_peer_answering_every_reinvite_with_491_gets_a_bounded_number() {
    use handset_sip::usage::invite::MAX_GLARE_RETRIES;
    let (mut sim, phone, call) = answered_call(7, far_end(Some(491)));
    let start = sim.now;
    let mark = sim.mark(phone);
    sim.command(
        phone,
        Command::Hold {
            call,
            on_hold: true,
        },
    )
    .unwrap();
    sim.run_for(SIEGE);
    let times: Vec<Instant> =
        distinct_requests(&sim, |r| r.method == Method::Invite && in_dialog(r))
            .into_iter()
            .map(|(at, _)| at)
            .filter(|at| *at >= start)
            .collect();
    assert_eq!(
        times.len(),
        1 + usize::from(MAX_GLARE_RETRIES),
        "re-INVITEs refused with 491: {times:?}"
    );
    let told = sim.phone(phone).events.iter().skip(mark).any(|(_, e)| {
        matches!(
            e,
            PhoneEvent::Call { call: c, update: CallUpdate::Hold { on_hold: false }, .. } if *c == call
        )
    });
    assert!(told, "the application hears that the call is not held");
    assert!(
        matches!(
            sim.phone(phone).phone.call_state(call),
            Some(CallState::Active { on_hold: false, .. })
        ),
        "the call itself goes on, not held"
    );
}

/// What the call's token bucket is for: whatever makes a call send in-dialog requests over
/// and over — here an application that toggles hold as fast as the call lets it, against a
/// peer that accepts everything — the phone sends 6 at once and then one per 5 s, not one
/// per round trip.
#[test]
fn a_call_toggled_on_and_off_hold_without_pause_sends_a_bounded_number_of_reinvites() {
    let (mut sim, phone, call) = answered_call(8, far_end(None));
    let start = sim.now;
    let mut on_hold = false;
    while sim.now < start + SIEGE {
        // The call refuses a toggle while the previous one is pending; the app just tries
        // again 100 ms later.
        if sim
            .command(
                phone,
                Command::Hold {
                    call,
                    on_hold: !on_hold,
                },
            )
            .is_ok()
        {
            on_hold = !on_hold;
        }
        sim.run_for(Duration::from_millis(100));
    }
    let times: Vec<Instant> =
        distinct_requests(&sim, |r| r.method == Method::Invite && in_dialog(r))
            .into_iter()
            .map(|(at, _)| at)
            .filter(|at| *at >= start)
            .collect();
    assert_bucket(
        &times,
        CALL_BURST,
        CALL_REFILL,
        most_in(SIEGE, CALL_BURST, CALL_REFILL) - 2,
        "hold/resume re-INVITEs",
    );
}

// ----- 5. hostile Reason text in a CANCEL ----------------------------------------------------

/// The bug this pins: the run loop read a CANCEL's `Reason` protocol with `reason[..3]`, which
/// panicked on `Reason: abé` (the third byte falls inside `é`); after that the phone answered
/// nothing at all. Now every ringing call cancelled with hostile `Reason` text ends as
/// cancelled (a missed call), and the phone goes on answering. The well-formed value at the
/// end shows the header does reach the phone's reading of it.
#[test]
fn a_cancel_with_a_hostile_reason_ends_the_call_and_the_phone_goes_on() {
    let hostile = [
        "abé",
        "é",
        "ab",
        "",
        ";",
        "SIé;cause=200",
        "SIP;cause=2é0",
        "SIP;cause=",
        "SIP;cause=99999999999999999999999",
        "SIP;;;==;cause",
        "Q.850;cause=16;text=\"ééé\"",
        "ééééééééééééééééééééééééééééééééééééééééééééééééééé",
        "SIP;cause=200é",
    ];
    let mut sim = Sim::new(8, Link::clean());
    let phone = sim.add_phone(
        "phone",
        phone_addr(),
        PhoneConfig::default(),
        FixedDirectory::default(),
    );
    sim.add_script(server_addr(), plain_registrar(Rc::default()));
    add_account(&mut sim, phone, server_account(Transport::Udp));
    wait_registered(&mut sim, phone);
    let cases = hostile
        .iter()
        .map(|reason| (*reason, EndReason::Cancelled))
        .chain([(
            "SIP ;cause=200;text=\"elsewhere\"",
            EndReason::AnsweredElsewhere,
        )]);
    for (n, (reason, expected)) in cases.enumerate() {
        let seen = sim.mark(phone);
        let invite = invite(
            Transport::Udp,
            server_addr(),
            phone_addr(),
            &format!("cancelled-{n}"),
        );
        sim.inject(
            server_addr(),
            phone_addr(),
            Transport::Udp,
            invite.to_bytes(),
        );
        sim.run_for(Duration::from_secs(1));
        let [call] = incoming_since(&sim, phone, seen)[..] else {
            panic!("{reason:?}: the call rings")
        };
        let reason_header = HeaderName::Other("Reason".into());
        sim.inject(
            server_addr(),
            phone_addr(),
            Transport::Udp,
            cancel(&invite, &[(reason_header, reason)]).to_bytes(),
        );
        assert_eq!(
            end_reason(&mut sim, phone, call),
            expected,
            "Reason: {reason:?}"
        );
        let options_before = sim.count("200 OPTIONS", Some(phone_addr()));
        sim.inject(
            server_addr(),
            phone_addr(),
            Transport::Udp,
            request(
                Method::Options,
                Transport::Udp,
                server_addr(),
                phone_addr(),
                &format!("after-{n}"),
                1,
            )
            .to_bytes(),
        );
        sim.run_for(Duration::from_secs(1));
        assert_eq!(
            sim.count("200 OPTIONS", Some(phone_addr())),
            options_before + 1,
            "after Reason: {reason:?}, the phone still answers"
        );
    }
    assert_eq!(
        sim.count("487 INVITE", Some(phone_addr())),
        hostile.len() + 1
    );
}
