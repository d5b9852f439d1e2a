package dev.handset.android.core

import dev.handset.CallDirection
import dev.handset.EndReason

/** What to do with a push report the core returned ([TelecomCalls.pushReported]). */
sealed interface PushStep {
    /** A new call: ask Telecom to ring for it (`addNewIncomingCall`) under the report id. */
    data object ReportToTelecom : PushStep

    /** Telecom already shows this id (a duplicate push, or the INVITE came first): nothing. */
    data object AlreadyShown : PushStep

    /** The push says the call is over and Telecom shows it: end its connection so. */
    data class EndShown(
        /** How the connection ends. */
        val disconnect: Disconnect,
    ) : PushStep

    /** The push says the call is over and Telecom never showed it: Android wants no report. */
    data object Ignore : PushStep
}

/** What to do with an incoming call from the core ([TelecomCalls.callArrived]). */
sealed interface IncomingStep {
    /** Telecom already shows it (its push was reported): bind the call to that connection. */
    data object BindToShown : IncomingStep

    /** A new call: ask Telecom to ring for it (`addNewIncomingCall`) under its report id. */
    data object AddToTelecom : IncomingStep
}

/**
 * The calls Telecom shows, by the core's report id: the core gives every call (and every push
 * report, whose id its call then carries) one id, which is used as the Telecom id of the call.
 * [C] is the platform's connection object; the table maps the id to it, and remembers the ids
 * Telecom was asked to ring for whose connection it has not created yet. No correlation is
 * made here: the core's ids are equal or they are not. Not thread-safe: use it from one thread.
 */
class TelecomCalls<C : Any> {
    /** Ids Telecom was asked to show, with their connection once Telecom created it. */
    private val shown = LinkedHashMap<String, C?>()

    /** A push report came back from the core's `handlePush`: whether and how to show it. */
    fun pushReported(reportId: String, alreadyEnded: EndReason?): PushStep {
        val known = shown.containsKey(reportId)
        if (alreadyEnded != null) {
            return if (known) {
                PushStep.EndShown(EndReasons.disconnect(alreadyEnded, CallDirection.INCOMING))
            } else {
                PushStep.Ignore
            }
        }
        if (known) return PushStep.AlreadyShown
        shown[reportId] = null
        return PushStep.ReportToTelecom
    }

    /** The core reports an incoming call under [reportId]: bind it, or have Telecom ring. */
    fun callArrived(reportId: String): IncomingStep {
        if (shown.containsKey(reportId)) return IncomingStep.BindToShown
        shown[reportId] = null
        return IncomingStep.AddToTelecom
    }

    /**
     * Telecom created the connection it was asked for under [reportId] (an incoming call or
     * push report), or our outgoing call got its id. Returns false for an id nobody asked
     * Telecom to show (the connection is then refused) unless [outgoing].
     */
    fun connectionCreated(reportId: String, connection: C, outgoing: Boolean = false): Boolean {
        if (!outgoing && !shown.containsKey(reportId)) return false
        shown[reportId] = connection
        return true
    }

    /** The connection of [reportId], once Telecom created it. */
    fun connection(reportId: String): C? = shown[reportId]

    /** Whether Telecom was asked to show [reportId] and has not ended it. */
    fun isShown(reportId: String): Boolean = shown.containsKey(reportId)

    /** The connection ended, or Telecom refused to show the id: forget it. */
    fun ended(reportId: String) {
        shown.remove(reportId)
    }

    /** The connections Telecom created, oldest first. */
    val connections: List<C> get() = shown.values.filterNotNull()
}
