//! The server loop: owns the sockets, the transaction layer, the registrar, the proxy state
//! and the bot calls, and feeds the sans-IO machines with what arrives and with the clock
//! (the same shape as the Handset runtime's run loop).
//!
//! Proxy state, per proxied server transaction, is a [`Forward`]:
//!
//! ```text
//!  new request ──auth, lookup──► (INVITE with push binding) Held ──REGISTER──► Forwarded
//!       │                               │ push_wait / CANCEL                     │
//!       │                               ▼                                        │
//!       └──────────── binding ───────► Forwarded ──final response relayed──► Answered
//!                                       │ CANCEL: 200, CANCEL downstream (after a 1xx)
//!                                       │ Timer C (180 s, INVITE): CANCEL + 408
//!                                       ▼
//!  removed once both its server and client transactions have terminated
//! ```
//!
//! Dialogs set up by a forwarded INVITE are remembered by Call-ID (caller's tag and both
//! flows), so in-dialog requests, ACKs for 2xx and late 2xx retransmissions are sent to the
//! other party over the flow it uses, whatever address its Contact names.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use handset_sip::message::{HeaderName, Message, Method, NameAddr, Request, Response, SipUri, Uri};
use handset_sip::transaction::{
    Output, TransactionEvent, TransactionId, TransactionLayer, cancel_request, new_branch,
};
use handset_sip::usage::invite::{CallOutput, TransactionFailure};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{broadcast, mpsc, watch};

use crate::auth::{NonceStore, Verdict, random_hex};
use crate::bot::BotCall;
use crate::push::{self, HttpEndpoint, PushJob};
use crate::registrar::{Binding, ExpiryPolicy, RegisterOutcome, Registrar};
use crate::transport::{Flow, Incoming, Transport, Transports};
use crate::{Command, PbxConfig, PbxError, PbxEvent, PushInfo, PushKind};

/// RFC 3261 §16.6 Timer C: how long a forwarded INVITE may stay without final response
/// after its last provisional one.
const TIMER_C: Duration = Duration::from_secs(180);

/// Methods the PBX routes, advertised in `Allow`.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, REGISTER, MESSAGE";

/// Who a transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    /// The server side of a forward.
    Server(u64),
    /// The client side of a forward.
    Client(u64),
    /// A CANCEL we sent downstream (its answer is not needed).
    Cancel,
    /// A bot call.
    Bot(u64),
}

/// An INVITE held for a push wake-up.
struct PushWait {
    user: String,
    info: PushInfo,
    deadline: Instant,
}

/// One proxied request.
struct Forward {
    server: TransactionId,
    caller: Flow,
    /// The request as it arrived.
    request: Request,
    method: Method,
    call_id: String,
    /// An out-of-dialog INVITE (sets up a dialog, Record-Routed).
    initial_invite: bool,
    callee_user: Option<String>,
    client: Option<TransactionId>,
    /// The request as forwarded (for the CANCEL).
    sent: Option<Request>,
    callee: Option<Flow>,
    provisional: bool,
    cancel_pending: bool,
    final_sent: bool,
    /// To tag of the responses the PBX itself sends.
    local_tag: String,
    push: Option<PushWait>,
    timer_c: Option<Instant>,
    server_done: bool,
    client_done: bool,
}

/// A dialog the PBX Record-Routed.
struct DialogRoute {
    caller_tag: String,
    caller: Flow,
    callee: Flow,
}

impl DialogRoute {
    /// Where a message of this dialog goes: a request from the caller (its From tag) goes to
    /// the callee, anything else to the caller.
    fn toward_other(&self, from_tag: Option<&str>) -> Flow {
        if from_tag == Some(self.caller_tag.as_str()) {
            self.callee
        } else {
            self.caller
        }
    }
}

struct Server {
    config: PbxConfig,
    /// The address the PBX advertises (Via, Record-Route, bot Contact).
    local: SocketAddr,
    layer: TransactionLayer<Flow>,
    transports: Transports,
    rng: StdRng,
    events: broadcast::Sender<PbxEvent>,
    registrar: Registrar,
    nonces: NonceStore,
    forwards: HashMap<u64, Forward>,
    next_id: u64,
    owners: HashMap<TransactionId, Owner>,
    dialogs: HashMap<String, DialogRoute>,
    bots: HashMap<u64, BotCall>,
    push: Option<mpsc::UnboundedSender<PushJob>>,
    shutdown: watch::Receiver<()>,
}

