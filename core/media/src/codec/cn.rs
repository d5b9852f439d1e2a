//! Comfort noise (RFC 3389): the `CN` payload and a simple generator for DTX periods.
//!
//! Payload: one byte of noise level in −dBov (0..=127, top bit zero) followed by zero or
//! more quantised reflection coefficients of an all-pole noise model. Conventions used here
//! (the RFC leaves analysis and synthesis to the implementation):
//! * 0 dBov is the RMS of a full-scale square wave (32767); level `L` means RMS
//!   `32767 · 10^(−L/20)`; 127 is used for digital silence.
//! * a reflection coefficient byte `b` means `k = (b − 127) / 128` (the same mapping as
//!   FFmpeg's CNG); the synthesis filter is `1 / A(z)`, `A(z) = 1 + Σ aᵢ z⁻ⁱ`, with the
//!   `aᵢ` obtained from the `k`s by the step-up recursion. |k| is capped at 0.99 when
//!   decoding so that any byte string gives a stable filter.
//!
//! [`CnEncoder`] turns a frame of background noise into a payload (level plus a 4th-order
//! spectral envelope by Levinson–Durbin); [`CnDecoder`] generates noise from the last
//! payload for as long as it is asked to (each `decode` yields 20 ms, `conceal` continues
//! the noise), so a receiver can fill a DTX gap with [`Decoder::conceal`].

use super::{CodecError, Decoder, Encoder, XorShift32, saturate};

/// Highest noise level value (−127 dBov, i.e. silence).
pub const MAX_LEVEL: u8 = 127;
/// Model order of the spectral envelope [`CnEncoder`] sends.
pub const ENCODER_ORDER: usize = 4;
/// Highest model order [`CnDecoder`] uses (extra coefficients are ignored, as the RFC allows).
pub const MAX_ORDER: usize = 16;
const FULL_SCALE_RMS: f32 = 32767.0;

/// A parsed RFC 3389 comfort-noise payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnPayload {
    /// Noise level in −dBov, 0..=127.
    pub level: u8,
    /// Quantised reflection coefficients (may be empty).
    pub reflection: Vec<u8>,
}

impl CnPayload {
    /// Parses a CN payload. Errors for an empty payload or a level byte with the
    /// (reserved, must-be-zero) top bit set.
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        let (&level, rest) = payload
            .split_first()
            .ok_or(CodecError::InvalidPayload("empty CN payload"))?;
        if level > MAX_LEVEL {
            return Err(CodecError::InvalidPayload(
                "CN level byte has its top bit set",
            ));
        }
        Ok(Self {
            level,
            reflection: rest.to_vec(),
        })
    }

    /// Serialises the payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1 + self.reflection.len());
        out.push(self.level.min(MAX_LEVEL));
        out.extend_from_slice(&self.reflection);
        out
    }

    /// RMS amplitude (16-bit scale) that the level stands for.
    pub fn rms(&self) -> f32 {
        level_to_rms(self.level)
    }

    /// The reflection coefficients as numbers in (−1, 1), stability-capped.
    pub fn coefficients(&self) -> Vec<f32> {
        self.reflection
            .iter()
            .take(MAX_ORDER)
            .map(|&b| byte_to_reflection(b))
            .collect()
    }
}

/// RMS (16-bit scale) for a level in −dBov; 127 gives 0.
pub fn level_to_rms(level: u8) -> f32 {
    if level >= MAX_LEVEL {
        return 0.0;
    }
    FULL_SCALE_RMS * 10f32.powf(-f32::from(level) / 20.0)
}

/// Level in −dBov (0..=127) for an RMS on the 16-bit scale.
pub fn rms_to_level(rms: f32) -> u8 {
    if rms.is_nan() || rms <= 0.0 {
        return MAX_LEVEL;
    }
    let db = -20.0 * (rms / FULL_SCALE_RMS).log10();
    db.round().clamp(0.0, f32::from(MAX_LEVEL)) as u8
}

fn byte_to_reflection(b: u8) -> f32 {
    ((f32::from(b) - 127.0) / 128.0).clamp(-0.99, 0.99)
}

fn reflection_to_byte(k: f32) -> u8 {
    (k * 128.0 + 127.0).round().clamp(0.0, 255.0) as u8
}

