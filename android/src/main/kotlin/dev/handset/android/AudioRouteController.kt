package dev.handset.android

import android.content.Context
import android.media.AudioDeviceCallback
import android.media.AudioDeviceInfo
import android.media.AudioManager
import android.os.Build
import android.os.Handler
import android.os.Looper
import android.util.Log
import dev.handset.AudioRoute
import dev.handset.AudioRoutePlatform
import dev.handset.CallScreenInput
import dev.handset.HandsetPhone
import dev.handset.PlatformException
import dev.handset.android.core.AndroidAudioRoutes
import dev.handset.android.core.LegacyRouteSwitches
import java.util.concurrent.Executor

/**
 * The phone's [AudioRoutePlatform] on Android: lists the call audio routes and routes to the one
 * the core picks (its rules: wired headset > Bluetooth > earpiece, the user's choice, ...).
 *
 * API 31+ uses the communication device API (`setCommunicationDevice`), the one way that also
 * covers BLE audio and hearing aids. Earlier versions have only the speakerphone and Bluetooth
 * SCO switches, with a wired headset taking over from the earpiece on its own.
 *
 * Device changes ([AudioDeviceCallback]) go to the core with [HandsetPhone.audioRoutesChanged]
 * so it can switch; the route actually in use goes to the call screen rules with
 * [CallScreenInput.Route], because the OS may move audio by itself (a headset's own button).
 * The user's picks go through [HandsetPhone.selectAudioRoute], never straight to [selectRoute].
 */
class AudioRouteController(context: Context) : AudioRoutePlatform, AutoCloseable {
    private val audio = context.getSystemService(AudioManager::class.java)
        ?: throw IllegalStateException("no AudioManager")
    private val main = Handler(Looper.getMainLooper())
    @Volatile private var phone: HandsetPhone? = null
    // Written from the main thread (device callbacks) and the core's threads (selectRoute).
    private var lastReported: AudioRoute? = null

    private val deviceCallback = object : AudioDeviceCallback() {
        override fun onAudioDevicesAdded(addedDevices: Array<out AudioDeviceInfo>) = devicesChanged()
        override fun onAudioDevicesRemoved(removedDevices: Array<out AudioDeviceInfo>) = devicesChanged()
    }
    // Typed Any: the listener interface exists from API 31 only.
    private val communicationListener: Any? =
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            AudioManager.OnCommunicationDeviceChangedListener { reportCurrent() }
        } else {
            null
        }

    /**
     * Starts reporting device changes to [phone] (the phone this controller was given to). The
     * device callback fires at once with the devices present, so the core learns the routes.
     */
    fun attach(phone: HandsetPhone) {
        this.phone = phone
        audio.registerAudioDeviceCallback(deviceCallback, main)
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            audio.addOnCommunicationDeviceChangedListener(
                Executor { main.post(it) },
                communicationListener as AudioManager.OnCommunicationDeviceChangedListener,
            )
        }
    }

    /** The route call audio uses now, as far as the OS tells. */
    val currentRoute: AudioRoute
        get() = if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            audio.communicationDevice?.let { AndroidAudioRoutes.routeOf(it.type) } ?: AudioRoute.EARPIECE
        } else {
            @Suppress("DEPRECATION")
            val switches = LegacyRouteSwitches(speakerphone = audio.isSpeakerphoneOn, bluetoothSco = audio.isBluetoothScoOn)
            AndroidAudioRoutes.legacyCurrent(switches, outputs().map { it.type })
        }

    /** The routes a call could use now, in the core's order. */
    override fun availableRoutes(): List<AudioRoute> =
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            AndroidAudioRoutes.available(audio.availableCommunicationDevices.map { it.type }, legacy = false)
        } else {
            AndroidAudioRoutes.available(outputs().map { it.type }, legacy = true)
        }

    /** Routes call audio to [route] (the core's choice); fails when the device is gone. */
    override fun selectRoute(route: AudioRoute) {
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            val device = audio.availableCommunicationDevices.firstOrNull { AndroidAudioRoutes.routeOf(it.type) == route }
                ?: throw PlatformException.Failed("no communication device for $route")
            if (!audio.setCommunicationDevice(device)) {
                throw PlatformException.Failed("setCommunicationDevice($route) refused")
            }
        } else {
            selectLegacy(AndroidAudioRoutes.legacySwitches(route))
        }
        reportCurrent()
    }

    @Suppress("DEPRECATION")
    private fun selectLegacy(switches: LegacyRouteSwitches) {
        // Telecom sets this for the self-managed call already; again, for calls outside Telecom.
        audio.mode = AudioManager.MODE_IN_COMMUNICATION
        if (switches.bluetoothSco) {
            audio.isSpeakerphoneOn = false
            audio.startBluetoothSco()
            audio.isBluetoothScoOn = true
        } else {
            stopSco()
            audio.isSpeakerphoneOn = switches.speakerphone
        }
    }

    @Suppress("DEPRECATION")
    private fun stopSco() {
        if (audio.isBluetoothScoOn) {
            audio.isBluetoothScoOn = false
            audio.stopBluetoothSco()
        }
    }

    /** Gives the audio path back to the OS once no call is live. */
    fun release() {
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            audio.clearCommunicationDevice()
        } else {
            stopSco()
            @Suppress("DEPRECATION")
            audio.isSpeakerphoneOn = false
            audio.mode = AudioManager.MODE_NORMAL
        }
        synchronized(this) { lastReported = null }
    }

    private fun devicesChanged() {
        val phone = phone ?: return
        try {
            phone.audioRoutesChanged()
        } catch (e: Exception) {
            Log.w(TAG, "audioRoutesChanged: $e")
        }
        reportCurrent()
    }

    private fun reportCurrent() {
        val phone = phone ?: return
        val route = currentRoute
        val changed = synchronized(this) {
            (route != lastReported).also { lastReported = route }
        }
        if (changed) phone.updateCallScreen(CallScreenInput.Route(route))
    }

    private fun outputs(): Array<AudioDeviceInfo> = audio.getDevices(AudioManager.GET_DEVICES_OUTPUTS)

    /** Stops reporting device changes. */
    override fun close() {
        audio.unregisterAudioDeviceCallback(deviceCallback)
        if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.S) {
            audio.removeOnCommunicationDeviceChangedListener(
                communicationListener as AudioManager.OnCommunicationDeviceChangedListener,
            )
        }
        phone = null
    }

    private companion object {
        const val TAG = "HandsetRoutes"
    }
}
