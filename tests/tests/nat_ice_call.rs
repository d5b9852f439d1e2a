//! Calls with ICE through the network test bed's NATs (issue 10, point 4). Needs root
//! (namespaces).
//!
//! "bob" is a `handset answer` CLI on the PBX's public side, playing a 1000 Hz tone; "alice"
//! is a `handset call` CLI in the phone namespace behind the wifi NAT, playing 440 Hz; both
//! record what they hear, and both use ICE. Each recording must hold the other's tone for
//! nearly the whole call.
//!
//! * Behind the port-restricted cone NAT, alice gathers a server-reflexive candidate from the
//!   bed's STUN server (coturn) and ICE finds the path through the NAT (her CLI's
//!   `media_path` event says: not relayed).
//! * The same with bob not using ICE: his answer has none, so alice's media goes to the address
//!   in his SDP and he latches to where hers comes from (RFC 4961).
//! * Interop with baresip's ICE, relay-only behind the symmetric NAT.
//! * Behind the symmetric NAT, alice uses only the TURN relay (`--ice-policy relay`): her
//!   description names the relay and nothing else, so every packet bob gets from her, and every
//!   packet she gets from him, crosses coturn: her `media_path` event says relayed, and
//!   coturn's own log must show the allocation for the bed's TURN user carrying packets both
//!   ways. Once over UDP to the TURN server, once over
//!   TLS (verified against the bed's TURN certificate).

use std::time::{Duration, Instant};

use handset::audio::{read_wav_48k_mono, tone_seconds};
use handset_tests::netbed::cli::{Cli, ToneCall};
use handset_tests::netbed::{NatVariant, NetBed, Ns};

/// The caller hangs up this long after the answer.
const CALL: u64 = 8;

#[test]
fn cone_nat_call_with_a_server_reflexive_candidate_carries_audio_both_ways() {
    let bed = NetBed::up(NatVariant::Cone);
    let stun = bed.stun.to_string();
    talk(&bed, &["--stun", &stun], &["--stun", &stun], Some(false));
    bed.down();
}

#[test]
fn cone_nat_ice_call_to_a_peer_without_ice_carries_audio_both_ways() {
    let bed = NetBed::up(NatVariant::Cone);
    let stun = bed.stun.to_string();
    talk(&bed, &["--stun", &stun], &[], None);
    bed.down();
}

#[test]
fn symmetric_nat_call_through_the_turn_relay_carries_audio_both_ways() {
    let bed = NetBed::up(NatVariant::Symmetric);
    let relay = bed.relay_only_args(&format!("turn:{}", bed.stun));
    let stun = bed.stun.to_string();
    talk(&bed, &as_strs(&relay), &["--stun", &stun], Some(true));
    relayed_both_ways(&bed);
    bed.down();
}

#[test]
fn symmetric_nat_call_through_the_turn_relay_over_tls_carries_audio_both_ways() {
    let bed = NetBed::up(NatVariant::Symmetric);
    let turn = format!(
        "turn:{}:{};transport=tls",
        bed.turn_tls.ip(),
        bed.turn_tls.port()
    );
    let mut alice = bed.relay_only_args(&turn);
    alice.extend(["--ca-file".into(), bed.turn_cert.to_string_lossy().into()]);
    let stun = bed.stun.to_string();
    talk(&bed, &as_strs(&alice), &["--stun", &stun], Some(true));
    relayed_both_ways(&bed);
    bed.down();
}

/// Alice (phone namespace, `alice_ice` options) calls bob (PBX side, `bob_ice` options); both
/// must hear the other's tone for nearly the whole call, and ICE must have chosen a path for
/// alice's media: through the relay when `relayed` is true, straight through the NAT when
/// false; with `None` (bob without ICE) no path is chosen and media follows the SDP.
fn talk(bed: &NetBed, alice_ice: &[&str], bob_ice: &[&str], relayed: Option<bool>) {
    let server = format!("sip:{}", bed.sip);
    talk_via(bed, &server, alice_ice, bob_ice, relayed);
}

/// [`talk`] with alice registered at `alice_server`.
fn talk_via(
    bed: &NetBed,
    alice_server: &str,
    alice_ice: &[&str],
    bob_ice: &[&str],
    relayed: Option<bool>,
) {
    let variant = bed.variant;
    let mut call = ToneCall::start(bed, alice_server, alice_ice, bob_ice, CALL);
    call.finish();
    expect_paths(variant, &mut call.alice, relayed);
    heard_the_call(variant, "alice", &call.alice_heard, 1000.0);
    heard_the_call(variant, "bob", &call.bob_heard, 440.0);
}

