//! RFC 8599 push notifications as the machine decides them ([`PushNotification`]) and their
//! JSON payload, POSTed by the driver to a stand-in for APNs/FCM:
//!
//! ```json
//! {"type":"incoming_call","call_id":"<INVITE Call-ID>","from":"sip:alice@127.0.0.1",
//!  "from_name":"Alice","to":"bob","pbx":"HANDSET-DEMO-1","sent_at":1764000000000,
//!  "pn_provider":"apns","pn_prid":"<device token>","pn_param":"<app id>"}
//! {"type":"cancel","call_id":"<INVITE Call-ID>","reason":"caller_cancelled",
//!  "to":"bob","pbx":"HANDSET-DEMO-1","sent_at":1764000000000,
//!  "pn_provider":"apns","pn_prid":"<device token>","pn_param":"<app id>"}
//! ```
//!
//! `reason` of a cancel is `caller_cancelled` (the caller sent CANCEL while we waited) or
//! `timeout` (the callee did not register within `push_wait`). `pn_*` are `null` when the
//! binding did not carry them. `sent_at` is wall-clock time, which the sans-IO machine does
//! not read: the driver adds it when it sends.

use crate::{PushInfo, PushKind};

/// Why a held INVITE was given up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelReason {
    /// The caller sent CANCEL while the INVITE was held.
    CallerCancelled,
    /// The callee did not register within the push wait.
    Timeout,
}

impl CancelReason {
    /// The payload's `reason` value.
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::CallerCancelled => "caller_cancelled",
            CancelReason::Timeout => "timeout",
        }
    }
}

/// What a notification says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PushContent {
    /// Wake up: a call is waiting for the device to register.
    IncomingCall {
        /// The caller's From URI without parameters.
        from: String,
        /// The caller's display name, else its user part.
        from_name: String,
    },
    /// The call announced before is gone.
    Cancel {
        /// Why.
        reason: CancelReason,
    },
}

/// One notification for a device, to POST to the push service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushNotification {
    /// The held INVITE's Call-ID.
    pub call_id: String,
    /// The callee (user name).
    pub user: String,
    /// The PBX's serial (the payload's `pbx`).
    pub pbx: String,
    /// The device's RFC 8599 parameters.
    pub device: PushInfo,
    /// What it says.
    pub content: PushContent,
}

impl PushNotification {
    /// Which notification this is.
    pub fn kind(&self) -> PushKind {
        match self.content {
            PushContent::IncomingCall { .. } => PushKind::IncomingCall,
            PushContent::Cancel { .. } => PushKind::Cancel,
        }
    }

    /// The JSON payload, sent at `sent_at_unix_ms` (milliseconds since the Unix epoch).
    pub fn to_json(&self, sent_at_unix_ms: u64) -> String {
        let mut payload = serde_json::json!({
            "call_id": self.call_id,
            "to": self.user,
            "pbx": self.pbx,
            "sent_at": sent_at_unix_ms,
            "pn_provider": self.device.provider,
            "pn_prid": self.device.prid,
            "pn_param": self.device.param,
        });
        let fields = match &self.content {
            PushContent::IncomingCall { from, from_name } => serde_json::json!({
                "type": "incoming_call",
                "from": from,
                "from_name": from_name,
            }),
            PushContent::Cancel { reason } => serde_json::json!({
                "type": "cancel",
                "reason": reason.as_str(),
            }),
        };
        if let (Some(payload), serde_json::Value::Object(fields)) =
            (payload.as_object_mut(), fields)
        {
            payload.extend(fields);
        }
        payload.to_string()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn payloads_are_json_with_every_field() {
        let device = PushInfo {
            provider: Some("apns".into()),
            prid: Some("tok\"en".into()),
            param: None,
        };
        let mut push = PushNotification {
            call_id: "c1@x".into(),
            user: "bob".into(),
            pbx: "P-1".into(),
            device,
            content: PushContent::IncomingCall {
                from: "sip:alice@h".into(),
                from_name: "Alice".into(),
            },
        };
        let v: serde_json::Value = serde_json::from_str(&push.to_json(1_764_000_000_000)).unwrap();
        assert_eq!(v["type"], "incoming_call");
        assert_eq!(v["call_id"], "c1@x");
        assert_eq!(v["from"], "sip:alice@h");
        assert_eq!(v["from_name"], "Alice");
        assert_eq!(v["to"], "bob");
        assert_eq!(v["pbx"], "P-1");
        assert_eq!(v["pn_provider"], "apns");
        assert_eq!(v["pn_prid"], "tok\"en");
        assert!(v["pn_param"].is_null());
        assert_eq!(v["sent_at"], 1_764_000_000_000u64);
        assert!(v.get("reason").is_none());
        push.content = PushContent::Cancel {
            reason: CancelReason::Timeout,
        };
        assert_eq!(push.kind(), PushKind::Cancel);
        let v: serde_json::Value = serde_json::from_str(&push.to_json(5)).unwrap();
        assert_eq!(v["type"], "cancel");
        assert_eq!(v["reason"], "timeout");
        assert!(v.get("from").is_none());
    }
}
