//! The callee's side of the initial INVITE (RFC 3261 §13.3, §9.2; RFC 3262 §3; RFC 6026
//! §8.7): checking the INVITE, provisional responses (reliable ones retransmitted until
//! PRACKed), the 2xx retransmitted until its ACK, CANCEL, and the ACK itself.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::session_timer::{self, Negotiated, Refusal};
use super::{
    ALLOW, Awaiting, Call, CallConfig, CallError, CallEvent, CallState, EndReason, Role, SDP,
    allows, content_type, has_option, later, random_hex, set_body, tag_of,
};
use crate::dialog::Dialog;
use crate::message::{HeaderName, Method, NameAddr, Request, Response};
use crate::transaction::{Timers, TransactionId};

/// A reliable provisional response waiting for its PRACK.
#[derive(Debug, Clone)]
pub(super) struct ReliableProvisional {
    response: Response,
    rseq: u32,
    carries_sdp: bool,
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

/// The INVITE of an incoming call, until its final response (and PRACKs after).
#[derive(Debug, Clone)]
pub(super) struct UasInvite {
    pub(super) tx: TransactionId,
    pub(super) request: Request,
    pub(super) cseq: u32,
    pub(super) offer_in_invite: bool,
    /// Our provisional responses are sent reliably (RFC 3262).
    pub(super) reliable: bool,
    next_rseq: u32,
    outstanding: Option<ReliableProvisional>,
    /// Reliable provisionals waiting for the outstanding one's PRACK (§3: one at a time).
    queued: VecDeque<Response>,
    /// `answer()` was called while a reliable provisional was unacknowledged.
    answer_pending: Option<Vec<u8>>,
    pub(super) final_sent: bool,
    /// Offer/answer completed before the 2xx (answer in a reliable 18x, or our offer in a
    /// reliable 18x answered in the PRACK).
    oa_done: bool,
    /// Our offer went out in a reliable 18x (the INVITE had none); its answer comes in PRACK.
    offer_in_provisional: bool,
    /// The session timer negotiated for the 2xx.
    session: Option<Negotiated>,
}

impl UasInvite {
    pub(super) fn deadline(&self) -> Option<Instant> {
        self.outstanding
            .as_ref()
            .map(|o| o.next_at.min(o.give_up_at))
    }

    pub(super) fn stop_timers(&mut self) {
        self.outstanding = None;
        self.queued.clear();
        self.answer_pending = None;
    }

    /// Whether `request` (a CANCEL, a retransmitted INVITE or the ACK of a non-2xx) refers to
    /// this INVITE: same From tag and CSeq number, and no To tag but ours.
    pub(super) fn is_same_invite(&self, request: &Request) -> bool {
        let h = &request.headers;
        let ours = &self.request.headers;
        tag_of(&h.from()) == tag_of(&ours.from())
            && h.cseq().ok().map(|c| c.seq) == Some(self.cseq)
            && matches!(
                request.method,
                Method::Invite | Method::Cancel | Method::Ack
            )
            && h.call_id().ok() == ours.call_id().ok()
    }
}

/// Our 2xx to an INVITE (initial or re-INVITE), retransmitted until its ACK (§13.3.1.4).
#[derive(Debug, Clone)]
pub(super) struct Unacked2xx {
    pub(super) tx: TransactionId,
    response: Response,
    pub(super) cseq: u32,
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
    /// For the initial INVITE (the ACK confirms the call).
    initial: bool,
    /// Our 2xx carried an offer: the answer comes in the ACK.
    pub(super) expects_answer: bool,
}

impl Unacked2xx {
    pub(super) fn new(
        now: Instant,
        tx: TransactionId,
        response: Response,
        initial: bool,
        expects_answer: bool,
        timers: &Timers,
    ) -> Option<Self> {
        let cseq = response.headers.cseq().ok()?.seq;
        let t1 = timers.t1.max(Duration::from_millis(1));
        Some(Unacked2xx {
            tx,
            response,
            cseq,
            next_at: later(now, t1),
            interval: t1,
            give_up_at: later(now, t1.saturating_mul(64)),
            initial,
            expects_answer,
        })
    }

