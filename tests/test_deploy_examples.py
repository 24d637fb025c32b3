"""The deployment examples in deploy/ (docker-compose, Kubernetes, the image) run only commands
and flags that exist, use the packaged locustfile, hold no secret and expose no web UI.

There is no Docker and no cluster here: the files are parsed, not run.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

import loadkit
from loadkit.cli import build_parser, main
from loadkit.options import OPTIONS

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
COMPOSE = DEPLOY / "docker-compose.yml"
KUBERNETES = DEPLOY / "kubernetes"
YAML_FILES = sorted([*DEPLOY.rglob("*.yml"), *DEPLOY.rglob("*.yaml")])
LOCUST = str(Path(sys.executable).with_name("locust"))
OUR_IMAGE = "loadkit"
"""The name the manifests give deploy/Dockerfile's image (any tag, any registry prefix)."""

_FLAG = re.compile(r"^--?[A-Za-z]")
_KEY_LIKE = re.compile(r"(?<![A-Za-z0-9])tr_\w+")


# --- reading the files -------------------------------------------------------------------


def _load(path: Path) -> list[Any]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def _walk(node: Any) -> Iterator[Any]:
    """Every mapping and list in a parsed YAML document, depth first."""
    yield node
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) \
        else ()
    for child in children:
        yield from _walk(child)


def _instructions() -> list[tuple[str, str]]:
    """deploy/Dockerfile's instructions as (KEYWORD, rest), continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in lines if line and not line.startswith("#")]


def _entrypoint() -> list[str]:
    (exec_form,) = [rest for kw, rest in _instructions() if kw == "ENTRYPOINT"]
    return json.loads(exec_form)


def _shell_commands(script: str) -> list[list[str]]:
    """The simple commands of a shell line: each ``$(...)`` is a command of its own (and one
    word where it stands); the rest is split at ``&&``, ``||``, ``;`` and ``|``."""
    commands: list[list[str]] = []

    def substitute(match: re.Match[str]) -> str:
        commands.extend(_shell_commands(match.group(1)))
        return "SUBSTITUTED"

    while "$(" in script:
        script = re.sub(r"\$\(([^()]*)\)", substitute, script)
    for part in re.split(r"&&|\|\||;|\|", script):
        argv = shlex.split(part)
        if argv:
            commands.append(argv)
    return commands


def _as_argv(value: Any) -> list[str]:
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value or ()]


def _image_ours(image: str) -> bool:
    return image.rsplit("/", 1)[-1].split(":", 1)[0] == OUR_IMAGE


def _containers(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """(name, mapping) of every compose service or every mapping of a Kubernetes manifest."""
    for doc in _load(path):
        if _is_compose(path):
            yield from doc["services"].items()
        else:
            yield from ((str(n.get("name", "")), n) for n in _walk(doc) if isinstance(n, dict))


def _is_compose(path: Path) -> bool:
    return path.name.startswith(("docker-compose", "compose"))


def manifest_commands() -> list[tuple[str, list[str]]]:
    """Every command line the YAML files run, as (where, argv): a container's entrypoint (the
    image's when not overridden) followed by its arguments."""
    found = []
    for path in YAML_FILES:
        head_key, args_key = ("entrypoint", "command") if _is_compose(path) else \
            ("command", "args")
        for name, node in _containers(path):
            where = f"{path.relative_to(REPO)}: {name}"
            if "image" in node:
                if head_key in node:
                    head = _as_argv(node[head_key])
                else:
                    assert _image_ours(node["image"]), f"{where}: unknown entrypoint"
                    head = _entrypoint()
                found.append((where, head + _as_argv(node.get(args_key))))
            elif head_key in node:  # e.g. an exec probe
                found.append((where, _as_argv(node[head_key])))
    return found


def dockerfile_commands() -> list[tuple[str, list[str]]]:
    """Every command the Dockerfile runs at build time and its entrypoint, as (where, argv)."""
    found = [("Dockerfile ENTRYPOINT", _entrypoint())]
    for kw, rest in _instructions():
        if kw == "RUN":
            found += [("Dockerfile RUN", argv) for argv in _shell_commands(rest)]
    return found


