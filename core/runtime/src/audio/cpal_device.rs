//! The machine's sound card through cpal.
//!
//! The device is opened at 48 kHz mono `i16` when the hardware offers it; otherwise the
//! closest configuration is used (48 kHz with more channels, or the device default rate) and
//! converted in the callbacks: channels averaged on capture and duplicated on playout, rate
//! changed by linear interpolation, any cpal sample format converted.
//!
//! Real-time caveats: the callbacks take the [`PlayoutSink`] mutex for a sample copy, and
//! capture allocates one `Vec` per 20 ms frame and `try_send`s it. Both are short, but a
//! pipeline thread preempted while holding the playout lock can delay the audio thread
//! (priority inversion); the pipeline side only copies samples under that lock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};
use cpal::{FromSample, SampleFormat, SizedSample};
use tokio::sync::mpsc;

use super::{
    AudioDevice, AudioError, AudioFrame, CaptureCounters, CapturePort, CaptureStats,
    LinearResampler, PlayoutSink, SAMPLE_RATE, f32_to_i16, i16_to_f32,
};

/// One device reported by [`CpalDevice::list`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpalDeviceInfo {
    /// Identifier to pass to [`CpalDevice::open`], e.g. `alsa:null` or `alsa:hw:0,0`.
    pub id: String,
    /// Human-readable description.
    pub name: String,
    /// Whether it can capture.
    pub input: bool,
    /// Whether it can play.
    pub output: bool,
}

#[derive(Debug, Clone)]
struct Chosen {
    config: cpal::StreamConfig,
    format: SampleFormat,
}

/// The sound card (default or named devices) as an [`AudioDevice`].
///
/// Construction opens nothing yet but checks that the devices exist and offer a usable
/// configuration, so a machine without a sound card gets an [`AudioError::Device`] here.
/// Streams are created by `start` and dropped by `stop`.
pub struct CpalDevice {
    name: String,
    input: cpal::Device,
    output: cpal::Device,
    input_cfg: Chosen,
    output_cfg: Chosen,
    streams: Vec<cpal::Stream>,
    counters: Arc<CaptureCounters>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl std::fmt::Debug for CpalDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CpalDevice")
            .field("name", &self.name)
            .field("input_cfg", &self.input_cfg)
            .field("output_cfg", &self.output_cfg)
            .field("running", &!self.streams.is_empty())
            .finish()
    }
}

fn device_error(context: &str, e: &cpal::Error) -> AudioError {
    let hint = match e.kind() {
        cpal::ErrorKind::DeviceNotAvailable | cpal::ErrorKind::HostUnavailable => {
            " (no sound card? use a WAV or fake device)"
        }
        _ => "",
    };
    AudioError::Device(format!("{context}: {e}{hint}"))
}

fn format_rank(format: SampleFormat) -> Option<u8> {
    match format {
        SampleFormat::I16 => Some(0),
        SampleFormat::F32 => Some(1),
        SampleFormat::I32 => Some(2),
        SampleFormat::I24 => Some(3),
        SampleFormat::F64 => Some(4),
        SampleFormat::U16 => Some(5),
        SampleFormat::I8 | SampleFormat::U8 => Some(6),
        SampleFormat::U32 | SampleFormat::U24 | SampleFormat::I64 | SampleFormat::U64 => Some(7),
        _ => None,
    }
}

fn choose(device: &cpal::Device, input: bool) -> Result<Chosen, cpal::Error> {
    let ranges: Vec<cpal::SupportedStreamConfigRange> = if input {
        device.supported_input_configs()?.collect()
    } else {
        device.supported_output_configs()?.collect()
    };
    let best = ranges
        .iter()
        .filter(|r| r.channels() > 0)
        .filter(|r| (r.min_sample_rate()..=r.max_sample_rate()).contains(&SAMPLE_RATE))
        .filter_map(|r| format_rank(r.sample_format()).map(|rank| (r, rank)))
        .min_by_key(|(r, rank)| (r.channels(), *rank));
    if let Some((r, _)) = best {
        return Ok(Chosen {
            config: cpal::StreamConfig {
                channels: r.channels(),
                sample_rate: SAMPLE_RATE,
                buffer_size: cpal::BufferSize::Default,
            },
            format: r.sample_format(),
        });
    }
    let d = if input {
        device.default_input_config()?
    } else {
        device.default_output_config()?
    };
    if format_rank(d.sample_format()).is_none() || d.channels() == 0 || d.sample_rate() == 0 {
        return Err(cpal::Error::with_message(
            cpal::ErrorKind::UnsupportedConfig,
            format!("no usable configuration (default is {d:?})"),
        ));
    }
    Ok(Chosen {
        config: d.config(),
        format: d.sample_format(),
    })
}

