//! Properties checked by the fuzz targets: the handset-sip message layer here, the phone
//! machine in [`phone`]. They live in a library so that each target stays a one-liner and a
//! crashing input can be replayed from a plain test.
//!
//! Every check panics (which libFuzzer reports as a crash) when a property fails, with a message
//! that names the property.

use std::sync::OnceLock;

use handset_sip::message::{
    HeaderName, Message, NameAddr, ParseError, StreamFramer, StreamItem, Uri, Via,
};

pub mod phone;
pub use phone::check_phone;
pub mod stun;
pub use stun::check_stun;

/// Known, reported bugs that a run may be told to step over so that fuzzing can look past them:
/// `HANDSET_FUZZ_KNOWN=fold-ws,crlf-cr fuzz/run.sh ...`. Without the variable every property is
/// checked strictly. Each id is explained in core/sip/tests/fuzz_regressions.rs; both ids
/// handled here were fixed in c27fda0, and the hooks stay for the next find.
fn known(id: &str) -> bool {
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            std::env::var("HANDSET_FUZZ_KNOWN")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|k| k == id)
}

/// The message with every Content-Length line removed. `Message::to_bytes` rewrites
/// Content-Length on purpose (it always states the body's real length, once), so the round-trip
/// compares everything else exactly and checks the body itself.
///
/// With the known bug `fold-ws` stepped over, header values are also compared without trailing
/// white space (a white-space-only continuation line leaves one behind; printing then loses it).
fn without_content_length(message: &Message) -> Message {
    let mut m = message.clone();
    m.headers_mut().remove(&HeaderName::ContentLength);
    if known("fold-ws") {
        let mut trimmed = handset_sip::message::Headers::new();
        for h in m.headers().iter() {
            trimmed.push(h.name.clone(), h.value.trim_end());
        }
        *m.headers_mut() = trimmed;
    }
    m
}

/// Calls every typed accessor on the headers, and checks that each typed value that parses prints
/// back to text that parses to the same value (the stack re-prints Via, From/To, Contact, Route).
pub fn exercise_typed_headers(message: &Message) {
    let h = message.headers();
    if let Ok(vias) = h.vias() {
        for via in &vias {
            let _ = (via.branch(), via.received(), via.rport());
            let text = via.to_string();
            let again = Via::parse(&text)
                .unwrap_or_else(|e| panic!("Via printed as {text:?} does not re-parse: {e}"));
            assert_eq!(&again, via, "Via round-trip through {text:?}");
        }
    }
    let _ = h.top_via();
    let mut addrs: Vec<NameAddr> = Vec::new();
    addrs.extend(h.from().ok());
    addrs.extend(h.to().ok());
    if let Ok(contacts) = h.contacts() {
        addrs.extend(contacts.into_iter().flatten());
    }
    addrs.extend(h.routes().unwrap_or_default());
    addrs.extend(h.record_routes().unwrap_or_default());
    for addr in &addrs {
        let _ = (
            addr.tag(),
            addr.expires(),
            addr.param("q"),
            addr.uri.as_sip(),
        );
        if let Some(sip) = addr.uri.as_sip() {
            let _ = (sip.transport_param(), sip.param("lr"), sip.host.ip());
        }
        let text = addr.to_string();
        let again = NameAddr::parse(&text)
            .unwrap_or_else(|e| panic!("name-addr printed as {text:?} does not re-parse: {e}"));
        assert_eq!(&again, addr, "name-addr round-trip through {text:?}");
    }
    if let Ok(cseq) = h.cseq() {
        let text = cseq.to_string();
        let again = handset_sip::message::CSeq::parse(&text)
            .unwrap_or_else(|e| panic!("CSeq printed as {text:?} does not re-parse: {e}"));
        assert_eq!(again, cseq, "CSeq round-trip through {text:?}");
    }
    let _ = h.call_id();
    let _ = h.content_length();
    let _ = h.max_forwards();
    let _ = h.expires();
    let _ = h.min_expires();
    for header in h.iter() {
        let _ = h.values(&header.name);
    }
}

/// `parse_message`: parse; on success print, re-parse, and require the same message (modulo
/// the Content-Length normalisation), a byte-identical second print, and working accessors.
pub fn check_parse_message(data: &[u8]) {
    let Ok(first) = Message::parse(data) else {
        return;
    };
    exercise_typed_headers(&first);
    let printed = first.to_bytes();
    let second = match Message::parse(&printed) {
        Ok(m) => m,
        Err(e) => panic!(
            "printed message does not re-parse ({e}):\n{}",
            String::from_utf8_lossy(&printed)
        ),
    };
    assert_eq!(
        without_content_length(&second),
        without_content_length(&first),
        "re-parse of the printed message differs from the first parse; printed:\n{}",
        String::from_utf8_lossy(&printed)
    );
    assert_eq!(
        second.body(),
        first.body(),
        "body changed in the round-trip"
    );
    if known("fold-ws") {
        // The first print may carry the stray trailing space; from the second on it must be exact.
        let reprinted = second.to_bytes();
        assert_eq!(
            Message::parse(&reprinted).ok().as_ref(),
            Some(&second),
            "second round-trip is not exact"
        );
    } else {
        assert_eq!(
            second.to_bytes(),
            printed,
            "printing is not a fixed point after one round-trip"
        );
    }
}

/// Items a framer yields, with the number of bytes still buffered and the broken flag at the end.
type FramerRun = (Vec<Result<StreamItem, ParseError>>, usize, bool);

