//! One echo bot call: the UAS side of the `handset-sip` [`Call`] machine. It rings, answers
//! with a `handset-media` SDP answer after `answer_after`, and runs one media task per call: a tokio interval of 20 ms is the
//! audio clock; each tick feeds one capture frame to the [`MediaSession`] (the tone during
//! `tone_duration`, then the frame it played out on the previous tick, i.e. the echo) and
//! takes one playout frame out of it.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use handset_media::codec::sine;
use handset_media::rtcp::ntp_from_system_time;
use handset_media::sdp::{
    Negotiated, OfferKeys, SessionDescription, SessionIdentity, answer, create_offer,
    process_answer,
};
use handset_media::session::{
    DEVICE_FRAME, DEVICE_RATE, FRAME, MediaSession, MediaTime, SessionConfig, StreamStart,
};
use handset_sip::message::{Host, NameAddr, Request, Response, SipUri};
use handset_sip::transaction::TransactionId;
use handset_sip::usage::invite::{Call, CallConfig, CallEvent};
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use crate::{BotConfig, PbxEvent};

/// Peak amplitude of the greeting tone.
const TONE_AMPLITUDE: f64 = 8000.0;

/// The media task of one bot call.
struct MediaTask {
    updates: mpsc::UnboundedSender<Negotiated>,
    stop: Option<oneshot::Sender<()>>,
}

/// One call the bot takes.
pub(crate) struct BotCall {
    pub(crate) call: Call,
    pub(crate) invite_tx: TransactionId,
    pub(crate) answer_at: Option<Instant>,
    pub(crate) hangup_at: Option<Instant>,
    config: BotConfig,
    remote_offer: Option<SessionDescription>,
    local_offer: Option<SessionDescription>,
    identity: SessionIdentity,
    keys: OfferKeys,
    rtp_socket: Arc<UdpSocket>,
    rtp_local: SocketAddr,
    media: Option<MediaTask>,
    shutdown: watch::Receiver<()>,
    rng: StdRng,
    pub(crate) ended: bool,
}

fn bind_rtp(ip: IpAddr) -> std::io::Result<(Arc<UdpSocket>, SocketAddr)> {
    let socket = std::net::UdpSocket::bind(SocketAddr::new(ip, 0))?;
    socket.set_nonblocking(true)?;
    let local = socket.local_addr()?;
    Ok((Arc::new(UdpSocket::from_std(socket)?), local))
}

