"""DrivingStereo test and weather sets as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
