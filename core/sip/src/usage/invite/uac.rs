//! The caller's side of the initial INVITE (RFC 3261 §13.2, §8.1.3, §9.1; RFC 3262 §4;
//! RFC 6026 §8.4): provisional responses and early dialogs, PRACK, the ACK for 2xx, retries
//! after 3xx/401/407/422, CANCEL and the CANCEL/2xx race.

use std::time::Instant;

use rand::RngCore;

use super::{
    ALLOW, Awaiting, Call, CallConfig, CallError, CallEvent, CallOutput, CallState, EndReason,
    Purpose, RequestHandle, Role, SDP, allows, has_option, later, random_hex, set_body, tag_of,
};
use crate::dialog::{Dialog, request_uri};
use crate::message::{
    HeaderName, Method, NameAddr, Request, Response, SipUri, Uri, parse_delta_seconds,
};
use crate::transaction::TransactionId;

/// Where the caller's CANCEL stands (§9.1: only sent once a provisional arrived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum CancelState {
    /// The TU did not cancel.
    NotRequested,
    /// The TU cancelled before any provisional response: send the CANCEL on the first one.
    Wanted,
    /// The CANCEL went out; give up waiting for the INVITE's final response at `give_up`.
    Sent { give_up: Instant },
    /// Cancelled and nothing left to wait for.
    Done,
}

/// The initial INVITE of an outgoing call, across its retries.
#[derive(Debug, Clone)]
pub(super) struct UacInvite {
    /// The INVITE as last built (without Via).
    pub(super) request: Request,
    pub(super) cseq: u32,
    pub(super) handle: Option<RequestHandle>,
    pub(super) tx: Option<TransactionId>,
    /// Current Request-URI (changes on 3xx).
    pub(super) target: SipUri,
    /// Our offer; `None` for an offerless INVITE.
    pub(super) offer: Option<Vec<u8>>,
    /// The Session-Expires we ask for.
    pub(super) session_expires: Option<u32>,
    /// A provisional response arrived for the current INVITE.
    pub(super) provisional: bool,
    pub(super) cancel: CancelState,
    pub(super) redirects: u8,
    pub(super) challenges: u8,
    pub(super) retries_422: u8,
    /// The RSeq of the last reliable provisional we PRACKed.
    pub(super) rseq: Option<u32>,
    /// Offer/answer completed in a reliable provisional (and its PRACK).
    pub(super) early_answer: bool,
    /// The last early-media description reported.
    pub(super) early_sdp: Option<Vec<u8>>,
    pub(super) trying: bool,
    pub(super) ringing: bool,
    /// A 2xx was accepted.
    pub(super) answered: bool,
}

impl UacInvite {
    pub(super) fn deadline(&self) -> Option<Instant> {
        match self.cancel {
            CancelState::Sent { give_up } if !self.answered => Some(give_up),
            _ => None,
        }
    }

    pub(super) fn stop_timers(&mut self) {
        if matches!(self.cancel, CancelState::Sent { .. }) {
            self.cancel = CancelState::Done;
        }
    }

    fn cancelled(&self) -> bool {
        self.cancel != CancelState::NotRequested
    }
}

