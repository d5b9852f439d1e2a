//! G.711 µ-law (PCMU) and A-law (PCMA), bit-exact with the ITU-T G.191 reference code,
//! plus packet-loss concealment in the style of G.711 Appendix I.
//!
//! # Companding
//! [`linear_to_ulaw`]/[`ulaw_to_linear`] and [`linear_to_alaw`]/[`alaw_to_linear`] follow
//! the G.191 STL `g711.c` bit operations (one's-complement magnitude for negative input, the
//! 0x55 even-bit inversion of A-law, the 33 bias of µ-law). Expansion uses 256-entry tables
//! built at compile time from the same bit operations. Input is 16-bit linear; µ-law uses its
//! top 14 bits and A-law its top 13 bits, as G.711 specifies.
//!
//! # Packet-loss concealment (what [`G711Decoder::conceal`] does)
//! Modelled on G.711 Appendix I (periodic waveform extrapolation), with one deliberate
//! difference: Appendix I delays the output by 3.75 ms so it can cross-fade into the first
//! concealed samples; we add no delay and instead cross-fade the start of the synthetic
//! signal with a mirror of the last received quarter period (as spandsp's `plc.c` does).
//!
//! * History: the last 390 samples (48.75 ms) of output are kept.
//! * Pitch: at the start of an erasure, the period `T` (40..=120 samples, 66–200 Hz) that
//!   maximises the normalised cross-correlation of the last 20 ms with the history is found.
//! * Synthesis: the last `T` samples are repeated; the last quarter period of the repeated
//!   block is cross-faded with the samples that precede it, so the loop has no click.
//!   After 10 ms of erasure the repeated block grows to 2 periods and after 20 ms to 3
//!   periods (keeping the phase), which avoids the buzzy sound of one repeated period.
//! * Attenuation: none for the first 10 ms, then linear at 20 % per 10 ms, silence from
//!   60 ms on.
//! * Recovery: the first good frame after an erasure is cross-faded with the continued
//!   synthetic signal over a quarter period plus 4 ms per extra 10 ms of erasure (max 10 ms).

use super::{CodecError, Decoder, Encoder, saturate};

/// Which G.711 companding law.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Law {
    /// µ-law, RTP payload type 0 "PCMU".
    MuLaw,
    /// A-law, RTP payload type 8 "PCMA".
    ALaw,
}

/// G.711 RTP clock rate.
pub const CLOCK_RATE: u32 = 8000;
/// Samples in a 20 ms G.711 frame.
pub const FRAME_SAMPLES_20MS: usize = 160;

/// Compresses one 16-bit linear sample to µ-law (G.191 `ulaw_compress`).
pub fn linear_to_ulaw(sample: i16) -> u8 {
    let x = i32::from(sample);
    // One's complement for negative input, 14-bit magnitude, plus the bias of 33.
    let mut absno = if x < 0 {
        ((!x) >> 2) + 33
    } else {
        (x >> 2) + 33
    };
    if absno > 0x1FFF {
        absno = 0x1FFF;
    }
    let mut i = absno >> 6;
    let mut segno = 1;
    while i != 0 {
        segno += 1;
        i >>= 1;
    }
    let high_nibble = 0x08 - segno;
    let low_nibble = 0x0F - ((absno >> segno) & 0x0F);
    let mut code = (high_nibble << 4) | low_nibble;
    if x >= 0 {
        code |= 0x80;
    }
    code as u8
}

/// Expands one µ-law byte to 16-bit linear (G.191 `ulaw_expand`), by table.
pub fn ulaw_to_linear(code: u8) -> i16 {
    ULAW_TABLE[usize::from(code)]
}

/// Compresses one 16-bit linear sample to A-law (G.191 `alaw_compress`).
pub fn linear_to_alaw(sample: i16) -> u8 {
    let x = i32::from(sample);
    // One's complement for negative input, 12-bit magnitude.
    let mut ix = if x < 0 { (!x) >> 4 } else { x >> 4 };
    if ix > 15 {
        let mut iexp = 1;
        while ix > 16 + 15 {
            ix >>= 1;
            iexp += 1;
        }
        ix -= 16;
        ix += iexp << 4;
    }
    if x >= 0 {
        ix |= 0x80;
    }
    (ix ^ 0x55) as u8
}

/// Expands one A-law byte to 16-bit linear (G.191 `alaw_expand`), by table.
pub fn alaw_to_linear(code: u8) -> i16 {
    ALAW_TABLE[usize::from(code)]
}

