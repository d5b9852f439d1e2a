//! The TURN client against the real coturn (Debian's `/usr/bin/turnserver`) on loopback.
//!
//! Each test starts its own coturn ([`handset_tests::coturn::Coturn`]). Every packet stays on
//! 127.0.0.1.

// This file is the I/O around the sans-IO client: real sockets, the real clock, a child
// process.
#![allow(clippy::disallowed_methods, clippy::unwrap_used)]

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use handset_stun::channel_data::is_channel_data;
use handset_stun::message::{Class, Message, Method};
use handset_stun::turn::{
    StreamFramer, TurnClient, TurnError, TurnEvent, TurnReceived, TurnServer, TurnTransport,
};
use handset_tests::coturn::{Coturn, PASSWORD};
use rand::SeedableRng;
use rand::rngs::StdRng;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// How long one step of an exchange may take before the test gives up.
const PATIENCE: Duration = Duration::from_secs(5);

/// The client's connection to coturn.
enum Link {
    Udp {
        socket: UdpSocket,
        server: SocketAddr,
    },
    Tcp {
        stream: TcpStream,
        framer: StreamFramer,
    },
}

impl Link {
    fn open(transport: TurnTransport, server: SocketAddr) -> Link {
        match transport {
            TurnTransport::Udp => Link::Udp {
                socket: UdpSocket::bind((LOOPBACK, 0)).expect("client socket"),
                server,
            },
            TurnTransport::Tcp => Link::Tcp {
                stream: TcpStream::connect(server).expect("TCP connection to coturn"),
                framer: StreamFramer::new(),
            },
            TurnTransport::Tls => unreachable!("coturn runs without TLS here"),
        }
    }

    fn local_addr(&self) -> SocketAddr {
        match self {
            Link::Udp { socket, .. } => socket.local_addr().unwrap(),
            Link::Tcp { stream, .. } => stream.local_addr().unwrap(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        match self {
            Link::Udp { socket, server } => {
                socket.send_to(bytes, *server).expect("datagram to coturn");
            }
            Link::Tcp { stream, .. } => stream.write_all(bytes).expect("bytes to coturn"),
        }
    }

    /// Whole messages from coturn, waiting at most `wait` for the first bytes.
    fn receive(&mut self, wait: Duration) -> Vec<Vec<u8>> {
        let mut buffer = vec![0u8; 65536];
        match self {
            Link::Udp { socket, server } => {
                socket.set_read_timeout(Some(wait)).unwrap();
                match socket.recv_from(&mut buffer) {
                    Ok((len, from)) if from == *server => vec![buffer[..len].to_vec()],
                    Ok((_, from)) => panic!("a datagram from {from}, not coturn"),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        Vec::new()
                    }
                    Err(e) => panic!("receiving from coturn: {e}"),
                }
            }
            Link::Tcp { stream, framer } => {
                stream.set_read_timeout(Some(wait)).unwrap();
                match stream.read(&mut buffer) {
                    Ok(0) => panic!("coturn closed the TCP connection"),
                    Ok(len) => {
                        framer.push(&buffer[..len]).expect("coturn's stream frames");
                        std::iter::from_fn(|| framer.next_frame()).collect()
                    }
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                        Vec::new()
                    }
                    Err(e) => panic!("reading from coturn: {e}"),
                }
            }
        }
    }
}

/// Data the client unwrapped: from whom, what, and whether it came as ChannelData.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Relayed {
    peer: SocketAddr,
    data: Vec<u8>,
    as_channel_data: bool,
}

/// Runs a TurnClient over a link, on the real clock shifted by `skew` (to reach refresh
/// times without waiting for them).
struct Driver {
    client: TurnClient,
    link: Link,
    skew: Duration,
    events: Vec<TurnEvent>,
    relayed: Vec<Relayed>,
    /// The method and class of every message coturn sent to the client.
    answers: Vec<(Method, Class)>,
    /// Messages the client did not take.
    ignored: usize,
}

