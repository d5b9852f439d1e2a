//! coturn (Debian's `/usr/bin/turnserver`) on loopback for the tests: each [`Coturn`] is a
//! child process on free ports of 127.0.0.1 with its own config in a temporary directory
//! (long-term credential [`USERNAME`]/[`PASSWORD`] in [`REALM`], loopback peers allowed),
//! started when it answers a STUN Binding request, and killed with its directory removed on
//! drop, also when a test fails. A coturn that cannot start fails the test
//! (`scripts/test.sh` installs it through `tests/netbed/install.sh`).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use handset_stun::binding::{self, BindingAnswer, StunTransactionId};
use handset_stun::turn::{TurnServer, TurnTransport};
use rand::SeedableRng;
use rand::rngs::StdRng;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
/// The long-term credential's user name.
pub const USERNAME: &str = "handset";
/// The long-term credential's password.
pub const PASSWORD: &str = "relay-secret-8472";
/// The credential's realm.
pub const REALM: &str = "handset.test";
/// How long coturn may take to come up.
const PATIENCE: Duration = Duration::from_secs(5);

/// A coturn child process with its directory; killed and removed on drop.
pub struct Coturn {
    child: Child,
    dir: PathBuf,
    /// UDP and TCP port on 127.0.0.1.
    pub port: u16,
    /// TLS port on 127.0.0.1, when started with a certificate.
    pub tls_port: Option<u16>,
}

impl Coturn {
    /// Starts coturn on a free port of 127.0.0.1 (no TLS), `extra_config` lines added, and
    /// waits until it answers STUN.
    pub fn start(extra_config: &str) -> Coturn {
        Coturn::launch(extra_config, None)
    }

    /// Starts coturn also listening for TLS, with this certificate and key.
    pub fn start_tls(cert: &Path, key: &Path) -> Coturn {
        Coturn::launch("", Some((cert, key)))
    }

    fn launch(extra_config: &str, tls: Option<(&Path, &Path)>) -> Coturn {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "handset-coturn-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let port = free_port();
        let tls_port = tls.map(|_| free_port());
        let tls_config = match (tls, tls_port) {
            (Some((cert, key)), Some(tls_port)) => format!(
                "tls-listening-port={tls_port}\ncert={}\npkey={}\nno-dtls",
                cert.display(),
                key.display()
            ),
            _ => "no-tls\nno-dtls".to_owned(),
        };
        let config = format!(
            "listening-ip=127.0.0.1\n\
             listening-port={port}\n\
             relay-ip=127.0.0.1\n\
             lt-cred-mech\n\
             user={USERNAME}:{PASSWORD}\n\
             realm={REALM}\n\
             allow-loopback-peers\n\
             no-cli\n\
             {tls_config}\n\
             log-file={log}\n\
             simple-log\n\
             verbose\n\
             pidfile={pid}\n\
             userdb={db}\n\
             {extra_config}\n",
            log = dir.join("turn.log").display(),
            pid = dir.join("turn.pid").display(),
            db = dir.join("turndb").display(),
        );
        let config_path = dir.join("turnserver.conf");
        std::fs::write(&config_path, config).expect("coturn config written");
        let child = Command::new("/usr/bin/turnserver")
            .arg("-c")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("/usr/bin/turnserver starts (Debian package coturn)");
        let mut coturn = Coturn {
            child,
            dir,
            port,
            tls_port,
        };
        coturn.wait_until_listening();
        coturn
    }

    /// Where it listens for UDP and TCP.
    pub fn address(&self) -> SocketAddr {
        SocketAddr::new(LOOPBACK, self.port)
    }

    /// The server with the test credential's user name and `password`.
    pub fn server(&self, transport: TurnTransport, password: &str) -> TurnServer {
        TurnServer {
            address: self.address(),
            transport,
            username: USERNAME.into(),
            password: password.into(),
        }
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }

    /// Packets the relay sent to peers and received from them, summed over the allocations
    /// coturn logged as ended (`peer usage` lines, written about a second after an
    /// allocation is closed; waits up to 3 s for the first).
    pub fn relayed_packets(&self) -> (u64, u64) {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let log = self.log();
            let lines: Vec<&str> = log.lines().filter(|l| l.contains("peer usage:")).collect();
            if !lines.is_empty() || Instant::now() >= deadline {
                let count = |line: &str, key: &str| -> u64 {
                    line.split([' ', ','])
                        .find_map(|field| field.strip_prefix(key))
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0)
                };
                return lines.iter().fold((0, 0), |(sent, received), l| {
                    (sent + count(l, "sp="), received + count(l, "rp="))
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Sends STUN Binding requests until one is answered.
    fn wait_until_listening(&mut self) {
        let socket = UdpSocket::bind((LOOPBACK, 0)).expect("probe socket");
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .expect("a read timeout");
        let deadline = Instant::now() + PATIENCE;
        let mut rng = StdRng::seed_from_u64(1);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("coturn exited with {status}:\n{}", self.log());
            }
            let transaction = StunTransactionId::random(&mut rng);
            let request = binding::binding_request(transaction);
            socket
                .send_to(&request, self.address())
                .expect("a datagram to coturn");
            let mut buffer = [0u8; 1500];
            if let Ok((len, _)) = socket.recv_from(&mut buffer)
                && let Ok(BindingAnswer::Success { .. }) =
                    binding::parse_binding_answer(&buffer[..len])
            {
                return;
            }
        }
        panic!(
            "coturn did not answer STUN within {PATIENCE:?}:\n{}",
            self.log()
        );
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port free on 127.0.0.1 for both UDP and TCP (coturn listens on both).
fn free_port() -> u16 {
    for _ in 0..100 {
        let tcp = TcpListener::bind((LOOPBACK, 0)).expect("a free TCP port");
        let port = tcp.local_addr().expect("a bound address").port();
        if UdpSocket::bind((LOOPBACK, port)).is_ok() {
            return port;
        }
    }
    panic!("no port free for both UDP and TCP");
}
