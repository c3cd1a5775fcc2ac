"""Evaluation, no ROS: simulator episodes and recorded bags.

* ``fast-dvla-sim-eval`` (``closed_loop.py``, real-time replay in ``realtime.py``): seeded episodes of a
  checkpoint + decoder in the conveyor simulator.
* ``fast-dvla-eval`` (``cli.py`` and the modules it uses): timing, safety and outcome report of a
  recorded run, from its bag alone.

No ROS import anywhere in here: a bag copied off the robot is evaluated on any laptop, and a
checkpoint is evaluated on a training box. Importing the package imports nothing heavy.
"""
