//! SIP server location (RFC 3263) on top of `hickory-resolver`.
//!
//! Given the host part of a SIP/SIPS URI plus its optional port and
//! `transport` parameter, [`SipResolver::resolve`] produces an ordered list of
//! [`Target`]s to contact:
//!
//! * a numeric IP address is used as is (no DNS), with the default port of the
//!   transport (5060, or 5061 for TLS);
//! * an explicit port skips NAPTR/SRV: only A/AAAA records are looked up;
//! * an explicit transport skips NAPTR: the SRV records of that transport are
//!   looked up (`_sip._udp`, `_sip._tcp`, `_sips._tcp`), falling back to
//!   A/AAAA with the default port;
//! * otherwise NAPTR records (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`) are looked up
//!   and processed in order/preference, each pointing at an SRV name; without
//!   usable NAPTR records the SRV names of the supported transports are
//!   queried; without SRV records, A/AAAA with the default port are used.
//!
//! SRV records are ordered by priority, then by the weighted random selection
//! of RFC 2782 (the random generator is a parameter of
//! [`SipResolver::resolve_with_rng`] so that tests are deterministic). An SRV
//! target of `.` means the service is decidedly not available.
//!
//! Which target to try next when one fails (RFC 3263 §4.3) is the phone machine's decision
//! (`handset-phone`); this module only finds the list.
#![forbid(unsafe_code)]

use std::collections::{HashMap, HashSet};
use std::error::Error as StdError;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, NameServerConfigGroup, ResolveHosts, ResolverConfig,
    ResolverOpts,
};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::task::JoinSet;

pub use handset_sip::transport::{ServerTarget, Target, Transport};

/// Boxed error type carried by [`DnsError::Resolver`].
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Per-query timeout used with [`ResolverSource::Nameservers`].
const NAMESERVER_TIMEOUT: Duration = Duration::from_secs(2);
/// Retries per query used with [`ResolverSource::Nameservers`] (hickory's
/// `attempts` counts retries: 1 means two sends in total).
const NAMESERVER_ATTEMPTS: usize = 1;

/// SRV service/protocol labels for a transport (RFC 3263 section 4.1).
fn srv_prefix(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    }
}

/// Maps a NAPTR service field to a transport.
fn transport_of_naptr_service(service: &[u8]) -> Option<Transport> {
    if service.eq_ignore_ascii_case(b"SIP+D2U") {
        Some(Transport::Udp)
    } else if service.eq_ignore_ascii_case(b"SIP+D2T") {
        Some(Transport::Tcp)
    } else if service.eq_ignore_ascii_case(b"SIPS+D2T") {
        Some(Transport::Tls)
    } else {
        None
    }
}

/// Where the resolver gets its DNS configuration from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolverSource {
    /// The operating system's configuration (`/etc/resolv.conf` on Unix, the
    /// registry on Windows), including the hosts file. Where there is none
    /// (Android has no `/etc/resolv.conf`), the resolver has no name servers:
    /// IP addresses still work, host names fail with
    /// [`DnsError::NoNameServers`] until servers are given.
    System,
    /// Exactly these name servers (each over UDP, with TCP for truncated
    /// answers), with no system configuration, no hosts file and no search
    /// domains, a 2 s timeout and one retry per query.
    Nameservers(Vec<SocketAddr>),
}

/// Errors from [`SipResolver`].
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The host is not a valid domain name or IP address.
    #[error("invalid SIP host {host:?}: {reason}")]
    InvalidHost {
        /// The host as given.
        host: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The transport needed is not among the supported ones (or a `sips:`
    /// target asked for UDP).
    #[error("transport {transport} is not usable for {host:?}")]
    UnsupportedTransport {
        /// The host being resolved.
        host: String,
        /// The transport that cannot be used.
        transport: Transport,
    },
    /// DNS has no usable record for the host.
    #[error("no DNS records for SIP host {host:?}")]
    NoRecords {
        /// The host being resolved.
        host: String,
    },
    /// The domain's SRV records say the service is not available (target `.`).
    #[error("SIP service decidedly not available at {host:?} (SRV target \".\")")]
    ServiceUnavailable {
        /// The host being resolved.
        host: String,
    },
    /// A DNS query failed (timeout, server failure, I/O error...).
    #[error("DNS lookup of {name} failed: {source}")]
    Resolver {
        /// The name that was being looked up.
        name: String,
        /// The underlying error.
        #[source]
        source: BoxError,
    },
    /// The resolver could not be configured.
    #[error("DNS resolver configuration error: {0}")]
    Config(String),
    /// No name server is known (the system has no DNS configuration and the
    /// app gave none), so a host name cannot be looked up.
    #[error(
        "no DNS server known to look up {host:?}: the system has no DNS configuration and none was given"
    )]
    NoNameServers {
        /// The host that needed DNS.
        host: String,
    },
}

/// RFC 3263 SIP server locator.
///
/// Cheap to clone (the underlying hickory resolver and its cache are shared).
#[derive(Clone)]
pub struct SipResolver {
    inner: TokioResolver,
    /// Whether `inner` has any name server; without one, host names fail at once.
    has_servers: bool,
    /// Supported transports, most preferred first.
    supported: Vec<Transport>,
}

impl fmt::Debug for SipResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipResolver")
            .field("supported", &self.supported)
            .finish_non_exhaustive()
    }
}

/// Parsed host of a [`ServerTarget`].
enum Host {
    Ip(IpAddr),
    Domain {
        /// DNS name (fully qualified when it has more than one label).
        name: Name,
        /// Display form used for [`Target::host`] (no trailing dot).
        text: String,
    },
}

/// One SRV record, reduced to what server selection needs.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SrvEntry {
    priority: u16,
    weight: u16,
    port: u16,
    target: Name,
}

/// Result of one SRV query.
enum SrvAnswer {
    /// Usable records (target not `.`), plus addresses from the additional
    /// section keyed by lower-case target name.
    Records {
        entries: Vec<SrvEntry>,
        glue: HashMap<String, Vec<IpAddr>>,
    },
    /// Only `.` targets: the service is not available.
    Unavailable,
    /// No SRV records at that name.
    Empty,
    /// The query failed.
    Failed(DnsError),
}

