"""The app image installs exactly uv.lock's runtime set: checked by reading the Dockerfile (no engine)."""

from __future__ import annotations

import ast
import fnmatch
import importlib.metadata
import re
import shlex
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
PROJECT = "sales-agent-observability"


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages with their instructions (continuation lines joined)."""
    logical = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical.splitlines():
        if not line.strip():
            continue
        instruction, _, rest = line.strip().partition(" ")
        instruction, rest = instruction.upper(), rest.strip()
        if instruction == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif instruction == "FROM":
            words = rest.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            stages.append(Stage(image, words[2] if len(words) == 3 and words[1].upper() == "AS" else None))
        else:
            stages[-1].instructions.append((instruction, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return parse_dockerfile(DOCKERFILE.read_text())[1]


def locked_runtime_packages() -> set[str]:
    """Names uv.lock installs for the project without its dev group: the closure of its dependencies."""
    lock = tomllib.loads((REPO / "uv.lock").read_text())
    packages = {package["name"]: package for package in lock["package"]}
    wanted = [(dep["name"], tuple(dep.get("extra", ()))) for dep in packages[PROJECT]["dependencies"]]
    seen: set[str] = set()
    while wanted:
        name, extras = wanted.pop()
        package = packages[name]
        deps = list(package.get("dependencies", []))
        for extra in extras:
            deps += package.get("optional-dependencies", {}).get(extra, [])
        if name in seen and not extras:
            continue
        seen.add(name)
        wanted += [(dep["name"], tuple(dep.get("extra", ()))) for dep in deps if dep["name"] not in seen]
    return seen


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_base_image_is_pinned(stages):
    names = {stage.name for stage in stages if stage.name}
    for stage in stages:
        if stage.image in names:
            continue
        _, _, tag = stage.image.rpartition(":")
        assert re.fullmatch(r"\d+\.\d+\.\d+[\w.-]*", tag), (
            f"base image {stage.image!r} is not pinned to a release"
        )


def test_dependencies_come_only_from_the_lock_with_uv_sync_frozen_no_dev(stages):
    runs = [args for stage in stages for instruction, args in stage.instructions if instruction == "RUN"]
    syncs = [run for run in runs if "uv sync" in run]
    assert syncs, "the image must install with `uv sync`"
    for run in syncs:
        argv = shlex.split(run)
        assert "--frozen" in argv, f"{run!r}: --frozen installs the lock as is (no re-resolution)"
        assert "--no-dev" in argv, f"{run!r}: the dev group stays out of the image"
        assert not {"--upgrade", "-U", "--upgrade-package", "-P", "--all-extras"} & set(argv), run
    for run in runs:
        assert not re.search(r"\bpip\b.*\binstall\b|\buv\s+(pip|add|lock)\b|\bpoetry\b|\bconda\b", run), (
            f"{run!r} installs packages outside the lock"
        )


def test_the_lock_and_project_metadata_are_copied_before_the_first_sync(stages):
    build = next(
        stage for stage in stages if any("uv sync" in a for i, a in stage.instructions if i == "RUN")
    )
    copied: set[str] = set()
    for instruction, args in build.instructions:
        if instruction == "COPY" and not args.startswith("--from"):
            copied |= set(args.split()[:-1])
        if instruction == "RUN" and "uv sync" in args:
            assert {"pyproject.toml", "uv.lock"} <= copied, (
                "uv sync --frozen needs pyproject.toml and uv.lock"
            )
            break


def test_the_projects_packages_are_all_copied(stages):
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {
        source.rstrip("/")
        for stage in stages
        for instruction, args in stage.instructions
        if instruction == "COPY" and not args.startswith("--from")
        for source in [word for word in args.split() if not word.startswith("--")][:-1]
    }
    missing = set(packages) - copied
    assert not missing, f"packages of the wheel not copied into the image: {missing}"
    assert "config" in copied, "config/tenants.yaml is read at run time"


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or any of its parents."""
    excluded = False
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        body = body.rstrip("/")
        regex = fnmatch.translate(body).replace(".*", "[^/]*").replace("[^/]*[^/]*", ".*")
        if body.startswith("**/"):
            regex = r"(?:.*/)?" + fnmatch.translate(body[3:])
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negate
    return excluded


def test_copy_sources_exist_and_are_not_dockerignored(stages):
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    sources = [
        word
        for stage in stages
        for instruction, args in stage.instructions
        if instruction == "COPY" and not args.startswith("--from")
        for word in [w for w in args.split() if not w.startswith("--")][:-1]
    ]
    assert sources
    for source in sources:
        assert (REPO / source).exists(), f"COPY {source}: no such path"
        assert not dockerignore_excludes(source.rstrip("/"), patterns), (
            f"COPY {source} is excluded by .dockerignore"
        )
    for secret_or_bulk in (".env", ".venv", ".git", "tests", "data/crm.sqlite3"):
        assert dockerignore_excludes(secret_or_bulk, patterns), (
            f"{secret_or_bulk} must stay out of the context"
        )


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck(stages):
    final = stages[-1]
    users = [args for instruction, args in final.instructions if instruction == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0"), "the final stage must switch to a non-root user"
    healthchecks = [args for instruction, args in final.instructions if instruction == "HEALTHCHECK"]
    assert healthchecks and "healthcheck.py" in healthchecks[-1]
    assert (REPO / "deploy/docker/healthcheck.py").is_file()
    entrypoint = next(args for instruction, args in final.instructions if instruction == "ENTRYPOINT")
    assert "sales-agent" in entrypoint


def third_party_imports() -> dict[str, set[str]]:
    """Top-level modules imported by the code the image runs, that are not the project's or stdlib."""
    own = {"agent", "telemetry", "local_services"}
    found: dict[str, set[str]] = {}
    for package in sorted(own):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, ast.Import):
                    modules = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules = [node.module]
                else:
                    continue
                for module in modules:
                    top = module.split(".")[0]
                    if top not in own and top not in sys.stdlib_module_names and top != "__future__":
                        found.setdefault(top, set()).add(str(path.relative_to(REPO)))
    return found


def test_what_the_code_imports_is_in_the_locked_runtime_set():
    """`--no-dev` must not drop anything the running code needs (a dev-only package imported at run time)."""
    runtime = {normalize(name) for name in locked_runtime_packages()}
    distributions = importlib.metadata.packages_distributions()
    problems = []
    for module, files in sorted(third_party_imports().items()):
        owners = {normalize(d) for d in distributions.get(module, [])}
        if not owners:
            problems.append(f"{module} (imported by {sorted(files)[0]}) is not installed at all")
        elif not owners & runtime:
            problems.append(
                f"{module} (from {sorted(owners)}) is not in uv.lock's runtime set: {sorted(files)}"
            )
    assert not problems, "\n".join(problems)


def test_locked_runtime_set_excludes_the_dev_group():
    runtime = locked_runtime_packages()
    assert {"litellm", "livekit-agents", "opentelemetry-sdk"} <= runtime
    assert "pytest" not in runtime and "ruff" not in runtime
