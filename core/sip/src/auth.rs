//! SIP HTTP Digest authentication for a UAC (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760).
//!
//! Sans-IO: nothing here performs I/O, reads the clock or spawns threads. Randomness (the
//! client nonce) comes from an RNG the caller passes in, so tests can seed it.
//!
//! Building blocks:
//!
//! * [`Challenge::parse`] parses one `WWW-Authenticate` / `Proxy-Authenticate` value.
//! * [`Secret`], [`Credentials`] and [`CredentialStore`] hold what the account knows: a
//!   password or a pre-computed HA1 per algorithm, per realm with an optional default.
//! * [`DigestResponse::compute`] is the pure computation of one `Authorization` value with an
//!   explicit `nc` and `cnonce`.
//! * [`DigestSession`] is the stateful helper one dialog or registration keeps.
//!
//! Typical flow with a session:
//!
//! ```text
//! let mut session = DigestSession::new(store);
//! // send request; on a 401/407 response:
//! session.on_challenge(status, &challenge_header_values)?;   // Err => give up, don't retry
//! // for every (re)sent request:
//! for (header, value) in session.authorization_headers("REGISTER", uri, body, &mut rng) {
//!     request.add_header(header.name(), value);
//! }
//! ```

use std::collections::HashMap;
use std::fmt;

use md5::Md5;
use rand::RngCore;
use sha2::{Digest as _, Sha256};
use thiserror::Error;

/// How many stale challenges in a row, each arriving right after we answered the previous
/// challenge, [`DigestSession::on_challenge`] accepts before giving up with
/// [`AuthError::StaleLoop`]. Protects against servers that mark every nonce stale.
pub const MAX_CONSECUTIVE_STALE: u32 = 2;

/// Number of random bytes in a generated client nonce (hex-encoded to twice as many chars).
const CNONCE_BYTES: usize = 16;

/// Errors from parsing challenges and computing or managing digest credentials.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum AuthError {
    /// The header value does not use the `Digest` authentication scheme.
    #[error("authentication scheme is not Digest")]
    NotDigest,
    /// The challenge is syntactically broken.
    #[error("malformed Digest challenge: {0}")]
    Malformed(&'static str),
    /// A parameter the challenge must carry (`realm` or `nonce`) is absent.
    #[error("Digest challenge lacks the required `{0}` parameter")]
    MissingParameter(&'static str),
    /// The challenge asks for an algorithm this module does not implement.
    #[error("unsupported digest algorithm `{0}`")]
    UnsupportedAlgorithm(String),
    /// The challenge offers a `qop` list containing neither `auth` nor `auth-int`.
    #[error("challenge offers no supported qop (need auth or auth-int)")]
    UnsupportedQop,
    /// No credentials are configured for the realm and there is no default.
    #[error("no credentials configured for realm `{realm}`")]
    NoCredentials {
        /// Realm of the challenge.
        realm: String,
    },
    /// The credentials only store HA1 values, and none for the challenge's hash function.
    #[error("credentials for realm `{realm}` hold no HA1 usable with algorithm {algorithm}")]
    NoMatchingHa1 {
        /// Realm of the challenge.
        realm: String,
        /// Algorithm the challenge asked for.
        algorithm: Algorithm,
    },
    /// A stored HA1 is not a hex digest of the right length for its hash function.
    #[error("stored HA1 for realm `{realm}` is not a valid hex digest")]
    InvalidHa1 {
        /// Realm of the challenge.
        realm: String,
    },
    /// A value that would be echoed in the header contains a control character.
    #[error("value of `{0}` contains a control character")]
    InvalidCharacter(&'static str),
    /// The server challenged again (not stale) right after we answered: the user name or
    /// password is wrong. Do not retry; the session keeps refusing this realm until
    /// [`DigestSession::reset`] or [`DigestSession::set_credentials`].
    #[error("credentials rejected for realm `{realm}` (wrong user name or password)")]
    Rejected {
        /// Realm whose credentials were rejected.
        realm: String,
    },
    /// The server keeps declaring freshly obtained nonces stale; giving up instead of looping.
    #[error("server keeps answering with stale nonces for realm `{realm}`; giving up")]
    StaleLoop {
        /// Realm of the challenges.
        realm: String,
    },
    /// The status code passed to [`DigestSession::on_challenge`] is not 401 or 407.
    #[error("status {0} does not carry a digest challenge (expected 401 or 407)")]
    NotChallengeStatus(u16),
    /// The response carried no challenge header at all.
    #[error("response carried no Digest challenge")]
    NoChallenge,
}

/// Which credentials header answers a challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthHeader {
    /// `Authorization`, answering `WWW-Authenticate` in a 401.
    Authorization,
    /// `Proxy-Authorization`, answering `Proxy-Authenticate` in a 407.
    ProxyAuthorization,
}

impl AuthHeader {
    /// The header that answers a challenge carried by a response with `status`
    /// (401 → `Authorization`, 407 → `Proxy-Authorization`); `None` for other codes.
    pub const fn for_status(status: u16) -> Option<Self> {
        match status {
            401 => Some(Self::Authorization),
            407 => Some(Self::ProxyAuthorization),
            _ => None,
        }
    }

    /// Header name to send: `Authorization` or `Proxy-Authorization`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Authorization => "Authorization",
            Self::ProxyAuthorization => "Proxy-Authorization",
        }
    }

    /// Name of the header carrying the matching challenge: `WWW-Authenticate` or
    /// `Proxy-Authenticate`.
    pub const fn challenge_header_name(self) -> &'static str {
        match self {
            Self::Authorization => "WWW-Authenticate",
            Self::ProxyAuthorization => "Proxy-Authenticate",
        }
    }
}

/// Digest algorithm named by a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// `MD5` (also the default when a challenge names no algorithm).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256` (RFC 7616, RFC 8760).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// Any other algorithm, kept verbatim; responding to it fails.
    Unsupported(String),
}

/// Hash function underlying an [`Algorithm`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashKind {
    Md5,
    Sha256,
}

impl HashKind {
    /// Length of a hex digest of this hash.
    const fn hex_len(self) -> usize {
        match self {
            Self::Md5 => 32,
            Self::Sha256 => 64,
        }
    }

    /// Lowercase hex digest of `data`.
    fn hex(self, data: &[u8]) -> String {
        match self {
            Self::Md5 => to_hex(&Md5::digest(data)),
            Self::Sha256 => to_hex(&Sha256::digest(data)),
        }
    }
}

impl Algorithm {
    /// Parses an algorithm token, case-insensitively. Unknown names give
    /// [`Algorithm::Unsupported`].
    pub fn parse(token: &str) -> Self {
        if token.eq_ignore_ascii_case("MD5") {
            Self::Md5
        } else if token.eq_ignore_ascii_case("MD5-sess") {
            Self::Md5Sess
        } else if token.eq_ignore_ascii_case("SHA-256") {
            Self::Sha256
        } else if token.eq_ignore_ascii_case("SHA-256-sess") {
            Self::Sha256Sess
        } else {
            Self::Unsupported(token.to_owned())
        }
    }

