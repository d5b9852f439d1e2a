//! The run loop: the only place that turns the phone machine's outputs into I/O and I/O back
//! into the machine's inputs. It decides nothing about SIP. Everything slow — connecting,
//! TLS handshakes, DNS, store writes, stopping media — runs in tasks that report back through
//! one bounded channel, so the loop itself never waits for the network or the disk.
//!
//! ```text
//!   app (Handset API) ─┐ lock, handle_input(Command), notify
//!                      ▼
//!   ┌──────────── Phone (Mutex) ────────────┐
//!   │ handle_input(now, input)  poll_output │
//!   └──────▲──────────────────────────┬─────┘
//!          │ Report → Input           │ Output
//!   reports channel (bounded) ◄─ tasks: UDP reader, connections, connect, resolve,
//!                                       media, media stop
//!                                     │ Transmit → UDP socket / connection queue
//!                                     │ Store → writer task, Event → app channel
//! ```

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use handset_media::ice::IceSetup;
use handset_media::sdp::SessionDescription;
use handset_media::session::{MediaEvent, MediaSession, SessionConfig};
use handset_media::stats::CallQuality;
use handset_phone::phone::{
    AccountId, BoundMedia, CallId, Command, IcePlan, Input, MediaCommand, MediaPlan, Output,
    PhoneEvent, TlsTarget,
};
use handset_sip::transport::{Flow, Target, Transport};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use crate::gather::{self, Relay, RelayStream};
use crate::handset::Shared;
use crate::media::{self, MediaHandle};
use crate::store::{SinkItem, Write};
use crate::transport::{self, Connection};

/// What the tasks report to the run loop.
#[derive(Debug)]
pub(crate) enum Report {
    /// Bytes arrived on a flow.
    Received { flow: Flow, bytes: Vec<u8> },
    /// A connection is open.
    Connected {
        flow: Flow,
        local: SocketAddr,
        connection: Connection,
    },
    /// A connection could not be opened.
    ConnectFailed { flow: Flow, error: String },
    /// A connection ended.
    Closed { flow: Flow, error: Option<String> },
    /// A DNS lookup finished.
    Resolved {
        account: AccountId,
        result: Result<Vec<Target>, String>,
    },
    /// A call's media reports something.
    Media { call: CallId, event: MediaEvent },
    /// A call's media task died.
    MediaFailed { call: CallId, error: String },
    /// A call's media stopped.
    MediaStopped {
        call: CallId,
        quality: Option<CallQuality>,
    },
    /// A call's candidates are gathered.
    Gathered {
        call: CallId,
        result: Result<Box<(BoundMedia, Option<Relay>)>, String>,
    },
}

pub(crate) struct RunLoop {
    pub(crate) shared: Arc<Shared>,
    /// The SIP UDP socket for sending (non-blocking; its reader task holds the tokio handle):
    /// a send fails only when the socket's buffer is full or the network refuses.
    pub(crate) udp_send: std::net::UdpSocket,
    /// Where the UDP socket is bound (`[::]:port` when dual-stack).
    pub(crate) udp_bound: SocketAddr,
    pub(crate) reports_tx: mpsc::Sender<Report>,
    pub(crate) reports: mpsc::Receiver<Report>,
    /// With a store: the sink that writes records and delivers events in order.
    pub(crate) sink: Option<mpsc::Sender<SinkItem>>,
    /// Every `Handset` handle holds a sender; when the last one is dropped, the loop ends.
    pub(crate) alive: mpsc::Receiver<()>,
    pub(crate) connections: HashMap<Flow, Connection>,
    pub(crate) rtp: HashMap<CallId, Arc<UdpSocket>>,
    /// TURN allocations from gathering, waiting for their call's media to start.
    pub(crate) relays: HashMap<CallId, Relay>,
    pub(crate) media: HashMap<CallId, MediaHandle>,
    /// When the phone wants [`Input::Timeout`].
    pub(crate) deadline: Option<Instant>,
    /// Inputs the loop made itself while carrying out outputs (fed before waiting again).
    pub(crate) local: VecDeque<Input>,
    /// The desktop network-change detector.
    pub(crate) routes: RouteWatch,
}

/// Most remote addresses whose route is watched; beyond, the table starts over.
const MOST_WATCHED: usize = 64;

/// Notices a network change on a desktop: the local address the route toward a flow's remote
/// leaves from moved (another interface, another address). It asks the kernel's routing
/// table only (a UDP socket connected without sending), so it costs no packet.
pub(crate) struct RouteWatch {
    every: Option<Duration>,
    next: Option<Instant>,
    /// Remote address → the local address its route left from when last looked at.
    routes: HashMap<SocketAddr, Option<IpAddr>>,
}

