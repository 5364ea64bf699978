#!/usr/bin/env bash
# Runs a real Apache Kafka broker (KRaft, one combined broker+controller on
# 127.0.0.1) around a command, for the real-Kafka test suite.
#
#   scripts/kafka.sh run -- <command...>   start Kafka, run the command with
#                                          PURISTA_KAFKA_BROKERS and
#                                          PURISTA_KAFKA_VERSION exported,
#                                          stop Kafka, delete its data, exit
#                                          with the command's status
#   scripts/kafka.sh cluster run [flags] -- <command...>
#                                          the same with three KRaft nodes
#                                          (replication 3, min.insync.replicas
#                                          2) and PURISTA_KAFKA_CLUSTER_BROKERS
#                                          exported; flags: -nodes 1|3,
#                                          -proxied, -keep, -timeout 3m
#                                          (internal/kafkatest/cmd/kafkacluster)
#   scripts/kafka.sh fetch                 only resolve the jars into the cache
#   scripts/kafka.sh check                 exit 0 if Java 17+ and Maven are
#                                          usable, else print why and exit 1
#
# `run` and `cluster run` exit 125 when the brokers could not be started (so
# callers can tell that apart from the command failing).
#
# Needs Java 17+ and Maven. The broker jars come from Maven Central
# (org.apache.kafka:kafka_2.13, see scripts/kafka/pom.xml) into the ignored
# .cache/kafka/<version>/libs; later starts reuse them.
#
# Environment:
#   KAFKA_START_TIMEOUT   seconds to wait for the broker (default 90)
#   KAFKA_HEAP_OPTS       JVM heap flags (default -Xms128m -Xmx512m)
# (`cluster run` takes -timeout instead; its nodes use -Xms64m -Xmx256m each.)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
version=4.4.0
cache=$root/.cache/kafka/$version
libs=$cache/libs
pom=$root/scripts/kafka/pom.xml
timeout=${KAFKA_START_TIMEOUT:-90}

