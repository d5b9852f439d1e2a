#![allow(clippy::unwrap_used, clippy::print_stdout)]

use super::*;
use crate::codec::dominant_tone_ratio;
use crate::ice::{IcePolicy, IceSetup};
use crate::sdp::{
    CodecPref, IceLocal, MediaConfig, OfferKeys, SessionIdentity, SrtpMode, SrtpPolicy, answer,
    create_offer, process_answer,
};
use crate::session::{
    DEVICE_FRAME, DEVICE_RATE, DropCounters, MediaSession, MediaTime, SessionConfig, StreamStart,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

const TICK: Duration = Duration::from_millis(1);
const LINK_DELAY: Duration = Duration::from_millis(10);

fn addr_a() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 4000))
}

fn addr_b() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 5000))
}

/// The origin of virtual time. `Instant` has no constructor besides `now()`; the tests read
/// it once and from then on only add durations to it.
fn origin() -> Instant {
    #[allow(clippy::disallowed_methods)]
    Instant::now()
}

/// Both sides' view of a DTLS-SRTP offer/answer: A offers (a=setup:actpass), B answers.
struct Negotiation {
    at_a: Negotiated,
    at_b: Negotiated,
    offer: SessionDescription,
    answer: SessionDescription,
    ice_a: IceCredentials,
    ice_b: IceCredentials,
    cert_a: DtlsCert,
    cert_b: DtlsCert,
    /// Each side's state for renegotiating: (identity, keys) of A, then of B.
    sdp_a: (SessionIdentity, OfferKeys),
    sdp_b: (SessionIdentity, OfferKeys),
}

fn dtls_config(codecs: Vec<CodecPref>) -> MediaConfig {
    MediaConfig {
        codecs,
        srtp: SrtpPolicy::Mandatory,
        srtp_mode: SrtpMode::Dtls,
        ..MediaConfig::default()
    }
}

fn negotiate(codec: CodecPref) -> Negotiation {
    negotiate_with(&dtls_config(vec![codec]))
}

fn negotiate_with(config: &MediaConfig) -> Negotiation {
    let mut rng = StdRng::seed_from_u64(7);
    let cert_a = DtlsCert::generate().unwrap();
    let cert_b = DtlsCert::generate().unwrap();
    let dtls_a = dtls_offer_keys(&cert_a, addr_a(), &mut rng).unwrap();
    let dtls_b = dtls_offer_keys(&cert_b, addr_b(), &mut rng).unwrap();
    let (ice_a, ice_b) = (
        dtls_a.ice.credentials.clone(),
        dtls_b.ice.credentials.clone(),
    );
    let mut keys_a = OfferKeys::generate(&mut rng).with_dtls(dtls_a);
    let mut keys_b = OfferKeys::generate(&mut rng).with_dtls(dtls_b);
    let mut id_a = SessionIdentity::new(&mut rng);
    let mut id_b = SessionIdentity::new(&mut rng);
    let offer = create_offer(config, addr_a(), &mut id_a, &keys_a);
    let (answer_sdp, at_b) =
        answer(&offer, config, addr_b(), &mut id_b, &mut keys_b, &mut rng).unwrap();
    let at_a = process_answer(&offer, &answer_sdp, config, &mut keys_a, &mut rng).unwrap();
    Negotiation {
        at_a,
        at_b,
        offer,
        answer: answer_sdp,
        ice_a,
        ice_b,
        cert_a,
        cert_b,
        sdp_a: (id_a, keys_a),
        sdp_b: (id_b, keys_b),
    }
}

/// A's session for `n`, its stream starting at `stream`.
fn session_a(n: &Negotiation, now: MediaTime, stream: StreamStart) -> MediaSession {
    let config = SessionConfig::new(addr_a(), stream, "a")
        .with_dtls(&n.cert_a, n.ice_a.clone())
        .with_remote_description(&n.answer);
    MediaSession::new(now, &n.at_a, config).unwrap()
}

/// B's session for `n`.
fn session_b(n: &Negotiation, now: MediaTime, stream: StreamStart) -> MediaSession {
    let config = SessionConfig::new(addr_b(), stream, "b")
        .with_dtls(&n.cert_b, n.ice_b.clone())
        .with_remote_description(&n.offer);
    MediaSession::new(now, &n.at_b, config).unwrap()
}

