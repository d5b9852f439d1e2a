//! Account provisioning from a QR code or a provisioning link.
//!
//! A QR code (or a deep link) holds one of two forms; [`parse`] tells them apart by the first
//! non-blank character (`{` means JSON). The input is at most [`MAX_INPUT_BYTES`] bytes.
//!
//! # URI form
//!
//! ```text
//! handset://provision?server=sip%3Apbx.example.com&transport=tls&user=1001&password=s3cr%26t
//! ```
//!
//! Scheme `handset` and host `provision` (case-insensitive, an optional `/` after it), then a
//! query of `name=value` pairs joined by `&`. Names and values are %-decoded (RFC 3986) and
//! must decode to UTF-8; `+` is a literal plus, not a space (a space is `%20`); a literal
//! `&`, `=`, `#` or `%` in a value must be escaped. Unknown names are ignored (newer
//! generators), a repeated name is an error, an empty value counts as absent. No fragment.
//! An optional `version=1` is checked like the JSON `version`.
//!
//! # JSON form
//!
//! ```json
//! {"version":1,"server":"sips:pbx.example.com","user":"1001","password":"s3cr&t",
//!  "display":"Front desk","push":"apns","push_param":"ABCDE12345.com.example.handset.voip"}
//! ```
//!
//! `version` is required and must be `1`; all values are strings except `version` and
//! `expires` (a number, or a digit string). Unknown fields are ignored; `null` is absent.
//!
//! # Fields (both forms)
//!
//! | Name | Required | Meaning / check |
//! |---|---|---|
//! | `server` | yes | registrar / outbound proxy: a `sip:` or `sips:` URI without user or password part |
//! | `user` | yes | SIP user (AOR user part); ≤ 128 bytes, no whitespace or control characters |
//! | `password` | one of | the password |
//! | `ha1` | one of | precomputed HA1 instead: 32 (MD5) or 64 (SHA-256) hex digits |
//! | `auth_user` | no | authentication user name, if not `user` |
//! | `display` | no | display name; ≤ 128 bytes, no control characters |
//! | `domain` | no | SIP domain of the AOR if not the server's host (a host name or IP) |
//! | `transport` | no | `udp`, `tcp` or `tls`; else the server URI's `transport` parameter; else `tls` for `sips:`; else resolved by RFC 3263 |
//! | `expires` | no | registration lifetime, seconds, 60..=604800 |
//! | `push` | no | `apns` or `fcm` |
//! | `push_param` | no | RFC 8599 `pn-param` (APNs: `TEAMID.topic`); needs `push` |
//! | `srtp` | no | `off`, `sdes` or `dtls` |
//! | `ca` | no | CA certificate(s) to trust: base64 (standard or URL-safe, padding optional) of a PEM file; JSON may also hold the PEM text itself |
//! | `pin_sha256` | no | SHA-256 fingerprint of the server's own TLS certificate to pin (a self-signed PBX certificate): 64 hex digits, colons allowed |
//!
//! Both `password` and `ha1`, or neither, is an error. The secret never appears in `Debug`
//! output or in error messages.

use std::fmt;

use handset_sip::auth::Secret;
use handset_sip::message::{Host, SipUri, Uri};
use serde_json::{Map, Value};

use crate::pin::{CertFingerprint, FingerprintError};
use crate::push::PushProvider;

/// Largest accepted input (a version 40 QR code holds at most 2953 bytes; links may be longer).
pub const MAX_INPUT_BYTES: usize = 8192;
/// Smallest accepted `expires`, seconds.
pub const MIN_EXPIRES: u32 = 60;
/// Largest accepted `expires`, seconds.
pub const MAX_EXPIRES: u32 = 604_800;
/// Longest `user`, `auth_user` or `display`, bytes.
pub const MAX_NAME_BYTES: usize = 128;

/// SIP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Parses `udp` / `tcp` / `tls` (case-insensitive).
    pub fn parse(text: &str) -> Option<Transport> {
        match text.to_ascii_lowercase().as_str() {
            "udp" => Some(Transport::Udp),
            "tcp" => Some(Transport::Tcp),
            "tls" => Some(Transport::Tls),
            _ => None,
        }
    }
}

/// Media encryption.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SrtpMode {
    /// Plain RTP.
    Off,
    /// SDES-SRTP (keys in SDP, RFC 4568).
    Sdes,
    /// DTLS-SRTP (RFC 5764).
    Dtls,
}

