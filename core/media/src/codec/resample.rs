//! Mono 16-bit sample-rate conversion between 8, 16 and 48 kHz (any pair, either way).
//!
//! A rational polyphase FIR resampler: conceptually the input is up-sampled by `L`,
//! low-pass filtered and down-sampled by `M` (`to/from = L/M` in lowest terms); only the
//! filter phases actually needed are computed. The prototype low-pass is a Kaiser-windowed
//! sinc (β = 8.0, ≈ 80 dB stop-band) with 24 zero crossings on each side at the lower of
//! the two rates, cut off at 0.9 × the lower Nyquist frequency (passband flat to ~3.3 kHz at
//! 8 kHz, ~6.7 kHz at 16 kHz). The filter history and phase carry over between calls, so a
//! stream can be converted frame by frame with the same result as in one piece. The group
//! delay is [`Resampler::delay`] input samples (3 ms).

use super::{CodecError, saturate};

/// Zero crossings of the sinc on each side, counted at the lower rate.
const ZERO_CROSSINGS: usize = 24;
/// Kaiser window β.
const KAISER_BETA: f64 = 8.0;
/// Cut-off as a fraction of the lower rate's Nyquist frequency.
const CUTOFF: f64 = 0.9;

/// Rates the resampler accepts.
pub const SUPPORTED_RATES: [u32; 3] = [8000, 16000, 48000];

/// A streaming mono resampler.
#[derive(Debug, Clone)]
pub struct Resampler {
    from: u32,
    to: u32,
    up: usize,
    down: usize,
    /// Taps per polyphase branch.
    taps: usize,
    /// `phases[p][k]`: coefficient applied to input sample `i - k` for phase `p`.
    phases: Vec<Vec<f32>>,
    /// Last `taps - 1` input samples, oldest first.
    history: Vec<f32>,
    /// Position of the next output sample in the up-sampled domain, relative to the first
    /// sample of the next input block.
    pos: usize,
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Zeroth-order modified Bessel function of the first kind (series).
fn bessel_i0(x: f64) -> f64 {
    let mut sum = 1.0;
    let mut term = 1.0;
    let half = x / 2.0;
    for k in 1..50 {
        term *= (half / k as f64) * (half / k as f64);
        sum += term;
        if term < sum * 1e-12 {
            break;
        }
    }
    sum
}

impl Resampler {
    /// A resampler from `from` Hz to `to` Hz; both must be 8000, 16000 or 48000.
    pub fn new(from: u32, to: u32) -> Result<Self, CodecError> {
        if !SUPPORTED_RATES.contains(&from) || !SUPPORTED_RATES.contains(&to) {
            return Err(CodecError::Unsupported(
                "resampler rates must be 8000, 16000 or 48000",
            ));
        }
        let g = gcd(from as usize, to as usize);
        let up = to as usize / g;
        let down = from as usize / g;
        let factor = up.max(down);
        // Prototype filter at the up-sampled rate.
        let half = ZERO_CROSSINGS * factor;
        let len = 2 * half + 1;
        let fc = CUTOFF / (2.0 * factor as f64); // cycles per up-sampled sample
        let norm = bessel_i0(KAISER_BETA);
        let proto: Vec<f64> = (0..len)
            .map(|n| {
                let t = n as f64 - half as f64;
                let sinc = if t == 0.0 {
                    2.0 * fc
                } else {
                    (2.0 * std::f64::consts::PI * fc * t).sin() / (std::f64::consts::PI * t)
                };
                let r = t / half as f64;
                let window = bessel_i0(KAISER_BETA * (1.0 - r * r).max(0.0).sqrt()) / norm;
                sinc * window * up as f64
            })
            .collect();
        let taps = len.div_ceil(up);
        let phases = (0..up)
            .map(|p| {
                (0..taps)
                    .map(|k| proto.get(p + k * up).copied().unwrap_or(0.0) as f32)
                    .collect()
            })
            .collect();
        Ok(Self {
            from,
            to,
            up,
            down,
            taps,
            phases,
            history: vec![0.0; taps - 1],
            pos: 0,
        })
    }

    /// Input rate in Hz.
    pub fn from_rate(&self) -> u32 {
        self.from
    }

    /// Output rate in Hz.
    pub fn to_rate(&self) -> u32 {
        self.to
    }

    /// Group delay of the filter, in input samples (0 when the rates are equal).
    pub fn delay(&self) -> usize {
        if self.from == self.to {
            0
        } else {
            ZERO_CROSSINGS * self.up.max(self.down) / self.up
        }
    }

