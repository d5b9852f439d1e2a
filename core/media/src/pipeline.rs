//! The audio pipeline of one call: everything between the audio device and RTP packets that
//! does not depend on how the packets travel. Both transports of
//! [`MediaSession`](crate::session::MediaSession) (plain RTP / SDES-SRTP, and ICE + DTLS-SRTP)
//! drive this one type:
//!
//! ```text
//!   capture 48 kHz ─▶ resample ─▶ encode ─┐
//!   send_dtmf ─▶ RFC 4733 queue ──────────┴─▶ OutgoingRtp (PT, extended seq, ts, marker)
//!                                                  │ poll_outgoing: the transport protects/sends it
//!   received RtpPacket ─▶ reception stats ─┬─▶ jitter buffer ─▶ decode / FEC / conceal ─▶
//!                                          └─▶ DTMF receive         resample ─▶ playout 48 kHz
//! ```
//!
//! It owns our RTP stream's identity (SSRC, sequence number, timestamp), which therefore
//! continue across a renegotiation whatever the transport does, and the WebRTC-named
//! statistics with the E-model MOS. Time is the caller's [`Instant`]; nothing here reads the
//! clock.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::dtmf::{DtmfPacket, DtmfReceiver, DtmfSender, DtmfSenderConfig};
use crate::codec::resample::Resampler;
use crate::codec::{Decoder, Encoder, codec_for};
use crate::jitter::{JitterBuffer, JitterConfig, JitterStats, Playout};
use crate::rtcp::{ReceptionStats, SenderInfo};
use crate::rtp::RtpPacket;
use crate::sdp::{Negotiated, PayloadFormat};
use crate::session::{DEVICE_FRAME, DEVICE_RATE, FRAME, MediaError, StreamStart};
use crate::stats::{CodecImpairment, MediaStats};

/// Static payload type of comfort noise (RFC 3389): accepted and ignored on receive.
pub(crate) const PT_CN: u8 = 13;

/// Gap between two DTMF digit strings queued one after the other.
const DTMF_STRING_GAP: Duration = Duration::from_millis(100);

/// An RTP packet the pipeline wants sent; the transport frames it with our SSRC and protects
/// it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutgoingRtp {
    pub(crate) payload_type: u8,
    /// Extended sequence number: the 16 bits on the wire plus the rollover count above them
    /// (str0m wants it; the plain transport sends the low 16 bits).
    pub(crate) sequence: u64,
    pub(crate) timestamp: u32,
    pub(crate) marker: bool,
    pub(crate) payload: Vec<u8>,
}

impl OutgoingRtp {
    /// The packet with our SSRC, as it goes on the wire (before SRTP).
    pub(crate) fn into_packet(self, ssrc: u32) -> RtpPacket {
        // The wire carries the low 16 bits (RFC 3550 §5.1); SRTP tracks the rollover.
        let mut packet = RtpPacket::new(
            self.payload_type,
            self.sequence as u16,
            self.timestamp,
            ssrc,
        );
        packet.marker = self.marker;
        packet.payload = self.payload;
        packet
    }
}

/// Encoder, decoder and the resamplers between the device rate and the codec's clock.
struct CodecChain {
    format: PayloadFormat,
    encoder: Box<dyn Encoder>,
    decoder: Box<dyn Decoder>,
    /// The codec's RTP clock rate.
    rate: u32,
    /// Samples per 20 ms packet at that rate.
    frame: usize,
    to_codec: Option<Resampler>,
    to_device: Option<Resampler>,
}

impl CodecChain {
    fn new(format: &PayloadFormat) -> Result<Self, MediaError> {
        let (encoder, decoder) = codec_for(
            &format.name,
            format.clock_rate,
            format.channels,
            format.fmtp.as_deref(),
        )
        .ok_or_else(|| MediaError::UnsupportedCodec(format.name.clone()))?;
        let rate = encoder.clock_rate();
        let frame = encoder.frame_samples();
        let (to_codec, to_device) = if rate == DEVICE_RATE {
            (None, None)
        } else {
            (
                Some(Resampler::new(DEVICE_RATE, rate)?),
                Some(Resampler::new(rate, DEVICE_RATE)?),
            )
        };
        Ok(Self {
            format: format.clone(),
            encoder,
            decoder,
            rate,
            frame,
            to_codec,
            to_device,
        })
    }
}

/// A codec prepared by [`AudioPipeline::prepare_update`], swapped in by
/// [`AudioPipeline::apply_update`] once the transport accepted the renegotiation too.
pub(crate) struct PreparedCodec(Option<CodecChain>);

/// Jitter-buffer totals of buffers replaced by codec changes, so the statistics stay
/// cumulative over the call.
#[derive(Debug, Clone, Copy, Default)]
struct BufferTotals {
    delay: f64,
    emitted: u64,
    concealed: u64,
}

