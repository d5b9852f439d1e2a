//! Codec, resampler and jitter-buffer throughput (one 20 ms frame per iteration).
#![allow(missing_docs)]

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use handset_media::codec::g711::{G711Decoder, G711Encoder, Law};
use handset_media::codec::opus::{OpusConfig, OpusDecoder, OpusEncoder};
use handset_media::codec::resample::Resampler;
use handset_media::codec::{Decoder, Encoder, sine};
use handset_media::jitter::{JitterBuffer, JitterConfig};
use std::time::Duration;

fn codecs(c: &mut Criterion) {
    let pcm8 = sine(440.0, 8000, 8000.0, 0, 160);
    let pcm48 = sine(440.0, 48000, 8000.0, 0, 960);

    let mut enc = G711Encoder::new(Law::MuLaw);
    let mut dec = G711Decoder::new(Law::MuLaw);
    let mut payload = Vec::new();
    c.bench_function("g711 encode 20ms", |b| {
        b.iter(|| {
            payload.clear();
            enc.encode(black_box(&pcm8), &mut payload).ok();
        })
    });
    let mut out = Vec::new();
    c.bench_function("g711 decode 20ms", |b| {
        b.iter(|| {
            out.clear();
            dec.decode(black_box(&payload), &mut out).ok();
        })
    });
    c.bench_function("g711 conceal 20ms", |b| {
        b.iter(|| {
            out.clear();
            dec.conceal(160, &mut out).ok();
        })
    });

    if let (Ok(mut enc), Ok(mut dec)) =
        (OpusEncoder::new(&OpusConfig::default()), OpusDecoder::new())
    {
        let mut payload = Vec::new();
        c.bench_function("opus encode 20ms", |b| {
            b.iter(|| {
                payload.clear();
                enc.encode(black_box(&pcm48), &mut payload).ok();
            })
        });
        c.bench_function("opus decode 20ms", |b| {
            b.iter(|| {
                out.clear();
                dec.decode(black_box(&payload), &mut out).ok();
            })
        });
    }

    if let Ok(mut down) = Resampler::new(48000, 8000) {
        c.bench_function("resample 48k->8k 20ms", |b| {
            b.iter(|| {
                out.clear();
                down.process(black_box(&pcm48), &mut out);
            })
        });
    }
    if let Ok(mut up) = Resampler::new(8000, 48000) {
        c.bench_function("resample 8k->48k 20ms", |b| {
            b.iter(|| {
                out.clear();
                up.process(black_box(&pcm8), &mut out);
            })
        });
    }

    let mut jb = JitterBuffer::new(JitterConfig::new(8000, Duration::from_millis(20)));
    let mut seq = 0u64;
    c.bench_function("jitter push+pop", |b| {
        b.iter(|| {
            let now = Duration::from_millis(20 * seq);
            jb.push(now, seq, (seq * 160) as u32, vec![0; 160], seq == 0);
            black_box(jb.pop(now + Duration::from_millis(60)));
            seq += 1;
        })
    });
}

criterion_group!(benches, codecs);
criterion_main!(benches);
