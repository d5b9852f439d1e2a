//! VoIP push wake-up: RFC 8599 Contact parameters, the push payload format, and the
//! [`PushWake`] machine that turns a push into an incoming-call report at once and then waits
//! for the INVITE.
//!
//! # Why report at once
//!
//! iOS kills an app that receives a PushKit VoIP push and does not report a call to CallKit
//! before the push handler returns; Android's Telecom / full-screen notification should likewise
//! ring before the network is back. So [`PushWake::handle_push`] returns an
//! [`IncomingCallReport`] synchronously, without network, and queues
//! [`PushAction::Reregister`] so the runtime re-registers and the PBX can deliver the INVITE.
//! The INVITE is then matched to the report ([`PushWake::bind_invite`]): by Call-ID, else by
//! caller number.
//!
//! # Registering for push (RFC 8599)
//!
//! [`PushConfig::contact_params`] gives `pn-provider`, `pn-prid` and `pn-param` for the
//! REGISTER Contact. RFC 8599 §4.1 defines them as SIP URI parameters of the Contact URI.
//!
//! # Push payload format
//!
//! The payload is one JSON object, at most [`MAX_PAYLOAD_BYTES`] bytes (the APNs VoIP limit;
//! FCM allows 4096). This is what Handset's embedded test PBX sends; a real PBX integration
//! maps its own push to it in the shell or a notification service extension. Unknown fields are
//! ignored (an APNs payload's `aps` dictionary can stay in). Because FCM data messages carry
//! only strings, `sent_at` and `video` are also accepted as strings.
//!
//! Incoming call:
//!
//! ```json
//! {"type":"incoming_call","call_id":"a84b4c76e66710@pbx","from":"sip:+4930123456@pbx.example.com",
//!  "from_name":"Alice","pbx":"PBX-0042","sent_at":1767225600000,"video":false}
//! ```
//!
//! | Field | Type | Required | Meaning |
//! |---|---|---|---|
//! | `type` | string | yes | `"incoming_call"` |
//! | `call_id` | string | yes | Call-ID of the INVITE the PBX will send (no whitespace, ≤ 256 bytes) |
//! | `from` | string | yes | caller: a `sip:`/`sips:`/`tel:` URI or a plain number (≤ 256 bytes) |
//! | `from_name` | string | no | caller's display name (control characters are removed) |
//! | `pbx` | string | no | the PBX's serial / id, to pick the account |
//! | `sent_at` | integer or digit string | no | when the PBX sent it, Unix milliseconds |
//! | `video` | bool or `"true"`/`"false"` | no | the call offers video |
//!
//! Cancel (the caller hung up, or someone else answered, before the INVITE reached us):
//!
//! ```json
//! {"type":"cancel","call_id":"a84b4c76e66710@pbx","reason":"answered_elsewhere"}
//! ```
//!
//! `reason` is optional: `"answered_elsewhere"`, `"declined_elsewhere"`; anything else or
//! nothing means missed.
//!
//! # The machine
//!
//! ```text
//!  incoming_call push ──► [Pending] ──bind_invite (Call-ID, else caller number)──► [Bound]
//!   (report returned,        │  │                                (the call layer owns it now)
//!    Reregister queued)      │  └─ cancel push / invite_cancelled ──► [Ended(Cancelled|..Elsewhere)]
//!                            └──── wait_for_invite elapsed ─────────► [Ended(Unanswered)]
//!  cancel push for an unknown call_id ──────────────────────────────► [Ended(reason)]
//!  (a report is still returned: iOS requires one for every VoIP push)
//! ```
//!
//! Once bound, the report is the call layer's: a cancel push for it changes nothing (the SIP
//! CANCEL reaches the call). Every transition to Ended queues exactly one
//! [`PushAction::EndReport`]. A duplicate push
//! (same `call_id`) returns the same report and queues nothing. Ended and bound reports are
//! remembered for [`REMEMBER_FOR`] (at most [`MAX_REMEMBERED`]) to recognise duplicates and
//! out-of-order cancels. Report ids are derived from the Call-ID, so a push delivered again
//! after the app was killed yields the same CallKit UUID.

use std::collections::VecDeque;
use std::fmt;
use std::time::{Duration, Instant};

use handset_sip::message::Uri;
use serde_json::{Map, Value};

