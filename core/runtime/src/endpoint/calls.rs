//! Calls in the run loop: the INVITE session machines of `handset-sip`, SDP offer/answer of
//! `handset-media`, and one media task per call.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use handset_media::dtls_session::{DtlsCert, dtls_offer_keys};
use handset_media::sdp::{IceCredentials, SrtpMode, SrtpPolicy};
use handset_media::sdp::{
    MediaConfig, Negotiated, OfferKeys, SessionDescription, SessionIdentity, answer, create_offer,
    process_answer,
};
use handset_media::session::{MediaEvent, MediaSession, SessionConfig, StreamStart};
use handset_sip::message::{HeaderName, Host, Message, NameAddr, Request, Response, SipUri, Uri};
use handset_sip::transaction::{TransactionId, cancel_request, new_branch};
use handset_sip::usage::invite::{Call, CallConfig, CallEvent, CallOutput};
use handset_store::history::Direction;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::UdpSocket;

use super::records::{CallSummary, unix_ms};
use super::{
    AccountId, CallAction, CallId, CallOptions, CallUpdate, HandsetError, HandsetEvent, Owner,
    RunLoop, USER_AGENT, answer_request, final_response, route_local_ip,
};
use crate::audio::AudioDevice;
use crate::media::{self, MediaHandle};
use crate::transport::Flow;
use handset_phone::push::caller_number;

/// One call known to the run loop.
pub(super) struct CallEntry {
    account: AccountId,
    pub(super) call: Call,
    media_config: MediaConfig,
    identity: SessionIdentity,
    keys: OfferKeys,
    rtp_socket: Arc<UdpSocket>,
    rtp_local: SocketAddr,
    /// Our last offer, until its answer arrives.
    local_offer: Option<SessionDescription>,
    /// The peer's offer in the INVITE, until we answer it.
    remote_offer: Option<SessionDescription>,
    /// The peer's last description (its ICE candidates for DTLS-SRTP).
    remote_sdp: Option<SessionDescription>,
    /// Our ICE credentials, for DTLS-SRTP calls.
    local_ice: Option<IceCredentials>,
    device: Option<Box<dyn AudioDevice>>,
    media: Option<MediaHandle>,
    negotiated: Option<Negotiated>,
    /// Where in-dialog requests and stateless responses go.
    flow: Flow,
    /// The INVITE server transaction of an incoming call (CANCEL matching).
    invite_tx: Option<TransactionId>,
    /// `Ended` was reported to the application.
    ended: bool,
    /// For the history.
    log: CallLog,
    /// The microphone is muted.
    muted: bool,
}

/// What the history needs to know about a call.
struct CallLog {
    direction: Direction,
    remote_number: String,
    remote_name: Option<String>,
    /// Unix ms.
    started_at: i64,
    /// Unix ms.
    answered_at: Option<i64>,
    /// The caller's CANCEL said another device answered (RFC 3326 `cause=200`).
    answered_elsewhere: bool,
    /// The user refused the incoming call here.
    declined: bool,
}

impl CallLog {
    fn new(direction: Direction, remote_number: String, remote_name: Option<String>) -> Self {
        CallLog {
            direction,
            remote_number,
            remote_name,
            started_at: unix_ms(),
            answered_at: None,
            answered_elsewhere: false,
            declined: false,
        }
    }
}

/// Whether a CANCEL says the call was answered on another device: RFC 3326
/// `Reason: SIP ;cause=200` (what forking proxies send, RFC 3261 §16.7 point 10).
fn cancel_says_answered_elsewhere(cancel: &Request) -> bool {
    cancel
        .headers
        .get_all(&HeaderName::Other("Reason".into()))
        .flat_map(|value| value.split(','))
        .any(|reason| {
            let reason = reason.trim();
            reason.len() >= 3
                && reason[..3].eq_ignore_ascii_case("SIP")
                && reason.split(';').skip(1).any(|param| {
                    param.split_once('=').is_some_and(|(k, v)| {
                        k.trim().eq_ignore_ascii_case("cause") && v.trim() == "200"
                    })
                })
        })
}

