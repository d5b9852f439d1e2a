//! Registration of one address-of-record with its registrar (RFC 3261 §10), with refresh,
//! 423 Min-Expires, digest challenges, retry with backoff and jitter (RFC 5626 §4.5), NAT
//! rewriting of the Contact from `received`/`rport` (RFC 3581), and RFC 5626 instance ids.
//!
//! Sans-IO: the runtime sends the requests this machine emits inside client transactions (it
//! adds the Via with a fresh branch) and feeds back final responses and transaction failures.

use super::random_hex;
use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::auth::{AuthError, CredentialStore, DigestSession};
use crate::message::{HeaderName, Host, Method, NameAddr, Request, Response, SipUri, Uri, quote};

/// The methods Handset answers, advertised in `Allow`: only what is implemented (REFER is
/// answered 405 until transfer exists).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, PRACK, NOTIFY, MESSAGE";

/// How long to wait before retrying after a failure (RFC 5626 §4.5): the wait is
/// `min(max, base * 2^failures)`, then a random point between half of it and all of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Wait after the first failure, before jitter.
    pub base: Duration,
    /// Upper bound of the wait.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            base: Duration::from_secs(30),
            max: Duration::from_secs(1800),
        }
    }
}

/// What one registration registers, and how.
#[derive(Debug, Clone)]
pub struct RegistrationConfig {
    /// The address-of-record, `sip:user@domain`.
    pub aor: SipUri,
    /// Request-URI of the REGISTER, normally `sip:domain`.
    pub registrar: SipUri,
    /// Our contact address (host and port of the local socket; `transport` param for TCP/TLS).
    pub contact: SipUri,
    /// Display name put in From/To.
    pub display_name: Option<String>,
    /// Requested binding lifetime in seconds.
    pub expires: u32,
    /// RFC 5626 instance id (`urn:uuid:...`), added as `+sip.instance`.
    pub instance_id: Option<String>,
    /// RFC 5626 `reg-id`, sent together with the instance id.
    pub reg_id: Option<u32>,
    /// Extra Contact parameters (RFC 8599 push parameters, ...), appended as given.
    pub contact_params: Vec<(String, Option<String>)>,
    /// Rewrite the Contact from `received`/`rport` when the registrar sees another address.
    pub rewrite_contact: bool,
    /// Retry timing after failures.
    pub retry: RetryPolicy,
    /// `User-Agent` header value.
    pub user_agent: String,
}

/// Why a registration failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationFailure {
    /// The registrar rejected our credentials (wrong password or user name).
    AuthenticationFailed {
        /// Realm that refused them.
        realm: String,
    },
    /// A challenge could not be answered (no credentials for the realm, unsupported algorithm).
    Authentication(AuthError),
    /// A final error response other than an answerable challenge.
    Rejected {
        /// Status code.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
    /// No final response before Timer F fired.
    Timeout,
    /// The transport could not deliver the request.
    Transport,
    /// The response was unusable (e.g. 423 without Min-Expires).
    BadResponse(&'static str),
}

impl fmt::Display for RegistrationFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::AuthenticationFailed { realm } => {
                write!(
                    f,
                    "authentication failed for realm {realm:?}: wrong user name or password"
                )
            }
            Self::Authentication(e) => write!(f, "cannot authenticate: {e}"),
            Self::Rejected { status, reason } => write!(f, "registrar answered {status} {reason}"),
            Self::Timeout => f.write_str("no answer from the registrar (timeout)"),
            Self::Transport => f.write_str("could not reach the registrar (transport error)"),
            Self::BadResponse(what) => write!(f, "unusable answer from the registrar: {what}"),
        }
    }
}

/// What the registration reports to the application.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrationEvent {
    /// A REGISTER is on its way (first registration, refresh or retry).
    Registering,
    /// The binding is in place.
    Registered {
        /// Lifetime granted by the registrar, in seconds.
        expires: u32,
    },
    /// The registration failed.
    Failed {
        /// Why.
        reason: RegistrationFailure,
        /// When it will be retried on its own; `None` when it will not (bad credentials).
        retry_in: Option<Duration>,
    },
    /// The binding was removed (or never made) and no refresh will happen.
    Unregistered,
}

