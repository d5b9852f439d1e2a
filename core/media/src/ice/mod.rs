//! ICE (RFC 8445) for plain RTP and SDES-SRTP calls, with server-reflexive candidates from a
//! STUN server and relayed candidates from a TURN server (RFC 8656). Sans-IO like the rest of
//! the crate; the runtime owns the call's one UDP socket and, for TURN over TCP or TLS, the
//! stream to the TURN server.
//!
//! ```text
//!  socket bound ─► Gatherer ──────────────────────────────► Gathered ─► a=candidate lines (SDP)
//!                  host: the socket's address                │
//!                  srflx: STUN Binding to each STUN server    │ relay allocation kept
//!                  relay: TURN Allocate (+ its mapped address)▼
//!  offer/answer ─► MediaSession with an IcePath: str0m's IceAgent checks the pairs; media
//!                  goes over the nominated pair, wrapped for the TURN server when that pair's
//!                  local candidate is the relayed one. A peer without ICE gets media at its
//!                  c= address (through the relay when the policy is relay-only) and symmetric
//!                  RTP latching as before.
//! ```
//!
//! Datagrams from the TURN server's address are the relay's (control messages, or data a peer
//! sent to the relayed address); everything else on the socket is the peer's (STUN checks,
//! RTP, RTCP).

mod gather;
mod path;

use std::fmt;
use std::net::SocketAddr;

use crate::sdp::{IceCredentials, IceLocal};

pub use gather::{GATHER_TIMEOUT, Gathered, Gatherer};
pub use path::IceSetup;
pub(crate) use path::{IcePath, Received};

pub use handset_stun::turn::{StreamFramer, TurnClient, TurnError, TurnServer, TurnTransport};

/// Which of our candidates a call may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum IcePolicy {
    /// Host, server-reflexive and relayed candidates.
    #[default]
    All,
    /// Only the TURN relay: the peer never learns our addresses, and media crosses any NAT
    /// (a call fails when no relay can be allocated).
    Relay,
}

impl std::str::FromStr for IcePolicy {
    type Err = IceConfigError;

    /// Parses `all` or `relay`.
    fn from_str(text: &str) -> Result<Self, IceConfigError> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(IcePolicy::All),
            "relay" => Ok(IcePolicy::Relay),
            _ => Err(IceConfigError::Policy(text.to_owned())),
        }
    }
}

/// A TURN server as configured: `turn:HOST[:PORT][;transport=udp|tcp|tls]` (or
/// `?transport=`, RFC 7065; `turns:` means TLS) with its long-term credential. `Debug` never
/// shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnUrl {
    /// Host name or IP address.
    pub host: String,
    /// Port (3478 by default, 5349 for TLS).
    pub port: u16,
    /// How we reach the server.
    pub transport: TurnTransport,
    /// The long-term credential's user name.
    pub username: String,
    /// The long-term credential's password (a secret).
    pub password: String,
}

impl fmt::Debug for TurnUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnUrl")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("transport", &self.transport)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl TurnUrl {
    /// Parses a TURN URL and attaches the credential.
    pub fn parse(url: &str, username: &str, password: &str) -> Result<Self, IceConfigError> {
        let bad = || IceConfigError::TurnUrl(url.to_owned());
        let url = url.trim();
        let (scheme, rest) = url.split_once(':').ok_or_else(bad)?;
        let tls_scheme = match scheme.to_ascii_lowercase().as_str() {
            "turn" => false,
            "turns" => true,
            _ => return Err(bad()),
        };
        let (hostport, params) = match rest.find([';', '?']) {
            Some(at) => (rest.get(..at).ok_or_else(bad)?, rest.get(at + 1..)),
            None => (rest, None),
        };
        let mut transport = if tls_scheme {
            TurnTransport::Tls
        } else {
            TurnTransport::Udp
        };
        for param in params.into_iter().flat_map(|p| p.split([';', '&'])) {
            let Some((name, value)) = param.split_once('=') else {
                return Err(bad());
            };
            if !name.eq_ignore_ascii_case("transport") {
                return Err(bad());
            }
            transport = match (value.to_ascii_lowercase().as_str(), tls_scheme) {
                ("udp", false) => TurnTransport::Udp,
                ("tcp", false) => TurnTransport::Tcp,
                ("tls", _) | ("tcp", true) => TurnTransport::Tls,
                _ => return Err(bad()),
            };
        }
        let default_port = if transport == TurnTransport::Tls {
            5349
        } else {
            3478
        };
        let (host, port) = split_host_port(hostport, default_port).ok_or_else(bad)?;
        if username.is_empty() {
            return Err(IceConfigError::TurnCredential);
        }
        Ok(TurnUrl {
            host,
            port,
            transport,
            username: username.to_owned(),
            password: password.to_owned(),
        })
    }

    /// The server at a resolved address.
    pub fn server(&self, address: SocketAddr) -> TurnServer {
        TurnServer {
            address,
            transport: self.transport,
            username: self.username.clone(),
            password: self.password.clone(),
        }
    }
}

/// A STUN server as configured: `HOST[:PORT]` (port 3478 by default; `stun:` prefix allowed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StunUrl {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::str::FromStr for StunUrl {
    type Err = IceConfigError;

    /// Parses `HOST[:PORT]`, `[IPV6]:PORT` or `stun:HOST[:PORT]`.
    fn from_str(text: &str) -> Result<Self, IceConfigError> {
        let trimmed = text.trim();
        let hostport = trimmed
            .strip_prefix("stun:")
            .or_else(|| trimmed.strip_prefix("STUN:"))
            .unwrap_or(trimmed);
        let (host, port) = split_host_port(hostport, 3478)
            .ok_or_else(|| IceConfigError::StunServer(text.to_owned()))?;
        Ok(StunUrl { host, port })
    }
}

