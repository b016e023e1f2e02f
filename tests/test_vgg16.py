"""miniconv.applications.VGG16 against keras.applications.VGG16, offline.

Keras writes the weight files: its VGG16, randomly initialised, saved in the layout of Keras's
published files (the legacy Keras 1 ``.h5``: ``layer_names`` on the file, a group per layer with
``weight_names`` and datasets ``block1_conv1_W_1:0``, ``block1_conv1_b_1:0``), which Keras itself
then loads as the reference; also in Keras 3's legacy ``.h5`` writer's layout, a whole-model
``.h5`` and Keras 3's ``.weights.h5``. The cache lookup, the download (a local HTTP server) and
the missing network (a refused connection, or a ``fetch`` that raises) run with ``KERAS_HOME`` in
a temporary directory and the expected hash replaced by the test file's: nothing here touches the
network or the real Keras cache.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import re
import shutil
import socket
import sys
import threading
import urllib.error

import h5py
import keras
import numpy as np
import pytest

import miniconv
from miniconv import layers
from miniconv.applications import VGG16, keras_weights, vgg16
from miniconv.applications.keras_weights import WeightsDownloadError, WeightsFileError

SMALL = (32, 32, 3)
NOTOP_PARAMS = 14_714_688
TOP_PARAMS = 138_357_544


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_published_layout(model, path) -> None:
    """``model``'s weights in the layout of Keras's published VGG16 files (Keras 1's ``save_weights``, whose
    h5py 2 stored a list of names as an array of fixed-length byte strings, and an empty list as an empty
    float64 array)."""
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = np.array([layer.name.encode("utf8") for layer in model.layers])
        for layer in model.layers:
            group = f.create_group(layer.name)
            values = layer.get_weights()
            names = [f"{layer.name}_{suffix}_1:0".encode() for suffix in ("W", "b")][: len(values)]
            group.attrs["weight_names"] = np.array(names) if names else np.array([])
            for name, value in zip(names, values):
                group.create_dataset(name, data=value)


def keras_vgg16(seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    return keras.applications.VGG16(weights=None, **kwargs)


def images(n, shape, seed=0):
    """RGB images in [0, 255], preprocessed as Keras's VGG16 expects."""
    rng = np.random.default_rng(seed)
    return vgg16.preprocess_input(rng.integers(0, 256, (n, *shape)).astype(np.float32))


def summary_of(model) -> str:
    lines = []
    model.summary(print_fn=lambda text, **_: lines.append(text))
    # the Input's automatic name counts Inputs made before it in the process, differently in each library
    return re.sub(r"input_layer(_\d+)? \(InputLayer\) *", lambda m: "input_layer (InputLayer)".ljust(len(m[0])),
                  "\n".join(lines).rstrip("\n"))


@pytest.fixture(scope="module")
def notop(tmp_path_factory):
    """(Keras's no-top VGG16 on 32x32 with seeded random weights, the published-layout file of it)."""
    model = keras_vgg16(include_top=False, input_shape=SMALL)
    path = tmp_path_factory.mktemp("notop") / "vgg16_notop.h5"
    write_published_layout(model, path)
    return model, path


@pytest.fixture
def keras_home(tmp_path, monkeypatch):
    """KERAS_HOME in a temporary directory (and HOME too: the real ~/.keras is never touched)."""
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    home = tmp_path / "keras_home"
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


def publish(monkeypatch, path=None, *, origin=None, file_hash=None, include_top=False):
    """Make ``vgg16.PUBLISHED`` name our test file: its hash (or ``file_hash``) and ``origin``."""
    real = vgg16.PUBLISHED[include_top]
    replaced = keras_weights.PublishedFile(real.fname, origin or real.origin, file_hash or md5(path))
    monkeypatch.setitem(vgg16.PUBLISHED, include_top, replaced)
    return replaced