/// Largest accepted payload, in bytes (APNs VoIP pushes are limited to 5120 bytes).
pub const MAX_PAYLOAD_BYTES: usize = 5120;
/// Largest accepted string field, in bytes.
pub const MAX_FIELD_BYTES: usize = 256;
/// Most reports waiting for their INVITE at once; more is a flood, not calls.
pub const MAX_PENDING: usize = 16;
/// Most ended/bound reports remembered for duplicate detection.
pub const MAX_REMEMBERED: usize = 64;
/// How long ended/bound reports are remembered for duplicate detection.
pub const REMEMBER_FOR: Duration = Duration::from_secs(600);
/// Default time to wait for the INVITE after a push.
pub const DEFAULT_WAIT_FOR_INVITE: Duration = Duration::from_secs(20);
/// `Expires` while keep-alives keep the connection up, seconds.
pub const FOREGROUND_REGISTER_EXPIRES: u32 = 600;
/// `Expires` when the OS wakes us by push instead (7 days, as push-enabled Linphone clients ask;
/// the registrar may grant less).
pub const PUSH_REGISTER_EXPIRES: u32 = 604_800;
/// Longest accepted device token (`pn-prid`), bytes.
pub const MAX_PRID_BYTES: usize = 1024;

/// A push service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushProvider {
    /// Apple Push Notification service (PushKit VoIP pushes).
    Apns,
    /// Firebase Cloud Messaging.
    Fcm,
}

impl PushProvider {
    /// The RFC 8599 `pn-provider` value.
    pub fn as_str(self) -> &'static str {
        match self {
            PushProvider::Apns => "apns",
            PushProvider::Fcm => "fcm",
        }
    }

    /// Parses a `pn-provider` value (case-insensitive).
    pub fn parse(text: &str) -> Option<PushProvider> {
        if text.eq_ignore_ascii_case("apns") {
            Some(PushProvider::Apns)
        } else if text.eq_ignore_ascii_case("fcm") {
            Some(PushProvider::Fcm)
        } else {
            None
        }
    }
}

impl fmt::Display for PushProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Push registration settings. `Debug` never shows the device token.
#[derive(Clone, PartialEq, Eq)]
pub struct PushConfig {
    /// The push service.
    pub provider: PushProvider,
    /// The device token (`pn-prid`).
    pub prid: String,
    /// APNs: `TEAMID.bundle.id.voip` (team id and topic); FCM: the project id (may be empty).
    pub param: String,
    /// How long to wait for the INVITE after a push before the report ends as timed out.
    pub wait_for_invite: Duration,
}

impl fmt::Debug for PushConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PushConfig")
            .field("provider", &self.provider)
            .field("prid", &"<redacted>")
            .field("param", &self.param)
            .field("wait_for_invite", &self.wait_for_invite)
            .finish()
    }
}

impl PushConfig {
    /// Checked settings: the token is non-empty, at most [`MAX_PRID_BYTES`], without
    /// whitespace or control characters; APNs needs a `TEAMID.topic` param; the wait is not
    /// zero.
    pub fn new(
        provider: PushProvider,
        prid: impl Into<String>,
        param: impl Into<String>,
        wait_for_invite: Duration,
    ) -> Result<PushConfig, PushError> {
        let prid = prid.into();
        let param = param.into();
        let visible = |s: &str| !s.chars().any(|c| c.is_whitespace() || c.is_control());
        if prid.is_empty() || prid.len() > MAX_PRID_BYTES || !visible(&prid) {
            return Err(PushError::InvalidConfig(
                "the device token must be 1..=1024 visible characters",
            ));
        }
        if !visible(&param) || param.len() > MAX_FIELD_BYTES {
            return Err(PushError::InvalidConfig(
                "pn-param must be at most 256 visible characters",
            ));
        }
        if provider == PushProvider::Apns {
            match param.split_once('.') {
                Some((team, topic)) if !team.is_empty() && !topic.is_empty() => {}
                _ => {
                    return Err(PushError::InvalidConfig(
                        "APNs pn-param must be TEAMID.topic, e.g. ABCDE12345.com.example.app.voip",
                    ));
                }
            }
        }
        if wait_for_invite.is_zero() {
            return Err(PushError::InvalidConfig("wait_for_invite must not be zero"));
        }
        Ok(PushConfig {
            provider,
            prid,
            param,
            wait_for_invite,
        })
    }

