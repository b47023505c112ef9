"""The benchmark's Markdown table and PNG chart."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def table(result: dict) -> str:
    lines = [
        "| server | concurrency | requests/s | p50 ms | p99 ms | errors | cold start s | peak MiB |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for server in result["servers"]:
        for run in server["runs"]:
            lines.append(
                f"| {server['name']} | {run['concurrency']} | {run['rps']:.1f} | {run['p50_ms']} | "
                f"{run['p99_ms']} | {run['errors']} | {server['cold_start_s']} | {server['peak_memory_mib']} |"
            )
    lines += [
        "",
        f"import mxnet+gluoncv: {result['import_seconds']} s; raw forward limit (batch 32): "
        f"{result['forward_limit_images_per_s']} images/s; {result['machine']['cpus']} CPUs, "
        f"{result['machine']['processor']}, {result['date']}",
        "",
        "| target | value | met |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {name} | {t['value']} | {'yes' if t['met'] else 'no'} |" for name, t in result["targets"].items()]
    return "\n".join(lines)


def chart(result: dict, path: Path) -> None:
    fig, (rps_ax, p99_ax) = plt.subplots(1, 2, figsize=(10, 4))
    width = 0.38
    for offset, server in zip((-width / 2, width / 2), result["servers"], strict=True):
        levels = [str(r["concurrency"]) for r in server["runs"]]
        positions = [i + offset for i in range(len(levels))]
        rps_ax.bar(positions, [r["rps"] for r in server["runs"]], width, label=server["name"])
        p99_ax.bar(positions, [r["p99_ms"] or 0 for r in server["runs"]], width, label=server["name"])
    for ax, label in ((rps_ax, "requests/s"), (p99_ax, "p99 latency (ms)")):
        ax.set_xticks(range(len(levels)), levels)
        ax.set_xlabel("concurrent clients")
        ax.set_ylabel(label)
        ax.set_yscale("log")
        ax.legend()
    rps_ax.axhline(result["forward_limit_images_per_s"], color="grey", linestyle="--", linewidth=1)
    fig.suptitle("cifar10-function vs the tutorial's server (same multipart /predict)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