/// What the machine asks the runtime to do.
#[derive(Debug, Clone, PartialEq)]
pub enum RegistrationOutput {
    /// Send this REGISTER in a new client transaction (the runtime adds the Via).
    Send(Request),
    /// Report this to the application.
    Event(RegistrationEvent),
}

/// A transaction-level failure of the REGISTER in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionFailure {
    /// Timer F fired.
    Timeout,
    /// The transport failed.
    Transport,
}

/// Registration state.
///
/// ```text
///            start                2xx (expires > 0)
///   Idle ───────────► Registering ──────────────────► Registered
///                      │  ▲  ▲ 401/407 answerable,        │
///                      │  │  │ 423 with Min-Expires       │ refresh timer
///                      │  │  └──────────(resend)          ▼
///                      │  └──────────────────────── (Registering)
///                      │ failure
///                      ▼          retry timer
///                    Failed ────────────────► Registering
///
///   any ──unregister──► Unregistering ──2xx / failure──► Unregistered
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not started.
    Idle,
    /// A REGISTER is outstanding.
    Registering,
    /// Bound; a refresh is scheduled.
    Registered,
    /// Failed; a retry may be scheduled.
    Failed,
    /// A REGISTER with Expires: 0 is outstanding.
    Unregistering,
    /// Done.
    Unregistered,
}

/// What the registrar's last 2xx said about SIP outbound (RFC 5626), which decides how the
/// flow is kept alive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OutboundSupport {
    /// The registrar applied outbound to our binding (`outbound` in its `Require`, RFC 5626
    /// §5.2, or `Supported`): it answers STUN keep-alives on UDP and CRLF pings on streams.
    pub outbound: bool,
    /// `Flow-Timer` (RFC 5626 §10.3): the longest the server lets a flow idle, in seconds.
    pub flow_timer: Option<u32>,
}

/// One account's registration.
pub struct Registration {
    config: RegistrationConfig,
    digest: DigestSession,
    rng: Box<dyn RngCore + Send>,
    state: RegistrationState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    in_flight: bool,
    /// Unregister once the REGISTER in flight completes.
    unregister_pending: bool,
    timer: Option<Instant>,
    failures: u32,
    granted: u32,
    outbound: OutboundSupport,
    outputs: VecDeque<RegistrationOutput>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("state", &self.state)
            .field("cseq", &self.cseq)
            .field("in_flight", &self.in_flight)
            .field("timer", &self.timer)
            .finish_non_exhaustive()
    }
}