/// Alice's `media_path` events: all relayed (`Some(true)`), all direct (`Some(false)`), or
/// none (`None`: no ICE).
fn expect_paths(variant: NatVariant, alice: &mut Cli, relayed: Option<bool>) {
    let paths = alice.events_named("media_path");
    match relayed {
        Some(relayed) => assert!(
            !paths.is_empty() && paths.iter().all(|p| p["relayed"] == relayed),
            "{variant:?}: alice's media paths {paths:?}, expected relayed = {relayed}"
        ),
        None => assert!(paths.is_empty(), "{variant:?}: no ICE, yet {paths:?}"),
    }
}

/// The recording `file` of `who` holds the other's tone `freq` for 90 % of the call, from 1 s
/// in (ICE checks, the first packets) to 1 s before the end.
fn heard_the_call(variant: NatVariant, who: &str, file: &std::path::Path, freq: f64) {
    let samples = read_wav_48k_mono(file)
        .unwrap_or_else(|e| panic!("{who}'s recording {}: {e}", file.display()));
    let (from, to) = (48_000, samples.len().saturating_sub(48_000));
    let span = to.saturating_sub(from) as f64 / 48_000.0;
    let heard = samples
        .get(from..to)
        .and_then(|s| tone_seconds(s, 48_000, freq, 10.0).ok())
        .unwrap_or(0.0);
    eprintln!("{variant:?}: {who} heard {heard:.1} s of the other's tone in {span:.1} s");
    assert!(
        span >= (CALL - 3) as f64 && heard >= 0.9 * span,
        "{variant:?}: {who} heard {heard:.1} s of the other's tone in {span:.1} s"
    );
}

/// Interop with another ICE implementation: alice relay-only behind the symmetric NAT calls the
/// bed's baresip peer running baresip's own ICE (its `ice` module, `medianat=ice`, rtcp-mux,
/// the bed's STUN server). The only pair is alice's relayed candidate with baresip's host,
/// through coturn; both ICE agents must agree on it (alice's `media_path`), both must hear the
/// other, and coturn's log must show the relaying. (A direct path through the cone NAT does not
/// work with baresip 1.0: its checks reach the NAT before alice's, so the NAT gives alice's
/// socket another public port toward baresip, and baresip's ICE, the controlled side, answers
/// checks from that peer-reflexive address with "candidate pair not found" instead of learning
/// it as RFC 8445 §7.3.1.3 asks.)
#[test]
fn symmetric_nat_relayed_call_to_baresip_with_ice_carries_audio_both_ways() {
    let bed = NetBed::up(NatVariant::Symmetric);
    let relay = bed.relay_only_args(&format!("turn:{}", bed.stun));
    let stun = bed.stun.to_string();
    baresip_call(&bed, &as_strs(&relay), &stun, true);
    relayed_both_ways(&bed);
    bed.down();
}

