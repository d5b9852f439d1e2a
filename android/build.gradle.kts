// The Handset Android library (AAR): the Telecom/notification/audio glue in src/main/kotlin, its
// Android-free part in core/src/main/kotlin (dev.handset.android.core, unit-tested on the JVM:
// core/src/test + src/test), the uniffi-generated Kotlin bindings and the bindings/kotlin
// adapters as extra source folders, and libhandset_ffi.so per ABI built with cargo-ndk. Versions
// are kept in step with scripts/android.sh, which compiles and tests the same sources with
// kotlinc where no Android SDK exists.
import org.jetbrains.kotlin.gradle.dsl.JvmTarget

plugins {
    id("com.android.library") version "8.7.3"
    id("org.jetbrains.kotlin.android") version "2.1.20"
}

// The repository root: the module is its android/ folder.
val repo: File = projectDir.parentFile
val generated = layout.buildDirectory.dir("generated/handset")
val nativeLibs = layout.buildDirectory.dir("generated/jniLibs")
// ABIs to build the native library for: -Phandset.abis=arm64-v8a,x86_64 (the default).
val abis = (findProperty("handset.abis") as String? ?: "arm64-v8a,x86_64").split(',').map { it.trim() }

android {
    namespace = "dev.handset.android"
    compileSdk = 35

    defaultConfig {
        minSdk = 26
        consumerProguardFiles("consumer-rules.pro")
    }

    sourceSets["main"].apply {
        kotlin.srcDirs(
            "core/src/main/kotlin",
            generated.map { it.dir("kotlin") },
            repo.resolve("bindings/kotlin/src/main/kotlin"),
        )
        jniLibs.srcDir(nativeLibs)
    }
    sourceSets["test"].kotlin.srcDirs("core/src/test/kotlin", "src/test/kotlin")

    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
}

kotlin {
    compilerOptions {
        jvmTarget.set(JvmTarget.JVM_17)
    }
}

dependencies {
    // The AAR variant carries JNA's libjnidispatch.so for each Android ABI.
    implementation("net.java.dev.jna:jna:5.17.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.10.1")
    testImplementation("junit:junit:4.13.2")
}

// Kotlin bindings from the Rust FFI crate (host build, uniffi library mode): the generated code
// does not depend on the target ABI.
val handsetBindings by tasks.registering(Exec::class) {
    description = "Generates the uniffi Kotlin bindings with scripts/bindings.sh"
    workingDir = repo
    environment("HANDSET_BINDINGS_OUT", generated.get().asFile.path)
    commandLine("bash", "scripts/bindings.sh")
    inputs.dir(repo.resolve("bindings/ffi"))
    inputs.dir(repo.resolve("core"))
    inputs.file(repo.resolve("Cargo.lock"))
    outputs.dir(generated)
}

// libhandset_ffi.so for each ABI, with cargo-ndk (`cargo install cargo-ndk`, the Android NDK, and
// `rustup target add aarch64-linux-android x86_64-linux-android ...`).
val handsetNative by tasks.registering(Exec::class) {
    description = "Builds libhandset_ffi.so for ${abis.joinToString()} with cargo-ndk"
    workingDir = repo
    commandLine(
        listOf("cargo", "ndk") +
            abis.flatMap { listOf("-t", it) } +
            listOf("-o", nativeLibs.get().asFile.path, "build", "-p", "handset-ffi", "--release"),
    )
    inputs.dir(repo.resolve("bindings/ffi"))
    inputs.dir(repo.resolve("core"))
    inputs.file(repo.resolve("Cargo.lock"))
    outputs.dir(nativeLibs)
}

tasks.named("preBuild") {
    dependsOn(handsetBindings, handsetNative)
}
