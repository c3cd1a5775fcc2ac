"""Fast-dVLA decoder core: action tokenizer, DVLA model, attention masks, decoders and the Policy.

Pure PyTorch + transformers; importing anything here must never import ROS (checked by
test/test_core_no_ros.py), so the same code runs in training scripts, benchmarks and nodes.
"""
