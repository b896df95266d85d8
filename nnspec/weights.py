"""A network's weights on disk: `weights.npz` holds the parameters and
running statistics by name (`dense_0.W`), the normalisation fitted on the
training split (`normalize/INPUT/mean`, `.../std`), the class labels
(`labels`; with several outputs `labels/OUTPUT`), the
csv columns each input was trained on (`columns/INPUT`) and, for a text
input, its vocabulary and tokenising settings (`text/INPUT`, JSON)."""
from __future__ import annotations

import io

import numpy as np

from .files import file_error, not_readable, write_atomic


def weight_arrays(net) -> dict[str, np.ndarray]:
    out = {**net.params, **net.state}
    for name, (mean, std) in net.norm.items():
        out[f"normalize/{name}/mean"], out[f"normalize/{name}/std"] = mean, std
    if isinstance(net.labels, dict):              # several outputs: `labels/OUTPUT` per classifying output
        out.update({f"labels/{o}": np.array(v) for o, v in net.labels.items() if v is not None})
    elif net.labels is not None:
        out["labels"] = np.array(net.labels)
    for name, cols in (net.columns or {}).items():
        out[f"columns/{name}"] = np.array(cols, dtype=str)
    for name, voc in (net.text or {}).items():
        out[f"text/{name}"] = np.array(voc.to_json())       # JSON: a str array would drop trailing NULs
    return out


def save_weights(net, path) -> None:
    """Written atomically; never non-finite weights (a diverged run keeps
    its best finite epoch)."""
    for k, a in {**net.params, **net.state}.items():
        if not np.all(np.isfinite(a)):
            raise ValueError(f"`{k}` holds NaN or infinite values; not saved")
    buf = io.BytesIO()
    np.savez(buf, **weight_arrays(net))
    write_atomic(path, buf.getvalue())


def read_arrays(path) -> dict[str, np.ndarray]:
    """Every array of a weights file, or a located error saying why not."""
    problem = not_readable(path)
    if problem:
        raise file_error(path, f"cannot read weights: {problem}")
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:           # zipfile, zlib and numpy each raise their own for a damaged file
        raise file_error(path, "cannot read weights: not an .npz file written by `nnspec train`, "
                               "or a damaged one") from None


def load_weights(net, path) -> None:
    """Weights from a file saved by `save_weights`; names and shapes must match."""
    apply_arrays(net, read_arrays(path), path)


def apply_arrays(net, arrays: dict, path) -> None:
    """Put `weight_arrays`' layout back into `net`: parameters, statistics, the
    normalisation, labels, csv columns and vocabularies (`path` for messages)."""
    weights = {**net.params, **net.state}
    for k, a in weights.items():
        if k not in arrays:
            raise file_error(path, f"no array `{k}`: these weights are for another model")
        if arrays[k].shape != a.shape:
            raise file_error(path, f"`{k}` has shape {list(arrays[k].shape)}, the model needs "
                                   f"{list(a.shape)}")
    with net.editing():                 # all checked first: a bad file leaves the weights as they were
        for k, a in weights.items():
            a[...] = arrays[k]
    net.norm = {v.name: (arrays[f"normalize/{v.name}/mean"], arrays[f"normalize/{v.name}/std"])
                for v in net.graph.inputs if f"normalize/{v.name}/mean" in arrays}
    if "labels" in arrays:
        net.labels = arrays["labels"].tolist()
    elif any(k.startswith("labels/") for k in arrays):
        net.labels = {o: arrays.get(f"labels/{o}").tolist() if f"labels/{o}" in arrays else None
                      for o in net.graph.output_names}
    net.columns = {k.split("/", 1)[1]: arrays[k].tolist() for k in arrays if k.startswith("columns/")} or None
    net.text = {k.split("/", 1)[1]: _vocabulary(path, k, arrays[k]) for k in arrays if k.startswith("text/")} or None


def _vocabulary(path, key: str, a: np.ndarray):
    from .data.text import Vocabulary
    try:
        return Vocabulary.from_json(str(a))
    except (ValueError, KeyError, TypeError):
        raise file_error(path, f"`{key}` is not a vocabulary written by `nnspec train`") from None
