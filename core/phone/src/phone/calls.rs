//! Calls: the INVITE session machines of `handset-sip` with SDP offer/answer of
//! `handset-media`, media plans for the runtime, the incoming-call checks (call cap,
//! blocklist, declined push, answerable offer), ring timeout, hold, DTMF, mute, and the one
//! place where an ending is classified, recorded in the history and reported.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use handset_media::dtls_session::{dtls_offer_keys, new_ice_credentials};
use handset_media::ice::{LocalCandidate, default_address, ice_local};
use handset_media::sdp::{
    Direction, IceCredentials, IceLocal, MediaConfig, Negotiated, OfferKeys, SessionDescription,
    SessionIdentity, SrtpMode, SrtpPolicy, answer, create_offer, process_answer,
};
use handset_media::session::{MediaEvent, StreamStart};
use handset_media::stats::CallQuality;
use handset_sip::message::{HeaderName, Host, Message, Method, NameAddr, Request, SipUri};
use handset_sip::transaction::{TransactionId, cancel_request, new_branch};
use handset_sip::transport::Flow;
use handset_sip::usage::invite::{
    Call, CallConfig, CallEvent, CallOutput, CallState as SipState, EndReason as SipEndReason,
    RequestHandle,
};
use rand::RngCore;

use super::rate::RateLimiter;
use super::{
    AccountId, BoundMedia, CallDirection, CallId, CallRecord, CallState, CallUpdate, DtlsPlan,
    EndReason, IcePlan, MediaCommand, MediaPlan, Output, Owner, Phone, PhoneError, PhoneEvent,
    Record, USER_AGENT, final_response,
};
use crate::push::{ReportId, caller_number};

/// How long the runtime may take to stop a call's media before the call is reported ended
/// without its statistics.
const MEDIA_STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// Where a call's media stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MediaPhase {
    /// No RTP socket.
    None,
    /// [`Output::BindMedia`] went out.
    Binding,
    /// A socket is bound; media not started.
    Bound,
    /// Media runs.
    Running,
    /// [`MediaCommand::Stop`] went out; waiting for [`super::Input::MediaStopped`].
    Stopping {
        /// Give up waiting then.
        deadline: Instant,
    },
    /// Stopped (or never needed stopping).
    Stopped,
}

/// What the history needs of a call.
#[derive(Debug, Clone)]
struct CallLog {
    remote_number: String,
    remote_name: Option<String>,
    started: Instant,
    answered: Option<Instant>,
}

/// A call's ICE parameters, kept while a restart may still fall through.
pub(super) struct SavedIce {
    local: Option<IceLocal>,
    credentials: Option<IceCredentials>,
    candidates: Vec<LocalCandidate>,
}

/// One call.
pub(super) struct CallEntry {
    pub(super) account: AccountId,
    pub(super) direction: CallDirection,
    /// The INVITE session; `None` for an outgoing call whose INVITE has not gone out yet.
    pub(super) sip: Option<Call>,
    pub(super) state: CallState,
    /// Reported to the application (calls refused before ringing never are).
    announced: bool,
    /// Outgoing: whom to call.
    target: Option<SipUri>,
    /// Incoming: the flow the INVITE came on (responses after the transaction go there).
    flow: Option<Flow>,
    pub(super) media_config: MediaConfig,
    pub(super) identity: SessionIdentity,
    pub(super) keys: Option<OfferKeys>,
    /// Our ICE credentials, for DTLS-SRTP calls and calls with gathered candidates.
    pub(super) local_ice: Option<IceCredentials>,
    pub(super) rtp_local: Option<SocketAddr>,
    /// The ICE candidates gathered for the RTP socket (empty without ICE).
    pub(super) candidates: Vec<LocalCandidate>,
    /// We made the first offer, so our ICE agent controls (RFC 8445 §6.1.1).
    ice_controlling: bool,
    /// The renegotiation under way restarts ICE: its outcome restarts the media's ICE
    /// ([`MediaCommand::RestartIce`]) instead of updating it.
    pub(super) ice_restarting: bool,
    pub(super) media: MediaPhase,
    pub(super) local_offer: Option<SessionDescription>,
    remote_offer: Option<SessionDescription>,
    remote_sdp: Option<SessionDescription>,
    negotiated: Option<Negotiated>,
    /// We hold the call.
    pub(super) local_hold: bool,
    /// The network changed: the call moves (a new RTP socket, then a re-INVITE from our new
    /// address) once its account's flow is up again.
    pub(super) moving: bool,
    /// [`Output::BindMedia`] for the move went out.
    pub(super) rebinding: bool,
    invite_tx: Option<TransactionId>,
    log: CallLog,
    /// Why the phone itself refused or ended the call (user decline, ring timeout, bad
    /// answer): it names the ending the SIP session reports as a local refusal or hangup.
    pub(super) local_reason: Option<EndReason>,
    /// What the caller's CANCEL said (RFC 3326: answered or declined elsewhere).
    cancel_reason: Option<EndReason>,
    /// The call is over; the reason waits for the media to stop.
    ending: Option<EndReason>,
    muted: bool,
    /// DTMF digits waiting for media.
    dtmf: String,
    /// The call's id on CallKit / Telecom.
    report_id: ReportId,
    ring_deadline: Option<Instant>,
    /// The user answered; the answer goes out once the RTP socket is bound.
    answer_pending: bool,
    limiter: RateLimiter,
    /// In-dialog requests waiting for a rate-limit token.
    deferred: VecDeque<(RequestHandle, Request)>,
    /// The first INVITE went out (later INVITEs are retries or re-INVITEs: rate-limited).
    invited: bool,
}

impl CallEntry {
    /// Whether the call uses ICE (DTLS-SRTP calls always do; plain RTP and SDES-SRTP calls
    /// when candidates were gathered), so a move restarts it.
    pub(super) fn uses_ice(&self) -> bool {
        self.local_ice.is_some()
    }

    /// Whether the call is DTLS-SRTP: its ICE has only the socket's host candidate, nothing
    /// to gather.
    pub(super) fn is_dtls(&self) -> bool {
        self.negotiated.as_ref().is_some_and(|n| n.dtls.is_some())
    }

    /// Our candidates as announced: the gathered ones, or for DTLS-SRTP the socket's host
    /// candidate.
    pub(super) fn ice_candidates(&self) -> Vec<LocalCandidate> {
        match (self.candidates.is_empty(), self.rtp_local) {
            (true, Some(local)) if self.is_dtls() => vec![LocalCandidate::host(local)],
            _ => self.candidates.clone(),
        }
    }

    /// Our ICE state as it stands, to put back with [`Self::restore_ice`] when a restart does
    /// not happen after all.
    pub(super) fn ice_state(&self) -> SavedIce {
        SavedIce {
            local: self.keys.as_ref().and_then(|k| k.ice().cloned()),
            credentials: self.local_ice.clone(),
            candidates: self.candidates.clone(),
        }
    }

    /// Puts back what [`Self::ice_state`] saved; no restart is pending any more.
    pub(super) fn restore_ice(&mut self, saved: SavedIce) {
        if let (Some(keys), Some(local)) = (self.keys.as_mut(), saved.local) {
            keys.set_ice(local);
        }
        self.local_ice = saved.credentials;
        self.candidates = saved.candidates;
        self.ice_restarting = false;
    }

    /// A network change or the peer restarts ICE: our new credentials and candidates go into
    /// the next offer or answer.
    pub(super) fn new_ice(&mut self, credentials: IceCredentials, candidates: Vec<LocalCandidate>) {
        if let Some(keys) = self.keys.as_mut() {
            keys.set_ice(ice_local(credentials.clone(), &candidates));
        }
        self.local_ice = Some(credentials);
        self.candidates = candidates;
    }