impl BufferTotals {
    fn add(&mut self, stats: &JitterStats) {
        self.delay += stats.jitter_buffer_delay;
        self.emitted += stats.jitter_buffer_emitted_count;
        self.concealed += stats.concealed_samples;
    }
}

/// One call's audio pipeline (see the module docs).
pub(crate) struct AudioPipeline {
    codec: CodecChain,
    telephone_event: Option<PayloadFormat>,
    ptime_ms: u32,
    ssrc: u32,
    next_sequence: u64,
    timestamp: u32,
    /// Set the marker bit on the next audio packet: the first one, and the first after a
    /// codec change (a new talkspurt for the peer's jitter buffer).
    marker_pending: bool,
    dtmf_queue: VecDeque<(Instant, DtmfPacket)>,
    outgoing: VecDeque<OutgoingRtp>,
    /// Origin of the durations the jitter buffer and reception statistics work with.
    epoch: Instant,
    jitter: JitterBuffer,
    replaced_buffers: BufferTotals,
    reception: Option<ReceptionStats>,
    dtmf_rx: DtmfReceiver,
    counters: MediaStats,
    scratch: Vec<i16>,
}

impl AudioPipeline {
    /// A pipeline for the negotiated codec and telephone-event, with our stream starting at
    /// `start`; `now` is the origin of its internal time.
    pub(crate) fn new(
        negotiated: &Negotiated,
        start: StreamStart,
        now: Instant,
    ) -> Result<Self, MediaError> {
        let codec = CodecChain::new(&negotiated.codec)?;
        let jitter = JitterBuffer::new(JitterConfig::new(codec.rate, FRAME));
        Ok(Self {
            codec,
            telephone_event: negotiated.telephone_event.clone(),
            ptime_ms: negotiated.ptime_ms,
            ssrc: start.ssrc,
            next_sequence: u64::from(start.sequence),
            timestamp: start.timestamp,
            marker_pending: true,
            dtmf_queue: VecDeque::new(),
            outgoing: VecDeque::new(),
            epoch: now,
            jitter,
            replaced_buffers: BufferTotals::default(),
            reception: None,
            dtmf_rx: DtmfReceiver::new(),
            counters: MediaStats::default(),
            scratch: Vec::with_capacity(DEVICE_FRAME),
        })
    }

    /// The fallible half of a renegotiation: builds the new codec if it changed. Nothing
    /// changes until [`Self::apply_update`].
    pub(crate) fn prepare_update(
        &self,
        negotiated: &Negotiated,
    ) -> Result<PreparedCodec, MediaError> {
        if negotiated.codec == self.codec.format {
            return Ok(PreparedCodec(None));
        }
        CodecChain::new(&negotiated.codec).map(|c| PreparedCodec(Some(c)))
    }

    /// Applies a renegotiation. Our SSRC, sequence number and timestamp continue.
    pub(crate) fn apply_update(&mut self, negotiated: &Negotiated, prepared: PreparedCodec) {
        if let PreparedCodec(Some(codec)) = prepared {
            // Payloads of the old codec must not reach the new decoder, and the buffer's
            // timing is in the old clock: start a new buffer, keep its totals.
            self.replaced_buffers.add(&self.jitter.stats());
            self.jitter = JitterBuffer::new(JitterConfig::new(codec.rate, FRAME));
            if let Some(reception) = &mut self.reception {
                reception.set_clock_rate(codec.rate);
            }
            self.marker_pending = true;
            self.codec = codec;
        }
        if negotiated.telephone_event != self.telephone_event {
            // Queued events carry the old payload type's clock.
            self.dtmf_queue.clear();
            self.telephone_event = negotiated.telephone_event.clone();
        }
        self.ptime_ms = negotiated.ptime_ms;
    }

    /// Test hook: our stream starts afresh, as when a peer's media server switches sources.
    #[cfg(test)]
    pub(crate) fn restart_stream(&mut self, start: StreamStart) {
        self.ssrc = start.ssrc;
        self.next_sequence = u64::from(start.sequence);
        self.timestamp = start.timestamp;
    }

    /// Our SSRC.
    pub(crate) fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Encodes one captured 20 ms device frame into a packet for [`Self::poll_outgoing`],
    /// after any DTMF packet that is due. Nothing is encoded when `sending` is false or while
    /// a DTMF event is being sent, but the RTP clock advances either way (RFC 3550 §5.1: the
    /// timestamp counts sampling instants, sent or not).
    pub(crate) fn capture(
        &mut self,
        now: Instant,
        frame: &[i16],
        sending: bool,
    ) -> Result<(), MediaError> {
        self.send_due_dtmf(now, sending);
        let dtmf_active = !self.dtmf_queue.is_empty();
        let result = if sending && !dtmf_active {
            self.encode(frame)
        } else {
            Ok(())
        };
        self.timestamp = self.timestamp.wrapping_add(self.codec.frame as u32);
        result
    }

