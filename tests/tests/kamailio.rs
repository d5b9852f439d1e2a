//! Registration against the real Kamailio on loopback (tests/kamailio), through the public
//! runtime API: every transport, digest variants, refresh, 423, several accounts, DNS SRV
//! failover, pinned self-signed PBX certificates, and the location table checked after
//! register and unregister.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use handset::dns::ResolverSource;
use handset::{
    AccountConfig, CertFingerprint, Handset, RegistrationFailure, RegistrationState, RuntimeConfig,
    Secret, Transport,
};
use handset_tests::{
    TestDns, kamailio, location, md5_ha1, next_registration, openssl_fingerprint, wait_for,
};

const LIMIT: Duration = Duration::from_secs(15);

fn loopback_runtime() -> RuntimeConfig {
    RuntimeConfig {
        bind: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
        ..RuntimeConfig::default()
    }
}

fn account(user: &str, transport: Transport) -> AccountConfig {
    let k = kamailio();
    let server = if transport == Transport::Tls {
        k.tls_uri()
    } else {
        k.uri()
    };
    let mut config = AccountConfig::new(server, user, format!("{user}-secret"));
    config.transport = Some(transport);
    if transport == Transport::Tls {
        config.ca_file = Some(k.ca.clone());
    }
    config
}

fn registered(e: &RegistrationState) -> bool {
    matches!(e, RegistrationState::Registered { .. })
}

fn unregistered(e: &RegistrationState) -> bool {
    matches!(e, RegistrationState::Unregistered)
}

/// Registers `user`, checks Kamailio holds exactly our binding with the right transport,
/// unregisters and checks the binding is gone.
async fn register_and_unregister(user: &str, transport: Transport) {
    let (handset, mut events) = Handset::start(loopback_runtime()).await.unwrap();
    let id = handset.add_account(account(user, transport)).await.unwrap();
    wait_for(&mut events, LIMIT, registered).await;
    let bound = location(user);
    assert_eq!(bound.len(), 1, "{user}: {bound:?}");
    let contact = bound[0].to_ascii_lowercase();
    match transport {
        Transport::Udp => assert!(!contact.contains("transport=t"), "{user}: {bound:?}"),
        Transport::Tcp => assert!(contact.contains("transport=tcp"), "{user}: {bound:?}"),
        Transport::Tls => assert!(contact.contains("transport=tls"), "{user}: {bound:?}"),
    }
    handset.unregister(id).await.unwrap();
    wait_for(&mut events, LIMIT, unregistered).await;
    assert!(location(user).is_empty(), "binding of {user} still there");
    handset.shutdown().await;
}

#[tokio::test]
async fn registers_over_udp_and_unregisters() {
    register_and_unregister("alice", Transport::Udp).await;
}

#[tokio::test]
async fn registers_over_tcp_and_unregisters() {
    register_and_unregister("bob", Transport::Tcp).await;
}

#[tokio::test]
async fn registers_over_tls_with_private_ca_and_unregisters() {
    register_and_unregister("carol", Transport::Tls).await;
}

