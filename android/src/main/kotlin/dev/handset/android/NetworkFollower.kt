package dev.handset.android

import android.content.Context
import android.net.ConnectivityManager
import android.net.LinkProperties
import android.net.Network
import android.util.Log
import dev.handset.HandsetException
import dev.handset.HandsetPhone
import dev.handset.android.core.DefaultNetworkChanges
import dev.handset.android.core.DnsServers

/**
 * Follows the default network for the core: its DNS servers at start and on every change
 * (Android has no /etc/resolv.conf for the core to read), then `networkChanged` when another
 * network became the default or its addresses changed ([DefaultNetworkChanges] decides), so
 * the accounts register again from the new address. Needs ACCESS_NETWORK_STATE (in the
 * library's manifest).
 */
class NetworkFollower(context: Context, private val phone: HandsetPhone) : AutoCloseable {
    private val connectivity = context.applicationContext.getSystemService(ConnectivityManager::class.java)
    private val changes = DefaultNetworkChanges()

    private val callback = object : ConnectivityManager.NetworkCallback() {
        // Called for the current default network right after registering, then on changes,
        // always on the same thread.
        override fun onLinkPropertiesChanged(network: Network, linkProperties: LinkProperties) {
            val servers = DnsServers.entries(linkProperties.dnsServers)
            val addresses = linkProperties.linkAddresses.map { it.toString() }
            try {
                // The servers first: registering again looks the PBX up through them.
                phone.setDnsServers(servers)
                if (changes.update(network.networkHandle, addresses)) {
                    phone.networkChanged()
                }
            } catch (e: HandsetException) {
                // Addresses come from the platform: logged without them.
                Log.w(TAG, "network change not taken: ${e.javaClass.simpleName}")
            }
        }

        override fun onLost(network: Network) {
            changes.lost(network.networkHandle)
        }
    }

    private var registered = false

    /** Starts following the default network. */
    fun start() {
        val manager = connectivity
        if (manager == null) {
            Log.w(TAG, "no ConnectivityManager: the network is not followed")
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