    /// The RFC 8599 parameters for the REGISTER Contact URI: `pn-provider`, `pn-prid` and,
    /// when not empty, `pn-param`. Values are %-escaped where SIP URI parameters need it.
    pub fn contact_params(&self) -> Vec<(String, Option<String>)> {
        let mut out = vec![
            (
                "pn-provider".to_string(),
                Some(self.provider.as_str().to_string()),
            ),
            ("pn-prid".to_string(), Some(escape_param(&self.prid))),
        ];
        if !self.param.is_empty() {
            out.push(("pn-param".to_string(), Some(escape_param(&self.param))));
        }
        out
    }
}

/// %-escapes what RFC 3261 `paramchar` does not allow.
fn escape_param(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// What to do about keep-alives and registration lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeepAlivePolicy {
    /// Run the transport keep-alive timers (CRLF pings, RFC 5626) and refresh as usual.
    pub run_keepalive_timers: bool,
    /// `Expires` to ask for in REGISTER, seconds.
    pub register_expires: u32,
}

/// Keep-alive policy:
///
/// | App | Push | Keep-alive timers | Expires |
/// |---|---|---|---|
/// | foreground | any | yes | [`FOREGROUND_REGISTER_EXPIRES`] (600 s) |
/// | background | off | yes (only works while the OS lets us run) | 600 s |
/// | background | on | no: the OS wakes us by push | [`PUSH_REGISTER_EXPIRES`] (7 days) |
pub fn keepalive_policy(foreground: bool, push_enabled: bool) -> KeepAlivePolicy {
    if !foreground && push_enabled {
        KeepAlivePolicy {
            run_keepalive_timers: false,
            register_expires: PUSH_REGISTER_EXPIRES,
        }
    } else {
        KeepAlivePolicy {
            run_keepalive_timers: true,
            register_expires: FOREGROUND_REGISTER_EXPIRES,
        }
    }
}

/// Why a push or a push setting was refused. Messages name fields, never their values (a
/// payload carries phone numbers).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The payload was empty.
    #[error("push payload is empty")]
    Empty,
    /// The payload is larger than [`MAX_PAYLOAD_BYTES`].
    #[error("push payload is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Payload size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The payload is not JSON.
    #[error("push payload is not valid JSON: {0}")]
    NotJson(String),
    /// The payload is JSON but not an object.
    #[error("push payload is not a JSON object")]
    NotAnObject,
    /// A required field is absent (or null).
    #[error("push payload lacks the required field `{0}`")]
    MissingField(&'static str),
    /// A field has the wrong JSON type.
    #[error("push payload field `{field}` must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// A required field is an empty string.
    #[error("push payload field `{0}` is empty")]
    EmptyField(&'static str),
    /// A string field is longer than [`MAX_FIELD_BYTES`].
    #[error("push payload field `{field}` is longer than {max} bytes")]
    FieldTooLong {
        /// The field.
        field: &'static str,
        /// The limit.
        max: usize,
    },
    /// `call_id` contains whitespace or control characters.
    #[error("push payload field `call_id` contains whitespace or control characters")]
    InvalidCallId,
    /// `type` is neither `incoming_call` nor `cancel`.
    #[error("push payload has unknown type {0:?} (expected \"incoming_call\" or \"cancel\")")]
    UnknownType(String),
    /// Too many reports are waiting for their INVITE.
    #[error("more than {max} pushed calls are waiting for their INVITE")]
    TooManyPending {
        /// The limit.
        max: usize,
    },
    /// A [`PushConfig`] value is unusable.
    #[error("invalid push configuration: {0}")]
    InvalidConfig(&'static str),
}

/// Why a cancel push says the call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CancelReason {
    /// The caller gave up (or no reason given).
    Missed,
    /// Another device answered.
    AnsweredElsewhere,
    /// Another device declined.
    DeclinedElsewhere,
}

/// A parsed push payload.
#[derive(Clone, PartialEq, Eq)]
pub enum PushMessage {
    /// `"type":"incoming_call"`.
    IncomingCall {
        /// Call-ID of the coming INVITE.
        call_id: String,
        /// The `from` field as sent.
        from: String,
        /// Display name, control characters removed.
        from_name: Option<String>,
        /// PBX serial / id.
        pbx: Option<String>,
        /// Unix milliseconds when sent.
        sent_at_unix_ms: Option<u64>,
        /// The call offers video.
        video: bool,
    },
    /// `"type":"cancel"`.
    Cancel {
        /// Call-ID of the cancelled call.
        call_id: String,
        /// Why.
        reason: CancelReason,
    },
}

impl fmt::Debug for PushMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PushMessage::IncomingCall {
                call_id,
                from_name,
                pbx,
                sent_at_unix_ms,
                video,
                ..
            } => f
                .debug_struct("IncomingCall")
                .field("call_id", call_id)
                .field("from", &"<redacted>")
                .field("from_name", &from_name.as_ref().map(|_| "<redacted>"))
                .field("pbx", pbx)
                .field("sent_at_unix_ms", sent_at_unix_ms)
                .field("video", video)
                .finish(),
            PushMessage::Cancel { call_id, reason } => f
                .debug_struct("Cancel")
                .field("call_id", call_id)
                .field("reason", reason)
                .finish(),
        }
    }
}

