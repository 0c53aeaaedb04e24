#!/usr/bin/env python3
"""Plots a `mlaserve bench serve --sweep-rates ...` result: latency and throughput against the
request rate, one PNG beside the JSON (same name, .png).

  python3 tools/plot_bench_serve.py bench/results/serve_<card>_<stamp>.json [out.png]

Needs matplotlib (not installed by scripts/setup.sh: plotting is optional; bench serve calls
this script only when `import matplotlib` works).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    path = sys.argv[1]
    out = sys.argv[2] if len(sys.argv) == 3 else path.rsplit(".", 1)[0] + ".png"
    doc = json.load(open(path))
    runs = doc["results"].get("runs", [doc["results"]])
    labels = [r["request_rate"] for r in runs]
    # "inf" is drawn one step past the largest finite rate.
    finite = [float(x) for x in labels if x != "inf"]
    x = [float(v) if v != "inf" else (max(finite) * 2 if finite else 1.0) for v in labels]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, metric, title in [(axes[0], "ttft", "time to first token"), (axes[1], "tpot", "time per output token")]:
        for stat in ["median", "p90", "p99"]:
            ax.plot(x, [r["%s_%s_ms" % (stat, metric)] for r in runs], marker="o", label=stat)
        ax.set_title(title)
        ax.set_ylabel("ms")
    axes[2].plot(x, [r["output_throughput"] for r in runs], marker="o", label="output tok/s")
    axes[2].plot(x, [r["total_token_throughput"] for r in runs], marker="o", label="total tok/s")
    axes[2].set_title("throughput")
    axes[2].set_ylabel("tokens/s")
    for ax in axes:
        ax.set_xlabel("request rate (req/s)")
        ax.set_xscale("log", base=2)
        ax.set_xticks(x)
        ax.set_xticklabels(labels)
        ax.grid(True, alpha=0.3)
        ax.legend()
    fig.suptitle("%s at %s (%s, %s)" % (doc["model"], doc["server"], doc["card"], doc["date"]))
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print("wrote %s" % out)


if __name__ == "__main__":
    main()
