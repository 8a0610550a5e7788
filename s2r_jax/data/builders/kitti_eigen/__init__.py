"""KITTI raw (Eigen split) as a manual-download TFDS dataset."""
