import Foundation
import Handset
import HandsetAsync
import HandsetIOSCore

// Platform services handed to the HandsetPhone constructor, written against small seams so
// their logic runs on Linux; the Apple files plug CNContactStore, AVAudioEngine and UIDevice in.

/// Moves one call's PCM between the device and the core's `ForeignAudio` (48 kHz mono s16le).
/// On iOS: `CallAudioEngine` (AVAudioEngine). Called only while the audio session is active.
public protocol CallAudioIO: AnyObject {
    func start(callId: UInt64, audio: ForeignAudio)
    func stop(callId: UInt64)
    /// CXSetMutedCallAction: send silence instead of the microphone.
    func setMuted(_ muted: Bool, callId: UInt64)
}

/// The phone's `AudioDeviceFactory`: the core's start/stop requests go through the
/// `AudioActivationGate`, so media starts only once CallKit activated the session
/// (`provider(_:didActivate:)` → `sessionActivated()`).
public final class GatedAudioDeviceFactory: AudioDeviceFactory, @unchecked Sendable {
    public let gate = AudioActivationGate<ForeignAudio>()
    private let io: CallAudioIO

    public init(io: CallAudioIO) { self.io = io }

    public func startAudio(callId: UInt64, audio: ForeignAudio) {
        apply(gate.requestStart(callId: callId, handle: audio))
    }

    public func stopAudio(callId: UInt64) {
        apply(gate.requestStop(callId: callId))
    }

    /// `provider(_:didActivate:)`.
    public func sessionActivated() { apply(gate.sessionActivated()) }

    /// `provider(_:didDeactivate:)` and `providerDidReset`.
    public func sessionDeactivated() { apply(gate.sessionDeactivated()) }

    public func setMuted(_ muted: Bool, callId: UInt64) { io.setMuted(muted, callId: callId) }

    private func apply(_ effects: [AudioActivationGate<ForeignAudio>.Effect]) {
        for effect in effects {
            switch effect {
            case .start(let id, let audio): io.start(callId: id, audio: audio)
            case .stop(let id): io.stop(callId: id)
            }
        }
    }
}

/// The phone's `ContactsSource` over an address-book reader (CNContactStore on iOS).
public final class ImportedContactsSource: ContactsSource, @unchecked Sendable {
    private let read: () -> [ContactRecord]

    public init(read: @escaping () -> [ContactRecord]) { self.read = read }

    public func contacts() -> [Contact] {
        ContactImport.contacts(from: read()).map(Contact.init)
    }
}

/// Runs the core commands that CallKit's user actions map to.
public enum CoreCommandRunner {
    /// Performs `command` on `phone`; mute goes to the audio factory. Returns false when the
    /// call is gone (CallKit then fails the action).
    public static func perform(
        _ command: CoreCommand, on phone: HandsetPhone, audio: GatedAudioDeviceFactory?
    ) async throws -> Bool {
        func call(_ id: UInt64) -> Call? { phone.calls().first { $0.id() == id } }
        switch command {
        case .answer(let id):
            guard let c = call(id) else { return false }
            try await c.answer(audio: .foreign, media: nil)
        case .reject(let id, let status):
            guard let c = call(id) else { return false }
            try await c.reject(status: status)
        case .hangup(let id):
            guard let c = call(id) else { return false }
            try await c.hangup()
        case .hold(let id, let onHold):
            guard let c = call(id) else { return false }
            try await c.hold(onHold: onHold)
        case .sendDtmf(let id, let digits):
            guard let c = call(id) else { return false }
            try await c.sendDtmf(digits: digits)
        case .mute(let id, let muted):
            guard call(id) != nil else { return false }
            audio?.setMuted(muted, callId: id)
        }
        return true
    }
}

/// Follows the core's call screen state and switches proximity monitoring (on iOS:
/// `UIDevice.current.isProximityMonitoringEnabled`); the sensor's readings go back through
/// `phone.setProximity(near:)`.
public final class ProximityDriver: @unchecked Sendable {
    private var policy = ProximityPolicy()
    private var task: Task<Void, Never>?

    public init() {}

    /// Starts following `phone`; `setMonitoring` runs on the main actor.
    public func start(
        phone: HandsetPhone, setMonitoring: @escaping @MainActor (Bool) -> Void
    ) {
        task?.cancel()
        let updates = phone.callScreenUpdates()
        task = Task { [weak self] in
            for await state in updates {
                guard let self else { return }
                if let on = self.policy.update(CoreScreenState(state)) {
                    await setMonitoring(on)
                }
            }
        }
    }

    /// Stops following (ends the core subscription).
    public func stop() {
        task?.cancel()
        task = nil
    }

    deinit { task?.cancel() }
}
