//! The network test bed of `tests/netbed`: a phone namespace with a wifi and a cellular uplink,
//! each behind its own NAT router namespace (or, in the nat64 bed, one IPv6-only uplink behind
//! a NAT64/DNS64 router), and a PBX namespace running Kamailio, a baresip peer and coturn.
//! [`NetBed::up`] builds one with `up.sh` in its own run directory; dropping it runs `down.sh`,
//! so a failing test still tears it down.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::root;

pub mod cli;

/// How the bed's NAT routers map the phone's UDP flows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatVariant {
    /// Port-restricted cone: one local port keeps one public port for every destination, and
    /// only the exact remote address and port may answer.
    Cone,
    /// Symmetric: a fresh random public port for every destination.
    Symmetric,
    /// IPv6 only: the phone has one uplink and no IPv4 at all; its router translates
    /// 64:ff9b::/96 to IPv4 (NAT64, then a cone NAT) and serves DNS64 ([`NetBed::nat64`]).
    /// No wifi or cellular router: the IPv4 uplink methods panic.
    Nat64,
}

impl NatVariant {
    fn arg(self) -> &'static str {
        match self {
            NatVariant::Cone => "cone",
            NatVariant::Symmetric => "symmetric",
            NatVariant::Nat64 => "nat64",
        }
    }
}

/// One of the phone's two uplinks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uplink {
    /// Through the wifi router.
    Wifi,
    /// Through the cellular router.
    Cellular,
}

/// The bed's namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ns {
    /// The phone, with both uplinks.
    Phone,
    /// The NAT router of the wifi uplink.
    WifiRouter,
    /// The NAT router of the cellular uplink.
    CellularRouter,
    /// The nat64 bed's router: tayga (NAT64), unbound (DNS64) and the IPv4 NAT behind them.
    Nat64Router,
    /// Kamailio, baresip and coturn on the "public" segment.
    Pbx,
}

impl Ns {
    fn suffix(self) -> &'static str {
        match self {
            Ns::Phone => "phone",
            Ns::WifiRouter => "wifi",
            Ns::CellularRouter => "cell",
            Ns::Nat64Router => "nat64",
            Ns::Pbx => "pbx",
        }
    }
}

/// One binding of Kamailio's location table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI the client registered (its private address behind a NAT).
    pub address: String,
    /// Where the REGISTER came from (`sip:IP:PORT`, the NAT's public mapping), if recorded.
    pub received: Option<String>,
}

/// The IPv4 uplinks of the cone and symmetric beds.
#[derive(Debug, Clone, Copy)]
struct Ipv4Uplinks {
    phone_wifi: Ipv4Addr,
    phone_cellular: Ipv4Addr,
    wifi_public: Ipv4Addr,
    cellular_public: Ipv4Addr,
}

/// The nat64 bed's IPv6-only uplink, as the phone sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nat64 {
    /// The phone's only address (it has no IPv4 one).
    pub phone: Ipv6Addr,
    /// The router's address on the phone's link: its default gateway.
    pub gateway: Ipv6Addr,
    /// The router's public IPv4 address: every translated flow leaves from it.
    pub public: Ipv4Addr,
    /// The NAT64 prefix, `64:ff9b::/96`.
    pub prefix: String,
    /// The phone's DNS server (DNS64 on the router, `[gateway]:53`).
    pub dns_server: SocketAddr,
    /// The PBX's name, which DNS64 answers with [`Nat64::pbx`] (A 203.0.113.1 underneath).
    pub pbx_name: String,
    /// The PBX's address as the phone reaches it, `64:ff9b::cb00:7101`.
    pub pbx: Ipv6Addr,
    /// Kamailio (UDP and TCP) as the phone reaches it, `[64:ff9b::cb00:7101]:5060`.
    pub sip: SocketAddr,
}

