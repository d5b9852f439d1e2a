//! The transport of a plain RTP or SDES-SRTP session (`RTP/AVP`, `RTP/SAVP`): SRTP/SRTCP with
//! the negotiated keys, RTCP reports (RFC 3550 §6), symmetric RTP latching (RFC 4961), and
//! SRTP contexts that survive renegotiation whenever their key does.

use std::fmt;
use std::net::SocketAddr;
use std::time::Instant;

use super::{ConnectionState, MediaError, MediaEvent, MediaTime, Outbox, RTCP_INTERVAL, Transmit};
use crate::pipeline::AudioPipeline;
use crate::rtcp::{self, Bye, CompoundPacket, RtcpPacket};
use crate::rtp::{RtpPacket, is_rtcp};
use crate::sdp::{Negotiated, SdesKey, SrtpSuite as SdpSuite};
use crate::srtp::{SrtpContext, SrtpError, SrtpSuite};

fn srtp_suite(suite: SdpSuite) -> SrtpSuite {
    match suite {
        SdpSuite::AesCm128HmacSha1_80 => SrtpSuite::AesCm128HmacSha1_80,
        SdpSuite::AesCm128HmacSha1_32 => SrtpSuite::AesCm128HmacSha1_32,
    }
}

/// One direction's SRTP context with the suite and key it was made from, so a renegotiation
/// can tell whether it must be rebuilt.
struct KeyedContext {
    suite: SdpSuite,
    key: SdesKey,
    context: SrtpContext,
}

impl KeyedContext {
    fn new(suite: SdpSuite, key: &SdesKey) -> Box<Self> {
        Box::new(Self {
            suite,
            key: key.clone(),
            context: SrtpContext::new(srtp_suite(suite), &key.master_key, &key.master_salt),
        })
    }

    fn is(&self, suite: SdpSuite, key: &SdesKey) -> bool {
        self.suite == suite && self.key == *key
    }
}

/// What a renegotiation does to one direction's SRTP context.
enum ContextChange {
    /// Same suite and key: the context goes on with its rollover counter and replay window.
    Keep,
    /// Another key (or SRTP switched on or off): a new context, or none.
    Replace(Option<Box<KeyedContext>>),
}

/// The SRTP part of a renegotiation, checked by [`RtpTransport::prepare_update`].
pub(super) struct SrtpChange {
    outbound: ContextChange,
    inbound: ContextChange,
}

/// RTP/RTCP over one UDP socket pair (or one port with rtcp-mux), optionally SDES-SRTP.
pub(super) struct RtpTransport {
    /// The RTP address in the peer's SDP.
    signalled_rtp: SocketAddr,
    /// Where RTP goes: the signalled address, or where the peer's packets come from.
    remote_rtp: SocketAddr,
    remote_rtcp: SocketAddr,
    rtcp_mux: bool,
    /// A valid packet arrived: media goes where the peer's packets come from.
    latched: bool,
    /// Protects what we send (our key).
    outbound: Option<Box<KeyedContext>>,
    /// Unprotects what we receive (the peer's key).
    inbound: Option<Box<KeyedContext>>,
    /// Keys our outbound contexts used before: never again (RFC 3711 §9.1).
    retired_outbound_keys: Vec<SdesKey>,
    cname: String,
    next_rtcp: Option<Instant>,
    sent_since_report: bool,
    closed: bool,
}

impl fmt::Debug for RtpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RtpTransport")
            .field("remote_rtp", &self.remote_rtp)
            .field("srtp", &self.outbound.as_ref().map(|c| c.suite))
            .field("latched", &self.latched)
            .field("closed", &self.closed)
            .finish_non_exhaustive()
    }
}

impl RtpTransport {
    /// The transport for a plain or SDES negotiation.
    pub(super) fn new(negotiated: &Negotiated, cname: String) -> Self {
        let pair = negotiated.srtp.as_ref();
        Self {
            signalled_rtp: negotiated.remote_rtp,
            remote_rtp: negotiated.remote_rtp,
            remote_rtcp: rtcp_destination(negotiated, negotiated.remote_rtp),
            rtcp_mux: negotiated.rtcp_mux,
            latched: false,
            outbound: pair.map(|p| KeyedContext::new(p.suite, &p.local)),
            inbound: pair.map(|p| KeyedContext::new(p.suite, &p.remote)),
            retired_outbound_keys: Vec::new(),
            cname,
            next_rtcp: None,
            sent_since_report: false,
            closed: false,
        }
    }

