//! Adaptive jitter buffer for audio frames.
//!
//! Sans-IO: the caller passes the arrival time of each packet to [`JitterBuffer::push`]
//! and calls [`JitterBuffer::pop`] once per frame period (the packet duration, normally
//! 20 ms) with the current monotonic time; both are plain [`Duration`]s since any fixed
//! origin.
//!
//! # Delay estimate
//! For every packet (late ones included) the *transit* `arrival − timestamp / clock_rate` is
//! recorded over a sliding window of [`JitterConfig::window`] packets. The fastest packet
//! in the window sets the reference; each packet's *deviation* is its transit minus that
//! minimum. The target delay is the [`JitterConfig::percentile`] (95th) of the deviations
//! plus [`JitterConfig::margin`], clamped to `min_delay..=max_delay` (20..=300 ms); until
//! 20 packets have been seen it is at least [`JitterConfig::initial_delay`].
//! A frame with timestamp `ts` is *due* at `ts / clock_rate + min_transit + target`.
//!
//! # Playout and the adaptation policy
//! * **Talkspurt start** (first packet, a marker bit, or a packet after silence): the buffer
//!   outputs [`Playout::Silence`] until the first frame is due, then plays frames one per
//!   `pop`. This is where the delay adapts freely — silence is simply made longer or
//!   shorter, which nobody hears.
//! * **During a talkspurt** the delay changes only by time-stretching decisions, and rarely:
//!   - *grow*: when the expected frame is missing and the current delay is below the
//!     target, the buffer outputs [`Playout::Insert`] (conceal one extra
//!     frame, consume nothing) instead of declaring the frame lost, so a merely late packet
//!     gets one more period to arrive. At most one insert every other `pop`.
//!   - *shrink*: when the current delay has been more than one frame above the target for
//!     10 consecutive pops, at most once per second, and the frame after the expected one
//!     is also buffered, the expected frame is dropped (counted in
//!     [`JitterStats::dropped_frames`] and `packets_discarded`) and the next one is played.
//! * **Loss**: a missing frame whose successor is buffered, or one of the first
//!   [`JitterConfig::silence_after_frames`] missing frames when nothing is buffered, gives
//!   [`Playout::Lost`]; the decoder conceals it or uses FEC from [`JitterBuffer::peek_next`].
//!   After that many missing frames with an empty buffer, or when the next buffered frame
//!   starts a new talkspurt (marker bit) or lies further ahead than that, the talkspurt is
//!   over ([`Playout::Silence`], DTX) and the next one is scheduled afresh.
//! * **Reordering** is absorbed by the buffer (ordered by timestamp); **duplicates** (same
//!   extended sequence number or timestamp) are dropped; **late** packets (their slot was
//!   already played or concealed) are dropped and counted.
//! * **Reset**: a jump of more than [`JitterConfig::reset_threshold`] in transit (timestamp
//!   jump), a forward jump of more than 3000 in sequence number, or 10 late packets in a row
//!   reset the buffer (also [`JitterBuffer::reset`], to be called on an SSRC change).
//!   Cumulative statistics survive a reset.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

/// Settings of a [`JitterBuffer`].
#[derive(Debug, Clone, PartialEq)]
pub struct JitterConfig {
    /// RTP clock rate of the stream (8000 for G.711, 48000 for Opus).
    pub clock_rate: u32,
    /// Duration of one frame (packet) and the period at which `pop` is called.
    pub frame_duration: Duration,
    /// Lowest target delay.
    pub min_delay: Duration,
    /// Highest target delay.
    pub max_delay: Duration,
    /// Target delay used until 20 packets have been measured.
    pub initial_delay: Duration,
    /// Quantile of the delay deviations that must arrive in time (0.5..=1.0).
    pub percentile: f64,
    /// Added on top of the quantile.
    pub margin: Duration,
    /// Number of recent packets the estimate looks at.
    pub window: usize,
    /// Most frames held; beyond it the oldest is discarded.
    pub max_packets: usize,
    /// Missing frames with nothing buffered before the talkspurt is taken to have ended.
    pub silence_after_frames: u32,
    /// Transit jump treated as a new stream.
    pub reset_threshold: Duration,
}

impl JitterConfig {
    /// Defaults for a stream at `clock_rate` with `frame_duration` packets: 20..=300 ms,
    /// initially 60 ms, 95th percentile + 5 ms over the last 250 packets.
    pub fn new(clock_rate: u32, frame_duration: Duration) -> Self {
        Self {
            clock_rate,
            frame_duration,
            min_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(300),
            initial_delay: Duration::from_millis(60),
            percentile: 0.95,
            margin: Duration::from_millis(5),
            window: 250,
            max_packets: 500,
            silence_after_frames: 3,
            reset_threshold: Duration::from_secs(3),
        }
    }
}

