//! The flows the phone talks on: which ones are being opened or are up (and our address on
//! each), the framing of TCP/TLS byte streams into messages, and their RFC 5626 keep-alives
//! while the policy allows:
//!
//! | flow | keep-alive | interval | dead when |
//! | --- | --- | --- | --- |
//! | TCP/TLS | CRLF ping, CRLF pong | `keepalive` | no pong in `pong_timeout` |
//! | UDP, registrar applied outbound | STUN Binding | `udp_keepalive` | no answer in `pong_timeout`, or the mapped address moved |
//! | UDP, registrar without outbound | CRLF datagram | `udp_keepalive` | never (nothing answers) |
//!
//! A UDP flow is kept alive only while an account is registered on it: that binding is what the
//! NAT mapping must keep reachable. Every interval is capped by the registrar's `Flow-Timer`
//! and drawn between 80 % and 100 % of itself (RFC 5626 §4.4.1), so phones behind one PBX do
//! not ping in step.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handset_sip::message::{Message, StreamFramer, StreamItem};
use handset_sip::transport::{Flow, Transport};
use handset_sip::usage::registration::RegistrationState as MachineState;
use handset_stun::binding::{self, BindingAnswer, StunTransactionId};
use rand::Rng;

use super::{Output, Phone};

#[cfg(test)]
mod tests;

/// Where a flow stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum FlowState {
    /// [`Output::Connect`] went out; no answer yet.
    Connecting,
    /// Usable; our address on it.
    Up(SocketAddr),
}

#[derive(Debug)]
struct FlowEntry {
    state: FlowState,
    framer: StreamFramer,
    /// When the next keep-alive ping goes out (streams only, while pings run).
    next_ping: Option<Instant>,
    /// A ping is out; the pong must come before this.
    pong_deadline: Option<Instant>,
    /// The STUN keep-alive out on a UDP flow, until answered.
    probe: Option<StunProbe>,
    /// Where the registrar's STUN answers last saw us (our address after the NAT).
    mapped: Option<SocketAddr>,
}

/// A STUN Binding request waiting for its answer, resent with RFC 8489 §6.2.1 back-off.
#[derive(Debug)]
struct StunProbe {
    transaction: StunTransactionId,
    resend_at: Instant,
    rto: Duration,
}

/// The first STUN retransmission timeout (RFC 8489 §6.2.1).
const STUN_RTO: Duration = Duration::from_millis(500);

/// What keeps a flow's NAT mapping and binding alive, and how often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum KeepAlive {
    /// CRLF ping answered by a CRLF pong (TCP/TLS).
    StreamPing(Duration),
    /// STUN Binding request answered by the registrar (UDP with outbound).
    Stun(Duration),
    /// A CRLF datagram nobody answers (UDP without outbound): it only refreshes the NAT.
    Datagram(Duration),
}

impl KeepAlive {
    fn interval(self) -> Duration {
        match self {
            KeepAlive::StreamPing(d) | KeepAlive::Stun(d) | KeepAlive::Datagram(d) => d,
        }
    }
}

/// The flow table.
#[derive(Debug)]
pub(super) struct Flows {
    entries: HashMap<Flow, FlowEntry>,
    /// Keep-alive pings run (foreground, or no account woken by push).
    pings: bool,
}

impl Flows {
    /// An empty table.
    pub(super) fn new() -> Flows {
        Flows {
            entries: HashMap::new(),
            pings: true,
        }
    }

    /// The state of a flow, if it is known.
    pub(super) fn state(&self, flow: &Flow) -> Option<FlowState> {
        self.entries.get(flow).map(|e| e.state)
    }

    /// Every flow in the table.
    pub(super) fn entries_list(&self) -> Vec<Flow> {
        self.entries.keys().copied().collect()
    }

    /// Our address on an open flow.
    pub(super) fn local(&self, flow: &Flow) -> Option<SocketAddr> {
        match self.state(flow) {
            Some(FlowState::Up(local)) => Some(local),
            _ => None,
        }
    }

    pub(super) fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .values()
            .flat_map(|e| {
                [
                    e.next_ping,
                    e.pong_deadline,
                    e.probe.as_ref().map(|p| p.resend_at),
                ]
            })
            .flatten()
            .min()
    }
}

impl Phone {
    /// Asks the runtime to open `flow` unless it is open or being opened.
    pub(super) fn ensure_flow(&mut self, flow: Flow, tls: Option<super::TlsTarget>) {
        if self.flows.entries.contains_key(&flow) {
            return;
        }
        self.flows.entries.insert(
            flow,
            FlowEntry {
                state: FlowState::Connecting,
                framer: StreamFramer::new(),
                next_ping: None,
                pong_deadline: None,
                probe: None,
                mapped: None,
            },
        );
        self.outputs.push_back(Output::Connect { flow, tls });
    }

    /// Forgets a flow nobody uses any more, failing nothing.
    pub(super) fn flows_remove_quietly(&mut self, flow: Flow) {
        self.flows.entries.remove(&flow);
    }

