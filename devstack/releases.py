"""Releases: CHANGELOG.md's numbered entries, each naming the commit it was cut from, and the source
tree of a release taken from git by that commit (for `make upgrade-test`, which runs the previous
release's services beside the current tree's). Also the expand/contract rule for migrations: what a
migration added since the previous release may not do (docs/operations.md, "Expand and contract").
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .kafka import CACHE
from .stack import REPO, SERVICES

CHANGELOG = REPO / "CHANGELOG.md"
RELEASES_CACHE = CACHE / "releases"
# What a release's services run from: the shared library and the services (not docs, bench, tests).
SOURCE_PATHS = ("shared", "services")
# Whose pinned dependencies a release's services import (the harness itself runs on the current venv).
PACKAGES = ("shared", *(f"services/{name}" for name in SERVICES))
MIGRATION_FOLDERS = ("shared/townflow_shared/migrations",
                     *(f"services/{name}/{name}/migrations" for name in SERVICES))

_HEADING = re.compile(r"^## \[(?P<name>[^\]]+)\](?: - (?P<date>\d{4}-\d{2}-\d{2}))?\s*$")
_VERSION = re.compile(r"^v(\d+)\.(\d+)\.(\d+)$")
_COMMIT = re.compile(r"^Commit: `(?P<commit>[^`]*)`\s*$")
_FULL_COMMIT = re.compile(r"^[0-9a-f]{40}$")


class ChangelogError(ValueError):
    """CHANGELOG.md is not in the form the upgrade test and the release check read."""


class ReleaseError(RuntimeError):
    """A release that cannot be run from here; the message names the release, its commit and what to do."""


@dataclass(frozen=True)
class Release:
    version: str  # "v1.0.0"
    commit: str   # the full commit it was cut from, 40 hex digits
    date: str

    @property
    def number(self) -> tuple[int, int, int]:
        major, minor, patch = (int(part) for part in _VERSION.fullmatch(self.version).groups())  # type: ignore[union-attr]
        return major, minor, patch

    def __str__(self) -> str:
        return f"{self.version} (commit {self.commit})"


def parse_changelog(text: str) -> list[Release]:
    """The numbered releases, newest first, as written: `## [vX.Y.Z] - YYYY-MM-DD`, then a line
    ``Commit: `<40 hex digits>` `` in its section. `## [Unreleased]` may come first. Raises
    ChangelogError on anything else: a malformed heading or version, a missing or short commit, a
    version not below the one above it."""
    releases: list[Release] = []
    sections: list[tuple[str, str | None, list[str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            if not (heading := _HEADING.match(line)):
                raise ChangelogError(f"line {number}: a release heading is `## [vX.Y.Z] - YYYY-MM-DD`: {line!r}")
            sections.append((heading["name"], heading["date"], []))
        elif sections:
            sections[-1][2].append(line)
    for index, (name, date, lines) in enumerate(sections):
        if name == "Unreleased":
            if index != 0:
                raise ChangelogError("`## [Unreleased]` comes first, above the newest release")
            continue
        if not _VERSION.match(name):
            raise ChangelogError(f"{name!r} is not a version vMAJOR.MINOR.PATCH")
        if date is None:
            raise ChangelogError(f"{name} has no date (`## [{name}] - YYYY-MM-DD`)")
        commits = [m["commit"] for m in map(_COMMIT.match, lines) if m]
        if len(commits) != 1:
            raise ChangelogError(f"{name} names {len(commits)} commits; one line ``Commit: `<hash>` `` is wanted")
        if not _FULL_COMMIT.match(commits[0]):
            raise ChangelogError(f"{name}'s commit {commits[0]!r} is not a full commit (40 hex digits,"
                                 " `git rev-parse <short>` gives it)")
        release = Release(name, commits[0], date)
        if releases and release.number >= releases[-1].number:
            raise ChangelogError(f"{name} is listed below {releases[-1].version}: newest first, each version"
                                 " lower than the one above it")
        releases.append(release)
    return releases


def releases(path: Path = CHANGELOG) -> list[Release]:
    return parse_changelog(path.read_text(encoding="utf-8"))


def release(version: str | None = None, path: Path = CHANGELOG) -> Release:
    """The release `version` (`v1.0.0`), or the newest one."""
    listed = releases(path)
    if not listed:
        raise ReleaseError(f"{path.name} lists no release yet")
    if version is None:
        return listed[0]
    for entry in listed:
        if entry.version == version:
            return entry
    raise ReleaseError(f"{path.name} has no release {version} (it lists {', '.join(r.version for r in listed)})")


def _git(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, check=False)  # noqa: S607


def has_commit(commit: str) -> bool:
    return _git("cat-file", "-e", f"{commit}^{{commit}}").returncode == 0


def ensure_commit(entry: Release, fetch: bool = True) -> None:
    """The release's commit is in this clone, fetched from `origin` when missing (a shallow clone)
    and `fetch` allows; otherwise a ReleaseError saying so."""
    if has_commit(entry.commit):
        return
    remotes = _git("remote").stdout.decode().split()
    if fetch and "origin" in remotes:
        fetched = _git("fetch", "--quiet", "origin", entry.commit)
        if fetched.returncode == 0 and has_commit(entry.commit):
            return
        raise ReleaseError(f"release {entry}: not in this clone, and `git fetch origin {entry.commit}` failed:"
                           f" {fetched.stderr.decode(errors='replace').strip()}")
    shallow = _git("rev-parse", "--is-shallow-repository").stdout.decode().strip() == "true"
    raise ReleaseError(f"release {entry}: the commit is not in this clone{' (a shallow clone)' if shallow else ''}"
                       f" and {'there is no origin to fetch it from' if fetch else 'fetching is off'}:"
                       f" fetch it (`git fetch <remote> {entry.commit}`) or clone the whole history")


def show(commit: str, path: str) -> str | None:
    """A file's text at `commit`, None when it has none."""
    shown = _git("show", f"{commit}:{path}")
    return shown.stdout.decode() if shown.returncode == 0 else None


