#!/usr/bin/env bash
# scripts/kafka.sh: a real single-node Apache Kafka 4.x broker (KRaft mode,
# broker and controller in one JVM) on 127.0.0.1, for the integration tests.
#
#   scripts/kafka.sh start     fetch the jars if needed, format the storage if
#                              new, start the broker, wait until it answers
#   scripts/kafka.sh stop      SIGTERM, wait, SIGKILL if it will not go
#   scripts/kafka.sh restart   stop + start, keeping the data
#   scripts/kafka.sh status    exit 0 if running and answering, 1 otherwise
#   scripts/kafka.sh env       print the export lines for the tests:
#                              eval "$(scripts/kafka.sh env)"
#   scripts/kafka.sh fetch     only fetch the jars into the cache
#   scripts/kafka.sh logs      the tail of the broker log
#   scripts/kafka.sh clean     stop and delete the data directory
#
# The jars come from Maven Central through scripts/kafka/pom.xml
# (org.apache.kafka:kafka_2.13, its runtime dependencies and a log4j2
# backend), copied once by `mvn dependency:copy-dependencies` into
# $KAFKA_CACHE_DIR/<version>/libs and reused by later runs. There is no
# distribution tarball: the broker and the storage tool run as
# `java -cp 'libs/*' kafka.Kafka` and `... kafka.tools.StorageTool`.
#
# Listeners, all on 127.0.0.1:
#   PLAINTEXT       $KAFKA_PORT             (default 19092), inter-broker
#   SASL_PLAINTEXT  $KAFKA_SCRAM_PORT       (default 19093), SCRAM-SHA-512,
#                   user $KAFKA_SCRAM_USER / $KAFKA_SCRAM_PASSWORD, created
#                   when the storage is formatted
#   CONTROLLER      $KAFKA_CONTROLLER_PORT  (default 19094)
# (The SCRAM user is fixed when the storage is formatted; to change it, run
# `clean` first. The password must not contain ',', '[' or ']', which the
# storage tool's --add-scram syntax reserves. kcat from Debian 12, built on
# librdkafka 2.0, cannot authenticate with SCRAM against Kafka 4 (fixed in
# librdkafka 2.6.1); franz-go can.)
#
# Settings (environment variables, defaults in brackets):
#   KAFKA_VERSION          [4.1.2]   any 4.x that Maven Central serves
#   KAFKA_CACHE_DIR        [$HOME/.cache/walpub-kafka]  jar cache
#   KAFKA_WORK_DIR         [<repo>/.cache/kafka]  config, data, log, pid file
#   KAFKA_HEAP             [512m]    the broker's -Xmx
#   KAFKA_START_TIMEOUT    [120]     seconds to wait for the broker to answer
#   KAFKA_STOP_TIMEOUT     [60]      seconds to wait after SIGTERM
#   JAVA_HOME / JAVA       the Java 17+ to run (default: java on PATH)
#
# `start` never reformats an existing data directory, so tests can stop and
# restart the broker mid-stream ($KAFKA_SCRIPT stop; $KAFKA_SCRIPT start).

set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script_path="$script_dir/$(basename "${BASH_SOURCE[0]}")"
repo_root=$(cd "$script_dir/.." && pwd)

KAFKA_VERSION=${KAFKA_VERSION:-4.1.2}
KAFKA_CACHE_DIR=${KAFKA_CACHE_DIR:-${HOME:-/tmp}/.cache/walpub-kafka}
KAFKA_WORK_DIR=${KAFKA_WORK_DIR:-$repo_root/.cache/kafka}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_SCRAM_PORT=${KAFKA_SCRAM_PORT:-19093}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19094}
KAFKA_SCRAM_USER=${KAFKA_SCRAM_USER:-walpub}
KAFKA_SCRAM_PASSWORD=${KAFKA_SCRAM_PASSWORD:-walpub-secret}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-60}

host=127.0.0.1
libs_dir="$KAFKA_CACHE_DIR/$KAFKA_VERSION/libs"
config_dir="$KAFKA_WORK_DIR/config"
data_dir="$KAFKA_WORK_DIR/data"
log_file="$KAFKA_WORK_DIR/broker.log"
log_offset=0 # where this run's part of $log_file starts
pid_file="$KAFKA_WORK_DIR/broker.pid"

