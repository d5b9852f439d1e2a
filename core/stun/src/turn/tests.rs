//! The TURN client against hand-built server answers, in virtual time.

// The virtual clock starts at a real instant; nothing waits on it.
#![allow(clippy::indexing_slicing, clippy::disallowed_methods)]

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;

const REALM: &str = "example.org";
const PASSWORD: &str = "correct horse battery staple";
const RELAYED: &str = "198.51.100.7:49152";
const MAPPED: &str = "203.0.113.40:61000";
const PEER: &str = "192.0.2.9:5004";

fn server(transport: TurnTransport) -> TurnServer {
    TurnServer {
        address: "203.0.113.1:3478".parse().unwrap(),
        transport,
        username: "alice".into(),
        password: PASSWORD.into(),
    }
}

fn key() -> LongTermKey {
    LongTermKey::new("alice", REALM, PASSWORD)
}

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// What the client made of a message, owned.
#[derive(Debug, PartialEq, Eq)]
enum Got {
    Data(SocketAddr, Vec<u8>),
    Handled,
    Ignored,
}

/// A client and the virtual clock.
struct Bench {
    client: TurnClient,
    start: Instant,
    now: Instant,
}

impl Bench {
    fn new(transport: TurnTransport) -> Bench {
        let start = Instant::now();
        let mut rng = StdRng::seed_from_u64(7);
        Bench {
            client: TurnClient::new(server(transport), start, &mut rng),
            start,
            now: start,
        }
    }

    /// A client whose allocation is done (401, then success with LIFETIME 600).
    fn allocated(transport: TurnTransport) -> Bench {
        let mut bench = Bench::new(transport);
        let first = bench.next_request();
        bench.reply(&first, Class::ErrorResponse, &unauthorized("nonce-1"), None);
        let second = bench.next_request();
        let success = [
            Attribute::XorRelayedAddress(addr(RELAYED)),
            Attribute::XorMappedAddress(addr(MAPPED)),
            Attribute::Lifetime(600),
        ];
        bench.reply(&second, Class::SuccessResponse, &success, Some(&key()));
        assert_eq!(
            bench.events(),
            vec![TurnEvent::Allocated {
                relayed: addr(RELAYED),
                mapped: Some(addr(MAPPED)),
            }]
        );
        bench
    }

    fn at(&self) -> Duration {
        self.now - self.start
    }

    fn sent(&mut self) -> Vec<Vec<u8>> {
        std::iter::from_fn(|| self.client.poll_transmit()).collect()
    }

    fn events(&mut self) -> Vec<TurnEvent> {
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }

    /// The one request the client sent since the last look.
    fn next_request(&mut self) -> Vec<u8> {
        let mut sent = self.sent();
        assert_eq!(sent.len(), 1, "expected one request");
        sent.remove(0)
    }

    fn feed(&mut self, bytes: &[u8]) -> Got {
        match self.client.handle_message(self.now, bytes) {
            TurnReceived::Data { peer, data } => Got::Data(peer, data.to_vec()),
            TurnReceived::Handled => Got::Handled,
            TurnReceived::Ignored => Got::Ignored,
        }
    }

    /// The server's answer to `request`, signed with `key` when given, fed to the client.
    fn reply(
        &mut self,
        request: &[u8],
        class: Class,
        attributes: &[Attribute<'_>],
        key: Option<&LongTermKey>,
    ) -> Got {
        let bytes = answer(request, class, attributes, key);
        self.feed(&bytes)
    }

    /// Moves the clock to `at` after the start and handles the timeout.
    fn advance_to(&mut self, at: Duration) {
        self.now = self.start + at;
        self.client.handle_timeout(self.now);
    }

    /// Runs the timers until the client stops asking for them or `limit` passes, noting when
    /// each transmission left.
    fn run_until(&mut self, limit: Duration) -> Vec<(Duration, Vec<u8>)> {
        let mut sent = Vec::new();
        while let Some(at) = self.client.poll_timeout() {
            if at > self.start + limit {
                break;
            }
            assert!(at >= self.now, "time goes forward");
            self.now = at;
            self.client.handle_timeout(at);
            let now = self.at();
            sent.extend(self.sent().into_iter().map(|bytes| (now, bytes)));
        }
        sent
    }
}

fn answer(
    request: &[u8],
    class: Class,
    attributes: &[Attribute<'_>],
    key: Option<&LongTermKey>,
) -> Vec<u8> {
    let request = Message::decode(request).unwrap();
    let mut message = Message::new(class, request.method, request.transaction);
    message.attributes = attributes.to_vec();
    message.encode(key).unwrap()
}

fn unauthorized(nonce: &str) -> Vec<Attribute<'_>> {
    vec![
        Attribute::ErrorCode {
            code: 401,
            reason: "Unauthorized",
        },
        Attribute::Realm(REALM),
        Attribute::Nonce(nonce),
    ]
}

fn stale(nonce: &str) -> Vec<Attribute<'_>> {
    vec![
        Attribute::ErrorCode {
            code: 438,
            reason: "Stale Nonce",
        },
        Attribute::Realm(REALM),
        Attribute::Nonce(nonce),
    ]
}

