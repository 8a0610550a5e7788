"""The checkpoint module's save path: what it costs and that it round-trips."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

from s2r_jax import checkpoint


def test_saving_small_replicated_arrays_compiles_nothing(tmp_path):
    """Orbax's default replica-parallel save slices every replicated array per replica, one
    compiled `slice` per shape: hundreds of compilations for a network's small arrays, longer
    than the save. Slices under `MIN_REPLICA_SLICE_BYTES` are not split, so nothing compiles."""
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    replicated = NamedSharding(mesh, P())
    tree = {"params": {f"layer{i}": {"kernel": jax.device_put(jnp.full((3, 3, i + 1, 8), float(i)), replicated)}
                       for i in range(12)}}
    jax.block_until_ready(tree)
    compiled = []

    def listener(event, seconds, **kwargs):
        if event.endswith("backend_compile_duration"):
            compiled.append(event)

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        with checkpoint.Checkpointer(tmp_path / "w") as ckpt:
            ckpt.save(1, tree, {"written_by": "test"}, force=True)
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)
    assert compiled == []
    restored, _ = checkpoint.load_variables(tmp_path / "w")
    for i in range(12):
        np.testing.assert_array_equal(np.asarray(restored["params"][f"layer{i}"]["kernel"]),
                                      np.full((3, 3, i + 1, 8), float(i), np.float32))
