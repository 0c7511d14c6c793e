"""Every script in examples/ runs end to end in its fast mode and reports what it measured."""
import os
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples")
SCRIPTS = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and not f.startswith("_"))


def test_every_seed_scenario_has_an_example():
    assert {"binary_classifier.py", "image_classifier.py", "iris.py", "categorical_784_32_10.py",
            "fashion_mnist_recipe.py"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_in_fast_mode_and_prints_its_accuracy(script):
    env = dict(os.environ)
    proc = subprocess.run([sys.executable, os.path.join(EXAMPLES, script), "--fast"], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accuracy" in proc.stdout
