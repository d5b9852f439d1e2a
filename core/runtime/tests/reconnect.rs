//! A registrar that drops the TCP connection after answering: the runtime must notice the
//! closed flow, open a new connection and register again on it (same Call-ID, next CSeq),
//! without waiting for the refresh timer. The registrar is a real TCP peer on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use handset::{AccountConfig, Handset, HandsetEvent, RegistrationEvent, RuntimeConfig, Transport};
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

async fn next_event(
    events: &mut tokio::sync::mpsc::UnboundedReceiver<HandsetEvent>,
) -> RegistrationEvent {
    match tokio::time::timeout(Duration::from_secs(10), events.recv()).await {
        Ok(Some(HandsetEvent::Registration { event, .. })) => event,
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
        RegistrationEvent::Registering
    );
    assert_eq!(
        next_event(&mut events).await,
        RegistrationEvent::Registered { expires: 3600 }
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
        RegistrationEvent::Registering
    );
    assert_eq!(
        next_event(&mut events).await,
        RegistrationEvent::Registered { expires: 3600 }
    );
    handset.shutdown().await;
}