def assert_weights_equal(ours, theirs):
    got, expected = ours.get_weights(), theirs.get_weights()
    assert [w.shape for w in got] == [w.shape for w in expected]
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a, b)


# --- the architecture ----------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [
    {"input_shape": SMALL},
    {"input_shape": (150, 150, 3)},
    {},                                              # (None, None, 3)
    {"input_shape": SMALL, "pooling": "avg"},
    {"input_shape": SMALL, "pooling": "max"},
])
def test_layers_parameters_summary_and_weight_order_are_keras(kwargs, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    keras.utils.clear_session()          # both name the pooling layer afresh, whatever ran before
    miniconv.utils.clear_session()
    theirs = keras.applications.VGG16(include_top=False, weights=None, **kwargs)
    ours = VGG16(include_top=False, weights=None, **kwargs)
    names = [layer.name for layer in ours.layers]
    assert names[1:] == [layer.name for layer in theirs.layers][1:]
    assert names[1:3] == ["block1_conv1", "block1_conv2"] and "block5_pool" in names
    assert [w.shape for w in ours.get_weights()] == [tuple(w.shape) for w in theirs.get_weights()]
    assert ours.count_params() == theirs.count_params() == NOTOP_PARAMS
    assert ours.output_shape == theirs.output_shape
    assert summary_of(ours) == summary_of(theirs)


def test_preprocess_input_is_keras_caffe_mode():
    rng = np.random.default_rng(1)
    batch = rng.integers(0, 256, (2, 5, 4, 3)).astype(np.uint8)
    for x, data_format in [(batch, None), (batch.astype(np.float32), "channels_last"), (batch[0].astype(np.float64), None),
                           (batch.transpose(0, 3, 1, 2).astype(np.float32), "channels_first"),
                           (batch[0].transpose(2, 0, 1).astype(np.float32), "channels_first")]:
        before = x.copy()
        got = vgg16.preprocess_input(x, data_format=data_format)
        expected = keras.applications.vgg16.preprocess_input(x.copy(), data_format=data_format)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
        np.testing.assert_array_equal(x, before)  # unlike Keras, the input is left alone
    np.testing.assert_allclose(vgg16.preprocess_input(np.array([[[10.0, 20.0, 30.0]]])),
                               [[[30 - 103.939, 20 - 116.779, 10 - 123.68]]])


@pytest.mark.parametrize("kwargs, match", [
    ({"weights": "no/such/file.h5"}, "The `weights` argument should be"),
    ({"weights": "imagenet", "classes": 10}, "`classes` should be 1000"),
    ({"weights": "imagenet", "input_shape": (150, 150, 3)}, r"`input_shape` should be \(224, 224, 3\)"),
    ({"weights": "imagenet", "include_top": False, "input_shape": (150, 150, 1)}, "must have 3 channels"),
    ({"weights": None, "include_top": False, "input_shape": (31, 64, 3)}, "at least 32x32"),
    ({"weights": None, "input_shape": (None, None, 3)}, "static `input_shape`"),
    ({"weights": "imagenet", "classifier_activation": "relu"}, "Only `None` and `softmax`"),
    ({"weights": None, "include_top": False, "pooling": "mean"}, "pooling must be None, 'avg' or 'max'"),
    ({"weights": "imagenet", "include_top": False, "file_hash": None}, "always checks the file's hash"),
])
def test_bad_arguments_fail_before_any_file_is_looked_up(kwargs, match, keras_home, monkeypatch):
    monkeypatch.setattr(keras_weights, "fetch", lambda *a, **k: pytest.fail("fetch called"))
    with pytest.raises(ValueError, match=match):
        VGG16(**kwargs)
    assert not keras_home.exists() or not any(keras_home.rglob("*.h5"))


def test_without_h5py_weights_fail_before_any_download(keras_home, monkeypatch):
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    monkeypatch.setattr(keras_weights, "fetch", lambda *a, **k: pytest.fail("fetch called"))
    with pytest.raises(ImportError, match=r"needs h5py: pip install h5py.*\[pretrained\]"):
        VGG16(weights="imagenet", include_top=False)
    assert VGG16(weights=None, include_top=False).count_params() == NOTOP_PARAMS


def test_input_tensor_builds_on_a_tensor_and_keeps_its_source_input():
    image = miniconv.Input(SMALL, name="image")
    scaled = layers.Rescaling(2.0, name="scale")(image)
    model = VGG16(include_top=False, weights=None, input_tensor=scaled)
    assert model.input is image
    assert [layer.name for layer in model.layers[:3]] == ["image", "scale", "block1_conv1"]
    x = images(2, SMALL)
    base = VGG16(include_top=False, weights=None, input_shape=SMALL)
    base.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(x, verbose=0), base.predict(2.0 * x, verbose=0), rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="input_tensor must be a symbolic tensor"):
        VGG16(include_top=False, weights=None, input_tensor=np.zeros((1, *SMALL), np.float32))


