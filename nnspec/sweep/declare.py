"""A sweep, declared and checked: the `sweep { ... }` block of a spec and the
`nnspec sweep` options that add to it, turned into a Plan (what varies, how
many trials, which metric, the scheduler, the time budget) and its trials.

    sweep {
        width     = [64, 128, 256]            # a grid: every value
        lr        = loguniform(1e-4, 1e-2)    # a distribution: drawn per trial
        depth     = choice(1, 2, 3)           # uniform(a, b), randint(a, b) too
        samples   = 8                         # draws of the distributions (x the grid)
        maximize val_accuracy                 # or minimize val_loss (the default)
        scheduler = asha(grace=2, reduction=3)   # stop bad trials early; or none
        budget    = 600                       # seconds; no new trial starts after it
    }

A swept name is a model parameter, a train setting or `data_fraction` (the
share of the training split a trial trains on: scaling laws). Every value is
checked like a `--set` of it, at `nnspec check`, its errors at the value."""
from __future__ import annotations

import itertools
import math
import random
from dataclasses import dataclass, field
from typing import Any

from .. import spec as S
from ..compile import PARAM_TYPES, WRONG_TYPE, compile_model, model_parameters, typed
from ..config import TrainConfig, train_config
from ..errors import Collector, Diagnostic, Span, SpecError, did_you_mean, one_of
from ..metrics import default_metrics
from ..options import EvalError, evaluate
from ..overrides import relocate

DISTRIBUTIONS = {"uniform": "floats between two bounds", "loguniform": "floats, evenly in log space",
                 "randint": "whole numbers between two bounds, both included", "choice": "one of the values"}
RESERVED = {"samples", "scheduler", "budget"}
KNOBS = {"data_fraction"}                 # swept like a parameter; applied by the trial (trial.py)
DIRECTIONS = {"maximize": "max", "minimize": "min"}
SCHEDULERS = {"asha": {"grace": 1, "reduction": 3}}
DRAW_SEED = 0                             # the distributions' draws: the same trials every time


@dataclass
class Axis:
    """One swept name: a grid of values, or a distribution."""
    name: str
    kind: str                             # "grid" or a DISTRIBUTIONS key
    values: list = field(default_factory=list)    # grid and choice: (nn text, plain value)
    low: float = 0.0
    high: float = 0.0


@dataclass
class Trial:
    id: str
    values: dict[str, Any]                # name -> plain value (for sweep.csv and the report)
    texts: dict[str, str]                 # name -> .nn text (for the trial's overrides)
    base: list[str] = field(default_factory=list)   # the sweep's own `--set NAME=VALUE`s, under the trial's

    @property
    def overrides(self) -> list[str]:
        return self.base + [f"{k}={t}" for k, t in self.texts.items() if k not in KNOBS]

    @property
    def data_fraction(self) -> float:
        return float(self.values.get("data_fraction", 1.0))


@dataclass
class Plan:
    axes: list[Axis]
    metric: str
    mode: str                             # "max" or "min"
    samples: int = 1
    scheduler: dict | None = None         # {"kind": "asha", "grace": .., "reduction": ..}
    budget: float | None = None           # seconds

    def trials(self) -> list[Trial]:
        """Every grid combination, `samples` times, each with fresh draws of
        the distributions (Ray Tune's num_samples x grid_search)."""
        rng = random.Random(DRAW_SEED)
        grids = [a for a in self.axes if a.kind == "grid"]
        out = []
        for _ in range(self.samples):
            for combo in itertools.product(*[a.values for a in grids]) if grids else [()]:
                chosen = dict(zip([a.name for a in grids], combo))
                for a in self.axes:
                    if a.kind != "grid":
                        chosen[a.name] = draw(a, rng)
                ordered = {a.name: chosen[a.name] for a in self.axes}
                out.append(Trial(f"{len(out):03d}", {k: v for k, (t, v) in ordered.items()},
                                 {k: t for k, (t, v) in ordered.items()}))
        return out