/// A running test bed; torn down when dropped.
#[derive(Debug)]
pub struct NetBed {
    /// Where up.sh keeps its configs, logs, pid files and `env`.
    pub run_dir: PathBuf,
    /// The routers' NAT behaviour.
    pub variant: NatVariant,
    /// The namespace name prefix of this bed (`hs<pid>`).
    pub prefix: String,
    /// The PBX's main address (Kamailio, baresip, coturn).
    pub pbx: Ipv4Addr,
    /// The PBX's second address (coturn only): a second destination for NAT mapping tests.
    pub pbx_alt: Ipv4Addr,
    /// Kamailio, UDP and TCP.
    pub sip: SocketAddr,
    /// The SIP domain (realm) of Kamailio's users: `<name>` with password `<name>-secret`.
    pub domain: String,
    /// coturn STUN/TURN (UDP and TCP) on the main address.
    pub stun: SocketAddr,
    /// coturn STUN/TURN (UDP and TCP) on the second address.
    pub stun_alt: SocketAddr,
    /// coturn TURN over TLS, certificate [`NetBed::turn_cert`].
    pub turn_tls: SocketAddr,
    /// coturn's self-signed certificate (PEM).
    pub turn_cert: PathBuf,
    /// TURN user, password and realm (long-term credentials).
    pub turn_credentials: (String, String, String),
    /// The baresip peer's AOR (registered, auto-answering).
    pub baresip_aor: String,
    uplinks: Option<Ipv4Uplinks>,
    nat64: Option<Nat64>,
    kamailio_ctl: String,
}

