//! Message-summary bodies (RFC 3842 §5, `application/simple-message-summary`): what a voicemail
//! server puts in the NOTIFYs of a `message-summary` subscription, and what the embedded PBX
//! sends.
//!
//! ```text
//! Messages-Waiting: yes
//! Message-Account: sip:alice@vm.example.com
//! Voice-Message: 2/8 (0/2)
//! ```
//!
//! [`MessageSummary::parse`] is lenient the way deployed phones are: header names in any case,
//! white space anywhere around the numbers, urgent counts optional, CRLF or bare LF line ends,
//! folded lines joined, unknown lines (and the optional message headers after an empty line)
//! ignored, counts too large for `u32` saturated. What it cannot make sense of — no
//! `Messages-Waiting` line, a status other than yes/no, counts that are not `new/old` with an
//! optional `(urgent-new/urgent-old)` — is an error value. It never panics.
//!
//! [`MessageSummary::to_body`] (also `Display`) prints the canonical form, CRLF line ends,
//! urgent counts always present (`0/0` when none), classes in RFC 3458 order.

use std::fmt;

/// The event package of message-waiting indication (RFC 3842 §3).
pub const MESSAGE_SUMMARY_EVENT: &str = "message-summary";

/// The media type of message-summary bodies (RFC 3842 §5).
pub const SIMPLE_MESSAGE_SUMMARY: &str = "application/simple-message-summary";

/// The message-context classes of RFC 3458 §3.2, each with its summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageClass {
    /// `Voice-Message`
    Voice,
    /// `Fax-Message`
    Fax,
    /// `Pager-Message`
    Pager,
    /// `Multimedia-Message`
    Multimedia,
    /// `Text-Message`
    Text,
    /// `None`: messages without a context class.
    None,
}

impl MessageClass {
    /// Every class, in the order they are printed.
    pub const ALL: [MessageClass; 6] = [
        MessageClass::Voice,
        MessageClass::Fax,
        MessageClass::Pager,
        MessageClass::Multimedia,
        MessageClass::Text,
        MessageClass::None,
    ];

    /// The name of the class's summary line (`Voice-Message`...).
    pub fn header_name(self) -> &'static str {
        match self {
            MessageClass::Voice => "Voice-Message",
            MessageClass::Fax => "Fax-Message",
            MessageClass::Pager => "Pager-Message",
            MessageClass::Multimedia => "Multimedia-Message",
            MessageClass::Text => "Text-Message",
            MessageClass::None => "None",
        }
    }

    /// The class whose summary line is called `name` (any case).
    pub fn from_header_name(name: &str) -> Option<MessageClass> {
        MessageClass::ALL
            .into_iter()
            .find(|class| class.header_name().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for MessageClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.header_name())
    }
}

/// The counts of one class: `new/old (urgent_new/urgent_old)`. The urgent messages are
/// included in `new` and `old` (RFC 3842 §5.2).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct MessageCounts {
    /// New (unheard) messages.
    pub new: u32,
    /// Old (heard, kept) messages.
    pub old: u32,
    /// New messages marked urgent.
    pub urgent_new: u32,
    /// Old messages marked urgent.
    pub urgent_old: u32,
}

impl MessageCounts {
    /// Counts without urgent messages.
    pub fn new(new: u32, old: u32) -> Self {
        MessageCounts {
            new,
            old,
            urgent_new: 0,
            urgent_old: 0,
        }
    }
}

impl fmt::Display for MessageCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} ({}/{})",
            self.new, self.old, self.urgent_new, self.urgent_old
        )
    }
}

/// One message-summary body.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct MessageSummary {
    /// `Messages-Waiting`: whether the account has new messages.
    pub messages_waiting: bool,
    /// `Message-Account`: the account the summary is about (a URI; control characters and
    /// outer white space are dropped when parsing and printing).
    pub account: Option<String>,
    /// `Voice-Message` counts.
    pub voice: Option<MessageCounts>,
    /// `Fax-Message` counts.
    pub fax: Option<MessageCounts>,
    /// `Pager-Message` counts.
    pub pager: Option<MessageCounts>,
    /// `Multimedia-Message` counts.
    pub multimedia: Option<MessageCounts>,
    /// `Text-Message` counts.
    pub text: Option<MessageCounts>,
    /// `None` (messages without class) counts.
    pub none: Option<MessageCounts>,
}