# --- what exists -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locust_flags() -> set[str]:
    """Every flag of locust's own ``--help`` output plus every loadkit option's flag."""
    out = subprocess.run([LOCUST, "--help"], capture_output=True, text=True, check=True,
                         timeout=120, cwd=DEPLOY,
                         env={k: v for k, v in os.environ.items()
                              if not k.startswith("LOCUST_")}).stdout
    declared = set()
    for line in out.splitlines():
        if re.match(r"\s{2,}-", line):
            head = re.split(r"\s{2,}", line.strip())[0]
            declared |= set(re.findall(r"(?<![\w<-])--?[A-Za-z][\w-]*", head))
    assert {"--master", "--worker", "--master-host", "-f", "--web-host"} <= declared
    return declared | {o.flag for o in OPTIONS}


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def problems(argv: list[str], locust_flags: set[str]) -> list[str]:
    """What in one command line does not exist: a flag of locust / loadkit, a subcommand."""
    program = Path(argv[0]).name
    words = [w.split("=", 1)[0] for w in argv[1:]]
    if program == "locust":
        return [f"locust has no flag {w}" for w in words
                if _FLAG.match(w) and w not in locust_flags]
    if program == "loadkit":
        subcommands = _subcommands()
        if not words or words[0] not in subcommands:
            return [f"loadkit has no subcommand {words[:1]}"]
        known = subcommands[words[0]]._option_string_actions
        return [f"loadkit {words[0]} has no flag {w}" for w in words[1:]
                if _FLAG.match(w) and w not in known]
    return []


def _locustfile_of(argv: list[str]) -> str | None:
    for i, word in enumerate(argv):
        if word in ("-f", "--locustfile"):
            return argv[i + 1]
        if word.startswith("--locustfile="):
            return word.split("=", 1)[1]
    return None


# --- the tests ---------------------------------------------------------------------------


def test_every_yaml_file_parses():
    """Every YAML file in deploy/ parses, the compose file and the Kubernetes manifests too."""
    names = {p.relative_to(DEPLOY).as_posix() for p in YAML_FILES}
    assert {"docker-compose.yml", "kubernetes/master-deployment.yaml",
            "kubernetes/master-service.yaml", "kubernetes/worker-deployment.yaml"} <= names
    for path in YAML_FILES:
        assert _load(path), path


def test_the_commands_are_found():
    """The command lines found are the master's and the worker's in both set-ups, all locust."""
    commands = manifest_commands()
    assert all(Path(argv[0]).name == "locust" for _, argv in commands), commands
    by_file: dict[str, list[list[str]]] = {}
    for where, argv in commands:
        by_file.setdefault(where.split(":")[0], []).append(argv)
    compose = by_file["deploy/docker-compose.yml"]
    kube = by_file["deploy/kubernetes/master-deployment.yaml"] + \
        by_file["deploy/kubernetes/worker-deployment.yaml"]
    for argvs in (compose, kube):
        assert sorted("--master" in a for a in argvs) == [False, True]
        assert sorted("--worker" in a for a in argvs) == [False, True]
    assert ["loadkit", "locustfile"] in [argv for _, argv in dockerfile_commands()]


def test_every_flag_and_subcommand_exists(locust_flags):
    """Every locust / loadkit flag and loadkit subcommand the files run exists."""
    found = [f"{where}: {p}" for where, argv in manifest_commands() + dockerfile_commands()
             for p in problems(argv, locust_flags)]
    assert found == []


def test_a_misspelled_flag_is_caught(locust_flags):
    """The check itself fails a misspelled flag or subcommand."""
    assert problems(["locust", "--master", "--server-bnd", "x"], locust_flags) == \
        ["locust has no flag --server-bnd"]
    assert problems(["locust", "--web-hots=0.0.0.0"], locust_flags) == \
        ["locust has no flag --web-hots"]
    assert problems(["loadkit", "locustfiles"], locust_flags) == \
        ["loadkit has no subcommand ['locustfiles']"]
    assert problems(["loadkit", "report", "--opne"], locust_flags) == \
        ["loadkit report has no flag --opne"]


