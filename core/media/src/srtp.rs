//! SRTP and SRTCP (RFC 3711) with the SDES crypto suites AES_CM_128_HMAC_SHA1_80 and
//! AES_CM_128_HMAC_SHA1_32 (RFC 4568 §6.2).
//!
//! * Session keys come from the AES-CM PRF of RFC 3711 §4.3 with key_derivation_rate 0
//!   (labels 0..=2 for SRTP, 3..=5 for SRTCP). MKI is not supported.
//! * Payloads are encrypted with AES-128 in counter mode (§4.1.1), authenticated with
//!   HMAC-SHA1 (§4.2.1). The tag is 80 bits, or 32 bits for SRTP under `_32`; SRTCP always
//!   uses the 80-bit tag, as RFC 4568 §6.2.1 specifies for AES_CM_128_HMAC_SHA1_32.
//! * The SRTP index is the 32-bit rollover counter (ROC) and the 16-bit sequence number;
//!   both sides estimate it with the RFC 3711 Appendix A rule from the highest sequence
//!   number seen, so a 65535 → 0 wrap increments the ROC and a late packet from before a
//!   wrap still uses the old ROC.
//! * The receiver checks replay against a 128-packet sliding window (per SSRC), then the
//!   tag in constant time, and only then decrypts; state changes only after a packet
//!   authenticates, so forged packets cannot move the window or create streams.
//!
//! Each direction has its own master key, so a call uses two [`SrtpContext`]s: one that
//! protects what we send and one that unprotects what we receive. Per-packet work does no
//! heap allocation beyond the output buffer; the `_into` variants reuse one.
//!
//! Nothing here prints key material: [`SrtpContext`]'s `Debug` shows the suite and stream
//! counts only. Temporary key buffers are zeroized and the AES key schedules are wiped on
//! drop (the `aes` crate's `zeroize` feature); the HMAC inner/outer states are not.

use aes::Aes128;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroize;

use crate::rtp::rtp_layout;

type HmacSha1 = Hmac<Sha1>;
type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// Length of an SRTP master key for the AES-128 suites.
pub const MASTER_KEY_LEN: usize = 16;
/// Length of an SRTP master salt.
pub const MASTER_SALT_LEN: usize = 14;
/// Size of the replay window, in packets, for SRTP and SRTCP alike.
pub const REPLAY_WINDOW: u64 = 128;
/// Length of the SRTCP authentication tag (80 bits for both suites).
pub const SRTCP_TAG_LEN: usize = 10;
/// Length of the E flag + SRTCP index word.
pub const SRTCP_INDEX_LEN: usize = 4;
/// Largest SRTCP index (31 bits).
pub const MAX_SRTCP_INDEX: u32 = 0x7FFF_FFFF;
/// Distinct SSRCs a context keeps state for; the least recently used is forgotten beyond.
pub const MAX_STREAMS: usize = 16;

const RTP_HEADER_MIN: usize = 12;
const RTCP_HEADER_LEN: usize = 8;

/// An SRTP crypto suite (RFC 4568 §6.2 names).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpSuite {
    /// AES_CM_128_HMAC_SHA1_80: 80-bit tags on SRTP and SRTCP.
    AesCm128HmacSha1_80,
    /// AES_CM_128_HMAC_SHA1_32: 32-bit tag on SRTP, 80-bit tag on SRTCP.
    AesCm128HmacSha1_32,
}

impl SrtpSuite {
    /// SRTP authentication tag length in bytes (10 or 4).
    pub fn rtp_tag_len(self) -> usize {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => 10,
            SrtpSuite::AesCm128HmacSha1_32 => 4,
        }
    }

    /// SRTCP authentication tag length in bytes: 10 for both suites.
    pub fn rtcp_tag_len(self) -> usize {
        SRTCP_TAG_LEN
    }

    /// The SDP `a=crypto` name of the suite.
    pub fn sdes_name(self) -> &'static str {
        match self {
            SrtpSuite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            SrtpSuite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
        }
    }

    /// Looks a suite up by its SDP `a=crypto` name.
    pub fn from_sdes_name(name: &str) -> Option<SrtpSuite> {
        match name {
            "AES_CM_128_HMAC_SHA1_80" => Some(SrtpSuite::AesCm128HmacSha1_80),
            "AES_CM_128_HMAC_SHA1_32" => Some(SrtpSuite::AesCm128HmacSha1_32),
            _ => None,
        }
    }
}

/// Why a packet could not be protected or unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SrtpError {
    /// The authentication tag does not match: forged, corrupted or wrong key/ROC.
    #[error("SRTP authentication failed")]
    AuthFailed,
    /// The packet index was already received or is older than the replay window.
    #[error("SRTP replayed or too old packet")]
    Replay,
    /// The packet is shorter than its fixed header plus tag.
    #[error("SRTP packet too short")]
    TooShort,
    /// The header is not valid RTP/RTCP version 2 (or its lengths overrun the packet), or
    /// an argument is out of range.
    #[error("malformed SRTP packet")]
    Malformed,
    /// The packet index space of this master key is used up (2^48 SRTP or 2^31 SRTCP
    /// packets): re-key.
    #[error("SRTP key exhausted; re-key")]
    KeyExhausted,
}

/// Session keys for one of SRTP or SRTCP.
#[derive(Clone)]
struct SessionKeys {
    cipher: Aes128,
    /// Session salt, already multiplied by 2^16 as a 128-bit integer.
    salt: u128,
    /// HMAC-SHA1 with the session auth key already absorbed into its inner/outer state.
    auth: HmacSha1,
}

/// AES in counter mode (128-bit big-endian counter) starting at `iv`, reusing the
/// already expanded key schedule.
fn ctr_stream(cipher: &Aes128, iv: [u8; 16]) -> Aes128Ctr {
    Aes128Ctr::from_core(ctr::CtrCore::inner_iv_init(cipher.clone(), &iv.into()))
}

/// The AES-CM PRF of RFC 3711 §4.3.1/§4.3.3 with key_derivation_rate 0: x = label at
/// byte 7 XOR master salt, keystream from IV x * 2^16.
fn kdf(master: &Aes128, master_salt: &[u8; MASTER_SALT_LEN], label: u8, out: &mut [u8]) {
    let mut iv = [0u8; 16];
    iv[..MASTER_SALT_LEN].copy_from_slice(master_salt);
    iv[7] ^= label;
    out.fill(0);
    ctr_stream(master, iv).apply_keystream(out);
}

