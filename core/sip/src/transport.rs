//! The one transport vocabulary of Handset, shared by the phone machine, the runtime, the
//! resolver and the embedded PBX: which protocol carries SIP ([`Transport`]), which peer a
//! message came from or goes to ([`Flow`]), and where a server can be reached ([`ServerTarget`]
//! to look up, [`Target`] found).

use std::fmt;
use std::net::SocketAddr;

/// A SIP transport protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// SIP over UDP.
    Udp,
    /// SIP over TCP.
    Tcp,
    /// SIP over TLS (over TCP).
    Tls,
}

impl Transport {
    /// Default port of the transport: 5060, or 5061 for TLS.
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Udp | Transport::Tcp => 5060,
            Transport::Tls => 5061,
        }
    }

    /// Lower-case name, as used in the `transport` URI parameter.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Tls => "tls",
        }
    }

    /// Upper-case name, as used in the Via sent-protocol (`SIP/2.0/UDP`).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// The transport named by a `transport` URI parameter or a Via sent-protocol, in any case.
    pub fn parse(name: &str) -> Option<Transport> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(name))
    }

    /// Whether the transport is reliable: no SIP retransmissions (RFC 3261 §17) and messages
    /// framed out of a byte stream.
    pub fn is_reliable(self) -> bool {
        self != Transport::Udp
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a message goes or came from: a transport and the peer's socket address. For TCP and
/// TLS it names the connection with that peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Flow {
    /// Transport.
    pub transport: Transport,
    /// The peer's socket address.
    pub remote: SocketAddr,
}

impl Flow {
    /// A flow to `remote` over `transport`.
    pub fn new(transport: Transport, remote: SocketAddr) -> Flow {
        Flow { transport, remote }
    }

    /// Whether the transport is reliable (no SIP retransmissions, RFC 3261 §17).
    pub fn reliable(&self) -> bool {
        self.transport.is_reliable()
    }
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.transport, self.remote)
    }
}

/// What to locate with RFC 3263: the relevant parts of a SIP or SIPS server URI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerTarget {
    /// Host: a domain name, an IPv4 address, or an IPv6 address (with or without brackets).
    pub host: String,
    /// Explicit port from the URI, if any.
    pub port: Option<u16>,
    /// Explicit `transport` parameter from the URI (or configured), if any.
    pub transport: Option<Transport>,
    /// Whether the URI is a `sips:` URI (TLS required).
    pub sips: bool,
}

impl ServerTarget {
    /// A `sip:` target for `host` with no explicit port or transport.
    pub fn new(host: impl Into<String>) -> Self {
        ServerTarget {
            host: host.into(),
            port: None,
            transport: None,
            sips: false,
        }
    }

    /// Sets the explicit port.
    pub fn with_port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Sets the explicit transport.
    pub fn with_transport(mut self, transport: Transport) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Marks the target as coming from a `sips:` URI (or not).
    pub fn with_sips(mut self, sips: bool) -> Self {
        self.sips = sips;
        self
    }
}

/// One place to send SIP requests to, as RFC 3263 found it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Transport to use.
    pub transport: Transport,
    /// Address and port to connect or send to.
    pub addr: SocketAddr,
    /// Host name for TLS server identity checks: per RFC 3263/RFC 5922 the domain of the
    /// original URI (not the SRV target), or the IP address text for a numeric host.
    pub host: String,
}

impl Target {
    /// The flow that reaches this target.
    pub fn flow(&self) -> Flow {
        Flow::new(self.transport, self.addr)
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ({})", self.transport, self.addr, self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_names_round_trip_in_any_case() {
        for t in [Transport::Udp, Transport::Tcp, Transport::Tls] {
            assert_eq!(Transport::parse(t.as_str()), Some(t));
            assert_eq!(Transport::parse(t.via_name()), Some(t));
        }
        assert_eq!(Transport::parse("sctp"), None);
        assert_eq!(Transport::parse(""), None);
    }

    #[test]
    fn only_udp_is_unreliable() {
        let remote: SocketAddr = "127.0.0.1:5060".parse().unwrap();
        assert!(!Flow::new(Transport::Udp, remote).reliable());
        assert!(Flow::new(Transport::Tcp, remote).reliable());
        assert!(Flow::new(Transport::Tls, remote).reliable());
    }
}
