"""Code size beside weights for the standalone C export (``model.export(dir, format="c")``).

Exports an iris-sized 4-16-3 net and a 784-64-64-10 net in float32 and int8, compiles each source
with ``cc -std=c99 -O2 -c`` and reads the object's sizes with ``size``: the weights are the
``static const`` arrays, the code is the rest of the text segment.

    PYTHONPATH=src python benchmarks/c_export_size.py
"""
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))

import fastmlp  # noqa: E402
from fastmlp import layers  # noqa: E402


def main():
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None or shutil.which("size") is None:
        sys.exit("needs a C compiler and binutils' size")
    print("| net | weights | weight bytes | code bytes (text − weights, -O2) |")
    print("|---|---|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for name, sizes in (("iris", [4, 16, 3]), ("mnist", [784, 64, 64, 10])):
            fastmlp.utils.set_random_seed(0)
            model = fastmlp.Sequential([fastmlp.Input((sizes[0],))]
                                       + [layers.Dense(u, activation="relu") for u in sizes[1:-1]]
                                       + [layers.Dense(sizes[-1], activation="softmax")])
            for dtype in ("float32", "int8"):
                folder = os.path.join(tmp, f"{name}_{dtype}")
                info = model.export(folder, format="c", name=name, dtype=dtype, verbose=False)
                obj = os.path.join(folder, f"{name}.o")
                subprocess.run([cc, "-std=c99", "-O2", "-c", info["source"], "-o", obj], check=True)
                text = int(subprocess.run(["size", obj], capture_output=True, text=True,
                                          check=True).stdout.splitlines()[1].split()[0])
                print(f"| {'-'.join(map(str, sizes))} | {dtype} | {info['weight_bytes']:,} | "
                      f"{text - info['weight_bytes']:,} |")


if __name__ == "__main__":
    main()
