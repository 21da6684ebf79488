"""The uncentred covariance `C = E[k k^T]` of the keys of an MLP output projection, from the world's own corpus.

ROME and MEMIT estimate it from Wikipedia text (100,000 samples); a Behemoth model knows only its world, so the keys
are those of the first `rows` sentences of the `train` split, every token, read exactly as pretraining reads them
(`pretrain.SentenceBatches`: the closing "." replaced by `<eos>`). Estimates are cached in
`$BEHEMOTH_CACHE/covariance/`, keyed by a hash of the model's weights, the world's fingerprint, the layer and `rows`,
so every edit of one model shares them and an edited or retrained model never reuses another's.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path

import torch
from transformers import PreTrainedModel

from behemoth_hf.data import BehemothData, cache_dir
from behemoth_hf.editors.layers import captured_keys, projection
from behemoth_hf.pretrain import SentenceBatches


logger = logging.getLogger(__name__)


def weights_digest(model: PreTrainedModel) -> str:
    """SHA-256 of every tensor of the model's state dict (names, shapes, dtypes and bytes), in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _cache_path(digest: str, data: BehemothData, layer: int, rows: int) -> Path:
    return cache_dir() / "covariance" / f"{digest[:32]}-{data.fingerprint}-layer{layer}-rows{rows}.pt"


@torch.no_grad()
def key_covariances(
    model: PreTrainedModel, data: BehemothData, layers: list[int], rows: int, batch_size: int = 256
) -> dict[int, torch.Tensor]:
    """`{layer: C}` (float64, (d_in, d_in)) for each layer in `layers`, from the cache or one pass over `rows`
    train sentences."""
    digest = weights_digest(model)
    paths = {layer: _cache_path(digest, data, layer, rows) for layer in layers}
    covariances = {layer: torch.load(path) for layer, path in paths.items() if path.is_file()}
    missing = [layer for layer in layers if layer not in covariances]
    if not missing:
        return covariances
    device = next(model.parameters()).device
    sums = {layer: torch.zeros(0) for layer in missing}
    sentences = tokens = 0
    was_training = model.training
    model.eval()
    try:
        for batch in SentenceBatches(data, batch_size, loss="all", skip_rows=0, excluded=None):
            batch = {name: tensor[: rows - sentences].to(device) for name, tensor in batch.items()}
            mask = batch["attention_mask"].bool()
            with contextlib.ExitStack() as stack:
                captured = [stack.enter_context(captured_keys(projection(model, layer))) for layer in missing]
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            for layer, keys in zip(missing, captured):
                keys = keys[0][mask].double()  # (tokens, d_in)
                sums[layer] = keys.T @ keys + (sums[layer] if tokens else 0)
            sentences += len(mask)
            tokens += int(mask.sum())
            if sentences >= rows:
                break
    finally:
        model.train(was_training)
    for layer in missing:
        covariances[layer] = (sums[layer] / tokens).cpu()
        _store(covariances[layer], paths[layer])
    logger.info("key covariance of layer(s) %s from %d tokens of %d train sentences", missing, tokens, sentences)
    return covariances


def _store(covariance: torch.Tensor, path: Path) -> None:
    """Write atomically (another process may read the cache meanwhile); a cache that cannot be written is skipped."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}")
        torch.save(covariance, partial)
        os.replace(partial, path)
    except OSError as error:
        logger.info("could not cache the key covariance in %s (%s); it will be computed again", path, error)
