# Sourced by the JVM steps (bindings/kotlin/test.sh, scripts/android.sh): a JDK and Maven from
# Debian when missing, and jars from Maven Central into a cache directory. The caller defines
# log() for progress lines.

# A JDK (javac + java), installed with apt-get when missing.
ensure_jdk() {
	if ! command -v javac >/dev/null || ! command -v java >/dev/null; then
		log "installing a JDK"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jdk-headless >/dev/null
	fi
}

# maven_fetch POM DIR [-Dname=value...]: the POM's dependencies (transitively) into DIR, once
# (DIR/.complete marks a finished fetch); the -D properties fill the POM's versions.
maven_fetch() {
	local pom=$1 dir=$2
	shift 2
	[ -f "$dir/.complete" ] && return 0
	if ! command -v mvn >/dev/null; then
		log "installing maven"
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven >/dev/null
	fi
	log "fetching $(basename "$pom" .pom.xml) jars into $dir"
	rm -rf "$dir"
	mvn -q -B -f "$pom" dependency:copy-dependencies -DoutputDirectory="$dir" "$@" >&2
	touch "$dir/.complete"
}
