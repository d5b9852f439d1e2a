package dev.handset.android

import android.content.Context
import android.net.ConnectivityManager
import android.net.LinkProperties
import android.net.Network
import android.util.Log
import dev.handset.HandsetException
import dev.handset.HandsetPhone
import dev.handset.android.core.DnsServers

/**
 * Gives the core the default network's DNS servers, at start and on every change: Android has
 * no /etc/resolv.conf for it to read. Needs ACCESS_NETWORK_STATE (in the library's manifest).
 */
class NetworkDns(context: Context, private val phone: HandsetPhone) : AutoCloseable {
    private val connectivity = context.applicationContext.getSystemService(ConnectivityManager::class.java)

    private val callback = object : ConnectivityManager.NetworkCallback() {
        // Called for the current default network right after registering, then on changes.
        override fun onLinkPropertiesChanged(network: Network, linkProperties: LinkProperties) {
            val servers = DnsServers.entries(linkProperties.dnsServers)
            try {
                phone.setDnsServers(servers)
            } catch (e: HandsetException) {
                // Addresses come from the platform: logged without them.
                Log.w(TAG, "DNS servers not taken: ${e.javaClass.simpleName}")
            }
        }
    }

    private var registered = false

    /** Starts following the default network. */
    fun start() {
        val manager = connectivity
        if (manager == null) {
            Log.w(TAG, "no ConnectivityManager: DNS servers not followed")
            return
        }
        manager.registerDefaultNetworkCallback(callback)
        registered = true
    }

    override fun close() {
        if (registered) {
            registered = false
            connectivity?.unregisterNetworkCallback(callback)
        }
    }

    private companion object {
        const val TAG = "Handset"
    }
}
