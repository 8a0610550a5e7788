"""Datasets: readers of the real on-disk formats, TFDS builders, tf.data pipelines,
KITTI ground truth from velodyne and a procedural stand-in dataset.

Only modules that need it import tensorflow (builders and pipelines); the readers,
`kitti_gt` and `procedural` need NumPy and Pillow alone, so they run where
tensorflow is not installed.
"""
