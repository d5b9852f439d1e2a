//! The runtime's API: [`Handset`], a handle to one phone machine and the run loop that does
//! its I/O. A command takes the machine's lock, is decided at once by the machine, and wakes
//! the run loop to carry out what follows; no command waits for the network, except
//! [`Handset::send_message`], which returns once the message is delivered or failed.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use handset_media::dtls_session::DtlsCert;
use handset_media::sdp::MediaConfig;
use handset_phone::phone::{
    AccountConfig, AccountId, CallId, Command, Directory, Input, MessageId, NoDirectory, Output,
    Phone, PhoneConfig, PhoneError, PhoneEvent, Reply,
};
use handset_phone::push::{IncomingCallReport, ReportId};
use handset_phone::screen::{RouteInput, ScreenInput};
use handset_sip::transaction::Timers;
use handset_store::Store;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::{Notify, mpsc, oneshot};

use crate::audio::AudioDevice;
use crate::dns::{ResolverSource, SipResolver};
use crate::run_loop::{RunLoop, is_message_outcome};
use crate::store::StoreDirectory;

/// What the runtime reports to the application: the phone's events, plus
/// [`PhoneEvent::Stopped`] if the runtime dies.
pub type HandsetEvent = PhoneEvent;

/// The application's end of the event stream.
pub type Events = mpsc::Receiver<HandsetEvent>;

/// Events waiting for the application before new ones are dropped (and logged).
const EVENT_QUEUE: usize = 4096;
/// Reports from the runtime's tasks waiting for the run loop.
const REPORT_QUEUE: usize = 1024;

/// The default [`RuntimeConfig::route_watch`].
pub const DEFAULT_ROUTE_WATCH: Duration = Duration::from_secs(2);

/// Runtime-wide settings.
#[derive(Clone)]
pub struct RuntimeConfig {
    /// Local address of the UDP socket (port 0 picks one).
    pub bind: SocketAddr,
    /// CRLF keep-alive interval on TCP/TLS connections (RFC 5626 recommends 95–120 s).
    pub keepalive: Duration,
    /// Keep-alive interval on UDP flows carrying a registration (STUN with an outbound
    /// registrar, else CRLF); `None` sends none. See `PhoneConfig::udp_keepalive`.
    pub udp_keepalive: Option<Duration>,
    /// How often the runtime checks which local address the routes to its servers and peers
    /// leave from, and reports a network change when one moved (a desktop or laptop changing
    /// networks). `None` leaves it to the app: mobile shells call [`Handset::network_changed`]
    /// from the platform's network callbacks instead of waking every few seconds.
    pub route_watch: Option<Duration>,
    /// Where DNS answers come from. With [`ResolverSource::System`] and no system
    /// configuration (Android has no `/etc/resolv.conf`) the runtime still starts: IP
    /// addresses work, host names fail the accounts' registrations until
    /// [`Handset::set_dns_servers`] gives servers.
    pub dns: ResolverSource,
    /// Transaction timers (T1, T2, T4).
    pub timers: Timers,
    /// The on-device database: every call goes into its history, blocked numbers are refused
    /// with 603, and callers are looked up in its contacts. Without one, none of that
    /// happens.
    pub store: Option<Arc<Store>>,
    /// Country (ISO 3166 alpha-2, e.g. "US", "DE") that national numbers are dialled in, for
    /// matching callers against contacts and the blocklist.
    pub default_country: String,
    /// How long a call reported from a push waits for its INVITE before it ends as missed.
    pub push_wait_for_invite: Duration,
    /// Most calls at once (486 beyond).
    pub max_calls: usize,
    /// How long an incoming call rings before it is refused with 480 as missed.
    pub ring_timeout: Duration,
    /// Answers caller lookups (contact names, blocked numbers) instead of the store.
    pub directory: Option<Arc<dyn Directory + Send + Sync>>,
}

impl fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeConfig")
            .field("bind", &self.bind)
            .field("keepalive", &self.keepalive)
            .field("udp_keepalive", &self.udp_keepalive)
            .field("route_watch", &self.route_watch)
            .field("dns", &self.dns)
            .field("timers", &self.timers)
            .field("store", &self.store)
            .field("default_country", &self.default_country)
            .field("push_wait_for_invite", &self.push_wait_for_invite)
            .field("max_calls", &self.max_calls)
            .field("ring_timeout", &self.ring_timeout)
            .field("directory", &self.directory.is_some())
            .finish()
    }
}

