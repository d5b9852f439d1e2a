//! The security rules that are about real I/O, over loopback sockets (the phone's own rules
//! run in virtual time in `tests/tests/security_sim.rs`):
//! - a panic inside the phone machine reaches the application as `PhoneEvent::Stopped`, and
//!   every later API call fails with `HandsetError::Stopped`, instead of a silent dead phone;
//! - a server that accepts a TCP connection and never finishes the TLS handshake delays
//!   nobody: the phone answers on its UDP socket at once and its other accounts go on;
//! - the runtime labels each datagram with the address it came from, so the phone's
//!   "out-of-dialog requests only from the account's flow" rule holds on real sockets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handset::audio::{FakeDevice, FakeSource};
use handset::{
    AccountConfig, AccountId, CallOptions, CallUpdate, EndReason, Events, Handset, HandsetError,
    HandsetEvent, RegistrationState, RuntimeConfig, Transport,
};
use handset_phone::phone::{CallerInfo, Directory};
use handset_sip::message::{HeaderName, Message, Method, Request, Response, Uri};
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::mpsc;

const LOCALHOST: Ipv4Addr = Ipv4Addr::LOCALHOST;
const LIMIT: Duration = Duration::from_secs(5);

/// A loopback address with a free UDP port (for a phone whose address the peer must know).
fn free_udp_addr() -> SocketAddr {
    std::net::UdpSocket::bind((LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
}

/// An out-of-dialog request from `from` to user 1001 at the phone's `to`.
fn request(method: Method, from: SocketAddr, to: SocketAddr, call_id: &str) -> Request {
    let mut request = Request::new(
        method.clone(),
        Uri::parse(&format!("sip:1001@{to}")).unwrap(),
    );
    let h = &mut request.headers;
    h.push(
        HeaderName::Via,
        format!("SIP/2.0/UDP {from};branch=z9hG4bK-{call_id};rport"),
    );
    h.push(HeaderName::MaxForwards, "70");
    h.push(
        HeaderName::From,
        format!("<sip:2000@{from}>;tag=f-{call_id}"),
    );
    h.push(HeaderName::To, format!("<sip:1001@{to}>"));
    h.push(HeaderName::CallId, call_id);
    h.push(HeaderName::CSeq, format!("1 {method}"));
    h.push(HeaderName::Contact, format!("<sip:2000@{from}>"));
    request
}

/// An INVITE without an offer (the phone would offer in its 200).
fn invite(from: SocketAddr, to: SocketAddr, call_id: &str) -> Vec<u8> {
    request(Method::Invite, from, to, call_id).to_bytes()
}

fn reply(request: &Request, status: u16) -> Response {
    let mut response = Response::to_request(request, status);
    let to = response.headers.get(&HeaderName::To).unwrap().to_string();
    if !to.contains("tag=") {
        response
            .headers
            .set(HeaderName::To, format!("{to};tag=srv"));
    }
    response
}

/// The next SIP message on `socket` within `limit`, with its source.
async fn receive(socket: &UdpSocket, limit: Duration) -> Option<(Message, SocketAddr)> {
    let mut buf = vec![0u8; 65_535];
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let (n, from) = tokio::time::timeout_at(deadline, socket.recv_from(&mut buf))
            .await
            .ok()?
            .ok()?;
        if let Ok(message) = Message::parse(&buf[..n]) {
            return Some((message, from));
        }
    }
}

fn status_of(message: &Message) -> Option<(u16, Method)> {
    match message {
        Message::Response(r) => Some((r.status, r.headers.cseq().ok()?.method)),
        Message::Request(_) => None,
    }
}

/// A UDP account at `server` that does not register.
fn trunk_account(server: SocketAddr) -> AccountConfig {
    let mut account = AccountConfig::new(format!("sip:{server}"), "1001", "secret");
    account.transport = Some(Transport::Udp);
    account.register = false;
    account
}

fn silent_call() -> CallOptions {
    CallOptions {
        device: Box::new(FakeDevice::new(FakeSource::Silence)),
        media: None,
        report_id: None,
    }
}

/// A caller directory that fails in the worst way.
struct PanickingDirectory;

impl Directory for PanickingDirectory {
    fn caller(&self, _number: &str) -> CallerInfo {
        panic!("the directory lookup blew up")
    }
}

/// The bug this pins: a panic inside the phone (here a caller lookup, before that a `Reason`
/// header sliced mid-character) used to kill the run loop's task and leave the app a phone
/// that silently answered nothing, with every API call still "succeeding". The runtime must
/// turn it into one `PhoneEvent::Stopped` and make every later call fail with `Stopped`.
#[tokio::test]
async fn a_panic_inside_the_phone_stops_the_runtime_with_an_event_and_later_calls_fail() {
    let server = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let server_addr = server.local_addr().unwrap();
    let phone_addr = free_udp_addr();
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: phone_addr,
        directory: Some(Arc::new(PanickingDirectory)),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    let account = handset
        .add_account(trunk_account(server_addr))
        .await
        .unwrap();

    // The account's server calls; the INVITE is sent again (as Timer A would) until the phone
    // has located its server and takes it.
    let deadline = Instant::now() + LIMIT;
    let reason = loop {
        assert!(Instant::now() < deadline, "no Stopped event");
        server
            .send_to(&invite(server_addr, phone_addr, "boom"), phone_addr)
            .await
            .unwrap();
        match tokio::time::timeout(Duration::from_millis(200), events.recv()).await {
            Ok(Some(HandsetEvent::Stopped { reason })) => break reason,
            Ok(Some(_)) | Err(_) => {}
            Ok(None) => panic!("the event stream ended without Stopped"),
        }
    };
    assert!(
        reason.contains("the directory lookup blew up"),
        "the reason tells what happened: {reason}"
    );
    assert_eq!(
        handset.call(account, "2002", silent_call()).await,
        Err(HandsetError::Stopped)
    );
    assert_eq!(
        handset.add_account(trunk_account(server_addr)).await,
        Err(HandsetError::Stopped)
    );
    handset.shutdown().await;
}

/// The attack, on real sockets: a stranger on the network sends the phone an INVITE directly.
/// The runtime must label each datagram with its real source so the phone can drop it
/// (nothing comes back), while the same INVITE from the account's server rings.
#[tokio::test]
async fn a_strangers_invite_on_real_udp_gets_nothing_back_while_the_servers_rings() {
    let server = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let server_addr = server.local_addr().unwrap();
    let stranger = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let stranger_addr = stranger.local_addr().unwrap();
    let phone_addr = free_udp_addr();
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: phone_addr,
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    handset
        .add_account(trunk_account(server_addr))
        .await
        .unwrap();

    // The server's INVITE, sent again until the phone answers it (it has located its server).
    let mut rings = false;
    for _ in 0..25 {
        server
            .send_to(&invite(server_addr, phone_addr, "from-server"), phone_addr)
            .await
            .unwrap();
        if let Some((message, _)) = receive(&server, Duration::from_millis(200)).await
            && status_of(&message).is_some_and(|(status, _)| status == 180)
        {
            rings = true;
            break;
        }
    }
    assert!(rings, "the server's INVITE rings");
    let incoming = tokio::time::timeout(LIMIT, events.recv()).await.unwrap();
    assert!(
        matches!(
            incoming,
            Some(HandsetEvent::Call {
                update: CallUpdate::Incoming { .. },
                ..
            })
        ),
        "{incoming:?}"
    );

    for method in [Method::Invite, Method::Message] {
        stranger
            .send_to(
                &request(method.clone(), stranger_addr, phone_addr, "stranger").to_bytes(),
                phone_addr,
            )
            .await
            .unwrap();
        let answer = receive(&stranger, Duration::from_millis(500)).await;
        assert!(answer.is_none(), "a stranger's {method}: {answer:?}");
    }
    // OPTIONS is answered whoever asks.
    stranger
        .send_to(
            &request(Method::Options, stranger_addr, phone_addr, "ping").to_bytes(),
            phone_addr,
        )
        .await
        .unwrap();
    let (answer, _) = receive(&stranger, LIMIT).await.expect("OPTIONS answered");
    assert_eq!(status_of(&answer), Some((200, Method::Options)));
    // Nothing came of the stranger's requests: no second call, no message.
    let strays: Vec<HandsetEvent> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| {
            matches!(
                e,
                HandsetEvent::Call {
                    update: CallUpdate::Incoming { .. },
                    ..
                } | HandsetEvent::MessageReceived { .. }
            )
        })
        .collect();
    assert!(strays.is_empty(), "{strays:?}");
    handset.shutdown().await;
}

