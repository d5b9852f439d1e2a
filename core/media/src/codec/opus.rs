//! Opus (RFC 6716, RTP payload RFC 7587) through libopus, via the `opus` crate.
//!
//! Always 48 kHz, mono, `OPUS_APPLICATION_VOIP`. The encoder is configured by
//! [`OpusConfig`] (bitrate, in-band FEC with an expected loss percentage, DTX, frame
//! duration, complexity), which [`OpusConfig::from_fmtp`] derives from an SDP `a=fmtp` line.
//!
//! Loss handling on the decoder side:
//! * [`Decoder::conceal`] runs libopus' own PLC (decoding a missing packet);
//! * [`Decoder::decode_fec`] decodes the LBRR (low bit-rate redundancy) copy of the lost
//!   frame that the *next* packet carries when the sender enabled in-band FEC. libopus falls
//!   back to PLC by itself when the next packet carries no LBRR data.
//!
//! With DTX on, the encoder emits 1–2 byte packets during silence; [`is_dtx_payload`]
//! tells the caller such a packet need not be sent (the receiver conceals/plays comfort
//! noise meanwhile, see `jitter`).

use super::{CodecError, Decoder, Encoder};
use opus::{Application, Bandwidth, Bitrate, Channels};

/// Opus RTP clock rate (always 48 kHz, RFC 7587).
pub const CLOCK_RATE: u32 = 48_000;
/// Samples in 2.5 ms at 48 kHz: Opus frame sizes (and PLC/FEC lengths) are multiples of it.
pub const QUANTUM: usize = 120;
/// Largest Opus packet duration: 120 ms at 48 kHz.
pub const MAX_PACKET_SAMPLES: usize = 5760;
/// Longest concealment accepted in one [`Decoder::conceal`] call (1 s).
pub const MAX_CONCEAL: usize = 48_000;
/// Largest Opus packet (RFC 6716 §3.4 R5 allows up to 1275 bytes per frame).
const MAX_PACKET_BYTES: usize = 1500;

/// Encoder settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpusConfig {
    /// Target bitrate in bit/s (6000..=510000), or `None` to let libopus choose.
    pub bitrate: Option<u32>,
    /// In-band forward error correction (LBRR) on.
    pub fec: bool,
    /// Packet loss the encoder should expect, 0..=100 % (drives how much FEC is spent).
    pub expected_loss_pct: u8,
    /// Discontinuous transmission on.
    pub dtx: bool,
    /// Frame (packet) duration in ms: 10, 20, 40 or 60.
    pub frame_ms: u32,
    /// Encoder complexity 0..=10.
    pub complexity: u8,
    /// Constant bitrate instead of VBR (fmtp `cbr=1`).
    pub cbr: bool,
    /// Highest audio bandwidth to encode (fmtp `maxplaybackrate`), in Hz of sample rate.
    pub max_playback_rate: u32,
}

impl Default for OpusConfig {
    /// 32 kbit/s, 20 ms, FEC on expecting 10 % loss, no DTX, complexity 8, VBR, fullband.
    fn default() -> Self {
        Self {
            bitrate: Some(32_000),
            fec: true,
            expected_loss_pct: 10,
            dtx: false,
            frame_ms: 20,
            complexity: 8,
            cbr: false,
            max_playback_rate: 48_000,
        }
    }
}

impl OpusConfig {
    /// Settings from the remote's `a=fmtp` parameters (RFC 7587 §6.1): `useinbandfec`,
    /// `usedtx`, `maxaveragebitrate`, `cbr`, `maxplaybackrate`. Unknown or malformed
    /// parameters are ignored; absent ones keep [`OpusConfig::default`].
    pub fn from_fmtp(fmtp: &str) -> Self {
        let mut config = Self::default();
        for param in fmtp.split(';') {
            let Some((key, value)) = param.split_once('=') else {
                continue;
            };
            let key = key.trim().to_ascii_lowercase();
            let value = value.trim();
            let number = value.parse::<u32>().ok();
            match (key.as_str(), number) {
                ("useinbandfec", Some(v)) => config.fec = v == 1,
                ("usedtx", Some(v)) => config.dtx = v == 1,
                ("cbr", Some(v)) => config.cbr = v == 1,
                ("maxaveragebitrate", Some(v)) => {
                    config.bitrate = Some(v.clamp(6_000, 510_000));
                }
                ("maxplaybackrate", Some(v)) if v >= 8000 => config.max_playback_rate = v,
                _ => {}
            }
        }
        config
    }

