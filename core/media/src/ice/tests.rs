#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::*;
use crate::codec::dominant_tone_ratio;
use crate::dtls_session::new_ice_credentials;
use crate::sdp::{
    IceCredentials, MediaConfig, Negotiated, OfferKeys, SessionDescription, SessionIdentity,
    answer, create_offer, process_answer,
};
use crate::session::tests::origin;
use crate::session::{
    DEVICE_FRAME, DEVICE_RATE, FRAME, MediaEvent, MediaSession, MediaTime, SessionConfig,
    StreamStart,
};

fn addr(text: &str) -> SocketAddr {
    text.parse().unwrap()
}

#[test]
fn turn_urls_parse_with_their_transports_and_default_ports() {
    let url = TurnUrl::parse("turn:turn.example.com", "u", "p").unwrap();
    assert_eq!(
        (url.host.as_str(), url.port, url.transport),
        ("turn.example.com", 3478, TurnTransport::Udp)
    );
    let url = TurnUrl::parse("turn:203.0.113.5:3479;transport=tcp", "u", "p").unwrap();
    assert_eq!(
        (url.host.as_str(), url.port, url.transport),
        ("203.0.113.5", 3479, TurnTransport::Tcp)
    );
    let url = TurnUrl::parse("turn:[2001:db8::5]?transport=tls", "u", "p").unwrap();
    assert_eq!(
        (url.host.as_str(), url.port, url.transport),
        ("2001:db8::5", 5349, TurnTransport::Tls)
    );
    let url = TurnUrl::parse("turns:turn.example.com:443", "u", "p").unwrap();
    assert_eq!((url.port, url.transport), (443, TurnTransport::Tls));
    for bad in [
        "stun:turn.example.com",
        "turn:",
        "turn:host:port",
        "turn:host;transport=sctp",
        "turn:host;foo=bar",
        "turn:ho st",
        "turns:host;transport=udp",
        "turn:[2001:db8::5",
    ] {
        assert!(
            matches!(
                TurnUrl::parse(bad, "u", "p"),
                Err(IceConfigError::TurnUrl(_))
            ),
            "{bad}"
        );
    }
    assert_eq!(
        TurnUrl::parse("turn:host", "", "p"),
        Err(IceConfigError::TurnCredential)
    );
    let shown = format!(
        "{:?}",
        TurnUrl::parse("turn:host", "u", "hunter2-x").unwrap()
    );
    assert!(!shown.contains("hunter2-x"), "{shown}");
}

#[test]
fn stun_servers_and_policies_parse() {
    let stun: StunUrl = "stun:198.51.100.1".parse().unwrap();
    assert_eq!((stun.host.as_str(), stun.port), ("198.51.100.1", 3478));
    let stun: StunUrl = "stun.example.com:19302".parse().unwrap();
    assert_eq!((stun.host.as_str(), stun.port), ("stun.example.com", 19302));
    let stun: StunUrl = "[2001:db8::1]:3478".parse().unwrap();
    assert_eq!(stun.host, "2001:db8::1");
    assert!("host:0".parse::<StunUrl>().is_err());
    assert!("".parse::<StunUrl>().is_err());
    assert_eq!("relay".parse::<IcePolicy>(), Ok(IcePolicy::Relay));
    assert_eq!("ALL".parse::<IcePolicy>(), Ok(IcePolicy::All));
    assert!("none".parse::<IcePolicy>().is_err());
    let relay_only = IceConfig {
        policy: IcePolicy::Relay,
        ..IceConfig::default()
    };
    assert!(relay_only.is_enabled());
    assert_eq!(relay_only.validate(), Err(IceConfigError::RelayWithoutTurn));
    assert!(!IceConfig::default().is_enabled());
}

fn candidates() -> Vec<LocalCandidate> {
    let host = addr("10.0.0.2:4000");
    vec![
        LocalCandidate {
            kind: CandidateType::Host,
            address: host,
            base: host,
        },
        LocalCandidate {
            kind: CandidateType::ServerReflexive,
            address: addr("203.0.113.1:40000"),
            base: host,
        },
        LocalCandidate {
            kind: CandidateType::Relayed,
            address: addr("198.51.100.1:50000"),
            base: addr("198.51.100.1:50000"),
        },
    ]
}

