package dev.handset.android

import android.content.Context
import dev.handset.IncomingCallReport
import dev.handset.PushService
import dev.handset.PushToken
import dev.handset.PushTokenProvider

/**
 * The FCM entry points, called from the app's own `FirebaseMessagingService` (the library does
 * not depend on Firebase):
 *
 * ```kotlin
 * class Messaging : FirebaseMessagingService() {
 *     override fun onMessageReceived(message: RemoteMessage) {
 *         HandsetPush.onMessageReceived(this, message.data)
 *     }
 *     override fun onNewToken(token: String) = HandsetPush.onNewToken(this, token)
 * }
 * ```
 *
 * The PBX must send high-priority data messages: only those may start the call's foreground
 * service from the background.
 */
object HandsetPush {
    /**
     * Hands an FCM data message to the core and, when it announces a call, reports that call
     * to Telecom (which then rings through [HandsetConnectionService]). Returns the core's
     * report, or null when the message is not a Handset push (or the app has no
     * [HandsetApplication]). Returns without network: the core re-registers in the background
     * so the PBX can send the INVITE.
     */
    fun onMessageReceived(context: Context, data: Map<String, String>): IncomingCallReport? {
        val handset = (context.applicationContext as? HandsetApplication)?.handset ?: return null
        return handset.reportPush(data)
    }

    /**
     * Keeps a new FCM registration token for [FcmPushToken], then has every account added with
     * push ([AndroidHandset.addAccount]) register again with it
     * ([AndroidHandset.refreshPushTokens]), so the PBX wakes this device under the new token.
     * Accounts added from now on register with it from the start. Returns at once.
     */
    fun onNewToken(context: Context, token: String) {
        FcmPushToken.store(context, token)
        (context.applicationContext as? HandsetApplication)?.handset?.refreshPushTokens()
    }
}

/**
 * The phone's [PushTokenProvider] for FCM: the token [HandsetPush.onNewToken] stored, kept in
 * the app's private preferences so a process woken by a push has it at once, without waiting
 * for Firebase. [projectId] is the `pn-param` of RFC 8599 (the FCM project id).
 */
class FcmPushToken(context: Context, private val projectId: String) : PushTokenProvider {
    private val context = context.applicationContext

    /** The stored token, if FCM gave one yet. */
    override fun pushToken(): PushToken? =
        prefs(context).getString(KEY, null)?.let { PushToken(PushService.FCM, it, projectId) }

    /** Where the token is kept. */
    companion object {
        private const val PREFS = "dev.handset.android.push"
        private const val KEY = "fcm_token"

        private fun prefs(context: Context) =
            context.applicationContext.getSharedPreferences(PREFS, Context.MODE_PRIVATE)

        /** Stores [token] (called by [HandsetPush.onNewToken]). */
        fun store(context: Context, token: String) {
            prefs(context).edit().putString(KEY, token).apply()
        }
    }
}
