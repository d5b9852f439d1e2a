//! SIP sockets: one UDP socket, and TCP/TLS connections opened when the phone asks. They only
//! move bytes: every datagram and every chunk read from a stream goes to the run loop as it
//! is (framing, keep-alive pings and what the bytes mean are the phone's), and the run loop's
//! bytes go out. Connecting (TCP, TLS handshake) runs in a task of its own, so a server that
//! never finishes a handshake delays nobody else.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::run_loop::Report;
use handset_phone::phone::TlsTarget;
use handset_phone::pin::CertFingerprint;
pub use handset_sip::transport::{Flow, Transport};

/// How long a TCP connect plus TLS handshake may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest UDP datagram read.
const MAX_DATAGRAM: usize = 65_535;
/// Messages queued for one connection before it counts as stuck.
const WRITE_QUEUE: usize = 256;

/// Why connecting failed. The text never includes message content.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    /// TCP connect failed.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// The TLS handshake failed (untrusted or mismatched certificate, protocol error).
    #[error("TLS handshake failed: {0}")]
    Tls(String),
    /// Connecting took longer than the limit.
    #[error("connect timed out")]
    Timeout,
    /// A CA file could not be read or held no certificate.
    #[error("cannot use CA file: {0}")]
    CaFile(String),
}

/// Builds a rustls client configuration trusting the public web roots plus, when given, the
/// certificates of a PEM CA file (private PBX CAs). The CA file's certificates and `pinned`
/// are also pinned: a server presenting one of them as its own certificate is accepted even
/// when it is self-signed and marked CA, its host name and validity still checked (see
/// [`crate::pinning`]).
pub fn tls_config(
    ca_file: Option<&Path>,
    pinned: Option<&CertFingerprint>,
) -> Result<Arc<rustls::ClientConfig>, TransportError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    let mut pins: Vec<CertFingerprint> = pinned.into_iter().copied().collect();
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
            pins.push(crate::pinning::fingerprint(&cert));
            roots
                .add(cert)
                .map_err(|e| TransportError::CaFile(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = crate::pinning::PinningVerifier::new(roots, pins, provider.clone())
        .map_err(|e| TransportError::Tls(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TransportError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The local address a packet to `remote` would leave from: found by connecting a throwaway
/// UDP socket, which sends nothing.
pub(crate) fn route_local_ip(remote: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if remote.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let probe = std::net::UdpSocket::bind(bind).ok()?;
    probe.connect(remote).ok()?;
    probe.local_addr().ok().map(|a| a.ip())
}

/// Our address toward `remote` from a socket bound at `bound` (the route's address when the
/// socket listens on every address).
pub(crate) fn local_toward(bound: SocketAddr, remote: SocketAddr) -> SocketAddr {
    let ip = if bound.ip().is_unspecified() {
        route_local_ip(remote).unwrap_or(bound.ip())
    } else {
        bound.ip()
    };
    SocketAddr::new(ip, bound.port())
}

/// The SIP UDP socket, non-blocking. An unspecified IPv4 address (`0.0.0.0`, the default)
/// becomes a dual-stack `[::]` socket, so IPv6-only networks (NAT64) work as well as IPv4 ones,
/// unless the system has no IPv6; any other address is bound as given.
pub(crate) fn bind_udp(bind: SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    if bind.ip() == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
        let dual = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP)).and_then(|s| {
            s.set_only_v6(false)?;
            s.bind(&SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), bind.port()).into())?;
            Ok(s)
        });
        match dual {
            Ok(socket) => {
                socket.set_nonblocking(true)?;
                return Ok(socket.into());
            }
            Err(error) => tracing::debug!(%error, "no dual-stack UDP socket: IPv4 only"),
        }
    }
    let socket = std::net::UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// `remote` as a socket bound at `bound` addresses it: IPv4 addresses become IPv4-mapped IPv6
/// ones (`::ffff:a.b.c.d`) on a dual-stack socket.
pub(crate) fn send_address(bound: SocketAddr, remote: SocketAddr) -> SocketAddr {
    match (bound, remote) {
        (SocketAddr::V6(_), SocketAddr::V4(v4)) => {
            SocketAddr::new(IpAddr::V6(v4.ip().to_ipv6_mapped()), v4.port())
        }
        _ => remote,
    }
}