#[test]
fn candidate_lines_name_each_type_and_the_default_is_the_most_likely_to_work() {
    let all = candidates();
    let lines = candidate_lines(&all);
    assert_eq!(lines.len(), 3);
    assert!(lines[0].contains("10.0.0.2 4000 typ host"), "{}", lines[0]);
    assert!(
        lines[1].contains("203.0.113.1 40000 typ srflx"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("198.51.100.1 50000 typ relay"),
        "{}",
        lines[2]
    );
    assert!(lines.iter().all(|l| !l.starts_with("candidate:")));
    let host = addr("10.0.0.2:4000");
    assert_eq!(default_address(&all, host), addr("198.51.100.1:50000"));
    assert_eq!(default_address(&all[..2], host), addr("203.0.113.1:40000"));
    assert_eq!(default_address(&[], host), host);
}

/// One side of a simulated call.
struct Side {
    session: MediaSession,
    /// Its socket's own address.
    host: SocketAddr,
    /// What the network shows as its source: the NAT's mapping, or `host`.
    public: SocketAddr,
    /// Behind a port-restricted cone NAT: only peers it sent to get through.
    natted: bool,
    sent_to: HashSet<SocketAddr>,
    heard: Vec<i16>,
    events: Vec<MediaEvent>,
}

/// One offer/answer between `a` (offerer, with ICE) and `b` (with ICE when it has
/// credentials), each with fresh SDES keys.
struct Exchange {
    at_a: Negotiated,
    at_b: Negotiated,
    offer: SessionDescription,
    answer: SessionDescription,
}

fn exchange(
    rng: &mut StdRng,
    a: (&[LocalCandidate], &IceCredentials),
    b: (&[LocalCandidate], Option<&IceCredentials>),
) -> Exchange {
    let config = MediaConfig::default();
    let mut keys_a = OfferKeys::generate(rng).with_ice(ice_local(a.1.clone(), a.0));
    let mut keys_b = OfferKeys::generate(rng);
    if let Some(credentials) = b.1 {
        keys_b = keys_b.with_ice(ice_local(credentials.clone(), b.0));
    }
    let offer = create_offer(
        &config,
        default_address(a.0, a.0[0].base),
        &mut SessionIdentity::new(rng),
        &keys_a,
    );
    let offer = SessionDescription::parse(&offer.print()).unwrap();
    let (answer_sdp, at_b) = answer(
        &offer,
        &config,
        default_address(b.0, b.0[0].base),
        &mut SessionIdentity::new(rng),
        &mut keys_b,
        rng,
    )
    .unwrap();
    let answer_sdp = SessionDescription::parse(&answer_sdp.print()).unwrap();
    assert_eq!(answer_sdp.print().contains("a=ice-ufrag"), b.1.is_some());
    let at_a = process_answer(&offer, &answer_sdp, &config, &mut keys_a, rng).unwrap();
    Exchange {
        at_a,
        at_b,
        offer,
        answer: answer_sdp,
    }
}

fn setup(local: IceCredentials, candidates: Vec<LocalCandidate>, controlling: bool) -> IceSetup {
    IceSetup {
        local,
        candidates,
        relay: None,
        controlling,
        policy: IcePolicy::All,
    }
}

fn stream(ssrc: u32) -> StreamStart {
    StreamStart {
        ssrc,
        sequence: 1,
        timestamp: 1,
    }
}

/// Negotiates `a` (offerer, with ICE) with `b` (with ICE when `b_ice`) and builds both
/// sessions.
fn call(
    start: MediaTime,
    a_candidates: Vec<LocalCandidate>,
    b_candidates: Vec<LocalCandidate>,
    b_ice: bool,
) -> (MediaSession, MediaSession) {
    let mut rng = StdRng::seed_from_u64(3);
    let (ice_a, ice_b) = (new_ice_credentials(&mut rng), new_ice_credentials(&mut rng));
    let x = exchange(
        &mut rng,
        (&a_candidates, &ice_a),
        (&b_candidates, b_ice.then_some(&ice_b)),
    );
    let (a_host, b_host) = (a_candidates[0].base, b_candidates[0].base);
    let a = MediaSession::new(
        start,
        &x.at_a,
        SessionConfig::new(a_host, stream(1), "a")
            .with_ice(setup(ice_a, a_candidates, true))
            .with_remote_description(&x.answer),
    )
    .unwrap();
    let mut b_config = SessionConfig::new(b_host, stream(2), "b").with_remote_description(&x.offer);
    if b_ice {
        b_config = b_config.with_ice(setup(ice_b, b_candidates, false));
    }
    let b = MediaSession::new(start, &x.at_b, b_config).unwrap();
    (a, b)
}

/// Delivers what `from` sends: through its NAT, to `to` when the address is `to`'s public
/// one and its NAT (if any) lets it in.
fn deliver(now: MediaTime, from: &mut Side, to: &mut Side) {
    while let Some(transmit) = from.session.poll_transmit() {
        from.sent_to.insert(transmit.to);
        if transmit.to != to.public || (to.natted && !to.sent_to.contains(&from.public)) {
            continue;
        }
        to.session
            .handle_datagram(now, from.public, &transmit.bytes);
    }
}

/// Runs `seconds` of the call from `start`: A sends 440 Hz, B 1000 Hz.
fn talk(start: MediaTime, a: &mut Side, b: &mut Side, seconds: usize) {
    talk_from(start, 0, a, b, seconds);
}

/// [`talk`] from frame `first` on (virtual time goes on from where an earlier talk stopped).
fn talk_from(start: MediaTime, first: usize, a: &mut Side, b: &mut Side, seconds: usize) {
    for frame in first..first + seconds * 50 {
        let now = start + FRAME * frame as u32;
        for (side, freq) in [(&mut *a, 440.0), (&mut *b, 1000.0)] {
            let tone = crate::codec::sine(
                freq,
                DEVICE_RATE,
                8000.0,
                frame * DEVICE_FRAME,
                DEVICE_FRAME,
            );
            if side
                .session
                .poll_timeout()
                .is_some_and(|t| t <= now.instant)
            {
                side.session.handle_timeout(now);
            }
            side.session.handle_capture(now, &tone).unwrap();
            side.session.playout(now, &mut side.heard);
        }
        for _ in 0..4 {
            deliver(now, a, b);
            deliver(now, b, a);
        }
        for side in [&mut *a, &mut *b] {
            while let Some(event) = side.session.poll_event() {
                side.events.push(event);
            }
        }
    }
}

fn side(session: MediaSession, host: &str, public: &str, natted: bool) -> Side {
    Side {
        session,
        host: addr(host),
        public: addr(public),
        natted,
        sent_to: HashSet::new(),
        heard: Vec::new(),
        events: Vec::new(),
    }
}

/// Seconds of the last `window` of `heard` holding `freq`.
fn tone_seconds(heard: &[i16], freq: f64) -> f64 {
    heard
        .chunks(DEVICE_FRAME * 5)
        .filter(|w| dominant_tone_ratio(w, DEVICE_RATE, freq) > 0.5)
        .count() as f64
        * 0.1
}

#[test]
fn ice_finds_the_path_through_a_port_restricted_nat_and_audio_flows_both_ways() {
    let start = origin();
    let b_host = addr("198.51.100.9:5000");
    let b_candidates = vec![LocalCandidate {
        kind: CandidateType::Host,
        address: b_host,
        base: b_host,
    }];
    let (a, b) = call(start, candidates()[..2].to_vec(), b_candidates, true);
    let mut a = side(a, "10.0.0.2:4000", "203.0.113.1:40000", true);
    let mut b = side(b, "198.51.100.9:5000", "198.51.100.9:5000", false);
    assert_ne!(a.host, a.public);
    talk(start, &mut a, &mut b, 4);
    let selected = |events: &[MediaEvent]| {
        events.iter().find_map(|e| match e {
            MediaEvent::PathSelected { remote, relayed } => Some((*remote, *relayed)),
            _ => None,
        })
    };
    assert_eq!(
        selected(&a.events),
        Some((b.public, false)),
        "{:?}",
        a.events
    );
    assert_eq!(
        selected(&b.events),
        Some((a.public, false)),
        "{:?}",
        b.events
    );
    assert!(tone_seconds(&a.heard, 1000.0) >= 3.0, "A heard B");
    assert!(tone_seconds(&b.heard, 440.0) >= 3.0, "B heard A");
}

#[test]
fn a_peer_without_ice_gets_media_at_its_address_and_latching_still_works() {
    let start = origin();
    let b_host = addr("198.51.100.9:5000");
    let b_candidates = vec![LocalCandidate {
        kind: CandidateType::Host,
        address: b_host,
        base: b_host,
    }];
    let (a, b) = call(start, candidates()[..2].to_vec(), b_candidates, false);
    let mut a = side(a, "10.0.0.2:4000", "203.0.113.1:40000", true);
    let mut b = side(b, "198.51.100.9:5000", "198.51.100.9:5000", false);
    talk(start, &mut a, &mut b, 3);
    assert!(
        !a.events
            .iter()
            .any(|e| matches!(e, MediaEvent::PathSelected { .. })),
        "no ICE without the peer's"
    );
    // B sends to A's c= (the server-reflexive address) and latches to where A's media comes
    // from; A's NAT lets B in once A has sent to B.
    assert!(tone_seconds(&a.heard, 1000.0) >= 2.0, "A heard B");
    assert!(tone_seconds(&b.heard, 440.0) >= 2.0, "B heard A");
}

#[test]
fn an_ice_restart_moves_the_call_to_the_new_network_and_audio_resumes() {
    let start = origin();
    let mut rng = StdRng::seed_from_u64(9);
    let b_host = addr("198.51.100.9:5000");
    let b_candidates = vec![LocalCandidate {
        kind: CandidateType::Host,
        address: b_host,
        base: b_host,
    }];
    let (a, b) = call(
        start,
        candidates()[..2].to_vec(),
        b_candidates.clone(),
        true,
    );
    let mut a = side(a, "10.0.0.2:4000", "203.0.113.1:40000", true);
    let mut b = side(b, "198.51.100.9:5000", "198.51.100.9:5000", false);
    talk(start, &mut a, &mut b, 2);
    // A walks onto another network: a new socket behind another NAT; the old address is
    // gone.
    let (host, public) = (addr("10.64.0.2:4100"), addr("203.0.113.20:41000"));
    let moved = vec![
        LocalCandidate {
            kind: CandidateType::Host,
            address: host,
            base: host,
        },
        LocalCandidate {
            kind: CandidateType::ServerReflexive,
            address: public,
            base: host,
        },
    ];
    let (ice_a, ice_b) = (new_ice_credentials(&mut rng), new_ice_credentials(&mut rng));
    let x = exchange(&mut rng, (&moved, &ice_a), (&b_candidates, Some(&ice_b)));
    let now = start + FRAME * 100;
    a.session
        .restart_ice(
            now,
            host,
            setup(ice_a, moved, true),
            &x.at_a,
            Some(&x.answer),
        )
        .unwrap();
    b.session
        .restart_ice(
            now,
            b_host,
            setup(ice_b, b_candidates, false),
            &x.at_b,
            Some(&x.offer),
        )
        .unwrap();
    (a.host, a.public) = (host, public);
    a.sent_to.clear();
    let (heard_a, heard_b) = (a.heard.len(), b.heard.len());
    b.events.clear();
    talk_from(start, 100, &mut a, &mut b, 3);
    assert!(
        b.events.iter().any(
            |e| matches!(e, MediaEvent::PathSelected { remote, relayed: false } if *remote == public)
        ),
        "B's media follows A to the new network: {:?}",
        b.events
    );
    assert!(
        tone_seconds(&a.heard[heard_a..], 1000.0) >= 2.5,
        "A heard B after the move"
    );
    assert!(
        tone_seconds(&b.heard[heard_b..], 440.0) >= 2.5,
        "B heard A after the move"
    );
}
