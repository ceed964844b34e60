"""A real LNbits (its FakeWallet funding source) for the Lightning tests, run from its own virtualenv.

LNbits pins many packages of its own, so it lives in .venv-lnbits (made by scripts/test.sh, versions in
tests/lnbits-requirements.txt) and REEF_LNBITS_PYTHON names that interpreter. `LNbitsServer.start()` runs
its ASGI app with uvicorn on a free 127.0.0.1 port, with a fresh data folder (SQLite) of its own, and:

- the working directory is the folder that holds the `lnbits` package (site-packages): LNbits mounts its
  static files from the relative path lnbits/static and fails at start anywhere else;
- uvicorn directly rather than the `lnbits` command, which forks the server into a child and waits for a
  restart event forever once that child dies (a crash would look like a hang);
- no outside calls: the price aggregator off and no exchange-rate providers (it asks both for BTC prices
  every minute and when it converts an amount into the wallet's currency), no extension manifests (it
  downloads those lists every minute), extensions off; notifications (Telegram, Nostr, e-mail) are off by
  default and stay off. Checked with `strace -f -e trace=connect`: the running server makes no connect().

Then it finishes LNbits' first install (the super user gets a password: only then may it use the admin API),
and makes two wallets: "node" (whose admin key Reef uses) and "external" (an outside Lightning user). With
FakeWallet every payment between wallets of this LNbits settles internally, at once; FakeWallet refuses to
pay any invoice it did not make itself. FakeWallet's invoices are mainnet ones (prefix lnbc).
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NETWORK = "bitcoin"  # FakeWallet writes currency "bc" into every invoice
ADMIN_USERNAME = "reefadmin"
ADMIN_PASSWORD = "reef-test-admin-pw"

# Settings, as LNbits reads them from the environment, that keep it off the network.
OFFLINE_ENV = {
    "LNBITS_PRICE_AGGREGATOR_ENABLED": "false",
    "LNBITS_EXCHANGE_RATE_PROVIDERS": "[]",
    "LNBITS_EXTENSIONS_MANIFESTS": "[]",
    "LNBITS_WASM_EXTENSIONS_MANIFESTS": "[]",
    "LNBITS_EXTENSIONS_BUILDER_MANIFEST_URL": "",
    "LNBITS_EXTENSIONS_DEACTIVATE_ALL": "true",
    "LNBITS_NOSTR_NOTIFICATIONS_ENABLED": "false",
    "LNBITS_TELEGRAM_NOTIFICATIONS_ENABLED": "false",
    "LNBITS_EMAIL_NOTIFICATIONS_ENABLED": "false",
}


class LNbitsError(AssertionError):
    """LNbits answered a set-up or helper call with an error (the tests' own calls, not Reef's)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def lnbits_python() -> str:
    """The interpreter of LNbits' virtualenv; a clear failure (not a skip) when it is not there."""
    python = os.environ.get("REEF_LNBITS_PYTHON", "")
    if not python or not Path(python).is_file():
        raise RuntimeError(
            "REEF_LNBITS_PYTHON is not set to LNbits' interpreter "
            f"({python or 'unset'}): run the tests through scripts/test.sh, which makes .venv-lnbits from "
            "tests/lnbits-requirements.txt, or make it by hand: python3 -m venv .venv-lnbits && "
            ".venv-lnbits/bin/pip install -r tests/lnbits-requirements.txt && "
            "export REEF_LNBITS_PYTHON=$PWD/.venv-lnbits/bin/python"
        )
    return python


@dataclass(frozen=True, slots=True)
class LNbitsWallet:
    id: str
    name: str
    admin_key: str
    invoice_key: str


