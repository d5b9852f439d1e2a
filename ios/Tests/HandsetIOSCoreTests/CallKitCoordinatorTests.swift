import Foundation
import XCTest

@testable import HandsetIOSCore

final class CallKitCoordinatorTests: XCTestCase {
    private var next = 0
    private func uuid(_ n: Int) -> UUID {
        UUID(uuidString: String(format: "00000000-0000-4000-8000-%012d", n))!
    }

    private func coordinator() -> CallKitCoordinator {
        next = 0
        return CallKitCoordinator { [unowned self] in
            self.next += 1
            return self.uuid(self.next)
        }
    }

    private func incoming(_ id: UInt64, _ state: CoreCallState, reportId: UUID? = nil) -> CoreCallEvent {
        CoreCallEvent(
            callId: id, direction: .incoming, remote: "\"Alice\" <sip:+4930123@pbx;user=phone>",
            displayName: "Alice", state: state, reportId: reportId)
    }

    private func outgoing(_ id: UInt64, _ state: CoreCallState) -> CoreCallEvent {
        CoreCallEvent(callId: id, direction: .outgoing, remote: "sip:bob@example.com", state: state)
    }

    func testIncomingCallIsReportedOnceAndEndsAsTheCoreSays() {
        let c = coordinator()
        let handle = CallHandle(kind: .phoneNumber, value: "+4930123")
        XCTAssertEqual(
            c.handle(incoming(1, .incoming)),
            [.reportIncoming(uuid: uuid(1), handle: handle, displayName: "Alice", hasVideo: false)])
        XCTAssertEqual(c.handle(incoming(1, .incoming)), [], "a repeated current value reports nothing")
        XCTAssertEqual(c.uuid(forCall: 1), uuid(1))
        XCTAssertEqual(c.callId(for: uuid(1)), 1)
        XCTAssertEqual(c.handle(incoming(1, .active(onHold: false))), [])
        XCTAssertEqual(c.handle(incoming(1, .ended(.remoteHangup))), [.ended(uuid: uuid(1), reason: .remoteEnded)])
        XCTAssertEqual(c.handle(incoming(1, .ended(.remoteHangup))), [], "ended once")
        XCTAssertEqual(c.liveCalls, [])
    }

    func testOutgoingCallThroughCXStartCallActionReportsConnectingThenConnected() {
        let c = coordinator()
        let start = uuid(99)
        c.expectOutgoing(uuid: start)
        // The core's updates can arrive before account.call returns the id.
        XCTAssertEqual(c.handle(outgoing(7, .calling)), [.outgoingStartedConnecting(uuid: start)])
        c.bindOutgoing(callId: 7, uuid: start)
        XCTAssertEqual(c.handle(outgoing(7, .ringing)), [])
        XCTAssertEqual(c.handle(outgoing(7, .active(onHold: false))), [.outgoingConnected(uuid: start)])
        XCTAssertEqual(c.handle(outgoing(7, .active(onHold: true))), [])
        XCTAssertEqual(c.handle(outgoing(7, .ended(.localHangup))), [], "CallKit ended it itself")
    }

    func testOutgoingAnsweredAtOnceStillReportsConnectingFirst() {
        let c = coordinator()
        c.bindOutgoing(callId: 3, uuid: uuid(50))
        XCTAssertEqual(
            c.handle(outgoing(3, .active(onHold: false))),
            [.outgoingStartedConnecting(uuid: uuid(50)), .outgoingConnected(uuid: uuid(50))])
    }

    func testOutgoingCallPlacedAroundCallKitIsNotReported() {
        let c = coordinator()
        XCTAssertEqual(c.handle(outgoing(4, .calling)), [])
        XCTAssertEqual(c.handle(outgoing(4, .active(onHold: false))), [])
        XCTAssertEqual(c.handle(outgoing(4, .ended(.remoteHangup))), [])
    }

    func testPushReportedCallIsUpdatedNotReportedTwice() {
        let c = coordinator()
        let report = uuid(77)
        c.callKitKnows(report)
        XCTAssertEqual(
            c.handle(incoming(2, .incoming, reportId: report)),
            [.update(uuid: report, handle: CallHandle(kind: .phoneNumber, value: "+4930123"), displayName: "Alice")])
        XCTAssertEqual(c.handle(incoming(2, .ended(.cancelled), reportId: report)), [.ended(uuid: report, reason: .unanswered)])
    }

    func testACallFirstSeenEndedIsNotReported() {
        let c = coordinator()
        XCTAssertEqual(c.handle(incoming(5, .ended(.cancelled))), [])
        XCTAssertNil(c.uuid(forCall: 5))
    }

