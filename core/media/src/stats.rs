//! Call-quality statistics with WebRTC names, and an E-model (ITU-T G.107) MOS estimate.
//!
//! [`MediaStats`] is a plain struct (no serde) whose [`MediaStats::to_json_fields`] lists
//! `(webrtcName, value)` pairs for the CLI to print. [`InterarrivalJitter`] computes the
//! RFC 3550 jitter that goes into [`MediaStats::jitter`].
//!
//! # E-model
//! The simplified E-model used by VoIP monitors (Cole & Rosenbluth 2001, on ITU-T G.107
//! defaults): `R = 93.2 − Id − Ie,eff`, with
//! * `Id = 0.024·d + 0.11·(d − 177.3)·H(d − 177.3)`, `d` the one-way mouth-to-ear delay in
//!   ms and `H` the step function;
//! * `Ie,eff = Ie + (95 − Ie) · Ppl / (Ppl / BurstR + Bpl)` (G.107 §7.6), `Ppl` the packet
//!   loss in %, `BurstR` the burst ratio (1 for random loss);
//! * `MOS = 1 + 0.035·R + R·(R − 60)·(100 − R)·7·10⁻⁶` for 0 < R < 100 (G.107 Annex B),
//!   1 below, 4.5 above.
//!
//! Codec parameters ([`CodecImpairment`]): G.711 `Ie = 0`, `Bpl = 4.3` without PLC and
//! `25.1` with PLC (ITU-T G.113 Appendix I). Opus has no ITU-provisioned values; we use
//! `Ie = 11`, `Bpl = 20` as an *estimate* (placing 20–32 kbit/s Opus between G.729A
//! (Ie 11, Bpl 19) and G.722 and crediting its PLC/FEC) on the narrowband R scale. Treat
//! Opus MOS figures as indicative.

use std::time::Duration;

/// Receive/send statistics of one audio stream, named as in WebRTC's `getStats()`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MediaStats {
    /// `packetsReceived`.
    pub packets_received: u64,
    /// `packetsLost` (RFC 3550 cumulative; may be negative with duplicates).
    pub packets_lost: i64,
    /// `jitter`: RFC 3550 interarrival jitter, seconds.
    pub jitter: f64,
    /// `jitterBufferDelay`: seconds summed over emitted samples.
    pub jitter_buffer_delay: f64,
    /// `jitterBufferEmittedCount`: samples emitted by the jitter buffer.
    pub jitter_buffer_emitted_count: u64,
    /// `concealedSamples`.
    pub concealed_samples: u64,
    /// `totalSamplesReceived`.
    pub total_samples_received: u64,
    /// `roundTripTime` from RTCP, seconds, once measured.
    pub round_trip_time: Option<f64>,
    /// `packetsSent`.
    pub packets_sent: u64,
    /// `bytesSent` (payload bytes).
    pub bytes_sent: u64,
    /// `bytesReceived` (payload bytes).
    pub bytes_received: u64,
}

impl MediaStats {
    /// `(webrtcName, value)` pairs, in a fixed order; `roundTripTime` is left out until it
    /// is known. Counters are converted to `f64`.
    pub fn to_json_fields(&self) -> Vec<(&'static str, f64)> {
        let mut fields = vec![
            ("packetsReceived", self.packets_received as f64),
            ("packetsLost", self.packets_lost as f64),
            ("jitter", self.jitter),
            ("jitterBufferDelay", self.jitter_buffer_delay),
            (
                "jitterBufferEmittedCount",
                self.jitter_buffer_emitted_count as f64,
            ),
            ("concealedSamples", self.concealed_samples as f64),
            ("totalSamplesReceived", self.total_samples_received as f64),
        ];
        if let Some(rtt) = self.round_trip_time {
            fields.push(("roundTripTime", rtt));
        }
        fields.extend([
            ("packetsSent", self.packets_sent as f64),
            ("bytesSent", self.bytes_sent as f64),
            ("bytesReceived", self.bytes_received as f64),
        ]);
        fields
    }

    /// Packet loss in percent of expected packets (received + lost), 0 when nothing was
    /// expected; negative `packets_lost` counts as 0.
    pub fn loss_percent(&self) -> f64 {
        let lost = self.packets_lost.max(0) as f64;
        let expected = self.packets_received as f64 + lost;
        if expected <= 0.0 {
            0.0
        } else {
            100.0 * lost / expected
        }
    }

