//! Typed views of the headers a user agent needs: Via, name-addr headers, CSeq.

use std::fmt;

use super::uri::{Host, Param, Uri, find_param, write_params};
use super::{Method, ParseError};

/// Whether `b` is a `token` character (RFC 3261 §25.1).
pub fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn take_while(s: &str, f: impl Fn(u8) -> bool) -> (&str, &str) {
    let end = s.bytes().position(|b| !f(b)).unwrap_or(s.len());
    s.split_at(end)
}

/// Parses a quoted string at the start of `s` (which must begin with `"`): returns the unescaped
/// content and the remaining text.
pub fn parse_quoted(s: &str) -> Result<(String, &str), ParseError> {
    let mut out = String::new();
    let mut chars = s.char_indices().skip(1);
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &s[i + 1..])),
            '\\' => match chars.next() {
                Some((_, escaped)) => out.push(escaped),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err(ParseError::new("unterminated quoted string"))
}

/// Quotes `text` as a SIP quoted-string.
pub fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Parses `;name[=value]` header parameters, allowing linear white space around `;` and `=`.
/// Quoted values keep their quotes so they print back unchanged.
pub fn parse_header_params(text: &str) -> Result<Vec<Param>, ParseError> {
    let mut params = Vec::new();
    let mut s = text.trim_start();
    while !s.is_empty() {
        s = s
            .strip_prefix(';')
            .ok_or_else(|| ParseError::new("expected ';' before parameter"))?
            .trim_start();
        let (name, rest) = take_while(s, is_token_char);
        if name.is_empty() {
            return Err(ParseError::new("empty parameter name"));
        }
        s = rest.trim_start();
        let mut value = None;
        if let Some(rest) = s.strip_prefix('=') {
            s = rest.trim_start();
            let (v, rest) = if s.starts_with('"') {
                let (_, after) = parse_quoted(s)?;
                let consumed = s.len() - after.len();
                (&s[..consumed], after)
            } else if s.starts_with('[') {
                let end = s
                    .find(']')
                    .ok_or_else(|| ParseError::new("unterminated IPv6 reference"))?;
                s.split_at(end + 1)
            } else {
                // ':' is accepted for bare IPv6 `received` values (RFC 5118 §4.5).
                take_while(s, |b| is_token_char(b) || b == b':')
            };
            if v.is_empty() {
                return Err(ParseError::new("empty parameter value"));
            }
            value = Some(v.to_string());
            s = rest.trim_start();
        }
        params.push(Param {
            name: name.to_string(),
            value,
        });
    }
    Ok(params)
}

/// One Via value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Transport, upper-cased (`UDP`, `TCP`, `TLS`, `WS`, or unknown ones).
    pub transport: String,
    /// sent-by host.
    pub host: Host,
    /// sent-by port.
    pub port: Option<u16>,
    /// Parameters (`branch`, `received`, `rport`...).
    pub params: Vec<Param>,
}

impl Via {
    /// Parses one Via value (not a comma list).
    pub fn parse(text: &str) -> Result<Via, ParseError> {
        let err = ParseError::new;
        let s = text.trim_start();
        let (name, s) = take_while(s, is_token_char);
        if !name.eq_ignore_ascii_case("SIP") {
            return Err(err("Via protocol is not SIP"));
        }
        let s = s
            .trim_start()
            .strip_prefix('/')
            .ok_or_else(|| err("Via without '/'"))?;
        let (version, s) = take_while(s.trim_start(), is_token_char);
        if version != "2.0" {
            return Err(err("Via protocol version is not 2.0"));
        }
        let s = s
            .trim_start()
            .strip_prefix('/')
            .ok_or_else(|| err("Via without transport"))?;
        let (transport, s) = take_while(s.trim_start(), is_token_char);
        if transport.is_empty() {
            return Err(err("Via without transport"));
        }
        if !s.starts_with([' ', '\t']) {
            return Err(err("Via without space before sent-by"));
        }
        let s = s.trim_start();
        let (host_text, s) = if s.starts_with('[') {
            let end = s
                .find(']')
                .ok_or_else(|| err("unterminated IPv6 reference"))?;
            s.split_at(end + 1)
        } else {
            take_while(s, |b| b.is_ascii_alphanumeric() || b"-._".contains(&b))
        };
        let host = Host::parse(host_text)?;
        let mut s = s.trim_start();
        let mut port = None;
        if let Some(rest) = s.strip_prefix(':') {
            let (digits, rest) = take_while(rest.trim_start(), |b| b.is_ascii_digit());
            port = Some(digits.parse::<u16>().map_err(|_| err("invalid Via port"))?);
            s = rest;
        }
        let params = parse_header_params(s)?;
        for p in &params {
            if p.name.eq_ignore_ascii_case("received")
                && let Some(v) = &p.value
            {
                Host::parse_lenient(v)?;
            }
        }
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        find_param(&self.params, "branch").flatten()
    }

    /// The `received` parameter as a host.
    pub fn received(&self) -> Option<Host> {
        find_param(&self.params, "received")
            .flatten()
            .and_then(|v| Host::parse_lenient(v).ok())
    }

    /// The `rport` parameter: `Some(None)` when requested without value, `Some(Some(p))` when
    /// filled in by the server.
    pub fn rport(&self) -> Option<Option<u16>> {
        find_param(&self.params, "rport").map(|v| v.and_then(|p| p.parse().ok()))
    }

    /// Sets or replaces a parameter.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => p.value = value,
            None => self.params.push(Param {
                name: name.to_string(),
                value,
            }),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact, Route, Record-Route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// Display name, unquoted.
    pub display: Option<String>,
    /// The address.
    pub uri: Uri,
    /// Header parameters after the address (`tag`, `expires`, `q`, `+sip.instance`...).
    pub params: Vec<Param>,
}

