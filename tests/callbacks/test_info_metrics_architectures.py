"""InfoMetrics with ``layers="auto"`` on the networks people train: torchvision's ResNet-18,
an ``nn.TransformerEncoder`` classifier over padded token batches, a Hugging Face BERT (a
tiny random one built from a config: nothing is downloaded), and a module run twice per
forward pass. Each is a real Trainer run with ``InfoMetrics()`` and no other user code."""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from torchvision.models import resnet18

from lit_infobottleneck.callbacks import InfoMetrics
from lit_infobottleneck.callbacks._capture import ActivationCapture, resolve_layers
from lit_infobottleneck.callbacks._tokens import reduce_tokens

pytestmark = pytest.mark.slow

RESNET_BLOCKS = [f"layer{s}.{b}" for s in (1, 2, 3, 4) for b in (0, 1)]


def _trainer(tmp_path: Path, callback: InfoMetrics, max_epochs: int = 1) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_epochs=max_epochs,
        logger=CSVLogger(tmp_path, name="logs", version=0),
        callbacks=[callback],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        num_sanity_val_steps=0,
    )


def _info_json(tmp_path: Path) -> dict:
    return json.loads((tmp_path / "logs" / "version_0" / "info_metrics.json").read_text())


def _assert_finite_records(callback: InfoMetrics, layers: list[str]) -> None:
    assert callback.meta["layers"] == layers
    for label in callback.estimators:
        mine = {r["layer"]: r for r in callback.history if r["estimator"] == label}
        assert list(mine) == layers, label
        assert all(math.isfinite(r["I_XT"]) and math.isfinite(r["I_TY"]) for r in mine.values())


