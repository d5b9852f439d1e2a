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
        XCTAssertEqual(CoreCallState(.ended(reason: .busy, quality: nil)), .ended(.busy))
        let table: [(EndReason, CoreEndReason)] = [
            (.localHangup, .localHangup), (.remoteHangup, .remoteHangup), (.busy, .busy),
            (.declined, .declined), (.unanswered, .unanswered), (.cancelled, .cancelled),
            (.answeredElsewhere, .answeredElsewhere), (.declinedElsewhere, .declinedElsewhere),
            (.failed(status: 404), .failed), (.failed(status: nil), .failed), (.networkLost, .networkLost),
        ]
        for (ffi, glue) in table {
            XCTAssertEqual(CoreEndReason(ffi), glue, "\(ffi)")
        }
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
            [Contact(id: "1", displayName: "Alice", phoneNumbers: ["+4930123"], sipAddresses: [], phoneLabels: [""])])
    }

    func testContactsCarryLabelsEmailsAndCompanyToTheCore() throws {
        let source = ImportedContactsSource {
            [
                ContactRecord(
                    identifier: "7", givenName: "Bob", organizationName: "ACME",
                    phoneNumbers: ["+4930123", "0171 555"], phoneLabels: ["work", "mobile"],
                    emailAddresses: ["bob@acme.example"])
            ]
        }
        XCTAssertEqual(
            source.contacts(),
            [
                Contact(
                    id: "7", displayName: "Bob", phoneNumbers: ["+4930123", "0171 555"], sipAddresses: [],
                    phoneLabels: ["work", "mobile"], emails: ["bob@acme.example"], company: "ACME")
            ])
    }

    private final class FakeIO: CallAudioIO {
        var log: [String] = []
        func start(callId: UInt64, audio: ForeignAudio) { log.append("start \(callId)") }
        func stop(callId: UInt64) { log.append("stop \(callId)") }
    }

    func testAudioFactoryStartsMediaOnlyAfterDidActivate() {
        let io = FakeIO()
        let factory = GatedAudioDeviceFactory(io: io)
        // A stand-in handle: the gate only passes it on.
        let handle = ForeignAudio(noHandle: ForeignAudio.NoHandle())
        factory.startAudio(callId: 9, audio: handle)
        XCTAssertEqual(io.log, [], "the core answered; CallKit has not activated the session")
        factory.sessionActivated()
        factory.stopAudio(callId: 9)
        factory.sessionDeactivated()
        XCTAssertEqual(io.log, ["start 9", "stop 9"])
    }

    /// A call's events carry the core's report id as the CallKit UUID.
    func testCallEventsCarryTheCallsReportIdAsTheirUUID() async throws {
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(["me": .password(password: "pw")]), contacts: StaticContactsSource(),
            push: StaticPushTokenProvider())
        let account = try await phone.addAccount(
            config: AccountConfig(accountId: "me", server: "sip:127.0.0.1:9", user: "me", register: false))
        let call = try await account.call(target: "sip:nobody@127.0.0.1:9", audio: .silence, media: nil)
        let first = try await firstMatch(try call.updates(), what: "the current state", within: 5) { _ in true }
        let event = try XCTUnwrap(CoreCallEvent(first))
        XCTAssertEqual(event.reportId, UUID(uuidString: call.reportId()))
        XCTAssertEqual(event.direction, .outgoing)
        try? await call.hangup()
        try await phone.shutdown()
    }

    func testCommandsForUnknownCallsReportFailure() async throws {
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(), contacts: StaticContactsSource(), push: StaticPushTokenProvider())
        for command in [CoreCommand.answer(callId: 1), .hangup(callId: 1), .mute(callId: 1, muted: true)] {
            let done = try await CoreCommandRunner.perform(command, on: phone)
            XCTAssertFalse(done, "\(command)")
        }
        try await phone.shutdown()
    }

    /// CallKit's end action on a push-reported call before its INVITE: the runner declines
    /// the report (CallKit's upper-case UUID is fine), once; the core's event says so.
    func testDecliningAPushReportThroughTheRunner() async throws {
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(), contacts: StaticContactsSource(), push: StaticPushTokenProvider())
        let events = phone.phoneEvents()
        let report = try phone.handlePush(
            payload: Data(#"{"type":"incoming_call","call_id":"d1@pbx","from":"sip:+4930123@pbx"}"#.utf8))
        let coordinator = CallKitCoordinator()
        coordinator.pushReported(PushPlan.actions(for: .success(report)))
        let command = try XCTUnwrap(coordinator.command(for: .end(report.reportId)))
        XCTAssertEqual(command, .declinePushReport(reportId: report.reportId))
        let waiting = try await CoreCommandRunner.perform(command, on: phone)
        XCTAssertTrue(waiting)
        XCTAssertEqual(coordinator.declineAnswered(reportId: report.reportId, wasWaiting: waiting), .fulfill)
        let again = try await CoreCommandRunner.perform(command, on: phone)
        XCTAssertFalse(again, "declined already")
        let ended = try await firstMatch(events, what: "the report's end", within: 5) { _ in true }
        guard case .pushReportEnded(let id, let reason) = ended else { return XCTFail("\(ended)") }
        XCTAssertEqual(UUID(uuidString: id), report.reportId)
        XCTAssertEqual(CoreEndReason(reason), .declined)
        XCTAssertEqual(coordinator.pushReportEnded(report.reportId, reason: CoreEndReason(reason)), [])
        try await phone.shutdown()
    }

    /// The core reads the routes from the platform and the platform executes its choice.
    func testAudioRoutesArePlannedFromTheSession() async throws {
        let recorded = Recorded<AudioRouteSelection>()
        let session = AudioSessionRouteState(
            outputs: [AudioPort(kind: .builtInReceiver, uid: "receiver")],
            availableInputs: [AudioPort(kind: .builtInMic, uid: "mic"), AudioPort(kind: .bluetoothHFP, uid: "bt")],
            hasEarpiece: true)
        let routes = PlannedAudioRoutes(read: { session }, execute: { recorded.append($0) })
        XCTAssertEqual(routes.availableRoutes(), [.earpiece, .speaker, .bluetooth])
        try routes.selectRoute(route: .bluetooth)
        XCTAssertEqual(recorded.values, [AudioRouteSelection(speakerOverride: false, preferredInputUID: "bt")])
        XCTAssertThrowsError(try routes.selectRoute(route: .wiredHeadset)) {
            guard case .Failed = $0 as? PlatformError else { return XCTFail("\($0)") }
        }
        let phone = try HandsetPhone.start(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(), secrets: MemorySecretStore(),
            contacts: StaticContactsSource(), push: StaticPushTokenProvider(), audioRoutes: routes)
        let updates = phone.audioRouteUpdates()
        try phone.audioRoutesChanged()
        // The phone takes the routes in and reports them back: the getter mirrors its report.
        let state = try await firstMatch(updates, what: "the routes", within: 5) { !$0.available.isEmpty }
        XCTAssertEqual(Set(state.available), [.earpiece, .speaker, .bluetooth])
        XCTAssertEqual(Set(phone.audioRoutes()), [.earpiece, .speaker, .bluetooth])
        XCTAssertNil(phone.selectedAudioRoute(), "no call")
        try await phone.shutdown()
    }

    func testThePhoneTakesItsDefaultCountryFromTheLocale() {
        let unset = PhoneConfig(bindAddress: "127.0.0.1:0")
        XCTAssertNil(unset.defaultCountry)
        XCTAssertEqual(unset.withIOSDefaults(locale: Locale(identifier: "de_DE")).defaultCountry, "DE")
        XCTAssertNil(unset.withIOSDefaults(locale: Locale(identifier: "en_001")).defaultCountry, "a region that is no country")
        var set = unset
        set.defaultCountry = "FR"
        XCTAssertEqual(set.withIOSDefaults(locale: Locale(identifier: "de_DE")).defaultCountry, "FR")
    }

    func testAccountsAddedWithPushAreRefreshedOnNewCredentials() async throws {
        let phone = try HandsetPhone.start(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(["p": .password(password: "pw"), "q": .password(password: "pw")]),
            contacts: StaticContactsSource(), push: StaticPushTokenProvider())
        let pushAccounts = PushAccounts()
        _ = try await phone.addAccount(
            config: AccountConfig(accountId: "p", server: "sip:127.0.0.1:9", user: "p", register: false, push: true),
            pushAccounts: pushAccounts)
        _ = try await phone.addAccount(
            config: AccountConfig(accountId: "q", server: "sip:127.0.0.1:9", user: "q", register: false),
            pushAccounts: pushAccounts)
        XCTAssertEqual(pushAccounts.accountIds, ["p"])
        XCTAssertEqual(pushAccounts.tokenChanged(to: "aa01"), ["p"])
        // The phone as the PushKit delegate's handler: returns at once.
        let handler: PushCallHandling = phone
        handler.refreshPushToken(accountIds: ["p", "unknown"])
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
