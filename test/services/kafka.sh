#!/usr/bin/env bash
# Starts a real Apache Kafka broker (KRaft, single combined broker+controller) on 127.0.0.1 for
# integration tests.
#   test/services/kafka.sh start   resolve the jars once (Maven Central), format storage once, start if not running
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
HOME_DIR="$CACHE_ROOT/kafka/$KAFKA_VERSION"
LIBS_DIR="$HOME_DIR/libs"
# Shared by versions, so a version bump fetches only what changed.
M2_DIR="$CACHE_ROOT/kafka/m2"
PORT="${KAFKA_PORT:-9092}"
CONTROLLER_PORT="$((PORT + 1))"
# One storage dir / pid file per port so two ports never share state.
RUN_DIR="$HOME_DIR/run-$PORT"
DATA_DIR="$RUN_DIR/data"
CONFIG="$RUN_DIR/server.properties"
PID_FILE="$RUN_DIR/kafka.pid"
LOG_FILE="$RUN_DIR/kafka.log"
BROKERS="127.0.0.1:$PORT"
HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms256m -Xmx512m}"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
POM="$REPO_ROOT/test/services/kafka-pom.xml"
# shellcheck source=lib.sh
source "$REPO_ROOT/test/services/lib.sh"

log() { echo "[kafka.sh] $*" >&2; }

print_env() {
  echo "export KAFKA_BROKERS=$BROKERS"
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

install_kafka() {
  if [[ -d "$LIBS_DIR" ]]; then return 0; fi
  command -v java >/dev/null || { log "java is not installed; cannot run Kafka"; return 1; }
  command -v mvn >/dev/null || { log "mvn is not installed; cannot fetch Kafka from Maven Central"; return 1; }
  mkdir -p "$HOME_DIR"
  # A lock so two concurrent `start`s don't resolve into the same folder at once.
  exec 9>"$HOME_DIR/install.lock"
  flock 9
  if [[ ! -d "$LIBS_DIR" ]]; then
    log "resolving org.apache.kafka:kafka_2.13:$KAFKA_VERSION from Maven Central into $LIBS_DIR (first run only)"
    rm -rf "$LIBS_DIR.tmp"
    # Maven 3.8 prints bare ANSI resets even with -B -q; dropped so the log stays readable.
    mvn -B -q -f "$POM" -Dmaven.repo.local="$M2_DIR" -Dkafka.version="$KAFKA_VERSION" \
      dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$LIBS_DIR.tmp" 2>&1 |
      sed 's/\x1b\[0m//g' >&2
    # Renamed only when complete, so an interrupted copy is never taken for an install.
    mv "$LIBS_DIR.tmp" "$LIBS_DIR"
  fi
  flock -u 9
  exec 9>&-
}

write_config() {
  # Rewritten on every start so edits here take effect; the storage is formatted only once.
  cat >"$CONFIG" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CONTROLLER_PORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
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

format_storage() {
  if [[ -f "$DATA_DIR/meta.properties" ]]; then return 0; fi
  log "formatting KRaft storage in $DATA_DIR (cluster id $CLUSTER_ID)"
  # Kafka 4.x: --standalone makes this node the whole dynamic controller quorum; it requires
  # controller.quorum.bootstrap.servers and refuses controller.quorum.voters.
  java "${JAVA_OPTS[@]}" kafka.tools.StorageTool format --cluster-id "$CLUSTER_ID" --config "$CONFIG" --standalone >&2
}

start() {
  if is_running && is_live; then
    print_env
    return 0
  fi
  install_kafka
  mkdir -p "$RUN_DIR"
  # Held through the launch so two concurrent `start`s don't both launch a broker.
  exec 8>"$RUN_DIR/start.lock"
  flock 8
  if is_running && is_live; then
    print_env
    return 0
  fi
  if is_running; then
    # Alive but not answering: a start-up still under way (or hung); a second broker would only
    # fight it for the storage lock.
    log "a broker (pid $(cat "$PID_FILE")) is running but not answering on $BROKERS; waiting for it"
  else
    for p in "$PORT" "$CONTROLLER_PORT"; do
      if port_open "$p"; then
        log "port $p already answers without our pid file; set KAFKA_PORT to another port"
        return 1
      fi
    done
    write_config
    format_storage
    # The previous run's log is kept for post-mortems; the readiness check reads only this run's.
    [[ -f "$LOG_FILE" ]] && mv "$LOG_FILE" "$LOG_FILE.1"
    log "starting Kafka $KAFKA_VERSION on $BROKERS (controller 127.0.0.1:$CONTROLLER_PORT, data $DATA_DIR, log $LOG_FILE)"
    # The lock fds are closed for the broker, or it would hold the locks for its whole life.
    nohup java "${JAVA_OPTS[@]}" kafka.Kafka "$CONFIG" >>"$LOG_FILE" 2>&1 </dev/null 8>&- 9>&- &
    echo $! >"$PID_FILE"
  fi
  # The port opens before the broker has caught up with the metadata log; the log line is only
  # written once it serves requests.
  wait_ready Kafka 90 is_serving 30 || return 1
  print_env
}

is_serving() {
  grep -q "Kafka Server started" "$LOG_FILE" 2>/dev/null && is_live
}

stop() {
  # Controlled shutdown flushes and closes the logs; give it time before KILL, which would
  # leave recovery work for the next start.
  stop_service Kafka 30
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    if is_running && is_live; then print_env; else log "Kafka is not running on $BROKERS"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
