"""Class activation heatmaps (Grad-CAM, Chollet ch. 5.4.3): where in a photo the evidence for a class lies.

    heatmap, class_index = grad_cam(model, image)                 # the top class; the last conv layer
    figure = show_grad_cam(model, photo, class_index=281)         # superimposed on the photo

For a convolution layer's output A (h, w, channels) and the model's output score y_c of class c:

    weights[k] = mean over (i, j) of  d y_c / d A[i, j, k]          how much channel k matters for c
    heatmap    = relu(sum_k weights[k] * A[:, :, k]) / its maximum   in [0, 1], (h, w)

The gradient comes from the engine's pullback: the part of the model after the layer, as a model
of its own (``Model(layer.output, model.output)``), asked for ``input_gradient`` with an upstream
one-hot at class c. ``y_c`` is the model's output as it is (a probability after a softmax or
sigmoid, as in the book); for a one-unit sigmoid model, class 0 is "the output itself" and
``negative=True`` looks at what argues for the other class (its score 1 - y).
"""

from __future__ import annotations

import numpy as np

from ._figures import new_figure
from .feature_maps import model_input


def last_conv_layer(model):
    """The last layer with a spatial (h, w, channels) output: Grad-CAM's default. In a model whose
    last such layer is a nested model (a pretrained base under a head), the base's own last one."""
    candidates = [layer for layer in model.layers if layer.built and isinstance(layer.output_shape, tuple)
                  and len(layer.output_shape) == 4 and type(layer).__name__ != "InputLayer"]
    nested = [layer for layer in model.layers if layer.is_model]
    if nested and (not candidates or model.layers.index(nested[-1]) > model.layers.index(candidates[-1])):
        return last_conv_layer(nested[-1])
    if not candidates:
        raise ValueError(f"grad_cam: {model.name} has no layer with a spatial output (N, h, w, channels)")
    return candidates[-1]


def _layer(model, layer):
    if layer is None:
        return last_conv_layer(model)
    if not isinstance(layer, str):
        return layer
    if layer in [inner.name for inner in model.layers]:
        return model.get_layer(layer)
    for base in (inner for inner in model.layers if inner.is_model):
        if layer in [inner.name for inner in base.layers]:
            return base.get_layer(layer)
    raise ValueError(f"grad_cam: no layer {layer!r} in {model.name} or the models inside it")


def _base_holding(model, layer):
    """The nested model of ``model`` that holds ``layer``, or None when ``layer`` is model's own."""
    if any(inner is layer for inner in model.layers):
        return None
    for base in (inner for inner in model.layers if inner.is_model):
        if any(inner is layer for inner in base.layers):
            return base
    raise ValueError(f"grad_cam: layer {layer.name!r} is not in {model.name} or a model inside it")


def _activation_and_gradient(model, x, target, upstream):
    """(A, d score / d A) for the output A of ``target`` (a layer of ``model`` or of a model nested in
    it) and the score sum(upstream * model(x)): the engine's pullbacks, through the base when nested."""
    import miniconv

    base = _base_holding(model, target)
    if base is None:
        output = _node_of(model, target).outputs[0]
        activation = miniconv.Model(model.input, output).predict(x, verbose=0)
        head = miniconv.Model(output, model.output, name=f"{model.name}_head")
        return activation, head.input_gradient(activation, -1, upstream=upstream)
    node = _node_of(model, base)  # where the base sits in the model
    base_input = x if node.inputs[0] is model.input else miniconv.Model(model.input, node.inputs[0]).predict(x, verbose=0)
    output = _node_of(base, target).outputs[0]
    activation = miniconv.Model(base.input, output).predict(base_input, verbose=0)
    base_output = base.predict(base_input, verbose=0)
    above = miniconv.Model(node.outputs[0], model.output, name=f"{model.name}_head")
    d_base_output = above.input_gradient(base_output, -1, upstream=upstream)
    inside = miniconv.Model(output, base.output, name=f"{base.name}_head")
    return activation, inside.input_gradient(activation, -1, upstream=d_base_output)


