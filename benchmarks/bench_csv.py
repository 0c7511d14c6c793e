"""CSV reading for the command line (``fastmlp train/predict``) against ``pandas.read_csv``.

Two files written once in a temporary folder: numbers only (the fast path: numpy's C parser)
and numbers with a text column and missing values (the general path: the csv module).
Reports the median of 5 interleaved rounds.

    PYTHONPATH=src python benchmarks/bench_csv.py [--rows 200000]
"""
import argparse
import os
import statistics
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

from fastmlp.cli import read_table  # noqa: E402


def write_files(folder, rows):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(rows, 20)).round(5)
    numeric = os.path.join(folder, "numeric.csv")
    header = ",".join(f"f{i}" for i in range(20)) + ",target"
    np.savetxt(numeric, np.column_stack([x, rng.integers(0, 3, rows)]), delimiter=",", fmt="%.6g",
               header=header, comments="")
    mixed = os.path.join(folder, "mixed.csv")
    cities = np.array(["oslo", "rome", "lima", "kyiv"])[rng.integers(0, 4, rows)]
    with open(mixed, "w") as fh:
        fh.write(header + ",city\n")
        for i in range(rows):
            vals = [("" if (i + j) % 97 == 0 else f"{v:.6g}") for j, v in enumerate(x[i])]
            fh.write(",".join(vals) + f",{i % 3},{cities[i]}\n")
    return numeric, mixed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    try:
        import pandas as pd
    except ImportError:
        pd = None
    with tempfile.TemporaryDirectory() as tmp:
        files = write_files(tmp, args.rows)
        print(f"# CSV reading, {args.rows:,} rows x 21-22 columns; load {os.getloadavg()[0]:.2f}")
        print(f"command: {' '.join(sys.argv)}\n")
        print("| file | fastmlp read_table | pandas.read_csv | fastmlp ÷ pandas time |")
        print("|---|---:|---:|---:|")
        for path in files:
            times = {"fastmlp": [], "pandas": []}
            for _ in range(5):
                t = time.perf_counter()
                read_table(path)
                times["fastmlp"].append(time.perf_counter() - t)
                if pd is not None:
                    t = time.perf_counter()
                    pd.read_csv(path)
                    times["pandas"].append(time.perf_counter() - t)
            f = statistics.median(times["fastmlp"])
            p = statistics.median(times["pandas"]) if times["pandas"] else float("nan")
            print(f"| {os.path.basename(path)} | {f * 1e3:.0f} ms | {p * 1e3:.0f} ms | {f / p:.2f} |")


if __name__ == "__main__":
    main()