/// A [`Directory`] given in [`RuntimeConfig::directory`].
struct SharedDirectory(Arc<dyn Directory + Send + Sync>);

impl Directory for SharedDirectory {
    fn caller(&self, number: &str) -> handset_phone::phone::CallerInfo {
        self.0.caller(number)
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        let phone = PhoneConfig::default();
        RuntimeConfig {
            bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
            keepalive: phone.keepalive,
            udp_keepalive: phone.udp_keepalive,
            route_watch: Some(DEFAULT_ROUTE_WATCH),
            dns: ResolverSource::System,
            timers: phone.timers,
            store: None,
            default_country: "US".to_string(),
            push_wait_for_invite: phone.push_wait_for_invite,
            max_calls: phone.max_calls,
            ring_timeout: phone.ring_timeout,
            directory: None,
        }
    }
}

/// How to place or answer a call.
pub struct CallOptions {
    /// The audio device of the call.
    pub device: Box<dyn AudioDevice>,
    /// Media settings; the account's when `None`.
    pub media: Option<MediaConfig>,
    /// For a call placed: its CallKit / Telecom id, when the app chose it first (CallKit's
    /// `CXStartCallAction` UUID); one is made up otherwise. Ignored when answering.
    pub report_id: Option<ReportId>,
}

impl fmt::Debug for CallOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CallOptions")
            .field("device", &self.device.name())
            .field("media", &self.media)
            .field("report_id", &self.report_id)
            .finish()
    }
}

/// What [`Handset::handle_push`] returns: the report for CallKit / Telecom and the caller's
/// name from the contacts, when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushReport {
    /// The report (its `Debug` never shows the caller).
    pub report: IncomingCallReport,
    /// The caller's name from the store's contacts, if known.
    pub contact_name: Option<String>,
}

