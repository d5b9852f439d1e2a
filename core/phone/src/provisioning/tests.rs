use super::*;

const CA_PEM: &str = "-----BEGIN CERTIFICATE-----
MIIBiTCCAS+gAwIBAgIUZsBeHQ+lmfFnynFsbxUIXKQzxxIwCgYIKoZIzj0EAwIw
GjEYMBYGA1UEAwwPSGFuZHNldCBUZXN0IENBMB4XDTI2MTEyMzEwNDEzNVoXDTM2
MTEyMDEwNDEzNVowGjEYMBYGA1UEAwwPSGFuZHNldCBUZXN0IENBMFkwEwYHKoZI
zj0CAQYIKoZIzj0DAQcDQgAEjB85ZU48G6nDM5iJL8pDHwzrnItkHYyKs2oZIUfI
fYwQfQ/iNmz8/GSX5zxTP4ibmalV195f42qldCpZhMbwUaNTMFEwHQYDVR0OBBYE
FCn1qLYgx+0zL08rDMA8oEXyGhX7MB8GA1UdIwQYMBaAFCn1qLYgx+0zL08rDMA8
oEXyGhX7MA8GA1UdEwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDSAAwRQIhANeXEKUa
B4A1jNO48tFlZ2lzF8AdE7FKALQgTd0JMJgOAiBmcTi0GTZ5BbkPTzo/O0pJHoeS
9qAQsY/E8e8NZSqeCQ==
-----END CERTIFICATE-----
";

const PASSWORD: &str = "Tr0ub4dor&3 +#%=x";
const HA1_MD5: &str = "5f4dcc3b5aa765d61d8327deb882cf99";
const HA1_SHA256: &str = "5e884898da28047151d0e56f8dc6292773603d0d6aabbdd62a11ef721d1542d8";

fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.len();
        let v = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= n {
                out.push(char::from(A[((v >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Escapes everything but RFC 3986 unreserved characters.
fn pct(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn uri(params: &[(&str, &str)]) -> String {
    let q: Vec<String> = params
        .iter()
        .map(|(k, v)| format!("{k}={}", pct(v)))
        .collect();
    format!("handset://provision?{}", q.join("&"))
}

fn with(extra: &[(&str, &str)]) -> String {
    let mut p: Vec<(&str, &str)> = vec![
        ("server", "sip:pbx.example.com"),
        ("user", "1001"),
        ("password", PASSWORD),
    ];
    p.extend_from_slice(extra);
    uri(&p)
}

fn err(text: &str) -> ProvisionError {
    parse(text).expect_err(text)
}

#[test]
fn the_documented_example_link() {
    let a = parse(
        "handset://provision?server=sip%3Apbx.example.com&transport=tls&user=1001&password=s3cr%26t",
    )
    .unwrap();
    assert_eq!(a.server.to_string(), "sip:pbx.example.com");
    assert_eq!(a.transport, Some(Transport::Tls));
    assert_eq!(a.user, "1001");
    assert_eq!(a.secret, AccountSecret::Password("s3cr&t".to_string()));
    assert_eq!(a.aor().to_string(), "sip:1001@pbx.example.com");
    assert_eq!(a.auth_name(), "1001");
    assert_eq!(a.display_name, None);
    assert_eq!(a.expires, None);
    assert_eq!(a.push, None);
    assert_eq!(a.srtp, None);
    assert_eq!(a.ca_pem, None);
    assert_eq!(a.pinned_sha256, None);
}

#[test]
fn pinned_certificate_fingerprint_in_both_forms() {
    // A PBX with a self-signed certificate is provisioned with its fingerprint, as openssl
    // prints it (colons) in a link, as plain hex in JSON.
    const PIN: &str = "96BC009A15DFC5BE943E1AFBFC6F1434E67F1D8C6548711BA9E0D562FCFCB617";
    let colons: Vec<&str> = (0..32).map(|i| &PIN[i * 2..i * 2 + 2]).collect();
    let a = parse(&with(&[("pin_sha256", &colons.join(":"))])).unwrap();
    let pin = a.pinned_sha256.expect("pinned");
    assert_eq!(pin.to_string(), colons.join(":"));
    assert_eq!(pin.as_bytes()[0], 0x96);
    let json = serde_json::json!({
        "version": 1,
        "server": "sips:pbx.example.com",
        "user": "1001",
        "password": "x",
        "pin_sha256": PIN.to_ascii_lowercase(),
    });
    assert_eq!(parse(&json.to_string()).unwrap().pinned_sha256, Some(pin));
    // An empty value is absent; a malformed one says what is expected.
    assert_eq!(
        parse(&with(&[("pin_sha256", "")])).unwrap().pinned_sha256,
        None
    );
    let error = err(&with(&[("pin_sha256", "96:BC:00")]));
    assert_eq!(
        error,
        ProvisionError::BadPin(crate::pin::FingerprintError::Length(6))
    );
    assert!(error.to_string().contains("`pin_sha256`"), "{error}");
    assert!(error.to_string().contains("64 hex digits"), "{error}");
}

#[test]
fn full_link_with_every_field() {
    let ca = base64(CA_PEM.as_bytes());
    let ha1 = HA1_SHA256.to_uppercase();
    let text = uri(&[
        ("server", "sips:pbx.example.com:5061"),
        ("user", "+4930123456"),
        ("auth_user", "u-7781"),
        ("ha1", &ha1),
        ("display", "Front desk"),
        ("domain", "example.com"),
        ("expires", "3600"),
        ("push", "apns"),
        ("push_param", "ABCDE12345.com.example.handset.voip"),
        ("srtp", "dtls"),
        ("ca", &ca),
        ("version", "1"),
        ("future_field", "ignored"),
    ]);
    let a = parse(&text).unwrap();
    assert!(a.server.secure);
    assert_eq!(a.server.port, Some(5061));
    assert_eq!(a.transport, Some(Transport::Tls), "sips implies tls");
    assert_eq!(a.user, "+4930123456");
    assert_eq!(a.auth_name(), "u-7781");
    assert_eq!(a.secret, AccountSecret::Ha1(HA1_SHA256.to_string()));
    assert_eq!(a.display_name.as_deref(), Some("Front desk"));
    assert_eq!(a.domain, Some(Host::Domain("example.com".to_string())));
    assert_eq!(a.aor().to_string(), "sips:+4930123456@example.com");
    assert_eq!(a.expires, Some(3600));
    assert_eq!(a.push, Some(PushProvider::Apns));
    assert_eq!(
        a.push_param.as_deref(),
        Some("ABCDE12345.com.example.handset.voip")
    );
    assert_eq!(a.srtp, Some(SrtpMode::Dtls));
    assert_eq!(a.ca_pem.as_deref(), Some(CA_PEM));
    match a.secret.to_sip_secret() {
        Secret::Ha1 { md5, sha256 } => {
            assert_eq!(md5, None);
            assert_eq!(sha256.as_deref(), Some(HA1_SHA256));
        }
        Secret::Password(_) => panic!("expected HA1"),
    }
}

#[test]
fn realistic_links() {
    // FCM account on an IP PBX over UDP with SDES, CA as unpadded URL-safe base64.
    let ca = base64(CA_PEM.as_bytes())
        .replace('+', "-")
        .replace('/', "_")
        .trim_end_matches('=')
        .to_string();
    let a = parse(&uri(&[
        ("server", "sip:192.0.2.10:5080;transport=udp"),
        ("user", "201"),
        ("ha1", HA1_MD5),
        ("push", "FCM"),
        ("push_param", "handset-12345"),
        ("srtp", "SDES"),
        ("ca", &ca),
    ]))
    .unwrap();
    assert_eq!(a.transport, Some(Transport::Udp));
    assert_eq!(a.aor().to_string(), "sip:201@192.0.2.10");
    assert_eq!(a.push, Some(PushProvider::Fcm));
    assert_eq!(a.srtp, Some(SrtpMode::Sdes));
    assert!(a.ca_pem.is_some());
    assert!(matches!(
        a.secret.to_sip_secret(),
        Secret::Ha1 {
            md5: Some(_),
            sha256: None
        }
    ));

    // IPv6 server, transport left to RFC 3263, upper-case scheme and host, trailing slash and
    // newline from the QR scanner; '+' in the password stays a plus.
    let a = parse("HANDSET://Provision/?server=sip:[2001:db8::1]&user=alice&password=a+b%20c\n")
        .unwrap();
    assert_eq!(a.transport, None);
    assert_eq!(a.secret, AccountSecret::Password("a+b c".to_string()));
    assert_eq!(a.aor().to_string(), "sip:alice@[2001:db8::1]");

    // Passwords with every troublesome character survive %-encoding.
    let a = parse(&with(&[])).unwrap();
    assert_eq!(a.secret, AccountSecret::Password(PASSWORD.to_string()));

    // Empty values count as absent; a trailing '&' is fine.
    let a = parse(&format!("{}&display=&push=&ha1=&", with(&[]))).unwrap();
    assert_eq!(a.display_name, None);
    assert_eq!(a.push, None);
    assert_eq!(a.secret, AccountSecret::Password(PASSWORD.to_string()));

    // A user with characters a SIP user part must escape.
    let a = parse(&uri(&[
        ("server", "sip:pbx.example.com"),
        ("user", "anna.müller"),
        ("password", "x"),
    ]))
    .unwrap();
    assert_eq!(a.aor().to_string(), "sip:anna.m%C3%BCller@pbx.example.com");
}

#[test]
fn json_forms() {
    let a = parse(
        r#"{"version":1,"server":"sips:pbx.example.com","user":"1001","password":"s3cr&t",
            "display":"Front desk","push":"apns","push_param":"ABCDE12345.com.example.handset.voip",
            "expires":"600","extra":{"nested":true},"domain":null,"ha1":""}"#,
    )
    .unwrap();
    assert_eq!(a.transport, Some(Transport::Tls));
    assert_eq!(a.expires, Some(600));
    assert_eq!(a.push, Some(PushProvider::Apns));
    assert_eq!(a.domain, None);
    assert_eq!(a.secret, AccountSecret::Password("s3cr&t".to_string()));

    // The PEM itself (JSON can hold newlines) and a numeric expires; a BOM from the QR library.
    let json = serde_json::json!({
        "version": 1,
        "server": "sip:pbx.example.com;transport=tcp",
        "transport": "TCP",
        "user": "1002",
        "auth_user": "acct-1002",
        "ha1": HA1_MD5,
        "expires": 1800,
        "srtp": "off",
        "ca": CA_PEM,
    })
    .to_string();
    let mut bytes = "\u{feff}".as_bytes().to_vec();
    bytes.extend_from_slice(json.as_bytes());
    let a = parse_qr(&bytes).unwrap();
    assert_eq!(a.transport, Some(Transport::Tcp));
    assert_eq!(a.auth_name(), "acct-1002");
    assert_eq!(a.expires, Some(1800));
    assert_eq!(a.srtp, Some(SrtpMode::Off));
    assert_eq!(a.ca_pem.as_deref(), Some(CA_PEM));

    // Two certificates in one bundle.
    let bundle = format!("{CA_PEM}\n{CA_PEM}");
    let json = serde_json::json!({
        "version": 1, "server": "sip:p.example", "user": "1", "password": "p",
        "ca": base64(bundle.as_bytes()),
    })
    .to_string();
    assert!(parse(&json).unwrap().ca_pem.is_some());
}

#[test]
fn every_error() {
    use ProvisionError as E;
    let ha1_g = "g".repeat(32);
    let long_user = "1".repeat(129);
    let no_end = base64(b"-----BEGIN CERTIFICATE-----\nMIIB\n");
    let bad_body = base64(b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n");
    let not_der =
        base64(b"-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n");
    let junk_after = base64(format!("{CA_PEM}trailing junk").as_bytes());
    let not_text = base64(b"\xff\xfe\x00");
    let cases: Vec<(String, ProvisionError)> =
        vec![
        ("".into(), E::Empty),
        ("   \n".into(), E::Empty),
        (
            "just some text".into(),
            E::MalformedUri("neither a URI nor a JSON object"),
        ),
        (
            "https://provision?server=x".into(),
            E::UnknownScheme("https".into()),
        ),
        ("sip:1001@pbx".into(), E::UnknownScheme("sip".into())),
        ("handset:provision?user=1".into(), E::NotProvisioning),
        ("handset://call?user=1".into(), E::NotProvisioning),
        (
            "handset://provision".into(),
            E::MalformedUri("no query parameters"),
        ),
        (
            format!("{}#frag", with(&[])),
            E::MalformedUri("a fragment ('#') is not allowed; escape '#' in values as %23"),
        ),
        (
            format!("{}&lonely", with(&[])),
            E::MalformedUri("a parameter without '=' (escape '&' and '=' in values)"),
        ),
        (
            format!("{}&=x", with(&[])),
            E::MalformedUri("a parameter without a name"),
        ),
        (
            format!("{}&user=1002", with(&[])),
            E::DuplicateParameter("user".into()),
        ),
        (
            "handset://provision?server=sip%3Apbx.example.com&user=1001&password=abc%2".into(),
            E::PercentDecoding {
                param: "password".into(),
            },
        ),
        (
            "handset://provision?server=sip%3Apbx.example.com&user=1001&password=%zz".into(),
            E::PercentDecoding {
                param: "password".into(),
            },
        ),
        (
            "handset://provision?server=sip%3Apbx.example.com&user=10%FF01&password=x".into(),
            E::PercentDecoding {
                param: "user".into(),
            },
        ),
        (
            "handset://provision?us%er=1".into(),
            E::PercentDecoding {
                param: "us%er".into(),
            },
        ),
        (
            uri(&[("user", "1001"), ("password", "x")]),
            E::MissingServer,
        ),
        (
            uri(&[("server", "sip:pbx.example.com"), ("password", "x")]),
            E::MissingUser,
        ),
        (with(&[("ha1", HA1_MD5)]), E::BothPasswordAndHa1),
        (
            uri(&[("server", "sip:pbx.example.com"), ("user", "1001")]),
            E::NoSecret,
        ),
        (
            uri(&[("server", "sip:p.example"), ("user", "1"), ("ha1", "abc")]),
            E::BadHa1,
        ),
        (
            uri(&[("server", "sip:p.example"), ("user", "1"), ("ha1", &ha1_g)]),
            E::BadHa1,
        ),
        (
            with(&[("transport", "sctp")]),
            E::BadTransport("sctp".into()),
        ),
        (
            uri(&[
                ("server", "sip:p.example;transport=ws"),
                ("user", "1"),
                ("password", "x"),
            ]),
            E::BadTransport("ws".into()),
        ),
        (
            uri(&[
                ("server", "sip:p.example;transport=tcp"),
                ("user", "1"),
                ("password", "x"),
                ("transport", "udp"),
            ]),
            E::TransportConflict("`transport` differs from the server URI's transport parameter"),
        ),
        (
            uri(&[
                ("server", "sips:p.example"),
                ("user", "1"),
                ("password", "x"),
                ("transport", "udp"),
            ]),
            E::TransportConflict("a sips: server needs transport tls"),
        ),
        (
            uri(&[("server", "pbx.example.com"), ("user", "1"), ("password", "x")]),
            E::BadSipUri("URI without scheme"),
        ),
        (
            uri(&[
                ("server", "http://pbx.example.com"),
                ("user", "1"),
                ("password", "x"),
            ]),
            E::BadSipUri("must be a sip: or sips: URI"),
        ),
        (
            uri(&[("server", "sip:pbx..example"), ("user", "1"), ("password", "x")]),
            E::BadSipUri("invalid host name"),
        ),
        (
            uri(&[
                ("server", "sip:1001:pw@pbx.example"),
                ("user", "1"),
                ("password", "x"),
            ]),
            E::BadSipUri("must not contain a password (use `password`)"),
        ),
        (
            uri(&[
                ("server", "sip:1001@pbx.example"),
                ("user", "1"),
                ("password", "x"),
            ]),
            E::BadSipUri("must not contain a user part (use `user`)"),
        ),
        (
            with(&[("domain", "bad domain")]),
            E::BadDomain("invalid host name"),
        ),
        (with(&[("expires", "soon")]), E::BadExpires("soon".into())),
        (with(&[("expires", "0")]), E::BadExpires("0".into())),
        (with(&[("expires", "59")]), E::BadExpires("59".into())),
        (with(&[("expires", "604801")]), E::BadExpires("604801".into())),
        (with(&[("expires", "-60")]), E::BadExpires("-60".into())),
        (
            with(&[("expires", "99999999999999999999")]),
            E::BadExpires("99999999999999999999".into()),
        ),
        (with(&[("push", "webpush")]), E::BadPush("webpush".into())),
        (with(&[("push_param", "proj")]), E::PushParamWithoutPush),
        (
            with(&[("push", "apns"), ("push_param", "nodot")]),
            E::BadPushParam("APNs needs TEAMID.topic, e.g. ABCDE12345.com.example.app.voip"),
        ),
        (
            with(&[("push", "fcm"), ("push_param", "a b")]),
            E::BadPushParam("at most 256 visible characters"),
        ),
        (with(&[("srtp", "zrtp")]), E::BadSrtp("zrtp".into())),
        (with(&[("version", "2")]), E::UnsupportedVersion("2".into())),
        (with(&[("ca", "***not base64***")]), E::BadBase64),
        (with(&[("ca", "QUJD=E")]), E::BadBase64),
        (with(&[("ca", "A")]), E::BadBase64),
        (
            with(&[("ca", "aGVsbG8gd29ybGQ=")]),
            E::BadPem("expected -----BEGIN CERTIFICATE-----"),
        ),
        (with(&[("ca", &not_text)]), E::BadPem("not text")),
        (
            with(&[("ca", &no_end)]),
            E::BadPem("no -----END CERTIFICATE----- line"),
        ),
        (
            with(&[("ca", &bad_body)]),
            E::BadPem("the body is not base64"),
        ),
        (
            with(&[("ca", &not_der)]),
            E::BadPem("the body is not a DER certificate"),
        ),
        (
            with(&[("ca", &junk_after)]),
            E::BadPem("expected -----BEGIN CERTIFICATE-----"),
        ),
        (
            uri(&[("server", "sip:p.example"), ("user", "10 01"), ("password", "x")]),
            E::BadField {
                field: "user",
                reason: "contains whitespace",
            },
        ),
        (
            uri(&[("server", "sip:p.example"), ("user", &long_user), ("password", "x")]),
            E::BadField {
                field: "user",
                reason: "longer than 128 bytes",
            },
        ),
        (
            with(&[("display", "Bad\u{7}Bell")]),
            E::BadField {
                field: "display",
                reason: "contains control characters",
            },
        ),
        (
            with(&[("auth_user", "a\tb")]),
            E::BadField {
                field: "auth_user",
                reason: "contains control characters",
            },
        ),
        // JSON
        ("{".into(), E::NotJson(String::new())),
        ("{} x".into(), E::NotJson(String::new())),
        (
            r#"{"server":"sip:p.example","user":"1","password":"x"}"#.into(),
            E::MissingVersion,
        ),
        (
            r#"{"version":"1"}"#.into(),
            E::WrongType {
                field: "version",
                expected: "a number",
            },
        ),
        (
            r#"{"version":2,"server":"sip:p.example"}"#.into(),
            E::UnsupportedVersion("2".into()),
        ),
        (
            r#"{"version":1.5}"#.into(),
            E::UnsupportedVersion("1.5".into()),
        ),
        (
            r#"{"version":1,"user":"1","password":"x"}"#.into(),
            E::MissingServer,
        ),
        (
            r#"{"version":1,"server":"sip:p.example","user":1001,"password":"x"}"#.into(),
            E::WrongType {
                field: "user",
                expected: "a string",
            },
        ),
        (
            r#"{"version":1,"server":"sip:p.example","user":"1","password":"x","expires":true}"#
                .into(),
            E::WrongType {
                field: "expires",
                expected: "a number",
            },
        ),
        (
            r#"{"version":1,"server":"sip:p.example","user":"1","password":"x","expires":30.5}"#
                .into(),
            E::BadExpires("30.5".into()),
        ),
    ];
    for (text, expected) in cases {
        let got = err(&text);
        match (&got, &expected) {
            (E::NotJson(m), E::NotJson(_)) => assert!(!m.is_empty()),
            _ => assert_eq!(got, expected, "{text}"),
        }
        assert!(got.to_string().contains("provision"), "{got}");
    }
    assert_eq!(
        parse("[1]"),
        Err(E::MalformedUri("neither a URI nor a JSON object"))
    );
    assert_eq!(parse_json("[1]"), Err(E::NotAnObject));
    assert_eq!(parse_qr(b"handset://provision?\xff"), Err(E::NotUtf8));
    let big = "a".repeat(MAX_INPUT_BYTES + 1);
    assert_eq!(
        parse(&big),
        Err(E::TooLarge {
            len: MAX_INPUT_BYTES + 1,
            max: MAX_INPUT_BYTES
        })
    );
    assert!(matches!(parse_qr(big.as_bytes()), Err(E::TooLarge { .. })));
}

#[test]
fn debug_and_errors_never_show_the_secret() {
    for text in [
        with(&[]),
        uri(&[
            ("server", "sip:p.example"),
            ("user", "1"),
            ("ha1", HA1_SHA256),
        ]),
        uri(&[("server", "sip:p.example"), ("user", "1"), ("ha1", HA1_MD5)]),
    ] {
        let a = parse(&text).unwrap();
        for dump in [
            format!("{a:?}"),
            format!("{a:#?}"),
            format!("{:?}", a.secret),
        ] {
            assert!(!dump.contains(PASSWORD), "{dump}");
            assert!(!dump.contains("Tr0ub4dor"), "{dump}");
            assert!(
                !dump.contains(HA1_SHA256) && !dump.contains(HA1_MD5),
                "{dump}"
            );
            assert!(!dump.contains(&HA1_SHA256[..16]), "{dump}");
            assert!(dump.contains("<redacted>"), "{dump}");
        }
    }
    // Errors about secrets or near them do not echo them.
    let bad_ha1 = format!("{PASSWORD}xx");
    for text in [
        format!("{}&ha1={HA1_MD5}", with(&[])),
        format!("{}%zz", with(&[])),
        uri(&[
            ("server", "sip:p.example"),
            ("user", "1"),
            ("ha1", &bad_ha1),
        ]),
        uri(&[
            ("server", "sip:1001:Tr0ub4dor@p.example"),
            ("user", "1"),
            ("password", "x"),
        ]),
        uri(&[
            ("server", "sip:p.example"),
            ("user", "1"),
            ("password", PASSWORD),
            ("password", PASSWORD),
        ]),
    ] {
        let e = err(&text);
        for dump in [e.to_string(), format!("{e:?}")] {
            assert!(
                !dump.contains("Tr0ub4dor") && !dump.contains(HA1_MD5),
                "{dump}"
            );
        }
    }
}

#[test]
fn base64_decoder() {
    for input in [
        &b""[..],
        b"f",
        b"fo",
        b"foo",
        b"foob",
        b"fooba",
        b"foobar",
        b"\x00\xff\xfe",
    ] {
        let enc = base64(input);
        if input.is_empty() {
            assert_eq!(base64_decode(&enc), None);
        } else {
            assert_eq!(base64_decode(&enc).as_deref(), Some(input), "{enc}");
            assert_eq!(
                base64_decode(enc.trim_end_matches('=')).as_deref(),
                Some(input)
            );
        }
    }
    assert_eq!(base64_decode("Zm9v\nYmFy").as_deref(), Some(&b"foobar"[..]));
    assert_eq!(base64_decode("Zm9===="), None);
    assert_eq!(base64_decode("Zm=9"), None);
}

#[test]
fn garbage_never_panics() {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let ca = base64(CA_PEM.as_bytes());
    let seeds = [
        with(&[("ca", &ca), ("push", "apns"), ("push_param", "T.x")]),
        format!(
            r#"{{"version":1,"server":"sip:p.example","user":"1","ha1":"{HA1_MD5}","expires":600}}"#
        ),
    ];
    let alphabet = b"%&=?#:/{}[]\",0123456789abcdefABCDEF+-_ \n\xc3\xa9\xff";
    let mut ok = 0;
    for _ in 0..20_000 {
        let mut bytes = seeds[(next() % 2) as usize].clone().into_bytes();
        for _ in 0..1 + next() % 6 {
            let i = (next() % (bytes.len() as u64 + 1)) as usize;
            let c = alphabet[(next() % alphabet.len() as u64) as usize];
            match next() % 3 {
                0 if i < bytes.len() => bytes[i] = c,
                1 => bytes.insert(i, c),
                _ => bytes.truncate(i),
            }
        }
        if parse_qr(&bytes).is_ok() {
            ok += 1;
        }
        let _ = base64_decode(&String::from_utf8_lossy(&bytes));
    }
    assert!(ok > 0);
}