impl SipResolver {
    /// Creates a resolver from `source`, supporting UDP, TCP and TLS (in the
    /// preference order TLS, TCP, UDP used when no NAPTR record decides).
    pub fn new(source: ResolverSource) -> Result<Self, DnsError> {
        let inner = match source {
            ResolverSource::System => match TokioResolver::builder_tokio() {
                Ok(mut builder) => {
                    builder.options_mut().ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                    builder.build()
                }
                Err(e) => {
                    // Phones have no /etc/resolv.conf: the app gives the servers later, and
                    // until then only IP addresses work. The error names a file, no secret.
                    tracing::warn!(error = %e, "no system DNS configuration: host names cannot be looked up until DNS servers are given");
                    without_servers()
                }
            },
            ResolverSource::Nameservers(servers) => {
                if servers.is_empty() {
                    return Err(DnsError::Config("no name servers given".to_owned()));
                }
                let mut group = Vec::with_capacity(servers.len() * 2);
                for addr in &servers {
                    group.push(NameServerConfig::new(*addr, Protocol::Udp));
                }
                for addr in &servers {
                    group.push(NameServerConfig::new(*addr, Protocol::Tcp));
                }
                let config = ResolverConfig::from_parts(
                    None,
                    Vec::new(),
                    NameServerConfigGroup::from(group),
                );
                let mut opts = ResolverOpts::default();
                opts.timeout = NAMESERVER_TIMEOUT;
                opts.attempts = NAMESERVER_ATTEMPTS;
                opts.use_hosts_file = ResolveHosts::Never;
                opts.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                    .with_options(opts)
                    .build()
            }
        };
        Ok(SipResolver {
            has_servers: !inner.config().name_servers().is_empty(),
            inner,
            supported: vec![Transport::Tls, Transport::Tcp, Transport::Udp],
        })
    }

    /// Restricts the transports used to `transports`, most preferred first.
    ///
    /// The order decides which SRV services come first when the domain has
    /// no NAPTR records (NAPTR order wins otherwise); duplicates are ignored.
    pub fn with_supported_transports(mut self, transports: &[Transport]) -> Self {
        let mut supported = Vec::with_capacity(transports.len());
        for t in transports {
            if !supported.contains(t) {
                supported.push(*t);
            }
        }
        self.supported = supported;
        self
    }

    /// Forgets every cached answer (a new network may answer differently: split-horizon DNS
    /// gives the office Wi-Fi a private address and the internet a public one).
    pub fn clear_cache(&self) {
        self.inner.clear_cache();
    }

    /// Whether the resolver knows any name server (without one, only IP
    /// addresses resolve).
    pub fn has_name_servers(&self) -> bool {
        self.has_servers
    }

    /// The supported transports, most preferred first.
    pub fn supported_transports(&self) -> &[Transport] {
        &self.supported
    }

    /// Resolves `target` to an ordered list of targets to try (see the module
    /// documentation), using a fresh random generator for SRV weights.
    pub async fn resolve(&self, target: &ServerTarget) -> Result<Vec<Target>, DnsError> {
        let mut rng = StdRng::from_rng(&mut rand::rng());
        self.resolve_with_rng(target, &mut rng).await
    }

    /// Like [`resolve`](Self::resolve) with the random generator used for the
    /// RFC 2782 weighted ordering given by the caller (e.g. a seeded
    /// `StdRng` for reproducible results). The returned future is `Send`
    /// when `R` is (e.g. `StdRng`, not `ThreadRng`).
    pub async fn resolve_with_rng<R: Rng + ?Sized>(
        &self,
        target: &ServerTarget,
        rng: &mut R,
    ) -> Result<Vec<Target>, DnsError> {
        let host = parse_host(&target.host)?;
        let explicit = self.explicit_transport(target)?;
        let (name, text) = match host {
            Host::Ip(ip) => {
                let transport = match explicit {
                    Some(t) => t,
                    None => self.default_transport(target)?,
                };
                let port = target.port.unwrap_or(transport.default_port());
                return Ok(vec![Target {
                    transport,
                    addr: SocketAddr::new(ip, port),
                    host: ip.to_string(),
                }]);
            }
            Host::Domain { name, text } => (name, text),
        };
        if !self.has_servers {
            return Err(DnsError::NoNameServers { host: text });
        }

        if let Some(port) = target.port {
            let transport = match explicit {
                Some(t) => t,
                None => self.default_transport(target)?,
            };
            return self.address_targets(&name, &text, transport, port).await;
        }

        // Which SRV names to query, in order, and the transport to use with
        // A/AAAA records if no SRV record turns up.
        let mut lookup_error: Option<DnsError> = None;
        let (services, fallback_transport) = match explicit {
            Some(t) => (vec![(t, srv_name(t, &name)?)], t),
            None => {
                let from_naptr = match self.naptr_services(&name, target.sips).await {
                    Ok(services) => services,
                    Err(e) => {
                        tracing::debug!(host = %text, error = %e, "NAPTR lookup failed");
                        lookup_error = Some(e);
                        Vec::new()
                    }
                };
                if let Some(&(first, _)) = from_naptr.first() {
                    (from_naptr, first)
                } else {
                    let mut services = Vec::new();
                    for &t in &self.supported {
                        if !target.sips || t == Transport::Tls {
                            services.push((t, srv_name(t, &name)?));
                        }
                    }
                    (services, self.default_transport(target)?)
                }
            }
        };

        let answers = self.srv_lookups(&services).await;
        let mut unavailable = false;
        let mut found_srv = false;
        let mut plan: Vec<(Transport, SrvEntry)> = Vec::new();
        let mut glue: HashMap<String, Vec<IpAddr>> = HashMap::new();
        for ((transport, _), answer) in services.iter().zip(answers) {
            match answer {
                SrvAnswer::Records {
                    entries,
                    glue: more,
                } => {
                    found_srv = true;
                    for (k, v) in more {
                        glue.entry(k).or_insert(v);
                    }
                    for entry in weighted_order(entries, |e| (e.priority, e.weight), rng) {
                        plan.push((*transport, entry));
                    }
                }
                SrvAnswer::Unavailable => unavailable = true,
                SrvAnswer::Empty => {}
                SrvAnswer::Failed(e) => {
                    lookup_error.get_or_insert(e);
                }
            }
        }

        if !found_srv {
            if unavailable {
                return Err(DnsError::ServiceUnavailable { host: text });
            }
            if !self.supported.contains(&fallback_transport) {
                return Err(DnsError::UnsupportedTransport {
                    host: text,
                    transport: fallback_transport,
                });
            }
            let port = fallback_transport.default_port();
            return match self
                .address_targets(&name, &text, fallback_transport, port)
                .await
            {
                // A failed SRV/NAPTR query says more than the missing A/AAAA.
                Err(DnsError::NoRecords { .. }) if lookup_error.is_some() => {
                    Err(lookup_error.unwrap_or(DnsError::NoRecords { host: text }))
                }
                other => other,
            };
        }

        // Resolve every SRV target name not covered by additional records.
        let mut pending: Vec<Name> = Vec::new();
        let mut seen: HashSet<String> = HashSet::new();
        for (_, entry) in &plan {
            let key = name_key(&entry.target);
            if !glue.contains_key(&key) && seen.insert(key) {
                pending.push(entry.target.clone());
            }
        }
        let mut addresses = glue;
        for (target_name, result) in pending.iter().zip(self.ip_lookups(&pending).await) {
            match result {
                Ok(ips) => {
                    addresses.insert(name_key(target_name), ips);
                }
                Err(e) => {
                    tracing::debug!(target = %target_name, error = %e, "SRV target lookup failed");
                    if !matches!(e, DnsError::NoRecords { .. }) {
                        lookup_error.get_or_insert(e);
                    }
                }
            }
        }

        let mut out: Vec<Target> = Vec::new();
        for (transport, entry) in plan {
            let Some(ips) = addresses.get(&name_key(&entry.target)) else {
                continue;
            };
            for ip in ips {
                let candidate = Target {
                    transport,
                    addr: SocketAddr::new(*ip, entry.port),
                    host: text.clone(),
                };
                if !out.contains(&candidate) {
                    out.push(candidate);
                }
            }
        }
        if out.is_empty() {
            return Err(lookup_error.unwrap_or(DnsError::NoRecords { host: text }));
        }
        Ok(out)
    }

