//! The exported objects: [`HandsetPhone`], [`Account`], [`Call`], thin wrappers
//! `{ inner: Arc<..> }` around one shared [`Core`].
//!
//! ```text
//!   HandsetPhone ──owns──▶ tokio runtime (2 workers) ─runs─▶ handset::Handset (I/O around the
//!        │                                          │          handset-phone machine)
//!        │                                          └─runs─▶ dispatcher: PhoneEvent ─▶ Mirror
//!        └─ Arc<Core> ◀── Account                               │ (last values + subscribers)
//!               ▲                                              ▼
//!               └─ Weak ── Call            subscription tasks ─▶ foreign listeners
//! ```
//!
//! The phone machine decides everything: registration states, call states, end reasons, each
//! call's CallKit / Telecom id, the call screen, the audio routes (and how long the "call
//! ended" screen stays). The [`Mirror`] only keeps the last value of each, as the runtime's
//! events carry them, so that a new subscriber gets the current value first; the dispatcher
//! updates it and notifies subscribers under the same lock, so nothing is lost or repeated in
//! between. Listener and platform calls run outside the lock (a listener may call back into
//! the phone).
//!
//! Async methods run as tasks on the phone's runtime and await the task's handle, a future
//! any executor can poll: uniffi drives it from Kotlin coroutines or Swift async, and a panic
//! in the task comes back as [`HandsetError::Internal`].

use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use handset::dns::ResolverSource;
use handset::{AccountId, CallId, CallOptions, Handset, HandsetEvent, RetryPolicy, RuntimeConfig};
use handset_phone::push::PushConfig;
use handset_phone::screen::{self, RouteInput};
use tokio::runtime::{Handle, Runtime};
use tokio::sync::{Notify, mpsc};

use crate::error::{HandsetError, guard, guard_or, panic_message};
use crate::platform::{
    AudioConfig, AudioDeviceFactory, AudioRoutePlatform, CallDevice, ContactsSource, ForeignAudio,
    PushTokenProvider, SecretStore, Services, call_foreign,
};
use crate::provisioning::{ProvisionedAccount, to_account_config};
use crate::store::PhoneStore;
use crate::task_handle::{TaskHandle, subscribe};
use crate::types::{
    AccountConfig, AudioRoute, AudioRouteState, CallDirection, CallScreenDecision, CallScreenInput,
    CallState, CallUpdate, Contact, IncomingCallReport, MediaConfig, PhoneConfig, PhoneEvent,
    PushToken, RegistrationState, StoredSecret,
};

/// How many ended calls the mirror keeps, so that [`Account::call`] finds a call that ended
/// before it looked (handed-out [`Call`] objects keep their own final state).
const ENDED_CALLS_KEPT: usize = 32;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while holding these locks (listeners run outside them).
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// ---------------------------------------------------------------------------------------------
// Listeners (callback interfaces: the foreign side implements them, Rust holds a Box)

/// Receives an account's registration state: the current one first, then every change.
#[uniffi::export(callback_interface)]
pub trait RegistrationListener: Send + Sync {
    /// The registration state of `account_id` is now `state`.
    fn on_registration(&self, account_id: String, state: RegistrationState);
}

/// Receives calls' states: for every live call its current state first (`update` absent),
/// then each update with the state it leads to.
#[uniffi::export(callback_interface)]
pub trait CallListener: Send + Sync {
    /// `call` is now in `state` after `update` (absent for the current value).
    fn on_call(&self, call: Arc<Call>, state: CallState, update: Option<CallUpdate>);
}

/// Receives the audio routes: the current state first, then every change (a headset plugged
/// in, Bluetooth connected, the core switching the call's route).
#[uniffi::export(callback_interface)]
pub trait AudioRouteListener: Send + Sync {
    /// The routes are now `state`.
    fn on_audio_routes(&self, state: AudioRouteState);
}

/// Receives phone-wide events (push reports ending, blocked callers, removed accounts) as they
/// happen; there is no current value.
#[uniffi::export(callback_interface)]
pub trait PhoneEventListener: Send + Sync {
    /// `event` happened.
    fn on_event(&self, event: PhoneEvent);
}

/// Receives what the call screen should do: the current decision first, then every change.
#[uniffi::export(callback_interface)]
pub trait CallScreenListener: Send + Sync {
    /// The shell must now apply `decision`.
    fn on_call_screen(&self, decision: CallScreenDecision);
}

// ---------------------------------------------------------------------------------------------
// The mirror

type CallEvent = (Arc<CallInner>, CallState, Option<CallUpdate>);

struct AccountEntry {
    key: String,
    /// Added with push (its push token is refreshed by `Account::refresh_push_token`).
    push: bool,
    /// The last registration state the phone reported.
    state: RegistrationState,
    subscribers: Vec<mpsc::UnboundedSender<RegistrationState>>,
}

impl AccountEntry {
    fn new(key: String) -> Self {
        Self {
            key,
            push: false,
            // The phone machine's state of a new account, until it reports another.
            state: RegistrationState::Idle,
            subscribers: Vec::new(),
        }
    }
}

/// The last value of everything a subscriber can ask for, as the runtime's events carried it,
/// and the subscribers to tell when it changes.
struct Mirror {
    accounts: BTreeMap<AccountId, AccountEntry>,
    /// Live calls and the last [`ENDED_CALLS_KEPT`] ended ones; each holds its last state.
    calls: BTreeMap<CallId, Arc<CallInner>>,
    ended: VecDeque<CallId>,
    call_subscribers: Vec<mpsc::UnboundedSender<CallEvent>>,
    screen: CallScreenDecision,
    screen_subscribers: Vec<mpsc::UnboundedSender<CallScreenDecision>>,
    routes: AudioRouteState,
    route_subscribers: Vec<mpsc::UnboundedSender<AudioRouteState>>,
    event_subscribers: Vec<mpsc::UnboundedSender<PhoneEvent>>,
}

impl Default for Mirror {
    fn default() -> Self {
        Self {
            accounts: BTreeMap::new(),
            calls: BTreeMap::new(),
            ended: VecDeque::new(),
            call_subscribers: Vec::new(),
            // The phone machine's decision before any input (it reports only changes).
            screen: screen::CallScreen::new().decision().into(),
            screen_subscribers: Vec::new(),
            routes: AudioRouteState {
                available: Vec::new(),
                selected: None,
            },
            route_subscribers: Vec::new(),
            event_subscribers: Vec::new(),
        }
    }
}

