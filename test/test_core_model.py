"""DVLA model: shapes, config round trip, save/load, refusal of pickle/corrupt checkpoints, HF backbone by path."""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2Model

from fast_dvla_ros.core.checkpoint import CheckpointError
from fast_dvla_ros.core.config import DVLAConfig
from fast_dvla_ros.core.model import DVLA, MASKED_BIN


def _inputs(model: DVLA, batch: int = 2, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    s = model.config.image_size
    images = torch.randint(0, 256, (batch, 3, s, s), generator=g, dtype=torch.uint8)
    instr = torch.as_tensor(model.instruction_tokenizer.encode_batch(["pick the red block"] * batch))
    proprio = torch.randn(batch, model.config.proprio_dim, generator=g)
    bins = torch.randint(0, model.config.num_bins, (batch, model.config.num_action_tokens), generator=g)
    bins[:, ::3] = MASKED_BIN
    return images, instr, proprio, bins


@pytest.fixture(scope="module")
def tiny() -> DVLA:
    torch.manual_seed(0)
    return DVLA(DVLAConfig.preset("tiny")).eval()


def test_presets_sizes() -> None:
    assert 1e6 <= sum(p.numel() for p in DVLA(DVLAConfig.preset("tiny")).parameters()) <= 3e6
    cfg = DVLAConfig.preset("base")
    assert (cfg.hidden_size, cfg.num_layers, cfg.intermediate_size) == (896, 24, 4864)


def test_config_json_round_trip() -> None:
    cfg = DVLAConfig.preset("sim", horizon=4)
    assert DVLAConfig.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError):
        DVLAConfig.from_dict({**cfg.to_dict(), "bogus": 1})
    with pytest.raises(ValueError):
        DVLAConfig(image_size=30, patch_size=8)


def test_forward_shapes_and_mask_effect(tiny: DVLA) -> None:
    images, instr, proprio, bins = _inputs(tiny)
    later = bins.clone()
    later[:, 8:] = (later[:, 8:] + 7).clamp(0, 255)  # change every token after the first block
    with torch.inference_mode():
        bc = tiny.forward_train(images, instr, proprio, bins, attention="block_causal")
        bc2 = tiny.forward_train(images, instr, proprio, later, attention="block_causal")
        bd = tiny.forward_train(images, instr, proprio, bins, attention="bidirectional")
        bd2 = tiny.forward_train(images, instr, proprio, later, attention="bidirectional")
    assert bc.shape == (2, 64, 256)
    # block-causal: the first block cannot see later blocks; bidirectional: it can
    assert torch.allclose(bc[:, :8], bc2[:, :8], atol=1e-6)
    assert not torch.allclose(bd[:, :8], bd2[:, :8], atol=1e-4)
    assert not torch.allclose(bc[:, 8:], bc2[:, 8:], atol=1e-4)


def test_bad_inputs_raise_clear_errors(tiny: DVLA) -> None:
    images, instr, proprio, bins = _inputs(tiny)
    with pytest.raises(ValueError, match="images"):
        tiny.forward_train(images[:, :, :16], instr, proprio, bins)
    bad = bins.clone()
    bad[0, 0] = 999
    with pytest.raises(ValueError, match="bins"):
        tiny.forward_train(images, instr, proprio, bad)


def test_training_step_reduces_loss() -> None:
    torch.manual_seed(0)
    model = DVLA(DVLAConfig.preset("tiny"))
    images, instr, proprio, target = _inputs(model, batch=4)
    # a learnable target: the bin depends on the action position (and the item's proprio sign)
    target[:] = (torch.arange(64) * 4)[None] + (proprio[:, :1] > 0).long()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for step in range(30):
        masked = torch.rand(target.shape, generator=torch.Generator().manual_seed(step)) < 0.5
        inp = target.masked_fill(masked, MASKED_BIN)
        loss = model.loss(model.forward_train(images, instr, proprio, inp), target, masked)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_save_load_identical_logits(tiny: DVLA, tmp_path) -> None:
    tiny.set_proprio_stats(torch.arange(8.0), torch.full((8,), 2.0))
    tiny.save_pretrained(tmp_path / "ck")
    back = DVLA.from_pretrained(tmp_path / "ck")
    images, instr, proprio, bins = _inputs(tiny)
    with torch.inference_mode():
        assert torch.equal(tiny(images, instr, proprio, bins), back(images, instr, proprio, bins))
    assert torch.equal(back.proprio_mean, torch.arange(8.0))
    assert back.action_tokenizer.space == tiny.action_tokenizer.space


