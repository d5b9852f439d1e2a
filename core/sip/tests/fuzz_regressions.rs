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

/// One outgoing call and a transaction layer, wired as the phone wires them (requests go out
/// through client transactions on a reliable flow; responses come back through the layer).
mod cseq_mismatch_rig {
    use std::time::{Duration, Instant};

    use handset_sip::message::{
        HeaderName, Host, Message, Method, NameAddr, Request, Response, SipUri,
    };
    use handset_sip::transaction::{
        Output, TransactionEvent, TransactionId, TransactionLayer, cancel_request, new_branch,
    };
    use handset_sip::usage::invite::{Call, CallConfig, CallEvent, CallOutput};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    pub struct Rig {
        pub now: Instant,
        pub layer: TransactionLayer<u8>,
        pub call: Call,
        rng: StdRng,
        pub requests: Vec<(TransactionId, Request)>,
        pub events: Vec<CallEvent>,
        /// CANCELs sent (built from the INVITE's transaction, as the phone builds them).
        pub cancels: usize,
    }

    impl Rig {
        /// bob calls carol; nothing answered yet.
        #[allow(
            clippy::disallowed_methods,
            reason = "the anchor of the test's virtual time"
        )]
        pub fn calling() -> Rig {
            let now = Instant::now();
            let local = NameAddr::new(SipUri::new(Some("bob"), Host::Domain("pbx.test".into())));
            let target = SipUri::new(Some("carol"), Host::Domain("pbx.test".into()));
            let contact = SipUri::new(Some("bob"), Host::V4([127, 0, 0, 1].into()));
            let config = CallConfig::new(local, target, contact);
            let call = Call::outgoing(
                config,
                b"v=0\r\n".to_vec(),
                now,
                Box::new(StdRng::seed_from_u64(1)),
            );
            let mut rig = Rig {
                now,
                layer: TransactionLayer::default(),
                call,
                rng: StdRng::seed_from_u64(2),
                requests: Vec::new(),
                events: Vec::new(),
                cancels: 0,
            };
            rig.drain();
            rig
        }

        /// Carries out the call's outputs: requests into client transactions.
        pub fn drain(&mut self) {
            while let Some(output) = self.call.poll_output() {
                match output {
                    CallOutput::SendRequest {
                        handle,
                        mut request,
                    } => {
                        let via = format!(
                            "SIP/2.0/TCP 127.0.0.1:40000;branch={}",
                            new_branch(&mut self.rng)
                        );
                        request.headers.push_front(HeaderName::Via, via);
                        let tx = self
                            .layer
                            .send_request(self.now, request.clone(), 1, true)
                            .expect("client transaction");
                        self.call.request_sent(handle, tx);
                        self.requests.push((tx, request));
                    }
                    CallOutput::Event(event) => self.events.push(event),
                    CallOutput::SendCancel { invite } => {
                        let cancel = self
                            .layer
                            .request(invite)
                            .and_then(|invite| cancel_request(invite).ok())
                            .expect("the INVITE's transaction is there to cancel");
                        self.layer
                            .send_request(self.now, cancel, 1, true)
                            .expect("CANCEL transaction");
                        self.cancels += 1;
                    }
                    CallOutput::SendResponse { .. } | CallOutput::SendAck(_) => {}
                }
            }
            while self.layer.poll_output().is_some() {}
        }

        /// Our last request of `method`.
        pub fn last(&self, method: Method) -> Request {
            self.requests
                .iter()
                .rev()
                .find(|(_, r)| r.method == method)
                .map(|(_, r)| r.clone())
                .expect("request sent")
        }

        /// carol's answer to our last `method`, with her tag and Contact.
        pub fn response(&self, method: Method, status: u16) -> Response {
            let request = self.last(method);
            let mut response = Response::to_request(&request, status);
            let to = request
                .headers
                .get(&HeaderName::To)
                .expect("To")
                .to_string();
            if !to.contains(";tag=") {
                response
                    .headers
                    .set(HeaderName::To, format!("{to};tag=carol1"));
            }
            response.headers.push(
                HeaderName::Contact,
                "<sip:carol@127.0.0.1:5060;transport=tcp>",
            );
            response
        }

        /// Delivers a response through the transaction layer, as the phone does; returns
        /// whether the layer handed it to the call as a response of one of its transactions.
        pub fn deliver(&mut self, response: Response) -> bool {
            self.layer
                .handle_message(self.now, Message::Response(response), 1, true)
                .expect("response handled");
            let mut delivered = false;
            while let Some(output) = self.layer.poll_output() {
                if let Output::Event(TransactionEvent::Response { id, response }) = output {
                    delivered = true;
                    self.call.handle_response(self.now, id, response);
                }
            }
            self.drain();
            delivered
        }

        /// Lets ten minutes pass, firing every timer on the way.
        pub fn wait(&mut self) {
            for _ in 0..600 {
                self.now += Duration::from_secs(1);
                self.layer.handle_timeout(self.now);
                self.call.handle_timeout(self.now);
                self.drain();
            }
        }
    }

    /// `response` with its CSeq number moved by `by` (the method kept).
    pub fn with_cseq_moved(mut response: Response, by: u32) -> Response {
        let cseq = response.headers.cseq().expect("CSeq");
        response.headers.set(
            HeaderName::CSeq,
            format!("{} {}", cseq.seq.wrapping_add(by), cseq.method),
        );
        response
    }
}

