//! Pinned TLS certificates: the SHA-256 fingerprint of the one certificate a PBX presents.
//!
//! PBXs often ship a self-signed certificate (one marked CA by `openssl req -x509`'s default
//! extensions), which chain verification refuses as a server certificate. The user or the
//! provisioning code can pin it instead, by its PEM file or by its fingerprint; the runtime then
//! accepts that exact certificate, still checking its host name and validity period.
//!
//! The accepted text forms are what tools print: 64 hex digits, or 32 colon-separated pairs
//! (`openssl x509 -fingerprint -sha256` output, with or without its `sha256 Fingerprint=`
//! prefix), either case.

use std::fmt;
use std::str::FromStr;

/// Longest fingerprint text looked at (with separators and prefix); longer input is refused
/// without being echoed.
const MAX_TEXT: usize = 128;

/// The SHA-256 digest of a certificate's DER encoding.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CertFingerprint([u8; 32]);

/// Why a fingerprint text is unusable. Messages say what is expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FingerprintError {
    /// Not 64 hex digits.
    #[error(
        "a SHA-256 certificate fingerprint is 64 hex digits (optionally colon-separated pairs); got {0} digits"
    )]
    Length(usize),
    /// A character that is neither a hex digit nor a separator.
    #[error("a SHA-256 certificate fingerprint holds only hex digits and colons")]
    NotHex,
    /// Colons that do not separate pairs of digits.
    #[error("colons in a SHA-256 certificate fingerprint must separate pairs of hex digits")]
    Separator,
}

impl CertFingerprint {
    /// The fingerprint of a certificate whose SHA-256 digest is `digest`.
    pub fn from_digest(digest: [u8; 32]) -> Self {
        CertFingerprint(digest)
    }

    /// The digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl FromStr for CertFingerprint {
    type Err = FingerprintError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_TEXT {
            return Err(FingerprintError::Length(
                text.bytes().filter(u8::is_ascii_hexdigit).count(),
            ));
        }
        let mut text = text.trim();
        // `openssl x509 -fingerprint -sha256` prints `sha256 Fingerprint=AB:CD:...`.
        if let Some((label, value)) = text.split_once('=')
            && label.trim().eq_ignore_ascii_case("sha256 fingerprint")
        {
            text = value.trim();
        }
        if text.chars().any(|c| !c.is_ascii_hexdigit() && c != ':') {
            return Err(FingerprintError::NotHex);
        }
        let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
        if digits.len() != 64 {
            return Err(FingerprintError::Length(digits.len()));
        }
        if text.contains(':') && !text.split(':').all(|pair| pair.len() == 2) {
            return Err(FingerprintError::Separator);
        }
        let mut digest = [0u8; 32];
        for (byte, pair) in digest.iter_mut().zip(digits.chunks_exact(2)) {
            let pair = std::str::from_utf8(pair).map_err(|_| FingerprintError::NotHex)?;
            *byte = u8::from_str_radix(pair, 16).map_err(|_| FingerprintError::NotHex)?;
        }
        Ok(CertFingerprint(digest))
    }
}

/// Upper-case colon-separated pairs, as `openssl x509 -fingerprint` prints them.
impl fmt::Display for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, byte) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(":")?;
            }
            write!(f, "{byte:02X}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for CertFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CertFingerprint({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef";

    fn colons(hex: &str) -> String {
        hex.as_bytes()
            .chunks(2)
            .map(|p| std::str::from_utf8(p).unwrap())
            .collect::<Vec<_>>()
            .join(":")
    }

    #[test]
    fn plain_and_colon_forms_give_the_same_digest() {
        let plain: CertFingerprint = PLAIN.parse().unwrap();
        let colon: CertFingerprint = colons(PLAIN).parse().unwrap();
        assert_eq!(plain, colon);
        assert_eq!(plain.as_bytes()[0], 0x01);
        assert_eq!(plain.as_bytes()[31], 0xef);
        // Printing and parsing again is the identity.
        assert_eq!(plain.to_string().parse::<CertFingerprint>().unwrap(), plain);
        assert_eq!(plain.to_string(), colons(&PLAIN.to_ascii_uppercase()));
    }

    #[test]
    fn openssl_output_is_accepted_as_printed() {
        let printed = format!(
            "sha256 Fingerprint={}\n",
            colons(&PLAIN.to_ascii_uppercase())
        );
        assert_eq!(
            printed.parse::<CertFingerprint>().unwrap(),
            PLAIN.parse().unwrap()
        );
        assert_eq!(
            format!("  {PLAIN}  ").parse::<CertFingerprint>().unwrap(),
            PLAIN.parse().unwrap()
        );
    }

    #[test]
    fn bad_text_is_a_clear_error() {
        let short = PLAIN.get(..62).unwrap();
        assert_eq!(
            short.parse::<CertFingerprint>(),
            Err(FingerprintError::Length(62))
        );
        assert_eq!(
            format!("{PLAIN}00").parse::<CertFingerprint>(),
            Err(FingerprintError::Length(66))
        );
        assert_eq!(
            "".parse::<CertFingerprint>(),
            Err(FingerprintError::Length(0))
        );
        let not_hex = PLAIN.replace('a', "g");
        assert_eq!(
            not_hex.parse::<CertFingerprint>(),
            Err(FingerprintError::NotHex)
        );
        // A SHA-1 fingerprint (20 bytes) is not mistaken for one.
        assert_eq!(
            colons(&PLAIN[..40]).parse::<CertFingerprint>(),
            Err(FingerprintError::Length(40))
        );
        // Colons in the wrong places.
        let odd = format!("0{}", colons(&PLAIN[1..]));
        assert_eq!(
            odd.parse::<CertFingerprint>(),
            Err(FingerprintError::Separator)
        );
        assert_eq!(
            format!(":{PLAIN}").parse::<CertFingerprint>(),
            Err(FingerprintError::Separator)
        );
        // Another digest's label is not taken for SHA-256's.
        assert_eq!(
            format!("sha1 Fingerprint={PLAIN}").parse::<CertFingerprint>(),
            Err(FingerprintError::NotHex)
        );
        // Long input is refused without being copied into the message.
        let long = "ab".repeat(1000);
        let error = long.parse::<CertFingerprint>().unwrap_err();
        assert!(error.to_string().len() < 200, "{error}");
        // Multi-byte characters are not hex and never split.
        assert_eq!(
            "é".repeat(32).parse::<CertFingerprint>(),
            Err(FingerprintError::NotHex)
        );
    }
}