fn stream(ssrc: u32, sequence: u16) -> StreamStart {
    StreamStart {
        ssrc,
        sequence,
        timestamp: ssrc.rotate_left(7),
    }
}

struct Peer {
    session: MediaSession,
    addr: SocketAddr,
    tone: f64,
    heard: Vec<i16>,
    events: Vec<MediaEvent>,
}

impl Peer {
    fn connected(&self) -> bool {
        self.events.contains(&MediaEvent::Connected)
    }

    fn failure(&self) -> Option<&DtlsFailure> {
        self.events.iter().find_map(|e| match e {
            MediaEvent::Failed(f) => Some(f),
            _ => None,
        })
    }

    fn is_connected(&self) -> bool {
        self.session.state() == ConnectionState::Connected
    }
}

/// Two sessions joined by a lossless link with a fixed delay, in virtual time advanced 1 ms
/// per step.
struct Sim {
    a: Peer,
    b: Peer,
    start: MediaTime,
    now: MediaTime,
    /// (arrival, from, to, bytes)
    in_flight: Vec<(Instant, SocketAddr, SocketAddr, Vec<u8>)>,
    /// Capture a tone every 20 ms.
    capture: bool,
    frames: usize,
}

impl Sim {
    fn new(n: &Negotiation) -> Sim {
        Sim::with_streams(n, stream(0xa1a1_a1a1, 1000), stream(0xb2b2_b2b2, 2000))
    }

    /// Each side learns the other's candidates from the other's description.
    fn with_streams(n: &Negotiation, stream_a: StreamStart, stream_b: StreamStart) -> Sim {
        let start = MediaTime::new(origin(), 0);
        let a = session_a(n, start, stream_a);
        let b = session_b(n, start, stream_b);
        let peer = |session, addr, tone| Peer {
            session,
            addr,
            tone,
            heard: Vec::new(),
            events: Vec::new(),
        };
        let mut sim = Sim {
            a: peer(a, addr_a(), 440.0),
            b: peer(b, addr_b(), 1000.0),
            start,
            now: start,
            in_flight: Vec::new(),
            capture: false,
            frames: 0,
        };
        sim.collect();
        sim
    }

    fn elapsed(&self) -> Duration {
        self.now.instant - self.start.instant
    }

    /// Moves transmits onto the link and events into the peers' logs.
    fn collect(&mut self) {
        let arrival = self.now.instant + LINK_DELAY;
        for peer in [&mut self.a, &mut self.b] {
            while let Some(t) = peer.session.poll_transmit() {
                self.in_flight.push((arrival, peer.addr, t.to, t.bytes));
            }
            while let Some(e) = peer.session.poll_event() {
                peer.events.push(e);
            }
        }
    }

    fn step(&mut self) {
        self.now = self.now + TICK;
        let now = self.now;
        let mut due = Vec::new();
        self.in_flight.retain(|p| {
            if p.0 <= now.instant {
                due.push(p.clone());
                false
            } else {
                true
            }
        });
        for (_, from, to, bytes) in due {
            if to == self.a.addr {
                self.a.session.handle_datagram(now, from, &bytes);
            } else if to == self.b.addr {
                self.b.session.handle_datagram(now, from, &bytes);
            }
        }
        for peer in [&mut self.a, &mut self.b] {
            if peer
                .session
                .poll_timeout()
                .is_some_and(|t| t <= now.instant)
            {
                peer.session.handle_timeout(now);
            }
        }
        if self.elapsed().as_millis().is_multiple_of(20) {
            let frame = self.frames;
            self.frames += 1;
            for peer in [&mut self.a, &mut self.b] {
                if self.capture {
                    let pcm = crate::codec::sine(
                        peer.tone,
                        DEVICE_RATE,
                        8000.0,
                        frame * DEVICE_FRAME,
                        DEVICE_FRAME,
                    );
                    peer.session.handle_capture(now, &pcm).unwrap();
                }
                peer.session.playout(now, &mut peer.heard);
            }
        }
        self.collect();
    }