impl fmt::Debug for MessageSummary {
    /// The account URI is personal data: only whether there is one is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("MessageSummary");
        s.field("messages_waiting", &self.messages_waiting)
            .field("account", &self.account.as_ref().map(|_| "<redacted>"));
        for class in MessageClass::ALL {
            if let Some(counts) = self.counts(class) {
                s.field(class.header_name(), counts);
            }
        }
        s.finish()
    }
}

/// Why a message-summary body could not be read. Line numbers count from 1 (folded lines
/// count as the line they continue); the offending text is never included, so the error can
/// be logged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageSummaryError {
    /// There is no `Messages-Waiting` line.
    #[error("message summary without Messages-Waiting")]
    MissingStatus,
    /// `Messages-Waiting` is neither `yes` nor `no`.
    #[error("Messages-Waiting on line {line} is neither yes nor no")]
    BadStatus {
        /// The line.
        line: usize,
    },
    /// A summary line's counts are not `new/old` with optional `(urgent-new/urgent-old)`.
    #[error("malformed {class} counts on line {line}")]
    BadCounts {
        /// The class of the line.
        class: MessageClass,
        /// The line.
        line: usize,
    },
}

impl MessageSummary {
    /// A summary saying whether messages are waiting, without account or counts.
    pub fn new(messages_waiting: bool) -> Self {
        MessageSummary {
            messages_waiting,
            ..MessageSummary::default()
        }
    }

    /// The counts of `class`, if the summary has a line for it.
    pub fn counts(&self, class: MessageClass) -> Option<&MessageCounts> {
        self.slot(class).as_ref()
    }

    /// Sets (or with `None` removes) the counts of `class`.
    pub fn set_counts(&mut self, class: MessageClass, counts: Option<MessageCounts>) {
        *self.slot_mut(class) = counts;
    }

    fn slot(&self, class: MessageClass) -> &Option<MessageCounts> {
        match class {
            MessageClass::Voice => &self.voice,
            MessageClass::Fax => &self.fax,
            MessageClass::Pager => &self.pager,
            MessageClass::Multimedia => &self.multimedia,
            MessageClass::Text => &self.text,
            MessageClass::None => &self.none,
        }
    }

    fn slot_mut(&mut self, class: MessageClass) -> &mut Option<MessageCounts> {
        match class {
            MessageClass::Voice => &mut self.voice,
            MessageClass::Fax => &mut self.fax,
            MessageClass::Pager => &mut self.pager,
            MessageClass::Multimedia => &mut self.multimedia,
            MessageClass::Text => &mut self.text,
            MessageClass::None => &mut self.none,
        }
    }

    /// Parses a body. Bytes that are not UTF-8 are replaced (they can only matter in lines
    /// this parser ignores or in the account URI). The first line of each kind counts; later
    /// repeats are ignored.
    pub fn parse(body: &[u8]) -> Result<MessageSummary, MessageSummaryError> {
        let text = String::from_utf8_lossy(body);
        let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
        let mut status: Option<bool> = None;
        let mut summary = MessageSummary::default();
        for (line_no, line) in logical_lines(text) {
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let name = name.trim_matches([' ', '\t']);
            let value = value.trim_matches([' ', '\t']);
            if name.eq_ignore_ascii_case("Messages-Waiting") {
                if status.is_some() {
                    continue;
                }
                status = Some(if value.eq_ignore_ascii_case("yes") {
                    true
                } else if value.eq_ignore_ascii_case("no") {
                    false
                } else {
                    return Err(MessageSummaryError::BadStatus { line: line_no });
                });
            } else if name.eq_ignore_ascii_case("Message-Account") {
                if summary.account.is_none() {
                    summary.account = clean_account(value);
                }
            } else if let Some(class) = MessageClass::from_header_name(name) {
                let counts = parse_counts(value).ok_or(MessageSummaryError::BadCounts {
                    class,
                    line: line_no,
                })?;
                let slot = summary.slot_mut(class);
                if slot.is_none() {
                    *slot = Some(counts);
                }
            }
        }
        summary.messages_waiting = status.ok_or(MessageSummaryError::MissingStatus)?;
        Ok(summary)
    }