    /// Samples per frame at 48 kHz.
    pub fn frame_samples(&self) -> usize {
        (self.frame_ms as usize) * 48
    }
}

fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// True for the 1–2 byte packets libopus produces in DTX: no need to send them.
pub fn is_dtx_payload(payload: &[u8]) -> bool {
    payload.len() <= 2
}

/// Opus encoder, 48 kHz mono VoIP.
pub struct OpusEncoder {
    inner: opus::Encoder,
    frame_samples: usize,
}

impl std::fmt::Debug for OpusEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusEncoder")
            .field("frame_samples", &self.frame_samples)
            .finish()
    }
}

impl OpusEncoder {
    /// Creates an encoder with `config`.
    pub fn new(config: &OpusConfig) -> Result<Self, CodecError> {
        if ![10, 20, 40, 60].contains(&config.frame_ms) {
            return Err(CodecError::Unsupported(
                "Opus frame must be 10, 20, 40 or 60 ms",
            ));
        }
        let inner =
            opus::Encoder::new(CLOCK_RATE, Channels::Mono, Application::Voip).map_err(opus_err)?;
        let mut this = Self {
            inner,
            frame_samples: config.frame_samples(),
        };
        this.set_bitrate(config.bitrate)?;
        this.set_fec(config.fec, config.expected_loss_pct)?;
        this.set_dtx(config.dtx)?;
        this.inner
            .set_complexity(i32::from(config.complexity.min(10)))
            .map_err(opus_err)?;
        this.inner.set_vbr(!config.cbr).map_err(opus_err)?;
        let bandwidth = match config.max_playback_rate {
            0..=8_000 => Bandwidth::Narrowband,
            8_001..=12_000 => Bandwidth::Mediumband,
            12_001..=16_000 => Bandwidth::Wideband,
            16_001..=24_000 => Bandwidth::Superwideband,
            _ => Bandwidth::Fullband,
        };
        this.inner.set_max_bandwidth(bandwidth).map_err(opus_err)?;
        Ok(this)
    }

    /// Changes the target bitrate (bit/s, clamped to 6000..=510000); `None` = automatic.
    pub fn set_bitrate(&mut self, bitrate: Option<u32>) -> Result<(), CodecError> {
        let value = match bitrate {
            Some(b) => Bitrate::Bits(b.clamp(6_000, 510_000) as i32),
            None => Bitrate::Auto,
        };
        self.inner.set_bitrate(value).map_err(opus_err)
    }

    /// Turns in-band FEC on/off and sets the expected packet loss (0..=100 %).
    pub fn set_fec(&mut self, enabled: bool, expected_loss_pct: u8) -> Result<(), CodecError> {
        self.inner.set_inband_fec(enabled).map_err(opus_err)?;
        self.inner
            .set_packet_loss_perc(i32::from(expected_loss_pct.min(100)))
            .map_err(opus_err)
    }

    /// Turns DTX on/off.
    pub fn set_dtx(&mut self, enabled: bool) -> Result<(), CodecError> {
        self.inner.set_dtx(enabled).map_err(opus_err)
    }

    /// Whether the encoder is currently in DTX (only meaningful with DTX on).
    pub fn in_dtx(&mut self) -> Result<bool, CodecError> {
        self.inner.get_in_dtx().map_err(opus_err)
    }

    /// Encoder lookahead in samples at 48 kHz (algorithmic delay, for the E-model).
    pub fn lookahead(&mut self) -> Result<usize, CodecError> {
        self.inner
            .get_lookahead()
            .map(|v| v.max(0) as usize)
            .map_err(opus_err)
    }
}

impl Encoder for OpusEncoder {
    fn clock_rate(&self) -> u32 {
        CLOCK_RATE
    }

    fn frame_samples(&self) -> usize {
        self.frame_samples
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if pcm.len() != self.frame_samples {
            return Err(CodecError::FrameLength {
                expected: self.frame_samples,
                got: pcm.len(),
            });
        }
        let start = out.len();
        out.resize(start + MAX_PACKET_BYTES, 0);
        match self.inner.encode(pcm, &mut out[start..]) {
            Ok(n) => {
                out.truncate(start + n);
                Ok(())
            }
            Err(e) => {
                out.truncate(start);
                Err(opus_err(e))
            }
        }
    }
}

