// The test runner test.sh starts: JUnitCore with JUnit's own text output (ending in its summary
// `OK (N tests)` / `Tests run: N,  Failures: M`), plus a line per skipped test, which JUnit's
// summary counts as passed.
package dev.handset

import kotlin.system.exitProcess
import org.junit.internal.TextListener
import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import org.junit.runner.notification.RunListener

fun main() {
    val core = JUnitCore()
    core.addListener(object : RunListener() {
        override fun testAssumptionFailure(failure: Failure) {
            System.out.println("\nSKIPPED ${failure.description.methodName}: ${failure.message}")
        }
    })
    core.addListener(TextListener(System.out))
    val result = core.run(HandsetTest::class.java)
    if (result.assumptionFailureCount > 0) {
        System.out.println("(${result.assumptionFailureCount} of them skipped: no harness)")
    }
    System.out.flush()
    exitProcess(if (result.wasSuccessful()) 0 else 1)
}
