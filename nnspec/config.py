"""The train block, validated: each setting is checked on its own line, and
options such as `adam(lr=0.001)` against the registered option models."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, PrivateAttr, StrictBool

from . import spec as S
from .data import DATASETS, SOURCES, DatasetSource
from .data.augment import AUGMENTS
from .errors import Collector, Span, did_you_mean, one_of
from .losses import LOSSES, WEIGHTED
from .metrics import METRICS, check_monitor, metric_name, task_problem
from .optim import OPTIMIZERS
from .options import Enum, EvalError, evaluate, gather, validate
from .schedules import SCHEDULES


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, defer_build=True)
    data: Any
    loss: Any                                     # a Loss, or {output: Loss} for several outputs
    loss_weights: dict[str, float] | None = None  # {output: weight}: the total is Σ weight·loss (default 1)
    optimizer: Any
    epochs: PositiveInt
    batch: PositiveInt
    validation: float | Any | None = None       # a fraction in (0, 1), or another data source
    seed: int = Field(0, ge=0)
    schedule: Any = None
    early_stopping: PositiveInt | None = None     # patience in epochs
    monitor: str | None = None                    # the column early stopping and plateau watch (`on val_f1`)
    clip_norm: float | None = Field(None, gt=0)
    l2: float = Field(0.0, ge=0)
    l1: float = Field(0.0, ge=0)
    normalize: Literal["standard", "none"] = "none"
    metrics: list[str] | None = None
    class_weights: Literal["balanced"] | list[float] | None = None   # per-class loss weights
    init_weights: str | None = None               # a weights.npz to start from (relative to the spec)
    freeze: list[str] | None = None               # layers (or blocks) whose parameters stay as loaded
    diagnostics: StrictBool = True                # per-layer diagnostics and warnings (training/diagnostics.py)
    augment: list[Any] | None = None              # image augmentations, in order (data/augment.py)
    _spans: dict = PrivateAttr(default_factory=dict)     # setting -> where it was written

    @property
    def spans(self) -> dict[str, Span]:
        return self._spans

    def resolved(self) -> dict:
        """Plain values, for the run's resolved spec."""
        out = {}
        for k in type(self).model_fields:
            v = getattr(self, k)
            if isinstance(v, dict):                   # a loss per output
                out[k] = {o: i.model_dump() if isinstance(i, BaseModel) else i for o, i in v.items()}
            else:
                out[k] = (v.model_dump() if isinstance(v, BaseModel) else
                          [i.model_dump() if isinstance(i, BaseModel) else i for i in v] if isinstance(v, list) else v)
        return out


# setting -> the registry its calls are looked up in
OPTION_KEYS = {"data": SOURCES, "validation": SOURCES, "loss": LOSSES, "optimizer": OPTIMIZERS,
               "schedule": SCHEDULES}
REQUIRED = ("data", "loss", "optimizer", "epochs", "batch")


