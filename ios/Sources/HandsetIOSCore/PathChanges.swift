import Foundation

/// What the glue reads from an `NWPath`: whether it can be used, the names of its interfaces in
/// the order the system prefers them, and its gateways.
public struct NetworkPath: Equatable, Sendable {
    /// `NWPath.status == .satisfied`.
    public var satisfied: Bool
    /// `NWPath.availableInterfaces` names (`en0`, `pdp_ip0`), preferred first.
    public var interfaces: [String]
    /// `NWPath.gateways`, as text.
    public var gateways: [String]

    /// A path as described.
    public init(satisfied: Bool, interfaces: [String], gateways: [String]) {
        self.satisfied = satisfied
        self.interfaces = interfaces
        self.gateways = gateways
    }
}

/// Decides when the network path changed enough that the core must register again from its new
/// address (`HandsetPhone.networkChanged`): another preferred interface (Wi-Fi ↔ cellular),
/// other gateways (another Wi-Fi), or a usable path after none. The first usable path is where
/// the phone starts (it registers anyway), and losing the path tells the core nothing: there is
/// nowhere to register from until one is back. Not thread-safe: feed it from the monitor's
/// queue.
public struct PathChanges: Sendable {
    private var last: NetworkPath?
    private var lost = false

    /// Nothing seen yet.
    public init() {}

    /// The monitor reports `path`; true when the core must be told.
    public mutating func update(_ path: NetworkPath) -> Bool {
        guard path.satisfied else {
            if last != nil { lost = true }
            return false
        }
        let changed: Bool
        if let previous = last {
            changed = lost || previous.interfaces.first != path.interfaces.first
                || previous.gateways != path.gateways
        } else {
            changed = false
        }
        last = path
        lost = false
        return changed
    }
}
