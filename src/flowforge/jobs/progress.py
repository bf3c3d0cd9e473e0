"""Progress of the long steps that have no steps of their own to count: a bar of the network's evaluations.

An ODE likelihood (adaptive dopri5 with a divergence per evaluation) or a straightness measurement runs for
minutes inside one library call. Each of them calls the model's network once per function evaluation, so a
forward hook on the network drives a bar with the NFE so far and the rate (and a total where it is known).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def network_progress(model: Any, what: str, total: int | None = None, enabled: bool = True) -> Iterator[None]:
    """Draw a bar named ``what`` counting ``model.net``'s evaluations while the block runs (nothing when not
    ``enabled`` or for a model without a ``net``, e.g. a normalizing flow, whose likelihood is one pass)."""
    net = getattr(model, "net", None)
    if not enabled or net is None:
        yield
        return
    from tqdm.auto import tqdm

    bar = tqdm(total=total, desc=what, unit="NFE", leave=False, dynamic_ncols=True)
    def tick(*args: Any) -> None:  # returns None: a forward hook's return value would replace the output
        bar.update(1)

    handle = net.register_forward_hook(tick)
    try:
        yield
    finally:
        handle.remove()
        bar.close()


__all__ = ["network_progress"]
