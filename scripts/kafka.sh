#!/usr/bin/env bash
# scripts/kafka.sh: a real Apache Kafka 4.x broker (KRaft mode, broker and
# controller in one JVM) on 127.0.0.1, for the integration tests; or, with
# KAFKA_BROKER_COUNT=3, a cluster of three such nodes.
#
#   scripts/kafka.sh start     fetch the jars if needed, format the storage if
#                              new, start the broker(s), wait until they answer
#   scripts/kafka.sh stop      SIGTERM, wait, SIGKILL if it will not go; every
#                              node of $KAFKA_WORK_DIR, whatever the count
#   scripts/kafka.sh restart   stop + start, keeping the data
#   scripts/kafka.sh status    exit 0 if all running and answering, 1 otherwise
#   scripts/kafka.sh env       print the export lines for the tests:
#                              eval "$(scripts/kafka.sh env)"
#   scripts/kafka.sh fetch     only fetch the jars into the cache
#   scripts/kafka.sh logs [LINES]   the tail of the broker log (each node's)
#   scripts/kafka.sh clean     stop and delete the data directory
#   scripts/kafka.sh kill-broker N   SIGKILL node N (1-based) and wait until
#                              it is gone; fails if N is not running
#   scripts/kafka.sh stop-broker N   stop node N cleanly (SIGTERM, as stop);
#                              fails if N is not running
#   scripts/kafka.sh start-broker N  start node N again, wait until it answers
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
#   SASL_SSL        $KAFKA_SSL_PORT         (default 19095), TLS + SCRAM-SHA-512
#                   (the same user), as Hopskotch is reached; the broker's
#                   certificate (for 127.0.0.1 and localhost) is signed by a
#                   test CA the script makes once with keytool, in
#                   $KAFKA_WORK_DIR/tls: clients verify with ca.pem there
#                   ($KAFKA_SSL_CA in `env`)
#
# The cluster (KAFKA_BROKER_COUNT=3): three nodes, each broker and controller
# in one JVM (KRaft combined mode; the three controllers form the quorum, so
# the cluster keeps its metadata leader through the loss of any one node,
# and with two nodes down it has none until one returns). Node N (1, 2, 3)
# listens on each of the ports above plus (N-1)*$KAFKA_NODE_PORT_STEP (step
# 10 by default: node 2 on 19102-19105, node 3 on 19112-19115)
# and keeps its config, data, log and pid file in $KAFKA_WORK_DIR/nodeN.
# Topics default to replication factor 3 (default.replication.factor, also
# for the internal topics) and min.insync.replicas=2, so acks=all writes go
# on through the loss of one node and wait while two are down. Each node
# runs with -Xmx$KAFKA_HEAP (512 MiB: about 0.8 GiB resident each, 2.5 GiB
# for the cluster, well within a 2-core/24 GiB machine; a single node is the
# same). `env` lists every node in KAFKA_BROKERS and KAFKA_SCRAM_BROKERS.
# (The SCRAM user is fixed when the storage is formatted; to change it, run
# `clean` first. The password must not contain ',', '[' or ']', which the
# storage tool's --add-scram syntax reserves. kcat from Debian 12, built on
# librdkafka 2.0, cannot authenticate with SCRAM against Kafka 4 (fixed in
# librdkafka 2.6.1); franz-go can.)
#
# Settings (environment variables, defaults in brackets):
#   KAFKA_VERSION          [4.1.2]   any 4.x that Maven Central serves
#   KAFKA_BROKER_COUNT     [1]       nodes: 1, or 3 for the cluster (any
#                                    count from 1 to 9 works)
#   KAFKA_NODE_PORT_STEP   [10]      port offset between consecutive nodes
#   KAFKA_CACHE_DIR        [$HOME/.cache/walpub-kafka]  jar cache
#   KAFKA_WORK_DIR         [<repo>/.cache/kafka]  config, data, log, pid file
#   KAFKA_HEAP             [512m]    each node's -Xms and -Xmx
#   KAFKA_START_TIMEOUT    [120]     seconds to wait for the broker to answer
#   KAFKA_STOP_TIMEOUT     [60]      seconds to wait after SIGTERM
#   JAVA_HOME / JAVA       the Java 17+ to run (default: java on PATH)
#
# `start` never reformats an existing data directory, so tests can stop and
# restart the broker mid-stream ($KAFKA_SCRIPT stop; $KAFKA_SCRIPT start).
# `env` also exports the settings above that name the broker (count, ports,
# work directory), so that $KAFKA_SCRIPT run from a test acts on the same
# one.

