"""Training: configs, official initialisation, train state, the sharded step, the loop.

`config`, `init`, `state`, `step` and `sharding` import without tensorflow (they run
on machines without it); `loop` drives the tf.data pipeline and clu logging.
"""
