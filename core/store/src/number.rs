//! Phone number normalization and matching, without external data.
//!
//! [`normalize`] turns what a user typed, an address book entry or a SIP/tel URI into a
//! [`NormalizedNumber`]: the E.164 form when it can be known, the national significant
//! digits, the extension and whether it is a PBX short extension.
//!
//! # What is understood
//! * `+` and the international prefixes: `00` everywhere, plus the country's own
//!   (`011` in NANP, `0011` AU, `010` JP, `001` KR/HK, `000` SG, `810` RU).
//! * The national trunk prefix (table below), removed to form the national significant
//!   number; the "+49 (0)30 …" convention (a `(0)` after the country code) is dropped.
//! * Punctuation and spaces: everything but digits is ignored (vanity letters such as
//!   1-800-FLOWERS are not translated).
//! * Extensions: `;ext=12` (RFC 3966), `ext. 12`, `ext 12`, `x12`, and a `,` pause.
//! * PBX short extensions: 2–6 digits dialed without `+`/international prefix are
//!   `is_short` and matched as-is (this includes emergency numbers such as 112 or 911).
//! * `tel:` URIs and `sip:`/`sips:` URIs with a user part (optionally inside `"Name" <…>`):
//!   the user part is taken; a SIP URI without user part (`sip:pbx.example.com`) has no number.
//!
//! # Countries covered (ISO code: calling code, trunk prefix)
//! NANP — US, CA: `1`, trunk `1` (10-digit national numbers). Trunk `0`: GB 44, DE 49,
//! FR 33, CN 86, AT 43, CH 41, NL 31, BE 32, IE 353, SE 46, FI 358, TR 90, IN 91, JP 81,
//! KR 82, AU 61, NZ 64, BR 55, ZA 27, AE 971, IL 972. Trunk `8`: RU 7. No trunk prefix
//! (the leading digit is part of the number): IT 39, ES 34, PT 351, DK 45, NO 47, PL 48,
//! CZ 420, GR 30, MX 52, SG 65, HK 852. With any other `default_country` only numbers
//! written internationally get an E.164 form.
//!
//! Calling codes of *international* numbers are split for every country: codes are
//! prefix-free, 1 and 7 are the only one-digit codes and the two-digit ones are listed
//! in [`TWO_DIGIT_CODES`]; all others have three digits.
//!
//! # Matching rule ([`numbers_match`])
//! Two numbers match when their E.164 forms are equal; or both are short extensions with
//! the same digits; or, as a fallback when at least one of them has no E.164 form, the
//! last 8 digits of their national forms are equal and both have at least 8 digits.
//! Extensions are not compared.

/// A normalized phone number.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NormalizedNumber {
    /// `+` followed by country code and national significant number, when known.
    pub e164: Option<String>,
    /// National significant number (digits only, trunk prefix removed) when it could be
    /// determined, otherwise the digits as dialed (short extensions, local numbers
    /// without area code, unknown countries).
    pub national: String,
    /// The extension (digits) after `;ext=`, `x`, `ext.` or a `,` pause.
    pub extension: Option<String>,
    /// A PBX short extension (2–6 digits, not international).
    pub is_short: bool,
}

struct Country {
    iso: &'static str,
    code: &'static str,
    trunk: Option<&'static str>,
    /// Country-specific international prefixes besides `00`, longest first.
    intl: &'static [&'static str],
}

const fn c(
    iso: &'static str,
    code: &'static str,
    trunk: Option<&'static str>,
    intl: &'static [&'static str],
) -> Country {
    Country {
        iso,
        code,
        trunk,
        intl,
    }
}