set -euo pipefail

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
script_path="$script_dir/$(basename "${BASH_SOURCE[0]}")"
repo_root=$(cd "$script_dir/.." && pwd)

KAFKA_VERSION=${KAFKA_VERSION:-4.1.2}
KAFKA_CACHE_DIR=${KAFKA_CACHE_DIR:-${HOME:-/tmp}/.cache/walpub-kafka}
KAFKA_WORK_DIR=${KAFKA_WORK_DIR:-$repo_root/.cache/kafka}
KAFKA_BROKER_COUNT=${KAFKA_BROKER_COUNT:-1}
KAFKA_NODE_PORT_STEP=${KAFKA_NODE_PORT_STEP:-10}
KAFKA_PORT=${KAFKA_PORT:-19092}
KAFKA_SCRAM_PORT=${KAFKA_SCRAM_PORT:-19093}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-19094}
KAFKA_SSL_PORT=${KAFKA_SSL_PORT:-19095}
KAFKA_SCRAM_USER=${KAFKA_SCRAM_USER:-walpub}
KAFKA_SCRAM_PASSWORD=${KAFKA_SCRAM_PASSWORD:-walpub-secret}
KAFKA_HEAP=${KAFKA_HEAP:-512m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-120}
KAFKA_STOP_TIMEOUT=${KAFKA_STOP_TIMEOUT:-60}

host=127.0.0.1
libs_dir="$KAFKA_CACHE_DIR/$KAFKA_VERSION/libs"
cluster_id_file="$KAFKA_WORK_DIR/cluster.id" # shared by the nodes of a cluster

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

[[ "$KAFKA_BROKER_COUNT" =~ ^[1-9]$ ]] || die "KAFKA_BROKER_COUNT must be a count from 1 to 9, not '$KAFKA_BROKER_COUNT'"
[[ "$KAFKA_NODE_PORT_STEP" =~ ^[1-9][0-9]*$ ]] || die "KAFKA_NODE_PORT_STEP must be a positive number, not '$KAFKA_NODE_PORT_STEP'"

# The node that the functions below act on, set by select_node: its id, its
# directory and files, and its ports.
node=1 node_dir="" config_dir="" data_dir="" log_file="" pid_file=""
port=0 scram_port=0 controller_port=0 ssl_port=0
declare -A log_offsets=() # node -> where this run's part of its log starts

# select_node N makes node N (1-based) the current node. A single broker
# keeps its files in $KAFKA_WORK_DIR itself (as before clusters existed),
# the nodes of a cluster each in $KAFKA_WORK_DIR/nodeN.
select_node() {
	[[ "$1" =~ ^[1-9]$ ]] && (($1 <= KAFKA_BROKER_COUNT)) ||
		die "no node '$1': the nodes are 1 to $KAFKA_BROKER_COUNT (KAFKA_BROKER_COUNT)"
	node=$1
	if ((KAFKA_BROKER_COUNT == 1)); then
		node_dir=$KAFKA_WORK_DIR
	else
		node_dir=$KAFKA_WORK_DIR/node$node
	fi
	config_dir="$node_dir/config"
	data_dir="$node_dir/data"
	log_file="$node_dir/broker.log"
	pid_file="$node_dir/broker.pid"
	local offset=$(((node - 1) * KAFKA_NODE_PORT_STEP))
	port=$((KAFKA_PORT + offset))
	scram_port=$((KAFKA_SCRAM_PORT + offset))
	controller_port=$((KAFKA_CONTROLLER_PORT + offset))
	ssl_port=$((KAFKA_SSL_PORT + offset))
}