fn error(code: u16, reason: &str) -> Vec<Attribute<'_>> {
    vec![Attribute::ErrorCode { code, reason }]
}

/// The nonce an authenticated request carries, after checking it is signed with our key.
fn signed_nonce(request: &[u8]) -> String {
    assert_eq!(check_integrity(request, &key()), Integrity::Valid);
    let message = Message::decode(request).unwrap();
    assert!(message.attributes.contains(&Attribute::Username("alice")));
    assert_eq!(message.realm(), Some(REALM));
    message.nonce().unwrap().to_owned()
}

#[test]
fn allocates_unauthenticated_first_then_with_the_long_term_credential() {
    let mut bench = Bench::new(TurnTransport::Udp);
    let first = bench.next_request();
    let message = Message::decode(&first).unwrap();
    assert_eq!(
        (message.class, message.method),
        (Class::Request, Method::ALLOCATE)
    );
    assert_eq!(message.attributes, vec![Attribute::RequestedTransport(17)]);
    assert_eq!(check_integrity(&first, &key()), Integrity::Absent);

    assert_eq!(
        bench.reply(&first, Class::ErrorResponse, &unauthorized("nonce-1"), None),
        Got::Handled
    );
    let second = bench.next_request();
    assert_eq!(signed_nonce(&second), "nonce-1");
    let message = Message::decode(&second).unwrap();
    assert_ne!(
        message.transaction,
        Message::decode(&first).unwrap().transaction
    );
    assert!(
        message
            .attributes
            .contains(&Attribute::RequestedTransport(17))
    );
    assert_eq!(bench.client.relayed_address(), None);

    let success = [
        Attribute::XorRelayedAddress(addr(RELAYED)),
        Attribute::XorMappedAddress(addr(MAPPED)),
        Attribute::Lifetime(600),
    ];
    assert_eq!(
        bench.reply(&second, Class::SuccessResponse, &success, Some(&key())),
        Got::Handled
    );
    assert_eq!(
        bench.events(),
        vec![TurnEvent::Allocated {
            relayed: addr(RELAYED),
            mapped: Some(addr(MAPPED)),
        }]
    );
    assert_eq!(bench.client.relayed_address(), Some(addr(RELAYED)));
    assert_eq!(bench.client.mapped_address(), Some(addr(MAPPED)));
    assert!(!bench.client.is_failed());
    // A retransmitted success changes nothing.
    assert_eq!(
        bench.reply(&second, Class::SuccessResponse, &success, Some(&key())),
        Got::Ignored
    );
}

#[test]
fn a_second_401_is_unauthorized_and_other_errors_are_refused() {
    let mut bench = Bench::new(TurnTransport::Udp);
    let first = bench.next_request();
    bench.reply(&first, Class::ErrorResponse, &unauthorized("nonce-1"), None);
    let second = bench.next_request();
    assert_eq!(
        bench.reply(
            &second,
            Class::ErrorResponse,
            &unauthorized("nonce-2"),
            None
        ),
        Got::Handled
    );
    assert_eq!(
        bench.events(),
        vec![TurnEvent::Failed(TurnError::Unauthorized)]
    );
    assert!(bench.client.is_failed());
    assert_eq!(bench.client.poll_timeout(), None);
    assert!(bench.sent().is_empty());

    let mut bench = Bench::new(TurnTransport::Udp);
    let first = bench.next_request();
    bench.reply(&first, Class::ErrorResponse, &unauthorized("nonce-1"), None);
    let second = bench.next_request();
    let quota = error(486, "Allocation Quota Reached");
    bench.reply(&second, Class::ErrorResponse, &quota, Some(&key()));
    assert_eq!(
        bench.events(),
        vec![TurnEvent::Failed(TurnError::Refused {
            code: 486,
            reason: "Allocation Quota Reached".into()
        })]
    );

    // A 401 that gives no realm and nonce cannot be answered.
    let mut bench = Bench::new(TurnTransport::Udp);
    let first = bench.next_request();
    bench.reply(
        &first,
        Class::ErrorResponse,
        &error(401, "Unauthorized"),
        None,
    );
    assert!(matches!(
        bench.events().as_slice(),
        [TurnEvent::Failed(TurnError::Malformed(_))]
    ));
}

