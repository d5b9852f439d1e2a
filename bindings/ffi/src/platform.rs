//! Platform services passed to the [`crate::HandsetPhone`] constructor as foreign traits
//! (implemented in Kotlin/Swift): audio, secrets, contacts, push token, audio routes. Never
//! globals.
//!
//! Every method returns `Result<_, PlatformError>`: whatever the platform throws (its own
//! `PlatformException` or any other exception) comes back as an error value, never as a panic,
//! and [`call_foreign`] turns it into [`HandsetError::Platform`]. `call_foreign` also catches a
//! panic, should a foreign implementation break the FFI contract.

use std::path::PathBuf;
use std::sync::Arc;

use handset::audio::{AudioDevice, FRAME_SAMPLES, ForeignDevice, SAMPLE_RATE, WavDevice};

use crate::error::{HandsetError, guard};
use crate::types::{AudioRoute, Contact, PushToken, StoredSecret};

/// What a platform service reports when it fails. Implementations may throw this or any other
/// exception: others arrive as `Failed` with the exception's text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
pub enum PlatformError {
    /// The service failed.
    #[error("{reason}")]
    Failed {
        /// Why, in words.
        reason: String,
    },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for PlatformError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed { reason: e.reason }
    }
}

/// The platform's audio: it is told when a call needs audio and moves PCM through the
/// [`ForeignAudio`] handle it is given (Android Oboe/AAudio, iOS AVAudioEngine/AudioUnit).
///
/// `start_audio` comes when a call with [`AudioConfig::Foreign`] is placed or answered;
/// `stop_audio` when it ends. Between them the platform pushes captured PCM and pulls playout
/// PCM from its audio callbacks. The media pipeline is clocked by the pushed capture: push
/// 20 ms (or any size) regularly, silence included.
#[uniffi::export(foreign)]
pub trait AudioDeviceFactory: Send + Sync {
    /// Start the platform audio of call `call_id`, moving PCM through `audio`.
    fn start_audio(&self, call_id: u64, audio: Arc<ForeignAudio>) -> Result<(), PlatformError>;
    /// Stop the platform audio of call `call_id` (the call ended).
    fn stop_audio(&self, call_id: u64) -> Result<(), PlatformError>;
}

/// The platform's secret storage (Android Keystore, iOS Keychain), keyed by the application's
/// account id ([`crate::AccountConfig::account_id`]).
#[uniffi::export(foreign)]
pub trait SecretStore: Send + Sync {
    /// The password or HA1 stored for `account_id`, if any.
    fn get_secret(&self, account_id: String) -> Result<Option<StoredSecret>, PlatformError>;
    /// Stores (replaces) the secret of `account_id`.
    fn set_secret(&self, account_id: String, secret: StoredSecret) -> Result<(), PlatformError>;
    /// Forgets the secret of `account_id`.
    fn delete_secret(&self, account_id: String) -> Result<(), PlatformError>;
}

/// The platform's address book (Android ContactsContract, iOS CNContactStore).
#[uniffi::export(foreign)]
pub trait ContactsSource: Send + Sync {
    /// All contacts the user allowed the app to see.
    fn contacts(&self) -> Result<Vec<Contact>, PlatformError>;
}

/// The platform's push registration (FCM, PushKit).
#[uniffi::export(foreign)]
pub trait PushTokenProvider: Send + Sync {
    /// The current push token, if the platform has one.
    fn push_token(&self) -> Result<Option<PushToken>, PlatformError>;
}

/// The platform's audio routes (Android AudioManager communication devices, iOS
/// AVAudioSession outputs). The phone machine decides which route a call uses
/// (`handset_phone::screen::AudioRoutes` rules: wired headset > Bluetooth > earpiece, the
/// user's choice, speaker for video) and the bindings carry each decision out with
/// [`AudioRoutePlatform::select_route`]; the platform reports changes of the available set
/// with [`crate::HandsetPhone::audio_routes_changed`].
#[uniffi::export(foreign)]
pub trait AudioRoutePlatform: Send + Sync {
    /// The routes available now.
    fn available_routes(&self) -> Result<Vec<AudioRoute>, PlatformError>;
    /// Route call audio to `route`.
    fn select_route(&self, route: AudioRoute) -> Result<(), PlatformError>;
}

