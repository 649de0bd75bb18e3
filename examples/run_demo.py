"""Run the demo end to end, the way a user would: ``pst dev``, ``pst deploy``, ``pst run --watch``, then stop.

    .venv/bin/python examples/run_demo.py

Exits 0 when the demo instance completed. Each command is printed before it runs.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
API = "http://localhost:3000"


def pst(*args: str) -> int:
    print(f"$ pst {' '.join(args)}", flush=True)
    return subprocess.call([str(BIN / "pst"), *args], cwd=ROOT)  # noqa: S603


def wait_for_api(dev: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if dev.poll() is not None:
            sys.exit(f"pst dev exited with code {dev.returncode}")
        try:
            with urllib.request.urlopen(f"{API}/workers", timeout=1) as response:  # noqa: S310 - our loopback API
                if response.status == 200 and response.read() not in (b"[]", b""):
                    return  # the server answers and a worker has registered
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"the dev environment did not come up at {API} within {timeout:.0f}s")


def main() -> int:
    print("$ pst dev", flush=True)
    env = {key: value for key, value in os.environ.items() if key != "POSTGIT_API_TOKEN"}
    dev = subprocess.Popen([str(BIN / "pst"), "dev"], cwd=ROOT, env=env)  # noqa: S603
    try:
        wait_for_api(dev)
        code = pst("deploy", "examples/demo.py") or pst("run", "demo", "--watch")
        if code == 0:
            pst("outbox", "ls")
        return code
    finally:
        dev.send_signal(signal.SIGINT)
        dev.wait(60)


if __name__ == "__main__":
    sys.exit(main())
