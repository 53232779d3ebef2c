#!/usr/bin/env bash
# Starts a real Apache Kafka broker (KRaft, single combined broker+controller) on 127.0.0.1 for
# integration tests, with a PLAINTEXT listener and a SASL_SSL one (SCRAM-SHA-512/256 and PLAIN
# over TLS with a test CA), and Kafka's own Java tools on a classpath tests can use.
#   test/services/kafka.sh start   resolve the jars once (Maven Central), make the TLS files once,
#                                  format storage once, start (or restart an outdated broker)
#   test/services/kafka.sh env     print the environment for a running broker
#   test/services/kafka.sh stop    stop the broker started by `start`
# stdout carries ONLY `export NAME=VALUE` lines so `eval "$(test/services/kafka.sh start)"` works;
# everything else goes to stderr.
set -euo pipefail

# Pinned: the newest 4.1 patch on Maven Central; runs on the local Java 17. Keep equal to
# <kafka.version> in kafka-pom.xml.
KAFKA_VERSION="4.1.2"
# Fixed so the formatted storage always matches; any 22-char base64 UUID works.
CLUSTER_ID="CsmThduNRZ6WQ49rLWgYLg"

CACHE_ROOT="${CAIRN_SERVICES_CACHE:-$HOME/.cache/cairn-services}"
# Printed paths (KAFKA_CA_FILE, KAFKA_TOOLS_CLASSPATH) must work from any directory.
[[ "$CACHE_ROOT" == /* ]] || CACHE_ROOT="$PWD/$CACHE_ROOT"
HOME_DIR="$CACHE_ROOT/kafka/$KAFKA_VERSION"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
POM="$REPO_ROOT/test/services/kafka-pom.xml"
# Named after the pom's content: the install step runs only when this folder is missing, so a
# changed dependency list resolves afresh, also on machines whose cache predates the change.
LIBS_DIR="$HOME_DIR/libs-$(sha256sum "$POM" | cut -c1-12)"
# Shared by versions, so a version bump fetches only what changed.
M2_DIR="$CACHE_ROOT/kafka/m2"
# Shared by versions and ports: the CA tests trust outlives a Kafka upgrade.
TLS_DIR="$CACHE_ROOT/kafka/tls"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="$((PORT + 1))"
SASL_PORT="$((PORT + 2))"
# One storage dir / pid file per port so two ports never share state.
RUN_DIR="$HOME_DIR/run-$PORT"
DATA_DIR="$RUN_DIR/data"
CONFIG="$RUN_DIR/server.properties"
PID_FILE="$RUN_DIR/kafka.pid"
LOG_FILE="$RUN_DIR/kafka.log"
# Holds the pid of the broker whose SASL user was last checked: `start` on a broker that was
# launched but never got its user (an interrupted start) must finish the job, not skip it.
SASL_READY_FILE="$RUN_DIR/sasl-ready"
BROKERS="127.0.0.1:$PORT"
SASL_BROKERS="127.0.0.1:$SASL_PORT"
SASL_USER="cairn-test"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
# shellcheck source=lib.sh
source "$REPO_ROOT/test/services/lib.sh"

log() { echo "[kafka.sh] $*" >&2; }

print_env() {
  echo "export KAFKA_BROKERS=$BROKERS"
  echo "export KAFKA_SASL_SSL_BROKERS=$SASL_BROKERS"
  echo "export KAFKA_CA_FILE=$TLS_DIR/ca.pem"
  echo "export KAFKA_SASL_USERNAME=$SASL_USER"
  echo "export KAFKA_SASL_PASSWORD=$(cat "$TLS_DIR/sasl-password")"
  echo "export KAFKA_SASL_MECHANISM=scram-sha-512"
  # A java -cp wildcard, not a shell glob: `export NAME=VALUE` does not expand it.
  echo "export KAFKA_TOOLS_CLASSPATH=$LIBS_DIR/*"
}

is_running() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(cat "$PID_FILE")"
  kill -0 "$pid" 2>/dev/null || return 1
  # A recycled pid must not pass for our broker.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$CONFIG"
  fi
}

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

is_live() { port_open "$PORT"; }

# Whether the running broker is the one this script would start now. A broker launched by an
# older kafka.sh (no SASL_SSL listener, another config, the jars of another pom) keeps running
# across `start`s until replaced, so tests would meet the old setup.
outdated_reason() {
  if ! port_open "$SASL_PORT"; then echo "its SASL_SSL port $SASL_PORT does not answer"; return 0; fi
  if [[ ! -f "$TLS_DIR/sasl-password" ]] || [[ "$(render_config)" != "$(cat "$CONFIG" 2>/dev/null)" ]]; then
    echo "its configuration differs from this script's"; return 0
  fi
  local pid
  pid="$(cat "$PID_FILE")"
  if [[ -r "/proc/$pid/cmdline" ]] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$LIBS_DIR/*"; then
    echo "it runs from other jars than $LIBS_DIR"; return 0
  fi
  return 1
}

# Running, current and with its SASL user in place: `start` has nothing to do.
is_complete() {
  is_running && is_live && ! outdated_reason >/dev/null &&
    [[ "$(cat "$SASL_READY_FILE" 2>/dev/null)" == "$(cat "$PID_FILE")" ]]
}

# kafka-run-class.sh is not on Maven Central, so this stands in for it. slf4j-simple writes to
# stderr (the log file); the per-client config dumps at INFO would drown everything else.
# shellcheck disable=SC2206 # HEAP_OPTS is a list of flags
JAVA_OPTS=($HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35
  -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
  -Dorg.slf4j.simpleLogger.defaultLogLevel=info
  -Dorg.slf4j.simpleLogger.showDateTime=true
  "-Dorg.slf4j.simpleLogger.dateTimeFormat=yyyy-MM-dd'T'HH:mm:ss.SSS"
  -Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config=warn
  -Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.utils.AppInfoParser=warn
  -cp "$LIBS_DIR/*")
# The short-lived admin tools: a JVM tuned to start fast, and quiet unless something goes wrong.
TOOL_OPTS=(-Xshare:auto -XX:TieredStopAtLevel=1 -Xms64m -Xmx256m -Djava.net.preferIPv4Stack=true
  -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$LIBS_DIR/*")

# Builds folder DIR once and atomically: under LOCK (two concurrent `start`s must not build
# into the same place), BUILDER fills DIR.tmp, which becomes DIR only when complete, so an
# interrupted run never leaves a half-built folder that passes for a finished one.
build_once() {
  local dir="$1" lock="$2" builder="$3"
  if [[ -d "$dir" ]]; then return 0; fi
  mkdir -p "$(dirname "$lock")"
  exec 9>"$lock"
  flock 9
  if [[ ! -d "$dir" ]]; then
    rm -rf "$dir.tmp"
    "$builder" "$dir.tmp"
    mv "$dir.tmp" "$dir"
  fi
  flock -u 9
  exec 9>&-
}

install_kafka() {
  if [[ -d "$LIBS_DIR" ]]; then return 0; fi
  command -v java >/dev/null || { log "java is not installed; cannot run Kafka"; return 1; }
  command -v mvn >/dev/null || { log "mvn is not installed; cannot fetch Kafka from Maven Central"; return 1; }
  build_once "$LIBS_DIR" "$HOME_DIR/install.lock" resolve_jars
}

resolve_jars() {
  log "resolving $POM (Kafka $KAFKA_VERSION) from Maven Central into $LIBS_DIR (once per pom change)"
  # Maven 3.8 prints bare ANSI resets even with -B -q; dropped so the log stays readable.
  mvn -B -q -f "$POM" -Dmaven.repo.local="$M2_DIR" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$1" 2>&1 |
    sed 's/\x1b\[0m//g' >&2
}

# A random secret made of [0-9a-f] only, so it needs no quoting in properties, JAAS or exports.
secret() { od -An -tx1 -N16 /dev/urandom | tr -d ' \n'; }

# The test CA, the broker's PKCS12 keystore signed by it, and the passwords. keytool, not openssl:
# it ships with every JDK that can run Kafka at all, so a fresh machine needs nothing more.
ensure_tls() {
  if [[ -d "$TLS_DIR" ]]; then return 0; fi
  command -v keytool >/dev/null || { log "keytool (part of the JDK) is not installed; cannot make the TLS files"; return 1; }
  build_once "$TLS_DIR" "$CACHE_ROOT/kafka/tls.lock" make_tls
}

make_tls() {
  log "making a test CA and the broker's keystore in $TLS_DIR (first run only)"
  local tmp="$1"
  mkdir -m 700 "$tmp"
  local pass
  pass="$(secret)"
  echo "$pass" >"$tmp/keystore-password"
  secret >"$tmp/sasl-password"
  local kt=(keytool -storetype PKCS12 -storepass "$pass" -keypass "$pass")
  # Ten years: a cache outlives many runs, and an expired CA would fail tests for no reason.
  "${kt[@]}" -genkeypair -keystore "$tmp/ca.p12" -alias ca -keyalg RSA -keysize 2048 -validity 3650 \
    -dname "CN=Cairn test CA" -ext bc:c -ext ku:c=keyCertSign,cRLSign >&2
  "${kt[@]}" -exportcert -keystore "$tmp/ca.p12" -alias ca -rfc -file "$tmp/ca.pem" >&2
  "${kt[@]}" -genkeypair -keystore "$tmp/broker.p12" -alias broker -keyalg RSA -keysize 2048 -validity 3650 \
    -dname "CN=localhost" >&2
  "${kt[@]}" -certreq -keystore "$tmp/broker.p12" -alias broker -file "$tmp/broker.csr" >&2
  # Clients dial 127.0.0.1 and check it against the SAN (Node and Java both verify hostnames).
  "${kt[@]}" -gencert -keystore "$tmp/ca.p12" -alias ca -infile "$tmp/broker.csr" -outfile "$tmp/broker.pem" -rfc \
    -validity 3650 -ext san=ip:127.0.0.1,dns:localhost -ext ku:c=digitalSignature,keyEncipherment -ext eku=serverAuth >&2
  # The CA first, so keytool can build the chain the broker presents.
  "${kt[@]}" -importcert -noprompt -keystore "$tmp/broker.p12" -alias ca -file "$tmp/ca.pem" >&2
  "${kt[@]}" -importcert -noprompt -keystore "$tmp/broker.p12" -alias broker -file "$tmp/broker.pem" >&2
  rm -f "$tmp/broker.csr"
  # For Kafka's Java tools (--command-config) against the SASL_SSL listener; also handy by hand.
  cat >"$tmp/client-sasl.properties" <<EOF
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$SASL_USER" password="$(cat "$tmp/sasl-password")";
ssl.truststore.type=PEM
ssl.truststore.location=$TLS_DIR/ca.pem
request.timeout.ms=10000
default.api.timeout.ms=15000
EOF
}

render_config() {
  cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT,SASL_SSL://127.0.0.1:$SASL_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT,SASL_SSL://127.0.0.1:$SASL_PORT
controller.listener.names=CONTROLLER
# The SASL_SSL listener is only for clients under test; the broker talks to itself in plain text.
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
# SCRAM users live in the metadata log (kafka.sh creates $SASL_USER once the broker serves);
# PLAIN takes its one user from here.
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$(cat "$TLS_DIR/sasl-password")";
listener.name.sasl_ssl.ssl.keystore.type=PKCS12
listener.name.sasl_ssl.ssl.keystore.location=$TLS_DIR/broker.p12
listener.name.sasl_ssl.ssl.keystore.password=$(cat "$TLS_DIR/keystore-password")
listener.name.sasl_ssl.ssl.key.password=$(cat "$TLS_DIR/keystore-password")
log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
# Tests create their topics explicitly; a typo must fail, not silently create a topic.
auto.create.topics.enable=false
# Single node: internal topics cannot have more than one replica.
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# The default 50 partitions each make the first consumer group / transaction slow to come up.
offsets.topic.num.partitions=1
transaction.state.log.num.partitions=1
group.initial.rebalance.delay.ms=0
# Only the tests move the log start offset (deleteRecords); Kafka must never trim on its own.
log.retention.ms=-1
log.retention.bytes=-1
# Two cores: the defaults (8 io, 3 network threads) only add contention.
num.io.threads=2
num.network.threads=2
EOF
}

write_config() {
  # Rewritten on every launch so edits here take effect; the storage is formatted only once.
  render_config >"$CONFIG"
}

format_storage() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then return 0; fi
  log "formatting KRaft storage in $DATA_DIR (cluster id $CLUSTER_ID)"
  # Kafka 4.x: --standalone makes this node the whole dynamic controller quorum; it requires
  # controller.quorum.bootstrap.servers and refuses controller.quorum.voters.
  java "${JAVA_OPTS[@]}" kafka.tools.StorageTool format --cluster-id "$CLUSTER_ID" --config "$CONFIG" --standalone >&2
}

# Logs in over SASL_SSL (SCRAM-SHA-512, hostname-verified TLS) and checks both SCRAM mechanisms
# are set: the same path a test client takes, so "usable" means usable.
sasl_usable() {
  local out
  out="$(timeout 60 java "${TOOL_OPTS[@]}" kafka.admin.ConfigCommand --bootstrap-server "$SASL_BROKERS" \
    --command-config "$TLS_DIR/client-sasl.properties" --describe --entity-type users --entity-name "$SASL_USER" 2>&1)" ||
    return 1
  [[ "$out" == *SCRAM-SHA-512=* && "$out" == *SCRAM-SHA-256=* ]]
}

# The storage may come from an earlier run (with or without the user, or with an older
# password), so the user is checked on every launch and (re)set through the PLAINTEXT listener.
ensure_sasl_user() {
  if sasl_usable; then return 0; fi
  log "setting SCRAM-SHA-512/256 credentials for user $SASL_USER"
  local pass mechanism
  pass="$(cat "$TLS_DIR/sasl-password")"
  # One mechanism per call: KRaft refuses two credentials for one user in the same request
  # ("A user credential cannot be altered twice in the same request").
  for mechanism in SCRAM-SHA-512 SCRAM-SHA-256; do
    timeout 60 java "${TOOL_OPTS[@]}" kafka.admin.ConfigCommand --bootstrap-server "$BROKERS" --alter \
      --add-config "$mechanism=[password=$pass]" --entity-type users --entity-name "$SASL_USER" >&2
  done
  # Credentials reach the listener through the metadata log, a moment after the alter returns.
  for _ in $(seq 1 10); do
    if sasl_usable; then return 0; fi
    sleep 1
  done
  log "user $SASL_USER still cannot log in on $SASL_BROKERS; see $LOG_FILE"
  return 1
}

start() {
  if is_complete; then
    print_env
    return 0
  fi
  install_kafka
  ensure_tls
  mkdir -p "$RUN_DIR"
  # Held through the launch so two concurrent `start`s don't both launch (or restart) a broker.
  exec 8>"$RUN_DIR/start.lock"
  flock 8
  if is_complete; then
    print_env
    return 0
  fi
  if is_running && ! is_live; then
    # Alive but not answering: a start-up still under way (or hung); a second broker would only
    # fight it for the storage lock.
    log "a broker (pid $(cat "$PID_FILE")) is running but not answering on $BROKERS; waiting for it"
    wait_ready Kafka 90 is_serving 30 || return 1
  fi
  local reason
  if is_running && reason="$(outdated_reason)"; then
    log "restarting the broker (pid $(cat "$PID_FILE")): $reason"
    stop
  fi
  if ! is_running; then
    for p in "$PORT" "$CONTROLLER_PORT" "$SASL_PORT"; do
      if port_open "$p"; then
        log "port $p already answers without our pid file; set KAFKA_PORT to another port"
        return 1
      fi
    done
    write_config
    format_storage
    # The previous run's log is kept for post-mortems; the readiness check reads only this run's.
    [[ -f "$LOG_FILE" ]] && mv "$LOG_FILE" "$LOG_FILE.1"
    log "starting Kafka $KAFKA_VERSION on $BROKERS (SASL_SSL $SASL_BROKERS, controller 127.0.0.1:$CONTROLLER_PORT, data $DATA_DIR, log $LOG_FILE)"
    # The lock fds are closed for the broker, or it would hold the locks for its whole life.
    nohup java "${JAVA_OPTS[@]}" kafka.Kafka "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null 7>&- 8>&- 9>&- &
    echo $! >"$PID_FILE"
    # The port opens before the broker has caught up with the metadata log; the log line is only
    # written once it serves requests.
    wait_ready Kafka 90 is_serving 30 || return 1
  fi
  ensure_sasl_user
  cat "$PID_FILE" >"$SASL_READY_FILE"
  print_env
}

is_serving() {
  grep -q "Kafka Server started" "$LOG_FILE" 2>/dev/null && is_live
}

stop() {
  # Controlled shutdown flushes and closes the logs; give it time before KILL, which would
  # leave recovery work for the next start.
  stop_service Kafka 30
  rm -f "$SASL_READY_FILE"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    if is_complete; then print_env; else log "Kafka is not running (or not completely started) on $BROKERS; run $0 start"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
