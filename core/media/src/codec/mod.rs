//! Audio codecs behind two small traits, plus the helpers that go with them.
//!
//! * [`g711`]: PCMU/PCMA (ITU-T G.711, bit-exact with the G.191 reference) with a
//!   G.711 Appendix I–style packet-loss concealment.
//! * [`opus`]: Opus through libopus (48 kHz mono, VoIP application, in-band FEC, DTX).
//! * [`cn`](self::cn): RFC 3389 comfort noise payloads and a generator for DTX periods.
//! * [`dtmf`]: RFC 4733 telephone-event payloads, a sender and a de-duplicating receiver.
//! * [`resample`]: a polyphase windowed-sinc resampler between 8, 16 and 48 kHz.
//!
//! Conventions shared by every codec here:
//! * audio is mono, signed 16-bit PCM at the codec's RTP clock rate;
//! * `encode`/`decode`/`conceal`/`decode_fec` **append** to `out` (callers clear it when
//!   they want a fresh buffer), so one buffer can collect several frames;
//! * bad input (wrong frame length, a corrupt payload) is a [`CodecError`], never a panic.
//!
//! [`codec_for`] builds an encoder/decoder pair from an SDP `a=rtpmap`/`a=fmtp` description.
//! [`goertzel_power`] and [`dominant_tone_ratio`] measure tones in decoded or recorded audio.

pub mod cn;
pub mod dtmf;
pub mod g711;
pub mod opus;
pub mod resample;

use std::f64::consts::PI;

