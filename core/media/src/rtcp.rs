//! RTCP (RFC 3550 §6): compound packet parsing with the Appendix A.2 validity checks,
//! serialization, a builder for the usual SR/RR + SDES CNAME compound, per-source
//! reception statistics (Appendix A.3 loss, A.8 jitter, LSR/DLSR), round-trip time from a
//! report block (§6.4.1) and NTP timestamp helpers.
//!
//! Nothing here reads the clock: every "now" is an argument. NTP timestamps are the 64-bit
//! fixed-point form (32 bits of seconds since 1900, 32 bits of fraction); the caller makes
//! them, for instance with [`ntp_from_system_time`] on a `SystemTime` it read itself.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use thiserror::Error;

use crate::rtp::{SeqExtender, SeqStatus};

/// Packet type of a sender report.
pub const PT_SR: u8 = 200;
/// Packet type of a receiver report.
pub const PT_RR: u8 = 201;
/// Packet type of a source description.
pub const PT_SDES: u8 = 202;
/// Packet type of a goodbye.
pub const PT_BYE: u8 = 203;
/// Packet type of an application-defined packet.
pub const PT_APP: u8 = 204;

/// SDES item type of the canonical name.
pub const SDES_CNAME: u8 = 1;

/// Most report blocks one SR or RR can carry (5-bit count field).
pub const MAX_REPORT_BLOCKS: usize = 31;

/// Seconds between the NTP epoch (1900) and the Unix epoch (1970).
pub const NTP_UNIX_OFFSET_SECS: u64 = 2_208_988_800;

/// Why an RTCP packet could not be parsed or built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum RtcpError {
    /// Fewer bytes than a header or than the length field announces.
    #[error("RTCP packet truncated")]
    Truncated,
    /// Version field is not 2.
    #[error("unsupported RTCP version {0}")]
    BadVersion(u8),
    /// The compound packet does not start with an SR or RR (RFC 3550 A.2).
    #[error("compound RTCP must start with SR or RR, found packet type {0}")]
    FirstNotReport(u8),
    /// Padding on a packet that is not the last of the compound, or a bad padding count.
    #[error("invalid RTCP padding")]
    BadPadding,
    /// The length fields do not add up to the datagram length (RFC 3550 A.2).
    #[error("RTCP lengths do not add up to the packet size")]
    BadLength,
    /// A packet body is too short for its count field, or an SDES chunk is malformed.
    #[error("malformed RTCP packet of type {0}")]
    Malformed(u8),
    /// Building: a field does not fit its wire width (count, item length, word length).
    #[error("RTCP field too large to encode")]
    TooLarge,
    /// Building: the compound would be empty.
    #[error("empty RTCP compound packet")]
    Empty,
}

/// Sender information of an SR (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SenderInfo {
    /// 64-bit NTP timestamp of the report.
    pub ntp_timestamp: u64,
    /// RTP timestamp corresponding to the same instant.
    pub rtp_timestamp: u32,
    /// Sender's packet count.
    pub packet_count: u32,
    /// Sender's payload octet count.
    pub octet_count: u32,
}

/// One reception report block (RFC 3550 §6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReportBlock {
    /// Source this block is about.
    pub ssrc: u32,
    /// Fraction lost since the previous report, in 1/256.
    pub fraction_lost: u8,
    /// Cumulative number of packets lost, a 24-bit signed value on the wire
    /// (serialization clamps to -8388608..=8388607).
    pub cumulative_lost: i32,
    /// Extended highest sequence number received (low 32 bits).
    pub extended_highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received from the source (LSR).
    pub last_sr: u32,
    /// Delay since that SR, in 1/65536 s (DLSR).
    pub delay_since_last_sr: u32,
}

/// A sender report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SenderReport {
    /// SSRC of the sender.
    pub ssrc: u32,
    /// Sender information block.
    pub sender_info: SenderInfo,
    /// Reception report blocks (at most 31).
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension bytes, kept raw.
    pub profile_extension: Vec<u8>,
}

/// A receiver report.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReceiverReport {
    /// SSRC of the packet sender.
    pub ssrc: u32,
    /// Reception report blocks (at most 31).
    pub reports: Vec<ReportBlock>,
    /// Profile-specific extension bytes, kept raw.
    pub profile_extension: Vec<u8>,
}

/// One SDES item: type and raw value (at most 255 bytes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesItem {
    /// Item type (1 = CNAME, 2 = NAME, ...).
    pub item_type: u8,
    /// Item value; text items are UTF-8.
    pub value: Vec<u8>,
}

/// One SDES chunk: a source and its items.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SdesChunk {
    /// Source described.
    pub ssrc: u32,
    /// Items, in wire order.
    pub items: Vec<SdesItem>,
}

impl SdesChunk {
    /// A chunk with only a CNAME item.
    pub fn cname(ssrc: u32, cname: &str) -> Self {
        SdesChunk {
            ssrc,
            items: vec![SdesItem {
                item_type: SDES_CNAME,
                value: cname.as_bytes().to_vec(),
            }],
        }
    }

    /// The CNAME item of this chunk, if present and valid UTF-8.
    pub fn cname_str(&self) -> Option<&str> {
        self.items
            .iter()
            .find(|i| i.item_type == SDES_CNAME)
            .and_then(|i| std::str::from_utf8(&i.value).ok())
    }
}

/// A goodbye packet.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bye {
    /// Sources leaving.
    pub sources: Vec<u32>,
    /// Optional reason (UTF-8 text on the wire, kept raw).
    pub reason: Option<Vec<u8>>,
}

/// An application-defined packet, kept raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct App {
    /// Subtype (5 bits).
    pub subtype: u8,
    /// Source.
    pub ssrc: u32,
    /// Four ASCII characters naming the application.
    pub name: [u8; 4],
    /// Application data (a multiple of 4 bytes when built).
    pub data: Vec<u8>,
}

