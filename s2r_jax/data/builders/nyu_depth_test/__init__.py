"""NYU Depth v2 test frames as a manual-download TFDS dataset."""
