//! The echo bot: a user agent of its own, outside the PBX machine. It registers to the PBX
//! like any user (its user and a random password are added to the machine's users) and
//! takes the INVITEs the PBX forwards to it, so the machine knows nothing about it and a
//! Handset phone can take its place later.
//!
//! The driver connects it to the machine over an in-process reliable flow ([`BOT_FLOW`]):
//! what the machine transmits there goes to [`BotAgent::handle_bytes`], and what
//! [`BotAgent::poll_transmit`] yields is fed to the machine as received on that flow. Its
//! calls ([`call`]) run their media over real loopback sockets in tokio tasks.

#![allow(clippy::disallowed_methods)] // media timing reads the wall clock (see call.rs)

mod call;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Instant;

use handset_sip::auth::{CredentialStore, Credentials};
use handset_sip::message::{HeaderName, Host, Message, Method, Request, Response, SipUri};
use handset_sip::transaction::{
    Output as LayerOutput, Timers, TransactionEvent, TransactionId, TransactionLayer, new_branch,
};
use handset_sip::transport::{Flow, Transport};
use handset_sip::usage::invite::{CallOutput, TransactionFailure};
use handset_sip::usage::registration::{
    ALLOW, Registration, RegistrationConfig, RegistrationEvent, RegistrationOutput, RetryPolicy,
};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::watch;

use crate::{BotConfig, PbxEvent};
use call::BotCall;

/// The flow between the machine and the bot, as the machine sees it. Reliable, so neither
/// side retransmits over a link that cannot lose anything; port 0 is no real peer's.
pub(crate) const BOT_FLOW: Flow = Flow {
    transport: Transport::Tcp,
    remote: SocketAddr::V4(std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
};

/// The bot's Via sent-by: a name that resolves nowhere, since responses come back over the
/// flow, never to the Via.
const VIA_HOST: &str = "echo-bot.invalid";

/// What owns a bot transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Registration,
    Call(u64),
}

/// The echo bot's user agent (see the module documentation).
pub(crate) struct BotAgent {
    config: BotConfig,
    /// The PBX's address: the bot's Contact names it, so every request for the bot reaches
    /// the PBX, which relays it over [`BOT_FLOW`].
    pbx: SocketAddr,
    user_agent: String,
    layer: TransactionLayer<()>,
    registration: Registration,
    calls: BTreeMap<u64, BotCall>,
    next_call: u64,
    owners: HashMap<TransactionId, Owner>,
    rng: StdRng,
    shutdown: watch::Receiver<()>,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<PbxEvent>,
}

impl BotAgent {
    /// A bot for `config.user` registering to the PBX at `pbx` with `password`.
    pub(crate) fn new(
        config: BotConfig,
        pbx: SocketAddr,
        password: &str,
        serial: &str,
        shutdown: watch::Receiver<()>,
    ) -> BotAgent {
        let mut rng = StdRng::from_rng(&mut rand::rng());
        let host = Host::from(pbx.ip());
        let mut registrar = SipUri::new(None, host.clone());
        registrar.port = Some(pbx.port());
        let mut contact = SipUri::new(Some(&config.user), host.clone());
        contact.port = Some(pbx.port());
        let user_agent = format!("handset-pbx echo bot ({serial})");
        let registration = Registration::new(
            RegistrationConfig {
                aor: SipUri::new(Some(&config.user), host),
                registrar,
                contact,
                display_name: Some(config.display_name.clone()),
                expires: 3600,
                instance_id: None,
                reg_id: None,
                contact_params: Vec::new(),
                rewrite_contact: false,
                retry: RetryPolicy::default(),
                user_agent: user_agent.clone(),
            },
            CredentialStore::with_default(Credentials::with_password(
                config.user.clone(),
                password,
            )),
            Box::new(StdRng::from_rng(&mut rng)),
        );
        BotAgent {
            config,
            pbx,
            user_agent,
            layer: TransactionLayer::new(Timers::default()),
            registration,
            calls: BTreeMap::new(),
            next_call: 0,
            owners: HashMap::new(),
            rng,
            shutdown,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// Sends the first REGISTER.
    pub(crate) fn start(&mut self, now: Instant) {
        self.registration.start(now);
        self.pump(now);
    }

    /// Bytes the machine sent to the bot: always one whole message.
    pub(crate) fn handle_bytes(&mut self, now: Instant, bytes: &[u8]) {
        match Message::parse(bytes) {
            Ok(message) => {
                if let Err(error) = self.layer.handle_message(now, message, (), true) {
                    tracing::debug!(%error, "echo bot dropped a message");
                }
            }
            Err(error) => tracing::debug!(%error, "echo bot dropped malformed bytes"),
        }
        self.pump(now);
    }

    /// The earliest deadline of the bot's transactions, registration and calls.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [self.layer.poll_timeout(), self.registration.poll_timeout()]
            .into_iter()
            .chain(self.calls.values().map(BotCall::poll_timeout))
            .flatten()
            .min()
    }

    /// Runs every timer due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        self.registration.handle_timeout(now);
        for bot in self.calls.values_mut() {
            if bot.poll_timeout().is_some_and(|at| at <= now) {
                self.events.extend(bot.handle_timeout(now));
            }
        }
        self.pump(now);
    }

