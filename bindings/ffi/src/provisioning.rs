//! Account provisioning from a QR code or a provisioning link: [`parse_provisioning`] and
//! [`parse_provisioning_qr`] read the two forms of `handset_phone::provisioning` (the
//! `handset://provision?...` link and the JSON object) into a [`ProvisionedAccount`].
//!
//! The record carries the account's password or HA1 as a [`StoredSecret`], so the app can
//! keep it in its `SecretStore` under the account id it chooses; its `Debug` never shows it,
//! and no error message contains it. [`to_account_config`] turns the record into what
//! `HandsetPhone::add_account` takes.

use std::fmt;

use handset_media::sdp::{SrtpMode, SrtpPolicy};
use handset_phone::provisioning as core;

use crate::error::{HandsetError, guard};
use crate::types::{AccountConfig, MediaConfig, PushService, StoredSecret, Transport};

/// Media encryption chosen by a provisioning code (mirrors
/// `handset_phone::provisioning::SrtpMode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, uniffi::Enum)]
pub enum MediaEncryption {
    /// Plain RTP.
    Off,
    /// SDES-SRTP (keys in the SDP, RFC 4568), required.
    Sdes,
    /// DTLS-SRTP (RFC 5764), required.
    Dtls,
}

impl From<core::SrtpMode> for MediaEncryption {
    fn from(m: core::SrtpMode) -> Self {
        match m {
            core::SrtpMode::Off => Self::Off,
            core::SrtpMode::Sdes => Self::Sdes,
            core::SrtpMode::Dtls => Self::Dtls,
        }
    }
}

impl From<core::Transport> for Transport {
    fn from(t: core::Transport) -> Self {
        match t {
            core::Transport::Udp => Self::Udp,
            core::Transport::Tcp => Self::Tcp,
            core::Transport::Tls => Self::Tls,
        }
    }
}

/// An account read from a provisioning code (mirrors
/// `handset_phone::provisioning::ProvisionedAccount`). `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq, uniffi::Record)]
pub struct ProvisionedAccount {
    /// Registrar / outbound proxy, a `sip:` or `sips:` URI, e.g. `sips:pbx.example.com:5061`.
    pub server: String,
    /// Transport, when the code chose one (a `sips:` server implies TLS); else DNS decides.
    pub transport: Option<Transport>,
    /// SIP user (address-of-record user part).
    pub user: String,
    /// Authentication user name, when it differs from `user`.
    pub auth_user: Option<String>,
    /// The password or HA1: keep it in the platform's secret store (personal data: never
    /// logged nor shown).
    pub secret: StoredSecret,
    /// Display name.
    pub display_name: Option<String>,
    /// SIP domain of the address-of-record, when it is not the server's host.
    pub domain: Option<String>,
    /// The address-of-record, `sip:user@domain` (`sips:` for a `sips:` server).
    pub aor: String,
    /// Registration lifetime, seconds, when given (60..=604800).
    pub expires_secs: Option<u32>,
    /// Push service to register with, when push is to be used.
    pub push: Option<PushService>,
    /// RFC 8599 `pn-param` (APNs: `TEAMID.topic`), when given.
    pub push_param: Option<String>,
    /// Media encryption, when given (else the app's default).
    pub srtp: Option<MediaEncryption>,
    /// CA certificate(s) to trust for TLS, PEM text, when given: write it to a file and
    /// set [`AccountConfig::ca_file`].
    pub ca_pem: Option<String>,
    /// SHA-256 fingerprint of the server's own TLS certificate to pin, when given (upper-case
    /// colon-separated pairs); carried into [`AccountConfig::pinned_sha256`].
    pub pinned_sha256: Option<String>,
}

impl fmt::Debug for ProvisionedAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secret = match self.secret {
            StoredSecret::Password { .. } => "Password(<redacted>)",
            StoredSecret::Ha1 { .. } => "Ha1(<redacted>)",
        };
        f.debug_struct("ProvisionedAccount")
            .field("server", &self.server)
            .field("transport", &self.transport)
            .field("user", &self.user)
            .field("auth_user", &self.auth_user)
            .field("secret", &format_args!("{secret}"))
            .field("display_name", &self.display_name)
            .field("domain", &self.domain)
            .field("aor", &self.aor)
            .field("expires_secs", &self.expires_secs)
            .field("push", &self.push)
            .field("push_param", &self.push_param)
            .field("srtp", &self.srtp)
            .field("ca_pem", &self.ca_pem.as_ref().map(|pem| pem.len()))
            .field("pinned_sha256", &self.pinned_sha256)
            .finish()
    }
}