    fn encode(&mut self, frame: &[i16]) -> Result<(), MediaError> {
        self.scratch.clear();
        let codec = &mut self.codec;
        let pcm: &[i16] = match &mut codec.to_codec {
            Some(resampler) => {
                resampler.process(frame, &mut self.scratch);
                self.scratch.resize(codec.frame, 0);
                &self.scratch
            }
            None => frame,
        };
        let mut payload = Vec::with_capacity(200);
        codec.encoder.encode(pcm, &mut payload)?;
        let (pt, timestamp, marker) = (codec.format.pt, self.timestamp, self.marker_pending);
        self.marker_pending = false;
        self.queue(pt, timestamp, marker, payload);
        Ok(())
    }

    fn queue(&mut self, payload_type: u8, timestamp: u32, marker: bool, payload: Vec<u8>) {
        self.counters.packets_sent += 1;
        self.counters.bytes_sent += payload.len() as u64;
        self.outgoing.push_back(OutgoingRtp {
            payload_type,
            sequence: self.next_sequence,
            timestamp,
            marker,
            payload,
        });
        self.next_sequence += 1;
    }

    /// Queues RFC 4733 events for `digits`, starting now (or after digits still queued).
    pub(crate) fn send_dtmf(&mut self, now: Instant, digits: &str) -> Result<(), MediaError> {
        let format = self
            .telephone_event
            .as_ref()
            .ok_or(MediaError::NoTelephoneEvent)?;
        let clock = format.clock_rate;
        let sender = DtmfSender::new(DtmfSenderConfig::new(clock, FRAME))?;
        // The event timestamp is the audio clock converted to the event's rate.
        let base = if clock == self.codec.rate {
            self.timestamp
        } else {
            (u64::from(self.timestamp) * u64::from(clock) / u64::from(self.codec.rate)) as u32
        };
        let start = self
            .dtmf_queue
            .back()
            .map(|(at, _)| *at + DTMF_STRING_GAP)
            .unwrap_or(now);
        for packet in sender.packets(digits, base)? {
            self.dtmf_queue.push_back((start + packet.send_at, packet));
        }
        Ok(())
    }

    /// Moves the DTMF packets due at `now` to [`Self::poll_outgoing`]; when `sending` is
    /// false (hold, not connected) they are dropped.
    pub(crate) fn send_due_dtmf(&mut self, now: Instant, sending: bool) {
        let Some(pt) = self.telephone_event.as_ref().map(|f| f.pt) else {
            self.dtmf_queue.clear();
            return;
        };
        while self.dtmf_queue.front().is_some_and(|(at, _)| *at <= now) {
            let Some((_, dtmf)) = self.dtmf_queue.pop_front() else {
                break;
            };
            if sending {
                let payload = dtmf.event.to_bytes().to_vec();
                self.queue(pt, dtmf.timestamp, dtmf.marker, payload);
            }
        }
    }

    /// When the next queued DTMF packet is due.
    pub(crate) fn next_dtmf_at(&self) -> Option<Instant> {
        self.dtmf_queue.front().map(|(at, _)| *at)
    }

    /// Drops every queued DTMF packet (the session ended).
    pub(crate) fn clear_dtmf(&mut self) {
        self.dtmf_queue.clear();
    }

    /// Next packet to send.
    pub(crate) fn poll_outgoing(&mut self) -> Option<OutgoingRtp> {
        self.outgoing.pop_front()
    }

    /// Whether a received packet's payload type was negotiated (the codec, telephone-event)
    /// or is comfort noise.
    pub(crate) fn accepts(&self, payload_type: u8) -> bool {
        payload_type == self.codec.format.pt
            || Some(payload_type) == self.telephone_event.as_ref().map(|f| f.pt)
            || payload_type == PT_CN
    }