impl Call {
    /// Places a call: sends the INVITE to `config.target` offering `offer_sdp` (an empty
    /// `offer_sdp` sends an offerless INVITE: the peer's offer then comes as
    /// [`CallEvent::RemoteOffer`] and the TU's answer goes in the ACK or PRACK). `rng` makes
    /// the Call-ID, tags, client nonces and glare delays.
    pub fn outgoing(
        config: CallConfig,
        offer_sdp: Vec<u8>,
        now: Instant,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Call {
        let call_id = random_hex(rng.as_mut(), 16);
        let local_tag = random_hex(rng.as_mut(), 8);
        let cseq = 1 + rng.next_u32() % 0x7fff;
        let target = config.target.clone();
        let session_expires = config
            .session_expires
            .filter(|_| config.supports_timer)
            .map(|s| s.max(config.min_se()));
        let offer = (!offer_sdp.is_empty()).then_some(offer_sdp);
        let mut call = Call::blank(Role::Uac, config, rng, call_id, local_tag);
        call.local_sdp = offer.clone();
        call.uac = Some(UacInvite {
            request: Request::new(Method::Invite, Uri::Sip(target.clone())),
            cseq,
            handle: None,
            tx: None,
            target,
            offer,
            session_expires,
            provisional: false,
            cancel: CancelState::NotRequested,
            redirects: 0,
            challenges: 0,
            retries_422: 0,
            rseq: None,
            early_answer: false,
            early_sdp: None,
            trying: false,
            ringing: false,
            answered: false,
        });
        call.send_invite(now);
        call
    }

    /// Cancels the outgoing call before it is answered (RFC 3261 §9.1). The CANCEL goes out
    /// once a provisional response has arrived; a 2xx crossing it is ACKed and ended with a
    /// BYE. [`CallEvent::Ended`] with [`EndReason::Cancelled`] is emitted at once.
    pub fn cancel(&mut self, now: Instant) -> Result<(), CallError> {
        if self.role != Role::Uac {
            return Err(self.invalid("cancel"));
        }
        if self.ended {
            return Ok(());
        }
        if !matches!(
            self.state,
            CallState::Calling | CallState::Proceeding | CallState::Early
        ) {
            return Err(self.invalid("cancel"));
        }
        self.end(EndReason::Cancelled);
        self.awaiting = None;
        self.state = CallState::Terminating;
        let provisional = self.uac.as_ref().is_some_and(|u| u.provisional);
        if provisional {
            self.send_cancel(now);
        } else if let Some(uac) = self.uac.as_mut() {
            uac.cancel = CancelState::Wanted;
        }
        Ok(())
    }

    fn send_cancel(&mut self, now: Instant) {
        let give_up = later(now, self.config.timers.t1.saturating_mul(64));
        let Some(uac) = self.uac.as_mut() else {
            return;
        };
        match uac.tx {
            Some(invite) => {
                uac.cancel = CancelState::Sent { give_up };
                self.outputs.push_back(CallOutput::SendCancel { invite });
            }
            None => uac.cancel = CancelState::Wanted,
        }
    }

    /// Builds and queues the INVITE for the current attempt (new CSeq set by the caller).
    fn send_invite(&mut self, _now: Instant) {
        let Some(mut request) = self.build_invite() else {
            return;
        };
        self.finish_request(&mut request);
        if !self.ended {
            self.state = CallState::Calling;
        }
        let sent = request.clone();
        self.last_invite = Some(request.clone());
        let handle = self.send_request(request, Purpose::InitialInvite);
        if let Some(uac) = self.uac.as_mut() {
            uac.request = sent;
            uac.handle = Some(handle);
            uac.tx = None;
            uac.provisional = false;
            uac.rseq = None;
            uac.early_answer = false;
            uac.early_sdp = None;
        }
    }

    fn build_invite(&self) -> Option<Request> {
        let uac = self.uac.as_ref()?;
        let c = &self.config;
        let mut r = Request::new(Method::Invite, request_uri(&Uri::Sip(uac.target.clone())));
        let h = &mut r.headers;
        for route in &c.route {
            h.push(HeaderName::Route, route.to_string());
        }
        h.push(HeaderName::MaxForwards, "70");
        let mut from = c.local.clone();
        from.set_param("tag", Some(self.local_tag.clone()));
        h.push(HeaderName::From, from.to_string());
        h.push(HeaderName::To, NameAddr::new(c.target.clone()).to_string());
        h.push(HeaderName::CallId, self.call_id.clone());
        h.push(HeaderName::CSeq, format!("{} INVITE", uac.cseq));
        h.push(
            HeaderName::Contact,
            NameAddr::new(c.contact.clone()).to_string(),
        );
        h.push(HeaderName::Allow, ALLOW);
        let supported = c.supported();
        if !supported.is_empty() {
            h.push(HeaderName::Supported, supported);
        }
        if let Some(se) = uac.session_expires {
            h.push(HeaderName::SessionExpires, se.to_string());
            h.push(
                HeaderName::from("Min-SE"),
                c.min_se().max(self.peer_min_se).to_string(),
            );
        }
        if let Some(offer) = &uac.offer {
            set_body(&mut r.headers, &mut r.body, SDP, offer.clone());
        }
        Some(r)
    }

    /// A response to the initial INVITE.
    pub(super) fn on_invite_response(&mut self, now: Instant, response: Response) {
        let Ok(cseq) = response.headers.cseq() else {
            return;
        };
        if self.uac.as_ref().is_none_or(|u| u.cseq != cseq.seq) {
            // A late answer to an INVITE we already retried.
            if (200..=299).contains(&response.status) {
                self.handle_stray_response(now, response);
            }
            return;
        }
        match response.status {
            100..=199 => self.on_provisional(now, &response),
            200..=299 => self.on_invite_2xx(now, response),
            300..=399 => self.on_redirect(now, &response),
            401 | 407 => self.on_challenge(now, &response),
            422 => self.on_too_small(now, &response),
            _ => self.on_invite_rejected(&response),
        }
    }

    /// Timer B or a transport error for the INVITE with CSeq `cseq`.
    pub(super) fn on_invite_failure(&mut self, _now: Instant, cseq: u32, reason: EndReason) {
        if self
            .uac
            .as_ref()
            .is_none_or(|u| u.cseq != cseq || u.answered)
        {
            return;
        }
        self.end(reason);
        self.terminate();
    }

    fn on_invite_rejected(&mut self, response: &Response) {
        let cancelled = self.uac.as_ref().is_some_and(UacInvite::cancelled);
        let reason = if cancelled {
            EndReason::Cancelled
        } else {
            EndReason::Rejected {
                status: response.status,
                reason: response.reason.clone(),
            }
        };
        self.end(reason);
        self.terminate();
    }

    /// Our INVITE's transaction took a provisional response whose CSeq is not the INVITE's
    /// (see `handle_response`). Nothing in it is trusted, but the transaction is in
    /// Proceeding now, where Timer B no longer runs (RFC 3261 §17.1.1.2): it counts as the
    /// provisional a CANCEL waits for (§9.1), or a call cancelled before it would wait for
    /// ever. With the CANCEL out, the 64·T1 give-up bounds the wait.
    pub(super) fn on_untrusted_provisional(&mut self, now: Instant, tx: TransactionId) {
        let Some(uac) = self.uac.as_mut() else {
            return;
        };
        if uac.answered || uac.tx != Some(tx) {
            return;
        }
        uac.provisional = true;
        if uac.cancel == CancelState::Wanted {
            self.send_cancel(now);
        }
    }

    fn on_provisional(&mut self, now: Instant, response: &Response) {
        let Some(uac) = self.uac.as_mut() else {
            return;
        };
        if uac.answered {
            return;
        }
        uac.provisional = true;
        if uac.cancel == CancelState::Wanted {
            self.send_cancel(now);
        }
        if self.ended {
            return;
        }
        let status = response.status;
        if status == 100 {
            if self.state == CallState::Calling {
                self.state = CallState::Proceeding;
            }
            if let Some(uac) = self.uac.as_mut().filter(|u| !u.trying) {
                uac.trying = true;
                self.emit(CallEvent::Trying);
            }
            return;
        }
        // The early dialog: the first one wins, other forks are ignored.
        let mut in_dialog = false;
        if let Some(tag) = tag_of(&response.headers.to()) {
            match &self.dialog {
                Some(d) if d.remote_tag != tag => return,
                Some(_) => in_dialog = true,
                None => {
                    let invite = self.uac.as_ref().map(|u| &u.request);
                    if let Some(Ok(dialog)) = invite.map(|i| Dialog::uac(i, response)) {
                        self.peer_allows_update = allows(&response.headers, "UPDATE");
                        self.dialog = Some(dialog);
                        in_dialog = true;
                    }
                }
            }
        }
        if in_dialog {
            self.state = CallState::Early;
        } else if self.state == CallState::Calling {
            self.state = CallState::Proceeding;
        }
        let reliable = self.config.supports_100rel
            && has_option(&response.headers, &HeaderName::Require, "100rel");
        let rseq = response
            .headers
            .get(&HeaderName::from("RSeq"))
            .and_then(parse_delta_seconds)
            .filter(|_| reliable && in_dialog);
        let Some(uac) = self.uac.as_mut() else {
            return;
        };
        let body = &response.body;
        match rseq {
            Some(rseq) => {
                // RFC 3262 §4: PRACK each reliable provisional once, in order; ignore
                // retransmissions and ones arriving ahead of a missing one.
                match uac.rseq {
                    Some(last) if rseq <= last => return,
                    Some(last) if rseq != last.saturating_add(1) => return,
                    _ => {}
                }
                uac.rseq = Some(rseq);
                let cseq = uac.cseq;
                let offered = uac.offer.is_some();
                let early_answer = uac.early_answer;
                self.ringing_event(status);
                if !body.is_empty() && !early_answer {
                    if offered {
                        if let Some(uac) = self.uac.as_mut() {
                            uac.early_answer = true;
                        }
                        self.remote_sdp = Some(body.clone());
                        self.emit(CallEvent::EarlyMedia { sdp: body.clone() });
                    } else if self.awaiting.is_none() {
                        // The offer of an offerless INVITE: our answer goes in the PRACK.
                        self.remote_sdp = Some(body.clone());
                        self.awaiting = Some(Awaiting::PrackAnswer { rseq, cseq });
                        self.emit(CallEvent::RemoteOffer { sdp: body.clone() });
                        return;
                    }
                }
                self.send_prack(rseq, cseq, None);
            }
            None => {
                let report = !body.is_empty()
                    && uac.offer.is_some()
                    && !uac.early_answer
                    && uac.early_sdp.as_ref() != Some(body);
                if report {
                    uac.early_sdp = Some(body.clone());
                }
                self.ringing_event(status);
                if report {
                    self.remote_sdp = Some(body.clone());
                    self.emit(CallEvent::EarlyMedia { sdp: body.clone() });
                }
            }
        }
    }

    fn ringing_event(&mut self, status: u16) {
        if !(180..=182).contains(&status) {
            return;
        }
        if let Some(uac) = self.uac.as_mut().filter(|u| !u.ringing) {
            uac.ringing = true;
            self.emit(CallEvent::Ringing);
        }
    }

    /// Sends the PRACK for reliable provisional `rseq` of the INVITE with CSeq `cseq`.
    pub(super) fn send_prack(&mut self, rseq: u32, cseq: u32, answer: Option<Vec<u8>>) {
        let Some(mut prack) = self.dialog_request(Method::Prack) else {
            return;
        };
        prack
            .headers
            .push(HeaderName::from("RAck"), format!("{rseq} {cseq} INVITE"));
        if let Some(sdp) = answer {
            set_body(&mut prack.headers, &mut prack.body, SDP, sdp);
        }
        self.finish_request(&mut prack);
        self.send_request(prack, Purpose::Prack);
    }

    fn on_invite_2xx(&mut self, now: Instant, response: Response) {
        let Some(uac) = self.uac.as_mut() else {
            return;
        };
        if uac.answered {
            self.handle_stray_response(now, response);
            return;
        }
        uac.answered = true;
        let request = uac.request.clone();
        let cseq = uac.cseq;
        let offered = uac.offer.is_some() || uac.early_answer;
        let cancelled = uac.cancelled();
        let requested_se = uac.session_expires;
        let to_tag = tag_of(&response.headers.to());
        let dialog = match self.dialog.take() {
            Some(mut d) if Some(&d.remote_tag) == to_tag.as_ref() => {
                if d.confirm(&response).is_err() {
                    d.state = crate::dialog::DialogState::Confirmed;
                }
                Ok(d)
            }
            _ => Dialog::uac(&request, &response),
        };
        let Ok(dialog) = dialog else {
            self.end(EndReason::Protocol("2xx without To tag or Contact"));
            self.terminate();
            return;
        };
        if response.headers.contains(&HeaderName::Allow) {
            self.peer_allows_update = allows(&response.headers, "UPDATE");
        }
        self.dialog = Some(dialog);
        if cancelled {
            // The CANCEL/2xx race (§9.1, §15): the call is answered anyway; ACK and BYE it.
            self.send_ack(cseq, None);
            self.send_bye();
            return;
        }
        let sdp = (!response.body.is_empty()).then(|| response.body.clone());
        if offered {
            if let Some(sdp) = &sdp {
                self.remote_sdp = Some(sdp.clone());
            }
            self.emit(CallEvent::Answered { sdp });
            self.send_ack(cseq, None);
            self.state = CallState::Confirmed;
            self.emit(CallEvent::Confirmed);
        } else {
            self.emit(CallEvent::Answered { sdp: None });
            let Some(offer) = sdp else {
                self.send_ack(cseq, None);
                self.hang_up_with(EndReason::Protocol(
                    "2xx to an offerless INVITE without offer",
                ));
                return;
            };
            self.remote_sdp = Some(offer.clone());
            self.awaiting = Some(Awaiting::AckAnswer {
                cseq,
                initial: true,
            });
            self.state = CallState::Accepted;
            self.emit(CallEvent::RemoteOffer { sdp: offer });
        }
        self.session_from_response(now, &response, requested_se);
    }

    /// ACKs a 2xx from a dialog we do not want (another fork, or an answer after we ended)
    /// and ends that dialog with a BYE (RFC 3261 §13.2.2.4).
    pub(super) fn ack_and_bye_fork(&mut self, response: &Response) {
        let Some(uac) = self.uac.as_ref() else {
            return;
        };
        let Ok(mut fork) = Dialog::uac(&uac.request, response) else {
            return;
        };
        let Ok(cseq) = response.headers.cseq() else {
            return;
        };
        let mut ack = fork.ack_for_2xx(cseq.seq);
        ack.headers
            .push(HeaderName::UserAgent, self.config.user_agent.clone());
        self.outputs.push_back(CallOutput::SendAck(ack));
        let mut bye = fork.new_request(Method::Bye);
        self.finish_request(&mut bye);
        self.send_request(bye, Purpose::ForkBye);
    }

    fn on_redirect(&mut self, now: Instant, response: &Response) {
        let Some(uac) = self.uac.as_ref() else {
            return;
        };
        if uac.cancelled() {
            self.terminate();
            return;
        }
        if uac.redirects >= self.config.max_redirects {
            self.end(EndReason::TooManyRedirects);
            self.terminate();
            return;
        }
        let target = response.headers.contacts().ok().and_then(|contacts| {
            contacts
                .into_iter()
                .flatten()
                .find_map(|c| match request_uri(&c.uri) {
                    Uri::Sip(sip) => Some(sip),
                    Uri::Other { .. } => None,
                })
        });
        let Some(target) = target else {
            self.on_invite_rejected(response);
            return;
        };
        if let Some(uac) = self.uac.as_mut() {
            uac.redirects += 1;
            uac.target = target.clone();
            uac.cseq += 1;
            uac.ringing = false;
            uac.trying = false;
        }
        self.dialog = None;
        self.emit(CallEvent::Redirected { target });
        self.send_invite(now);
    }

    fn on_challenge(&mut self, now: Instant, response: &Response) {
        let Some(uac) = self.uac.as_ref() else {
            return;
        };
        if uac.cancelled() {
            self.terminate();
            return;
        }
        let name = if response.status == 401 {
            HeaderName::WwwAuthenticate
        } else {
            HeaderName::ProxyAuthenticate
        };
        let challenges: Vec<&str> = response.headers.get_all(&name).collect();
        let too_many = uac.challenges >= 3;
        match self.digest.on_challenge(response.status, &challenges) {
            Ok(()) if !too_many => {
                if let Some(uac) = self.uac.as_mut() {
                    uac.challenges += 1;
                    uac.cseq += 1;
                }
                self.dialog = None;
                self.send_invite(now);
            }
            Ok(()) => self.on_invite_rejected(response),
            Err(e) => {
                self.end(EndReason::Authentication(e));
                self.terminate();
            }
        }
    }

    /// 422 Session Interval Too Small (RFC 4028 §7.4): retry with the Min-SE asked for.
    fn on_too_small(&mut self, now: Instant, response: &Response) {
        let min = super::session_timer::min_se(&response.headers)
            .ok()
            .flatten();
        let Some(uac) = self.uac.as_mut() else {
            return;
        };
        match min {
            Some(min)
                if !uac.cancelled() && uac.retries_422 < 2 && uac.session_expires.is_some() =>
            {
                uac.retries_422 += 1;
                uac.session_expires = uac.session_expires.map(|s| s.max(min));
                uac.cseq += 1;
                self.peer_min_se = self.peer_min_se.max(min);
                self.dialog = None;
                self.send_invite(now);
            }
            _ => self.on_invite_rejected(response),
        }
    }

    /// The caller's clock: give up on a CANCEL that got no final response in 64·T1.
    pub(super) fn uac_timeout(&mut self, now: Instant) {
        let due = self
            .uac
            .as_ref()
            .and_then(UacInvite::deadline)
            .is_some_and(|t| t <= now);
        if due {
            if let Some(uac) = self.uac.as_mut() {
                uac.cancel = CancelState::Done;
            }
            self.terminate();
        }
    }
}