/// One RTCP packet inside a compound packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtcpPacket {
    /// SR (200).
    SenderReport(SenderReport),
    /// RR (201).
    ReceiverReport(ReceiverReport),
    /// SDES (202).
    SourceDescription(Vec<SdesChunk>),
    /// BYE (203).
    Bye(Bye),
    /// APP (204).
    App(App),
    /// Any other packet type (feedback, XR, ...), kept raw with padding removed.
    Other {
        /// Packet type.
        packet_type: u8,
        /// The 5-bit count / format field.
        count: u8,
        /// Body after the 4-byte header.
        body: Vec<u8>,
    },
}

/// A compound RTCP packet: one or more RTCP packets in one datagram.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CompoundPacket {
    /// The packets, in wire order.
    pub packets: Vec<RtcpPacket>,
}

fn be32(b: &[u8], at: usize) -> Result<u32, RtcpError> {
    b.get(at..at + 4)
        .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(RtcpError::Truncated)
}

fn parse_report_block(b: &[u8]) -> Result<ReportBlock, RtcpError> {
    let word = be32(b, 4)?;
    let lost24 = word & 0x00FF_FFFF;
    // Sign-extend the 24-bit cumulative loss.
    let cumulative_lost = ((lost24 << 8) as i32) >> 8;
    Ok(ReportBlock {
        ssrc: be32(b, 0)?,
        fraction_lost: (word >> 24) as u8,
        cumulative_lost,
        extended_highest_seq: be32(b, 8)?,
        jitter: be32(b, 12)?,
        last_sr: be32(b, 16)?,
        delay_since_last_sr: be32(b, 20)?,
    })
}

fn parse_blocks(
    pt: u8,
    body: &[u8],
    count: usize,
) -> Result<(Vec<ReportBlock>, Vec<u8>), RtcpError> {
    if body.len() < 24 * count {
        return Err(RtcpError::Malformed(pt));
    }
    let reports = body[..24 * count]
        .chunks_exact(24)
        .map(parse_report_block)
        .collect::<Result<_, _>>()?;
    Ok((reports, body[24 * count..].to_vec()))
}

fn parse_sdes(body: &[u8], count: usize) -> Result<Vec<SdesChunk>, RtcpError> {
    let bad = RtcpError::Malformed(PT_SDES);
    let mut chunks = Vec::with_capacity(count.min(body.len() / 8 + 1));
    let mut i = 0;
    for _ in 0..count {
        let ssrc = be32(body, i).map_err(|_| bad)?;
        i += 4;
        let mut items = Vec::new();
        loop {
            let item_type = *body.get(i).ok_or(bad)?;
            if item_type == 0 {
                // End of list: skip the null octet(s) up to the next 32-bit boundary.
                i = (i + 4) & !3;
                break;
            }
            let len = usize::from(*body.get(i + 1).ok_or(bad)?);
            let value = body.get(i + 2..i + 2 + len).ok_or(bad)?.to_vec();
            items.push(SdesItem { item_type, value });
            i += 2 + len;
        }
        if i > body.len() {
            return Err(bad);
        }
        chunks.push(SdesChunk { ssrc, items });
    }
    Ok(chunks)
}

fn parse_bye(body: &[u8], count: usize) -> Result<Bye, RtcpError> {
    let bad = RtcpError::Malformed(PT_BYE);
    if body.len() < 4 * count {
        return Err(bad);
    }
    let sources = (0..count)
        .map(|k| be32(body, 4 * k))
        .collect::<Result<_, _>>()?;
    let rest = &body[4 * count..];
    let reason = match rest.first() {
        None => None,
        Some(&len) => Some(rest.get(1..1 + usize::from(len)).ok_or(bad)?.to_vec()),
    };
    Ok(Bye { sources, reason })
}

