// The Kotlin (JVM) binding against the real relay: the same conversation as
// the Python suite, through the generated bindings. Exits non-zero on the
// first failed check. Usage: ConversationTestKt <relay-url> <work-dir>
import java.io.File
import java.util.concurrent.CountDownLatch
import java.util.concurrent.TimeUnit
import kotlin.system.exitProcess
import kotlinx.coroutines.runBlocking
import uniffi.alcove_ffi.*

fun check(condition: Boolean, what: () -> String) {
    if (!condition) throw AssertionError(what())
}

inline fun <reified E : Throwable> expectThrows(what: String, block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("$what: expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("$what: expected ${E::class.simpleName}, nothing thrown")
}

fun texts(events: List<Event>): List<String> =
    events.mapNotNull { (it.kind as? EventKind.Text)?.body }

fun main(args: Array<String>) {
    val url = args[0]
    val dir = File(args[1])
    var passed = 0
    fun step(name: String, body: suspend () -> Unit) {
        runBlocking { body() }
        passed += 1
        println("ok - $name")
    }
    try {
        val therapist = runBlocking { createProfile(File(dir, "t").path, ByteArray(32) { 1 }, url, "Dr. Rivera") }
        val client = runBlocking { createProfile(File(dir, "c").path, ByteArray(32) { 2 }, url, "Sam") }
        lateinit var toClient: Contact
        lateinit var toTherapist: Contact
        step("invite and verification") {
            val invite = therapist.createInvite(3600UL, 1U)
            toTherapist = client.acceptInvite(invite)
            val events = therapist.sync()
            check(events[0].kind is EventKind.InviteAccepted) { "first event: ${events[0].kind}" }
            toClient = therapist.contacts()[0]
            check(toClient.verified && toTherapist.verified) { "not verified" }
            check(toClient.safetyNumber == toTherapist.safetyNumber) { "safety numbers differ" }
            therapist.confirm(events[0].eventId)
        }
        step("texts both ways while the other side is offline") {
            for (i in 0 until 5) therapist.sendText(toClient.address, "message $i")
            val got = client.sync()
            check(texts(got) == (0 until 5).map { "message $it" }) { "client got ${texts(got)}" }
            val id = client.sendText(toTherapist.address, "reply")
            val back = therapist.sync()
            check(texts(back) == listOf("reply") && back[0].messageId == id) { "therapist got $back" }
        }
        step("homework with a worksheet, submission and feedback") {
            val sheet = File(dir, "sheet.txt").apply { writeText("Situation | Thought | Feeling\n".repeat(100)) }
            var lastDone = 0UL
            val progress = object : ProgressListener {
                override fun onProgress(done: ULong, total: ULong) { lastDone = done }
            }
            val pointer = therapist.uploadFile(sheet.path, "text/plain", progress)
            check(lastDone == sheet.length().toULong()) { "progress ended at $lastDone" }
            val hw = therapist.assignHomework(toClient.address, "Thought record", "Daily", "2026-12-01", listOf(pointer))
            val got = client.sync()
            val assignment = got[0].kind as EventKind.HomeworkAssignment
            check(assignment.dueDate == "2026-12-01" && got[0].messageId == hw) { "assignment $assignment" }
            val out = File(dir, "downloaded.txt")
            client.downloadFile(assignment.attachments[0], out.path, null)
            check(out.readText() == sheet.readText()) { "worksheet differs" }
            val sub = client.submitHomework(toTherapist.address, hw, "Done", listOf())
            val submitted = therapist.sync()[0].kind as EventKind.HomeworkSubmission
            check(submitted.assignmentId == hw) { "submission $submitted" }
            therapist.sendFeedback(toClient.address, sub, "Well done")
            val feedback = client.sync()[0].kind as EventKind.Feedback
            check(feedback.refersTo == sub && feedback.body == "Well done") { "feedback $feedback" }
        }
        step("a listener receives live and stops after cancel") {
            val received = java.util.Collections.synchronizedList(mutableListOf<String>())
            val three = CountDownLatch(3)
            val listener = object : EventListener {
                override fun onEvent(event: Event) {
                    (event.kind as? EventKind.Text)?.let { received.add(it.body); three.countDown() }
                }
                override fun onError(error: AlcoveException) { received.add("error: $error") }
            }
            val subscription = client.subscribe(listener)
            for (i in 0 until 3) therapist.sendText(toClient.address, "live $i")
            check(three.await(20, TimeUnit.SECONDS)) { "live events: $received" }
            subscription.cancel()
            therapist.sendText(toClient.address, "after cancel")
            Thread.sleep(500)
            check(received.toList() == listOf("live 0", "live 1", "live 2")) { "received $received" }
            check(texts(client.sync()) == listOf("after cancel")) { "after cancel not synced" }
        }
        step("typed errors across the boundary") {
            val short = expectThrows<AlcoveException.InvalidInput>("short key") {
                runBlocking { createProfile(File(dir, "x").path, ByteArray(5), url, "X") }
            }
            check(!short.retryable) { "a short key is not retryable" }
            client.closeProfile() // releases the profile's files
            expectThrows<AlcoveException.StorageLocked>("wrong key") {
                runBlocking { openProfile(File(dir, "c").path, ByteArray(32) { 9 }) }
            }
            expectThrows<AlcoveException.InvalidInput>("malformed address") {
                runBlocking { therapist.sendText("not an address", "hi") }
            }
            expectThrows<AlcoveException.InvalidInput>("missing file") {
                runBlocking { therapist.uploadFile(File(dir, "missing.pdf").path, "application/pdf", null) }
            }
            val offline = expectThrows<AlcoveException.Offline>("relay down") {
                runBlocking { createProfile(File(dir, "y").path, ByteArray(32) { 3 }, "http://127.0.0.1:1", "Y") }
            }
            check(offline.retryable) { "offline must be retryable" }
            therapist.closeProfile()
            expectThrows<AlcoveException.Closed>("call after close") { runBlocking { therapist.sync() } }
        }
    } catch (e: Throwable) {
        System.err.println("FAILED after $passed passed: $e")
        e.printStackTrace()
        exitProcess(1)
    }
    println("$passed passed, 0 failed")
    exitProcess(0)
}
