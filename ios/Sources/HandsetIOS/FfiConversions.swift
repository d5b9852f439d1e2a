import Foundation
import Handset
import HandsetAsync
import HandsetIOSCore

// The generated FFI types → the glue's platform-neutral model. One table each; the compiler
// checks they stay exhaustive when the core adds a case.

extension CoreEndReason {
    /// The glue's view of the core's end reason, case for case (a failure's status, for logs,
    /// is left behind: the glue decides nothing on it).
    public init(_ reason: EndReason) {
        switch reason {
        case .localHangup: self = .localHangup
        case .remoteHangup: self = .remoteHangup
        case .busy: self = .busy
        case .declined: self = .declined
        case .unanswered: self = .unanswered
        case .cancelled: self = .cancelled
        case .answeredElsewhere: self = .answeredElsewhere
        case .declinedElsewhere: self = .declinedElsewhere
        case .failed: self = .failed
        case .networkLost: self = .networkLost
        }
    }
}

extension CoreCallState {
    /// The glue's view of the core's call state.
    public init(_ state: CallState) {
        switch state {
        case .incoming: self = .incoming
        case .calling: self = .calling
        case .ringing: self = .ringing
        case .earlyMedia: self = .earlyMedia
        case .active(_, _, let onHold): self = .active(onHold: onHold)
        case .ended(let reason, _): self = .ended(CoreEndReason(reason))
        }
    }
}

extension CoreCallDirection {
    /// The glue's view of the core's call direction.
    public init(_ direction: CallDirection) {
        switch direction {
        case .incoming: self = .incoming
        case .outgoing: self = .outgoing
        }
    }
}

extension CoreCallEvent {
    /// The glue's view of one item of the phone's call subscription: the call's CallKit UUID
    /// is the core's report id (a pushed call's is its push report's, so CallKit sees one
    /// call). An incoming call shows the name the phone's contacts give the caller, else the
    /// one the caller sent. Nil when the report id is not a UUID (the core always gives one).
    public init?(_ event: CallEvent) {
        guard let reportId = UUID(uuidString: event.call.reportId()) else { return nil }
        var displayName: String?
        if case .incoming(_, let sent, let contact, _, _, _) = event.update {
            displayName = contact ?? sent
        }
        self.init(
            callId: event.call.id(), direction: CoreCallDirection(event.call.direction()),
            remote: event.call.remote(), displayName: displayName, hasVideo: false,
            state: CoreCallState(event.state), reportId: reportId)
    }
}

extension CoreAudioRoute {
    /// The glue's view of the core's audio route.
    public init(_ route: AudioRoute) {
        switch route {
        case .earpiece: self = .earpiece
        case .speaker: self = .speaker
        case .wiredHeadset: self = .wiredHeadset
        case .bluetooth: self = .bluetooth
        }
    }
}

extension AudioRoute {
    /// The core's audio route for the glue's.
    public init(_ route: CoreAudioRoute) {
        switch route {
        case .earpiece: self = .earpiece
        case .speaker: self = .speaker
        case .wiredHeadset: self = .wiredHeadset
        case .bluetooth: self = .bluetooth
        }
    }
}

extension CoreIncomingUi {
    /// The glue's view of the core's incoming-call presentation.
    public init(_ ui: IncomingUi) {
        switch ui {
        case .hidden: self = .hidden
        case .notification: self = .notification
        case .fullScreen: self = .fullScreen
        }
    }
}

extension CoreScreenDecision {
    /// The glue's view of the core's call screen decision.
    public init(_ d: CallScreenDecision) {
        self.init(
            screenOffByProximity: d.screenOffByProximity, blankScreen: d.blankScreen,
            keepScreenOn: d.keepScreenOn, rotationAllowed: d.rotationAllowed,
            showInCallUi: d.showInCallUi, showIncomingUi: CoreIncomingUi(d.showIncomingUi))
    }
}

extension Proximity {
    /// A proximity sensor reading (`UIDevice.proximityState`: true when something is near).
    public init(near: Bool) {
        self = near ? .near : .far
    }
}

extension Contact {
    /// The core's contact for one the glue imported from the address book.
    public init(_ c: ImportedContact) {
        self.init(
            id: c.id, displayName: c.displayName, phoneNumbers: c.phoneNumbers, sipAddresses: c.sipAddresses,
            phoneLabels: c.phoneLabels, emails: c.emails, company: c.company)
    }
}

extension PushCallReport {
    /// The glue's view of the core's push report; nil when its id is not a UUID (the core
    /// always gives one).
    public init?(_ report: IncomingCallReport) {
        guard let uuid = UUID(uuidString: report.reportId) else { return nil }
        self.init(
            reportId: uuid, callId: report.callId, callerNumber: report.callerNumber,
            callerName: report.contactName ?? report.callerName, video: report.video,
            alreadyEnded: report.alreadyEnded.map(CoreEndReason.init))
    }
}

extension HandsetPhone: PushCallHandling {
    /// The core's `handle_push` for the PushKit delegate: `payload` is the VoIP push's JSON
    /// (`PushPlan.jsonPayload`). Returns at once, without network; throws `HandsetError` for a
    /// payload the core cannot read.
    public func handlePush(payload: Data) throws -> PushCallReport {
        let report = try handlePush(payload: String(decoding: payload, as: UTF8.self))
        guard let converted = PushCallReport(report) else {
            throw HandsetError.Internal(message: "push report id \(report.reportId) is not a UUID")
        }
        return converted
    }

    /// New PushKit credentials: the accounts `accountIds` (those of this phone) register again
    /// with the push token provider's current token (`Account.refreshPushToken`). Returns at
    /// once; an account that fails keeps its registration.
    public func refreshPushToken(accountIds: [String]) {
        let accounts = self.accounts().filter { accountIds.contains($0.accountId()) }
        guard !accounts.isEmpty else { return }
        Task {
            for account in accounts {
                try? await account.refreshPushToken()
            }
        }
    }
}
