//! Selftest of the network test bed (`tests/netbed`), once per NAT variant: a REGISTER from
//! the phone namespace reaches Kamailio through the NAT and is bound with the NAT's public
//! address as "received"; the baresip peer is registered; the cone routers keep one public port
//! for two destinations while the symmetric ones use two; coturn answers a STUN binding
//! request with the public address; switching uplinks changes the public source address; an
//! idle UDP mapping (a conntrack "stream") is gone after 30 s. Needs root (namespaces).

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
    let wifi = bed.wifi_public;

    // First the flow that must time out, so the wait overlaps the other checks. Two requests
    // 2.5 s apart make it a conntrack stream (ASSURED), whose default timeout is 120 s or more.
    let mapped = bed.stun_from_phone(bed.phone_wifi, IDLE_PORT, 2, &[bed.stun]);
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
        &bed.phone_wifi.to_string(),
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
        &bed.sip.to_string(),
    ]);
    assert!(
        sipp.status.success(),
        "SIPp REGISTER through the NAT failed:\n{}{}",
        String::from_utf8_lossy(&sipp.stdout),
        String::from_utf8_lossy(&sipp.stderr)
    );
    let bindings = bed.location("alice");
    assert_eq!(bindings.len(), 1, "{bindings:?}");
    let binding = &bindings[0];
    assert!(
        binding
            .address
            .contains(&format!("{}:5070", bed.phone_wifi)),
        "the Contact should be the private one: {binding:?}"
    );
    let received = binding.received.as_deref().unwrap_or_default();
    assert!(
        received.starts_with(&format!("sip:{wifi}:")),
        "received should be the wifi NAT's public address: {binding:?}"
    );
    assert!(
        !received.contains(&bed.phone_wifi.to_string()),
        "{binding:?}"
    );
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
        bed.cellular_public.to_string()
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
            &bed.phone_wifi.to_string(),
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
