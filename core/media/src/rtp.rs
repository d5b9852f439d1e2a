//! RTP packets (RFC 3550 §5.1): parsing, serialization, the rtcp-mux demultiplexing test
//! (RFC 5761 §4) and sequence-number extension with the RFC 3550 Appendix A.1 source
//! validation rules.
//!
//! Parsing never panics: every malformed input is reported as an [`RtpError`].
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |V=2|P|X|  CC   |M|     PT      |       sequence number         |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                           timestamp                           |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |           synchronization source (SSRC) identifier            |
//! +=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+=+
//! |            contributing source (CSRC) identifiers             |
//! |                             ....                              |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |      defined by profile       |           length              |  (if X)
//! |                        header extension                       |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |                 payload ...   |  padding ...  | padding count |  (if P)
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```

use thiserror::Error;

/// The only RTP version this crate speaks (RFC 3550 §5.1).
pub const RTP_VERSION: u8 = 2;

/// Length of the fixed RTP header, without CSRCs or extension.
pub const RTP_FIXED_HEADER_LEN: usize = 12;

/// Largest number of CSRC identifiers a header can carry (the CC field has 4 bits).
pub const MAX_CSRCS: usize = 15;

/// Header-extension profile value of RFC 8285 one-byte header extensions.
pub const EXTENSION_PROFILE_ONE_BYTE: u16 = 0xBEDE;

/// Header-extension profile value of RFC 8285 two-byte header extensions (low 4 bits are
/// "appbits" and may be anything).
pub const EXTENSION_PROFILE_TWO_BYTE: u16 = 0x1000;

/// Why an RTP packet could not be parsed or serialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtpError {
    /// The buffer ends before the header it announces.
    #[error("RTP packet truncated: need {needed} bytes, have {have}")]
    Truncated {
        /// Bytes the header requires.
        needed: usize,
        /// Bytes available.
        have: usize,
    },
    /// The version field is not 2.
    #[error("unsupported RTP version {0}")]
    BadVersion(u8),
    /// The padding bit is set but the padding count is zero or longer than the payload.
    #[error("invalid RTP padding count {0}")]
    BadPadding(u8),
    /// An RFC 8285 header-extension element runs past the extension block.
    #[error("malformed RTP header extension element")]
    BadExtensionElement,
    /// Serialization: more than 15 CSRCs.
    #[error("too many CSRCs: {0} (at most 15)")]
    TooManyCsrcs(usize),
    /// Serialization: payload type above 127.
    #[error("payload type {0} does not fit in 7 bits")]
    BadPayloadType(u8),
    /// Serialization: extension data is not a whole number of 32-bit words, or is too long.
    #[error("header extension of {0} bytes is not a multiple of 4 or exceeds 65535 words")]
    BadExtensionLength(usize),
}

/// A raw RTP header extension (RFC 3550 §5.3.1): the 16-bit profile value and the extension
/// bytes (always a multiple of 4 long). RFC 8285 elements can be read with
/// [`RtpExtension::elements`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpExtension {
    /// "Defined by profile" field: `0xBEDE` for one-byte, `0x100X` for two-byte elements.
    pub profile: u16,
    /// Extension data, without the 4-byte extension header.
    pub data: Vec<u8>,
}

/// One RFC 8285 header-extension element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionElement<'a> {
    /// Element ID (1..=14 for one-byte, 1..=255 for two-byte).
    pub id: u8,
    /// Element data.
    pub data: &'a [u8],
}

impl RtpExtension {
    /// True when the profile announces RFC 8285 one-byte elements.
    pub fn is_one_byte(&self) -> bool {
        self.profile == EXTENSION_PROFILE_ONE_BYTE
    }

    /// True when the profile announces RFC 8285 two-byte elements.
    pub fn is_two_byte(&self) -> bool {
        self.profile & 0xFFF0 == EXTENSION_PROFILE_TWO_BYTE
    }

    /// Decodes RFC 8285 elements. Returns an empty list for other profiles, and
    /// [`RtpError::BadExtensionElement`] when an element runs past the block.
    pub fn elements(&self) -> Result<Vec<ExtensionElement<'_>>, RtpError> {
        let mut out = Vec::new();
        let d = &self.data[..];
        let mut i = 0;
        if self.is_one_byte() {
            while i < d.len() {
                let b = d[i];
                let id = b >> 4;
                if id == 0 {
                    // Padding byte (its length nibble must be 0 but we are lenient).
                    i += 1;
                    continue;
                }
                if id == 15 {
                    // Reserved: stop processing (RFC 8285 §4.2).
                    break;
                }
                let len = usize::from(b & 0x0F) + 1;
                let data = d
                    .get(i + 1..i + 1 + len)
                    .ok_or(RtpError::BadExtensionElement)?;
                out.push(ExtensionElement { id, data });
                i += 1 + len;
            }
        } else if self.is_two_byte() {
            while i < d.len() {
                let id = d[i];
                if id == 0 {
                    i += 1;
                    continue;
                }
                let len = usize::from(*d.get(i + 1).ok_or(RtpError::BadExtensionElement)?);
                let data = d
                    .get(i + 2..i + 2 + len)
                    .ok_or(RtpError::BadExtensionElement)?;
                out.push(ExtensionElement { id, data });
                i += 2 + len;
            }
        }
        Ok(out)
    }
}

/// A parsed RTP packet. Padding is stripped from `payload`; its length is kept in
/// `padding` so that [`RtpPacket::to_bytes`] reproduces the packet size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Marker bit.
    pub marker: bool,
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// 16-bit sequence number.
    pub sequence_number: u16,
    /// RTP timestamp.
    pub timestamp: u32,
    /// Synchronization source.
    pub ssrc: u32,
    /// Contributing sources (at most 15).
    pub csrcs: Vec<u32>,
    /// Header extension, if the X bit was set.
    pub extension: Option<RtpExtension>,
    /// Payload, without padding.
    pub payload: Vec<u8>,
    /// Number of padding octets including the count octet; 0 means no padding (P bit clear).
    pub padding: u8,
}

/// Positions of the parts of an RTP packet inside a buffer, found without copying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpLayout {
    /// Length of the header: fixed part, CSRCs and extension.
    pub header_len: usize,
    /// Number of padding octets at the end of the buffer (0 if the P bit is clear).
    pub padding: u8,
}

/// Reads the header of the RTP packet in `buf` and returns where the payload starts,
/// validating version and lengths. With `check_padding` the padding count is validated
/// too (pass `false` for encrypted packets, whose last octet is not yet readable).
pub fn rtp_layout(buf: &[u8], check_padding: bool) -> Result<RtpLayout, RtpError> {
    if buf.len() < RTP_FIXED_HEADER_LEN {
        return Err(RtpError::Truncated {
            needed: RTP_FIXED_HEADER_LEN,
            have: buf.len(),
        });
    }
    let version = buf[0] >> 6;
    if version != RTP_VERSION {
        return Err(RtpError::BadVersion(version));
    }
    let has_padding = buf[0] & 0x20 != 0;
    let has_extension = buf[0] & 0x10 != 0;
    let cc = usize::from(buf[0] & 0x0F);
    let mut header_len = RTP_FIXED_HEADER_LEN + 4 * cc;
    if buf.len() < header_len {
        return Err(RtpError::Truncated {
            needed: header_len,
            have: buf.len(),
        });
    }
    if has_extension {
        if buf.len() < header_len + 4 {
            return Err(RtpError::Truncated {
                needed: header_len + 4,
                have: buf.len(),
            });
        }
        let words = usize::from(u16::from_be_bytes([
            buf[header_len + 2],
            buf[header_len + 3],
        ]));
        header_len += 4 + 4 * words;
        if buf.len() < header_len {
            return Err(RtpError::Truncated {
                needed: header_len,
                have: buf.len(),
            });
        }
    }
    let mut padding = 0;
    if has_padding && check_padding {
        // `buf.len() >= header_len >= 12`, so the last octet exists.
        let count = buf[buf.len() - 1];
        if count == 0 || usize::from(count) > buf.len() - header_len {
            return Err(RtpError::BadPadding(count));
        }
        padding = count;
    }
    Ok(RtpLayout {
        header_len,
        padding,
    })
}

fn read_u32(b: &[u8], at: usize) -> u32 {
    // Callers bound-check first; a short slice yields 0 instead of panicking.
    match b.get(at..at + 4) {
        Some(s) => u32::from_be_bytes([s[0], s[1], s[2], s[3]]),
        None => 0,
    }
}

impl RtpPacket {
    /// Creates a packet with no CSRCs, extension or padding.
    pub fn new(payload_type: u8, sequence_number: u16, timestamp: u32, ssrc: u32) -> Self {
        RtpPacket {
            marker: false,
            payload_type,
            sequence_number,
            timestamp,
            ssrc,
            csrcs: Vec::new(),
            extension: None,
            payload: Vec::new(),
            padding: 0,
        }
    }

    /// Parses an RTP packet (RFC 3550 §5.1): version must be 2, the CSRC list and
    /// extension must fit, and a padding count must be between 1 and the bytes after the
    /// header.
    pub fn parse(buf: &[u8]) -> Result<RtpPacket, RtpError> {
        let layout = rtp_layout(buf, true)?;
        let cc = usize::from(buf[0] & 0x0F);
        let csrcs = (0..cc)
            .map(|i| read_u32(buf, RTP_FIXED_HEADER_LEN + 4 * i))
            .collect();
        let extension = if buf[0] & 0x10 != 0 {
            let at = RTP_FIXED_HEADER_LEN + 4 * cc;
            Some(RtpExtension {
                profile: u16::from_be_bytes([buf[at], buf[at + 1]]),
                data: buf[at + 4..layout.header_len].to_vec(),
            })
        } else {
            None
        };
        let end = buf.len() - usize::from(layout.padding);
        Ok(RtpPacket {
            marker: buf[1] & 0x80 != 0,
            payload_type: buf[1] & 0x7F,
            sequence_number: u16::from_be_bytes([buf[2], buf[3]]),
            timestamp: read_u32(buf, 4),
            ssrc: read_u32(buf, 8),
            csrcs,
            extension,
            payload: buf[layout.header_len..end].to_vec(),
            padding: layout.padding,
        })
    }

    /// Length of the header this packet serializes to.
    pub fn header_len(&self) -> usize {
        RTP_FIXED_HEADER_LEN
            + 4 * self.csrcs.len()
            + self.extension.as_ref().map_or(0, |e| 4 + e.data.len())
    }

    /// Total serialized length.
    pub fn len(&self) -> usize {
        self.header_len() + self.payload.len() + usize::from(self.padding)
    }

    /// True when the packet has neither payload nor padding.
    pub fn is_empty(&self) -> bool {
        self.payload.is_empty() && self.padding == 0
    }

    /// Serializes into a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RtpError> {
        let mut out = Vec::with_capacity(self.len());
        self.write_into(&mut out)?;
        Ok(out)
    }

    /// Appends the serialized packet to `out`. On error nothing is appended.
    pub fn write_into(&self, out: &mut Vec<u8>) -> Result<(), RtpError> {
        if self.csrcs.len() > MAX_CSRCS {
            return Err(RtpError::TooManyCsrcs(self.csrcs.len()));
        }
        if self.payload_type > 0x7F {
            return Err(RtpError::BadPayloadType(self.payload_type));
        }
        if let Some(ext) = &self.extension
            && (ext.data.len() % 4 != 0 || ext.data.len() / 4 > usize::from(u16::MAX))
        {
            return Err(RtpError::BadExtensionLength(ext.data.len()));
        }
        out.reserve(self.len());
        let mut b0 = RTP_VERSION << 6 | self.csrcs.len() as u8;
        if self.padding > 0 {
            b0 |= 0x20;
        }
        if self.extension.is_some() {
            b0 |= 0x10;
        }
        out.push(b0);
        out.push(u8::from(self.marker) << 7 | self.payload_type);
        out.extend_from_slice(&self.sequence_number.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        for csrc in &self.csrcs {
            out.extend_from_slice(&csrc.to_be_bytes());
        }
        if let Some(ext) = &self.extension {
            out.extend_from_slice(&ext.profile.to_be_bytes());
            out.extend_from_slice(&((ext.data.len() / 4) as u16).to_be_bytes());
            out.extend_from_slice(&ext.data);
        }
        out.extend_from_slice(&self.payload);
        if self.padding > 0 {
            out.extend(std::iter::repeat_n(0u8, usize::from(self.padding) - 1));
            out.push(self.padding);
        }
        Ok(())
    }
}

/// rtcp-mux demultiplexing (RFC 5761 §4): true when the second octet of a version-2 packet
/// lies in 192..=223, i.e. the packet is RTCP rather than RTP. Needs only the first two
/// bytes; shorter input is "not RTCP".
pub fn is_rtcp(first_bytes: &[u8]) -> bool {
    match first_bytes {
        [b0, b1, ..] => b0 >> 6 == RTP_VERSION && (192..=223).contains(b1),
        _ => false,
    }
}

const RTP_SEQ_MOD: u32 = 1 << 16;
/// RFC 3550 A.1: a forward jump below this many sequence numbers is an in-order gap.
pub const MAX_DROPOUT: u16 = 3000;
/// RFC 3550 A.1: a backward step up to this many sequence numbers is a reordered packet.
pub const MAX_MISORDER: u16 = 100;
/// RFC 3550 A.1: sequential packets needed before a new source is valid.
pub const MIN_SEQUENTIAL: u32 = 2;

/// What [`SeqExtender::update`] decided about one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeqStatus {
    /// In order (possibly after a gap below [`MAX_DROPOUT`]); carries the extended number.
    InOrder(u64),
    /// A duplicate or reordered packet within [`MAX_MISORDER`]; counted as received.
    Late(u64),
    /// A duplicate or reordered packet that precedes the first sequence number of the
    /// stream, so it has no extended number; counted as received as in RFC 3550 A.1.
    BeforeStart,
    /// Two sequential packets after a large jump: the source restarted and the sequence
    /// state was reset (RFC 3550 A.1 `init_seq`); carries the new extended number.
    Restarted(u64),
    /// The source is still on probation; the packet is not counted.
    Probation,
    /// A very large jump; the packet is not counted until the next one confirms it.
    BadJump,
}

impl SeqStatus {
    /// The extended sequence number, when the packet has one.
    pub fn extended(self) -> Option<u64> {
        match self {
            SeqStatus::InOrder(e) | SeqStatus::Late(e) | SeqStatus::Restarted(e) => Some(e),
            _ => None,
        }
    }

    /// True when the packet was accepted as part of a valid source.
    pub fn is_valid(self) -> bool {
        !matches!(self, SeqStatus::Probation | SeqStatus::BadJump)
    }
}

/// Extends 16-bit RTP sequence numbers to 64 bits, following RFC 3550 Appendix A.1
/// (`init_seq` / `update_seq`): a new source needs [`MIN_SEQUENTIAL`] sequential packets,
/// a forward step below [`MAX_DROPOUT`] is in order (a wrap counts a cycle), a backward
/// step within [`MAX_MISORDER`] is a late packet, anything else is a jump that is
/// accepted (and resets the state) only when the next packet follows it.
///
/// One deliberate difference from the C code: the probation test `seq == max_seq + 1`
/// uses 16-bit wrapping arithmetic, so a source whose first packets straddle 65535 → 0 is
/// validated too (in C the `u_int16` promotes to `int` and 65536 never matches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeqExtender {
    max_seq: u16,
    /// Shifted count of sequence-number cycles (a multiple of 65536).
    cycles: u64,
    base_seq: u16,
    bad_seq: u32,
    probation: u32,
    received: u64,
    /// Set by [`SeqExtender::new_validated`] until the first packet arrives.
    first_pending: bool,
}

impl SeqExtender {
    /// Starts tracking a source whose first packet has `seq`, with probation as in
    /// RFC 3550 A.1. The first packet itself counts towards [`MIN_SEQUENTIAL`]: feed it to
    /// [`SeqExtender::update`] as well.
    pub fn new(seq: u16) -> Self {
        let mut s = Self::blank();
        s.init_seq(seq);
        s.max_seq = seq.wrapping_sub(1);
        s.probation = MIN_SEQUENTIAL;
        s
    }

    /// Starts tracking a source that is already trusted (for instance because SRTP
    /// authenticated it): no probation. Feed the first packet to [`SeqExtender::update`]
    /// too; it is counted as in order and becomes the base sequence number.
    pub fn new_validated(seq: u16) -> Self {
        let mut s = Self::blank();
        s.init_seq(seq);
        s.first_pending = true;
        s
    }

    fn blank() -> Self {
        SeqExtender {
            max_seq: 0,
            cycles: 0,
            base_seq: 0,
            bad_seq: RTP_SEQ_MOD + 1,
            probation: 0,
            received: 0,
            first_pending: false,
        }
    }

    fn init_seq(&mut self, seq: u16) {
        self.base_seq = seq;
        self.max_seq = seq;
        self.bad_seq = RTP_SEQ_MOD + 1; // so seq == bad_seq is false
        self.cycles = 0;
        self.received = 0;
    }

    /// Processes one received sequence number (RFC 3550 A.1 `update_seq`).
    pub fn update(&mut self, seq: u16) -> SeqStatus {
        if self.first_pending {
            self.first_pending = false;
            self.init_seq(seq);
            self.received = 1;
            return SeqStatus::InOrder(u64::from(seq));
        }
        let udelta = seq.wrapping_sub(self.max_seq);
        if self.probation > 0 {
            // Packet is in sequence.
            if seq == self.max_seq.wrapping_add(1) {
                self.probation -= 1;
                self.max_seq = seq;
                if self.probation == 0 {
                    self.init_seq(seq);
                    self.received += 1;
                    return SeqStatus::InOrder(u64::from(seq));
                }
            } else {
                self.probation = MIN_SEQUENTIAL - 1;
                self.max_seq = seq;
            }
            return SeqStatus::Probation;
        }
        let status = if udelta < MAX_DROPOUT {
            // In order, with permissible gap (udelta == 0 is a duplicate of the highest).
            if udelta == 0 {
                SeqStatus::Late(self.cycles + u64::from(seq))
            } else {
                if seq < self.max_seq {
                    // Sequence number wrapped: count another 64K cycle.
                    self.cycles += u64::from(RTP_SEQ_MOD);
                }
                self.max_seq = seq;
                SeqStatus::InOrder(self.cycles + u64::from(seq))
            }
        } else if u32::from(udelta) <= RTP_SEQ_MOD - u32::from(MAX_MISORDER) {
            // The sequence number made a very large jump.
            if u32::from(seq) == self.bad_seq {
                // Two sequential packets: assume the other side restarted without telling
                // us, so just re-sync (i.e. pretend this was the first packet).
                self.init_seq(seq);
                SeqStatus::Restarted(u64::from(seq))
            } else {
                self.bad_seq = (u32::from(seq) + 1) & (RTP_SEQ_MOD - 1);
                return SeqStatus::BadJump;
            }
        } else {
            // Duplicate or reordered packet.
            if seq <= self.max_seq {
                SeqStatus::Late(self.cycles + u64::from(seq))
            } else if self.cycles >= u64::from(RTP_SEQ_MOD) {
                SeqStatus::Late(self.cycles - u64::from(RTP_SEQ_MOD) + u64::from(seq))
            } else {
                SeqStatus::BeforeStart
            }
        };
        self.received += 1;
        status
    }

    /// True once probation is over.
    pub fn is_valid(&self) -> bool {
        self.probation == 0
    }

    /// Extended highest sequence number received (cycles + max_seq).
    pub fn extended_max(&self) -> u64 {
        self.cycles + u64::from(self.max_seq)
    }

    /// The base sequence number (first packet of the valid source).
    pub fn base_seq(&self) -> u16 {
        self.base_seq
    }

    /// Number of 64K wraps seen.
    pub fn cycles(&self) -> u64 {
        self.cycles >> 16
    }

    /// Packets counted as received (RFC 3550 A.1 `received`).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// Packets expected: extended max - base + 1 (RFC 3550 A.3); 0 before validation.
    pub fn expected(&self) -> u64 {
        if !self.is_valid() || self.first_pending {
            return 0;
        }
        (self.extended_max() + 1).saturating_sub(u64::from(self.base_seq))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> RtpPacket {
        let mut p = RtpPacket::new(0, 0x1234, 0xDECAFBAD, 0xCAFEBABE);
        p.payload = vec![0xAB; 16];
        p
    }

    #[test]
    fn parse_minimal_packet() {
        let bytes = [
            0x80, 0x0f, 0x12, 0x34, 0xde, 0xca, 0xfb, 0xad, 0xca, 0xfe, 0xba, 0xbe, 1, 2, 3,
        ];
        let p = RtpPacket::parse(&bytes).unwrap();
        assert!(!p.marker);
        assert_eq!(p.payload_type, 15);
        assert_eq!(p.sequence_number, 0x1234);
        assert_eq!(p.timestamp, 0xdecafbad);
        assert_eq!(p.ssrc, 0xcafebabe);
        assert_eq!(p.payload, [1, 2, 3]);
        assert!(p.csrcs.is_empty());
        assert!(p.extension.is_none());
        assert_eq!(p.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn round_trip_with_everything() {
        let mut p = sample();
        p.marker = true;
        p.payload_type = 111;
        p.csrcs = vec![1, 2, 3];
        p.extension = Some(RtpExtension {
            profile: EXTENSION_PROFILE_ONE_BYTE,
            // id 1 len 1 (2 bytes) + padding.
            data: vec![0x11, 0xAA, 0xBB, 0x00],
        });
        p.padding = 4;
        let bytes = p.to_bytes().unwrap();
        assert_eq!(bytes.len(), p.len());
        assert_eq!(bytes[0], 0x80 | 0x20 | 0x10 | 3);
        assert_eq!(*bytes.last().unwrap(), 4);
        let q = RtpPacket::parse(&bytes).unwrap();
        assert_eq!(p, q);
        let ext = q.extension.unwrap();
        assert!(ext.is_one_byte());
        assert_eq!(
            ext.elements().unwrap(),
            vec![ExtensionElement {
                id: 1,
                data: &[0xAA, 0xBB]
            }]
        );
    }

    #[test]
    fn write_into_appends() {
        let p = sample();
        let mut out = vec![9];
        p.write_into(&mut out).unwrap();
        assert_eq!(out[0], 9);
        assert_eq!(&out[1..], &p.to_bytes().unwrap()[..]);
    }

    #[test]
    fn two_byte_extension_elements() {
        let ext = RtpExtension {
            profile: 0x1003,
            data: vec![0x05, 0x02, 0xAA, 0xBB, 0x00, 0x07, 0x00, 0x00],
        };
        assert!(ext.is_two_byte());
        let els = ext.elements().unwrap();
        assert_eq!(
            els[0],
            ExtensionElement {
                id: 5,
                data: &[0xAA, 0xBB]
            }
        );
        assert_eq!(els[1], ExtensionElement { id: 7, data: &[] });
        let bad = RtpExtension {
            profile: 0x1000,
            data: vec![0x05, 0x09, 0, 0],
        };
        assert_eq!(bad.elements(), Err(RtpError::BadExtensionElement));
        let bad1 = RtpExtension {
            profile: 0xBEDE,
            data: vec![0x1F, 0, 0, 0],
        };
        assert_eq!(bad1.elements(), Err(RtpError::BadExtensionElement));
    }

    #[test]
    fn malformed_packets_are_errors() {
        assert!(matches!(
            RtpPacket::parse(&[]),
            Err(RtpError::Truncated { .. })
        ));
        assert!(matches!(
            RtpPacket::parse(&[0x80; 11]),
            Err(RtpError::Truncated { .. })
        ));
        let mut b = sample().to_bytes().unwrap();
        b[0] = 0x40;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::BadVersion(1)));
        // CSRC count larger than the packet.
        let mut b = sample().to_bytes().unwrap();
        b.truncate(20);
        b[0] = 0x8F;
        assert!(matches!(
            RtpPacket::parse(&b),
            Err(RtpError::Truncated { .. })
        ));
        // Extension length past the end.
        let mut b = vec![
            0x90, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xBE, 0xDE, 0x00, 0x05,
        ];
        assert!(matches!(
            RtpPacket::parse(&b),
            Err(RtpError::Truncated { .. })
        ));
        b.truncate(14);
        assert!(matches!(
            RtpPacket::parse(&b),
            Err(RtpError::Truncated { .. })
        ));
        // Padding count of zero, and longer than the payload.
        let mut b = sample().to_bytes().unwrap();
        b[0] |= 0x20;
        *b.last_mut().unwrap() = 0;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::BadPadding(0)));
        *b.last_mut().unwrap() = 17;
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::BadPadding(17)));
        *b.last_mut().unwrap() = 16;
        assert_eq!(RtpPacket::parse(&b).unwrap().payload.len(), 0);
        // Padding bit with no byte after the header.
        let b = [0xA0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(RtpPacket::parse(&b), Err(RtpError::BadPadding(0)));
    }

    #[test]
    fn serialization_errors() {
        let mut p = sample();
        p.csrcs = vec![0; 16];
        assert_eq!(p.to_bytes(), Err(RtpError::TooManyCsrcs(16)));
        let mut p = sample();
        p.payload_type = 128;
        assert_eq!(p.to_bytes(), Err(RtpError::BadPayloadType(128)));
        let mut p = sample();
        p.extension = Some(RtpExtension {
            profile: 0xBEDE,
            data: vec![0; 3],
        });
        let mut out = Vec::new();
        assert_eq!(p.write_into(&mut out), Err(RtpError::BadExtensionLength(3)));
        assert!(out.is_empty());
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 64) as usize;
            let mut buf: Vec<u8> = (0..len)
                .map(|i| (x >> (i % 8 * 8)) as u8 ^ i as u8)
                .collect();
            if let Some(b) = buf.first_mut() {
                *b = (*b & 0x3F) | 0x80;
            }
            if let Ok(p) = RtpPacket::parse(&buf) {
                let again = p.to_bytes().unwrap();
                assert_eq!(RtpPacket::parse(&again).unwrap(), p);
                if let Some(e) = &p.extension {
                    let _ = e.elements();
                }
            }
            let _ = is_rtcp(&buf);
        }
    }

    #[test]
    fn rtcp_demux() {
        assert!(is_rtcp(&[0x80, 200]));
        assert!(is_rtcp(&[0x81, 201, 0, 7]));
        assert!(is_rtcp(&[0x80, 192]));
        assert!(is_rtcp(&[0x80, 223]));
        assert!(!is_rtcp(&[0x80, 191]));
        assert!(!is_rtcp(&[0x80, 224]));
        assert!(!is_rtcp(&[0x80, 0]));
        assert!(!is_rtcp(&[0x80, 0x80 | 96])); // RTP with marker, PT 96
        assert!(!is_rtcp(&[0x80]));
        assert!(!is_rtcp(&[0x00, 200]));
    }

    #[test]
    fn seq_probation_then_in_order() {
        let mut s = SeqExtender::new(100);
        assert_eq!(s.update(100), SeqStatus::Probation);
        assert!(!s.is_valid());
        assert_eq!(s.update(101), SeqStatus::InOrder(101));
        assert!(s.is_valid());
        assert_eq!(s.base_seq(), 101);
        assert_eq!(s.received(), 1);
        assert_eq!(s.update(102), SeqStatus::InOrder(102));
        assert_eq!(s.expected(), 2);
    }

    #[test]
    fn seq_probation_restarts_on_gap() {
        let mut s = SeqExtender::new(100);
        assert_eq!(s.update(100), SeqStatus::Probation);
        assert_eq!(s.update(105), SeqStatus::Probation);
        assert_eq!(s.update(106), SeqStatus::InOrder(106));
    }

    #[test]
    fn seq_probation_across_wrap() {
        let mut s = SeqExtender::new(65535);
        assert_eq!(s.update(65535), SeqStatus::Probation);
        assert_eq!(s.update(0), SeqStatus::InOrder(0));
        assert_eq!(s.update(1), SeqStatus::InOrder(1));
    }

    #[test]
    fn seq_wrap_and_reorder_across_wrap() {
        let mut s = SeqExtender::new_validated(65533);
        assert_eq!(s.update(65533), SeqStatus::InOrder(65533));
        assert_eq!(s.update(65535), SeqStatus::InOrder(65535));
        assert_eq!(s.update(1), SeqStatus::InOrder(65537));
        assert_eq!(s.cycles(), 1);
        // 65534 and 0 arrive late, after the wrap.
        assert_eq!(s.update(65534), SeqStatus::Late(65534));
        assert_eq!(s.update(0), SeqStatus::Late(65536));
        assert_eq!(s.update(2), SeqStatus::InOrder(65538));
        assert_eq!(s.extended_max(), 65538);
        assert_eq!(s.expected(), 65538 - 65533 + 1);
        assert_eq!(s.received(), 6);
        // Duplicate of the highest.
        assert_eq!(s.update(2), SeqStatus::Late(65538));
    }

    #[test]
    fn seq_gap_below_dropout_is_in_order() {
        let mut s = SeqExtender::new_validated(10);
        s.update(10);
        assert_eq!(
            s.update(10 + MAX_DROPOUT - 1),
            SeqStatus::InOrder(u64::from(MAX_DROPOUT + 9))
        );
    }

    #[test]
    fn seq_large_jump_needs_two_packets() {
        let mut s = SeqExtender::new_validated(10);
        s.update(10);
        s.update(11);
        assert_eq!(s.update(30000), SeqStatus::BadJump);
        assert_eq!(s.update(12), SeqStatus::InOrder(12));
        assert_eq!(s.update(40000), SeqStatus::BadJump);
        assert_eq!(s.update(40001), SeqStatus::Restarted(40001));
        assert_eq!(s.base_seq(), 40001);
        assert_eq!(s.received(), 1);
        assert_eq!(s.update(40002), SeqStatus::InOrder(40002));
    }

    #[test]
    fn seq_misorder_boundary() {
        let mut s = SeqExtender::new_validated(1000);
        s.update(1000);
        // Up to MAX_MISORDER behind is late; further behind is a jump.
        assert_eq!(s.update(1000 - 99), SeqStatus::Late(901));
        assert_eq!(s.update(1000 - 100), SeqStatus::BadJump);
    }

    #[test]
    fn seq_late_before_start() {
        let mut s = SeqExtender::new_validated(3);
        s.update(3);
        assert_eq!(s.update(65534), SeqStatus::BeforeStart);
        assert_eq!(s.update(1), SeqStatus::Late(1));
        assert_eq!(s.received(), 3);
    }
}
