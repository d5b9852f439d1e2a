package dev.handset.android

import android.Manifest
import android.content.Context
import android.content.pm.PackageManager
import android.provider.ContactsContract.CommonDataKinds.Phone
import android.provider.ContactsContract.Data
import dev.handset.Contact
import dev.handset.ContactsSource
import dev.handset.PlatformException

/**
 * The phone's [ContactsSource] on Android: every phone number and SIP address of the address
 * book (ContactsContract), one [Contact] per aggregated contact, for the core to import.
 *
 * One query over [Data] for both kinds keeps it to a single pass over the provider. A refused
 * READ_CONTACTS permission is an error value for the core ([PlatformException]), not an empty
 * book: an empty import would look like "the user deleted everyone".
 */
class ContactsImport(context: Context) : ContactsSource {
    private val context = context.applicationContext

    /** Reads the address book now; called by the core on its own thread (it may take a while). */
    override fun contacts(): List<Contact> {
        if (context.checkSelfPermission(Manifest.permission.READ_CONTACTS) != PackageManager.PERMISSION_GRANTED) {
            throw PlatformException.Failed("READ_CONTACTS not granted")
        }
        val byId = LinkedHashMap<Long, Builder>()
        val cursor = try {
            context.contentResolver.query(
                Data.CONTENT_URI,
                PROJECTION,
                "${Data.MIMETYPE} IN (?, ?)",
                arrayOf(Phone.CONTENT_ITEM_TYPE, SIP_ITEM_TYPE),
                "${Data.DISPLAY_NAME_PRIMARY} COLLATE LOCALIZED ASC",
            )
        } catch (e: SecurityException) {
            throw PlatformException.Failed("contacts provider: ${e.message}")
        } ?: throw PlatformException.Failed("contacts provider unavailable")
        cursor.use { c ->
            val id = c.getColumnIndexOrThrow(Data.CONTACT_ID)
            val name = c.getColumnIndexOrThrow(Data.DISPLAY_NAME_PRIMARY)
            val mime = c.getColumnIndexOrThrow(Data.MIMETYPE)
            val value = c.getColumnIndexOrThrow(Data.DATA1)
            while (c.moveToNext()) {
                val text = c.getString(value)?.trim().orEmpty()
                if (text.isEmpty()) continue
                val entry = byId.getOrPut(c.getLong(id)) { Builder(c.getString(name).orEmpty()) }
                when (c.getString(mime)) {
                    Phone.CONTENT_ITEM_TYPE -> entry.numbers += text
                    SIP_ITEM_TYPE -> entry.sip += text
                }
            }
        }
        return byId.map { (id, b) ->
            Contact(
                id = id.toString(),
                displayName = b.name,
                phoneNumbers = b.numbers.distinct(),
                sipAddresses = b.sip.distinct(),
            )
        }
    }

    private class Builder(val name: String) {
        val numbers = mutableListOf<String>()
        val sip = mutableListOf<String>()
    }

    private companion object {
        // CommonDataKinds.SipAddress went deprecated with the platform's SIP stack (API 31), yet
        // synced address books (Google, CardDAV) still carry SIP addresses, which a SIP phone
        // dials: read them under the kind's MIME type.
        @Suppress("DEPRECATION")
        const val SIP_ITEM_TYPE = android.provider.ContactsContract.CommonDataKinds.SipAddress.CONTENT_ITEM_TYPE

        // DATA1 is Phone.NUMBER for phones and SipAddress.SIP_ADDRESS for SIP addresses.
        val PROJECTION = arrayOf(Data.CONTACT_ID, Data.DISPLAY_NAME_PRIMARY, Data.MIMETYPE, Data.DATA1)
    }
}
