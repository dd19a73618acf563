#!/bin/bash
# Impetus node bootstrap: the EC2 user-data of every node (rendered by
# node_agent/bootstrap/render.py; the settings block below is filled in at synth time).
#
# 1. a Python matching the clients' major.minor (jobs refuse to run on another one);
# 2. a virtualenv with the impetus wheel and every locked dependency, installed with no
#    index from the node package (the stack's S3 asset: wheel, wheelhouse, pins), so a
#    node never needs PyPI and runs exactly the versions the clients were tested with;
# 3. the agent's configuration in /etc/impetus/node.env: resource names only, no secrets
#    (the agent reads the signing key from Secrets Manager with its instance role);
# 4. the impetus-node systemd unit (restart on failure, SIGTERM drain, stop timeout
#    longer than the grace period), running as the unprivileged user "impetus"; its
#    workers run jobs as a second user, "impetus-job", that cannot read the agent's
#    files and cannot reach the instance metadata service (the node role's credentials);
# 5. the CloudWatch agent shipping /var/log/impetus/impetus-node.log to CloudWatch Logs.
#
# Everything this script prints also goes to /var/log/impetus-bootstrap.log, shipped to
# the node log group (stream <instance id>/bootstrap): by the CloudWatch agent once it
# runs, and by `aws logs put-log-events` when the bootstrap fails before that. Downloads
# are retried; on giving up, the script ships its log and shuts the instance down, so a
# node that cannot boot is not billed while it waits for DFS's boot deadline.
#
# ROOT and SERVICE=direct exist for the sandbox test, which runs this script on a
# developer machine under a private root and starts the agent without systemd.
set -euo pipefail

# --- settings (rendered) -------------------------------------------------------------------
ROOT=@@ROOT@@
PYTHON_VERSION=@@PYTHON_VERSION@@
PYTHON_BIN=@@PYTHON_BIN@@
PACKAGE_SOURCE=@@PACKAGE_SOURCE@@
REGION=@@REGION@@
NODE_ID=@@NODE_ID@@
AGENT_ARGS=@@AGENT_ARGS@@
GRACE=@@GRACE@@
LOG_GROUP=@@LOG_GROUP@@
SERVICE=@@SERVICE@@
NODE_ENV=@@NODE_ENV@@

# --- layout --------------------------------------------------------------------------------
PREFIX="$ROOT/opt/impetus"
VENV="$PREFIX/venv"
CONF_DIR="$ROOT/etc/impetus"
STATE_DIR="$ROOT/var/lib/impetus"
LOG_DIR="$ROOT/var/log/impetus"
UNIT_DIR="$ROOT/etc/systemd/system"
CWAGENT_CONFIG="$ROOT/opt/aws/amazon-cloudwatch-agent/etc/impetus.json"
BOOT_LOG="$ROOT/var/log/impetus-bootstrap.log"
RETRIES=5  # attempts of each download (S3, dnf) before the bootstrap gives up
SERVICE_USER=impetus
JOB_USER=impetus-job
METADATA_V4=169.254.169.254
METADATA_V6=fd00:ec2::254

say() { echo "impetus-bootstrap: $*" >&2; }

# retry N command...: N attempts, 2, 4, 8... seconds apart (a mirror or S3 hiccup).
retry() {
    local attempts="$1" n=1
    shift
    until "$@"; do
        if [ "$n" -ge "$attempts" ]; then
            say "giving up after $n attempts: $1"
            return 1
        fi
        say "attempt $n of $attempts failed: $1; retrying"
        sleep $((2 ** n))
        n=$((n + 1))
    done
}

# The last 200 lines of the bootstrap log to the node log group. Only names and a file
# on the command line: the log itself travels in the file.
ship_bootstrap_log() {
    [ -n "$LOG_GROUP" ] || return 0
    local stream events
    stream="${NODE_ID:-$(instance_id || echo unknown)}/bootstrap"
    events=$(mktemp)
    python3 - "$BOOT_LOG" "$events" <<'PY'
import json, sys, time
lines = open(sys.argv[1], errors="replace").read().splitlines()[-200:] or ["(empty)"]
now = int(time.time() * 1000)
# PutLogEvents: up to 10,000 events and 1 MB a call; 200 lines of <= 2,000 chars fit.
events = [{"timestamp": now, "message": line[:2000] or " "} for line in lines]
json.dump(events, open(sys.argv[2], "w"))
PY
    aws logs create-log-stream --region "$REGION" --log-group-name "$LOG_GROUP" \
        --log-stream-name "$stream" || true
    aws logs put-log-events --region "$REGION" --log-group-name "$LOG_GROUP" \
        --log-stream-name "$stream" --log-events "file://$events"
}