impl Driver {
    fn new(server: TurnServer) -> Driver {
        let link = Link::open(server.transport, server.address);
        let mut rng = StdRng::seed_from_u64(42);
        let client = TurnClient::new(server, Instant::now(), &mut rng);
        Driver {
            client,
            link,
            skew: Duration::ZERO,
            events: Vec::new(),
            relayed: Vec::new(),
            answers: Vec::new(),
            ignored: 0,
        }
    }

    fn now(&self) -> Instant {
        Instant::now() + self.skew
    }

    fn flush(&mut self) {
        while let Some(bytes) = self.client.poll_transmit() {
            self.link.send(&bytes);
        }
    }

    /// One turn of the loop: send, wait a little for coturn, feed what came, run timers.
    fn step(&mut self) {
        self.flush();
        let now = self.now();
        let wait = self
            .client
            .poll_timeout()
            .map_or(Duration::from_millis(50), |at| {
                at.saturating_duration_since(now)
            })
            .clamp(Duration::from_millis(1), Duration::from_millis(50));
        for message in self.link.receive(wait) {
            if let Ok(decoded) = Message::decode(&message) {
                self.answers.push((decoded.method, decoded.class));
            }
            let as_channel_data = is_channel_data(&message);
            match self.client.handle_message(self.now(), &message) {
                TurnReceived::Data { peer, data } => self.relayed.push(Relayed {
                    peer,
                    data: data.to_vec(),
                    as_channel_data,
                }),
                TurnReceived::Handled => {}
                // A late answer to a request already answered (a retransmission crossed
                // its response), or data after close.
                TurnReceived::Ignored => self.ignored += 1,
            }
        }
        if self
            .client
            .poll_timeout()
            .is_some_and(|at| at <= self.now())
        {
            self.client.handle_timeout(self.now());
        }
        self.events
            .extend(std::iter::from_fn(|| self.client.poll_event()));
        self.flush();
    }

    /// Steps until `done` holds; fails the test after [`PATIENCE`].
    fn until(&mut self, what: &str, mut done: impl FnMut(&mut Driver) -> bool) {
        let deadline = Instant::now() + PATIENCE;
        while !done(self) {
            assert!(
                Instant::now() < deadline,
                "{what} did not happen; events {:?}, answers {:?}, {} ignored",
                self.events,
                self.answers,
                self.ignored
            );
            self.step();
        }
    }

    fn allocate(&mut self) -> SocketAddr {
        self.until("allocation", |d| !d.events.is_empty());
        match self.events.remove(0) {
            TurnEvent::Allocated { relayed, mapped } => {
                assert_eq!(mapped, Some(self.link.local_addr()));
                assert_eq!(self.client.relayed_address(), Some(relayed));
                assert_eq!(relayed.ip(), LOOPBACK);
                relayed
            }
            other => panic!("allocation failed: {other:?}"),
        }
    }

    /// Sends `data` to the peer through the relay.
    fn send_to_peer(&mut self, peer: SocketAddr, data: &[u8]) -> Vec<u8> {
        let bytes = self.client.send(peer, data).expect("allowed to send");
        self.link.send(&bytes);
        bytes
    }

    /// Waits until all requests are answered: nothing is due within a minute.
    fn settle(&mut self) {
        self.until("all answers", |d| {
            d.client
                .poll_timeout()
                .is_some_and(|at| at > d.now() + Duration::from_secs(60))
        });
    }

    /// Waits for the next data the client unwraps.
    fn next_relayed(&mut self) -> Relayed {
        self.until("data from the peer", |d| !d.relayed.is_empty());
        self.relayed.remove(0)
    }
}

/// A plain UDP socket on 127.0.0.1 standing for the peer.
fn peer_socket() -> UdpSocket {
    let socket = UdpSocket::bind((LOOPBACK, 0)).expect("peer socket");
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    socket
}

fn peer_receive(peer: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buffer = [0u8; 1500];
    let (len, from) = peer.recv_from(&mut buffer).expect("data reaches the peer");
    (buffer[..len].to_vec(), from)
}

