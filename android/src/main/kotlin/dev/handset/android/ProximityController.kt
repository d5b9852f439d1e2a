package dev.handset.android

import android.app.Activity
import android.content.Context
import android.content.pm.ActivityInfo
import android.hardware.Sensor
import android.hardware.SensorEvent
import android.hardware.SensorEventListener
import android.hardware.SensorManager
import android.os.Build
import android.os.PowerManager
import android.view.WindowManager
import dev.handset.CallScreenDecision
import dev.handset.CallScreenInput
import dev.handset.HandsetPhone
import dev.handset.IncomingUi
import dev.handset.Proximity
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.launch

/**
 * Applies the core's call screen decision to the proximity wake lock, and feeds the proximity
 * sensor back to the core.
 *
 * The core decides when the screen may be turned off by proximity
 * ([CallScreenDecision.screenOffByProximity]); this holds `PROXIMITY_SCREEN_OFF_WAKE_LOCK`
 * exactly then, so the OS blanks the screen while something is near. The sensor is listened to
 * only while that lock is wanted (readings matter to the core's `blankScreen` rule only then,
 * and a listening sensor costs battery); when listening stops the core is told `Unknown` so a
 * stale `Near` cannot blank a later call.
 *
 * Devices without the wake lock level (tablets) get [proximityLockSupported] = false: the app
 * then draws black itself while [CallScreenDecision.blankScreen] says so.
 */
class ProximityController(
    context: Context,
    private val phone: HandsetPhone,
    private val decisions: StateFlow<CallScreenDecision>,
    private val scope: CoroutineScope,
) : AutoCloseable {
    private val power = context.getSystemService(PowerManager::class.java)
    private val sensors = context.getSystemService(SensorManager::class.java)
    private val sensor: Sensor? = sensors?.getDefaultSensor(Sensor.TYPE_PROXIMITY)
    private val wakeLock: PowerManager.WakeLock? =
        if (power != null && power.isWakeLockLevelSupported(PowerManager.PROXIMITY_SCREEN_OFF_WAKE_LOCK)) {
            power.newWakeLock(PowerManager.PROXIMITY_SCREEN_OFF_WAKE_LOCK, "handset:proximity").apply {
                // One holder: the decision is a level, not a count.
                setReferenceCounted(false)
            }
        } else {
            null
        }
    private var listening = false
    private var job: Job? = null

    /** Whether the OS can turn the screen off by proximity here (else: draw black on `blankScreen`). */
    val proximityLockSupported: Boolean get() = wakeLock != null

    private val listener = object : SensorEventListener {
        override fun onSensorChanged(event: SensorEvent) {
            val distance = event.values.firstOrNull() ?: return
            // Most sensors are binary and report either 0 or their maximum range.
            val near = distance < event.sensor.maximumRange
            phone.updateCallScreen(CallScreenInput.Proximity(if (near) Proximity.NEAR else Proximity.FAR))
        }

        override fun onAccuracyChanged(sensor: Sensor, accuracy: Int) {}
    }

    /** Follows the decisions until [close]. */
    fun start() {
        if (job != null) return
        job = scope.launch { decisions.collect { apply(it) } }
    }

    private fun apply(decision: CallScreenDecision) {
        val wanted = decision.screenOffByProximity
        wakeLock?.let { lock ->
            if (wanted && !lock.isHeld) {
                lock.acquire(MAX_HOLD_MS)
            } else if (!wanted && lock.isHeld) {
                // Wait for "far" before lighting the screen: no flash against the cheek.
                lock.release(PowerManager.RELEASE_FLAG_WAIT_FOR_NO_PROXIMITY)
            }
        }
        listen(wanted)
    }

    private fun listen(on: Boolean) {
        val sensors = sensors ?: return
        if (on == listening || sensor == null) return
        listening = on
        if (on) {
            sensors.registerListener(listener, sensor, SensorManager.SENSOR_DELAY_NORMAL)
        } else {
            sensors.unregisterListener(listener)
            phone.updateCallScreen(CallScreenInput.Proximity(Proximity.UNKNOWN))
        }
    }

    /** Stops following the decisions and releases the lock and the sensor. */
    override fun close() {
        job?.cancel()
        job = null
        listen(false)
        wakeLock?.takeIf { it.isHeld }?.release()
    }

    private companion object {
        // A safety net should a release be missed: longer than any call screen stays up unattended.
        const val MAX_HOLD_MS = 4 * 60 * 60 * 1000L
    }
}

/**
 * Applies the core's call screen decision to a call activity's window: keep-screen-on, showing
 * over the lock screen, and rotation. Collect [AndroidHandset.callScreen] in the activity (or use
 * [AndroidHandset.attachCallWindow]) and call this with each decision.
 */
fun CallScreenDecision.applyTo(activity: Activity) {
    val window = activity.window
    if (keepScreenOn) {
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
    } else {
        window.clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
    }
    // The ringing screen wakes the device and shows over the keyguard; the in-call screen shows
    // over it too (a call answered on the lock screen stays reachable).
    val overLockScreen = showIncomingUi == IncomingUi.FULL_SCREEN || showInCallUi
    val turnScreenOn = showIncomingUi == IncomingUi.FULL_SCREEN
    if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.O_MR1) {
        activity.setShowWhenLocked(overLockScreen)
        activity.setTurnScreenOn(turnScreenOn)
    } else {
        @Suppress("DEPRECATION")
        val flags = WindowManager.LayoutParams.FLAG_SHOW_WHEN_LOCKED or WindowManager.LayoutParams.FLAG_TURN_SCREEN_ON
        @Suppress("DEPRECATION")
        when {
            turnScreenOn -> window.addFlags(flags)
            overLockScreen -> {
                window.addFlags(WindowManager.LayoutParams.FLAG_SHOW_WHEN_LOCKED)
                window.clearFlags(WindowManager.LayoutParams.FLAG_TURN_SCREEN_ON)
            }
            else -> window.clearFlags(flags)
        }
    }
    activity.requestedOrientation = if (rotationAllowed) {
        ActivityInfo.SCREEN_ORIENTATION_UNSPECIFIED
    } else {
        ActivityInfo.SCREEN_ORIENTATION_LOCKED
    }
}
