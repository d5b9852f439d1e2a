//! SIP URIs (RFC 3261 §19.1, RFC 5118 IPv6 references) and other absolute URIs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ParseError;

/// A `;name[=value]` parameter of a URI or a header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    /// Parameter name as received.
    pub name: String,
    /// Value, without surrounding quotes for quoted header parameters.
    pub value: Option<String>,
}

impl Param {
    /// A parameter with a value.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Param {
            name: name.into(),
            value: Some(value.into()),
        }
    }

    /// A flag parameter without value (`;lr`).
    pub fn flag(name: impl Into<String>) -> Self {
        Param {
            name: name.into(),
            value: None,
        }
    }
}

/// Finds a parameter by case-insensitive name. `Some(None)` means present without value.
pub fn find_param<'a>(params: &'a [Param], name: &str) -> Option<Option<&'a str>> {
    params
        .iter()
        .find(|p| p.name.eq_ignore_ascii_case(name))
        .map(|p| p.value.as_deref())
}

/// Parses an IPv6 address, tolerating the `:::` before an embedded IPv4 address that RFC 3261's
/// ABNF allowed by mistake (RFC 5118 §4.10 asks parsers to accept it).
fn parse_ipv6(text: &str) -> Result<Ipv6Addr, ParseError> {
    text.parse::<Ipv6Addr>()
        .or_else(|_| match text.find(":::") {
            Some(i) if text[i + 3..].contains('.') => {
                format!("{}::{}", &text[..i], &text[i + 3..]).parse()
            }
            _ => text.parse(),
        })
        .map_err(|_| ParseError::new("invalid IPv6 reference"))
}

/// The host part of a SIP URI or Via.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A domain name, lower-cased.
    Domain(String),
    /// An IPv4 address.
    V4(Ipv4Addr),
    /// An IPv6 address (printed as a bracketed reference).
    V6(Ipv6Addr),
}

impl Host {
    /// Parses a host: domain name, IPv4 address or bracketed IPv6 reference.
    pub fn parse(text: &str) -> Result<Host, ParseError> {
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .ok_or_else(|| ParseError::new("IPv6 reference without closing bracket"))?;
            return parse_ipv6(inner).map(Host::V6);
        }
        if text.is_empty() {
            return Err(ParseError::new("empty host"));
        }
        if text.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            && let Ok(v4) = text.parse::<Ipv4Addr>()
        {
            return Ok(Host::V4(v4));
        }
        let valid_label = |label: &str| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        let trimmed = text.strip_suffix('.').unwrap_or(text);
        if trimmed.split('.').all(valid_label) {
            Ok(Host::Domain(text.to_ascii_lowercase()))
        } else {
            Err(ParseError::new("invalid host name"))
        }
    }

    /// Parses a host that may be a bare IPv6 address (the `received` Via parameter, RFC 5118 §4.5).
    pub fn parse_lenient(text: &str) -> Result<Host, ParseError> {
        match parse_ipv6(text) {
            Ok(v6) => Ok(Host::V6(v6)),
            Err(_) => Host::parse(text),
        }
    }

    /// The address when the host is an IP literal.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::V4(a) => Some(IpAddr::V4(*a)),
            Host::V6(a) => Some(IpAddr::V6(*a)),
            Host::Domain(_) => None,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(a) => Host::V4(a),
            IpAddr::V6(a) => Host::V6(a),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Domain(d) => f.write_str(d),
            Host::V4(a) => write!(f, "{a}"),
            Host::V6(a) => write!(f, "[{a}]"),
        }
    }
}

/// A `sip:` or `sips:` URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// User part, still %-escaped as received.
    pub user: Option<String>,
    /// Password part, still %-escaped (discouraged, kept for fidelity).
    pub password: Option<String>,
    /// Host.
    pub host: Host,
    /// Explicit port.
    pub port: Option<u16>,
    /// URI parameters (`;transport=tcp;lr`).
    pub params: Vec<Param>,
    /// URI headers (`?Subject=x&Priority=y`), still escaped.
    pub headers: Vec<(String, String)>,
}