impl CpalDevice {
    /// Lists the devices of the default host. Probing each device may print ALSA
    /// diagnostics on stderr.
    pub fn list() -> Result<Vec<CpalDeviceInfo>, AudioError> {
        let host = cpal::default_host();
        let devices = host
            .devices()
            .map_err(|e| device_error("listing audio devices", &e))?;
        Ok(devices
            .map(|d| CpalDeviceInfo {
                id: d.id().map(|id| id.to_string()).unwrap_or_default(),
                name: d.to_string(),
                input: d.supports_input(),
                output: d.supports_output(),
            })
            .collect())
    }

    /// The default input and output devices of the default host.
    pub fn open_default() -> Result<Self, AudioError> {
        let host = cpal::default_host();
        let input = host
            .default_input_device()
            .ok_or_else(|| AudioError::Device("no default input device (no sound card?)".into()))?;
        let output = host.default_output_device().ok_or_else(|| {
            AudioError::Device("no default output device (no sound card?)".into())
        })?;
        Self::from_devices(input, output)
    }

    /// One device for both directions, by [`CpalDeviceInfo::id`] (`alsa:null`) or by the
    /// host-local part alone (`null`).
    pub fn open(id: &str) -> Result<Self, AudioError> {
        Self::open_pair(id, id)
    }

    /// Separate input and output devices by id (see [`open`](Self::open)).
    pub fn open_pair(input_id: &str, output_id: &str) -> Result<Self, AudioError> {
        let host = cpal::default_host();
        let find = |id: &str| -> Result<cpal::Device, AudioError> {
            let parsed = match id.parse::<cpal::DeviceId>() {
                Ok(parsed) if parsed.host() == host.id() => parsed,
                _ => cpal::DeviceId::new(host.id(), id),
            };
            host.device_by_id(&parsed)
                .ok_or_else(|| AudioError::Device(format!("no audio device with id {id:?}")))
        };
        Self::from_devices(find(input_id)?, find(output_id)?)
    }

    fn from_devices(input: cpal::Device, output: cpal::Device) -> Result<Self, AudioError> {
        let input_cfg = choose(&input, true)
            .map_err(|e| device_error(&format!("input device \"{input}\""), &e))?;
        let output_cfg = choose(&output, false)
            .map_err(|e| device_error(&format!("output device \"{output}\""), &e))?;
        Ok(Self {
            name: format!("cpal(in=\"{input}\", out=\"{output}\")"),
            input,
            output,
            input_cfg,
            output_cfg,
            streams: Vec::new(),
            counters: Arc::default(),
            last_error: Arc::default(),
        })
    }

    /// The negotiated (input, output) configurations as `(channels, rate, format)`, for logs.
    pub fn configs(&self) -> ((u16, u32, String), (u16, u32, String)) {
        let show = |c: &Chosen| {
            (
                c.config.channels,
                c.config.sample_rate,
                format!("{:?}", c.format),
            )
        };
        (show(&self.input_cfg), show(&self.output_cfg))
    }

    /// The last error reported by a running stream (device unplugged, xrun, ...).
    pub fn last_stream_error(&self) -> Option<String> {
        self.last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether streams are running.
    pub fn is_running(&self) -> bool {
        !self.streams.is_empty()
    }

    fn error_callback(&self) -> impl FnMut(cpal::Error) + Send + 'static {
        let slot = self.last_error.clone();
        move |e: cpal::Error| {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
        }
    }