on_exit() {
    local status=$?
    [ "$status" -eq 0 ] && return 0
    say "bootstrap failed (exit $status): shipping this log, then shutting down"
    ship_bootstrap_log || say "shipping the bootstrap log failed"
    if [ "$SERVICE" = systemd ]; then
        shutdown -h now
    fi
}

# IMDSv2 (the launch template requires tokens): this instance's id names the node, so
# DFS can map a heartbeat to the instance it may scale in.
instance_id() {
    local token
    token=$(curl -sS -X PUT -H "X-aws-ec2-metadata-token-ttl-seconds: 300" \
        http://169.254.169.254/latest/api/token)
    curl -sS -H "X-aws-ec2-metadata-token: $token" \
        http://169.254.169.254/latest/meta-data/instance-id
}

python_version_of() {
    "$1" -c 'import sys; print("%d.%d" % sys.version_info[:2])'
}

install_python() {
    if [ -z "$PYTHON_BIN" ]; then
        PYTHON_BIN="python$PYTHON_VERSION"
        if ! command -v "$PYTHON_BIN" >/dev/null; then
            say "installing Python $PYTHON_VERSION"
            retry "$RETRIES" dnf install -y -q "python$PYTHON_VERSION" "python$PYTHON_VERSION-pip"
        fi
    fi
    local found
    found=$(python_version_of "$PYTHON_BIN")
    if [ "$found" != "$PYTHON_VERSION" ]; then
        say "$PYTHON_BIN is Python $found, the clients use $PYTHON_VERSION"
        exit 1
    fi
}

# The node package (infra/nodepackage.py): a zip on S3 (a CDK directory asset), a zip or
# a directory in the sandbox.
fetch_package() {
    local dest="$1"
    rm -rf "$dest" && mkdir -p "$dest"
    case "$PACKAGE_SOURCE" in
        s3://*)
            retry "$RETRIES" aws s3 cp --only-show-errors --region "$REGION" \
                "$PACKAGE_SOURCE" "$dest.zip"
            "$PYTHON_BIN" -m zipfile -e "$dest.zip" "$dest"
            ;;
        *.zip) "$PYTHON_BIN" -m zipfile -e "$PACKAGE_SOURCE" "$dest" ;;
        *) cp -R "$PACKAGE_SOURCE/." "$dest" ;;
    esac
}

install_package() {
    local package="$PREFIX/package" wheel
    fetch_package "$package"
    wheel=$(echo "$package"/impetus-*.whl)
    "$PYTHON_BIN" -m venv "$VENV"
    # --no-index: everything comes from the wheelhouse, at the lock's versions.
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-index \
        --find-links "$package/wheelhouse" -r "$package/requirements.txt" "$wheel"
    say "installed $(basename "$wheel") and $(wc -l <"$package/requirements.txt") pins into $VENV"
}

write_config() {
    mkdir -p "$CONF_DIR" "$STATE_DIR" "$LOG_DIR"
    if [ -z "$NODE_ID" ]; then
        NODE_ID=$(instance_id)
    fi
    # systemd EnvironmentFile syntax: KEY=value, one a line, no quotes needed (no value
    # holds a space except IMPETUS_NODE_ARGS, which the unit splits on purpose).
    {
        echo "# Written by the Impetus bootstrap. Resource names only: no secrets here."
        echo "IMPETUS_HOME=$STATE_DIR"
        printf '%s\n' "$NODE_ENV"
        echo "IMPETUS_NODE_ARGS=--node-id $NODE_ID --grace $GRACE $AGENT_ARGS"
    } >"$CONF_DIR/node.env"
    chmod 0644 "$CONF_DIR/node.env"
    cat >"$CONF_DIR/logrotate.conf" <<EOF
$LOG_DIR/impetus-node.log {
    daily
    rotate 3
    missingok
    notifempty
    copytruncate
}
EOF
}

install_unit() {
    mkdir -p "$UNIT_DIR/impetus-node.service.d"
    cat >"$UNIT_DIR/impetus-node.service" <<'UNIT'
@@UNIT@@
UNIT
    # systemd's SIGKILL must come after the agent's own drain deadline.
    cat >"$UNIT_DIR/impetus-node.service.d/stop-timeout.conf" <<EOF
[Service]
TimeoutStopSec=$((GRACE + 30))
EOF
}

