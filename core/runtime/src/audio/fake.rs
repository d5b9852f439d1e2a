//! A clocked fake device driven by tokio timers, and the clock loop it shares with
//! [`WavDevice`](super::WavDevice).
//!
//! Pacing uses `tokio::time::interval` with [`MissedTickBehavior::Burst`]: a sound card's
//! sample clock does not slow down when the host is late, it hands over the backlog at once.
//! Burst keeps "frames produced" equal to "elapsed time / 20 ms" after a stall, as real
//! hardware does, so drift and jitter-buffer bugs are not hidden (Delay would silently
//! lose device time). Under a paused tokio clock every tick fires in order, instantly.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use super::{
    AudioDevice, AudioError, AudioFrame, CaptureCounters, CapturePort, CaptureStats, EndBehavior,
    FRAME_DURATION, FRAME_SAMPLES, PlayoutSink, SAMPLE_RATE,
};

/// What a [`FakeDevice`] "hears" on its microphone.
#[derive(Debug, Clone, PartialEq)]
pub enum FakeSource {
    /// All zeros.
    Silence,
    /// A continuous sine tone.
    Tone {
        /// Frequency in Hz.
        freq_hz: f64,
        /// Peak sample value.
        amplitude: i16,
    },
    /// Fixed samples (48 kHz mono), then [`EndBehavior`].
    Script {
        /// The samples.
        samples: Vec<i16>,
        /// What happens after the last sample.
        end: EndBehavior,
    },
}

/// The running state of a frame source.
#[derive(Debug)]
pub(super) enum SourceState {
    Silence,
    Tone {
        phase: f64,
        step: f64,
        amp: f64,
    },
    Script {
        samples: Arc<[i16]>,
        pos: usize,
        end: EndBehavior,
    },
}

impl SourceState {
    pub(super) fn from_source(source: &FakeSource) -> Self {
        match source {
            FakeSource::Silence => Self::Silence,
            FakeSource::Tone { freq_hz, amplitude } => Self::Tone {
                phase: 0.0,
                step: 2.0 * std::f64::consts::PI * freq_hz / f64::from(SAMPLE_RATE),
                amp: f64::from(*amplitude),
            },
            FakeSource::Script { samples, end } => Self::script(samples.as_slice().into(), *end),
        }
    }

    pub(super) fn script(samples: Arc<[i16]>, end: EndBehavior) -> Self {
        Self::Script {
            samples,
            pos: 0,
            end,
        }
    }

    pub(super) fn fill(&mut self, out: &mut [i16]) {
        match self {
            Self::Silence => out.fill(0),
            Self::Tone { phase, step, amp } => {
                for s in out.iter_mut() {
                    *s = (*amp * phase.sin()).round().clamp(-32768.0, 32767.0) as i16;
                    *phase = (*phase + *step) % (2.0 * std::f64::consts::PI);
                }
            }
            Self::Script { samples, pos, end } => {
                for s in out.iter_mut() {
                    if *pos >= samples.len() && *end == EndBehavior::Loop {
                        *pos = 0;
                    }
                    *s = samples.get(*pos).copied().unwrap_or(0);
                    if *pos < samples.len() {
                        *pos += 1;
                    }
                }
            }
        }
    }
}

/// Spawns the 20 ms clock loop on the current tokio runtime: every tick it emits one capture
/// frame from `source` and pulls one playout frame from `playout` into `on_playout`.
/// The first frame is emitted 20 ms after start (when it has been "recorded").
pub(super) fn spawn_clocked<F>(
    device_name: &str,
    mut source: SourceState,
    mut capture: CapturePort,
    playout: PlayoutSink,
    mut on_playout: F,
) -> Result<JoinHandle<()>, AudioError>
where
    F: FnMut(&[i16]) + Send + 'static,
{
    let handle = tokio::runtime::Handle::try_current()
        .map_err(|_| AudioError::NoRuntime(device_name.to_owned()))?;
    Ok(handle.spawn(async move {
        let mut ticker = interval_at(Instant::now() + FRAME_DURATION, FRAME_DURATION);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Burst);
        let mut cap = vec![0i16; FRAME_SAMPLES];
        let mut play = vec![0i16; FRAME_SAMPLES];
        loop {
            ticker.tick().await;
            source.fill(&mut cap);
            capture.push_samples(&cap);
            playout.pull(&mut play);
            on_playout(&play);
        }
    }))
}

