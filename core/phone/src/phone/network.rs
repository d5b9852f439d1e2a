//! A network change (Wi-Fi ↔ cellular, another Wi-Fi, a new address), in one place:
//!
//! 1. [`Command::NetworkChanged`](super::Command::NetworkChanged) arrives (from the app's
//!    network callbacks, or the runtime's route watcher on desktops).
//! 2. Every flow goes: connections are closed (what waited on them fails), UDP flows are
//!    opened again to learn our new address. Every account forgets its server's targets.
//! 3. Calls: answered calls are marked to move; unanswered outgoing calls are
//!    cancelled (their answer would go to the old network); ringing incoming calls stay.
//! 4. Accounts look their servers up again and register from the new address.
//! 5. When an account's flow is up ([`Phone::calls_flow_ready`]): ringing calls get the new
//!    Contact, moving calls a new RTP socket ([`Output::BindMedia`], with candidates gathered
//!    for calls that use ICE); once bound ([`Phone::move_call`]) a re-INVITE offers it from
//!    the new Contact and the media switches to it ([`MediaCommand::SwitchSocket`]), or, with
//!    ICE, the re-INVITE restarts ICE and its answer restarts the media's ICE on the new
//!    socket ([`MediaCommand::RestartIce`]). A peer restarting ICE in its re-INVITE gets an
//!    answer with our new credentials, and our media restarts too.

use std::time::Instant;

use handset_media::dtls_session::new_ice_credentials;
use handset_media::ice::{LocalCandidate, default_address};
use handset_media::sdp::{Direction, create_offer};

use super::calls::{CallEntry, MediaPhase};
use super::{
    AccountId, BoundMedia, CallDirection, CallId, CallState, EndReason, MediaCommand, Output, Phone,
};

impl Phone {
    /// See [`Command::NetworkChanged`](super::Command::NetworkChanged).
    pub(super) fn network_changed(&mut self, now: Instant) {
        tracing::info!("the network changed: opening flows and registering again");
        // Targets are looked up again on the new network; until then no account has a flow.
        self.forget_server_targets();
        for flow in self.flows.entries_list() {
            if flow.reliable() {
                // The connection ran over the old network: close it; what waited on it fails.
                self.drop_flow(now, flow, Some("the network changed".into()));
            } else {
                // A UDP flow needs no closing: it is opened again to learn our new address.
                // Its transactions go on (their retransmissions take the new route).
                self.flows_remove_quietly(flow);
            }
        }
        self.calls_network_changed(now);
        self.register_from_new_network(now);
    }

    /// The network changed. Answered calls move once their account's flow is up again (see
    /// [`Phone::move_call`]), restarting ICE when they use it (DTLS-SRTP calls always do).
    /// Outgoing calls not answered yet are cancelled and end as
    /// [`EndReason::NetworkLost`]: the answer would go where the INVITE came from, the old
    /// network, so the app dials again. Incoming calls still ringing stay: their Contact is
    /// renewed when the flow is up, and answering binds the media on the new network.
    fn calls_network_changed(&mut self, now: Instant) {
        let mut cancel = Vec::new();
        for (id, entry) in &mut self.calls {
            if entry.is_over() {
                continue;
            }
            match entry.state {
                CallState::Active { .. } if entry.media == MediaPhase::Running => {
                    entry.moving = true;
                }
                CallState::Calling | CallState::Ringing | CallState::EarlyMedia
                    if entry.direction == CallDirection::Outgoing && entry.sip.is_some() =>
                {
                    cancel.push(*id);
                }
                _ => {}
            }
        }
        for id in cancel {
            let Some(entry) = self.calls.get_mut(&id) else {
                continue;
            };
            entry.local_reason = Some(EndReason::NetworkLost);
            if let Some(sip) = entry.sip.as_mut()
                && sip.cancel(now).or_else(|_| sip.hangup(now)).is_err()
            {
                self.finish_call(now, id, EndReason::NetworkLost);
            }
        }
    }

