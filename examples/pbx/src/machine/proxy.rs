//! The transaction-stateful proxy (RFC 3261 §16) and the RFC 8599 push hold.
//!
//! Proxy state, per proxied server transaction, is a [`Forward`]:
//!
//! ```text
//!  new request ──auth, lookup──► (INVITE with push binding) Held ──REGISTER──► Forwarded
//!       │                               │ push_wait: 480 + cancel push           │
//!       │                               │ CANCEL: 487 + cancel push              │
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

use std::time::{Duration, Instant};

use handset_sip::message::{HeaderName, Message, Method, Request, Response, SipUri, Uri};
use handset_sip::transaction::{TransactionId, cancel_request};
use handset_sip::transport::{Flow, Transport};

use super::{Owner, PbxMachine, tag_of};
use crate::push::{CancelReason, PushContent, PushNotification};
use crate::{PbxEvent, PushInfo};

/// RFC 3261 §16.6 Timer C: how long a forwarded INVITE may stay without final response
/// after its last provisional one (more than 3 minutes, the RFC says).
pub(crate) const TIMER_C: Duration = Duration::from_secs(180);

/// An INVITE held for a push wake-up.
#[derive(Debug)]
pub(super) struct PushWait {
    user: String,
    device: PushInfo,
    deadline: Instant,
}

/// One proxied request.
#[derive(Debug)]
pub(super) struct Forward {
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
    /// The caller cancelled before the callee sent a provisional response: a CANCEL may only
    /// go once one arrives (RFC 3261 §9.1).
    cancel_pending: bool,
    final_sent: bool,
    /// To tag of the responses the PBX itself sends.
    local_tag: String,
    push: Option<PushWait>,
    timer_c: Option<Instant>,
    server_done: bool,
    client_done: bool,
}

impl Forward {
    /// The push wait and Timer C deadlines, when armed.
    pub(super) fn deadlines(&self) -> impl Iterator<Item = Instant> {
        [self.push.as_ref().map(|p| p.deadline), self.timer_c]
            .into_iter()
            .flatten()
    }
}

/// A dialog the PBX Record-Routed.
#[derive(Debug)]
pub(super) struct DialogRoute {
    caller_tag: String,
    caller: Flow,
    callee: Flow,
}

impl DialogRoute {
    /// Where a request of this dialog goes: one from the caller (its From tag) goes to the
    /// callee, anything else to the caller.
    fn toward_other(&self, from_tag: Option<&str>) -> Flow {
        if from_tag == Some(self.caller_tag.as_str()) {
            self.callee
        } else {
            self.caller
        }
    }