    /// Canonical spelling, as echoed in the `algorithm` parameter.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Unsupported(name) => name,
        }
    }

    /// Whether responses can be computed for this algorithm.
    pub fn is_supported(&self) -> bool {
        !matches!(self, Self::Unsupported(_))
    }

    /// Whether this is a `-sess` variant (HA1 bound to nonce and cnonce).
    pub fn is_session(&self) -> bool {
        matches!(self, Self::Md5Sess | Self::Sha256Sess)
    }

    fn hash(&self) -> Option<HashKind> {
        match self {
            Self::Md5 | Self::Md5Sess => Some(HashKind::Md5),
            Self::Sha256 | Self::Sha256Sess => Some(HashKind::Sha256),
            Self::Unsupported(_) => None,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Quality of protection offered by a challenge.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Qop {
    /// `auth`: authentication of method and URI.
    Auth,
    /// `auth-int`: additionally covers the message body.
    AuthInt,
    /// Any other token, kept verbatim and never chosen.
    Other(String),
}

impl Qop {
    /// Parses one qop token, case-insensitively.
    pub fn parse(token: &str) -> Self {
        if token.eq_ignore_ascii_case("auth") {
            Self::Auth
        } else if token.eq_ignore_ascii_case("auth-int") {
            Self::AuthInt
        } else {
            Self::Other(token.to_owned())
        }
    }

    /// Canonical spelling, as echoed in the `qop` parameter.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
            Self::Other(token) => token,
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed Digest challenge (one `WWW-Authenticate` or `Proxy-Authenticate` value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// Protection space the credentials belong to.
    pub realm: String,
    /// Server nonce.
    pub nonce: String,
    /// Opaque string to echo unchanged.
    pub opaque: Option<String>,
    /// `stale=true`: the previous nonce expired but the credentials were fine.
    pub stale: bool,
    /// Algorithm as named by the challenge; `None` when absent (meaning MD5).
    pub algorithm: Option<Algorithm>,
    /// Offered qop values in order; empty when the challenge had no `qop` (RFC 2069 mode).
    pub qop: Vec<Qop>,
    /// URIs of the protection space from the `domain` parameter.
    pub domain: Vec<String>,
}

impl Challenge {
    /// Parses a `WWW-Authenticate` / `Proxy-Authenticate` header value such as
    /// `Digest realm="example.com", nonce="abc", qop="auth"`.
    ///
    /// The scheme is matched case-insensitively, parameters may come in any order with any
    /// amount of whitespace, quoted strings may use backslash escapes, unknown parameters are
    /// ignored and parsing stops quietly at the start of another challenge (`, Basic ...`).
    /// Unsupported algorithms parse fine; see [`Algorithm::Unsupported`].
    ///
    /// # Errors
    ///
    /// [`AuthError::NotDigest`] for another scheme, [`AuthError::MissingParameter`] without
    /// `realm` or `nonce`, [`AuthError::Malformed`] for syntax errors (unterminated quote,
    /// control characters, duplicate parameters, ...). Never panics, whatever the input.
    pub fn parse(header_value: &str) -> Result<Self, AuthError> {
        let mut cur = Cursor::new(header_value);
        cur.skip_ws();
        let scheme = cur.token();
        if !scheme.eq_ignore_ascii_case("Digest") {
            return Err(AuthError::NotDigest);
        }
        if !matches!(cur.peek(), None | Some(b' ' | b'\t' | b'\r' | b'\n')) {
            return Err(AuthError::Malformed("expected whitespace after scheme"));
        }

        let mut realm = None;
        let mut nonce = None;
        let mut opaque = None;
        let mut stale = None;
        let mut algorithm = None;
        let mut qop = None;
        let mut domain = None;

        loop {
            cur.skip_ws();
            match cur.peek() {
                None => break,
                Some(b',') => {
                    cur.bump();
                    continue;
                }
                Some(_) => {}
            }
            let name = cur.token();
            if name.is_empty() {
                return Err(AuthError::Malformed("expected parameter name"));
            }
            cur.skip_ws();
            if cur.peek() != Some(b'=') {
                // A bare token: the start of the next challenge in a comma-joined list.
                break;
            }
            cur.bump();
            cur.skip_ws();
            let value = if cur.peek() == Some(b'"') {
                cur.quoted()?
            } else {
                let raw = cur.bare_value();
                if raw.is_empty() {
                    return Err(AuthError::Malformed("empty parameter value"));
                }
                if raw.bytes().any(is_ctl) {
                    return Err(AuthError::Malformed("control character in parameter value"));
                }
                raw.to_owned()
            };

            let lower = name.to_ascii_lowercase();
            let slot = match lower.as_str() {
                "realm" => set_once(&mut realm, value),
                "nonce" => set_once(&mut nonce, value),
                "opaque" => set_once(&mut opaque, value),
                "stale" => set_once(&mut stale, value.eq_ignore_ascii_case("true")),
                "algorithm" => set_once(&mut algorithm, Algorithm::parse(value.trim())),
                "qop" => set_once(
                    &mut qop,
                    value
                        .split(',')
                        .map(|t| t.trim_matches(is_ws_char))
                        .filter(|t| !t.is_empty())
                        .map(Qop::parse)
                        .collect(),
                ),
                "domain" => set_once(
                    &mut domain,
                    value.split_whitespace().map(str::to_owned).collect(),
                ),
                _ => Ok(()),
            };
            slot?;
        }

        Ok(Self {
            realm: realm.ok_or(AuthError::MissingParameter("realm"))?,
            nonce: nonce.ok_or(AuthError::MissingParameter("nonce"))?,
            opaque,
            stale: stale.unwrap_or(false),
            algorithm,
            qop: qop.unwrap_or_default(),
            domain: domain.unwrap_or_default(),
        })
    }

    /// The algorithm to use: the named one, or MD5 when the challenge named none.
    pub fn effective_algorithm(&self) -> Algorithm {
        self.algorithm.clone().unwrap_or(Algorithm::Md5)
    }

    /// The qop a response will use: `auth` when offered, else `auth-int` when offered,
    /// `None` when the challenge had no qop.
    ///
    /// # Errors
    ///
    /// [`AuthError::UnsupportedQop`] when a qop list offers neither `auth` nor `auth-int`.
    pub fn selected_qop(&self) -> Result<Option<Qop>, AuthError> {
        if self.qop.is_empty() {
            Ok(None)
        } else if self.qop.contains(&Qop::Auth) {
            Ok(Some(Qop::Auth))
        } else if self.qop.contains(&Qop::AuthInt) {
            Ok(Some(Qop::AuthInt))
        } else {
            Err(AuthError::UnsupportedQop)
        }
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T) -> Result<(), AuthError> {
    if slot.is_some() {
        return Err(AuthError::Malformed("duplicate parameter"));
    }
    *slot = Some(value);
    Ok(())
}

fn is_ws_char(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_ctl(b: u8) -> bool {
    (b < 0x20 && b != b'\t') || b == 0x7f
}

/// RFC 7230 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Byte cursor over a header value. It only stops on ASCII bytes, so every slice it takes
/// lies on UTF-8 boundaries; slicing still goes through `get` so it can never panic.
struct Cursor<'a> {
    src: &'a str,
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn new(src: &'a str) -> Self {
        Self { src, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.src.as_bytes().get(self.pos).copied()
    }

    fn bump(&mut self) {
        self.pos += 1;
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.bump();
        }
    }

    fn slice(&self, start: usize) -> &'a str {
        self.src.get(start..self.pos).unwrap_or("")
    }

    fn token(&mut self) -> &'a str {
        let start = self.pos;
        while self.peek().is_some_and(is_tchar) {
            self.bump();
        }
        self.slice(start)
    }

    /// Unquoted value: everything up to whitespace or a comma.
    fn bare_value(&mut self) -> &'a str {
        let start = self.pos;
        while !matches!(
            self.peek(),
            None | Some(b' ' | b'\t' | b'\r' | b'\n' | b',')
        ) {
            self.bump();
        }
        self.slice(start)
    }

    /// Quoted string starting at the opening quote, with backslash escapes resolved.
    fn quoted(&mut self) -> Result<String, AuthError> {
        const UNTERMINATED: AuthError = AuthError::Malformed("unterminated quoted string");
        self.bump();
        let mut out = Vec::new();
        loop {
            let Some(b) = self.peek() else {
                return Err(UNTERMINATED);
            };
            self.bump();
            let b = match b {
                b'"' => break,
                b'\\' => {
                    let Some(escaped) = self.peek() else {
                        return Err(UNTERMINATED);
                    };
                    self.bump();
                    escaped
                }
                other => other,
            };
            if is_ctl(b) {
                return Err(AuthError::Malformed("control character in quoted string"));
            }
            out.push(b);
        }
        String::from_utf8(out).map_err(|_| AuthError::Malformed("invalid UTF-8 in quoted string"))
    }
}

/// What an account authenticates with.
///
/// Storing HA1 (`H(username:realm:password)`, lowercase hex, per hash function) instead of
/// the password is supported; such an HA1 is only valid for the realm it was computed for,
/// and only challenges whose algorithm uses the same hash can be answered. The `Debug`
/// output never shows the secret.
#[derive(Clone)]
pub enum Secret {
    /// Plain password.
    Password(String),
    /// Pre-computed HA1 values.
    Ha1 {
        /// HA1 for `MD5` and `MD5-sess` (32 hex digits).
        md5: Option<String>,
        /// HA1 for `SHA-256` and `SHA-256-sess` (64 hex digits).
        sha256: Option<String>,
    },
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn redacted(v: &Option<String>) -> &'static str {
            if v.is_some() {
                "Some(<redacted>)"
            } else {
                "None"
            }
        }
        match self {
            Self::Password(_) => f.write_str("Password(<redacted>)"),
            Self::Ha1 { md5, sha256 } => write!(
                f,
                "Ha1 {{ md5: {}, sha256: {} }}",
                redacted(md5),
                redacted(sha256)
            ),
        }
    }
}

/// A user name with its secret.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Authentication user name (often, not always, the user part of the AOR).
    pub username: String,
    /// Password or stored HA1.
    pub secret: Secret,
}

impl Credentials {
    /// Credentials from a user name and any [`Secret`].
    pub fn new(username: impl Into<String>, secret: Secret) -> Self {
        Self {
            username: username.into(),
            secret,
        }
    }

    /// Credentials from a user name and a plain password.
    pub fn with_password(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::new(username, Secret::Password(password.into()))
    }

