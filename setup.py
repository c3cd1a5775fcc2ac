"""pip entry for the Python half of the package (the venv path in README.md).

colcon builds the package with CMake (ament_cmake) instead; see CMakeLists.txt.
"""

from setuptools import setup

setup()