/// cseq-mismatch — found by the `phone` target within ~7,500 executions (minimized input, hex
/// ae3939393939043d04733dff393b393939391616, replayed in core/phone/tests/fuzz_smoke.rs: a
/// reply to an old request, the media of bob's answered call failing, a reply to the BYE).
///
/// The story: the transaction layer pairs a response with a client transaction by its top
/// Via branch and CSeq method (RFC 3261 §17.1.3), so a final response with the right branch
/// but another CSeq number ends the transaction. `Call::handle_response` then compared the
/// CSeq number with its request's, found them different and returned, keeping the request
/// as unanswered. Nothing else could come for it (no response, no timeout: the transaction
/// was over), so the call waited for ever. The fuzzer's run went: the app's call fails
/// (media), the phone sends BYE, the server's 200 is eaten by a framing accident, and a 486
/// with the BYE's branch and a CSeq 22000 higher arrives: the call was reported ended but
/// never released (it stayed in the phone's table, still matching in-dialog requests).
/// The same hole left an outgoing call whose INVITE got such a final response in Calling
/// for ever, and, once the user hung up, unable to CANCEL (no transaction left) and held.
///
/// Fixed in usage/invite.rs, `Call::handle_response`: a final response matched to one of the
/// call's transactions but carrying another CSeq fails that request with
/// `EndReason::Protocol` (a BYE is done, an INVITE ends the call, a re-INVITE hangs it up).
#[test]
fn cseq_mismatch_final_response_to_a_bye_with_another_cseq_ends_the_call() {
    use cseq_mismatch_rig::{Rig, with_cseq_moved};
    use handset_sip::message::{HeaderName, Method};

    let mut rig = Rig::calling();
    let mut ok = rig.response(Method::Invite, 200);
    ok.headers.push(HeaderName::ContentType, "application/sdp");
    ok.body = b"v=0\r\n".to_vec();
    assert!(rig.deliver(ok));
    rig.call.hangup(rig.now).expect("hang up");
    rig.drain();
    let refusal = with_cseq_moved(rig.response(Method::Bye, 486), 22_000);
    assert!(
        rig.deliver(refusal),
        "the layer takes the response as the BYE transaction's final answer"
    );
    rig.wait();
    assert!(
        rig.call.is_terminated(),
        "the BYE can get no other answer: the call must be over, not waiting for ever"
    );
}

/// cseq-mismatch, the outgoing call's face (see the test above for the story).
#[test]
fn cseq_mismatch_final_response_to_an_invite_with_another_cseq_ends_the_call() {
    use cseq_mismatch_rig::{Rig, with_cseq_moved};
    use handset_sip::message::Method;
    use handset_sip::usage::invite::{CallEvent, EndReason};

    let mut rig = Rig::calling();
    let busy = with_cseq_moved(rig.response(Method::Invite, 486), 1_000);
    assert!(rig.deliver(busy));
    rig.wait();
    assert!(
        rig.events.iter().any(|e| matches!(
            e,
            CallEvent::Ended {
                reason: EndReason::Protocol(_)
            }
        )),
        "the call must end, not stay calling for ever: {:?}",
        rig.events
    );
    assert!(rig.call.is_terminated());
}

/// cseq-mismatch, its provisional face — found by the `phone` target within ~116,000
/// executions once the final face was fixed (minimized input, hex
/// 0802060800fe4b83238312121212121212610303, replayed in core/phone/tests/fuzz_smoke.rs: a
/// silent server, alice dials, a 180 with the INVITE's branch and a CSeq 54000 higher, then
/// the call's media fails).
///
/// The story: the transaction layer takes such a provisional into our INVITE's transaction,
/// which moves to Proceeding, where Timer B no longer runs (RFC 3261 §17.1.1.2); the call
/// ignored it for its CSeq. Cancelled afterwards, the call held its CANCEL back until a
/// provisional arrived (§9.1), which from its side never happened: no CANCEL, no timeout,
/// the call over for the user but held by the phone for good.
///
/// Fixed in usage/invite/uac.rs, `on_untrusted_provisional`: such a provisional is trusted
/// for nothing but counts as the one a CANCEL waits for, so the CANCEL goes out and the
/// call's 64·T1 give-up ends the wait.
#[test]
fn cseq_mismatch_provisional_with_another_cseq_lets_a_cancelled_call_end() {
    use cseq_mismatch_rig::{Rig, with_cseq_moved};
    use handset_sip::message::Method;

    let mut rig = Rig::calling();
    let ringing = with_cseq_moved(rig.response(Method::Invite, 180), 54_000);
    assert!(
        rig.deliver(ringing),
        "the layer takes the 180 into the INVITE's transaction"
    );
    rig.call.cancel(rig.now).expect("cancel");
    rig.drain();
    assert_eq!(
        rig.cancels, 1,
        "the CANCEL must go out, not wait for another provisional"
    );
    rig.wait();
    assert!(
        rig.call.is_terminated(),
        "with the server silent, the call gives up 64·T1 after its CANCEL"
    );
}
