//! ICE candidate gathering for a call's RTP socket: the servers' names looked up, then
//! `handset_media::ice::Gatherer` driven with the socket (and, for TURN over TCP or TLS, a
//! stream to the TURN server) until it is done. What it found goes to the phone as
//! [`BoundMedia`]; the TURN allocation stays with the runtime for the call's media task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use handset_media::ice::{
    Gatherer, IcePolicy, StreamFramer, TurnClient, TurnServer, TurnTransport, TurnUrl,
};
use handset_phone::phone::{BoundMedia, IceGathering};
use handset_sip::transport::{ServerTarget, Transport};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

use crate::dns::SipResolver;
use handset_media::session::Transmit;

/// Frames queued toward or from a TURN server's stream; beyond them the stream counts as stuck.
const STREAM_QUEUE: usize = 256;

/// A call's TURN allocation, kept from gathering until its media runs (and then by the media
/// task).
pub(crate) struct Relay {
    /// The allocated client.
    pub(crate) client: TurnClient,
    /// The stream to the server when TURN runs over TCP or TLS.
    pub(crate) stream: Option<RelayStream>,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("relayed", &self.client.relayed_address())
            .field("stream", &self.stream.is_some())
            .finish()
    }
}

/// The byte stream to a TURN server over TCP or TLS, split into whole messages: what to send
/// goes to `outgoing`, what arrives comes from `incoming`. Dropping it closes the stream.
pub(crate) struct RelayStream {
    /// The TURN server's address: the sans-IO side's datagrams for it go over the stream, and
    /// its messages come in as datagrams from it.
    server: SocketAddr,
    outgoing: mpsc::Sender<Vec<u8>>,
    incoming: mpsc::Receiver<Vec<u8>>,
}

/// Sends a datagram of the Gatherer or the media session: over the TURN stream when it is for
/// the TURN server and one is open, else from the socket (a full stream queue drops it, as the
/// network may).
pub(crate) async fn send_transmit(
    socket: &UdpSocket,
    relay: Option<&RelayStream>,
    transmit: Transmit,
) {
    match relay {
        Some(stream) if transmit.to == stream.server => {
            if stream.outgoing.try_send(transmit.bytes).is_err() {
                tracing::debug!("TURN stream stuck: datagram dropped");
            }
        }
        _ => {
            let _ = socket.send_to(&transmit.bytes, transmit.to).await;
        }
    }
}

/// Gathers the candidates of `socket` (bound at `local`).
pub(crate) async fn gather(
    socket: Arc<UdpSocket>,
    local: SocketAddr,
    request: IceGathering,
    resolver: Arc<SipResolver>,
) -> Result<(BoundMedia, Option<Relay>), String> {
    let config = &request.config;
    let mut stun = Vec::new();
    for server in &config.stun {
        match lookup(&resolver, &server.host, server.port).await {
            Ok(found) => stun.extend(found),
            Err(error) => tracing::info!(%error, "STUN server not found"),
        }
    }
    let (turn, mut stream) = match config.turn.first() {
        Some(url) => match open_turn(&resolver, url, local, &request).await {
            Ok((server, stream)) => (Some(server), stream),
            Err(error) if config.policy == IcePolicy::Relay => {
                return Err(format!("no TURN relay: {error}"));
            }
            Err(error) => {
                tracing::info!(%error, "TURN server unusable: no relayed candidate");
                (None, None)
            }
        },
        None => (None, None),
    };
    let mut gatherer = Gatherer::new(
        Instant::now(),
        local,
        &stun,
        turn,
        config.policy,
        &mut rand::rng(),
    );
    let mut buf = vec![0u8; 2048];
    loop {
        while let Some(transmit) = gatherer.poll_transmit() {
            send_transmit(&socket, stream.as_ref(), transmit).await;
        }
        let Some(at) = gatherer.poll_timeout() else {
            break;
        };
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                if let Ok((len, from)) = received {
                    gatherer.handle_datagram(Instant::now(), from, buf.get(..len).unwrap_or_default());
                }
            }
            frame = next_frame(&mut stream) => match frame {
                Some((server, frame)) => {
                    gatherer.handle_datagram(Instant::now(), server, &frame);
                }
                // The stream ended: the relay is lost.
                None => stream = None,
            },
            _ = tokio::time::sleep_until(at.into()) => gatherer.handle_timeout(Instant::now()),
        }
    }
    let gathered = gatherer.finish();
    if let Some(error) = &gathered.relay_error {
        tracing::info!(%error, "no relayed candidate");
    }
    if config.policy == IcePolicy::Relay && gathered.relay.is_none() {
        let why = gathered
            .relay_error
            .map(|e| e.to_string())
            .unwrap_or_else(|| "no TURN server".into());
        return Err(format!("no TURN relay: {why}"));
    }
    let relay = gathered.relay.map(|client| Relay { client, stream });
    Ok((
        BoundMedia {
            local,
            candidates: gathered.candidates,
        },
        relay,
    ))
}

