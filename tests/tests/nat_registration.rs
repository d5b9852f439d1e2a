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

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::thread::sleep;
use std::time::{Duration, Instant};

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
    let binary = handset_binary();
    let bed = NetBed::up(variant);
    let udp = register_and_hold(&bed, &binary, "alice", "udp");
    let tcp = register_and_hold(&bed, &binary, "bob", "tcp");
    eprintln!("{variant:?}: REGISTERs until registered, total: udp {udp:?}, tcp {tcp:?}");
    bed.down();
}

/// Registers `user` over `transport` with the CLI in the phone namespace, checks the count of
/// REGISTERs, the binding and an incoming request, and returns the REGISTERs Kamailio received
/// until `registered` and in all.
fn register_and_hold(bed: &NetBed, binary: &Path, user: &str, transport: &str) -> (usize, usize) {
    let mut cli = Cli::start(bed, binary, user, transport);
    let started = Instant::now();
    cli.wait_for("registered", Duration::from_secs(20));
    let first = registers(bed, user);
    let took = started.elapsed();
    assert!(
        (1..=FIRST_REGISTRATION_MOST).contains(&first),
        "{transport}: {first} REGISTERs for the first registration (in {took:?}):\n{}",
        register_lines(bed, user)
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
    let held = registers(bed, user);
    assert_eq!(
        held,
        first,
        "{transport}: REGISTERs while registered:\n{}",
        register_lines(bed, user)
    );
    cli.wait_for("unregistered", Duration::from_secs(15));
    cli.wait_exit(Duration::from_secs(10));
    let total = registers(bed, user);
    assert!(
        total <= first + 2,
        "{transport}: {} REGISTERs to unregister:\n{}",
        total - first,
        register_lines(bed, user)
    );
    assert!(
        bed.location(user).is_empty(),
        "{transport}: still bound after unregistering"
    );
    (first, total)
}

/// Kamailio's log lines of the REGISTERs it received from `user`.
fn register_lines(bed: &NetBed, user: &str) -> String {
    let log = std::fs::read_to_string(bed.run_dir.join("kamailio.log")).unwrap_or_default();
    let tag = format!("netbed REGISTER user={user} ");
    log.lines()
        .filter(|l| l.contains(&tag))
        .map(|l| format!("{l}\n"))
        .collect()
}

fn registers(bed: &NetBed, user: &str) -> usize {
    register_lines(bed, user).lines().count()
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

/// The `handset` CLI running in the phone namespace; killed if the test ends first.
struct Cli {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
    stderr: PathBuf,
}

impl Cli {
    fn start(bed: &NetBed, binary: &Path, user: &str, transport: &str) -> Cli {
        let stderr = bed.run_dir.join(format!("handset-{user}.log"));
        let mut child = bed
            .command_in(Ns::Phone, &binary.to_string_lossy())
            .args([
                "register",
                "--server",
                &format!("sip:{}", bed.sip),
                "--user",
                user,
                "--password",
                &format!("{user}-secret"),
                "--transport",
                transport,
                "--hold",
                &HOLD.as_secs().to_string(),
            ])
            .env("HANDSET_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr).expect("a log file in the run dir"))
            .spawn()
            .expect("the handset CLI starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Cli {
            child,
            lines,
            seen: Vec::new(),
            stderr,
        }
    }

    /// Waits for the JSON event `name`; panics on a failure event, exit or timeout.
    fn wait_for(&mut self, name: &str, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    let event: serde_json::Value = serde_json::from_str(&line).unwrap_or_default();
                    match event["event"].as_str() {
                        Some(e) if e == name => return,
                        Some("registration_failed") => self.fail(&format!("waiting for {name}")),
                        _ => {}
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.fail(&format!("no {name} in {within:?}")),
                Err(RecvTimeoutError::Disconnected) => {
                    self.fail(&format!("the CLI exited before {name}"))
                }
            }
        }
    }

    fn wait_exit(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            match self.child.try_wait().expect("wait for the CLI") {
                Some(status) if status.success() => return,
                Some(status) => self.fail(&format!("the CLI exited with {status}")),
                None if Instant::now() > deadline => self.fail("the CLI did not exit"),
                None => sleep(Duration::from_millis(100)),
            }
        }
    }

    fn fail(&self, why: &str) -> ! {
        let log = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        panic!("{why}; events:\n{}\nstderr:\n{log}", self.seen.join("\n"));
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `handset` CLI of this build (`examples/cli`), built now so it is never stale: it lives
/// next to this test's own `deps` directory.
fn handset_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().expect("the test's own path");
            let profile_dir = exe
                .parent()
                .and_then(Path::parent)
                .expect("the test runs from <target>/<profile>/deps");
            let target_dir = profile_dir.parent().expect("a target directory");
            let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
            let mut build = Command::new(cargo);
            build
                .args(["build", "--quiet", "-p", "handset-cli", "--bin", "handset"])
                .current_dir(handset_tests::root())
                .env("CARGO_TARGET_DIR", target_dir);
            if profile_dir.file_name().is_some_and(|n| n == "release") {
                build.arg("--release");
            }
            let status = build.status().expect("cargo runs");
            assert!(status.success(), "cannot build the handset CLI");
            profile_dir.join("handset")
        })
        .clone()
}
