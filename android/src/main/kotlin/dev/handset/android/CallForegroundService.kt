package dev.handset.android

import android.Manifest
import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.PendingIntent
import android.app.Person
import android.app.Service
import android.content.Context
import android.content.Intent
import android.content.pm.PackageManager
import android.content.pm.ServiceInfo
import android.graphics.drawable.Icon
import android.media.AudioAttributes
import android.media.RingtoneManager
import android.os.Build
import android.os.IBinder
import android.util.Log
import dev.handset.android.core.CallNotice
import dev.handset.android.core.CallStage
import kotlinx.coroutines.Job
import kotlinx.coroutines.launch

/**
 * The foreground service that keeps the process (and its microphone) alive while a call is
 * live, and owns the call notification: ringing with Answer/Decline, in progress with Hang up.
 *
 * [AndroidHandset] starts it when a call needs a notification; it follows the handset's notice
 * and stops itself when there is none. Its type is `phoneCall` (API 29+), plus `microphone`
 * (API 30+) from the moment the call records (dialing, or the user answered) when RECORD_AUDIO
 * is granted: a background app records only under a microphone-type service, and Android 14
 * grants that type only with the permission (a refusal leaves `phoneCall`).
 */
class CallForegroundService : Service() {
    private var job: Job? = null

    /** Not bindable: started only. */
    override fun onBind(intent: Intent?): IBinder? = null

    /** Marks the service running, so the handset does not start it twice. */
    override fun onCreate() {
        super.onCreate()
        running = true
    }

