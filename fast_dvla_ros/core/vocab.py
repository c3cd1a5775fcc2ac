"""Vocabulary layout and the byte-level instruction tokenizer (no model hub needed).

Layout of the shared embedding table (ids):
  [0, NUM_SPECIAL)                       special tokens: [PAD], [MASK], [BOS], [EOS]
  [TEXT_OFFSET, TEXT_OFFSET + 256)       UTF-8 bytes of the instruction
  [ACTION_OFFSET, ACTION_OFFSET + bins)  action bins (bin b -> id ACTION_OFFSET + b)

Byte-level text keeps the tokenizer tiny and total (any string encodes), which suits short robot
instructions; a real LM backbone keeps its own embeddings unused because we feed inputs_embeds.
"""

from __future__ import annotations

import numpy as np

PAD_ID = 0
MASK_ID = 1
BOS_ID = 2
EOS_ID = 3
NUM_SPECIAL = 4
TEXT_OFFSET = NUM_SPECIAL
NUM_TEXT = 256
ACTION_OFFSET = TEXT_OFFSET + NUM_TEXT


def vocab_size(num_bins: int) -> int:
    return ACTION_OFFSET + num_bins


def bins_to_token_ids(bins: np.ndarray) -> np.ndarray:
    return np.asarray(bins, np.int64) + ACTION_OFFSET


def token_ids_to_bins(ids: np.ndarray) -> np.ndarray:
    return np.asarray(ids, np.int64) - ACTION_OFFSET


class ByteInstructionTokenizer:
    """Instruction string -> fixed-length ids: [BOS] bytes... [EOS] [PAD]...

    Fixed length keeps the prefix shape (and so the attention mask) constant. Over-long
    instructions are truncated (keeping [EOS]) rather than rejected: a control loop must not die
    on a verbose operator.
    """

    def __init__(self, max_len: int = 32) -> None:
        if max_len < 3:
            raise ValueError("max_len must be >= 3 ([BOS] x [EOS])")
        self.max_len = int(max_len)

    def encode(self, text: str) -> np.ndarray:
        if not isinstance(text, str):
            raise TypeError(f"instruction must be str, got {type(text).__name__}")
        raw = text.strip().lower().encode("utf-8")[: self.max_len - 2]
        ids = [BOS_ID, *(TEXT_OFFSET + b for b in raw), EOS_ID]
        ids += [PAD_ID] * (self.max_len - len(ids))
        return np.asarray(ids, np.int64)

    def encode_batch(self, texts: list[str]) -> np.ndarray:
        return np.stack([self.encode(t) for t in texts])

    def decode(self, ids: np.ndarray) -> str:
        data = bytes(int(i) - TEXT_OFFSET for i in ids if TEXT_OFFSET <= int(i) < TEXT_OFFSET + NUM_TEXT)
        return data.decode("utf-8", errors="replace")
