"""The demo's stage configs (s2r_jax.demo): what each seed trains from what, built without training.

The demo itself takes minutes (docs/benchmarks.md, "The demo"); these check its wiring, which a
run would only reveal in its numbers."""
import pytest

from configs_util import load_config
from s2r_jax import config_schema, demo

DATA = {"train": "/data/tfds/train", "style_rgb": "/data/style/rgb"}


def test_each_seed_starts_stage2_from_its_own_stage1_and_the_shared_pretraining():
    config = load_config("demo")
    stages = demo.seed_configs(config, "/w", DATA, "/w/ste", seed=2)
    (p1, s1), (p2, s2), (pb, b) = stages["stage1"], stages["stage2"], stages["baseline"]
    assert (p1, p2, pb) == ("/w/seed2/stage1", "/w/seed2/stage2", "/w/seed2/baseline")
    assert s1.init_from.struct_encoder == "/w/ste"
    assert s2.init_from.struct_encoder == s2.init_from.struct_decoder == "/w/seed2/stage1"
    assert config.stage2_depth_net_from_stage1 and s2.init_from.depth_net == "/w/seed2/stage1"  # the warm start
    assert (s1.num_train_steps, s2.num_train_steps, b.num_train_steps) == (
        config.steps.stage1, config.steps.stage2, config.steps.baseline)
    # the baseline trains as many DepthNet steps as S2R-DepthNet's DepthNet gets over both stages
    assert b.num_train_steps == s1.num_train_steps + s2.num_train_steps
    assert {c.init_seed for c in (s1, s2, b)} == {c.data.shuffle_seed for c in (s1, s2, b)} == {2}
    assert b.model.rgb_baseline and tuple(b.train_modules) == ("depth_net",) and not b.use_attention
    for c in (s1, s2, b):
        config_schema.validate(c)


def test_without_the_warm_start_stage2_trains_a_fresh_depthnet_as_the_paper():
    config = load_config("demo")
    config.stage2_depth_net_from_stage1 = False
    _, s2 = demo.seed_configs(config, "/w", DATA, "/w/ste", seed=0)["stage2"]
    assert s2.init_from.depth_net == ""
    assert s2.init_from.struct_decoder == "/w/seed0/stage1"


@pytest.mark.parametrize("field", ["style_dim", "mlp_dim", "dis_dim", "decoder_res_blocks", "dis_layers",
                                   "dis_scales"])
def test_pretraining_takes_the_demos_widths_and_depths(field):
    config = load_config("demo")
    config.ste[field] = config.ste[field] + 100
    assert config.ste[field] != load_config("ste_pretrain").model[field]  # not what the stage config has
    ste = demo.ste_config(config, DATA)
    assert ste.model[field] == config.ste[field]
    assert tuple(ste.data.image_size) == tuple(config.ste.image_size) and ste.style_images == DATA["style_rgb"]
    config_schema.validate(ste)


class _RecordingTrainer:
    """train.py's `train(config, workdir)`, recording instead of training."""

    def __init__(self):
        self.calls = []

    def train(self, config, workdir):
        self.calls.append((workdir, config.stage, config.num_train_steps))


@pytest.mark.parametrize("baseline", [True, False])
def test_a_seed_trains_stage1_then_stage2_then_the_baseline(baseline, capsys):
    config, trainer = load_config("demo"), _RecordingTrainer()
    runs = demo.train_seed(config, "/w", DATA, "/w/ste", 1, trainer, baseline=baseline)
    want = [("/w/seed1/stage1", "struct_decoder", config.steps.stage1),
            ("/w/seed1/stage2", "dsa_depth", config.steps.stage2),
            ("/w/seed1/baseline", "rgb_baseline", config.steps.baseline)][:3 if baseline else 2]
    assert trainer.calls == want
    assert runs == {name: path for name, (path, _, _) in zip(("stage1", "stage2", "baseline"), want)}
    assert f"seed 1: stage 1 {config.steps.stage1} steps" in capsys.readouterr().out
