//! WAV files as a device ([`WavDevice`]) and WAV test helpers.
//!
//! Reading accepts any sample rate and channel count, 8/16/24/32-bit integer PCM or 32-bit
//! float; channels are averaged to mono and the rate converted to 48 kHz by linear
//! interpolation. Writing is always 48 kHz mono 16-bit.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::fake::{SourceState, spawn_clocked};
use super::{
    AudioDevice, AudioError, AudioFrame, CaptureCounters, CapturePort, CaptureStats, EndBehavior,
    FRAME_SAMPLES, LinearResampler, MAX_TONE_SECONDS, PlayoutSink, SAMPLE_RATE,
    dominant_frequency_f64, f32_to_i16, tone_at_rate, tone_seconds_f64,
};

type FileWriter = hound::WavWriter<BufWriter<File>>;

fn shown(path: &Path) -> String {
    path.display().to_string()
}

/// The file could not be opened at all.
fn open_error(path: &Path, e: &std::io::Error) -> AudioError {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "file not found".to_owned(),
        _ => e.to_string(),
    };
    AudioError::WavOpen {
        path: shown(path),
        reason,
    }
}

/// The file opened but its content is not a WAV we can read.
fn format_error(path: &Path, e: hound::Error) -> AudioError {
    let reason = match e {
        hound::Error::IoError(io) => format!("truncated or unreadable ({io})"),
        hound::Error::FormatError(m) => format!("not a valid WAV file ({m})"),
        hound::Error::Unsupported => {
            "unsupported encoding (need 8/16/24/32-bit integer PCM or 32-bit float)".to_owned()
        }
        other => other.to_string(),
    };
    AudioError::WavFormat {
        path: shown(path),
        reason,
    }
}

fn write_error(path: &Path, e: hound::Error) -> AudioError {
    AudioError::WavWrite {
        path: shown(path),
        reason: e.to_string(),
    }
}

/// Reads a WAV file as mono `f64` (full scale 1.0) at its own sample rate.
fn read_wav_mono(path: &Path) -> Result<(Vec<f64>, u32), AudioError> {
    let file = File::open(path).map_err(|e| open_error(path, &e))?;
    let meta = file.metadata().map_err(|e| open_error(path, &e))?;
    if !meta.is_file() {
        return Err(AudioError::WavOpen {
            path: shown(path),
            reason: "not a regular file".into(),
        });
    }
    let file_len = meta.len();
    let mut reader =
        hound::WavReader::new(std::io::BufReader::new(file)).map_err(|e| format_error(path, e))?;
    let spec = reader.spec();
    let bad = |reason: String| AudioError::WavFormat {
        path: shown(path),
        reason,
    };
    if spec.channels == 0 {
        return Err(bad("zero channels".into()));
    }
    if spec.sample_rate == 0 || spec.sample_rate > 1_000_000 {
        return Err(bad(format!(
            "implausible sample rate {} Hz",
            spec.sample_rate
        )));
    }
    let float = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Int, 8..=32) => false,
        (hound::SampleFormat::Float, 32) => true,
        (format, bits) => {
            return Err(bad(format!(
                "unsupported sample format {format:?} with {bits} bits \
                 (need 8/16/24/32-bit integer PCM or 32-bit float)"
            )));
        }
    };
    // The header's length must fit in the file: guards against absurd allocations and
    // reports truncation up front.
    // Some writers (linphone's among them) count the 44-byte header in the data chunk's
    // size; a shortfall that small is tolerated and the samples present are read.
    const HEADER_SLACK: u64 = 64;
    let bytes_per_sample = u64::from(spec.bits_per_sample).div_ceil(8);
    let claimed = u64::from(reader.len());
    // The data starts after a header of at least 44 bytes.
    let overstated = claimed.saturating_mul(bytes_per_sample) > file_len.saturating_sub(44);
    if claimed.saturating_mul(bytes_per_sample) > file_len + HEADER_SLACK {
        return Err(bad(format!(
            "truncated: header announces {claimed} samples but the file has only {file_len} bytes"
        )));
    }
    let channels = usize::from(spec.channels);
    let mut mono = Vec::with_capacity(usize::try_from(claimed).unwrap_or(0) / channels);
    let mut acc = 0.0f64;
    let mut k = 0usize;
    let mut take = |v: f64, mono: &mut Vec<f64>| {
        acc += v;
        k += 1;
        if k == channels {
            mono.push(acc / channels as f64);
            acc = 0.0;
            k = 0;
        }
    };
    if float {
        for s in reader.samples::<f32>() {
            let v = match s {
                Ok(v) => f64::from(v),
                Err(_) if overstated => break,
                Err(e) => return Err(format_error(path, e)),
            };
            take(
                if v.is_finite() {
                    v.clamp(-1.0, 1.0)
                } else {
                    0.0
                },
                &mut mono,
            );
        }
    } else {
        let scale = f64::from(1u32 << (spec.bits_per_sample - 1));
        for s in reader.samples::<i32>() {
            let v = match s {
                Ok(v) => f64::from(v),
                Err(_) if overstated => break,
                Err(e) => return Err(format_error(path, e)),
            };
            take(v / scale, &mut mono);
        }
    }
    Ok((mono, spec.sample_rate))
}

