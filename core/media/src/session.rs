//! One call's audio stream, sans-IO: capture frames in, RTP/SRTP datagrams out; datagrams in,
//! playout frames out; RTCP reports, RFC 4733 DTMF both ways, symmetric RTP latching and
//! WebRTC-named statistics.
//!
//! The runtime owns the socket and the audio device and calls, every 20 ms,
//! [`MediaSession::handle_capture`] and [`MediaSession::playout`]; it feeds every datagram to
//! [`MediaSession::handle_datagram`] and sends what [`MediaSession::poll_transmit`] yields.
//! Device-side audio is 48 kHz mono in 20 ms frames (960 samples); the session resamples to
//! and from the codec's clock rate.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use crate::codec::dtmf::{DtmfPacket, DtmfReceiver, DtmfSender, DtmfSenderConfig};
use crate::codec::resample::Resampler;
use crate::codec::{CodecError, Decoder, Encoder, codec_for};
use crate::jitter::{JitterBuffer, JitterConfig, Playout};
use crate::rtcp::{self, CompoundPacket, ReceptionStats, RtcpPacket, SenderInfo};
use crate::rtp::{RtpPacket, is_rtcp};
use crate::sdp::{Negotiated, SrtpSuite as SdpSuite};
use crate::srtp::{SrtpContext, SrtpSuite};
use crate::stats::{CodecImpairment, MediaStats};

/// Device-side sample rate.
pub const DEVICE_RATE: u32 = 48_000;
/// Samples in one 20 ms device frame.
pub const DEVICE_FRAME: usize = 960;
/// Frame duration.
pub const FRAME: Duration = Duration::from_millis(20);
/// Interval between RTCP reports (RFC 3550's 5 s minimum).
pub const RTCP_INTERVAL: Duration = Duration::from_secs(5);
/// Static payload type of comfort noise (RFC 3389), ignored on receive.
const PT_CN: u8 = 13;

/// The clock as the session sees it: monotonic time since the session started (for jitter
/// and scheduling) and the wall clock as a 64-bit NTP timestamp (for RTCP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaTime {
    /// Monotonic time.
    pub mono: Duration,
    /// Wall clock, NTP format.
    pub ntp: u64,
}

/// A datagram to send.
#[derive(Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Destination.
    pub to: SocketAddr,
    /// Bytes (RTP, SRTP, RTCP or SRTCP).
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transmit")
            .field("to", &self.to)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// Something the application should know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaEvent {
    /// A DTMF digit arrived (RFC 4733).
    Dtmf {
        /// The digit (`0-9`, `*`, `#`, `A-D`).
        digit: char,
    },
    /// Media now goes to where the peer's packets come from (symmetric RTP).
    Latched {
        /// The new remote RTP address.
        remote: SocketAddr,
    },
}

/// Why a session could not be set up or a request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MediaError {
    /// The negotiated codec has no implementation here.
    #[error("unsupported codec {0}")]
    UnsupportedCodec(String),
    /// A codec failed to initialise or encode.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// DTMF cannot be sent: no telephone-event was negotiated.
    #[error("the peer did not negotiate telephone-event")]
    NoTelephoneEvent,
}

/// Counters of what was dropped and why (not WebRTC statistics, but useful in tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DropCounters {
    /// Datagrams that were neither RTP nor RTCP.
    pub malformed: u64,
    /// SRTP/SRTCP packets that failed authentication.
    pub auth_failed: u64,
    /// SRTP/SRTCP replays.
    pub replayed: u64,
    /// RTP with a payload type that was not negotiated.
    pub unknown_payload: u64,
}

