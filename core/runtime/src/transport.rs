//! SIP transports: one UDP socket, and TCP/TLS connections made on demand (and again after
//! they drop), each read through the sans-IO `StreamFramer` and kept alive with RFC 5626 CRLF
//! pings. Everything received goes to the run loop as [`Incoming`] values.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use handset_sip::message::{Message, StreamFramer, StreamItem};
use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

pub use handset_sip::transport::{Flow, Transport};

/// How long a TCP connect plus TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long to wait for the pong after a CRLF ping before the connection counts as dead.
const PONG_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest UDP datagram read.
const MAX_DATAGRAM: usize = 65_535;

/// What the transports report to the run loop.
#[derive(Debug)]
pub enum Incoming {
    /// A well-formed message arrived.
    Message {
        /// Where it came from.
        flow: Flow,
        /// The message.
        message: Message,
    },
    /// Bytes arrived that are not a valid SIP message; they were dropped.
    Malformed {
        /// Where they came from.
        flow: Flow,
        /// What was wrong.
        error: handset_sip::message::ParseError,
    },
    /// A TCP/TLS connection ended.
    Closed {
        /// The connection's flow.
        flow: Flow,
        /// Why, when it was not an orderly close.
        error: Option<String>,
    },
}

/// Why sending or connecting failed. The text never includes message content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// TCP connect failed.
    Connect(String),
    /// The TLS handshake failed (untrusted or mismatched certificate, protocol error).
    Tls(String),
    /// Connecting took longer than the limit.
    Timeout,
    /// Writing failed.
    Send(String),
    /// A CA file could not be read or held no certificate.
    CaFile(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(e) => write!(f, "cannot connect: {e}"),
            Self::Tls(e) => write!(f, "TLS handshake failed: {e}"),
            Self::Timeout => f.write_str("connect timed out"),
            Self::Send(e) => write!(f, "send failed: {e}"),
            Self::CaFile(e) => write!(f, "cannot use CA file: {e}"),
        }
    }
}

impl std::error::Error for TransportError {}

/// Builds a rustls client configuration trusting the public web roots plus, when given, the
/// certificates of a PEM CA file (private PBX CAs).
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| TransportError::CaFile(format!("{}: {e}", path.display())))?
            .collect::<Result<_, _>>()
            .map_err(|e| TransportError::CaFile(format!("{}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(TransportError::CaFile(format!(
                "{}: no certificate found",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| TransportError::CaFile(format!("{}: {e}", path.display())))?;
        }
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TransportError::Tls(e.to_string()))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

struct Connection {
    outgoing: mpsc::UnboundedSender<Vec<u8>>,
    local: SocketAddr,
}

/// The transports of one runtime.
pub struct Transports {
    udp: Arc<UdpSocket>,
    connections: HashMap<Flow, Connection>,
    incoming: mpsc::UnboundedSender<Incoming>,
    keepalive: Duration,
    /// Whether connections run their keep-alive timers (see [`Transports::set_keepalive`]).
    keepalive_on: watch::Sender<bool>,
}

impl Transports {
    /// Binds the UDP socket at `bind` and starts reading it. Everything received is sent to
    /// `incoming`. `keepalive` is the CRLF ping interval of TCP/TLS connections.
    pub async fn bind(
        bind: SocketAddr,
        incoming: mpsc::UnboundedSender<Incoming>,
        keepalive: Duration,
    ) -> std::io::Result<Transports> {
        let udp = Arc::new(UdpSocket::bind(bind).await?);
        tokio::spawn(read_udp(udp.clone(), incoming.clone()));
        Ok(Transports {
            udp,
            connections: HashMap::new(),
            incoming,
            keepalive,
            keepalive_on: watch::Sender::new(true),
        })
    }

    /// Runs (`true`) or stops (`false`) the CRLF keep-alive timers of every TCP/TLS
    /// connection, open or opened later. Stopped, a connection arms no timer at all (a
    /// backgrounded app woken by push must not be woken by its own pings); a pong already
    /// awaited is still awaited.
    pub fn set_keepalive(&self, on: bool) {
        self.keepalive_on.send_replace(on);
    }