    fn run_for(&mut self, d: Duration) {
        let until = self.now.instant + d;
        while self.now.instant < until {
            self.step();
        }
    }

    /// Steps until both sides report `Connected`; panics after `limit` of virtual time.
    fn connect(&mut self, limit: Duration) {
        while !(self.a.connected() && self.b.connected()) {
            assert!(
                self.elapsed() < limit,
                "not connected after {limit:?}: A {:?}, B {:?}",
                self.a.events,
                self.b.events
            );
            self.step();
        }
    }
}

/// Number of 20 ms windows of `samples` in which `freq` holds most of the energy.
fn toned_windows(samples: &[i16], freq: f64) -> usize {
    samples
        .chunks(DEVICE_FRAME)
        .filter(|w| dominant_tone_ratio(w, DEVICE_RATE, freq) > 0.5)
        .count()
}

#[test]
fn ice_and_dtls_connect_and_carry_each_tone_both_ways() {
    for (codec, name) in [
        (CodecPref::Pcmu, "PCMU"),
        (
            CodecPref::Opus {
                useinbandfec: true,
                usedtx: false,
            },
            "opus",
        ),
    ] {
        let n = negotiate(codec);
        // RFC 5763: the answerer of an actpass offer is the DTLS client.
        assert_eq!(n.at_b.dtls.as_ref().unwrap().local_setup, Setup::Active);
        assert_eq!(n.at_a.dtls.as_ref().unwrap().local_setup, Setup::Passive);
        let mut sim = Sim::new(&n);
        sim.connect(Duration::from_secs(5));
        let connect_time = sim.elapsed();
        for peer in [&sim.a, &sim.b] {
            assert!(peer.is_connected());
            assert!(
                peer.events.iter().any(|e| matches!(
                    e,
                    MediaEvent::IceState(IceState::Connected | IceState::Completed)
                )),
                "{:?}",
                peer.events
            );
            assert!(peer.failure().is_none());
        }
        sim.a.heard.clear();
        sim.b.heard.clear();
        sim.capture = true;
        sim.run_for(Duration::from_secs(3));
        sim.capture = false;
        sim.run_for(Duration::from_millis(300));

        let b_heard_440 = toned_windows(&sim.b.heard, 440.0);
        let a_heard_1000 = toned_windows(&sim.a.heard, 1000.0);
        println!(
            "{name} over ICE+DTLS-SRTP: connected after {connect_time:?}; B heard 440 Hz in \
             {b_heard_440} windows, A heard 1000 Hz in {a_heard_1000} windows (of 165); \
             A sent {}, B received {}, RTT {:?}",
            sim.a.session.stats().packets_sent,
            sim.b.session.stats().packets_received,
            sim.a.session.stats().round_trip_time,
        );
        // At least 2 s (100 windows of 20 ms) of each tone reached the other side.
        assert!(
            b_heard_440 >= 100,
            "{name}: B heard 440 Hz in {b_heard_440}"
        );
        assert!(
            a_heard_1000 >= 100,
            "{name}: A heard 1000 Hz in {a_heard_1000}"
        );
        // And not its own tone.
        assert_eq!(toned_windows(&sim.b.heard, 1000.0), 0, "{name}");
        assert_eq!(toned_windows(&sim.a.heard, 440.0), 0, "{name}");
        for (from, to) in [(&sim.a, &sim.b), (&sim.b, &sim.a)] {
            let sent = from.session.stats().packets_sent;
            assert_eq!(sent, 150, "{name}");
            assert_eq!(to.session.stats().packets_received, sent, "{name}");
            assert_eq!(to.session.stats().packets_lost, 0, "{name}");
            assert_eq!(to.session.drops(), DropCounters::default(), "{name}");
        }
    }
}