impl Mirror {
    fn send_event(&mut self, event: PhoneEvent) {
        self.event_subscribers
            .retain(|s| s.send(event.clone()).is_ok());
    }

    fn account_key(&self, id: AccountId) -> String {
        self.accounts
            .get(&id)
            .map(|a| a.key.clone())
            .unwrap_or_default()
    }

    /// Keeps `id` among the last ended calls, forgetting the oldest beyond the limit.
    fn call_ended(&mut self, id: CallId) {
        if self.ended.contains(&id) {
            return;
        }
        self.ended.push_back(id);
        while self.ended.len() > ENDED_CALLS_KEPT {
            if let Some(old) = self.ended.pop_front() {
                self.calls.remove(&old);
            }
        }
    }
}

/// What the objects share: the runtime handle, the run loop handle, the platform services and
/// the mirror.
pub(crate) struct Core {
    handset: Handset,
    rt: Handle,
    services: Services,
    /// The platform's audio routes, when the app gave them.
    routes: Option<Arc<dyn AudioRoutePlatform>>,
    /// How long a push waits for its INVITE.
    push_wait: Duration,
    mirror: Mutex<Mirror>,
    /// Woken when a call enters the mirror, and when the dispatcher ends.
    call_mirrored: Notify,
    /// The runtime's event stream ended: nothing enters the mirror any more.
    dispatcher_ended: AtomicBool,
}

impl Core {
    /// Runs `fut` as a task on the phone's runtime and waits for it from any executor.
    async fn run<T: Send + 'static>(
        &self,
        fut: impl Future<Output = Result<T, HandsetError>> + Send + 'static,
    ) -> Result<T, HandsetError> {
        match self.rt.spawn(fut).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => {
                let message = panic_message(e.into_panic().as_ref());
                tracing::error!(%message, "panic caught at the FFI boundary");
                Err(HandsetError::Internal(message))
            }
            Err(_) => Err(HandsetError::Stopped),
        }
    }

    /// The dispatcher: the one consumer of the runtime's events.
    async fn dispatch(self: Arc<Self>, mut events: handset::Events) {
        while let Some(event) = events.recv().await {
            self.mirror_event(event);
        }
        self.dispatcher_ended.store(true, Ordering::SeqCst);
        self.call_mirrored.notify_waiters();
    }

    /// Takes one event of the runtime into the mirror and passes it on.
    fn mirror_event(self: &Arc<Self>, event: HandsetEvent) {
        match event {
            HandsetEvent::Registration { account, state } => {
                let state = RegistrationState::from(&state);
                let mut mirror = lock(&self.mirror);
                let entry = mirror
                    .accounts
                    .entry(account)
                    .or_insert_with(|| AccountEntry::new(String::new()));
                entry.state = state.clone();
                entry.subscribers.retain(|s| s.send(state.clone()).is_ok());
            }
            HandsetEvent::Call {
                call,
                update,
                state,
            } => self.mirror_call(call, update, state),
            HandsetEvent::PushReportEnded { report_id, reason } => {
                lock(&self.mirror).send_event(PhoneEvent::PushReportEnded {
                    report_id: report_id.to_string(),
                    reason: reason.into(),
                });
            }
            HandsetEvent::CallBlocked { account, from } => {
                let mut mirror = lock(&self.mirror);
                let account_id = mirror.account_key(account);
                mirror.send_event(PhoneEvent::CallBlocked { account_id, from });
            }
            HandsetEvent::MessageReceived {
                account,
                from,
                display_name,
                contact_name,
                text,
            } => {
                let mut mirror = lock(&self.mirror);
                let account_id = mirror.account_key(account);
                mirror.send_event(PhoneEvent::MessageReceived {
                    account_id,
                    from,
                    display_name,
                    contact_name,
                    text,
                });
            }
            // Their outcome is what `Account::send_message` returns.
            HandsetEvent::MessageDelivered { .. } | HandsetEvent::MessageFailed { .. } => {}
            HandsetEvent::Voicemail { account, summary } => {
                let mut mirror = lock(&self.mirror);
                let account_id = mirror.account_key(account);
                let voice = summary.voice.unwrap_or_default();
                mirror.send_event(PhoneEvent::Voicemail {
                    account_id,
                    messages_waiting: summary.messages_waiting,
                    new_messages: voice.new,
                    old_messages: voice.old,
                    urgent_new: voice.urgent_new,
                    urgent_old: voice.urgent_old,
                });
            }
            HandsetEvent::AccountRemoved { account } => {
                let mut mirror = lock(&self.mirror);
                let account_id = mirror
                    .accounts
                    .remove(&account)
                    .map(|a| a.key)
                    .unwrap_or_default();
                mirror.send_event(PhoneEvent::AccountRemoved { account_id });
            }
            HandsetEvent::CallScreen(decision) => {
                let decision = CallScreenDecision::from(decision);
                let mut mirror = lock(&self.mirror);
                mirror.screen = decision;
                mirror
                    .screen_subscribers
                    .retain(|s| s.send(decision).is_ok());
            }
            HandsetEvent::AudioRoutes {
                available,
                selected,
            } => {
                let routes = AudioRouteState {
                    available: available.into_iter().map(Into::into).collect(),
                    selected: selected.map(Into::into),
                };
                let mut mirror = lock(&self.mirror);
                mirror.routes = routes.clone();
                mirror
                    .route_subscribers
                    .retain(|s| s.send(routes.clone()).is_ok());
            }
            HandsetEvent::SelectAudioRoute(route) => self.select_route(route.into()),
            HandsetEvent::Stopped { reason } => {
                lock(&self.mirror).send_event(PhoneEvent::Stopped { reason });
            }
        }
    }

    /// Takes a call's update and the state it led to into the mirror; the platform audio of
    /// an ended call stops.
    fn mirror_call(
        self: &Arc<Self>,
        id: CallId,
        update: handset::CallUpdate,
        state: handset::CallState,
    ) {
        let state = CallState::from(state);
        let inner = {
            let mut mirror = lock(&self.mirror);
            let inner = match mirror.calls.get(&id) {
                Some(inner) => inner.clone(),
                None => {
                    // A call's first update announces it (Incoming or Dialing).
                    let Some(inner) = CallInner::announced(id, &update, &mirror, self) else {
                        tracing::warn!(call = %id, "an update of a call never announced: ignored");
                        return;
                    };
                    mirror.calls.insert(id, inner.clone());
                    self.call_mirrored.notify_waiters();
                    inner
                }
            };
            let update = CallUpdate::from(update);
            {
                let mut slot = lock(&inner.slot);
                slot.state = state.clone();
                slot.subscribers
                    .retain(|s| s.send((state.clone(), Some(update.clone()))).is_ok());
            }
            mirror.call_subscribers.retain(|s| {
                s.send((inner.clone(), state.clone(), Some(update.clone())))
                    .is_ok()
            });
            if state.is_ended() {
                mirror.call_ended(id);
            }
            inner
        };
        if state.is_ended() {
            inner.stop_audio(&self.services);
        }
    }

    /// The mirrored call `id`, once the dispatcher has taken its first update in: commands
    /// return before their events go through the dispatcher.
    async fn mirrored_call(&self, id: CallId) -> Result<Arc<CallInner>, HandsetError> {
        loop {
            let notified = self.call_mirrored.notified();
            let mut notified = std::pin::pin!(notified);
            // Registered before looking, so a call mirrored in between still wakes us.
            notified.as_mut().enable();
            if let Some(inner) = lock(&self.mirror).calls.get(&id) {
                return Ok(inner.clone());
            }
            if self.dispatcher_ended.load(Ordering::SeqCst) {
                return Err(HandsetError::Stopped);
            }
            notified.await;
        }
    }

    /// The RFC 8599 Contact parameters of the platform's current push token; none when the
    /// platform has no token yet.
    fn push_contact_params(&self) -> Result<Vec<(String, Option<String>)>, HandsetError> {
        let provider = self.services.push.clone();
        Ok(
            match call_foreign("push token provider", move || provider.push_token())? {
                Some(token) => PushConfig::new(
                    token.service.into(),
                    token.token,
                    token.param,
                    self.push_wait,
                )
                .map_err(|e| HandsetError::InvalidArgument(format!("push token: {e}")))?
                .contact_params(),
                None => Vec::new(),
            },
        )
    }

    /// Tells the platform to route call audio to `route` (the phone's decision).
    fn select_route(&self, route: AudioRoute) {
        let Some(platform) = self.routes.clone() else {
            return;
        };
        if let Err(error) = call_foreign("audio routes", move || platform.select_route(route)) {
            tracing::warn!(%error, "audio route not selected");
        }
    }

    fn subscribe_calls(self: &Arc<Self>, listener: Box<dyn CallListener>) -> TaskHandle {
        let (tx, rx) = mpsc::unbounded_channel();
        let current: Vec<CallEvent> = {
            let mut mirror = lock(&self.mirror);
            mirror.call_subscribers.push(tx);
            mirror
                .calls
                .values()
                .map(|c| (c.clone(), c.state()))
                .filter(|(_, state)| !state.is_ended())
                .map(|(c, state)| (c, state, None))
                .collect()
        };
        subscribe(
            &self.rt,
            "call listener",
            current,
            rx,
            move |(call, state, update)| {
                listener.on_call(Arc::new(Call { inner: call }), state, update)
            },
        )
    }
}