    /// The address our SDP announces (c= and m= port): the default ICE candidate, else the
    /// RTP socket's.
    fn sdp_address(&self) -> Option<SocketAddr> {
        self.rtp_local
            .map(|local| default_address(&self.candidates, local))
    }

    pub(super) fn state(&self) -> &CallState {
        &self.state
    }

    pub(super) fn is_over(&self) -> bool {
        self.ending.is_some() || self.state.is_ended()
    }

    pub(super) fn deadlines(&self) -> [Option<Instant>; 4] {
        let stopping = match self.media {
            MediaPhase::Stopping { deadline } => Some(deadline),
            _ => None,
        };
        let deferred = if self.deferred.is_empty() {
            None
        } else {
            self.limiter.next_token_at()
        };
        [
            self.sip.as_ref().and_then(Call::poll_timeout),
            self.ring_deadline,
            stopping,
            deferred,
        ]
    }
}

/// What a CANCEL's RFC 3326 `Reason: SIP;cause=...` says: another device of the user answered
/// (200) or declined (600, 603) the call. Reads the header without indexing.
fn cancel_reason(cancel: &Request) -> Option<EndReason> {
    cancel
        .headers
        .get_all(&HeaderName::Other("Reason".into()))
        .flat_map(|value| value.split(','))
        .find_map(|reason| {
            let mut parts = reason.split(';');
            let protocol = parts.next().unwrap_or_default().trim();
            if !protocol.eq_ignore_ascii_case("SIP") {
                return None;
            }
            parts.find_map(|param| {
                let (name, value) = param.split_once('=')?;
                if !name.trim().eq_ignore_ascii_case("cause") {
                    return None;
                }
                match value.trim().trim_matches('"') {
                    "200" => Some(EndReason::AnsweredElsewhere),
                    "600" | "603" => Some(EndReason::DeclinedElsewhere),
                    _ => None,
                }
            })
        })
}

/// The state a call is in after `update` (DTMF changes nothing; nothing follows `Ended`).
fn next_state(state: &CallState, update: &CallUpdate) -> CallState {
    if state.is_ended() {
        return state.clone();
    }
    match update {
        CallUpdate::Incoming { .. } => CallState::Incoming,
        CallUpdate::Dialing { .. } => CallState::Calling,
        CallUpdate::Ringing => CallState::Ringing,
        CallUpdate::EarlyMedia => CallState::EarlyMedia,
        CallUpdate::Answered { codec, srtp } => CallState::Active {
            codec: codec.clone(),
            srtp: *srtp,
            on_hold: false,
        },
        CallUpdate::Hold { on_hold } => match state {
            CallState::Active { codec, srtp, .. } => CallState::Active {
                codec: codec.clone(),
                srtp: *srtp,
                on_hold: *on_hold,
            },
            other => other.clone(),
        },
        CallUpdate::Dtmf { .. } | CallUpdate::MediaPath { .. } => state.clone(),
        CallUpdate::Ended { reason, quality } => CallState::Ended {
            reason: *reason,
            quality: quality.clone(),
        },
    }
}

fn valid_dtmf(digits: &str) -> bool {
    !digits.is_empty()
        && digits
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '*' | '#' | 'A'..='D' | 'a'..='d'))
}

impl Phone {
    fn call_mut(&mut self, id: CallId) -> Result<&mut CallEntry, PhoneError> {
        match self.calls.get_mut(&id) {
            Some(entry) if !entry.is_over() => Ok(entry),
            _ => Err(PhoneError::UnknownCall(id)),
        }
    }

