"""``mainspring load --system``."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mainspring import cli
from mainspring._load import _registry


@pytest.fixture(autouse=True)
def _restore_indicator() -> Iterator[None]:
    saved = _registry.get_indicator()
    yield
    _registry.set_indicator(saved)


def test_prints_count_lines_from_psi(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    psi = tmp_path / "cpu"
    psi.write_text("some avg10=50.00 avg60=25.00 avg300=0.00 total=1000\n")
    before = _registry.get_indicator()
    status = cli.main(
        ["load", "--system", "--interval", "0.01", "--count", "3", "--psi-path", str(psi)]
    )
    assert status == 0
    lines = capsys.readouterr().out.splitlines()
    assert "PSI" in lines[0]
    assert len(lines) == 4
    # Seeded from PSI's averages; the file does not move, so the figures decay a little.
    assert lines[1].startswith("system  1s 0.")
    fields = lines[1].split()
    assert float(fields[4]) == pytest.approx(0.5, abs=0.01)  # 10 s
    assert float(fields[6]) == pytest.approx(0.25, abs=0.01)  # 60 s
    assert _registry.get_indicator() is before  # the CLI installs nothing


def test_loadavg_fallback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(
        [
            "load",
            "--system",
            "--interval",
            "0.01",
            "--count",
            "1",
            "--psi-path",
            str(tmp_path / "none"),
        ]
    )
    assert status == 0
    assert "load average per core" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["load"], "only --system"),
        (["load", "--system", "--interval", "0"], "`--interval`"),
        (["load", "--system", "--count", "0"], "`--count`"),
    ],
)
def test_bad_usage_exits_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_ctrl_c_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from mainspring._commands import load as command

    def interrupted(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(command.time, "sleep", interrupted)
    assert cli.main(["load", "--system"]) == 0
    assert capsys.readouterr().out.startswith("system load")


def test_console_script_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mainspring.cli",
            "load",
            "--system",
            "--interval",
            "0.05",
            "--count",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 3
