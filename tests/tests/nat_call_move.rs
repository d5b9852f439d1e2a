//! A call moves with the phone from Wi-Fi to cellular (issue 10, point 5), once per NAT variant
//! of the network test bed (`tests/netbed`). Needs root (namespaces).
//!
//! "bob" is a `handset answer` CLI on the PBX's public side, playing a 1000 Hz tone; "alice" is
//! a `handset call` CLI in the phone namespace behind the wifi NAT, playing 440 Hz; both record
//! what they hear. Four seconds into the call the bed moves the phone's default route to the
//! cellular uplink and takes the wifi link down, as walking out of a Wi-Fi does: the socket
//! alice's media used can no longer send. Nobody tells her CLI. Its route watcher notices, the
//! account registers again through the cellular NAT, and the call moves: a new RTP socket on
//! the cellular address and a re-INVITE. Bob answers where her media now comes from (his
//! latching, reset by the re-INVITE's new address). Both recordings must hold the other's tone
//! again from 2 s after the move to the end of the call.

use std::time::{Duration, Instant};

use handset::audio::{read_wav_48k_mono, tone_seconds};
use handset_tests::netbed::cli::ToneCall;
use handset_tests::netbed::{NatVariant, NetBed, Uplink};

/// Talk before the move.
const BEFORE: Duration = Duration::from_secs(4);
/// The caller hangs up this long after the answer.
const CALL: u64 = 14;
/// Audio must be back this long after the move.
const RESUMES_WITHIN: f64 = 2.0;

#[test]
fn cone_nat_call_moves_from_wifi_to_cellular_with_audio_both_ways() {
    moves(NatVariant::Cone, Ice::None);
}

#[test]
fn symmetric_nat_call_moves_from_wifi_to_cellular_with_audio_both_ways() {
    moves(NatVariant::Symmetric, Ice::None);
}

/// With ICE the move is an ICE restart: alice gathers again on the cellular network, her
/// re-INVITE carries new credentials and candidates, bob restarts too, and ICE finds the new
/// path.
#[test]
fn cone_nat_ice_call_restarts_ice_from_wifi_to_cellular_with_audio_both_ways() {
    moves(NatVariant::Cone, Ice::Stun);
}

/// Relay-only behind the symmetric NAT: the restart allocates a new relay from the cellular
/// network.
#[test]
fn symmetric_nat_relayed_call_restarts_ice_from_wifi_to_cellular_with_audio_both_ways() {
    moves(NatVariant::Symmetric, Ice::Relay);
}

/// A DTLS-SRTP call (ICE with host candidates, str0m's agent) restarts ICE: the new socket is
/// alice's one candidate, and the DTLS association goes on over the new path.
#[test]
fn cone_nat_dtls_call_restarts_ice_from_wifi_to_cellular_with_audio_both_ways() {
    moves(NatVariant::Cone, Ice::Dtls);
}

/// How the two ends use ICE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ice {
    /// Neither does.
    None,
    /// Both, for DTLS-SRTP (host candidates only).
    Dtls,
    /// Both, with the bed's STUN server.
    Stun,
    /// Alice only through the bed's TURN relay; bob with the STUN server.
    Relay,
}

fn moves(variant: NatVariant, ice: Ice) {
    let bed = NetBed::up(variant);
    let stun = bed.stun.to_string();
    let relay = bed.relay_only_args(&format!("turn:{}", bed.stun));
    let (alice_ice, bob_ice): (Vec<&str>, Vec<&str>) = match ice {
        Ice::None => (vec![], vec![]),
        Ice::Dtls => (vec!["--srtp", "dtls"], vec!["--srtp", "dtls"]),
        Ice::Stun => (vec!["--stun", &stun], vec!["--stun", &stun]),
        Ice::Relay => (
            relay.iter().map(String::as_str).collect(),
            vec!["--stun", &stun],
        ),
    };
    let server = format!("sip:{}", bed.sip);
    let mut call = ToneCall::start(&bed, &server, &alice_ice, &bob_ice, CALL);
    let answered = Instant::now();
    std::thread::sleep(BEFORE);
    bed.switch(Uplink::Cellular);
    bed.cut(Uplink::Wifi);
    let moved = answered.elapsed().as_secs_f64();

    call.finish();
    if matches!(ice, Ice::Stun | Ice::Relay) {
        // ICE chose a path before the move and again after it.
        let paths = call.alice.events_named("media_path");
        let relayed = ice == Ice::Relay;
        assert!(
            paths.len() >= 2 && paths.iter().all(|p| p["relayed"] == relayed),
            "{variant:?} {ice:?}: alice's media paths {paths:?}"
        );
    }

    // Both recordings start when the media starts, within a moment of alice's "answered".
    for (who, file, freq) in [
        ("alice", &call.alice_heard, 1000.0),
        ("bob", &call.bob_heard, 440.0),
    ] {
        let samples = read_wav_48k_mono(file).expect("a recording");
        let total = samples.len() as f64 / 48_000.0;
        let window = |from: f64, to: f64| -> f64 {
            let cut = |t: f64| ((t.max(0.0) * 48_000.0) as usize).min(samples.len());
            tone_seconds(&samples[cut(from)..cut(to)], 48_000, freq, 10.0).unwrap_or(0.0)
        };
        let (before_from, before_to) = (1.0, moved - 0.5);
        let (after_from, after_to) = (moved + RESUMES_WITHIN, total - 1.0);
        let (before, after) = (window(before_from, before_to), window(after_from, after_to));
        eprintln!(
            "{variant:?} {ice:?}: {who} heard {before:.1} s of the {:.1} s before the move at \
             {moved:.1} s, and {after:.1} s of the {:.1} s from {after_from:.1} s to the end",
            before_to - before_from,
            after_to - after_from
        );
        assert!(
            before >= 0.9 * (before_to - before_from),
            "{variant:?} {ice:?}: {who} heard {before:.1} s of the other's tone before the move"
        );
        assert!(
            after_to - after_from >= 5.0 && after >= 0.9 * (after_to - after_from),
            "{variant:?} {ice:?}: {who} heard {after:.1} s of the other's tone from {after_from:.1} s \
             to {after_to:.1} s (the move was at {moved:.1} s)"
        );
    }
    bed.down();
}
