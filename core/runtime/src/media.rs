//! The media task of one call: owns the RTP socket and the audio device, and drives the
//! sans-IO `MediaSession` with the device's 20 ms clock, the socket and the wall clock.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use handset_media::dtls_session::{DtlsMediaEvent, DtlsMediaSession};
use handset_media::rtcp::ntp_from_system_time;
use handset_media::sdp::Negotiated;
use handset_media::session::{MediaEvent, MediaSession, MediaTime, Transmit};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};

use crate::audio::{AudioDevice, AudioFrame};

pub use handset_media::stats::CallQuality;

enum Command {
    Update(Box<Negotiated>),
    Dtmf(String),
    Mute(bool),
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

    /// Mutes (`true`) or unmutes the microphone: while muted, silence is sent in place of
    /// what the device captures (the stream keeps flowing, so NATs and the peer's jitter
    /// buffer notice nothing).
    pub fn set_muted(&self, muted: bool) {
        let _ = self.commands.send(Command::Mute(muted));
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

/// A call's media: plain RTP / SDES-SRTP, or ICE + DTLS-SRTP.
pub enum CallMedia {
    /// RTP/AVP or RTP/SAVP with SDES keys.
    Plain(Box<MediaSession>),
    /// UDP/TLS/RTP/SAVP through ICE and DTLS.
    Dtls(Box<DtlsMediaSession>),
}

impl CallMedia {
    fn handle_capture(&mut self, start: Instant, frame: &[i16]) {
        let result = match self {
            CallMedia::Plain(s) => s.handle_capture(media_time(start), frame),
            CallMedia::Dtls(s) => s.handle_capture(Instant::now(), frame),
        };
        if let Err(error) = result {
            tracing::debug!(%error, "capture frame not sent");
        }
    }

    fn playout(&mut self, start: Instant, out: &mut Vec<i16>) {
        match self {
            CallMedia::Plain(s) => s.playout(media_time(start), out),
            CallMedia::Dtls(s) => s.playout(Instant::now(), out),
        }
    }

    fn handle_datagram(&mut self, start: Instant, from: SocketAddr, bytes: &[u8]) {
        match self {
            CallMedia::Plain(s) => s.handle_datagram(media_time(start), from, bytes),
            CallMedia::Dtls(s) => s.handle_datagram(Instant::now(), from, bytes),
        }
    }

    fn update(&mut self, negotiated: Negotiated) {
        let result = match self {
            CallMedia::Plain(s) => s.update(negotiated).map_err(|e| e.to_string()),
            CallMedia::Dtls(s) => s.update(&negotiated).map_err(|e| e.to_string()),
        };
        if let Err(error) = result {
            tracing::warn!(%error, "media update refused");
        }
    }

    fn send_dtmf(&mut self, start: Instant, digits: &str) {
        let result = match self {
            CallMedia::Plain(s) => s.send_dtmf(media_time(start), digits),
            CallMedia::Dtls(s) => s.send_dtmf(Instant::now(), digits),
        };
        if let Err(error) = result {
            tracing::info!(%error, "DTMF not sent");
        }
    }

    fn deadline(&self, start: Instant) -> Option<Instant> {
        match self {
            CallMedia::Plain(s) => s.poll_timeout().map(|at| start + at),
            CallMedia::Dtls(s) => s.poll_timeout(),
        }
    }

    fn handle_timeout(&mut self, start: Instant) {
        match self {
            CallMedia::Plain(s) => s.handle_timeout(media_time(start)),
            CallMedia::Dtls(s) => s.handle_timeout(Instant::now()),
        }
    }

    fn poll_transmit(&mut self) -> Option<Transmit> {
        match self {
            CallMedia::Plain(s) => s.poll_transmit(),
            CallMedia::Dtls(s) => s.poll_transmit(),
        }
    }

    /// The next event for the application; DTLS connection states are logged here.
    fn poll_event(&mut self) -> Option<Option<MediaEvent>> {
        match self {
            CallMedia::Plain(s) => s.poll_event().map(Some),
            CallMedia::Dtls(s) => s.poll_event().map(|e| match e {
                DtlsMediaEvent::Media(event) => Some(event),
                other => {
                    tracing::info!(event = ?other, "DTLS-SRTP media");
                    None
                }
            }),
        }
    }

    fn close(&mut self) {
        if let CallMedia::Dtls(s) = self {
            s.close(Instant::now());
        }
    }

    fn quality(&self) -> CallQuality {
        let (stats, mos, negotiated, dtls) = match self {
            CallMedia::Plain(s) => (s.stats(), s.mos(), s.negotiated(), false),
            CallMedia::Dtls(s) => (s.stats(), s.mos(), s.negotiated(), true),
        };
        CallQuality {
            stats,
            mos,
            codec: negotiated.codec.name.clone(),
            srtp: dtls || negotiated.srtp.is_some(),
        }
    }
}

/// Starts the media task. `events` receives DTMF digits and latching notices.
pub fn start(
    socket: Arc<UdpSocket>,
    mut session: CallMedia,
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
        let mut muted = false;
        let mut silence: Vec<i16> = Vec::new();
        loop {
            let timer = session.deadline(start);
            let sleep = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                frame = capture_rx.recv() => {
                    let Some(frame) = frame else { break };
                    if muted {
                        silence.clear();
                        silence.resize(frame.samples.len(), 0);
                        session.handle_capture(start, &silence);
                    } else {
                        session.handle_capture(start, &frame.samples);
                    }
                    // The device clock paces playout too: one frame out per frame in.
                    frame_out.clear();
                    session.playout(start, &mut frame_out);
                    playout.push(&frame_out);
                }
                received = socket.recv_from(&mut buf) => {
                    if let Ok((len, from)) = received {
                        session.handle_datagram(start, from, buf.get(..len).unwrap_or_default());
                    }
                }
                command = command_rx.recv() => match command {
                    Some(Command::Update(negotiated)) => session.update(*negotiated),
                    Some(Command::Dtmf(digits)) => session.send_dtmf(start, &digits),
                    Some(Command::Mute(on)) => muted = on,
                    Some(Command::Stop(reply)) => {
                        session.close();
                        while let Some(transmit) = session.poll_transmit() {
                            let _ = socket.send_to(&transmit.bytes, transmit.to).await;
                        }
                        // Stop the device first, so a WAV recording is complete when the
                        // application hears that the call ended.
                        device.stop();
                        let _ = reply.send(session.quality());
                        break;
                    }
                    None => break,
                },
                _ = sleep => session.handle_timeout(start),
            }
            while let Some(transmit) = session.poll_transmit() {
                let _ = socket.send_to(&transmit.bytes, transmit.to).await;
            }
            while let Some(event) = session.poll_event() {
                if let Some(event) = event {
                    let _ = events.send(event);
                }
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
