import Foundation
import Handset

// Simple platform services for tests, the Linux QA path and apps that start without one (the
// iOS shell brings the real ones: Keychain, CNContactStore, PushKit, AVAudioEngine).

/// Secrets kept in memory (never on disk). Thread-safe.
public final class MemorySecretStore: SecretStore, @unchecked Sendable {
    private let lock = NSLock()
    private var secrets: [String: StoredSecret]

    /// A store holding `secrets` (keyed by account id).
    public init(_ secrets: [String: StoredSecret] = [:]) { self.secrets = secrets }

    /// The secret stored for `accountId`, if any.
    public func getSecret(accountId: String) -> StoredSecret? {
        lock.lock()
        defer { lock.unlock() }
        return secrets[accountId]
    }

    /// Stores (replaces) the secret of `accountId`.
    public func setSecret(accountId: String, secret: StoredSecret) {
        lock.lock()
        defer { lock.unlock() }
        secrets[accountId] = secret
    }

    /// Forgets the secret of `accountId`.
    public func deleteSecret(accountId: String) {
        lock.lock()
        defer { lock.unlock() }
        secrets[accountId] = nil
    }
}

/// A fixed address book.
public final class StaticContactsSource: ContactsSource, @unchecked Sendable {
    private let list: [Contact]
    /// An address book holding `contacts`.
    public init(_ contacts: [Contact] = []) { list = contacts }
    /// The contacts given at creation.
    public func contacts() -> [Contact] { list }
}

/// A fixed push token (or none).
public final class StaticPushTokenProvider: PushTokenProvider, @unchecked Sendable {
    private let token: PushToken?
    /// A provider that always gives `token` (nil: no push).
    public init(_ token: PushToken? = nil) { self.token = token }
    /// The token given at creation.
    public func pushToken() -> PushToken? { token }
}

/// Platform audio that is never used: for phones whose calls use `AudioConfig.wav` or
/// `.silence`. Records what it was asked, for tests.
public final class NoPlatformAudio: AudioDeviceFactory, @unchecked Sendable {
    private let lock = NSLock()
    private var log: [String] = []

    /// A factory that has been asked nothing yet.
    public init() {}

    /// What the core asked, in order: "start ID" and "stop ID".
    public var requests: [String] {
        lock.lock()
        defer { lock.unlock() }
        return log
    }

    /// Records the request; moves no audio.
    public func startAudio(callId: UInt64, audio: ForeignAudio) {
        lock.lock()
        log.append("start \(callId)")
        lock.unlock()
    }

    /// Records the request.
    public func stopAudio(callId: UInt64) {
        lock.lock()
        log.append("stop \(callId)")
        lock.unlock()
    }
}