#[test]
fn a_stale_nonce_is_retried_once_with_the_new_nonce_for_every_request() {
    let mut bench = Bench::new(TurnTransport::Udp);
    let first = bench.next_request();
    bench.reply(&first, Class::ErrorResponse, &unauthorized("nonce-1"), None);
    let second = bench.next_request();
    bench.reply(&second, Class::ErrorResponse, &stale("nonce-2"), None);
    let third = bench.next_request();
    assert_eq!(signed_nonce(&third), "nonce-2");
    let success = [Attribute::XorRelayedAddress(addr(RELAYED))];
    bench.reply(&third, Class::SuccessResponse, &success, Some(&key()));
    assert!(matches!(
        bench.events().as_slice(),
        [TurnEvent::Allocated { mapped: None, .. }]
    ));

    // CreatePermission: stale once, retried; stale again, given up.
    let peer = addr(PEER);
    bench.client.permit(bench.now, peer.ip());
    let permission = bench.next_request();
    bench.reply(&permission, Class::ErrorResponse, &stale("nonce-3"), None);
    let retry = bench.next_request();
    assert_eq!(signed_nonce(&retry), "nonce-3");
    bench.reply(&retry, Class::ErrorResponse, &stale("nonce-4"), None);
    assert!(bench.sent().is_empty());
    assert_eq!(bench.events(), vec![TurnEvent::PermissionFailed(peer.ip())]);

    // Refresh: stale once, retried with the newest nonce, answered.
    bench.advance_to(Duration::from_secs(480));
    let refresh = bench.next_request();
    assert_eq!(signed_nonce(&refresh), "nonce-4");
    bench.reply(&refresh, Class::ErrorResponse, &stale("nonce-5"), None);
    let retry = bench.next_request();
    assert_eq!(signed_nonce(&retry), "nonce-5");
    let granted = [Attribute::Lifetime(600)];
    bench.reply(&retry, Class::SuccessResponse, &granted, Some(&key()));
    assert!(bench.events().is_empty());
    assert_eq!(
        bench.client.poll_timeout(),
        Some(bench.start + Duration::from_secs(960))
    );

    // ChannelBind: stale once, retried with the new nonce.
    bench.client.bind_channel(bench.now, peer);
    let [permission, bind] = bench.sent().try_into().unwrap();
    bench.reply(&permission, Class::SuccessResponse, &[], Some(&key()));
    bench.reply(&bind, Class::ErrorResponse, &stale("nonce-6"), None);
    let retry = bench.next_request();
    assert_eq!(signed_nonce(&retry), "nonce-6");
    assert_eq!(
        Message::decode(&retry).unwrap().method,
        Method::CHANNEL_BIND
    );
}

