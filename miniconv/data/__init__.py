"""``miniconv.data``: image folders as datasets, and the image warps behind the augmentation layers.

    from miniconv.data import image_dataset_from_directory
    train = image_dataset_from_directory("cats_and_dogs_small/train", image_size=(150, 150), batch_size=20,
                                         label_mode="binary", seed=0)
    model.fit(train, validation_data=validation, epochs=30)

Modules: ``image_folders`` (``image_dataset_from_directory``, ``ImageDataset``: Keras's file
order, labels and splits; decoding ahead in threads; optional caching), ``images`` (decode with
Pillow, resize with TF's bilinear / nearest formulas), ``augment`` (the rotation / translation /
zoom warps as Keras computes them, NumPy reference) and ``augment_kernels`` (their Numba kernel).
Pillow is imported only when an image is read.
"""

from .image_folders import ImageDataset, ImageFolderError, image_dataset_from_directory

__all__ = ["ImageDataset", "ImageFolderError", "image_dataset_from_directory"]
