//! Inputs found by the cargo-fuzz targets in `fuzz/` (see `fuzz/run.sh`), kept as plain tests so
//! they run on stable with `cargo test`, plus a replay of the fuzz seed corpus.
//!
//! Each test tells its bug's story and how it was fixed. A new find goes in as a test marked
//! `#[ignore = "ID: reported, not fixed yet"]` (run it with `-- --ignored`) until the fix lands;
//! the id starting each test's name is the one `HANDSET_FUZZ_KNOWN` takes to let the fuzzers
//! step over that bug meanwhile.

use std::path::PathBuf;

use handset_sip::message::{HeaderName, Message, StreamFramer, StreamItem};

/// Parses, prints, re-parses; returns both parses. Content-Length is rewritten by the printer on
/// purpose, so callers compare with [`without_content_length`].
fn round_trip(bytes: &[u8]) -> (Message, Message) {
    let first = Message::parse(bytes).expect("input parses");
    let printed = first.to_bytes();
    let second = Message::parse(&printed).expect("printed message re-parses");
    (first, second)
}

fn without_content_length(message: &Message) -> Message {
    let mut m = message.clone();
    m.headers_mut().remove(&HeaderName::ContentLength);
    m
}

/// fold-ws — found by `parse_message` within ~120,000 executions, from the `folded.sip` seed.
///
/// The story: `unfold` joins a continuation line (one starting with SP/HTAB) to the header above
/// it by pushing a space and then the trimmed line. When the continuation line holds nothing but
/// white space (`"Subject: hi\r\n \r\n"`, which RFC 3261's `LWS = [*WSP CRLF] 1*WSP` lets a
/// sender emit as trailing LWS), the trimmed line is empty but the space was already pushed, so
/// the value becomes `"hi "`. Every other value is trimmed, so this is the only way a value keeps
/// trailing white space; `to_bytes` prints `Subject: hi \r\n`, and the re-parse trims it back to
/// `"hi"`: the message does not survive its own print/parse round-trip, and the stray space
/// reaches whatever compares header values (a CSeq of `"6 OPTIONS "`, a Call-ID, a tag).
///
/// Fixed (c27fda0) in message/mod.rs, `unfold`: the continuation is trimmed first and joined only
/// when something is left.
#[test]
fn fold_ws_whitespace_only_continuation_line_leaves_no_trailing_space() {
    // The fuzzer's minimized input, verbatim (79 bytes, hex
    // 4f5054494f4e5320703a69205349502f322e300a563a5349502f322e302f5020630a543a3c693a683e0a463a
    // 3c703a613e0a43616c6c2d49443a000a435365713a2036204f5054494f4e530a200a0a): bare-LF line ends,
    // one-letter URIs, a NUL Call-ID (replaced by `x` here since Call-IDs
    // must now be printable words), and the white-space-only line `" "` after the CSeq.
    let minimized: &[u8] = b"OPTIONS p:i SIP/2.0\nV:SIP/2.0/P c\nT:<i:h>\nF:<p:a>\n\
Call-ID:x\nCSeq: 6 OPTIONS\n \n\n";
    let (first, second) = round_trip(minimized);
    assert_eq!(first.headers().get(&HeaderName::CSeq), Some("6 OPTIONS"));
    assert_eq!(
        without_content_length(&second),
        without_content_length(&first)
    );

    // The same bug in a realistic message.
    let readable = b"OPTIONS sip:carol@chicago.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bKhjhs8ass877\r\n\
To: <sip:carol@chicago.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710\r\n\
CSeq: 63104 OPTIONS\r\n\
Subject: I know you're there,\r\n \r\n\t\r\n pick up the phone\r\n \r\n\
Content-Length: 0\r\n\r\n";
    let (first, second) = round_trip(readable);
    assert_eq!(
        first.headers().get(&HeaderName::Subject),
        Some("I know you're there, pick up the phone")
    );
    assert_eq!(
        without_content_length(&second),
        without_content_length(&first)
    );
}