impl RouteWatch {
    /// Looks every `every`, or never.
    pub(crate) fn new(every: Option<Duration>) -> RouteWatch {
        RouteWatch {
            every,
            next: None,
            routes: HashMap::new(),
        }
    }

    /// Remembers where the route toward a new flow's `remote` leaves from now. (The route's
    /// address, not the socket's: a socket bound to one address may use another route.)
    fn note(&mut self, remote: SocketAddr) {
        if self.every.is_none() {
            return;
        }
        if self.routes.len() >= MOST_WATCHED && !self.routes.contains_key(&remote) {
            self.routes.clear();
        }
        self.routes
            .insert(remote, transport::route_local_ip(remote));
    }

    /// When to look next (the first look is armed by the first noted route).
    fn deadline(&mut self, now: Instant) -> Option<Instant> {
        let every = self.every?;
        if self.routes.is_empty() {
            return None;
        }
        Some(*self.next.get_or_insert(now + every))
    }

    /// Looks at every route; true when one now leaves from another address. A route that
    /// vanished (no network) changes nothing until one comes back.
    fn moved(&mut self, now: Instant) -> bool {
        self.next = self.every.map(|every| now + every);
        let mut moved = false;
        for (remote, local) in &mut self.routes {
            let current = transport::route_local_ip(*remote);
            if current.is_some() && current != *local {
                tracing::info!("the route to a server now leaves from another address");
                moved = true;
            }
            if current.is_some() {
                *local = current;
            }
        }
        moved
    }
}

