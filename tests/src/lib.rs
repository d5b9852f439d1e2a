//! Shared helpers for the interop tests: the Kamailio harness (started once per test process
//! through `tests/kamailio/start.sh`), its location table, and a tiny authoritative DNS server
//! on loopback for RFC 3263 tests; [`netbed`]: the namespace test bed behind NAT routers.

pub mod coturn;
pub mod netbed;
pub mod sim;

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use handset::audio::{FakeDevice, FakeSource, Recorder, tone_seconds};
use handset::{Events, HandsetEvent, RegistrationState};
use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;

/// The run directory the test processes use for their Kamailio.
pub const RUN_DIR: &str = "/tmp/handset-kamailio-tests";

/// A running Kamailio started by the harness.
#[derive(Debug, Clone)]
pub struct Kamailio {
    /// UDP and TCP listening address.
    pub udp: SocketAddr,
    /// TLS listening address.
    pub tls: SocketAddr,
    /// The private CA that signed Kamailio's certificate.
    pub ca: PathBuf,
    /// TLS listener presenting a self-signed certificate marked CA (`openssl req -x509`
    /// defaults) for localhost and 127.0.0.1.
    pub tls_self_signed: SocketAddr,
    /// That certificate (PEM).
    pub self_signed_cert: PathBuf,
    /// TLS listener presenting a certificate like it that expired in 2021.
    pub tls_expired: SocketAddr,
    /// That certificate (PEM).
    pub expired_cert: PathBuf,
    /// The SIP domain (realm) of the users.
    pub domain: String,
}

impl Kamailio {
    /// `sip:` URI of the UDP/TCP listener.
    pub fn uri(&self) -> String {
        format!("sip:{}", self.udp)
    }

    /// `sip:` URI of the TLS listener.
    pub fn tls_uri(&self) -> String {
        format!("sip:{}", self.tls)
    }
}

/// The project root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Starts (or restarts) Kamailio once for this test process and returns its addresses.
/// Panics with the harness output when it cannot start: these tests need the real server.
pub fn kamailio() -> &'static Kamailio {
    static KAMAILIO: OnceLock<Kamailio> = OnceLock::new();
    KAMAILIO.get_or_init(|| {
        // A harness started by hand in the default run directory holds the same ports.
        let _ = Command::new("bash")
            .arg(root().join("tests/kamailio/stop.sh"))
            .arg("/tmp/handset-kamailio")
            .output();
        let script = root().join("tests/kamailio/start.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(RUN_DIR)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        assert!(
            output.status.success(),
            "Kamailio did not start (run tests/kamailio/install.sh first):\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let env = std::fs::read_to_string(Path::new(RUN_DIR).join("env"))
            .unwrap_or_else(|e| panic!("no env file from the harness: {e}"));
        let get = |key: &str| {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing from the harness env"))
                .to_string()
        };
        Kamailio {
            udp: get("KAMAILIO_UDP").parse().expect("KAMAILIO_UDP"),
            tls: get("KAMAILIO_TLS").parse().expect("KAMAILIO_TLS"),
            ca: PathBuf::from(get("KAMAILIO_CA")),
            tls_self_signed: get("KAMAILIO_TLS_SELF_SIGNED")
                .parse()
                .expect("KAMAILIO_TLS_SELF_SIGNED"),
            self_signed_cert: PathBuf::from(get("KAMAILIO_SELF_SIGNED_CERT")),
            tls_expired: get("KAMAILIO_TLS_EXPIRED")
                .parse()
                .expect("KAMAILIO_TLS_EXPIRED"),
            expired_cert: PathBuf::from(get("KAMAILIO_EXPIRED_CERT")),
            domain: get("KAMAILIO_DOMAIN"),
        }
    })
}

/// The SHA-256 fingerprint of a PEM certificate as `openssl x509 -fingerprint` prints it
/// (`AB:CD:...`), computed by openssl rather than by the code under test.
pub fn openssl_fingerprint(pem: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .expect("openssl runs");
    assert!(output.status.success(), "{output:?}");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .split_once('=')
        .map(|(_, fingerprint)| fingerprint.to_string())
        .expect("openssl prints sha256 Fingerprint=...")
}