impl RunLoop {
    fn emit_call(&self, call: CallId, update: CallUpdate) {
        self.emit(HandsetEvent::Call { call, update });
    }

    /// The flow and local address for a call's requests: the account's current registrar
    /// or proxy, connected if it is TCP/TLS.
    pub(super) async fn account_flow(
        &mut self,
        account: AccountId,
    ) -> Result<(Flow, SocketAddr), HandsetError> {
        let a = self
            .accounts
            .get(&account)
            .ok_or(HandsetError::UnknownAccount(account))?;
        let target = a
            .target()
            .cloned()
            .ok_or_else(|| HandsetError::Dns("no server address".into()))?;
        let tls = a.tls.clone();
        let flow = Flow {
            transport: target.transport,
            remote: target.addr,
        };
        let local = self
            .transports
            .connect(flow, &target.host, tls)
            .await
            .map_err(|e| HandsetError::Io(e.to_string()))?;
        let ip = if local.ip().is_unspecified() {
            route_local_ip(target.addr).unwrap_or(local.ip())
        } else {
            local.ip()
        };
        Ok((flow, SocketAddr::new(ip, local.port())))
    }

    /// Sends `request` in a new client transaction of `owner` over the account's flow
    /// (connected if needed) with our Via on top; `prepare` may first fit it to the flow and
    /// local address (e.g. its Contact). `None` (logged) when it could not go out.
    pub(super) async fn send_over_account(
        &mut self,
        account: AccountId,
        mut request: Request,
        owner: Owner,
        prepare: impl FnOnce(&Self, &mut Request, &Flow, SocketAddr),
    ) -> Option<TransactionId> {
        let method = request.method.to_string();
        let (flow, local) = match self.account_flow(account).await {
            Ok(found) => found,
            Err(error) => {
                tracing::info!(%error, %method, "no route for the request");
                return None;
            }
        };
        prepare(self, &mut request, &flow, local);
        let via = self.via_for(&flow, local);
        request.headers.push_front(HeaderName::Via, via);
        match self
            .layer
            .send_request(Instant::now(), request, flow, flow.reliable())
        {
            Ok(tx) => {
                self.transactions.insert(tx, (owner, flow));
                Some(tx)
            }
            Err(error) => {
                tracing::warn!(%error, %method, "request not sent");
                None
            }
        }
    }

    pub(super) fn via_for(&mut self, flow: &Flow, local: SocketAddr) -> String {
        let branch = new_branch(&mut self.rng);
        format!(
            "SIP/2.0/{} {local};branch={branch};rport",
            flow.transport.as_str().to_ascii_uppercase()
        )
    }

    fn call_config(&self, account: AccountId, target: SipUri) -> Option<CallConfig> {
        let a = self.accounts.get(&account)?;
        let mut local = NameAddr::new(a.aor.clone());
        local.display = a.display_name.clone();
        let mut config = CallConfig::new(local, target, a.registration.config().contact.clone());
        config.credentials = a.credentials.clone();
        config.user_agent = USER_AGENT.to_string();
        Some(config)
    }

    pub(super) fn target_uri(
        &self,
        account: AccountId,
        target: &str,
    ) -> Result<SipUri, HandsetError> {
        let text = target.trim();
        if text.contains(':') {
            return match Uri::parse(text) {
                Ok(Uri::Sip(uri)) => Ok(uri),
                Ok(_) => Err(HandsetError::InvalidTarget(
                    "not a sip: or sips: URI".into(),
                )),
                Err(e) => Err(HandsetError::InvalidTarget(e.to_string())),
            };
        }
        let a = self
            .accounts
            .get(&account)
            .ok_or(HandsetError::UnknownAccount(account))?;
        let user: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        if user.is_empty() {
            return Err(HandsetError::InvalidTarget("empty".into()));
        }
        match Uri::parse(&format!("sip:{user}@{}", a.aor.host)) {
            Ok(Uri::Sip(uri)) => Ok(uri),
            _ => Err(HandsetError::InvalidTarget(
                "not a user name or number".into(),
            )),
        }
    }