/// Reads a WAV file (any rate, any channel count, 8–32-bit integer or 32-bit float) and
/// converts it to 48 kHz mono `i16`: channels averaged, rate changed by linear interpolation.
///
/// Errors: [`AudioError::WavOpen`] when missing/unreadable, [`AudioError::WavFormat`] when
/// corrupt, truncated or in an unsupported encoding.
pub fn read_wav_48k_mono(path: impl AsRef<Path>) -> Result<Vec<i16>, AudioError> {
    let (mono, rate) = read_wav_mono(path.as_ref())?;
    let input: Vec<f32> = mono.iter().map(|&v| v as f32).collect();
    // Exactly the same duration at 48 kHz; the streaming resampler lags by up to one
    // sample, so the tail is held.
    let expected =
        (input.len() as u64 * u64::from(SAMPLE_RATE) + u64::from(rate) / 2) / u64::from(rate);
    let expected = usize::try_from(expected).unwrap_or(usize::MAX);
    let mut out = Vec::with_capacity(expected);
    LinearResampler::new(rate, SAMPLE_RATE).process(&input, &mut out);
    let last = out.last().copied().unwrap_or(0.0);
    out.resize(expected, last);
    Ok(out.into_iter().map(f32_to_i16).collect())
}

/// Writes a mono 16-bit WAV at `sample_rate` holding a sine tone of `freq_hz` at half full
/// scale (-6 dBFS) for `seconds`.
pub fn write_tone_wav(
    path: impl AsRef<Path>,
    freq_hz: f64,
    seconds: f64,
    sample_rate: u32,
) -> Result<(), AudioError> {
    let path = path.as_ref();
    if sample_rate == 0 {
        return Err(AudioError::InvalidArgument("sample rate 0".into()));
    }
    if !seconds.is_finite() || !(0.0..=MAX_TONE_SECONDS).contains(&seconds) || !freq_hz.is_finite()
    {
        return Err(AudioError::InvalidArgument(format!(
            "tone of {freq_hz} Hz for {seconds} s"
        )));
    }
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| write_error(path, e))?;
    for s in tone_at_rate(freq_hz, 16_384, seconds, sample_rate) {
        w.write_sample(s).map_err(|e| write_error(path, e))?;
    }
    w.finalize().map_err(|e| write_error(path, e))
}

/// The dominant frequency (Hz) of a WAV file, analysed at its own rate (channels averaged).
/// Errors for unreadable files and for silence ([`AudioError::Silent`]).
pub fn wav_dominant_frequency(path: impl AsRef<Path>) -> Result<f64, AudioError> {
    let (mono, rate) = read_wav_mono(path.as_ref())?;
    dominant_frequency_f64(&mono, rate)
}

/// Seconds of a WAV file in which a tone at `freq_hz` (± `tolerance_hz`) clearly dominates:
/// Goertzel over consecutive 20 ms windows, see [`tone_seconds`](super::tone_seconds).
pub fn wav_tone_seconds(
    path: impl AsRef<Path>,
    freq_hz: f64,
    tolerance_hz: f64,
) -> Result<f64, AudioError> {
    let (mono, rate) = read_wav_mono(path.as_ref())?;
    tone_seconds_f64(&mono, rate, freq_hz, tolerance_hz)
}

