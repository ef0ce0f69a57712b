"""The paper's controller: a single-layer LSTM that writes a rule token by token.

At each position it reads the embedding of the token it wrote last (a start token first) and emits a
softmax over the union vocabulary of the space, with the tokens not allowed at that position masked
out, so every string it writes is a valid rule (`TokenSpace`).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from optsearch.strategies.space import TokenSpace


class Controller(nn.Module):
    """LSTM policy over the strings of a `TokenSpace`; all weights uniform in [-init_range, init_range]."""

    def __init__(self, space: TokenSpace, hidden: int = 150, init_range: float = 0.08,
                 generator: torch.Generator | None = None):
        super().__init__()
        self.space, self.hidden = space, hidden
        self.start = len(space.vocab)  # embedding index of the start input
        # Built on "meta" and initialized from `generator`, so the global RNG is never touched.
        self.embed = nn.Embedding(len(space.vocab) + 1, hidden, device="meta")
        self.cell = nn.LSTMCell(hidden, hidden, device="meta")
        self.head = nn.Linear(hidden, len(space.vocab), device="meta")
        self.to_empty(device="cpu")
        with torch.no_grad():
            for p in self.parameters():
                nn.init.uniform_(p, -init_range, init_range, generator=generator)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Draw n strings: token ids [n, length] and their log-probabilities [n]."""
        with torch.no_grad():
            ids, logp, _ = self._run(n, generator=generator)
        return ids, logp

    def score(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probability [B] of given strings [B, length] and the summed per-position entropy [B]."""
        _, logp, entropy = self._run(len(ids), ids=ids)
        return logp, entropy

    def _run(self, batch: int, ids: Tensor | None = None,
             generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        x = torch.full((batch,), self.start, dtype=torch.long)
        h = c = torch.zeros(batch, self.hidden)
        chosen, logps, entropies = [], [], []
        for pos in range(self.space.length):
            h, c = self.cell(self.embed(x), (h, c))
            invalid = ~self.space.mask[pos]
            logp = torch.log_softmax(self.head(h).masked_fill(invalid, float("-inf")), dim=-1)
            x = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(1) if ids is None else ids[:, pos]
            chosen.append(x)
            logps.append(logp.gather(1, x[:, None]).squeeze(1))
            entropies.append(-(logp.exp() * logp.masked_fill(invalid, 0.0)).sum(-1))
        return torch.stack(chosen, 1), torch.stack(logps, 1).sum(1), torch.stack(entropies, 1).sum(1)

    def encode(self, strings: list[tuple[str, ...]]) -> Tensor:
        return torch.tensor([[self.space.index[t] for t in s] for s in strings], dtype=torch.long)

    def decode(self, ids: Tensor) -> list[tuple[str, ...]]:
        return [tuple(self.space.vocab[i] for i in row) for row in ids.tolist()]