/// Errors of the runtime API: the phone machine's refusals as they are, plus what only the
/// runtime meets (DNS, TLS and socket set-up, message delivery, a stopped runtime).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandsetError {
    /// The phone refused the command (unknown account or call, invalid server, target or
    /// message, a call in the wrong state, a malformed push payload); nothing changed.
    #[error(transparent)]
    Phone(#[from] PhoneError),
    /// The DNS configuration is unusable.
    #[error("DNS: {0}")]
    Dns(String),
    /// The TLS settings are unusable.
    #[error("{0}")]
    Tls(String),
    /// A socket could not be opened.
    #[error("network: {0}")]
    Io(String),
    /// The message was not delivered (rejected, unanswered, authentication failed).
    #[error("message not delivered: {0}")]
    MessageFailed(String),
    /// An argument is out of range.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The runtime has stopped.
    #[error("the Handset runtime has stopped")]
    Stopped,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic under these locks stops the runtime (see `Shared::handle`); the data stays
    // readable for the clean-up.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the handles and the run loop share.
pub(crate) struct Shared {
    phone: Mutex<Phone>,
    /// Why the runtime stopped, once it did.
    stopped: Mutex<Option<String>>,
    /// Commands were handled: the run loop has outputs to carry out.
    pub(crate) wake: Notify,
    /// The audio device of each call, until its media starts.
    devices: Mutex<HashMap<CallId, Box<dyn AudioDevice>>>,
    /// Callers of [`Handset::send_message`] waiting for the outcome.
    messages: Mutex<HashMap<MessageId, oneshot::Sender<Result<(), HandsetError>>>>,
    events: mpsc::Sender<HandsetEvent>,
    /// The resolver for the next lookups; replaced by [`Handset::set_dns_servers`].
    resolver: Mutex<Arc<SipResolver>>,
    /// Set by the run loop when it has closed everything and ended.
    pub(crate) finished: tokio::sync::watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn is_stopped(&self) -> bool {
        lock(&self.stopped).is_some()
    }

    /// Runs `f` on the phone; a panic inside stops the runtime (and is reported) instead of
    /// unwinding into the caller.
    fn with_phone<T>(&self, f: impl FnOnce(&mut Phone) -> T) -> Result<T, HandsetError> {
        if self.is_stopped() {
            return Err(HandsetError::Stopped);
        }
        let mut phone = lock(&self.phone);
        match std::panic::catch_unwind(AssertUnwindSafe(|| f(&mut phone))) {
            Ok(value) => Ok(value),
            Err(panic) => {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                drop(phone);
                self.stop(format!("internal error in the phone: {message}"));
                Err(HandsetError::Stopped)
            }
        }
    }

    /// Stops the runtime for good and tells the application why.
    pub(crate) fn stop(&self, reason: String) {
        tracing::error!(%reason, "the runtime stopped");
        *lock(&self.stopped) = Some(reason.clone());
        let _ = self.events.try_send(PhoneEvent::Stopped { reason });
        self.wake.notify_one();
    }

    /// Feeds one input at the current time.
    pub(crate) fn handle(&self, input: Input) -> Result<Reply, HandsetError> {
        self.with_phone(|phone| phone.handle_input(Instant::now(), input))?
            .map_err(HandsetError::from)
    }

    /// Takes everything the phone has for the run loop.
    pub(crate) fn drain(&self) -> Vec<Output> {
        self.with_phone(|phone| std::iter::from_fn(|| phone.poll_output()).collect())
            .unwrap_or_default()
    }

    /// The resolver a lookup starting now uses.
    pub(crate) fn resolver(&self) -> Arc<SipResolver> {
        lock(&self.resolver).clone()
    }

    pub(crate) fn take_device(&self, call: CallId) -> Option<Box<dyn AudioDevice>> {
        lock(&self.devices).remove(&call)
    }

    /// Passes an event on to the application (and to a waiting `send_message`).
    pub(crate) fn deliver(&self, event: HandsetEvent) {
        if is_message_outcome(&event) {
            let (id, result) = match &event {
                PhoneEvent::MessageDelivered { message } => (*message, Ok(())),
                PhoneEvent::MessageFailed { message, reason } => {
                    (*message, Err(HandsetError::MessageFailed(reason.clone())))
                }
                _ => return,
            };
            if let Some(waiter) = lock(&self.messages).remove(&id) {
                let _ = waiter.send(result);
            }
        }
        if let PhoneEvent::Call {
            call,
            state: handset_phone::phone::CallState::Ended { .. },
            ..
        } = &event
        {
            // A device given for a call that never got media is dropped with it.
            lock(&self.devices).remove(call);
        }
        if let Err(error) = self.events.try_send(event) {
            tracing::error!(%error, "the application is not reading events: one was dropped");
        }
    }
}

/// A running Handset: a handle to the phone and its run loop. Cloning shares the same phone.
#[derive(Clone)]
pub struct Handset {
    shared: Arc<Shared>,
    store: Option<Arc<Store>>,
    default_country: String,
    /// Dropped with the last handle, which ends the run loop.
    _alive: mpsc::Sender<()>,
}

impl fmt::Debug for Handset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handset")
            .field("stopped", &self.shared.is_stopped())
            .finish_non_exhaustive()
    }
}

