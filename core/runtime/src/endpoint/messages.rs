//! Instant messages (RFC 3428 page mode) in the run loop: one `OutgoingMessage` machine per
//! message sent, answered to the caller of [`super::Handset::send_message`] when it is
//! delivered or fails; received MESSAGEs become [`HandsetEvent::MessageReceived`].

use std::time::Instant;

use handset_sip::message::{NameAddr, Request};
use handset_sip::transaction::TransactionId;
use handset_sip::usage::message::{
    MessageOutput, OutgoingMessage, incoming_response, read_incoming,
};
use handset_sip::usage::registration::TransactionFailure;
use rand::SeedableRng;
use rand::rngs::StdRng;
use tokio::sync::oneshot;

use super::{AccountId, HandsetError, HandsetEvent, Owner, RunLoop, USER_AGENT, add_to_tag};
use handset_phone::push::caller_number;

/// A message on its way.
pub(super) struct Outgoing {
    account: AccountId,
    machine: OutgoingMessage,
    reply: Option<oneshot::Sender<Result<(), HandsetError>>>,
}

impl RunLoop {
    /// Starts sending `text` from `account` to `target`; `reply` hears the outcome.
    pub(super) fn send_message(
        &mut self,
        account: AccountId,
        target: &str,
        text: &str,
        reply: oneshot::Sender<Result<(), HandsetError>>,
    ) {
        let to = match self.target_uri(account, target) {
            Ok(to) => to,
            Err(e) => {
                let _ = reply.send(Err(e));
                return;
            }
        };
        let Some(a) = self.accounts.get(&account) else {
            let _ = reply.send(Err(HandsetError::UnknownAccount(account)));
            return;
        };
        let mut from = NameAddr::new(a.aor.clone());
        from.display = a.display_name.clone();
        let machine = match OutgoingMessage::new(
            from,
            to,
            text,
            USER_AGENT,
            a.credentials.clone(),
            Box::new(StdRng::from_rng(&mut self.rng)),
        ) {
            Ok(m) => m,
            Err(e) => {
                let _ = reply.send(Err(HandsetError::InvalidMessage(e.to_string())));
                return;
            }
        };
        let id = self.next_message;
        self.next_message += 1;
        let mut outgoing = Outgoing {
            account,
            machine,
            reply: Some(reply),
        };
        outgoing.machine.start();
        self.messages.insert(id, outgoing);
    }

    /// Drains the outgoing messages' outputs. Returns whether there were any.
    pub(super) async fn pump_messages(&mut self) -> bool {
        let mut progressed = false;
        let ids: Vec<u64> = self.messages.keys().copied().collect();
        for id in ids {
            while let Some(output) = self
                .messages
                .get_mut(&id)
                .and_then(|m| m.machine.poll_output())
            {
                progressed = true;
                match output {
                    MessageOutput::Send(request) => self.send_message_request(id, request).await,
                    MessageOutput::Delivered => self.finish_message(id, Ok(())),
                    MessageOutput::Failed(failure) => {
                        self.finish_message(
                            id,
                            Err(HandsetError::MessageFailed(failure.to_string())),
                        );
                    }
                }
            }
        }
        progressed
    }

    fn finish_message(&mut self, id: u64, result: Result<(), HandsetError>) {
        if let Some(mut outgoing) = self.messages.remove(&id)
            && let Some(reply) = outgoing.reply.take()
        {
            let _ = reply.send(result);
        }
    }

    async fn send_message_request(&mut self, id: u64, request: Request) {
        let Some(account) = self.messages.get(&id).map(|m| m.account) else {
            return;
        };
        let sent = self
            .send_over_account(account, request, Owner::Message(id), |_, _, _, _| {})
            .await;
        if sent.is_none()
            && let Some(m) = self.messages.get_mut(&id)
        {
            m.machine
                .handle_transaction_failure(TransactionFailure::Transport);
        }
    }

    /// A final response or failure of a MESSAGE transaction.
    pub(super) fn message_response(
        &mut self,
        id: u64,
        result: Result<&handset_sip::message::Response, TransactionFailure>,
    ) {
        if let Some(m) = self.messages.get_mut(&id) {
            match result {
                Ok(response) => m.machine.handle_response(response),
                Err(failure) => m.machine.handle_transaction_failure(failure),
            }
        }
    }

    /// A MESSAGE outside any dialog: read it, answer it, tell the app. Blocked senders get
    /// 603 and nothing is reported.
    pub(super) fn handle_incoming_message(
        &mut self,
        tx: TransactionId,
        request: &Request,
        account: Option<AccountId>,
        now: Instant,
    ) {
        let status = match (account, read_incoming(request)) {
            (None, _) => 404,
            (Some(_), Err(status)) => status,
            (Some(account), Ok(message)) => {
                let number = caller_number(&message.from);
                if self.blocked(&number) {
                    603
                } else {
                    let contact_name = self.lookup_contact(&number);
                    self.emit(HandsetEvent::MessageReceived {
                        account,
                        from: message.from,
                        display_name: message.display_name,
                        contact_name,
                        text: message.text,
                    });
                    200
                }
            }
        };
        let mut response = incoming_response(request, status);
        add_to_tag(&mut response, &format!("m{}", self.next_message));
        if let Err(error) = self.layer.send_response(now, tx, response) {
            tracing::debug!(%error, "MESSAGE response not sent");
        }
    }
}