    /// Offer/answer keys for a call: SDES keys always, DTLS fingerprint and ICE credentials
    /// when the media settings ask for DTLS-SRTP.
    fn call_keys(
        &mut self,
        config: &MediaConfig,
        rtp_local: SocketAddr,
    ) -> Result<(OfferKeys, Option<IceCredentials>), HandsetError> {
        let keys = OfferKeys::generate(&mut self.rng);
        if config.srtp_mode != SrtpMode::Dtls || config.srtp == SrtpPolicy::Off {
            return Ok((keys, None));
        }
        let cert = match &self.dtls_cert {
            Some(cert) => cert.clone(),
            None => {
                let cert =
                    Arc::new(DtlsCert::generate().map_err(|e| HandsetError::Tls(e.to_string()))?);
                self.dtls_cert = Some(cert.clone());
                cert
            }
        };
        let local = dtls_offer_keys(&cert, rtp_local, &mut self.rng)
            .map_err(|e| HandsetError::Tls(e.to_string()))?;
        let ice = local.ice.clone();
        Ok((keys.with_dtls(local), Some(ice)))
    }

    fn new_call_id(&mut self) -> CallId {
        let id = CallId(self.next_call);
        self.next_call += 1;
        id
    }

    pub(super) async fn start_call(
        &mut self,
        account: AccountId,
        target: &str,
        options: CallOptions,
        now: Instant,
    ) -> Result<CallId, HandsetError> {
        let target = self.target_uri(account, target)?;
        let dialled = caller_number(&target.to_string());
        let log = CallLog::new(
            Direction::Outgoing,
            dialled.clone(),
            self.lookup_contact(&dialled),
        );
        let media_config = match options.media {
            Some(m) => m,
            None => self
                .accounts
                .get(&account)
                .ok_or(HandsetError::UnknownAccount(account))?
                .media
                .clone(),
        };
        let (flow, local) = self.account_flow(account).await?;
        let (rtp_socket, rtp_local) = media::bind_rtp(local.ip())
            .await
            .map_err(|e| HandsetError::Io(e.to_string()))?;
        let mut identity = SessionIdentity::new(&mut self.rng);
        let (keys, local_ice) = self.call_keys(&media_config, rtp_local)?;
        let offer = create_offer(&media_config, rtp_local, &mut identity, &keys);
        let config = self
            .call_config(account, target)
            .ok_or(HandsetError::UnknownAccount(account))?;
        let call = Call::outgoing(
            config,
            offer.print().into_bytes(),
            now,
            Box::new(StdRng::from_rng(&mut self.rng)),
        );
        let id = self.new_call_id();
        self.calls.insert(
            id,
            CallEntry {
                account,
                call,
                media_config,
                identity,
                keys,
                rtp_socket,
                rtp_local,
                local_offer: Some(offer),
                remote_offer: None,
                remote_sdp: None,
                local_ice,
                device: Some(options.device),
                media: None,
                negotiated: None,
                flow,
                invite_tx: None,
                ended: false,
                log,
                muted: false,
            },
        );
        Ok(id)
    }