impl Handset {
    /// Starts the run loop on the current tokio runtime. Returns the handle and the event
    /// stream.
    pub async fn start(config: RuntimeConfig) -> Result<(Handset, Events), HandsetError> {
        let io = |e: std::io::Error| HandsetError::Io(e.to_string());
        let bound = crate::transport::bind_udp(config.bind).map_err(io)?;
        // Sends go through a std handle of the same socket: tokio's `try_send_to` refuses
        // until its reactor has seen the socket writable, which dropped the first datagram.
        let udp_send = bound.try_clone().map_err(io)?;
        let udp_bound = bound.local_addr().map_err(io)?;
        let udp = Arc::new(tokio::net::UdpSocket::from_std(bound).map_err(io)?);
        let resolver = Arc::new(
            SipResolver::new(config.dns.clone()).map_err(|e| HandsetError::Dns(e.to_string()))?,
        );
        let dtls_cert = DtlsCert::generate().map_err(|e| HandsetError::Tls(e.to_string()))?;
        let directory: Box<dyn Directory> = match (&config.directory, &config.store) {
            (Some(directory), _) => Box::new(SharedDirectory(directory.clone())),
            (None, Some(store)) => Box::new(StoreDirectory::new(
                store.clone(),
                config.default_country.clone(),
            )),
            (None, None) => Box::new(NoDirectory),
        };
        let phone = Phone::new(
            PhoneConfig {
                timers: config.timers,
                max_calls: config.max_calls,
                ring_timeout: config.ring_timeout,
                push_wait_for_invite: config.push_wait_for_invite,
                keepalive: config.keepalive,
                udp_keepalive: config.udp_keepalive,
                dtls_cert: Some(Arc::new(dtls_cert)),
                ..PhoneConfig::default()
            },
            directory,
            Box::new(StdRng::from_os_rng()),
        );
        let (events_tx, events) = mpsc::channel(EVENT_QUEUE);
        let shared = Arc::new(Shared {
            phone: Mutex::new(phone),
            stopped: Mutex::new(None),
            wake: Notify::new(),
            devices: Mutex::new(HashMap::new()),
            messages: Mutex::new(HashMap::new()),
            events: events_tx,
            resolver: Mutex::new(resolver),
            finished: tokio::sync::watch::Sender::new(false),
        });
        let (reports_tx, reports) = mpsc::channel(REPORT_QUEUE);
        let (alive_tx, alive) = mpsc::channel(1);
        tokio::spawn(crate::transport::read_udp(udp.clone(), reports_tx.clone()));
        let run_loop = RunLoop {
            shared: shared.clone(),
            udp_send,
            udp_bound,
            reports_tx,
            reports,
            sink: config
                .store
                .clone()
                .map(|store| crate::store::spawn_sink(store, shared.clone())),
            alive,
            connections: HashMap::new(),
            rtp: HashMap::new(),
            relays: HashMap::new(),
            media: HashMap::new(),
            deadline: None,
            local: Default::default(),
            routes: crate::run_loop::RouteWatch::new(config.route_watch),
        };
        let supervised = shared.clone();
        let task = tokio::spawn(run_loop.run());
        tokio::spawn(async move {
            if let Err(error) = task.await
                && error.is_panic()
            {
                supervised.stop("internal error in the run loop".into());
            }
        });
        Ok((
            Handset {
                shared,
                store: config.store,
                default_country: config.default_country,
                _alive: alive_tx,
            },
            events,
        ))
    }

    /// Hands a command to the phone and wakes the run loop.
    fn command(&self, command: Command) -> Result<Reply, HandsetError> {
        let reply = self.shared.handle(Input::Command(command));
        self.shared.wake.notify_one();
        reply
    }

    /// Adds an account and starts registering it. Progress arrives as events.
    pub async fn add_account(&self, config: AccountConfig) -> Result<AccountId, HandsetError> {
        if config.ca_file.is_some() || config.pinned_sha256.is_some() {
            crate::transport::tls_config(config.ca_file.as_deref(), config.pinned_sha256.as_ref())
                .map_err(|e| HandsetError::Tls(e.to_string()))?;
        }
        match self.command(Command::AddAccount(Box::new(config)))? {
            Reply::Account(id) => Ok(id),
            _ => Err(HandsetError::Stopped),
        }
    }

    /// Replaces the DNS servers (each over UDP, TCP for truncated answers) for every lookup
    /// from now on: an empty list reads the system's configuration again (none on Android).
    /// Call it with the platform's servers at start and whenever the network changes. Cached
    /// answers are dropped; lookups under way finish with the old servers. Accounts whose
    /// server could not be found register again at once; servers already found are kept until
    /// they fail.
    pub fn set_dns_servers(&self, servers: Vec<SocketAddr>) -> Result<(), HandsetError> {
        let mut unique: Vec<SocketAddr> = Vec::with_capacity(servers.len());
        for server in servers {
            if !unique.contains(&server) {
                unique.push(server);
            }
        }
        let source = if unique.is_empty() {
            ResolverSource::System
        } else {
            ResolverSource::Nameservers(unique)
        };
        let resolver = SipResolver::new(source).map_err(|e| HandsetError::Dns(e.to_string()))?;
        tracing::info!(
            has_servers = resolver.has_name_servers(),
            "DNS servers replaced"
        );
        *lock(&self.shared.resolver) = Arc::new(resolver);
        self.command(Command::DnsChanged).map(drop)
    }

