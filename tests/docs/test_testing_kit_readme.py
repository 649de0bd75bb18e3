"""The README's complete test of the demo with the testing kit runs as written, in a pytest of its own."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import admin_url

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def readme_demo_test() -> str:
    section = README.split("## Testing workflows", 1)[1].split("\n## ", 1)[0]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


def test_the_readme_test_of_the_demo_passes_as_written(tmp_path: Path):
    code = readme_demo_test()
    assert code.startswith("# test_demo.py, next to examples/demo.py")
    (tmp_path / "test_demo.py").write_text(code, encoding="utf-8")
    shutil.copy(ROOT / "examples" / "demo.py", tmp_path / "demo.py")
    env = {key: value for key, value in os.environ.items() if key != "POSTGIT_SMTP_URL"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_demo.py"]
    result = subprocess.run(
        [*command, "--postgit-database-url", admin_url()],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