/// The platform services of one phone.
#[derive(Clone)]
pub(crate) struct Services {
    pub(crate) audio: Arc<dyn AudioDeviceFactory>,
    pub(crate) secrets: Arc<dyn SecretStore>,
    pub(crate) contacts: Arc<dyn ContactsSource>,
    pub(crate) push: Arc<dyn PushTokenProvider>,
}

/// Calls into a platform service: its error, or a panic, becomes [`HandsetError::Platform`].
pub(crate) fn call_foreign<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, PlatformError>,
) -> Result<T, HandsetError> {
    match guard(|| Ok(f())) {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(HandsetError::Platform(format!("{what}: {e}"))),
        Err(HandsetError::Internal(m)) => Err(HandsetError::Platform(format!("{what}: {m}"))),
        Err(other) => Err(other),
    }
}

/// The audio of one call, as a call places or answers it.
#[derive(Debug, Clone, PartialEq, Eq, uniffi::Enum)]
pub enum AudioConfig {
    /// QA and tests: the microphone plays `play` (a WAV file, any rate/channels; silence
    /// after its end, or when absent) and the speaker is recorded into `record` (48 kHz mono
    /// 16-bit WAV, finalized when the call ends). Paced by a 20 ms timer.
    Wav {
        /// WAV file played as the microphone.
        play: Option<String>,
        /// WAV file the received audio is written to.
        record: Option<String>,
    },
    /// The platform's audio through the [`AudioDeviceFactory`] given to the phone.
    Foreign,
    /// A silent microphone and no speaker (paced by a 20 ms timer).
    Silence,
}

/// A device for one call, plus the handle the platform was given (for `stop_audio`).
pub(crate) struct CallDevice {
    pub(crate) device: Box<dyn AudioDevice>,
    pub(crate) foreign: Option<Arc<ForeignAudio>>,
}

impl AudioConfig {
    /// Builds the device (WAV files are read here, so a missing file fails the call at once).
    pub(crate) fn device(&self) -> Result<CallDevice, HandsetError> {
        Ok(match self {
            AudioConfig::Wav { play, record } => CallDevice {
                device: Box::new(WavDevice::new(
                    play.as_ref().map(PathBuf::from),
                    record.as_ref().map(PathBuf::from),
                )?),
                foreign: None,
            },
            AudioConfig::Silence => CallDevice {
                device: Box::new(WavDevice::new(None, None)?),
                foreign: None,
            },
            AudioConfig::Foreign => {
                let device = ForeignDevice::new("platform");
                CallDevice {
                    device: Box::new(device.clone()),
                    foreign: Some(Arc::new(ForeignAudio { device })),
                }
            }
        })
    }
}

/// Playout counters of a [`ForeignAudio`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Record)]
pub struct PlayoutStats {
    /// Samples the pipeline produced.
    pub pushed_samples: u64,
    /// Samples of real audio the platform pulled.
    pub played_samples: u64,
    /// Pulls that found less audio than asked (silence was played).
    pub underruns: u64,
    /// Silence samples inserted by underruns.
    pub underrun_samples: u64,
    /// Samples discarded because the platform pulled too slowly.
    pub overflow_samples: u64,
    /// Samples waiting to be pulled.
    pub buffered_samples: u64,
}

/// The PCM handle of one call's platform audio: 48 kHz, mono, 16-bit little-endian samples.
///
/// Call [`push_capture`](Self::push_capture) from the recording callback with what the
/// microphone produced (any length; re-chunked into 20 ms frames) and
/// [`pull_playout`](Self::pull_playout) from the playback callback (silence when the network
/// is late). Both return at once and may be called from any thread.
#[derive(Debug, uniffi::Object)]
pub struct ForeignAudio {
    device: ForeignDevice,
}