    /** Goes (or stays) foreground, carries out a notification action, and follows the notice. */
    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        running = true
        val handset = (application as? HandsetApplication)?.handset
        // First, whatever follows: a service started with startForegroundService that does not
        // call startForeground within seconds crashes the app.
        show(handset, handset?.notice?.value)
        if (handset == null) {
            stop()
            return START_NOT_STICKY
        }
        val key = intent?.getIntExtra(EXTRA_KEY, -1) ?: -1
        handset.connection(key)?.let { connection ->
            when (intent?.action) {
                ACTION_ANSWER -> connection.onAnswer()
                ACTION_DECLINE -> connection.onReject()
                ACTION_HANG_UP -> connection.onDisconnect()
            }
        }
        if (job == null) {
            job = handset.scope.launch {
                handset.notice.collect { notice -> if (notice == null) stop() else show(handset, notice) }
            }
        }
        // A call does not survive the process: nothing to restart into.
        return START_NOT_STICKY
    }

    /** Stops following the notice. */
    override fun onDestroy() {
        job?.cancel()
        job = null
        running = false
        super.onDestroy()
    }

    private fun stop() {
        // At once, not in onDestroy: a call starting before the service is gone must start it again.
        running = false
        job?.cancel()
        job = null
        stopForeground(STOP_FOREGROUND_REMOVE)
        stopSelf()
    }

    private fun show(handset: AndroidHandset?, notice: CallNotice?) {
        val notification = notification(handset, notice)
        if (Build.VERSION.SDK_INT < Build.VERSION_CODES.Q) {
            startForeground(NOTIFICATION_ID, notification)
            return
        }
        var type = ServiceInfo.FOREGROUND_SERVICE_TYPE_PHONE_CALL
        if (notice?.recordsAudio == true && Build.VERSION.SDK_INT >= Build.VERSION_CODES.R &&
            checkSelfPermission(Manifest.permission.RECORD_AUDIO) == PackageManager.PERMISSION_GRANTED
        ) {
            type = type or ServiceInfo.FOREGROUND_SERVICE_TYPE_MICROPHONE
        }
        try {
            startForeground(NOTIFICATION_ID, notification, type)
        } catch (e: SecurityException) {
            // The microphone type may be refused in the background: keep the call type at least.
            Log.w(TAG, "startForeground(type $type): $e")
            startForeground(NOTIFICATION_ID, notification, ServiceInfo.FOREGROUND_SERVICE_TYPE_PHONE_CALL)
        }
    }

    private fun notification(handset: AndroidHandset?, notice: CallNotice?): Notification {
        val config = handset?.config
        val text = config?.notificationText ?: CallNotificationText()
        createChannels(this, text)
        val ringing = notice?.stage == CallStage.RINGING
        val builder = Notification.Builder(this, if (ringing) CHANNEL_INCOMING else CHANNEL_ONGOING)
            .setSmallIcon(config?.notificationIcon ?: android.R.drawable.sym_action_call)
            .setCategory(Notification.CATEGORY_CALL)
            .setOngoing(true)
            .setVisibility(Notification.VISIBILITY_PUBLIC)
        if (notice == null) return builder.setContentTitle(text.active).build()
        builder.setContentTitle(notice.caller).setContentText(
            when (notice.stage) {
                CallStage.RINGING -> text.incoming
                CallStage.DIALING -> text.outgoing
                CallStage.HELD -> text.held
                CallStage.ANSWERING, CallStage.ACTIVE,
                CallStage.ENDED,
                -> text.active
            },
        )
        config?.callActivity?.let { activity ->
            val open = PendingIntent.getActivity(
                this,
                0,
                Intent(this, activity).addFlags(Intent.FLAG_ACTIVITY_NEW_TASK),
                PendingIntent.FLAG_IMMUTABLE or PendingIntent.FLAG_UPDATE_CURRENT,
            )
            builder.setContentIntent(open)
            // The core decides between a heads-up and the full-screen ringing screen.
            if (ringing && notice.fullScreen) builder.setFullScreenIntent(open, true)
        }
        val answer = action(ACTION_ANSWER, notice.key)
        val decline = action(ACTION_DECLINE, notice.key)
        val hangUp = action(ACTION_HANG_UP, notice.key)
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            val caller = Person.Builder().setName(notice.caller).setImportant(true).build()
            builder.setStyle(
                if (ringing) {
                    Notification.CallStyle.forIncomingCall(caller, decline, answer)
                } else {
                    Notification.CallStyle.forOngoingCall(caller, hangUp)
                },
            )
        } else if (ringing) {
            builder.addAction(button(android.R.drawable.ic_menu_close_clear_cancel, text.decline, decline))
            builder.addAction(button(android.R.drawable.sym_action_call, text.answer, answer))
        } else {
            builder.addAction(button(android.R.drawable.ic_menu_close_clear_cancel, text.hangUp, hangUp))
        }
        return builder.build().apply {
            // The ringtone repeats until the call is answered or ends.
            if (ringing) flags = flags or Notification.FLAG_INSISTENT
        }
    }

    private fun action(action: String, key: Int): PendingIntent = PendingIntent.getService(
        this,
        key * 4 + ACTIONS.indexOf(action),
        Intent(this, CallForegroundService::class.java).setAction(action).putExtra(EXTRA_KEY, key),
        PendingIntent.FLAG_IMMUTABLE or PendingIntent.FLAG_UPDATE_CURRENT,
    )

    private fun button(icon: Int, title: String, intent: PendingIntent): Notification.Action =
        Notification.Action.Builder(Icon.createWithResource(this, icon), title, intent).build()

    /** Starting the service from the handset. */
    internal companion object {
        private const val TAG = "HandsetService"
        private const val NOTIFICATION_ID = 0x4853
        private const val CHANNEL_INCOMING = "handset.incoming"
        private const val CHANNEL_ONGOING = "handset.ongoing"
        private const val EXTRA_KEY = "dev.handset.android.CONNECTION"
        private const val ACTION_ANSWER = "dev.handset.android.ANSWER"
        private const val ACTION_DECLINE = "dev.handset.android.DECLINE"
        private const val ACTION_HANG_UP = "dev.handset.android.HANG_UP"
        private val ACTIONS = listOf(ACTION_ANSWER, ACTION_DECLINE, ACTION_HANG_UP)

        @Volatile private var running = false

        /** Starts the service unless it runs; it then follows the handset's notice on its own. */
        fun ensureStarted(context: Context) {
            if (running) return
            try {
                context.startForegroundService(Intent(context, CallForegroundService::class.java))
            } catch (e: IllegalStateException) {
                // Android 12+ refuses foreground services started from the background outside
                // its exemptions; the call goes on, without the notification.
                Log.w(TAG, "cannot start the call service: $e")
            }
        }

        /**
         * The two channels: ringing calls ring (ringtone, high importance: heads-up), calls in
         * progress are silent. Channel settings are the user's after the first creation.
         */
        fun createChannels(context: Context, text: CallNotificationText) {
            val manager = context.getSystemService(NotificationManager::class.java) ?: return
            val incoming = NotificationChannel(CHANNEL_INCOMING, text.incomingChannel, NotificationManager.IMPORTANCE_HIGH).apply {
                setSound(
                    RingtoneManager.getDefaultUri(RingtoneManager.TYPE_RINGTONE),
                    AudioAttributes.Builder()
                        .setUsage(AudioAttributes.USAGE_NOTIFICATION_RINGTONE)
                        .setContentType(AudioAttributes.CONTENT_TYPE_SONIFICATION)
                        .build(),
                )
                enableVibration(true)
                lockscreenVisibility = Notification.VISIBILITY_PUBLIC
            }
            val ongoing = NotificationChannel(CHANNEL_ONGOING, text.ongoingChannel, NotificationManager.IMPORTANCE_LOW).apply {
                setSound(null, null)
            }
            manager.createNotificationChannels(listOf(incoming, ongoing))
        }
    }
}
