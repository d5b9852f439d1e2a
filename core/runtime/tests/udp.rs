//! The runtime's UDP socket against a destination the network refuses outright: a send that
//! fails for good (an address family the socket cannot reach, no route) makes the flow
//! unusable at once, so the registration fails as a transport error naming the cause instead
//! of retransmitting into nothing until Timer F (32 s) and reporting a timeout.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use handset::{
    AccountConfig, Handset, HandsetEvent, RegistrationFailure, RegistrationState, RuntimeConfig,
    Transport,
};

#[tokio::test]
async fn a_send_the_network_refuses_fails_the_registration_as_a_transport_error() {
    // An IPv4 socket cannot send to an IPv6 address: the kernel refuses every datagram.
    let (handset, mut events) = Handset::start(RuntimeConfig {
        bind: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        ..RuntimeConfig::default()
    })
    .await
    .unwrap();
    let mut config = AccountConfig::new("sip:[::1]:5099", "alice", "pw");
    config.transport = Some(Transport::Udp);
    handset.add_account(config).await.unwrap();
    // Longer than Timer F: without the fix the registration fails too, but as a timeout.
    let failed = tokio::time::timeout(Duration::from_secs(40), async {
        loop {
            match events.recv().await {
                Some(HandsetEvent::Registration {
                    state: state @ RegistrationState::Failed { .. },
                    ..
                }) => return state,
                Some(_) => {}
                None => panic!("the runtime stopped"),
            }
        }
    })
    .await
    .expect("the registration fails");
    let RegistrationState::Failed { reason, detail, .. } = failed else {
        unreachable!()
    };
    assert_eq!(reason, RegistrationFailure::Transport);
    let detail = detail.unwrap_or_default();
    assert!(detail.contains("cannot send"), "{detail}");
}