    /// Base HA1 (`H(username:realm:password)` or the stored value) for `algorithm`.
    fn base_ha1(&self, realm: &str, algorithm: &Algorithm) -> Result<String, AuthError> {
        let Some(hash) = algorithm.hash() else {
            return Err(AuthError::UnsupportedAlgorithm(
                algorithm.as_str().to_owned(),
            ));
        };
        match &self.secret {
            Secret::Password(password) => {
                Ok(hash.hex(format!("{}:{realm}:{password}", self.username).as_bytes()))
            }
            Secret::Ha1 { md5, sha256 } => {
                let stored = match hash {
                    HashKind::Md5 => md5,
                    HashKind::Sha256 => sha256,
                };
                let Some(stored) = stored else {
                    return Err(AuthError::NoMatchingHa1 {
                        realm: realm.to_owned(),
                        algorithm: algorithm.clone(),
                    });
                };
                let stored = stored.trim();
                if stored.len() != hash.hex_len() || !stored.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(AuthError::InvalidHa1 {
                        realm: realm.to_owned(),
                    });
                }
                Ok(stored.to_ascii_lowercase())
            }
        }
    }
}

/// Credentials per realm, with an optional default used for any other realm.
#[derive(Clone, Debug, Default)]
pub struct CredentialStore {
    by_realm: HashMap<String, Credentials>,
    default: Option<Credentials>,
}

impl CredentialStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store whose only entry is a default for every realm.
    pub fn with_default(credentials: Credentials) -> Self {
        Self {
            by_realm: HashMap::new(),
            default: Some(credentials),
        }
    }

    /// Sets the credentials for one realm (exact, case-sensitive match), returning any
    /// previous entry.
    pub fn insert(
        &mut self,
        realm: impl Into<String>,
        credentials: Credentials,
    ) -> Option<Credentials> {
        self.by_realm.insert(realm.into(), credentials)
    }

    /// Removes the credentials for one realm.
    pub fn remove(&mut self, realm: &str) -> Option<Credentials> {
        self.by_realm.remove(realm)
    }

    /// Sets (or clears, with `None`) the default used for realms without an entry.
    pub fn set_default(&mut self, credentials: Option<Credentials>) {
        self.default = credentials;
    }

    /// Credentials for `realm`: its own entry, else the default.
    pub fn get(&self, realm: &str) -> Option<&Credentials> {
        self.by_realm.get(realm).or(self.default.as_ref())
    }
}

/// Everything needed to answer one challenge except the per-request values. The HA1 inside
/// is secret-equivalent, hence the redacting `Debug`.
#[derive(Clone)]
struct Prepared {
    username: String,
    algorithm: Algorithm,
    hash: HashKind,
    base_ha1: String,
    qop: Option<Qop>,
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prepared")
            .field("username", &self.username)
            .field("algorithm", &self.algorithm)
            .field("qop", &self.qop)
            .finish_non_exhaustive()
    }
}

impl Prepared {
    fn new(challenge: &Challenge, credentials: &Credentials) -> Result<Self, AuthError> {
        let algorithm = challenge.effective_algorithm();
        let Some(hash) = algorithm.hash() else {
            return Err(AuthError::UnsupportedAlgorithm(
                algorithm.as_str().to_owned(),
            ));
        };
        let qop = challenge.selected_qop()?;
        for (field, value) in [
            ("username", credentials.username.as_str()),
            ("realm", challenge.realm.as_str()),
            ("nonce", challenge.nonce.as_str()),
            ("opaque", challenge.opaque.as_deref().unwrap_or("")),
        ] {
            if value.bytes().any(is_ctl) {
                return Err(AuthError::InvalidCharacter(field));
            }
        }
        let base_ha1 = credentials.base_ha1(&challenge.realm, &algorithm)?;
        Ok(Self {
            username: credentials.username.clone(),
            algorithm,
            hash,
            base_ha1,
            qop,
        })
    }

    /// Whether this answer needs a client nonce.
    fn needs_cnonce(&self) -> bool {
        self.qop.is_some() || self.algorithm.is_session()
    }

    fn respond(
        &self,
        challenge: &Challenge,
        method: &str,
        uri: &str,
        body: &[u8],
        nc: u32,
        cnonce: &str,
    ) -> DigestResponse {
        let h = |s: String| self.hash.hex(s.as_bytes());
        let nonce = &challenge.nonce;
        let ha1 = if self.algorithm.is_session() {
            h(format!("{}:{nonce}:{cnonce}", self.base_ha1))
        } else {
            self.base_ha1.clone()
        };
        let ha2 = match self.qop {
            Some(Qop::AuthInt) => h(format!("{method}:{uri}:{}", self.hash.hex(body))),
            _ => h(format!("{method}:{uri}")),
        };
        let response = match &self.qop {
            Some(qop) => h(format!(
                "{ha1}:{nonce}:{}:{cnonce}:{qop}:{ha2}",
                format_nc(nc)
            )),
            None => h(format!("{ha1}:{nonce}:{ha2}")),
        };
        DigestResponse {
            username: self.username.clone(),
            realm: challenge.realm.clone(),
            nonce: nonce.clone(),
            uri: uri.to_owned(),
            response,
            algorithm: challenge.algorithm.as_ref().map(|_| self.algorithm.clone()),
            opaque: challenge.opaque.clone(),
            qop: self.qop.clone(),
            nc: self.qop.as_ref().map(|_| nc),
            cnonce: self.needs_cnonce().then(|| cnonce.to_owned()),
        }
    }
}

/// The parameters of one `Authorization` / `Proxy-Authorization` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestResponse {
    /// User name.
    pub username: String,
    /// Realm, echoed from the challenge.
    pub realm: String,
    /// Server nonce, echoed from the challenge.
    pub nonce: String,
    /// Digest URI (the Request-URI).
    pub uri: String,
    /// The computed `response` digest (lowercase hex).
    pub response: String,
    /// Algorithm, present when the challenge named one.
    pub algorithm: Option<Algorithm>,
    /// Opaque value, echoed from the challenge.
    pub opaque: Option<String>,
    /// Chosen qop; `None` when the challenge offered none.
    pub qop: Option<Qop>,
    /// Nonce count; sent only together with `qop`.
    pub nc: Option<u32>,
    /// Client nonce; sent with `qop` or a `-sess` algorithm.
    pub cnonce: Option<String>,
}

impl DigestResponse {
    /// Computes the answer to `challenge` for a request with `method`, Request-URI `uri` and
    /// `body` (only hashed for `qop=auth-int`), using nonce count `nc` and client nonce
    /// `cnonce` exactly as given. Pure: the same inputs always give the same output.
    ///
    /// # Errors
    ///
    /// [`AuthError::UnsupportedAlgorithm`], [`AuthError::UnsupportedQop`],
    /// [`AuthError::NoMatchingHa1`] / [`AuthError::InvalidHa1`] for stored-HA1 accounts that
    /// cannot answer, [`AuthError::InvalidCharacter`] for control characters in echoed values.
    pub fn compute(
        challenge: &Challenge,
        credentials: &Credentials,
        method: &str,
        uri: &str,
        body: &[u8],
        nc: u32,
        cnonce: &str,
    ) -> Result<Self, AuthError> {
        if uri.bytes().any(is_ctl) {
            return Err(AuthError::InvalidCharacter("uri"));
        }
        if cnonce.bytes().any(is_ctl) {
            return Err(AuthError::InvalidCharacter("cnonce"));
        }
        let prepared = Prepared::new(challenge, credentials)?;
        Ok(prepared.respond(challenge, method, uri, body, nc, cnonce))
    }

    /// The header value, e.g. `Digest username="alice", realm="example.com", ...`.
    pub fn to_header_value(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for DigestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Digest username={}, realm={}, nonce={}, uri={}, response={}",
            Quoted(&self.username),
            Quoted(&self.realm),
            Quoted(&self.nonce),
            Quoted(&self.uri),
            Quoted(&self.response),
        )?;
        if let Some(algorithm) = &self.algorithm {
            write!(f, ", algorithm={algorithm}")?;
        }
        if let Some(cnonce) = &self.cnonce {
            write!(f, ", cnonce={}", Quoted(cnonce))?;
        }
        if let Some(opaque) = &self.opaque {
            write!(f, ", opaque={}", Quoted(opaque))?;
        }
        if let Some(qop) = &self.qop {
            write!(f, ", qop={qop}")?;
        }
        if let Some(nc) = self.nc {
            write!(f, ", nc={}", format_nc(nc))?;
        }
        Ok(())
    }
}

/// Writes a quoted-string, escaping `"` and `\`. Control characters cannot be represented
/// in a quoted-string and are dropped (defence against header injection).
struct Quoted<'a>(&'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        f.write_char('"')?;
        for c in self.0.chars() {
            match c {
                '"' | '\\' => {
                    f.write_char('\\')?;
                    f.write_char(c)?;
                }
                c if c.is_control() && c != '\t' => {}
                c => f.write_char(c)?,
            }
        }
        f.write_char('"')
    }
}

/// Formats a nonce count as exactly 8 lowercase hex digits (`10` → `0000000a`).
pub fn format_nc(nc: u32) -> String {
    format!("{nc:08x}")
}

/// A fresh client nonce: 16 random bytes from `rng` as 32 lowercase hex digits.
pub fn generate_cnonce(rng: &mut (impl RngCore + ?Sized)) -> String {
    let mut bytes = [0u8; CNONCE_BYTES];
    rng.fill_bytes(&mut bytes);
    to_hex(&bytes)
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    out
}