impl Registration {
    /// A registration in state Idle. `credentials` answer the registrar's challenges; `rng`
    /// makes Call-ID, tags, client nonces and retry jitter.
    pub fn new(
        config: RegistrationConfig,
        credentials: CredentialStore,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Self {
        let call_id = random_hex(rng.as_mut(), 16);
        let from_tag = random_hex(rng.as_mut(), 8);
        Registration {
            config,
            digest: DigestSession::new(credentials),
            rng,
            state: RegistrationState::Idle,
            call_id,
            from_tag,
            cseq: 0,
            in_flight: false,
            unregister_pending: false,
            timer: None,
            failures: 0,
            granted: 0,
            outbound: OutboundSupport::default(),
            outputs: VecDeque::new(),
        }
    }

    /// Current state.
    pub fn state(&self) -> RegistrationState {
        self.state
    }

    /// What the registrar's last 2xx said about SIP outbound.
    pub fn outbound(&self) -> OutboundSupport {
        self.outbound
    }

    /// The configuration.
    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// The Call-ID used for every REGISTER of this binding (RFC 3261 §10.2).
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// Starts registering (or re-registers now if already started).
    pub fn start(&mut self, now: Instant) {
        self.unregister_pending = false;
        self.failures = 0;
        self.send_register(now, self.config.expires);
    }

    /// Replaces the Contact (the runtime's local address changed); re-registers if bound.
    pub fn set_contact(&mut self, now: Instant, contact: SipUri) {
        self.config.contact = contact;
        if matches!(self.state, RegistrationState::Registered) {
            self.send_register(now, self.config.expires);
        }
    }

    /// Records the Contact the runtime actually put in the request it sent (its transport's
    /// local address may change between requests); used to recognise our binding in answers.
    pub fn note_contact(&mut self, contact: SipUri) {
        self.config.contact = contact;
    }

    /// Replaces the extra Contact URI parameters (e.g. a new RFC 8599 push token); they go
    /// out with the next REGISTER ([`Self::start`] sends one now).
    pub fn set_contact_params(&mut self, params: Vec<(String, Option<String>)>) {
        self.config.contact_params = params;
    }

    /// Removes the binding. Without a binding this ends at once.
    pub fn unregister(&mut self, now: Instant) {
        self.timer = None;
        match self.state {
            RegistrationState::Idle | RegistrationState::Unregistered => self.finish_unregister(),
            RegistrationState::Failed if !self.in_flight => self.finish_unregister(),
            _ if self.in_flight => self.unregister_pending = true,
            _ => self.send_register(now, 0),
        }
    }

    /// Earliest time `handle_timeout` must be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    /// Next thing to do.
    pub fn poll_output(&mut self) -> Option<RegistrationOutput> {
        self.outputs.pop_front()
    }

    /// Fires the refresh or retry timer when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.timer.is_some_and(|t| t <= now) {
            self.timer = None;
            if !self.in_flight
                && matches!(
                    self.state,
                    RegistrationState::Registered | RegistrationState::Failed
                )
            {
                self.send_register(now, self.config.expires);
            }
        }
    }

    /// Handles the final response (provisional ones are ignored) to the REGISTER in flight.
    pub fn handle_response(&mut self, now: Instant, response: &Response) {
        if response.status < 200 || !self.in_flight {
            return;
        }
        self.in_flight = false;
        let unregistering = self.state == RegistrationState::Unregistering;
        match response.status {
            200..=299 if unregistering => self.finish_unregister(),
            200..=299 => self.handle_success(now, response),
            401 | 407 => self.handle_challenge(now, response),
            423 => match response.headers.min_expires() {
                Ok(Some(min)) if min > self.current_expires() && !unregistering => {
                    self.config.expires = min;
                    self.send_register(now, min);
                }
                _ => self.fail(
                    now,
                    RegistrationFailure::BadResponse("423 without usable Min-Expires"),
                ),
            },
            status => {
                let retry_after = response
                    .headers
                    .get(&HeaderName::RetryAfter)
                    .and_then(|v| v.split([';', ' ', '(']).next())
                    .and_then(crate::message::parse_delta_seconds)
                    .map(|s| Duration::from_secs(s.into()));
                let reason = RegistrationFailure::Rejected {
                    status,
                    reason: response.reason.clone(),
                };
                if unregistering {
                    self.finish_unregister();
                } else if matches!(status, 403 | 404) {
                    self.fail_permanently(reason);
                } else {
                    self.fail_with_retry(now, reason, retry_after);
                }
            }
        }
    }

    /// Handles a timeout or transport failure of the REGISTER in flight.
    pub fn handle_transaction_failure(&mut self, now: Instant, failure: TransactionFailure) {
        if !self.in_flight {
            return;
        }
        self.in_flight = false;
        if self.state == RegistrationState::Unregistering {
            self.finish_unregister();
            return;
        }
        self.fail(
            now,
            match failure {
                TransactionFailure::Timeout => RegistrationFailure::Timeout,
                TransactionFailure::Transport => RegistrationFailure::Transport,
            },
        );
    }

    fn current_expires(&self) -> u32 {
        self.config.expires
    }

    fn handle_success(&mut self, now: Instant, response: &Response) {
        if self.unregister_pending {
            self.unregister_pending = false;
            self.send_register(now, 0);
            return;
        }
        if self.config.rewrite_contact && self.rewrite_contact_from_via(response) {
            self.send_register(now, self.config.expires);
            return;
        }
        let granted = self.granted_expires(response);
        self.outbound = outbound_support(response);
        self.failures = 0;
        self.granted = granted;
        self.state = RegistrationState::Registered;
        self.timer = Some(now + refresh_delay(granted));
        self.emit(RegistrationEvent::Registered { expires: granted });
    }

    fn handle_challenge(&mut self, now: Instant, response: &Response) {
        let name = if response.status == 401 {
            HeaderName::WwwAuthenticate
        } else {
            HeaderName::ProxyAuthenticate
        };
        let challenges: Vec<&str> = response.headers.get_all(&name).collect();
        match self.digest.on_challenge(response.status, &challenges) {
            Ok(()) => {
                let expires = if self.state == RegistrationState::Unregistering {
                    0
                } else {
                    self.config.expires
                };
                self.send_register(now, expires);
            }
            Err(AuthError::Rejected { realm }) => {
                if self.state == RegistrationState::Unregistering {
                    self.finish_unregister();
                } else {
                    self.fail_permanently(RegistrationFailure::AuthenticationFailed { realm });
                }
            }
            Err(e) => {
                if self.state == RegistrationState::Unregistering {
                    self.finish_unregister();
                } else {
                    self.fail_permanently(RegistrationFailure::Authentication(e));
                }
            }
        }
    }

    /// RFC 3581: when the registrar saw us at another address than our Contact says (NAT),
    /// adopt that address. Returns whether the Contact changed.
    fn rewrite_contact_from_via(&mut self, response: &Response) -> bool {
        let Ok(via) = response.headers.top_via() else {
            return false;
        };
        if !via.transport.eq_ignore_ascii_case("UDP") {
            return false;
        }
        let host = via.received();
        let port = via.rport().flatten();
        let contact = &mut self.config.contact;
        let mut changed = false;
        if let Some(host) = host
            && host != contact.host
        {
            contact.host = host;
            changed = true;
        }
        if let Some(port) = port
            && Some(port) != contact.port
            && !(contact.port.is_none() && port == 5060)
        {
            contact.port = Some(port);
            changed = true;
        }
        changed
    }

    /// The lifetime the registrar granted to our Contact: its `expires` parameter, else the
    /// Expires header, else what we asked for.
    fn granted_expires(&self, response: &Response) -> u32 {
        let ours = response.headers.contacts().ok().and_then(|contacts| {
            contacts
                .into_iter()
                .flatten()
                .find(|c| self.is_our_contact(c))
        });
        ours.and_then(|c| c.expires())
            .or_else(|| response.headers.expires().ok().flatten())
            .unwrap_or(self.config.expires)
    }

    fn is_our_contact(&self, contact: &NameAddr) -> bool {
        if let (Some(ours), Some(theirs)) = (
            &self.config.instance_id,
            contact.param("+sip.instance").flatten(),
        ) {
            return theirs.trim_matches('"').trim_matches(['<', '>']) == ours;
        }
        match &contact.uri {
            Uri::Sip(uri) => {
                let mine = &self.config.contact;
                uri.user == mine.user
                    && same_host(&uri.host, &mine.host)
                    && uri.port.unwrap_or(5060) == mine.port.unwrap_or(5060)
            }
            Uri::Other { .. } => false,
        }
    }

    fn fail(&mut self, now: Instant, reason: RegistrationFailure) {
        self.fail_with_retry(now, reason, None);
    }

    fn fail_with_retry(
        &mut self,
        now: Instant,
        reason: RegistrationFailure,
        at_least: Option<Duration>,
    ) {
        self.failures = self.failures.saturating_add(1);
        let wait = self.backoff().max(at_least.unwrap_or_default());
        self.state = RegistrationState::Failed;
        self.timer = Some(now + wait);
        self.emit(RegistrationEvent::Failed {
            reason,
            retry_in: Some(wait),
        });
    }

    fn fail_permanently(&mut self, reason: RegistrationFailure) {
        self.state = RegistrationState::Failed;
        self.timer = None;
        self.emit(RegistrationEvent::Failed {
            reason,
            retry_in: None,
        });
    }

    /// RFC 5626 §4.5 wait, with jitter between 50 % and 100 %.
    fn backoff(&mut self) -> Duration {
        let RetryPolicy { base, max } = self.config.retry;
        let exponent = self.failures.saturating_sub(1).min(16);
        let full = base.saturating_mul(1 << exponent).min(max);
        let fraction = 0.5 + f64::from(self.rng.next_u32() % 1001) / 2000.0;
        full.mul_f64(fraction)
    }

    fn finish_unregister(&mut self) {
        self.state = RegistrationState::Unregistered;
        self.timer = None;
        self.unregister_pending = false;
        self.emit(RegistrationEvent::Unregistered);
    }

    fn emit(&mut self, event: RegistrationEvent) {
        self.outputs.push_back(RegistrationOutput::Event(event));
    }

    fn send_register(&mut self, _now: Instant, expires: u32) {
        self.cseq += 1;
        self.in_flight = true;
        self.timer = None;
        let was_registering = self.state == RegistrationState::Registering;
        let unregistering = expires == 0;
        self.state = if unregistering {
            RegistrationState::Unregistering
        } else {
            RegistrationState::Registering
        };
        let request = self.build_register(expires);
        self.outputs.push_back(RegistrationOutput::Send(request));
        // Answering a challenge or a 423 continues the same attempt: no new event.
        if !unregistering && !was_registering {
            self.emit(RegistrationEvent::Registering);
        }
    }

    fn build_register(&mut self, expires: u32) -> Request {
        let c = &self.config;
        let mut request = Request::new(Method::Register, Uri::Sip(c.registrar.clone()));
        let mut aor = NameAddr::new(c.aor.clone());
        aor.display = c.display_name.clone();
        let mut from = aor.clone();
        from.set_param("tag", Some(self.from_tag.clone()));
        let mut contact = NameAddr::new(c.contact.clone());
        if let Some(instance) = &c.instance_id {
            contact.set_param("+sip.instance", Some(quote(&format!("<{instance}>"))));
            if let Some(reg_id) = c.reg_id {
                contact.set_param("reg-id", Some(reg_id.to_string()));
            }
        }
        // RFC 8599 §4.1: push parameters belong to the Contact URI, inside the <>.
        if let Uri::Sip(uri) = &mut contact.uri {
            for (name, value) in &c.contact_params {
                uri.params.push(crate::message::Param {
                    name: name.clone(),
                    value: value.clone(),
                });
            }
        }
        let h = &mut request.headers;
        h.push(HeaderName::MaxForwards, "70");
        h.push(HeaderName::From, from.to_string());
        h.push(HeaderName::To, aor.to_string());
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, format!("{} REGISTER", self.cseq));
        h.push(HeaderName::Contact, contact.to_string());
        h.push(HeaderName::Expires, expires.to_string());
        h.push(HeaderName::Allow, ALLOW);
        h.push(HeaderName::Supported, "path, outbound, gruu");
        h.push(HeaderName::UserAgent, c.user_agent.clone());
        let uri = request.uri.to_string();
        for (header, value) in
            self.digest
                .authorization_headers("REGISTER", &uri, &request.body, self.rng.as_mut())
        {
            let name = match header {
                crate::auth::AuthHeader::Authorization => HeaderName::Authorization,
                crate::auth::AuthHeader::ProxyAuthorization => HeaderName::ProxyAuthorization,
            };
            request.headers.push(name, value);
        }
        request
    }
}