    /// Local address of the UDP socket.
    pub fn udp_local_addr(&self) -> std::io::Result<SocketAddr> {
        self.udp.local_addr()
    }

    /// Local address of an open TCP/TLS connection.
    pub fn connection_local_addr(&self, flow: &Flow) -> Option<SocketAddr> {
        self.connections.get(flow).map(|c| c.local)
    }

    /// Whether a TCP/TLS connection for `flow` is open.
    pub fn is_connected(&self, flow: &Flow) -> bool {
        self.connections
            .get(flow)
            .is_some_and(|c| !c.outgoing.is_closed())
    }

    /// Opens the TCP/TLS connection for `flow` unless one is open. `server_name` is checked
    /// against the certificate for TLS. Returns the local address.
    pub async fn connect(
        &mut self,
        flow: Flow,
        server_name: &str,
        tls: Option<Arc<rustls::ClientConfig>>,
    ) -> Result<SocketAddr, TransportError> {
        if let Some(c) = self.connections.get(&flow)
            && !c.outgoing.is_closed()
        {
            return Ok(c.local);
        }
        self.connections.remove(&flow);
        if flow.transport == Transport::Udp {
            return self
                .udp
                .local_addr()
                .map_err(|e| TransportError::Connect(e.to_string()));
        }
        let attempt = async {
            let tcp = TcpStream::connect(flow.remote)
                .await
                .map_err(|e| TransportError::Connect(e.to_string()))?;
            tcp.set_nodelay(true).ok();
            let local = tcp
                .local_addr()
                .map_err(|e| TransportError::Connect(e.to_string()))?;
            let (tx, rx) = mpsc::unbounded_channel();
            if flow.transport == Transport::Tls {
                let config = match tls {
                    Some(c) => c,
                    None => tls_config(None)?,
                };
                let name = ServerName::try_from(server_name.to_string())
                    .map_err(|e| TransportError::Tls(format!("bad server name: {e}")))?;
                let stream = tokio_rustls::TlsConnector::from(config)
                    .connect(name, tcp)
                    .await
                    .map_err(|e| TransportError::Tls(e.to_string()))?;
                tokio::spawn(run_connection(
                    stream,
                    flow,
                    rx,
                    self.incoming.clone(),
                    (self.keepalive, self.keepalive_on.subscribe()),
                ));
            } else {
                tokio::spawn(run_connection(
                    tcp,
                    flow,
                    rx,
                    self.incoming.clone(),
                    (self.keepalive, self.keepalive_on.subscribe()),
                ));
            }
            Ok::<_, TransportError>(Connection {
                outgoing: tx,
                local,
            })
        };
        let connection = tokio::time::timeout(CONNECT_TIMEOUT, attempt)
            .await
            .map_err(|_| TransportError::Timeout)??;
        let local = connection.local;
        self.connections.insert(flow, connection);
        Ok(local)
    }

    /// Sends bytes on `flow`. TCP/TLS flows must be connected first (see [`Self::connect`]);
    /// a server's response goes back on the connection its request came in on.
    pub async fn send(&mut self, flow: &Flow, bytes: Vec<u8>) -> Result<(), TransportError> {
        match flow.transport {
            Transport::Udp => self
                .udp
                .send_to(&bytes, flow.remote)
                .await
                .map(|_| ())
                .map_err(|e| TransportError::Send(e.to_string())),
            Transport::Tcp | Transport::Tls => {
                let connection = self
                    .connections
                    .get(flow)
                    .ok_or_else(|| TransportError::Send("no connection".into()))?;
                connection
                    .outgoing
                    .send(bytes)
                    .map_err(|_| TransportError::Send("connection closed".into()))
            }
        }
    }

    /// Registers a connection accepted or noticed by the reader (used for flows that arrive
    /// from the network); forgets closed ones.
    pub fn forget(&mut self, flow: &Flow) {
        self.connections.remove(flow);
    }