    pub(super) fn call_action(
        &mut self,
        id: CallId,
        action: CallAction,
        now: Instant,
    ) -> Result<(), HandsetError> {
        let entry = self
            .calls
            .get_mut(&id)
            .ok_or(HandsetError::UnknownCall(id))?;
        let refused =
            |e: handset_sip::usage::invite::CallError| HandsetError::CallState(id, e.to_string());
        match action {
            CallAction::Answer(options) => {
                if let Some(media) = options.media {
                    entry.media_config = media;
                }
                entry.device = Some(options.device);
                match entry.remote_offer.take() {
                    Some(offer) => {
                        entry.remote_sdp = Some(offer.clone());
                        let (sdp, negotiated) = answer(
                            &offer,
                            &entry.media_config,
                            entry.rtp_local,
                            &mut entry.identity,
                            &mut entry.keys,
                            &mut self.rng,
                        )
                        .map_err(|e| HandsetError::CallState(id, e.to_string()))?;
                        entry
                            .call
                            .answer(now, sdp.print().into_bytes())
                            .map_err(refused)?;
                        self.start_media(id, negotiated)?;
                    }
                    None => {
                        // Offerless INVITE: our offer goes in the 200, the answer in the ACK.
                        let offer = create_offer(
                            &entry.media_config,
                            entry.rtp_local,
                            &mut entry.identity,
                            &entry.keys,
                        );
                        entry
                            .call
                            .answer(now, offer.print().into_bytes())
                            .map_err(refused)?;
                        entry.local_offer = Some(offer);
                    }
                }
            }
            CallAction::Reject(status) => {
                entry.call.reject(now, status).map_err(refused)?;
                entry.log.declined = true;
            }
            CallAction::Hangup => {
                if entry.call.is_outgoing() {
                    entry
                        .call
                        .hangup(now)
                        .or_else(|_| entry.call.cancel(now))
                        .map_err(refused)?;
                } else if entry.call.hangup(now).is_err() {
                    entry.call.reject(now, 486).map_err(refused)?;
                    entry.log.declined = true;
                }
            }
            CallAction::Dtmf(digits) => match &entry.media {
                Some(media) => media.send_dtmf(&digits),
                None => return Err(HandsetError::CallState(id, "no media yet".into())),
            },
            CallAction::Mute(muted) => {
                entry.muted = muted;
                if let Some(media) = &entry.media {
                    media.set_muted(muted);
                }
            }
            CallAction::Hold(on_hold) => {
                // Hold is `inactive`: Handset plays no music on hold, so nothing flows either
                // way until the call is resumed (RFC 3264 §8.4).
                let config = entry.media_config.clone().with_direction(if on_hold {
                    handset_media::sdp::Direction::Inactive
                } else {
                    handset_media::sdp::Direction::SendRecv
                });
                let offer =
                    create_offer(&config, entry.rtp_local, &mut entry.identity, &entry.keys);
                let bytes = offer.print().into_bytes();
                if on_hold {
                    entry.call.hold(now, bytes).map_err(refused)?;
                } else {
                    entry.call.resume(now, bytes).map_err(refused)?;
                }
                entry.local_offer = Some(offer);
            }
        }
        Ok(())
    }

