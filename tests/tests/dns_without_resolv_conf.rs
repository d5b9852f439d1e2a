//! DNS on phones: Android has no /etc/resolv.conf, and creating the phone used to fail there
//! because the system resolver configuration could not be read. The test runs itself again
//! in a mount namespace (`unshare --mount`, as root) where /etc is a copy without
//! resolv.conf, and there: the runtime starts with the system DNS, an account on an IP
//! address registers, an account on a host name fails its registration with a DNS error
//! (the phone goes on), and once the app gives the servers of a DNS server on loopback the
//! second account registers at once. Every packet stays on 127.0.0.1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use handset::dns::ResolverSource;
use handset::{
    AccountConfig, AccountId, Events, Handset, HandsetEvent, RegistrationState, RetryPolicy,
    RuntimeConfig, Transport,
};
use handset_pbx::{Pbx, PbxConfig};
use handset_tests::{TestDns, init_logs};

/// Set in the re-executed test process, inside the namespace.
const IN_NAMESPACE: &str = "HANDSET_TEST_IN_MOUNT_NS";
const LIMIT: Duration = Duration::from_secs(15);

/// Makes /etc a copy without resolv.conf, in this mount namespace only, then runs the test
/// binary ("$0") again with its arguments. $1: an empty folder to mount the copy on.
const SETUP: &str = r#"set -eu
copy=$1; shift
mount -t tmpfs -o size=64m,mode=0755 handset-etc "$copy"
cp -a /etc/. "$copy"/
rm -f "$copy/resolv.conf"
mount --bind "$copy" /etc
exec "$0" "$@"
"#;

#[test]
fn registers_without_resolv_conf_with_servers_given_by_the_app() {
    if std::env::var_os(IN_NAMESPACE).is_some() {
        return in_namespace();
    }
    let had_resolv_conf = Path::new("/etc/resolv.conf").symlink_metadata().is_ok();
    let copy = std::env::temp_dir().join(format!("handset-etc-{}", std::process::id()));
    std::fs::create_dir_all(&copy).unwrap();
    let exe = std::env::current_exe().unwrap();
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", SETUP])
        .arg(&exe)
        .arg(&copy)
        .args([
            "--exact",
            "registers_without_resolv_conf_with_servers_given_by_the_app",
            "--nocapture",
        ])
        .env(IN_NAMESPACE, "1")
        .output();
    let _ = std::fs::remove_dir(&copy);
    // No namespace, no test: this must not pass by skipping.
    let output = output.unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "the test in the mount namespace failed (unshare --mount needs root): {}\n{stdout}\n{stderr}",
        output.status
    );
    // The namespace kept its /etc to itself.
    assert_eq!(
        Path::new("/etc/resolv.conf").symlink_metadata().is_ok(),
        had_resolv_conf
    );
}

/// The test proper, in the namespace.
fn in_namespace() {
    assert!(
        Path::new("/etc/resolv.conf").symlink_metadata().is_err(),
        "/etc/resolv.conf must be absent in the namespace"
    );
    assert!(
        Path::new("/etc/passwd").exists(),
        "the rest of /etc is there"
    );
    init_logs();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(scenario());
}

async fn scenario() {
    let pbx = Pbx::start(
        PbxConfig::default()
            .with_user("2001", "ip-pw")
            .with_user("2002", "name-pw"),
    )
    .await
    .unwrap();
    let dns = TestDns::start(
        "_sip._udp.pbx.test.",
        &[(10, 0, pbx.addr().port(), "sip.pbx.test.")],
    )
    .await;

    // The system DNS cannot be read here: the runtime starts anyway.
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        dns: ResolverSource::System,
        ..RuntimeConfig::default()
    })
    .await
    .expect("the runtime starts without /etc/resolv.conf");

    // A server given as an IP address needs no DNS.
    let by_ip = handset
        .add_account(AccountConfig::new(pbx.server_uri(), "2001", "ip-pw"))
        .await
        .unwrap();
    let state = registration(&mut events, by_ip, |s| !is_registering(s)).await;
    assert!(
        matches!(state, RegistrationState::Registered { .. }),
        "{state:?}"
    );

    // A host name fails this account's registration with a DNS error. The retry is far
    // off, so registering later proves the new servers were used at once.
    let mut config = AccountConfig::new("sip:pbx.test", "2002", "name-pw");
    config.transport = Some(Transport::Udp);
    config.retry = RetryPolicy {
        base: Duration::from_secs(600),
        max: Duration::from_secs(600),
    };
    let by_name = handset.add_account(config).await.unwrap();
    let state = registration(&mut events, by_name, |s| !is_registering(s)).await;
    match &state {
        RegistrationState::Failed {
            detail: Some(detail),
            retry_in: Some(_),
            ..
        } => assert!(detail.contains("no DNS server known"), "{detail}"),
        other => panic!("a DNS failure was expected: {other:?}"),
    }

    // The app gives the servers: the account looks its server up again and registers.
    handset.set_dns_servers(vec![dns.addr]).unwrap();
    let state = registration(&mut events, by_name, |s| !is_registering(s)).await;
    assert!(
        matches!(state, RegistrationState::Registered { .. }),
        "{state:?}"
    );
    let bound = pbx.bindings("2002").await;
    assert_eq!(bound.len(), 1, "{bound:?}");

    // Back to the system's configuration (none here): still no error.
    handset.set_dns_servers(Vec::new()).unwrap();
    handset.shutdown().await;
    pbx.shutdown().await;
}

fn is_registering(state: &RegistrationState) -> bool {
    matches!(state, RegistrationState::Registering)
}

/// The next registration state of `account` matching `wanted` (others skipped).
async fn registration(
    events: &mut Events,
    account: AccountId,
    wanted: impl Fn(&RegistrationState) -> bool,
) -> RegistrationState {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        match tokio::time::timeout_at(deadline, events.recv()).await {
            Ok(Some(HandsetEvent::Registration { account: a, state }))
                if a == account && wanted(&state) =>
            {
                return state;
            }
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the runtime stopped"),
            Err(_) => panic!("no wanted registration state of {account} within {LIMIT:?}"),
        }
    }
}
