//! DTMF as RFC 4733 telephone events (`telephone-event/8000`).
//!
//! * [`TelephoneEvent`]: the 4-byte payload (event, E bit, volume, duration).
//! * [`DtmfSender`]: turns a digit string into the packets to send, each with its send
//!   time offset, RTP timestamp and marker bit: per digit a start packet with the marker
//!   set, updates every `update_interval` while the tone lasts, then the end packet three
//!   times (RFC 4733 §2.5.1.4); all packets of one event carry the event's start timestamp.
//! * [`DtmfReceiver`]: reports each event once, identified by its RTP timestamp, whichever of
//!   its packets arrives first (so a lost start packet or retransmitted end packets change
//!   nothing).

use super::CodecError;
use std::collections::VecDeque;
use std::time::Duration;

/// Event code of the flash-hook event.
pub const EVENT_FLASH: u8 = 16;

/// Event code (0..=16) of a DTMF character: `0`–`9`, `*`, `#`, `A`–`D` (either case), and
/// `!` for flash. `None` for anything else.
pub fn event_for_digit(digit: char) -> Option<u8> {
    match digit {
        '0'..='9' => Some(digit as u8 - b'0'),
        '*' => Some(10),
        '#' => Some(11),
        'A'..='D' => Some(digit as u8 - b'A' + 12),
        'a'..='d' => Some(digit as u8 - b'a' + 12),
        '!' => Some(EVENT_FLASH),
        _ => None,
    }
}

/// The DTMF character of an event code (inverse of [`event_for_digit`]), `None` above 16.
pub fn digit_for_event(event: u8) -> Option<char> {
    match event {
        0..=9 => Some(char::from(b'0' + event)),
        10 => Some('*'),
        11 => Some('#'),
        12..=15 => Some(char::from(b'A' + event - 12)),
        EVENT_FLASH => Some('!'),
        _ => None,
    }
}

/// One RFC 4733 named-event block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TelephoneEvent {
    /// Event code (0–15 DTMF, 16 flash; up to 255 on the wire).
    pub event: u8,
    /// E bit: this is (a retransmission of) the final packet of the event.
    pub end: bool,
    /// Power level in −dBm0, 0..=63.
    pub volume: u8,
    /// Duration so far, in RTP timestamp units.
    pub duration: u16,
}

impl TelephoneEvent {
    /// Wire size of one event block.
    pub const LEN: usize = 4;

    /// Parses the first event block of a payload. Errors when shorter than 4 bytes. The
    /// reserved R bit is ignored, as RFC 4733 requires of receivers.
    pub fn parse(payload: &[u8]) -> Result<Self, CodecError> {
        let b: &[u8; 4] = payload
            .get(..Self::LEN)
            .and_then(|s| s.try_into().ok())
            .ok_or(CodecError::InvalidPayload(
                "telephone-event payload shorter than 4 bytes",
            ))?;
        Ok(Self {
            event: b[0],
            end: b[1] & 0x80 != 0,
            volume: b[1] & 0x3F,
            duration: u16::from_be_bytes([b[2], b[3]]),
        })
    }

    /// Serialises the event (volume is masked to 6 bits).
    pub fn to_bytes(&self) -> [u8; 4] {
        let d = self.duration.to_be_bytes();
        [
            self.event,
            (u8::from(self.end) << 7) | (self.volume & 0x3F),
            d[0],
            d[1],
        ]
    }

    /// The DTMF character for this event, if it is one.
    pub fn digit(&self) -> Option<char> {
        digit_for_event(self.event)
    }
}

/// One packet produced by [`DtmfSender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfPacket {
    /// When to send it, relative to the start of the digit string.
    pub send_at: Duration,
    /// RTP timestamp: the start of the event (the same for all its packets).
    pub timestamp: u32,
    /// RTP marker bit: set on the first packet of each event.
    pub marker: bool,
    /// The payload.
    pub event: TelephoneEvent,
}