    fn build_input(&self, port: CapturePort) -> Result<cpal::Stream, cpal::Error> {
        let conv = InputConverter::new(&self.input_cfg.config, port);
        macro_rules! typed {
            ($t:ty) => {
                build_input_typed::<$t>(
                    &self.input,
                    &self.input_cfg.config,
                    conv,
                    self.error_callback(),
                )
            };
        }
        match self.input_cfg.format {
            SampleFormat::I8 => typed!(i8),
            SampleFormat::I16 => typed!(i16),
            SampleFormat::I24 => typed!(cpal::I24),
            SampleFormat::I32 => typed!(i32),
            SampleFormat::I64 => typed!(i64),
            SampleFormat::U8 => typed!(u8),
            SampleFormat::U16 => typed!(u16),
            SampleFormat::U24 => typed!(cpal::U24),
            SampleFormat::U32 => typed!(u32),
            SampleFormat::U64 => typed!(u64),
            SampleFormat::F32 => typed!(f32),
            SampleFormat::F64 => typed!(f64),
            _ => Err(unsupported_format(self.input_cfg.format)),
        }
    }

    fn build_output(&self, sink: PlayoutSink) -> Result<cpal::Stream, cpal::Error> {
        let conv = OutputConverter::new(&self.output_cfg.config, sink);
        macro_rules! typed {
            ($t:ty) => {
                build_output_typed::<$t>(
                    &self.output,
                    &self.output_cfg.config,
                    conv,
                    self.error_callback(),
                )
            };
        }
        match self.output_cfg.format {
            SampleFormat::I8 => typed!(i8),
            SampleFormat::I16 => typed!(i16),
            SampleFormat::I24 => typed!(cpal::I24),
            SampleFormat::I32 => typed!(i32),
            SampleFormat::I64 => typed!(i64),
            SampleFormat::U8 => typed!(u8),
            SampleFormat::U16 => typed!(u16),
            SampleFormat::U24 => typed!(cpal::U24),
            SampleFormat::U32 => typed!(u32),
            SampleFormat::U64 => typed!(u64),
            SampleFormat::F32 => typed!(f32),
            SampleFormat::F64 => typed!(f64),
            _ => Err(unsupported_format(self.output_cfg.format)),
        }
    }
}

fn unsupported_format(format: SampleFormat) -> cpal::Error {
    cpal::Error::with_message(
        cpal::ErrorKind::UnsupportedConfig,
        format!("sample format {format:?} is not supported"),
    )
}

fn build_input_typed<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut conv: InputConverter,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample,
    f32: FromSample<T>,
{
    device.build_input_stream::<T, _, _>(
        *config,
        move |data: &[T], _: &cpal::InputCallbackInfo| conv.process(data),
        on_error,
        None,
    )
}

fn build_output_typed<T>(
    device: &cpal::Device,
    config: &cpal::StreamConfig,
    mut conv: OutputConverter,
    on_error: impl FnMut(cpal::Error) + Send + 'static,
) -> Result<cpal::Stream, cpal::Error>
where
    T: SizedSample + FromSample<f32>,
{
    device.build_output_stream::<T, _, _>(
        *config,
        move |data: &mut [T], _: &cpal::OutputCallbackInfo| conv.process(data),
        on_error,
        None,
    )
}

/// Device-format capture → 48 kHz mono `i16` frames. Buffers are reused between callbacks.
struct InputConverter {
    channels: usize,
    resampler: LinearResampler,
    mono: Vec<f32>,
    resampled: Vec<f32>,
    pcm: Vec<i16>,
    port: CapturePort,
}

impl InputConverter {
    fn new(config: &cpal::StreamConfig, port: CapturePort) -> Self {
        Self {
            channels: usize::from(config.channels.max(1)),
            resampler: LinearResampler::new(config.sample_rate, SAMPLE_RATE),
            mono: Vec::new(),
            resampled: Vec::new(),
            pcm: Vec::new(),
            port,
        }
    }

    fn process<T>(&mut self, data: &[T])
    where
        T: SizedSample,
        f32: FromSample<T>,
    {
        self.mono.clear();
        for frame in data.chunks(self.channels) {
            let sum: f32 = frame.iter().map(|&s| f32::from_sample_(s)).sum();
            self.mono.push(sum / frame.len() as f32);
        }
        self.resampled.clear();
        self.resampler.process(&self.mono, &mut self.resampled);
        self.pcm.clear();
        self.pcm
            .extend(self.resampled.iter().map(|&v| f32_to_i16(v)));
        self.port.push_samples(&self.pcm);
    }
}