/// Shared, growable record of everything a [`FakeDevice`] played (silence included), so a
/// test can read it while the device runs. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Recorder {
    inner: Arc<Mutex<Vec<i16>>>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, Vec<i16>> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A copy of the recorded samples (48 kHz mono).
    pub fn samples(&self) -> Vec<i16> {
        self.lock().clone()
    }

    /// Number of recorded samples.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Forgets what was recorded.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn append(&self, samples: &[i16]) {
        self.lock().extend_from_slice(samples);
    }
}

/// A device paced by tokio timers: every 20 ms it captures one frame from a [`FakeSource`]
/// and plays one frame from the [`PlayoutSink`] into a [`Recorder`] (silence on underrun,
/// so the recorder grows by exactly 960 samples per tick).
///
/// `start` must run inside a tokio runtime. With `#[tokio::test(start_paused = true)]`,
/// ten seconds of audio take milliseconds.
#[derive(Debug)]
pub struct FakeDevice {
    name: String,
    source: FakeSource,
    recorder: Recorder,
    counters: Arc<CaptureCounters>,
    task: Option<JoinHandle<()>>,
}

impl FakeDevice {
    /// A stopped fake device named "fake" capturing from `source`.
    pub fn new(source: FakeSource) -> Self {
        Self {
            name: "fake".to_owned(),
            source,
            recorder: Recorder::default(),
            counters: Arc::default(),
            task: None,
        }
    }

    /// Renames the device (shown by [`AudioDevice::name`]).
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }

    /// A handle on the playout recording; stays valid across restarts.
    pub fn recorder(&self) -> Recorder {
        self.recorder.clone()
    }

    /// Whether the clock task is running.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }
}

impl AudioDevice for FakeDevice {
    fn start(&mut self, capture: mpsc::Sender<AudioFrame>) -> Result<PlayoutSink, AudioError> {
        if self.task.is_some() {
            return Err(AudioError::AlreadyStarted(self.name.clone()));
        }
        let sink = PlayoutSink::default();
        let recorder = self.recorder.clone();
        let task = spawn_clocked(
            &self.name,
            SourceState::from_source(&self.source),
            CapturePort::new(capture, self.counters.clone()),
            sink.clone(),
            move |frame| recorder.append(frame),
        )?;
        self.task = Some(task);
        Ok(sink)
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn capture_stats(&self) -> CaptureStats {
        self.counters.snapshot()
    }
}

impl Drop for FakeDevice {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audio::{dominant_frequency, tone};