    /// The body text: CRLF line ends, urgent counts always printed. Control characters in
    /// the account are left out so that the body keeps its lines.
    pub fn to_body(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for MessageSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let status = if self.messages_waiting { "yes" } else { "no" };
        write!(f, "Messages-Waiting: {status}\r\n")?;
        if let Some(account) = self.account.as_deref().and_then(clean_account) {
            write!(f, "Message-Account: {account}\r\n")?;
        }
        for class in MessageClass::ALL {
            if let Some(counts) = self.counts(class) {
                write!(f, "{}: {counts}\r\n", class.header_name())?;
            }
        }
        Ok(())
    }
}

/// An account URI without control characters (a URI has none; they could break the body's
/// lines) and outer white space; `None` when nothing is left.
fn clean_account(value: &str) -> Option<String> {
    let account: String = value.chars().filter(|c| !c.is_control()).collect();
    let account = account.trim();
    (!account.is_empty()).then(|| account.to_string())
}

/// The body's lines with their 1-based numbers: LF or CRLF ends, a line starting with white
/// space continues the previous one.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut lines: Vec<(usize, String)> = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with([' ', '\t'])
            && let Some((_, previous)) = lines.last_mut()
            && !raw.trim().is_empty()
        {
            previous.push(' ');
            previous.push_str(raw.trim());
            continue;
        }
        lines.push((i + 1, raw.to_string()));
    }
    lines
}

/// `new/old` with optional `(urgent-new/urgent-old)`, white space allowed anywhere between
/// the parts.
fn parse_counts(value: &str) -> Option<MessageCounts> {
    let compact: String = value.chars().filter(|c| *c != ' ' && *c != '\t').collect();
    let (main, urgent) = match compact.split_once('(') {
        Some((main, rest)) => (main, Some(rest.strip_suffix(')')?)),
        None => (compact.as_str(), None),
    };
    let (new, old) = parse_pair(main)?;
    let (urgent_new, urgent_old) = match urgent {
        Some(pair) => parse_pair(pair)?,
        None => (0, 0),
    };
    Some(MessageCounts {
        new,
        old,
        urgent_new,
        urgent_old,
    })
}

fn parse_pair(text: &str) -> Option<(u32, u32)> {
    let (a, b) = text.split_once('/')?;
    Some((parse_count(a)?, parse_count(b)?))
}

