import Foundation

// The core's call screen decision as the iOS glue needs it, free of the FFI types (HandsetIOS
// converts the generated `CallScreenDecision` into these, FfiConversions.swift), and what the
// glue sets on iOS from it. The rules themselves live in the core (core/phone `screen`).

/// Where call audio is heard (the core's `AudioRoute`).
public enum CoreAudioRoute: Equatable, Sendable {
    /// The receiver, at the ear.
    case earpiece
    /// The loudspeaker.
    case speaker
    /// Wired headphones or headset.
    case wiredHeadset
    /// A Bluetooth headset or car kit.
    case bluetooth
}

/// How to present an incoming call (the core's `IncomingUi`).
public enum CoreIncomingUi: Equatable, Sendable {
    /// No incoming call.
    case hidden
    /// A banner (CallKit shows one while the app is in the background on an unlocked device).
    case notification
    /// The full-screen ringing UI (CallKit's lock-screen UI, or the app's own ringing screen).
    case fullScreen
}

/// What the call screen must do now, as the core decided (the FFI's `CallScreenDecision`).
public struct CoreScreenDecision: Equatable, Sendable {
    /// The system may turn the screen off while something is near: on iOS,
    /// `UIDevice.isProximityMonitoringEnabled`.
    public var screenOffByProximity: Bool
    /// The proximity lock is wanted and the sensor reads near: devices that cannot turn the
    /// screen off by proximity draw black and ignore touches instead.
    public var blankScreen: Bool
    /// Keep the screen on: on iOS, `UIApplication.isIdleTimerDisabled`.
    public var keepScreenOn: Bool
    /// The call screens may follow the device's rotation; otherwise portrait.
    public var rotationAllowed: Bool
    /// The in-call screen is the app's top screen.
    public var showInCallUi: Bool
    /// How to present an incoming call.
    public var showIncomingUi: CoreIncomingUi

    /// A decision with every field given; the defaults are the core's idle decision.
    public init(
        screenOffByProximity: Bool = false, blankScreen: Bool = false, keepScreenOn: Bool = false,
        rotationAllowed: Bool = true, showInCallUi: Bool = false, showIncomingUi: CoreIncomingUi = .hidden
    ) {
        self.screenOffByProximity = screenOffByProximity
        self.blankScreen = blankScreen
        self.keepScreenOn = keepScreenOn
        self.rotationAllowed = rotationAllowed
        self.showInCallUi = showInCallUi
        self.showIncomingUi = showIncomingUi
    }

    /// No call: the core leaves the screen alone and only allows rotation.
    public static let idle = CoreScreenDecision()
}

/// One change the iOS glue makes for a new decision.
public enum ScreenEffect: Equatable, Sendable {
    /// Set `UIDevice.current.isProximityMonitoringEnabled`. While it is on, iOS reads the
    /// sensor and turns the screen off by itself when something is near; the readings go back
    /// to the core as `CallScreenInput.proximity`.
    case proximityMonitoring(Bool)
    /// Set `UIApplication.shared.isIdleTimerDisabled` (keep the screen on).
    case idleTimerDisabled(Bool)
    /// Tell the core the sensor is no longer read (`CallScreenInput.proximity(.unknown)`), so
    /// a stale "near" cannot blank a later call.
    case proximityUnknown
}

/// Applies the core's call screen decisions on iOS: proximity monitoring follows
/// `screenOffByProximity`, the idle timer follows `keepScreenOn`. Only changes are returned,
/// so the glue does not touch UIKit for decisions that change nothing it owns (rotation and
/// which call UI to show are the app's, from the same decisions).
///
/// The core already asks for the proximity lock for the whole of an earpiece call, before the
/// sensor reads near (iOS reads the sensor only while monitoring is on, so monitoring only
/// once the phone is at the ear would never start).
public struct ScreenPolicy: Equatable, Sendable {
    /// Whether proximity monitoring is on, as last set.
    public private(set) var proximityMonitoring = false
    /// Whether the idle timer is disabled, as last set.
    public private(set) var idleTimerDisabled = false

    /// Everything off: what iOS has before the first decision.
    public init() {}

    /// The effects that bring iOS in line with `decision`, in order.
    public mutating func update(_ decision: CoreScreenDecision) -> [ScreenEffect] {
        var effects: [ScreenEffect] = []
        if decision.screenOffByProximity != proximityMonitoring {
            proximityMonitoring = decision.screenOffByProximity
            effects.append(.proximityMonitoring(proximityMonitoring))
            if !proximityMonitoring { effects.append(.proximityUnknown) }
        }
        if decision.keepScreenOn != idleTimerDisabled {
            idleTimerDisabled = decision.keepScreenOn
            effects.append(.idleTimerDisabled(idleTimerDisabled))
        }
        return effects
    }

    /// The effects that undo everything set so far (the glue stops following the core).
    public mutating func reset() -> [ScreenEffect] {
        update(CoreScreenDecision(rotationAllowed: true))
    }
}