    /// The next message for the machine.
    pub(crate) fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event to report.
    pub(crate) fn poll_event(&mut self) -> Option<PbxEvent> {
        self.events.pop_front()
    }

    /// Stops every call's media (the PBX shuts down).
    pub(crate) fn stop(&mut self) {
        for bot in self.calls.values_mut() {
            bot.stop_media();
        }
        self.calls.clear();
    }

    /// Runs the machines until none has anything left to do.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            while let Some(output) = self.registration.poll_output() {
                progressed = true;
                match output {
                    RegistrationOutput::Send(request) => self.send_register(now, request),
                    RegistrationOutput::Event(RegistrationEvent::Failed { reason, .. }) => {
                        tracing::warn!(%reason, "echo bot not registered");
                    }
                    RegistrationOutput::Event(_) => {}
                }
            }
            let ids: Vec<u64> = self.calls.keys().copied().collect();
            for id in ids {
                while let Some(output) = self.calls.get_mut(&id).and_then(|b| b.call.poll_output())
                {
                    progressed = true;
                    self.call_output(now, id, output);
                }
                if self.calls.get(&id).is_some_and(BotCall::is_done) {
                    self.calls.remove(&id);
                }
            }
            while let Some(output) = self.layer.poll_output() {
                progressed = true;
                match output {
                    LayerOutput::Transmit { message, .. } => {
                        self.transmits.push_back(message.to_bytes());
                    }
                    LayerOutput::Event(event) => self.handle_transaction_event(now, event),
                }
            }
            if !progressed {
                return;
            }
        }
    }

    fn via(&mut self) -> String {
        format!(
            "SIP/2.0/TCP {VIA_HOST};branch={}",
            new_branch(&mut self.rng)
        )
    }

    fn send_register(&mut self, now: Instant, mut request: Request) {
        let via = self.via();
        request.headers.push_front(HeaderName::Via, via);
        match self.layer.send_request(now, request, (), true) {
            Ok(tx) => {
                self.owners.insert(tx, Owner::Registration);
            }
            Err(error) => {
                tracing::warn!(%error, "echo bot REGISTER not sent");
                self.registration
                    .handle_transaction_failure(now, TransactionFailure::Transport);
            }
        }
    }

    fn call_output(&mut self, now: Instant, id: u64, output: CallOutput) {
        match output {
            CallOutput::SendResponse { tx, response } => {
                if self.layer.send_response(now, tx, response.clone()).is_err() {
                    self.layer
                        .send_stateless((), true, Message::Response(response));
                }
            }
            CallOutput::SendRequest {
                handle,
                mut request,
            } => {
                let via = self.via();
                request.headers.push_front(HeaderName::Via, via);
                let sent = self.layer.send_request(now, request, (), true);
                if let Ok(tx) = sent {
                    self.owners.insert(tx, Owner::Call(id));
                }
                if let Some(bot) = self.calls.get_mut(&id) {
                    match sent {
                        Ok(tx) => bot.call.request_sent(handle, tx),
                        Err(_) => bot.call.request_not_sent(now, handle),
                    }
                }
            }
            CallOutput::SendAck(mut request) => {
                let via = self.via();
                request.headers.push_front(HeaderName::Via, via);
                self.layer
                    .send_stateless((), true, Message::Request(request));
            }
            // The bot never cancels: it only answers calls.
            CallOutput::SendCancel { .. } => {}
            CallOutput::Event(event) => {
                let reported = self
                    .calls
                    .get_mut(&id)
                    .and_then(|b| b.handle_event(now, event));
                self.events.extend(reported);
            }
        }
    }

    fn handle_transaction_event(&mut self, now: Instant, event: TransactionEvent<()>) {
        match event {
            TransactionEvent::NewRequest {
                id,
                request,
                cancels,
                ..
            } => self.on_request(now, id, request, cancels),
            TransactionEvent::Response { id, response } => match self.owners.get(&id) {
                Some(Owner::Registration) => self.registration.handle_response(now, &response),
                Some(Owner::Call(call)) => {
                    if let Some(bot) = self.calls.get_mut(call) {
                        bot.call.handle_response(now, id, response);
                    }
                }
                None => {}
            },
            TransactionEvent::Timeout { id } | TransactionEvent::TransportError { id } => {
                let failure = if matches!(event, TransactionEvent::Timeout { .. }) {
                    TransactionFailure::Timeout
                } else {
                    TransactionFailure::Transport
                };
                match self.owners.get(&id) {
                    Some(Owner::Registration) => {
                        self.registration.handle_transaction_failure(now, failure);
                    }
                    Some(Owner::Call(call)) => {
                        if let Some(bot) = self.calls.get_mut(call) {
                            bot.call.handle_transaction_failure(now, id, failure);
                        }
                    }
                    None => {}
                }
            }
            TransactionEvent::Terminated { id } => {
                self.owners.remove(&id);
            }
            TransactionEvent::StrayAck { request, .. } => {
                if let Some(bot) = self.calls.values_mut().find(|b| b.matches(&request)) {
                    bot.call.handle_stray_ack(now, request);
                }
            }
            TransactionEvent::StrayResponse { response, .. } => {
                if let Some(bot) = self
                    .calls
                    .values_mut()
                    .find(|b| b.call.matches_response(&response))
                {
                    bot.call.handle_stray_response(now, response);
                }
            }
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        cancels: Option<TransactionId>,
    ) {
        let call = match cancels {
            Some(invite) => self
                .calls
                .iter()
                .find(|(_, b)| b.invite_tx == invite)
                .map(|(id, _)| *id),
            None => self
                .calls
                .iter()
                .find(|(_, b)| b.matches(&request))
                .map(|(id, _)| *id),
        };
        if let Some(id) = call {
            self.owners.insert(tx, Owner::Call(id));
            if let Some(bot) = self.calls.get_mut(&id) {
                bot.call.handle_request(now, tx, request);
            }
            return;
        }
        let in_dialog = request.headers.to().is_ok_and(|t| t.tag().is_some());
        let status = match request.method {
            Method::Invite if !in_dialog => {
                self.incoming_call(now, tx, request);
                return;
            }
            Method::Options if !in_dialog => 200,
            _ if in_dialog || request.method == Method::Cancel => 481,
            _ => 405,
        };
        let mut response = Response::to_request(&request, status);
        if matches!(status, 200 | 405) {
            response.headers.push(HeaderName::Allow, ALLOW);
        }
        if let Err(error) = self.layer.send_response(now, tx, response) {
            tracing::debug!(%error, "echo bot response not sent");
        }
    }

    fn incoming_call(&mut self, now: Instant, tx: TransactionId, request: Request) {
        let result = BotCall::incoming(
            request,
            tx,
            &self.config,
            self.pbx,
            &self.user_agent,
            now,
            self.shutdown.clone(),
        );
        match result {
            Ok(call) => {
                self.next_call += 1;
                self.owners.insert(tx, Owner::Call(self.next_call));
                self.calls.insert(self.next_call, call);
            }
            Err(response) => {
                if let Err(error) = self.layer.send_response(now, tx, response) {
                    tracing::debug!(%error, "echo bot refusal not sent");
                }
            }
        }
    }
}