const fn ulaw_expand(code: u8) -> i16 {
    let sign: i32 = if code < 0x80 { -1 } else { 1 };
    let m = !(code as i32);
    let exponent = (m >> 4) & 0x07;
    let segment = exponent + 1;
    let mantissa = m & 0x0F;
    let step = 4 << segment;
    (sign * ((0x80 << exponent) + step * mantissa + step / 2 - 4 * 33)) as i16
}

const fn alaw_expand(code: u8) -> i16 {
    let ix = ((code ^ 0x55) & 0x7F) as i32;
    let iexp = ix >> 4;
    let mut mant = ix & 0x0F;
    if iexp > 0 {
        mant += 16;
    }
    mant = (mant << 4) + 0x08;
    if iexp > 1 {
        mant <<= iexp - 1;
    }
    (if code > 127 { mant } else { -mant }) as i16
}

const fn build_table(law: Law) -> [i16; 256] {
    let mut table = [0i16; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = match law {
            Law::MuLaw => ulaw_expand(i as u8),
            Law::ALaw => alaw_expand(i as u8),
        };
        i += 1;
    }
    table
}

/// µ-law expansion table (code → linear).
pub static ULAW_TABLE: [i16; 256] = build_table(Law::MuLaw);
/// A-law expansion table (code → linear).
pub static ALAW_TABLE: [i16; 256] = build_table(Law::ALaw);

/// G.711 encoder (PCMU or PCMA).
#[derive(Debug, Clone)]
pub struct G711Encoder {
    law: Law,
    frame_samples: usize,
}

impl G711Encoder {
    /// A 20 ms (160-sample) encoder.
    pub fn new(law: Law) -> Self {
        Self {
            law,
            frame_samples: FRAME_SAMPLES_20MS,
        }
    }

    /// An encoder for `ptime_ms` packets (10..=120 ms in steps of 10 ms, else an error).
    pub fn with_ptime(law: Law, ptime_ms: u32) -> Result<Self, CodecError> {
        if !(10..=120).contains(&ptime_ms) || !ptime_ms.is_multiple_of(10) {
            return Err(CodecError::Unsupported(
                "G.711 ptime must be 10..=120 ms, a multiple of 10",
            ));
        }
        Ok(Self {
            law,
            frame_samples: (ptime_ms * 8) as usize,
        })
    }

    /// Companding law of this encoder.
    pub fn law(&self) -> Law {
        self.law
    }
}

impl Encoder for G711Encoder {
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
        let compress = match self.law {
            Law::MuLaw => linear_to_ulaw,
            Law::ALaw => linear_to_alaw,
        };
        out.extend(pcm.iter().map(|&s| compress(s)));
        Ok(())
    }
}

/// Longest G.711 payload accepted by [`G711Decoder::decode`] (1 s).
pub const MAX_PAYLOAD: usize = 8000;
/// Longest concealment accepted in one [`Decoder::conceal`] call (1 s).
pub const MAX_CONCEAL: usize = 8000;

/// G.711 decoder (PCMU or PCMA) with Appendix I–style concealment (see the module docs).
#[derive(Debug, Clone)]
pub struct G711Decoder {
    law: Law,
    plc: Plc,
}

impl G711Decoder {
    /// A decoder for `law`.
    pub fn new(law: Law) -> Self {
        Self {
            law,
            plc: Plc::new(),
        }
    }

    /// Companding law of this decoder.
    pub fn law(&self) -> Law {
        self.law
    }
}

impl Decoder for G711Decoder {
    fn clock_rate(&self) -> u32 {
        CLOCK_RATE
    }

    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        if payload.is_empty() {
            return Err(CodecError::InvalidPayload("empty G.711 payload"));
        }
        if payload.len() > MAX_PAYLOAD {
            return Err(CodecError::InvalidPayload("G.711 payload longer than 1 s"));
        }
        let table = match self.law {
            Law::MuLaw => &ULAW_TABLE,
            Law::ALaw => &ALAW_TABLE,
        };
        let start = out.len();
        out.extend(payload.iter().map(|&b| table[usize::from(b)]));
        self.plc.good_frame(&mut out[start..]);
        Ok(())
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError> {
        if samples > MAX_CONCEAL {
            return Err(CodecError::Unsupported(
                "concealment longer than 1 s in one call",
            ));
        }
        self.plc.conceal(samples, out);
        Ok(())
    }