fn get_field<'a>(obj: &'a Map<String, Value>, field: &'static str) -> Option<&'a Value> {
    obj.get(field).filter(|v| !v.is_null())
}

fn optional_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<Option<&'a str>, PushError> {
    let Some(value) = get_field(obj, field) else {
        return Ok(None);
    };
    let text = value.as_str().ok_or(PushError::WrongType {
        field,
        expected: "a string",
    })?;
    if text.len() > MAX_FIELD_BYTES {
        return Err(PushError::FieldTooLong {
            field,
            max: MAX_FIELD_BYTES,
        });
    }
    let text = text.trim();
    Ok(if text.is_empty() { None } else { Some(text) })
}

fn required_str<'a>(
    obj: &'a Map<String, Value>,
    field: &'static str,
) -> Result<&'a str, PushError> {
    if get_field(obj, field).is_none() {
        return Err(PushError::MissingField(field));
    }
    optional_str(obj, field)?.ok_or(PushError::EmptyField(field))
}

fn call_id_field(obj: &Map<String, Value>) -> Result<String, PushError> {
    let call_id = required_str(obj, "call_id")?;
    if call_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(PushError::InvalidCallId);
    }
    Ok(call_id.to_string())
}

fn strip_controls(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).collect()
}

/// Parses and checks a push payload (see the module doc for the format).
pub fn parse_payload(payload: &[u8]) -> Result<PushMessage, PushError> {
    if payload.is_empty() {
        return Err(PushError::Empty);
    }
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(PushError::TooLarge {
            len: payload.len(),
            max: MAX_PAYLOAD_BYTES,
        });
    }
    let value: Value =
        serde_json::from_slice(payload).map_err(|e| PushError::NotJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(PushError::NotAnObject);
    };
    match required_str(&obj, "type")? {
        "incoming_call" => {
            let call_id = call_id_field(&obj)?;
            let from = required_str(&obj, "from")?.to_string();
            let from_name = optional_str(&obj, "from_name")?
                .map(strip_controls)
                .filter(|s| !s.trim().is_empty());
            let pbx = optional_str(&obj, "pbx")?.map(strip_controls);
            let sent_at_unix_ms = match get_field(&obj, "sent_at") {
                None => None,
                Some(Value::Number(n)) => Some(n.as_u64().ok_or(PushError::WrongType {
                    field: "sent_at",
                    expected: "a non-negative integer (Unix milliseconds)",
                })?),
                Some(Value::String(s))
                    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) =>
                {
                    Some(s.parse::<u64>().map_err(|_| PushError::WrongType {
                        field: "sent_at",
                        expected: "a non-negative integer (Unix milliseconds)",
                    })?)
                }
                Some(_) => {
                    return Err(PushError::WrongType {
                        field: "sent_at",
                        expected: "a non-negative integer (Unix milliseconds)",
                    });
                }
            };
            let video = match get_field(&obj, "video") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::String(s)) if s == "true" => true,
                Some(Value::String(s)) if s == "false" => false,
                Some(_) => {
                    return Err(PushError::WrongType {
                        field: "video",
                        expected: "a boolean",
                    });
                }
            };
            Ok(PushMessage::IncomingCall {
                call_id,
                from,
                from_name,
                pbx,
                sent_at_unix_ms,
                video,
            })
        }
        "cancel" => {
            let call_id = call_id_field(&obj)?;
            let reason = match optional_str(&obj, "reason")? {
                Some("answered_elsewhere") => CancelReason::AnsweredElsewhere,
                Some("declined_elsewhere") => CancelReason::DeclinedElsewhere,
                _ => CancelReason::Missed,
            };
            Ok(PushMessage::Cancel { call_id, reason })
        }
        other => Err(PushError::UnknownType(other.chars().take(32).collect())),
    }
}