const COUNTRIES: &[Country] = &[
    c("US", "1", Some("1"), &["011"]),
    c("CA", "1", Some("1"), &["011"]),
    c("GB", "44", Some("0"), &[]),
    c("DE", "49", Some("0"), &[]),
    c("FR", "33", Some("0"), &[]),
    c("CN", "86", Some("0"), &[]),
    c("AT", "43", Some("0"), &[]),
    c("CH", "41", Some("0"), &[]),
    c("NL", "31", Some("0"), &[]),
    c("BE", "32", Some("0"), &[]),
    c("IE", "353", Some("0"), &[]),
    c("SE", "46", Some("0"), &[]),
    c("FI", "358", Some("0"), &[]),
    c("TR", "90", Some("0"), &[]),
    c("IN", "91", Some("0"), &[]),
    c("JP", "81", Some("0"), &["010"]),
    c("KR", "82", Some("0"), &["001", "002"]),
    c("AU", "61", Some("0"), &["0011"]),
    c("NZ", "64", Some("0"), &[]),
    c("BR", "55", Some("0"), &[]),
    c("ZA", "27", Some("0"), &[]),
    c("AE", "971", Some("0"), &[]),
    c("IL", "972", Some("0"), &[]),
    c("RU", "7", Some("8"), &["810"]),
    c("IT", "39", None, &[]),
    c("ES", "34", None, &[]),
    c("PT", "351", None, &[]),
    c("DK", "45", None, &[]),
    c("NO", "47", None, &[]),
    c("PL", "48", None, &[]),
    c("CZ", "420", None, &[]),
    c("GR", "30", None, &[]),
    c("MX", "52", None, &[]),
    c("SG", "65", None, &["000"]),
    c("HK", "852", None, &["001"]),
];

/// The two-digit country calling codes (ITU-T E.164 assignments). Codes starting with 1
/// or 7 have one digit; every code not listed here and not starting with 1 or 7 has three.
pub const TWO_DIGIT_CODES: &[&str] = &[
    "20", "27", "30", "31", "32", "33", "34", "36", "39", "40", "41", "43", "44", "45", "46", "47",
    "48", "49", "51", "52", "53", "54", "55", "56", "57", "58", "60", "61", "62", "63", "64", "65",
    "66", "81", "82", "84", "86", "90", "91", "92", "93", "94", "95", "98",
];

/// Shortest national significant number given an E.164 form.
const MIN_NSN: usize = 4;
/// E.164 numbers have at most 15 digits.
const MAX_E164_DIGITS: usize = 15;
/// Digits compared by the fallback rule.
const FALLBACK_DIGITS: usize = 8;

fn country(iso: &str) -> Option<&'static Country> {
    COUNTRIES
        .iter()
        .find(|c| c.iso.eq_ignore_ascii_case(iso.trim()))
}

/// The number part of a dial string or URI, split from its extension.
struct Parts {
    plus: bool,
    digits: String,
    extension: Option<String>,
}

/// Normalizes `number` as dialed or stored in `default_country` (ISO 3166 alpha-2, e.g.
/// "US", "DE"; see the module docs for the covered countries).
pub fn normalize(number: &str, default_country: &str) -> NormalizedNumber {
    let parts = split(number);
    let extension = parts.extension;
    let digits = parts.digits;
    let home = country(default_country);

    let international = if parts.plus {
        Some(digits.as_str())
    } else {
        strip_intl_prefix(&digits, home)
    };
    if let Some(rest) = international {
        let (e164, national) = international_form(rest);
        return NormalizedNumber {
            e164,
            national,
            extension,
            is_short: false,
        };
    }
    if (2..=6).contains(&digits.len()) {
        return NormalizedNumber {
            e164: None,
            national: digits,
            extension,
            is_short: true,
        };
    }
    let (e164, national) = match home {
        Some(home) => national_form(&digits, home),
        None => (None, digits),
    };
    NormalizedNumber {
        e164,
        national,
        extension,
        is_short: false,
    }
}

/// The matching rule (see the module docs).
pub fn numbers_match(a: &NormalizedNumber, b: &NormalizedNumber) -> bool {
    match_strength(a, b).is_some()
}

/// How two numbers matched, strongest last (so `Ord` ranks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Strength {
    /// Last 8 national digits.
    Fallback,
    /// Same short extension.
    Short,
    /// Same E.164 form.
    E164,
}

pub(crate) fn match_strength(a: &NormalizedNumber, b: &NormalizedNumber) -> Option<Strength> {
    match (&a.e164, &b.e164) {
        (Some(x), Some(y)) => return (x == y).then_some(Strength::E164),
        _ if a.is_short && b.is_short => {
            return (a.national == b.national).then_some(Strength::Short);
        }
        _ => {}
    }
    let (x, y) = (&a.national, &b.national);
    if x.len() >= FALLBACK_DIGITS
        && y.len() >= FALLBACK_DIGITS
        && x[x.len() - FALLBACK_DIGITS..] == y[y.len() - FALLBACK_DIGITS..]
    {
        Some(Strength::Fallback)
    } else {
        None
    }
}

