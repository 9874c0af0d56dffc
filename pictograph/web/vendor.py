"""Refreshes the third-party files in static/vendor/ from the npm registry.

    python pictograph/web/vendor.py

Run by hand when a version in vendor.json changes, then commit the files: the wheel ships
them, so the web app and GraphiQL load nothing from other hosts and work offline. Each
package comes as `npm pack` makes it (the registry's tarball, checked against the
integrity the registry publishes); vendor.json records each file's SHA-384, which
tests/web/test_vendored.py checks against what is committed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import tarfile
import tempfile
from pathlib import Path

HERE = Path(__file__).parent
MANIFEST = HERE / "vendor.json"


def integrity(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def main() -> None:
    manifest = json.loads(MANIFEST.read_text())
    with tempfile.TemporaryDirectory() as scratch:
        for package in manifest["packages"]:
            spec = f"{package['name']}@{package['version']}"
            # npm checks the tarball against the registry's integrity as it downloads it.
            packed = json.loads(subprocess.run(  # noqa: S603 (our own manifest)
                ["npm", "pack", "--json", "--pack-destination", scratch, spec],  # noqa: S607
                check=True, capture_output=True, text=True, cwd=scratch).stdout)
            package["tarball_integrity"] = packed[0]["integrity"]
            with tarfile.open(Path(scratch) / packed[0]["filename"]) as tarball:
                for file in package["files"]:
                    member = tarball.extractfile(f"package/{file['from']}")
                    assert member is not None, f"{spec} has no {file['from']}"
                    data = member.read()
                    target = HERE / "static" / "vendor" / file["to"]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(data)
                    file["integrity"] = integrity(data)
                    print(f"{spec}: {file['from']} -> static/vendor/{file['to']}")
    MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
