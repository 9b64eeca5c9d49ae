#!/usr/bin/env bash
# Proof of Alibaba SDK compatibility: installs the two official Python SDKs into a throwaway
# virtual environment, writes a development certificate set (`kms dev-cert`), starts a real
# `kms serve` over HTTPS on a free loopback port with a temporary data directory, runs test_sdk.py
# against it with both (each verifying the server certificate against the development CA), and
# stops the server with SIGTERM.
# Needs python3 with pip (venv used when present) and cargo; reaches only the package registry
# and 127.0.0.1.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
work="$(mktemp -d)"
server_pid=""

cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

echo "== sdk: building kms"
(cd "$root" && cargo build -q -p kms-server --bin kms)
kms="${CARGO_TARGET_DIR:-$root/target}/debug/kms"

echo "== sdk: installing alibabacloud-kms20160120 and aliyun-python-sdk-kms"
packages=(alibabacloud-kms20160120 aliyun-python-sdk-kms)
pip_flags=(-q --disable-pip-version-check --no-input)
if python3 -m venv "$work/venv" >/dev/null 2>&1; then
  python="$work/venv/bin/python"
  "$python" -m pip install "${pip_flags[@]}" "${packages[@]}"
else
  # Without the venv module (Debian's python3 lacks ensurepip): a private target directory.
  python="python3"
  python3 -m pip install "${pip_flags[@]}" --target "$work/site" "${packages[@]}"
  export PYTHONPATH="$work/site"
fi

export KMS_ACCESS_KEY_ID="sdk-test-$$"
KMS_ACCESS_KEY_SECRET="$(python3 -c 'import secrets; print(secrets.token_urlsafe(24))')"
export KMS_ACCESS_KEY_SECRET

echo "== sdk: writing a development certificate set"
# ca.pem (a throwaway local CA), cert.pem + key.pem (server certificate for localhost, 127.0.0.1
# and ::1). The test gets ca.pem as KMS_CA_FILE; nothing is added to any system trust store.
"$kms" dev-cert --out "$work/tls" >"$work/dev-cert.json"
tls="$work/tls"

echo "== sdk: starting kms serve (HTTPS)"
"$kms" serve --data-dir "$work/data" --listen 127.0.0.1:0 --instance-listen 127.0.0.1:0 \
  --audit-log "$work/audit.jsonl" \
  --tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem" >"$work/server.log" 2>&1 &
server_pid=$!
addr=""
for _ in $(seq 1 300); do
  addr="$(grep -o 'addr=127\.0\.0\.1:[0-9]*' "$work/server.log" | head -n 1 | cut -d= -f2 || true)"
  [ -n "$addr" ] && break
  if ! kill -0 "$server_pid" 2>/dev/null; then
    echo "kms serve exited early:" >&2
    cat "$work/server.log" >&2
    exit 1
  fi
  sleep 0.1
done
if [ -z "$addr" ]; then
  echo "kms serve did not report its address" >&2
  cat "$work/server.log" >&2
  exit 1
fi
if ! grep 'listening' "$work/server.log" | grep -Eq 'scheme"?[=:]"?https'; then
  echo "kms serve is not serving HTTPS" >&2
  cat "$work/server.log" >&2
  exit 1
fi
echo "== sdk: server on https://$addr"

set +e
KMS_ENDPOINT="$addr" KMS_CA_FILE="$tls/ca.pem" "$python" "$here/test_sdk.py"
status=$?
set -e

# ---- the KMS 3.0 instance gateway with the instance SDKs -------------------------------------
# Their own environment: alibabacloud-dkms-gcs pins protobuf<4 and pyOpenSSL<23.3, and
# alibabacloud-kms-python-sdk brings its own alibabacloud-kms20160120.
echo "== sdk: installing alibabacloud-dkms-gcs and alibabacloud-kms-python-sdk"
instance_packages=(alibabacloud-dkms-gcs alibabacloud-kms-python-sdk 'protobuf<4' 'pyopenssl<23.3')
if python3 -m venv "$work/venv-instance" >/dev/null 2>&1; then
  ipython="$work/venv-instance/bin/python"
  "$ipython" -m pip install "${pip_flags[@]}" "${instance_packages[@]}"
  ipath=""
else
  ipython="python3"
  python3 -m pip install "${pip_flags[@]}" --target "$work/site-instance" "${instance_packages[@]}"
  ipath="$work/site-instance"
fi
instance_addr="$(grep 'instance gateway listening' "$work/server.log" | grep -o 'addr=127\.0\.0\.1:[0-9]*' | head -n 1 | cut -d= -f2 || true)"
if [ -z "$instance_addr" ]; then
  echo "kms serve did not report the instance gateway's address" >&2
  status=1