# --- weights from a file -------------------------------------------------------------------------


def test_the_test_file_has_the_published_layout_and_keras_loads_it(notop):
    theirs, path = notop
    with h5py.File(path, "r") as f:
        assert "block1_conv1" in [n.decode() for n in f.attrs["layer_names"]]
        assert [n.decode() for n in f["block1_conv1"].attrs["weight_names"]] == ["block1_conv1_W_1:0",
                                                                                 "block1_conv1_b_1:0"]
        assert f["block5_conv3"]["block5_conv3_W_1:0"].shape == (3, 3, 512, 512)
        assert len(f["block1_pool"].attrs["weight_names"]) == 0
    reloaded = keras.applications.VGG16(weights=str(path), include_top=False, input_shape=SMALL)
    assert_weights_equal(reloaded, theirs)


def test_a_published_layout_file_gives_keras_predictions(notop):
    theirs, path = notop
    ours = VGG16(weights=str(path), include_top=False, input_shape=SMALL, file_hash=md5(path))
    assert_weights_equal(ours, theirs)
    x = images(4, SMALL)
    expected = theirs.predict(x, verbose=0)
    got = ours.predict(x, verbose=0)
    assert np.abs(expected).max() > 0
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    # file_hash=None skips the hash: a weight file of one's own
    assert_weights_equal(VGG16(weights=path, include_top=False, input_shape=SMALL, file_hash=None), theirs)


def test_a_path_is_checked_against_the_published_hash_by_default(notop):
    _, path = notop
    with pytest.raises(WeightsFileError, match=r"6d6bbae143d832006294945121d1f1fc.*file_hash=None"):
        VGG16(weights=str(path), include_top=False, input_shape=SMALL)
    with pytest.raises(WeightsFileError, match="the file_hash given"):
        VGG16(weights=str(path), include_top=False, input_shape=SMALL, file_hash="0" * 64)


def keras3_legacy_h5(model, path):
    from keras.src.legacy.saving import legacy_h5_format

    with h5py.File(path, "w") as f:
        legacy_h5_format.save_weights_to_hdf5_group(f, model)


