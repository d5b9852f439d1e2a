import Foundation
import XCTest

@testable import HandsetIOSCore

final class PushPlanTests: XCTestCase {
    private let id = UUID(uuidString: "1b4e28ba-2fa1-41d2-883f-0016d3cca427")!

    func testANewCallIsReportedInsideTheHandler() {
        let report = PushCallReport(reportId: id, callId: "a84b@pbx", callerNumber: "sip:+4930123@pbx", callerName: "Alice")
        XCTAssertEqual(
            PushPlan.actions(for: .success(report)),
            [.reportIncoming(uuid: id, handle: CallHandle(kind: .phoneNumber, value: "+4930123"), displayName: "Alice", hasVideo: false)])
    }

    func testACancelPushIsReportedThenEndedAtOnce() {
        for (reason, kind) in [
            (PushEndReason.missed, CallEndedReasonKind.unanswered), (.timedOut, .failed),
            (.answeredElsewhere, .answeredElsewhere), (.declinedElsewhere, .declinedElsewhere),
            (.declinedByUser, .remoteEnded),
        ] {
            let report = PushCallReport(reportId: id, callId: "x", callerNumber: "", alreadyEnded: reason)
            XCTAssertEqual(
                PushPlan.actions(for: .success(report)),
                [.reportIncoming(uuid: id, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false),
                 .ended(uuid: id, reason: kind)], "\(reason)")
        }
        XCTAssertNil(PushEndReason.declinedByUser.callKitReason)
    }

    func testAnUnreadablePushIsStillReportedAndFailed() {
        struct Bad: Error {}
        let u = UUID()
        XCTAssertEqual(
            PushPlan.actions(for: .failure(Bad()), makeUUID: { u }),
            [.reportIncoming(uuid: u, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false),
             .ended(uuid: u, reason: .failed)])
    }

    func testPushKitDictionaryBecomesTheCoreJSON() throws {
        let dict: [AnyHashable: Any] = [
            "type": "incoming_call", "call_id": "a84b@pbx", "from": "sip:+4930123@pbx",
            "aps": ["content-available": 1], "video": false,
        ]
        let json = try PushPlan.jsonPayload(dict)
        let back = try JSONSerialization.jsonObject(with: json) as? [String: Any]
        XCTAssertEqual(back?["call_id"] as? String, "a84b@pbx")
        XCTAssertEqual(back?["video"] as? Bool, false)
        XCTAssertThrowsError(try PushPlan.jsonPayload([1: "x"])) { XCTAssertEqual($0 as? PushPayloadError, .nonStringKey) }
        XCTAssertThrowsError(try PushPlan.jsonPayload(["d": Date()])) { XCTAssertEqual($0 as? PushPayloadError, .notJSON) }
    }
}

final class AudioActivationGateTests: XCTestCase {
    private func describe(_ effects: [AudioActivationGate<String>.Effect]) -> [String] {
        effects.map {
            switch $0 {
            case .start(let id, let h): return "start \(id) \(h)"
            case .stop(let id): return "stop \(id)"
            }
        }
    }

    func testMediaWaitsForDidActivate() {
        let gate = AudioActivationGate<String>()
        XCTAssertEqual(describe(gate.requestStart(callId: 1, handle: "a")), [], "answered before CallKit activated")
        XCTAssertFalse(gate.isSessionActive)
        XCTAssertEqual(describe(gate.sessionActivated()), ["start 1 a"])
        XCTAssertEqual(describe(gate.sessionActivated()), [], "already running")
        XCTAssertEqual(describe(gate.requestStart(callId: 2, handle: "b")), ["start 2 b"], "session already active")
        XCTAssertEqual(describe(gate.requestStop(callId: 1)), ["stop 1"])
        XCTAssertEqual(describe(gate.requestStop(callId: 1)), [])
    }

    func testDeactivationStopsAndReactivationResumes() {
        let gate = AudioActivationGate<String>()
        _ = gate.sessionActivated()
        _ = gate.requestStart(callId: 3, handle: "c")
        XCTAssertEqual(describe(gate.sessionDeactivated()), ["stop 3"])
        XCTAssertEqual(describe(gate.sessionActivated()), ["start 3 c"], "an interruption ended")
        _ = gate.requestStop(callId: 3)
        XCTAssertEqual(describe(gate.sessionDeactivated()), [])
        XCTAssertEqual(describe(gate.sessionActivated()), [], "the call is over")
    }