/// The number (or user) to show for a `from` value: the user part of a SIP URI (without
/// `;params`, %-decoded), the number of a `tel:` URI, or the text itself.
pub fn caller_number(from: &str) -> String {
    let from = from.trim();
    let from = from
        .strip_prefix('<')
        .and_then(|f| f.strip_suffix('>'))
        .unwrap_or(from);
    let raw = match Uri::parse(from) {
        Ok(Uri::Sip(sip)) => match sip.user {
            Some(user) => user.split(';').next().unwrap_or_default().to_string(),
            None => sip.host.to_string(),
        },
        Ok(Uri::Other { scheme, rest }) if scheme.eq_ignore_ascii_case("tel") => {
            rest.split(';').next().unwrap_or_default().to_string()
        }
        _ => from.to_string(),
    };
    strip_controls(&percent_decode_lossy(&raw))
}

fn percent_decode_lossy(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| {
            let h = std::str::from_utf8(h).ok()?;
            u8::from_str_radix(h, 16).ok()
        });
        match (byte, hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Digits of a number for matching: ASCII digits only, leading zeros dropped (so `+49 30 123`,
/// `0049-30-123` and `4930123` agree, and a national `030123` matches by suffix).
pub fn normalized_digits(number: &str) -> String {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    digits.trim_start_matches('0').to_string()
}

/// Two normalized numbers denote the same caller: equal, or one ends with the other and the
/// shorter has at least 6 digits (national vs international form).
fn numbers_match(a: &str, b: &str) -> bool {
    if a.is_empty() || b.is_empty() {
        return false;
    }
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    short == long || (short.len() >= 6 && long.ends_with(short))
}

/// The id of an incoming-call report: a UUID (version 8, RFC 9562) derived from the Call-ID,
/// used as the CallKit call UUID / Telecom connection id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportId([u8; 16]);

impl ReportId {
    /// The report id for a Call-ID (128-bit FNV-1a, version and variant bits set).
    pub fn for_call_id(call_id: &str) -> ReportId {
        const OFFSET: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
        const PRIME: u128 = 0x0000_0000_0100_0000_0000_0000_0000_013b;
        let mut h = OFFSET;
        for b in b"handset-push\0".iter().chain(call_id.as_bytes()) {
            h ^= u128::from(*b);
            h = h.wrapping_mul(PRIME);
        }
        let mut bytes = h.to_be_bytes();
        bytes[6] = (bytes[6] & 0x0f) | 0x80;
        bytes[8] = (bytes[8] & 0x3f) | 0x80;
        ReportId(bytes)
    }

    /// A random id (UUID version 4), for calls no push announced: the application's
    /// CallKit / Telecom id of an outgoing call.
    pub fn random(rng: &mut dyn rand::RngCore) -> ReportId {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        if let Some(b) = bytes.get_mut(6) {
            *b = (*b & 0x0f) | 0x40;
        }
        if let Some(b) = bytes.get_mut(8) {
            *b = (*b & 0x3f) | 0x80;
        }
        ReportId(bytes)
    }

    /// The 16 UUID bytes.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for ReportId {
    /// Lower-case hyphenated UUID, e.g. `1b4e28ba-2fa1-81d2-883f-0016d3cca427`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// A report id that is not a hyphenated UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a report id (a hyphenated UUID)")]
pub struct InvalidReportId;

impl std::str::FromStr for ReportId {
    type Err = InvalidReportId;

    /// Parses the hyphenated UUID form [`ReportId`]'s `Display` writes (either case; CallKit
    /// hands UUIDs back in upper case).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let groups: Vec<&str> = text.trim().split('-').collect();
        let lengths: Vec<usize> = groups.iter().map(|g| g.len()).collect();
        if lengths != [8, 4, 4, 4, 12] {
            return Err(InvalidReportId);
        }
        let hex: String = groups.concat();
        if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(InvalidReportId);
        }
        let mut bytes = [0u8; 16];
        for (i, byte) in bytes.iter_mut().enumerate() {
            let pair = hex.get(2 * i..2 * i + 2).ok_or(InvalidReportId)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| InvalidReportId)?;
        }
        Ok(ReportId(bytes))
    }
}

