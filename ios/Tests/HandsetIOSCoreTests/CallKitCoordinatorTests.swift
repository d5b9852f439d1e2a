import Foundation
import XCTest

@testable import HandsetIOSCore

final class CallKitCoordinatorTests: XCTestCase {
    private func uuid(_ n: Int) -> UUID {
        UUID(uuidString: String(format: "00000000-0000-4000-8000-%012d", n))!
    }

    /// An incoming call's event; its CallKit UUID is the core's report id `uuid(id + 100)`
    /// unless a push report's id is given.
    private func incoming(_ id: UInt64, _ state: CoreCallState, reportId: UUID? = nil) -> CoreCallEvent {
        CoreCallEvent(
            callId: id, direction: .incoming, remote: "\"Alice\" <sip:+4930123@pbx;user=phone>",
            displayName: "Alice", state: state, reportId: reportId ?? uuid(Int(id) + 100))
    }

    private func outgoing(_ id: UInt64, _ state: CoreCallState) -> CoreCallEvent {
        CoreCallEvent(
            callId: id, direction: .outgoing, remote: "sip:bob@example.com", state: state,
            reportId: uuid(Int(id) + 200))
    }

    func testIncomingCallIsReportedOnceUnderItsReportIdAndEndsAsTheCoreSays() {
        let c = CallKitCoordinator()
        let u = uuid(101)
        let handle = CallHandle(kind: .phoneNumber, value: "+4930123")
        XCTAssertEqual(
            c.handle(incoming(1, .incoming)),
            [.reportIncoming(uuid: u, handle: handle, displayName: "Alice", hasVideo: false)])
        XCTAssertEqual(c.handle(incoming(1, .incoming)), [], "a repeated current value reports nothing")
        XCTAssertEqual(c.uuid(forCall: 1), u)
        XCTAssertEqual(c.callId(for: u), 1)
        XCTAssertEqual(c.handle(incoming(1, .active(onHold: false))), [])
        XCTAssertEqual(c.handle(incoming(1, .ended(.remoteHangup))), [.ended(uuid: u, reason: .remoteEnded)])
        XCTAssertEqual(c.handle(incoming(1, .ended(.remoteHangup))), [], "ended once")
        XCTAssertEqual(c.liveCalls, [])
    }

    /// The core places the call first; CallKit hears nothing of it until it performs the
    /// `CXStartCallAction` under the call's report id, then is caught up.
    func testOutgoingCallIsReportedOnceCallKitStartedIt() {
        let c = CallKitCoordinator()
        let u = uuid(207)
        c.outgoingPlaced(callId: 7, uuid: u)
        XCTAssertEqual(c.handle(outgoing(7, .calling)), [], "CallKit has not started it yet")
        XCTAssertEqual(c.handle(outgoing(7, .ringing)), [])
        XCTAssertEqual(c.outgoingStarted(uuid: u), [.outgoingStartedConnecting(uuid: u)])
        XCTAssertEqual(c.handle(outgoing(7, .earlyMedia)), [])
        XCTAssertEqual(c.handle(outgoing(7, .active(onHold: false))), [.outgoingConnected(uuid: u)])
        XCTAssertEqual(c.handle(outgoing(7, .active(onHold: true))), [])
        XCTAssertEqual(c.liveCalls, [7])
        XCTAssertEqual(c.handle(outgoing(7, .ended(.localHangup))), [], "CallKit ended it itself")
        XCTAssertNil(c.outgoingStarted(uuid: uuid(999)), "no call placed under that UUID")
    }

    func testOutgoingAnsweredBeforeCallKitStartedItReportsConnectingThenConnected() {
        let c = CallKitCoordinator()
        let u = uuid(203)
        c.outgoingPlaced(callId: 3, uuid: u)
        XCTAssertEqual(c.handle(outgoing(3, .active(onHold: false))), [])
        XCTAssertEqual(c.outgoingStarted(uuid: u), [.outgoingStartedConnecting(uuid: u), .outgoingConnected(uuid: u)])
    }

