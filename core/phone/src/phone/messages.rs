//! Instant messages (RFC 3428 page mode): one `OutgoingMessage` machine per message sent,
//! whose outcome becomes [`PhoneEvent::MessageDelivered`] or [`PhoneEvent::MessageFailed`];
//! received MESSAGEs become [`PhoneEvent::MessageReceived`] (blocked senders get 603).

use std::time::Instant;

use handset_sip::message::{NameAddr, Request, Response};
use handset_sip::transaction::TransactionId;
use handset_sip::transport::Flow;
use handset_sip::usage::message::{
    MessageOutput, OutgoingMessage, incoming_response, read_incoming,
};
use handset_sip::usage::registration::TransactionFailure;

use super::{
    AccountId, MessageId, Output, Owner, Phone, PhoneError, PhoneEvent, Record, USER_AGENT,
    add_to_tag,
};
use crate::push::caller_number;

/// A message on its way.
pub(super) struct OutgoingEntry {
    pub(super) account: AccountId,
    pub(super) machine: OutgoingMessage,
}

impl Phone {
    pub(super) fn send_message(
        &mut self,
        account: AccountId,
        target: &str,
        text: &str,
    ) -> Result<MessageId, PhoneError> {
        let to = self.target_uri(account, target)?;
        let a = self
            .accounts
            .get(&account)
            .ok_or(PhoneError::UnknownAccount(account))?;
        let mut from = NameAddr::new(a.aor.clone());
        from.display = a.display_name.clone();
        let credentials = a.credential_store();
        let mut machine =
            OutgoingMessage::new(from, to, text, USER_AGENT, credentials, self.child_rng())
                .map_err(|e| PhoneError::InvalidMessage(e.to_string()))?;
        machine.start();
        let id = MessageId(self.next_message);
        self.next_message += 1;
        self.messages.insert(id, OutgoingEntry { account, machine });
        Ok(id)
    }

    /// Drains the outgoing messages' outputs. Returns whether there were any.
    pub(super) fn pump_messages(&mut self, now: Instant) -> bool {
        let mut progressed = false;
        let ids: Vec<MessageId> = self.messages.keys().copied().collect();
        for id in ids {
            while let Some(output) = self
                .messages
                .get_mut(&id)
                .and_then(|m| m.machine.poll_output())
            {
                progressed = true;
                match output {
                    MessageOutput::Send(request) => {
                        let Some(account) = self.messages.get(&id).map(|m| m.account) else {
                            continue;
                        };
                        self.send_request(now, account, Owner::Message(id), None, request, false);
                    }
                    MessageOutput::Delivered => {
                        self.messages.remove(&id);
                        self.emit(PhoneEvent::MessageDelivered { message: id });
                    }
                    MessageOutput::Failed(failure) => {
                        self.messages.remove(&id);
                        self.emit(PhoneEvent::MessageFailed {
                            message: id,
                            reason: failure.to_string(),
                        });
                    }
                }
            }
        }
        progressed
    }

    /// A final response or failure of a MESSAGE transaction.
    pub(super) fn message_response(
        &mut self,
        id: MessageId,
        result: Result<&Response, TransactionFailure>,
    ) {
        let Some(account) = self.messages.get(&id).map(|m| m.account) else {
            return;
        };
        if let Ok(response) = result {
            self.vet_challenge(account, response, true);
        }
        if let Some(m) = self.messages.get_mut(&id) {
            match result {
                Ok(response) => m.machine.handle_response(response),
                Err(failure) => m.machine.handle_transaction_failure(failure),
            }
        }
    }

    /// A MESSAGE outside any dialog from an account's flow: read it, answer it, tell the app.
    pub(super) fn incoming_message(
        &mut self,
        now: Instant,
        tx: TransactionId,
        request: &Request,
        from: Flow,
    ) {
        let account = self.account_for_request(from, request);
        let status = match (account, read_incoming(request)) {
            (None, _) => 404,
            (Some(_), Err(status)) => status,
            (Some(account), Ok(message)) => {
                let number = caller_number(&message.from);
                let info = self.directory.caller(&number);
                if info.blocked {
                    self.outputs
                        .push_back(Output::Store(Record::BlockedAttempt { number, at: now }));
                    603
                } else {
                    self.emit(PhoneEvent::MessageReceived {
                        account,
                        from: message.from,
                        display_name: message.display_name,
                        contact_name: info.contact_name,
                        text: message.text,
                    });
                    200
                }
            }
        };
        let mut response = incoming_response(request, status);
        add_to_tag(&mut response, &format!("m{}", self.next_message));
        self.respond(now, tx, response);
    }
}
