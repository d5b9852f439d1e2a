//! Candidate gathering on a call's socket before the offer or answer goes out: a STUN Binding
//! to each STUN server (server-reflexive), a TURN allocation (relayed, and server-reflexive
//! from its XOR-MAPPED-ADDRESS), all bounded by [`GATHER_TIMEOUT`]: a server that does not
//! answer costs a candidate, never the call.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handset_stun::binding::{self, BindingAnswer, StunTransactionId};
use handset_stun::turn::{TurnClient, TurnError, TurnEvent, TurnServer, TurnTransport};
use rand::RngCore;

use super::{CandidateType, IcePolicy, LocalCandidate};
use crate::session::Transmit;

/// The longest a call waits for its candidates.
pub const GATHER_TIMEOUT: Duration = Duration::from_secs(3);

/// Resends of a Binding request to a STUN server (RFC 8489 §6.2.1, cut to the gathering
/// time): 0, 0.5, 1.5 s after the first.
const BINDING_RESENDS: [Duration; 3] = [
    Duration::from_millis(500),
    Duration::from_millis(1000),
    Duration::from_millis(1500),
];

struct BindingProbe {
    server: SocketAddr,
    transaction: StunTransactionId,
    resends_done: usize,
    next_send: Option<Instant>,
    done: bool,
}

/// What gathering found: our candidates, best first, and the TURN allocation when there is
/// one (it must live as long as the call: hand it to the media session).
pub struct Gathered {
    /// The candidates the policy allows.
    pub candidates: Vec<LocalCandidate>,
    /// The relay's client, allocated.
    pub relay: Option<TurnClient>,
    /// Why no relay was allocated although a TURN server was configured.
    pub relay_error: Option<TurnError>,
}

impl std::fmt::Debug for Gathered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gathered")
            .field("candidates", &self.candidates)
            .field(
                "relay",
                &self.relay.as_ref().and_then(|r| r.relayed_address()),
            )
            .field("relay_error", &self.relay_error)
            .finish()
    }
}

/// Gathers the candidates of one socket (see the module docs). Drive it like a session:
/// send every [`Self::poll_transmit`] from the socket (those to the TURN server over the TURN
/// server's transport), feed datagrams from the STUN and TURN servers to
/// [`Self::handle_datagram`], call [`Self::handle_timeout`] at [`Self::poll_timeout`], and
/// take [`Self::finish`] once [`Self::is_done`].
pub struct Gatherer {
    host: SocketAddr,
    policy: IcePolicy,
    probes: Vec<BindingProbe>,
    turn: Option<TurnClient>,
    turn_done: bool,
    relay_error: Option<TurnError>,
    /// Server-reflexive addresses seen, first first.
    mapped: Vec<SocketAddr>,
    deadline: Instant,
    out: VecDeque<Transmit>,
}

impl Gatherer {
    /// Starts gathering for the socket at `host` (the address the route to the peer leaves
    /// from, not `0.0.0.0`).
    pub fn new(
        now: Instant,
        host: SocketAddr,
        stun: &[SocketAddr],
        turn: Option<TurnServer>,
        policy: IcePolicy,
        rng: &mut dyn RngCore,
    ) -> Self {
        // Relay-only needs no server-reflexive address.
        let stun: &[SocketAddr] = if policy == IcePolicy::Relay {
            &[]
        } else {
            stun
        };
        let probes = stun
            .iter()
            .filter(|server| server.is_ipv4() == host.is_ipv4())
            .map(|&server| BindingProbe {
                server,
                transaction: StunTransactionId::random(rng),
                resends_done: 0,
                next_send: Some(now),
                done: false,
            })
            .collect();
        let turn = turn.map(|server| TurnClient::new(server, now, rng));
        let mut gatherer = Gatherer {
            host,
            policy,
            probes,
            turn_done: turn.is_none(),
            turn,
            relay_error: None,
            mapped: Vec::new(),
            deadline: now + GATHER_TIMEOUT,
            out: VecDeque::new(),
        };
        gatherer.handle_timeout(now);
        gatherer
    }