/// A registrar on a loopback UDP socket: binds every REGISTER, refuses every INVITE with 486,
/// answers anything else 200; tells the test what it received and from where.
async fn registrar(socket: UdpSocket, seen: mpsc::UnboundedSender<(Request, SocketAddr)>) {
    let mut buf = vec![0u8; 65_535];
    while let Ok((n, from)) = socket.recv_from(&mut buf).await {
        let Ok(Message::Request(request)) = Message::parse(&buf[..n]) else {
            continue;
        };
        let response = match request.method {
            Method::Ack => None,
            Method::Register => {
                let mut ok = reply(&request, 200);
                let contact = request.headers.get(&HeaderName::Contact).unwrap();
                ok.headers
                    .push(HeaderName::Contact, format!("{contact};expires=3600"));
                Some(ok)
            }
            Method::Invite => Some(reply(&request, 486)),
            _ => Some(reply(&request, 200)),
        };
        if let Some(response) = response {
            let _ = socket.send_to(&response.to_bytes(), from).await;
        }
        if seen.send((request, from)).is_err() {
            return;
        }
    }
}

async fn wait_event(events: &mut Events, wanted: impl Fn(&HandsetEvent) -> bool) -> HandsetEvent {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if wanted(&event) => return event,
            Ok(Some(HandsetEvent::Stopped { reason })) => panic!("stopped: {reason}"),
            Ok(Some(_)) => {}
            other => panic!("no matching event within {LIMIT:?}: {other:?}"),
        }
    }
}