    /// Average jitter-buffer delay per sample, seconds (0 before any output).
    pub fn average_jitter_buffer_delay(&self) -> f64 {
        if self.jitter_buffer_emitted_count == 0 {
            0.0
        } else {
            self.jitter_buffer_delay / self.jitter_buffer_emitted_count as f64
        }
    }

    /// E-model MOS for this stream: loss from the counters, delay from
    /// [`mouth_to_ear_delay`] with the measured RTT (0 when unknown), the average jitter
    /// buffer delay and the codec's packetisation `ptime` and `lookahead`.
    pub fn mos(&self, codec: CodecImpairment, ptime: Duration, lookahead: Duration) -> f64 {
        let delay = mouth_to_ear_delay(
            self.round_trip_time,
            self.average_jitter_buffer_delay(),
            ptime.as_secs_f64(),
            lookahead.as_secs_f64(),
        );
        let r = r_factor(&EModelInput {
            codec,
            packet_loss_percent: self.loss_percent(),
            burst_ratio: 1.0,
            one_way_delay_ms: delay * 1000.0,
        });
        mos_from_r(r)
    }
}

/// RFC 3550 §6.4.1 / A.8 interarrival jitter estimator.
#[derive(Debug, Clone, Default)]
pub struct InterarrivalJitter {
    last_transit: Option<f64>,
    jitter: f64,
}

impl InterarrivalJitter {
    /// A fresh estimator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds a packet's arrival time and RTP timestamp (clock `clock_rate`); returns the
    /// updated jitter in seconds. Timestamps are compared by wrapping difference.
    pub fn update(&mut self, arrival: Duration, timestamp: u32, clock_rate: u32) -> f64 {
        let clock = f64::from(clock_rate.max(1));
        // Work relative to the previous timestamp to survive wrap-around.
        let arrival = arrival.as_secs_f64();
        let transit = arrival - f64::from(timestamp) / clock;
        if let Some(last) = self.last_transit {
            let mut d = transit - last;
            // Undo a timestamp wrap (2^32 / clock seconds).
            let wrap = 4_294_967_296.0 / clock;
            if d > wrap / 2.0 {
                d -= wrap;
            } else if d < -wrap / 2.0 {
                d += wrap;
            }
            self.jitter += (d.abs() - self.jitter) / 16.0;
        }
        self.last_transit = Some(transit);
        self.jitter
    }

    /// Current jitter in seconds.
    pub fn jitter(&self) -> f64 {
        self.jitter
    }
}

/// Codec parameters of the E-model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CodecImpairment {
    /// Equipment impairment factor `Ie`.
    pub ie: f64,
    /// Packet-loss robustness factor `Bpl`.
    pub bpl: f64,
}

impl CodecImpairment {
    /// G.711 without packet-loss concealment (G.113 Appendix I).
    pub const G711: Self = Self { ie: 0.0, bpl: 4.3 };
    /// G.711 with packet-loss concealment (G.113 Appendix I).
    pub const G711_PLC: Self = Self { ie: 0.0, bpl: 25.1 };
    /// Opus at VoIP bitrates: an estimate, not ITU-provisioned (see the module docs).
    pub const OPUS: Self = Self {
        ie: 11.0,
        bpl: 20.0,
    };

    /// Parameters for an SDP encoding name (`PCMU`/`PCMA` → G.711 with PLC, since our
    /// decoder conceals; `opus` → the Opus estimate); `None` for anything else.
    pub fn for_codec(name: &str) -> Option<Self> {
        if name.eq_ignore_ascii_case("PCMU") || name.eq_ignore_ascii_case("PCMA") {
            Some(Self::G711_PLC)
        } else if name.eq_ignore_ascii_case("opus") {
            Some(Self::OPUS)
        } else {
            None
        }
    }
}

/// Inputs of [`r_factor`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EModelInput {
    /// Codec `Ie`/`Bpl`.
    pub codec: CodecImpairment,
    /// Packet loss, percent (0..=100; clamped).
    pub packet_loss_percent: f64,
    /// Burst ratio `BurstR` (1 = random loss; ≥ 1).
    pub burst_ratio: f64,
    /// One-way mouth-to-ear delay, ms.
    pub one_way_delay_ms: f64,
}