// ---------------------------------------------------------------------------------------------
// HandsetPhone

struct PhoneInner {
    core: Arc<Core>,
    /// The on-device data, when the phone has a database.
    store: Option<Arc<PhoneStore>>,
    runtime: Mutex<Option<Runtime>>,
}

impl Drop for PhoneInner {
    fn drop(&mut self) {
        // Without waiting, and legal inside another runtime: the run loop's sockets close.
        if let Some(rt) = lock(&self.runtime).take() {
            rt.shutdown_background();
        }
    }
}

/// A running softphone: its own tokio runtime (2 worker threads), the SIP run loop, and the
/// platform services it was given. Close it (`close()` in Kotlin, or let it be released) to
/// stop everything; call [`HandsetPhone::shutdown`] first to leave cleanly.
#[derive(uniffi::Object)]
pub struct HandsetPhone {
    inner: Arc<PhoneInner>,
}

#[uniffi::export]
impl HandsetPhone {
    /// Starts a phone: opens the database (when `config.database_path` is set), binds the
    /// SIP socket and starts the run loop. `audio_routes`, when given, carries out the
    /// phone's choice of call audio route.
    #[uniffi::constructor(default(audio_routes = None))]
    pub fn new(
        config: PhoneConfig,
        audio: Arc<dyn AudioDeviceFactory>,
        secrets: Arc<dyn SecretStore>,
        contacts: Arc<dyn ContactsSource>,
        push: Arc<dyn PushTokenProvider>,
        audio_routes: Option<Arc<dyn AudioRoutePlatform>>,
    ) -> Result<Arc<Self>, HandsetError> {
        guard(|| {
            let mut runtime_config = runtime_config(&config)?;
            let store = match &config.database_path {
                Some(path) => Some(Arc::new(handset::Store::open(path)?)),
                None => None,
            };
            runtime_config.store = store.clone();
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("handset")
                .enable_all()
                .build()
                .map_err(|e| HandsetError::Internal(format!("cannot start a runtime: {e}")))?;
            let (handset, events) = runtime.block_on(Handset::start(runtime_config))?;
            let core = Arc::new(Core {
                handset,
                rt: runtime.handle().clone(),
                services: Services {
                    audio,
                    secrets,
                    contacts,
                    push,
                },
                routes: audio_routes,
                push_wait: Duration::from_secs(u64::from(config.push_wait_secs.max(1))),
                mirror: Mutex::default(),
                call_mirrored: Notify::new(),
                dispatcher_ended: AtomicBool::new(false),
            });
            runtime.spawn(core.clone().dispatch(events));
            let store = store.map(|s| {
                Arc::new(PhoneStore::new(
                    s,
                    default_country(&config),
                    runtime.handle().clone(),
                ))
            });
            Ok(Arc::new(Self {
                inner: Arc::new(PhoneInner {
                    core,
                    store,
                    runtime: Mutex::new(Some(runtime)),
                }),
            }))
        })
    }