impl NameAddr {
    /// A bare address without display name or parameters.
    pub fn new(uri: impl Into<Uri>) -> Self {
        NameAddr {
            display: None,
            uri: uri.into(),
            params: Vec::new(),
        }
    }

    /// Parses one value (not a comma list).
    pub fn parse(text: &str) -> Result<NameAddr, ParseError> {
        let t = text.trim();
        let (display, s) = if t.starts_with('"') {
            let (display, rest) = parse_quoted(t)?;
            let rest = rest.trim_start();
            if !rest.starts_with('<') {
                return Err(ParseError::new("quoted display name without <address>"));
            }
            (Some(display), rest)
        } else if let Some(lt) = t.find('<') {
            let display = t[..lt].trim();
            if !display
                .split_ascii_whitespace()
                .all(|word| word.bytes().all(is_token_char))
            {
                return Err(ParseError::new("display name is not a token list"));
            }
            let display = (!display.is_empty()).then(|| display.to_string());
            (display, &t[lt..])
        } else {
            let end = t.find(';').unwrap_or(t.len());
            let uri_text = t[..end].trim();
            if uri_text.contains(['?', ',']) {
                return Err(ParseError::new(
                    "address with '?' or ',' must be enclosed in <>",
                ));
            }
            let uri = Uri::parse(uri_text)?;
            let params = parse_header_params(&t[end..])?;
            return Ok(NameAddr {
                display: None,
                uri,
                params,
            });
        };
        let inner_end = s
            .find('>')
            .ok_or_else(|| ParseError::new("'<' without '>'"))?;
        let inner = &s[1..inner_end];
        if inner.trim() != inner {
            return Err(ParseError::new("white space inside <address>"));
        }
        let uri = Uri::parse(inner)?;
        let params = parse_header_params(&s[inner_end + 1..])?;
        Ok(NameAddr {
            display,
            uri,
            params,
        })
    }

    /// The `tag` parameter.
    pub fn tag(&self) -> Option<&str> {
        self.param("tag").flatten()
    }

    /// A header parameter by name; `Some(None)` for a flag.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        find_param(&self.params, name)
    }

    /// Sets or replaces a header parameter.
    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        match self
            .params
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(p) => p.value = value,
            None => self.params.push(Param {
                name: name.to_string(),
                value,
            }),
        }
    }

    /// The `expires` parameter as seconds, saturating on overlarge values.
    pub fn expires(&self) -> Option<u32> {
        self.param("expires")
            .flatten()
            .and_then(parse_delta_seconds)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(display) = &self.display {
            write!(f, "{} ", quote(display))?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// Parses delta-seconds, saturating at 2^32-1 for overlarge values (RFC 3261 §20.19 allows
/// treating huge values as the maximum); `None` when not all digits.
pub fn parse_delta_seconds(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u32>().unwrap_or(u32::MAX))
}

/// The CSeq header (RFC 3261 §20.16).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// Sequence number, below 2^31.
    pub seq: u32,
    /// Method of the request.
    pub method: Method,
}

impl CSeq {
    /// Parses `number SP method`.
    pub fn parse(text: &str) -> Result<CSeq, ParseError> {
        let mut words = text.split_ascii_whitespace();
        let (Some(number), Some(method), None) = (words.next(), words.next(), words.next()) else {
            return Err(ParseError::new("CSeq is not 'number method'"));
        };
        if !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseError::new("CSeq number is not a number"));
        }
        let seq = number
            .parse::<u32>()
            .ok()
            .filter(|n| *n < 1 << 31)
            .ok_or_else(|| ParseError::new("CSeq number exceeds 2^31-1"))?;
        Ok(CSeq {
            seq,
            method: Method::parse(method)?,
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn via_with_lws_everywhere() {
        let v =
            Via::parse("SIP  / 2.0  / TCP     spindle.example.com   ;  branch  =   z9hG4bK9ikj8")
                .unwrap();
        assert_eq!(v.transport, "TCP");
        assert_eq!(v.host, Host::Domain("spindle.example.com".into()));
        assert_eq!(v.branch(), Some("z9hG4bK9ikj8"));
    }

    #[test]
    fn via_ipv6_and_received() {
        let v =
            Via::parse("SIP/2.0/UDP [2001:db8::9:1]:5070;received=2001:db8::9:255;rport").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(
            v.received(),
            Some(Host::V6("2001:db8::9:255".parse().unwrap()))
        );
        assert_eq!(v.rport(), Some(None));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;").is_err());
        assert!(Via::parse("SIP/2.0/UDP 2001:db8::9:1").is_err());
    }

    #[test]
    fn name_addr_forms() {
        let n = NameAddr::parse(r#""J Rosenberg \\\""  <sip:jdrosen@example.com> ; tag = 98asjd8"#)
            .unwrap();
        assert_eq!(n.display.as_deref(), Some(r#"J Rosenberg \""#));
        assert_eq!(n.tag(), Some("98asjd8"));
        let n = NameAddr::parse("caller<sip:caller@example.com>;tag=323").unwrap();
        assert_eq!(n.display.as_deref(), Some("caller"));
        let n = NameAddr::parse("sip:user@example.com;expires=99999999999").unwrap();
        assert_eq!(n.expires(), Some(u32::MAX));
        assert!(NameAddr::parse(r#""unterminated <sip:a@b>"#).is_err());
        assert!(NameAddr::parse("Bell, Alexander <sip:a.g.bell@example.com>").is_err());
        assert!(NameAddr::parse(r#""Watson" < sip:t.watson@example.org >"#).is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E").is_err());
    }

    #[test]
    fn cseq_limits() {
        assert_eq!(CSeq::parse("0009\t INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("2147483648 INVITE").is_err());
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("1").is_err());
    }
}