def test_the_locustfile_is_the_packaged_one(capsys):
    """Every locust command runs the link the image makes to what ``loadkit locustfile`` prints,
    a file of the installed package."""
    (link,) = [argv[-1] for _, argv in dockerfile_commands()
               if argv[:2] == ["ln", "-s"] and argv[2] == "SUBSTITUTED"]
    paths = {_locustfile_of(argv) for _, argv in manifest_commands()}
    assert paths == {link}
    assert main(["locustfile"]) == 0
    printed = Path(capsys.readouterr().out.strip())
    package = Path(loadkit.__file__).resolve().parent
    assert printed == package / "locustfiles" / "stream.py"
    assert printed.is_file()
    copied = [rest.split() for kw, rest in _instructions() if kw == "COPY"]
    assert ["loadkit", "/src/loadkit"] in copied


def test_no_secret_in_any_file():
    """No file in deploy/ holds anything that looks like a Trigger.dev key, nor a Secret's data."""
    for path in sorted(p for p in DEPLOY.rglob("*") if p.is_file()):
        assert not _KEY_LIKE.findall(path.read_text()), path
    for path in YAML_FILES:
        for doc in _load(path):
            assert not (doc.get("kind") == "Secret" and ("data" in doc or "stringData" in doc))
    assert not [rest for kw, rest in _instructions()
                if kw in ("ENV", "ARG") and "TRIGGER_" in rest]


def test_the_key_comes_only_from_the_environment_or_a_secret():
    """TRIGGER_SECRET_KEY is passed through from the environment (compose) or read from a
    Secret (Kubernetes), never given a value; the file the comments name for it is ignored."""
    seen = 0
    for path in YAML_FILES:
        compose = _is_compose(path)
        for doc in _load(path):
            for node in _walk(doc):
                if compose and isinstance(node, dict) and "environment" in node:
                    env = node["environment"]
                    entries = env.items() if isinstance(env, dict) else \
                        [(e.partition("=")[0], e if "=" in e else None) for e in env]
                    for name, value in entries:
                        if name.startswith("TRIGGER_"):
                            assert value is None, f"{path}: {name} has a value"
                            seen += 1
                elif isinstance(node, dict) and str(node.get("name", "")).startswith(
                        "TRIGGER_") and ("value" in node or "valueFrom" in node):
                    assert "value" not in node, f"{path}: {node['name']} has a value"
                    assert "secretKeyRef" in node["valueFrom"], node
                    seen += 1
                if compose and isinstance(node, dict) and "env_file" in node:
                    files = node["env_file"]
                    for entry in [files] if isinstance(files, str) else files:
                        _assert_ignored(entry if isinstance(entry, str) else entry["path"])
    assert seen >= 6  # compose: master 2, worker 1; kubernetes: master 2, worker 1
    _assert_ignored(".env")


def _assert_ignored(name: str) -> None:
    patterns = [line.strip() for line in (DEPLOY / ".gitignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
    assert any(fnmatch.fnmatch(name, p) for p in patterns), f"deploy/{name} is not ignored"


def test_the_web_ui_is_not_exposed():
    """Compose publishes the web UI on the host's loopback only, and Kubernetes keeps it out of
    every Service (the master's UI stays on the pod's loopback, for kubectl port-forward)."""
    (compose,) = _load(COMPOSE)
    services = compose["services"]
    for name, service in services.items():
        for port in service.get("ports", ()):
            assert str(port).startswith("127.0.0.1:"), (name, port)
    worker = services["worker"]
    assert "container_name" not in worker  # --scale worker=N
    assert "ports" not in worker
    for path in KUBERNETES.glob("*.yaml"):
        for doc in _load(path):
            assert doc.get("kind") not in ("Ingress", "Route"), path
            if doc.get("kind") == "Service":
                assert doc["spec"].get("type", "ClusterIP") == "ClusterIP", path
                assert [p["port"] for p in doc["spec"]["ports"]] == [5557], path
    master = [argv for where, argv in manifest_commands()
              if "kubernetes" in where and "--master" in argv]
    assert master
    assert all("--web-host" not in argv for argv in master)


def test_kustomization_applies_every_manifest():
    """``kubectl apply -k deploy/kubernetes`` applies every manifest there and nothing missing."""
    (kustomization,) = _load(KUBERNETES / "kustomization.yaml")
    manifests = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == manifests
