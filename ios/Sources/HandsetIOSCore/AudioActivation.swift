import Foundation

/// The `AVAudioSession` settings of a call: category playAndRecord, mode voiceChat (echo
/// cancellation, voice processing). CallKit activates the session; the glue only configures
/// it, and never calls `setActive(true)` itself.
public struct AudioSessionPlan: Equatable, Sendable {
    /// `AVAudioSession.Category`: microphone and speaker at once.
    public enum Category: Equatable, Sendable {
        /// `.playAndRecord`.
        case playAndRecord
    }
    /// `AVAudioSession.Mode`: voice processing (echo cancellation, AGC) tuned for VoIP.
    public enum Mode: Equatable, Sendable {
        /// `.voiceChat`.
        case voiceChat
    }

    /// The session category.
    public var category = Category.playAndRecord
    /// The session mode.
    public var mode = Mode.voiceChat
    /// Bluetooth hands-free devices may carry the call (`.allowBluetooth`).
    public var allowBluetooth = true
    /// The preferred I/O buffer (20 ms: one media frame).
    public var preferredIOBufferDuration = 0.02
    /// The core's PCM rate.
    public var preferredSampleRate = 48_000.0

    /// The call plan (same as `call`).
    public init() {}

    /// The settings for a call.
    public static let call = AudioSessionPlan()
}

/// Starts call media only once CallKit has activated the audio session
/// (`provider(_:didActivate:)`), and stops it at `didDeactivate` or when the call ends.
///
/// The core asks for a call's audio (`AudioDeviceFactory.start_audio`) when the call is
/// answered, which on iOS comes before CallKit hands over the session; starting the audio
/// engine then fails or is silenced by the system. So requests wait here for the session.
/// `Handle` is the core's per-call PCM handle (`ForeignAudio`). Thread-safe.
public final class AudioActivationGate<Handle>: @unchecked Sendable {
    /// What the glue must do with the platform audio.
    public enum Effect {
        /// Start moving PCM for this call (the session is active).
        case start(callId: UInt64, handle: Handle)
        /// Stop this call's audio.
        case stop(callId: UInt64)
    }

    private let lock = NSLock()
    private var sessionActive = false
    private var requested: [UInt64: Handle] = [:]
    private var running: Set<UInt64> = []

    /// A gate with no session and no requests.
    public init() {}

    /// Whether CallKit's session is active now.
    public var isSessionActive: Bool { lock.locked { sessionActive } }

    /// The core wants `callId`'s audio.
    public func requestStart(callId: UInt64, handle: Handle) -> [Effect] {
        lock.locked {
            requested[callId] = handle
            guard sessionActive, !running.contains(callId) else { return [] }
            running.insert(callId)
            return [.start(callId: callId, handle: handle)]
        }
    }

    /// The core ended `callId`'s audio.
    public func requestStop(callId: UInt64) -> [Effect] {
        lock.locked {
            requested[callId] = nil
            return running.remove(callId) != nil ? [.stop(callId: callId)] : []
        }
    }

    /// `provider(_:didActivate:)`: start everything that waited.
    public func sessionActivated() -> [Effect] {
        lock.locked {
            sessionActive = true
            return requested.keys.sorted().compactMap { id in
                guard !running.contains(id), let h = requested[id] else { return nil }
                running.insert(id)
                return .start(callId: id, handle: h)
            }
        }
    }

    /// `provider(_:didDeactivate:)` (or a reset): stop everything; what is still requested
    /// starts again at the next activation (a call resumed after an interruption).
    public func sessionDeactivated() -> [Effect] {
        lock.locked {
            sessionActive = false
            let stopped = running.sorted().map { Effect.stop(callId: $0) }
            running.removeAll()
            return stopped
        }
    }
}

extension NSLock {
    fileprivate func locked<T>(_ body: () throws -> T) rethrows -> T {
        lock()
        defer { unlock() }
        return try body()
    }
}