/// The account's secret. `Debug` prints only which kind it is.
#[derive(Clone, PartialEq, Eq)]
pub enum AccountSecret {
    /// A plain password.
    Password(String),
    /// A precomputed HA1, lower-case hex: 32 digits for MD5, 64 for SHA-256.
    Ha1(String),
}

impl fmt::Debug for AccountSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AccountSecret::Password(_) => f.write_str("Password(<redacted>)"),
            AccountSecret::Ha1(_) => f.write_str("Ha1(<redacted>)"),
        }
    }
}

impl AccountSecret {
    /// The secret in the form handset-sip's digest authentication takes.
    pub fn to_sip_secret(&self) -> Secret {
        match self {
            AccountSecret::Password(p) => Secret::Password(p.clone()),
            AccountSecret::Ha1(h) if h.len() == 64 => Secret::Ha1 {
                md5: None,
                sha256: Some(h.clone()),
            },
            AccountSecret::Ha1(h) => Secret::Ha1 {
                md5: Some(h.clone()),
                sha256: None,
            },
        }
    }
}

/// An account read from a provisioning code. `Debug` never shows the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisionedAccount {
    /// Registrar / outbound proxy.
    pub server: SipUri,
    /// Transport, if the code chose one (else RFC 3263 resolution decides).
    pub transport: Option<Transport>,
    /// SIP user (AOR user part).
    pub user: String,
    /// Authentication user, if not `user`.
    pub auth_user: Option<String>,
    /// Password or HA1.
    pub secret: AccountSecret,
    /// Display name.
    pub display_name: Option<String>,
    /// SIP domain of the AOR, if not the server's host.
    pub domain: Option<Host>,
    /// Registration lifetime, seconds, if given.
    pub expires: Option<u32>,
    /// Push service, if push is to be used.
    pub push: Option<PushProvider>,
    /// RFC 8599 `pn-param`.
    pub push_param: Option<String>,
    /// Media encryption, if given (else the app's default).
    pub srtp: Option<SrtpMode>,
    /// CA certificate(s) in PEM, if given (trimmed, ending in one newline).
    pub ca_pem: Option<String>,
    /// Fingerprint of the server's own certificate to pin, if given.
    pub pinned_sha256: Option<CertFingerprint>,
}

impl ProvisionedAccount {
    /// The address-of-record: `sip:user@domain` (the server's host when no domain was given;
    /// `sips:` when the server is `sips:`).
    pub fn aor(&self) -> SipUri {
        let host = self
            .domain
            .clone()
            .unwrap_or_else(|| self.server.host.clone());
        let mut aor = SipUri::new(Some(&escape_user(&self.user)), host);
        aor.secure = self.server.secure;
        aor
    }

    /// The name to authenticate with: `auth_user`, else `user`.
    pub fn auth_name(&self) -> &str {
        self.auth_user.as_deref().unwrap_or(&self.user)
    }
}

