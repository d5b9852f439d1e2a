package dev.handset.android.core

import dev.handset.EndReason
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class TelecomCallsTest {
    private val id = "1b4e28ba-2fa1-81d2-883f-0016d3cca427"

    /** A push, a duplicate of it, then its INVITE: Telecom rings once and the call binds to it. */
    @Test
    fun aPushedCallRingsOnceAndItsInviteBindsToTheSameConnection() {
        val calls = TelecomCalls<String>()
        assertEquals(PushStep.ReportToTelecom, calls.pushReported(id, null))
        assertEquals(PushStep.AlreadyShown, calls.pushReported(id, null))
        assertNull(calls.connection(id))
        assertTrue(calls.connectionCreated(id, "connection-1"))
        assertEquals(IncomingStep.BindToShown, calls.callArrived(id))
        assertEquals("connection-1", calls.connection(id))
        assertEquals(listOf("connection-1"), calls.connections)
    }

    /** The INVITE can beat Telecom's connection: it binds when the connection is created. */
    @Test
    fun anInviteBeforeTheConnectionStillBinds() {
        val calls = TelecomCalls<String>()
        calls.pushReported(id, null)
        assertEquals(IncomingStep.BindToShown, calls.callArrived(id))
        assertTrue(calls.connectionCreated(id, "late"))
        assertEquals("late", calls.connection(id))
    }

    /** A call no push announced rings under its own id; a later push for it rings nothing. */
    @Test
    fun aCallWithoutPushIsAddedAndALatePushForItIsNotShownTwice() {
        val calls = TelecomCalls<String>()
        assertEquals(IncomingStep.AddToTelecom, calls.callArrived(id))
        assertEquals(PushStep.AlreadyShown, calls.pushReported(id, null))
        assertEquals(IncomingStep.BindToShown, calls.callArrived(id))
    }

    /** A cancel push ends what Telecom shows (as missed), and is not shown when nothing is. */
    @Test
    fun aCancelPushEndsOnlyWhatIsShown() {
        val calls = TelecomCalls<String>()
        assertEquals(PushStep.Ignore, calls.pushReported(id, EndReason.Cancelled))
        assertFalse(calls.isShown(id))
        calls.pushReported(id, null)
        assertEquals(
            PushStep.EndShown(Disconnect(DisconnectCode.ANSWERED_ELSEWHERE, "AnsweredElsewhere")),
            calls.pushReported(id, EndReason.AnsweredElsewhere),
        )
        assertEquals(
            PushStep.EndShown(Disconnect(DisconnectCode.MISSED, "Cancelled")),
            calls.pushReported(id, EndReason.Cancelled),
        )
    }

    @Test
    fun connectionsForIdsNobodyAskedForAreRefusedExceptOurOutgoingCalls() {
        val calls = TelecomCalls<String>()
        assertFalse(calls.connectionCreated(id, "stray"))
        assertNull(calls.connection(id))
        assertTrue(calls.connectionCreated(id, "outgoing", outgoing = true))
        assertEquals("outgoing", calls.connection(id))
        calls.ended(id)
        assertFalse(calls.isShown(id))
        assertEquals(emptyList<String>(), calls.connections)
        assertEquals("an ended id is new again", IncomingStep.AddToTelecom, calls.callArrived(id))
    }
}
