"""Train every example in specs/ and print the figure each one must reach,
with its training time. The figures in README.md come from this script.

    python bench/examples.py [NAME ...]
"""
from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))  # run from a checkout

os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "18")   # before NumPy loads, as the command line does
import nnspec  # noqa: E402

SPECS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "specs")
# example -> (metric, goal, comparison)
GOALS = {
    "digits_mlp": ("val_accuracy", 0.97, ">="), "xor": ("accuracy", 1.0, ">="),
    "two_towers": ("val_accuracy", 0.93, ">="), "diabetes_regression": ("val_r2", 0.4, ">="),
    "perceptron": ("val_accuracy", 1.0, ">="), "digits_cnn": ("val_accuracy", 0.98, ">="),
    "digits_cnn_augment": ("val_accuracy", 0.98, ">="),
    "tiny_resnet": ("val_accuracy", 0.97, ">="), "gru_sequences": ("val_accuracy", 0.95, ">="),
    "tiny_transformer": ("val_accuracy", 0.95, ">="), "sine_lstm": ("val_loss / noise variance", 2.0, "<="),
    "text_sentiment": ("val_accuracy", 0.88, ">="),
}


def main(names):
    print(f"{'example':<22} {'figure':<26} {'goal':>7} {'measured':>9}  {'epochs':>6}  {'seconds':>7}")
    for name in names or sorted(GOALS):
        spec = nnspec.load(os.path.join(SPECS, f"{name}.nn"))
        t = time.perf_counter()
        r = nnspec.train(spec)
        seconds = time.perf_counter() - t
        metric, goal, cmp = GOALS[name]
        if name == "sine_lstm":
            noise = spec.train.data.options.noise
            value = r.final["val_loss"] / noise ** 2
        else:
            value = r.final[metric]
        ok = value >= goal if cmp == ">=" else value <= goal
        print(f"{name:<22} {metric:<26} {cmp}{goal:>5} {value:>9.4f}  {r.best_epoch:>3}/{r.epochs_run:<3} "
              f"{seconds:>7.1f}  {'ok' if ok else 'MISSED'}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