    /// Closes a TCP/TLS flow (or forgets a UDP one) and fails what depended on it.
    pub(super) fn drop_flow(&mut self, now: Instant, flow: Flow, error: Option<String>) {
        if self.flows.entries.remove(&flow).is_none() {
            return;
        }
        if flow.reliable() {
            self.outputs.push_back(Output::Disconnect { flow });
        }
        self.flow_lost(now, flow, error);
    }

    pub(super) fn handle_received(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        if flow.transport == Transport::Udp {
            if binding::is_stun(bytes) {
                self.handle_stun(now, flow, bytes);
                return;
            }
            // RFC 5626 keep-alives on UDP carry no message.
            if bytes.iter().all(|b| *b == b'\r' || *b == b'\n') {
                return;
            }
            match Message::parse(bytes) {
                Ok(message) => self.handle_message(now, flow, message),
                Err(error) => tracing::debug!(%flow, %error, "dropped a malformed datagram"),
            }
            return;
        }
        let Some(entry) = self.flows.entries.get_mut(&flow) else {
            tracing::debug!(%flow, "bytes on a connection the phone did not open dropped");
            return;
        };
        entry.framer.push(bytes);
        let mut items = Vec::new();
        while let Some(item) = entry.framer.next_item() {
            items.push(item);
        }
        let broken = entry.framer.is_broken();
        for item in items {
            match item {
                Ok(StreamItem::Message(message)) => {
                    self.handle_message(now, flow, message);
                    // Each message's consequences come out before the next one's: a 200
                    // REGISTER and the INVITE behind it in one read are reported in order.
                    self.pump(now);
                }
                Ok(StreamItem::Ping) => self.outputs.push_back(Output::Transmit {
                    flow,
                    bytes: b"\r\n".to_vec(),
                }),
                Ok(StreamItem::Pong) => {
                    if let Some(entry) = self.flows.entries.get_mut(&flow) {
                        entry.pong_deadline = None;
                    }
                    self.arm_keepalive(now, flow);
                }
                Err(error) => tracing::debug!(%flow, %error, "dropped a malformed message"),
            }
        }
        if broken {
            tracing::info!(%flow, "stream framing lost: closing the connection");
            self.drop_flow(now, flow, Some("stream framing lost".into()));
        }
    }

    pub(super) fn handle_connected(&mut self, now: Instant, flow: Flow, local: SocketAddr) {
        let Some(entry) = self.flows.entries.get_mut(&flow) else {
            // Not asked for (or given up on): a stream nobody wants.
            if flow.reliable() {
                self.outputs.push_back(Output::Disconnect { flow });
            }
            return;
        };
        entry.state = FlowState::Up(local);
        self.arm_keepalive(now, flow);
        self.flow_up(now, flow, local);
    }

    pub(super) fn handle_connect_failed(&mut self, now: Instant, flow: Flow, error: String) {
        tracing::info!(%flow, %error, "flow could not be opened");
        if self.flows.entries.remove(&flow).is_some() {
            self.flow_failed(now, flow, error);
        }
    }

    pub(super) fn handle_closed(&mut self, now: Instant, flow: Flow, error: Option<String>) {
        tracing::info!(%flow, error = error.as_deref().unwrap_or("closed"), "connection ended");
        if self.flows.entries.remove(&flow).is_some() {
            self.flow_lost(now, flow, error);
        }
    }

    /// Sends keep-alives that are due, resends unanswered STUN requests, and counts flows
    /// whose answer is late as dead.
    pub(super) fn flow_timers(&mut self, now: Instant) {
        let mut dead = Vec::new();
        let mut due = Vec::new();
        let mut resend = Vec::new();
        for (flow, entry) in &mut self.flows.entries {
            if entry.pong_deadline.is_some_and(|d| d <= now) {
                dead.push(*flow);
                continue;
            }
            if let Some(probe) = entry.probe.as_mut()
                && probe.resend_at <= now
            {
                probe.rto *= 2;
                probe.resend_at = now + probe.rto;
                resend.push((*flow, probe.transaction));
            }
            if entry.next_ping.is_some_and(|at| at <= now) {
                entry.next_ping = None;
                if entry.pong_deadline.is_none() {
                    due.push(*flow);
                }
            }
        }
        for (flow, transaction) in resend {
            self.outputs.push_back(Output::Transmit {
                flow,
                bytes: binding::binding_request(transaction),
            });
        }
        for flow in due {
            self.send_keepalive(now, flow);
        }
        for flow in dead {
            let why = if flow.reliable() {
                "keep-alive pong not received"
            } else {
                "no answer to STUN keep-alives"
            };
            tracing::info!(%flow, "{why}: the flow is dead");
            self.drop_flow(now, flow, Some(why.into()));
        }
    }

