import Foundation
import Handset
import XCTest

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
            push: StaticPushTokenProvider(PushToken(service: .apnsVoip, token: "t0k")))
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
        XCTAssertEqual(try phone.pushToken()?.service, .apnsVoip)
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

    /// The screen stream sends the current state first, then each change; the core's
    /// proximity input goes through the phone.
    func testCallScreenStreamSendsCurrentValueThenChanges() async throws {
        let phone = try loopbackPhone()
        var states: [CallScreenState] = []
        phone.setAudioRoute(route: .earpiece)
        for await state in phone.callScreenUpdates() {
            states.append(state)
            if states.count == 1 { phone.setProximity(near: true) } else { break }
        }
        XCTAssertEqual(states.map(\.inCall), [false, false])
        XCTAssertEqual(states.map(\.proximityNear), [false, true])
        XCTAssertEqual(states.map(\.screenOff), [false, false], "no call, so the screen stays on")
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
