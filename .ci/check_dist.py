"""Check the built wheel and sdist: metadata, and exactly the files each should carry.

python .ci/check_dist.py DIST_DIR   (exit 1 with one line per problem)
"""

from __future__ import annotations

import email.parser
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path


def main(dist: Path) -> list[str]:
    problems: list[str] = []
    project = tomllib.loads(Path("pyproject.toml").read_text())["project"]
    init = Path("aiofinaccess/__init__.py").read_text()
    project["version"] = re.search(r'^__version__ = "([^"]+)"$', init, re.MULTILINE)[1]
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    tracked = set(subprocess.check_output(["git", "ls-files"], text=True).split())
    package = {name for name in tracked if name.startswith("aiofinaccess/")}

    names = set(zipfile.ZipFile(wheel).namelist())
    info = f"aiofinaccess-{project['version']}.dist-info"
    code = {name for name in names if not name.startswith(info)}
    if code != package:  # the package, every tracked file of it, and nothing else
        problems += [f"wheel lacks {name}" for name in sorted(package - code)]
        problems += [f"wheel carries {name}" for name in sorted(code - package)]
    if "aiofinaccess/py.typed" not in names:
        problems.append("wheel lacks aiofinaccess/py.typed (PEP 561)")
    if f"{info}/licenses/LICENSE" not in names:
        problems.append("wheel lacks the license text")
    metadata = email.parser.Parser().parsestr(
        zipfile.ZipFile(wheel).read(f"{info}/METADATA").decode()
    )
    expected = {
        "Name": project["name"],
        "Version": project["version"],
        "Requires-Python": project["requires-python"],
        "License-Expression": project["license"],
    }
    for field, value in expected.items():
        if metadata[field] != value:
            problems.append(f"wheel METADATA {field}: {metadata[field]!r}, want {value!r}")
    requires = metadata.get_all("Requires-Dist") or []
    for dependency in project["dependencies"]:
        if not any(line.split(";")[0].strip() == dependency for line in requires):
            problems.append(f"wheel METADATA lacks Requires-Dist {dependency}")
    if metadata.get_content_type() != "text/markdown" and "markdown" not in str(
        metadata["Description-Content-Type"]
    ):
        problems.append("wheel METADATA: the README is not declared as Markdown")

    root = f"aiofinaccess-{project['version']}/"
    files = [m for m in tarfile.open(sdist).getmembers() if m.isfile()]
    members = {member.name.removeprefix(root) for member in files}
    untracked = members - tracked - {"PKG-INFO"}
    problems += [f"sdist carries untracked {name}" for name in sorted(untracked)]
    for needed in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml", "tests/conftest.py"):
        if needed not in members:
            problems.append(f"sdist lacks {needed}")
    return problems


if __name__ == "__main__":
    found = main(Path(sys.argv[1]))
    for problem in found:
        print(f"check_dist: {problem}", file=sys.stderr)
    sys.exit(1 if found else 0)