/// Reads `outbound` from `Require`/`Supported` and the `Flow-Timer` of a 2xx to REGISTER.
fn outbound_support(response: &Response) -> OutboundSupport {
    let tagged = |name: HeaderName| {
        response
            .headers
            .get_all(&name)
            .flat_map(|value| value.split(','))
            .any(|tag| tag.trim().eq_ignore_ascii_case("outbound"))
    };
    let flow_timer = HeaderName::Other("Flow-Timer".into());
    OutboundSupport {
        outbound: tagged(HeaderName::Require) || tagged(HeaderName::Supported),
        flow_timer: response
            .headers
            .get(&flow_timer)
            .and_then(|value| value.trim().parse().ok()),
    }
}

fn same_host(a: &Host, b: &Host) -> bool {
    match (a, b) {
        (Host::Domain(x), Host::Domain(y)) => x.eq_ignore_ascii_case(y),
        (x, y) => x == y,
    }
}

/// When to refresh a binding granted for `granted` seconds: at 85 % of its life, and never
/// later than 5 s before it ends when the lifetime allows it.
pub fn refresh_delay(granted: u32) -> Duration {
    let life = Duration::from_secs(granted.max(1).into());
    let at = life.mul_f64(0.85);
    let latest = life.saturating_sub(Duration::from_secs(5));
    if latest > Duration::from_secs(1) {
        at.min(latest)
    } else {
        at
    }
}

#[cfg(test)]
mod tests;