#[test]
fn the_allocation_is_refreshed_at_80_percent_of_its_lifetime_until_it_is_lost() {
    let mut bench = Bench::allocated(TurnTransport::Udp);
    assert_eq!(
        bench.client.poll_timeout(),
        Some(bench.start + Duration::from_secs(480))
    );
    bench.advance_to(Duration::from_secs(479));
    assert!(bench.sent().is_empty());
    bench.advance_to(Duration::from_secs(480));
    let refresh = bench.next_request();
    let message = Message::decode(&refresh).unwrap();
    assert_eq!(message.method, Method::REFRESH);
    assert_eq!(message.lifetime(), None, "the server's default lifetime");
    assert_eq!(signed_nonce(&refresh), "nonce-1");

    // The server grants 300 s this time: the next refresh comes 240 s later.
    let granted = [Attribute::Lifetime(300)];
    bench.reply(&refresh, Class::SuccessResponse, &granted, Some(&key()));
    assert_eq!(
        bench.client.poll_timeout(),
        Some(bench.now + Duration::from_secs(240))
    );
    bench.advance_to(Duration::from_secs(720));
    let refresh = bench.next_request();
    // A server granting 136 years is refreshed within a day all the same.
    let forever = [Attribute::Lifetime(u32::MAX)];
    bench.reply(&refresh, Class::SuccessResponse, &forever, Some(&key()));
    assert_eq!(
        bench.client.poll_timeout(),
        Some(bench.now + Duration::from_secs(24 * 3600 * 4 / 5))
    );
    bench.advance_to(Duration::from_secs(720 + 24 * 3600 * 4 / 5));
    let refresh = bench.next_request();
    let mismatch = error(437, "Allocation Mismatch");
    bench.reply(&refresh, Class::ErrorResponse, &mismatch, Some(&key()));
    assert_eq!(
        bench.events(),
        vec![TurnEvent::Failed(TurnError::AllocationLost)]
    );
    assert!(bench.client.is_failed());
    assert_eq!(bench.client.relayed_address(), None);
    assert_eq!(bench.client.send(addr(PEER), b"x"), None);
}

#[test]
fn permissions_are_installed_after_allocation_and_refreshed_every_4_minutes() {
    let peer = addr(PEER);
    let mut bench = Bench::new(TurnTransport::Udp);
    // Asked for before the allocation exists: nothing goes out for it yet.
    bench.client.permit(bench.now, peer.ip());
    let first = bench.next_request();
    bench.reply(&first, Class::ErrorResponse, &unauthorized("nonce-1"), None);
    let second = bench.next_request();
    let success = [Attribute::XorRelayedAddress(addr(RELAYED))];
    bench.reply(&second, Class::SuccessResponse, &success, Some(&key()));
    bench.events();

    let permission = bench.next_request();
    let message = Message::decode(&permission).unwrap();
    assert_eq!(message.method, Method::CREATE_PERMISSION);
    assert_eq!(
        message.xor_peer_address(),
        Some(SocketAddr::new(peer.ip(), 0))
    );
    signed_nonce(&permission);
    assert_eq!(bench.client.send(peer, b"early"), None, "not confirmed yet");
    bench.reply(&permission, Class::SuccessResponse, &[], Some(&key()));

    let indication = bench.client.send(peer, b"hello").unwrap();
    let message = Message::decode(&indication).unwrap();
    assert_eq!(
        (message.class, message.method),
        (Class::Indication, Method::SEND)
    );
    assert_eq!(message.xor_peer_address(), Some(peer));
    assert_eq!(message.data(), Some(&b"hello"[..]));
    assert_eq!(check_integrity(&indication, &key()), Integrity::Absent);
    // Another port on the same IP is covered; another IP is not.
    assert!(bench.client.send(addr("192.0.2.9:6000"), b"x").is_some());
    assert_eq!(bench.client.send(addr("192.0.2.10:5004"), b"x"), None);

    // Idempotent.
    bench.client.permit(bench.now, peer.ip());
    assert!(bench.sent().is_empty());

    let mut refreshes = Vec::new();
    for minute in 1..=12 {
        bench.advance_to(Duration::from_secs(minute * 60));
        for request in bench.sent() {
            let message = Message::decode(&request).unwrap();
            if message.method == Method::CREATE_PERMISSION {
                refreshes.push(bench.at().as_secs());
            }
            bench.reply(&request, Class::SuccessResponse, &[], Some(&key()));
        }
    }
    assert_eq!(refreshes, vec![240, 480, 720]);

    // A refused refresh takes the permission away.
    bench.advance_to(Duration::from_secs(960));
    for request in bench.sent() {
        if Message::decode(&request).unwrap().method == Method::CREATE_PERMISSION {
            let forbidden = error(403, "Forbidden");
            bench.reply(&request, Class::ErrorResponse, &forbidden, Some(&key()));
        } else {
            bench.reply(&request, Class::SuccessResponse, &[], Some(&key()));
        }
    }
    assert_eq!(bench.events(), vec![TurnEvent::PermissionFailed(peer.ip())]);
    assert_eq!(bench.client.send(peer, b"x"), None);
}