def train_config(block: S.Train | None, coll: Collector, model_span: Span | None,
                 env: dict | None = None) -> TrainConfig | None:
    """The train block validated; `env`: the model's parameters, which values may name."""
    env = env or {}
    if block is None:
        return None
    raw: dict[str, Any] = {}
    spans: dict[str, Span] = {}
    ok = True
    for st in block.settings:
        if st.key in raw:
            coll.error(st.span, f"`{st.key}` is set twice (first at line {spans[st.key].line})")
            ok = False
            continue
        if st.key not in TrainConfig.model_fields:
            coll.error(st.span, f"unknown train setting `{st.key}`"
                                f"{did_you_mean(st.key, TrainConfig.model_fields) or '; expected one of ' + one_of(TrainConfig.model_fields)}")
            ok = False
            continue
        spans[st.key] = st.span
        if st.key == "augment":                   # each kind's own place, for errors about it
            spans.update({f"augment.{i}": node.span for i, node in enumerate(_items(st.value))})
        if isinstance(st.value, S.DictV):             # per output: where each entry was written
            spans.update({f"{st.key}.{e.key}": e.span for e in st.value.entries})
        if st.on is not None and not _watch(st, raw, spans, coll):
            ok = False
        value = _setting(st, coll, env)
        if value is _FAILED:
            ok = False
            raw[st.key] = None
            continue
        raw[st.key] = value
    for key in REQUIRED:
        if key not in raw:
            coll.error(block.span, f"the train block needs `{key}`")
            ok = False
    several = isinstance(raw.get("loss"), dict)       # a loss per output: checked with the graph (api.py)
    if ok and raw.get("loss_weights") is not None and not several:
        coll.error(spans["loss_weights"], "`loss_weights` weighs the losses of several outputs "
                                          "(`loss = {a: mse, b: cross_entropy}`); this train block has one loss")
        ok = False
    if ok and several and raw.get("class_weights") is not None:
        coll.error(spans["class_weights"], "`class_weights` is for a model with one output; with a loss "
                                           "per output it is not supported (yet)")
        ok = False
    for metric in raw.get("metrics") or [] if ok and not several else []:
        problem = task_problem(metric, getattr(raw["loss"], "task", None))
        if problem:
            coll.error(spans["metrics"], f"`metrics`: {problem}")
            ok = False
    if ok and raw.get("class_weights") is not None and getattr(raw["loss"], "kind", None) not in WEIGHTED:
        coll.error(spans["class_weights"], f"`class_weights` weighs the classes of a class loss "
                                           f"({' or '.join(WEIGHTED)}); `{raw['loss'].kind}` has no classes "
                                           f"to weigh")
        ok = False
    if ok and raw.get("monitor") is not None and not several:
        problem = check_monitor(raw["monitor"], raw.get("metrics"), getattr(raw["loss"], "task", None),
                                raw.get("validation") is not None)
        if problem:
            coll.error(spans["monitor"], problem)
            ok = False
    if not ok:
        return None
    try:
        cfg = TrainConfig.model_validate(raw)
        cfg._spans.update(spans)
        return cfg
    except Exception as err:                      # pydantic.ValidationError
        for e in err.errors():
            key = str(e["loc"][0])
            got = raw.get(key)
            coll.error(spans.get(key, block.span), f"`{key}`: {e['msg'][0].lower() + e['msg'][1:]}, "
                                                   f"got {got!r}")
        return None


_FAILED = object()
# what a call-valued setting looks like, and what was written instead, for the message above
_EXAMPLES = {"data": '`dataset("digits")` or `csv("data.csv", target=label)`',
             "loss": "`cross_entropy`, or a loss per output: `{recon: mse, cls: cross_entropy}`",
             "optimizer": "`adam(lr=0.001)`", "schedule": "`cosine(warmup=2)`"}
_NODE_WHAT = {S.ListV: "a list", S.Num: "a number", S.Str: "a string in quotes", S.DictV: "a dict"}


def _setting(st: S.Setting, coll: Collector, env: dict):
    v = st.value
    registry = OPTION_KEYS.get(st.key)
    if st.key == "loss" and isinstance(v, S.DictV):
        return _losses(v, coll, env)
    if st.key == "loss_weights":
        return _weights(v, coll, env)
    if registry is not None and st.key != "validation" and not isinstance(v, (S.Call, S.Ident)):
        # a list, number or string where a call belongs (`optimizer = [adam, sgd]`: a sweep's
        # grid written in the train block) would pass through to training, which cannot read it
        coll.error(v.span, f"`{st.key}` takes one {registry.what}, such as {_EXAMPLES[st.key]}; got "
                           f"{_NODE_WHAT.get(type(v), 'an expression')}"
                           f"{'; several to try go in a `sweep` block' if isinstance(v, S.ListV) else ''}")
        return _FAILED
    if registry is not None and isinstance(v, (S.Call, S.Ident)) and not (
            st.key == "validation" and isinstance(v, S.Num)):
        if isinstance(v, S.Ident) and v.name in env:
            coll.error(v.span, f"`{st.key}` names its {registry.what} itself (`{st.key} = ...`), not through "
                               f"the parameter `{v.name}`; `--set {st.key}=...` changes it")
            return _FAILED
        return _option(st.key, registry, v, coll, env)
    if st.key == "metrics":
        return _metrics(v, coll, env)
    if st.key == "augment":
        return _augment(v, coll, env)
    if st.key == "monitor":
        if not isinstance(v, (S.Ident, S.Str)):
            coll.error(v.span, "`monitor` takes a column such as `val_loss` or `val_f1`")
            return _FAILED
        return v.name if isinstance(v, S.Ident) else v.value
    try:
        value = evaluate(v, env)
    except EvalError as e:
        coll.error(e.span, e.message)
        return _FAILED
    if st.key == "freeze":                        # names, bare or quoted (`residual_0/dense_0`)
        items = value if isinstance(value, list) else [value]
        if not all(isinstance(i, str) for i in items):
            coll.error(v.span, f"`freeze` takes layer names, such as [dense_0, dense_1], got {value!r}")
            return _FAILED
        return [str(i) for i in items]
    if st.key == "class_weights":
        if value == "balanced":
            return "balanced"
        if isinstance(value, list) and value and all(isinstance(i, (int, float)) and not isinstance(i, bool)
                                                     and i >= 0 for i in value) and any(value):
            return [float(i) for i in value]
        coll.error(v.span, f"`class_weights` takes `balanced` or a list of weights, one a class, such as "
                           f"[1, 4], not negative and not all 0, got {value!r}")
        return _FAILED
    if st.key == "normalize" and isinstance(value, Enum) and value not in ("standard", "none"):
        coll.error(v.span, f"`normalize` must be `standard` or `none`, got `{value}`"
                           f"{did_you_mean(value, ['standard', 'none'])}")
        return _FAILED
    if isinstance(value, Enum) and st.key not in ("normalize",):
        what = "true or false" if st.key == "diagnostics" else "a number"
        coll.error(v.span, f"`{st.key}` takes {what} here, got the name `{value}`")
        return _FAILED
    if st.key == "validation" and not (isinstance(value, float) and 0 < value < 1):
        coll.error(v.span, f"`validation` must be a fraction between 0 and 1 (such as 0.2) or a data "
                           f"source such as csv(\"val.csv\", target=\"y\"), got {value!r}")
        return _FAILED
    return value


