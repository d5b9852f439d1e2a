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
        XCTAssertEqual(c.command(for: .setMuted(u, false)), .mute(callId: 1, muted: false))
        XCTAssertNil(c.command(for: .end(uuid(42))), "unknown UUID")
        _ = c.handle(incoming(1, .ended(.remoteHangup)))
        XCTAssertNil(c.command(for: .end(u)), "already over")
    }

    /// The push's report rings on CallKit; the user declines before the INVITE came: the
    /// core declines the report, and its `declinedByUser` end reports nothing more.
    func testDecliningAPushReportBeforeItsInviteDeclinesTheReport() {
        let c = coordinator()
        let report = uuid(70)
        let handle = CallHandle(kind: .phoneNumber, value: "+4930123")
        c.pushReported([.reportIncoming(uuid: report, handle: handle, displayName: "Alice", hasVideo: false)])
        XCTAssertTrue(c.isWaitingPushReport(report))
        XCTAssertNil(c.command(for: .answer(report)), "no call to answer before the INVITE")
        XCTAssertEqual(c.command(for: .end(report)), .declinePushReport(reportId: report))
        XCTAssertNil(c.command(for: .end(report)), "declined once")
        XCTAssertEqual(c.declineAnswered(reportId: report, wasWaiting: true), .fulfill)
        XCTAssertEqual(c.pushReportEnded(report, reason: .declinedByUser), [], "CallKit already ended it")
        XCTAssertFalse(c.isWaitingPushReport(report))
        XCTAssertEqual(c.pushReportEnded(report, reason: .declinedByUser), [], "ended once")
    }

    /// The INVITE came between the user's decline and the core's answer: its call is
    /// declined like any ringing call.
    func testADeclineThatCrossedTheInviteRejectsTheCall() {
        let c = coordinator()
        let report = uuid(71)
        c.pushReported([.reportIncoming(uuid: report, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
        XCTAssertEqual(c.command(for: .end(report)), .declinePushReport(reportId: report))
        _ = c.handle(incoming(8, .incoming, reportId: report))
        XCTAssertFalse(c.isWaitingPushReport(report), "the INVITE arrived")
        XCTAssertEqual(c.declineAnswered(reportId: report, wasWaiting: false), .run(.reject(callId: 8, status: 603)))
        // The report had ended on its own (timed out) and no call came: nothing to run.
        let other = uuid(72)
        c.pushReported([.reportIncoming(uuid: other, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
        XCTAssertEqual(c.command(for: .end(other)), .declinePushReport(reportId: other))
        XCTAssertEqual(c.declineAnswered(reportId: other, wasWaiting: false), .fulfill)
    }

    /// `PhoneEvent.pushReportEnded` ends the CallKit report with the mapped reason.
    func testPushReportEndedEndsTheCallKitReport() {
        let table: [(PushEndReason, CallEndedReasonKind)] = [
            (.missed, .unanswered), (.timedOut, .unanswered), (.answeredElsewhere, .answeredElsewhere),
            (.declinedElsewhere, .declinedElsewhere), (.declinedByUser, .remoteEnded),
        ]
        for (n, (reason, kind)) in table.enumerated() {
            let c = coordinator()
            let report = uuid(80 + n)
            c.pushReported([.reportIncoming(uuid: report, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
            // declinedByUser without a CallKit decline (the app declined by itself): CallKit
            // still shows the call, so it is ended.
            XCTAssertEqual(c.pushReportEnded(report, reason: reason), [.ended(uuid: report, reason: kind)], "\(reason)")
            XCTAssertEqual(c.pushReportEnded(report, reason: reason), [], "\(reason): once")
            XCTAssertNil(c.command(for: .end(report)), "\(reason): over")
        }
    }

    func testPushReportEndedIgnoresReportsCallKitDoesNotShowOrWhoseCallCame() {
        let c = coordinator()
        XCTAssertEqual(c.pushReportEnded(uuid(90), reason: .missed), [], "never reported to CallKit")
        let cancelled = uuid(91)
        c.pushReported([
            .reportIncoming(uuid: cancelled, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false),
            .ended(uuid: cancelled, reason: .answeredElsewhere),
        ])
        XCTAssertFalse(c.isWaitingPushReport(cancelled), "a cancel push is reported and ended at once")
        let report = uuid(92)
        c.pushReported([.reportIncoming(uuid: report, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
        _ = c.handle(incoming(3, .incoming, reportId: report))
        XCTAssertEqual(c.pushReportEnded(report, reason: .timedOut), [], "the call's own updates end it")
        XCTAssertEqual(c.command(for: .end(report)), .reject(callId: 3, status: 603))
    }

    func testResetForgetsEverything() {
        let c = coordinator()
        _ = c.handle(incoming(1, .incoming))
        c.expectOutgoing(uuid: uuid(60))
        c.pushReported([.reportIncoming(uuid: uuid(61), handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
        XCTAssertEqual(c.liveCalls, [1])
        c.reset()
        XCTAssertFalse(c.isWaitingPushReport(uuid(61)))
        XCTAssertNil(c.command(for: .end(uuid(61))))
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