/// Why a report ended: the phone's one [`EndReason`] — cancelled before the INVITE came
/// (`Cancelled`), no INVITE in time (`Unanswered`), answered or declined on another device,
/// declined by the user on the ringing screen (`Declined`).
pub use crate::phone::EndReason;

impl From<CancelReason> for EndReason {
    fn from(r: CancelReason) -> Self {
        match r {
            CancelReason::Missed => EndReason::Cancelled,
            CancelReason::AnsweredElsewhere => EndReason::AnsweredElsewhere,
            CancelReason::DeclinedElsewhere => EndReason::DeclinedElsewhere,
        }
    }
}

/// What the shell reports to CallKit / Telecom from inside the push handler. `Debug` never
/// shows the caller's number or name.
#[derive(Clone, PartialEq, Eq)]
pub struct IncomingCallReport {
    /// CallKit UUID / Telecom id.
    pub report_id: ReportId,
    /// Call-ID announced by the push.
    pub call_id: String,
    /// Number or user to show (see [`caller_number`]); empty when only a cancel was seen.
    pub caller_number: String,
    /// Display name, if sent.
    pub caller_name: Option<String>,
    /// PBX serial / id, if sent.
    pub pbx: Option<String>,
    /// When the PBX sent the push (Unix ms), if sent. The runtime, which has a wall clock, may
    /// end a stale report with [`PushWake::end_report`].
    pub sent_at_unix_ms: Option<u64>,
    /// The call offers video.
    pub video: bool,
    /// Already over (cancel seen). The shell still reports it (iOS demands a report per VoIP
    /// push) and ends it at once; the matching [`PushAction::EndReport`] is queued as well.
    pub already_ended: Option<EndReason>,
}

impl fmt::Debug for IncomingCallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingCallReport")
            .field("report_id", &self.report_id)
            .field("call_id", &self.call_id)
            .field("caller_number", &"<redacted>")
            .field(
                "caller_name",
                &self.caller_name.as_ref().map(|_| "<redacted>"),
            )
            .field("pbx", &self.pbx)
            .field("sent_at_unix_ms", &self.sent_at_unix_ms)
            .field("video", &self.video)
            .field("already_ended", &self.already_ended)
            .finish()
    }
}

/// Work for the runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PushAction {
    /// Reconnect and REGISTER now so the PBX can send the INVITE.
    Reregister,
    /// End this report on CallKit / Telecom (and log it, missed if the reason says so).
    EndReport {
        /// The report.
        report_id: ReportId,
        /// Why.
        reason: EndReason,
    },
}

/// Where a report stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ReportStatus {
    /// Waiting for the INVITE.
    Pending,
    /// The INVITE arrived; the call layer owns the report.
    Bound,
    /// Over.
    Ended(EndReason),
}

#[derive(Debug, Clone)]
struct Entry {
    report: IncomingCallReport,
    digits: String,
    invite_call_id: Option<String>,
    status: ReportStatus,
    /// Pending: when it times out. Otherwise: when it is forgotten.
    deadline: Instant,
    created: Instant,
}

/// The push wake-up machine (see the module doc). Sans-IO: time comes in as `now`.
#[derive(Debug, Clone)]
pub struct PushWake {
    wait_for_invite: Duration,
    entries: Vec<Entry>,
    actions: VecDeque<PushAction>,
}

impl PushWake {
    /// A machine that waits `wait_for_invite` for each INVITE.
    pub fn new(wait_for_invite: Duration) -> Self {
        PushWake {
            wait_for_invite,
            entries: Vec::new(),
            actions: VecDeque::new(),
        }
    }