impl From<core::ProvisionedAccount> for ProvisionedAccount {
    fn from(a: core::ProvisionedAccount) -> Self {
        let secret = match a.secret.to_sip_secret() {
            handset::Secret::Password(password) => StoredSecret::Password { password },
            handset::Secret::Ha1 { md5, sha256 } => StoredSecret::Ha1 { md5, sha256 },
        };
        Self {
            aor: a.aor().to_string(),
            server: a.server.to_string(),
            transport: a.transport.map(Into::into),
            user: a.user,
            auth_user: a.auth_user,
            secret,
            display_name: a.display_name,
            domain: a.domain.map(|d| d.to_string()),
            expires_secs: a.expires,
            push: a.push.map(Into::into),
            push_param: a.push_param,
            srtp: a.srtp.map(Into::into),
            ca_pem: a.ca_pem,
            pinned_sha256: a.pinned_sha256.map(|pin| pin.to_string()),
        }
    }
}

/// Reads a provisioning code given as text: a `handset://provision?...` link or the JSON
/// form. A malformed code is [`HandsetError::InvalidArgument`] saying what is wrong (never
/// showing the secret).
#[uniffi::export]
pub fn parse_provisioning(text: String) -> Result<ProvisionedAccount, HandsetError> {
    guard(|| Ok(core::parse(&text)?.into()))
}

/// Reads the raw bytes of a scanned QR code (UTF-8 text in either form, an optional byte
/// order mark allowed). Errors as [`parse_provisioning`].
#[uniffi::export]
pub fn parse_provisioning_qr(bytes: Vec<u8>) -> Result<ProvisionedAccount, HandsetError> {
    guard(|| Ok(core::parse_qr(&bytes)?.into()))
}