impl RtcpPacket {
    fn parse_body(pt: u8, count: u8, body: &[u8]) -> Result<RtcpPacket, RtcpError> {
        let n = usize::from(count);
        Ok(match pt {
            PT_SR => {
                if body.len() < 24 {
                    return Err(RtcpError::Malformed(pt));
                }
                let ntp = (u64::from(be32(body, 4)?) << 32) | u64::from(be32(body, 8)?);
                let sender_info = SenderInfo {
                    ntp_timestamp: ntp,
                    rtp_timestamp: be32(body, 12)?,
                    packet_count: be32(body, 16)?,
                    octet_count: be32(body, 20)?,
                };
                let (reports, profile_extension) = parse_blocks(pt, &body[24..], n)?;
                RtcpPacket::SenderReport(SenderReport {
                    ssrc: be32(body, 0)?,
                    sender_info,
                    reports,
                    profile_extension,
                })
            }
            PT_RR => {
                let ssrc = be32(body, 0).map_err(|_| RtcpError::Malformed(pt))?;
                let (reports, profile_extension) = parse_blocks(pt, &body[4..], n)?;
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc,
                    reports,
                    profile_extension,
                })
            }
            PT_SDES => RtcpPacket::SourceDescription(parse_sdes(body, n)?),
            PT_BYE => RtcpPacket::Bye(parse_bye(body, n)?),
            PT_APP => {
                if body.len() < 8 {
                    return Err(RtcpError::Malformed(pt));
                }
                RtcpPacket::App(App {
                    subtype: count,
                    ssrc: be32(body, 0)?,
                    name: [body[4], body[5], body[6], body[7]],
                    data: body[8..].to_vec(),
                })
            }
            _ => RtcpPacket::Other {
                packet_type: pt,
                count,
                body: body.to_vec(),
            },
        })
    }

    /// The packet type octet.
    pub fn packet_type(&self) -> u8 {
        match self {
            RtcpPacket::SenderReport(_) => PT_SR,
            RtcpPacket::ReceiverReport(_) => PT_RR,
            RtcpPacket::SourceDescription(_) => PT_SDES,
            RtcpPacket::Bye(_) => PT_BYE,
            RtcpPacket::App(_) => PT_APP,
            RtcpPacket::Other { packet_type, .. } => *packet_type,
        }
    }

    /// Appends this packet to `out`. On error `out` is left as it was.
    pub fn write_into(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let start = out.len();
        let r = self.write_unchecked(out);
        if r.is_err() {
            out.truncate(start);
        }
        r
    }

    fn write_unchecked(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        let start = out.len();
        let count = match self {
            RtcpPacket::SenderReport(sr) => sr.reports.len(),
            RtcpPacket::ReceiverReport(rr) => rr.reports.len(),
            RtcpPacket::SourceDescription(chunks) => chunks.len(),
            RtcpPacket::Bye(bye) => bye.sources.len(),
            RtcpPacket::App(app) => usize::from(app.subtype),
            RtcpPacket::Other { count, .. } => usize::from(*count),
        };
        if count > 31 {
            return Err(RtcpError::TooLarge);
        }
        out.extend_from_slice(&[0x80 | count as u8, self.packet_type(), 0, 0]);
        match self {
            RtcpPacket::SenderReport(sr) => {
                out.extend_from_slice(&sr.ssrc.to_be_bytes());
                let si = &sr.sender_info;
                out.extend_from_slice(&si.ntp_timestamp.to_be_bytes());
                out.extend_from_slice(&si.rtp_timestamp.to_be_bytes());
                out.extend_from_slice(&si.packet_count.to_be_bytes());
                out.extend_from_slice(&si.octet_count.to_be_bytes());
                write_blocks(&sr.reports, out);
                out.extend_from_slice(&sr.profile_extension);
            }
            RtcpPacket::ReceiverReport(rr) => {
                out.extend_from_slice(&rr.ssrc.to_be_bytes());
                write_blocks(&rr.reports, out);
                out.extend_from_slice(&rr.profile_extension);
            }
            RtcpPacket::SourceDescription(chunks) => {
                for chunk in chunks {
                    out.extend_from_slice(&chunk.ssrc.to_be_bytes());
                    for item in &chunk.items {
                        let len =
                            u8::try_from(item.value.len()).map_err(|_| RtcpError::TooLarge)?;
                        if item.item_type == 0 {
                            return Err(RtcpError::Malformed(PT_SDES));
                        }
                        out.push(item.item_type);
                        out.push(len);
                        out.extend_from_slice(&item.value);
                    }
                    // At least one null octet, then up to the next 32-bit boundary.
                    out.push(0);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
            }
            RtcpPacket::Bye(bye) => {
                for s in &bye.sources {
                    out.extend_from_slice(&s.to_be_bytes());
                }
                if let Some(reason) = &bye.reason {
                    let len = u8::try_from(reason.len()).map_err(|_| RtcpError::TooLarge)?;
                    out.push(len);
                    out.extend_from_slice(reason);
                    while !(out.len() - start).is_multiple_of(4) {
                        out.push(0);
                    }
                }
            }
            RtcpPacket::App(app) => {
                out.extend_from_slice(&app.ssrc.to_be_bytes());
                out.extend_from_slice(&app.name);
                out.extend_from_slice(&app.data);
            }
            RtcpPacket::Other { body, .. } => out.extend_from_slice(body),
        }
        let len = out.len() - start;
        if !len.is_multiple_of(4) {
            return Err(RtcpError::BadLength);
        }
        let words = u16::try_from(len / 4 - 1).map_err(|_| RtcpError::TooLarge)?;
        out[start + 2..start + 4].copy_from_slice(&words.to_be_bytes());
        Ok(())
    }
}

fn write_blocks(blocks: &[ReportBlock], out: &mut Vec<u8>) {
    for b in blocks {
        out.extend_from_slice(&b.ssrc.to_be_bytes());
        let lost = b.cumulative_lost.clamp(-0x80_0000, 0x7F_FFFF) as u32 & 0x00FF_FFFF;
        out.extend_from_slice(&((u32::from(b.fraction_lost) << 24) | lost).to_be_bytes());
        out.extend_from_slice(&b.extended_highest_seq.to_be_bytes());
        out.extend_from_slice(&b.jitter.to_be_bytes());
        out.extend_from_slice(&b.last_sr.to_be_bytes());
        out.extend_from_slice(&b.delay_since_last_sr.to_be_bytes());
    }
}

impl CompoundPacket {
    /// Parses a compound RTCP packet with the RFC 3550 Appendix A.2 checks: every packet
    /// has version 2, the first is an SR or RR, only the last may carry padding, and the
    /// length fields add up exactly to the datagram.
    pub fn parse(buf: &[u8]) -> Result<CompoundPacket, RtcpError> {
        Self::parse_inner(buf, true)
    }

    /// Like [`CompoundPacket::parse`] but without the "first packet is SR or RR" rule, for
    /// reduced-size RTCP (RFC 5506) such as a lone feedback packet.
    pub fn parse_reduced_size(buf: &[u8]) -> Result<CompoundPacket, RtcpError> {
        Self::parse_inner(buf, false)
    }

    fn parse_inner(buf: &[u8], require_report_first: bool) -> Result<CompoundPacket, RtcpError> {
        if buf.len() < 4 {
            return Err(RtcpError::Truncated);
        }
        if !buf.len().is_multiple_of(4) {
            return Err(RtcpError::BadLength);
        }
        let mut packets = Vec::new();
        let mut at = 0;
        while at < buf.len() {
            let hdr = buf.get(at..at + 4).ok_or(RtcpError::Truncated)?;
            let version = hdr[0] >> 6;
            if version != 2 {
                return Err(RtcpError::BadVersion(version));
            }
            let padded = hdr[0] & 0x20 != 0;
            let count = hdr[0] & 0x1F;
            let pt = hdr[1];
            if at == 0 && require_report_first && pt != PT_SR && pt != PT_RR {
                return Err(RtcpError::FirstNotReport(pt));
            }
            let len = 4 * (usize::from(u16::from_be_bytes([hdr[2], hdr[3]])) + 1);
            let end = at + len;
            if end > buf.len() {
                return Err(RtcpError::BadLength);
            }
            let mut body = &buf[at + 4..end];
            if padded {
                if end != buf.len() {
                    return Err(RtcpError::BadPadding);
                }
                let pad = usize::from(*body.last().ok_or(RtcpError::BadPadding)?);
                if pad == 0 || pad > body.len() {
                    return Err(RtcpError::BadPadding);
                }
                body = &body[..body.len() - pad];
            }
            packets.push(RtcpPacket::parse_body(pt, count, body)?);
            at = end;
        }
        Ok(CompoundPacket { packets })
    }