def pinned_dependencies(read: Callable[[str], str | None]) -> dict[str, list[str]]:
    """Each package's `[project] dependencies`, from `read(path)` of its pyproject.toml."""
    pins: dict[str, list[str]] = {}
    for package in PACKAGES:
        text = read(f"{package}/pyproject.toml")
        pins[package] = sorted(tomllib.loads(text)["project"].get("dependencies", [])) if text else []
    return pins


def dependency_differences(entry: Release) -> list[str]:
    """What the release's services pin that the current tree's virtualenv does not hold (empty: it
    runs there). A package only the current tree pins is no difference: the release never imports
    it (photos brought Pillow and boto3, which v1.1.0's code does not know); a pin the release has
    and the tree changed or dropped is."""
    def current(path: str) -> str | None:
        file = REPO / path
        return file.read_text(encoding="utf-8") if file.exists() else None

    theirs = pinned_dependencies(lambda path: show(entry.commit, path))
    ours = pinned_dependencies(current)
    differences = []
    held = {pin for package in PACKAGES for pin in ours[package]}  # one virtualenv holds every package's pins
    for package in PACKAGES:
        for pin in sorted(set(theirs[package]) - held):
            differences.append(f"{package}: {pin} (the current tree: {_same_name(pin, ours[package]) or 'none'})")
    return differences


def _same_name(pin: str, pins: list[str]) -> str | None:
    """The pin of the same package among `pins` (`pillow==13.0.0` for `pillow==12.0.0`)."""
    name = pin.split("==", 1)[0].split("[", 1)[0].strip().lower()
    return next((p for p in pins if p.split("==", 1)[0].split("[", 1)[0].strip().lower() == name), None)


def source_tree(entry: Release, cache: Path = RELEASES_CACHE) -> Path:
    """The release's `shared/` and `services/` at its commit, extracted once into the cache
    (`git archive`); its services run from there (devstack.stack.ServiceProcess.tree). Raises
    ReleaseError when the commit cannot be had, or when the release pins other packages than the
    current tree's virtualenv holds (running it would need a virtualenv of its own)."""
    ensure_commit(entry)
    if differences := dependency_differences(entry):
        raise ReleaseError(f"release {entry} pins other packages than the current tree ({'; '.join(differences)}):"
                           " its services would need a virtualenv of their own, which the upgrade test does not"
                           " build yet")
    target = cache / f"{entry.version}-{entry.commit}"
    if (target / ".complete").exists():
        return target
    cache.mkdir(parents=True, exist_ok=True)
    archive = _git("archive", "--format=tar", entry.commit, *SOURCE_PATHS)
    if archive.returncode != 0:
        raise ReleaseError(f"release {entry}: git archive failed: {archive.stderr.decode(errors='replace').strip()}")
    partial = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache))
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(partial, filter="data")
    (partial / ".complete").write_text(entry.commit + "\n")
    try:
        partial.rename(target)
    except OSError:  # another run extracted it meanwhile
        shutil.rmtree(partial, ignore_errors=True)
    return target