impl RunLoop {
    pub(crate) async fn run(mut self) {
        loop {
            self.drain();
            if let Some(input) = self.local.pop_front() {
                self.feed(input);
                continue;
            }
            if self.shared.is_stopped() {
                break;
            }
            let deadline = self.deadline;
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            let look_at_routes = self.routes.deadline(Instant::now());
            let route_check = async {
                match look_at_routes {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = self.shared.wake.notified() => {}
                report = self.reports.recv() => match report {
                    Some(report) => self.handle_report(report),
                    None => break,
                },
                _ = sleep => {
                    self.deadline = None;
                    self.feed(Input::Timeout);
                }
                _ = route_check => if self.routes.moved(Instant::now()) {
                    self.shared.resolver().clear_cache();
                    self.feed(Input::Command(Command::NetworkChanged));
                },
                alive = self.alive.recv() => if alive.is_none() {
                    // Every handle is gone: nobody can use the runtime any more.
                    break;
                },
            }
        }
        self.connections.clear();
        self.media.clear();
        self.rtp.clear();
        self.relays.clear();
        self.shared.finished.send_replace(true);
    }

    fn feed(&mut self, input: Input) {
        if let Err(error) = self.shared.handle(input) {
            tracing::debug!(%error, "input refused");
        }
    }

    /// Carries out everything the phone has for us.
    fn drain(&mut self) {
        let outputs = self.shared.drain();
        for output in outputs {
            self.execute(output);
        }
    }

    fn handle_report(&mut self, report: Report) {
        let input = match report {
            Report::Received { flow, bytes } => Input::Received { flow, bytes },
            Report::Connected {
                flow,
                local,
                connection,
            } => {
                self.connections.insert(flow, connection);
                self.routes.note(flow.remote);
                Input::Connected { flow, local }
            }
            Report::ConnectFailed { flow, error } => Input::ConnectFailed { flow, error },
            Report::Closed { flow, error } => {
                self.connections.remove(&flow);
                Input::Closed { flow, error }
            }
            Report::Resolved { account, result } => Input::Resolved { account, result },
            Report::Media { call, event } => Input::Media { call, event },
            Report::MediaFailed { call, error } => {
                // The phone ends the call without asking for a stop: release everything now.
                self.media.remove(&call);
                self.rtp.remove(&call);
                self.relays.remove(&call);
                Input::MediaFailed { call, error }
            }
            Report::MediaStopped { call, quality } => {
                self.rtp.remove(&call);
                Input::MediaStopped { call, quality }
            }
            Report::Gathered { call, result } => {
                let result = result.map(|gathered| {
                    let (bound, relay) = *gathered;
                    if let Some(relay) = relay {
                        self.relays.insert(call, relay);
                    }
                    bound
                });
                if result.is_err() {
                    self.rtp.remove(&call);
                }
                Input::MediaBound { call, result }
            }
        };
        self.feed(input);
    }

    fn execute(&mut self, output: Output) {
        match output {
            Output::Transmit { flow, bytes } => self.transmit(flow, bytes),
            Output::Resolve { account, target } => {
                // The resolver of the moment: new DNS servers apply to the next lookup.
                let (resolver, reports) = (self.shared.resolver(), self.reports_tx.clone());
                tokio::spawn(async move {
                    let result = resolver.resolve(&target).await.map_err(|e| e.to_string());
                    let _ = reports.send(Report::Resolved { account, result }).await;
                });
            }
            Output::Connect { flow, tls } => self.connect(flow, tls),
            Output::Disconnect { flow } => {
                self.connections.remove(&flow);
            }
            Output::BindMedia { call, peer, ice } => match (bind_rtp(peer), ice) {
                (Ok((socket, local)), Some(ice)) => {
                    self.rtp.insert(call, socket.clone());
                    let (resolver, reports) = (self.shared.resolver(), self.reports_tx.clone());
                    tokio::spawn(async move {
                        let result = gather::gather(socket, local, *ice, resolver)
                            .await
                            .map(Box::new);
                        let _ = reports.send(Report::Gathered { call, result }).await;
                    });
                }
                (Ok((socket, local)), None) => {
                    self.rtp.insert(call, socket);
                    let result = Ok(BoundMedia::plain(local));
                    self.local.push_back(Input::MediaBound { call, result });
                }
                (Err(error), _) => {
                    let result = Err(error);
                    self.local.push_back(Input::MediaBound { call, result });
                }
            },
            Output::Media { call, command } => self.media_command(call, command),
            Output::Store(record) => {
                if let Some(sink) = &self.sink
                    && sink
                        .try_send(SinkItem::Write(Write::from_record(record)))
                        .is_err()
                {
                    tracing::error!("the store is behind: a record was dropped");
                }
            }
            Output::Event(event) => match &self.sink {
                Some(sink) => {
                    if sink.try_send(SinkItem::Event(event)).is_err() {
                        tracing::error!("the store is behind: an event was dropped");
                    }
                }
                None => self.shared.deliver(event),
            },
            Output::Timeout(at) => self.deadline = Some(at),
        }
    }

    fn transmit(&mut self, flow: Flow, bytes: Vec<u8>) {
        match flow.transport {
            Transport::Udp => {
                let to = transport::send_address(self.udp_bound, flow.remote);
                match self.udp_send.send_to(&bytes, to) {
                    Ok(_) => {}
                    // A full socket buffer loses the datagram, as the network may.
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                        tracing::debug!(%error, "UDP send buffer full: datagram dropped");
                    }
                    // No route, an address family this socket cannot reach: waiting for
                    // retransmissions would only hide it. The flow is unusable now.
                    Err(error) => {
                        tracing::info!(%flow, %error, "UDP send refused");
                        self.local.push_back(Input::Closed {
                            flow,
                            error: Some(format!("cannot send: {error}")),
                        });
                    }
                }
            }
            Transport::Tcp | Transport::Tls => {
                let sent = self.connections.get(&flow).is_some_and(|c| c.send(bytes));
                if !sent {
                    self.connections.remove(&flow);
                    self.local.push_back(Input::Closed {
                        flow,
                        error: Some("the connection is gone or stuck".into()),
                    });
                }
            }
        }
    }

    fn connect(&mut self, flow: Flow, tls: Option<TlsTarget>) {
        if flow.transport == Transport::Udp {
            let local = transport::local_toward(self.udp_bound, flow.remote);
            self.routes.note(flow.remote);
            self.local.push_back(Input::Connected { flow, local });
            return;
        }
        // A stale connection for the same flow is replaced.
        self.connections.remove(&flow);
        tokio::spawn(transport::connect(flow, tls, self.reports_tx.clone()));
    }