    fn decode_fec(
        &mut self,
        _next_payload: &[u8],
        _samples: usize,
        _out: &mut Vec<i16>,
    ) -> Result<bool, CodecError> {
        Ok(false)
    }
}

const HISTORY_LEN: usize = 390;
const PITCH_MIN: usize = 40;
const PITCH_MAX: usize = 120;
const CORR_LEN: usize = 160;
/// 10 ms at 8 kHz.
const TEN_MS: usize = 80;
/// Erasure length after which the output is silent (60 ms).
const SILENCE_AFTER: usize = 6 * TEN_MS;

/// Waveform-repetition concealment state (8 kHz).
#[derive(Debug, Clone)]
struct Plc {
    /// Last `HISTORY_LEN` output samples, oldest first.
    history: Vec<f32>,
    /// Snapshot of `history` taken when the current erasure began.
    source: Vec<f32>,
    /// The loop being repeated during an erasure.
    cycle: Vec<f32>,
    /// Position in `cycle` of the next synthetic sample.
    pos: usize,
    pitch: usize,
    periods: usize,
    /// Samples concealed so far in the current erasure (0 = not in an erasure).
    erased: usize,
}

impl Plc {
    fn new() -> Self {
        Self {
            history: vec![0.0; HISTORY_LEN],
            source: Vec::new(),
            cycle: Vec::new(),
            pos: 0,
            pitch: PITCH_MIN,
            periods: 1,
            erased: 0,
        }
    }

    fn push_history(&mut self, samples: impl IntoIterator<Item = f32>) {
        self.history.extend(samples);
        let excess = self.history.len().saturating_sub(HISTORY_LEN);
        self.history.drain(..excess);
    }

    /// A good frame arrived: cross-fade out of a pending erasure, then remember it.
    fn good_frame(&mut self, frame: &mut [i16]) {
        if self.erased > 0 {
            let extra_tens = (self.erased / TEN_MS).saturating_sub(1);
            let ola = (self.pitch / 4 + extra_tens * 32)
                .min(TEN_MS)
                .min(frame.len());
            for (i, sample) in frame.iter_mut().take(ola).enumerate() {
                let w = (i + 1) as f32 / (ola + 1) as f32;
                let synthetic = self.next_synthetic();
                *sample = saturate(w * f32::from(*sample) + (1.0 - w) * synthetic);
            }
            self.erased = 0;
        }
        self.push_history(frame.iter().map(|&s| f32::from(s)));
    }

    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) {
        let mut produced = Vec::with_capacity(samples);
        let mut start = 0;
        if self.erased == 0 && samples > 0 {
            self.start_erasure();
            // Cross-fade the first quarter period with a mirror of the last real samples,
            // so the synthetic signal starts where the real one stopped.
            let q = (self.pitch / 4).min(samples);
            for i in 0..q {
                let w = (i + 1) as f32 / (q + 1) as f32;
                let mirror = self.history[HISTORY_LEN - 1 - i];
                let synthetic = self.next_synthetic();
                produced.push((1.0 - w) * mirror + w * synthetic);
            }
            start = q;
        }
        for _ in start..samples {
            produced.push(self.next_synthetic());
        }
        out.extend(produced.iter().map(|&s| saturate(s)));
        self.push_history(produced);
    }

    fn start_erasure(&mut self) {
        self.source = self.history.clone();
        self.pitch = estimate_pitch(&self.source);
        self.cycle.clear();
        self.periods = 0;
        self.set_periods(1);
        self.pos = 0;
        self.erased = 0;
    }

    /// Builds the repeated loop from the last `periods` pitch periods of `source`.
    fn set_periods(&mut self, periods: usize) {
        let n = self.source.len();
        let len = (self.pitch * periods).min(n);
        let q = (self.pitch / 4).min(n - len);
        let h = &self.source;
        let mut cycle: Vec<f32> = h[n - len..].to_vec();
        // Cross-fade the loop's tail into the samples that precede its head.
        for i in len - q..len {
            let w = (i - (len - q) + 1) as f32 / (q + 1) as f32;
            cycle[i] = (1.0 - w) * h[n - len + i] + w * h[n + i - 2 * len];
        }
        if self.periods != periods && !self.cycle.is_empty() {
            // Keep the phase: the same source sample sits `len - old_len` further on.
            self.pos += len - self.cycle.len();
        }
        self.cycle = cycle;
        self.periods = periods;
        if self.pos >= self.cycle.len() {
            self.pos %= self.cycle.len().max(1);
        }
    }

    /// Next sample of the (attenuated) periodic extension.
    fn next_synthetic(&mut self) -> f32 {
        if self.cycle.is_empty() {
            return 0.0;
        }
        if self.erased == TEN_MS && self.periods < 2 {
            self.set_periods(2);
        } else if self.erased == 2 * TEN_MS && self.periods < 3 {
            self.set_periods(3);
        }
        let gain = if self.erased < TEN_MS {
            1.0
        } else if self.erased >= SILENCE_AFTER {
            0.0
        } else {
            1.0 - 0.2 * (self.erased - TEN_MS) as f32 / TEN_MS as f32
        };
        let value = self.cycle[self.pos] * gain.max(0.0);
        self.pos = (self.pos + 1) % self.cycle.len();
        self.erased = self.erased.saturating_add(1);
        value
    }
}