    /// Where a response of this dialog goes: back to whoever sent the request, i.e. the
    /// caller when the From tag is the caller's.
    fn toward_requester(&self, from_tag: Option<&str>) -> Flow {
        if from_tag == Some(self.caller_tag.as_str()) {
            self.caller
        } else {
            self.callee
        }
    }
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

/// The caller as an `incoming_call` push names it: From URI without parameters, and its
/// display name, else its user part.
fn caller_identity(request: &Request) -> (String, String) {
    let Ok(addr) = request.headers.from() else {
        return (String::new(), String::new());
    };
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

impl PbxMachine {
    /// Fires due push waits (480 and a `timeout` cancel push) and Timer C (CANCEL
    /// downstream and 408).
    pub(super) fn proxy_timers(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .forwards
            .iter()
            .filter(|(_, f)| f.deadlines().any(|at| at <= now))
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
                self.push_cancel(&call_id, CancelReason::Timeout, wait);
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
    }

    pub(super) fn new_forward(
        &mut self,
        tx: TransactionId,
        caller: Flow,
        request: Request,
        initial_invite: bool,
        callee_user: Option<String>,
    ) -> u64 {
        let id = self.next_forward_id();
        let local_tag = self.random_tag();
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

    /// One of a forward's transactions terminated; the forward goes once both have.
    pub(super) fn transaction_done(&mut self, id: u64, server: bool) {
        let Some(f) = self.forwards.get_mut(&id) else {
            return;
        };
        if server {
            f.server_done = true;
        } else {
            f.client_done = true;
        }
        if f.server_done && (f.client.is_none() || f.client_done) {
            self.forwards.remove(&id);
        }
    }

    /// The forwarded request timed out (`408`) or could not be sent (`503`).
    pub(super) fn client_failed(&mut self, now: Instant, id: u64, status: u16) {
        if self.forwards.get(&id).is_some_and(|f| !f.final_sent) {
            self.local_final(now, id, status);
        }
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
    pub(super) fn route_new(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        from: Flow,
    ) {
        let method = request.method.clone();
        let call_id = request.headers.call_id().unwrap_or_default().to_string();
        let refuse = |pbx: &mut PbxMachine, status: u16| {
            pbx.reply(now, tx, &request, status);
            pbx.emit(PbxEvent::Refused {
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
        if !self.registrar.exists(&user) {
            refuse(self, 404);
            return;
        }
        let invite = method == Method::Invite;
        // RFC 8599 §5.6: a push binding may outlive a stale binding, so the INVITE is held
        // and the device woken even when a binding is still listed.
        let push = if invite && self.config.push_notifications {
            self.push_binding(&user)
        } else {
            None
        };
        let binding = self.registrar.live(&user, now).into_iter().next();
        if push.is_none() && binding.is_none() {
            refuse(self, 480);
            return;
        }
        let id = self.new_forward(tx, from, request.clone(), invite, Some(user.clone()));
        if invite {
            let trying = self.local_response(&request, 100, None);
            self.send_response(now, tx, trying);
        }
        match (push, binding) {
            (Some(device), _) => self.hold_for_push(now, id, &request, user, device),
            (None, Some(binding)) => {
                self.forward_to(now, id, binding.contact.uri.clone(), binding.flow, false);
            }
            (None, None) => {}
        }
    }

    /// Holds forward `id`'s INVITE: pushes `incoming_call` to the callee's device, tells the
    /// caller it rings, and waits for the callee's REGISTER until `push_wait` runs out.
    fn hold_for_push(
        &mut self,
        now: Instant,
        id: u64,
        request: &Request,
        user: String,
        device: PushInfo,
    ) {
        let call_id = request.headers.call_id().unwrap_or_default().to_string();
        let (from, from_name) = caller_identity(request);
        self.outputs
            .push_back(super::Output::Push(PushNotification {
                call_id: call_id.clone(),
                user: user.clone(),
                pbx: self.config.serial.clone(),
                device: device.clone(),
                content: PushContent::IncomingCall { from, from_name },
            }));
        let ringing = self.local_response(request, 180, None);
        if let Some(f) = self.forwards.get_mut(&id) {
            let server = f.server;
            f.push = Some(PushWait {
                user: user.clone(),
                device,
                deadline: now + self.config.push_wait,
            });
            self.send_response(now, server, ringing);
        }
        self.emit(PbxEvent::PushSent { call_id, user });
    }

    fn push_cancel(&mut self, call_id: &str, reason: CancelReason, wait: PushWait) {
        self.outputs
            .push_back(super::Output::Push(PushNotification {
                call_id: call_id.to_string(),
                user: wait.user,
                pbx: self.config.serial.clone(),
                device: wait.device,
                content: PushContent::Cancel { reason },
            }));
    }

    /// The callee registered `contact` over `flow`: forward the INVITEs held for it there.
    pub(super) fn wake_held(&mut self, now: Instant, user: &str, contact: Uri, flow: Flow) {
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
            self.forward_to(now, id, contact.clone(), flow, true);
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
        let client = match self
            .layer
            .send_request(now, request.clone(), flow, flow.reliable())
        {
            Ok(client) => client,
            Err(error) => {
                tracing::debug!(%error, "request not forwarded");
                self.local_final(now, id, 500);
                return;
            }
        };
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

    /// Prepares a request for the next hop: Max-Forwards, the caller's credentials for us
    /// removed, Record-Route (initial INVITEs: one per transport when they differ, RFC 3261
    /// §16.6 step 4 practice) and our Via.
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
        for route in routes.iter().skip(own) {
            request.headers.push(HeaderName::Route, route.to_string());
        }
    }

    /// An in-dialog request (To tag): relayed to the other party of a dialog the PBX set up,
    /// 481 for any other.
    pub(super) fn route_in_dialog(
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

    /// A response in a forward's client transaction: relayed upstream (not 100), with the
    /// dialog and Timer C bookkeeping.
    pub(super) fn on_client_response(&mut self, now: Instant, id: u64, mut response: Response) {
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

    /// A CANCEL, hop by hop (RFC 3261 §16.10): answered here, then the held INVITE is
    /// answered 487 (with a cancel push) or the forwarded one cancelled downstream.
    pub(super) fn on_cancel(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        cancels: Option<TransactionId>,
    ) {
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
        self.reply(now, tx, &request, 200);
        let Some(f) = self.forwards.get_mut(&id) else {
            return;
        };
        if f.final_sent {
            return;
        }
        let call_id = f.call_id.clone();
        let held = f.push.take();
        let (forwarded, provisional) = (f.client.is_some(), f.provisional);
        if forwarded && !provisional {
            f.cancel_pending = true;
        }
        self.emit(PbxEvent::Cancelled {
            call_id: call_id.clone(),
        });
        if let Some(wait) = held {
            self.local_final(now, id, 487);
            self.push_cancel(&call_id, CancelReason::CallerCancelled, wait);
            return;
        }
        match (forwarded, provisional) {
            (true, true) => self.send_cancel(now, id),
            // Sent once the first provisional response arrives (`cancel_pending`).
            (true, false) => {}
            (false, _) => self.local_final(now, id, 487),
        }
    }

    /// An ACK for a 2xx (or one matching no transaction): relayed statelessly within its
    /// dialog.
    pub(super) fn on_ack(&mut self, mut request: Request) {
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

    /// A response matching no client transaction: a late 2xx retransmission of a dialog the
    /// PBX routes is relayed statelessly; anything else is dropped.
    pub(super) fn on_stray_response(&mut self, mut response: Response) {
        let ours = response.headers.top_via().is_ok_and(|v| {
            v.host.ip() == Some(self.local.ip()) && v.port == Some(self.local.port())
        });
        if !ours || !(200..300).contains(&response.status) {
            return;
        }
        pop_top_via(&mut response.headers);
        let call_id = response.headers.call_id().unwrap_or_default().to_string();
        let from_tag = tag_of(response.headers.from());
        let Some(to) = self
            .dialogs
            .get(&call_id)
            .map(|d| d.toward_requester(from_tag.as_deref()))
        else {
            return;
        };
        self.layer
            .send_stateless(to, to.reliable(), Message::Response(response));
    }
}
