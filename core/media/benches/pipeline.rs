//! The whole 20 ms media pipeline of one call direction: resample, encode, packetize, SRTP
//! protect, SRTP unprotect, jitter buffer, decode, resample — per frame, for PCMU and Opus.

#![allow(missing_docs)] // criterion_group! generates undocumented functions

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use handset_media::codec::sine;
use handset_media::sdp::{
    CodecPref, MediaConfig, OfferKeys, SessionIdentity, SrtpPolicy, answer, create_offer,
    process_answer,
};
use handset_media::session::{
    DEVICE_FRAME, DEVICE_RATE, FRAME, MediaSession, MediaTime, SessionConfig, StreamStart,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn pair(codec: CodecPref, srtp: SrtpPolicy, start: MediaTime) -> (MediaSession, MediaSession) {
    let mut rng = StdRng::seed_from_u64(3);
    let config = MediaConfig {
        codecs: vec![codec],
        srtp,
        ..MediaConfig::default()
    };
    let a: SocketAddr = ([127, 0, 0, 1], 4000).into();
    let b: SocketAddr = ([127, 0, 0, 1], 5000).into();
    let mut keys = OfferKeys::generate(&mut rng);
    let offer = create_offer(&config, a, &mut SessionIdentity::new(&mut rng), &keys);
    let (answer_sdp, at_b) = answer(
        &offer,
        &config,
        b,
        &mut SessionIdentity::new(&mut rng),
        &mut OfferKeys::generate(&mut rng),
        &mut rng,
    )
    .expect("answer");
    let at_a =
        process_answer(&offer, &answer_sdp, &config, &mut keys, &mut rng).expect("process answer");
    let stream = |n| StreamStart {
        ssrc: n,
        sequence: n as u16,
        timestamp: n,
    };
    (
        MediaSession::new(start, &at_a, SessionConfig::new(a, stream(1), "a")).expect("session a"),
        MediaSession::new(start, &at_b, SessionConfig::new(b, stream(2), "b")).expect("session b"),
    )
}

fn pipeline(c: &mut Criterion) {
    // Virtual time from one reading of the clock (a bench may read it; the crate may not).
    #[allow(clippy::disallowed_methods)]
    let start = MediaTime::new(Instant::now(), 0);
    let from: SocketAddr = ([127, 0, 0, 1], 4000).into();
    let frame = sine(440.0, DEVICE_RATE, 8000.0, 0, DEVICE_FRAME);
    for (name, codec) in [
        ("pcmu", CodecPref::Pcmu),
        (
            "opus",
            CodecPref::Opus {
                useinbandfec: true,
                usedtx: false,
            },
        ),
    ] {
        let (mut a, mut b) = pair(codec, SrtpPolicy::Mandatory, start);
        let mut tick = 0u32;
        let mut out = Vec::with_capacity(DEVICE_FRAME);
        c.bench_function(&format!("pipeline_20ms_{name}_srtp"), |bench| {
            bench.iter(|| {
                let now = start + FRAME * tick + Duration::from_millis(40);
                tick += 1;
                a.handle_capture(now, black_box(&frame)).expect("capture");
                while let Some(t) = a.poll_transmit() {
                    b.handle_datagram(now, from, &t.bytes);
                }
                out.clear();
                b.playout(now, &mut out);
                black_box(&out);
            })
        });
    }
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