/// The digits of the number part (URI, extension and `(0)` removed): what is stored in
/// the database to find candidates for the matching rule and for partial-digit search.
pub(crate) fn index_digits(number: &str) -> String {
    split(number).digits
}

/// The last 4 index digits: equal for any two numbers that can match (E.164 numbers have
/// at least [`MIN_NSN`] national digits, short extensions are equal digit for digit,
/// the fallback compares 8 digits), so it is the indexed candidate key.
pub(crate) fn tail(digits: &str) -> &str {
    let start = digits.len().saturating_sub(4);
    &digits[start..]
}

/// The national digits of a *partial* dial string, for search-as-you-type: `+`/an
/// international prefix and a country code are removed, or else the trunk prefix of
/// `default_country` ("0170" in DE → "170", "+49 17" → "17").
pub(crate) fn partial_national(input: &str, default_country: &str) -> String {
    let parts = split(input);
    let home = country(default_country);
    let international = if parts.plus {
        Some(parts.digits.as_str())
    } else {
        strip_intl_prefix(&parts.digits, home)
    };
    if let Some(rest) = international {
        return split_country_code(rest)
            .map(|(_, nsn)| nsn.to_string())
            .unwrap_or_default();
    }
    match home.and_then(|h| h.trunk) {
        Some(trunk) => parts
            .digits
            .strip_prefix(trunk)
            .unwrap_or(&parts.digits)
            .to_string(),
        None => parts.digits,
    }
}

fn strip_intl_prefix<'a>(digits: &'a str, home: Option<&Country>) -> Option<&'a str> {
    if let Some(home) = home {
        for prefix in home.intl {
            if let Some(rest) = digits.strip_prefix(prefix) {
                return Some(rest);
            }
        }
    }
    digits.strip_prefix("00")
}

/// E.164 and national form of `digits` = country code + national number.
fn international_form(digits: &str) -> (Option<String>, String) {
    let Some((code, nsn)) = split_country_code(digits) else {
        return (None, digits.to_string());
    };
    let mut nsn = nsn;
    // "+49 030 …": the trunk prefix wrongly kept after the country code.
    if let Some(home) = COUNTRIES.iter().find(|c| c.code == code)
        && let Some(trunk) = home.trunk
        && trunk == "0"
    {
        nsn = nsn.strip_prefix('0').unwrap_or(nsn);
    }
    (e164(code, nsn), nsn.to_string())
}

fn split_country_code(digits: &str) -> Option<(&str, &str)> {
    let len = match digits.as_bytes().first()? {
        b'0' => return None,
        b'1' | b'7' => 1,
        _ if TWO_DIGIT_CODES.contains(&digits.get(..2)?) => 2,
        _ => 3,
    };
    Some((digits.get(..len)?, digits.get(len..)?))
}

fn national_form(digits: &str, home: &Country) -> (Option<String>, String) {
    if home.code == "1" {
        // NANP: NPA-NXX-XXXX, optionally preceded by the trunk prefix 1.
        let nsn = match digits.len() {
            11 if digits.starts_with('1') => &digits[1..],
            10 => digits,
            _ => return (None, digits.to_string()),
        };
        if nsn.starts_with(['0', '1']) {
            return (None, digits.to_string());
        }
        return (e164(home.code, nsn), nsn.to_string());
    }
    match home.trunk {
        Some(trunk) => match digits.strip_prefix(trunk) {
            Some(nsn) => (e164(home.code, nsn), nsn.to_string()),
            // A local number without area code: the E.164 form is unknown.
            None => (None, digits.to_string()),
        },
        None => (e164(home.code, digits), digits.to_string()),
    }
}

fn e164(code: &str, nsn: &str) -> Option<String> {
    (nsn.len() >= MIN_NSN && code.len() + nsn.len() <= MAX_E164_DIGITS)
        .then(|| format!("+{code}{nsn}"))
}

