//! Selftest of the network test bed (`tests/netbed`), once per NAT variant: a REGISTER from
//! the phone namespace reaches Kamailio through the NAT and is bound with the NAT's public
//! address as "received"; the baresip peer is registered; the cone routers keep one public port
//! for two destinations while the symmetric ones use two; coturn answers a STUN binding
//! request with the public address; switching uplinks changes the public source address; an
//! idle UDP mapping (a conntrack "stream") is gone after 30 s. The nat64 bed: DNS64 answers the
//! PBX's name with its NAT64 address, a REGISTER over IPv6 reaches the IPv4-only Kamailio
//! through NAT64 and is bound with the router's public IPv4 address, and the phone has no IPv4
//! route. Needs root (namespaces).

use std::net::{Ipv4Addr, SocketAddr};
use std::thread::sleep;
use std::time::{Duration, Instant};

use handset_tests::netbed::{NatVariant, NetBed, Ns, Uplink};

/// The local port of the flow left idle until the router forgets it.
const IDLE_PORT: u16 = 41000;

#[test]
fn cone_nat_bed() {
    selftest(NatVariant::Cone);
}

#[test]
fn symmetric_nat_bed() {
    selftest(NatVariant::Symmetric);
}

fn selftest(variant: NatVariant) {
    let bed = NetBed::up(variant);
    let wifi = bed.public_address(Uplink::Wifi);
    let phone = bed.phone_address(Uplink::Wifi);

    // First the flow that must time out, so the wait overlaps the other checks. Two requests
    // 2.5 s apart make it a conntrack stream (ASSURED), whose default timeout is 120 s or more.
    let mapped = bed.stun_from_phone(phone, IDLE_PORT, 2, &[bed.stun]);
    let idle_since = Instant::now();
    assert_eq!(mapped[0].ip().to_string(), wifi.to_string(), "{mapped:?}");
    let entry = conntrack_entry(&bed, IDLE_PORT).expect("a conntrack entry for the STUN flow");
    assert!(entry.contains("[ASSURED]"), "not a stream yet: {entry}");
    let timeout: u32 = entry
        .split_whitespace()
        .nth(2)
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("no timeout in {entry}"));
    assert!(
        (20..=30).contains(&timeout),
        "the stream's timeout is {timeout} s, not 30: {entry}"
    );

    // SIPp registers from the phone's wifi address; Kamailio sees the router's.
    sipp_register(&bed, &phone.to_string(), &bed.sip.to_string(), "the NAT");
    let bindings = bed.location("alice");
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    let binding = &bindings[0];
    assert!(
        binding.address.contains(&format!("{phone}:5070")),
        "the Contact should be the private one: {binding:?}"
    );
    let received = binding.received.as_deref().unwrap_or_default();
    assert!(
        received.starts_with(&format!("sip:{wifi}:")),
        "received should be the wifi NAT's public address: {binding:?}"
    );
    assert!(!received.contains(&phone.to_string()), "{binding:?}");
    if variant == NatVariant::Cone {
        assert_eq!(received, format!("sip:{wifi}:5070"), "cone keeps the port");
    }

    // The baresip peer registered from inside the PBX namespace.
    let peer = bed.location("baresip");
    assert!(
        peer.iter()
            .any(|b| b.address.contains(&format!("@{}:26100", bed.pbx))),
        "baresip not bound: {peer:?}"
    );

    // One local port towards two destinations.
    let two = bed.stun_from_phone(Ipv4Addr::UNSPECIFIED, 40000, 1, &[bed.stun, bed.stun_alt]);
    assert!(
        two.iter().all(|m| m.ip().to_string() == wifi.to_string()),
        "{two:?}"
    );
    match variant {
        NatVariant::Cone => {
            assert_eq!(two[0].port(), two[1].port(), "cone: one mapping {two:?}");
            assert_eq!(two[0].port(), 40000, "cone keeps the source port {two:?}");
        }
        NatVariant::Symmetric => {
            assert_ne!(
                two[0].port(),
                two[1].port(),
                "symmetric: two mappings {two:?}"
            )
        }
        NatVariant::Nat64 => unreachable!("nat64_bed tests the nat64 bed"),
    }

    // coturn's own client agrees on the public address.
    let stunclient = bed.exec_in_phone(&[
        "timeout",
        "10",
        "turnutils_stunclient",
        &bed.pbx.to_string(),
    ]);
    let text = String::from_utf8_lossy(&stunclient.stdout).to_string()
        + &String::from_utf8_lossy(&stunclient.stderr);
    let reflexive: SocketAddr = text
        .lines()
        .find_map(|l| l.split("UDP reflexive addr: ").nth(1))
        .and_then(|a| a.trim().parse().ok())
        .unwrap_or_else(|| panic!("no reflexive address from coturn:\n{text}"));
    assert_eq!(reflexive.ip().to_string(), wifi.to_string(), "{text}");

    // Switching uplinks changes the public source of unbound sockets only.
    bed.switch(Uplink::Cellular);
    let any = Ipv4Addr::UNSPECIFIED;
    let cellular = bed.stun_from_phone(any, 0, 1, &[bed.stun]);
    assert_eq!(
        cellular[0].ip().to_string(),
        bed.public_address(Uplink::Cellular).to_string()
    );
    let bound = bed.stun_from_phone(bed.phone_address(Uplink::Wifi), 0, 1, &[bed.stun]);
    assert_eq!(bound[0].ip().to_string(), wifi.to_string(), "bound to wifi");
    bed.switch(Uplink::Wifi);
    let back = bed.stun_from_phone(any, 0, 1, &[bed.stun]);
    assert_eq!(
        back[0].ip().to_string(),
        bed.public_address(Uplink::Wifi).to_string()
    );

    // The idle mapping goes after 30 s (bounded wait), and not much earlier.
    let gone_after = loop {
        if conntrack_entry(&bed, IDLE_PORT).is_none() {
            break idle_since.elapsed();
        }
        assert!(
            idle_since.elapsed() < Duration::from_secs(35),
            "the idle mapping outlived 35 s"
        );
        sleep(Duration::from_millis(250));
    };
    assert!(
        gone_after > Duration::from_secs(25),
        "the mapping went after only {gone_after:?}"
    );
    bed.down();
}