fn registration_of(event: &HandsetEvent, account: AccountId) -> Option<&RegistrationState> {
    match event {
        HandsetEvent::Registration { account: a, state } if *a == account => Some(state),
        _ => None,
    }
}

/// The bug this pins (issue 9, point 2): a TLS handshake ran inside the run loop, so a server
/// that accepted the TCP connection and then said nothing froze the whole phone until the
/// connect timeout — no OPTIONS answered, no other account registering or calling. Connecting
/// now runs in a task of its own: while the handshake hangs, an OPTIONS to the phone's UDP
/// port is answered within 100 ms, and the other account registers and places a call. (A
/// multi-threaded runtime, as in the apps: a loop blocked on a handshake would not be saved by
/// the other worker.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_finishes_the_tls_handshake_delays_nobody() {
    // The silent TLS server: accepts, reads, never writes.
    let silent = TcpListener::bind((LOCALHOST, 0)).await.unwrap();
    let silent_addr = silent.local_addr().unwrap();
    let udp_server = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let udp_server_addr = udp_server.local_addr().unwrap();
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    tokio::spawn(registrar(udp_server, seen_tx));
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::from((LOCALHOST, 0)),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();

    let mut stuck = AccountConfig::new(format!("sips:{silent_addr}"), "1002", "secret");
    stuck.transport = Some(Transport::Tls);
    let stuck = handset.add_account(stuck).await.unwrap();
    let (mut hanging, _) = tokio::time::timeout(LIMIT, silent.accept())
        .await
        .expect("the phone connects to the silent server")
        .unwrap();
    let handshake_started = Instant::now();
    let mut hello = [0u8; 512];
    let n = tokio::time::timeout(LIMIT, hanging.read(&mut hello))
        .await
        .expect("a ClientHello")
        .unwrap();
    assert!(
        n > 0 && hello[0] == 0x16,
        "the phone started a TLS handshake"
    );

    // The other account registers meanwhile.
    let mut working = AccountConfig::new(format!("sip:{udp_server_addr}"), "1001", "secret");
    working.transport = Some(Transport::Udp);
    let working = handset.add_account(working).await.unwrap();
    wait_event(&mut events, |e| {
        matches!(
            registration_of(e, working),
            Some(RegistrationState::Registered { .. })
        )
    })
    .await;
    let (_, phone_addr) = seen.recv().await.expect("the REGISTER");

    // OPTIONS from somewhere on the network, answered at once, again and again.
    let prober = UdpSocket::bind((LOCALHOST, 0)).await.unwrap();
    let prober_addr = prober.local_addr().unwrap();
    for n in 0..5 {
        let sent = Instant::now();
        prober
            .send_to(
                &request(
                    Method::Options,
                    prober_addr,
                    phone_addr,
                    &format!("probe-{n}"),
                )
                .to_bytes(),
                phone_addr,
            )
            .await
            .unwrap();
        let (answer, _) = receive(&prober, LIMIT).await.expect("OPTIONS answered");
        let took = sent.elapsed();
        assert_eq!(status_of(&answer), Some((200, Method::Options)));
        assert!(
            took < Duration::from_millis(100),
            "OPTIONS {n} answered in {took:?} while a TLS handshake hangs"
        );
    }

    // And it places a call on the working account (the server refuses it with 486).
    let call = handset.call(working, "2002", silent_call()).await.unwrap();
    let ended = wait_event(&mut events, |e| {
        matches!(e, HandsetEvent::Call { call: c, update: CallUpdate::Ended { .. }, .. } if *c == call)
    })
    .await;
    assert!(
        matches!(
            ended,
            HandsetEvent::Call {
                update: CallUpdate::Ended {
                    reason: EndReason::Busy,
                    ..
                },
                ..
            }
        ),
        "{ended:?}"
    );
    let invited = std::iter::from_fn(|| seen.try_recv().ok())
        .any(|(request, _)| request.method == Method::Invite);
    assert!(invited, "the INVITE reached the working account's server");

    // All of it happened while the handshake was still hanging (the connect timeout is 10 s),
    // and the stuck account never got further than trying.
    assert!(handshake_started.elapsed() < Duration::from_secs(10));
    let stuck_states: Vec<HandsetEvent> = std::iter::from_fn(|| events.try_recv().ok())
        .filter(|e| registration_of(e, stuck).is_some())
        .collect();
    assert!(
        stuck_states.iter().all(|e| matches!(
            registration_of(e, stuck),
            Some(RegistrationState::Registering)
        )),
        "{stuck_states:?}"
    );
    drop(hanging);
    handset.shutdown().await;
}
