#!/usr/bin/env bash
# Starts a real MinIO on 127.0.0.1 for integration tests.
#   test/services/minio.sh start   install once (go install, pinned), start if not running, create the bucket
#   test/services/minio.sh env     print the environment for a running server
#   test/services/minio.sh stop    stop the server started by `start`
# stdout carries ONLY `export NAME=VALUE` lines so `eval "$(test/services/minio.sh start)"` works;
# everything else goes to stderr.
set -euo pipefail

# Pinned: this pseudo-version builds with the local Go toolchain (1.26).
MINIO_MODULE="github.com/minio/minio"
MINIO_VERSION="v0.0.0-20260212201848-7aac2a2c5b7c"

CACHE_ROOT="${CAIRN_SERVICES_CACHE:-$HOME/.cache/cairn-services}"
HOME_DIR="$CACHE_ROOT/minio/$MINIO_VERSION"
BIN_DIR="$HOME_DIR/bin"
BIN="$BIN_DIR/minio"
PORT="${MINIO_PORT:-9900}"
CONSOLE_PORT="${MINIO_CONSOLE_PORT:-$((PORT + 1))}"
# One data dir / pid file per port so two ports never share state.
RUN_DIR="$HOME_DIR/run-$PORT"
DATA_DIR="$RUN_DIR/data"
PID_FILE="$RUN_DIR/minio.pid"
LOG_FILE="$RUN_DIR/minio.log"
BUCKET="${S3_BUCKET:-cairn-test}"
ACCESS_KEY="cairn-test"
SECRET_KEY="cairn-test-secret"
ENDPOINT="http://127.0.0.1:$PORT"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=lib.sh
source "$REPO_ROOT/test/services/lib.sh"

log() { echo "[minio.sh] $*" >&2; }

print_env() {
  echo "export S3_ENDPOINT=$ENDPOINT"
  echo "export S3_BUCKET=$BUCKET"
  echo "export AWS_ACCESS_KEY_ID=$ACCESS_KEY"
  echo "export AWS_SECRET_ACCESS_KEY=$SECRET_KEY"
  echo "export AWS_REGION=us-east-1"
}

is_running() {
  [[ -f "$PID_FILE" ]] && kill -0 "$(cat "$PID_FILE")" 2>/dev/null
}

is_live() {
  if command -v curl >/dev/null; then
    curl -fsS -o /dev/null --max-time 2 "$ENDPOINT/minio/health/live" 2>/dev/null
  else
    node -e 'fetch(process.argv[1], { signal: AbortSignal.timeout(2000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))' \
      "$ENDPOINT/minio/health/live" 2>/dev/null
  fi
}

install_minio() {
  if [[ -x "$BIN" ]]; then return 0; fi
  command -v go >/dev/null || { log "go is not installed; cannot build MinIO"; return 1; }
  mkdir -p "$BIN_DIR"
  log "installing $MINIO_MODULE@$MINIO_VERSION into $BIN_DIR (first run only; takes minutes)"
  # A lock so two concurrent `start`s don't build into the same folder at once.
  exec 9>"$HOME_DIR/install.lock"
  flock 9
  if [[ ! -x "$BIN" ]]; then
    GOBIN="$BIN_DIR" GOFLAGS="${GOFLAGS:--buildvcs=false}" go install "$MINIO_MODULE@$MINIO_VERSION" >&2
  fi
  flock -u 9
}

create_bucket() {
  # No `mc` here: create the bucket with the SDK the project already depends on.
  (cd "$REPO_ROOT" && S3_ENDPOINT="$ENDPOINT" S3_BUCKET="$BUCKET" AWS_ACCESS_KEY_ID="$ACCESS_KEY" \
    AWS_SECRET_ACCESS_KEY="$SECRET_KEY" AWS_REGION=us-east-1 node --no-warnings --input-type=module -e '
import { S3Client, CreateBucketCommand } from "@aws-sdk/client-s3";
const s3 = new S3Client({ endpoint: process.env.S3_ENDPOINT, region: "us-east-1", forcePathStyle: true });
try {
  await s3.send(new CreateBucketCommand({ Bucket: process.env.S3_BUCKET }));
  console.error(`[minio.sh] created bucket ${process.env.S3_BUCKET}`);
} catch (err) {
  if (err?.name !== "BucketAlreadyOwnedByYou" && err?.name !== "BucketAlreadyExists") throw err;
}
' >&2)
}

start() {
  if is_running && is_live; then
    create_bucket
    print_env
    return 0
  fi
  if is_live; then
    # Not ours (no live pid file): usable only if it accepts our credentials.
    log "a server already answers on $ENDPOINT without our pid file; trying it with the test credentials"
    create_bucket || { log "it rejected the test credentials; set MINIO_PORT to another port"; return 1; }
    print_env
    return 0
  fi
  install_minio
  mkdir -p "$DATA_DIR"
  log "starting MinIO on $ENDPOINT (data $DATA_DIR, log $LOG_FILE)"
  MINIO_ROOT_USER="$ACCESS_KEY" MINIO_ROOT_PASSWORD="$SECRET_KEY" MINIO_BROWSER=off \
    MINIO_UPDATE=off MINIO_CI_CD=on \
    nohup "$BIN" server "$DATA_DIR" --quiet --address "127.0.0.1:$PORT" \
    --console-address "127.0.0.1:$CONSOLE_PORT" >>"$LOG_FILE" 2>&1 </dev/null &
  echo $! >"$PID_FILE"
  wait_ready MinIO 60 is_live 20 || return 1
  create_bucket
  print_env
}

stop() {
  stop_service MinIO 10
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  env)
    if is_running && is_live; then print_env; else log "MinIO is not running on $ENDPOINT"; exit 1; fi
    ;;
  *) echo "usage: $0 start|stop|env" >&2; exit 2 ;;
esac
