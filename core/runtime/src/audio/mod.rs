//! Audio devices: where the media pipeline's PCM comes from and goes to.
//!
//! The media pipeline works in 20 ms frames of mono `i16` PCM at 48 000 Hz
//! ([`FRAME_SAMPLES`] = 960 samples). Every device speaks that format at its boundary and
//! converts internally (channels, rate, sample format) when the hardware or file differs.
//!
//! ```text
//!              capture: mpsc::Sender<AudioFrame>  (try_send, never blocks the device)
//!   device  ───────────────────────────────────────────────▶  pipeline (encoder)
//!   device  ◀───────────────────────────────────────────────  pipeline (decoder)
//!              playout: PlayoutSink  (bounded buffer; push never blocks, pull
//!                                     fills silence on underrun and counts it)
//! ```
//!
//! Devices:
//! - [`FakeDevice`]: clocked by tokio timers, synthetic source, records playout in memory.
//!   Runs instantly under `#[tokio::test(start_paused = true)]`.
//! - [`WavDevice`]: plays a WAV file as the microphone and records playout into a WAV file,
//!   paced in real time (or virtual time under a paused tokio clock).
//! - [`CpalDevice`]: the machine's sound card through cpal.
//! - [`ForeignDevice`]: a handle through which an Android/iOS shell that owns the real audio
//!   pushes captured PCM and pulls playout PCM.
//!
//! Test helpers: [`tone`], [`write_tone_wav`], [`dominant_frequency`], [`tone_seconds`],
//! [`wav_dominant_frequency`] and [`wav_tone_seconds`] (Goertzel over 20 ms windows).
#![forbid(unsafe_code)]

mod cpal_device;
mod fake;
mod foreign;
mod wav;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;

pub use cpal_device::{CpalDevice, CpalDeviceInfo};
pub use fake::{FakeDevice, FakeSource, Recorder};
pub use foreign::ForeignDevice;
pub use wav::{
    WavDevice, read_wav_48k_mono, wav_dominant_frequency, wav_tone_seconds, write_tone_wav,
};

/// The pipeline's sample rate in Hz.
pub const SAMPLE_RATE: u32 = 48_000;

/// Samples in one 20 ms frame at [`SAMPLE_RATE`] (mono).
pub const FRAME_SAMPLES: usize = 960;

/// Duration of one frame.
pub const FRAME_DURATION: Duration = Duration::from_millis(20);

/// Default capacity of a [`PlayoutSink`]: 10 frames (200 ms).
pub const DEFAULT_PLAYOUT_CAPACITY: usize = 10 * FRAME_SAMPLES;

/// One 20 ms frame of captured audio: mono `i16` PCM at 48 kHz.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioFrame {
    /// The samples; [`FRAME_SAMPLES`] long when produced by a device.
    pub samples: Vec<i16>,
    /// Position of the frame's first sample on the device clock: the number of samples the
    /// device has produced since `start` (dropped frames included), expressed as time.
    pub timestamp: Duration,
}

impl AudioFrame {
    /// A frame of [`FRAME_SAMPLES`] zero samples at `timestamp`.
    pub fn silence(timestamp: Duration) -> Self {
        Self {
            samples: vec![0; FRAME_SAMPLES],
            timestamp,
        }
    }
}

