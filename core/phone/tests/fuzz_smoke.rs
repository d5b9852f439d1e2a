//! A short run of the `phone` fuzz target on stable, so `cargo test` exercises it without
//! nightly or cargo-fuzz: the target's harness (`fuzz/src/phone.rs`, included below by path,
//! the very code libFuzzer runs) replays the committed seeds and a couple of thousand
//! deterministic pseudo-random inputs, with every property checked after every step.
//!
//! `HANDSET_FUZZ_SMOKE_INPUTS=N` runs N pseudo-random inputs instead of 2,000 (about 6 ms of
//! CPU each in a debug build, most of it the set-up; the four parts run in parallel).
//! `HANDSET_WRITE_PHONE_SEEDS=1` rewrites `fuzz/seeds/phone/` from the harness's seeds.
//!
//! A failing input is printed in hex: write it to a file and replay it with
//! `fuzz/run.sh phone 1 FILE`, or here through `phone_harness::check_phone`.

#[path = "../../../fuzz/src/phone.rs"]
mod phone_harness;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use phone_harness::{
    AppCommand, Op, PhoneHarness, Reached, ServerMode, check_bounds, check_phone, check_transmit,
    decode_ops, encode_ops, pseudo_random_input, seeds,
};

/// Pseudo-random inputs per run (split over the four `pseudo_random_inputs_*` tests, which
/// the test harness runs in parallel).
fn total_inputs() -> u64 {
    std::env::var("HANDSET_FUZZ_SMOKE_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000)
}

/// Runs one input; a broken property fails the test with the input to replay.
fn run_checked(what: &str, input: &[u8]) -> Reached {
    match catch_unwind(AssertUnwindSafe(|| PhoneHarness::run_input(input))) {
        Ok(harness) => harness.reached,
        Err(_) => {
            let hex: String = input.iter().map(|b| format!("{b:02x}")).collect();
            panic!("{what} broke a property (see the panic above); the input in hex: {hex}");
        }
    }
}

/// Runs the quarter `part` (0..4) of the pseudo-random inputs and checks that they drove the
/// phone through its main paths, not only into refusals: a harness that stopped reaching
/// anything would pass every property while testing nothing.
fn pseudo_random_part(part: u64) {
    let total = total_inputs();
    let mut reached = Reached::default();
    for seed in (part * total / 4)..((part + 1) * total / 4) {
        let input = pseudo_random_input(seed);
        reached.add(&run_checked(&format!("pseudo-random input {seed}"), &input));
    }
    if total < 400 {
        return;
    }
    let counts = [
        ("registrations", reached.registered),
        ("incoming calls", reached.incoming_calls),
        ("answered calls", reached.answered),
        ("remote hang-ups", reached.remote_hangups),
        ("other call ends", reached.other_ends),
        ("hold changes", reached.holds),
        ("DTMF digits", reached.dtmf),
        ("received messages", reached.messages),
        ("voicemail notifications", reached.voicemail),
        ("push reports", reached.push_reports),
    ];
    for (what, count) in counts {
        assert!(
            count > 0,
            "no {what} in part {part} of the pseudo-random inputs: {reached:?}"
        );
    }
}

#[test]
fn pseudo_random_inputs_keep_every_property_part_1() {
    pseudo_random_part(0);
}

#[test]
fn pseudo_random_inputs_keep_every_property_part_2() {
    pseudo_random_part(1);
}

#[test]
fn pseudo_random_inputs_keep_every_property_part_3() {
    pseudo_random_part(2);
}

#[test]
fn pseudo_random_inputs_keep_every_property_part_4() {
    pseudo_random_part(3);
}

#[test]
fn the_set_up_registers_both_accounts_and_holds_three_calls() {
    // `PhoneHarness::new` asserts each step itself; these are the counts it leaves behind.
    let harness = PhoneHarness::new();
    assert_eq!(harness.reached.registered, 2);
    assert_eq!(harness.reached.voicemail, 1);
    assert_eq!(harness.reached.incoming_calls, 2);
    assert_eq!(harness.reached.answered, 2);
    assert_eq!(harness.reached.other_ends, 0);
}

fn seed_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds/phone")
}

#[test]
fn the_seeds_replay_and_are_committed() {
    let dir = seed_dir();
    if std::env::var_os("HANDSET_WRITE_PHONE_SEEDS").is_some() {
        std::fs::create_dir_all(&dir).expect("seed directory");
        for (name, bytes) in seeds() {
            std::fs::write(dir.join(format!("{name}.bin")), bytes).expect("seed written");
        }
    }
    for (name, bytes) in seeds() {
        run_checked(&format!("seed {name}"), &bytes);
        assert!(
            dir.join(format!("{name}.bin")).is_file(),
            "seed {name} is not in {}: run this test with HANDSET_WRITE_PHONE_SEEDS=1",
            dir.display()
        );
    }
    // The committed files as they are (libFuzzer starts from them), and whatever the fuzzer
    // added there since.
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("seed directory") {
        let path = entry.expect("directory entry").path();
        let bytes = std::fs::read(&path).expect("seed readable");
        check_phone(&bytes);
        replayed += 1;
    }
    assert!(replayed >= seeds().len());
}