#[test]
fn wrong_remote_fingerprint_fails_dtls_and_no_media_flows() {
    // Either side may hold the wrong fingerprint: B (the DTLS client) checks A's certificate
    // in the server's flight, A checks B's in the client's.
    for tampered_side in ["B", "A"] {
        let mut n = negotiate(CodecPref::Pcmu);
        let at = if tampered_side == "B" {
            &mut n.at_b
        } else {
            &mut n.at_a
        };
        at.dtls.as_mut().unwrap().remote_fingerprint.value[0] ^= 0xff;
        let mut sim = Sim::new(&n);
        sim.capture = true;
        sim.run_for(Duration::from_secs(3));

        let (checker, other) = if tampered_side == "B" {
            (&sim.b, &sim.a)
        } else {
            (&sim.a, &sim.b)
        };
        assert_eq!(
            checker.failure(),
            Some(&DtlsFailure::FingerprintMismatch),
            "{tampered_side}: {:?}",
            checker.events
        );
        assert_eq!(checker.session.state(), ConnectionState::Failed);
        assert_eq!(
            checker.session.poll_timeout(),
            None,
            "a failed session is inert"
        );
        assert!(
            !checker.connected(),
            "{tampered_side}: {:?}",
            checker.events
        );
        assert!(!other.connected(), "{tampered_side}: {:?}", other.events);
        for peer in [&sim.a, &sim.b] {
            assert_eq!(peer.session.stats().packets_sent, 0);
            assert_eq!(peer.session.stats().packets_received, 0);
            assert!(peer.heard.iter().all(|s| *s == 0), "silence only");
        }
    }
}

#[test]
fn garbage_datagrams_do_not_panic_or_break_the_call() {
    let n = negotiate(CodecPref::Pcmu);
    let mut rng = StdRng::seed_from_u64(99);

    // Before anything is connected: random bytes of every first-byte class (RFC 7983: STUN
    // 0-3, DTLS 20-63, RTP/RTCP 128-191) from the peer's and from strangers' addresses.
    let mut sim = Sim::new(&n);
    let garbage = |rng: &mut StdRng| -> Vec<u8> {
        let len = rng.random_range(0..300);
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        if let Some(first) = bytes.first_mut() {
            *first = match rng.random_range(0..4) {
                0 => rng.random_range(0..4),
                1 => rng.random_range(20..64),
                2 => rng.random_range(128..192),
                _ => *first,
            };
        }
        bytes
    };
    for i in 0..2000 {
        let from = if i % 2 == 0 {
            addr_b()
        } else {
            SocketAddr::from(([127, 0, 0, 1], rng.random_range(1..65535)))
        };
        sim.a
            .session
            .handle_datagram(sim.now, from, &garbage(&mut rng));
    }
    sim.connect(Duration::from_secs(5));

    // During the call: garbage, and real packets of the call with bytes flipped, truncated
    // or replayed, all while both tones keep flowing.
    sim.capture = true;
    sim.run_for(Duration::from_millis(500));
    let before = toned_windows(&sim.b.heard, 440.0);
    let mut real: Vec<Vec<u8>> = Vec::new();
    // 2 s with 2 bad datagrams each millisecond.
    for _ in 0..2000 {
        sim.step();
        real.extend(
            sim.in_flight
                .iter()
                .filter(|p| p.2 == addr_b())
                .map(|p| p.3.clone()),
        );
        for _ in 0..2 {
            let mut bytes = if real.is_empty() || rng.random_bool(0.5) {
                garbage(&mut rng)
            } else {
                real[rng.random_range(0..real.len())].clone()
            };
            match rng.random_range(0..3) {
                0 if !bytes.is_empty() => {
                    let i = rng.random_range(0..bytes.len());
                    bytes[i] ^= 1 << rng.random_range(0..8);
                }
                1 => bytes.truncate(rng.random_range(0..=bytes.len())),
                _ => {}
            }
            sim.b.session.handle_datagram(sim.now, addr_a(), &bytes);
        }
    }
    sim.run_for(Duration::from_secs(1));
    assert!(sim.b.failure().is_none(), "{:?}", sim.b.events);
    assert!(sim.b.is_connected());
    let after = toned_windows(&sim.b.heard, 440.0);
    assert!(
        after - before >= 145,
        "media kept flowing: {} toned windows in the last 3 s",
        after - before
    );
    assert!(sim.b.session.drops().malformed > 0);
}