/// Pitch period (in samples) maximising the normalised cross-correlation between the last
/// `CORR_LEN` samples of `h` and the same span `lag` samples earlier.
fn estimate_pitch(h: &[f32]) -> usize {
    let n = h.len();
    if n < CORR_LEN + PITCH_MAX {
        return PITCH_MIN;
    }
    let target = &h[n - CORR_LEN..];
    let mut best = (PITCH_MIN, f32::MIN);
    for lag in PITCH_MIN..=PITCH_MAX {
        let past = &h[n - CORR_LEN - lag..n - lag];
        let (mut cross, mut energy) = (0.0f32, 0.0f32);
        for (a, b) in target.iter().zip(past) {
            cross += a * b;
            energy += b * b;
        }
        let score = if energy > 0.0 {
            cross / energy.sqrt()
        } else {
            0.0
        };
        if score > best.1 {
            best = (lag, score);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::super::{dominant_tone_ratio, mean_square, sine};
    use super::*;

    #[test]
    fn ulaw_known_values() {
        assert_eq!(ulaw_to_linear(0x00), -32124);
        assert_eq!(ulaw_to_linear(0x80), 32124);
        assert_eq!(ulaw_to_linear(0xFF), 0);
        assert_eq!(ulaw_to_linear(0x7F), 0);
        assert_eq!(ulaw_to_linear(0xFE), 8);
        assert_eq!(ulaw_to_linear(0x7E), -8);
        assert_eq!(ulaw_to_linear(0xF0), 120);
        assert_eq!(linear_to_ulaw(0), 0xFF);
        assert_eq!(linear_to_ulaw(-1), 0x7F);
        assert_eq!(linear_to_ulaw(32767), 0x80);
        assert_eq!(linear_to_ulaw(-32768), 0x00);
        assert_eq!(linear_to_ulaw(1000), 0xCE);
        assert_eq!(linear_to_ulaw(-1000), 0x4E);
    }

    #[test]
    fn alaw_known_values() {
        assert_eq!(alaw_to_linear(0xD5), 8);
        assert_eq!(alaw_to_linear(0x55), -8);
        assert_eq!(alaw_to_linear(0xAA), 32256);
        assert_eq!(alaw_to_linear(0x2A), -32256);
        assert_eq!(linear_to_alaw(0), 0xD5);
        assert_eq!(linear_to_alaw(-1), 0x55);
        assert_eq!(linear_to_alaw(32767), 0xAA);
        assert_eq!(linear_to_alaw(-32768), 0x2A);
        assert_eq!(linear_to_alaw(1000), 0xFA);
        assert_eq!(linear_to_alaw(-1000), 0x7A);
    }

    #[test]
    fn full_8bit_round_trip() {
        for code in 0..=255u8 {
            let a = linear_to_alaw(alaw_to_linear(code));
            assert_eq!(a, code, "A-law code {code:#04x}");
            let u = linear_to_ulaw(ulaw_to_linear(code));
            // µ-law has two zeros (0x7F "-0" and 0xFF "+0"); both expand to 0, which
            // compresses to 0xFF.
            let expected = if code == 0x7F { 0xFF } else { code };
            assert_eq!(u, expected, "µ-law code {code:#04x}");
        }
    }

    #[test]
    fn tables_are_monotonic_and_symmetric() {
        // Positive codes sorted by magnitude: µ-law 0xFF (smallest) .. 0x80 (largest).
        for c in 0x80..0xFFu8 {
            assert!(ulaw_to_linear(c) > ulaw_to_linear(c + 1));
            assert_eq!(ulaw_to_linear(c), -ulaw_to_linear(c & 0x7F));
        }
        for c in 0x80..=0xFFu8 {
            assert_eq!(alaw_to_linear(c), -alaw_to_linear(c & 0x7F));
        }
    }

    #[test]
    fn compress_is_nearest_level_for_every_input() {
        // Every 16-bit input quantises to a level within half a step of it (or clips).
        for x in i16::MIN..=i16::MAX {
            for (compress, expand, max) in [
                (
                    linear_to_ulaw as fn(i16) -> u8,
                    ulaw_to_linear as fn(u8) -> i16,
                    32124,
                ),
                (linear_to_alaw, alaw_to_linear, 32256),
            ] {
                let y = i32::from(expand(compress(x)));
                let x = i32::from(x);
                if x.abs() < max {
                    // Largest step: µ-law 1024, A-law 1024.
                    assert!((x - y).abs() <= 512 + 4, "x {x} y {y}");
                }
            }
        }
    }

    #[test]
    fn encode_decode_tone() {
        for law in [Law::MuLaw, Law::ALaw] {
            let mut enc = G711Encoder::new(law);
            let mut dec = G711Decoder::new(law);
            let mut pcm = Vec::new();
            for f in 0..10 {
                let frame = sine(1000.0, 8000, 8000.0, f * 160, 160);
                let mut payload = Vec::new();
                enc.encode(&frame, &mut payload).unwrap();
                assert_eq!(payload.len(), 160);
                dec.decode(&payload, &mut pcm).unwrap();
            }
            assert_eq!(pcm.len(), 1600);
            assert!(dominant_tone_ratio(&pcm, 8000, 1000.0) > 0.99);
            assert!(enc.encode(&[0; 10], &mut Vec::new()).is_err());
            assert!(dec.decode(&[], &mut pcm).is_err());
        }
        assert!(
            G711Encoder::with_ptime(Law::ALaw, 30)
                .unwrap()
                .frame_samples()
                == 240
        );
        assert!(G711Encoder::with_ptime(Law::ALaw, 25).is_err());
    }

    #[test]
    fn plc_repeats_the_pitch_and_fades_out() {
        let mut dec = G711Decoder::new(Law::MuLaw);
        let mut enc = G711Encoder::new(Law::MuLaw);
        let mut out = Vec::new();
        // A 200 Hz tone (period 40 samples) for 100 ms.
        for f in 0..5 {
            let mut payload = Vec::new();
            enc.encode(&sine(200.0, 8000, 10000.0, f * 160, 160), &mut payload)
                .unwrap();
            dec.decode(&payload, &mut out).unwrap();
        }
        let mut lost = Vec::new();
        dec.conceal(160, &mut lost).unwrap();
        assert_eq!(lost.len(), 160);
        // The first 10 ms are unattenuated and keep the tone.
        assert!(dominant_tone_ratio(&lost[..80], 8000, 200.0) > 0.9);
        assert!(mean_square(&lost[..80]) > 0.8 * 5.0e7);
        // No click at the boundary.
        let last = i32::from(*out.last().unwrap());
        assert!(
            (i32::from(lost[0]) - last).abs() < 2500,
            "{last} -> {}",
            lost[0]
        );
        // Keeps fading: silent after 60 ms.
        let mut more = Vec::new();
        dec.conceal(400, &mut more).unwrap();
        assert!(more[320..].iter().all(|&s| s == 0));
        assert!(mean_square(&more[..80]) < mean_square(&lost[80..]));
        // Recovery decodes normally afterwards.
        let mut payload = Vec::new();
        enc.encode(&sine(200.0, 8000, 10000.0, 0, 160), &mut payload)
            .unwrap();
        let mut rec = Vec::new();
        dec.decode(&payload, &mut rec).unwrap();
        assert_eq!(rec.len(), 160);
        assert!(!dec.decode_fec(&payload, 160, &mut rec).unwrap());
        assert!(dec.conceal(MAX_CONCEAL + 1, &mut rec).is_err());
    }

    #[test]
    fn plc_without_history_is_silent() {
        let mut dec = G711Decoder::new(Law::ALaw);
        let mut out = Vec::new();
        dec.conceal(160, &mut out).unwrap();
        assert_eq!(out, vec![0; 160]);
        dec.conceal(0, &mut out).unwrap();
        assert_eq!(out.len(), 160);
    }
}
