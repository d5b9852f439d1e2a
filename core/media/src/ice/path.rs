//! The path a plain RTP or SDES-SRTP session's datagrams take when the call uses ICE: str0m's
//! ICE agent checks the candidate pairs and nominates one; media goes over it, through the
//! TURN relay when its local candidate is the relayed one. With a peer that offers no ICE,
//! media goes to its c= address from our default candidate.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use handset_stun::turn::{TurnClient, TurnEvent, TurnReceived};
use str0m::ice::{IceAgent, IceAgentEvent, IceCreds, StunMessage, StunPacket};
use str0m::net::Protocol;

use super::{CandidateType, IcePolicy, LocalCandidate};
use crate::sdp::{IceCredentials, Negotiated, SessionDescription};
use crate::session::{MediaError, MediaEvent, Transmit};

/// HMAC-SHA1 for the ICE agent's STUN message integrity (str0m's ICE crate is built without
/// its own).
#[derive(Debug)]
struct Sha1Hmac;

impl str0m::crypto::Sha1HmacProvider for Sha1Hmac {
    fn sha1_hmac(&self, key: &[u8], payloads: &[&[u8]]) -> [u8; 20] {
        use hmac::{Hmac, Mac};
        let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(key) else {
            return [0; 20];
        };
        for payload in payloads {
            mac.update(payload);
        }
        mac.finalize().into_bytes().into()
    }
}

static SHA1_HMAC: Sha1Hmac = Sha1Hmac;

/// What the session needs to run ICE on a plain RTP or SDES-SRTP call.
pub struct IceSetup {
    /// The credentials in our a=ice-ufrag / a=ice-pwd.
    pub local: IceCredentials,
    /// Our candidates as announced ([`super::Gathered::candidates`]).
    pub candidates: Vec<LocalCandidate>,
    /// The TURN allocation when a relayed candidate is among them.
    pub relay: Option<TurnClient>,
    /// We made the offer (RFC 8445 §6.1.1: the offerer controls), or the peer is ICE-lite.
    pub controlling: bool,
    /// Which candidates may carry media.
    pub policy: IcePolicy,
}

impl std::fmt::Debug for IceSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceSetup")
            .field("candidates", &self.candidates)
            .field(
                "relay",
                &self.relay.as_ref().and_then(|r| r.relayed_address()),
            )
            .field("controlling", &self.controlling)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// A datagram from the socket, as the path sorted it.
pub(crate) enum Received<'a> {
    /// RTP or RTCP from the peer (`from` is the peer's address, also when relayed).
    Media { from: SocketAddr, bytes: &'a [u8] },
    /// STUN or a relay control message: handled here.
    Consumed,
}

/// Where media goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Route {
    remote: SocketAddr,
    via_relay: bool,
}

/// ICE and the relay of one session (see the module docs).
pub(crate) struct IcePath {
    /// The socket's address: the destination of every datagram that is not relayed.
    host: SocketAddr,
    /// `None` when the peer offered no ICE: media follows the SDP and latching.
    agent: Option<IceAgent>,
    relay: Option<TurnClient>,
    relayed: Option<SocketAddr>,
    route: Route,
    nominated: bool,
    /// The agent's next timer (its `poll_timeout` needs `&mut`), kept after every input.
    agent_deadline: Option<Instant>,
    permitted: Vec<IpAddr>,
    events: VecDeque<MediaEvent>,
    transmits: VecDeque<Transmit>,
}

impl std::fmt::Debug for IcePath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IcePath")
            .field("ice", &self.agent.is_some())
            .field("relayed", &self.relayed)
            .field("route", &self.route)
            .field("nominated", &self.nominated)
            .finish_non_exhaustive()
    }
}