/// Delay impairment `Id` for a one-way delay in ms (simplified G.107).
pub fn delay_impairment(one_way_delay_ms: f64) -> f64 {
    let d = if one_way_delay_ms.is_finite() {
        one_way_delay_ms.max(0.0)
    } else {
        0.0
    };
    let mut id = 0.024 * d;
    if d > 177.3 {
        id += 0.11 * (d - 177.3);
    }
    id
}

/// Effective equipment impairment `Ie,eff` (G.107 §7.6).
pub fn effective_equipment_impairment(
    codec: CodecImpairment,
    packet_loss_percent: f64,
    burst_ratio: f64,
) -> f64 {
    let ppl = if packet_loss_percent.is_finite() {
        packet_loss_percent.clamp(0.0, 100.0)
    } else {
        0.0
    };
    let burst = if burst_ratio.is_finite() {
        burst_ratio.max(1.0)
    } else {
        1.0
    };
    let denominator = ppl / burst + codec.bpl;
    if denominator <= 0.0 {
        return codec.ie;
    }
    codec.ie + (95.0 - codec.ie) * ppl / denominator
}

/// Transmission rating `R = 93.2 − Id − Ie,eff`.
pub fn r_factor(input: &EModelInput) -> f64 {
    93.2 - delay_impairment(input.one_way_delay_ms)
        - effective_equipment_impairment(input.codec, input.packet_loss_percent, input.burst_ratio)
}

/// MOS (conversational quality, 1..=4.5) from `R` (G.107 Annex B).
pub fn mos_from_r(r: f64) -> f64 {
    if r.is_nan() || r <= 0.0 {
        1.0
    } else if r >= 100.0 {
        4.5
    } else {
        1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7.0e-6
    }
}

/// One-way mouth-to-ear delay in seconds: half the RTT (0 when unknown) + jitter buffer
/// delay + packetisation (`ptime`) + codec lookahead, all in seconds.
pub fn mouth_to_ear_delay(
    round_trip_time: Option<f64>,
    jitter_buffer_delay: f64,
    ptime: f64,
    lookahead: f64,
) -> f64 {
    let clean = |x: f64| if x.is_finite() { x.max(0.0) } else { 0.0 };
    clean(round_trip_time.unwrap_or(0.0)) / 2.0
        + clean(jitter_buffer_delay)
        + clean(ptime)
        + clean(lookahead)
}

/// A call's audio quality as the application sees it: at the end of the call, and on request.
#[derive(Debug, Clone, PartialEq)]
pub struct CallQuality {
    /// Counters under the WebRTC names.
    pub stats: MediaStats,
    /// E-model MOS estimate of what was received.
    pub mos: f64,
    /// Codec in use.
    pub codec: String,
    /// Whether SRTP protected the media.
    pub srtp: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mos(codec: CodecImpairment, loss: f64, delay_ms: f64) -> f64 {
        mos_from_r(r_factor(&EModelInput {
            codec,
            packet_loss_percent: loss,
            burst_ratio: 1.0,
            one_way_delay_ms: delay_ms,
        }))
    }

    #[test]
    fn known_points() {
        assert!(
            (mos_from_r(93.2) - 4.41).abs() < 0.005,
            "{}",
            mos_from_r(93.2)
        );
        assert_eq!(mos(CodecImpairment::G711, 0.0, 0.0), mos_from_r(93.2));
        assert_eq!(mos_from_r(-5.0), 1.0);
        assert_eq!(mos_from_r(120.0), 4.5);
        assert_eq!(mos_from_r(f64::NAN), 1.0);
        // R = 50 → MOS ≈ 2.58 (G.107 Annex B curve).
        assert!((mos_from_r(50.0) - 2.575).abs() < 0.01);
        assert!((delay_impairment(150.0) - 3.6).abs() < 1e-9);
        assert!((delay_impairment(277.3) - (0.024 * 277.3 + 11.0)).abs() < 1e-9);
        // Ie,eff for G.711+PLC at 1 % loss: 95 · 1 / 26.1.
        let ie = effective_equipment_impairment(CodecImpairment::G711_PLC, 1.0, 1.0);
        assert!((ie - 95.0 / 26.1).abs() < 1e-9);
    }