impl SessionKeys {
    fn derive(
        master: &Aes128,
        master_salt: &[u8; MASTER_SALT_LEN],
        first_label: u8,
    ) -> SessionKeys {
        let mut key = [0u8; 16];
        let mut auth = [0u8; 20];
        let mut salt = [0u8; 16];
        kdf(master, master_salt, first_label, &mut key);
        kdf(master, master_salt, first_label + 1, &mut auth);
        kdf(
            master,
            master_salt,
            first_label + 2,
            &mut salt[..MASTER_SALT_LEN],
        );
        let keys = SessionKeys {
            cipher: Aes128::new(&key.into()),
            salt: u128::from_be_bytes(salt),
            // HMAC accepts any key length, so this cannot fail; fall back to an
            // unusable all-zero key rather than panic.
            auth: <HmacSha1 as Mac>::new_from_slice(&auth)
                .unwrap_or_else(|_| <HmacSha1 as KeyInit>::new(&Default::default())),
        };
        key.zeroize();
        auth.zeroize();
        salt.zeroize();
        keys
    }

    /// XORs the AES-CM keystream for (ssrc, index) into `data` (RFC 3711 §4.1.1):
    /// IV = (salt * 2^16) XOR (SSRC * 2^64) XOR (index * 2^16).
    fn apply_keystream(&self, ssrc: u32, index: u64, data: &mut [u8]) {
        let iv = self.salt ^ (u128::from(ssrc) << 64) ^ (u128::from(index) << 16);
        ctr_stream(&self.cipher, iv.to_be_bytes()).apply_keystream(data);
    }

    /// Full 20-byte HMAC-SHA1 over `parts` concatenated.
    fn mac(&self, data: &[u8], trailer: &[u8]) -> [u8; 20] {
        let mut mac = self.auth.clone();
        mac.update(data);
        mac.update(trailer);
        mac.finalize().into_bytes().into()
    }
}

/// 128-packet sliding replay window (RFC 3711 §3.3.2), bit i = index (top - i) seen.
#[derive(Debug, Clone, Copy)]
struct ReplayWindow {
    top: u64,
    bits: u128,
}

impl ReplayWindow {
    fn new(first: u64) -> Self {
        ReplayWindow {
            top: first,
            bits: 0,
        }
    }

    fn check(&self, index: u64) -> Result<(), SrtpError> {
        if index > self.top {
            return Ok(());
        }
        let delta = self.top - index;
        if delta >= REPLAY_WINDOW || (self.bits >> delta) & 1 == 1 {
            return Err(SrtpError::Replay);
        }
        Ok(())
    }

    fn mark(&mut self, index: u64) {
        if index > self.top {
            let shift = index - self.top;
            self.bits = if shift >= REPLAY_WINDOW {
                0
            } else {
                self.bits << shift
            };
            self.top = index;
            self.bits |= 1;
        } else {
            let delta = self.top - index;
            if delta < REPLAY_WINDOW {
                self.bits |= 1 << delta;
            }
        }
    }
}

/// Per-SSRC SRTP state: ROC and highest sequence number s_l (RFC 3711 §3.3.1).
#[derive(Debug, Clone, Copy)]
struct RtpStream {
    ssrc: u32,
    roc: u32,
    s_l: u16,
    window: ReplayWindow,
    last_used: u64,
}

impl RtpStream {
    fn index(&self) -> u64 {
        (u64::from(self.roc) << 16) | u64::from(self.s_l)
    }

    /// RFC 3711 Appendix A index estimate. A guess of ROC - 1 while ROC is 0 (a packet
    /// from before the first one seen) is taken as ROC 0, as libsrtp does.
    fn estimate(&self, seq: u16) -> Result<(u32, u64), SrtpError> {
        let roc = i64::from(self.roc);
        let s_l = i64::from(self.s_l);
        let seq_i = i64::from(seq);
        let v = if s_l < 32_768 {
            if seq_i - s_l > 32_768 { roc - 1 } else { roc }
        } else if s_l - 32_768 > seq_i {
            roc + 1
        } else {
            roc
        };
        let v = u32::try_from(v.max(0)).map_err(|_| SrtpError::KeyExhausted)?;
        Ok((v, (u64::from(v) << 16) | u64::from(seq)))
    }

    fn advance(&mut self, roc: u32, seq: u16, index: u64) {
        if index > self.index() {
            self.roc = roc;
            self.s_l = seq;
        }
        self.window.mark(index);
    }
}

/// Per-SSRC SRTCP replay state.
#[derive(Debug, Clone, Copy)]
struct RtcpStream {
    ssrc: u32,
    window: ReplayWindow,
    last_used: u64,
}

/// One direction of SRTP + SRTCP under one master key and salt.
///
/// Use one context to protect what is sent and another (with the peer's key) to
/// unprotect what is received.
#[derive(Clone)]
pub struct SrtpContext {
    suite: SrtpSuite,
    rtp_keys: SessionKeys,
    rtcp_keys: SessionKeys,
    rtp_streams: Vec<RtpStream>,
    rtcp_streams: Vec<RtcpStream>,
    next_srtcp_index: u32,
    /// Monotonic use counter for least-recently-used eviction of stream state.
    uses: u64,
}

impl std::fmt::Debug for SrtpContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SrtpContext")
            .field("suite", &self.suite)
            .field("rtp_streams", &self.rtp_streams.len())
            .field("rtcp_streams", &self.rtcp_streams.len())
            .field("next_srtcp_index", &self.next_srtcp_index)
            .finish_non_exhaustive()
    }
}