    /// The explicit transport of `target`, adjusted for `sips:` and checked
    /// against the supported transports.
    fn explicit_transport(&self, target: &ServerTarget) -> Result<Option<Transport>, DnsError> {
        let Some(t) = target.transport else {
            return Ok(None);
        };
        let t = match (target.sips, t) {
            (true, Transport::Tcp | Transport::Tls) => Transport::Tls,
            (true, Transport::Udp) => {
                return Err(DnsError::UnsupportedTransport {
                    host: target.host.clone(),
                    transport: Transport::Udp,
                });
            }
            (false, t) => t,
        };
        if !self.supported.contains(&t) {
            return Err(DnsError::UnsupportedTransport {
                host: target.host.clone(),
                transport: t,
            });
        }
        Ok(Some(t))
    }

    /// Transport when neither the URI nor DNS decides: TLS for `sips:`, UDP
    /// for `sip:` (TCP, then TLS, when UDP is not supported).
    fn default_transport(&self, target: &ServerTarget) -> Result<Transport, DnsError> {
        let (first, rest): (Transport, &[Transport]) = if target.sips {
            (Transport::Tls, &[])
        } else {
            (Transport::Udp, &[Transport::Tcp, Transport::Tls])
        };
        std::iter::once(first)
            .chain(rest.iter().copied())
            .find(|t| self.supported.contains(t))
            .ok_or(DnsError::UnsupportedTransport {
                host: target.host.clone(),
                transport: first,
            })
    }

    /// NAPTR step: usable (transport, SRV name) pairs in order/preference.
    /// `Ok(empty)` when the domain has no (usable) NAPTR records.
    async fn naptr_services(
        &self,
        name: &Name,
        sips: bool,
    ) -> Result<Vec<(Transport, Name)>, DnsError> {
        let lookup = match self.inner.lookup(name.clone(), RecordType::NAPTR).await {
            Ok(lookup) => lookup,
            Err(e) if e.is_no_records_found() => return Ok(Vec::new()),
            Err(e) => return Err(resolver_error(name, e)),
        };
        let mut records: Vec<(u16, u16, Transport, Name)> = Vec::new();
        for record in lookup.records() {
            let RData::NAPTR(naptr) = record.data() else {
                continue;
            };
            if !naptr.flags().eq_ignore_ascii_case(b"s") {
                continue;
            }
            let Some(transport) = transport_of_naptr_service(naptr.services()) else {
                continue;
            };
            if (sips && transport != Transport::Tls) || !self.supported.contains(&transport) {
                continue;
            }
            if naptr.replacement().is_root() {
                continue;
            }
            records.push((
                naptr.order(),
                naptr.preference(),
                transport,
                naptr.replacement().clone(),
            ));
        }
        records.sort_by_key(|&(order, preference, _, _)| (order, preference));
        let mut out: Vec<(Transport, Name)> = Vec::with_capacity(records.len());
        for (_, _, transport, replacement) in records {
            if !out
                .iter()
                .any(|(t, n)| *t == transport && n.eq_ignore_root(&replacement))
            {
                out.push((transport, replacement));
            }
        }
        Ok(out)
    }

    /// Runs the SRV queries for `services` concurrently; answers in order.
    async fn srv_lookups(&self, services: &[(Transport, Name)]) -> Vec<SrvAnswer> {
        let mut set = JoinSet::new();
        for (index, (_, name)) in services.iter().enumerate() {
            let resolver = self.inner.clone();
            let name = name.clone();
            set.spawn(async move { (index, srv_lookup(&resolver, name).await) });
        }
        collect_ordered(set, services.len(), |name_index| {
            let name = services
                .get(name_index)
                .map(|(_, n)| n.to_string())
                .unwrap_or_default();
            SrvAnswer::Failed(DnsError::Resolver {
                name,
                source: "SRV lookup task failed".into(),
            })
        })
        .await
    }