    /// Takes one authenticated RTP packet that arrived at `arrival`: audio goes to the jitter
    /// buffer, a telephone event to the DTMF receiver (the digit is returned the first time
    /// its event is seen), comfort noise is counted and ignored. A payload type that
    /// [`Self::accepts`] refuses is ignored.
    pub(crate) fn receive(&mut self, arrival: Instant, packet: RtpPacket) -> Option<char> {
        if !self.accepts(packet.payload_type) {
            return None;
        }
        if self
            .reception
            .as_ref()
            .is_none_or(|r| r.ssrc() != packet.ssrc)
        {
            // A new source (first packet, or the peer switched SSRC): its sequence and timing
            // have nothing to do with the previous one's.
            self.reception = Some(ReceptionStats::new_validated(packet.ssrc, self.codec.rate));
            self.jitter.reset();
        }
        let arrival = arrival.saturating_duration_since(self.epoch);
        let reception = self.reception.as_mut()?;
        let status = reception.on_rtp_at(packet.sequence_number, packet.timestamp, arrival);
        self.counters.packets_received += 1;
        self.counters.bytes_received += packet.payload.len() as u64;
        if Some(packet.payload_type) == self.telephone_event.as_ref().map(|f| f.pt) {
            return match self.dtmf_rx.receive(packet.timestamp, &packet.payload) {
                Ok(Some(received)) => received.digit,
                _ => None,
            };
        }
        if packet.payload_type == PT_CN {
            return None;
        }
        if let Some(extended) = status.extended() {
            self.jitter.push(
                arrival,
                extended,
                packet.timestamp,
                packet.payload,
                packet.marker,
            );
        }
        None
    }

    /// The statistics of the source we receive, for RTCP reports.
    pub(crate) fn reception_mut(&mut self) -> Option<&mut ReceptionStats> {
        self.reception.as_mut()
    }

    /// The sender information of an RTCP SR stamped `ntp`.
    pub(crate) fn sender_info(&self, ntp: u64) -> SenderInfo {
        SenderInfo {
            ntp_timestamp: ntp,
            rtp_timestamp: self.timestamp,
            // RFC 3550 §6.4.1: both counts wrap at 32 bits.
            packet_count: self.counters.packets_sent as u32,
            octet_count: self.counters.bytes_sent as u32,
        }
    }

    /// Records a round-trip time measured by the transport's RTCP.
    pub(crate) fn set_round_trip_time(&mut self, rtt: Duration) {
        self.counters.round_trip_time = Some(rtt.as_secs_f64());
    }

    /// Produces one 20 ms playout frame (960 samples at 48 kHz), appended to `out`: the next
    /// frame decoded, a lost one recovered from the next packet's FEC or concealed, or
    /// silence.
    pub(crate) fn playout(&mut self, now: Instant, out: &mut Vec<i16>) {
        let now = now.saturating_duration_since(self.epoch);
        let codec = &mut self.codec;
        let samples = codec.frame;
        let decoder = codec.decoder.as_mut();
        let mut pcm = Vec::with_capacity(samples);
        let result = match self.jitter.pop(now) {
            Playout::Frame(payload, _) => decoder.decode(&payload, &mut pcm),
            Playout::Lost { .. } => {
                let next = self.jitter.peek_next().map(|(p, _)| p.to_vec());
                match next {
                    Some(next) => {
                        decoder
                            .decode_fec(&next, samples, &mut pcm)
                            .and_then(|recovered| {
                                if recovered {
                                    Ok(())
                                } else {
                                    decoder.conceal(samples, &mut pcm)
                                }
                            })
                    }
                    None => decoder.conceal(samples, &mut pcm),
                }
            }
            Playout::Insert => decoder.conceal(samples, &mut pcm),
            Playout::Silence => Ok(()),
        };
        if result.is_err() {
            // A payload the decoder cannot read plays as silence, not as a half frame.
            pcm.clear();
        }
        pcm.resize(samples, 0);
        let start = out.len();
        match &mut codec.to_device {
            Some(resampler) => resampler.process(&pcm, out),
            None => out.extend_from_slice(&pcm),
        }
        out.resize(start + DEVICE_FRAME, 0);
    }

    /// Statistics under the WebRTC names: our counters completed with the jitter buffer's and
    /// the RTCP reception figures.
    pub(crate) fn stats(&self) -> MediaStats {
        let mut stats = self.counters.clone();
        let mut buffers = self.replaced_buffers;
        buffers.add(&self.jitter.stats());
        stats.jitter_buffer_delay = buffers.delay;
        stats.jitter_buffer_emitted_count = buffers.emitted;
        stats.concealed_samples = buffers.concealed;
        if let Some(reception) = &self.reception {
            stats.packets_lost = reception.cumulative_lost();
            stats.jitter = f64::from(reception.jitter()) / f64::from(self.codec.rate);
            stats.total_samples_received = buffers.emitted;
        }
        stats
    }

    /// E-model MOS estimate of what we receive, for the codec and ptime in use.
    pub(crate) fn mos(&self) -> f64 {
        let codec = CodecImpairment::for_codec(&self.codec.format.name)
            .unwrap_or(CodecImpairment::G711_PLC);
        self.stats().mos(
            codec,
            Duration::from_millis(self.ptime_ms.into()),
            Duration::ZERO,
        )
    }
}
