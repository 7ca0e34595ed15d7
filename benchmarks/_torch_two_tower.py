"""The two_tower model written in PyTorch, the deep-model baseline of the speed benchmarks.

Same architecture as ``Recommender(model="two_tower")``: a user ID embedding (zero init)
and each item's input and output embeddings (uniform init of the same std) plus an output
bias; c_u = tower([p_u ; h_u]) + p_u + h_u with h_u the recency-weighted mean of the input
vectors of the user's last ``history`` items, the tower Linear(2d, w) -> ReLU -> ... ->
Linear(w, d); sampled softmax over the positive and ``negatives`` uniformly drawn items
(accidental hits masked); AdaGrad with sparse gradients for the embeddings.

The optimiser differs in one detail, on purpose the faster choice for PyTorch: torch's
AdaGrad keeps one accumulator per coordinate (rtrec keeps one per row), which costs PyTorch
nothing extra on the vectorised kernels it runs per batch.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class TorchTwoTower(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int = 64, tower: tuple[int, ...] = (128,),
                 init_std: float = 0.1, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        a = init_std * math.sqrt(3.0)
        self.user = nn.Embedding(n_users, dim, sparse=True)
        self.item_in = nn.Embedding(n_items + 1, dim, sparse=True, padding_idx=n_items)  # last row: padding
        self.item_out = nn.Embedding(n_items, dim, sparse=True)
        self.item_bias = nn.Embedding(n_items, 1, sparse=True)
        nn.init.zeros_(self.user.weight)
        nn.init.uniform_(self.item_in.weight, -a, a)
        with torch.no_grad():
            self.item_in.weight[n_items].zero_()
        nn.init.uniform_(self.item_out.weight, -a, a)
        nn.init.zeros_(self.item_bias.weight)
        layers: list[nn.Module] = []
        width = 2 * dim
        for hidden in tower:
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            width = hidden
        layers.append(nn.Linear(width, dim))
        self.tower = nn.Sequential(*layers)

    def loss(self, users: torch.Tensor, history: torch.Tensor, weights: torch.Tensor,
             candidates: torch.Tensor) -> torch.Tensor:
        """users [B], history [B, H] (padding = n_items), weights [B, H] (rows sum to 1 or 0),
        candidates [B, 1 + negatives] with the positive first."""
        p = self.user(users)
        h = (self.item_in(history) * weights.unsqueeze(-1)).sum(1)
        c = self.tower(torch.cat([p, h], dim=1)) + p + h
        scores = torch.bmm(self.item_out(candidates), c.unsqueeze(-1)).squeeze(-1)
        logits = scores + self.item_bias(candidates).squeeze(-1)
        accidental = candidates[:, 1:] == candidates[:, :1]
        logits[:, 1:] = logits[:, 1:].masked_fill(accidental, -1e9)
        return nn.functional.cross_entropy(logits, torch.zeros(len(users), dtype=torch.long))

    def optimizer(self, lr: float) -> list[torch.optim.Optimizer]:
        sparse = [self.user.weight, self.item_in.weight, self.item_out.weight, self.item_bias.weight]
        return [torch.optim.Adagrad(sparse, lr=lr), torch.optim.Adagrad(self.tower.parameters(), lr=lr)]


def histories(users: np.ndarray, items: np.ndarray, history: int, recency: float, n_items: int
              ) -> tuple[np.ndarray, np.ndarray]:
    """Each event's input history (the user's items before it, most recent first, padded
    with n_items) and its normalised recency weights, as the rtrec fit builds them."""
    hist = np.full((len(users), history), n_items, dtype=np.int64)
    weights = np.zeros((len(users), history), dtype=np.float32)
    seen: dict[int, list[int]] = {}
    decay = recency ** np.arange(history, dtype=np.float64)
    for e, (u, i) in enumerate(zip(users.tolist(), items.tolist(), strict=True)):
        past = seen.setdefault(u, [])
        recent = past[-history:][::-1]
        if recent:
            hist[e, : len(recent)] = recent
            w = decay[: len(recent)]
            weights[e, : len(recent)] = w / w.sum()
        past.append(i)
    return hist, weights