    /// Resolves `names` to addresses concurrently; results in order.
    async fn ip_lookups(&self, names: &[Name]) -> Vec<Result<Vec<IpAddr>, DnsError>> {
        let mut set = JoinSet::new();
        for (index, name) in names.iter().enumerate() {
            let resolver = self.inner.clone();
            let name = name.clone();
            set.spawn(async move { (index, ip_lookup(&resolver, &name).await) });
        }
        collect_ordered(set, names.len(), |index| {
            Err(DnsError::Resolver {
                name: names.get(index).map(Name::to_string).unwrap_or_default(),
                source: "address lookup task failed".into(),
            })
        })
        .await
    }

    /// A/AAAA step: every address of `name` with the given transport and port.
    async fn address_targets(
        &self,
        name: &Name,
        text: &str,
        transport: Transport,
        port: u16,
    ) -> Result<Vec<Target>, DnsError> {
        let ips = ip_lookup(&self.inner, name).await.map_err(|e| match e {
            DnsError::NoRecords { .. } => DnsError::NoRecords {
                host: text.to_owned(),
            },
            other => other,
        })?;
        Ok(ips
            .into_iter()
            .map(|ip| Target {
                transport,
                addr: SocketAddr::new(ip, port),
                host: text.to_owned(),
            })
            .collect())
    }
}

/// A resolver with no name server (never asked: host names fail before it).
fn without_servers() -> TokioResolver {
    TokioResolver::builder_with_config(
        ResolverConfig::from_parts(None, Vec::new(), NameServerConfigGroup::new()),
        TokioConnectionProvider::default(),
    )
    .build()
}

/// Waits for all `(index, value)` results of `set` and puts them in index
/// order; `lost(index)` fills in for a task that panicked or was cancelled.
async fn collect_ordered<T: 'static>(
    mut set: JoinSet<(usize, T)>,
    len: usize,
    lost: impl Fn(usize) -> T,
) -> Vec<T> {
    let mut slots: Vec<Option<T>> = (0..len).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((index, value)) => {
                if let Some(slot) = slots.get_mut(index) {
                    *slot = Some(value);
                }
            }
            Err(e) => tracing::warn!(error = %e, "DNS lookup task failed"),
        }
    }
    slots
        .into_iter()
        .enumerate()
        .map(|(i, v)| v.unwrap_or_else(|| lost(i)))
        .collect()
}

/// One SRV query, classified.
async fn srv_lookup(resolver: &TokioResolver, name: Name) -> SrvAnswer {
    let lookup = match resolver.lookup(name.clone(), RecordType::SRV).await {
        Ok(lookup) => lookup,
        Err(e) if e.is_no_records_found() => return SrvAnswer::Empty,
        Err(e) => return SrvAnswer::Failed(resolver_error(&name, e)),
    };
    let mut entries = Vec::new();
    let mut saw_dot = false;
    for record in lookup.records() {
        if let RData::SRV(srv) = record.data() {
            if srv.target().is_root() {
                saw_dot = true;
            } else {
                entries.push(SrvEntry {
                    priority: srv.priority(),
                    weight: srv.weight(),
                    port: srv.port(),
                    target: srv.target().clone(),
                });
            }
        }
    }
    if entries.is_empty() {
        return if saw_dot {
            SrvAnswer::Unavailable
        } else {
            SrvAnswer::Empty
        };
    }
    let glue = addresses_for(lookup.records(), entries.iter().map(|e| &e.target));
    SrvAnswer::Records { entries, glue }
}

/// A/AAAA records among `records` for each of `names`, keyed by [`name_key`].
fn addresses_for<'a>(
    records: &[Record],
    names: impl Iterator<Item = &'a Name>,
) -> HashMap<String, Vec<IpAddr>> {
    let mut out: HashMap<String, Vec<IpAddr>> = HashMap::new();
    for name in names {
        let ips: Vec<IpAddr> = records
            .iter()
            .filter(|r| r.name().eq_ignore_root(name))
            .filter_map(|r| r.data().ip_addr())
            .collect();
        if !ips.is_empty() {
            out.insert(name_key(name), ips);
        }
    }
    out
}

/// A/AAAA lookup of `name` (both families).
async fn ip_lookup(resolver: &TokioResolver, name: &Name) -> Result<Vec<IpAddr>, DnsError> {
    match resolver.lookup_ip(name.clone()).await {
        Ok(lookup) => {
            let mut ips: Vec<IpAddr> = Vec::new();
            for ip in lookup.iter() {
                if !ips.contains(&ip) {
                    ips.push(ip);
                }
            }
            if ips.is_empty() {
                Err(DnsError::NoRecords {
                    host: display_name(name),
                })
            } else {
                Ok(ips)
            }
        }
        Err(e) if e.is_no_records_found() => Err(DnsError::NoRecords {
            host: display_name(name),
        }),
        Err(e) => Err(resolver_error(name, e)),
    }
}

fn resolver_error(name: &Name, e: ResolveError) -> DnsError {
    DnsError::Resolver {
        name: display_name(name),
        source: Box::new(e),
    }
}

/// `name` without the trailing dot.
fn display_name(name: &Name) -> String {
    let mut s = name.to_ascii();
    if s.len() > 1 && s.ends_with('.') {
        s.pop();
    }
    s
}

/// Case-insensitive key for a DNS name.
fn name_key(name: &Name) -> String {
    display_name(name).to_ascii_lowercase()
}

/// `_sip._udp.<domain>` etc.
fn srv_name(transport: Transport, domain: &Name) -> Result<Name, DnsError> {
    Name::from_ascii(srv_prefix(transport))
        .and_then(|prefix| prefix.append_domain(domain))
        .map_err(|_| DnsError::InvalidHost {
            host: display_name(domain),
            reason: "name too long for an SRV lookup",
        })
}