    /// A machine using the config's `wait_for_invite`.
    pub fn from_config(config: &PushConfig) -> Self {
        Self::new(config.wait_for_invite)
    }

    /// Handles a push payload. Returns at once with what to report; queues
    /// [`PushAction::Reregister`] for a new call, [`PushAction::EndReport`] for a cancel.
    /// A duplicate (same `call_id`) returns the same report and queues nothing.
    pub fn handle_push(
        &mut self,
        now: Instant,
        payload: &[u8],
    ) -> Result<IncomingCallReport, PushError> {
        self.handle_timeout(now);
        match parse_payload(payload)? {
            PushMessage::IncomingCall {
                call_id,
                from,
                from_name,
                pbx,
                sent_at_unix_ms,
                video,
            } => {
                if let Some(entry) = self.entries.iter().find(|e| e.report.call_id == call_id) {
                    return Ok(entry.report.clone());
                }
                if self.pending_count() >= MAX_PENDING {
                    return Err(PushError::TooManyPending { max: MAX_PENDING });
                }
                let number = caller_number(&from);
                let digits = normalized_digits(&number);
                let report = IncomingCallReport {
                    report_id: ReportId::for_call_id(&call_id),
                    call_id,
                    caller_number: number,
                    caller_name: from_name,
                    pbx,
                    sent_at_unix_ms,
                    video,
                    already_ended: None,
                };
                self.insert(now, report.clone(), digits);
                if !self.actions.contains(&PushAction::Reregister) {
                    self.actions.push_back(PushAction::Reregister);
                }
                Ok(report)
            }
            PushMessage::Cancel { call_id, reason } => {
                let reason = EndReason::from(reason);
                if let Some(i) = self.index_of(&call_id) {
                    if self
                        .entries
                        .get(i)
                        .is_some_and(|e| e.status == ReportStatus::Pending)
                    {
                        self.end(now, i, reason);
                    }
                    if let Some(entry) = self.entries.get(i) {
                        return Ok(entry.report.clone());
                    }
                }
                // The cancel overtook the incoming-call push (or that one was lost): iOS still
                // wants a report, which ends at once; a late incoming_call push finds it ended.
                let report = IncomingCallReport {
                    report_id: ReportId::for_call_id(&call_id),
                    call_id,
                    caller_number: String::new(),
                    caller_name: None,
                    pbx: None,
                    sent_at_unix_ms: None,
                    video: false,
                    already_ended: None,
                };
                let i = self.insert(now, report.clone(), String::new());
                self.end(now, i, reason);
                Ok(IncomingCallReport {
                    already_ended: Some(reason),
                    ..report
                })
            }
        }
    }

    /// Matches an arriving INVITE to a pending report: by Call-ID first, else by caller number
    /// (the user part of a SIP URI or a number, compared as [`normalized_digits`]) among
    /// pending reports, oldest first. A retransmitted INVITE gets the same id again. `None`:
    /// not a pushed call (or its report already ended) — the call layer reports it as new.
    pub fn bind_invite(&mut self, now: Instant, call_id: &str, caller: &str) -> Option<ReportId> {
        self.handle_timeout(now);
        let by_call_id = self.entries.iter().position(|e| {
            e.report.call_id == call_id || e.invite_call_id.as_deref() == Some(call_id)
        });
        let i = match by_call_id {
            Some(i) => match self.entries.get(i).map(|e| (e.status, e.report.report_id)) {
                Some((ReportStatus::Pending, _)) => i,
                Some((ReportStatus::Bound, id)) => return Some(id),
                Some((ReportStatus::Ended(_), _)) | None => return None,
            },
            None => {
                let digits = normalized_digits(&caller_number(caller));
                self.entries
                    .iter()
                    .enumerate()
                    .filter(|(_, e)| e.status == ReportStatus::Pending)
                    .filter(|(_, e)| numbers_match(&e.digits, &digits))
                    .min_by_key(|(_, e)| e.created)
                    .map(|(i, _)| i)?
            }
        };
        let e = self.entries.get_mut(i)?;
        e.status = ReportStatus::Bound;
        e.invite_call_id = Some(call_id.to_string());
        e.deadline = now + REMEMBER_FOR;
        Some(e.report.report_id)
    }