    #[tokio::test(start_paused = true)]
    async fn ten_seconds_of_ticks_give_500_frames_instantly() {
        let wall = std::time::Instant::now();
        let mut dev = FakeDevice::new(FakeSource::Tone {
            freq_hz: 440.0,
            amplitude: 10_000,
        });
        let (tx, mut rx) = mpsc::channel(1000);
        let _sink = dev.start(tx).unwrap();
        assert!(dev.is_running());
        tokio::time::sleep(Duration::from_secs(10) + Duration::from_millis(10)).await;
        dev.stop();
        assert!(!dev.is_running());

        let mut frames = Vec::new();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        assert_eq!(frames.len(), 500);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.samples.len(), FRAME_SAMPLES);
            assert_eq!(f.timestamp, Duration::from_millis(20 * i as u64));
        }
        assert_eq!(
            dev.capture_stats(),
            CaptureStats {
                frames: 500,
                dropped: 0
            }
        );
        assert_eq!(dev.recorder().len(), 500 * FRAME_SAMPLES);
        // The captured tone is phase-continuous across frames.
        let all: Vec<i16> = frames
            .iter()
            .flat_map(|f| f.samples.iter().copied())
            .collect();
        let f = dominant_frequency(&all, SAMPLE_RATE).unwrap();
        assert!((f - 440.0).abs() < 1.0, "{f}");
        assert!(
            wall.elapsed() < Duration::from_secs(5),
            "paused time should run instantly"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn playout_is_recorded_and_underruns_counted() {
        let mut dev = FakeDevice::new(FakeSource::Silence);
        let (tx, _rx) = mpsc::channel(10);
        let sink = dev.start(tx).unwrap();
        // Idle before the first push: 2 ticks of silence, not underruns.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(sink.stats().underruns, 0);
        // Push 3 frames at once; the device plays one per tick, then underruns.
        sink.push(&tone(1000.0, 8000, 0.06));
        tokio::time::sleep(Duration::from_millis(100)).await; // 5 more ticks
        dev.stop();
        let rec = dev.recorder().samples();
        assert_eq!(rec.len(), 7 * FRAME_SAMPLES);
        assert!(rec[..2 * FRAME_SAMPLES].iter().all(|&s| s == 0));
        assert_eq!(
            &rec[2 * FRAME_SAMPLES..5 * FRAME_SAMPLES],
            tone(1000.0, 8000, 0.06)
        );
        assert!(rec[5 * FRAME_SAMPLES..].iter().all(|&s| s == 0));
        let st = sink.stats();
        assert_eq!(
            (st.underruns, st.played_samples),
            (2, 3 * FRAME_SAMPLES as u64)
        );
        // Seven ticks, seven frames; the capture channel (capacity 10) had room for all.
        assert_eq!(
            dev.capture_stats(),
            CaptureStats {
                frames: 7,
                dropped: 0
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn full_capture_channel_drops_frames_without_stalling_the_clock() {
        let mut dev = FakeDevice::new(FakeSource::Silence);
        let (tx, _rx) = mpsc::channel(3);
        let _sink = dev.start(tx).unwrap();
        tokio::time::sleep(Duration::from_millis(205)).await;
        assert_eq!(
            dev.capture_stats(),
            CaptureStats {
                frames: 10,
                dropped: 7
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn script_source_ends_in_silence_or_loops() {
        for (end, expect_tail) in [(EndBehavior::Silence, 0i16), (EndBehavior::Loop, 1)] {
            let script = vec![1i16; 1500];
            let mut dev = FakeDevice::new(FakeSource::Script {
                samples: script,
                end,
            });
            let (tx, mut rx) = mpsc::channel(10);
            let _sink = dev.start(tx).unwrap();
            tokio::time::sleep(Duration::from_millis(65)).await;
            dev.stop();
            let f0 = rx.recv().await.unwrap();
            let f1 = rx.recv().await.unwrap();
            let f2 = rx.recv().await.unwrap();
            assert!(f0.samples.iter().all(|&s| s == 1));
            assert!(f1.samples[..540].iter().all(|&s| s == 1));
            assert!(f1.samples[540..].iter().all(|&s| s == expect_tail));
            assert!(f2.samples.iter().all(|&s| s == expect_tail));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn start_twice_is_an_error_and_restart_works() {
        let mut dev = FakeDevice::new(FakeSource::Silence).with_name("mic");
        assert_eq!(dev.name(), "mic");
        let (tx, _rx) = mpsc::channel(10);
        dev.start(tx.clone()).unwrap();
        assert_eq!(
            dev.start(tx.clone()).unwrap_err(),
            AudioError::AlreadyStarted("mic".into())
        );
        dev.stop();
        dev.stop();
        dev.start(tx).unwrap();
        assert!(dev.is_running());
    }

    #[test]
    fn start_outside_runtime_is_an_error() {
        let mut dev = FakeDevice::new(FakeSource::Silence);
        let (tx, _rx) = mpsc::channel(1);
        assert_eq!(
            dev.start(tx).unwrap_err(),
            AudioError::NoRuntime("fake".into())
        );
    }
}