#[tokio::test]
async fn wrong_password_is_an_authentication_failure() {
    let (handset, mut events) = Handset::start(loopback_runtime()).await.unwrap();
    let mut config = account("dave", Transport::Udp);
    config.secret = Secret::Password("not-the-password".into());
    handset.add_account(config).await.unwrap();
    let failure = loop {
        match next_registration(&mut events, LIMIT).await {
            RegistrationState::Failed {
                reason, retry_in, ..
            } => break (reason, retry_in),
            RegistrationState::Registering => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(
        failure,
        (
            RegistrationFailure::AuthenticationFailed {
                realm: kamailio().domain.clone()
            },
            None
        )
    );
    assert!(location("dave").is_empty());
    handset.shutdown().await;
}

#[tokio::test]
async fn short_expires_is_refreshed_before_it_runs_out() {
    let (handset, mut events) = Handset::start(loopback_runtime()).await.unwrap();
    let mut config = account("erin", Transport::Udp);
    config.expires = 3;
    let id = handset.add_account(config).await.unwrap();
    // Three grants of 3 s in a row: the binding was refreshed twice, never lapsing.
    for _ in 0..3 {
        let event = wait_for(&mut events, LIMIT, registered).await;
        assert_eq!(event, RegistrationState::Registered { expires: 3 });
        assert_eq!(location("erin").len(), 1);
    }
    handset.unregister(id).await.unwrap();
    wait_for(&mut events, LIMIT, unregistered).await;
    assert!(location("erin").is_empty());
    handset.shutdown().await;
}

#[tokio::test]
async fn sha256_digest_challenge_is_answered() {
    // Kamailio's harness challenges user `sha` with algorithm=SHA-256 only and checks the
    // RFC 7616 response itself: a 200 proves the SHA-256 digest is right.
    register_and_unregister("sha", Transport::Udp).await;
}

#[tokio::test]
async fn interval_too_brief_is_retried_with_min_expires() {
    let (handset, mut events) = Handset::start(loopback_runtime()).await.unwrap();
    let mut config = account("minexp", Transport::Tcp);
    config.expires = 60;
    let id = handset.add_account(config).await.unwrap();
    let event = wait_for(&mut events, LIMIT, registered).await;
    assert_eq!(event, RegistrationState::Registered { expires: 120 });
    handset.unregister(id).await.unwrap();
    wait_for(&mut events, LIMIT, unregistered).await;
    assert!(location("minexp").is_empty());
    handset.shutdown().await;
}

#[tokio::test]
async fn stored_ha1_instead_of_password() {
    let (handset, mut events) = Handset::start(loopback_runtime()).await.unwrap();
    let mut config = account("frank", Transport::Udp);
    config.secret = Secret::Ha1 {
        md5: Some(md5_ha1("frank", &kamailio().domain, "frank-secret")),
        sha256: None,
    };
    let id = handset.add_account(config).await.unwrap();
    wait_for(&mut events, LIMIT, registered).await;
    assert_eq!(location("frank").len(), 1);
    handset.unregister(id).await.unwrap();
    wait_for(&mut events, LIMIT, unregistered).await;
    handset.shutdown().await;
}

#[tokio::test]
async fn several_accounts_at_once_on_different_transports() {
    let (handset, mut events) = Handset::start(loopback_runtime()).await.unwrap();
    let users = [
        ("multi1", Transport::Udp),
        ("multi2", Transport::Tcp),
        ("multi3", Transport::Tls),
    ];
    let mut ids = Vec::new();
    for (user, transport) in users {
        ids.push(handset.add_account(account(user, transport)).await.unwrap());
    }
    let mut registered_accounts = std::collections::BTreeSet::new();
    while registered_accounts.len() < users.len() {
        match tokio::time::timeout(LIMIT, events.recv()).await {
            Ok(Some(handset::HandsetEvent::Registration {
                account,
                state: RegistrationState::Registered { .. },
                ..
            })) => {
                registered_accounts.insert(account);
            }
            Ok(Some(handset::HandsetEvent::Registration {
                state: RegistrationState::Failed { reason, .. },
                ..
            })) => panic!("{reason}"),
            Ok(Some(_)) => {}
            other => panic!("accounts did not all register: {other:?}"),
        }
    }
    for (user, _) in users {
        assert_eq!(location(user).len(), 1, "{user}");
    }
    for id in ids {
        handset.unregister(id).await.unwrap();
    }
    let mut left = users.len();
    while left > 0 {
        if let RegistrationState::Unregistered = next_registration(&mut events, LIMIT).await {
            left -= 1;
        }
    }
    for (user, _) in users {
        assert!(location(user).is_empty(), "{user}");
    }
    handset.shutdown().await;
}

#[tokio::test]
async fn dns_srv_failover_to_the_second_target() {
    // The first SRV target (priority 10) is a port nobody listens on; the second (priority
    // 20) is Kamailio. Registration must end up at the second one.
    let k = kamailio();
    let dead = std::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let dead_port = dead.local_addr().unwrap().port();
    drop(dead);
    let dns = TestDns::start(
        "_sip._tcp.pbx.test.",
        &[
            (10, 0, dead_port, "sip1.pbx.test."),
            (20, 0, k.udp.port(), "sip2.pbx.test."),
        ],
    )
    .await;
    let config = RuntimeConfig {
        dns: ResolverSource::Nameservers(vec![dns.addr]),
        ..loopback_runtime()
    };
    let (handset, mut events) = Handset::start(config).await.unwrap();
    let mut account = AccountConfig::new("sip:pbx.test", "failover", "failover-secret");
    account.transport = Some(Transport::Tcp);
    account.domain = Some(k.domain.clone());
    let id = handset.add_account(account).await.unwrap();
    wait_for(&mut events, LIMIT, registered).await;
    let bound = location("failover");
    assert_eq!(bound.len(), 1, "{bound:?}");
    handset.unregister(id).await.unwrap();
    wait_for(&mut events, LIMIT, unregistered).await;
    handset.shutdown().await;
}

#[tokio::test]
async fn crlf_keepalives_keep_the_tcp_flow_and_binding() {
    // RFC 5626 pings every 500 ms: Kamailio must answer each with a pong, or the runtime
    // would drop the connection after the pong timeout and register again on a new one,
    // changing the bound Contact (a new local port).
    let (handset, mut events) = Handset::start(RuntimeConfig {
        keepalive: Duration::from_millis(500),
        ..loopback_runtime()
    })
    .await
    .unwrap();
    let id = handset
        .add_account(account("keep", Transport::Tcp))
        .await
        .unwrap();
    wait_for(&mut events, LIMIT, registered).await;
    let before = location("keep");
    assert_eq!(before.len(), 1);
    tokio::time::sleep(Duration::from_secs(12)).await;
    assert_eq!(location("keep"), before);
    assert!(events.try_recv().is_err(), "no re-registration expected");
    handset.unregister(id).await.unwrap();
    wait_for(&mut events, LIMIT, unregistered).await;
    handset.shutdown().await;
}

/// A runtime whose DNS (the returned server, kept alive by the caller) makes `pbx.test` the
/// TLS listener on `port`, whose certificates name only localhost and 127.0.0.1.
async fn pbx_test_resolving_to(port: u16) -> (TestDns, RuntimeConfig) {
    let dns = TestDns::start("_sips._tcp.pbx.test.", &[(10, 0, port, "pbx.test.")]).await;
    let runtime = RuntimeConfig {
        dns: ResolverSource::Nameservers(vec![dns.addr]),
        ..loopback_runtime()
    };
    (dns, runtime)
}

#[tokio::test]
async fn tls_server_name_must_match_the_certificate() {
    // pbx.test resolves to Kamailio, whose certificate names only localhost and 127.0.0.1:
    // even with its CA trusted, the handshake must fail on the name.
    let k = kamailio();
    let (_dns, runtime) = pbx_test_resolving_to(k.tls.port()).await;
    let mut config = AccountConfig::new("sips:pbx.test", "carol", "carol-secret");
    config.domain = Some(k.domain.clone());
    config.ca_file = Some(k.ca.clone());
    // Not `refused`: carol registers in `registers_over_tls_with_private_ca_and_unregisters`
    // at the same time, so her location is not this test's to check.
    let (handset, mut events) = Handset::start(runtime).await.unwrap();
    handset.add_account(config).await.unwrap();
    let (reason, detail) = loop {
        match next_registration(&mut events, LIMIT).await {
            RegistrationState::Failed { reason, detail, .. } => break (reason, detail),
            RegistrationState::Registering => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(reason, RegistrationFailure::Transport);
    let detail = detail.unwrap_or_default();
    assert!(
        detail.contains("not valid for name \"pbx.test\""),
        "{detail}"
    );
    handset.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Pinned certificates. PBXs ship certificates made with `openssl req -x509` and its default
// extensions: self-signed and marked CA. rustls/webpki refused them with `CaUsedAsEndEntity`
// even when that very certificate was the configured CA file, where Linphone and baresip
// accept it. Kamailio serves such a certificate on one port and an expired one on another.

/// An account at `server` over TLS, pinning nothing yet.
fn pinned_account(user: &str, server: SocketAddr) -> AccountConfig {
    let mut config = AccountConfig::new(format!("sip:{server}"), user, format!("{user}-secret"));
    config.transport = Some(Transport::Tls);
    config.domain = Some(kamailio().domain.clone());
    config
}

/// The fingerprint openssl computes for a PEM certificate, as the setting takes it.
fn pin_of(pem: &std::path::Path) -> CertFingerprint {
    openssl_fingerprint(pem).parse().unwrap()
}

/// Registers with `config`, checks the binding is there over TLS, unregisters.
async fn registers_pinned(config: AccountConfig) {
    let user = config.user.clone();
    let (handset, mut events) = Handset::start(loopback_runtime()).await.unwrap();
    let id = handset.add_account(config).await.unwrap();
    wait_for(&mut events, LIMIT, registered).await;
    let bound = location(&user);
    assert_eq!(bound.len(), 1, "{bound:?}");
    assert!(
        bound[0].to_ascii_lowercase().contains("transport=tls"),
        "{bound:?}"
    );
    handset.unregister(id).await.unwrap();
    wait_for(&mut events, LIMIT, unregistered).await;
    handset.shutdown().await;
}

/// Adds `config` and returns the detail of the registration failure that must follow.
async fn refused(config: AccountConfig, runtime: RuntimeConfig) -> String {
    let user = config.user.clone();
    let (handset, mut events) = Handset::start(runtime).await.unwrap();
    handset.add_account(config).await.unwrap();
    let (reason, detail) = loop {
        match next_registration(&mut events, LIMIT).await {
            RegistrationState::Failed { reason, detail, .. } => break (reason, detail),
            RegistrationState::Registering => continue,
            other => panic!("unexpected {other:?}"),
        }
    };
    handset.shutdown().await;
    assert_eq!(reason, RegistrationFailure::Transport);
    assert!(location(&user).is_empty(), "{user} is bound");
    let detail = detail.unwrap_or_default();
    assert!(detail.contains("TLS"), "{detail}");
    detail
}

#[tokio::test]
async fn self_signed_ca_marked_certificate_pinned_by_its_pem_file_registers() {
    let k = kamailio();
    let mut config = pinned_account("pin1", k.tls_self_signed);
    config.ca_file = Some(k.self_signed_cert.clone());
    registers_pinned(config).await;
}

#[tokio::test]
async fn self_signed_ca_marked_certificate_pinned_by_fingerprint_registers() {
    let k = kamailio();
    let mut config = pinned_account("pin2", k.tls_self_signed);
    config.pinned_sha256 = Some(pin_of(&k.self_signed_cert));
    registers_pinned(config).await;
}

#[tokio::test]
async fn self_signed_certificate_not_pinned_is_refused_naming_its_fingerprint() {
    let k = kamailio();
    let detail = refused(
        pinned_account("pin3", k.tls_self_signed),
        loopback_runtime(),
    )
    .await;
    assert!(detail.contains("not trusted"), "{detail}");
    assert!(detail.contains("not pinned"), "{detail}");
    // The user is told what to pin.
    let fingerprint = openssl_fingerprint(&k.self_signed_cert);
    assert!(detail.contains(&fingerprint), "{detail}");
}

#[tokio::test]
async fn wrong_fingerprint_is_refused() {
    // Pinning another certificate (the expired one's) trusts nothing else.
    let k = kamailio();
    let mut config = pinned_account("pin4", k.tls_self_signed);
    config.pinned_sha256 = Some(pin_of(&k.expired_cert));
    let detail = refused(config, loopback_runtime()).await;
    assert!(detail.contains("not the pinned certificate"), "{detail}");
    assert!(
        detail.contains(&openssl_fingerprint(&k.self_signed_cert)),
        "{detail}"
    );
}

#[tokio::test]
async fn pinned_certificate_for_another_host_name_is_refused() {
    // pbx.test resolves to the self-signed listener, whose pinned certificate names only
    // localhost and 127.0.0.1: pinning does not waive the name check.
    let k = kamailio();
    let (_dns, runtime) = pbx_test_resolving_to(k.tls_self_signed.port()).await;
    let mut config = AccountConfig::new("sips:pbx.test", "pin5", "pin5-secret");
    config.domain = Some(k.domain.clone());
    config.ca_file = Some(k.self_signed_cert.clone());
    let detail = refused(config, runtime).await;
    assert!(
        detail.contains("not valid for name \"pbx.test\""),
        "{detail}"
    );
}

#[tokio::test]
async fn expired_pinned_certificate_is_refused() {
    // Pinned both ways, the same kind of certificate registers while valid and is refused
    // once expired: pinning does not waive the validity period.
    let k = kamailio();
    let mut valid = pinned_account("pin6", k.tls_self_signed);
    valid.pinned_sha256 = Some(pin_of(&k.self_signed_cert));
    registers_pinned(valid).await;
    let mut by_file = pinned_account("pin6", k.tls_expired);
    by_file.ca_file = Some(k.expired_cert.clone());
    let detail = refused(by_file, loopback_runtime()).await;
    assert!(detail.contains("certificate expired"), "{detail}");
    let mut by_fingerprint = pinned_account("pin6", k.tls_expired);
    by_fingerprint.pinned_sha256 = Some(pin_of(&k.expired_cert));
    let detail = refused(by_fingerprint, loopback_runtime()).await;
    assert!(detail.contains("certificate expired"), "{detail}");
}
