"""Virtual KITTI (1.3.1 and 2) as a manual-download TFDS dataset."""
