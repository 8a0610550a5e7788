"""Training: the pieces `train.py` composes, top-down.

`depth_stage` (stage 1, stage 2, fine-tuning: network, official init and `init_from`, train
state, loss and step), `ste_stage` (structure-encoder pretraining), `init` (the official
initialisers), `sharding` (mesh and sharding rules), `panels` (TensorBoard images) and
`loop` (the loop both kinds share). All but `loop` (clu) import without tensorflow.
"""