# nodes prints the node numbers, 1 to KAFKA_BROKER_COUNT.
nodes() { seq 1 "$KAFKA_BROKER_COUNT"; }

# node_list VAR prints a comma-separated host:port list of every node's port
# of one kind (VAR: port or scram_port), node 1 first.
node_list() {
	local n list=()
	for n in $(nodes); do
		select_node "$n"
		list+=("$host:${!1}")
	done
	(
		IFS=,
		echo "${list[*]}"
	)
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

# The test CA and the broker's key store (shared by the nodes), made once by
# make_tls. The store password protects nothing secret: the CA and the key
# exist for the tests on this machine only.
tls_dir="$KAFKA_WORK_DIR/tls"
tls_ca="$tls_dir/ca.pem"
tls_store="$tls_dir/broker.p12"
tls_pass=walpub-test-store

# make_tls makes, unless an earlier start did, a test CA and a key store for
# the broker holding its key and a certificate for 127.0.0.1 and localhost
# signed by that CA (keytool, which comes with Java). Clients trust ca.pem.
make_tls() {
	[[ -s "$tls_store" && -s "$tls_ca" ]] && return 0
	local keytool tmp
	keytool=$(dirname "$(readlink -f "$(command -v "$java_bin")")")/keytool
	[[ -x "$keytool" ]] || keytool=keytool
	command -v "$keytool" >/dev/null || die "keytool not found next to $java_bin (needed once to make the test CA)"
	tmp=$(mktemp -d "$KAFKA_WORK_DIR/tls.tmp.XXXXXX")
	local kt=("$keytool" -storetype PKCS12 -storepass "$tls_pass")
	if ! {
		"${kt[@]}" -genkeypair -keystore "$tmp/ca.p12" -alias ca -keyalg RSA -keysize 2048 \
			-dname "CN=walpub test CA" -ext bc:c -validity 3650 &&
			"${kt[@]}" -exportcert -keystore "$tmp/ca.p12" -alias ca -rfc -file "$tmp/ca.pem" &&
			"${kt[@]}" -genkeypair -keystore "$tmp/broker.p12" -alias broker -keyalg RSA -keysize 2048 \
				-dname "CN=localhost" -validity 3650 &&
			"${kt[@]}" -certreq -keystore "$tmp/broker.p12" -alias broker -file "$tmp/broker.csr" &&
			"${kt[@]}" -gencert -keystore "$tmp/ca.p12" -alias ca -infile "$tmp/broker.csr" \
				-outfile "$tmp/broker.pem" -rfc -validity 3650 -ext "SAN=ip:127.0.0.1,dns:localhost" &&
			"${kt[@]}" -importcert -keystore "$tmp/broker.p12" -alias ca -file "$tmp/ca.pem" -noprompt &&
			"${kt[@]}" -importcert -keystore "$tmp/broker.p12" -alias broker -file "$tmp/broker.pem"
	} >"$tmp/keytool.log" 2>&1; then
		cat "$tmp/keytool.log" >&2
		rm -rf "$tmp"
		die "keytool could not make the test CA"
	fi
	rm -rf "$tls_dir"
	mv "$tmp" "$tls_dir"
	log "made a test CA and the broker's certificate in $tls_dir"
}

# write_config writes the current node's server.properties and the log4j2
# configuration. It is rewritten on every start (the settings come from this
# script), while the data directory is kept.
write_config() {
	mkdir -p "$config_dir" "$data_dir"
	# A cluster replicates every topic to up to three nodes and needs two in
	# sync for an acks=all write; a single broker cannot.
	local replicas=$((KAFKA_BROKER_COUNT < 3 ? KAFKA_BROKER_COUNT : 3)) min_isr=1
	((replicas >= 3)) && min_isr=2
	local voters n
	voters=$(for n in $(nodes); do
		echo "$n@$host:$((KAFKA_CONTROLLER_PORT + (n - 1) * KAFKA_NODE_PORT_STEP))"
	done | paste -sd,)
	cat >"$config_dir/server.properties" <<EOF
# Written by scripts/kafka.sh; rewritten on every start.
process.roles=broker,controller
node.id=$node
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://$host:$port,SASL_PLAINTEXT://$host:$scram_port,CONTROLLER://$host:$controller_port,SASL_SSL://$host:$ssl_port
advertised.listeners=PLAINTEXT://$host:$port,SASL_PLAINTEXT://$host:$scram_port,SASL_SSL://$host:$ssl_port
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
inter.broker.listener.name=PLAINTEXT

# An authorizer, for the tests that refuse the SCRAM user with an ACL: a
# resource without ACLs is open to everyone, and the PLAINTEXT principal
# (the brokers, the controllers and the tests' admin clients) is a super user.
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=true
super.users=User:ANONYMOUS

# SCRAM-SHA-512 on the SASL_PLAINTEXT listener; the user is created by the
# storage tool at format time (--add-scram).
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;

# TLS + SCRAM-SHA-512 on the SASL_SSL listener (the same user), with the
# certificate of make_tls.
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$tls_store
listener.name.sasl_ssl.ssl.keystore.password=$tls_pass
listener.name.sasl_ssl.ssl.key.password=$tls_pass

log.dirs=$data_dir
auto.create.topics.enable=true
num.partitions=1
default.replication.factor=$replicas
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replicas
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$replicas
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$replicas
share.coordinator.state.topic.min.isr=$min_isr
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
		-Dkafka.logs.dir="$node_dir" \
		-Djava.awt.headless=true \
		-cp "$libs_dir/*" "$@"
}

# format formats the current node's storage once; an existing data directory
# (one with meta.properties) is kept as it is. The nodes of a cluster share
# one cluster id, chosen when the first of them is formatted.
format() {
	if [[ -f "$data_dir/meta.properties" ]]; then
		return 0
	fi
	local cluster_id=""
	[[ -s "$cluster_id_file" ]] && cluster_id=$(<"$cluster_id_file")
	if [[ -z "$cluster_id" ]]; then
		cluster_id=$(java_cmd -Xmx128m kafka.tools.StorageTool random-uuid 2>>"$log_file" | tail -n 1)
		[[ -n "$cluster_id" ]] || die "kafka.tools.StorageTool random-uuid printed nothing; see $log_file"
		echo "$cluster_id" >"$cluster_id_file"
	fi
	log "formatting $data_dir (node $node, cluster $cluster_id, SCRAM-SHA-512 user $KAFKA_SCRAM_USER)"
	if ! java_cmd -Xmx256m kafka.tools.StorageTool format \
		--config "$config_dir/server.properties" \
		--cluster-id "$cluster_id" \
		--add-scram "SCRAM-SHA-512=[name=$KAFKA_SCRAM_USER,password=$KAFKA_SCRAM_PASSWORD]" \
		>>"$log_file" 2>&1; then
		tail -n 30 "$log_file" >&2
		die "formatting the storage of node $node failed"
	fi
}

# is_broker succeeds when process $1 exists and runs kafka.Kafka.
is_broker() {
	local cmdline
	cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 1
	[[ "$cmdline" == *" kafka.Kafka "* ]]
}

# pid_in prints the pid in pid file $1 when it names a live kafka.Kafka
# process (not merely a recycled pid), and fails otherwise.
pid_in() {
	local p
	[[ -f "$1" ]] || return 1
	p=$(<"$1")
	[[ "$p" =~ ^[0-9]+$ ]] || return 1
	[[ -r "/proc/$p/cmdline" ]] || return 1
	is_broker "$p" || return 1
	echo "$p"
}

# pid prints the current node's pid (see pid_in).
pid() { pid_in "$pid_file"; }

# port_open succeeds when something accepts TCP connections on host:port.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/$host/$1" 2>/dev/null
}