class LNbitsServer:
    """One LNbits process on 127.0.0.1:<port>; blocking set-up helpers, since the fixture is session-wide."""

    def __init__(self, python: str, workdir: Path | None = None, port: int | None = None) -> None:
        self.python = python
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="reef-lnbits-"))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = self.workdir / "lnbits.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.token = ""  # the super user's access token
        self.node: LNbitsWallet | None = None
        self.external: LNbitsWallet | None = None

    # --- the process --------------------------------------------------------------------------

    def package_parent(self) -> Path:
        out = subprocess.run(
            # find_spec, not import: importing lnbits writes ./data/.lnbits_auth_key into the working directory
            [self.python, "-c", "import importlib.util as u, os; "
             "print(os.path.dirname(os.path.dirname(u.find_spec('lnbits').origin)))"],
            capture_output=True, text=True, timeout=120, cwd=self.workdir,
        )
        if out.returncode != 0:
            raise RuntimeError(f"{self.python} cannot import lnbits:\n{out.stderr[-2000:]}")
        return Path(out.stdout.strip())

    def start(self, timeout: float = 120.0) -> None:
        data = self.workdir / "data"
        (data / "logs").mkdir(parents=True, exist_ok=True)
        (data / "extensions" / "extensions").mkdir(parents=True, exist_ok=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "LNBITS_DATA_FOLDER": str(data),
            "LNBITS_EXTENSIONS_PATH": str(data / "extensions"),
            "LNBITS_BACKEND_WALLET_CLASS": "FakeWallet",
            "LNBITS_ADMIN_UI": "true",
            "HOST": "127.0.0.1",
            "PORT": str(self.port),
            "LNBITS_RATE_LIMIT_NO": "1000000",
            "AUTH_HTTPS_ONLY": "false",
            **OFFLINE_ENV,
        }
        cmd = [self.python, "-m", "uvicorn", "lnbits.__main__:app", "--host", "127.0.0.1", "--port", str(self.port)]
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                cmd, cwd=self.package_parent(), env=env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_ready(timeout)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"LNbits exited while starting:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v1/health", timeout=2):
                    return
            except urllib.error.HTTPError:
                return  # it answers (before the first install every page redirects there)
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"LNbits did not answer within {timeout:.0f} s:\n{self.log_tail()}")
            time.sleep(0.25)

    def stop(self, timeout: float = 20.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # --- its REST API -------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, *, key: str | None = None,
                admin: bool = False, expect: tuple[int, ...] = (200, 201)) -> Any:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["X-Api-Key"] = key
        if admin:
            headers["Authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                status, raw = resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        try:
            answer = json.loads(raw) if raw else None
        except ValueError:
            answer = raw.decode(errors="replace")
        if expect and status not in expect:
            raise LNbitsError(f"LNbits {method} {path} -> {status}: {str(answer)[:1500]}")
        return answer

    def first_install(self) -> None:
        """Give the super user (made at LNbits' first start) a password and keep its access token."""
        answer = self.request("PUT", "/api/v1/auth/first_install", {
            "username": ADMIN_USERNAME, "password": ADMIN_PASSWORD, "password_repeat": ADMIN_PASSWORD,
        })
        self.token = answer["access_token"]

    def create_wallet(self, name: str) -> LNbitsWallet:
        """A new LNbits account with one wallet."""
        w = self.request("POST", "/api/v1/account", {"name": name})
        return LNbitsWallet(id=w["id"], name=name, admin_key=w["adminkey"], invoice_key=w["inkey"])

    def setup(self) -> None:
        self.first_install()
        self.node = self.create_wallet("node")
        self.external = self.create_wallet("external")

    def topup(self, wallet: LNbitsWallet, amount_sat: int) -> None:
        """Credit a wallet out of thin air (the super user's balance API; amounts in sats)."""
        self.request("PUT", "/users/api/v1/balance", {"id": wallet.id, "amount": amount_sat}, admin=True)

    def balance_msat(self, wallet: LNbitsWallet) -> int:
        return int(self.request("GET", "/api/v1/wallet", key=wallet.invoice_key)["balance"])

    def make_invoice(self, wallet: LNbitsWallet, amount_sat: int, memo: str = "", expiry: int = 3600) -> dict[str, Any]:
        """An invoice payable to the wallet: LNbits' payment record (bolt11, payment_hash, amount in msat)."""
        return self.request("POST", "/api/v1/payments", {
            "out": False, "amount": amount_sat, "unit": "sat", "memo": memo, "expiry": expiry,
        }, key=wallet.invoice_key)

    def pay(self, wallet: LNbitsWallet, bolt11: str) -> dict[str, Any]:
        """Pay an invoice from the wallet; LNbits' payment record (status "success" once settled)."""
        return self.request("POST", "/api/v1/payments", {"out": True, "bolt11": bolt11}, key=wallet.admin_key)

    def payment(self, wallet: LNbitsWallet, payment_hash: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v1/payments/{payment_hash}", key=wallet.invoice_key)


def start_lnbits() -> LNbitsServer:
    server = LNbitsServer(lnbits_python())
    try:
        server.start()
        server.setup()
    except BaseException as exc:
        tail = server.log_tail()
        server.cleanup()
        raise RuntimeError(f"LNbits could not be started and set up ({exc}); its log:\n{tail}") from exc
    return server
