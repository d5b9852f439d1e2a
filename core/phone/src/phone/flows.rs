//! The flows the phone talks on: which ones are being opened or are up (and our address on
//! each), the framing of TCP/TLS byte streams into messages, and the RFC 5626 CRLF keep-alive
//! of connections (ping every `keepalive` while the policy allows, the connection counts as
//! dead when no pong comes back in `pong_timeout`).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handset_sip::message::{Message, StreamFramer, StreamItem};
use handset_sip::transport::{Flow, Transport};

use super::{Output, Phone};

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
}

/// The flow table.
#[derive(Debug)]
pub(super) struct Flows {
    entries: HashMap<Flow, FlowEntry>,
    /// Keep-alive pings run (foreground, or no account woken by push).
    pings: bool,
    keepalive: Duration,
    pong_timeout: Duration,
}

impl Flows {
    /// An empty table; pings every `keepalive`, pongs due within `pong_timeout`.
    pub(super) fn new(keepalive: Duration, pong_timeout: Duration) -> Flows {
        Flows {
            entries: HashMap::new(),
            pings: true,
            keepalive,
            pong_timeout,
        }
    }

    /// The state of a flow, if it is known.
    pub(super) fn state(&self, flow: &Flow) -> Option<FlowState> {
        self.entries.get(flow).map(|e| e.state)
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
            .flat_map(|e| [e.next_ping, e.pong_deadline])
            .flatten()
            .min()
    }

    fn arm_ping(&mut self, flow: &Flow, now: Instant) {
        let (pings, keepalive) = (self.pings, self.keepalive);
        if let Some(entry) = self.entries.get_mut(flow) {
            entry.next_ping = (pings && flow.reliable() && matches!(entry.state, FlowState::Up(_)))
                .then_some(now + keepalive);
        }
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
                    self.flows.arm_ping(&flow, now);
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
        self.flows.arm_ping(&flow, now);
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

    /// Sends keep-alive pings that are due and drops connections whose pong is late.
    pub(super) fn flow_timers(&mut self, now: Instant) {
        let mut dead = Vec::new();
        let mut pings = Vec::new();
        for (flow, entry) in &mut self.flows.entries {
            if entry.pong_deadline.is_some_and(|d| d <= now) {
                dead.push(*flow);
                continue;
            }
            if entry.next_ping.is_some_and(|at| at <= now) {
                entry.next_ping = None;
                if entry.pong_deadline.is_none() {
                    entry.framer.expect_pong();
                    entry.pong_deadline = Some(now + self.flows.pong_timeout);
                    pings.push(*flow);
                }
            }
        }
        for flow in pings {
            self.outputs.push_back(Output::Transmit {
                flow,
                bytes: b"\r\n\r\n".to_vec(),
            });
        }
        for flow in dead {
            tracing::info!(%flow, "keep-alive pong not received: the connection is dead");
            self.drop_flow(now, flow, Some("keep-alive pong not received".into()));
        }
    }

    /// Runs or stops the connections' keep-alive pings as the policy says: in the background
    /// with an account woken by push, no timer runs (the OS wakes the app by push instead).
    pub(super) fn apply_keepalive_policy(&mut self, now: Instant) {
        let push = self.accounts.values().any(|a| a.wants_push());
        let policy = crate::push::keepalive_policy(self.foreground, push);
        self.flows.pings = policy.run_keepalive_timers;
        self.flows.keepalive = self.config.keepalive;
        self.flows.pong_timeout = self.config.pong_timeout;
        let flows: Vec<Flow> = self.flows.entries.keys().copied().collect();
        for flow in flows {
            let armed = self
                .flows
                .entries
                .get(&flow)
                .is_some_and(|e| e.next_ping.is_some());
            if !self.flows.pings || !armed {
                self.flows.arm_ping(&flow, now);
            }
        }
    }
}
