package dev.handset.android.core

import dev.handset.CallDirection
import dev.handset.CallDirection.INCOMING
import dev.handset.CallDirection.OUTGOING
import dev.handset.EndReason
import org.junit.Assert.assertEquals
import org.junit.Test

class EndReasonsTest {
    /** The whole table, EndReason × direction: a new core reason must be added here too. */
    @Test
    fun everyEndReasonAndDirectionHasItsDisconnectCode() {
        val table: List<Triple<EndReason, CallDirection, DisconnectCode>> = listOf(
            Triple(EndReason.LocalHangup, OUTGOING, DisconnectCode.LOCAL),
            Triple(EndReason.LocalHangup, INCOMING, DisconnectCode.LOCAL),
            Triple(EndReason.RemoteHangup, OUTGOING, DisconnectCode.REMOTE),
            Triple(EndReason.RemoteHangup, INCOMING, DisconnectCode.REMOTE),
            Triple(EndReason.Busy, OUTGOING, DisconnectCode.BUSY),
            Triple(EndReason.Busy, INCOMING, DisconnectCode.MISSED),
            Triple(EndReason.Declined, OUTGOING, DisconnectCode.REMOTE),
            Triple(EndReason.Declined, INCOMING, DisconnectCode.REJECTED),
            Triple(EndReason.Unanswered, OUTGOING, DisconnectCode.REMOTE),
            Triple(EndReason.Unanswered, INCOMING, DisconnectCode.MISSED),
            Triple(EndReason.Cancelled, OUTGOING, DisconnectCode.CANCELED),
            Triple(EndReason.Cancelled, INCOMING, DisconnectCode.MISSED),
            Triple(EndReason.AnsweredElsewhere, INCOMING, DisconnectCode.ANSWERED_ELSEWHERE),
            Triple(EndReason.DeclinedElsewhere, INCOMING, DisconnectCode.REJECTED),
            Triple(EndReason.Failed(404u), OUTGOING, DisconnectCode.ERROR),
            Triple(EndReason.Failed(null), INCOMING, DisconnectCode.ERROR),
            Triple(EndReason.NetworkLost, OUTGOING, DisconnectCode.ERROR),
            Triple(EndReason.NetworkLost, INCOMING, DisconnectCode.ERROR),
        )
        for ((reason, direction, code) in table) {
            assertEquals("$reason $direction", code, EndReasons.disconnect(reason, direction).code)
        }
    }

    /** The status a failure carries is for logs: the code does not depend on it. */
    @Test
    fun aFailureIsAnErrorWhateverItsStatus() {
        val codes = listOf<UShort?>(null, 404u, 486u, 503u).map { EndReasons.disconnect(EndReason.Failed(it), OUTGOING) }
        assertEquals(setOf(Disconnect(DisconnectCode.ERROR, "Failed")), codes.toSet())
        assertEquals("NetworkLost", EndReasons.disconnect(EndReason.NetworkLost, INCOMING).reason)
    }
}