/// Parses a SIP host: IPv4, IPv6 (bracketed or not) or a domain name
/// (RFC 3261 `hostname` syntax).
fn parse_host(host: &str) -> Result<Host, DnsError> {
    let invalid = |reason| DnsError::InvalidHost {
        host: host.to_owned(),
        reason,
    };
    if host.is_empty() {
        return Err(invalid("empty host"));
    }
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .ok_or_else(|| invalid("unterminated IPv6 reference"))?;
        return inner
            .parse::<std::net::Ipv6Addr>()
            .map(|ip| Host::Ip(IpAddr::V6(ip)))
            .map_err(|_| invalid("bad IPv6 address"));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(Host::Ip(ip));
    }
    let text = host.strip_suffix('.').unwrap_or(host);
    if text.len() > 253 {
        return Err(invalid("name longer than 253 characters"));
    }
    let mut labels = 0usize;
    for label in text.split('.') {
        labels += 1;
        if label.is_empty() {
            return Err(invalid("empty label"));
        }
        if label.len() > 63 {
            return Err(invalid("label longer than 63 characters"));
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(invalid("only letters, digits, '-' and '.' are allowed"));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return Err(invalid("label starts or ends with '-'"));
        }
    }
    let mut name = Name::from_ascii(text).map_err(|_| invalid("not a valid domain name"))?;
    // Multi-label names are absolute: no search-domain expansion.
    if labels > 1 {
        name.set_fqdn(true);
    }
    Ok(Host::Domain {
        name,
        text: text.to_owned(),
    })
}

