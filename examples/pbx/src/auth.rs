//! The server side of SIP digest authentication (RFC 3261 §22, RFC 2617, RFC 7616): nonces
//! with a lifetime and replay protection, challenges, and [`verify_authorization`], which
//! recomputes the response a client must have sent with the client-side
//! [`DigestResponse::compute`] of `handset-sip` and compares.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use handset_sip::auth::{Algorithm, Challenge, Credentials, DigestResponse, Qop};
use rand::RngCore;

/// The parameters of one `Authorization` / `Proxy-Authorization` header value.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DigestCredentials {
    /// `username`.
    pub username: String,
    /// `realm`.
    pub realm: String,
    /// `nonce`, echoed from our challenge.
    pub nonce: String,
    /// `uri`: the digest URI the client hashed.
    pub uri: String,
    /// `response`: the client's digest.
    pub response: String,
    /// `algorithm`, when given (absent means MD5).
    pub algorithm: Option<String>,
    /// `opaque`, echoed from our challenge.
    pub opaque: Option<String>,
    /// `qop` chosen by the client.
    pub qop: Option<String>,
    /// `nc`, the nonce count (parsed from 8 hex digits).
    pub nc: Option<u32>,
    /// `cnonce`, the client nonce.
    pub cnonce: Option<String>,
}

impl DigestCredentials {
    /// Parses `Digest username="alice", realm="...", ...`. `None` for another scheme or when
    /// `username`, `realm`, `nonce`, `uri` or `response` is missing or the syntax is broken.
    pub fn parse(value: &str) -> Option<DigestCredentials> {
        let value = value.trim_start();
        let (scheme, rest) = value.split_once([' ', '\t'])?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let mut c = DigestCredentials::default();
        let (mut username, mut realm, mut nonce, mut uri, mut response) =
            (None, None, None, None, None);
        for (name, value) in parse_params(rest)? {
            match name.to_ascii_lowercase().as_str() {
                "username" => username = Some(value),
                "realm" => realm = Some(value),
                "nonce" => nonce = Some(value),
                "uri" => uri = Some(value),
                "response" => response = Some(value),
                "algorithm" => c.algorithm = Some(value),
                "opaque" => c.opaque = Some(value),
                "qop" => c.qop = Some(value),
                "nc" => c.nc = Some(u32::from_str_radix(value.trim(), 16).ok()?),
                "cnonce" => c.cnonce = Some(value),
                _ => {}
            }
        }
        c.username = username?;
        c.realm = realm?;
        c.nonce = nonce?;
        c.uri = uri?;
        c.response = response?;
        Some(c)
    }
}

/// Splits `name=value, name="quoted \"value\""` into pairs. `None` on broken syntax.
fn parse_params(text: &str) -> Option<Vec<(String, String)>> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace() || *c == ',') {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(out);
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            name.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') || name.is_empty() {
            return None;
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' => break,
                    '\\' => value.push(chars.next()?),
                    c => value.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == ',' || c.is_whitespace() {
                    break;
                }
                value.push(c);
                chars.next();
            }
        }
        out.push((name, value));
    }
}