    /// Adds an account; its password or HA1 is read from the secret store under
    /// `config.account_id`. Registration starts at once when `config.register`; follow it
    /// with [`Account::subscribe_registration`].
    pub async fn add_account(&self, config: AccountConfig) -> Result<Arc<Account>, HandsetError> {
        let core = self.inner.core.clone();
        let key = config.account_id.clone();
        if key.is_empty() {
            return Err(HandsetError::InvalidArgument("empty account id".into()));
        }
        if lock(&core.mirror).accounts.values().any(|a| a.key == key) {
            return Err(HandsetError::InvalidArgument(format!(
                "account {key} is already added"
            )));
        }
        let secrets = core.services.secrets.clone();
        let lookup = key.clone();
        let secret = call_foreign("secret store", move || secrets.get_secret(lookup))?
            .ok_or_else(|| HandsetError::MissingSecret(key.clone()))?;
        let wants_push = config.push;
        let push = if config.push {
            let params = core.push_contact_params()?;
            if params.is_empty() {
                tracing::info!(account = %key, "no push token yet: registering without push");
            }
            params
        } else {
            Vec::new()
        };
        let mut account_config = account_config(config, secret)?;
        account_config.contact_params = push;
        let handset = core.handset.clone();
        let id = core
            .run(async move { Ok(handset.add_account(account_config).await?) })
            .await?;
        {
            let mut mirror = lock(&core.mirror);
            let entry = mirror
                .accounts
                .entry(id)
                .or_insert_with(|| AccountEntry::new(String::new()));
            entry.key = key.clone();
            entry.push = wants_push;
        }
        Ok(Arc::new(Account {
            inner: Arc::new(AccountInner { id, key, core }),
        }))
    }

    /// Adds an account read from a provisioning link or QR code ([`crate::parse_provisioning`]):
    /// its password or HA1 goes into the platform's secret store under `account_id`, then the
    /// account is added as by [`Self::add_account`].
    pub async fn add_provisioned_account(
        &self,
        account: ProvisionedAccount,
        account_id: String,
    ) -> Result<Arc<Account>, HandsetError> {
        let (config, secret) = to_account_config(&account, account_id.clone());
        self.store_secret(account_id, secret)?;
        self.add_account(config).await
    }

    /// The phone's on-device data (history, contacts, blocklist, speed dial, voicemail
    /// counts); absent when the phone was created without `database_path`.
    pub fn store(&self) -> Option<Arc<PhoneStore>> {
        self.inner.store.clone()
    }

    /// Stores `secret` for `account_id` in the platform's secret store.
    pub fn store_secret(
        &self,
        account_id: String,
        secret: StoredSecret,
    ) -> Result<(), HandsetError> {
        let secrets = self.inner.core.services.secrets.clone();
        guard(|| {
            call_foreign("secret store", move || {
                secrets.set_secret(account_id, secret)
            })
        })
    }

    /// The accounts added so far, in the order they were added.
    pub fn accounts(&self) -> Vec<Arc<Account>> {
        guard_or(Vec::new(), || {
            let core = &self.inner.core;
            lock(&core.mirror)
                .accounts
                .iter()
                .filter(|(_, a)| !a.key.is_empty())
                .map(|(id, a)| {
                    Arc::new(Account {
                        inner: Arc::new(AccountInner {
                            id: *id,
                            key: a.key.clone(),
                            core: core.clone(),
                        }),
                    })
                })
                .collect()
        })
    }

    /// The live calls (not ended), oldest first.
    pub fn calls(&self) -> Vec<Arc<Call>> {
        guard_or(Vec::new(), || {
            lock(&self.inner.core.mirror)
                .calls
                .values()
                .filter(|c| !c.state().is_ended())
                .map(|inner| {
                    Arc::new(Call {
                        inner: inner.clone(),
                    })
                })
                .collect()
        })
    }

    /// Follows every call of the phone (incoming ones included): the live calls' current
    /// states first, then every update. Keep the handle; cancel or drop it to stop.
    pub fn subscribe_calls(&self, listener: Box<dyn CallListener>) -> Arc<TaskHandle> {
        Arc::new(self.inner.core.subscribe_calls(listener))
    }

    /// Follows what the call screen should do (proximity lock, keep-on, rotation, incoming
    /// call presentation): the current decision first, then every change. The decisions are
    /// the phone's screen rules over its calls and [`Self::update_call_screen`].
    pub fn subscribe_call_screen(&self, listener: Box<dyn CallScreenListener>) -> Arc<TaskHandle> {
        let core = &self.inner.core;
        let (tx, rx) = mpsc::unbounded_channel();
        let current = {
            let mut mirror = lock(&core.mirror);
            mirror.screen_subscribers.push(tx);
            mirror.screen
        };
        Arc::new(subscribe(
            &core.rt,
            "call screen listener",
            vec![current],
            rx,
            move |decision| listener.on_call_screen(decision),
        ))
    }

    /// The current call screen decision: the last one the phone reported (the effect of an
    /// input given with [`Self::update_call_screen`] follows shortly after that call returns).
    pub fn call_screen(&self) -> CallScreenDecision {
        guard_or(
            CallScreenDecision::from(screen::CallScreen::new().decision()),
            || lock(&self.inner.core.mirror).screen,
        )
    }

    /// The platform reports a change of a call screen input (route, proximity, orientation,
    /// foreground, lock screen, keypad); the decision follows on the call screen
    /// subscription when it changes. Nothing happens once the phone has stopped.
    pub fn update_call_screen(&self, input: CallScreenInput) {
        guard_or((), || {
            if let Err(error) = self.inner.core.handset.screen_input(input.into()) {
                tracing::debug!(%error, "call screen input not taken");
            }
        })
    }

    /// Handles a VoIP push (PushKit payload dictionary or FCM data map, as JSON text; the
    /// format is documented in `handset_phone::push`) and returns at once, without network,
    /// the call to report to CallKit / Telecom before the push handler returns. The phone
    /// then registers its push accounts again so the PBX delivers the INVITE; that call's
    /// `Incoming` update carries this report's id (and `pushed`). If the INVITE does not come
    /// in `push_wait_secs`, or a cancel push comes first, [`PhoneEvent::PushReportEnded`]
    /// follows and the history records a missed call. A duplicate push returns the same
    /// report. A malformed payload is [`HandsetError::InvalidPush`] and changes nothing.
    pub fn handle_push(&self, payload: String) -> Result<IncomingCallReport, HandsetError> {
        guard(|| {
            Ok(self
                .inner
                .core
                .handset
                .handle_push(payload.as_bytes())?
                .into())
        })
    }

