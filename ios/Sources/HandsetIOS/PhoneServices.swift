import Foundation
import Handset
import HandsetAsync
import HandsetIOSCore

// Platform services handed to the HandsetPhone constructor, written against small seams so
// their logic runs on Linux; the Apple files plug CNContactStore, AVAudioEngine and UIDevice in.

/// Moves one call's PCM between the device and the core's `ForeignAudio` (48 kHz mono s16le).
/// On iOS: `CallAudioEngine` (AVAudioEngine). Called only while the audio session is active.
public protocol CallAudioIO: AnyObject {
    /// Start moving `callId`'s PCM through `audio`.
    func start(callId: UInt64, audio: ForeignAudio)
    /// Stop `callId`'s audio.
    func stop(callId: UInt64)
}

/// The phone's `AudioDeviceFactory`: the core's start/stop requests go through the
/// `AudioActivationGate`, so media starts only once CallKit activated the session
/// (`provider(_:didActivate:)` → `sessionActivated()`).
public final class GatedAudioDeviceFactory: AudioDeviceFactory, @unchecked Sendable {
    /// The gate the requests wait in (exposed for tests and diagnostics).
    public let gate = AudioActivationGate<ForeignAudio>()
    private let io: CallAudioIO

    /// A factory whose media runs on `io`.
    public init(io: CallAudioIO) { self.io = io }

    /// The core wants `callId`'s audio: started now if the session is active, else at
    /// `sessionActivated()`.
    public func startAudio(callId: UInt64, audio: ForeignAudio) {
        apply(gate.requestStart(callId: callId, handle: audio))
    }

    /// The core ended `callId`'s audio.
    public func stopAudio(callId: UInt64) {
        apply(gate.requestStop(callId: callId))
    }

    /// `provider(_:didActivate:)`.
    public func sessionActivated() { apply(gate.sessionActivated()) }

    /// `provider(_:didDeactivate:)` and `providerDidReset`.
    public func sessionDeactivated() { apply(gate.sessionDeactivated()) }

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

    /// A source that calls `read` each time the core asks.
    public init(read: @escaping () -> [ContactRecord]) { self.read = read }

    /// The records `read` gives, imported (`ContactImport`).
    public func contacts() -> [Contact] {
        ContactImport.contacts(from: read()).map(Contact.init)
    }
}

/// Runs the core commands that CallKit's user actions map to.
public enum CoreCommandRunner {
    /// Performs `command` on `phone`. Returns false when the call is gone (CallKit then fails
    /// the action); for `.declinePushReport`, whether the report was still waiting for its
    /// INVITE (`CallKitCoordinator.declineAnswered` decides what follows).
    public static func perform(_ command: CoreCommand, on phone: HandsetPhone) async throws -> Bool {
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
            guard let c = call(id) else { return false }
            try await c.setMuted(muted: muted)
        case .declinePushReport(let reportId):
            return try phone.declinePushReport(reportId: reportId.uuidString)
        }
        return true
    }
}

/// The phone's `AudioRoutePlatform` over a session reader and a route executor (AVAudioSession
/// on iOS: `AudioSessionRoutes`): lists the routes the session offers (`AudioRoutePlan`) and
/// executes the core's choice. The core picks the route; this only carries it out.
public final class PlannedAudioRoutes: AudioRoutePlatform, @unchecked Sendable {
    private let read: () -> AudioSessionRouteState
    private let execute: (AudioRouteSelection) throws -> Void

    /// Routes over `read` (the session's state now) and `execute` (applies a selection).
    public init(
        read: @escaping () -> AudioSessionRouteState, execute: @escaping (AudioRouteSelection) throws -> Void
    ) {
        self.read = read
        self.execute = execute
    }

    /// The routes the session offers now.
    public func availableRoutes() -> [AudioRoute] {
        AudioRoutePlan.availableRoutes(read()).map(AudioRoute.init)
    }

    /// Routes call audio to `route`; throws when the session cannot (it is not available, or
    /// the session refused).
    public func selectRoute(route: AudioRoute) throws {
        guard let selection = AudioRoutePlan.selection(for: CoreAudioRoute(route), in: read()) else {
            throw PlatformError.Failed(reason: "audio route \(route) is not available")
        }
        do {
            try execute(selection)
        } catch let error as PlatformError {
            throw error
        } catch {
            throw PlatformError.Failed(reason: "audio route \(route): \(error)")
        }
    }
}

/// Follows the core's call screen decisions and applies them (`ScreenPolicy`): proximity
/// monitoring from `screenOffByProximity`, the idle timer from `keepScreenOn`. When
/// monitoring goes off, the core is told the sensor reads nothing any more
/// (`CallScreenInput.proximity(.unknown)`). On iOS `CallScreenMonitor` plugs UIKit in; the
/// sensor's readings go back through `phone.updateCallScreen(input: .proximity(...))`.
public final class CallScreenDriver: @unchecked Sendable {
    private let lock = NSLock()
    private var task: Task<Void, Never>?

    /// A driver that follows nothing yet.
    public init() {}

    /// Starts following `phone` (ends a previous follow first): `apply` runs on the main actor
    /// with each `.proximityMonitoring` and `.idleTimerDisabled` change, the current decision's
    /// first; `onDecision`, when given, gets every decision after that (rotation, which call UI
    /// to show are the app's to apply).
    public func start(
        phone: HandsetPhone, apply: @escaping @MainActor (ScreenEffect) -> Void,
        onDecision: (@MainActor (CoreScreenDecision) -> Void)? = nil
    ) {
        let updates = phone.callScreenUpdates()
        let task = Task {
            var policy = ScreenPolicy()
            for await decision in updates {
                let core = CoreScreenDecision(decision)
                for effect in policy.update(core) {
                    if effect == .proximityUnknown {
                        phone.updateCallScreen(input: .proximity(proximity: .unknown))
                    } else {
                        await apply(effect)
                    }
                }
                await onDecision?(core)
            }
        }
        lock.lock()
        let previous = self.task
        self.task = task
        lock.unlock()
        previous?.cancel()
    }

    /// Stops following (ends the core subscription). What was set stays set: the caller
    /// turns it off (`CallScreenMonitor.stop()` does).
    public func stop() {
        lock.lock()
        let task = self.task
        self.task = nil
        lock.unlock()
        task?.cancel()
    }

    deinit { task?.cancel() }
}