class Classifier(L.LightningModule):
    """A plain LightningModule around any ``nn.Module`` taking ``(x, y)`` batches."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self(x), y)

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _images(n: int, seed: int) -> TensorDataset:
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 4
    patterns = torch.randn(4, 3, 32, 32, generator=gen)
    return TensorDataset(patterns[y] + 0.5 * torch.randn(n, 3, 32, 32, generator=gen), y)


# ---------------------------------------------------------------------- 1. ResNet-18


def test_auto_chooses_resnet_blocks_or_stages_then_pooling_and_head():
    model = Classifier(resnet18(num_classes=4))
    names = [n for n, _ in resolve_layers(model, "auto")[0]]
    assert names == [f"net.{b}" for b in RESNET_BLOCKS] + ["net.avgpool", "net.fc"]
    stages = [n for n, _ in resolve_layers(model, "auto:stages")[0]]
    assert stages == [f"net.layer{s}" for s in (1, 2, 3, 4)] + ["net.avgpool", "net.fc"]
    activations = [n for n, _ in resolve_layers(model, "auto:activations")[0]]
    assert activations == ["net.relu"] + [f"net.{b}.relu" for b in RESNET_BLOCKS] + ["net.fc"]


def test_resnet18_with_default_infometrics_measures_every_block_pooling_and_head(tmp_path):
    torch.manual_seed(0)
    callback = InfoMetrics(max_samples=64)
    model = Classifier(resnet18(num_classes=4))
    loaders = [DataLoader(_images(n, seed), batch_size=32) for n, seed in ((64, 0), (64, 1))]
    _trainer(tmp_path, callback).fit(model, *loaders)
    expected = [f"net.{b}" for b in RESNET_BLOCKS] + ["net.avgpool", "net.fc"]
    _assert_finite_records(callback, expected)
    saved = _info_json(tmp_path)
    assert saved["layer_rules"] == ["auto: repeated blocks, pooled features, the head"]
    assert saved["token_reduction"] == {"option": "auto", "layers": {}}  # images: no tokens


def test_auto_on_other_torchvision_and_hugging_face_architectures():
    from torchvision.models import efficientnet_b0, mobilenet_v3_small
    from transformers import ResNetConfig, ResNetForImageClassification

    def names(model, spec="auto"):
        return [n for n, _ in resolve_layers(model, spec)[0]]

    # squeeze-excitation modules (one per block) are parts of the blocks, not blocks
    efficient = names(efficientnet_b0(weights=None))
    assert len(efficient) == 16 + 2 and efficient[-2:] == ["avgpool", "classifier.1"]
    assert all(n.count(".") == 2 for n in efficient[:16])  # features.<stage>.<block>
    mobile = names(mobilenet_v3_small(weights=None))
    assert mobile == [f"features.{i}" for i in range(1, 12)] + ["avgpool", "classifier.3"]
    # Hugging Face ResNet: stages hold bottlenecks that hold conv layers
    config = ResNetConfig(depths=[2, 2], hidden_sizes=[16, 32], embedding_size=8)
    hf = ResNetForImageClassification(config)
    blocks = [f"resnet.encoder.stages.{s}.layers.{b}" for s in (0, 1) for b in (0, 1)]
    assert names(hf) == [*blocks, "resnet.pooler", "classifier.1"]
    stages = ["resnet.encoder.stages.0.layers", "resnet.encoder.stages.1.layers"]
    assert names(hf, "auto:stages") == [*stages, "resnet.pooler", "classifier.1"]
    # a one-layer TransformerEncoder: its layer is a block although it is not repeated
    one = nn.Sequential(
        nn.TransformerEncoder(nn.TransformerEncoderLayer(16, 2, batch_first=True), 1),
        nn.Linear(16, 2),
    )
    assert names(one) == ["0.layers.0", "1"]


# ---------------------------------------------------------------------- 2. a TransformerEncoder

VOCAB, TOKENS, WIDTH = 20, 12, 32


class TokenClassifier(L.LightningModule):
    """Embedding, 3 encoder layers, a masked mean-pool (functional) and a linear head, over
    dict batches ``{"input_ids", "attention_mask", "labels"}``."""

    def __init__(self, batch_first: bool = True, nested: bool = False) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, WIDTH)
        layer = nn.TransformerEncoderLayer(WIDTH, 4, 64, dropout=0.0, batch_first=batch_first)
        self.encoder = nn.TransformerEncoder(layer, 3, enable_nested_tensor=nested and batch_first)
        self.batch_first = batch_first
        self.head = nn.Linear(WIDTH, 3)

    def forward(self, input_ids, attention_mask):
        h = self.embedding(input_ids)
        if not self.batch_first:
            h = h.transpose(0, 1)
        h = self.encoder(h, src_key_padding_mask=attention_mask == 0)
        if not self.batch_first:
            h = h.transpose(0, 1)
        weights = attention_mask.unsqueeze(-1).float()
        return self.head((h * weights).sum(1) / weights.sum(1))

    def _loss(self, batch):
        logits = self(batch["input_ids"], batch["attention_mask"])
        return nn.functional.cross_entropy(logits, batch["labels"])

    def training_step(self, batch, batch_idx):
        return self._loss(batch)

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self._loss(batch))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def _token_batches(n: int, seed: int, pad_id: int = 0) -> list[dict[str, torch.Tensor]]:
    """Samples of 4 to 12 tokens (1..VOCAB-1), padded with ``pad_id``; label = the most
    frequent of the tokens' residues mod 3."""
    gen = torch.Generator().manual_seed(seed)
    samples = []
    for _ in range(n):
        length = int(torch.randint(4, TOKENS + 1, (1,), generator=gen))
        ids = torch.full((TOKENS,), pad_id)
        ids[:length] = torch.randint(1, VOCAB, (length,), generator=gen)
        mask = torch.zeros(TOKENS, dtype=torch.long)
        mask[:length] = 1
        label = torch.bincount(ids[:length] % 3, minlength=3).argmax()
        samples.append({"input_ids": ids, "attention_mask": mask, "labels": label})
    return samples


def test_transformer_encoder_with_default_infometrics_measures_each_layer_and_head(tmp_path):
    torch.manual_seed(0)
    callback = InfoMetrics(max_samples=96)
    model = TokenClassifier()
    train = DataLoader(_token_batches(96, 0), batch_size=32)
    val = DataLoader(_token_batches(96, 1), batch_size=32)
    _trainer(tmp_path, callback).fit(model, train, val)
    expected = ["encoder.layers.0", "encoder.layers.1", "encoder.layers.2", "head"]
    _assert_finite_records(callback, expected)
    saved = _info_json(tmp_path)
    assert saved["token_reduction"]["option"] == "auto"
    assert saved["token_reduction"]["layers"] == {
        name: "mean over the real tokens (mask)" for name in expected[:3]
    }
    assert saved["layer_rules"] == ["auto: repeated blocks, the head"]


