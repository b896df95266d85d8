import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"


@pytest.fixture
def specs_dir():
    return SPECS


def run_cli(*args, cwd=None, timeout=120):
    """`python -m nnspec ARGS` in a subprocess: (exit code, stdout, stderr)."""
    import subprocess
    p = subprocess.run([sys.executable, "-m", "nnspec", *map(str, args)], capture_output=True,
                       text=True, cwd=cwd, timeout=timeout)
    return p.returncode, p.stdout, p.stderr