#[test]
fn data_indications_are_accepted_only_from_permitted_peers() {
    let peer = addr(PEER);
    let mut bench = Bench::allocated(TurnTransport::Udp);
    let indication = |from: SocketAddr| {
        Message::new(Class::Indication, Method::DATA, StunTransactionId([3; 12]))
            .with(Attribute::XorPeerAddress(from))
            .with(Attribute::Data(b"from the peer"))
            .encode(None)
            .unwrap()
    };
    assert_eq!(
        bench.feed(&indication(peer)),
        Got::Ignored,
        "no permission yet"
    );
    bench.client.permit(bench.now, peer.ip());
    let permission = bench.next_request();
    bench.reply(&permission, Class::SuccessResponse, &[], Some(&key()));
    assert_eq!(
        bench.feed(&indication(peer)),
        Got::Data(peer, b"from the peer".to_vec())
    );
    assert_eq!(
        bench.feed(&indication(addr("192.0.2.66:5004"))),
        Got::Ignored
    );
    let without_data = Message::new(Class::Indication, Method::DATA, StunTransactionId([3; 12]))
        .with(Attribute::XorPeerAddress(peer))
        .encode(None)
        .unwrap();
    assert_eq!(bench.feed(&without_data), Got::Ignored);
}

#[test]
fn a_bound_channel_carries_data_both_ways_as_channel_data() {
    for transport in [TurnTransport::Udp, TurnTransport::Tcp] {
        let peer = addr(PEER);
        let mut bench = Bench::allocated(transport);
        bench.client.bind_channel(bench.now, peer);
        let [permission, bind] = bench.sent().try_into().unwrap();
        let message = Message::decode(&bind).unwrap();
        assert_eq!(message.method, Method::CHANNEL_BIND);
        assert!(
            message
                .attributes
                .contains(&Attribute::ChannelNumber(0x4000))
        );
        assert_eq!(message.xor_peer_address(), Some(peer));
        signed_nonce(&bind);
        bench.reply(&permission, Class::SuccessResponse, &[], Some(&key()));
        // Bound idempotently; until the server confirms, data goes in Send indications.
        bench.client.bind_channel(bench.now, peer);
        assert!(bench.sent().is_empty());
        assert!(is_stun_message(&bench.client.send(peer, b"abcde").unwrap()));
        let frame = ChannelData {
            channel: 0x4000,
            data: b"abcde",
        };
        assert_eq!(bench.feed(&frame.encode(false).unwrap()), Got::Ignored);

        bench.reply(&bind, Class::SuccessResponse, &[], Some(&key()));
        let sent = bench.client.send(peer, b"abcde").unwrap();
        let expected = frame.encode(transport.is_reliable()).unwrap();
        assert_eq!(sent, expected);
        assert_eq!(sent.len(), if transport.is_reliable() { 12 } else { 9 });
        for incoming in [frame.encode(false).unwrap(), frame.encode(true).unwrap()] {
            assert_eq!(bench.feed(&incoming), Got::Data(peer, b"abcde".to_vec()));
        }
        let other = ChannelData {
            channel: 0x4001,
            data: b"abcde",
        };
        assert_eq!(bench.feed(&other.encode(false).unwrap()), Got::Ignored);
        // Another port on the peer's IP is not on the channel.
        let neighbour = addr("192.0.2.9:5006");
        assert!(is_stun_message(
            &bench.client.send(neighbour, b"x").unwrap()
        ));

        // The binding is refreshed after 8 minutes (the permission every 4).
        let mut binds = Vec::new();
        for minute in 1..=17 {
            bench.advance_to(Duration::from_secs(minute * 60));
            for request in bench.sent() {
                let message = Message::decode(&request).unwrap();
                if message.method == Method::CHANNEL_BIND {
                    assert!(
                        message
                            .attributes
                            .contains(&Attribute::ChannelNumber(0x4000))
                    );
                    binds.push(bench.at().as_secs());
                }
                let granted = [Attribute::Lifetime(600)];
                bench.reply(&request, Class::SuccessResponse, &granted, Some(&key()));
            }
        }
        assert_eq!(binds, vec![480, 960]);
    }
}

fn is_stun_message(bytes: &[u8]) -> bool {
    Message::decode(bytes).is_ok()
}

