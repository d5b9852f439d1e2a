//! Requests inside the dialog, both ways (RFC 3261 §12.2, §14, §15; RFC 3311; RFC 2976):
//! BYE, re-INVITE and UPDATE (offers, hold/resume, session refreshes, 491 glare), INFO (DTMF),
//! OPTIONS, and the answers to our own re-INVITEs and UPDATEs.

use std::time::{Duration, Instant};

use rand::RngCore;

use super::session_timer::{self, Negotiated, Refusal};
use super::uas::Unacked2xx;
use super::{
    ALLOW, Awaiting, Call, CallError, CallEvent, CallState, EndReason, OfferKind, OutgoingOffer,
    Purpose, Role, SDP, content_type, later, set_body,
};
use crate::dialog::DialogError;
use crate::message::{HeaderName, Method, NameAddr, Request, Response};
use crate::transaction::TransactionId;

/// The digit a DTMF `Signal` value names (`10` and `11` are `*` and `#` in some phones).
fn dtmf_digit(text: &str) -> Option<char> {
    let text = text.trim();
    match text {
        "10" => return Some('*'),
        "11" => return Some('#'),
        _ => {}
    }
    let mut chars = text.chars();
    let (Some(c), None) = (chars.next(), chars.next()) else {
        return None;
    };
    let c = c.to_ascii_uppercase();
    "0123456789*#ABCD".contains(c).then_some(c)
}

/// Parses an `application/dtmf-relay` body: `Signal=5` and optionally `Duration=160` (ms),
/// one per line.
pub(super) fn parse_dtmf_relay(body: &[u8]) -> Option<(char, Option<Duration>)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut digit = None;
    let mut duration = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if name.eq_ignore_ascii_case("signal") {
            digit = Some(dtmf_digit(value)?);
        } else if name.eq_ignore_ascii_case("duration") {
            let ms: u64 = value.trim().parse().ok()?;
            duration = Some(Duration::from_millis(ms));
        }
    }
    Some((digit?, duration))
}

/// Parses an `application/dtmf` body: the digit alone.
pub(super) fn parse_dtmf(body: &[u8]) -> Option<char> {
    dtmf_digit(std::str::from_utf8(body).ok()?)
}

impl Call {
    /// A request the runtime routed to this call ([`matches_request`](Self::matches_request)),
    /// in server transaction `tx`: a CANCEL of our INVITE, or a request inside the dialog.
    /// Requests of other dialogs get 481, out-of-order CSeqs 500, methods the call does not
    /// handle 405 or 501.
    pub fn handle_request(&mut self, now: Instant, tx: TransactionId, request: Request) {
        match request.method {
            Method::Ack => return self.handle_stray_ack(now, request),
            Method::Cancel => return self.handle_cancel(now, tx, request),
            _ => {}
        }
        if self.state == CallState::Terminated {
            self.reply(tx, &request, 481);
            return;
        }
        let Some(dialog) = self.dialog.as_mut() else {
            self.reply(tx, &request, 481);
            return;
        };
        match dialog.check_remote_cseq(&request) {
            Ok(()) => {}
            Err(DialogError::OutOfOrder { .. }) => return self.reply(tx, &request, 500),
            Err(DialogError::Malformed(_)) => return self.reply(tx, &request, 400),
            Err(_) => return self.reply(tx, &request, 481),
        }
        if self.state == CallState::Terminating && request.method != Method::Bye {
            self.reply(tx, &request, 481);
            return;
        }
        match request.method {
            Method::Bye => self.on_bye(now, tx, request),
            Method::Invite => self.on_reinvite(now, tx, request),
            Method::Update => self.on_update(now, tx, request),
            Method::Prack => self.on_prack(now, tx, request),
            Method::Info => self.on_info(now, tx, request),
            Method::Options => self.on_options(tx, request),
            Method::Register | Method::Publish | Method::Subscribe => {
                self.reply(tx, &request, 405);
            }
            _ => self.reply(tx, &request, 501),
        }
    }

