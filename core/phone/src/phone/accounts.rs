//! Accounts: where their server is (RFC 3263 targets, failover to the next one, §4.3), the
//! flow every request of the account goes out on, our Contact on it, the registration, the
//! realms its credentials may answer, and the outbox that holds requests until the flow is up
//! and the rate limit allows them.

use std::collections::{BTreeSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Instant;

use crate::pin::CertFingerprint;
use handset_media::ice::{IceConfig, IcePolicy};
use handset_media::sdp::MediaConfig;
use handset_sip::auth::{Challenge, CredentialStore, Credentials};
use handset_sip::message::{HeaderName, Host, Param, Request, Response, SipUri, Uri};
use handset_sip::transaction::{TransactionId, new_branch};
use handset_sip::transport::{Flow, ServerTarget, Target, Transport};
use handset_sip::usage::invite::RequestHandle;
use handset_sip::usage::registration::{
    Registration, RegistrationConfig, RegistrationEvent, RegistrationFailure, RegistrationOutput,
    RegistrationState as MachineState, TransactionFailure,
};
use handset_sip::usage::subscription::{Subscription, SubscriptionState};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::flows::FlowState;
use super::rate::RateLimiter;
use super::{
    AccountConfig, AccountId, IceGathering, Output, Owner, Phone, PhoneError, PhoneEvent,
    RegistrationState, TlsTarget, USER_AGENT,
};

/// Most requests an account holds while its flow opens; older ones fail beyond it.
const MAX_OUTBOX: usize = 32;

/// A request waiting for its account's flow (or for a rate-limit token).
#[derive(Debug)]
pub(super) struct Pending {
    owner: Owner,
    /// The call's handle of the request, for calls.
    handle: Option<RequestHandle>,
    request: Request,
    /// Draws from the account's token bucket.
    limited: bool,
}

/// One account.
pub(super) struct Account {
    pub(super) user: String,
    pub(super) aor: SipUri,
    pub(super) display_name: Option<String>,
    pub(super) media: MediaConfig,
    ice: IceConfig,
    server: ServerTarget,
    ca_file: Option<PathBuf>,
    pinned_sha256: Option<CertFingerprint>,
    register: bool,
    pub(super) voicemail: bool,
    accept_direct: bool,
    pub(super) registration: Registration,
    /// The registration as the application sees it.
    pub(super) state: RegistrationState,
    credentials: Credentials,
    configured_realms: Vec<String>,
    /// Realms learned from the account's own server's challenges.
    learned_realms: BTreeSet<String>,
    /// The server's targets, in the order to try; empty until resolved.
    targets: Vec<Target>,
    current: usize,
    resolving: bool,
    /// Our address the Contact was made from (the flow's local address).
    contact_local: Option<SocketAddr>,
    /// The REGISTER in flight (without Via), to resend it to the next target.
    register_in_flight: Option<(TransactionId, Request)>,
    limiter: RateLimiter,
    outbox: VecDeque<Pending>,
    pub(super) mwi: Option<Subscription>,
    pub(super) mwi_tx: Option<TransactionId>,
    pub(super) removing: bool,
    pub(super) unregistered: bool,
    /// What the network last said went wrong (shown with a transport failure).
    last_error: Option<String>,
}

impl Account {
    /// The flow of the account's current target, once resolved.
    pub(super) fn flow(&self) -> Option<Flow> {
        self.targets.get(self.current).map(Target::flow)
    }

    fn tls_target(&self) -> Option<TlsTarget> {
        let target = self.targets.get(self.current)?;
        (target.transport == Transport::Tls).then(|| TlsTarget {
            server_name: target.host.clone(),
            ca_file: self.ca_file.clone(),
            pinned_sha256: self.pinned_sha256,
        })
    }

    /// What gathering a call's candidates needs, when the account's calls use ICE.
    pub(super) fn ice_gathering(&self) -> Option<Box<IceGathering>> {
        self.ice.is_enabled().then(|| {
            Box::new(IceGathering {
                config: self.ice.clone(),
                ca_file: self.ca_file.clone(),
                pinned_sha256: self.pinned_sha256,
            })
        })
    }

    /// Which candidates the account's calls may use.
    pub(super) fn ice_policy(&self) -> IcePolicy {
        self.ice.policy
    }

    /// Whether out-of-dialog requests from `flow` may be for this account.
    pub(super) fn admits(&self, flow: Flow) -> bool {
        self.accept_direct || self.flow() == Some(flow)
    }

    /// Asks to be woken by push (RFC 8599 `pn-provider` in its Contact).
    pub(super) fn wants_push(&self) -> bool {
        self.registration
            .config()
            .contact_params
            .iter()
            .any(|(name, _)| name.eq_ignore_ascii_case("pn-provider"))
    }

    /// Sends a REGISTER now, from the first server target.
    pub(super) fn register_now(&mut self, now: Instant) {
        if self.register {
            self.current = 0;
            self.registration.start(now);
        }
    }

    /// The Contact of every request of the account (NAT-corrected by the registration).
    pub(super) fn contact(&self) -> SipUri {
        self.registration.config().contact.clone()
    }

    /// The credentials for the account's realms only.
    pub(super) fn credential_store(&self) -> CredentialStore {
        let mut store = CredentialStore::new();
        for realm in self.configured_realms.iter().chain(&self.learned_realms) {
            store.insert(realm.clone(), self.credentials.clone());
        }
        store
    }

    pub(super) fn outbox_deadline(&self) -> Option<Instant> {
        if self.outbox.iter().any(|p| p.limited) {
            self.limiter.next_token_at()
        } else {
            None
        }
    }

    /// Nothing to do here any more: removed, unregistered, and the voicemail subscription
    /// gone.
    fn finished(&self) -> bool {
        self.removing
            && self.unregistered
            && self.mwi.as_ref().is_none_or(|m| {
                matches!(
                    m.state(),
                    SubscriptionState::Idle | SubscriptionState::Terminated
                )
            })
    }
}

/// Our Contact URI for `user` on a flow of `transport` from `local`.
fn local_contact(user: &str, transport: Transport, local: SocketAddr) -> SipUri {
    let mut contact = SipUri::new(Some(user), Host::from(local.ip()));
    contact.port = Some(local.port());
    if transport != Transport::Udp {
        contact
            .params
            .push(Param::new("transport", transport.as_str()));
    }
    contact
}

/// The transport a server URI asks for (an explicit setting first).
fn transport_of(uri: &SipUri, explicit: Option<Transport>) -> Option<Transport> {
    explicit.or_else(|| {
        uri.transport_param()
            .and_then(|t| Transport::parse(&t))
            .or(uri.secure.then_some(Transport::Tls))
    })
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Domain(d) => d.clone(),
        Host::V4(a) => a.to_string(),
        Host::V6(a) => a.to_string(),
    }
}