    /// Checks a renegotiation and builds the SRTP contexts it needs, changing nothing: a
    /// direction whose suite and key are unchanged keeps its context; our outbound context is
    /// never rebuilt with a key it already used ([`MediaError::SrtpKeyReuse`]).
    pub(super) fn prepare_update(&self, negotiated: &Negotiated) -> Result<SrtpChange, MediaError> {
        if negotiated.dtls.is_some() {
            return Err(MediaError::Renegotiation(
                "a plain or SDES session cannot switch to DTLS-SRTP",
            ));
        }
        let pair = negotiated.srtp.as_ref();
        let local = pair.map(|p| (p.suite, &p.local));
        let outbound = match (&self.outbound, local) {
            (Some(current), Some((suite, key))) if current.is(suite, key) => ContextChange::Keep,
            (None, None) => ContextChange::Keep,
            (current, wanted) => {
                if let Some((_, key)) = wanted {
                    // The suites share AES-CM and its key derivation: the same key under
                    // another suite repeats the keystream too.
                    let in_use = current.as_ref().is_some_and(|c| c.key == *key);
                    if in_use || self.retired_outbound_keys.contains(key) {
                        return Err(MediaError::SrtpKeyReuse);
                    }
                }
                ContextChange::Replace(wanted.map(|(suite, key)| KeyedContext::new(suite, key)))
            }
        };
        let remote = pair.map(|p| (p.suite, &p.remote));
        let inbound = match (&self.inbound, remote) {
            (Some(current), Some((suite, key))) if current.is(suite, key) => ContextChange::Keep,
            (None, None) => ContextChange::Keep,
            (_, wanted) => {
                ContextChange::Replace(wanted.map(|(suite, key)| KeyedContext::new(suite, key)))
            }
        };
        Ok(SrtpChange { outbound, inbound })
    }

    /// Applies a renegotiation checked by [`Self::prepare_update`].
    pub(super) fn apply_update(&mut self, negotiated: &Negotiated, change: SrtpChange) {
        if let ContextChange::Replace(context) = change.outbound {
            if let Some(old) = self.outbound.take() {
                self.retired_outbound_keys.push(old.key);
            }
            self.outbound = context;
        }
        if let ContextChange::Replace(context) = change.inbound {
            self.inbound = context;
        }
        if negotiated.remote_rtp != self.signalled_rtp {
            // A new address in the SDP: send there, and latch again to what answers.
            self.signalled_rtp = negotiated.remote_rtp;
            self.remote_rtp = negotiated.remote_rtp;
            self.latched = false;
        }
        self.rtcp_mux = negotiated.rtcp_mux;
        self.remote_rtcp = rtcp_destination(negotiated, self.remote_rtp);
    }

    /// Sends RTP (and muxed RTCP) to `remote` from now on, whatever packets come from: the
    /// pair ICE nominated replaces latching.
    pub(super) fn steer(&mut self, remote: SocketAddr) {
        if self.remote_rtp != remote {
            self.remote_rtp = remote;
            if self.rtcp_mux {
                self.remote_rtcp = remote;
            }
        }
        self.latched = true;
    }

    /// Where the connection stands: plain RTP needs no setup.
    pub(super) fn state(&self) -> ConnectionState {
        if self.closed {
            ConnectionState::Closed
        } else {
            ConnectionState::Connected
        }
    }

    /// Sends an RTCP report when one is due (RFC 3550 §6.2: the first after half the
    /// interval).
    pub(super) fn handle_timeout(
        &mut self,
        now: MediaTime,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        if self.closed {
            return;
        }
        match self.next_rtcp {
            None => self.next_rtcp = Some(now.instant + RTCP_INTERVAL / 2),
            Some(at) if at <= now.instant => {
                self.send_report(now, pipeline, out, false);
                self.next_rtcp = Some(now.instant + RTCP_INTERVAL);
            }
            Some(_) => {}
        }
    }

