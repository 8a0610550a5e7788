"""Cityscapes validation images with depth from disparity as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