/// A fresh RFC 4122 version-4 URN from the phone's random source.
fn new_instance_id(rng: &mut dyn rand::RngCore) -> String {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    let part = |from: usize, to: usize| hex.get(from..to).unwrap_or_default().to_string();
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        part(0, 8),
        part(8, 12),
        part(12, 16),
        part(16, 20),
        part(20, 32)
    )
}

/// The realms of the Digest challenges in a 401/407.
fn challenge_realms(response: &Response) -> Vec<String> {
    let name = if response.status == 401 {
        HeaderName::WwwAuthenticate
    } else {
        HeaderName::ProxyAuthenticate
    };
    response
        .headers
        .get_all(&name)
        .filter_map(|value| Challenge::parse(value).ok())
        .map(|c| c.realm)
        .collect()
}

impl Phone {
    pub(super) fn add_account(
        &mut self,
        now: Instant,
        config: AccountConfig,
    ) -> Result<AccountId, PhoneError> {
        let server = match Uri::parse(config.server.trim()) {
            Ok(Uri::Sip(uri)) => uri,
            Ok(_) => {
                return Err(PhoneError::InvalidServer("not a sip: or sips: URI".into()));
            }
            Err(e) => return Err(PhoneError::InvalidServer(e.to_string())),
        };
        if config.user.trim().is_empty() {
            return Err(PhoneError::InvalidArgument("empty user".into()));
        }
        config
            .ice
            .validate()
            .map_err(|e| PhoneError::InvalidArgument(e.to_string()))?;
        let mut target = ServerTarget::new(host_text(&server.host)).with_sips(server.secure);
        if let Some(port) = server.port {
            target = target.with_port(port);
        }
        if let Some(t) = transport_of(&server, config.transport) {
            target = target.with_transport(t);
        }
        let domain = match &config.domain {
            Some(d) => Host::parse(d).map_err(|e| PhoneError::InvalidServer(e.to_string()))?,
            None => server.host.clone(),
        };
        let aor = SipUri::new(Some(&config.user), domain.clone());
        let instance_id = match &config.instance_id {
            Some(id) => id.clone(),
            None => new_instance_id(self.rng.as_mut()),
        };
        let auth_user = config.auth_user.clone().unwrap_or(config.user.clone());
        let credentials = Credentials::new(auth_user, config.secret.clone());
        let registration = Registration::new(
            RegistrationConfig {
                aor: aor.clone(),
                registrar: SipUri::new(None, domain),
                // Replaced by our address on the flow once it is open.
                contact: SipUri::new(Some(&config.user), Host::V4(Ipv4Addr::LOCALHOST)),
                display_name: config.display_name.clone(),
                expires: config.expires,
                instance_id: Some(instance_id),
                reg_id: Some(1),
                contact_params: config.contact_params.clone(),
                rewrite_contact: true,
                retry: config.retry,
                user_agent: USER_AGENT.to_string(),
            },
            // REGISTER goes to the registrar we were configured with: it may challenge in
            // any realm, and that realm becomes the account's.
            CredentialStore::with_default(credentials.clone()),
            Box::new(StdRng::from_rng(&mut self.rng)),
        );
        let id = AccountId(self.next_account);
        self.next_account += 1;
        let mut account = Account {
            user: config.user.clone(),
            aor,
            display_name: config.display_name.clone(),
            media: config.media.clone(),
            ice: config.ice.clone(),
            server: target,
            ca_file: config.ca_file.clone(),
            pinned_sha256: config.pinned_sha256,
            register: config.register,
            voicemail: config.voicemail,
            accept_direct: config.accept_direct_requests,
            registration,
            state: RegistrationState::Idle,
            credentials,
            configured_realms: config.realms.clone(),
            learned_realms: BTreeSet::new(),
            targets: Vec::new(),
            current: 0,
            resolving: false,
            contact_local: None,
            register_in_flight: None,
            limiter: RateLimiter::account(),
            outbox: VecDeque::new(),
            mwi: None,
            mwi_tx: None,
            removing: false,
            unregistered: false,
            last_error: None,
        };
        account.register_now(now);
        let subscribe_now = !account.register && account.voicemail;
        self.accounts.insert(id, account);
        self.resolve_account(id);
        if subscribe_now {
            // No registration to wait for: voicemail is subscribed to straight away.
            self.start_voicemail(now, id);
        }
        self.apply_keepalive_policy(now);
        Ok(id)
    }