    /// A call already over when CallKit learns of it is ended at once, as the other side's.
    func testOutgoingOverBeforeCallKitStartedItIsEndedAtOnce() {
        let c = CallKitCoordinator()
        let u = uuid(204)
        c.outgoingPlaced(callId: 4, uuid: u)
        XCTAssertEqual(c.handle(outgoing(4, .ended(.busy))), [])
        XCTAssertEqual(c.outgoingStarted(uuid: u), [.ended(uuid: u, reason: .remoteEnded)])
        c.outgoingPlaced(callId: 5, uuid: uuid(205))
        XCTAssertEqual(c.handle(outgoing(5, .ended(.networkLost))), [])
        XCTAssertEqual(c.outgoingStarted(uuid: uuid(205)), [.ended(uuid: uuid(205), reason: .failed)])
    }

    func testOutgoingCallPlacedAroundCallKitIsNotReported() {
        let c = CallKitCoordinator()
        XCTAssertEqual(c.handle(outgoing(4, .calling)), [])
        XCTAssertEqual(c.handle(outgoing(4, .active(onHold: false))), [])
        XCTAssertEqual(c.handle(outgoing(4, .ended(.remoteHangup))), [])
        XCTAssertEqual(c.liveCalls, [])
    }

    /// The INVITE of a pushed call names its push report's id: CallKit's call is updated, not
    /// reported twice.
    func testPushReportedCallIsUpdatedNotReportedTwice() {
        let c = CallKitCoordinator()
        let report = uuid(77)
        c.pushReported([.reportIncoming(uuid: report, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
        XCTAssertEqual(
            c.handle(incoming(2, .incoming, reportId: report)),
            [.update(uuid: report, handle: CallHandle(kind: .phoneNumber, value: "+4930123"), displayName: "Alice")])
        XCTAssertEqual(c.handle(incoming(2, .ended(.cancelled), reportId: report)), [.ended(uuid: report, reason: .unanswered)])
    }

    func testACallFirstSeenEndedIsNotReported() {
        let c = CallKitCoordinator()
        XCTAssertEqual(c.handle(incoming(5, .ended(.cancelled))), [])
        XCTAssertNil(c.uuid(forCall: 5))
    }

    /// The whole table, EndReason × direction: a new core reason must be added here too.
    func testEndReasonTable() {
        typealias C = CallKitCoordinator
        let table: [(CoreEndReason, CoreCallDirection, CallEndedReasonKind?)] = [
            (.localHangup, .outgoing, nil), (.localHangup, .incoming, nil),
            (.remoteHangup, .outgoing, .remoteEnded), (.remoteHangup, .incoming, .remoteEnded),
            (.busy, .outgoing, .remoteEnded), (.busy, .incoming, .unanswered),
            (.declined, .outgoing, .remoteEnded), (.declined, .incoming, nil),
            (.unanswered, .outgoing, .unanswered), (.unanswered, .incoming, .unanswered),
            (.cancelled, .outgoing, nil), (.cancelled, .incoming, .unanswered),
            (.answeredElsewhere, .incoming, .answeredElsewhere),
            (.declinedElsewhere, .incoming, .declinedElsewhere),
            (.failed, .outgoing, .failed), (.failed, .incoming, .failed),
            (.networkLost, .outgoing, .failed), (.networkLost, .incoming, .failed),
        ]
        for (reason, direction, kind) in table {
            XCTAssertEqual(C.endedReason(reason, direction: direction), kind, "\(reason) \(direction)")
        }
        XCTAssertEqual(C.reportEndedReason(.declined), .remoteEnded, "a decline CallKit did not see")
        XCTAssertEqual(C.reportEndedReason(.cancelled), .unanswered)
    }

    func testUserActionsMapToCoreCommands() {
        let c = CallKitCoordinator()
        _ = c.handle(incoming(1, .incoming))
        let u = uuid(101)
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
    /// core declines the report, and its `declined` end reports nothing more.
    func testDecliningAPushReportBeforeItsInviteDeclinesTheReport() {
        let c = CallKitCoordinator()
        let report = uuid(70)
        let handle = CallHandle(kind: .phoneNumber, value: "+4930123")
        c.pushReported([.reportIncoming(uuid: report, handle: handle, displayName: "Alice", hasVideo: false)])
        XCTAssertTrue(c.isWaitingPushReport(report))
        XCTAssertNil(c.command(for: .answer(report)), "no call to answer before the INVITE")
        XCTAssertEqual(c.command(for: .end(report)), .declinePushReport(reportId: report))
        XCTAssertNil(c.command(for: .end(report)), "declined once")
        XCTAssertEqual(c.declineAnswered(reportId: report, wasWaiting: true), .fulfill)
        XCTAssertEqual(c.pushReportEnded(report, reason: .declined), [], "CallKit already ended it")
        XCTAssertFalse(c.isWaitingPushReport(report))
        XCTAssertEqual(c.pushReportEnded(report, reason: .declined), [], "ended once")
    }

    /// The INVITE came between the user's decline and the core's answer: its call is
    /// declined like any ringing call.
    func testADeclineThatCrossedTheInviteRejectsTheCall() {
        let c = CallKitCoordinator()
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

    /// `PhoneEvent.pushReportEnded` ends the CallKit report with the one table's reason.
    func testPushReportEndedEndsTheCallKitReport() {
        let table: [(CoreEndReason, CallEndedReasonKind)] = [
            (.cancelled, .unanswered), (.unanswered, .unanswered), (.answeredElsewhere, .answeredElsewhere),
            (.declinedElsewhere, .declinedElsewhere), (.declined, .remoteEnded),
        ]
        for (n, (reason, kind)) in table.enumerated() {
            let c = CallKitCoordinator()
            let report = uuid(80 + n)
            c.pushReported([.reportIncoming(uuid: report, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
            // declined without a CallKit decline (the app declined by itself): CallKit still
            // shows the call, so it is ended.
            XCTAssertEqual(c.pushReportEnded(report, reason: reason), [.ended(uuid: report, reason: kind)], "\(reason)")
            XCTAssertEqual(c.pushReportEnded(report, reason: reason), [], "\(reason): once")
            XCTAssertNil(c.command(for: .end(report)), "\(reason): over")
        }
    }

    func testPushReportEndedIgnoresReportsCallKitDoesNotShowOrWhoseCallCame() {
        let c = CallKitCoordinator()
        XCTAssertEqual(c.pushReportEnded(uuid(90), reason: .cancelled), [], "never reported to CallKit")
        let cancelled = uuid(91)
        c.pushReported([
            .reportIncoming(uuid: cancelled, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false),
            .ended(uuid: cancelled, reason: .answeredElsewhere),
        ])
        XCTAssertFalse(c.isWaitingPushReport(cancelled), "a cancel push is reported and ended at once")
        let report = uuid(92)
        c.pushReported([.reportIncoming(uuid: report, handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
        _ = c.handle(incoming(3, .incoming, reportId: report))
        XCTAssertEqual(c.pushReportEnded(report, reason: .unanswered), [], "the call's own updates end it")
        XCTAssertEqual(c.command(for: .end(report)), .reject(callId: 3, status: 603))
    }

    func testResetForgetsEverything() {
        let c = CallKitCoordinator()
        _ = c.handle(incoming(1, .incoming))
        c.outgoingPlaced(callId: 2, uuid: uuid(60))
        c.pushReported([.reportIncoming(uuid: uuid(61), handle: PushPlan.unknownCaller, displayName: nil, hasVideo: false)])
        XCTAssertEqual(c.liveCalls, [1])
        c.reset()
        XCTAssertFalse(c.isWaitingPushReport(uuid(61)))
        XCTAssertNil(c.command(for: .end(uuid(61))))
        XCTAssertEqual(c.liveCalls, [])
        XCTAssertNil(c.callId(for: uuid(101)))
        XCTAssertNil(c.outgoingStarted(uuid: uuid(60)), "the placed call was forgotten too")
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
