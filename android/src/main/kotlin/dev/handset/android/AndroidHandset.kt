package dev.handset.android

import android.app.Activity
import android.app.ActivityManager
import android.app.Application
import android.app.KeyguardManager
import android.content.BroadcastReceiver
import android.content.ComponentName
import android.content.Context
import android.content.Intent
import android.content.IntentFilter
import android.os.Build
import android.os.Bundle
import android.telecom.Connection
import android.telecom.ConnectionRequest
import android.telecom.DisconnectCause
import android.telecom.PhoneAccount
import android.telecom.PhoneAccountHandle
import android.telecom.TelecomManager
import android.telephony.TelephonyManager
import android.util.Log
import dev.handset.Account
import dev.handset.AccountConfig
import dev.handset.AudioConfig
import dev.handset.Call
import dev.handset.CallDirection
import dev.handset.CallEvent
import dev.handset.CallScreenDecision
import dev.handset.CallScreenInput
import dev.handset.CallState
import dev.handset.CallUpdate
import dev.handset.HandsetException
import dev.handset.HandsetPhone
import dev.handset.IncomingCallReport
import dev.handset.ImportReport
import dev.handset.NoPushToken
import dev.handset.PhoneConfig
import dev.handset.PhoneEvent
import dev.handset.PhoneEventListener
import dev.handset.ProvisionedAccount
import dev.handset.PushTokenProvider
import dev.handset.SecretStore
import dev.handset.TaskHandle
import dev.handset.android.core.CallNotice
import dev.handset.android.core.CallStage
import dev.handset.android.core.DefaultCountry
import dev.handset.android.core.Disconnect
import dev.handset.android.core.EndReasons
import dev.handset.android.core.ForegroundTracker
import dev.handset.android.core.IncomingStep
import dev.handset.android.core.NoticeCandidate
import dev.handset.android.core.PushPayload
import dev.handset.android.core.PushStep
import dev.handset.android.core.TelecomCalls
import dev.handset.callEvents
import dev.handset.callScreenDecisions
import java.io.File
import java.util.Locale
import java.util.UUID
import java.util.concurrent.ConcurrentHashMap
import java.util.concurrent.atomic.AtomicInteger
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Dispatchers
import kotlinx.coroutines.SupervisorJob
import kotlinx.coroutines.cancel
import kotlinx.coroutines.flow.MutableSharedFlow
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.SharedFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asSharedFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.launch
import kotlinx.coroutines.withContext

/**
 * Implemented by the app's [Application]: how the components the system starts on its own
 * (the ConnectionService, the call foreground service, the push entry point) find the one
 * [AndroidHandset] of the process, without a global.
 *
 * ```kotlin
 * class App : Application(), HandsetApplication {
 *     override val handset by lazy {
 *         AndroidHandset(this, AndroidHandsetConfig(secrets = MySecretStore(this), callActivity = CallActivity::class.java))
 *     }
 * }
 * ```
 */
interface HandsetApplication {
    /** The process's phone; created on first use (a push may be that first use). */
    val handset: AndroidHandset
}

/**
 * Texts of the call notification and its channels. English by default: pass the app's
 * translations (the library has no resources of its own).
 */
data class CallNotificationText(
    /** Name of the channel of ringing calls (system settings). */
    val incomingChannel: String = "Incoming calls",
    /** Name of the channel of calls in progress (system settings). */
    val ongoingChannel: String = "Ongoing calls",
    /** A call is ringing here. */
    val incoming: String = "Incoming call",
    /** Our call is being placed or rings at the other end. */
    val outgoing: String = "Calling…",
    /** Talking. */
    val active: String = "Ongoing call",
    /** Held by either side. */
    val held: String = "On hold",
    /** Answer action. */
    val answer: String = "Answer",
    /** Decline action. */
    val decline: String = "Decline",
    /** Hang-up action. */
    val hangUp: String = "Hang up",
)

/** What an app gives [AndroidHandset]: its secrets, push token and call screen. */
data class AndroidHandsetConfig(
    /** Where account passwords live (an Android Keystore-backed store in a real app). */
    val secrets: SecretStore,
    /** The FCM token for push registrations ([FcmPushToken]); none by default. */
    val pushTokens: PushTokenProvider = NoPushToken,
    /**
     * Phone settings. An unset `databasePath` becomes `handset.db` in `noBackupFilesDir`; an
     * unset `defaultCountry` becomes the SIM's country, else the network's, else the locale's.
     */
    val phone: PhoneConfig = PhoneConfig(),
    /** Name of our phone account in the system's call settings. */
    val phoneAccountLabel: String = "Handset",
    /** The app's call screen: opened from the notification, and full screen while ringing. */
    val callActivity: Class<out Activity>? = null,
    /** Small icon of the call notification. */
    val notificationIcon: Int = android.R.drawable.sym_action_call,
    /** Notification texts. */
    val notificationText: CallNotificationText = CallNotificationText(),
)