    /// BYE: 200, and the call is over (§15.1.2). Before our answer, the INVITE gets 487.
    fn on_bye(&mut self, _now: Instant, tx: TransactionId, bye: Request) {
        self.reply(tx, &bye, 200);
        if self.invite_open() {
            self.abandon_invite(EndReason::RemoteHangup);
            return;
        }
        self.drop_awaiting();
        self.end(EndReason::RemoteHangup);
        self.terminate();
    }

    /// 500 with a Retry-After of 0–10 s (§14.2: an INVITE while another is being answered).
    fn reply_retry_later(&mut self, tx: TransactionId, request: &Request) {
        let mut response = self.simple_response(request, 500);
        let seconds = self.rng.next_u32() % 11;
        response
            .headers
            .push(HeaderName::RetryAfter, seconds.to_string());
        self.respond(tx, response);
    }

    /// The session timer part of a re-INVITE or UPDATE; answers 400/422 itself and returns
    /// `Err` then.
    fn negotiate_in_dialog(
        &mut self,
        tx: TransactionId,
        request: &Request,
    ) -> Result<Option<Negotiated>, ()> {
        match session_timer::negotiate_uas(&request.headers, &self.config) {
            Ok(n) => Ok(n),
            Err(Refusal::Malformed) => {
                self.reply(tx, request, 400);
                Err(())
            }
            Err(Refusal::TooSmall(min)) => {
                let mut response = self.simple_response(request, 422);
                response
                    .headers
                    .push(HeaderName::from("Min-SE"), min.to_string());
                self.respond(tx, response);
                Err(())
            }
        }
    }

    /// A re-INVITE (§14.2): 491 while our own is pending (glare) or our 2xx waits for its
    /// ACK, 500 while another re-INVITE waits for the TU; otherwise a target refresh and
    /// [`CallEvent::RemoteOffer`] (or [`CallEvent::OfferRequested`] without body). An offer
    /// repeating the peer's last description is answered at once with ours.
    fn on_reinvite(&mut self, now: Instant, tx: TransactionId, request: Request) {
        if self.reinvite.as_ref().is_some_and(|r| r.in_flight) {
            self.reply(tx, &request, 491);
            return;
        }
        let answering = matches!(
            self.awaiting,
            Some(Awaiting::ResponseAnswer { .. } | Awaiting::ResponseOffer { .. })
        );
        if answering || self.invite_open() {
            self.reply_retry_later(tx, &request);
            return;
        }
        if self.unacked.is_some() || self.awaiting.is_some() || self.state != CallState::Confirmed {
            self.reply(tx, &request, 491);
            return;
        }
        if !request.body.is_empty() && content_type(&request.headers).is_some_and(|t| t != SDP) {
            let mut response = self.simple_response(&request, 415);
            response.headers.push(HeaderName::Accept, SDP);
            self.respond(tx, response);
            return;
        }
        self.take_offer_request(now, tx, request);
    }

    /// UPDATE (RFC 3311): with an offer, like a re-INVITE (491 while an offer of ours is
    /// pending); without, a session refresh answered at once.
    fn on_update(&mut self, now: Instant, tx: TransactionId, request: Request) {
        if request.body.is_empty() {
            if self.dialog_refresh(tx, &request).is_err() {
                return;
            }
            let Ok(session) = self.negotiate_in_dialog(tx, &request) else {
                return;
            };
            self.answer_in_dialog_request(now, tx, &request, None, false, session);
            return;
        }
        let our_offer_pending = self
            .reinvite
            .as_ref()
            .is_some_and(|r| r.in_flight && r.sdp.is_some());
        if our_offer_pending
            || self.awaiting.is_some()
            || self.unacked.as_ref().is_some_and(|u| u.expects_answer)
            || self.state != CallState::Confirmed
        {
            self.reply(tx, &request, 491);
            return;
        }
        self.take_offer_request(now, tx, request);
    }