    /// Closes every connection.
    pub fn close_all(&mut self) {
        self.connections.clear();
    }
}

async fn read_udp(socket: Arc<UdpSocket>, incoming: mpsc::UnboundedSender<Incoming>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors surface here on some systems; the socket itself is still fine.
            Err(_) => continue,
        };
        let flow = Flow {
            transport: Transport::Udp,
            remote: from,
        };
        let datagram = &buf[..len];
        // RFC 5626 keep-alive probes on UDP carry no message; ignore them.
        if datagram.iter().all(|b| *b == b'\r' || *b == b'\n') {
            continue;
        }
        let item = match Message::parse(datagram) {
            Ok(message) => Incoming::Message { flow, message },
            Err(error) => Incoming::Malformed { flow, error },
        };
        if incoming.send(item).is_err() {
            return;
        }
    }
}

/// Drives one TCP/TLS connection: writes what the run loop queues, reads and frames what
/// arrives, answers pings, sends pings every `keepalive` while `keepalive_on` says so, and
/// drops the connection when a pong does not come back in time.
async fn run_connection<S>(
    stream: S,
    flow: Flow,
    mut outgoing: mpsc::UnboundedReceiver<Vec<u8>>,
    incoming: mpsc::UnboundedSender<Incoming>,
    (keepalive, mut keepalive_on): (Duration, watch::Receiver<bool>),
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut pinging = *keepalive_on.borrow_and_update();
    let mut watching = true;
    let mut ping_timer =
        tokio::time::interval_at(tokio::time::Instant::now() + keepalive, keepalive);
    let mut pong_deadline: Option<tokio::time::Instant> = None;
    let error: Option<String> = loop {
        let deadline = pong_deadline;
        tokio::select! {
            changed = keepalive_on.changed(), if watching => {
                if changed.is_err() {
                    // The transports are gone; the run loop closes this connection next.
                    watching = false;
                    continue;
                }
                let on = *keepalive_on.borrow_and_update();
                if on && !pinging {
                    ping_timer.reset();
                }
                pinging = on;
            },
            read = reader.read(&mut buf) => match read {
                Ok(0) => break None,
                Ok(n) => {
                    framer.push(&buf[..n]);
                    let mut failed = None;
                    while let Some(item) = framer.next_item() {
                        let report = match item {
                            Ok(StreamItem::Message(message)) => Incoming::Message { flow, message },
                            Ok(StreamItem::Ping) => {
                                if let Err(e) = writer.write_all(b"\r\n").await {
                                    failed = Some(e.to_string());
                                    break;
                                }
                                continue;
                            }
                            Ok(StreamItem::Pong) => {
                                pong_deadline = None;
                                continue;
                            }
                            Err(error) => Incoming::Malformed { flow, error },
                        };
                        if incoming.send(report).is_err() {
                            return;
                        }
                    }
                    if failed.is_some() {
                        break failed;
                    }
                    if framer.is_broken() {
                        break Some("stream framing lost".into());
                    }
                }
                Err(e) => break Some(e.to_string()),
            },
            bytes = outgoing.recv() => match bytes {
                Some(bytes) => {
                    if let Err(e) = writer.write_all(&bytes).await {
                        break Some(e.to_string());
                    }
                }
                // The run loop dropped the connection.
                None => break None,
            },
            _ = ping_timer.tick(), if pinging => {
                if pong_deadline.is_none() {
                    framer.expect_pong();
                    if let Err(e) = writer.write_all(b"\r\n\r\n").await {
                        break Some(e.to_string());
                    }
                    pong_deadline = Some(tokio::time::Instant::now() + PONG_TIMEOUT);
                }
            },
            _ = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending::<()>().await,
                }
            } => break Some("keep-alive pong not received".into()),
        }
    };
    let _ = writer.shutdown().await;
    let _ = incoming.send(Incoming::Closed { flow, error });
}
