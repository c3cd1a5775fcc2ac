"""Training side of the package: demonstrations, trainers, the ``make train`` pipeline (no ROS imports).

Kept import-free so ``python -m fast_dvla_ros.train.demos`` does not pull in torch.
"""
