import Foundation
import Handset
import XCTest

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

@testable import HandsetAsync

/// The generated bindings and the adapters against the real libhandset_ffi, without network.
final class AdapterTests: XCTestCase {
    private func loopbackPhone(secrets: [String: StoredSecret] = [:]) throws -> HandsetPhone {
        try HandsetPhone(
            config: PhoneConfig(bindAddress: "127.0.0.1:0"),
            audio: NoPlatformAudio(), secrets: MemorySecretStore(secrets),
            contacts: StaticContactsSource([
                Contact(id: "1", displayName: "Alice", phoneNumbers: ["+4930123"], sipAddresses: [])
            ]),
            push: StaticPushTokenProvider(PushToken(service: .apns, token: "t0k", param: "ABCDE12345.dev.handset.voip")))
    }

    func testLibraryLoadsAndExportsTheCoreDefaults() {
        XCTAssertTrue(handsetVersion().hasPrefix("Handset/"), handsetVersion())
        let media = defaultMediaConfig()
        XCTAssertTrue(media.codecs.contains(.pcmu), "\(media.codecs)")
        XCTAssertTrue(media.telephoneEvent)
    }

    func testPlatformServicesAreReachedThroughThePhone() throws {
        let phone = try loopbackPhone()
        XCTAssertEqual(try phone.contacts().map(\.displayName), ["Alice"])
        XCTAssertEqual(try phone.pushToken()?.service, .apns)
        try phone.storeSecret(accountId: "a", secret: .password(password: "pw"))
        XCTAssertTrue(phone.accounts().isEmpty)
        XCTAssertTrue(phone.calls().isEmpty)
    }

    func testAMissingSecretIsAnError() async throws {
        let phone = try loopbackPhone()
        do {
            _ = try await phone.addAccount(
                config: AccountConfig(accountId: "nobody", server: "sip:127.0.0.1:9", user: "nobody"))
            XCTFail("added an account without a secret")
        } catch let error as HandsetError {
            guard case .MissingSecret = error else { return XCTFail("\(error)") }
        }
        try await phone.shutdown()
    }

    /// ICE settings are checked when the account is added; the TURN password never shows in
    /// the error.
    func testIceSettingsAreCheckedWhenTheAccountIsAdded() async throws {
        let phone = try loopbackPhone(secrets: ["ice": .password(password: "pw")])
        let relayOnly = IceSettings(
            stunServers: ["127.0.0.1:3478"], turnServer: nil, turnUser: "user",
            turnPassword: "turn-secret-7c2", relayOnly: true)
        do {
            _ = try await phone.addAccount(
                config: AccountConfig(
                    accountId: "ice", server: "sip:127.0.0.1:9", user: "ice", register: false,
                    ice: relayOnly))
            XCTFail("relay-only ICE without a TURN server was accepted")
        } catch let error as HandsetError {
            guard case .InvalidArgument(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("needs a TURN server"), message)
            XCTAssertFalse(message.contains("turn-secret-7c2"), message)
        }
        var withTurn = relayOnly
        withTurn.turnServer = "turn:127.0.0.1:3478;transport=tcp"
        let account = try await phone.addAccount(
            config: AccountConfig(
                accountId: "ice", server: "sip:127.0.0.1:9", user: "ice", register: false,
                ice: withTurn))
        XCTAssertEqual(account.accountId(), "ice")
        try await phone.shutdown()
    }

    /// The screen stream sends the current decision first. Idle, the core leaves the screen
    /// alone (only rotation is allowed) and platform inputs change nothing.
    func testCallScreenStreamSendsTheIdleDecisionFirst() async throws {
        let phone = try loopbackPhone()
        let idle = CallScreenDecision(
            screenOffByProximity: false, blankScreen: false, keepScreenOn: false,
            rotationAllowed: true, showInCallUi: false, showIncomingUi: .hidden)
        let first = try await firstMatch(phone.callScreenUpdates(), what: "a decision", within: 5) { _ in true }
        XCTAssertEqual(first, idle)
        XCTAssertEqual(phone.callScreen(), idle)
        phone.updateCallScreen(input: .foreground(foreground: false))
        phone.updateCallScreen(input: .orientation(orientation: .faceUp))
        phone.updateCallScreen(input: .proximity(proximity: .near))
        XCTAssertEqual(phone.callScreen(), idle, "no call: nothing but rotation")
        try await phone.shutdown()
    }