/// Cached challenge for one (header kind, realm).
#[derive(Debug, Clone)]
struct RealmState {
    header: AuthHeader,
    challenge: Challenge,
    prepared: Prepared,
    /// Requests sent with the current nonce (= last nonce count used).
    nc: u32,
    /// Client nonce fixed for the current nonce (`-sess` algorithms only).
    sess_cnonce: Option<String>,
    /// Consecutive stale challenges received right after answering a fresh one.
    stale_streak: u32,
    /// Terminally rejected; never answered again until reset.
    rejected: bool,
}

/// Digest state for one dialog or registration.
///
/// Remembers the last challenge per realm (separately for `WWW-Authenticate` and
/// `Proxy-Authenticate`), counts `nc` per nonce and decides whether a new challenge should be
/// retried:
///
/// * The first challenge for a realm, or one arriving after the cached nonce was used
///   successfully at least once (it was used for two or more requests), is accepted: retry.
/// * A challenge with `stale=false` arriving right after we answered a freshly received
///   challenge means the credentials are wrong: [`AuthError::Rejected`], and the realm stays
///   rejected until [`reset`](Self::reset) or [`set_credentials`](Self::set_credentials).
/// * `stale=true` means retry with the new nonce; only after more than
///   [`MAX_CONSECUTIVE_STALE`] of those in a row does the session give up with
///   [`AuthError::StaleLoop`].
#[derive(Debug, Clone)]
pub struct DigestSession {
    store: CredentialStore,
    states: Vec<RealmState>,
}

/// Outcome of evaluating the challenges for one realm.
enum RealmOutcome {
    Accept(Box<RealmState>),
    /// Terminal failure: mark the realm rejected and stop.
    Terminal(AuthError),
    /// Cannot answer (no credentials, unsupported algorithm, ...).
    Unanswerable(AuthError),
}

impl DigestSession {
    /// A session without any cached challenge, using `store` for credentials.
    pub fn new(store: CredentialStore) -> Self {
        Self {
            store,
            states: Vec::new(),
        }
    }

    /// The credentials in use.
    pub fn credentials(&self) -> &CredentialStore {
        &self.store
    }

    /// Replaces the credentials and forgets all cached challenges and rejections.
    pub fn set_credentials(&mut self, store: CredentialStore) {
        self.store = store;
        self.states.clear();
    }

    /// Forgets all cached challenges and rejections (credentials are kept).
    pub fn reset(&mut self) {
        self.states.clear();
    }

    /// Whether there is no cached challenge to answer (the next request goes out without
    /// credentials).
    pub fn is_empty(&self) -> bool {
        !self.states.iter().any(|s| !s.rejected)
    }