/// The Contact URIs Kamailio's location table holds for `user`.
pub fn location(user: &str) -> Vec<String> {
    let output = Command::new("bash")
        .arg(root().join("tests/kamailio/location.sh"))
        .arg(user)
        .arg(RUN_DIR)
        .output()
        .expect("location.sh runs");
    assert!(
        output.status.success(),
        "location.sh failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// The MD5 HA1 of a user: hex(MD5(user:realm:password)).
pub fn md5_ha1(user: &str, realm: &str, password: &str) -> String {
    use md5::{Digest, Md5};
    Md5::digest(format!("{user}:{realm}:{password}"))
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Logs of the runtime on the test's output when `HANDSET_TEST_LOG` names a filter (e.g.
/// `debug`); nothing otherwise. Logs never carry secrets or message content.
pub fn init_logs() {
    if let Ok(filter) = std::env::var("HANDSET_TEST_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
}

/// Waits for the next registration state, failing the test after `limit`.
pub async fn next_registration(events: &mut Events, limit: Duration) -> RegistrationState {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(HandsetEvent::Registration { state, .. })) => return state,
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the runtime stopped"),
            Err(_) => panic!("no registration event within {limit:?}"),
        }
    }
}

/// Waits until an event matching `wanted` arrives (skipping others), failing after `limit`.
pub async fn wait_for(
    events: &mut Events,
    limit: Duration,
    wanted: impl Fn(&RegistrationState) -> bool,
) -> RegistrationState {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let state = next_registration(events, left).await;
        if wanted(&state) {
            return state;
        }
        if let RegistrationState::Failed { .. } = state {
            panic!("unexpected failure: {state:?}");
        }
    }
}

/// A minimal authoritative DNS server on 127.0.0.1 answering SRV and A queries from a fixed
/// record list; it answers only loopback peers and stops when dropped.
pub struct TestDns {
    /// Where it listens.
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestDns {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// `_service._proto.domain` SRV entries: (priority, weight, port, target host name).
pub type SrvEntry = (u16, u16, u16, &'static str);

impl TestDns {
    /// Serves `srv_name` with `entries`, and A records 127.0.0.1 for every target.
    pub async fn start(srv_name: &str, entries: &[SrvEntry]) -> TestDns {
        let name = |n: &str| Name::from_ascii(n).expect("valid DNS name");
        let mut zone = Vec::new();
        for (priority, weight, port, target) in entries {
            zone.push(Record::from_rdata(
                name(srv_name),
                60,
                RData::SRV(SRV::new(*priority, *weight, *port, name(target))),
            ));
            zone.push(Record::from_rdata(
                name(target),
                60,
                RData::A(A(Ipv4Addr::LOCALHOST)),
            ));
        }
        let socket = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind DNS socket");
        let addr = socket.local_addr().expect("local addr");
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            loop {
                let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                    continue;
                };
                if !peer.ip().is_loopback() {
                    continue;
                }
                let Ok(request) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                let mut response = Message::new();
                response
                    .set_id(request.id())
                    .set_message_type(MessageType::Response)
                    .set_op_code(OpCode::Query)
                    .set_authoritative(true);
                if let Some(query) = request.queries().first() {
                    response.add_query(query.clone());
                    let answers: Vec<Record> = zone
                        .iter()
                        .filter(|r| {
                            r.name().eq_ignore_root(query.name())
                                && r.record_type() == query.query_type()
                        })
                        .cloned()
                        .collect();
                    if answers.is_empty() && query.query_type() != RecordType::AAAA {
                        response.set_response_code(ResponseCode::NXDomain);
                    }
                    response.add_answers(answers);
                }
                if let Ok(bytes) = response.to_vec() {
                    let _ = socket.send_to(&bytes, peer).await;
                }
            }
        });
        TestDns { addr, task }
    }
}