/// Whether `credentials` prove knowledge of `password` for a request with `method` (and
/// `body`, hashed only for `qop=auth-int`). Only the digest is checked here: whether the
/// nonce is ours and fresh is checked by the PBX's nonce store.
pub fn verify_authorization(
    credentials: &DigestCredentials,
    method: &str,
    body: &[u8],
    password: &str,
) -> bool {
    let algorithm = credentials.algorithm.as_deref().map(Algorithm::parse);
    if algorithm.as_ref().is_some_and(|a| !a.is_supported()) {
        return false;
    }
    let qop = match credentials.qop.as_deref() {
        None => Vec::new(),
        Some(q) => {
            let q = Qop::parse(q);
            if !matches!(q, Qop::Auth | Qop::AuthInt) {
                return false;
            }
            vec![q]
        }
    };
    let needs_cnonce = !qop.is_empty() || algorithm.as_ref().is_some_and(Algorithm::is_session);
    if needs_cnonce && credentials.cnonce.is_none() {
        return false;
    }
    if !qop.is_empty() && credentials.nc.is_none() {
        return false;
    }
    let challenge = Challenge {
        realm: credentials.realm.clone(),
        nonce: credentials.nonce.clone(),
        opaque: credentials.opaque.clone(),
        stale: false,
        algorithm,
        qop,
        domain: Vec::new(),
    };
    let user = Credentials::with_password(credentials.username.clone(), password);
    match DigestResponse::compute(
        &challenge,
        &user,
        method,
        &credentials.uri,
        body,
        credentials.nc.unwrap_or(0),
        credentials.cnonce.as_deref().unwrap_or(""),
    ) {
        Ok(expected) => constant_time_eq(
            expected.response.as_bytes(),
            credentials.response.to_ascii_lowercase().as_bytes(),
        ),
        Err(_) => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What checking a request's credentials found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Authenticated as this user.
    Ok(String),
    /// No credentials for our realm: challenge.
    Missing,
    /// Right password, but the nonce expired, is unknown or was replayed: challenge again
    /// with `stale=true`.
    Stale,
    /// Wrong password or unknown user: refuse (403).
    Forbidden(String),
}

struct NonceState {
    issued: Instant,
    last_nc: u32,
}

/// Nonces we issued, each valid for `lifetime`, with the highest nonce count seen (a request
/// must use a higher one: replay protection).
pub(crate) struct NonceStore {
    nonces: HashMap<String, NonceState>,
    lifetime: Duration,
    opaque: String,
}

impl NonceStore {
    pub(crate) fn new(lifetime: Duration, rng: &mut dyn RngCore) -> Self {
        NonceStore {
            nonces: HashMap::new(),
            lifetime,
            opaque: random_hex(rng, 8),
        }
    }

    /// A fresh nonce; forgets expired ones.
    pub(crate) fn issue(&mut self, now: Instant, rng: &mut dyn RngCore) -> String {
        let lifetime = self.lifetime;
        self.nonces
            .retain(|_, s| now.saturating_duration_since(s.issued) < lifetime);
        let nonce = random_hex(rng, 16);
        self.nonces.insert(
            nonce.clone(),
            NonceState {
                issued: now,
                last_nc: 0,
            },
        );
        nonce
    }

    /// The challenge header value (`WWW-Authenticate` or `Proxy-Authenticate`).
    pub(crate) fn challenge(
        &mut self,
        now: Instant,
        realm: &str,
        stale: bool,
        rng: &mut dyn RngCore,
    ) -> String {
        let nonce = self.issue(now, rng);
        let mut value = format!(
            "Digest realm=\"{realm}\", nonce=\"{nonce}\", opaque=\"{}\", algorithm=MD5, qop=\"auth\"",
            self.opaque
        );
        if stale {
            value.push_str(", stale=true");
        }
        value
    }

    /// Checks the credentials among `values` (the request's Authorization or
    /// Proxy-Authorization lines) for `realm`; `password` looks a user up.
    pub(crate) fn check<'a>(
        &mut self,
        now: Instant,
        values: impl Iterator<Item = &'a str>,
        realm: &str,
        method: &str,
        body: &[u8],
        password: impl Fn(&str) -> Option<String>,
    ) -> Verdict {
        let Some(credentials) = values
            .filter_map(DigestCredentials::parse)
            .find(|c| c.realm == realm)
        else {
            return Verdict::Missing;
        };
        let Some(secret) = password(&credentials.username) else {
            return Verdict::Forbidden(credentials.username);
        };
        if !verify_authorization(&credentials, method, body, &secret) {
            return Verdict::Forbidden(credentials.username);
        }
        let lifetime = self.lifetime;
        let fresh = match self.nonces.get_mut(&credentials.nonce) {
            Some(state) if now.saturating_duration_since(state.issued) < lifetime => {
                // Without qop there is no nonce count; accept the nonce while it lives.
                let nc = credentials.nc.unwrap_or(state.last_nc.saturating_add(1));
                if nc > state.last_nc {
                    state.last_nc = nc;
                    true
                } else {
                    false
                }
            }
            _ => false,
        };
        if fresh {
            Verdict::Ok(credentials.username)
        } else {
            Verdict::Stale
        }
    }
}