    #[test]
    fn loss_and_delay_lower_mos_monotonically() {
        for codec in [
            CodecImpairment::G711,
            CodecImpairment::G711_PLC,
            CodecImpairment::OPUS,
        ] {
            let mut previous = f64::INFINITY;
            for loss in 0..=40 {
                let m = mos(codec, f64::from(loss), 50.0);
                assert!(
                    m < previous || (m == 1.0 && previous == 1.0),
                    "{codec:?} {loss}%"
                );
                previous = m;
            }
            assert!(mos(codec, 20.0, 50.0) < 3.0);
            let mut previous = f64::INFINITY;
            for delay in (0..600).step_by(25) {
                let m = mos(codec, 1.0, f64::from(delay));
                assert!(m < previous);
                previous = m;
            }
        }
        // PLC helps.
        assert!(mos(CodecImpairment::G711_PLC, 5.0, 50.0) > mos(CodecImpairment::G711, 5.0, 50.0));
        // Bursts hurt.
        let random = r_factor(&EModelInput {
            codec: CodecImpairment::G711_PLC,
            packet_loss_percent: 5.0,
            burst_ratio: 1.0,
            one_way_delay_ms: 50.0,
        });
        let bursty = r_factor(&EModelInput {
            burst_ratio: 3.0,
            ..EModelInput {
                codec: CodecImpairment::G711_PLC,
                packet_loss_percent: 5.0,
                burst_ratio: 1.0,
                one_way_delay_ms: 50.0,
            }
        });
        assert!(bursty < random);
    }

    #[test]
    fn media_stats_fields_and_mos() {
        let mut s = MediaStats {
            packets_received: 950,
            packets_lost: 50,
            jitter: 0.012,
            jitter_buffer_delay: 0.04 * 160_000.0,
            jitter_buffer_emitted_count: 160_000,
            concealed_samples: 8000,
            total_samples_received: 168_000,
            round_trip_time: None,
            packets_sent: 1000,
            bytes_sent: 160_000,
            bytes_received: 152_000,
        };
        let fields = s.to_json_fields();
        let names: Vec<_> = fields.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            vec![
                "packetsReceived",
                "packetsLost",
                "jitter",
                "jitterBufferDelay",
                "jitterBufferEmittedCount",
                "concealedSamples",
                "totalSamplesReceived",
                "packetsSent",
                "bytesSent",
                "bytesReceived"
            ]
        );
        s.round_trip_time = Some(0.1);
        assert!(s.to_json_fields().contains(&("roundTripTime", 0.1)));
        assert!((s.loss_percent() - 5.0).abs() < 1e-9);
        assert!((s.average_jitter_buffer_delay() - 0.04).abs() < 1e-9);
        let m = s.mos(
            CodecImpairment::G711_PLC,
            Duration::from_millis(20),
            Duration::ZERO,
        );
        assert!(m > 3.0 && m < 4.0, "{m}");
        assert_eq!(MediaStats::default().loss_percent(), 0.0);
        assert_eq!(
            CodecImpairment::for_codec("pcmu"),
            Some(CodecImpairment::G711_PLC)
        );
        assert_eq!(
            CodecImpairment::for_codec("OPUS"),
            Some(CodecImpairment::OPUS)
        );
        assert_eq!(CodecImpairment::for_codec("G729"), None);
        assert!((mouth_to_ear_delay(Some(0.1), 0.04, 0.02, 0.0065) - 0.1165).abs() < 1e-9);
    }

    #[test]
    fn interarrival_jitter_rfc3550() {
        let mut j = InterarrivalJitter::new();
        // Perfectly paced packets: zero jitter, across a timestamp wrap.
        let mut ts = u32::MAX - 800;
        for n in 0..100u64 {
            j.update(Duration::from_millis(20 * n), ts, 8000);
            ts = ts.wrapping_add(160);
        }
        assert!(j.jitter() < 1e-9, "{}", j.jitter());
        // Every other packet 10 ms late: |D| = 10 ms each time, so J converges to 10 ms.
        let mut j = InterarrivalJitter::new();
        for n in 0..500u64 {
            let wobble = if n % 2 == 0 { 0 } else { 10 };
            j.update(
                Duration::from_millis(20 * n + wobble),
                (160 * n) as u32,
                8000,
            );
        }
        assert!((j.jitter() - 0.010).abs() < 0.001, "{}", j.jitter());
    }
}