    /// Applies an update to a call's state and tells the application.
    fn update_call(&mut self, now: Instant, id: CallId, update: CallUpdate) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        let state = next_state(&entry.state, &update);
        entry.state = state.clone();
        if entry.announced {
            self.emit(PhoneEvent::Call {
                call: id,
                update,
                state,
            });
            self.calls_changed(now);
        }
    }

    fn call_config(&self, account: AccountId, target: SipUri) -> Option<CallConfig> {
        let a = self.accounts.get(&account)?;
        let mut local = NameAddr::new(a.aor.clone());
        local.display = a.display_name.clone();
        let mut config = CallConfig::new(local, target, a.contact());
        config.credentials = a.credential_store();
        config.user_agent = USER_AGENT.to_string();
        config.timers = self.config.timers;
        config.session_expires = self
            .config
            .session_expires
            .map(|interval| interval.max(handset_sip::usage::invite::MIN_SESSION_EXPIRES));
        Some(config)
    }

    /// Offer/answer keys: SDES always; the DTLS fingerprint with ICE credentials when the
    /// media settings ask for DTLS-SRTP; else ICE credentials and `candidates` when some were
    /// gathered.
    fn call_keys(
        &mut self,
        media: &MediaConfig,
        rtp_local: SocketAddr,
        candidates: &[LocalCandidate],
    ) -> Result<(OfferKeys, Option<IceCredentials>), String> {
        let keys = OfferKeys::generate(&mut *self.rng);
        if media.srtp_mode != SrtpMode::Dtls || media.srtp == SrtpPolicy::Off {
            if candidates.is_empty() {
                return Ok((keys, None));
            }
            let credentials = new_ice_credentials(&mut *self.rng);
            let ice = ice_local(credentials.clone(), candidates);
            return Ok((keys.with_ice(ice), Some(credentials)));
        }
        let cert = self
            .config
            .dtls_cert
            .clone()
            .ok_or("DTLS-SRTP needs the phone's certificate")?;
        let local = dtls_offer_keys(&cert, rtp_local, &mut *self.rng).map_err(|e| e.to_string())?;
        let ice = local.ice.credentials.clone();
        Ok((keys.with_dtls(local), Some(ice)))
    }

    fn new_entry(
        &mut self,
        account: AccountId,
        direction: CallDirection,
        media_config: MediaConfig,
        log: CallLog,
    ) -> CallEntry {
        CallEntry {
            account,
            direction,
            sip: None,
            state: match direction {
                CallDirection::Incoming => CallState::Incoming,
                CallDirection::Outgoing => CallState::Calling,
            },
            announced: false,
            target: None,
            flow: None,
            media_config,
            identity: SessionIdentity::new(&mut *self.rng),
            keys: None,
            local_ice: None,
            rtp_local: None,
            candidates: Vec::new(),
            ice_controlling: false,
            ice_restarting: false,
            media: MediaPhase::None,
            local_offer: None,
            remote_offer: None,
            remote_sdp: None,
            negotiated: None,
            local_hold: false,
            moving: false,
            rebinding: false,
            invite_tx: None,
            log,
            local_reason: None,
            cancel_reason: None,
            ending: None,
            muted: false,
            dtmf: String::new(),
            report_id: ReportId::random(&mut *self.rng),
            ring_deadline: None,
            answer_pending: false,
            limiter: RateLimiter::call(),
            deferred: VecDeque::new(),
            invited: false,
        }
    }

    // ----- commands -----------------------------------------------------------------------

    pub(super) fn dial(
        &mut self,
        now: Instant,
        account: AccountId,
        target: &str,
        media: Option<MediaConfig>,
        report_id: Option<ReportId>,
    ) -> Result<CallId, PhoneError> {
        let target = self.target_uri(account, target)?;
        let media_config = match media {
            Some(m) => m,
            None => self
                .accounts
                .get(&account)
                .ok_or(PhoneError::UnknownAccount(account))?
                .media
                .clone(),
        };
        if media_config.srtp_mode == SrtpMode::Dtls
            && media_config.srtp != SrtpPolicy::Off
            && self.config.dtls_cert.is_none()
        {
            return Err(PhoneError::InvalidArgument(
                "DTLS-SRTP needs the phone's certificate".into(),
            ));
        }
        let to = target.to_string();
        let dialled = caller_number(&to);
        let remote_name = self.directory.caller(&dialled).contact_name;
        let log = CallLog {
            remote_number: dialled,
            remote_name,
            started: now,
            answered: None,
        };
        let mut entry = self.new_entry(account, CallDirection::Outgoing, media_config, log);
        entry.target = Some(target);
        entry.announced = true;
        if let Some(chosen) = report_id {
            entry.report_id = chosen;
        }
        let report_id = entry.report_id;
        let id = self.new_call_id();
        self.calls.insert(id, entry);
        tracing::info!(call = %id, account = %account, "dialing");
        self.update_call(
            now,
            id,
            CallUpdate::Dialing {
                account,
                to,
                report_id,
            },
        );
        self.advance_outgoing(now, id);
        Ok(id)
    }

    /// Takes an outgoing call as far as it can go: the account's flow first, then an RTP
    /// socket on our address there, then the INVITE with our offer.
    fn advance_outgoing(&mut self, now: Instant, id: CallId) {
        let Some(entry) = self.calls.get(&id) else {
            return;
        };
        if entry.sip.is_some() || entry.is_over() {
            return;
        }
        let account = entry.account;
        match entry.media {
            MediaPhase::None => {
                let peer = self
                    .accounts
                    .get(&account)
                    .and_then(|a| a.flow())
                    .filter(|_| self.account_local(account).is_some());
                match peer {
                    Some(flow) => {
                        if let Some(entry) = self.calls.get_mut(&id) {
                            entry.media = MediaPhase::Binding;
                        }
                        let ice = self.accounts.get(&account).and_then(|a| a.ice_gathering());
                        self.outputs.push_back(Output::BindMedia {
                            call: id,
                            peer: flow.remote,
                            ice,
                        });
                    }
                    None => self.open_account_flow(account),
                }
            }
            MediaPhase::Bound => self.send_invite(now, id),
            _ => {}
        }
    }

    fn send_invite(&mut self, now: Instant, id: CallId) {
        let Some(entry) = self.calls.get(&id) else {
            return;
        };
        let (Some(rtp_local), Some(target)) = (entry.rtp_local, entry.target.clone()) else {
            return;
        };
        let (account, media_config) = (entry.account, entry.media_config.clone());
        let candidates = entry.candidates.clone();
        let sdp_address = default_address(&candidates, rtp_local);
        let (keys, local_ice) = match self.call_keys(&media_config, rtp_local, &candidates) {
            Ok(found) => found,
            Err(error) => {
                tracing::warn!(call = %id, %error, "no keys for the call");
                self.finish_call(now, id, EndReason::Failed { status: None });
                return;
            }
        };
        let Some(config) = self.call_config(account, target) else {
            self.finish_call(now, id, EndReason::Failed { status: None });
            return;
        };
        let rng = self.child_rng();
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        let offer = create_offer(&media_config, sdp_address, &mut entry.identity, &keys);
        entry.sip = Some(Call::outgoing(config, offer.print().into_bytes(), now, rng));
        entry.local_offer = Some(offer);
        entry.keys = Some(keys);
        entry.local_ice = local_ice;
        entry.ice_controlling = true;
    }

    pub(super) fn answer(
        &mut self,
        now: Instant,
        id: CallId,
        media: Option<MediaConfig>,
    ) -> Result<(), PhoneError> {
        let entry = self.call_mut(id)?;
        let ringing = entry.direction == CallDirection::Incoming
            && entry.sip.as_ref().map(Call::state) == Some(SipState::Incoming);
        if !ringing || entry.answer_pending {
            return Err(PhoneError::CallState(
                id,
                "only a ringing incoming call can be answered".into(),
            ));
        }
        if let Some(media) = media {
            entry.media_config = media;
        }
        entry.answer_pending = true;
        entry.ring_deadline = None;
        match entry.media {
            MediaPhase::Bound => self.send_answer(now, id),
            MediaPhase::None => {
                entry.media = MediaPhase::Binding;
                let peer = entry.flow.map(|f| f.remote);
                let account = entry.account;
                let ice = self.accounts.get(&account).and_then(|a| a.ice_gathering());
                match peer {
                    Some(peer) => self.outputs.push_back(Output::BindMedia {
                        call: id,
                        peer,
                        ice,
                    }),
                    None => self.refuse_answer(now, id, "no flow for the call"),
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Answers once the RTP socket is there: our answer to the peer's offer, or our offer in
    /// the 2xx of an offerless INVITE.
    fn send_answer(&mut self, now: Instant, id: CallId) {
        let Some(entry) = self.calls.get(&id) else {
            return;
        };
        let Some(rtp_local) = entry.rtp_local else {
            return;
        };
        let media_config = entry.media_config.clone();
        let candidates = entry.candidates.clone();
        let sdp_address = default_address(&candidates, rtp_local);
        let (keys, local_ice) = match self.call_keys(&media_config, rtp_local, &candidates) {
            Ok(found) => found,
            Err(error) => {
                self.refuse_answer(now, id, &error);
                return;
            }
        };
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        let mut keys = keys;
        entry.answer_pending = false;
        entry.local_ice = local_ice;
        // Answering an offer, we are controlled; offering in the 2xx, we control.
        entry.ice_controlling = entry.remote_offer.is_none();
        let result = match entry.remote_offer.take() {
            Some(offer) => {
                match answer(
                    &offer,
                    &entry.media_config,
                    sdp_address,
                    &mut entry.identity,
                    &mut keys,
                    &mut *self.rng,
                ) {
                    Ok((sdp, negotiated)) => {
                        entry.remote_sdp = Some(offer);
                        entry.keys = Some(keys);
                        match entry
                            .sip
                            .as_mut()
                            .map(|s| s.answer(now, sdp.print().into_bytes()))
                        {
                            Some(Ok(())) => Ok(Some(negotiated)),
                            Some(Err(e)) => Err(e.to_string()),
                            None => Err("no session".into()),
                        }
                    }
                    Err(e) => Err(e.to_string()),
                }
            }
            None => {
                let offer =
                    create_offer(&entry.media_config, sdp_address, &mut entry.identity, &keys);
                entry.keys = Some(keys);
                let sent = entry
                    .sip
                    .as_mut()
                    .map(|s| s.answer(now, offer.print().into_bytes()));
                entry.local_offer = Some(offer);
                match sent {
                    Some(Ok(())) => Ok(None),
                    Some(Err(e)) => Err(e.to_string()),
                    None => Err("no session".into()),
                }
            }
        };
        if result.is_ok()
            && let Some(entry) = self.calls.get_mut(&id)
        {
            // The user answered here: whatever happens to the ACK, this call was not missed.
            entry.log.answered.get_or_insert(now);
        }
        match result {
            Ok(Some(negotiated)) => self.start_media(id, negotiated),
            Ok(None) => {}
            Err(error) => self.refuse_answer(now, id, &error),
        }
    }

    /// The answer could not be made: the call is refused instead.
    fn refuse_answer(&mut self, now: Instant, id: CallId, error: &str) {
        tracing::warn!(call = %id, %error, "call not answered");
        if let Some(entry) = self.calls.get_mut(&id) {
            entry.answer_pending = false;
            entry.local_reason = Some(EndReason::Failed { status: Some(500) });
            if let Some(sip) = entry.sip.as_mut()
                && sip.reject(now, 500).is_ok()
            {
                return;
            }
        }
        self.finish_call(now, id, EndReason::Failed { status: Some(500) });
    }

    pub(super) fn reject(
        &mut self,
        now: Instant,
        id: CallId,
        status: u16,
    ) -> Result<(), PhoneError> {
        if !(400..=699).contains(&status) {
            return Err(PhoneError::InvalidArgument(format!(
                "reject status {status} is not 400..699"
            )));
        }
        let entry = self.call_mut(id)?;
        let sip = entry
            .sip
            .as_mut()
            .ok_or_else(|| PhoneError::CallState(id, "not an incoming call".into()))?;
        sip.reject(now, status)
            .map_err(|e| PhoneError::CallState(id, e.to_string()))?;
        entry.local_reason = Some(EndReason::Declined);
        entry.answer_pending = false;
        Ok(())
    }

    pub(super) fn hangup(&mut self, now: Instant, id: CallId) -> Result<(), PhoneError> {
        let entry = self.call_mut(id)?;
        let Some(sip) = entry.sip.as_mut() else {
            // The INVITE never went out.
            self.finish_call(now, id, EndReason::Cancelled);
            return Ok(());
        };
        let refused =
            |e: handset_sip::usage::invite::CallError| PhoneError::CallState(id, e.to_string());
        if sip.is_outgoing() {
            sip.hangup(now)
                .or_else(|_| sip.cancel(now))
                .map_err(refused)?;
        } else if sip.hangup(now).is_err() {
            sip.reject(now, 486).map_err(refused)?;
            entry.local_reason = Some(EndReason::Declined);
        }
        Ok(())
    }

    pub(super) fn dtmf(&mut self, id: CallId, digits: &str) -> Result<(), PhoneError> {
        if !valid_dtmf(digits) {
            return Err(PhoneError::InvalidArgument(format!(
                "DTMF digits {digits:?}"
            )));
        }
        let entry = self.call_mut(id)?;
        if entry.media == MediaPhase::Running {
            self.outputs.push_back(Output::Media {
                call: id,
                command: MediaCommand::Dtmf(digits.to_string()),
            });
        } else {
            entry.dtmf.push_str(digits);
        }
        Ok(())
    }

    pub(super) fn hold(
        &mut self,
        now: Instant,
        id: CallId,
        on_hold: bool,
    ) -> Result<(), PhoneError> {
        let entry = self.call_mut(id)?;
        let (Some(rtp_local), Some(keys)) = (entry.sdp_address(), entry.keys.as_ref()) else {
            return Err(PhoneError::CallState(
                id,
                "the call has no media yet".into(),
            ));
        };
        // Hold is `inactive`: Handset plays no music on hold, so nothing flows either way
        // until the call is resumed (RFC 3264 §8.4).
        let config = entry.media_config.clone().with_direction(if on_hold {
            Direction::Inactive
        } else {
            Direction::SendRecv
        });
        let offer = create_offer(&config, rtp_local, &mut entry.identity, keys);
        let bytes = offer.print().into_bytes();
        let sip = entry
            .sip
            .as_mut()
            .ok_or_else(|| PhoneError::CallState(id, "the call has no session yet".into()))?;
        let result = if on_hold {
            sip.hold(now, bytes)
        } else {
            sip.resume(now, bytes)
        };
        result.map_err(|e| PhoneError::CallState(id, e.to_string()))?;
        entry.local_offer = Some(offer);
        Ok(())
    }

    pub(super) fn mute(&mut self, id: CallId, muted: bool) -> Result<(), PhoneError> {
        let entry = self.call_mut(id)?;
        entry.muted = muted;
        if entry.media == MediaPhase::Running {
            self.outputs.push_back(Output::Media {
                call: id,
                command: MediaCommand::Mute(muted),
            });
        }
        Ok(())
    }

    // ----- network and media inputs -------------------------------------------------------

    /// Outgoing calls of the account whose INVITE has not gone out yet.
    fn calls_waiting_for(&self, account: AccountId) -> Vec<CallId> {
        self.calls
            .iter()
            .filter(|(_, c)| c.account == account && c.sip.is_none() && !c.is_over())
            .map(|(id, _)| *id)
            .collect()
    }

    /// The account's flow is up: outgoing calls waiting for it go on, and calls affected by a
    /// network change carry on (see `network.rs`).
    pub(super) fn account_flow_ready(&mut self, now: Instant, account: AccountId) {
        for id in self.calls_waiting_for(account) {
            self.advance_outgoing(now, id);
        }
        self.calls_flow_ready(account);
    }

    /// The account's server cannot be reached: outgoing calls waiting for it end.
    pub(super) fn account_calls_unreachable(&mut self, now: Instant, account: AccountId) {
        for id in self.calls_waiting_for(account) {
            self.finish_call(now, id, EndReason::NetworkLost);
        }
    }

    pub(super) fn handle_media_bound(
        &mut self,
        now: Instant,
        id: CallId,
        result: Result<BoundMedia, String>,
    ) {
        let Some(entry) = self.calls.get_mut(&id) else {
            // The call is gone: release the socket.
            self.outputs.push_back(Output::Media {
                call: id,
                command: MediaCommand::Stop,
            });
            return;
        };
        if entry.rebinding {
            entry.rebinding = false;
            match result {
                Ok(bound) => self.move_call(now, id, bound),
                // The old socket still runs: the call goes on as it was.
                Err(error) => tracing::warn!(call = %id, %error, "no RTP socket to move to"),
            }
            return;
        }
        match result {
            Ok(bound) => {
                entry.rtp_local = Some(bound.local);
                entry.candidates = bound.candidates;
                entry.media = MediaPhase::Bound;
                if entry.is_over() {
                    self.stop_media(now, id);
                } else if entry.direction == CallDirection::Outgoing {
                    self.send_invite(now, id);
                } else if entry.answer_pending {
                    self.send_answer(now, id);
                }
            }
            Err(error) => {
                tracing::warn!(call = %id, %error, "no RTP socket");
                entry.media = MediaPhase::None;
                if entry.direction == CallDirection::Outgoing {
                    self.finish_call(now, id, EndReason::Failed { status: None });
                } else {
                    self.refuse_answer(now, id, &error);
                }
            }
        }
    }

    pub(super) fn handle_media_event(&mut self, now: Instant, id: CallId, event: MediaEvent) {
        match event {
            MediaEvent::Dtmf { digit } => {
                if self.calls.contains_key(&id) {
                    // DTMF changes no state; no clock needed.
                    self.emit_call_update(id, CallUpdate::Dtmf { digit });
                }
            }
            MediaEvent::Latched { remote } => {
                tracing::debug!(call = %id, %remote, "media latched to the peer's source");
            }
            MediaEvent::IceState(state) => {
                tracing::debug!(call = %id, ?state, "ICE");
            }
            MediaEvent::PathSelected { relayed, .. } => {
                tracing::info!(call = %id, relayed, "ICE chose the media path");
                self.emit_call_update(id, CallUpdate::MediaPath { relayed });
            }
            MediaEvent::RelayFailed(error) => {
                tracing::warn!(call = %id, %error, "the TURN relay failed");
            }
            MediaEvent::Connected => tracing::info!(call = %id, "media connected"),
            MediaEvent::Failed(failure) => {
                self.handle_media_failed(now, id, &failure.to_string());
            }
            MediaEvent::Closed => tracing::info!(call = %id, "the peer closed the media session"),
        }
    }

    /// Reports an update that changes no state (a DTMF digit, the media path) for a call the
    /// application knows and that has not ended.
    fn emit_call_update(&mut self, id: CallId, update: CallUpdate) {
        if let Some(entry) = self.calls.get(&id)
            && entry.announced
            && !entry.state.is_ended()
        {
            let state = entry.state.clone();
            self.emit(PhoneEvent::Call {
                call: id,
                update,
                state,
            });
        }
    }

    pub(super) fn handle_media_failed(&mut self, now: Instant, id: CallId, error: &str) {
        tracing::warn!(call = %id, %error, "media failed");
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        if entry.is_over() {
            return;
        }
        entry.media = MediaPhase::Stopped;
        entry.local_reason = Some(EndReason::Failed { status: None });
        let ended = match entry.sip.as_mut() {
            Some(sip) => sip
                .hangup(now)
                .or_else(|_| sip.cancel(now))
                .or_else(|_| sip.reject(now, 500))
                .is_err(),
            None => true,
        };
        if ended {
            self.finish_call(now, id, EndReason::Failed { status: None });
        }
    }

    pub(super) fn handle_media_stopped(
        &mut self,
        now: Instant,
        id: CallId,
        quality: Option<CallQuality>,
    ) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        if matches!(entry.media, MediaPhase::Stopping { .. }) {
            entry.media = MediaPhase::Stopped;
            if let Some(reason) = entry.ending {
                self.complete_end(now, id, reason, quality);
            }
        }
    }

    /// Media that does not stop in time: the call is reported ended without statistics.
    pub(super) fn media_stop_timeouts(&mut self, now: Instant) {
        let late: Vec<(CallId, EndReason)> = self
            .calls
            .iter_mut()
            .filter_map(|(id, c)| match c.media {
                MediaPhase::Stopping { deadline } if deadline <= now => {
                    c.media = MediaPhase::Stopped;
                    c.ending.map(|r| (*id, r))
                }
                _ => None,
            })
            .collect();
        for (id, reason) in late {
            tracing::warn!(call = %id, "media did not stop in time");
            self.complete_end(now, id, reason, None);
        }
    }

    /// Incoming calls nobody answered in time are refused with 480.
    pub(super) fn ring_timeouts(&mut self, now: Instant) {
        for (id, entry) in &mut self.calls {
            if entry.ring_deadline.is_some_and(|d| d <= now) {
                entry.ring_deadline = None;
                if let Some(sip) = entry.sip.as_mut()
                    && sip.state() == SipState::Incoming
                    && !entry.answer_pending
                    && sip.reject(now, 480).is_ok()
                {
                    tracing::info!(call = %id, "nobody answered: refused with 480");
                    entry.local_reason = Some(EndReason::Unanswered);
                }
            }
        }
        let released: Vec<CallId> = self
            .calls
            .iter()
            .filter(|(_, c)| {
                !c.deferred.is_empty() && c.limiter.next_token_at().is_none_or(|at| at <= now)
            })
            .map(|(id, _)| *id)
            .collect();
        for id in released {
            self.release_deferred(now, id);
        }
    }

    // ----- incoming requests ----------------------------------------------------------------

    /// The live call an in-dialog request belongs to.
    pub(super) fn call_for_request(&self, request: &Request) -> Option<CallId> {
        self.calls
            .iter()
            .find(|(_, c)| c.sip.as_ref().is_some_and(|s| s.matches_request(request)))
            .map(|(id, _)| *id)
    }

    pub(super) fn call_request(
        &mut self,
        now: Instant,
        id: CallId,
        tx: TransactionId,
        request: Request,
        _from: Flow,
    ) {
        if let Some(sip) = self.calls.get_mut(&id).and_then(|c| c.sip.as_mut()) {
            sip.handle_request(now, tx, request);
        }
    }

    pub(super) fn handle_cancel(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        invite: TransactionId,
    ) {
        let target = self
            .calls
            .iter_mut()
            .find(|(_, c)| c.invite_tx == Some(invite));
        match target {
            Some((_, entry)) => {
                entry.cancel_reason = cancel_reason(&request);
                if let Some(sip) = entry.sip.as_mut() {
                    sip.handle_request(now, tx, request);
                }
            }
            None => self.respond(now, tx, final_response(&request, 481)),
        }
    }

    /// A new INVITE from an account's flow: the checks in order (call cap, blocklist,
    /// declined push, the offer), then it rings.
    pub(super) fn incoming_call(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: Request,
        from: Flow,
    ) {
        let Some(account) = self.account_for_request(from, &request) else {
            self.respond(now, tx, final_response(&request, 404));
            return;
        };
        let caller = request.headers.from().ok();
        let from_text = caller
            .as_ref()
            .map(|c| c.uri.to_string())
            .unwrap_or_default();
        let number = caller_number(&from_text);
        let display_name = caller.as_ref().and_then(|c| c.display.clone());
        let live = self.calls.values().filter(|c| !c.is_over()).count();
        if live >= self.config.max_calls {
            tracing::info!(account = %account, live, "as many calls as the phone takes: 486");
            self.respond(now, tx, final_response(&request, 486));
            self.record_unanswered(now, account, &number, display_name, EndReason::Busy);
            return;
        }
        let info = self.directory.caller(&number);
        if info.blocked {
            tracing::info!(account = %account, "blocked caller refused with 603");
            self.respond(now, tx, final_response(&request, 603));
            self.outputs
                .push_back(Output::Store(Record::BlockedAttempt {
                    number: number.clone(),
                    at: now,
                }));
            self.emit(PhoneEvent::CallBlocked {
                account,
                from: from_text,
            });
            return;
        }
        let sip_call_id = request.headers.call_id().unwrap_or_default().to_string();
        if self.push.declined(&sip_call_id) {
            // Declined on the ringing screen before the INVITE arrived.
            self.respond(now, tx, final_response(&request, 603));
            return;
        }
        let caller_uri = caller
            .as_ref()
            .and_then(|c| c.uri.as_sip().cloned())
            .unwrap_or_else(|| SipUri::new(None, Host::Domain("invalid".into())));
        let Some(config) = self.call_config(account, caller_uri) else {
            self.respond(now, tx, final_response(&request, 500));
            return;
        };
        let media_config = self
            .accounts
            .get(&account)
            .map(|a| a.media.clone())
            .unwrap_or_default();
        // Refuse what we cannot answer before anyone is alerted.
        let refusal = if request.body.is_empty() {
            None
        } else {
            match SessionDescription::parse_bytes(&request.body) {
                // Unreadable SDP is not acceptable here (RFC 3261 §21.4.26).
                Err(_) => Some(488),
                Ok(offer) => self.check_offer(&offer, &media_config, from).err(),
            }
        };
        let body = request.body.clone();
        let rng = self.child_rng();
        let sip = match Call::incoming(request, tx, config, now, rng) {
            Ok(sip) => sip,
            Err(response) => {
                self.respond(now, tx, response);
                return;
            }
        };
        if let Some(status) = refusal {
            tracing::info!(account = %account, status, "unanswerable offer refused before ringing");
            let mut sip = sip;
            let _ = sip.reject(now, status);
            let mut entry = self.new_entry(
                account,
                CallDirection::Incoming,
                media_config,
                CallLog {
                    remote_number: number,
                    remote_name: None,
                    started: now,
                    answered: None,
                },
            );
            entry.sip = Some(sip);
            let id = self.new_call_id();
            self.calls.insert(id, entry);
            return;
        }
        let push_report = self.push.bind_invite(now, &sip_call_id, &number);
        let report_id = push_report.unwrap_or_else(|| ReportId::for_call_id(&sip_call_id));
        let contact_name = info.contact_name;
        let mut entry = self.new_entry(
            account,
            CallDirection::Incoming,
            media_config,
            CallLog {
                remote_number: number,
                remote_name: display_name.clone().or_else(|| contact_name.clone()),
                started: now,
                answered: None,
            },
        );
        entry.remote_offer = SessionDescription::parse_bytes(&body).ok();
        entry.flow = Some(from);
        entry.invite_tx = Some(tx);
        entry.report_id = report_id;
        entry.ring_deadline = Some(now + self.config.ring_timeout);
        entry.announced = true;
        let mut sip = sip;
        let _ = sip.ring(now);
        entry.sip = Some(sip);
        let id = self.new_call_id();
        self.calls.insert(id, entry);
        tracing::info!(call = %id, account = %account, pushed = push_report.is_some(), "incoming call");
        self.update_call(
            now,
            id,
            CallUpdate::Incoming {
                account,
                from: from_text,
                display_name,
                contact_name,
                report_id,
                pushed: push_report.is_some(),
                sip_call_id,
            },
        );
    }

    /// Whether we could answer this offer (with a placeholder address: only compatibility
    /// is checked); the SIP status of the refusal if not.
    fn check_offer(
        &mut self,
        offer: &SessionDescription,
        media: &MediaConfig,
        from: Flow,
    ) -> Result<(), u16> {
        let ip = self
            .flows
            .local(&from)
            .map(|a| a.ip())
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let placeholder = SocketAddr::new(ip, 9);
        let (mut keys, _) = self
            .call_keys(media, placeholder, &[])
            .map_err(|_| 488u16)?;
        let mut identity = SessionIdentity::new(&mut *self.rng);
        answer(
            offer,
            media,
            placeholder,
            &mut identity,
            &mut keys,
            &mut *self.rng,
        )
        .map(|_| ())
        .map_err(|e| e.sip_status())
    }

    /// An incoming call that never rang here goes into the history as missed.
    fn record_unanswered(
        &mut self,
        now: Instant,
        account: AccountId,
        number: &str,
        display_name: Option<String>,
        reason: EndReason,
    ) {
        let aor = self
            .accounts
            .get(&account)
            .map(|a| a.aor.to_string())
            .unwrap_or_default();
        self.outputs
            .push_back(Output::Store(Record::Call(CallRecord {
                direction: CallDirection::Incoming,
                remote_number: number.to_string(),
                remote_name: display_name,
                account: aor,
                started: now,
                answered: None,
                ended: now,
                reason,
            })));
    }

    pub(super) fn call_response(
        &mut self,
        now: Instant,
        id: CallId,
        tx: TransactionId,
        response: handset_sip::message::Response,
    ) {
        let Some(entry) = self.calls.get(&id) else {
            return;
        };
        let account = entry.account;
        let out_of_dialog = entry.sip.as_ref().is_some_and(|s| s.dialog().is_none());
        self.vet_challenge(account, &response, out_of_dialog);
        if let Some(sip) = self.calls.get_mut(&id).and_then(|c| c.sip.as_mut()) {
            sip.handle_response(now, tx, response);
        }
    }

    // ----- the call machines' outputs -------------------------------------------------------

    /// Drains every call's outputs. Returns whether there were any.
    pub(super) fn pump_calls(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            while let Some(output) = self
                .calls
                .get_mut(&id)
                .and_then(|c| c.sip.as_mut())
                .and_then(Call::poll_output)
            {
                progressed = true;
                self.handle_call_output(now, id, output);
            }
        }
        progressed
    }

    fn handle_call_output(&mut self, now: Instant, id: CallId, output: CallOutput) {
        match output {
            CallOutput::SendRequest { handle, request } => {
                self.send_call_request(now, id, handle, request);
            }
            CallOutput::SendCancel { invite } => {
                let Some(cancel) = self
                    .layer
                    .request(invite)
                    .and_then(|r| cancel_request(r).ok())
                else {
                    return;
                };
                let Some(flow) = self.transactions.get(&invite).map(|(_, f)| *f) else {
                    return;
                };
                match self.layer.send_request(now, cancel, flow, flow.reliable()) {
                    Ok(tx) => {
                        self.transactions.insert(tx, (Owner::Nobody, flow));
                    }
                    Err(error) => tracing::warn!(%error, "CANCEL not sent"),
                }
            }
            CallOutput::SendResponse { tx, response } => {
                if self.layer.send_response(now, tx, response.clone()).is_err() {
                    let flow = self.calls.get(&id).and_then(|c| {
                        c.flow
                            .or_else(|| self.accounts.get(&c.account).and_then(|a| a.flow()))
                    });
                    if let Some(flow) = flow {
                        self.layer.send_stateless(
                            flow,
                            flow.reliable(),
                            Message::Response(response),
                        );
                    }
                }
            }
            CallOutput::SendAck(mut request) => {
                let Some(account) = self.calls.get(&id).map(|c| c.account) else {
                    return;
                };
                let flow = self.accounts.get(&account).and_then(|a| a.flow());
                let local = self.account_local(account);
                if let (Some(flow), Some(local)) = (flow, local) {
                    let branch = new_branch(&mut self.rng);
                    request.headers.push_front(
                        HeaderName::Via,
                        format!(
                            "SIP/2.0/{} {local};branch={branch};rport",
                            flow.transport.via_name()
                        ),
                    );
                    self.layer
                        .send_stateless(flow, flow.reliable(), Message::Request(request));
                } else {
                    tracing::info!(call = %id, "ACK not sent: the account's flow is down");
                }
            }
            CallOutput::Event(event) => self.handle_call_event(now, id, event),
        }
    }

    /// Sends a call's request over its account's flow. The first INVITE, ACK-like clean-up
    /// (BYE, CANCEL, PRACK) go at once; everything else the call sends on its own draws from
    /// the call's token bucket.
    fn send_call_request(
        &mut self,
        now: Instant,
        id: CallId,
        handle: RequestHandle,
        request: Request,
    ) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        let first_invite = request.method == Method::Invite && !entry.invited;
        if request.method == Method::Invite {
            entry.invited = true;
        }
        let exempt =
            first_invite || matches!(request.method, Method::Bye | Method::Cancel | Method::Prack);
        if !exempt && (!entry.deferred.is_empty() || !entry.limiter.try_take(now)) {
            entry.deferred.push_back((handle, request));
            return;
        }
        let account = entry.account;
        self.send_request(now, account, Owner::Call(id), Some(handle), request, false);
    }

    fn release_deferred(&mut self, now: Instant, id: CallId) {
        loop {
            let Some(entry) = self.calls.get_mut(&id) else {
                return;
            };
            if entry.deferred.is_empty() || !entry.limiter.try_take(now) {
                return;
            }
            let Some((handle, request)) = entry.deferred.pop_front() else {
                return;
            };
            let account = entry.account;
            self.send_request(now, account, Owner::Call(id), Some(handle), request, false);
        }
    }

    fn negotiate_remote_answer(&mut self, id: CallId, sdp: &[u8]) -> Option<Negotiated> {
        let entry = self.calls.get_mut(&id)?;
        let offer = entry.local_offer.as_ref()?;
        let keys = entry.keys.as_mut()?;
        let remote = SessionDescription::parse_bytes(sdp).ok()?;
        match process_answer(offer, &remote, &entry.media_config, keys, &mut *self.rng) {
            Ok(negotiated) => {
                entry.remote_sdp = Some(remote);
                Some(negotiated)
            }
            Err(error) => {
                tracing::info!(call = %id, %error, "unusable SDP answer");
                None
            }
        }
    }

    fn handle_call_event(&mut self, now: Instant, id: CallId, event: CallEvent) {
        match event {
            CallEvent::Ringing => {
                if self
                    .calls
                    .get(&id)
                    .is_some_and(|c| matches!(c.state, CallState::Calling))
                {
                    self.update_call(now, id, CallUpdate::Ringing);
                }
            }
            CallEvent::EarlyMedia { sdp } => {
                if let Some(negotiated) = self.negotiate_remote_answer(id, &sdp) {
                    self.start_media(id, negotiated);
                    self.update_call(now, id, CallUpdate::EarlyMedia);
                }
            }
            CallEvent::Answered { sdp } => {
                if let Some(sdp) = sdp {
                    match self.negotiate_remote_answer(id, &sdp) {
                        Some(negotiated) => self.start_media(id, negotiated),
                        None => {
                            // RFC 3261 §13.2.1: a bad answer is ACKed, then the call is ended.
                            if let Some(entry) = self.calls.get_mut(&id) {
                                entry.local_reason = Some(EndReason::Failed { status: None });
                                if let Some(sip) = entry.sip.as_mut() {
                                    let _ = sip.hangup(now);
                                }
                            }
                            return;
                        }
                    }
                }
                self.report_answered(now, id);
            }
            CallEvent::Confirmed => {
                if self
                    .calls
                    .get(&id)
                    .is_some_and(|c| c.direction == CallDirection::Incoming)
                {
                    self.report_answered(now, id);
                }
            }
            CallEvent::RemoteOffer { sdp } => self.answer_reoffer(now, id, &sdp),
            CallEvent::OfferRequested => {
                if let Some(entry) = self.calls.get_mut(&id)
                    && let (Some(rtp_local), Some(keys)) =
                        (entry.sdp_address(), entry.keys.as_ref())
                {
                    let offer =
                        create_offer(&entry.media_config, rtp_local, &mut entry.identity, keys);
                    if let Some(sip) = entry.sip.as_mut() {
                        let _ = sip.accept_offer(now, offer.print().into_bytes());
                    }
                    entry.local_offer = Some(offer);
                }
            }
            CallEvent::RemoteAnswer { sdp } => {
                if let Some(negotiated) = self.negotiate_remote_answer(id, &sdp) {
                    self.apply_negotiation(now, id, negotiated);
                }
            }
            CallEvent::HoldChanged { local_hold } => {
                let remote_hold = match self.calls.get_mut(&id) {
                    Some(entry) => {
                        entry.local_hold = local_hold;
                        entry.negotiated.as_ref().is_some_and(|n| n.hold)
                    }
                    None => return,
                };
                self.update_call(
                    now,
                    id,
                    CallUpdate::Hold {
                        on_hold: local_hold || remote_hold,
                    },
                );
            }
            CallEvent::Dtmf { digit, .. } => self.emit_call_update(id, CallUpdate::Dtmf { digit }),
            CallEvent::Ended { reason: sip_reason } => {
                let reason = self.classify_end(id, &sip_reason);
                tracing::debug!(call = %id, %sip_reason, %reason, "the session ended");
                self.finish_call(now, id, reason);
            }
            CallEvent::OfferRejected { status } => {
                // Our hold or resume was refused: the call stays as it was, and the
                // application hears that state again (a UI that toggled early turns back).
                tracing::info!(call = %id, status, "the peer refused our renegotiation");
                let held = self.calls.get(&id).map(|entry| {
                    entry.local_hold || entry.negotiated.as_ref().is_some_and(|n| n.hold)
                });
                if let Some(on_hold) = held
                    && self
                        .calls
                        .get(&id)
                        .is_some_and(|c| matches!(c.state, CallState::Active { .. }))
                {
                    self.update_call(now, id, CallUpdate::Hold { on_hold });
                }
            }
            CallEvent::Trying
            | CallEvent::SessionRefreshed { .. }
            | CallEvent::Redirected { .. } => {}
        }
    }

    fn report_answered(&mut self, now: Instant, id: CallId) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        if matches!(entry.state, CallState::Active { .. }) {
            return;
        }
        entry.log.answered.get_or_insert(now);
        entry.ring_deadline = None;
        let Some(negotiated) = entry.negotiated.as_ref() else {
            return;
        };
        let update = CallUpdate::Answered {
            codec: negotiated.codec.name.clone(),
            srtp: negotiated.srtp.is_some() || negotiated.dtls.is_some(),
        };
        let held = negotiated.hold || entry.local_hold;
        self.update_call(now, id, update);
        if held {
            self.update_call(now, id, CallUpdate::Hold { on_hold: true });
        }
    }

    /// A re-INVITE (or UPDATE) offer: answer it with our settings and apply it to the media.
    fn answer_reoffer(&mut self, now: Instant, id: CallId, sdp: &[u8]) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        let offer = SessionDescription::parse_bytes(sdp);
        let before_restart = entry.ice_state();
        // The peer restarted ICE (new credentials in its offer): so do we (RFC 8839 §4.4.1.1.1).
        if let Ok(offer) = &offer
            && entry.uses_ice()
            && let Some(m) = offer
                .media
                .get(entry.negotiated.as_ref().map_or(0, |n| n.media_index))
        {
            let remote = offer.ice_credentials_for(m);
            if remote.is_some() && remote != entry.negotiated.as_ref().and_then(|n| n.ice.clone()) {
                let credentials = new_ice_credentials(&mut *self.rng);
                let candidates = entry.ice_candidates();
                entry.new_ice(credentials, candidates);
                entry.ice_restarting = true;
            }
        }
        let (Some(rtp_local), Some(keys)) = (entry.sdp_address(), entry.keys.as_mut()) else {
            if let Some(sip) = entry.sip.as_mut() {
                let _ = sip.reject_offer(now, 488);
            }
            return;
        };
        let rng = &mut *self.rng;
        let result = offer.map_err(|_| 400).and_then(|offer| {
            answer(
                &offer,
                &entry.media_config,
                rtp_local,
                &mut entry.identity,
                keys,
                rng,
            )
            .map(|(sdp, negotiated)| (offer, sdp, negotiated))
            .map_err(|e| e.sip_status())
        });
        match result {
            Ok((offer, answer_sdp, negotiated)) => {
                if let Some(sip) = entry.sip.as_mut() {
                    let _ = sip.accept_offer(now, answer_sdp.print().into_bytes());
                }
                entry.remote_sdp = Some(offer);
                self.apply_negotiation(now, id, negotiated);
            }
            Err(status) => {
                if let Some(sip) = entry.sip.as_mut() {
                    let _ = sip.reject_offer(now, status);
                }
                // The offer is refused: no restart after all.
                entry.restore_ice(before_restart);
            }
        }
    }

    /// A renegotiation settled: the media follows, and a change of hold is reported.
    fn apply_negotiation(&mut self, now: Instant, id: CallId, negotiated: Negotiated) {
        let Some(entry) = self.calls.get(&id) else {
            return;
        };
        let was_held = entry.negotiated.as_ref().is_some_and(|n| n.hold) || entry.local_hold;
        let held = negotiated.hold || entry.local_hold;
        let active = matches!(entry.state, CallState::Active { .. });
        self.start_media(id, negotiated);
        if active && held != was_held {
            self.update_call(now, id, CallUpdate::Hold { on_hold: held });
        }
    }

    /// Starts the call's media with what was negotiated, or updates it when it runs.
    fn start_media(&mut self, id: CallId, negotiated: Negotiated) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        if entry.media == MediaPhase::Running {
            entry.negotiated = Some(negotiated.clone());
            let restart = match (entry.ice_restarting, entry.rtp_local) {
                (true, Some(local)) => self.restart_plan(id).map(|ice| (local, ice)),
                _ => None,
            };
            let command = match restart {
                Some((local, ice)) => MediaCommand::RestartIce {
                    negotiated: Box::new(negotiated),
                    local,
                    ice: Box::new(ice),
                },
                None => MediaCommand::Update(Box::new(negotiated)),
            };
            if let Some(entry) = self.calls.get_mut(&id) {
                entry.ice_restarting = false;
            }
            self.outputs.push_back(Output::Media { call: id, command });
            return;
        }
        let Some(local) = entry.rtp_local.filter(|_| entry.media == MediaPhase::Bound) else {
            tracing::warn!(call = %id, "media cannot start without its socket");
            return;
        };
        let dtls = match (&negotiated.dtls, &self.config.dtls_cert, &entry.local_ice) {
            (Some(_), Some(cert), Some(ice)) => Some(DtlsPlan {
                cert: cert.clone(),
                local_ice: ice.clone(),
                remote_description: entry.remote_sdp.clone(),
            }),
            (Some(_), _, _) => {
                tracing::warn!(call = %id, "DTLS-SRTP negotiated without local keys");
                return;
            }
            (None, _, _) => None,
        };
        let ice = self.ice_plan(id, &negotiated);
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        let plan = MediaPlan {
            negotiated: negotiated.clone(),
            local,
            stream: StreamStart::random(&mut *self.rng),
            cname: format!("handset-{:016x}", self.rng.next_u64()),
            dtls,
            ice,
            muted: entry.muted,
            dtmf: std::mem::take(&mut entry.dtmf),
        };
        entry.media = MediaPhase::Running;
        entry.negotiated = Some(negotiated);
        self.outputs.push_back(Output::Media {
            call: id,
            command: MediaCommand::Start(Box::new(plan)),
        });
    }

    /// The ICE part of a call's media plan: for a plain RTP or SDES-SRTP negotiation of a call
    /// with gathered candidates.
    fn ice_plan(&self, id: CallId, negotiated: &Negotiated) -> Option<IcePlan> {
        let entry = self.calls.get(&id)?;
        if negotiated.dtls.is_some() || entry.candidates.is_empty() {
            return None;
        }
        self.restart_plan(id)
    }

    /// Our ICE parameters for a call's media to run or restart ICE with.
    fn restart_plan(&self, id: CallId) -> Option<IcePlan> {
        let entry = self.calls.get(&id)?;
        let local_ice = entry.local_ice.clone()?;
        Some(IcePlan {
            local_ice,
            candidates: entry.ice_candidates(),
            controlling: entry.ice_controlling,
            policy: self
                .accounts
                .get(&entry.account)
                .map(|a| a.ice_policy())
                .unwrap_or_default(),
            remote_description: entry.remote_sdp.clone(),
        })
    }

    /// The SIP session's ending, in the one classification the application sees.
    fn classify_end(&self, id: CallId, reason: &SipEndReason) -> EndReason {
        let Some(entry) = self.calls.get(&id) else {
            return EndReason::Failed { status: None };
        };
        match reason {
            SipEndReason::LocalHangup => entry.local_reason.unwrap_or(EndReason::LocalHangup),
            SipEndReason::RemoteHangup => EndReason::RemoteHangup,
            SipEndReason::Cancelled => match entry.direction {
                CallDirection::Incoming => entry.cancel_reason.unwrap_or(EndReason::Cancelled),
                CallDirection::Outgoing => entry.local_reason.unwrap_or(EndReason::Cancelled),
            },
            SipEndReason::Rejected { status, .. } => EndReason::from_remote_status(*status),
            SipEndReason::RejectedLocally { status } => {
                entry.local_reason.unwrap_or(match status {
                    486 | 600 => EndReason::Busy,
                    603 => EndReason::Declined,
                    480 => EndReason::Unanswered,
                    status => EndReason::Failed {
                        status: Some(*status),
                    },
                })
            }
            SipEndReason::DialogGone => EndReason::Failed { status: Some(481) },
            SipEndReason::TooManyRedirects
            | SipEndReason::Authentication(_)
            | SipEndReason::Protocol(_) => EndReason::Failed { status: None },
            SipEndReason::Timeout
            | SipEndReason::TransportError
            | SipEndReason::AckTimeout
            | SipEndReason::PrackTimeout
            | SipEndReason::SessionExpired => EndReason::NetworkLost,
        }
    }

    /// The call is over for the user: stop its media, then report it.
    pub(super) fn finish_call(&mut self, now: Instant, id: CallId, reason: EndReason) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        if entry.is_over() {
            return;
        }
        tracing::info!(call = %id, %reason, "call ended");
        entry.ending = Some(reason);
        entry.ring_deadline = None;
        entry.answer_pending = false;
        entry.deferred.clear();
        match entry.media {
            MediaPhase::Bound | MediaPhase::Running => self.stop_media(now, id),
            // The socket's answer will find the call over and release it.
            MediaPhase::Binding => self.complete_end(now, id, reason, None),
            MediaPhase::None | MediaPhase::Stopped => self.complete_end(now, id, reason, None),
            MediaPhase::Stopping { .. } => {}
        }
    }

    fn stop_media(&mut self, now: Instant, id: CallId) {
        if let Some(entry) = self.calls.get_mut(&id) {
            entry.media = MediaPhase::Stopping {
                deadline: now + MEDIA_STOP_TIMEOUT,
            };
            self.outputs.push_back(Output::Media {
                call: id,
                command: MediaCommand::Stop,
            });
        }
    }

    /// Reports the end, with the media's final statistics, and writes the history.
    fn complete_end(
        &mut self,
        now: Instant,
        id: CallId,
        reason: EndReason,
        quality: Option<CallQuality>,
    ) {
        let Some(entry) = self.calls.get(&id) else {
            return;
        };
        if entry.state.is_ended() {
            return;
        }
        if entry.announced {
            let record = CallRecord {
                direction: entry.direction,
                remote_number: entry.log.remote_number.clone(),
                remote_name: entry.log.remote_name.clone(),
                account: self
                    .accounts
                    .get(&entry.account)
                    .map(|a| a.aor.to_string())
                    .unwrap_or_default(),
                started: entry.log.started,
                answered: entry.log.answered,
                ended: now,
                reason,
            };
            self.outputs.push_back(Output::Store(Record::Call(record)));
        }
        self.update_call(now, id, CallUpdate::Ended { reason, quality });
        if let Some(entry) = self.calls.get_mut(&id)
            && !entry.state.is_ended()
        {
            // Not announced: mark it ended all the same.
            entry.state = CallState::Ended {
                reason,
                quality: None,
            };
        }
    }

    /// Forgets calls that are over and have nothing left to send.
    pub(super) fn reap_calls(&mut self, _now: Instant) {
        self.calls.retain(|_, c| {
            let done = c.state.is_ended()
                && c.sip.as_ref().is_none_or(Call::is_terminated)
                && !matches!(c.media, MediaPhase::Stopping { .. } | MediaPhase::Binding);
            !done
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cancel_with(reason: &str) -> Request {
        let mut request = Request::new(
            Method::Cancel,
            handset_sip::message::Uri::parse("sip:a@example.com").unwrap(),
        );
        request
            .headers
            .push(HeaderName::Other("Reason".into()), reason);
        request
    }

    #[test]
    fn a_cancel_reason_says_where_the_call_went() {
        assert_eq!(
            cancel_reason(&cancel_with(
                "SIP;cause=200;text=\"Call completed elsewhere\""
            )),
            Some(EndReason::AnsweredElsewhere)
        );
        assert_eq!(
            cancel_reason(&cancel_with("Q.850;cause=16, SIP ; cause = 603")),
            Some(EndReason::DeclinedElsewhere)
        );
        assert_eq!(cancel_reason(&cancel_with("SIP;cause=487")), None);
        assert_eq!(cancel_reason(&cancel_with("Q.850;cause=200")), None);
    }

    /// Regression: the run loop read the protocol with `reason[..3]`, which panicked on a
    /// `Reason` whose third byte fell inside a multi-byte character (`abé`), after which the
    /// phone answered nothing. The header is now read by splitting, never by byte index.
    #[test]
    fn a_reason_header_with_non_ascii_text_is_read_without_panicking() {
        for hostile in [
            "abé",
            "é",
            "SIé;cause=200",
            "SIP;cause=2é0",
            "ééé;;;=",
            ";",
            "",
        ] {
            assert_eq!(cancel_reason(&cancel_with(hostile)), None, "{hostile:?}");
        }
    }

    #[test]
    fn dtmf_digits_are_checked() {
        assert!(valid_dtmf("0123456789*#ABCDabcd"));
        assert!(!valid_dtmf(""));
        assert!(!valid_dtmf("12e"));
        assert!(!valid_dtmf("é"));
    }
}
