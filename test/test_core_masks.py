"""Attention masks: truth tables for bidirectional and block-causal layouts."""

from __future__ import annotations

import torch

from fast_dvla_ros.core import masks as M


def test_block_ids() -> None:
    assert M.block_ids(2, 2, 3).tolist() == [0, 0, 1, 1, 1, 2, 2, 2]


def test_block_causal_truth_table() -> None:
    # prefix of 2, two blocks of 2: P P A A B B
    got = M.block_causal_mask(2, 2, 2).int().tolist()
    expected = [
        [1, 1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
    ]
    assert got == expected


def test_bidirectional_truth_table() -> None:
    assert M.bidirectional_mask(3).all() and M.bidirectional_mask(3).shape == (3, 3)


def test_prefix_isolated_bidirectional_truth_table() -> None:
    # prefix of 2, then 3 action tokens: the prefix sees only itself, actions see everything
    got = M.prefix_isolated_bidirectional_mask(2, 5).int().tolist()
    assert got == [[1, 1, 0, 0, 0], [1, 1, 0, 0, 0]] + [[1, 1, 1, 1, 1]] * 3


def test_block_causal_no_block_sees_future() -> None:
    m = M.block_causal_mask(5, 4, 3)
    ids = M.block_ids(5, 4, 3)
    for q in range(m.shape[0]):
        for k in range(m.shape[1]):
            assert bool(m[q, k]) == bool(ids[k] <= ids[q])


def test_additive_and_4d() -> None:
    b = M.block_causal_mask(1, 1, 1)
    add = M.to_additive(b, torch.float32)
    assert add[0, 0] == 0 and add[0, 1] == torch.finfo(torch.float32).min and add[1, 0] == 0
    four = M.as_4d(add, 3)
    assert four.shape == (3, 1, 2, 2)