#[derive(Default)]
struct RecordState {
    writer: Option<FileWriter>,
    samples: u64,
    error: Option<AudioError>,
}

impl std::fmt::Debug for RecordState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordState")
            .field("open", &self.writer.is_some())
            .field("samples", &self.samples)
            .field("error", &self.error)
            .finish()
    }
}

/// A device whose microphone is a WAV file and whose speaker is a WAV file.
///
/// - Capture: the `play` file (read fully into memory at construction, converted to 48 kHz
///   mono) is emitted in 20 ms frames paced by tokio timers (virtual under a paused clock);
///   after its end: silence or loop ([`with_end`](Self::with_end)). Without a `play` file the
///   microphone is silent.
/// - Playout: every period's frame (silence on underrun) is appended to the `record` file,
///   48 kHz mono 16-bit, created (truncated) at `start` and finalized on `stop`,
///   [`finish`](Self::finish) and drop. Writes are small buffered blocking writes on the
///   clock task (~2 KB per 20 ms).
#[derive(Debug)]
pub struct WavDevice {
    name: String,
    play: Option<Arc<[i16]>>,
    record_path: Option<PathBuf>,
    end: EndBehavior,
    counters: Arc<CaptureCounters>,
    task: Option<JoinHandle<()>>,
    record: Arc<Mutex<RecordState>>,
}

impl WavDevice {
    /// Loads `play` (if any) and remembers `record` (if any).
    ///
    /// Errors: the `play` file is missing, corrupt or unsupported.
    pub fn new(play: Option<PathBuf>, record: Option<PathBuf>) -> Result<Self, AudioError> {
        let name = format!(
            "wav(play={}, record={})",
            play.as_deref().map_or("-".into(), shown),
            record.as_deref().map_or("-".into(), shown)
        );
        let play = match play {
            Some(p) => Some(Arc::from(read_wav_48k_mono(&p)?)),
            None => None,
        };
        Ok(Self {
            name,
            play,
            record_path: record,
            end: EndBehavior::Silence,
            counters: Arc::default(),
            task: None,
            record: Arc::default(),
        })
    }

    /// What the microphone does after the end of the `play` file (default: silence).
    pub fn with_end(mut self, end: EndBehavior) -> Self {
        self.end = end;
        self
    }

    /// Duration of the `play` file at 48 kHz (zero without one).
    pub fn play_duration(&self) -> Duration {
        let n = self.play.as_ref().map_or(0, |p| p.len()) as u64;
        Duration::from_micros(n.saturating_mul(1_000_000) / u64::from(SAMPLE_RATE))
    }

    /// True once the `play` file has been emitted completely at least once since `start`.
    pub fn is_play_finished(&self) -> bool {
        let emitted = self
            .counters
            .snapshot()
            .frames
            .saturating_mul(FRAME_SAMPLES as u64);
        emitted >= self.play.as_ref().map_or(0, |p| p.len()) as u64
    }

    /// Samples written to the `record` file since `start`.
    pub fn recorded_samples(&self) -> u64 {
        self.lock_record().samples
    }

