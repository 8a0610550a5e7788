"""Logging set-up shared by the command-line programs (no tensorflow)."""
import logging as pylogging

from absl import logging


def quiet_library_logs() -> None:
    """Keep orbax's and TFDS's per-operation INFO lines out of the log (warnings still
    show; our own and clu's metric lines are unaffected)."""
    noisy = ("/orbax/", "/tensorflow_datasets/", "/etils/")

    class _Filter(pylogging.Filter):
        def filter(self, record):
            return record.levelno >= pylogging.WARNING or not any(n in record.pathname for n in noisy)

    logging.get_absl_handler().addFilter(_Filter())