/// Restarts the bed's baresip peer (1000 Hz, auto-answer, ICE with the STUN server
/// `peer_stun`), calls it from alice in the phone namespace (440 Hz, `alice_extra` arguments)
/// for [`CALL`] seconds, and checks what each heard and alice's `media_path` events (see
/// [`talk_via`]).
fn baresip_call(bed: &NetBed, alice_extra: &[&str], peer_stun: &str, relayed: bool) {
    let variant = bed.variant;
    let script = handset_tests::root().join("tests/peers/baresip.sh");
    let script = script.to_string_lossy().to_string();
    let (pbx, proxy) = (bed.pbx.to_string(), bed.sip.to_string());
    let args = [
        "start",
        "peer",
        "baresip",
        "--ip",
        pbx.as_str(),
        "--proxy",
        proxy.as_str(),
        "--auto-answer",
        "--tone",
        "1000",
        "--ice",
        peer_stun,
    ];
    let started = bed
        .command_in(Ns::Pbx, "bash")
        .arg(&script)
        .args(args)
        .env("HANDSET_PEERS_ROOT", bed.run_dir.join("peers"))
        .output()
        .expect("baresip.sh runs");
    assert!(
        started.status.success(),
        "baresip did not start: {}",
        String::from_utf8_lossy(&started.stderr)
    );
    let dir = &bed.run_dir;
    let tone = dir.join("tone-440.wav");
    handset::audio::write_tone_wav(&tone, 440.0, 30.0, 48_000).expect("a tone file");
    let heard = dir.join("alice-heard-baresip.wav");
    let text = |p: &std::path::Path| p.to_string_lossy().to_string();
    let (play, record, duration) = (text(&tone), text(&heard), CALL.to_string());
    let server = format!("sip:{}", bed.sip);
    let base = [
        "--play",
        &play,
        "--record",
        &record,
        "--duration",
        &duration,
    ];
    let args: Vec<&str> = [&base, alice_extra].concat();
    let mut alice = Cli::start(
        bed,
        Ns::Phone,
        &["call", "baresip"],
        &server,
        "alice",
        "udp",
        &args,
    );
    alice.wait_for("answered", Duration::from_secs(20));
    alice.wait_for("call_ended", Duration::from_secs(CALL + 10));
    alice.wait_exit(Duration::from_secs(15));
    expect_paths(variant, &mut alice, Some(relayed));
    // baresip closes its recording when the call ends; ask for the newest one.
    let rec = bed
        .command_in(Ns::Pbx, "bash")
        .arg(&script)
        .args(["rec", "peer", "dec"])
        .env("HANDSET_PEERS_ROOT", bed.run_dir.join("peers"))
        .output()
        .expect("baresip.sh runs");
    let baresip_heard = std::path::PathBuf::from(String::from_utf8_lossy(&rec.stdout).trim());
    std::thread::sleep(Duration::from_secs(1));
    heard_the_call(variant, "alice", &heard, 1000.0);
    heard_the_call(variant, "baresip", &baresip_heard, 440.0);
}

/// An IPv6-only phone calls an IPv4-only peer through NAT64 (issue 10, point 6): alice
/// registers by the PBX's name through DNS64 and reaches the bed's coturn the same way; her
/// only candidate is the relayed IPv4 address, so her description says `c=IN IP4` with the
/// relay, bob (IPv4 only) sends there, and she sends through the relay.
#[test]
fn an_ipv6_only_phone_calls_an_ipv4_peer_through_nat64_and_the_turn_relay() {
    let bed = NetBed::up(NatVariant::Nat64);
    let nat64 = bed.nat64().clone();
    let server = format!("sip:{}", nat64.pbx_name);
    let dns = nat64.dns_server.to_string();
    let mut alice = vec!["--dns-server".to_owned(), dns];
    alice.extend(bed.relay_only_args(&format!("turn:{}:{}", nat64.pbx_name, bed.stun.port())));
    let stun = bed.stun.to_string();
    talk_via(
        &bed,
        &server,
        &as_strs(&alice),
        &["--stun", &stun],
        Some(true),
    );
    relayed_both_ways(&bed);
    bed.down();
}

/// Borrows arguments built as strings, for the CLI helpers.
fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// coturn's log has the relay session of the bed's TURN user with packets received from the
/// peer and sent to it (its `usage` lines: rp received, sp sent; written about a second after
/// the allocation ends, so this waits up to 5 s for them).
fn relayed_both_ways(bed: &NetBed) {
    let user = &bed.turn_credentials.0;
    let user_field = format!("username=<{user}>");
    let count = |line: &str, key: &str| -> u64 {
        line.split([' ', ','])
            .find_map(|field| field.strip_prefix(key))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let (log, received, sent) = loop {
        let log = std::fs::read_to_string(bed.run_dir.join("turnserver.log")).unwrap_or_default();
        let (received, sent) = log
            .lines()
            .filter(|l| l.contains("peer usage:") && l.contains(&user_field))
            .fold((0, 0), |(r, s), l| {
                (r + count(l, "rp="), s + count(l, "sp="))
            });
        if received > 0 || Instant::now() >= deadline {
            break (log, received, sent);
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    eprintln!(
        "{:?}: coturn relayed {received} packets from the peer, {sent} to it",
        bed.variant
    );
    assert!(
        received >= 100 && sent >= 100,
        "coturn's log shows {received} packets from the peer and {sent} to it for {user}:\n{}",
        log.lines()
            .filter(|l| l.contains("usage") || l.contains("ALLOCATE"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
