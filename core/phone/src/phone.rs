//! The phone machine: the one transaction user of Handset. It owns everything that turns SIP
//! into a phone — accounts and their registrations, voicemail subscriptions, calls with their
//! offer/answer and media plans, instant messages, the push-report ↔ call binding, blocklist
//! and caller-ID decisions, history records, the call screen and audio routes, and what each
//! ending means — and does no I/O: no sockets, no clock, no threads.
//!
//! # One way in, one way out
//!
//! ```text
//!  Command (app) ───────────┐                        ┌─► Transmit { flow, bytes }
//!  Received { flow, bytes } ┤                        ├─► Resolve / Connect / Disconnect
//!  Connected / ConnectFailed│  Phone::handle_input   ├─► BindMedia { call, ip }
//!  / Closed                 ├──(now, input)──────────┤─► Media { call, Start(plan) | Update |
//!  Resolved / MediaBound    │  Phone::poll_output    │          Dtmf | Mute | Stop }
//!  Media / MediaStopped     │                        ├─► Store(record)
//!  Timeout ─────────────────┘                        ├─► Event(PhoneEvent)
//!                                                    └─► Timeout(at)   (last of a drain)
//! ```
//!
//! The runtime feeds every input with the current time, then drains `poll_output` until it
//! returns `None`, carrying out each output; the last output of a drain is the next
//! [`Output::Timeout`] (none: nothing is scheduled). Tests do the same in virtual time.
//! Commands are decided at once: `handle_input` returns their [`Reply`] (the new call's id,
//! the push report to show) or why they were refused.
//!
//! # Lookups
//!
//! The phone asks one synchronous question while it decides: what the [`Directory`] knows of
//! a caller (contact name, blocked). A synchronous read keeps an INVITE's answer and a push's
//! report to one step; the store answers it from a committed snapshot without waiting for
//! writes. Everything the phone wants written goes out as [`Output::Store`].
//!
//! # A call's life
//!
//! ```text
//!  Dial ─► (account resolved and connected) ─► BindMedia ─► offer ─► INVITE ─► Calling
//!  INVITE from the account's server ─► checks: calls < max (else 486), caller not blocked
//!      (else 603 + log), push report not declined (else 603), offer answerable (else 488)
//!      ─► Incoming (ring timeout: 480, missed)
//!  Answer ─► BindMedia ─► answer ─► 200 ─► Media Start ─► Active
//!  the SIP session ends ─► classify the EndReason ─► Media Stop ─► MediaStopped
//!      ─► Ended (with quality) + history record
//! ```
//! The UI state diagram is on [`CallState`].
//!
//! # Security rules, by construction
//!
//! - Out-of-dialog requests other than OPTIONS (INVITE, MESSAGE, SUBSCRIBE, NOTIFY, ...) are
//!   taken only from an account's flow: its TCP/TLS connection, or its server's address for
//!   UDP. Anything else is dropped before it makes a transaction, unless the account opts in
//!   with [`AccountConfig::accept_direct_requests`].
//! - Credentials are answered only to the account's realms: the realms its registrar
//!   challenged REGISTER with (for an account that does not register, the first challenge
//!   its server sent to an out-of-dialog request), plus [`AccountConfig::realms`]; and only
//!   on requests sent on the account's own flow, which every request of the account uses.
//! - At most [`PhoneConfig::max_calls`] calls (486 beyond); an unanswered incoming call
//!   rings for [`PhoneConfig::ring_timeout`] (then 480); an RTP socket is bound only when
//!   media can start (placing a call, answering one), never for a ringing call.
//! - Requests the phone sends on its own (REGISTER, SUBSCRIBE, re-INVITEs, retries) draw
//!   from token buckets: a server that keeps asking cannot make the phone flood it.
//! - Remote input is never sliced or indexed unchecked (clippy `string_slice` and
//!   `indexing_slicing` are denied in this crate).

mod accounts;
mod api;
mod calls;
mod flows;
mod messages;
mod network;
mod rate;
mod state;
mod ui;
mod voicemail;
mod wake;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::Instant;

use handset_sip::message::{HeaderName, Message, Method, Request, Response};
use handset_sip::transaction::{TransactionEvent, TransactionId, TransactionLayer};
use handset_sip::transport::Flow;
use rand::RngCore;