/// Opus decoder, 48 kHz mono (stereo packets are down-mixed by libopus).
pub struct OpusDecoder {
    inner: opus::Decoder,
    scratch: Vec<i16>,
}

impl std::fmt::Debug for OpusDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpusDecoder").finish_non_exhaustive()
    }
}

impl OpusDecoder {
    /// Creates a decoder.
    pub fn new() -> Result<Self, CodecError> {
        let inner = opus::Decoder::new(CLOCK_RATE, Channels::Mono).map_err(opus_err)?;
        Ok(Self {
            inner,
            scratch: vec![0; MAX_PACKET_SAMPLES],
        })
    }

    /// Samples (at 48 kHz) that `payload` decodes to, or an error for a malformed packet.
    pub fn packet_samples(payload: &[u8]) -> Result<usize, CodecError> {
        if payload.is_empty() {
            return Err(CodecError::InvalidPayload("empty Opus payload"));
        }
        let n = opus::packet::get_nb_samples(payload, CLOCK_RATE).map_err(opus_err)?;
        if n == 0 || n > MAX_PACKET_SAMPLES {
            return Err(CodecError::InvalidPayload(
                "Opus packet duration out of range",
            ));
        }
        Ok(n)
    }

    fn check_length(samples: usize) -> Result<(), CodecError> {
        if !samples.is_multiple_of(QUANTUM) {
            return Err(CodecError::Unsupported(
                "Opus PLC/FEC length must be a multiple of 2.5 ms",
            ));
        }
        Ok(())
    }
}