/// Validates `config`, binds the sockets and spawns the server loop. Returns the address.
pub(crate) async fn start(
    config: PbxConfig,
    events: broadcast::Sender<PbxEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Result<SocketAddr, PbxError> {
    let endpoint = config
        .push_endpoint
        .as_deref()
        .map(HttpEndpoint::parse)
        .transpose()
        .map_err(PbxError::InvalidPushEndpoint)?;
    if config.users.iter().any(|(u, _)| {
        u.is_empty()
            || !u
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.!~*'+".contains(&b))
    }) {
        return Err(PbxError::InvalidConfig(
            "user names must be non-empty SIP user tokens".into(),
        ));
    }
    if let Some(bot) = &config.bot
        && config.users.iter().any(|(u, _)| *u == bot.user)
    {
        return Err(PbxError::InvalidConfig(
            "the bot's user name is also a user".into(),
        ));
    }
    if config.min_expires > config.max_expires {
        return Err(PbxError::InvalidConfig(
            "min_expires is above max_expires".into(),
        ));
    }
    let (shutdown_tx, shutdown_rx) = watch::channel(());
    let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
    let (transports, bound) = Transports::bind(config.bind, incoming_tx, shutdown_rx.clone())
        .await
        .map_err(|error| PbxError::Bind {
            addr: config.bind,
            error,
        })?;
    let local = if bound.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], bound.port()))
    } else {
        bound
    };
    let push = endpoint.map(|endpoint| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(push::worker(
            endpoint,
            rx,
            events.clone(),
            shutdown_rx.clone(),
        ));
        tx
    });
    let mut rng = StdRng::from_rng(&mut rand::rng());
    let nonces = NonceStore::new(config.nonce_lifetime, &mut rng);
    let registrar = Registrar::new(
        &config.users,
        ExpiryPolicy {
            default: config.default_expires,
            min: config.min_expires,
            max: config.max_expires,
        },
    );
    let server = Server {
        layer: TransactionLayer::new(config.timers),
        config,
        local,
        transports,
        rng,
        events,
        registrar,
        nonces,
        forwards: HashMap::new(),
        next_id: 0,
        owners: HashMap::new(),
        dialogs: HashMap::new(),
        bots: HashMap::new(),
        push,
        shutdown: shutdown_rx,
    };
    tokio::spawn(server.run(commands, incoming_rx, shutdown_tx));
    Ok(local)
}

fn tag_of(addr: Result<NameAddr, handset_sip::message::ParseError>) -> Option<String> {
    addr.ok().and_then(|a| a.tag().map(str::to_string))
}

/// Removes the top Via value (several may share one line).
fn pop_top_via(headers: &mut handset_sip::message::Headers) {
    let rest: Vec<String> = headers
        .values(&HeaderName::Via)
        .into_iter()
        .skip(1)
        .map(str::to_string)
        .collect();
    headers.remove(&HeaderName::Via);
    for via in rest.into_iter().rev() {
        headers.push_front(HeaderName::Via, via);
    }
}

