//! Shared helpers for the interop tests: the Kamailio harness (started once per test process
//! through `tests/kamailio/start.sh`), its location table, and a tiny authoritative DNS server
//! on loopback for RFC 3263 tests.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use handset::{HandsetEvent, RegistrationEvent};
use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_resolver::proto::rr::rdata::{A, SRV};
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedReceiver;

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
            domain: get("KAMAILIO_DOMAIN"),
        }
    })
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

/// Waits for the next registration event, failing the test after `limit`.
pub async fn next_registration(
    events: &mut UnboundedReceiver<HandsetEvent>,
    limit: Duration,
) -> (RegistrationEvent, Option<String>) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(HandsetEvent::Registration { event, detail, .. })) => return (event, detail),
            Ok(Some(HandsetEvent::Call { .. })) => continue,
            Ok(None) => panic!("the runtime stopped"),
            Err(_) => panic!("no registration event within {limit:?}"),
        }
    }
}

/// Waits until an event matching `wanted` arrives (skipping others), failing after `limit`.
pub async fn wait_for(
    events: &mut UnboundedReceiver<HandsetEvent>,
    limit: Duration,
    wanted: impl Fn(&RegistrationEvent) -> bool,
) -> RegistrationEvent {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let (event, detail) = next_registration(events, left).await;
        if wanted(&event) {
            return event;
        }
        if let RegistrationEvent::Failed { .. } = event {
            panic!("unexpected failure: {event:?} {detail:?}");
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