    /// Sends the keep-alive `flow` needs now, if it still needs one.
    fn send_keepalive(&mut self, now: Instant, flow: Flow) {
        let pong_timeout = self.config.pong_timeout;
        let Some(kind) = self.keepalive_for(flow) else {
            return;
        };
        let bytes = match kind {
            KeepAlive::StreamPing(_) => {
                let Some(entry) = self.flows.entries.get_mut(&flow) else {
                    return;
                };
                entry.framer.expect_pong();
                entry.pong_deadline = Some(now + pong_timeout);
                b"\r\n\r\n".to_vec()
            }
            KeepAlive::Stun(_) => {
                let transaction = StunTransactionId::random(&mut self.rng);
                let Some(entry) = self.flows.entries.get_mut(&flow) else {
                    return;
                };
                entry.pong_deadline = Some(now + pong_timeout);
                entry.probe = Some(StunProbe {
                    transaction,
                    resend_at: now + STUN_RTO,
                    rto: STUN_RTO,
                });
                binding::binding_request(transaction)
            }
            KeepAlive::Datagram(_) => {
                self.arm_keepalive(now, flow);
                b"\r\n\r\n".to_vec()
            }
        };
        self.outputs.push_back(Output::Transmit { flow, bytes });
    }

    /// A STUN message on a UDP flow: the answer to our keep-alive, or dropped.
    fn handle_stun(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        let answer = match binding::parse_binding_answer(bytes) {
            Ok(answer) => answer,
            Err(error) => {
                tracing::debug!(%flow, %error, "dropped a STUN message");
                return;
            }
        };
        let Some(entry) = self.flows.entries.get_mut(&flow) else {
            return;
        };
        if entry.probe.as_ref().map(|p| p.transaction) != Some(answer.transaction()) {
            tracing::debug!(%flow, "dropped a STUN answer to no request of ours");
            return;
        }
        entry.probe = None;
        entry.pong_deadline = None;
        let moved = match answer {
            BindingAnswer::Success {
                mapped: Some(mapped),
                ..
            } => entry
                .mapped
                .replace(mapped)
                .is_some_and(|was| was != mapped),
            BindingAnswer::Success { mapped: None, .. } => false,
            BindingAnswer::Error { code, .. } => {
                // The server is there (the NAT mapping held) but keeps no STUN: CRLF would do
                // as well, and the answer still proves the path.
                tracing::debug!(%flow, code, "STUN keep-alive answered with an error");
                false
            }
        };
        if moved {
            // RFC 5626 §4.4.1: a new mapping means the binding points at a dead address.
            tracing::info!(%flow, "our address behind the NAT changed: registering again");
            self.drop_flow(now, flow, Some("the NAT mapping changed".into()));
            return;
        }
        self.arm_keepalive(now, flow);
    }

    /// The keep-alive `flow` needs now, if any: streams while they are up, UDP flows while an
    /// account is registered on them; none while the policy stops pings.
    fn keepalive_for(&self, flow: Flow) -> Option<KeepAlive> {
        if !self.flows.pings || self.flows.local(&flow).is_none() {
            return None;
        }
        let registered = self.accounts.values().filter(|a| {
            a.flow() == Some(flow) && a.registration.state() == MachineState::Registered
        });
        let mut outbound = false;
        let mut flow_timer = None::<Duration>;
        for account in registered.clone() {
            let support = account.registration.outbound();
            outbound |= support.outbound;
            if let Some(secs) = support.flow_timer.filter(|s| *s > 0) {
                let secs = Duration::from_secs(u64::from(secs));
                flow_timer = Some(flow_timer.map_or(secs, |t| t.min(secs)));
            }
        }
        let cap = |interval: Duration| flow_timer.map_or(interval, |t| interval.min(t));
        if flow.reliable() {
            return Some(KeepAlive::StreamPing(cap(self.config.keepalive)));
        }
        let interval = cap(self.config.udp_keepalive?);
        if registered.count() == 0 {
            None
        } else if outbound {
            Some(KeepAlive::Stun(interval))
        } else {
            Some(KeepAlive::Datagram(interval))
        }
    }

    /// Schedules the next keep-alive of `flow` (or none, when it needs none), unless one is
    /// out and unanswered.
    pub(super) fn arm_keepalive(&mut self, now: Instant, flow: Flow) {
        let kind = self.keepalive_for(flow);
        let delay = kind.map(|kind| {
            let interval = kind.interval();
            interval.mul_f64(self.rng.random_range(0.8..=1.0))
        });
        let Some(entry) = self.flows.entries.get_mut(&flow) else {
            return;
        };
        if delay.is_none() {
            entry.probe = None;
            entry.pong_deadline = None;
        }
        entry.next_ping = delay.map(|delay| now + delay);
    }

    /// Runs or stops the keep-alives as the policy says: in the background with an account
    /// woken by push, none run (the OS wakes the app by push instead).
    pub(super) fn apply_keepalive_policy(&mut self, now: Instant) {
        let push = self.accounts.values().any(|a| a.wants_push());
        let policy = crate::push::keepalive_policy(self.foreground, push);
        self.flows.pings = policy.run_keepalive_timers;
        let flows: Vec<Flow> = self.flows.entries.keys().copied().collect();
        for flow in flows {
            let armed = self
                .flows
                .entries
                .get(&flow)
                .is_some_and(|e| e.next_ping.is_some() || e.pong_deadline.is_some());
            if !self.flows.pings || !armed {
                self.arm_keepalive(now, flow);
            }
        }
    }
}
