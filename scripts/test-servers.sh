# shellcheck shell=bash
# Start the S3 servers the tests need, and export where they are. Meant to be SOURCED:
#
#     source scripts/test-servers.sh      # then run tests; the servers stop when the shell exits
#
# - moto's server with SigV4 checking on (an IAM user and key are created on it): signatures and
#   general store conformance.
# - LocalStack (S3 only, nothing leaves the machine): the only server that installs here whose
#   conditional writes are atomic under load, so the create-if-absent race runs on it.
#
# Both are installed on first use into Python venvs under
# ${BUCKETQ_TEST_CACHE:-$HOME/.cache/bucketq-test} (moto/, localstack/venv/), started on free
# ports of 127.0.0.1, and stopped (by process group id) when the sourcing shell exits.
# See docs: shared/reference/test-servers.md.
#
# Exports the same variables as the shared dev setup:
#   BUCKETQ_TEST_VENV                  python with moto, boto3, aiosmtpd, oss2 and alibabacloud-oss-v2
#   BUCKETQ_TEST_S3_ENDPOINT           moto, SigV4 checking on, region us-east-1, path-style
#   BUCKETQ_TEST_S3_ACCESS_KEY_ID      its key pair
#   BUCKETQ_TEST_S3_SECRET_ACCESS_KEY
#   BUCKETQ_TEST_LOCALSTACK_ENDPOINT   LocalStack S3, any key works, path-style
#
# If all four endpoint/key variables are already set (e.g. by a developer's shell pointing at
# long-running servers), nothing is started: they are checked for reachability and used.
#
# Any failure aborts with a message naming what to fix.

bq_servers_fail() {
    echo "test-servers: ERROR: $*" >&2
    return 1
}

bq_servers_log() {
    echo "test-servers: $*" >&2
}

# Process group ids of the servers this shell started.
BQ_SERVER_PGIDS=()
BQ_SERVER_TMP=""

bq_servers_stop() {
    local pgid
    for pgid in "${BQ_SERVER_PGIDS[@]}"; do
        kill -TERM -- "-$pgid" 2>/dev/null || true
    done
    for pgid in "${BQ_SERVER_PGIDS[@]}"; do
        for _ in $(seq 1 50); do
            kill -0 -- "-$pgid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL -- "-$pgid" 2>/dev/null || true
    done
    BQ_SERVER_PGIDS=()
    if [ -n "$BQ_SERVER_TMP" ] && [ -d "$BQ_SERVER_TMP" ]; then
        rm -rf "$BQ_SERVER_TMP"
    fi
}

# A free TCP port on 127.0.0.1 (the kernel picks it; released just before the server binds).
bq_free_port() {
    "$1" - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# Wait until something accepts TCP connections on 127.0.0.1:$2; $1 names it, $3 is its log.
bq_wait_for_port() {
    local name=$1 port=$2 log=$3 pgid=$4
    for _ in $(seq 1 240); do
        if "$BQ_PY" -c "import socket,sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), 0.5)" "$port" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 -- "-$pgid" 2>/dev/null; then
            tail -n 30 "$log" >&2 || true
            bq_servers_fail "$name exited during startup (log above: $log)"
            return 1
        fi
        sleep 0.25
    done
    tail -n 30 "$log" >&2 || true
    bq_servers_fail "$name did not listen on 127.0.0.1:$port within 60 s (log: $log)"
}

# Start "$@" in the background as the leader of its own process group (so the group can be
# stopped whole), logging to $1. With job control on, `&` already makes a group; without it
# (scripts), setsid does.
bq_spawn() {
    local log=$1
    shift
    if [[ $- == *m* ]]; then
        "$@" >"$log" 2>&1 </dev/null &
    else
        setsid "$@" >"$log" 2>&1 </dev/null &
    fi
    BQ_LAST_PID=$!
    BQ_SERVER_PGIDS+=("$BQ_LAST_PID")
}

# A Python >= 3.12 for LocalStack: pyenv's 3.13/3.12 first, then the PATH.
bq_find_python312() {
    local candidate
    for candidate in \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python \
        "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python \
        "$(command -v python3.13 || true)" "$(command -v python3.12 || true)" \
        "$(command -v python3 || true)"; do
        [ -n "$candidate" ] && [ -x "$candidate" ] || continue
        if "$candidate" -c 'import sys, venv; sys.exit(0 if sys.version_info >= (3, 12) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

# Install moto (server), boto3 and aiosmtpd into the venv $1 unless they import there already.
# An existing venv is completed, never deleted (another run may be using it).
bq_install_moto() {
    local venv=$1 py
    if [ -x "$venv/bin/moto_server" ] &&
        "$venv/bin/python" -c 'import moto, boto3, aiosmtpd, flask, flask_cors, oss2, alibabacloud_oss_v2' 2>/dev/null; then
        return 0
    fi
    if [ ! -x "$venv/bin/python" ]; then
        py=$(command -v python3) || { bq_servers_fail "python3 is needed to install moto"; return 1; }
        "$py" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 9) else 1)' ||
            { bq_servers_fail "moto needs Python >= 3.9; $py is older"; return 1; }
        "$py" -m venv "$venv" ||
            { bq_servers_fail "cannot create a venv with $py (on Debian/Ubuntu: apt-get install python3-venv)"; return 1; }
    fi
    bq_servers_log "installing moto into $venv (first run only)"
    # oss2 and alibabacloud-oss-v2: Alibaba's own signers judge every OSS request
    # (tests/support/oss_oracle.py).
    "$venv/bin/python" -m pip install -q --disable-pip-version-check 'moto[server]' boto3 aiosmtpd \
        'oss2>=2.19,<3' 'alibabacloud-oss-v2>=1.2,<2' ||
        { bq_servers_fail "pip install of moto failed (network to PyPI needed on first run)"; return 1; }
}