if [[ -n "${JAVA:-}" ]]; then
	java_bin=$JAVA
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
	java_bin=$JAVA_HOME/bin/java
else
	java_bin=java
fi

log() { echo "kafka.sh: $*" >&2; }
die() {
	log "error: $*"
	exit 1
}

# fetch copies the broker's jars into $libs_dir unless an earlier run did.
# The copy goes to a temporary directory first and is renamed into place
# only when mvn succeeded, so an interrupted fetch is never mistaken for a
# complete one.
fetch() {
	if [[ -f "$libs_dir/.complete" ]]; then
		return 0
	fi
	command -v mvn >/dev/null || die "mvn not found (needed once to fetch Kafka $KAFKA_VERSION from Maven Central)"
	log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $libs_dir"
	local start=$SECONDS tmp
	mkdir -p "$(dirname "$libs_dir")"
	tmp=$(mktemp -d "$(dirname "$libs_dir")/libs.tmp.XXXXXX")
	if ! mvn -B -q -f "$script_dir/kafka/pom.xml" \
		-Dkafka.version="$KAFKA_VERSION" \
		dependency:copy-dependencies \
		-DincludeScope=runtime \
		-DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
		tail -n 40 "$tmp.mvn.log" >&2
		rm -rf "$tmp" "$tmp.mvn.log"
		die "mvn could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
	fi
	rm -f "$tmp.mvn.log"
	[[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "mvn finished but kafka_2.13-$KAFKA_VERSION.jar is missing"
	touch "$tmp/.complete"
	rm -rf "$libs_dir"
	mv "$tmp" "$libs_dir"
	log "fetched $(find "$libs_dir" -name '*.jar' | wc -l) jars in $((SECONDS - start))s"
}

# write_config writes server.properties and the log4j2 configuration. It is
# rewritten on every start (the settings come from this script), while the
# data directory is kept.
write_config() {
	mkdir -p "$config_dir" "$data_dir"
	cat >"$config_dir/server.properties" <<EOF
# Written by scripts/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$host:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$host:$KAFKA_PORT,SASL_PLAINTEXT://$host:$KAFKA_SCRAM_PORT,CONTROLLER://$host:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$host:$KAFKA_PORT,SASL_PLAINTEXT://$host:$KAFKA_SCRAM_PORT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
inter.broker.listener.name=PLAINTEXT

# SCRAM-SHA-512 on the SASL_PLAINTEXT listener; the user is created by the
# storage tool at format time (--add-scram).
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

log.dirs=$data_dir
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# Small segments: the tests write little, and a small broker starts fast.
log.segment.bytes=16777216
log.retention.hours=24
num.network.threads=2
num.io.threads=4
EOF
	cat >"$config_dir/log4j2.properties" <<'EOF'
# Written by scripts/kafka.sh: everything to stdout, which the script
# appends to broker.log.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
logger.zstd.name = org.apache.kafka.common.compress
logger.zstd.level = WARN
EOF
}

# java_cmd runs a Kafka main class with the cached jars.
java_cmd() {
	"$java_bin" \
		-Dlog4j2.configurationFile="$config_dir/log4j2.properties" \
		-Dkafka.logs.dir="$KAFKA_WORK_DIR" \
		-Djava.awt.headless=true \
		-cp "$libs_dir/*" "$@"
}

# format formats the storage once; an existing data directory (one with
# meta.properties) is kept as it is.
format() {
	if [[ -f "$data_dir/meta.properties" ]]; then
		return 0
	fi
	local cluster_id
	cluster_id=$(java_cmd -Xmx128m kafka.tools.StorageTool random-uuid 2>>"$log_file" | tail -n 1)
	[[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing; see $log_file"
	log "formatting $data_dir (cluster $cluster_id, SCRAM-SHA-512 user $KAFKA_SCRAM_USER)"
	if ! java_cmd -Xmx256m kafka.tools.StorageTool format \
		--config "$config_dir/server.properties" \
		--cluster-id "$cluster_id" \
		--add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]" \
		>>"$log_file" 2>&1; then
		tail -n 30 "$log_file" >&2
		die "formatting the storage failed"
	fi
}

# is_broker succeeds when process $1 exists and runs kafka.Kafka.
is_broker() {
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
	[[ "$cmdline" == *" kafka.Kafka "* ]]
}

# pid prints the broker's pid when the pid file names a live kafka.Kafka
# process (not merely a recycled pid), and fails otherwise.
pid() {
	local p
	[[ -f "$pid_file" ]] || return 1
	p=$(<"$pid_file")
	[[ "$p" =~ ^[0-9]+$ ]] || return 1
	[[ -r "/proc/$p/cmdline" ]] || return 1
	is_broker "$p" || return 1
	echo "$p"
}

# port_open succeeds when something accepts TCP connections on host:port.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$host/$1" 2>/dev/null
}

# answers succeeds when the broker answers a request on the PLAINTEXT
# listener: a metadata request through kcat where kcat is installed, and
# otherwise a raw ApiVersions v0 request whose response size we read back.
# The SCRAM listener must accept connections too. (It is not probed with
# kcat: Debian 12's librdkafka 2.0 fails SCRAM against Kafka 4 brokers, a
# librdkafka bug fixed in 2.6.1, even with the right password; the Go
# integration tests authenticate there with franz-go.)
answers() {
	port_open "$KAFKA_SCRAM_PORT" || return 1
	if command -v kcat >/dev/null; then
		kcat -L -b "$host:$KAFKA_PORT" -m 5 >/dev/null 2>&1
		return
	fi
	# ApiVersions v0: size=15, api_key=18, api_version=0, correlation_id=1,
	# client_id="probe". Any 4-byte response size means the broker answered.
	local n
	n=$(timeout 5 bash -c "
		exec 3<>/dev/tcp/$host/$KAFKA_PORT || exit 1
		printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05probe' >&3
		head -c 4 <&3 | wc -c" 2>/dev/null) || return 1
	[[ "$n" -eq 4 ]] || return 1
	# The listeners start before the broker has caught up with the metadata
	# quorum; this log line is printed once it is fully up.
	# (grep without -q reads to the end: an early exit would kill tail with
	# SIGPIPE and fail the pipeline under pipefail.)
	tail -c +$((log_offset + 1)) "$log_file" 2>/dev/null | grep 'Kafka Server started' >/dev/null
}

start() {
	local p
	if p=$(pid); then
		log "already running (pid $p)"
		wait_ready "$p"
		return 0
	fi
	for port in "$KAFKA_PORT" "$KAFKA_SCRAM_PORT" "$KAFKA_CONTROLLER_PORT"; do
		if port_open "$port"; then
			die "port $host:$port is already in use by another process; stop it or set KAFKA_PORT / KAFKA_SCRAM_PORT / KAFKA_CONTROLLER_PORT"
		fi
	done
	"$java_bin" -version >/dev/null 2>&1 || die "java not found ($java_bin); Kafka 4 needs Java 17 or newer"
	fetch
	mkdir -p "$KAFKA_WORK_DIR"
	write_config
	format

	rm -f "$pid_file" # stale: pid() found no broker behind it
	log_offset=$(stat -c %s "$log_file" 2>/dev/null || echo 0)
	echo "---- kafka.sh start $(date -u +%FT%TZ) ----" >>"$log_file"
	# setsid detaches the broker from the caller's session and process
	# group (a test or CI job that starts it is not its parent for
	# signals); stdin/stdout/stderr are not inherited, so a caller reading
	# our output through a pipe is not held open by the broker.
	local started=$SECONDS
	# shellcheck disable=SC2016 # $$ and $1 are the child shell's
	setsid bash -c '
		echo $$ >"$1"; shift
		exec "$@"' _ "$pid_file" \
		"$java_bin" \
		-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" \
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
		-XX:+ExitOnOutOfMemoryError \
		-Dlog4j2.configurationFile="$config_dir/log4j2.properties" \
		-Dkafka.logs.dir="$KAFKA_WORK_DIR" \
		-Djava.awt.headless=true \
		-cp "$libs_dir/*" \
		kafka.Kafka "$config_dir/server.properties" \
		</dev/null >>"$log_file" 2>&1 &
	# Wait for the pid file that the child writes, and for the exec of java.
	local i p=""
	for ((i = 0; i < 100; i++)); do
		if [[ -s "$pid_file" ]]; then
			p=$(<"$pid_file")
			is_broker "$p" && break
		fi
		sleep 0.05
	done
	if [[ -z "$p" ]] || ! is_broker "$p"; then
		tail -n 20 "$log_file" >&2
		die "the broker process did not start; see $log_file"
	fi
	wait_ready "$p"
	log "broker up (pid $p, Kafka $KAFKA_VERSION) in $((SECONDS - started))s: PLAINTEXT $host:$KAFKA_PORT, SASL_PLAINTEXT/SCRAM-SHA-512 $host:$KAFKA_SCRAM_PORT"
}

# wait_ready polls until the broker answers, failing with the tail of its
# log when it exits or when $KAFKA_START_TIMEOUT seconds pass.
wait_ready() {
	local p=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
	while ! answers; do
		if ! is_broker "$p"; then
			log "the broker (pid $p) exited during startup; last lines of $log_file:"
			tail -n 40 "$log_file" >&2
			rm -f "$pid_file"
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "the broker (pid $p) did not answer on $host:$KAFKA_PORT within ${KAFKA_START_TIMEOUT}s; last lines of $log_file:"
			tail -n 40 "$log_file" >&2
			stop
			exit 1
		fi
		sleep 0.5
	done
}

stop() {
	local p
	if ! p=$(pid); then
		rm -f "$pid_file"
		log "not running"
		return 0
	fi
	log "stopping broker (pid $p)"
	kill -TERM "$p" 2>/dev/null || true
	local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT))
	while is_broker "$p"; do
		if ((SECONDS >= deadline)); then
			log "broker (pid $p) still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
			kill -KILL "$p" 2>/dev/null || true
			# SIGKILL cannot be refused; wait until the kernel reaped it.
			while is_broker "$p"; do
				sleep 0.1
			done
			break
		fi
		sleep 0.2
	done
	rm -f "$pid_file"
	log "stopped"
}

status() {
	local p
	if ! p=$(pid); then
		echo "kafka: not running"
		return 1
	fi
	if answers; then
		echo "kafka: running (pid $p), answering on $host:$KAFKA_PORT (PLAINTEXT) and $host:$KAFKA_SCRAM_PORT (SASL_PLAINTEXT, SCRAM-SHA-512)"
		return 0
	fi
	echo "kafka: process $p running but not answering on $host:$KAFKA_PORT"
	return 1
}

print_env() {
	local name
	local -A vals=(
		[KAFKA_BROKERS]="$host:$KAFKA_PORT"
		[KAFKA_SCRAM_BROKERS]="$host:$KAFKA_SCRAM_PORT"
		[KAFKA_SCRAM_USER]="$KAFKA_SCRAM_USER"
		[KAFKA_SCRAM_PASSWORD]="$KAFKA_SCRAM_PASSWORD"
		[KAFKA_SCRAM_MECHANISM]=SCRAM-SHA-512
		[KAFKA_SCRIPT]="$script_path"
	)
	for name in KAFKA_BROKERS KAFKA_SCRAM_BROKERS KAFKA_SCRAM_USER \
		KAFKA_SCRAM_PASSWORD KAFKA_SCRAM_MECHANISM KAFKA_SCRIPT; do
		printf 'export %s=%q\n' "$name" "${vals[$name]}"
	done
}

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "$script_path" >&2
	exit 2
}

case "${1:-}" in
start) start ;;
stop) stop ;;
restart)
	stop
	start
	;;
status) status ;;
env) print_env ;;
fetch) fetch ;;
logs) tail -n "${2:-100}" "$log_file" ;;
clean)
	stop
	rm -rf "$KAFKA_WORK_DIR"
	log "removed $KAFKA_WORK_DIR"
	;;
*) usage ;;
esac