/// `host`, `host:port`, `v4:port`, `[v6]` or `[v6]:port`.
fn split_host_port(text: &str, default_port: u16) -> Option<(String, u16)> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Some((address.ip().to_string(), address.port()));
    }
    if let Ok(ip) = text.parse::<std::net::IpAddr>() {
        return Some((ip.to_string(), default_port));
    }
    let (host, port) = if let Some(v6) = text.strip_prefix('[') {
        let (ip, rest) = v6.split_once(']')?;
        let port = match rest.strip_prefix(':') {
            Some(port) => port.parse().ok()?,
            None if rest.is_empty() => default_port,
            None => return None,
        };
        (ip.to_owned(), port)
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), port.parse().ok()?),
            None => (text.to_owned(), default_port),
        }
    };
    let valid = !host.is_empty()
        && port != 0
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
    valid.then_some((host, port))
}

/// An account's ICE settings: the servers to gather candidates from and the policy. ICE is
/// offered only when [`Self::is_enabled`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IceConfig {
    /// STUN servers for server-reflexive candidates.
    pub stun: Vec<StunUrl>,
    /// TURN servers for relayed candidates (the first that allocates is used).
    pub turn: Vec<TurnUrl>,
    /// Which candidates may be used.
    pub policy: IcePolicy,
}

impl IceConfig {
    /// Whether calls use ICE: a server is configured, or relay-only was asked for.
    pub fn is_enabled(&self) -> bool {
        !self.stun.is_empty() || !self.turn.is_empty() || self.policy == IcePolicy::Relay
    }

    /// Checks what cannot work: relay-only without a TURN server.
    pub fn validate(&self) -> Result<(), IceConfigError> {
        if self.policy == IcePolicy::Relay && self.turn.is_empty() {
            return Err(IceConfigError::RelayWithoutTurn);
        }
        Ok(())
    }
}

/// What is wrong with an ICE setting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IceConfigError {
    /// Not `HOST[:PORT]`.
    #[error("bad STUN server {0:?}: expected HOST[:PORT]")]
    StunServer(String),
    /// Not `turn:HOST[:PORT][;transport=udp|tcp|tls]`.
    #[error("bad TURN server {0:?}: expected turn:HOST[:PORT][;transport=udp|tcp|tls]")]
    TurnUrl(String),
    /// A TURN server without a user name.
    #[error("a TURN server needs a user name")]
    TurnCredential,
    /// Not `all` or `relay`.
    #[error("bad ICE policy {0:?}: expected all or relay")]
    Policy(String),
    /// Relay-only without a TURN server.
    #[error("the relay ICE policy needs a TURN server")]
    RelayWithoutTurn,
}

/// The kind of a candidate (RFC 8445 §5.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CandidateType {
    /// An address of the phone itself.
    Host,
    /// Our address as a STUN server saw it (the NAT's outside).
    ServerReflexive,
    /// An address on the TURN server that relays to us.
    Relayed,
}

impl CandidateType {
    /// The SDP name: `host`, `srflx`, `relay`.
    pub fn as_str(self) -> &'static str {
        match self {
            CandidateType::Host => "host",
            CandidateType::ServerReflexive => "srflx",
            CandidateType::Relayed => "relay",
        }
    }
}

/// One of our candidates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LocalCandidate {
    /// Its kind.
    pub kind: CandidateType,
    /// The address the peer sends to.
    pub address: SocketAddr,
    /// Its ICE base, where it is sent from: the socket's address (host, srflx), or the
    /// relayed address itself (relay).
    pub base: SocketAddr,
}

impl LocalCandidate {
    /// The host candidate of a socket at `address`.
    pub fn host(address: SocketAddr) -> Self {
        LocalCandidate {
            kind: CandidateType::Host,
            address,
            base: address,
        }
    }

    /// The candidate as str0m's ICE agent sees it.
    pub(crate) fn to_agent(self) -> Option<str0m::Candidate> {
        let made = match self.kind {
            CandidateType::Host => str0m::Candidate::host(self.address, "udp"),
            CandidateType::ServerReflexive => {
                str0m::Candidate::server_reflexive(self.address, self.base, "udp")
            }
            CandidateType::Relayed => str0m::Candidate::relayed(self.address, self.base, "udp"),
        };
        made.ok()
    }
}

/// The a=candidate values (without `candidate:`) for our candidates.
pub fn candidate_lines(candidates: &[LocalCandidate]) -> Vec<String> {
    candidates
        .iter()
        .filter_map(|c| c.to_agent())
        .map(|c| {
            let line = c.to_sdp_string();
            line.strip_prefix("candidate:")
                .map(str::to_owned)
                .unwrap_or(line)
        })
        .collect()
}

/// Our ICE parameters as the description announces them: `credentials` and the a=candidate
/// lines of `candidates`.
pub fn ice_local(credentials: IceCredentials, candidates: &[LocalCandidate]) -> IceLocal {
    IceLocal {
        credentials,
        candidates: candidate_lines(candidates),
    }
}

/// The address for c= and m= (RFC 8839 §4.2.1.1: the candidate most likely to work): the
/// relayed one, else the server-reflexive one, else `host`.
pub fn default_address(candidates: &[LocalCandidate], host: SocketAddr) -> SocketAddr {
    let of = |kind| {
        candidates
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| c.address)
    };
    of(CandidateType::Relayed)
        .or_else(|| of(CandidateType::ServerReflexive))
        .or_else(|| of(CandidateType::Host))
        .unwrap_or(host)
}

#[cfg(test)]
mod tests;