def _node_of(model, layer):
    """The call of ``layer`` in ``model``'s graph (a layer shared with other models has one per graph)."""
    nodes = [node for node in model.subgraph().nodes if node.layer is layer]
    if len(nodes) != 1:
        raise ValueError(f"grad_cam: layer {layer.name!r} is called {len(nodes)} times in {model.name}; "
                         f"Grad-CAM needs one call")
    return nodes[0]


def grad_cam(model, image, class_index=None, layer=None, negative=False) -> tuple[np.ndarray, int]:
    """(heatmap (h, w) in [0, 1], class index) for one image; see the module docstring.

    image: (H, W, C) or (H, W) as the model takes its input (the model's own preprocessing layers
    apply); class_index: default the top class of the model's output; layer: a name or a layer of
    the model, or of a model nested in it (a pretrained base), default the last one with a spatial
    output (inside the base when the base comes last).
    """
    x = model_input(model, image)
    target = _layer(model, layer)
    prediction = model.predict(x, verbose=0)
    classes = prediction.shape[-1]
    if class_index is None:
        class_index = int(np.argmax(prediction[0])) if classes > 1 else 0
    if not isinstance(class_index, (int, np.integer)) or not 0 <= class_index < classes:
        raise ValueError(f"grad_cam: class_index must be an int in [0, {classes - 1}], got {class_index!r}")
    upstream = np.zeros_like(prediction)
    upstream[0, class_index] = -1.0 if negative else 1.0
    activation, gradient = _activation_and_gradient(model, x, target, upstream)  # d y_c / d A, (1, h, w, channels)
    weights = gradient[0].mean(axis=(0, 1))
    heatmap = np.maximum(np.tensordot(activation[0], weights, axes=([2], [0])), 0)
    peak = heatmap.max()
    return (heatmap / peak if peak > 0 else heatmap).astype(np.float32), int(class_index)


def superimpose(photo, heatmap, alpha=0.4) -> np.ndarray:
    """The photo (H, W, 3) in [0, 255] or [0, 1] with the heatmap, resized to it and coloured with
    matplotlib's "jet" colour map, blended in at ``alpha``: an (H, W, 3) array in [0, 1]."""
    from matplotlib import colormaps
    from PIL import Image

    photo = np.asarray(photo, dtype=np.float32)
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    if photo.shape[-1] == 1:
        photo = np.repeat(photo, 3, axis=2)
    photo = photo / 255.0 if photo.max() > 1.0 else photo
    H, W = photo.shape[:2]
    resized = np.asarray(Image.fromarray(np.uint8(np.clip(heatmap, 0, 1) * 255)).resize((W, H), Image.BILINEAR))
    coloured = colormaps["jet"](resized / 255.0)[..., :3]
    return np.clip(coloured * alpha + photo * (1 - alpha), 0, 1)


def show_grad_cam(model, photo, class_index=None, layer=None, class_name=None, negative=False):
    """Figure: the photo, the heatmap, and the two superimposed. ``photo`` as the model takes it;
    ``class_name`` labels the class. The figure keeps ``heatmap``, ``class_index`` and ``overlay``."""
    heatmap, class_index = grad_cam(model, photo, class_index, layer, negative)
    overlay = superimpose(photo if np.ndim(photo) == 3 else np.asarray(photo)[..., None], heatmap)
    figure = new_figure((9.6, 3.4))
    figure.subplots(1, 3)
    label = class_name or f"class {class_index}"
    shown = np.asarray(photo, dtype=np.float32)
    shown = shown / 255.0 if shown.max() > 1.0 else shown
    for ax, picture, title in zip(figure.axes, (shown, heatmap, overlay),
                                  ("photo", f"Grad-CAM: {label}", "superimposed")):
        ax.imshow(picture.squeeze(), cmap="jet" if picture is heatmap else None)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    figure.heatmap, figure.class_index, figure.overlay = heatmap, class_index, overlay
    return figure