/// Reflection coefficients of order `order` for `pcm` by Levinson–Durbin (empty when the
/// frame is silent or too short).
fn analyse(pcm: &[i16], order: usize) -> Vec<f32> {
    if pcm.len() <= order {
        return Vec::new();
    }
    let x: Vec<f64> = pcm.iter().map(|&s| f64::from(s)).collect();
    let mut r = vec![0.0f64; order + 1];
    for (lag, value) in r.iter_mut().enumerate() {
        *value = x[lag..].iter().zip(&x).map(|(a, b)| a * b).sum();
    }
    if r[0] <= 0.0 {
        return Vec::new();
    }
    r[0] *= 1.0001; // white-noise correction keeps the recursion well conditioned
    let mut a = vec![0.0f64; order + 1];
    let mut err = r[0];
    let mut ks = Vec::with_capacity(order);
    for m in 1..=order {
        let acc: f64 = r[m] + (1..m).map(|i| a[i] * r[m - i]).sum::<f64>();
        let k = if err > 0.0 { -acc / err } else { 0.0 };
        let prev = a.clone();
        a[m] = k;
        for i in 1..m {
            a[i] = prev[i] + k * prev[m - i];
        }
        err *= 1.0 - k * k;
        ks.push(k as f32);
    }
    ks
}

/// Direct-form coefficients `a₁..aₙ` from reflection coefficients (step-up recursion).
fn step_up(ks: &[f32]) -> Vec<f32> {
    let mut a: Vec<f32> = Vec::with_capacity(ks.len());
    for (m, &k) in ks.iter().enumerate() {
        let prev = a.clone();
        for i in 0..m {
            a[i] = prev[i] + k * prev[m - 1 - i];
        }
        a.push(k);
    }
    a
}

fn check_rate(clock_rate: u32) -> Result<(), CodecError> {
    if matches!(clock_rate, 8000 | 16000 | 32000 | 48000) {
        Ok(())
    } else {
        Err(CodecError::Unsupported(
            "CN clock rate must be 8000, 16000, 32000 or 48000",
        ))
    }
}

/// Builds a CN payload describing 20 ms frames of background noise.
#[derive(Debug, Clone)]
pub struct CnEncoder {
    clock_rate: u32,
}

impl CnEncoder {
    /// An encoder for `clock_rate` (8000, 16000, 32000 or 48000).
    pub fn new(clock_rate: u32) -> Result<Self, CodecError> {
        check_rate(clock_rate)?;
        Ok(Self { clock_rate })
    }

    /// The payload describing `pcm` (any length): its level and spectral envelope.
    pub fn describe(pcm: &[i16]) -> CnPayload {
        let rms = super::mean_square(pcm).sqrt() as f32;
        let level = rms_to_level(rms);
        let reflection = if level >= MAX_LEVEL {
            Vec::new()
        } else {
            analyse(pcm, ENCODER_ORDER)
                .into_iter()
                .map(reflection_to_byte)
                .collect()
        };
        CnPayload { level, reflection }
    }
}

impl Encoder for CnEncoder {
    fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    fn frame_samples(&self) -> usize {
        self.clock_rate as usize / 50
    }

    fn encode(&mut self, pcm: &[i16], out: &mut Vec<u8>) -> Result<(), CodecError> {
        if pcm.len() != self.frame_samples() {
            return Err(CodecError::FrameLength {
                expected: self.frame_samples(),
                got: pcm.len(),
            });
        }
        out.extend(Self::describe(pcm).to_bytes());
        Ok(())
    }
}

/// Generates comfort noise from CN payloads.
#[derive(Debug, Clone)]
pub struct CnDecoder {
    clock_rate: u32,
    rms: f32,
    lpc: Vec<f32>,
    gain: f32,
    memory: Vec<f32>,
    rng: XorShift32,
}

impl CnDecoder {
    /// A generator for `clock_rate` (8000, 16000, 32000 or 48000); silent until the first
    /// payload arrives.
    pub fn new(clock_rate: u32) -> Result<Self, CodecError> {
        check_rate(clock_rate)?;
        Ok(Self {
            clock_rate,
            rms: 0.0,
            lpc: Vec::new(),
            gain: 0.0,
            memory: vec![0.0; MAX_ORDER],
            rng: XorShift32::new(0x1234_5678),
        })
    }