    /// Moves a running call to the RTP socket just bound: a re-INVITE offers the new address
    /// from our new Contact (so the peer sends there, and in-dialog requests reach us, once it
    /// answers). Without ICE the media switches to the new socket at once; with ICE the offer
    /// restarts it (new credentials, the candidates gathered on the new network) and the media
    /// restarts ICE on the new socket when the answer comes ([`MediaCommand::RestartIce`]).
    pub(super) fn move_call(&mut self, now: Instant, id: CallId, bound: BoundMedia) {
        let Some(account) = self.calls.get(&id).map(|e| e.account) else {
            return;
        };
        let contact = self.accounts.get(&account).map(|a| a.contact());
        let credentials = new_ice_credentials(&mut *self.rng);
        let Some(entry) = self.calls.get_mut(&id) else {
            return;
        };
        let restart = entry.uses_ice();
        let before = entry.ice_state();
        if restart {
            // A DTLS-SRTP call's only candidate is its socket.
            let candidates = if entry.is_dtls() {
                vec![LocalCandidate::host(bound.local)]
            } else {
                bound.candidates
            };
            entry.new_ice(credentials, candidates);
        }
        let local = default_address(&entry.candidates, bound.local);
        let (Some(keys), Some(sip)) = (entry.keys.as_ref(), entry.sip.as_mut()) else {
            entry.restore_ice(before);
            return;
        };
        let direction = if entry.local_hold {
            Direction::Inactive
        } else {
            Direction::SendRecv
        };
        let config = entry.media_config.clone().with_direction(direction);
        let offer = create_offer(&config, local, &mut entry.identity, keys);
        if let Some(contact) = contact {
            sip.set_contact(contact);
        }
        if let Err(error) = sip.reinvite(now, Some(offer.print().into_bytes())) {
            // An offer of the peer's or ours is under way: the media stays on its socket, and
            // the move is tried again when the account's flow is next ready.
            tracing::info!(call = %id, %error, "the call cannot move yet");
            entry.restore_ice(before);
            entry.moving = true;
            return;
        }
        tracing::info!(call = %id, restart, "the call moves to the new network");
        entry.local_offer = Some(offer);
        entry.rtp_local = Some(bound.local);
        if restart {
            entry.ice_restarting = true;
        } else {
            self.outputs.push_back(Output::Media {
                call: id,
                command: MediaCommand::SwitchSocket,
            });
        }
    }

    /// The account's flow is up: after a network change, its ringing calls take the new
    /// Contact and its moving calls ask for their new RTP socket.
    pub(super) fn calls_flow_ready(&mut self, account: AccountId) {
        let affected = |c: &CallEntry| c.moving || c.state == CallState::Incoming;
        if !self
            .calls
            .values()
            .any(|c| c.account == account && affected(c))
        {
            return;
        }
        let Some(peer) = self
            .accounts
            .get(&account)
            .and_then(|a| a.flow())
            .filter(|_| self.account_local(account).is_some())
        else {
            // Resolved but not connected (an account that does not register has nothing
            // else to open its flow for): the new address comes with the flow.
            self.open_account_flow(account);
            return;
        };
        let contact = self.accounts.get(&account).map(|a| a.contact());
        for (id, entry) in &mut self.calls {
            if entry.account == account
                && entry.state == CallState::Incoming
                && let (Some(sip), Some(contact)) = (entry.sip.as_mut(), contact.clone())
            {
                // Still ringing: the answer names our address on the new network.
                sip.set_contact(contact);
            }
            if entry.account == account && entry.moving {
                entry.moving = false;
                entry.rebinding = true;
                // A call with ICE gathers candidates on the new network for its restart
                // (DTLS-SRTP has only its socket's).
                let ice = if entry.uses_ice() && !entry.is_dtls() {
                    self.accounts.get(&account).and_then(|a| a.ice_gathering())
                } else {
                    None
                };
                self.outputs.push_back(Output::BindMedia {
                    call: *id,
                    peer: peer.remote,
                    ice,
                });
            }
        }
    }
}
