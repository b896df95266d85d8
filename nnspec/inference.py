"""The engine's inference path: a graph run forward for its outputs alone
(Network.forward, and every epoch's validation through eval_step).

It differs from a training-mode pass in these ways, none of which changes a
result beyond float32 rounding (tests/test_inference.py):
- no backward bookkeeping: each op's `infer` returns its output only;
- each op runs on its weights as `Op.prepare` made them (a convolution's
  weight matrix with its bias column), made again only when the network's
  `version` moves (training steps, loaded or restored weights: the end of a
  `with net.editing():` block, outside which the arrays are read-only), and
  on every call made inside such a block, not otherwise;
- a batchnorm whose input is a convolution's or dense layer's output, read
  by nothing else, is folded into that layer's prepared weights and skipped;
- buffers, and whatever an op works out once per input shape (a
  convolution's frame and strided views), live on between calls, per batch
  size (the last MAX_SIZES sizes seen, batches of at most MAX_ROWS rows), so
  repeated calls allocate nothing; and an op whose input is a buffer that no
  other node reads may write its output over it (relu in place);
- an activation moves where it costs less: after a max pool, or into the
  convolution that reads it (Plan._move_activations); dropout is no step;
- a large batch runs in parts of rows, one per thread (BLAS on one thread
  in each), where that measured faster than one part with BLAS on every
  thread (Inference._parts): a CNN's copies and pools gain from it, an MLP's
  large products do not (bench/README.md).
Outputs handed back to the caller are copies, never the buffers. Why each
is done this way: bench/README.md, "Measurements behind the code"."""
from __future__ import annotations

import threading
from time import perf_counter
from functools import partial
from collections import OrderedDict
from dataclasses import dataclass

from .lazy import np
from .ops.base import Ctx
from .parallel import active, each

MAX_SIZES = 3          # (batch size, parts) whose buffers are kept (validation: the chunk, tried
                       # both ways, and the remainder)
MAX_ROWS = 4096        # larger batches get buffers for the call only (no memory held afterwards)
SPLIT_ROWS = 64        # rows a thread's part of a batch has at least (fewer: one part)
TRIALS = 3             # calls timed each way (one part, a part a thread) before a batch size's choice


@dataclass
class Step:
    index: int                       # the node's place in graph.nodes
    node: object
    p: object                        # the node's params (bias forced on when a batchnorm folds in)
    fold: object = None              # the batchnorm node folded into this one, or None
    fold_index: int = -1
    skip: bool = False               # a batchnorm folded into its producer: its output is the producer's
    free: tuple = ()                 # per input: a buffer that no one else reads, free to overwrite
    masks: tuple = ()                # per input: its padding mask's key, or None (no masks: empty)


