// Standalone build of the Handset Android library: this folder is the module. An app can instead
// include it in its own build:
//   include(":handset")
//   project(":handset").projectDir = file("path/to/handset/android")
pluginManagement {
    repositories {
        google()
        mavenCentral()
        gradlePluginPortal()
    }
}

dependencyResolutionManagement {
    repositoriesMode.set(RepositoriesMode.FAIL_ON_PROJECT_REPOS)
    repositories {
        google()
        mavenCentral()
    }
}

rootProject.name = "handset-android"
