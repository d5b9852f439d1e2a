package dev.handset.android.core

import dev.handset.CallDirection
import dev.handset.CallScreenDecision
import dev.handset.CallState
import dev.handset.EndReason
import dev.handset.IncomingUi
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Test

class ConnectionStatesTest {
    private val active = CallState.Active("PCMU", false, false)
    private val held = CallState.Active("PCMU", false, true)

    @Test
    fun coreStatesBecomeTelecomStates() {
        val inc = CallDirection.INCOMING
        assertEquals(ConnectionStep(CallStage.RINGING, TelecomUpdate.Ringing), ConnectionStates.next(CallStage.RINGING, CallState.Incoming, inc))
        for (state in listOf(CallState.Calling, CallState.Ringing, CallState.EarlyMedia)) {
            assertEquals(ConnectionStep(CallStage.DIALING, TelecomUpdate.Dialing), ConnectionStates.next(CallStage.DIALING, state, CallDirection.OUTGOING))
        }
        assertEquals(ConnectionStep(CallStage.ACTIVE, TelecomUpdate.Active), ConnectionStates.next(CallStage.ANSWERING, active, inc))
        assertEquals(ConnectionStep(CallStage.HELD, TelecomUpdate.Held), ConnectionStates.next(CallStage.ACTIVE, held, inc))
        assertEquals(ConnectionStep(CallStage.ACTIVE, TelecomUpdate.Active), ConnectionStates.next(CallStage.HELD, active, inc))
    }

    /** An answer in progress is not undone by the ringing state that was current before it. */
    @Test
    fun answeringStaysAnsweringUntilTheCoreSaysActive() {
        assertEquals(
            ConnectionStep(CallStage.ANSWERING, null),
            ConnectionStates.next(CallStage.ANSWERING, CallState.Incoming, CallDirection.INCOMING),
        )
    }

    /** The end uses the one table, with the call's direction; nothing follows it. */
    @Test
    fun theEndIsTheCoresReasonAndIsFinal() {
        val missed = ConnectionStates.next(CallStage.RINGING, CallState.Ended(EndReason.Cancelled, null), CallDirection.INCOMING)
        assertEquals(CallStage.ENDED, missed.stage)
        assertEquals(TelecomUpdate.Disconnected(Disconnect(DisconnectCode.MISSED, "Cancelled")), missed.update)
        val cancelled = ConnectionStates.next(CallStage.DIALING, CallState.Ended(EndReason.Cancelled, null), CallDirection.OUTGOING)
        assertEquals(TelecomUpdate.Disconnected(Disconnect(DisconnectCode.CANCELED, "Cancelled")), cancelled.update)
        assertEquals(ConnectionStep(CallStage.ENDED, null), ConnectionStates.next(CallStage.ENDED, active, CallDirection.INCOMING))
    }

    private fun decision(incomingUi: IncomingUi) = CallScreenDecision(false, false, true, false, false, incomingUi)

    /** The ringing call Telecom wants our UI for wins; else the newest call not ringing. */
    @Test
    fun theNoticeShowsTheRingingCallFirstThenTheNewestOther() {
        val first = NoticeCandidate(1, "Alice", CallStage.ACTIVE, false)
        val second = NoticeCandidate(2, "Bob", CallStage.HELD, false)
        val ringing = NoticeCandidate(3, "Carol", CallStage.RINGING, true)
        val ringingElsewhere = NoticeCandidate(4, "Dave", CallStage.RINGING, false)
        val full = decision(IncomingUi.FULL_SCREEN)
        assertEquals(CallNotice(3, "Carol", CallStage.RINGING, true), CallNotice.choose(listOf(first, ringing, second), full))
        assertEquals(CallNotice(2, "Bob", CallStage.HELD, false), CallNotice.choose(listOf(first, second, ringingElsewhere), decision(IncomingUi.NOTIFICATION)))
        assertNull(CallNotice.choose(listOf(ringingElsewhere), full))
        assertNull(CallNotice.choose(listOf(first.copy(stage = CallStage.ENDED)), full))
    }

    @Test
    fun everyStageButRingingRecords() {
        for (stage in CallStage.entries) {
            val records = CallNotice(1, "x", stage, false).recordsAudio
            if (stage == CallStage.RINGING || stage == CallStage.ENDED) assertFalse("$stage", records) else assertTrue("$stage", records)
        }
    }
}
