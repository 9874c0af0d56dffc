"""Mutation run of the privacy code (issue 21), on cosmic-ray.

    python mutation/run.py                  # every target, one mutant at a time
    python mutation/run.py visibility media # some of them (names: --list)
    python mutation/run.py --report         # the last results again, without running

Each target is one file and the narrow tests that exercise it, on the embedded backend
(`-k "not services"`): a mutant either changes what those tests see or it survives.
The run works on a copy of the tree under mutation/.work/ (mutants are written into
files there, never into the checkout), with the copy first on PYTHONPATH, so server
processes that tests start import the mutant too.

A survivor is either killed by a new test or listed in mutation/equivalent.md with why it
cannot change what anyone sees; the run exits 1 while any survivor is neither.
"""

from __future__ import annotations

import argparse
import ast
import fcntl
import os
import re
import shutil
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from cosmic_ray.work_db import WorkDB, use_db
from cosmic_ray.work_item import TestOutcome, WorkerOutcome, WorkItem, WorkResult

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "mutation" / ".work"
EQUIVALENT = ROOT / "mutation" / "equivalent.md"


@dataclass(frozen=True)
class Target:
    module: str
    tests: tuple[str, ...]  # the fastest and most telling first: pytest stops at a failure
    timeout: float = 120.0  # a mutant that hangs (a loop that never ends) counts as killed
    # Functions left out, with why: code that runs only after the gate said yes.
    after_the_gate: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {
    "visibility": Target("pictograph/visibility.py", (
        "tests/access", "tests/follows/test_visibility_matrix.py",
        "tests/feed/test_home_feed.py",
        "tests/live/test_removals.py")),
    "effects": Target("pictograph/effects.py", (
        "tests/access/test_revocation_fences.py", "tests/http/test_response_cache.py",
        "tests/cache/test_response_hits.py", "tests/live/test_removals.py",
        "tests/follows/test_graph_cache.py",
        "tests/feed/test_home_feed.py", "tests/access/test_effects_mutation_kills.py")),
    "media": Target("pictograph/http/media.py", (
        "tests/media/test_mutation_kills.py", "tests/media/test_photos.py",
        "tests/media/test_outages.py", "tests/access",
        "tests/cache/test_rate_limits.py::test_media_requests_are_limited_per_viewer_with_429"),
        # How the bytes of an allowed photo travel (S3 streaming, ranges, a 429): they
        # run only once the signature, the expiry and visibility.py have said yes.
        after_the_gate=("_stream_from_s3", "chunks", "too_many")),
    "live": Target("pictograph/resolvers/live.py", (
        "tests/live/test_mutation_kills.py", "tests/live/test_removals.py",
        "tests/live/test_live_completeness.py", "tests/live/test_socket_tokens.py",
        "tests/access/test_mutation_kills.py", "tests/live/test_socket_operations.py")),
    "live-publish": Target("pictograph/live/publish.py", (
        "tests/live/test_removals.py", "tests/live/test_live_completeness.py",
        "tests/live/test_socket_tokens.py")),
    # The response cache's versions and fences.
    "responses": Target("pictograph/cache/responses.py", (
        "tests/http/test_response_cache_mutation_kills.py",
        # What a lookup costs and reads (one MGET; the guessed epochs, bounded; no
        # MULTI/EXEC), and the cluster's paths on one server: the copies a process holds
        # and the wait a revocation owes them (issue 23's leases).
        "tests/cache/test_response_lookups.py", "tests/cache/test_epoch_leases.py",
        # The shown epochs and the feed version (issue 22): what each change ends.
        "tests/http/test_response_cache_invalidation.py",
        "tests/http/test_response_cache.py", "tests/cache/test_response_hits.py",
        "tests/access/test_revocation_fences.py", "tests/cache/test_reads.py",
        # The rewritten cache's lifetimes, bound and clock (the races need PostgreSQL).
        "tests/http/test_response_cache_lifetimes.py",
        "tests/http/test_response_cache_requests.py",
        # Cached answers against fresh execution, over generated histories (about 15 s).
        "tests/http/test_response_cache_differential.py")),
    "versioned": Target("pictograph/cache/versioned.py", (
        "tests/cache/test_versions_mutation_kills.py",
        "tests/access/test_revocation_fences.py", "tests/http/test_response_cache.py",
        "tests/cache/test_response_hits.py", "tests/follows/test_graph_cache.py",
        # queue_reads, under Versions.read. (A cache that never fills shows nothing stale:
        # test_versions_mutation_kills.py, first, is what catches it.)
        "tests/cache/test_reads.py")),
}