# Install LocalStack into $1/venv unless it imports there already. The pins are explained in
# shared/reference/test-servers.md (cbor2 6 and newer pyOpenSSL break LocalStack's imports).
bq_install_localstack() {
    local dir=$1 py
    if [ -x "$dir/venv/bin/python" ] &&
        "$dir/venv/bin/python" -c 'import localstack.runtime.main' 2>/dev/null; then
        return 0
    fi
    if [ ! -x "$dir/venv/bin/python" ]; then
        py=$(bq_find_python312) || {
            bq_servers_fail "LocalStack needs Python 3.12 or newer: none found in ~/.pyenv/versions or on PATH (install one, e.g. 'pyenv install 3.13')"
            return 1
        }
        mkdir -p "$dir"
        "$py" -m venv "$dir/venv" || { bq_servers_fail "cannot create a venv with $py"; return 1; }
    fi
    bq_servers_log "installing LocalStack into $dir/venv (first run only)"
    "$dir/venv/bin/python" -m pip install -q --disable-pip-version-check \
        "localstack-core[runtime]==2026.3.0" "cbor2<5.7" "cryptography>=44,<45" \
        "pyopenssl==24.3.0" "service_identity==24.2.0" ||
        { bq_servers_fail "pip install of LocalStack failed (network to PyPI needed on first run)"; return 1; }
}

# LocalStack resolves s3.localhost.localstack.cloud once at start: answer it from /etc/hosts.
bq_localstack_hosts() {
    local line='127.0.0.1 localhost.localstack.cloud s3.localhost.localstack.cloud'
    grep -q 's3.localhost.localstack.cloud' /etc/hosts 2>/dev/null && return 0
    if [ -w /etc/hosts ]; then
        echo "$line" >>/etc/hosts
        bq_servers_log "added '$line' to /etc/hosts"
    else
        bq_servers_log "warning: /etc/hosts lacks '$line' and is not writable; LocalStack will ask DNS instead"
    fi
}

bq_start_moto() {
    local venv=$1 port log
    port=$(bq_free_port "$BQ_PY") || return 1
    log="$BQ_SERVER_TMP/moto.log"
    # The first three requests may be unsigned: they create the IAM user, policy and key.
    bq_spawn "$log" env INITIAL_NO_AUTH_ACTION_COUNT=3 "$venv/bin/moto_server" -H 127.0.0.1 -p "$port"
    bq_wait_for_port moto "$port" "$log" "$BQ_LAST_PID" || return 1
    local keys
    keys=$("$venv/bin/python" - "$port" <<'PY'
import boto3, json, sys
ep = f"http://127.0.0.1:{sys.argv[1]}"
iam = boto3.client("iam", endpoint_url=ep, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="bq")
iam.put_user_policy(UserName="bq", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="bq")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
PY
    ) || { tail -n 30 "$log" >&2; bq_servers_fail "could not create the IAM key on moto (log: $log)"; return 1; }
    export BUCKETQ_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
    export BUCKETQ_TEST_S3_ACCESS_KEY_ID="${keys%% *}"
    export BUCKETQ_TEST_S3_SECRET_ACCESS_KEY="${keys#* }"
    bq_servers_log "moto (SigV4 on) at $BUCKETQ_TEST_S3_ENDPOINT"
}

