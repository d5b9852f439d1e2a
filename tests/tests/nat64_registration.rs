//! An IPv6-only phone registers to an IPv4-only PBX through NAT64 and DNS64 (issue 10, point 6,
//! registration part), in the nat64 variant of the network test bed (`tests/netbed`). Needs
//! root (namespaces).
//!
//! The phone namespace has no IPv4 address or route. The `handset` CLI registers with the bed's
//! Kamailio, which only listens on IPv4: over UDP to its NAT64 address (a literal), over UDP
//! and over TCP by its name through the bed's DNS64 server. By name, DNS answers both A and the
//! synthesised AAAA; the A address cannot be reached from an IPv6-only network, which the
//! kernel says at once, so the account moves on to the AAAA address without waiting out
//! Timer F. Each registration must end bound at Kamailio with the NAT64 router's public IPv4
//! address as received.

use std::time::Duration;

use handset_tests::netbed::cli::Cli;
use handset_tests::netbed::{NatVariant, NetBed, Ns};

#[test]
fn an_ipv6_only_phone_registers_through_nat64_by_address_and_by_name() {
    let bed = NetBed::up(NatVariant::Nat64);
    let nat64 = bed.nat64().clone();
    let literal = format!("sip:{}", nat64.sip);
    let by_name = format!("sip:{}", nat64.pbx_name);
    let dns = nat64.dns_server.to_string();
    for (user, server, transport) in [
        ("alice", literal.as_str(), "udp"),
        ("bob", by_name.as_str(), "udp"),
        ("carol", by_name.as_str(), "tcp"),
    ] {
        let mut cli = Cli::start(
            &bed,
            Ns::Phone,
            &["register"],
            server,
            user,
            transport,
            &["--dns-server", &dns, "--hold", "3"],
        );

        // Well below Timer F: a wait on the unreachable IPv4 address would take 32 s.
        cli.wait_for("registered", Duration::from_secs(10));
        let bindings = bed.location(user);
        assert_eq!(bindings.len(), 1, "{user} over {transport}: {bindings:?}");
        let received = bindings[0].received.clone().unwrap_or_default();
        assert!(
            received.starts_with(&format!("sip:{}:", nat64.public)),
            "{user} over {transport} via {server}: not received from the NAT64 router's \
             public address: {bindings:?}"
        );
        cli.wait_for("unregistered", Duration::from_secs(10));
        cli.wait_exit(Duration::from_secs(10));
    }
    bed.down();
}