/// What to play for one frame period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Playout {
    /// Decode and play this payload (RTP timestamp given).
    Frame(Vec<u8>, u32),
    /// The frame with this timestamp is missing: conceal it, or recover it with FEC from
    /// [`JitterBuffer::peek_next`] when that holds the following frame.
    Lost {
        /// RTP timestamp of the missing frame.
        timestamp: u32,
    },
    /// Nothing to play: not started yet, or between talkspurts (DTX). Play silence or
    /// comfort noise.
    Silence,
    /// Time-stretch to grow the delay: play one concealed frame; nothing was consumed.
    Insert,
}

/// What happened to a pushed packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// Stored for playout.
    Buffered,
    /// Already received (same sequence number or timestamp): dropped.
    Duplicate,
    /// Its playout slot has passed: dropped and counted.
    Late,
    /// The packet revealed a new stream (timestamp/sequence jump): the buffer was reset and
    /// the packet stored.
    Reset,
}

/// Counters and current values of a [`JitterBuffer`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    /// Current target delay.
    pub target_delay: Duration,
    /// Delay of the frame being played relative to the fastest recent packet.
    pub current_delay: Duration,
    /// WebRTC `jitterBufferDelay`: Σ over emitted samples of (emit time − arrival), seconds.
    pub jitter_buffer_delay: f64,
    /// WebRTC `jitterBufferEmittedCount`: samples emitted as [`Playout::Frame`].
    pub jitter_buffer_emitted_count: u64,
    /// Frames emitted as [`Playout::Frame`].
    pub frames_emitted: u64,
    /// Packets pushed.
    pub packets_received: u64,
    /// Packets dropped: late + duplicate + overflow + dropped to shrink.
    pub packets_discarded: u64,
    /// Packets that arrived after their slot.
    pub late_packets: u64,
    /// Duplicate packets.
    pub duplicate_packets: u64,
    /// Packets dropped because the buffer was full.
    pub overflow_packets: u64,
    /// Frames the decoder had to conceal ([`Playout::Lost`] + [`Playout::Insert`]).
    pub concealed_frames: u64,
    /// Samples in those frames.
    pub concealed_samples: u64,
    /// Of the concealed frames, those inserted to grow the delay.
    pub inserted_frames: u64,
    /// Frames dropped to shrink the delay.
    pub dropped_frames: u64,
    /// Times the buffer was reset.
    pub resets: u64,
    /// Frames currently buffered.
    pub buffered_frames: usize,
}

impl JitterStats {
    /// Average time an emitted sample spent in the buffer (`jitterBufferDelay /
    /// jitterBufferEmittedCount`), in seconds; 0 before anything was emitted.
    pub fn average_delay(&self) -> f64 {
        if self.jitter_buffer_emitted_count == 0 {
            0.0
        } else {
            self.jitter_buffer_delay / self.jitter_buffer_emitted_count as f64
        }
    }

