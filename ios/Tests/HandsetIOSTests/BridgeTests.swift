import Foundation
import Handset
import HandsetAsync
import HandsetIOSCore
import XCTest

@testable import HandsetIOS

/// The FFI bridge of the iOS glue, against the real libhandset_ffi (no network).
final class BridgeTests: XCTestCase {
    func testCallStatesAndEndReasonsConvert() {
        XCTAssertEqual(CoreCallState(.incoming), .incoming)
        XCTAssertEqual(CoreCallState(.calling), .calling)
        XCTAssertEqual(CoreCallState(.ringing), .ringing)
        XCTAssertEqual(CoreCallState(.earlyMedia), .earlyMedia)
        XCTAssertEqual(CoreCallState(.active(codec: "PCMU", srtp: true, onHold: true)), .active(onHold: true))
        XCTAssertEqual(
            CoreCallState(.ended(reason: .rejected(status: 486, reason: "Busy Here"), quality: nil)),
            .ended(.rejected(status: 486)))
        XCTAssertEqual(CoreEndReason(.localHangup), .localHangup)
        XCTAssertEqual(CoreEndReason(.remoteHangup), .remoteHangup)
        XCTAssertEqual(CoreEndReason(.cancelled), .cancelled)
        XCTAssertEqual(CoreEndReason(.rejectedLocally(status: 603)), .rejectedLocally(status: 603))
        XCTAssertEqual(CoreEndReason(.timeout), .timeout)
        XCTAssertEqual(CoreEndReason(.networkError), .networkError)
        XCTAssertEqual(CoreEndReason(.failed(description: "lost dialog")), .failed)
        XCTAssertEqual(CoreCallDirection(.incoming), .incoming)
    }

    func testScreenDecisionsAndRoutesConvert() {
        let d = CallScreenDecision(
            screenOffByProximity: true, blankScreen: true, keepScreenOn: false, rotationAllowed: false,
            showInCallUi: true, showIncomingUi: .notification)
        XCTAssertEqual(
            CoreScreenDecision(d),
            CoreScreenDecision(
                screenOffByProximity: true, blankScreen: true, keepScreenOn: false, rotationAllowed: false,
                showInCallUi: true, showIncomingUi: .notification))
        XCTAssertEqual(CoreIncomingUi(.hidden), .hidden)
        XCTAssertEqual(CoreIncomingUi(.fullScreen), .fullScreen)
        XCTAssertEqual(Proximity(near: true), .near)
        XCTAssertEqual(Proximity(near: false), .far)
        for route in [AudioRoute.earpiece, .speaker, .wiredHeadset, .bluetooth] {
            XCTAssertEqual(AudioRoute(CoreAudioRoute(route)), route)
        }
    }

    func testThePhoneIdleDecisionIsTheGluesIdle() throws {
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(), contacts: StaticContactsSource(), push: StaticPushTokenProvider())
        XCTAssertEqual(CoreScreenDecision(phone.callScreen()), .idle)
    }

    func testThePhoneHandlesPushesForThePushKitDelegate() throws {
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(), contacts: StaticContactsSource(), push: StaticPushTokenProvider())
        // The phone is the PushKit delegate's `PushCallHandling`.
        let handler: PushCallHandling = phone
        let report = try handler.handlePush(
            payload: Data(#"{"type":"incoming_call","call_id":"c1@pbx","from":"sip:+4930123@pbx","from_name":"Alice"}"#.utf8))
        XCTAssertEqual(report.callId, "c1@pbx")
        XCTAssertTrue(report.callerNumber.contains("4930123"), report.callerNumber)
        XCTAssertEqual(report.callerName, "Alice")
        XCTAssertNil(report.alreadyEnded)
        let again = try handler.handlePush(
            payload: Data(#"{"type":"incoming_call","call_id":"c1@pbx","from":"1"}"#.utf8))
        XCTAssertEqual(again.reportId, report.reportId, "a duplicate push gives the same report")
        XCTAssertThrowsError(try handler.handlePush(payload: Data("{}".utf8))) {
            guard case .InvalidPush = $0 as? HandsetError else { return XCTFail("\($0)") }
        }
        let cancel = try handler.handlePush(
            payload: Data(#"{"type":"cancel","call_id":"c2@pbx","reason":"answered_elsewhere"}"#.utf8))
        XCTAssertEqual(cancel.alreadyEnded, .answeredElsewhere)
        XCTAssertEqual(
            PushPlan.actions(for: .success(cancel)).last, .ended(uuid: cancel.reportId, reason: .answeredElsewhere))
    }

    func testContactsSourceImportsRecordsForTheCore() throws {
        let source = ImportedContactsSource {
            [
                ContactRecord(identifier: "1", givenName: "Alice", phoneNumbers: ["+4930123"]),
                ContactRecord(identifier: "2", givenName: "Nobody"),
            ]
        }
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(), contacts: source, push: StaticPushTokenProvider())
        XCTAssertEqual(
            try phone.contacts(),
            [Contact(id: "1", displayName: "Alice", phoneNumbers: ["+4930123"], sipAddresses: [])])
    }

    private final class FakeIO: CallAudioIO {
        var log: [String] = []
        func start(callId: UInt64, audio: ForeignAudio) { log.append("start \(callId)") }
        func stop(callId: UInt64) { log.append("stop \(callId)") }
        func setMuted(_ muted: Bool, callId: UInt64) { log.append("mute \(callId) \(muted)") }
    }

    func testAudioFactoryStartsMediaOnlyAfterDidActivate() {
        let io = FakeIO()
        let factory = GatedAudioDeviceFactory(io: io)
        // A stand-in handle: the gate only passes it on.
        let handle = ForeignAudio(noHandle: ForeignAudio.NoHandle())
        factory.startAudio(callId: 9, audio: handle)
        XCTAssertEqual(io.log, [], "the core answered; CallKit has not activated the session")
        factory.sessionActivated()
        factory.setMuted(true, callId: 9)
        factory.stopAudio(callId: 9)
        factory.sessionDeactivated()
        XCTAssertEqual(io.log, ["start 9", "mute 9 true", "stop 9"])
    }

    func testCommandsForUnknownCallsReportFailure() async throws {
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(), contacts: StaticContactsSource(), push: StaticPushTokenProvider())
        for command in [CoreCommand.answer(callId: 1), .hangup(callId: 1), .mute(callId: 1, muted: true)] {
            let done = try await CoreCommandRunner.perform(command, on: phone, audio: nil)
            XCTAssertFalse(done, "\(command)")
        }
        try await phone.shutdown()
    }

    func testScreenDriverAppliesNothingWithoutACall() async throws {
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(), contacts: StaticContactsSource(), push: StaticPushTokenProvider())
        let driver = CallScreenDriver()
        let effects = Recorded<ScreenEffect>()
        let decisions = Recorded<CoreScreenDecision>()
        driver.start(phone: phone, apply: { effects.append($0) }, onDecision: { decisions.append($0) })
        phone.updateCallScreen(input: .proximity(proximity: .near))
        phone.updateCallScreen(input: .route(route: .speaker))
        try await Task.sleep(nanoseconds: 200_000_000)
        driver.stop()
        XCTAssertEqual(effects.values, [], "no call: proximity monitoring and the idle timer stay off")
        XCTAssertEqual(decisions.values, [.idle])
        try await phone.shutdown()
    }

    private final class Recorded<Value>: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [Value] = []
        var values: [Value] {
            lock.lock()
            defer { lock.unlock() }
            return list
        }
        func append(_ v: Value) {
            lock.lock()
            list.append(v)
            lock.unlock()
        }
    }
}