#[test]
fn a_refused_channel_bind_leaves_the_peer_on_indications() {
    let peer = addr(PEER);
    let mut bench = Bench::allocated(TurnTransport::Udp);
    bench.client.bind_channel(bench.now, peer);
    let [permission, bind] = bench.sent().try_into().unwrap();
    bench.reply(&permission, Class::SuccessResponse, &[], Some(&key()));
    let refused = error(400, "Bad Request");
    bench.reply(&bind, Class::ErrorResponse, &refused, Some(&key()));
    assert!(bench.events().is_empty());
    assert!(is_stun_message(&bench.client.send(peer, b"x").unwrap()));
    // It can be asked for again.
    bench.client.bind_channel(bench.now, peer);
    assert_eq!(bench.sent().len(), 1);
}

#[test]
fn over_udp_a_request_is_resent_with_rto_doubling_then_times_out_at_39_5_s() {
    let mut bench = Bench::new(TurnTransport::Udp);
    let first = bench.next_request();
    let sent = bench.run_until(Duration::from_secs(60));
    let times: Vec<u64> = sent.iter().map(|(at, _)| at.as_millis() as u64).collect();
    assert_eq!(times, vec![500, 1500, 3500, 7500, 15500, 31500]);
    assert!(sent.iter().all(|(_, bytes)| *bytes == first));
    assert_eq!(bench.at(), Duration::from_millis(39_500));
    assert_eq!(bench.events(), vec![TurnEvent::Failed(TurnError::Timeout)]);
    assert!(bench.client.is_failed());
    assert_eq!(bench.client.poll_timeout(), None);
}

#[test]
fn over_tcp_a_request_is_sent_once_and_times_out_at_39_5_s() {
    for transport in [TurnTransport::Tcp, TurnTransport::Tls] {
        let mut bench = Bench::new(transport);
        bench.next_request();
        let sent = bench.run_until(Duration::from_secs(60));
        assert!(sent.is_empty());
        assert_eq!(bench.at(), Duration::from_millis(39_500));
        assert_eq!(bench.events(), vec![TurnEvent::Failed(TurnError::Timeout)]);
    }
}

#[test]
fn an_unanswered_permission_fails_alone_and_the_allocation_stays() {
    let peer = addr(PEER);
    let mut bench = Bench::allocated(TurnTransport::Udp);
    bench.client.permit(bench.now, peer.ip());
    bench.next_request();
    bench.advance_to(Duration::from_millis(39_500));
    bench.sent();
    assert_eq!(bench.events(), vec![TurnEvent::PermissionFailed(peer.ip())]);
    assert_eq!(bench.client.relayed_address(), Some(addr(RELAYED)));
}

#[test]
fn responses_with_wrong_integrity_or_to_no_request_of_ours_are_ignored() {
    let mut bench = Bench::new(TurnTransport::Udp);
    let first = bench.next_request();
    bench.reply(&first, Class::ErrorResponse, &unauthorized("nonce-1"), None);
    let second = bench.next_request();
    let success = [Attribute::XorRelayedAddress(addr(RELAYED))];
    let wrong_key = LongTermKey::new("alice", REALM, "guess");
    assert_eq!(
        bench.reply(&second, Class::SuccessResponse, &success, Some(&wrong_key)),
        Got::Ignored
    );
    assert_eq!(
        bench.reply(&second, Class::SuccessResponse, &success, None),
        Got::Ignored,
        "a success to a signed request must be signed"
    );
    // An error other than 401/438 must be signed too.
    assert_eq!(
        bench.reply(&second, Class::ErrorResponse, &error(486, "Quota"), None),
        Got::Ignored
    );
    // A signed answer with one byte changed.
    let mut bent = answer(&second, Class::SuccessResponse, &success, Some(&key()));
    bent[22] ^= 1;
    assert_eq!(bench.feed(&bent), Got::Ignored);
    // Another transaction, another method, a request, garbage.
    let mut stranger = Message::decode(&second).unwrap();
    stranger.transaction = StunTransactionId([9; 12]);
    let stranger = stranger.encode(None).unwrap();
    assert_eq!(
        bench.reply(&stranger, Class::SuccessResponse, &success, Some(&key())),
        Got::Ignored
    );
    let mut refresh = Message::decode(&second).unwrap();
    refresh.method = Method::REFRESH;
    let refresh = refresh.encode(None).unwrap();
    assert_eq!(
        bench.reply(&refresh, Class::SuccessResponse, &success, Some(&key())),
        Got::Ignored
    );
    assert_eq!(bench.feed(&second), Got::Ignored);
    assert_eq!(bench.feed(b"\x00\x01garbage"), Got::Ignored);
    assert_eq!(bench.feed(b""), Got::Ignored);
    assert!(bench.events().is_empty());
    assert!(bench.sent().is_empty());

    // Still waiting: the retransmission goes out and the right answer is taken.
    bench.advance_to(Duration::from_millis(500));
    assert_eq!(bench.next_request(), second);
    assert_eq!(
        bench.reply(&second, Class::SuccessResponse, &success, Some(&key())),
        Got::Handled
    );
    assert_eq!(bench.client.relayed_address(), Some(addr(RELAYED)));
}

