"""``.ci/run`` before its tests: Icarus Verilog found, installed with apt-get (as root), or a
clear failure; and ``tests/conftest.py``'s ``requires_iverilog`` under ``CI``: skipped locally,
failed in CI.

``.ci/run`` runs here on a ``PATH`` of stand-ins (``id``, ``apt-get``, ``python3``), so that
nothing is installed and the suite is not run again: the stand-in ``python3`` ends the script
where it would create the virtual environment.
"""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CI_RUN = ROOT / ".ci" / "run"
# Real tools the script (and the apt-get stand-in) uses before the virtual environment.
_TOOLS = ("bash", "env", "dirname", "mktemp", "rm", "date", "head", "cp", "chmod")


def _stub(path, body):
    path.write_text("#!/bin/bash\n" + textwrap.dedent(body))
    path.chmod(0o755)


def _bin(tmp_path, *, uid, apt_installs):
    """A directory of stand-ins; ``apt_installs``: ``apt-get install`` creates iverilog and vvp."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    for tool in _TOOLS:
        real = shutil.which(tool)
        assert real, f"{tool} not found"
        (bin_ / tool).symlink_to(real)
    _stub(bin_ / "id", f'[ "$1" = -u ] && echo {uid}\n')
    _stub(bin_ / "python3", 'echo "python3 $*" >> "$LOG"; exit 42\n')
    install = ('printf \'#!/bin/bash\\necho "Icarus Verilog version 12.0 (stub)"\\n\' > "$BIN/iverilog"\n'
               'cp "$BIN/iverilog" "$BIN/vvp"; chmod +x "$BIN/iverilog" "$BIN/vvp"\n'
               if apt_installs else "exit 100\n")
    _stub(bin_ / "apt-get", 'echo "apt-get $*" >> "$LOG"\n'
                            'if [ "$1" = install ]; then\n' + textwrap.indent(install, "    ") + "fi\n")
    return bin_


def _ci_run(tmp_path, bin_):
    log = tmp_path / "log"
    log.touch()
    env = {"PATH": str(bin_), "LOG": str(log), "BIN": str(bin_), "TMPDIR": str(tmp_path),
           "HOME": str(tmp_path)}
    r = subprocess.run([str(bin_ / "bash"), str(CI_RUN)], capture_output=True, text=True,
                       env=env, timeout=60, stdin=subprocess.DEVNULL)
    return r, log.read_text().splitlines()


def test_icarus_present_is_used(tmp_path):
    bin_ = _bin(tmp_path, uid=0, apt_installs=True)
    _stub(bin_ / "iverilog", 'echo "Icarus Verilog version 11.0 (stub)"\n')
    _stub(bin_ / "vvp", "exit 0\n")
    r, log = _ci_run(tmp_path, bin_)
    assert r.returncode == 42, r.stdout + r.stderr           # reached the venv step
    assert not [line for line in log if line.startswith("apt-get")], log
    assert "Icarus Verilog version 11.0 (stub)" in r.stdout


def test_icarus_missing_is_installed_as_root(tmp_path):
    bin_ = _bin(tmp_path, uid=0, apt_installs=True)
    r, log = _ci_run(tmp_path, bin_)
    assert r.returncode == 42, r.stdout + r.stderr
    assert log[:2] == ["apt-get update", "apt-get install -y iverilog"], log
    assert log[2].startswith("python3 -m venv"), log


@pytest.mark.parametrize("uid, apt_installs", [(1000, True), (0, False)],
                         ids=["not-root", "install-fails"])
def test_icarus_missing_and_not_installable_fails_clearly(tmp_path, uid, apt_installs):
    bin_ = _bin(tmp_path, uid=uid, apt_installs=apt_installs)
    r, log = _ci_run(tmp_path, bin_)
    assert r.returncode == 6, r.stdout + r.stderr
    assert "apt-get install iverilog" in r.stderr and "FAILED" in r.stderr, r.stderr
    assert not [line for line in log if line.startswith("python3")], "went on without Icarus"
    if uid != 0:
        assert not log, "apt-get run without root"


_ICARUS_TEST = '''
import pytest

@pytest.mark.requires_iverilog
def test_needs_icarus():
    pass
'''


@pytest.mark.parametrize("ci, outcome", [(None, "skipped"), ("true", "failed"), ("false", "skipped")])
def test_requires_iverilog_skips_locally_and_fails_in_ci(tmp_path, ci, outcome):
    """tests/conftest.py, run by an inner pytest on a PATH without Icarus."""
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_icarus.py").write_text(_ICARUS_TEST)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    requires_iverilog: Icarus\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PATH"] = str(tmp_path)                       # no iverilog, no vvp
    if ci is not None:
        env["CI"] = ci
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
                        "no:xdist", "-rs", str(tmp_path / "test_icarus.py")], cwd=tmp_path,
                       capture_output=True, text=True, env=env, timeout=120,
                       stdin=subprocess.DEVNULL)
    summary = r.stdout.strip().splitlines()[-1]
    if outcome == "skipped":
        assert r.returncode == 0 and "1 skipped" in summary, r.stdout + r.stderr
        assert "apt-get install iverilog" in r.stdout             # the reason
    else:
        assert r.returncode == 1 and "1 error" in summary, r.stdout + r.stderr
        assert "CI" in r.stdout and "apt-get install iverilog" in r.stdout