    /// The device moved to another network (Wi-Fi ↔ cellular, a new Wi-Fi, a new address):
    /// cached DNS answers are dropped, connections are opened again, every account looks its
    /// server up and registers again from its new address (replacing its binding), and
    /// accounts waiting to retry try at once. Mobile shells call it from the platform's
    /// network callbacks; on desktops the runtime notices by itself (see
    /// [`RuntimeConfig::route_watch`]). Answered calls move to the new network (a new RTP
    /// socket and a re-INVITE, restarting ICE when they use it), unanswered outgoing calls end
    /// as network lost, ringing incoming calls stay answerable.
    pub fn network_changed(&self) -> Result<(), HandsetError> {
        self.shared.resolver().clear_cache();
        self.command(Command::NetworkChanged).map(drop)
    }

    /// Registers the account again now (after a failure or an unregister).
    pub async fn register(&self, account: AccountId) -> Result<(), HandsetError> {
        self.command(Command::Register(account)).map(drop)
    }

    /// Removes the account's binding; an `Unregistered` state follows as an event.
    pub async fn unregister(&self, account: AccountId) -> Result<(), HandsetError> {
        self.command(Command::Unregister(account)).map(drop)
    }

    /// Unregisters the account (when it is registered) and forgets it;
    /// [`PhoneEvent::AccountRemoved`] follows. Its calls go on until they end.
    pub async fn remove_account(&self, account: AccountId) -> Result<(), HandsetError> {
        self.command(Command::RemoveAccount(account)).map(drop)
    }

    /// Replaces the account's extra Contact parameters (a new push token: RFC 8599
    /// `pn-provider`/`pn-prid`/`pn-param`, or none to stop push) and registers again with them.
    pub async fn set_contact_params(
        &self,
        account: AccountId,
        params: Vec<(String, Option<String>)>,
    ) -> Result<(), HandsetError> {
        self.command(Command::SetContactParams(account, params))
            .map(drop)
    }

    /// Sends `text` as an instant message (RFC 3428 page mode, `text/plain`, at most 1300
    /// bytes) from `account` to `target` (a SIP URI, or a user or number in the account's
    /// domain). Returns once it is delivered (2xx), or with
    /// [`HandsetError::MessageFailed`] saying why not.
    pub async fn send_message(
        &self,
        account: AccountId,
        target: &str,
        text: &str,
    ) -> Result<(), HandsetError> {
        let (tx, rx) = oneshot::channel();
        let reply = self.shared.with_phone(|phone| {
            let reply = phone.handle_input(
                Instant::now(),
                Input::Command(Command::SendMessage {
                    account,
                    target: target.to_string(),
                    text: text.to_string(),
                }),
            );
            // Registered before the phone's lock is released: the outcome cannot overtake it.
            if let Ok(Reply::Message(id)) = &reply {
                lock(&self.shared.messages).insert(*id, tx);
            }
            reply
        })?;
        self.shared.wake.notify_one();
        reply?;
        rx.await.map_err(|_| HandsetError::Stopped)?
    }

    /// Handles a VoIP push payload (see `handset_phone::push` for the JSON format) and returns
    /// at once, without network, what to report to CallKit / Telecom. Then, in the background,
    /// the push-enabled accounts register again so the PBX can deliver the INVITE, which
    /// arrives as an incoming call carrying this report's id. If it does not come in
    /// [`RuntimeConfig::push_wait_for_invite`], or a cancel push comes first,
    /// [`PhoneEvent::PushReportEnded`] follows and the history records a missed call.
    /// A duplicate push returns the same report. A malformed payload is an error and changes
    /// nothing.
    pub fn handle_push(&self, payload: &[u8]) -> Result<PushReport, HandsetError> {
        match self.command(Command::Push(payload.to_vec()))? {
            Reply::PushReport {
                report,
                contact_name,
            } => Ok(PushReport {
                report,
                contact_name,
            }),
            _ => Err(HandsetError::Stopped),
        }
    }

    /// The user declined a push-reported call on the ringing screen before its INVITE arrived:
    /// the report ends, and the INVITE, if it still comes, is refused with 603. Returns
    /// whether the report was still waiting.
    pub fn decline_push_report(&self, report_id: ReportId) -> bool {
        matches!(
            self.command(Command::DeclinePushReport(report_id)),
            Ok(Reply::ReportEnded(true))
        )
    }

    /// Tells the phone whether the app is in the foreground. In the background with push
    /// enabled on an account (RFC 8599 `pn-provider` in its Contact), no keep-alive timers run:
    /// the OS wakes the app by push instead (see `handset_phone::push::keepalive_policy`).
    pub fn set_foreground(&self, foreground: bool) -> Result<(), HandsetError> {
        self.command(Command::SetForeground(foreground)).map(drop)
    }

