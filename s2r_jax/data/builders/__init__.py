"""TFDS builders (manual download): importing this package registers them.

  virtual_kitti   configs 1.3.1 (the paper's training data) and 2
  kitti_eigen     Eigen test split with velodyne and improved ground truth (+ a train split)
  nyu_depth_test  the 654 NYUv2 test frames
"""
from s2r_jax.data import tf_setup  # noqa: F401  (before tfds: TensorFlow stays off the GPU)
from s2r_jax.data.builders.kitti_eigen.kitti_eigen_dataset_builder import Builder as KittiEigen
from s2r_jax.data.builders.nyu_depth_test.nyu_depth_test_dataset_builder import Builder as NyuDepthTest
from s2r_jax.data.builders.virtual_kitti.virtual_kitti_dataset_builder import Builder as VirtualKitti

BUILDERS = {"virtual_kitti": VirtualKitti, "kitti_eigen": KittiEigen, "nyu_depth_test": NyuDepthTest}
