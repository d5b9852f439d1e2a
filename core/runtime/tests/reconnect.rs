//! TCP connections to a registrar that is a real TCP peer on loopback:
//! - the registrar drops the connection after answering: the runtime must notice the closed
//!   flow, open a new connection and register again on it (same Call-ID, next CSeq), without
//!   waiting for the refresh timer;
//! - CRLF keep-alive pings run in the foreground, stop while the app is backgrounded with push
//!   enabled (the OS wakes it by push; pings would keep waking it), and come back in the
//!   foreground; without push they go on in the background.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use handset::{AccountConfig, Handset, HandsetEvent, RegistrationState, RuntimeConfig, Transport};
use handset_sip::message::{HeaderName, Message, Request, Response, StreamFramer, StreamItem};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn read_request(stream: &mut TcpStream) -> Request {
    let mut framer = StreamFramer::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(item) = framer.next_item() {
            match item.expect("well-formed request") {
                StreamItem::Message(Message::Request(r)) => return r,
                StreamItem::Ping => stream.write_all(b"\r\n").await.unwrap(),
                other => panic!("unexpected {other:?}"),
            }
            continue;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("request within 10 s")
            .unwrap();
        assert!(n > 0, "client closed the connection");
        framer.push(&buf[..n]);
    }
}

async fn answer_ok(stream: &mut TcpStream, request: &Request) {
    let mut ok = Response::to_request(request, 200);
    let to = ok.headers.get(&HeaderName::To).unwrap().to_string();
    ok.headers.set(HeaderName::To, format!("{to};tag=reg"));
    let contact = request
        .headers
        .get(&HeaderName::Contact)
        .unwrap()
        .to_string();
    ok.headers
        .push(HeaderName::Contact, format!("{contact};expires=3600"));
    stream.write_all(&ok.to_bytes()).await.unwrap();
}

async fn next_event(events: &mut handset::Events) -> RegistrationState {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(HandsetEvent::Registration { state, .. })) => state,
        other => panic!("no event: {other:?}"),
    }
}

#[tokio::test]
async fn dropped_tcp_connection_is_reopened_and_registration_renewed() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    let mut account = AccountConfig::new(format!("sip:127.0.0.1:{port}"), "alice", "secret");
    account.transport = Some(Transport::Tcp);
    handset.add_account(account).await.unwrap();

    let (mut first, _) = listener.accept().await.unwrap();
    let register = read_request(&mut first).await;
    answer_ok(&mut first, &register).await;
    assert_eq!(
        next_event(&mut events).await,
        RegistrationState::Registering
    );
    assert_eq!(
        next_event(&mut events).await,
        RegistrationState::Registered { expires: 3600 }
    );
    drop(first);

    let (mut second, _) = tokio::time::timeout(Duration::from_secs(10), listener.accept())
        .await
        .expect("the runtime connects again")
        .unwrap();
    let again = read_request(&mut second).await;
    assert_eq!(
        again.headers.call_id().unwrap(),
        register.headers.call_id().unwrap()
    );
    assert_eq!(
        again.headers.cseq().unwrap().seq,
        register.headers.cseq().unwrap().seq + 1
    );
    answer_ok(&mut second, &again).await;
    assert_eq!(
        next_event(&mut events).await,
        RegistrationState::Registering
    );
    assert_eq!(
        next_event(&mut events).await,
        RegistrationState::Registered { expires: 3600 }
    );
    handset.shutdown().await;
}

/// A registrar that answers the first REGISTER and then counts the client's pings (answering
/// each with a pong). Returns the server URI and the ping counter.
async fn counting_registrar() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pings = Arc::new(AtomicUsize::new(0));
    let counter = pings.clone();
    tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let register = read_request(&mut stream).await;
        answer_ok(&mut stream, &register).await;
        let mut framer = StreamFramer::new();
        let mut buf = [0u8; 4096];
        loop {
            while let Some(item) = framer.next_item() {
                match item {
                    Ok(StreamItem::Ping) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        if stream.write_all(b"\r\n").await.is_err() {
                            return;
                        }
                    }
                    Ok(StreamItem::Message(Message::Request(r))) => {
                        answer_ok(&mut stream, &r).await
                    }
                    _ => {}
                }
            }
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => framer.push(&buf[..n]),
            }
        }
    });
    (format!("sip:{addr};transport=tcp"), pings)
}

/// Pings counted over `window`.
async fn pings_during(pings: &AtomicUsize, window: Duration) -> usize {
    let before = pings.load(Ordering::SeqCst);
    tokio::time::sleep(window).await;
    pings.load(Ordering::SeqCst) - before
}

async fn registered_over_tcp(push: bool) -> (Handset, handset::Events, Arc<AtomicUsize>) {
    let (server, pings) = counting_registrar().await;
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        keepalive: Duration::from_millis(200),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    let mut config = AccountConfig::new(server, "keep", "pw");
    config.transport = Some(Transport::Tcp);
    if push {
        config.contact_params = vec![
            ("pn-provider".into(), Some("apns".into())),
            ("pn-prid".into(), Some("device-token".into())),
            ("pn-param".into(), Some("TEAM.app.voip".into())),
        ];
    }
    handset.add_account(config).await.unwrap();
    loop {
        if let RegistrationState::Registered { .. } = next_event(&mut events).await {
            break;
        }
    }
    (handset, events, pings)
}

#[tokio::test]
async fn no_keepalive_pings_while_backgrounded_with_push() {
    let (handset, _events, pings) = registered_over_tcp(true).await;
    let window = Duration::from_millis(1500);
    let foreground = pings_during(&pings, window).await;
    assert!(foreground >= 3, "pings in the foreground: {foreground}");

    handset.set_foreground(false).unwrap();
    // A ping already on the wire may still arrive.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let background = pings_during(&pings, window).await;
    assert_eq!(background, 0, "no pings in the background with push");

    handset.set_foreground(true).unwrap();
    let again = pings_during(&pings, window).await;
    assert!(again >= 3, "pings back in the foreground: {again}");
    handset.shutdown().await;
}

#[tokio::test]
async fn keepalive_pings_go_on_in_the_background_without_push() {
    let (handset, _events, pings) = registered_over_tcp(false).await;
    handset.set_foreground(false).unwrap();
    let background = pings_during(&pings, Duration::from_millis(1500)).await;
    assert!(
        background >= 3,
        "pings in the background without push: {background}"
    );
    handset.shutdown().await;
}