configure_log_shipping() {
    [ -n "$LOG_GROUP" ] || return 0
    mkdir -p "$(dirname "$CWAGENT_CONFIG")"
    cat >"$CWAGENT_CONFIG" <<EOF
{
  "agent": {"run_as_user": "cwagent"},
  "logs": {
    "logs_collected": {
      "files": {
        "collect_list": [
          {
            "file_path": "/var/log/impetus/impetus-node.log",
            "log_group_name": "$LOG_GROUP",
            "log_stream_name": "{instance_id}",
            "timestamp_format": "%Y-%m-%d %H:%M:%S",
            "multi_line_start_pattern": "{timestamp_format}"
          },
          {
            "file_path": "/var/log/impetus-bootstrap.log",
            "log_group_name": "$LOG_GROUP",
            "log_stream_name": "{instance_id}/bootstrap"
          }
        ]
      }
    }
  }
}
EOF
}

# Jobs run as JOB_USER: no way to the metadata service (and so to the node role's
# credentials) for any of its processes. nftables when present, else iptables.
block_metadata_for_jobs() {
    if ! command -v nft >/dev/null && ! command -v iptables >/dev/null; then
        retry "$RETRIES" dnf install -y -q nftables
    fi
    if command -v nft >/dev/null; then
        nft add table inet impetus
        nft add chain inet impetus jobs '{ type filter hook output priority 0; policy accept; }'
        nft add rule inet impetus jobs meta skuid "$JOB_USER" ip daddr "$METADATA_V4" reject
        nft add rule inet impetus jobs meta skuid "$JOB_USER" ip6 daddr "$METADATA_V6" reject
    else
        iptables -A OUTPUT -m owner --uid-owner "$JOB_USER" -d "$METADATA_V4" -j REJECT
        ip6tables -A OUTPUT -m owner --uid-owner "$JOB_USER" -d "$METADATA_V6" -j REJECT || true
    fi
}

create_users() {
    id -u "$SERVICE_USER" >/dev/null 2>&1 ||
        useradd --system --home-dir /var/lib/impetus --shell /sbin/nologin "$SERVICE_USER"
    id -u "$JOB_USER" >/dev/null 2>&1 ||
        useradd --system --create-home --home-dir /var/lib/impetus-job \
            --shell /sbin/nologin "$JOB_USER"
    chmod 0700 "$CONF_DIR" "$STATE_DIR" "$LOG_DIR"
}

start_systemd() {
    create_users
    block_metadata_for_jobs
    echo "IMPETUS_WORKER_USER=$JOB_USER" >>"$CONF_DIR/node.env"
    chown -R "$SERVICE_USER:$SERVICE_USER" "$STATE_DIR" "$LOG_DIR"
    ln -sf /etc/impetus/logrotate.conf /etc/logrotate.d/impetus-node
    if [ -n "$LOG_GROUP" ]; then
        retry "$RETRIES" dnf install -y -q amazon-cloudwatch-agent
        /opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl \
            -a fetch-config -m ec2 -s -c "file:$CWAGENT_CONFIG"
    fi
    systemctl daemon-reload
    systemctl enable --now impetus-node.service
}

# The sandbox's stand-in for systemd: the unit's environment and ExecStart arguments, the
# agent daemonized by its own `start` (pidfile in the state directory).
start_direct() {
    local key value args
    while IFS='=' read -r key value; do
        case "$key" in '' | '#'*) continue ;; esac
        export "$key=$value"
    done <"$CONF_DIR/node.env"
    read -ra args <<<"$IMPETUS_NODE_ARGS"
    "$VENV/bin/impetus-node" start --piddir "$STATE_DIR/node" --logdir "$LOG_DIR" "${args[@]}"
}

main() {
    mkdir -p "$(dirname "$BOOT_LOG")"
    exec > >(tee -a "$BOOT_LOG") 2>&1
    trap on_exit EXIT
    install_python
    install_package
    write_config
    install_unit
    configure_log_shipping
    case "$SERVICE" in
        systemd) start_systemd ;;
        direct) start_direct ;;
        *) say "unknown SERVICE $SERVICE" && exit 1 ;;
    esac
    say "node agent started"
}

main "$@"
