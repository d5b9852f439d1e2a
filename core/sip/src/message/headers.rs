//! Header names (with RFC 3261 §7.3.3 compact forms) and the ordered header list.

use std::fmt;

/// A header field name. Known names compare and print in their canonical full form; compact
/// forms (`v`, `i`, `m`...) are expanded on parse. Unknown names keep their original spelling.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderName {
    /// `Accept`
    Accept,
    /// `Allow`
    Allow,
    /// `Allow-Events` (compact `u`)
    AllowEvents,
    /// `Authorization`
    Authorization,
    /// `Call-ID` (compact `i`)
    CallId,
    /// `Contact` (compact `m`)
    Contact,
    /// `Content-Encoding` (compact `e`)
    ContentEncoding,
    /// `Content-Length` (compact `l`)
    ContentLength,
    /// `Content-Type` (compact `c`)
    ContentType,
    /// `CSeq`
    CSeq,
    /// `Date`
    Date,
    /// `Event` (compact `o`)
    Event,
    /// `Expires`
    Expires,
    /// `From` (compact `f`)
    From,
    /// `Max-Forwards`
    MaxForwards,
    /// `Min-Expires`
    MinExpires,
    /// `Proxy-Authenticate`
    ProxyAuthenticate,
    /// `Proxy-Authorization`
    ProxyAuthorization,
    /// `Proxy-Require`
    ProxyRequire,
    /// `Record-Route`
    RecordRoute,
    /// `Refer-To` (compact `r`)
    ReferTo,
    /// `Referred-By` (compact `b`)
    ReferredBy,
    /// `Require`
    Require,
    /// `Retry-After`
    RetryAfter,
    /// `Route`
    Route,
    /// `Server`
    Server,
    /// `Session-Expires` (compact `x`)
    SessionExpires,
    /// `Subject` (compact `s`)
    Subject,
    /// `Supported` (compact `k`)
    Supported,
    /// `Timestamp`
    Timestamp,
    /// `To` (compact `t`)
    To,
    /// `Unsupported`
    Unsupported,
    /// `User-Agent`
    UserAgent,
    /// `Via` (compact `v`)
    Via,
    /// `Warning`
    Warning,
    /// `WWW-Authenticate`
    WwwAuthenticate,
    /// Any other header, spelled as received.
    Other(String),
}

/// (canonical name, compact form, variant) for every known header.
const KNOWN: &[(&str, Option<char>, HeaderName)] = &[
    ("Accept", None, HeaderName::Accept),
    ("Allow", None, HeaderName::Allow),
    ("Allow-Events", Some('u'), HeaderName::AllowEvents),
    ("Authorization", None, HeaderName::Authorization),
    ("Call-ID", Some('i'), HeaderName::CallId),
    ("Contact", Some('m'), HeaderName::Contact),
    ("Content-Encoding", Some('e'), HeaderName::ContentEncoding),
    ("Content-Length", Some('l'), HeaderName::ContentLength),
    ("Content-Type", Some('c'), HeaderName::ContentType),
    ("CSeq", None, HeaderName::CSeq),
    ("Date", None, HeaderName::Date),
    ("Event", Some('o'), HeaderName::Event),
    ("Expires", None, HeaderName::Expires),
    ("From", Some('f'), HeaderName::From),
    ("Max-Forwards", None, HeaderName::MaxForwards),
    ("Min-Expires", None, HeaderName::MinExpires),
    ("Proxy-Authenticate", None, HeaderName::ProxyAuthenticate),
    ("Proxy-Authorization", None, HeaderName::ProxyAuthorization),
    ("Proxy-Require", None, HeaderName::ProxyRequire),
    ("Record-Route", None, HeaderName::RecordRoute),
    ("Refer-To", Some('r'), HeaderName::ReferTo),
    ("Referred-By", Some('b'), HeaderName::ReferredBy),
    ("Require", None, HeaderName::Require),
    ("Retry-After", None, HeaderName::RetryAfter),
    ("Route", None, HeaderName::Route),
    ("Server", None, HeaderName::Server),
    ("Session-Expires", Some('x'), HeaderName::SessionExpires),
    ("Subject", Some('s'), HeaderName::Subject),
    ("Supported", Some('k'), HeaderName::Supported),
    ("Timestamp", None, HeaderName::Timestamp),
    ("To", Some('t'), HeaderName::To),
    ("Unsupported", None, HeaderName::Unsupported),
    ("User-Agent", None, HeaderName::UserAgent),
    ("Via", Some('v'), HeaderName::Via),
    ("Warning", None, HeaderName::Warning),
    ("WWW-Authenticate", None, HeaderName::WwwAuthenticate),
];

