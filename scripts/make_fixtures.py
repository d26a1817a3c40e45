"""Regenerate the bundled fixtures bit for bit, or check them.

    python scripts/make_fixtures.py            # write fixtures/train.npz, fixtures/test.npz and their sidecars
    python scripts/make_fixtures.py --check    # verify files against the sha256 in their sidecars; writes nothing
    python scripts/make_fixtures.py --out DIR  # write into DIR instead (e.g. to compare with the committed ones)

Exit 0 when everything matches, 1 when --check finds a problem.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.fixtures import FIXTURES, check_fixture, fixtures_dir
from engine.simulate import write_simulation


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="verify the hashes in the sidecars; write nothing")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: fixtures/)")
    args = parser.parse_args(argv)
    out = args.out or fixtures_dir()
    if args.check:
        problems = [p for name, cfg in FIXTURES.items() for p in check_fixture(out / name, cfg)]
        for p in problems:
            print(f"make_fixtures: {p}", file=sys.stderr)
        if not problems:
            print(f"ok: {', '.join(FIXTURES)} match their sidecars")
        return 1 if problems else 0
    out.mkdir(parents=True, exist_ok=True)
    for name, cfg in FIXTURES.items():
        meta = write_simulation(out / name, cfg)
        print(f"wrote {out / name}: sha256 {meta['sha256'][:16]}…, nphotons measured {meta['nphotons_measured']:.6g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
