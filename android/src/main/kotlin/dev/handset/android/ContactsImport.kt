package dev.handset.android

import android.Manifest
import android.content.Context
import android.content.pm.PackageManager
import android.provider.ContactsContract.CommonDataKinds.Email
import android.provider.ContactsContract.CommonDataKinds.Organization
import android.provider.ContactsContract.CommonDataKinds.Phone
import android.provider.ContactsContract.Data
import dev.handset.Contact
import dev.handset.ContactsSource
import dev.handset.PlatformException

/**
 * The phone's [ContactsSource] on Android: the phone numbers (with their type labels, as the
 * system shows them: "Mobile", "Work", a custom label), SIP addresses, e-mail addresses and
 * company of every aggregated contact of the address book (ContactsContract), one [Contact]
 * each, for the core to import.
 *
 * One query over [Data] for all kinds keeps it to a single pass over the provider; a contact's
 * primary entries come first. A refused READ_CONTACTS permission is an error value for the core
 * ([PlatformException]), not an empty book: an empty import would look like "the user deleted
 * everyone".
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
                "${Data.MIMETYPE} IN (?, ?, ?, ?)",
                arrayOf(Phone.CONTENT_ITEM_TYPE, SIP_ITEM_TYPE, Email.CONTENT_ITEM_TYPE, Organization.CONTENT_ITEM_TYPE),
                "${Data.DISPLAY_NAME_PRIMARY} COLLATE LOCALIZED ASC, ${Data.CONTACT_ID} ASC, " +
                    "${Data.IS_SUPER_PRIMARY} DESC, ${Data.IS_PRIMARY} DESC, ${Data._ID} ASC",
            )
        } catch (e: SecurityException) {
            throw PlatformException.Failed("contacts provider: ${e.message}")
        } ?: throw PlatformException.Failed("contacts provider unavailable")
        val resources = context.resources
        cursor.use { c ->
            val id = c.getColumnIndexOrThrow(Data.CONTACT_ID)
            val name = c.getColumnIndexOrThrow(Data.DISPLAY_NAME_PRIMARY)
            val mime = c.getColumnIndexOrThrow(Data.MIMETYPE)
            val value = c.getColumnIndexOrThrow(Data.DATA1)
            val type = c.getColumnIndexOrThrow(Data.DATA2)
            val label = c.getColumnIndexOrThrow(Data.DATA3)
            while (c.moveToNext()) {
                val text = c.getString(value)?.trim().orEmpty()
                if (text.isEmpty()) continue
                val entry = byId.getOrPut(c.getLong(id)) { Builder(c.getString(name).orEmpty()) }
                when (c.getString(mime)) {
                    Phone.CONTENT_ITEM_TYPE -> if (text !in entry.numbers) {
                        entry.numbers[text] = if (c.isNull(type)) {
                            c.getString(label)?.trim().orEmpty()
                        } else {
                            Phone.getTypeLabel(resources, c.getInt(type), c.getString(label)).toString()
                        }
                    }
                    SIP_ITEM_TYPE -> entry.sip += text
                    Email.CONTENT_ITEM_TYPE -> entry.emails += text
                    Organization.CONTENT_ITEM_TYPE -> if (entry.company == null) entry.company = text
                }
            }
        }
        return byId.map { (id, b) ->
            Contact(
                id = id.toString(),
                displayName = b.name,
                phoneNumbers = b.numbers.keys.toList(),
                sipAddresses = b.sip.toList(),
                phoneLabels = b.numbers.values.toList(),
                emails = b.emails.toList(),
                company = b.company,
            )
        }
    }

    private class Builder(val name: String) {
        /** Each number once (the first, i.e. primary, row wins) with its label, in order. */
        val numbers = LinkedHashMap<String, String>()
        val sip = LinkedHashSet<String>()
        val emails = LinkedHashSet<String>()
        var company: String? = null
    }

    private companion object {
        // CommonDataKinds.SipAddress went deprecated with the platform's SIP stack (API 31), yet
        // synced address books (Google, CardDAV) still carry SIP addresses, which a SIP phone
        // dials: read them under the kind's MIME type.
        @Suppress("DEPRECATION")
        const val SIP_ITEM_TYPE = android.provider.ContactsContract.CommonDataKinds.SipAddress.CONTENT_ITEM_TYPE

        // DATA1 is Phone.NUMBER, SipAddress.SIP_ADDRESS, Email.ADDRESS and Organization.COMPANY;
        // for phones DATA2 is Phone.TYPE and DATA3 Phone.LABEL (the custom label).
        val PROJECTION = arrayOf(
            Data._ID, Data.CONTACT_ID, Data.DISPLAY_NAME_PRIMARY, Data.MIMETYPE,
            Data.DATA1, Data.DATA2, Data.DATA3,
        )
    }
}