impl IcePath {
    /// The path for a negotiation; `remote` is the peer's description (its candidates and
    /// ICE-lite flag).
    pub(crate) fn new(
        now: Instant,
        setup: IceSetup,
        host: SocketAddr,
        negotiated: &Negotiated,
        remote: Option<&SessionDescription>,
    ) -> Result<Self, MediaError> {
        let relayed = setup.relay.as_ref().and_then(TurnClient::relayed_address);
        let default_via_relay = setup
            .candidates
            .iter()
            .any(|c| c.kind == CandidateType::Relayed)
            && relayed.is_some();
        let mut path = IcePath {
            host,
            agent: None,
            relay: setup.relay,
            relayed,
            route: Route {
                remote: negotiated.remote_rtp,
                via_relay: default_via_relay,
            },
            nominated: false,
            agent_deadline: None,
            permitted: Vec::new(),
            events: VecDeque::new(),
            transmits: VecDeque::new(),
        };
        if let Some(remote_ice) = negotiated.ice.as_ref() {
            let mut agent = IceAgent::with_hmac(
                IceCreds {
                    ufrag: setup.local.ufrag.clone(),
                    pass: setup.local.pwd.clone(),
                },
                &SHA1_HMAC,
            );
            agent.set_remote_credentials(IceCreds {
                ufrag: remote_ice.ufrag.clone(),
                pass: remote_ice.pwd.clone(),
            });
            let lite = remote.is_some_and(crate::dtls_session::remote_is_ice_lite);
            agent.set_controlling(setup.controlling || lite);
            for candidate in &setup.candidates {
                let usable = match setup.policy {
                    IcePolicy::All => true,
                    IcePolicy::Relay => candidate.kind == CandidateType::Relayed,
                };
                if let Some(c) = candidate.to_agent().filter(|_| usable) {
                    agent.add_local_candidate(c);
                }
            }
            let mut remote_candidates = Vec::new();
            if let Some(remote) = remote {
                for line in crate::dtls_session::remote_candidates(remote, negotiated) {
                    let value = line.trim_start_matches("candidate:");
                    // Candidates we cannot use (TCP, RTCP, unparsable) are left out (RFC 8445
                    // §5.1: an agent ignores what it does not understand).
                    let rtp = value.split_whitespace().nth(1) == Some("1");
                    if let Ok(c) = str0m::Candidate::from_sdp_string(&format!("candidate:{value}"))
                        && rtp
                        && c.proto() == Protocol::Udp
                    {
                        remote_candidates.push(c);
                    }
                }
            }
            if remote_candidates.is_empty()
                && let Ok(c) = str0m::Candidate::host(negotiated.remote_rtp, "udp")
            {
                remote_candidates.push(c);
            }
            for c in remote_candidates {
                let ip = c.addr().ip();
                agent.add_remote_candidate(c);
                path.permit(now, ip);
            }
            path.agent = Some(agent);
        }
        path.permit(now, negotiated.remote_rtp.ip());
        path.handle_timeout(now);
        Ok(path)
    }