    /// Adopts the parameters of `payload` without producing audio.
    pub fn update(&mut self, payload: &CnPayload) {
        let ks = payload.coefficients();
        self.rms = payload.rms();
        // Excitation power = output power × Π(1 − k²); uniform noise in [-1,1) has
        // variance 1/3.
        let shaping: f32 = ks.iter().map(|k| 1.0 - k * k).product();
        self.gain = self.rms * (3.0 * shaping).sqrt();
        self.lpc = step_up(&ks);
    }

    /// Appends `samples` samples of noise with the current parameters.
    pub fn generate(&mut self, samples: usize, out: &mut Vec<i16>) {
        out.reserve(samples);
        for _ in 0..samples {
            let mut y = self.gain * self.rng.next_f32();
            for (a, m) in self.lpc.iter().zip(&self.memory) {
                y -= a * m;
            }
            self.memory.rotate_right(1);
            self.memory[0] = y;
            out.push(saturate(y));
        }
    }
}

impl Decoder for CnDecoder {
    fn clock_rate(&self) -> u32 {
        self.clock_rate
    }

    /// Adopts the payload's parameters and appends 20 ms of noise.
    fn decode(&mut self, payload: &[u8], out: &mut Vec<i16>) -> Result<(), CodecError> {
        let parsed = CnPayload::parse(payload)?;
        self.update(&parsed);
        self.generate(self.clock_rate as usize / 50, out);
        Ok(())
    }

    /// Continues the noise (this is how a DTX gap is filled).
    fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), CodecError> {
        if samples > self.clock_rate as usize {
            return Err(CodecError::Unsupported(
                "concealment longer than 1 s in one call",
            ));
        }
        self.generate(samples, out);
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

#[cfg(test)]
mod tests {
    use super::super::{XorShift32, goertzel_power, mean_square};
    use super::*;

    #[test]
    fn parse_and_serialise() {
        let p = CnPayload::parse(&[40, 120, 130]).unwrap();
        assert_eq!(p.level, 40);
        assert_eq!(p.reflection, vec![120, 130]);
        assert_eq!(p.to_bytes(), vec![40, 120, 130]);
        assert!(CnPayload::parse(&[]).is_err());
        assert!(CnPayload::parse(&[0x80]).is_err());
        assert_eq!(CnPayload::parse(&[127]).unwrap().rms(), 0.0);
        assert_eq!(rms_to_level(32767.0), 0);
        assert_eq!(rms_to_level(0.0), 127);
        assert_eq!(rms_to_level(327.67), 40);
        assert!((level_to_rms(40) - 327.67).abs() < 0.5);
        assert!(CnDecoder::new(11025).is_err());
    }

    #[test]
    fn generator_matches_level_and_spectrum() {
        // Low-pass noise: the running sum of white noise, leaky.
        let mut rng = XorShift32::new(99);
        let mut y = 0.0f32;
        let noise: Vec<i16> = (0..160)
            .map(|_| {
                y = 0.9 * y + 300.0 * rng.next_f32();
                y as i16
            })
            .collect();
        let mut enc = CnEncoder::new(8000).unwrap();
        let mut payload = Vec::new();
        enc.encode(&noise, &mut payload).unwrap();
        assert_eq!(payload.len(), 1 + ENCODER_ORDER);
        let mut dec = CnDecoder::new(8000).unwrap();
        let mut out = Vec::new();
        dec.decode(&payload, &mut out).unwrap();
        dec.conceal(8000, &mut out).unwrap();
        assert_eq!(out.len(), 8160);
        let want = mean_square(&noise).sqrt();
        let got = mean_square(&out).sqrt();
        assert!((got / want - 1.0).abs() < 0.25, "rms {got} vs {want}");
        // The envelope is low-pass like the input.
        assert!(goertzel_power(&out, 8000, 300.0) > 4.0 * goertzel_power(&out, 8000, 3500.0));
        // Silence in, silence out.
        let mut silent = Vec::new();
        enc.encode(&[0; 160], &mut silent).unwrap();
        assert_eq!(silent, vec![127]);
        let mut out = Vec::new();
        dec.decode(&silent, &mut out).unwrap();
        assert!(out.iter().all(|&s| s == 0));
    }

    #[test]
    fn extreme_coefficients_stay_bounded() {
        let mut dec = CnDecoder::new(8000).unwrap();
        let mut out = Vec::new();
        dec.decode(
            &[
                0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255, 0, 255,
            ],
            &mut out,
        )
        .unwrap();
        dec.conceal(8000, &mut out).unwrap();
        assert!(out.iter().all(|s| s.unsigned_abs() <= 32768));
    }
}
