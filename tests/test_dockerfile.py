"""The Dockerfile installs as `make` does, and its steps work (no Docker engine needed).

The Dockerfile's pip command is read from its RUN line and compared with the Makefile's;
then (slow) the image's build and run steps are replayed in a fresh virtual environment:
the build stage's files, its exact pip command, then `aftersale db upgrade` and
`aftersale rules check` with the runtime stage's files and environment.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from app.config import ROOT
from tests.smtp_sink import free_port

# pip options that change what is printed or cached, never what is installed.
OUTPUT_ONLY = {"--quiet", "-q", "--no-cache-dir", "--disable-pip-version-check"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


@dataclass(frozen=True)
class PipInstall:
    """A `<venv>/bin/python -m pip install ...` command, taken apart."""

    venv: str
    constraints: list[str]
    target: str
    editable: bool
    options: list[str]  # the rest, output-only flags left out


def dockerfile_stages(text: str) -> list[list[Instruction]]:
    """The instructions of each build stage, continuation lines joined."""
    joined = re.sub(r"\\\n", " ", text)
    stages: list[list[Instruction]] = []
    for line in joined.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        stages[-1].append(Instruction(keyword.upper(), arguments.strip()))
    return stages


def makefile_recipe(text: str, target: str) -> list[str]:
    """The recipe lines of `target`, with the file's simple `NAME := value` variables put in."""
    variables = dict(re.findall(r"^(\w+)\s*:?=\s*(.*?)\s*$", text, flags=re.MULTILINE))

    def expand(line: str) -> str:
        for _ in range(5):  # variables made of variables
            line = re.sub(r"\$\((\w+)\)", lambda match: variables.get(match[1], match[0]), line)
        return line

    lines = text.splitlines()
    start = next(index for index, line in enumerate(lines) if line.startswith(f"{target}:"))
    recipe = []
    for line in lines[start + 1 :]:
        if not line.startswith("\t"):
            break
        recipe.append(expand(line.strip()))
    return recipe


def parse_pip_install(command: str) -> PipInstall:
    words = shlex.split(command)
    assert words[1:4] == ["-m", "pip", "install"], command
    assert words[0].endswith("/bin/python"), command
    constraints, options, targets, editable = [], [], [], False
    rest = iter(words[4:])
    for word in rest:
        if word in ("-c", "--constraint"):
            constraints.append(next(rest))
        elif word in ("-e", "--editable"):
            editable = True
            targets.append(next(rest))
        elif word.startswith("-"):
            if word not in OUTPUT_ONLY:
                options.append(word)
        else:
            targets.append(word)
    assert len(targets) == 1, command
    return PipInstall(
        venv=words[0].removesuffix("/bin/python"),
        constraints=constraints,
        target=targets[0],
        editable=editable,
        options=options,
    )


def pip_installs(lines: list[str]) -> list[PipInstall]:
    return [parse_pip_install(line) for line in lines if "pip install" in line]


DOCKERFILE = (ROOT / "Dockerfile").read_text()
STAGES = dockerfile_stages(DOCKERFILE)
BUILD, RUNTIME = STAGES[0], STAGES[-1]


def docker_install() -> PipInstall:
    [install] = pip_installs([step.arguments for step in BUILD if step.keyword == "RUN"])
    return install


def make_install(target: str = "$(STAMP)") -> PipInstall:
    makefile = (ROOT / "Makefile").read_text()
    [install] = pip_installs(makefile_recipe(makefile, target))
    return install


def test_docker_installs_with_the_same_pip_command_and_constraints_as_make() -> None:
    docker, make = docker_install(), make_install()
    assert docker.constraints == make.constraints == ["constraints.txt"]
    # Nothing else that changes what gets installed, in either.
    assert docker.options == make.options == []
    # The same project, installed for running: in the image, and editable by `make run`;
    # `make test` adds the dev tools, with the same constraints.
    assert (docker.target, docker.editable) == (".", False)
    assert (make.target, make.editable) == (".", True)
    dev = make_install("$(DEV_STAMP)")
    assert (dev.target, dev.editable, dev.constraints) == (".[dev]", True, ["constraints.txt"])
    # Into a virtual environment of its own, made with `python -m venv` before.
    assert any(step.arguments == f"python -m venv {docker.venv}" for step in BUILD)


def test_dockerfile_is_multi_stage_non_root_checked_and_migrates_first() -> None:
    assert len(STAGES) >= 2
    copied = " ".join(step.arguments for step in BUILD if step.keyword == "COPY")
    assert "constraints.txt" in copied and "pyproject.toml" in copied
    # The runtime stage takes the built environment, not the build tools.
    assert any(step.arguments.startswith("--from=build ") for step in RUNTIME)
    [user] = [step.arguments for step in RUNTIME if step.keyword == "USER"]
    assert user not in ("root", "0")
    [healthcheck] = [step.arguments for step in RUNTIME if step.keyword == "HEALTHCHECK"]
    options, _, probe = healthcheck.partition(" CMD ")
    # One probe for every role: /healthz of api and all, the heartbeat of a worker.
    assert probe.strip() == "aftersale health"
    # Docker's timeout leaves the probe its own 2 s HTTP timeout and its start-up.
    [timeout] = re.findall(r"--timeout=(\d+)s", options)
    assert int(timeout) >= 3
    [entrypoint] = [step.arguments for step in RUNTIME if step.keyword == "ENTRYPOINT"]
    assert re.search(r"aftersale db upgrade && exec aftersale", entrypoint)
    [command] = [step.arguments for step in RUNTIME if step.keyword == "CMD"]
    assert '"serve"' in command
    env = runtime_env(Path("/srv/aftersale"))
    assert env["AFTERSALE_ENV"] == "production"
    # Every address of the container, on the port PORT names (8000 by default): no --port on
    # the command line, where it would override what the platform sets.
    assert env["AFTERSALE_HOST"] == "0.0.0.0" and "--port" not in command
    # The worker writes its heartbeat into var/, the one folder its user owns.
    heartbeat = Path(env["AFTERSALE_WORKER_HEARTBEAT_FILE"])
    assert heartbeat.parent == Path("/srv/aftersale/var")
    assert "RUN mkdir -p var && chown aftersale var" in {
        f"{step.keyword} {step.arguments}" for step in RUNTIME
    }