impl SipUri {
    /// A URI `sip:user@host` (or `sip:host` without user).
    pub fn new(user: Option<&str>, host: Host) -> Self {
        SipUri {
            secure: false,
            user: user.map(str::to_string),
            password: None,
            host,
            port: None,
            params: Vec::new(),
            headers: Vec::new(),
        }
    }

    /// The value of a URI parameter, `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// The `transport` parameter lower-cased, if any.
    pub fn transport_param(&self) -> Option<String> {
        self.param("transport")
            .flatten()
            .map(str::to_ascii_lowercase)
    }

    /// Parses the part after `sip:` / `sips:`.
    fn parse_rest(secure: bool, rest: &str) -> Result<SipUri, ParseError> {
        // No raw '@' may appear in hostport, params or headers, so the first one ends userinfo
        // (which may itself hold '?' and ';', RFC 4475 §3.1.1.2).
        let (userinfo, after_user) = match rest.split_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (hostpart, headers_text) = match after_user.split_once('?') {
            Some((a, b)) => (a, Some(b)),
            None => (after_user, None),
        };
        let (user, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, password) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                if user.is_empty() || !valid_chars(user, is_user_char) {
                    return Err(ParseError::new("invalid user part in URI"));
                }
                if let Some(p) = password
                    && !valid_chars(p, is_password_char)
                {
                    return Err(ParseError::new("invalid password part in URI"));
                }
                (Some(user.to_string()), password.map(str::to_string))
            }
        };
        let mut pieces = hostpart.split(';');
        let hostport = pieces.next().unwrap_or("");
        let (host, port) = split_hostport(hostport)?;
        let mut params = Vec::new();
        for piece in pieces {
            let (name, value) = match piece.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (piece, None),
            };
            if name.is_empty() || !valid_chars(name, is_param_char) {
                return Err(ParseError::new("invalid URI parameter"));
            }
            if let Some(v) = value
                && !valid_chars(v, is_param_char)
            {
                return Err(ParseError::new("invalid URI parameter value"));
            }
            params.push(Param {
                name: name.to_string(),
                value: value.map(str::to_string),
            });
        }
        let mut headers = Vec::new();
        if let Some(text) = headers_text {
            for pair in text.split('&') {
                let (name, value) = pair
                    .split_once('=')
                    .ok_or_else(|| ParseError::new("URI header without '='"))?;
                if name.is_empty()
                    || !valid_chars(name, is_header_char)
                    || !valid_chars(value, is_header_char)
                {
                    return Err(ParseError::new("invalid URI header"));
                }
                headers.push((name.to_string(), value.to_string()));
            }
        }
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }
}

/// Splits `host[:port]`, where an IPv6 host must be bracketed (RFC 5118 §4.2–4.4).
pub fn split_hostport(text: &str) -> Result<(Host, Option<u16>), ParseError> {
    let (host_text, port_text) = if text.starts_with('[') {
        match text.find(']') {
            Some(end) => {
                let after = &text[end + 1..];
                let port = match after.strip_prefix(':') {
                    Some(p) => Some(p),
                    None if after.is_empty() => None,
                    None => return Err(ParseError::new("garbage after IPv6 reference")),
                };
                (&text[..=end], port)
            }
            None => return Err(ParseError::new("IPv6 reference without closing bracket")),
        }
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let host = Host::parse(host_text)?;
    let port = match port_text {
        None => None,
        Some(p) => Some(parse_port(p).ok_or_else(|| ParseError::new("invalid port"))?),
    };
    Ok((host, port))
}

fn parse_port(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn valid_chars(text: &str, allowed: fn(u8) -> bool) -> bool {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3);
            if !hex.is_some_and(|h| h.iter().all(u8::is_ascii_hexdigit)) {
                return false;
            }
            i += 3;
        } else if allowed(bytes[i]) {
            i += 1;
        } else {
            return false;
        }
    }
    true
}

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

fn is_user_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,;?/".contains(&b)
}

fn is_password_char(b: u8) -> bool {
    is_unreserved(b) || b"&=+$,".contains(&b)
}

fn is_param_char(b: u8) -> bool {
    is_unreserved(b) || b"[]/:&+$".contains(&b)
}

fn is_header_char(b: u8) -> bool {
    is_unreserved(b) || b"[]/?:+$".contains(&b)
}

