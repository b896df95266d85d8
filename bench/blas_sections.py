"""What parallel.blas_threads costs: a section opened and closed (the lock,
the count of open sections, BLAS's count set to 1 and back) against the
save / set 1 / restore that `each` did before (threadpoolctl's calls alone),
in process CPU time, interleaved rounds. `each` opens one section a call,
only with more than one thread at work.

    python bench/blas_sections.py [--rounds 7]"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from nnspec import parallel  # noqa: E402

N = 20_000


def before_sections(libs):
    saved = [lib.get_num_threads() for lib in libs]
    for lib in libs:
        lib.set_num_threads(1)
    for lib, k in zip(libs, saved):
        lib.set_num_threads(k)


def section():
    with parallel.blas_threads(1):
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    a = ap.parse_args()
    libs = parallel.blas_libs()
    if not libs:
        sys.exit("no BLAS that threadpoolctl can set")
    for lib in libs:
        lib.set_num_threads(2)
    load = open("/proc/loadavg").read().split()[:3]
    times = {"old": [], "new": []}
    for r in range(a.rounds):
        for which in (("old", "new") if r % 2 == 0 else ("new", "old")):
            fn = (lambda: before_sections(libs)) if which == "old" else section
            t = time.process_time()
            for _ in range(N):
                fn()
            times[which].append((time.process_time() - t) / N * 1e6)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"save/set/restore (before) {med['old']:.2f} us, a blas_threads section {med['new']:.2f} us "
          f"(rounds {' '.join(f'{x:.1f}' for x in times['new'])}); {len(libs)} BLAS, process CPU time; "
          f"load average {' '.join(load)} -> {' '.join(open('/proc/loadavg').read().split()[:3])}")


if __name__ == "__main__":
    main()
