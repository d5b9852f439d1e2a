package dev.handset.android.core

import dev.handset.CallScreenDecision
import dev.handset.IncomingUi
import dev.handset.Proximity

/** A call activity's window settings for one of the core's call screen decisions. */
data class WindowPlan(
    /** `FLAG_KEEP_SCREEN_ON`. */
    val keepScreenOn: Boolean,
    /** `setShowWhenLocked` (`FLAG_SHOW_WHEN_LOCKED` before API 27). */
    val showWhenLocked: Boolean,
    /** `setTurnScreenOn` (`FLAG_TURN_SCREEN_ON` before API 27). */
    val turnScreenOn: Boolean,
    /** `SCREEN_ORIENTATION_LOCKED` (else `UNSPECIFIED`). */
    val rotationLocked: Boolean,
) {
    /** Reads the plan off a decision. */
    companion object {
        /**
         * The window for [decision]: the ringing screen wakes the device and shows over the
         * keyguard; the in-call screen shows over it too (a call answered on the lock screen
         * stays reachable) without waking it.
         */
        fun of(decision: CallScreenDecision): WindowPlan {
            val fullScreenRinging = decision.showIncomingUi == IncomingUi.FULL_SCREEN
            return WindowPlan(
                keepScreenOn = decision.keepScreenOn,
                showWhenLocked = fullScreenRinging || decision.showInCallUi,
                turnScreenOn = fullScreenRinging,
                rotationLocked = !decision.rotationAllowed,
            )
        }
    }
}

/** One thing the proximity glue does with the wake lock or the sensor. */
enum class ProximityEffect {
    /** Acquire `PROXIMITY_SCREEN_OFF_WAKE_LOCK`: the OS blanks the screen while near. */
    ACQUIRE_LOCK,

    /** Release it once the sensor reads far (no flash against the cheek). */
    RELEASE_LOCK_WHEN_FAR,

    /** Release it at once (shutting down). */
    RELEASE_LOCK_NOW,

    /** Listen to the proximity sensor (its readings feed the core's `blankScreen` rule). */
    START_SENSOR,

    /**
     * Stop listening and tell the core the sensor reads nothing (`Proximity.UNKNOWN`), so a
     * stale "near" cannot blank a later call.
     */
    STOP_SENSOR,
}

/**
 * The proximity wake lock and sensor follow the core's [CallScreenDecision.screenOffByProximity]:
 * the lock is held exactly while the core says so, and the sensor is listened to only then
 * (readings matter to the core only then, and a listening sensor costs battery). Devices
 * without the lock level ([hasLock] false) or the sensor ([hasSensor] false) skip those effects.
 */
class ProximityPlan(private val hasLock: Boolean, private val hasSensor: Boolean) {
    private var locked = false
    private var listening = false

    /** The effects of a new decision, the lock's first. */
    fun update(decision: CallScreenDecision): List<ProximityEffect> {
        val wanted = decision.screenOffByProximity
        val effects = mutableListOf<ProximityEffect>()
        if (hasLock && wanted != locked) {
            locked = wanted
            effects += if (wanted) ProximityEffect.ACQUIRE_LOCK else ProximityEffect.RELEASE_LOCK_WHEN_FAR
        }
        if (hasSensor && wanted != listening) {
            listening = wanted
            effects += if (wanted) ProximityEffect.START_SENSOR else ProximityEffect.STOP_SENSOR
        }
        return effects
    }

    /** The effects of shutting down: the sensor off, the lock released at once. */
    fun close(): List<ProximityEffect> {
        val effects = mutableListOf<ProximityEffect>()
        if (listening) effects += ProximityEffect.STOP_SENSOR
        if (locked) effects += ProximityEffect.RELEASE_LOCK_NOW
        listening = false
        locked = false
        return effects
    }

    /** Reads a proximity sensor. */
    companion object {
        /**
         * The core's reading for a sensor's [distance]: most sensors are binary and report
         * either 0 or their maximum range, so anything short of [maximumRange] is near.
         */
        fun reading(distance: Float, maximumRange: Float): Proximity =
            if (distance < maximumRange) Proximity.NEAR else Proximity.FAR
    }
}
