//! Push handled to report returned through the runtime's public API, as the FFI's
//! `handle_push` runs it inside a PushKit / FCM handler: the `PushWake` machine under its lock,
//! the caller's contact name looked up in a real SQLite store with 1,000 contacts, and the
//! wake-up of the run loop. Each iteration pushes a new Call-ID (a new call, not a duplicate).
//!
//! `cargo bench -p handset --bench push`

#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use handset::{Handset, RuntimeConfig, Store};
use handset_store::contacts::{SourceContact, apply_local_contacts};

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let path =
        std::env::temp_dir().join(format!("handset-push-bench-{}.sqlite", std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let store = Arc::new(Store::open(&path).unwrap());
    let contacts: Vec<SourceContact> = (0..1000)
        .map(|i| SourceContact {
            source_id: format!("c{i}"),
            display_name: format!("Contact {i}"),
            numbers: vec![("mobile".into(), format!("+49301234{i:04}"))],
            ..SourceContact::default()
        })
        .collect();
    store
        .write(|tx| apply_local_contacts(tx, &contacts))
        .unwrap();
    let (handset, mut events) = rt
        .block_on(Handset::start(RuntimeConfig {
            bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            store: Some(store),
            default_country: "DE".into(),
            push_wait_for_invite: Duration::from_secs(3600),
            ..RuntimeConfig::default()
        }))
        .unwrap();
    // Nobody reads the events here; keep the channel drained.
    rt.spawn(async move { while events.recv().await.is_some() {} });

    let mut n: u64 = 0;
    c.bench_function("Handset::handle_push new call, contact found", |b| {
        b.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let payload = format!(
                    r#"{{"type":"incoming_call","call_id":"bench-{n}@pbx","from":"sip:+4930123400{:02}@pbx","from_name":"Alice"}}"#,
                    n % 100
                );
                let started = Instant::now();
                let report = handset.handle_push(black_box(payload.as_bytes())).unwrap();
                spent += started.elapsed();
                assert!(report.contact_name.is_some());
                // Untimed: end it, as a declined call would, so pending reports stay under
                // the machine's flood limit.
                handset.decline_push_report(report.report.report_id);
            }
            spent
        })
    });
    rt.block_on(handset.shutdown());
}

criterion_group!(benches, bench);
criterion_main!(benches);