impl Server {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut incoming: mpsc::UnboundedReceiver<Incoming>,
        shutdown: watch::Sender<()>,
    ) {
        loop {
            let deadline = self.next_deadline();
            let sleep = async {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                command = commands.recv() => match command {
                    None => break,
                    Some(Command::Shutdown(done)) => {
                        self.stop_all();
                        drop(shutdown);
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Bindings(user, reply)) => {
                        let now = Instant::now();
                        let list = self
                            .registrar
                            .live(&user, now)
                            .iter()
                            .map(|b| b.info(now))
                            .collect();
                        let _ = reply.send(list);
                    }
                    Some(Command::PushBinding(user, reply)) => {
                        let _ = reply.send(self.registrar.user(&user).and_then(|u| u.push.clone()));
                    }
                },
                Some(item) = incoming.recv() => self.handle_incoming(item),
                _ = sleep => {}
            }
            let now = Instant::now();
            self.layer.handle_timeout(now);
            self.handle_timers(now);
            self.pump().await;
        }
        self.stop_all();
        drop(shutdown);
    }

    fn stop_all(&mut self) {
        for bot in self.bots.values_mut() {
            bot.stop_media();
        }
        self.bots.clear();
    }

    fn emit(&self, event: PbxEvent) {
        let _ = self.events.send(event);
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn next_deadline(&self) -> Option<Instant> {
        let forwards = self.forwards.values().flat_map(|f| {
            [f.push.as_ref().map(|p| p.deadline), f.timer_c]
                .into_iter()
                .flatten()
        });
        self.layer
            .poll_timeout()
            .into_iter()
            .chain(forwards)
            .chain(self.bots.values().filter_map(BotCall::poll_timeout))
            .min()
    }

    fn handle_incoming(&mut self, item: Incoming) {
        let now = Instant::now();
        match item {
            Incoming::Message { flow, message } => {
                if let Err(error) = self
                    .layer
                    .handle_message(now, message, flow, flow.reliable())
                {
                    tracing::debug!(%error, "message dropped");
                }
            }
            Incoming::Connected { flow, writer } => {
                self.transports.add_connection(flow.remote, writer);
            }
            Incoming::Closed { flow } => {
                self.transports.forget(&flow.remote);
                for (user, binding) in self.registrar.flow_closed(&flow) {
                    self.emit(PbxEvent::Unregistered {
                        user,
                        contact: binding.contact.uri.to_string(),
                    });
                }
            }
        }
    }

    fn handle_timers(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| {
                f.push.as_ref().is_some_and(|p| p.deadline <= now)
                    || f.timer_c.is_some_and(|at| at <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(f) = self.forwards.get_mut(&id) else {
                continue;
            };
            if let Some(wait) = f.push.take_if(|p| p.deadline <= now) {
                let call_id = f.call_id.clone();
                self.emit(PbxEvent::PushTimeout {
                    call_id: call_id.clone(),
                    user: wait.user.clone(),
                });
                self.post_cancel(&call_id, "timeout", &wait);
                self.local_final(now, id, 480);
                self.emit(PbxEvent::Refused {
                    method: "INVITE".into(),
                    call_id,
                    status: 480,
                });
            } else if f.timer_c.is_some_and(|at| at <= now) {
                f.timer_c = None;
                if f.provisional {
                    self.send_cancel(now, id);
                }
                self.local_final(now, id, 408);
            }
        }
        let ids: Vec<u64> = self.bots.keys().copied().collect();
        for id in ids {
            let events = match self.bots.get_mut(&id) {
                Some(bot) if bot.poll_timeout().is_some_and(|at| at <= now) => {
                    bot.handle_timeout(now)
                }
                _ => Vec::new(),
            };
            for event in events {
                self.emit(event);
            }
        }
    }

    /// Runs the machines until none has anything left to do.
    async fn pump(&mut self) {
        loop {
            let mut progressed = false;
            let ids: Vec<u64> = self.bots.keys().copied().collect();
            for id in ids {
                while let Some(output) = self.bots.get_mut(&id).and_then(|b| b.call.poll_output()) {
                    progressed = true;
                    self.bot_output(id, output);
                }
                if self.bots.get(&id).is_some_and(BotCall::is_done) {
                    self.bots.remove(&id);
                }
            }
            while let Some(output) = self.layer.poll_output() {
                progressed = true;
                match output {
                    Output::Transmit { to, message, .. } => {
                        self.transports.send(&to, message.to_bytes()).await;
                    }
                    Output::Event(event) => self.handle_transaction_event(event),
                }
            }
            if !progressed {
                return;
            }
        }
    }

    // ----- building blocks ---------------------------------------------------------------

    fn via(&mut self, transport: Transport) -> String {
        format!(
            "SIP/2.0/{} {};branch={}",
            transport.via_name(),
            self.local,
            new_branch(&mut self.rng)
        )
    }

    fn record_route(&self, transport: Transport) -> String {
        match transport {
            Transport::Udp => format!("<sip:{};lr>", self.local),
            // The PBX serves no TLS; its TCP route serves stream peers.
            Transport::Tcp | Transport::Tls => format!("<sip:{};transport=tcp;lr>", self.local),
        }
    }

    fn is_own(&self, uri: &Uri) -> bool {
        uri.as_sip().is_some_and(|u| {
            u.host.ip() == Some(self.local.ip()) && u.port.unwrap_or(5060) == self.local.port()
        })
    }

    /// Removes the Route entries naming the PBX from the top of the route set.
    fn pop_own_routes(&self, request: &mut Request) {
        let Ok(routes) = request.headers.routes() else {
            return;
        };
        let own = routes.iter().take_while(|r| self.is_own(&r.uri)).count();
        if own == 0 {
            return;
        }
        request.headers.remove(&HeaderName::Route);
        for route in &routes[own..] {
            request.headers.push(HeaderName::Route, route.to_string());
        }
    }

    /// Prepares a request for the next hop: Max-Forwards, our credentials removed,
    /// Record-Route (initial INVITEs) and our Via.
    fn prepare_forward(&mut self, request: &mut Request, from: Transport, to: Transport, rr: bool) {
        let hops = request.headers.max_forwards().ok().flatten().unwrap_or(70);
        request
            .headers
            .set(HeaderName::MaxForwards, hops.saturating_sub(1).to_string());
        request.headers.remove(&HeaderName::ProxyAuthorization);
        if rr {
            if from != to {
                request
                    .headers
                    .push_front(HeaderName::RecordRoute, self.record_route(from));
            }
            request
                .headers
                .push_front(HeaderName::RecordRoute, self.record_route(to));
        }
        let via = self.via(to);
        request.headers.push_front(HeaderName::Via, via);
    }

    /// A response of the PBX's own; `tag` is added to To when it has none (not for 100).
    fn local_response(&self, request: &Request, status: u16, tag: Option<&str>) -> Response {
        let mut response = Response::to_request(request, status);
        if let (true, Some(tag), Ok(mut to)) = (status > 100, tag, request.headers.to())
            && to.tag().is_none()
        {
            to.set_param("tag", Some(tag.to_string()));
            response.headers.set(HeaderName::To, to.to_string());
        }
        response.headers.push(
            HeaderName::Server,
            format!("handset-pbx ({})", self.config.serial),
        );
        response
    }

    fn reply(&mut self, now: Instant, tx: TransactionId, request: &Request, status: u16) {
        let tag = random_hex(&mut self.rng, 6);
        let mut response = self.local_response(request, status, Some(&tag));
        if status == 405 || (status == 200 && request.method == Method::Options) {
            response.headers.push(HeaderName::Allow, ALLOW);
        }
        self.send_response(now, tx, response);
    }

    fn send_response(&mut self, now: Instant, tx: TransactionId, response: Response) {
        if let Err(error) = self.layer.send_response(now, tx, response) {
            tracing::debug!(%error, "response not sent");
        }
    }

    /// Checks `header` credentials for a request; sends the challenge or the refusal itself
    /// and returns `false` when the request must stop here.
    fn authenticate(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: &Request,
        header: HeaderName,
    ) -> Option<String> {
        let registrar = &self.registrar;
        let verdict = self.nonces.check(
            now,
            request.headers.get_all(&header),
            &self.config.realm,
            request.method.as_str(),
            &request.body,
            |u| registrar.password(u),
        );
        let (status, challenge) = match verdict {
            Verdict::Ok(user) => return Some(user),
            Verdict::Missing => (0, false),
            Verdict::Stale => (0, true),
            Verdict::Forbidden(user) => {
                self.emit(PbxEvent::AuthFailed {
                    user,
                    method: request.method.to_string(),
                });
                (403, false)
            }
        };
        if status == 403 {
            self.reply(now, tx, request, 403);
            return None;
        }
        let (code, name) = if header == HeaderName::Authorization {
            (401, HeaderName::WwwAuthenticate)
        } else {
            (407, HeaderName::ProxyAuthenticate)
        };
        let value = self
            .nonces
            .challenge(now, &self.config.realm, challenge, &mut self.rng);
        let tag = random_hex(&mut self.rng, 6);
        let mut response = self.local_response(request, code, Some(&tag));
        response.headers.push(name, value);
        self.send_response(now, tx, response);
        None
    }

    fn post(&self, kind: PushKind, call_id: &str, user: &str, body: String) {
        if let Some(push) = &self.push {
            let _ = push.send(PushJob {
                kind,
                call_id: call_id.to_string(),
                user: user.to_string(),
                body,
            });
        }
    }

    fn post_cancel(&self, call_id: &str, reason: &str, wait: &PushWait) {
        let body =
            push::cancel_payload(call_id, reason, &wait.user, &self.config.serial, &wait.info);
        self.post(PushKind::Cancel, call_id, &wait.user, body);
    }

    // ----- transaction events ------------------------------------------------------------

    fn handle_transaction_event(&mut self, event: TransactionEvent<Flow>) {
        let now = Instant::now();
        match event {
            TransactionEvent::NewRequest {
                id,
                request,
                from,
                cancels,
            } => self.on_request(now, id, request, from, cancels),
            TransactionEvent::Response { id, response } => match self.owners.get(&id).copied() {
                Some(Owner::Client(f)) => self.on_client_response(now, f, response),
                Some(Owner::Bot(b)) => {
                    if let Some(bot) = self.bots.get_mut(&b) {
                        bot.call.handle_response(now, id, response);
                    }
                }
                _ => {}
            },
            TransactionEvent::Timeout { id } | TransactionEvent::TransportError { id } => {
                let timeout = matches!(event, TransactionEvent::Timeout { .. });
                match self.owners.get(&id).copied() {
                    Some(Owner::Client(f)) => {
                        let unanswered = self.forwards.get(&f).is_some_and(|f| !f.final_sent);
                        if unanswered {
                            self.local_final(now, f, if timeout { 408 } else { 503 });
                        }
                    }
                    Some(Owner::Bot(b)) => {
                        let failure = if timeout {
                            TransactionFailure::Timeout
                        } else {
                            TransactionFailure::Transport
                        };
                        if let Some(bot) = self.bots.get_mut(&b) {
                            bot.call.handle_transaction_failure(now, id, failure);
                        }
                    }
                    _ => {}
                }
            }
            TransactionEvent::Terminated { id } => match self.owners.remove(&id) {
                Some(Owner::Server(f)) => {
                    if let Some(fw) = self.forwards.get_mut(&f) {
                        fw.server_done = true;
                    }
                    self.maybe_forget(f);
                }
                Some(Owner::Client(f)) => {
                    if let Some(fw) = self.forwards.get_mut(&f) {
                        fw.client_done = true;
                    }
                    self.maybe_forget(f);
                }
                _ => {}
            },
            TransactionEvent::StrayAck { request, .. } => self.on_ack(request),
            TransactionEvent::StrayResponse { response, .. } => self.on_stray_response(response),
        }
    }

    fn maybe_forget(&mut self, id: u64) {
        let done = self
            .forwards
            .get(&id)
            .is_some_and(|f| f.server_done && (f.client.is_none() || f.client_done));
        if done {
            self.forwards.remove(&id);
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        from: Flow,
        cancels: Option<TransactionId>,
    ) {
        match request.method {
            Method::Register => self.on_register(now, tx, request, from),
            Method::Cancel => self.on_cancel(now, tx, request, cancels),
            _ => {
                if let Some(id) = self
                    .bots
                    .iter()
                    .find(|(_, b)| b.matches(&request))
                    .map(|(id, _)| *id)
                {
                    self.owners.insert(tx, Owner::Bot(id));
                    if let Some(bot) = self.bots.get_mut(&id) {
                        bot.call.handle_request(now, tx, request);
                    }
                    return;
                }
                let in_dialog = request.headers.to().is_ok_and(|t| t.tag().is_some());
                if in_dialog {
                    self.route_in_dialog(now, tx, request, from);
                } else {
                    self.route_new(now, tx, request, from);
                }
            }
        }
    }

    // ----- registrar ---------------------------------------------------------------------

    fn on_register(&mut self, now: Instant, tx: TransactionId, request: Request, from: Flow) {
        let Some(user) = request
            .headers
            .to()
            .ok()
            .and_then(|t| t.uri.as_sip().and_then(|u| u.user.clone()))
        else {
            self.reply(now, tx, &request, 400);
            return;
        };
        let Some(authenticated) = self.authenticate(now, tx, &request, HeaderName::Authorization)
        else {
            return;
        };
        if authenticated != user {
            self.emit(PbxEvent::AuthFailed {
                user: authenticated,
                method: "REGISTER".into(),
            });
            self.reply(now, tx, &request, 403);
            return;
        }
        match self.registrar.register(&user, &request, from, now) {
            RegisterOutcome::Ok {
                bindings,
                added,
                removed,
            } => {
                let tag = random_hex(&mut self.rng, 6);
                let mut response = self.local_response(&request, 200, Some(&tag));
                for binding in &bindings {
                    let mut contact = binding.contact.clone();
                    let left = binding.expires_at.saturating_duration_since(now).as_secs();
                    contact.set_param("expires", Some(left.to_string()));
                    response
                        .headers
                        .push(HeaderName::Contact, contact.to_string());
                }
                self.send_response(now, tx, response);
                for binding in &removed {
                    self.emit(PbxEvent::Unregistered {
                        user: user.clone(),
                        contact: binding.contact.uri.to_string(),
                    });
                }
                for binding in &added {
                    let expires = binding
                        .expires_at
                        .saturating_duration_since(now)
                        .as_secs()
                        .try_into()
                        .unwrap_or(u32::MAX);
                    self.emit(PbxEvent::Registered {
                        user: user.clone(),
                        contact: binding.contact.uri.to_string(),
                        expires,
                        push: binding.push.is_some(),
                    });
                }
                if let Some(fresh) = added.last() {
                    self.wake_held(now, &user, fresh);
                }
            }
            RegisterOutcome::TooBrief(min) => {
                let tag = random_hex(&mut self.rng, 6);
                let mut response = self.local_response(&request, 423, Some(&tag));
                response
                    .headers
                    .push(HeaderName::MinExpires, min.to_string());
                self.send_response(now, tx, response);
            }
            RegisterOutcome::Bad(why) => {
                tracing::debug!(why, "REGISTER refused");
                self.reply(now, tx, &request, 400);
            }
        }
    }

    /// The callee registered: forward the INVITEs held for it to the fresh binding.
    fn wake_held(&mut self, now: Instant, user: &str, binding: &Binding) {
        let held: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| f.push.as_ref().is_some_and(|p| p.user == user))
            .map(|(id, _)| *id)
            .collect();
        for id in held {
            if let Some(f) = self.forwards.get_mut(&id) {
                f.push = None;
            }
            self.forward_to(now, id, binding.contact.uri.clone(), binding.flow, true);
        }
    }

    // ----- proxy -------------------------------------------------------------------------

    fn new_forward(
        &mut self,
        tx: TransactionId,
        caller: Flow,
        request: Request,
        initial_invite: bool,
        callee_user: Option<String>,
    ) -> u64 {
        let id = self.next_id();
        let local_tag = random_hex(&mut self.rng, 6);
        let call_id = request.headers.call_id().unwrap_or_default().to_string();
        self.owners.insert(tx, Owner::Server(id));
        self.forwards.insert(
            id,
            Forward {
                server: tx,
                caller,
                method: request.method.clone(),
                request,
                call_id,
                initial_invite,
                callee_user,
                client: None,
                sent: None,
                callee: None,
                provisional: false,
                cancel_pending: false,
                final_sent: false,
                local_tag,
                push: None,
                timer_c: None,
                server_done: false,
                client_done: false,
            },
        );
        id
    }

    /// Answers a forward's request with a final response of the PBX's own.
    fn local_final(&mut self, now: Instant, id: u64, status: u16) {
        let Some(f) = self.forwards.get_mut(&id) else {
            return;
        };
        if f.final_sent {
            return;
        }
        f.final_sent = true;
        f.push = None;
        f.timer_c = None;
        let (server, request, tag, call_id, ends_dialog) = (
            f.server,
            f.request.clone(),
            f.local_tag.clone(),
            f.call_id.clone(),
            f.initial_invite || f.method == Method::Bye,
        );
        // A failed call, or a BYE that got no answer: the dialog is over either way.
        if ends_dialog {
            self.dialogs.remove(&call_id);
        }
        let response = self.local_response(&request, status, Some(&tag));
        self.send_response(now, server, response);
    }

    /// A new out-of-dialog request (not REGISTER, not CANCEL).
    fn route_new(&mut self, now: Instant, tx: TransactionId, request: Request, from: Flow) {
        let method = request.method.clone();
        let call_id = request.headers.call_id().unwrap_or_default().to_string();
        let refuse = |server: &mut Server, status: u16| {
            server.reply(now, tx, &request, status);
            server.emit(PbxEvent::Refused {
                method: method.to_string(),
                call_id: call_id.clone(),
                status,
            });
        };
        let Some(user) = request.uri.as_sip().and_then(|u| u.user.clone()) else {
            // Addressed to the PBX itself.
            let status = if method == Method::Options { 200 } else { 404 };
            self.reply(now, tx, &request, status);
            return;
        };
        if request.headers.max_forwards().ok().flatten() == Some(0) {
            refuse(self, 483);
            return;
        }
        if self.config.authenticate_calls
            && method != Method::Options
            && self
                .authenticate(now, tx, &request, HeaderName::ProxyAuthorization)
                .is_none()
        {
            return;
        }
        if let Some(bot) = self.config.bot.clone().filter(|b| b.user == user) {
            match method {
                Method::Invite => {
                    let result = BotCall::incoming(
                        request,
                        tx,
                        from,
                        &bot,
                        self.local,
                        &format!("handset-pbx ({})", self.config.serial),
                        now,
                        self.shutdown.clone(),
                    );
                    match result {
                        Ok(call) => {
                            let id = self.next_id();
                            self.owners.insert(tx, Owner::Bot(id));
                            self.bots.insert(id, call);
                        }
                        Err(response) => self.send_response(now, tx, response),
                    }
                }
                Method::Options => self.reply(now, tx, &request, 200),
                _ => self.reply(now, tx, &request, 405),
            }
            return;
        }
        if !self.registrar.exists(&user) {
            refuse(self, 404);
            return;
        }
        let invite = method == Method::Invite;
        let push = if invite && self.push.is_some() {
            self.registrar.user(&user).and_then(|u| u.push.clone())
        } else {
            None
        };
        let binding = self.registrar.live(&user, now).into_iter().next();
        if push.is_none() && binding.is_none() {
            refuse(self, 480);
            return;
        }
        let caller_addr = request.headers.from().ok();
        let id = self.new_forward(tx, from, request.clone(), invite, Some(user.clone()));
        if invite {
            let trying = self.local_response(&request, 100, None);
            self.send_response(now, tx, trying);
        }
        match (push, binding) {
            (Some(info), _) => {
                // RFC 8599 §5.6: wake the device and wait for its REGISTER.
                let (from_uri, from_name) = match &caller_addr {
                    Some(addr) => {
                        let name = addr.display.clone().unwrap_or_else(|| {
                            addr.uri
                                .as_sip()
                                .and_then(|u| u.user.clone())
                                .unwrap_or_default()
                        });
                        let uri = match &addr.uri {
                            Uri::Sip(sip) => {
                                let mut bare = SipUri::new(sip.user.as_deref(), sip.host.clone());
                                bare.secure = sip.secure;
                                bare.port = sip.port;
                                bare.to_string()
                            }
                            other => other.to_string(),
                        };
                        (uri, name)
                    }
                    None => (String::new(), String::new()),
                };
                let body = push::incoming_call_payload(
                    &call_id,
                    &from_uri,
                    &from_name,
                    &user,
                    &self.config.serial,
                    &info,
                );
                self.post(PushKind::IncomingCall, &call_id, &user, body);
                let ringing = self.local_response(&request, 180, None);
                self.send_response(now, tx, ringing);
                if let Some(f) = self.forwards.get_mut(&id) {
                    f.push = Some(PushWait {
                        user: user.clone(),
                        info,
                        deadline: now + self.config.push_wait,
                    });
                }
                self.emit(PbxEvent::PushSent { call_id, user });
            }
            (None, Some(binding)) => {
                self.forward_to(now, id, binding.contact.uri.clone(), binding.flow, false);
            }
            (None, None) => {}
        }
    }

    /// Sends forward `id`'s request to `target` over `flow`.
    fn forward_to(&mut self, now: Instant, id: u64, target: Uri, flow: Flow, after_push: bool) {
        let Some(f) = self.forwards.get(&id) else {
            return;
        };
        if f.final_sent {
            return;
        }
        let mut request = f.request.clone();
        let (caller, initial) = (f.caller, f.initial_invite);
        request.uri = target;
        self.prepare_forward(&mut request, caller.transport, flow.transport, initial);
        match self
            .layer
            .send_request(now, request.clone(), flow, flow.reliable())
        {
            Ok(client) => {
                self.owners.insert(client, Owner::Client(id));
                let Some(f) = self.forwards.get_mut(&id) else {
                    return;
                };
                f.client = Some(client);
                f.sent = Some(request);
                f.callee = Some(flow);
                let event = PbxEvent::Routed {
                    method: f.method.to_string(),
                    call_id: f.call_id.clone(),
                    to: f.callee_user.clone().unwrap_or_default(),
                    after_push,
                };
                if initial {
                    f.timer_c = Some(now + TIMER_C);
                    let caller_tag = tag_of(f.request.headers.from()).unwrap_or_default();
                    self.dialogs.insert(
                        f.call_id.clone(),
                        DialogRoute {
                            caller_tag,
                            caller,
                            callee: flow,
                        },
                    );
                }
                self.emit(event);
            }
            Err(error) => {
                tracing::debug!(%error, "request not forwarded");
                self.local_final(now, id, 500);
            }
        }
    }

    /// An in-dialog request (To tag) that is not for the bot.
    fn route_in_dialog(
        &mut self,
        now: Instant,
        tx: TransactionId,
        mut request: Request,
        from: Flow,
    ) {
        let call_id = request.headers.call_id().unwrap_or_default().to_string();
        let from_tag = tag_of(request.headers.from());
        let Some(to) = self
            .dialogs
            .get(&call_id)
            .map(|d| d.toward_other(from_tag.as_deref()))
        else {
            self.reply(now, tx, &request, 481);
            return;
        };
        if request.headers.max_forwards().ok().flatten() == Some(0) {
            self.reply(now, tx, &request, 483);
            return;
        }
        self.pop_own_routes(&mut request);
        let id = self.new_forward(tx, from, request.clone(), false, None);
        let target = request.uri.clone();
        self.forward_to(now, id, target, to, false);
    }

    /// A response in a forward's client transaction.
    fn on_client_response(&mut self, now: Instant, id: u64, mut response: Response) {
        pop_top_via(&mut response.headers);
        let Some(f) = self.forwards.get_mut(&id) else {
            return;
        };
        let status = response.status;
        if status < 200 {
            f.provisional = true;
            if f.initial_invite && f.timer_c.is_some() {
                f.timer_c = Some(now + TIMER_C);
            }
            let cancel = std::mem::take(&mut f.cancel_pending);
            let relay = status > 100 && !f.final_sent;
            let server = f.server;
            if cancel {
                self.send_cancel(now, id);
            }
            if relay {
                self.send_response(now, server, response);
            }
            return;
        }
        let success = (200..300).contains(&status);
        let invite = f.method == Method::Invite;
        if f.final_sent && !(success && invite) {
            // A final response after our own (Timer C, 408): nothing more to say upstream.
            return;
        }
        let first = !f.final_sent;
        f.final_sent = true;
        f.timer_c = None;
        let (server, caller, call_id, initial, method) = (
            f.server,
            f.caller,
            f.call_id.clone(),
            f.initial_invite,
            f.method.clone(),
        );
        if initial && !success {
            self.dialogs.remove(&call_id);
        }
        if method == Method::Bye {
            self.dialogs.remove(&call_id);
            self.emit(PbxEvent::CallEnded {
                call_id: call_id.clone(),
            });
        }
        if initial && first {
            self.emit(PbxEvent::CallAnswered { call_id, status });
        }
        if self
            .layer
            .send_response(now, server, response.clone())
            .is_err()
            && success
            && invite
        {
            // The server transaction is gone: 2xx retransmissions go statelessly.
            self.layer
                .send_stateless(caller, caller.reliable(), Message::Response(response));
        }
    }

    fn send_cancel(&mut self, now: Instant, id: u64) {
        let Some(f) = self.forwards.get(&id) else {
            return;
        };
        let (Some(sent), Some(callee)) = (f.sent.as_ref(), f.callee) else {
            return;
        };
        let Ok(cancel) = cancel_request(sent) else {
            return;
        };
        match self
            .layer
            .send_request(now, cancel, callee, callee.reliable())
        {
            Ok(tx) => {
                self.owners.insert(tx, Owner::Cancel);
            }
            Err(error) => tracing::debug!(%error, "CANCEL not sent"),
        }
    }

    fn on_cancel(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        cancels: Option<TransactionId>,
    ) {
        if let Some(ist) = cancels
            && let Some(id) = self
                .bots
                .iter()
                .find(|(_, b)| b.invite_tx == ist)
                .map(|(id, _)| *id)
        {
            self.owners.insert(tx, Owner::Bot(id));
            if let Some(bot) = self.bots.get_mut(&id) {
                bot.call.handle_request(now, tx, request);
            }
            return;
        }
        let target = cancels.and_then(|ist| match self.owners.get(&ist) {
            Some(Owner::Server(f)) => Some(*f),
            _ => None,
        });
        let Some(id) = target else {
            // RFC 3261 §9.2: a CANCEL for a transaction already answered finally gets 200
            // and has no effect; one for no transaction at all gets 481.
            let status = if cancels.is_some() { 200 } else { 481 };
            self.reply(now, tx, &request, status);
            return;
        };
        // Hop by hop (RFC 3261 §16.10): answer the CANCEL here...
        self.reply(now, tx, &request, 200);
        let Some(f) = self.forwards.get_mut(&id) else {
            return;
        };
        if f.final_sent {
            return;
        }
        let call_id = f.call_id.clone();
        self.emit(PbxEvent::Cancelled {
            call_id: call_id.clone(),
        });
        let Some(f) = self.forwards.get_mut(&id) else {
            return;
        };
        if let Some(wait) = f.push.take() {
            self.local_final(now, id, 487);
            self.post_cancel(&call_id, "caller_cancelled", &wait);
            return;
        }
        // ...and cancel the forwarded INVITE, once it may be (after a provisional response).
        match (f.client.is_some(), f.provisional) {
            (true, true) => self.send_cancel(now, id),
            (true, false) => f.cancel_pending = true,
            (false, _) => self.local_final(now, id, 487),
        }
    }

    /// An ACK for a 2xx (or one matching no transaction).
    fn on_ack(&mut self, mut request: Request) {
        let now = Instant::now();
        if let Some(bot) = self.bots.values_mut().find(|b| b.matches(&request)) {
            bot.call.handle_stray_ack(now, request);
            return;
        }
        let call_id = request.headers.call_id().unwrap_or_default().to_string();
        let from_tag = tag_of(request.headers.from());
        let Some(to) = self
            .dialogs
            .get(&call_id)
            .map(|d| d.toward_other(from_tag.as_deref()))
        else {
            return;
        };
        self.pop_own_routes(&mut request);
        let hops = request.headers.max_forwards().ok().flatten().unwrap_or(70);
        if hops == 0 {
            return;
        }
        request
            .headers
            .set(HeaderName::MaxForwards, (hops - 1).to_string());
        let via = self.via(to.transport);
        request.headers.push_front(HeaderName::Via, via);
        self.layer
            .send_stateless(to, to.reliable(), Message::Request(request));
    }

    /// A response matching no client transaction: a late 2xx retransmission, or for the bot.
    fn on_stray_response(&mut self, mut response: Response) {
        let now = Instant::now();
        if let Some(bot) = self
            .bots
            .values_mut()
            .find(|b| b.call.matches_response(&response))
        {
            bot.call.handle_stray_response(now, response);
            return;
        }
        let ours = response.headers.top_via().is_ok_and(|v| {
            v.host.ip() == Some(self.local.ip()) && v.port == Some(self.local.port())
        });
        if !ours || !(200..300).contains(&response.status) {
            return;
        }
        pop_top_via(&mut response.headers);
        let call_id = response.headers.call_id().unwrap_or_default().to_string();
        // The request went the other way: back to whoever sent it.
        let from_tag = tag_of(response.headers.from());
        let Some(to) = self.dialogs.get(&call_id).map(|d| {
            if from_tag.as_deref() == Some(d.caller_tag.as_str()) {
                d.caller
            } else {
                d.callee
            }
        }) else {
            return;
        };
        self.layer
            .send_stateless(to, to.reliable(), Message::Response(response));
    }

    // ----- bot ---------------------------------------------------------------------------

    fn bot_output(&mut self, id: u64, output: CallOutput) {
        let now = Instant::now();
        let Some(peer) = self.bots.get(&id).map(|b| b.peer) else {
            return;
        };
        match output {
            CallOutput::SendResponse { tx, response } => {
                if self.layer.send_response(now, tx, response.clone()).is_err() {
                    self.layer
                        .send_stateless(peer, peer.reliable(), Message::Response(response));
                }
            }
            CallOutput::SendRequest {
                handle,
                mut request,
            } => {
                let via = self.via(peer.transport);
                request.headers.push_front(HeaderName::Via, via);
                let sent = self.layer.send_request(now, request, peer, peer.reliable());
                if let Ok(tx) = sent {
                    self.owners.insert(tx, Owner::Bot(id));
                }
                if let Some(bot) = self.bots.get_mut(&id) {
                    match sent {
                        Ok(tx) => bot.call.request_sent(handle, tx),
                        Err(_) => bot.call.request_not_sent(now, handle),
                    }
                }
            }
            CallOutput::SendAck(mut request) => {
                let via = self.via(peer.transport);
                request.headers.push_front(HeaderName::Via, via);
                self.layer
                    .send_stateless(peer, peer.reliable(), Message::Request(request));
            }
            CallOutput::SendCancel { .. } => {}
            CallOutput::Event(event) => {
                let reported = self
                    .bots
                    .get_mut(&id)
                    .and_then(|b| b.handle_event(now, event));
                if let Some(event) = reported {
                    self.emit(event);
                }
            }
        }
    }
}