def draw(a: Axis, rng: random.Random) -> tuple[str, Any]:
    if a.kind == "choice":
        return a.values[rng.randrange(len(a.values))]
    if a.kind == "randint":
        v = rng.randint(int(a.low), int(a.high))
        return str(v), v
    if a.kind == "loguniform":
        v = math.exp(rng.uniform(math.log(a.low), math.log(a.high)))
    else:
        v = rng.uniform(a.low, a.high)
    v = float(f"{v:.4g}")                 # a value a person can read (and type back)
    return repr(v), v


# ------------------------------------------------------------------ checking

def check_sweep(sf: S.SpecFile, train: S.Train | None, params: dict | None, graph, cfg,
                coll: Collector, extra=()) -> Plan | None:
    """The spec's sweep block with `extra` (command-line items, which replace
    the block's of the same name) checked: errors into `coll`; the Plan, or
    None when there is no sweep or it has errors."""
    if not sf.sweeps and not extra:
        return None
    for second in sf.sweeps[1:]:
        coll.error(second.span, "a file holds one sweep block; this is a second")
    items = list(sf.sweeps[0].items) if sf.sweeps else []
    for it in extra:
        items = [i for i in items if _key(i) != _key(it)] + [it]
    if train is None:
        where = sf.sweeps[0].span if sf.sweeps else (items[0].span if items else None)
        coll.error(where, "a sweep trains the model: this spec needs a `train { ... }` block")
        return None
    before = len(coll.diagnostics)
    model = sf.models[0] if sf.models else None
    checker = _Checker(sf, model, train, params, graph is not None and cfg is not None, coll)
    plan = Plan([], *_default_goal(cfg))
    seen: dict[str, Span] = {}
    for it in items:
        key = _key(it)
        if key in seen:
            coll.error(it.span, f"`{key}` is set twice in the sweep (first at {seen[key]})")
            continue
        seen[key] = it.span
        if isinstance(it, S.Goal):
            checker.goal(it, cfg, plan)
        elif it.key in RESERVED:
            checker.reserved(it, plan)
        else:
            axis = checker.axis(it)
            if axis is not None:
                plan.axes.append(axis)
    if not plan.axes and len(coll.diagnostics) == before:
        where = sf.sweeps[0].span if sf.sweeps else items[0].span if items else None
        coll.error(where, "the sweep varies nothing: add a line such as `width = [64, 128]` or "
                          "`lr = loguniform(1e-4, 1e-2)` (or --grid NAME=V1,V2)")
    return plan if len(coll.diagnostics) == before else None


def _key(it) -> str:
    return "<goal>" if isinstance(it, S.Goal) else it.key


def _default_goal(cfg) -> tuple[str, str]:
    has_val = cfg is not None and cfg.validation is not None
    return ("val_loss" if has_val else "loss"), "min"


def metric_names(cfg) -> list[str]:
    """The columns of a trial's history that a sweep may optimise."""
    if isinstance(cfg.loss, dict):                   # several outputs: OUTPUT_loss and OUTPUT_METRIC too
        from ..metrics import task_problem
        names = ["loss", *(f"{o}_loss" for o in cfg.loss)]
        for o, loss in cfg.loss.items():
            asked = cfg.metrics if cfg.metrics is not None else default_metrics(loss.task)
            names += [f"{o}_{m}" for m in asked if task_problem(m, loss.task) is None]
    else:
        names = ["loss", *(cfg.metrics if cfg.metrics is not None else default_metrics(cfg.loss.task))]
    return names + ([f"val_{n}" for n in names] if cfg.validation is not None else [])


