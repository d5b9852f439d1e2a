//! The media task of one call: owns the RTP socket and the audio device, and drives the
//! sans-IO `MediaSession` (plain RTP, SDES-SRTP or ICE + DTLS-SRTP alike) with the device's
//! 20 ms clock, the socket and the clocks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use handset_media::ice::IceSetup;
use handset_media::rtcp::ntp_from_system_time;
use handset_media::sdp::{Negotiated, SessionDescription};
use handset_media::session::{MediaSession, MediaTime};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::audio::{AudioDevice, AudioFrame};
use crate::gather::{RelayStream, next_frame, send_transmit};
use crate::run_loop::Report;
use handset_phone::phone::CallId;

pub use handset_media::stats::CallQuality;

enum Command {
    Update(Box<Negotiated>),
    Socket(Arc<UdpSocket>),
    RestartIce(Box<IceRestart>),
    Dtmf(String),
    Mute(bool),
    Stop(oneshot::Sender<CallQuality>),
}

/// What an ICE restart of a running call needs (see [`MediaHandle::restart_ice`]).
pub(crate) struct IceRestart {
    /// The socket to use from now on (the one the call has, or a new one).
    pub(crate) socket: Arc<UdpSocket>,
    /// The stream to a new TURN allocation's server over TCP or TLS.
    pub(crate) relay_stream: Option<RelayStream>,
    /// The socket's address.
    pub(crate) local: SocketAddr,
    /// Our new credentials and candidates, with a new TURN allocation if there is one.
    pub(crate) setup: IceSetup,
    /// What the renegotiation settled.
    pub(crate) negotiated: Negotiated,
    /// The peer's description.
    pub(crate) remote: Option<SessionDescription>,
}

/// Commands waiting for a media task; beyond them the task counts as stuck.
const COMMAND_QUEUE: usize = 64;

/// Controls a running media task.
pub struct MediaHandle {
    commands: mpsc::Sender<Command>,
}

impl MediaHandle {
    /// Applies a renegotiation (hold, resume, new remote address).
    pub fn update(&self, negotiated: Negotiated) {
        self.send(Command::Update(Box::new(negotiated)));
    }

    /// Sends and receives on `socket` from now on (the call moved to another network); the
    /// old socket closes.
    pub fn switch_socket(&self, socket: Arc<UdpSocket>) {
        self.send(Command::Socket(socket));
    }

    /// Restarts ICE (after a network change, or because the peer restarted), moving to
    /// `restart.socket`; a new TURN allocation replaces the old one and its stream.
    pub(crate) fn restart_ice(&self, restart: IceRestart) {
        self.send(Command::RestartIce(Box::new(restart)));
    }

    /// Sends DTMF digits as RFC 4733 events.
    pub fn send_dtmf(&self, digits: &str) {
        self.send(Command::Dtmf(digits.to_string()));
    }

    /// Mutes (`true`) or unmutes the microphone: while muted, silence is sent in place of
    /// what the device captures (the stream keeps flowing, so NATs and the peer's jitter
    /// buffer notice nothing).
    pub fn set_muted(&self, muted: bool) {
        self.send(Command::Mute(muted));
    }

    fn send(&self, command: Command) {
        if self.commands.try_send(command).is_err() {
            tracing::warn!("media command dropped: the media task is gone or stuck");
        }
    }

    /// Stops the task and returns the final quality figures.
    pub async fn stop(self) -> Option<CallQuality> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Stop(tx)).await.ok()?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    }
}

/// Reads both clocks a media session needs: monotonic time and the wall clock as NTP.
pub fn media_now() -> MediaTime {
    MediaTime::new(
        Instant::now(),
        ntp_from_system_time(SystemTime::now()).unwrap_or(0),
    )
}

/// Statistics and quality of a session, as reported when it ends.
fn quality(session: &MediaSession) -> CallQuality {
    CallQuality {
        stats: session.stats(),
        mos: session.mos(),
        codec: session.negotiated().codec.name.clone(),
        srtp: session.is_encrypted(),
    }
}