def runtime_env(home: Path, venv: Path = Path("/srv/venv")) -> dict[str, str]:
    """The runtime stage's ENV, with its home folder and virtualenv moved."""
    env: dict[str, str] = {}
    for step in RUNTIME:
        if step.keyword == "ENV":
            for word in shlex.split(step.arguments):
                name, _, value = word.partition("=")
                value = value.replace("$PATH", os.environ.get("PATH", ""))
                value = value.replace("/srv/venv", str(venv))
                env[name] = value.replace("/srv/aftersale", str(home))
    return env


def copy_like_docker(stage: list[Instruction], destination: Path) -> None:
    """Do a stage's `COPY src... dest` from the build context (the repository)."""
    for step in stage:
        if step.keyword != "COPY" or step.arguments.startswith("--from="):
            continue
        *sources, target = shlex.split(step.arguments)
        into = destination / target
        for source in sources:
            origin = ROOT / source
            if origin.is_dir():  # its contents go into dest
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(origin, into, dirs_exist_ok=True, ignore=ignore)
            elif target.endswith("/"):
                into.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, into / origin.name)
            else:
                into.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(origin, into)


def pinned(constraints: Path) -> dict[str, str]:
    pins = {}
    for line in constraints.read_text().splitlines():
        name, _, version = line.partition("==")
        pins[re.sub(r"[-_.]+", "-", name).lower()] = version
    return pins


@pytest.mark.slow
@pytest.mark.skipif(
    bool(os.environ.get("AFTERSALE_TEST_DATABASE_URL")),
    reason="uses no test database: runs once, in the SQLite pass (.ci/run)",
)
def test_docker_steps_work_in_a_fresh_virtual_environment(tmp_path: Path) -> None:
    build, home = tmp_path / "build", tmp_path / "home"
    build.mkdir()
    home.mkdir()
    copy_like_docker(BUILD, build)
    install = docker_install()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    command = shlex.split(
        next(
            step.arguments
            for step in BUILD
            if step.keyword == "RUN" and "pip install" in step.arguments
        )
    )
    command[0] = str(venv / "bin" / "python")
    assert install.venv == "/srv/venv"
    installed = subprocess.run(command, cwd=build, capture_output=True, text=True, timeout=600)
    assert installed.returncode == 0, installed.stdout + installed.stderr

    # Every distribution installed is at the version constraints.txt pins.
    freeze = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "freeze", "--all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    pins = pinned(build / "constraints.txt")
    unpinned = []
    for line in freeze:
        name, _, version = line.split(" @ ")[0].partition("==")
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in ("aftersale", "pip", "setuptools", "wheel"):
            continue
        if pins.get(key) != version:
            unpinned.append(line)
    assert unpinned == [], f"installed but not pinned at that version: {unpinned}"

    copy_like_docker(RUNTIME, home)
    env = {key: value for key, value in os.environ.items() if not key.startswith("AFTERSALE_")}
    env.update(runtime_env(home, venv))
    # What production needs from whoever runs the image.
    env.update(
        AFTERSALE_SECRET_KEY="docker-test-secret-key-0123456789",
        AFTERSALE_WEBHOOK_SECRET="docker-test-webhook-secret-0123",
        AFTERSALE_SESSION_SECRET="docker-test-session-secret-0123",
        AFTERSALE_API_KEYS="docker-test-api-key-0123456789",
        AFTERSALE_UNSUBSCRIBE_SECRETS="docker-test-unsubscribe-0123456",
        AFTERSALE_TRACKING_SECRETS="docker-test-tracking-0123456789",
        AFTERSALE_SURVEY_SECRETS="docker-test-survey-0123456789",
        AFTERSALE_SMTP_URL="smtp://127.0.0.1:2525?starttls=off",
        AFTERSALE_FROM="Teeladen Anna <post@teeladen-anna.de>",
    )
    (home / "var").mkdir()
    aftersale = str(venv / "bin" / "aftersale")
    upgrade = subprocess.run(
        [aftersale, "db", "upgrade"], cwd=home, env=env, capture_output=True, text=True, timeout=120
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    with sqlite3.connect(home / "var" / "aftersale.db") as database:
        [(revision,)] = database.execute("SELECT version_num FROM alembic_version").fetchall()
    assert [revision] == ScriptDirectory.from_config(Config(str(ROOT / "alembic.ini"))).get_heads()
    check = subprocess.run(
        [aftersale, "rules", "check"],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.strip() == f"{home / 'rules'}: ok"
    # The HEALTHCHECK's command is installed and finds the image's heartbeat file (none yet).
    probe = shlex.split(next(step.arguments for step in RUNTIME if step.keyword == "HEALTHCHECK"))
    probe = probe[probe.index("CMD") + 1 :]
    nothing_there = f"http://127.0.0.1:{free_port()}/healthz"
    health = subprocess.run(
        [str(venv / "bin" / probe[0]), *probe[1:], "--url", nothing_there],
        cwd=home,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (health.returncode, health.stderr) == (
        1,
        f"unhealthy: no HTTP server on {nothing_there}, and worker heartbeat "
        f"{home / 'var' / 'worker.heartbeat'} does not exist\n",
    )