    /// The route stream sends the current state first; without a route platform the user's
    /// choice of an unavailable route is refused.
    func testAudioRouteStreamSendsTheCurrentStateFirst() async throws {
        let phone = try loopbackPhone()
        let first = try await firstMatch(phone.audioRouteUpdates(), what: "a route state", within: 5) { _ in true }
        XCTAssertEqual(first, AudioRouteState(available: [], selected: nil))
        XCTAssertThrowsError(try phone.selectAudioRoute(route: .speaker))
        try await phone.shutdown()
    }

    /// A call the peer never answers (a silent UDP socket on loopback) drives the screen
    /// rules: the proximity lock while dialing on the earpiece, blanking when the platform
    /// reports "near", keep-on instead on the speaker, and the call-ended screen after hangup.
    func testCallScreenDecisionsFollowTheCallAndThePlatformInputs() async throws {
        let peer = try SilentUDPPeer()
        let phone = try loopbackPhone(secrets: ["me": .password(password: "pw")])
        let account = try await phone.addAccount(
            config: AccountConfig(
                accountId: "me", server: "sip:127.0.0.1:\(peer.port)", user: "me", register: false))
        let seen = Recorder<CallScreenDecision>()
        let updates = phone.callScreenUpdates()
        let consumer = Task {
            for await decision in updates { seen.append(decision) }
        }
        defer { consumer.cancel() }
        try await seen.wait("the idle decision") { $0.count == 1 }

        let call = try await account.call(target: "sip:nobody@127.0.0.1:\(peer.port)", audio: .silence, media: nil)
        let dialing = try await seen.wait("dialing") { $0.last?.showInCallUi == true }
        XCTAssertTrue(dialing.screenOffByProximity, "\(dialing)")
        XCTAssertFalse(dialing.blankScreen || dialing.keepScreenOn || dialing.rotationAllowed, "\(dialing)")
        XCTAssertEqual(dialing.showIncomingUi, .hidden)
        XCTAssertEqual(phone.callScreen(), dialing)

        phone.updateCallScreen(input: .proximity(proximity: .near))
        let near = try await seen.wait("blank screen") { $0.last?.blankScreen == true }
        XCTAssertTrue(near.screenOffByProximity)

        phone.updateCallScreen(input: .route(route: .speaker))
        let speaker = try await seen.wait("speaker") { $0.last?.screenOffByProximity == false }
        XCTAssertTrue(speaker.keepScreenOn && speaker.showInCallUi && !speaker.blankScreen, "\(speaker)")

        try await call.hangup()
        try await call.ended(within: 5)
        let ending = try await seen.wait("the call-ended screen") { $0.last?.keepScreenOn == false }
        XCTAssertTrue(ending.showInCallUi && !ending.screenOffByProximity, "\(ending)")
        let idle = try await seen.wait("idle again", within: 10) { $0.last?.showInCallUi == false }
        XCTAssertTrue(idle.rotationAllowed, "\(idle)")
        try await phone.shutdown()
    }