bq_start_localstack() {
    local dir=$1 port log
    port=$(bq_free_port "$BQ_PY") || return 1
    log="$BQ_SERVER_TMP/localstack.log"
    mkdir -p "$BQ_SERVER_TMP/localstack-root"
    bq_spawn "$log" env GATEWAY_LISTEN="127.0.0.1:$port" SERVICES=s3 DNS_ADDRESS=0 \
        DISABLE_EVENTS=1 SKIP_SSL_CERT_DOWNLOAD=1 EAGER_SERVICE_LOADING=1 \
        FILESYSTEM_ROOT="$BQ_SERVER_TMP/localstack-root" \
        "$dir/venv/bin/python" -m localstack.runtime.main
    local pgid=$BQ_LAST_PID
    for _ in $(seq 1 240); do
        if curl -fs -o /dev/null "http://127.0.0.1:$port/_localstack/health"; then
            export BUCKETQ_TEST_LOCALSTACK_ENDPOINT="http://127.0.0.1:$port"
            bq_servers_log "LocalStack at $BUCKETQ_TEST_LOCALSTACK_ENDPOINT"
            return 0
        fi
        if ! kill -0 -- "-$pgid" 2>/dev/null; then
            tail -n 30 "$log" >&2 || true
            bq_servers_fail "LocalStack exited during startup (log above: $log)"
            return 1
        fi
        sleep 0.25
    done
    tail -n 30 "$log" >&2 || true
    bq_servers_fail "LocalStack did not become healthy within 60 s (log: $log)"
}

# Check that an already configured server answers HTTP.
bq_check_reachable() {
    curl -s -o /dev/null --max-time 5 "$2" ||
        { bq_servers_fail "$1 is configured at $2 but does not answer; unset the BUCKETQ_TEST_* variables to start fresh servers"; return 1; }
}

bq_test_servers_main() {
    local cache="${BUCKETQ_TEST_CACHE:-$HOME/.cache/bucketq-test}"
    command -v curl >/dev/null || { bq_servers_fail "curl is needed"; return 1; }
    command -v setsid >/dev/null || { bq_servers_fail "setsid (util-linux) is needed"; return 1; }

    if [ -n "${BUCKETQ_TEST_S3_ENDPOINT:-}" ] && [ -n "${BUCKETQ_TEST_S3_ACCESS_KEY_ID:-}" ] &&
        [ -n "${BUCKETQ_TEST_S3_SECRET_ACCESS_KEY:-}" ] && [ -n "${BUCKETQ_TEST_LOCALSTACK_ENDPOINT:-}" ]; then
        bq_check_reachable moto "$BUCKETQ_TEST_S3_ENDPOINT" || return 1
        bq_check_reachable LocalStack "$BUCKETQ_TEST_LOCALSTACK_ENDPOINT/_localstack/health" || return 1
        bq_servers_log "using the already running servers named by BUCKETQ_TEST_*"
        return 0
    fi

    mkdir -p "$cache"
    bq_install_moto "$cache/moto" || return 1
    export BUCKETQ_TEST_VENV="$cache/moto"
    BQ_PY="$cache/moto/bin/python"
    bq_install_localstack "$cache/localstack" || return 1
    bq_localstack_hosts

    BQ_SERVER_TMP=$(mktemp -d "${TMPDIR:-/tmp}/bucketq-test-servers.XXXXXX")
    trap bq_servers_stop EXIT
    trap 'bq_servers_stop; exit 130' INT
    trap 'bq_servers_stop; exit 143' TERM
    bq_start_moto "$cache/moto" || return 1
    bq_start_localstack "$cache/localstack" || return 1
}

bq_test_servers_main || {
    bq_servers_stop
    # Sourced: abort the caller; run directly: exit.
    return 1 2>/dev/null || exit 1
}