/// The account configuration and secret of a provisioned account, under the app's
/// `account_id`: store the secret in the `SecretStore` under that id, then add the account.
///
/// Registration uses the code's lifetime (else 3600 s) and the default retry policy; push is
/// on when the code names a push service (the platform's current token is used; the code's
/// `push_param` is not carried: the token provider gives its own `param`). The code's SRTP
/// mode becomes the media settings like the CLI's `--srtp` (off: plain RTP; sdes/dtls:
/// required, with that key exchange); without one the phone's defaults apply. The CA PEM is
/// not a file: `ca_file` stays empty (write [`ProvisionedAccount::ca_pem`] to a file and set it);
/// the code's certificate fingerprint is pinned.
// Until `HandsetPhone::add_provisioned_account` (phone.rs) calls it.
pub(crate) fn to_account_config(
    account: &ProvisionedAccount,
    account_id: String,
) -> (AccountConfig, StoredSecret) {
    let media = account.srtp.map(|mode| {
        let mut media = handset_media::sdp::MediaConfig::default();
        (media.srtp, media.srtp_mode) = match mode {
            MediaEncryption::Off => (SrtpPolicy::Off, SrtpMode::Sdes),
            MediaEncryption::Sdes => (SrtpPolicy::Mandatory, SrtpMode::Sdes),
            MediaEncryption::Dtls => (SrtpPolicy::Mandatory, SrtpMode::Dtls),
        };
        MediaConfig::from(media)
    });
    let config = AccountConfig {
        account_id,
        server: account.server.clone(),
        user: account.user.clone(),
        domain: account.domain.clone(),
        auth_user: account.auth_user.clone(),
        display_name: account.display_name.clone(),
        transport: account.transport,
        ca_file: None,
        pinned_sha256: account.pinned_sha256.clone(),
        expires_secs: account.expires_secs.unwrap_or(3600),
        register: true,
        retry_base_secs: 30,
        retry_max_secs: 1800,
        media,
        push: account.push.is_some(),
        // PBX accounts have a voicemail box; one without MWI answers 489 and nothing is retried.
        voicemail: true,
        ice: None,
    };
    (config, account.secret.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "Tr0ub4dor&3 +#%=x";
    const HA1_MD5: &str = "5f4dcc3b5aa765d61d8327deb882cf99";

    fn invalid(result: Result<ProvisionedAccount, HandsetError>) -> String {
        match result {
            Err(HandsetError::InvalidArgument(message)) => message,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn a_provisioning_link_is_read() {
        let link = "handset://provision?server=sip%3Apbx.example.com%3Btransport%3Dtcp\
                    &user=1001&password=Tr0ub4dor%263%20%2B%23%25%3Dx&display=Front%20desk\
                    &expires=600&srtp=sdes";
        let a = parse_provisioning(link.into()).unwrap();
        assert_eq!(a.server, "sip:pbx.example.com;transport=tcp");
        assert_eq!(a.transport, Some(Transport::Tcp));
        assert_eq!(a.user, "1001");
        assert_eq!(a.auth_user, None);
        assert_eq!(
            a.secret,
            StoredSecret::Password {
                password: PASSWORD.into()
            }
        );
        assert_eq!(a.display_name.as_deref(), Some("Front desk"));
        assert_eq!(a.domain, None);
        assert_eq!(a.aor, "sip:1001@pbx.example.com");
        assert_eq!(a.expires_secs, Some(600));
        assert_eq!(a.push, None);
        assert_eq!(a.srtp, Some(MediaEncryption::Sdes));

        let (config, secret) = to_account_config(&a, "work".into());
        assert_eq!(secret, a.secret);
        assert_eq!(config.account_id, "work");
        assert_eq!(config.server, "sip:pbx.example.com;transport=tcp");
        assert_eq!(config.user, "1001");
        assert_eq!(config.transport, Some(Transport::Tcp));
        assert_eq!(config.display_name.as_deref(), Some("Front desk"));
        assert_eq!(config.expires_secs, 600);
        assert!(config.register && !config.push);
        let media = config.media.unwrap();
        assert_eq!(media.srtp, crate::types::Srtp::Mandatory);
        assert_eq!(media.srtp_key_exchange, crate::types::SrtpKeyExchange::Sdes);
        // The rest of the media settings are the core's defaults.
        assert_eq!(media.codecs, crate::default_media_config().codecs);
    }

    #[test]
    fn a_json_code_is_read_from_text_and_from_qr_bytes() {
        let json = format!(
            r#"{{"version":1,"server":"sips:pbx.example.com:5061","user":"+4930123456",
               "auth_user":"u-7781","ha1":"{}","domain":"example.com",
               "push":"apns","push_param":"ABCDE12345.com.example.handset.voip",
               "srtp":"dtls","future":"ignored"}}"#,
            HA1_MD5.to_uppercase()
        );
        let a = parse_provisioning(json.clone()).unwrap();
        assert_eq!(a.server, "sips:pbx.example.com:5061");
        assert_eq!(a.transport, Some(Transport::Tls), "sips implies TLS");
        assert_eq!(a.user, "+4930123456");
        assert_eq!(a.auth_user.as_deref(), Some("u-7781"));
        assert_eq!(
            a.secret,
            StoredSecret::Ha1 {
                md5: Some(HA1_MD5.into()),
                sha256: None
            }
        );
        assert_eq!(a.domain.as_deref(), Some("example.com"));
        assert_eq!(a.aor, "sips:+4930123456@example.com");
        assert_eq!(a.push, Some(PushService::Apns));
        assert_eq!(
            a.push_param.as_deref(),
            Some("ABCDE12345.com.example.handset.voip")
        );
        assert_eq!(a.srtp, Some(MediaEncryption::Dtls));
        assert_eq!(a.expires_secs, None);

        let mut bytes = "\u{feff}".as_bytes().to_vec();
        bytes.extend_from_slice(json.as_bytes());
        assert_eq!(parse_provisioning_qr(bytes).unwrap(), a);

        let (config, secret) = to_account_config(&a, "front".into());
        assert_eq!(secret, a.secret);
        assert_eq!(config.domain.as_deref(), Some("example.com"));
        assert_eq!(config.auth_user.as_deref(), Some("u-7781"));
        assert_eq!(config.expires_secs, 3600, "the default lifetime");
        assert!(config.push);
        let media = config.media.unwrap();
        assert_eq!(media.srtp, crate::types::Srtp::Mandatory);
        assert_eq!(media.srtp_key_exchange, crate::types::SrtpKeyExchange::Dtls);

        let plain = parse_provisioning(
            r#"{"version":1,"server":"sip:10.0.0.1","user":"7","password":"p","srtp":"off"}"#
                .into(),
        )
        .unwrap();
        let (config, _) = to_account_config(&plain, "lab".into());
        assert_eq!(config.media.unwrap().srtp, crate::types::Srtp::Off);
        let none =
            parse_provisioning("handset://provision?server=sip:10.0.0.1&user=7&password=p".into())
                .unwrap();
        assert_eq!(to_account_config(&none, "lab".into()).0.media, None);
    }

    #[test]
    fn malformed_codes_are_readable_errors() {
        let cases: [(&str, &str); 10] = [
            ("", "empty"),
            (
                "https://example.com/provision?x=1",
                "unknown provisioning URI scheme",
            ),
            ("handset://other?server=sip:a", "not a provisioning link"),
            ("handset://provision?user=1001&password=x", "lacks `server`"),
            (
                "handset://provision?server=sip:pbx&user=1001",
                "neither `password` nor `ha1`",
            ),
            (
                "handset://provision?server=sip:pbx&user=1001&password=a&password=b",
                "given twice",
            ),
            (
                "handset://provision?server=http://pbx&user=1&password=x",
                "not a usable SIP URI",
            ),
            ("{\"server\":\"sip:pbx\"", "does not parse"),
            (
                "{\"version\":2,\"server\":\"sip:pbx\"}",
                "unsupported provisioning version",
            ),
            (
                "handset://provision?server=sip:pbx&user=1&password=x&expires=5",
                "`expires`",
            ),
        ];
        for (code, expected) in cases {
            let message = invalid(parse_provisioning(code.into()));
            assert!(message.contains(expected), "{code:?}: {message}");
        }
        let message = invalid(parse_provisioning_qr(vec![0xff, 0xfe, 0x00]));
        assert!(message.contains("not UTF-8"), "{message}");
        let message = invalid(parse_provisioning_qr(vec![b'x'; 10_000]));
        assert!(message.contains("more than"), "{message}");
        // The secret of a refused code is not echoed.
        let message = invalid(parse_provisioning(format!(
            "handset://provision?server=sip:pbx&user=1001&password={PASSWORD}"
        )));
        assert!(!message.contains("Tr0ub4dor"), "{message}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let link =
            "handset://provision?server=sip:pbx.example.com&user=1001&password=hunter2secret"
                .to_string();
        let a = parse_provisioning(link).unwrap();
        let text = format!("{a:?}");
        assert!(!text.contains("hunter2secret"), "{text}");
        assert!(
            text.contains("Password(<redacted>)") && text.contains("1001"),
            "{text}"
        );
        let (config, secret) = to_account_config(&a, "x".into());
        assert!(!format!("{config:?} {secret:?}").contains("hunter2secret"));
        let ha1 = parse_provisioning(format!(
            r#"{{"version":1,"server":"sip:pbx","user":"1","ha1":"{HA1_MD5}"}}"#
        ))
        .unwrap();
        let text = format!("{ha1:?}");
        assert!(
            !text.contains(HA1_MD5) && text.contains("Ha1(<redacted>)"),
            "{text}"
        );
    }

    #[test]
    fn pinned_fingerprint_is_carried_into_the_account() {
        let pin = "96bc009a15dfc5be943e1afbfc6f1434e67f1d8c6548711ba9e0d562fcfcb617";
        let a = parse_provisioning(format!(
            "handset://provision?server=sips:pbx.example.com&user=1001&password=x&pin_sha256={pin}"
        ))
        .unwrap();
        let printed = a.pinned_sha256.clone().unwrap();
        assert!(printed.starts_with("96:BC:00:9A:"), "{printed}");
        let (config, _) = to_account_config(&a, "x".into());
        assert_eq!(config.pinned_sha256, Some(printed));
        let bad = invalid(parse_provisioning(
            "handset://provision?server=sip:pbx&user=1&password=x&pin_sha256=zz".into(),
        ));
        assert!(bad.contains("pin_sha256"), "{bad}");
    }
}