    /// Phone events have no current value: the stream subscribes when it is made, so events
    /// that happen before anyone iterates are buffered, not lost. Declining a push report
    /// ends it (`pushReportEnded` with `declined`, the end reason calls use too); removing an
    /// account is an event too.
    func testPhoneEventsStreamSubscribesWhenMade() async throws {
        let phone = try loopbackPhone(secrets: ["gone": .password(password: "pw")])
        let events = phone.phoneEvents()
        let report = try phone.handlePush(
            payload: #"{"type":"incoming_call","call_id":"ev1@pbx","from":"sip:+4930123@pbx"}"#)
        XCTAssertNil(report.alreadyEnded)
        // CallKit hands UUIDs back in upper case.
        XCTAssertTrue(try phone.declinePushReport(reportId: report.reportId.uppercased()))
        XCTAssertFalse(try phone.declinePushReport(reportId: report.reportId), "no longer waiting")
        XCTAssertThrowsError(try phone.declinePushReport(reportId: "not-a-uuid"))
        let account = try await phone.addAccount(
            config: AccountConfig(accountId: "gone", server: "sip:127.0.0.1:9", user: "gone", register: false))
        try await account.remove()

        let seen = Recorder<PhoneEvent>()
        let consumer = Task {
            for await event in events { seen.append(event) }
        }
        defer { consumer.cancel() }
        try await seen.wait("two events") { $0.count >= 2 }
        XCTAssertEqual(
            seen.all,
            [
                .pushReportEnded(reportId: report.reportId, reason: .declined),
                .accountRemoved(accountId: "gone"),
            ])
        try await phone.shutdown()
    }

    /// Ending the iteration (here: cancelling the consuming task) cancels the core's
    /// TaskHandle, so the listener is released and no more updates are produced.
    func testCancellingTheConsumerCancelsTheTaskHandle() async throws {
        let phone = try loopbackPhone()
        let sub = phone.callScreenSubscription()
        let handle = sub.handle
        let first = expectation(description: "current value")
        let consumer = Task {
            var n = 0
            for await _ in sub.stream {
                n += 1
                if n == 1 { first.fulfill() }
            }
            return n
        }
        await fulfillment(of: [first], timeout: 5)
        XCTAssertFalse(handle.isFinished())
        consumer.cancel()
        _ = await consumer.value
        XCTAssertTrue(handle.isFinished())

        // firstMatch stops its iteration when it returns, which ends that subscription too.
        let calls = phone.callsSubscription()
        let none = try? await firstMatch(calls.stream, what: "a call", within: 0.2) { _ in true }
        XCTAssertNil(none)
        XCTAssertTrue(calls.handle.isFinished())
    }

    func testFirstMatchTimesOutAndReportsEnd() async {
        let (stream, c) = AsyncStream<Int>.makeStream()
        c.yield(1)
        do {
            _ = try await firstMatch(stream, what: "two", within: 0.1) { $0 == 2 }
            XCTFail("matched")
        } catch {
            XCTAssertEqual(error as? HandsetAsyncError, .timedOut(what: "two", seconds: 0.1))
        }
        let (ended, e) = AsyncStream<Int>.makeStream()
        e.yield(1)
        e.finish()
        do {
            _ = try await firstMatch(ended, what: "two", within: 5) { $0 == 2 }
            XCTFail("matched")
        } catch {
            XCTAssertEqual(error as? HandsetAsyncError, .ended(what: "two"))
        }
    }
}

/// Collects a stream's elements from a consuming task, for tests that wait on them.
private final class Recorder<Element: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var elements: [Element] = []

    func append(_ element: Element) {
        lock.lock()
        elements.append(element)
        lock.unlock()
    }

    var all: [Element] {
        lock.lock()
        defer { lock.unlock() }
        return elements
    }

    /// Waits until `done` holds for the elements so far; returns the last one.
    @discardableResult
    func wait(
        _ what: String, within seconds: Double = 5, until done: ([Element]) -> Bool
    ) async throws -> Element {
        let deadline = Date().addingTimeInterval(seconds)
        while Date() < deadline {
            let now = all
            if done(now), let last = now.last { return last }
            try await Task.sleep(nanoseconds: 10_000_000)
        }
        throw HandsetAsyncError.timedOut(what: "\(what) (seen: \(all))", seconds: seconds)
    }
}

/// A UDP socket on 127.0.0.1 that never reads nor answers: a SIP peer whose calls stay
/// unanswered until hung up.
private final class SilentUDPPeer {
    private let fd: Int32
    let port: UInt16

    struct Failure: Error { let call: String }

    init() throws {
        #if canImport(Glibc)
            let sock = socket(AF_INET, Int32(SOCK_DGRAM.rawValue), 0)
        #else
            let sock = socket(AF_INET, SOCK_DGRAM, 0)
        #endif
        guard sock >= 0 else { throw Failure(call: "socket") }
        var addr = sockaddr_in()
        #if canImport(Darwin)
            addr.sin_len = UInt8(MemoryLayout<sockaddr_in>.size)
        #endif
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = 0
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bind(sock, sa, len) == 0 && getsockname(sock, sa, &len) == 0
            }
        }
        guard bound else {
            close(sock)
            throw Failure(call: "bind")
        }
        fd = sock
        port = UInt16(bigEndian: addr.sin_port)
    }

    deinit { close(fd) }
}
