"""Label-free fidelity audit: how far BlockCopy's output is from the dense model's on the same frame."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dense_fidelity(dense_logits: torch.Tensor, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image of the batch: the share of pixels whose predicted class equals the dense model's, and the mean
    over pixels of KL(dense || BlockCopy) between the two softmax outputs (nats)."""
    agreement = (dense_logits.argmax(1) == logits.argmax(1)).float().mean((1, 2))
    log_dense = F.log_softmax(dense_logits.float(), dim=1)
    log_sparse = F.log_softmax(logits.float(), dim=1)
    kl = (log_dense.exp() * (log_dense - log_sparse)).sum(1).mean((1, 2))
    return agreement, kl.clamp_min(0.0)