/// Why a codec operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The PCM frame handed to an encoder does not have the length the codec needs.
    #[error("frame has {got} samples, the codec needs {expected}")]
    FrameLength {
        /// Samples the codec expects per frame.
        expected: usize,
        /// Samples that were given.
        got: usize,
    },
    /// A payload could not be decoded (empty, truncated, corrupt).
    #[error("invalid payload: {0}")]
    InvalidPayload(&'static str),
    /// A parameter (clock rate, bitrate, duration...) is outside what the codec supports.
    #[error("unsupported parameter: {0}")]
    Unsupported(&'static str),
    /// libopus reported an error.
    #[error("opus: {0}")]
    Opus(String),
}

/// An audio encoder: PCM frames in, RTP payloads out.
pub trait Encoder: Send {
    /// RTP clock rate of the payloads (and sample rate of the PCM it takes), in Hz.
    fn clock_rate(&self) -> u32;
    /// Number of PCM samples [`Encoder::encode`] takes per call (one packet's worth).
    fn frame_samples(&self) -> usize;
    /// Encodes exactly [`Encoder::frame_samples`] samples and appends the payload to `out`.
    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError>;
}

/// An audio decoder: RTP payloads in, PCM out, with loss concealment.
pub trait Decoder: Send {
    /// RTP clock rate of the payloads (and sample rate of the PCM it produces), in Hz.
    fn clock_rate(&self) -> u32;
    /// Decodes one payload and appends its samples to `out`.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Packet-loss concealment: appends `samples` synthesized samples for a missing frame.
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError>;
    /// Recovers a lost frame of `samples` samples from the redundancy carried in the *next*
    /// packet (Opus in-band FEC) and appends it to `out`. Returns `Ok(false)` and appends
    /// nothing when the codec has no such redundancy; the caller then uses
    /// [`Decoder::conceal`]. After a successful call the caller still decodes
    /// `next_payload` normally for its own frame.
    fn decode_fec(
        &mut self,
        next_payload: &[u8],
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<bool, CodecError>;
}

/// Builds an encoder/decoder pair for an SDP payload format, or `None` when unsupported.
///
/// * `name` is the encoding name from `a=rtpmap` (case-insensitive): `PCMU`, `PCMA`,
///   `opus`, `CN`. `telephone-event` is not an audio codec: see [`dtmf`].
/// * `clock_rate` must be the format's RTP clock rate (8000 for G.711; 48000 for Opus;
///   8000, 16000 or 48000 for CN).
/// * `channels`: G.711 and CN are mono (1, or 0 meaning "not given"); Opus is always
///   signalled as 2 and is encoded/decoded here as mono (RFC 7587 allows that).
/// * `fmtp` is the `a=fmtp` parameter string without the payload type, e.g.
///   `"minptime=10;useinbandfec=1"`; see [`opus::OpusConfig::from_fmtp`].
///
/// Packets are 20 ms.
pub fn codec_for(
    name: &str,
    clock_rate: u32,
    channels: u8,
    fmtp: Option<&str>,
) -> Option<(Box<dyn Encoder>, Box<dyn Decoder>)> {
    let mono = channels <= 1;
    if name.eq_ignore_ascii_case("PCMU") && clock_rate == 8000 && mono {
        return Some((
            Box::new(g711::G711Encoder::new(g711::Law::MuLaw)),
            Box::new(g711::G711Decoder::new(g711::Law::MuLaw)),
        ));
    }
    if name.eq_ignore_ascii_case("PCMA") && clock_rate == 8000 && mono {
        return Some((
            Box::new(g711::G711Encoder::new(g711::Law::ALaw)),
            Box::new(g711::G711Decoder::new(g711::Law::ALaw)),
        ));
    }
    if name.eq_ignore_ascii_case("opus") && clock_rate == 48000 && channels <= 2 {
        let config = opus::OpusConfig::from_fmtp(fmtp.unwrap_or(""));
        let encoder = opus::OpusEncoder::new(&config).ok()?;
        let decoder = opus::OpusDecoder::new().ok()?;
        return Some((Box::new(encoder), Box::new(decoder)));
    }
    if name.eq_ignore_ascii_case("CN") && mono {
        let encoder = cn::CnEncoder::new(clock_rate).ok()?;
        let decoder = cn::CnDecoder::new(clock_rate).ok()?;
        return Some((Box::new(encoder), Box::new(decoder)));
    }
    None
}

/// Power of one frequency in `samples`, by the Goertzel algorithm.
///
/// The result is normalised so that a pure sine of amplitude `A` at `freq` gives `A²/2`
/// (its mean-square power), which makes it directly comparable with the mean-square power
/// of the whole signal (see [`dominant_tone_ratio`]). `freq` need not fall on a DFT bin;
/// a rectangular window is used, so pick a window that holds a whole number of periods (or
/// many periods) to keep leakage small. Returns 0 for an empty slice or a zero
/// `sample_rate`.
pub fn goertzel_power(samples: &[i16], sample_rate: u32, freq: f64) -> f64 {
    if samples.is_empty() || sample_rate == 0 {
        return 0.0;
    }
    let omega = 2.0 * PI * freq / f64::from(sample_rate);
    let coeff = 2.0 * omega.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    // |X(ω)|² for the (possibly non-integer) bin.
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    2.0 * power.max(0.0) / (n * n)
}

/// Share of the signal's power that sits at `freq`: `goertzel_power / mean-square power`.
///
/// About 1.0 for a clean tone at `freq`, near 0 when the tone is absent, and 0 for silence
/// or an empty slice. Use it to check that a decoded or recorded tone survived: e.g. a
/// G.711 round trip of a 1 kHz tone gives > 0.99, a tone buried in as much noise gives
/// about 0.5.
pub fn dominant_tone_ratio(samples: &[i16], sample_rate: u32, freq: f64) -> f64 {
    let total = mean_square(samples);
    if total <= 0.0 {
        return 0.0;
    }
    (goertzel_power(samples, sample_rate, freq) / total).min(1.0)
}

/// Mean-square power of `samples` (0 for an empty slice).
pub fn mean_square(samples: &[i16]) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    samples
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / samples.len() as f64
}

/// Generates `len` samples of a sine of `freq` Hz and peak `amplitude`, starting at sample
/// index `start` (so consecutive calls continue the same waveform). Test and demo helper.
pub fn sine(freq: f64, sample_rate: u32, amplitude: f64, start: usize, len: usize) -> Vec<i16> {
    let rate = f64::from(sample_rate.max(1));
    (start..start + len)
        .map(|n| {
            let v = amplitude * (2.0 * PI * freq * n as f64 / rate).sin();
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Saturates an `f32` sample to `i16` (rounding to nearest).
pub(crate) fn saturate(x: f32) -> i16 {
    x.round().clamp(-32768.0, 32767.0) as i16
}

/// Tiny deterministic xorshift generator (noise for comfort noise, tests).
#[derive(Debug, Clone)]
pub(crate) struct XorShift32(u32);

impl XorShift32 {
    /// Seeds the generator (a zero seed is replaced by a fixed non-zero one).
    pub(crate) fn new(seed: u32) -> Self {
        Self(if seed == 0 { 0x9E37_79B9 } else { seed })
    }

    /// Next raw 32-bit value.
    pub(crate) fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// Uniform value in [-1, 1).
    pub(crate) fn next_f32(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goertzel_normalisation_matches_sine_power() {
        let tone = sine(1000.0, 8000, 10000.0, 0, 800);
        let p = goertzel_power(&tone, 8000, 1000.0);
        // A²/2 = 5e7.
        assert!((p / 5.0e7 - 1.0).abs() < 0.01, "power {p}");
        assert!(dominant_tone_ratio(&tone, 8000, 1000.0) > 0.99);
        assert!(dominant_tone_ratio(&tone, 8000, 1500.0) < 0.01);
        assert_eq!(dominant_tone_ratio(&[], 8000, 1000.0), 0.0);
        assert_eq!(dominant_tone_ratio(&[0; 100], 8000, 1000.0), 0.0);
        assert_eq!(goertzel_power(&tone, 0, 1000.0), 0.0);
    }

    #[test]
    fn codec_for_known_and_unknown_names() {
        for (name, rate, ch) in [
            ("PCMU", 8000, 1),
            ("pcma", 8000, 0),
            ("opus", 48000, 2),
            ("CN", 8000, 1),
        ] {
            let (enc, dec) = codec_for(name, rate, ch, None).expect(name);
            assert_eq!(enc.clock_rate(), rate);
            assert_eq!(dec.clock_rate(), rate);
        }
        assert!(codec_for("PCMU", 16000, 1, None).is_none());
        assert!(codec_for("PCMU", 8000, 2, None).is_none());
        assert!(codec_for("telephone-event", 8000, 1, None).is_none());
        assert!(codec_for("G729", 8000, 1, None).is_none());
        assert!(codec_for("opus", 8000, 2, None).is_none());
        let (enc, _) = codec_for("opus", 48000, 2, Some("useinbandfec=1; usedtx=1")).unwrap();
        assert_eq!(enc.frame_samples(), 960);
    }

    #[test]
    fn every_codec_survives_garbage_payloads() {
        let mut rng = XorShift32::new(7);
        for name in ["PCMU", "PCMA", "opus", "CN"] {
            let rate = if name == "opus" { 48000 } else { 8000 };
            let (mut enc, mut dec) = codec_for(name, rate, 1, None).unwrap();
            let mut out = Vec::new();
            for round in 0..500 {
                let len = (rng.next_u32() % 300) as usize;
                let payload: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
                let _ = dec.decode(&payload, &mut out);
                let _ = dec.decode_fec(&payload, 960, &mut out);
                let _ = dec.conceal((rng.next_u32() % 2000) as usize, &mut out);
                let pcm: Vec<i16> = (0..(rng.next_u32() % 1200) as usize)
                    .map(|_| rng.next_u32() as i16)
                    .collect();
                let mut bytes = Vec::new();
                let _ = enc.encode(&pcm, &mut bytes);
                if round % 50 == 0 {
                    out.clear();
                }
            }
        }
    }
}