def _losses(v: S.DictV, coll: Collector, env: dict):
    """`{recon: mse, cls: cross_entropy}`: a loss per output; the output
    names are checked against the model in api.py."""
    if not v.entries:
        coll.error(v.span, "`loss = {}` names no output; give a loss per output, such as "
                           "{recon: mse, cls: cross_entropy}")
        return _FAILED
    out = {}
    for e in v.entries:
        if not isinstance(e.value, (S.Call, S.Ident)):
            coll.error(e.value.span, f"the loss of `{e.key}` is a loss such as `mse` or `huber(0.5)`; "
                                     f"expected one of {one_of(LOSSES)}")
            out[e.key] = _FAILED
            continue
        out[e.key] = _option("loss", LOSSES, e.value, coll, env)
    return _FAILED if any(x is _FAILED for x in out.values()) else out


def _weights(v, coll: Collector, env: dict):
    """`loss_weights = {recon: 1.0, cls: 0.5}`: numbers, not negative, not all 0."""
    if not isinstance(v, S.DictV):
        coll.error(v.span, "`loss_weights` takes a weight per output, such as {recon: 1.0, cls: 0.5}")
        return _FAILED
    out = {}
    for e in v.entries:
        try:
            w = evaluate(e.value, env)
        except EvalError as err:
            coll.error(err.span, err.message)
            return _FAILED
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w >= 0 or w == float("inf"):
            coll.error(e.value.span, f"the weight of `{e.key}` must be a finite number, 0 or more, got "
                                     f"{str(w) if isinstance(w, Enum) else repr(w)}")
            return _FAILED
        out[e.key] = float(w)
    if out and not any(out.values()):
        coll.error(v.span, "`loss_weights` are all 0: nothing would be trained")
        return _FAILED
    return out


def _option(key: str, registry, v, coll: Collector, env: dict):
    """`adam(lr=0.001)` or a bare `adam` → the registered option model."""
    name = v.name
    cls = registry.get(name)
    if cls is None:
        coll.error(v.span, f"unknown {registry.what} `{name}`; expected one of {one_of(registry)}"
                           f"{did_you_mean(name, registry)}")
        return _FAILED
    args = v.args if isinstance(v, S.Call) else []
    kwargs = v.kwargs if isinstance(v, S.Call) else []
    if cls is DatasetSource:
        return _dataset(v, args, kwargs, coll, env)
    got, errors = gather(name, cls.positional, args, kwargs, env, v.span)
    obj, more = validate(cls, name, got, v.span) if not errors else (None, [])
    for span, msg in errors + more:
        coll.error(span, msg)
    return _FAILED if obj is None else obj


