package dev.handset.android

import android.net.Uri
import android.os.Build
import android.telecom.CallAudioState
import android.telecom.Connection
import android.telecom.ConnectionRequest
import android.telecom.ConnectionService
import android.telecom.DisconnectCause
import android.telecom.PhoneAccountHandle
import android.telecom.TelecomManager
import android.util.Log
import dev.handset.AudioConfig
import dev.handset.Call
import dev.handset.CallDirection
import dev.handset.CallState
import dev.handset.EndReason
import dev.handset.HandsetException
import dev.handset.android.core.CallStage
import dev.handset.android.core.ConnectionStates
import dev.handset.android.core.Disconnect
import dev.handset.android.core.DisconnectCode
import dev.handset.android.core.EndReasons
import dev.handset.android.core.TelecomAddress
import dev.handset.android.core.TelecomUpdate
import dev.handset.events
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch

/**
 * The self-managed [ConnectionService] Telecom binds for our calls (declared in the library's
 * manifest). Telecom asks it for a [Connection] after [AndroidHandset.call] (`placeCall`) and
 * after an incoming INVITE or push (`addNewIncomingCall`); the connection then carries the call
 * for the system: audio focus, Bluetooth and car kits, other apps' calls put on hold.
 *
 * It finds the phone through the [HandsetApplication]; without one every request fails, since
 * there is no call to carry.
 */
class HandsetConnectionService : ConnectionService() {
    private val handset: AndroidHandset? get() = (application as? HandsetApplication)?.handset

    /** Telecom accepted a [AndroidHandset.call]: its connection, which then sends the INVITE. */
    override fun onCreateOutgoingConnection(account: PhoneAccountHandle?, request: ConnectionRequest): Connection =
        handset?.createOutgoingConnection(request) ?: failed("no HandsetApplication")

    /** Telecom refused a [AndroidHandset.call]: the caller gets [CallNotPlacedException]. */
    override fun onCreateOutgoingConnectionFailed(account: PhoneAccountHandle?, request: ConnectionRequest) {
        handset?.outgoingConnectionFailed(request)
    }

    /** Telecom accepted an incoming call or push report: its ringing connection. */
    override fun onCreateIncomingConnection(account: PhoneAccountHandle?, request: ConnectionRequest): Connection =
        handset?.createIncomingConnection(request) ?: failed("no HandsetApplication")

    /** Telecom refused an incoming call: the call is rejected (or the push report declined). */
    override fun onCreateIncomingConnectionFailed(account: PhoneAccountHandle?, request: ConnectionRequest) {
        handset?.incomingConnectionFailed(request)
    }

    private fun failed(why: String): Connection {
        Log.w(TAG, "refusing a connection: $why")
        return Connection.createFailedConnection(DisconnectCause(DisconnectCause.ERROR, why))
    }

    private companion object {
        const val TAG = "HandsetTelecom"
    }
}

/**
 * One call as Telecom sees it. User actions from the system (Bluetooth buttons, car kits, the
 * wearable, another app's call) and from our notification arrive as `on*` callbacks and become
 * the bindings' [Call] commands; the call's states from the core become Telecom states
 * ([ConnectionStates]), its end reason a [DisconnectCause] ([EndReasons]).
 *
 * A connection can exist before its [Call]: an outgoing call between `placeCall` and the
 * INVITE being sent, an incoming call reported from a push before its INVITE. An answer in that
 * window is kept and carried out once the call is bound; a reject or hangup declines the push
 * report ([dev.handset.HandsetPhone.declinePushReport]) so the INVITE is refused when it comes.
 * Telecom's microphone mute (the system's in-call controls, a car kit, a headset button) is kept
 * the same way and reaches the call through `Call.setMuted` once it is bound.
 */