else
  echo "== sdk: instance gateway on https://$instance_addr"
  set +e
  PYTHONPATH="$ipath" KMS_ENDPOINT="$addr" KMS_INSTANCE_ENDPOINT="$instance_addr" \
    KMS_CA_FILE="$tls/ca.pem" "$ipython" "$here/test_instance_sdk.py"
  [ $? -eq 0 ] || status=1
  set -e
  # Applications appear in the audit trail as themselves; passwords and plaintexts never.
  if ! grep -q '"type":"aap"' "$work/audit.jsonl"; then
    echo "the audit trail has no application (aap) identity" >&2
    status=1
  fi
  if grep -q -e 'client-[0-9a-f]\{8\}9' -e 'PrivateKeyData' -e 'hello instance' "$work/audit.jsonl" "$work/server.log"; then
    echo "the audit trail or the log holds a client key password, private key or plaintext" >&2
    status=1
  fi
fi

echo "== sdk: stopping the server (SIGTERM)"
kill -TERM "$server_pid"
set +e
wait "$server_pid"
server_status=$?
set -e
server_pid=""
if [ "$server_status" -ne 0 ]; then
  echo "kms serve exited with status $server_status after SIGTERM" >&2
  status=1
fi

# ---- two instances on one PostgreSQL database ---------------------------------------------
echo "== sdk: two instances on one PostgreSQL database"
pg_bin=""
for candidate in "$(dirname "$(readlink -f "$(command -v initdb 2>/dev/null || echo /nonexistent)")")" /usr/lib/postgresql/*/bin; do
  if [ -x "$candidate/initdb" ] && [ -x "$candidate/postgres" ]; then pg_bin="$candidate"; fi
done
if [ -z "$pg_bin" ]; then
  echo "PostgreSQL's server binaries (initdb, postgres) are needed" >&2
  exit 1
fi
# Outside $work (0700, root's): the server runs as the postgres user when we are root.
pg_dir="$(mktemp -d /tmp/kms-sdk-pg.XXXXXX)"
as_pg=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$pg_dir"
  as_pg=(runuser -u postgres --)
fi
"${as_pg[@]}" "$pg_bin/initdb" -A trust -U kms --no-sync -D "$pg_dir/data" >/dev/null
pg_port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1" start >/dev/null
shared_pids=()
stop_shared() {
  for pid in "${shared_pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap 'stop_shared; cleanup' EXIT
head -c 32 /dev/urandom >"$work/shared-root.key"
chmod 600 "$work/shared-root.key"
url="postgres://kms@127.0.0.1:$pg_port/postgres"
shared_addrs=()
for name in a b; do
  "$kms" serve --data-dir "$work/shared-$name" --root-key-file "$work/shared-root.key" \
    --storage "$url" --listen 127.0.0.1:0 \
    --tls-cert "$tls/cert.pem" --tls-key "$tls/key.pem" >"$work/shared-$name.log" 2>&1 &
  shared_pids+=($!)
  a_addr=""
  for _ in $(seq 1 300); do
    a_addr="$(grep -o 'addr=127\.0\.0\.1:[0-9]*' "$work/shared-$name.log" | head -n 1 | cut -d= -f2 || true)"
    [ -n "$a_addr" ] && break
    sleep 0.1
  done
  if [ -z "$a_addr" ]; then
    echo "instance $name did not start:" >&2
    cat "$work/shared-$name.log" >&2
    exit 1
  fi
  shared_addrs+=("$a_addr")
done
set +e
KMS_ENDPOINT_A="${shared_addrs[0]}" KMS_ENDPOINT_B="${shared_addrs[1]}" KMS_CA_FILE="$tls/ca.pem" \
  "$python" "$here/test_sdk_shared.py"
shared_status=$?
set -e
stop_shared
trap cleanup EXIT
if [ "$shared_status" -ne 0 ]; then
  tail -n 20 "$work/shared-a.log" "$work/shared-b.log" >&2
  status=1
fi

# The request log must name actions, never secrets or plaintext.
if grep -q -e "$KMS_ACCESS_KEY_SECRET" -e "hello, kms" -e "v1 plaintext" -e "p@ss word" "$work/server.log"; then
  echo "the server log contains a secret or plaintext" >&2
  status=1
fi
if ! grep -q 'action=Encrypt' "$work/server.log"; then
  echo "the server log has no request lines" >&2
  status=1
fi
if [ "$status" -ne 0 ]; then
  echo "---- server log (last 40 lines)" >&2
  tail -n 40 "$work/server.log" >&2
fi
exit "$status"