# Replacements left out, to keep a run within minutes on a shared machine (one mutant is
# a pytest start of about 8 s). Arithmetic put where a set union or an integer operation
# stood raises TypeError or gives a nonsense number on its first run, which the kept
# replacements (+, -, |, &, ^) at the same place stand for. For == and != only the
# sufficient set of relational replacements is kept (Kaminski, Ammann and Offutt, "Better
# predicate testing", 2011): == by != , <= and >=; != by == , < and >; a test that kills
# those kills the rest. `is` for == is identity on ints and enum members: snowflake ids
# are never interned and enum members are singletons. --all-operators runs them all.
EXCLUDED_OPERATORS = re.compile(
    r"ReplaceBinaryOperator_\w+_(Mul|Div|FloorDiv|Mod|Pow|RShift|LShift)$"
    r"|ReplaceComparisonOperator_Eq_(Lt|Gt|Is|IsNot)$"
    r"|ReplaceComparisonOperator_NotEq_(LtE|GtE|Is|IsNot)$")
SKIPPED_ANNOTATION = "in an annotation: never evaluated (from __future__ import annotations)"
SKIPPED_OPERATOR = "operator left out (see EXCLUDED_OPERATORS)"
SKIPPED_PRAGMA = "line marked '# pragma: no mutate'"
SKIPPED_AFTER_GATE = "runs only after the gate said yes (Target.after_the_gate)"