impl BotCall {
    /// Takes an INVITE for the bot. `Err` carries the response refusing it.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn incoming(
        request: Request,
        tx: TransactionId,
        config: &BotConfig,
        sip_local: SocketAddr,
        user_agent: &str,
        now: Instant,
        shutdown: watch::Receiver<()>,
    ) -> Result<BotCall, Response> {
        let mut rng = StdRng::from_rng(&mut rand::rng());
        let mut me = SipUri::new(Some(&config.user), Host::from(sip_local.ip()));
        me.port = Some(sip_local.port());
        let mut local = NameAddr::new(me.clone());
        local.display = Some(config.display_name.clone());
        let caller = request
            .headers
            .from()
            .ok()
            .and_then(|f| f.uri.as_sip().cloned())
            .unwrap_or_else(|| me.clone());
        let mut call_config = CallConfig::new(local, caller, me);
        call_config.user_agent = user_agent.to_string();
        call_config.supports_100rel = false;
        call_config.supports_timer = false;
        let body = request.body.clone();
        let call = Call::incoming(
            request.clone(),
            tx,
            call_config,
            now,
            Box::new(StdRng::from_rng(&mut rng)),
        )?;
        let (rtp_socket, rtp_local) =
            bind_rtp(sip_local.ip()).map_err(|_| Response::to_request(&request, 500))?;
        let identity = SessionIdentity::new(&mut rng);
        let keys = OfferKeys::generate(&mut rng);
        let mut bot = BotCall {
            call,
            invite_tx: tx,
            answer_at: None,
            hangup_at: None,
            config: config.clone(),
            remote_offer: None,
            local_offer: None,
            identity,
            keys,
            rtp_socket,
            rtp_local,
            media: None,
            shutdown,
            rng,
            ended: false,
        };
        // Check the offer now: one we cannot answer is refused before ringing.
        let refusal = if body.is_empty() {
            None
        } else {
            match SessionDescription::parse_bytes(&body) {
                Ok(offer) => {
                    // A dry run on copies: the real answer comes after `answer_after`.
                    let check = answer(
                        &offer,
                        &bot.config.media,
                        bot.rtp_local,
                        &mut bot.identity.clone(),
                        &mut bot.keys.clone(),
                        &mut bot.rng,
                    );
                    bot.remote_offer = Some(offer);
                    check.err().map(|e| e.sip_status())
                }
                Err(_) => Some(488),
            }
        };
        match refusal {
            Some(status) => {
                let _ = bot.call.reject(now, status);
            }
            None => {
                let _ = bot.call.ring(now);
                bot.answer_at = Some(now + config.answer_after);
            }
        }
        Ok(bot)
    }

    /// The earliest of the bot's own deadlines and its call's.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        [self.answer_at, self.hangup_at, self.call.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Fires the bot's due deadlines and the call's timers.
    pub(crate) fn handle_timeout(&mut self, now: Instant) -> Vec<PbxEvent> {
        let mut events = Vec::new();
        if self.answer_at.is_some_and(|at| at <= now) {
            self.answer_at = None;
            events.extend(self.answer(now));
        }
        if self.hangup_at.is_some_and(|at| at <= now) {
            self.hangup_at = None;
            let _ = self.call.hangup(now);
        }
        self.call.handle_timeout(now);
        events
    }

    fn answer(&mut self, now: Instant) -> Option<PbxEvent> {
        match self.remote_offer.take() {
            Some(offer) => {
                let result = answer(
                    &offer,
                    &self.config.media,
                    self.rtp_local,
                    &mut self.identity,
                    &mut self.keys,
                    &mut self.rng,
                );
                match result {
                    Ok((sdp, negotiated)) => {
                        if self.call.answer(now, sdp.print().into_bytes()).is_err() {
                            return None;
                        }
                        self.hangup_at = Some(now + self.config.max_duration);
                        let event = self.answered_event(&negotiated);
                        self.start_media(negotiated);
                        Some(event)
                    }
                    Err(e) => {
                        let _ = self.call.reject(now, e.sip_status());
                        None
                    }
                }
            }
            None => {
                // Offerless INVITE: our offer goes in the 200, the answer comes in the ACK.
                let offer = create_offer(
                    &self.config.media,
                    self.rtp_local,
                    &mut self.identity,
                    &self.keys,
                );
                if self.call.answer(now, offer.print().into_bytes()).is_ok() {
                    self.hangup_at = Some(now + self.config.max_duration);
                    self.local_offer = Some(offer);
                }
                None
            }
        }
    }

    fn answered_event(&self, negotiated: &Negotiated) -> PbxEvent {
        PbxEvent::BotAnswered {
            call_id: self.call.call_id().to_string(),
            codec: negotiated.codec.name.clone(),
            srtp: negotiated.srtp.is_some(),
        }
    }

    /// Reacts to what the call machine reports.
    pub(crate) fn handle_event(&mut self, now: Instant, event: CallEvent) -> Option<PbxEvent> {
        match event {
            CallEvent::RemoteOffer { sdp } => {
                let result = SessionDescription::parse_bytes(&sdp)
                    .map_err(|_| 488)
                    .and_then(|offer| {
                        answer(
                            &offer,
                            &self.config.media,
                            self.rtp_local,
                            &mut self.identity,
                            &mut self.keys,
                            &mut self.rng,
                        )
                        .map_err(|e| e.sip_status())
                    });
                match result {
                    Ok((sdp, negotiated)) => {
                        let _ = self.call.accept_offer(now, sdp.print().into_bytes());
                        self.start_media(negotiated);
                    }
                    Err(status) => {
                        let _ = self.call.reject_offer(now, status);
                    }
                }
                None
            }
            CallEvent::OfferRequested => {
                let offer = create_offer(
                    &self.config.media,
                    self.rtp_local,
                    &mut self.identity,
                    &self.keys,
                );
                let _ = self.call.accept_offer(now, offer.print().into_bytes());
                self.local_offer = Some(offer);
                None
            }
            CallEvent::RemoteAnswer { sdp } => {
                let offer = self.local_offer.take()?;
                let remote = SessionDescription::parse_bytes(&sdp).ok()?;
                match process_answer(
                    &offer,
                    &remote,
                    &self.config.media,
                    &mut self.keys,
                    &mut self.rng,
                ) {
                    Ok(negotiated) => {
                        let first = self.media.is_none();
                        let event = self.answered_event(&negotiated);
                        self.start_media(negotiated);
                        first.then_some(event)
                    }
                    Err(_) => {
                        let _ = self.call.hangup(now);
                        None
                    }
                }
            }
            CallEvent::Ended { .. } => {
                self.stop_media();
                self.answer_at = None;
                self.hangup_at = None;
                self.ended = true;
                Some(PbxEvent::BotEnded {
                    call_id: self.call.call_id().to_string(),
                })
            }
            _ => None,
        }
    }

    fn start_media(&mut self, negotiated: Negotiated) {
        if let Some(media) = &self.media {
            let _ = media.updates.send(negotiated);
            return;
        }
        let config = SessionConfig::new(
            self.rtp_local,
            StreamStart::random(&mut self.rng),
            format!("{}@handset-pbx", self.config.user),
        );
        // The bot has no DTLS certificate: a DTLS-SRTP negotiation fails here, and is logged.
        let session = match MediaSession::new(media_now(), &negotiated, config) {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "echo bot media did not start");
                return;
            }
        };
        let (updates, update_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel();
        tokio::spawn(run_media(
            self.rtp_socket.clone(),
            session,
            f64::from(self.config.tone_hz),
            self.config.tone_duration,
            update_rx,
            stop_rx,
            self.shutdown.clone(),
        ));
        self.media = Some(MediaTask {
            updates,
            stop: Some(stop),
        });
    }

    pub(crate) fn stop_media(&mut self) {
        if let Some(mut media) = self.media.take()
            && let Some(stop) = media.stop.take()
        {
            let _ = stop.send(());
        }
    }

    /// Whether the bot may forget this call.
    pub(crate) fn is_done(&self) -> bool {
        self.call.is_terminated() && self.media.is_none()
    }

    /// Whether `request` (in-dialog, or a retransmitted INVITE / CANCEL) belongs to this call.
    pub(crate) fn matches(&self, request: &Request) -> bool {
        self.call.matches_request(request)
    }
}