/// Settings of a [`DtmfSender`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DtmfSenderConfig {
    /// RTP clock rate of the telephone-event format (normally 8000, or the audio codec's).
    pub clock_rate: u32,
    /// Time between packets of one event (the audio ptime, typically 20 ms; 50 ms is
    /// RFC 4733's suggestion).
    pub update_interval: Duration,
    /// How long each tone lasts.
    pub tone: Duration,
    /// Silence between tones.
    pub gap: Duration,
    /// Volume in −dBm0 (0..=63); 10 is customary.
    pub volume: u8,
}

impl DtmfSenderConfig {
    /// 100 ms tones with 100 ms gaps, volume 10, updates every `ptime`.
    pub fn new(clock_rate: u32, ptime: Duration) -> Self {
        Self {
            clock_rate,
            update_interval: ptime,
            tone: Duration::from_millis(100),
            gap: Duration::from_millis(100),
            volume: 10,
        }
    }
}

/// Plans the packet sequence for a digit string.
#[derive(Debug, Clone)]
pub struct DtmfSender {
    config: DtmfSenderConfig,
}

fn to_units(d: Duration, clock_rate: u32) -> u64 {
    (d.as_nanos() * u128::from(clock_rate) / 1_000_000_000) as u64
}

impl DtmfSender {
    /// A sender; errors for a zero clock rate or interval, a tone shorter than one
    /// interval, a volume above 63, or a tone longer than the 16-bit duration field holds.
    pub fn new(config: DtmfSenderConfig) -> Result<Self, CodecError> {
        if config.clock_rate == 0 || config.update_interval.is_zero() {
            return Err(CodecError::Unsupported(
                "DTMF clock rate and interval must be > 0",
            ));
        }
        if config.tone < config.update_interval {
            return Err(CodecError::Unsupported(
                "DTMF tone shorter than the update interval",
            ));
        }
        if config.volume > 63 {
            return Err(CodecError::Unsupported("DTMF volume must be 0..=63"));
        }
        if to_units(config.tone, config.clock_rate) > u64::from(u16::MAX) {
            return Err(CodecError::Unsupported(
                "DTMF tone too long for the duration field",
            ));
        }
        if to_units(config.update_interval, config.clock_rate) == 0 {
            return Err(CodecError::Unsupported(
                "DTMF interval shorter than one clock tick",
            ));
        }
        Ok(Self { config })
    }

    /// The packets for `digits`, in send order. `base_timestamp` is the RTP timestamp that
    /// corresponds to `send_at == 0` (the audio stream's current timestamp). Characters
    /// that are not DTMF (see [`event_for_digit`]) are an error.
    pub fn packets(
        &self,
        digits: &str,
        base_timestamp: u32,
    ) -> Result<Vec<DtmfPacket>, CodecError> {
        let c = &self.config;
        let interval = c.update_interval;
        let tone_units = to_units(c.tone, c.clock_rate) as u16;
        let mut packets = Vec::new();
        let mut start = Duration::ZERO;
        for digit in digits.chars() {
            let event =
                event_for_digit(digit).ok_or(CodecError::InvalidPayload("not a DTMF digit"))?;
            let timestamp = base_timestamp.wrapping_add(to_units(start, c.clock_rate) as u32);
            let mut elapsed = Duration::ZERO;
            let mut first = true;
            // Progress packets while the tone lasts.
            while elapsed < c.tone {
                let so_far = (elapsed + interval).min(c.tone);
                let duration = to_units(so_far, c.clock_rate) as u16;
                if so_far >= c.tone {
                    break;
                }
                packets.push(DtmfPacket {
                    send_at: start + elapsed,
                    timestamp,
                    marker: first,
                    event: TelephoneEvent {
                        event,
                        end: false,
                        volume: c.volume,
                        duration,
                    },
                });
                first = false;
                elapsed += interval;
            }
            // The end packet, three times.
            let end_at = start + elapsed;
            for i in 0..3u32 {
                packets.push(DtmfPacket {
                    send_at: end_at + interval * i,
                    timestamp,
                    marker: first && i == 0,
                    event: TelephoneEvent {
                        event,
                        end: true,
                        volume: c.volume,
                        duration: tone_units,
                    },
                });
            }
            let last_send = end_at + interval * 2;
            start = (start + c.tone + c.gap).max(last_send + interval);
        }
        Ok(packets)
    }
}