/** [AndroidHandset.call] could not start the call: Telecom refused it or it was never placed. */
class CallNotPlacedException(message: String, cause: Throwable? = null) : Exception(message, cause)

/**
 * The Android phone: the bindings' [HandsetPhone] with every platform service wired in (audio,
 * audio routes, contacts), its calls carried by Telecom through [HandsetConnectionService], the
 * call notification and foreground service, the proximity wake lock, and the app's foreground
 * and lock-screen state reported to the core.
 *
 * One per process, created by the app's [HandsetApplication]; all of its work runs on the main
 * thread. An app adds accounts with [addAccount] (so a new push token reaches those with push),
 * places calls with [call], answers from its own UI through [connection] (or the notification),
 * and applies [callScreen] to its call activity with [attachCallWindow].
 */
class AndroidHandset(
    context: Context,
    /** What the app configured. */
    val config: AndroidHandsetConfig,
) : AutoCloseable {
    private val app = context.applicationContext

    /** Main-thread scope of everything the glue runs; cancelled by [close]. */
    internal val scope = CoroutineScope(SupervisorJob() + Dispatchers.Main.immediate)

    /** Call audio through AudioRecord/AudioTrack. */
    val audio = AndroidAudio(app)

    /** Audio routes; the core picks, this executes and reports. */
    val routes = AudioRouteController(app)

    /** The address book the core imports. */
    val contacts = ContactsImport(app)

    /** The core phone: accounts, calls, history and contacts. */
    val phone: HandsetPhone = HandsetPhone(
        phoneConfig(app, config.phone),
        audio,
        config.secrets,
        contacts,
        config.pushTokens,
        routes,
    )

    /**
     * The default network followed for the core: its DNS servers (Android has no resolv.conf)
     * and its changes (the accounts register again from the new address).
     */
    private val network = NetworkFollower(app, phone)

    private val decisions = MutableStateFlow(phone.callScreen())

    /** What the call screen must do now (the core's decision): the current one, then changes. */
    val callScreen: StateFlow<CallScreenDecision> = decisions.asStateFlow()

    /** The proximity wake lock and sensor, driven by [callScreen]. */
    val proximity = ProximityController(app, phone, callScreen, scope)

    private val eventFlow = MutableSharedFlow<PhoneEvent>(extraBufferCapacity = 64)

    /**
     * Phone-wide events, every kind passed on: push reports ending (their Telecom calls are
     * ended here first), blocked callers, removed accounts, voicemail message-waiting counts
     * ([PhoneEvent.Voicemail]: the app decides what to show). No replay: collect early.
     */
    val events: SharedFlow<PhoneEvent> = eventFlow.asSharedFlow()

    private val telecom = app.getSystemService(TelecomManager::class.java)
        ?: throw IllegalStateException("no TelecomManager")

    /** Our self-managed phone account on Telecom. */
    val phoneAccountHandle = PhoneAccountHandle(ComponentName(app, HandsetConnectionService::class.java), PHONE_ACCOUNT_ID)

    // Main thread only.
    private val connections = mutableListOf<HandsetConnection>()
    private val foreground = ForegroundTracker()

    /**
     * The calls Telecom shows, by the core's report id (every call's Telecom id). Pushes
     * arrive on the messaging service's thread: used under its own lock ([telecomCalls]).
     */
    private val shown = TelecomCalls<HandsetConnection>()

    // Any thread: placeCall and pushes come from the app's threads.
    private val outgoing = ConcurrentHashMap<String, OutgoingRequest>()
    private val keys = AtomicInteger()

    /** The ids of the accounts [addAccount] added with push. */
    private val pushAccounts: MutableSet<String> = ConcurrentHashMap.newKeySet()
    private val notices = MutableStateFlow<CallNotice?>(null)
    private val eventHandle: TaskHandle

    /** What the call notification shows; null when no call needs it. */
    internal val notice: StateFlow<CallNotice?> = notices.asStateFlow()

    private val keyguard = app.getSystemService(KeyguardManager::class.java)
    private val lockReceiver = object : BroadcastReceiver() {
        override fun onReceive(context: Context, intent: Intent) = reportLocked()
    }

    private val lifecycle = object : Application.ActivityLifecycleCallbacks {
        override fun onActivityStarted(activity: Activity) {
            foreground.activityStarted()?.let(::reportForeground)
        }

        override fun onActivityStopped(activity: Activity) {
            foreground.activityStopped(activity.isChangingConfigurations)?.let(::reportForeground)
        }

        override fun onActivityCreated(activity: Activity, savedInstanceState: Bundle?) {}
        override fun onActivityResumed(activity: Activity) {}
        override fun onActivityPaused(activity: Activity) {}
        override fun onActivitySaveInstanceState(activity: Activity, outState: Bundle) {}
        override fun onActivityDestroyed(activity: Activity) {}
    }

    init {
        registerPhoneAccount()
        network.start()
        routes.attach(phone)
        scope.launch {
            phone.callScreenDecisions().collect {
                decisions.value = it
                updateNotice()
            }
        }
        scope.launch { phone.callEvents().collect { onCallEvent(it) } }
        eventHandle = phone.subscribeEvents(object : PhoneEventListener {
            override fun onEvent(event: PhoneEvent) {
                scope.launch { onPhoneEvent(event) }
            }
        })
        proximity.start()
        (app as? Application)?.registerActivityLifecycleCallbacks(lifecycle)
        val filter = IntentFilter().apply {
            addAction(Intent.ACTION_SCREEN_ON)
            addAction(Intent.ACTION_SCREEN_OFF)
            addAction(Intent.ACTION_USER_PRESENT)
        }
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.TIRAMISU) {
            app.registerReceiver(lockReceiver, filter, Context.RECEIVER_NOT_EXPORTED)
        } else {
            app.registerReceiver(lockReceiver, filter)
        }
        // On the main thread, like every later report: a push may create the handset elsewhere.
        scope.launch {
            foreground.initially(startedInForeground())?.let(::reportForeground)
            reportLocked()
        }
    }

    /**
     * Registers our self-managed phone account with Telecom. Done at start; registering again
     * is harmless, and needed only if something removed the account since.
     */
    fun registerPhoneAccount() {
        val account = PhoneAccount.builder(phoneAccountHandle, config.phoneAccountLabel)
            .setCapabilities(PhoneAccount.CAPABILITY_SELF_MANAGED)
            .addSupportedUriScheme(PhoneAccount.SCHEME_SIP)
            .addSupportedUriScheme(PhoneAccount.SCHEME_TEL)
            .build()
        try {
            telecom.registerPhoneAccount(account)
        } catch (e: SecurityException) {
            Log.e(TAG, "registerPhoneAccount: $e")
        }
    }

    /**
     * Adds an account to [phone] ([HandsetPhone.addAccount]) and remembers whether it uses push,
     * so that [refreshPushTokens] (a new FCM token) reaches it. Accounts added directly on
     * [phone] keep the token they registered with.
     *
     * @throws HandsetException when the core cannot add it (no secret, a duplicate id...).
     */
    suspend fun addAccount(config: AccountConfig): Account {
        val account = phone.addAccount(config)
        if (config.push) pushAccounts += config.accountId else pushAccounts -= config.accountId
        return account
    }

    /**
     * Adds an account read from a provisioning link or QR code
     * ([HandsetPhone.addProvisionedAccount]: its secret goes into the secret store under
     * [accountId]); push as the code says, remembered like [addAccount].
     *
     * @throws HandsetException when the core cannot add it.
     */
    suspend fun addProvisionedAccount(account: ProvisionedAccount, accountId: String): Account {
        val added = phone.addProvisionedAccount(account, accountId)
        if (account.push != null) pushAccounts += accountId else pushAccounts -= accountId
        return added
    }

    /**
     * The push token changed ([HandsetPush.onNewToken] calls this; an app with its own
     * [PushTokenProvider] calls it itself): every account of [phone] that [addAccount] added
     * with push registers again with the provider's current token (`Account.refreshPushToken`).
     * Returns at once; a failure is logged, and the account keeps its registration.
     */
    fun refreshPushTokens() {
        for (account in phone.accounts()) {
            if (account.accountId() !in pushAccounts) continue
            scope.launch {
                try {
                    account.refreshPushToken()
                } catch (e: HandsetException) {
                    Log.w(TAG, "refreshPushToken ${account.accountId()}: $e")
                }
            }
        }
    }

    /**
     * Calls [target] from [account] through Telecom: Telecom first (it may refuse, e.g. during
     * an emergency call), then the INVITE with the platform audio. Returns once the INVITE is on
     * its way; follow the call with `Call.states()`.
     *
     * @throws CallNotPlacedException when Telecom refuses the call.
     * @throws HandsetException when the core cannot place it.
     */
    suspend fun call(account: Account, target: String): Call {
        val request = UUID.randomUUID().toString()
        val result = CompletableDeferred<Call>()
        outgoing[request] = OutgoingRequest(account, target, result)
        try {
            val extras = Bundle().apply {
                putParcelable(TelecomManager.EXTRA_PHONE_ACCOUNT_HANDLE, phoneAccountHandle)
                putBundle(TelecomManager.EXTRA_OUTGOING_CALL_EXTRAS, Bundle().apply { putString(EXTRA_REQUEST, request) })
            }
            try {
                telecom.placeCall(telecomAddress(target), extras)
            } catch (e: SecurityException) {
                throw CallNotPlacedException("Telecom refused placeCall: ${e.message}", e)
            }
            return result.await()
        } finally {
            outgoing.remove(request)
        }
    }

    /**
     * The Telecom connection of [call], for answering, declining or holding from the app's UI
     * (`onAnswer()`, `onReject()`, `onDisconnect()`, `onHold()`): going through the connection
     * keeps Telecom's view of the call right. Main thread.
     */
    fun connection(call: Call): HandsetConnection? = connections.firstOrNull { it.call == call }

    /**
     * Applies [callScreen] to [activity] (keep-screen-on, over the lock screen, rotation) until
     * the returned handle is closed: open it in `onCreate`, close it in `onDestroy`.
     */
    fun attachCallWindow(activity: Activity): AutoCloseable {
        val job = scope.launch { callScreen.collect { it.applyTo(activity) } }
        return AutoCloseable { job.cancel() }
    }

    /**
     * Makes the contacts in the phone's database equal to the address book now ([contacts]),
     * off the main thread. Null when the phone has no database. Throws [HandsetException]
     * (`Platform`) when READ_CONTACTS is not granted; the stored contacts are then unchanged.
     */
    suspend fun importContacts(): ImportReport? =
        withContext(Dispatchers.IO) { phone.store()?.importLocalContacts(contacts) }

    /** The in-call keypad was shown or hidden (IVR menus keep the screen on). */
    fun keypadShown(shown: Boolean) = phone.updateCallScreen(CallScreenInput.KeypadShown(shown))

    // --- Telecom (from HandsetConnectionService, main thread) ----------------------------------

    internal fun nextConnectionKey(): Int = keys.incrementAndGet()

    internal fun connection(key: Int): HandsetConnection? = connections.firstOrNull { it.key == key }

    internal fun createOutgoingConnection(request: ConnectionRequest): Connection {
        val pending = request.extras?.getString(EXTRA_REQUEST)?.let { outgoing[it] }
            ?: return failedConnection("no pending call for this request")
        val connection = HandsetConnection(this, CallDirection.OUTGOING, null)
        connection.present(telecomAddress(pending.target), null)
        connection.setDialing()
        connections += connection
        scope.launch {
            try {
                val call = pending.account.call(pending.target, AudioConfig.Foreign)
                // The core's report id is the call's Telecom id from now on (unless Telecom hung
                // up meanwhile: bind then hangs the call up).
                if (connection.stage != CallStage.ENDED) {
                    telecomCalls { connectionCreated(call.reportId(), connection, outgoing = true) }
                }
                connection.bind(call)
                pending.result.complete(call)
            } catch (e: HandsetException) {
                connection.fail(e)
                pending.result.completeExceptionally(e)
            }
        }
        updateNotice()
        return connection
    }

    internal fun outgoingConnectionFailed(request: ConnectionRequest) {
        request.extras?.getString(EXTRA_REQUEST)?.let { outgoing[it] }?.result?.completeExceptionally(
            CallNotPlacedException("Telecom refused the call (another call or an emergency call in progress)"),
        )
    }

    internal fun createIncomingConnection(request: ConnectionRequest): Connection {
        val extras = request.extras ?: Bundle.EMPTY
        val reportId = extras.getString(EXTRA_REPORT_ID)
            ?: return failedConnection("an incoming call without our report id")
        val connection = HandsetConnection(this, CallDirection.INCOMING, reportId)
        // Refused when the call or push report ended while Telecom was on its way.
        if (!telecomCalls { connectionCreated(reportId, connection) }) return failedConnection("the call is gone")
        connection.present(
            request.address ?: telecomAddress(extras.getString(EXTRA_CALLER).orEmpty()),
            extras.getString(EXTRA_CALLER_NAME),
        )
        connection.setRinging()
        connections += connection
        // Bound last: a call that already ended removes its connection at once. For a push, the
        // INVITE may have beaten Telecom to it; else it binds when it comes (onCallEvent).
        phone.calls().firstOrNull { it.reportId() == reportId }?.let { connection.bind(it) }
        updateNotice()
        return connection
    }

    internal fun incomingConnectionFailed(request: ConnectionRequest) {
        val reportId = request.extras?.getString(EXTRA_REPORT_ID) ?: return
        telecomCalls { ended(reportId) }
        val call = phone.calls().firstOrNull { it.reportId() == reportId }
        if (call != null) reject(call) else declineReport(reportId)
    }

    /** A connection's stage or UI request changed. */
    internal fun connectionChanged() = updateNotice()

    internal fun connectionEnded(connection: HandsetConnection) {
        connections.remove(connection)
        connection.reportId?.let { id -> telecomCalls { ended(id) } }
        if (connections.isEmpty()) routes.release()
        updateNotice()
    }

    private fun failedConnection(why: String): Connection {
        Log.w(TAG, "refusing a connection: $why")
        return Connection.createFailedConnection(DisconnectCause(DisconnectCause.ERROR, why))
    }

    // --- the core's calls and events (main thread) -----------------------------------------------

    private fun onCallEvent(event: CallEvent) {
        val reportId = event.call.reportId()
        val update = event.update
        if (update is CallUpdate.Incoming) {
            when (telecomCalls { callArrived(reportId) }) {
                // Telecom rings for it since its push (or its connection is on the way).
                IncomingStep.BindToShown -> telecomCalls { connection(reportId) }?.bind(event.call)
                IncomingStep.AddToTelecom -> if (!addIncomingToTelecom(reportId, update.from, update.contactName ?: update.displayName)) {
                    reject(event.call)
                }
            }
        } else if (event.state is CallState.Ended && telecomCalls { isShown(reportId) && connection(reportId) == null }) {
            // Over before Telecom created its connection: that connection will be refused.
            telecomCalls { ended(reportId) }
        }
    }

    private fun onPhoneEvent(event: PhoneEvent) {
        // Exhaustive: a new kind of event must be looked at here before it compiles.
        when (event) {
            is PhoneEvent.PushReportEnded ->
                endReport(event.reportId, EndReasons.disconnect(event.reason, CallDirection.INCOMING))
            is PhoneEvent.Stopped -> Log.e(TAG, "the phone stopped: ${event.reason}")
            // The app's to show (its own notification, badge or lamp); nothing for Telecom.
            is PhoneEvent.CallBlocked, is PhoneEvent.AccountRemoved, is PhoneEvent.Voicemail,
            is PhoneEvent.MessageReceived -> {}
        }
        eventFlow.tryEmit(event)
    }

    /** Ends a push report Telecom shows whose INVITE never came (its call ends by itself). */
    private fun endReport(reportId: String, disconnect: Disconnect) {
        val connection = telecomCalls { connection(reportId) }
        if (connection == null) {
            // Telecom has not created it yet: it will be refused.
            telecomCalls { ended(reportId) }
        } else if (connection.call == null) {
            connection.end(disconnect)
        }
    }

    // --- push (any thread) -------------------------------------------------------------------------

    /**
     * Hands an FCM data message to the core and reports the call it announces to Telecom. Runs
     * on the messaging service's thread and returns without network: the core re-registers in
     * the background so the PBX can send the INVITE.
     */
    internal fun reportPush(data: Map<String, String>): IncomingCallReport? {
        val report = try {
            phone.handlePush(PushPayload.json(data))
        } catch (e: HandsetException) {
            Log.w(TAG, "push not handled: ${e.message}")
            return null
        }
        // FCM may deliver a message twice: the core gives the same report, Telecom rings once.
        when (val step = telecomCalls { pushReported(report.reportId, report.alreadyEnded) }) {
            PushStep.ReportToTelecom -> if (!addIncomingToTelecom(report.reportId, report.callerNumber, report.contactName ?: report.callerName)) {
                declineReport(report.reportId)
            }
            is PushStep.EndShown -> scope.launch { endReport(report.reportId, step.disconnect) }
            PushStep.AlreadyShown, PushStep.Ignore -> {}
        }
        return report
    }

    /**
     * Asks Telecom to ring for a call under its report id; false (and the id forgotten) when
     * our phone account is not usable (disabled by the user).
     */
    private fun addIncomingToTelecom(reportId: String, caller: String, name: String?): Boolean {
        val extras = Bundle().apply {
            putString(EXTRA_REPORT_ID, reportId)
            putString(EXTRA_CALLER, caller)
            putString(EXTRA_CALLER_NAME, name)
            putParcelable(TelecomManager.EXTRA_INCOMING_CALL_ADDRESS, telecomAddress(caller))
        }
        return try {
            telecom.addNewIncomingCall(phoneAccountHandle, extras)
            true
        } catch (e: SecurityException) {
            Log.e(TAG, "addNewIncomingCall: $e")
            telecomCalls { ended(reportId) }
            false
        }
    }

    // --- helpers -----------------------------------------------------------------------------------

    private fun updateNotice() {
        val candidates = connections.map { NoticeCandidate(it.key, it.label, it.stage, it.incomingUiRequested) }
        val next = CallNotice.choose(candidates, decisions.value)
        if (next == notices.value) return
        notices.value = next
        if (next != null) CallForegroundService.ensureStarted(app)
    }

    private fun <T> telecomCalls(use: TelecomCalls<HandsetConnection>.() -> T): T = synchronized(shown) { shown.use() }

    private fun reject(call: Call) {
        scope.launch {
            try {
                call.reject()
            } catch (e: HandsetException) {
                Log.w(TAG, "reject: $e")
            }
        }
    }

    private fun declineReport(reportId: String) {
        try {
            phone.declinePushReport(reportId)
        } catch (e: HandsetException) {
            Log.w(TAG, "declinePushReport: $e")
        }
    }

    private fun reportForeground(foreground: Boolean) {
        try {
            phone.setForeground(foreground)
        } catch (e: HandsetException) {
            Log.w(TAG, "setForeground: $e")
        }
        phone.updateCallScreen(CallScreenInput.Foreground(foreground))
    }

    private fun startedInForeground(): Boolean {
        val state = ActivityManager.RunningAppProcessInfo()
        ActivityManager.getMyMemoryState(state)
        return state.importance <= ActivityManager.RunningAppProcessInfo.IMPORTANCE_FOREGROUND
    }

    private fun reportLocked() {
        phone.updateCallScreen(CallScreenInput.DeviceLocked(keyguard?.isKeyguardLocked ?: false))
    }

    /** Stops everything: subscriptions, sensors, receivers, and the phone itself. */
    override fun close() {
        scope.cancel()
        network.close()
        eventHandle.cancel()
        eventHandle.close()
        proximity.close()
        routes.close()
        (app as? Application)?.unregisterActivityLifecycleCallbacks(lifecycle)
        app.unregisterReceiver(lockReceiver)
        phone.close()
    }

    private class OutgoingRequest(val account: Account, val target: String, val result: CompletableDeferred<Call>)

    private companion object {
        const val TAG = "Handset"
        const val PHONE_ACCOUNT_ID = "handset"
        const val EXTRA_REQUEST = "dev.handset.android.REQUEST"
        const val EXTRA_REPORT_ID = "dev.handset.android.REPORT_ID"
        const val EXTRA_CALLER = "dev.handset.android.CALLER"
        const val EXTRA_CALLER_NAME = "dev.handset.android.CALLER_NAME"

        /** The app's settings with the Android defaults filled in where it left them unset. */
        fun phoneConfig(context: Context, config: PhoneConfig): PhoneConfig = config.copy(
            databasePath = config.databasePath ?: File(context.noBackupFilesDir, "handset.db").path,
            defaultCountry = config.defaultCountry ?: defaultCountry(context),
        )

        /**
         * The country national numbers are dialled in: the SIM's, else the network's (ISO
         * 3166 alpha-2, upper-cased), else the locale's; null when none is known (the core then
         * takes its own default).
         */
        fun defaultCountry(context: Context): String? {
            val telephony = context.getSystemService(TelephonyManager::class.java)
            return DefaultCountry.choose(
                sequenceOf(
                    { telephony?.simCountryIso },
                    { telephony?.networkCountryIso },
                    { Locale.getDefault().country },
                ),
            )
        }
    }
}
