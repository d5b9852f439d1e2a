#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use super::*;
use rand::SeedableRng;
use rand::rngs::StdRng;

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

/// A Binding success answer to the request `request` with XOR-MAPPED-ADDRESS `mapped` (IPv4).
fn binding_success(request: &[u8], mapped: SocketAddr) -> Vec<u8> {
    let SocketAddr::V4(v4) = mapped else {
        panic!("IPv4 only here")
    };
    let mut out = vec![0x01, 0x01, 0x00, 12];
    out.extend_from_slice(&request[4..20]);
    out.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
    out.extend_from_slice(&(v4.port() ^ 0x2112).to_be_bytes());
    out.extend_from_slice(&(u32::from(*v4.ip()) ^ 0x2112_A442).to_be_bytes());
    out
}

fn rng() -> StdRng {
    StdRng::seed_from_u64(5)
}

#[test]
fn an_answered_stun_server_gives_a_server_reflexive_candidate() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let host = addr("10.0.0.2:4000");
    let server = addr("198.51.100.1:3478");
    let mut gatherer = Gatherer::new(now, host, &[server], None, IcePolicy::All, &mut rng());
    let request = gatherer.poll_transmit().unwrap();
    assert_eq!(request.to, server);
    assert!(gatherer.poll_transmit().is_none());
    assert!(!gatherer.is_done());
    // An answer from elsewhere, or to another transaction, is not ours.
    let answer = binding_success(&request.bytes, addr("203.0.113.7:40000"));
    assert!(!gatherer.handle_datagram(now, addr("198.51.100.2:3478"), &answer));
    let mut other = request.bytes.clone();
    other[19] ^= 1;
    let stray = binding_success(&other, addr("203.0.113.9:1"));
    assert!(!gatherer.handle_datagram(now, server, &stray));
    assert!(gatherer.handle_datagram(now, server, &answer));
    assert!(gatherer.is_done());
    assert_eq!(gatherer.poll_timeout(), None);
    let gathered = gatherer.finish();
    assert_eq!(
        gathered.candidates,
        vec![
            LocalCandidate {
                kind: CandidateType::Host,
                address: host,
                base: host
            },
            LocalCandidate {
                kind: CandidateType::ServerReflexive,
                address: addr("203.0.113.7:40000"),
                base: host
            },
        ]
    );
    assert!(gathered.relay.is_none() && gathered.relay_error.is_none());
}

#[test]
fn a_silent_stun_server_costs_the_candidate_not_the_call() {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let host = addr("10.0.0.2:4000");
    let server = addr("198.51.100.1:3478");
    let mut gatherer = Gatherer::new(start, host, &[server], None, IcePolicy::All, &mut rng());
    let mut sent_at = Vec::new();
    let mut now = start;
    while let Some(at) = gatherer.poll_timeout() {
        while let Some(transmit) = gatherer.poll_transmit() {
            assert_eq!(transmit.to, server);
            sent_at.push(now - start);
        }
        now = at;
        gatherer.handle_timeout(now);
    }
    let ms = |m| Duration::from_millis(m);
    assert_eq!(sent_at, vec![ms(0), ms(500), ms(1500)]);
    assert_eq!(now - start, GATHER_TIMEOUT);
    let gathered = gatherer.finish();
    assert_eq!(gathered.candidates.len(), 1);
    assert_eq!(gathered.candidates[0].kind, CandidateType::Host);
}

#[test]
fn a_mapped_address_equal_to_the_host_adds_no_candidate_and_other_families_are_not_asked() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let host = addr("198.51.100.20:4000");
    let servers = [addr("198.51.100.1:3478"), addr("[2001:db8::1]:3478")];
    let mut gatherer = Gatherer::new(now, host, &servers, None, IcePolicy::All, &mut rng());
    let request = gatherer.poll_transmit().unwrap();
    assert!(
        gatherer.poll_transmit().is_none(),
        "no IPv6 server asked from IPv4"
    );
    gatherer.handle_datagram(now, servers[0], &binding_success(&request.bytes, host));
    let gathered = gatherer.finish();
    assert_eq!(gathered.candidates.len(), 1);
}

#[test]
fn relay_only_asks_no_stun_server_and_without_a_relay_has_no_candidate() {
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    let host = addr("10.0.0.2:4000");
    let mut gatherer = Gatherer::new(
        now,
        host,
        &[addr("198.51.100.1:3478")],
        None,
        IcePolicy::Relay,
        &mut rng(),
    );
    assert!(gatherer.poll_transmit().is_none());
    assert!(gatherer.is_done());
    let gathered = gatherer.finish();
    assert!(gathered.candidates.is_empty());
}

#[test]
fn a_turn_server_that_never_answers_ends_gathering_at_the_deadline_with_a_timeout() {
    #[allow(clippy::disallowed_methods)]
    let start = Instant::now();
    let host = addr("10.0.0.2:4000");
    let turn = TurnServer {
        address: addr("198.51.100.1:3478"),
        transport: TurnTransport::Udp,
        username: "user".into(),
        password: "pass".into(),
    };
    let mut gatherer = Gatherer::new(start, host, &[], Some(turn), IcePolicy::All, &mut rng());
    let first = gatherer.poll_transmit().unwrap();
    assert_eq!(first.to, addr("198.51.100.1:3478"));
    let mut now = start;
    while let Some(at) = gatherer.poll_timeout() {
        while gatherer.poll_transmit().is_some() {}
        assert!(at <= start + GATHER_TIMEOUT);
        now = at;
        gatherer.handle_timeout(now);
    }
    assert_eq!(now - start, GATHER_TIMEOUT);
    let gathered = gatherer.finish();
    assert_eq!(gathered.candidates.len(), 1, "the host candidate");
    assert!(gathered.relay.is_none());
    assert_eq!(gathered.relay_error, Some(TurnError::Timeout));
}
