"""TFDS builders (manual download): importing this package registers them.

Training and the paper's evaluation:
  virtual_kitti     configs 1.3.1 (the paper's training data) and 2
  kitti_eigen       Eigen test split with velodyne and improved ground truth (+ a train split)
  nyu_depth_test    the 654 NYUv2 test frames
Zero-shot transfer (docs/zero_shot.md):
  sun_rgbd          the 5050 SUN RGB-D test images
  ibims             iBims-1 core (100 images)
  diode             DIODE val, configs indoor and outdoor
  hypersim          the HyperSim test partition
  ddad              DDAD val (ZoeDepth's preprocessed layout)
  diml_outdoor      DIML/CVL outdoor test set
  make3d            Make3D Test134
  cityscapes_depth  Cityscapes val, depth from disparity
  driving_stereo    DrivingStereo, configs test, sunny, cloudy, foggy, rainy
"""
from s2r_jax.data import tf_setup  # noqa: F401  (before tfds: TensorFlow stays off the GPU)
from s2r_jax.data.builders.cityscapes_depth.cityscapes_depth_dataset_builder import Builder as CityscapesDepth
from s2r_jax.data.builders.ddad.ddad_dataset_builder import Builder as Ddad
from s2r_jax.data.builders.diml_outdoor.diml_outdoor_dataset_builder import Builder as DimlOutdoor
from s2r_jax.data.builders.diode.diode_dataset_builder import Builder as Diode
from s2r_jax.data.builders.driving_stereo.driving_stereo_dataset_builder import Builder as DrivingStereo
from s2r_jax.data.builders.hypersim.hypersim_dataset_builder import Builder as Hypersim
from s2r_jax.data.builders.ibims.ibims_dataset_builder import Builder as Ibims
from s2r_jax.data.builders.kitti_eigen.kitti_eigen_dataset_builder import Builder as KittiEigen
from s2r_jax.data.builders.make3d.make3d_dataset_builder import Builder as Make3d
from s2r_jax.data.builders.nyu_depth_test.nyu_depth_test_dataset_builder import Builder as NyuDepthTest
from s2r_jax.data.builders.sun_rgbd.sun_rgbd_dataset_builder import Builder as SunRgbd
from s2r_jax.data.builders.virtual_kitti.virtual_kitti_dataset_builder import Builder as VirtualKitti

BUILDERS = {"virtual_kitti": VirtualKitti, "kitti_eigen": KittiEigen, "nyu_depth_test": NyuDepthTest,
            "sun_rgbd": SunRgbd, "ibims": Ibims, "diode": Diode, "hypersim": Hypersim, "ddad": Ddad,
            "diml_outdoor": DimlOutdoor, "make3d": Make3d, "cityscapes_depth": CityscapesDepth,
            "driving_stereo": DrivingStereo}