say() { printf 'kafka.sh: %s\n' "$*" >&2; }
now() { printf '%s' "${EPOCHREALTIME/,/.}"; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

usage() {
	sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
	exit 2
}

# missing_tools prints why this machine cannot run the broker, if it cannot.
missing_tools() {
	local missing=()
	command -v java >/dev/null || missing+=(java)
	command -v mvn >/dev/null || missing+=(mvn)
	if [[ ${#missing[@]} -gt 0 ]]; then
		local IFS=/
		printf '%s not found (install Java 17+ and Maven, for example apt-get install openjdk-17-jre-headless maven)\n' "${missing[*]}"
		return 0
	fi
	local jv
	jv=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
	if ! [[ ${jv%%.*} -ge 17 ]] 2>/dev/null; then
		printf 'Kafka %s needs Java 17 or newer, found java.specification.version=%s\n' "$version" "${jv:-unknown}"
	fi
}

need_tools() {
	local why
	why=$(missing_tools)
	[[ -z $why ]] || { say "$why"; exit 125; }
}

# fetch resolves the broker jars once; a marker file makes a half-finished
# download (interrupted, network error) count as missing.
fetch() {
	if [[ -f $cache/.complete ]]; then
		return 0
	fi
	mkdir -p "$cache"
	# Two runs on a cold cache (two terminals, parallel CI jobs) take turns.
	if command -v flock >/dev/null; then
		exec 9>"$cache/.lock"
		flock 9
		[[ -f $cache/.complete ]] && return 0
	fi
	say "resolving org.apache.kafka:kafka_2.13:$version and its runtime dependencies with Maven (first run only)..."
	rm -rf "$libs"
	if ! mvn -B -q -f "$pom" \
		dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$libs" >"$cache/mvn.log" 2>&1; then
		tail -n 40 "$cache/mvn.log" >&2
		say "Maven could not resolve Kafka $version (log above, full log in $cache/mvn.log)"
		exit 125
	fi
	[[ -f $libs/kafka_2.13-$version.jar ]] || { say "Maven finished but $libs/kafka_2.13-$version.jar is missing"; exit 125; }
	touch "$cache/.complete"
}

# kafkaready is a small Go helper (free ports, readiness wait), built once.
kafkaready=$root/.cache/bin/kafkaready
build_helper() {
	(cd "$root" && go build -o "$kafkaready" ./internal/kafkatest/cmd/kafkaready) ||
		{ say "could not build internal/kafkatest/cmd/kafkaready"; exit 125; }
}

data=
pid=
cmd=
# stop_all ends the command (if a signal interrupted the wait for it), then
# the broker.
stop_all() {
	if [[ -n $cmd ]] && kill -0 "$cmd" 2>/dev/null; then
		kill -TERM "$cmd" 2>/dev/null || true
		wait "$cmd" 2>/dev/null || true
	fi
	cmd=
	stop_broker
}

stop_broker() {
	if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
		# Data is thrown away, so a controlled shutdown buys nothing; give
		# the JVM a moment to exit on TERM, then make sure.
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 1 50); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		kill -KILL "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	pid=
	if [[ -n $data ]]; then
		rm -rf "$data"
		data=
	fi
}

run() {
	[[ ${1:-} == -- ]] && shift
	[[ $# -gt 0 ]] || usage
	need_tools
	local t0
	t0=$(now)
	local cached=cached
	[[ -f $cache/.complete ]] || cached="downloaded"
	fetch &
	local fetch_pid=$!
	build_helper
	wait "$fetch_pid" || exit 125

	trap 'stop_all' EXIT
	trap 'stop_all; exit 130' INT
	trap 'stop_all; exit 143' TERM

	local t_prep
	t_prep=$(since "$t0")
	data=$(mktemp -d "${TMPDIR:-/tmp}/purista-kafka.XXXXXX")
	local ports broker_port controller_port
	ports=$("$kafkaready" -ports 2)
	read -r broker_port controller_port <<<"$ports"

	cat >"$data/server.properties" <<-PROPS
		process.roles=broker,controller
		node.id=1
		controller.quorum.voters=1@127.0.0.1:$controller_port
		listeners=PLAINTEXT://127.0.0.1:$broker_port,CONTROLLER://127.0.0.1:$controller_port
		advertised.listeners=PLAINTEXT://127.0.0.1:$broker_port
		controller.listener.names=CONTROLLER
		inter.broker.listener.name=PLAINTEXT
		listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
		log.dirs=$data/logs
		# Topics are provisioned explicitly, never auto-created.
		auto.create.topics.enable=false
		num.partitions=1
		default.replication.factor=1
		min.insync.replicas=1
		# One node: internal topics with replication 1 and few partitions.
		offsets.topic.replication.factor=1
		offsets.topic.num.partitions=1
		transaction.state.log.replication.factor=1
		transaction.state.log.min.isr=1
		transaction.state.log.num.partitions=1
		share.coordinator.state.topic.replication.factor=1
		share.coordinator.state.topic.min.isr=1
		# Fast groups for tests: no initial rebalance delay, session
		# timeouts from 1 s (the embedded broker allows the same).
		group.initial.rebalance.delay.ms=0
		group.min.session.timeout.ms=1000
		num.network.threads=2
		num.io.threads=4
		log.flush.interval.messages=9223372036854775807
	PROPS

	local cp="$libs/*"
	local jvm=(
		${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}
		-Djava.awt.headless=true
		-Dkafka.logs.dir="$data"
		-Dlog4j2.configurationFile="$root/scripts/kafka/log4j2.properties"
	)
	local cluster_id
	cluster_id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
	cluster_id=A${cluster_id:1}
	# The format tool lives for a second: C1 only and the serial GC start
	# it about twice as fast.
	if ! java "${jvm[@]}" -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$cp" kafka.tools.StorageTool format \
		-t "$cluster_id" -c "$data/server.properties" >"$data/format.log" 2>&1; then
		cat "$data/format.log" >&2
		say "formatting KRaft storage failed"
		exit 125
	fi

	local t_format
	t_format=$(since "$t0")
	java "${jvm[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -cp "$cp" kafka.Kafka "$data/server.properties" >"$data/stdout.log" 2>&1 &
	pid=$!
	local addr=127.0.0.1:$broker_port
	if ! "$kafkaready" -brokers "$addr" -timeout "${timeout}s" -pid "$pid"; then
		say "Kafka did not become ready at $addr within ${timeout}s; broker log tail:"
		tail -n 60 "$data/server.log" >&2 2>/dev/null || true
		tail -n 20 "$data/stdout.log" >&2 2>/dev/null || true
		exit 125
	fi
	local running
	# sed quits at the first match itself: a pipe into head could kill it
	# with SIGPIPE, which pipefail turns into a failure of the script.
	running=$(sed -n '/Kafka version: /{s/.*Kafka version: \([^ ]*\).*/\1/p;q;}' "$data/server.log" || true)
	[[ -n $running ]] || running="$version (from the jars; the broker log named no version)"
	say "Apache Kafka $running (KRaft, broker+controller) ready at $addr in $(since "$t0") s (jars $cached; prepared ${t_prep} s, formatted ${t_format} s)"

	export PURISTA_KAFKA_BROKERS=$addr
	export PURISTA_KAFKA_VERSION=$running
	local rc=0
	if env --default-signal=INT true 2>/dev/null; then
		# Run the command in the background and wait for it, so that a
		# TERM sent to this script alone stops the command and the broker
		# at once instead of after the command ends. A background command
		# would ignore Ctrl-C; env --default-signal gives it back, and the
		# explicit redirection keeps the script's stdin.
		env --default-signal=INT,QUIT "$@" <&0 &
		cmd=$!
		wait "$cmd" || rc=$?
		cmd=
	else
		"$@" || rc=$?
	fi
	stop_broker
	return "$rc"
}

# cluster runs the command next to a three-node cluster. The nodes are
# started by the Go harness the fault tests use (internal/kafkatest/cluster),
# so the cluster's settings live in one place.
cluster() {
	[[ ${1:-} == run ]] || usage
	shift
	need_tools
	fetch
	local bin=$root/.cache/bin/kafkacluster
	(cd "$root" && go build -o "$bin" ./internal/kafkatest/cmd/kafkacluster) ||
		{ say "could not build internal/kafkatest/cmd/kafkacluster"; exit 125; }
	# exec: signals reach the launcher, which stops the command and then
	# the brokers.
	cd "$root"
	exec "$bin" "$@"
}

case ${1:-} in
run)
	shift
	run "$@"
	;;
cluster)
	shift
	cluster "$@"
	;;
check)
	why=$(missing_tools)
	[[ -z $why ]] || { printf '%s\n' "$why"; exit 1; }
	;;
fetch)
	need_tools
	fetch
	say "Kafka $version jars in $libs"
	;;
*) usage ;;
esac
