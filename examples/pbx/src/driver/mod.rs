//! The tokio driver of the [`PbxMachine`]: it owns the sockets, the clock, the HTTP client of
//! push notifications, the event broadcast and the echo bot, and holds no SIP decision. Its
//! loop feeds the machine what arrives, carries out what the machine outputs, and sleeps until
//! the machine's (or the bot's) next timeout.

#![allow(clippy::disallowed_methods)] // the driver is where the wall clock is read

mod push_http;
mod transport;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use crate::auth::random_hex;
use crate::bot::{BOT_FLOW, BotAgent};
use crate::machine::{Input, MachineConfig, Output, PbxMachine};
use crate::push::PushNotification;
use crate::{BindingInfo, BotConfig, PbxError, PbxEvent, PushInfo};
use push_http::HttpEndpoint;
use transport::{Incoming, Transports};

/// How a [`Pbx`] is set up: where it listens, where pushes go, the echo bot, and what its
/// machine decides with. `Default` gives a PBX on `127.0.0.1:0` (a free port) with realm
/// `handset.demo`, no users, no push endpoint, a 10 s push wait and no bot.
#[derive(Debug, Clone)]
pub struct PbxConfig {
    /// Address for UDP and TCP (the same port for both; port 0 picks a free one).
    pub bind: SocketAddr,
    /// Where push notifications are POSTed: `http://IP:PORT/path` (IP literal or
    /// `localhost`; no TLS). Without it push bindings are remembered but never used.
    pub push_endpoint: Option<String>,
    /// The echo bot, if any.
    pub bot: Option<BotConfig>,
    /// Users, realm, timers and policies of the SIP side ([`PbxMachine`]). Its
    /// `push_notifications` is set from `push_endpoint` when the PBX starts.
    pub machine: MachineConfig,
}

impl Default for PbxConfig {
    fn default() -> Self {
        PbxConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            push_endpoint: None,
            bot: None,
            machine: MachineConfig::default(),
        }
    }
}

impl PbxConfig {
    /// Adds a user with its password.
    pub fn with_user(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.machine.users.push((user.into(), password.into()));
        self
    }

    /// Enables the echo bot.
    pub fn with_bot(mut self, bot: BotConfig) -> Self {
        self.bot = Some(bot);
        self
    }

    /// Sets the push endpoint (`http://IP:PORT/path`).
    pub fn with_push_endpoint(mut self, url: impl Into<String>) -> Self {
        self.push_endpoint = Some(url.into());
        self
    }

    /// Sets how long INVITEs wait for a pushed callee.
    pub fn with_push_wait(mut self, wait: Duration) -> Self {
        self.machine.push_wait = wait;
        self
    }
}

enum Command {
    Bindings(String, oneshot::Sender<Vec<BindingInfo>>),
    PushBinding(String, oneshot::Sender<Option<PushInfo>>),
    Shutdown(oneshot::Sender<()>),
}

/// A running PBX. Dropping it stops the server too (without waiting).
#[derive(Debug)]
pub struct Pbx {
    addr: SocketAddr,
    realm: String,
    commands: mpsc::UnboundedSender<Command>,
    events: broadcast::Sender<PbxEvent>,
}

impl Pbx {
    /// Binds the sockets and starts serving. With a bot, it is registered before this
    /// returns.
    pub async fn start(config: PbxConfig) -> Result<Pbx, PbxError> {
        let realm = config.machine.realm.clone();
        let (events, _) = broadcast::channel(1024);
        let (commands, command_rx) = mpsc::unbounded_channel();
        let addr = start(config, events.clone(), command_rx).await?;
        Ok(Pbx {
            addr,
            realm,
            commands,
            events,
        })
    }

    /// The address the PBX serves (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PBX as a registrar/proxy URI, `sip:127.0.0.1:PORT`.
    pub fn server_uri(&self) -> String {
        format!("sip:{}", self.addr)
    }

    /// The PBX as a TCP registrar/proxy URI, `sip:127.0.0.1:PORT;transport=tcp`.
    pub fn server_uri_tcp(&self) -> String {
        format!("sip:{};transport=tcp", self.addr)
    }