#[test]
fn nat64_bed() {
    let bed = NetBed::up(NatVariant::Nat64);
    let nat64 = bed.nat64();

    // DNS64 on the router synthesises the PBX's AAAA from its A record.
    let dig = bed.exec_in_phone(&[
        "dig",
        "+short",
        "+time=2",
        "+tries=1",
        "-p",
        &nat64.dns_server.port().to_string(),
        &format!("@{}", nat64.dns_server.ip()),
        &nat64.pbx_name,
        "AAAA",
    ]);
    let answer = String::from_utf8_lossy(&dig.stdout).trim().to_string();
    assert!(
        dig.status.success() && answer == nat64.pbx.to_string(),
        "DNS64 answered {answer:?} for {}, not {}: {}",
        nat64.pbx_name,
        nat64.pbx,
        String::from_utf8_lossy(&dig.stderr)
    );
    assert_eq!(nat64.pbx.segments()[..6], [0x64, 0xff9b, 0, 0, 0, 0]);

    // SIPp registers over IPv6 to the NAT64 address; the IPv4-only Kamailio sees the router's
    // public IPv4 address (tayga and the cone masquerade both keep the port).
    sipp_register(
        &bed,
        &nat64.phone.to_string(),
        &nat64.sip.to_string(),
        "NAT64",
    );
    let bindings = bed.location("alice");
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    let binding = &bindings[0];
    assert!(
        binding.address.contains(&format!("[{}]:5070", nat64.phone)),
        "the Contact should be the phone's IPv6 one: {binding:?}"
    );
    assert_eq!(
        binding.received.as_deref(),
        Some(format!("sip:{}:5070", nat64.public).as_str()),
        "received should be the NAT64 router's public address: {binding:?}"
    );

    // No IPv4 on the phone: no address but loopback's, no route towards the PBX.
    let addresses = bed.exec_in_phone(&["ip", "-4", "-o", "addr", "show"]);
    let addresses = String::from_utf8_lossy(&addresses.stdout).to_string();
    assert!(
        addresses.lines().all(|l| l.contains(" lo ")),
        "the phone has IPv4 addresses: {addresses}"
    );
    let route = bed.exec_in_phone(&["ip", "-4", "route", "get", &bed.pbx.to_string()]);
    assert!(
        !route.status.success()
            && String::from_utf8_lossy(&route.stderr).contains("Network is unreachable"),
        "the phone has an IPv4 route to {}: {}{}",
        bed.pbx,
        String::from_utf8_lossy(&route.stdout),
        String::from_utf8_lossy(&route.stderr)
    );
    bed.down();
}

/// SIPp in the phone namespace: one REGISTER of alice from `local` (an IP, port 5070) to
/// `server` (`IP:PORT`, `[IPv6]:PORT`), digest-authenticated, Expires 300; panics naming
/// what it went `through` when it fails.
fn sipp_register(bed: &NetBed, local: &str, server: &str, through: &str) {
    let sipp = bed.exec_in_phone(&[
        "sipp",
        "-sf",
        &handset_tests::root()
            .join("tests/kamailio/sipp/register.xml")
            .to_string_lossy(),
        "-s",
        "alice",
        "-au",
        "alice",
        "-ap",
        "alice-secret",
        "-key",
        "expires",
        "300",
        "-i",
        local,
        "-p",
        "5070",
        "-m",
        "1",
        "-timeout",
        "10s",
        "-timeout_error",
        "-recv_timeout",
        "5000",
        "-nostdin",
        server,
    ]);
    assert!(
        sipp.status.success(),
        "SIPp REGISTER through {through} failed:\n{}{}",
        String::from_utf8_lossy(&sipp.stdout),
        String::from_utf8_lossy(&sipp.stderr)
    );
}

/// The wifi router's conntrack entry of the phone's UDP flow from `port`, if any.
fn conntrack_entry(bed: &NetBed, port: u16) -> Option<String> {
    let output = bed.exec_in(
        Ns::WifiRouter,
        &[
            "conntrack",
            "-L",
            "-p",
            "udp",
            "--orig-src",
            &bed.phone_address(Uplink::Wifi).to_string(),
            "--orig-port-src",
            &port.to_string(),
        ],
    );
    assert!(
        output.status.success(),
        "conntrack -L failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find(|l| l.starts_with("udp"))
        .map(str::to_string)
}