/// Feeds `stream` to a fresh framer in chunks whose lengths `chunk_len` picks, draining after each
/// push, and checks the framer's buffer invariants along the way. `None` when the known bug
/// `crlf-cr` is stepped over and this stream hits it.
fn run_framer(
    stream: &[u8],
    expect_pong: bool,
    mut chunk_len: impl FnMut() -> usize,
) -> Option<FramerRun> {
    let mut framer = StreamFramer::new();
    if expect_pong {
        framer.expect_pong();
    }
    let mut items = Vec::new();
    let mut pushed = 0usize;
    // Bytes the framer has consumed (yielded or skipped); it only ever grows.
    let mut consumed = 0usize;
    while pushed < stream.len() {
        let n = chunk_len().clamp(1, stream.len() - pushed);
        framer.push(&stream[pushed..pushed + n]);
        pushed += n;
        // Bounded drain: every item consumes at least one byte, so more items than bytes is a
        // livelock.
        let mut guard = 0usize;
        while let Some(item) = framer.next_item() {
            items.push(item);
            guard += 1;
            assert!(
                guard <= pushed + 1,
                "framer yields items without consuming bytes"
            );
        }
        let buffered = framer.buffered();
        assert!(
            buffered <= pushed,
            "framer buffers {buffered} bytes after only {pushed} were pushed"
        );
        if framer.is_broken() {
            assert_eq!(buffered, 0, "a broken framer keeps bytes");
            continue;
        }
        let now_consumed = pushed - buffered;
        assert!(now_consumed >= consumed, "framer un-consumed bytes");
        consumed = now_consumed;
        // Liveness: with the buffer starting with CRLF and at least two more bytes, the framer
        // always knows whether it holds a ping or a stray CRLF, so it must not sit on it.
        let rest = &stream[consumed..pushed];
        if known("crlf-cr") && rest.starts_with(b"\r\n") && rest.len() >= 4 {
            return None;
        }
        assert!(
            !(rest.starts_with(b"\r\n") && rest.len() >= 4),
            "framer is stuck on a buffer starting {:?} ({} bytes): it will never yield again \
             and buffers without bound",
            String::from_utf8_lossy(&rest[..rest.len().min(8)]),
            rest.len()
        );
    }
    Some((items, framer.buffered(), framer.is_broken()))
}

/// `stream_framer`: the first byte steers the run (chunk-size seed, whether a pong is expected);
/// the rest is the stream. Checks: no panic, buffer invariants, the same items whatever the
/// chunking, and every yielded message survives print → frame → same message.
pub fn check_stream_framer(data: &[u8]) {
    let Some((&control, stream)) = data.split_first() else {
        return;
    };
    let expect_pong = control & 0x80 != 0;
    // Chunk lengths come from a small xorshift seeded by the control byte and the stream length,
    // mixing 1-byte reads (the hardest case) with larger ones.
    let mut state = u32::from(control) << 16 ^ stream.len() as u32 ^ 0x9e37_79b9;
    let Some(chunked) = run_framer(stream, expect_pong, || {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        match state % 4 {
            0 => 1,
            1 => 1 + (state >> 8) as usize % 8,
            2 => 1 + (state >> 8) as usize % 64,
            _ => 1 + (state >> 8) as usize % 1024,
        }
    }) else {
        return;
    };
    let Some(whole) = run_framer(stream, expect_pong, || usize::MAX) else {
        return;
    };
    // Past 64 KiB the framer may legitimately give up on a header section that a single push
    // would have completed, so chunk-independence is only required below that.
    if stream.len() <= 64 * 1024 {
        assert_eq!(
            chunked, whole,
            "framer output depends on how the stream was chunked"
        );
    }

    for item in &whole.0 {
        let Ok(StreamItem::Message(message)) = item else {
            continue;
        };
        exercise_typed_headers(message);
        let printed = message.to_bytes();
        let mut framer = StreamFramer::new();
        framer.push(&printed);
        match framer.next_item() {
            Some(Ok(StreamItem::Message(again))) => assert_eq!(
                without_content_length(&again),
                without_content_length(message),
                "re-framed message differs; printed:\n{}",
                String::from_utf8_lossy(&printed)
            ),
            other => panic!(
                "printed message does not re-frame ({other:?}):\n{}",
                String::from_utf8_lossy(&printed)
            ),
        }
        assert_eq!(framer.buffered(), 0, "re-framing left bytes behind");
    }
}

/// `uri`: `Uri::parse` on UTF-8 input, and its Display re-parses to the same URI; the same text
/// is also tried as a name-addr and as a Via, whose printed forms must round-trip too.
pub fn check_uri(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(uri) = Uri::parse(text) {
        let printed = uri.to_string();
        let again = Uri::parse(&printed)
            .unwrap_or_else(|e| panic!("URI printed as {printed:?} does not re-parse: {e}"));
        assert_eq!(again, uri, "URI round-trip through {printed:?}");
        assert_eq!(
            again.to_string(),
            printed,
            "URI printing is not a fixed point"
        );
        if let Some(sip) = uri.as_sip() {
            let _ = (sip.transport_param(), sip.param("lr"), sip.host.ip());
        }
    }
    if let Ok(addr) = NameAddr::parse(text) {
        let printed = addr.to_string();
        let again = NameAddr::parse(&printed)
            .unwrap_or_else(|e| panic!("name-addr printed as {printed:?} does not re-parse: {e}"));
        assert_eq!(again, addr, "name-addr round-trip through {printed:?}");
    }
    if let Ok(via) = Via::parse(text) {
        let printed = via.to_string();
        let again = Via::parse(&printed)
            .unwrap_or_else(|e| panic!("Via printed as {printed:?} does not re-parse: {e}"));
        assert_eq!(again, via, "Via round-trip through {printed:?}");
    }
}