fn ssrc_at(b: &[u8], at: usize) -> u32 {
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

fn find_lru<T>(v: &[T], last_used: impl Fn(&T) -> u64) -> usize {
    v.iter()
        .enumerate()
        .min_by_key(|(_, s)| last_used(s))
        .map_or(0, |(i, _)| i)
}

impl SrtpContext {
    /// Derives the SRTP and SRTCP session keys for `suite` from a master key and salt.
    pub fn new(
        suite: SrtpSuite,
        master_key: &[u8; MASTER_KEY_LEN],
        master_salt: &[u8; MASTER_SALT_LEN],
    ) -> SrtpContext {
        let master = Aes128::new(master_key.into());
        SrtpContext {
            suite,
            rtp_keys: SessionKeys::derive(&master, master_salt, 0),
            rtcp_keys: SessionKeys::derive(&master, master_salt, 3),
            rtp_streams: Vec::with_capacity(2),
            rtcp_streams: Vec::with_capacity(2),
            next_srtcp_index: 0,
            uses: 0,
        }
    }

    /// Like [`SrtpContext::new`] from the 30-byte key||salt of an SDES `inline:` key
    /// (RFC 4568 §6.1, after base64 decoding); [`SrtpError::Malformed`] for another length.
    pub fn from_key_salt(suite: SrtpSuite, key_salt: &[u8]) -> Result<SrtpContext, SrtpError> {
        if key_salt.len() != MASTER_KEY_LEN + MASTER_SALT_LEN {
            return Err(SrtpError::Malformed);
        }
        let mut key = [0u8; MASTER_KEY_LEN];
        let mut salt = [0u8; MASTER_SALT_LEN];
        key.copy_from_slice(&key_salt[..MASTER_KEY_LEN]);
        salt.copy_from_slice(&key_salt[MASTER_KEY_LEN..]);
        let ctx = SrtpContext::new(suite, &key, &salt);
        key.zeroize();
        salt.zeroize();
        Ok(ctx)
    }

    /// The crypto suite of this context.
    pub fn suite(&self) -> SrtpSuite {
        self.suite
    }

    /// The rollover counter currently tracked for `ssrc`, if any packet of it was
    /// protected or authenticated.
    pub fn rtp_roc(&self, ssrc: u32) -> Option<u32> {
        self.rtp_streams
            .iter()
            .find(|s| s.ssrc == ssrc)
            .map(|s| s.roc)
    }

    /// The SRTCP index the next [`SrtpContext::protect_rtcp`] will use. It starts at 0
    /// (RFC 3711 §3.4).
    pub fn next_srtcp_index(&self) -> u32 {
        self.next_srtcp_index
    }

    /// Sets the SRTCP index of the next protected RTCP packet (for instance to continue a
    /// sequence); [`SrtpError::Malformed`] above [`MAX_SRTCP_INDEX`].
    pub fn set_next_srtcp_index(&mut self, index: u32) -> Result<(), SrtpError> {
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::Malformed);
        }
        self.next_srtcp_index = index;
        Ok(())
    }

    fn tick(&mut self) -> u64 {
        self.uses += 1;
        self.uses
    }

    /// Protects an RTP packet: returns the SRTP packet (encrypted payload + tag).
    pub fn protect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut out = Vec::with_capacity(packet.len() + self.suite.rtp_tag_len());
        self.protect_rtp_into(packet, &mut out)?;
        Ok(out)
    }

    /// Protects an RTP packet into `out`, which is cleared first (its capacity is reused).
    pub fn protect_rtp_into(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        if packet.len() < RTP_HEADER_MIN {
            return Err(SrtpError::TooShort);
        }
        let header_len = rtp_layout(packet, false)
            .map_err(|_| SrtpError::Malformed)?
            .header_len;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = ssrc_at(packet, 8);
        let now = self.tick();
        let pos = match self.rtp_streams.iter().position(|s| s.ssrc == ssrc) {
            Some(p) => p,
            None => {
                let stream = RtpStream {
                    ssrc,
                    roc: 0,
                    s_l: seq,
                    window: ReplayWindow::new(u64::from(seq)),
                    last_used: now,
                };
                self.insert_rtp_stream(stream)
            }
        };
        let stream = &mut self.rtp_streams[pos];
        stream.last_used = now;
        let (roc, index) = stream.estimate(seq)?;
        let tag_len = self.suite.rtp_tag_len();
        out.reserve(packet.len() + tag_len);
        out.extend_from_slice(packet);
        self.rtp_keys
            .apply_keystream(ssrc, index, &mut out[header_len..]);
        let tag = self.rtp_keys.mac(out, &roc.to_be_bytes());
        out.extend_from_slice(&tag[..tag_len]);
        stream.advance(roc, seq, index);
        Ok(())
    }

    fn insert_rtp_stream(&mut self, stream: RtpStream) -> usize {
        if self.rtp_streams.len() < MAX_STREAMS {
            self.rtp_streams.push(stream);
            self.rtp_streams.len() - 1
        } else {
            let i = find_lru(&self.rtp_streams, |s| s.last_used);
            self.rtp_streams[i] = stream;
            i
        }
    }

    /// Authenticates, replay-checks and decrypts an SRTP packet; returns the RTP packet.
    pub fn unprotect_rtp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut out = Vec::with_capacity(packet.len());
        self.unprotect_rtp_into(packet, &mut out)?;
        Ok(out)
    }

    /// Like [`SrtpContext::unprotect_rtp`] into `out`, which is cleared first. On error
    /// `out` is empty and the context is unchanged.
    pub fn unprotect_rtp_into(
        &mut self,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SrtpError> {
        out.clear();
        let tag_len = self.suite.rtp_tag_len();
        if packet.len() < RTP_HEADER_MIN + tag_len {
            return Err(SrtpError::TooShort);
        }
        let (authed, tag) = packet.split_at(packet.len() - tag_len);
        let header_len = rtp_layout(authed, false)
            .map_err(|_| SrtpError::Malformed)?
            .header_len;
        let seq = u16::from_be_bytes([packet[2], packet[3]]);
        let ssrc = ssrc_at(packet, 8);
        let existing = self.rtp_streams.iter().position(|s| s.ssrc == ssrc);
        let (roc, index) = match existing {
            Some(p) => {
                let stream = &self.rtp_streams[p];
                let (roc, index) = stream.estimate(seq)?;
                stream.window.check(index)?;
                (roc, index)
            }
            // First packet of a source: ROC 0, s_l = SEQ (RFC 3711 §3.3.1).
            None => (0, u64::from(seq)),
        };
        let expected = self.rtp_keys.mac(authed, &roc.to_be_bytes());
        if !bool::from(expected[..tag_len].ct_eq(tag)) {
            return Err(SrtpError::AuthFailed);
        }
        out.reserve(authed.len());
        out.extend_from_slice(authed);
        self.rtp_keys
            .apply_keystream(ssrc, index, &mut out[header_len..]);
        let now = self.tick();
        let pos = match existing {
            Some(p) => p,
            None => self.insert_rtp_stream(RtpStream {
                ssrc,
                roc,
                s_l: seq,
                window: ReplayWindow::new(index),
                last_used: now,
            }),
        };
        let stream = &mut self.rtp_streams[pos];
        stream.last_used = now;
        stream.advance(roc, seq, index);
        Ok(())
    }

    /// Protects a (compound) RTCP packet: encrypts everything after the first 8 bytes,
    /// appends E=1 and the SRTCP index, then the 80-bit tag.
    pub fn protect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut out = Vec::with_capacity(packet.len() + SRTCP_INDEX_LEN + SRTCP_TAG_LEN);
        self.protect_rtcp_into(packet, &mut out)?;
        Ok(out)
    }

    /// Like [`SrtpContext::protect_rtcp`] into `out`, which is cleared first.
    pub fn protect_rtcp_into(&mut self, packet: &[u8], out: &mut Vec<u8>) -> Result<(), SrtpError> {
        out.clear();
        if packet.len() < RTCP_HEADER_LEN {
            return Err(SrtpError::TooShort);
        }
        if packet[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let index = self.next_srtcp_index;
        if index > MAX_SRTCP_INDEX {
            return Err(SrtpError::KeyExhausted);
        }
        let ssrc = ssrc_at(packet, 4);
        out.reserve(packet.len() + SRTCP_INDEX_LEN + SRTCP_TAG_LEN);
        out.extend_from_slice(packet);
        self.rtcp_keys
            .apply_keystream(ssrc, u64::from(index), &mut out[RTCP_HEADER_LEN..]);
        out.extend_from_slice(&(0x8000_0000 | index).to_be_bytes());
        let tag = self.rtcp_keys.mac(out, &[]);
        out.extend_from_slice(&tag[..SRTCP_TAG_LEN]);
        self.next_srtcp_index = index + 1;
        Ok(())
    }

    /// Authenticates, replay-checks and (if the E flag is set) decrypts an SRTCP packet;
    /// returns the RTCP compound packet.
    pub fn unprotect_rtcp(&mut self, packet: &[u8]) -> Result<Vec<u8>, SrtpError> {
        let mut out = Vec::with_capacity(packet.len());
        self.unprotect_rtcp_into(packet, &mut out)?;
        Ok(out)
    }

    /// Like [`SrtpContext::unprotect_rtcp`] into `out`, which is cleared first. On error
    /// `out` is empty and the context is unchanged.
    pub fn unprotect_rtcp_into(
        &mut self,
        packet: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), SrtpError> {
        out.clear();
        if packet.len() < RTCP_HEADER_LEN + SRTCP_INDEX_LEN + SRTCP_TAG_LEN {
            return Err(SrtpError::TooShort);
        }
        if packet[0] >> 6 != 2 {
            return Err(SrtpError::Malformed);
        }
        let (authed, tag) = packet.split_at(packet.len() - SRTCP_TAG_LEN);
        let (body, e_index) = authed.split_at(authed.len() - SRTCP_INDEX_LEN);
        let e_index = ssrc_at(e_index, 0);
        let encrypted = e_index & 0x8000_0000 != 0;
        let index = u64::from(e_index & MAX_SRTCP_INDEX);
        let ssrc = ssrc_at(packet, 4);
        let existing = self.rtcp_streams.iter().position(|s| s.ssrc == ssrc);
        if let Some(p) = existing {
            self.rtcp_streams[p].window.check(index)?;
        }
        let expected = self.rtcp_keys.mac(authed, &[]);
        if !bool::from(expected[..SRTCP_TAG_LEN].ct_eq(tag)) {
            return Err(SrtpError::AuthFailed);
        }
        out.reserve(body.len());
        out.extend_from_slice(body);
        if encrypted {
            self.rtcp_keys
                .apply_keystream(ssrc, index, &mut out[RTCP_HEADER_LEN..]);
        }
        let now = self.tick();
        let pos = match existing {
            Some(p) => p,
            None => {
                let stream = RtcpStream {
                    ssrc,
                    window: ReplayWindow::new(index),
                    last_used: now,
                };
                if self.rtcp_streams.len() < MAX_STREAMS {
                    self.rtcp_streams.push(stream);
                    self.rtcp_streams.len() - 1
                } else {
                    let i = find_lru(&self.rtcp_streams, |s| s.last_used);
                    self.rtcp_streams[i] = stream;
                    i
                }
            }
        };
        let stream = &mut self.rtcp_streams[pos];
        stream.last_used = now;
        stream.window.mark(index);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    // RFC 3711 B.3 master key and salt; also libsrtp's `test_key` in srtp_driver.c.
    const MASTER_KEY: [u8; 16] = [
        0xe1, 0xf9, 0x7a, 0x0d, 0x3e, 0x01, 0x8b, 0xe0, 0xd6, 0x4f, 0xa3, 0x2c, 0x06, 0xde, 0x41,
        0x39,
    ];
    const MASTER_SALT: [u8; 14] = [
        0x0e, 0xc6, 0x75, 0xad, 0x49, 0x8a, 0xfe, 0xeb, 0xb6, 0x96, 0x0b, 0x3a, 0xab, 0xe6,
    ];

    fn ctx(suite: SrtpSuite) -> SrtpContext {
        SrtpContext::new(suite, &MASTER_KEY, &MASTER_SALT)
    }

    fn rtp(seq: u16, ssrc: u32, payload_len: usize) -> Vec<u8> {
        let mut p = vec![0x80, 0x00];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
        p.extend_from_slice(&ssrc.to_be_bytes());
        p.extend((0..payload_len).map(|i| (i as u8) ^ (seq as u8)));
        p
    }

    #[test]
    fn rfc3711_b2_aes_cm_keystream() {
        // Session key 2B7E..., salt F0F1...FD, SSRC 0, ROC 0, SEQ 0: the keystream is
        // AES-CTR from counter F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000.
        let keys = SessionKeys {
            cipher: Aes128::new_from_slice(&hex("2B7E151628AED2A6ABF7158809CF4F3C")).unwrap(),
            salt: u128::from_be_bytes(hex("F0F1F2F3F4F5F6F7F8F9FAFBFCFD0000").try_into().unwrap()),
            auth: <HmacSha1 as Mac>::new_from_slice(&[0; 20]).unwrap(),
        };
        let mut ks = vec![0u8; 1_044_512]; // 65282 blocks, as in B.2
        keys.apply_keystream(0, 0, &mut ks);
        let block = |i: usize| ks[i * 16..i * 16 + 16].to_vec();
        assert_eq!(block(0), hex("E03EAD0935C95E80E166B16DD92B4EB4"));
        assert_eq!(block(1), hex("D23513162B02D0F72A43A2FE4A5F97AB"));
        assert_eq!(block(2), hex("41E95B3BB0A2E8DD477901E4FCA894C0"));
        assert_eq!(block(0xFEFF), hex("EC8CDF7398607CB0F2D21675EA9EA1E4"));
        assert_eq!(block(0xFF00), hex("362B7C3C6773516318A077D7FC5073AE"));
        assert_eq!(block(0xFF01), hex("6A2CC3787889374FBEB4C81B17BA6C44"));
    }

    #[test]
    fn rfc3711_b3_key_derivation() {
        let master = Aes128::new(&MASTER_KEY.into());
        let mut cipher_key = [0u8; 16];
        kdf(&master, &MASTER_SALT, 0, &mut cipher_key);
        assert_eq!(cipher_key.to_vec(), hex("C61E7A93744F39EE10734AFE3FF7A087"));
        let mut cipher_salt = [0u8; 14];
        kdf(&master, &MASTER_SALT, 2, &mut cipher_salt);
        assert_eq!(cipher_salt.to_vec(), hex("30CBBC08863D8C85D49DB34A9AE1"));
        // B.3 lists a 94-octet auth key; SHA1 suites use its first 20 octets.
        let mut auth_key = [0u8; 94];
        kdf(&master, &MASTER_SALT, 1, &mut auth_key);
        assert_eq!(
            auth_key.to_vec(),
            hex(
                "CEBE321F6FF7716B6FD4AB49AF256A15 6D38BAA48F0A0ACF3C34E2359E6CDBCE
                 E049646C43D9327AD175578EF7227098 6371C10C9A369AC2F94A8C5FBCDDDC25
                 6D6E919A48B610EF17C2041E47403576 6B68642C59BBFC2F34DB60DBDFB2"
            )
        );
        // The context uses exactly these keys.
        let keys = SessionKeys::derive(&master, &MASTER_SALT, 0);
        let mut salt16 = [0u8; 16];
        salt16[..14].copy_from_slice(&cipher_salt);
        assert_eq!(keys.salt, u128::from_be_bytes(salt16));
        let mut zeros = [0u8; 16];
        keys.cipher.clone().encrypt_block((&mut zeros).into());
        let mut expect = [0u8; 16];
        Aes128::new(&cipher_key.into()).encrypt_block((&mut expect).into());
        assert_eq!(zeros, expect);
    }

    use aes::cipher::BlockEncrypt;

    // libsrtp test/srtp_driver.c `srtp_validate()`: default policy (AES_CM_128_HMAC_SHA1_80
    // for RTP and RTCP), key/salt as above, SSRC 0xcafebabe.
    const LIBSRTP_RTP_PLAIN: &str = "800f1234decafbadcafebabe abababababababababababababababab";
    const LIBSRTP_SRTP: &str =
        "800f1234decafbadcafebabe 4e55dc4ce79978d88ca4d215949d2402 b78d6acc99ea179b8dbb";
    const LIBSRTP_RTCP_PLAIN: &str = "81c8000bcafebabe abababababababababababababababab";
    const LIBSRTP_SRTCP: &str =
        "81c8000bcafebabe 7128035be487b9bdbef89041f977a5a8 80000001 993e08cd54d6c1230798";

    #[test]
    fn libsrtp_known_answer_sha1_80() {
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(
            tx.protect_rtp(&hex(LIBSRTP_RTP_PLAIN)).unwrap(),
            hex(LIBSRTP_SRTP)
        );
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(
            rx.unprotect_rtp(&hex(LIBSRTP_SRTP)).unwrap(),
            hex(LIBSRTP_RTP_PLAIN)
        );
    }

    #[test]
    fn libsrtp_known_answer_sha1_32() {
        // RFC 3711 §4.2.1: the tag is the leftmost n bits of the HMAC, so the _32 packet is
        // the libsrtp _80 packet with its tag cut to 4 bytes (libsrtp's own _32 vector).
        let expected = hex(LIBSRTP_SRTP)[..12 + 16 + 4].to_vec();
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_32);
        assert_eq!(tx.protect_rtp(&hex(LIBSRTP_RTP_PLAIN)).unwrap(), expected);
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_32);
        assert_eq!(rx.unprotect_rtp(&expected).unwrap(), hex(LIBSRTP_RTP_PLAIN));
    }

    #[test]
    fn libsrtp_known_answer_srtcp() {
        // libsrtp's first SRTCP packet carries index 1; RFC 3711 §3.4 starts at 0, so set
        // it explicitly to reproduce the vector.
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut tx = ctx(suite);
            assert_eq!(tx.next_srtcp_index(), 0);
            tx.set_next_srtcp_index(1).unwrap();
            assert_eq!(
                tx.protect_rtcp(&hex(LIBSRTP_RTCP_PLAIN)).unwrap(),
                hex(LIBSRTP_SRTCP)
            );
            assert_eq!(tx.next_srtcp_index(), 2);
            let mut rx = ctx(suite);
            assert_eq!(
                rx.unprotect_rtcp(&hex(LIBSRTP_SRTCP)).unwrap(),
                hex(LIBSRTP_RTCP_PLAIN)
            );
        }
    }

    // Vectors computed by an independent implementation written from RFC 3711 §4 in
    // Python with pyca/cryptography (AES-CTR + hmac/hashlib), which first reproduces the
    // libsrtp vectors above. It is, in short:
    //   kdf(mk, ms, label, n) = AES-CTR(mk, iv=(ms with byte 7 ^= label) || 0000)(0^n)
    //   iv = (salt||0000) ^ ssrc<<64 ^ index<<16 ; index = roc<<16 | seq
    //   srtp = hdr || AES-CTR(k_e, iv)(payload+padding) || HMAC-SHA1(k_a, that || roc)[:n]
    //   srtcp = hdr8 || AES-CTR(k_e', iv')(rest) || 0x80000000|idx || HMAC-SHA1(k_a', ..)[:10]
    // Master key 0102..10, salt A0A1..AD. The RTP packet has CC=2, a one-byte header
    // extension, M=1, PT=111, padding of 4, SEQ 2 and ROC 1 (after a wrap).
    const X_RTP_PLAIN: &str = "b2ef00020102030411223344aaaaaaaabbbbbbbbbede000110ff0000
        000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232400000004";
    const X_SRTP_80: &str = "b2ef00020102030411223344aaaaaaaabbbbbbbbbede000110ff0000
        e544529dcb812ef0d1b11de5976d3318eb74dae9b006f2b5757e6541fd67efac489980b796c5d28398
        c2a7c3876529ccc7aa5a";
    const X_RTCP_PLAIN: &str = "80c900011122334481ca0003112233440102686900000000";
    const X_SRTCP_5: &str = "80c90001112233446f3d0cafd7586a011f6adea5177e48ce80000005
        dc96cbc5d4953e30010b";

    fn x_ctx(suite: SrtpSuite) -> SrtpContext {
        let key: [u8; 16] = std::array::from_fn(|i| i as u8 + 1);
        let salt: [u8; 14] = std::array::from_fn(|i| 0xA0 + i as u8);
        SrtpContext::new(suite, &key, &salt)
    }

    #[test]
    fn independent_vector_csrc_extension_padding_roc1() {
        let plain = hex(X_RTP_PLAIN);
        let srtp80 = hex(X_SRTP_80);
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let expected = srtp80[..plain.len() + suite.rtp_tag_len()].to_vec();
            let mut tx = x_ctx(suite);
            // Same SSRC, SEQ 65535 first so that SEQ 2 is after the wrap (ROC 1).
            let mut first = rtp(65535, 0x1122_3344, 20);
            first[1] = 111;
            tx.protect_rtp(&first).unwrap();
            assert_eq!(tx.protect_rtp(&plain).unwrap(), expected, "{suite:?}");
            assert_eq!(tx.rtp_roc(0x1122_3344), Some(1));
            let mut rx = x_ctx(suite);
            rx.unprotect_rtp(&tx_clone_protect(&mut x_ctx(suite), &first))
                .unwrap();
            assert_eq!(rx.unprotect_rtp(&expected).unwrap(), plain);
            assert_eq!(rx.rtp_roc(0x1122_3344), Some(1));
        }
    }

    fn tx_clone_protect(tx: &mut SrtpContext, p: &[u8]) -> Vec<u8> {
        tx.protect_rtp(p).unwrap()
    }

    #[test]
    fn independent_vector_srtcp_sha1_32_uses_80_bit_tag() {
        let mut tx = x_ctx(SrtpSuite::AesCm128HmacSha1_32);
        tx.set_next_srtcp_index(5).unwrap();
        let out = tx.protect_rtcp(&hex(X_RTCP_PLAIN)).unwrap();
        assert_eq!(out, hex(X_SRTCP_5));
        assert_eq!(out.len(), hex(X_RTCP_PLAIN).len() + 4 + 10);
        let mut rx = x_ctx(SrtpSuite::AesCm128HmacSha1_32);
        assert_eq!(rx.unprotect_rtcp(&out).unwrap(), hex(X_RTCP_PLAIN));
    }

    #[test]
    fn round_trip_both_suites() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut tx = ctx(suite);
            let mut rx = ctx(suite);
            for seq in 1000..1100u16 {
                let p = rtp(seq, 7, 160);
                let s = tx.protect_rtp(&p).unwrap();
                assert_eq!(s.len(), p.len() + suite.rtp_tag_len());
                assert_ne!(&s[12..p.len()], &p[12..]);
                assert_eq!(rx.unprotect_rtp(&s).unwrap(), p);
            }
            // Header-only packet (empty payload).
            let p = rtp(1100, 7, 0);
            assert_eq!(rx.unprotect_rtp(&tx.protect_rtp(&p).unwrap()).unwrap(), p);
        }
    }

    #[test]
    fn into_variants_reuse_buffers() {
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let mut wire = Vec::with_capacity(256);
        let mut back = Vec::with_capacity(256);
        for seq in 0..10u16 {
            let p = rtp(seq, 9, 160);
            tx.protect_rtp_into(&p, &mut wire).unwrap();
            rx.unprotect_rtp_into(&wire, &mut back).unwrap();
            assert_eq!(back, p);
        }
        let rtcp = hex(LIBSRTP_RTCP_PLAIN);
        tx.protect_rtcp_into(&rtcp, &mut wire).unwrap();
        rx.unprotect_rtcp_into(&wire, &mut back).unwrap();
        assert_eq!(back, rtcp);
    }

    #[test]
    fn different_keys_fail_auth() {
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let mut rx = x_ctx(SrtpSuite::AesCm128HmacSha1_80);
        let s = tx.protect_rtp(&rtp(1, 1, 20)).unwrap();
        assert_eq!(rx.unprotect_rtp(&s), Err(SrtpError::AuthFailed));
    }

    #[test]
    fn tampered_packets_fail_auth() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut tx = ctx(suite);
            let s = tx.protect_rtp(&rtp(5, 1, 40)).unwrap();
            for i in [1, 2, 7, 11, 12, 30, s.len() - 1] {
                let mut bad = s.clone();
                bad[i] ^= 0x01;
                let mut rx = ctx(suite);
                let mut out = vec![1, 2, 3];
                assert_eq!(
                    rx.unprotect_rtp_into(&bad, &mut out),
                    Err(SrtpError::AuthFailed),
                    "byte {i}"
                );
                assert!(out.is_empty());
                // The forged packet left no state behind: the genuine one still passes.
                assert!(rx.rtp_roc(1).is_none());
                assert!(rx.unprotect_rtp(&s).is_ok());
            }
            let mut srtcp = tx.protect_rtcp(&hex(LIBSRTP_RTCP_PLAIN)).unwrap();
            srtcp[10] ^= 0x80;
            assert_eq!(
                ctx(suite).unprotect_rtcp(&srtcp),
                Err(SrtpError::AuthFailed)
            );
        }
    }

    #[test]
    fn replayed_packet_is_rejected() {
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let a = tx.protect_rtp(&rtp(10, 1, 20)).unwrap();
        let b = tx.protect_rtp(&rtp(11, 1, 20)).unwrap();
        rx.unprotect_rtp(&a).unwrap();
        assert_eq!(rx.unprotect_rtp(&a), Err(SrtpError::Replay));
        rx.unprotect_rtp(&b).unwrap();
        assert_eq!(rx.unprotect_rtp(&a), Err(SrtpError::Replay));
        assert_eq!(rx.unprotect_rtp(&b), Err(SrtpError::Replay));
    }

    #[test]
    fn window_accepts_late_and_rejects_too_old() {
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let packets: Vec<_> = (0..300u16)
            .map(|s| tx.protect_rtp(&rtp(s, 1, 8)).unwrap())
            .collect();
        rx.unprotect_rtp(&packets[0]).unwrap();
        rx.unprotect_rtp(&packets[200]).unwrap();
        // 200 - 73 = 127 behind: inside the 128-packet window, never seen.
        rx.unprotect_rtp(&packets[73]).unwrap();
        assert_eq!(rx.unprotect_rtp(&packets[73]), Err(SrtpError::Replay));
        // 128 behind: outside the window.
        assert_eq!(rx.unprotect_rtp(&packets[72]), Err(SrtpError::Replay));
        assert_eq!(rx.unprotect_rtp(&packets[1]), Err(SrtpError::Replay));
        rx.unprotect_rtp(&packets[299]).unwrap();
        assert_eq!(rx.unprotect_rtp(&packets[171]), Err(SrtpError::Replay));
        rx.unprotect_rtp(&packets[172]).unwrap();
    }

    #[test]
    fn sequence_wrap_increments_roc_with_reorder() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut tx = ctx(suite);
            let mut rx = ctx(suite);
            let seqs = [65530u16, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3];
            let wire: Vec<_> = seqs
                .iter()
                .map(|&s| tx.protect_rtp(&rtp(s, 3, 33)).unwrap())
                .collect();
            assert_eq!(tx.rtp_roc(3), Some(1));
            // Arrival order: across the wrap 65535 and 0 swap, 65533 arrives after 1.
            for i in [0, 1, 2, 4, 6, 5, 7, 3, 8, 9] {
                let plain = rx.unprotect_rtp(&wire[i]).unwrap();
                assert_eq!(plain, rtp(seqs[i], 3, 33), "seq {}", seqs[i]);
            }
            assert_eq!(rx.rtp_roc(3), Some(1));
            // A replay of a pre-wrap packet is still caught after the wrap.
            assert_eq!(rx.unprotect_rtp(&wire[5]), Err(SrtpError::Replay));
            // Keep going for several more wraps.
            let mut seq = 4u16;
            for _ in 0..(3 * 65536 / 1000) {
                let s = tx.protect_rtp(&rtp(seq, 3, 4)).unwrap();
                assert_eq!(rx.unprotect_rtp(&s).unwrap(), rtp(seq, 3, 4));
                seq = seq.wrapping_add(1000);
            }
            assert_eq!(tx.rtp_roc(3), rx.rtp_roc(3));
            assert_eq!(rx.rtp_roc(3), Some(3));
        }
    }

    #[test]
    fn first_packet_late_from_before_start() {
        // The receiver starts at 3; a late packet with SEQ 65534 (sent with ROC 0 by a
        // sender that started at 65534) is treated as ROC 0, as libsrtp does.
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let late = tx.protect_rtp(&rtp(65534, 1, 10)).unwrap();
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let mut tx2 = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let early = tx2.protect_rtp(&rtp(3, 1, 10)).unwrap();
        rx.unprotect_rtp(&early).unwrap();
        assert_eq!(rx.unprotect_rtp(&late).unwrap(), rtp(65534, 1, 10));
    }

    #[test]
    fn independent_ssrcs_keep_separate_state() {
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        let a = tx.protect_rtp(&rtp(40_000, 1, 10)).unwrap();
        let b = tx.protect_rtp(&rtp(5, 2, 10)).unwrap();
        rx.unprotect_rtp(&a).unwrap();
        // Without per-SSRC state SEQ 5 after 40000 would be guessed as ROC 1.
        assert_eq!(rx.unprotect_rtp(&b).unwrap(), rtp(5, 2, 10));
        // Many SSRCs: the least recently used is forgotten, nothing breaks.
        for ssrc in 10..(10 + 2 * MAX_STREAMS as u32) {
            let s = tx.protect_rtp(&rtp(1, ssrc, 4)).unwrap();
            rx.unprotect_rtp(&s).unwrap();
        }
        assert!(rx.rtp_streams.len() <= MAX_STREAMS);
    }

    #[test]
    fn srtcp_round_trip_and_replay() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            let mut tx = ctx(suite);
            let mut rx = ctx(suite);
            let plain = hex(LIBSRTP_RTCP_PLAIN);
            let first = tx.protect_rtcp(&plain).unwrap();
            assert_eq!(&first[first.len() - 14..first.len() - 10], &[0x80, 0, 0, 0]);
            assert_eq!(rx.unprotect_rtcp(&first).unwrap(), plain);
            assert_eq!(rx.unprotect_rtcp(&first), Err(SrtpError::Replay));
            let later: Vec<_> = (0..200).map(|_| tx.protect_rtcp(&plain).unwrap()).collect();
            rx.unprotect_rtcp(&later[199]).unwrap();
            rx.unprotect_rtcp(&later[100]).unwrap();
            assert_eq!(rx.unprotect_rtcp(&later[100]), Err(SrtpError::Replay));
            assert_eq!(rx.unprotect_rtcp(&later[10]), Err(SrtpError::Replay));
        }
    }

    #[test]
    fn srtcp_unencrypted_e_flag_clear() {
        // E = 0: payload in the clear, still authenticated (RFC 3711 §3.4).
        let keys = &ctx(SrtpSuite::AesCm128HmacSha1_80).rtcp_keys.clone();
        let plain = hex(LIBSRTP_RTCP_PLAIN);
        let mut pkt = plain.clone();
        pkt.extend_from_slice(&7u32.to_be_bytes());
        let tag = keys.mac(&pkt, &[]);
        pkt.extend_from_slice(&tag[..10]);
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(rx.unprotect_rtcp(&pkt).unwrap(), plain);
        assert_eq!(rx.unprotect_rtcp(&pkt), Err(SrtpError::Replay));
    }

    #[test]
    fn srtcp_index_exhaustion() {
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(
            tx.set_next_srtcp_index(MAX_SRTCP_INDEX + 1),
            Err(SrtpError::Malformed)
        );
        tx.set_next_srtcp_index(MAX_SRTCP_INDEX).unwrap();
        let plain = hex(LIBSRTP_RTCP_PLAIN);
        let last = tx.protect_rtcp(&plain).unwrap();
        assert_eq!(
            &last[last.len() - 14..last.len() - 10],
            &[0xFF, 0xFF, 0xFF, 0xFF]
        );
        assert_eq!(tx.protect_rtcp(&plain), Err(SrtpError::KeyExhausted));
    }

    #[test]
    fn truncated_and_garbage_input() {
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(rx.unprotect_rtp(&[]), Err(SrtpError::TooShort));
        assert_eq!(rx.unprotect_rtp(&[0x80; 21]), Err(SrtpError::TooShort));
        assert_eq!(rx.unprotect_rtcp(&[0x80; 21]), Err(SrtpError::TooShort));
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_80);
        assert_eq!(tx.protect_rtp(&[0x80; 11]), Err(SrtpError::TooShort));
        assert_eq!(tx.protect_rtcp(&[0x80; 7]), Err(SrtpError::TooShort));
        assert_eq!(tx.protect_rtp(&[0x40; 20]), Err(SrtpError::Malformed));
        assert_eq!(tx.protect_rtcp(&[0x40; 20]), Err(SrtpError::Malformed));
        // CSRC count pointing past the end.
        let mut p = rtp(1, 1, 4);
        p[0] = 0x8F;
        assert_eq!(tx.protect_rtp(&p), Err(SrtpError::Malformed));
        // A valid SRTP packet cut short.
        let s = tx.protect_rtp(&rtp(1, 1, 30)).unwrap();
        assert_eq!(
            rx.unprotect_rtp(&s[..s.len() - 1]),
            Err(SrtpError::AuthFailed)
        );
        assert_eq!(rx.unprotect_rtp(&s[..21]), Err(SrtpError::TooShort));
        let mut garbage = vec![0u8; 40];
        assert_eq!(rx.unprotect_rtp(&garbage), Err(SrtpError::Malformed));
        garbage[0] = 0x80;
        assert_eq!(rx.unprotect_rtp(&garbage), Err(SrtpError::AuthFailed));
        assert_eq!(rx.unprotect_rtcp(&garbage), Err(SrtpError::AuthFailed));
        assert_eq!(
            SrtpContext::from_key_salt(SrtpSuite::AesCm128HmacSha1_80, &[0; 29]).map(|_| ()),
            Err(SrtpError::Malformed)
        );
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0xD1B5_4A32_D192_ED03;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut rx = ctx(SrtpSuite::AesCm128HmacSha1_32);
        let mut tx = ctx(SrtpSuite::AesCm128HmacSha1_32);
        let valid = tx.protect_rtp(&rtp(9, 9, 50)).unwrap();
        let mut out = Vec::new();
        for round in 0..50_000 {
            let r = next();
            let mut buf: Vec<u8> = if round % 3 == 0 {
                let mut v = valid.clone();
                let i = (r as usize) % v.len();
                v[i] ^= (r >> 32) as u8 | 1;
                v.truncate((r >> 40) as usize % (v.len() + 1));
                v
            } else {
                let len = (r % 80) as usize;
                (0..len).map(|_| next() as u8).collect()
            };
            if round % 2 == 0 && !buf.is_empty() {
                buf[0] = 0x80 | (buf[0] & 0x3F);
            }
            let _ = rx.unprotect_rtp_into(&buf, &mut out);
            let _ = rx.unprotect_rtcp_into(&buf, &mut out);
            let _ = tx.protect_rtp_into(&buf, &mut out);
            let _ = tx.protect_rtcp_into(&buf, &mut out);
        }
        // Random traffic never authenticated, so no stream state was created.
        assert!(rx.rtp_streams.is_empty());
        assert!(rx.rtcp_streams.is_empty());
    }

    #[test]
    fn debug_hides_keys() {
        let c = SrtpContext::from_key_salt(
            SrtpSuite::AesCm128HmacSha1_80,
            &[MASTER_KEY.as_slice(), MASTER_SALT.as_slice()].concat(),
        )
        .unwrap();
        let s = format!("{c:?}");
        assert!(
            s.starts_with("SrtpContext { suite: AesCm128HmacSha1_80"),
            "{s}"
        );
        for needle in ["225", "e1", "E1", "0xe1", "198", "c6"] {
            assert!(!s.contains(needle), "{needle} in {s}");
        }
    }

    #[test]
    fn suite_names() {
        for suite in [
            SrtpSuite::AesCm128HmacSha1_80,
            SrtpSuite::AesCm128HmacSha1_32,
        ] {
            assert_eq!(SrtpSuite::from_sdes_name(suite.sdes_name()), Some(suite));
            assert_eq!(suite.rtcp_tag_len(), 10);
        }
        assert_eq!(SrtpSuite::AesCm128HmacSha1_32.rtp_tag_len(), 4);
        assert_eq!(SrtpSuite::from_sdes_name("AEAD_AES_128_GCM"), None);
    }
}