/// crlf-cr — found by `stream_framer` within ~17,000 executions (minimized input, hex
/// `0d0d0a0da3`: control byte 0x0d, then the stream `\r\n\r\xa3`).
///
/// The story: `next_item` skips RFC 5626 keep-alives and stray CRLFs at the head of the buffer.
/// Seeing `\r\n`, it yields a ping for `\r\n\r\n`, drops the CRLF when the third byte is not
/// `\r`, and otherwise returns `None` to wait for the fourth byte. But it also returns `None`
/// when the fourth byte is already there and is not `\n` (`\r\n\r` + anything else): the bytes
/// can never change, so the framer never yields again, and because that early return comes
/// before the `MAX_HEAD` check, `push` keeps appending everything the peer sends without bound.
/// One stray `\r\n\r` from a peer (or an attacker on a TCP/TLS connection) wedges the connection
/// and grows its buffer until the process runs out of memory.
///
/// Fixed (c27fda0) in message/framing.rs, `next_item`: it waits only while fewer than 4 bytes
/// are buffered and otherwise drops the stray CRLF like any other; the lone `\r` then starts the
/// next message, which `Message::parse` already tolerates (it skips leading CR/LF), or trips
/// `MAX_HEAD`.
#[test]
fn crlf_cr_stray_crlf_then_cr_does_not_wedge_the_framer() {
    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\n\
From: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\
Content-Length: 0\r\n\r\n";

    // The fuzzer's stream: nothing can ever follow that would let the framer move on.
    let mut framer = StreamFramer::new();
    framer.push(b"\r\n\r\xa3");
    let _ = framer.next_item();
    assert!(
        framer.buffered() < 4,
        "framer sits on `\\r\\n\\r\\xa3` waiting for bytes that cannot change it"
    );

    // A stray `\r\n\r` before a real message: the message must still come out.
    let mut framer = StreamFramer::new();
    framer.push(b"\r\n\r");
    framer.push(MSG);
    assert!(
        matches!(framer.next_item(), Some(Ok(StreamItem::Message(_)))),
        "message after a stray CRLF CR is never yielded"
    );

    // Without a message, the header-size limit must still apply.
    let mut framer = StreamFramer::new();
    framer.push(b"\r\n\rX");
    for _ in 0..80 {
        framer.push(&[b'a'; 1024]);
        if framer.next_item().is_some() {
            break;
        }
    }
    assert!(
        framer.is_broken(),
        "80 KiB without an empty line must break the stream (MAX_HEAD is 64 KiB), {} bytes \
         buffered instead",
        framer.buffered()
    );
}

fn seeds() -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/messages");
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| {
            let path = entry.expect("directory entry").path();
            let name = path
                .file_name()
                .expect("file name")
                .to_string_lossy()
                .into_owned();
            (name, std::fs::read(&path).expect("seed readable"))
        })
        .collect();
    out.sort();
    out
}

/// Every seed message of the fuzz corpus parses and survives print → parse unchanged; the
/// stream seed frames into its ping, three messages and a stray CRLF.
#[test]
fn fuzz_seed_corpus_parses_and_round_trips() {
    let seeds = seeds();
    assert!(
        seeds.len() >= 8,
        "seed corpus missing: {} files",
        seeds.len()
    );
    for (name, bytes) in &seeds {
        if name.ends_with(".bin") {
            let mut framer = StreamFramer::new();
            framer.push(bytes);
            let mut items = Vec::new();
            while let Some(item) = framer.next_item() {
                items.push(item.unwrap_or_else(|e| panic!("{name}: {e}")));
            }
            assert_eq!(items.first(), Some(&StreamItem::Ping), "{name}");
            let messages = items
                .iter()
                .filter(|i| matches!(i, StreamItem::Message(_)))
                .count();
            assert_eq!(messages, 3, "{name}");
            continue;
        }
        let first = Message::parse(bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let h = first.headers();
        assert!(!h.vias().expect("vias").is_empty(), "{name}");
        h.from().expect("from");
        h.to().expect("to");
        h.cseq().expect("cseq");
        h.contacts().expect("contacts");
        let second = Message::parse(&first.to_bytes()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            without_content_length(&second),
            without_content_length(&first),
            "{name}"
        );
    }
}
