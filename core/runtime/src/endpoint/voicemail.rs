//! Voicemail message-waiting indication in the run loop: one RFC 3842 `message-summary`
//! subscription (the sans-IO `handset_sip::usage::subscription` machine) per account that asks
//! for it, started once the account is registered (or at once for an account that does not
//! register). Counts go to the store and to the app as [`HandsetEvent::Voicemail`].

use std::time::Instant;

use handset_sip::message::Request;
use handset_sip::transaction::TransactionId;
use handset_sip::usage::subscription::{
    Subscription, SubscriptionConfig, SubscriptionEvent, SubscriptionOutput, TransactionFailure,
    stray_notify_response,
};
use rand::SeedableRng;
use rand::rngs::StdRng;

use super::{AccountId, HandsetEvent, Owner, RunLoop, USER_AGENT, local_contact, rewrite_contact};

impl RunLoop {
    /// Starts the account's voicemail subscription if it wants one and has none yet.
    pub(super) fn start_voicemail(&mut self, id: AccountId, now: Instant) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        if !account.voicemail || account.mwi.is_some() {
            return;
        }
        let mut config = SubscriptionConfig::message_summary(
            account.aor.clone(),
            account.registration.config().contact.clone(),
        );
        config.display_name = account.display_name.clone();
        config.user_agent = USER_AGENT.to_string();
        let mut subscription = Subscription::new(
            config,
            account.credentials.clone(),
            Box::new(StdRng::from_rng(&mut self.rng)),
        );
        subscription.start(now);
        account.mwi = Some(subscription);
    }

    /// Drains every voicemail subscription's outputs. Returns whether there were any.
    pub(super) async fn pump_voicemail(&mut self) -> bool {
        let mut progressed = false;
        let ids: Vec<AccountId> = self.accounts.keys().copied().collect();
        for id in ids {
            while let Some(output) = self
                .accounts
                .get_mut(&id)
                .and_then(|a| a.mwi.as_mut())
                .and_then(Subscription::poll_output)
            {
                progressed = true;
                match output {
                    SubscriptionOutput::Send(request) => {
                        self.send_subscription_request(id, request).await;
                    }
                    SubscriptionOutput::Event(event) => self.handle_subscription_event(id, event),
                }
            }
        }
        progressed
    }

    /// Sends a SUBSCRIBE over the account's flow, with our reachable Contact.
    async fn send_subscription_request(&mut self, id: AccountId, request: Request) {
        let sent = self
            .send_over_account(
                id,
                request,
                Owner::Subscription(id),
                |run, request, flow, local| {
                    reachable_contact(run, id, request, flow, local);
                },
            )
            .await;
        if let Some(account) = self.accounts.get_mut(&id) {
            account.mwi_tx = sent;
            if sent.is_none()
                && let Some(mwi) = account.mwi.as_mut()
            {
                mwi.handle_transaction_failure(Instant::now(), TransactionFailure::Transport);
            }
        }
    }

    fn handle_subscription_event(&mut self, id: AccountId, event: SubscriptionEvent) {
        match event {
            SubscriptionEvent::Notification(notification) => match notification.message_summary() {
                Ok(summary) => {
                    let voice = summary.voice.map(|c| (c.new, c.old)).unwrap_or_default();
                    if let (Some(store), Some(account)) = (&self.store, self.accounts.get(&id)) {
                        let aor = account.aor.to_string();
                        if let Err(error) = store.write(|tx| {
                            handset_store::voicemail::set_mwi(tx, &aor, voice.0, voice.1)
                        }) {
                            tracing::warn!(%error, "voicemail counts not stored");
                        }
                    }
                    self.emit(HandsetEvent::Voicemail {
                        account: id,
                        summary,
                    });
                }
                Err(error) => tracing::info!(%error, "unreadable message-summary ignored"),
            },
            SubscriptionEvent::Failed { reason, retry_in } => {
                tracing::info!(account = %id, %reason, ?retry_in, "voicemail subscription failed");
            }
            SubscriptionEvent::Terminated { reason } => {
                tracing::info!(account = %id, %reason, "voicemail subscription ended");
            }
            SubscriptionEvent::Subscribing
            | SubscriptionEvent::Accepted { .. }
            | SubscriptionEvent::Pending
            | SubscriptionEvent::Active { .. } => {}
        }
    }

    /// A final response or failure of a SUBSCRIBE transaction.
    pub(super) fn subscription_response(
        &mut self,
        id: AccountId,
        tx: TransactionId,
        result: Result<&handset_sip::message::Response, TransactionFailure>,
        now: Instant,
    ) {
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        let Some(mwi) = account.mwi.as_mut() else {
            return;
        };
        match result {
            Ok(response) => mwi.handle_response(now, response),
            // A failure carries no CSeq: only the current transaction's counts.
            Err(failure) if account.mwi_tx == Some(tx) => {
                account.mwi_tx = None;
                mwi.handle_transaction_failure(now, failure);
            }
            Err(_) => {}
        }
    }

    /// An out-of-call NOTIFY: answered by the subscription it belongs to, else 481.
    pub(super) fn handle_notify(&mut self, tx: TransactionId, request: &Request, now: Instant) {
        let response = self
            .accounts
            .values_mut()
            .filter_map(|a| a.mwi.as_mut())
            .find(|mwi| mwi.matches_request(request))
            .map(|mwi| mwi.handle_notify(now, request))
            .unwrap_or_else(|| stray_notify_response(request));
        if let Err(error) = self.layer.send_response(now, tx, response) {
            tracing::debug!(%error, "NOTIFY response not sent");
        }
    }
}

/// Puts our address on `flow` in the request's Contact (the subscription was made before the
/// flow's local address was known).
fn reachable_contact(
    run: &RunLoop,
    id: AccountId,
    request: &mut Request,
    flow: &crate::transport::Flow,
    local: std::net::SocketAddr,
) {
    if let Some(account) = run.accounts.get(&id) {
        rewrite_contact(
            request,
            &local_contact(&account.user, flow.transport, local),
        );
    }
}