def test_pickle_refused(tiny: DVLA, tmp_path) -> None:
    path = tmp_path / "model.pt"
    torch.save(tiny.state_dict(), path)
    with pytest.raises(CheckpointError, match="pickle"):
        DVLA.from_pretrained(path)
    d = tmp_path / "dir"
    d.mkdir()
    torch.save(tiny.state_dict(), d / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle"):
        DVLA.from_pretrained(d)


def test_missing_and_corrupt_checkpoints(tiny: DVLA, tmp_path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        DVLA.from_pretrained(tmp_path / "nope")
    d = tiny.save_pretrained(tmp_path / "ck")
    weights = d / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="corrupt"):
        DVLA.from_pretrained(d)
    d2 = tiny.save_pretrained(tmp_path / "ck2")
    (d2 / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config"):
        DVLA.from_pretrained(d2)
    d3 = tiny.save_pretrained(tmp_path / "ck3")
    (d3 / "config.json").write_text(DVLAConfig.preset("tiny", hidden_size=64, num_heads=2).to_json())
    with pytest.raises(CheckpointError):
        DVLA.from_pretrained(d3)


def test_hf_backbone_by_path(tmp_path) -> None:
    torch.manual_seed(0)
    qcfg = Qwen2Config(
        vocab_size=32, hidden_size=96, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, intermediate_size=192, tie_word_embeddings=False,
    )
    Qwen2Model(qcfg).save_pretrained(tmp_path / "qwen")
    model = DVLA(DVLAConfig.preset("tiny", backbone_path=str(tmp_path / "qwen"))).eval()
    assert model.config.hidden_size == 96 and model.config.num_layers == 2
    ref = Qwen2Model.from_pretrained(tmp_path / "qwen")
    assert torch.equal(model.backbone.layers[0].mlp.up_proj.weight, ref.layers[0].mlp.up_proj.weight)
    images, instr, proprio, bins = _inputs(model)
    model.save_pretrained(tmp_path / "dvla")
    back = DVLA.from_pretrained(tmp_path / "dvla")  # rebuilt from the saved backbone config, no path needed
    with torch.inference_mode():
        assert torch.equal(model(images, instr, proprio, bins), back(images, instr, proprio, bins))
    with pytest.raises(CheckpointError):
        DVLA(DVLAConfig.preset("tiny", backbone_path=str(tmp_path / "missing")))


class _PooledTower(torch.nn.Module):
    """Stand-in for a pretrained vision tower: any module mapping images to [B, N, C] with ``output_dim``."""

    output_dim = 24

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, self.output_dim, 16, stride=16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).flatten(2).transpose(1, 2)


def test_custom_vision_tower(tmp_path) -> None:
    model = DVLA(DVLAConfig.preset("tiny"), vision_tower=_PooledTower()).eval()
    assert model.num_image_tokens == 4 and model.prefix_len == 4 + 32 + 1
    images, instr, proprio, bins = _inputs(model)
    with torch.inference_mode():
        logits = model(images, instr, proprio, bins)
    assert logits.shape == (2, 64, 256)
    model.save_pretrained(tmp_path / "ck")
    back = DVLA.from_pretrained(tmp_path / "ck", vision_tower=_PooledTower())
    with torch.inference_mode():
        assert torch.equal(back(images, instr, proprio, bins), logits)
    with pytest.raises(CheckpointError):  # weights of the custom tower do not fit the default encoder
        DVLA.from_pretrained(tmp_path / "ck")