class _Checker:
    def __init__(self, sf, model, train, params, compiled: bool, coll: Collector):
        self.sf, self.model, self.train, self.params, self.coll = sf, model, train, params, coll
        self.compiled = compiled             # values are tried only on a spec that compiles
        self.model_params = {p.name: p for p in (model.params if model else [])}

    def goal(self, g: S.Goal, cfg, plan: Plan) -> None:
        if g.direction not in DIRECTIONS:
            self.coll.error(g.direction_span, f"expected `maximize METRIC` or `minimize METRIC`, got "
                                              f"`{g.direction}`{did_you_mean(g.direction, DIRECTIONS)}")
            return
        if cfg is not None:
            known = metric_names(cfg)
            if g.metric not in known:
                self.coll.error(g.metric_span, f"no metric `{g.metric}` in this run's history; it has "
                                               f"{one_of(known)}{did_you_mean(g.metric, known)}")
                return
        plan.metric, plan.mode = g.metric, DIRECTIONS[g.direction]

    def reserved(self, st: S.Setting, plan: Plan) -> None:
        v = st.value
        if st.key == "samples":
            n = _plain(v)
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                self.coll.error(v.span, f"`samples` is a whole number of 1 or more, got {_shown(v)}")
            else:
                plan.samples = n
        elif st.key == "budget":
            n = _plain(v)
            if isinstance(n, bool) or not isinstance(n, (int, float)) or not n > 0:
                self.coll.error(v.span, f"`budget` is a number of seconds above 0, got {_shown(v)}")
            else:
                plan.budget = float(n)
        else:
            plan.scheduler = self.scheduler(v)

    def scheduler(self, v: S.Value) -> dict | None:
        name = v.name if isinstance(v, (S.Ident, S.Call)) else None
        if name == "none":
            return None
        if name not in SCHEDULERS:
            self.coll.error(v.span, f"`scheduler` is `asha`, `asha(grace=1, reduction=3)` or `none`, "
                                    f"got {_shown(v)}{did_you_mean(name or '', [*SCHEDULERS, 'none'])}")
            return None
        out = {"kind": name, **SCHEDULERS[name]}
        if isinstance(v, S.Call):
            for a in v.args:
                self.coll.error(a.span, f"`{name}` takes keyword arguments: {', '.join(SCHEDULERS[name])}")
            for kw in v.kwargs:
                x = _plain(kw.value)
                if kw.key not in out or kw.key == "kind":
                    self.coll.error(kw.span, f"`{name}` has no argument `{kw.key}`; it has "
                                             f"{one_of(SCHEDULERS[name])}{did_you_mean(kw.key, SCHEDULERS[name])}")
                elif isinstance(x, bool) or not isinstance(x, int) or x < (2 if kw.key == "reduction" else 1):
                    least = 2 if kw.key == "reduction" else 1
                    self.coll.error(kw.value.span, f"`{kw.key}` is a whole number of {least} or more, "
                                                   f"got {_shown(kw.value)}")
                else:
                    out[kw.key] = x
        return out

    def axis(self, st: S.Setting) -> Axis | None:
        name, v = st.key, st.value
        if name not in self.model_params and name not in TrainConfig.model_fields and name not in KNOBS:
            names = [*self.model_params, *TrainConfig.model_fields, *KNOBS, *RESERVED]
            params = ", ".join(f"`{p}`" for p in self.model_params) or "none"
            self.coll.error(st.span, f"`{name}` is not a model parameter or train setting, so a sweep cannot "
                                     f"vary it{did_you_mean(name, names)} (the model's parameters: {params})")
            return None
        if isinstance(v, S.ListV):
            if not v.items:
                self.coll.error(v.span, f"`{name}`: the grid is empty; give at least one value")
                return None
            values = [self.value(name, item) for item in v.items]
            return Axis(name, "grid", values) if None not in values else None
        if isinstance(v, S.Call) and v.name in DISTRIBUTIONS:
            return self.distribution(name, v)
        dists = ", ".join(f"`{d}(...)`" for d in DISTRIBUTIONS)
        self.coll.error(v.span, f"`{name}`: a sweep gives a list of values (`[a, b, c]`) or a distribution "
                                f"({dists}); got {_shown(v)}"
                                f"{did_you_mean(v.name, DISTRIBUTIONS) if isinstance(v, S.Call) else ''}"
                                f" (to fix one value, use --set {name}=...)")
        return None

    def distribution(self, name: str, call: S.Call) -> Axis | None:
        for kw in call.kwargs:
            self.coll.error(kw.span, f"`{call.name}` takes its values in order, not `{kw.key}=`")
            return None
        if call.name == "choice":
            if not call.args:
                self.coll.error(call.span, "`choice` needs at least one value")
                return None
            values = [self.value(name, a) for a in call.args]
            return Axis(name, "choice", values) if None not in values else None
        if len(call.args) != 2:
            self.coll.error(call.span, f"`{call.name}` takes two bounds, `{call.name}(low, high)`; "
                                       f"got {len(call.args)} value{'s' * (len(call.args) != 1)}")
            return None
        low, high = (_plain(a) for a in call.args)
        want_int = call.name == "randint"
        for a, x in zip(call.args, (low, high)):
            if isinstance(x, bool) or not isinstance(x, (int, float)) or (want_int and not isinstance(x, int)):
                self.coll.error(a.span, f"`{call.name}`: a bound is {'a whole number' if want_int else 'a number'}, "
                                        f"got {_shown(a)}")
                return None
        if not low < high:
            self.coll.error(call.span, f"`{call.name}({_shown(call.args[0])}, {_shown(call.args[1])})`: the low "
                                       f"bound must be below the high one")
            return None
        if call.name == "loguniform" and low <= 0:
            self.coll.error(call.args[0].span, f"`loguniform`: the bounds must be above 0, got "
                                               f"{_shown(call.args[0])}")
            return None
        prm = self.model_params.get(name)
        if prm is not None and prm.type == "int" and not want_int:
            self.coll.error(call.span, f"model parameter `{name}` is an int; `{call.name}` gives "
                                       f"floats: use `randint(a, b)`, `choice(...)` or a list")
            return None
        for a in call.args:                 # the bounds must work as values of `name`
            if self.value(name, a) is None:
                return None
        return Axis(name, call.name, low=float(low), high=float(high))

    def value(self, name: str, v: S.Value) -> tuple[str, Any] | None:
        """(.nn text, plain value) of one value of `name`, checked like a --set of it."""
        text = nn_text(v)
        plain = _plain(v)
        if name in KNOBS:
            if isinstance(plain, bool) or not isinstance(plain, (int, float)) or not 0 < plain <= 1:
                self.coll.error(v.span, f"`{name}` is a fraction above 0 and at most 1, got {_shown(v)}")
                return None
            return text, float(plain)
        prm = self.model_params.get(name)
        if prm is not None:
            if prm.type in PARAM_TYPES and typed(plain, prm.type) is WRONG_TYPE:
                article = "an" if prm.type[0] in "aeiou" else "a"
                self.coll.error(v.span, f"model parameter `{name}` is {article} {prm.type}, got {_shown(v)}")
                return None
        if not self.compiled:
            return text, plain
        problems = self._try(name, v)
        if problems:
            first = problems[0]
            inside = first.file == v.span.file and v.span.line <= first.line <= (v.span.end_line or v.span.line)
            if inside:
                self.coll.extend([first])
            else:
                self.coll.error(v.span, f"with `{name} = {text}`: {first.message}", [f"at {first.file}:"
                                                                                     f"{first.line}:{first.column}"])
            return None
        return text, plain if not isinstance(v, S.Call) else text

    def _try(self, name: str, v: S.Value) -> list[Diagnostic]:
        """The errors of the spec with `name` set to `v`, as a --set would give them."""
        tmp = Collector(self.coll.file, self.coll.lines and "\n".join(self.coll.lines))
        if name in self.model_params:
            params = model_parameters(self.model, {name: v}, tmp, TrainConfig.model_fields)
            if params is not None:
                params = {**self.params, name: params[name]}
                compile_model(self.sf, tmp, params)
                train_config(self.train, tmp, None, params)
        else:
            kept = [st for st in self.train.settings if st.key != name]
            block = S.Train.model_construct(span=self.train.span,
                                            settings=[*kept, S.Setting.model_construct(span=v.span, key=name,
                                                                                       value=v)])
            train_config(block, tmp, None, self.params)
        return tmp.diagnostics


