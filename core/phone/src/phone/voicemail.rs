//! Voicemail message-waiting indication: one RFC 3842 `message-summary` subscription per
//! account that asks for it, started once the account is registered (or once its flow is up,
//! for an account that does not register). Counts go to the store and to the application.

use std::time::Instant;

use handset_sip::message::Request;
use handset_sip::transaction::TransactionId;
use handset_sip::usage::subscription::{
    Subscription, SubscriptionConfig, SubscriptionEvent, SubscriptionOutput, TransactionFailure,
    stray_notify_response,
};

use super::{AccountId, Output, Owner, Phone, PhoneEvent, Record, USER_AGENT};

impl Phone {
    /// Starts the account's voicemail subscription if it wants one and has none yet.
    pub(super) fn start_voicemail(&mut self, now: Instant, id: AccountId) {
        let rng = self.child_rng();
        let Some(account) = self.accounts.get_mut(&id) else {
            return;
        };
        if !account.voicemail || account.mwi.is_some() || account.removing {
            return;
        }
        let mut config =
            SubscriptionConfig::message_summary(account.aor.clone(), account.contact());
        config.display_name = account.display_name.clone();
        config.user_agent = USER_AGENT.to_string();
        let mut subscription = Subscription::new(config, account.credential_store(), rng);
        subscription.start(now);
        account.mwi = Some(subscription);
    }

    /// Drains every voicemail subscription's outputs. Returns whether there were any.
    pub(super) fn pump_voicemail(&mut self, now: Instant) -> bool {
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
                        self.send_request(now, id, Owner::Subscription(id), None, request, true);
                    }
                    SubscriptionOutput::Event(event) => self.subscription_event(id, event),
                }
            }
        }
        progressed
    }

    fn subscription_event(&mut self, id: AccountId, event: SubscriptionEvent) {
        match event {
            SubscriptionEvent::Notification(notification) => match notification.message_summary() {
                Ok(summary) => {
                    let voice = summary.voice.map(|c| (c.new, c.old)).unwrap_or_default();
                    if let Some(account) = self.accounts.get(&id) {
                        self.outputs.push_back(Output::Store(Record::Voicemail {
                            account: account.aor.to_string(),
                            new: voice.0,
                            old: voice.1,
                        }));
                    }
                    self.emit(PhoneEvent::Voicemail {
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
        now: Instant,
        id: AccountId,
        tx: TransactionId,
        result: Result<&handset_sip::message::Response, TransactionFailure>,
    ) {
        let out_of_dialog = self
            .accounts
            .get(&id)
            .and_then(|a| a.mwi.as_ref())
            .is_some_and(|m| m.dialog().is_none());
        if let Ok(response) = result {
            self.vet_challenge(id, response, out_of_dialog);
        }
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

    /// A NOTIFY: answered by the subscription it belongs to, else 481.
    pub(super) fn handle_notify(&mut self, now: Instant, tx: TransactionId, request: &Request) {
        let response = self
            .accounts
            .values_mut()
            .filter_map(|a| a.mwi.as_mut())
            .find(|mwi| mwi.matches_request(request))
            .map(|mwi| mwi.handle_notify(now, request))
            .unwrap_or_else(|| stray_notify_response(request));
        self.respond(now, tx, response);
    }
}