/// One call's audio stream.
pub struct MediaSession {
    negotiated: Negotiated,
    encoder: Box<dyn Encoder>,
    decoder: Box<dyn Decoder>,
    codec_rate: u32,
    codec_frame: usize,
    to_codec: Option<Resampler>,
    to_device: Option<Resampler>,
    ssrc: u32,
    cname: String,
    seq: u16,
    timestamp: u32,
    first_packet: bool,
    srtp_tx: Option<SrtpContext>,
    srtp_rx: Option<SrtpContext>,
    remote_rtp: SocketAddr,
    remote_rtcp: SocketAddr,
    latched: bool,
    jitter: JitterBuffer,
    reception: Option<ReceptionStats>,
    dtmf_rx: DtmfReceiver,
    dtmf_queue: VecDeque<(Duration, DtmfPacket)>,
    next_rtcp: Option<Duration>,
    sent_since_report: bool,
    octets_sent: u32,
    stats: MediaStats,
    drops: DropCounters,
    transmits: VecDeque<Transmit>,
    events: VecDeque<MediaEvent>,
    scratch: Vec<i16>,
}

impl fmt::Debug for MediaSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MediaSession")
            .field("codec", &self.negotiated.codec.name)
            .field("ssrc", &self.ssrc)
            .field("srtp", &self.srtp_tx.is_some())
            .field("remote_rtp", &self.remote_rtp)
            .finish_non_exhaustive()
    }
}

fn srtp_suite(suite: SdpSuite) -> SrtpSuite {
    match suite {
        SdpSuite::AesCm128HmacSha1_80 => SrtpSuite::AesCm128HmacSha1_80,
        SdpSuite::AesCm128HmacSha1_32 => SrtpSuite::AesCm128HmacSha1_32,
    }
}

