//! The `stun` target: STUN and TURN bytes from the network as the phone meets them (a STUN or
//! TURN server's answers, a TURN stream, ChannelData). Checks: nothing panics, a message that
//! decodes re-encodes to the same message, the TURN client survives any answer to its Allocate
//! and its later timers, and the stream framer only yields frames cut from its input.
//!
//! Built by cargo-fuzz (`fuzz/run.sh stun`) and, on stable, by `core/stun/tests/fuzz_smoke.rs`,
//! which includes this file by path.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use handset_stun::binding::parse_binding_answer;
use handset_stun::channel_data::ChannelData;
use handset_stun::message::Message;
use handset_stun::turn::{StreamFramer, TurnClient, TurnServer, TurnTransport};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// One instant for every run: `Instant` has no constructor besides `now()`; from it on, the
/// check only adds durations (virtual time).
#[allow(clippy::disallowed_methods)]
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// The properties above for one input. The first byte picks the TURN transport and whether the
/// answer gets the Allocate's transaction id (so it reaches the transaction logic).
pub fn check_stun(data: &[u8]) {
    if let Ok(message) = Message::decode(data)
        && let Ok(bytes) = message.encode(None)
    {
        let again = Message::decode(&bytes).expect("an encoded message decodes");
        assert_eq!(again, message, "decode, encode, decode changes the message");
    }
    let _ = parse_binding_answer(data);
    let _ = ChannelData::decode(data);

    let Some((&control, answer)) = data.split_first() else {
        return;
    };
    let transport = match control % 3 {
        0 => TurnTransport::Udp,
        1 => TurnTransport::Tcp,
        _ => TurnTransport::Tls,
    };
    let server = TurnServer {
        address: SocketAddr::from(([198, 51, 100, 1], 3478)),
        transport,
        username: "user".into(),
        password: "pass".into(),
    };
    let now = start();
    let mut client = TurnClient::new(server, now, &mut StdRng::seed_from_u64(u64::from(control)));
    let request = client.poll_transmit().expect("the Allocate request");
    let mut answer = answer.to_vec();
    if control & 0x80 != 0
        && let (Some(id), Some(slot)) = (request.get(8..20), answer.get_mut(8..20))
    {
        slot.copy_from_slice(id);
    }
    for step in 0..3u32 {
        let at = now + Duration::from_secs(u64::from(step) * 300);
        let _ = client.handle_message(at, &answer);
        client.handle_timeout(at);
        let peer = SocketAddr::from(([203, 0, 113, 7], 5000));
        client.permit(at, peer.ip());
        let _ = client.send(peer, answer.get(..answer.len().min(64)).unwrap_or_default());
        for _ in 0..64 {
            if client.poll_transmit().is_none() {
                break;
            }
        }
        while client.poll_event().is_some() {}
        if let Some(due) = client.poll_timeout() {
            assert!(due >= at, "a timer in the past");
        }
    }

    let mut framer = StreamFramer::new();
    let mut frames = 0usize;
    for chunk in answer.chunks(usize::from(control % 7) + 1) {
        if framer.push(chunk).is_err() {
            break;
        }
        while let Some(frame) = framer.next_frame() {
            assert!(
                frame.len() <= answer.len(),
                "a frame longer than the stream"
            );
            frames += 1;
        }
    }
    assert!(
        frames <= answer.len() / 4 + 1,
        "more frames than the stream can hold"
    );
}
