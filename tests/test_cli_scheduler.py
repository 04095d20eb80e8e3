"""The scheduler's command line: check, jobs, history, run-once, and the `run` daemon.

`run` is tested in a subprocess, as an operator runs it: SIGTERM stops it
gracefully, and `kill -9` in the middle of a run loses nothing committed.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from mainspring import Scheduler
from mainspring.cli import main
from mainspring.config import load_config

ROOT = Path(__file__).resolve().parent.parent
_names = itertools.count()

JOBS_MODULE = '''
import os, time

def beat(path):
    with open(path, "a") as f:
        f.write("beat\\n")
    return "beat"

def slow(marker, seconds=30):
    """Sleeps the first time only: a run that a kill -9 interrupts."""
    if os.path.exists(marker):
        return "again"
    open(marker, "w").close()
    time.sleep(seconds)
    return "slept"

def fail():
    raise RuntimeError("no luck")

def answer():
    return {"answer": 42}
'''


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """tmp_path as the current directory, with a jobs module of a fresh name beside the config."""
    name = f"cli_jobs_{os.getpid()}_{next(_names)}"
    (tmp_path / f"{name}.py").write_text(JOBS_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield tmp_path, name
    sys.modules.pop(name, None)


Write = Callable[[str], Path]


@pytest.fixture
def write(project: tuple[Path, str]) -> Write:
    directory, name = project

    def write(text: str) -> Path:
        path = directory / "mainspring.toml"
        text = textwrap.dedent(text).replace("MOD", name).replace("DIR", str(directory))
        path.write_text(text)
        return path

    return write


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


STORE_CONFIG = """
[scheduler]
store = "sqlite:///ms.db"
timezone = "Europe/Berlin"

[[jobs]]
id = "answer"
func = "MOD:answer"
cron = "0 3 * * *"

[[jobs]]
id = "fail"
func = "MOD:fail"
every = "1h"
"""


def populate(path: Path) -> None:
    """Store the configuration's jobs and one run of each, as a daemon would."""
    sched = Scheduler(**load_config(path).scheduler_kwargs())
    try:
        sched.sync(load_config(path).job_specs())
        sched.run_once("answer")
        sched.run_once("fail")
    finally:
        sched.close()


# -- check, jobs, history (in this process) ------------------------------------


def test_check_prints_three_fire_times_per_job(
    write: Write, capsys: pytest.CaptureFixture[str], project: tuple[Path, str]
) -> None:
    path = write(STORE_CONFIG)
    status, out, err = cli(capsys, "check", str(path))
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"{path}: OK: 2 job(s), store sqlite:///ms.db")
    assert lines[1] == f"answer: {project[1]}:answer cron('0 3 * * *', tz='Europe/Berlin')"
    times = [datetime.fromisoformat(line.strip()) for line in lines[2:5]]
    assert all(t.hour == 3 and t.minute == 0 and t.utcoffset() is not None for t in times)
    assert [(b - a).days for a, b in itertools.pairwise(times)] == [1, 1]
    assert lines[5].startswith("fail: ")
    hourly = [datetime.fromisoformat(line.strip()) for line in lines[6:9]]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(hourly)] == [3600, 3600]
    assert not (project[0] / "ms.db").exists()  # check never touches the store


def test_jobs_and_history_of_a_store_that_does_not_exist_yet(
    write: Write, capsys: pytest.CaptureFixture[str], project: tuple[Path, str]
) -> None:
    path = write(STORE_CONFIG)
    status, out, _ = cli(capsys, "history", str(path), "--json")
    assert (status, json.loads(out)) == (0, [])
    status, out, _ = cli(capsys, "jobs", str(path), "--json")
    rows = json.loads(out)
    assert [(r["id"], r["in_config"], r["in_store"], r["next_run"]) for r in rows] == [
        ("answer", True, False, None),
        ("fail", True, False, None),
    ]
    assert not (project[0] / "ms.db").exists()