/// A digit reported by [`DtmfReceiver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceivedDigit {
    /// The DTMF character (`None` for a non-DTMF event code).
    pub digit: Option<char>,
    /// The event code.
    pub event: u8,
    /// RTP timestamp of the event's start.
    pub timestamp: u32,
    /// Whether the packet that revealed the event was already an end packet (start and
    /// updates were lost).
    pub ended: bool,
}

/// How many recent events the receiver remembers for de-duplication.
const REMEMBERED_EVENTS: usize = 32;

/// Reports each telephone event once.
///
/// An event is identified by its RTP timestamp (RFC 4733 §2.5.1.1: all packets of an event
/// share it). The first packet seen for a new timestamp reports the event, whether it is
/// the start, an update or an end packet; later packets (updates, the three end packets,
/// network duplicates) are ignored. The last 32 event timestamps are remembered, so
/// reordered packets of an earlier event are not reported twice either.
#[derive(Debug, Clone, Default)]
pub struct DtmfReceiver {
    seen: VecDeque<(u32, u8)>,
}

impl DtmfReceiver {
    /// An empty receiver.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one telephone-event RTP packet. Returns the digit when this packet is the
    /// first one seen of its event, `Ok(None)` for a repeat, an error for a malformed
    /// payload.
    pub fn receive(
        &mut self,
        timestamp: u32,
        payload: &[u8],
    ) -> Result<Option<ReceivedDigit>, CodecError> {
        let event = TelephoneEvent::parse(payload)?;
        if self
            .seen
            .iter()
            .any(|&(ts, ev)| ts == timestamp && ev == event.event)
        {
            return Ok(None);
        }
        if self.seen.len() == REMEMBERED_EVENTS {
            self.seen.pop_front();
        }
        self.seen.push_back((timestamp, event.event));
        Ok(Some(ReceivedDigit {
            digit: event.digit(),
            event: event.event,
            timestamp,
            ended: event.end,
        }))
    }