    /// The digest realm.
    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// A stream of [`PbxEvent`]s from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PbxEvent> {
        self.events.subscribe()
    }

    /// The live bindings of `user`, newest first (empty for unknown users or a stopped PBX).
    pub async fn bindings(&self, user: &str) -> Vec<BindingInfo> {
        let (tx, rx) = oneshot::channel();
        if self
            .commands
            .send(Command::Bindings(user.to_string(), tx))
            .is_err()
        {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// The push binding of `user`, if it has one.
    pub async fn push_binding(&self, user: &str) -> Option<PushInfo> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(Command::PushBinding(user.to_string(), tx))
            .ok()?;
        rx.await.ok().flatten()
    }

    /// Stops the server: sockets close, held INVITEs and bot calls are dropped.
    pub async fn shutdown(self) {
        let (tx, rx) = oneshot::channel();
        if self.commands.send(Command::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// The driver's state: the machine, the sockets, and where the machine's outputs go.
struct Driver {
    machine: PbxMachine,
    /// When the machine wants [`Input::Timeout`] (its last drain's [`Output::Timeout`]).
    machine_deadline: Option<Instant>,
    transports: Transports,
    bot: Option<BotAgent>,
    events: broadcast::Sender<PbxEvent>,
    push: Option<mpsc::UnboundedSender<PushNotification>>,
}

/// Validates `config`, binds the sockets and spawns the driver loop. Returns the address.
async fn start(
    config: PbxConfig,
    events: broadcast::Sender<PbxEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
) -> Result<SocketAddr, PbxError> {
    let PbxConfig {
        bind,
        push_endpoint,
        bot,
        mut machine,
    } = config;
    let endpoint = push_endpoint
        .as_deref()
        .map(HttpEndpoint::parse)
        .transpose()
        .map_err(PbxError::InvalidPushEndpoint)?;
    machine.push_notifications = endpoint.is_some();
    let mut rng = StdRng::from_rng(&mut rand::rng());
    // The bot registers like any user, with a password nobody else knows.
    let bot_password = random_hex(&mut rng, 16);
    if let Some(bot) = &bot {
        if machine.users.iter().any(|(u, _)| *u == bot.user) {
            return Err(PbxError::InvalidConfig(
                "the bot's user name is also a user".into(),
            ));
        }
        machine.users.push((bot.user.clone(), bot_password.clone()));
    }
    machine
        .validate()
        .map_err(|e| PbxError::InvalidConfig(e.0))?;
    let serial = machine.serial.clone();
    let (shutdown_tx, shutdown_rx) = watch::channel(());
    let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
    let (transports, bound) = Transports::bind(bind, incoming_tx, shutdown_rx.clone())
        .await
        .map_err(|error| PbxError::Bind { addr: bind, error })?;
    let local = if bound.ip().is_unspecified() {
        SocketAddr::from(([127, 0, 0, 1], bound.port()))
    } else {
        bound
    };
    let machine = PbxMachine::new(machine, local, Box::new(StdRng::from_rng(&mut rng)))
        .map_err(|e| PbxError::InvalidConfig(e.0))?;
    let push = endpoint.map(|endpoint| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(push_http::worker(
            endpoint,
            rx,
            events.clone(),
            shutdown_rx.clone(),
        ));
        tx
    });
    let bot = bot.map(|bot| BotAgent::new(bot, local, &bot_password, &serial, shutdown_rx));
    let mut driver = Driver {
        machine,
        machine_deadline: None,
        transports,
        bot,
        events,
        push,
    };
    let now = Instant::now();
    driver.feed(now, Input::Timeout);
    if let Some(bot) = &mut driver.bot {
        bot.start(now);
    }
    // The bot's REGISTER, challenge and 200 go round here, before anyone can call it.
    driver.settle(now).await;
    tokio::spawn(driver.run(commands, incoming_rx, shutdown_tx));
    Ok(local)
}

impl Driver {
    async fn run(
        mut self,
        mut commands: mpsc::UnboundedReceiver<Command>,
        mut incoming: mpsc::UnboundedReceiver<Incoming>,
        shutdown: watch::Sender<()>,
    ) {
        loop {
            let deadline = [
                self.machine_deadline,
                self.bot.as_ref().and_then(BotAgent::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .min();
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
                        self.stop();
                        drop(shutdown);
                        let _ = done.send(());
                        return;
                    }
                    Some(Command::Bindings(user, reply)) => {
                        let _ = reply.send(self.machine.bindings(&user, Instant::now()));
                    }
                    Some(Command::PushBinding(user, reply)) => {
                        let _ = reply.send(self.machine.push_binding(&user));
                    }
                },
                Some(item) = incoming.recv() => self.handle_incoming(item),
                _ = sleep => {}
            }
            let now = Instant::now();
            if self.machine_deadline.is_some_and(|at| at <= now) {
                self.feed(now, Input::Timeout);
            }
            if let Some(bot) = &mut self.bot
                && bot.poll_timeout().is_some_and(|at| at <= now)
            {
                bot.handle_timeout(now);
            }
            self.settle(now).await;
        }
        self.stop();
        drop(shutdown);
    }

    fn stop(&mut self) {
        if let Some(bot) = &mut self.bot {
            bot.stop();
        }
    }

    fn handle_incoming(&mut self, item: Incoming) {
        let now = Instant::now();
        match item {
            Incoming::Received { flow, bytes } => {
                self.feed(now, Input::Received { flow, bytes });
            }
            Incoming::Connected { flow, writer } => {
                self.transports.add_connection(flow.remote, writer);
            }
            Incoming::Closed { flow } => {
                self.transports.close(&flow.remote);
                self.feed(now, Input::Closed { flow });
            }
        }
    }

    /// Gives the machine one input. Its next timeout is the one the following drain ends
    /// with, or none.
    fn feed(&mut self, now: Instant, input: Input) {
        self.machine_deadline = None;
        self.machine.handle_input(now, input);
    }

    /// Carries out the machine's outputs and shuttles messages between the machine and the
    /// bot until neither has anything left.
    async fn settle(&mut self, now: Instant) {
        loop {
            while let Some(output) = self.machine.poll_output() {
                match output {
                    Output::Transmit { flow, bytes } if flow == BOT_FLOW => {
                        if let Some(bot) = &mut self.bot {
                            bot.handle_bytes(now, &bytes);
                        }
                    }
                    Output::Transmit { flow, bytes } => self.transports.send(&flow, bytes).await,
                    Output::Disconnect { flow } => self.transports.close(&flow.remote),
                    Output::Push(notification) => {
                        if let Some(push) = &self.push {
                            let _ = push.send(notification);
                        }
                    }
                    Output::Event(event) => {
                        let _ = self.events.send(event);
                    }
                    Output::Timeout(at) => self.machine_deadline = Some(at),
                }
            }
            let Some(bot) = &mut self.bot else {
                return;
            };
            while let Some(event) = bot.poll_event() {
                let _ = self.events.send(event);
            }
            let mut to_machine = Vec::new();
            while let Some(bytes) = bot.poll_transmit() {
                to_machine.push(bytes);
            }
            if to_machine.is_empty() {
                return;
            }
            for bytes in to_machine {
                self.feed(
                    now,
                    Input::Received {
                        flow: BOT_FLOW,
                        bytes,
                    },
                );
            }
        }
    }
}