    /// The user declined a push-reported call on the ringing screen before its INVITE came:
    /// the report ends ([`PhoneEvent::PushReportEnded`] with `Declined`) and the INVITE, if
    /// it still comes, is refused with 603. Returns whether the report was still waiting.
    pub fn decline_push_report(&self, report_id: String) -> Result<bool, HandsetError> {
        guard(|| {
            let id = report_id
                .parse::<handset::ReportId>()
                .map_err(|_| HandsetError::InvalidArgument("not a report id".into()))?;
            Ok(self.inner.core.handset.decline_push_report(id))
        })
    }

    /// The app moved to the foreground (`true`) or the background (`false`). In the
    /// background with push enabled on an account, no keep-alive timers run: the OS wakes the
    /// app by push instead.
    pub fn set_foreground(&self, foreground: bool) -> Result<(), HandsetError> {
        guard(|| Ok(self.inner.core.handset.set_foreground(foreground)?))
    }

    /// Replaces the DNS servers used for every lookup from now on, e.g. with the platform's
    /// (Android `LinkProperties.getDnsServers()`, iOS `res_9_getservers`) at start and on every
    /// network change. Each entry is `ip:port`, `[ipv6]:port` (a numeric scope id after `%`)
    /// or a bare IP address (port 53); an empty list uses the system's configuration, which
    /// Android does not have. Accounts whose server could not be found register again at once.
    /// Returns at once, from any thread; a malformed entry is an `InvalidArgument` error and
    /// changes nothing.
    pub fn set_dns_servers(&self, servers: Vec<String>) -> Result<(), HandsetError> {
        guard(|| {
            let servers = dns_servers(&servers)?;
            let core = &self.inner.core;
            // The new resolver belongs to the phone's runtime, whatever thread calls.
            let _runtime = core.rt.enter();
            Ok(core.handset.set_dns_servers(servers)?)
        })
    }

    /// The device moved to another network: call it from Android's
    /// `ConnectivityManager.NetworkCallback` and iOS's `NWPathMonitor` when the default network
    /// or its addresses change (together with [`Self::set_dns_servers`] for the new network's
    /// DNS). Cached DNS answers are dropped, connections are opened again, every account
    /// registers again from its new address (replacing its binding), and answered calls move
    /// to the new network. Returns at once, from any thread.
    pub fn network_changed(&self) -> Result<(), HandsetError> {
        guard(|| {
            let core = &self.inner.core;
            let _runtime = core.rt.enter();
            Ok(core.handset.network_changed()?)
        })
    }

    /// Follows phone-wide events (push reports ending, blocked callers, removed accounts,
    /// messages, voicemail counts, the phone stopping). Keep the handle; cancel or drop it to
    /// stop.
    pub fn subscribe_events(&self, listener: Box<dyn PhoneEventListener>) -> Arc<TaskHandle> {
        let core = &self.inner.core;
        let (tx, rx) = mpsc::unbounded_channel();
        lock(&core.mirror).event_subscribers.push(tx);
        Arc::new(subscribe(
            &core.rt,
            "phone event listener",
            Vec::new(),
            rx,
            move |event| listener.on_event(event),
        ))
    }

    /// Follows the audio routes (available and selected): the current state first, then every
    /// change. Keep the handle; cancel or drop it to stop.
    pub fn subscribe_audio_routes(&self, listener: Box<dyn AudioRouteListener>) -> Arc<TaskHandle> {
        let core = &self.inner.core;
        let (tx, rx) = mpsc::unbounded_channel();
        let current = {
            let mut mirror = lock(&core.mirror);
            mirror.route_subscribers.push(tx);
            mirror.routes.clone()
        };
        Arc::new(subscribe(
            &core.rt,
            "audio route listener",
            vec![current],
            rx,
            move |state| listener.on_audio_routes(state),
        ))
    }

    /// The audio routes available now: the last ones the phone reported (routes given with
    /// [`Self::audio_routes_changed`] follow shortly after that call returns; the route
    /// subscription says when).
    pub fn audio_routes(&self) -> Vec<AudioRoute> {
        guard_or(Vec::new(), || {
            lock(&self.inner.core.mirror).routes.available.clone()
        })
    }

    /// The route the current call uses (`None` outside a call), as the phone last reported it.
    pub fn selected_audio_route(&self) -> Option<AudioRoute> {
        guard_or(None, || lock(&self.inner.core.mirror).routes.selected)
    }

    /// The platform's set of audio routes changed (headset plugged, Bluetooth connected...):
    /// the routes are read from the `AudioRoutePlatform` and given to the phone, which
    /// switches the call's route when its rules say so (through
    /// `AudioRoutePlatform::select_route`) and updates the call screen.
    pub fn audio_routes_changed(&self) -> Result<(), HandsetError> {
        let core = &self.inner.core;
        let Some(platform) = core.routes.clone() else {
            return Err(HandsetError::InvalidArgument(
                "the phone was created without an AudioRoutePlatform".into(),
            ));
        };
        let routes = call_foreign("audio routes", move || platform.available_routes())?;
        guard(|| {
            Ok(core.handset.route_input(RouteInput::RoutesChanged(
                routes.into_iter().map(Into::into).collect(),
            ))?)
        })
    }

    /// The user picked `route` for the call audio. Fails when it is not available.
    pub fn select_audio_route(&self, route: AudioRoute) -> Result<(), HandsetError> {
        let core = &self.inner.core;
        guard(|| {
            Ok(core
                .handset
                .route_input(RouteInput::UserSelected(route.into()))?)
        })
    }

    /// The contacts of the platform's address book (through the `ContactsSource`).
    pub fn contacts(&self) -> Result<Vec<Contact>, HandsetError> {
        let source = self.inner.core.services.contacts.clone();
        guard(|| call_foreign("contacts source", move || source.contacts()))
    }