/// 1*DIGIT, saturating at `u32::MAX`.
fn parse_count(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u32>().unwrap_or(u32::MAX))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn rfc3842_example() {
        let body = "Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\n\
                    Voice-Message: 4/8 (1/2)\r\n";
        let s = MessageSummary::parse(body.as_bytes()).unwrap();
        assert!(s.messages_waiting);
        assert_eq!(s.account.as_deref(), Some("sip:alice@vmail.example.com"));
        assert_eq!(
            s.voice,
            Some(MessageCounts {
                new: 4,
                old: 8,
                urgent_new: 1,
                urgent_old: 2
            })
        );
        assert_eq!(s.fax, None);
        // The canonical form prints back byte for byte.
        assert_eq!(s.to_body(), body);
    }

    #[test]
    fn lenient_forms() {
        let body = "messages-waiting:YES\nmessage-account :  sip:bob@example.com  \n\
                    voice-message:3/0\nFAX-MESSAGE:  1 / 2 ( 1 / 0 )  \n\
                    X-Vendor: whatever\nGarbage line without colon\n\
                    Text-Message: 0/0(0/0)\n\nTo: <sip:alice@example.com>\n\
                    Subject: tue 10:30\n";
        let s = MessageSummary::parse(body.as_bytes()).unwrap();
        assert!(s.messages_waiting);
        assert_eq!(s.account.as_deref(), Some("sip:bob@example.com"));
        assert_eq!(s.voice, Some(MessageCounts::new(3, 0)));
        assert_eq!(
            s.fax,
            Some(MessageCounts {
                new: 1,
                old: 2,
                urgent_new: 1,
                urgent_old: 0
            })
        );
        assert_eq!(s.text, Some(MessageCounts::new(0, 0)));
        assert_eq!(s.pager, None);
    }

    #[test]
    fn no_messages_and_every_class_round_trip() {
        let mut s = MessageSummary::new(false);
        for (i, class) in MessageClass::ALL.into_iter().enumerate() {
            let n = u32::try_from(i).unwrap();
            s.set_counts(
                class,
                Some(MessageCounts {
                    new: n,
                    old: n + 1,
                    urgent_new: 0,
                    urgent_old: n,
                }),
            );
        }
        let body = s.to_body();
        assert!(body.starts_with("Messages-Waiting: no\r\nVoice-Message: 0/1 (0/0)\r\n"));
        assert!(body.ends_with("None: 5/6 (0/5)\r\n"), "{body}");
        assert_eq!(MessageSummary::parse(body.as_bytes()).unwrap(), s);
    }

    #[test]
    fn folded_lines_and_first_wins() {
        let body = "Messages-Waiting: no\r\nVoice-Message:\r\n   2/3\r\n\
                    Voice-Message: 9/9\r\nMessages-Waiting: yes\r\n";
        let s = MessageSummary::parse(body.as_bytes()).unwrap();
        assert!(!s.messages_waiting);
        assert_eq!(s.voice, Some(MessageCounts::new(2, 3)));
    }

    #[test]
    fn huge_numbers_saturate() {
        let s = MessageSummary::parse(
            b"Messages-Waiting: yes\r\n\
              Voice-Message: 99999999999999/1 (123456789012345678901234567890/0)\r\n",
        )
        .unwrap();
        let v = s.voice.unwrap();
        assert_eq!((v.new, v.old, v.urgent_new), (u32::MAX, 1, u32::MAX));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        use MessageSummaryError::*;
        let cases: &[(&[u8], MessageSummaryError)] = &[
            (b"", MissingStatus),
            (b"Voice-Message: 1/2\r\n", MissingStatus),
            (b"Messages-Waiting: maybe\r\n", BadStatus { line: 1 }),
            (b"Messages-Waiting:\r\n", BadStatus { line: 1 }),
            (
                b"Messages-Waiting: yes\r\nVoice-Message: 2/\r\n",
                BadCounts {
                    class: MessageClass::Voice,
                    line: 2,
                },
            ),
            (
                b"Messages-Waiting: yes\nFax-Message: 2/8 (0/2",
                BadCounts {
                    class: MessageClass::Fax,
                    line: 2,
                },
            ),
            (
                b"Messages-Waiting: yes\nVoice-Message: -1/2",
                BadCounts {
                    class: MessageClass::Voice,
                    line: 2,
                },
            ),
            (
                b"Messages-Waiting: yes\nVoice-Message: 1/2 (3/4) trailing",
                BadCounts {
                    class: MessageClass::Voice,
                    line: 2,
                },
            ),
            (
                b"Messages-Waiting: yes\nNone: \xd9\xa3/1",
                BadCounts {
                    class: MessageClass::None,
                    line: 2,
                },
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(
                MessageSummary::parse(body).as_ref(),
                Err(expected),
                "{}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A deterministic walk over truncations and byte flips of a valid body plus noise.
        let valid =
            b"Messages-Waiting: yes\r\nMessage-Account: sip:a@b\r\nVoice-Message: 2/8 (0/2)\r\n";
        for end in 0..=valid.len() {
            let _ = MessageSummary::parse(&valid[..end]);
        }
        let mut state = 0x2545_f491_u32;
        for _ in 0..2000 {
            let mut body = valid.to_vec();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                let at = state as usize % body.len();
                body[at] = (state >> 8) as u8;
            }
            let _ = MessageSummary::parse(&body);
        }
        for noise in [
            &b"\xff\xfe\x00\x00"[..],
            b"::::\n:\r\r\n(((((/)))))",
            b"Messages-Waiting: yes\nVoice-Message: ((((/",
            b"\n\n\n\n",
            b" \t folded first",
        ] {
            let _ = MessageSummary::parse(noise);
        }
    }

    #[test]
    fn printer_keeps_lines_and_debug_hides_the_account() {
        let mut s = MessageSummary::new(true);
        s.account = Some("sip:alice@example.com\r\nVoice-Message: 9/9".into());
        let body = s.to_body();
        assert_eq!(body.matches("\r\n").count(), 2, "{body}");
        assert_eq!(MessageSummary::parse(body.as_bytes()).unwrap().voice, None);
        let debug = format!("{s:?}");
        assert!(!debug.contains("alice"), "{debug}");
    }
}