pub use api::{
    AccountConfig, AccountId, BoundMedia, CallId, CallRecord, CallerInfo, Command,
    DEFAULT_UDP_KEEPALIVE, Directory, DtlsPlan, IceGathering, IcePlan, Input, MediaCommand,
    MediaPlan, MessageId, NoDirectory, Output, PhoneConfig, PhoneError, PhoneEvent, Record, Reply,
    TlsTarget, USER_AGENT,
};
pub use state::{CallDirection, CallState, CallUpdate, EndReason, RegistrationState};

use accounts::Account;
use calls::CallEntry;
use flows::Flows;
use messages::OutgoingEntry;
use ui::Ui;
use wake::PushBinding;

/// Who a client or server transaction belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Registration(AccountId),
    Subscription(AccountId),
    Message(MessageId),
    Call(CallId),
    /// A CANCEL: its answer concerns nobody (the INVITE's tells the outcome).
    Nobody,
}

/// The phone machine (see the module documentation).
pub struct Phone {
    config: PhoneConfig,
    directory: Box<dyn Directory>,
    rng: Box<dyn RngCore + Send>,
    layer: TransactionLayer<Flow>,
    flows: Flows,
    accounts: BTreeMap<AccountId, Account>,
    calls: BTreeMap<CallId, CallEntry>,
    messages: BTreeMap<MessageId, OutgoingEntry>,
    /// Client transactions and the flow each one went out on.
    transactions: HashMap<TransactionId, (Owner, Flow)>,
    push: PushBinding,
    ui: Ui,
    foreground: bool,
    next_account: u64,
    next_call: u64,
    next_message: u64,
    outputs: VecDeque<Output>,
    /// An input was handled since the last drain ended: the drain ends with the next timeout.
    timeout_due: bool,
}

impl std::fmt::Debug for Phone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Phone")
            .field("accounts", &self.accounts.len())
            .field("calls", &self.calls.len())
            .field("transactions", &self.layer.len())
            .finish_non_exhaustive()
    }
}

impl Phone {
    /// A phone with no accounts. `directory` answers caller lookups; `rng` makes every random
    /// value (tags, branches, keys, SSRCs, jitter), so a seeded one makes the phone
    /// deterministic.
    pub fn new(
        config: PhoneConfig,
        directory: Box<dyn Directory>,
        rng: Box<dyn RngCore + Send>,
    ) -> Phone {
        let push = PushBinding::new(config.push_wait_for_invite);
        Phone {
            layer: TransactionLayer::new(config.timers),
            flows: Flows::new(),
            config,
            directory,
            rng,
            accounts: BTreeMap::new(),
            calls: BTreeMap::new(),
            messages: BTreeMap::new(),
            transactions: HashMap::new(),
            push,
            ui: Ui::default(),
            foreground: true,
            next_account: 1,
            next_call: 1,
            next_message: 1,
            outputs: VecDeque::new(),
            timeout_due: true,
        }
    }

    /// Handles one input at `now` (running every timer that is due first). Commands get
    /// their reply; other inputs reply [`Reply::Done`]: bad network input is dropped or
    /// answered as SIP says, never an error here.
    pub fn handle_input(&mut self, now: Instant, input: Input) -> Result<Reply, PhoneError> {
        self.timeout_due = true;
        self.handle_timers(now);
        let reply = match input {
            Input::Command(command) => self.handle_command(now, command),
            Input::Timeout => Ok(Reply::Done),
            Input::Received { flow, bytes } => {
                self.handle_received(now, flow, &bytes);
                Ok(Reply::Done)
            }
            Input::Connected { flow, local } => {
                self.handle_connected(now, flow, local);
                Ok(Reply::Done)
            }
            Input::ConnectFailed { flow, error } => {
                self.handle_connect_failed(now, flow, error);
                Ok(Reply::Done)
            }
            Input::Closed { flow, error } => {
                self.handle_closed(now, flow, error);
                Ok(Reply::Done)
            }
            Input::Resolved { account, result } => {
                self.handle_resolved(now, account, result);
                Ok(Reply::Done)
            }
            Input::MediaBound { call, result } => {
                self.handle_media_bound(now, call, result);
                Ok(Reply::Done)
            }
            Input::Media { call, event } => {
                self.handle_media_event(now, call, event);
                Ok(Reply::Done)
            }
            Input::MediaFailed { call, error } => {
                self.handle_media_failed(now, call, &error);
                Ok(Reply::Done)
            }
            Input::MediaStopped { call, quality } => {
                self.handle_media_stopped(now, call, quality);
                Ok(Reply::Done)
            }
        };
        self.pump(now);
        reply
    }