/// A sender's address as the rest of Handset knows it: an IPv4-mapped IPv6 address (from a
/// dual-stack socket) is the IPv4 address it maps.
pub(crate) fn peer_address(from: SocketAddr) -> SocketAddr {
    match from {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(IpAddr::V4(v4), v6.port()),
            None => from,
        },
        SocketAddr::V4(_) => from,
    }
}

/// Reads the UDP socket for good. A full run loop drops datagrams (as the network may).
pub(crate) async fn read_udp(socket: Arc<UdpSocket>, reports: mpsc::Sender<Report>) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        let (len, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            // ICMP errors surface here on some systems; the socket itself is still fine.
            Err(_) => continue,
        };
        let flow = Flow::new(Transport::Udp, peer_address(from));
        let bytes = buf.get(..len).unwrap_or_default().to_vec();
        match reports.try_send(Report::Received { flow, bytes }) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!("run loop busy: datagram dropped");
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// The writing side of an open connection, kept by the run loop.
#[derive(Debug, Clone)]
pub(crate) struct Connection {
    outgoing: mpsc::Sender<Vec<u8>>,
}

impl Connection {
    /// Queues bytes; `false` when the connection is gone or stuck (its queue is full).
    pub(crate) fn send(&self, bytes: Vec<u8>) -> bool {
        self.outgoing.try_send(bytes).is_ok()
    }
}

/// Opens a TCP (and TLS) connection for `flow` and reports the outcome; the connection then
/// runs in a task of its own.
pub(crate) async fn connect(flow: Flow, tls: Option<TlsTarget>, reports: mpsc::Sender<Report>) {
    let attempt = async {
        let tcp = TcpStream::connect(flow.remote)
            .await
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        tcp.set_nodelay(true).ok();
        let local = tcp
            .local_addr()
            .map_err(|e| TransportError::Connect(e.to_string()))?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        if flow.transport == Transport::Tls {
            let target = tls.unwrap_or(TlsTarget {
                server_name: flow.remote.ip().to_string(),
                ca_file: None,
                pinned_sha256: None,
            });
            let config = tls_config(target.ca_file.as_deref(), target.pinned_sha256.as_ref())?;
            let name = ServerName::try_from(target.server_name)
                .map_err(|e| TransportError::Tls(format!("bad server name: {e}")))?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| TransportError::Tls(crate::pinning::describe(&e)))?;
            tokio::spawn(run_connection(stream, flow, rx, reports.clone()));
        } else {
            tokio::spawn(run_connection(tcp, flow, rx, reports.clone()));
        }
        Ok::<_, TransportError>((local, Connection { outgoing: tx }))
    };
    let report = match tokio::time::timeout(CONNECT_TIMEOUT, attempt).await {
        Ok(Ok((local, connection))) => Report::Connected {
            flow,
            local,
            connection,
        },
        Ok(Err(error)) => Report::ConnectFailed {
            flow,
            error: error.to_string(),
        },
        Err(_) => Report::ConnectFailed {
            flow,
            error: TransportError::Timeout.to_string(),
        },
    };
    let _ = reports.send(report).await;
}

/// Drives one TCP/TLS connection: writes what the run loop queues, passes on what arrives,
/// and reports the end. The connection ends when the run loop drops its [`Connection`].
async fn run_connection<S>(
    stream: S,
    flow: Flow,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    reports: mpsc::Sender<Report>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut buf = vec![0u8; 16 * 1024];
    let error: Option<String> = loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) => break None,
                Ok(n) => {
                    let bytes = buf.get(..n).unwrap_or_default().to_vec();
                    // Back-pressure: a busy run loop slows this reader, not the others.
                    if reports.send(Report::Received { flow, bytes }).await.is_err() {
                        return;
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
                // The run loop closed the connection.
                None => {
                    let _ = writer.shutdown().await;
                    return;
                }
            },
        }
    };
    let _ = writer.shutdown().await;
    let _ = reports.send(Report::Closed { flow, error }).await;
}
