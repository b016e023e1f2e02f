"""EfficientNet-Lite0's architecture, built from miniconv layers (``build``), with Keras's layer names.

The architecture, read from the source of PyPI's ``efficientnet-lite-pytorch`` 0.1.0
(``model.py``, ``utils.py``: ``efficientnet_lite`` and ``efficientnet_params("efficientnet-lite0")``),
which mirrors TensorFlow's ``efficientnet/lite/efficientnet_lite_builder.py``:

- Width and depth coefficients 1.0 (so ``round_filters`` / ``round_repeats`` change nothing: every
  width is already a multiple of the divisor 8), resolution 224, dropout 0.2 before the
  classifier, drop-connect rate 0.2 (stochastic depth, a training-only regulariser: not
  reproduced here, it is the identity at inference). ``fix_head_stem``: the stem (32) and head
  (1280) widths and the first and last stages' repeats are never scaled.
- Activation ReLU6 everywhere (``relu_fn="relu6"``), no squeeze-and-excitation (``use_se=False``),
  no biases in the convolutions.
- Batch normalization after every convolution: epsilon 1e-3, momentum 0.99 in Keras's convention
  (PyTorch's ``momentum=0.01``, which weighs the new batch instead of the old average).
- Padding: TensorFlow's SAME. The reference pads each convolution with ``ZeroPad2d`` computed for
  224x224 (``Conv2dStaticSamePadding``: ``pad = max((ceil(H/s) - 1) s + k - H, 0)``, ``pad // 2`` on
  top / left, the rest on the bottom / right). So at stride 2 the padding is asymmetric: a 3x3
  stride-2 convolution of 224 rows pads 0 above and 1 below. miniconv's ``padding="same"`` is
  exactly that rule, computed for the actual input size (as the TensorFlow original does); at
  224x224 the two are identical, and at other sizes miniconv follows TensorFlow.
- Stem: Conv2D(32, 3x3, stride 2) -> BN -> ReLU6.
- 16 MBConv blocks in 7 stages, ``(repeats, kernel, stride, expand ratio, in, out)``:
  (1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
  (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320); the stride applies to a
  stage's first block, later blocks take stride 1 and ``in = out``. A block:
  [expand: Conv2D(in * e, 1x1) -> BN -> ReLU6, absent when e = 1] -> DepthwiseConv2D(k x k, stride)
  -> BN -> ReLU6 -> project: Conv2D(out, 1x1) -> BN (linear) -> [+ the block's input when
  stride 1 and in == out].
- Head: Conv2D(1280, 1x1) -> BN -> ReLU6 -> global average pooling -> Dropout(0.2) ->
  Dense(1000) (the reference's ``_fc``; the checkpoint's logits).
- Input: RGB, channels last here (the reference is NCHW), scaled by ``preprocess_input``.

Layer names are Keras's EfficientNet names (``stem_conv``, ``block2a_expand_conv``, ``block2a_dwconv``,
``block2b_add``, ``top_conv``, ``predictions``, ...). The model is Keras's too: ``model.to_keras()``
gives the same network in Keras. 4,694,024 parameters with the top, of which 4,652,008 are
trainable (the reference's parameter count; Keras and miniconv also count the batch
normalizations' 42,016 moving statistics); 3,413,024 without the top (3,371,008 trainable).

The public API (``EfficientNetLite0``, ``preprocess_input``) is in ``efficientnet_lite0.py``; the
weights in ``efficientnet_weights.py``.
"""

from __future__ import annotations

from .. import layers
from ..layers.core import Input
from ..models import Model
from .inputs import source_inputs

DEFAULT_SIZE = 224
MIN_SIZE = 32
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99  # Keras's convention; PyTorch's momentum=0.01
DROPOUT_RATE = 0.2
STEM_FILTERS = 32
HEAD_FILTERS = 1280
# (repeats, kernel, stride, expand ratio, input filters, output filters): efficientnet_lite's block strings
# 'r1_k3_s11_e1_i32_o16', 'r2_k3_s22_e6_i16_o24', ..., 'r1_k3_s11_e6_i192_o320'
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)

def _batch_norm(name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)


def _relu6(name):
    return layers.ReLU(max_value=6.0, name=name)


def _mbconv(x, prefix, filters_in, filters_out, kernel, stride, expand):
    """One MBConv block (see the module docstring); ``prefix`` like "block2a_"."""
    inputs = x
    filters = filters_in * expand
    if expand != 1:
        x = layers.Conv2D(filters, 1, padding="same", use_bias=False, name=prefix + "expand_conv")(x)
        x = _batch_norm(prefix + "expand_bn")(x)
        x = _relu6(prefix + "expand_activation")(x)
    x = layers.DepthwiseConv2D(kernel, strides=stride, padding="same", use_bias=False, name=prefix + "dwconv")(x)
    x = _batch_norm(prefix + "bn")(x)
    x = _relu6(prefix + "activation")(x)
    x = layers.Conv2D(filters_out, 1, padding="same", use_bias=False, name=prefix + "project_conv")(x)
    x = _batch_norm(prefix + "project_bn")(x)
    if stride == 1 and filters_in == filters_out:
        x = layers.Add(name=prefix + "add")([x, inputs])
    return x


def block_prefixes() -> list[tuple[str, tuple]]:
    """``(prefix, (kernel, stride, expand, in, out))`` of the 16 blocks in order: block1a_, block2a_, block2b_, ..."""
    blocks = []
    for stage, (repeats, kernel, stride, expand, filters_in, filters_out) in enumerate(STAGES):
        for r in range(repeats):
            first = r == 0
            blocks.append((f"block{stage + 1}{chr(ord('a') + r)}_",
                           (kernel, stride if first else 1, expand, filters_in if first else filters_out, filters_out)))
    return blocks


def build(input_shape=(DEFAULT_SIZE, DEFAULT_SIZE, 3), include_top=True, pooling=None, classes=1000,
          classifier_activation="softmax", name="efficientnet_lite0", input_tensor=None):
    """The architecture with freshly initialised weights (``EfficientNetLite0`` loads weights into it),
    on a new Input or on ``input_tensor``."""
    inputs = Input(shape=input_shape, name="input_layer") if input_tensor is None else input_tensor
    x = layers.Conv2D(STEM_FILTERS, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = _batch_norm("stem_bn")(x)
    x = _relu6("stem_activation")(x)
    for prefix, (kernel, stride, expand, filters_in, filters_out) in block_prefixes():
        x = _mbconv(x, prefix, filters_in, filters_out, kernel, stride, expand)
    x = layers.Conv2D(HEAD_FILTERS, 1, padding="same", use_bias=False, name="top_conv")(x)
    x = _batch_norm("top_bn")(x)
    x = _relu6("top_activation")(x)
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(DROPOUT_RATE, name="top_dropout")(x)
        x = layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    return Model(inputs if input_tensor is None else source_inputs(input_tensor), x, name=name)