    /// The next piece of work for the runtime; `None` when there is none. Each drain after
    /// an input ends with at most one [`Output::Timeout`]: when to call back with
    /// [`Input::Timeout`] (no timeout: nothing is scheduled).
    pub fn poll_output(&mut self) -> Option<Output> {
        if let Some(output) = self.outputs.pop_front() {
            return Some(output);
        }
        if self.timeout_due {
            self.timeout_due = false;
            return self.next_deadline().map(Output::Timeout);
        }
        None
    }

    /// The accounts' ids, oldest first.
    pub fn accounts(&self) -> Vec<AccountId> {
        self.accounts.keys().copied().collect()
    }

    /// The state of a live (or just ended) call.
    pub fn call_state(&self, call: CallId) -> Option<&CallState> {
        self.calls.get(&call).map(CallEntry::state)
    }

    /// How many calls the phone holds (ended ones stay until their clean-up is done).
    pub fn call_count(&self) -> usize {
        self.calls.len()
    }

    /// How many SIP transactions are alive (for resource checks).
    pub fn transaction_count(&self) -> usize {
        self.layer.len()
    }

    fn handle_command(&mut self, now: Instant, command: Command) -> Result<Reply, PhoneError> {
        match command {
            Command::AddAccount(config) => self.add_account(now, *config).map(Reply::Account),
            Command::Register(id) => {
                self.account_mut(id)?.register_now(now);
                Ok(Reply::Done)
            }
            Command::Unregister(id) => {
                self.account_mut(id)?.registration.unregister(now);
                Ok(Reply::Done)
            }
            Command::RemoveAccount(id) => self.remove_account(now, id).map(|()| Reply::Done),
            Command::SetContactParams(id, params) => {
                let account = self.account_mut(id)?;
                account.registration.set_contact_params(params);
                account.register_now(now);
                self.apply_keepalive_policy(now);
                Ok(Reply::Done)
            }
            Command::DnsChanged => {
                self.dns_changed(now);
                Ok(Reply::Done)
            }
            Command::NetworkChanged => {
                self.network_changed(now);
                Ok(Reply::Done)
            }
            Command::SetForeground(foreground) => {
                self.foreground = foreground;
                self.apply_keepalive_policy(now);
                self.ui_input(now, crate::screen::ScreenInput::Foreground(foreground));
                Ok(Reply::Done)
            }
            Command::SendMessage {
                account,
                target,
                text,
            } => self
                .send_message(account, &target, &text)
                .map(Reply::Message),
            Command::Dial {
                account,
                target,
                media,
                report_id,
            } => self
                .dial(now, account, &target, media, report_id)
                .map(Reply::Call),
            Command::Answer { call, media } => self.answer(now, call, media).map(|()| Reply::Done),
            Command::Reject { call, status } => {
                self.reject(now, call, status).map(|()| Reply::Done)
            }
            Command::Hangup(call) => self.hangup(now, call).map(|()| Reply::Done),
            Command::Dtmf { call, digits } => self.dtmf(call, &digits).map(|()| Reply::Done),
            Command::Hold { call, on_hold } => self.hold(now, call, on_hold).map(|()| Reply::Done),
            Command::Mute { call, muted } => self.mute(call, muted).map(|()| Reply::Done),
            Command::Push(payload) => self.handle_push(now, &payload),
            Command::DeclinePushReport(report) => {
                Ok(Reply::ReportEnded(self.decline_push_report(now, report)))
            }
            Command::Screen(input) => {
                self.ui_input(now, input);
                Ok(Reply::Done)
            }
            Command::Routes(input) => self.route_input(input).map(|()| Reply::Done),
        }
    }

    fn account_mut(&mut self, id: AccountId) -> Result<&mut Account, PhoneError> {
        self.accounts
            .get_mut(&id)
            .ok_or(PhoneError::UnknownAccount(id))
    }

    /// Runs every timer that is due at `now`.
    fn handle_timers(&mut self, now: Instant) {
        self.layer.handle_timeout(now);
        for account in self.accounts.values_mut() {
            account.registration.handle_timeout(now);
            if let Some(mwi) = account.mwi.as_mut() {
                mwi.handle_timeout(now);
            }
        }
        for entry in self.calls.values_mut() {
            if let Some(call) = entry.sip.as_mut() {
                call.handle_timeout(now);
            }
        }
        self.ring_timeouts(now);
        self.media_stop_timeouts(now);
        self.push_timeouts(now);
        self.flow_timers(now);
        self.release_outboxes(now);
        self.ui_timers(now);
    }

