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
/// commands. Every call's CallKit UUID is the core's report id (`Call.reportId`: the push
/// report's for a pushed call), so the coordinator correlates nothing: it only remembers which
/// call a UUID stands for and what CallKit was told; every call decision (state, end reason)
/// comes from the core. Not thread-safe: use it from one queue (the provider's delegate queue).
public final class CallKitCoordinator {
    private struct Entry {
        var callId: UInt64
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

    private var calls: [UUID: Entry] = [:]
    private var uuidByCall: [UInt64: UUID] = [:]
    /// UUIDs CallKit knows: reported from a push or for an incoming call, or started by a
    /// `CXStartCallAction`.
    private var knownToCallKit: Set<UUID> = []
    /// Push reports CallKit shows that no core call stands for yet.
    private var pushReports: [UUID: PushReportState] = [:]

    /// A coordinator that knows no call.
    public init() {}

    /// The CallKit UUID of a core call, once the coordinator has seen it.
    public func uuid(forCall callId: UInt64) -> UUID? { uuidByCall[callId] }

    /// The core call of a CallKit UUID.
    public func callId(for uuid: UUID) -> UInt64? { calls[uuid]?.callId }

    /// The reports of one VoIP push were given to CallKit (`PushPlan.actions`, inside the
    /// PushKit handler): CallKit knows their UUIDs, and a report not ended at once waits for
    /// its INVITE (declining it on CallKit then declines the push report).
    public func pushReported(_ actions: [CallKitAction]) {
        for action in actions {
            switch action {
            case .reportIncoming(let uuid, _, _, _):
                knownToCallKit.insert(uuid)
                if calls[uuid] == nil { pushReports[uuid] = .waiting }
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
    public func pushReportEnded(_ uuid: UUID, reason: CoreEndReason) -> [CallKitAction] {
        let state = pushReports.removeValue(forKey: uuid)
        guard knownToCallKit.contains(uuid), calls[uuid] == nil else { return [] }
        knownToCallKit.remove(uuid)
        if reason == .declined && state == .declining { return [] }
        return [.ended(uuid: uuid, reason: Self.reportEndedReason(reason))]
    }

    /// The core answered the `declinePushReport` of a `CXEndCallAction`: `wasWaiting` is its
    /// result (the report was still waiting for its INVITE). When it was not, the INVITE may
    /// have arrived meanwhile; its call is then declined like any ringing call.
    public func declineAnswered(reportId: UUID, wasWaiting: Bool) -> DeclineFollowUp {
        if !wasWaiting, calls[reportId] != nil, let command = command(for: .end(reportId)) {
            return .run(command)
        }
        return .fulfill
    }

    /// The app placed core call `callId` whose report id is `uuid`, and is about to request
    /// `CXStartCallAction(call: uuid)`: until CallKit performs it, the call's updates are kept
    /// without telling CallKit.
    public func outgoingPlaced(callId: UInt64, uuid: UUID) {
        bind(callId: callId, uuid: uuid, direction: .outgoing, state: .calling)
    }

    /// CallKit performs the `CXStartCallAction` of `uuid`: the reports that catch CallKit up
    /// with the call (fulfill the action first), or nil when no placed call has this UUID
    /// (fail the action).
    public func outgoingStarted(uuid: UUID) -> [CallKitAction]? {
        guard let entry = calls[uuid], entry.direction == .outgoing else { return nil }
        knownToCallKit.insert(uuid)
        return report(uuid: uuid, entry: entry, state: entry.state, force: true)
    }

    /// The CallKit reports for one item of the core's call subscription.
    public func handle(_ event: CoreCallEvent) -> [CallKitAction] {
        let uuid = event.reportId
        var actions: [CallKitAction] = []
        if calls[uuid] == nil {
            if event.state.isEnded && !knownToCallKit.contains(uuid) {
                return []  // never shown, already over: nothing to tell CallKit
            }
            pushReports[uuid] = nil
            bind(callId: event.callId, uuid: uuid, direction: event.direction, state: event.state)
            if event.direction == .incoming {
                let handle = CallHandle.from(address: event.remote)
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
        guard let entry = calls[uuid] else { return actions }
        return actions + report(uuid: uuid, entry: entry, state: event.state, force: false)
    }

    /// Moves the call of `uuid` to `state` and returns what CallKit must hear of it; `force`
    /// reports the current state again (CallKit has just learnt of the call).
    private func report(uuid: UUID, entry: Entry, state: CoreCallState, force: Bool) -> [CallKitAction] {
        var entry = entry
        if entry.ended { return [] }
        entry.state = state
        defer { calls[uuid] = entry }
        guard knownToCallKit.contains(uuid) else {
            // An outgoing call CallKit has not started (yet, or ever: placed around CallKit):
            // CallKit is told nothing about it.
            return []
        }
        var actions: [CallKitAction] = []
        switch state {
        case .incoming:
            break
        case .calling, .ringing, .earlyMedia:
            if entry.direction == .outgoing && !entry.startedConnecting {
                entry.startedConnecting = true
                actions.append(.outgoingStartedConnecting(uuid: uuid))
            }
        case .active:
            if entry.direction == .outgoing && !entry.connected {
                if !entry.startedConnecting {
                    entry.startedConnecting = true
                    actions.append(.outgoingStartedConnecting(uuid: uuid))
                }
                entry.connected = true
                actions.append(.outgoingConnected(uuid: uuid))
            }
        case .ended(let reason):
            entry.ended = true
            if force {
                // CallKit only now learns of a call already over: it must be ended.
                actions.append(.ended(uuid: uuid, reason: Self.reportEndedReason(reason, direction: entry.direction)))
            } else if let kind = Self.endedReason(reason, direction: entry.direction) {
                actions.append(.ended(uuid: uuid, reason: kind))
            }
        }
        return actions
    }

    /// The one table from the core's end reason and the call's direction to the reason
    /// CallKit is told, or nil when CallKit ended the call itself (the user hung up, declined
    /// or cancelled on the CallKit UI, which goes through `CXEndCallAction` and so is already
    /// known).
    public static func endedReason(_ reason: CoreEndReason, direction: CoreCallDirection)
        -> CallEndedReasonKind?
    {
        let incoming = direction == .incoming
        switch reason {
        case .localHangup:
            return nil
        case .remoteHangup:
            return .remoteEnded
        case .busy:
            // Outgoing: the callee was busy. Incoming: refused because the phone was full.
            return incoming ? .unanswered : .remoteEnded
        case .declined:
            // Incoming: the user declined here, through CallKit.
            return incoming ? nil : .remoteEnded
        case .unanswered:
            return .unanswered
        case .cancelled:
            // Incoming: the caller gave up before we answered. Outgoing: we cancelled.
            return incoming ? .unanswered : nil
        case .answeredElsewhere:
            return .answeredElsewhere
        case .declinedElsewhere:
            return .declinedElsewhere
        case .failed, .networkLost:
            return .failed
        }
    }

    /// The reason for ending a call or push report CallKit shows that CallKit cannot have
    /// ended itself (a push already over, a report the core ended, a call CallKit learnt of
    /// after its end): the table's, with an end CallKit would otherwise have known of reported
    /// as the other side's. A push report is an incoming call.
    public static func reportEndedReason(_ reason: CoreEndReason, direction: CoreCallDirection = .incoming)
        -> CallEndedReasonKind
    {
        endedReason(reason, direction: direction) ?? .remoteEnded
    }

    /// The core command for a CallKit user action; nil for a UUID the coordinator does not
    /// know (CallKit then fails the action) or a call already over. Ending a push report whose
    /// INVITE has not come yet declines the report (`.declinePushReport`; answer the result
    /// with `declineAnswered(reportId:wasWaiting:)`).
    public func command(for action: CallKitUserAction) -> CoreCommand? {
        func entry(_ uuid: UUID) -> Entry? {
            guard let e = calls[uuid], !e.ended else { return nil }
            return e
        }
        switch action {
        case .answer(let uuid):
            guard let e = entry(uuid), e.direction == .incoming, e.state == .incoming else { return nil }
            return .answer(callId: e.callId)
        case .end(let uuid):
            if calls[uuid] == nil, pushReports[uuid] == .waiting {
                // Reported from a push; its INVITE has not come yet.
                pushReports[uuid] = .declining
                return .declinePushReport(reportId: uuid)
            }
            guard let e = entry(uuid) else { return nil }
            if e.direction == .incoming && e.state == .incoming {
                return .reject(callId: e.callId, status: 603)
            }
            return .hangup(callId: e.callId)
        case .setHeld(let uuid, let onHold):
            guard let e = entry(uuid), case .active = e.state else { return nil }
            return .hold(callId: e.callId, onHold: onHold)
        case .playDTMF(let uuid, let digits):
            let valid = !digits.isEmpty && digits.allSatisfy { "0123456789*#ABCDabcd".contains($0) }
            guard valid, let e = entry(uuid) else { return nil }
            return .sendDtmf(callId: e.callId, digits: digits)
        case .setMuted(let uuid, let muted):
            guard let e = entry(uuid) else { return nil }
            return .mute(callId: e.callId, muted: muted)
        }
    }

    /// Calls CallKit still shows (not ended), for a provider reset.
    public var liveCalls: [UInt64] {
        calls.filter { !$0.value.ended && knownToCallKit.contains($0.key) }.map(\.value.callId).sorted()
    }

    /// `providerDidReset`: CallKit dropped every call.
    public func reset() {
        calls.removeAll()
        uuidByCall.removeAll()
        knownToCallKit.removeAll()
        pushReports.removeAll()
    }

    private func bind(callId: UInt64, uuid: UUID, direction: CoreCallDirection, state: CoreCallState) {
        guard calls[uuid] == nil else { return }
        calls[uuid] = Entry(callId: callId, direction: direction, state: state)
        uuidByCall[callId] = uuid
    }
}
