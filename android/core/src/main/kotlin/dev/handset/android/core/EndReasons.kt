package dev.handset.android.core

import dev.handset.CallDirection
import dev.handset.EndReason

/**
 * Telecom's `android.telecom.DisconnectCause` codes the library reports, by the platform's
 * names. The glue turns each into the platform constant one to one; this module stays free of
 * android.* so its tables are tested on the JVM.
 */
enum class DisconnectCode {
    /** `LOCAL`: the user ended the call here. */
    LOCAL,

    /** `REMOTE`: the other side ended or refused the call. */
    REMOTE,

    /** `CANCELED`: our outgoing call was cancelled before it was answered. */
    CANCELED,

    /** `MISSED`: an incoming call nobody answered. */
    MISSED,

    /** `REJECTED`: the user refused an incoming call (here or on another device). */
    REJECTED,

    /** `BUSY`: the callee was busy. */
    BUSY,

    /** `ERROR`: the call failed or the network lost it. */
    ERROR,

    /** `ANSWERED_ELSEWHERE`: another device of the user took the call. */
    ANSWERED_ELSEWHERE,
}

/** What Telecom is told when a call (or a push report) ends: the code, and a reason for logs. */
data class Disconnect(
    /** What the system, car kits and the call log act on. */
    val code: DisconnectCode,
    /** The core's end reason by name, for logs and bug reports. */
    val reason: String,
)

/**
 * The one table from the core's [EndReason] and the call's direction to Telecom's
 * disconnect cause. The core has already classified every SIP status, timeout and push
 * outcome into [EndReason]: nothing here (or anywhere in the shell) looks at a SIP status.
 */
object EndReasons {
    /**
     * How a call that ended for [reason] is reported to Telecom. A push report that ended
     * before its INVITE is an incoming call for this table.
     */
    fun disconnect(reason: EndReason, direction: CallDirection): Disconnect {
        val incoming = direction == CallDirection.INCOMING
        val code = when (reason) {
            is EndReason.LocalHangup -> DisconnectCode.LOCAL
            is EndReason.RemoteHangup -> DisconnectCode.REMOTE
            // Incoming: refused because the phone was full, which the history counts as missed.
            is EndReason.Busy -> if (incoming) DisconnectCode.MISSED else DisconnectCode.BUSY
            is EndReason.Declined -> if (incoming) DisconnectCode.REJECTED else DisconnectCode.REMOTE
            // Outgoing: the callee's side gave up ringing; Telecom has no "no answer" code.
            is EndReason.Unanswered -> if (incoming) DisconnectCode.MISSED else DisconnectCode.REMOTE
            is EndReason.Cancelled -> if (incoming) DisconnectCode.MISSED else DisconnectCode.CANCELED
            is EndReason.AnsweredElsewhere -> DisconnectCode.ANSWERED_ELSEWHERE
            is EndReason.DeclinedElsewhere -> DisconnectCode.REJECTED
            is EndReason.Failed, is EndReason.NetworkLost -> DisconnectCode.ERROR
        }
        return Disconnect(code, name(reason))
    }

    /** The reason's name as the core spells it (`Failed` without its status). */
    fun name(reason: EndReason): String = reason::class.simpleName ?: "EndReason"
}