    func testEndReasonTable() {
        typealias C = CallKitCoordinator
        XCTAssertNil(C.endedReason(.localHangup, direction: .outgoing))
        XCTAssertNil(C.endedReason(.rejectedLocally(status: 603), direction: .incoming))
        XCTAssertEqual(C.endedReason(.remoteHangup, direction: .outgoing), .remoteEnded)
        XCTAssertEqual(C.endedReason(.cancelled, direction: .incoming), .unanswered)
        XCTAssertNil(C.endedReason(.cancelled, direction: .outgoing))
        XCTAssertEqual(C.endedReason(.rejected(status: 486), direction: .outgoing), .remoteEnded)
        XCTAssertEqual(C.endedReason(.rejected(status: 603), direction: .outgoing), .remoteEnded)
        XCTAssertEqual(C.endedReason(.rejected(status: 480), direction: .outgoing), .unanswered)
        XCTAssertEqual(C.endedReason(.rejected(status: 404), direction: .outgoing), .failed)
        XCTAssertEqual(C.endedReason(.failed, direction: .incoming), .failed)
        XCTAssertEqual(C.endedReason(.timeout, direction: .outgoing), .failed)
        XCTAssertEqual(C.endedReason(.networkError, direction: .incoming), .failed)
    }

    func testUserActionsMapToCoreCommands() {
        let c = coordinator()
        _ = c.handle(incoming(1, .incoming))
        let u = uuid(1)
        XCTAssertEqual(c.command(for: .answer(u)), .answer(callId: 1))
        XCTAssertEqual(c.command(for: .end(u)), .reject(callId: 1, status: 603), "declining a ringing call")
        XCTAssertNil(c.command(for: .setHeld(u, true)), "cannot hold a ringing call")
        _ = c.handle(incoming(1, .active(onHold: false)))
        XCTAssertNil(c.command(for: .answer(u)), "already answered")
        XCTAssertEqual(c.command(for: .end(u)), .hangup(callId: 1))
        XCTAssertEqual(c.command(for: .setHeld(u, true)), .hold(callId: 1, onHold: true))
        XCTAssertEqual(c.command(for: .playDTMF(u, "12#")), .sendDtmf(callId: 1, digits: "12#"))
        XCTAssertNil(c.command(for: .playDTMF(u, "1x")))
        XCTAssertNil(c.command(for: .playDTMF(u, "")))
        XCTAssertEqual(c.command(for: .setMuted(u, true)), .mute(callId: 1, muted: true))
        XCTAssertNil(c.command(for: .end(uuid(42))), "unknown UUID")
        _ = c.handle(incoming(1, .ended(.remoteHangup)))
        XCTAssertNil(c.command(for: .end(u)), "already over")
    }

    func testResetForgetsEverything() {
        let c = coordinator()
        _ = c.handle(incoming(1, .incoming))
        c.expectOutgoing(uuid: uuid(60))
        XCTAssertEqual(c.liveCalls, [1])
        c.reset()
        XCTAssertEqual(c.liveCalls, [])
        XCTAssertNil(c.callId(for: uuid(1)))
        XCTAssertEqual(c.handle(outgoing(2, .calling)), [], "the pending start was forgotten too")
    }

    func testHandlesFromAddresses() {
        XCTAssertEqual(CallHandle.from(address: "sip:+49 30 123@pbx"), CallHandle(kind: .phoneNumber, value: "+49 30 123"))
        XCTAssertEqual(CallHandle.from(address: "tel:+1-555-0100"), CallHandle(kind: .phoneNumber, value: "+1-555-0100"))
        XCTAssertEqual(CallHandle.from(address: "SIPS:0301234@pbx:5061;transport=tls"), CallHandle(kind: .phoneNumber, value: "0301234"))
        XCTAssertEqual(CallHandle.from(address: "<sip:alice@example.com>"), CallHandle(kind: .generic, value: "alice@example.com"))
        XCTAssertEqual(CallHandle.from(address: "sip:peer8@127.0.0.1"), CallHandle(kind: .generic, value: "peer8@127.0.0.1"))
        XCTAssertEqual(CallHandle.from(address: "+4930123"), CallHandle(kind: .phoneNumber, value: "+4930123"))
        XCTAssertEqual(CallHandle.from(address: "---"), CallHandle(kind: .generic, value: "---"), "no digits")
        XCTAssertEqual(CallHandle.from(address: ""), CallHandle(kind: .generic, value: ""))
    }
}
