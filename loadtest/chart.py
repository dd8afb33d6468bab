"""The run's chart: queue length, admitted per second and open sockets over time (PNG, Agg)."""

from __future__ import annotations

from pathlib import Path

from .sampler import Sample


def draw(samples: list[Sample], phases: list[tuple[str, float, float]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s.t for s in samples]
    # Over about 3 s: admissions come once a second per tick, samples twice a second.
    rate = [max(0.0, (b.admitted_total - a.admitted_total) / (b.t - a.t)) if b.t > a.t else 0.0
            for a, b in ((samples[max(0, i - 6)], s) for i, s in enumerate(samples))]
    fig, axes = plt.subplots(3, 1, figsize=(11, 8), sharex=True)
    axes[0].plot(t, [s.waiting for s in samples], color="tab:blue")
    axes[0].set_ylabel("queue length")
    axes[1].plot(t, rate, color="tab:green")
    axes[1].set_ylabel("admitted / s")
    axes[2].plot(t, [s.sockets for s in samples], label="gateway web", color="tab:red")
    axes[2].plot(t, [s.bare_sockets for s in samples], label="bare process", color="tab:gray",
                 linestyle="--")
    axes[2].set_ylabel("open sockets")
    axes[2].set_xlabel("seconds since start")
    axes[2].legend(loc="upper left")
    for ax in axes:
        ax.grid(alpha=0.3)
        for i, (_, a, b) in enumerate(phases):
            ax.axvspan(a, b, color="tab:orange" if i % 2 else "tab:purple", alpha=0.07)
    for name, a, b in phases:
        axes[0].annotate(name, ((a + b) / 2, 1.0), xycoords=("data", "axes fraction"),
                         ha="center", va="bottom", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=90)
    plt.close(fig)