    /// When the next RTCP report is due; `None` once closed.
    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        if self.closed { None } else { self.next_rtcp }
    }

    /// Protects and queues the pipeline's packets.
    pub(super) fn send_pending(&mut self, pipeline: &mut AudioPipeline, out: &mut Outbox) {
        let ssrc = pipeline.ssrc();
        while let Some(outgoing) = pipeline.poll_outgoing() {
            let Ok(plain) = outgoing.into_packet(ssrc).to_bytes() else {
                continue;
            };
            let bytes = match &mut self.outbound {
                Some(keyed) => match keyed.context.protect_rtp(&plain) {
                    Ok(bytes) => bytes,
                    Err(_) => continue,
                },
                None => plain,
            };
            self.sent_since_report = true;
            out.transmits.push_back(Transmit {
                to: self.remote_rtp,
                bytes,
            });
        }
    }

    /// Handles one datagram: RTP, or RTCP (multiplexed or on the RTCP port).
    pub(super) fn handle_datagram(
        &mut self,
        now: MediaTime,
        from: SocketAddr,
        bytes: &[u8],
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        if self.closed {
            return;
        }
        self.handle_timeout(now, pipeline, out);
        if is_rtcp(bytes) {
            self.handle_rtcp(now, bytes, pipeline, out);
        } else {
            self.handle_rtp(now, from, bytes, pipeline, out);
        }
    }

    fn handle_rtp(
        &mut self,
        now: MediaTime,
        from: SocketAddr,
        bytes: &[u8],
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        let plain = match &mut self.inbound {
            Some(keyed) => match keyed.context.unprotect_rtp(bytes) {
                Ok(plain) => plain,
                Err(SrtpError::Replay) => {
                    out.drops.replayed += 1;
                    return;
                }
                // Plain RTP on an SRTP session fails authentication too.
                Err(SrtpError::AuthFailed) => {
                    out.drops.auth_failed += 1;
                    return;
                }
                Err(_) => {
                    out.drops.malformed += 1;
                    return;
                }
            },
            None => bytes.to_vec(),
        };
        let Ok(packet) = RtpPacket::parse(&plain) else {
            out.drops.malformed += 1;
            return;
        };
        if !pipeline.accepts(packet.payload_type) {
            out.drops.unknown_payload += 1;
            return;
        }
        // Symmetric RTP (RFC 4961): answer where the valid packets come from.
        if from != self.remote_rtp && !self.latched {
            self.remote_rtp = from;
            if self.rtcp_mux {
                self.remote_rtcp = from;
            }
            out.events.push_back(MediaEvent::Latched { remote: from });
        }
        self.latched = true;
        if let Some(digit) = pipeline.receive(now.instant, packet) {
            out.events.push_back(MediaEvent::Dtmf { digit });
        }
    }

    fn handle_rtcp(
        &mut self,
        now: MediaTime,
        bytes: &[u8],
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
    ) {
        let plain = match &mut self.inbound {
            Some(keyed) => match keyed.context.unprotect_rtcp(bytes) {
                Ok(plain) => plain,
                Err(SrtpError::Replay) => {
                    out.drops.replayed += 1;
                    return;
                }
                Err(_) => {
                    out.drops.auth_failed += 1;
                    return;
                }
            },
            None => bytes.to_vec(),
        };
        let Ok(compound) = CompoundPacket::parse(&plain) else {
            out.drops.malformed += 1;
            return;
        };
        let ssrc = pipeline.ssrc();
        for packet in &compound.packets {
            let (sender, blocks) = match packet {
                RtcpPacket::SenderReport(sr) => (Some(sr), &sr.reports),
                RtcpPacket::ReceiverReport(rr) => (None, &rr.reports),
                _ => continue,
            };
            if let (Some(sr), Some(reception)) = (sender, pipeline.reception_mut())
                && sr.ssrc == reception.ssrc()
            {
                reception.on_sender_report(sr.sender_info.ntp_timestamp, now.ntp);
            }
            for block in blocks.iter().filter(|b| b.ssrc == ssrc) {
                if let Some(rtt) = rtcp::round_trip_time(block, now.ntp) {
                    pipeline.set_round_trip_time(rtt);
                }
            }
        }
    }

    /// Ends the session with a last report and an RTCP BYE (RFC 3550 §6.6).
    pub(super) fn close(&mut self, now: MediaTime, pipeline: &mut AudioPipeline, out: &mut Outbox) {
        if self.closed {
            return;
        }
        self.send_report(now, pipeline, out, true);
        self.closed = true;
    }

    fn send_report(
        &mut self,
        now: MediaTime,
        pipeline: &mut AudioPipeline,
        out: &mut Outbox,
        bye: bool,
    ) {
        let blocks: Vec<_> = pipeline
            .reception_mut()
            .and_then(|r| r.report_block(now.ntp))
            .into_iter()
            .collect();
        let sender_info = self
            .sent_since_report
            .then(|| pipeline.sender_info(now.ntp));
        self.sent_since_report = false;
        let ssrc = pipeline.ssrc();
        let Ok(mut compound) = CompoundPacket::report(ssrc, sender_info, &blocks, &self.cname)
        else {
            return;
        };
        if bye {
            compound.packets.push(RtcpPacket::Bye(Bye {
                sources: vec![ssrc],
                reason: None,
            }));
        }
        let Ok(plain) = compound.to_bytes() else {
            return;
        };
        let bytes = match &mut self.outbound {
            Some(keyed) => match keyed.context.protect_rtcp(&plain) {
                Ok(bytes) => bytes,
                Err(_) => return,
            },
            None => plain,
        };
        out.transmits.push_back(Transmit {
            to: self.remote_rtcp,
            bytes,
        });
    }
}

/// Where RTCP goes: the RTP address with rtcp-mux, else the negotiated RTCP address.
fn rtcp_destination(negotiated: &Negotiated, remote_rtp: SocketAddr) -> SocketAddr {
    if negotiated.rtcp_mux {
        remote_rtp
    } else {
        negotiated.remote_rtcp
    }
}
