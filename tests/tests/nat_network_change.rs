//! Moving the phone from the wifi to the cellular uplink (issue 10, point 5, registration part):
//! the registration follows the phone and calls still reach it. Once per NAT variant of the
//! network test bed (`tests/netbed`); needs root (namespaces).
//!
//! Two `handset answer` CLIs register from the phone namespace through the wifi NAT, "alice"
//! over UDP and "bob" over TCP. Then the bed moves the phone's default route to the cellular
//! uplink, as a phone leaving Wi-Fi does. Nobody tells the CLIs: the runtime's route watcher
//! notices that the route to the PBX now leaves from the cellular address, and each account
//! registers again from there. Kamailio must then hold exactly one binding per user, received
//! from the cellular NAT's public address, and a call from SIPp through Kamailio must reach
//! each of them and be answered.

use std::thread::sleep;
use std::time::{Duration, Instant};

use handset_tests::netbed::cli::Cli;
use handset_tests::netbed::{NatVariant, NetBed, Uplink};

/// How long the registration may take to follow the phone: the route watcher looks every 2 s,
/// then a lookup and two or three REGISTERs.
const FOLLOWS_WITHIN: Duration = Duration::from_secs(10);
/// Most REGISTERs the move may take: the one from the new address, its challenge, and the
/// one adopting the new NAT mapping (plus one spare).
const MOVE_MOST: usize = 4;

#[test]
fn cone_nat_registration_follows_the_phone_to_cellular() {
    follows(NatVariant::Cone);
}

#[test]
fn symmetric_nat_registration_follows_the_phone_to_cellular() {
    follows(NatVariant::Symmetric);
}

fn follows(variant: NatVariant) {
    let bed = NetBed::up(variant);
    let mut users = [
        ("alice", Cli::answer(&bed, "alice", "udp", &[])),
        ("bob", Cli::answer(&bed, "bob", "tcp", &[])),
    ];
    let wifi = format!("sip:{}:", bed.public_address(Uplink::Wifi));
    let cellular = format!("sip:{}:", bed.public_address(Uplink::Cellular));
    let mut before = Vec::new();
    for (user, cli) in &mut users {
        cli.wait_for("registered", Duration::from_secs(20));
        // The UDP Contact adopts the NAT's mapping after the first 200 OK: wait for it.
        wait_for_binding(&bed, user, &wifi, Duration::from_secs(5));
        before.push(bed.registers(user));
    }

    bed.switch(Uplink::Cellular);
    let moved = Instant::now();
    for (n, (user, _)) in users.iter().enumerate() {
        let took = wait_for_binding(&bed, user, &cellular, FOLLOWS_WITHIN);
        let more = bed.registers(user) - before[n];
        eprintln!("{variant:?}: {user}'s binding moved in {took:?} with {more} REGISTERs");
        assert!(
            (1..=MOVE_MOST).contains(&more),
            "{variant:?}: {user} moved with {more} REGISTERs:\n{}",
            bed.register_lines(user)
        );
    }
    // Settled: nothing more once the bindings moved.
    sleep(Duration::from_secs(3));
    for (user, _) in &users {
        let bindings = bed.location(user);
        assert_eq!(bindings.len(), 1, "{variant:?}: {user}: {bindings:?}");
    }

    for (user, cli) in &mut users {
        let call = bed.call_from_pbx(user);
        assert!(
            call.success,
            "{variant:?}: {:?} after the move, a call to {user} did not connect:\n{}",
            moved.elapsed(),
            call.log
        );
        cli.wait_for("incoming_call", Duration::from_secs(5));
        cli.wait_for("call_ended", Duration::from_secs(20));
        cli.wait_exit(Duration::from_secs(15));
    }
    bed.down();
}

/// Waits until `user` has exactly one binding, received from an address starting with
/// `received` (`sip:IP:`); returns how long it took. Panics after `within`.
fn wait_for_binding(bed: &NetBed, user: &str, received: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let bindings = bed.location(user);
        if bindings.len() == 1
            && bindings[0]
                .received
                .as_deref()
                .is_some_and(|r| r.starts_with(received))
        {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{user}: no single binding received from {received} in {within:?}: {bindings:?}\n{}",
            bed.register_lines(user)
        );
        sleep(Duration::from_millis(200));
    }
}