    /// Stops the device and finalizes the recording, reporting the first write or finalize
    /// error since `start` (which [`stop`](AudioDevice::stop) cannot return).
    pub fn finish(&mut self) -> Result<(), AudioError> {
        self.stop();
        match self.lock_record().error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn lock_record(&self) -> MutexGuard<'_, RecordState> {
        self.record.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl AudioDevice for WavDevice {
    fn start(&mut self, capture: mpsc::Sender<AudioFrame>) -> Result<PlayoutSink, AudioError> {
        if self.task.is_some() {
            return Err(AudioError::AlreadyStarted(self.name.clone()));
        }
        let writer = match &self.record_path {
            Some(path) => {
                let spec = hound::WavSpec {
                    channels: 1,
                    sample_rate: SAMPLE_RATE,
                    bits_per_sample: 16,
                    sample_format: hound::SampleFormat::Int,
                };
                Some((
                    hound::WavWriter::create(path, spec).map_err(|e| write_error(path, e))?,
                    path.clone(),
                ))
            }
            None => None,
        };
        let record_path = writer.as_ref().map(|(_, p)| p.clone());
        *self.lock_record() = RecordState {
            writer: writer.map(|(w, _)| w),
            samples: 0,
            error: None,
        };
        let source = match &self.play {
            Some(samples) => SourceState::script(samples.clone(), self.end),
            None => SourceState::Silence,
        };
        let sink = PlayoutSink::default();
        let record = self.record.clone();
        let task = spawn_clocked(
            &self.name,
            source,
            CapturePort::new(capture, self.counters.clone()),
            sink.clone(),
            move |frame| {
                let mut st = record.lock().unwrap_or_else(PoisonError::into_inner);
                let Some(w) = st.writer.as_mut() else { return };
                let result = frame.iter().try_for_each(|&s| w.write_sample(s));
                match result {
                    Ok(()) => st.samples += frame.len() as u64,
                    Err(e) => {
                        // Give up on the file (drop updates the header as far as possible).
                        st.writer = None;
                        if st.error.is_none() {
                            let path = record_path.clone().unwrap_or_default();
                            st.error = Some(write_error(&path, e));
                        }
                    }
                }
            },
        );
        match task {
            Ok(task) => {
                self.task = Some(task);
                Ok(sink)
            }
            Err(e) => {
                self.lock_record().writer = None;
                Err(e)
            }
        }
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            // Aborting takes effect at the task's next await; the record mutex below waits
            // for a write in progress, and a task that runs once more finds no writer.
            task.abort();
        }
        let mut st = self.lock_record();
        match st.writer.take().map(hound::WavWriter::finalize) {
            Some(Err(e)) if st.error.is_none() => {
                let path = self.record_path.clone().unwrap_or_default();
                st.error = Some(write_error(&path, e));
            }
            _ => {}
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn capture_stats(&self) -> CaptureStats {
        self.counters.snapshot()
    }
}

impl Drop for WavDevice {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::audio::{FakeDevice, FakeSource, dominant_frequency, tone_seconds};

    /// A fresh empty directory under the system temp dir.
    fn scratch_dir(name: &str) -> PathBuf {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "handset-audio-{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            name
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn data_size_counting_the_header_is_tolerated_but_real_truncation_is_not() {
        // Regression: linphone 5.1 writes a data chunk size equal to the whole file size, 44
        // bytes more than there is; its recordings were rejected as truncated.
        let dir = scratch_dir("overstated");
        let path = dir.join("tone.wav");
        write_tone_wav(&path, 440.0, 1.0, 8000).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let file_len = bytes.len() as u32;
        bytes[40..44].copy_from_slice(&file_len.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let seconds = wav_tone_seconds(&path, 440.0, 10.0).unwrap();
        assert!(seconds > 0.9, "{seconds}");
        let half = bytes.len() / 2;
        std::fs::write(&path, &bytes[..half]).unwrap();
        assert!(matches!(
            read_wav_48k_mono(&path),
            Err(AudioError::WavFormat { .. })
        ));
    }

    #[test]
    fn tone_wav_is_measured() {
        let dir = scratch_dir("tone");
        for (freq, rate) in [(440.0, 48_000), (1000.0, 44_100), (1000.0, 8_000)] {
            let p = dir.join(format!("t{freq}-{rate}.wav"));
            write_tone_wav(&p, freq, 2.5, rate).unwrap();
            let f = wav_dominant_frequency(&p).unwrap();
            assert!((f - freq).abs() < 1.0, "{freq} Hz @ {rate}: measured {f}");
            let secs = wav_tone_seconds(&p, freq, 5.0).unwrap();
            assert!((secs - 2.5).abs() <= 0.1, "{freq} Hz @ {rate}: {secs} s");
            assert_eq!(wav_tone_seconds(&p, freq + 300.0, 5.0).unwrap(), 0.0);
        }
    }

    #[test]
    fn reads_stereo_float_and_24_bit_and_resamples_to_48k_mono() {
        let dir = scratch_dir("formats");
        let cases = [
            (2u16, 44_100u32, 16u16, hound::SampleFormat::Int),
            (1, 8_000, 32, hound::SampleFormat::Float),
            (2, 16_000, 24, hound::SampleFormat::Int),
            (1, 22_050, 8, hound::SampleFormat::Int),
        ];
        for (channels, rate, bits, format) in cases {
            let p = dir.join(format!("{channels}-{rate}-{bits}.wav"));
            let spec = hound::WavSpec {
                channels,
                sample_rate: rate,
                bits_per_sample: bits,
                sample_format: format,
            };
            let mut w = hound::WavWriter::create(&p, spec).unwrap();
            let n = rate as usize; // 1 s
            for i in 0..n {
                let v =
                    0.5 * (2.0 * std::f64::consts::PI * 600.0 * i as f64 / f64::from(rate)).sin();
                for _ in 0..channels {
                    match format {
                        hound::SampleFormat::Float => w.write_sample(v as f32).unwrap(),
                        hound::SampleFormat::Int => {
                            let scale = f64::from(1u32 << (bits - 1));
                            w.write_sample((v * scale) as i32).unwrap()
                        }
                    }
                }
            }
            w.finalize().unwrap();
            let pcm = read_wav_48k_mono(&p).unwrap();
            assert!(
                (pcm.len() as i64 - 48_000).abs() <= 8,
                "{p:?}: {}",
                pcm.len()
            );
            let peak = pcm.iter().map(|s| s.unsigned_abs()).max().unwrap();
            assert!((15_500..=16_800).contains(&peak), "{p:?}: peak {peak}");
            let f = dominant_frequency(&pcm, SAMPLE_RATE).unwrap();
            assert!((f - 600.0).abs() < 1.0, "{p:?}: {f}");
            assert!(tone_seconds(&pcm, SAMPLE_RATE, 600.0, 5.0).unwrap() > 0.95);
        }
    }

    #[test]
    fn missing_corrupt_truncated_and_unsupported_wavs_are_errors() {
        let dir = scratch_dir("corrupt");
        let missing = dir.join("missing.wav");
        let e = WavDevice::new(Some(missing.clone()), None).unwrap_err();
        assert!(matches!(e, AudioError::WavOpen { .. }), "{e}");
        assert!(e.to_string().contains("file not found") && e.to_string().contains("missing.wav"));
        assert!(matches!(
            wav_tone_seconds(&missing, 440.0, 1.0),
            Err(AudioError::WavOpen { .. })
        ));

        let garbage = dir.join("garbage.wav");
        std::fs::write(
            &garbage,
            b"this is not a RIFF file at all, just some text....",
        )
        .unwrap();
        let e = WavDevice::new(Some(garbage), None).unwrap_err();
        assert!(matches!(e, AudioError::WavFormat { .. }), "{e}");

        let empty = dir.join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        let e = read_wav_48k_mono(&empty).unwrap_err();
        assert!(matches!(e, AudioError::WavFormat { .. }), "{e:?}");

        // A valid 1 s file cut in half: the header promises more than the file holds.
        let good = dir.join("good.wav");
        write_tone_wav(&good, 440.0, 1.0, 48_000).unwrap();
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.join("cut.wav");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_wav_48k_mono(&cut).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");

        // A header announcing ~4 G samples must not allocate, just fail.
        let mut huge = bytes[..44].to_vec();
        huge[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        let hp = dir.join("huge.wav");
        std::fs::write(&hp, &huge).unwrap();
        assert!(matches!(
            read_wav_48k_mono(&hp),
            Err(AudioError::WavFormat { .. })
        ));

        // Garbage after a valid RIFF/WAVE prefix, many variants: never a panic.
        for i in 0..200u32 {
            let mut b = bytes[..64].to_vec();
            let mut seed = i.wrapping_mul(2_654_435_761);
            for byte in b.iter_mut().skip(12) {
                seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                if seed % 5 == 0 {
                    *byte = (seed >> 24) as u8;
                }
            }
            let p = dir.join("fuzz.wav");
            std::fs::File::create(&p).unwrap().write_all(&b).unwrap();
            let _ = read_wav_48k_mono(&p);
        }

        // Absurd tone requests are argument errors, not allocations.
        let e = write_tone_wav(dir.join("long.wav"), 440.0, 1e300, 48_000).unwrap_err();
        assert!(matches!(e, AudioError::InvalidArgument(_)), "{e}");

        // Unwritable record path: error at start, not a panic.
        let rec = dir.join("no-such-dir").join("out.wav");
        let mut dev = WavDevice::new(None, Some(rec)).unwrap();
        let (tx, _rx) = mpsc::channel(1);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let e = rt.block_on(async { dev.start(tx) }).unwrap_err();
        assert!(matches!(e, AudioError::WavWrite { .. }), "{e}");
    }

    /// WAV → WavDevice capture → FakeDevice playout, and FakeDevice capture → WavDevice
    /// playout → recorded WAV: the shape of an interop test, in virtual time.
    #[tokio::test(start_paused = true)]
    async fn wav_round_trip_through_a_fake_peer() {
        let dir = scratch_dir("roundtrip");
        let input = dir.join("in.wav");
        let output = dir.join("out.wav");
        write_tone_wav(&input, 1000.0, 3.0, 44_100).unwrap();

        let mut wav = WavDevice::new(Some(input), Some(output.clone())).unwrap();
        assert_eq!(wav.play_duration(), Duration::from_secs(3));
        let mut peer = FakeDevice::new(FakeSource::Tone {
            freq_hz: 440.0,
            amplitude: 12_000,
        });
        let (wav_tx, mut wav_rx) = mpsc::channel::<AudioFrame>(50);
        let (peer_tx, mut peer_rx) = mpsc::channel::<AudioFrame>(50);
        let wav_sink = wav.start(wav_tx).unwrap();
        let peer_sink = peer.start(peer_tx).unwrap();
        let a = tokio::spawn(async move {
            while let Some(f) = wav_rx.recv().await {
                peer_sink.push(&f.samples);
            }
        });
        let b = tokio::spawn(async move {
            while let Some(f) = peer_rx.recv().await {
                wav_sink.push(&f.samples);
            }
        });
        tokio::time::sleep(Duration::from_millis(4010)).await;
        assert!(wav.is_play_finished());
        wav.finish().unwrap();
        peer.stop();
        a.abort();
        b.abort();

        // The peer heard 3 s of 1 kHz then silence.
        let heard = peer.recorder().samples();
        assert_eq!(heard.len(), 200 * FRAME_SAMPLES);
        let secs = tone_seconds(&heard, SAMPLE_RATE, 1000.0, 5.0).unwrap();
        assert!((secs - 3.0).abs() <= 0.1, "peer heard {secs} s");

        // The recording holds the peer's 440 Hz for ~4 s (minus a frame of latency).
        let spec = hound::WavReader::open(&output).unwrap().spec();
        assert_eq!(
            (spec.channels, spec.sample_rate, spec.bits_per_sample),
            (1, 48_000, 16)
        );
        assert_eq!(wav.recorded_samples(), 200 * FRAME_SAMPLES as u64);
        assert_eq!(
            read_wav_48k_mono(&output).unwrap().len(),
            200 * FRAME_SAMPLES
        );
        let secs = wav_tone_seconds(&output, 440.0, 5.0).unwrap();
        assert!((secs - 3.98).abs() <= 0.1, "recorded {secs} s");
        let f = wav_dominant_frequency(&output).unwrap();
        assert!((f - 440.0).abs() < 1.0, "{f}");
    }

    #[tokio::test(start_paused = true)]
    async fn loop_repeats_the_file_and_drop_finalizes_the_recording() {
        let dir = scratch_dir("loop");
        let input = dir.join("in.wav");
        let output = dir.join("out.wav");
        write_tone_wav(&input, 700.0, 0.5, 16_000).unwrap();
        let mut wav = WavDevice::new(Some(input), Some(output.clone()))
            .unwrap()
            .with_end(EndBehavior::Loop);
        let (tx, mut rx) = mpsc::channel::<AudioFrame>(500);
        let sink = wav.start(tx).unwrap();
        let looped = tokio::spawn(async move {
            while let Some(f) = rx.recv().await {
                sink.push(&f.samples);
            }
        });
        tokio::time::sleep(Duration::from_millis(2005)).await;
        drop(wav); // no stop(): Drop must finalize the header
        looped.abort();
        let pcm = read_wav_48k_mono(&output).unwrap();
        assert_eq!(pcm.len(), 100 * FRAME_SAMPLES);
        let secs = tone_seconds(&pcm, SAMPLE_RATE, 700.0, 5.0).unwrap();
        assert!(secs >= 1.9, "looped tone for {secs} s");
    }
}
