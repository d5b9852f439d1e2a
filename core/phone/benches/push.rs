//! Push handled to report returned: the work a PushKit / FCM handler waits for before it can
//! report the call to CallKit / Telecom (parse the JSON payload, extract the caller, derive the
//! report id, queue the re-registration).
//!
//! `cargo bench -p handset-phone --bench push`

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use handset_phone::push::PushWake;

const PAYLOAD: &[u8] = br#"{"aps":{},"type":"incoming_call","call_id":"a84b4c76e66710@pbx.example.com","from":"sip:+4930123456@pbx.example.com;user=phone","from_name":"Alice Example","pbx":"PBX-0042","sent_at":1767225600000}"#;

fn bench(c: &mut Criterion) {
    // The benchmark's only clock read: an origin for the machine's virtual time.
    #[allow(clippy::disallowed_methods)]
    let now = Instant::now();
    c.bench_function("handle_push new call", |b| {
        b.iter_batched(
            || PushWake::new(Duration::from_secs(20)),
            |mut wake| {
                let report = wake.handle_push(now, black_box(PAYLOAD));
                black_box((report, wake.poll_action()))
            },
            BatchSize::SmallInput,
        )
    });
    let mut wake = PushWake::new(Duration::from_secs(20));
    let _ = wake.handle_push(now, PAYLOAD);
    c.bench_function("handle_push duplicate", |b| {
        b.iter(|| black_box(wake.handle_push(now, black_box(PAYLOAD))))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