    /// A datagram that arrived on the socket (or a frame from the TURN server's stream).
    /// Returns whether it was one of ours.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, bytes: &[u8]) -> bool {
        if let Some(turn) = self.turn.as_mut()
            && turn.server().address == from
        {
            turn.handle_message(now, bytes);
            self.drain_turn();
            return true;
        }
        let Ok(answer) = binding::parse_binding_answer(bytes) else {
            return false;
        };
        let Some(probe) = self
            .probes
            .iter_mut()
            .find(|p| p.server == from && p.transaction == answer.transaction() && !p.done)
        else {
            return false;
        };
        probe.done = true;
        probe.next_send = None;
        if let BindingAnswer::Success {
            mapped: Some(mapped),
            ..
        } = answer
        {
            self.push_mapped(mapped);
        }
        true
    }

    /// Resends what is due; gives up at the deadline.
    pub fn handle_timeout(&mut self, now: Instant) {
        if now >= self.deadline {
            for probe in &mut self.probes {
                probe.done = true;
                probe.next_send = None;
            }
            self.turn_done = true;
            return;
        }
        for probe in &mut self.probes {
            let Some(at) = probe.next_send.filter(|at| *at <= now) else {
                continue;
            };
            self.out.push_back(Transmit {
                to: probe.server,
                bytes: binding::binding_request(probe.transaction),
            });
            probe.next_send = BINDING_RESENDS
                .get(probe.resends_done)
                .map(|wait| at + *wait);
            probe.resends_done += 1;
        }
        if let Some(turn) = self.turn.as_mut() {
            turn.handle_timeout(now);
        }
        self.drain_turn();
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    /// When [`Self::handle_timeout`] is due; `None` once done.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.is_done() {
            return None;
        }
        let probes = self.probes.iter().filter_map(|p| p.next_send);
        let turn = self.turn.as_ref().and_then(TurnClient::poll_timeout);
        probes
            .chain(turn)
            .chain(std::iter::once(self.deadline))
            .min()
    }

    /// Every server answered, failed or timed out.
    pub fn is_done(&self) -> bool {
        self.turn_done && self.probes.iter().all(|p| p.done)
    }

    /// The candidates found, best first: host (unless relay-only), server-reflexive (when it
    /// differs from the host address), relayed.
    pub fn finish(self) -> Gathered {
        let mut candidates = Vec::new();
        if self.policy == IcePolicy::All {
            candidates.push(LocalCandidate {
                kind: CandidateType::Host,
                address: self.host,
                base: self.host,
            });
            let mapped = self.mapped.iter().copied();
            for address in mapped.filter(|m| *m != self.host) {
                let candidate = LocalCandidate {
                    kind: CandidateType::ServerReflexive,
                    address,
                    base: self.host,
                };
                if !candidates.contains(&candidate) {
                    candidates.push(candidate);
                }
            }
        }
        let had_turn = self.turn.is_some();
        let relay = self
            .turn
            .filter(|t| !t.is_failed() && t.relayed_address().is_some());
        if let Some(relayed) = relay.as_ref().and_then(TurnClient::relayed_address) {
            candidates.push(LocalCandidate {
                kind: CandidateType::Relayed,
                address: relayed,
                base: relayed,
            });
        }
        let relay_error = if relay.is_some() || !had_turn {
            None
        } else {
            Some(self.relay_error.unwrap_or(TurnError::Timeout))
        };
        Gathered {
            candidates,
            relay,
            relay_error,
        }
    }

    fn push_mapped(&mut self, mapped: SocketAddr) {
        if !self.mapped.contains(&mapped) {
            self.mapped.push(mapped);
        }
    }

    fn drain_turn(&mut self) {
        let Some(turn) = self.turn.as_mut() else {
            return;
        };
        while let Some(bytes) = turn.poll_transmit() {
            self.out.push_back(Transmit {
                to: turn.server().address,
                bytes,
            });
        }
        let mut mapped = None;
        while let Some(event) = turn.poll_event() {
            match event {
                TurnEvent::Allocated {
                    mapped: reflexive, ..
                } => {
                    self.turn_done = true;
                    mapped = reflexive;
                }
                TurnEvent::Failed(error) => {
                    self.relay_error = Some(error);
                    self.turn_done = true;
                }
                TurnEvent::PermissionFailed(_) => {}
            }
        }
        // Over TCP or TLS the server saw our stream's address, not the socket's.
        let over_udp = turn.server().transport == TurnTransport::Udp;
        if let Some(mapped) = mapped.filter(|_| over_udp) {
            self.push_mapped(mapped);
        }
    }
}

#[cfg(test)]
mod tests;
