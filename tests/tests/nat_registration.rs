//! Registration behind a real NAT (issue 10, point 2), once per NAT variant of the network test
//! bed (`tests/netbed`). Needs root (namespaces).
//!
//! The story: behind a real NAT over UDP, registration never completed. Each 200 OK carried
//! `received=` with the NAT's public address, the client re-REGISTERed to adopt it, but the
//! Contact it sent was still the private one, so it re-REGISTERed again at once: ~1,900
//! REGISTERs a second. The Phone machine has since kept a NAT-corrected Contact and a rate
//! limit, proven in virtual time (`security_sim.rs`); this proves it through nftables NAT.
//!
//! The `handset` CLI (built here if needed) registers from the phone namespace to the bed's
//! Kamailio, over UDP and then over TCP. Kamailio logs every REGISTER it receives
//! (`kamailio.cfg`), and this test counts them there: at most 4 until `registered`, none more
//! while it holds the registration, and at most 2 (the unregister and its challenge) after.
//! Kamailio's binding must reach the phone through the NAT: an OPTIONS sent from the PBX
//! namespace to the user, routed by Kamailio's location lookup, comes back 200 from Handset.

use std::thread::sleep;
use std::time::{Duration, Instant};

use handset_tests::netbed::cli::Cli;
use handset_tests::netbed::{NatVariant, NetBed, Ns, Uplink};

/// Most REGISTERs until `registered`: the challenged one, the authenticated one, and the one
/// that adopts the NAT's address (plus one spare, e.g. for a fresh nonce).
const FIRST_REGISTRATION_MOST: usize = 4;
/// How long the CLI stays registered; REGISTERs are watched for all but the last second.
const HOLD: Duration = Duration::from_secs(12);

#[test]
fn cone_nat_registration_converges() {
    converges(NatVariant::Cone);
}

#[test]
fn symmetric_nat_registration_converges() {
    converges(NatVariant::Symmetric);
}

fn converges(variant: NatVariant) {
    let bed = NetBed::up(variant);
    let udp = register_and_hold(&bed, "alice", "udp");
    let tcp = register_and_hold(&bed, "bob", "tcp");
    eprintln!("{variant:?}: REGISTERs until registered, total: udp {udp:?}, tcp {tcp:?}");
    bed.down();
}

/// Registers `user` over `transport` with the CLI in the phone namespace, checks the count of
/// REGISTERs, the binding and an incoming request, and returns the REGISTERs Kamailio received
/// until `registered` and in all.
fn register_and_hold(bed: &NetBed, user: &str, transport: &str) -> (usize, usize) {
    let server = format!("sip:{}", bed.sip);
    let hold = HOLD.as_secs().to_string();
    let mut cli = Cli::start(
        bed,
        Ns::Phone,
        &["register"],
        &server,
        user,
        transport,
        &["--hold", &hold],
    );
    let started = Instant::now();
    cli.wait_for("registered", Duration::from_secs(20));
    let first = bed.registers(user);
    let took = started.elapsed();
    assert!(
        (1..=FIRST_REGISTRATION_MOST).contains(&first),
        "{transport}: {first} REGISTERs for the first registration (in {took:?}):\n{}",
        bed.register_lines(user)
    );

    // The binding reaches the phone through the NAT.
    let public = bed.public_address(Uplink::Wifi).to_string();
    let bindings = bed.location(user);
    assert_eq!(bindings.len(), 1, "{transport}: {bindings:?}");
    let binding = &bindings[0];
    let received = binding.received.clone().unwrap_or_default();
    assert!(
        received.starts_with(&format!("sip:{public}:")),
        "{transport}: received is not the NAT's public address: {binding:?}"
    );
    if transport == "udp" {
        // RFC 3581: the Contact adopted the public address and port the registrar saw.
        let mapping = received
            .trim_start_matches("sip:")
            .split(';')
            .next()
            .unwrap_or_default();
        assert!(
            binding.address.contains(&format!("@{mapping}")),
            "udp: the Contact did not adopt the NAT mapping {mapping}: {binding:?}"
        );
    }
    let answer = options_through_kamailio(bed, user);
    assert!(
        answer.starts_with("SIP/2.0 200"),
        "{transport}: an OPTIONS routed to {user}'s binding did not reach the phone: {answer}"
    );

    // Registered means quiet: no REGISTER while holding (the refresh is due in ~an hour).
    let quiet_until = started + took + HOLD - Duration::from_secs(1);
    sleep(quiet_until.saturating_duration_since(Instant::now()));
    let held = bed.registers(user);
    assert_eq!(
        held,
        first,
        "{transport}: REGISTERs while registered:\n{}",
        bed.register_lines(user)
    );
    cli.wait_for("unregistered", Duration::from_secs(15));
    cli.wait_exit(Duration::from_secs(10));
    let total = bed.registers(user);
    assert!(
        total <= first + 2,
        "{transport}: {} REGISTERs to unregister:\n{}",
        total - first,
        bed.register_lines(user)
    );
    assert!(
        bed.location(user).is_empty(),
        "{transport}: still bound after unregistering"
    );
    (first, total)
}

/// Sends an OPTIONS for `user` from the PBX namespace through Kamailio (which routes it to the
/// user's binding) and returns the status line of the final answer, or why there was none.
fn options_through_kamailio(bed: &NetBed, user: &str) -> String {
    const SCRIPT: &str = r#"
import socket, sys, uuid
pbx, port, user = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((pbx, 0))
s.settimeout(8)
me = s.getsockname()[1]
branch = "z9hG4bK" + uuid.uuid4().hex
msg = (f"OPTIONS sip:{user}@{pbx} SIP/2.0\r\n"
       f"Via: SIP/2.0/UDP {pbx}:{me};branch={branch};rport\r\n"
       "Max-Forwards: 70\r\n"
       f"From: <sip:probe@{pbx}>;tag={uuid.uuid4().hex[:8]}\r\n"
       f"To: <sip:{user}@{pbx}>\r\n"
       f"Call-ID: {uuid.uuid4().hex}\r\n"
       "CSeq: 1 OPTIONS\r\n"
       "Content-Length: 0\r\n\r\n")
s.sendto(msg.encode(), (pbx, port))
while True:
    try:
        data, _ = s.recvfrom(65535)
    except socket.timeout:
        print("timeout")
        break
    line = data.decode(errors="replace").split("\r\n", 1)[0]
    code = line.split(" ")[1] if line.count(" ") >= 1 else ""
    if not code.startswith("1"):
        print(line)
        break
"#;
    let output = bed.exec_in(
        Ns::Pbx,
        &[
            "python3",
            "-c",
            SCRIPT,
            &bed.pbx.to_string(),
            &bed.sip.port().to_string(),
            user,
        ],
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
        + &String::from_utf8_lossy(&output.stderr)
}