impl NetBed {
    /// Builds a bed with `variant` NAT routers, default route on wifi (the nat64 bed has its
    /// one uplink), in `$HANDSET_NETBED_DIR/handset-netbed-PID-N` (default `/tmp`). Panics with
    /// up.sh's output when it cannot (no namespaces, a missing tool): tests never skip the bed.
    pub fn up(variant: NatVariant) -> NetBed {
        static COUNT: AtomicU32 = AtomicU32::new(0);
        // scripts/test.sh names a directory of its own, so its exit trap can tear down the beds
        // of a test process that was killed before its drops ran.
        let base =
            std::env::var_os("HANDSET_NETBED_DIR").map_or_else(|| "/tmp".into(), PathBuf::from);
        let run_dir = base.join(format!(
            "handset-netbed-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let script = root().join("tests/netbed/up.sh");
        let output = Command::new("bash")
            .arg(&script)
            .arg(&run_dir)
            .arg(variant.arg())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        // up.sh tears down after its own failure; this covers a killed up.sh too.
        if !output.status.success() {
            down(&run_dir);
            panic!(
                "the network test bed did not come up (needs root, ip netns, nftables):\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let env = String::from_utf8_lossy(&output.stdout).to_string();
        let get = |key: &str| -> String {
            env.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("{key} missing from up.sh's env"))
                .to_string()
        };
        let ip = |key: &str| -> Ipv4Addr { get(key).parse().expect(key) };
        let ip6 = |key: &str| -> Ipv6Addr { get(key).parse().expect(key) };
        let sock = |key: &str| -> SocketAddr { get(key).parse().expect(key) };
        let (uplinks, nat64) = if variant == NatVariant::Nat64 {
            let nat64 = Nat64 {
                phone: ip6("NETBED_PHONE6"),
                gateway: ip6("NETBED_NAT64_GW"),
                public: ip("NETBED_NAT64_PUBLIC"),
                prefix: get("NETBED_NAT64_PREFIX"),
                dns_server: sock("NETBED_DNS"),
                pbx_name: get("NETBED_PBX_NAME"),
                pbx: ip6("NETBED_PBX_NAT64"),
                sip: sock("NETBED_SIP6"),
            };
            (None, Some(nat64))
        } else {
            let uplinks = Ipv4Uplinks {
                phone_wifi: ip("NETBED_PHONE_WIFI"),
                phone_cellular: ip("NETBED_PHONE_CELL"),
                wifi_public: ip("NETBED_WIFI_PUBLIC"),
                cellular_public: ip("NETBED_CELL_PUBLIC"),
            };
            (Some(uplinks), None)
        };
        NetBed {
            variant,
            prefix: get("NETBED_PREFIX"),
            pbx: ip("NETBED_PBX"),
            pbx_alt: ip("NETBED_PBX_ALT"),
            sip: sock("NETBED_SIP"),
            domain: get("NETBED_DOMAIN"),
            stun: sock("NETBED_STUN"),
            stun_alt: sock("NETBED_STUN_ALT"),
            turn_tls: sock("NETBED_TURN_TLS"),
            turn_cert: PathBuf::from(get("NETBED_TURN_CERT")),
            turn_credentials: (
                get("NETBED_TURN_USER"),
                get("NETBED_TURN_PASSWORD"),
                get("NETBED_TURN_REALM"),
            ),
            baresip_aor: get("NETBED_BARESIP_AOR"),
            kamailio_ctl: get("NETBED_KAMAILIO_CTL"),
            uplinks,
            nat64,
            run_dir,
        }
    }

    /// The name of namespace `ns` (for `ip netns exec`).
    pub fn namespace(&self, ns: Ns) -> String {
        format!("{}-{}", self.prefix, ns.suffix())
    }

    /// A command that runs `program` inside namespace `ns`, in the bed's run directory (tools
    /// like SIPp drop files into their working directory).
    pub fn command_in(&self, ns: Ns, program: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.namespace(ns), program])
            .current_dir(&self.run_dir);
        command
    }

    /// Runs `args` (program first) in namespace `ns` and returns its output; panics only if it
    /// cannot be started.
    pub fn exec_in(&self, ns: Ns, args: &[&str]) -> Output {
        let (program, rest) = args.split_first().expect("a program to run");
        self.command_in(ns, program)
            .args(rest)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {}: {e}", self.namespace(ns)))
    }

    /// [`NetBed::exec_in`] the phone namespace.
    pub fn exec_in_phone(&self, args: &[&str]) -> Output {
        self.exec_in(Ns::Phone, args)
    }

    /// Moves the phone's default route to `uplink` (`switch.sh`). Sockets bound to one
    /// uplink's own address keep using that uplink.
    pub fn switch(&self, uplink: Uplink) {
        let name = match uplink {
            Uplink::Wifi => "wifi",
            Uplink::Cellular => "cellular",
        };
        let output = Command::new("bash")
            .arg(root().join("tests/netbed/switch.sh"))
            .arg(&self.run_dir)
            .arg(name)
            .output()
            .expect("switch.sh runs");
        assert!(
            output.status.success(),
            "switch.sh {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Takes the phone's `uplink` link down, as walking out of a Wi-Fi does: unlike
    /// [`NetBed::switch`], sockets bound to its address can no longer send at all.
    pub fn cut(&self, uplink: Uplink) {
        let link = match uplink {
            Uplink::Wifi => "wifi",
            Uplink::Cellular => "cell",
        };
        let output = self.exec_in(Ns::Phone, &["ip", "link", "set", link, "down"]);
        assert!(
            output.status.success(),
            "cannot take {link} down: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The phone's private address on `uplink`. Panics in the nat64 bed (no IPv4 uplinks).
    pub fn phone_address(&self, uplink: Uplink) -> Ipv4Addr {
        let uplinks = self.ipv4_uplinks();
        match uplink {
            Uplink::Wifi => uplinks.phone_wifi,
            Uplink::Cellular => uplinks.phone_cellular,
        }
    }

    /// The `handset` CLI arguments for relay-only ICE through the TURN server at `url` with the
    /// bed's TURN credential: `--turn URL --turn-user U --turn-password P --ice-policy relay`.
    pub fn relay_only_args(&self, url: &str) -> Vec<String> {
        let (user, password, _) = &self.turn_credentials;
        [
            "--turn",
            url,
            "--turn-user",
            user,
            "--turn-password",
            password,
            "--ice-policy",
            "relay",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    /// The public address of `uplink`'s NAT router. Panics in the nat64 bed (see
    /// [`Nat64::public`] there).
    pub fn public_address(&self, uplink: Uplink) -> Ipv4Addr {
        let uplinks = self.ipv4_uplinks();
        match uplink {
            Uplink::Wifi => uplinks.wifi_public,
            Uplink::Cellular => uplinks.cellular_public,
        }
    }

    fn ipv4_uplinks(&self) -> &Ipv4Uplinks {
        self.uplinks
            .as_ref()
            .unwrap_or_else(|| panic!("the {:?} bed has no IPv4 uplinks", self.variant))
    }

    /// The IPv6-only uplink of the nat64 bed (its DNS server, the PBX's name and NAT64
    /// address). Panics in the other beds.
    pub fn nat64(&self) -> &Nat64 {
        self.nat64
            .as_ref()
            .unwrap_or_else(|| panic!("the {:?} bed has no NAT64", self.variant))
    }

    /// Kamailio's bindings for `user` (empty if none).
    pub fn location(&self, user: &str) -> Vec<Binding> {
        let aor = format!("{user}@{}", self.domain);
        let output = Command::new("kamcmd")
            .args(["-s", &self.kamailio_ctl, "ul.lookup", "location", &aor])
            .output()
            .expect("kamcmd runs");
        assert!(
            output.status.success(),
            "kamcmd cannot reach the bed's Kamailio: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let mut bindings: Vec<Binding> = Vec::new();
        for line in String::from_utf8_lossy(&output.stdout).lines() {
            let line = line.trim();
            if let Some(address) = line.strip_prefix("Address: ") {
                bindings.push(Binding {
                    address: address.to_string(),
                    received: None,
                });
            } else if let (Some(received), Some(last)) =
                (line.strip_prefix("Received: "), bindings.last_mut())
            {
                // kamcmd prints "[not set]" for a binding registered without NAT handling.
                if received.starts_with("sip:") {
                    last.received = Some(received.to_string());
                }
            }
        }
        bindings
    }

    /// STUN Binding requests from one phone socket (`tests/netbed/stun.py`) to each server:
    /// the public address each one saw. `bind` is the local address (`0.0.0.0`: whatever the
    /// default route picks) and `port` the local port (0: any); `rounds` requests each, 2.5 s
    /// apart, keep the mapping busy. Panics if a server does not answer.
    pub fn stun_from_phone(
        &self,
        bind: Ipv4Addr,
        port: u16,
        rounds: u32,
        servers: &[SocketAddr],
    ) -> Vec<SocketAddr> {
        let script = root().join("tests/netbed/stun.py");
        let mut command = self.command_in(Ns::Phone, "python3");
        command.arg(script).args([
            "--bind",
            &bind.to_string(),
            "--port",
            &port.to_string(),
            "--rounds",
            &rounds.to_string(),
            "--interval",
            "2.5",
        ]);
        command.args(servers.iter().map(SocketAddr::to_string));
        let output = command.output().expect("stun.py runs");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "stun.py failed: {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        servers
            .iter()
            .map(|server| {
                stdout
                    .lines()
                    .find_map(|l| l.strip_prefix(&format!("{server} ")))
                    .unwrap_or_else(|| panic!("no mapping from {server} in {stdout}"))
                    .parse()
                    .expect("stun.py prints IP:PORT")
            })
            .collect()
    }

    /// Tears the bed down now (also done on drop); the run directory goes too unless the
    /// thread is panicking.
    pub fn down(self) {}
}

impl Drop for NetBed {
    fn drop(&mut self) {
        down(&self.run_dir);
        // Logs and configs are kept for a failing test only.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}

fn down(run_dir: &std::path::Path) {
    let output = Command::new("bash")
        .arg(root().join("tests/netbed/down.sh"))
        .arg(run_dir)
        .output();
    match output {
        Ok(output) if output.status.success() => {}
        // Never panic in drop (it may run during a panic): say it loudly instead.
        other => eprintln!("netbed down.sh {} failed: {other:?}", run_dir.display()),
    }
}