    /// Builds the usual compound of RFC 3550 §6.1: an SR (when `sender_info` is given) or
    /// an RR carrying up to 31 report blocks, further RRs for any remaining blocks, then an
    /// SDES with the CNAME of `ssrc`.
    pub fn report(
        ssrc: u32,
        sender_info: Option<SenderInfo>,
        reports: &[ReportBlock],
        cname: &str,
    ) -> Result<CompoundPacket, RtcpError> {
        if cname.len() > 255 {
            return Err(RtcpError::TooLarge);
        }
        let mut chunks = reports.chunks(MAX_REPORT_BLOCKS);
        let first = chunks.next().unwrap_or(&[]).to_vec();
        let mut packets = vec![match sender_info {
            Some(sender_info) => RtcpPacket::SenderReport(SenderReport {
                ssrc,
                sender_info,
                reports: first,
                profile_extension: Vec::new(),
            }),
            None => RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc,
                reports: first,
                profile_extension: Vec::new(),
            }),
        }];
        for rest in chunks {
            packets.push(RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc,
                reports: rest.to_vec(),
                profile_extension: Vec::new(),
            }));
        }
        packets.push(RtcpPacket::SourceDescription(vec![SdesChunk::cname(
            ssrc, cname,
        )]));
        Ok(CompoundPacket { packets })
    }

    /// Serializes into a new buffer.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RtcpError> {
        let mut out = Vec::with_capacity(128);
        self.write_into(&mut out)?;
        Ok(out)
    }

    /// Appends the serialized compound to `out`. On error `out` is left as it was.
    pub fn write_into(&self, out: &mut Vec<u8>) -> Result<(), RtcpError> {
        if self.packets.is_empty() {
            return Err(RtcpError::Empty);
        }
        let start = out.len();
        for p in &self.packets {
            if let Err(e) = p.write_into(out) {
                out.truncate(start);
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Converts a time since the Unix epoch to a 64-bit NTP timestamp. Seconds wrap modulo
/// 2^32 as NTP era 1 (from 2036) requires.
pub fn ntp_from_unix(since_unix_epoch: Duration) -> u64 {
    let secs = (since_unix_epoch.as_secs() + NTP_UNIX_OFFSET_SECS) & 0xFFFF_FFFF;
    let frac = (u64::from(since_unix_epoch.subsec_nanos()) << 32) / 1_000_000_000;
    (secs << 32) | frac
}

/// Converts a `SystemTime` the caller read to a 64-bit NTP timestamp; `None` before 1970.
pub fn ntp_from_system_time(t: SystemTime) -> Option<u64> {
    t.duration_since(UNIX_EPOCH).ok().map(ntp_from_unix)
}

/// Converts a 64-bit NTP timestamp (era 0, 1900–2036) to a time since the Unix epoch;
/// `None` for instants before 1970.
pub fn ntp_to_unix(ntp: u64) -> Option<Duration> {
    let secs = (ntp >> 32).checked_sub(NTP_UNIX_OFFSET_SECS)?;
    let nanos = ((ntp & 0xFFFF_FFFF) * 1_000_000_000) >> 32;
    Some(Duration::new(secs, nanos as u32))
}

/// The middle 32 bits of an NTP timestamp (16.16 fixed point), as used by LSR.
pub fn ntp_middle32(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

/// Converts a 16.16 "short NTP" value (DLSR, RTT) to a duration.
pub fn ntp_short_to_duration(v: u32) -> Duration {
    Duration::from_nanos((u64::from(v) * 1_000_000_000) >> 16)
}

/// Converts a duration to a 16.16 "short NTP" value, saturating at about 18 hours.
pub fn duration_to_ntp_short(d: Duration) -> u32 {
    let v = (d.as_nanos() << 16) / 1_000_000_000;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Round-trip time from a report block about our own stream that arrived at
/// `arrival_ntp` (RFC 3550 §6.4.1: A - LSR - DLSR, in 1/65536 s). `None` when the block
/// carries no LSR (the peer has not received an SR yet). A negative result, which only
/// clock resolution or a lying peer can produce, is reported as zero.
pub fn round_trip_time(block: &ReportBlock, arrival_ntp: u64) -> Option<Duration> {
    if block.last_sr == 0 {
        return None;
    }
    let a = ntp_middle32(arrival_ntp);
    let since_sr = a.wrapping_sub(block.last_sr);
    // Beyond half the 16.16 range the difference is really negative (A before LSR).
    if since_sr > 0x8000_0000 {
        return Some(Duration::ZERO);
    }
    Some(ntp_short_to_duration(
        since_sr.saturating_sub(block.delay_since_last_sr),
    ))
}

/// Reception statistics for one remote source: RFC 3550 A.1 sequence validation, A.3
/// loss accounting, A.8 interarrival jitter and the LSR/DLSR bookkeeping needed to build
/// report blocks.
#[derive(Debug, Clone)]
pub struct ReceptionStats {
    ssrc: u32,
    clock_rate: u32,
    seq: Option<SeqExtender>,
    require_probation: bool,
    expected_prior: u64,
    received_prior: u64,
    /// Relative transit time of the previous packet, in timestamp units.
    transit: Option<u32>,
    /// Jitter estimate scaled by 16 (A.8, integer form).
    jitter_q4: u32,
    /// (LSR, arrival time of that SR as NTP).
    last_sr: Option<(u32, u64)>,
}

impl ReceptionStats {
    /// Statistics for `ssrc` at `clock_rate` Hz; a new source goes through the A.1
    /// probation of [`crate::rtp::MIN_SEQUENTIAL`] packets.
    pub fn new(ssrc: u32, clock_rate: u32) -> Self {
        ReceptionStats {
            ssrc,
            clock_rate,
            seq: None,
            require_probation: true,
            expected_prior: 0,
            received_prior: 0,
            transit: None,
            jitter_q4: 0,
            last_sr: None,
        }
    }

    /// Like [`ReceptionStats::new`] but the source is valid from its first packet (for a
    /// source already authenticated by SRTP or signalled in SDP).
    pub fn new_validated(ssrc: u32, clock_rate: u32) -> Self {
        ReceptionStats {
            require_probation: false,
            ..Self::new(ssrc, clock_rate)
        }
    }

    /// The source these statistics describe.
    pub fn ssrc(&self) -> u32 {
        self.ssrc
    }

    /// Records an RTP packet: `rtp_timestamp` from its header and `arrival` its arrival
    /// time expressed in the same timestamp units (any origin, wrapping). Returns what
    /// A.1 decided; jitter is updated for every packet except a rejected jump.
    pub fn on_rtp(&mut self, seq: u16, rtp_timestamp: u32, arrival: u32) -> SeqStatus {
        let require_probation = self.require_probation;
        let ext = self.seq.get_or_insert_with(|| {
            if require_probation {
                SeqExtender::new(seq)
            } else {
                SeqExtender::new_validated(seq)
            }
        });
        let status = ext.update(seq);
        if let SeqStatus::Restarted(_) = status {
            // A.1 init_seq also resets the interval counters.
            self.expected_prior = 0;
            self.received_prior = 0;
        }
        if status != SeqStatus::BadJump {
            let transit = arrival.wrapping_sub(rtp_timestamp);
            if let Some(prev) = self.transit {
                let d = i64::from(transit.wrapping_sub(prev) as i32).abs();
                // J += (|D| - J) / 16, integer form of A.8 with J scaled by 16.
                let j = i64::from(self.jitter_q4);
                let next = j + d - ((j + 8) >> 4);
                self.jitter_q4 = next.clamp(0, i64::from(u32::MAX)) as u32;
            }
            self.transit = Some(transit);
        }
        status
    }

    /// Like [`ReceptionStats::on_rtp`] with the arrival time as a duration since any fixed
    /// origin; it is converted to timestamp units with the clock rate.
    pub fn on_rtp_at(&mut self, seq: u16, rtp_timestamp: u32, arrival: Duration) -> SeqStatus {
        let units = arrival.as_nanos() * u128::from(self.clock_rate) / 1_000_000_000;
        self.on_rtp(seq, rtp_timestamp, units as u32)
    }

    /// The source switched to a payload format with another RTP clock (a codec change in a
    /// renegotiation). Sequence and loss accounting go on; the jitter estimate is rescaled to
    /// the new clock and the next packet starts a new transit baseline (a transit measured
    /// in the old units would read as a jump).
    pub fn set_clock_rate(&mut self, clock_rate: u32) {
        if clock_rate == self.clock_rate || clock_rate == 0 {
            return;
        }
        let rescaled =
            u64::from(self.jitter_q4) * u64::from(clock_rate) / u64::from(self.clock_rate.max(1));
        self.jitter_q4 = u32::try_from(rescaled).unwrap_or(u32::MAX);
        self.clock_rate = clock_rate;
        self.transit = None;
    }

    /// Records an SR from this source: its NTP timestamp and the NTP time it arrived.
    pub fn on_sender_report(&mut self, sr_ntp_timestamp: u64, arrival_ntp: u64) {
        self.last_sr = Some((ntp_middle32(sr_ntp_timestamp), arrival_ntp));
    }

    /// Interarrival jitter in timestamp units.
    pub fn jitter(&self) -> u32 {
        self.jitter_q4 >> 4
    }

    /// Packets expected so far (A.3); 0 while on probation.
    pub fn expected(&self) -> u64 {
        self.seq.as_ref().map_or(0, SeqExtender::expected)
    }

    /// Packets received so far, duplicates included (A.1).
    pub fn received(&self) -> u64 {
        self.seq.as_ref().map_or(0, SeqExtender::received)
    }

    /// Cumulative packets lost (A.3): expected - received, which is negative when
    /// duplicates outnumber losses. Not clamped; see [`ReportBlock::cumulative_lost`].
    pub fn cumulative_lost(&self) -> i64 {
        self.expected() as i64 - self.received() as i64
    }

    /// Extended highest sequence number, if the source is valid.
    pub fn extended_highest_seq(&self) -> Option<u64> {
        self.seq
            .as_ref()
            .filter(|s| s.is_valid())
            .map(SeqExtender::extended_max)
    }

    /// Makes the report block for this source at `now_ntp` and starts a new reporting
    /// interval (the fraction lost covers the time since the previous call). `None` while
    /// the source is not yet valid.
    pub fn report_block(&mut self, now_ntp: u64) -> Option<ReportBlock> {
        let seq = self
            .seq
            .as_ref()
            .filter(|s| s.is_valid() && s.received() > 0)?;
        let expected = seq.expected();
        let received = seq.received();
        let extended_max = seq.extended_max();
        let lost = (expected as i64 - received as i64).clamp(-0x80_0000, 0x7F_FFFF) as i32;
        let expected_interval = expected.saturating_sub(self.expected_prior);
        let received_interval = received.saturating_sub(self.received_prior);
        self.expected_prior = expected;
        self.received_prior = received;
        let lost_interval = expected_interval as i64 - received_interval as i64;
        let fraction_lost = if expected_interval == 0 || lost_interval <= 0 {
            0
        } else {
            ((lost_interval << 8) / expected_interval as i64).min(255) as u8
        };
        let (last_sr, delay_since_last_sr) = match self.last_sr {
            Some((lsr, arrived)) => (
                lsr,
                ntp_middle32(now_ntp).wrapping_sub(ntp_middle32(arrived)),
            ),
            None => (0, 0),
        };
        Some(ReportBlock {
            ssrc: self.ssrc,
            fraction_lost,
            cumulative_lost: lost,
            extended_highest_seq: extended_max as u32,
            jitter: self.jitter(),
            last_sr,
            delay_since_last_sr,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(ssrc: u32) -> ReportBlock {
        ReportBlock {
            ssrc,
            fraction_lost: 12,
            cumulative_lost: -5,
            extended_highest_seq: 0x0001_0005,
            jitter: 77,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 0x0002_8000,
        }
    }

    #[test]
    fn sr_sdes_round_trip() {
        let si = SenderInfo {
            ntp_timestamp: 0xE000_0000_8000_0000,
            rtp_timestamp: 160,
            packet_count: 10,
            octet_count: 1600,
        };
        let c =
            CompoundPacket::report(0xCAFE, Some(si), &[block(1), block(2)], "alice@host").unwrap();
        let bytes = c.to_bytes().unwrap();
        // SR: 4 + 24 + 2*24 = 76 bytes; SDES: 4 + 4 + 2 + 10 = 20, + a null octet and
        // padding to the next word = 24.
        assert_eq!(bytes.len(), 76 + 24);
        assert_eq!(bytes[0], 0x82);
        assert_eq!(bytes[1], PT_SR);
        assert_eq!(&bytes[2..4], &[0, 18]);
        let parsed = CompoundPacket::parse(&bytes).unwrap();
        assert_eq!(parsed, c);
        match &parsed.packets[1] {
            RtcpPacket::SourceDescription(chunks) => {
                assert_eq!(chunks[0].cname_str(), Some("alice@host"));
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn rr_with_many_blocks_splits() {
        let blocks: Vec<_> = (0..40).map(block).collect();
        let c = CompoundPacket::report(7, None, &blocks, "x").unwrap();
        assert_eq!(c.packets.len(), 3);
        let parsed = CompoundPacket::parse(&c.to_bytes().unwrap()).unwrap();
        match (&parsed.packets[0], &parsed.packets[1]) {
            (RtcpPacket::ReceiverReport(a), RtcpPacket::ReceiverReport(b)) => {
                assert_eq!(a.reports.len(), 31);
                assert_eq!(b.reports.len(), 9);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn cname_length_multiple_of_four_gets_null_word() {
        // 4 + 2 + 2 = 8 bytes with cname "ab": needs a whole extra null word.
        let c = CompoundPacket::report(1, None, &[], "ab").unwrap();
        let bytes = c.to_bytes().unwrap();
        assert_eq!(
            &bytes[8..],
            &[
                0x81, PT_SDES, 0, 3, 0, 0, 0, 1, 1, 2, b'a', b'b', 0, 0, 0, 0
            ]
        );
        assert_eq!(CompoundPacket::parse(&bytes).unwrap(), c);
    }

    #[test]
    fn cumulative_lost_sign_and_clamp() {
        let mut b = block(1);
        b.cumulative_lost = -1;
        let c = CompoundPacket {
            packets: vec![RtcpPacket::ReceiverReport(ReceiverReport {
                ssrc: 1,
                reports: vec![b],
                profile_extension: vec![],
            })],
        };
        let bytes = c.to_bytes().unwrap();
        assert_eq!(&bytes[12..16], &[12, 0xFF, 0xFF, 0xFF]);
        assert_eq!(CompoundPacket::parse(&bytes).unwrap(), c);
        let mut big = c.clone();
        if let RtcpPacket::ReceiverReport(rr) = &mut big.packets[0] {
            rr.reports[0].cumulative_lost = 10_000_000;
        }
        let bytes = big.to_bytes().unwrap();
        assert_eq!(&bytes[13..16], &[0x7F, 0xFF, 0xFF]);
        if let RtcpPacket::ReceiverReport(rr) = &mut big.packets[0] {
            rr.reports[0].cumulative_lost = -10_000_000;
        }
        let bytes = big.to_bytes().unwrap();
        assert_eq!(&bytes[13..16], &[0x80, 0, 0]);
    }

    #[test]
    fn bye_app_and_other() {
        let c = CompoundPacket {
            packets: vec![
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: 1,
                    ..Default::default()
                }),
                RtcpPacket::App(App {
                    subtype: 3,
                    ssrc: 1,
                    name: *b"TEST",
                    data: vec![1, 2, 3, 4],
                }),
                RtcpPacket::Other {
                    packet_type: 205,
                    count: 1,
                    body: vec![0; 8],
                },
                RtcpPacket::Bye(Bye {
                    sources: vec![1, 2],
                    reason: Some(b"done".to_vec()),
                }),
            ],
        };
        let bytes = c.to_bytes().unwrap();
        assert_eq!(CompoundPacket::parse(&bytes).unwrap(), c);
        let no_reason = CompoundPacket {
            packets: vec![
                RtcpPacket::ReceiverReport(ReceiverReport {
                    ssrc: 1,
                    ..Default::default()
                }),
                RtcpPacket::Bye(Bye {
                    sources: vec![1],
                    reason: None,
                }),
            ],
        };
        assert_eq!(
            CompoundPacket::parse(&no_reason.to_bytes().unwrap()).unwrap(),
            no_reason
        );
    }

    #[test]
    fn validation_rules_of_a2() {
        let good = CompoundPacket::report(1, None, &[block(2)], "c")
            .unwrap()
            .to_bytes()
            .unwrap();
        assert!(CompoundPacket::parse(&good).is_ok());
        // Wrong version.
        let mut b = good.clone();
        b[0] = (b[0] & 0x3F) | 0x40;
        assert_eq!(CompoundPacket::parse(&b), Err(RtcpError::BadVersion(1)));
        // Second packet with wrong version.
        let mut b = good.clone();
        b[32] &= 0x3F;
        assert_eq!(CompoundPacket::parse(&b), Err(RtcpError::BadVersion(0)));
        // First not SR/RR.
        let sdes_only = RtcpPacket::SourceDescription(vec![SdesChunk::cname(1, "c")]);
        let mut b = Vec::new();
        sdes_only.write_into(&mut b).unwrap();
        assert_eq!(
            CompoundPacket::parse(&b),
            Err(RtcpError::FirstNotReport(PT_SDES))
        );
        assert!(CompoundPacket::parse_reduced_size(&b).is_ok());
        // Length that overruns, and trailing garbage.
        let mut b = good.clone();
        b[3] += 1; // the RR now swallows the SDES header: what follows is not RTCP
        assert!(CompoundPacket::parse(&b).is_err());
        let mut b = good.clone();
        b[35] += 1; // the last packet (SDES at offset 32) claims one word too many
        assert_eq!(CompoundPacket::parse(&b), Err(RtcpError::BadLength));
        let mut b = good.clone();
        b.extend_from_slice(&[0x80, 0, 0]);
        assert_eq!(CompoundPacket::parse(&b), Err(RtcpError::BadLength));
        // Padding on a non-last packet.
        let mut b = good.clone();
        b[0] |= 0x20;
        assert_eq!(CompoundPacket::parse(&b), Err(RtcpError::BadPadding));
        // Report count larger than the body.
        let mut b = good.clone();
        b[0] = 0x82;
        assert_eq!(CompoundPacket::parse(&b), Err(RtcpError::Malformed(PT_RR)));
        assert_eq!(CompoundPacket::parse(&[]), Err(RtcpError::Truncated));
        assert_eq!(
            CompoundPacket::parse(&[0x80, 201]),
            Err(RtcpError::Truncated)
        );
    }

    #[test]
    fn padding_on_last_packet_is_stripped() {
        let mut b = CompoundPacket::report(1, None, &[], "abc")
            .unwrap()
            .to_bytes()
            .unwrap();
        // Append 4 bytes of padding to the last packet (SDES at offset 8).
        b[8] |= 0x20;
        let words = u16::from_be_bytes([b[10], b[11]]) + 1;
        b[10..12].copy_from_slice(&words.to_be_bytes());
        b.extend_from_slice(&[0, 0, 0, 4]);
        let c = CompoundPacket::parse(&b).unwrap();
        assert_eq!(c, CompoundPacket::report(1, None, &[], "abc").unwrap());
        let n = b.len();
        b[n - 1] = 0;
        assert_eq!(CompoundPacket::parse(&b), Err(RtcpError::BadPadding));
        b[n - 1] = 200;
        assert_eq!(CompoundPacket::parse(&b), Err(RtcpError::BadPadding));
    }

    #[test]
    fn build_errors() {
        assert_eq!(CompoundPacket::default().to_bytes(), Err(RtcpError::Empty));
        let long = "x".repeat(256);
        assert_eq!(
            CompoundPacket::report(1, None, &[], &long),
            Err(RtcpError::TooLarge)
        );
        let c = CompoundPacket {
            packets: vec![RtcpPacket::App(App {
                subtype: 1,
                ssrc: 1,
                name: *b"abcd",
                data: vec![1],
            })],
        };
        let mut out = vec![7];
        assert_eq!(c.write_into(&mut out), Err(RtcpError::BadLength));
        assert_eq!(out, vec![7]);
        let c = CompoundPacket {
            packets: vec![RtcpPacket::Bye(Bye {
                sources: vec![0; 32],
                reason: None,
            })],
        };
        assert_eq!(c.to_bytes(), Err(RtcpError::TooLarge));
    }

    #[test]
    fn random_input_never_panics() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let seed = CompoundPacket::report(9, Some(SenderInfo::default()), &[block(3)], "seed")
            .unwrap()
            .to_bytes()
            .unwrap();
        for round in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut buf = seed.clone();
            if round % 2 == 0 {
                // Flip a few bytes of a valid packet.
                for k in 0..3 {
                    let i = ((x >> (k * 16)) as usize) % buf.len();
                    buf[i] ^= (x >> (k * 8 + 3)) as u8;
                }
                buf.truncate(((x >> 40) as usize) % (buf.len() + 1));
            } else {
                let len = ((x % 25) * 4) as usize;
                buf = (0..len)
                    .map(|i| (x >> (i % 8 * 8)) as u8 ^ (i as u8))
                    .collect();
                if let Some(b) = buf.first_mut() {
                    *b = 0x80 | (*b & 0x1F);
                }
            }
            if let Ok(c) = CompoundPacket::parse_reduced_size(&buf) {
                let _ = c.to_bytes();
            }
        }
    }

    #[test]
    fn ntp_conversions() {
        let d = Duration::new(1_700_000_000, 500_000_000);
        let ntp = ntp_from_unix(d);
        assert_eq!(ntp >> 32, 1_700_000_000 + NTP_UNIX_OFFSET_SECS);
        assert_eq!(ntp & 0xFFFF_FFFF, 0x8000_0000);
        assert_eq!(ntp_to_unix(ntp), Some(d));
        assert_eq!(ntp_to_unix(5 << 32), None);
        let t = UNIX_EPOCH + d;
        assert_eq!(ntp_from_system_time(t), Some(ntp));
        assert_eq!(ntp_middle32(0x1122_3344_5566_7788), 0x3344_5566);
        assert_eq!(
            ntp_short_to_duration(0x0001_8000),
            Duration::from_millis(1500)
        );
        assert_eq!(
            duration_to_ntp_short(Duration::from_millis(1500)),
            0x0001_8000
        );
        assert_eq!(
            duration_to_ntp_short(Duration::from_secs(1 << 20)),
            u32::MAX
        );
    }

    #[test]
    fn rtt_from_report_block() {
        // RFC 3550 §6.4.1 example: A = 0xb710:8000 (46864.500 s), LSR = 0xb705:2000
        // (46853.125 s), DLSR = 0x0005:4000 (5.250 s) -> RTT 6.125 s.
        let b = ReportBlock {
            last_sr: 0xb705_2000,
            delay_since_last_sr: 0x0005_4000,
            ..block(1)
        };
        let arrival = 0xb710_8000u64 << 16;
        assert_eq!(
            round_trip_time(&b, arrival),
            Some(Duration::from_millis(6125))
        );
        let none = ReportBlock { last_sr: 0, ..b };
        assert_eq!(round_trip_time(&none, arrival), None);
        let early = 0xb705_1000u64 << 16;
        assert_eq!(round_trip_time(&b, early), Some(Duration::ZERO));
        let too_much_delay = ReportBlock {
            delay_since_last_sr: 0x00FF_0000,
            ..b
        };
        assert_eq!(
            round_trip_time(&too_much_delay, arrival),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn reception_stats_loss_and_fraction() {
        let mut s = ReceptionStats::new(42, 8000);
        assert!(s.report_block(0).is_none());
        assert_eq!(s.on_rtp(100, 0, 0), SeqStatus::Probation);
        assert!(s.report_block(0).is_none());
        // Validated at 101; then receive 102..=110 except 105 and 107.
        let mut ts = 160;
        for seq in 101..=110u16 {
            if seq != 105 && seq != 107 {
                assert!(s.on_rtp(seq, ts, ts).is_valid());
            }
            ts += 160;
        }
        assert_eq!(s.expected(), 10);
        assert_eq!(s.received(), 8);
        assert_eq!(s.cumulative_lost(), 2);
        let rb = s.report_block(0).unwrap();
        assert_eq!(rb.ssrc, 42);
        assert_eq!(rb.cumulative_lost, 2);
        assert_eq!(rb.fraction_lost, (2 * 256 / 10) as u8);
        assert_eq!(rb.extended_highest_seq, 110);
        assert_eq!(rb.jitter, 0);
        // Next interval: 10 packets, no loss, plus a duplicate.
        for seq in 111..=120u16 {
            s.on_rtp(seq, ts, ts);
            ts += 160;
        }
        s.on_rtp(120, ts - 160, ts);
        let rb = s.report_block(0).unwrap();
        assert_eq!(rb.fraction_lost, 0);
        assert_eq!(rb.cumulative_lost, 1);
    }

    #[test]
    fn reception_stats_duplicates_make_loss_negative() {
        let mut s = ReceptionStats::new_validated(1, 8000);
        s.on_rtp(10, 0, 0);
        s.on_rtp(10, 0, 0);
        s.on_rtp(10, 0, 0);
        let rb = s.report_block(0).unwrap();
        assert_eq!(rb.cumulative_lost, -2);
        assert_eq!(rb.fraction_lost, 0);
    }

    #[test]
    fn reception_stats_wrap() {
        let mut s = ReceptionStats::new_validated(1, 8000);
        for (i, seq) in [65534u16, 65535, 0, 1].into_iter().enumerate() {
            let ts = i as u32 * 160;
            assert!(s.on_rtp(seq, ts, ts).is_valid());
        }
        let rb = s.report_block(0).unwrap();
        assert_eq!(rb.extended_highest_seq, 0x0001_0001);
        assert_eq!(rb.cumulative_lost, 0);
    }

    #[test]
    fn jitter_follows_a8() {
        // Packets every 20 ms (160 units) arrive alternately 0 and 80 units late:
        // |D| = 80 each time, so J converges to 80 from below (J += (80 - J)/16).
        let mut s = ReceptionStats::new_validated(1, 8000);
        let mut expect = 0.0f64;
        for i in 0..200u32 {
            let ts = i * 160;
            let arrival = ts + if i % 2 == 1 { 80 } else { 0 } + 1000;
            s.on_rtp(i as u16, ts, arrival);
            if i > 0 {
                expect += (80.0 - expect) / 16.0;
            }
        }
        assert!(
            (f64::from(s.jitter()) - expect).abs() <= 1.0,
            "{} vs {expect}",
            s.jitter()
        );
        assert!(s.jitter() >= 78);
    }

    #[test]
    fn jitter_with_duration_arrivals() {
        let mut s = ReceptionStats::new_validated(1, 48_000);
        // 20 ms packets (960 units), second one arrives 5 ms late (240 units).
        s.on_rtp_at(1, 0, Duration::from_millis(100));
        s.on_rtp_at(2, 960, Duration::from_millis(125));
        // J = |D| / 16 = 240 / 16 = 15.
        assert_eq!(s.jitter(), 15);
    }

    #[test]
    fn a_codec_change_rescales_jitter_and_keeps_the_loss_count() {
        // A renegotiation switches the source from Opus (48 kHz) to PCMU (8 kHz) mid-stream:
        // the sequence numbers go on, the timestamps jump to another scale.
        let mut s = ReceptionStats::new_validated(1, 48_000);
        s.on_rtp_at(1, 0, Duration::from_millis(100));
        s.on_rtp_at(2, 960, Duration::from_millis(125));
        assert_eq!(s.jitter(), 15);
        s.set_clock_rate(8000);
        // 15 units at 48 kHz are 2.5 units at 8 kHz (integer: 2).
        assert_eq!(s.jitter(), 2);
        // Packet 3 is lost; packet 4 arrives on time in the new clock. Without a new transit
        // baseline its timestamp in the new scale would count as a jump of seconds.
        s.on_rtp_at(4, 5_000_000, Duration::from_millis(165));
        s.on_rtp_at(5, 5_000_160, Duration::from_millis(185));
        assert!(s.jitter() <= 2, "{}", s.jitter());
        assert_eq!(s.cumulative_lost(), 1);
    }

    #[test]
    fn lsr_dlsr_bookkeeping() {
        let mut s = ReceptionStats::new_validated(5, 8000);
        s.on_rtp(1, 0, 0);
        let sr_ntp = 0xb705_2000u64 << 16 | 0x1234;
        let arrival = 0xb70a_0000u64 << 16;
        s.on_sender_report(sr_ntp, arrival);
        let now = arrival + (0x0005_4000u64 << 16);
        let rb = s.report_block(now).unwrap();
        assert_eq!(rb.last_sr, 0xb705_2000);
        assert_eq!(rb.delay_since_last_sr, 0x0005_4000);
    }
}