    fn start_media(&mut self, id: CallId, negotiated: Negotiated) -> Result<(), HandsetError> {
        let Some(entry) = self.calls.get_mut(&id) else {
            return Err(HandsetError::UnknownCall(id));
        };
        if let Some(media) = &entry.media {
            media.update(negotiated.clone());
            entry.negotiated = Some(negotiated);
            return Ok(());
        }
        let Some(device) = entry.device.take() else {
            return Err(HandsetError::Audio("no audio device for this call".into()));
        };
        let config = SessionConfig {
            local: entry.rtp_local,
            stream: StreamStart::random(&mut self.rng),
            cname: format!("handset-{}", id.0),
            dtls_certificate: self.dtls_cert.as_deref(),
            local_ice: entry.local_ice.clone(),
            remote_description: entry.remote_sdp.as_ref(),
        };
        let session = MediaSession::new(media::media_now(), &negotiated, config)
            .map_err(|e| HandsetError::CallState(id, e.to_string()))?;
        let events = self.media_events.clone();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(event) = rx.recv().await {
                if events.send((id, event)).is_err() {
                    return;
                }
            }
        });
        let handle = media::start(entry.rtp_socket.clone(), session, device, tx)
            .map_err(|e| HandsetError::Audio(e.to_string()))?;
        if entry.muted {
            handle.set_muted(true);
        }
        entry.media = Some(handle);
        entry.negotiated = Some(negotiated);
        Ok(())
    }

    pub(super) fn handle_media_event(&mut self, id: CallId, event: MediaEvent) {
        match event {
            MediaEvent::Dtmf { digit } => self.emit_call(id, CallUpdate::Dtmf { digit }),
            MediaEvent::Latched { remote } => {
                tracing::debug!(call = %id, %remote, "media latched to the peer's source");
            }
            other => tracing::info!(call = %id, event = ?other, "media connection"),
        }
    }

    pub(super) async fn handle_call_output(&mut self, id: CallId, output: CallOutput) {
        let now = Instant::now();
        match output {
            CallOutput::SendRequest { handle, request } => {
                let Some(account) = self.calls.get(&id).map(|c| c.account) else {
                    return;
                };
                let sent = self
                    .send_over_account(account, request, Owner::Call(id), |_, _, _, _| {})
                    .await;
                if let Some(entry) = self.calls.get_mut(&id) {
                    match sent {
                        Some(tx) => entry.call.request_sent(handle, tx),
                        None => entry.call.request_not_sent(now, handle),
                    }
                }
            }
            CallOutput::SendCancel { invite } => {
                let Some(cancel) = self
                    .layer
                    .request(invite)
                    .and_then(|r| cancel_request(r).ok())
                else {
                    return;
                };
                let flow = self.transactions.get(&invite).map(|(_, f)| *f);
                if let Some(flow) = flow {
                    match self.layer.send_request(now, cancel, flow, flow.reliable()) {
                        Ok(tx) => {
                            self.transactions.insert(tx, (Owner::Nobody, flow));
                        }
                        Err(error) => tracing::warn!(%error, "CANCEL not sent"),
                    }
                }
            }
            CallOutput::SendResponse { tx, response } => {
                if self.layer.send_response(now, tx, response.clone()).is_err()
                    && let Some(flow) = self.calls.get(&id).map(|c| c.flow)
                {
                    self.layer
                        .send_stateless(flow, flow.reliable(), Message::Response(response));
                }
            }
            CallOutput::SendAck(mut request) => {
                let Some(account) = self.calls.get(&id).map(|c| c.account) else {
                    return;
                };
                if let Ok((flow, local)) = self.account_flow(account).await {
                    let via = self.via_for(&flow, local);
                    request.headers.push_front(HeaderName::Via, via);
                    self.layer
                        .send_stateless(flow, flow.reliable(), Message::Request(request));
                }
            }
            CallOutput::Event(event) => self.handle_call_event(id, event, now).await,
        }
    }

    fn negotiate_remote_answer(&mut self, id: CallId, sdp: &[u8]) -> Option<Negotiated> {
        let entry = self.calls.get_mut(&id)?;
        let offer = entry.local_offer.as_ref()?;
        let remote = SessionDescription::parse_bytes(sdp).ok()?;
        match process_answer(
            offer,
            &remote,
            &entry.media_config,
            &mut entry.keys,
            &mut self.rng,
        ) {
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

    async fn handle_call_event(&mut self, id: CallId, event: CallEvent, now: Instant) {
        match event {
            CallEvent::Ringing => self.emit_call(id, CallUpdate::Ringing),
            CallEvent::EarlyMedia { sdp } => {
                if let Some(negotiated) = self.negotiate_remote_answer(id, &sdp)
                    && self.start_media(id, negotiated).is_ok()
                {
                    self.emit_call(id, CallUpdate::EarlyMedia);
                }
            }
            CallEvent::Answered { sdp } => {
                if let Some(sdp) = sdp {
                    match self.negotiate_remote_answer(id, &sdp) {
                        Some(negotiated) => {
                            if let Err(error) = self.start_media(id, negotiated) {
                                tracing::warn!(call = %id, %error, "media did not start");
                            }
                        }
                        None => {
                            // RFC 3261 §13.2.1: a bad answer is ACKed, then the call is ended.
                            if let Some(entry) = self.calls.get_mut(&id) {
                                let _ = entry.call.hangup(now);
                            }
                        }
                    }
                }
                self.report_answered(id);
            }
            CallEvent::Confirmed => {
                if self.calls.get(&id).is_some_and(|c| !c.call.is_outgoing()) {
                    self.report_answered(id);
                }
            }
            CallEvent::RemoteOffer { sdp } => self.answer_reoffer(id, &sdp, now),
            CallEvent::OfferRequested => {
                if let Some(entry) = self.calls.get_mut(&id) {
                    let offer = create_offer(
                        &entry.media_config,
                        entry.rtp_local,
                        &mut entry.identity,
                        &entry.keys,
                    );
                    let _ = entry.call.accept_offer(now, offer.print().into_bytes());
                    entry.local_offer = Some(offer);
                }
            }
            CallEvent::RemoteAnswer { sdp } => {
                if let Some(negotiated) = self.negotiate_remote_answer(id, &sdp) {
                    let _ = self.start_media(id, negotiated);
                }
            }
            CallEvent::HoldChanged { local_hold } => {
                self.emit_call(
                    id,
                    CallUpdate::Hold {
                        on_hold: local_hold,
                    },
                );
            }
            CallEvent::Dtmf { digit, .. } => self.emit_call(id, CallUpdate::Dtmf { digit }),
            CallEvent::Ended { reason } => {
                let media = self.calls.get_mut(&id).and_then(|c| {
                    c.ended = true;
                    c.media.take()
                });
                let quality = match media {
                    Some(media) => media.stop().await,
                    None => None,
                };
                let mut answered_elsewhere = false;
                if let Some(entry) = self.calls.get(&id) {
                    answered_elsewhere = entry.log.answered_elsewhere;
                    let summary = CallSummary {
                        direction: entry.log.direction,
                        remote_number: entry.log.remote_number.clone(),
                        remote_name: entry.log.remote_name.clone(),
                        account: self
                            .accounts
                            .get(&entry.account)
                            .map(|a| a.aor.to_string())
                            .unwrap_or_default(),
                        started_at: entry.log.started_at,
                        answered_at: entry.log.answered_at,
                        end_reason: reason.to_string(),
                        answered_elsewhere,
                        declined: entry.log.declined,
                    };
                    self.record_call(&summary);
                }
                self.emit_call(
                    id,
                    CallUpdate::Ended {
                        reason,
                        answered_elsewhere,
                        quality,
                    },
                );
            }
            CallEvent::Trying
            | CallEvent::OfferRejected { .. }
            | CallEvent::SessionRefreshed { .. }
            | CallEvent::Redirected { .. } => {}
        }
    }

    fn report_answered(&mut self, id: CallId) {
        if let Some(entry) = self.calls.get_mut(&id) {
            entry.log.answered_at.get_or_insert_with(unix_ms);
        }
        if let Some(negotiated) = self.calls.get(&id).and_then(|c| c.negotiated.as_ref()) {
            self.emit_call(
                id,
                CallUpdate::Answered {
                    codec: negotiated.codec.name.clone(),
                    srtp: negotiated.srtp.is_some() || negotiated.dtls.is_some(),
                },
            );
        }
    }

    /// A re-INVITE (or UPDATE) offer: answer it with our settings and apply it to the media.
    fn answer_reoffer(&mut self, id: CallId, sdp: &[u8], now: Instant) {
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        let result = SessionDescription::parse_bytes(sdp)
            .map_err(|_| 400)
            .and_then(|offer| {
                answer(
                    &offer,
                    &entry.media_config,
                    entry.rtp_local,
                    &mut entry.identity,
                    &mut entry.keys,
                    &mut self.rng,
                )
                .map_err(|e| e.sip_status())
            });
        match result {
            Ok((answer_sdp, negotiated)) => {
                let _ = entry
                    .call
                    .accept_offer(now, answer_sdp.print().into_bytes());
                let was_held = entry.negotiated.as_ref().is_some_and(|n| n.hold);
                let held = negotiated.hold;
                let _ = self.start_media(id, negotiated);
                if held != was_held {
                    self.emit_call(id, CallUpdate::Hold { on_hold: held });
                }
            }
            Err(status) => {
                let _ = entry.call.reject_offer(now, status);
            }
        }
    }

    /// Forgets a call once its machine is done.
    pub(super) fn reap_call(&mut self, id: CallId) {
        if self
            .calls
            .get(&id)
            .is_some_and(|c| c.call.is_terminated() && c.ended && c.media.is_none())
        {
            self.calls.remove(&id);
        }
    }

    /// A request that created a server transaction: in-dialog requests and CANCELs go to
    /// their call, a new INVITE becomes an incoming call, anything else is answered here.
    pub(super) fn handle_new_request(
        &mut self,
        tx: TransactionId,
        request: Request,
        from: Flow,
        cancels: Option<TransactionId>,
        now: Instant,
    ) {
        if request.method == handset_sip::message::Method::Notify {
            // Calls take no NOTIFY (no REFER yet): it belongs to a subscription or to nobody.
            self.handle_notify(tx, &request, now);
            return;
        }
        let target = match cancels {
            Some(invite) => self
                .calls
                .iter()
                .find(|(_, c)| c.invite_tx == Some(invite))
                .map(|(id, _)| *id),
            None => self
                .calls
                .iter()
                .find(|(_, c)| c.call.matches_request(&request))
                .map(|(id, _)| *id),
        };
        if let Some(id) = target {
            self.transactions.insert(tx, (Owner::Call(id), from));
            if let Some(entry) = self.calls.get_mut(&id) {
                if cancels.is_some() && cancel_says_answered_elsewhere(&request) {
                    entry.log.answered_elsewhere = true;
                }
                entry.call.handle_request(now, tx, request);
            }
            return;
        }
        let in_dialog = request.headers.to().is_ok_and(|to| to.tag().is_some());
        if request.method == handset_sip::message::Method::Message && !in_dialog {
            let account = self.account_for(&request);
            self.handle_incoming_message(tx, &request, account, now);
            return;
        }
        let response = match request.method {
            handset_sip::message::Method::Invite if !in_dialog => {
                self.incoming_call(tx, request, from, now);
                return;
            }
            handset_sip::message::Method::Options | handset_sip::message::Method::Invite
                if !in_dialog =>
            {
                answer_request(&request)
            }
            handset_sip::message::Method::Ack => return,
            _ if in_dialog
                || request.method == handset_sip::message::Method::Cancel
                || request.method == handset_sip::message::Method::Bye =>
            {
                Response::to_request(&request, 481)
            }
            _ => answer_request(&request),
        };
        if let Err(error) = self.layer.send_response(now, tx, response) {
            tracing::debug!(%error, "response not sent");
        }
    }

    /// The account a request is for: the one whose user it is addressed to (Request-URI, else
    /// To), else the only account.
    pub(super) fn account_for(&self, request: &Request) -> Option<AccountId> {
        let user = request.uri.as_sip().and_then(|u| u.user.clone());
        let to_user = request
            .headers
            .to()
            .ok()
            .and_then(|to| to.uri.as_sip().and_then(|u| u.user.clone()));
        self.accounts
            .iter()
            .find(|(_, a)| Some(&a.user) == user.as_ref() || Some(&a.user) == to_user.as_ref())
            .or_else(|| {
                (self.accounts.len() == 1)
                    .then(|| self.accounts.iter().next())
                    .flatten()
            })
            .map(|(id, _)| *id)
    }

    fn incoming_call(&mut self, tx: TransactionId, request: Request, from: Flow, now: Instant) {
        let Some(account) = self.account_for(&request) else {
            let _ = self
                .layer
                .send_response(now, tx, Response::to_request(&request, 404));
            return;
        };
        let caller = request.headers.from().ok();
        let from_text = caller
            .as_ref()
            .map(|c| c.uri.to_string())
            .unwrap_or_default();
        let caller_number = caller_number(&from_text);
        if self.blocked(&caller_number) {
            tracing::info!(account = %account, "blocked caller refused with 603");
            let _ = self
                .layer
                .send_response(now, tx, final_response(&request, 603));
            self.emit(HandsetEvent::CallBlocked {
                account,
                from: from_text,
            });
            return;
        }
        let sip_call_id = request.headers.call_id().unwrap_or_default().to_string();
        let push_report = {
            let mut push = super::push::lock(&self.push);
            if push.declined(&sip_call_id) {
                None
            } else {
                Some(push.bind_invite(now, &sip_call_id, &caller_number))
            }
        };
        let Some(push_report) = push_report else {
            // Declined on the ringing screen before the INVITE arrived.
            let _ = self
                .layer
                .send_response(now, tx, final_response(&request, 603));
            return;
        };
        let contact_name = self.lookup_contact(&caller_number);
        let caller_uri = caller
            .as_ref()
            .and_then(|c| c.uri.as_sip().cloned())
            .unwrap_or_else(|| SipUri::new(None, Host::Domain("invalid".into())));
        let Some(config) = self.call_config(account, caller_uri) else {
            return;
        };
        let local_ip = route_local_ip(from.remote).unwrap_or(from.remote.ip());
        let Ok(std_socket) = std::net::UdpSocket::bind(SocketAddr::new(local_ip, 0)) else {
            let _ = self
                .layer
                .send_response(now, tx, Response::to_request(&request, 500));
            return;
        };
        let rtp_local = match std_socket.local_addr() {
            Ok(a) => a,
            Err(_) => return,
        };
        let socket = match std_socket
            .set_nonblocking(true)
            .and_then(|_| UdpSocket::from_std(std_socket))
        {
            Ok(s) => Arc::new(s),
            Err(_) => {
                let _ = self
                    .layer
                    .send_response(now, tx, Response::to_request(&request, 500));
                return;
            }
        };
        let body = request.body.clone();
        let media_config = self
            .accounts
            .get(&account)
            .map(|a| a.media.clone())
            .unwrap_or_default();
        let identity = SessionIdentity::new(&mut self.rng);
        let (keys, local_ice) = match self.call_keys(&media_config, rtp_local) {
            Ok(k) => k,
            Err(_) => (OfferKeys::generate(&mut self.rng), None),
        };
        let call = match Call::incoming(
            request,
            tx,
            config,
            now,
            Box::new(StdRng::from_rng(&mut self.rng)),
        ) {
            Ok(call) => call,
            Err(response) => {
                let _ = self.layer.send_response(now, tx, response);
                return;
            }
        };
        let id = self.new_call_id();
        self.transactions.insert(tx, (Owner::Call(id), from));
        // Check the offer now: one we cannot answer is refused before anyone is alerted.
        let mut refusal = None;
        let remote_offer = if body.is_empty() {
            None
        } else {
            match SessionDescription::parse_bytes(&body) {
                Ok(offer) => {
                    // A dry run on copies: the real answer comes when the user answers.
                    if let Err(e) = answer(
                        &offer,
                        &media_config,
                        rtp_local,
                        &mut identity.clone(),
                        &mut keys.clone(),
                        &mut self.rng,
                    ) {
                        refusal = Some(e.sip_status());
                    }
                    Some(offer)
                }
                // Unreadable SDP is not acceptable here (RFC 3261 §21.4.26).
                Err(_) => {
                    refusal = Some(488);
                    None
                }
            }
        };
        let mut entry = CallEntry {
            account,
            call,
            media_config,
            identity,
            keys,
            rtp_socket: socket,
            rtp_local,
            local_offer: None,
            remote_offer,
            remote_sdp: None,
            local_ice,
            device: None,
            media: None,
            negotiated: None,
            flow: from,
            invite_tx: Some(tx),
            ended: false,
            muted: false,
            log: CallLog::new(
                Direction::Incoming,
                caller_number,
                caller
                    .as_ref()
                    .and_then(|c| c.display.clone())
                    .or_else(|| contact_name.clone()),
            ),
        };
        if let Some(status) = refusal {
            let _ = entry.call.reject(now, status);
            self.calls.insert(id, entry);
            return;
        }
        let _ = entry.call.ring(now);
        self.calls.insert(id, entry);
        self.emit_call(
            id,
            CallUpdate::Incoming {
                account,
                from: from_text,
                display_name: caller.and_then(|c| c.display),
                contact_name,
                push_report,
                sip_call_id,
            },
        );
    }
}
