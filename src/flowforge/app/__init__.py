"""The browser app (``flowforge app RUN_DIR...``): :mod:`.logic` holds what it does as plain functions,
:mod:`.ui` the Gradio page over them (the ``app`` extra: ``pip install 'flowforge[app]'``)."""


def launch(paths, *, host: str = "127.0.0.1", port: int = 7860, share: bool = False, device: str = "auto") -> None:
    """Load the runs or model folders ``paths`` onto ``device`` and serve the app until interrupted."""
    from .ui import launch as _launch

    _launch(paths, host=host, port=port, share=share, device=device)


__all__ = ["launch"]