    /// Concealed frames / (played + concealed frames); 0 before any output.
    pub fn concealment_ratio(&self) -> f64 {
        let total = self.frames_emitted + self.concealed_frames;
        if total == 0 {
            0.0
        } else {
            self.concealed_frames as f64 / total as f64
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    payload: Vec<u8>,
    arrival: f64,
    marker: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Idle,
    Playing { next: i64 },
}

/// Seconds to a `Duration`, saturating (negative or NaN → 0).
fn secs(x: f64) -> Duration {
    if x.is_finite() && x > 0.0 {
        Duration::try_from_secs_f64(x).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

const MAX_SEQ_JUMP: u64 = 3000;
const LATE_RESET: u32 = 10;
const SEEN_WINDOW: u64 = 4096;
const WARMUP_PACKETS: usize = 20;
const SHRINK_HOLD: u32 = 10;
const INSERT_SPACING: u32 = 2;

/// An adaptive jitter buffer (see the module docs for the policy).
#[derive(Debug, Clone)]
pub struct JitterBuffer {
    config: JitterConfig,
    clock: f64,
    frame_secs: f64,
    frames: BTreeMap<i64, Entry>,
    state: State,
    /// Highest extended timestamp seen and its wire value.
    ts_ref: Option<(u32, i64)>,
    highest_seq: Option<u64>,
    seen: BTreeSet<u64>,
    /// Samples per frame (learned from consecutive packets).
    frame_ts: i64,
    frame_ts_candidate: i64,
    last_in_order: Option<(u64, i64)>,
    last_played: Option<i64>,
    transits: VecDeque<f64>,
    min_transit: f64,
    target: f64,
    current: f64,
    consecutive_missing: u32,
    consecutive_late: u32,
    pops_since_insert: u32,
    pops_since_drop: u32,
    excess_pops: u32,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer with `config`. A zero clock rate or frame duration is replaced by
    /// 8000 Hz / 20 ms so that the buffer never divides by zero.
    pub fn new(mut config: JitterConfig) -> Self {
        if config.clock_rate == 0 {
            config.clock_rate = 8000;
        }
        if config.frame_duration.is_zero() {
            config.frame_duration = Duration::from_millis(20);
        }
        config.window = config.window.max(1);
        config.max_packets = config.max_packets.max(2);
        if config.max_delay < config.min_delay {
            config.max_delay = config.min_delay;
        }
        let clock = f64::from(config.clock_rate);
        let frame_secs = config.frame_duration.as_secs_f64();
        let frame_ts = ((frame_secs * clock).round() as i64).max(1);
        let initial = config.initial_delay.as_secs_f64();
        let mut this = Self {
            clock,
            frame_secs,
            frames: BTreeMap::new(),
            state: State::Idle,
            ts_ref: None,
            highest_seq: None,
            seen: BTreeSet::new(),
            frame_ts,
            frame_ts_candidate: 0,
            last_in_order: None,
            last_played: None,
            transits: VecDeque::new(),
            min_transit: 0.0,
            target: initial,
            current: 0.0,
            consecutive_missing: 0,
            consecutive_late: 0,
            pops_since_insert: 0,
            pops_since_drop: 0,
            excess_pops: 0,
            stats: JitterStats::default(),
            config,
        };
        this.target = this.clamp_target(initial);
        this
    }

    /// The configuration in use.
    pub fn config(&self) -> &JitterConfig {
        &self.config
    }

    /// Samples per frame currently assumed (learned from the stream).
    pub fn frame_samples(&self) -> u32 {
        self.frame_ts.clamp(1, i64::from(u32::MAX)) as u32
    }

    /// Current statistics.
    pub fn stats(&self) -> JitterStats {
        let mut s = self.stats.clone();
        s.target_delay = secs(self.target);
        s.current_delay = secs(self.current);
        s.buffered_frames = self.frames.len();
        s
    }

    /// Current target delay.
    pub fn target_delay(&self) -> Duration {
        secs(self.target)
    }

    /// Forgets the stream (buffered frames, timing estimate, sequence state); call on an
    /// SSRC change. Cumulative statistics are kept.
    pub fn reset(&mut self) {
        self.frames.clear();
        self.state = State::Idle;
        self.ts_ref = None;
        self.highest_seq = None;
        self.seen.clear();
        self.frame_ts_candidate = 0;
        self.last_in_order = None;
        self.last_played = None;
        self.transits.clear();
        self.min_transit = 0.0;
        self.target = self.clamp_target(self.config.initial_delay.as_secs_f64());
        self.consecutive_missing = 0;
        self.consecutive_late = 0;
        self.excess_pops = 0;
        self.stats.resets += 1;
    }

    fn clamp_target(&self, t: f64) -> f64 {
        t.clamp(
            self.config.min_delay.as_secs_f64(),
            self.config.max_delay.as_secs_f64(),
        )
    }

    fn unwrap_ts(&self, ts: u32) -> i64 {
        match self.ts_ref {
            None => i64::from(ts),
            Some((wire, ext)) => ext + i64::from(ts.wrapping_sub(wire) as i32),
        }
    }

    /// Adds a received packet. `arrival` is the monotonic receive time, `seq` the extended
    /// (unwrapped) RTP sequence number, `timestamp` the RTP timestamp, `marker` the RTP
    /// marker bit (start of a talkspurt for audio).
    pub fn push(
        &mut self,
        arrival: Duration,
        seq: u64,
        timestamp: u32,
        payload: Vec<u8>,
        marker: bool,
    ) -> PushOutcome {
        self.stats.packets_received += 1;
        let arrival = arrival.as_secs_f64();
        let mut outcome = PushOutcome::Buffered;

        if self.seen.contains(&seq) {
            self.stats.duplicate_packets += 1;
            self.stats.packets_discarded += 1;
            return PushOutcome::Duplicate;
        }
        if self
            .highest_seq
            .is_some_and(|high| seq > high.saturating_add(MAX_SEQ_JUMP))
        {
            self.reset();
            outcome = PushOutcome::Reset;
        }
        let mut ext = self.unwrap_ts(timestamp);
        let mut transit = arrival - ext as f64 / self.clock;
        if !self.transits.is_empty()
            && (transit - self.min_transit).abs() > self.config.reset_threshold.as_secs_f64()
        {
            self.reset();
            outcome = PushOutcome::Reset;
            ext = self.unwrap_ts(timestamp);
            transit = arrival - ext as f64 / self.clock;
        }

        // Remember the sequence number.
        self.seen.insert(seq);
        let high = self.highest_seq.map_or(seq, |h| h.max(seq));
        self.highest_seq = Some(high);
        while let Some(&oldest) = self.seen.first() {
            if oldest.saturating_add(SEEN_WINDOW) < high {
                self.seen.pop_first();
            } else {
                break;
            }
        }
        if self.ts_ref.is_none_or(|(_, e)| ext > e) {
            self.ts_ref = Some((timestamp, ext));
        }
        self.learn_frame_size(seq, ext, marker);
        self.record_transit(transit);

        // Too late?
        let late = match self.state {
            State::Playing { next } => ext < next - self.frame_ts / 2,
            State::Idle => self.last_played.is_some_and(|p| ext <= p),
        };
        if late {
            self.stats.late_packets += 1;
            self.stats.packets_discarded += 1;
            self.consecutive_late += 1;
            if self.consecutive_late < LATE_RESET {
                return PushOutcome::Late;
            }
            // The stream moved backwards: start over with this packet.
            self.reset();
            self.seen.insert(seq);
            self.highest_seq = Some(seq);
            ext = self.unwrap_ts(timestamp);
            self.ts_ref = Some((timestamp, ext));
            self.record_transit(arrival - ext as f64 / self.clock);
            outcome = PushOutcome::Reset;
        } else {
            self.consecutive_late = 0;
        }

        if self.frames.contains_key(&ext) {
            self.stats.duplicate_packets += 1;
            self.stats.packets_discarded += 1;
            return PushOutcome::Duplicate;
        }
        self.frames.insert(
            ext,
            Entry {
                payload,
                arrival,
                marker,
            },
        );
        while self.frames.len() > self.config.max_packets {
            self.frames.pop_first();
            self.stats.overflow_packets += 1;
            self.stats.packets_discarded += 1;
        }
        outcome
    }

    fn learn_frame_size(&mut self, seq: u64, ext: i64, marker: bool) {
        let consecutive = self
            .last_in_order
            .filter(|&(last_seq, _)| last_seq.checked_add(1) == Some(seq) && !marker);
        if let Some((_, last_ext)) = consecutive {
            let delta = ext - last_ext;
            // Between 2.5 ms and 120 ms, seen twice in a row.
            let lo = (self.clock * 0.0025) as i64;
            let hi = (self.clock * 0.12) as i64;
            if (lo..=hi).contains(&delta) {
                if delta == self.frame_ts_candidate {
                    self.frame_ts = delta;
                }
                self.frame_ts_candidate = delta;
            }
        }
        if self.last_in_order.is_none_or(|(s, _)| seq > s) {
            self.last_in_order = Some((seq, ext));
        }
    }

    fn record_transit(&mut self, transit: f64) {
        self.transits.push_back(transit);
        while self.transits.len() > self.config.window {
            self.transits.pop_front();
        }
        self.min_transit = self.transits.iter().copied().fold(f64::INFINITY, f64::min);
        let mut deviations: Vec<f64> = self.transits.iter().map(|t| t - self.min_transit).collect();
        deviations.sort_by(f64::total_cmp);
        let q = self.config.percentile.clamp(0.5, 1.0);
        let index = ((q * deviations.len() as f64).ceil() as usize).clamp(1, deviations.len()) - 1;
        let mut target = deviations[index] + self.config.margin.as_secs_f64();
        if self.transits.len() < WARMUP_PACKETS {
            target = target.max(self.config.initial_delay.as_secs_f64());
        }
        self.target = self.clamp_target(target);
    }

    /// Near-`next` lookup: the buffered frame playing in `next`'s slot (within half a frame).
    fn slot(&self, next: i64) -> Option<i64> {
        let half = self.frame_ts / 2;
        self.frames
            .range(next - half..=next + half)
            .next()
            .map(|(&k, _)| k)
    }

    /// The frame the next `pop` would play, if it is already buffered: after a
    /// [`Playout::Lost`] this is the packet whose in-band FEC can recover the lost frame.
    pub fn peek_next(&self) -> Option<(&[u8], u32)> {
        let State::Playing { next } = self.state else {
            return None;
        };
        let key = self.slot(next)?;
        self.frames
            .get(&key)
            .map(|e| (e.payload.as_slice(), key as u32))
    }

    /// What to play now; call once per frame period with the current monotonic time.
    pub fn pop(&mut self, now: Duration) -> Playout {
        let now = now.as_secs_f64();
        self.pops_since_insert = self.pops_since_insert.saturating_add(1);
        self.pops_since_drop = self.pops_since_drop.saturating_add(1);
        if self.state == State::Idle && !self.start_if_due(now) {
            return Playout::Silence;
        }
        let State::Playing { mut next } = self.state else {
            return Playout::Silence;
        };
        // Anything left behind the playout point is late.
        let half = self.frame_ts / 2;
        while let Some((&k, _)) = self.frames.first_key_value() {
            if k >= next - half {
                break;
            }
            self.frames.pop_first();
            self.stats.late_packets += 1;
            self.stats.packets_discarded += 1;
        }

        self.current = now - (next as f64 / self.clock + self.min_transit);
        let frame = self.frame_secs;
        if self.current > self.target + frame {
            self.excess_pops = self.excess_pops.saturating_add(1);
        } else {
            self.excess_pops = 0;
        }

        if let Some(mut key) = self.slot(next) {
            // Shrink: drop this frame if the following one is here too.
            let may_shrink =
                self.excess_pops >= SHRINK_HOLD && self.pops_since_drop as f64 * frame >= 1.0;
            let following = if may_shrink {
                self.slot(key + self.frame_ts)
            } else {
                None
            };
            if let Some(following) = following {
                self.frames.remove(&key);
                self.stats.dropped_frames += 1;
                self.stats.packets_discarded += 1;
                self.pops_since_drop = 0;
                self.excess_pops = 0;
                key = following;
            }
            let Some(entry) = self.frames.remove(&key) else {
                return Playout::Silence;
            };
            next = key + self.frame_ts;
            self.state = State::Playing { next };
            self.last_played = Some(key);
            self.consecutive_missing = 0;
            let samples = self.frame_ts.max(0) as u64;
            self.stats.frames_emitted += 1;
            self.stats.jitter_buffer_emitted_count += samples;
            self.stats.jitter_buffer_delay += (now - entry.arrival).max(0.0) * samples as f64;
            return Playout::Frame(entry.payload, key as u32);
        }

        // The expected frame is missing.
        let following = self.frames.first_key_value().map(|(&k, e)| (k, e.marker));
        let gap_limit = i64::from(self.config.silence_after_frames) * self.frame_ts;
        let talkspurt_over = match following {
            Some((k, marker)) => marker || (k - next > gap_limit && !self.is_due(k, now + frame)),
            None => self.consecutive_missing >= self.config.silence_after_frames,
        };
        if talkspurt_over {
            self.state = State::Idle;
            self.consecutive_missing = 0;
            return if self.start_if_due(now) {
                self.pop_started(now)
            } else {
                Playout::Silence
            };
        }
        self.consecutive_missing += 1;
        self.stats.concealed_frames += 1;
        self.stats.concealed_samples += self.frame_ts.max(0) as u64;
        if self.current < self.target && self.pops_since_insert >= INSERT_SPACING {
            self.pops_since_insert = 0;
            self.stats.inserted_frames += 1;
            return Playout::Insert;
        }
        self.last_played = Some(next);
        self.state = State::Playing {
            next: next + self.frame_ts,
        };
        Playout::Lost {
            timestamp: next as u32,
        }
    }

    /// Playout right after a new talkspurt was started inside `pop`.
    fn pop_started(&mut self, now: f64) -> Playout {
        let State::Playing { next } = self.state else {
            return Playout::Silence;
        };
        let Some(key) = self.slot(next) else {
            return Playout::Silence;
        };
        let Some(entry) = self.frames.remove(&key) else {
            return Playout::Silence;
        };
        self.state = State::Playing {
            next: key + self.frame_ts,
        };
        self.last_played = Some(key);
        self.current = now - (key as f64 / self.clock + self.min_transit);
        let samples = self.frame_ts.max(0) as u64;
        self.stats.frames_emitted += 1;
        self.stats.jitter_buffer_emitted_count += samples;
        self.stats.jitter_buffer_delay += (now - entry.arrival).max(0.0) * samples as f64;
        Playout::Frame(entry.payload, key as u32)
    }

    /// Whether the frame with extended timestamp `ts` is due for playout at `now`.
    fn is_due(&self, ts: i64, now: f64) -> bool {
        now + 1e-9 >= ts as f64 / self.clock + self.min_transit + self.target
    }

    /// In `Idle`: starts a talkspurt when the earliest buffered frame is due.
    fn start_if_due(&mut self, now: f64) -> bool {
        let Some((&first, _)) = self.frames.first_key_value() else {
            return false;
        };
        if !self.is_due(first, now) {
            return false;
        }
        self.state = State::Playing { next: first };
        self.excess_pops = 0;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAME: Duration = Duration::from_millis(20);

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    fn buffer() -> JitterBuffer {
        JitterBuffer::new(JitterConfig::new(8000, FRAME))
    }

    /// Tiny xorshift for reproducible simulations.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
        fn unit(&mut self) -> f64 {
            (self.next() >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    struct Outcome {
        stats: JitterStats,
        frames: Vec<u32>,
        lost: u64,
        inserted: u64,
        network_lost: u64,
    }

    /// Sends `count` 20 ms frames over a network with `loss` probability and a delay of
    /// 30 ms plus a uniform random extra in `[0, jitter_ms)`, pops every 20 ms (phase
    /// 7 ms), and returns what came out.
    fn simulate(seed: u64, count: u64, loss: f64, jitter_ms: f64) -> Outcome {
        let mut rng = Rng(seed);
        let mut packets: Vec<(Duration, u64)> = Vec::new();
        let mut network_lost = 0;
        for seq in 0..count {
            if rng.unit() < loss {
                network_lost += 1;
                continue;
            }
            let delay = 30.0 + jitter_ms * rng.unit();
            let arrival = Duration::from_secs_f64((seq as f64 * 20.0 + delay) / 1000.0);
            packets.push((arrival, seq));
        }
        packets.sort();
        let mut jb = buffer();
        let mut next_packet = 0;
        let mut out = Outcome {
            stats: JitterStats::default(),
            frames: Vec::new(),
            lost: 0,
            inserted: 0,
            network_lost,
        };
        let end = count * 20 + 1000;
        let mut t = 7;
        while t < end {
            let now = ms(t);
            while next_packet < packets.len() && packets[next_packet].0 <= now {
                let (arrival, seq) = packets[next_packet];
                let ts = 1000u32.wrapping_add((seq * 160) as u32);
                jb.push(arrival, seq + 70_000, ts, vec![seq as u8], seq == 0);
                next_packet += 1;
            }
            match jb.pop(now) {
                Playout::Frame(_, ts) => out.frames.push(ts),
                Playout::Lost { .. } => out.lost += 1,
                Playout::Insert => out.inserted += 1,
                Playout::Silence => {}
            }
            t += 20;
        }
        out.stats = jb.stats();
        out
    }

    #[test]
    #[allow(clippy::print_stdout)] // reports measured numbers
    fn five_percent_loss_and_40ms_jitter() {
        // "40 ms jitter" read two ways: delay spread over 40 ms, and an RFC 3550 jitter of
        // 40 ms (uniform spread of 120 ms has E|D| = 40 ms).
        for (label, spread) in [("40 ms spread", 40.0), ("RFC 3550 jitter 40 ms", 120.0)] {
            for seed in [0x5EED_1234, 1, 2, 3, 4] {
                let o = simulate(seed, 3000, 0.05, spread);
                let s = &o.stats;
                let ratio = s.concealment_ratio();
                let delay_ms = s.average_delay() * 1000.0;
                println!(
                    "jitter buffer, 5% loss, {label}, seed {seed:#x}: network lost {} of 3000; \
                     concealment ratio {:.2}% ({} concealed: {} lost, {} inserted; {} late, \
                     {} dropped to shrink), average added delay {delay_ms:.1} ms, target {:.1} ms",
                    o.network_lost,
                    ratio * 100.0,
                    s.concealed_frames,
                    o.lost,
                    o.inserted,
                    s.late_packets,
                    s.dropped_frames,
                    s.target_delay.as_secs_f64() * 1000.0,
                );
                assert!(ratio < 0.08, "{label}: concealment ratio {ratio}");
                assert!(delay_ms < 150.0, "{label}: delay {delay_ms}");
                // Late packets stay a small fraction of the concealment.
                assert!(s.late_packets < 30, "{label}: {} late", s.late_packets);
                // Played in order, never twice.
                assert!(
                    o.frames
                        .windows(2)
                        .all(|w| w[1].wrapping_sub(w[0]) as i32 > 0)
                );
                assert_eq!(s.jitter_buffer_emitted_count, s.frames_emitted * 160);
            }
        }
    }

    #[test]
    fn clean_network_adds_little_delay() {
        let o = simulate(42, 1000, 0.0, 0.0);
        // Only the end of the stream is concealed (3 frames) before the buffer decides the
        // talkspurt is over: it cannot tell the end of a stream from a loss.
        assert_eq!(o.stats.concealed_frames, 3);
        // The initial 60 ms shrink towards the 25 ms target by dropping a frame a second.
        assert_eq!(o.frames.len() as u64 + o.stats.dropped_frames, 1000);
        assert!(o.stats.dropped_frames >= 1);
        assert!(
            o.stats.average_delay() < 0.045,
            "{}",
            o.stats.average_delay()
        );
        assert!(o.stats.target_delay <= ms(25));
    }

    #[test]
    fn reordered_packets_play_in_order() {
        let mut jb = buffer();
        // 1, 3, 2 arrive; 0 is the talkspurt start.
        jb.push(ms(0), 0, 0, b"a".to_vec(), true);
        jb.push(ms(20), 1, 160, b"b".to_vec(), false);
        jb.push(ms(40), 3, 480, b"d".to_vec(), false);
        jb.push(ms(45), 2, 320, b"c".to_vec(), false);
        let mut played = Vec::new();
        let mut t = 60;
        while played.len() < 4 && t < 1000 {
            if let Playout::Frame(p, _) = jb.pop(ms(t)) {
                played.push(p[0]);
            }
            t += 20;
        }
        assert_eq!(played, b"abcd");
        assert_eq!(jb.stats().concealed_frames, 0);
    }

    #[test]
    fn duplicates_are_dropped() {
        let mut jb = buffer();
        assert_eq!(jb.push(ms(0), 10, 0, vec![1], true), PushOutcome::Buffered);
        assert_eq!(jb.push(ms(1), 10, 0, vec![1], true), PushOutcome::Duplicate);
        // Same timestamp, different sequence number.
        assert_eq!(
            jb.push(ms(2), 11, 0, vec![1], false),
            PushOutcome::Duplicate
        );
        assert_eq!(jb.stats().duplicate_packets, 2);
        assert_eq!(jb.stats().packets_discarded, 2);
        // After it was played, a duplicate is still a duplicate, not a late packet.
        let mut t = 0;
        while !matches!(jb.pop(ms(t)), Playout::Frame(..)) {
            t += 20;
        }
        assert_eq!(
            jb.push(ms(t + 1), 10, 0, vec![1], true),
            PushOutcome::Duplicate
        );
        assert_eq!(jb.stats().late_packets, 0);
    }

    #[test]
    fn late_packets_are_dropped_and_counted() {
        let mut jb = buffer();
        let mut lost_ts = None;
        let mut t = 0;
        for seq in 0..40u64 {
            let ts = (seq * 160) as u32;
            if seq != 20 {
                jb.push(ms(seq * 20), seq, ts, vec![seq as u8], seq == 0);
            }
            if let Playout::Lost { timestamp } = jb.pop(ms(t)) {
                lost_ts.get_or_insert(timestamp);
            }
            t += 20;
        }
        assert_eq!(lost_ts, Some(3200));
        // Packet 20 finally shows up, 400 ms late.
        assert_eq!(
            jb.push(ms(800), 20, 3200, vec![20], false),
            PushOutcome::Late
        );
        let s = jb.stats();
        assert_eq!(s.late_packets, 1);
        assert_eq!(s.packets_discarded, 1);
        assert_eq!(s.concealed_frames, 1);
    }

    #[test]
    fn lost_frame_exposes_the_next_for_fec() {
        let mut jb = buffer();
        for seq in [0u64, 1, 3, 4, 5] {
            jb.push(
                ms(seq * 20),
                seq,
                (seq * 160) as u32,
                vec![seq as u8],
                seq == 0,
            );
        }
        let mut t = 100;
        loop {
            match jb.pop(ms(t)) {
                Playout::Lost { timestamp } => {
                    assert_eq!(timestamp, 320);
                    let (payload, ts) = jb.peek_next().unwrap();
                    assert_eq!((payload, ts), (&[3u8][..], 480));
                    break;
                }
                Playout::Frame(..) | Playout::Silence => {}
                Playout::Insert => panic!("no insert expected"),
            }
            t += 20;
            assert!(t < 1000);
        }
        assert!(matches!(jb.pop(ms(t + 20)), Playout::Frame(p, 480) if p == [3]));
    }

    #[test]
    fn talkspurts_and_dtx_gaps() {
        let mut jb = buffer();
        let mut log = Vec::new();
        let mut t = 0;
        // Talkspurt 1: 10 frames; 1 s of DTX; talkspurt 2 (marker) of 10 frames.
        let mut send = Vec::new();
        for i in 0..10u64 {
            send.push((ms(i * 20 + 5), i, (i * 160) as u32, i == 0));
        }
        for i in 0..10u64 {
            let k = 60 + i; // 1.2 s later in media time
            send.push((ms(k * 20 + 5), 10 + i, (k * 160) as u32, i == 0));
        }
        let mut it = send.into_iter().peekable();
        while t < 2000 {
            while let Some(&(arrival, seq, ts, marker)) = it.peek() {
                if arrival > ms(t) {
                    break;
                }
                jb.push(arrival, seq, ts, vec![seq as u8], marker);
                it.next();
            }
            log.push(match jb.pop(ms(t)) {
                Playout::Frame(..) => 'F',
                Playout::Lost { .. } => 'L',
                Playout::Silence => '.',
                Playout::Insert => 'I',
            });
            t += 20;
        }
        let log: String = log.into_iter().collect();
        // Each talkspurt plays whole; its end is concealed for 3 frames (DTX is not known
        // to be DTX until it lasts), then silence until the next talkspurt is due.
        assert!(log.contains(".FFFFFFFFFFLLL."), "{log}");
        assert_eq!(log.matches(".FFFFFFFFFFLLL.").count(), 2, "{log}");
        assert_eq!(log.matches('F').count(), 20, "{log}");
        assert!(!log.contains('I'), "{log}");
        // The second talkspurt starts 1.2 s after the first, as sent.
        let first = log.find('F').unwrap();
        let second = log.rfind(".F").unwrap() + 1;
        assert_eq!(second - first, 60, "{log}");
    }

    #[test]
    fn timestamp_jump_and_ssrc_change_reset() {
        let mut jb = buffer();
        for seq in 0..10u64 {
            jb.push(ms(seq * 20), seq, (seq * 160) as u32, vec![0], seq == 0);
            jb.pop(ms(seq * 20));
        }
        // The sender's timestamp leaps 1 hour forward.
        let leap = 8000u32 * 3600;
        assert_eq!(
            jb.push(ms(200), 10, leap, vec![1], false),
            PushOutcome::Reset
        );
        assert_eq!(jb.stats().resets, 1);
        let mut t = 200;
        let mut played = false;
        for seq in 11..20u64 {
            t += 20;
            jb.push(ms(t), seq, leap + ((seq - 10) * 160) as u32, vec![1], false);
            played |= matches!(jb.pop(ms(t)), Playout::Frame(p, _) if p == [1]);
        }
        assert!(played);
        // The timestamp steps 500 ms back: late packets in a row cause a reset too.
        let back = leap - 4000;
        let mut outcomes = Vec::new();
        for seq in 20..40u64 {
            t += 20;
            outcomes.push(jb.push(ms(t), seq, back + ((seq - 20) * 160) as u32, vec![2], false));
            jb.pop(ms(t));
        }
        assert!(outcomes.contains(&PushOutcome::Reset), "{outcomes:?}");
        assert_eq!(jb.stats().resets, 2);
        // A huge sequence jump (new stream) resets.
        assert_eq!(
            jb.push(ms(t), 1_000_000, back, vec![3], true),
            PushOutcome::Reset
        );
        // Explicit reset (SSRC change).
        jb.reset();
        assert_eq!(jb.stats().resets, 4);
        assert_eq!(jb.stats().buffered_frames, 0);
        assert_eq!(jb.pop(ms(t)), Playout::Silence);
    }

    #[test]
    fn timestamps_wrap() {
        let mut jb = buffer();
        let mut played = Vec::new();
        for seq in 0..30u64 {
            let ts = (u32::MAX - 1600).wrapping_add((seq * 160) as u32);
            jb.push(ms(seq * 20), seq, ts, vec![seq as u8], seq == 0);
            if let Playout::Frame(p, _) = jb.pop(ms(seq * 20)) {
                played.push(p[0]);
            }
        }
        assert!(played.len() >= 25, "{played:?}");
        assert!(played.windows(2).all(|w| w[1] == w[0] + 1), "{played:?}");
        assert_eq!(jb.stats().concealed_frames, 0);
    }

    #[test]
    #[allow(clippy::print_stdout)] // reports measured numbers
    fn delay_grows_after_a_jitter_increase_and_shrinks_back() {
        let mut jb = buffer();
        let mut rng = Rng(9);
        let mut t = 0u64;
        let mut queue: Vec<(Duration, u64)> = Vec::new();
        let mut sent = 0u64;
        let mut targets = Vec::new();
        // 10 s calm, 10 s with 0..100 ms jitter, 20 s calm.
        while t < 40_000 {
            if t.is_multiple_of(20) {
                let spread = if (10_000..20_000).contains(&t) {
                    100.0
                } else {
                    2.0
                };
                let delay = 20.0 + spread * rng.unit();
                queue.push((Duration::from_secs_f64((t as f64 + delay) / 1000.0), sent));
                sent += 1;
            }
            queue.sort();
            while let Some(&(arrival, seq)) = queue.first() {
                if arrival > ms(t) {
                    break;
                }
                jb.push(arrival, seq, (seq * 160) as u32, vec![0], seq == 0);
                queue.remove(0);
            }
            if t % 20 == 3 {
                jb.pop(ms(t));
            }
            if t.is_multiple_of(1000) {
                targets.push(jb.stats().target_delay.as_millis());
            }
            t += 1;
        }
        let s = jb.stats();
        println!("targets per second (ms): {targets:?}; {s:?}");
        assert!(targets[9] <= 30, "{targets:?}");
        assert!(targets[19] >= 80, "{targets:?}");
        assert!(targets[39] <= 30, "{targets:?}");
        assert!(s.inserted_frames > 0 && s.dropped_frames > 0, "{s:?}");
        assert!(s.current_delay < ms(60), "{s:?}");
    }

    #[test]
    fn garbage_input_never_panics() {
        let mut rng = Rng(0xDEAD_BEEF);
        for round in 0..4 {
            let mut config = JitterConfig::new(if round == 3 { 0 } else { 8000 }, FRAME);
            if round == 2 {
                config.frame_duration = Duration::ZERO;
                config.window = 0;
                config.max_packets = 0;
                config.min_delay = ms(500);
                config.percentile = f64::NAN;
            }
            let mut jb = JitterBuffer::new(config);
            for _ in 0..20_000 {
                let arrival = Duration::from_nanos(rng.next() >> (rng.next() % 64));
                let seq = match rng.next() % 3 {
                    0 => rng.next(),
                    1 => rng.next() % 100,
                    _ => u64::MAX - rng.next() % 3,
                };
                let ts = rng.next() as u32;
                let _ = jb.push(
                    arrival,
                    seq,
                    ts,
                    vec![0; (rng.next() % 4) as usize],
                    rng.next().is_multiple_of(2),
                );
                let _ = jb.pop(Duration::from_nanos(rng.next() >> (rng.next() % 64)));
                let _ = jb.peek_next();
                let _ = jb.stats();
            }
            assert!(jb.stats().buffered_frames <= jb.config().max_packets);
        }
    }
}