/// Starts the media task of `call`. Its session's events (DTMF digits, latching notices,
/// connection states) go to the run loop as reports; a panic in the task is reported as the
/// media failing, so the call ends instead of going silent.
///
/// With TURN over TCP or TLS, `relay` is the stream to the TURN server: the session's
/// datagrams for the server go over it, and its messages come in as datagrams from it.
pub(crate) fn start(
    call: CallId,
    mut socket: Arc<UdpSocket>,
    mut session: MediaSession,
    mut device: Box<dyn AudioDevice>,
    reports: mpsc::Sender<Report>,
    mut relay: Option<RelayStream>,
) -> Result<MediaHandle, crate::audio::AudioError> {
    let (capture_tx, mut capture_rx) = mpsc::channel::<AudioFrame>(50);
    let playout = device.start(capture_tx)?;
    let (commands, mut command_rx) = mpsc::channel(COMMAND_QUEUE);
    let events = reports.clone();
    let task = tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        let mut frame_out = Vec::with_capacity(960);
        let mut muted = false;
        let mut silence: Vec<i16> = Vec::new();
        loop {
            let mut next_socket = None;
            let timer = session.poll_timeout();
            let sleep = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = capture_rx.recv() => {
                    let Some(frame) = frame else { break };
                    let now = media_now();
                    let captured = if muted {
                        silence.clear();
                        silence.resize(frame.samples.len(), 0);
                        &silence
                    } else {
                        &frame.samples
                    };
                    if let Err(error) = session.handle_capture(now, captured) {
                        tracing::debug!(%error, "capture frame not sent");
                    }
                    // The device clock paces playout too: one frame out per frame in.
                    frame_out.clear();
                    session.playout(now, &mut frame_out);
                    playout.push(&frame_out);
                }
                received = socket.recv_from(&mut buf) => {
                    if let Ok((len, from)) = received {
                        session.handle_datagram(media_now(), from, buf.get(..len).unwrap_or_default());
                    }
                }
                frame = next_frame(&mut relay) => match frame {
                    Some((server, frame)) => session.handle_datagram(media_now(), server, &frame),
                    None => {
                        tracing::info!(%call, "the stream to the TURN server ended");
                        relay = None;
                    }
                },
                command = command_rx.recv() => match command {
                    Some(Command::Update(negotiated)) => {
                        if let Err(error) = session.update(&negotiated) {
                            tracing::warn!(%error, "media update refused");
                        }
                    }
                    Some(Command::Socket(new)) => next_socket = Some(new),
                    Some(Command::RestartIce(restart)) => {
                        let IceRestart { socket: new, relay_stream, local, setup, negotiated, remote } = *restart;
                        let new_relay = setup.relay.is_some();
                        match session.restart_ice(media_now(), local, setup, &negotiated, remote.as_ref()) {
                            Ok(()) => {
                                next_socket = Some(new);
                                if new_relay {
                                    relay = relay_stream;
                                }
                            }
                            Err(error) => tracing::warn!(%error, "ICE restart refused"),
                        }
                    }
                    Some(Command::Dtmf(digits)) => {
                        if let Err(error) = session.send_dtmf(media_now(), &digits) {
                            tracing::info!(%error, "DTMF not sent");
                        }
                    }
                    Some(Command::Mute(on)) => muted = on,
                    Some(Command::Stop(reply)) => {
                        session.close(media_now());
                        while let Some(transmit) = session.poll_transmit() {
                            send_transmit(&socket, relay.as_ref(), transmit).await;
                        }
                        // Stop the device first, so a WAV recording is complete when the
                        // application hears that the call ended.
                        device.stop();
                        let _ = reply.send(quality(&session));
                        break;
                    }
                    None => break,
                },
                _ = sleep => session.handle_timeout(media_now()),
            }
            if let Some(new) = next_socket {
                socket = new;
            }
            while let Some(transmit) = session.poll_transmit() {
                send_transmit(&socket, relay.as_ref(), transmit).await;
            }
            while let Some(event) = session.poll_event() {
                // Events are rare (digits, state changes); a run loop that cannot take one
                // now is overloaded, and the media must not wait for it.
                if events.try_send(Report::Media { call, event }).is_err() {
                    tracing::warn!(%call, "media event dropped: the run loop is behind");
                }
            }
        }
        device.stop();
    });
    tokio::spawn(async move {
        if let Err(error) = task.await
            && error.is_panic()
        {
            tracing::error!(%call, "the media task panicked");
            let _ = reports
                .send(Report::MediaFailed {
                    call,
                    error: "internal error in the media task".into(),
                })
                .await;
        }
    });
    Ok(MediaHandle { commands })
}

/// Binds an RTP socket on `ip` (port chosen by the system).
pub async fn bind_rtp(ip: std::net::IpAddr) -> std::io::Result<(Arc<UdpSocket>, SocketAddr)> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let local = socket.local_addr()?;
    Ok((Arc::new(socket), local))
}