impl Decoder for OpusDecoder {
    fn clock_rate(&self) -> u32 {
        CLOCK_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let n = Self::packet_samples(payload)?;
        let got = self
            .inner
            .decode(payload, &mut self.scratch[..n], false)
            .map_err(opus_err)?;
        out.extend_from_slice(&self.scratch[..got.min(n)]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError> {
        Self::check_length(samples)?;
        if samples > MAX_CONCEAL {
            return Err(CodecError::Unsupported(
                "concealment longer than 1 s in one call",
            ));
        }
        let mut remaining = samples;
        while remaining > 0 {
            // libopus conceals at most one packet's worth well; go 20 ms at a time.
            let chunk = remaining.min(960);
            let got = self
                .inner
                .decode(&[], &mut self.scratch[..chunk], false)
                .map_err(opus_err)?;
            out.extend_from_slice(&self.scratch[..got.min(chunk)]);
            // Keep the promised length even if libopus returned less.
            out.extend(std::iter::repeat_n(0, chunk - got.min(chunk)));
            remaining -= chunk;
        }
        Ok(())
    }

    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<bool, CodecError> {
        Self::packet_samples(next_payload)?;
        Self::check_length(samples)?;
        if samples == 0 || samples > MAX_PACKET_SAMPLES {
            return Err(CodecError::Unsupported(
                "Opus FEC length must be 2.5..=120 ms",
            ));
        }
        let got = self
            .inner
            .decode(next_payload, &mut self.scratch[..samples], true)
            .map_err(opus_err)?;
        out.extend_from_slice(&self.scratch[..got.min(samples)]);
        out.extend(std::iter::repeat_n(0, samples - got.min(samples)));
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{dominant_tone_ratio, mean_square, sine};
    use super::*;

    fn encode_tone(config: &OpusConfig, frames: usize) -> Vec<Vec<u8>> {
        let mut enc = OpusEncoder::new(config).unwrap();
        (0..frames)
            .map(|f| {
                let mut payload = Vec::new();
                enc.encode(&sine(440.0, CLOCK_RATE, 8000.0, f * 960, 960), &mut payload)
                    .unwrap();
                payload
            })
            .collect()
    }

    #[test]
    fn fmtp_parsing() {
        let c = OpusConfig::from_fmtp(
            "minptime=10; useinbandfec=0;usedtx=1; maxaveragebitrate=20000;maxplaybackrate=16000",
        );
        assert!(!c.fec);
        assert!(c.dtx);
        assert_eq!(c.bitrate, Some(20_000));
        assert_eq!(c.max_playback_rate, 16_000);
        assert_eq!(
            OpusConfig::from_fmtp("garbage;;=;maxaveragebitrate=1"),
            OpusConfig {
                bitrate: Some(6_000),
                ..OpusConfig::default()
            }
        );
    }

    #[test]
    #[allow(clippy::print_stdout)] // reports measured numbers
    fn tone_survives_encode_decode() {
        let packets = encode_tone(&OpusConfig::default(), 50);
        let mut dec = OpusDecoder::new().unwrap();
        let mut pcm = Vec::new();
        for p in &packets {
            assert!(p.len() > 2 && p.len() < 400, "len {}", p.len());
            dec.decode(p, &mut pcm).unwrap();
        }
        assert_eq!(pcm.len(), 50 * 960);
        // Skip the first 100 ms (codec warm-up and delay).
        let ratio = dominant_tone_ratio(&pcm[4800..], CLOCK_RATE, 440.0);
        println!("opus 440 Hz tone ratio {ratio:.4}");
        assert!(ratio > 0.9, "ratio {ratio}");
        assert!(dominant_tone_ratio(&pcm[4800..], CLOCK_RATE, 1000.0) < 0.01);
    }

    #[test]
    #[allow(clippy::print_stdout)] // reports measured numbers
    fn plc_and_fec_produce_audio_of_the_right_length() {
        let config = OpusConfig {
            expected_loss_pct: 20,
            ..OpusConfig::default()
        };
        let packets = encode_tone(&config, 30);
        let mut dec = OpusDecoder::new().unwrap();
        let mut pcm = Vec::new();
        for p in &packets[..20] {
            dec.decode(p, &mut pcm).unwrap();
        }
        // Packet 20 lost: recover it from packet 21's FEC.
        let mut fec = Vec::new();
        assert!(dec.decode_fec(&packets[21], 960, &mut fec).unwrap());
        assert_eq!(fec.len(), 960);
        let fec_ratio = dominant_tone_ratio(&fec, CLOCK_RATE, 440.0);
        println!(
            "opus FEC frame: power {:.0}, 440 Hz ratio {fec_ratio:.3}",
            mean_square(&fec)
        );
        assert!(mean_square(&fec) > 1.0e5, "FEC output is silent");
        dec.decode(&packets[21], &mut pcm).unwrap();
        // Packet 22 lost with nothing to recover from: PLC.
        let mut plc = Vec::new();
        dec.conceal(960, &mut plc).unwrap();
        assert_eq!(plc.len(), 960);
        let plc_ratio = dominant_tone_ratio(&plc, CLOCK_RATE, 440.0);
        println!(
            "opus PLC frame: power {:.0}, 440 Hz ratio {plc_ratio:.3}",
            mean_square(&plc)
        );
        assert!(mean_square(&plc) > 1.0e5, "PLC output is silent");
        assert!(plc_ratio > 0.5);
        for p in &packets[23..] {
            dec.decode(p, &mut pcm).unwrap();
        }
        // Bad lengths are errors, not panics.
        assert!(dec.conceal(100, &mut plc).is_err());
        assert!(dec.conceal(MAX_CONCEAL + QUANTUM, &mut plc).is_err());
        assert!(dec.decode_fec(&packets[0], 0, &mut plc).is_err());
        assert!(dec.decode_fec(&[], 960, &mut plc).is_err());
        assert!(dec.decode(&[], &mut plc).is_err());
        dec.conceal(2400, &mut plc).unwrap();
    }

    #[test]
    fn dtx_shrinks_silence() {
        let config = OpusConfig {
            dtx: true,
            ..OpusConfig::default()
        };
        let mut enc = OpusEncoder::new(&config).unwrap();
        let mut small = 0;
        for _ in 0..50 {
            let mut payload = Vec::new();
            enc.encode(&[0; 960], &mut payload).unwrap();
            if is_dtx_payload(&payload) {
                small += 1;
            }
        }
        assert!(small > 30, "only {small} DTX frames");
        assert!(enc.in_dtx().unwrap());
        assert!(enc.lookahead().unwrap() > 0);
        assert!(enc.encode(&[0; 480], &mut Vec::new()).is_err());
        assert!(
            OpusEncoder::new(&OpusConfig {
                frame_ms: 30,
                ..OpusConfig::default()
            })
            .is_err()
        );
    }
}