/// [`PlayoutSink`] (48 kHz mono) → device format. Pulls just what each callback needs.
struct OutputConverter {
    channels: usize,
    step: f64,
    resampler: LinearResampler,
    pending: VecDeque<f32>,
    pulled: Vec<i16>,
    as_f32: Vec<f32>,
    resampled: Vec<f32>,
    sink: PlayoutSink,
}

impl OutputConverter {
    fn new(config: &cpal::StreamConfig, sink: PlayoutSink) -> Self {
        Self {
            channels: usize::from(config.channels.max(1)),
            step: f64::from(SAMPLE_RATE) / f64::from(config.sample_rate.max(1)),
            resampler: LinearResampler::new(SAMPLE_RATE, config.sample_rate),
            pending: VecDeque::new(),
            pulled: Vec::new(),
            as_f32: Vec::new(),
            resampled: Vec::new(),
            sink,
        }
    }

    fn process<T>(&mut self, data: &mut [T])
    where
        T: SizedSample + FromSample<f32>,
    {
        let frames = data.len().div_ceil(self.channels);
        // A few rounds at most: each pull yields about `need` output samples.
        for _ in 0..4 {
            if self.pending.len() >= frames {
                break;
            }
            let need = frames - self.pending.len();
            let k = if self.resampler.is_identity() {
                need
            } else {
                (need as f64 * self.step).ceil() as usize + 1
            };
            self.pulled.resize(k, 0);
            self.sink.pull(&mut self.pulled);
            self.as_f32.clear();
            self.as_f32
                .extend(self.pulled.iter().map(|&s| i16_to_f32(s)));
            self.resampled.clear();
            self.resampler.process(&self.as_f32, &mut self.resampled);
            self.pending.extend(self.resampled.iter().copied());
        }
        for frame in data.chunks_mut(self.channels) {
            let v = T::from_sample_(self.pending.pop_front().unwrap_or(0.0));
            frame.fill(v);
        }
    }
}

impl AudioDevice for CpalDevice {
    fn start(&mut self, capture: mpsc::Sender<AudioFrame>) -> Result<PlayoutSink, AudioError> {
        if !self.streams.is_empty() {
            return Err(AudioError::AlreadyStarted(self.name.clone()));
        }
        *self
            .last_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        let sink = PlayoutSink::default();
        let port = CapturePort::new(capture, self.counters.clone());
        let input = self
            .build_input(port)
            .map_err(|e| device_error(&format!("opening input \"{}\"", self.input), &e))?;
        let output = self
            .build_output(sink.clone())
            .map_err(|e| device_error(&format!("opening output \"{}\"", self.output), &e))?;
        input
            .play()
            .map_err(|e| device_error("starting capture", &e))?;
        output
            .play()
            .map_err(|e| device_error("starting playout", &e))?;
        self.streams = vec![input, output];
        Ok(sink)
    }

    fn stop(&mut self) {
        for s in &self.streams {
            // Pausing first stops callbacks promptly on backends where drop is lazy; a
            // backend that cannot pause is stopped by the drop below anyway.
            let _ = s.pause();
        }
        self.streams.clear();
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn capture_stats(&self) -> CaptureStats {
        self.counters.snapshot()
    }
}

impl Drop for CpalDevice {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::audio::FRAME_SAMPLES;

    #[test]
    fn list_does_not_panic() {
        match CpalDevice::list() {
            Ok(devices) => {
                for d in &devices {
                    eprintln!(
                        "cpal device {} ({}) in={} out={}",
                        d.id, d.name, d.input, d.output
                    );
                }
            }
            Err(e) => eprintln!("cpal list error: {e}"),
        }
    }

    #[test]
    fn open_default_is_ok_or_a_clear_error() {
        match CpalDevice::open_default() {
            Ok(dev) => eprintln!("default device: {} {:?}", dev.name(), dev.configs()),
            Err(e) => {
                let msg = e.to_string();
                assert!(matches!(e, AudioError::Device(_)), "{msg}");
                assert!(msg.contains("default") || msg.contains("Default"), "{msg}");
                eprintln!("open_default: {msg}");
            }
        }
    }