    /// Unregisters the account and its voicemail subscription; it is forgotten once both are
    /// gone ([`PhoneEvent::AccountRemoved`]).
    pub(super) fn remove_account(&mut self, now: Instant, id: AccountId) -> Result<(), PhoneError> {
        let account = self.account_mut(id)?;
        account.removing = true;
        account.registration.unregister(now);
        if let Some(mwi) = account.mwi.as_mut() {
            mwi.unsubscribe(now);
        }
        Ok(())
    }

    /// Forgets the removed accounts that have nothing left to do.
    pub(super) fn forget_removed_accounts(&mut self) {
        let done: Vec<AccountId> = self
            .accounts
            .iter()
            .filter(|(_, a)| a.finished())
            .map(|(id, _)| *id)
            .collect();
        for id in done {
            let Some(account) = self.accounts.remove(&id) else {
                continue;
            };
            self.transactions.retain(|_, (owner, _)| {
                !matches!(owner, Owner::Registration(a) | Owner::Subscription(a) if *a == id)
            });
            if let Some(flow) = account.flow()
                && !self.accounts.values().any(|a| a.flow() == Some(flow))
                && !self.calls.values().any(|c| c.account == id)
                && self.flows.state(&flow).is_some()
            {
                self.flows_forget(flow);
            }
            self.emit(PhoneEvent::AccountRemoved { account: id });
            tracing::info!(account = %id, "account removed");
        }
    }