    /// The earliest deadline of any timer.
    fn next_deadline(&self) -> Option<Instant> {
        let accounts = self.accounts.values().flat_map(|a| {
            [
                a.registration.poll_timeout(),
                a.mwi.as_ref().and_then(|m| m.poll_timeout()),
                a.outbox_deadline(),
            ]
        });
        let calls = self.calls.values().flat_map(CallEntry::deadlines);
        accounts
            .chain(calls)
            .chain([
                self.layer.poll_timeout(),
                self.push.poll_timeout(),
                self.flows.poll_timeout(),
                self.ui.poll_timeout(),
            ])
            .flatten()
            .min()
    }

    /// Runs the machines until none has anything left to do.
    fn pump(&mut self, now: Instant) {
        loop {
            let mut progressed = false;
            progressed |= self.pump_registrations(now);
            progressed |= self.pump_voicemail(now);
            progressed |= self.pump_messages(now);
            progressed |= self.pump_calls(now);
            progressed |= self.pump_push(now);
            while let Some(output) = self.layer.poll_output() {
                progressed = true;
                match output {
                    handset_sip::transaction::Output::Transmit { to, message, .. } => {
                        self.transmit(to, &message);
                    }
                    handset_sip::transaction::Output::Event(event) => {
                        self.handle_transaction_event(now, event);
                    }
                }
            }
            if !progressed {
                break;
            }
        }
        self.forget_removed_accounts();
        self.reap_calls(now);
    }

    fn emit(&mut self, event: PhoneEvent) {
        self.outputs.push_back(Output::Event(event));
    }

    fn transmit(&mut self, flow: Flow, message: &Message) {
        tracing::debug!(%flow, kind = %message_kind(message), "sending");
        self.outputs.push_back(Output::Transmit {
            flow,
            bytes: message.to_bytes(),
        });
    }

    /// A message cut out of a flow: requests that no account may receive from this flow are
    /// dropped here, before they make a transaction; the rest go to the transaction layer.
    fn handle_message(&mut self, now: Instant, flow: Flow, message: Message) {
        tracing::debug!(%flow, kind = %message_kind(&message), "received");
        if let Message::Request(request) = &message
            && !self.admits(flow, request)
        {
            tracing::info!(%flow, method = %request.method, "out-of-dialog request from outside the accounts' flows dropped");
            return;
        }
        if let Err(error) = self
            .layer
            .handle_message(now, message, flow, flow.reliable())
        {
            tracing::debug!(%error, "message matched no usable transaction");
        }
    }

    /// Whether a request may make a transaction: in-dialog requests (a To tag: the dialog
    /// decides), OPTIONS, ACK and CANCEL (they match existing transactions) always; other
    /// out-of-dialog requests only on an account's flow (or for an account that accepts
    /// direct requests).
    fn admits(&self, flow: Flow, request: &Request) -> bool {
        let in_dialog = request.headers.to().is_ok_and(|to| to.tag().is_some());
        if in_dialog
            || matches!(
                request.method,
                Method::Options | Method::Ack | Method::Cancel
            )
        {
            return true;
        }
        self.accounts.values().any(|a| a.admits(flow))
    }

