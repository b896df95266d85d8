"""Exported models against the engine: every op on its own, every example
that compiles, and a trained model with normalisation folded in."""
import json

import numpy as np
import onnx
import pytest

import nnspec
from nnspec.runtime import OnnxModel

from op_cases import all_cases, case_spec

TOL = 1e-5


def _parity(net, spec, tmp_path, batch=5, seed=0):
    path = tmp_path / "m.onnx"
    net.export_onnx(path, spec.source)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    model = OnnxModel(path)
    rng = np.random.default_rng(seed)
    for n in (1, batch):                                 # the batch dimension is dynamic
        x = {v.name: rng.normal(size=(n, *v.shape)).astype(np.float32) if v.dtype == "float32"
             else rng.integers(0, _vocab(spec, v.name), size=(n, *v.shape)) for v in spec.graph.inputs}
        expected = net.forward(x if len(x) > 1 else next(iter(x.values())))
        if isinstance(expected, dict):                   # several outputs: every one of them, by name
            got = dict(zip(model.output_names, model.run(x)))
            assert set(got) == set(expected)
            for k in expected:
                assert got[k].shape == expected[k].shape
                np.testing.assert_allclose(got[k], expected[k], atol=TOL, rtol=TOL, err_msg=k)
            continue
        got = model.run(x)[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=TOL, rtol=TOL)
    return model


def _vocab(spec, name):
    return spec.graph.vocabularies()[name]


@pytest.mark.parametrize("kind,i,case", [pytest.param(*c, id=f"{c[0]}-{c[1]}") for c in all_cases()])
def test_every_op_exports_and_matches(kind, i, case, tmp_path):
    spec = nnspec.loads(case_spec(case), name="case.nn")
    net = spec.build(seed=3)
    with net.editing():
        for k, a in {**net.params, **net.state}.items():     # non-trivial weights and statistics
            a += np.random.default_rng(0).uniform(0.1, 0.5, a.shape).astype(a.dtype)
    _parity(net, spec, tmp_path)


def compiling_examples(specs):
    out = []
    for p in sorted(specs.glob("*.nn")):
        try:
            out.append(nnspec.load(p))
        except nnspec.SpecError:
            pass
    return out


def test_every_compiling_example_exports_and_matches(specs_dir, tmp_path):
    specs = compiling_examples(specs_dir)
    assert len(specs) >= 5
    for spec in specs:
        _parity(spec.build(seed=1), spec, tmp_path)


def test_trained_model_takes_raw_features_and_keeps_labels(specs_dir, tmp_path):
    spec = nnspec.load(specs_dir / "two_towers.nn")
    result = nnspec.train(spec, epochs=3)
    net = result.net
    assert net.norm, "normalize = standard must be folded into the exported graph"
    model = _parity(net, spec, tmp_path, batch=16)
    assert model.labels == ["setosa", "versicolor", "virginica"]
    proto = onnx.load(str(tmp_path / "m.onnx"))
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["nnspec.source"] == spec.source
    assert json.loads(meta["labels"]) == model.labels
    assert proto.opset_import[0].version >= 17
    assert [i.name for i in proto.graph.input] == ["features"]
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert not any(n.op_type == "Dropout" for n in proto.graph.node)


def test_export_is_in_inference_mode(tmp_path):
    spec = nnspec.loads("""
model m {
    input x: float32[4]
    dense(8) -> batchnorm -> relu
    dropout(0.5)
    dense(2) -> softmax
}
""")
    net = spec.build(seed=0)
    with net.editing():
        net.state["batchnorm_0.running_mean"][:] = 0.7      # statistics that differ from a batch's
        net.state["batchnorm_0.running_var"][:] = 2.0
    _parity(net, spec, tmp_path)
    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    ops = [n.op_type for n in graph.node]
    assert "BatchNormalization" in ops and "Dropout" not in ops
    stats = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
    np.testing.assert_array_equal(stats["batchnorm_0.running_mean"], np.float32(0.7))   # the running statistics go in
    np.testing.assert_array_equal(stats["batchnorm_0.running_var"], np.float32(2.0))


def test_cuda_device_says_clearly_when_missing(specs_dir, tmp_path):
    import onnxruntime as ort
    from nnspec.runtime import DeviceError
    spec = nnspec.load(specs_dir / "xor.nn")
    spec.build().export_onnx(tmp_path / "m.onnx")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        assert OnnxModel(tmp_path / "m.onnx", "cuda").device == "cuda"
    else:
        with pytest.raises(DeviceError, match="onnxruntime-gpu"):
            OnnxModel(tmp_path / "m.onnx", "cuda")