#[uniffi::export]
impl ForeignAudio {
    /// Sample rate of the PCM: 48 000 Hz.
    pub fn sample_rate(&self) -> u32 {
        SAMPLE_RATE
    }

    /// Samples in one 20 ms frame: 960.
    pub fn frame_samples(&self) -> u32 {
        FRAME_SAMPLES as u32
    }

    /// Whether the media pipeline runs (the call is answered and not ended).
    pub fn is_started(&self) -> bool {
        crate::error::guard_or(false, || self.device.is_started())
    }

    /// Hands over captured audio: 16-bit little-endian mono samples at 48 kHz (an odd
    /// trailing byte is ignored).
    pub fn push_capture(&self, pcm: Vec<u8>) {
        crate::error::guard_or((), || {
            let samples: Vec<i16> = pcm
                .chunks_exact(2)
                .map(|b| i16::from_le_bytes([b[0], b[1]]))
                .collect();
            self.device.push_capture(&samples);
        })
    }

    /// Takes `samples` samples of audio to play (16-bit little-endian mono, 48 kHz); silence
    /// where the pipeline had nothing.
    pub fn pull_playout(&self, samples: u32) -> Vec<u8> {
        crate::error::guard_or(Vec::new(), || {
            let mut out = vec![0i16; samples.min(48_000) as usize];
            self.device.pull_playout(&mut out);
            out.iter().flat_map(|s| s.to_le_bytes()).collect()
        })
    }

    /// Playout counters since the media started.
    pub fn playout_stats(&self) -> PlayoutStats {
        crate::error::guard_or(
            PlayoutStats {
                pushed_samples: 0,
                played_samples: 0,
                underruns: 0,
                underrun_samples: 0,
                overflow_samples: 0,
                buffered_samples: 0,
            },
            || {
                let s = self.device.playout_stats();
                PlayoutStats {
                    pushed_samples: s.pushed_samples,
                    played_samples: s.played_samples,
                    underruns: s.underruns,
                    underrun_samples: s.underrun_samples,
                    overflow_samples: s.overflow_samples,
                    buffered_samples: s.buffered_samples as u64,
                }
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn foreign_audio_moves_little_endian_pcm() {
        let CallDevice {
            mut device,
            foreign,
        } = AudioConfig::Foreign.device().unwrap();
        let audio = foreign.unwrap();
        assert_eq!((audio.sample_rate(), audio.frame_samples()), (48_000, 960));
        assert!(!audio.is_started());
        let (tx, mut rx) = tokio::sync::mpsc::channel(4);
        let sink = device.start(tx).unwrap();
        assert!(audio.is_started());
        let pcm: Vec<u8> = (0..960i16).flat_map(|s| (s - 480).to_le_bytes()).collect();
        audio.push_capture(pcm[..1000].to_vec());
        audio.push_capture(pcm[1000..].to_vec());
        let frame = rx.try_recv().unwrap();
        assert_eq!(frame.samples[0], -480);
        assert_eq!(frame.samples[959], 479);
        sink.push(&[1234, -2]);
        assert_eq!(audio.pull_playout(3), vec![0xd2, 0x04, 0xfe, 0xff, 0, 0]);
        assert_eq!(audio.playout_stats().underruns, 1);
    }

    #[test]
    fn a_missing_wav_fails_before_the_call() {
        let config = AudioConfig::Wav {
            play: Some("/nonexistent/tone.wav".into()),
            record: None,
        };
        assert!(matches!(config.device(), Err(HandsetError::Audio(_))));
    }

    #[test]
    fn a_throwing_platform_call_is_an_error() {
        let r: Result<(), _> = call_foreign("contacts", || panic!("SecurityException"));
        assert_eq!(
            r,
            Err(HandsetError::Platform("contacts: SecurityException".into()))
        );
        let r: Result<(), _> = call_foreign("contacts", || {
            Err(PlatformError::from(
                uniffi::UnexpectedUniFFICallbackError::new("java.lang.SecurityException: denied"),
            ))
        });
        assert_eq!(
            r,
            Err(HandsetError::Platform(
                "contacts: java.lang.SecurityException: denied".into()
            ))
        );
    }
}
