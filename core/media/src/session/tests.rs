#![allow(clippy::unwrap_used, clippy::print_stdout)]

use super::*;
use crate::codec::dominant_tone_ratio;
use crate::rtcp;
use crate::rtp::RtpPacket;
use crate::sdp::{
    CodecPref, MediaConfig, OfferKeys, SessionIdentity, SrtpPolicy, answer, create_offer,
    process_answer,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The origin of virtual time: `Instant` has no constructor besides `now()`, so the tests read
/// it once and from then on only add durations. The wall clock starts in November 2023.
fn origin() -> MediaTime {
    #[allow(clippy::disallowed_methods)]
    let instant = Instant::now();
    MediaTime::new(
        instant,
        rtcp::ntp_from_unix(Duration::from_secs(1_700_000_000)),
    )
}

/// A plain or SDES session for `negotiated` whose stream starts at `ssrc`/`sequence`/`timestamp`.
fn session(
    now: MediaTime,
    negotiated: &Negotiated,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
    cname: &str,
) -> MediaSession {
    let stream = StreamStart {
        ssrc,
        sequence,
        timestamp,
    };
    MediaSession::new(now, negotiated, SessionConfig::new(addr(1), stream, cname)).unwrap()
}

/// Negotiates A (offerer, port 4000) with B (answerer, port 5000).
fn negotiate(codec: CodecPref, srtp: SrtpPolicy) -> (Negotiated, Negotiated) {
    let mut rng = StdRng::seed_from_u64(1);
    let config = MediaConfig {
        codecs: vec![codec],
        srtp,
        ..MediaConfig::default()
    };
    let mut id_a = SessionIdentity::new(&mut rng);
    let mut id_b = SessionIdentity::new(&mut rng);
    let mut keys_a = OfferKeys::generate(&mut rng);
    let mut keys_b = OfferKeys::generate(&mut rng);
    let offer = create_offer(&config, addr(4000), &mut id_a, &keys_a);
    let (answer_sdp, at_b) = answer(
        &offer,
        &config,
        addr(5000),
        &mut id_b,
        &mut keys_b,
        &mut rng,
    )
    .unwrap();
    let at_a = process_answer(&offer, &answer_sdp, &config, &mut keys_a, &mut rng).unwrap();
    (at_a, at_b)
}

fn tone_frame(freq: f64, frame_index: usize) -> Vec<i16> {
    crate::codec::sine(
        freq,
        DEVICE_RATE,
        8000.0,
        frame_index * DEVICE_FRAME,
        DEVICE_FRAME,
    )
}

struct Link {
    loss: f64,
    jitter_ms: u64,
    base_ms: u64,
    in_flight: Vec<(Duration, SocketAddr, Vec<u8>)>,
}

/// Runs `seconds` of a call: A sends a 440 Hz tone, B an 1000 Hz tone, over links with the
/// given loss and jitter. Returns (what B played, what A played, A, B).
fn run_call(
    at_a: Negotiated,
    at_b: Negotiated,
    seconds: usize,
    loss: f64,
    jitter_ms: u64,
) -> (Vec<i16>, Vec<i16>, MediaSession, MediaSession) {
    let start = origin();
    let mut a = session(start, &at_a, 0x1111, 100, 1000, "a@test");
    let mut b = session(start, &at_b, 0x2222, 65500, 2000, "b@test");
    let mut rng = StdRng::seed_from_u64(42);
    let mut links = [
        Link {
            loss,
            jitter_ms,
            base_ms: 20,
            in_flight: Vec::new(),
        },
        Link {
            loss,
            jitter_ms,
            base_ms: 20,
            in_flight: Vec::new(),
        },
    ];
    let (mut heard_by_b, mut heard_by_a) = (Vec::new(), Vec::new());
    for frame in 0..seconds * 50 {
        let mono = FRAME * frame as u32;
        let now = start + mono;
        a.handle_capture(now, &tone_frame(440.0, frame)).unwrap();
        b.handle_capture(now, &tone_frame(1000.0, frame)).unwrap();
        for (from, session, link) in [(addr(4000), &mut a, 0usize), (addr(5000), &mut b, 1)] {
            while let Some(t) = session.poll_transmit() {
                let l = &mut links[link];
                if rng.random::<f64>() < l.loss {
                    continue;
                }
                let delay = l.base_ms + rng.random_range(0..=l.jitter_ms);
                l.in_flight
                    .push((mono + Duration::from_millis(delay), from, t.bytes));
            }
        }
        for (link, session) in [(0usize, &mut b), (1, &mut a)] {
            let l = &mut links[link];
            l.in_flight.sort_by_key(|(at, _, _)| *at);
            while l.in_flight.first().is_some_and(|(at, _, _)| *at <= mono) {
                let (_, from, bytes) = l.in_flight.remove(0);
                session.handle_datagram(now, from, &bytes);
            }
        }
        b.playout(now, &mut heard_by_b);
        a.playout(now, &mut heard_by_a);
    }
    (heard_by_b, heard_by_a, a, b)
}

/// Share of 20 ms windows (after the first second of start-up) in which `freq` holds most of
/// the energy.
fn tone_share(samples: &[i16], freq: f64) -> f64 {
    let windows: Vec<&[i16]> = samples[DEVICE_RATE as usize..]
        .chunks(DEVICE_FRAME)
        .collect();
    let toned = windows
        .iter()
        .filter(|w| dominant_tone_ratio(w, DEVICE_RATE, freq) > 0.5)
        .count();
    toned as f64 / windows.len() as f64
}

#[test]
fn pcmu_call_carries_each_tone_both_ways() {
    let (at_a, at_b) = negotiate(CodecPref::Pcmu, SrtpPolicy::Off);
    let (heard_b, heard_a, a, b) = run_call(at_a, at_b, 4, 0.0, 0);
    assert_eq!(heard_b.len(), 4 * DEVICE_RATE as usize);
    assert!(
        tone_share(&heard_b, 440.0) > 0.9,
        "{}",
        tone_share(&heard_b, 440.0)
    );
    assert!(
        tone_share(&heard_a, 1000.0) > 0.9,
        "{}",
        tone_share(&heard_a, 1000.0)
    );
    assert_eq!(a.stats().packets_sent, 200);
    assert!(b.stats().packets_received >= 199);
    assert_eq!(b.drops(), DropCounters::default());
}

#[test]
fn opus_and_sdes_srtp_over_5_percent_loss_and_40ms_jitter() {
    for (codec, name) in [
        (
            CodecPref::Opus {
                useinbandfec: true,
                usedtx: false,
            },
            "opus",
        ),
        (CodecPref::Pcma, "PCMA"),
    ] {
        let (at_a, at_b) = negotiate(codec, SrtpPolicy::Mandatory);
        assert!(at_a.srtp.is_some());
        let (heard_b, heard_a, a, b) = run_call(at_a, at_b, 10, 0.05, 40);
        let stats = b.stats();
        let concealment = stats.concealed_samples as f64 / stats.jitter_buffer_emitted_count as f64;
        let delay_ms =
            stats.jitter_buffer_delay / stats.jitter_buffer_emitted_count as f64 * 1000.0;
        println!(
            "{name} + SRTP, 5 % loss, 0-40 ms jitter: concealment {:.2} %, added delay {:.1} ms, \
             lost {}, MOS {:.2}, RTT {:?}",
            concealment * 100.0,
            delay_ms,
            stats.packets_lost,
            b.mos(),
            a.stats().round_trip_time,
        );
        assert!(concealment < 0.12, "{name}: {concealment}");
        assert!(delay_ms < 150.0, "{name}: {delay_ms}");
        assert!(
            tone_share(&heard_b, 440.0) > 0.7,
            "{name}: {}",
            tone_share(&heard_b, 440.0)
        );
        assert!(
            tone_share(&heard_a, 1000.0) > 0.7,
            "{name}: {}",
            tone_share(&heard_a, 1000.0)
        );
        assert_eq!(b.drops().auth_failed, 0);
        assert!(
            a.stats().round_trip_time.is_some(),
            "RTCP round trip measured"
        );
    }
}

#[test]
fn srtp_session_rejects_plain_and_tampered_packets() {
    let (at_a, at_b) = negotiate(CodecPref::Pcmu, SrtpPolicy::Mandatory);
    let now = origin();
    let mut a = session(now, &at_a, 1, 1, 1, "a");
    let mut b = session(now, &at_b, 2, 2, 2, "b");
    a.handle_capture(now, &tone_frame(440.0, 0)).unwrap();
    let protected = a.poll_transmit().unwrap().bytes;
    let mut plain = RtpPacket::new(0, 7, 160, 1);
    plain.payload = vec![0xff; 160];
    b.handle_datagram(now, addr(4000), &plain.to_bytes().unwrap());
    let mut tampered = protected.clone();
    tampered[20] ^= 1;
    b.handle_datagram(now, addr(4000), &tampered);
    b.handle_datagram(now, addr(4000), &protected);
    b.handle_datagram(now, addr(4000), &protected);
    let drops = b.drops();
    assert_eq!(
        drops.auth_failed, 2,
        "plain and tampered packets fail authentication"
    );
    assert_eq!(drops.replayed, 1);
    assert_eq!(b.stats().packets_received, 1);
}

#[test]
fn dtmf_digits_arrive_once_each() {
    let (at_a, at_b) = negotiate(CodecPref::Pcmu, SrtpPolicy::Off);
    let start = origin();
    let mut a = session(start, &at_a, 1, 1, 1, "a");
    let mut b = session(start, &at_b, 2, 2, 2, "b");
    let mut digits = String::new();
    for frame in 0..150u32 {
        let now = start + FRAME * frame;
        if frame == 5 {
            a.send_dtmf(now, "12#").unwrap();
        }
        a.handle_capture(now, &tone_frame(440.0, frame as usize))
            .unwrap();
        a.handle_timeout(now);
        while let Some(t) = a.poll_transmit() {
            b.handle_datagram(now, addr(4000), &t.bytes);
        }
        while let Some(event) = b.poll_event() {
            if let MediaEvent::Dtmf { digit } = event {
                digits.push(digit);
            }
        }
    }
    assert_eq!(digits, "12#");
}

#[test]
fn symmetric_rtp_latches_to_the_real_source_and_hold_stops_sending() {
    let (at_a, mut at_b) = negotiate(CodecPref::Pcmu, SrtpPolicy::Off);
    let now = origin();
    let mut a = session(now, &at_a, 1, 1, 1, "a");
    let mut b = session(now, &at_b, 2, 2, 2, "b");
    a.handle_capture(now, &tone_frame(440.0, 0)).unwrap();
    // A is behind a NAT: its packets come from another port than its SDP says.
    let natted = addr(40_000);
    b.handle_datagram(now, natted, &a.poll_transmit().unwrap().bytes);
    assert_eq!(b.poll_event(), Some(MediaEvent::Latched { remote: natted }));
    b.handle_capture(now, &tone_frame(1000.0, 0)).unwrap();
    assert_eq!(b.poll_transmit().unwrap().to, natted);
    at_b.hold = true;
    b.update(&at_b).unwrap();
    b.handle_capture(now, &tone_frame(1000.0, 1)).unwrap();
    assert!(b.poll_transmit().is_none(), "on hold nothing is sent");
}

#[test]
fn garbage_datagrams_are_dropped_without_panic() {
    let (at_a, _) = negotiate(CodecPref::Pcmu, SrtpPolicy::Mandatory);
    let now = origin();
    let mut a = session(now, &at_a, 1, 1, 1, "a");
    let mut rng = StdRng::seed_from_u64(9);
    for _ in 0..5000 {
        let len = rng.random_range(0..300);
        let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
        a.handle_datagram(now, addr(1), &bytes);
    }
    assert_eq!(a.stats().packets_received, 0);
}