/// %-escapes what a SIP URI user part may not hold literally.
fn escape_user(user: &str) -> String {
    let mut out = String::with_capacity(user.len());
    for b in user.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a provisioning code was refused. Messages never contain a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProvisionError {
    /// Nothing to parse.
    #[error("provisioning code is empty")]
    Empty,
    /// Larger than [`MAX_INPUT_BYTES`].
    #[error("provisioning code is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Input size.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The QR code's bytes are not UTF-8 text.
    #[error("provisioning code is not UTF-8 text")]
    NotUtf8,
    /// A URI with a scheme other than `handset`.
    #[error("unknown provisioning URI scheme {0:?} (expected handset://provision?...)")]
    UnknownScheme(String),
    /// A `handset:` URI that is not a provisioning link.
    #[error("not a provisioning link (expected handset://provision?...)")]
    NotProvisioning,
    /// The link's structure is wrong.
    #[error("malformed provisioning link: {0}")]
    MalformedUri(&'static str),
    /// A query parameter appears twice.
    #[error("provisioning parameter `{0}` is given twice")]
    DuplicateParameter(String),
    /// A bad %-escape, or an escape that does not decode to UTF-8.
    #[error("provisioning parameter `{param}` has a bad %-escape or is not UTF-8")]
    PercentDecoding {
        /// The parameter (its name as far as it could be read).
        param: String,
    },
    /// The JSON form does not parse.
    #[error("provisioning JSON does not parse: {0}")]
    NotJson(String),
    /// The JSON form is not an object.
    #[error("provisioning JSON is not an object")]
    NotAnObject,
    /// A JSON field has the wrong type.
    #[error("provisioning field `{field}` must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it must be.
        expected: &'static str,
    },
    /// The JSON form has no `version`.
    #[error("provisioning JSON lacks `version`")]
    MissingVersion,
    /// A `version` other than 1.
    #[error("unsupported provisioning version {0} (this app reads version 1)")]
    UnsupportedVersion(String),
    /// No `server`.
    #[error("provisioning code lacks `server`")]
    MissingServer,
    /// No `user`.
    #[error("provisioning code lacks `user`")]
    MissingUser,
    /// Both `password` and `ha1`.
    #[error("provisioning code has both `password` and `ha1`; give one")]
    BothPasswordAndHa1,
    /// Neither `password` nor `ha1`.
    #[error("provisioning code has neither `password` nor `ha1`")]
    NoSecret,
    /// `ha1` is not 32 or 64 hex digits.
    #[error("provisioning `ha1` must be 32 (MD5) or 64 (SHA-256) hex digits")]
    BadHa1,
    /// `server` is not a usable SIP URI.
    #[error("provisioning `server` is not a usable SIP URI: {0}")]
    BadSipUri(&'static str),
    /// `domain` is not a host name or IP address.
    #[error("provisioning `domain` is not a host name or IP address: {0}")]
    BadDomain(&'static str),
    /// `transport` (or the server's `transport` parameter) is not udp/tcp/tls.
    #[error("provisioning transport {0:?} is not udp, tcp or tls")]
    BadTransport(String),
    /// The transport contradicts the server URI.
    #[error("provisioning transport conflicts with the server URI: {0}")]
    TransportConflict(&'static str),
    /// `expires` is not an integer in range.
    #[error("provisioning `expires` {0:?} is not an integer in 60..=604800")]
    BadExpires(String),
    /// `push` is not apns/fcm.
    #[error("provisioning `push` {0:?} is not apns or fcm")]
    BadPush(String),
    /// `push_param` without `push`.
    #[error("provisioning `push_param` is given without `push`")]
    PushParamWithoutPush,
    /// `push_param` is unusable.
    #[error("provisioning `push_param` is unusable: {0}")]
    BadPushParam(&'static str),
    /// `srtp` is not off/sdes/dtls.
    #[error("provisioning `srtp` {0:?} is not off, sdes or dtls")]
    BadSrtp(String),
    /// `ca` is not valid base64.
    #[error("provisioning `ca` is not valid base64")]
    BadBase64,
    /// `ca` does not hold PEM certificates.
    #[error("provisioning `ca` is not a PEM certificate: {0}")]
    BadPem(&'static str),
    /// `pin_sha256` is not a SHA-256 fingerprint.
    #[error("provisioning `pin_sha256` is unusable: {0}")]
    BadPin(FingerprintError),
    /// `user`, `auth_user` or `display` is unusable.
    #[error("provisioning `{field}` is unusable: {reason}")]
    BadField {
        /// The field.
        field: &'static str,
        /// Why.
        reason: &'static str,
    },
}

/// Echoes a (non-secret) bad value in an error, shortened and without control characters.
fn echo(value: &str) -> String {
    value.chars().filter(|c| !c.is_control()).take(32).collect()
}

/// The fields as read, before checking. Shared by both forms.
#[derive(Default)]
struct Raw {
    version: Option<String>,
    server: Option<String>,
    transport: Option<String>,
    user: Option<String>,
    password: Option<String>,
    ha1: Option<String>,
    auth_user: Option<String>,
    display: Option<String>,
    domain: Option<String>,
    expires: Option<String>,
    push: Option<String>,
    push_param: Option<String>,
    srtp: Option<String>,
    ca: Option<String>,
    pin_sha256: Option<String>,
}

impl Raw {
    fn slot(&mut self, name: &str) -> Option<&mut Option<String>> {
        Some(match name {
            "version" => &mut self.version,
            "server" => &mut self.server,
            "transport" => &mut self.transport,
            "user" => &mut self.user,
            "password" => &mut self.password,
            "ha1" => &mut self.ha1,
            "auth_user" => &mut self.auth_user,
            "display" => &mut self.display,
            "domain" => &mut self.domain,
            "expires" => &mut self.expires,
            "push" => &mut self.push,
            "push_param" => &mut self.push_param,
            "srtp" => &mut self.srtp,
            "ca" => &mut self.ca,
            "pin_sha256" => &mut self.pin_sha256,
            _ => return None,
        })
    }
}

/// Parses a provisioning code in either form (see the module doc).
pub fn parse(text: &str) -> Result<ProvisionedAccount, ProvisionError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(ProvisionError::TooLarge {
            len: text.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(ProvisionError::Empty);
    }
    if text.starts_with('{') {
        parse_json(text)
    } else {
        parse_uri(text)
    }
}

/// Parses the raw bytes of a QR code (UTF-8 text in either form).
pub fn parse_qr(bytes: &[u8]) -> Result<ProvisionedAccount, ProvisionError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(ProvisionError::TooLarge {
            len: bytes.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| ProvisionError::NotUtf8)?;
    // Some generators prepend a UTF-8 byte order mark.
    parse(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Parses the URI form `handset://provision?...`.
pub fn parse_uri(text: &str) -> Result<ProvisionedAccount, ProvisionError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(ProvisionError::TooLarge {
            len: text.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    let text = text.trim();
    if text.is_empty() {
        return Err(ProvisionError::Empty);
    }
    let (scheme, rest) = text.split_once(':').ok_or(ProvisionError::MalformedUri(
        "neither a URI nor a JSON object",
    ))?;
    if !scheme.eq_ignore_ascii_case("handset") {
        return Err(ProvisionError::UnknownScheme(echo(scheme)));
    }
    let rest = rest
        .strip_prefix("//")
        .ok_or(ProvisionError::NotProvisioning)?;
    let (authority, query) = match rest.split_once('?') {
        Some((a, q)) => (a, q),
        None => (rest, ""),
    };
    let authority = authority.strip_suffix('/').unwrap_or(authority);
    if !authority.eq_ignore_ascii_case("provision") {
        return Err(ProvisionError::NotProvisioning);
    }
    if query.contains('#') {
        return Err(ProvisionError::MalformedUri(
            "a fragment ('#') is not allowed; escape '#' in values as %23",
        ));
    }
    if query.is_empty() {
        return Err(ProvisionError::MalformedUri("no query parameters"));
    }
    let mut raw = Raw::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').ok_or(ProvisionError::MalformedUri(
            "a parameter without '=' (escape '&' and '=' in values)",
        ))?;
        let name = percent_decode(name)
            .map_err(|_| ProvisionError::PercentDecoding { param: echo(name) })?;
        if name.is_empty() {
            return Err(ProvisionError::MalformedUri("a parameter without a name"));
        }
        let value = percent_decode(value)
            .map_err(|_| ProvisionError::PercentDecoding { param: echo(&name) })?;
        if let Some(slot) = raw.slot(&name) {
            if slot.is_some() {
                return Err(ProvisionError::DuplicateParameter(name));
            }
            *slot = Some(value);
        }
    }
    build(raw)
}

/// Parses the JSON form.
pub fn parse_json(text: &str) -> Result<ProvisionedAccount, ProvisionError> {
    if text.len() > MAX_INPUT_BYTES {
        return Err(ProvisionError::TooLarge {
            len: text.len(),
            max: MAX_INPUT_BYTES,
        });
    }
    let value: Value =
        serde_json::from_str(text).map_err(|e| ProvisionError::NotJson(e.to_string()))?;
    let Value::Object(obj) = value else {
        return Err(ProvisionError::NotAnObject);
    };
    let version = match obj.get("version") {
        None | Some(Value::Null) => return Err(ProvisionError::MissingVersion),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err(ProvisionError::WrongType {
                field: "version",
                expected: "a number",
            });
        }
    };
    let expires = match obj.get("expires") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(ProvisionError::WrongType {
                field: "expires",
                expected: "a number",
            });
        }
    };
    let mut raw = Raw {
        version,
        expires,
        ..Raw::default()
    };
    const STRINGS: [&str; 13] = [
        "server",
        "transport",
        "user",
        "password",
        "ha1",
        "auth_user",
        "display",
        "domain",
        "push",
        "push_param",
        "srtp",
        "ca",
        "pin_sha256",
    ];
    for field in STRINGS {
        let value = json_string(&obj, field)?;
        if let Some(slot) = raw.slot(field) {
            *slot = value;
        }
    }
    build(raw)
}

fn json_string(
    obj: &Map<String, Value>,
    field: &'static str,
) -> Result<Option<String>, ProvisionError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ProvisionError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// RFC 3986 percent-decoding to UTF-8; `+` stays `+`.
fn percent_decode(text: &str) -> Result<String, ()> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or(())?;
            let hex = std::str::from_utf8(hex).map_err(|_| ())?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(());
            }
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

/// An empty (or blank) value counts as absent.
fn present(value: Option<String>) -> Option<String> {
    value.filter(|v| !v.trim().is_empty())
}

fn check_name(
    field: &'static str,
    value: Option<String>,
    allow_spaces: bool,
) -> Result<Option<String>, ProvisionError> {
    let Some(value) = present(value) else {
        return Ok(None);
    };
    let value = if allow_spaces {
        value.trim().to_string()
    } else {
        value
    };
    if value.len() > MAX_NAME_BYTES {
        return Err(ProvisionError::BadField {
            field,
            reason: "longer than 128 bytes",
        });
    }
    if value.chars().any(char::is_control) {
        return Err(ProvisionError::BadField {
            field,
            reason: "contains control characters",
        });
    }
    if !allow_spaces && value.chars().any(char::is_whitespace) {
        return Err(ProvisionError::BadField {
            field,
            reason: "contains whitespace",
        });
    }
    Ok(Some(value))
}

fn build(raw: Raw) -> Result<ProvisionedAccount, ProvisionError> {
    if let Some(version) = present(raw.version)
        && version.trim() != "1"
    {
        return Err(ProvisionError::UnsupportedVersion(echo(&version)));
    }

    // server
    let server_text = present(raw.server).ok_or(ProvisionError::MissingServer)?;
    let server = match Uri::parse(server_text.trim()) {
        Ok(Uri::Sip(sip)) => sip,
        Ok(Uri::Other { .. }) => {
            return Err(ProvisionError::BadSipUri("must be a sip: or sips: URI"));
        }
        Err(e) => return Err(ProvisionError::BadSipUri(e.reason)),
    };
    if server.password.is_some() {
        return Err(ProvisionError::BadSipUri(
            "must not contain a password (use `password`)",
        ));
    }
    if server.user.is_some() {
        return Err(ProvisionError::BadSipUri(
            "must not contain a user part (use `user`)",
        ));
    }

    // transport
    let explicit = match present(raw.transport) {
        Some(t) => {
            Some(Transport::parse(t.trim()).ok_or_else(|| ProvisionError::BadTransport(echo(&t)))?)
        }
        None => None,
    };
    let from_uri = match server.transport_param() {
        Some(t) => {
            Some(Transport::parse(&t).ok_or_else(|| ProvisionError::BadTransport(echo(&t)))?)
        }
        None => None,
    };
    if let (Some(a), Some(b)) = (explicit, from_uri)
        && a != b
    {
        return Err(ProvisionError::TransportConflict(
            "`transport` differs from the server URI's transport parameter",
        ));
    }
    let mut transport = explicit.or(from_uri);
    if server.secure {
        match transport {
            None => transport = Some(Transport::Tls),
            Some(Transport::Tls) => {}
            Some(_) => {
                return Err(ProvisionError::TransportConflict(
                    "a sips: server needs transport tls",
                ));
            }
        }
    }

    // user and secret
    let user = check_name("user", raw.user, false)?.ok_or(ProvisionError::MissingUser)?;
    let auth_user = check_name("auth_user", raw.auth_user, false)?;
    let display_name = check_name("display", raw.display, true)?;
    let secret = match (present(raw.password), present(raw.ha1)) {
        (Some(_), Some(_)) => return Err(ProvisionError::BothPasswordAndHa1),
        (None, None) => return Err(ProvisionError::NoSecret),
        (Some(p), None) => AccountSecret::Password(p),
        (None, Some(h)) => {
            let h = h.trim();
            if !matches!(h.len(), 32 | 64) || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ProvisionError::BadHa1);
            }
            AccountSecret::Ha1(h.to_ascii_lowercase())
        }
    };

    // domain
    let domain = match present(raw.domain) {
        Some(d) => Some(Host::parse(d.trim()).map_err(|e| ProvisionError::BadDomain(e.reason))?),
        None => None,
    };

    // expires
    let expires = match present(raw.expires) {
        Some(e) => {
            let t = e.trim();
            let value = (t.len() <= 10 && t.bytes().all(|b| b.is_ascii_digit()))
                .then(|| t.parse::<u32>().ok())
                .flatten()
                .filter(|v| (MIN_EXPIRES..=MAX_EXPIRES).contains(v));
            Some(value.ok_or_else(|| ProvisionError::BadExpires(echo(&e)))?)
        }
        None => None,
    };

    // push
    let push = match present(raw.push) {
        Some(p) => {
            Some(PushProvider::parse(p.trim()).ok_or_else(|| ProvisionError::BadPush(echo(&p)))?)
        }
        None => None,
    };
    let push_param = match (present(raw.push_param), push) {
        (None, _) => None,
        (Some(_), None) => return Err(ProvisionError::PushParamWithoutPush),
        (Some(p), Some(provider)) => {
            let p = p.trim().to_string();
            if p.len() > 256 || p.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(ProvisionError::BadPushParam(
                    "at most 256 visible characters",
                ));
            }
            if provider == PushProvider::Apns
                && !p
                    .split_once('.')
                    .is_some_and(|(team, topic)| !team.is_empty() && !topic.is_empty())
            {
                return Err(ProvisionError::BadPushParam(
                    "APNs needs TEAMID.topic, e.g. ABCDE12345.com.example.app.voip",
                ));
            }
            Some(p)
        }
    };

    // srtp
    let srtp = match present(raw.srtp) {
        Some(s) => Some(match s.trim().to_ascii_lowercase().as_str() {
            "off" => SrtpMode::Off,
            "sdes" => SrtpMode::Sdes,
            "dtls" => SrtpMode::Dtls,
            _ => return Err(ProvisionError::BadSrtp(echo(&s))),
        }),
        None => None,
    };

    // ca
    let ca_pem = match present(raw.ca) {
        Some(ca) => Some(decode_ca(&ca)?),
        None => None,
    };

    // pin_sha256
    let pinned_sha256 = match present(raw.pin_sha256) {
        Some(pin) => Some(pin.parse().map_err(ProvisionError::BadPin)?),
        None => None,
    };

    Ok(ProvisionedAccount {
        server,
        transport,
        user,
        auth_user,
        secret,
        display_name,
        domain,
        expires,
        push,
        push_param,
        srtp,
        ca_pem,
        pinned_sha256,
    })
}

