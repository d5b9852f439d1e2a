import Foundation
import Handset

// async/await on top of the streams: wait for a registration or call state, with a timeout.
// (The core's own operations — addAccount, call, answer, hangup, register... — are already
// `async throws` in the generated code.)

/// Errors of the adapters themselves (the core's are `HandsetError`).
public enum HandsetAsyncError: Error, Equatable, CustomStringConvertible {
    /// Nothing matched within the time allowed.
    case timedOut(what: String, seconds: Double)
    /// The subscription ended before anything matched (the call ended, the phone stopped).
    case ended(what: String)
    /// The registration failed and the core will not retry it on its own.
    case registrationFailed(RegistrationFailure, message: String)

    /// The error in words.
    public var description: String {
        switch self {
        case .timedOut(let what, let s): return "no \(what) within \(s) s"
        case .ended(let what): return "ended before \(what)"
        case .registrationFailed(let reason, let message): return "registration failed: \(message) (\(reason))"
        }
    }
}

/// The first element of `stream` that satisfies `predicate`, within `seconds`. Stops
/// iterating (and so ends the subscription) when it returns.
public func firstMatch<Element: Sendable>(
    _ stream: AsyncStream<Element>, what: String, within seconds: Double,
    where predicate: @escaping @Sendable (Element) throws -> Bool
) async throws -> Element {
    try await withThrowingTaskGroup(of: Element?.self) { group in
        group.addTask {
            for await element in stream where try predicate(element) {
                return element
            }
            throw HandsetAsyncError.ended(what: what)
        }
        group.addTask {
            try await Task.sleep(nanoseconds: UInt64(seconds * 1_000_000_000))
            throw HandsetAsyncError.timedOut(what: what, seconds: seconds)
        }
        defer { group.cancelAll() }
        while true {
            if let found = try await group.next() ?? nil { return found }
        }
    }
}

extension Account {
    /// Waits until the account is registered; throws when the registration fails for good
    /// (no retry scheduled, e.g. bad credentials) or nothing happens within `seconds`.
    @discardableResult
    public func registered(within seconds: Double = 10) async throws -> RegistrationState {
        try await firstMatch(registrationUpdates(), what: "registration", within: seconds) { state in
            if case .failed(let reason, let message, _, let retryInMs) = state, retryInMs == nil {
                throw HandsetAsyncError.registrationFailed(reason, message: message)
            }
            return state.isRegistered
        }
    }

    /// Waits for the first registration state satisfying `predicate`.
    public func registrationState(
        within seconds: Double = 10, where predicate: @escaping @Sendable (RegistrationState) -> Bool
    ) async throws -> RegistrationState {
        try await firstMatch(registrationUpdates(), what: "registration state", within: seconds, where: predicate)
    }
}

extension Call {
    /// Waits for the first state satisfying `predicate` (the current state counts).
    public func state(
        within seconds: Double = 10, where predicate: @escaping @Sendable (CallState) -> Bool
    ) async throws -> CallState {
        try await firstMatch(try updates(), what: "call state", within: seconds) { predicate($0.state) }
            .state
    }

    /// Waits until the call is answered; throws `ended` if it ends first.
    @discardableResult
    public func active(within seconds: Double = 30) async throws -> CallState {
        try await state(within: seconds) { $0.isActive }
    }

    /// Waits until the call is over and returns its final state.
    @discardableResult
    public func ended(within seconds: Double = 30) async throws -> CallState {
        try await state(within: seconds) { $0.isEnded }
    }
}

extension HandsetPhone {
    /// Waits for the next incoming call (a live one counts).
    public func incomingCall(within seconds: Double = 30) async throws -> Call {
        try await firstMatch(callUpdates(), what: "incoming call", within: seconds) {
            $0.state == .incoming
        }.call
    }
}