class HandsetConnection internal constructor(
    private val handset: AndroidHandset,
    /** Who started the call. */
    val direction: CallDirection,
    reportId: String?,
) : Connection() {
    /**
     * The call's Telecom id: the core's report id (`Call.reportId`), known from the start for
     * an incoming call or push report, once the core placed it for an outgoing call.
     */
    var reportId: String? = reportId
        private set

    /** Our id of this connection: the key in notification actions. */
    internal val key: Int = handset.nextConnectionKey()

    /** The call, once there is one. */
    var call: Call? = null
        private set

    /** What the notification shows for this call (caller name or address). */
    internal var label: String = ""

    /** Where the call stands, for the notification. */
    internal var stage: CallStage = if (direction == CallDirection.INCOMING) CallStage.RINGING else CallStage.DIALING
        private set

    /** Telecom asked us to show our ringing UI (it does not when it shows its own). */
    internal var incomingUiRequested = false
        private set

    private var job: Job? = null
    private var answerWhenBound = false
    private var hangupWhenBound = false

    /** Whether the microphone is muted, as Telecom or [setMuted] last asked (main thread). */
    var isMuted = false
        private set

    /** What Telecom last reported: a repeat (route changes carry it too) changes nothing. */
    private var telecomMuted = false

    /** What the core was last told (a call starts unmuted). */
    private var coreMuted = false
    private var muteJob: Job? = null

    init {
        connectionProperties = PROPERTY_SELF_MANAGED
        // Telecom sets MODE_IN_COMMUNICATION (not MODE_IN_CALL) for VoIP calls.
        audioModeIsVoip = true
        connectionCapabilities = CAPABILITY_HOLD or CAPABILITY_SUPPORT_HOLD or CAPABILITY_MUTE
    }

    /** Sets what Telecom and our notification show: the caller's address and name. */
    internal fun present(address: Uri, name: String?) {
        setAddress(address, TelecomManager.PRESENTATION_ALLOWED)
        if (name != null) setCallerDisplayName(name, TelecomManager.PRESENTATION_ALLOWED)
        label = name ?: address.schemeSpecificPart.orEmpty()
    }

    /** Attaches the call and follows its states until it ends. */
    internal fun bind(call: Call) {
        if (this.call != null) return
        this.call = call
        reportId = call.reportId()
        if (hangupWhenBound) {
            // Hung up on Telecom while the INVITE was still being sent.
            act("hangup") { call.hangup() }
            return
        }
        job = handset.scope.launch {
            call.events().collect { event -> apply(event.state) }
        }
        syncMute()
        if (answerWhenBound) onAnswer()
    }

    /** Telecom reported its mute state; only a change counts (it may differ from [setMuted]'s). */
    private fun telecomMute(muted: Boolean) {
        if (muted == telecomMuted) return
        telecomMuted = muted
        muteChanged(muted)
    }

    /**
     * The microphone is to be muted or unmuted: the core sends silence while muted. One command
     * at a time, always towards the latest wish, so quick toggles cannot arrive out of order;
     * before the call is bound the wish waits for [bind].
     */
    private fun muteChanged(muted: Boolean) {
        isMuted = muted
        syncMute()
    }

    /**
     * Mutes or unmutes from the app's own button. Going through the connection (as with
     * [onAnswer]) keeps [isMuted] and the commands to the core in one order with Telecom's.
     * Main thread.
     */
    fun setMuted(muted: Boolean) = muteChanged(muted)

    private fun syncMute() {
        val call = call ?: return
        if (muteJob?.isActive == true || stage == CallStage.ENDED) return
        muteJob = handset.scope.launch {
            while (coreMuted != isMuted && stage != CallStage.ENDED) {
                val wanted = isMuted
                try {
                    call.setMuted(wanted)
                } catch (e: HandsetException) {
                    // Left as the core has it; the next mute change tries again.
                    Log.w(TAG, "mute: $e")
                    break
                }
                coreMuted = wanted
            }
        }
    }

    private fun apply(state: CallState) {
        val step = ConnectionStates.next(stage, state, direction)
        when (val update = step.update) {
            TelecomUpdate.Ringing -> setRinging()
            TelecomUpdate.Dialing -> setDialing()
            TelecomUpdate.Active -> setActive()
            TelecomUpdate.Held -> setOnHold()
            is TelecomUpdate.Disconnected -> return end(update.disconnect)
            null -> {}
        }
        stage = step.stage
        handset.connectionChanged()
    }

    /** Ends the connection on Telecom (once) and forgets it. */
    internal fun end(disconnect: Disconnect) = end(disconnectCause(disconnect))

    private fun end(cause: DisconnectCause) {
        if (stage == CallStage.ENDED) return
        stage = CallStage.ENDED
        setDisconnected(cause)
        destroy()
        job?.cancel()
        handset.connectionEnded(this)
    }

    /** The call failed before Telecom saw it start (the INVITE could not be sent). */
    internal fun fail(error: Exception) {
        end(DisconnectCause(DisconnectCause.ERROR, error.message ?: error.toString()))
    }

    /** Telecom wants our ringing UI: the notification (full screen if the core says so). */
    override fun onShowIncomingCallUi() {
        incomingUiRequested = true
        handset.connectionChanged()
    }

    /** Answers with the platform audio (once the call exists, for a push-reported one). */
    override fun onAnswer() {
        if (stage != CallStage.RINGING && stage != CallStage.ANSWERING) return
        // Before the answer: the foreground service takes the microphone type for this stage,
        // which Android requires before the recording starts.
        stage = CallStage.ANSWERING
        handset.connectionChanged()
        val call = call ?: run {
            answerWhenBound = true
            return
        }
        answerWhenBound = false
        act("answer", onError = {
            if (stage == CallStage.ANSWERING) {
                stage = CallStage.RINGING
                handset.connectionChanged()
            }
        }) { call.answer(AudioConfig.Foreign) }
    }

    /** Audio only: the same as [onAnswer]. */
    override fun onAnswer(videoState: Int) = onAnswer()

    /** Rejects the call with the core's default status, or declines its push report. */
    override fun onReject() {
        val call = call
        if (call != null) act("reject") { call.reject() } else if (direction == CallDirection.INCOMING) declineReport()
    }

    /** Any reason: the same as [onReject]. */
    override fun onReject(rejectReason: Int) = onReject()

    /** No SMS reply over SIP: the same as [onReject]. */
    override fun onReject(replyMessage: String?) = onReject()

    /** Hangs up (BYE, CANCEL or 486 as the core sees fit). */
    override fun onDisconnect() {
        val call = call
        when {
            call != null -> act("hangup") { call.hangup() }
            // An incoming connection without its call: a push report whose INVITE has not come.
            direction == CallDirection.INCOMING -> declineReport()
            else -> {
                hangupWhenBound = true
                end(DisconnectCause(DisconnectCause.LOCAL))
            }
        }
    }

    /** Telecom gave up on the connection: the same as [onDisconnect]. */
    override fun onAbort() = onDisconnect()

    /** Holds the call (another call became active, or the user asked). */
    override fun onHold() {
        call?.let { act("hold") { it.hold(true) } }
    }

    /** Resumes the held call. */
    override fun onUnhold() {
        call?.let { act("resume") { it.hold(false) } }
    }

    /**
     * Telecom's audio state changed (route or mute). Before API 34 this carries the mute
     * state; from API 34 [onMuteStateChanged] does, and only the route changes here (routes are
     * the core's, through [AudioRouteController]).
     */
    @Deprecated("Telecom reports the mute state with onMuteStateChanged from API 34")
    override fun onCallAudioStateChanged(state: CallAudioState?) {
        if (Build.VERSION.SDK_INT < Build.VERSION_CODES.UPSIDE_DOWN_CAKE && state != null) telecomMute(state.isMuted)
    }

    /** Telecom muted or unmuted the microphone (API 34+): the call follows. */
    override fun onMuteStateChanged(isMuted: Boolean) = telecomMute(isMuted)

    /** Sends the digit as RFC 4733 DTMF (from a headset or car kit keypad). */
    override fun onPlayDtmfTone(c: Char) {
        call?.let { act("DTMF") { it.sendDtmf(c.toString()) } }
    }

    private fun declineReport() {
        try {
            handset.phone.declinePushReport(reportId ?: return)
        } catch (e: HandsetException) {
            Log.w(TAG, "declinePushReport: $e")
        }
        // The core ends the report the same way (`PushReportEnded` with `Declined`).
        end(EndReasons.disconnect(EndReason.Declined, direction))
    }

    // A refused command leaves the call as it is; the state flow tells what really happened.
    private fun act(what: String, onError: () -> Unit = {}, command: suspend () -> Unit) {
        handset.scope.launch {
            try {
                command()
            } catch (e: HandsetException) {
                Log.w(TAG, "$what: $e")
                onError()
            }
        }
    }

    private companion object {
        const val TAG = "HandsetTelecom"
    }
}

/** Telecom's [DisconnectCause] for the core's end reason, as [EndReasons] classified it. */
internal fun disconnectCause(disconnect: Disconnect): DisconnectCause =
    DisconnectCause(platformCode(disconnect.code), disconnect.reason)

/** The platform constant of each [DisconnectCode], one to one. */
internal fun platformCode(code: DisconnectCode): Int = when (code) {
    DisconnectCode.LOCAL -> DisconnectCause.LOCAL
    DisconnectCode.REMOTE -> DisconnectCause.REMOTE
    DisconnectCode.CANCELED -> DisconnectCause.CANCELED
    DisconnectCode.MISSED -> DisconnectCause.MISSED
    DisconnectCode.REJECTED -> DisconnectCause.REJECTED
    DisconnectCode.BUSY -> DisconnectCause.BUSY
    DisconnectCode.ERROR -> DisconnectCause.ERROR
    DisconnectCode.ANSWERED_ELSEWHERE -> DisconnectCause.ANSWERED_ELSEWHERE
}

/** The `sip:` or `tel:` address Telecom shows for a SIP URI, a `tel:` URI or a bare number. */
internal fun telecomAddress(address: String): Uri =
    TelecomAddress.of(address).let { Uri.fromParts(it.scheme, it.part, null) }
