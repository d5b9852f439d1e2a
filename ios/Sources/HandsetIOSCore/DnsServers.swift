import Foundation

/// One DNS server as the system's resolver configuration gives it (`res_9_getservers`): a
/// numeric address, its port, and for a link-local IPv6 server the interface index.
public struct DnsServerAddress: Equatable, Sendable {
    /// Numeric address (`192.0.2.53`, `2001:db8::53`); a `%interface` suffix is ignored.
    public var host: String
    /// Port; 0 means the DNS port, 53.
    public var port: UInt16
    /// IPv6 scope id (interface index), 0 when none.
    public var scopeId: UInt32

    /// A server at `host`, `port` (53 by default) and `scopeId`.
    public init(host: String, port: UInt16 = 53, scopeId: UInt32 = 0) {
        self.host = host
        self.port = port
        self.scopeId = scopeId
    }
}

/// The system's DNS servers as the core takes them (`HandsetPhone.setDnsServers`): iOS apps
/// cannot read /etc/resolv.conf, so the glue hands them over on every network change.
public enum DnsServers {
    /// `servers` as `ip:port` / `[ipv6%scope]:port` entries in their order, duplicates and
    /// unusable addresses (empty, wildcard) left out. An empty result makes the core fall back
    /// to a system configuration it cannot read: host names then fail until servers come.
    public static func entries(_ servers: [DnsServerAddress]) -> [String] {
        var out: [String] = []
        for server in servers {
            if let entry = entry(server), !out.contains(entry) {
                out.append(entry)
            }
        }
        return out
    }

    /// One server's entry, nil when it is unusable. The scope id is numeric: the core does not
    /// understand interface names.
    public static func entry(_ server: DnsServerAddress) -> String? {
        let host = String(server.host.prefix { $0 != "%" }).trimmingCharacters(in: .whitespaces)
        let port = server.port == 0 ? 53 : server.port
        if host.isEmpty || host == "0.0.0.0" || host == "::" {
            return nil
        }
        if host.contains(":") {
            let scope = server.scopeId > 0 ? "%\(server.scopeId)" : ""
            return "[\(host)\(scope)]:\(port)"
        }
        return "\(host):\(port)"
    }
}