    pub(super) fn deadline(&self) -> Instant {
        self.next_at.min(self.give_up_at)
    }
}

/// A response to an INVITE refused before any call exists.
fn refusal(request: &Request, status: u16, tag: &str, user_agent: &str) -> Response {
    let mut response = Response::to_request(request, status);
    if let Ok(mut to) = request.headers.to()
        && to.tag().is_none()
    {
        to.set_param("tag", Some(tag.to_string()));
        response.headers.set(HeaderName::To, to.to_string());
    }
    response.headers.push(HeaderName::Server, user_agent);
    response
}

impl Call {
    /// Takes an incoming INVITE (server transaction `tx`) as a new call in state
    /// [`CallState::Incoming`], or refuses it with the response to send in `tx`: 405 (not an
    /// INVITE), 420 (a `Require`d extension we lack), 415 (a body that is not SDP), 481 (a To
    /// tag: an in-dialog request for no call), 400 (no usable Contact, malformed
    /// Session-Expires), 422 (Session-Expires below our Min-SE). The INVITE's offer, if any, is
    /// [`remote_sdp`](Self::remote_sdp); answer with [`ring`](Self::ring),
    /// [`progress`](Self::progress), [`answer`](Self::answer) or [`reject`](Self::reject).
    pub fn incoming(
        request: Request,
        tx: TransactionId,
        config: CallConfig,
        _now: Instant,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Result<Call, Response> {
        let local_tag = random_hex(rng.as_mut(), 8);
        let ua = config.user_agent.clone();
        let refuse = |status: u16| refusal(&request, status, &local_tag, &ua);
        if request.method != Method::Invite {
            let mut r = refuse(405);
            r.headers.push(HeaderName::Allow, ALLOW);
            return Err(r);
        }
        let understood = |option: &str| match option.to_ascii_lowercase().as_str() {
            "100rel" => config.supports_100rel,
            "timer" => config.supports_timer,
            _ => false,
        };
        let unsupported: Vec<&str> = request
            .headers
            .values(&HeaderName::Require)
            .into_iter()
            .filter(|o| !understood(o))
            .collect();
        if !unsupported.is_empty() {
            let mut r = refuse(420);
            r.headers
                .push(HeaderName::Unsupported, unsupported.join(", "));
            return Err(r);
        }
        if !request.body.is_empty() && content_type(&request.headers).is_some_and(|t| t != SDP) {
            let mut r = refuse(415);
            r.headers.push(HeaderName::Accept, SDP);
            return Err(r);
        }
        if request.headers.to().is_ok_and(|to| to.tag().is_some()) {
            return Err(refuse(481));
        }
        let Ok(call_id) = request.headers.call_id().map(str::to_string) else {
            return Err(refuse(400));
        };
        let Ok(cseq) = request.headers.cseq().map(|c| c.seq) else {
            return Err(refuse(400));
        };
        let local_seq = 1 + rng.next_u32() % 0x7fff;
        let Ok(dialog) = Dialog::uas(&request, local_tag.clone(), local_seq) else {
            return Err(refuse(400));
        };
        let session = match session_timer::negotiate_uas(&request.headers, &config) {
            Ok(n) => n,
            Err(Refusal::Malformed) => return Err(refuse(400)),
            Err(Refusal::TooSmall(min)) => {
                let mut r = refuse(422);
                r.headers.push(HeaderName::from("Min-SE"), min.to_string());
                return Err(r);
            }
        };
        let peer_min_se = session_timer::min_se(&request.headers)
            .ok()
            .flatten()
            .unwrap_or(super::MIN_SESSION_EXPIRES);
        let reliable = config.supports_100rel
            && (has_option(&request.headers, &HeaderName::Require, "100rel")
                || has_option(&request.headers, &HeaderName::Supported, "100rel"));
        let next_rseq = 1 + rng.next_u32() % 0x7fff;
        let offer_in_invite = !request.body.is_empty();
        let mut call = Call::blank(Role::Uas, config, rng, call_id, local_tag);
        call.state = CallState::Incoming;
        call.dialog = Some(dialog);
        call.peer_allows_update = allows(&request.headers, "UPDATE");
        call.peer_min_se = peer_min_se;
        if offer_in_invite {
            call.remote_sdp = Some(request.body.clone());
        }
        call.uas = Some(UasInvite {
            tx,
            request,
            cseq,
            offer_in_invite,
            reliable,
            next_rseq,
            outstanding: None,
            queued: VecDeque::new(),
            answer_pending: None,
            final_sent: false,
            oa_done: false,
            offer_in_provisional: false,
            session,
        });
        Ok(call)
    }

    fn check_incoming(&self, action: &'static str) -> Result<(), CallError> {
        let open = self.uas.as_ref().is_some_and(|u| !u.final_sent);
        if self.state == CallState::Incoming && open && !self.ended {
            Ok(())
        } else {
            Err(self.invalid(action))
        }
    }

    /// A response to the INVITE with our tag and, for 101–299, Contact, Allow and Supported.
    fn uas_response(&self, status: u16) -> Option<Response> {
        let uas = self.uas.as_ref()?;
        let mut r = refusal(
            &uas.request,
            status,
            &self.local_tag,
            &self.config.user_agent,
        );
        if (101..=299).contains(&status) {
            r.headers.push(
                HeaderName::Contact,
                NameAddr::new(self.config.contact.clone()).to_string(),
            );
            r.headers.push(HeaderName::Allow, ALLOW);
            let supported = self.config.supported();
            if !supported.is_empty() {
                r.headers.push(HeaderName::Supported, supported);
            }
        }
        Some(r)
    }

    /// Sends 180 Ringing (reliably when both sides support 100rel).
    pub fn ring(&mut self, now: Instant) -> Result<(), CallError> {
        self.check_incoming("ring")?;
        self.send_provisional(now, 180, None);
        Ok(())
    }

    /// Sends 183 Session Progress with `sdp` for early media (no body when `sdp` is empty).
    /// With an offer in the INVITE `sdp` is the answer; without, it is our offer and needs a
    /// reliable provisional (its answer comes in the PRACK). Once an answer went out reliably,
    /// later 183s carry no body.
    pub fn progress(&mut self, now: Instant, sdp: Vec<u8>) -> Result<(), CallError> {
        self.check_incoming("progress")?;
        let Some(uas) = self.uas.as_mut() else {
            return Err(self.invalid("progress"));
        };
        let body = if sdp.is_empty() || uas.oa_done || uas.offer_in_provisional {
            None
        } else if uas.offer_in_invite {
            uas.oa_done = uas.reliable;
            Some(sdp)
        } else if uas.reliable {
            uas.offer_in_provisional = true;
            Some(sdp)
        } else {
            return Err(CallError::OfferAnswer(
                "an offer cannot go in an unreliable provisional response",
            ));
        };
        if let Some(sdp) = &body {
            self.local_sdp = Some(sdp.clone());
        }
        self.send_provisional(now, 183, body);
        Ok(())
    }

    fn send_provisional(&mut self, now: Instant, status: u16, body: Option<Vec<u8>>) {
        let Some(mut response) = self.uas_response(status) else {
            return;
        };
        if let Some(sdp) = body {
            set_body(&mut response.headers, &mut response.body, SDP, sdp);
        }
        let Some(uas) = self.uas.as_mut() else {
            return;
        };
        if !uas.reliable {
            let tx = uas.tx;
            self.respond(tx, response);
        } else if uas.outstanding.is_some() {
            uas.queued.push_back(response);
        } else {
            self.send_reliable(now, response);
        }
    }

    fn send_reliable(&mut self, now: Instant, mut response: Response) {
        let t1 = self.config.timers.t1.max(Duration::from_millis(1));
        let Some(uas) = self.uas.as_mut() else {
            return;
        };
        let rseq = uas.next_rseq;
        uas.next_rseq = uas.next_rseq.saturating_add(1);
        response.headers.push(HeaderName::Require, "100rel");
        response
            .headers
            .push(HeaderName::from("RSeq"), rseq.to_string());
        uas.outstanding = Some(ReliableProvisional {
            carries_sdp: !response.body.is_empty(),
            response: response.clone(),
            rseq,
            next_at: later(now, t1),
            interval: t1,
            give_up_at: later(now, t1.saturating_mul(64)),
        });
        let tx = uas.tx;
        self.respond(tx, response);
    }

    /// Answers the call with 200 OK carrying `sdp` (the answer to the INVITE's offer, or our
    /// offer when it had none) and our Contact; the 2xx is retransmitted until the ACK.
    /// While a reliable provisional waits for its PRACK, the 2xx waits too (RFC 3262 §3).
    pub fn answer(&mut self, now: Instant, sdp: Vec<u8>) -> Result<(), CallError> {
        self.check_incoming("answer")?;
        let Some(uas) = self.uas.as_mut() else {
            return Err(self.invalid("answer"));
        };
        if sdp.is_empty() && !uas.oa_done && !uas.offer_in_provisional {
            return Err(CallError::OfferAnswer(
                "the 2xx must carry a session description",
            ));
        }
        if uas.outstanding.is_some() || !uas.queued.is_empty() {
            uas.answer_pending = Some(sdp);
            return Ok(());
        }
        self.send_2xx(now, sdp);
        Ok(())
    }

    fn send_2xx(&mut self, now: Instant, sdp: Vec<u8>) {
        let Some(mut response) = self.uas_response(200) else {
            return;
        };
        let Some(uas) = self.uas.as_mut() else {
            return;
        };
        let early = uas.oa_done || uas.offer_in_provisional;
        let expects_answer = !uas.offer_in_invite && !early;
        let session = uas.session;
        uas.final_sent = true;
        let tx = uas.tx;
        if let Some(n) = &session {
            n.write_response_headers(&mut response.headers);
        }
        if !early && !sdp.is_empty() {
            self.local_sdp = Some(sdp.clone());
            set_body(&mut response.headers, &mut response.body, SDP, sdp);
        }
        if let Some(dialog) = self.dialog.as_mut() {
            dialog.confirm_uas();
        }
        self.state = CallState::Accepted;
        self.unacked = Unacked2xx::new(
            now,
            tx,
            response.clone(),
            true,
            expects_answer,
            &self.config.timers,
        );
        self.respond(tx, response);
        match session {
            Some(n) => self.start_session(now, n.interval, n.local_refresher()),
            None => self.session = None,
        }
    }

    /// Refuses the incoming call with a final status of 300–699 (486 Busy Here, 603 Decline,
    /// a 3xx with no Contact...).
    pub fn reject(&mut self, _now: Instant, status: u16) -> Result<(), CallError> {
        self.check_incoming("reject")?;
        if !(300..=699).contains(&status) {
            return Err(CallError::InvalidStatus(status));
        }
        self.final_failure(status);
        self.end(EndReason::RejectedLocally { status });
        self.terminate();
        Ok(())
    }

    /// Sends a final non-2xx to the INVITE and stops its provisional retransmissions.
    fn final_failure(&mut self, status: u16) {
        let Some(response) = self.uas_response(status) else {
            return;
        };
        let Some(uas) = self.uas.as_mut() else {
            return;
        };
        uas.stop_timers();
        uas.final_sent = true;
        let tx = uas.tx;
        self.respond(tx, response);
    }

    /// Whether the INVITE we are answering is still open (no final response yet).
    pub(super) fn invite_open(&self) -> bool {
        self.uas.as_ref().is_some_and(|u| !u.final_sent)
    }

    /// The caller gave up (CANCEL in the early dialog, or BYE before our answer): 487 to
    /// the INVITE.
    pub(super) fn abandon_invite(&mut self, reason: EndReason) {
        self.final_failure(487);
        self.end(reason);
        self.terminate();
    }

    /// A CANCEL (RFC 3261 §9.2): for the INVITE we are answering, 200 and, before our final
    /// response, 487 to the INVITE; for a re-INVITE still waiting for the TU, the same; else
    /// 481.
    pub(super) fn handle_cancel(&mut self, _now: Instant, tx: TransactionId, cancel: Request) {
        if self.uas.as_ref().is_some_and(|u| u.is_same_invite(&cancel)) {
            self.reply(tx, &cancel, 200);
            if self.invite_open() && self.state != CallState::Terminated {
                self.abandon_invite(EndReason::Cancelled);
            }
            return;
        }
        let cseq = cancel.headers.cseq().ok().map(|c| c.seq);
        let in_dialog = self.dialog.as_ref().is_some_and(|d| d.matches(&cancel));
        let waiting = match &self.awaiting {
            Some(Awaiting::ResponseAnswer { request, .. })
            | Some(Awaiting::ResponseOffer { request, .. }) => {
                request.method == Method::Invite
                    && request.headers.cseq().ok().map(|c| c.seq) == cseq
            }
            _ => false,
        };
        if in_dialog && waiting {
            self.reply(tx, &cancel, 200);
            if let Some(Awaiting::ResponseAnswer { tx, request, .. })
            | Some(Awaiting::ResponseOffer { tx, request, .. }) = self.awaiting.take()
            {
                self.reply(tx, &request, 487);
            }
            return;
        }
        self.reply(tx, &cancel, 481);
    }

    /// A PRACK (RFC 3262 §3): 200 when it acknowledges the outstanding reliable provisional
    /// (then the next queued one, or the waiting 2xx, goes out), 481 otherwise.
    pub(super) fn on_prack(&mut self, now: Instant, tx: TransactionId, prack: Request) {
        let rack = prack
            .headers
            .get(&HeaderName::from("RAck"))
            .and_then(parse_rack);
        let Some((rseq, cseq, method)) = rack else {
            self.reply(tx, &prack, 400);
            return;
        };
        let matches = self.uas.as_ref().is_some_and(|u| {
            u.outstanding.as_ref().is_some_and(|o| o.rseq == rseq)
                && u.cseq == cseq
                && method == Method::Invite
        });
        if !matches {
            self.reply(tx, &prack, 481);
            return;
        }
        self.reply(tx, &prack, 200);
        let Some(uas) = self.uas.as_mut() else {
            return;
        };
        let acked = uas.outstanding.take();
        let answer_expected =
            uas.offer_in_provisional && !uas.oa_done && acked.is_some_and(|o| o.carries_sdp);
        if answer_expected && !prack.body.is_empty() {
            uas.oa_done = true;
            self.remote_sdp = Some(prack.body.clone());
            self.emit(CallEvent::RemoteAnswer {
                sdp: prack.body.clone(),
            });
        }
        let Some(uas) = self.uas.as_mut() else {
            return;
        };
        if let Some(next) = uas.queued.pop_front() {
            self.send_reliable(now, next);
        } else if let Some(sdp) = uas.answer_pending.take() {
            self.send_2xx(now, sdp);
        }
    }

    /// The ACK for a 2xx (RFC 6026: it matches no transaction, or an IST in Accepted): stops
    /// the 2xx retransmissions, confirms the call, and delivers the answer when our 2xx
    /// carried the offer.
    pub fn handle_stray_ack(&mut self, _now: Instant, ack: Request) {
        if self.state == CallState::Terminated || ack.method != Method::Ack {
            return;
        }
        if !self.dialog.as_ref().is_some_and(|d| d.matches(&ack)) {
            return;
        }
        let Ok(cseq) = ack.headers.cseq() else {
            return;
        };
        let Some(unacked) = self.unacked.take_if(|u| u.cseq == cseq.seq) else {
            return;
        };
        if unacked.expects_answer && !self.ended {
            if ack.body.is_empty() {
                self.hang_up_with(EndReason::Protocol("the ACK carried no answer"));
                return;
            }
            self.remote_sdp = Some(ack.body.clone());
            self.emit(CallEvent::RemoteAnswer { sdp: ack.body });
        }
        if unacked.initial && self.state == CallState::Accepted {
            self.state = CallState::Confirmed;
            self.emit(CallEvent::Confirmed);
        }
        if self.bye_after_ack {
            self.bye_after_ack = false;
            self.send_bye();
        }
    }

    /// The callee's clock: reliable provisional retransmissions (T1 doubling) and their
    /// 64·T1 give-up (500 to the INVITE).
    pub(super) fn uas_timeout(&mut self, now: Instant) {
        let Some(uas) = self.uas.as_mut() else {
            return;
        };
        let tx = uas.tx;
        let Some(o) = uas.outstanding.as_mut() else {
            return;
        };
        if o.give_up_at <= now {
            self.final_failure(500);
            self.end(EndReason::PrackTimeout);
            self.terminate();
        } else if o.next_at <= now {
            o.interval = o.interval.saturating_mul(2);
            o.next_at = later(now, o.interval);
            let response = o.response.clone();
            self.respond(tx, response);
        }
    }

    /// 2xx retransmissions (T1 doubling to T2) until the ACK; after 64·T1 without one, BYE
    /// (RFC 3261 §13.3.1.4).
    pub(super) fn unacked_timeout(&mut self, now: Instant) {
        let t2 = self.config.timers.t2.max(Duration::from_millis(1));
        let Some(u) = self.unacked.as_mut() else {
            return;
        };
        if u.give_up_at <= now {
            self.unacked = None;
            if self.ended {
                self.bye_after_ack = false;
                self.send_bye();
            } else {
                self.hang_up_with(EndReason::AckTimeout);
            }
        } else if u.next_at <= now {
            u.interval = u.interval.saturating_mul(2).min(t2);
            u.next_at = later(now, u.interval);
            let (tx, response) = (u.tx, u.response.clone());
            self.respond(tx, response);
        }
    }
}

/// Parses `RAck: rseq cseq method` (RFC 3262 §7.2).
pub(super) fn parse_rack(value: &str) -> Option<(u32, u32, Method)> {
    let mut words = value.split_ascii_whitespace();
    let rseq = words.next()?.parse().ok()?;
    let cseq = words.next()?.parse().ok()?;
    let method = Method::parse(words.next()?).ok()?;
    words.next().is_none().then_some((rseq, cseq, method))
}