    fn media_command(&mut self, call: CallId, command: MediaCommand) {
        match command {
            MediaCommand::Start(plan) => {
                if let Err(error) = self.start_media(call, *plan) {
                    tracing::warn!(call = %call, %error, "media did not start");
                    self.rtp.remove(&call);
                    self.local.push_back(Input::MediaFailed { call, error });
                }
            }
            MediaCommand::Update(negotiated) => {
                if let Some(media) = self.media.get(&call) {
                    media.update(*negotiated);
                }
            }
            MediaCommand::Dtmf(digits) => {
                if let Some(media) = self.media.get(&call) {
                    media.send_dtmf(&digits);
                }
            }
            MediaCommand::Mute(muted) => {
                if let Some(media) = self.media.get(&call) {
                    media.set_muted(muted);
                }
            }
            MediaCommand::RestartIce {
                negotiated,
                local,
                ice,
            } => {
                let Some(socket) = self.rtp.get(&call).cloned() else {
                    return;
                };
                let (setup, relay_stream, remote) = self.ice_setup(call, *ice);
                if let Some(media) = self.media.get(&call) {
                    media.restart_ice(media::IceRestart {
                        socket,
                        relay_stream,
                        local,
                        setup,
                        negotiated: *negotiated,
                        remote,
                    });
                }
            }
            MediaCommand::SwitchSocket => {
                if let (Some(media), Some(socket)) = (self.media.get(&call), self.rtp.get(&call)) {
                    media.switch_socket(socket.clone());
                }
            }
            MediaCommand::Stop => match self.media.remove(&call) {
                Some(media) => {
                    let reports = self.reports_tx.clone();
                    tokio::spawn(async move {
                        let quality = media.stop().await;
                        let _ = reports.send(Report::MediaStopped { call, quality }).await;
                    });
                }
                None => {
                    self.rtp.remove(&call);
                    self.relays.remove(&call);
                    self.local.push_back(Input::MediaStopped {
                        call,
                        quality: None,
                    });
                }
            },
        }
    }

    fn start_media(&mut self, call: CallId, mut plan: MediaPlan) -> Result<(), String> {
        let socket = self
            .rtp
            .get(&call)
            .cloned()
            .ok_or("no RTP socket for the call")?;
        let device = self
            .shared
            .take_device(call)
            .ok_or("no audio device for the call")?;
        let mut config = SessionConfig::new(plan.local, plan.stream, plan.cname.clone());
        if let Some(dtls) = &plan.dtls {
            config = config.with_dtls(&dtls.cert, dtls.local_ice.clone());
            if let Some(remote) = &dtls.remote_description {
                config = config.with_remote_description(remote);
            }
        }
        let (ice, relay_stream, remote) = match plan.ice.take() {
            Some(ice) => {
                let (setup, stream, remote) = self.ice_setup(call, ice);
                (Some(setup), stream, remote)
            }
            None => {
                // Candidates gathered for a call that negotiated DTLS-SRTP: no relay needed.
                self.relays.remove(&call);
                (None, None, None)
            }
        };
        if let Some(setup) = ice {
            config = config.with_ice(setup);
        }
        if let Some(remote) = &remote {
            config = config.with_remote_description(remote);
        }
        let session = MediaSession::new(media::media_now(), &plan.negotiated, config)
            .map_err(|e| e.to_string())?;
        let handle = media::start(
            call,
            socket,
            session,
            device,
            self.reports_tx.clone(),
            relay_stream,
        )
        .map_err(|e| e.to_string())?;
        if plan.muted {
            handle.set_muted(true);
        }
        if !plan.dtmf.is_empty() {
            handle.send_dtmf(&plan.dtmf);
        }
        self.media.insert(call, handle);
        Ok(())
    }
}

impl RunLoop {
    /// The media's ICE setup from the phone's plan, with the TURN allocation gathered for the
    /// call (and the stream to its server, for TURN over TCP or TLS), and the peer's
    /// description.
    fn ice_setup(
        &mut self,
        call: CallId,
        ice: IcePlan,
    ) -> (IceSetup, Option<RelayStream>, Option<SessionDescription>) {
        let (relay, stream) = match self.relays.remove(&call) {
            Some(relay) => (Some(relay.client), relay.stream),
            None => (None, None),
        };
        let setup = IceSetup {
            local: ice.local_ice,
            candidates: ice.candidates,
            relay,
            controlling: ice.controlling,
            policy: ice.policy,
        };
        (setup, stream, ice.remote_description)
    }
}

/// Binds an RTP socket on our address toward `peer` (port chosen by the system).
fn bind_rtp(peer: SocketAddr) -> Result<(Arc<UdpSocket>, SocketAddr), String> {
    let ip = transport::route_local_ip(peer).unwrap_or(peer.ip());
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).map_err(|e| e.to_string())?;
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let socket = UdpSocket::from_std(socket).map_err(|e| e.to_string())?;
    Ok((Arc::new(socket), local))
}

/// The events the phone emits that the runtime itself must act on, besides passing them on.
pub(crate) fn is_message_outcome(event: &PhoneEvent) -> bool {
    matches!(
        event,
        PhoneEvent::MessageDelivered { .. } | PhoneEvent::MessageFailed { .. }
    )
}