def _plain(v: S.Value):
    try:
        return evaluate(v, {})
    except EvalError:
        return None


def _shown(v: S.Value) -> str:
    return f"`{nn_text(v)}`"


def nn_text(v) -> str:
    """A value written back in the .nn syntax."""
    if isinstance(v, S.Num):
        return repr(v.value)
    if isinstance(v, S.Str):
        return '"' + v.value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, S.Ident):
        return v.name
    if isinstance(v, S.ListV):
        return "[" + ", ".join(nn_text(i) for i in v.items) + "]"
    if isinstance(v, S.DictV):                   # a setting per output: loss_weights = {recon: 1.0, cls: 0.5}
        return "{" + ", ".join(f"{e.key}: {nn_text(e.value)}" for e in v.entries) + "}"
    if isinstance(v, S.Call):
        args = [nn_text(a) for a in v.args] + [f"{k.key}={nn_text(k.value)}" for k in v.kwargs]
        return f"{v.name}({', '.join(args)})"
    if isinstance(v, S.Neg):
        return f"-{nn_text(v.operand)}"
    if isinstance(v, S.BinOp):
        return f"({nn_text(v.left)} {v.op} {nn_text(v.right)})"
    return str(v)


# ------------------------------------------------------------------ the command line

def cli_items(grid=(), vary=(), samples=None, metric=None, scheduler=None, budget=None) -> list:
    """`nnspec sweep` options as sweep-block items, each located at its option:
    --grid width=64,128 | --vary "lr=loguniform(1e-4, 1e-2)" | --samples 8 |
    --metric [maximize|minimize] NAME | --scheduler asha | --budget SECONDS."""
    out, problems = [], []

    def item(where: str, line: str):
        from ..syntax import parse
        try:
            sf = parse(f"sweep {{\n{line}\n}}\n", where)
        except SpecError as e:
            problems.extend(Diagnostic(where, 0, 0, d.message) for d in e.diagnostics)
            return
        got = sf.sweeps[0].items if sf.sweeps else []
        if len(got) != 1:
            problems.append(Diagnostic(where, 0, 0, "expected one NAME=VALUE"))
            return
        out.append(relocate(got[0], Span(where, 0, 0)))

    for g in grid:
        name, eq, values = g.partition("=")
        if not eq:
            problems.append(Diagnostic(f"--grid {g}", 0, 0, "expected NAME=V1,V2,..., such as --grid width=64,128"))
            continue
        item(f"--grid {g}", f"{name.strip()} = [{values}]")
    for d in vary:
        name, eq, value = d.partition("=")
        if not eq:
            problems.append(Diagnostic(f"--vary {d}", 0, 0, "expected NAME=DISTRIBUTION, such as "
                                                            "--vary \"lr=loguniform(1e-4, 1e-2)\""))
            continue
        item(f"--vary {d}", f"{name.strip()} = {value}")
    if samples is not None:
        item(f"--samples {samples}", f"samples = {samples}")
    if budget is not None:
        item(f"--budget {budget}", f"budget = {budget}")
    if scheduler is not None:
        item(f"--scheduler {scheduler}", f"scheduler = {scheduler}")
    if metric is not None:
        words = metric.split()
        if len(words) == 1:                  # a bare name: the direction its kind implies
            low = words[0].lower()
            words = ["minimize" if "loss" in low or low.endswith(("mae", "rmse")) else "maximize", words[0]]
        item(f"--metric {metric}", " ".join(words))
    if problems:
        raise SpecError(problems)
    return out