    /// Forgets remembered events (e.g. on an SSRC change).
    pub fn reset(&mut self) {
        self.seen.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::super::XorShift32;
    use super::*;

    #[test]
    fn payload_round_trip_and_known_bytes() {
        let e = TelephoneEvent {
            event: 11,
            end: true,
            volume: 10,
            duration: 800,
        };
        assert_eq!(e.to_bytes(), [11, 0x8A, 0x03, 0x20]);
        assert_eq!(TelephoneEvent::parse(&e.to_bytes()).unwrap(), e);
        assert_eq!(e.digit(), Some('#'));
        // R bit ignored, trailing blocks ignored.
        let p = TelephoneEvent::parse(&[5, 0x40 | 7, 0, 160, 1, 2, 3, 4]).unwrap();
        assert_eq!(
            p,
            TelephoneEvent {
                event: 5,
                end: false,
                volume: 7,
                duration: 160
            }
        );
        assert!(TelephoneEvent::parse(&[1, 2, 3]).is_err());
        for c in "0123456789*#ABCD!".chars() {
            assert_eq!(digit_for_event(event_for_digit(c).unwrap()), Some(c));
        }
        assert_eq!(event_for_digit('x'), None);
        assert_eq!(digit_for_event(17), None);
    }

    #[test]
    fn sender_sequence_shape() {
        let sender =
            DtmfSender::new(DtmfSenderConfig::new(8000, Duration::from_millis(20))).unwrap();
        let packets = sender.packets("1#", 1000).unwrap();
        let first: Vec<_> = packets.iter().filter(|p| p.timestamp == 1000).collect();
        // 100 ms tone, 20 ms updates: 4 progress packets + 3 end packets.
        assert_eq!(first.len(), 7);
        assert!(first[0].marker && first.iter().skip(1).all(|p| !p.marker));
        assert_eq!(
            first.iter().map(|p| p.event.duration).collect::<Vec<_>>(),
            vec![160, 320, 480, 640, 800, 800, 800]
        );
        assert_eq!(first.iter().filter(|p| p.event.end).count(), 3);
        assert_eq!(first[0].send_at, Duration::ZERO);
        assert_eq!(first[6].send_at, Duration::from_millis(120));
        let second: Vec<_> = packets.iter().filter(|p| p.timestamp != 1000).collect();
        assert_eq!(second[0].timestamp, 1000 + 1600);
        assert_eq!(second[0].send_at, Duration::from_millis(200));
        assert!(second[0].marker);
        assert!(packets.windows(2).all(|w| w[0].send_at <= w[1].send_at));
        assert!(sender.packets("12x", 0).is_err());
        // 50 ms updates.
        let mut config = DtmfSenderConfig::new(8000, Duration::from_millis(50));
        config.tone = Duration::from_millis(160);
        let packets = DtmfSender::new(config)
            .unwrap()
            .packets("5", u32::MAX - 10)
            .unwrap();
        assert_eq!(
            packets.iter().map(|p| p.event.duration).collect::<Vec<_>>(),
            vec![400, 800, 1200, 1280, 1280, 1280]
        );
        assert!(packets.iter().all(|p| p.timestamp == u32::MAX - 10));
        // Bad configurations.
        config.volume = 64;
        assert!(DtmfSender::new(config).is_err());
        let mut long = DtmfSenderConfig::new(48000, Duration::from_millis(20));
        long.tone = Duration::from_secs(2);
        assert!(DtmfSender::new(long).is_err());
        assert!(DtmfSender::new(DtmfSenderConfig::new(8000, Duration::ZERO)).is_err());
    }

    #[test]
    fn digits_survive_ten_percent_loss_exactly_once() {
        let sender =
            DtmfSender::new(DtmfSenderConfig::new(8000, Duration::from_millis(20))).unwrap();
        for seed in 1..=200u32 {
            let packets = sender.packets("123#*0", 77).unwrap();
            let mut rng = XorShift32::new(seed);
            let mut receiver = DtmfReceiver::new();
            let mut digits = String::new();
            let mut dropped = 0;
            for p in &packets {
                if rng.next_u32().is_multiple_of(10) {
                    dropped += 1;
                    continue;
                }
                let bytes = p.event.to_bytes();
                if let Some(d) = receiver.receive(p.timestamp, &bytes).unwrap() {
                    digits.push(d.digit.unwrap());
                }
                // Network duplicate of every packet.
                assert!(receiver.receive(p.timestamp, &bytes).unwrap().is_none());
            }
            assert_eq!(
                digits,
                "123#*0",
                "seed {seed}, {dropped} of {} dropped",
                packets.len()
            );
        }
    }

    #[test]
    fn lost_start_and_repeated_end_reported_once() {
        let mut receiver = DtmfReceiver::new();
        let end = TelephoneEvent {
            event: 7,
            end: true,
            volume: 10,
            duration: 800,
        }
        .to_bytes();
        let got = receiver.receive(5000, &end).unwrap().unwrap();
        assert_eq!(got.digit, Some('7'));
        assert!(got.ended);
        assert!(receiver.receive(5000, &end).unwrap().is_none());
        assert!(receiver.receive(5000, &end).unwrap().is_none());
        // Same digit again is a new event (new timestamp).
        assert!(receiver.receive(6600, &end).unwrap().is_some());
        assert!(receiver.receive(1, &[1]).is_err());
        receiver.reset();
        assert!(receiver.receive(6600, &end).unwrap().is_some());
    }

    #[test]
    fn receiver_garbage_does_not_panic() {
        let mut rng = XorShift32::new(3);
        let mut receiver = DtmfReceiver::new();
        for _ in 0..10_000 {
            let len = (rng.next_u32() % 9) as usize;
            let payload: Vec<u8> = (0..len).map(|_| rng.next_u32() as u8).collect();
            let _ = receiver.receive(rng.next_u32() % 64, &payload);
        }
    }
}