/// Runs a peer script from `tests/peers` and returns its stdout; panics with its output when
/// it fails.
pub fn peer_script(script: &str, args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(root().join("tests/peers").join(script))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        output.status.success(),
        "{script} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// A running baresip or linphone test peer, stopped when dropped.
pub struct Peer {
    script: &'static str,
    name: String,
}

impl Peer {
    /// Starts baresip peer `name` as SIP user `user` with extra options (`--tone`, `--codec`,
    /// `--enc`, `--auto-answer`...). Kamailio must already run ([`kamailio`]).
    pub fn baresip(name: &str, user: &str, options: &[&str]) -> Peer {
        Self::start("baresip.sh", name, user, options)
    }

    /// Starts linphone peer `name` (same options as baresip).
    pub fn linphone(name: &str, user: &str, options: &[&str]) -> Peer {
        Self::start("linphone.sh", name, user, options)
    }

    fn start(script: &'static str, name: &str, user: &str, options: &[&str]) -> Peer {
        let mut args = vec!["start", name, user];
        args.extend_from_slice(options);
        peer_script(script, &args);
        let peer = Peer {
            script,
            name: name.to_string(),
        };
        peer.wait("registered", 15);
        peer
    }

    /// Sends a control command (`/dial sip:..`, `call sip:..`, `/hangup`...).
    pub fn command(&self, command: &str) -> String {
        peer_script(self.script, &["cmd", &self.name, command])
    }

    /// Waits until the peer's log shows `event` (registered, incoming, established, closed).
    pub fn wait(&self, event: &str, seconds: u32) {
        peer_script(
            self.script,
            &["wait", &self.name, event, &seconds.to_string()],
        );
    }

    /// The newest recording of what the peer heard.
    pub fn recording(&self) -> PathBuf {
        let args: Vec<&str> = if self.script == "baresip.sh" {
            vec!["rec", &self.name, "dec"]
        } else {
            vec!["rec", &self.name]
        };
        PathBuf::from(peer_script(self.script, &args))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(root().join("tests/peers").join(self.script))
            .args(["stop", &self.name])
            .output();
    }
}

/// UDP payloads of a pcap file (Linux loopback/ethernet or cooked captures, IPv4), with
/// their source and destination ports.
pub fn pcap_udp_payloads(path: &Path) -> Vec<(u16, u16, Vec<u8>)> {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(data.len() >= 24, "not a pcap file");
    let little = data[..4] == [0xd4, 0xc3, 0xb2, 0xa1];
    let u32_at = |b: &[u8]| {
        let a = [b[0], b[1], b[2], b[3]];
        if little {
            u32::from_le_bytes(a)
        } else {
            u32::from_be_bytes(a)
        }
    };
    let link = u32_at(&data[20..24]);
    let link_header = match link {
        1 => 14,   // Ethernet (what tcpdump uses on lo)
        113 => 16, // Linux cooked
        276 => 20, // Linux cooked v2
        101 => 0,  // raw IP
        other => panic!("unsupported link type {other}"),
    };
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= data.len() {
        let captured = u32_at(&data[at + 8..at + 12]) as usize;
        let start = at + 16;
        let end = (start + captured).min(data.len());
        let frame = &data[start..end];
        at = end;
        let Some(ip) = frame.get(link_header..) else {
            continue;
        };
        if ip.len() < 20 || ip[0] >> 4 != 4 || ip[9] != 17 {
            continue;
        }
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        let Some(udp) = ip.get(ihl..) else { continue };
        if udp.len() < 8 {
            continue;
        }
        let src = u16::from_be_bytes([udp[0], udp[1]]);
        let dst = u16::from_be_bytes([udp[2], udp[3]]);
        out.push((src, dst, udp[8..].to_vec()));
    }
    out
}

/// How long the call helpers wait for an event.
pub const CALL_LIMIT: Duration = Duration::from_secs(15);

/// The next update of any call (skipping other events), failing the test after
/// [`CALL_LIMIT`].
pub async fn next_call_update(events: &mut Events) -> (handset::CallId, handset::CallUpdate) {
    let deadline = tokio::time::Instant::now() + CALL_LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(HandsetEvent::Call { call, update, .. })) => return (call, update),
            Ok(Some(_)) => continue,
            other => panic!("no call event within {CALL_LIMIT:?}: {other:?}"),
        }
    }
}

/// Waits for a call update matching `wanted`; fails the test if a call ends first.
pub async fn wait_update(
    events: &mut Events,
    wanted: impl Fn(&handset::CallUpdate) -> bool,
) -> (handset::CallId, handset::CallUpdate) {
    loop {
        let (call, update) = next_call_update(events).await;
        if wanted(&update) {
            return (call, update);
        }
        if let handset::CallUpdate::Ended { .. } = update {
            panic!("call ended early: {update:?}");
        }
    }
}

/// Waits for any event matching `wanted` (skipping others), failing the test after `limit`.
pub async fn wait_event(
    events: &mut Events,
    limit: Duration,
    wanted: impl Fn(&HandsetEvent) -> bool,
) -> HandsetEvent {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(event)) if wanted(&event) => return event,
            Ok(Some(_)) => continue,
            other => panic!("no matching event within {limit:?}: {other:?}"),
        }
    }
}

/// A clocked fake audio device playing a `freq_hz` tone, and the recorder of what it hears.
pub fn tone_device(freq_hz: f64) -> (Box<FakeDevice>, Recorder) {
    let device = FakeDevice::new(FakeSource::Tone {
        freq_hz,
        amplitude: 8000,
    });
    let recorder = device.recorder();
    (Box::new(device), recorder)
}

/// Seconds of a `freq` Hz tone in what `recorder` heard (48 kHz).
pub fn heard(recorder: &Recorder, freq: f64) -> f64 {
    tone_seconds(&recorder.samples(), 48_000, freq, 10.0).unwrap_or(0.0)
}