def copy_tree(destination: Path) -> None:
    """The checkout as it is now (uncommitted changes included), without ignored files."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],  # noqa: S607
        cwd=ROOT, check=True, capture_output=True).stdout.decode().split("\0")
    if destination.exists():
        shutil.rmtree(destination)
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file() and not name.startswith("mutation/"):
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def annotation_lines(source: str) -> set[tuple[int, int, int, int]]:
    spans = set()
    for node in ast.walk(ast.parse(source)):
        annotations = []
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            annotations.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns:
            annotations.append(node.returns)
        for annotation in annotations:
            spans.add((annotation.lineno, annotation.col_offset,
                       annotation.end_lineno or annotation.lineno,
                       annotation.end_col_offset or 0))
    return spans


def _inside(position: tuple[int, int], span: tuple[int, int, int, int]) -> bool:
    return span[:2] <= position <= span[2:]


def skip_reason(source: str, spans: set, operator: str, start: tuple[int, int],
                every_operator: bool) -> str | None:
    line = source.splitlines()[start[0] - 1]
    if "pragma: no mutate" in line:
        return SKIPPED_PRAGMA
    if any(_inside(start, span) for span in spans):
        return SKIPPED_ANNOTATION
    if not every_operator and EXCLUDED_OPERATORS.search(operator):
        return SKIPPED_OPERATOR
    return None


def filter_session(db: WorkDB, source: str, target: Target, every_operator: bool) -> None:
    """Marks the mutants left out as skipped, each with why; a resumed run leaves the
    results it has alone."""
    spans = annotation_lines(source)
    done = {job_id for job_id, _ in db.results}
    for item in db.work_items:
        if item.job_id in done:
            continue
        mutation = item.mutations[0]
        # cosmic-ray positions are (line, column) with 1-based lines, like ast's.
        reason = (SKIPPED_AFTER_GATE if mutation.definition_name in target.after_the_gate
                  else skip_reason(source, spans, mutation.operator_name,
                                   tuple(mutation.start_pos), every_operator))
        if reason:
            db.set_result(item.job_id, WorkResult(worker_outcome=WorkerOutcome.SKIPPED,
                                                  output=reason))


def config_text(target: Target) -> str:
    tests = " ".join(target.tests)
    command = (f"{sys.executable} -m pytest -x -q -p no:cacheprovider --no-header "
               f"-k 'not services' {tests}")
    return (f'[cosmic-ray]\nmodule-path = "{target.module}"\ntimeout = {target.timeout}\n'
            f'excluded-modules = []\ntest-command = "{command}"\n\n'
            '[cosmic-ray.distributor]\nname = "local"\n')


def forget_survivors(session: Path, target: Target) -> None:
    """Survivors that equivalent.md does not explain run again (against the tests as they
    are now) on the next --resume."""
    equivalents = known_equivalents()
    with use_db(str(session), WorkDB.Mode.open) as db:
        results = dict(db.results)
        again = [item.job_id for item in db.work_items
                 if (result := results.get(item.job_id)) is not None
                 and result.test_outcome == TestOutcome.SURVIVED
                 and _key(target, item, result) not in equivalents]
    with sqlite3.connect(session) as db:
        db.executemany("DELETE FROM work_results WHERE job_id = ?", [(j,) for j in again])


def _key(target: Target, item: WorkItem, result: WorkResult) -> tuple[str, str, str, str]:
    mutation = item.mutations[0]
    return (target.module, mutation.definition_name or "<module>",
            mutation.operator_name.split("/")[-1], mutated_line(result.diff or ""))


def run_target(name: str, target: Target, every_operator: bool, resume: bool) -> None:
    place = WORK / name
    place.mkdir(parents=True, exist_ok=True)
    with (place / "lock").open("w") as lock:
        # Two runs of one target would copy the tree under each other's mutant.
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            sys.exit(f"{name}: another run of this target is going on")
        _run_target(name, place, target, every_operator, resume)


def _run_target(name: str, place: Path, target: Target, every_operator: bool,
                resume: bool) -> None:
    tree = place / "tree"
    session = place / "session.sqlite"
    resume = resume and session.exists()
    source = (ROOT / target.module).read_text()
    if resume and (place / "module.py").read_text() != source:
        sys.exit(f"{name}: {target.module} changed since the last session; run without "
                 "--resume")
    # Afresh each time (a resumed run too: new tests join, and a run stopped mid-mutant
    # left its mutant in the copy).
    copy_tree(tree)
    # Only the tests that exist in this checkout (a target may name a later one).
    existing = tuple(t for t in target.tests if (tree / t.split("::")[0]).exists())
    target = Target(target.module, existing, target.timeout, target.after_the_gate)
    config = place / "config.toml"
    config.write_text(config_text(target))
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cosmic = [sys.executable, "-m", "cosmic_ray.cli"]
    if not resume:
        session.unlink(missing_ok=True)
        subprocess.run([*cosmic, "init", str(config), str(session)], cwd=tree,  # noqa: S603
                       env=env, check=True)
        (place / "module.py").write_text(source)  # what the session's positions refer to
    with use_db(str(session), WorkDB.Mode.open) as db:
        filter_session(db, source, target, every_operator)
    if not resume:
        baseline = subprocess.run([*cosmic, "baseline", str(config)], cwd=tree,  # noqa: S603
                                  env=env, check=False)
        if baseline.returncode != 0:
            sys.exit(f"{name}: the tests fail without any mutant; fix them first")
    subprocess.run([*cosmic, "exec", str(config), str(session)], cwd=tree, env=env,  # noqa: S603
                   check=True)


def known_equivalents() -> dict[tuple[str, str, str, str], str]:
    """(file, function, operator, the mutated line) -> why it cannot change what anyone
    sees. The function keeps one entry from covering a line alike elsewhere in the file."""
    # A mutant that removes a line (a decorator) adds none: its entry has an empty line.
    entry = re.compile(r"^- `([^`]+)` · `([^`]+)` · `([^`]+)` · `(.*)` — (.+)$")
    found = {}
    for line in EQUIVALENT.read_text().splitlines() if EQUIVALENT.exists() else []:
        match = entry.match(line)
        if match:
            found[match[1], match[2], match[3], match[4].strip()] = match[5]
    return found


def mutated_line(diff: str) -> str:
    return next((line[1:].strip() for line in diff.splitlines()
                 if line.startswith("+") and not line.startswith("+++")), "")


def report(name: str, target: Target, equivalents: dict) -> int:
    """Prints the target's score and its unexplained survivors; returns how many."""
    session = WORK / name / "session.sqlite"
    if not session.exists():
        print(f"{name}: not run")
        return 0
    counts = {"killed": 0, "survived": 0, "equivalent": 0, "skipped": 0, "pending": 0,
              "incompetent": 0}
    unexplained = []
    with use_db(str(session), WorkDB.Mode.open) as db:
        results = dict(db.results)
        for item in db.work_items:
            result = results.get(item.job_id)
            _, function, operator, _ = _key(target, item, result or WorkResult(
                worker_outcome=WorkerOutcome.SKIPPED))
            if result is None:
                counts["pending"] += 1
            elif result.worker_outcome == WorkerOutcome.SKIPPED:
                counts["skipped"] += 1
            elif result.test_outcome == TestOutcome.KILLED:
                counts["killed"] += 1
            elif result.test_outcome == TestOutcome.INCOMPETENT:
                counts["incompetent"] += 1  # the mutant does not even import: a kill
            else:
                line = mutated_line(result.diff or "")
                if _key(target, item, result) in equivalents:
                    counts["equivalent"] += 1
                else:
                    counts["survived"] += 1
                    row = item.mutations[0].start_pos[0]
                    unexplained.append(
                        f"  {target.module}:{row} {operator}\n"
                        f"  - `{target.module}` · `{function}` · `{operator}` · `{line}` — ?")
    run = counts["killed"] + counts["incompetent"] + counts["survived"] + counts["equivalent"]
    killed = counts["killed"] + counts["incompetent"]
    score = f"{killed}/{run - counts['equivalent']}" if run else "-"
    print(f"{name}: {score} killed ({counts['equivalent']} equivalent, "
          f"{counts['skipped']} skipped, {counts['pending']} not run, "
          f"{counts['survived']} unexplained survivors)")
    for line in unexplained:
        print(line)
    return counts["survived"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--report", action="store_true", help="report the last run only")
    parser.add_argument("--list", action="store_true", help="list the targets")
    parser.add_argument("--all-operators", action="store_true",
                        help="run the replacements EXCLUDED_OPERATORS leaves out too")
    parser.add_argument("--resume", action="store_true",
                        help="go on with the last session: only mutants without a result")
    parser.add_argument("--survivors", action="store_true",
                        help="with --resume: run the last session's survivors again")
    args = parser.parse_args()
    if args.list:
        for name, target in TARGETS.items():
            print(f"{name:14} {target.module:32} {' '.join(target.tests)}")
        return
    unknown = set(args.targets) - TARGETS.keys()
    if unknown:
        sys.exit(f"unknown targets: {', '.join(sorted(unknown))} (see --list)")
    names = args.targets or list(TARGETS)
    if not args.report:
        for name in names:
            if args.resume and args.survivors and (WORK / name / "session.sqlite").exists():
                forget_survivors(WORK / name / "session.sqlite", TARGETS[name])
            run_target(name, TARGETS[name], args.all_operators, args.resume)
    equivalents = known_equivalents()
    survivors = sum(report(name, TARGETS[name], equivalents) for name in names)
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