const PEM_BEGIN: &str = "-----BEGIN CERTIFICATE-----";
const PEM_END: &str = "-----END CERTIFICATE-----";

/// `ca`: PEM text, or base64 of PEM text. Checks that it holds certificate blocks only.
fn decode_ca(ca: &str) -> Result<String, ProvisionError> {
    let pem = if ca.trim_start().starts_with("-----BEGIN") {
        ca.to_string()
    } else {
        let bytes = base64_decode(ca).ok_or(ProvisionError::BadBase64)?;
        String::from_utf8(bytes).map_err(|_| ProvisionError::BadPem("not text"))?
    };
    check_pem(&pem)?;
    // One form whatever the source: no surrounding blank space, one final newline.
    Ok(format!("{}\n", pem.trim()))
}

/// At least one certificate block; each block's body is base64; nothing but whitespace
/// between blocks.
fn check_pem(pem: &str) -> Result<(), ProvisionError> {
    let mut rest = pem.trim();
    if rest.is_empty() {
        return Err(ProvisionError::BadPem("empty"));
    }
    let mut blocks = 0;
    while !rest.is_empty() {
        let body = rest.strip_prefix(PEM_BEGIN).ok_or(ProvisionError::BadPem(
            "expected -----BEGIN CERTIFICATE-----",
        ))?;
        let (body, after) = body
            .split_once(PEM_END)
            .ok_or(ProvisionError::BadPem("no -----END CERTIFICATE----- line"))?;
        let der = base64_decode(body).ok_or(ProvisionError::BadPem("the body is not base64"))?;
        // A DER certificate is a SEQUENCE.
        if der.first() != Some(&0x30) || der.len() < 16 {
            return Err(ProvisionError::BadPem("the body is not a DER certificate"));
        }
        blocks += 1;
        rest = after.trim_start();
    }
    if blocks == 0 {
        return Err(ProvisionError::BadPem("no certificate"));
    }
    Ok(())
}

/// Base64 (standard or URL-safe alphabet), padding optional, whitespace ignored.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0u32;
    let mut symbols = 0usize;
    let mut padding = 0usize;
    for b in text.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                padding += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' | b'\n' => continue,
            _ => return None,
        };
        if padding > 0 {
            return None;
        }
        symbols += 1;
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if symbols == 0 || symbols % 4 == 1 || padding > 2 {
        return None;
    }
    if padding > 0 && !(symbols + padding).is_multiple_of(4) {
        return None;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