/// Reads both clocks a media session needs: monotonic time and the wall clock as NTP.
fn media_now() -> MediaTime {
    MediaTime::new(
        Instant::now(),
        ntp_from_system_time(SystemTime::now()).unwrap_or(0),
    )
}

/// The bot's audio loop: tone first, then the echo of what it plays out.
async fn run_media(
    socket: Arc<UdpSocket>,
    mut session: MediaSession,
    tone_hz: f64,
    tone_duration: Duration,
    mut updates: mpsc::UnboundedReceiver<Negotiated>,
    mut stop: oneshot::Receiver<()>,
    mut shutdown: watch::Receiver<()>,
) {
    let mut clock = tokio::time::interval(FRAME);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let tone_frames = (tone_duration.as_millis() / FRAME.as_millis().max(1)) as usize;
    let mut frames = 0usize;
    let mut echo: Vec<i16> = vec![0; DEVICE_FRAME];
    let mut buf = vec![0u8; 2048];
    loop {
        let timer = session.poll_timeout();
        let sleep = async {
            match timer {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = clock.tick() => {
                let now = media_now();
                let frame = if frames < tone_frames {
                    sine(tone_hz, DEVICE_RATE, TONE_AMPLITUDE, frames * DEVICE_FRAME, DEVICE_FRAME)
                } else {
                    echo.clone()
                };
                frames += 1;
                if let Err(error) = session.handle_capture(now, &frame) {
                    tracing::debug!(%error, "echo bot frame not sent");
                }
                echo.clear();
                session.playout(now, &mut echo);
            }
            received = socket.recv_from(&mut buf) => {
                if let Ok((len, from)) = received
                    && let Some(datagram) = buf.get(..len)
                {
                    session.handle_datagram(media_now(), from, datagram);
                }
            }
            update = updates.recv() => match update {
                Some(negotiated) => {
                    if let Err(error) = session.update(&negotiated) {
                        tracing::debug!(%error, "echo bot media update refused");
                    }
                }
                None => break,
            },
            _ = &mut stop => break,
            _ = shutdown.changed() => break,
            _ = sleep => session.handle_timeout(media_now()),
        }
        while let Some(transmit) = session.poll_transmit() {
            let _ = socket.send_to(&transmit.bytes, transmit.to).await;
        }
        while session.poll_event().is_some() {}
    }
}
