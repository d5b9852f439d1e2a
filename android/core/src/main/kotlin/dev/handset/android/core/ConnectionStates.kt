package dev.handset.android.core

import dev.handset.CallDirection
import dev.handset.CallScreenDecision
import dev.handset.CallState
import dev.handset.IncomingUi

/** Where a call stands for Telecom and the call notification. */
enum class CallStage {
    /** Ringing here. */
    RINGING,

    /** The user answered; the core is answering (the microphone is about to record). */
    ANSWERING,

    /** Our call is being placed or rings at the other end. */
    DIALING,

    /** Talking. */
    ACTIVE,

    /** Held by either side. */
    HELD,

    /** Over. */
    ENDED,
}

/** The Telecom call that a core state becomes: `setRinging`, `setDialing`, ... */
sealed interface TelecomUpdate {
    /** `setRinging()`. */
    data object Ringing : TelecomUpdate

    /** `setDialing()`. */
    data object Dialing : TelecomUpdate

    /** `setActive()`. */
    data object Active : TelecomUpdate

    /** `setOnHold()`. */
    data object Held : TelecomUpdate

    /** `setDisconnected(cause)` then `destroy()`. */
    data class Disconnected(
        /** The cause, from the core's end reason. */
        val disconnect: Disconnect,
    ) : TelecomUpdate
}

/** A connection's next stage and what Telecom is told, for a state the core reported. */
data class ConnectionStep(
    /** The stage after the state. */
    val stage: CallStage,
    /** What to tell Telecom; null when nothing changes for it. */
    val update: TelecomUpdate?,
)

/** How the core's [CallState]s move a Telecom connection. */
object ConnectionStates {
    /**
     * The step for [state] on a connection at [stage] carrying a call of [direction]. Once
     * ended nothing follows; a ringing call the user is answering stays `ANSWERING` until the
     * core says it is active.
     */
    fun next(stage: CallStage, state: CallState, direction: CallDirection): ConnectionStep {
        if (stage == CallStage.ENDED) return ConnectionStep(stage, null)
        return when (state) {
            is CallState.Incoming ->
                if (stage == CallStage.ANSWERING) {
                    ConnectionStep(stage, null)
                } else {
                    ConnectionStep(CallStage.RINGING, TelecomUpdate.Ringing)
                }
            is CallState.Calling, is CallState.Ringing, is CallState.EarlyMedia ->
                ConnectionStep(CallStage.DIALING, TelecomUpdate.Dialing)
            is CallState.Active ->
                if (state.onHold) {
                    ConnectionStep(CallStage.HELD, TelecomUpdate.Held)
                } else {
                    ConnectionStep(CallStage.ACTIVE, TelecomUpdate.Active)
                }
            is CallState.Ended -> ConnectionStep(
                CallStage.ENDED,
                TelecomUpdate.Disconnected(EndReasons.disconnect(state.reason, direction)),
            )
        }
    }
}

/** One connection as the call notification sees it. */
data class NoticeCandidate(
    /** The connection's key (in the notification's actions). */
    val key: Int,
    /** The caller's name or address. */
    val label: String,
    /** Where it stands. */
    val stage: CallStage,
    /** Telecom asked for our ringing UI (it does not when it shows its own). */
    val incomingUiRequested: Boolean,
)

/** What the call notification shows: one call. */
data class CallNotice(
    /** The connection's key. */
    val key: Int,
    /** The caller's name or address. */
    val caller: String,
    /** Where it stands. */
    val stage: CallStage,
    /** The core wants the full-screen ringing UI (locked device, or our app in front). */
    val fullScreen: Boolean,
) {
    /**
     * Whether the call records from the microphone now (every stage but ringing: dialing
     * sends audio from the start, for early media): the foreground service then needs the
     * microphone type, which Android requires before recording starts.
     */
    val recordsAudio: Boolean get() = stage != CallStage.RINGING && stage != CallStage.ENDED

    /** Chooses the notice. */
    companion object {
        /**
         * The notice for these connections, oldest first: the newest ringing call whose ringing
         * UI Telecom asked for, else the newest call that is not ringing; null when none.
         */
        fun choose(connections: List<NoticeCandidate>, decision: CallScreenDecision): CallNotice? {
            val live = connections.filter { it.stage != CallStage.ENDED }
            val ringing = live.lastOrNull { it.stage == CallStage.RINGING && it.incomingUiRequested }
            val shown = ringing ?: live.lastOrNull { it.stage != CallStage.RINGING } ?: return null
            return CallNotice(shown.key, shown.label, shown.stage, decision.showIncomingUi == IncomingUi.FULL_SCREEN)
        }
    }
}