#[test]
fn over_udp_allocate_relay_both_ways_bind_a_channel_refresh_and_close() {
    let started = Instant::now();
    let coturn = Coturn::start("");
    let mut driver = Driver::new(coturn.server(TurnTransport::Udp, PASSWORD));
    let relayed = driver.allocate();
    let peer = peer_socket();
    let peer_address = peer.local_addr().unwrap();

    // Permission, then Send and Data indications.
    driver.client.permit(driver.now(), LOOPBACK);
    driver.until("the permission", |d| {
        d.client.send(peer_address, b"?").is_some()
    });
    let sent = driver.send_to_peer(peer_address, b"hello peer");
    assert!(!is_channel_data(&sent), "a Send indication");
    assert_eq!(peer_receive(&peer), (b"hello peer".to_vec(), relayed));
    peer.send_to(b"hello client", relayed).unwrap();
    let got = driver.next_relayed();
    assert_eq!(
        got,
        Relayed {
            peer: peer_address,
            data: b"hello client".to_vec(),
            as_channel_data: false
        }
    );

    // A channel, then ChannelData both ways.
    driver.client.bind_channel(driver.now(), peer_address);
    driver.until("the channel", |d| {
        d.client
            .send(peer_address, b"?")
            .is_some_and(|bytes| is_channel_data(&bytes))
    });
    let sent = driver.send_to_peer(peer_address, b"over the channel");
    assert!(is_channel_data(&sent));
    assert_eq!(peer_receive(&peer), (b"over the channel".to_vec(), relayed));
    peer.send_to(b"back over the channel", relayed).unwrap();
    let got = driver.next_relayed();
    assert_eq!(
        got,
        Relayed {
            peer: peer_address,
            data: b"back over the channel".to_vec(),
            as_channel_data: true
        }
    );

    // Eight minutes later by the client's clock: the allocation, the permission and the
    // channel are refreshed, and coturn accepts all three.
    driver.settle();
    let answered = driver.answers.len();
    driver.skew = Duration::from_secs(8 * 60);
    driver.client.handle_timeout(driver.now());
    driver.settle();
    let mut refreshed: Vec<Method> = driver.answers[answered..]
        .iter()
        .map(|(method, class)| {
            assert_eq!(*class, Class::SuccessResponse, "{method:?}");
            *method
        })
        .collect();
    refreshed.sort_by_key(|m| m.0);
    assert_eq!(
        refreshed,
        [
            Method::REFRESH,
            Method::CREATE_PERMISSION,
            Method::CHANNEL_BIND
        ]
    );
    assert!(driver.events.is_empty(), "{:?}", driver.events);
    driver.send_to_peer(peer_address, b"still there");
    assert_eq!(peer_receive(&peer), (b"still there".to_vec(), relayed));

    // Close: coturn confirms the deallocation, and the relay no longer forwards.
    let answered = driver.answers.len();
    driver.client.close(driver.now());
    driver.until("the deallocation", |d| d.answers.len() > answered);
    assert_eq!(
        driver.answers[answered..],
        [(Method::REFRESH, Class::SuccessResponse)]
    );
    assert_eq!(driver.client.relayed_address(), None);
    // coturn drops a deallocated allocation on its next once-a-second timer tick.
    let closed = Instant::now();
    loop {
        peer.send_to(b"anyone?", relayed).unwrap();
        if driver.link.receive(Duration::from_millis(100)).is_empty() {
            break;
        }
        assert!(
            closed.elapsed() < Duration::from_secs(3),
            "coturn still relays 3 s after the deallocation"
        );
    }
    peer.send_to(b"anyone at all?", relayed).unwrap();
    assert!(driver.link.receive(Duration::from_millis(300)).is_empty());
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_nonce_gone_stale_at_coturn_is_answered_with_the_new_one() {
    // coturn's nonces live 1 s here: the request after a pause meets 438 Stale Nonce.
    let coturn = Coturn::start("stale-nonce=1");
    let mut driver = Driver::new(coturn.server(TurnTransport::Udp, PASSWORD));
    driver.allocate();
    std::thread::sleep(Duration::from_millis(2100));
    let answered = driver.answers.len();
    let peer = peer_socket().local_addr().unwrap();
    driver.client.permit(driver.now(), LOOPBACK);
    driver.until("the permission", |d| d.client.send(peer, b"?").is_some());
    assert_eq!(
        driver.answers[answered..],
        [
            (Method::CREATE_PERMISSION, Class::ErrorResponse),
            (Method::CREATE_PERMISSION, Class::SuccessResponse)
        ]
    );
    assert!(driver.events.is_empty(), "{:?}", driver.events);
}

#[test]
fn a_short_lifetime_is_refreshed_at_80_percent_and_lost_when_the_refresh_is_late() {
    // coturn grants at most 2 s here: the client refreshes after 1.6 s of real time.
    let coturn = Coturn::start("max-allocate-lifetime=2");
    let mut driver = Driver::new(coturn.server(TurnTransport::Udp, PASSWORD));
    driver.allocate();
    let allocated = Instant::now();
    let answered = driver.answers.len();
    driver.until("the refresh", |d| d.answers.len() > answered);
    let refreshed = allocated.elapsed();
    assert_eq!(
        driver.answers[answered..],
        [(Method::REFRESH, Class::SuccessResponse)]
    );
    assert!(
        refreshed >= Duration::from_millis(1550) && refreshed < Duration::from_millis(1900),
        "refreshed after {refreshed:?}"
    );
    assert!(driver.events.is_empty());

    // Another allocation whose owner sleeps past its lifetime: coturn forgets it, and the
    // late Refresh meets 437 Allocation Mismatch.
    let mut sleeper = Driver::new(coturn.server(TurnTransport::Udp, PASSWORD));
    sleeper.allocate();
    std::thread::sleep(Duration::from_millis(3500));
    sleeper.until("the loss", |d| !d.events.is_empty());
    assert_eq!(
        sleeper.events,
        [TurnEvent::Failed(TurnError::AllocationLost)]
    );
    assert_eq!(
        sleeper.answers.last(),
        Some(&(Method::REFRESH, Class::ErrorResponse))
    );
}

#[test]
fn a_wrong_password_is_unauthorized() {
    let coturn = Coturn::start("");
    let mut driver = Driver::new(coturn.server(TurnTransport::Udp, "not the password"));
    driver.until("the refusal", |d| !d.events.is_empty());
    assert_eq!(driver.events, [TurnEvent::Failed(TurnError::Unauthorized)]);
    assert!(driver.client.is_failed());
    assert_eq!(
        driver.answers,
        [
            (Method::ALLOCATE, Class::ErrorResponse),
            (Method::ALLOCATE, Class::ErrorResponse)
        ]
    );
}

#[test]
fn over_tcp_allocate_and_relay_both_ways_through_the_stream_framer() {
    let coturn = Coturn::start("");
    let mut driver = Driver::new(coturn.server(TurnTransport::Tcp, PASSWORD));
    let relayed = driver.allocate();
    let peer = peer_socket();
    let peer_address = peer.local_addr().unwrap();
    driver.client.permit(driver.now(), LOOPBACK);
    driver.until("the permission", |d| {
        d.client.send(peer_address, b"?").is_some()
    });

    driver.send_to_peer(peer_address, b"hello over tcp");
    assert_eq!(peer_receive(&peer), (b"hello over tcp".to_vec(), relayed));
    peer.send_to(b"hello back", relayed).unwrap();
    assert_eq!(driver.next_relayed().data, b"hello back");

    // ChannelData on a stream is padded to four bytes, both ways.
    driver.client.bind_channel(driver.now(), peer_address);
    driver.until("the channel", |d| {
        d.client
            .send(peer_address, b"?")
            .is_some_and(|bytes| is_channel_data(&bytes))
    });
    let sent = driver.send_to_peer(peer_address, b"odd length");
    assert_eq!(sent.len(), 4 + 12);
    assert_eq!(peer_receive(&peer), (b"odd length".to_vec(), relayed));
    for data in [&b"x"[..], b"two", b"four", b"fives"] {
        peer.send_to(data, relayed).unwrap();
        let got = driver.next_relayed();
        assert_eq!((got.data.as_slice(), got.as_channel_data), (data, true));
    }
}
