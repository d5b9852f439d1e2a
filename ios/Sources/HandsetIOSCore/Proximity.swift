import Foundation

/// Where call audio is heard (the core's `AudioRoute`).
public enum CoreAudioRoute: Equatable, Sendable {
    case earpiece, speaker, wiredHeadset, bluetooth
}

/// The core's call screen state (`CallScreenState`).
public struct CoreScreenState: Equatable, Sendable {
    public var inCall: Bool
    public var route: CoreAudioRoute
    public var proximityNear: Bool
    /// The core's verdict: the screen should be off now (in a call, on the earpiece, near).
    public var screenOff: Bool

    public init(inCall: Bool, route: CoreAudioRoute, proximityNear: Bool, screenOff: Bool) {
        self.inCall = inCall
        self.route = route
        self.proximityNear = proximityNear
        self.screenOff = screenOff
    }
}

/// Drives `UIDevice.current.isProximityMonitoringEnabled` from the core's screen state.
///
/// On iOS the system blanks the screen by itself while monitoring is on and the sensor reads
/// near, and the sensor is only read while monitoring is on. So monitoring must be on whenever
/// the core *could* turn the screen off (a call on the earpiece), not only when `screenOff`
/// already holds: otherwise the sensor is never read, `set_proximity(near)` never comes, and
/// `screenOff` never becomes true. The sensor's readings go back to the core through
/// `set_proximity`.
public struct ProximityPolicy: Equatable, Sendable {
    private(set) public var monitoring = false

    public init() {}

    /// Whether monitoring should be on for `state`.
    public static func monitoringEnabled(for state: CoreScreenState) -> Bool {
        state.screenOff || (state.inCall && state.route == .earpiece)
    }

    /// The new `isProximityMonitoringEnabled` value when it must change, else nil.
    public mutating func update(_ state: CoreScreenState) -> Bool? {
        let wanted = Self.monitoringEnabled(for: state)
        guard wanted != monitoring else { return nil }
        monitoring = wanted
        return wanted
    }
}