def _token_forward(model: nn.Module, batch: dict) -> None:
    model(batch["input_ids"], batch["attention_mask"])


def _captured(
    model: nn.Module,
    batch: dict,
    layers: list[str],
    use_mask: bool = True,
    forward=_token_forward,
    **kwargs,
) -> dict:
    """What ``ActivationCapture`` keeps of one ``forward(model, batch)`` pass (all rows),
    given the batch's attention mask (``use_mask``) or not."""
    named = dict(model.named_modules())
    capture = ActivationCapture([(n, named[n]) for n in layers], **kwargs)
    capture.attach()
    size = batch["input_ids"].shape[0]
    mask = batch["attention_mask"].bool() if use_mask else None
    capture.select(torch.ones(size, dtype=torch.bool), size, mask)
    with torch.no_grad():
        forward(model, batch)
    capture.detach()
    return capture.take()


def _stack(samples: list[dict]) -> dict[str, torch.Tensor]:
    return {key: torch.stack([s[key] for s in samples]) for key in samples[0]}


def test_the_masked_mean_equals_the_closed_form_and_ignores_what_padding_holds():
    torch.manual_seed(0)
    model = TokenClassifier().eval()
    batch = _stack(_token_batches(16, 2, pad_id=0))
    other_padding = _stack(_token_batches(16, 2, pad_id=7))
    assert not torch.equal(batch["input_ids"], other_padding["input_ids"])
    layer = "encoder.layers.1"
    kept = _captured(model, batch, [layer], token_reduction="mean")[layer]
    # closed form: sum over real tokens / number of real tokens, of the layer's own output
    outputs = []
    handle = model.encoder.layers[1].register_forward_hook(lambda m, i, o: outputs.append(o))
    with torch.no_grad():
        model(batch["input_ids"], batch["attention_mask"])
    handle.remove()
    weights = batch["attention_mask"].unsqueeze(-1).float()
    expected = (outputs[0] * weights).sum(1) / weights.sum(1)
    torch.testing.assert_close(kept, expected, rtol=1e-6, atol=1e-6)
    # padding tokens are masked in attention and in the mean: their ids change nothing
    again = _captured(model, other_padding, [layer], token_reduction="mean")[layer]
    torch.testing.assert_close(again, kept, rtol=1e-5, atol=1e-5)
    # without the mask the padding's outputs enter the mean (so the test above can fail)
    unmasked = _captured(model, other_padding, [layer], token_reduction="mean", use_mask=False)
    assert (unmasked[layer] - kept).abs().max() > 1e-2


def test_cls_and_flatten_and_batch_second_and_nested_sequences():
    torch.manual_seed(0)
    reference = TokenClassifier().eval()
    batch = _stack(_token_batches(8, 3))
    layer = "encoder.layers.0"
    first = _captured(reference, batch, [layer], token_reduction="cls")[layer]
    flat = _captured(reference, batch, [layer], token_reduction="flatten")[layer]
    mean = _captured(reference, batch, [layer], token_reduction="mean")[layer]
    assert first.shape == (8, WIDTH) and flat.shape == (8, TOKENS * WIDTH)
    torch.testing.assert_close(first, flat[:, :WIDTH])
    # a batch_first=False layer ((tokens, batch, features)) gives the same rows once turned
    second = TokenClassifier(batch_first=False).eval()
    second.load_state_dict(reference.state_dict())
    torch.testing.assert_close(
        _captured(second, batch, [layer], token_reduction="mean")[layer], mean, atol=1e-5, rtol=0
    )
    # the nested-tensor fast path: each sequence averaged over its own tokens
    nested = TokenClassifier(nested=True).eval()
    nested.load_state_dict(reference.state_dict())
    torch.testing.assert_close(
        _captured(nested, batch, [layer], token_reduction="mean", use_mask=False)[layer],
        mean,
        atol=1e-5,
        rtol=0,
    )