    fn dialog_refresh(&mut self, tx: TransactionId, request: &Request) -> Result<(), ()> {
        let refreshed = self
            .dialog
            .as_mut()
            .map(|d| d.refresh_target(&request.headers));
        if let Some(Err(_)) = refreshed {
            self.reply(tx, request, 400);
            return Err(());
        }
        Ok(())
    }

    /// A re-INVITE or UPDATE that may carry an offer, once it is clear we can take it.
    fn take_offer_request(&mut self, now: Instant, tx: TransactionId, request: Request) {
        if self.dialog_refresh(tx, &request).is_err() {
            return;
        }
        let Ok(session) = self.negotiate_in_dialog(tx, &request) else {
            return;
        };
        if request.body.is_empty() {
            self.awaiting = Some(Awaiting::ResponseOffer {
                tx,
                request,
                session,
            });
            self.emit(CallEvent::OfferRequested);
            return;
        }
        let repeat = self.remote_sdp.as_ref() == Some(&request.body);
        if let (true, Some(ours)) = (repeat, self.local_sdp.clone()) {
            // A session refresh repeating the current session: answer with ours.
            self.answer_in_dialog_request(now, tx, &request, Some(ours), false, session);
            return;
        }
        let sdp = request.body.clone();
        self.awaiting = Some(Awaiting::ResponseAnswer {
            tx,
            request,
            session,
        });
        self.emit(CallEvent::RemoteOffer { sdp });
    }

    /// Our 2xx to a re-INVITE or UPDATE, with `sdp` (an answer, or an offer when
    /// `expects_answer`), Contact and the session timer decision. A 2xx to an INVITE is
    /// retransmitted until its ACK.
    pub(super) fn answer_in_dialog_request(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: &Request,
        sdp: Option<Vec<u8>>,
        expects_answer: bool,
        session: Option<Negotiated>,
    ) {
        let mut response = self.simple_response(request, 200);
        response.headers.push(
            HeaderName::Contact,
            NameAddr::new(self.config.contact.clone()).to_string(),
        );
        response.headers.push(HeaderName::Allow, ALLOW);
        let supported = self.config.supported();
        if !supported.is_empty() {
            response.headers.push(HeaderName::Supported, supported);
        }
        if let Some(n) = &session {
            n.write_response_headers(&mut response.headers);
        }
        if let Some(sdp) = sdp {
            self.local_sdp = Some(sdp.clone());
            set_body(&mut response.headers, &mut response.body, SDP, sdp);
        }
        if request.method == Method::Invite {
            self.unacked = Unacked2xx::new(
                now,
                tx,
                response.clone(),
                false,
                expects_answer,
                &self.config.timers,
            );
        }
        self.respond(tx, response);
        match session {
            Some(n) => self.start_session(now, n.interval, n.local_refresher()),
            None => self.session = None,
        }
    }

    /// INFO (RFC 2976): DTMF in `application/dtmf-relay` or `application/dtmf` becomes
    /// [`CallEvent::Dtmf`]; an empty INFO is a keep-alive; other bodies get 415.
    fn on_info(&mut self, _now: Instant, tx: TransactionId, info: Request) {
        if info.body.is_empty() {
            self.reply(tx, &info, 200);
            return;
        }
        let dtmf = match content_type(&info.headers).as_deref() {
            Some("application/dtmf-relay") => parse_dtmf_relay(&info.body),
            Some("application/dtmf") => parse_dtmf(&info.body).map(|d| (d, None)),
            _ => {
                let mut response = self.simple_response(&info, 415);
                response.headers.push(
                    HeaderName::Accept,
                    "application/dtmf-relay, application/dtmf",
                );
                self.respond(tx, response);
                return;
            }
        };
        match dtmf {
            Some((digit, duration)) => {
                self.reply(tx, &info, 200);
                self.emit(CallEvent::Dtmf { digit, duration });
            }
            None => self.reply(tx, &info, 400),
        }
    }

