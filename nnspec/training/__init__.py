"""Training: a spec's train block run on its data. The loop reads top to
bottom in loop.py; state.py holds what a run changes and its checkpoints;
load.py the data; runs.py the run folder and its files; diagnostics.py
the per-layer diagnostics (diagnostics.csv) and the warnings they give."""
from .load import load_data
from .loop import Diverged, Result, evaluate, fit_batch, train

__all__ = ["Diverged", "Result", "evaluate", "fit_batch", "load_data", "train"]
