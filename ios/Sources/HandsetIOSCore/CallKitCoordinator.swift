import Foundation

/// `CXCallEndedReason`, one to one.
public enum CallEndedReasonKind: Equatable, Sendable {
    /// `.failed`: the call could not be set up or broke.
    case failed
    /// `.remoteEnded`: the other side hung up or refused.
    case remoteEnded
    /// `.unanswered`: nobody answered.
    case unanswered
    /// `.answeredElsewhere`: another of the user's devices answered.
    case answeredElsewhere
    /// `.declinedElsewhere`: another of the user's devices declined.
    case declinedElsewhere
}

/// What the glue tells CallKit (`CXProvider` report calls).
public enum CallKitAction: Equatable, Sendable {
    /// `reportNewIncomingCall(with:update:)`.
    case reportIncoming(uuid: UUID, handle: CallHandle, displayName: String?, hasVideo: Bool)
    /// `reportCall(with:updated:)`: better caller details than the push had.
    case update(uuid: UUID, handle: CallHandle, displayName: String?)
    /// `reportOutgoingCall(with:startedConnectingAt:)`.
    case outgoingStartedConnecting(uuid: UUID)
    /// `reportOutgoingCall(with:connectedAt:)`.
    case outgoingConnected(uuid: UUID)
    /// `reportCall(with:endedAt:reason:)`.
    case ended(uuid: UUID, reason: CallEndedReasonKind)
}

/// What the user did on the CallKit UI (the `CXProviderDelegate` perform-actions).
public enum CallKitUserAction: Equatable, Sendable {
    /// `CXAnswerCallAction`.
    case answer(UUID)
    /// `CXEndCallAction`: hang up, or decline a ringing call.
    case end(UUID)
    /// `CXSetHeldCallAction`: hold (true) or resume.
    case setHeld(UUID, Bool)
    /// `CXPlayDTMFCallAction` with its digits.
    case playDTMF(UUID, String)
    /// `CXSetMutedCallAction`: mute (true) or unmute.
    case setMuted(UUID, Bool)
}

/// What the glue asks the core (or the local audio) to do for a CallKit user action.
public enum CoreCommand: Equatable, Sendable {
    /// Answer a ringing incoming call.
    case answer(callId: UInt64)
    /// Decline a ringing incoming call (603 Decline: the user said no on this device).
    case reject(callId: UInt64, status: UInt16)
    /// Hang up (or cancel an outgoing call not answered yet).
    case hangup(callId: UInt64)
    /// Hold or resume.
    case hold(callId: UInt64, onHold: Bool)
    /// Send DTMF digits.
    case sendDtmf(callId: UInt64, digits: String)
    /// Mute or unmute the microphone (`Call.setMuted`): the core sends silence while muted.
    case mute(callId: UInt64, muted: Bool)
    /// Decline a call CallKit shows from a VoIP push whose INVITE has not arrived yet
    /// (`HandsetPhone.declinePushReport`): the core ends the report and refuses the INVITE
    /// with 603 if it still comes.
    case declinePushReport(reportId: UUID)
}

/// What to do with a `CXEndCallAction` once the core answered `declinePushReport`.
public enum DeclineFollowUp: Equatable, Sendable {
    /// Fulfill the action: the report is over (declined now, or already ended by the core).
    case fulfill
    /// The INVITE arrived meanwhile: run this command on its call instead, then fulfill.
    case run(CoreCommand)
}

/// Maps the core's call updates to CallKit reports, and CallKit's user actions back to core
/// commands. It only remembers which UUID stands for which call and what CallKit was told;
/// every call decision (state, end reason) comes from the core. Not thread-safe: use it from
/// one queue (the provider's delegate queue).
public final class CallKitCoordinator {
    private struct Entry {
        var uuid: UUID
        var direction: CoreCallDirection
        var state: CoreCallState
        var startedConnecting = false
        var connected = false
        var ended = false
    }

    /// A push report CallKit shows whose INVITE has not arrived.
    private enum PushReportState {
        /// Ringing on CallKit, waiting for its INVITE.
        case waiting
        /// The user declined it on CallKit; the core was asked to end it.
        case declining
    }

    private var calls: [UInt64: Entry] = [:]
    private var callByUUID: [UUID: UInt64] = [:]
    /// UUIDs CallKit already knows (reported from a push, or started by CXStartCallAction).
    private var knownToCallKit: Set<UUID> = []
    /// Push reports CallKit shows that no core call stands for yet.
    private var pushReports: [UUID: PushReportState] = [:]
    /// UUIDs of `CXStartCallAction`s whose core call has not been seen yet, oldest first.
    private var pendingOutgoing: [UUID] = []
    private let makeUUID: () -> UUID

    /// A coordinator that knows no call; `makeUUID` gives the UUIDs of calls no push announced.
    public init(makeUUID: @escaping () -> UUID = UUID.init) {
        self.makeUUID = makeUUID
    }