/// Splits a dial string or URI into `+`, digits and extension.
fn split(input: &str) -> Parts {
    let (number, uri_ext) = uri_user(input);
    let number = percent_decode(&number);
    let lower = number.to_ascii_lowercase();
    let mut text = lower.as_str();

    // Extension markers: cut at the first one found after the number started.
    let mut extension = uri_ext;
    if let Some((at, marker)) = find_extension(text) {
        let ext: String = text[at + marker.len()..]
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        if !ext.is_empty() && extension.is_none() {
            extension = Some(ext);
        }
        text = &text[..at];
    }

    let trimmed = text.trim_start_matches(|c: char| !c.is_ascii_digit() && c != '+');
    let plus = trimmed.starts_with('+');
    let mut body = trimmed.to_string();
    if plus {
        // "+49 (0)30 1234": the trunk prefix in parentheses is not dialed internationally.
        body = body.replace("(0)", "");
    }
    let digits = body.chars().filter(char::is_ascii_digit).collect();
    Parts {
        plus,
        digits,
        extension,
    }
}

fn find_extension(text: &str) -> Option<(usize, &'static str)> {
    const MARKERS: &[&str] = &[";ext=", "ext.", "ext", "x", ","];
    let first_digit = text.find(|c: char| c.is_ascii_digit())?;
    MARKERS
        .iter()
        .filter_map(|m| text[first_digit..].find(m).map(|at| (first_digit + at, *m)))
        .min_by_key(|(at, _)| *at)
}

/// The user part of a `tel:`/`sip:`/`sips:` URI (and its `ext` parameter), or the input
/// itself when it is not a URI.
fn uri_user(input: &str) -> (String, Option<String>) {
    let mut s = input.trim();
    // name-addr: "Alice" <sip:alice@example.com>
    if let (Some(open), Some(close)) = (s.rfind('<'), s.rfind('>'))
        && open < close
    {
        s = &s[open + 1..close];
    }
    let lower = s.to_ascii_lowercase();
    let (rest, is_sip) = if lower.starts_with("tel:") {
        (&s[4..], false)
    } else if lower.starts_with("sip:") {
        (&s[4..], true)
    } else if lower.starts_with("sips:") {
        (&s[5..], true)
    } else {
        return (s.to_string(), None);
    };
    let user = if is_sip {
        match rest.rfind('@') {
            // user:password@host — drop the password.
            Some(at) => rest[..at].split(':').next().unwrap_or(""),
            None => "",
        }
    } else {
        rest
    };
    let mut params = user.split(';');
    let number = params.next().unwrap_or("").to_string();
    let ext = params
        .filter_map(|p| {
            let (k, v) = p.split_once('=')?;
            k.trim()
                .eq_ignore_ascii_case("ext")
                .then(|| v.chars().filter(char::is_ascii_digit).collect::<String>())
        })
        .find(|v| !v.is_empty());
    (number, ext)
}

