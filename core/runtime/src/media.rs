//! The media task of one call: owns the RTP socket and the audio device, and drives the
//! sans-IO `MediaSession` with the device's 20 ms clock, the socket and the wall clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use handset_media::rtcp::ntp_from_system_time;
use handset_media::sdp::Negotiated;
use handset_media::session::{MediaEvent, MediaSession, MediaTime};
use handset_media::stats::MediaStats;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::audio::{AudioDevice, AudioFrame};

/// Statistics and quality of a call's audio, as reported at the end and on request.
#[derive(Debug, Clone, PartialEq)]
pub struct CallQuality {
    /// Counters under the WebRTC names.
    pub stats: MediaStats,
    /// E-model MOS estimate of what we received.
    pub mos: f64,
    /// Codec in use.
    pub codec: String,
    /// Whether SRTP protected the media.
    pub srtp: bool,
}

enum Command {
    Update(Box<Negotiated>),
    Dtmf(String),
    Stop(oneshot::Sender<CallQuality>),
}

/// Controls a running media task.
pub struct MediaHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl MediaHandle {
    /// Applies a renegotiation (hold, resume, new remote address).
    pub fn update(&self, negotiated: Negotiated) {
        let _ = self.commands.send(Command::Update(Box::new(negotiated)));
    }

    /// Sends DTMF digits as RFC 4733 events.
    pub fn send_dtmf(&self, digits: &str) {
        let _ = self.commands.send(Command::Dtmf(digits.to_string()));
    }

    /// Stops the task and returns the final quality figures.
    pub async fn stop(self) -> Option<CallQuality> {
        let (tx, rx) = oneshot::channel();
        self.commands.send(Command::Stop(tx)).ok()?;
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    }
}

fn media_time(start: Instant) -> MediaTime {
    MediaTime {
        mono: start.elapsed(),
        ntp: ntp_from_system_time(SystemTime::now()).unwrap_or(0),
    }
}

fn quality(session: &MediaSession) -> CallQuality {
    CallQuality {
        stats: session.stats(),
        mos: session.mos(),
        codec: session.negotiated().codec.name.clone(),
        srtp: session.negotiated().srtp.is_some(),
    }
}

/// Starts the media task. `events` receives DTMF digits and latching notices.
pub fn start(
    socket: Arc<UdpSocket>,
    mut session: MediaSession,
    mut device: Box<dyn AudioDevice>,
    events: mpsc::UnboundedSender<MediaEvent>,
) -> Result<MediaHandle, crate::audio::AudioError> {
    let (capture_tx, mut capture_rx) = mpsc::channel::<AudioFrame>(50);
    let playout = device.start(capture_tx)?;
    let (commands, mut command_rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let start = Instant::now();
        let mut buf = vec![0u8; 2048];
        let mut frame_out = Vec::with_capacity(960);
        loop {
            let timer = session.poll_timeout();
            let sleep = async {
                match timer {
                    Some(at) => tokio::time::sleep_until((start + at).into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = capture_rx.recv() => {
                    let Some(frame) = frame else { break };
                    let now = media_time(start);
                    if let Err(error) = session.handle_capture(now, &frame.samples) {
                        tracing::debug!(%error, "capture frame not sent");
                    }
                    // The device clock paces playout too: one frame out per frame in.
                    frame_out.clear();
                    session.playout(now, &mut frame_out);
                    playout.push(&frame_out);
                }
                received = socket.recv_from(&mut buf) => {
                    if let Ok((len, from)) = received {
                        session.handle_datagram(media_time(start), from, &buf[..len]);
                    }
                }
                command = command_rx.recv() => match command {
                    Some(Command::Update(negotiated)) => {
                        if let Err(error) = session.update(*negotiated) {
                            tracing::warn!(%error, "media update refused");
                        }
                    }
                    Some(Command::Dtmf(digits)) => {
                        if let Err(error) = session.send_dtmf(media_time(start), &digits) {
                            tracing::info!(%error, "DTMF not sent");
                        }
                    }
                    Some(Command::Stop(reply)) => {
                        let _ = reply.send(quality(&session));
                        break;
                    }
                    None => break,
                },
                _ = sleep => session.handle_timeout(media_time(start)),
            }
            while let Some(transmit) = session.poll_transmit() {
                let _ = socket.send_to(&transmit.bytes, transmit.to).await;
            }
            while let Some(event) = session.poll_event() {
                let _ = events.send(event);
            }
        }
        device.stop();
    });
    Ok(MediaHandle { commands })
}

/// Binds an RTP socket on `ip` (port chosen by the system).
pub async fn bind_rtp(ip: std::net::IpAddr) -> std::io::Result<(Arc<UdpSocket>, SocketAddr)> {
    let socket = UdpSocket::bind(SocketAddr::new(ip, 0)).await?;
    let local = socket.local_addr()?;
    Ok((Arc::new(socket), local))
}