def test_reduce_tokens_closed_forms():
    rows = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    mean, how = reduce_tokens(rows, "mean", mask)
    torch.testing.assert_close(mean, torch.tensor([[1.0, 2.0], [6.0, 7.0]]))
    assert how == "mean over the real tokens (mask)"
    plain, how = reduce_tokens(rows, "mean", None)
    torch.testing.assert_close(plain, torch.tensor([[2.0, 3.0], [8.0, 9.0]]))
    assert how == "mean over all tokens"
    torch.testing.assert_close(reduce_tokens(rows, "cls", mask)[0], rows[:, 0])


def test_token_reduction_is_checked_and_auto_flattens_a_1d_cnn(tmp_path):
    with pytest.raises(MisconfigurationException, match="`token_reduction` must be one of"):
        InfoMetrics(token_reduction="max")
    # (batch, channels, length) of a 1-d CNN are not tokens: "auto" flattens them
    net = nn.Sequential(nn.Conv1d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(32, 2))
    x = torch.randn(40, 2, 8)
    data = TensorDataset(x, (x[:, 0, 0] > 0).long())
    callback = InfoMetrics(estimators=["binning"], max_samples=40)
    _trainer(tmp_path, callback).validate(Classifier(net), DataLoader(data, batch_size=20))
    assert callback.meta["layers"] == ["net.1", "net.3"]
    assert callback.meta["token_reduction"]["layers"] == {}


# ---------------------------------------------------------------------- 3. Hugging Face


class HuggingFaceClassifier(L.LightningModule):
    """A ``transformers`` model in a LightningModule, the usual way: ``self.model(**batch)``."""

    def __init__(self) -> None:
        super().__init__()
        from transformers import BertConfig, BertForSequenceClassification

        config = BertConfig(
            vocab_size=VOCAB,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=TOKENS,
            num_labels=3,
        )
        self.model = BertForSequenceClassification(config)

    def training_step(self, batch, batch_idx):
        return self.model(**batch).loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.model(**batch).loss)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def test_hugging_face_bert_with_default_infometrics_and_masks(tmp_path):
    torch.manual_seed(0)
    callback = InfoMetrics(max_samples=96)
    model = HuggingFaceClassifier()
    train = DataLoader(_token_batches(96, 0), batch_size=32)
    val = DataLoader(_token_batches(96, 1), batch_size=32)
    _trainer(tmp_path, callback).fit(model, train, val)
    expected = [
        "model.bert.encoder.layer.0",
        "model.bert.encoder.layer.1",
        "model.bert.pooler",
        "model.classifier",
    ]
    _assert_finite_records(callback, expected)
    saved = _info_json(tmp_path)
    assert saved["layer_rules"] == ["auto: repeated blocks, pooled features, the head"]
    assert saved["token_reduction"]["layers"] == {
        name: "mean over the real tokens (mask)" for name in expected[:2]
    }
    # the captured layer is the masked mean of BERT's own hidden state of that layer
    batch = _stack(_token_batches(8, 4))
    model.eval()
    with torch.no_grad():
        hidden = model.model(**batch, output_hidden_states=True).hidden_states[2]
    kept = _captured(
        model, batch, [expected[1]], forward=lambda m, b: m.model(**b), token_reduction="mean"
    )
    weights = batch["attention_mask"].unsqueeze(-1).float()
    expected_rows = (hidden * weights).sum(1) / weights.sum(1)
    torch.testing.assert_close(kept[expected[1]], expected_rows, rtol=1e-5, atol=1e-6)


def _pad_to_longest(samples: list[dict]) -> dict[str, torch.Tensor]:
    """A ``DataCollatorWithPadding``-like collate: each batch padded to its own longest."""
    width = max(int(s["attention_mask"].sum()) for s in samples)
    return {
        key: torch.stack([s[key][:width] for s in samples])
        if key != "labels"
        else torch.stack([s[key] for s in samples])
        for key in samples[0]
    }


