"""Fuzz the whole HTTP API with schemathesis for longer than the test suite
does (tests/app/test_api_fuzz.py runs the same cases on a small budget).

    .venv/bin/python benchmarks/fuzz_api.py [--examples 1000] [--seed N]
        [--operation "GET /similar"]

Every operation of the OpenAPI document gets `--examples` cases, valid and
invalid requests mixed, with every schemathesis check enabled, against the
real app in-process over a fresh data directory with a few queued jobs (see
tests/app/api_fuzzing.py for the seeding of words, uploads, versions and job
ids, and why deletes cannot remove the served model). Prints, per
operation, the cases run, the statuses seen and the failures, then the
first failure of each operation in full; exits 1 if any operation failed.
"""

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.app.api_fuzzing import case_strategy, check_response, fuzz_target, operations


def fuzz_operation(
    schema: Any, method: str, path: str, examples: int, seed: int
) -> tuple[int, collections.Counter[int], str | None]:
    """Run `examples` cases on one operation; return (cases, statuses, failure)."""
    strategy = case_strategy(schema, method, path)
    statuses: collections.Counter[int] = collections.Counter()
    cases = 0

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        nonlocal cases
        cases += 1
        response = check_response(data.draw(strategy))
        statuses[response.status_code] += 1

    try:
        hypothesis_seed(seed)(run)()
    except Exception as exc:  # the failure is the result being reported
        return cases, statuses, f"{type(exc).__name__}: {exc}"
    return cases, statuses, None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=1000, help="cases per operation (1000)"
    )
    parser.add_argument("--seed", type=int, default=0, help="Hypothesis seed (0)")
    parser.add_argument(
        "--operation",
        action="append",
        default=None,
        help='only this operation, e.g. "GET /similar" (repeatable)',
    )
    args = parser.parse_args()
    chosen = operations()
    if args.operation:
        chosen = [op for op in chosen if " ".join(op) in args.operation]
    failures: dict[str, str] = {}
    total = 0
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="wordvec-fuzz-") as root:
        schema = fuzz_target(Path(root))
        print(f"{'operation':<34} {'cases':>6}  result  statuses")
        for method, path in chosen:
            label = f"{method} {path}"
            op_started = time.monotonic()
            cases, statuses, failure = fuzz_operation(
                schema, method, path, args.examples, args.seed
            )
            total += cases
            seen = " ".join(f"{code}:{n}" for code, n in sorted(statuses.items()))
            result = "FAIL" if failure else "ok"
            seconds = time.monotonic() - op_started
            print(f"{label:<34} {cases:>6}  {result:<6}  {seen}  ({seconds:.0f} s)")
            if failure:
                failures[label] = failure
    print(
        f"\n{total} cases over {len(chosen)} operations in "
        f"{time.monotonic() - started:.0f} s; {len(failures)} operations failed"
    )
    for label, failure in failures.items():
        print(f"\n== {label}\n{failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