    /// OPTIONS inside the dialog: 200 with our capabilities.
    fn on_options(&mut self, tx: TransactionId, options: Request) {
        let mut response = self.simple_response(&options, 200);
        response.headers.push(HeaderName::Allow, ALLOW);
        response.headers.push(HeaderName::Accept, SDP);
        let supported = self.config.supported();
        if !supported.is_empty() {
            response.headers.push(HeaderName::Supported, supported);
        }
        self.respond(tx, response);
    }

    // ----- our re-INVITEs and UPDATEs --------------------------------------------------

    /// Starts a re-INVITE or UPDATE.
    pub(super) fn start_offer(
        &mut self,
        now: Instant,
        kind: OfferKind,
        method: Method,
        sdp: Option<Vec<u8>>,
    ) -> Result<(), CallError> {
        if self.state != CallState::Confirmed || self.ended {
            return Err(self.invalid(match method {
                Method::Update => "UPDATE",
                _ => "re-INVITE",
            }));
        }
        if self.offer_busy() {
            return Err(CallError::RequestPending);
        }
        if sdp.as_ref().is_some_and(Vec::is_empty) {
            return Err(CallError::OfferAnswer("an empty offer"));
        }
        self.reinvite = Some(OutgoingOffer {
            kind,
            method,
            sdp,
            request: None,
            cseq: 0,
            in_flight: false,
            retry_at: None,
            glares: 0,
            challenges: 0,
            retries_422: 0,
            requested_se: None,
        });
        self.send_offer_request(now);
        Ok(())
    }

    fn send_offer_request(&mut self, _now: Instant) {
        let Some((method, sdp)) = self
            .reinvite
            .as_ref()
            .map(|r| (r.method.clone(), r.sdp.clone()))
        else {
            return;
        };
        let Some(mut request) = self.dialog_request(method) else {
            self.reinvite = None;
            return;
        };
        let requested_se = self.write_session_request_headers(&mut request.headers);
        if let Some(sdp) = sdp {
            set_body(&mut request.headers, &mut request.body, SDP, sdp);
        }
        self.finish_request(&mut request);
        let cseq = request.headers.cseq().map(|c| c.seq).unwrap_or_default();
        if let Some(r) = self.reinvite.as_mut() {
            r.request = Some(request.clone());
            r.cseq = cseq;
            r.in_flight = true;
            r.retry_at = None;
            r.requested_se = requested_se;
        }
        if request.method == Method::Invite {
            self.last_invite = Some(request.clone());
        }
        self.send_request(request, Purpose::Offer);
    }

    /// The 491 retry timer fired (§14.1).
    pub(super) fn retry_offer(&mut self, now: Instant) {
        let busy = self.awaiting.is_some()
            || self.unacked.is_some()
            || self.state != CallState::Confirmed
            || self.ended;
        if busy {
            if let Some(r) = self.reinvite.as_mut() {
                r.retry_at = Some(later(now, Duration::from_millis(500)));
            }
            return;
        }
        self.send_offer_request(now);
    }

    /// RFC 3261 §14.1: after a 491, wait 2.1–4 s when we own the Call-ID (we placed the
    /// call), else 0–2 s, in units of 10 ms.
    fn glare_delay(&mut self) -> Duration {
        let units = match self.role {
            Role::Uac => 210 + self.rng.next_u32() % 191,
            Role::Uas => self.rng.next_u32() % 201,
        };
        Duration::from_millis(10 * u64::from(units))
    }

