#if canImport(resolv) && canImport(Network)
import Foundation
import Handset
import HandsetIOSCore
import Network
import resolv

/// Follows the network path for the core: the system's DNS servers (`res_9_getservers`) at
/// start and on every path change (an iOS app cannot read /etc/resolv.conf, so the core has
/// none of its own), then `networkChanged` when the preferred interface or the gateways changed
/// (`PathChanges` decides), so the accounts register again from the new address. Keep it as
/// long as the phone; `stop()` ends it.
public final class NetworkFollower: @unchecked Sendable {
    private let phone: HandsetPhone
    private let monitor = NWPathMonitor()
    private let queue = DispatchQueue(label: "dev.handset.network")
    /// Touched only on `queue`.
    private var changes = PathChanges()

    /// Follows the network for `phone` once started.
    public init(phone: HandsetPhone) {
        self.phone = phone
    }

    /// Starts following the network; the first path update passes the current servers.
    public func start() {
        monitor.pathUpdateHandler = { [weak self] path in self?.update(path) }
        monitor.start(queue: queue)
    }

    /// Stops following the network.
    public func stop() {
        monitor.cancel()
    }

    private func update(_ path: NWPath) {
        // The entries come from the system: a refusal changes nothing and needs no log. The
        // servers go first: registering again looks the PBX up through them.
        try? phone.setDnsServers(servers: DnsServers.entries(Self.systemServers()))
        let seen = NetworkPath(
            satisfied: path.status == .satisfied,
            interfaces: path.availableInterfaces.map(\.name),
            gateways: path.gateways.map { "\($0)" })
        if changes.update(seen) {
            try? phone.networkChanged()
        }
    }

    /// The resolver configuration's servers, read afresh.
    static func systemServers() -> [DnsServerAddress] {
        var state = __res_9_state()
        guard res_9_ninit(&state) == 0 else { return [] }
        defer { res_9_ndestroy(&state) }
        var found = [res_9_sockaddr_union](repeating: res_9_sockaddr_union(), count: Int(MAXNS))
        let count = Int(res_9_getservers(&state, &found, Int32(found.count)))
        return found.prefix(max(0, count)).compactMap(address)
    }

    private static func address(_ server: res_9_sockaddr_union) -> DnsServerAddress? {
        var server = server
        let family = Int32(server.sin.sin_family)
        let length: Int
        switch family {
        case AF_INET: length = MemoryLayout<sockaddr_in>.size
        case AF_INET6: length = MemoryLayout<sockaddr_in6>.size
        default: return nil
        }
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let status = withUnsafePointer(to: &server) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, socklen_t(length), &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
            }
        }
        guard status == 0 else { return nil }
        let text = String(decoding: host.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        if family == AF_INET6 {
            return DnsServerAddress(
                host: text, port: UInt16(bigEndian: server.sin6.sin6_port), scopeId: server.sin6.sin6_scope_id)
        }
        return DnsServerAddress(host: text, port: UInt16(bigEndian: server.sin.sin_port))
    }
}
#endif