pub(crate) fn random_hex(rng: &mut dyn RngCore, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
// Tests need some instant to start from; the code under test never reads the clock.
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::disallowed_methods)]
mod tests {
    use super::*;
    use handset_sip::auth::{Challenge, Credentials, DigestResponse};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn answer(challenge: &str, password: &str, nc: u32) -> String {
        let challenge = Challenge::parse(challenge).unwrap();
        DigestResponse::compute(
            &challenge,
            &Credentials::with_password("alice", password),
            "REGISTER",
            "sip:handset.demo",
            b"",
            nc,
            "0a4f113b",
        )
        .unwrap()
        .to_header_value()
    }

    #[test]
    fn rfc2617_example_verifies() {
        // RFC 2617 §3.5 (method GET, user Mufasa).
        let header = r#"Digest username="Mufasa", realm="testrealm@host.com",
            nonce="dcd98b7102dd2f0e8b11d0f600bfb0c093", uri="/dir/index.html", qop=auth,
            nc=00000001, cnonce="0a4f113b", response="6629fae49393a05397450978507c4ef1",
            opaque="5ccc069c403ebaf9f0171e9517f40e41""#;
        let c = DigestCredentials::parse(header).unwrap();
        assert_eq!(c.nc, Some(1));
        assert!(verify_authorization(&c, "GET", b"", "Circle Of Life"));
        assert!(!verify_authorization(&c, "GET", b"", "circle of life"));
        assert!(!verify_authorization(&c, "POST", b"", "Circle Of Life"));
    }

    #[test]
    fn nonce_store_accepts_once_per_count_and_expires() {
        let mut rng = StdRng::seed_from_u64(1);
        let t0 = Instant::now();
        let mut store = NonceStore::new(Duration::from_secs(10), &mut rng);
        let challenge = store.challenge(t0, "handset.demo", false, &mut rng);
        let pw = |u: &str| (u == "alice").then(|| "secret".to_string());
        let good = answer(&challenge, "secret", 1);
        let check = |store: &mut NonceStore, h: &str, at| {
            store.check(at, std::iter::once(h), "handset.demo", "REGISTER", b"", pw)
        };
        assert_eq!(check(&mut store, &good, t0), Verdict::Ok("alice".into()));
        // Replay of the same nonce count.
        assert_eq!(check(&mut store, &good, t0), Verdict::Stale);
        let next = answer(&challenge, "secret", 2);
        assert_eq!(check(&mut store, &next, t0), Verdict::Ok("alice".into()));
        let wrong = answer(&challenge, "guess", 3);
        assert_eq!(
            check(&mut store, &wrong, t0),
            Verdict::Forbidden("alice".into())
        );
        let late = answer(&challenge, "secret", 4);
        assert_eq!(
            check(&mut store, &late, t0 + Duration::from_secs(11)),
            Verdict::Stale
        );
        assert_eq!(
            store.check(t0, std::iter::empty(), "handset.demo", "REGISTER", b"", pw),
            Verdict::Missing
        );
    }

    #[test]
    fn garbage_credentials_do_not_parse() {
        for bad in [
            "",
            "Basic abc",
            "Digest",
            "Digest username=\"a",
            "Digest username=a, realm=b, nonce=c, uri=d",
            "Digest =x",
            "Digest username=a, realm=b, nonce=c, uri=d, response=e, nc=zz",
        ] {
            assert!(DigestCredentials::parse(bad).is_none(), "{bad}");
        }
    }
}