#[test]
fn dtmf_digits_arrive_once_each_and_rtcp_measures_the_round_trip() {
    let n = negotiate(CodecPref::Pcmu);
    let mut sim = Sim::new(&n);
    sim.connect(Duration::from_secs(5));
    sim.capture = true;
    sim.a.session.send_dtmf(sim.now, "12#").unwrap();
    // Long enough for str0m's first RTCP reports (audio: every 5 s).
    sim.run_for(Duration::from_secs(12));
    let digits: String = sim
        .b
        .events
        .iter()
        .filter_map(|e| match e {
            MediaEvent::Dtmf { digit } => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, "12#");
    let rtt = sim.a.session.stats().round_trip_time.unwrap();
    // Two 10 ms hops plus up to a millisecond of stepping on each side.
    assert!((0.019..0.025).contains(&rtt), "{rtt}");
}

#[test]
fn hold_stops_sending_and_resume_restarts_it() {
    let n = negotiate(CodecPref::Pcmu);
    let mut sim = Sim::new(&n);
    sim.connect(Duration::from_secs(5));
    sim.capture = true;
    sim.run_for(Duration::from_millis(500));
    let mut hold = n.at_b.clone();
    hold.hold = true;
    sim.b.session.update(&hold).unwrap();
    sim.run_for(Duration::from_millis(100));
    let sent = sim.b.session.stats().packets_sent;
    sim.run_for(Duration::from_secs(1));
    assert_eq!(
        sim.b.session.stats().packets_sent,
        sent,
        "on hold nothing is sent"
    );
    assert!(sim.b.is_connected(), "ICE consent and DTLS stay up");
    sim.b.session.update(&n.at_b).unwrap();
    sim.run_for(Duration::from_secs(1));
    assert!(sim.b.session.stats().packets_sent >= sent + 49);
    sim.capture = false;
    sim.run_for(Duration::from_millis(50));
    assert_eq!(
        sim.a.session.stats().packets_received,
        sim.b.session.stats().packets_sent
    );
}

#[test]
fn close_reaches_the_peer() {
    let n = negotiate(CodecPref::Pcmu);
    let mut sim = Sim::new(&n);
    sim.connect(Duration::from_secs(5));
    sim.a.session.close(sim.now);
    assert_eq!(sim.a.session.state(), ConnectionState::Closed);
    sim.collect();
    sim.run_for(Duration::from_millis(100));
    assert!(
        sim.b.events.contains(&MediaEvent::Closed),
        "{:?}",
        sim.b.events
    );
    assert_eq!(sim.b.session.state(), ConnectionState::Closed);
    assert_eq!(sim.b.session.poll_timeout(), None);
}

#[test]
fn an_unreachable_peer_times_out() {
    let n = negotiate(CodecPref::Pcmu);
    let start = origin();
    let mut a = session_a(&n, MediaTime::new(start, 0), stream(1, 1));
    let mut now = start;
    let mut failure = None;
    // Nothing ever answers; follow poll_timeout like a runtime would.
    for _ in 0..100_000 {
        while a.poll_transmit().is_some() {}
        while let Some(e) = a.poll_event() {
            if let MediaEvent::Failed(f) = e {
                failure = Some(f);
            }
        }
        let Some(at) = a.poll_timeout() else {
            break;
        };
        assert!(at >= now, "timeouts never go backwards");
        now = at.max(now + Duration::from_millis(1));
        a.handle_timeout(MediaTime::new(now, 0));
    }
    assert_eq!(failure, Some(DtlsFailure::ConnectTimeout));
    let elapsed = now - start;
    assert!(elapsed >= CONNECT_TIMEOUT && elapsed < CONNECT_TIMEOUT + Duration::from_secs(1));
}

#[test]
fn offer_keys_and_constructor_errors() {
    let mut rng = StdRng::seed_from_u64(3);
    let cert = DtlsCert::generate().unwrap();
    assert_eq!(cert.fingerprint().hash, "sha-256");
    assert_eq!(cert.fingerprint().value.len(), 32);
    assert!(format!("{cert:?}").contains(&cert.fingerprint().hex()));
    assert!(!cert.certificate_der().is_empty());
    let keys = dtls_offer_keys(&cert, addr_a(), &mut rng).unwrap();
    assert_eq!(&keys.fingerprint, cert.fingerprint());
    assert!(keys.ice.credentials.ufrag.len() >= 4 && keys.ice.credentials.pwd.len() >= 22);
    assert_ne!(
        keys.ice,
        dtls_offer_keys(&cert, addr_a(), &mut rng).unwrap().ice
    );
    assert_eq!(keys.ice.candidates.len(), 1);
    assert!(
        keys.ice.candidates[0].contains("127.0.0.1 4000 typ host"),
        "{}",
        keys.ice.candidates[0]
    );
    assert_eq!(
        dtls_offer_keys(&cert, SocketAddr::from(([0, 0, 0, 0], 4000)), &mut rng),
        Err(MediaError::LocalAddress(SocketAddr::from((
            [0, 0, 0, 0],
            4000
        ))))
    );

    let n = negotiate(CodecPref::Pcmu);
    let now = MediaTime::new(origin(), 0);
    let new = |at: &Negotiated, local, cert: &DtlsCert| {
        let config = SessionConfig::new(local, stream(1, 1), "a").with_dtls(cert, n.ice_a.clone());
        MediaSession::new(now, at, config).map(|_| ())
    };
    assert_eq!(
        MediaSession::new(
            now,
            &n.at_a,
            SessionConfig::new(addr_a(), stream(1, 1), "a")
        )
        .map(|_| ()),
        Err(MediaError::MissingDtlsCredentials),
        "a DTLS-SRTP negotiation without our certificate and ICE credentials"
    );
    let mut no_ice = n.at_a.clone();
    no_ice.ice = None;
    assert_eq!(
        new(&no_ice, addr_a(), &n.cert_a),
        Err(MediaError::MissingIceCredentials)
    );
    let unspecified = SocketAddr::from(([0, 0, 0, 0], 4000));
    assert_eq!(
        new(&n.at_a, unspecified, &n.cert_a),
        Err(MediaError::LocalAddress(unspecified))
    );
    let mut g729 = n.at_a.clone();
    g729.codec.name = "G729".into();
    assert!(matches!(
        new(&g729, addr_a(), &n.cert_a),
        Err(MediaError::UnsupportedCodec(_))
    ));

    let mut a = session_a(&n, now, stream(1, 1));
    assert!(matches!(
        a.add_remote_candidate(now, "not a candidate"),
        Err(MediaError::BadCandidate(_))
    ));
    for ok in [
        "1 1 udp 2130706431 127.0.0.1 5000 typ host",
        "candidate:1 1 udp 2130706431 127.0.0.1 5001 typ host",
        "a=candidate:1 2 udp 2130706430 127.0.0.1 5002 typ host",
        "2 1 tcp 1518280447 127.0.0.1 9 typ host tcptype active",
    ] {
        a.add_remote_candidate(now, ok).unwrap();
    }
    // Re-INVITE: hold is applied, and so is a codec str0m's table knows (PCMA, 8).
    let mut hold = n.at_a.clone();
    hold.hold = true;
    a.update(&hold).unwrap();
    assert!(!a.sending());
    let mut pcma = n.at_a.clone();
    pcma.codec.pt = 8;
    pcma.codec.name = "PCMA".into();
    a.update(&pcma).unwrap();
    assert_eq!(a.negotiated().codec.name, "PCMA");
    // What the transport cannot follow is refused, and the session stays as it was.
    let mut unknown_pt = n.at_a.clone();
    unknown_pt.codec.pt = 96;
    let mut new_fingerprint = n.at_a.clone();
    new_fingerprint
        .dtls
        .as_mut()
        .unwrap()
        .remote_fingerprint
        .value[0] ^= 1;
    let mut ice_restart = n.at_a.clone();
    ice_restart.ice.as_mut().unwrap().ufrag.push('x');
    let mut sdes = n.at_a.clone();
    sdes.dtls = None;
    for refused in [unknown_pt, new_fingerprint, ice_restart, sdes] {
        assert!(matches!(
            a.update(&refused),
            Err(MediaError::Renegotiation(_))
        ));
        assert_eq!(a.negotiated(), &pcma);
    }
}

#[test]
fn a_new_ssrc_from_the_peer_is_followed() {
    // Our SDP carries no a=ssrc, so the receive SSRC is learnt from authenticated packets;
    // a peer that switches SSRC mid-call (a PBX bridging another leg) must still be heard.
    let n = negotiate(CodecPref::Pcmu);
    let mut sim = Sim::new(&n);
    sim.connect(Duration::from_secs(5));
    sim.capture = true;
    sim.run_for(Duration::from_secs(1));
    let new_ssrc = sim.b.session.ssrc() ^ 0x5555_5555;
    {
        let (transport, pipeline) = sim.b.session.dtls_parts_mut().unwrap();
        let mid = transport.mid;
        transport
            .rtc
            .direct_api()
            .reset_stream_tx(mid, None, Ssrc::from(new_ssrc), None)
            .unwrap();
        pipeline.restart_stream(stream(new_ssrc, 1000));
    }
    let before = toned_windows(&sim.a.heard, 1000.0);
    sim.run_for(Duration::from_secs(2));
    let after = toned_windows(&sim.a.heard, 1000.0);
    assert!(after - before >= 90, "{}", after - before);
    let (transport, _) = sim.a.session.dtls_parts_mut().unwrap();
    assert_eq!(transport.rx_ssrcs.back(), Some(&new_ssrc));
}

#[test]
fn a_codec_change_keeps_the_dtls_association_and_its_srtp_contexts() {
    // The bug: a DTLS-SRTP session refused every codec change ("build a new session"), and
    // the runtime could only log the refusal: after a re-INVITE from PCMU to PCMA we went on
    // sending PCMU and dropped the peer's PCMA as an unknown payload type, i.e. no audio
    // either way. A new session is no way out: it means a new DTLS handshake, which a peer
    // keeping its association across the re-INVITE never answers. Now the codec changes
    // inside the session; the DTLS association, and str0m's SRTP contexts with their
    // rollover counters (both streams wrap their sequence numbers here), stay.
    let mut n = negotiate_with(&dtls_config(vec![CodecPref::Pcmu, CodecPref::Pcma]));
    assert_eq!(n.at_a.codec.name, "PCMU");
    let mut sim = Sim::with_streams(&n, stream(0xa1a1_a1a1, 65_500), stream(0xb2b2_b2b2, 65_450));
    sim.connect(Duration::from_secs(5));
    sim.capture = true;
    sim.run_for(Duration::from_secs(2));
    // Let what is in flight arrive, as a re-INVITE's round trip would.
    sim.capture = false;
    sim.run_for(Duration::from_millis(100));

    let mut rng = StdRng::seed_from_u64(8);
    let pcma = dtls_config(vec![CodecPref::Pcma]);
    let (id_a, keys_a) = &mut n.sdp_a;
    let (id_b, keys_b) = &mut n.sdp_b;
    let offer = create_offer(&pcma, addr_a(), id_a, keys_a);
    let (answer_sdp, at_b) = answer(
        &offer,
        &dtls_config(vec![CodecPref::Pcmu, CodecPref::Pcma]),
        addr_b(),
        id_b,
        keys_b,
        &mut rng,
    )
    .unwrap();
    let at_a = process_answer(&offer, &answer_sdp, &pcma, keys_a, &mut rng).unwrap();
    assert_eq!((at_a.codec.name.as_str(), at_a.codec.pt), ("PCMA", 8));
    assert_eq!(at_a.dtls, n.at_a.dtls, "same fingerprint and roles");
    sim.a.session.update(&at_a).unwrap();
    sim.b.session.update(&at_b).unwrap();

    let events_before = (sim.a.events.len(), sim.b.events.len());
    let heard_before = toned_windows(&sim.b.heard, 440.0);
    sim.capture = true;
    sim.run_for(Duration::from_secs(2));
    sim.capture = false;
    sim.run_for(Duration::from_millis(100));

    for (peer, before) in [(&sim.a, events_before.0), (&sim.b, events_before.1)] {
        assert!(peer.is_connected());
        let new_events = &peer.events[before..];
        assert!(
            !new_events
                .iter()
                .any(|e| matches!(e, MediaEvent::Connected | MediaEvent::Failed(_))),
            "no new handshake: {new_events:?}"
        );
    }
    assert!(
        toned_windows(&sim.b.heard, 440.0) - heard_before >= 90,
        "B hears A in PCMA"
    );
    for (from, to) in [(&sim.a, &sim.b), (&sim.b, &sim.a)] {
        assert_eq!(from.session.stats().packets_sent, 200);
        assert_eq!(to.session.stats().packets_received, 200);
        assert_eq!(to.session.stats().packets_lost, 0);
        assert_eq!(to.session.drops(), DropCounters::default());
    }
}

#[test]
fn an_ice_restart_moves_a_dtls_call_to_a_new_address_without_a_new_handshake() {
    let mut n = negotiate(CodecPref::Pcmu);
    let mut sim = Sim::new(&n);
    sim.connect(Duration::from_secs(5));
    sim.capture = true;
    sim.run_for(Duration::from_secs(1));

    // A moves: a new socket; what is sent to the old address is lost from now on.
    let moved = SocketAddr::from(([127, 0, 0, 1], 4100));
    let mut rng = StdRng::seed_from_u64(11);
    let (ice_a, ice_b) = (new_ice_credentials(&mut rng), new_ice_credentials(&mut rng));
    let config = dtls_config(vec![CodecPref::Pcmu]);
    let (id_a, keys_a) = &mut n.sdp_a;
    let (id_b, keys_b) = &mut n.sdp_b;
    keys_a.set_ice(IceLocal {
        credentials: ice_a.clone(),
        candidates: vec![host_candidate_line(moved).unwrap()],
    });
    keys_b.set_ice(IceLocal {
        credentials: ice_b.clone(),
        candidates: vec![host_candidate_line(addr_b()).unwrap()],
    });
    let offer = create_offer(&config, moved, id_a, keys_a);
    let (answer_sdp, at_b) = answer(&offer, &config, addr_b(), id_b, keys_b, &mut rng).unwrap();
    let at_a = process_answer(&offer, &answer_sdp, &config, keys_a, &mut rng).unwrap();
    assert_eq!(at_a.dtls, n.at_a.dtls, "same fingerprint and roles");
    assert_ne!(at_a.ice, n.at_a.ice, "the peer's new credentials");
    let restart = |local| IceSetup {
        local,
        candidates: Vec::new(),
        relay: None,
        controlling: false,
        policy: IcePolicy::All,
    };
    let now = sim.now;
    sim.a
        .session
        .restart_ice(now, moved, restart(ice_a), &at_a, Some(&answer_sdp))
        .unwrap();
    sim.b
        .session
        .restart_ice(now, addr_b(), restart(ice_b), &at_b, Some(&offer))
        .unwrap();
    sim.a.addr = moved;
    let events_before = (sim.a.events.len(), sim.b.events.len());
    let (heard_a, heard_b) = (sim.a.heard.len(), sim.b.heard.len());
    sim.run_for(Duration::from_secs(3));

    for (peer, before) in [(&sim.a, events_before.0), (&sim.b, events_before.1)] {
        assert!(peer.is_connected());
        let new_events = &peer.events[before..];
        assert!(
            !new_events
                .iter()
                .any(|e| matches!(e, MediaEvent::Connected | MediaEvent::Failed(_))),
            "no new handshake: {new_events:?}"
        );
    }
    // Three seconds after the restart: at least 2.5 s of each tone (the checks take a moment).
    assert!(
        toned_windows(&sim.b.heard[heard_b..], 440.0) >= 125,
        "B hears A again"
    );
    assert!(
        toned_windows(&sim.a.heard[heard_a..], 1000.0) >= 125,
        "A hears B again"
    );
}

#[test]
fn a_dtls_restart_without_the_peers_credentials_changes_nothing() {
    let n = negotiate(CodecPref::Pcmu);
    let mut sim = Sim::new(&n);
    sim.connect(Duration::from_secs(5));
    let mut without = n.at_a.clone();
    without.ice = None;
    let setup = IceSetup {
        local: n.ice_a.clone(),
        candidates: Vec::new(),
        relay: None,
        controlling: false,
        policy: IcePolicy::All,
    };
    let now = sim.now;
    assert_eq!(
        sim.a
            .session
            .restart_ice(now, addr_a(), setup, &without, None),
        Err(MediaError::MissingIceCredentials)
    );
    sim.capture = true;
    sim.run_for(Duration::from_secs(1));
    assert!(toned_windows(&sim.b.heard, 440.0) >= 40, "the call goes on");
}