    func testACallEndedBeforeActivationNeverStarts() {
        let gate = AudioActivationGate<String>()
        _ = gate.requestStart(callId: 4, handle: "d")
        XCTAssertEqual(describe(gate.requestStop(callId: 4)), [])
        XCTAssertEqual(describe(gate.sessionActivated()), [])
    }

    func testTheSessionPlanIsPlayAndRecordVoiceChat() {
        XCTAssertEqual(AudioSessionPlan.call.category, .playAndRecord)
        XCTAssertEqual(AudioSessionPlan.call.mode, .voiceChat)
        XCTAssertEqual(AudioSessionPlan.call.preferredSampleRate, 48_000)
    }
}

final class ScreenPolicyTests: XCTestCase {
    private let earpieceCall = CoreScreenDecision(
        screenOffByProximity: true, rotationAllowed: false, showInCallUi: true)
    private let speakerCall = CoreScreenDecision(keepScreenOn: true, rotationAllowed: false, showInCallUi: true)

    func testProximityMonitoringFollowsTheProximityLockAndTheIdleTimerKeepOn() {
        var p = ScreenPolicy()
        XCTAssertEqual(p.update(.idle), [], "idle: iOS keeps its defaults")
        XCTAssertEqual(p.update(earpieceCall), [.proximityMonitoring(true)])
        var near = earpieceCall
        near.blankScreen = true
        XCTAssertEqual(p.update(near), [], "iOS blanks the screen itself while monitoring")
        XCTAssertEqual(
            p.update(speakerCall), [.proximityMonitoring(false), .proximityUnknown, .idleTimerDisabled(true)])
        XCTAssertTrue(p.idleTimerDisabled)
        XCTAssertFalse(p.proximityMonitoring)
        XCTAssertEqual(p.update(earpieceCall), [.proximityMonitoring(true), .idleTimerDisabled(false)])
        XCTAssertEqual(p.update(.idle), [.proximityMonitoring(false), .proximityUnknown])
    }

    func testIncomingFullScreenKeepsTheScreenOnAndResetUndoesIt() {
        var p = ScreenPolicy()
        let ringing = CoreScreenDecision(keepScreenOn: true, rotationAllowed: false, showIncomingUi: .fullScreen)
        XCTAssertEqual(p.update(ringing), [.idleTimerDisabled(true)])
        XCTAssertEqual(p.update(ringing), [], "only changes")
        XCTAssertEqual(p.reset(), [.idleTimerDisabled(false)])
        XCTAssertEqual(p.reset(), [])
        XCTAssertEqual(p, ScreenPolicy())
    }
}

final class ContactImportTests: XCTestCase {
    func testNamesNumbersAndSipAddresses() {
        let r = ContactRecord(
            identifier: "C1", givenName: " Alice ", familyName: "Smith",
            phoneNumbers: ["+49 30 123", " +49 30 123 ", "0171 555"],
            urlAddresses: ["https://alice.example", "SIP:alice@pbx.example", "sip:"],
            instantMessages: [("SIP", "alice@pbx.example"), ("sip", "sip:a2@pbx"), ("Skype", "alice.s"), ("SIP", " ")])
        XCTAssertEqual(
            ContactImport.contact(from: r),
            ImportedContact(
                id: "C1", displayName: "Alice Smith", phoneNumbers: ["+49 30 123", "0171 555"],
                sipAddresses: ["sip:alice@pbx.example", "sip:a2@pbx"]))
    }

    func testDisplayNameFallsBackToOrganizationThenNumber() {
        XCTAssertEqual(
            ContactImport.contact(from: ContactRecord(identifier: "2", organizationName: "ACME", phoneNumbers: ["1"]))?.displayName, "ACME")
        XCTAssertEqual(ContactImport.contact(from: ContactRecord(identifier: "3", phoneNumbers: ["030 1"]))?.displayName, "030 1")
        XCTAssertEqual(
            ContactImport.contact(from: ContactRecord(identifier: "4", urlAddresses: ["sips:bob@x"]))?.displayName, "sips:bob@x")
    }

    func testContactsWithoutAnythingToCallAreLeftOut() {
        let records = [
            ContactRecord(identifier: "a", givenName: "No", familyName: "Number"),
            ContactRecord(identifier: "b", givenName: "Bob", phoneNumbers: ["  "]),
            ContactRecord(identifier: "c", givenName: "Carol", phoneNumbers: ["+1 555"]),
        ]
        XCTAssertEqual(ContactImport.contacts(from: records).map(\.id), ["c"])
    }
}
