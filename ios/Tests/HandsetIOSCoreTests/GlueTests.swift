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

    /// A cancel push is still reported (iOS demands it), then ended with the one table's reason.
    func testACancelPushIsReportedThenEndedAtOnce() {
        for (reason, kind) in [
            (CoreEndReason.cancelled, CallEndedReasonKind.unanswered), (.unanswered, .unanswered),
            (.answeredElsewhere, .answeredElsewhere), (.declinedElsewhere, .declinedElsewhere),
            (.declined, .remoteEnded),
        ] {
            let report = PushCallReport(reportId: id, callId: "x", callerNumber: "", alreadyEnded: reason)
            XCTAssertEqual(
                PushPlan.actions(for: .success(report)),
                [.reportIncoming(uuid: id, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false),
                 .ended(uuid: id, reason: kind)], "\(reason)")
        }
    }

    func testNewCredentialsRefreshThePushAccountsOnce() {
        let accounts = PushAccounts()
        XCTAssertEqual(accounts.tokenChanged(to: "aa01"), [], "no push account yet")
        accounts.added(accountId: "work", push: true)
        accounts.added(accountId: "home", push: true)
        accounts.added(accountId: "plain", push: false)
        XCTAssertEqual(accounts.tokenChanged(to: "aa01"), [], "the same token again")
        XCTAssertEqual(accounts.tokenChanged(to: "bb02"), ["home", "work"])
        accounts.added(accountId: "home", push: false)
        accounts.removed(accountId: "gone")
        XCTAssertEqual(accounts.accountIds, ["work"])
        XCTAssertEqual(accounts.tokenChanged(to: nil), ["work"], "invalidated: register without push")
        XCTAssertEqual(accounts.tokenChanged(to: nil), [])
        let launch = PushAccounts()
        launch.added(accountId: "work", push: true)
        XCTAssertEqual(launch.tokenChanged(to: "aa01"), ["work"], "the first token of a launch")
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
                sipAddresses: ["sip:alice@pbx.example", "sip:a2@pbx"], phoneLabels: ["", ""]))
    }

    func testLabelsStayParallelToTheNumbersWithEmailsAndCompany() {
        let r = ContactRecord(
            identifier: "C2", givenName: "Bob", organizationName: " ACME Corp ",
            phoneNumbers: ["  ", "+1 555 0100", "+1 555 0100", "0171 555", "030 99"],
            phoneLabels: ["home", "work", "mobile", " mobile "],
            emailAddresses: ["bob@acme.example", " bob@acme.example ", "", "b@home.example"])
        XCTAssertEqual(
            ContactImport.contact(from: r),
            ImportedContact(
                id: "C2", displayName: "Bob", phoneNumbers: ["+1 555 0100", "0171 555", "030 99"], sipAddresses: [],
                phoneLabels: ["work", "mobile", ""], emails: ["bob@acme.example", "b@home.example"],
                company: "ACME Corp"))
        XCTAssertNil(ContactImport.contact(from: ContactRecord(identifier: "3", phoneNumbers: ["1"]))?.company)
        XCTAssertNil(
            ContactImport.contact(from: ContactRecord(identifier: "4", emailAddresses: ["only@mail.example"])),
            "an e-mail address alone cannot match a call")
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

final class AudioRoutePlanTests: XCTestCase {
    private let receiver = AudioPort(kind: .builtInReceiver, uid: "Built-In Receiver")
    private let speaker = AudioPort(kind: .builtInSpeaker, uid: "Speaker")
    private let mic = AudioPort(kind: .builtInMic, uid: "Built-In Microphone Bottom")
    private let headsetMic = AudioPort(kind: .headsetMic, uid: "Wired Microphone")
    private let headphones = AudioPort(kind: .headphones, uid: "Wired Headphones")
    private let hfp = AudioPort(kind: .bluetoothHFP, uid: "00:11:22:33:44:55-tacl")

    func testAvailableRoutesFromTheSession() {
        let iphone = AudioSessionRouteState(outputs: [receiver], availableInputs: [mic], hasEarpiece: true)
        XCTAssertEqual(AudioRoutePlan.availableRoutes(iphone), [.earpiece, .speaker])
        let ipad = AudioSessionRouteState(outputs: [speaker], availableInputs: [mic], hasEarpiece: false)
        XCTAssertEqual(AudioRoutePlan.availableRoutes(ipad), [.speaker])
        let headset = AudioSessionRouteState(outputs: [headphones], availableInputs: [mic, headsetMic], hasEarpiece: true)
        XCTAssertEqual(AudioRoutePlan.availableRoutes(headset), [.speaker, .wiredHeadset], "no earpiece with a headset in")
        let noMic = AudioSessionRouteState(outputs: [headphones], availableInputs: [mic], hasEarpiece: true)
        XCTAssertEqual(AudioRoutePlan.availableRoutes(noMic), [.speaker, .wiredHeadset], "headphones without a microphone")
        let bluetooth = AudioSessionRouteState(outputs: [speaker], availableInputs: [mic, hfp], hasEarpiece: true)
        XCTAssertEqual(AudioRoutePlan.availableRoutes(bluetooth), [.earpiece, .speaker, .bluetooth])
        let car = AudioSessionRouteState(
            outputs: [AudioPort(kind: .carAudio, uid: "car")], availableInputs: [], hasEarpiece: true)
        XCTAssertEqual(AudioRoutePlan.availableRoutes(car), [.earpiece, .speaker, .bluetooth])
    }

    func testTheRouteInUseIsTheFirstOutputs() {
        XCTAssertEqual(AudioRoutePlan.currentRoute([receiver]), .earpiece)
        XCTAssertEqual(AudioRoutePlan.currentRoute([speaker]), .speaker)
        XCTAssertEqual(AudioRoutePlan.currentRoute([headphones]), .wiredHeadset)
        XCTAssertEqual(AudioRoutePlan.currentRoute([AudioPort(kind: .lineOut, uid: "l")]), .wiredHeadset)
        XCTAssertEqual(AudioRoutePlan.currentRoute([hfp]), .bluetooth)
        XCTAssertEqual(AudioRoutePlan.currentRoute([AudioPort(kind: .bluetoothA2DP, uid: "a")]), .bluetooth)
        XCTAssertEqual(AudioRoutePlan.currentRoute([AudioPort(kind: .bluetoothLE, uid: "le")]), .bluetooth)
        XCTAssertNil(AudioRoutePlan.currentRoute([AudioPort(kind: .other, uid: "AirPlay")]))
        XCTAssertNil(AudioRoutePlan.currentRoute([]))
    }

    func testSelectingARoute() {
        let all = AudioSessionRouteState(outputs: [hfp], availableInputs: [mic, hfp], hasEarpiece: true)
        XCTAssertEqual(
            AudioRoutePlan.selection(for: .speaker, in: all),
            AudioRouteSelection(speakerOverride: true, preferredInputUID: mic.uid))
        XCTAssertEqual(
            AudioRoutePlan.selection(for: .earpiece, in: all),
            AudioRouteSelection(speakerOverride: false, preferredInputUID: mic.uid))
        XCTAssertEqual(
            AudioRoutePlan.selection(for: .bluetooth, in: all),
            AudioRouteSelection(speakerOverride: false, preferredInputUID: hfp.uid))
        XCTAssertNil(AudioRoutePlan.selection(for: .wiredHeadset, in: all), "not available")
        let headset = AudioSessionRouteState(outputs: [headphones], availableInputs: [mic, headsetMic], hasEarpiece: true)
        XCTAssertEqual(
            AudioRoutePlan.selection(for: .wiredHeadset, in: headset),
            AudioRouteSelection(speakerOverride: false, preferredInputUID: headsetMic.uid))
        XCTAssertNil(AudioRoutePlan.selection(for: .earpiece, in: headset))
        let noMic = AudioSessionRouteState(outputs: [headphones], availableInputs: [mic], hasEarpiece: true)
        XCTAssertEqual(
            AudioRoutePlan.selection(for: .wiredHeadset, in: noMic),
            AudioRouteSelection(speakerOverride: false, preferredInputUID: mic.uid))
    }

    func testOnlyTheGluesOwnOverrideDoesNotAskTheCoreToReadTheRoutesAgain() {
        XCTAssertFalse(AudioRoutePlan.availabilityMayHaveChanged(.override))
        for reason in [
            AudioRouteChangeReason.newDeviceAvailable, .oldDeviceUnavailable, .categoryChange, .wakeFromSleep,
            .noSuitableRouteForCategory, .routeConfigurationChange, .unknown,
        ] {
            XCTAssertTrue(AudioRoutePlan.availabilityMayHaveChanged(reason), "\(reason)")
        }
    }
}

final class PhoneDefaultsTests: XCTestCase {
    func testTheDefaultCountryComesFromTheRegionWhenTheAppLeftItUnset() {
        XCTAssertEqual(PhoneDefaults.defaultCountry(configured: nil, region: "DE"), "DE")
        XCTAssertEqual(PhoneDefaults.defaultCountry(configured: nil, region: "us"), "US")
        XCTAssertEqual(PhoneDefaults.defaultCountry(configured: "FR", region: "DE"), "FR", "the app's own wins")
        XCTAssertEqual(PhoneDefaults.defaultCountry(configured: " ", region: "DE"), "DE", "blank counts as unset")
        XCTAssertNil(PhoneDefaults.defaultCountry(configured: nil, region: "001"), "a UN M.49 area")
        XCTAssertNil(PhoneDefaults.defaultCountry(configured: nil, region: nil))
        XCTAssertNil(PhoneDefaults.defaultCountry(configured: nil, region: ""))
    }
}