#[test]
fn operations_read_back_as_they_were_written() {
    // Seeds are written with `encode_ops`; the fuzzer's inputs are read with `decode_ops`.
    // Any byte sequence reads as operations, and writing those reads back the same.
    for seed in 0..300 {
        let ops = decode_ops(&pseudo_random_input(seed));
        assert_eq!(decode_ops(&encode_ops(&ops)), ops, "input {seed}");
    }
    for (name, bytes) in seeds() {
        assert_eq!(encode_ops(&decode_ops(&bytes)), bytes, "seed {name}");
    }
}

// The properties are live: each check fails on what it exists to catch.

#[test]
#[should_panic(expected = "property `transmit parses`")]
fn a_transmit_that_is_not_sip_breaks_a_property() {
    let flow = handset_sip::transport::Flow::new(
        handset_sip::transport::Transport::Udp,
        "127.0.0.1:5060".parse().expect("address"),
    );
    assert!(
        check_transmit(flow, b"\r\n\r\n").is_none(),
        "a keep-alive is fine"
    );
    check_transmit(flow, b"INVITE nothing\r\n\r\n");
}

#[test]
#[should_panic(expected = "property `calls bounded`")]
fn calls_that_are_never_released_break_a_property() {
    check_bounds(phone_harness::CALL_BASE, 0, 0);
    check_bounds(phone_harness::CALL_BASE + 1, 0, 0);
}

#[test]
#[should_panic(expected = "property `transactions bounded`")]
fn transactions_that_outlive_their_messages_break_a_property() {
    let base = phone_harness::TRANSACTION_BASE;
    check_bounds(1, base + phone_harness::TRANSACTIONS_PER_CALL + 10, 10);
    check_bounds(1, base + phone_harness::TRANSACTIONS_PER_CALL + 11, 10);
}

/// alice's answered call hung up while the server is silent: the BYE waits for an answer
/// that never comes, so the call is over but still held.
fn hung_up_under_a_silent_server() -> PhoneHarness {
    let mut harness = PhoneHarness::new();
    harness.apply(Op::Server(ServerMode::Silent));
    harness.apply(Op::App(AppCommand::Hangup(0)));
    harness
}

#[test]
#[should_panic(expected = "property `ended calls released`")]
fn an_ended_call_still_held_breaks_a_property() {
    hung_up_under_a_silent_server().check_ended_calls_released();
}

#[test]
fn an_ended_call_is_released_once_its_bye_gives_up() {
    let mut harness = hung_up_under_a_silent_server();
    harness.advance(std::time::Duration::from_secs(600));
    harness.check_ended_calls_released();
}

/// cseq-mismatch — the `phone` target's find, replayed as libFuzzer minimized it (20 bytes):
/// a mutated 486 to bob's REGISTER whose Content-Length (4) runs past its end, the media of
/// bob's answered call failing (the phone sends BYE), and a 486 carrying the BYE's branch
/// with a CSeq 22000 higher. The server's 200 to the BYE loses its first bytes to the
/// REGISTER response's body, so the 486 is the BYE transaction's only final answer; the
/// call machine ignored it for its CSeq and waited for ever, and the phone held the ended
/// call for good. The story and the fix (handset-sip, `Call::handle_response`) are told in
/// core/sip/tests/fuzz_regressions.rs.
#[test]
fn cseq_mismatch_an_ended_call_whose_bye_got_a_strange_answer_is_released() {
    let minimized = [
        0xae, 0x39, 0x39, 0x39, 0x39, 0x39, 0x04, 0x3d, 0x04, 0x73, 0x3d, 0xff, 0x39, 0x3b, 0x39,
        0x39, 0x39, 0x39, 0x16, 0x16,
    ];
    let ops = decode_ops(&minimized);
    assert_eq!(ops.len(), 3, "{ops:?}");
    run_checked("the minimized cseq-mismatch input", &minimized);
}

/// cseq-mismatch, its provisional face — the `phone` target's second find, as libFuzzer
/// minimized it (20 bytes): the server goes silent, alice dials, a 180 arrives with the
/// INVITE's branch and a CSeq 54000 higher (the INVITE's transaction takes it and stops
/// Timer B; the call ignored it), then the call's media fails and the phone ends it. The
/// call held its CANCEL back for a provisional it never saw and was never released. Story
/// and fix (handset-sip, `on_untrusted_provisional`) in core/sip/tests/fuzz_regressions.rs.
#[test]
fn cseq_mismatch_a_cancelled_call_after_a_strange_provisional_is_released() {
    let minimized = [
        0x08, 0x02, 0x06, 0x08, 0x00, 0xfe, 0x4b, 0x83, 0x23, 0x83, 0x12, 0x12, 0x12, 0x12, 0x12,
        0x12, 0x12, 0x61, 0x03, 0x03,
    ];
    let ops = decode_ops(&minimized);
    assert_eq!(ops.len(), 4, "{ops:?}");
    run_checked("the minimized provisional cseq-mismatch input", &minimized);
}