    fn flows_forget(&mut self, flow: Flow) {
        // Nobody uses the flow any more: close it without failing anything.
        self.flows_remove_quietly(flow);
        if flow.reliable() {
            self.outputs.push_back(Output::Disconnect { flow });
        }
    }

    /// New DNS servers: accounts whose server was not found (no target, a retry pending)
    /// register again now, which looks the server up through the new servers.
    pub(super) fn dns_changed(&mut self, now: Instant) {
        for (id, account) in &mut self.accounts {
            let waiting = matches!(
                account.state,
                RegistrationState::Failed {
                    retry_in: Some(_),
                    ..
                }
            );
            if account.register
                && !account.removing
                && !account.resolving
                && account.targets.is_empty()
                && waiting
            {
                tracing::info!(account = %id, "DNS servers changed: registering again");
                account.register_now(now);
            }
        }
    }

    /// A new network: every account forgets where its server was (looked up again there)
    /// and which address its Contact was made from.
    pub(super) fn forget_server_targets(&mut self) {
        for account in self.accounts.values_mut() {
            account.targets.clear();
            account.current = 0;
            account.contact_local = None;
        }
    }

    /// A new network: accounts that are bound, binding, or waiting to retry register from
    /// their new address now; a registration refused for good (credentials) or ended by the
    /// app stays so. Every account's flow is opened again.
    pub(super) fn register_from_new_network(&mut self, now: Instant) {
        let ids: Vec<AccountId> = self.accounts.keys().copied().collect();
        for id in ids {
            let Some(account) = self.accounts.get_mut(&id) else {
                continue;
            };
            let again = match &account.state {
                RegistrationState::Registered { .. } | RegistrationState::Registering => true,
                RegistrationState::Failed { retry_in, .. } => retry_in.is_some(),
                RegistrationState::Idle | RegistrationState::Unregistered => false,
            };
            if account.register && !account.removing && again {
                account.register_now(now);
            }
            self.open_account_flow(id);
        }
    }