    /// The INVITE with this Call-ID was cancelled (or the PBX said so another way) before it
    /// reached us: a pending report ends as [`EndReason::Cancelled`] and its id is returned.
    /// Bound reports are the call layer's and are left alone.
    pub fn invite_cancelled(&mut self, now: Instant, call_id: &str) -> Option<ReportId> {
        self.handle_timeout(now);
        let i = self.index_of(call_id)?;
        if self.entries.get(i)?.status != ReportStatus::Pending {
            return None;
        }
        self.end(now, i, EndReason::Cancelled);
        self.entries.get(i).map(|e| e.report.report_id)
    }

    /// Ends a pending report for a reason the runtime or shell already knows (the user declined
    /// on the ringing screen, the push was stale by the wall clock). No action is queued; a
    /// later INVITE with its Call-ID is not bound ([`PushWake::status_of_call`] tells why).
    /// Returns whether a pending report was ended.
    pub fn end_report(&mut self, now: Instant, report_id: ReportId, reason: EndReason) -> bool {
        self.handle_timeout(now);
        let Some(e) = self
            .entries
            .iter_mut()
            .find(|e| e.report.report_id == report_id && e.status == ReportStatus::Pending)
        else {
            return false;
        };
        e.status = ReportStatus::Ended(reason);
        e.report.already_ended = Some(reason);
        e.deadline = now + REMEMBER_FOR;
        true
    }

    /// Ends pending reports whose INVITE did not come in time ([`EndReason::Unanswered`]) and
    /// forgets old ended/bound ones.
    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<usize> = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.status == ReportStatus::Pending && e.deadline <= now)
            .map(|(i, _)| i)
            .collect();
        for i in due {
            self.end(now, i, EndReason::Unanswered);
        }
        self.entries
            .retain(|e| e.status == ReportStatus::Pending || e.deadline > now);
        // Entries are kept in arrival order: forget the oldest finished ones first.
        while self.entries.len() - self.pending_count() > MAX_REMEMBERED {
            match self
                .entries
                .iter()
                .position(|e| e.status != ReportStatus::Pending)
            {
                Some(i) => {
                    self.entries.remove(i);
                }
                None => break,
            }
        }
    }

    /// When [`PushWake::handle_timeout`] must run next: the earliest INVITE deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.entries
            .iter()
            .filter(|e| e.status == ReportStatus::Pending)
            .map(|e| e.deadline)
            .min()
    }

    /// The next action for the runtime.
    pub fn poll_action(&mut self) -> Option<PushAction> {
        self.actions.pop_front()
    }

    /// Reports waiting for their INVITE.
    pub fn pending_count(&self) -> usize {
        self.entries
            .iter()
            .filter(|e| e.status == ReportStatus::Pending)
            .count()
    }

    /// Where the report for this report id stands, if remembered.
    pub fn status(&self, report_id: ReportId) -> Option<ReportStatus> {
        self.entries
            .iter()
            .find(|e| e.report.report_id == report_id)
            .map(|e| e.status)
    }

    /// Where the report for this Call-ID (pushed, or of the INVITE bound to it) stands.
    pub fn status_of_call(&self, call_id: &str) -> Option<ReportStatus> {
        self.entries
            .iter()
            .find(|e| e.report.call_id == call_id || e.invite_call_id.as_deref() == Some(call_id))
            .map(|e| e.status)
    }

    fn index_of(&self, call_id: &str) -> Option<usize> {
        self.entries
            .iter()
            .position(|e| e.report.call_id == call_id)
    }

    fn insert(&mut self, now: Instant, report: IncomingCallReport, digits: String) -> usize {
        self.entries.push(Entry {
            report,
            digits,
            invite_call_id: None,
            status: ReportStatus::Pending,
            deadline: now + self.wait_for_invite,
            created: now,
        });
        self.entries.len() - 1
    }

    fn end(&mut self, now: Instant, i: usize, reason: EndReason) {
        let Some(e) = self.entries.get_mut(i) else {
            return;
        };
        e.status = ReportStatus::Ended(reason);
        e.report.already_ended = Some(reason);
        e.deadline = now + REMEMBER_FOR;
        self.actions.push_back(PushAction::EndReport {
            report_id: e.report.report_id,
            reason,
        });
    }
}

#[cfg(test)]
mod tests;
