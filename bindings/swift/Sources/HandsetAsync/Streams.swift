import Foundation
import Handset

// AsyncStream adapters over the core's subscriptions (listener + TaskHandle).
//
// Every subscription sends its current value first, then every change (phone events have no
// current value: only what happens after the stream was made). The stream owns the
// TaskHandle: when the consumer stops iterating (breaks out, its task is cancelled, or the
// stream is deallocated) the handle is cancelled and the core stops calling the listener.
// Streams buffer without limit: the core never blocks on a slow consumer, and the updates are
// small and few.

/// One item of a call subscription: the call, its state, and the update that led there
/// (nil for the current value sent first).
public struct CallEvent: @unchecked Sendable {
    /// The call this item is about.
    public let call: Call
    /// Its state after `update`.
    public let state: CallState
    /// What changed; nil for the current state sent first.
    public let update: CallUpdate?

    /// An item of a call subscription.
    public init(call: Call, state: CallState, update: CallUpdate?) {
        self.call = call
        self.state = state
        self.update = update
    }
}

extension CallState {
    /// Whether the call is over.
    public var isEnded: Bool {
        if case .ended = self { return true }
        return false
    }

    /// Whether the call is answered.
    public var isActive: Bool {
        if case .active = self { return true }
        return false
    }
}

extension RegistrationState {
    /// Whether the binding is in place.
    public var isRegistered: Bool {
        if case .registered = self { return true }
        return false
    }
}

/// A stream over one subscription, and its handle (exposed for tests and for callers that
/// want to check it ended).
struct Subscription<Element> {
    let stream: AsyncStream<Element>
    let handle: TaskHandle

    /// `subscribe` is called with a `yield` function for the listener and returns the core's
    /// TaskHandle; `finishAfter` ends the stream after an element (e.g. a call's `Ended`).
    static func start(
        finishAfter: @escaping @Sendable (Element) -> Bool = { _ in false },
        _ subscribe: (@escaping @Sendable (Element) -> Void) throws -> TaskHandle
    ) rethrows -> Subscription<Element> {
        let (stream, continuation) = AsyncStream<Element>.makeStream(bufferingPolicy: .unbounded)
        let handle = try subscribe { element in
            continuation.yield(element)
            if finishAfter(element) { continuation.finish() }
        }
        // The closure keeps the handle alive as long as the stream is; a dropped handle would
        // end the subscription at once.
        continuation.onTermination = { _ in handle.cancel() }
        return Subscription(stream: stream, handle: handle)
    }
}

private final class RegistrationForwarder: RegistrationListener {
    let yield: @Sendable (RegistrationState) -> Void
    init(_ yield: @escaping @Sendable (RegistrationState) -> Void) { self.yield = yield }
    func onRegistration(accountId: String, state: RegistrationState) { yield(state) }
}

private final class CallForwarder: CallListener {
    let yield: @Sendable (CallEvent) -> Void
    init(_ yield: @escaping @Sendable (CallEvent) -> Void) { self.yield = yield }
    func onCall(call: Call, state: CallState, update: CallUpdate?) {
        yield(CallEvent(call: call, state: state, update: update))
    }
}

private final class CallScreenForwarder: CallScreenListener {
    let yield: @Sendable (CallScreenDecision) -> Void
    init(_ yield: @escaping @Sendable (CallScreenDecision) -> Void) { self.yield = yield }
    func onCallScreen(decision: CallScreenDecision) { yield(decision) }
}

private final class AudioRouteForwarder: AudioRouteListener {
    let yield: @Sendable (AudioRouteState) -> Void
    init(_ yield: @escaping @Sendable (AudioRouteState) -> Void) { self.yield = yield }
    func onAudioRoutes(state: AudioRouteState) { yield(state) }
}

private final class PhoneEventForwarder: PhoneEventListener {
    let yield: @Sendable (PhoneEvent) -> Void
    init(_ yield: @escaping @Sendable (PhoneEvent) -> Void) { self.yield = yield }
    func onEvent(event: PhoneEvent) { yield(event) }
}

extension Account {
    /// The registration state: the current one first, then every change.
    public func registrationUpdates() -> AsyncStream<RegistrationState> {
        registrationSubscription().stream
    }

    func registrationSubscription() -> Subscription<RegistrationState> {
        Subscription.start { yield in subscribeRegistration(listener: RegistrationForwarder(yield)) }
    }
}

extension Call {
    /// This call's states: the current one first (`update` nil), then every update; the
    /// stream finishes after `Ended`.
    public func updates() throws -> AsyncStream<CallEvent> {
        try updatesSubscription().stream
    }

    func updatesSubscription() throws -> Subscription<CallEvent> {
        try Subscription.start(finishAfter: { $0.state.isEnded }) { yield in
            try subscribe(listener: CallForwarder(yield))
        }
    }
}

extension HandsetPhone {
    /// Every call of the phone, incoming ones included: the live calls' current states first,
    /// then every update. It never finishes on its own: stop iterating to end it.
    public func callUpdates() -> AsyncStream<CallEvent> {
        callsSubscription().stream
    }

    func callsSubscription() -> Subscription<CallEvent> {
        Subscription.start { yield in subscribeCalls(listener: CallForwarder(yield)) }
    }

    /// What the call screen should do (proximity lock, keep-on, rotation, which call UI to
    /// show): the current decision first, then every change. The decisions are the core's
    /// screen rules over the phone's calls and the inputs reported with
    /// `updateCallScreen(input:)`. It never finishes on its own: stop iterating to end it.
    public func callScreenUpdates() -> AsyncStream<CallScreenDecision> {
        callScreenSubscription().stream
    }

    func callScreenSubscription() -> Subscription<CallScreenDecision> {
        Subscription.start { yield in subscribeCallScreen(listener: CallScreenForwarder(yield)) }
    }

    /// The audio routes (available, and the current call's): the current state first, then
    /// every change. It never finishes on its own: stop iterating to end it.
    public func audioRouteUpdates() -> AsyncStream<AudioRouteState> {
        Subscription.start { yield in
            subscribeAudioRoutes(listener: AudioRouteForwarder(yield))
        }.stream
    }

    /// Phone-wide events as they happen: push reports ending before their INVITE, blocked
    /// callers, removed accounts, voicemail counts. There is no current value, so the
    /// subscription starts when this returns (not when iteration starts): an event that
    /// happens in between is buffered, not lost. It never finishes on its own: stop iterating
    /// to end it.
    public func phoneEvents() -> AsyncStream<PhoneEvent> {
        eventsSubscription().stream
    }

    func eventsSubscription() -> Subscription<PhoneEvent> {
        Subscription.start { yield in subscribeEvents(listener: PhoneEventForwarder(yield)) }
    }
}