@pytest.mark.parametrize("layout", ["keras3_legacy_h5", "whole_model_h5", "keras3_weights_h5", "split_layer_names"])
def test_other_keras_layouts_load_by_name(layout, notop, tmp_path):
    theirs, published = notop
    path = tmp_path / ("w.weights.h5" if layout == "keras3_weights_h5" else "w.h5")
    if layout == "split_layer_names":  # Keras splits an attribute too long for an HDF5 header into name0, name1, ...
        shutil.copy(published, path)
        with h5py.File(path, "r+") as f:
            names = f.attrs["layer_names"]
            del f.attrs["layer_names"]
            f.attrs["layer_names0"], f.attrs["layer_names1"] = names[:7], names[7:]
    elif layout == "keras3_legacy_h5":
        keras3_legacy_h5(theirs, path)
    elif layout == "whole_model_h5":
        theirs.save(path)
        with h5py.File(path, "r") as f:
            assert "model_weights" in f and "layer_names" not in f.attrs
    else:
        theirs.save_weights(path)
    ours = VGG16(weights=path, include_top=False, input_shape=SMALL, file_hash=None)
    assert_weights_equal(ours, theirs)


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_the_top_from_a_published_layout_file_gives_keras_predictions(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    theirs = keras_vgg16(seed=1)
    path = tmp_path / "vgg16_top.h5"
    write_published_layout(theirs, path)
    ours = VGG16(weights=path, file_hash=md5(path))
    assert [layer.name for layer in ours.layers][-4:] == ["flatten", "fc1", "fc2", "predictions"]
    assert ours.count_params() == theirs.count_params() == TOP_PARAMS
    assert summary_of(ours) == summary_of(theirs)
    assert_weights_equal(ours, theirs)
    path.unlink()
    x = images(1, (224, 224, 3), seed=2)
    expected = theirs.predict(x, verbose=0)
    del theirs
    got = ours.predict(x, verbose=0)
    assert got.shape == (1, 1000)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-7)
    assert np.argmax(got) == np.argmax(expected)


# --- Keras's cache, the download, no network -----------------------------------------------------


def test_keras_cache_directory_rule(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # never the real ~/.keras, even if the rule breaks
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    assert keras_weights.keras_cache_dir() == tmp_path / "kh" / "models"
    monkeypatch.delenv("KERAS_HOME")
    assert keras_weights.keras_cache_dir() == tmp_path / "home" / ".keras" / "models"
    assert (tmp_path / "home" / ".keras" / "models").is_dir()


def test_imagenet_weights_come_from_keras_cache(notop, keras_home, monkeypatch):
    theirs, path = notop
    published = publish(monkeypatch, path)
    (keras_home / "models").mkdir(parents=True)
    shutil.copy(path, keras_home / "models" / published.fname)
    assert published.fname == "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    monkeypatch.setattr(keras_weights, "fetch", lambda *a, **k: pytest.fail("fetch called with the file in the cache"))
    ours = VGG16(weights="imagenet", include_top=False, input_shape=SMALL)
    assert_weights_equal(ours, theirs)


@pytest.fixture
def http_server(tmp_path):
    """A local HTTP server for the files of a directory; yields (directory, base URL, request log)."""
    served = tmp_path / "served"
    served.mkdir()
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()
    server.server_close()


def test_a_missing_file_is_downloaded_to_the_cache_and_checked(notop, keras_home, http_server, monkeypatch):
    theirs, path = notop
    served, url, requests = http_server
    shutil.copy(path, served / "notop.h5")
    published = publish(monkeypatch, path, origin=f"{url}/notop.h5")
    ours = VGG16(weights="imagenet", include_top=False, input_shape=SMALL)
    assert_weights_equal(ours, theirs)
    cached = keras_home / "models" / published.fname
    assert cached.read_bytes() == path.read_bytes()
    assert sorted(p.name for p in cached.parent.iterdir()) == [published.fname]  # no temporary file left
    assert len(requests) == 1
    VGG16(weights="imagenet", include_top=False, input_shape=SMALL)  # now from the cache
    assert len(requests) == 1
    cached.write_bytes(b"stale")  # a cached file of the wrong hash is downloaded again, as Keras does
    VGG16(weights="imagenet", include_top=False, input_shape=SMALL)
    assert len(requests) == 2 and cached.read_bytes() == path.read_bytes()


def test_a_download_of_the_wrong_hash_is_refused_and_leaves_nothing(notop, keras_home, http_server, monkeypatch):
    _, path = notop
    served, url, requests = http_server
    shutil.copy(path, served / "notop.h5")
    publish(monkeypatch, path, origin=f"{url}/notop.h5", file_hash="0123456789abcdef0123456789abcdef")
    with pytest.raises(WeightsFileError, match=f"has md5 {md5(path)}, expected 0123456789abcdef.*refused"):
        VGG16(weights="imagenet", include_top=False, input_shape=SMALL)
    assert len(requests) == 1
    assert list((keras_home / "models").iterdir()) == []


def test_no_network_names_the_file_its_hash_and_where_to_put_it(keras_home, monkeypatch):
    def no_network(url, handle, timeout=None):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras_weights, "fetch", no_network)
    target = keras_home / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(WeightsDownloadError) as error:
        VGG16(weights="imagenet", include_top=False)
    message = str(error.value)
    for part in ("vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "md5 6d6bbae143d832006294945121d1f1fc",
                 str(target), "Temporary failure in name resolution", vgg16.WEIGHTS_PATH_NO_TOP):
        assert part in message
    assert list((keras_home / "models").iterdir()) == []
    with pytest.raises(WeightsDownloadError, match="64373286793e3c8b2b4e3219cbf3544b"):
        VGG16(weights="imagenet")
    target.write_bytes(b"a partial file from elsewhere")  # a cached file of the wrong hash stays as it was
    with pytest.raises(WeightsDownloadError, match="the file there now has another hash"):
        VGG16(weights="imagenet", include_top=False)
    assert target.read_bytes() == b"a partial file from elsewhere"


