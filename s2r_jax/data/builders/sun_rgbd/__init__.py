"""SUN RGB-D test images as a manual-download TFDS dataset (zero-shot transfer evaluation)."""