impl MediaSession {
    /// A session for what offer/answer negotiated. `ssrc`, `initial_seq` and
    /// `initial_timestamp` should be random (RFC 3550 §5.1); `cname` names this endpoint in
    /// RTCP.
    pub fn new(
        negotiated: Negotiated,
        ssrc: u32,
        initial_seq: u16,
        initial_timestamp: u32,
        cname: impl Into<String>,
    ) -> Result<MediaSession, MediaError> {
        let codec = &negotiated.codec;
        let (encoder, decoder) = codec_for(
            &codec.name,
            codec.clock_rate,
            codec.channels,
            codec.fmtp.as_deref(),
        )
        .ok_or_else(|| MediaError::UnsupportedCodec(codec.name.clone()))?;
        let codec_rate = encoder.clock_rate();
        let codec_frame = encoder.frame_samples();
        let (to_codec, to_device) = if codec_rate == DEVICE_RATE {
            (None, None)
        } else {
            (
                Some(Resampler::new(DEVICE_RATE, codec_rate)?),
                Some(Resampler::new(codec_rate, DEVICE_RATE)?),
            )
        };
        let (srtp_tx, srtp_rx) = match &negotiated.srtp {
            Some(pair) => {
                let suite = srtp_suite(pair.suite);
                (
                    Some(SrtpContext::new(
                        suite,
                        &pair.local.master_key,
                        &pair.local.master_salt,
                    )),
                    Some(SrtpContext::new(
                        suite,
                        &pair.remote.master_key,
                        &pair.remote.master_salt,
                    )),
                )
            }
            None => (None, None),
        };
        let jitter = JitterBuffer::new(JitterConfig::new(codec_rate, FRAME));
        Ok(MediaSession {
            remote_rtp: negotiated.remote_rtp,
            remote_rtcp: if negotiated.rtcp_mux {
                negotiated.remote_rtp
            } else {
                negotiated.remote_rtcp
            },
            negotiated,
            encoder,
            decoder,
            codec_rate,
            codec_frame,
            to_codec,
            to_device,
            ssrc,
            cname: cname.into(),
            seq: initial_seq,
            timestamp: initial_timestamp,
            first_packet: true,
            srtp_tx,
            srtp_rx,
            latched: false,
            jitter,
            reception: None,
            dtmf_rx: DtmfReceiver::new(),
            dtmf_queue: VecDeque::new(),
            next_rtcp: None,
            sent_since_report: false,
            octets_sent: 0,
            stats: MediaStats::default(),
            drops: DropCounters::default(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            scratch: Vec::with_capacity(DEVICE_FRAME),
        })
    }

    /// Applies a new negotiation of the same stream (re-INVITE: hold, resume, new address).
    /// Keys and codec stay as they are unless they changed; the RTP sequence continues.
    pub fn update(&mut self, negotiated: Negotiated) -> Result<(), MediaError> {
        if negotiated.codec != self.negotiated.codec || negotiated.srtp != self.negotiated.srtp {
            let mut fresh = MediaSession::new(
                negotiated,
                self.ssrc,
                self.seq,
                self.timestamp,
                self.cname.clone(),
            )?;
            fresh.stats = self.stats.clone();
            *self = fresh;
            return Ok(());
        }
        if negotiated.remote_rtp != self.negotiated.remote_rtp {
            self.remote_rtp = negotiated.remote_rtp;
            self.latched = false;
        }
        self.remote_rtcp = if negotiated.rtcp_mux {
            self.remote_rtp
        } else {
            negotiated.remote_rtcp
        };
        self.negotiated = negotiated;
        Ok(())
    }

    /// What was negotiated.
    pub fn negotiated(&self) -> &Negotiated {
        &self.negotiated
    }

    /// Where RTP currently goes.
    pub fn remote_rtp(&self) -> SocketAddr {
        self.remote_rtp
    }

    /// Our SSRC.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Whether media is sent (not on hold, direction allows it).
    pub fn sending(&self) -> bool {
        self.negotiated.direction.can_send() && !self.negotiated.hold
    }

    /// Encodes one captured 20 ms frame (960 samples at 48 kHz) and queues the packet. On hold,
    /// or while a DTMF event is being sent, nothing is sent but the RTP clock still advances.
    pub fn handle_capture(&mut self, now: MediaTime, frame: &[i16]) -> Result<(), MediaError> {
        self.schedule_rtcp(now);
        self.send_due_dtmf(now);
        let dtmf_active = !self.dtmf_queue.is_empty();
        if self.sending() && !dtmf_active {
            self.scratch.clear();
            let pcm: &[i16] = match &mut self.to_codec {
                Some(resampler) => {
                    resampler.process(frame, &mut self.scratch);
                    self.scratch.resize(self.codec_frame, 0);
                    &self.scratch
                }
                None => frame,
            };
            let mut payload = Vec::with_capacity(200);
            self.encoder.encode(pcm, &mut payload)?;
            let mut packet = RtpPacket::new(
                self.negotiated.codec.pt,
                self.seq,
                self.timestamp,
                self.ssrc,
            );
            packet.marker = self.first_packet;
            packet.payload = payload;
            self.first_packet = false;
            self.send_rtp(&packet);
        }
        self.timestamp = self.timestamp.wrapping_add(self.codec_frame as u32);
        Ok(())
    }

    /// Queues RFC 4733 events for `digits`, starting now.
    pub fn send_dtmf(&mut self, now: MediaTime, digits: &str) -> Result<(), MediaError> {
        let format = self
            .negotiated
            .telephone_event
            .as_ref()
            .ok_or(MediaError::NoTelephoneEvent)?;
        let clock = format.clock_rate;
        let sender = DtmfSender::new(DtmfSenderConfig::new(clock, FRAME))?;
        // The event timestamp is the audio clock converted to the event's rate.
        let base = if clock == self.codec_rate {
            self.timestamp
        } else {
            (u64::from(self.timestamp) * u64::from(clock) / u64::from(self.codec_rate)) as u32
        };
        let start = self
            .dtmf_queue
            .back()
            .map(|(at, _)| *at + Duration::from_millis(100))
            .unwrap_or(now.mono);
        for packet in sender.packets(digits, base)? {
            self.dtmf_queue.push_back((start + packet.send_at, packet));
        }
        self.send_due_dtmf(now);
        Ok(())
    }

    fn send_due_dtmf(&mut self, now: MediaTime) {
        let Some(pt) = self.negotiated.telephone_event.as_ref().map(|f| f.pt) else {
            self.dtmf_queue.clear();
            return;
        };
        while self
            .dtmf_queue
            .front()
            .is_some_and(|(at, _)| *at <= now.mono)
        {
            let Some((_, dtmf)) = self.dtmf_queue.pop_front() else {
                break;
            };
            let mut packet = RtpPacket::new(pt, self.seq, dtmf.timestamp, self.ssrc);
            packet.marker = dtmf.marker;
            packet.payload = dtmf.event.to_bytes().to_vec();
            if self.sending() {
                self.send_rtp(&packet);
            }
        }
    }

    fn send_rtp(&mut self, packet: &RtpPacket) {
        let Ok(plain) = packet.to_bytes() else {
            return;
        };
        let bytes = match &mut self.srtp_tx {
            Some(ctx) => match ctx.protect_rtp(&plain) {
                Ok(b) => b,
                Err(_) => return,
            },
            None => plain,
        };
        self.seq = self.seq.wrapping_add(1);
        self.stats.packets_sent += 1;
        self.stats.bytes_sent += packet.payload.len() as u64;
        self.octets_sent = self.octets_sent.wrapping_add(packet.payload.len() as u32);
        self.sent_since_report = true;
        self.transmits.push_back(Transmit {
            to: self.remote_rtp,
            bytes,
        });
    }

    /// Handles one received datagram (RTP, or RTCP when multiplexed or on the RTCP port).
    pub fn handle_datagram(&mut self, now: MediaTime, from: SocketAddr, bytes: &[u8]) {
        self.schedule_rtcp(now);
        if is_rtcp(bytes) {
            self.handle_rtcp(now, bytes);
        } else {
            self.handle_rtp(now, from, bytes);
        }
    }

    fn handle_rtp(&mut self, now: MediaTime, from: SocketAddr, bytes: &[u8]) {
        let plain = match &mut self.srtp_rx {
            Some(ctx) => match ctx.unprotect_rtp(bytes) {
                Ok(plain) => plain,
                Err(crate::srtp::SrtpError::Replay) => {
                    self.drops.replayed += 1;
                    return;
                }
                // Plain RTP on an SRTP session fails authentication too.
                Err(crate::srtp::SrtpError::AuthFailed) => {
                    self.drops.auth_failed += 1;
                    return;
                }
                Err(_) => {
                    self.drops.malformed += 1;
                    return;
                }
            },
            None => bytes.to_vec(),
        };
        let Ok(packet) = RtpPacket::parse(&plain) else {
            self.drops.malformed += 1;
            return;
        };
        let codec_pt = self.negotiated.codec.pt;
        let event_pt = self.negotiated.telephone_event.as_ref().map(|f| f.pt);
        if packet.payload_type != codec_pt
            && Some(packet.payload_type) != event_pt
            && packet.payload_type != PT_CN
        {
            self.drops.unknown_payload += 1;
            return;
        }
        // Symmetric RTP (RFC 4961): answer where the valid packets come from.
        if from != self.remote_rtp && !self.latched {
            self.remote_rtp = from;
            if self.negotiated.rtcp_mux {
                self.remote_rtcp = from;
            }
            self.events.push_back(MediaEvent::Latched { remote: from });
        }
        self.latched = true;
        if self
            .reception
            .as_ref()
            .is_none_or(|r| r.ssrc() != packet.ssrc)
        {
            self.reception = Some(ReceptionStats::new_validated(packet.ssrc, self.codec_rate));
            self.jitter.reset();
        }
        let Some(reception) = self.reception.as_mut() else {
            return;
        };
        let status = reception.on_rtp_at(packet.sequence_number, packet.timestamp, now.mono);
        self.stats.packets_received += 1;
        self.stats.bytes_received += packet.payload.len() as u64;
        if Some(packet.payload_type) == event_pt {
            if let Ok(Some(received)) = self.dtmf_rx.receive(packet.timestamp, &packet.payload)
                && let Some(digit) = received.digit
            {
                self.events.push_back(MediaEvent::Dtmf { digit });
            }
            return;
        }
        if packet.payload_type == PT_CN {
            return;
        }
        if let Some(extended) = status.extended() {
            self.jitter.push(
                now.mono,
                extended,
                packet.timestamp,
                packet.payload,
                packet.marker,
            );
        }
    }

    fn handle_rtcp(&mut self, now: MediaTime, bytes: &[u8]) {
        let plain = match &mut self.srtp_rx {
            Some(ctx) => match ctx.unprotect_rtcp(bytes) {
                Ok(p) => p,
                Err(_) => {
                    self.drops.auth_failed += 1;
                    return;
                }
            },
            None => bytes.to_vec(),
        };
        let Ok(compound) = CompoundPacket::parse(&plain) else {
            self.drops.malformed += 1;
            return;
        };
        for packet in &compound.packets {
            let (sender, blocks) = match packet {
                RtcpPacket::SenderReport(sr) => (Some(sr), &sr.reports),
                RtcpPacket::ReceiverReport(rr) => (None, &rr.reports),
                _ => continue,
            };
            if let (Some(sr), Some(reception)) = (sender, self.reception.as_mut())
                && sr.ssrc == reception.ssrc()
            {
                reception.on_sender_report(sr.sender_info.ntp_timestamp, now.ntp);
            }
            for block in blocks.iter().filter(|b| b.ssrc == self.ssrc) {
                if let Some(rtt) = rtcp::round_trip_time(block, now.ntp) {
                    self.stats.round_trip_time = Some(rtt.as_secs_f64());
                }
            }
        }
    }

    /// Produces one 20 ms playout frame (960 samples at 48 kHz), appended to `out`.
    pub fn playout(&mut self, now: MediaTime, out: &mut Vec<i16>) {
        play_frame(
            &mut self.jitter,
            self.decoder.as_mut(),
            self.codec_frame,
            self.to_device.as_mut(),
            now.mono,
            out,
        );
    }

    fn schedule_rtcp(&mut self, now: MediaTime) {
        match self.next_rtcp {
            // RFC 3550 §6.2: the first report may go after half the interval.
            None => self.next_rtcp = Some(now.mono + RTCP_INTERVAL / 2),
            Some(at) if at <= now.mono => {
                self.send_report(now);
                self.next_rtcp = Some(now.mono + RTCP_INTERVAL);
            }
            Some(_) => {}
        }
    }

    /// Sends what is due: DTMF packets and RTCP reports.
    pub fn handle_timeout(&mut self, now: MediaTime) {
        self.send_due_dtmf(now);
        self.schedule_rtcp(now);
    }

    /// When [`Self::handle_timeout`] is next needed (besides the 20 ms capture cadence).
    pub fn poll_timeout(&self) -> Option<Duration> {
        let dtmf = self.dtmf_queue.front().map(|(at, _)| *at);
        match (dtmf, self.next_rtcp) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn send_report(&mut self, now: MediaTime) {
        let block = self
            .reception
            .as_mut()
            .and_then(|r| r.report_block(now.ntp));
        let blocks: Vec<_> = block.into_iter().collect();
        let sender_info = self.sent_since_report.then_some(SenderInfo {
            ntp_timestamp: now.ntp,
            rtp_timestamp: self.timestamp,
            packet_count: self.stats.packets_sent as u32,
            octet_count: self.octets_sent,
        });
        self.sent_since_report = false;
        let Ok(compound) = CompoundPacket::report(self.ssrc, sender_info, &blocks, &self.cname)
        else {
            return;
        };
        let Ok(plain) = compound.to_bytes() else {
            return;
        };
        let bytes = match &mut self.srtp_tx {
            Some(ctx) => match ctx.protect_rtcp(&plain) {
                Ok(b) => b,
                Err(_) => return,
            },
            None => plain,
        };
        self.transmits.push_back(Transmit {
            to: self.remote_rtcp,
            bytes,
        });
    }

    /// Next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Next event.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Statistics under the WebRTC names.
    pub fn stats(&self) -> MediaStats {
        stream_stats(
            &self.stats,
            &self.jitter,
            self.reception.as_ref(),
            self.codec_rate,
        )
    }

    /// E-model MOS estimate for the receive direction.
    pub fn mos(&self) -> f64 {
        stream_mos(&self.stats(), &self.negotiated)
    }

    /// What was dropped and why.
    pub fn drops(&self) -> DropCounters {
        self.drops
    }
}

/// One 20 ms playout frame of a receive stream (960 samples at 48 kHz), appended to `out`:
/// the next frame decoded, a lost one recovered from the next packet's FEC or concealed, or
/// silence. Shared by both session kinds.
pub(crate) fn play_frame(
    jitter: &mut JitterBuffer,
    decoder: &mut dyn Decoder,
    codec_frame: usize,
    to_device: Option<&mut Resampler>,
    now: Duration,
    out: &mut Vec<i16>,
) {
    let mut pcm = Vec::with_capacity(codec_frame);
    let samples = codec_frame;
    let result = match jitter.pop(now) {
        Playout::Frame(payload, _) => decoder.decode(&payload, &mut pcm),
        Playout::Lost { .. } => {
            let next = jitter.peek_next().map(|(p, _)| p.to_vec());
            match next {
                Some(next) => decoder
                    .decode_fec(&next, samples, &mut pcm)
                    .and_then(|recovered| {
                        if recovered {
                            Ok(())
                        } else {
                            decoder.conceal(samples, &mut pcm)
                        }
                    }),
                None => decoder.conceal(samples, &mut pcm),
            }
        }
        Playout::Insert => decoder.conceal(samples, &mut pcm),
        Playout::Silence => {
            pcm.resize(samples, 0);
            Ok(())
        }
    };
    if result.is_err() {
        pcm.clear();
    }
    pcm.resize(samples, 0);
    let start = out.len();
    match to_device {
        Some(resampler) => resampler.process(&pcm, out),
        None => out.extend_from_slice(&pcm),
    }
    out.resize(start + DEVICE_FRAME, 0);
}

/// The WebRTC statistics of a receive stream: the session's own counters completed with the
/// jitter buffer's and the RTCP reception figures. Shared by both session kinds.
pub(crate) fn stream_stats(
    counters: &MediaStats,
    jitter: &JitterBuffer,
    reception: Option<&ReceptionStats>,
    codec_rate: u32,
) -> MediaStats {
    let mut stats = counters.clone();
    let buffer = jitter.stats();
    stats.jitter_buffer_delay = buffer.jitter_buffer_delay;
    stats.jitter_buffer_emitted_count = buffer.jitter_buffer_emitted_count;
    stats.concealed_samples = buffer.concealed_samples;
    if let Some(reception) = reception {
        stats.packets_lost = reception.cumulative_lost();
        stats.jitter = f64::from(reception.jitter()) / f64::from(codec_rate);
        stats.total_samples_received = buffer.jitter_buffer_emitted_count;
    }
    stats
}

/// E-model MOS of a receive stream with `stats`, for the negotiated codec and ptime.
pub(crate) fn stream_mos(stats: &MediaStats, negotiated: &Negotiated) -> f64 {
    let codec =
        CodecImpairment::for_codec(&negotiated.codec.name).unwrap_or(CodecImpairment::G711_PLC);
    stats.mos(
        codec,
        Duration::from_millis(negotiated.ptime_ms.into()),
        Duration::ZERO,
    )
}

#[cfg(test)]
mod tests;