    /// Handles a 401 or 407 response: `challenge_values` are all its `WWW-Authenticate`
    /// (401) or `Proxy-Authenticate` (407) header values.
    ///
    /// `Ok(())` means: resend the request, calling
    /// [`authorization_headers`](Self::authorization_headers) for it. Any `Err` means: do not
    /// retry. Several realms may be challenged at once; every realm must be answerable. For
    /// a realm offered with several algorithms, SHA-256 is preferred over MD5 (RFC 8760) as
    /// long as the credentials can answer it. Values that are not Digest or fail to parse
    /// are ignored when at least one Digest challenge parses. On error the cached state is
    /// left as it was, except that rejected realms are marked as such.
    ///
    /// # Errors
    ///
    /// [`AuthError::Rejected`] (wrong credentials) and [`AuthError::StaleLoop`] are terminal
    /// for the realm. [`AuthError::NotChallengeStatus`], [`AuthError::NoChallenge`], parse
    /// errors when nothing parses, and the errors of [`DigestResponse::compute`] or
    /// [`AuthError::NoCredentials`] when a challenged realm cannot be answered.
    pub fn on_challenge<S: AsRef<str>>(
        &mut self,
        status: u16,
        challenge_values: &[S],
    ) -> Result<(), AuthError> {
        let header = AuthHeader::for_status(status).ok_or(AuthError::NotChallengeStatus(status))?;

        let mut parsed = Vec::new();
        let mut first_error = None;
        for value in challenge_values {
            match Challenge::parse(value.as_ref()) {
                Ok(challenge) => parsed.push(challenge),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if parsed.is_empty() {
            return Err(first_error.unwrap_or(AuthError::NoChallenge));
        }

        let mut realms: Vec<&str> = Vec::new();
        for challenge in &parsed {
            if !realms.contains(&challenge.realm.as_str()) {
                realms.push(&challenge.realm);
            }
        }

        let mut accepted = Vec::new();
        let mut terminal = Vec::new();
        let mut unanswerable = None;
        for realm in realms {
            let candidates: Vec<&Challenge> = parsed.iter().filter(|c| c.realm == realm).collect();
            match self.evaluate_realm(header, realm, &candidates) {
                RealmOutcome::Accept(state) => accepted.push(state),
                RealmOutcome::Terminal(e) => terminal.push((realm.to_owned(), e)),
                RealmOutcome::Unanswerable(e) => {
                    unanswerable.get_or_insert(e);
                }
            }
        }

        if let Some((_, first)) = terminal.first() {
            let error = first.clone();
            for (realm, _) in &terminal {
                if let Some(state) = self.find_mut(header, realm) {
                    state.rejected = true;
                }
            }
            return Err(error);
        }
        if let Some(e) = unanswerable {
            return Err(e);
        }
        for state in accepted {
            match self.find_mut(header, &state.challenge.realm) {
                Some(slot) => *slot = *state,
                None => self.states.push(*state),
            }
        }
        Ok(())
    }

    fn find(&self, header: AuthHeader, realm: &str) -> Option<&RealmState> {
        self.states
            .iter()
            .find(|s| s.header == header && s.challenge.realm == realm)
    }

    fn find_mut(&mut self, header: AuthHeader, realm: &str) -> Option<&mut RealmState> {
        self.states
            .iter_mut()
            .find(|s| s.header == header && s.challenge.realm == realm)
    }

    fn evaluate_realm(
        &self,
        header: AuthHeader,
        realm: &str,
        candidates: &[&Challenge],
    ) -> RealmOutcome {
        let prev = self.find(header, realm);
        if prev.is_some_and(|p| p.rejected) {
            return RealmOutcome::Terminal(AuthError::Rejected {
                realm: realm.to_owned(),
            });
        }

        // Pick the strongest challenge our credentials can answer.
        let mut best: Option<(u8, &Challenge, Prepared)> = None;
        let mut error = None;
        match self.store.get(realm) {
            None => {
                error = Some(AuthError::NoCredentials {
                    realm: realm.to_owned(),
                })
            }
            Some(credentials) => {
                for &challenge in candidates {
                    let rank = match challenge.effective_algorithm().hash() {
                        Some(HashKind::Sha256) => 2,
                        Some(HashKind::Md5) => 1,
                        None => 0,
                    };
                    if best.as_ref().is_some_and(|(r, _, _)| *r >= rank) {
                        continue;
                    }
                    match Prepared::new(challenge, credentials) {
                        Ok(prepared) => best = Some((rank, challenge, prepared)),
                        Err(e) => {
                            error.get_or_insert(e);
                        }
                    }
                }
            }
        }

        let stale = match &best {
            Some((_, challenge, _)) => challenge.stale,
            None => candidates.iter().any(|c| c.stale),
        };
        let mut stale_streak = 0;
        if let Some(prev) = prev {
            match prev.nc {
                // Never answered: the new challenge simply replaces it.
                0 => stale_streak = prev.stale_streak,
                // Answered exactly once and challenged straight back.
                1 => {
                    if !stale {
                        return RealmOutcome::Terminal(AuthError::Rejected {
                            realm: realm.to_owned(),
                        });
                    }
                    stale_streak = prev.stale_streak.saturating_add(1);
                    if stale_streak > MAX_CONSECUTIVE_STALE {
                        return RealmOutcome::Terminal(AuthError::StaleLoop {
                            realm: realm.to_owned(),
                        });
                    }
                }
                // The nonce was used again after the first answer, so that answer was
                // accepted: this is an expired nonce (servers do not always set stale=true).
                _ => {}
            }
        }

        match best {
            Some((_, challenge, prepared)) => RealmOutcome::Accept(Box::new(RealmState {
                header,
                challenge: challenge.clone(),
                prepared,
                nc: 0,
                sess_cnonce: None,
                stale_streak,
                rejected: false,
            })),
            None => RealmOutcome::Unanswerable(error.unwrap_or(AuthError::NoChallenge)),
        }
    }

    /// Credentials headers for an outgoing request: one `(header, value)` per cached
    /// challenge, each with its nonce count incremented. `request_uri` is the Request-URI,
    /// `body` the message body (hashed only for `qop=auth-int`), `rng` supplies client
    /// nonces. Empty when nothing has been challenged yet.
    pub fn authorization_headers(
        &mut self,
        method: &str,
        request_uri: &str,
        body: &[u8],
        rng: &mut (impl RngCore + ?Sized),
    ) -> Vec<(AuthHeader, String)> {
        let mut out = Vec::new();
        for state in self.states.iter_mut().filter(|s| !s.rejected) {
            state.nc = state.nc.saturating_add(1);
            let cnonce = if !state.prepared.needs_cnonce() {
                String::new()
            } else if state.prepared.algorithm.is_session() {
                state
                    .sess_cnonce
                    .get_or_insert_with(|| generate_cnonce(rng))
                    .clone()
            } else {
                generate_cnonce(rng)
            };
            let response = state.prepared.respond(
                &state.challenge,
                method,
                request_uri,
                body,
                state.nc,
                &cnonce,
            );
            out.push((state.header, response.to_header_value()));
        }
        out
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    const RFC2617_CHALLENGE: &str = r#"Digest
                 realm="testrealm@host.com",
                 qop="auth,auth-int",
                 nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093",
                 opaque="5ccc069c403ebaf9f0171e9517f40e41""#;

    const RFC7616_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const RFC7616_OPAQUE: &str = "FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS";
    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";
    const RFC7616_REALM: &str = "http-auth@example.org";
    const RFC7616_PASSWORD: &str = "Circle of Life";

    fn rfc7616_challenge(algorithm: &str) -> String {
        format!(
            "Digest\n    realm=\"{RFC7616_REALM}\",\n    qop=\"auth, auth-int\",\n    \
             algorithm={algorithm},\n    nonce=\"{RFC7616_NONCE}\",\n    opaque=\"{RFC7616_OPAQUE}\""
        )
    }

    fn rng() -> StdRng {
        StdRng::seed_from_u64(7)
    }

    fn md5_hex(s: &str) -> String {
        to_hex(&Md5::digest(s.as_bytes()))
    }

    fn sha256_hex(s: &str) -> String {
        to_hex(&Sha256::digest(s.as_bytes()))
    }

    /// Extracts a parameter from one of our own header values.
    fn param(value: &str, name: &str) -> Option<String> {
        let rest = value.strip_prefix("Digest ")?;
        for part in rest.split(", ") {
            let (k, v) = part.split_once('=')?;
            if k == name {
                return Some(v.trim_matches('"').to_owned());
            }
        }
        None
    }

    fn session(user: &str, password: &str) -> DigestSession {
        DigestSession::new(CredentialStore::with_default(Credentials::with_password(
            user, password,
        )))
    }

    fn challenge(realm: &str, nonce: &str, extra: &str) -> String {
        format!(r#"Digest realm="{realm}", nonce="{nonce}", qop="auth"{extra}"#)
    }

    // ---- RFC vectors -------------------------------------------------------------------

    #[test]
    fn rfc2617_example() {
        let ch = Challenge::parse(RFC2617_CHALLENGE).unwrap();
        let creds = Credentials::with_password("Mufasa", "Circle Of Life");
        let r = DigestResponse::compute(&ch, &creds, "GET", "/dir/index.html", b"", 1, "0a4f113b")
            .unwrap();
        assert_eq!(r.response, "6629fae49393a05397450978507c4ef1");
        assert_eq!(r.qop, Some(Qop::Auth));
        assert_eq!(r.algorithm, None, "no algorithm in challenge, none echoed");
        let v = r.to_header_value();
        assert_eq!(
            v,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", cnonce=\"0a4f113b\", \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", qop=auth, nc=00000001"
        );
    }

    #[test]
    fn rfc7616_md5_example() {
        let ch = Challenge::parse(&rfc7616_challenge("MD5")).unwrap();
        let creds = Credentials::with_password("Mufasa", RFC7616_PASSWORD);
        let r = DigestResponse::compute(
            &ch,
            &creds,
            "GET",
            "/dir/index.html",
            b"",
            1,
            RFC7616_CNONCE,
        )
        .unwrap();
        assert_eq!(r.response, "8ca523f5e9506fed4657c9700eebdbec");
        let v = r.to_header_value();
        assert!(v.contains(", algorithm=MD5,"), "{v}");
        assert!(v.contains(&format!("opaque=\"{RFC7616_OPAQUE}\"")), "{v}");
        assert!(v.contains("qop=auth, nc=00000001"), "{v}");
    }

    #[test]
    fn rfc7616_sha256_example() {
        let ch = Challenge::parse(&rfc7616_challenge("SHA-256")).unwrap();
        assert_eq!(ch.algorithm, Some(Algorithm::Sha256));
        let creds = Credentials::with_password("Mufasa", RFC7616_PASSWORD);
        let r = DigestResponse::compute(
            &ch,
            &creds,
            "GET",
            "/dir/index.html",
            b"",
            1,
            RFC7616_CNONCE,
        )
        .unwrap();
        assert_eq!(
            r.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
        assert!(r.to_header_value().contains(", algorithm=SHA-256,"));
    }

    // ---- stored HA1 --------------------------------------------------------------------

    fn ha1_only(md5: bool, sha256: bool) -> Credentials {
        let base = format!("Mufasa:{RFC7616_REALM}:{RFC7616_PASSWORD}");
        Credentials::new(
            "Mufasa",
            Secret::Ha1 {
                md5: md5.then(|| md5_hex(&base)),
                sha256: sha256.then(|| sha256_hex(&base).to_ascii_uppercase()),
            },
        )
    }

    #[test]
    fn ha1_only_md5_account() {
        let ch = Challenge::parse(&rfc7616_challenge("MD5")).unwrap();
        let r = DigestResponse::compute(
            &ch,
            &ha1_only(true, false),
            "GET",
            "/dir/index.html",
            b"",
            1,
            RFC7616_CNONCE,
        )
        .unwrap();
        assert_eq!(r.response, "8ca523f5e9506fed4657c9700eebdbec");

        let sha = Challenge::parse(&rfc7616_challenge("SHA-256")).unwrap();
        let err = DigestResponse::compute(&sha, &ha1_only(true, false), "GET", "/", b"", 1, "x")
            .unwrap_err();
        assert_eq!(
            err,
            AuthError::NoMatchingHa1 {
                realm: RFC7616_REALM.into(),
                algorithm: Algorithm::Sha256
            }
        );
    }

    #[test]
    fn ha1_only_sha256_account_uppercase_hex_accepted() {
        let ch = Challenge::parse(&rfc7616_challenge("SHA-256")).unwrap();
        let r = DigestResponse::compute(
            &ch,
            &ha1_only(false, true),
            "GET",
            "/dir/index.html",
            b"",
            1,
            RFC7616_CNONCE,
        )
        .unwrap();
        assert_eq!(
            r.response,
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );

        let md5 = Challenge::parse(&rfc7616_challenge("MD5")).unwrap();
        assert!(matches!(
            DigestResponse::compute(&md5, &ha1_only(false, true), "GET", "/", b"", 1, "x"),
            Err(AuthError::NoMatchingHa1 { .. })
        ));
    }

    #[test]
    fn invalid_stored_ha1_is_an_error() {
        let ch = Challenge::parse(&rfc7616_challenge("MD5")).unwrap();
        let creds = Credentials::new(
            "u",
            Secret::Ha1 {
                md5: Some("xyz".into()),
                sha256: None,
            },
        );
        assert_eq!(
            DigestResponse::compute(&ch, &creds, "GET", "/", b"", 1, "c"),
            Err(AuthError::InvalidHa1 {
                realm: RFC7616_REALM.into()
            })
        );
    }

    #[test]
    fn sess_variants_from_password_and_stored_ha1() {
        for (alg, h) in [
            ("MD5-sess", md5_hex as fn(&str) -> String),
            ("SHA-256-sess", sha256_hex as fn(&str) -> String),
        ] {
            let ch = Challenge::parse(&rfc7616_challenge(alg)).unwrap();
            let base = h(&format!("Mufasa:{RFC7616_REALM}:{RFC7616_PASSWORD}"));
            let ha1 = h(&format!("{base}:{RFC7616_NONCE}:{RFC7616_CNONCE}"));
            let ha2 = h("INVITE:sip:bob@example.org");
            let expected = h(&format!(
                "{ha1}:{RFC7616_NONCE}:00000001:{RFC7616_CNONCE}:auth:{ha2}"
            ));

            let pw = Credentials::with_password("Mufasa", RFC7616_PASSWORD);
            let stored = Credentials::new(
                "Mufasa",
                if alg.starts_with("MD5") {
                    Secret::Ha1 {
                        md5: Some(base.clone()),
                        sha256: None,
                    }
                } else {
                    Secret::Ha1 {
                        md5: None,
                        sha256: Some(base.clone()),
                    }
                },
            );
            for creds in [pw, stored] {
                let r = DigestResponse::compute(
                    &ch,
                    &creds,
                    "INVITE",
                    "sip:bob@example.org",
                    b"",
                    1,
                    RFC7616_CNONCE,
                )
                .unwrap();
                assert_eq!(r.response, expected, "{alg}");
                assert!(r.to_header_value().contains(&format!("algorithm={alg}")));
            }
        }
    }

    #[test]
    fn auth_int_only_hashes_body() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-int""#).unwrap();
        let creds = Credentials::with_password("u", "p");
        let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
        let r = DigestResponse::compute(&ch, &creds, "INVITE", "sip:b@x", body, 1, "cn").unwrap();
        let ha1 = md5_hex("u:r:p");
        let hbody = to_hex(&Md5::digest(body));
        let ha2 = md5_hex(&format!("INVITE:sip:b@x:{hbody}"));
        assert_eq!(
            r.response,
            md5_hex(&format!("{ha1}:n:00000001:cn:auth-int:{ha2}"))
        );
        assert_eq!(r.qop, Some(Qop::AuthInt));
        assert!(r.to_header_value().contains("qop=auth-int"));
        // Different body, different response.
        let r2 = DigestResponse::compute(&ch, &creds, "INVITE", "sip:b@x", b"", 1, "cn").unwrap();
        assert_ne!(r.response, r2.response);
    }

    #[test]
    fn legacy_no_qop() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        let creds = Credentials::with_password("u", "p");
        let r = DigestResponse::compute(&ch, &creds, "REGISTER", "sip:x", b"", 1, "cn").unwrap();
        let expected = md5_hex(&format!(
            "{}:n:{}",
            md5_hex("u:r:p"),
            md5_hex("REGISTER:sip:x")
        ));
        assert_eq!(r.response, expected);
        let v = r.to_header_value();
        assert!(!v.contains("nc="), "{v}");
        assert!(!v.contains("cnonce="), "{v}");
        assert!(!v.contains("qop="), "{v}");
    }

    #[test]
    fn unknown_qop_only_is_an_error() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", qop="auth-conf""#).unwrap();
        let creds = Credentials::with_password("u", "p");
        assert_eq!(
            DigestResponse::compute(&ch, &creds, "GET", "/", b"", 1, "c"),
            Err(AuthError::UnsupportedQop)
        );
    }

    #[test]
    fn unsupported_algorithm_is_parsed_but_cannot_be_answered() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", algorithm=SHA-512-256"#).unwrap();
        assert_eq!(
            ch.algorithm,
            Some(Algorithm::Unsupported("SHA-512-256".into()))
        );
        assert!(!ch.effective_algorithm().is_supported());
        let creds = Credentials::with_password("u", "p");
        assert_eq!(
            DigestResponse::compute(&ch, &creds, "GET", "/", b"", 1, "c"),
            Err(AuthError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
    }

    #[test]
    fn quotes_in_username_are_escaped_but_hashed_raw() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        let creds = Credentials::with_password(r#"a"b\c"#, "p");
        let r = DigestResponse::compute(&ch, &creds, "GET", "/", b"", 1, "c").unwrap();
        assert!(
            r.to_header_value()
                .starts_with(r#"Digest username="a\"b\\c","#)
        );
        let ha1 = md5_hex(r#"a"b\c:r:p"#);
        assert_eq!(
            r.response,
            md5_hex(&format!("{ha1}:n:{}", md5_hex("GET:/")))
        );
    }

    #[test]
    fn control_characters_rejected() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n""#).unwrap();
        let creds = Credentials::with_password("u\r\nX-Evil: 1", "p");
        assert_eq!(
            DigestResponse::compute(&ch, &creds, "GET", "/", b"", 1, "c"),
            Err(AuthError::InvalidCharacter("username"))
        );
        let ok = Credentials::with_password("u", "p");
        assert_eq!(
            DigestResponse::compute(&ch, &ok, "GET", "/\r\n", b"", 1, "c"),
            Err(AuthError::InvalidCharacter("uri"))
        );
    }

    // ---- nc ----------------------------------------------------------------------------

    #[test]
    fn nc_formatting() {
        assert_eq!(format_nc(1), "00000001");
        assert_eq!(format_nc(9), "00000009");
        assert_eq!(format_nc(10), "0000000a");
        assert_eq!(format_nc(255), "000000ff");
        assert_eq!(format_nc(256), "00000100");
        assert_eq!(format_nc(u32::MAX), "ffffffff");
    }

    #[test]
    fn nc_in_responses_is_hex_and_part_of_the_digest() {
        let ch = Challenge::parse(RFC2617_CHALLENGE).unwrap();
        let creds = Credentials::with_password("Mufasa", "Circle Of Life");
        for (nc, text) in [
            (9, "00000009"),
            (10, "0000000a"),
            (255, "000000ff"),
            (256, "00000100"),
        ] {
            let r = DigestResponse::compute(&ch, &creds, "GET", "/dir/index.html", b"", nc, "c")
                .unwrap();
            let v = r.to_header_value();
            assert_eq!(param(&v, "nc").as_deref(), Some(text));
            let ha1 = md5_hex("Mufasa:testrealm@host.com:Circle Of Life");
            let ha2 = md5_hex("GET:/dir/index.html");
            let expected = md5_hex(&format!(
                "{ha1}:dcd98b7102dd2f0e8b11d0f600bfb0c093:{text}:c:auth:{ha2}"
            ));
            assert_eq!(r.response, expected);
        }
    }

    #[test]
    fn session_counts_nc_per_nonce() {
        let mut s = session("u", "p");
        assert!(s.is_empty());
        assert!(
            s.authorization_headers("REGISTER", "sip:x", b"", &mut rng())
                .is_empty()
        );
        s.on_challenge(401, &[challenge("r", "n1", "")]).unwrap();
        assert!(!s.is_empty());
        let mut rng = rng();
        let mut cnonces = Vec::new();
        for i in 1..=256u32 {
            let hdrs = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
            assert_eq!(hdrs.len(), 1);
            assert_eq!(hdrs[0].0, AuthHeader::Authorization);
            let nc = param(&hdrs[0].1, "nc").unwrap();
            assert_eq!(nc, format!("{i:08x}"));
            if i == 10 {
                assert_eq!(nc, "0000000a");
            }
            if i == 16 {
                assert_eq!(nc, "00000010");
            }
            let cnonce = param(&hdrs[0].1, "cnonce").unwrap();
            assert_eq!(cnonce.len(), 32);
            assert!(
                cnonce
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            );
            cnonces.push(cnonce);
        }
        cnonces.sort();
        cnonces.dedup();
        assert_eq!(cnonces.len(), 256, "fresh cnonce per request");

        // New nonce (stale) resets nc to 1.
        s.on_challenge(401, &[challenge("r", "n2", ", stale=TRUE")])
            .unwrap();
        let hdrs = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
        assert_eq!(param(&hdrs[0].1, "nonce").as_deref(), Some("n2"));
        assert_eq!(param(&hdrs[0].1, "nc").as_deref(), Some("00000001"));
    }

    #[test]
    fn session_response_matches_pure_computation() {
        let mut s = session("Mufasa", "Circle Of Life");
        s.on_challenge(401, &[RFC2617_CHALLENGE]).unwrap();
        let hdrs = s.authorization_headers("GET", "/dir/index.html", b"", &mut rng());
        let v = &hdrs[0].1;
        let cnonce = param(v, "cnonce").unwrap();
        let ch = Challenge::parse(RFC2617_CHALLENGE).unwrap();
        let creds = Credentials::with_password("Mufasa", "Circle Of Life");
        let expected =
            DigestResponse::compute(&ch, &creds, "GET", "/dir/index.html", b"", 1, &cnonce)
                .unwrap();
        assert_eq!(v, &expected.to_header_value());
    }

    #[test]
    fn session_sess_keeps_cnonce_per_nonce() {
        let mut s = session("u", "p");
        s.on_challenge(401, &[challenge("r", "n1", ", algorithm=MD5-sess")])
            .unwrap();
        let mut rng = rng();
        let a = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
        let b = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
        assert_eq!(param(&a[0].1, "cnonce"), param(&b[0].1, "cnonce"));
        assert_eq!(param(&b[0].1, "nc").as_deref(), Some("00000002"));
        s.on_challenge(
            401,
            &[challenge("r", "n2", ", algorithm=MD5-sess, stale=true")],
        )
        .unwrap();
        let c = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
        assert_ne!(param(&a[0].1, "cnonce"), param(&c[0].1, "cnonce"));
    }

    // ---- retry decisions ---------------------------------------------------------------

    #[test]
    fn stale_true_retries_with_new_nonce() {
        let mut s = session("u", "p");
        let mut rng = rng();
        s.on_challenge(401, &[challenge("r", "n1", "")]).unwrap();
        s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
        // Challenged straight back, but stale: not a failure.
        s.on_challenge(401, &[challenge("r", "n2", ", stale=true")])
            .unwrap();
        let hdrs = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
        assert_eq!(param(&hdrs[0].1, "nonce").as_deref(), Some("n2"));
        assert_eq!(param(&hdrs[0].1, "nc").as_deref(), Some("00000001"));
    }

    #[test]
    fn wrong_password_detected_without_looping() {
        let mut s = session("u", "wrong");
        let mut rng = rng();
        s.on_challenge(401, &[challenge("r", "n1", "")]).unwrap();
        assert_eq!(
            s.authorization_headers("REGISTER", "sip:x", b"", &mut rng)
                .len(),
            1
        );
        let err = s
            .on_challenge(401, &[challenge("r", "n2", "")])
            .unwrap_err();
        assert_eq!(err, AuthError::Rejected { realm: "r".into() });
        assert!(err.to_string().contains("rejected"));
        // Same nonce again, stale=false: also rejected.
        let mut s2 = session("u", "wrong");
        s2.on_challenge(401, &[challenge("r", "n1", ", stale=FALSE")])
            .unwrap();
        s2.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
        assert!(matches!(
            s2.on_challenge(401, &[challenge("r", "n1", ", stale=false")]),
            Err(AuthError::Rejected { .. })
        ));

        // The realm stays rejected: no credentials sent, further challenges still refused.
        assert!(s.is_empty());
        assert!(
            s.authorization_headers("REGISTER", "sip:x", b"", &mut rng)
                .is_empty()
        );
        for n in ["n3", "n4"] {
            assert!(matches!(
                s.on_challenge(401, &[challenge("r", n, ", stale=true")]),
                Err(AuthError::Rejected { .. })
            ));
        }
        // After new credentials, starting over is possible.
        s.set_credentials(CredentialStore::with_default(Credentials::with_password(
            "u", "ok",
        )));
        s.on_challenge(401, &[challenge("r", "n5", "")]).unwrap();
        assert_eq!(
            s.authorization_headers("REGISTER", "sip:x", b"", &mut rng)
                .len(),
            1
        );
    }

    #[test]
    fn repeated_challenge_before_answering_is_not_a_failure() {
        let mut s = session("u", "p");
        s.on_challenge(401, &[challenge("r", "n1", "")]).unwrap();
        s.on_challenge(401, &[challenge("r", "n2", "")]).unwrap();
        let hdrs = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng());
        assert_eq!(param(&hdrs[0].1, "nonce").as_deref(), Some("n2"));
    }

    #[test]
    fn expired_nonce_after_successful_use_retries_once() {
        // Servers that never set stale=true: a nonce used successfully for a while, then a
        // fresh challenge. One retry is allowed; a second challenge is a rejection.
        let mut s = session("u", "p");
        let mut rng = rng();
        s.on_challenge(401, &[challenge("r", "n1", "")]).unwrap();
        s.authorization_headers("REGISTER", "sip:x", b"", &mut rng); // accepted (200)
        s.authorization_headers("REGISTER", "sip:x", b"", &mut rng); // refresh, nc=2
        s.on_challenge(401, &[challenge("r", "n2", "")]).unwrap();
        s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
        assert_eq!(
            s.on_challenge(401, &[challenge("r", "n3", "")]),
            Err(AuthError::Rejected { realm: "r".into() })
        );
    }

    #[test]
    fn endless_stale_gives_up() {
        let mut s = session("u", "p");
        let mut rng = rng();
        s.on_challenge(401, &[challenge("r", "n0", "")]).unwrap();
        let mut outcome = Ok(());
        for i in 1..=10 {
            s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
            outcome = s.on_challenge(401, &[challenge("r", &format!("n{i}"), ", stale=true")]);
            if outcome.is_err() {
                assert_eq!(i, MAX_CONSECUTIVE_STALE + 1);
                break;
            }
        }
        assert_eq!(outcome, Err(AuthError::StaleLoop { realm: "r".into() }));
    }

    #[test]
    fn stale_streak_resets_after_success() {
        let mut s = session("u", "p");
        let mut rng = rng();
        s.on_challenge(401, &[challenge("r", "n0", "")]).unwrap();
        for round in 0..5 {
            // Nonce used successfully twice, then expires with stale=true.
            s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
            s.authorization_headers("REGISTER", "sip:x", b"", &mut rng);
            s.on_challenge(401, &[challenge("r", &format!("m{round}"), ", stale=true")])
                .unwrap();
        }
    }

    // ---- multiple challenges -----------------------------------------------------------

    #[test]
    fn prefers_sha256_for_same_realm_in_any_order() {
        let md5 = challenge("r", "n-md5", ", algorithm=MD5");
        let sha = challenge("r", "n-sha", ", algorithm=SHA-256");
        for order in [[&md5, &sha], [&sha, &md5]] {
            let mut s = session("u", "p");
            s.on_challenge(401, &order).unwrap();
            let hdrs = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng());
            assert_eq!(hdrs.len(), 1);
            assert_eq!(param(&hdrs[0].1, "algorithm").as_deref(), Some("SHA-256"));
            assert_eq!(param(&hdrs[0].1, "nonce").as_deref(), Some("n-sha"));
            assert_eq!(param(&hdrs[0].1, "response").unwrap().len(), 64);
        }
    }

    #[test]
    fn falls_back_to_md5_when_sha256_not_answerable() {
        let md5 = challenge("r", "n-md5", "");
        let sha = challenge("r", "n-sha", ", algorithm=SHA-256");
        let creds = Credentials::new(
            "u",
            Secret::Ha1 {
                md5: Some(md5_hex("u:r:p")),
                sha256: None,
            },
        );
        let mut s = DigestSession::new(CredentialStore::with_default(creds));
        s.on_challenge(401, &[&sha, &md5]).unwrap();
        let hdrs = s.authorization_headers("REGISTER", "sip:x", b"", &mut rng());
        assert_eq!(param(&hdrs[0].1, "nonce").as_deref(), Some("n-md5"));
        assert_eq!(param(&hdrs[0].1, "algorithm"), None);

        // Unsupported algorithm next to MD5: MD5 is used.
        let mut s = session("u", "p");
        s.on_challenge(
            401,
            &[
                challenge("r", "n-x", ", algorithm=SHA-512-256"),
                md5.clone(),
            ],
        )
        .unwrap();
        assert_eq!(
            s.authorization_headers("R", "sip:x", b"", &mut rng()).len(),
            1
        );

        // Only unsupported: error.
        let mut s = session("u", "p");
        assert_eq!(
            s.on_challenge(401, &[challenge("r", "n-x", ", algorithm=SHA-512-256")]),
            Err(AuthError::UnsupportedAlgorithm("SHA-512-256".into()))
        );
        assert!(s.is_empty());

        // HA1 for MD5 only, challenge SHA-256 only: error.
        let creds = Credentials::new(
            "u",
            Secret::Ha1 {
                md5: Some(md5_hex("u:r:p")),
                sha256: None,
            },
        );
        let mut s = DigestSession::new(CredentialStore::with_default(creds));
        assert!(matches!(
            s.on_challenge(401, &[sha]),
            Err(AuthError::NoMatchingHa1 { .. })
        ));
    }

    #[test]
    fn several_realms_and_credential_store() {
        let mut store = CredentialStore::new();
        store.insert("alpha", Credentials::with_password("ua", "pa"));
        store.insert("beta", Credentials::with_password("ub", "pb"));
        let mut s = DigestSession::new(store.clone());
        s.on_challenge(
            401,
            &[
                challenge("alpha", "na", ""),
                challenge("beta", "nb", ", algorithm=SHA-256"),
            ],
        )
        .unwrap();
        let hdrs = s.authorization_headers("INVITE", "sip:b@x", b"", &mut rng());
        assert_eq!(hdrs.len(), 2);
        assert_eq!(param(&hdrs[0].1, "username").as_deref(), Some("ua"));
        assert_eq!(param(&hdrs[1].1, "username").as_deref(), Some("ub"));
        assert_eq!(param(&hdrs[1].1, "algorithm").as_deref(), Some("SHA-256"));

        // Unknown realm without default: error, and state unchanged.
        assert_eq!(
            s.on_challenge(401, &[challenge("gamma", "ng", "")]),
            Err(AuthError::NoCredentials {
                realm: "gamma".into()
            })
        );
        assert_eq!(
            s.authorization_headers("INVITE", "sip:b@x", b"", &mut rng())
                .len(),
            2
        );

        // Default covers unknown realms.
        store.set_default(Some(Credentials::with_password("dflt", "pd")));
        assert_eq!(
            store.get("gamma").map(|c| c.username.as_str()),
            Some("dflt")
        );
        assert_eq!(store.get("alpha").map(|c| c.username.as_str()), Some("ua"));
        let mut s = DigestSession::new(store);
        s.on_challenge(401, &[challenge("gamma", "ng", "")])
            .unwrap();
        let hdrs = s.authorization_headers("INVITE", "sip:b@x", b"", &mut rng());
        assert_eq!(param(&hdrs[0].1, "username").as_deref(), Some("dflt"));
    }

    #[test]
    fn proxy_and_www_challenges_are_separate() {
        let mut s = session("u", "p");
        let mut rng = rng();
        s.on_challenge(407, &[challenge("proxy", "np", "")])
            .unwrap();
        let hdrs = s.authorization_headers("INVITE", "sip:b@x", b"", &mut rng);
        assert_eq!(hdrs.len(), 1);
        assert_eq!(hdrs[0].0, AuthHeader::ProxyAuthorization);
        assert_eq!(hdrs[0].0.name(), "Proxy-Authorization");
        // Now the UAS challenges too (same realm name even): both are answered.
        s.on_challenge(401, &[challenge("proxy", "nw", "")])
            .unwrap();
        let hdrs = s.authorization_headers("INVITE", "sip:b@x", b"", &mut rng);
        assert_eq!(hdrs.len(), 2);
        assert_eq!(hdrs[0].0, AuthHeader::ProxyAuthorization);
        assert_eq!(param(&hdrs[0].1, "nc").as_deref(), Some("00000002"));
        assert_eq!(hdrs[1].0, AuthHeader::Authorization);
        assert_eq!(param(&hdrs[1].1, "nc").as_deref(), Some("00000001"));
    }

    #[test]
    fn on_challenge_input_errors() {
        let mut s = session("u", "p");
        assert_eq!(
            s.on_challenge(403, &[challenge("r", "n", "")]),
            Err(AuthError::NotChallengeStatus(403))
        );
        assert_eq!(
            s.on_challenge::<&str>(401, &[]),
            Err(AuthError::NoChallenge)
        );
        assert_eq!(
            s.on_challenge(401, &[r#"Basic realm="r""#]),
            Err(AuthError::NotDigest)
        );
        // Basic next to Digest is ignored.
        s.on_challenge(
            401,
            &[r#"Basic realm="r""#.to_owned(), challenge("r", "n", "")],
        )
        .unwrap();
        assert_eq!(AuthHeader::for_status(200), None);
        assert_eq!(
            AuthHeader::Authorization.challenge_header_name(),
            "WWW-Authenticate"
        );
    }

    // ---- parsing -----------------------------------------------------------------------

    #[test]
    fn parse_full_challenge() {
        let ch = Challenge::parse(
            "dIgEsT   realm = \"sip.example.com\" ,nonce=abc123,\t\tOPAQUE=\"o\",\r\n stale=TRUE, \
             algorithm=\"sha-256-SESS\", qop=\" auth-int ,auth \", domain=\"sip:a.example \
             sip:b.example\", foo=\"bar, baz\", userhash=false,,",
        )
        .unwrap();
        assert_eq!(
            ch,
            Challenge {
                realm: "sip.example.com".into(),
                nonce: "abc123".into(),
                opaque: Some("o".into()),
                stale: true,
                algorithm: Some(Algorithm::Sha256Sess),
                qop: vec![Qop::AuthInt, Qop::Auth],
                domain: vec!["sip:a.example".into(), "sip:b.example".into()],
            }
        );
        assert_eq!(ch.selected_qop(), Ok(Some(Qop::Auth)));
    }

    #[test]
    fn parse_defaults_and_lowercase_scheme() {
        let ch = Challenge::parse(r#"digest nonce="n",realm="r""#).unwrap();
        assert_eq!(ch.realm, "r");
        assert_eq!(ch.algorithm, None);
        assert_eq!(ch.effective_algorithm(), Algorithm::Md5);
        assert!(!ch.stale);
        assert!(ch.qop.is_empty());
        assert_eq!(ch.opaque, None);
        assert_eq!(ch.selected_qop(), Ok(None));
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", stale=False, qop=auth"#).unwrap();
        assert!(!ch.stale);
        assert_eq!(ch.qop, vec![Qop::Auth]);
    }

    #[test]
    fn parse_escapes() {
        let ch = Challenge::parse(r#"Digest realm="say \"hi\" \\ \o/", nonce="a\,b""#).unwrap();
        assert_eq!(ch.realm, r#"say "hi" \ o/"#);
        assert_eq!(ch.nonce, "a,b");
        let ch = Challenge::parse("Digest realm=\"caf\u{e9} \u{1f4de}\", nonce=\"\"").unwrap();
        assert_eq!(ch.realm, "caf\u{e9} \u{1f4de}");
        assert_eq!(ch.nonce, "");
        // Echoed realm is re-escaped.
        let ch = Challenge::parse(r#"Digest realm="a\"b", nonce="n""#).unwrap();
        let r = DigestResponse::compute(
            &ch,
            &Credentials::with_password("u", "p"),
            "GET",
            "/",
            b"",
            1,
            "c",
        )
        .unwrap();
        assert!(r.to_header_value().contains(r#"realm="a\"b""#));
    }

    #[test]
    fn parse_stops_at_next_scheme() {
        let ch = Challenge::parse(r#"Digest realm="r", nonce="n", Basic realm="other""#).unwrap();
        assert_eq!(ch.realm, "r");
    }

    #[test]
    fn parse_errors() {
        use AuthError::*;
        let cases: &[(&str, AuthError)] = &[
            ("", NotDigest),
            ("   ", NotDigest),
            (r#"Basic realm="r""#, NotDigest),
            (r#"Digestive realm="r", nonce="n""#, NotDigest),
            ("Digest", MissingParameter("realm")),
            (r#"Digest nonce="n""#, MissingParameter("realm")),
            (r#"Digest realm="r""#, MissingParameter("nonce")),
            (
                r#"Digest realm="r", nonce="n"#,
                Malformed("unterminated quoted string"),
            ),
            (
                r#"Digest realm="r\"#,
                Malformed("unterminated quoted string"),
            ),
            (
                r#"Digest realm="r", realm="s", nonce="n""#,
                Malformed("duplicate parameter"),
            ),
            (
                r#"Digest realm=, nonce="n""#,
                Malformed("empty parameter value"),
            ),
            (
                "Digest realm=\"a\r\nb\", nonce=n",
                Malformed("control character in quoted string"),
            ),
            (r#"Digest ="r""#, Malformed("expected parameter name")),
            (
                r#"Digest"realm""#,
                Malformed("expected whitespace after scheme"),
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                Challenge::parse(input).as_ref(),
                Err(expected),
                "input: {input:?}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let alphabet: &[u8] =
            b"Digest realm=nonce\"\\,= \t\r\nqop=auth-int stale algorithm\xff\x00";
        for i in 0..20_000 {
            let len = rng.random_range(0..64);
            let bytes: Vec<u8> = if i % 2 == 0 {
                (0..len).map(|_| rng.random()).collect()
            } else {
                (0..len)
                    .map(|_| alphabet[rng.random_range(0..alphabet.len())])
                    .collect()
            };
            let text = String::from_utf8_lossy(&bytes);
            let _ = Challenge::parse(&text);
            let _ = Challenge::parse(&format!("Digest {text}"));
        }
        // Every prefix of a valid challenge (on char boundaries).
        let full = "Digest realm=\"r\u{e9}\\\"x\", nonce=\"n\", qop=\"auth\", algorithm=SHA-256";
        for (idx, _) in full.char_indices() {
            let _ = Challenge::parse(&full[..idx]);
        }
        // Garbage fed through the session too.
        let mut s = session("u", "p");
        for _ in 0..1000 {
            let bytes: Vec<u8> = (0..rng.random_range(0..40)).map(|_| rng.random()).collect();
            let text = format!("Digest {}", String::from_utf8_lossy(&bytes));
            let _ = s.on_challenge(401, &[text]);
            let _ = s.authorization_headers("REGISTER", "sip:x", &bytes, &mut rng);
        }
    }

    // ---- secrets -----------------------------------------------------------------------

    #[test]
    fn debug_output_never_contains_secrets() {
        let password = "hunter2-SECRET";
        let ha1 = md5_hex("u:r:hunter2-SECRET");
        let sha = sha256_hex("u:r:hunter2-SECRET");
        let pw = Credentials::with_password("alice", password);
        let stored = Credentials::new(
            "bob",
            Secret::Ha1 {
                md5: Some(ha1.clone()),
                sha256: Some(sha.clone()),
            },
        );
        let mut store = CredentialStore::with_default(pw.clone());
        store.insert("r", stored.clone());
        let mut s = DigestSession::new(store.clone());
        s.on_challenge(
            401,
            &[
                challenge("r", "n", ""),
                challenge("q", "n", ", algorithm=SHA-256"),
            ],
        )
        .unwrap();
        let dumps = [
            format!("{pw:?}"),
            format!("{pw:#?}"),
            format!("{stored:?}"),
            format!("{store:?}"),
            format!("{s:?}"),
            format!("{s:#?}"),
            format!("{:?}", pw.secret),
        ];
        let ha1_q = md5_hex(&format!("alice:q:{password}"));
        let sha_q = sha256_hex(&format!("alice:q:{password}"));
        for dump in &dumps {
            for secret in [password, ha1.as_str(), sha.as_str(), &ha1_q, &sha_q] {
                assert!(!dump.contains(secret), "secret leaked in {dump}");
            }
            assert!(!dump.contains("hunter2"), "{dump}");
        }
        assert_eq!(format!("{:?}", pw.secret), "Password(<redacted>)");
        assert_eq!(
            format!(
                "{:?}",
                Secret::Ha1 {
                    md5: Some(ha1),
                    sha256: None
                }
            ),
            "Ha1 { md5: Some(<redacted>), sha256: None }"
        );
        assert!(dumps[0].contains("alice"), "user name is fine to show");
    }
}