    /// The platform's current push token (through the `PushTokenProvider`).
    pub fn push_token(&self) -> Result<Option<PushToken>, HandsetError> {
        let push = self.inner.core.services.push.clone();
        guard(|| call_foreign("push token provider", move || push.push_token()))
    }

    /// Stops the run loop and closes every connection. Bindings stay at the registrar:
    /// unregister the accounts first to remove them.
    pub async fn shutdown(&self) -> Result<(), HandsetError> {
        let core = self.inner.core.clone();
        let handset = core.handset.clone();
        core.run(async move {
            handset.shutdown().await;
            Ok(())
        })
        .await
    }
}

fn runtime_config(config: &PhoneConfig) -> Result<RuntimeConfig, HandsetError> {
    let parse = |s: &str| {
        s.parse::<SocketAddr>()
            .map_err(|e| HandsetError::InvalidArgument(format!("address {s:?}: {e}")))
    };
    let servers = dns_servers(&config.dns_servers)?;
    let dns = if servers.is_empty() {
        ResolverSource::System
    } else {
        ResolverSource::Nameservers(servers)
    };
    Ok(RuntimeConfig {
        bind: parse(&config.bind_address)?,
        keepalive: Duration::from_secs(u64::from(config.keepalive_secs.max(1))),
        udp_keepalive: (config.udp_keepalive_secs > 0)
            .then(|| Duration::from_secs(u64::from(config.udp_keepalive_secs))),
        dns,
        default_country: default_country(config),
        push_wait_for_invite: Duration::from_secs(u64::from(config.push_wait_secs.max(1))),
        // The shells report network changes from the platform's callbacks
        // (`network_changed`); no timer wakes the app to look.
        route_watch: None,
        ..RuntimeConfig::default()
    })
}

/// DNS servers as the shells give them: `ip:port`, `[ipv6]:port` (`[fe80::1%3]:53` with a
/// numeric scope id) or a bare IP address (port 53). Duplicates are dropped (first kept);
/// anything else, or port 0, is an error naming the entry.
pub(crate) fn dns_servers(entries: &[String]) -> Result<Vec<SocketAddr>, HandsetError> {
    let mut servers: Vec<SocketAddr> = Vec::with_capacity(entries.len());
    for entry in entries {
        let text = entry.trim();
        let addr = match text.parse::<SocketAddr>() {
            Ok(addr) => addr,
            Err(_) => match text.parse::<std::net::IpAddr>() {
                Ok(ip) => SocketAddr::new(ip, 53),
                Err(_) => {
                    return Err(HandsetError::InvalidArgument(format!(
                        "DNS server {text:?}: not an IP address with an optional port \
                         (192.0.2.53:53, [2001:db8::53]:53 or 192.0.2.53)"
                    )));
                }
            },
        };
        if addr.port() == 0 {
            return Err(HandsetError::InvalidArgument(format!(
                "DNS server {text:?}: port 0"
            )));
        }
        if !servers.contains(&addr) {
            servers.push(addr);
        }
    }
    Ok(servers)
}

/// The configured default country, "US" when none was given.
fn default_country(config: &PhoneConfig) -> String {
    config
        .default_country
        .clone()
        .filter(|c| !c.trim().is_empty())
        .unwrap_or_else(|| "US".to_string())
}

fn account_config(
    config: AccountConfig,
    secret: StoredSecret,
) -> Result<handset::AccountConfig, HandsetError> {
    let mut c = handset::AccountConfig::new(config.server, config.user, String::new());
    c.secret = secret.into();
    c.domain = config.domain;
    c.auth_user = config.auth_user;
    c.display_name = config.display_name;
    c.transport = config.transport.map(Into::into);
    c.ca_file = config.ca_file.map(PathBuf::from);
    c.pinned_sha256 = config
        .pinned_sha256
        .as_deref()
        .map(str::parse::<handset::CertFingerprint>)
        .transpose()
        .map_err(|e| HandsetError::InvalidArgument(format!("pinned_sha256: {e}")))?;
    c.expires = config.expires_secs;
    c.register = config.register;
    c.voicemail = config.voicemail;
    c.retry = RetryPolicy {
        base: Duration::from_secs(u64::from(config.retry_base_secs.max(1))),
        max: Duration::from_secs(u64::from(
            config.retry_max_secs.max(config.retry_base_secs).max(1),
        )),
    };
    if let Some(media) = config.media {
        c.media = media.into();
    }
    if let Some(ice) = config.ice {
        c.ice = ice
            .try_into()
            .map_err(|e| HandsetError::InvalidArgument(format!("ice: {e}")))?;
    }
    Ok(c)
}

// ---------------------------------------------------------------------------------------------
// Account

struct AccountInner {
    id: AccountId,
    key: String,
    core: Arc<Core>,
}

/// A SIP account of a [`HandsetPhone`].
#[derive(uniffi::Object)]
pub struct Account {
    inner: Arc<AccountInner>,
}

#[uniffi::export]
impl Account {
    /// The application's id of the account ([`AccountConfig::account_id`]).
    pub fn account_id(&self) -> String {
        self.inner.key.clone()
    }

    /// The current registration state: the last one the phone reported.
    pub fn registration_state(&self) -> RegistrationState {
        guard_or(RegistrationState::Idle, || {
            lock(&self.inner.core.mirror)
                .accounts
                .get(&self.inner.id)
                .map(|a| a.state.clone())
                .unwrap_or(RegistrationState::Idle)
        })
    }

    /// Follows the registration: the current state first, then every change.
    pub fn subscribe_registration(
        &self,
        listener: Box<dyn RegistrationListener>,
    ) -> Arc<TaskHandle> {
        let core = &self.inner.core;
        let (tx, rx) = mpsc::unbounded_channel();
        let current = {
            let mut mirror = lock(&core.mirror);
            let entry = mirror
                .accounts
                .entry(self.inner.id)
                .or_insert_with(|| AccountEntry::new(self.inner.key.clone()));
            entry.subscribers.push(tx);
            entry.state.clone()
        };
        let key = self.inner.key.clone();
        Arc::new(subscribe(
            &core.rt,
            "registration listener",
            vec![current],
            rx,
            move |state| listener.on_registration(key.clone(), state),
        ))
    }

