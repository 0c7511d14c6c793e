"""The command line a new user runs first."""
import subprocess
import sys


def test_demo_trains_evaluates_saves_reloads_and_predicts_identically():
    proc = subprocess.run([sys.executable, "-m", "fastmlp", "demo", "--epochs", "60"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "samples/s" in out and "test accuracy" in out
    assert "reloaded predictions identical: True" in out
    accuracy = float(out.split("test accuracy ")[1].split()[0])
    assert accuracy >= 0.85


def test_info_shows_the_kernel_target_and_threads():
    proc = subprocess.run([sys.executable, "-m", "fastmlp", "info"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "gemm_target:" in proc.stdout and "threads:" in proc.stdout and "openmp:" in proc.stdout
