package dev.handset.android.core

/**
 * The address Telecom shows for a call: `sip:` or `tel:`, the two schemes our phone account
 * declares, and the scheme-specific part (the glue builds `Uri.fromParts(scheme, part, null)`).
 */
data class TelecomAddress(
    /** `sip` or `tel`. */
    val scheme: String,
    /** What follows the scheme. */
    val part: String,
) {
    /** Reads an address. */
    companion object {
        /** Telecom's `tel:` scheme. */
        const val TEL = "tel"

        /** Telecom's `sip:` scheme. */
        const val SIP = "sip"

        /**
         * The Telecom address of a SIP URI, a `tel:` URI or a bare user / number (`sips:` is
         * shown as `sip:`: Telecom has no scheme for it).
         */
        fun of(address: String): TelecomAddress = when {
            address.startsWith("tel:") -> TelecomAddress(TEL, address.removePrefix("tel:"))
            address.startsWith("sips:") -> TelecomAddress(SIP, address.removePrefix("sips:"))
            else -> TelecomAddress(SIP, address.removePrefix("sip:"))
        }
    }
}

/** The country national numbers are dialled in, from what the device knows. */
object DefaultCountry {
    /**
     * The first country code [candidates] give (the SIM's, the network's, the locale's, in
     * the caller's order), trimmed and upper-cased (ISO 3166 alpha-2); null when none does. A
     * candidate that throws [UnsupportedOperationException] (a device without telephony,
     * targeting API 35) counts as absent.
     */
    fun choose(candidates: Sequence<() -> String?>): String? = candidates
        .mapNotNull { read ->
            try {
                read()
            } catch (e: UnsupportedOperationException) {
                null
            }
        }
        .map { it.trim().uppercase(java.util.Locale.ROOT) }
        .firstOrNull { it.isNotEmpty() }
}

/**
 * Whether one of the app's activities is visible, from the activity lifecycle: the count of
 * started activities, where a stop for a configuration change (rotation) is not a trip to the
 * background. Not thread-safe: the main thread's.
 */
class ForegroundTracker {
    private var started = 0
    private var reported: Boolean? = null

    /** An activity started; returns the foreground state to report, or null if unchanged. */
    fun activityStarted(): Boolean? {
        started++
        return report(true)
    }

    /** An activity stopped; returns the state to report, or null if unchanged. */
    fun activityStopped(changingConfigurations: Boolean): Boolean? {
        started = (started - 1).coerceAtLeast(0)
        if (started > 0 || changingConfigurations) return null
        return report(false)
    }

    /** The process's importance was read at start: returns the state to report, or null. */
    fun initially(foreground: Boolean): Boolean? = report(foreground)

    private fun report(foreground: Boolean): Boolean? {
        if (reported == foreground) return null
        reported = foreground
        return foreground
    }
}

/** The JSON text the core's `handlePush` reads, from an FCM data message. */
object PushPayload {
    /**
     * [data] (FCM data: string keys and string values) as one JSON object, keys sorted so a
     * duplicate delivery gives the same text.
     */
    fun json(data: Map<String, String>): String = data.entries
        .sortedBy { it.key }
        .joinToString(",", "{", "}") { (key, value) -> "${quote(key)}:${quote(value)}" }

    /** [text] as a JSON string literal (RFC 8259 escapes; control characters as `\u00XX`). */
    fun quote(text: String): String {
        val out = StringBuilder(text.length + 2).append('"')
        for (c in text) {
            when (c) {
                '"' -> out.append("\\\"")
                '\\' -> out.append("\\\\")
                '\n' -> out.append("\\n")
                '\r' -> out.append("\\r")
                '\t' -> out.append("\\t")
                else -> if (c < ' ') out.append(String.format("\\u%04x", c.code)) else out.append(c)
            }
        }
        return out.append('"').toString()
    }
}