    /// A response to our re-INVITE or UPDATE.
    pub(super) fn on_offer_response(&mut self, now: Instant, response: Response) {
        let Ok(cseq) = response.headers.cseq() else {
            return;
        };
        let status = response.status;
        let is_invite = cseq.method == Method::Invite;
        let ours = self.reinvite.as_ref().is_some_and(|r| r.cseq == cseq.seq);
        if !ours || self.ended {
            if ours && status >= 200 {
                self.reinvite = None;
            }
            if is_invite && (200..=299).contains(&status) {
                self.send_ack(cseq.seq, None);
            }
            return;
        }
        if status < 200 {
            return;
        }
        if let Some(r) = self.reinvite.as_mut() {
            r.in_flight = false;
        }
        match status {
            200..=299 => self.on_offer_accepted(now, response),
            491 if self
                .reinvite
                .as_ref()
                .is_some_and(|r| r.glares < super::MAX_GLARE_RETRIES) =>
            {
                let delay = self.glare_delay();
                if let Some(r) = self.reinvite.as_mut() {
                    r.glares += 1;
                    r.retry_at = Some(later(now, delay));
                }
            }
            422 => {
                let min = session_timer::min_se(&response.headers).ok().flatten();
                let retry = self.reinvite.as_ref().is_some_and(|r| r.retries_422 < 2);
                match min {
                    Some(min) if retry => {
                        self.peer_min_se = self.peer_min_se.max(min);
                        if let Some(r) = self.reinvite.as_mut() {
                            r.retries_422 += 1;
                        }
                        self.send_offer_request(now);
                    }
                    _ => self.on_offer_refused(status),
                }
            }
            401 | 407 => {
                let name = if status == 401 {
                    HeaderName::WwwAuthenticate
                } else {
                    HeaderName::ProxyAuthenticate
                };
                let challenges: Vec<&str> = response.headers.get_all(&name).collect();
                let retry = self.reinvite.as_ref().is_some_and(|r| r.challenges < 2);
                if retry && self.digest.on_challenge(status, &challenges).is_ok() {
                    if let Some(r) = self.reinvite.as_mut() {
                        r.challenges += 1;
                    }
                    self.send_offer_request(now);
                } else {
                    self.on_offer_refused(status);
                }
            }
            // §12.2.1.2: the dialog is gone, or the peer is unreachable.
            481 => {
                self.reinvite = None;
                self.end(EndReason::DialogGone);
                self.terminate();
            }
            408 => {
                self.reinvite = None;
                self.hang_up_with(EndReason::Timeout);
            }
            _ => self.on_offer_refused(status),
        }
    }

    fn on_offer_refused(&mut self, status: u16) {
        if let Some(r) = self.reinvite.take()
            && r.kind != OfferKind::Refresh
        {
            self.emit(CallEvent::OfferRejected { status });
        }
    }

    fn on_offer_accepted(&mut self, now: Instant, response: Response) {
        let Some(r) = self.reinvite.take() else {
            return;
        };
        if let Some(dialog) = self.dialog.as_mut() {
            let _ = dialog.refresh_target(&response.headers);
        }
        if response.headers.contains(&HeaderName::Allow) {
            self.peer_allows_update = super::allows(&response.headers, "UPDATE");
        }
        let is_invite = r.method == Method::Invite;
        let body = response.body.clone();
        match (&r.sdp, is_invite) {
            (Some(offer), _) => {
                self.local_sdp = Some(offer.clone());
                if !body.is_empty() {
                    let changed = self.remote_sdp.as_ref() != Some(&body);
                    self.remote_sdp = Some(body.clone());
                    if r.kind != OfferKind::Refresh || changed {
                        self.emit(CallEvent::RemoteAnswer { sdp: body });
                    }
                }
                if is_invite {
                    self.send_ack(r.cseq, None);
                }
            }
            (None, true) => {
                if body.is_empty() {
                    self.send_ack(r.cseq, None);
                } else {
                    // The offer of our offerless re-INVITE: the answer goes in the ACK.
                    self.remote_sdp = Some(body.clone());
                    self.awaiting = Some(Awaiting::AckAnswer {
                        cseq: r.cseq,
                        initial: false,
                    });
                    self.emit(CallEvent::RemoteOffer { sdp: body });
                }
            }
            (None, false) => {}
        }
        self.session_from_response(now, &response, r.requested_se);
        match r.kind {
            OfferKind::Hold => self.emit(CallEvent::HoldChanged { local_hold: true }),
            OfferKind::Resume => self.emit(CallEvent::HoldChanged { local_hold: false }),
            OfferKind::Offer | OfferKind::Refresh => {}
        }
    }
}
