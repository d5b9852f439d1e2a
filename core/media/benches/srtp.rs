//! Criterion benchmarks of SRTP protect/unprotect for typical voice packets: 172 bytes
//! (12-byte header + 160 bytes of 20 ms G.711) and 92 bytes (12 + 80, a typical Opus
//! frame), under both AES_CM_128_HMAC_SHA1_80 and AES_CM_128_HMAC_SHA1_32.

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use handset_media::srtp::{SrtpContext, SrtpError, SrtpSuite};

const KEY: [u8; 16] = [7; 16];
const SALT: [u8; 14] = [9; 14];

/// A failure here is a bug in the code under measurement: stop the bench loudly.
fn ok<T>(r: Result<T, SrtpError>) -> T {
    match r {
        Ok(v) => v,
        Err(e) => panic!("SRTP failed during the benchmark: {e}"),
    }
}

fn rtp_packet(seq: u16, payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 0x00];
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
    p.extend(std::iter::repeat_n(0xD5u8, payload_len));
    p
}

fn bench_srtp(c: &mut Criterion) {
    let suites = [
        ("sha1_80", SrtpSuite::AesCm128HmacSha1_80),
        ("sha1_32", SrtpSuite::AesCm128HmacSha1_32),
    ];
    for (name, suite) in suites {
        for (label, payload) in [("172B_g711", 160usize), ("92B_opus", 80)] {
            let mut group = c.benchmark_group(format!("srtp_{name}_{label}"));
            group.throughput(Throughput::Elements(1));

            // Protect: the sequence number advances every packet, as on a live stream.
            let mut tx = SrtpContext::new(suite, &KEY, &SALT);
            let mut packet = rtp_packet(0, payload);
            let mut out = Vec::with_capacity(256);
            let mut seq = 0u16;
            group.bench_function("protect", |b| {
                b.iter(|| {
                    seq = seq.wrapping_add(1);
                    packet[2..4].copy_from_slice(&seq.to_be_bytes());
                    ok(tx.protect_rtp_into(black_box(&packet), &mut out));
                    black_box(out.len())
                })
            });

            // Unprotect: every iteration needs a packet the receiver has not seen, so
            // packets come from a ring protected beforehand; when the ring wraps, the
            // receiver is replaced by a clone of a fresh one (a memcpy, once per 8192
            // packets) so the replay window accepts the ring again.
            let mut sender = SrtpContext::new(suite, &KEY, &SALT);
            let ring: Vec<Vec<u8>> = (0..8192u16)
                .map(|s| ok(sender.protect_rtp(&rtp_packet(s, payload))))
                .collect();
            let fresh_rx = SrtpContext::new(suite, &KEY, &SALT);
            let mut rx = fresh_rx.clone();
            let mut plain = Vec::with_capacity(256);
            let mut i = 0usize;
            group.bench_function("unprotect", |b| {
                b.iter(|| {
                    if i == ring.len() {
                        i = 0;
                        rx = fresh_rx.clone();
                    }
                    ok(rx.unprotect_rtp_into(black_box(&ring[i]), &mut plain));
                    i += 1;
                    black_box(plain.len())
                })
            });
            group.finish();
        }
    }
}

criterion_group!(benches, bench_srtp);
criterion_main!(benches);