/// Any URI a SIP message may carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` / `sips:`.
    Sip(SipUri),
    /// Any other absolute URI (`tel:`, `urn:`, unknown schemes), kept verbatim.
    Other {
        /// The scheme, as received.
        scheme: String,
        /// Everything after the colon.
        rest: String,
    },
}

impl Uri {
    /// Parses an absolute URI. `sip`/`sips` are parsed into parts, other schemes are kept as text.
    pub fn parse(text: &str) -> Result<Uri, ParseError> {
        let (scheme, rest) = text
            .split_once(':')
            .ok_or_else(|| ParseError::new("URI without scheme"))?;
        let scheme_ok = scheme
            .as_bytes()
            .first()
            .is_some_and(u8::is_ascii_alphabetic)
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
        if !scheme_ok {
            return Err(ParseError::new("invalid URI scheme"));
        }
        if rest.is_empty()
            || rest
                .bytes()
                .any(|b| b <= b' ' || b == 0x7f || b"<>\"".contains(&b))
        {
            return Err(ParseError::new("invalid characters in URI"));
        }
        if scheme.eq_ignore_ascii_case("sip") {
            SipUri::parse_rest(false, rest).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse_rest(true, rest).map(Uri::Sip)
        } else {
            Ok(Uri::Other {
                scheme: scheme.to_string(),
                rest: rest.to_string(),
            })
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(sip) => Some(sip),
            Uri::Other { .. } => None,
        }
    }
}

impl From<SipUri> for Uri {
    fn from(uri: SipUri) -> Self {
        Uri::Sip(uri)
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(password) = &self.password {
                write!(f, ":{password}")?;
            }
            f.write_str("@")?;
        }
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)?;
        for (i, (name, value)) in self.headers.iter().enumerate() {
            write!(f, "{}{name}={value}", if i == 0 { '?' } else { '&' })?;
        }
        Ok(())
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(sip) => sip.fmt(f),
            Uri::Other { scheme, rest } => write!(f, "{scheme}:{rest}"),
        }
    }
}

/// Writes `;name=value` for each parameter.
pub(crate) fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    for p in params {
        match &p.value {
            Some(v) => write!(f, ";{}={}", p.name, v)?,
            None => write!(f, ";{}", p.name)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(text: &str) -> SipUri {
        match Uri::parse(text) {
            Ok(Uri::Sip(s)) => s,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn parses_parts() {
        let u = sip("sips:alice:pw@Example.COM:5061;transport=tls;lr?Subject=hi&X=y");
        assert!(u.secure);
        assert_eq!(u.user.as_deref(), Some("alice"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, Host::Domain("example.com".into()));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport_param().as_deref(), Some("tls"));
        assert_eq!(u.param("lr"), Some(None));
        assert_eq!(u.headers.len(), 2);
        assert_eq!(
            u.to_string(),
            "sips:alice:pw@example.com:5061;transport=tls;lr?Subject=hi&X=y"
        );
    }

    #[test]
    fn ipv6_references() {
        let u = sip("sip:[2001:db8::10]:5070");
        assert_eq!(u.host, Host::V6("2001:db8::10".parse().unwrap()));
        assert_eq!(u.port, Some(5070));
        // RFC 5118 §4.3: the last group is part of the address, not a port.
        let u = sip("sip:[2001:db8::10:5070]");
        assert_eq!(u.host, Host::V6("2001:db8::10:5070".parse().unwrap()));
        assert_eq!(u.port, None);
        assert!(Uri::parse("sip:user@2001:db8::10").is_err());
        assert!(Uri::parse("sip:[2001:db8::10").is_err());
        assert_eq!(u.to_string(), "sip:[2001:db8::10:5070]");
    }

    #[test]
    fn user_part_may_hold_semicolons_and_escapes() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert!(Uri::parse("sip:us%4@example.com").is_err());
    }

    #[test]
    fn other_schemes_kept() {
        let u = Uri::parse("soap.beep://192.0.2.103:3002").unwrap();
        assert_eq!(u.to_string(), "soap.beep://192.0.2.103:3002");
        assert!(Uri::parse("sip:a b@c").is_err());
        assert!(Uri::parse("nocolon").is_err());
    }
}
