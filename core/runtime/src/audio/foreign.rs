//! A device whose audio is owned by a platform shell (Android Oboe/AAudio, iOS
//! AVAudioEngine/AudioUnit): the shell pushes what it captured and pulls what to play.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::mpsc;

use super::{
    AudioDevice, AudioError, AudioFrame, CaptureCounters, CapturePort, CaptureStats, PlayoutSink,
    PlayoutStats,
};

#[derive(Debug)]
struct Inner {
    name: String,
    capture: Mutex<Option<CapturePort>>,
    counters: Arc<CaptureCounters>,
    playout: PlayoutSink,
}

/// A cloneable, thread-safe audio device handle for platform shells.
///
/// The shell configures its audio session for **48 kHz mono `i16`** and, from its audio
/// callbacks, calls [`push_capture`](Self::push_capture) with whatever buffer size the
/// platform delivers (re-chunked here into 20 ms frames) and
/// [`pull_playout`](Self::pull_playout) to fill its output buffer (silence and an underrun
/// count when the pipeline is late). The pipeline holds another clone as its
/// [`AudioDevice`]. Both calls take short mutex sections and never wait for the pipeline;
/// capture frames are allocated (one `Vec` per 20 ms).
///
/// Before `start` and after `stop`, pushed capture is discarded and playout is silence.
#[derive(Debug, Clone)]
pub struct ForeignDevice {
    inner: Arc<Inner>,
}

impl ForeignDevice {
    /// A stopped device called `name`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                capture: Mutex::new(None),
                counters: Arc::default(),
                playout: PlayoutSink::default(),
            }),
        }
    }

    fn capture(&self) -> MutexGuard<'_, Option<CapturePort>> {
        self.inner
            .capture
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Shell side: hands over captured 48 kHz mono samples, any count. Complete 20 ms frames
    /// go to the pipeline; the remainder waits for the next push. Never blocks on the
    /// pipeline: a full capture channel drops the frame and counts it.
    pub fn push_capture(&self, samples: &[i16]) {
        if let Some(port) = self.capture().as_mut() {
            port.push_samples(samples);
        }
    }

    /// Shell side: fills `out` with 48 kHz mono playout samples. Returns how many were real
    /// audio; the rest of `out` is silence, and a shortfall after playout began counts as an
    /// underrun.
    pub fn pull_playout(&self, out: &mut [i16]) -> usize {
        self.inner.playout.pull(out)
    }

    /// Playout counters (underruns, overflow, buffered samples) since the last `start`.
    pub fn playout_stats(&self) -> PlayoutStats {
        self.inner.playout.stats()
    }

    /// Whether the device is started.
    pub fn is_started(&self) -> bool {
        self.capture().is_some()
    }
}

impl AudioDevice for ForeignDevice {
    fn start(&mut self, capture: mpsc::Sender<AudioFrame>) -> Result<PlayoutSink, AudioError> {
        let mut slot = self.capture();
        if slot.is_some() {
            return Err(AudioError::AlreadyStarted(self.inner.name.clone()));
        }
        self.inner.playout.reset();
        *slot = Some(CapturePort::new(capture, self.inner.counters.clone()));
        Ok(self.inner.playout.clone())
    }

    fn stop(&mut self) {
        *self.capture() = None;
        self.inner.playout.reset();
    }

    fn name(&self) -> String {
        self.inner.name.clone()
    }

    fn capture_stats(&self) -> CaptureStats {
        self.inner.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audio::FRAME_SAMPLES;

    #[test]
    fn capture_of_any_size_is_rechunked_into_20ms_frames() {
        let shell = ForeignDevice::new("android");
        let mut dev: Box<dyn AudioDevice> = Box::new(shell.clone());
        assert_eq!(dev.name(), "android");
        shell.push_capture(&[1; 5000]); // before start: discarded
        let (tx, mut rx) = mpsc::channel(100);
        let _sink = dev.start(tx).unwrap();
        assert!(shell.is_started());

        // 10 ms (480), 256-sample and odd-sized bursts, as platforms deliver them.
        let source: Vec<i16> = (0..48_000).map(|i| (i % 30_000) as i16).collect();
        let mut fed = 0;
        for (i, size) in [480usize, 256, 1, 999, 192, 4096]
            .iter()
            .cycle()
            .enumerate()
        {
            if fed >= source.len() {
                break;
            }
            let end = (fed + size).min(source.len());
            // Push from different clones/threads: the handle is shared.
            let handle = shell.clone();
            let chunk = source[fed..end].to_vec();
            if i % 2 == 0 {
                std::thread::spawn(move || handle.push_capture(&chunk))
                    .join()
                    .unwrap();
            } else {
                handle.push_capture(&chunk);
            }
            fed = end;
        }
        let mut frames = Vec::new();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        assert_eq!(frames.len(), 50);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(
                f.samples,
                source[i * FRAME_SAMPLES..(i + 1) * FRAME_SAMPLES]
            );
            assert_eq!(f.timestamp, Duration::from_millis(20 * i as u64));
        }
        assert_eq!(
            dev.capture_stats(),
            CaptureStats {
                frames: 50,
                dropped: 0
            }
        );
    }

    #[test]
    fn playout_fills_silence_on_underrun_and_counts_it() {
        let shell = ForeignDevice::new("ios");
        let mut dev = shell.clone();
        let (tx, _rx) = mpsc::channel(1);
        let sink = dev.start(tx.clone()).unwrap();
        assert!(matches!(
            dev.start(tx.clone()),
            Err(AudioError::AlreadyStarted(_))
        ));

        let mut out = vec![9i16; 441];
        assert_eq!(shell.pull_playout(&mut out), 0);
        assert!(out.iter().all(|&s| s == 0));
        assert_eq!(
            shell.playout_stats().underruns,
            0,
            "idle before the first frame"
        );

        sink.push(&[3; FRAME_SAMPLES]);
        assert_eq!(shell.pull_playout(&mut out), 441);
        assert_eq!(shell.pull_playout(&mut out), 441);
        out.fill(9);
        assert_eq!(shell.pull_playout(&mut out), 78);
        assert!(out[..78].iter().all(|&s| s == 3));
        assert!(out[78..].iter().all(|&s| s == 0));
        assert_eq!(shell.pull_playout(&mut out), 0);
        let st = shell.playout_stats();
        assert_eq!((st.underruns, st.underrun_samples), (2, (441 - 78) + 441));

        // Stop: pushes are discarded, playout is silent, counters reset on restart.
        dev.stop();
        assert!(!shell.is_started());
        shell.push_capture(&[1; 2000]);
        assert_eq!(dev.capture_stats().frames, 0);
        let _sink = dev.start(tx).unwrap();
        assert_eq!(shell.playout_stats(), PlayoutStats::default());
    }

    #[test]
    fn full_capture_channel_drops_and_counts() {
        let shell = ForeignDevice::new("x");
        let mut dev = shell.clone();
        let (tx, _rx) = mpsc::channel(2);
        dev.start(tx).unwrap();
        shell.push_capture(&[0; 5 * FRAME_SAMPLES]);
        assert_eq!(
            dev.capture_stats(),
            CaptureStats {
                frames: 5,
                dropped: 3
            }
        );
    }
}
