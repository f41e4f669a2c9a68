"""docs/policy.md's code examples run as printed: its Python blocks in order in an empty
directory (with `onnxscript` unavailable, as on a machine with torch alone), its TOML block as the
bundle's manifest; the bundle they make passes `raasd policy check`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow]

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"
_BLOCK = re.compile(r"^```(\w+)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
#: Run before each block: `import onnxscript` fails, as where it is not installed.
_NO_ONNXSCRIPT = "import sys\nsys.modules['onnxscript'] = None\n"


def blocks(lang: str) -> list[str]:
    return [code for kind, code in _BLOCK.findall(DOC.read_text()) if kind == lang]


def test_the_export_example_and_its_manifest_make_a_bundle_that_loads(tmp_path: Path) -> None:
    python, toml = blocks("python"), blocks("toml")
    assert python and len(toml) == 1, "docs/policy.md lost its worked example"
    (tmp_path / "bundle").mkdir()
    for i, code in enumerate(python):
        script = tmp_path / f"block{i}.py"
        script.write_text(_NO_ONNXSCRIPT + code)
        proc = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, f"python block {i} of docs/policy.md:\n{proc.stderr}"
    (tmp_path / "bundle" / "manifest.toml").write_text(toml[0])
    proc = subprocess.run(
        [sys.executable, "-m", "raas.cli", "policy", "check", "bundle", "--runs", "50"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "state        h->h_out [1, 1, 512], c->c_out [1, 1, 512]" in proc.stdout
    assert "20 actuators x 11 bins" in proc.stdout
