"""iBims-1 core as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
