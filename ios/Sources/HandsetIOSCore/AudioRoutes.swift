import Foundation

// The call audio routes over AVAudioSession, free of AVFoundation so the mapping is tested on
// Linux. The core decides which route a call uses (its `AudioRoutePlatform` rules); the glue
// lists what the session offers and executes the core's choice. HandsetIOS reads the session
// into an `AudioSessionRouteState` and applies `AudioRouteSelection`s (AudioSession.swift).

/// `AVAudioSession.Port`: the kinds of ports the route mapping tells apart.
public enum AudioPortKind: Equatable, Sendable {
    /// `.builtInReceiver`: the earpiece.
    case builtInReceiver
    /// `.builtInSpeaker`: the loudspeaker.
    case builtInSpeaker
    /// `.builtInMic`: the device's microphone.
    case builtInMic
    /// `.headphones`: wired headphones (output).
    case headphones
    /// `.headsetMic`: a wired headset's microphone.
    case headsetMic
    /// `.lineOut`: a line-level output (dock, cable).
    case lineOut
    /// `.bluetoothHFP`: a Bluetooth hands-free device (input and output).
    case bluetoothHFP
    /// `.bluetoothA2DP`: Bluetooth audio for music (output only).
    case bluetoothA2DP
    /// `.bluetoothLE`: a Bluetooth LE audio device.
    case bluetoothLE
    /// `.carAudio`: CarPlay.
    case carAudio
    /// Anything else (AirPlay, HDMI, USB...): no call route of its own.
    case other
}

/// One port of the session's route, as `AVAudioSessionPortDescription` describes it.
public struct AudioPort: Equatable, Sendable {
    /// Its kind (`portType`).
    public var kind: AudioPortKind
    /// `uid`: how `setPreferredInput` finds it again.
    public var uid: String

    /// A port of `kind` with `uid`.
    public init(kind: AudioPortKind, uid: String) {
        self.kind = kind
        self.uid = uid
    }
}

/// What the audio session says about the routes now.
public struct AudioSessionRouteState: Equatable, Sendable {
    /// `currentRoute.outputs`: where audio goes now.
    public var outputs: [AudioPort]
    /// `availableInputs`: the microphones that can be picked (empty until the session's
    /// category records, i.e. before the call configures playAndRecord).
    public var availableInputs: [AudioPort]
    /// The device has an earpiece (an iPhone; not an iPad).
    public var hasEarpiece: Bool

    /// A session state.
    public init(outputs: [AudioPort], availableInputs: [AudioPort], hasEarpiece: Bool) {
        self.outputs = outputs
        self.availableInputs = availableInputs
        self.hasEarpiece = hasEarpiece
    }
}

/// How to route call audio to one route on AVAudioSession.
public struct AudioRouteSelection: Equatable, Sendable {
    /// `overrideOutputAudioPort(.speaker)` when true, `.none` when false.
    public var speakerOverride: Bool
    /// The `uid` of the input to pass to `setPreferredInput` (its output follows on iOS);
    /// nil: clear the preference.
    public var preferredInputUID: String?

    /// A selection.
    public init(speakerOverride: Bool, preferredInputUID: String?) {
        self.speakerOverride = speakerOverride
        self.preferredInputUID = preferredInputUID
    }
}

/// `AVAudioSession.RouteChangeReason`.
public enum AudioRouteChangeReason: Equatable, Sendable {
    /// `.newDeviceAvailable`: a headset was plugged in, Bluetooth connected.
    case newDeviceAvailable
    /// `.oldDeviceUnavailable`: a headset was unplugged, Bluetooth went away.
    case oldDeviceUnavailable
    /// `.categoryChange`: the category changed (a call configured playAndRecord).
    case categoryChange
    /// `.override`: the output was overridden (the glue's own speaker selection).
    case override
    /// `.wakeFromSleep`.
    case wakeFromSleep
    /// `.noSuitableRouteForCategory`.
    case noSuitableRouteForCategory
    /// `.routeConfigurationChange`.
    case routeConfigurationChange
    /// `.unknown` or a reason added later.
    case unknown
}

/// The mapping between AVAudioSession's ports and the core's routes.
public enum AudioRoutePlan {
    /// The routes a call can use now, in the core's order (earpiece, speaker, wired headset,
    /// Bluetooth; the core sorts and picks): the earpiece on an iPhone unless a wired headset
    /// takes the audio (iOS then cannot play to the earpiece), the speaker always, a wired
    /// headset when its microphone is an input or headphones are the output, Bluetooth when a
    /// hands-free device (or CarPlay) is an input or the output.
    public static func availableRoutes(_ state: AudioSessionRouteState) -> [CoreAudioRoute] {
        let ports = state.availableInputs + state.outputs
        let wired = ports.contains { route(of: $0.kind) == .wiredHeadset }
        let bluetooth = ports.contains { route(of: $0.kind) == .bluetooth }
        var routes: [CoreAudioRoute] = []
        if state.hasEarpiece && !wired { routes.append(.earpiece) }
        routes.append(.speaker)
        if wired { routes.append(.wiredHeadset) }
        if bluetooth { routes.append(.bluetooth) }
        return routes
    }

    /// The route audio uses now (the first output's); nil when there is no output or it is
    /// none of the four (AirPlay, HDMI, USB...).
    public static func currentRoute(_ outputs: [AudioPort]) -> CoreAudioRoute? {
        outputs.first.flatMap { route(of: $0.kind) }
    }

    /// The route a port belongs to; nil for the built-in microphone and other ports.
    public static func route(of kind: AudioPortKind) -> CoreAudioRoute? {
        switch kind {
        case .builtInReceiver: return .earpiece
        case .builtInSpeaker: return .speaker
        case .headphones, .headsetMic, .lineOut: return .wiredHeadset
        case .bluetoothHFP, .bluetoothA2DP, .bluetoothLE, .carAudio: return .bluetooth
        case .builtInMic, .other: return nil
        }
    }

    /// How to route call audio to `route`; nil when the session cannot now (the route is not
    /// available). The speaker is the output override (with the built-in microphone); the
    /// others clear the override and prefer their input, whose output iOS then uses: the
    /// built-in microphone for the earpiece, the headset's microphone (else the built-in one,
    /// for headphones without one) for the wired headset, the hands-free input for Bluetooth.
    public static func selection(for route: CoreAudioRoute, in state: AudioSessionRouteState)
        -> AudioRouteSelection?
    {
        guard availableRoutes(state).contains(route) else { return nil }
        let builtInMic = state.availableInputs.first { $0.kind == .builtInMic }?.uid
        switch route {
        case .speaker:
            return AudioRouteSelection(speakerOverride: true, preferredInputUID: builtInMic)
        case .earpiece:
            return AudioRouteSelection(speakerOverride: false, preferredInputUID: builtInMic)
        case .wiredHeadset:
            let mic = state.availableInputs.first { $0.kind == .headsetMic }?.uid
            return AudioRouteSelection(speakerOverride: false, preferredInputUID: mic ?? builtInMic)
        case .bluetooth:
            let handsFree = state.availableInputs.first { $0.kind == .bluetoothHFP || $0.kind == .carAudio }
            return AudioRouteSelection(speakerOverride: false, preferredInputUID: handsFree?.uid)
        }
    }

    /// Whether a route change may have changed the set of available routes, so the core must
    /// read it again (`phone.audioRoutesChanged()`): every reason but the output override,
    /// which is the glue executing the core's own choice.
    public static func availabilityMayHaveChanged(_ reason: AudioRouteChangeReason) -> Bool {
        reason != .override
    }
}
