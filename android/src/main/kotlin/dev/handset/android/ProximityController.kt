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
import dev.handset.Proximity
import dev.handset.android.core.ProximityEffect
import dev.handset.android.core.ProximityPlan
import dev.handset.android.core.WindowPlan
import kotlinx.coroutines.CoroutineScope
import kotlinx.coroutines.Job
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.launch

/**
 * Applies the core's call screen decision to the proximity wake lock, and feeds the proximity
 * sensor back to the core.
 *
 * The core decides when the screen may be turned off by proximity
 * ([CallScreenDecision.screenOffByProximity]); [ProximityPlan] turns each decision into lock
 * and sensor effects, which this carries out: `PROXIMITY_SCREEN_OFF_WAKE_LOCK` is held exactly
 * then, so the OS blanks the screen while something is near, and the sensor is listened to
 * only then; when listening stops the core is told `Unknown` so a stale `Near` cannot blank a
 * later call.
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
    private val plan = ProximityPlan(hasLock = wakeLock != null, hasSensor = sensors != null && sensor != null)
    private var job: Job? = null

    /** Whether the OS can turn the screen off by proximity here (else: draw black on `blankScreen`). */
    val proximityLockSupported: Boolean get() = wakeLock != null

    private val listener = object : SensorEventListener {
        override fun onSensorChanged(event: SensorEvent) {
            val distance = event.values.firstOrNull() ?: return
            phone.updateCallScreen(CallScreenInput.Proximity(ProximityPlan.reading(distance, event.sensor.maximumRange)))
        }

        override fun onAccuracyChanged(sensor: Sensor, accuracy: Int) {}
    }

    /** Follows the decisions until [close]. */
    fun start() {
        if (job != null) return
        job = scope.launch { decisions.collect { perform(plan.update(it)) } }
    }

    private fun perform(effects: List<ProximityEffect>) {
        for (effect in effects) {
            when (effect) {
                ProximityEffect.ACQUIRE_LOCK -> wakeLock?.acquire(MAX_HOLD_MS)
                ProximityEffect.RELEASE_LOCK_WHEN_FAR ->
                    wakeLock?.takeIf { it.isHeld }?.release(PowerManager.RELEASE_FLAG_WAIT_FOR_NO_PROXIMITY)
                ProximityEffect.RELEASE_LOCK_NOW -> wakeLock?.takeIf { it.isHeld }?.release()
                ProximityEffect.START_SENSOR ->
                    sensors?.registerListener(listener, sensor, SensorManager.SENSOR_DELAY_NORMAL)
                ProximityEffect.STOP_SENSOR -> {
                    sensors?.unregisterListener(listener)
                    phone.updateCallScreen(CallScreenInput.Proximity(Proximity.UNKNOWN))
                }
            }
        }
    }

    /** Stops following the decisions and releases the lock and the sensor. */
    override fun close() {
        job?.cancel()
        job = null
        perform(plan.close())
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
    val plan = WindowPlan.of(this)
    val window = activity.window
    if (plan.keepScreenOn) {
        window.addFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
    } else {
        window.clearFlags(WindowManager.LayoutParams.FLAG_KEEP_SCREEN_ON)
    }
    if (Build.VERSION.SDK_INT >= Build.VERSION_CODES.O_MR1) {
        activity.setShowWhenLocked(plan.showWhenLocked)
        activity.setTurnScreenOn(plan.turnScreenOn)
    } else {
        @Suppress("DEPRECATION")
        val flags = WindowManager.LayoutParams.FLAG_SHOW_WHEN_LOCKED or WindowManager.LayoutParams.FLAG_TURN_SCREEN_ON
        @Suppress("DEPRECATION")
        when {
            plan.turnScreenOn -> window.addFlags(flags)
            plan.showWhenLocked -> {
                window.addFlags(WindowManager.LayoutParams.FLAG_SHOW_WHEN_LOCKED)
                window.clearFlags(WindowManager.LayoutParams.FLAG_TURN_SCREEN_ON)
            }
            else -> window.clearFlags(flags)
        }
    }
    activity.requestedOrientation = if (plan.rotationLocked) {
        ActivityInfo.SCREEN_ORIENTATION_LOCKED
    } else {
        ActivityInfo.SCREEN_ORIENTATION_UNSPECIFIED
    }
}