/// Everything that can go wrong with audio devices and WAV files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AudioError {
    /// A WAV file could not be opened (missing, unreadable).
    #[error("cannot open WAV file {path}: {reason}")]
    WavOpen {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A WAV file is corrupt, truncated, or in a format we do not read.
    #[error("bad WAV file {path}: {reason}")]
    WavFormat {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A WAV file could not be created, written or finalized.
    #[error("cannot write WAV file {path}: {reason}")]
    WavWrite {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The sound system (cpal host or device) refused: no sound card, device busy,
    /// unsupported configuration, stream failure.
    #[error("audio device error: {0}")]
    Device(String),
    /// `start` was called on a device that is already running.
    #[error("audio device {0} is already started")]
    AlreadyStarted(String),
    /// A clocked device was started outside a tokio runtime.
    #[error("audio device {0} must be started from within a tokio runtime")]
    NoRuntime(String),
    /// An argument was out of range (sample rate 0, negative duration, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The analysed audio contains no signal.
    #[error("no signal: {0}")]
    Silent(String),
}

/// An audio device: a source of captured frames and a destination for playout.
///
/// Lifecycle: `start` → (frames flow) → `stop`; a stopped device may be started again.
/// Dropping a device stops it. No method blocks for long or panics.
pub trait AudioDevice: Send {
    /// Starts capture and playout.
    ///
    /// Captured 20 ms frames are delivered with `try_send` to `capture`: the device never
    /// waits for the pipeline, so a full channel drops the frame (counted in
    /// [`CaptureStats::dropped`]). Playout pulls from the returned [`PlayoutSink`] once per
    /// device period; the pipeline pushes decoded frames into it.
    ///
    /// Errors: [`AudioError::AlreadyStarted`], [`AudioError::NoRuntime`] for clocked devices
    /// started outside tokio, device and file errors.
    fn start(&mut self, capture: mpsc::Sender<AudioFrame>) -> Result<PlayoutSink, AudioError>;

    /// Stops capture and playout (idempotent). Recording files are finalized.
    fn stop(&mut self);

    /// A human-readable name for logs and UIs.
    fn name(&self) -> String;

    /// Capture counters since the last `start`.
    fn capture_stats(&self) -> CaptureStats;
}

/// Capture counters of a device since its last `start`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CaptureStats {
    /// Frames produced by the device (delivered or dropped).
    pub frames: u64,
    /// Frames dropped because the capture channel was full or closed.
    pub dropped: u64,
}

/// Playout counters of a [`PlayoutSink`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PlayoutStats {
    /// Samples pushed by the pipeline.
    pub pushed_samples: u64,
    /// Samples of real audio handed to the device.
    pub played_samples: u64,
    /// Pulls that found fewer samples than requested (after the first push), each one a
    /// period in which the device played (partly) silence.
    pub underruns: u64,
    /// Silence samples inserted by those underruns.
    pub underrun_samples: u64,
    /// Oldest samples discarded because the pipeline pushed more than the buffer holds.
    pub overflow_samples: u64,
    /// Samples currently buffered.
    pub buffered_samples: usize,
}

#[derive(Debug)]
struct PlayoutState {
    buf: VecDeque<i16>,
    capacity: usize,
    primed: bool,
    stats: PlayoutStats,
}

/// How the pipeline hands decoded audio to a device: a bounded FIFO of 48 kHz mono samples
/// shared (cheap `Clone`) between the pipeline, which [`push`](Self::push)es, and the
/// device, which [`pull`](Self::pull)s once per period.
///
/// Neither side blocks beyond a short mutex section that copies samples. When the pipeline
/// pushes more than the capacity the oldest samples are discarded (latency stays bounded);
/// when the device pulls more than is buffered the rest is silence and an underrun is
/// counted. Pulls before the first push (call not yet playing) are not underruns.
#[derive(Debug, Clone)]
pub struct PlayoutSink {
    inner: Arc<Mutex<PlayoutState>>,
}

impl Default for PlayoutSink {
    fn default() -> Self {
        Self::new(DEFAULT_PLAYOUT_CAPACITY)
    }
}

