"""The short fit the flows' training tests share: Adam, 300 steps of 250 points drawn with a fixed generator."""

import torch


def fit(model, train: torch.Tensor, steps: int = 300, batch: int = 250, lr: float = 3e-3) -> None:
    """Minimise ``model.loss`` on batches of ``train`` drawn with replacement (seeded: the same batches each run)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(1)
    for _ in range(steps):
        opt.zero_grad()
        model.loss(train[torch.randint(0, len(train), (batch,), generator=gen)]).backward()
        opt.step()
