"""The end-to-end demo on procedural data (python -m s2r_jax.demo --workdir runs/demo).

Small widths and sizes so that everything — data, structure-encoder pretraining, stage 1,
stage 2, an RGB baseline, evaluation — runs in minutes on a 2-core CPU. Not the paper's
setting: see configs/struct_decoder.py and configs/dsa_depth.py for that.
"""
import ml_collections


def get_config(arg: str | None = None):
    c = ml_collections.ConfigDict()
    c.image_size = (96, 160)
    c.ste_image_size = (64, 96)   # the translation networks need no multiple of 16: pretrain smaller, faster
    c.encoder_dim = 8
    c.depth_ngf = 8
    c.dsa_channels = (4, 4, 8, 8, 16, 16, 16, 16)
    c.batch_size = 8
    c.learning_rate = 1e-3        # higher than the paper's 1e-4: few steps
    c.data = ml_collections.ConfigDict(dict(train_frames=160, test_frames=32, style_frames=64))
    c.steps = ml_collections.ConfigDict(dict(ste=60, stage1=200, stage2=200))
    c.protocol = "s2r_official"   # median-scaled, as the paper reports
    c.crop = "none"               # procedural frames have no KITTI border
    if arg == "quick":            # a smoke run of every step
        c.data.train_frames, c.data.test_frames, c.data.style_frames = 16, 8, 16
        c.steps.ste, c.steps.stage1, c.steps.stage2 = 2, 2, 2
    return c