# The expand/contract rule: what a migration added since the previous release may not do while that
# release's replicas may still run beside it, unless the statement carries the contract marker.
CONTRACT_MARKER = "-- contract:"
FORBIDDEN: dict[str, re.Pattern[str]] = {
    # Any DROP but DROP NOT NULL (which only loosens): a table, a column, an index or a default the
    # previous release's statements (its ON CONFLICT targets, its inserts) may still rely on.
    "drops what the previous release may use": re.compile(r"\bDROP\s+(?!NOT\s+NULL\b)\w+"),
    "renames": re.compile(r"\bRENAME\b"),
    "changes a column's type": re.compile(r"\bALTER\s+(?:COLUMN\s+)?(?:\"[^\"]+\"|\w+)\s+(?:SET\s+DATA\s+)?TYPE\b"),
    "makes a column NOT NULL": re.compile(r"\bSET\s+NOT\s+NULL\b"),
}
_ADD_CLAUSE = re.compile(r"^\s*ADD\s+(?!CONSTRAINT\b|PRIMARY\b|UNIQUE\b|CHECK\b|FOREIGN\b|EXCLUDE\b)")


def statements(sql: str) -> Iterator[tuple[str, str]]:
    """Each statement of a migration as (its text with comments, its code without them), split at
    `;` outside comments, quoted strings and dollar-quoted bodies."""
    start, code, i, n = 0, [], 0, len(sql)
    while i < n:
        char = sql[i]
        if sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end
            continue
        if sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
            code.append(" ")
            continue
        if char == "'":
            end = i + 1
            while (end := sql.find("'", end)) >= 0 and sql.startswith("''", end):
                end += 2
            end = n if end < 0 else end + 1
            code.append(sql[i:end])
            i = end
            continue
        if char == "$" and (tag := re.match(r"\$(?:[A-Za-z_]\w*)?\$", sql[i:])):
            end = sql.find(tag.group(), i + len(tag.group()))
            end = n if end < 0 else end + len(tag.group())
            code.append(sql[i:end])
            i = end
            continue
        if char == ";":
            yield sql[start:i + 1], "".join(code)
            start, code = i + 1, []
        else:
            code.append(char)
        i += 1
    if "".join(code).strip():
        yield sql[start:], "".join(code)


def _top_level_clauses(code: str) -> list[str]:
    clauses: list[str] = []
    depth, current = 0, list[str]()
    for char in code:
        depth += (char == "(") - (char == ")")
        if char == "," and depth == 0:
            clauses.append("".join(current))
            current = []
        else:
            current.append(char)
    clauses.append("".join(current))
    return clauses


def contract_steps(sql: str) -> list[str]:
    """The statements of a migration that would break the previous release's code, each as
    "<what it does>: <statement>", leaving out those marked `-- contract: <why it is safe now>`."""
    found = []
    for text, code in statements(sql):
        if CONTRACT_MARKER in text:
            continue
        flat = " ".join(code.split())
        upper = flat.upper()
        reasons = [reason for reason, pattern in FORBIDDEN.items() if pattern.search(upper)]
        if re.match(r"\s*ALTER\s+TABLE\b", upper):
            for clause in _top_level_clauses(upper):
                clause = re.sub(r"^\s*ALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?\S+", "", clause)
                if _ADD_CLAUSE.match(clause) and re.search(r"\bNOT\s+NULL\b", clause) \
                        and not re.search(r"\b(?:DEFAULT|GENERATED)\b", clause):
                    reasons.append("adds a NOT NULL column without a default")
        found += [f"{reason}: {flat[:200]}" for reason in reasons]
    return found


def migrations_at(commit: str) -> set[str]:
    """The migration files (`<folder>/<NNN_name>.sql`) in the tree of `commit`."""
    listed = _git("ls-tree", "--name-only", commit, *(f"{folder}/" for folder in MIGRATION_FOLDERS))
    if listed.returncode != 0:
        raise ReleaseError(f"git ls-tree {commit}: {listed.stderr.decode(errors='replace').strip()}")
    return {line for line in listed.stdout.decode().splitlines() if line.endswith(".sql")}


def migrations_since(entry: Release) -> list[Path]:
    """The current tree's migration files that the release's tree does not have."""
    ensure_commit(entry, fetch=False)
    theirs = migrations_at(entry.commit)
    ours = [path for folder in MIGRATION_FOLDERS for path in sorted((REPO / folder).glob("*.sql"))]
    return [path for path in ours if path.relative_to(REPO).as_posix() not in theirs]