/// The next frame from a TURN stream, with the server's address; `None` when the stream
/// ended; never resolves without a stream.
pub(crate) async fn next_frame(stream: &mut Option<RelayStream>) -> Option<(SocketAddr, Vec<u8>)> {
    match stream {
        Some(stream) => stream
            .incoming
            .recv()
            .await
            .map(|frame| (stream.server, frame)),
        None => std::future::pending().await,
    }
}

/// Every address of a STUN or TURN server's name (an IP literal as it is).
async fn lookup(resolver: &SipResolver, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
    let target = ServerTarget {
        host: host.to_owned(),
        port: Some(port),
        transport: Some(Transport::Udp),
        sips: false,
    };
    let found = resolver.resolve(&target).await.map_err(|e| e.to_string())?;
    Ok(found.into_iter().map(|t| t.addr).collect())
}

/// Finds the TURN server (of our socket's address family) and, over TCP or TLS, connects.
async fn open_turn(
    resolver: &SipResolver,
    url: &TurnUrl,
    local: SocketAddr,
    request: &IceGathering,
) -> Result<(TurnServer, Option<RelayStream>), String> {
    let addresses = lookup(resolver, &url.host, url.port).await?;
    let address = addresses
        .into_iter()
        .find(|a| a.is_ipv4() == local.is_ipv4())
        .ok_or_else(|| format!("{} has no address of our family", url.host))?;
    let server = url.server(address);
    let stream = match url.transport {
        TurnTransport::Udp => None,
        TurnTransport::Tcp | TurnTransport::Tls => {
            Some(connect_stream(url, address, local, request).await?)
        }
    };
    Ok((server, stream))
}

/// Connects to a TURN server over TCP (from our socket's address) or TLS (verified like the
/// account's SIP TLS), and runs the stream in a task of its own.
async fn connect_stream(
    url: &TurnUrl,
    address: SocketAddr,
    local: SocketAddr,
    request: &IceGathering,
) -> Result<RelayStream, String> {
    let connect = async {
        let socket = if address.is_ipv4() {
            tokio::net::TcpSocket::new_v4()
        } else {
            tokio::net::TcpSocket::new_v6()
        }
        .map_err(|e| e.to_string())?;
        socket
            .bind(SocketAddr::new(local.ip(), 0))
            .map_err(|e| e.to_string())?;
        let tcp: TcpStream = socket.connect(address).await.map_err(|e| e.to_string())?;
        tcp.set_nodelay(true).ok();
        let (outgoing, outgoing_rx) = mpsc::channel(STREAM_QUEUE);
        let (incoming_tx, incoming) = mpsc::channel(STREAM_QUEUE);
        if url.transport == TurnTransport::Tls {
            let config = crate::transport::tls_config(
                request.ca_file.as_deref(),
                request.pinned_sha256.as_ref(),
            )
            .map_err(|e| e.to_string())?;
            let name = ServerName::try_from(url.host.clone())
                .map_err(|e| format!("bad TURN server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TURN TLS: {}", crate::pinning::describe(&e)))?;
            tokio::spawn(run_stream(tls, outgoing_rx, incoming_tx));
        } else {
            tokio::spawn(run_stream(tcp, outgoing_rx, incoming_tx));
        }
        Ok::<_, String>(RelayStream {
            server: address,
            outgoing,
            incoming,
        })
    };
    tokio::time::timeout(handset_media::ice::GATHER_TIMEOUT, connect)
        .await
        .map_err(|_| "TURN server did not accept the connection in time".to_string())?
}

/// Moves bytes between a TURN stream and its queues, splitting what arrives into messages.
async fn run_stream<S>(
    stream: S,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    incoming: mpsc::Sender<Vec<u8>>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut reader, mut writer) = tokio::io::split(stream);
    let mut framer = StreamFramer::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = reader.read(&mut buf) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if framer.push(buf.get(..n).unwrap_or_default()).is_err() {
                        tracing::info!("TURN stream out of step: closed");
                        break;
                    }
                    while let Some(frame) = framer.next_frame() {
                        if incoming.send(frame).await.is_err() {
                            return;
                        }
                    }
                }
            },
            bytes = outgoing.recv() => match bytes {
                Some(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        break;
                    }
                }
                None => break,
            },
        }
    }
    let _ = writer.shutdown().await;
}
