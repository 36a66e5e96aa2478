"""``spikegate doctor``: every tool on its own line with a version; a missing required tool
makes it fail, a missing optional one does not."""

import subprocess
import sys

from spikegate.scripts import doctor
from spikegate.scripts.doctor import TOOLS, Tool


def _missing():
    raise LookupError("not found on PATH")


def test_doctor_lists_every_tool_with_a_version():
    r = subprocess.run([sys.executable, "-m", "spikegate.scripts.cli", "doctor"],
                       capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"doctor failed:\n{r.stdout}\n{r.stderr}"
    lines = r.stdout.splitlines()
    for tool in TOOLS:
        line = next((ln for ln in lines if ln.strip().startswith(tool.name + " ")), None)
        assert line is not None, f"no line for {tool.name}:\n{r.stdout}"
        rest = line.strip()[len(tool.name):].split()
        if tool.required:
            assert rest[0] == "ok", line
        if rest[0] == "ok":
            assert len(rest) >= 3 and rest[-1].startswith("[") and rest[1] != "[", \
                f"{tool.name}: no version or path in {line!r}"


def test_missing_required_tool_fails(capsys):
    fake = Tool("frobnicator", True, "pip install frobnicator", _missing)
    assert doctor.run(None, tools=[TOOLS[0], fake]) == 1
    out, err = capsys.readouterr()
    assert "frobnicator" in out and "MISSING" in out and "pip install frobnicator" in err


def test_missing_optional_tool_passes(capsys):
    fake = Tool("frobnicator", False, "pip install frobnicator", _missing)
    assert doctor.run(None, tools=[TOOLS[0], fake]) == 0
    out, _ = capsys.readouterr()
    assert "absent (optional)" in out and "pip install frobnicator" in out