class Plan:
    """The steps of an inference pass over a graph, worked out once. `keep`:
    values besides the outputs that the caller reads afterwards (never
    overwritten, never folded away)."""

    def __init__(self, graph, keep: frozenset = frozenset()):
        nodes = graph.nodes
        readers: dict[str, int] = {}
        for n in nodes:
            for v in n.inputs:
                readers[v] = readers.get(v, 0) + 1
        outputs = set(graph.outputs) | keep
        producer = {n.output: i for i, n in enumerate(nodes)}
        self.steps = [Step(i, n, n.p, masks=tuple(n.in_masks) if any(n.in_masks) else ())
                      for i, n in enumerate(nodes)]
        owner = {}                     # value -> the step whose buffer holds it
        for i, n in enumerate(nodes):
            owner[n.output] = i
            j = producer.get(n.inputs[0]) if len(n.inputs) == 1 else None
            if j is None or not hasattr(n.op, "as_affine"):
                continue
            prod = self.steps[j]
            if (readers[n.inputs[0]] == 1 and n.inputs[0] not in outputs and prod.fold is None
                    and prod.node.op.takes_affine(prod.node.p, prod.node.out_shape)):
                prod.fold, prod.fold_index = n, i
                if getattr(prod.p, "bias", True) is False:
                    prod.p = prod.p.model_copy(update={"bias": True})
                self.steps[i].skip = True
                owner[n.output] = j
        for s in self.steps:
            s.free = tuple(v in owner and readers[v] == 1 and v not in outputs
                           and self.steps[owner[v]].node.op.owns_output for v in s.node.inputs)
        # what run() reads per step, in one tuple (a batch-1 call is mostly this loop);
        # an op that infers its input unchanged (dropout) is no step at all
        self.program = [[s.node, None if s.skip or s.node.op.identity_at_inference else s.node.op.infer,
                         s.p, s.index, tuple(s.node.inputs), s.node.output, s.masks] for s in self.steps]
        self._move_activations(readers, outputs | set(graph.outputs))
        self.program = [tuple(step) for step in self.program if step is not None]

    def _move_activations(self, readers: dict, outputs: set) -> None:
        """An element-wise activation (Op.into) whose output only a max pool
        reads runs after the pool, on a quarter of the values (a
        non-decreasing function commutes with max: Op.monotone,
        Op.max_of_inputs); one that only a convolution reads runs inside it,
        as the convolution copies its input into its padded frame
        (Op.takes_pre): a pass over the values saved either way."""
        where = {}                                    # value -> (its only reader's program row)
        for row in self.program:
            for v in row[4]:
                if readers[v] == 1:
                    where[v] = row
        for k, act in enumerate(self.program):
            node = act[0] if act is not None else None
            if node is None or act[1] is None or node.op.into is None or act[6] or len(act[4]) != 1:
                continue
            reader = where.get(act[5])
            if reader is None or act[5] in outputs or reader[6]:
                continue
            op = reader[0].op
            if op.max_of_inputs and node.op.monotone:
                reader[4] = act[4]                    # the pool reads the activation's input
                j = next(i for i, r in enumerate(self.program) if r is reader)
                self.program.insert(j + 1, [node, node.op.infer, act[2], act[3], (reader[5],), reader[5], ()])
                self.steps[act[3]].free = (True,)     # in place on the pool's own output
                self.program[k] = None
            elif op.takes_pre and len(reader[4]) == 1:
                reader[4] = act[4]
                reader[1] = partial(op.infer, pre=node.op.into)
                self.program[k] = None