def _dataset(v, args, kwargs, coll: Collector, env: dict):
    """dataset(NAME, options...): options are checked against that data set's own model."""
    if not args or not isinstance(args[0], S.Str):
        coll.error(v.span, f"`dataset` needs a name in quotes, one of {one_of(DATASETS)}")
        return _FAILED
    name = args[0].value
    cls = DATASETS.get(name)
    if cls is None:
        coll.error(args[0].span, f"unknown data set `{name}`; expected one of {one_of(DATASETS)}"
                                 f"{did_you_mean(name, DATASETS)}")
        return _FAILED
    target = next((kw for kw in kwargs if kw.key == "target"), None)     # {output: x, y or an input}
    kwargs = [kw for kw in kwargs if kw is not target]
    got, errors = gather(f'dataset("{name}")', cls.positional, args[1:], kwargs, env, v.span)
    obj, more = validate(cls, f'dataset("{name}")', got, v.span) if not errors else (None, [])
    for span, msg in errors + more:
        coll.error(span, msg)
    targets = None
    if target is not None:
        targets = evaluate(target.value, env) if isinstance(target.value, S.DictV) else None
        if targets is None or not all(isinstance(t, str) for t in targets.values()):
            coll.error(target.value.span, f'`dataset("{name}")`: `target` takes a name per output: `y` (the '
                                          f'data set\'s labels), `x` (its features) or a model input, such '
                                          f'as {{recon: pixels, cls: y}}')
            return _FAILED
        targets = {k: str(t) for k, t in targets.items()}
    return _FAILED if obj is None else DatasetSource(name=name, options=obj, target=targets)


def _items(v) -> list:
    """A list's items, or the one value written without brackets."""
    return list(v.items) if isinstance(v, S.ListV) else [v]


def _augment(v, coll: Collector, env: dict):
    """`[flip, shift(2), rotate(10)]`: the registered augmentations, in order;
    `[]` is none (so that `--set augment=[]` turns a spec's off)."""
    kinds, ok = [], True
    for node in _items(v):
        if not isinstance(node, (S.Call, S.Ident)) or (isinstance(node, S.Ident) and node.name in env):
            coll.error(node.span, f"`augment` takes a list of augmentations such as [flip, shift(2), "
                                  f"rotate(10), noise(0.05)]; expected one of {one_of(AUGMENTS)}")
            ok = False
            continue
        kind = _option("augment", AUGMENTS, node, coll, env)
        ok = ok and kind is not _FAILED
        kinds.append(kind)
    return (kinds or None) if ok else _FAILED


def _metrics(v, coll: Collector, env: dict):
    """`[accuracy, f1, top_k_accuracy(3)]`: the history columns' names ("top3_accuracy")."""
    names, ok = [], True
    for node in v.items if isinstance(v, S.ListV) else [v]:
        args: list = []
        if isinstance(node, S.Call):
            got, errors = gather(node.name, ("k",), node.args, node.kwargs, env, node.span)
            for span, msg in errors:
                coll.error(span, msg)
            if errors:
                ok = False
                continue
            args = [got.values[k] for k in got.values]
            name = node.name
        elif isinstance(node, (S.Ident, S.Str)):
            name = node.name if isinstance(node, S.Ident) else node.value
        else:
            coll.error(node.span, f"a metric is a name such as `accuracy` or `f1`; expected one of "
                                  f"{one_of(METRICS)}")
            ok = False
            continue
        column, problem = metric_name(name, args)
        if problem:
            coll.error(node.span, problem)
            ok = False
        else:
            names.append(column)
    return names if ok else _FAILED


def _watch(st: S.Setting, raw: dict, spans: dict, coll: Collector) -> bool:
    """`early_stopping = 8 on val_f1`, `schedule = plateau(...) on val_f1`: the
    column both of them watch, set once."""
    if st.key not in ("early_stopping", "schedule"):
        coll.error(st.on_span, f"`on {st.on}` belongs to `early_stopping` or `schedule = plateau(...)`, "
                               f"not to `{st.key}`")
        return False
    if st.key == "schedule" and getattr(st.value, "name", None) != "plateau":
        coll.error(st.on_span, f"only the `plateau` schedule watches a metric; "
                               f"`{getattr(st.value, 'name', st.key)}` does not take `on {st.on}`")
        return False
    if raw.get("monitor") is not None and raw["monitor"] != st.on:
        coll.error(st.on_span, f"early stopping and plateau watch one column; `on {st.on}` differs from "
                               f"`{raw['monitor']}` at line {spans['monitor'].line}")
        return False
    raw["monitor"], spans["monitor"] = st.on, st.on_span
    return True