impl HeaderName {
    /// Parses a header name as found on the wire: case-insensitive, compact forms expanded.
    pub fn parse(name: &str) -> HeaderName {
        let mut chars = name.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            let c = c.to_ascii_lowercase();
            if let Some((_, _, known)) = KNOWN.iter().find(|(_, compact, _)| *compact == Some(c)) {
                return known.clone();
            }
        }
        KNOWN
            .iter()
            .find(|(full, _, _)| full.eq_ignore_ascii_case(name))
            .map(|(_, _, known)| known.clone())
            .unwrap_or_else(|| HeaderName::Other(name.to_string()))
    }

    /// The canonical spelling used when printing.
    pub fn as_str(&self) -> &str {
        match self {
            HeaderName::Other(name) => name,
            known => KNOWN
                .iter()
                .find(|(_, _, k)| k == known)
                .map(|(full, _, _)| *full)
                .unwrap_or(""),
        }
    }

    /// Whether two names denote the same header (unknown names compare case-insensitively).
    pub fn matches(&self, other: &HeaderName) -> bool {
        match (self, other) {
            (HeaderName::Other(a), HeaderName::Other(b)) => a.eq_ignore_ascii_case(b),
            (a, b) => a == b,
        }
    }

    /// Whether the header's grammar is a comma-separated list (RFC 3261 §7.3.1), so one line may
    /// carry several values. Authentication headers and Date contain commas but are not lists.
    pub fn is_list(&self) -> bool {
        matches!(
            self,
            HeaderName::Accept
                | HeaderName::Allow
                | HeaderName::AllowEvents
                | HeaderName::Contact
                | HeaderName::ContentEncoding
                | HeaderName::ProxyRequire
                | HeaderName::RecordRoute
                | HeaderName::Require
                | HeaderName::Route
                | HeaderName::Supported
                | HeaderName::Unsupported
                | HeaderName::Via
                | HeaderName::Warning
        )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for HeaderName {
    fn from(name: &str) -> Self {
        HeaderName::parse(name)
    }
}

/// One header line: its name and its value with folding removed and outer whitespace trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The header's name.
    pub name: HeaderName,
    /// The raw value text (may hold several comma-separated values for list headers).
    pub value: String,
}

/// The ordered list of header lines of a message. Order is preserved, including for unknown
/// headers, so a message prints back the way it came in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Headers(Vec::new())
    }

    /// Appends a header line.
    pub fn push(&mut self, name: impl Into<HeaderName>, value: impl Into<String>) {
        self.0.push(Header {
            name: name.into(),
            value: value.into(),
        });
    }

    /// Inserts a header line before all others (used for a new top Via).
    pub fn push_front(&mut self, name: impl Into<HeaderName>, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name: name.into(),
                value: value.into(),
            },
        );
    }

    /// Replaces every line of `name` by one line with `value`, kept at the first line's place.
    pub fn set(&mut self, name: impl Into<HeaderName>, value: impl Into<String>) {
        let name = name.into();
        let value = value.into();
        match self.0.iter().position(|h| h.name.matches(&name)) {
            Some(first) => {
                self.0[first].value = value;
                let mut index = 0;
                self.0.retain(|h| {
                    let keep = index <= first || !h.name.matches(&name);
                    index += 1;
                    keep
                });
            }
            None => self.0.push(Header { name, value }),
        }
    }

    /// Removes every line of `name`; returns how many were removed.
    pub fn remove(&mut self, name: &HeaderName) -> usize {
        let before = self.0.len();
        self.0.retain(|h| !h.name.matches(name));
        before - self.0.len()
    }

    /// The first line's value for `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.matches(name))
            .map(|h| h.value.as_str())
    }

    /// Every line's value for `name`, in order, without splitting lists.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.matches(name))
            .map(|h| h.value.as_str())
    }

    /// Every value for `name`, in order, with comma-separated lists split into their elements
    /// when the header is a list header (several Vias or Contacts on one line count separately).
    pub fn values<'a>(&'a self, name: &'a HeaderName) -> Vec<&'a str> {
        let split = name.is_list();
        let mut out = Vec::new();
        for value in self.get_all(name) {
            if split {
                out.extend(split_list(value).into_iter().filter(|v| !v.is_empty()));
            } else {
                out.push(value);
            }
        }
        out
    }

    /// Whether any line of `name` exists.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.0.iter().any(|h| h.name.matches(name))
    }

    /// All lines in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no header lines.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Splits a list header value at top-level commas: commas inside quoted strings, inside `<...>`
/// and inside IPv6 `[...]` references do not split. Elements are trimmed.
pub fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut escaped = false;
    let mut angle = 0usize;
    let mut bracket = 0usize;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if in_quotes {
            match (escaped, c) {
                (true, _) => escaped = false,
                (false, '\\') => escaped = true,
                (false, '"') => in_quotes = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_quotes = true,
            '<' => angle += 1,
            '>' => angle = angle.saturating_sub(1),
            '[' => bracket += 1,
            ']' => bracket = bracket.saturating_sub(1),
            ',' if angle == 0 && bracket == 0 => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_case_insensitive_names() {
        assert_eq!(HeaderName::parse("v"), HeaderName::Via);
        assert_eq!(HeaderName::parse("I"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("cAlL-iD"), HeaderName::CallId);
        assert_eq!(HeaderName::parse("l"), HeaderName::ContentLength);
        assert_eq!(HeaderName::parse("m").as_str(), "Contact");
        assert!(HeaderName::parse("X-Custom").matches(&HeaderName::parse("x-custom")));
        assert_eq!(HeaderName::parse("X-Custom").as_str(), "X-Custom");
    }

    #[test]
    fn split_list_respects_quotes_brackets_and_angles() {
        let parts =
            split_list(r#""Doe, John" <sip:a@b;x=1,2>, sip:[2001:db8::1]:5060 , <sip:c@d>"#);
        assert_eq!(
            parts,
            vec![
                r#""Doe, John" <sip:a@b;x=1,2>"#,
                "sip:[2001:db8::1]:5060",
                "<sip:c@d>"
            ]
        );
    }

    #[test]
    fn set_replaces_all_lines_in_place() {
        let mut h = Headers::new();
        h.push("Via", "a");
        h.push("Expires", "1");
        h.push("v", "b");
        h.set(HeaderName::Via, "c");
        let lines: Vec<_> = h.iter().map(|h| h.value.as_str()).collect();
        assert_eq!(lines, vec!["c", "1"]);
    }
}
