//! The PBX's sockets: one UDP socket and one TCP listener on the same address. They only move
//! bytes: every datagram and every chunk read from a TCP connection goes to the driver as an
//! [`Incoming`], unparsed (the machine frames and parses); bytes to send go out unchanged.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use handset_sip::transport::{Flow, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::{mpsc, watch};

/// Largest UDP datagram read.
const MAX_DATAGRAM: usize = 65_535;
/// Largest chunk read from a TCP connection at once.
const READ_CHUNK: usize = 16 * 1024;

/// What the socket tasks report to the driver.
pub(crate) enum Incoming {
    /// A datagram, or bytes read from a connection.
    Received { flow: Flow, bytes: Vec<u8> },
    /// A TCP connection was accepted; `writer` sends bytes on it.
    Connected {
        flow: Flow,
        writer: mpsc::UnboundedSender<Vec<u8>>,
    },
    /// A TCP connection ended.
    Closed { flow: Flow },
}

/// The sockets and the live TCP connections.
pub(crate) struct Transports {
    udp: Arc<UdpSocket>,
    connections: HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>,
}

impl Transports {
    /// Binds UDP and TCP on `bind` (the same port for both; with port 0 a port free for both
    /// is searched) and starts the reader tasks. They stop when `shutdown`'s sender is dropped.
    pub(crate) async fn bind(
        bind: SocketAddr,
        incoming: mpsc::UnboundedSender<Incoming>,
        shutdown: watch::Receiver<()>,
    ) -> std::io::Result<(Transports, SocketAddr)> {
        let mut attempt = 0;
        let (udp, tcp) = loop {
            attempt += 1;
            let udp = UdpSocket::bind(bind).await?;
            let local = udp.local_addr()?;
            match TcpListener::bind(local).await {
                Ok(tcp) => break (udp, tcp),
                Err(e) if bind.port() != 0 || attempt >= 20 => return Err(e),
                Err(_) => continue,
            }
        };
        let local = udp.local_addr()?;
        let udp = Arc::new(udp);
        tokio::spawn(udp_reader(udp.clone(), incoming.clone(), shutdown.clone()));
        tokio::spawn(tcp_acceptor(tcp, incoming, shutdown));
        Ok((
            Transports {
                udp,
                connections: HashMap::new(),
            },
            local,
        ))
    }

    /// Remembers an accepted connection.
    pub(crate) fn add_connection(
        &mut self,
        remote: SocketAddr,
        writer: mpsc::UnboundedSender<Vec<u8>>,
    ) {
        self.connections.insert(remote, writer);
    }

    /// Forgets a connection; if it is still open, its task sees the writer gone and closes
    /// it.
    pub(crate) fn close(&mut self, remote: &SocketAddr) {
        self.connections.remove(remote);
    }

    /// Sends `bytes` on `flow`. Failures are logged and otherwise ignored: the transaction
    /// concerned times out like after a loss.
    pub(crate) async fn send(&self, flow: &Flow, bytes: Vec<u8>) {
        match flow.transport {
            Transport::Udp => {
                if let Err(error) = self.udp.send_to(&bytes, flow.remote).await {
                    tracing::debug!(%error, "UDP send failed");
                }
            }
            // Stream peers are TCP connections accepted on the listener (the PBX serves no TLS).
            Transport::Tcp | Transport::Tls => match self.connections.get(&flow.remote) {
                Some(writer) => {
                    if writer.send(bytes).is_err() {
                        tracing::debug!("TCP connection gone");
                    }
                }
                None => tracing::debug!("no TCP connection to that peer"),
            },
        }
    }
}

async fn udp_reader(
    socket: Arc<UdpSocket>,
    incoming: mpsc::UnboundedSender<Incoming>,
    mut shutdown: watch::Receiver<()>,
) {
    let mut buf = vec![0u8; MAX_DATAGRAM];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((len, remote)) = received else { continue };
                let Some(bytes) = buf.get(..len) else { continue };
                let flow = Flow { transport: Transport::Udp, remote };
                let item = Incoming::Received { flow, bytes: bytes.to_vec() };
                if incoming.send(item).is_err() {
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn tcp_acceptor(
    listener: TcpListener,
    incoming: mpsc::UnboundedSender<Incoming>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, remote)) = accepted else { continue };
                let flow = Flow { transport: Transport::Tcp, remote };
                let (writer, writes) = mpsc::unbounded_channel();
                // Announced before the connection task starts, so it is known before any of
                // its bytes arrive (same channel, FIFO).
                if incoming.send(Incoming::Connected { flow, writer }).is_err() {
                    return;
                }
                tokio::spawn(connection(stream, flow, incoming.clone(), writes, shutdown.clone()));
            }
            _ = shutdown.changed() => return,
        }
    }
}

async fn connection(
    stream: TcpStream,
    flow: Flow,
    incoming: mpsc::UnboundedSender<Incoming>,
    mut writes: mpsc::UnboundedReceiver<Vec<u8>>,
    mut shutdown: watch::Receiver<()>,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => {
                let bytes = match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.get(..n).unwrap_or_default().to_vec(),
                };
                if incoming.send(Incoming::Received { flow, bytes }).is_err() {
                    return;
                }
            }
            data = writes.recv() => match data {
                Some(data) => {
                    if writer.write_all(&data).await.is_err() {
                        break;
                    }
                }
                // The driver closed the connection (or stopped).
                None => break,
            },
            _ = shutdown.changed() => return,
        }
    }
    let _ = incoming.send(Incoming::Closed { flow });
}
