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
        XCTAssertEqual(CoreEndReason(.failed(description: "Timeout")), .failed)
        XCTAssertEqual(CoreCallDirection(.incoming), .incoming)
    }

    func testScreenStateAndRoutesConvert() {
        let s = CallScreenState(inCall: true, route: .earpiece, proximityNear: false, screenOff: false)
        XCTAssertEqual(
            CoreScreenState(s), CoreScreenState(inCall: true, route: .earpiece, proximityNear: false, screenOff: false))
        XCTAssertTrue(ProximityPolicy.monitoringEnabled(for: CoreScreenState(s)))
        for route in [AudioRoute.earpiece, .speaker, .wiredHeadset, .bluetooth] {
            XCTAssertEqual(AudioRoute(CoreAudioRoute(route)), route)
        }
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

    func testProximityDriverIsQuietWithoutACall() async throws {
        let phone = try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"), audio: NoPlatformAudio(),
            secrets: MemorySecretStore(), contacts: StaticContactsSource(), push: StaticPushTokenProvider())
        let driver = ProximityDriver()
        let calls = Calls()
        driver.start(phone: phone) { on in calls.append(on) }
        phone.setProximity(near: true)
        phone.setAudioRoute(route: .speaker)
        try await Task.sleep(nanoseconds: 200_000_000)
        driver.stop()
        XCTAssertEqual(calls.values, [], "no call: monitoring stays off")
        try await phone.shutdown()
    }

    private final class Calls: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [Bool] = []
        var values: [Bool] {
            lock.lock()
            defer { lock.unlock() }
            return list
        }
        func append(_ v: Bool) {
            lock.lock()
            list.append(v)
            lock.unlock()
        }
    }
}