    fn handle_transaction_event(&mut self, now: Instant, event: TransactionEvent<Flow>) {
        match event {
            TransactionEvent::Response { id, response } => {
                let owner = self.transactions.get(&id).map(|(owner, _)| *owner);
                match owner {
                    Some(Owner::Registration(account)) => {
                        self.registration_response(now, account, id, &response);
                    }
                    Some(Owner::Call(call)) => self.call_response(now, call, id, response),
                    Some(Owner::Subscription(account)) => {
                        self.subscription_response(now, account, id, Ok(&response));
                    }
                    Some(Owner::Message(message)) => {
                        self.message_response(message, Ok(&response));
                    }
                    Some(Owner::Nobody) | None => {}
                }
            }
            TransactionEvent::Timeout { id } | TransactionEvent::TransportError { id } => {
                let failure = if matches!(event, TransactionEvent::Timeout { .. }) {
                    handset_sip::usage::registration::TransactionFailure::Timeout
                } else {
                    handset_sip::usage::registration::TransactionFailure::Transport
                };
                match self.transactions.remove(&id).map(|(owner, _)| owner) {
                    Some(Owner::Registration(account)) => {
                        self.registration_failed(now, account, id, failure);
                    }
                    Some(Owner::Call(call)) => {
                        if let Some(sip) = self.calls.get_mut(&call).and_then(|c| c.sip.as_mut()) {
                            sip.handle_transaction_failure(now, id, failure);
                        }
                    }
                    Some(Owner::Subscription(account)) => {
                        self.subscription_response(now, account, id, Err(failure));
                    }
                    Some(Owner::Message(message)) => {
                        self.message_response(message, Err(failure));
                    }
                    Some(Owner::Nobody) | None => {}
                }
            }
            TransactionEvent::Terminated { id } => {
                self.transactions.remove(&id);
            }
            TransactionEvent::NewRequest {
                id,
                request,
                from,
                cancels,
            } => self.handle_new_request(now, id, request, from, cancels),
            TransactionEvent::StrayAck { request, .. } => {
                if let Some(sip) = self
                    .calls
                    .values_mut()
                    .filter_map(|c| c.sip.as_mut())
                    .find(|c| c.matches_request(&request))
                {
                    sip.handle_stray_ack(now, request);
                }
            }
            TransactionEvent::StrayResponse { response, .. } => {
                if let Some(sip) = self
                    .calls
                    .values_mut()
                    .filter_map(|c| c.sip.as_mut())
                    .find(|c| c.matches_response(&response))
                {
                    sip.handle_stray_response(now, response);
                }
            }
        }
    }

    /// A request that created a server transaction: CANCELs and in-dialog requests go to
    /// their call or subscription, a new INVITE becomes an incoming call, a MESSAGE a
    /// received message; anything else is answered here.
    fn handle_new_request(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        from: Flow,
        cancels: Option<TransactionId>,
    ) {
        if let Some(invite) = cancels {
            self.handle_cancel(now, tx, request, invite);
            return;
        }
        if request.method == Method::Notify {
            self.handle_notify(now, tx, &request);
            return;
        }
        if let Some(call) = self.call_for_request(&request) {
            self.call_request(now, call, tx, request, from);
            return;
        }
        let in_dialog = request.headers.to().is_ok_and(|to| to.tag().is_some());
        let response = match request.method {
            Method::Ack => return,
            Method::Options if !in_dialog => final_response(&request, 200),
            Method::Invite if !in_dialog => {
                self.incoming_call(now, tx, request, from);
                return;
            }
            Method::Message if !in_dialog => {
                self.incoming_message(now, tx, &request, from);
                return;
            }
            _ if in_dialog || matches!(request.method, Method::Cancel | Method::Bye) => {
                Response::to_request(&request, 481)
            }
            _ => final_response(&request, 405),
        };
        self.respond(now, tx, response);
    }

    fn respond(&mut self, now: Instant, tx: TransactionId, response: Response) {
        if let Err(error) = self.layer.send_response(now, tx, response) {
            tracing::debug!(%error, "response not sent");
        }
    }

    /// A random source for one machine, drawn from the phone's (so a seeded phone stays
    /// deterministic).
    fn child_rng(&mut self) -> Box<dyn RngCore + Send> {
        Box::new(<rand::rngs::StdRng as rand::SeedableRng>::from_rng(
            &mut self.rng,
        ))
    }

    fn new_call_id(&mut self) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        id
    }
}

/// A final response to an out-of-dialog request, with our To tag, Allow and Server.
fn final_response(request: &Request, status: u16) -> Response {
    let mut response = Response::to_request(request, status);
    add_to_tag(
        &mut response,
        &format!("h{}", request.headers.cseq().map(|c| c.seq).unwrap_or(0)),
    );
    response
        .headers
        .push(HeaderName::Allow, handset_sip::usage::registration::ALLOW);
    response.headers.push(HeaderName::Server, USER_AGENT);
    response
}

/// Gives a response to an out-of-dialog request our To tag, unless it has one.
fn add_to_tag(response: &mut Response, tag: &str) {
    if response.headers.to().is_ok_and(|to| to.tag().is_none())
        && let Some(to) = response.headers.get(&HeaderName::To).map(str::to_string)
    {
        response
            .headers
            .set(HeaderName::To, format!("{to};tag={tag}"));
    }
}

/// A log-safe description of a message: method or status, nothing personal.
fn message_kind(message: &Message) -> String {
    match message {
        Message::Request(r) => r.method.to_string(),
        Message::Response(r) => format!(
            "{} {}",
            r.status,
            r.headers
                .cseq()
                .map(|c| c.method.to_string())
                .unwrap_or_default()
        ),
    }
}