    /// Registers again now (after a failure or an unregister).
    pub async fn register(&self) -> Result<(), HandsetError> {
        let (core, id) = (self.inner.core.clone(), self.inner.id);
        let handset = core.handset.clone();
        core.run(async move { Ok(handset.register(id).await?) })
            .await
    }

    /// Removes the binding; the state becomes `Unregistered`.
    pub async fn unregister(&self) -> Result<(), HandsetError> {
        let (core, id) = (self.inner.core.clone(), self.inner.id);
        let handset = core.handset.clone();
        core.run(async move { Ok(handset.unregister(id).await?) })
            .await
    }

    /// Registers again with the platform's current push token (after FCM `onNewToken` or new
    /// PushKit credentials), so the PBX wakes this device; with no token the account registers
    /// without push. Does nothing for an account added without `push`, so the shells may call
    /// it on every account.
    pub async fn refresh_push_token(&self) -> Result<(), HandsetError> {
        let (core, id) = (self.inner.core.clone(), self.inner.id);
        let push = lock(&core.mirror).accounts.get(&id).is_some_and(|a| a.push);
        if !push {
            return Ok(());
        }
        let params = core.push_contact_params()?;
        let handset = core.handset.clone();
        core.run(async move { Ok(handset.set_contact_params(id, params).await?) })
            .await
    }

    /// Sends `text` as an instant message (SIP MESSAGE, plain text, at most 1300 bytes) to
    /// `target` (a SIP URI, or a user or number in the account's domain). Returns once it is
    /// delivered; [`HandsetError::MessageNotDelivered`] says why not.
    pub async fn send_message(&self, target: String, text: String) -> Result<(), HandsetError> {
        let (core, id) = (self.inner.core.clone(), self.inner.id);
        let handset = core.handset.clone();
        core.run(async move { Ok(handset.send_message(id, &target, &text).await?) })
            .await
    }

    /// Unregisters the account (when registered) and removes it from the phone;
    /// [`PhoneEvent::AccountRemoved`] follows. Its calls go on until they end.
    pub async fn remove(&self) -> Result<(), HandsetError> {
        let (core, id) = (self.inner.core.clone(), self.inner.id);
        let handset = core.handset.clone();
        core.run(async move { Ok(handset.remove_account(id).await?) })
            .await
    }

    /// Calls `target` (a SIP URI, or a user or number in the account's domain) with `audio`;
    /// `media` overrides the account's media settings; `report_id` is the call's CallKit /
    /// Telecom id when the app chose it first (CallKit's `CXStartCallAction` UUID; a UUID
    /// string), one is made up otherwise. Returns once the call exists (its INVITE goes out
    /// when the network is ready; a network failure ends the call with `NetworkLost`); its
    /// [`Call::report_id`] is known from then on. Follow it with [`Call::subscribe`].
    #[uniffi::method(default(media = None, report_id = None))]
    pub async fn call(
        &self,
        target: String,
        audio: AudioConfig,
        media: Option<MediaConfig>,
        report_id: Option<String>,
    ) -> Result<Arc<Call>, HandsetError> {
        let (core, id) = (self.inner.core.clone(), self.inner.id);
        let report_id = report_id
            .map(|text| {
                text.parse::<handset::ReportId>()
                    .map_err(|_| HandsetError::InvalidArgument("report id is not a UUID".into()))
            })
            .transpose()?;
        let CallDevice { device, foreign } = guard(|| audio.device())?;
        let handset = core.handset.clone();
        let call_id = core
            .run(async move {
                let options = CallOptions {
                    device,
                    media: media.map(Into::into),
                    report_id,
                };
                Ok(handset.call(id, &target, options).await?)
            })
            .await?;
        let inner = core.mirrored_call(call_id).await?;
        if let Some(foreign) = foreign {
            inner.start_audio(&core.services, foreign);
        }
        Ok(Arc::new(Call { inner }))
    }
}

// ---------------------------------------------------------------------------------------------
// Call

struct CallSlot {
    /// The last state the phone reported.
    state: CallState,
    subscribers: Vec<mpsc::UnboundedSender<(CallState, Option<CallUpdate>)>>,
}

#[derive(Default)]
struct AudioSlot {
    foreign: Option<Arc<ForeignAudio>>,
    stopped: bool,
}

pub(crate) struct CallInner {
    id: CallId,
    direction: CallDirection,
    /// The account's `account_id`.
    account_key: String,
    /// The dialled target, or the caller's address.
    remote: String,
    /// The call's CallKit / Telecom id, as the phone gave it.
    report_id: String,
    slot: Mutex<CallSlot>,
    /// The platform audio of the call; its own lock, held while calling the platform.
    audio: Mutex<AudioSlot>,
    core: Weak<Core>,
}

impl CallInner {
    /// The call that `update`, its first, announces (`Incoming` or `Dialing`); `None` for any
    /// other update.
    fn announced(
        id: CallId,
        update: &handset::CallUpdate,
        mirror: &Mirror,
        core: &Arc<Core>,
    ) -> Option<Arc<Self>> {
        let (direction, account, remote, report_id, state) = match update {
            handset::CallUpdate::Incoming {
                account,
                from,
                report_id,
                ..
            } => (
                CallDirection::Incoming,
                *account,
                from,
                report_id,
                CallState::Incoming,
            ),
            handset::CallUpdate::Dialing {
                account,
                to,
                report_id,
            } => (
                CallDirection::Outgoing,
                *account,
                to,
                report_id,
                CallState::Calling,
            ),
            _ => return None,
        };
        Some(Arc::new(Self {
            id,
            direction,
            account_key: mirror.account_key(account),
            remote: remote.clone(),
            report_id: report_id.to_string(),
            slot: Mutex::new(CallSlot {
                state,
                subscribers: Vec::new(),
            }),
            audio: Mutex::default(),
            core: Arc::downgrade(core),
        }))
    }

    fn core(&self) -> Result<Arc<Core>, HandsetError> {
        self.core.upgrade().ok_or(HandsetError::Stopped)
    }

    /// Tells the platform to start this call's audio (unless the call already ended).
    fn start_audio(&self, services: &Services, foreign: Arc<ForeignAudio>) {
        let mut audio = lock(&self.audio);
        if audio.stopped || audio.foreign.is_some() {
            return;
        }
        let factory = services.audio.clone();
        let id = self.id.0;
        let handle = foreign.clone();
        match call_foreign("audio factory", move || factory.start_audio(id, handle)) {
            Ok(()) => audio.foreign = Some(foreign),
            Err(error) => tracing::warn!(%error, call = id, "platform audio did not start"),
        }
    }

