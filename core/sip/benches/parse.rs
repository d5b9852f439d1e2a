//! Parser throughput on a typical call set-up: an INVITE with an SDP offer as a softphone sends
//! it through one proxy (two Vias), about 900 bytes on the wire.
//!
//! `cargo bench -p handset-sip --bench parse`

#![allow(missing_docs)]

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use handset_sip::message::Message;

const SDP: &str = "v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 192.0.2.101\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49170 RTP/AVP 0 8 111 101\r\n\
a=rtpmap:0 PCMU/8000\r\n\
a=rtpmap:8 PCMA/8000\r\n\
a=rtpmap:111 opus/48000/2\r\n\
a=fmtp:111 minptime=10;useinbandfec=1\r\n\
a=rtpmap:101 telephone-event/8000\r\n\
a=fmtp:101 0-16\r\n\
a=ptime:20\r\n\
a=sendrecv\r\n";

fn invite() -> Vec<u8> {
    format!(
        "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP proxy.atlanta.example.com:5060;branch=z9hG4bK8a7f3.1;received=192.0.2.3\r\n\
Via: SIP/2.0/UDP 192.0.2.101:5060;branch=z9hG4bK776asdhds;rport=5060\r\n\
Max-Forwards: 69\r\n\
From: \"Alice Liddell\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@192.0.2.101:5060;transport=udp>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY, MESSAGE\r\n\
Supported: replaces, timer, 100rel\r\n\
User-Agent: Handset/0.1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: {}\r\n\
\r\n\
{SDP}",
        SDP.len()
    )
    .into_bytes()
}

fn bench_parse(c: &mut Criterion) {
    let bytes = invite();
    let message = Message::parse(&bytes).expect("the benchmark INVITE parses");
    assert_eq!(
        message.to_bytes(),
        bytes,
        "the benchmark INVITE prints back unchanged"
    );

    let mut group = c.benchmark_group("invite_sdp");
    group.throughput(Throughput::Bytes(bytes.len() as u64));
    group.bench_function("parse", |b| b.iter(|| Message::parse(black_box(&bytes))));
    group.bench_function("to_bytes", |b| b.iter(|| black_box(&message).to_bytes()));
    group.bench_function("parse_typed", |b| {
        b.iter(|| {
            let m = Message::parse(black_box(&bytes)).expect("parses");
            let h = m.headers();
            (
                h.vias().expect("vias"),
                h.from().expect("from"),
                h.to().expect("to"),
                h.cseq().expect("cseq"),
                h.contacts().expect("contacts"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, bench_parse);
criterion_main!(benches);
