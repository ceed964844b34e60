#!/usr/bin/env bash
# Run Reef's test suite on a fresh machine: makes the virtualenv, installs the project with its
# test extras, makes sure PostgreSQL and Redis are reachable (starting them if needed), runs pytest.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k feeds -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
VENV=${REEF_VENV:-$ROOT/.venv}
PY=${PYTHON:-python3}

log() { printf '==> %s\n' "$*" >&2; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }

apt_install() {
    command -v apt-get >/dev/null || return 1
    if [ -z "${_APT_UPDATED:-}" ]; then as_root apt-get update -qq >/dev/null || true; _APT_UPDATED=1; fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. Python environment.
if [ ! -x "$VENV/bin/python" ]; then
    log "creating virtualenv $VENV"
    "$PY" -m venv "$VENV"
fi
log "installing reef[test]"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check -e ".[test]"

# 1b. bovine-herd, the real ActivityPub peer of tests/federation/test_bovine.py, in a virtualenv of its own
#     (it pins its own aiohttp and pyld); the versions are pinned in tests/federation/bovine-requirements.txt.
BOVINE_VENV=${REEF_BOVINE_VENV:-$ROOT/.venv-bovine}
if [ ! -x "$BOVINE_VENV/bin/python" ]; then
    log "creating bovine's virtualenv $BOVINE_VENV"
    "$PY" -m venv "$BOVINE_VENV"
fi
log "installing bovine-herd into $BOVINE_VENV"
"$BOVINE_VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/federation/bovine-requirements.txt
export REEF_BOVINE_PYTHON=$BOVINE_VENV/bin/python

# 1c. LNbits, the real Lightning backend of tests/test_lnbits_backend.py (FakeWallet funding source), in a
#     virtualenv of its own (it pins many packages); the version is pinned in tests/lnbits-requirements.txt.
LNBITS_VENV=${REEF_LNBITS_VENV:-$ROOT/.venv-lnbits}
if [ ! -x "$LNBITS_VENV/bin/python" ]; then
    log "creating LNbits' virtualenv $LNBITS_VENV"
    "$PY" -m venv "$LNBITS_VENV"
fi
log "installing LNbits into $LNBITS_VENV"
"$LNBITS_VENV/bin/python" -m pip install -q --disable-pip-version-check -r tests/lnbits-requirements.txt
export REEF_LNBITS_PYTHON=$LNBITS_VENV/bin/python

# 2. PostgreSQL. REEF_TEST_DATABASE_URL wins; else a server on 127.0.0.1:5432 (started if it is
#    installed but down); else the tests start their own embedded cluster (needs PostgreSQL binaries).
pg_up() { "$VENV/bin/python" - "$1" <<'PYEOF'
import asyncio, sys, asyncpg
async def main():
    c = await asyncio.wait_for(asyncpg.connect(sys.argv[1]), 5)
    await c.close()
try:
    asyncio.run(main())
except Exception:
    sys.exit(1)
PYEOF
}
if [ -z "${REEF_TEST_DATABASE_URL:-}" ]; then
    LOCAL_PG=postgresql://postgres@127.0.0.1:5432/postgres
    if ! pg_up "$LOCAL_PG" && ls /etc/postgresql/*/main >/dev/null 2>&1 && command -v pg_ctlcluster >/dev/null; then
        log "starting the machine's PostgreSQL"
        as_root pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
        for _ in $(seq 1 30); do pg_up "$LOCAL_PG" && break; sleep 1; done
    fi
    if pg_up "$LOCAL_PG"; then
        export REEF_TEST_DATABASE_URL=$LOCAL_PG
        log "PostgreSQL: $REEF_TEST_DATABASE_URL"
    else
        if ! command -v pg_config >/dev/null && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
            log "no PostgreSQL binaries: installing Debian's postgresql package"
            apt_install postgresql || log "could not install postgresql; the embedded cluster will look for pgserver"
        fi
        log "PostgreSQL: an embedded cluster started by the tests"
    fi
fi

# 3. Redis: tests that need it fail (never skip) without it, so make sure one runs.
redis_up() { "$VENV/bin/python" -c "import redis,sys; redis.Redis.from_url(sys.argv[1], socket_connect_timeout=2).ping()" "$1" 2>/dev/null; }
export REEF_TEST_REDIS_URL=${REEF_TEST_REDIS_URL:-redis://127.0.0.1:6379/15}
if ! redis_up "$REEF_TEST_REDIS_URL"; then
    if ! command -v redis-server >/dev/null; then
        log "installing Debian's redis-server"
        apt_install redis-server || { log "Redis is needed: install redis-server"; exit 1; }
    fi
    log "starting redis-server on 127.0.0.1:6379"
    mkdir -p "$ROOT/.test-run"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir "$ROOT/.test-run" --logfile "$ROOT/.test-run/redis.log"
    for _ in $(seq 1 30); do redis_up "$REEF_TEST_REDIS_URL" && break; sleep 0.5; done
    redis_up "$REEF_TEST_REDIS_URL" || { log "Redis did not start; see .test-run/redis.log"; exit 1; }
fi
log "Redis: $REEF_TEST_REDIS_URL"

# 4. Chromium for the browser tests (tests/web drive Debian's /usr/bin/chromium with Playwright).
if [ ! -x /usr/bin/chromium ]; then
    log "installing Debian's chromium for the browser tests"
    apt_install chromium || log "could not install chromium; the browser tests will fail"
fi

# 4b. promtool for tests/test_alerts.py (checks and unit-tests deploy/prometheus/alerts.yml); Debian ships it in
#     the prometheus package. Only the binary is used: a prometheus service the package may start is stopped.
if ! command -v promtool >/dev/null; then
    log "installing Debian's prometheus package for promtool"
    apt_install prometheus || log "could not install prometheus; tests/test_alerts.py will fail"
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now prometheus >/dev/null 2>&1 || true
    fi
fi

# 4c. caddy for tests/test_deploy.py (`caddy validate` of deploy/Caddyfile and deploy/two-hosts/Caddyfile); Debian
#     ships it. Only the binary is used: a caddy service the package may start is stopped. systemd-analyze (systemd)
#     verifies deploy/systemd/*.service; Debian installs it with systemd.
if ! command -v caddy >/dev/null; then
    log "installing Debian's caddy package"
    apt_install caddy || log "could not install caddy; tests/test_deploy.py will fail"
    if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
        as_root systemctl disable --now caddy >/dev/null 2>&1 || true
    fi
fi
if ! command -v systemd-analyze >/dev/null; then
    log "installing Debian's systemd package for systemd-analyze"
    apt_install systemd || log "could not install systemd; tests/test_deploy.py will fail"
fi

# 5. The tests.
log "running pytest"
exec "$VENV/bin/python" -m pytest "$@"