    /// Tells the platform to stop this call's audio, once.
    fn stop_audio(&self, services: &Services) {
        let mut audio = lock(&self.audio);
        audio.stopped = true;
        if audio.foreign.take().is_some() {
            let factory = services.audio.clone();
            let id = self.id.0;
            if let Err(error) = call_foreign("audio factory", move || factory.stop_audio(id)) {
                tracing::warn!(%error, call = id, "platform audio did not stop");
            }
        }
    }

    fn state(&self) -> CallState {
        lock(&self.slot).state.clone()
    }
}

/// A call (outgoing or incoming). Equal `Call`s are the same call.
#[derive(uniffi::Object)]
#[uniffi::export(Eq, Hash)]
pub struct Call {
    inner: Arc<CallInner>,
}

impl PartialEq for Call {
    fn eq(&self, other: &Self) -> bool {
        self.inner.id == other.inner.id && Weak::ptr_eq(&self.inner.core, &other.inner.core)
    }
}

impl Eq for Call {}

impl std::fmt::Debug for Call {
    // The remote address is personal data: it stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.inner.id.0)
            .field("direction", &self.inner.direction)
            .field("report_id", &self.inner.report_id)
            .finish_non_exhaustive()
    }
}

impl std::hash::Hash for Call {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.inner.id.hash(state);
    }
}

impl Call {
    async fn act<F, Fut>(&self, action: F) -> Result<(), HandsetError>
    where
        F: FnOnce(Handset, CallId) -> Fut + Send + 'static,
        Fut: Future<Output = Result<(), handset::HandsetError>> + Send + 'static,
    {
        let core = self.inner.core()?;
        let (handset, id) = (core.handset.clone(), self.inner.id);
        core.run(async move { Ok(action(handset, id).await?) })
            .await
    }
}

#[uniffi::export]
impl Call {
    /// The call's id inside its phone.
    pub fn id(&self) -> u64 {
        self.inner.id.0
    }

    /// Who started the call.
    pub fn direction(&self) -> CallDirection {
        self.inner.direction
    }

    /// The account (its `account_id`) of the call.
    pub fn account_id(&self) -> String {
        self.inner.account_key.clone()
    }

    /// The other side: the dialled target, or the caller's address.
    pub fn remote(&self) -> String {
        self.inner.remote.clone()
    }

    /// The call's id on CallKit / Telecom, a UUID: for a call a VoIP push announced, the push
    /// report's id (already on screen); else one the phone made up. Use it as the CallKit
    /// UUID / Telecom id of every call.
    pub fn report_id(&self) -> String {
        self.inner.report_id.clone()
    }

    /// The current state: the last one the phone reported (a command's effect follows
    /// shortly after it returns).
    pub fn state(&self) -> CallState {
        guard_or(CallState::Calling, || self.inner.state())
    }

    /// Follows this call: the current state first (`update` absent), then every update.
    pub fn subscribe(
        &self,
        listener: Box<dyn CallListener>,
    ) -> Result<Arc<TaskHandle>, HandsetError> {
        guard(|| {
            let core = self.inner.core()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let current = {
                let mut slot = lock(&self.inner.slot);
                slot.subscribers.push(tx);
                slot.state.clone()
            };
            let call = self.inner.clone();
            Ok(Arc::new(subscribe(
                &core.rt,
                "call listener",
                vec![(current, None)],
                rx,
                move |(state, update)| {
                    listener.on_call(
                        Arc::new(Call {
                            inner: call.clone(),
                        }),
                        state,
                        update,
                    )
                },
            )))
        })
    }

    /// Answers an incoming call with `audio`; `media` overrides the account's settings.
    #[uniffi::method(default(media = None))]
    pub async fn answer(
        &self,
        audio: AudioConfig,
        media: Option<MediaConfig>,
    ) -> Result<(), HandsetError> {
        let CallDevice { device, foreign } = guard(|| audio.device())?;
        self.act(move |handset, id| async move {
            let options = CallOptions {
                device,
                media: media.map(Into::into),
                report_id: None,
            };
            handset.answer(id, options).await
        })
        .await?;
        if let Some(foreign) = foreign {
            let core = self.inner.core()?;
            self.inner.start_audio(&core.services, foreign);
        }
        Ok(())
    }

    /// Refuses an incoming call with `status` (486 Busy Here, 603 Decline...).
    #[uniffi::method(default(status = 486))]
    pub async fn reject(&self, status: u16) -> Result<(), HandsetError> {
        if !(400..=699).contains(&status) {
            return Err(HandsetError::InvalidArgument(format!(
                "reject status {status} is not 400..699"
            )));
        }
        self.act(move |handset, id| async move { handset.reject(id, status).await })
            .await
    }

    /// Ends the call: BYE when answered, CANCEL while ringing out, 486 while ringing in.
    pub async fn hangup(&self) -> Result<(), HandsetError> {
        self.act(|handset, id| async move { handset.hangup(id).await })
            .await
    }

    /// Sends DTMF digits (`0-9`, `*`, `#`, `A-D`) as RFC 4733 events.
    pub async fn send_dtmf(&self, digits: String) -> Result<(), HandsetError> {
        if digits.is_empty()
            || !digits
                .chars()
                .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d'))
        {
            return Err(HandsetError::InvalidArgument(format!(
                "DTMF digits {digits:?}"
            )));
        }
        self.act(move |handset, id| async move { handset.send_dtmf(id, &digits).await })
            .await
    }

    /// Puts the call on hold (`true`) or resumes it (`false`).
    pub async fn hold(&self, on_hold: bool) -> Result<(), HandsetError> {
        self.act(move |handset, id| async move { handset.hold(id, on_hold).await })
            .await
    }

    /// Mutes (`true`) or unmutes the microphone; silence is sent while muted (CallKit's
    /// `CXSetMutedCallAction`, Telecom's `onCallAudioStateChanged` mute).
    pub async fn set_muted(&self, muted: bool) -> Result<(), HandsetError> {
        self.act(move |handset, id| async move { handset.mute(id, muted).await })
            .await
    }
}
