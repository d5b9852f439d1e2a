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
use handset_tests::netbed::{NatVariant, NetBed, Ns};

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
    let mut alice = answering(&bed, "alice", None);
    let mut carol = answering(&bed, "carol", Some("0"));
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

    let to_alice = call_from_pbx(&bed, "alice");
    assert!(
        to_alice.success,
        "{variant:?}: after {:?} idle, a call to alice did not connect:\n{}",
        idle_from.elapsed(),
        to_alice.log
    );
    alice.wait_for("incoming_call", Duration::from_secs(5));
    alice.wait_for("call_ended", Duration::from_secs(20));
    alice.wait_exit(Duration::from_secs(15));

    let to_carol = call_from_pbx(&bed, "carol");
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

/// `handset answer` for `user` over UDP, hanging up 30 s after answering at the latest (the
/// caller hangs up first), with `--udp-keepalive` when given.
fn answering(bed: &NetBed, user: &str, udp_keepalive: Option<&str>) -> Cli {
    let server = format!("sip:{}", bed.sip);
    let password = format!("{user}-secret");
    let mut args = vec![
        "answer",
        "--server",
        &server,
        "--user",
        user,
        "--password",
        &password,
        "--transport",
        "udp",
        "--wait",
        "300",
        "--duration",
        "30",
    ];
    if let Some(seconds) = udp_keepalive {
        args.extend(["--udp-keepalive", seconds]);
    }
    Cli::start(bed, user, &args)
}

/// How a call from SIPp went.
struct CallResult {
    /// SIPp completed the call: INVITE answered 200, ACK, BYE answered 200.
    success: bool,
    /// SIPp's output.
    log: String,
}

/// SIPp in the PBX namespace calls `user` through Kamailio (which routes by its location
/// table to the user's binding behind the NAT): INVITE, 200, ACK, one second, BYE
/// (`tests/netbed/uac_call.xml`).
fn call_from_pbx(bed: &NetBed, user: &str) -> CallResult {
    let pbx = bed.pbx.to_string();
    let scenario = handset_tests::root().join("tests/netbed/uac_call.xml");
    let output = bed.exec_in(
        Ns::Pbx,
        &[
            "sipp",
            "-sf",
            &scenario.to_string_lossy(),
            "-s",
            user,
            "-i",
            &pbx,
            "-p",
            "5090",
            "-mp",
            "16000",
            "-m",
            "1",
            "-timeout",
            "30s",
            "-timeout_error",
            "-recv_timeout",
            "20000",
            "-nostdin",
            &bed.sip.to_string(),
        ],
    );
    CallResult {
        success: output.status.success(),
        log: String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr),
    }
}
