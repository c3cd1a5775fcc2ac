"""fast_dvla_ros: real-time discrete-diffusion VLA policy (Fast-dVLA) for ROS 2.

The generated message modules (``fast_dvla_ros.msg``) are installed by the
rosidl build into the ROS install space, which is a different directory from
this source tree when the package is installed in development (editable) mode.
``extend_path`` makes both halves one package. Keep this file free of imports
of submodules: a colcon install may replace it with rosidl's empty one.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