impl PlayoutSink {
    /// A sink holding at most `capacity_samples` (at least one frame).
    pub fn new(capacity_samples: usize) -> Self {
        let capacity = capacity_samples.max(FRAME_SAMPLES);
        Self {
            inner: Arc::new(Mutex::new(PlayoutState {
                buf: VecDeque::with_capacity(capacity),
                capacity,
                primed: false,
                stats: PlayoutStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, PlayoutState> {
        // Nothing panics while holding the lock, so poisoning cannot leave bad state.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Pipeline side: queues `samples` (48 kHz mono) for playout. Never blocks.
    pub fn push(&self, samples: &[i16]) {
        let mut st = self.lock();
        st.stats.pushed_samples += samples.len() as u64;
        st.primed = true;
        // Keep only the newest `capacity` samples of the input itself.
        let cap = st.capacity;
        let skip = samples.len().saturating_sub(cap);
        let input = samples.get(skip..).unwrap_or_default();
        let overflow = (st.buf.len() + input.len()).saturating_sub(cap);
        let drop_old = overflow.min(st.buf.len());
        st.buf.drain(..drop_old);
        st.stats.overflow_samples += (skip + drop_old) as u64;
        st.buf.extend(input.iter().copied());
    }

    /// Device side: fills `out` with the oldest buffered samples, padding with silence.
    /// Returns how many samples were real audio; a short pull after the first push counts as
    /// one underrun.
    pub fn pull(&self, out: &mut [i16]) -> usize {
        let mut st = self.lock();
        let n = out.len().min(st.buf.len());
        for (dst, src) in out.iter_mut().zip(st.buf.drain(..n)) {
            *dst = src;
        }
        for dst in out.iter_mut().skip(n) {
            *dst = 0;
        }
        st.stats.played_samples += n as u64;
        if n < out.len() && st.primed {
            st.stats.underruns += 1;
            st.stats.underrun_samples += (out.len() - n) as u64;
        }
        n
    }

    /// Current counters.
    pub fn stats(&self) -> PlayoutStats {
        let st = self.lock();
        PlayoutStats {
            buffered_samples: st.buf.len(),
            ..st.stats
        }
    }

    /// Samples currently buffered.
    pub fn buffered(&self) -> usize {
        self.lock().buf.len()
    }

    /// Empties the buffer and zeroes the counters (used when a device restarts).
    pub fn reset(&self) {
        let mut st = self.lock();
        st.buf.clear();
        st.primed = false;
        st.stats = PlayoutStats::default();
    }
}

/// What a file or script source does once its samples are exhausted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum EndBehavior {
    /// Emit silence forever.
    #[default]
    Silence,
    /// Start again from the beginning.
    Loop,
}

#[derive(Debug, Default)]
struct CaptureCounters {
    frames: AtomicU64,
    dropped: AtomicU64,
}

impl CaptureCounters {
    fn reset(&self) {
        self.frames.store(0, Ordering::Relaxed);
        self.dropped.store(0, Ordering::Relaxed);
    }

    fn snapshot(&self) -> CaptureStats {
        CaptureStats {
            frames: self.frames.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
        }
    }
}

/// Device-side capture helper: re-chunks arbitrary sample runs into 20 ms frames, stamps
/// them with the device sample clock and `try_send`s them, counting drops.
#[derive(Debug)]
struct CapturePort {
    tx: mpsc::Sender<AudioFrame>,
    pending: Vec<i16>,
    counters: Arc<CaptureCounters>,
}

impl CapturePort {
    fn new(tx: mpsc::Sender<AudioFrame>, counters: Arc<CaptureCounters>) -> Self {
        counters.reset();
        Self {
            tx,
            pending: Vec::with_capacity(2 * FRAME_SAMPLES),
            counters,
        }
    }

    fn push_samples(&mut self, samples: &[i16]) {
        let mut rest = samples;
        while !rest.is_empty() {
            let want = FRAME_SAMPLES - self.pending.len();
            let (now, later) = rest.split_at(want.min(rest.len()));
            self.pending.extend_from_slice(now);
            rest = later;
            if self.pending.len() == FRAME_SAMPLES {
                let frame = std::mem::replace(&mut self.pending, Vec::with_capacity(FRAME_SAMPLES));
                self.send(frame);
            }
        }
    }

    fn send(&mut self, samples: Vec<i16>) {
        let index = self.counters.frames.fetch_add(1, Ordering::Relaxed);
        let timestamp = frames_to_duration(index);
        if self.tx.try_send(AudioFrame { samples, timestamp }).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn frames_to_duration(frames: u64) -> Duration {
    // 20 ms per frame; saturates after ~10^7 years.
    Duration::from_millis(frames.saturating_mul(20))
}

/// Streaming linear-interpolation resampler for `f32` samples (one channel).
#[derive(Debug, Clone)]
struct LinearResampler {
    /// Input samples per output sample.
    step: f64,
    /// Position of the next output, in input samples, where 0 is `last`.
    t: f64,
    last: f32,
}

impl LinearResampler {
    fn new(in_rate: u32, out_rate: u32) -> Self {
        Self {
            step: f64::from(in_rate.max(1)) / f64::from(out_rate.max(1)),
            t: 1.0,
            last: 0.0,
        }
    }

    fn is_identity(&self) -> bool {
        self.step == 1.0
    }

    fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        let n = input.len();
        if n == 0 {
            return;
        }
        if self.is_identity() {
            out.extend_from_slice(input);
            return;
        }
        while self.t < n as f64 {
            let i = self.t.floor() as usize;
            let frac = (self.t - i as f64) as f32;
            let a = if i == 0 {
                self.last
            } else {
                input.get(i - 1).copied().unwrap_or(0.0)
            };
            let b = input.get(i).copied().unwrap_or(a);
            out.push(a + (b - a) * frac);
            self.t += self.step;
        }
        self.t -= n as f64;
        self.last = input.get(n - 1).copied().unwrap_or(0.0);
    }
}

fn f32_to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

fn i16_to_f32(x: i16) -> f32 {
    f32::from(x) / 32768.0
}

/// Longest tone the generators produce: one hour.
pub const MAX_TONE_SECONDS: f64 = 3600.0;

/// A sine tone at 48 kHz: `seconds` long, `freq_hz`, peak `amplitude`.
/// Non-finite or negative `seconds` give an empty vector; lengths are capped at
/// [`MAX_TONE_SECONDS`].
pub fn tone(freq_hz: f64, amplitude: i16, seconds: f64) -> Vec<i16> {
    tone_at_rate(freq_hz, amplitude, seconds, SAMPLE_RATE)
}

fn tone_at_rate(freq_hz: f64, amplitude: i16, seconds: f64, rate: u32) -> Vec<i16> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Vec::new();
    }
    let n = (seconds.min(MAX_TONE_SECONDS) * f64::from(rate)).round() as usize;
    let w = 2.0 * std::f64::consts::PI * freq_hz / f64::from(rate);
    let amp = f64::from(amplitude);
    (0..n)
        .map(|i| {
            (amp * (w * i as f64).sin())
                .round()
                .clamp(-32768.0, 32767.0) as i16
        })
        .collect()
}

/// Squared magnitude of the DTFT of `x` at `freq_hz` (Goertzel), for any frequency.
fn goertzel_power(x: &[f64], freq_hz: f64, rate: f64) -> f64 {
    let w = 2.0 * std::f64::consts::PI * freq_hz / rate;
    let coeff = 2.0 * w.cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &v in x {
        let s = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    (s1 * s1 + s2 * s2 - coeff * s1 * s2).max(0.0)
}

/// Fraction of a tone's share in a window's energy: 1.0 for a pure tone at `freq_hz`.
fn tone_fraction(window: &[f64], freq_hz: f64, tolerance_hz: f64, rate: f64) -> f64 {
    let energy: f64 = window.iter().map(|v| v * v).sum();
    if energy <= 0.0 || window.is_empty() {
        return 0.0;
    }
    let tol = tolerance_hz.abs();
    let power = [0.0, -0.5, 0.5, -1.0, 1.0]
        .iter()
        .map(|k| goertzel_power(window, freq_hz + k * tol, rate))
        .fold(0.0, f64::max);
    2.0 * power / (window.len() as f64 * energy)
}

/// Minimum RMS (full scale = 1.0) for a window to count as containing a tone: -60 dBFS.
const TONE_MIN_RMS: f64 = 0.001;
/// Minimum share of the window's energy at the tone frequency: the tone carries more energy
/// than everything else together.
const TONE_MIN_FRACTION: f64 = 0.5;

/// Seconds of `samples` (mono, `sample_rate`) in which a tone at `freq_hz` (± `tolerance_hz`)
/// clearly dominates: measured over consecutive 20 ms windows with a Goertzel filter, a window
/// counts when it is above -60 dBFS and the tone holds more than half of its energy.
pub fn tone_seconds(
    samples: &[i16],
    sample_rate: u32,
    freq_hz: f64,
    tolerance_hz: f64,
) -> Result<f64, AudioError> {
    let x: Vec<f64> = samples.iter().map(|&s| f64::from(s) / 32768.0).collect();
    tone_seconds_f64(&x, sample_rate, freq_hz, tolerance_hz)
}

fn tone_seconds_f64(
    x: &[f64],
    sample_rate: u32,
    freq_hz: f64,
    tolerance_hz: f64,
) -> Result<f64, AudioError> {
    if sample_rate == 0 {
        return Err(AudioError::InvalidArgument("sample rate 0".into()));
    }
    let rate = f64::from(sample_rate);
    if !freq_hz.is_finite() || freq_hz <= 0.0 || freq_hz >= rate / 2.0 {
        return Err(AudioError::InvalidArgument(format!(
            "tone frequency {freq_hz} Hz outside (0, {}) Hz",
            rate / 2.0
        )));
    }
    if !tolerance_hz.is_finite() {
        return Err(AudioError::InvalidArgument(
            "tolerance is not finite".into(),
        ));
    }
    let win = ((rate / 50.0).round() as usize).max(1);
    let window_secs = win as f64 / rate;
    let hits = x
        .chunks_exact(win)
        .filter(|w| {
            let rms = (w.iter().map(|v| v * v).sum::<f64>() / w.len() as f64).sqrt();
            rms >= TONE_MIN_RMS && tone_fraction(w, freq_hz, tolerance_hz, rate) > TONE_MIN_FRACTION
        })
        .count();
    Ok(hits as f64 * window_secs)
}

/// The frequency (Hz) carrying the most energy in `samples` (mono, `sample_rate`): averaged
/// Hann-windowed FFT spectrum, peak bin refined by Gaussian interpolation (error well under
/// 1 Hz for a steady tone at 48 kHz).
pub fn dominant_frequency(samples: &[i16], sample_rate: u32) -> Result<f64, AudioError> {
    let x: Vec<f64> = samples.iter().map(|&s| f64::from(s) / 32768.0).collect();
    dominant_frequency_f64(&x, sample_rate)
}

fn dominant_frequency_f64(x: &[f64], sample_rate: u32) -> Result<f64, AudioError> {
    if sample_rate == 0 {
        return Err(AudioError::InvalidArgument("sample rate 0".into()));
    }
    if x.len() < 64 {
        return Err(AudioError::Silent(format!("only {} samples", x.len())));
    }
    // Largest power of two up to 8192 that fits the signal.
    let mut n = 8192usize;
    while n > x.len() {
        n /= 2;
    }
    let hann: Vec<f64> = (0..n)
        .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
        .collect();
    let hop = n / 2;
    let segments = (x.len() - n) / hop + 1;
    // Cap the work for long files: at most 200 evenly spread segments.
    let stride = segments.div_ceil(200).max(1);
    let mut spectrum = vec![0.0f64; n / 2];
    let mut buf = vec![(0.0f64, 0.0f64); n];
    for seg in (0..segments).step_by(stride) {
        let start = seg * hop;
        let Some(chunk) = x.get(start..start + n) else {
            continue;
        };
        for ((b, &v), &h) in buf.iter_mut().zip(chunk).zip(&hann) {
            *b = (v * h, 0.0);
        }
        fft(&mut buf);
        for (acc, &(re, im)) in spectrum.iter_mut().zip(&buf) {
            *acc += re * re + im * im;
        }
    }
    let (k, peak) = spectrum
        .iter()
        .enumerate()
        .skip(1)
        .fold(
            (0usize, 0.0f64),
            |best, (i, &p)| if p > best.1 { (i, p) } else { best },
        );
    if k == 0 || peak <= 1e-18 {
        return Err(AudioError::Silent("no energy above DC".into()));
    }
    let at = |i: usize| spectrum.get(i).copied().unwrap_or(0.0).max(1e-300).ln();
    let delta = if k + 1 < spectrum.len() {
        let (a, b, c) = (at(k - 1), at(k), at(k + 1));
        let denom = a - 2.0 * b + c;
        if denom.abs() > 1e-12 {
            (0.5 * (a - c) / denom).clamp(-0.5, 0.5)
        } else {
            0.0
        }
    } else {
        0.0
    };
    Ok((k as f64 + delta) * f64::from(sample_rate) / n as f64)
}

/// In-place iterative radix-2 FFT; `buf.len()` must be a power of two (others are left as is).
fn fft(buf: &mut [(f64, f64)]) {
    let n = buf.len();
    if n < 2 || !n.is_power_of_two() {
        return;
    }
    let bits = n.trailing_zeros();
    for i in 0..n {
        let j = i.reverse_bits() >> (usize::BITS - bits);
        if j > i {
            buf.swap(i, j);
        }
    }
    let mut len = 2;
    while len <= n {
        let ang = -2.0 * std::f64::consts::PI / len as f64;
        let (wr, wi) = (ang.cos(), ang.sin());
        for chunk in buf.chunks_exact_mut(len) {
            let (lo, hi) = chunk.split_at_mut(len / 2);
            let (mut cr, mut ci) = (1.0f64, 0.0f64);
            for (a, b) in lo.iter_mut().zip(hi.iter_mut()) {
                let tr = b.0 * cr - b.1 * ci;
                let ti = b.0 * ci + b.1 * cr;
                *b = (a.0 - tr, a.1 - ti);
                *a = (a.0 + tr, a.1 + ti);
                let ncr = cr * wr - ci * wi;
                ci = cr * wi + ci * wr;
                cr = ncr;
            }
        }
        len *= 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn playout_sink_counts_underruns_after_first_push_only() {
        let sink = PlayoutSink::new(4 * FRAME_SAMPLES);
        let mut out = vec![7i16; FRAME_SAMPLES];
        assert_eq!(sink.pull(&mut out), 0);
        assert!(out.iter().all(|&s| s == 0));
        assert_eq!(
            sink.stats().underruns,
            0,
            "not primed yet: idle, not an underrun"
        );

        sink.push(&vec![5; 500]);
        assert_eq!(sink.pull(&mut out), 500);
        assert!(out[..500].iter().all(|&s| s == 5));
        assert!(out[500..].iter().all(|&s| s == 0));
        let st = sink.stats();
        assert_eq!(
            (st.underruns, st.underrun_samples, st.played_samples),
            (1, 460, 500)
        );
    }

    #[test]
    fn playout_sink_overflow_drops_oldest() {
        let sink = PlayoutSink::new(FRAME_SAMPLES);
        sink.push(&vec![1; 600]);
        sink.push(&vec![2; 600]);
        assert_eq!(sink.buffered(), FRAME_SAMPLES);
        assert_eq!(sink.stats().overflow_samples, 240);
        let mut out = vec![0; FRAME_SAMPLES];
        sink.pull(&mut out);
        assert!(out[..360].iter().all(|&s| s == 1));
        assert!(out[360..].iter().all(|&s| s == 2));
        // A push larger than the whole buffer keeps its newest part.
        sink.push(&(0..2000).map(|i| i as i16).collect::<Vec<_>>());
        sink.pull(&mut out);
        assert_eq!(out[0], 2000 - FRAME_SAMPLES as i16);
        sink.reset();
        assert_eq!(sink.stats(), PlayoutStats::default());
    }

    #[test]
    fn capture_port_rechunks_and_counts_drops() {
        let (tx, mut rx) = mpsc::channel(2);
        let counters = Arc::new(CaptureCounters::default());
        let mut port = CapturePort::new(tx, counters.clone());
        let samples: Vec<i16> = (0..4000).map(|i| (i % 1000) as i16).collect();
        for chunk in samples.chunks(333) {
            port.push_samples(chunk);
        }
        // 4000 samples = 4 frames (160 pending); channel holds 2.
        assert_eq!(
            counters.snapshot(),
            CaptureStats {
                frames: 4,
                dropped: 2
            }
        );
        let f0 = rx.try_recv().unwrap();
        let f1 = rx.try_recv().unwrap();
        assert_eq!(f0.samples, samples[..960]);
        assert_eq!(f1.samples, samples[960..1920]);
        assert_eq!(f1.timestamp, Duration::from_millis(20));
    }

    #[test]
    fn resampler_identity_and_rate_change() {
        let input: Vec<f32> = (0..1000).map(|i| i as f32).collect();
        let mut r = LinearResampler::new(48_000, 48_000);
        let mut out = Vec::new();
        r.process(&input, &mut out);
        assert_eq!(out, input);

        // 8 kHz ramp → 48 kHz in odd-sized chunks: ramp with slope 1/6 per output sample.
        let mut r = LinearResampler::new(8_000, 48_000);
        let mut out = Vec::new();
        for c in input.chunks(37) {
            r.process(c, &mut out);
        }
        assert!((out.len() as i64 - 6000).abs() <= 6, "{}", out.len());
        for w in out.windows(2).skip(1) {
            assert!((w[1] - w[0] - 1.0 / 6.0).abs() < 1e-3);
        }
    }

    #[test]
    fn fft_finds_bin() {
        let n = 64;
        let mut buf: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                (
                    (2.0 * std::f64::consts::PI * 5.0 * i as f64 / n as f64).cos(),
                    0.0,
                )
            })
            .collect();
        fft(&mut buf);
        let mags: Vec<f64> = buf.iter().map(|(r, i)| (r * r + i * i).sqrt()).collect();
        assert!((mags[5] - 32.0).abs() < 1e-9 && (mags[59] - 32.0).abs() < 1e-9);
        assert!(
            mags.iter()
                .enumerate()
                .all(|(i, &m)| i == 5 || i == 59 || m < 1e-9)
        );
    }

    #[test]
    fn tone_generation_and_measurement() {
        for freq in [440.0, 1000.0] {
            let t = tone(freq, 16_000, 1.0);
            assert_eq!(t.len(), 48_000);
            assert!(t.iter().map(|s| s.unsigned_abs()).max().unwrap() <= 16_000);
            let f = dominant_frequency(&t, SAMPLE_RATE).unwrap();
            assert!((f - freq).abs() < 1.0, "{freq} measured as {f}");
            let secs = tone_seconds(&t, SAMPLE_RATE, freq, 5.0).unwrap();
            assert!((secs - 1.0).abs() < 0.021, "{secs}");
            // A different tone is not mistaken for it.
            assert_eq!(tone_seconds(&t, SAMPLE_RATE, freq * 1.5, 5.0).unwrap(), 0.0);
        }
    }

    #[test]
    fn tone_seconds_measures_2_5_s_between_silence_and_other_tone() {
        let mut x = vec![0i16; 48_000]; // 1 s silence
        x.extend(tone(1000.0, 12_000, 2.5));
        x.extend(tone(440.0, 12_000, 1.0));
        // Noise floor everywhere (deterministic LCG), ~ -40 dBFS.
        let mut seed = 12345u32;
        for s in &mut x {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            *s = s.saturating_add(((seed >> 16) as i16) / 100);
        }
        let secs = tone_seconds(&x, SAMPLE_RATE, 1000.0, 5.0).unwrap();
        assert!((secs - 2.5).abs() <= 0.1, "measured {secs}");
        let secs440 = tone_seconds(&x, SAMPLE_RATE, 440.0, 5.0).unwrap();
        assert!((secs440 - 1.0).abs() <= 0.1, "measured {secs440}");
        let f = dominant_frequency(&x, SAMPLE_RATE).unwrap();
        assert!((f - 1000.0).abs() < 2.0, "{f}");
    }

    #[test]
    fn analysis_rejects_bad_arguments() {
        let t = tone(440.0, 1000, 0.1);
        assert!(matches!(
            tone_seconds(&t, 0, 440.0, 1.0),
            Err(AudioError::InvalidArgument(_))
        ));
        assert!(matches!(
            tone_seconds(&t, SAMPLE_RATE, 30_000.0, 1.0),
            Err(AudioError::InvalidArgument(_))
        ));
        assert!(matches!(
            dominant_frequency(&[0; 10_000], SAMPLE_RATE),
            Err(AudioError::Silent(_))
        ));
        assert!(matches!(
            dominant_frequency(&[], SAMPLE_RATE),
            Err(AudioError::Silent(_))
        ));
        assert!(tone(440.0, 1000, f64::NAN).is_empty());
        assert!(tone(440.0, 1000, -1.0).is_empty());
    }

    #[test]
    fn devices_are_send_and_the_shell_handle_is_sync() {
        fn send<T: Send>() {}
        fn sync<T: Sync>() {}
        send::<FakeDevice>();
        send::<WavDevice>();
        send::<CpalDevice>();
        send::<ForeignDevice>();
        sync::<ForeignDevice>();
        sync::<PlayoutSink>();
        send::<Box<dyn AudioDevice>>();
    }
}