def test_a_refused_connection_is_the_no_network_error(keras_home, monkeypatch):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    publish(monkeypatch, origin=f"http://127.0.0.1:{port}/notop.h5", file_hash="6d6bbae143d832006294945121d1f1fc")
    with pytest.raises(WeightsDownloadError, match="Connection refused|refused"):
        VGG16(weights="imagenet", include_top=False)
    assert list((keras_home / "models").iterdir()) == []


# --- damaged and mismatched files ----------------------------------------------------------------


@pytest.fixture
def damaged(notop, tmp_path):
    """A copy of the test file to damage; a model to load it into; its weights before."""
    _, path = notop
    copy = tmp_path / "damaged.h5"
    shutil.copy(path, copy)
    model = VGG16(include_top=False, weights=None, input_shape=SMALL)
    return copy, model, [w.copy() for w in model.get_weights()]


def assert_nothing_loaded(model, before):
    for a, b in zip(model.get_weights(), before):
        np.testing.assert_array_equal(a, b)


def test_a_wrong_shape_names_the_layer_and_both_shapes(damaged):
    path, model, before = damaged
    with h5py.File(path, "r+") as f:
        del f["block5_conv3"]["block5_conv3_W_1:0"]
        f["block5_conv3"].create_dataset("block5_conv3_W_1:0", data=np.zeros((3, 3, 512, 256), np.float32))
    with pytest.raises(WeightsFileError, match=r"layer 'block5_conv3'.*expects shape \(3, 3, 512, 512\).*"
                                               r"has shape \(3, 3, 512, 256\)"):
        keras_weights.load_h5_weights(model, path)
    assert_nothing_loaded(model, before)


def test_a_missing_layer_is_named(damaged):
    path, model, before = damaged
    with h5py.File(path, "r+") as f:
        f.attrs["layer_names"] = [n for n in f.attrs["layer_names"] if n != b"block5_conv3"]
        del f["block5_conv3"]
    with pytest.raises(WeightsFileError, match=r"no weights for layer 'block5_conv3'.*\(3, 3, 512, 512\), \(512,\)"):
        keras_weights.load_h5_weights(model, path)
    assert_nothing_loaded(model, before)


def test_a_layer_the_model_lacks_is_named(damaged):
    path, model, before = damaged
    with h5py.File(path, "r+") as f:
        f.attrs["layer_names"] = [*f.attrs["layer_names"], b"fc1"]
        f.create_group("fc1").attrs["weight_names"] = [b"fc1_W_1:0", b"fc1_b_1:0"]
        f["fc1"].create_dataset("fc1_W_1:0", data=np.zeros((512, 8), np.float32))
        f["fc1"].create_dataset("fc1_b_1:0", data=np.zeros(8, np.float32))
    with pytest.raises(WeightsFileError, match=r"layer 'fc1' \(shapes \(512, 8\), \(8,\)\).*does not have"):
        keras_weights.load_h5_weights(model, path)
    assert_nothing_loaded(model, before)