    /// The CallKit UUID of a core call, once the coordinator has seen it.
    public func uuid(forCall callId: UInt64) -> UUID? { calls[callId]?.uuid }

    /// The core call of a CallKit UUID.
    public func callId(for uuid: UUID) -> UInt64? { callByUUID[uuid] }

    /// CallKit already shows `uuid` (the app reported or requested it itself). Push reports go
    /// through `pushReported(_:)`, which also remembers that they wait for their INVITE.
    public func callKitKnows(_ uuid: UUID) {
        knownToCallKit.insert(uuid)
    }

    /// The reports of one VoIP push were given to CallKit (`PushPlan.actions`, inside the
    /// PushKit handler): CallKit knows their UUIDs, and a report not ended at once waits for
    /// its INVITE (declining it on CallKit then declines the push report).
    public func pushReported(_ actions: [CallKitAction]) {
        for action in actions {
            switch action {
            case .reportIncoming(let uuid, _, _, _):
                knownToCallKit.insert(uuid)
                if callByUUID[uuid] == nil { pushReports[uuid] = .waiting }
            case .ended(let uuid, _):
                pushReports[uuid] = nil
            case .update, .outgoingStartedConnecting, .outgoingConnected:
                break
            }
        }
    }

    /// Whether `uuid` is a push report CallKit shows whose INVITE has not arrived.
    public func isWaitingPushReport(_ uuid: UUID) -> Bool { pushReports[uuid] != nil }

    /// The core ended a push report before its INVITE came (`PhoneEvent.pushReportEnded`): the
    /// report CallKit must get. Nothing when CallKit does not show it (any more), when its
    /// call already arrived (the call's own updates end it), or when the user declined it on
    /// CallKit (`CXEndCallAction` already ended it there).
    public func pushReportEnded(_ uuid: UUID, reason: PushEndReason) -> [CallKitAction] {
        let state = pushReports.removeValue(forKey: uuid)
        guard knownToCallKit.contains(uuid), callByUUID[uuid] == nil else { return [] }
        knownToCallKit.remove(uuid)
        if reason == .declinedByUser && state == .declining { return [] }
        return [.ended(uuid: uuid, reason: reason.callKitReason ?? .remoteEnded)]
    }

    /// The core answered the `declinePushReport` of a `CXEndCallAction`: `wasWaiting` is its
    /// result (the report was still waiting for its INVITE). When it was not, the INVITE may
    /// have arrived meanwhile; its call is then declined like any ringing call.
    public func declineAnswered(reportId: UUID, wasWaiting: Bool) -> DeclineFollowUp {
        if !wasWaiting, callByUUID[reportId] != nil, let command = command(for: .end(reportId)) {
            return .run(command)
        }
        return .fulfill
    }

    /// CallKit performs a `CXStartCallAction(call: uuid)`: the next outgoing call the core
    /// reports is that one (its updates may arrive before `account.call` returns its id).
    public func expectOutgoing(uuid: UUID) {
        knownToCallKit.insert(uuid)
        pendingOutgoing.append(uuid)
    }

    /// `account.call` returned the core call of `CXStartCallAction(call: uuid)`.
    public func bindOutgoing(callId: UInt64, uuid: UUID) {
        knownToCallKit.insert(uuid)
        pendingOutgoing.removeAll { $0 == uuid }
        bind(callId: callId, uuid: uuid, direction: .outgoing, state: .calling)
    }

    /// The `CXStartCallAction` failed before the core had a call: forget it.
    public func outgoingFailed(uuid: UUID) {
        pendingOutgoing.removeAll { $0 == uuid }
    }