class Inference:
    """Runs a network's plan, keeping each node's buffers between calls and
    its weights as `infer` takes them (Op.prepare: a batchnorm folded in, a
    convolution's weight matrix) until the network's weights change
    (Network.version)."""

    def __init__(self, net):
        self.net = net
        self.plans = {frozenset(): Plan(net.graph)}
        self.sizes: OrderedDict[tuple, list[Ctx]] = OrderedDict()   # (batch, keep, parts) -> Ctxs per part
        self.split: dict[tuple, int] = {}        # (batch, keep, most parts) -> the parts chosen
        self.trials: dict[tuple, dict] = {}      # ... -> {parts: [seconds a call]} while choosing
        self.lock = threading.Lock()
        self.prepared: dict = {}         # keep -> (weights version, per step: what infer takes)

    @property
    def plan(self) -> Plan:
        return self.plans[frozenset()]

    def _contexts(self, plan: Plan, key: tuple, cached: bool, parts: int) -> list[list[Ctx]]:
        """Per part of the batch, a Ctx per node (kept per key, (batch, keep, parts), when cached)."""
        made = self.sizes.get(key) if cached else None
        if made is None:
            made = [[Ctx(False, None, (False,) * len(s.node.inputs), {} if cached else None,
                         s.node.out_shape, free=s.free) for s in plan.steps] for _ in range(parts)]
            if cached:
                self.sizes[key] = made
                while len(self.sizes) > MAX_SIZES:
                    self.sizes.popitem(last=False)
        elif cached:
            self.sizes.move_to_end(key)
        return made

    def _weights(self, plan: Plan, keep: frozenset) -> list:
        """Per step, the weights its infer takes, worked out again only when
        the network's version moved (training steps, loaded weights)."""
        version = self.net.version
        made = self.prepared.get(keep)
        if self.net._editors:            # inside `with net.editing():` the weights may move at any time
            made = None
        if made is None or made[0] != version:
            w = self.net.node_arrays()
            made = version, [None if s.skip else s.node.op.prepare(
                s.p, w[s.index], None if s.fold is None else s.fold.op.as_affine(s.fold.p, w[s.fold_index]))
                for s in plan.steps]
            self.prepared[keep] = made
        return made[1]

    def run(self, xs: dict, stop=None, keep: frozenset = frozenset(), copy=()) -> dict:
        """Values by name, up to (not including) the node `stop`. The values
        may be buffers that the next call overwrites: those named in `copy`
        are copied before another thread may start a call; copy the others
        that are kept. keep: values the caller reads besides the outputs (Plan).
        A large batch runs in parts of rows, one per thread (parallel.each:
        BLAS on one thread in each), every op row by row at inference; the
        values handed back are then the outputs, `keep` and stop's inputs,
        joined (fresh arrays)."""
        plan = self.plans.get(keep)
        if plan is None:
            plan = self.plans[keep] = Plan(self.net.graph, keep)
        batch = len(next(iter(xs.values())))
        mine = self.lock.acquire(blocking=False)       # another thread inside: buffers of its own
        try:
            parts, timed = self._parts(batch, keep, mine)
            started = perf_counter()
            ctxs = self._contexts(plan, (batch, keep, parts), mine and batch <= MAX_ROWS, parts)
            weights = self._weights(plan, keep)
            if parts == 1:
                values = self._pass(plan, dict(xs), stop, ctxs[0], weights)
                for name in copy:
                    values[name] = np.array(values[name])
                if timed is not None:
                    timed.append(perf_counter() - started)
                return values
            cuts = [batch * i // parts for i in range(parts + 1)]
            done = [None] * parts

            def part(i, slot):
                rows = slice(cuts[i], cuts[i + 1])
                done[i] = self._pass(plan, {k: v[rows] for k, v in xs.items()}, stop, ctxs[i], weights)
            each(part, parts)
            wanted = set(stop.inputs) if stop is not None else set(self.net.graph.outputs)
            values = dict(xs)
            for name in (wanted | keep) & done[0].keys():
                values[name] = np.concatenate([d[name] for d in done])
            if timed is not None:
                timed.append(perf_counter() - started)
            return values
        finally:
            if mine:
                self.lock.release()

    def _parts(self, batch: int, keep: frozenset, mine: bool) -> tuple[int, list | None]:
        """The parts of rows this call runs in, and the list its time goes
        to while the choice is being made (else None). A batch that could be
        split is run TRIALS times each way, one part (BLAS on every thread)
        and a part a thread (BLAS on one in each), the fastest call of each
        compared; the faster way is kept for that batch size and thread count.
        Which wins depends on the model and the machine: the CNN example's
        copies and pools gain from the parts, the MLP's large products lose
        (bench/README.md, Inference)."""
        most = min(active(), batch // SPLIT_ROWS)
        if most <= 1:
            return 1, None
        key = (batch, keep, most)
        if key in self.split:
            return self.split[key], None
        if not mine:                                   # another thread is choosing: don't time this one
            return 1, None
        times = self.trials.setdefault(key, {1: [], most: []})
        if all(len(t) >= TRIALS for t in times.values()):
            self.split[key] = min(times, key=lambda k: min(times[k]))
            del self.trials[key]
            return self.split[key], None
        parts = min(times, key=lambda k: len(times[k]))    # the way tried fewer times, one part first
        return parts, times[parts]

    def _pass(self, plan: Plan, values: dict, stop, ctxs: list, weights: list) -> dict:
        masks: dict = {}                               # padding masks, made once per call
        for node, infer, p, i, ins, out, keys in plan.program:
            if node is stop:
                break
            if infer is None:                          # folded away: the producer's output
                values[out] = values[ins[0]]
                continue
            ctx = ctxs[i]
            if keys:
                ctx.masks = tuple(None if k is None else self.net._mask(k, values, masks) for k in keys)
            values[out] = infer(p, weights[i], [values[v] for v in ins], ctx)
        return values