    /// Converts `input` and appends the result to `out`. Blocks of any length may be fed;
    /// each call emits every output sample whose input is complete (for 10/20 ms blocks
    /// that is exactly the block length scaled by the rate ratio).
    pub fn process(&mut self, input: &[i16], out: &mut Vec<i16>) {
        if self.from == self.to {
            out.extend_from_slice(input);
            return;
        }
        let keep = self.taps - 1;
        let mut buf = Vec::with_capacity(keep + input.len());
        buf.extend_from_slice(&self.history);
        buf.extend(input.iter().map(|&s| f32::from(s)));
        let end = input.len() * self.up;
        out.reserve(end / self.down + 1);
        while self.pos < end {
            let i = self.pos / self.up; // newest input sample used, index into `input`
            let phase = &self.phases[self.pos % self.up];
            let newest = keep + i;
            let acc: f32 = phase
                .iter()
                .enumerate()
                .map(|(k, c)| c * buf[newest - k])
                .sum();
            out.push(saturate(acc));
            self.pos += self.down;
        }
        self.pos -= end;
        let start = buf.len() - keep;
        self.history.copy_from_slice(&buf[start..]);
    }

    /// Clears the filter history (e.g. at a stream discontinuity).
    pub fn reset(&mut self) {
        self.history.iter_mut().for_each(|h| *h = 0.0);
        self.pos = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::super::{dominant_tone_ratio, goertzel_power, mean_square, sine};
    use super::*;

    fn run(from: u32, to: u32, input: &[i16], block: usize) -> Vec<i16> {
        let mut r = Resampler::new(from, to).unwrap();
        let mut out = Vec::new();
        for chunk in input.chunks(block) {
            r.process(chunk, &mut out);
        }
        out
    }

    #[test]
    #[allow(clippy::print_stdout)] // reports measured numbers
    fn tone_survives_48k_to_8k_and_back() {
        let input = sine(1000.0, 48000, 10000.0, 0, 48000);
        let mut down = Resampler::new(48000, 8000).unwrap();
        let mut up = Resampler::new(8000, 48000).unwrap();
        let (mut narrow, mut back) = (Vec::new(), Vec::new());
        for frame in input.chunks(960) {
            let start = narrow.len();
            down.process(frame, &mut narrow);
            assert_eq!(narrow.len() - start, 160);
            up.process(&narrow[start..], &mut back);
        }
        assert_eq!(back.len(), input.len());
        // Skip the filters' start-up; analyse 0.5 s (a whole number of periods).
        let steady = &back[4800..4800 + 24000];
        let ratio = dominant_tone_ratio(steady, 48000, 1000.0);
        let gain = (mean_square(steady) / mean_square(&input[4800..4800 + 24000])).sqrt();
        println!("48k->8k->48k: 1 kHz ratio {ratio:.5}, gain {gain:.4}");
        assert!(ratio > 0.999, "ratio {ratio}");
        assert!((gain - 1.0).abs() < 0.02, "gain {gain}");
        // Little energy anywhere else, e.g. at the images of 1 kHz around 8 kHz.
        for f in [500.0, 2000.0, 7000.0, 9000.0, 15000.0] {
            assert!(
                goertzel_power(steady, 48000, f) < 1e-4 * goertzel_power(steady, 48000, 1000.0)
            );
        }
        assert!(dominant_tone_ratio(&narrow[800..], 8000, 1000.0) > 0.999);
    }

    #[test]
    fn aliasing_is_suppressed() {
        // A 6 kHz tone cannot exist at 8 kHz: it must be filtered, not folded to 2 kHz.
        let input = sine(6000.0, 48000, 10000.0, 0, 48000);
        let out = run(48000, 8000, &input, 960);
        let steady = &out[800..];
        assert!(
            mean_square(steady) < 1e-4 * mean_square(&input),
            "{}",
            mean_square(steady)
        );
    }

    #[test]
    fn all_pairs_keep_a_500hz_tone_and_the_length() {
        for from in SUPPORTED_RATES {
            for to in SUPPORTED_RATES {
                let input = sine(500.0, from, 8000.0, 0, from as usize);
                let out = run(from, to, &input, from as usize / 50);
                assert_eq!(out.len(), to as usize, "{from}->{to}");
                let steady = &out[to as usize / 10..];
                assert!(
                    dominant_tone_ratio(steady, to, 500.0) > 0.999,
                    "{from}->{to}"
                );
            }
        }
        assert!(Resampler::new(44100, 8000).is_err());
    }

    #[test]
    fn chunking_does_not_change_the_output() {
        let input: Vec<i16> = sine(700.0, 16000, 9000.0, 0, 4000);
        for (from, to) in [(16000, 48000), (48000, 16000), (16000, 8000)] {
            let whole = run(from, to, &input, input.len());
            for block in [1, 7, 160, 333] {
                assert_eq!(
                    run(from, to, &input, block),
                    whole,
                    "{from}->{to} block {block}"
                );
            }
        }
        let mut r = Resampler::new(8000, 48000).unwrap();
        let mut out = Vec::new();
        r.process(&[], &mut out);
        assert!(out.is_empty());
        r.process(&[i16::MAX; 500], &mut out);
        r.process(&[i16::MIN; 500], &mut out);
        assert_eq!(out.len(), 6000);
        r.reset();
        assert_eq!(r.delay(), 24);
        assert_eq!(Resampler::new(8000, 8000).unwrap().delay(), 0);
    }
}