fn percent_decode(s: &str) -> String {
    if !s.contains('%') {
        return s.to_string();
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e164(n: &str, cc: &str) -> Option<String> {
        normalize(n, cc).e164
    }

    #[test]
    fn international_forms() {
        for (input, cc) in [
            ("+49 30 1234567", "US"),
            ("0049 30 1234567", "US"),
            ("0049301234567", "GB"),
            ("+49 (0)30 1234567", "FR"),
            ("+49-030-1234567", "CN"),
            ("030 / 123 45 67", "DE"),
            ("011 49 30 1234567", "US"),
            ("tel:+49-30-1234567", "DE"),
            ("sip:+49301234567@pbx.example.com;user=phone", "US"),
            ("\"Bob\" <sip:004930%201234567@pbx.example.com>", "GB"),
        ] {
            assert_eq!(
                e164(input, cc).as_deref(),
                Some("+49301234567"),
                "{input} in {cc}"
            );
            assert_eq!(
                normalize(input, cc).national,
                "301234567",
                "{input} in {cc}"
            );
        }
    }

    #[test]
    fn national_trunk_prefixes() {
        assert_eq!(
            e164("020 7946 0018", "GB").as_deref(),
            Some("+442079460018")
        );
        assert_eq!(
            e164("01 23 45 67 89", "FR").as_deref(),
            Some("+33123456789")
        );
        assert_eq!(e164("010-12345678", "CN").as_deref(), Some("+861012345678"));
        assert_eq!(
            e164("(202) 555-0123", "US").as_deref(),
            Some("+12025550123")
        );
        assert_eq!(
            e164("1-202-555-0123", "US").as_deref(),
            Some("+12025550123")
        );
        assert_eq!(
            e164("+1 202 555 0123", "DE").as_deref(),
            Some("+12025550123")
        );
        assert_eq!(e164("416 555 0199", "ca").as_deref(), Some("+14165550199"));
        assert_eq!(e164("06 1234 5678", "IT").as_deref(), Some("+390612345678"));
        assert_eq!(
            e164("8 495 123 45 67", "RU").as_deref(),
            Some("+74951234567")
        );
        assert_eq!(
            e164("810 49 30 1234567", "RU").as_deref(),
            Some("+49301234567")
        );
        assert_eq!(
            e164("0011 49 30 1234567", "AU").as_deref(),
            Some("+49301234567")
        );
        // a local number without area code: no E.164 form
        let local = normalize("1234567", "DE");
        assert_eq!((local.e164, local.national.as_str()), (None, "1234567"));
        assert_eq!(normalize("555-0123 4", "US").e164, None);
        // unknown country: only international numbers
        assert_eq!(e164("030 1234567", "XX"), None);
        assert_eq!(
            e164("+33 1 23 45 67 89", "").as_deref(),
            Some("+33123456789")
        );
    }

    #[test]
    fn extensions() {
        for input in [
            "+1 202 555 0123 x 42",
            "+1 202 555 0123 ext. 42",
            "+1 202 555 0123 EXT 42",
            "+1-202-555-0123;ext=42",
            "tel:+1-202-555-0123;ext=42",
            "+12025550123,,42",
        ] {
            let n = normalize(input, "US");
            assert_eq!(n.e164.as_deref(), Some("+12025550123"), "{input}");
            assert_eq!(n.extension.as_deref(), Some("42"), "{input}");
        }
        assert_eq!(normalize("+12025550123", "US").extension, None);
    }

    #[test]
    fn short_extensions_and_uris() {
        let n = normalize("sip:204@pbx.example.com", "DE");
        assert!(n.is_short);
        assert_eq!((n.national.as_str(), n.e164), ("204", None));
        assert!(normalize("12", "US").is_short);
        assert!(normalize("112", "DE").is_short);
        assert!(normalize("123456", "DE").is_short);
        assert!(!normalize("1234567", "DE").is_short);
        assert!(!normalize("1", "DE").is_short);
        assert!(!normalize("+4912", "DE").is_short);
        // a SIP URI without user part has no number
        assert_eq!(normalize("sip:10.0.0.1", "DE").national, "");
        assert_eq!(normalize("sip:alice@example.com", "DE").national, "");
        assert_eq!(normalize("sips:2001:secret@pbx", "DE").national, "2001");
    }

    #[test]
    fn matching_rule() {
        let m = |a: &str, b: &str, cc: &str| numbers_match(&normalize(a, cc), &normalize(b, cc));
        assert!(m("+49 30 1234567", "030 1234567", "DE"));
        assert!(m("sip:+12025550123@pbx", "(202) 555-0123", "US"));
        assert!(m("204", "sip:204@pbx", "US"));
        assert!(!m("204", "205", "US"));
        assert!(!m("+49 30 1234567", "+33 30 1234567", "DE"));
        // fallback: the stored number was written for another country
        assert!(m("+49 30 12345678", "030 12345678", "US"));
        assert!(
            !m("1234567", "+49 30 1234567", "US"),
            "7 digits are too few for the fallback"
        );
        assert!(!m("", "", "DE"));
        assert!(!m("1234", "+49301234", "DE"));
    }

    #[test]
    fn partial_national_digits() {
        assert_eq!(partial_national("0170", "DE"), "170");
        assert_eq!(partial_national("+49 17", "DE"), "17");
        assert_eq!(partial_national("0049 17", "FR"), "17");
        assert_eq!(partial_national("170", "DE"), "170");
        assert_eq!(partial_national("1202", "US"), "202");
        assert_eq!(partial_national("0612", "IT"), "0612");
    }

    #[test]
    fn garbage_is_no_panic() {
        for s in [
            "", "+", "00", "%", "%4", "tel:", "sip:@", "x", ";ext=", "<>", "ü+ß", "+0123",
        ] {
            let _ = normalize(s, "DE");
            let _ = index_digits(s);
        }
    }
}