def test_batches_padded_to_their_own_longest_sequence(tmp_path):
    # token ids of widths 12, 11, 8 in the three validation batches (and flattened layer
    # outputs of as many tokens): right-padded with zeros to the widest, not a crash
    torch.manual_seed(0)
    val_samples = sorted(_token_batches(96, 1), key=lambda s: -int(s["attention_mask"].sum()))
    val = DataLoader(val_samples, batch_size=32, collate_fn=_pad_to_longest)
    assert len({b["input_ids"].shape[1] for b in val}) > 1
    for reduction in ("auto", "flatten"):
        callback = InfoMetrics(max_samples=96, token_reduction=reduction)
        _trainer(tmp_path / reduction, callback).validate(HuggingFaceClassifier(), val)
        assert len(callback.history) == 2 * 4, reduction  # 2 estimators x 4 layers
        assert all(math.isfinite(r["I_XT"]) for r in callback.history)


def test_last_token_and_channels_first_outputs():
    rows = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    last, how = reduce_tokens(rows, "last", mask)
    torch.testing.assert_close(last, torch.stack([rows[0, 1], rows[1, 0]]))
    assert how == "the last real token (mask)"
    torch.testing.assert_close(reduce_tokens(rows, "last", None)[0], rows[:, -1])
    # in a model with attention, a Conv1d's (batch, channels, length) is not averaged
    conv = nn.Conv1d(2, 4, 3, padding=1)
    capture = ActivationCapture([("conv", conv)], token_reduction="mean")
    capture.attach()
    capture.select(torch.ones(5, dtype=torch.bool), 5)
    with torch.no_grad():
        out = conv(torch.randn(5, 2, 8))
    capture.detach()
    torch.testing.assert_close(capture.take()["conv"], out.reshape(5, -1))


# ---------------------------------------------------------------------- 4. a shared module


class SharedActivation(nn.Module):
    """One ``nn.Tanh`` used after both hidden layers (a common way to write an MLP)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.fc2, self.out = nn.Linear(8, 16), nn.Linear(16, 8), nn.Linear(8, 4)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.out(self.act(self.fc2(self.act(self.fc1(x)))))


class TwoActivations(SharedActivation):
    """The same network with one activation module per layer."""

    def __init__(self) -> None:
        super().__init__()
        self.act2 = nn.Tanh()

    def forward(self, x):
        return self.out(self.act2(self.fc2(self.act(self.fc1(x)))))


def test_a_module_run_twice_is_measured_at_each_call(tmp_path):
    torch.manual_seed(0)
    shared, separate = SharedActivation(), TwoActivations()
    separate.load_state_dict(shared.state_dict(), strict=False)
    x = torch.randn(120, 8)
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()), 40)
    histories = {}
    for name, net, layers in (
        ("shared", shared, ["net.act", "net.out"]),
        ("separate", separate, ["net.act", "net.act2", "net.out"]),
    ):
        callback = InfoMetrics(layers=layers, max_samples=120)
        _trainer(tmp_path / name, callback).validate(Classifier(net), data)
        histories[name] = callback.history
    assert [r["layer"] for r in histories["shared"]] == [
        "net.act-call1",
        "net.act-call2",
        "net.out",
    ] * 2
    for a, b in zip(histories["shared"], histories["separate"], strict=True):
        assert (a["I_XT"], a["I_TY"]) == pytest.approx((b["I_XT"], b["I_TY"]), abs=1e-9)
    # "auto" on the shared MLP: the activation at each call, then the head
    callback = InfoMetrics(estimators=["binning"], max_samples=120)
    _trainer(tmp_path / "auto", callback).validate(Classifier(SharedActivation()), data)
    assert callback.meta["layers"] == ["net.act-call1", "net.act-call2", "net.out"]


def test_calls_outside_the_measured_loader_are_not_counted():
    act = nn.Tanh()
    capture = ActivationCapture([("act", act)])
    capture.attach()
    capture.select(None, 0)  # another dataloader's batch, or outside a batch
    act(act(torch.zeros(3, 2)))
    capture.select(torch.ones(3, dtype=torch.bool), 3)
    act(torch.zeros(3, 2))
    capture.detach()
    assert list(capture.take()) == ["act"]  # one call per measured forward pass