    /// Asks the runtime where the account's server is, unless a lookup is under way.
    pub(super) fn resolve_account(&mut self, id: AccountId) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        if account.resolving {
            return;
        }
        account.resolving = true;
        let target = account.server.clone();
        self.outputs.push_back(Output::Resolve {
            account: id,
            target,
        });
    }

    pub(super) fn handle_resolved(
        &mut self,
        now: Instant,
        id: AccountId,
        result: Result<Vec<Target>, String>,
    ) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        account.resolving = false;
        match result {
            Ok(targets) if !targets.is_empty() => {
                account.targets = targets;
                account.current = 0;
                self.flush_outbox(now, id);
                // Outgoing calls waiting for the server's address go on.
                self.account_flow_ready(now, id);
            }
            Ok(_) => self.account_unreachable(now, id, "the server has no address".into()),
            Err(error) => {
                self.account_unreachable(now, id, format!("cannot locate the server: {error}"));
            }
        }
    }

    /// Sends a request of the account: now if its flow is up (and, for `limited` requests, a
    /// token is left), else as soon as that is so. `handle` is a call's request handle.
    pub(super) fn send_request(
        &mut self,
        now: Instant,
        id: AccountId,
        owner: Owner,
        handle: Option<RequestHandle>,
        request: Request,
        limited: bool,
    ) {
        let Some(account) = self.accounts.get_mut(&id) else {
            self.request_failed(now, owner, handle, TransactionFailure::Transport);
            return;
        };
        let mut overflow = None;
        if account.outbox.len() >= MAX_OUTBOX {
            overflow = account.outbox.pop_front();
        }
        account.outbox.push_back(Pending {
            owner,
            handle,
            request,
            limited,
        });
        if let Some(old) = overflow {
            tracing::warn!(account = %id, "outbox full: the oldest request fails");
            self.request_failed(now, old.owner, old.handle, TransactionFailure::Transport);
        }
        self.flush_outbox(now, id);
    }

    /// Sends what the account's outbox may send now.
    pub(super) fn flush_outbox(&mut self, now: Instant, id: AccountId) {
        let Some(account) = self.accounts.get(&id) else {
            return;
        };
        if account.outbox.is_empty() {
            return;
        }
        let Some(flow) = account.flow() else {
            self.resolve_account(id);
            return;
        };
        let local = match self.flows.state(&flow) {
            Some(FlowState::Up(local)) => local,
            Some(FlowState::Connecting) => return,
            None => {
                let tls = account.tls_target();
                self.ensure_flow(flow, tls);
                return;
            }
        };
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        let mut ready = Vec::new();
        let mut waiting = VecDeque::new();
        while let Some(pending) = account.outbox.pop_front() {
            if pending.limited && !account.limiter.try_take(now) {
                waiting.push_back(pending);
            } else {
                ready.push(pending);
            }
        }
        account.outbox = waiting;
        for pending in ready {
            self.transmit_request(now, id, flow, local, pending);
        }
    }

    /// Puts our Via on the request and starts its client transaction on `flow`.
    fn transmit_request(
        &mut self,
        now: Instant,
        id: AccountId,
        flow: Flow,
        local: SocketAddr,
        pending: Pending,
    ) {
        let Pending {
            owner,
            handle,
            request,
            ..
        } = pending;
        let mut with_via = request.clone();
        let branch = new_branch(&mut self.rng);
        with_via.headers.push_front(
            HeaderName::Via,
            format!(
                "SIP/2.0/{} {local};branch={branch};rport",
                flow.transport.via_name()
            ),
        );
        let method = request.method.clone();
        match self
            .layer
            .send_request(now, with_via, flow, flow.reliable())
        {
            Ok(tx) => {
                self.transactions.insert(tx, (owner, flow));
                match owner {
                    Owner::Registration(_) => {
                        if let Some(account) = self.accounts.get_mut(&id) {
                            account.register_in_flight = Some((tx, request));
                        }
                    }
                    Owner::Subscription(_) => {
                        if let Some(account) = self.accounts.get_mut(&id) {
                            account.mwi_tx = Some(tx);
                        }
                    }
                    Owner::Call(call) => {
                        if let (Some(handle), Some(sip)) = (
                            handle,
                            self.calls.get_mut(&call).and_then(|c| c.sip.as_mut()),
                        ) {
                            sip.request_sent(handle, tx);
                        }
                    }
                    Owner::Message(_) | Owner::Nobody => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, %method, "request not sent");
                self.request_failed(now, owner, handle, TransactionFailure::Transport);
            }
        }
    }

    /// Tells a request's owner it could not go out.
    fn request_failed(
        &mut self,
        now: Instant,
        owner: Owner,
        handle: Option<RequestHandle>,
        failure: TransactionFailure,
    ) {
        match owner {
            Owner::Registration(id) => {
                if let Some(account) = self.accounts.get_mut(&id) {
                    account.register_in_flight = None;
                    account
                        .registration
                        .handle_transaction_failure(now, failure);
                }
            }
            Owner::Subscription(id) => {
                if let Some(mwi) = self.accounts.get_mut(&id).and_then(|a| a.mwi.as_mut()) {
                    mwi.handle_transaction_failure(now, failure);
                }
            }
            Owner::Message(message) => self.message_response(message, Err(failure)),
            Owner::Call(call) => {
                if let (Some(handle), Some(sip)) = (
                    handle,
                    self.calls.get_mut(&call).and_then(|c| c.sip.as_mut()),
                ) {
                    sip.request_not_sent(now, handle);
                }
            }
            Owner::Nobody => {}
        }
    }

    /// Sends the account requests whose rate-limit token came.
    pub(super) fn release_outboxes(&mut self, now: Instant) {
        let due: Vec<AccountId> = self
            .accounts
            .iter()
            .filter(|(_, a)| a.outbox_deadline().is_some_and(|at| at <= now))
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.flush_outbox(now, id);
        }
    }

    /// Every target of the account failed (or none was found): what waited fails, and the
    /// server is looked up again next time.
    fn account_unreachable(&mut self, now: Instant, id: AccountId, error: String) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        tracing::info!(account = %id, %error, "server unreachable");
        account.last_error = Some(error);
        account.targets.clear();
        account.current = 0;
        let failed: Vec<Pending> = account.outbox.drain(..).collect();
        for pending in failed {
            self.request_failed(
                now,
                pending.owner,
                pending.handle,
                TransactionFailure::Transport,
            );
        }
        self.account_calls_unreachable(now, id);
    }

    /// The accounts whose current flow is `flow`.
    fn accounts_on(&self, flow: Flow) -> Vec<AccountId> {
        self.accounts
            .iter()
            .filter(|(_, a)| a.flow() == Some(flow))
            .map(|(id, _)| *id)
            .collect()
    }

    /// A flow opened: the accounts on it adopt our address on it and send what waited.
    pub(super) fn flow_up(&mut self, now: Instant, flow: Flow, local: SocketAddr) {
        for id in self.accounts_on(flow) {
            let Some(account) = self.accounts.get_mut(&id) else {
                continue;
            };
            account.last_error = None;
            if account.contact_local != Some(local) {
                account.contact_local = Some(local);
                let contact = local_contact(&account.user, flow.transport, local);
                // Requests made with the old Contact are made again with the new one.
                let stale_register = account
                    .outbox
                    .iter()
                    .any(|p| matches!(p.owner, Owner::Registration(_)));
                let stale_subscribe = account
                    .outbox
                    .iter()
                    .any(|p| matches!(p.owner, Owner::Subscription(_)));
                account.outbox.retain(|p| {
                    !matches!(p.owner, Owner::Registration(_) | Owner::Subscription(_))
                });
                account.registration.set_contact(now, contact.clone());
                if stale_register {
                    account.registration.start(now);
                }
                if let Some(mwi) = account.mwi.as_mut() {
                    mwi.set_contact(now, contact);
                    if stale_subscribe {
                        mwi.start(now);
                    }
                }
            }
            self.flush_outbox(now, id);
            self.account_flow_ready(now, id);
        }
    }

    /// A flow could not be opened: its accounts move on to their next target (RFC 3263
    /// §4.3), or give up when none is left.
    pub(super) fn flow_failed(&mut self, now: Instant, flow: Flow, error: String) {
        for id in self.accounts_on(flow) {
            let Some(account) = self.accounts.get_mut(&id) else {
                continue;
            };
            account.last_error = Some(error.clone());
            if account.current + 1 < account.targets.len() {
                account.current += 1;
                tracing::info!(account = %id, "target failed, trying the next one");
                self.flush_outbox(now, id);
            } else {
                self.account_unreachable(now, id, error.clone());
            }
        }
        self.flow_lost(now, flow, None);
    }

    /// A flow went away: its transactions fail, and registered accounts on it register again
    /// at once (on a new connection).
    pub(super) fn flow_lost(&mut self, now: Instant, flow: Flow, error: Option<String>) {
        let affected: Vec<TransactionId> = self
            .transactions
            .iter()
            .filter(|(_, (_, f))| *f == flow)
            .map(|(id, _)| *id)
            .collect();
        for tx in affected {
            self.layer.handle_transport_error(now, tx);
        }
        let mut reopen = Vec::new();
        for (id, account) in &mut self.accounts {
            if account.flow() == Some(flow) {
                if error.is_some() {
                    account.last_error = error.clone();
                }
                account.contact_local = None;
                if account.registration.state() == MachineState::Registered {
                    reopen.push(*id);
                }
            }
        }
        // A bound account opens a new connection at once: once it is up, the new Contact
        // re-registers it (see `flow_up`), without waiting for the refresh timer.
        for id in reopen {
            self.open_account_flow(id);
        }
    }

    /// Drains the registrations' outputs. Returns whether there were any.
    pub(super) fn pump_registrations(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        let ids: Vec<AccountId> = self.accounts.keys().copied().collect();
        for id in ids {
            while let Some(output) = self
                .accounts
                .get_mut(&id)
                .and_then(|a| a.registration.poll_output())
            {
                progressed = true;
                match output {
                    RegistrationOutput::Send(request) => {
                        self.send_request(now, id, Owner::Registration(id), None, request, true);
                    }
                    RegistrationOutput::Event(event) => self.registration_event(now, id, event),
                }
            }
        }
        progressed
    }

    fn registration_event(&mut self, now: Instant, id: AccountId, event: RegistrationEvent) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        let state = match event {
            RegistrationEvent::Registering => RegistrationState::Registering,
            RegistrationEvent::Registered { expires } => RegistrationState::Registered { expires },
            RegistrationEvent::Failed { reason, retry_in } => {
                let detail = match reason {
                    RegistrationFailure::Transport | RegistrationFailure::Timeout => {
                        account.last_error.clone()
                    }
                    _ => None,
                };
                RegistrationState::Failed {
                    reason,
                    detail,
                    retry_in,
                }
            }
            RegistrationEvent::Unregistered => {
                if account.removing {
                    account.unregistered = true;
                }
                RegistrationState::Unregistered
            }
        };
        account.state = state.clone();
        let registered = matches!(state, RegistrationState::Registered { .. });
        let flow = account.flow();
        tracing::info!(account = %id, state = ?state, "registration");
        self.emit(PhoneEvent::Registration { account: id, state });
        if registered {
            // The binding must stay reachable: keep its flow alive (what the registrar said
            // about outbound and Flow-Timer may have changed with this answer).
            if let Some(flow) = flow
                && !flow.reliable()
            {
                self.arm_keepalive(now, flow);
            }
            self.start_voicemail(now, id);
        }
    }

    /// A final response (or provisional: ignored) to a REGISTER.
    pub(super) fn registration_response(
        &mut self,
        now: Instant,
        id: AccountId,
        tx: TransactionId,
        response: &Response,
    ) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        if response.status < 200 {
            return;
        }
        if account.register_in_flight.as_ref().map(|(t, _)| *t) == Some(tx) {
            account.register_in_flight = None;
        }
        if matches!(response.status, 401 | 407) {
            let realms = challenge_realms(response);
            self.learn_realms(id, realms);
        }
        if let Some(account) = self.accounts.get_mut(&id) {
            account.registration.handle_response(now, response);
        }
    }

    /// A REGISTER timed out or hit a transport error: the same request goes to the next
    /// target (RFC 3263 §4.3), or the registration fails once every target failed.
    pub(super) fn registration_failed(
        &mut self,
        now: Instant,
        id: AccountId,
        tx: TransactionId,
        failure: TransactionFailure,
    ) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        let Some((in_flight, request)) = account.register_in_flight.take() else {
            return;
        };
        if in_flight != tx {
            account.register_in_flight = Some((in_flight, request));
            return;
        }
        if account.current + 1 < account.targets.len() {
            account.current += 1;
            let why = match failure {
                TransactionFailure::Timeout => "no answer from this target",
                TransactionFailure::Transport => "this target cannot be reached",
            };
            tracing::info!(account = %id, "{why}, trying the next one");
            self.send_request(now, id, Owner::Registration(id), None, request, true);
        } else {
            account.current = 0;
            account
                .registration
                .handle_transaction_failure(now, failure);
        }
    }

    /// The account's server challenged in these realms: they become the account's, and
    /// every usage of the account may answer them.
    pub(super) fn learn_realms(&mut self, id: AccountId, realms: Vec<String>) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        let mut changed = false;
        for realm in realms {
            changed |= account.learned_realms.insert(realm);
        }
        if !changed {
            return;
        }
        let store = account.credential_store();
        if let Some(mwi) = account.mwi.as_mut() {
            mwi.set_credentials(store.clone());
        }
        for call in self.calls.values_mut().filter(|c| c.account == id) {
            if let Some(sip) = call.sip.as_mut() {
                sip.set_credentials(store.clone());
            }
        }
        for message in self.messages.values_mut().filter(|m| m.account == id) {
            message.machine.set_credentials(store.clone());
        }
    }

    /// A challenge to an out-of-dialog request of an account that does not register: its
    /// server's first realm becomes the account's (there is no registrar to learn it from).
    pub(super) fn vet_challenge(
        &mut self,
        id: AccountId,
        response: &Response,
        out_of_dialog: bool,
    ) {
        if !matches!(response.status, 401 | 407) || !out_of_dialog {
            return;
        }
        let Some(account) = self.accounts.get(&id) else {
            return;
        };
        if account.register || !account.learned_realms.is_empty() {
            return;
        }
        let realms = challenge_realms(response);
        self.learn_realms(id, realms);
    }

    /// The account an out-of-dialog request from `flow` is for: among the accounts that
    /// admit the flow, the one whose user it is addressed to (Request-URI, else To), else the
    /// only one.
    pub(super) fn account_for_request(&self, flow: Flow, request: &Request) -> Option<AccountId> {
        let user = request.uri.as_sip().and_then(|u| u.user.clone());
        let to_user = request
            .headers
            .to()
            .ok()
            .and_then(|to| to.uri.as_sip().and_then(|u| u.user.clone()));
        let candidates: Vec<(&AccountId, &Account)> = self
            .accounts
            .iter()
            .filter(|(_, a)| a.admits(flow))
            .collect();
        candidates
            .iter()
            .find(|(_, a)| Some(&a.user) == user.as_ref() || Some(&a.user) == to_user.as_ref())
            .or_else(|| {
                (candidates.len() == 1)
                    .then(|| candidates.first())
                    .flatten()
            })
            .map(|(id, _)| **id)
    }

    /// The SIP URI of a call or message target: a SIP URI as given, or a user or number in the
    /// account's domain.
    pub(super) fn target_uri(&self, id: AccountId, target: &str) -> Result<SipUri, PhoneError> {
        let text = target.trim();
        if text.contains(':') {
            return match Uri::parse(text) {
                Ok(Uri::Sip(uri)) => Ok(uri),
                Ok(_) => Err(PhoneError::InvalidTarget("not a sip: or sips: URI".into())),
                Err(e) => Err(PhoneError::InvalidTarget(e.to_string())),
            };
        }
        let account = self
            .accounts
            .get(&id)
            .ok_or(PhoneError::UnknownAccount(id))?;
        let user: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if user.is_empty() {
            return Err(PhoneError::InvalidTarget("empty".into()));
        }
        match Uri::parse(&format!("sip:{user}@{}", account.aor.host)) {
            Ok(Uri::Sip(uri)) => Ok(uri),
            _ => Err(PhoneError::InvalidTarget(
                "not a user name or number".into(),
            )),
        }
    }

    /// Our address on the account's flow, once it is up.
    pub(super) fn account_local(&self, id: AccountId) -> Option<SocketAddr> {
        let flow = self.accounts.get(&id)?.flow()?;
        self.flows.local(&flow)
    }

    /// Makes sure the account's flow is being opened (its server resolved first).
    pub(super) fn open_account_flow(&mut self, id: AccountId) {
        let Some(account) = self.accounts.get(&id) else {
            return;
        };
        match account.flow() {
            None => self.resolve_account(id),
            Some(flow) => {
                let tls = account.tls_target();
                self.ensure_flow(flow, tls);
            }
        }
    }
}