    /// The CallKit reports for one item of the core's call subscription.
    public func handle(_ event: CoreCallEvent) -> [CallKitAction] {
        var actions: [CallKitAction] = []
        var entry: Entry
        if let existing = calls[event.callId] {
            entry = existing
        } else {
            if event.state.isEnded && !event.reportId.map(knownToCallKit.contains).orFalse {
                return []  // never shown, already over: nothing to tell CallKit
            }
            if let reportId = event.reportId { pushReports[reportId] = nil }
            var uuid = event.reportId ?? makeUUID()
            if event.reportId == nil, event.direction == .outgoing, !pendingOutgoing.isEmpty {
                uuid = pendingOutgoing.removeFirst()
            }
            bind(callId: event.callId, uuid: uuid, direction: event.direction, state: event.state)
            entry = calls[event.callId]!
            let handle = CallHandle.from(address: event.remote)
            if event.direction == .incoming {
                if knownToCallKit.contains(uuid) {
                    // Reported from the push: the INVITE tells who really calls.
                    actions.append(.update(uuid: uuid, handle: handle, displayName: event.displayName))
                } else {
                    actions.append(
                        .reportIncoming(
                            uuid: uuid, handle: handle, displayName: event.displayName,
                            hasVideo: event.hasVideo))
                    knownToCallKit.insert(uuid)
                }
            }
        }
        if entry.ended { return actions }
        entry.state = event.state
        guard knownToCallKit.contains(entry.uuid) else {
            // An outgoing call placed around CallKit (not through CXStartCallAction): CallKit
            // never heard of it, so it is told nothing about it either.
            entry.ended = event.state.isEnded
            calls[event.callId] = entry
            return actions
        }
        switch event.state {
        case .incoming:
            break
        case .calling, .ringing, .earlyMedia:
            if entry.direction == .outgoing && !entry.startedConnecting {
                entry.startedConnecting = true
                actions.append(.outgoingStartedConnecting(uuid: entry.uuid))
            }
        case .active:
            if entry.direction == .outgoing && !entry.connected {
                if !entry.startedConnecting {
                    entry.startedConnecting = true
                    actions.append(.outgoingStartedConnecting(uuid: entry.uuid))
                }
                entry.connected = true
                actions.append(.outgoingConnected(uuid: entry.uuid))
            }
        case .ended(let reason):
            entry.ended = true
            if let kind = Self.endedReason(reason, direction: entry.direction) {
                actions.append(.ended(uuid: entry.uuid, reason: kind))
            }
        }
        calls[event.callId] = entry
        return actions
    }

    /// The reason CallKit is told for a call the core ended, or nil when CallKit ended it
    /// itself (the user hung up or declined on the CallKit UI, which goes through
    /// `CXEndCallAction` and so is already known).
    public static func endedReason(_ reason: CoreEndReason, direction: CoreCallDirection)
        -> CallEndedReasonKind?
    {
        switch reason {
        case .localHangup, .rejectedLocally:
            return nil
        case .remoteHangup:
            return .remoteEnded
        case .cancelled:
            // Incoming: the caller gave up before we answered. Outgoing: we cancelled.
            return direction == .incoming ? .unanswered : nil
        case .rejected(let status):
            switch status {
            case 408, 480, 487: return .unanswered  // no answer, unavailable, terminated
            case 486, 600, 603: return .remoteEnded  // busy, busy everywhere, declined
            default: return .failed
            }
        case .timeout, .networkError, .failed:
            return .failed
        }
    }

    /// The core command for a CallKit user action; nil for a UUID the coordinator does not
    /// know (CallKit then fails the action) or a call already over. Ending a push report whose
    /// INVITE has not come yet declines the report (`.declinePushReport`; answer the result
    /// with `declineAnswered(reportId:wasWaiting:)`).
    public func command(for action: CallKitUserAction) -> CoreCommand? {
        func entry(_ uuid: UUID) -> (UInt64, Entry)? {
            guard let id = callByUUID[uuid], let e = calls[id], !e.ended else { return nil }
            return (id, e)
        }
        switch action {
        case .answer(let uuid):
            guard let (id, e) = entry(uuid), e.direction == .incoming, e.state == .incoming else { return nil }
            return .answer(callId: id)
        case .end(let uuid):
            if callByUUID[uuid] == nil, pushReports[uuid] == .waiting {
                // Reported from a push; its INVITE has not come yet.
                pushReports[uuid] = .declining
                return .declinePushReport(reportId: uuid)
            }
            guard let (id, e) = entry(uuid) else { return nil }
            if e.direction == .incoming && e.state == .incoming {
                return .reject(callId: id, status: 603)
            }
            return .hangup(callId: id)
        case .setHeld(let uuid, let onHold):
            guard let (id, e) = entry(uuid), case .active = e.state else { return nil }
            return .hold(callId: id, onHold: onHold)
        case .playDTMF(let uuid, let digits):
            let valid = !digits.isEmpty && digits.allSatisfy { "0123456789*#ABCDabcd".contains($0) }
            guard valid, let (id, _) = entry(uuid) else { return nil }
            return .sendDtmf(callId: id, digits: digits)
        case .setMuted(let uuid, let muted):
            guard let (id, _) = entry(uuid) else { return nil }
            return .mute(callId: id, muted: muted)
        }
    }

    /// Calls CallKit still shows (not ended), for a provider reset.
    public var liveCalls: [UInt64] { calls.filter { !$0.value.ended }.map(\.key).sorted() }

    /// `providerDidReset`: CallKit dropped every call.
    public func reset() {
        calls.removeAll()
        callByUUID.removeAll()
        knownToCallKit.removeAll()
        pushReports.removeAll()
        pendingOutgoing.removeAll()
    }

    private func bind(callId: UInt64, uuid: UUID, direction: CoreCallDirection, state: CoreCallState) {
        guard calls[callId] == nil else { return }
        calls[callId] = Entry(uuid: uuid, direction: direction, state: state)
        callByUUID[uuid] = callId
    }
}

extension Optional where Wrapped == Bool {
    fileprivate var orFalse: Bool { self ?? false }
}
