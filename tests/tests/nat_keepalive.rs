//! A UDP registration behind a NAT that forgets idle mappings after 30 s stays reachable
//! (issue 10, point 3), once per NAT variant of the network test bed (`tests/netbed`). Needs
//! root (namespaces).
//!
//! Two `handset answer` CLIs register over UDP from the phone namespace to the bed's Kamailio,
//! which applies SIP outbound (RFC 5626) and answers STUN on its SIP port: "alice" with the
//! default keep-alive, "carol" with `--udp-keepalive 0` as the control. Both idle for two
//! minutes, four NAT timeouts, without a REGISTER. Then SIPp in the PBX namespace calls each
//! through Kamailio: alice's phone rings and answers, because her STUN keep-alives held the
//! NAT mapping open; carol's call cannot reach her, because the NAT forgot her mapping. The
//! control proves that the NAT does expire and that nothing else kept alice reachable.

use std::thread::sleep;
use std::time::{Duration, Instant};

use handset_tests::netbed::cli::Cli;
use handset_tests::netbed::{NatVariant, NetBed};

/// How long both phones idle once registered: four times the NAT's UDP timeout.
const IDLE: Duration = Duration::from_secs(120);

#[test]
fn cone_nat_udp_registration_still_receives_calls_after_two_idle_minutes() {
    keeps_reachable(NatVariant::Cone);
}

#[test]
fn symmetric_nat_udp_registration_still_receives_calls_after_two_idle_minutes() {
    keeps_reachable(NatVariant::Symmetric);
}

fn keeps_reachable(variant: NatVariant) {
    let bed = NetBed::up(variant);
    let mut alice = Cli::answer(&bed, "alice", "udp", &[]);
    let mut carol = Cli::answer(&bed, "carol", "udp", &["--udp-keepalive", "0"]);
    alice.wait_for("registered", Duration::from_secs(20));
    carol.wait_for("registered", Duration::from_secs(20));
    let registered = [bed.registers("alice"), bed.registers("carol")];
    let idle_from = Instant::now();

    sleep(IDLE);
    assert_eq!(
        [bed.registers("alice"), bed.registers("carol")],
        registered,
        "{variant:?}: a REGISTER while idle would refresh the NAT by itself:\n{}{}",
        bed.register_lines("alice"),
        bed.register_lines("carol")
    );
    assert!(
        bed.location("carol").len() == 1 && bed.location("alice").len() == 1,
        "both still bound at Kamailio"
    );

    let to_alice = bed.call_from_pbx("alice");
    assert!(
        to_alice.success,
        "{variant:?}: after {:?} idle, a call to alice did not connect:\n{}",
        idle_from.elapsed(),
        to_alice.log
    );
    alice.wait_for("incoming_call", Duration::from_secs(5));
    alice.wait_for("call_ended", Duration::from_secs(20));
    alice.wait_exit(Duration::from_secs(15));

    let to_carol = bed.call_from_pbx("carol");
    assert!(
        !to_carol.success,
        "{variant:?}: the control without keep-alives was still reachable, so the NAT did not \
         expire the mapping and this test proves nothing:\n{}",
        to_carol.log
    );
    assert!(
        !carol.events().iter().any(|e| e == "incoming_call"),
        "{variant:?}: carol rang: {:?}",
        carol.events()
    );
    eprintln!("{variant:?}: alice reachable after {IDLE:?} idle; carol (no keep-alive) not");
    bed.down();
}