# answers succeeds when the current node answers a request on its PLAINTEXT
# listener: a metadata request through kcat where kcat is installed, and
# otherwise a raw ApiVersions v0 request whose response size we read back.
# The SCRAM listener must accept connections too. (It is not probed with
# kcat: Debian 12's librdkafka 2.0 fails SCRAM against Kafka 4 brokers, a
# librdkafka bug fixed in 2.6.1, even with the right password; the Go
# integration tests authenticate there with franz-go.)
answers() {
	port_open "$scram_port" || return 1
	port_open "$ssl_port" || return 1
	if command -v kcat >/dev/null; then
		kcat -L -b "$host:$port" -m 5 >/dev/null 2>&1 || return 1
	else
		# ApiVersions v0: size=15, api_key=18, api_version=0,
		# correlation_id=1, client_id="probe". Any 4-byte response size
		# means the broker answered.
		local n
		n=$(timeout 5 bash -c "
			exec 3<>/dev/tcp/$host/$port || exit 1
			printf '\x00\x00\x00\x0f\x00\x12\x00\x00\x00\x00\x00\x01\x00\x05probe' >&3
			head -c 4 <&3 | wc -c" 2>/dev/null) || return 1
		[[ "$n" -eq 4 ]] || return 1
	fi
	# The listeners start before the broker has caught up with the metadata
	# quorum; this log line is printed once it is fully up. (A node of a
	# cluster answers kcat's metadata request with the other nodes' view
	# before it is up itself.)
	# (grep without -q reads to the end: an early exit would kill tail with
	# SIGPIPE and fail the pipeline under pipefail.)
	tail -c +$((${log_offsets[$node]:-0} + 1)) "$log_file" 2>/dev/null | grep 'Kafka Server started' >/dev/null
}

# launch starts the current node's JVM in the background, unless it runs
# already, without waiting for it to answer.
launch() {
	local p
	if p=$(pid); then
		log "node $node already running (pid $p)"
		log_offsets[$node]=0
		return 0
	fi
	for p in "$port" "$scram_port" "$controller_port" "$ssl_port"; do
		if port_open "$p"; then
			die "port $host:$p (node $node) is already in use by another process; stop it or set KAFKA_PORT / KAFKA_SCRAM_PORT / KAFKA_CONTROLLER_PORT / KAFKA_SSL_PORT"
		fi
	done
	mkdir -p "$node_dir"
	write_config
	format

	rm -f "$pid_file" # stale: pid() found no broker behind it
	log_offsets[$node]=$(stat -c %s "$log_file" 2>/dev/null || echo 0)
	echo "---- kafka.sh start $(date -u +%FT%TZ) ----" >>"$log_file"
	# setsid detaches the broker from the caller's session and process
	# group (a test or CI job that starts it is not its parent for
	# signals); stdin/stdout/stderr are not inherited, so a caller reading
	# our output through a pipe is not held open by the broker.
	# shellcheck disable=SC2016 # $$ and $1 are the child shell's
	setsid bash -c '
		echo $$ >"$1"; shift
		exec "$@"' _ "$pid_file" \
		"$java_bin" \
		-Xms"$KAFKA_HEAP" -Xmx"$KAFKA_HEAP" \
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
		-XX:+ExitOnOutOfMemoryError \
		-Dlog4j2.configurationFile="$config_dir/log4j2.properties" \
		-Dkafka.logs.dir="$node_dir" \
		-Djava.awt.headless=true \
		-cp "$libs_dir/*" \
		kafka.Kafka "$config_dir/server.properties" \
		</dev/null >>"$log_file" 2>&1 &
	# Wait for the pid file that the child writes, and for the exec of java.
	local i
	p=""
	for ((i = 0; i < 100; i++)); do
		if [[ -s "$pid_file" ]]; then
			p=$(<"$pid_file")
			is_broker "$p" && break
		fi
		sleep 0.05
	done
	if [[ -z "$p" ]] || ! is_broker "$p"; then
		tail -n 20 "$log_file" >&2
		die "the broker process of node $node did not start; see $log_file"
	fi
}

# start_nodes N...: launches the nodes given (all of them first: the nodes
# of a cluster become ready only once a majority of its controllers runs),
# then waits until each answers.
start_nodes() {
	local n started=$SECONDS
	"$java_bin" -version >/dev/null 2>&1 || die "java not found ($java_bin); Kafka 4 needs Java 17 or newer"
	fetch
	mkdir -p "$KAFKA_WORK_DIR"
	make_tls
	for n in "$@"; do
		select_node "$n"
		launch
	done
	for n in "$@"; do
		select_node "$n"
		wait_ready "$(pid)"
		log "node $node up (pid $(pid), Kafka $KAFKA_VERSION) in $((SECONDS - started))s: PLAINTEXT $host:$port, SASL_PLAINTEXT/SCRAM-SHA-512 $host:$scram_port, SASL_SSL $host:$ssl_port"
	done
}

start() {
	# shellcheck disable=SC2046 # one word per node
	start_nodes $(nodes)
}

# wait_ready polls until the current node answers, failing with the tail of
# its log when it exits or when $KAFKA_START_TIMEOUT seconds pass.
wait_ready() {
	local p=$1 deadline=$((SECONDS + KAFKA_START_TIMEOUT))
	while ! answers; do
		if ! is_broker "$p"; then
			log "node $node (pid $p) exited during startup; last lines of $log_file:"
			tail -n 40 "$log_file" >&2
			rm -f "$pid_file"
			exit 1
		fi
		if ((SECONDS >= deadline)); then
			log "node $node (pid $p) did not answer on $host:$port within ${KAFKA_START_TIMEOUT}s; last lines of $log_file:"
			tail -n 40 "$log_file" >&2
			terminate "$pid_file"
			exit 1
		fi
		sleep 0.5
	done
}

# When several nodes stop together, how long the ones still running may
# take once another has exited (seconds).
quorum_grace=15

# gone succeeds when process $1 has exited: no such process, a zombie, or a
# recycled pid that runs something else. (Its command line reads empty as
# soon as its memory is released, before its sockets are closed: not yet
# gone, its ports are not free yet.)
gone() {
	local state cmdline
	state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 0
	[[ -z $state || $state == [ZX] ]] && return 0
	cmdline=$(tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null) || return 0
	[[ -n $cmdline && $cmdline != *" kafka.Kafka "* ]]
}

# terminate [--kill] FILE...: stops the brokers that the pid files name and
# returns once they are gone: SIGTERM, and SIGKILL after $KAFKA_STOP_TIMEOUT
# seconds; with --kill, SIGKILL at once. When it stops several nodes and one
# has exited, the others get $quorum_grace seconds more before SIGKILL: the
# last nodes of a cluster wait for a controller quorum to acknowledge their
# controlled shutdown, which can no longer come.
terminate() {
	local signal=TERM file p
	if [[ "${1:-}" == --kill ]]; then
		signal=KILL
		shift
	fi
	local -A running=() # pid -> pid file
	for file in "$@"; do
		if p=$(pid_in "$file"); then
			running[$p]=$file
			log "stopping the broker of ${file%/broker.pid} (pid $p, SIG$signal)"
			kill -"$signal" "$p" 2>/dev/null || true
		else
			rm -f "$file"
			log "${file%/broker.pid}: not running"
		fi
	done
	local deadline=$((SECONDS + KAFKA_STOP_TIMEOUT)) total=${#running[@]}
	while ((${#running[@]} > 0)); do
		for p in "${!running[@]}"; do
			if gone "$p"; then
				rm -f "${running[$p]}"
				log "${running[$p]%/broker.pid}: stopped"
				unset "running[$p]"
			fi
		done
		if ((${#running[@]} > 0 && ${#running[@]} < total && SECONDS + quorum_grace < deadline)); then
			deadline=$((SECONDS + quorum_grace))
		fi
		if ((${#running[@]} > 0 && SECONDS >= deadline)) && [[ $signal != KILL ]]; then
			log "still running after their time (pids ${!running[*]}); sending SIGKILL"
			signal=KILL
			kill -KILL "${!running[@]}" 2>/dev/null || true
		fi
		sleep 0.1
	done
}

# stop stops every broker of $KAFKA_WORK_DIR: a single broker's and each
# cluster node's, whatever KAFKA_BROKER_COUNT says now, so that nothing is
# left running. The nodes of a cluster stop together.
stop() {
	local file files=()
	for file in "$KAFKA_WORK_DIR/broker.pid" "$KAFKA_WORK_DIR"/node[1-9]/broker.pid; do
		[[ -f "$file" ]] && files+=("$file")
	done
	if ((${#files[@]} == 0)); then
		log "not running"
		return 0
	fi
	terminate "${files[@]}"
}

status() {
	local n p rc=0
	for n in $(nodes); do
		select_node "$n"
		log_offsets[$n]=0
		if ! p=$(pid); then
			echo "kafka node $n: not running"
			rc=1
		elif answers; then
			echo "kafka node $n: running (pid $p), answering on $host:$port (PLAINTEXT) and $host:$scram_port (SASL_PLAINTEXT, SCRAM-SHA-512)"
		else
			echo "kafka node $n: process $p running but not answering on $host:$port"
			rc=1
		fi
	done
	return "$rc"
}

print_env() {
	local name
	local -A vals=(
		[KAFKA_BROKERS]="$(node_list port)"
		[KAFKA_SCRAM_BROKERS]="$(node_list scram_port)"
		[KAFKA_SCRAM_USER]="$KAFKA_SCRAM_USER"
		[KAFKA_SCRAM_PASSWORD]="$KAFKA_SCRAM_PASSWORD"
		[KAFKA_SCRAM_MECHANISM]=SCRAM-SHA-512
		[KAFKA_SSL_BROKERS]="$(node_list ssl_port)"
		[KAFKA_SSL_CA]="$tls_ca"
		[KAFKA_SSL_PORT]="$KAFKA_SSL_PORT"
		[KAFKA_SCRIPT]="$script_path"
		[KAFKA_BROKER_COUNT]="$KAFKA_BROKER_COUNT"
		[KAFKA_NODE_PORT_STEP]="$KAFKA_NODE_PORT_STEP"
		[KAFKA_PORT]="$KAFKA_PORT"
		[KAFKA_SCRAM_PORT]="$KAFKA_SCRAM_PORT"
		[KAFKA_CONTROLLER_PORT]="$KAFKA_CONTROLLER_PORT"
		[KAFKA_WORK_DIR]="$KAFKA_WORK_DIR"
	)
	for name in KAFKA_BROKERS KAFKA_SCRAM_BROKERS KAFKA_SCRAM_USER \
		KAFKA_SCRAM_PASSWORD KAFKA_SCRAM_MECHANISM KAFKA_SSL_BROKERS KAFKA_SSL_CA KAFKA_SCRIPT \
		KAFKA_BROKER_COUNT KAFKA_NODE_PORT_STEP KAFKA_PORT KAFKA_SCRAM_PORT \
		KAFKA_CONTROLLER_PORT KAFKA_SSL_PORT KAFKA_WORK_DIR; do
		printf 'export %s=%q\n' "$name" "${vals[$name]}"
	done
}

usage() {
	sed -n '2,/^$/s/^# \{0,1\}//p' "$script_path" >&2
	exit 2
}

# logs prints the tail of every node's log ($1 lines each, default 100).
logs() {
	local n
	for n in $(nodes); do
		select_node "$n"
		((KAFKA_BROKER_COUNT == 1)) || echo "==== node $n: $log_file"
		tail -n "${1:-100}" "$log_file"
	done
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
logs) logs "${2:-}" ;;
clean)
	stop
	rm -rf "$KAFKA_WORK_DIR"
	log "removed $KAFKA_WORK_DIR"
	;;
kill-broker)
	select_node "${2:-}"
	# A test that kills a node relies on the kill: a node that is not
	# running is an error here, not a kill that silently did nothing.
	pid >/dev/null || die "node $node is not running (no live kafka.Kafka process in $pid_file): nothing to kill"
	terminate --kill "$pid_file"
	;;
stop-broker)
	select_node "${2:-}"
	pid >/dev/null || die "node $node is not running (no live kafka.Kafka process in $pid_file): nothing to stop"
	terminate "$pid_file"
	;;
start-broker)
	select_node "${2:-}"
	start_nodes "$node"
	;;
*) usage ;;
esac
