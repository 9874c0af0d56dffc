from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_docker_compose_file_follows_the_compose_spec() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(ROOT / "docker-compose.yml")],
        capture_output=True, text=True, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_ships_no_secret_key() -> None:
    """Anyone who knew a key written here could forge media URLs: the file asks the
    operator for one and refuses to start without it."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    ours = {name: service for name, service in compose["services"].items()
            if service.get("build") == "."}
    assert set(ours) == {"migrate", "api", "worker"}
    for name, service in ours.items():
        key = service["environment"]["PICTOGRAPH_SECRET_KEY"]
        assert key.startswith("${PICTOGRAPH_SECRET_KEY:?"), name


def test_every_subpackage_is_packaged() -> None:
    """A package missing from pyproject's list breaks a non-editable install only."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
                 ["packages"])
    found = {".".join(path.parent.relative_to(ROOT).parts)
             for path in (ROOT / "pictograph").rglob("__init__.py")}
    assert found <= listed, found - listed