def test_jobs(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(STORE_CONFIG)
    populate(path)
    status, out, _ = cli(capsys, "jobs", str(path), "--json")
    assert status == 0
    rows = {row["id"]: row for row in json.loads(out)}
    assert set(rows) == {"answer", "fail"}
    answer = rows["answer"]
    assert answer["trigger"] == {"type": "cron", "expr": "0 3 * * *", "tz": "Europe/Berlin"}
    assert (answer["paused"], answer["in_store"], answer["in_config"]) == (False, True, True)
    next_run = datetime.fromisoformat(answer["next_run"])
    assert next_run.utcoffset() is not None
    assert answer["options"]["misfire"] == "coalesce"
    status, out, _ = cli(capsys, "jobs", str(path))
    assert [line.split("\t")[0] for line in out.splitlines()] == ["answer", "fail"]
    assert all(line.endswith("\tactive") for line in out.splitlines())
    # A job dropped from the file is shown as such until the next start removes it.
    write(STORE_CONFIG.split('[[jobs]]\nid = "fail"')[0])
    status, out, _ = cli(capsys, "jobs", str(path))
    assert out.splitlines()[1].endswith("not in the configuration: removed at the next start")


def test_history(write: Write, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(STORE_CONFIG)
    populate(path)
    status, out, _ = cli(capsys, "history", str(path), "--json")
    assert status == 0
    runs = json.loads(out)
    assert [(r["job"], r["outcome"]) for r in runs] == [("fail", "error"), ("answer", "ok")]
    fields = ["job", "scheduled", "started", "finished", "outcome", "deferred", "error"]
    assert list(runs[0]) == [*fields, "result", "instance"]
    for run in runs:
        for name in ("scheduled", "started", "finished"):
            assert datetime.fromisoformat(run[name]).utcoffset() is not None
        assert run["instance"]
    assert runs[1]["result"] == {"answer": 42}
    assert runs[0]["error"] is not None and "no luck" in runs[0]["error"]
    status, out, _ = cli(capsys, "history", str(path), "--json", "--job", "answer")
    assert [r["job"] for r in json.loads(out)] == ["answer"]
    status, out, _ = cli(capsys, "history", str(path), "--json", "--limit", "1")
    assert [r["job"] for r in json.loads(out)] == ["fail"]
    status, out, _ = cli(capsys, "history", str(path))
    fail, answer = (line.split("\t") for line in out.splitlines())
    assert (fail[1], fail[2], answer[1], answer[2]) == ("fail", "error", "answer", "ok")
    assert answer[0].endswith(("+01:00", "+02:00"))  # shown in the configured zone
    assert answer[4] == '{"answer": 42}'
    with pytest.raises(SystemExit) as info:
        main(["history", str(path), "--limit", "0"])
    assert info.value.code == 2


def test_commands_refuse_a_bad_configuration(
    write: Write, capsys: pytest.CaptureFixture[str], project: tuple[Path, str]
) -> None:
    path = write('[[jobs]]\nid = "pack"\nfunc = "MOD:answer"\ncron = "61 * * * *"\n')
    line = f"{path}: job 'pack': cron: bad minute field in '61 * * * *'\n"
    for command in (["check"], ["jobs"], ["history"], ["run-once"], ["run"]):
        extra = ["pack"] if command == ["run-once"] else []
        assert cli(capsys, *command, str(path), *extra) == (2, "", line)
    assert not (project[0] / "mainspring.db").exists()


def test_the_example_configuration_checks(capsys: pytest.CaptureFixture[str]) -> None:
    path = ROOT / "examples" / "mainspring.toml"
    status, out, err = cli(capsys, "check", str(path))
    assert (status, err) == (0, "")
    assert [line.split(":")[0] for line in out.splitlines() if not line.startswith(" ")][1:] == [
        "tick",
        "report",
        "pack",
    ]
    config = load_config(path)
    assert any(job.options.idle is not None for job in config.jobs)
    assert {type(job.trigger).__name__ for job in config.jobs} == {"EveryTrigger", "CronTrigger"}


# -- subprocesses: run-once and the daemon ----------------------------------------


def spawn(cwd: Path, *argv: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "mainspring.cli", *argv],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 20.0) -> tuple[int, str, str]:
    """Wait for ``proc`` (killing it if it outlives ``timeout``); status, stdout, stderr."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the process did not end in {timeout} s; stderr:\n{err}")
    return proc.returncode, out, err


def wait_for(condition: Callable[[], bool], proc: subprocess.Popen[str], timeout: float) -> None:
    """Poll ``condition``; on failure kill ``proc`` and fail with its stderr."""
    deadline = time.monotonic() + timeout
    while not condition():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            pytest.fail(f"condition not met within {timeout} s (exit {proc.returncode}): {err}")
        time.sleep(0.05)


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def history(cwd: Path, config: Path) -> list[dict[str, Any]]:
    status, out, err = finish(spawn(cwd, "history", str(config), "--json", "--limit", "500"))
    assert status == 0, err
    runs: list[dict[str, Any]] = json.loads(out)
    return runs


def test_run_once(write: Write, project: tuple[Path, str]) -> None:
    path = write(STORE_CONFIG)
    status, out, err = finish(spawn(project[0], "run-once", str(path), "answer"))
    assert status == 0, err
    assert out.split("\t")[1:3] == ["answer", "ok"]
    assert history(project[0], path)[0]["result"] == {"answer": 42}
    status, out, _ = finish(spawn(project[0], "run-once", str(path), "fail"))
    assert status == 1
    assert out.split("\t")[1:3] == ["fail", "error"]
    status, out, err = finish(spawn(project[0], "run-once", str(path), "nope"))
    assert (status, out) == (2, "")
    assert err == f"{path}: no job with id 'nope' (known: 'answer', 'fail')\n"


DAEMON_CONFIG = """
[scheduler]
store = "sqlite:///ms.db"
shutdown_timeout = "2s"

[[jobs]]
id = "beat"
func = "MOD:beat"
every = "1s"
kwargs = { path = "DIR/beats.txt" }
misfire = "coalesce"
"""

SLOW_JOB = """
[[jobs]]
id = "slow"
func = "MOD:slow"
every = "1h"
kwargs = { marker = "DIR/slow-started" }
"""


@pytest.mark.timeout(60)
def test_run_stops_gracefully_on_sigterm(write: Write, project: tuple[Path, str]) -> None:
    directory = project[0]
    path = write(DAEMON_CONFIG)
    proc = spawn(directory, "run", str(path))
    try:
        wait_for(lambda: lines(directory / "beats.txt") >= 2, proc, 15)
        proc.send_signal(signal.SIGTERM)
        status, _, err = finish(proc)
    finally:
        proc.kill()
        proc.wait(10)
    assert status == 0, err
    assert "SIGTERM received" in err
    assert "mainspring.scheduler" in err  # the engine logs each run
    runs = [r for r in history(directory, path) if r["job"] == "beat"]
    assert len(runs) >= 2
    assert {r["outcome"] for r in runs} == {"ok"}
    assert {r["instance"] for r in runs} == {r["instance"] for r in runs[:1]}
    assert runs[0]["instance"].endswith(f":{proc.pid}")


@pytest.mark.timeout(60)
def test_run_survives_kill_9(write: Write, project: tuple[Path, str]) -> None:
    directory = project[0]
    path = write(DAEMON_CONFIG + SLOW_JOB.replace('every = "1h"', 'at = "2000-01-01T00:00:00Z"'))
    # `slow` must start at once: give it an `at` time just ahead of the daemon's start.
    soon = datetime.now().astimezone().replace(microsecond=0).timestamp() + 2
    at_text = datetime.fromtimestamp(soon).astimezone().isoformat()
    path.write_text(path.read_text().replace("2000-01-01T00:00:00Z", at_text))
    first = spawn(directory, "run", str(path))
    try:
        wait_for(lambda: (directory / "slow-started").exists(), first, 15)
        wait_for(lambda: lines(directory / "beats.txt") >= 2, first, 15)
        first.kill()  # SIGKILL: no chance to record anything
        first.wait(10)
    finally:
        first.kill()
        first.wait(10)
        for stream in (first.stdout, first.stderr):
            if stream is not None:
                stream.close()
    before = history(directory, path)
    assert [r["outcome"] for r in before if r["job"] == "slow"] == ["running"]
    ok_before = [r for r in before if r["job"] == "beat" and r["outcome"] == "ok"]
    assert len(ok_before) >= 2
    time.sleep(3.0)  # down long enough for `beat` to miss two or more fire times
    beats_before = lines(directory / "beats.txt")
    second = spawn(directory, "run", str(path))
    try:
        wait_for(lambda: lines(directory / "beats.txt") >= beats_before + 2, second, 15)
        second.send_signal(signal.SIGTERM)
        status, _, err = finish(second)
    finally:
        second.kill()
        second.wait(10)
    assert status == 0, err
    after = history(directory, path)
    (slow,) = [r for r in after if r["job"] == "slow"]
    assert slow["outcome"] == "interrupted"
    assert slow["instance"].endswith(f":{first.pid}")
    assert slow["finished"] is not None
    ids_after = {(r["job"], r["scheduled"], r["outcome"]) for r in after}
    assert {("beat", r["scheduled"], "ok") for r in ok_before} <= ids_after
    # The missed fire times were coalesced into one run, logged as such.
    assert "job 'beat'" in err and "passed unseen" in err and "misfire='coalesce'" in err
    second_beats = sorted(
        (r for r in after if r["job"] == "beat" and r["instance"].endswith(f":{second.pid}")),
        key=lambda r: r["scheduled"],
    )
    last_before = max(datetime.fromisoformat(r["scheduled"]) for r in ok_before)
    first_after = datetime.fromisoformat(second_beats[0]["scheduled"])
    assert (first_after - last_before).total_seconds() >= 3.0  # one run for the missed times
    scheduled = [r["scheduled"] for r in after if r["job"] == "beat"]
    assert len(scheduled) == len(set(scheduled))  # no fire time ran twice


def test_a_store_that_is_not_ours_is_an_error(
    write: Write, capsys: pytest.CaptureFixture[str], project: tuple[Path, str]
) -> None:
    path = write(DAEMON_CONFIG)
    (project[0] / "ms.db").write_bytes(b"not a database at all, " * 100)
    for argv in (["run", str(path)], ["history", str(path)], ["run-once", str(path), "beat"]):
        status, out, err = cli(capsys, *argv)
        assert (status, out) == (1, "")
        assert err.startswith(f"{path}: store ") and err.count("\n") == 1
    assert (project[0] / "ms.db").read_bytes() == b"not a database at all, " * 100


def test_a_job_removed_with_its_module_does_not_block_the_start(
    write: Write, capsys: pytest.CaptureFixture[str], project: tuple[Path, str]
) -> None:
    directory = project[0]
    (directory / "doomed_mod.py").write_text("def f():\n    return 1\n")
    path = write(DAEMON_CONFIG + '[[jobs]]\nid = "doomed"\nfunc = "doomed_mod:f"\nevery = "1h"\n')
    try:
        assert cli(capsys, "run-once", str(path), "doomed")[0] == 0
    finally:
        sys.modules.pop("doomed_mod", None)
    (directory / "doomed_mod.py").unlink()
    write(DAEMON_CONFIG)  # the job and its module are gone together
    # What `mainspring run` does before it starts: open the store and sync the file's jobs.
    sched = Scheduler(**load_config(path).scheduler_kwargs())
    try:
        sched.sync(load_config(path).job_specs())
        assert [job.id for job in sched.jobs()] == ["beat"]
    finally:
        sched.close()