#[test]
fn close_deallocates_with_one_unrepeated_refresh() {
    let mut bench = Bench::allocated(TurnTransport::Udp);
    bench.client.permit(bench.now, addr(PEER).ip());
    bench.sent();
    bench.client.close(bench.now);
    let refresh = bench.next_request();
    let message = Message::decode(&refresh).unwrap();
    assert_eq!(message.method, Method::REFRESH);
    assert_eq!(message.lifetime(), Some(0));
    signed_nonce(&refresh);
    assert_eq!(bench.client.poll_timeout(), None);
    assert_eq!(bench.client.relayed_address(), None);
    assert!(!bench.client.is_failed());
    assert_eq!(bench.client.send(addr(PEER), b"x"), None);
    let gone = [Attribute::Lifetime(0)];
    assert_eq!(
        bench.reply(&refresh, Class::SuccessResponse, &gone, Some(&key())),
        Got::Handled
    );
    bench.advance_to(Duration::from_secs(3600));
    assert!(bench.sent().is_empty());
    assert!(bench.events().is_empty());

    // Closing before the allocation exists sends nothing.
    let mut bench = Bench::new(TurnTransport::Udp);
    bench.sent();
    bench.client.close(bench.now);
    assert!(bench.sent().is_empty());
    assert_eq!(bench.client.poll_timeout(), None);
}

#[test]
fn the_password_and_key_never_show() {
    let mut bench = Bench::allocated(TurnTransport::Udp);
    bench.client.bind_channel(bench.now, addr(PEER));
    let shown = [
        format!("{:?}", bench.client),
        format!("{:?}", bench.client.server()),
        format!("{:?}", key()),
        TurnError::Unauthorized.to_string(),
        format!("{:?}", TurnError::Unauthorized),
    ];
    for text in shown {
        assert!(!text.contains(PASSWORD), "{text}");
        assert!(!text.contains("horse"), "{text}");
    }
    assert!(format!("{:?}", bench.client.server()).contains("alice"));
}

#[test]
fn hostile_messages_never_panic() {
    let peer = addr(PEER);
    let mut bench = Bench::allocated(TurnTransport::Udp);
    bench.client.bind_channel(bench.now, peer);
    let [permission, bind] = bench.sent().try_into().unwrap();
    bench.reply(&permission, Class::SuccessResponse, &[], Some(&key()));
    bench.reply(&bind, Class::SuccessResponse, &[], Some(&key()));
    bench.advance_to(Duration::from_secs(480));
    let pending = bench.sent();
    let mut samples: Vec<Vec<u8>> = pending
        .iter()
        .map(|request| answer(request, Class::SuccessResponse, &[], Some(&key())))
        .collect();
    samples.push(
        Message::new(Class::Indication, Method::DATA, StunTransactionId([3; 12]))
            .with(Attribute::XorPeerAddress(peer))
            .with(Attribute::Data(b"payload"))
            .encode(None)
            .unwrap(),
    );
    samples.push(
        ChannelData {
            channel: 0x4000,
            data: b"payload",
        }
        .encode(true)
        .unwrap(),
    );
    for sample in &samples {
        for cut in 0..sample.len() {
            bench.feed(&sample[..cut]);
        }
        for i in 0..sample.len() {
            for bit in 0..8 {
                let mut bent = sample.clone();
                bent[i] ^= 1 << bit;
                bench.feed(&bent);
            }
        }
    }
}