    /// Sorts a datagram that arrived on the socket from `from`.
    pub(crate) fn receive<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        bytes: &'a [u8],
    ) -> Received<'a> {
        let (source, destination, payload) = match self.relay.as_mut() {
            Some(relay) if relay.server().address == from => {
                match relay.handle_message(now, bytes) {
                    TurnReceived::Data { peer, data } => match self.relayed {
                        Some(relayed) => (peer, relayed, data),
                        None => return Received::Consumed,
                    },
                    TurnReceived::Handled | TurnReceived::Ignored => {
                        self.drain(now);
                        return Received::Consumed;
                    }
                }
            }
            _ => (from, self.host, bytes),
        };
        // RFC 7983: 0–3 is STUN, 128–191 RTP/RTCP.
        if payload.first().is_some_and(|b| *b < 4) {
            if let (Some(agent), Ok(message)) = (self.agent.as_mut(), StunMessage::parse(payload)) {
                agent.handle_packet(
                    now,
                    StunPacket {
                        proto: Protocol::Udp,
                        source,
                        destination,
                        message,
                    },
                );
            }
            self.drain(now);
            return Received::Consumed;
        }
        Received::Media {
            from: source,
            bytes: payload,
        }
    }

    /// Runs the agent's and the relay's timers.
    /// Only what is due runs: the session calls this with every 20 ms frame.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let mut ran = false;
        // Before its first timeout the agent has no deadline: that first call starts it.
        if let Some(agent) = self.agent.as_mut()
            && self.agent_deadline.is_none_or(|at| at <= now)
        {
            agent.handle_timeout(now);
            ran = true;
        }
        if let Some(relay) = self.relay.as_mut()
            && relay.poll_timeout().is_some_and(|at| at <= now)
        {
            relay.handle_timeout(now);
            ran = true;
        }
        if ran {
            self.drain(now);
        }
    }

    /// When [`Self::handle_timeout`] is next due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        let agent = self.agent_deadline;
        let relay = self.relay.as_ref().and_then(TurnClient::poll_timeout);
        agent.into_iter().chain(relay).min()
    }

    /// The nominated pair's remote address, once ICE nominated one (media follows it, not
    /// latching).
    pub(crate) fn nominated_remote(&self) -> Option<SocketAddr> {
        self.nominated.then_some(self.route.remote)
    }

    /// A media datagram for the peer, wrapped for the relay when the route goes through it;
    /// `None` when the relay cannot take it yet.
    pub(crate) fn wrap(&mut self, transmit: Transmit) -> Option<Transmit> {
        if !self.route.via_relay {
            return Some(transmit);
        }
        let relay = self.relay.as_mut()?;
        let bytes = relay.send(transmit.to, &transmit.bytes)?;
        Some(Transmit {
            to: relay.server().address,
            bytes,
        })
    }

    /// The next datagram of the path itself (ICE checks, relay control).
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event (ICE state changes).
    pub(crate) fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.pop_front()
    }

    /// Ends the relay allocation (best effort).
    pub(crate) fn close(&mut self, now: Instant) {
        if let Some(relay) = self.relay.as_mut() {
            relay.close(now);
        }
        self.agent = None;
        self.drain(now);
    }

    /// Gives up the relay, for the path that replaces this one, when its relayed address is
    /// among `candidates`.
    pub(crate) fn take_relay_for(&mut self, candidates: &[LocalCandidate]) -> Option<TurnClient> {
        let relayed = self.relayed?;
        if !candidates.iter().any(|c| c.address == relayed) {
            return None;
        }
        self.relayed = None;
        self.relay.take()
    }

    /// Installs a relay permission for `ip` (once).
    fn permit(&mut self, now: Instant, ip: IpAddr) {
        if self.permitted.contains(&ip) {
            return;
        }
        if let Some(relay) = self.relay.as_mut() {
            relay.permit(now, ip);
            self.permitted.push(ip);
        }
    }

    /// Moves what the agent and the relay produced into our queues.
    fn drain(&mut self, now: Instant) {
        let mut discovered = Vec::new();
        if let Some(agent) = self.agent.as_mut() {
            while let Some(event) = agent.poll_event() {
                match event {
                    IceAgentEvent::IceConnectionStateChange(state) => {
                        self.events.push_back(MediaEvent::IceState(state.into()));
                    }
                    IceAgentEvent::NominatedSend {
                        source,
                        destination,
                        ..
                    } => {
                        let route = Route {
                            remote: destination,
                            via_relay: Some(source) == self.relayed,
                        };
                        if !self.nominated || route != self.route {
                            self.route = route;
                            self.nominated = true;
                            self.events.push_back(MediaEvent::PathSelected {
                                remote: destination,
                                relayed: route.via_relay,
                            });
                        }
                    }
                    IceAgentEvent::DiscoveredRecv { source, .. } => discovered.push(source.ip()),
                    IceAgentEvent::IceRestart(_) => {}
                }
            }
            while let Some(out) = agent.poll_transmit() {
                let bytes: Vec<u8> = out.contents.into();
                if Some(out.source) == self.relayed {
                    if let Some(relay) = self.relay.as_mut()
                        && let Some(wrapped) = relay.send(out.destination, &bytes)
                    {
                        self.transmits.push_back(Transmit {
                            to: relay.server().address,
                            bytes: wrapped,
                        });
                    }
                } else {
                    self.transmits.push_back(Transmit {
                        to: out.destination,
                        bytes,
                    });
                }
            }
        }
        self.agent_deadline = self.agent.as_mut().and_then(IceAgent::poll_timeout);
        for ip in discovered {
            self.permit(now, ip);
        }
        if let Some(relay) = self.relay.as_mut() {
            while let Some(bytes) = relay.poll_transmit() {
                self.transmits.push_back(Transmit {
                    to: relay.server().address,
                    bytes,
                });
            }
            while let Some(event) = relay.poll_event() {
                if let TurnEvent::Failed(error) = event {
                    self.events
                        .push_back(MediaEvent::RelayFailed(error.to_string()));
                }
            }
        }
    }
}