/// Orders items by priority (ascending), then within each priority by the
/// weighted random selection of RFC 2782. `key` returns `(priority, weight)`.
fn weighted_order<T, R: Rng + ?Sized>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> (u16, u16),
    rng: &mut R,
) -> Vec<T> {
    // Stable: ties keep the DNS order. Zero weights go first (RFC 2782).
    items.sort_by_key(|item| {
        let (priority, weight) = key(item);
        (priority, weight != 0)
    });
    let mut out = Vec::with_capacity(items.len());
    let mut rest = items.into_iter().peekable();
    while let Some(first) = rest.next() {
        let priority = key(&first).0;
        let mut group = vec![first];
        while let Some(item) = rest.next_if(|item| key(item).0 == priority) {
            group.push(item);
        }
        while !group.is_empty() {
            let total: u64 = group.iter().map(|item| u64::from(key(item).1)).sum();
            let pick = rng.random_range(0..=total);
            let mut running = 0u64;
            let index = group
                .iter()
                .position(|item| {
                    running += u64::from(key(item).1);
                    running >= pick
                })
                .unwrap_or(0);
            out.push(group.remove(index));
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use hickory_resolver::proto::op::{Message, MessageType, OpCode, ResponseCode};
    use hickory_resolver::proto::rr::rdata::{A, NAPTR, SOA, SRV};
    use std::sync::{Arc, Mutex};
    use tokio::net::UdpSocket;
    use tokio::task::JoinHandle;

    const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn a(owner: &str) -> Record {
        Record::from_rdata(name(owner), 300, RData::A(A(std::net::Ipv4Addr::LOCALHOST)))
    }

    fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
        Record::from_rdata(
            name(owner),
            300,
            RData::SRV(SRV::new(priority, weight, port, name(target))),
        )
    }

    fn naptr(owner: &str, order: u16, pref: u16, flags: &str, service: &str, repl: &str) -> Record {
        Record::from_rdata(
            name(owner),
            300,
            RData::NAPTR(NAPTR::new(
                order,
                pref,
                flags.as_bytes().into(),
                service.as_bytes().into(),
                Box::default(),
                name(repl),
            )),
        )
    }

    /// Ports used in the zone's SRV records.
    #[derive(Clone, Copy)]
    struct Ports {
        udp1: u16,
        udp2: u16,
        tcp1: u16,
        tcp2: u16,
        tls: u16,
    }

    const PORTS: Ports = Ports {
        udp1: 5101,
        udp2: 5102,
        tcp1: 5201,
        tcp2: 5202,
        tls: 5301,
    };

    /// The `example.test` zone.
    fn zone(p: Ports) -> Vec<Record> {
        vec![
            // NAPTR: TCP then UDP (same order, preference decides), TLS last;
            // an SCTP record with the best order and a non-"s" record must be
            // skipped.
            naptr(
                "example.test.",
                20,
                10,
                "s",
                "SIPS+D2T",
                "_sips._tcp.example.test.",
            ),
            naptr(
                "example.test.",
                10,
                20,
                "S",
                "SIP+D2U",
                "_sip._udp.example.test.",
            ),
            naptr(
                "example.test.",
                10,
                10,
                "s",
                "SIP+D2T",
                "_sip._tcp.example.test.",
            ),
            naptr(
                "example.test.",
                1,
                10,
                "s",
                "SIP+D2S",
                "_sip._sctp.example.test.",
            ),
            naptr(
                "example.test.",
                2,
                10,
                "u",
                "SIP+D2U",
                "_sip._udp.other.test.",
            ),
            a("example.test."),
            // Listed in reverse priority order on purpose.
            srv(
                "_sip._udp.example.test.",
                20,
                0,
                p.udp2,
                "sip2.example.test.",
            ),
            srv(
                "_sip._udp.example.test.",
                10,
                0,
                p.udp1,
                "sip1.example.test.",
            ),
            srv(
                "_sip._tcp.example.test.",
                10,
                75,
                p.tcp1,
                "tcp1.example.test.",
            ),
            srv(
                "_sip._tcp.example.test.",
                10,
                25,
                p.tcp2,
                "tcp2.example.test.",
            ),
            srv(
                "_sips._tcp.example.test.",
                10,
                0,
                p.tls,
                "tls.example.test.",
            ),
            a("sip1.example.test."),
            a("sip2.example.test."),
            a("tcp1.example.test."),
            a("tcp2.example.test."),
            a("tls.example.test."),
            // No NAPTR: plain SRV procedure.
            srv(
                "_sip._udp.nonaptr.example.test.",
                10,
                0,
                p.udp1,
                "sip1.example.test.",
            ),
            srv(
                "_sip._tcp.nonaptr.example.test.",
                10,
                0,
                p.tcp1,
                "tcp1.example.test.",
            ),
            // Neither NAPTR nor SRV: A with the default port.
            a("plain.example.test."),
            // SRV "." : service not available (A record must not be used).
            srv("_sip._udp.dead.example.test.", 0, 0, 0, "."),
            srv("_sip._tcp.dead.example.test.", 0, 0, 0, "."),
            a("dead.example.test."),
            // SRV target without address records.
            srv(
                "_sip._udp.noaddr.example.test.",
                10,
                0,
                p.udp1,
                "ghost.example.test.",
            ),
        ]
    }

    /// Minimal authoritative UDP DNS server on 127.0.0.1.
    struct TestDns {
        addr: SocketAddr,
        queries: Arc<Mutex<Vec<(String, RecordType)>>>,
        task: JoinHandle<()>,
    }

    impl Drop for TestDns {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl TestDns {
        async fn start(zone: Vec<Record>) -> TestDns {
            let socket = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
            let addr = socket.local_addr().unwrap();
            let queries = Arc::new(Mutex::new(Vec::new()));
            let log = queries.clone();
            let task = tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                loop {
                    let Ok((n, peer)) = socket.recv_from(&mut buf).await else {
                        continue;
                    };
                    // Only ever answer loopback peers.
                    if !peer.ip().is_loopback() {
                        continue;
                    }
                    let Ok(request) = Message::from_vec(&buf[..n]) else {
                        continue;
                    };
                    if let Some(q) = request.queries().first() {
                        log.lock()
                            .unwrap()
                            .push((name_key(q.name()), q.query_type()));
                    }
                    let response = answer(&zone, &request);
                    if let Ok(bytes) = response.to_vec() {
                        let _ = socket.send_to(&bytes, peer).await;
                    }
                }
            });
            TestDns {
                addr,
                queries,
                task,
            }
        }

        fn resolver(&self) -> SipResolver {
            SipResolver::new(ResolverSource::Nameservers(vec![self.addr])).unwrap()
        }

        fn queries(&self) -> Vec<(String, RecordType)> {
            self.queries.lock().unwrap().clone()
        }
    }

    fn answer(zone: &[Record], request: &Message) -> Message {
        let mut response = Message::new();
        response
            .set_id(request.id())
            .set_message_type(MessageType::Response)
            .set_op_code(OpCode::Query)
            .set_authoritative(true)
            .set_recursion_desired(request.recursion_desired());
        let Some(query) = request.queries().first() else {
            response.set_response_code(ResponseCode::FormErr);
            return response;
        };
        response.add_query(query.clone());
        let qname = query.name();
        let answers: Vec<Record> = zone
            .iter()
            .filter(|r| r.name().eq_ignore_root(qname) && r.record_type() == query.query_type())
            .cloned()
            .collect();
        if answers.is_empty() {
            // NODATA if the name (or something below it) exists, else NXDOMAIN.
            let exists = zone.iter().any(|r| qname.zone_of(r.name()));
            response.set_response_code(if exists {
                ResponseCode::NoError
            } else {
                ResponseCode::NXDomain
            });
            response.add_name_server(Record::from_rdata(
                name("example.test."),
                60,
                RData::SOA(SOA::new(
                    name("ns.example.test."),
                    name("hostmaster.example.test."),
                    1,
                    3600,
                    600,
                    86400,
                    60,
                )),
            ));
            return response;
        }
        // Like real servers: addresses of SRV targets as additional records.
        for record in &answers {
            if let RData::SRV(srv) = record.data() {
                for glue in zone.iter().filter(|r| {
                    r.name().eq_ignore_root(srv.target()) && r.record_type() == RecordType::A
                }) {
                    response.add_additional(glue.clone());
                }
            }
        }
        response.add_answers(answers);
        response
    }

    fn summary(targets: &[Target]) -> Vec<(Transport, u16)> {
        targets
            .iter()
            .map(|t| (t.transport, t.addr.port()))
            .collect()
    }

    #[tokio::test]
    async fn srv_order_follows_priority() {
        let dns = TestDns::start(zone(PORTS)).await;
        let resolver = dns.resolver();
        let target = ServerTarget::new("example.test").with_transport(Transport::Udp);
        let mut rng = StdRng::seed_from_u64(1);
        let targets = resolver.resolve_with_rng(&target, &mut rng).await.unwrap();
        assert_eq!(
            summary(&targets),
            vec![(Transport::Udp, PORTS.udp1), (Transport::Udp, PORTS.udp2)]
        );
        for t in &targets {
            assert_eq!(t.addr.ip(), LOOPBACK);
            assert_eq!(t.host, "example.test");
        }
        // Explicit transport: no NAPTR query.
        assert!(dns.queries().iter().all(|(_, ty)| *ty != RecordType::NAPTR));
    }

    #[tokio::test]
    async fn naptr_order_preference_and_filtering() {
        let dns = TestDns::start(zone(PORTS)).await;
        let resolver = dns.resolver();
        let mut rng = StdRng::seed_from_u64(7);
        let targets = resolver
            .resolve_with_rng(&ServerTarget::new("example.test"), &mut rng)
            .await
            .unwrap();
        let transports: Vec<Transport> = targets.iter().map(|t| t.transport).collect();
        assert_eq!(
            transports,
            vec![
                Transport::Tcp,
                Transport::Tcp,
                Transport::Udp,
                Transport::Udp,
                Transport::Tls
            ]
        );
        let ports = summary(&targets);
        assert_eq!(
            &ports[2..],
            &[
                (Transport::Udp, PORTS.udp1),
                (Transport::Udp, PORTS.udp2),
                (Transport::Tls, PORTS.tls)
            ]
        );
        let mut tcp: Vec<u16> = ports[..2].iter().map(|p| p.1).collect();
        tcp.sort_unstable();
        assert_eq!(tcp, vec![PORTS.tcp1, PORTS.tcp2]);
        assert!(targets.iter().all(|t| t.host == "example.test"));
        // The unsupported / non-"s" NAPTR records were not followed.
        assert!(
            dns.queries()
                .iter()
                .all(|(n, _)| !n.contains("sctp") && !n.contains("other"))
        );

        // sips: only SIPS+D2T.
        let sips = resolver
            .resolve(&ServerTarget::new("example.test").with_sips(true))
            .await
            .unwrap();
        assert_eq!(summary(&sips), vec![(Transport::Tls, PORTS.tls)]);
        assert_eq!(sips[0].host, "example.test");

        // Only UDP supported: the TCP/TLS NAPTR records are skipped.
        let udp_only = resolver
            .clone()
            .with_supported_transports(&[Transport::Udp]);
        let targets = udp_only
            .resolve(&ServerTarget::new("example.test"))
            .await
            .unwrap();
        assert_eq!(
            summary(&targets),
            vec![(Transport::Udp, PORTS.udp1), (Transport::Udp, PORTS.udp2)]
        );
        let err = udp_only
            .resolve(&ServerTarget::new("example.test").with_sips(true))
            .await
            .unwrap_err();
        assert!(matches!(
            err,
            DnsError::UnsupportedTransport {
                transport: Transport::Tls,
                ..
            }
        ));
    }

    #[tokio::test]
    async fn srv_without_naptr_and_a_fallback() {
        let dns = TestDns::start(zone(PORTS)).await;
        let resolver = dns.resolver();
        let targets = resolver
            .resolve(&ServerTarget::new("nonaptr.example.test"))
            .await
            .unwrap();
        // Preference TLS, TCP, UDP; there is no _sips._tcp record.
        assert_eq!(
            summary(&targets),
            vec![(Transport::Tcp, PORTS.tcp1), (Transport::Udp, PORTS.udp1)]
        );
        assert!(targets.iter().all(|t| t.host == "nonaptr.example.test"));

        // UDP first when preferred.
        let targets = resolver
            .clone()
            .with_supported_transports(&[Transport::Udp, Transport::Tcp])
            .resolve(&ServerTarget::new("nonaptr.example.test"))
            .await
            .unwrap();
        assert_eq!(
            summary(&targets),
            vec![(Transport::Udp, PORTS.udp1), (Transport::Tcp, PORTS.tcp1)]
        );

        // Neither NAPTR nor SRV: A record, default port, UDP (TLS for sips).
        let targets = resolver
            .resolve(&ServerTarget::new("plain.example.test"))
            .await
            .unwrap();
        assert_eq!(summary(&targets), vec![(Transport::Udp, 5060)]);
        assert_eq!(targets[0].addr.ip(), LOOPBACK);
        let targets = resolver
            .resolve(&ServerTarget::new("PLAIN.example.test.").with_sips(true))
            .await
            .unwrap();
        assert_eq!(summary(&targets), vec![(Transport::Tls, 5061)]);
        assert_eq!(targets[0].host, "PLAIN.example.test");
        let targets = resolver
            .resolve(&ServerTarget::new("plain.example.test").with_transport(Transport::Tcp))
            .await
            .unwrap();
        assert_eq!(summary(&targets), vec![(Transport::Tcp, 5060)]);
    }

    #[tokio::test]
    async fn srv_weights_are_roughly_proportional() {
        let dns = TestDns::start(zone(PORTS)).await;
        let resolver = dns.resolver();
        let target = ServerTarget::new("example.test").with_transport(Transport::Tcp);
        let runs = 2000;
        let mut tcp1_first = 0;
        for seed in 0..runs {
            let mut rng = StdRng::seed_from_u64(seed);
            let targets = resolver.resolve_with_rng(&target, &mut rng).await.unwrap();
            assert_eq!(targets.len(), 2);
            if targets[0].addr.port() == PORTS.tcp1 {
                tcp1_first += 1;
            }
        }
        // Weights 75:25.
        let share = f64::from(tcp1_first) / runs as f64;
        assert!((0.68..0.82).contains(&share), "tcp1 first in {share}");

        // Same seed, same order.
        let one = resolver
            .resolve_with_rng(&target, &mut StdRng::seed_from_u64(42))
            .await
            .unwrap();
        let two = resolver
            .resolve_with_rng(&target, &mut StdRng::seed_from_u64(42))
            .await
            .unwrap();
        assert_eq!(one, two);
    }

    #[test]
    fn weighted_order_unit() {
        // (priority, weight, id)
        let items = vec![(20, 5, 'x'), (10, 0, 'a'), (10, 90, 'b'), (10, 10, 'c')];
        let mut first = HashMap::new();
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..5000 {
            let order = weighted_order(items.clone(), |i| (i.0, i.1), &mut rng);
            assert_eq!(order.len(), 4);
            // Priority 20 always last.
            assert_eq!(order[3].2, 'x');
            *first.entry(order[0].2).or_insert(0u32) += 1;
        }
        let b = f64::from(first.get(&'b').copied().unwrap_or(0)) / 5000.0;
        let c = f64::from(first.get(&'c').copied().unwrap_or(0)) / 5000.0;
        assert!((0.82..0.95).contains(&b), "b first {b}");
        assert!((0.05..0.16).contains(&c), "c first {c}");
        // All-zero weights: stable order.
        let zeros = vec![(1, 0, 'p'), (1, 0, 'q')];
        let order = weighted_order(zeros, |i| (i.0, i.1), &mut rng);
        assert_eq!(order[0].2, 'p');
        assert!(weighted_order(Vec::<(u16, u16)>::new(), |i| *i, &mut rng).is_empty());
    }

    #[tokio::test]
    async fn explicit_port_skips_naptr_and_srv() {
        let dns = TestDns::start(zone(PORTS)).await;
        let resolver = dns.resolver();
        let targets = resolver
            .resolve(&ServerTarget::new("example.test").with_port(5070))
            .await
            .unwrap();
        assert_eq!(summary(&targets), vec![(Transport::Udp, 5070)]);
        assert_eq!(targets[0].addr.ip(), LOOPBACK);
        let targets = resolver
            .resolve(
                &ServerTarget::new("example.test")
                    .with_port(5071)
                    .with_transport(Transport::Tcp)
                    .with_sips(true),
            )
            .await
            .unwrap();
        assert_eq!(summary(&targets), vec![(Transport::Tls, 5071)]);
        let queries = dns.queries();
        assert!(!queries.is_empty());
        assert!(
            queries.iter().all(
                |(n, ty)| n == "example.test" && matches!(ty, RecordType::A | RecordType::AAAA)
            ),
            "{queries:?}"
        );
    }

    #[tokio::test]
    async fn numeric_ip_skips_dns() {
        let dns = TestDns::start(zone(PORTS)).await;
        let resolver = dns.resolver();
        let t = resolver
            .resolve(&ServerTarget::new("127.0.0.1"))
            .await
            .unwrap();
        assert_eq!(
            t,
            vec![Target {
                transport: Transport::Udp,
                addr: "127.0.0.1:5060".parse().unwrap(),
                host: "127.0.0.1".into(),
            }]
        );
        let t = resolver
            .resolve(&ServerTarget::new("[::1]").with_sips(true))
            .await
            .unwrap();
        assert_eq!(t[0].transport, Transport::Tls);
        assert_eq!(t[0].addr, "[::1]:5061".parse().unwrap());
        assert_eq!(t[0].host, "::1");
        let t = resolver
            .resolve(
                &ServerTarget::new("::1")
                    .with_port(5080)
                    .with_transport(Transport::Tcp),
            )
            .await
            .unwrap();
        assert_eq!(summary(&t), vec![(Transport::Tcp, 5080)]);
        let t = resolver
            .resolve(&ServerTarget::new("127.0.0.1").with_transport(Transport::Tls))
            .await
            .unwrap();
        assert_eq!(summary(&t), vec![(Transport::Tls, 5061)]);
        assert!(dns.queries().is_empty());
    }

    #[tokio::test]
    async fn errors() {
        let dns = TestDns::start(zone(PORTS)).await;
        let resolver = dns.resolver();
        let err = resolver
            .resolve(&ServerTarget::new("missing.example.test"))
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::NoRecords { ref host } if host == "missing.example.test"));
        let err = resolver
            .resolve(&ServerTarget::new("missing.example.test").with_port(5060))
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::NoRecords { .. }), "{err}");
        let err = resolver
            .resolve(&ServerTarget::new("noaddr.example.test"))
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::NoRecords { .. }), "{err}");
        let err = resolver
            .resolve(&ServerTarget::new("dead.example.test"))
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::ServiceUnavailable { .. }), "{err}");

        let before = dns.queries().len();
        for bad in [
            "", "bad host", "[::1", "[nope]", "a..b", "-a.test", "a_b.test",
        ] {
            let err = resolver.resolve(&ServerTarget::new(bad)).await.unwrap_err();
            assert!(matches!(err, DnsError::InvalidHost { .. }), "{bad}: {err}");
        }
        let long = format!("{}.test", "a".repeat(64));
        assert!(matches!(
            resolver.resolve(&ServerTarget::new(long)).await,
            Err(DnsError::InvalidHost { .. })
        ));
        assert!(matches!(
            resolver
                .resolve(
                    &ServerTarget::new("example.test")
                        .with_sips(true)
                        .with_transport(Transport::Udp)
                )
                .await,
            Err(DnsError::UnsupportedTransport { .. })
        ));
        assert_eq!(dns.queries().len(), before);

        assert!(matches!(
            SipResolver::new(ResolverSource::Nameservers(Vec::new())),
            Err(DnsError::Config(_))
        ));
    }

    #[tokio::test]
    async fn resolve_futures_are_send() {
        fn is_send<T: Send>(_: T) {}
        let dns = TestDns::start(Vec::new()).await;
        let resolver = dns.resolver();
        let target = ServerTarget::new("example.test");
        is_send(resolver.resolve(&target));
        is_send(resolver.resolve_with_rng(&target, &mut StdRng::seed_from_u64(0)));
    }

    #[tokio::test]
    async fn unresponsive_nameserver_is_a_resolver_error() {
        // A loopback socket that never answers.
        let silent = UdpSocket::bind((LOOPBACK, 0)).await.unwrap();
        let resolver = SipResolver::new(ResolverSource::Nameservers(vec![
            silent.local_addr().unwrap(),
        ]))
        .unwrap();
        let err = resolver
            .resolve(&ServerTarget::new("example.test").with_port(5060))
            .await
            .unwrap_err();
        assert!(matches!(err, DnsError::Resolver { .. }), "{err}");
    }

    #[tokio::test]
    async fn without_name_servers_only_ip_addresses_resolve() {
        // What ResolverSource::System gives where the system has no DNS configuration
        // (Android): IP literals work, a host name fails at once with a clear error.
        let resolver = SipResolver {
            inner: without_servers(),
            has_servers: false,
            supported: vec![Transport::Tls, Transport::Tcp, Transport::Udp],
        };
        assert!(!resolver.has_name_servers());
        let t = resolver
            .resolve(&ServerTarget::new("127.0.0.1").with_port(5070))
            .await
            .unwrap();
        assert_eq!(summary(&t), vec![(Transport::Udp, 5070)]);
        let err = resolver
            .resolve(&ServerTarget::new("pbx.example.test"))
            .await
            .unwrap_err();
        assert!(
            matches!(err, DnsError::NoNameServers { ref host } if host == "pbx.example.test"),
            "{err}"
        );
        assert!(err.to_string().contains("no DNS server known"), "{err}");
        // Bad input is still reported as such.
        assert!(matches!(
            resolver.resolve(&ServerTarget::new("bad host")).await,
            Err(DnsError::InvalidHost { .. })
        ));
        let dns = TestDns::start(zone(PORTS)).await;
        assert!(dns.resolver().has_name_servers());
    }
}