    /// A sensor or UI input of the call screen; the decision arrives as
    /// [`PhoneEvent::CallScreen`] when it changes.
    pub fn screen_input(&self, input: ScreenInput) -> Result<(), HandsetError> {
        self.command(Command::Screen(input)).map(drop)
    }

    /// The platform's audio routes changed, or the user picked one (an unavailable route is
    /// an error); [`PhoneEvent::AudioRoutes`] and [`PhoneEvent::SelectAudioRoute`] follow.
    pub fn route_input(&self, input: RouteInput) -> Result<(), HandsetError> {
        self.command(Command::Routes(input)).map(drop)
    }

    /// The caller's name from the store's contacts, if there is a store and a match.
    pub fn contact_name(&self, number: &str) -> Option<String> {
        crate::store::contact_name(self.store.as_deref()?, number, &self.default_country)
    }

    /// Places a call from `account` to `target` (a SIP URI, or a user or number that is
    /// dialled in the account's domain). Progress arrives as [`PhoneEvent::Call`] events.
    pub async fn call(
        &self,
        account: AccountId,
        target: &str,
        options: CallOptions,
    ) -> Result<CallId, HandsetError> {
        let CallOptions {
            device,
            media,
            report_id,
        } = options;
        let reply = self.shared.with_phone(|phone| {
            let reply = phone.handle_input(
                Instant::now(),
                Input::Command(Command::Dial {
                    account,
                    target: target.to_string(),
                    media,
                    report_id,
                }),
            );
            if let Ok(Reply::Call(id)) = &reply {
                lock(&self.shared.devices).insert(*id, device);
            }
            reply
        })?;
        self.shared.wake.notify_one();
        match reply? {
            Reply::Call(id) => Ok(id),
            _ => Err(HandsetError::Stopped),
        }
    }

    /// Answers an incoming call.
    pub async fn answer(&self, call: CallId, options: CallOptions) -> Result<(), HandsetError> {
        lock(&self.shared.devices).insert(call, options.device);
        let result = self.command(Command::Answer {
            call,
            media: options.media,
        });
        if result.is_err() {
            lock(&self.shared.devices).remove(&call);
        }
        result.map(drop)
    }

    /// Refuses an incoming call with `status` (486 Busy Here, 603 Decline...).
    pub async fn reject(&self, call: CallId, status: u16) -> Result<(), HandsetError> {
        self.command(Command::Reject { call, status }).map(drop)
    }

    /// Ends a call: BYE when answered, CANCEL while ringing out, 486 while ringing in.
    pub async fn hangup(&self, call: CallId) -> Result<(), HandsetError> {
        self.command(Command::Hangup(call)).map(drop)
    }

    /// Sends DTMF digits (RFC 4733 events in the media stream); digits sent before media is
    /// up wait for it.
    pub async fn send_dtmf(&self, call: CallId, digits: &str) -> Result<(), HandsetError> {
        self.command(Command::Dtmf {
            call,
            digits: digits.to_string(),
        })
        .map(drop)
    }

    /// Puts the call on hold (`true`) or resumes it (`false`) with a re-INVITE.
    pub async fn hold(&self, call: CallId, on_hold: bool) -> Result<(), HandsetError> {
        self.command(Command::Hold { call, on_hold }).map(drop)
    }

    /// Mutes (`true`) or unmutes the call's microphone: silence is sent while muted. Works
    /// before media starts too (the call starts muted).
    pub async fn mute(&self, call: CallId, muted: bool) -> Result<(), HandsetError> {
        self.command(Command::Mute { call, muted }).map(drop)
    }

    /// Stops the run loop, closing every connection. Bindings are not removed: call
    /// [`Self::unregister`] first for that.
    pub async fn shutdown(&self) {
        if !self.shared.is_stopped() {
            *lock(&self.shared.stopped) = Some("shut down".into());
        }
        self.shared.wake.notify_one();
        let mut finished = self.shared.finished.subscribe();
        // The loop closes its sockets and ends at once; a stuck loop does not hang the caller.
        let _ = tokio::time::timeout(Duration::from_secs(2), finished.wait_for(|done| *done)).await;
    }
}