def test_a_listed_weight_that_is_missing_is_a_damaged_file(damaged):
    path, model, before = damaged
    with h5py.File(path, "r+") as f:
        del f["block5_conv3"]["block5_conv3_b_1:0"]
    with pytest.raises(WeightsFileError, match="block5_conv3_b_1:0.*damaged"):
        keras_weights.load_h5_weights(model, path)
    assert_nothing_loaded(model, before)


@pytest.mark.parametrize("cut", [0.5, 0.999])
def test_a_truncated_file_is_refused_by_hash_and_by_structure(damaged, notop, cut):
    path, model, before = damaged
    expected_hash = md5(path)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * cut)])
    with pytest.raises(WeightsFileError, match=f"md5 is {md5(path)}, but the file_hash given has md5 {expected_hash}"):
        VGG16(weights=path, include_top=False, input_shape=SMALL, file_hash=expected_hash)
    with pytest.raises(WeightsFileError, match="not a readable HDF5 weight file, truncated or damaged"):
        keras_weights.load_h5_weights(model, path)
    assert_nothing_loaded(model, before)


def test_an_altered_byte_is_refused_by_hash(damaged):
    path, _, _ = damaged
    expected_hash = md5(path)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside block5's kernels: the structure still reads
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsFileError, match="truncated, altered or a different file"):
        VGG16(weights=path, include_top=False, input_shape=SMALL, file_hash=expected_hash)


def test_files_that_are_not_keras_weights(tmp_path):
    model = VGG16(include_top=False, weights=None, input_shape=SMALL)
    text = tmp_path / "notes.h5"
    text.write_text("not HDF5")
    with pytest.raises(WeightsFileError, match="not a readable HDF5 weight file"):
        keras_weights.load_h5_weights(model, text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    with pytest.raises(WeightsFileError, match="not a Keras weight file"):
        keras_weights.load_h5_weights(model, other)
    integers = tmp_path / "integers.h5"
    with h5py.File(integers, "w") as f:
        f.attrs["layer_names"] = [b"block1_conv1"]
        f.create_group("block1_conv1").attrs["weight_names"] = [b"k"]
        f["block1_conv1"].create_dataset("k", data=np.zeros((3, 3, 3, 64), np.int32))
    with pytest.raises(WeightsFileError, match="int32 values"):
        keras_weights.load_h5_weights(model, integers)


# --- Chollet 5.3: a frozen base under a new head -------------------------------------------------


def test_a_frozen_base_under_a_dense_head_trains_only_the_head():
    miniconv.utils.set_random_seed(0)
    base = VGG16(weights=None, include_top=False, input_shape=(150, 150, 3))
    base.trainable = False
    model = miniconv.Sequential([
        base,
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dense(1, activation="sigmoid"),
    ])
    assert len(model.trainable_weights) == 4
    model.compile(optimizer=miniconv.optimizers.RMSprop(learning_rate=2e-5), loss="binary_crossentropy",
                  metrics=["accuracy"])
    x = images(4, (150, 150, 3), seed=3)
    y = np.array([0, 1, 1, 0], np.float32)
    base_before = [w.copy() for w in base.get_weights()]
    head_before = [w.copy() for w in model.get_weights()[len(base_before):]]
    history = model.fit(x, y, epochs=2, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert_nothing_loaded(base, base_before)
    head_after = model.get_weights()[len(base_before):]
    assert all(not np.array_equal(a, b) for a, b in zip(head_after, head_before))
    assert model.predict(x, verbose=0).shape == (4, 1)