    #[test]
    fn unknown_device_is_an_error() {
        let e = CpalDevice::open("no-such-device-xyz").unwrap_err();
        assert!(e.to_string().contains("no-such-device-xyz"), "{e}");
    }

    /// ALSA's `null` PCM exists without a sound card; it is unpaced, so this only checks
    /// that streams open, callbacks convert and deliver, and stop is clean.
    #[test]
    fn alsa_null_device_streams_when_available() {
        let Ok(devices) = CpalDevice::list() else {
            return;
        };
        let Some(null) = devices
            .iter()
            .find(|d| d.id.ends_with(":null") && d.input && d.output)
        else {
            eprintln!("no null device; skipping");
            return;
        };
        let mut dev = CpalDevice::open(&null.id).unwrap();
        eprintln!("{} {:?}", dev.name(), dev.configs());
        let (tx, mut rx) = mpsc::channel(64);
        let sink = dev.start(tx).unwrap();
        assert!(dev.is_running());
        sink.push(&vec![1000; 4 * FRAME_SAMPLES]);
        std::thread::sleep(Duration::from_millis(200));
        dev.stop();
        assert!(!dev.is_running());
        let mut frames = Vec::new();
        while let Ok(f) = rx.try_recv() {
            frames.push(f);
        }
        assert!(!frames.is_empty(), "no capture from the null device");
        assert!(frames.iter().all(|f| f.samples.len() == FRAME_SAMPLES));
        assert!(frames.iter().all(|f| f.samples.iter().all(|&s| s == 0)));
        assert!(frames.windows(2).all(|w| w[0].timestamp < w[1].timestamp));
        let st = sink.stats();
        assert_eq!(st.played_samples, 4 * FRAME_SAMPLES as u64, "{st:?}");
        assert!(dev.capture_stats().frames >= frames.len() as u64);
        assert_eq!(dev.last_stream_error(), None);
        // Restart works after stop.
        let (tx, _rx) = mpsc::channel(4);
        dev.start(tx).unwrap();
        dev.stop();
    }

    #[test]
    fn converters_handle_stereo_and_other_rates() {
        // Capture: 44.1 kHz stereo f32 with L=0.5, R=0 → 48 kHz mono ≈ 0.25 full scale.
        let (tx, mut rx) = mpsc::channel(16);
        let cfg = cpal::StreamConfig {
            channels: 2,
            sample_rate: 44_100,
            buffer_size: cpal::BufferSize::Default,
        };
        let mut conv = InputConverter::new(&cfg, CapturePort::new(tx, Arc::default()));
        let data: Vec<f32> = (0..441 * 2)
            .map(|i| if i % 2 == 0 { 0.5 } else { 0.0 })
            .collect();
        for _ in 0..10 {
            conv.process(&data); // 100 ms
        }
        let mut n = 0;
        while let Ok(f) = rx.try_recv() {
            n += 1;
            assert!(f.samples.iter().skip(1).all(|&s| (s - 8192).abs() <= 1));
        }
        assert_eq!(n, 4);

        // Playout: 48 kHz mono → 16 kHz stereo i16 duplicates channels and pulls ~1/3.
        let sink = PlayoutSink::default();
        sink.push(&vec![3000; 3 * FRAME_SAMPLES]);
        let cfg = cpal::StreamConfig {
            channels: 2,
            sample_rate: 16_000,
            buffer_size: cpal::BufferSize::Default,
        };
        let mut conv = OutputConverter::new(&cfg, sink.clone());
        let mut out = vec![0i16; 2 * 320]; // 20 ms at 16 kHz
        conv.process(&mut out);
        assert!(
            out.iter().skip(2).all(|&s| (s - 3000).abs() <= 1),
            "{:?}",
            &out[..8]
        );
        let buffered = sink.buffered();
        assert!(
            (3 * FRAME_SAMPLES - buffered).abs_diff(FRAME_SAMPLES) <= 4,
            "{buffered}"
        );
        assert_eq!(sink.stats().underruns, 0);
    }
}
